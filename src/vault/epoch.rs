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

/// A re-key's inputs that do not change while it runs.
pub(crate) struct EpochChange<'a> {
    pub threshold: usize,
    pub custodians: &'a [NextCustodian],
    /// New alert sinks, or `None` to keep the current ones.
    pub alerts: Option<&'a [crate::notify::AlertSink]>,
    pub actor: &'a str,
    pub reason: &'a str,
    /// What the user confirmed for endorsement (see `Vault::unendorsed`).
    pub confirmed: &'a super::Unendorsed,
}

impl Vault {
    /// Re-key to epoch N+1 using the current epoch's keys (only a quorum
    /// session has them), in one transaction that reads what it re-seals.
    /// The new manifest commits to the audit head at the change. Returns the
    /// new epoch and, if the log failed verification, why no checkpoint was signed.
    pub(crate) fn advance_epoch(
        &mut self,
        old_keys: &VaultKeys,
        change: &EpochChange<'_>,
    ) -> Result<(u64, Option<String>), VaultError> {
        let old = self.current.clone();
        let m = &old.manifest;
        let vault_id = self.vault_id();
        let fingerprint = m.fingerprint();
        let epoch = m.epoch + 1;
        let seed = VaultSeed::generate();
        let keys = seed.derive_keys();
        let shares = crypto::split(&seed, change.threshold, change.custodians.len())
            .map_err(|e| VaultError::invalid(e.to_string()))?;
        drop(seed);

        let mut entries = Vec::with_capacity(change.custodians.len());
        let mut envelopes = Vec::with_capacity(change.custodians.len());
        for (c, share) in change.custodians.iter().zip(shares) {
            let index = share.index();
            let commitment = crypto::commitment(&vault_id, epoch, &share);
            let record = ShareRecord {
                vault_id,
                epoch,
                threshold: change.threshold as u8,
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

        let tx = self.store.begin()?;
        // Check the log before anything is signed over it, and decide what the
        // new epoch's checkpoint endorses while the old ciphertexts are in place.
        let (report, log) = Vault::verify_in(&tx, &m.vault_id, &fingerprint)?;
        let plan = report
            .ok
            .then(|| Vault::plan_endorsement(&tx, &report, &log, change.confirmed))
            .transpose()?;
        let audit_head = tx
            .read()
            .audit_head()?
            .map(|(seq, hash)| manifest::AuditHead { seq, hash });
        let signed = manifest::sign(
            Manifest {
                format: manifest::FORMAT_VERSION,
                vault_id: m.vault_id.clone(),
                epoch,
                created: audit::now(),
                threshold: change.threshold as u8,
                custodians: entries,
                vault_recipient: keys.recipient(),
                verify_key: keys.verify_key().to_hex(),
                genesis_verify_key: m.genesis_verify_key.clone(),
                insecure_test_only_kdf: m.insecure_test_only_kdf,
                alerts: match change.alerts {
                    Some(sinks) => sinks
                        .iter()
                        .map(|a| serde_json::to_value(a).expect("sink serializes"))
                        .collect(),
                    None => m.alerts.clone(),
                },
                prev_manifest_hash: Some(manifest::body_hash(&old.body)),
                audit_head,
            },
            &keys,
            Some(old_keys),
        );
        tx.insert_manifest(&signed.to_row())?;
        for envelope in &envelopes {
            tx.insert_envelope(envelope)?;
        }
        tx.delete_envelopes(m.epoch)?;
        // Re-seal after the new manifest is in: the store accepts versions
        // sealed only to the newest epoch.
        let mut resealed = 0;
        for version in tx.read().versions_in(&["active", "pending"])? {
            let plaintext = match crypto::decrypt_with_vault_key(version.ciphertext.as_bytes(), old_keys) {
                DecryptOutcome::Plaintext(p) => p,
                _ => {
                    return Err(VaultError::Secret {
                        name: version.secret.clone(),
                        detail: format!("version {} does not decrypt with the vault key; the re-key is abandoned and the vault stays at epoch {}", version.version, m.epoch),
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
            tx.reseal_version(&version.secret, version.version, epoch, &ciphertext)?;
            resealed += 1;
        }
        audit::append(
            &tx,
            vec![NewEntry::new(change.actor, audit::NEW_EPOCH, &fingerprint)
                .reason(change.reason)
                .details(serde_json::json!({
                    "from": m.epoch,
                    "to": epoch,
                    "threshold": change.threshold,
                    "custodians": change.custodians.iter().map(|c| &c.name).collect::<Vec<_>>(),
                    "resealed_versions": resealed,
                }))],
        )?;
        let refused = match (&plan, &report.problem) {
            (Some(plan), _) => {
                let ids = (m.vault_id.as_str(), fingerprint.as_str());
                Vault::sign_checkpoint(&tx, &keys, ids, epoch, change.actor, plan)?;
                None
            }
            (None, problem) => Some(Vault::refuse_checkpoint(
                &tx,
                &fingerprint,
                epoch,
                change.actor,
                problem.as_deref().unwrap_or("unknown"),
            )?),
        };
        tx.commit()?;
        self.warnings.extend(crate::remote::pins::raise_epoch(
            &signed.manifest.vault_id,
            &fingerprint,
            epoch,
        ));
        self.current = signed;
        Ok((epoch, refused))
    }
}
