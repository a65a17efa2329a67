//! Nothing is revealed that is not logged first: if the audit rows cannot be
//! committed, unseal prints no value and exits 1.

mod support;

use std::path::Path;

use age::secrecy::ExposeSecret;
use assert_cmd::Command;

fn bg(vault: &Path) -> Command {
    // No controlling terminal: the unseal below must not stop at a prompt.
    let mut cmd = Command::from_std(support::detached_binary());
    cmd.arg("--vault")
        .arg(vault)
        .env_remove("BREAKGLASS_VAULT")
        .env(
            "BREAKGLASS_STATE_DIR",
            vault.parent().unwrap().join("state"),
        );
    cmd
}

#[test]
fn reveal_fails_closed_when_the_audit_log_cannot_be_written() {
    let dir = tempfile::tempdir().unwrap();
    let vault = dir.path().join("v.db");
    let mut init = bg(&vault);
    init.args(["init", "--threshold", "2"]);
    let mut keys = Vec::new();
    for name in ["alice", "bob"] {
        let identity = age::x25519::Identity::generate();
        let key = dir.path().join(format!("{name}.key"));
        std::fs::write(&key, identity.to_string().expose_secret()).unwrap();
        init.arg("--custodian")
            .arg(format!("{name}={}", identity.to_public()));
        keys.push(key);
    }
    init.assert().success();
    let canary = "CANARY-fail-closed-7f3a9b";
    bg(&vault)
        .args(["put", "vpn", "--kind", "password"])
        .write_stdin(canary)
        .assert()
        .success();

    // Another writer holds the vault's write lock for the whole unseal.
    let blocker = rusqlite::Connection::open(&vault).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let out = bg(&vault)
        .args(["unseal", "--reason", "lock test", "--reveal", "vpn"])
        .arg("--identity")
        .arg(&keys[0])
        .arg("--identity")
        .arg(&keys[1])
        .output()
        .unwrap();
    blocker.execute_batch("ROLLBACK").unwrap();

    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(!stdout.contains(canary), "value printed without a log row");
    assert!(!stderr.contains(canary));
    assert!(stderr.contains("nothing was revealed"), "stderr: {stderr}");

    let log = bg(&vault)
        .args(["audit", "log", "--json"])
        .output()
        .unwrap();
    let log: serde_json::Value = serde_json::from_slice(&log.stdout).unwrap();
    let actions: Vec<&str> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["init", "put"], "no reveal may be logged or shown");
}

/// A writer killed mid-transaction leaves a hot journal. Read-only commands
/// (status, audit verify) must still work: the old state is rolled back first.
#[test]
fn a_kill_mid_transaction_leaves_the_old_state_readable() {
    let dir = tempfile::tempdir().unwrap();
    let vault = dir.path().join("v.db");
    let mut init = bg(&vault);
    init.args(["init", "--threshold", "2"]);
    for name in ["alice", "bob"] {
        let identity = age::x25519::Identity::generate();
        init.arg("--custodian")
            .arg(format!("{name}={}", identity.to_public()));
    }
    init.assert().success();
    let before = bg(&vault)
        .args(["audit", "log", "--json"])
        .output()
        .unwrap()
        .stdout;
    // The stock sqlite3 shell starts a write transaction, then is SIGKILLed inside it.
    let script = "PRAGMA cache_size=1;\nBEGIN IMMEDIATE;\nUPDATE audit SET reason = 'forged' || reason;\n\
                  INSERT INTO runbook VALUES (1, printf('%.5000c', 'a'), 'x', 'y');\n.shell kill -9 $PPID\n";
    let mut shell = std::process::Command::new("sqlite3")
        .arg(&vault)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        shell
            .stdin
            .take()
            .unwrap()
            .write_all(script.as_bytes())
            .unwrap();
    }
    let status = shell.wait().unwrap();
    assert!(
        status.code().is_none(),
        "sqlite3 was killed mid-transaction"
    );
    let journal = dir.path().join("v.db-journal");
    assert!(
        std::fs::metadata(&journal).unwrap().len() > 0,
        "a hot journal was left"
    );

    bg(&vault).args(["audit", "verify"]).assert().success();
    let after = bg(&vault)
        .args(["audit", "log", "--json"])
        .output()
        .unwrap()
        .stdout;
    assert_eq!(before, after, "the interrupted change was rolled back");
    let runbook = bg(&vault).args(["runbook", "--json"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&runbook.stdout).unwrap();
    assert!(v["runbook"].is_null());
}
