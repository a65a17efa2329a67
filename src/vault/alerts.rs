//! The alert queue as the vault sees it: listing, delivering, and what status
//! says. A queue row is only (audit seq, epoch, sink index): the sink comes
//! from that epoch's signed manifest and the event from the audit row, both
//! read at delivery, so an edited row can neither invent a sink nor an event.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Vault, VaultError};
use crate::audit::{self, Entry};
use crate::notify::AlertSink;
use crate::store::AlertQueueRow;

/// Undelivered alerts older than this turn `status --check` red.
pub const ALERT_STALE_MINUTES: i64 = 15;

/// One queued alert, as `alerts` shows it.
#[derive(Debug, Serialize)]
pub struct AlertRow {
    /// Row id in the alert queue.
    pub id: i64,
    /// The audit seq of the row that raised it.
    pub seq: u64,
    /// The sink's label.
    pub sink: String,
    /// The alert event as delivered.
    pub event: serde_json::Value,
    /// When it was queued (RFC 3339, UTC).
    pub created: String,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// The last delivery error, if any.
    pub last_error: Option<String>,
    /// When it was delivered, if it was.
    pub delivered: Option<String>,
    /// The alert origin (per-machine id) that queued it; "" if unknown
    /// (queued before breakglass recorded origins).
    pub origin: String,
    /// Queued by this machine, so delivered from here; otherwise only
    /// `alerts flush --adopt` sends it from here.
    pub queued_here: bool,
    /// Why this row cannot be delivered (it names no signed sink), if so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// A sink that failed and is left alone until `retry_after` (this machine's).
#[derive(Debug, Serialize)]
pub struct SinkBackoff {
    pub sink: String,
    pub failures: u32,
    pub retry_after: String,
    pub last_error: Option<String>,
}

/// What `alerts` shows: the queue and any alerts missing from it.
#[derive(Debug, Serialize)]
pub struct AlertsReport {
    /// The queued alerts (all, or only undelivered ones).
    pub alerts: Vec<AlertRow>,
    /// Alerts the log says were raised but the queue does not hold (deleted
    /// from the file); the next write command queues them again.
    pub missing: usize,
    /// This machine's alert origin, if it has one yet.
    pub origin: Option<String>,
    /// Undelivered alerts another machine (or an unknown one) queued.
    pub queued_elsewhere: usize,
    /// This machine's sinks that are backing off after failures.
    pub backoff: Vec<SinkBackoff>,
}

/// What `alerts flush` did.
#[derive(Debug, Serialize)]
pub struct FlushReport {
    /// Alerts delivered in this run.
    pub delivered: usize,
    /// One line per sink that failed in this run.
    pub failed: Vec<String>,
    /// This machine's alerts still queued after the run.
    pub pending: usize,
    /// When the oldest of them was queued.
    pub oldest_pending: Option<String>,
    /// Alerts re-queued because their queue rows had been deleted.
    pub requeued: usize,
    /// Queue rows that name no sink of a signed manifest: never delivered.
    pub ignored: Vec<String>,
    /// Alerts another machine queued, made this machine's (`--adopt`).
    pub adopted: usize,
    /// Undelivered alerts another machine (or an unknown one) queued: not
    /// sent from here.
    pub queued_elsewhere: usize,
    /// Alerts not tried because their sink is backing off.
    pub backing_off: usize,
    /// Why this machine has no alert origin (then nothing is sent from here).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin_problem: Option<String>,
}

/// How a delivery run treats backoff and claims.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Run {
    /// After a command: the small budget; backed-off sinks and alerts another
    /// command is delivering are left alone. `requeue` also looks for deleted
    /// queue rows.
    AfterCommand { requeue: bool },
    /// `alerts flush`: every sink now; `adopt` first takes over the
    /// undelivered alerts other machines queued.
    Flush { adopt: bool },
}

/// A time in the file, if it is one.
fn parse_time(text: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

fn stamp(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Whether `until` (a time in the file) is still ahead of `now`, but no
/// further than `max` ahead: an edited time far in the future counts as
/// passed, so a hostile row can delay a delivery by at most `max`.
fn still_ahead(until: &str, now: chrono::DateTime<chrono::Utc>, max: std::time::Duration) -> bool {
    let max = chrono::Duration::from_std(max).unwrap_or(chrono::Duration::MAX);
    parse_time(until).is_some_and(|t| t > now && t <= now + max)
}

/// An undelivered alert older than [`ALERT_STALE_MINUTES`] (whole minutes
/// are not rounded down: 15 min 1 s is older).
pub(crate) fn is_stale(created: &str, now: chrono::DateTime<chrono::Utc>) -> bool {
    parse_time(created).is_none_or(|t| now - t > chrono::Duration::minutes(ALERT_STALE_MINUTES))
}

/// Each epoch's signed sinks, by index (an unreadable one is `None`).
type SignedSinks = BTreeMap<u64, Vec<Option<AlertSink>>>;

impl Vault {
    /// Every epoch's sinks, from the manifest chain verified on open.
    fn signed_sinks(&self) -> Result<SignedSinks, VaultError> {
        Ok(self
            .store
            .read()
            .manifests()?
            .into_iter()
            .filter_map(|row| {
                let m: crate::manifest::Manifest = serde_json::from_str(&row.body).ok()?;
                let sinks = m
                    .alerts
                    .iter()
                    .map(|v| serde_json::from_value(v.clone()).ok())
                    .collect();
                Some((row.epoch, sinks))
            })
            .collect())
    }

    /// The audit rows that raise alerts, with every `new_epoch` row (which
    /// says which epoch's sinks apply), oldest first. An index lookup: the
    /// cost follows the alerts ever raised, not the deposits in the log.
    fn alert_entries(&self) -> Result<Vec<Entry>, VaultError> {
        let mut actions: Vec<&str> = crate::notify::ALERT_ACTIONS.to_vec();
        if !actions.contains(&audit::NEW_EPOCH) {
            actions.push(audit::NEW_EPOCH);
        }
        Ok(self.store.read().audit_entries_with(&actions)?)
    }

    /// The signed sink and the event of one queue row, or why it has none.
    fn resolve(
        &self,
        row: &AlertQueueRow,
        sinks: &SignedSinks,
    ) -> Result<(AlertSink, String), String> {
        let sink = sinks
            .get(&row.epoch)
            .and_then(|s| s.get(row.sink_index as usize))
            .cloned()
            .flatten()
            .ok_or_else(|| {
                format!(
                    "names sink #{} of epoch {}, which no signed manifest has (the row was edited); ignored",
                    row.sink_index, row.epoch
                )
            })?;
        let entry = self
            .store
            .read()
            .audit_entry(row.seq)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("reports audit row {}, which the log does not have", row.seq))?;
        let m = self.manifest();
        Ok((
            sink,
            crate::notify::event(&entry, &m.vault_id, &m.fingerprint(), row.epoch),
        ))
    }

    /// Alert-worthy audit rows with no queue row for (seq, row hash, sink):
    /// (seq, hash, epoch, sink index). `entries` holds at least every
    /// alert-worthy and every `new_epoch` row, oldest first.
    fn missing_alerts(
        &self,
        sinks: &SignedSinks,
        entries: &[Entry],
        queue: &[AlertQueueRow],
    ) -> Vec<(u64, String, u64, u32)> {
        let queued: std::collections::HashSet<(u64, &str, u32)> = queue
            .iter()
            .map(|r| (r.seq, r.hash.as_str(), r.sink_index))
            .collect();
        let epochs = audit::epochs_in_force(entries, 1);
        entries
            .iter()
            .zip(epochs)
            .filter(|(e, _)| crate::notify::raises_alert(&e.action))
            .flat_map(|(e, epoch)| {
                let count = sinks.get(&epoch).map_or(0, Vec::len) as u32;
                (0..count)
                    .filter(|i| !queued.contains(&(e.seq, e.hash.as_str(), *i)))
                    .map(move |i| (e.seq, e.hash.clone(), epoch, i))
            })
            .collect()
    }

    /// The alert queue and its health; `all` includes delivered alerts.
    pub fn alerts(&self, all: bool) -> Result<AlertsReport, VaultError> {
        let sinks = self.signed_sinks()?;
        let entries = self.alert_entries()?;
        let every = self.store.read().alert_queue(true)?;
        let missing = self.missing_alerts(&sinks, &entries, &every).len();
        let origin = crate::notify::known_origin();
        let mine = |row: &AlertQueueRow| origin.as_deref() == Some(row.origin.as_str());
        let queued_elsewhere = every
            .iter()
            .filter(|r| r.delivered.is_none() && !mine(r))
            .count();
        let alerts = every
            .into_iter()
            .filter(|row| all || row.delivered.is_none())
            .map(|row| {
                let (sink, event, problem) = match self.resolve(&row, &sinks) {
                    Ok((sink, event)) => (
                        sink.label(),
                        serde_json::from_str(&event).unwrap_or(serde_json::Value::Null),
                        None,
                    ),
                    Err(why) => (
                        format!("sink #{} of epoch {}", row.sink_index, row.epoch),
                        serde_json::Value::Null,
                        Some(why),
                    ),
                };
                let queued_here = mine(&row);
                AlertRow {
                    id: row.id,
                    seq: row.seq,
                    sink,
                    event,
                    created: row.created,
                    attempts: row.attempts,
                    last_error: row.last_error,
                    delivered: row.delivered,
                    origin: row.origin,
                    queued_here,
                    problem,
                }
            })
            .collect();
        let backoff = self
            .store
            .read()
            .alert_backoffs()?
            .into_iter()
            .filter(|b| origin.as_deref() == Some(b.origin.as_str()))
            .map(|b| SinkBackoff {
                sink: b.sink,
                failures: b.failures,
                retry_after: b.retry_after,
                last_error: b.last_error,
            })
            .collect();
        Ok(AlertsReport {
            alerts,
            missing,
            origin,
            queued_elsewhere,
            backoff,
        })
    }

    /// `alerts flush`: re-queue deleted alerts, then try every sink with this
    /// machine's queued alerts now, backed off or not (a sink that fails is
    /// not tried again in the same run). With `adopt`, the undelivered alerts
    /// other machines queued become this machine's first (a vault moved here
    /// for good). Never fails because a sink failed; a row naming no signed
    /// sink is reported, not sent.
    ///
    /// Finding deleted queue rows reads every alert the log ever raised, so
    /// its cost grows with the log: `alerts flush` and the delivery after a
    /// quorum session do it; the delivery after `put` or `rotate` does not.
    pub fn flush_alerts(&mut self, adopt: bool) -> Result<FlushReport, VaultError> {
        self.flush(Run::Flush { adopt })
    }

    /// The delivery after a command: this machine's queued alerts, within
    /// [`crate::notify::AFTER_COMMAND_BUDGET`] in total, skipping sinks that
    /// back off. With `requeue`, deleted queue rows are queued again first
    /// (quorum sessions, which read the whole log anyway).
    pub fn deliver_alerts(&mut self, requeue: bool) -> Result<FlushReport, VaultError> {
        self.flush(Run::AfterCommand { requeue })
    }

    fn flush(&mut self, run: Run) -> Result<FlushReport, VaultError> {
        use crate::notify::{self, Job};
        let after_command = matches!(run, Run::AfterCommand { .. });
        if after_command {
            // The delivery after a command never waits long for another
            // command's lock: its alerts then wait for the next run.
            self.store
                .set_lock_wait(std::time::Duration::from_secs(1))?;
        }
        let requeue = matches!(run, Run::Flush { .. } | Run::AfterCommand { requeue: true });
        let adopt = matches!(run, Run::Flush { adopt: true });
        let mut report = FlushReport {
            delivered: 0,
            failed: Vec::new(),
            pending: 0,
            oldest_pending: None,
            requeued: 0,
            ignored: Vec::new(),
            adopted: 0,
            queued_elsewhere: 0,
            backing_off: 0,
            origin_problem: None,
        };
        // The common case after a command: nothing queued, nothing to do
        // (and no origin made for a vault without sinks).
        if !requeue && self.store.read().alert_queue(false)?.is_empty() {
            return Ok(report);
        }
        let sinks = self.signed_sinks()?;
        let origin = notify::origin();
        report.origin_problem = origin.as_ref().err().cloned();
        let missing = if requeue && sinks.values().any(|s| !s.is_empty()) {
            self.missing_alerts(
                &sinks,
                &self.alert_entries()?,
                &self.store.read().alert_queue(true)?,
            )
        } else {
            Vec::new()
        };
        if adopt && origin.is_err() {
            return Err(VaultError::Invalid(format!(
                "cannot adopt the queued alerts: this machine has no alert origin ({}); fix the state directory (BREAKGLASS_STATE_DIR) and run `breakglass alerts flush --adopt` again",
                report.origin_problem.as_deref().unwrap_or_default()
            )));
        }
        if !missing.is_empty() || adopt {
            let now = audit::now();
            let mine = origin.clone().unwrap_or_default();
            let tx = self.store.begin()?;
            for (seq, hash, epoch, index) in &missing {
                tx.enqueue_alert(*seq, hash, *epoch, *index, &now, &mine)?;
            }
            if adopt {
                report.adopted = tx.adopt_alerts(&mine)?;
            }
            tx.commit()?;
            report.requeued = missing.len();
        }

        // Which of this machine's alerts to try now, and their events.
        let now = chrono::Utc::now();
        let budget = if after_command {
            notify::AFTER_COMMAND_BUDGET
        } else {
            notify::FLUSH_BUDGET
        };
        let claim_limit = notify::FLUSH_BUDGET + std::time::Duration::from_secs(10);
        let backoff_limit = notify::BACKOFF_MAX + std::time::Duration::from_secs(60);
        let mine = origin.as_ref().ok();
        let backed_off: std::collections::HashSet<String> = match mine {
            Some(o) if after_command => self
                .store
                .read()
                .alert_backoffs()?
                .into_iter()
                .filter(|b| &b.origin == o && still_ahead(&b.retry_after, now, backoff_limit))
                .map(|b| b.sink)
                .collect(),
            _ => Default::default(),
        };
        let mut candidates: Vec<(i64, AlertSink, String)> = Vec::new();
        let mut ignored_ids = std::collections::HashSet::new();
        for row in self.store.read().alert_queue(false)? {
            // A row naming no signed sink is named on any machine.
            match self.resolve(&row, &sinks) {
                Ok(_) if mine != Some(&row.origin) => report.queued_elsewhere += 1,
                Ok((sink, event)) => {
                    if backed_off.contains(&sink.label()) {
                        report.backing_off += 1;
                    } else if after_command
                        && row
                            .claimed_until
                            .as_deref()
                            .is_some_and(|t| still_ahead(t, now, claim_limit))
                    {
                        // Another command is delivering it right now.
                    } else {
                        candidates.push((row.id, sink, event));
                    }
                }
                Err(why) => {
                    ignored_ids.insert(row.id);
                    report.ignored.push(format!("alert {}: {why}", row.id));
                }
            }
        }

        if let (Some(mine), false) = (mine, candidates.is_empty()) {
            // Claim them, so a command running meanwhile leaves them alone.
            let until = stamp(
                now + chrono::Duration::from_std(budget + std::time::Duration::from_secs(2))
                    .unwrap_or(chrono::Duration::zero()),
            );
            let tx = self.store.begin()?;
            let still: std::collections::HashSet<i64> = tx
                .read()
                .alert_queue(false)?
                .into_iter()
                .filter(|r| {
                    &r.origin == mine
                        && !(after_command
                            && r.claimed_until
                                .as_deref()
                                .is_some_and(|t| still_ahead(t, now, claim_limit)))
                })
                .map(|r| r.id)
                .collect();
            candidates.retain(|(id, _, _)| still.contains(id));
            for (id, _, _) in &candidates {
                tx.claim_alert(*id, Some(until.as_str()))?;
            }
            tx.commit()?;

            // One thread per sink, all within the budget.
            let mut batches: Vec<(AlertSink, Vec<Job>)> = Vec::new();
            for (id, sink, payload) in candidates.iter().cloned() {
                let job = Job { id, payload };
                match batches.iter_mut().find(|(s, _)| *s == sink) {
                    Some((_, jobs)) => jobs.push(job),
                    None => batches.push((sink, vec![job])),
                }
            }
            let runs = notify::deliver_all(batches, budget);

            // Record what completed; release what was never tried.
            let finished = audit::now();
            let end = chrono::Utc::now();
            let tx = self.store.begin()?;
            let previous = tx.read().alert_backoffs()?;
            let mut tried = std::collections::HashSet::new();
            for run in &runs {
                let label = run.sink.label();
                for (id, outcome) in &run.results {
                    tried.insert(*id);
                    match outcome {
                        Ok(()) => {
                            tx.alert_delivered(*id, &finished)?;
                            report.delivered += 1;
                        }
                        Err(why) => tx.alert_failed(*id, why)?,
                    }
                }
                if let Some(id) = run.cut_off {
                    // Still in flight: its claim stands until it runs out.
                    tried.insert(id);
                    tx.alert_failed(
                        id,
                        &format!("no answer within the {}s delivery budget", budget.as_secs()),
                    )?;
                    tx.claim_alert(id, Some(until.as_str()))?;
                }
                if run.delivered_any() {
                    tx.clear_backoff(mine, &label)?;
                } else if let Some(why) = run.failure() {
                    let failures = previous
                        .iter()
                        .find(|b| &b.origin == mine && b.sink == label)
                        .map_or(0, |b| b.failures)
                        .saturating_add(1);
                    let wait = chrono::Duration::from_std(notify::backoff(failures))
                        .unwrap_or(chrono::Duration::hours(1));
                    tx.set_backoff(&crate::store::BackoffRow {
                        origin: mine.clone(),
                        sink: label.clone(),
                        failures,
                        retry_after: stamp(end + wait),
                        last_error: Some(why.clone()),
                    })?;
                    report.failed.push(format!("{label}: {why}"));
                }
            }
            for (id, _, _) in &candidates {
                if !tried.contains(id) {
                    tx.claim_alert(*id, None)?;
                }
            }
            tx.commit()?;
        }

        // What stays queued here, for the one-line warning.
        if let Some(mine) = mine {
            let left: Vec<AlertQueueRow> = self
                .store
                .read()
                .alert_queue(false)?
                .into_iter()
                .filter(|r| &r.origin == mine && !ignored_ids.contains(&r.id))
                .collect();
            report.pending = left.len();
            report.oldest_pending = left.iter().map(|r| r.created.clone()).min();
        }
        Ok(report)
    }

    /// For `status`: (undelivered alerts this machine sends, when the oldest
    /// was queued, undelivered alerts other machines queued). Alerts deleted
    /// from the queue, rows naming no signed sink, and alerts queued before
    /// origins were recorded need attention at once.
    pub(crate) fn undelivered_alerts(
        &self,
        attention: &mut Vec<String>,
    ) -> Result<(usize, Option<String>, usize), VaultError> {
        let report = self.alerts(false)?;
        if report.missing > 0 {
            attention.push(format!(
                "{} alert(s) the log raised are missing from the queue (deleted from the file); `breakglass alerts flush` (or the next quorum session) queues them again",
                report.missing
            ));
        }
        let (deliverable, bad): (Vec<&AlertRow>, Vec<&AlertRow>) =
            report.alerts.iter().partition(|a| a.problem.is_none());
        for row in bad {
            attention.push(format!(
                "alert {} {}",
                row.id,
                row.problem.as_deref().unwrap_or_default()
            ));
        }
        let unknown = deliverable.iter().filter(|a| a.origin.is_empty()).count();
        if unknown > 0 {
            attention.push(format!(
                "{unknown} alert(s) were queued before breakglass recorded which machine sends them, and are sent by none; on the machine that queued them (or, if the vault moved here for good, here) run `breakglass alerts flush --adopt`"
            ));
        }
        let here: Vec<&&AlertRow> = deliverable.iter().filter(|a| a.queued_here).collect();
        Ok((
            here.len() + report.missing,
            here.iter().map(|r| r.created.clone()).min(),
            report.queued_elsewhere,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn older_than_fifteen_minutes_means_older_not_sixteen() {
        let now = parse_time("2026-11-23T12:00:00.000Z").unwrap();
        let at = |t: &str| is_stale(t, now);
        assert!(!at("2026-11-23T11:45:30.000Z"), "14 min 30 s");
        assert!(!at("2026-11-23T11:45:00.000Z"), "exactly 15 min");
        assert!(at("2026-11-23T11:44:59.000Z"), "15 min 1 s");
        assert!(at("2026-11-23T11:44:30.000Z"), "15 min 30 s");
        assert!(at("not a time"), "an unreadable time needs a look");
    }

    #[test]
    fn an_edited_time_far_ahead_counts_as_passed() {
        let now = parse_time("2026-11-23T12:00:00.000Z").unwrap();
        let hour = std::time::Duration::from_secs(3600);
        assert!(still_ahead("2026-11-23T12:30:00.000Z", now, hour));
        assert!(!still_ahead("2026-11-23T11:59:00.000Z", now, hour));
        assert!(!still_ahead("2999-01-01T00:00:00.000Z", now, hour));
        assert!(!still_ahead("soon", now, hour));
    }
}
