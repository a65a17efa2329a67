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
        "INSERT INTO alert_queue (seq, epoch, sink_index, hash, created) VALUES (1, 1, 7, 'x', '2026-01-01T00:00:00.000Z');",
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

/// Attack 3: another vault's manifests and envelopes spliced into the file.
/// The path pin stops every command; a script's `--fingerprint` stops it on a
/// machine that never saw the file; nothing is sealed to the foreign key.
#[test]
fn a_spliced_vault_key_never_receives_a_deposit() {
    let kit = Kit::init(&["alice", "bob"], 2);
    kit.put("vpn", "password", "pw-1");
    let real = kit.json(&["status"])["fingerprint"]
        .as_str()
        .unwrap()
        .to_string();
    let attacker = Kit::init(&["mallory", "trudy"], 2);
    let versions_before = count(&kit.vault, "secret_versions");
    sqlite3(
        &kit.vault,
        &format!(
            "ATTACH '{}' AS evil; DELETE FROM envelopes; DELETE FROM manifests;
             INSERT INTO manifests SELECT * FROM evil.manifests; INSERT INTO envelopes SELECT * FROM evil.envelopes;",
            attacker.vault.display()
        ),
    );
    for args in [&["status"][..], &["list"], &["audit", "verify"]] {
        let err = support::one_line_error(&kit.bg().args(args).output().unwrap());
        assert!(
            err.contains(&format!("pinned this path to vault {real}")),
            "{err}"
        );
    }
    let out = kit
        .bg()
        .args(["put", "vpn", "--kind", "password"])
        .write_stdin("pw-2")
        .output()
        .unwrap();
    support::one_line_error(&out);
    let out = kit
        .bg()
        .args(["rotate", "vpn", "--generate"])
        .output()
        .unwrap();
    support::one_line_error(&out);
    assert_eq!(count(&kit.vault, "secret_versions"), versions_before);
    // A machine that never saw the file: the script names the vault it expects.
    let fresh = support::bg(&kit.vault)
        .env("BREAKGLASS_STATE_DIR", kit.path("other-machine"))
        .env("BREAKGLASS_FINGERPRINT", &real)
        .args(["put", "vpn", "--kind", "password"])
        .write_stdin("pw-2")
        .output()
        .unwrap();
    let err = support::one_line_error(&fresh);
    assert!(err.contains(&format!("requires {real}")), "{err}");
    assert_eq!(count(&kit.vault, "secret_versions"), versions_before);
    // And the log, which starts with the real vault's init, fails verification.
    let out = support::bg(&kit.vault)
        .env("BREAKGLASS_STATE_DIR", kit.path("third-machine"))
        .args(["audit", "verify"])
        .output()
        .unwrap();
    let err = support::one_line_error(&out);
    assert!(err.contains("is not the init row of vault"), "{err}");
}

fn count(vault: &Path, table: &str) -> i64 {
    rusqlite::Connection::open(vault)
        .unwrap()
        .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

/// A deliberate re-pin names both fingerprints and must match the file.
#[test]
fn repinning_names_both_fingerprints() {
    let kit = Kit::init(&["alice", "bob"], 2);
    let first = kit.json(&["status"])["fingerprint"]
        .as_str()
        .unwrap()
        .to_string();
    let other = Kit::init(&["alice", "bob"], 2);
    let second = other.json(&["status"])["fingerprint"]
        .as_str()
        .unwrap()
        .to_string();
    std::fs::copy(&other.vault, &kit.vault).unwrap();
    support::one_line_error(&kit.bg().arg("status").output().unwrap());
    // Wrong new fingerprint: refused, still pinned.
    let out = kit.bg().args(["repin", &first, &first]).output().unwrap();
    support::one_line_error(&out);
    support::one_line_error(&kit.bg().arg("status").output().unwrap());
    kit.bg().args(["repin", &first, &second]).assert().success();
    kit.bg().arg("status").assert().success();
}

/// Attack 5: an unseal's rows deleted and the chain re-hashed. The manifest
/// chain has epoch 2, whose signed manifest committed to the log head, so the
/// erasure fails `audit verify` by name, and no later quorum signs over it.
#[test]
fn an_erased_unseal_is_caught_and_never_signed_over() {
    let (kit, log) = alerting_kit();
    kit.put("vpn", "password", "pw-1");
    kit.unseal(&["alice", "bob"], &["vpn"]).assert().success();
    sqlite3(
        &kit.vault,
        "DELETE FROM audit WHERE action IN ('unseal', 'reveal', 'checkpoint', 'new_epoch'); DELETE FROM anchor_signatures;",
    );
    // Renumber so the seqs run 1, 2, 3… again, then re-hash.
    sqlite3(
        &kit.vault,
        "UPDATE audit SET seq = seq + 1000; UPDATE audit SET seq = (SELECT count(*) FROM audit a WHERE a.seq <= audit.seq);",
    );
    support::rechain(&kit.vault);
    let err = support::one_line_error(&kit.bg().args(["audit", "verify"]).output().unwrap());
    assert!(
        err.contains("has epoch 2 but the log has no new_epoch row"),
        "{err}"
    );
    // A full drill still runs (the emergency proceeds) but signs nothing.
    let out = kit
        .bg()
        .args(["drill", "--full", "--identity"])
        .arg(kit.key("alice"))
        .arg("--identity")
        .arg(kit.key("bob"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no checkpoint was signed"), "{stderr}");
    let actions = kit.audit_actions();
    assert_eq!(
        actions.last().map(String::as_str),
        Some("checkpoint_refused")
    );
    assert!(!actions.contains(&"checkpoint".to_string()));
    let alerts = kit.bg().args(["alerts", "list", "--all"]).output().unwrap();
    assert!(
        event_kinds(&log).contains(&"checkpoint_refused".to_string()),
        "{}",
        String::from_utf8_lossy(&alerts.stdout)
    );
}

/// Attack 6: a version the attacker deposited is shown, and not endorsed
/// unless the quorum says so; a hook edited in the file never runs unasked.
#[test]
fn nothing_is_endorsed_or_run_blind() {
    let kit = Kit::init(&["alice", "bob"], 2);
    kit.put("vpn", "password", "pw-1");
    kit.unseal(&["alice", "bob"], &[])
        .arg("--endorse")
        .assert()
        .success();
    // The attacker deposits (anyone can) and plants a hook.
    kit.put("vpn", "password", "attacker-value");
    let pwned = kit.path("pwned");
    sqlite3(
        &kit.vault,
        &format!(
            "UPDATE rotation_settings SET apply_cmd = 'cat > {}' WHERE secret = 'vpn';",
            pwned.display()
        ),
    );
    let out = kit.unseal(&["alice", "bob"], &["vpn"]).output().unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("secret vpn version 2, deposited by"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("apply hook `cat > {}`", pwned.display())),
        "{stderr}"
    );
    let list = kit.json(&["list"]);
    assert_eq!(list["secrets"][0]["endorsement"], "unendorsed", "{list}");
    // The planted hook does not run on `rotate --exposed` nor on `rotate`.
    let out = kit.bg().args(["rotate", "--exposed"]).output().unwrap();
    assert!(!out.status.success());
    let out = kit
        .bg()
        .args(["rotate", "vpn", "--generate"])
        .output()
        .unwrap();
    let err = support::one_line_error(&out);
    assert!(err.contains("--trust-hook"), "{err}");
    assert!(!pwned.exists(), "an unsigned hook ran");
}

/// Checkpoints sign only a digest of what they endorse; the sets are rows in
/// the file. Rows added to or changed in those tables make nothing count as
/// endorsed: every version reads `unendorsed`, no stored hook runs unasked,
/// and the mismatch is named until a quorum session endorses again.
#[test]
fn an_edited_endorsement_row_endorses_nothing_and_is_named() {
    let kit = Kit::init(&["alice", "bob"], 2);
    kit.put("vpn", "password", "pw-1");
    kit.bg()
        .args([
            "put",
            "db",
            "--kind",
            "password",
            "--apply",
            "cat >/dev/null",
        ])
        .write_stdin("db-1")
        .assert()
        .success();
    kit.unseal(&["alice", "bob"], &[])
        .arg("--endorse")
        .assert()
        .success();
    let endorsement = |list: &serde_json::Value, name: &str| {
        list["secrets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap()["endorsement"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let list = kit.json(&["list"]);
    assert_eq!(endorsement(&list, "vpn"), "endorsed");
    assert_eq!(list["endorsement_problem"], serde_json::Value::Null);
    assert_eq!(count(&kit.vault, "endorsed_versions"), 2);

    // The attacker deposits, and copies the deposit's own (correct) hash and
    // name into the endorsement table, as if a quorum had signed it.
    kit.put("planted", "password", "attacker-value");
    let ciphertext: String = rusqlite::Connection::open(&kit.vault)
        .unwrap()
        .query_row(
            "SELECT ciphertext FROM secret_versions WHERE secret = 'planted'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let hash = hex::encode(breakglass::crypto::sha256(&[ciphertext.as_bytes()]));
    sqlite3(
        &kit.vault,
        &format!("INSERT INTO endorsed_versions VALUES ('planted', 1, '{hash}', 'alice@laptop');"),
    );
    let list = kit.json(&["list"]);
    for name in ["vpn", "db", "planted"] {
        assert_eq!(endorsement(&list, name), "unendorsed", "{name}: {list}");
    }
    let problem = list["endorsement_problem"].as_str().unwrap().to_string();
    assert!(
        problem.contains("endorsed_versions table does not hash to the digest checkpoint"),
        "{problem}"
    );
    let human = kit.bg().arg("list").output().unwrap();
    assert!(String::from_utf8_lossy(&human.stderr).contains("warning: the endorsed_versions table"));
    let status = kit.json(&["status"]);
    assert!(
        status["attention"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a.as_str().unwrap().contains("endorsed_versions table")),
        "{status}"
    );
    kit.bg().args(["status", "--check"]).assert().code(1);

    // A changed endorsed setting: a planted hook made to look endorsed.
    let pwned = kit.path("pwned");
    sqlite3(
        &kit.vault,
        &format!(
            "UPDATE rotation_settings SET apply_cmd = 'cat > {0}' WHERE secret = 'db';
             UPDATE endorsed_settings SET apply_cmd = 'cat > {0}' WHERE secret = 'db';",
            pwned.display()
        ),
    );
    let out = kit
        .bg()
        .args(["rotate", "db", "--generate"])
        .output()
        .unwrap();
    let err = support::one_line_error(&out);
    assert!(err.contains("--trust-hook"), "{err}");
    assert!(!pwned.exists(), "a hook from an edited row ran");

    // The next quorum session names the problem, lists everything again, and
    // endorses only what it is told to.
    let out = kit
        .unseal(&["alice", "bob"], &[])
        .arg("--endorse")
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("endorsed_versions table does not hash"),
        "{stderr}"
    );
    assert!(
        stderr.contains("endorsed_settings table does not hash"),
        "{stderr}"
    );
    assert!(
        stderr.contains("secret vpn version 1, deposited by"),
        "{stderr}"
    );
    let list = kit.json(&["list"]);
    assert_eq!(list["endorsement_problem"], serde_json::Value::Null);
    assert_eq!(endorsement(&list, "vpn"), "endorsed");
    assert_eq!(count(&kit.vault, "endorsed_versions"), 3);
    // Deleting a row is an edit too.
    sqlite3(
        &kit.vault,
        "DELETE FROM endorsed_versions WHERE secret = 'db';",
    );
    let list = kit.json(&["list"]);
    assert_eq!(endorsement(&list, "vpn"), "unendorsed", "{list}");
    assert!(list["endorsement_problem"].is_string());
}
