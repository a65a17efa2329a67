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

#[derive(Debug, Serialize)]
pub struct AlertRow {
    pub id: i64,
    pub seq: u64,
    pub sink: String,
    pub event: serde_json::Value,
    pub created: String,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub delivered: Option<String>,
    /// Why this row cannot be delivered (it names no signed sink), if so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct AlertsReport {
    pub alerts: Vec<AlertRow>,
    /// Alerts the log says were raised but the queue does not hold (deleted
    /// from the file); the next write command queues them again.
    pub missing: usize,
}

#[derive(Debug, Serialize)]
pub struct FlushReport {
    pub delivered: usize,
    pub failed: Vec<String>,
    pub pending: usize,
    /// Alerts re-queued because their queue rows had been deleted.
    pub requeued: usize,
    /// Queue rows that name no sink of a signed manifest: never delivered.
    pub ignored: Vec<String>,
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

    pub fn alerts(&self, all: bool) -> Result<AlertsReport, VaultError> {
        let sinks = self.signed_sinks()?;
        let entries = self.alert_entries()?;
        let every = self.store.read().alert_queue(true)?;
        let missing = self.missing_alerts(&sinks, &entries, &every).len();
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
                AlertRow {
                    id: row.id,
                    seq: row.seq,
                    sink,
                    event,
                    created: row.created,
                    attempts: row.attempts,
                    last_error: row.last_error,
                    delivered: row.delivered,
                    problem,
                }
            })
            .collect();
        Ok(AlertsReport { alerts, missing })
    }

    /// Re-queue deleted alerts, then try every queued alert once. Never fails
    /// because a sink failed; a row naming no signed sink is reported, not sent.
    ///
    /// Finding deleted queue rows reads every alert the log ever raised, so
    /// its cost grows with the log: `alerts flush` and the delivery after a
    /// quorum session do it; the delivery after `put` or `rotate` calls
    /// [`Vault::deliver_alerts`] instead, which costs the same in any vault.
    pub fn flush_alerts(&mut self) -> Result<FlushReport, VaultError> {
        self.flush(true)
    }

    /// Try every queued alert once, without looking for deleted queue rows
    /// (`status` names those, and `alerts flush` queues them again).
    pub fn deliver_alerts(&mut self) -> Result<FlushReport, VaultError> {
        self.flush(false)
    }

    fn flush(&mut self, requeue: bool) -> Result<FlushReport, VaultError> {
        let sinks = self.signed_sinks()?;
        let missing = if requeue && sinks.values().any(|s| !s.is_empty()) {
            self.missing_alerts(
                &sinks,
                &self.alert_entries()?,
                &self.store.read().alert_queue(true)?,
            )
        } else {
            Vec::new()
        };
        if !missing.is_empty() {
            let now = audit::now();
            let tx = self.store.begin()?;
            for (seq, hash, epoch, index) in &missing {
                tx.enqueue_alert(*seq, hash, *epoch, *index, &now)?;
            }
            tx.commit()?;
        }
        let mut report = FlushReport {
            delivered: 0,
            failed: Vec::new(),
            pending: 0,
            requeued: missing.len(),
            ignored: Vec::new(),
        };
        let mut outcomes = Vec::new();
        for row in self.store.read().alert_queue(false)? {
            match self.resolve(&row, &sinks) {
                Ok((sink, event)) => outcomes.push((row.id, sink.deliver(&event), sink.label())),
                Err(why) => report.ignored.push(format!("alert {}: {why}", row.id)),
            }
        }
        if outcomes.is_empty() {
            return Ok(report);
        }
        let now = audit::now();
        let tx = self.store.begin()?;
        for (id, outcome, label) in outcomes {
            match outcome {
                Ok(()) => {
                    tx.alert_delivered(id, &now)?;
                    report.delivered += 1;
                }
                Err(why) => {
                    tx.alert_failed(id, &why)?;
                    report.failed.push(format!("alert {id} to {label}: {why}"));
                    report.pending += 1;
                }
            }
        }
        tx.commit()?;
        Ok(report)
    }

    /// (undelivered count, oldest created time) for `status`. Alerts deleted
    /// from the queue, and rows naming no signed sink, need attention at once.
    pub(crate) fn undelivered_alerts(
        &self,
        attention: &mut Vec<String>,
    ) -> Result<(usize, Option<String>), VaultError> {
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
        Ok((
            deliverable.len() + report.missing,
            deliverable.first().map(|r| r.created.clone()),
        ))
    }
}
