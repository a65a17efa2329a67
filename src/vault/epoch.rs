//! Moving the vault to a new key epoch: a fresh seed split to the custodians,
//! new envelopes, every live secret version re-sealed, a manifest signed by both
//! the old and the new key, the old envelopes deleted — all in one transaction.
//! Until it commits, epoch N stays whole; after, the combined shares open nothing.

use super::records::{self, ShareRecord};
use super::{Vault, VaultError};
use crate::audit::{self, NewEntry};
use crate::crypto::{
    self, CustodianRecipient, DecryptOutcome, RecipientKind, VaultKeys, VaultSeed,
};
use crate::manifest::{self, CustodianEntry, KdfSpec, Manifest};
use crate::store::EnvelopeRow;

/// One custodian of the next epoch: the public parts that stay the same.
#[derive(Clone)]
pub(crate) struct NextCustodian {
    pub name: String,
    pub recipient: CustodianRecipient,
    pub kdf: Option<KdfSpec>,
}

impl NextCustodian {
    pub(crate) fn from_entry(entry: &CustodianEntry) -> Result<Self, VaultError> {
        let kind = RecipientKind::parse(&entry.kind).ok_or_else(|| {
            VaultError::invalid(format!(
                "custodian {}: unknown kind {}",
                entry.name, entry.kind
            ))
        })?;
        Ok(Self {
            name: entry.name.clone(),
            recipient: CustodianRecipient::from_stored(kind, &entry.recipient).map_err(|e| {
                VaultError::Custodian {
                    name: entry.name.clone(),
                    detail: e,
                }
            })?,
            kdf: entry.kdf.clone(),
        })
    }
}

impl Vault {
    /// Re-key to epoch N+1 under `custodians` and `threshold`, using the current
    /// epoch's keys (only a quorum session has them). Returns the new epoch.
    pub(crate) fn advance_epoch(
        &mut self,
        old_keys: &VaultKeys,
        threshold: usize,
        custodians: &[NextCustodian],
        alerts: Option<&[crate::notify::AlertSink]>,
        actor: &str,
        reason: &str,
    ) -> Result<u64, VaultError> {
        let old = self.current.clone();
        let vault_id = self.vault_id();
        let epoch = old.manifest.epoch + 1;
        let seed = VaultSeed::generate();
        let keys = seed.derive_keys();
        let shares = crypto::split(&seed, threshold, custodians.len())
            .map_err(|e| VaultError::invalid(e.to_string()))?;

        let mut entries = Vec::with_capacity(custodians.len());
        let mut envelopes = Vec::with_capacity(custodians.len());
        for (c, share) in custodians.iter().zip(shares) {
            let index = share.index();
            let commitment = crypto::commitment(&vault_id, epoch, &share);
            let record = ShareRecord {
                vault_id,
                epoch,
                threshold: threshold as u8,
                index,
                custodian: c.name.clone(),
                share,
            };
            let envelope =
                crypto::encrypt_armored(&c.recipient, &record.encode()).map_err(|e| {
                    VaultError::Custodian {
                        name: c.name.clone(),
                        detail: format!("cannot encrypt the new envelope: {e}"),
                    }
                })?;
            envelopes.push(EnvelopeRow {
                epoch,
                custodian: c.name.clone(),
                share_index: index,
                envelope,
            });
            entries.push(CustodianEntry {
                name: c.name.clone(),
                kind: c.recipient.kind().as_str().into(),
                recipient: c.recipient.text().into(),
                kdf: c.kdf.clone(),
                index,
                commitment,
            });
        }

        let new_recipient =
            CustodianRecipient::parse_public_key(&keys.recipient()).map_err(VaultError::invalid)?;
        let mut resealed = Vec::new();
        for version in self.store.read().versions_in(&["active", "pending"])? {
            let plaintext = match crypto::decrypt_with_vault_key(version.ciphertext.as_bytes(), old_keys) {
                DecryptOutcome::Plaintext(p) => p,
                _ => {
                    return Err(VaultError::Secret {
                        name: version.secret.clone(),
                        detail: format!("version {} does not decrypt with the vault key; the re-key is abandoned and the vault stays at epoch {}", version.version, old.manifest.epoch),
                    })
                }
            };
            let bound = records::decode_secret(&plaintext).is_some_and(|(id, name, v, _)| {
                id == vault_id && name == version.secret && v == version.version
            });
            if !bound {
                return Err(VaultError::Secret {
                    name: version.secret.clone(),
                    detail: format!(
                        "version {} is bound to another row; the re-key is abandoned",
                        version.version
                    ),
                });
            }
            let ciphertext =
                crypto::encrypt_armored(&new_recipient, &plaintext).map_err(VaultError::invalid)?;
            resealed.push((version.secret, version.version, ciphertext));
        }

        let m = &old.manifest;
        let signed = manifest::sign(
            Manifest {
                format: m.format,
                vault_id: m.vault_id.clone(),
                epoch,
                created: audit::now(),
                threshold: threshold as u8,
                custodians: entries,
                vault_recipient: keys.recipient(),
                verify_key: keys.verify_key().to_hex(),
                genesis_verify_key: m.genesis_verify_key.clone(),
                insecure_test_only_kdf: m.insecure_test_only_kdf,
                alerts: match alerts {
                    Some(sinks) => sinks
                        .iter()
                        .map(|a| serde_json::to_value(a).expect("sink serializes"))
                        .collect(),
                    None => m.alerts.clone(),
                },
                prev_manifest_hash: Some(manifest::body_hash(&old.body)),
            },
            &keys,
            Some(old_keys),
        );
        drop(seed);

        let tx = self.store.begin()?;
        tx.insert_manifest(&signed.to_row())?;
        for envelope in &envelopes {
            tx.insert_envelope(envelope)?;
        }
        for (secret, version, ciphertext) in &resealed {
            tx.reseal_version(secret, *version, epoch, ciphertext)?;
        }
        tx.delete_envelopes(m.epoch)?;
        audit::append(
            &tx,
            vec![NewEntry::new(actor, "new_epoch", &m.fingerprint())
                .reason(reason)
                .details(serde_json::json!({
                    "from": m.epoch,
                    "to": epoch,
                    "threshold": threshold,
                    "custodians": custodians.iter().map(|c| &c.name).collect::<Vec<_>>(),
                    "resealed_versions": resealed.len(),
                }))],
        )?;
        Vault::append_checkpoint(&tx, &keys, &m.vault_id, epoch, &m.fingerprint(), actor)?;
        tx.commit()?;
        crate::remote::pins::check(
            &signed.manifest.vault_id,
            &signed.manifest.fingerprint(),
            epoch,
        );
        self.current = signed;
        Ok(epoch)
    }
}
