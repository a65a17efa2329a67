//! The audit log: append-only rows chained by SHA-256, and their verification.
//! A row never holds a secret value.

use serde::Serialize;

use crate::crypto;
use crate::store::{StoreError, Tx};

/// The `prev_hash` of the first row.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";
const HASH_LABEL: &[u8] = b"breakglass/v1/audit-row\0";

/// One stored audit row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Entry {
    /// Position in the log, from 1, with no gaps.
    pub seq: u64,
    /// When the row was written (RFC 3339, UTC, milliseconds).
    pub time: String,
    /// Who did it: the login name and host (`user@host`).
    pub actor: String,
    /// What was done (`unseal`, `put`, `rekey`…).
    pub action: String,
    /// What it was done to (a secret, custodian or request), or empty.
    pub subject: String,
    /// Why, as the user gave it, or empty.
    pub reason: String,
    /// Structured details as canonical JSON text (hashed exactly as stored).
    pub details: String,
    /// The previous row's hash (hex), chaining the rows.
    pub prev_hash: String,
    /// SHA-256 over the label, `prev_hash` and this row (hex).
    pub hash: String,
}

/// A row about to be appended.
#[derive(Debug, Clone)]
pub struct NewEntry {
    /// Who does it.
    pub actor: String,
    /// The action's name.
    pub action: &'static str,
    /// What it is done to.
    pub subject: String,
    /// Why, as the user gave it.
    pub reason: String,
    /// Structured details; never a secret.
    pub details: serde_json::Value,
}

impl NewEntry {
    /// A row with no reason and empty details.
    pub fn new(actor: &str, action: &'static str, subject: &str) -> Self {
        Self {
            actor: actor.to_string(),
            action,
            subject: subject.to_string(),
            reason: String::new(),
            details: serde_json::Value::Object(Default::default()),
        }
    }

    /// Sets the reason.
    pub fn reason(mut self, reason: &str) -> Self {
        self.reason = reason.to_string();
        self
    }

    /// Sets the details.
    pub fn details(mut self, details: serde_json::Value) -> Self {
        self.details = details;
        self
    }
}

/// hash = SHA-256(label ‖ prev_hash ‖ canonical row).
pub(crate) fn row_hash(entry: &Entry) -> String {
    let canonical = serde_json::to_vec(&(
        entry.seq,
        &entry.time,
        &entry.actor,
        &entry.action,
        &entry.subject,
        &entry.reason,
        &entry.details,
    ))
    .expect("tuple of strings and integers always serializes");
    hex::encode(crypto::sha256(&[
        HASH_LABEL,
        entry.prev_hash.as_bytes(),
        &canonical,
    ]))
}

/// Append entries to the log inside the command's transaction.
pub fn append(tx: &Tx<'_>, entries: Vec<NewEntry>) -> Result<Vec<Entry>, StoreError> {
    let (mut seq, mut prev_hash) = tx
        .read()
        .audit_head()?
        .unwrap_or((0, GENESIS_HASH.to_string()));
    let time = now();
    let mut appended = Vec::with_capacity(entries.len());
    for new in entries {
        seq += 1;
        let mut entry = Entry {
            seq,
            time: time.clone(),
            actor: new.actor,
            action: new.action.to_string(),
            subject: new.subject,
            reason: new.reason,
            details: new.details.to_string(),
            prev_hash,
            hash: String::new(),
        };
        entry.hash = row_hash(&entry);
        tx.insert_audit(&entry)?;
        prev_hash = entry.hash.clone();
        appended.push(entry);
    }
    queue_alerts(tx, &appended, &time)?;
    Ok(appended)
}

/// Queue an alert per signed sink for every alert-worthy row, in the same
/// transaction. The queue row names only the audit seq and the sink's index in
/// the manifest of the epoch in force (the newest one in `tx`), and the origin
/// (this machine) that will deliver it; with no origin ('', the state
/// directory cannot keep one) it waits for `alerts flush --adopt`.
fn queue_alerts(tx: &Tx<'_>, entries: &[Entry], time: &str) -> Result<(), StoreError> {
    let worthy: Vec<&Entry> = entries
        .iter()
        .filter(|e| crate::notify::raises_alert(&e.action))
        .collect();
    if worthy.is_empty() {
        return Ok(());
    }
    let manifest = tx
        .read()
        .manifests()?
        .last()
        .and_then(|row| serde_json::from_str::<crate::manifest::Manifest>(&row.body).ok());
    let Some(m) = manifest else { return Ok(()) };
    if m.alerts.is_empty() {
        return Ok(());
    }
    let origin = crate::notify::origin().unwrap_or_default();
    for entry in worthy {
        for index in 0..m.alerts.len() as u32 {
            tx.enqueue_alert(entry.seq, &entry.hash, m.epoch, index, time, &origin)?;
        }
    }
    Ok(())
}

/// The epoch in force at each entry: `start` until a `new_epoch` row, whose
/// target epoch is in force from that row on. A row that names no readable
/// target keeps the epoch (verification reports it).
pub fn epochs_in_force(entries: &[Entry], start: u64) -> Vec<u64> {
    let mut epoch = start;
    entries
        .iter()
        .map(|e| {
            if e.action == NEW_EPOCH {
                if let Some(to) = new_epoch_target(e) {
                    epoch = to;
                }
            }
            epoch
        })
        .collect()
}

/// The action of the row that starts a new epoch (its details name the epochs).
pub const NEW_EPOCH: &str = "new_epoch";

/// The `to` epoch a `new_epoch` row names.
fn new_epoch_target(entry: &Entry) -> Option<u64> {
    serde_json::from_str::<serde_json::Value>(&entry.details)
        .ok()?
        .get("to")?
        .as_u64()
}

/// The current time as stored in rows: RFC 3339, UTC, milliseconds.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The result of checking the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// The chain, every checkpoint and every manifest link check out.
    pub ok: bool,
    /// Rows checked.
    pub entries: u64,
    /// The first row that fails, if any.
    pub first_bad_seq: Option<u64>,
    /// What failed, in one line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// The seq of the last valid checkpoint: the log up to it is signed.
    pub signed_through: Option<u64>,
    /// Entries after the last checkpoint.
    pub unsigned_entries: u64,
}

/// Check that seqs run 1, 2, 3…, each row links to the one before, and each hash
/// matches its content. Reports the first row that breaks.
pub fn verify(entries: &[Entry]) -> VerifyReport {
    verify_from(entries, 1, GENESIS_HASH)
}

/// As `verify`, for a log that starts at `first_seq` after a row whose hash is
/// `first_prev` (an export made with `--since`).
pub fn verify_from(entries: &[Entry], first_seq: u64, first_prev: &str) -> VerifyReport {
    let mut prev_hash = first_prev.to_string();
    for (i, entry) in entries.iter().enumerate() {
        // A hostile export may start at u64::MAX: no row can follow it.
        let Some(expected_seq) = first_seq.checked_add(i as u64) else {
            return VerifyReport {
                ok: false,
                entries: entries.len() as u64,
                first_bad_seq: Some(entry.seq.max(1)),
                problem: Some(format!(
                    "audit row {}: follows seq {} but no seq is larger (a row was inserted)",
                    entry.seq,
                    u64::MAX
                )),
                signed_through: None,
                unsigned_entries: 0,
            };
        };
        let problem = if entry.seq != expected_seq {
            Some(format!(
                "expected seq {expected_seq} but found {} (a row was deleted or inserted)",
                entry.seq
            ))
        } else if entry.prev_hash != prev_hash {
            Some(
                "does not link to the row before it (rows were deleted, inserted or reordered)"
                    .into(),
            )
        } else if entry.hash != row_hash(entry) {
            Some("its content does not match its hash (the row was edited)".into())
        } else {
            None
        };
        if let Some(problem) = problem {
            let bad = expected_seq.min(entry.seq.max(1));
            return VerifyReport {
                ok: false,
                entries: entries.len() as u64,
                first_bad_seq: Some(bad),
                problem: Some(format!("audit row {bad}: {problem}")),
                signed_through: None,
                unsigned_entries: 0,
            };
        }
        prev_hash = entry.hash.clone();
    }
    VerifyReport {
        ok: true,
        entries: entries.len() as u64,
        first_bad_seq: None,
        problem: None,
        signed_through: None,
        unsigned_entries: entries.len() as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: u64) -> Vec<Entry> {
        let mut prev = GENESIS_HASH.to_string();
        (1..=n)
            .map(|seq| {
                let mut e = Entry {
                    seq,
                    time: "2026-01-01T00:00:00.000Z".into(),
                    actor: "alice@host".into(),
                    action: "put".into(),
                    subject: format!("s{seq}"),
                    reason: String::new(),
                    details: "{}".into(),
                    prev_hash: prev.clone(),
                    hash: String::new(),
                };
                e.hash = row_hash(&e);
                prev = e.hash.clone();
                e
            })
            .collect()
    }

    #[test]
    fn intact_chain_verifies() {
        assert!(verify(&chain(5)).ok);
        assert!(verify(&[]).ok);
    }

    #[test]
    fn edit_delete_reorder_insert_are_caught() {
        let mut edited = chain(5);
        edited[2].reason = "changed".into();
        assert_eq!(verify(&edited).first_bad_seq, Some(3));

        let mut deleted = chain(5);
        deleted.remove(1);
        assert_eq!(verify(&deleted).first_bad_seq, Some(2));

        let mut reordered = chain(5);
        reordered.swap(1, 2);
        assert_eq!(verify(&reordered).first_bad_seq, Some(2));

        let mut inserted = chain(5);
        let extra = inserted[1].clone();
        inserted.insert(2, extra);
        assert!(!verify(&inserted).ok);
    }
}

/// A checkpoint: the vault key of `epoch` signs the log head (seq, hash) and
/// what a quorum endorsed (secret versions, rotation settings), so the log up
/// to there cannot be rewritten without a quorum, and deposits since are known
/// to be unendorsed.
///
/// Two formats, told apart by which fields are present:
/// - **inline** (written before schema 5): `versions` (always present, maybe
///   empty) and `settings` (omitted when empty) list everything endorsed, so
///   the row grew with the number of secrets;
/// - **digest** (schema 5 on): `endorsed` holds a fixed-size digest and count
///   of each endorsed set; the sets themselves are in the `endorsed_versions`
///   and `endorsed_settings` tables, which hold the sets of the latest
///   checkpoint only and count only while their digests match the signed ones
///   ([`versions_digest`], [`settings_digest`]).
///
/// The signature covers `checkpoint_message(body)`, the body re-serialized
/// from this struct: field order and omitted fields are part of the format.
/// Never reorder, rename or stop omitting a field; add new ones at the end,
/// omitted when absent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct CheckpointBody {
    /// The vault's id (hex).
    pub vault_id: String,
    /// The epoch whose key signs the checkpoint.
    pub epoch: u64,
    /// The seq of the last row covered.
    pub seq: u64,
    /// That row's hash (hex): the whole log up to it is signed.
    pub head: String,
    /// Inline format: every endorsed version. `None` in the digest format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub versions: Option<Vec<EndorsedVersion>>,
    /// Inline format: rotation settings (apply hook, generator, policy) a
    /// quorum endorsed. Absent in checkpoints from before settings were
    /// signed, and always empty in the digest format.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub settings: Vec<EndorsedSetting>,
    /// Digest format: what the endorsed sets hash to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endorsed: Option<EndorsedDigests>,
}

impl CheckpointBody {
    /// The format this body is in; `None` if it mixes both or has neither
    /// (no breakglass ever wrote such a body).
    pub fn endorsements(&self) -> Option<Endorsements<'_>> {
        match (&self.versions, &self.endorsed) {
            (Some(versions), None) => Some(Endorsements::Inline {
                versions,
                settings: &self.settings,
            }),
            (None, Some(digests)) if self.settings.is_empty() => {
                Some(Endorsements::Digest(digests))
            }
            _ => None,
        }
    }
}

/// What a checkpoint says was endorsed, in either format.
#[derive(Debug, Clone, Copy)]
pub enum Endorsements<'a> {
    /// Every endorsed version and setting, listed in the checkpoint.
    Inline {
        /// The endorsed secret versions.
        versions: &'a [EndorsedVersion],
        /// The endorsed rotation settings.
        settings: &'a [EndorsedSetting],
    },
    /// Only counts and digests of the endorsed sets.
    Digest(&'a EndorsedDigests),
}

/// The digests a digest-format checkpoint signs instead of the endorsed sets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct EndorsedDigests {
    /// Digest of the endorsed versions.
    pub versions: SetDigest,
    /// Digest of the endorsed (non-default) settings.
    pub settings: SetDigest,
}

/// How many items a set holds and the SHA-256 of its canonical bytes (hex).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct SetDigest {
    /// Items in the set.
    pub count: u64,
    /// SHA-256 of the set's canonical bytes (hex).
    pub sha256: String,
}

/// A secret's rotation settings as a quorum session endorsed them: only these
/// may run (the hook) or shape a generated password without a new confirmation.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
pub struct EndorsedSetting {
    /// The secret.
    pub secret: String,
    /// The apply hook's command, if any.
    pub apply_cmd: Option<String>,
    /// Generated password length, if set.
    pub gen_length: Option<u32>,
    /// Generated password charset, if set.
    pub gen_charset: Option<String>,
    /// Rotate after this many days, if set.
    pub max_age_days: Option<u32>,
    /// The secret's expiry date, if set.
    pub expires: Option<String>,
    /// A built-in rotator's kind, if set (absent from older checkpoints).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotator: Option<String>,
    /// That rotator's non-secret config, canonical JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotator_config: Option<String>,
}

impl EndorsedSetting {
    /// No hook, no generator, no policy: what every secret has when nothing
    /// was endorsed for it. The digest format leaves these out of its set.
    pub fn is_default(&self) -> bool {
        *self
            == EndorsedSetting {
                secret: self.secret.clone(),
                ..Default::default()
            }
    }
}

/// A secret version as a quorum session endorsed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct EndorsedVersion {
    /// The secret.
    pub secret: String,
    /// The version.
    pub version: u32,
    /// SHA-256 of its ciphertext (hex), so exactly this version is endorsed.
    pub ciphertext_sha256: String,
    /// Who deposited it.
    pub depositor: String,
}

const ENDORSED_VERSIONS_LABEL: &[u8] = b"breakglass/v1/endorsed-versions\0";
const ENDORSED_SETTINGS_LABEL: &[u8] = b"breakglass/v1/endorsed-settings\0";

/// `u32` big-endian byte length, then the bytes.
fn put_str(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(&(text.len() as u32).to_be_bytes());
    out.extend_from_slice(text.as_bytes());
}

/// `0x00` for none; `0x01` then the value for some.
fn put_opt<T>(out: &mut Vec<u8>, value: Option<T>, put: impl FnOnce(&mut Vec<u8>, T)) {
    match value {
        None => out.push(0),
        Some(v) => {
            out.push(1);
            put(out, v);
        }
    }
}

fn set_digest(label: &[u8], count: usize, items: &[u8]) -> SetDigest {
    let count = count as u64;
    SetDigest {
        count,
        sha256: hex::encode(crypto::sha256(&[label, &count.to_be_bytes(), items])),
    }
}

/// The digest a checkpoint signs for a set of endorsed versions. Exactly:
///
/// ```text
/// SHA-256( "breakglass/v1/endorsed-versions\0"          (32 bytes, ends in NUL)
///          ‖ u64be(n)                                   (number of versions)
///          ‖ for each version, sorted by (secret as UTF-8 bytes, version) ascending:
///              u32be(len(secret))            ‖ secret (UTF-8)
///              ‖ u32be(version)
///              ‖ u32be(len(ciphertext_sha256)) ‖ ciphertext_sha256 (ASCII, as stored: 64 lowercase hex)
///              ‖ u32be(len(depositor))         ‖ depositor (UTF-8)
///        )
/// ```
///
/// `u32be`/`u64be` are big-endian unsigned integers; lengths are in bytes.
/// The order of `versions` does not matter (they are sorted first); ties on
/// (secret, version), which the table's primary key rules out, are broken by
/// the remaining fields so the digest is still a function of the set.
pub fn versions_digest(versions: &[EndorsedVersion]) -> SetDigest {
    let mut sorted: Vec<&EndorsedVersion> = versions.iter().collect();
    sorted.sort_by(|a, b| {
        (
            a.secret.as_bytes(),
            a.version,
            &a.ciphertext_sha256,
            &a.depositor,
        )
            .cmp(&(
                b.secret.as_bytes(),
                b.version,
                &b.ciphertext_sha256,
                &b.depositor,
            ))
    });
    let mut items = Vec::with_capacity(sorted.len() * 128);
    for v in sorted {
        put_str(&mut items, &v.secret);
        items.extend_from_slice(&v.version.to_be_bytes());
        put_str(&mut items, &v.ciphertext_sha256);
        put_str(&mut items, &v.depositor);
    }
    set_digest(ENDORSED_VERSIONS_LABEL, versions.len(), &items)
}

/// The digest a checkpoint signs for a set of endorsed rotation settings
/// (settings equal to the default are left out of the set before it is
/// hashed or stored). Exactly:
///
/// ```text
/// SHA-256( "breakglass/v1/endorsed-settings\0"          (32 bytes, ends in NUL)
///          ‖ u64be(n)                                   (number of settings)
///          ‖ for each setting, sorted by secret (UTF-8 bytes) ascending:
///              str(secret) ‖ opt(str, apply_cmd) ‖ opt(u32be, gen_length)
///              ‖ opt(str, gen_charset) ‖ opt(u32be, max_age_days) ‖ opt(str, expires)
///              ‖ [only when a rotator is set: 0x01 ‖ str(rotator) ‖ str(rotator_config)]
///        )
/// str(s)    = u32be(len(s)) ‖ s (UTF-8)
/// opt(f, x) = 0x00 when absent, 0x01 ‖ f(x) when present
/// ```
pub fn settings_digest(settings: &[EndorsedSetting]) -> SetDigest {
    let mut sorted: Vec<&EndorsedSetting> = settings.iter().collect();
    // The whole value breaks ties, so the digest is a function of the set.
    sorted.sort_by(|a, b| {
        a.secret.as_bytes().cmp(b.secret.as_bytes()).then_with(|| {
            (
                &a.apply_cmd,
                a.gen_length,
                &a.gen_charset,
                a.max_age_days,
                &a.expires,
                (&a.rotator, &a.rotator_config),
            )
                .cmp(&(
                    &b.apply_cmd,
                    b.gen_length,
                    &b.gen_charset,
                    b.max_age_days,
                    &b.expires,
                    (&b.rotator, &b.rotator_config),
                ))
        })
    });
    let mut items = Vec::with_capacity(sorted.len() * 64);
    for s in sorted {
        put_str(&mut items, &s.secret);
        put_opt(&mut items, s.apply_cmd.as_deref(), put_str);
        put_opt(&mut items, s.gen_length, |o, n| {
            o.extend_from_slice(&n.to_be_bytes())
        });
        put_opt(&mut items, s.gen_charset.as_deref(), put_str);
        put_opt(&mut items, s.max_age_days, |o, n| {
            o.extend_from_slice(&n.to_be_bytes())
        });
        put_opt(&mut items, s.expires.as_deref(), put_str);
        // Appended only when set, so digests of settings without a rotator
        // (every checkpoint before rotators existed) are unchanged. The 0x01
        // cannot start the next item, whose u32be length begins with 0x00.
        if let Some(kind) = &s.rotator {
            items.push(0x01);
            put_str(&mut items, kind);
            put_str(&mut items, s.rotator_config.as_deref().unwrap_or(""));
        }
    }
    set_digest(ENDORSED_SETTINGS_LABEL, settings.len(), &items)
}

/// What a checkpoint row's `details` hold.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct CheckpointDetails {
    /// What the checkpoint signs.
    pub body: CheckpointBody,
    /// The epoch key's Ed25519 signature over it (hex).
    pub signature: String,
}

/// The action of a checkpoint row.
pub const CHECKPOINT: &str = "checkpoint";
const CHECKPOINT_LABEL: &[u8] = b"breakglass/v1/checkpoint\0";

/// The exact bytes a checkpoint signature covers.
pub fn checkpoint_message(body: &CheckpointBody) -> Vec<u8> {
    let mut message = CHECKPOINT_LABEL.to_vec();
    message.extend_from_slice(&serde_json::to_vec(body).expect("checkpoint serializes"));
    message
}

/// The checkpoint row that signs everything appended so far in `tx`.
pub fn checkpoint_entry(
    actor: &str,
    subject: &str,
    body: CheckpointBody,
    signature: [u8; 64],
) -> NewEntry {
    let details = CheckpointDetails {
        body,
        signature: hex::encode(signature),
    };
    NewEntry::new(actor, CHECKPOINT, subject)
        .details(serde_json::to_value(details).expect("checkpoint serializes"))
}

/// What the verified manifest chain says about each epoch: its verify key
/// and the log head its manifest committed to when it began.
#[derive(Debug, Clone)]
pub struct EpochInfo {
    /// The epoch.
    pub epoch: u64,
    /// Its verify key.
    pub key: crypto::VerifyKey,
    /// (seq, hash) of the last row before this epoch's `new_epoch` row; `None`
    /// for epoch 1 and for manifests from before epochs bound the log.
    pub audit_head: Option<(u64, String)>,
}

/// Every epoch of a vault, oldest first.
#[derive(Debug, Clone, Default)]
pub struct EpochChain {
    /// The epochs, oldest first.
    pub epochs: Vec<EpochInfo>,
}

impl EpochChain {
    /// From stored manifest rows (their chain is verified separately, on open).
    pub fn from_manifests(rows: &[crate::store::ManifestRow]) -> Self {
        let epochs = rows
            .iter()
            .filter_map(|row| {
                let m: crate::manifest::Manifest = serde_json::from_str(&row.body).ok()?;
                Some(EpochInfo {
                    epoch: row.epoch,
                    key: m.verify_key()?,
                    audit_head: m.audit_head.map(|h| (h.seq, h.hash)),
                })
            })
            .collect();
        Self { epochs }
    }

    /// The verify key of `epoch`, if the chain has it.
    pub fn key(&self, epoch: u64) -> Option<crypto::VerifyKey> {
        self.info(epoch).map(|i| i.key)
    }

    fn info(&self, epoch: u64) -> Option<&EpochInfo> {
        self.epochs.iter().find(|i| i.epoch == epoch)
    }

    /// The newest epoch (1 for an empty chain).
    pub fn latest(&self) -> u64 {
        self.epochs.last().map_or(1, |i| i.epoch)
    }

    /// The epoch in force just before `first_seq`: the newest epoch whose
    /// manifest says it began before then. Old manifests that do not say fall
    /// back on the first `new_epoch` row of `entries`.
    fn epoch_before(&self, first_seq: u64, entries: &[Entry]) -> u64 {
        if first_seq <= 1 {
            return 1;
        }
        if self.epochs.iter().skip(1).all(|i| i.audit_head.is_some()) {
            return self
                .epochs
                .iter()
                .filter(|i| {
                    i.audit_head
                        .as_ref()
                        .is_some_and(|(s, _)| s + 1 < first_seq)
                })
                .map(|i| i.epoch)
                .max()
                .unwrap_or(1);
        }
        entries
            .iter()
            .find(|e| e.action == NEW_EPOCH)
            .and_then(|e| Some(new_epoch_target(e)?.saturating_sub(1)))
            .unwrap_or_else(|| self.latest())
    }

    /// The epoch in force at each entry of a log starting at `first_seq`.
    pub fn in_force(&self, entries: &[Entry]) -> Vec<u64> {
        let first_seq = entries.first().map_or(1, |e| e.seq);
        epochs_in_force(entries, self.epoch_before(first_seq, entries))
    }
}

/// Check the hash chain, every checkpoint, and the epoch history against the
/// manifest chain.
pub fn verify_signed(
    entries: &[Entry],
    vault_id: &str,
    fingerprint: &str,
    chain: &EpochChain,
) -> VerifyReport {
    verify_signed_from(entries, 1, GENESIS_HASH, vault_id, fingerprint, chain)
}

/// As `verify_signed`, for a log starting at `first_seq` after `first_prev`.
///
/// Beyond the hash chain: a checkpoint counts only under the key of the epoch
/// in force at its place; every epoch of the manifest chain has its
/// `new_epoch` row, exactly after the head its manifest committed to, and the
/// checkpoint right after it; a full log starts with this vault's `init`.
pub fn verify_signed_from(
    entries: &[Entry],
    first_seq: u64,
    first_prev: &str,
    vault_id: &str,
    fingerprint: &str,
    chain: &EpochChain,
) -> VerifyReport {
    let mut report = verify_from(entries, first_seq, first_prev);
    if !report.ok {
        return report;
    }
    let fail = |seq: u64, problem: String| VerifyReport {
        ok: false,
        entries: entries.len() as u64,
        first_bad_seq: Some(seq),
        problem: Some(problem),
        signed_through: None,
        unsigned_entries: 0,
    };
    if let Some(first) = entries.first().filter(|e| e.seq == 1) {
        if first.action != "init" || first.subject != fingerprint {
            return fail(
                1,
                format!("audit row 1: is not the init row of vault {fingerprint} (another vault's log, or a rewritten one)"),
            );
        }
    }
    let mut epoch = chain.epoch_before(first_seq, entries);
    let mut awaiting_checkpoint: Option<u64> = None;
    for (i, entry) in entries.iter().enumerate() {
        if let Some(started) = awaiting_checkpoint.take() {
            if entry.action != CHECKPOINT {
                return fail(
                    entry.seq,
                    format!("audit row {}: epoch {started} began without its checkpoint (the rows of an epoch change were altered)", entry.seq),
                );
            }
        }
        match entry.action.as_str() {
            NEW_EPOCH => {
                if let Err(why) = check_new_epoch(entry, epoch, chain) {
                    return fail(entry.seq, format!("audit row {}: {why}", entry.seq));
                }
                epoch += 1;
                awaiting_checkpoint = Some(epoch);
            }
            CHECKPOINT => {
                let prev = i.checked_sub(1).map(|p| &entries[p]);
                if let Err(why) = check_checkpoint(entry, prev, vault_id, epoch, chain) {
                    return fail(
                        entry.seq,
                        format!("audit row {}: checkpoint {why}", entry.seq),
                    );
                }
                report.signed_through = Some(entry.seq);
            }
            _ => {}
        }
    }
    if let Some(started) = awaiting_checkpoint {
        let seq = entries.last().map_or(0, |e| e.seq);
        return fail(
            seq,
            format!("audit row {seq}: epoch {started} began without its checkpoint"),
        );
    }
    if epoch < chain.latest() {
        let seq = entries.last().map_or(0, |e| e.seq);
        return fail(
            seq,
            format!(
                "the manifest chain has epoch {} but the log has no new_epoch row for it: the rows of an unseal or re-key were erased",
                epoch + 1
            ),
        );
    }
    let signed = report.signed_through.map_or(0, |s| s + 1 - first_seq);
    report.unsigned_entries = entries.len() as u64 - signed;
    report
}

/// A `new_epoch` row must move from the epoch in force to the next one, which
/// the manifest chain has, right after the head that epoch's manifest signed.
fn check_new_epoch(entry: &Entry, in_force: u64, chain: &EpochChain) -> Result<(), String> {
    let details: serde_json::Value =
        serde_json::from_str(&entry.details).map_err(|_| "new_epoch row is unreadable")?;
    let from = details.get("from").and_then(|v| v.as_u64());
    let to = new_epoch_target(entry);
    if from != Some(in_force) || to != Some(in_force + 1) {
        return Err(format!(
            "new_epoch row does not move from epoch {in_force} to {} (rows of an epoch change were erased or forged)",
            in_force + 1
        ));
    }
    let next = in_force + 1;
    let info = chain.info(next).ok_or_else(|| {
        format!("new_epoch row names epoch {next}, which the manifest chain does not have")
    })?;
    if let Some((seq, hash)) = &info.audit_head {
        if entry.seq != seq + 1 || entry.prev_hash != *hash {
            return Err(format!(
                "epoch {next}'s signed manifest says it began after audit row {seq}, but the log does not match: the history before it was rewritten"
            ));
        }
    }
    Ok(())
}

/// One checkpoint row: it must sign the row before it, with the key of the
/// epoch in force at its place in the log.
fn check_checkpoint(
    entry: &Entry,
    prev: Option<&Entry>,
    vault_id: &str,
    in_force: u64,
    chain: &EpochChain,
) -> Result<(), String> {
    let details = serde_json::from_str::<CheckpointDetails>(&entry.details)
        .map_err(|_| "is unreadable".to_string())?;
    let b = &details.body;
    if b.endorsements().is_none() {
        return Err(
            "is unreadable (it must hold either an inline endorsement list or endorsement digests)"
                .into(),
        );
    }
    let prev = prev.ok_or_else(|| "has nothing to sign".to_string())?;
    if b.vault_id != vault_id || b.seq != prev.seq || b.head != prev.hash {
        return Err("does not sign the row before it".into());
    }
    if b.epoch != in_force {
        return Err(format!(
            "is signed for epoch {}, but epoch {in_force} was in force at this point (an old key cannot sign new history)",
            b.epoch
        ));
    }
    let key = chain.key(b.epoch).ok_or_else(|| {
        format!(
            "names epoch {}, which the manifest chain does not have",
            b.epoch
        )
    })?;
    if !crypto::verify_signature(&key, &checkpoint_message(b), &details.signature) {
        return Err(format!(
            "signature is not by epoch {}'s vault key (forged or re-signed with a foreign key)",
            b.epoch
        ));
    }
    Ok(())
}

/// Judge the newest checkpoint row alone, from the signed manifests: its hash
/// and its link to `prev` (the row before it), its signature under the key of
/// the epoch in force at its place, and that this is the latest epoch (every
/// epoch begins with a checkpoint, so an older one means rows were erased).
/// `None` when the manifests cannot say where epochs began (format 1): then
/// only a full verification can tell. Rows elsewhere in the log are not
/// checked; they cannot change what this checkpoint signed.
pub fn check_latest_checkpoint(
    checkpoint: &Entry,
    prev: &Entry,
    vault_id: &str,
    chain: &EpochChain,
) -> Option<Result<(), String>> {
    if !chain.epochs.iter().skip(1).all(|i| i.audit_head.is_some()) {
        return None;
    }
    if row_hash(checkpoint) != checkpoint.hash
        || row_hash(prev) != prev.hash
        || checkpoint.prev_hash != prev.hash
    {
        return Some(Err("is not chained to the row before it".into()));
    }
    let in_force = chain.epoch_before(checkpoint.seq, &[]);
    if in_force != chain.latest() {
        return Some(Err(format!(
            "is from epoch {in_force}, but the vault is at epoch {}",
            chain.latest()
        )));
    }
    Some(check_checkpoint(
        checkpoint,
        Some(prev),
        vault_id,
        in_force,
        chain,
    ))
}

/// `BGANCHOR1 <fingerprint> <seq> <hash>`: the log head, to keep outside the vault.
pub fn anchor(fingerprint: &str, head: Option<&Entry>) -> String {
    match head {
        Some(e) => format!("BGANCHOR1 {fingerprint} {} {}", e.seq, e.hash),
        None => format!("BGANCHOR1 {fingerprint} 0 {GENESIS_HASH}"),
    }
}

/// The anchor plus ` <epoch>:<signature>` when a quorum session signed that head.
pub fn signed_anchor(
    fingerprint: &str,
    head: Option<&Entry>,
    signature: Option<(u64, &str)>,
) -> String {
    let line = anchor(fingerprint, head);
    match signature {
        Some((epoch, signature)) => format!("{line} {epoch}:{signature}"),
        None => line,
    }
}

const ANCHOR_LABEL: &[u8] = b"breakglass/v1/anchor\0";

/// The exact bytes an anchor signature covers.
pub fn anchor_message(fingerprint: &str, epoch: u64, seq: u64, hash: &str) -> Vec<u8> {
    let mut message = ANCHOR_LABEL.to_vec();
    message.extend_from_slice(format!("{fingerprint} {epoch} {seq} {hash}").as_bytes());
    message
}

/// A `BGANCHOR1` line, parsed: only its syntax is checked here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    /// The vault fingerprint the anchor names.
    pub fingerprint: String,
    /// The seq of the anchored head.
    pub seq: u64,
    /// The anchored head's hash (hex).
    pub hash: String,
    /// `(epoch, hex signature)` when a quorum session signed that head.
    pub signature: Option<(u64, String)>,
}

impl Anchor {
    /// Parse one anchor line. The error says what is malformed (for a one-line
    /// "is not a BGANCHOR1 line" message); it never judges the log.
    pub fn parse(text: &str) -> Result<Anchor, String> {
        let is_hex = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit());
        let parts: Vec<&str> = text.split_whitespace().collect();
        let (tag, fp, seq, hash, signature) = match parts.as_slice() {
            [] => return Err("it is empty".into()),
            [tag, fp, seq, hash] => (*tag, *fp, *seq, *hash, None),
            [tag, fp, seq, hash, signature] => (*tag, *fp, *seq, *hash, Some(*signature)),
            _ => {
                return Err(format!(
                    "{} fields; expected BGANCHOR1 FINGERPRINT SEQ HASH [EPOCH:SIGNATURE]",
                    parts.len()
                ))
            }
        };
        if tag != "BGANCHOR1" {
            return Err("it does not start with BGANCHOR1".into());
        }
        if !fp.is_ascii() || fp.is_empty() {
            return Err("malformed fingerprint".into());
        }
        let seq: u64 = seq
            .parse()
            .ok()
            .filter(|_| seq.bytes().all(|b| b.is_ascii_digit()))
            .ok_or("malformed seq (expected a number)")?;
        if hash.len() != 64 || !is_hex(hash) {
            return Err("malformed hash (expected 64 hex digits)".into());
        }
        let signature = match signature {
            None => None,
            Some(text) => Some(
                text.split_once(':')
                    .and_then(|(e, s)| {
                        let epoch = e.parse::<u64>().ok()?;
                        (e.bytes().all(|b| b.is_ascii_digit()) && s.len() == 128 && is_hex(s))
                            .then(|| (epoch, s.to_string()))
                    })
                    .ok_or("malformed signature (expected EPOCH:HEX)")?,
            ),
        };
        Ok(Anchor {
            fingerprint: fp.to_string(),
            seq,
            hash: hash.to_string(),
            signature,
        })
    }
}

/// Why a well-formed anchor does not check out against a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnchorMismatch {
    /// The anchor names another vault: the wrong anchor file, not a bad log.
    OtherVault {
        /// The anchor's fingerprint.
        anchor: String,
        /// This vault's fingerprint.
        this: String,
    },
    /// The anchor is past this log's head: an older copy (or a truncated one).
    OlderCopy {
        /// The seq the anchor names.
        anchored: u64,
        /// This log's last seq.
        head: u64,
    },
    /// The log (or the anchor's signature) was altered or forged.
    Altered(String),
}

impl std::fmt::Display for AnchorMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AnchorMismatch::OtherVault { anchor, this } => write!(
                f,
                "anchor is for vault {anchor}, not this vault ({this}); use this vault's anchor"
            ),
            AnchorMismatch::OlderCopy { anchored, head } => write!(
                f,
                "older copy: the anchor is at seq {anchored} but this copy ends at seq {head}; use the newest copy \
                 (if this should be the newest, the log no longer contains the anchored head: it was truncated)"
            ),
            AnchorMismatch::Altered(problem) => f.write_str(problem),
        }
    }
}

/// Does the log still contain the head an anchor recorded, and is the anchor's
/// signature (if it has one) by that epoch's key?
pub fn check_parsed_anchor(
    entries: &[Entry],
    fingerprint: &str,
    anchor: &Anchor,
    chain: &EpochChain,
) -> Result<(), AnchorMismatch> {
    let Anchor {
        fingerprint: fp,
        seq,
        hash,
        signature,
    } = anchor;
    let seq = *seq;
    if fp != fingerprint {
        return Err(AnchorMismatch::OtherVault {
            anchor: fp.clone(),
            this: fingerprint.to_string(),
        });
    }
    if let Some((epoch, signature)) = signature {
        let key = chain.key(*epoch).ok_or_else(|| {
            AnchorMismatch::Altered(format!(
                "anchor is signed for epoch {epoch}, which this vault never had"
            ))
        })?;
        let in_force = entries
            .iter()
            .zip(chain.in_force(entries))
            .find(|(e, _)| e.seq == seq)
            .map(|(_, in_force)| in_force);
        if let Some(in_force) = in_force.filter(|e| e != epoch) {
            return Err(AnchorMismatch::Altered(format!(
                "anchor is signed with epoch {epoch}'s key, but epoch {in_force} was in force at seq {seq}: an old key cannot sign new history"
            )));
        }
        if !crypto::verify_signature(&key, &anchor_message(fp, *epoch, seq, hash), signature) {
            return Err(AnchorMismatch::Altered(format!(
                "anchor signature does not verify against the vault's epoch-{epoch} key: the anchor was altered or forged"
            )));
        }
    }
    if seq == 0 {
        return Ok(());
    }
    let head = entries.last().map_or(0, |e| e.seq);
    match entries.iter().find(|e| e.seq == seq) {
        Some(e) if e.hash == *hash => Ok(()),
        Some(_) => Err(AnchorMismatch::Altered(format!(
            "audit row {seq} no longer has the anchored hash: the log was rewritten or rolled back"
        ))),
        None if seq > head => Err(AnchorMismatch::OlderCopy {
            anchored: seq,
            head,
        }),
        None => Err(AnchorMismatch::Altered(format!(
            "the log no longer contains the anchored head (seq {seq}; it ends at {head}): rows were removed"
        ))),
    }
}

/// [`Anchor::parse`] then [`check_parsed_anchor`], with the problem as text.
pub fn check_anchor(
    entries: &[Entry],
    fingerprint: &str,
    anchor_text: &str,
    chain: &EpochChain,
) -> Result<(), String> {
    let anchor = Anchor::parse(anchor_text).map_err(|why| {
        format!("anchor is not a BGANCHOR1 line ({why}); use the output of `breakglass audit head`")
    })?;
    check_parsed_anchor(entries, fingerprint, &anchor, chain).map_err(|e| match e {
        // An export holds no "copy": keep the wording that fits a cut export too.
        AnchorMismatch::OlderCopy { anchored, head } => format!(
            "the log no longer contains the anchored head (seq {anchored}; it ends at {head}): it was truncated or rolled back to an older copy"
        ),
        other => other.to_string(),
    })
}

/// The first line of a JSONL export: enough to verify it with no vault present.
#[derive(Debug, Serialize, serde::Deserialize)]
pub struct ExportHeader {
    /// Export format version.
    pub breakglass_audit_export: u32,
    /// The vault fingerprint.
    pub fingerprint: String,
    /// The vault id (hex).
    pub vault_id: String,
    /// Every manifest (body and signatures): the epoch keys checkpoints are checked against.
    pub manifests: Vec<ExportedManifest>,
}

/// One manifest in an export.
#[derive(Debug, Serialize, serde::Deserialize)]
pub struct ExportedManifest {
    /// Its epoch.
    pub epoch: u64,
    /// Its exact signed body.
    pub body: String,
    /// Its signatures as stored (JSON).
    pub signatures: String,
}

/// JSONL: the header, then one entry per line with prev_hash and hash.
pub fn export_jsonl(header: &ExportHeader, entries: &[Entry]) -> String {
    let mut out = serde_json::to_string(header).expect("header serializes");
    out.push('\n');
    for e in entries {
        out.push_str(&serde_json::to_string(e).expect("entry serializes"));
        out.push('\n');
    }
    out
}

/// CSV with a header row; RFC 4180 quoting.
pub fn export_csv(entries: &[Entry]) -> String {
    let mut out = String::from("seq,time,actor,action,subject,reason,details,prev_hash,hash\n");
    for e in entries {
        let fields = [
            e.seq.to_string(),
            e.time.clone(),
            e.actor.clone(),
            e.action.clone(),
            e.subject.clone(),
            e.reason.clone(),
            e.details.clone(),
            e.prev_hash.clone(),
            e.hash.clone(),
        ];
        let quoted: Vec<String> = fields
            .iter()
            .map(|f| {
                if f.contains([',', '"', '\n', '\r']) {
                    format!("\"{}\"", f.replace('"', "\"\""))
                } else {
                    f.clone()
                }
            })
            .collect();
        out.push_str(&quoted.join(","));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod epoch_binding_tests {
    use super::*;
    use crate::crypto::VaultSeed;

    fn row(seq: u64, prev: &str, action: &str, subject: &str, details: String) -> Entry {
        let mut e = Entry {
            seq,
            time: "2026-01-01T00:00:00.000Z".into(),
            actor: "a@h".into(),
            action: action.into(),
            subject: subject.into(),
            reason: String::new(),
            details,
            prev_hash: prev.into(),
            hash: String::new(),
        };
        e.hash = row_hash(&e);
        e
    }

    fn checkpoint(seq: u64, prev: &Entry, epoch: u64, keys: &crypto::VaultKeys) -> Entry {
        let body = CheckpointBody {
            vault_id: "v".into(),
            epoch,
            seq: prev.seq,
            head: prev.hash.clone(),
            versions: None,
            settings: vec![],
            endorsed: Some(EndorsedDigests {
                versions: versions_digest(&[]),
                settings: settings_digest(&[]),
            }),
        };
        let signature = hex::encode(keys.sign(&checkpoint_message(&body)));
        let details = serde_json::to_string(&CheckpointDetails { body, signature }).unwrap();
        row(seq, &prev.hash, CHECKPOINT, "FP", details)
    }

    /// Old keys cannot sign new history: after epoch 2 began, a checkpoint or
    /// an anchor signed with epoch 1's key (say, rebuilt from a removed
    /// custodian's old envelopes) does not verify.
    #[test]
    fn an_old_epoch_key_cannot_sign_after_the_change() {
        let k1 = VaultSeed::generate().derive_keys();
        let k2 = VaultSeed::generate().derive_keys();
        let init = row(1, GENESIS_HASH, "init", "FP", "{}".into());
        let ne = row(
            2,
            &init.hash,
            NEW_EPOCH,
            "FP",
            r#"{"from":1,"to":2}"#.into(),
        );
        let cp = checkpoint(3, &ne, 2, &k2);
        let forged_put = row(4, &cp.hash, "put", "vpn", "{}".into());
        let chain = EpochChain {
            epochs: vec![
                EpochInfo {
                    epoch: 1,
                    key: k1.verify_key(),
                    audit_head: None,
                },
                EpochInfo {
                    epoch: 2,
                    key: k2.verify_key(),
                    audit_head: Some((1, init.hash.clone())),
                },
            ],
        };
        let good = vec![init.clone(), ne.clone(), cp.clone(), forged_put.clone()];
        assert!(verify_signed(&good, "v", "FP", &chain).ok);
        let forged = checkpoint(5, &forged_put, 1, &k1);
        let mut log = good.clone();
        log.push(forged);
        let report = verify_signed(&log, "v", "FP", &chain);
        assert!(!report.ok);
        assert!(report
            .problem
            .unwrap()
            .contains("an old key cannot sign new history"));
        // An anchor over seq 4 signed with epoch 1's key is refused too.
        let sig = hex::encode(k1.sign(&anchor_message("FP", 1, 4, &forged_put.hash)));
        let text = format!("BGANCHOR1 FP 4 {} 1:{sig}", forged_put.hash);
        let err = check_anchor(&good, "FP", &text, &chain).unwrap_err();
        assert!(err.contains("an old key cannot sign new history"), "{err}");
        // Rewriting history before the change breaks epoch 2's signed commitment.
        let other_init = row(1, GENESIS_HASH, "init", "FP", r#"{"x":1}"#.into());
        let ne2 = row(
            2,
            &other_init.hash,
            NEW_EPOCH,
            "FP",
            r#"{"from":1,"to":2}"#.into(),
        );
        let cp2 = checkpoint(3, &ne2, 2, &k2);
        let report = verify_signed(&[other_init, ne2, cp2], "v", "FP", &chain);
        assert!(report
            .problem
            .unwrap()
            .contains("history before it was rewritten"));
        // Dropping the epoch change entirely is named.
        let report = verify_signed(&[init], "v", "FP", &chain);
        assert!(report
            .problem
            .unwrap()
            .contains("has epoch 2 but the log has no new_epoch row"));
    }
}

#[cfg(test)]
mod checkpoint_format_tests {
    use super::*;
    use crate::crypto::VaultSeed;

    /// Row 8 of `tests/fixtures/schema4/vault.sqlite`, exactly as the release
    /// binary of commit 4956a22 (inline format) stored it, and the epoch-2
    /// verify key of that vault's manifest.
    const OLD_DETAILS: &str = r#"{"body":{"epoch":2,"head":"d87cdac65d21c0cbd20cf6a2aeaf841909885307b948093a25b7d7a869426efc","seq":7,"settings":[{"apply_cmd":"cat >/dev/null","expires":null,"gen_charset":null,"gen_length":null,"max_age_days":null,"secret":"db"},{"apply_cmd":null,"expires":null,"gen_charset":null,"gen_length":null,"max_age_days":null,"secret":"vpn"}],"vault_id":"f1d22918b90cc2d3079e81ce19d512f5","versions":[{"ciphertext_sha256":"08ea71cac87fe122bb672519f309fb8b4b1dbda2ce8549c0aeee4563f4e7bafd","depositor":"root@vm","secret":"db","version":1},{"ciphertext_sha256":"b57a2da6d1872005f17942c17bbd597eebc38064c213498efe48f01a3effd454","depositor":"root@vm","secret":"vpn","version":1}]},"signature":"aaa98c50d4d80f4550375623f05a82f6f8ffacf230a9885981554757c0322b08263cfdb76663644e2095408e5638b68aa327d4f5ae58a957e5deddb7e8df1b07"}"#;
    const OLD_EPOCH2_KEY: &str = "dfa0728af46439ac3b866b997b2bc93d20de63192f1f0fae5bfbf20a5e154529";

    #[test]
    fn a_checkpoint_signed_by_the_old_code_still_verifies() {
        let details: CheckpointDetails = serde_json::from_str(OLD_DETAILS).unwrap();
        let key = crypto::VerifyKey::from_hex(OLD_EPOCH2_KEY).unwrap();
        assert!(crypto::verify_signature(
            &key,
            &checkpoint_message(&details.body),
            &details.signature
        ));
        match details.body.endorsements() {
            Some(Endorsements::Inline { versions, settings }) => {
                assert_eq!(versions.len(), 2);
                assert_eq!(settings[0].apply_cmd.as_deref(), Some("cat >/dev/null"));
            }
            other => panic!("expected the inline format, got {other:?}"),
        }
        // One changed byte of what it signed and it no longer does.
        let mut edited = details.body.clone();
        edited.versions.as_mut().unwrap()[1].version = 2;
        assert!(!crypto::verify_signature(
            &key,
            &checkpoint_message(&edited),
            &details.signature
        ));
    }

    /// The old code always wrote `versions` (even empty) and left out empty
    /// `settings`: both survive a round trip byte for byte.
    #[test]
    fn old_bodies_serialize_back_to_the_bytes_that_were_signed() {
        for old in [
            r#"{"vault_id":"v","epoch":1,"seq":3,"head":"ab","versions":[]}"#,
            r#"{"vault_id":"v","epoch":1,"seq":3,"head":"ab","versions":[{"secret":"s","version":1,"ciphertext_sha256":"00","depositor":"d"}]}"#,
            r#"{"vault_id":"v","epoch":1,"seq":3,"head":"ab","versions":[],"settings":[{"secret":"s","apply_cmd":"x","gen_length":null,"gen_charset":null,"max_age_days":null,"expires":null}]}"#,
        ] {
            let body: CheckpointBody = serde_json::from_str(old).unwrap();
            assert_eq!(serde_json::to_string(&body).unwrap(), old);
            assert!(matches!(
                body.endorsements(),
                Some(Endorsements::Inline { .. })
            ));
        }
    }

    fn version(secret: &str, n: u32) -> EndorsedVersion {
        EndorsedVersion {
            secret: secret.into(),
            version: n,
            ciphertext_sha256: hex::encode(crypto::sha256(&[secret.as_bytes(), &[n as u8]])),
            depositor: "alice@host".into(),
        }
    }

    #[test]
    fn the_versions_digest_is_the_documented_bytes() {
        let v = version("vpn", 3);
        let mut expected = b"breakglass/v1/endorsed-versions\0".to_vec();
        assert_eq!(expected.len(), 32);
        expected.extend_from_slice(&1u64.to_be_bytes());
        expected.extend_from_slice(&3u32.to_be_bytes());
        expected.extend_from_slice(b"vpn");
        expected.extend_from_slice(&3u32.to_be_bytes());
        expected.extend_from_slice(&64u32.to_be_bytes());
        expected.extend_from_slice(v.ciphertext_sha256.as_bytes());
        expected.extend_from_slice(&10u32.to_be_bytes());
        expected.extend_from_slice(b"alice@host");
        let digest = versions_digest(std::slice::from_ref(&v));
        assert_eq!(digest.count, 1);
        assert_eq!(digest.sha256, hex::encode(crypto::sha256(&[&expected])));

        let s = EndorsedSetting {
            secret: "db".into(),
            apply_cmd: Some("sh".into()),
            gen_length: Some(20),
            ..Default::default()
        };
        let mut expected = b"breakglass/v1/endorsed-settings\0".to_vec();
        assert_eq!(expected.len(), 32);
        expected.extend_from_slice(&1u64.to_be_bytes());
        expected.extend_from_slice(&[0, 0, 0, 2, b'd', b'b']);
        expected.extend_from_slice(&[1, 0, 0, 0, 2, b's', b'h']);
        expected.extend_from_slice(&[1, 0, 0, 0, 20]);
        expected.extend_from_slice(&[0, 0, 0]);
        assert_eq!(
            settings_digest(&[s]).sha256,
            hex::encode(crypto::sha256(&[&expected]))
        );
    }

    #[test]
    fn the_digest_depends_on_the_set_not_its_order_and_on_every_field() {
        let set = vec![version("a", 1), version("b", 2), version("ab", 1)];
        let mut shuffled = set.clone();
        shuffled.reverse();
        assert_eq!(versions_digest(&set), versions_digest(&shuffled));
        let base = versions_digest(&set);
        let mut changes: Vec<Vec<EndorsedVersion>> = Vec::new();
        for edit in 0..5 {
            let mut other = set.clone();
            match edit {
                0 => other[0].secret = "A".into(),
                1 => other[0].version = 9,
                2 => other[0].ciphertext_sha256.replace_range(0..1, "f"),
                3 => other[0].depositor = "mallory@host".into(),
                _ => {
                    other.pop();
                }
            }
            changes.push(other);
        }
        for other in changes {
            assert_ne!(versions_digest(&other), base, "{other:?}");
        }
        // Length prefixes: moving a byte between fields changes the digest.
        let mut a = version("ab", 1);
        a.depositor = "c".into();
        let mut b = version("ab", 1);
        b.ciphertext_sha256.push('c');
        b.depositor = String::new();
        assert_ne!(versions_digest(&[a]), versions_digest(&[b]));
        assert_eq!(versions_digest(&[]).count, 0);
        // Settings: an absent field is not an empty one.
        let none = EndorsedSetting {
            secret: "s".into(),
            ..Default::default()
        };
        let empty = EndorsedSetting {
            apply_cmd: Some(String::new()),
            ..none.clone()
        };
        assert_ne!(settings_digest(&[none]), settings_digest(&[empty]));
    }

    /// A digest-format body is the same size at 3 secrets and at 3000 (but
    /// for the count's digits), and
    /// round-trips through its stored form.
    #[test]
    fn a_digest_checkpoint_does_not_grow_with_the_vault() {
        let keys = VaultSeed::generate().derive_keys();
        let body = |n: u32| {
            let versions: Vec<EndorsedVersion> =
                (0..n).map(|i| version(&format!("s{i:05}"), 1)).collect();
            CheckpointBody {
                vault_id: "0123456789abcdef0123456789abcdef".into(),
                epoch: 7,
                seq: 123_456,
                head: "ab".repeat(32),
                versions: None,
                settings: vec![],
                endorsed: Some(EndorsedDigests {
                    versions: versions_digest(&versions),
                    settings: settings_digest(&[]),
                }),
            }
        };
        let (small, large) = (body(3), body(3000));
        let stored = |b: &CheckpointBody| {
            checkpoint_entry("a@h", "FP", b.clone(), keys.sign(&checkpoint_message(b)))
                .details
                .to_string()
        };
        // Only the count's digits differ.
        assert_eq!(
            stored(&large).len() - stored(&small).len(),
            "3000".len() - "3".len()
        );
        assert!(stored(&large).len() < 600, "{}", stored(&large));
        let back: CheckpointDetails = serde_json::from_str(&stored(&large)).unwrap();
        assert_eq!(back.body, large);
        assert!(crypto::verify_signature(
            &keys.verify_key(),
            &checkpoint_message(&back.body),
            &back.signature
        ));
        assert!(matches!(
            back.body.endorsements(),
            Some(Endorsements::Digest(_))
        ));
        // A body that mixes the formats is refused.
        let mut mixed = large.clone();
        mixed.versions = Some(vec![]);
        assert!(mixed.endorsements().is_none());
    }
}
