//! Signed audit checkpoints, written inside quorum sessions (the only time the
//! vault key exists), and verification against the manifest chain's keys.

use super::{Vault, VaultError};
use crate::audit::{self, CheckpointBody, EndorsedVersion};
use crate::crypto::{self, VaultKeys, VerifyKey};
use crate::store::Tx;

impl Vault {
    /// Append a checkpoint signing the log head and the active versions, in `tx`.
    pub(crate) fn append_checkpoint(
        tx: &Tx<'_>,
        keys: &VaultKeys,
        vault_id: &str,
        epoch: u64,
        fingerprint: &str,
        actor: &str,
    ) -> Result<(), VaultError> {
        let Some((seq, head)) = tx.read().audit_head()? else {
            return Ok(());
        };
        let versions = tx
            .read()
            .versions_in(&["active"])?
            .into_iter()
            .map(|v| EndorsedVersion {
                ciphertext_sha256: hex::encode(crypto::sha256(&[v.ciphertext.as_bytes()])),
                secret: v.secret,
                version: v.version,
                depositor: v.depositor,
            })
            .collect();
        let body = CheckpointBody {
            vault_id: vault_id.into(),
            epoch,
            seq,
            head,
            versions,
        };
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

    /// Every epoch's verify key, from the stored manifest chain.
    fn epoch_keys(&self) -> Result<Vec<(u64, VerifyKey)>, VaultError> {
        Ok(epoch_keys(&self.store.read().manifests()?))
    }

    /// Check the hash chain and every checkpoint against the manifest chain's keys.
    pub fn verify_audit(&self) -> Result<audit::VerifyReport, VaultError> {
        let keys = self.epoch_keys()?;
        let key_of = |epoch: u64| keys.iter().find(|(e, _)| *e == epoch).map(|(_, k)| *k);
        Ok(audit::verify_signed(
            &self.store.read().audit_entries()?,
            &self.manifest().vault_id,
            &key_of,
        ))
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
        let keys = self.epoch_keys()?;
        let key_of = |epoch: u64| keys.iter().find(|(e, _)| *e == epoch).map(|(_, k)| *k);
        Ok(audit::check_parsed_anchor(
            &entries,
            &self.fingerprint(),
            anchor,
            &key_of,
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
    let keys = epoch_keys(&rows);
    let key_of = |epoch: u64| keys.iter().find(|(e, _)| *e == epoch).map(|(_, k)| *k);
    let (first_seq, first_prev) = entries
        .first()
        .map(|e| (e.seq, e.prev_hash.clone()))
        .unwrap_or((1, audit::GENESIS_HASH.to_string()));
    let mut report =
        audit::verify_signed_from(&entries, first_seq, &first_prev, &header.vault_id, &key_of);
    if let (true, Some(anchor)) = (report.ok, anchor) {
        let anchored_seq = anchor
            .split_whitespace()
            .nth(2)
            .and_then(|s| s.parse::<u64>().ok());
        let checked = match anchored_seq {
            Some(seq) if seq != 0 && seq < first_seq => Err(format!(
                "the anchored head (seq {seq}) is before this export's first entry ({first_seq}); export with a lower --since"
            )),
            _ => audit::check_anchor(&entries, &header.fingerprint, anchor, &key_of),
        };
        if let Err(problem) = checked {
            report.ok = false;
            report.problem = Some(problem);
        }
    }
    Ok((header.fingerprint, report))
}

/// (epoch, verify key) of every manifest row.
fn epoch_keys(rows: &[crate::store::ManifestRow]) -> Vec<(u64, VerifyKey)> {
    rows.iter()
        .filter_map(|row| {
            let body: serde_json::Value = serde_json::from_str(&row.body).ok()?;
            Some((
                row.epoch,
                VerifyKey::from_hex(body.get("verify_key")?.as_str()?)?,
            ))
        })
        .collect()
}

/// Whether a secret version is covered by the last signed checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endorsement {
    /// Its ciphertext hash is in the last valid checkpoint.
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
    /// The versions the last valid checkpoint endorses (empty if there is none).
    pub(crate) fn endorsed_versions(&self) -> Result<Vec<audit::EndorsedVersion>, VaultError> {
        self.endorsed_by(&self.verify_audit()?)
    }

    /// The versions the last checkpoint of an already verified log signed.
    pub(crate) fn endorsed_by(
        &self,
        report: &audit::VerifyReport,
    ) -> Result<Vec<audit::EndorsedVersion>, VaultError> {
        let Some(seq) = report.signed_through.filter(|_| report.ok) else {
            return Ok(Vec::new());
        };
        let entries = self.store.read().audit_entries()?;
        Ok(entries
            .iter()
            .find(|e| e.seq == seq)
            .and_then(|e| serde_json::from_str::<audit::CheckpointDetails>(&e.details).ok())
            .map(|d| d.body.versions)
            .unwrap_or_default())
    }

    pub(crate) fn endorsement(
        endorsed: &[audit::EndorsedVersion],
        version: &crate::store::VersionRow,
    ) -> Endorsement {
        let hash = hex::encode(crypto::sha256(&[version.ciphertext.as_bytes()]));
        match endorsed
            .iter()
            .find(|e| e.secret == version.secret && e.version == version.version)
        {
            Some(e) if e.ciphertext_sha256 == hash => Endorsement::Endorsed,
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
        let own = self.store.read().audit_entries()?;
        let foreign = other.store.read().audit_entries()?;
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
            let tx = self.store.begin()?;
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
