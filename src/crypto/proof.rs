//! Share proof keys: an Ed25519 key derived from one custodian's share, whose
//! public half the signed manifest lists. A signature by it shows the share is
//! intact (it derives the listed key) without revealing the share: remote drills.

use std::fmt;

use ed25519_dalek::{Signer, SigningKey};
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

use super::shamir::Share;
use super::sign::VerifyKey;

const PROOF_SALT: &[u8] = b"breakglass/v1/share-proof-key";

/// The signing half of a share's proof key. Secret: no Clone, redacted Debug;
/// `ed25519_dalek::SigningKey` zeroizes itself on drop.
pub struct ShareProofKey(SigningKey);

impl ShareProofKey {
    /// Derive the proof key of `share` in (`vault_id`, `epoch`); the context
    /// keeps one share's key from standing in for another vault's or epoch's.
    pub fn derive(vault_id: &[u8; 16], epoch: u64, share: &Share) -> Self {
        let hk = Hkdf::<Sha256>::new(Some(PROOF_SALT), share.expose_bytes());
        let mut info = Vec::with_capacity(16 + 8 + 1);
        info.extend_from_slice(vault_id);
        info.extend_from_slice(&epoch.to_be_bytes());
        info.push(share.index());
        let mut bytes = Zeroizing::new([0u8; 32]);
        hk.expand(&info, bytes.as_mut())
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        Self(SigningKey::from_bytes(&bytes))
    }

    /// The public key a drill proof is checked against.
    pub fn public_key(&self) -> VerifyKey {
        VerifyKey::from_dalek(self.0.verifying_key())
    }

    /// Signs a drill proof statement with the derived Ed25519 key.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.0.sign(message).to_bytes()
    }
}

impl fmt::Debug for ShareProofKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ShareProofKey([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{split, verify_signature, VaultSeed};

    #[test]
    fn proof_keys_are_per_share_and_context_and_verify() {
        let seed = VaultSeed::generate();
        let shares = split(&seed, 2, 3).unwrap();
        let id = [1u8; 16];
        let a = ShareProofKey::derive(&id, 1, &shares[0]);
        assert_eq!(
            a.public_key(),
            ShareProofKey::derive(&id, 1, &shares[0]).public_key()
        );
        assert_ne!(
            a.public_key(),
            ShareProofKey::derive(&id, 1, &shares[1]).public_key()
        );
        assert_ne!(
            a.public_key(),
            ShareProofKey::derive(&id, 2, &shares[0]).public_key()
        );
        assert_ne!(
            a.public_key(),
            ShareProofKey::derive(&[2u8; 16], 1, &shares[0]).public_key()
        );
        let sig = hex::encode(a.sign(b"challenge"));
        assert!(verify_signature(&a.public_key(), b"challenge", &sig));
        assert!(!verify_signature(&a.public_key(), b"challengf", &sig));
        assert_eq!(format!("{a:?}"), "ShareProofKey([redacted])");
    }
}
