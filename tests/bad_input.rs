//! Bad input gets one line naming the item, a non-zero exit, and no change.

mod support;

use support::{bg, one_line_error, Kit};

fn init_cmd(kit: &Kit, threshold: &str, names: &[&str]) -> std::process::Output {
    let mut cmd = kit.bg();
    cmd.args(["init", "--threshold", threshold]);
    for n in names {
        cmd.arg("--custodian").arg(format!("{n}={}", kit.public(n)));
    }
    cmd.output().unwrap()
}

#[test]
fn threshold_rules_are_enforced() {
    let kit = Kit::new(&["alice", "bob", "carol"]);
    let err = one_line_error(&init_cmd(&kit, "1", &["alice", "bob", "carol"]));
    assert!(err.contains("not a quorum"), "{err}");
    let err = one_line_error(&init_cmd(&kit, "4", &["alice", "bob", "carol"]));
    assert!(
        err.contains("threshold 4 is larger than the 3 custodians"),
        "{err}"
    );
    let err = one_line_error(&init_cmd(&kit, "0", &["alice", "bob"]));
    assert!(err.contains("not a quorum"), "{err}");
    assert!(!kit.vault.exists(), "a refused init leaves no file");
}

#[test]
fn custodian_list_problems_are_named() {
    let kit = Kit::new(&["alice", "bob"]);
    let out = kit
        .bg()
        .args(["init", "--threshold", "2"])
        .arg("--custodian")
        .arg(format!("alice={}", kit.public("alice")))
        .arg("--custodian")
        .arg(format!("alice={}", kit.public("bob")))
        .output()
        .unwrap();
    assert!(one_line_error(&out).contains("custodian alice: named twice"));
    let out = kit
        .bg()
        .args(["init", "--threshold", "2"])
        .arg("--custodian")
        .arg(format!("alice={}", kit.public("alice")))
        .arg("--custodian")
        .arg(format!("bob={}", kit.public("alice")))
        .output()
        .unwrap();
    assert!(one_line_error(&out).contains("custodian bob: has the same key as custodian alice"));
    let out = kit
        .bg()
        .args([
            "init",
            "--threshold",
            "2",
            "--custodian",
            "alice=not-a-key",
            "--custodian",
        ])
        .arg(format!("bob={}", kit.public("bob")))
        .output()
        .unwrap();
    assert!(one_line_error(&out).contains("custodian alice:"));
    let out = kit
        .bg()
        .args([
            "init",
            "--threshold",
            "2",
            "--custodian",
            "alice=ecdsa-sha2-nistp256 AAAAE2VjZHNh",
            "--custodian",
        ])
        .arg(format!("bob={}", kit.public("bob")))
        .output()
        .unwrap();
    assert!(one_line_error(&out).contains("not supported"));
    // A passphrase custodian with no passphrase and no terminal.
    let out = kit
        .bg()
        .args([
            "init",
            "--threshold",
            "2",
            "--custodian",
            "alice=passphrase",
            "--custodian",
        ])
        .arg(format!("bob={}", kit.public("bob")))
        .output()
        .unwrap();
    assert!(one_line_error(&out).contains("custodian alice: needs a passphrase"));
    assert!(!kit.vault.exists());
}

#[test]
fn unknown_kind_is_a_usage_error() {
    let kit = Kit::init(&["alice", "bob"], 2);
    let before = kit.vault_bytes();
    let out = kit
        .bg()
        .args(["put", "x", "--kind", "ssh-key"])
        .write_stdin("v")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("password, bypass-codes, note"), "{stderr}");
    assert_eq!(kit.vault_bytes(), before);
}

#[test]
fn missing_non_vault_and_foreign_sqlite_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.db");
    let out = bg(&missing).arg("status").output().unwrap();
    let err = one_line_error(&out);
    assert!(
        err.contains("missing.db") && err.contains("no such vault"),
        "{err}"
    );
    assert!(!missing.exists(), "reading never creates a vault");

    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "just some text, not a database at all........").unwrap();
    let err = one_line_error(&bg(&text).arg("list").output().unwrap());
    assert!(
        err.contains("notes.txt") && err.contains("not a breakglass vault"),
        "{err}"
    );

    let foreign = dir.path().join("app.db");
    rusqlite::Connection::open(&foreign)
        .unwrap()
        .execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1);")
        .unwrap();
    let before = std::fs::read(&foreign).unwrap();
    for args in [
        &["status"][..],
        &["put", "x", "--kind", "note"],
        &["audit", "verify"],
    ] {
        let out = bg(&foreign).args(args).write_stdin("v").output().unwrap();
        let err = one_line_error(&out);
        assert!(
            err.contains("app.db") && err.contains("not a breakglass vault"),
            "{err}"
        );
    }
    assert_eq!(std::fs::read(&foreign).unwrap(), before);
}

#[test]
fn truncated_vault_is_named_and_not_changed() {
    let kit = Kit::init(&["alice", "bob"], 2);
    for i in 0..20 {
        kit.put(&format!("s{i}"), "note", &"x".repeat(2000));
    }
    let bytes = kit.vault_bytes();
    let truncated = kit.path("truncated.db");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let cut = std::fs::read(&truncated).unwrap();
    for args in [&["status"][..], &["list"], &["audit", "verify"]] {
        let out = bg(&truncated).args(args).output().unwrap();
        let err = one_line_error(&out);
        assert!(err.contains("truncated.db"), "{err}");
        assert!(
            err.contains("damaged or truncated") || err.contains("not a breakglass vault"),
            "{err}"
        );
    }
    let out = bg(&truncated)
        .args(["put", "y", "--kind", "note"])
        .write_stdin("v")
        .output()
        .unwrap();
    one_line_error(&out);
    assert_eq!(std::fs::read(&truncated).unwrap(), cut);
}

#[test]
fn tampered_manifest_stops_every_command() {
    let kit = Kit::init(&["alice", "bob", "carol"], 3);
    kit.put("vpn", "password", "pw");
    // Lower the threshold in the manifest body without re-signing it.
    let conn = rusqlite::Connection::open(&kit.vault).unwrap();
    conn.execute(
        "UPDATE manifests SET body = replace(body, '\"threshold\":3', '\"threshold\":2')",
        [],
    )
    .unwrap();
    drop(conn);
    for args in [&["status"][..], &["list"], &["audit", "verify"]] {
        let err = one_line_error(&kit.bg().args(args).output().unwrap());
        assert!(
            err.contains("manifest of epoch 1 fails its signature check"),
            "{err}"
        );
    }
    let out = kit.unseal(&["alice", "bob"], &["vpn"]).output().unwrap();
    assert!(one_line_error(&out).contains("signature"));
    assert!(out.stdout.is_empty());
}

#[test]
fn secret_ciphertext_moved_between_rows_is_caught_on_reveal() {
    let kit = Kit::init(&["alice", "bob"], 2);
    kit.put("vpn", "password", "vpn-value");
    kit.put("rdp", "password", "rdp-value");
    let conn = rusqlite::Connection::open(&kit.vault).unwrap();
    conn.execute(
        "UPDATE secret_versions SET ciphertext = (SELECT ciphertext FROM secret_versions WHERE secret = 'vpn') WHERE secret = 'rdp'",
        [],
    )
    .unwrap();
    drop(conn);
    let out = kit.unseal(&["alice", "bob"], &["rdp"]).output().unwrap();
    let err = one_line_error(&out);
    assert!(
        err.contains("secret rdp") && err.contains("tampered"),
        "{err}"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("vpn-value"));
}

#[test]
fn export_refuses_unknown_custodian_and_existing_file() {
    let kit = Kit::init(&["alice", "bob"], 2);
    let out = kit
        .bg()
        .args(["custodian", "export", "mallory", "--out"])
        .arg(kit.path("m.age"))
        .output()
        .unwrap();
    assert!(one_line_error(&out).contains("custodian mallory: no such custodian"));
    std::fs::write(kit.path("taken.age"), "keep me").unwrap();
    let out = kit
        .bg()
        .args(["custodian", "export", "alice", "--out"])
        .arg(kit.path("taken.age"))
        .output()
        .unwrap();
    assert!(one_line_error(&out).contains("taken.age"));
    assert_eq!(
        std::fs::read_to_string(kit.path("taken.age")).unwrap(),
        "keep me"
    );
}

#[test]
fn passphrase_file_option_must_be_name_equals_path() {
    let kit = Kit::init(&["alice", "bob"], 2);
    let out = kit
        .bg()
        .args(["unseal", "--reason", "r", "--passphrase-file", "nopath"])
        .output()
        .unwrap();
    assert!(one_line_error(&out).contains("--passphrase-file nopath: expected NAME=PATH"));
    let out = kit
        .bg()
        .args(["unseal", "--reason", "r", "--passphrase-file"])
        .arg(format!("alice={}", kit.path("pw.txt").display()))
        .output()
        .unwrap();
    assert!(one_line_error(&out).contains("pw.txt"));
    std::fs::write(kit.path("pw.txt"), "x").unwrap();
    let out = kit
        .bg()
        .args(["unseal", "--reason", "r", "--passphrase-file"])
        .arg(format!("alice={}", kit.path("pw.txt").display()))
        .output()
        .unwrap();
    assert!(one_line_error(&out).contains("custodian alice: holds a key (age), not a passphrase"));
}
