//! Per-machine memory of each vault seen here: its fingerprint (a mismatch is a
//! hard error: the file claims a vault id it cannot sign for) and the highest
//! epoch seen (a lower one means a stale copy).
//!
//! Custodian pins: the vault fingerprint each custodian key first approved or
//! drilled for on this machine (`custodian-pins.json`, keyed by the SHA-256 of
//! the key's public recipient text). Another fingerprint for the same key is a
//! hard error until the custodian re-pins on purpose ([`repin_custodian`],
//! [`forget_custodian`]).

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::pending::state_dir;

/// The vault fingerprint a vault id is pinned to on this machine, and the newest epoch seen.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Pin {
    /// The fingerprint first seen for this vault id.
    pub fingerprint: String,
    /// The newest epoch seen for this vault id here.
    pub max_epoch: u64,
}

fn pins_path() -> std::path::PathBuf {
    state_dir().join("pins.json")
}

/// Everything pinned on this machine: each vault id's fingerprint and highest
/// epoch, and the fingerprint each vault file path held when first used here.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Pins {
    #[serde(default)]
    vaults: BTreeMap<String, Pin>,
    /// Canonical path of a vault file → the fingerprint it held.
    #[serde(default)]
    paths: BTreeMap<String, String>,
}

/// The pins file; a missing one is no pins. An unreadable one is an error,
/// never silently empty: that would forget every pin and accept a swapped file.
fn load() -> Result<Pins, String> {
    let path = pins_path();
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Pins::default()),
        Err(e) => return Err(unreadable(&path, &e.to_string())),
    };
    serde_json::from_slice(&bytes)
        .or_else(|_| {
            // The first format held only the vault-id pins.
            serde_json::from_slice::<BTreeMap<String, Pin>>(&bytes).map(|vaults| Pins {
                vaults,
                ..Pins::default()
            })
        })
        .map_err(|e| unreadable(&path, &e.to_string()))
}

fn unreadable(path: &Path, error: &str) -> String {
    format!(
        "{} is unreadable ({error}); it records which vault each file on this machine holds, so nothing is opened without it. Restore it, or delete it to start pinning afresh, then run again",
        path.display()
    )
}

/// The key a vault file is pinned under: its canonical path, so `./v.db`
/// and `/abs/v.db` are one file.
fn path_key(path: &Path) -> String {
    std::fs::canonicalize(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

fn save(pins: &Pins) -> std::io::Result<()> {
    write_atomically(
        &pins_path(),
        &serde_json::to_vec_pretty(pins).expect("pins serialize"),
    )
}

/// Write a state file: created 0600 beside its final name, synced, then renamed over it.
/// Called only under the pins lock ([`locked`]), so one fixed staging name
/// (`NAME.json.tmp`) is safe: a run killed mid-write leaves at most that one,
/// and the next locked call removes it.
fn write_atomically(path: &std::path::Path, contents: &[u8]) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(state_dir())?;
    // The fixed name is safe only under the lock; unlocked (a file system
    // without locks), each process stages to its own name.
    let staging = if HOLDS_LOCK.with(std::cell::Cell::get) {
        path.with_extension("json.tmp")
    } else {
        path.with_extension(format!("json.{}", std::process::id()))
    };
    let _ = std::fs::remove_file(&staging);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&staging)?;
    // A staging file that could not be written whole (a full disk) is removed
    // at once: a failed command leaves nothing behind.
    let written = file
        .write_all(contents)
        .and_then(|()| file.sync_all())
        .and_then(|()| std::fs::rename(&staging, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&staging);
    }
    written
}

/// Run `f` holding the state directory's lock, so two commands at once never
/// lose each other's pins (vault or custodian) or request records. If the lock
/// file cannot be made (a read-only state directory), `f` runs unlocked: it
/// will not be able to write either. Holding the lock, no other run is
/// mid-write, so any staging file present was left by a killed run: removed.
/// Never nested: a second lock on the same file in one process would wait forever.
pub(super) fn locked<R>(f: impl FnOnce() -> R) -> R {
    let lock = std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(state_dir())
        .and_then(|_| {
            OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(state_dir().join("pins.lock"))
        });
    let held = lock.as_ref().is_ok_and(|file| file.lock().is_ok());
    if held {
        sweep_staging();
    }
    HOLDS_LOCK.with(|h| h.set(held));
    let result = f();
    HOLDS_LOCK.with(|h| h.set(false));
    result
}

thread_local! {
    /// Whether this thread holds the pins lock now (see [`locked`]).
    static HOLDS_LOCK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Remove staging files killed runs left: `NAME.json.tmp`, the
/// `NAME.json.<pid>` that earlier versions staged to, and request records'.
fn sweep_staging() {
    if let Ok(entries) = std::fs::read_dir(state_dir()) {
        for entry in entries.flatten() {
            if entry.file_name().to_str().is_some_and(is_staging) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    super::pending::sweep_staging();
}

fn is_staging(name: &str) -> bool {
    ["pins.json.", "custodian-pins.json."].iter().any(|prefix| {
        name.strip_prefix(prefix).is_some_and(|tail| {
            tail == "tmp" || (!tail.is_empty() && tail.bytes().all(|b| b.is_ascii_digit()))
        })
    })
}

/// Run `change` on the pins under the lock and save them if it changed them.
/// An unreadable pins file is an error; failing to save is a warning (the
/// check still ran against what was read), returned beside the result.
fn with_pins<R>(change: impl FnOnce(&mut Pins) -> R) -> Result<(R, Option<String>), String> {
    locked(|| {
        let mut pins = load()?;
        let before = serde_json::to_vec(&pins).expect("pins serialize");
        let result = change(&mut pins);
        let warning = if serde_json::to_vec(&pins).expect("pins serialize") == before {
            None
        } else {
            save(&pins).err().map(|e| {
                format!(
                    "could not record this vault's pin in {} ({e}); a swapped file will not be caught on this machine until it can",
                    pins_path().display()
                )
            })
        };
        Ok((result, warning))
    })
}

/// What this machine knows about a vault now being opened.
pub enum PinCheck {
    /// First sight, or the same or a newer epoch (the pin is updated).
    Fine,
    /// An older epoch than seen before here.
    Stale {
        /// The newest epoch seen here, newer than the one offered.
        seen: u64,
    },
    /// Same vault id, different fingerprint.
    Mismatch {
        /// The fingerprint pinned for this vault id.
        pinned: String,
    },
    /// This file path held another vault when it was first used here.
    PathMismatch {
        /// The fingerprint pinned for this path.
        pinned: String,
    },
}

/// Check (and update) the pins for a vault opened from `path`. Failing to
/// write the pins is a warning, beside the check that still ran against what
/// was read; an unreadable pins file is an error.
pub fn check(
    vault_id: &str,
    fingerprint: &str,
    epoch: u64,
    path: &Path,
) -> Result<(PinCheck, Option<String>), String> {
    let key = path_key(path);
    with_pins(|pins| check_in(pins, vault_id, fingerprint, epoch, key))
}

fn check_in(
    pins: &mut Pins,
    vault_id: &str,
    fingerprint: &str,
    epoch: u64,
    key: String,
) -> PinCheck {
    match pins.paths.get(&key) {
        Some(pinned) if pinned != fingerprint => {
            return PinCheck::PathMismatch {
                pinned: pinned.clone(),
            }
        }
        Some(_) => {}
        None => {
            pins.paths.insert(key, fingerprint.to_string());
        }
    }
    match pins.vaults.get(vault_id) {
        Some(pin) if pin.fingerprint != fingerprint => PinCheck::Mismatch {
            pinned: pin.fingerprint.clone(),
        },
        Some(pin) if pin.max_epoch > epoch => PinCheck::Stale {
            seen: pin.max_epoch,
        },
        Some(pin) if pin.max_epoch == epoch => PinCheck::Fine,
        _ => {
            pins.vaults.insert(
                vault_id.to_string(),
                Pin {
                    fingerprint: fingerprint.to_string(),
                    max_epoch: epoch,
                },
            );
            PinCheck::Fine
        }
    }
}

/// `init` made a new vault at `path`: the user's own command pins it there,
/// replacing whatever the path held before. Returns a warning if it could not.
pub fn pin_new_vault(vault_id: &str, fingerprint: &str, epoch: u64, path: &Path) -> Option<String> {
    let key = path_key(path);
    warning_of(with_pins(|pins| {
        pins.paths.insert(key, fingerprint.to_string());
        pins.vaults.insert(
            vault_id.to_string(),
            Pin {
                fingerprint: fingerprint.to_string(),
                max_epoch: epoch,
            },
        );
    }))
}

/// Record a higher epoch reached by this process (after a re-key). Returns a
/// warning if it could not.
pub fn raise_epoch(vault_id: &str, fingerprint: &str, epoch: u64) -> Option<String> {
    warning_of(with_pins(|pins| {
        let pin = pins.vaults.entry(vault_id.to_string()).or_insert(Pin {
            fingerprint: fingerprint.to_string(),
            max_epoch: epoch,
        });
        if pin.fingerprint == fingerprint && pin.max_epoch < epoch {
            pin.max_epoch = epoch;
        }
    }))
}

fn warning_of(outcome: Result<((), Option<String>), String>) -> Option<String> {
    match outcome {
        Ok((_, warning)) => warning,
        Err(unreadable) => Some(format!("this vault was not pinned: {unreadable}")),
    }
}

/// The deliberate re-pin: `path`, pinned to `old`, now holds `new`. Refuses
/// unless both fingerprints are exactly what the pin and the file say.
pub fn repin_path(path: &Path, old: &str, new: &str) -> Result<(), String> {
    let key = path_key(path);
    let (outcome, warning) = with_pins(|pins| {
        match pins.paths.get(&key) {
            Some(pinned) if pinned == old => {}
            Some(pinned) => {
                return Err(format!(
                "{key} is pinned to {pinned}, not {old}; name the fingerprint this machine pinned"
            ))
            }
            None => {
                return Err(format!(
                    "{key} is not pinned on this machine; nothing to re-pin"
                ))
            }
        }
        pins.paths.insert(key.clone(), new.to_string());
        Ok(())
    })?;
    outcome?;
    // A re-pin that was not saved did not happen: say so.
    warning.map_or(Ok(()), Err)
}

/// The fingerprint this machine pinned for the file at `path`, if any.
pub fn pinned_path(path: &Path) -> Option<String> {
    load().ok()?.paths.get(&path_key(path)).cloned()
}

/// The vault fingerprint a custodian key is pinned to on this machine.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CustodianPin {
    /// The vault fingerprint pinned.
    pub fingerprint: String,
    /// When the pin was made (RFC 3339).
    pub pinned_at: String,
    /// The newest epoch this key approved or drilled for, and that epoch's
    /// verify key: a trusted start for the next request's key chain, and a
    /// floor (an older epoch's request is stale).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u64>,
    /// That epoch's verify key (hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_key: Option<String>,
}

/// A custodian pin refused the request or challenge; each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum CustodianPinError {
    /// The key is pinned to another vault than the one offered.
    #[error("VAULT FINGERPRINT MISMATCH: custodian key {key} is pinned on this machine to vault {pinned}, but {what} is for vault {found}; it may be a forged or swapped vault — do not go on, check the fingerprint with the other custodians. If the vault was deliberately replaced, re-pin on purpose with `breakglass repin {pinned} {found}` (pins are in {path}), then run again")]
    Mismatch {
        /// The custodian key (recipient) that is pinned.
        key: String,
        /// What was offered (request, challenge, vault copy).
        what: &'static str,
        /// The fingerprint pinned.
        pinned: String,
        /// The fingerprint offered.
        found: String,
        /// The pin file.
        path: String,
    },
    /// The pin file is unreadable (path, detail).
    #[error("custodian pins {0} are unreadable ({1}); fix or delete the file, then run again")]
    Unreadable(String, String),
    /// The pin file could not be written (path, detail).
    #[error("custodian pins {0}: {1}")]
    Io(String, String),
}

fn custodian_pins_path() -> std::path::PathBuf {
    state_dir().join("custodian-pins.json")
}

/// How a custodian key is named in the pins file: hex SHA-256 of its public
/// recipient text (`age1…`, `ssh-ed25519 …`), so the file lists no keys.
pub fn custodian_key_id(recipient: &str) -> String {
    hex::encode(crate::crypto::sha256(&[
        b"breakglass/v1/custodian-pin\0",
        recipient.trim().as_bytes(),
    ]))
}

/// Every custodian pin on this machine, by key id. A missing file is no pins; an
/// unreadable one is an error (never silently treated as empty).
pub fn custodian_pins() -> Result<BTreeMap<String, CustodianPin>, CustodianPinError> {
    let path = custodian_pins_path();
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| CustodianPinError::Unreadable(path.display().to_string(), e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(CustodianPinError::Unreadable(
            path.display().to_string(),
            e.to_string(),
        )),
    }
}

fn save_custodian_pins(pins: &BTreeMap<String, CustodianPin>) -> Result<(), CustodianPinError> {
    let path = custodian_pins_path();
    write_atomically(
        &path,
        &serde_json::to_vec_pretty(pins).expect("pins serialize"),
    )
    .map_err(|e| CustodianPinError::Io(path.display().to_string(), e.to_string()))
}

/// What a custodian pin is being checked for, as named in the error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PinUse {
    /// Approving a remote request.
    Approve,
    /// Answering a drill challenge.
    Drill,
}

/// Check the custodian key `recipient` against the vault `fingerprint` it is
/// about to approve or drill for; on first sight, pin it. Another fingerprint is
/// a hard error. Failing to write a first pin is not fatal (nothing was pinned
/// to compare against), but an unreadable pins file is.
pub fn check_custodian(
    recipient: &str,
    fingerprint: &str,
    use_: PinUse,
) -> Result<(), CustodianPinError> {
    let key = custodian_key_id(recipient);
    locked(|| check_custodian_locked(key, fingerprint, use_))
}

fn check_custodian_locked(
    key: String,
    fingerprint: &str,
    use_: PinUse,
) -> Result<(), CustodianPinError> {
    let mut pins = custodian_pins()?;
    match pins.get(&key) {
        Some(pin) if pin.fingerprint == fingerprint => Ok(()),
        Some(pin) => Err(mismatch_by_id(&key, &pin.fingerprint, fingerprint, use_)),
        None => {
            pins.insert(
                key,
                CustodianPin {
                    fingerprint: fingerprint.to_string(),
                    pinned_at: crate::audit::now(),
                    epoch: None,
                    verify_key: None,
                },
            );
            let _ = save_custodian_pins(&pins);
            Ok(())
        }
    }
}

fn mismatch_by_id(key: &str, pinned: &str, found: &str, use_: PinUse) -> CustodianPinError {
    CustodianPinError::Mismatch {
        key: key[..16].to_string(),
        what: match use_ {
            PinUse::Approve => "this request",
            PinUse::Drill => "this drill",
        },
        pinned: pinned.to_string(),
        found: found.to_string(),
        path: custodian_pins_path().display().to_string(),
    }
}

/// The error for custodian key `recipient`, pinned to `pinned`, being used for `found`.
pub fn mismatch(recipient: &str, pinned: &str, found: &str, use_: PinUse) -> CustodianPinError {
    mismatch_by_id(&custodian_key_id(recipient), pinned, found, use_)
}

/// The pin of custodian key `recipient` on this machine, if any.
pub fn custodian_pin(recipient: &str) -> Result<Option<CustodianPin>, CustodianPinError> {
    Ok(custodian_pins()?.remove(&custodian_key_id(recipient)))
}

/// After every check passed: pin custodian key `recipient` to `fingerprint`
/// (first sight) and remember `epoch` and its verify key if newer than what is
/// pinned. Re-checked under the lock: another run may have pinned meanwhile.
/// A first pin that cannot be saved is not fatal (nothing was pinned to
/// compare against); an unreadable pins file or a mismatch is.
///
/// A drill makes no first pin: a drill challenge asks for no read-back words,
/// so anyone who knows a custodian's public key could otherwise pin that key
/// to a vault of their own, and the genuine vault's requests would then be
/// refused as a fingerprint mismatch. A drill only moves an existing pin's
/// epoch forward.
pub fn record_custodian(
    recipient: &str,
    fingerprint: &str,
    epoch: u64,
    verify_key: &str,
    use_: PinUse,
) -> Result<(), CustodianPinError> {
    let key = custodian_key_id(recipient);
    locked(|| {
        let mut pins = custodian_pins()?;
        if use_ == PinUse::Drill && !pins.contains_key(&key) {
            return Ok(());
        }
        let pin = pins.entry(key.clone()).or_insert_with(|| CustodianPin {
            fingerprint: fingerprint.to_string(),
            pinned_at: crate::audit::now(),
            epoch: None,
            verify_key: None,
        });
        if pin.fingerprint != fingerprint {
            return Err(mismatch_by_id(&key, &pin.fingerprint, fingerprint, use_));
        }
        if pin.epoch.is_none_or(|seen| seen < epoch) {
            pin.epoch = Some(epoch);
            pin.verify_key = Some(verify_key.to_string());
            // Not saved is said (the caller warns): until it is, an older
            // epoch's request is not refused here as stale.
            save_custodian_pins(&pins)?;
        }
        Ok(())
    })
}

/// Deliberate re-pin: every custodian key pinned to vault `old_fingerprint` is
/// pinned to `new_fingerprint` instead. Returns how many keys moved (0: none was
/// pinned to `old_fingerprint`, and nothing changed). For a `breakglass pin …`
/// command, after the user has confirmed the new fingerprint out of band.
pub fn repin_custodian(
    old_fingerprint: &str,
    new_fingerprint: &str,
) -> Result<usize, CustodianPinError> {
    locked(|| repin_custodian_locked(old_fingerprint, new_fingerprint))
}

fn repin_custodian_locked(
    old_fingerprint: &str,
    new_fingerprint: &str,
) -> Result<usize, CustodianPinError> {
    let mut pins = custodian_pins()?;
    let now = crate::audit::now();
    let mut moved = 0;
    for pin in pins.values_mut() {
        if pin.fingerprint == old_fingerprint {
            pin.fingerprint = new_fingerprint.to_string();
            pin.pinned_at = now.clone();
            moved += 1;
        }
    }
    if moved > 0 {
        save_custodian_pins(&pins)?;
    }
    Ok(moved)
}

/// Deliberately drop the pin of one custodian key (its public recipient text),
/// so its next approve or drill pins afresh. Returns whether a pin was removed.
pub fn forget_custodian(recipient: &str) -> Result<bool, CustodianPinError> {
    locked(|| {
        let mut pins = custodian_pins()?;
        let removed = pins.remove(&custodian_key_id(recipient)).is_some();
        if removed {
            save_custodian_pins(&pins)?;
        }
        Ok(removed)
    })
}
