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
use crate::manifest::SignedManifest;
use crate::manifest::{self, CustodianEntry, KdfSpec, Manifest};
use crate::store::{EnvelopeRow, Tx};

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

/// Check, before any share is gathered, that this machine can seal a new
/// epoch to every custodian: a hardware-key custodian needs their plugin on
/// `PATH` here. `what` says which command needs it.
pub(crate) fn check_sealable(custodians: &[NextCustodian], what: &str) -> Result<(), VaultError> {
    for c in custodians {
        c.recipient
            .check_sealable()
            .map_err(|e| VaultError::Custodian {
                name: c.name.clone(),
                detail: format!("{what} seals a new envelope to this hardware key, and {e}"),
            })?;
    }
    Ok(())
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

/// The part of a re-key that needs no lock: a fresh seed split and sealed to
/// the next custodians. Written by [`Vault::write_epoch`] inside a transaction
/// that first checks the vault is still at the epoch this was prepared from.
pub(crate) struct PreparedEpoch {
    old: SignedManifest,
    epoch: u64,
    keys: VaultKeys,
    entries: Vec<CustodianEntry>,
    envelopes: Vec<EnvelopeRow>,
}

/// What a committed re-key produced.
pub(crate) struct EpochWritten {
    pub signed: SignedManifest,
    /// Why no checkpoint was signed (the log fails verification), if so.
    pub refused: Option<String>,
}

impl Vault {
    /// After the transaction holding [`Vault::write_epoch`] committed.
    pub(crate) fn epoch_committed(&mut self, written: EpochWritten) -> (u64, Option<String>) {
        let m = &written.signed.manifest;
        self.warnings.extend(crate::remote::pins::raise_epoch(
            &m.vault_id,
            &m.fingerprint(),
            m.epoch,
        ));
        let epoch = m.epoch;
        self.current = written.signed;
        (epoch, written.refused)
    }

    /// Split a fresh seed to the next custodians and seal their envelopes.
    pub(crate) fn prepare_epoch(
        &self,
        change: &EpochChange<'_>,
    ) -> Result<PreparedEpoch, VaultError> {
        let old = self.current.clone();
        let m = &old.manifest;
        let vault_id = self.vault_id();
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
            let proof_key = crypto::ShareProofKey::derive(&vault_id, epoch, &share)
                .public_key()
                .to_hex();
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
                proof_key: Some(proof_key),
            });
        }
        Ok(PreparedEpoch {
            old,
            epoch,
            keys,
            entries,
            envelopes,
        })
    }

    /// Write a prepared epoch in `tx`, which must already have checked (with
    /// [`Vault::require_epoch_in`]) that the vault is still at `prepared.old`:
    /// verify the log, re-seal every live version read here, insert the manifest
    /// (committing to the audit head) and envelopes, log `new_epoch`, and sign
    /// the new epoch's checkpoint (or log why not).
    pub(crate) fn write_epoch(
        tx: &Tx<'_>,
        old_keys: &VaultKeys,
        prepared: PreparedEpoch,
        change: &EpochChange<'_>,
    ) -> Result<EpochWritten, VaultError> {
        let PreparedEpoch {
            old,
            epoch,
            keys,
            entries,
            envelopes,
        } = prepared;
        let m = &old.manifest;
        let vault_id = m.vault_id_bytes().expect("checked by verify_chain");
        let fingerprint = m.fingerprint();
        let new_recipient =
            CustodianRecipient::parse_public_key(&keys.recipient()).map_err(VaultError::invalid)?;
        // Check the log before anything is signed over it, and decide what the
        // new epoch's checkpoint endorses while the old ciphertexts are in place.
        let (report, log) = Vault::verify_in(tx, &m.vault_id, &fingerprint)?;
        let plan = report
            .ok
            .then(|| Vault::plan_endorsement(tx, &report, &log, change.confirmed))
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
                epoch_link: None,
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
        // A version the old key cannot open (or that is bound to another row)
        // cannot be re-sealed; it is left as it is, named in the `new_epoch`
        // row and by `status`, and never blocks the re-key (nor the unseal
        // whose transaction this is).
        let mut resealed = 0;
        let mut not_resealed = Vec::new();
        // Live versions: active, pending, and a failed version newer than the
        // active one (a rotator may have set it at the target before its
        // outcome was lost, so it stays revealable with --reveal-version).
        let all = tx.read().versions_in(&["active", "pending", "failed"])?;
        let active_of = |secret: &str| {
            all.iter()
                .find(|v| v.state == "active" && v.secret == secret)
                .map(|v| v.version)
        };
        let live: Vec<_> = all
            .iter()
            .filter(|v| v.state != "failed" || active_of(&v.secret).is_some_and(|a| v.version > a))
            .cloned()
            .collect();
        for version in live {
            let opened =
                match crypto::decrypt_with_vault_key(version.ciphertext.as_bytes(), old_keys) {
                    DecryptOutcome::Plaintext(p) => records::decode_secret(&p)
                        .is_some_and(|(id, name, v, _)| {
                            id == vault_id && name == version.secret && v == version.version
                        })
                        .then_some(p)
                        .ok_or("is bound to another row (moved in the file)"),
                    _ => Err("does not decrypt with the vault key"),
                };
            match opened {
                Ok(plaintext) => {
                    let ciphertext = crypto::encrypt_armored(&new_recipient, &plaintext)
                        .map_err(VaultError::invalid)?;
                    tx.reseal_version(&version.secret, version.version, epoch, &ciphertext)?;
                    resealed += 1;
                }
                Err(problem) => not_resealed.push(serde_json::json!({
                    "secret": version.secret,
                    "version": version.version,
                    "problem": problem,
                })),
            }
        }
        audit::append(
            tx,
            vec![NewEntry::new(change.actor, audit::NEW_EPOCH, &fingerprint)
                .reason(change.reason)
                .details(serde_json::json!({
                    "from": m.epoch,
                    "to": epoch,
                    "threshold": change.threshold,
                    "custodians": change.custodians.iter().map(|c| &c.name).collect::<Vec<_>>(),
                    "resealed_versions": resealed,
                    "not_resealed": not_resealed,
                }))],
        )?;
        let refused = match (&plan, &report.problem) {
            (Some(plan), _) => {
                let ids = (m.vault_id.as_str(), fingerprint.as_str());
                Vault::sign_checkpoint(tx, &keys, ids, epoch, change.actor, plan)?;
                None
            }
            (None, problem) => Some(Vault::refuse_checkpoint(
                tx,
                &fingerprint,
                epoch,
                change.actor,
                problem.as_deref().unwrap_or("unknown"),
            )?),
        };
        Ok(EpochWritten { signed, refused })
    }
}
