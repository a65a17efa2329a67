//! Drills through the real binary: each custodian proves their share works, with
//! nothing combined; outcomes are logged and drive `status` and `status --check`.

mod support;

use support::{one_line_error, Kit};

fn drill(kit: &Kit, keys: &[&str], envelope: Option<&std::path::Path>) -> std::process::Output {
    let mut cmd = kit.bg();
    cmd.arg("drill");
    for k in keys {
        cmd.arg("--identity").arg(kit.key(k));
    }
    if let Some(e) = envelope {
        cmd.arg("--envelope").arg(e);
    }
    cmd.arg("--json").output().unwrap()
}

#[test]
fn good_envelopes_pass_and_are_logged_without_combining() {
    let kit = Kit::init(&["alice", "bob", "carol"], 2);
    kit.put("vpn", "password", "never-shown");
    let exported = kit.path("bob.age");
    kit.bg()
        .args(["custodian", "export", "bob", "--out"])
        .arg(&exported)
        .assert()
        .success();
    let out = drill(&kit, &["alice"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["results"],
        serde_json::json!([{"custodian": "alice", "passed": true, "problem": null}])
    );
    // A custodian's exported copy can be drilled too.
    let out = drill(&kit, &["bob"], Some(&exported));
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stdout).contains("never-shown"));
    let log = kit.json(&["audit", "log"]);
    let drills: Vec<&serde_json::Value> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "drill")
        .collect();
    assert_eq!(drills.len(), 2);
    assert_eq!(drills[0]["subject"], "alice");
    assert_eq!(drills[0]["details"]["outcome"], "pass");
    assert_eq!(
        drills[1]["details"]["envelope"],
        exported.display().to_string()
    );
    assert!(!kit
        .audit_actions()
        .iter()
        .any(|a| a == "unseal" || a == "reveal"));
    let status = kit.json(&["status"]);
    let custodians = status["custodians"].as_array().unwrap();
    assert!(custodians[0]["last_drill"]
        .as_str()
        .unwrap()
        .starts_with("20"));
    assert_eq!(custodians[0]["drill_overdue"], false);
    assert!(custodians[2]["last_drill"].is_null());
    assert_eq!(custodians[2]["drill_overdue"], true);
    assert!(status["attention"]
        .to_string()
        .contains("custodian carol has never drilled"));
    kit.bg().args(["status", "--check"]).assert().code(1);
}

#[test]
fn corrupted_envelope_fails_and_names_the_custodian() {
    let kit = Kit::init(&["alice", "bob"], 2);
    let exported = kit.path("alice.age");
    kit.bg()
        .args(["custodian", "export", "alice", "--out"])
        .arg(&exported)
        .assert()
        .success();
    let text = std::fs::read_to_string(&exported).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let i = lines.len() - 2;
    lines[i] = lines[i].chars().rev().collect();
    std::fs::write(&exported, lines.join("\n") + "\n").unwrap();
    let out = drill(&kit, &["alice"], Some(&exported));
    let err = one_line_error(&out);
    assert!(
        err.contains("drill failed for alice") && err.contains("corrupted"),
        "{err}"
    );
    let log = kit.json(&["audit", "log"]);
    let last = log["entries"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (last["action"].as_str(), last["subject"].as_str()),
        (Some("drill"), Some("alice"))
    );
    assert_eq!(last["details"]["outcome"], "fail");
    assert!(kit.json(&["status"])["custodians"][0]["last_drill"].is_null());
}

#[test]
fn wrong_key_fails_and_names_the_custodian() {
    let kit = Kit::init(&["alice", "bob"], 2);
    let bobs = kit.path("bob.age");
    kit.bg()
        .args(["custodian", "export", "bob", "--out"])
        .arg(&bobs)
        .assert()
        .success();
    // Alice drills with bob's envelope: her key does not open it.
    let err = one_line_error(&drill(&kit, &["alice"], Some(&bobs)));
    assert!(
        err.contains("drill failed for alice") && err.contains("not sealed to alice's key"),
        "{err}"
    );
    // A key of nobody in this vault.
    let stranger = Kit::new(&["mallory"]);
    let out = kit
        .bg()
        .args(["drill", "--identity"])
        .arg(stranger.key("mallory"))
        .output()
        .unwrap();
    let err = one_line_error(&out);
    assert!(err.contains("mallory.key matches no custodian"), "{err}");
}

#[test]
fn wrong_passphrase_fails_the_drill() {
    let kit = Kit::new(&["alice"]);
    std::fs::write(kit.path("p"), "right").unwrap();
    std::fs::write(kit.path("w"), "wrong").unwrap();
    kit.bg()
        .args([
            "init",
            "--threshold",
            "2",
            "--insecure-test-only-kdf",
            "--custodian",
        ])
        .arg(format!("alice={}", kit.public("alice")))
        .args(["--custodian", "pat=passphrase", "--passphrase-file"])
        .arg(format!("pat={}", kit.path("p").display()))
        .assert()
        .success();
    kit.bg()
        .args(["drill", "--passphrase-file"])
        .arg(format!("pat={}", kit.path("p").display()))
        .assert()
        .success();
    let out = kit
        .bg()
        .args(["drill", "--passphrase-file"])
        .arg(format!("pat={}", kit.path("w").display()))
        .output()
        .unwrap();
    assert!(one_line_error(&out).contains("drill failed for pat: wrong passphrase"));
}

/// Move a drill 100 days into the past and re-chain the log after it, as a
/// clock that ran 100 days would have. (The hash chain alone does not stop a
/// writer from doing this; signed checkpoints and anchors do.)
fn age_drills_by_100_days(kit: &Kit) {
    let conn = rusqlite::Connection::open(&kit.vault).unwrap();
    let old = (chrono::Utc::now() - chrono::Duration::days(100))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    conn.execute("UPDATE audit SET time = ?1 WHERE action = 'drill'", [&old])
        .unwrap();
    drop(conn);
    support::rechain(&kit.vault);
}

#[test]
fn drills_older_than_90_days_are_overdue() {
    let kit = Kit::init(&["alice", "bob"], 2);
    kit.put("vpn", "password", "x");
    assert!(drill(&kit, &["alice", "bob"], None).status.success());
    kit.bg().args(["status", "--check"]).assert().success();
    age_drills_by_100_days(&kit);
    kit.bg().args(["audit", "verify"]).assert().success();
    let status = kit.json(&["status"]);
    assert_eq!(status["custodians"][0]["drill_overdue"], true);
    assert!(
        status["attention"]
            .to_string()
            .contains("custodian alice last drilled 100 days ago"),
        "{status}"
    );
    kit.bg().args(["status", "--check"]).assert().code(1);
    // A fresh drill clears it.
    assert!(drill(&kit, &["alice", "bob"], None).status.success());
    kit.bg().args(["status", "--check"]).assert().success();
}

fn full_drill(kit: &Kit, keys: &[&str]) -> std::process::Output {
    let mut cmd = kit.bg();
    cmd.args(["drill", "--full", "--json"]);
    for k in keys {
        cmd.arg("--identity").arg(kit.key(k));
    }
    cmd.output().unwrap()
}

#[test]
fn a_full_drill_combines_in_memory_signs_a_checkpoint_and_reveals_nothing() {
    let kit = Kit::init(&["alice", "bob", "carol"], 2);
    kit.put("vpn", "password", "full-drill-canary");
    let epoch = kit.json(&["status"])["epoch"].clone();
    // Deposited with no checkpoint yet: unendorsed until a quorum signs.
    assert_eq!(
        kit.json(&["list"])["secrets"][0]["endorsement"],
        "unendorsed"
    );

    let out = full_drill(&kit, &["alice", "carol"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("full-drill-canary"));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], true);
    assert_eq!(report["full"]["passed"], true);
    let signed = report["full"]["signed_through"].as_u64().unwrap();
    assert!(report["anchor"].as_str().unwrap().starts_with("BGANCHOR1 "));

    // The checkpoint is the log head and verifies; the deposit is now endorsed.
    let verify = kit.json(&["audit", "verify"]);
    assert_eq!(verify["signed_through"], signed);
    assert_eq!(verify["unsigned_entries"], 0);
    // Nobody confirmed the deposit (no terminal, no --endorse): still unendorsed.
    assert_eq!(
        kit.json(&["list"])["secrets"][0]["endorsement"],
        "unendorsed"
    );
    let mut cmd = kit.bg();
    cmd.args(["drill", "--full", "--endorse"]);
    for k in ["alice", "carol"] {
        cmd.arg("--identity").arg(kit.key(k));
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success());
    let shown = String::from_utf8_lossy(&out.stderr);
    assert!(
        shown.contains("secret vpn version 1, deposited by"),
        "{shown}"
    );
    assert_eq!(kit.json(&["list"])["secrets"][0]["endorsement"], "endorsed");
    let actions = kit.audit_actions();
    assert_eq!(
        &actions[actions.len() - 4..],
        ["drill", "drill", "drill_full", "checkpoint"]
    );
    assert!(!actions.contains(&"reveal".to_string()));
    // Nothing was revealed, so the epoch stays (as after an unseal with no --reveal).
    assert_eq!(kit.json(&["status"])["epoch"], epoch);
    // The per-custodian drills count for status as usual.
    let status = kit.json(&["status"]);
    assert!(status["custodians"][0]["last_drill"].is_string());
    assert!(status["custodians"][1]["last_drill"].is_null());
}

#[test]
fn a_full_drill_below_the_threshold_fails_and_signs_nothing() {
    let kit = Kit::init(&["alice", "bob", "carol"], 2);
    kit.put("vpn", "password", "x");
    let before = kit.json(&["audit", "verify"])["signed_through"].clone();
    let out = full_drill(&kit, &["bob"]);
    assert_eq!(out.status.code(), Some(1));
    let err = one_line_error(&out);
    assert!(
        err.contains("full drill failed: only 1 of the 2 shares a full drill needs passed"),
        "{err}"
    );
    let actions = kit.audit_actions();
    assert_eq!(&actions[actions.len() - 2..], ["drill", "drill_full"]);
    assert!(!actions.contains(&"checkpoint".to_string()));
    assert_eq!(kit.json(&["audit", "verify"])["signed_through"], before);
    // Bob's own share still passed and counts as his drill.
    assert!(kit.json(&["status"])["custodians"][1]["last_drill"].is_string());
}

#[test]
fn a_full_drill_with_a_bad_share_names_it_and_still_combines_the_good_ones() {
    let kit = Kit::init(&["alice", "bob", "carol"], 2);
    kit.put("vpn", "password", "x");
    // Carol's vault envelope is replaced by bob's: her key cannot open it.
    let conn = rusqlite::Connection::open(&kit.vault).unwrap();
    conn.execute(
        "UPDATE envelopes SET envelope = (SELECT envelope FROM envelopes WHERE custodian = 'bob') WHERE custodian = 'carol'",
        [],
    )
    .unwrap();
    drop(conn);
    let out = full_drill(&kit, &["alice", "bob", "carol"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "carol's failure fails the drill"
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["results"][2]["passed"], false);
    assert_eq!(report["full"]["passed"], true, "alice and bob still make K");
    assert!(one_line_error(&out).contains("drill failed for carol"));
    assert!(kit.audit_actions().contains(&"checkpoint".to_string()));
}

#[test]
fn a_full_drill_refuses_an_exported_envelope() {
    let kit = Kit::init(&["alice", "bob"], 2);
    let out = kit
        .bg()
        .args(["drill", "--full", "--envelope"])
        .arg(kit.path("x.age"))
        .arg("--identity")
        .arg(kit.key("alice"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--full"));
}

#[test]
fn one_custodian_given_twice_does_not_make_a_full_drill_quorum() {
    let kit = Kit::init(&["alice", "bob"], 2);
    let out = full_drill(&kit, &["alice", "alice"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(one_line_error(&out).contains("only 1 of the 2 shares"));
    let kit = Kit::new(&["alice"]);
    let pass = kit.path("p");
    std::fs::write(&pass, "pat passphrase 1").unwrap();
    kit.bg()
        .args([
            "init",
            "--threshold",
            "2",
            "--insecure-test-only-kdf",
            "--custodian",
        ])
        .arg(format!("alice={}", kit.public("alice")))
        .args(["--custodian", "pat=passphrase", "--passphrase-file"])
        .arg(format!("pat={}", pass.display()))
        .assert()
        .success();
    let out = kit
        .bg()
        .args(["drill", "--full", "--passphrase-file"])
        .arg(format!("pat={}", pass.display()))
        .arg("--passphrase-file")
        .arg(format!("pat={}", pass.display()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(one_line_error(&out).contains("only 1 of the 2 shares"));
}
