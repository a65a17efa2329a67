//! Rotation without a quorum, in two phases so nothing is lost: the new version
//! is stored `pending`, the apply hook runs with the value on its stdin, and only
//! if it exits 0 does the new version become `active` (the old one `superseded`).
//! A failed hook leaves the old version active and the new one `failed`.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::records::{self, SecretValue};
use super::{count_codes, Policy, SecretKind, Vault, VaultError};
use crate::audit::{self, NewEntry};
use crate::crypto::{self, CustodianRecipient};
use crate::store::{RotationRow, VersionRow};

/// How long an apply hook may run before it is killed and the rotation fails.
pub const HOOK_TIMEOUT: Duration = Duration::from_secs(300);
pub const DEFAULT_LENGTH: usize = 24;

/// Alphabets for generated passwords.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Charset {
    Alnum,
    AlnumSymbols,
    Hex,
    Digits,
}

impl Charset {
    pub fn as_str(&self) -> &'static str {
        match self {
            Charset::Alnum => "alnum",
            Charset::AlnumSymbols => "alnum-symbols",
            Charset::Hex => "hex",
            Charset::Digits => "digits",
        }
    }

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
    Given(SecretValue),
    Generate { length: usize, charset: Charset },
}

pub struct RotateRequest {
    pub name: String,
    pub value: NewValue,
    /// Set (and keep) this secret's apply hook.
    pub apply: Option<String>,
    /// Set (and keep) the rotation policy.
    pub policy: Policy,
    pub actor: String,
    /// Run a stored hook no checkpoint endorsed (the user saw it and agreed).
    pub trust_hook: bool,
}

#[derive(Debug, Serialize)]
pub struct RotateOutcome {
    pub name: String,
    pub version: u32,
    /// The vault (and epoch) the new version is sealed to.
    pub fingerprint: String,
    pub epoch: u64,
    pub hook_exit: Option<i32>,
    pub state: String,
}

/// What `rotate --exposed` did.
#[derive(Debug, Serialize)]
pub struct ExposedRotation {
    pub rotated: Vec<RotateOutcome>,
    pub failed: Vec<String>,
    pub needs_human: Vec<String>,
}

impl Vault {
    pub fn rotate(&mut self, request: RotateRequest) -> Result<RotateOutcome, VaultError> {
        let name = request.name.clone();
        let meta = self
            .store
            .read()
            .secret(&name)?
            .ok_or_else(|| VaultError::UnknownSecret(name.clone()))?;
        let kind = SecretKind::parse(&meta.kind)?;
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
            None => match self.untrusted_hook(&name)? {
                Some(cmd) if !request.trust_hook => {
                    return Err(VaultError::Secret {
                        name,
                        detail: format!(
                            "its stored apply hook was set or changed after the last signed checkpoint, and no quorum endorsed it: `{cmd}` — read it; if it is yours, rotate again with --trust-hook (or give the hook with --apply CMD); nothing was rotated"
                        ),
                    })
                }
                Some(cmd) => {
                    self.log_trusted_hook(&name, &cmd, &request.actor)?;
                    Some(cmd)
                }
                None => self.store.read().rotation(&name)?.apply_cmd,
            },
        };

        // Phase 1: the new version, pending; earlier interrupted attempts are abandoned.
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

        // Phase 3: promote or keep as failed.
        let tx = self.store.begin()?;
        let outcome = match &hook_error {
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
            Some(_) => {
                tx.set_version_state(&name, version, "failed")?;
                audit::append(
                    &tx,
                    vec![NewEntry::new(&request.actor, "rotate_failed", &name)
                        .details(serde_json::json!({ "version": version, "hook_exit": hook_exit, "problem": "apply hook failed" }))],
                )?;
                "failed"
            }
        };
        tx.commit()?;
        if let Some(why) = hook_error {
            return Err(VaultError::Secret {
                name,
                detail: format!("{why}; version {version} kept as failed and the old version stays active — fix the hook and rotate again"),
            });
        }
        Ok(RotateOutcome {
            name,
            version,
            fingerprint: self.fingerprint(),
            epoch: self.manifest().epoch,
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
        let recipient = CustodianRecipient::parse_public_key(&self.manifest().vault_recipient)
            .map_err(VaultError::Invalid)?;
        let vault_id = self.vault_id();
        let epoch = self.manifest().epoch;
        let tx = self.store.begin()?;
        for stale in tx.read().versions_of(name, "pending")? {
            tx.set_version_state(name, stale.version, "abandoned")?;
        }
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
        Ok(version)
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
            }) {
                Ok(outcome) => report.rotated.push(outcome),
                Err(e) => report.failed.push(e.to_string()),
            }
        }
        Ok(report)
    }
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
