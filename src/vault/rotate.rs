//! Rotation without a quorum, in two phases so nothing is lost: the new version
//! is stored `pending`, the apply hook runs with the value on its stdin, and only
//! if it exits 0 does the new version become `active` (the old one `superseded`).
//! A failed hook leaves the old version active and the new one `failed`.
//!
//! One rotation at a time per secret: while a version is `pending`, another
//! `rotate` (or `put`) of that secret is refused under the write lock, and only
//! the newest version, still `pending`, can become `active`. A rotation left
//! `pending` by a crash is settled with `rotate NAME --abandon`.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::records::{self, SecretValue};
use super::{count_codes, Policy, SecretKind, Vault, VaultError};
use crate::audit::{self, NewEntry};
use crate::crypto::{self, CustodianRecipient};
use crate::store::{Reader, RotationRow, VersionRow};

/// How long an apply hook may run before it is killed and the rotation fails.
pub const HOOK_TIMEOUT: Duration = Duration::from_secs(300);
/// A `pending` version older than this was certainly interrupted: a running
/// rotation kills its hook at [`HOOK_TIMEOUT`] and settles within seconds.
pub const INTERRUPTED_AFTER: Duration = Duration::from_secs(HOOK_TIMEOUT.as_secs() + 60);
/// Length of a generated password when none is set.
pub const DEFAULT_LENGTH: usize = 24;

/// Alphabets for generated passwords.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Charset {
    /// Letters and digits.
    Alnum,
    /// Letters, digits and shell-safe punctuation.
    AlnumSymbols,
    /// Lowercase hex digits.
    Hex,
    /// Decimal digits only (for PINs).
    Digits,
}

impl Charset {
    /// The charset's name as stored and given on the command line.
    pub fn as_str(&self) -> &'static str {
        match self {
            Charset::Alnum => "alnum",
            Charset::AlnumSymbols => "alnum-symbols",
            Charset::Hex => "hex",
            Charset::Digits => "digits",
        }
    }

    /// Parses a charset name; `None` if unknown.
    pub fn parse(text: &str) -> Option<Self> {
        [Self::Alnum, Self::AlnumSymbols, Self::Hex, Self::Digits]
            .into_iter()
            .find(|c| c.as_str() == text)
    }

    fn alphabet(&self) -> &'static [u8] {
        match self {
            Charset::Alnum => b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
            Charset::AlnumSymbols => {
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#%+-.:=?@^_~"
            }
            Charset::Hex => b"0123456789abcdef",
            Charset::Digits => b"0123456789",
        }
    }
}

/// Where the new value comes from.
pub enum NewValue {
    /// A value the user gave (file, stdin or prompt).
    Given(SecretValue),
    /// Generate a random password.
    Generate {
        /// Characters to generate.
        length: usize,
        /// Alphabet to draw them from.
        charset: Charset,
    },
}

/// What `rotate` is asked to do.
pub struct RotateRequest {
    /// The secret to rotate.
    pub name: String,
    /// Where the new value comes from.
    pub value: NewValue,
    /// Set (and keep) this secret's apply hook.
    pub apply: Option<String>,
    /// Set (and keep) the rotation policy.
    pub policy: Policy,
    /// Who rotates, as logged.
    pub actor: String,
    /// Run a stored hook no checkpoint endorsed (the user saw it and agreed).
    pub trust_hook: bool,
    /// The stored hook the user was shown and confirmed: it runs only if the
    /// stored hook is still exactly this.
    pub confirmed_hook: Option<String>,
}

/// What one rotation did.
#[derive(Debug, Serialize)]
pub struct RotateOutcome {
    /// The secret rotated.
    pub name: String,
    /// The new version.
    pub version: u32,
    /// The vault (and epoch) the new version is sealed to.
    pub fingerprint: String,
    /// The epoch the new version is sealed to.
    pub epoch: u64,
    /// The apply hook's exit code, if a hook ran (`None` when there was none or it was killed).
    pub hook_exit: Option<i32>,
    /// The new version's state: `active`, `pending` or `failed`.
    pub state: String,
}

/// What `rotate NAME --abandon` settled.
#[derive(Debug, Serialize)]
pub struct AbandonOutcome {
    /// The secret whose rotation was abandoned.
    pub name: String,
    /// The pending version now kept as `failed`.
    pub version: u32,
    /// Who started that rotation, and when.
    pub started_by: String,
    /// When it started (RFC 3339, UTC).
    pub started_at: String,
    /// The version that stays active (unchanged), if any.
    pub active_version: Option<u32>,
    /// The abandoned version's state (`failed`).
    pub state: String,
}

/// What `rotate --exposed` did.
#[derive(Debug, Serialize)]
pub struct ExposedRotation {
    /// Secrets rotated, one outcome each.
    pub rotated: Vec<RotateOutcome>,
    /// Errors of rotations that failed, one line each.
    pub failed: Vec<String>,
    /// Exposed secrets that need a person: no hook or no generator to rotate them automatically.
    pub needs_human: Vec<String>,
}

impl Vault {
    /// Stores a new version of a secret (given or generated), runs its apply hook if any, and logs the rotation. No quorum needed.
    pub fn rotate(&mut self, request: RotateRequest) -> Result<RotateOutcome, VaultError> {
        let name = request.name.clone();
        let meta = self
            .store
            .read()
            .secret(&name)?
            .ok_or_else(|| VaultError::UnknownSecret(name.clone()))?;
        let kind = SecretKind::parse(&meta.kind)?;
        // Early and friendly; the check that counts is under the write lock.
        self.refuse_while_rotating(&name, "nothing was rotated")?;
        let generator = match &request.value {
            NewValue::Generate { length, charset } => {
                (Some(*length as u32), Some(charset.as_str().to_string()))
            }
            NewValue::Given(_) => (None, None),
        };
        let settings = RotationRow {
            apply_cmd: request.apply.clone(),
            gen_length: generator.0,
            gen_charset: generator.1,
            max_age_days: request.policy.max_age_days,
            expires: request.policy.expires.clone(),
        };
        let value = match request.value {
            NewValue::Given(v) => v,
            NewValue::Generate { length, charset } => {
                if kind != SecretKind::Password {
                    return Err(VaultError::Secret {
                        name,
                        detail: format!("is a {} secret; --generate makes passwords only — give the new value with --file or stdin", meta.kind),
                    });
                }
                if !(12..=256).contains(&length) {
                    return Err(VaultError::invalid(format!(
                        "--length {length}: choose 12 to 256"
                    )));
                }
                SecretValue::new(
                    crypto::random_string(length, charset.alphabet())
                        .as_bytes()
                        .to_vec(),
                )
            }
        };
        if std::str::from_utf8(value.expose_secret()).map_or(true, |t| t.trim().is_empty()) {
            return Err(VaultError::Secret {
                name,
                detail: "new value is empty or not UTF-8 text; nothing was rotated".into(),
            });
        }
        // A hook from the user's own command line runs; a stored one only if a
        // quorum endorsed it, or the user saw it and passed --trust-hook.
        let hook = match &request.apply {
            Some(cmd) => Some(cmd.clone()),
            // No stored hook: nothing runs, and the log need not be read.
            None => match self.store.read().rotation(&name)?.apply_cmd {
                None => None,
                Some(stored) => {
                    let endorsed = self.endorsed_settings(&name)?.apply_cmd;
                    if endorsed.as_ref() == Some(&stored) {
                        // The endorsed hook, from the signed checkpoint itself.
                        endorsed
                    } else if request.trust_hook
                        || request.confirmed_hook.as_deref() == Some(stored.as_str())
                    {
                        // Exactly the command the user was shown and confirmed
                        // (or whatever is stored, with --trust-hook): never a
                        // row swapped in between the question and the answer.
                        self.log_trusted_hook(&name, &stored, &request.actor)?;
                        Some(stored)
                    } else {
                        let when = if request.confirmed_hook.is_some() {
                            "it changed after you confirmed it"
                        } else {
                            "no quorum endorsed it"
                        };
                        return Err(VaultError::Secret {
                            name,
                            detail: format!(
                                "its stored apply hook was set or changed after the last signed checkpoint, and {when}: `{stored}` — read it; if it is yours, rotate again with --trust-hook (or give the hook with --apply CMD); nothing was rotated"
                            ),
                        });
                    }
                }
            },
        };

        // Phase 1: the new version, pending (refused while another is pending).
        let version = self.store_pending(&name, &value, &settings, &request.actor, kind)?;

        // Phase 2: apply it where it lives.
        let (hook_exit, hook_error) = match &hook {
            None => (None, None),
            // The hook's output is never echoed: it may hold the new value.
            Some(cmd) => match run_hook(cmd, &name, meta.username.as_deref(), &value) {
                Ok(HookExit::Code(0)) => (Some(0), None),
                Ok(HookExit::Code(code)) => (
                    Some(code),
                    Some(format!(
                        "apply hook exited {code} (its output is not shown, as it may hold the value; see the hook's own log)"
                    )),
                ),
                Ok(HookExit::Signal(signal)) => (
                    None,
                    Some(format!(
                        "apply hook was killed by signal {signal} (see the hook's own log)"
                    )),
                ),
                Err(why) => (None, Some(why)),
            },
        };

        // Phase 3: promote or keep as failed, under the write lock. Only the
        // newest version, still pending, may become active: a rotation that was
        // abandoned meanwhile, or overtaken by a newer version, is not.
        let recorded = (|| -> Result<_, VaultError> {
            let tx = self.store.begin()?;
            let current = Vault::manifest_in(&tx, &self.current)?;
            let versions = tx.read().versions_of(&name)?;
            let mine = versions.iter().find(|v| v.version == version);
            let still_pending = mine.is_some_and(|v| v.state == "pending");
            let newest = versions.iter().map(|v| v.version).max().unwrap_or(version);
            let blocked = match mine {
                None => Some(format!("version {version} is gone from the vault file")),
                Some(v) if v.state == "failed" => Some(format!(
                    "it was settled as failed meanwhile (`breakglass rotate {name} --abandon`)"
                )),
                Some(v) if v.state != "pending" => Some(format!("it is {} now", v.state)),
                Some(_) if newest != version => Some(format!("version {newest} is newer")),
                Some(_) => None,
            };
            let sealed_epoch = mine.map_or(current.manifest.epoch, |v| v.epoch);
            let problem = match (&hook_error, &blocked) {
                (None, None) => None,
                (Some(_), _) => Some("apply hook failed".to_string()),
                (None, Some(why)) => Some(format!("not made active: {why}")),
            };
            let outcome = match &problem {
                None => {
                    tx.activate_version(&name, version)?;
                    tx.clear_exposure(&name)?;
                    audit::append(
                        &tx,
                        vec![NewEntry::new(&request.actor, "rotate", &name).details(
                            serde_json::json!({ "version": version, "hook_exit": hook_exit }),
                        )],
                    )?;
                    "active"
                }
                Some(problem) => {
                    if still_pending {
                        tx.set_version_state(&name, version, "failed")?;
                    }
                    audit::append(
                        &tx,
                        vec![NewEntry::new(&request.actor, "rotate_failed", &name)
                            .details(serde_json::json!({ "version": version, "hook_exit": hook_exit, "problem": problem }))],
                    )?;
                    "failed"
                }
            };
            tx.commit()?;
            Ok((current, versions, blocked, sealed_epoch, outcome))
        })();
        // The hook already ran: a failure to record the outcome must say what
        // the target now holds and how to settle it, not just "retry".
        let (current, versions, blocked, sealed_epoch, outcome) = recorded.map_err(|e| {
            let applied = match (&hook, &hook_error) {
                (Some(_), None) => format!("the apply hook exited 0, so the target system now holds version {version}'s value"),
                (Some(_), Some(_)) => "the apply hook failed".to_string(),
                (None, _) => "no apply hook ran".to_string(),
            };
            VaultError::Secret {
                name: name.clone(),
                detail: format!(
                    "{applied}, but the vault could not record the outcome ({e}); version {version} stays pending and the old version active — settle it with `breakglass rotate {name} --abandon`, then rotate again so the vault and the target agree"
                ),
            }
        })?;
        self.adopt_manifest(current);
        if let Some(why) = hook_error {
            return Err(VaultError::Secret {
                name,
                detail: format!("{why}; version {version} kept as failed and the old version stays active — fix the hook and rotate again"),
            });
        }
        if let Some(why) = blocked {
            let stays = versions
                .iter()
                .find(|v| v.state == "active")
                .map_or("no version is active".to_string(), |v| {
                    format!("version {} stays active", v.version)
                });
            let applied = match &hook {
                Some(_) => format!(
                    "the apply hook exited 0, so the target system may now hold version {version}'s value"
                ),
                None => "no apply hook ran".to_string(),
            };
            return Err(VaultError::Secret {
                name: name.clone(),
                detail: format!(
                    "version {version} was not made active: {why}; {stays}, and {applied} — rotate {name} again so the vault and the target agree"
                ),
            });
        }
        Ok(RotateOutcome {
            name,
            version,
            fingerprint: self.fingerprint(),
            epoch: sealed_epoch,
            hook_exit,
            state: outcome.into(),
        })
    }

    fn store_pending(
        &mut self,
        name: &str,
        value: &SecretValue,
        settings: &RotationRow,
        actor: &str,
        kind: SecretKind,
    ) -> Result<u32, VaultError> {
        let vault_id = self.vault_id();
        let tx = self.store.begin()?;
        // One rotation at a time, checked under the write lock: of two
        // processes, the second sees the first's pending version.
        refuse_while_pending(&tx.read(), name, "nothing was rotated")?;
        // Seal to the key in force now, under the write lock.
        let current = Vault::manifest_in(&tx, &self.current)?;
        let recipient = CustodianRecipient::parse_public_key(&current.manifest.vault_recipient)
            .map_err(VaultError::Invalid)?;
        let epoch = current.manifest.epoch;
        let version = tx.read().latest_version_number(name)? + 1;
        let plaintext = records::encode_secret(&vault_id, name, version, value);
        let ciphertext =
            crypto::encrypt_armored(&recipient, &plaintext).map_err(VaultError::invalid)?;
        tx.insert_version(&VersionRow {
            secret: name.into(),
            version,
            epoch,
            ciphertext: ciphertext.clone(),
            state: "pending".into(),
            depositor: actor.into(),
            created: audit::now(),
        })?;
        tx.update_rotation(name, settings)?;
        if kind == SecretKind::BypassCodes {
            tx.set_code_count(name, version, count_codes(value)?)?;
        }
        audit::append(
            &tx,
            vec![
                NewEntry::new(actor, "rotate_started", name).details(serde_json::json!({
                    "version": version,
                    "kind": kind.as_str(),
                    "ciphertext_sha256": hex::encode(crypto::sha256(&[ciphertext.as_bytes()])),
                })),
            ],
        )?;
        tx.commit()?;
        self.adopt_manifest(current);
        Ok(version)
    }

    /// Settle a rotation left `pending` (by a crash or a kill): the pending
    /// version is kept as `failed`, the active version is unchanged, and the
    /// audit log says so, in one transaction. Nothing pending is an error.
    pub fn abandon_rotation(
        &mut self,
        name: &str,
        actor: &str,
    ) -> Result<AbandonOutcome, VaultError> {
        let tx = self.store.begin()?;
        if tx.read().secret(name)?.is_none() {
            return Err(VaultError::UnknownSecret(name.into()));
        }
        let versions = tx.read().versions_of(name)?;
        let pending: Vec<&VersionRow> = versions.iter().filter(|v| v.state == "pending").collect();
        let Some(newest) = pending.last() else {
            return Err(VaultError::Secret {
                name: name.into(),
                detail: "has no pending rotation to abandon; nothing was changed — `breakglass status` lists interrupted rotations".into(),
            });
        };
        for v in &pending {
            tx.set_version_state(name, v.version, "failed")?;
        }
        let active_version = versions
            .iter()
            .find(|v| v.state == "active")
            .map(|v| v.version);
        audit::append(
            &tx,
            vec![
                NewEntry::new(actor, "rotation_abandoned", name).details(serde_json::json!({
                    "version": newest.version,
                    "versions": pending.iter().map(|v| v.version).collect::<Vec<_>>(),
                    "started_by": newest.depositor,
                    "started_at": newest.created,
                    "active_version": active_version,
                })),
            ],
        )?;
        tx.commit()?;
        Ok(AbandonOutcome {
            name: name.into(),
            version: newest.version,
            started_by: newest.depositor.clone(),
            started_at: newest.created.clone(),
            active_version,
            state: "failed".into(),
        })
    }

    /// Refuse early (before a value is asked for) while a rotation of `name`
    /// is pending. Advisory: `rotate` and `put` check again under the write lock.
    pub fn refuse_while_rotating(&self, name: &str, nothing: &str) -> Result<(), VaultError> {
        refuse_while_pending(&self.store.read(), name, nothing)
    }

    /// The secrets `rotate --exposed` would rotate.
    pub fn exposed_names(&self) -> Result<Vec<String>, VaultError> {
        Ok(self
            .store
            .read()
            .exposures()?
            .into_iter()
            .map(|e| e.secret)
            .collect())
    }

    /// The stored apply hook of `name` when no checkpoint endorsed it as it is.
    /// With no stored hook there is nothing to check, and the log is not read.
    pub fn untrusted_hook(&self, name: &str) -> Result<Option<String>, VaultError> {
        let Some(stored) = self.store.read().rotation(name)?.apply_cmd else {
            return Ok(None);
        };
        let endorsed = self.endorsed_settings(name)?.apply_cmd;
        Ok((Some(&stored) != endorsed.as_ref()).then_some(stored))
    }

    /// The user chose to run an unendorsed stored hook: log it (and so alert).
    fn log_trusted_hook(&mut self, name: &str, cmd: &str, actor: &str) -> Result<(), VaultError> {
        let tx = self.store.begin()?;
        audit::append(
            &tx,
            vec![NewEntry::new(actor, "hook_trusted", name)
                .details(serde_json::json!({ "apply_cmd": cmd, "why": "--trust-hook" }))],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Rotate every exposed secret that has a generator or a hook; list the rest.
    /// Only endorsed generator settings shape the new password (else the default).
    pub fn rotate_exposed(
        &mut self,
        actor: &str,
        trust_hook: bool,
        confirmed_hooks: &[(String, String)],
    ) -> Result<ExposedRotation, VaultError> {
        let mut report = ExposedRotation {
            rotated: Vec::new(),
            failed: Vec::new(),
            needs_human: Vec::new(),
        };
        for exposure in self.store.read().exposures()? {
            let name = exposure.secret;
            let settings = self.store.read().rotation(&name)?;
            let kind = self.store.read().secret(&name)?.map(|s| s.kind);
            let automatic = kind.as_deref() == Some("password")
                && (settings.apply_cmd.is_some() || settings.gen_length.is_some());
            if !automatic {
                report.needs_human.push(name);
                continue;
            }
            let endorsed = self.endorsed_settings(&name)?;
            let length = endorsed.gen_length.map_or(DEFAULT_LENGTH, |l| l as usize);
            let charset = endorsed
                .gen_charset
                .as_deref()
                .and_then(Charset::parse)
                .unwrap_or(Charset::Alnum);
            match self.rotate(RotateRequest {
                name: name.clone(),
                value: NewValue::Generate { length, charset },
                apply: None,
                policy: Policy::default(),
                actor: actor.into(),
                trust_hook,
                confirmed_hook: confirmed_hooks
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, cmd)| cmd.clone()),
            }) {
                Ok(outcome) => report.rotated.push(outcome),
                Err(e) => report.failed.push(e.to_string()),
            }
        }
        Ok(report)
    }
}

/// Whether a `pending` version is older than any running rotation can be.
pub(crate) fn certainly_interrupted(pending: &VersionRow) -> bool {
    chrono::DateTime::parse_from_rfc3339(&pending.created)
        .map(|t| {
            (chrono::Utc::now() - t.with_timezone(&chrono::Utc))
                .to_std()
                .is_ok_and(|age| age > INTERRUPTED_AFTER)
        })
        .unwrap_or(false)
}

/// Refuse a new version of `name` while a rotation of it is `pending`. Called
/// inside the write transaction that would add the version, so two processes
/// cannot both pass. `nothing` says what was not done.
pub(crate) fn refuse_while_pending(
    read: &Reader<'_>,
    name: &str,
    nothing: &str,
) -> Result<(), VaultError> {
    let versions = read.versions_of(name)?;
    let Some(pending) = versions.iter().rev().find(|v| v.state == "pending") else {
        return Ok(());
    };
    let detail = if certainly_interrupted(pending) {
        format!(
            "a rotation to version {} started by {} at {} was interrupted (it is older than any rotation runs); settle it with `breakglass rotate {name} --abandon`, then try again; {nothing}",
            pending.version, pending.depositor, pending.created
        )
    } else {
        format!(
            "a rotation to version {} started by {} at {} is still in progress (pending); wait for it to finish and try again, or if that command was interrupted (killed or crashed), settle it with `breakglass rotate {name} --abandon`; {nothing}",
            pending.version, pending.depositor, pending.created
        )
    };
    Err(VaultError::Secret {
        name: name.into(),
        detail,
    })
}

/// How an apply hook ended.
enum HookExit {
    Code(i32),
    Signal(i32),
}

/// Run `sh -c CMD` with the new value on stdin (never argv or the environment).
/// Its stdout and stderr are discarded, never read: a hook may print the value it
/// was given, so nothing it writes may reach an error, the audit log or an alert.
/// A hook that needs diagnostics keeps its own log.
fn run_hook(
    cmd: &str,
    name: &str,
    username: Option<&str>,
    value: &SecretValue,
) -> Result<HookExit, String> {
    use std::os::unix::process::ExitStatusExt;
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .env("BREAKGLASS_SECRET_NAME", name)
        .env("BREAKGLASS_SECRET_USERNAME", username.unwrap_or(""))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("apply hook could not start ({e})"))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that ignores stdin closes the pipe early; its exit code decides.
        let _ = stdin.write_all(value.expose_secret());
    }
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() > HOOK_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "apply hook timed out after {}s (see the hook's own log)",
                    HOOK_TIMEOUT.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("apply hook could not be waited for ({e})")),
        }
    };
    Ok(match (status.code(), status.signal()) {
        (Some(code), _) => HookExit::Code(code),
        (None, Some(signal)) => HookExit::Signal(signal),
        (None, None) => HookExit::Code(-1),
    })
}
