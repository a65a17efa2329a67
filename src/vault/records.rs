//! Binary plaintext records sealed inside age files: a custodian's share with its
//! context, and a secret value bound to its name and version.

use std::fmt;

use zeroize::Zeroizing;

use crate::crypto::{Share, SHARE_LEN};

const SHARE_MAGIC: &[u8; 8] = b"BGSHARE1";
const SECRET_MAGIC: &[u8; 8] = b"BGSECRT1";

/// A secret value in memory. No Clone, redacted Debug, zeroized on drop;
/// the plaintext comes out only through `expose_secret`.
pub struct SecretValue(Zeroizing<Vec<u8>>);

impl SecretValue {
    /// Wraps plaintext bytes; they are zeroized when the value is dropped.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The plaintext. Every call site is a place a secret leaves the vault.
    pub fn expose_secret(&self) -> &[u8] {
        &self.0
    }

    /// Length of the plaintext in bytes (safe to show: no content).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when the value is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue([redacted])")
    }
}

/// What a custodian envelope carries: the share and the context it belongs to.
#[derive(Debug)]
pub struct ShareRecord {
    pub vault_id: [u8; 16],
    pub epoch: u64,
    pub threshold: u8,
    pub index: u8,
    pub custodian: String,
    pub share: Share,
}

impl ShareRecord {
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let name = self.custodian.as_bytes();
        let mut out = Zeroizing::new(Vec::with_capacity(8 + 16 + 8 + 3 + name.len() + SHARE_LEN));
        out.extend_from_slice(SHARE_MAGIC);
        out.extend_from_slice(&self.vault_id);
        out.extend_from_slice(&self.epoch.to_be_bytes());
        out.push(self.threshold);
        out.push(self.index);
        out.push(name.len() as u8);
        out.extend_from_slice(name);
        out.extend_from_slice(self.share.expose_bytes());
        out
    }

    /// Parse a record; `None` for anything truncated, padded or malformed.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let mut r = Cursor(bytes);
        if r.take(8)? != SHARE_MAGIC {
            return None;
        }
        let vault_id = r.take(16)?.try_into().ok()?;
        let epoch = u64::from_be_bytes(r.take(8)?.try_into().ok()?);
        let threshold = r.take(1)?[0];
        let index = r.take(1)?[0];
        let name_len = r.take(1)?[0] as usize;
        let custodian = String::from_utf8(r.take(name_len)?.to_vec()).ok()?;
        let share = Share::from_bytes(r.take(SHARE_LEN)?)?;
        r.0.is_empty().then_some(Self {
            vault_id,
            epoch,
            threshold,
            index,
            custodian,
            share,
        })
    }
}

/// Plaintext of one secret version: bound to vault, name and version so a
/// ciphertext moved to another row is caught on reveal.
pub fn encode_secret(
    vault_id: &[u8; 16],
    name: &str,
    version: u32,
    value: &SecretValue,
) -> Zeroizing<Vec<u8>> {
    let name = name.as_bytes();
    let mut out = Zeroizing::new(Vec::with_capacity(
        8 + 16 + 4 + 2 + name.len() + value.len(),
    ));
    out.extend_from_slice(SECRET_MAGIC);
    out.extend_from_slice(vault_id);
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(&(name.len() as u16).to_be_bytes());
    out.extend_from_slice(name);
    out.extend_from_slice(value.expose_secret());
    out
}

/// Parse a secret record, returning (vault_id, name, version, value).
pub fn decode_secret(bytes: &[u8]) -> Option<([u8; 16], String, u32, SecretValue)> {
    let mut r = Cursor(bytes);
    if r.take(8)? != SECRET_MAGIC {
        return None;
    }
    let vault_id = r.take(16)?.try_into().ok()?;
    let version = u32::from_be_bytes(r.take(4)?.try_into().ok()?);
    let name_len = u16::from_be_bytes(r.take(2)?.try_into().ok()?) as usize;
    let name = String::from_utf8(r.take(name_len)?.to_vec()).ok()?;
    Some((vault_id, name, version, SecretValue::new(r.0.to_vec())))
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{split, VaultSeed};
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn share_record_round_trips_and_rejects_truncation(
            vault_id in any::<[u8; 16]>(), epoch in any::<u64>(), threshold in 2u8..=255,
            name in "[a-z][a-z0-9._-]{0,40}", cut in 1usize..20,
        ) {
            let share = split(&VaultSeed::generate(), 2, 3).unwrap().remove(1);
            let record = ShareRecord { vault_id, epoch, threshold, index: share.index(), custodian: name.clone(), share };
            let bytes = record.encode();
            let back = ShareRecord::decode(&bytes).unwrap();
            prop_assert_eq!(back.vault_id, vault_id);
            prop_assert_eq!(back.epoch, epoch);
            prop_assert_eq!(back.threshold, threshold);
            prop_assert_eq!(back.index, 2);
            prop_assert_eq!(&back.custodian, &name);
            prop_assert_eq!(back.share.expose_bytes(), record.share.expose_bytes());
            prop_assert!(ShareRecord::decode(&bytes[..bytes.len() - cut.min(bytes.len())]).is_none());
            let mut padded = bytes.to_vec();
            padded.push(0);
            prop_assert!(ShareRecord::decode(&padded).is_none());
        }

        #[test]
        fn secret_record_round_trips(
            vault_id in any::<[u8; 16]>(), name in "[A-Za-z0-9._/-]{1,60}", version in 1u32..,
            value in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let bytes = encode_secret(&vault_id, &name, version, &SecretValue::new(value.clone()));
            let (v, n, ver, val) = decode_secret(&bytes).unwrap();
            prop_assert_eq!(v, vault_id);
            prop_assert_eq!(n, name);
            prop_assert_eq!(ver, version);
            prop_assert_eq!(val.expose_secret(), value.as_slice());
            prop_assert!(decode_secret(&bytes[..8 + 16 + 3]).is_none());
        }
    }

    #[test]
    fn debug_is_redacted() {
        assert_eq!(
            format!("{:?}", SecretValue::new(b"hunter2".to_vec())),
            "SecretValue([redacted])"
        );
    }
}
