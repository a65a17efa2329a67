//! Read-only views of a vault. Each report's `Serialize` form is the `--json` output.

use serde::Serialize;

use super::{Vault, VaultError};
use crate::crypto::{CustodianRecipient, RecipientKind};

/// One secret as `list` shows it: metadata only, never the value.
#[derive(Debug, Serialize)]
pub struct SecretInfo {
    /// The secret's name.
    pub name: String,
    /// Its kind (`password`, `bypass-codes`, `note`).
    pub kind: String,
    /// The account name, if any.
    pub username: Option<String>,
    /// Where it is used, if given.
    pub url: Option<String>,
    /// The note, if any.
    pub note: Option<String>,
    /// The newest version.
    pub version: u32,
    /// `ok`, or `exposed` after a reveal until it is rotated.
    pub state: String,
    /// Who revealed it, when and why, while it is exposed.
    pub exposure: Option<Exposure>,
    /// `endorsed` by the last signed checkpoint, `unendorsed` (deposited since) or `tampered`.
    pub endorsement: String,
}

#[derive(Debug, Serialize)]
pub struct Exposure {
    pub revealed_by: String,
    pub revealed_at: String,
    pub reason: String,
}

/// What `list` shows.
#[derive(Debug, Serialize)]
pub struct ListReport {
    /// Every secret, by name.
    pub secrets: Vec<SecretInfo>,
    /// Set when the file's endorsement rows do not hash to what the last
    /// checkpoint signed (they were edited): every version then reads
    /// `unendorsed`. `null` otherwise.
    pub endorsement_problem: Option<String>,
}

/// One custodian as `custodian list` shows it.
#[derive(Debug, Serialize)]
pub struct CustodianInfo {
    /// The custodian's name.
    pub name: String,
    /// Their recipient kind (`age`, `ssh-ed25519`, `ssh-rsa`, `passphrase`,
    /// `age-plugin`, `age-tag`).
    pub kind: String,
    /// Their share index (1..=N).
    pub index: u8,
    /// The public recipient their envelope is sealed to.
    pub recipient: String,
    /// For a hardware key (`age-plugin`), the program that seals to and opens
    /// it (`age-plugin-yubikey`); `null` otherwise (an `age-tag` key opens
    /// with whichever plugin holds it).
    pub plugin: Option<String>,
}

/// What `custodian list` shows.
#[derive(Debug, Serialize)]
pub struct CustodianListReport {
    /// The current epoch's custodians, in index order.
    pub custodians: Vec<CustodianInfo>,
}

#[derive(Debug, Serialize)]
pub struct StatusCustodian {
    pub name: String,
    pub kind: String,
    pub index: u8,
    /// Time of the last successful drill, if any.
    pub last_drill: Option<String>,
    /// Never drilled, or not within the last 90 days.
    pub drill_overdue: bool,
}

/// Custodians should prove their share works at least this often.
pub const DRILL_INTERVAL_DAYS: i64 = 90;

/// What `status` shows: the vault's identity and what needs attention.
#[derive(Debug, Serialize)]
pub struct StatusReport {
    /// The vault fingerprint (`BG-…`).
    pub fingerprint: String,
    /// The vault id (hex).
    pub vault_id: String,
    /// The current epoch.
    pub epoch: u64,
    /// K.
    pub threshold: u8,
    /// The custodians, with their last drill.
    pub custodians: Vec<StatusCustodian>,
    /// How many secrets are stored.
    pub secrets: usize,
    /// How many audit rows the log holds.
    pub audit_entries: u64,
    /// Requests made on this machine that are still open (or just expired).
    pub open_requests: Vec<crate::remote::OpenRequest>,
    /// Unused single-use codes of each bypass-codes secret.
    pub bypass_codes: Vec<BypassCount>,
    /// Alerts queued and not yet delivered, and when the oldest was queued.
    pub alerts_undelivered: usize,
    /// When the oldest undelivered alert was queued, if any.
    pub oldest_undelivered_alert: Option<String>,
    /// Undelivered alerts another machine (or an unknown one) queued in this
    /// file: not sent from here (`alerts flush --adopt` takes them over).
    pub alerts_queued_elsewhere: usize,
    /// Things to act on, one line each; empty when all is well (`status --check` fails otherwise).
    pub attention: Vec<String>,
}

/// `verify-copy`: how another copy of a vault relates to this one.
#[derive(Debug, Serialize)]
pub struct CopyComparison {
    /// Both files are the same vault (same id and fingerprint).
    pub same_vault: bool,
    /// This vault's fingerprint.
    pub this_fingerprint: String,
    /// The other copy's fingerprint.
    pub other_fingerprint: String,
    /// This vault's epoch.
    pub this_epoch: u64,
    /// The other copy's epoch.
    pub other_epoch: u64,
    /// Audit rows in this vault.
    pub this_entries: usize,
    /// Audit rows in the other copy.
    pub other_entries: usize,
    /// Leading audit entries the two logs share, hash for hash.
    pub common_entries: usize,
    /// Both logs grew after the common part (neither is a prefix of the other).
    pub diverged: bool,
}

#[derive(Debug, Serialize)]
pub struct BypassCount {
    pub name: String,
    pub remaining: usize,
    pub total: usize,
}

/// Fewer unused bypass codes than this is flagged.
pub const LOW_CODES: usize = 3;
/// Expiry dates are flagged this many days ahead.
pub const EXPIRY_WARNING_DAYS: i64 = 14;

/// What `runbook` shows.
#[derive(Debug, Serialize)]
pub struct RunbookReport {
    /// The runbook text, if one was set.
    pub runbook: Option<String>,
    /// When it was last set (RFC 3339, UTC).
    pub updated: Option<String>,
    /// Who last set it.
    pub updated_by: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct AuditLogEntry {
    pub seq: u64,
    pub time: String,
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub reason: String,
    pub details: serde_json::Value,
    pub hash: String,
}

/// What `audit log` shows.
#[derive(Debug, Serialize)]
pub struct AuditLogReport {
    /// Every audit row, oldest first.
    pub entries: Vec<AuditLogEntry>,
}

impl Vault {
    /// Lists the secrets' metadata (no quorum, nothing decrypted).
    pub fn list(&self) -> Result<ListReport, VaultError> {
        let read = self.store.read();
        let exposed = read.exposures()?;
        let endorsed = self.endorsed_versions()?;
        let mut secrets = Vec::new();
        for row in read.secrets()? {
            let active = read.active_version(&row.name)?;
            let endorsement = active
                .as_ref()
                .map_or("unendorsed", |v| Vault::endorsement(&endorsed, v).as_str());
            let version = active.map(|v| v.version).unwrap_or(0);
            let exposure = exposed
                .iter()
                .find(|e| e.secret == row.name)
                .map(|e| Exposure {
                    revealed_by: e.revealed_by.clone(),
                    revealed_at: e.revealed_at.clone(),
                    reason: e.reason.clone(),
                });
            let state = if exposure.is_some() { "exposed" } else { "ok" };
            secrets.push(SecretInfo {
                name: row.name,
                kind: row.kind,
                username: row.username,
                url: row.url,
                note: row.note,
                version,
                state: state.into(),
                exposure,
                endorsement: endorsement.into(),
            });
        }
        Ok(ListReport {
            secrets,
            endorsement_problem: endorsed.problem,
        })
    }

    /// Lists the current epoch's custodians.
    pub fn custodians(&self) -> CustodianListReport {
        CustodianListReport {
            custodians: self
                .manifest()
                .custodians
                .iter()
                .map(|c| CustodianInfo {
                    name: c.name.clone(),
                    kind: c.kind.clone(),
                    index: c.index,
                    recipient: c.recipient.clone(),
                    plugin: RecipientKind::parse(&c.kind)
                        .and_then(|kind| CustodianRecipient::from_stored(kind, &c.recipient).ok())
                        .and_then(|r| r.plugin_name().map(|name| format!("age-plugin-{name}"))),
                })
                .collect(),
        }
    }

    /// The vault's identity and health: epoch, custodians' drills, alerts, expiries, codes left and what needs attention.
    pub fn status(&self) -> Result<StatusReport, VaultError> {
        let m = self.manifest();
        let secrets = self.store.read().secrets()?.len();
        let entries = self.store.read().audit_entries()?;
        let verify = self.verify_audit()?;
        let last_drills = last_successful_drills(&entries, m);
        let now = chrono::Utc::now();
        let mut attention = Vec::new();
        if m.insecure_test_only_kdf {
            attention.push(
                "vault uses the insecure test-only KDF for passphrase custodians; never use it for real credentials".to_string(),
            );
        }
        if let Some(problem) = &verify.problem {
            attention.push(format!("audit log fails verification: {problem}"));
        }
        if secrets == 0 {
            attention.push("no secrets deposited yet; add them with `breakglass put`".into());
        }
        let exposures = self.store.read().exposures()?;
        for e in &exposures {
            attention.push(format!(
                "secret {} is exposed: revealed by {} at {} ({}); rotate it with `breakglass rotate {}`",
                e.secret, e.revealed_by, e.revealed_at, e.reason, e.secret
            ));
        }
        if exposures.iter().any(|e| e.epoch == m.epoch) {
            attention.push(format!(
                "a re-key is due: epoch {} keys were used to reveal secrets; run `breakglass rekey` with a quorum",
                m.epoch
            ));
        }
        let bypass_codes = self.secret_policy_attention(&mut attention)?;
        let (alerts_undelivered, oldest_undelivered_alert, alerts_queued_elsewhere) =
            self.undelivered_alerts(&mut attention)?;
        if let Some(oldest) = &oldest_undelivered_alert {
            let minutes = chrono::DateTime::parse_from_rfc3339(oldest)
                .map(|t| (now - t.with_timezone(&chrono::Utc)).num_minutes())
                .unwrap_or(i64::MAX);
            // Older than 15 minutes is 15 min 1 s, not the 16th minute.
            if super::alerts::is_stale(oldest, now) {
                attention.push(format!(
                    "{alerts_undelivered} alerts undelivered, the oldest for {minutes} minutes; check the sinks (`breakglass alerts list`) and run `breakglass alerts flush`"
                ));
            }
        }
        let endorsed = self.endorsed_by(&verify)?;
        if let Some(problem) = &endorsed.problem {
            attention.push(format!(
                "{problem}; a quorum session (unseal or `drill --full`) lists them for endorsement"
            ));
        }
        for v in self.store.read().versions_in(&["active"])? {
            if v.epoch != m.epoch {
                attention.push(format!(
                    "secret {} version {} is sealed to epoch {}, not the current epoch {}: no quorum can reveal it; deposit it again with `breakglass put {}`",
                    v.secret, v.version, v.epoch, m.epoch, v.secret
                ));
            }
            if Vault::endorsement(&endorsed, &v) == super::checkpoint::Endorsement::Tampered {
                attention.push(format!(
                    "secret {} version {} does not match the ciphertext the last checkpoint signed: the vault file was tampered with",
                    v.secret, v.version
                ));
            }
        }
        for v in self.store.read().versions_in(&["pending"])? {
            attention.push(if super::rotate::certainly_interrupted(&v) {
                format!(
                    "secret {}: rotation to version {} started by {} at {} was interrupted; settle it with `breakglass rotate {} --abandon`, then rotate again",
                    v.secret, v.version, v.depositor, v.created, v.secret
                )
            } else {
                format!(
                    "secret {}: rotation to version {} started by {} at {} has not finished; if that command is no longer running it was interrupted — settle it with `breakglass rotate {} --abandon`, then rotate again",
                    v.secret, v.version, v.depositor, v.created, v.secret
                )
            });
        }
        let custodians = m
            .custodians
            .iter()
            .map(|c| {
                let last = last_drills.iter().find(|(n, _)| n == &c.name).map(|(_, t)| t.clone());
                let age_days = last
                    .as_deref()
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                    .map(|t| (now - t.with_timezone(&chrono::Utc)).num_days());
                let overdue = age_days.is_none_or(|d| d > DRILL_INTERVAL_DAYS);
                match age_days {
                    None if last.is_some() => attention.push(format!(
                        "custodian {}'s last drill has an unreadable time in the audit log; check the log (`breakglass audit verify`) and drill again",
                        c.name
                    )),
                    None if m.epoch > 1 => attention.push(format!(
                        "custodian {} has not drilled since epoch {} began; send them a drill challenge (`breakglass drill --remote --out challenge.txt`), or drill with their key here",
                        c.name, m.epoch
                    )),
                    None => attention.push(format!(
                        "custodian {} has never drilled; send them a drill challenge (`breakglass drill --remote --out challenge.txt`), or run `breakglass drill` with their key",
                        c.name
                    )),
                    Some(d) if overdue => attention.push(format!(
                        "custodian {} last drilled {d} days ago (more than {DRILL_INTERVAL_DAYS}); send them a drill challenge (`breakglass drill --remote`), or run `breakglass drill` with their key",
                        c.name
                    )),
                    _ => {}
                }
                StatusCustodian {
                    name: c.name.clone(),
                    kind: c.kind.clone(),
                    index: c.index,
                    last_drill: last,
                    drill_overdue: overdue,
                }
            })
            .collect();
        Ok(StatusReport {
            fingerprint: m.fingerprint(),
            vault_id: m.vault_id.clone(),
            epoch: m.epoch,
            threshold: m.threshold,
            custodians,
            secrets,
            audit_entries: verify.entries,
            open_requests: crate::remote::pending::list_for(&m.vault_id),
            bypass_codes,
            alerts_undelivered,
            oldest_undelivered_alert,
            alerts_queued_elsewhere,
            attention,
        })
    }

    /// Max-age, expiry and low-code flags; returns the bypass-code counts.
    fn secret_policy_attention(
        &self,
        attention: &mut Vec<String>,
    ) -> Result<Vec<BypassCount>, VaultError> {
        let read = self.store.read();
        let now = chrono::Utc::now();
        let mut counts = Vec::new();
        for secret in read.secrets()? {
            let Some(active) = read.active_version(&secret.name)? else {
                continue;
            };
            let policy = read.rotation(&secret.name)?;
            if let Some(max_days) = policy.max_age_days {
                let age = chrono::DateTime::parse_from_rfc3339(&active.created)
                    .map(|t| (now - t.with_timezone(&chrono::Utc)).num_days())
                    .unwrap_or(i64::MAX);
                if age > i64::from(max_days) {
                    attention.push(format!(
                        "secret {} is overdue for rotation: version {} is {age} days old (max age {max_days} days); run `breakglass rotate {}`",
                        secret.name, active.version, secret.name
                    ));
                }
            }
            if let Some(date) = policy.expires.as_deref() {
                if let Ok(day) = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d") {
                    let left = (day - now.date_naive()).num_days();
                    if left < 0 {
                        attention.push(format!("secret {} expired on {date}; deposit a new one with `breakglass rotate {} --expires DATE`", secret.name, secret.name));
                    } else if left <= EXPIRY_WARNING_DAYS {
                        attention.push(format!("secret {} expires on {date} (in {left} days); deposit a new one with `breakglass rotate {} --expires DATE`", secret.name, secret.name));
                    }
                }
            }
            if let Some((total, used)) = read.code_counts(&secret.name, active.version)? {
                let remaining = total.saturating_sub(used);
                if remaining < LOW_CODES {
                    attention.push(format!(
                        "secret {} has {remaining} unused bypass codes left (of {total}); deposit new ones with `breakglass rotate {}`",
                        secret.name, secret.name
                    ));
                }
                counts.push(BypassCount {
                    name: secret.name,
                    remaining,
                    total,
                });
            }
        }
        Ok(counts)
    }

    /// Compare another copy with this vault: same vault, epochs, and the audit logs.
    pub fn compare_copy(&self, other: &Vault) -> Result<CopyComparison, VaultError> {
        let mine = self.store.read().audit_entries()?;
        let theirs = other.store.read().audit_entries()?;
        let common = mine
            .iter()
            .zip(&theirs)
            .take_while(|(a, b)| a.hash == b.hash && a.seq == b.seq)
            .count();
        let (a, b) = (self.manifest(), other.manifest());
        Ok(CopyComparison {
            same_vault: a.vault_id == b.vault_id && a.fingerprint() == b.fingerprint(),
            this_fingerprint: a.fingerprint(),
            other_fingerprint: b.fingerprint(),
            this_epoch: a.epoch,
            other_epoch: b.epoch,
            this_entries: mine.len(),
            other_entries: theirs.len(),
            common_entries: common,
            diverged: common < mine.len().min(theirs.len()),
        })
    }

    /// The runbook (readable without a quorum).
    pub fn runbook(&self) -> Result<RunbookReport, VaultError> {
        let row = self.store.read().runbook()?;
        Ok(RunbookReport {
            runbook: row.as_ref().map(|r| r.text.clone()),
            updated: row.as_ref().map(|r| r.updated.clone()),
            updated_by: row.map(|r| r.updated_by),
        })
    }

    /// The whole audit log, for display.
    pub fn audit_log(&self) -> Result<AuditLogReport, VaultError> {
        let entries = self
            .store
            .read()
            .audit_entries()?
            .into_iter()
            .map(|e| AuditLogEntry {
                details: serde_json::from_str(&e.details)
                    .unwrap_or(serde_json::Value::String(e.details)),
                seq: e.seq,
                time: e.time,
                actor: e.actor,
                action: e.action,
                subject: e.subject,
                reason: e.reason,
                hash: e.hash,
            })
            .collect();
        Ok(AuditLogReport { entries })
    }
}

/// (custodian, time) of each custodian's newest passing drill in the current
/// epoch: an older epoch's envelope proves nothing about the current one. With
/// share proof keys in the manifest, a drill counts only if its row (or a row
/// merged from a copy) carries a proof signed by that custodian's share, and
/// its time is the earlier of the signed one and the row's: an edited or
/// replayed row can make a drill look older, never fresher.
/// The earlier of two RFC 3339 times, compared as times (an offset edited into
/// one cannot make it look later). An unreadable one is kept, so `status` names it.
fn earlier(a: String, b: String) -> String {
    let parse = |t: &str| chrono::DateTime::parse_from_rfc3339(t).ok();
    match (parse(&a), parse(&b)) {
        (Some(x), Some(y)) => {
            if x <= y {
                a
            } else {
                b
            }
        }
        (None, _) => a,
        (_, None) => b,
    }
}

/// The later of two drill times, compared as times; a readable one wins over
/// an unreadable one (which is kept only if it is all there is, so `status` names it).
fn newer(a: String, b: String) -> String {
    let parse = |t: &str| chrono::DateTime::parse_from_rfc3339(t).ok();
    match (parse(&a), parse(&b)) {
        (Some(x), Some(y)) => {
            if y > x {
                b
            } else {
                a
            }
        }
        (None, Some(_)) => b,
        _ => a,
    }
}

fn last_successful_drills(
    entries: &[crate::audit::Entry],
    m: &crate::manifest::Manifest,
) -> Vec<(String, String)> {
    let has_proof_keys = m.custodians.iter().all(|c| c.proof_key.is_some());
    let mut last: Vec<(String, String)> = Vec::new();
    for e in entries {
        let details = serde_json::from_str::<serde_json::Value>(&e.details).ok();
        let drill = match (e.action.as_str(), &details) {
            ("drill", Some(d)) => d.clone(),
            ("merged", Some(d))
                if d.get("foreign_action").and_then(|a| a.as_str()) == Some("drill") =>
            {
                d.get("foreign_details").cloned().unwrap_or_default()
            }
            _ => continue,
        };
        let passed = drill.get("outcome").and_then(|o| o.as_str()) == Some("pass")
            && drill.get("epoch").and_then(|x| x.as_u64()) == Some(m.epoch);
        if !passed {
            continue;
        }
        let time = if has_proof_keys {
            match super::DrillProof::from_details(&drill) {
                Some(p) if p.statement.custodian == e.subject && p.verify(m).is_ok() => {
                    let row_time = match e.action.as_str() {
                        "merged" => details
                            .as_ref()
                            .and_then(|d| d.get("foreign_time")?.as_str().map(String::from))
                            .unwrap_or_else(|| e.time.clone()),
                        _ => e.time.clone(),
                    };
                    earlier(p.statement.at, row_time)
                }
                _ => continue,
            }
        } else if e.action == "drill" {
            e.time.clone()
        } else {
            continue;
        };
        match last.iter_mut().find(|(n, _)| n == &e.subject) {
            Some(slot) => slot.1 = newer(std::mem::take(&mut slot.1), time),
            None => last.push((e.subject.clone(), time)),
        }
    }
    last
}

#[cfg(test)]
mod tests {
    use super::{earlier, newer};

    #[test]
    fn drill_times_are_compared_as_times_not_text() {
        // 10:00+05:00 is 05:00 UTC: earlier than 09:00Z although its text sorts later.
        let east = "2026-11-23T10:00:00+05:00".to_string();
        let utc = "2026-11-23T09:00:00Z".to_string();
        assert_eq!(earlier(east.clone(), utc.clone()), east);
        assert_eq!(newer(east.clone(), utc.clone()), utc);
        // An unreadable time is kept by `earlier` (so status names it), never by `newer`
        // when a readable one exists.
        let bad = "2026-05-0é…".to_string();
        assert_eq!(earlier(utc.clone(), bad.clone()), bad);
        assert_eq!(newer(bad.clone(), utc.clone()), utc);
    }
}
