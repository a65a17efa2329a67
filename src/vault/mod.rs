//! Domain operations on a vault. The sealed `Vault` can deposit, list and report;
//! reading a secret needs a quorum (`unseal`). Nothing here prints or prompts.

mod alerts;
mod checkpoint;
mod custodian;
mod drill;
mod epoch;
mod error;
mod hardware;
mod init;
pub(crate) mod records;
mod rekey;
pub(crate) mod remote;
mod remote_drill;
mod reports;
mod requests;
mod rotate;
mod unseal;

pub use alerts::{AlertRow, AlertsReport, FlushReport};
pub use checkpoint::{verify_export, MergeReport, Unendorsed, UnendorsedVersion};
pub use custodian::{check_request, Approval, ApproveInput, ApproverKey, CheckedRequest};
pub use drill::{DrillOutcome, DrillReport, DrillRequest, FullDrillOutcome};
pub use error::VaultError;
pub use init::{enrol, validate_custodian_name, CustodianSpec, InitOptions, RecipientSpec};
pub use records::SecretValue;
pub use rekey::{RekeyChanges, RekeyReport};
pub use remote::RequestIssued;
pub use remote_drill::{DrillChallengeIssued, DrillProof, ProofCheck};
pub use reports::{
    AuditLogReport, CopyComparison, CustodianInfo, CustodianListReport, ListReport, RunbookReport,
    SecretInfo, StatusReport,
};
pub use rotate::{
    AbandonOutcome, Charset, ExposedRequest, ExposedRotation, NewValue, RotateOutcome,
    RotateRequest, DEFAULT_LENGTH,
};
pub use unseal::{
    RemoteApprovals, Reveal, RevealMode, Revealed, UnsealPrompt, UnsealReport, UnsealRequest,
};

use std::path::Path;

use crate::audit::{self, NewEntry};
use crate::crypto::{self, CustodianRecipient};
use crate::manifest::{self, SignedManifest};
use crate::store::{Access, RunbookRow, SecretRow, Store, VersionRow};

/// Feedback hooks for slow Argon2id steps (the binary shows a spinner).
pub trait KdfProgress {
    /// Called before an Argon2id derivation for `custodian` starts.
    fn kdf_started(&mut self, _custodian: &str) {}
    /// Called when that derivation has finished.
    fn kdf_finished(&mut self) {}
}

/// No feedback (library callers, tests).
pub struct Quiet;
impl KdfProgress for Quiet {}

/// Kinds of secret a vault holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretKind {
    /// An account password.
    Password,
    /// A list of one-time MFA bypass codes (revealable one at a time).
    BypassCodes,
    /// Free text, such as runbook steps.
    Note,
}

impl SecretKind {
    /// The kind's name as stored and shown.
    pub fn as_str(&self) -> &'static str {
        match self {
            SecretKind::Password => "password",
            SecretKind::BypassCodes => "bypass-codes",
            SecretKind::Note => "note",
        }
    }

    /// Parses a kind's name; an error names the accepted ones.
    pub fn parse(text: &str) -> Result<Self, VaultError> {
        match text {
            "password" => Ok(SecretKind::Password),
            "bypass-codes" => Ok(SecretKind::BypassCodes),
            "note" => Ok(SecretKind::Note),
            other => Err(VaultError::invalid(format!(
                "kind {other}: unknown; use password, bypass-codes or note"
            ))),
        }
    }
}

/// The longest `--max-age` accepted: 10 years. Longer is a typo, or no policy at all.
pub const MAX_AGE_LIMIT_DAYS: u32 = 3650;

/// When a secret needs attention even if nobody used it.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// `status` flags the secret when its active version is older than this.
    pub max_age_days: Option<u32>,
    /// YYYY-MM-DD the credential stops working; `status` flags it two weeks ahead.
    pub expires: Option<String>,
}

impl Policy {
    /// Parse `--max-age 90d` (days or weeks) and `--expires YYYY-MM-DD`.
    pub fn parse(max_age: Option<&str>, expires: Option<&str>) -> Result<Self, VaultError> {
        let max_age_days = match max_age {
            None => None,
            Some(text) => {
                let t = text.trim();
                let (n, mult) = if let Some(n) = t.strip_suffix('d') {
                    (n, 1)
                } else if let Some(n) = t.strip_suffix('w') {
                    (n, 7)
                } else {
                    (t, 1)
                };
                let count = match n.parse::<u64>() {
                    Ok(d) if d > 0 => d,
                    // All digits but past u64: too long, caught just below.
                    Err(e) if *e.kind() == std::num::IntErrorKind::PosOverflow => u64::MAX,
                    _ => {
                        return Err(VaultError::invalid(format!(
                            "--max-age {text}: expected days like 90d (or weeks like 12w)"
                        )))
                    }
                };
                let days = count
                    .checked_mul(mult)
                    .filter(|d| *d <= u64::from(MAX_AGE_LIMIT_DAYS))
                    .ok_or_else(|| {
                        VaultError::invalid(format!(
                            "--max-age {text}: too long; the most is {MAX_AGE_LIMIT_DAYS}d (10 years), like 90d or 12w"
                        ))
                    })?;
                Some(u32::try_from(days).expect("bounded by MAX_AGE_LIMIT_DAYS"))
            }
        };
        let expires = match expires {
            None => None,
            Some(text) => Some(
                chrono::NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
                    .map_err(|_| {
                        VaultError::invalid(format!(
                            "--expires {text}: expected a date like 2027-03-31"
                        ))
                    })?
                    .format("%Y-%m-%d")
                    .to_string(),
            ),
        };
        Ok(Self {
            max_age_days,
            expires,
        })
    }
}

/// The single-use codes in a bypass-codes value: one per line or whitespace-separated.
pub(crate) fn split_codes(text: &str) -> Vec<&str> {
    text.split_whitespace().collect()
}

pub(crate) fn count_codes(value: &SecretValue) -> Result<usize, VaultError> {
    let n = std::str::from_utf8(value.expose_secret())
        .map(|t| split_codes(t).len())
        .unwrap_or(0);
    if n == 0 {
        return Err(VaultError::invalid(
            "a bypass-codes value needs at least one code (one per line)",
        ));
    }
    Ok(n)
}

/// A deposit: metadata in the clear, the value sealed to the vault recipient.
#[derive(Debug)]
pub struct Deposit {
    /// The secret's name (unique in the vault).
    pub name: String,
    /// What kind of secret it is.
    pub kind: SecretKind,
    /// The account name, stored in the clear.
    pub username: Option<String>,
    /// Where the secret is used, stored in the clear.
    pub url: Option<String>,
    /// A note, stored in the clear.
    pub note: Option<String>,
    /// The value, sealed to the vault recipient before it is stored.
    pub value: SecretValue,
    /// Rotation hook: run with each new value on its stdin (see `rotate`).
    pub apply: Option<String>,
    /// Rotation policy: generated length and charset, maximum age, expiry.
    pub policy: Policy,
    /// Set a built-in rotator with its config (`--rotator KIND
    /// --rotator-config FILE`, replacing any apply hook), or remove it
    /// (`--rotator none`). Stored as a rotation setting: endorsed like a hook.
    pub rotator: Option<crate::rotators::RotatorChange>,
}

/// An opened, verified, still sealed vault.
pub struct Vault {
    store: Store,
    current: SignedManifest,
    warnings: Vec<String>,
}

impl Vault {
    /// Open a vault and verify its manifest chain before anything else.
    pub fn open(path: &Path, access: Access) -> Result<Vault, VaultError> {
        let store = Store::open(path, access)?;
        let current = manifest::verify_chain(&store.read().manifests()?)?;
        let m = &current.manifest;
        let mut warnings = Vec::new();
        let (pin_check, pin_warning) =
            crate::remote::pins::check(&m.vault_id, &m.fingerprint(), m.epoch, path)
                .map_err(VaultError::Invalid)?;
        warnings.extend(pin_warning);
        match pin_check {
            crate::remote::pins::PinCheck::Fine => {}
            crate::remote::pins::PinCheck::Stale { seen } => warnings.push(format!(
                "STALE COPY: {} is at epoch {} but this machine has seen epoch {seen} of this vault; its shares may be dead and its log incomplete — use the newest copy",
                path.display(),
                m.epoch
            )),
            crate::remote::pins::PinCheck::Mismatch { pinned } => {
                return Err(VaultError::invalid(format!(
                    "{}: vault {} has fingerprint {} but this machine pinned it as {pinned}; the file may be forged — do not use it, compare with a trusted copy",
                    path.display(),
                    m.vault_id,
                    m.fingerprint()
                )))
            }
            crate::remote::pins::PinCheck::PathMismatch { pinned } => {
                return Err(VaultError::invalid(format!(
                    "{}: this file now holds vault {} but this machine pinned this path to vault {pinned}; it may have been replaced by another vault — do not deposit into it. If you replaced it on purpose, run `breakglass repin {pinned} {}`",
                    path.display(),
                    m.fingerprint(),
                    m.fingerprint()
                )))
            }
        }
        Ok(Vault {
            store,
            current,
            warnings,
        })
    }

    /// The deliberate re-pin after replacing the file at `path` on purpose: the
    /// path was pinned to `old` and the file (whose manifest chain verifies)
    /// must hold exactly `new`. Both fingerprints are named by the user.
    pub fn repin(path: &Path, old: &str, new: &str) -> Result<(), VaultError> {
        let store = Store::open(path, Access::ReadOnly)?;
        let current = manifest::verify_chain(&store.read().manifests()?)?;
        let actual = current.manifest.fingerprint();
        if actual != new {
            return Err(VaultError::invalid(format!(
                "{}: the file holds vault {actual}, not {new}; nothing was re-pinned",
                path.display()
            )));
        }
        crate::remote::pins::repin_path(path, old, new).map_err(VaultError::Invalid)
    }

    /// Refuse to go on unless this is the vault the user named (`--fingerprint`).
    pub fn require_fingerprint(&self, expected: &str) -> Result<(), VaultError> {
        let actual = self.fingerprint();
        if actual == expected.trim() {
            return Ok(());
        }
        Err(VaultError::invalid(format!(
            "{}: holds vault {actual}, but --fingerprint (or BREAKGLASS_FINGERPRINT) requires {}; nothing was done — check the --vault path",
            self.store.path().display(),
            expected.trim()
        )))
    }

    /// Loud warnings found on opening (a stale copy) or since (a pin that could
    /// not be recorded); the caller shows them.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The warnings not yet taken, so each is shown once.
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    /// The current epoch's manifest.
    pub fn manifest(&self) -> &manifest::Manifest {
        &self.current.manifest
    }

    /// The vault fingerprint (`BG-…`), fixed for the vault's life.
    pub fn fingerprint(&self) -> String {
        self.current.manifest.fingerprint()
    }

    fn vault_id(&self) -> [u8; 16] {
        self.current
            .manifest
            .vault_id_bytes()
            .expect("checked by verify_chain")
    }

    /// The manifest in force as the write transaction `tx` sees it. Writers
    /// seal to this, never to the one read at open: another process may have
    /// moved the vault to a new epoch in between. Re-verified only if it changed.
    pub(crate) fn manifest_in(
        tx: &crate::store::Tx<'_>,
        opened: &SignedManifest,
    ) -> Result<SignedManifest, VaultError> {
        let read = tx.read();
        if let Some(row) = read.latest_manifest()? {
            if row.epoch == opened.manifest.epoch
                && row.body == opened.body
                && row.signatures == opened.to_row().signatures
            {
                return Ok(opened.clone());
            }
        }
        let rows = read.manifests()?;
        // It changed. Only a signed continuation of the manifest this command
        // opened (and the pins checked) is accepted: never a spliced-in or
        // rolled-back chain, which would choose the key a value is sealed to.
        let now = manifest::verify_chain(&rows)?;
        let continues = now.manifest.fingerprint() == opened.manifest.fingerprint()
            && now.manifest.epoch >= opened.manifest.epoch
            && rows
                .get(opened.manifest.epoch as usize - 1)
                .is_some_and(|row| row.body == opened.body);
        if !continues {
            return Err(VaultError::invalid(format!(
                "the vault's manifests were replaced while this command ran (it was opened at epoch {} of vault {}); nothing was changed — the file may have been tampered with, check it with `breakglass status`",
                opened.manifest.epoch,
                opened.manifest.fingerprint()
            )));
        }
        Ok(now)
    }

    /// Take a manifest a write transaction read (see [`Vault::manifest_in`])
    /// as current after its commit, and remember a newer epoch in the pins.
    pub(crate) fn adopt_manifest(&mut self, current: SignedManifest) {
        if current.manifest.epoch > self.current.manifest.epoch {
            let m = &current.manifest;
            self.warnings.extend(crate::remote::pins::raise_epoch(
                &m.vault_id,
                &m.fingerprint(),
                m.epoch,
            ));
        }
        self.current = current;
    }

    /// For a quorum session holding `opened`'s keys: the vault must still be
    /// at that epoch inside `tx`, or the keys are dead and nothing may be
    /// written or revealed with them.
    pub(crate) fn require_epoch_in(
        tx: &crate::store::Tx<'_>,
        opened: &SignedManifest,
    ) -> Result<(), VaultError> {
        let now = Vault::manifest_in(tx, opened)?;
        if now.body == opened.body {
            return Ok(());
        }
        Err(VaultError::invalid(format!(
            "the vault moved from epoch {} to epoch {} while this command ran (another unseal or rekey); nothing was revealed or re-keyed (only this failure is logged) — run the command again with the new epoch's quorum",
            opened.manifest.epoch, now.manifest.epoch
        )))
    }

    /// Deposit a new version of a secret. No quorum: it is encrypted to the
    /// vault's public recipient.
    pub fn put(&mut self, deposit: Deposit, actor: &str) -> Result<u32, VaultError> {
        validate_secret_name(&deposit.name)?;
        let text =
            std::str::from_utf8(deposit.value.expose_secret()).map_err(|_| VaultError::Secret {
                name: deposit.name.clone(),
                detail: "value is not UTF-8 text; deposit text (passwords, codes, notes)".into(),
            })?;
        if text.trim().is_empty() {
            return Err(VaultError::Secret {
                name: deposit.name.clone(),
                detail: "value is empty; nothing was deposited".into(),
            });
        }
        let vault_id = self.vault_id();
        let tx = self.store.begin()?;
        // A deposit while a rotation of this secret runs would race its hook.
        rotate::refuse_while_pending(&tx.read(), &deposit.name, "nothing was deposited")?;
        // Seal to the key in force now, under the write lock.
        let current = Vault::manifest_in(&tx, &self.current)?;
        let recipient =
            CustodianRecipient::parse_vault_recipient(&current.manifest.vault_recipient)
                .map_err(VaultError::Invalid)?;
        let epoch = current.manifest.epoch;
        let existing = tx.read().secret(&deposit.name)?;
        if let Some(existing) = &existing {
            if existing.kind != deposit.kind.as_str() {
                return Err(VaultError::Secret {
                    name: deposit.name,
                    detail: format!(
                        "is a {} secret; deposit it with --kind {}",
                        existing.kind, existing.kind
                    ),
                });
            }
        }
        if let Some(change) = &deposit.rotator {
            if let Err(why) = change.check_secret_kind(deposit.kind.as_str()) {
                return Err(VaultError::Secret {
                    name: deposit.name,
                    detail: format!("{why}; nothing was deposited"),
                });
            }
        }
        let setting_rotator = deposit
            .rotator
            .as_ref()
            .is_some_and(|c| c.rotator().is_some());
        let keeps_rotator =
            deposit.rotator.is_none() && tx.read().rotation(&deposit.name)?.rotator.is_some();
        if deposit.apply.is_some() && (setting_rotator || keeps_rotator) {
            return Err(VaultError::Secret {
                name: deposit.name,
                detail: "has a rotator: a secret is rotated by a hook or a rotator, not both — remove the rotator with --rotator none, or drop --apply; nothing was deposited".into(),
            });
        }
        let version = tx.read().latest_version_number(&deposit.name)? + 1;
        let plaintext = records::encode_secret(&vault_id, &deposit.name, version, &deposit.value);
        let ciphertext =
            crypto::encrypt_armored(&recipient, &plaintext).map_err(VaultError::Invalid)?;
        let now = audit::now();
        let keep = |new: Option<String>, old: Option<&Option<String>>| {
            new.or_else(|| old.cloned().flatten())
        };
        tx.upsert_secret(&SecretRow {
            name: deposit.name.clone(),
            kind: deposit.kind.as_str().into(),
            username: keep(deposit.username, existing.as_ref().map(|e| &e.username)),
            url: keep(deposit.url, existing.as_ref().map(|e| &e.url)),
            note: keep(deposit.note, existing.as_ref().map(|e| &e.note)),
            created: now.clone(),
        })?;
        tx.update_rotation(
            &deposit.name,
            &crate::store::RotationRow {
                apply_cmd: deposit.apply.clone(),
                max_age_days: deposit.policy.max_age_days,
                expires: deposit.policy.expires.clone(),
                ..Default::default()
            },
        )?;
        if let Some(change) = &deposit.rotator {
            tx.set_rotator(&deposit.name, change.setting().as_ref())?;
        }
        if deposit.kind == SecretKind::BypassCodes {
            tx.set_code_count(&deposit.name, version, count_codes(&deposit.value)?)?;
        }
        tx.insert_active_version(&VersionRow {
            secret: deposit.name.clone(),
            version,
            epoch,
            ciphertext: ciphertext.clone(),
            state: "active".into(),
            depositor: actor.into(),
            created: now,
        })?;
        audit::append(
            &tx,
            vec![
                NewEntry::new(actor, "put", &deposit.name).details(serde_json::json!({
                    "version": version,
                    "kind": deposit.kind.as_str(),
                    "ciphertext_sha256": hex::encode(crypto::sha256(&[ciphertext.as_bytes()])),
                    "rotator": deposit.rotator.as_ref().and_then(|c| c.rotator()).map(|r| r.kind().as_str()),
                    "rotator_config": deposit.rotator.as_ref().and_then(|c| c.rotator()).map(|r| r.canonical_config()),
                    "rotator_removed": matches!(deposit.rotator, Some(crate::rotators::RotatorChange::Remove)),
                })),
            ],
        )?;
        tx.commit()?;
        self.adopt_manifest(current);
        Ok(version)
    }

    /// Replaces the runbook text (stored in the clear, readable without a quorum). Logged.
    pub fn set_runbook(&mut self, text: &str, actor: &str) -> Result<(), VaultError> {
        if text.trim().is_empty() {
            return Err(VaultError::invalid(
                "runbook text is empty; give the procedure with --file PATH or on stdin",
            ));
        }
        let tx = self.store.begin()?;
        tx.set_runbook(&RunbookRow {
            text: text.to_string(),
            updated: audit::now(),
            updated_by: actor.into(),
        })?;
        audit::append(
            &tx,
            vec![
                NewEntry::new(actor, "runbook_set", "runbook").details(serde_json::json!({
                    "bytes": text.len(),
                    "sha256": hex::encode(crypto::sha256(&[text.as_bytes()])),
                })),
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// A custodian's envelope for the current epoch: a standard armored age file.
    pub fn export_envelope(&self, custodian: &str) -> Result<String, VaultError> {
        if self.current.manifest.custodian(custodian).is_none() {
            return Err(VaultError::Custodian {
                name: custodian.into(),
                detail: "no such custodian; run `breakglass custodian list`".into(),
            });
        }
        self.store
            .read()
            .envelopes(self.current.manifest.epoch)?
            .into_iter()
            .find(|e| e.custodian == custodian)
            .map(|e| e.envelope)
            .ok_or_else(|| VaultError::Custodian {
                name: custodian.into(),
                detail:
                    "the vault holds no envelope for this custodian; restore the vault from a copy"
                        .into(),
            })
    }
}

fn validate_secret_name(name: &str) -> Result<(), VaultError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/@:".contains(c));
    if ok {
        Ok(())
    } else {
        Err(VaultError::invalid(format!(
            "secret name {name:?}: use 1-128 letters, digits and . _ - / @ :"
        )))
    }
}

/// "user@host" for the audit log's actor and requester fields.
pub fn current_actor() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| !u.is_empty())
        .or_else(user_from_uid)
        .unwrap_or_else(|| "unknown".into());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown-host".into());
    format!("{user}@{host}")
}

/// The login name for this process's real uid, from /proc and /etc/passwd.
fn user_from_uid() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .to_string();
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.len() > 2 && fields[2] == uid).then(|| fields[0].to_string())
    })
}
