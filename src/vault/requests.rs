//! The requester's records of its requests, seen from the vault: a request is
//! used only if this vault logged it when it was made, and an expired one's
//! use is logged (`request_expired`) before its record is closed.

use super::unseal::RemoteApprovals;
use super::{Vault, VaultError};
use crate::audit::{self, NewEntry};
use crate::remote::{pending, ParsedRequest, PendingError};

/// A record not logged after this long is a leftover, not a `request` still
/// waiting for the vault's write lock.
const UNLOGGED_GRACE_SECS: u64 = 600;

impl Vault {
    /// `unseal --request`: [`RemoteApprovals::open`], and when the request has
    /// expired, its use is logged as `request_expired` (and so alerted) before
    /// its record is closed; it is still refused.
    pub fn open_request(
        &mut self,
        handed_back: &ParsedRequest,
        handed_back_label: &str,
        approvals: Vec<(String, String)>,
        actor: &str,
    ) -> Result<RemoteApprovals, PendingError> {
        let opened = RemoteApprovals::open(handed_back, handed_back_label, approvals);
        if let Err(PendingError::Expired(..) | PendingError::Closed(..)) = &opened {
            if let Some(request) = pending::expired(&handed_back.request.request_id) {
                self.request_expired(&request, actor);
            }
        }
        let opened = opened?;
        // A record whose `request` row never committed (a kill between the
        // two) was never handed out as far as this vault knows: not used.
        let request = opened.request();
        let logged = self
            .logged_requests()
            .map_err(|e| PendingError::Vault(e.to_string()))?;
        let id = &request.request.request_id;
        let sha256 = hex::encode(request.hash());
        if !logged
            .iter()
            .any(|(logged_id, hash)| logged_id == id && hash.as_deref().is_none_or(|h| h == sha256))
        {
            return Err(PendingError::NotLogged(id.clone()));
        }
        Ok(opened)
    }

    /// The `request` rows of this vault's log: request id and the SHA-256 of
    /// the exact request bytes they logged (absent in rows from older versions).
    fn logged_requests(&self) -> Result<Vec<(String, Option<String>)>, VaultError> {
        Ok(self
            .store
            .read()
            .audit_entries_with(&["request"])?
            .into_iter()
            .map(|e| {
                let hash = serde_json::from_str::<serde_json::Value>(&e.details)
                    .ok()
                    .and_then(|d| d["request_sha256"].as_str().map(str::to_string));
                (e.subject, hash)
            })
            .collect())
    }

    /// Delete this vault's request records that were never logged here and are
    /// older than a few minutes: left by a `request` killed between saving its
    /// key and committing its row. Nobody ever saw their code. Best effort.
    pub(crate) fn sweep_unlogged_requests(&self) {
        let stale = pending::open_ids_older_than(
            &hex::encode(self.vault_id()),
            std::time::Duration::from_secs(UNLOGGED_GRACE_SECS),
        );
        if stale.is_empty() {
            return;
        }
        let Ok(logged) = self.logged_requests() else {
            return;
        };
        for id in stale {
            if !logged.iter().any(|(logged_id, _)| *logged_id == id) {
                let _ = pending::discard(&id);
            }
        }
    }

    /// An expired request of this vault was used: write its `request_expired`
    /// row unless the log already has one for it (so the row and its alert
    /// come once however often it is tried), then close its record. Best
    /// effort: the refusal is what the user needs; a row that could not be
    /// written is tried again at the next use, as the log still lacks it.
    pub(crate) fn request_expired(&mut self, request: &ParsedRequest, actor: &str) {
        let r = &request.request;
        if r.vault_id == hex::encode(self.vault_id()) {
            let _ = (|| -> Result<(), VaultError> {
                let tx = self.store.begin()?;
                let logged = tx
                    .read()
                    .audit_entries_with(&["request_expired"])?
                    .iter()
                    .any(|e| e.subject == r.request_id);
                if !logged {
                    audit::append(
                        &tx,
                        vec![NewEntry::new(actor, "request_expired", &r.request_id)
                            .reason(&r.reason)
                            .details(serde_json::json!({ "expires": r.expires }))],
                    )?;
                    tx.commit()?;
                }
                Ok(())
            })();
        }
        let _ = pending::close(&r.request_id, "expired");
    }
}
