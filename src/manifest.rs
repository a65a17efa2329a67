//! The signed manifest of each epoch, the epoch chain and the vault fingerprint.

use serde::{Deserialize, Serialize};

use crate::crypto::{self, KdfParams, VaultKeys, VerifyKey};
use crate::store::ManifestRow;

/// 2: epochs from 2 on commit to the audit head at their change (`audit_head`).
/// 3: each custodian has a share proof key (`proof_key`), and epochs from 2 on
/// carry a compact `epoch_link` signed by the previous key, so a custodian with
/// only a request code can check the key chain from the fingerprint.
pub const FORMAT_VERSION: u32 = 3;
/// Manifests written before `audit_head` existed still verify.
const OLDEST_FORMAT: u32 = 1;
const SIGN_LABEL: &[u8] = b"breakglass/v1/manifest\0";
const FINGERPRINT_LABEL: &[u8] = b"breakglass/v1/fingerprint\0";
const LINK_LABEL: &[u8] = b"breakglass/v1/epoch-link\0";
const BASE32: &[u8; 32] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

/// A passphrase custodian's Argon2id salt and cost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfSpec {
    /// The Argon2id salt (hex).
    pub salt: String,
    /// The Argon2id cost.
    pub params: KdfParams,
}

/// One custodian of an epoch, as signed into its manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustodianEntry {
    /// The custodian's name.
    pub name: String,
    /// age | ssh-ed25519 | ssh-rsa | passphrase
    pub kind: String,
    /// The public recipient the envelope is encrypted to.
    pub recipient: String,
    /// The Argon2id salt and cost, for a `passphrase` custodian.
    pub kdf: Option<KdfSpec>,
    /// The custodian's share index (1..=N, never 0).
    pub index: u8,
    /// SHA-256 commitment to this custodian's share (hex).
    pub commitment: String,
    /// The public key derived from this custodian's share (format 3): a
    /// signature by it proves the share without revealing it (remote drills).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof_key: Option<String>,
}

/// The canonical manifest document. Field order is the serialization order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Manifest format version.
    pub format: u32,
    /// The vault's random 128-bit id (hex).
    pub vault_id: String,
    /// The epoch this manifest starts; each rekey or quorum change makes a new one.
    pub epoch: u64,
    /// When the epoch began (RFC 3339, UTC).
    pub created: String,
    /// K: shares needed to open the vault.
    pub threshold: u8,
    /// The N custodians, in index order.
    pub custodians: Vec<CustodianEntry>,
    /// The age recipient every secret of this epoch is sealed to.
    pub vault_recipient: String,
    /// This epoch's Ed25519 verify key (hex), which signs the manifest, checkpoints and links.
    pub verify_key: String,
    /// The epoch-1 verify key; with vault_id it fixes the fingerprint for life.
    pub genesis_verify_key: String,
    /// Passphrase custodians use the cheap test-only KDF. Never for real vaults.
    pub insecure_test_only_kdf: bool,
    /// Where alerts go (signed, so a copy cannot silence them).
    pub alerts: Vec<serde_json::Value>,
    /// SHA-256 of the previous epoch's manifest body, chaining the epochs.
    pub prev_manifest_hash: Option<String>,
    /// The audit head just before this epoch's `new_epoch` row (format 2, epoch
    /// 2 on): rewriting the history before it breaks this signed manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_head: Option<AuditHead>,
    /// Format 3, epoch 2 on: the previous epoch's signature over this epoch's
    /// verify key ([`link_message`]); a chain of these links the fingerprint's
    /// genesis key to this epoch's key in ~100 bytes per epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch_link: Option<String>,
}

/// One step of the key chain: epoch `epoch`'s verify key, signed by epoch
/// `epoch - 1`'s key. Public, and checkable with nothing but the previous key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpochLink {
    /// The epoch whose key this link certifies.
    pub epoch: u64,
    /// That epoch's verify key.
    pub verify_key: VerifyKey,
    /// The previous epoch's signature over it.
    pub signature: [u8; 64],
}

/// Bytes of one encoded [`EpochLink`]: epoch, key, signature.
pub const LINK_LEN: usize = 8 + 32 + 64;

impl EpochLink {
    /// The link as `LINK_LEN` bytes: epoch (big-endian), key, signature.
    pub fn encode(&self) -> [u8; LINK_LEN] {
        let mut out = [0u8; LINK_LEN];
        out[..8].copy_from_slice(&self.epoch.to_be_bytes());
        out[8..40].copy_from_slice(self.verify_key.as_bytes());
        out[40..].copy_from_slice(&self.signature);
        out
    }

    /// Reads a link from `LINK_LEN` bytes; `None` if the length or key is wrong.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != LINK_LEN {
            return None;
        }
        Some(Self {
            epoch: u64::from_be_bytes(bytes[..8].try_into().ok()?),
            verify_key: VerifyKey::from_hex(&hex::encode(&bytes[8..40]))?,
            signature: bytes[40..].try_into().ok()?,
        })
    }
}

/// What an epoch link signs: the vault, the epoch and that epoch's verify key.
pub fn link_message(vault_id: &str, epoch: u64, verify_key: &VerifyKey) -> Vec<u8> {
    [
        LINK_LABEL,
        vault_id.as_bytes(),
        b"\0",
        &epoch.to_be_bytes(),
        verify_key.as_bytes(),
    ]
    .concat()
}

/// Why a key chain could not be followed to the manifest's key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// An epoch with no key link.
    #[error("epoch {0} has no key link (made by an older breakglass)")]
    MissingLink(u64),
    /// A link whose signature does not verify.
    #[error("the key link of epoch {0} is not signed by epoch {prev}'s key", prev = .0 - 1)]
    BadLink(u64),
    /// The chain ends at another key than the one expected.
    #[error("the key chain ends at epoch {0}'s key, not the request's epoch key")]
    WrongEnd(u64),
}

/// Follow `links` from a trusted key of epoch `from_epoch` to epoch `to_epoch`,
/// returning the key reached. Each link must be signed by the key before it.
pub fn follow_links(
    vault_id: &str,
    from_epoch: u64,
    from_key: VerifyKey,
    links: &[EpochLink],
    to_epoch: u64,
) -> Result<VerifyKey, ChainError> {
    let mut key = from_key;
    for epoch in from_epoch + 1..=to_epoch {
        let link = links
            .iter()
            .find(|l| l.epoch == epoch)
            .ok_or(ChainError::MissingLink(epoch))?;
        let message = link_message(vault_id, epoch, &link.verify_key);
        if !crypto::verify_signature(&key, &message, &hex::encode(link.signature)) {
            return Err(ChainError::BadLink(epoch));
        }
        key = link.verify_key;
    }
    Ok(key)
}

/// The last audit row before an epoch began: its seq and hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditHead {
    /// The row's seq.
    pub seq: u64,
    /// The row's hash (hex).
    pub hash: String,
}

/// One signature over a manifest body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// The signing verify key (hex).
    pub key: String,
    /// The Ed25519 signature (hex).
    pub sig: String,
}

/// A manifest with its exact stored body and signatures, verified.
#[derive(Debug, Clone)]
pub struct SignedManifest {
    /// The parsed manifest.
    pub manifest: Manifest,
    /// The exact body the signatures cover.
    pub body: String,
    /// The epoch key's signature, and from epoch 2 the previous epoch key's.
    pub signatures: Vec<Signature>,
}

/// Why the manifest chain was refused; each message says what to do.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ManifestError {
    /// The file holds no manifest.
    #[error("vault has no manifest; the file is not a complete vault — restore it from a copy")]
    Empty,
    /// A manifest could not be parsed.
    #[error("manifest of epoch {epoch} is unreadable ({detail}); restore the vault from a copy")]
    Unreadable {
        /// The epoch.
        epoch: u64,
        /// What could not be read.
        detail: String,
    },
    /// A manifest of a format this build does not know.
    #[error("manifest of epoch {epoch} has format {found}; upgrade breakglass")]
    UnknownFormat {
        /// The epoch.
        epoch: u64,
        /// The format found.
        found: u32,
    },
    /// A manifest whose signature does not verify.
    #[error("manifest of epoch {epoch} fails its signature check ({detail}); the vault file was tampered with — restore it from a trusted copy")]
    BadSignature {
        /// The epoch.
        epoch: u64,
        /// Which signature failed.
        detail: String,
    },
    /// A manifest that does not chain to the one before it.
    #[error("manifest chain is broken at epoch {epoch} ({detail}); the vault file was tampered with — restore it from a trusted copy")]
    BrokenChain {
        /// The epoch.
        epoch: u64,
        /// What does not chain.
        detail: String,
    },
}

impl Manifest {
    /// The vault id as 16 bytes; `None` if malformed.
    pub fn vault_id_bytes(&self) -> Option<[u8; 16]> {
        hex::decode(&self.vault_id).ok()?.try_into().ok()
    }

    /// This epoch's verify key; `None` if malformed.
    pub fn verify_key(&self) -> Option<VerifyKey> {
        VerifyKey::from_hex(&self.verify_key)
    }

    /// The vault fingerprint (`BG-…`), from the vault id and the genesis key.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.vault_id, &self.genesis_verify_key)
    }

    /// The custodian of this name, if any.
    pub fn custodian(&self, name: &str) -> Option<&CustodianEntry> {
        self.custodians.iter().find(|c| c.name == name)
    }

    fn canonical_body(&self) -> String {
        serde_json::to_string(self).expect("manifest always serializes")
    }
}

/// Short printable vault fingerprint from vault_id and the first verify key.
pub fn fingerprint(vault_id: &str, genesis_verify_key: &str) -> String {
    let digest = crypto::sha256(&[
        FINGERPRINT_LABEL,
        vault_id.as_bytes(),
        b"\0",
        genesis_verify_key.as_bytes(),
    ]);
    // 80 bits as 16 base32 characters in four groups.
    let mut bits: u128 = 0;
    for byte in &digest[..10] {
        bits = (bits << 8) | u128::from(*byte);
    }
    let chars: Vec<char> = (0..16)
        .rev()
        .map(|i| BASE32[((bits >> (i * 5)) & 31) as usize] as char)
        .collect();
    let groups: Vec<String> = chars.chunks(4).map(|c| c.iter().collect()).collect();
    format!("BG-{}", groups.join("-"))
}

fn signed_message(body: &str) -> Vec<u8> {
    [SIGN_LABEL, body.as_bytes()].concat()
}

/// SHA-256 of a stored manifest body, hex; links epoch N+1 to epoch N.
pub fn body_hash(body: &str) -> String {
    hex::encode(crypto::sha256(&[body.as_bytes()]))
}

/// Sign a new epoch's manifest with its own key and, from epoch 2 on, the previous key.
pub fn sign(
    mut manifest: Manifest,
    keys: &VaultKeys,
    previous: Option<&VaultKeys>,
) -> SignedManifest {
    if let (Some(prev), true) = (previous, manifest.format >= 3) {
        let message = link_message(&manifest.vault_id, manifest.epoch, &keys.verify_key());
        manifest.epoch_link = Some(hex::encode(prev.sign(&message)));
    }
    let body = manifest.canonical_body();
    let message = signed_message(&body);
    let mut signatures = vec![Signature {
        key: keys.verify_key().to_hex(),
        sig: hex::encode(keys.sign(&message)),
    }];
    if let Some(prev) = previous {
        signatures.push(Signature {
            key: prev.verify_key().to_hex(),
            sig: hex::encode(prev.sign(&message)),
        });
    }
    SignedManifest {
        manifest,
        body,
        signatures,
    }
}

impl SignedManifest {
    /// The manifest as a store row.
    pub fn to_row(&self) -> ManifestRow {
        ManifestRow {
            epoch: self.manifest.epoch,
            body: self.body.clone(),
            signatures: serde_json::to_string(&self.signatures).expect("signatures serialize"),
        }
    }

    /// This epoch's key link, if it has one (format 3, epoch 2 on).
    pub fn link(&self) -> Option<EpochLink> {
        let signature = hex::decode(self.manifest.epoch_link.as_deref()?)
            .ok()?
            .try_into()
            .ok()?;
        Some(EpochLink {
            epoch: self.manifest.epoch,
            verify_key: self.manifest.verify_key()?,
            signature,
        })
    }

    /// Parse a manifest body and signatures (e.g. from a request code) and check
    /// it is signed by its own verify key. Its place in the chain is checked
    /// separately, with [`follow_links`].
    pub fn parse_self_signed(
        epoch: u64,
        body: &str,
        signatures: &str,
    ) -> Result<Self, ManifestError> {
        let signed = parse_row(&ManifestRow {
            epoch,
            body: body.to_string(),
            signatures: signatures.to_string(),
        })?;
        // Callers rely on a well-formed vault id (a code is hostile input).
        if signed.manifest.vault_id_bytes().is_none() {
            return Err(ManifestError::Unreadable {
                epoch,
                detail: "vault_id is malformed".into(),
            });
        }
        if VerifyKey::from_hex(&signed.manifest.genesis_verify_key).is_none() {
            return Err(ManifestError::Unreadable {
                epoch,
                detail: "genesis_verify_key is malformed".into(),
            });
        }
        let key = signed
            .manifest
            .verify_key()
            .ok_or_else(|| ManifestError::BadSignature {
                epoch,
                detail: "verify key is malformed".into(),
            })?;
        if signed.manifest.epoch != epoch || !signed.has_signature_by(&key) {
            return Err(ManifestError::BadSignature {
                epoch,
                detail: "no valid signature by its own verify key".into(),
            });
        }
        Ok(signed)
    }

    fn has_signature_by(&self, key: &VerifyKey) -> bool {
        let message = signed_message(&self.body);
        self.signatures
            .iter()
            .any(|s| s.key == key.to_hex() && crypto::verify_signature(key, &message, &s.sig))
    }
}

/// Parse and verify every stored manifest, oldest first, and return the newest.
/// Each must be self-signed, carry the same vault_id and genesis key, and from
/// epoch 2 on be signed by the previous epoch's key and cite its body hash.
pub fn verify_chain(rows: &[ManifestRow]) -> Result<SignedManifest, ManifestError> {
    let mut previous: Option<SignedManifest> = None;
    for (i, row) in rows.iter().enumerate() {
        let current = parse_row(row)?;
        let m = &current.manifest;
        let epoch = row.epoch;
        let broken = |detail: &str| ManifestError::BrokenChain {
            epoch,
            detail: detail.to_string(),
        };
        if m.epoch != epoch || epoch != i as u64 + 1 {
            return Err(broken("epochs are not consecutive from 1"));
        }
        let own_key = m.verify_key().ok_or_else(|| ManifestError::BadSignature {
            epoch,
            detail: "verify key is malformed".into(),
        })?;
        if !current.has_signature_by(&own_key) {
            return Err(ManifestError::BadSignature {
                epoch,
                detail: "no valid signature by its own verify key".into(),
            });
        }
        if m.vault_id_bytes().is_none() {
            return Err(broken("vault_id is malformed"));
        }
        if m.format >= 3
            && m.custodians.iter().any(|c| {
                c.proof_key
                    .as_deref()
                    .and_then(VerifyKey::from_hex)
                    .is_none()
            })
        {
            return Err(broken("a custodian has no valid share proof key"));
        }
        match &previous {
            None => {
                if m.genesis_verify_key != m.verify_key || m.prev_manifest_hash.is_some() {
                    return Err(broken("first epoch does not start the chain"));
                }
            }
            Some(prev) => {
                let p = &prev.manifest;
                if m.format < p.format {
                    return Err(broken("format went back to an older version"));
                }
                if m.format >= 2 && m.audit_head.is_none() {
                    return Err(broken("does not commit to the audit head at its change"));
                }
                if m.vault_id != p.vault_id || m.genesis_verify_key != p.genesis_verify_key {
                    return Err(broken("vault identity changed between epochs"));
                }
                if m.prev_manifest_hash.as_deref() != Some(body_hash(&prev.body).as_str()) {
                    return Err(broken("does not cite the previous manifest"));
                }
                let prev_key = p
                    .verify_key()
                    .ok_or_else(|| broken("previous key malformed"))?;
                if !current.has_signature_by(&prev_key) {
                    return Err(ManifestError::BadSignature {
                        epoch,
                        detail: "not signed by the previous epoch's key".into(),
                    });
                }
                if m.format >= 3
                    && current.link().is_none_or(|l| {
                        follow_links(&m.vault_id, epoch - 1, prev_key, &[l], epoch) != Ok(own_key)
                    })
                {
                    return Err(ManifestError::BadSignature {
                        epoch,
                        detail: "its key link is missing or not signed by the previous epoch's key"
                            .into(),
                    });
                }
            }
        }
        previous = Some(current);
    }
    previous.ok_or(ManifestError::Empty)
}

fn parse_row(row: &ManifestRow) -> Result<SignedManifest, ManifestError> {
    let unreadable = |detail: String| ManifestError::Unreadable {
        epoch: row.epoch,
        detail,
    };
    let probe: serde_json::Value =
        serde_json::from_str(&row.body).map_err(|e| unreadable(e.to_string()))?;
    let format = probe.get("format").and_then(|f| f.as_u64()).unwrap_or(0) as u32;
    if !(OLDEST_FORMAT..=FORMAT_VERSION).contains(&format) {
        return Err(ManifestError::UnknownFormat {
            epoch: row.epoch,
            found: format,
        });
    }
    let manifest: Manifest =
        serde_json::from_str(&row.body).map_err(|e| unreadable(e.to_string()))?;
    let signatures: Vec<Signature> =
        serde_json::from_str(&row.signatures).map_err(|e| unreadable(e.to_string()))?;
    Ok(SignedManifest {
        manifest,
        body: row.body.clone(),
        signatures,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::VaultSeed;

    fn manifest(epoch: u64, keys: &VaultKeys, genesis: &str, prev: Option<String>) -> Manifest {
        Manifest {
            format: FORMAT_VERSION,
            vault_id: "00112233445566778899aabbccddeeff".into(),
            epoch,
            created: "2026-01-01T00:00:00Z".into(),
            threshold: 2,
            custodians: vec![],
            vault_recipient: keys.recipient(),
            verify_key: keys.verify_key().to_hex(),
            genesis_verify_key: genesis.into(),
            insecure_test_only_kdf: false,
            alerts: vec![],
            prev_manifest_hash: prev,
            audit_head: (epoch > 1).then(|| AuditHead {
                seq: epoch,
                hash: "00".repeat(32),
            }),
            epoch_link: None,
        }
    }

    #[test]
    fn epoch_links_chain_the_genesis_key_to_the_newest() {
        let keys: Vec<VaultKeys> = (0..4)
            .map(|_| VaultSeed::generate().derive_keys())
            .collect();
        let g = keys[0].verify_key().to_hex();
        let mut signed = vec![sign(manifest(1, &keys[0], &g, None), &keys[0], None)];
        for e in 1..4 {
            let prev = Some(body_hash(&signed[e - 1].body));
            let m = sign(
                manifest(e as u64 + 1, &keys[e], &g, prev),
                &keys[e],
                Some(&keys[e - 1]),
            );
            signed.push(m);
        }
        let rows: Vec<ManifestRow> = signed.iter().map(|s| s.to_row()).collect();
        assert_eq!(verify_chain(&rows).unwrap().manifest.epoch, 4);
        let links: Vec<EpochLink> = signed.iter().filter_map(|s| s.link()).collect();
        assert_eq!(links.len(), 3);
        let vid = &signed[0].manifest.vault_id;
        let genesis = keys[0].verify_key();
        assert_eq!(
            follow_links(vid, 1, genesis, &links, 4),
            Ok(keys[3].verify_key())
        );
        assert_eq!(
            follow_links(vid, 2, keys[1].verify_key(), &links, 4),
            Ok(keys[3].verify_key())
        );
        for link in &links {
            assert_eq!(EpochLink::decode(&link.encode()).as_ref(), Some(link));
        }
        // A gap, a link signed by the wrong key, a link for another vault.
        assert_eq!(
            follow_links(vid, 1, genesis, &[links[0].clone(), links[2].clone()], 4),
            Err(ChainError::MissingLink(3))
        );
        let mut forged = links.clone();
        let attacker = VaultSeed::generate().derive_keys();
        forged[1] = EpochLink {
            epoch: 3,
            verify_key: attacker.verify_key(),
            signature: attacker.sign(&link_message(vid, 3, &attacker.verify_key())),
        };
        assert_eq!(
            follow_links(vid, 1, genesis, &forged, 4),
            Err(ChainError::BadLink(3))
        );
        assert_eq!(
            follow_links("ffeeddccbbaa99887766554433221100", 1, genesis, &links, 4),
            Err(ChainError::BadLink(2))
        );
        // A format-3 manifest stripped of its link no longer verifies in the chain.
        let mut stripped = rows.clone();
        let link_text = signed[2].manifest.epoch_link.clone().unwrap();
        stripped[2].body = stripped[2]
            .body
            .replace(&format!(",\"epoch_link\":\"{link_text}\""), "");
        assert!(verify_chain(&stripped).is_err());
    }

    #[test]
    fn chain_verifies_and_detects_tampering() {
        let k1 = VaultSeed::generate().derive_keys();
        let k2 = VaultSeed::generate().derive_keys();
        let g = k1.verify_key().to_hex();
        let m1 = sign(manifest(1, &k1, &g, None), &k1, None);
        let m2 = sign(
            manifest(2, &k2, &g, Some(body_hash(&m1.body))),
            &k2,
            Some(&k1),
        );
        let rows = vec![m1.to_row(), m2.to_row()];
        assert_eq!(verify_chain(&rows).unwrap().manifest.epoch, 2);

        let mut edited = rows.clone();
        edited[0].body = edited[0].body.replace("\"threshold\":2", "\"threshold\":3");
        assert!(matches!(
            verify_chain(&edited),
            Err(ManifestError::BadSignature { epoch: 1, .. })
        ));

        // Epoch 2 signed only by its own (attacker's) key breaks the chain.
        let k3 = VaultSeed::generate().derive_keys();
        let forged = sign(manifest(2, &k3, &g, Some(body_hash(&m1.body))), &k3, None);
        let rows = vec![m1.to_row(), forged.to_row()];
        assert!(matches!(
            verify_chain(&rows),
            Err(ManifestError::BadSignature { epoch: 2, .. })
        ));
    }

    #[test]
    fn fingerprint_is_short_and_stable() {
        let f = fingerprint("aa", "bb");
        assert_eq!(f, fingerprint("aa", "bb"));
        assert_ne!(f, fingerprint("aa", "bc"));
        assert_eq!(f.len(), "BG-XXXX-XXXX-XXXX-XXXX".len());
    }
}
