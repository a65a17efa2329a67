//! After use: exposure, a new key epoch after every reveal, rotation with apply
//! hooks, and what survives a kill mid-rotation — through the real binary.

mod support;

use support::{one_line_error, Kit};

fn unseal_json(kit: &Kit, who: &[&str], reveal: &[&str], extra: &[&str]) -> serde_json::Value {
    let out = kit
        .unseal(who, reveal)
        .arg("--json")
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn state_of(kit: &Kit, name: &str) -> String {
    let list = kit.json(&["list"]);
    let secret = list["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap()
        .clone();
    format!(
        "v{} {}",
        secret["version"],
        secret["state"].as_str().unwrap()
    )
}

#[test]
fn a_reveal_marks_the_secret_exposed_and_ends_the_epoch() {
    let kit = Kit::init(&["alice", "bob", "carol"], 2);
    kit.put("vpn", "password", "pw-1");
    kit.put("notes", "note", "untouched");
    let old_envelope = kit.path("alice-epoch1.age");
    kit.bg()
        .args(["custodian", "export", "alice", "--out"])
        .arg(&old_envelope)
        .assert()
        .success();

    let v = unseal_json(&kit, &["alice", "bob"], &["vpn"], &[]);
    assert_eq!(
        (v["epoch"].as_u64(), v["new_epoch"].as_u64()),
        (Some(1), Some(2))
    );
    assert_eq!(state_of(&kit, "vpn"), "v1 exposed");
    assert_eq!(state_of(&kit, "notes"), "v1 ok");
    let list = kit.json(&["list"]);
    let exposure = &list["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "vpn")
        .unwrap()["exposure"];
    assert_eq!(exposure["reason"], "test outage");
    assert!(exposure["revealed_by"].as_str().unwrap().contains('@'));
    assert!(exposure["revealed_at"].as_str().unwrap().starts_with("20"));
    let status = kit.json(&["status"]);
    assert_eq!(status["epoch"], 2);
    let attention = status["attention"].to_string();
    assert!(attention.contains("secret vpn is exposed"), "{attention}");
    assert!(
        attention.contains("has not drilled since epoch 2 began"),
        "{attention}"
    );
    assert!(!attention.contains("re-key is due"));
    kit.bg().args(["status", "--check"]).assert().code(1);
    kit.bg().args(["audit", "verify"]).assert().success();

    // The envelope exported before is dead.
    let out = kit
        .bg()
        .args(["drill", "--identity"])
        .arg(kit.key("alice"))
        .arg("--envelope")
        .arg(&old_envelope)
        .output()
        .unwrap();
    let err = one_line_error(&out);
    assert!(
        err.contains("share is from epoch 1; the vault is at epoch 2"),
        "{err}"
    );
    // Fresh envelopes for everyone, and a fresh quorum opens epoch 2 with every secret readable.
    let dir = kit.path("envelopes");
    kit.bg()
        .args(["custodian", "export", "--all", "--out-dir"])
        .arg(&dir)
        .assert()
        .success();
    for name in ["alice", "bob", "carol"] {
        let out = std::process::Command::new("age")
            .arg("-d")
            .arg("-i")
            .arg(kit.key(name))
            .arg(dir.join(format!("{name}.age")))
            .output()
            .unwrap();
        assert!(out.status.success());
    }
    kit.bg()
        .args(["drill", "--identity"])
        .arg(kit.key("alice"))
        .arg("--envelope")
        .arg(dir.join("alice.age"))
        .assert()
        .success();
    let v = unseal_json(&kit, &["bob", "carol"], &["vpn", "notes"], &[]);
    assert_eq!(v["epoch"], 2);
    assert_eq!(v["revealed"][0]["value"], "pw-1");
    assert_eq!(v["revealed"][1]["value"], "untouched");
}

#[test]
fn no_rekey_keeps_the_epoch_warns_and_logs() {
    let kit = Kit::init(&["alice", "bob"], 2);
    kit.put("vpn", "password", "pw");
    let out = kit
        .unseal(&["alice", "bob"], &["vpn"])
        .arg("--no-rekey")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--no-rekey: the vault stays at epoch 1"));
    let status = kit.json(&["status"]);
    assert_eq!(status["epoch"], 1);
    assert!(status["attention"].to_string().contains("a re-key is due"));
    assert!(kit.audit_actions().contains(&"rekey_skipped".to_string()));
    // An unseal that reveals nothing does not end the epoch.
    let v = unseal_json(&kit, &["alice", "bob"], &[], &[]);
    assert!(v["new_epoch"].is_null());
}

#[test]
fn rotation_hook_gets_the_new_value_on_stdin_and_promotes_it() {
    let kit = Kit::init(&["alice", "bob"], 2);
    let got = kit.path("hook-got.txt");
    kit.bg()
        .args(["put", "vpn", "--kind", "password", "--apply"])
        .arg(format!("cat > '{}'", got.display()))
        .write_stdin("old")
        .assert()
        .success();
    // The quorum endorses the hook it is shown; only then does it run unasked.
    unseal_json(&kit, &["alice", "bob"], &["vpn"], &["--endorse"]);
    assert_eq!(state_of(&kit, "vpn"), "v1 exposed");
    let out = kit
        .bg()
        .args(["rotate", "vpn", "--generate", "--length", "32", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (
            v["version"].as_u64(),
            v["hook_exit"].as_i64(),
            v["state"].as_str()
        ),
        (Some(2), Some(0), Some("active"))
    );
    assert_eq!(state_of(&kit, "vpn"), "v2 ok");
    let applied = std::fs::read_to_string(&got).unwrap();
    assert_eq!(applied.len(), 32);
    assert!(applied.chars().all(|c| c.is_ascii_alphanumeric()));
    // The vault holds exactly what the hook applied; the value was never in argv or the log.
    let v = unseal_json(&kit, &["alice", "bob"], &["vpn"], &[]);
    assert_eq!(v["revealed"][0]["value"], applied.as_str());
    let log = serde_json::to_string(&kit.json(&["audit", "log"])).unwrap();
    assert!(!log.contains(&applied));
    let rotate_row = kit.json(&["audit", "log"])["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "rotate")
        .unwrap()
        .clone();
    assert_eq!(rotate_row["details"]["hook_exit"], 0);
}

#[test]
fn hook_that_checks_its_stdin() {
    let kit = Kit::init(&["alice", "bob"], 2);
    kit.put("db", "password", "old-db");
    kit.bg()
        .args([
            "rotate",
            "db",
            "--apply",
            "test \"$(cat)\" = 'new-db-pw' || { echo 'wrong value on stdin' >&2; exit 9; }",
        ])
        .write_stdin("new-db-pw\n")
        .assert()
        .success();
    assert_eq!(state_of(&kit, "db"), "v2 ok");
    let out = kit
        .bg()
        .args(["rotate", "db", "--trust-hook"])
        .write_stdin("something-else")
        .output()
        .unwrap();
    let err = one_line_error(&out);
    assert!(err.contains("apply hook exited 9"), "{err}");
    // --trust-hook shows the command it trusts; the hook's own output is
    // never echoed (the phrase appears once: in the command shown).
    assert!(
        err.starts_with("warning: trusting (--trust-hook) the unendorsed apply hook of db: test"),
        "{err}"
    );
    assert_eq!(
        err.matches("wrong value on stdin").count(),
        1,
        "hook output is never echoed: {err}"
    );
}

#[test]
fn failing_hook_keeps_the_old_value_active() {
    let kit = Kit::init(&["alice", "bob"], 2);
    kit.put("vpn", "password", "still-the-old-one");
    unseal_json(&kit, &["alice", "bob"], &["vpn"], &[]);
    let out = kit
        .bg()
        .args([
            "rotate",
            "vpn",
            "--generate",
            "--apply",
            "echo 'ldap: insufficient access' >&2; exit 50",
        ])
        .output()
        .unwrap();
    let err = one_line_error(&out);
    assert!(err.contains("secret vpn: apply hook exited 50"), "{err}");
    assert!(err.contains("see the hook's own log"), "{err}");
    assert!(!err.contains("insufficient access"), "{err}");
    assert!(err.contains("old version stays active"), "{err}");
    assert_eq!(state_of(&kit, "vpn"), "v1 exposed");
    let v = unseal_json(&kit, &["alice", "bob"], &["vpn"], &[]);
    assert_eq!(v["revealed"][0]["value"], "still-the-old-one");
    let conn = rusqlite::Connection::open(&kit.vault).unwrap();
    let states: Vec<(u32, String)> = conn
        .prepare("SELECT version, state FROM secret_versions WHERE secret = 'vpn' ORDER BY version")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        states,
        [(1, "active".to_string()), (2, "failed".to_string())]
    );
    assert!(kit.audit_actions().contains(&"rotate_failed".to_string()));
}

#[test]
fn rotate_exposed_handles_what_it_can_and_lists_the_rest() {
    let kit = Kit::init(&["alice", "bob"], 2);
    kit.bg()
        .args([
            "put",
            "vpn",
            "--kind",
            "password",
            "--apply",
            "cat > /dev/null",
        ])
        .write_stdin("a")
        .assert()
        .success();
    kit.put("codes", "bypass-codes", "111\n222");
    kit.put("calm", "password", "not revealed");
    unseal_json(&kit, &["alice", "bob"], &["vpn", "codes"], &["--endorse"]);
    let out = kit
        .bg()
        .args(["rotate", "--exposed", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "a secret still needs a human");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["rotated"][0]["name"], "vpn");
    assert_eq!(v["needs_human"], serde_json::json!(["codes"]));
    assert_eq!(state_of(&kit, "vpn"), "v2 ok");
    assert_eq!(state_of(&kit, "codes"), "v1 exposed");
    assert_eq!(state_of(&kit, "calm"), "v1 ok");
    kit.bg()
        .args(["rotate", "codes"])
        .write_stdin("333\n444")
        .assert()
        .success();
    let out = kit.bg().args(["rotate", "--exposed"]).output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("Nothing is exposed"));
}

#[test]
fn generate_refuses_non_passwords_and_bad_lengths() {
    let kit = Kit::init(&["alice", "bob"], 2);
    kit.put("codes", "bypass-codes", "1\n2");
    kit.put("vpn", "password", "x");
    let before = kit.vault_bytes();
    let err = one_line_error(
        &kit.bg()
            .args(["rotate", "codes", "--generate"])
            .output()
            .unwrap(),
    );
    assert!(
        err.contains("secret codes: is a bypass-codes secret"),
        "{err}"
    );
    let err = one_line_error(
        &kit.bg()
            .args(["rotate", "vpn", "--generate", "--length", "4"])
            .output()
            .unwrap(),
    );
    assert!(err.contains("--length 4"), "{err}");
    let err = one_line_error(
        &kit.bg()
            .args(["rotate", "nope", "--generate"])
            .output()
            .unwrap(),
    );
    assert!(err.contains("secret nope: no such secret"), "{err}");
    assert_eq!(kit.vault_bytes(), before);
}

#[test]
fn a_kill_during_the_hook_leaves_the_old_version_active() {
    let kit = Kit::init(&["alice", "bob"], 2);
    kit.put("vpn", "password", "survives-the-kill");
    // The hook kills breakglass itself (its parent) between phase 1 and phase 3.
    let out = kit
        .bg()
        .args([
            "rotate",
            "vpn",
            "--generate",
            "--apply",
            "kill -9 $PPID; sleep 5",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), None, "breakglass was killed by a signal");
    // The vault opens, verifies, and the old version is active; the new one is pending.
    kit.bg().args(["audit", "verify"]).assert().success();
    assert_eq!(state_of(&kit, "vpn"), "v1 ok");
    let status = kit.json(&["status"]);
    let attention = status["attention"].to_string();
    assert!(
        attention.contains("rotation to version 2 started by")
            && attention.contains("breakglass rotate vpn --abandon"),
        "{attention}"
    );
    let v = unseal_json(&kit, &["alice", "bob"], &["vpn"], &[]);
    assert_eq!(v["revealed"][0]["value"], "survives-the-kill");
    // The pending version was re-sealed with the epoch. It blocks a new
    // rotation until it is settled with --abandon.
    let err = one_line_error(
        &kit.bg()
            .args(["rotate", "vpn", "--apply", "true"])
            .write_stdin("after-the-kill")
            .output()
            .unwrap(),
    );
    assert!(err.contains("--abandon"), "{err}");
    kit.bg()
        .args(["rotate", "vpn", "--abandon"])
        .assert()
        .success();
    kit.bg()
        .args(["rotate", "vpn", "--apply", "true"])
        .write_stdin("after-the-kill")
        .assert()
        .success();
    assert_eq!(state_of(&kit, "vpn"), "v3 ok");
    assert!(!kit.json(&["status"])["attention"]
        .to_string()
        .contains("interrupted"));
    let v = unseal_json(&kit, &["alice", "bob"], &["vpn"], &[]);
    assert_eq!(v["revealed"][0]["value"], "after-the-kill");
}

/// Kill `unseal --reveal` (which re-keys to a new epoch) at many points in its
/// life. Each time, the vault must open at exactly one epoch, verify, and give
/// back every secret with the same custodian keys.
#[test]
fn a_kill_at_any_point_of_the_epoch_rekey_leaves_one_whole_epoch() {
    let kit = Kit::init(&["alice", "bob"], 2);
    for i in 0..4 {
        kit.put(&format!("s{i}"), "password", &format!("value-{i}"));
    }
    // How long one whole unseal + re-key takes on this machine: the kills are
    // spread from its start to well past its end (timing varies run to run).
    let started = std::time::Instant::now();
    unseal_json(&kit, &["alice", "bob"], &["s0"], &[]);
    let mut full_run = started.elapsed().as_millis() as u64;
    let first_epoch = kit.json(&["status"])["epoch"].as_u64().unwrap();
    let mut epochs_seen = std::collections::BTreeSet::new();
    let steps = 10;
    for step in 0..=steps {
        let delay_ms = full_run * 3 * step / steps;
        let mut child = support::detached_binary()
            .arg("--vault")
            .arg(&kit.vault)
            .env("BREAKGLASS_STATE_DIR", kit.path("state"))
            .args([
                "unseal",
                "--reason",
                "kill loop",
                "--reveal",
                "s0",
                "--reveal",
                "s3",
                "--identity",
            ])
            .arg(kit.key("alice"))
            .arg("--identity")
            .arg(kit.key("bob"))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();

        kit.bg().args(["audit", "verify"]).assert().success();
        let status = kit.json(&["status"]);
        epochs_seen.insert(status["epoch"].as_u64().unwrap());
        let conn = rusqlite::Connection::open(&kit.vault).unwrap();
        let envelope_epochs: Vec<i64> = conn
            .prepare("SELECT DISTINCT epoch FROM envelopes")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            envelope_epochs,
            [status["epoch"].as_i64().unwrap()],
            "envelopes of exactly one epoch"
        );
        drop(conn);
        // This full unseal (which does not re-key) also re-times a run: the log grows.
        let timed = std::time::Instant::now();
        let v = unseal_json(
            &kit,
            &["alice", "bob"],
            &["s0", "s1", "s2", "s3"],
            &["--no-rekey"],
        );
        full_run = timed.elapsed().as_millis() as u64;
        for i in 0..4 {
            assert_eq!(v["revealed"][i]["value"], format!("value-{i}"));
        }
    }
    assert!(
        epochs_seen.iter().any(|e| *e > first_epoch),
        "some runs got far enough to re-key: {epochs_seen:?} after epoch {first_epoch}"
    );
}

/// The binary on the kit's vault as a child this test can wait for or kill.
fn spawn(kit: &Kit, args: &[&str]) -> std::process::Child {
    support::detached_binary()
        .arg("--vault")
        .arg(&kit.vault)
        .args(args)
        .env_remove("BREAKGLASS_VAULT")
        .env("BREAKGLASS_STATE_DIR", kit.path("state"))
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// (version, state, depositor, created) of every version of `name`, oldest first.
fn versions(kit: &Kit, name: &str) -> Vec<(u32, String, String, String)> {
    let conn = rusqlite::Connection::open_with_flags(
        &kit.vault,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .unwrap();
    let rows = conn
        .prepare(
            "SELECT version, state, depositor, created FROM secret_versions WHERE secret = ?1 ORDER BY version",
        )
        .unwrap()
        .query_map([name], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    rows
}

fn states(kit: &Kit, name: &str) -> Vec<(u32, String)> {
    versions(kit, name)
        .into_iter()
        .map(|(v, state, _, _)| (v, state))
        .collect()
}

/// Wait until `name` has a pending version (a rotation is in its hook); returns it.
fn wait_for_pending(kit: &Kit, name: &str) -> (u32, String, String, String) {
    for _ in 0..600 {
        if let Some(row) = versions(kit, name)
            .into_iter()
            .find(|(_, state, _, _)| state == "pending")
        {
            return row;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("no rotation of {name} became pending");
}

#[test]
fn a_second_rotate_while_one_is_pending_is_refused() {
    let kit = Kit::init(&["alice", "bob"], 2);
    kit.put("vpn", "password", "old");
    let first = spawn(
        &kit,
        &[
            "rotate",
            "vpn",
            "--generate",
            "--apply",
            "sleep 3; cat >/dev/null",
            "--json",
        ],
    );
    let (version, _, started_by, started_at) = wait_for_pending(&kit, "vpn");
    assert_eq!(version, 2);
    let out = kit
        .bg()
        .args(["rotate", "vpn", "--generate", "--apply", "true"])
        .output()
        .unwrap();
    let err = one_line_error(&out);
    assert!(
        err.contains("secret vpn: a rotation to version 2")
            && err.contains(&format!("started by {started_by} at {started_at}"))
            && err.contains("is still in progress (pending); wait for it to finish")
            && err.contains("`breakglass rotate vpn --abandon`")
            && err.contains("nothing was rotated"),
        "{err}"
    );
    // A deposit would race the hook the same way.
    let err = one_line_error(
        &kit.bg()
            .args(["put", "vpn", "--kind", "password"])
            .write_stdin("manual")
            .output()
            .unwrap(),
    );
    assert!(
        err.contains("is still in progress (pending)") && err.contains("nothing was deposited"),
        "{err}"
    );
    let out = first.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["version"].as_u64(), v["state"].as_str()),
        (Some(2), Some("active"))
    );
    // The refused commands added nothing.
    assert_eq!(
        states(&kit, "vpn"),
        [(1, "superseded".to_string()), (2, "active".to_string())]
    );
    kit.bg().args(["audit", "verify"]).assert().success();
}

#[test]
fn abandon_settles_a_rotation_killed_during_its_hook() {
    let kit = Kit::init(&["alice", "bob"], 2);
    kit.put("vpn", "password", "the-old-one");
    // The hook only sleeps: once breakglass is killed it may go on running, harmlessly.
    let mut child = spawn(&kit, &["rotate", "vpn", "--generate", "--apply", "sleep 3"]);
    let (version, _, started_by, started_at) = wait_for_pending(&kit, "vpn");
    child.kill().unwrap();
    let _ = child.wait();

    let attention = kit.json(&["status"])["attention"].to_string();
    assert!(
        attention.contains(&format!(
            "secret vpn: rotation to version {version} started by {started_by} at {started_at}"
        )) && attention.contains("`breakglass rotate vpn --abandon`"),
        "{attention}"
    );
    kit.bg().args(["status", "--check"]).assert().code(1);
    let err = one_line_error(
        &kit.bg()
            .args(["rotate", "vpn", "--generate"])
            .output()
            .unwrap(),
    );
    assert!(err.contains("--abandon"), "{err}");

    let out = kit
        .bg()
        .args(["rotate", "vpn", "--abandon", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["version"], 2);
    assert_eq!(v["active_version"], 1);
    assert_eq!(v["started_by"], started_by.as_str());
    assert_eq!(v["state"], "failed");
    assert_eq!(
        states(&kit, "vpn"),
        [(1, "active".to_string()), (2, "failed".to_string())]
    );
    let log = kit.json(&["audit", "log"]);
    let last = log["entries"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (last["action"].as_str(), last["subject"].as_str()),
        (Some("rotation_abandoned"), Some("vpn"))
    );
    assert_eq!(last["details"]["version"], 2);
    kit.bg().args(["audit", "verify"]).assert().success();
    assert!(!kit.json(&["status"])["attention"]
        .to_string()
        .contains("rotation to version"));

    // Nothing pending: said so, exit 1, nothing changed.
    let before = kit.vault_bytes();
    let err = one_line_error(
        &kit.bg()
            .args(["rotate", "vpn", "--abandon"])
            .output()
            .unwrap(),
    );
    assert!(
        err.contains("secret vpn: has no pending rotation to abandon; nothing was changed"),
        "{err}"
    );
    assert_eq!(kit.vault_bytes(), before);

    // The old value is still the one the vault gives; a new rotation goes through.
    let v = unseal_json(&kit, &["alice", "bob"], &["vpn"], &["--no-rekey"]);
    assert_eq!(v["revealed"][0]["value"], "the-old-one");
    kit.bg()
        .args(["rotate", "vpn", "--apply", "true"])
        .write_stdin("the-new-one")
        .assert()
        .success();
    assert_eq!(state_of(&kit, "vpn"), "v3 ok");
    let v = unseal_json(&kit, &["alice", "bob"], &["vpn"], &["--no-rekey"]);
    assert_eq!(v["revealed"][0]["value"], "the-new-one");
}

/// Only the newest version, still pending, becomes active: a rotation
/// abandoned while its hook ran (and overtaken by a newer one) says so and
/// leaves the active version alone.
#[test]
fn a_rotation_abandoned_while_its_hook_runs_is_not_made_active() {
    let kit = Kit::init(&["alice", "bob"], 2);
    kit.put("vpn", "password", "v1-value");
    let slow = spawn(
        &kit,
        &[
            "rotate",
            "vpn",
            "--generate",
            "--apply",
            "sleep 4; cat >/dev/null",
        ],
    );
    wait_for_pending(&kit, "vpn");
    kit.bg()
        .args(["rotate", "vpn", "--abandon"])
        .assert()
        .success();
    kit.bg()
        .args(["rotate", "vpn", "--apply", "cat >/dev/null"])
        .write_stdin("v3-value")
        .assert()
        .success();
    let out = slow.wait_with_output().unwrap();
    let err = one_line_error(&out);
    assert!(
        err.contains(
            "secret vpn: version 2 was not made active: it was settled as failed meanwhile"
        ) && err.contains("version 3 stays active")
            && err.contains("the target system may now hold version 2's value"),
        "{err}"
    );
    assert_eq!(
        states(&kit, "vpn"),
        [
            (1, "superseded".to_string()),
            (2, "failed".to_string()),
            (3, "active".to_string())
        ]
    );
    let actions = kit.audit_actions();
    assert_eq!(actions.last().map(String::as_str), Some("rotate_failed"));
    let v = unseal_json(&kit, &["alice", "bob"], &["vpn"], &["--no-rekey"]);
    assert_eq!(v["revealed"][0]["value"], "v3-value");
}

/// Eight rotations at once, three times over: the ones that say "active" are
/// exactly the ones whose value reached the hook, one at a time, and the
/// vault's active value is the last value the target system was given.
#[test]
fn concurrent_rotations_leave_the_vault_holding_what_the_hook_applied() {
    let kit = Kit::init(&["alice", "bob"], 2);
    kit.put("dc-admin", "password", "initial");
    let applied = kit.path("applied.txt");
    // Each hook lingers a little (a different time per process) before it applies.
    let hook = format!(
        "sleep 0.$(( $$ % 5 + 3 )); cat >> '{f}'; echo >> '{f}'",
        f = applied.display()
    );
    let mut refused = 0;
    for round in 0..3 {
        let _ = std::fs::remove_file(&applied);
        let before = states(&kit, "dc-admin").len();
        let children: Vec<_> = (0..8)
            .map(|_| {
                spawn(
                    &kit,
                    &[
                        "rotate",
                        "dc-admin",
                        "--generate",
                        "--apply",
                        &hook,
                        "--json",
                    ],
                )
            })
            .collect();
        let mut activated = Vec::new();
        for child in children {
            let out = child.wait_with_output().unwrap();
            if out.status.success() {
                let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                assert_eq!(v["state"], "active", "round {round}: {v}");
                activated.push(v["version"].as_u64().unwrap());
            } else {
                let err = one_line_error(&out);
                assert!(
                    err.contains("is still in progress (pending)") && err.contains("--abandon"),
                    "round {round}: {err}"
                );
                refused += 1;
            }
        }
        assert!(
            !activated.is_empty(),
            "round {round}: no rotation went through"
        );
        activated.sort();
        let mut distinct = activated.clone();
        distinct.dedup();
        assert_eq!(distinct, activated, "round {round}");

        let text = std::fs::read_to_string(&applied).unwrap();
        let values: Vec<&str> = text.lines().collect();
        assert_eq!(
            values.len(),
            activated.len(),
            "round {round}: the hook got exactly one value per rotation that said active: {values:?} {activated:?}"
        );
        // One new version per rotation that went through, none left pending or failed.
        let rows = states(&kit, "dc-admin");
        assert_eq!(
            rows.len(),
            before + activated.len(),
            "round {round}: {rows:?}"
        );
        let newest = *activated.last().unwrap();
        for (version, state) in &rows {
            let want = if u64::from(*version) == newest {
                "active"
            } else {
                "superseded"
            };
            assert_eq!(state, want, "round {round}: {rows:?}");
        }
        let v = unseal_json(&kit, &["alice", "bob"], &["dc-admin"], &["--no-rekey"]);
        assert_eq!(v["revealed"][0]["version"], newest);
        assert_eq!(
            v["revealed"][0]["value"].as_str(),
            values.last().copied(),
            "round {round}: the active value is the last one the hook applied"
        );
    }
    assert!(refused > 0, "the rotations never overlapped");
    kit.bg().args(["audit", "verify"]).assert().success();
}

/// Whether process `pid` holds `file` open (Linux /proc).
fn holds_open(pid: u32, file: &std::path::Path) -> bool {
    let want = std::fs::canonicalize(file).unwrap();
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|fds| {
            fds.flatten()
                .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|target| target == want))
        })
        .unwrap_or(false)
}

/// A rotation reads the manifest at open, then waits for its value on stdin;
/// meanwhile an unseal moves the vault to a new epoch. The new version is
/// sealed to the epoch in force when it is written, so the new quorum opens it.
#[test]
fn a_rotation_seals_to_the_epoch_in_force_when_it_writes() {
    use std::io::Write;
    let kit = Kit::init(&["alice", "bob"], 2);
    kit.put("vpn", "password", "one");
    let mut child = support::detached_binary()
        .arg("--vault")
        .arg(&kit.vault)
        .args(["rotate", "vpn", "--apply", "cat >/dev/null", "--json"])
        .env_remove("BREAKGLASS_VAULT")
        .env("BREAKGLASS_STATE_DIR", kit.path("state"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut opened = false;
    for _ in 0..600 {
        if holds_open(child.id(), &kit.vault) {
            opened = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(opened, "rotate never opened the vault");
    // Let it finish reading the manifest; it now waits for the value.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let v = unseal_json(&kit, &["alice", "bob"], &["vpn"], &[]);
    assert_eq!(v["new_epoch"], 2);
    child.stdin.take().unwrap().write_all(b"two").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["version"].as_u64(), v["epoch"].as_u64()),
        (Some(2), Some(2))
    );
    let v = unseal_json(&kit, &["alice", "bob"], &["vpn"], &["--no-rekey"]);
    assert_eq!(v["revealed"][0]["value"], "two");
}

/// The hook ran but the vault stayed locked by another process past the busy
/// timeout: the error says what the target now holds and how to settle it,
/// not just "retry" (a retry would be refused while the version is pending).
#[test]
fn a_rotation_that_cannot_record_its_outcome_says_what_the_target_holds() {
    let kit = Kit::init(&["alice", "bob"], 2);
    kit.put("vpn", "password", "v1");
    let hook_ran = kit.path("hook-ran");
    let rotate = support::spawnable(&kit.vault)
        .args(["rotate", "vpn", "--generate", "--apply"])
        .arg(format!(
            "cat > /dev/null; touch '{}'; sleep 1",
            hook_ran.display()
        ))
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..200 {
        if hook_ran.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    assert!(hook_ran.exists(), "the hook never ran");
    // Another process holds the write lock longer than the busy timeout.
    let conn = rusqlite::Connection::open(&kit.vault).unwrap();
    conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    let out = rotate.wait_with_output().unwrap();
    conn.execute_batch("ROLLBACK").unwrap();
    let err = support::one_line_error(&out);
    assert!(
        err.contains("the apply hook exited 0, so the target system now holds version 2's value")
            && err.contains("--abandon"),
        "{err}"
    );
    let status = kit.json(&["status"]);
    assert!(
        status["attention"].to_string().contains("--abandon"),
        "{status}"
    );
}

#[test]
fn reveal_version_shows_a_named_version_and_refuses_what_it_cannot_vouch_for() {
    let kit = Kit::init(&["alice", "bob"], 2);
    kit.put("vpn", "password", "first-value");
    std::fs::write(kit.path("v2"), "second-value").unwrap();
    kit.bg()
        .args(["rotate", "vpn", "--file"])
        .arg(kit.path("v2"))
        .assert()
        .success();
    // A superseded version of this epoch, beside the active one.
    let v = unseal_json(
        &kit,
        &["alice", "bob"],
        &["vpn"],
        &["--reveal-version", "vpn=1", "--no-rekey"],
    );
    let got: Vec<(u64, &str, &str)> = v["revealed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["version"].as_u64().unwrap(),
                r["state"].as_str().unwrap(),
                r["value"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (2, "active", "second-value"),
            (1, "superseded", "first-value")
        ]
    );

    // Bad specs and missing versions: one line, nothing written.
    let rows = kit.audit_actions().len();
    for (spec, said) in [
        ("vpn", "give NAME=N"),
        ("vpn=0", "give NAME=N"),
        ("vpn=two", "give NAME=N"),
        ("=2", "give NAME=N"),
        ("vpn=9", "has no version 9"),
        ("nope=1", "nope"),
    ] {
        let out = kit
            .unseal(&["alice", "bob"], &[])
            .args(["--reveal-version", spec, "--no-rekey"])
            .output()
            .unwrap();
        let err = one_line_error(&out);
        assert!(err.contains(said), "{spec}: {err}");
    }
    assert_eq!(kit.audit_actions().len(), rows, "{:?}", kit.audit_actions());

    // An sqlite3 edit that copies version 2's sealed value into version 1's
    // row is caught by the framing, not shown as version 1.
    let conn = rusqlite::Connection::open(&kit.vault).unwrap();
    conn.execute(
        "UPDATE secret_versions SET ciphertext = (SELECT ciphertext FROM secret_versions WHERE secret = 'vpn' AND version = 2) WHERE secret = 'vpn' AND version = 1",
        [],
    )
    .unwrap();
    drop(conn);
    let out = kit
        .unseal(&["alice", "bob"], &[])
        .args(["--reveal-version", "vpn=1", "--no-rekey"])
        .output()
        .unwrap();
    let err = one_line_error(&out);
    assert!(
        err.contains("moved between rows") && !err.contains("second-value"),
        "{err}"
    );

    // After a new epoch, a superseded version stays sealed to the dead key.
    unseal_json(&kit, &["alice", "bob"], &["vpn"], &[]);
    let out = kit
        .unseal(&["alice", "bob"], &[])
        .args(["--reveal-version", "vpn=1", "--no-rekey"])
        .output()
        .unwrap();
    let err = one_line_error(&out);
    assert!(
        err.contains("is sealed to epoch 1's key, which is gone"),
        "{err}"
    );
}
