//! See tests/hostile_file.rs. Clean edges (issue 9): each of these once panicked
//! or misled; each test drives the real binary and fails on the old behaviour.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use crate::support::{self, one_line_error, Kit};

/// A 2-of-2 vault whose alerts are appended, one JSON line each, to `alerts.jsonl`.
fn kit_with_alert_log() -> (Kit, PathBuf) {
    let kit = Kit::new(&["alice", "bob"]);
    let log = kit.path("alerts.jsonl");
    let mut init = kit.bg();
    init.args(["init", "--threshold", "2"]);
    for n in ["alice", "bob"] {
        init.arg("--custodian")
            .arg(format!("{n}={}", kit.public(n)));
    }
    init.arg("--alert-exec")
        .arg(format!(
            "cat >> '{}'; echo >> '{}'",
            log.display(),
            log.display()
        ))
        .assert()
        .success();
    (kit, log)
}

fn alert_events(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["event"].as_str().unwrap().to_string()
        })
        .collect()
}

fn verify_with_anchor(vault: &Path, anchor_file: &Path) -> Output {
    support::bg(vault)
        .args(["audit", "verify", "--anchor"])
        .arg(anchor_file)
        .output()
        .unwrap()
}

/// `status` once sliced the last drill time at byte 10, which panics when byte 10
/// falls inside a multibyte character the file's writer put there.
#[test]
fn status_shows_a_multibyte_drill_time_as_unreadable() {
    let kit = Kit::init(&["alice", "bob"], 2);
    kit.bg()
        .args(["drill", "--identity"])
        .arg(kit.key("alice"))
        .assert()
        .success();
    let conn = rusqlite::Connection::open(&kit.vault).unwrap();
    let changed = conn
        .execute(
            "UPDATE audit SET time = '2026-05-0é…' WHERE action = 'drill'",
            [],
        )
        .unwrap();
    assert_eq!(changed, 1);
    drop(conn);
    support::rechain(&kit.vault);
    let out = kit.bg().arg("status").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(out.status.success(), "{stderr}");
    let alice = stdout
        .lines()
        .find(|l| l.contains("alice"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(alice.contains("unreadable"), "{stdout}");
    // --json carries the text as it is, and does not panic either.
    let v = kit.json(&["status"]);
    assert!(v["custodians"].is_array());
}

/// `--max-age 613566757w` is 4294967299 days, which wrapped to 3 days in a u32.
#[test]
fn max_age_overflow_is_refused_not_wrapped() {
    let kit = Kit::init(&["alice", "bob"], 2);
    for (cmd, bad) in [
        ("put", "613566757w"),
        ("put", "4294967295d"),
        ("put", "99999999999d"),
        ("put", "3651d"),
        ("put", "522w"),
        ("rotate", "613566757w"),
    ] {
        if cmd == "rotate" {
            kit.put("vpn", "password", "v1");
        }
        let out = kit
            .bg()
            .args([cmd, "vpn", "--max-age", bad])
            .args(if cmd == "put" {
                &["--kind", "password"][..]
            } else {
                &[][..]
            })
            .write_stdin("v2")
            .output()
            .unwrap();
        let err = one_line_error(&out);
        assert!(err.contains(&format!("--max-age {bad}")), "{err}");
        assert!(err.contains("10 years"), "{err}");
    }
    // Nothing was stored by the refused commands: vpn is still at version 1.
    let list = kit.json(&["list"]);
    assert_eq!(list["secrets"][0]["version"], 1, "{list}");
    // The bound itself is accepted.
    let out = kit
        .bg()
        .args(["put", "ten-years", "--kind", "note", "--max-age", "3650d"])
        .write_stdin("x")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `list | head -1` once panicked on the broken pipe. Every printing command must
/// stop quietly when its reader goes away.
#[test]
fn a_closed_stdout_ends_every_command_quietly() {
    let kit = Kit::init(&["alice", "bob"], 2);
    for i in 0..5 {
        kit.put(&format!("secret-{i}"), "password", "x");
    }
    // More than a pipe buffer (64 KiB), so the write fails whatever the timing.
    kit.bg()
        .args(["runbook", "set"])
        .write_stdin("call the on-call admin\n".repeat(8 * 1024))
        .assert()
        .success();
    let commands: &[&[&str]] = &[
        &["runbook"],
        &["list"],
        &["list", "--json"],
        &["status"],
        &["status", "--json"],
        &["custodian", "list"],
        &["audit", "log"],
        &["audit", "log", "--json"],
        &["audit", "verify"],
        &["audit", "head"],
        &["audit", "export", "--format", "jsonl"],
        &["alerts", "list", "--all"],
        &["completions", "bash"],
        &["man"],
    ];
    for args in commands {
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("breakglass"))
            .arg("--vault")
            .arg(&kit.vault)
            .args(*args)
            .env_remove("BREAKGLASS_VAULT")
            .env("BREAKGLASS_STATE_DIR", kit.path("state"))
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Close the read end before the binary has had time to print anything.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stderr.contains("panicked") && !stderr.contains("error"),
            "{args:?}: {stderr}"
        );
        assert!(
            matches!(out.status.code(), Some(0) | Some(141)),
            "{args:?}: {:?} {stderr}",
            out.status
        );
    }
    // The large one cannot have finished before the pipe closed: it exits as
    // a process killed by SIGPIPE would (128 + 13), without a word.
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("breakglass"))
        .arg("--vault")
        .arg(&kit.vault)
        .arg("runbook")
        .env("BREAKGLASS_STATE_DIR", kit.path("state"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(141), "{out:?}");
    assert!(out.stderr.is_empty(), "{out:?}");
}

/// A failing apply hook's last stderr line was echoed into the error, and a hook
/// may well print the value it was given.
#[test]
fn a_failing_hook_never_echoes_its_output() {
    let (kit, log) = kit_with_alert_log();
    kit.put("vpn", "password", "old-value");
    let canary = "CANARY-hook-9c41d7";
    let hook = "v=$(cat); echo \"setting password to $v\"; echo \"ldap refused $v\" >&2; exit 1";
    let out = kit
        .bg()
        .args(["rotate", "vpn", "--apply", hook])
        .write_stdin(canary)
        .output()
        .unwrap();
    let err = one_line_error(&out);
    assert!(err.contains("apply hook exited 1"), "{err}");
    assert!(err.contains("see the hook's own log"), "{err}");
    assert!(
        !err.contains(canary) && !err.contains("ldap refused"),
        "{err}"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains(canary));
    // Nor in the file, the log, the alerts, `status` or `rotate --exposed`.
    let bytes = kit.vault_bytes();
    assert!(
        !bytes.windows(canary.len()).any(|w| w == canary.as_bytes()),
        "canary in the vault file"
    );
    let audit = kit.bg().args(["audit", "log", "--json"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&audit.stdout).contains(canary));
    let alerts = kit
        .bg()
        .args(["alerts", "list", "--all", "--json"])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&alerts.stdout).contains(canary));
    assert!(!std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains(canary));
    let status = kit.bg().arg("status").output().unwrap();
    assert!(!String::from_utf8_lossy(&status.stdout).contains(canary));
    assert!(kit.audit_actions().contains(&"rotate_failed".to_string()));
}

/// A malformed anchor was reported as "the log was altered" and fired a tamper
/// alert. It is a usage error: the anchor cannot be read, the log is not at fault.
#[test]
fn a_malformed_anchor_is_a_usage_error_without_a_tamper_alert() {
    let (kit, log) = kit_with_alert_log();
    kit.put("vpn", "password", "x");
    let head = kit.json(&["audit", "head"])["anchor"]
        .as_str()
        .unwrap()
        .to_string();
    let fields: Vec<&str> = head.split(' ').collect();
    let (fp, seq, hash) = (fields[1], fields[2], fields[3]);
    let entries_before = kit.audit_actions().len();
    let malformed = [
        "garbage".to_string(),
        String::new(),
        format!("BGANCHOR2 {fp} {seq} {hash}"),
        format!("BGANCHOR1 {fp} -3 {hash}"),
        format!("BGANCHOR1 {fp} seven {hash}"),
        format!("BGANCHOR1 {fp} {seq} not-a-hash"),
        format!("BGANCHOR1 {fp} {seq} {hash} nonsense"),
        format!("BGANCHOR1 {fp} {seq} {hash} 1:zz"),
        format!("BGANCHOR1 {fp} {seq} {hash} 1:00 extra"),
    ];
    let file = kit.path("anchor.txt");
    for text in &malformed {
        std::fs::write(&file, text).unwrap();
        let err = one_line_error(&verify_with_anchor(&kit.vault, &file));
        assert!(
            err.contains(&format!(
                "anchor {} is not a BGANCHOR1 line",
                file.display()
            )),
            "{text:?}: {err}"
        );
        assert!(!err.contains("altered"), "{text:?}: {err}");
        assert!(err.contains("breakglass audit head"), "{err}");
    }
    assert!(
        !alert_events(&log).contains(&"audit_verify_failed".to_string()),
        "{:?}",
        alert_events(&log)
    );
    assert_eq!(kit.audit_actions().len(), entries_before, "nothing logged");
    // Control: a well-formed anchor the log does not contain still alerts.
    let wrong = format!("BGANCHOR1 {fp} {seq} {}", "0".repeat(64));
    std::fs::write(&file, wrong).unwrap();
    let err = one_line_error(&verify_with_anchor(&kit.vault, &file));
    assert!(err.contains("no longer has the anchored hash"), "{err}");
    assert!(alert_events(&log).contains(&"audit_verify_failed".to_string()));
}

/// An older copy checked against a newer anchor was called "altered".
#[test]
fn an_older_copy_against_a_newer_anchor_says_older_copy() {
    let (kit, log) = kit_with_alert_log();
    kit.put("vpn", "password", "x");
    let old = kit.path("old-copy.db");
    std::fs::copy(&kit.vault, &old).unwrap();
    let old_head: u64 = kit.json(&["audit", "head"])["anchor"]
        .as_str()
        .unwrap()
        .split(' ')
        .nth(2)
        .unwrap()
        .parse()
        .unwrap();
    kit.put("db", "password", "y");
    kit.put("vpn-2", "password", "z");
    let anchor = kit.json(&["audit", "head"])["anchor"]
        .as_str()
        .unwrap()
        .to_string();
    let new_head: u64 = anchor.split(' ').nth(2).unwrap().parse().unwrap();
    assert!(new_head > old_head);
    let file = kit.path("anchor.txt");
    let mut f = std::fs::File::create(&file).unwrap();
    writeln!(f, "{anchor}").unwrap();
    let err = one_line_error(&verify_with_anchor(&old, &file));
    assert!(
        err.contains(&format!(
            "older copy: the anchor is at seq {new_head} but this copy ends at seq {old_head}; use the newest copy"
        )),
        "{err}"
    );
    assert!(!err.contains("altered"), "{err}");
    assert!(
        !alert_events(&log).contains(&"audit_verify_failed".to_string()),
        "{:?}",
        alert_events(&log)
    );
    // The newest copy passes the same anchor.
    assert!(verify_with_anchor(&kit.vault, &file).status.success());
}
