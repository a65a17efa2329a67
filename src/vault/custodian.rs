//! The custodian's side of a remote request or drill challenge, with nothing
//! but their own key and the code: check everything the code carries first
//! (signed manifest, key chain from the pinned fingerprint, own envelope,
//! share commitment, expiry), and only then ask for the read-back words.

use super::records::ShareRecord;
use super::unseal::{check_share, derive, is_hardware_kind, passphrase_custodian};
use super::{KdfProgress, Vault, VaultError};
use crate::crypto::{
    self, CustodianIdentity, CustodianRecipient, DecryptOutcome, Passphrase, ShareProofKey,
    VerifyKey,
};
use crate::manifest::{self, ChainError, Manifest, SignedManifest};
use crate::remote::code::{self, CodeKind};
use crate::remote::pins::{self, CustodianPin, PinUse};
use crate::remote::{words, ParsedRequest};

/// How a custodian proves who they are when approving.
pub enum ApproverKey {
    /// Identity files by label: age keys or SSH private keys.
    Identities(Vec<(String, Vec<CustodianIdentity>)>),
    /// A passphrase custodian's name and passphrase.
    Passphrase(String, Passphrase),
}

/// What a custodian gives to approve a remote request.
pub struct ApproveInput<'a> {
    /// The request being approved, already parsed and checked.
    pub request: &'a ParsedRequest,
    /// The custodian's key: an identity file's keys or a passphrase.
    pub key: ApproverKey,
    /// An exported envelope (label, armored text); else the one the request
    /// carries, else a `--vault` copy's.
    pub envelope: Option<(String, String)>,
    /// A hardware-key custodian's name and PIN given up front
    /// (`--passphrase-file NAME=PATH` beside `--identity`): it answers the
    /// plugin's PIN request instead of a prompt.
    pub pin: Option<(String, Passphrase)>,
}

/// A signed approval code for the requester, and who made it.
#[derive(Debug, serde::Serialize)]
pub struct Approval {
    /// The `BGAPR1:` approval code to send back to the requester.
    pub code: String,
    /// The approving custodian's name.
    pub custodian: String,
}

/// A request checked from the custodian's side: every check that needs no
/// words has passed. Holds the custodian's share until dropped (zeroized).
pub struct CheckedRequest<'a> {
    /// The request that was checked.
    pub request: &'a ParsedRequest,
    /// The custodian whose key matched the request's vault.
    pub custodian: String,
    /// No pin for this custodian key on this machine yet: the fingerprint is
    /// trusted on first use, so the custodian must compare it now.
    pub first_use: bool,
    /// The custodian's key, as pinned on this machine.
    key_recipient: String,
    manifest: Manifest,
    record: ShareRecord,
}

/// Check a request (or drill challenge) against the custodian's key before
/// anything is asked of them. `vault` is an optional trusted local copy.
pub fn check_request<'a>(
    input: ApproveInput<'a>,
    vault: Option<&Vault>,
    progress: &mut dyn KdfProgress,
) -> Result<CheckedRequest<'a>, VaultError> {
    let parsed = input.request;
    let r = &parsed.request;
    let id = &r.request_id;
    let what = if parsed.is_drill() {
        "drill challenge"
    } else {
        "request"
    };
    if parsed.is_expired() {
        return Err(VaultError::invalid(format!(
            "{what} {id} expired at {}; ask the requester for a new one",
            r.expires
        )));
    }
    let refuse = |why: String| {
        VaultError::invalid(format!(
            "{what} {id}: {why}; do not approve it — call the requester back"
        ))
    };
    let signed = SignedManifest::parse_self_signed(
        r.epoch,
        &parsed.manifest.body,
        &parsed.manifest.signatures,
    )
    .map_err(|e| refuse(format!("the manifest it carries is not valid ({e})")))?;
    let m = signed.manifest.clone();
    if m.vault_id != r.vault_id || m.fingerprint() != r.fingerprint || m.threshold != r.threshold {
        return Err(refuse(
            "its vault, fingerprint or threshold differ from its signed manifest".into(),
        ));
    }
    if let Some(stranger) = r.envelopes.keys().find(|n| m.custodian(n).is_none()) {
        return Err(refuse(format!(
            "it carries an envelope for {stranger}, who is not a custodian"
        )));
    }
    let copy = vault.map(|v| check_copy(v, &signed)).transpose()?;
    // Before any key is used (a KDF run, an envelope opened): a chain from the
    // genesis key that is broken, not merely missing links from older epochs,
    // is forged whatever this machine pinned.
    if let Some(genesis) = VerifyKey::from_hex(&m.genesis_verify_key) {
        match manifest::follow_links(&m.vault_id, 1, genesis, &parsed.manifest.links, m.epoch) {
            Ok(key) if Some(key) != m.verify_key() => {
                return Err(refuse(ChainError::WrongEnd(m.epoch).to_string()))
            }
            Err(e @ ChainError::BadLink(_)) => return Err(refuse(e.to_string())),
            _ => {}
        }
    }

    let (record, key_recipient) = open_own_share(&input, &m, vault, progress)?;
    let who = format!("custodian {}", record.custodian);
    if let ApproverKey::Passphrase(name, _) = &input.key {
        if *name != record.custodian {
            return Err(VaultError::invalid(format!(
                "the envelope belongs to custodian {}, not {name}",
                record.custodian
            )));
        }
    }
    let entry = m
        .custodian(&record.custodian)
        .ok_or_else(|| VaultError::invalid(format!("{who}: not a custodian of this vault")))?;
    if record.epoch != r.epoch && input.envelope.is_some() {
        return Err(VaultError::invalid(format!(
            "{who}: your exported envelope is from epoch {}, the request is for epoch {}; drop --envelope (the request carries your current one)",
            record.epoch, r.epoch
        )));
    }
    let vault_id = m
        .vault_id_bytes()
        .ok_or_else(|| refuse("the manifest it carries has a malformed vault id".into()))?;
    let share =
        check_share(vault_id, m.epoch, usize::from(m.threshold), entry, record).map_err(|why| {
            VaultError::invalid(format!(
                "{who}: {why}; do not approve — call the requester back"
            ))
        })?;
    if let Some(proof_key) = &entry.proof_key {
        if ShareProofKey::derive(&vault_id, m.epoch, &share)
            .public_key()
            .to_hex()
            != *proof_key
        {
            return Err(VaultError::invalid(format!(
                "{who}: your share does not derive the proof key the manifest lists; do not approve — call the requester back"
            )));
        }
    }
    let first_use = check_key_chain(&key_recipient, &signed, parsed, copy, &who)?;
    let record = ShareRecord {
        vault_id,
        epoch: m.epoch,
        threshold: m.threshold,
        index: entry.index,
        custodian: entry.name.clone(),
        share,
    };
    Ok(CheckedRequest {
        request: parsed,
        first_use,
        custodian: entry.name.clone(),
        key_recipient,
        manifest: m,
        record,
    })
}

/// A trusted local copy given with `--vault`: same vault; not newer than the
/// request; at the same epoch, the very same manifest. Returns the key of the
/// copy's epoch, a trusted start for the key chain.
fn check_copy(vault: &Vault, signed: &SignedManifest) -> Result<(u64, VerifyKey), VaultError> {
    let copy = vault.manifest();
    let m = &signed.manifest;
    if copy.fingerprint() != m.fingerprint() {
        return Err(VaultError::invalid(format!(
            "request is for vault {} but --vault is {}; use the right vault copy, or drop --vault",
            m.fingerprint(),
            copy.fingerprint()
        )));
    }
    if copy.epoch > m.epoch {
        return Err(VaultError::invalid(format!(
            "request is for epoch {} but your vault copy is already at epoch {}; the request is stale — ask the requester for a new one",
            m.epoch, copy.epoch
        )));
    }
    if copy.epoch == m.epoch && vault.current.body != signed.body {
        return Err(VaultError::invalid(format!(
            "request's manifest for epoch {} differs from your vault copy's; do not approve — call the requester back",
            m.epoch
        )));
    }
    Ok((
        copy.epoch,
        copy.verify_key().expect("a verified copy has a verify key"),
    ))
}

/// The request's epoch key must follow, by signed key links, from a key this
/// custodian already trusts: the genesis key the pinned fingerprint commits to,
/// the newest epoch key pinned with it, or a `--vault` copy's key. Returns
/// whether this key has no pin here yet (first use).
fn check_key_chain(
    key_recipient: &str,
    signed: &SignedManifest,
    parsed: &ParsedRequest,
    copy: Option<(u64, VerifyKey)>,
    who: &str,
) -> Result<bool, VaultError> {
    let m = &signed.manifest;
    let fingerprint = m.fingerprint();
    let pin = pins::custodian_pin(key_recipient)
        .map_err(|e| VaultError::invalid(format!("{who}: {e}")))?;
    if let Some(pin) = &pin {
        if pin.fingerprint != fingerprint {
            return Err(VaultError::invalid(format!(
                "{who}: {}",
                pins::mismatch(
                    key_recipient,
                    &pin.fingerprint,
                    &fingerprint,
                    PinUse::Approve
                )
            )));
        }
    }
    let pinned = pin.as_ref().and_then(pinned_epoch_key);
    if let Some((epoch, key)) = pinned {
        if epoch > m.epoch {
            return Err(VaultError::invalid(format!(
                "{who}: this request is for epoch {} but you have already approved or drilled for epoch {epoch} of this vault; it is stale or replayed — ask the requester for a new one",
                m.epoch
            )));
        }
        if epoch == m.epoch && Some(key) != m.verify_key() {
            return Err(VaultError::invalid(format!(
                "{who}: VAULT KEY MISMATCH: epoch {epoch}'s key differs from the one you approved for before; the request may be forged — do not approve, call the requester back"
            )));
        }
    }
    let genesis = VerifyKey::from_hex(&m.genesis_verify_key).map(|k| (1, k));
    // Start from the newest key already trusted: it needs the fewest links.
    let start = [genesis, pinned, copy]
        .into_iter()
        .flatten()
        .max_by_key(|(epoch, _)| *epoch)
        .ok_or_else(|| {
            VaultError::invalid(format!(
                "{who}: the request's manifest has a malformed genesis key; do not approve — call the requester back"
            ))
        })?;
    match manifest::follow_links(&m.vault_id, start.0, start.1, &parsed.manifest.links, m.epoch) {
        Ok(key) if Some(key) == m.verify_key() => Ok(pin.is_none()),
        Ok(_) => Err(VaultError::invalid(format!(
            "{who}: {}; do not approve — call the requester back",
            ChainError::WrongEnd(m.epoch)
        ))),
        Err(ChainError::MissingLink(epoch)) => Err(VaultError::invalid(format!(
            "{who}: cannot check this request's vault key offline: epoch {epoch} was made by an older breakglass and has no key link. Approve this once with --vault COPY (a trusted copy of the vault at epoch {epoch} or later); it checks the whole chain and remembers the key here"
        ))),
        Err(e) => Err(VaultError::invalid(format!(
            "{who}: {e}; the request may be forged — do not approve, call the requester back"
        ))),
    }
}

fn pinned_epoch_key(pin: &CustodianPin) -> Option<(u64, VerifyKey)> {
    Some((pin.epoch?, VerifyKey::from_hex(pin.verify_key.as_deref()?)?))
}

impl CheckedRequest<'_> {
    /// Whether `typed` are this request's read-back words.
    pub fn words_match(&self, typed: &str) -> Result<bool, VaultError> {
        let expected = self
            .request
            .words()
            .map_err(|e| VaultError::invalid(e.to_string()))?;
        Ok(words::words_match(&expected, typed))
    }

    /// Seal the share to the request's ephemeral key, bound to the exact
    /// request, once the words heard by voice match. Once the approval is
    /// safely written, call [`CheckedRequest::remember`].
    pub fn approve(&self, typed_words: &str) -> Result<Approval, VaultError> {
        let r = &self.request.request;
        if self.request.is_drill() {
            return Err(VaultError::invalid(
                "this is a drill challenge, not a request: answer it with `breakglass drill --challenge FILE`",
            ));
        }
        if !self.words_match(typed_words)? {
            return Err(VaultError::WordsMismatch(r.request_id.clone()));
        }
        if self.request.is_expired() {
            return Err(VaultError::invalid(format!(
                "request {} expired at {} while it was being checked; ask the requester for a new one",
                r.request_id, r.expires
            )));
        }
        let request_id = self
            .request
            .request_id_bytes()
            .expect("checked when the code was parsed");
        let recipient = CustodianRecipient::parse_public_key(&r.recipient)
            .ok()
            .filter(|rc| rc.kind() == crypto::RecipientKind::Age)
            .ok_or_else(|| {
                VaultError::invalid("request code has a malformed recipient; ask for a new request")
            })?;
        let mut plaintext = zeroize::Zeroizing::new(Vec::new());
        plaintext.extend_from_slice(super::remote::APPROVAL_MAGIC);
        plaintext.extend_from_slice(&request_id);
        plaintext.extend_from_slice(self.request.hash());
        plaintext.extend_from_slice(&self.record.encode());
        let sealed = crypto::encrypt_binary(&recipient, &plaintext).map_err(VaultError::invalid)?;
        Ok(Approval {
            code: code::encode(CodeKind::Approval, &sealed),
            custodian: self.custodian.clone(),
        })
    }

    /// Answer a drill challenge: a signature by the key derived from the share
    /// over the challenge, which the manifest's proof key checks. Nothing of
    /// the share leaves this machine.
    pub fn prove(&self) -> Result<super::remote_drill::DrillProof, VaultError> {
        if !self.request.is_drill() {
            return Err(VaultError::invalid(
                "this is an unseal request, not a drill challenge: answer it with `breakglass approve`",
            ));
        }
        if self
            .manifest
            .custodian(&self.custodian)
            .and_then(|c| c.proof_key.as_ref())
            .is_none()
        {
            return Err(VaultError::invalid(
                "this vault's epoch predates share proof keys; ask an admin to run `breakglass rekey` once, then drill again",
            ));
        }
        let key =
            ShareProofKey::derive(&self.record.vault_id, self.record.epoch, &self.record.share);
        Ok(super::remote_drill::DrillProof::sign(
            self.request,
            &self.custodian,
            &key,
        ))
    }

    /// After the approval or proof was written: pin this custodian key to the
    /// vault (first use) and remember this epoch's key, so a request for an
    /// older epoch is refused from now on and the next chain check starts here.
    pub fn remember(&self) -> Result<(), VaultError> {
        let use_ = if self.request.is_drill() {
            PinUse::Drill
        } else {
            PinUse::Approve
        };
        let m = &self.manifest;
        pins::record_custodian(
            &self.key_recipient,
            &m.fingerprint(),
            m.epoch,
            &m.verify_key,
            use_,
        )
        .map_err(|e| VaultError::invalid(format!("custodian {}: {e}", self.custodian)))
    }
}

/// What the custodian pin is keyed by for the key that opened `custodian`'s
/// envelope: an ordinary key's own public recipient; for a hardware key (whose
/// public half only the token knows) a hash of its own identity line, never
/// the recipient a request's manifest claims for it, which a forged request
/// could change to dodge the pin. The manifest must still seal this custodian
/// to a key of that plugin.
fn opened_by(id: &CustodianIdentity, m: &Manifest, custodian: &str) -> Result<String, VaultError> {
    if let Some(recipient) = id.recipient() {
        return Ok(recipient);
    }
    let sealed_to_its_plugin = m
        .custodian(custodian)
        .is_some_and(|c| id.may_open(&c.kind, &c.recipient));
    match id.pin_subject() {
        Some(subject) if sealed_to_its_plugin => Ok(subject),
        _ => Err(VaultError::invalid(format!(
            "custodian {custodian}: your hardware key opened an envelope the manifest does not seal to a key of its plugin; do not approve — tell the requester"
        ))),
    }
}

/// Decrypt the custodian's own share: from an exported envelope if given, else
/// the one the request carries, else a vault copy's. Also gives the public
/// recipient of the key that opened it (for the custodian pin).
fn open_own_share(
    input: &ApproveInput<'_>,
    m: &Manifest,
    vault: Option<&Vault>,
    progress: &mut dyn KdfProgress,
) -> Result<(ShareRecord, String), VaultError> {
    let derived;
    let candidates: Vec<&CustodianIdentity> = match &input.key {
        ApproverKey::Identities(files) => files.iter().flat_map(|(_, ids)| ids.iter()).collect(),
        ApproverKey::Passphrase(name, passphrase) => {
            let custodian = passphrase_custodian(m.custodian(name), name)?;
            derived = derive(custodian, passphrase, m.insecure_test_only_kdf, progress)?
                .ok_or_else(|| VaultError::WrongPassphrase(name.clone()))?;
            vec![&derived]
        }
    };
    // Which custodians these keys belong to, by their public recipient.
    let mine: Vec<&str> = candidates
        .iter()
        .filter_map(|id| id.recipient())
        .filter_map(|rc| m.custodians.iter().find(|c| c.recipient == rc))
        .map(|c| c.name.as_str())
        .collect();
    let labels: Vec<&str> = match &input.key {
        ApproverKey::Identities(files) => files.iter().map(|(l, _)| l.as_str()).collect(),
        ApproverKey::Passphrase(name, _) => vec![name.as_str()],
    };
    // Keys whose public half is known and matches no custodian open nothing
    // here: say so at once, without trying (or asking a key passphrase).
    if mine.is_empty()
        && input.envelope.is_none()
        && candidates.iter().all(|id| id.recipient().is_some())
    {
        return Err(VaultError::Identity {
            label: labels.join(", "),
            detail: "matches no custodian of this vault; check it is your custodian key for this vault (vault fingerprint in the request)".into(),
        });
    }
    if let Some((name, _)) = &input.pin {
        if !m.custodian(name).is_some_and(|c| is_hardware_kind(&c.kind)) {
            return Err(VaultError::Custodian {
                name: name.clone(),
                detail: "is not a hardware-key custodian of this vault: --passphrase-file beside --identity gives a hardware key's PIN".into(),
            });
        }
    }
    // (label, custodian the envelope is for if known, the age file)
    let mut envelopes: Vec<(String, Option<&str>, Vec<u8>)> = Vec::new();
    if let Some((label, text)) = &input.envelope {
        envelopes.push((label.clone(), None, text.as_bytes().to_vec()));
    } else {
        for (name, env) in &input.request.envelopes {
            // Encrypted SSH keys ask for their passphrase per try: only try
            // envelopes this key's public half says are its own, when known.
            if mine.is_empty() || mine.contains(&name.as_str()) {
                envelopes.push((
                    format!("the request's envelope for {name}"),
                    Some(name.as_str()),
                    env.clone(),
                ));
            }
        }
        if let Some(v) = vault.filter(|v| v.manifest().epoch == m.epoch) {
            for name in &mine {
                if !input.request.envelopes.contains_key(*name) {
                    if let Ok(text) = v.export_envelope(name) {
                        envelopes.push((
                            format!("the vault copy's envelope for {name}"),
                            Some(name),
                            text.into_bytes(),
                        ));
                    }
                }
            }
        }
    }
    if envelopes.is_empty() {
        let names = if mine.is_empty() {
            "your key matches no custodian of this vault; check you have the right key file"
                .to_string()
        } else {
            format!(
                "the request carries no envelope for {} (it was made --for another custodian); ask the requester for the full code or yours, or give --envelope FILE",
                mine.join(", ")
            )
        };
        return Err(VaultError::invalid(names));
    }
    let mut problems = Vec::new();
    let mut key_problems = Vec::new();
    for (label, for_custodian, bytes) in &envelopes {
        let custodian = for_custodian.and_then(|name| m.custodian(name));
        for id in &candidates {
            // A hardware key is tried only on envelopes of its own plugin.
            if id.plugin_name().is_some()
                && custodian.is_some_and(|c| !id.may_open(&c.kind, &c.recipient))
            {
                continue;
            }
            let name = for_custodian.unwrap_or_default();
            let pin = input
                .pin
                .as_ref()
                .filter(|(n, _)| for_custodian.is_none() || n == name)
                .map(|(_, p)| p);
            match crypto::decrypt_as(bytes, id, name, pin) {
                DecryptOutcome::Plaintext(p) => {
                    let record = ShareRecord::decode(&p).ok_or_else(|| {
                        VaultError::invalid(format!("{label} does not hold a breakglass share"))
                    })?;
                    let recipient = opened_by(id, m, &record.custodian)?;
                    return Ok((record, recipient));
                }
                DecryptOutcome::NotMine => {}
                DecryptOutcome::Failed(why) => problems.push(format!("{label}: {why}")),
                // Another envelope may still be this key's own: try on.
                DecryptOutcome::KeyFailed(why) => key_problems.push(format!("{label}: {why}")),
                DecryptOutcome::KeyUnavailable(why) => {
                    return Err(VaultError::invalid(format!(
                        "your hardware key could not be used ({why}); nothing was approved"
                    )))
                }
            }
        }
    }
    if !key_problems.is_empty() {
        return Err(VaultError::invalid(format!(
            "your hardware key could not open {}; check the token and its PIN, and approve again",
            key_problems.join("; ")
        )));
    }
    if let Some(problem) = problems.into_iter().next() {
        return Err(VaultError::invalid(format!(
            "{problem}; check the key file and its passphrase"
        )));
    }
    if !mine.is_empty() {
        let tried: Vec<&str> = envelopes.iter().map(|(l, _, _)| l.as_str()).collect();
        return Err(VaultError::invalid(format!(
            "your key is custodian {}'s, but {} does not open with it (an envelope swapped in the vault file, or a damaged code); do not approve — tell the requester",
            mine.join(", "),
            tried.join(", ")
        )));
    }
    Err(VaultError::Identity {
        label: labels.join(", "),
        detail: "matches no custodian of this vault: it opens no envelope in this request; check it is your custodian key for this vault"
            .into(),
    })
}
