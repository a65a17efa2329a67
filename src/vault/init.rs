//! Creating a vault: seed, split, envelopes, signed manifest, first audit row.

use std::collections::HashSet;
use std::path::Path;

use super::records::ShareRecord;
use super::{KdfProgress, Vault, VaultError};
use crate::audit::{self, NewEntry};
use crate::crypto::{
    self, CustodianRecipient, KdfParams, Passphrase, RecipientKind, VaultSeed,
    KDF_TEST_ONLY_INSECURE,
};
use crate::manifest::{self, CustodianEntry, KdfSpec, Manifest, FORMAT_VERSION};
use crate::remote::enrol::{Enrolment, SALT_LEN};
use crate::store::{EnvelopeRow, Store};

/// Where a custodian's envelope is sealed to.
#[derive(Debug, Clone)]
pub enum RecipientSpec {
    /// A public recipient (age or SSH key, or an enrolment code's derived recipient).
    PublicKey(CustodianRecipient),
    /// The passphrase is typed (or read from a file) at this terminal.
    Passphrase,
    /// A passphrase custodian enrolled on their own machine (`custodian enroll`).
    Enrolled(Box<Enrolment>),
}

impl RecipientSpec {
    /// Parse `age1…`, `ssh-ed25519 …`, `ssh-rsa …`, `BGENR1:…` (an enrolment
    /// code), `@FILE` (holding a key or an enrolment code) or `passphrase`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text == "passphrase" {
            return Ok(RecipientSpec::Passphrase);
        }
        if is_code(text) {
            return Self::enrolment(text);
        }
        if let Some(path) = text.strip_prefix('@') {
            let contents = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read recipient file {path}: {e}"))?;
            // Mail quotes (`> `) are dropped: a code may arrive quoted and wrapped.
            let mut lines = contents
                .lines()
                .map(|l| l.trim().trim_start_matches(['>', ' ', '\t']))
                .skip_while(|l| l.is_empty() || l.starts_with('#'));
            let line = lines
                .next()
                .ok_or_else(|| format!("recipient file {path} holds no key"))?;
            if is_code(line) {
                // A code wrapped over several lines (by mail) is read whole.
                let rest: String = lines.take_while(|l| !l.is_empty()).collect();
                return Self::enrolment(&format!("{line}{rest}"))
                    .map_err(|e| format!("recipient file {path}: {e}"));
            }
            return CustodianRecipient::parse_public_key(line)
                .map(RecipientSpec::PublicKey)
                .map_err(|e| format!("recipient file {path}: {e}"));
        }
        CustodianRecipient::parse_public_key(text).map(RecipientSpec::PublicKey)
    }

    fn enrolment(code: &str) -> Result<Self, String> {
        Enrolment::parse(code)
            .map(|e| RecipientSpec::Enrolled(Box::new(e)))
            .map_err(|e| e.to_string())
    }
}

/// Every breakglass code starts `BG`; no key does. Any of them is read as an
/// enrolment code, so a request or approval code pasted here is named as such.
fn is_code(text: &str) -> bool {
    text.starts_with("BG")
}

/// A passphrase custodian enrolling on their own machine: check the passphrase's
/// strength (production KDF only), derive the recipient with Argon2id, and give
/// the public enrolment. Nothing is written; no vault is needed.
pub fn enrol(
    name: &str,
    passphrase: &Passphrase,
    insecure_test_only_kdf: bool,
    progress: &mut dyn KdfProgress,
) -> Result<Enrolment, VaultError> {
    validate_custodian_name(name)?;
    let custodian = |detail: String| VaultError::Custodian {
        name: name.into(),
        detail,
    };
    if passphrase.is_empty() {
        return Err(custodian("passphrase is empty".into()));
    }
    let params = if insecure_test_only_kdf {
        KDF_TEST_ONLY_INSECURE
    } else {
        crypto::check_passphrase_strength(passphrase, &[name])
            .map_err(|weak| custodian(weak.to_string()))?;
        KdfParams::DEFAULT
    };
    let salt = crypto::random_bytes::<SALT_LEN>();
    progress.kdf_started(name);
    let identity = params.derive_identity(passphrase, &salt);
    progress.kdf_finished();
    let text = identity
        .map_err(VaultError::invalid)?
        .recipient()
        .expect("x25519 identities have a recipient");
    let recipient = CustodianRecipient::from_stored(RecipientKind::Passphrase, &text)
        .map_err(VaultError::invalid)?;
    Ok(Enrolment::new(
        name,
        &recipient,
        &salt,
        params,
        insecure_test_only_kdf,
    ))
}

/// Admit an enrolment code given for custodian `name` (see [`Enrolment::admit`]).
pub(crate) fn admit_enrolment(
    name: &str,
    enrolment: &Enrolment,
    vault_is_test_only: bool,
) -> Result<(CustodianRecipient, KdfSpec), VaultError> {
    enrolment
        .admit(name, vault_is_test_only)
        .map_err(|e| VaultError::Custodian {
            name: name.into(),
            detail: e.to_string(),
        })
}

/// One custodian to create: a name and where their envelope goes.
#[derive(Debug)]
pub struct CustodianSpec {
    /// The custodian's name (validated by [`validate_custodian_name`]).
    pub name: String,
    /// Where the custodian's envelope is sealed to.
    pub recipient: RecipientSpec,
}

/// Everything `init` needs to create a vault.
#[derive(Debug)]
pub struct InitOptions {
    /// K: how many custodians are needed to open the vault (2 ≤ K ≤ N).
    pub threshold: usize,
    /// The N custodians, in index order.
    pub custodians: Vec<CustodianSpec>,
    /// Passphrases of the `passphrase` custodians, by name.
    pub passphrases: Vec<(String, Passphrase)>,
    /// Cheap Argon2id for the test suite only; flagged by `status`.
    pub insecure_test_only_kdf: bool,
    /// Where alerts go; signed into the manifest.
    pub alerts: Vec<crate::notify::AlertSink>,
}

/// Checks a custodian name is non-empty, short and of safe characters (it is printed and logged).
pub fn validate_custodian_name(name: &str) -> Result<(), VaultError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c));
    if ok {
        Ok(())
    } else {
        Err(VaultError::invalid(format!(
            "custodian name {name:?}: use 1-64 letters, digits and . _ - @"
        )))
    }
}

impl Vault {
    /// Create a new K-of-N vault at `path`. The file appears only when complete.
    pub fn create(
        path: &Path,
        options: InitOptions,
        actor: &str,
        progress: &mut dyn KdfProgress,
    ) -> Result<Vault, VaultError> {
        let InitOptions {
            threshold,
            custodians,
            mut passphrases,
            insecure_test_only_kdf,
            alerts,
        } = options;
        check_custodians(threshold, &custodians, &passphrases)?;
        for c in &custodians {
            if let RecipientSpec::Enrolled(enrolment) = &c.recipient {
                admit_enrolment(&c.name, enrolment, insecure_test_only_kdf)?;
            }
        }
        if !insecure_test_only_kdf {
            let names: Vec<&str> = custodians.iter().map(|c| c.name.as_str()).collect();
            check_passphrases_strength(&passphrases, &names)?;
        }
        if path.exists() {
            return Err(crate::store::StoreError::Exists {
                path: path.display().to_string(),
            }
            .into());
        }
        let kdf_params = if insecure_test_only_kdf {
            KDF_TEST_ONLY_INSECURE
        } else {
            KdfParams::DEFAULT
        };

        let seed = VaultSeed::generate();
        let keys = seed.derive_keys();
        let shares = crypto::split(&seed, threshold, custodians.len())
            .map_err(|e| VaultError::invalid(e.to_string()))?;
        let vault_id = crypto::random_bytes::<16>();
        let vault_id_hex = hex::encode(vault_id);
        let epoch = 1;

        let mut entries = Vec::with_capacity(custodians.len());
        let mut envelopes = Vec::with_capacity(custodians.len());
        for (spec, share) in custodians.iter().zip(shares) {
            let (recipient, kdf) = match &spec.recipient {
                RecipientSpec::PublicKey(r) => (r.clone(), None),
                RecipientSpec::Enrolled(enrolment) => {
                    let (recipient, kdf) =
                        admit_enrolment(&spec.name, enrolment, insecure_test_only_kdf)?;
                    (recipient, Some(kdf))
                }
                RecipientSpec::Passphrase => {
                    let pos = passphrases
                        .iter()
                        .position(|(n, _)| n == &spec.name)
                        .expect("checked by check_custodians");
                    let (_, passphrase) = passphrases.swap_remove(pos);
                    let salt = crypto::random_bytes::<16>();
                    progress.kdf_started(&spec.name);
                    let identity = kdf_params.derive_identity(&passphrase, &salt);
                    progress.kdf_finished();
                    let identity = identity.map_err(VaultError::invalid)?;
                    let text = identity
                        .recipient()
                        .expect("x25519 identities have a recipient");
                    let recipient =
                        CustodianRecipient::from_stored(RecipientKind::Passphrase, &text)
                            .map_err(VaultError::invalid)?;
                    (
                        recipient,
                        Some(KdfSpec {
                            salt: hex::encode(salt),
                            params: kdf_params,
                        }),
                    )
                }
            };
            let commitment = crypto::commitment(&vault_id, epoch, &share);
            let proof_key = crypto::ShareProofKey::derive(&vault_id, epoch, &share)
                .public_key()
                .to_hex();
            let index = share.index();
            let record = ShareRecord {
                vault_id,
                epoch,
                threshold: threshold as u8,
                index,
                custodian: spec.name.clone(),
                share,
            };
            let envelope = crypto::encrypt_armored(&recipient, &record.encode()).map_err(|e| {
                VaultError::Custodian {
                    name: spec.name.clone(),
                    detail: format!("cannot encrypt the envelope: {e}"),
                }
            })?;
            envelopes.push(EnvelopeRow {
                epoch,
                custodian: spec.name.clone(),
                share_index: index,
                envelope,
            });
            entries.push(CustodianEntry {
                name: spec.name.clone(),
                kind: recipient.kind().as_str().into(),
                recipient: recipient.text().into(),
                kdf,
                index,
                commitment,
                proof_key: Some(proof_key),
            });
        }
        check_distinct_recipients(&entries)?;

        let verify_key = keys.verify_key().to_hex();
        let signed = manifest::sign(
            Manifest {
                format: FORMAT_VERSION,
                vault_id: vault_id_hex,
                epoch,
                created: audit::now(),
                threshold: threshold as u8,
                custodians: entries,
                vault_recipient: keys.recipient(),
                verify_key: verify_key.clone(),
                genesis_verify_key: verify_key,
                insecure_test_only_kdf,
                alerts: alerts
                    .iter()
                    .map(|a| serde_json::to_value(a).expect("sink serializes"))
                    .collect(),
                prev_manifest_hash: None,
                audit_head: None,
                epoch_link: None,
            },
            &keys,
            None,
        );
        drop(keys);
        drop(seed);

        let mut store = Store::create(path)?;
        let written = (|| -> Result<(), VaultError> {
            let tx = store.begin()?;
            tx.insert_manifest(&signed.to_row())?;
            for envelope in &envelopes {
                tx.insert_envelope(envelope)?;
            }
            let m = &signed.manifest;
            audit::append(
                &tx,
                vec![
                    NewEntry::new(actor, "init", &m.fingerprint()).details(serde_json::json!({
                        "vault_id": m.vault_id,
                        "epoch": m.epoch,
                        "threshold": m.threshold,
                        "custodians": m.custodians.iter().map(|c| &c.name).collect::<Vec<_>>(),
                        "insecure_test_only_kdf": m.insecure_test_only_kdf,
                    })),
                ],
            )?;
            tx.commit()?;
            Ok(())
        })();
        if let Err(e) = written {
            store.discard();
            return Err(e);
        }
        let store = store.publish(path)?;
        let m = &signed.manifest;
        let pin_warning =
            crate::remote::pins::pin_new_vault(&m.vault_id, &m.fingerprint(), m.epoch, path);
        Ok(Vault {
            store,
            current: signed,
            warnings: pin_warning.into_iter().collect(),
        })
    }
}

fn check_custodians(
    threshold: usize,
    custodians: &[CustodianSpec],
    passphrases: &[(String, Passphrase)],
) -> Result<(), VaultError> {
    crate::crypto::check_threshold(threshold, custodians.len())
        .map_err(|e| VaultError::invalid(format!("--threshold {threshold}: {e}")))?;
    let mut names = HashSet::new();
    for c in custodians {
        validate_custodian_name(&c.name)?;
        if !names.insert(c.name.as_str()) {
            return Err(VaultError::Custodian {
                name: c.name.clone(),
                detail: "named twice; give each custodian a unique name".into(),
            });
        }
    }
    let mut given = HashSet::new();
    for (name, passphrase) in passphrases {
        let custodian = custodians.iter().find(|c| &c.name == name);
        match custodian {
            None => {
                return Err(VaultError::Custodian {
                    name: name.clone(),
                    detail: "has a passphrase but is not a --custodian".into(),
                })
            }
            Some(c) if !matches!(c.recipient, RecipientSpec::Passphrase) => {
                return Err(not_typed_here(name));
            }
            _ => {}
        }
        if !given.insert(name.as_str()) {
            return Err(VaultError::Custodian {
                name: name.clone(),
                detail: "passphrase given twice".into(),
            });
        }
        if passphrase.is_empty() {
            return Err(VaultError::Custodian {
                name: name.clone(),
                detail: "passphrase is empty".into(),
            });
        }
    }
    for c in custodians {
        if matches!(c.recipient, RecipientSpec::Passphrase) && !given.contains(c.name.as_str()) {
            return Err(VaultError::Custodian {
                name: c.name.clone(),
                detail: "needs a passphrase; give --passphrase-file NAME=PATH or run on a terminal"
                    .into(),
            });
        }
    }
    Ok(())
}

/// A `--passphrase-file` for a custodian whose passphrase is not typed here.
pub(crate) fn not_typed_here(name: &str) -> VaultError {
    VaultError::Custodian {
        name: name.into(),
        detail: "has a key or an enrolment code, not a passphrase typed here; drop its --passphrase-file".into(),
    }
}

/// Refuse a weak passphrase for a new passphrase custodian (production KDF only:
/// the derived recipient is stored, so the file alone allows offline guessing).
/// `context` holds words an attacker knows: custodian names, fingerprint, secret names.
pub(crate) fn check_passphrases_strength(
    passphrases: &[(String, Passphrase)],
    context: &[&str],
) -> Result<(), VaultError> {
    for (name, passphrase) in passphrases {
        crypto::check_passphrase_strength(passphrase, context).map_err(|weak| {
            VaultError::Custodian {
                name: name.clone(),
                detail: weak.to_string(),
            }
        })?;
    }
    Ok(())
}

fn check_distinct_recipients(entries: &[CustodianEntry]) -> Result<(), VaultError> {
    for (i, a) in entries.iter().enumerate() {
        if let Some(b) = entries[..i].iter().find(|b| b.recipient == a.recipient) {
            return Err(VaultError::Custodian {
                name: a.name.clone(),
                detail: format!(
                    "has the same key as custodian {}; each custodian needs their own key",
                    b.name
                ),
            });
        }
    }
    Ok(())
}
