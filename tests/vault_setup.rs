//! init, custodians, deposits, list, status and runbook through the real binary.

mod support;

use std::os::unix::fs::PermissionsExt;

use predicates::str::contains;
use support::{one_line_error, Kit};

#[test]
fn init_prints_fingerprint_and_creates_a_0600_file() {
    let kit = Kit::new(&["alice", "bob", "carol"]);
    let mut cmd = kit.bg();
    cmd.args(["init", "--threshold", "2", "--json"]);
    for n in ["alice", "bob", "carol"] {
        cmd.arg("--custodian").arg(format!("{n}={}", kit.public(n)));
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let fp = v["fingerprint"].as_str().unwrap();
    assert!(fp.starts_with("BG-") && fp.len() == 22, "{fp}");
    assert_eq!(v["threshold"], 2);
    assert_eq!(v["epoch"], 1);
    assert_eq!(
        v["custodians"],
        serde_json::json!(["alice", "bob", "carol"])
    );
    let mode = std::fs::metadata(&kit.vault).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // No staging file is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(kit.dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains("creating"))
        .collect();
    assert!(leftovers.is_empty());
    assert_eq!(kit.json(&["status"])["fingerprint"], fp);
}

#[test]
fn init_never_overwrites_an_existing_vault() {
    let kit = Kit::init(&["alice", "bob"], 2);
    let before = kit.vault_bytes();
    let out = kit
        .bg()
        .args(["init", "--threshold", "2"])
        .arg("--custodian")
        .arg(format!("alice={}", kit.public("alice")))
        .arg("--custodian")
        .arg(format!("bob={}", kit.public("bob")))
        .output()
        .unwrap();
    let err = one_line_error(&out);
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(kit.vault_bytes(), before);
}

#[test]
fn recipients_from_ssh_keys_files_and_passphrases() {
    let kit = Kit::new(&["alice"]);
    let ssh = support::ssh_ed25519_key(kit.dir.path(), "carol_ssh");
    std::fs::write(kit.path("dave.pass"), "dave's long passphrase\n").unwrap();
    kit.bg()
        .args(["init", "--threshold", "2", "--insecure-test-only-kdf"])
        .arg("--custodian")
        .arg(format!("alice=@{}", kit.path("alice.pub").display()))
        .arg("--custodian")
        .arg(format!(
            "carol={}",
            std::fs::read_to_string(ssh.with_extension("pub"))
                .unwrap()
                .trim()
        ))
        .arg("--custodian")
        .arg("dave=passphrase")
        .arg("--passphrase-file")
        .arg(format!("dave={}", kit.path("dave.pass").display()))
        .assert()
        .success();
    let list = kit.json(&["custodian", "list"]);
    let kinds: Vec<(&str, &str, u64)> = list["custodians"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap(),
                c["kind"].as_str().unwrap(),
                c["index"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("alice", "age", 1),
            ("carol", "ssh-ed25519", 2),
            ("dave", "passphrase", 3)
        ]
    );
    // The test-only KDF is flagged.
    let status = kit.json(&["status"]);
    let attention = status["attention"].to_string();
    assert!(attention.contains("test-only"), "{attention}");
}

#[test]
fn put_list_and_versions_never_show_values() {
    let kit = Kit::init(&["alice", "bob"], 2);
    kit.bg()
        .args([
            "put",
            "vpn",
            "--kind",
            "password",
            "--username",
            "bg-admin",
            "--url",
            "https://vpn.example",
        ])
        .write_stdin("s3cret-v1\n")
        .assert()
        .success()
        .stdout(contains("vpn version 1"));
    kit.put("vpn", "password", "s3cret-v2");
    kit.put("duo", "bypass-codes", "111111\n222222\n333333\n");
    let list = kit.json(&["list"]);
    assert_eq!(
        list["secrets"],
        serde_json::json!([
            {"name": "duo", "kind": "bypass-codes", "username": null, "url": null, "note": null, "version": 1, "state": "ok", "exposure": null, "endorsement": "unendorsed"},
            {"name": "vpn", "kind": "password", "username": "bg-admin", "url": "https://vpn.example", "note": null, "version": 2, "state": "ok", "exposure": null, "endorsement": "unendorsed"},
        ])
    );
    let human = kit.bg().arg("list").output().unwrap();
    let human = String::from_utf8(human.stdout).unwrap();
    assert!(human.contains("vpn") && !human.contains("s3cret"));
    // The newest version is the one revealed.
    let out = kit
        .unseal(&["alice", "bob"], &["vpn"])
        .arg("--json")
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["revealed"][0]["value"], "s3cret-v2");
    assert_eq!(kit.json(&["status"])["secrets"], 2);
}

#[test]
fn put_reads_value_from_file_and_refuses_kind_change_and_empty_values() {
    let kit = Kit::init(&["alice", "bob"], 2);
    std::fs::write(kit.path("v.txt"), "from-a-file\n").unwrap();
    kit.bg()
        .args(["put", "db", "--kind", "password", "--file"])
        .arg(kit.path("v.txt"))
        .assert()
        .success();
    let before = kit.vault_bytes();
    let out = kit
        .bg()
        .args(["put", "db", "--kind", "note"])
        .write_stdin("x")
        .output()
        .unwrap();
    let err = one_line_error(&out);
    assert!(
        err.contains("secret db") && err.contains("--kind password"),
        "{err}"
    );
    let out = kit
        .bg()
        .args(["put", "other", "--kind", "note"])
        .write_stdin("\n")
        .output()
        .unwrap();
    let err = one_line_error(&out);
    assert!(
        err.contains("secret other") && err.contains("empty"),
        "{err}"
    );
    assert_eq!(kit.vault_bytes(), before, "a refused put changes nothing");
    let out = kit
        .unseal(&["alice", "bob"], &["db"])
        .arg("--json")
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["revealed"][0]["value"], "from-a-file");
}

#[test]
fn runbook_is_readable_without_a_quorum_and_logged() {
    let kit = Kit::init(&["alice", "bob"], 2);
    kit.bg()
        .args(["runbook"])
        .assert()
        .success()
        .stdout(contains("No runbook yet"));
    kit.bg()
        .args(["runbook", "set"])
        .write_stdin("1. Call Alice\n2. Duo failmode: https://admin.example/failmode\n")
        .assert()
        .success();
    kit.bg()
        .arg("runbook")
        .assert()
        .success()
        .stdout(contains("Duo failmode: https://admin.example/failmode"));
    let v = kit.json(&["runbook"]);
    assert!(v["runbook"].as_str().unwrap().starts_with("1. Call Alice"));
    assert_eq!(kit.audit_actions(), ["init", "runbook_set"]);
}

#[test]
fn status_reports_vault_and_attention() {
    let kit = Kit::init(&["alice", "bob", "carol"], 2);
    let status = kit.json(&["status"]);
    assert_eq!(status["epoch"], 1);
    assert_eq!(status["threshold"], 2);
    assert_eq!(status["custodians"].as_array().unwrap().len(), 3);
    assert_eq!(status["secrets"], 0);
    assert!(status["attention"][0]
        .as_str()
        .unwrap()
        .contains("no secrets"));
    kit.bg().args(["status", "--check"]).assert().code(1);
    kit.put("vpn", "password", "x");
    // Every custodian proves their share works; then nothing needs attention.
    let mut drill = kit.bg();
    drill.arg("drill");
    for name in ["alice", "bob", "carol"] {
        drill.arg("--identity").arg(kit.key(name));
    }
    drill.assert().success();
    assert_eq!(kit.json(&["status"])["attention"], serde_json::json!([]));
    kit.bg()
        .args(["status", "--check"])
        .assert()
        .success()
        .stdout(contains("Nothing needs attention"));
}

#[test]
fn vault_path_comes_from_the_environment_when_no_flag_is_given() {
    let kit = Kit::init(&["alice", "bob"], 2);
    let mut cmd = assert_cmd::Command::cargo_bin("breakglass").unwrap();
    cmd.env("BREAKGLASS_VAULT", &kit.vault)
        .env("BREAKGLASS_STATE_DIR", kit.path("state"))
        .current_dir(kit.dir.path())
        .args(["status", "--json"])
        .assert()
        .success()
        .stdout(contains("\"threshold\": 2"));
}

#[test]
fn man_page_and_completions_come_from_the_cli_definition() {
    let kit = Kit::new(&[]);
    let man = kit.bg().arg("man").output().unwrap();
    assert!(man.status.success());
    let man = String::from_utf8(man.stdout).unwrap();
    assert!(
        man.contains(".TH breakglass") && man.contains("unseal"),
        "{man}"
    );
    let bash = kit.bg().args(["completions", "bash"]).output().unwrap();
    assert!(bash.status.success());
    assert!(String::from_utf8(bash.stdout)
        .unwrap()
        .contains("custodian"));
}

#[test]
fn weak_passphrases_are_refused_with_the_production_kdf() {
    // Issue 9: "a" was accepted and recovered offline from the file alone in 4.6 s.
    let kit = Kit::new(&["alice", "bob"]);
    let init = |passphrase: &str, insecure: bool| {
        let file = kit.path("dave.pass");
        let _ = std::fs::remove_file(&file);
        std::fs::write(&file, passphrase).unwrap();
        let mut cmd = kit.bg();
        cmd.args(["init", "--threshold", "2"]);
        if insecure {
            cmd.arg("--insecure-test-only-kdf");
        }
        cmd.arg("--custodian")
            .arg(format!("alice={}", kit.public("alice")))
            .args(["--custodian", "dave=passphrase", "--passphrase-file"])
            .arg(format!("dave={}", file.display()))
            .output()
            .unwrap()
    };
    for weak in [
        "a",
        "password1",
        "dave dave dave",
        "alice2026",
        "breakglass vault",
    ] {
        let err = one_line_error(&init(weak, false));
        assert!(
            err.contains("custodian dave: passphrase is too weak"),
            "{weak}: {err}"
        );
        assert!(err.contains("guesses"), "{err}");
        assert!(err.contains("5+ random words"), "{err}");
        assert!(!kit.vault.exists(), "nothing was created for {weak:?}");
    }
    // The passphrase never appears in the error.
    let err = one_line_error(&init("Zq7#canary", false));
    assert!(!err.contains("canary"), "{err}");
    // Only the explicitly named test-only KDF skips the rule.
    assert!(init("a", true).status.success());
}
