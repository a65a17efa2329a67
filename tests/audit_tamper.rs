//! The audit log through the real binary, and tampering with the stock
//! `sqlite3` shell and rusqlite: every edit, deletion, reordering and insertion
//! is caught and the first bad seq is named.

mod support;

use support::Kit;

/// A vault with 8 log rows: init, 3 puts, unseal, reveal, new_epoch, checkpoint
/// (the reveal and the new epoch are one transaction, signed by the new
/// epoch's manifest and checkpoint).
fn logged_kit() -> Kit {
    let kit = Kit::init(&["alice", "bob", "carol"], 2);
    for name in ["a", "b", "c"] {
        kit.put(name, "password", "v");
    }
    kit.unseal(&["alice", "bob"], &["b"]).assert().success();
    assert_eq!(
        kit.audit_actions(),
        [
            "init",
            "put",
            "put",
            "put",
            "unseal",
            "reveal",
            "new_epoch",
            "checkpoint"
        ]
    );
    kit
}

fn sqlite3(kit: &Kit, sql: &str) {
    let out = std::process::Command::new("sqlite3")
        .arg(&kit.vault)
        .arg(sql)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `audit verify` must fail naming `seq`, in both output forms.
fn assert_caught_at(kit: &Kit, seq: u64) {
    let out = kit
        .bg()
        .args(["audit", "verify", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["first_bad_seq"], seq, "{v}");
    let out = kit.bg().args(["audit", "verify"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with(&format!("error: audit row {seq}:")),
        "{stderr}"
    );
    // status points at it too
    let status = kit.json(&["status"]);
    assert!(status["attention"]
        .to_string()
        .contains("audit log fails verification"));
}

#[test]
fn intact_log_verifies() {
    let kit = logged_kit();
    let v = kit.json(&["audit", "verify"]);
    assert_eq!(
        v,
        serde_json::json!({"ok": true, "entries": 8, "first_bad_seq": null, "signed_through": 8, "unsigned_entries": 0})
    );
    kit.bg()
        .args(["audit", "verify"])
        .assert()
        .success()
        .stdout(predicates::str::contains("8 entries"));
    let log = kit.json(&["audit", "log"]);
    let first = &log["entries"][0];
    for key in [
        "seq", "time", "actor", "action", "subject", "reason", "hash",
    ] {
        assert!(first.get(key).is_some(), "missing {key}");
    }
}

#[test]
fn edited_reason_is_caught() {
    let kit = logged_kit();
    sqlite3(
        &kit,
        "UPDATE audit SET reason = 'routine test' WHERE seq = 5",
    );
    assert_caught_at(&kit, 5);
}

#[test]
fn edited_actor_is_caught() {
    let kit = logged_kit();
    sqlite3(
        &kit,
        "UPDATE audit SET actor = 'someone@else' WHERE seq = 2",
    );
    assert_caught_at(&kit, 2);
}

#[test]
fn deleted_middle_row_is_caught() {
    let kit = logged_kit();
    sqlite3(&kit, "DELETE FROM audit WHERE seq = 3");
    assert_caught_at(&kit, 3);
}

#[test]
fn deleted_row_with_renumbering_is_caught() {
    let kit = logged_kit();
    sqlite3(
        &kit,
        "DELETE FROM audit WHERE seq = 3;
         UPDATE audit SET seq = seq + 1000 WHERE seq > 3;
         UPDATE audit SET seq = seq - 1001 WHERE seq > 1000;",
    );
    assert_caught_at(&kit, 3);
}

#[test]
fn reordered_rows_are_caught() {
    let kit = logged_kit();
    // Swap the contents of rows 2 and 4 (including their hashes).
    let conn = rusqlite::Connection::open(&kit.vault).unwrap();
    conn.execute_batch(
        "UPDATE audit SET seq = 100 WHERE seq = 2;
         UPDATE audit SET seq = 2 WHERE seq = 4;
         UPDATE audit SET seq = 4 WHERE seq = 100;",
    )
    .unwrap();
    drop(conn);
    assert_caught_at(&kit, 2);
}

#[test]
fn inserted_row_is_caught() {
    let kit = logged_kit();
    let conn = rusqlite::Connection::open(&kit.vault).unwrap();
    // Make room after row 3 and insert a forged row that links to row 3's hash.
    let prev: String = conn
        .query_row("SELECT hash FROM audit WHERE seq = 3", [], |r| r.get(0))
        .unwrap();
    conn.execute_batch("UPDATE audit SET seq = seq + 100 WHERE seq > 3; UPDATE audit SET seq = seq - 99 WHERE seq > 100;")
        .unwrap();
    conn.execute(
        "INSERT INTO audit (seq, time, actor, action, subject, reason, details, prev_hash, hash)
         VALUES (4, '2026-01-01T00:00:00.000Z', 'mallory@x', 'put', 'x', '', '{}', ?1, ?2)",
        rusqlite::params![prev, "00".repeat(32)],
    )
    .unwrap();
    drop(conn);
    assert_caught_at(&kit, 4);
}

#[test]
fn appended_forged_row_is_caught() {
    let kit = logged_kit();
    sqlite3(
        &kit,
        "INSERT INTO audit (seq, time, actor, action, subject, reason, details, prev_hash, hash)
         SELECT 9, time, actor, 'runbook_set', 'runbook', '', '{}', hash, hash FROM audit WHERE seq = 8",
    );
    assert_caught_at(&kit, 9);
}

#[test]
fn log_is_readable_with_the_stock_sqlite3_shell() {
    let kit = logged_kit();
    let out = std::process::Command::new("sqlite3")
        .arg("-readonly")
        .arg(&kit.vault)
        .arg("SELECT seq, action, subject FROM audit ORDER BY seq")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let fingerprint = kit.json(&["status"])["fingerprint"]
        .as_str()
        .unwrap()
        .to_string();
    let expected = [
        format!("1|init|{fingerprint}"),
        "2|put|a".into(),
        "3|put|b".into(),
        "4|put|c".into(),
        format!("5|unseal|{fingerprint}"),
        "6|reveal|b".into(),
        format!("7|new_epoch|{fingerprint}"),
        format!("8|checkpoint|{fingerprint}"),
    ];
    assert_eq!(text.lines().collect::<Vec<_>>(), expected);
}
