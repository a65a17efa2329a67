//! Remote quorum: the requester's request, the custodian's approval, and how
//! approvals join an unseal. Nothing here talks to a network: codes are text the
//! user carries over any channel.

use std::collections::BTreeMap;

use super::{Vault, VaultError};
use crate::audit::{self, NewEntry};
use crate::crypto::{self, CustodianIdentity};
use crate::manifest;
use crate::remote::request::{ManifestSection, PURPOSE_UNSEAL};
use crate::remote::{pending, ParsedRequest, Request};

/// Marks an approval's plaintext: magic ‖ request id (16) ‖ SHA-256 of the exact
/// request bytes (32) ‖ share record. The requester accepts an approval only if
/// the hash is that of the request it recorded when it made the request.
pub(crate) const APPROVAL_MAGIC: &[u8; 8] = b"BGAPPR2\0";
/// Approvals from before the request hash was bound (request id only): refused by name.
pub(crate) const APPROVAL_MAGIC_V1: &[u8; 8] = b"BGAPPR1\0";
/// Length of an approval's header: magic, request id, request hash.
pub(crate) const APPROVAL_HEADER_LEN: usize = 8 + 16 + 32;

/// What `request` gives the requester to send out.
#[derive(Debug, serde::Serialize)]
pub struct RequestIssued {
    /// The `BGREQ2:` request code to send to the custodians.
    pub code: String,
    /// The read-back words the custodians must read back before approving.
    pub words: Vec<String>,
    /// The request's random id (hex).
    pub request_id: String,
    /// When the request stops being approvable (RFC 3339, UTC).
    pub expires: String,
    /// Characters in `code`.
    pub code_length: usize,
    /// Shorter codes carrying one custodian's envelope each (`--for NAME`);
    /// same request, same words.
    pub codes_for: BTreeMap<String, String>,
}

impl Vault {
    /// What a custodian needs to check a request with only their key: this
    /// epoch's signed manifest, the key links from epoch 2 on, and every
    /// custodian's current envelope (binary).
    pub(crate) fn custodian_facts(
        &self,
    ) -> Result<(ManifestSection, BTreeMap<String, Vec<u8>>), VaultError> {
        let row = self.current.to_row();
        let links = self
            .store
            .read()
            .manifests()?
            .iter()
            .filter_map(|row| {
                manifest::SignedManifest::parse_self_signed(row.epoch, &row.body, &row.signatures)
                    .ok()?
                    .link()
            })
            .collect();
        let mut envelopes = BTreeMap::new();
        for c in &self.manifest().custodians {
            let armored = self.export_envelope(&c.name)?;
            let binary =
                crypto::dearmor(armored.as_bytes()).map_err(|e| VaultError::Custodian {
                    name: c.name.clone(),
                    detail: format!(
                        "its envelope in the vault is unreadable ({e}); run `breakglass rekey`"
                    ),
                })?;
            envelopes.insert(c.name.clone(), binary);
        }
        Ok((
            ManifestSection {
                body: row.body,
                signatures: row.signatures,
                links,
            },
            envelopes,
        ))
    }

    /// Start a remote request: an ephemeral key kept only on this machine, a
    /// request code to send out (carrying what custodians need to check it),
    /// and read-back words to say by voice. `for_custodians` also get a
    /// shorter code with only their own envelope.
    pub fn create_request(
        &mut self,
        reason: &str,
        ttl: chrono::Duration,
        actor: &str,
        for_custodians: &[String],
    ) -> Result<RequestIssued, VaultError> {
        if reason.trim().is_empty() {
            return Err(VaultError::invalid(
                "--reason is empty; say why the vault must be opened",
            ));
        }
        for name in for_custodians {
            if self.manifest().custodian(name).is_none() {
                return Err(VaultError::Custodian {
                    name: name.clone(),
                    detail: "--for: no such custodian; run `breakglass custodian list`".into(),
                });
            }
        }
        let (identity, identity_text) = CustodianIdentity::generate_age();
        let recipient = identity
            .recipient()
            .expect("age identities have a recipient");
        drop(identity);
        self.sweep_unlogged_requests();
        let parsed = self.new_request_code(PURPOSE_UNSEAL, reason, ttl, actor, recipient)?;
        // Argon2id: computed once here, and once by each custodian.
        let read_back = parsed
            .words()
            .map_err(|e| VaultError::invalid(e.to_string()))?;
        pending::save(&parsed, &identity_text).map_err(|e| VaultError::invalid(e.to_string()))?;
        let r = &parsed.request;
        let logged = self.log_request("request", &parsed, reason, actor, &read_back);
        if let Err(e) = logged {
            let _ = pending::discard(&r.request_id);
            return Err(e);
        }
        Ok(RequestIssued {
            code_length: parsed.code.len(),
            codes_for: for_custodians
                .iter()
                .filter_map(|n| Some((n.clone(), parsed.only_for(n)?.code)))
                .collect(),
            code: parsed.code.clone(),
            words: read_back,
            request_id: r.request_id.clone(),
            expires: r.expires.clone(),
        })
    }

    /// A request or drill-challenge code for this epoch, carrying the facts.
    pub(crate) fn new_request_code(
        &self,
        purpose: &str,
        reason: &str,
        ttl: chrono::Duration,
        actor: &str,
        recipient: String,
    ) -> Result<ParsedRequest, VaultError> {
        let m = self.manifest();
        let (section, envelopes) = self.custodian_facts()?;
        let now = chrono::Utc::now();
        ParsedRequest::new(
            Request {
                v: crate::remote::request::REQUEST_FORMAT,
                purpose: purpose.into(),
                vault_id: m.vault_id.clone(),
                fingerprint: m.fingerprint(),
                epoch: m.epoch,
                threshold: m.threshold,
                request_id: hex::encode(crypto::random_bytes::<16>()),
                requester: actor.into(),
                reason: reason.into(),
                created: audit::now(),
                expires: (now + ttl).to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                recipient,
                manifest_sha256: String::new(),
                envelopes: BTreeMap::new(),
            },
            section,
            envelopes,
        )
        .map_err(|e| VaultError::invalid(e.to_string()))
    }

    /// Log a request or challenge (one transaction): its hash and words, so
    /// the log shows exactly what custodians were asked.
    pub(crate) fn log_request(
        &mut self,
        action: &'static str,
        parsed: &ParsedRequest,
        reason: &str,
        actor: &str,
        read_back: &[String],
    ) -> Result<(), VaultError> {
        let r = &parsed.request;
        let tx = self.store.begin()?;
        audit::append(
            &tx,
            vec![NewEntry::new(actor, action, &r.request_id)
                .reason(reason)
                .details(serde_json::json!({
                    "epoch": r.epoch,
                    "expires": r.expires,
                    "requester": r.requester,
                    "words": read_back,
                    "request_sha256": hex::encode(parsed.hash()),
                }))],
        )?;
        tx.commit()?;
        Ok(())
    }
}
