//! Drills: each custodian proves their share decrypts and matches its
//! commitment. Nothing is revealed; every outcome is logged. A full drill
//! (K or more custodians) also combines the shares in memory, proves they
//! rebuild the manifest's key, and signs an audit checkpoint with it.

use serde::Serialize;

use super::hardware::{try_hardware_key, HardwareTry};
use super::records::ShareRecord;
use super::remote_drill::DrillProof;
use super::unseal::{
    ask_passphrase, check_share, derive, no_terminal_note, passphrase_custodian, plugin_pins, Asked,
};
use super::{UnsealPrompt, Vault, VaultError};
use crate::audit::{self, NewEntry};
use crate::crypto::{self, CustodianIdentity, DecryptOutcome, Passphrase, Share};
use crate::manifest::CustodianEntry;
use crate::remote::pins::{self, PinUse};

/// What a drill is given: who runs it and the custodians' keys or passphrases to test.
pub struct DrillRequest {
    /// Who runs the drill, as logged.
    pub actor: String,
    /// Identity files by label (usually the path), each holding one or more keys.
    pub identities: Vec<(String, Vec<CustodianIdentity>)>,
    /// Passphrases given by file, by custodian name.
    pub passphrases: Vec<(String, Passphrase)>,
    /// Passphrase custodians to ask for their passphrase (`--custodian NAME`),
    /// as unseal asks: through the prompt, a few tries each.
    pub ask: Vec<String>,
    /// An exported envelope to test instead of the vault's copy.
    pub envelope: Option<(String, String)>,
    /// Also combine the shares (K or more) and sign a checkpoint with the rebuilt key.
    pub full: bool,
    /// With `full`: the unendorsed items the user confirmed (see `Vault::unendorsed`).
    pub endorse: super::Unendorsed,
}

/// One custodian's drill result.
#[derive(Debug, Serialize)]
pub struct DrillOutcome {
    /// The custodian, or the key file when it matches no custodian.
    pub custodian: String,
    /// The custodian's envelope opened and its share checked against its commitment.
    pub passed: bool,
    /// Why it did not pass, in one line.
    pub problem: Option<String>,
    /// A passing drill's proof, logged with its row (so a copy's drill counts once merged).
    #[serde(skip)]
    proof: Option<DrillProof>,
}

/// The combining step of a full drill.
#[derive(Debug, Serialize)]
pub struct FullDrillOutcome {
    /// The shares combined into the vault key.
    pub passed: bool,
    /// Why the combining step failed, in one line.
    pub problem: Option<String>,
    /// The audit seq the new checkpoint signs, when the drill passed.
    pub signed_through: Option<u64>,
}

/// What a drill found, per custodian and (with `--full`) for the combining step.
#[derive(Debug, Serialize)]
pub struct DrillReport {
    /// Every part of the drill passed.
    pub ok: bool,
    /// One result per custodian tested.
    pub results: Vec<DrillOutcome>,
    /// Present for `--full`.
    pub full: Option<FullDrillOutcome>,
    /// The log head after a full drill, to keep outside the vault.
    pub anchor: Option<String>,
}

impl Vault {
    /// Tests that each given custodian can open their envelope (and, with `full`, that K shares rebuild the key); reveals nothing and keeps the epoch. Logged.
    pub fn drill(
        &mut self,
        request: DrillRequest,
        prompt: &mut dyn UnsealPrompt,
    ) -> Result<DrillReport, VaultError> {
        if request.identities.is_empty() && request.passphrases.is_empty() && request.ask.is_empty()
        {
            return Err(VaultError::invalid(
                "nothing to drill: give --identity FILE, --passphrase-file NAME=PATH or --custodian NAME for each custodian",
            ));
        }
        if request.full && request.envelope.is_some() {
            return Err(VaultError::invalid(
                "--full combines the vault's own envelopes; drop --envelope (drill an exported envelope on its own)",
            ));
        }
        let manifest = self.manifest().clone();
        // Every custodian to ask is checked, and a terminal found, before anything runs.
        for name in &request.ask {
            passphrase_custodian(manifest.custodian(name), name)?;
        }
        if !prompt.can_ask() {
            let names: Vec<&str> = request.ask.iter().map(String::as_str).collect();
            if let Some(note) = no_terminal_note(&names) {
                return Err(VaultError::Invalid(note));
            }
        }
        let mut results: Vec<DrillOutcome> = Vec::new();
        let mut drilled: Vec<String> = Vec::new();
        let mut shares: Vec<Share> = Vec::new();
        let vault_id = manifest.vault_id_bytes().expect("verified manifest");
        let mut record = |custodian: &str, outcome: Result<Share, String>| {
            let (problem, proof) = match outcome {
                Ok(share) => {
                    let key = crypto::ShareProofKey::derive(&vault_id, manifest.epoch, &share);
                    shares.push(share);
                    let proof =
                        DrillProof::local(&manifest.vault_id, manifest.epoch, custodian, &key);
                    (None, Some(proof))
                }
                Err(problem) => (Some(problem), None),
            };
            results.push(DrillOutcome {
                custodian: custodian.to_string(),
                passed: problem.is_none(),
                problem,
                proof,
            })
        };
        let pins = plugin_pins(&manifest.custodians, &request.passphrases);
        let pin_for = |name: &str| pins.iter().find(|(n, _)| *n == name).map(|(_, p)| *p);
        for (label, identities) in &request.identities {
            let mut matched = false;
            for identity in identities {
                let candidates: Vec<&CustodianEntry> = manifest
                    .custodians
                    .iter()
                    .filter(|c| identity.may_open(&c.kind, &c.recipient))
                    .collect();
                if identity.plugin_name().is_none() {
                    // An ordinary key matches one custodian by its public recipient.
                    let Some(custodian) = candidates.first() else {
                        continue;
                    };
                    matched = true;
                    if drilled.contains(&custodian.name) {
                        continue;
                    }
                    pin_custodian_key(custodian, &manifest.fingerprint())?;
                    drilled.push(custodian.name.clone());
                    let outcome = self.drill_one(custodian, identity, None, &request);
                    record(&custodian.name, outcome.into_result());
                    continue;
                }
                // A hardware key: tried on each envelope it may open (see `hardware`).
                let texts: Vec<(&CustodianEntry, String)> = candidates
                    .into_iter()
                    .filter(|c| !drilled.contains(&c.name))
                    .filter_map(|c| self.drill_envelope(c, &request).ok().map(|(_, t)| (c, t)))
                    .collect();
                let tries: Vec<(&CustodianEntry, &[u8])> =
                    texts.iter().map(|(c, t)| (*c, t.as_bytes())).collect();
                match try_hardware_key(identity, &tries, &pin_for) {
                    HardwareTry::Opened(custodian, plaintext) => {
                        matched = true;
                        pin_custodian_key(custodian, &manifest.fingerprint())?;
                        drilled.push(custodian.name.clone());
                        let outcome = self.check_drilled(custodian, &plaintext, &request);
                        record(&custodian.name, outcome);
                    }
                    HardwareTry::FailedOn(custodian, why) => {
                        matched = true;
                        drilled.push(custodian.name.clone());
                        record(&custodian.name, Err(why));
                    }
                    HardwareTry::KeyProblem(why) => {
                        matched = true;
                        record(
                            label,
                            Err(format!(
                                "key file {label}: the hardware key could not be used ({why})"
                            )),
                        );
                    }
                    HardwareTry::NoneMine => {}
                }
            }
            if !matched {
                record(
                    label,
                    Err(format!(
                        "key file {label} matches no custodian of this vault"
                    )),
                );
            }
        }
        for (name, passphrase) in &request.passphrases {
            if pin_for(name).is_some() {
                if !drilled.contains(name) {
                    return Err(VaultError::Custodian {
                        name: name.clone(),
                        detail: "holds a hardware key: --passphrase-file answers its PIN, and needs --identity FILE with the key's AGE-PLUGIN-… line".into(),
                    });
                }
                continue;
            }
            let custodian = passphrase_custodian(manifest.custodian(name), name)?;
            if drilled.contains(name) {
                // The same custodian twice must not count twice towards a full drill.
                continue;
            }
            drilled.push(name.clone());
            let outcome = match derive(
                custodian,
                passphrase,
                manifest.insecure_test_only_kdf,
                prompt,
            )? {
                None => Err("wrong passphrase".to_string()),
                Some(identity) => {
                    pin_custodian_key(custodian, &manifest.fingerprint())?;
                    self.drill_one(custodian, &identity, None, &request)
                        .into_result()
                }
            };
            record(name, outcome);
        }
        for name in &request.ask {
            let custodian = passphrase_custodian(manifest.custodian(name), name)?;
            if drilled.contains(name) {
                continue;
            }
            let outcome =
                match ask_passphrase(custodian, 0, manifest.insecure_test_only_kdf, prompt)? {
                    Asked::Skipped => {
                        return Err(VaultError::Custodian {
                            name: name.clone(),
                            detail: "no passphrase given; nothing was drilled".into(),
                        })
                    }
                    Asked::Wrong => Err("wrong passphrase".to_string()),
                    Asked::Identity(identity) => {
                        pin_custodian_key(custodian, &manifest.fingerprint())?;
                        self.drill_one(custodian, &identity, None, &request)
                            .into_result()
                    }
                };
            drilled.push(name.clone());
            record(name, outcome);
        }

        let entries = results
            .iter()
            .map(|r| {
                let mut details = serde_json::json!({
                    "outcome": if r.passed { "pass" } else { "fail" },
                    "problem": r.problem,
                    "epoch": manifest.epoch,
                    "envelope": request.envelope.as_ref().map(|(l, _)| l.as_str()).unwrap_or("vault copy"),
                });
                if let Some(proof) = &r.proof {
                    details["proof"] = proof.to_details();
                }
                NewEntry::new(&request.actor, "drill", &r.custodian).details(details)
            })
            .collect::<Vec<_>>();
        let mut full = None;
        let tx = self.store.begin()?;
        // The drill is of the epoch read at open; if another process moved the
        // vault on, its results (and a checkpoint under that key) would be wrong.
        Vault::require_epoch_in(&tx, &self.current)?;
        audit::append(&tx, entries)?;
        if request.full {
            let threshold = usize::from(manifest.threshold);
            let combined = if shares.len() < threshold {
                Err(format!(
                    "only {} of the {threshold} shares a full drill needs passed; bring {} more custodians",
                    shares.len(),
                    threshold - shares.len()
                ))
            } else {
                let refs: Vec<&Share> = shares.iter().collect();
                crypto::combine(&refs, threshold)
                    .map_err(|e| format!("the shares do not combine ({e})"))
                    .map(|seed| seed.derive_keys())
                    .and_then(|keys| {
                        if keys.verify_key().to_hex() == manifest.verify_key
                            && keys.recipient() == manifest.vault_recipient
                        {
                            Ok(keys)
                        } else {
                            Err("the shares rebuild a key that is not this vault's; the vault file may have been tampered with — restore it from a trusted copy".to_string())
                        }
                    })
            };
            let problem = combined.as_ref().err().cloned();
            audit::append(
                &tx,
                vec![NewEntry::new(&request.actor, "drill_full", &manifest.fingerprint())
                    .details(serde_json::json!({
                        "outcome": if problem.is_none() { "pass" } else { "fail" },
                        "problem": problem,
                        "epoch": manifest.epoch,
                        "custodians": results.iter().filter(|r| r.passed).map(|r| &r.custodian).collect::<Vec<_>>(),
                    }))],
            )?;
            let mut refused = None;
            if let Ok(keys) = &combined {
                refused = Vault::append_checkpoint(
                    &tx,
                    keys,
                    (&manifest.vault_id, &manifest.fingerprint()),
                    manifest.epoch,
                    &request.actor,
                    &request.endorse,
                )?;
            }
            let signed_through = match (&combined, &refused) {
                (Ok(_), None) => tx.read().audit_head()?.map(|(seq, _)| seq),
                _ => None,
            };
            // Shares that rebuild the key but a log that fails verification:
            // nothing was signed, and that is the drill's finding.
            let problem = problem.or(refused);
            full = Some(FullDrillOutcome {
                passed: problem.is_none(),
                problem,
                signed_through,
            });
        }
        tx.commit()?;
        let anchor = match &full {
            Some(_) => Some(self.audit_anchor()?),
            None => None,
        };
        Ok(DrillReport {
            ok: results.iter().all(|r| r.passed) && full.as_ref().is_none_or(|f| f.passed),
            results,
            full,
            anchor,
        })
    }

    /// Open this custodian's envelope and check its share (kept only for a full drill).
    /// The envelope a drill opens for `custodian`: `--envelope`'s, else the vault's.
    fn drill_envelope(
        &self,
        custodian: &CustodianEntry,
        request: &DrillRequest,
    ) -> Result<(String, String), String> {
        match &request.envelope {
            Some((label, text)) => Ok((format!("envelope {label}"), text.clone())),
            None => self
                .export_envelope(&custodian.name)
                .map(|text| ("the vault's envelope".to_string(), text))
                .map_err(|e| e.to_string()),
        }
    }

    /// Check an opened envelope's share against `custodian`'s commitment.
    fn check_drilled(
        &self,
        custodian: &CustodianEntry,
        plaintext: &[u8],
        request: &DrillRequest,
    ) -> Result<Share, String> {
        let label = match &request.envelope {
            Some((label, _)) => format!("envelope {label}"),
            None => "the vault's envelope".to_string(),
        };
        let record = ShareRecord::decode(plaintext)
            .ok_or_else(|| format!("{label} does not hold a breakglass share"))?;
        let m = self.manifest();
        check_share(
            m.vault_id_bytes().expect("verified manifest"),
            m.epoch,
            usize::from(m.threshold),
            custodian,
            record,
        )
        .map_err(|why| format!("{label}: {why}"))
    }

    fn drill_one(
        &self,
        custodian: &CustodianEntry,
        identity: &CustodianIdentity,
        pin: Option<&Passphrase>,
        request: &DrillRequest,
    ) -> Drilled {
        let (label, text) = match self.drill_envelope(custodian, request) {
            Ok(found) => found,
            Err(e) => return Drilled::Problem(e),
        };
        let plaintext = match crypto::decrypt_as(text.as_bytes(), identity, &custodian.name, pin) {
            DecryptOutcome::Plaintext(p) => p,
            DecryptOutcome::NotMine => {
                return Drilled::NotMine(format!(
                    "{label} is not sealed to {}'s key (wrong key or another custodian's envelope)",
                    custodian.name
                ))
            }
            DecryptOutcome::Failed(why) => {
                return Drilled::Problem(format!("{label} is corrupted ({why})"))
            }
            DecryptOutcome::KeyFailed(why) | DecryptOutcome::KeyUnavailable(why) => {
                return Drilled::Problem(format!("the hardware key could not be used ({why})"))
            }
        };
        match self.check_drilled(custodian, &plaintext, request) {
            Ok(share) => Drilled::Share(share),
            Err(why) => Drilled::Problem(why),
        }
    }
}

/// A custodian key drills only the vault fingerprint it is pinned to on this
/// machine (pinned on first use); another one is refused before anything runs.
fn pin_custodian_key(custodian: &CustodianEntry, fingerprint: &str) -> Result<(), VaultError> {
    pins::check_custodian(&custodian.recipient, fingerprint, PinUse::Drill)
        .map_err(|e| VaultError::invalid(format!("custodian {}: {e}", custodian.name)))
}

/// How drilling one custodian's envelope with one key ended.
enum Drilled {
    Share(Share),
    /// The envelope is not sealed to this key (a hardware key tries several).
    NotMine(String),
    Problem(String),
}

impl Drilled {
    fn into_result(self) -> Result<Share, String> {
        match self {
            Drilled::Share(share) => Ok(share),
            Drilled::NotMine(why) | Drilled::Problem(why) => Err(why),
        }
    }
}
