//! Remote quorum: the requester's request, the custodian's approval, and how
//! approvals join an unseal. Nothing here talks to a network: codes are text the
//! user carries over any channel.

use std::collections::BTreeMap;

use super::records::ShareRecord;
use super::{KdfProgress, Vault, VaultError};
use crate::audit::{self, NewEntry};
use crate::crypto::{self, CustodianIdentity, CustodianRecipient, DecryptOutcome, Passphrase};
use crate::remote::code::{self, CodeKind};
use crate::remote::pins::{self, PinUse};
use crate::remote::{pending, words, ParsedRequest, Request};

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
    pub code: String,
    pub words: Vec<String>,
    pub request_id: String,
    pub expires: String,
}

/// How a custodian proves who they are when approving.
pub enum ApproverKey {
    /// Identity files by label: age keys or SSH private keys.
    Identities(Vec<(String, Vec<CustodianIdentity>)>),
    /// A passphrase custodian's name and passphrase.
    Passphrase(String, Passphrase),
}

pub struct ApproveInput<'a> {
    pub request: &'a ParsedRequest,
    /// The read-back words the custodian heard, as typed.
    pub typed_words: &'a str,
    pub key: ApproverKey,
    /// An exported envelope (label, armored text); else the vault's copy is used.
    pub envelope: Option<(String, String)>,
}

#[derive(Debug, serde::Serialize)]
pub struct Approval {
    pub code: String,
    pub custodian: String,
}

impl Vault {
    /// Start a remote request: an ephemeral key kept only on this machine, a
    /// request code to send out, and read-back words to say by voice.
    pub fn create_request(
        &mut self,
        reason: &str,
        ttl: chrono::Duration,
        actor: &str,
    ) -> Result<RequestIssued, VaultError> {
        if reason.trim().is_empty() {
            return Err(VaultError::invalid(
                "--reason is empty; say why the vault must be opened",
            ));
        }
        let m = self.manifest().clone();
        let (identity, identity_text) = CustodianIdentity::generate_age();
        let now = chrono::Utc::now();
        let kdf: BTreeMap<_, _> = m
            .custodians
            .iter()
            .filter_map(|c| c.kdf.clone().map(|k| (c.name.clone(), k)))
            .collect();
        let parsed = ParsedRequest::new(Request {
            v: crate::remote::request::REQUEST_FORMAT,
            vault_id: m.vault_id.clone(),
            fingerprint: m.fingerprint(),
            epoch: m.epoch,
            threshold: m.threshold,
            request_id: hex::encode(crypto::random_bytes::<16>()),
            requester: actor.into(),
            reason: reason.into(),
            created: audit::now(),
            expires: (now + ttl).to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            recipient: identity
                .recipient()
                .expect("age identities have a recipient"),
            kdf,
        })
        .map_err(|e| VaultError::invalid(e.to_string()))?;
        drop(identity);
        // Argon2id: computed once here, and once by each custodian.
        let read_back = parsed
            .words()
            .map_err(|e| VaultError::invalid(e.to_string()))?;
        pending::save(&parsed, &identity_text).map_err(|e| VaultError::invalid(e.to_string()))?;
        let r = &parsed.request;
        let logged = (|| -> Result<(), VaultError> {
            let tx = self.store.begin()?;
            audit::append(
                &tx,
                vec![NewEntry::new(actor, "request", &r.request_id)
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
        })();
        if let Err(e) = logged {
            let _ = pending::discard(&r.request_id);
            return Err(e);
        }
        Ok(RequestIssued {
            code: parsed.code.clone(),
            words: read_back,
            request_id: r.request_id.clone(),
            expires: r.expires.clone(),
        })
    }
}

/// The custodian's side: check the words, open their own envelope, and seal
/// their share to the request's ephemeral key. The share is never written in
/// plaintext. `vault` is an optional local copy (for its envelope and checks).
pub fn approve(
    input: ApproveInput<'_>,
    vault: Option<&Vault>,
    progress: &mut dyn KdfProgress,
) -> Result<Approval, VaultError> {
    let parsed = input.request;
    let r = &parsed.request;
    let expected_words = parsed
        .words()
        .map_err(|e| VaultError::invalid(e.to_string()))?;
    if !words::words_match(&expected_words, input.typed_words) {
        return Err(VaultError::invalid(
            "read-back words do not match this request; it may have been altered in transit — do not approve, call the requester back",
        ));
    }
    if parsed.is_expired() {
        return Err(VaultError::invalid(format!(
            "request {} expired at {}; ask the requester for a new one",
            r.request_id, r.expires
        )));
    }
    let request_id = parsed
        .request_id_bytes()
        .ok_or_else(|| VaultError::invalid("request code has a malformed request id"))?;
    if let Some(v) = vault {
        let m = v.manifest();
        if m.vault_id != r.vault_id {
            return Err(VaultError::invalid(format!(
                "request is for vault {} but --vault is {}; use the right vault copy or your exported envelope",
                r.fingerprint,
                m.fingerprint()
            )));
        }
        if m.fingerprint() != r.fingerprint {
            return Err(VaultError::invalid(format!(
                "request {} names vault fingerprint {} but the vault copy's is {}; do not approve — call the requester back",
                r.request_id,
                r.fingerprint,
                m.fingerprint()
            )));
        }
        if m.epoch != r.epoch {
            return Err(VaultError::invalid(format!(
                "request is for epoch {} but the vault copy is at epoch {}; use a current copy",
                r.epoch, m.epoch
            )));
        }
    }

    let (record, expected_name, key) = open_own_share(&input, vault, progress)?;
    let who = format!("custodian {}", record.custodian);
    if let Some(name) = expected_name {
        if name != record.custodian {
            return Err(VaultError::invalid(format!(
                "the envelope belongs to custodian {}, not {name}",
                record.custodian
            )));
        }
    }
    if hex::encode(record.vault_id) != r.vault_id {
        return Err(VaultError::invalid(format!(
            "{who}: your envelope belongs to another vault than the request ({}); check you have the right envelope",
            r.fingerprint
        )));
    }
    if record.epoch != r.epoch {
        return Err(VaultError::invalid(format!(
            "{who}: your envelope is from epoch {}; the request is for epoch {} — re-export your envelope",
            record.epoch, r.epoch
        )));
    }
    if let Some(v) = vault {
        let entry = v
            .manifest()
            .custodian(&record.custodian)
            .ok_or_else(|| VaultError::invalid(format!("{who}: not a custodian of this vault")))?;
        let commitment = crypto::commitment(&record.vault_id, record.epoch, &record.share);
        if !crypto::ct_eq(commitment.as_bytes(), entry.commitment.as_bytes()) {
            return Err(VaultError::invalid(format!(
                "{who}: your share fails its commitment (corrupted); run `breakglass drill` and re-export"
            )));
        }
    }

    // The fingerprint this custodian key first approved or drilled for on this
    // machine: the vault copy's (verified) if given, else the one the request shows.
    let fingerprint = vault.map_or_else(|| r.fingerprint.clone(), |v| v.manifest().fingerprint());
    let key = key.ok_or_else(|| {
        VaultError::invalid(format!(
            "{who}: cannot tell which public key opened your envelope, so it cannot be pinned; use an age or ssh-ed25519 key file"
        ))
    })?;
    pins::check_custodian(&key, &fingerprint, PinUse::Approve)
        .map_err(|e| VaultError::invalid(format!("{who}: {e}")))?;

    let mut plaintext = zeroize::Zeroizing::new(Vec::new());
    plaintext.extend_from_slice(APPROVAL_MAGIC);
    plaintext.extend_from_slice(&request_id);
    plaintext.extend_from_slice(parsed.hash());
    plaintext.extend_from_slice(&record.encode());
    let recipient = CustodianRecipient::parse_public_key(&r.recipient)
        .ok()
        .filter(|rc| rc.kind() == crypto::RecipientKind::Age)
        .ok_or_else(|| {
            VaultError::invalid("request code has a malformed recipient; ask for a new request")
        })?;
    let sealed = crypto::encrypt_binary(&recipient, &plaintext).map_err(VaultError::invalid)?;
    Ok(Approval {
        code: code::encode(CodeKind::Approval, &sealed),
        custodian: record.custodian,
    })
}

/// Decrypt the approving custodian's own share, from an exported envelope or the
/// vault copy. Also gives the expected custodian name (passphrase custodians) and
/// the public recipient of the key that opened it (for the custodian pin).
fn open_own_share(
    input: &ApproveInput<'_>,
    vault: Option<&Vault>,
    progress: &mut dyn KdfProgress,
) -> Result<(ShareRecord, Option<String>, Option<String>), VaultError> {
    let mut derived = None;
    let expected_name = match &input.key {
        ApproverKey::Identities(_) => None,
        ApproverKey::Passphrase(name, passphrase) => {
            derived = Some(derive_passphrase_identity(
                input.request,
                vault,
                name,
                passphrase,
                progress,
            )?);
            Some(name.clone())
        }
    };
    let candidates: Vec<&CustodianIdentity> = match &input.key {
        ApproverKey::Identities(files) => files.iter().flat_map(|(_, ids)| ids.iter()).collect(),
        ApproverKey::Passphrase(..) => derived.iter().collect(),
    };

    let envelopes: Vec<(String, String)> = match (&input.envelope, vault) {
        (Some(env), _) => vec![env.clone()],
        (None, Some(v)) => {
            let m = v.manifest();
            candidates
                .iter()
                .filter_map(|id| {
                    let recipient = id.recipient()?;
                    let c = m.custodians.iter().find(|c| c.recipient == recipient)?;
                    Some((format!("vault envelope of {}", c.name), v.export_envelope(&c.name).ok()?))
                })
                .collect()
        }
        (None, None) => {
            return Err(VaultError::invalid(
                "no envelope: give --envelope FILE (your exported envelope) or --vault PATH (a vault copy)",
            ))
        }
    };
    if envelopes.is_empty() {
        if let Some(name) = &expected_name {
            return Err(VaultError::WrongPassphrase(name.clone()));
        }
        let labels: Vec<&str> = match &input.key {
            ApproverKey::Identities(files) => files.iter().map(|(l, _)| l.as_str()).collect(),
            ApproverKey::Passphrase(..) => Vec::new(),
        };
        return Err(VaultError::Identity {
            label: labels.join(", "),
            detail: "matches no custodian of this vault; check you have the right key file".into(),
        });
    }
    let mut problems = Vec::new();
    for (env_label, text) in &envelopes {
        for id in &candidates {
            match crypto::decrypt(text.as_bytes(), id) {
                DecryptOutcome::Plaintext(p) => {
                    return ShareRecord::decode(&p)
                        .map(|r| (r, expected_name.clone(), id.recipient()))
                        .ok_or_else(|| {
                            VaultError::invalid(format!(
                                "{env_label} does not hold a breakglass share"
                            ))
                        });
                }
                DecryptOutcome::NotMine => {}
                DecryptOutcome::Failed(why) => {
                    problems.push(format!("{env_label} is corrupted ({why})"))
                }
            }
        }
    }
    if let Some(problem) = problems.into_iter().next() {
        return Err(VaultError::invalid(format!(
            "{problem}; re-export your envelope"
        )));
    }
    if let Some(name) = expected_name {
        return Err(VaultError::WrongPassphrase(name));
    }
    let labels: Vec<&str> = envelopes.iter().map(|(l, _)| l.as_str()).collect();
    Err(VaultError::invalid(format!(
        "{} does not open with the given key; check the key and the envelope belong to the same custodian",
        labels.join(", ")
    )))
}

/// A passphrase custodian's identity, with the KDF salt and cost from the vault
/// copy if there is one, else from the request. Only the cap matters without a
/// vault: params that are not the real ones simply derive a key that opens nothing.
fn derive_passphrase_identity(
    request: &ParsedRequest,
    vault: Option<&Vault>,
    name: &str,
    passphrase: &Passphrase,
    progress: &mut dyn KdfProgress,
) -> Result<CustodianIdentity, VaultError> {
    let bad = |detail: String| VaultError::Custodian {
        name: name.to_string(),
        detail,
    };
    let spec = match vault {
        Some(v) => v.manifest().custodian(name).and_then(|c| c.kdf.clone()),
        None => request.request.kdf.get(name).cloned(),
    }
    .ok_or_else(|| {
        bad("is not a passphrase custodian of this vault; pass --identity FILE".into())
    })?;
    let allow_below_floor = vault.is_none_or(|v| v.manifest().insecure_test_only_kdf);
    spec.params.check(allow_below_floor).map_err(bad)?;
    let salt = hex::decode(&spec.salt).map_err(|_| bad("KDF salt is malformed".into()))?;
    progress.kdf_started(name);
    let identity = spec.params.derive_identity(passphrase, &salt);
    progress.kdf_finished();
    identity.map_err(bad)
}
