//! Per-machine memory of each vault seen here: its fingerprint (a mismatch is a
//! hard error: the file claims a vault id it cannot sign for) and the highest
//! epoch seen (a lower one means a stale copy).

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::pending::state_dir;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Pin {
    pub fingerprint: String,
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

fn load() -> Pins {
    let Ok(bytes) = std::fs::read(pins_path()) else {
        return Pins::default();
    };
    serde_json::from_slice(&bytes)
        .or_else(|_| {
            // The first format held only the vault-id pins.
            serde_json::from_slice::<BTreeMap<String, Pin>>(&bytes).map(|vaults| Pins {
                vaults,
                ..Pins::default()
            })
        })
        .unwrap_or_default()
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
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(state_dir())?;
    let path = pins_path();
    let staging = path.with_extension(format!("json.{}", std::process::id()));
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&staging)?;
    file.write_all(&serde_json::to_vec_pretty(pins).expect("pins serialize"))?;
    file.sync_all()?;
    std::fs::rename(staging, path)
}

/// Run `change` on the pins under an exclusive lock, so two commands at once
/// never lose each other's pins, then save them. If the state directory cannot
/// be written, the pins read are still used.
fn with_pins<R>(change: impl FnOnce(&mut Pins) -> R) -> R {
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
    if let Ok(file) = &lock {
        let _ = file.lock();
    }
    let mut pins = load();
    let result = change(&mut pins);
    let _ = save(&pins);
    result
}

/// What this machine knows about a vault now being opened.
pub enum PinCheck {
    /// First sight, or the same or a newer epoch (the pin is updated).
    Fine,
    /// An older epoch than seen before here.
    Stale { seen: u64 },
    /// Same vault id, different fingerprint.
    Mismatch { pinned: String },
    /// This file path held another vault when it was first used here.
    PathMismatch { pinned: String },
}

/// Check (and update) the pins for a vault opened from `path`. Failing to
/// write the pins is not fatal: the check still ran against what was read.
pub fn check(vault_id: &str, fingerprint: &str, epoch: u64, path: &Path) -> PinCheck {
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
        Some(pin) if pin.fingerprint != fingerprint => {
            return PinCheck::Mismatch {
                pinned: pin.fingerprint.clone(),
            }
        }
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
/// replacing whatever the path held before.
pub fn pin_new_vault(vault_id: &str, fingerprint: &str, epoch: u64, path: &Path) {
    let key = path_key(path);
    with_pins(|pins| {
        pins.paths.insert(key, fingerprint.to_string());
        pins.vaults.insert(
            vault_id.to_string(),
            Pin {
                fingerprint: fingerprint.to_string(),
                max_epoch: epoch,
            },
        );
    })
}

/// Record a higher epoch reached by this process (after a re-key).
pub fn raise_epoch(vault_id: &str, fingerprint: &str, epoch: u64) {
    with_pins(|pins| {
        let pin = pins.vaults.entry(vault_id.to_string()).or_insert(Pin {
            fingerprint: fingerprint.to_string(),
            max_epoch: epoch,
        });
        if pin.fingerprint == fingerprint && pin.max_epoch < epoch {
            pin.max_epoch = epoch;
        }
    })
}

/// The deliberate re-pin: `path`, pinned to `old`, now holds `new`. Refuses
/// unless both fingerprints are exactly what the pin and the file say.
pub fn repin_path(path: &Path, old: &str, new: &str) -> Result<(), String> {
    let key = path_key(path);
    with_pins(|pins| {
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
        pins.paths.insert(key, new.to_string());
        Ok(())
    })
}

/// The fingerprint this machine pinned for the file at `path`, if any.
pub fn pinned_path(path: &Path) -> Option<String> {
    load().paths.get(&path_key(path)).cloned()
}
