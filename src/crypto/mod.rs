//! All cryptography lives here: seed derivation, Shamir with commitments, the
//! passphrase KDF, age envelopes, Ed25519 signatures, and the HMACs and digests
//! that sign requests to peers (Duo). Nothing in this module
//! touches SQL, files or the terminal.

mod age_file;
mod kdf;
mod keys;
mod mac;
mod plugin;
mod proof;
mod shamir;
mod sign;
mod strength;
pub mod tls;

pub use age_file::{
    dearmor, decrypt, decrypt_as, decrypt_with_vault_key, encrypt_armored, encrypt_binary,
    CustodianIdentity, CustodianRecipient, DecryptOutcome, EncryptedSshKey, IdentityFile,
    RecipientKind,
};
pub use kdf::{read_back_hash, READ_BACK_PARAMS};
pub use kdf::{KdfParams, Passphrase, KDF_TEST_ONLY_INSECURE};
pub use keys::{VaultKeys, VaultSeed};
// The test vectors' deterministic path (src/format_vectors.rs): test builds only.
#[cfg(test)]
pub(crate) use kdf::argon2id;
#[cfg(test)]
pub(crate) use keys::x25519_identity_from_bytes;
pub use mac::{hmac_sha1_hex, hmac_sha512_hex, sha512_hex};
pub use plugin::{
    install_hint, valid_plugin_name, NoPluginUi, PluginOptions, PluginUi, DEFAULT_PLUGIN_TIMEOUT,
};
pub use proof::ShareProofKey;
#[cfg(test)]
pub(crate) use shamir::split_seeded;
pub use shamir::{check_threshold, combine, commitment, split, ShamirError, Share, SHARE_LEN};
pub use sign::{verify_signature, VerifyKey};
pub use strength::{
    check_passphrase_strength, WeakPassphrase, MIN_GUESSES_LOG10, VAULT_CONTEXT_WORDS,
};

use rand::RngCore;
use sha2::{Digest, Sha256};

/// SHA-256 over the concatenation of `parts`.
pub fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize().into()
}

/// `n` bytes from the OS CSPRNG.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    rand::rngs::OsRng.fill_bytes(&mut out);
    out
}

/// A random string of `length` characters drawn uniformly from `alphabet` (OS CSPRNG).
pub fn random_string(length: usize, alphabet: &[u8]) -> zeroize::Zeroizing<String> {
    use rand::Rng;
    let mut rng = rand::rngs::OsRng;
    let mut out = zeroize::Zeroizing::new(String::with_capacity(length));
    for _ in 0..length {
        out.push(alphabet[rng.gen_range(0..alphabet.len())] as char);
    }
    out
}

/// Constant-time comparison for commitments and keys.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}
