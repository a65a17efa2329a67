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
use crate::rotators::{Rotator, RotatorChange, RotatorCredentials, RotatorFailure, RotatorKind};
use crate::store::{Reader, RotationRow, RotatorSetting, VersionRow};

/// How long an apply hook may run before it is killed and the rotation fails.
pub const HOOK_TIMEOUT: Duration = Duration::from_secs(300);
/// A `pending` version older than this was certainly interrupted: a running
/// rotation kills its hook at [`HOOK_TIMEOUT`] and settles within seconds.
pub const INTERRUPTED_AFTER: Duration = Duration::from_secs(HOOK_TIMEOUT.as_secs() + 60);
/// Length of a generated password when none is set.
pub const DEFAULT_LENGTH: usize = 24;
/// Length of a password an LDAP or AD rotator generates when none is set.
pub const ROTATOR_LENGTH: usize = 32;
/// What a pending version holds while a peer (Duo) makes its value.
const AWAITING_PEER: &[u8] = b"awaiting-the-rotator's-value";

/// Whether a version's value is the marker of a rotation still waiting for
/// its peer's value (never a value to reveal).
pub(crate) fn awaits_peer(value: &SecretValue) -> bool {
    value.expose_secret() == AWAITING_PEER
}

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
    /// The secret's rotator makes it: Duo's new codes, or a generated
    /// password (endorsed generator settings, else the default) for LDAP/AD.
    ByRotator,
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
    /// The rotator's own credentials, given now (never stored).
    pub credentials: Option<RotatorCredentials>,
    /// The stored rotator (kind, canonical config) the user was shown and
    /// confirmed: it runs only if the stored one is still exactly this.
    pub confirmed_rotator: Option<(String, String)>,
    /// Set a rotator from the command line (it runs now and is kept,
    /// replacing any apply hook), or remove the stored one.
    pub rotator: Option<RotatorChange>,
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
    /// The built-in rotator that applied and proved the new value, if one ran.
    pub rotator: Option<String>,
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

/// What `rotate --exposed` is asked to do.
pub struct ExposedRequest {
    /// Who rotates, as logged.
    pub actor: String,
    /// Run stored hooks and rotators no checkpoint endorsed.
    pub trust_hook: bool,
    /// (secret, command) of each unendorsed stored hook the user confirmed.
    pub confirmed_hooks: Vec<(String, String)>,
    /// (secret, (kind, config)) of each unendorsed stored rotator the user confirmed.
    pub confirmed_rotators: Vec<(String, (String, String))>,
    /// (secret, credentials) for each exposed secret with a rotator.
    pub credentials: Vec<(String, RotatorCredentials)>,
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
    pub fn rotate(&mut self, mut request: RotateRequest) -> Result<RotateOutcome, VaultError> {
        let name = request.name.clone();
        let change = request.rotator.take();
        let meta = self
            .store
            .read()
            .secret(&name)?
            .ok_or_else(|| VaultError::UnknownSecret(name.clone()))?;
        let kind = SecretKind::parse(&meta.kind)?;
        // Early and friendly; the check that counts is under the write lock.
        self.refuse_while_rotating(&name, "nothing was rotated")?;
        if let Some(change) = &change {
            change
                .check_secret_kind(&meta.kind)
                .map_err(|why| VaultError::Secret {
                    name: name.clone(),
                    detail: format!("{why}; nothing was rotated"),
                })?;
        }
        // What to store once the rotation starts: Some(None) removes.
        let rotator_setting = change.as_ref().map(RotatorChange::setting);
        // A rotator from the command line runs (the user's own words); a
        // stored one runs unless a hook is given on the command line, and must
        // be endorsed, or shown and confirmed, like a stored hook.
        let stored_rotator = self.store.read().rotation(&name)?.rotator;
        let rotator = match (change, &request.apply, stored_rotator) {
            (Some(RotatorChange::Set(_)), Some(_), _) => {
                return Err(VaultError::Secret {
                    name,
                    detail: "a secret is rotated by a hook or a rotator, not both; drop --apply or --rotator; nothing was rotated".into(),
                })
            }
            (Some(RotatorChange::Set(r)), None, _) => Some(r),
            (Some(RotatorChange::Remove), _, _) => None,
            (None, None, Some(stored)) => {
                // Asked before anything is logged as trusted.
                if request.credentials.is_none() {
                    let what = RotatorKind::parse(&stored.kind)
                        .map_or("its credentials", |k| k.credentials_name());
                    return Err(VaultError::Secret {
                        name,
                        detail: format!(
                            "its rotator {} needs {what} for this rotation: give it with --credentials FILE (or on the terminal); nothing was rotated",
                            stored.kind.escape_debug()
                        ),
                    });
                }
                Some(self.trusted_rotator(&name, &stored, &request)?)
            }
            (None, Some(_), Some(stored)) => {
                return Err(VaultError::Secret {
                    name,
                    detail: format!(
                        "has the rotator {}: a secret is rotated by a hook or a rotator, not both; drop --apply, or remove the rotator with --rotator none; nothing was rotated",
                        stored.kind.escape_debug()
                    ),
                })
            }
            (None, _, None) => None,
        };
        let value_spec = match (&rotator, request.value) {
            (Some(r), NewValue::ByRotator) if r.kind().value_made_here() => {
                let endorsed = self.endorsed_settings(&name)?;
                NewValue::Generate {
                    length: endorsed.gen_length.map_or(ROTATOR_LENGTH, |l| l as usize),
                    charset: endorsed
                        .gen_charset
                        .as_deref()
                        .and_then(Charset::parse)
                        .unwrap_or(Charset::AlnumSymbols),
                }
            }
            (Some(r), NewValue::ByRotator) => {
                // Duo makes the codes; until they arrive the pending version
                // holds this marker, never revealed (only active versions are).
                let _ = r;
                NewValue::Given(SecretValue::new(AWAITING_PEER.to_vec()))
            }
            (Some(r), _) if !r.kind().value_made_here() => {
                return Err(VaultError::Secret {
                    name,
                    detail: format!(
                        "its rotator {} makes the new value at the peer; give no value, --file or --generate; nothing was rotated",
                        r.kind().as_str()
                    ),
                })
            }
            (None, NewValue::ByRotator) => {
                return Err(VaultError::Secret {
                    name,
                    detail: "has no rotator; give the new value (--file, stdin or --generate); nothing was rotated".into(),
                })
            }
            (_, other) => other,
        };
        if let Some(r) = &rotator {
            if request.credentials.is_none() {
                return Err(VaultError::Secret {
                    name,
                    detail: format!(
                        "its rotator {} needs {} for this rotation: give it with --credentials FILE (or on the terminal); nothing was rotated",
                        r.kind().as_str(),
                        r.kind().credentials_name()
                    ),
                });
            }
        }
        let generator = match &value_spec {
            NewValue::Generate { length, charset } => {
                (Some(*length as u32), Some(charset.as_str().to_string()))
            }
            NewValue::Given(_) | NewValue::ByRotator => (None, None),
        };
        let settings = RotationRow {
            apply_cmd: request.apply.clone(),
            gen_length: generator.0,
            gen_charset: generator.1,
            max_age_days: request.policy.max_age_days,
            expires: request.policy.expires.clone(),
            rotator: None,
        };
        let value = match value_spec {
            NewValue::Given(v) => v,
            NewValue::ByRotator => unreachable!("resolved above"),
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
                generate(length, charset, rotator.is_some())
            }
        };
        if std::str::from_utf8(value.expose_secret()).map_or(true, |t| t.trim().is_empty()) {
            return Err(VaultError::Secret {
                name,
                detail: "new value is empty or not UTF-8 text; nothing was rotated".into(),
            });
        }
        // A hook from the user's own command line runs; a stored one only if a
        // quorum endorsed it, or the user saw it and passed --trust-hook. A
        // secret with a rotator runs no stored hook.
        let hook = match &request.apply {
            Some(cmd) => Some(cmd.clone()),
            None if rotator.is_some() => None,
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
        let version = self.store_pending(
            &name,
            &value,
            (&settings, rotator_setting.as_ref()),
            &request.actor,
            kind,
        )?;

        // Phase 2: apply it where it lives.
        let mut from_peer: Option<SecretValue> = None;
        let mut target_changed = false;
        let (hook_exit, hook_error) = match (&hook, &rotator) {
            (None, Some(r)) => {
                let credentials = request.credentials.as_ref().expect("checked above");
                let made_here = r.kind().value_made_here().then(|| value.expose_secret());
                match r.apply(credentials, made_here) {
                    Ok(peer_value) => {
                        // Applied: whatever happens next, the target changed.
                        target_changed = true;
                        from_peer = peer_value.map(|v| SecretValue::new(v.to_vec()));
                        (None, None)
                    }
                    Err(RotatorFailure::NotApplied(why)) => {
                        (None, Some(format!("{}: {why}", r.kind().as_str())))
                    }
                    Err(RotatorFailure::Unproven(why)) => {
                        target_changed = true;
                        (None, Some(format!("{}: {why}", r.kind().as_str())))
                    }
                }
            }
            (None, None) => (None, None),
            // The hook's output is never echoed: it may hold the new value.
            (Some(cmd), _) => match run_hook(cmd, &name, meta.username.as_deref(), &value) {
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
        let vault_id = self.vault_id();
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
                (Some(why), _) if rotator.is_some() => Some(why.clone()),
                (Some(_), _) => Some("apply hook failed".to_string()),
                (None, Some(why)) => Some(format!("not made active: {why}")),
            };
            let outcome = match &problem {
                None => {
                    if let Some(codes) = &from_peer {
                        // The peer made the value (Duo's codes): it replaces the
                        // marker in the pending version, sealed to the key in
                        // force now, in the transaction that makes it active.
                        let recipient = CustodianRecipient::parse_vault_recipient(
                            &current.manifest.vault_recipient,
                        )
                        .map_err(VaultError::Invalid)?;
                        let plaintext = records::encode_secret(&vault_id, &name, version, codes);
                        let ciphertext = crypto::encrypt_armored(&recipient, &plaintext)
                            .map_err(VaultError::invalid)?;
                        tx.replace_pending_value(
                            &name,
                            version,
                            current.manifest.epoch,
                            &ciphertext,
                        )?;
                        if kind == SecretKind::BypassCodes {
                            tx.set_code_count(&name, version, count_codes(codes)?)?;
                        }
                    }
                    tx.activate_version(&name, version)?;
                    tx.clear_exposure(&name)?;
                    audit::append(
                        &tx,
                        vec![NewEntry::new(&request.actor, "rotate", &name).details(
                            serde_json::json!({ "version": version, "hook_exit": hook_exit, "rotator": rotator.as_ref().map(|r| r.kind().as_str()) }),
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
                            .details(serde_json::json!({ "version": version, "hook_exit": hook_exit, "rotator": rotator.as_ref().map(|r| r.kind().as_str()), "problem": problem, "target_may_have_changed": target_changed }))],
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
            let applied = match (&hook, &hook_error, &rotator) {
                (None, None, Some(r)) if from_peer.is_some() => format!("{} made new values at the peer, which the vault could not store (the old ones may no longer work there)", r.kind().as_str()),
                (None, None, Some(r)) => format!("{} set and proved version {version}'s value at the target", r.kind().as_str()),
                (Some(_), None, _) => format!("the apply hook exited 0, so the target system now holds version {version}'s value"),
                (_, Some(_), _) => "the apply hook or rotator failed".to_string(),
                (None, None, None) => "no apply hook ran".to_string(),
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
            let detail = match (&rotator, target_changed) {
                (None, _) => format!("{why}; version {version} kept as failed and the old version stays active — fix the hook and rotate again"),
                (Some(_), false) => format!("{why}; version {version} kept as failed and the old version stays active (the peer still holds it) — fix the cause and rotate again"),
                (Some(r), true) if r.kind().value_made_here() => format!("{why}; version {version} kept as failed and the old version stays active in the vault, but the target may now hold version {version}'s value — try both (`breakglass unseal --reveal {name} --reveal-version {name}={version}`), then rotate again"),
                (Some(_), true) => format!("{why}; version {version} kept as failed and the old version stays active in the vault, but the target may now hold version {version}'s value — check the account and rotate again"),
            };
            return Err(VaultError::Secret { name, detail });
        }
        if let Some(why) = blocked {
            let stays = versions
                .iter()
                .find(|v| v.state == "active")
                .map_or("no version is active".to_string(), |v| {
                    format!("version {} stays active", v.version)
                });
            let applied = match (&hook, &rotator) {
                (Some(_), _) => format!(
                    "the apply hook exited 0, so the target system may now hold version {version}'s value"
                ),
                (None, Some(r)) if from_peer.is_some() => format!(
                    "{} made new values at the peer, which the vault did not keep (the old ones may no longer work there)",
                    r.kind().as_str()
                ),
                (None, Some(r)) => format!(
                    "{} set and proved version {version}'s value at the target",
                    r.kind().as_str()
                ),
                (None, None) => "no apply hook ran".to_string(),
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
            rotator: rotator.as_ref().map(|r| r.kind().as_str().to_string()),
            state: outcome.into(),
        })
    }

    /// The stored rotator of `name`, parsed, if a checkpoint endorsed it as it
    /// is, or the user was shown it and confirmed (or passed --trust-hook).
    fn trusted_rotator(
        &mut self,
        name: &str,
        stored: &RotatorSetting,
        request: &RotateRequest,
    ) -> Result<Rotator, VaultError> {
        let endorsed = self.endorsed_settings(name)?;
        let is_endorsed = endorsed.rotator.as_deref() == Some(stored.kind.as_str())
            && endorsed.rotator_config.as_deref() == Some(stored.config.as_str());
        let confirmed = request.confirmed_rotator.as_ref()
            == Some(&(stored.kind.clone(), stored.config.clone()));
        if !is_endorsed && !confirmed && !request.trust_hook {
            let when = if request.confirmed_rotator.is_some() {
                "it changed after you confirmed it"
            } else {
                "no quorum endorsed it"
            };
            // File text, shown escaped: no terminal control or bidi trickery.
            return Err(VaultError::Secret {
                name: name.into(),
                detail: format!(
                    "its rotator was set or changed after the last signed checkpoint, and {when}: {} {} — read it; if it is yours, rotate again with --trust-hook; nothing was rotated",
                    stored.kind.escape_debug(),
                    crate::rotators::shown_config(&stored.config).escape_debug()
                ),
            });
        }
        let rotator = RotatorKind::parse(&stored.kind)
            .and_then(|kind| Rotator::parse(kind, &stored.config))
            // What is stored is what `put` wrote: the canonical form, exactly.
            .and_then(|r| {
                (r.canonical_config() == stored.config)
                    .then_some(r)
                    .ok_or_else(|| "its config is not in the form breakglass writes (edited?)".to_string())
            })
            // A CA by path would trust whatever file is there at rotation time.
            .and_then(|r| {
                (!r.names_ca_file()).then_some(r).ok_or_else(|| {
                    "its config names a CA file by path instead of embedding its certificates".to_string()
                })
            })
            .map_err(|e| VaultError::Secret {
                name: name.into(),
                detail: format!("its stored rotator is unusable ({}); set it again with `breakglass put {name} --rotator KIND --rotator-config FILE`", e.escape_debug()),
            })?;
        if !is_endorsed {
            let tx = self.store.begin()?;
            audit::append(
                &tx,
                vec![
                    NewEntry::new(&request.actor, "rotator_trusted", name).details(
                        serde_json::json!({ "rotator": stored.kind, "config": stored.config }),
                    ),
                ],
            )?;
            tx.commit()?;
        }
        Ok(rotator)
    }

    /// The stored rotator (kind, config) of `name` when no checkpoint
    /// endorsed it as it is: to show and confirm before rotating.
    pub fn untrusted_rotator(&self, name: &str) -> Result<Option<(String, String)>, VaultError> {
        let Some(stored) = self.store.read().rotation(name)?.rotator else {
            return Ok(None);
        };
        let endorsed = self.endorsed_settings(name)?;
        let same = endorsed.rotator.as_deref() == Some(stored.kind.as_str())
            && endorsed.rotator_config.as_deref() == Some(stored.config.as_str());
        Ok((!same).then_some((stored.kind, stored.config)))
    }

    /// The rotator kind stored for `name`, if any (endorsed or not): what
    /// `rotate` will ask credentials for.
    pub fn rotator_of(&self, name: &str) -> Result<Option<RotatorKind>, VaultError> {
        Ok(self
            .store
            .read()
            .rotation(name)?
            .rotator
            .and_then(|r| RotatorKind::parse(&r.kind).ok()))
    }

    /// Phase 1: the new version, pending, with the settings it was asked
    /// with (`rotator`: Some(None) removes the rotator, Some(Some) sets it).
    fn store_pending(
        &mut self,
        name: &str,
        value: &SecretValue,
        (settings, rotator): (&RotationRow, Option<&Option<RotatorSetting>>),
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
        let recipient =
            CustodianRecipient::parse_vault_recipient(&current.manifest.vault_recipient)
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
        if let Some(rotator) = rotator {
            tx.set_rotator(name, rotator.as_ref())?;
        }
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
                    "rotator_set": rotator.and_then(Option::as_ref).map(|s| serde_json::json!({ "rotator": s.kind, "config": s.config })),
                    "rotator_removed": matches!(rotator, Some(None)),
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

    /// Rotate every exposed secret that has a rotator, a generator or a hook;
    /// list the rest. Only endorsed generator settings shape a new password
    /// (else the default).
    pub fn rotate_exposed(
        &mut self,
        mut request: ExposedRequest,
    ) -> Result<ExposedRotation, VaultError> {
        let actor = request.actor.clone();
        let trust_hook = request.trust_hook;
        let mut report = ExposedRotation {
            rotated: Vec::new(),
            failed: Vec::new(),
            needs_human: Vec::new(),
        };
        for exposure in self.store.read().exposures()? {
            let name = exposure.secret;
            let settings = self.store.read().rotation(&name)?;
            if settings.rotator.is_some() {
                let at = request.credentials.iter().position(|(n, _)| *n == name);
                let credentials = at.map(|i| request.credentials.swap_remove(i).1);
                match self.rotate(RotateRequest {
                    name: name.clone(),
                    value: NewValue::ByRotator,
                    apply: None,
                    policy: Policy::default(),
                    actor: actor.clone(),
                    trust_hook,
                    confirmed_hook: None,
                    credentials,
                    confirmed_rotator: request
                        .confirmed_rotators
                        .iter()
                        .find(|(n, _)| *n == name)
                        .map(|(_, r)| r.clone()),
                    rotator: None,
                }) {
                    Ok(outcome) => report.rotated.push(outcome),
                    Err(e) => report.failed.push(e.to_string()),
                }
                continue;
            }
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
                actor: actor.clone(),
                trust_hook,
                confirmed_hook: request
                    .confirmed_hooks
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, cmd)| cmd.clone()),
                credentials: None,
                confirmed_rotator: None,
                rotator: None,
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

/// A random password; for a rotator (a directory with a complexity policy),
/// one with at least one lowercase letter, capital and digit (and symbol, when
/// the alphabet has them).
fn generate(length: usize, charset: Charset, for_rotator: bool) -> SecretValue {
    loop {
        let text = crypto::random_string(length, charset.alphabet());
        let has = |f: fn(&u8) -> bool| text.as_bytes().iter().any(f);
        let complex = has(u8::is_ascii_lowercase)
            && has(u8::is_ascii_uppercase)
            && has(u8::is_ascii_digit)
            && (charset != Charset::AlnumSymbols || has(u8::is_ascii_punctuation));
        if !for_rotator || complex || !matches!(charset, Charset::Alnum | Charset::AlnumSymbols) {
            return SecretValue::new(text.as_bytes().to_vec());
        }
    }
}
