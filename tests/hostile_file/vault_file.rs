//! Attacks through the vault file itself: rows, triggers, views and spliced
//! tables written with the stock `sqlite3` shell or rusqlite.

use std::path::Path;

use crate::support::{self, Kit};

/// Run SQL on the vault with the stock `sqlite3` shell, as the attacker would.
pub fn sqlite3(vault: &Path, sql: &str) {
    let out = std::process::Command::new("sqlite3")
        .arg(vault)
        .arg(sql)
        .output()
        .expect("sqlite3 is installed (.ci/run installs it)");
    assert!(
        out.status.success(),
        "sqlite3 {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A 2-of-2 vault whose alerts go to an exec sink appending to `events.jsonl`.
fn alerting_kit() -> (Kit, std::path::PathBuf) {
    let kit = Kit::new(&["alice", "bob"]);
    let log = kit.path("events.jsonl");
    let mut init = kit.bg();
    init.args(["init", "--threshold", "2"]);
    for n in ["alice", "bob"] {
        init.arg("--custodian")
            .arg(format!("{n}={}", kit.public(n)));
    }
    init.arg("--alert-exec")
        .arg(format!("cat >> '{}'", log.display()))
        .assert()
        .success();
    (kit, log)
}

fn event_kinds(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["event"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

/// Attack 1: a queue row can no longer carry a command. The columns that held
/// the sink and the payload are gone; a row pointing at a sink index no signed
/// manifest has is reported and never run.
#[test]
fn a_queue_row_cannot_choose_a_command_to_run() {
    let (kit, _log) = alerting_kit();
    kit.put("vpn", "password", "pw-1");
    let pwned = kit.path("pwned");
    // The old attack: an `outbox` table with an exec sink. The table is not
    // part of the schema any more, so the file is refused before anything runs.
    sqlite3(
        &kit.vault,
        &format!(
            "CREATE TABLE outbox (id INTEGER PRIMARY KEY, seq INTEGER, sink TEXT, payload TEXT, created TEXT, attempts INTEGER DEFAULT 0, last_error TEXT, delivered TEXT);
             INSERT INTO outbox (seq, sink, payload, created) VALUES (1, '{{\"kind\":\"exec\",\"target\":\"touch {}\"}}', '{{}}', 'now');",
            pwned.display()
        ),
    );
    let out = kit
        .bg()
        .args(["put", "bad name!", "--kind", "password"])
        .write_stdin("x")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let out = kit.unseal(&["alice", "bob"], &["vpn"]).output().unwrap();
    let stderr = support::one_line_error(&out);
    assert!(stderr.contains("unexpected table outbox"), "{stderr}");
    assert!(!pwned.exists(), "a command named by the file ran");

    // In the current schema a row can only name a sink index: one that no
    // manifest signs is reported by name and never delivered.
    sqlite3(&kit.vault, "DROP TABLE outbox;");
    sqlite3(
        &kit.vault,
        "INSERT INTO alert_queue (seq, epoch, sink_index, created) VALUES (1, 1, 7, '2026-01-01T00:00:00.000Z');",
    );
    let out = kit.bg().args(["alerts", "flush"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("names sink #7 of epoch 1, which no signed manifest has"),
        "{stderr}"
    );
    let status = kit.json(&["status"]);
    let attention = status["attention"].to_string();
    assert!(attention.contains("sink #7"), "{attention}");
    assert!(!pwned.exists());
}

/// Attack 2: a trigger that marks new alerts delivered (or hides an exposure)
/// makes the file refused by name on open; nothing in it runs.
#[test]
fn a_trigger_or_view_in_the_file_is_refused_by_name() {
    let (kit, log) = alerting_kit();
    kit.put("vpn", "password", "pw-1");
    for (what, sql) in [
        ("trigger silence", "CREATE TRIGGER silence AFTER INSERT ON alert_queue BEGIN UPDATE alert_queue SET delivered = 'x'; END;"),
        ("trigger hide", "CREATE TRIGGER hide AFTER INSERT ON exposures BEGIN DELETE FROM exposures; END;"),
        ("view secrets_view", "CREATE VIEW secrets_view AS SELECT * FROM secrets;"),
        ("index sneaky", "CREATE INDEX sneaky ON secrets (kind);"),
        ("table extra", "CREATE TABLE extra (x);"),
    ] {
        let before = kit.vault_bytes();
        sqlite3(&kit.vault, sql);
        for args in [&["status"][..], &["list"], &["audit", "verify"], &["alerts", "list"]] {
            let out = kit.bg().args(args).output().unwrap();
            let stderr = support::one_line_error(&out);
            assert!(stderr.contains(&format!("unexpected {what}")), "{args:?}: {stderr}");
        }
        let out = kit.unseal(&["alice", "bob"], &["vpn"]).output().unwrap();
        support::one_line_error(&out);
        std::fs::write(&kit.vault, before).unwrap();
    }
    // A changed table definition is caught too.
    sqlite3(
        &kit.vault,
        "PRAGMA writable_schema=ON; UPDATE sqlite_master SET sql = replace(sql, 'delivered TEXT', 'delivered TEXT DEFAULT ''x''') WHERE name = 'alert_queue';",
    );
    let out = kit.bg().arg("status").output().unwrap();
    let stderr = support::one_line_error(&out);
    assert!(stderr.contains("changed table alert_queue"), "{stderr}");
    assert!(
        event_kinds(&log).is_empty(),
        "nothing was alerted: nothing ran"
    );
}

/// Attack 2 without a trigger: deleting the queue rows of an unseal does not
/// lose its alerts; the next write command queues and delivers them again.
#[test]
fn deleted_queue_rows_are_queued_again_from_the_log() {
    let (kit, log) = alerting_kit();
    kit.put("vpn", "password", "pw-1");
    // The sink fails for the unseal, so its alerts stay queued...
    std::fs::create_dir(&log).unwrap();
    kit.unseal(&["alice", "bob"], &["vpn"]).assert().success();
    std::fs::remove_dir(&log).unwrap();
    // ...and the attacker deletes them.
    sqlite3(&kit.vault, "DELETE FROM alert_queue;");
    let status = kit.json(&["status"]);
    assert!(
        status["attention"]
            .to_string()
            .contains("missing from the queue"),
        "{status}"
    );
    kit.bg().args(["alerts", "flush"]).assert().success();
    assert_eq!(event_kinds(&log), ["unseal", "reveal", "new_epoch"]);
    kit.bg().args(["alerts", "flush"]).assert().success();
    assert_eq!(event_kinds(&log).len(), 3, "delivered exactly once");
}
