//! Per-machine memory of each vault seen here: its fingerprint (a mismatch is a
//! hard error: the file claims a vault id it cannot sign for) and the highest
//! epoch seen (a lower one means a stale copy).

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};

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

fn load() -> BTreeMap<String, Pin> {
    std::fs::read(pins_path())
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

fn save(pins: &BTreeMap<String, Pin>) -> std::io::Result<()> {
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

/// What this machine knows about a vault now being opened.
pub enum PinCheck {
    /// First sight, or the same or a newer epoch (the pin is updated).
    Fine,
    /// An older epoch than seen before here.
    Stale { seen: u64 },
    /// Same vault id, different fingerprint.
    Mismatch { pinned: String },
}

/// Check (and update) the pin for `vault_id`. Failing to write the pin is not
/// fatal: the check still ran against what was read.
pub fn check(vault_id: &str, fingerprint: &str, epoch: u64) -> PinCheck {
    let mut pins = load();
    match pins.get(vault_id) {
        Some(pin) if pin.fingerprint != fingerprint => {
            return PinCheck::Mismatch {
                pinned: pin.fingerprint.clone(),
            }
        }
        Some(pin) if pin.max_epoch > epoch => {
            return PinCheck::Stale {
                seen: pin.max_epoch,
            }
        }
        Some(pin) if pin.max_epoch == epoch => return PinCheck::Fine,
        _ => {}
    }
    pins.insert(
        vault_id.to_string(),
        Pin {
            fingerprint: fingerprint.to_string(),
            max_epoch: epoch,
        },
    );
    let _ = save(&pins);
    PinCheck::Fine
}
