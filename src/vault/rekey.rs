//! `rekey`: a quorum of the current epoch moves the vault to a new epoch under a
//! changed threshold or custodian set. Same re-encryption as after an unseal.

use serde::Serialize;

use super::epoch::NextCustodian;
use super::init::{
    admit_enrolment, check_passphrases_strength, not_typed_here, validate_custodian_name,
    CustodianSpec, RecipientSpec,
};
use super::{UnsealPrompt, UnsealRequest, Vault, VaultError};
use crate::crypto::{
    self, CustodianRecipient, KdfParams, Passphrase, RecipientKind, KDF_TEST_ONLY_INSECURE,
};
use crate::manifest::KdfSpec;

/// What a `rekey` changes: the threshold, custodians added and removed.
pub struct RekeyChanges {
    /// The new K, if it changes.
    pub threshold: Option<usize>,
    /// Custodians to add.
    pub add: Vec<CustodianSpec>,
    /// Names of custodians to remove.
    pub remove: Vec<String>,
    /// Passphrases of added `passphrase` custodians, by name.
    pub new_passphrases: Vec<(String, Passphrase)>,
    /// Replace the alert sinks (`Some(vec![])` clears them); `None` keeps them.
    pub alerts: Option<Vec<crate::notify::AlertSink>>,
}

/// What a `rekey` did.
#[derive(Debug, Serialize)]
pub struct RekeyReport {
    /// The epoch before the rekey.
    pub from_epoch: u64,
    /// The new epoch.
    pub epoch: u64,
    /// The new K.
    pub threshold: usize,
    /// The custodians of the new epoch.
    pub custodians: Vec<String>,
    /// The current-epoch custodians whose shares were used.
    pub quorum: Vec<String>,
    /// Things the user should know or act on after the rekey.
    pub warnings: Vec<String>,
}

impl Vault {
    /// Moves the vault to a new epoch with new shares for the changed custodian set and threshold; needs a quorum of the current epoch.
    pub fn rekey(
        &mut self,
        mut quorum: UnsealRequest,
        mut changes: RekeyChanges,
        prompt: &mut dyn UnsealPrompt,
    ) -> Result<RekeyReport, VaultError> {
        let m = self.manifest().clone();
        for name in &changes.remove {
            if m.custodian(name).is_none() {
                return Err(VaultError::Custodian {
                    name: name.clone(),
                    detail: "is not a custodian, so it cannot be removed; run `breakglass custodian list`".into(),
                });
            }
        }
        let mut next: Vec<NextCustodian> = m
            .custodians
            .iter()
            .filter(|c| !changes.remove.contains(&c.name))
            .map(NextCustodian::from_entry)
            .collect::<Result<_, _>>()?;
        let threshold = changes.threshold.unwrap_or(usize::from(m.threshold));
        let total = next.len() + changes.add.len();
        if total < threshold {
            return Err(VaultError::invalid(format!(
                "removing {} would leave {total} custodians, fewer than the threshold {threshold}; lower --threshold or add custodians",
                changes.remove.join(", ")
            )));
        }
        crypto::check_threshold(threshold, total)
            .map_err(|e| VaultError::invalid(format!("--threshold {threshold}: {e}")))?;
        let params = if m.insecure_test_only_kdf {
            KDF_TEST_ONLY_INSECURE
        } else {
            KdfParams::DEFAULT
        };
        for (name, _) in &changes.new_passphrases {
            let typed_here = changes
                .add
                .iter()
                .any(|c| &c.name == name && matches!(c.recipient, RecipientSpec::Passphrase));
            if !typed_here {
                return Err(not_typed_here(name));
            }
        }
        for spec in &changes.add {
            if let RecipientSpec::Enrolled(enrolment) = &spec.recipient {
                admit_enrolment(&spec.name, enrolment, m.insecure_test_only_kdf)?;
            }
        }
        if !m.insecure_test_only_kdf {
            let secrets: Vec<String> = self
                .store
                .read()
                .secrets()?
                .into_iter()
                .map(|s| s.name)
                .collect();
            let fingerprint = m.fingerprint();
            let context: Vec<&str> = m
                .custodians
                .iter()
                .map(|c| c.name.as_str())
                .chain(changes.add.iter().map(|c| c.name.as_str()))
                .chain(secrets.iter().map(String::as_str))
                .chain([fingerprint.as_str(), m.vault_id.as_str()])
                .collect();
            check_passphrases_strength(&changes.new_passphrases, &context)?;
        }
        for spec in changes.add.drain(..) {
            validate_custodian_name(&spec.name)?;
            if next.iter().any(|c| c.name == spec.name) {
                return Err(VaultError::Custodian {
                    name: spec.name,
                    detail: "is already a custodian; pick another name".into(),
                });
            }
            let (recipient, kdf) = match spec.recipient {
                RecipientSpec::PublicKey(r) => (r, None),
                RecipientSpec::Enrolled(enrolment) => {
                    let (recipient, kdf) =
                        admit_enrolment(&spec.name, &enrolment, m.insecure_test_only_kdf)?;
                    (recipient, Some(kdf))
                }
                RecipientSpec::Passphrase => {
                    let pos = changes
                        .new_passphrases
                        .iter()
                        .position(|(n, _)| n == &spec.name)
                        .ok_or_else(|| VaultError::Custodian {
                            name: spec.name.clone(),
                            detail: "needs a passphrase; give --passphrase-file NAME=PATH or run on a terminal".into(),
                        })?;
                    let (_, passphrase) = changes.new_passphrases.swap_remove(pos);
                    let salt = crypto::random_bytes::<16>();
                    prompt.kdf_started(&spec.name);
                    let identity = params.derive_identity(&passphrase, &salt);
                    prompt.kdf_finished();
                    let text = identity
                        .map_err(VaultError::invalid)?
                        .recipient()
                        .expect("x25519 has a recipient");
                    (
                        CustodianRecipient::from_stored(RecipientKind::Passphrase, &text)
                            .map_err(VaultError::invalid)?,
                        Some(KdfSpec {
                            salt: hex::encode(salt),
                            params,
                        }),
                    )
                }
            };
            if let Some(twin) = next.iter().find(|c| c.recipient.text() == recipient.text()) {
                return Err(VaultError::Custodian {
                    name: spec.name,
                    detail: format!(
                        "has the same key as custodian {}; each custodian needs their own key",
                        twin.name
                    ),
                });
            }
            next.push(NextCustodian {
                name: spec.name,
                recipient,
                kdf,
            });
        }

        super::epoch::check_sealable(&next, "the rekey")?;
        quorum.reveal.clear();
        quorum.reason = format!("rekey: {}", quorum.reason);
        let session = self.gather_session(&mut quorum, prompt)?;
        let used = session.used.clone();
        let change = super::epoch::EpochChange {
            threshold,
            custodians: &next,
            alerts: changes.alerts.as_deref(),
            actor: &quorum.actor,
            reason: &quorum.reason,
            confirmed: &quorum.endorse,
        };
        let written = self.write_session(session, &quorum, Some(&change))?;
        Ok(RekeyReport {
            from_epoch: m.epoch,
            epoch: written.new_epoch.unwrap_or(m.epoch),
            threshold,
            custodians: next.into_iter().map(|c| c.name).collect(),
            quorum: used,
            warnings: written.warnings,
        })
    }
}
