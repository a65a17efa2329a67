//! The per-epoch vault seed and the keys derived from it with HKDF-SHA256.

use std::fmt;

use bech32::{ToBase32, Variant};
use ed25519_dalek::{Signer, SigningKey};
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

use super::sign::VerifyKey;

const HKDF_SALT: &[u8] = b"breakglass/v1/vault-seed";
const LABEL_AGE: &[u8] = b"breakglass/v1/age-x25519-identity";
const LABEL_SIGN: &[u8] = b"breakglass/v1/ed25519-signing-key";

/// The 32-byte vault seed of one epoch. It exists only while a quorum session runs.
pub struct VaultSeed(Zeroizing<[u8; 32]>);

impl VaultSeed {
    /// A fresh seed from the OS CSPRNG.
    pub fn generate() -> Self {
        Self(Zeroizing::new(super::random_bytes::<32>()))
    }

    pub(crate) fn from_bytes(bytes: [u8; 32]) -> Self {
        let mut bytes = bytes;
        let seed = Self(Zeroizing::new(bytes));
        bytes.zeroize();
        seed
    }

    pub(crate) fn expose_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Derive the vault's age identity and signing key.
    pub fn derive_keys(&self) -> VaultKeys {
        let hk = Hkdf::<Sha256>::new(Some(HKDF_SALT), self.0.as_ref());
        let mut age_bytes = Zeroizing::new([0u8; 32]);
        let mut sign_bytes = Zeroizing::new([0u8; 32]);
        hk.expand(LABEL_AGE, age_bytes.as_mut())
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        hk.expand(LABEL_SIGN, sign_bytes.as_mut())
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        VaultKeys {
            identity: x25519_identity_from_bytes(&age_bytes),
            signing: SigningKey::from_bytes(&sign_bytes),
        }
    }
}

impl fmt::Debug for VaultSeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("VaultSeed([redacted])")
    }
}

/// The keys of one epoch: an age identity (decrypts secret values) and an
/// Ed25519 signing key (signs manifests and checkpoints).
pub struct VaultKeys {
    identity: age::x25519::Identity,
    signing: SigningKey,
}

impl VaultKeys {
    /// The public age recipient (`age1…`) secrets are encrypted to.
    pub fn recipient(&self) -> String {
        self.identity.to_public().to_string()
    }

    /// The public half of this epoch's signing key, which verifies manifests and checkpoints.
    pub fn verify_key(&self) -> VerifyKey {
        VerifyKey::from_dalek(self.signing.verifying_key())
    }

    /// Signs `message` with this epoch's Ed25519 key (64-byte signature).
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.signing.sign(message).to_bytes()
    }

    pub(crate) fn age_identity(&self) -> &age::x25519::Identity {
        &self.identity
    }
}

impl fmt::Debug for VaultKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("VaultKeys([redacted])")
    }
}

/// Build an age X25519 identity from 32 secret bytes via its canonical Bech32 form,
/// the only constructor the `age` crate exposes.
pub(crate) fn x25519_identity_from_bytes(bytes: &[u8; 32]) -> age::x25519::Identity {
    let mut encoded = bech32::encode("age-secret-key-", bytes.to_base32(), Variant::Bech32)
        .expect("static HRP and 32-byte payload always encode");
    encoded.make_ascii_uppercase();
    let identity = encoded
        .parse::<age::x25519::Identity>()
        .expect("freshly encoded identity always parses");
    encoded.zeroize();
    identity
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derivation_is_deterministic_and_label_separated() {
        let seed = VaultSeed::from_bytes([7u8; 32]);
        let a = seed.derive_keys();
        let b = seed.derive_keys();
        assert_eq!(a.recipient(), b.recipient());
        assert_eq!(a.verify_key(), b.verify_key());
        let other = VaultSeed::from_bytes([8u8; 32]).derive_keys();
        assert_ne!(a.recipient(), other.recipient());
        assert_ne!(a.verify_key(), other.verify_key());
    }

    #[test]
    fn debug_is_redacted() {
        let seed = VaultSeed::generate();
        assert_eq!(format!("{seed:?}"), "VaultSeed([redacted])");
        assert_eq!(format!("{:?}", seed.derive_keys()), "VaultKeys([redacted])");
    }
}
