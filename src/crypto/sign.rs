//! Ed25519 verification keys and signature checks.

use ed25519_dalek::{Signature, VerifyingKey};

/// A vault verify key (public Ed25519 key).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct VerifyKey(VerifyingKey);

impl VerifyKey {
    pub(crate) fn from_dalek(key: VerifyingKey) -> Self {
        Self(key)
    }

    /// Parses a key from 64 hex digits; `None` if malformed or not a valid Ed25519 point.
    pub fn from_hex(text: &str) -> Option<Self> {
        let bytes: [u8; 32] = hex::decode(text).ok()?.try_into().ok()?;
        VerifyingKey::from_bytes(&bytes).ok().map(Self)
    }

    /// The key as 64 lowercase hex digits, as stored in manifests.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0.as_bytes())
    }

    /// The raw 32-byte key.
    pub fn as_bytes(&self) -> &[u8; 32] {
        self.0.as_bytes()
    }
}

impl std::fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VerifyKey({})", self.to_hex())
    }
}

/// Strict Ed25519 verification of a hex signature.
pub fn verify_signature(key: &VerifyKey, message: &[u8], signature_hex: &str) -> bool {
    let Some(bytes) = hex::decode(signature_hex)
        .ok()
        .and_then(|b| <[u8; 64]>::try_from(b).ok())
    else {
        return false;
    };
    key.0
        .verify_strict(message, &Signature::from_bytes(&bytes))
        .is_ok()
}
