//! The requester's side of an open request: its ephemeral private key, kept only
//! on this machine in the user's state directory (mode 0600), never in the vault.
//! It is replaced by a tombstone when used or found expired, so a replayed
//! approval is named.

use std::fs::{DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::PathBuf;

use age::secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::request::ParsedRequest;
use crate::crypto::CustodianIdentity;

/// `BREAKGLASS_STATE_DIR`, else `$XDG_STATE_HOME/breakglass`, else `~/.local/state/breakglass`.
pub fn state_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("BREAKGLASS_STATE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("breakglass");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| ".".into());
    PathBuf::from(home).join(".local/state/breakglass")
}

fn requests_dir() -> PathBuf {
    state_dir().join("requests")
}

fn file_for(request_id: &str) -> PathBuf {
    requests_dir().join(format!("{request_id}.json"))
}

/// The requester's own record of a request, written at `request` time. It is the
/// only source of truth for the request when approvals come back: the request
/// file handed back (or kept on disk) only names which record to use.
#[derive(Serialize, Deserialize)]
struct PendingFile {
    request_id: String,
    vault_id: String,
    reason: String,
    expires: String,
    /// The request code exactly as sent out (format 2). Absent in records
    /// from older versions, which cannot be used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    request: Option<String>,
    /// SHA-256 of the request's core bytes (hex): what every approval must be bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    request_sha256: Option<String>,
    /// The ephemeral identity while open; absent once used or expired.
    identity: Option<String>,
    closed: Option<String>,
}

/// A summary of one request made on this machine, for `status`.
#[derive(Debug, Clone, Serialize)]
pub struct OpenRequest {
    /// The request's random id (hex).
    pub request_id: String,
    /// The reason the requester gave.
    pub reason: String,
    /// When it expires (RFC 3339, UTC).
    pub expires: String,
    /// It has expired already.
    pub expired: bool,
}

/// An open request made on this machine, as recorded when it was made: the
/// request itself (reason, expiry, threshold, recipient…), its hash, and the
/// ephemeral key approvals are sealed to.
pub struct PendingRequest {
    /// The request as made.
    pub request: ParsedRequest,
    /// The ephemeral key approvals for it are sealed to.
    pub identity: CustodianIdentity,
}

/// Why an open request cannot be used; each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum PendingError {
    /// No record of this request on this machine (request id, state directory).
    #[error("request {0} was not made on this machine (no key for it in {1}); run `breakglass unseal --request` where `breakglass request` ran")]
    Unknown(String, String),
    /// The request was already used or cancelled (request id, how it was closed).
    #[error(
        "request {0} was already {1}; approvals for it cannot be used again — make a new request"
    )]
    Closed(String, String),
    /// The request expired (request id, when).
    #[error("request {0} expired at {1}; make a new request")]
    Expired(String, String),
    /// The request's record is unreadable (request id, file, detail).
    #[error("request {0}: its record {1} is damaged or from an older breakglass ({2}); make a new request")]
    Damaged(String, String, String),
    /// The state directory could not be read or written (path, detail).
    #[error("state directory {0}: {1}")]
    Io(String, String),
    /// The vault's log holds no row for the request (request id).
    #[error("request {0} was never logged in this vault (the `breakglass request` that made it was interrupted, or this is another copy of the vault); it cannot be used — make a new request")]
    NotLogged(String),
    /// A vault error, passed through.
    #[error("{0}")]
    Vault(String),
}

fn io_err(e: std::io::Error) -> PendingError {
    PendingError::Io(state_dir().display().to_string(), e.to_string())
}

/// Staging copies of request records: written in full, synced, then moved into
/// place, always under the state directory's lock.
const SAVING: &str = "saving";
const CLOSING: &str = "closing";

/// Remove staging copies of request records that a killed run left (a
/// `.saving` one may hold an ephemeral key). Only under the state lock.
pub(super) fn sweep_staging() {
    let Ok(entries) = std::fs::read_dir(requests_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let ext = path.extension().and_then(|e| e.to_str());
        if ext == Some(SAVING) || ext == Some(CLOSING) {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Write `contents` to `staging` (0600, fresh), synced.
fn write_staging(staging: &std::path::Path, contents: &[u8]) -> Result<(), PendingError> {
    let _ = std::fs::remove_file(staging);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(staging)
        .map_err(io_err)?;
    file.write_all(contents)
        .and_then(|_| file.sync_all())
        .map_err(io_err)
}

/// Keep a new request (its exact bytes and their hash) and its ephemeral identity
/// (created 0600, never overwritten). Written whole or not at all: staged, then
/// linked into place (which refuses an existing record).
pub fn save(request: &ParsedRequest, identity: &SecretString) -> Result<(), PendingError> {
    super::pins::locked(|| save_locked(request, identity))
}

fn save_locked(request: &ParsedRequest, identity: &SecretString) -> Result<(), PendingError> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(requests_dir())
        .map_err(io_err)?;
    let r = &request.request;
    let text = request.code.clone();
    let contents = Zeroizing::new(
        serde_json::to_vec(&PendingFile {
            request_id: r.request_id.clone(),
            vault_id: r.vault_id.clone(),
            reason: r.reason.clone(),
            expires: r.expires.clone(),
            request: Some(text),
            request_sha256: Some(hex::encode(request.hash())),
            identity: Some(identity.expose_secret().to_string()),
            closed: None,
        })
        .expect("pending file serializes"),
    );
    let path = file_for(&r.request_id);
    let staging = path.with_extension(SAVING);
    write_staging(&staging, &contents)?;
    let linked = std::fs::hard_link(&staging, &path);
    let _ = std::fs::remove_file(&staging);
    linked.map_err(io_err)
}

fn read(request_id: &str) -> Result<Option<PendingFile>, PendingError> {
    match std::fs::read(file_for(request_id)) {
        Ok(bytes) => {
            let bytes = Zeroizing::new(bytes);
            serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                PendingError::Damaged(
                    request_id.to_string(),
                    file_for(request_id).display().to_string(),
                    e.to_string(),
                )
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(e)),
    }
}

/// The request as recorded here, checked against its stored hash.
fn recorded_request(request_id: &str, file: &PendingFile) -> Result<ParsedRequest, PendingError> {
    let damaged = |why: &str| {
        PendingError::Damaged(
            request_id.to_string(),
            file_for(request_id).display().to_string(),
            why.to_string(),
        )
    };
    let (Some(text), Some(hash)) = (&file.request, &file.request_sha256) else {
        return Err(damaged("it does not hold the request bytes"));
    };
    let request = ParsedRequest::parse(text).map_err(|e| damaged(&e.to_string()))?;
    if !crate::crypto::ct_eq(hex::encode(request.hash()).as_bytes(), hash.as_bytes()) {
        return Err(damaged(
            "the request bytes do not match their recorded hash",
        ));
    }
    if request.request.request_id != request_id || file.request_id != request_id {
        return Err(damaged("it is filed under another request id"));
    }
    Ok(request)
}

/// The open, unexpired request `request_id` made on this machine, from this
/// machine's own record (never from a request file handed back). An expired one
/// is refused and left as it is: the caller logs its use (`request_expired`),
/// then closes it ([`close`]), so the row is never lost to a record closed first.
pub fn open(request_id: &str) -> Result<PendingRequest, PendingError> {
    let id = request_id;
    if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(PendingError::Unknown(
            id.to_string(),
            requests_dir().display().to_string(),
        ));
    }
    let Some(file) = read(id)? else {
        return Err(PendingError::Unknown(
            id.to_string(),
            requests_dir().display().to_string(),
        ));
    };
    if let Some(closed) = &file.closed {
        return Err(PendingError::Closed(id.to_string(), closed.clone()));
    }
    let request = recorded_request(id, &file)?;
    if request.is_expired() {
        return Err(PendingError::Expired(
            id.to_string(),
            request.request.expires.clone(),
        ));
    }
    let text = Zeroizing::new(file.identity.unwrap_or_default());
    let identity = CustodianIdentity::parse_file(text.as_bytes())
        .ok()
        .and_then(|mut ids| ids.pop())
        .ok_or_else(|| {
            PendingError::Damaged(
                id.to_string(),
                file_for(id).display().to_string(),
                "its key is unreadable".into(),
            )
        })?;
    Ok(PendingRequest { request, identity })
}

/// The request `request_id` as recorded here, if its record says it has
/// expired: past its expiry, or already closed as expired (by `status`, or by
/// an earlier use). `None` for an unknown, damaged, used or unexpired one.
pub fn expired(request_id: &str) -> Option<ParsedRequest> {
    let file = read(request_id).ok()??;
    let request = recorded_request(request_id, &file).ok()?;
    let closed_expired = file
        .closed
        .as_deref()
        .is_some_and(|why| why.starts_with("expired"));
    (closed_expired || (file.closed.is_none() && request.is_expired())).then_some(request)
}

/// Remove a request whose audit row was never written: it never existed as
/// far as the vault knows. Deleting needs no free space, unlike closing.
pub fn discard(request_id: &str) -> Result<(), PendingError> {
    super::pins::locked(|| {
        let path = file_for(request_id);
        for staging in [path.with_extension(SAVING), path.with_extension(CLOSING)] {
            let _ = std::fs::remove_file(staging);
        }
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err(e)),
            _ => Ok(()),
        }
    })
}

/// Delete the ephemeral key, leaving a tombstone that says why. A record
/// already closed keeps its first tombstone.
pub fn close(request_id: &str, why: &str) -> Result<(), PendingError> {
    super::pins::locked(|| close_locked(request_id, why))
}

fn close_locked(request_id: &str, why: &str) -> Result<(), PendingError> {
    let Some(mut file) = read(request_id)? else {
        return Ok(());
    };
    if file.closed.is_some() {
        return Ok(());
    }
    file.identity = None;
    file.closed = Some(format!("{why} at {}", crate::audit::now()));
    let path = file_for(request_id);
    let staging = path.with_extension(CLOSING);
    write_staging(&staging, &serde_json::to_vec(&file).expect("serializes"))?;
    std::fs::rename(&staging, &path).map_err(io_err)
}

/// Open records of requests for `vault_id` last written more than `age` ago:
/// ids only, nothing closed or read beyond what says which vault they are for.
pub fn open_ids_older_than(vault_id: &str, age: std::time::Duration) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(requests_dir()) else {
        return Vec::new();
    };
    let mut ids = Vec::new();
    for entry in entries.flatten() {
        if entry.path().extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|elapsed| elapsed > age);
        let Ok(bytes) = std::fs::read(entry.path()).map(Zeroizing::new) else {
            continue;
        };
        let Ok(file) = serde_json::from_slice::<PendingFile>(&bytes) else {
            continue;
        };
        let vault = recorded_request(&file.request_id, &file)
            .map(|parsed| parsed.request.vault_id)
            .unwrap_or_else(|_| file.vault_id.clone());
        if old && file.closed.is_none() && vault == vault_id {
            ids.push(file.request_id);
        }
    }
    ids
}

/// Requests made on this machine for a vault; expired ones are closed as they are seen.
pub fn list_for(vault_id: &str) -> Vec<OpenRequest> {
    let Ok(entries) = std::fs::read_dir(requests_dir()) else {
        return Vec::new();
    };
    let now = chrono::Utc::now();
    let mut open = Vec::new();
    for entry in entries.flatten() {
        // Records only, never a staging copy.
        if entry.path().extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let Ok(bytes) = std::fs::read(entry.path()).map(Zeroizing::new) else {
            continue;
        };
        let Ok(file) = serde_json::from_slice::<PendingFile>(&bytes) else {
            continue;
        };
        if file.closed.is_some() {
            continue;
        }
        // What the request itself says (its recorded bytes), else the summary fields.
        let (vault, reason, expires) = match recorded_request(&file.request_id, &file) {
            Ok(parsed) => {
                let r = parsed.request;
                (r.vault_id, r.reason, r.expires)
            }
            Err(_) => (file.vault_id, file.reason, file.expires),
        };
        if vault != vault_id {
            continue;
        }
        let expired = chrono::DateTime::parse_from_rfc3339(&expires)
            .map(|t| t.with_timezone(&chrono::Utc) <= now)
            .unwrap_or(true);
        if expired {
            let _ = close(&file.request_id, "expired");
        }
        open.push(OpenRequest {
            request_id: file.request_id,
            reason,
            expires,
            expired,
        });
    }
    open.sort_by(|a, b| a.expires.cmp(&b.expires));
    open
}
