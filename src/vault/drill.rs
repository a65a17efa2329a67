//! Drills: each custodian proves their share decrypts and matches its
//! commitment. Nothing is combined or revealed; every outcome is logged.

use serde::Serialize;

use super::records::ShareRecord;
use super::unseal::{check_share, derive, passphrase_custodian};
use super::{KdfProgress, Vault, VaultError};
use crate::audit::{self, NewEntry};
use crate::crypto::{self, CustodianIdentity, DecryptOutcome, Passphrase, SshKeyPassphrasePrompt};
use crate::manifest::CustodianEntry;

pub struct DrillRequest {
    pub actor: String,
    pub identities: Vec<(String, Vec<CustodianIdentity>)>,
    pub passphrases: Vec<(String, Passphrase)>,
    /// An exported envelope to test instead of the vault's copy.
    pub envelope: Option<(String, String)>,
    pub ssh_key_prompt: SshKeyPassphrasePrompt,
}

#[derive(Debug, Serialize)]
pub struct DrillOutcome {
    /// The custodian, or the key file when it matches no custodian.
    pub custodian: String,
    pub passed: bool,
    pub problem: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct DrillReport {
    pub ok: bool,
    pub results: Vec<DrillOutcome>,
}

impl Vault {
    pub fn drill(
        &mut self,
        request: DrillRequest,
        progress: &mut dyn KdfProgress,
    ) -> Result<DrillReport, VaultError> {
        if request.identities.is_empty() && request.passphrases.is_empty() {
            return Err(VaultError::invalid(
                "nothing to drill: give --identity FILE or --passphrase-file NAME=PATH for each custodian",
            ));
        }
        let manifest = self.manifest().clone();
        let mut results: Vec<DrillOutcome> = Vec::new();
        let mut drilled: Vec<String> = Vec::new();
        let mut record = |custodian: &str, problem: Option<String>| {
            results.push(DrillOutcome {
                custodian: custodian.to_string(),
                passed: problem.is_none(),
                problem,
            })
        };
        for (label, identities) in &request.identities {
            let mut matched = false;
            for identity in identities {
                let recipient = identity.recipient();
                let Some(custodian) = manifest
                    .custodians
                    .iter()
                    .find(|c| Some(&c.recipient) == recipient.as_ref())
                else {
                    continue;
                };
                matched = true;
                if drilled.contains(&custodian.name) {
                    continue;
                }
                drilled.push(custodian.name.clone());
                record(
                    &custodian.name,
                    self.drill_one(custodian, identity, &request).err(),
                );
            }
            if !matched {
                record(
                    label,
                    Some(format!(
                        "key file {label} matches no custodian of this vault"
                    )),
                );
            }
        }
        for (name, passphrase) in &request.passphrases {
            let custodian = passphrase_custodian(manifest.custodian(name), name)?;
            let problem = match derive(
                custodian,
                passphrase,
                manifest.insecure_test_only_kdf,
                progress,
            )? {
                None => Some("wrong passphrase".to_string()),
                Some(identity) => self.drill_one(custodian, &identity, &request).err(),
            };
            record(name, problem);
        }

        let entries = results
            .iter()
            .map(|r| {
                NewEntry::new(&request.actor, "drill", &r.custodian).details(serde_json::json!({
                    "outcome": if r.passed { "pass" } else { "fail" },
                    "problem": r.problem,
                    "epoch": manifest.epoch,
                    "envelope": request.envelope.as_ref().map(|(l, _)| l.as_str()).unwrap_or("vault copy"),
                }))
            })
            .collect();
        let tx = self.store.begin()?;
        audit::append(&tx, entries)?;
        tx.commit()?;
        Ok(DrillReport {
            ok: results.iter().all(|r| r.passed),
            results,
        })
    }

    /// Open this custodian's envelope and check its share; the share is dropped at once.
    fn drill_one(
        &self,
        custodian: &CustodianEntry,
        identity: &CustodianIdentity,
        request: &DrillRequest,
    ) -> Result<(), String> {
        let (label, text) = match &request.envelope {
            Some((label, text)) => (format!("envelope {label}"), text.clone()),
            None => (
                "the vault's envelope".to_string(),
                self.export_envelope(&custodian.name)
                    .map_err(|e| e.to_string())?,
            ),
        };
        let plaintext = match crypto::decrypt(text.as_bytes(), identity, request.ssh_key_prompt) {
            DecryptOutcome::Plaintext(p) => p,
            DecryptOutcome::NotMine => {
                return Err(format!(
                    "{label} is not sealed to {}'s key (wrong key or another custodian's envelope)",
                    custodian.name
                ))
            }
            DecryptOutcome::Failed(why) => return Err(format!("{label} is corrupted ({why})")),
        };
        let record = ShareRecord::decode(&plaintext)
            .ok_or_else(|| format!("{label} does not hold a breakglass share"))?;
        let m = self.manifest();
        check_share(
            m.vault_id_bytes().expect("verified manifest"),
            m.epoch,
            usize::from(m.threshold),
            custodian,
            record,
        )
        .map(drop)
        .map_err(|why| format!("{label}: {why}"))
    }
}
