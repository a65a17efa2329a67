//! The outbox as the vault sees it: listing, delivering, and what status says.

use serde::Serialize;

use super::{Vault, VaultError};
use crate::notify::AlertSink;

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
}

#[derive(Debug, Serialize)]
pub struct AlertsReport {
    pub alerts: Vec<AlertRow>,
}

#[derive(Debug, Serialize)]
pub struct FlushReport {
    pub delivered: usize,
    pub failed: Vec<String>,
    pub pending: usize,
}

impl Vault {
    pub fn alerts(&self, all: bool) -> Result<AlertsReport, VaultError> {
        let alerts = self
            .store
            .read()
            .outbox(all)?
            .into_iter()
            .map(|row| AlertRow {
                id: row.id,
                seq: row.seq,
                sink: serde_json::from_str::<AlertSink>(&row.sink)
                    .map(|s| s.label())
                    .unwrap_or(row.sink),
                event: serde_json::from_str(&row.payload).unwrap_or(serde_json::Value::Null),
                created: row.created,
                attempts: row.attempts,
                last_error: row.last_error,
                delivered: row.delivered,
            })
            .collect();
        Ok(AlertsReport { alerts })
    }

    /// Try every queued alert once. Never fails because a sink failed.
    pub fn flush_alerts(&mut self) -> Result<FlushReport, VaultError> {
        let queued = self.store.read().outbox(false)?;
        if queued.is_empty() {
            return Ok(FlushReport {
                delivered: 0,
                failed: Vec::new(),
                pending: 0,
            });
        }
        let outcomes: Vec<(i64, Result<(), String>, String)> = queued
            .iter()
            .map(|row| match serde_json::from_str::<AlertSink>(&row.sink) {
                Ok(sink) => (row.id, sink.deliver(&row.payload), sink.label()),
                Err(_) => (row.id, Err("unreadable sink".into()), row.sink.clone()),
            })
            .collect();
        let now = crate::audit::now();
        let tx = self.store.begin()?;
        let mut report = FlushReport {
            delivered: 0,
            failed: Vec::new(),
            pending: 0,
        };
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

    /// (undelivered count, oldest created time) for `status`.
    pub(crate) fn undelivered_alerts(&self) -> Result<(usize, Option<String>), VaultError> {
        let queued = self.store.read().outbox(false)?;
        Ok((queued.len(), queued.first().map(|r| r.created.clone())))
    }
}
