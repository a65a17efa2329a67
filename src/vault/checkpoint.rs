//! Signed audit checkpoints, written inside quorum sessions (the only time the
//! vault key exists), and verification against the manifest chain's keys.
//!
//! A checkpoint signs the digests of what it endorses (`audit::versions_digest`,
//! `audit::settings_digest`); the endorsed sets are in the `endorsed_versions`
//! and `endorsed_settings` tables, replaced in the transaction that signs each
//! checkpoint. Those rows are unsigned: a command finds the last valid
//! checkpoint once, hashes the tables once, and trusts them only if they match
//! (`Endorsed`). Checkpoints from before schema 5 carry their sets inline.

use serde::Serialize;

use super::{Vault, VaultError};
use std::collections::{HashMap, HashSet};

use crate::audit::{self, CheckpointBody, EndorsedVersion, Endorsements};
use crate::crypto::{self, VaultKeys};
use crate::store::{Reader, RotationRow, Tx, VersionRow};

/// Versions and rotation settings written since the last signed checkpoint.
/// A quorum session endorses them only when the user confirmed exactly these
/// (on the terminal or with `--endorse`); anything else stays unendorsed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Unendorsed {
    /// Secret versions deposited after the last signed checkpoint.
    pub versions: Vec<UnendorsedVersion>,
    /// Rotation settings changed after the last signed checkpoint.
    pub settings: Vec<audit::EndorsedSetting>,
    /// Why endorsements the file holds were not trusted (the endorsement
    /// tables do not hash to what the last checkpoint signed), if so: then
    /// everything is listed here again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

impl Unendorsed {
    /// True when nothing is unendorsed.
    pub fn is_empty(&self) -> bool {
        self.versions.is_empty() && self.settings.is_empty()
    }
}

/// One secret version no signed checkpoint covers yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnendorsedVersion {
    /// The secret's name.
    pub secret: String,
    /// The version number.
    pub version: u32,
    /// Who deposited it (the actor logged).
    pub depositor: String,
    /// When it was deposited (RFC 3339, UTC).
    pub created: String,
    /// SHA-256 of its ciphertext, so an endorsement names exactly this version.
    pub ciphertext_sha256: String,
}

/// What a checkpoint about to be signed endorses: (secret, version) pairs and settings.
pub(crate) struct EndorsementPlan {
    versions: HashSet<(String, u32)>,
    settings: Vec<audit::EndorsedSetting>,
}

/// What the last valid checkpoint endorses, found once per command: from its
/// inline lists (a checkpoint written before schema 5), or from the
/// endorsement tables when they hash to the digests it signed. Tables that do
/// not count for nothing: every version is unendorsed, every setting
/// unendorsed, and `problem` says why.
#[derive(Debug, Default)]
pub(crate) struct Endorsed {
    versions: HashMap<(String, u32), audit::EndorsedVersion>,
    settings: HashMap<String, audit::EndorsedSetting>,
    /// Why endorsement rows in the file were not trusted, if they were not.
    pub(crate) problem: Option<String>,
}

impl Endorsed {
    /// The endorsed settings of `secret`; none endorsed means no hook, no generator.
    fn setting(&self, secret: &str) -> audit::EndorsedSetting {
        self.settings
            .get(secret)
            .cloned()
            .unwrap_or_else(|| audit::EndorsedSetting {
                secret: secret.to_string(),
                ..Default::default()
            })
    }
}

fn ciphertext_hash(v: &VersionRow) -> String {
    hex::encode(crypto::sha256(&[v.ciphertext.as_bytes()]))
}

fn setting_of(secret: &str, row: &RotationRow) -> audit::EndorsedSetting {
    audit::EndorsedSetting {
        secret: secret.to_string(),
        apply_cmd: row.apply_cmd.clone(),
        gen_length: row.gen_length,
        gen_charset: row.gen_charset.clone(),
        max_age_days: row.max_age_days,
        expires: row.expires.clone(),
        rotator: row.rotator.as_ref().map(|r| r.kind.clone()),
        rotator_config: row.rotator.as_ref().map(|r| r.config.clone()),
    }
}

/// The last valid checkpoint of a verified log, if any: (its seq, its body).
fn last_checkpoint(
    report: &audit::VerifyReport,
    entries: &[audit::Entry],
) -> Option<(u64, CheckpointBody)> {
    let seq = report.signed_through.filter(|_| report.ok)?;
    entries
        .iter()
        .rev()
        .find(|e| e.seq == seq)
        .and_then(|e| serde_json::from_str::<audit::CheckpointDetails>(&e.details).ok())
        .map(|d| (seq, d.body))
}

/// Which endorsed sets a command needs (each costs a read and a hash of its table).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Need {
    Versions,
    Settings,
    Both,
}

/// What the last valid checkpoint (`last`, from `last_checkpoint`) endorses.
fn endorsed_in(
    read: &Reader<'_>,
    last: Option<&(u64, CheckpointBody)>,
    need: Need,
) -> Result<Endorsed, VaultError> {
    let mut endorsed = Endorsed::default();
    let Some((seq, body)) = last else {
        return Ok(endorsed);
    };
    let (versions, settings) = match body.endorsements() {
        // Verification refuses such a checkpoint; nothing is endorsed.
        None => return Ok(endorsed),
        Some(Endorsements::Inline { versions, settings }) => (versions.to_vec(), settings.to_vec()),
        Some(Endorsements::Digest(digests)) => {
            let mut problems = Vec::new();
            let mut versions = Vec::new();
            if need != Need::Settings {
                versions = read.endorsed_versions()?;
                if audit::versions_digest(&versions) != digests.versions {
                    problems.push(format!(
                        "the endorsed_versions table does not hash to the digest checkpoint {seq} signed (it was edited in the file): every secret version counts as unendorsed until a quorum session endorses them again"
                    ));
                    versions.clear();
                }
            }
            let mut settings = Vec::new();
            if need != Need::Versions {
                settings = read.endorsed_settings()?;
                if audit::settings_digest(&settings) != digests.settings {
                    problems.push(format!(
                        "the endorsed_settings table does not hash to the digest checkpoint {seq} signed (it was edited in the file): no stored apply hook or generator setting counts as endorsed until a quorum session endorses them again"
                    ));
                    settings.clear();
                }
            }
            if !problems.is_empty() {
                endorsed.problem = Some(problems.join("; "));
            }
            (versions, settings)
        }
    };
    endorsed.versions = versions
        .into_iter()
        .map(|v| ((v.secret.clone(), v.version), v))
        .collect();
    endorsed.settings = settings
        .into_iter()
        .map(|s| (s.secret.clone(), s))
        .collect();
    Ok(endorsed)
}

/// What is unendorsed now, judged against what the last valid checkpoint endorses.
fn unendorsed_in(read: &Reader<'_>, endorsed: &Endorsed) -> Result<Unendorsed, VaultError> {
    let versions = read
        .versions_in(&["active"])?
        .into_iter()
        .filter(|v| Vault::endorsement(endorsed, v) == Endorsement::Unendorsed)
        .map(|v| UnendorsedVersion {
            ciphertext_sha256: ciphertext_hash(&v),
            secret: v.secret,
            version: v.version,
            depositor: v.depositor,
            created: v.created,
        })
        .collect();
    let settings = read
        .rotations()?
        .into_iter()
        .map(|(secret, row)| setting_of(&secret, &row))
        .filter(|current| endorsed.setting(&current.secret) != *current)
        .collect();
    Ok(Unendorsed {
        versions,
        settings,
        problem: endorsed.problem.clone(),
    })
}

impl Vault {
    /// Verify the log as `tx` sees it, before anything is signed over it.
    pub(crate) fn verify_in(
        tx: &Tx<'_>,
        vault_id: &str,
        fingerprint: &str,
    ) -> Result<(audit::VerifyReport, Vec<audit::Entry>), VaultError> {
        let read = tx.read();
        let manifests = read.manifests()?;
        crate::manifest::verify_chain(&manifests)?;
        let entries = read.audit_entries()?;
        let chain = audit::EpochChain::from_manifests(&manifests);
        Ok((
            audit::verify_signed(&entries, vault_id, fingerprint, &chain),
            entries,
        ))
    }

    /// What the next checkpoint endorses: what the last one did (still
    /// matching), plus exactly the items the user `confirmed`.
    pub(crate) fn plan_endorsement(
        tx: &Tx<'_>,
        report: &audit::VerifyReport,
        entries: &[audit::Entry],
        confirmed: &Unendorsed,
    ) -> Result<EndorsementPlan, VaultError> {
        let read = tx.read();
        let endorsed = endorsed_in(&read, last_checkpoint(report, entries).as_ref(), Need::Both)?;
        let confirmed_versions: HashMap<(&str, u32), &str> = confirmed
            .versions
            .iter()
            .map(|c| ((c.secret.as_str(), c.version), c.ciphertext_sha256.as_str()))
            .collect();
        let versions = read
            .versions_in(&["active"])?
            .into_iter()
            .filter(|v| {
                Vault::endorsement(&endorsed, v) == Endorsement::Endorsed
                    || confirmed_versions
                        .get(&(v.secret.as_str(), v.version))
                        .is_some_and(|hash| *hash == ciphertext_hash(v))
            })
            .map(|v| (v.secret, v.version))
            .collect();
        let mut settings = Vec::new();
        for (secret, row) in read.rotations()? {
            let current = setting_of(&secret, &row);
            let before = endorsed.setting(&secret);
            if before == current || confirmed.settings.contains(&current) {
                settings.push(current);
            } else if !before.is_default() {
                settings.push(before);
            }
        }
        Ok(EndorsementPlan { versions, settings })
    }

    /// Sign a checkpoint over the log head in `tx`, endorsing `plan` (the
    /// versions with their ciphertexts as they are now), and sign the new head.
    ///
    /// The checkpoint signs only the digests of the endorsed sets
    /// (`audit::versions_digest`, `audit::settings_digest`); the sets replace
    /// the endorsement tables in the same transaction, so the row stays the
    /// same size however many secrets the vault holds.
    pub(crate) fn sign_checkpoint(
        tx: &Tx<'_>,
        keys: &VaultKeys,
        ids: (&str, &str),
        epoch: u64,
        actor: &str,
        plan: &EndorsementPlan,
    ) -> Result<(), VaultError> {
        let (vault_id, fingerprint) = ids;
        let Some((seq, head)) = tx.read().audit_head()? else {
            return Ok(());
        };
        let versions: Vec<EndorsedVersion> = tx
            .read()
            .versions_in(&["active"])?
            .into_iter()
            .filter(|v| plan.versions.contains(&(v.secret.clone(), v.version)))
            .map(|v| EndorsedVersion {
                ciphertext_sha256: ciphertext_hash(&v),
                secret: v.secret,
                version: v.version,
                depositor: v.depositor,
            })
            .collect();
        // A setting equal to the default says nothing: leave it out of the set.
        let settings: Vec<audit::EndorsedSetting> = plan
            .settings
            .iter()
            .filter(|s| !s.is_default())
            .cloned()
            .collect();
        let body = CheckpointBody {
            vault_id: vault_id.into(),
            epoch,
            seq,
            head,
            versions: None,
            settings: Vec::new(),
            endorsed: Some(audit::EndorsedDigests {
                versions: audit::versions_digest(&versions),
                settings: audit::settings_digest(&settings),
            }),
        };
        tx.replace_endorsements(&versions, &settings)?;
        let signature = keys.sign(&audit::checkpoint_message(&body));
        audit::append(
            tx,
            vec![audit::checkpoint_entry(actor, fingerprint, body, signature)],
        )?;
        // Sign the new head too, so the anchor printed for it proves itself.
        if let Some((seq, head)) = tx.read().audit_head()? {
            let signature = keys.sign(&audit::anchor_message(fingerprint, epoch, seq, &head));
            tx.insert_anchor_signature(seq, epoch, &hex::encode(signature))?;
        }
        Ok(())
    }

    /// Log (and so alert) that no checkpoint was signed because the log fails
    /// verification. The emergency goes on; nothing is signed over a broken log.
    pub(crate) fn refuse_checkpoint(
        tx: &Tx<'_>,
        fingerprint: &str,
        epoch: u64,
        actor: &str,
        problem: &str,
    ) -> Result<String, VaultError> {
        audit::append(
            tx,
            vec![
                audit::NewEntry::new(actor, "checkpoint_refused", fingerprint)
                    .details(serde_json::json!({ "epoch": epoch, "problem": problem })),
            ],
        )?;
        Ok(format!(
            "no checkpoint was signed: the audit log fails verification ({problem}); the problem is logged and alerted — run `breakglass audit verify` and restore the log from a trusted copy"
        ))
    }

    /// Verify, then sign a checkpoint in `tx`; on a broken log, log the refusal
    /// instead and return it as a warning.
    pub(crate) fn append_checkpoint(
        tx: &Tx<'_>,
        keys: &VaultKeys,
        ids: (&str, &str),
        epoch: u64,
        actor: &str,
        confirmed: &Unendorsed,
    ) -> Result<Option<String>, VaultError> {
        let (report, entries) = Vault::verify_in(tx, ids.0, ids.1)?;
        if let Some(problem) = report.problem.as_deref().filter(|_| !report.ok) {
            return Vault::refuse_checkpoint(tx, ids.1, epoch, actor, problem).map(Some);
        }
        let plan = Vault::plan_endorsement(tx, &report, &entries, confirmed)?;
        Vault::sign_checkpoint(tx, keys, ids, epoch, actor, &plan)?;
        Ok(None)
    }

    /// The manifest chain as the log is checked against it.
    fn epoch_chain(&self) -> Result<audit::EpochChain, VaultError> {
        Ok(audit::EpochChain::from_manifests(
            &self.store.read().manifests()?,
        ))
    }

    /// Check the hash chain, every checkpoint and the epoch history against the manifest chain.
    pub fn verify_audit(&self) -> Result<audit::VerifyReport, VaultError> {
        Ok(audit::verify_signed(
            &self.store.read().audit_entries()?,
            &self.manifest().vault_id,
            &self.fingerprint(),
            &self.epoch_chain()?,
        ))
    }

    /// What the last valid checkpoint endorses, judged once for this command.
    fn endorsed_now(&self, need: Need) -> Result<Endorsed, VaultError> {
        let report = self.verify_audit()?;
        self.endorsed_given(&report, need)
    }

    fn endorsed_given(
        &self,
        report: &audit::VerifyReport,
        need: Need,
    ) -> Result<Endorsed, VaultError> {
        let read = self.store.read();
        let last = match report.signed_through.filter(|_| report.ok) {
            None => None,
            Some(seq) => read
                .audit_entry(seq)?
                .and_then(|e| serde_json::from_str::<audit::CheckpointDetails>(&e.details).ok())
                .map(|d| (seq, d.body)),
        };
        endorsed_in(&read, last.as_ref(), need)
    }

    /// What a quorum session would be asked to endorse now.
    pub fn unendorsed(&self) -> Result<Unendorsed, VaultError> {
        unendorsed_in(&self.store.read(), &self.endorsed_now(Need::Both)?)
    }

    /// The rotation settings of `secret` the last valid checkpoint endorsed
    /// (no hook and no generator if none did).
    pub(crate) fn endorsed_settings(
        &self,
        secret: &str,
    ) -> Result<audit::EndorsedSetting, VaultError> {
        let endorsed = match self.endorsed_by_latest_checkpoint(Need::Settings)? {
            Some(endorsed) => endorsed,
            None => self.endorsed_now(Need::Settings)?,
        };
        Ok(endorsed.setting(secret))
    }

    /// What the newest checkpoint endorses, judged from that row, the row
    /// before it and the signed manifests alone, so the cost does not grow
    /// with the log. `None` if it cannot be judged that way or fails: then
    /// the caller verifies the whole log, which names what is wrong.
    fn endorsed_by_latest_checkpoint(&self, need: Need) -> Result<Option<Endorsed>, VaultError> {
        let read = self.store.read();
        let Some(checkpoint) = read.last_audit_of(audit::CHECKPOINT)? else {
            return Ok(None);
        };
        let Some(prev) = read.audit_entry(checkpoint.seq.saturating_sub(1))? else {
            return Ok(None);
        };
        let chain = self.epoch_chain()?;
        match audit::check_latest_checkpoint(&checkpoint, &prev, &self.manifest().vault_id, &chain)
        {
            Some(Ok(())) => {
                let body = serde_json::from_str::<audit::CheckpointDetails>(&checkpoint.details)
                    .map_err(|_| VaultError::invalid("checkpoint is unreadable"))?
                    .body;
                endorsed_in(&read, Some(&(checkpoint.seq, body)), need).map(Some)
            }
            _ => Ok(None),
        }
    }

    /// A one-line anchor for the current log head, signed when a quorum session signed it.
    pub fn audit_anchor(&self) -> Result<String, VaultError> {
        let read = self.store.read();
        let entries = read.audit_entries()?;
        let head = entries.last();
        let signature = match head {
            Some(e) => read.anchor_signature(e.seq)?,
            None => None,
        };
        Ok(audit::signed_anchor(
            &self.fingerprint(),
            head,
            signature.as_ref().map(|(epoch, s)| (*epoch, s.as_str())),
        ))
    }

    /// Check that the log still contains an anchored head (and its signature, if any).
    /// The outer error is a failure to read the file; the inner one, what is wrong.
    pub fn check_anchor(
        &self,
        anchor: &audit::Anchor,
    ) -> Result<Result<(), audit::AnchorMismatch>, VaultError> {
        let entries = self.store.read().audit_entries()?;
        Ok(audit::check_parsed_anchor(
            &entries,
            &self.fingerprint(),
            anchor,
            &self.epoch_chain()?,
        ))
    }
}

impl Vault {
    /// The log (from `since`, default 1) as self-checking JSONL or as CSV.
    pub fn export_audit(&self, csv: bool, since: Option<u64>) -> Result<String, VaultError> {
        let since = since.unwrap_or(1);
        let entries: Vec<audit::Entry> = self
            .store
            .read()
            .audit_entries()?
            .into_iter()
            .filter(|e| e.seq >= since)
            .collect();
        if csv {
            return Ok(audit::export_csv(&entries));
        }
        let header = audit::ExportHeader {
            breakglass_audit_export: 1,
            fingerprint: self.fingerprint(),
            vault_id: self.manifest().vault_id.clone(),
            manifests: self
                .store
                .read()
                .manifests()?
                .into_iter()
                .map(|m| audit::ExportedManifest {
                    epoch: m.epoch,
                    body: m.body,
                    signatures: m.signatures,
                })
                .collect(),
        };
        Ok(audit::export_jsonl(&header, &entries))
    }
}

/// Verify a JSONL export with no vault present: its manifests (signatures and
/// chain), the fingerprint they imply, the hash chain, and every checkpoint.
/// Verify a JSONL export with no vault present; with `anchor`, also check that
/// the export still reaches that anchored head.
pub fn verify_export(
    text: &str,
    anchor: Option<&str>,
) -> Result<(String, audit::VerifyReport), VaultError> {
    let bad = |line: usize, what: &str| {
        VaultError::invalid(format!("export line {line}: {what}; export the log again"))
    };
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let (_, first) = lines.next().ok_or_else(|| bad(1, "the file is empty"))?;
    let header: audit::ExportHeader = serde_json::from_str(first)
        .map_err(|_| bad(1, "is not a breakglass audit export header"))?;
    let rows: Vec<crate::store::ManifestRow> = header
        .manifests
        .iter()
        .map(|m| crate::store::ManifestRow {
            epoch: m.epoch,
            body: m.body.clone(),
            signatures: m.signatures.clone(),
        })
        .collect();
    let latest = crate::manifest::verify_chain(&rows)?;
    if latest.manifest.vault_id != header.vault_id
        || latest.manifest.fingerprint() != header.fingerprint
    {
        return Err(bad(1, "header fingerprint does not match its manifests"));
    }
    let mut entries = Vec::new();
    for (i, line) in lines {
        let entry: audit::Entry =
            serde_json::from_str(line).map_err(|_| bad(i + 1, "is not an audit entry"))?;
        entries.push(entry);
    }
    let chain = audit::EpochChain::from_manifests(&rows);
    let (first_seq, first_prev) = entries
        .first()
        .map(|e| (e.seq, e.prev_hash.clone()))
        .unwrap_or((1, audit::GENESIS_HASH.to_string()));
    let mut report = audit::verify_signed_from(
        &entries,
        first_seq,
        &first_prev,
        &header.vault_id,
        &header.fingerprint,
        &chain,
    );
    if let (true, Some(anchor)) = (report.ok, anchor) {
        let anchored_seq = anchor
            .split_whitespace()
            .nth(2)
            .and_then(|s| s.parse::<u64>().ok());
        let checked = match anchored_seq {
            Some(seq) if seq != 0 && seq < first_seq => Err(format!(
                "the anchored head (seq {seq}) is before this export's first entry ({first_seq}); export with a lower --since"
            )),
            _ => audit::check_anchor(&entries, &header.fingerprint, anchor, &chain),
        };
        if let Err(problem) = checked {
            report.ok = false;
            report.problem = Some(problem);
        }
    }
    Ok((header.fingerprint, report))
}

/// Whether a secret version is covered by the last signed checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endorsement {
    /// The last valid checkpoint endorsed it with this ciphertext hash.
    Endorsed,
    /// Deposited since the last checkpoint (anyone with write access can deposit).
    Unendorsed,
    /// The checkpoint endorsed this version with a different ciphertext: swapped in the file.
    Tampered,
}

impl Endorsement {
    pub fn as_str(&self) -> &'static str {
        match self {
            Endorsement::Endorsed => "endorsed",
            Endorsement::Unendorsed => "unendorsed",
            Endorsement::Tampered => "tampered",
        }
    }
}

impl Vault {
    /// What the last valid checkpoint endorses, as write transaction `tx`
    /// sees the log and the endorsement tables.
    pub(crate) fn endorsed_versions_in(
        tx: &Tx<'_>,
        vault_id: &str,
        fingerprint: &str,
    ) -> Result<Endorsed, VaultError> {
        let (report, _) = Vault::verify_in(tx, vault_id, fingerprint)?;
        let read = tx.read();
        let last = match report.signed_through.filter(|_| report.ok) {
            None => None,
            Some(seq) => read
                .audit_entry(seq)?
                .and_then(|e| serde_json::from_str::<audit::CheckpointDetails>(&e.details).ok())
                .map(|d| (seq, d.body)),
        };
        endorsed_in(&read, last.as_ref(), Need::Versions)
    }

    /// The versions the last valid checkpoint endorses (none if there is no
    /// checkpoint, or if the endorsement table does not match its digest).
    pub(crate) fn endorsed_versions(&self) -> Result<Endorsed, VaultError> {
        self.endorsed_now(Need::Versions)
    }

    /// The versions the last checkpoint of an already verified log endorses.
    pub(crate) fn endorsed_by(&self, report: &audit::VerifyReport) -> Result<Endorsed, VaultError> {
        self.endorsed_given(report, Need::Versions)
    }

    pub(crate) fn endorsement(
        endorsed: &Endorsed,
        version: &crate::store::VersionRow,
    ) -> Endorsement {
        match endorsed
            .versions
            .get(&(version.secret.clone(), version.version))
        {
            Some(e) if e.ciphertext_sha256 == ciphertext_hash(version) => Endorsement::Endorsed,
            Some(_) => Endorsement::Tampered,
            None => Endorsement::Unendorsed,
        }
    }
}

/// What `audit merge` did.
#[derive(Debug, serde::Serialize)]
pub struct MergeReport {
    /// Leading entries both logs share.
    pub common: usize,
    /// Foreign entries appended now.
    pub merged: usize,
    /// Foreign entries already merged before.
    pub already_merged: usize,
}

impl Vault {
    /// Bring another copy's entries (those after the shared prefix) into this
    /// log, oldest first, as `merged` rows citing the foreign seq and hash. Both
    /// chains stay verifiable; merging twice adds nothing.
    pub fn merge_from(&mut self, other: &Vault, actor: &str) -> Result<MergeReport, VaultError> {
        let (mine, theirs) = (self.manifest(), other.manifest());
        if mine.vault_id != theirs.vault_id || mine.fingerprint() != theirs.fingerprint() {
            return Err(VaultError::invalid(format!(
                "the other copy is a different vault ({}, this one is {}); nothing merged",
                theirs.fingerprint(),
                mine.fingerprint()
            )));
        }
        let check = other.verify_audit()?;
        if let Some(problem) = check.problem {
            return Err(VaultError::invalid(format!(
                "the other copy's log fails verification ({problem}); nothing merged"
            )));
        }
        let foreign = other.store.read().audit_entries()?;
        // Compare with this log as the write lock sees it, so a row appended
        // meanwhile by another command is neither missed nor merged twice.
        let tx = self.store.begin()?;
        let own = tx.read().audit_entries()?;
        let common = own
            .iter()
            .zip(&foreign)
            .take_while(|(a, b)| a.hash == b.hash)
            .count();
        let cited: Vec<String> = own
            .iter()
            .filter(|e| e.action == "merged")
            .filter_map(|e| {
                let d: serde_json::Value = serde_json::from_str(&e.details).ok()?;
                d.get("foreign_hash")?.as_str().map(String::from)
            })
            .collect();
        let mut fresh: Vec<&audit::Entry> = foreign[common..]
            .iter()
            .filter(|e| !cited.contains(&e.hash))
            .collect();
        let already_merged = foreign.len() - common - fresh.len();
        fresh.sort_by(|a, b| a.time.cmp(&b.time).then(a.seq.cmp(&b.seq)));
        let entries: Vec<audit::NewEntry> = fresh
            .iter()
            .map(|e| {
                audit::NewEntry::new(&e.actor, "merged", &e.subject)
                    .reason(&e.reason)
                    .details(serde_json::json!({
                        "foreign_seq": e.seq,
                        "foreign_hash": e.hash,
                        "foreign_time": e.time,
                        "foreign_action": e.action,
                        "foreign_details": serde_json::from_str::<serde_json::Value>(&e.details)
                            .unwrap_or(serde_json::Value::Null),
                        "merged_by": actor,
                    }))
            })
            .collect();
        let merged = entries.len();
        if merged > 0 {
            audit::append(&tx, entries)?;
            tx.commit()?;
        }
        Ok(MergeReport {
            common,
            merged,
            already_merged,
        })
    }
}
