//! Unsealing: gather shares from custodians' identities and passphrases, check
//! each against its commitment, combine K, then reveal — logging first.

use super::epoch::EpochWritten;
use super::epoch::NextCustodian;
use super::hardware::{try_hardware_key, HardwareTry};
use super::records::{self, SecretValue, ShareRecord};
use super::remote::{APPROVAL_HEADER_LEN, APPROVAL_MAGIC, APPROVAL_MAGIC_V1};
use super::{KdfProgress, SecretKind, Vault, VaultError};
use crate::audit::{self, NewEntry};
use crate::crypto::{
    self, CustodianIdentity, DecryptOutcome, KdfParams, Passphrase, RecipientKind, Share, VaultKeys,
};
use crate::manifest::CustodianEntry;
use crate::manifest::SignedManifest;
use crate::remote::code::{self, CodeKind};
use crate::remote::{pending, ParsedRequest, PendingError, PendingRequest};
use crate::store::{EnvelopeRow, ExposureRow, Reader, Tx};

/// Prompting is the caller's job; the vault asks through this.
pub trait UnsealPrompt: KdfProgress {
    /// Whether anyone can be asked at all (a terminal is there). When not, the
    /// vault never calls [`UnsealPrompt::passphrase`] and says what to give instead.
    fn can_ask(&self) -> bool {
        true
    }
    /// Passphrase of `custodian`, while `still_needed` shares are missing (0
    /// outside a quorum: a drill). `None`: none was given (skipped); the vault
    /// never waits.
    fn passphrase(&mut self, custodian: &str, still_needed: usize) -> Option<Passphrase>;
    /// A passphrase just given for `custodian` was wrong.
    fn wrong_passphrase(&mut self, _custodian: &str) {}
}

/// What the requester brings to an unseal.
pub struct UnsealRequest {
    /// Why the vault is being opened, as logged.
    pub reason: String,
    /// Who opens it, as logged.
    pub actor: String,
    /// Identity files by label (usually the path), each holding one or more keys.
    pub identities: Vec<(String, Vec<CustodianIdentity>)>,
    /// Passphrases given up front (`--passphrase-file NAME=PATH`).
    pub passphrases: Vec<(String, Passphrase)>,
    /// The secrets to reveal, each in its own mode (`--reveal NAME` whole,
    /// `--reveal-one NAME` one bypass code), all in this one quorum session.
    pub reveal: Vec<Reveal>,
    /// Approvals from remote custodians, for a request made on this machine.
    pub remote: Option<RemoteApprovals>,
    /// Skip the new epoch after a reveal (warned and logged).
    pub no_rekey: bool,
    /// `--one` (compatibility): every bypass-codes secret named with
    /// [`RevealMode::Whole`] hands out only its next unused code instead, as if
    /// named with [`RevealMode::OneCode`]; other secrets are still revealed
    /// whole. Refused when no secret to reveal is a bypass-codes secret.
    pub one_code: bool,
    /// The unendorsed versions and settings the user was shown and confirmed
    /// (`Vault::unendorsed`); only exactly these are endorsed by this session.
    pub endorse: super::Unendorsed,
}

/// How one named secret is revealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevealMode {
    /// The whole value; the version is marked exposed (`--reveal NAME`).
    Whole,
    /// A bypass-codes secret only: its next unused code, which is marked used;
    /// the other codes are not shown and stay unexposed (`--reveal-one NAME`).
    OneCode,
    /// The whole value of this version, whatever its state: a superseded one,
    /// or a `failed`/`pending` one a rotator may have set at the target before
    /// its outcome was lost (`--reveal-version NAME=N`). Marked exposed.
    Version(u32),
}

impl RevealMode {
    /// As shown in `unseal --json` (`mode`) and the `reveal` audit row.
    pub fn as_str(&self) -> &'static str {
        match self {
            RevealMode::Whole => "whole",
            RevealMode::OneCode => "one-code",
            RevealMode::Version(_) => "version",
        }
    }

    /// Whether the whole value is shown (and so the secret is exposed).
    pub fn shows_whole_value(&self) -> bool {
        !matches!(self, RevealMode::OneCode)
    }
}

/// One secret to reveal, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reveal {
    /// The secret's name.
    pub name: String,
    /// Reveal the whole value or one bypass code.
    pub mode: RevealMode,
}

impl Reveal {
    /// Reveal all of secret `name`.
    pub fn whole(name: impl Into<String>) -> Reveal {
        Reveal {
            name: name.into(),
            mode: RevealMode::Whole,
        }
    }

    /// Reveal version `version` of secret `name`, whatever its state.
    pub fn version(name: impl Into<String>, version: u32) -> Reveal {
        Reveal {
            name: name.into(),
            mode: RevealMode::Version(version),
        }
    }

    /// Reveal one unused bypass code of secret `name` (`--one`).
    pub fn one_code(name: impl Into<String>) -> Reveal {
        Reveal {
            name: name.into(),
            mode: RevealMode::OneCode,
        }
    }
}

impl From<&str> for Reveal {
    fn from(name: &str) -> Reveal {
        Reveal::whole(name)
    }
}

impl From<String> for Reveal {
    fn from(name: String) -> Reveal {
        Reveal::whole(name)
    }
}

/// A request made here, as this machine recorded it when it was made (its exact
/// bytes, hash, reason, expiry and ephemeral key), and the approval codes that
/// came back. A request file handed back only names which record to use: nothing
/// in it is trusted.
pub struct RemoteApprovals {
    pending: PendingRequest,
    /// Approval codes by label (usually the file they came in).
    approvals: Vec<(String, String)>,
    /// Named differences between the handed-back file and the record.
    warnings: Vec<String>,
}

impl RemoteApprovals {
    /// Open the request `handed_back` names from this machine's own pending
    /// record (refusing an unknown, used or expired one), with `approvals` by label.
    pub fn open(
        handed_back: &ParsedRequest,
        handed_back_label: &str,
        approvals: Vec<(String, String)>,
    ) -> Result<RemoteApprovals, PendingError> {
        let pending = pending::open(&handed_back.request.request_id)?;
        let mut warnings = Vec::new();
        if handed_back.core() != pending.request.core() {
            warnings.push(format!(
                "{handed_back_label} differs from request {} as recorded on this machine when it was made (edited?); the record was used and the file ignored",
                pending.request.request.request_id
            ));
        }
        Ok(RemoteApprovals {
            pending,
            approvals,
            warnings,
        })
    }

    /// The request as recorded here when it was made.
    pub fn request(&self) -> &ParsedRequest {
        &self.pending.request
    }
}

/// One revealed secret: its value and what the user needs to use it.
pub struct Revealed {
    /// The secret's name.
    pub name: String,
    /// What kind of secret it is.
    pub kind: SecretKind,
    /// The account name stored with it, if any.
    pub username: Option<String>,
    /// The version revealed.
    pub version: u32,
    /// That version's state: `active`, or with `--reveal-version` also
    /// `superseded`, `failed` or `pending`.
    pub state: String,
    /// The value (zeroized on drop).
    pub value: SecretValue,
    /// The mode it was revealed in (after `--one` applied).
    pub mode: RevealMode,
    /// One code: which single-use code of the version this is (from 0).
    pub code_index: Option<usize>,
    /// One code: how many unused codes of the version are left after this one.
    pub codes_left: Option<usize>,
}

impl std::fmt::Debug for Revealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Revealed({} v{}, [redacted])", self.name, self.version)
    }
}

/// What an unseal did.
#[derive(Debug)]
pub struct UnsealReport {
    /// The secrets revealed, in the order asked.
    pub revealed: Vec<Revealed>,
    /// The custodians whose shares opened the vault.
    pub custodians: Vec<String>,
    /// The epoch that was unsealed.
    pub epoch: u64,
    /// The epoch the vault moved to afterwards, if it did.
    pub new_epoch: Option<u64>,
    /// Shares that were named and skipped, one line each.
    pub warnings: Vec<String>,
}

const MAX_PASSPHRASE_TRIES: usize = 3;

/// Shares gathered so far, and the ones rejected by name.
struct Gathering<'a> {
    vault_id: [u8; 16],
    epoch: u64,
    threshold: usize,
    custodians: &'a [CustodianEntry],
    envelopes: Vec<EnvelopeRow>,
    good: Vec<(String, Share)>,
    tried: Vec<String>,
    rejected: Vec<Rejection>,
    /// Approvals used: (custodian, label).
    approvals: Vec<(String, String)>,
}

/// A share or approval that was named and not used.
struct Rejection {
    action: &'static str,
    subject: String,
    who: String,
    why: String,
}

impl Gathering<'_> {
    fn missing(&self) -> usize {
        self.threshold.saturating_sub(self.good.len())
    }

    fn claim(&mut self, custodian: &str) -> Result<(), VaultError> {
        if self.tried.iter().any(|c| c == custodian) {
            return Err(VaultError::DuplicateShare(custodian.into()));
        }
        self.tried.push(custodian.into());
        Ok(())
    }

    /// Open this custodian's envelope and check the share inside. A bad share is
    /// recorded by name and skipped; the caller decides whether enough remain.
    fn take_share(&mut self, custodian: &CustodianEntry, identity: &CustodianIdentity) {
        let Some(envelope) = self
            .envelopes
            .iter()
            .find(|e| e.custodian == custodian.name)
        else {
            self.reject(custodian, "the vault holds no envelope for this custodian");
            return;
        };
        match crypto::decrypt_as(
            envelope.envelope.as_bytes(),
            identity,
            &custodian.name,
            None,
        ) {
            DecryptOutcome::NotMine => self.reject(
                custodian,
                "envelope is not sealed to this custodian's key (replaced?)",
            ),
            DecryptOutcome::Failed(why) => {
                self.reject(custodian, &format!("envelope is corrupted ({why})"))
            }
            DecryptOutcome::KeyFailed(why) | DecryptOutcome::KeyUnavailable(why) => self.reject(
                custodian,
                &format!("the hardware key could not be used ({why})"),
            ),
            DecryptOutcome::Plaintext(plaintext) => {
                let checked = ShareRecord::decode(&plaintext)
                    .ok_or_else(|| "envelope does not hold a breakglass share".to_string())
                    .and_then(|record| self.check_record(custodian, record));
                match checked {
                    Ok(share) => self.good.push((custodian.name.clone(), share)),
                    Err(why) => self.reject(custodian, &why),
                }
            }
        }
    }

    /// Open one approval code with the request's ephemeral key and check the share in it.
    fn take_approval(&mut self, label: &str, text: &str, request: &PendingRequest) {
        match self.open_approval(label, text, request) {
            Ok((name, share)) => {
                self.tried.push(name.clone());
                self.good.push((name.clone(), share));
                self.approvals.push((name, label.to_string()));
            }
            Err((subject, why)) => {
                let who = if subject == label {
                    format!("approval {label}")
                } else {
                    format!("approval {label} from {subject}")
                };
                self.rejected.push(Rejection {
                    action: "approval_rejected",
                    subject,
                    who,
                    why,
                });
            }
        }
    }

    /// The custodian and share of a good approval, or (subject, problem). The
    /// approval must carry the request id and the SHA-256 of the exact request
    /// bytes recorded here when the request was made.
    fn open_approval(
        &self,
        label: &str,
        text: &str,
        request: &PendingRequest,
    ) -> Result<(String, Share), (String, String)> {
        let fail = |why: String| (label.to_string(), why);
        let parsed = &request.request;
        let request_id = parsed
            .request_id_bytes()
            .ok_or_else(|| fail("request record has a malformed request id".into()))?;
        let sealed = code::decode(CodeKind::Approval, text).map_err(|e| fail(e.to_string()))?;
        let plaintext = match crypto::decrypt(&sealed, &request.identity) {
            DecryptOutcome::Plaintext(p) => p,
            DecryptOutcome::NotMine => {
                return Err(fail(
                    "is not for this request (sealed to another request's key); ask the custodian to approve this request".into(),
                ))
            }
            DecryptOutcome::Failed(why)
            | DecryptOutcome::KeyFailed(why)
            | DecryptOutcome::KeyUnavailable(why) => {
                return Err(fail(format!("is damaged ({why})")))
            }
        };
        if plaintext.len() >= 8 && &plaintext[..8] == APPROVAL_MAGIC_V1 {
            return Err(fail(
                "is from an older breakglass and not bound to the exact request; ask the custodian to approve again with this version".into(),
            ));
        }
        if plaintext.len() < APPROVAL_HEADER_LEN || &plaintext[..8] != APPROVAL_MAGIC {
            return Err(fail("does not hold a breakglass approval".into()));
        }
        if !crypto::ct_eq(&plaintext[8..24], &request_id) {
            return Err(fail("is for another request".into()));
        }
        if !crypto::ct_eq(&plaintext[24..APPROVAL_HEADER_LEN], parsed.hash()) {
            return Err(fail(format!(
                "approves different request bytes than request {} as made here (the request was edited on its way to the custodian); ask the custodian to approve the original request",
                parsed.request.request_id
            )));
        }
        let record = ShareRecord::decode(&plaintext[APPROVAL_HEADER_LEN..])
            .ok_or_else(|| fail("does not hold a breakglass share".into()))?;
        let name = record.custodian.clone();
        let Some(custodian) = self.custodians.iter().find(|c| c.name == name) else {
            return Err((
                name.clone(),
                format!("comes from {name}, who is not a custodian of this vault"),
            ));
        };
        if self.tried.contains(&name) {
            return Err((
                name.clone(),
                format!("is a second approval from custodian {name}"),
            ));
        }
        let share = self
            .check_record(custodian, record)
            .map_err(|why| (name.clone(), why))?;
        Ok((name, share))
    }

    fn check_record(
        &self,
        custodian: &CustodianEntry,
        record: ShareRecord,
    ) -> Result<Share, String> {
        check_share(self.vault_id, self.epoch, self.threshold, custodian, record)
    }

    fn reject(&mut self, custodian: &CustodianEntry, why: &str) {
        self.rejected.push(Rejection {
            action: "share_rejected",
            subject: custodian.name.clone(),
            who: format!("custodian {}", custodian.name),
            why: why.to_string(),
        });
    }

    fn warnings(&self) -> Vec<String> {
        self.rejected
            .iter()
            .map(|r| format!("{}: {}; not used", r.who, r.why))
            .collect()
    }
}

/// A quorum gathered and the vault key rebuilt; nothing written yet.
pub(crate) struct Session {
    pub keys: VaultKeys,
    /// The manifest the shares were for: the vault must still be at it when
    /// the session is written.
    pub opened: SignedManifest,
    pub used: Vec<String>,
    /// Rejected shares and accepted approvals, logged with the outcome.
    entries: Vec<NewEntry>,
    pub warnings: Vec<String>,
    request_id: Option<String>,
    request_sha256: Option<String>,
}

/// What a written quorum session produced.
pub(crate) struct SessionWritten {
    pub revealed: Vec<Revealed>,
    /// The new epoch, when the session moved the vault to one.
    pub new_epoch: Option<u64>,
    pub warnings: Vec<String>,
}

impl Vault {
    /// Gather K shares, rebuild the vault key, and reveal the named secrets.
    /// Everything the unseal writes (its audit rows, each reveal, the
    /// exposures, the checkpoint and, after a reveal, the new epoch) commits in
    /// one transaction before any value is returned; if it cannot, nothing is
    /// revealed and the vault is unchanged.
    pub fn unseal(
        &mut self,
        mut request: UnsealRequest,
        prompt: &mut dyn UnsealPrompt,
    ) -> Result<UnsealReport, VaultError> {
        request.reveal = distinct_reveals(&request.reveal)?;
        let rekey = !request.reveal.is_empty() && !request.no_rekey;
        // Known before any share is gathered, so a bad entry drops no rows.
        let custodians = if rekey {
            Some(
                self.current
                    .manifest
                    .custodians
                    .iter()
                    .map(NextCustodian::from_entry)
                    .collect::<Result<Vec<_>, _>>()?,
            )
        } else {
            None
        };
        if let Some(custodians) = &custodians {
            super::epoch::check_sealable(
                custodians,
                "the new key epoch after this unseal (skip it with --no-rekey)",
            )?;
        }
        let session = self.gather_session(&mut request, prompt)?;
        let epoch = session.opened.manifest.epoch;
        let used = session.used.clone();
        let reason = format!("after unseal: {}", request.reason);
        let change = custodians
            .as_deref()
            .map(|custodians| super::epoch::EpochChange {
                threshold: usize::from(session.opened.manifest.threshold),
                custodians,
                alerts: None,
                actor: &request.actor,
                reason: &reason,
                confirmed: &request.endorse,
            });
        let written = self.write_session(session, &request, change.as_ref())?;
        let mut warnings = written.warnings;
        if request.no_rekey && !written.revealed.is_empty() {
            warnings.push(format!(
                "--no-rekey: the vault stays at epoch {epoch}, so the shares just combined still open it; run `breakglass rekey` with a quorum soon"
            ));
        }
        Ok(UnsealReport {
            revealed: written.revealed,
            custodians: used,
            epoch,
            new_epoch: written.new_epoch,
            warnings,
        })
    }

    /// Check the request, gather shares and rebuild the key. A failure is
    /// logged (`unseal_failed`, with every rejected share) before it is returned.
    pub(crate) fn gather_session(
        &mut self,
        request: &mut UnsealRequest,
        prompt: &mut dyn UnsealPrompt,
    ) -> Result<Session, VaultError> {
        // Checked before any share is gathered (again in the write transaction).
        resolve_reveals(&self.store.read(), request)?;
        if let Some(remote) = &request.remote {
            // The reason logged is the one recorded when the request was made.
            request.reason = remote.request().request.reason.clone();
        }
        let opened = self.current.clone();
        let manifest = &opened.manifest;
        if let Some(remote) = &request.remote {
            let r = &remote.request().request;
            if r.vault_id != manifest.vault_id {
                return Err(VaultError::invalid(format!(
                    "request {} is for vault {}, not this one ({}); use the vault the request was made from",
                    r.request_id, r.fingerprint, manifest.fingerprint()
                )));
            }
            if r.epoch != manifest.epoch {
                return Err(VaultError::invalid(format!(
                    "request {} is for epoch {}; the vault is at epoch {} — make a new request",
                    r.request_id, r.epoch, manifest.epoch
                )));
            }
            if remote.request().is_expired() {
                let expired = remote.request().clone();
                self.request_expired(&expired, &request.actor);
                return Err(VaultError::invalid(format!(
                    "request {} expired at {}; make a new request",
                    r.request_id, r.expires
                )));
            }
        }
        let mut gathering = Gathering {
            vault_id: self.vault_id(),
            epoch: manifest.epoch,
            threshold: usize::from(manifest.threshold),
            custodians: &manifest.custodians,
            envelopes: self.store.read().envelopes(manifest.epoch)?,
            good: Vec::new(),
            tried: Vec::new(),
            rejected: Vec::new(),
            approvals: Vec::new(),
        };
        let outcome = gather_shares(self, &mut gathering, request, prompt);
        let mut warnings = gathering.warnings();
        if let Some(remote) = &request.remote {
            warnings.extend(remote.warnings.iter().cloned());
        }
        let request_id = request
            .remote
            .as_ref()
            .map(|r| r.request().request.request_id.clone());
        let request_sha256 = request
            .remote
            .as_ref()
            .map(|r| hex::encode(r.request().hash()));
        let mut entries: Vec<NewEntry> = gathering
            .rejected
            .iter()
            .map(|r| {
                NewEntry::new(&request.actor, r.action, &r.subject)
                    .reason(&request.reason)
                    .details(serde_json::json!({ "problem": r.why, "what": r.who, "request_id": request_id }))
            })
            .collect();
        entries.extend(gathering.approvals.iter().map(|(name, label)| {
            NewEntry::new(&request.actor, "approval_accepted", name)
                .reason(&request.reason)
                .details(serde_json::json!({ "approval": label, "request_id": request_id }))
        }));
        let used: Vec<String> = gathering.good.iter().map(|(n, _)| n.clone()).collect();
        drop(gathering);
        match outcome {
            Err(error) => {
                self.log_failure(entries, request, &opened, &used, request_id, &error);
                Err(error)
            }
            Ok(keys) => Ok(Session {
                keys,
                opened,
                used,
                entries,
                warnings,
                request_id,
                request_sha256,
            }),
        }
    }

    /// Best effort: the failure is the error the user needs to see.
    fn log_failure(
        &mut self,
        mut entries: Vec<NewEntry>,
        request: &UnsealRequest,
        opened: &SignedManifest,
        used: &[String],
        request_id: Option<String>,
        error: &VaultError,
    ) {
        entries.push(
            NewEntry::new(
                &request.actor,
                "unseal_failed",
                &opened.manifest.fingerprint(),
            )
            .reason(&request.reason)
            .details(serde_json::json!({
                "epoch": opened.manifest.epoch,
                "error": error.to_string(),
                "custodians": used,
                "request_id": request_id,
            })),
        );
        let _ = self.append_audit(entries);
    }

    /// Write a gathered session in one transaction: check the vault is still
    /// at the session's epoch, read and decrypt the values to reveal, log the
    /// unseal and each reveal, mark exposures, then either move to a new epoch
    /// (`change`) or sign a checkpoint with the session's key. Only after the
    /// commit are the values handed back.
    pub(crate) fn write_session(
        &mut self,
        session: Session,
        request: &UnsealRequest,
        change: Option<&super::epoch::EpochChange<'_>>,
    ) -> Result<SessionWritten, VaultError> {
        let vault_id = self.vault_id();
        let outcome = change
            .map(|c| {
                self.prepare_epoch(c).map_err(|e| {
                    VaultError::invalid(format!(
                        "{e}; the new epoch could not be prepared, so nothing was revealed — to reveal without moving to a new epoch, run again with --no-rekey"
                    ))
                })
            })
            .transpose()
            .and_then(|prepared| {
                let tx = self.store.begin()?;
                let written = write_session_in(&tx, &session, request, vault_id, change, prepared)?;
                tx.commit()?;
                Ok(written)
            });
        let (revealed, epoch_written, mut warnings) = match outcome {
            Ok(written) => written,
            Err(error) => {
                let error = match error {
                    VaultError::Store(e) => VaultError::AuditWriteFailed(e.to_string()),
                    other => other,
                };
                self.log_failure(
                    session.entries,
                    request,
                    &session.opened,
                    &session.used,
                    session.request_id,
                    &error,
                );
                return Err(error);
            }
        };
        let mut new_epoch = None;
        if let Some(written) = epoch_written {
            let (epoch, refused) = self.epoch_committed(written);
            new_epoch = Some(epoch);
            warnings.extend(refused);
        }
        if let Some(id) = &session.request_id {
            // The request is used: its ephemeral key goes, so approvals cannot be replayed.
            if let Err(e) = pending::close(id, "used") {
                warnings.push(format!(
                    "request {id}: could not delete its key ({e}); delete it by hand"
                ));
            }
        }
        let mut all = session.warnings;
        all.extend(warnings);
        Ok(SessionWritten {
            revealed,
            new_epoch,
            warnings: all,
        })
    }

    fn append_audit(&mut self, entries: Vec<NewEntry>) -> Result<(), VaultError> {
        let tx = self.store.begin()?;
        audit::append(&tx, entries)?;
        tx.commit()?;
        Ok(())
    }
}

type WrittenInTx = (Vec<Revealed>, Option<EpochWritten>, Vec<String>);

/// The body of [`Vault::write_session`], inside its transaction.
fn write_session_in(
    tx: &Tx<'_>,
    session: &Session,
    request: &UnsealRequest,
    vault_id: [u8; 16],
    change: Option<&super::epoch::EpochChange<'_>>,
    prepared: Option<super::epoch::PreparedEpoch>,
) -> Result<WrittenInTx, VaultError> {
    Vault::require_epoch_in(tx, &session.opened)?;
    if let Some(id) = &session.request_id {
        // Approvals open the vault once: a crash between this commit and the
        // pending record's removal must not let them be replayed.
        let used_before = tx.read().audit_entries()?.into_iter().find(|e| {
            e.action == "unseal"
                && serde_json::from_str::<serde_json::Value>(&e.details)
                    .is_ok_and(|d| d["request_id"].as_str() == Some(id))
        });
        if let Some(e) = used_before {
            let _ = pending::close(id, "used");
            return Err(VaultError::invalid(format!(
                "request {id} was already used to unseal (audit row {}); its approvals open the vault once — make a new request",
                e.seq
            )));
        }
    }
    let m = &session.opened.manifest;
    let fingerprint = m.fingerprint();
    let read = tx.read();
    // Decrypt in memory, from the versions as this transaction sees them.
    let endorsed = Vault::endorsed_versions_in(tx, &m.vault_id, &fingerprint)?;
    let mut warnings: Vec<String> = endorsed.problem.iter().cloned().collect();
    let mut revealed = Vec::new();
    for (name, mode) in resolve_reveals(&read, request)? {
        let name = &name;
        let version = version_to_reveal(&read, name, mode)?;
        match Vault::endorsement(&endorsed, &version) {
            super::checkpoint::Endorsement::Tampered => {
                return Err(VaultError::Secret {
                    name: name.clone(),
                    detail: format!("version {} does not match the ciphertext the last checkpoint signed; the vault file was tampered with — nothing revealed, restore from a trusted copy", version.version),
                })
            }
            super::checkpoint::Endorsement::Unendorsed if version.state == "active" => warnings.push(format!(
                "secret {name} version {} was deposited by {} after the last signed checkpoint (unendorsed); check it is genuine before using it",
                version.version, version.depositor
            )),
            super::checkpoint::Endorsement::Unendorsed => warnings.push(format!(
                "secret {name} version {} is {} (made by {} at {}) and no checkpoint endorsed it: it may or may not be what the target holds — try it, and rotate {name} once you know",
                version.version, version.state, version.depositor, version.created
            )),
            super::checkpoint::Endorsement::Endorsed => {}
        }
        if version.epoch != m.epoch {
            // Only live versions move to a new epoch; older ones stay sealed
            // to a key whose shares are dead, on purpose.
            return Err(VaultError::Secret {
                name: name.clone(),
                detail: format!(
                    "version {} ({}) is sealed to epoch {}'s key, which is gone: only active and pending versions, and failed ones newer than the active, move to a new epoch — nothing was revealed",
                    version.version, version.state, version.epoch
                ),
            });
        }
        revealed.push(decrypt_secret(&read, &session.keys, vault_id, name, mode)?);
    }
    let mut entries = session.entries.clone();
    if request.no_rekey && !revealed.is_empty() {
        entries.push(
            NewEntry::new(&request.actor, "rekey_skipped", &fingerprint)
                .reason(&request.reason)
                .details(serde_json::json!({ "epoch": m.epoch, "why": "--no-rekey" })),
        );
    }
    entries.push(
        NewEntry::new(&request.actor, "unseal", &fingerprint)
            .reason(&request.reason)
            .details(serde_json::json!({
                "epoch": m.epoch,
                "custodians": session.used,
                "requester": request.actor,
                "request_id": session.request_id,
                "request_sha256": session.request_sha256,
                "reveal": revealed.iter().map(|r| &r.name).collect::<Vec<_>>(),
            })),
    );
    for r in &revealed {
        entries.push(
            NewEntry::new(&request.actor, "reveal", &r.name)
                .reason(&request.reason)
                .details(serde_json::json!({
                    "version": r.version,
                    "state": r.state,
                    "custodians": session.used,
                    "mode": r.mode.as_str(),
                    "code_index": r.code_index,
                })),
        );
    }
    audit::append(tx, entries)?;
    let now = audit::now();
    for r in &revealed {
        if let Some(index) = r.code_index {
            // One single-use code was handed out: it is spent, the others were not seen.
            tx.mark_code_used(&r.name, r.version, index, &now)?;
            continue;
        }
        tx.upsert_exposure(&ExposureRow {
            secret: r.name.clone(),
            version: r.version,
            epoch: m.epoch,
            revealed_by: request.actor.clone(),
            revealed_at: now.clone(),
            reason: request.reason.clone(),
        })?;
    }
    let epoch_written = match (change, prepared) {
        (Some(change), Some(prepared)) => {
            Some(Vault::write_epoch(tx, &session.keys, prepared, change)?)
        }
        _ => {
            warnings.extend(Vault::append_checkpoint(
                tx,
                &session.keys,
                (&m.vault_id, &fingerprint),
                m.epoch,
                &request.actor,
                &request.endorse,
            )?);
            None
        }
    };
    Ok((revealed, epoch_written, warnings))
}

/// The secrets to reveal, each once: a name given twice in the same mode
/// counts once; whole and one code at once is refused, naming it. Named
/// versions come beside either (to compare a failed version with the active).
fn distinct_reveals(reveal: &[Reveal]) -> Result<Vec<Reveal>, VaultError> {
    let mut distinct: Vec<Reveal> = Vec::new();
    for r in reveal {
        let clash = |d: &&Reveal| {
            d.name == r.name
                && !matches!(d.mode, RevealMode::Version(_))
                && !matches!(r.mode, RevealMode::Version(_))
        };
        if distinct.contains(r) {
            continue;
        }
        match distinct.iter().find(clash) {
            Some(_) => {
                return Err(VaultError::Secret {
                    name: r.name.clone(),
                    detail: "is named by both --reveal and --reveal-one; give it once: --reveal for the whole value, --reveal-one for one bypass code".into(),
                })
            }
            None => distinct.push(r.clone()),
        }
    }
    Ok(distinct)
}

/// Each secret to reveal with the mode it is revealed in, from the kinds as
/// `read` sees them: `--reveal-one` of a secret that is not bypass-codes is
/// refused by name; `--one` turns the whole reveals of bypass-codes secrets
/// into one code each, and is refused when no secret to reveal is one.
fn resolve_reveals(
    read: &Reader<'_>,
    request: &UnsealRequest,
) -> Result<Vec<(String, RevealMode)>, VaultError> {
    let mut resolved = Vec::new();
    let mut other_kinds = Vec::new();
    let mut any_codes = false;
    for r in distinct_reveals(&request.reveal)? {
        let name = r.name;
        let meta = read.secret(&name)?;
        let (Some(meta), Some(_)) = (meta, read.active_version(&name)?) else {
            return Err(VaultError::UnknownSecret(name));
        };
        let kind = SecretKind::parse(&meta.kind)?;
        let mode = match (kind, r.mode) {
            // A named version is shown whole, whatever --one says.
            (_, RevealMode::Version(v)) => {
                version_to_reveal(read, &name, RevealMode::Version(v))?;
                RevealMode::Version(v)
            }
            (SecretKind::BypassCodes, _) => {
                any_codes = true;
                if request.one_code {
                    RevealMode::OneCode
                } else {
                    r.mode
                }
            }
            (_, RevealMode::OneCode) => {
                let detail = format!(
                    "is a {} secret; --reveal-one hands out single bypass codes only — use --reveal {name} for the whole value",
                    kind.as_str()
                );
                return Err(VaultError::Secret { name, detail });
            }
            (_, RevealMode::Whole) => {
                other_kinds.push((name.clone(), kind));
                RevealMode::Whole
            }
        };
        resolved.push((name, mode));
    }
    if request.one_code && !any_codes {
        return Err(match other_kinds.first() {
            Some((name, kind)) => VaultError::Secret {
                name: name.clone(),
                detail: format!(
                    "is a {} secret; --one hands out single bypass codes only, and no secret to reveal is one — drop --one, or name the bypass codes with --reveal-one NAME",
                    kind.as_str()
                ),
            },
            None => VaultError::invalid(
                "--one hands out single bypass codes, but no secret is named to reveal; use --reveal-one NAME",
            ),
        });
    }
    Ok(resolved)
}

/// The version of `name` a reveal opens: the active one, or the one named
/// with [`RevealMode::Version`].
fn version_to_reveal(
    read: &Reader<'_>,
    name: &str,
    mode: RevealMode,
) -> Result<crate::store::VersionRow, VaultError> {
    match mode {
        RevealMode::Version(wanted) => read
            .versions_of(name)?
            .into_iter()
            .find(|v| v.version == wanted)
            .ok_or_else(|| VaultError::Secret {
                name: name.into(),
                detail: format!(
                    "has no version {wanted}; `breakglass list` shows its versions — nothing was revealed"
                ),
            }),
        _ => read
            .active_version(name)?
            .ok_or_else(|| VaultError::UnknownSecret(name.into())),
    }
}

/// Open the version of `name` to reveal with the vault key and check it is
/// bound to its row; in [`RevealMode::OneCode`], hand out only the next unused code.
fn decrypt_secret(
    read: &Reader<'_>,
    keys: &VaultKeys,
    vault_id: [u8; 16],
    name: &str,
    mode: RevealMode,
) -> Result<Revealed, VaultError> {
    let tampered = |detail: &str| VaultError::Secret {
        name: name.into(),
        detail: format!(
            "{detail}; the vault file was tampered with — restore it from a trusted copy"
        ),
    };
    let meta = read
        .secret(name)?
        .ok_or_else(|| VaultError::UnknownSecret(name.into()))?;
    let version = version_to_reveal(read, name, mode)?;
    let plaintext = match crypto::decrypt_with_vault_key(version.ciphertext.as_bytes(), keys) {
        DecryptOutcome::Plaintext(p) => p,
        DecryptOutcome::NotMine => return Err(tampered("value is not sealed to this vault's key")),
        DecryptOutcome::Failed(why)
        | DecryptOutcome::KeyFailed(why)
        | DecryptOutcome::KeyUnavailable(why) => {
            return Err(tampered(&format!("value does not decrypt ({why})")))
        }
    };
    let (bound_id, bound_name, bound_version, value) =
        records::decode_secret(&plaintext).ok_or_else(|| tampered("value is malformed"))?;
    if bound_id != vault_id || bound_name != name || bound_version != version.version {
        return Err(tampered(&format!(
            "value belongs to {bound_name} v{bound_version}, not v{} (moved between rows)",
            version.version
        )));
    }
    if super::rotate::awaits_peer(&value) {
        return Err(VaultError::Secret {
            name: name.into(),
            detail: format!(
                "version {} holds no value: it is a rotation whose peer never sent one (its codes never reached the vault) — nothing was revealed",
                version.version
            ),
        });
    }
    let kind = SecretKind::parse(&meta.kind)?;
    let (value, code_index, codes_left) = match mode {
        RevealMode::OneCode => next_unused_code(read, name, kind, version.version, &value)?,
        RevealMode::Whole | RevealMode::Version(_) => (value, None, None),
    };
    Ok(Revealed {
        name: name.into(),
        kind,
        username: meta.username,
        version: version.version,
        state: version.state,
        value,
        mode,
        code_index,
        codes_left,
    })
}

/// One code: the first code of a bypass-codes version not handed out yet,
/// its index, and how many unused codes remain after it.
fn next_unused_code(
    read: &Reader<'_>,
    name: &str,
    kind: SecretKind,
    version: u32,
    value: &SecretValue,
) -> Result<(SecretValue, Option<usize>, Option<usize>), VaultError> {
    if kind != SecretKind::BypassCodes {
        return Err(VaultError::Secret {
            name: name.into(),
            detail: format!(
                "is a {} secret; --reveal-one hands out single bypass codes only",
                kind.as_str()
            ),
        });
    }
    let text = std::str::from_utf8(value.expose_secret()).unwrap_or_default();
    let codes = super::split_codes(text);
    let used = read.used_codes(name, version)?;
    let (index, code) = codes
        .iter()
        .enumerate()
        .find(|(i, _)| !used.contains(i))
        .ok_or_else(|| VaultError::Secret {
            name: name.into(),
            detail: format!(
                "all {} codes are used; deposit new ones with `breakglass rotate {name}`",
                codes.len()
            ),
        })?;
    let left = (0..codes.len())
        .filter(|i| *i != index && !used.contains(i))
        .count();
    Ok((
        SecretValue::new(code.as_bytes().to_vec()),
        Some(index),
        Some(left),
    ))
}

/// Steps 1-5 of a quorum session: gather shares from every source, combine
/// K and check the rebuilt key against the signed manifest. Nothing is read
/// from the secrets and nothing is written here.
fn gather_shares(
    vault: &Vault,
    g: &mut Gathering<'_>,
    request: &UnsealRequest,
    prompt: &mut dyn UnsealPrompt,
) -> Result<VaultKeys, VaultError> {
    let manifest = vault.manifest();
    // PINs for hardware-key custodians come as --passphrase-file NAME=PATH too.
    let pins = plugin_pins(g.custodians, &request.passphrases);
    let pin_for = |name: &str| pins.iter().find(|(n, _)| *n == name).map(|(_, p)| *p);
    // 1. Identity files: match each key to a custodian by its public recipient;
    //    a hardware key (plugin) by trying the envelopes it may open.
    for (label, identities) in &request.identities {
        let mut matched = false;
        for identity in identities {
            if identity.plugin_name().is_some() {
                matched |= take_plugin_share(g, label, identity, &pin_for)?;
                continue;
            }
            let Some(custodian) = g
                .custodians
                .iter()
                .find(|c| identity.may_open(&c.kind, &c.recipient))
            else {
                continue;
            };
            matched = true;
            g.claim(&custodian.name)?;
            g.take_share(custodian, identity);
        }
        if !matched {
            return Err(VaultError::Identity {
                label: label.clone(),
                detail: "matches no custodian of this vault; check you have the right key file"
                    .into(),
            });
        }
    }
    // 2. Remote approvals, opened with the request's ephemeral key and checked
    //    against the request as recorded here.
    if let Some(remote) = &request.remote {
        for (label, text) in &remote.approvals {
            g.take_approval(label, text, &remote.pending);
        }
    }
    // 3. Passphrases given up front (PINs were used in step 1).
    for (name, passphrase) in &request.passphrases {
        if pin_for(name).is_some() {
            if !g.tried.iter().any(|t| t == name) {
                return Err(VaultError::Custodian {
                    name: name.clone(),
                    detail: "holds a hardware key: --passphrase-file answers its PIN, and needs --identity FILE with the key's AGE-PLUGIN-… line".into(),
                });
            }
            continue;
        }
        let custodian = passphrase_custodian(manifest.custodian(name), name)?;
        g.claim(name)?;
        let identity = derive(
            custodian,
            passphrase,
            manifest.insecure_test_only_kdf,
            prompt,
        )?
        .ok_or_else(|| VaultError::WrongPassphrase(name.clone()))?;
        g.take_share(custodian, &identity);
    }
    // 4. Prompt passphrase custodians, only while shares are still missing.
    let waiting: Vec<&CustodianEntry> = g
        .custodians
        .iter()
        .filter(|c| c.kdf.is_some() && !g.tried.contains(&c.name))
        .collect();
    let mut unasked = Vec::new();
    for custodian in waiting {
        if g.missing() == 0 {
            break;
        }
        if !prompt.can_ask() {
            unasked.push(custodian.name.as_str());
            continue;
        }
        let asked = ask_passphrase(
            custodian,
            g.missing(),
            manifest.insecure_test_only_kdf,
            prompt,
        )?;
        match asked {
            Asked::Identity(identity) => {
                g.claim(&custodian.name)?;
                g.take_share(custodian, &identity);
            }
            Asked::Skipped => {}
            Asked::Wrong => return Err(VaultError::WrongPassphrase(custodian.name.clone())),
        }
    }
    if g.missing() > 0 {
        let mut notes: Vec<String> = Vec::new();
        if !g.rejected.is_empty() {
            let named: Vec<String> = g
                .rejected
                .iter()
                .map(|r| format!("{}: {}", r.who, r.why))
                .collect();
            notes.push(format!("rejected {}", named.join("; ")));
        }
        if let Some(note) = no_terminal_note(&unasked) {
            notes.push(note);
        }
        let rejected = if notes.is_empty() {
            String::new()
        } else {
            format!(" ({})", notes.join("; "))
        };
        return Err(VaultError::NotEnoughShares {
            have: g.good.len(),
            need: g.threshold,
            missing: g.missing(),
            rejected,
        });
    }
    // 5. Combine, and check the rebuilt key against the signed manifest.
    let shares: Vec<&Share> = g.good.iter().map(|(_, s)| s).collect();
    let seed =
        crypto::combine(&shares, g.threshold).map_err(|e| VaultError::invalid(e.to_string()))?;
    let keys = seed.derive_keys();
    if keys.verify_key().to_hex() != manifest.verify_key
        || keys.recipient() != manifest.vault_recipient
    {
        return Err(VaultError::KeyMismatch);
    }
    Ok(keys)
}

/// The `--passphrase-file NAME=PATH` entries that name hardware-key
/// custodians: those answer the plugin's PIN request.
pub(crate) fn plugin_pins<'p>(
    custodians: &[CustodianEntry],
    passphrases: &'p [(String, Passphrase)],
) -> Vec<(&'p str, &'p Passphrase)> {
    passphrases
        .iter()
        .filter(|(name, _)| {
            custodians
                .iter()
                .any(|c| &c.name == name && is_hardware_kind(&c.kind))
        })
        .map(|(name, p)| (name.as_str(), p))
        .collect()
}

/// Plugin and tag custodians: their key lives on a token.
pub(crate) fn is_hardware_kind(kind: &str) -> bool {
    matches!(
        RecipientKind::parse(kind),
        Some(RecipientKind::Plugin | RecipientKind::Tag)
    )
}

/// Try a hardware key on the envelopes it may open (see `hardware`). The
/// custodian whose envelope it opens, or alone fails on, is claimed; a key
/// that fails everywhere is rejected as the key file `label`. `false` when it
/// opens none.
fn take_plugin_share<'p>(
    g: &mut Gathering<'_>,
    label: &str,
    identity: &CustodianIdentity,
    pin_for: &dyn Fn(&str) -> Option<&'p Passphrase>,
) -> Result<bool, VaultError> {
    let envelopes = g.envelopes.clone();
    let candidates: Vec<(&CustodianEntry, &[u8])> = g
        .custodians
        .iter()
        .filter(|c| identity.may_open(&c.kind, &c.recipient) && !g.tried.contains(&c.name))
        .filter_map(|c| {
            envelopes
                .iter()
                .find(|e| e.custodian == c.name)
                .map(|e| (c, e.envelope.as_bytes()))
        })
        .collect();
    match try_hardware_key(identity, &candidates, pin_for) {
        HardwareTry::Opened(custodian, plaintext) => {
            g.claim(&custodian.name)?;
            let checked = ShareRecord::decode(&plaintext)
                .ok_or_else(|| "envelope does not hold a breakglass share".to_string())
                .and_then(|record| g.check_record(custodian, record));
            match checked {
                Ok(share) => g.good.push((custodian.name.clone(), share)),
                Err(why) => g.reject(custodian, &why),
            }
        }
        HardwareTry::FailedOn(custodian, why) => {
            g.claim(&custodian.name)?;
            g.reject(custodian, &why);
        }
        HardwareTry::KeyProblem(why) => g.rejected.push(Rejection {
            action: "share_rejected",
            subject: label.to_string(),
            who: format!("key file {label}"),
            why: format!("the hardware key could not be used ({why})"),
        }),
        HardwareTry::NoneMine => return Ok(false),
    }
    Ok(true)
}

/// How asking a passphrase custodian ended.
pub(crate) enum Asked {
    Identity(CustodianIdentity),
    /// Nothing was given (an empty answer).
    Skipped,
    /// Wrong every time it was asked.
    Wrong,
}

/// Ask for a passphrase custodian's passphrase until it derives their key, at
/// most `MAX_PASSPHRASE_TRIES` times, saying so after each wrong one. Shared by
/// unseal (and rekey) and drill, so both ask alike.
pub(crate) fn ask_passphrase(
    custodian: &CustodianEntry,
    still_needed: usize,
    allow_test_only_kdf: bool,
    prompt: &mut dyn UnsealPrompt,
) -> Result<Asked, VaultError> {
    for _ in 0..MAX_PASSPHRASE_TRIES {
        let Some(passphrase) = prompt.passphrase(&custodian.name, still_needed) else {
            return Ok(Asked::Skipped);
        };
        match derive(custodian, &passphrase, allow_test_only_kdf, prompt)? {
            Some(identity) => return Ok(Asked::Identity(identity)),
            None => prompt.wrong_passphrase(&custodian.name),
        }
    }
    Ok(Asked::Wrong)
}

/// "no terminal to ask for custodian X's passphrase; give --passphrase-file X=PATH",
/// for the passphrase custodians that could not be asked.
pub(crate) fn no_terminal_note(names: &[&str]) -> Option<String> {
    match names {
        [] => None,
        [name] => Some(format!(
            "no terminal to ask for custodian {name}'s passphrase; give --passphrase-file {name}=PATH"
        )),
        names => Some(format!(
            "no terminal to ask for the passphrase of custodian {}; give --passphrase-file NAME=PATH",
            names.join(" or ")
        )),
    }
}

pub(crate) fn passphrase_custodian<'m>(
    custodian: Option<&'m CustodianEntry>,
    name: &str,
) -> Result<&'m CustodianEntry, VaultError> {
    match custodian {
        None => Err(VaultError::Custodian {
            name: name.into(),
            detail: "no such custodian; run `breakglass custodian list`".into(),
        }),
        Some(c) if c.kdf.is_none() => Err(VaultError::Custodian {
            name: name.into(),
            detail: format!(
                "holds a key ({}), not a passphrase; pass --identity FILE",
                c.kind
            ),
        }),
        Some(c) => Ok(c),
    }
}

/// Derive a passphrase custodian's identity; `None` if the passphrase is wrong.
pub(crate) fn derive(
    custodian: &CustodianEntry,
    passphrase: &Passphrase,
    allow_test_only_kdf: bool,
    progress: &mut dyn KdfProgress,
) -> Result<Option<CustodianIdentity>, VaultError> {
    let kdf = custodian
        .kdf
        .as_ref()
        .expect("passphrase custodians have KDF params");
    let bad = |detail: String| VaultError::Custodian {
        name: custodian.name.clone(),
        detail,
    };
    let params: KdfParams = kdf.params;
    params.check(allow_test_only_kdf).map_err(bad)?;
    let salt = hex::decode(&kdf.salt).map_err(|_| bad("KDF salt is malformed".into()))?;
    progress.kdf_started(&custodian.name);
    let identity = params.derive_identity(passphrase, &salt);
    progress.kdf_finished();
    let identity = identity.map_err(bad)?;
    Ok((identity.recipient().as_deref() == Some(custodian.recipient.as_str())).then_some(identity))
}

/// Check a decrypted share against the manifest: vault, epoch, custodian, index,
/// threshold, and finally its commitment.
pub(crate) fn check_share(
    vault_id: [u8; 16],
    epoch: u64,
    threshold: usize,
    custodian: &CustodianEntry,
    record: ShareRecord,
) -> Result<Share, String> {
    if record.vault_id != vault_id {
        return Err(format!(
            "share belongs to another vault ({})",
            hex::encode(record.vault_id)
        ));
    }
    if record.epoch != epoch {
        return Err(format!(
            "share is from epoch {}; the vault is at epoch {}",
            record.epoch, epoch
        ));
    }
    if record.custodian != custodian.name
        || record.index != custodian.index
        || usize::from(record.threshold) != threshold
    {
        return Err("share's custodian, index or threshold do not match the manifest".into());
    }
    let commitment = crypto::commitment(&vault_id, epoch, &record.share);
    if !crypto::ct_eq(commitment.as_bytes(), custodian.commitment.as_bytes()) {
        return Err("share fails its commitment (corrupted or forged)".into());
    }
    Ok(record.share)
}

#[cfg(test)]
#[path = "share_flips.rs"]
mod share_flips;

/// The last line before a derivation: even a signed manifest (say, from a
/// release with other bounds) cannot make `derive` run with costs outside the
/// floor and cap; the refusal names the custodian and the parameter.
#[cfg(test)]
mod hostile_kdf {
    use super::*;
    use crate::manifest::KdfSpec;

    #[test]
    fn derive_refuses_out_of_bounds_costs_by_custodian_and_parameter() {
        let cases = [
            (
                KdfParams {
                    m_kib: 100 << 20,
                    t: 3,
                    p: 1,
                },
                true,
                "m=104857600 KiB > 4194304 KiB",
            ),
            (
                KdfParams {
                    m_kib: 64 << 10,
                    t: 65,
                    p: 1,
                },
                true,
                "t=65 > 64",
            ),
            (
                KdfParams {
                    m_kib: 64,
                    t: 1,
                    p: 1,
                },
                false,
                "m=64 KiB < 19456 KiB, t=1 < 2",
            ),
            (
                KdfParams {
                    m_kib: 64,
                    t: 0,
                    p: 1,
                },
                true,
                "t=0",
            ),
        ];
        for (params, test_only, named) in cases {
            let custodian = CustodianEntry {
                name: "pat".into(),
                kind: "passphrase".into(),
                recipient: String::new(),
                kdf: Some(KdfSpec {
                    salt: "00".repeat(16),
                    params,
                }),
                index: 1,
                commitment: String::new(),
                proof_key: None,
            };
            let err = derive(
                &custodian,
                &Passphrase::new("p".into()),
                test_only,
                &mut super::super::Quiet,
            )
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
            assert!(
                err.starts_with("custodian pat: Argon2id parameters") && err.contains(named),
                "{params:?}: {err}"
            );
        }
    }
}
