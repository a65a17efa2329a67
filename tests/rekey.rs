//! `rekey` through the real binary: threshold and custodian changes, after which
//! only the new set opens the vault.

mod support;

use support::{one_line_error, Kit};

fn rekey(kit: &Kit, quorum: &[&str], args: &[&str]) -> std::process::Output {
    let mut cmd = kit.bg();
    cmd.arg("rekey").args(args);
    for q in quorum {
        cmd.arg("--identity").arg(kit.key(q));
    }
    cmd.output().unwrap()
}

fn value_with(kit: &Kit, who: &[&str]) -> Result<String, String> {
    let out = kit
        .unseal(who, &["vpn"])
        .args(["--json", "--no-rekey"])
        .output()
        .unwrap();
    if out.status.success() {
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        Ok(v["revealed"][0]["value"].as_str().unwrap().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).to_string())
    }
}

#[test]
fn threshold_change_add_and_remove_then_only_the_new_set_opens() {
    let kit = Kit::new(&["alice", "bob", "carol", "dave"]);
    let mut init = kit.bg();
    init.args(["init", "--threshold", "2"]);
    for n in ["alice", "bob", "carol"] {
        init.arg("--custodian")
            .arg(format!("{n}={}", kit.public(n)));
    }
    init.assert().success();
    kit.put("vpn", "password", "rekeyed-secret");

    let out = rekey(
        &kit,
        &["alice", "bob"],
        &[
            "--threshold",
            "3",
            "--remove-custodian",
            "carol",
            "--add-custodian",
            &format!("dave={}", kit.public("dave")),
            "--json",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (
            v["from_epoch"].as_u64(),
            v["epoch"].as_u64(),
            v["threshold"].as_u64()
        ),
        (Some(1), Some(2), Some(3))
    );
    assert_eq!(v["custodians"], serde_json::json!(["alice", "bob", "dave"]));
    let status = kit.json(&["status"]);
    assert_eq!(
        (status["epoch"].as_u64(), status["threshold"].as_u64()),
        (Some(2), Some(3))
    );

    // Only the new set, at the new threshold.
    assert_eq!(
        value_with(&kit, &["alice", "bob", "dave"]).unwrap(),
        "rekeyed-secret"
    );
    let err = value_with(&kit, &["alice", "bob"]).unwrap_err();
    assert!(err.contains("2 of 3 shares gathered"), "{err}");
    let err = value_with(&kit, &["alice", "bob", "carol"]).unwrap_err();
    assert!(
        err.contains("carol.key") && err.contains("matches no custodian"),
        "{err}"
    );
    kit.bg().args(["audit", "verify"]).assert().success();
    assert!(kit.audit_actions().contains(&"new_epoch".to_string()));
}

#[test]
fn removing_below_the_threshold_is_refused_and_changes_nothing() {
    let kit = Kit::init(&["alice", "bob", "carol"], 2);
    kit.put("vpn", "password", "x");
    let before = kit.vault_bytes();
    let err = one_line_error(&rekey(
        &kit,
        &["alice", "bob"],
        &["--remove-custodian", "bob", "--remove-custodian", "carol"],
    ));
    assert!(
        err.contains("would leave 1 custodians, fewer than the threshold 2"),
        "{err}"
    );
    let err = one_line_error(&rekey(
        &kit,
        &["alice", "bob"],
        &["--remove-custodian", "zed"],
    ));
    assert!(err.contains("custodian zed: is not a custodian"), "{err}");
    let err = one_line_error(&rekey(&kit, &["alice", "bob"], &["--threshold", "1"]));
    assert!(err.contains("not a quorum"), "{err}");
    assert_eq!(kit.vault_bytes(), before);
}

#[test]
fn rekey_needs_a_quorum_of_the_current_epoch() {
    let kit = Kit::init(&["alice", "bob", "carol"], 2);
    kit.put("vpn", "password", "x");
    let err = one_line_error(&rekey(&kit, &["alice"], &["--threshold", "3"]));
    assert!(err.contains("1 of 2 shares gathered"), "{err}");
    assert_eq!(kit.json(&["status"])["epoch"], 1);
}

#[test]
fn an_added_passphrase_custodian_can_open_the_next_epoch() {
    let kit = Kit::new(&["alice", "bob"]);
    kit.bg()
        .args([
            "init",
            "--threshold",
            "2",
            "--insecure-test-only-kdf",
            "--custodian",
        ])
        .arg(format!("alice={}", kit.public("alice")))
        .arg("--custodian")
        .arg(format!("bob={}", kit.public("bob")))
        .assert()
        .success();
    kit.put("vpn", "password", "with-pat");
    std::fs::write(kit.path("pat.pass"), "pat's passphrase").unwrap();
    let out = rekey(
        &kit,
        &["alice", "bob"],
        &[
            "--add-custodian",
            "pat=passphrase",
            "--passphrase-file",
            &format!("pat={}", kit.path("pat.pass").display()),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = kit
        .bg()
        .args([
            "unseal",
            "--reason",
            "r",
            "--reveal",
            "vpn",
            "--json",
            "--no-rekey",
            "--identity",
        ])
        .arg(kit.key("alice"))
        .arg("--passphrase-file")
        .arg(format!("pat={}", kit.path("pat.pass").display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["revealed"][0]["value"], "with-pat");
}

#[test]
fn an_added_passphrase_custodian_needs_a_strong_passphrase() {
    // A production-KDF vault (age custodians only, so no Argon2id runs here).
    let kit = Kit::init(&["alice", "bob"], 2);
    kit.put("vpn", "password", "x");
    let before = kit.vault_bytes();
    std::fs::write(kit.path("pat.pass"), "pat's passphrase").unwrap();
    let err = one_line_error(&rekey(
        &kit,
        &["alice", "bob"],
        &[
            "--reason",
            "add pat",
            "--add-custodian",
            "pat=passphrase",
            "--passphrase-file",
            &format!("pat={}", kit.path("pat.pass").display()),
        ],
    ));
    assert!(
        err.contains("custodian pat: passphrase is too weak"),
        "{err}"
    );
    assert!(err.contains("5+ random words"), "{err}");
    assert_eq!(kit.vault_bytes(), before, "nothing changed");
    assert_eq!(kit.json(&["status"])["epoch"], 1);
}

/// A version the old key cannot open (here: its ciphertext swapped for one of
/// another vault) cannot be re-sealed. It no longer blocks the re-key, and so
/// every later unseal: it is left as it is, named in the `new_epoch` row and
/// by `status`.
#[test]
fn an_unopenable_version_never_blocks_the_rekey_and_is_named() {
    let kit = Kit::init(&["alice", "bob"], 2);
    kit.put("vpn", "password", "v1");
    kit.put("db", "password", "d1");
    let other = Kit::init(&["alice", "bob"], 2);
    other.put("vpn", "password", "foreign");
    let foreign: String = rusqlite::Connection::open(&other.vault)
        .unwrap()
        .query_row(
            "SELECT ciphertext FROM secret_versions WHERE secret = 'vpn'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    rusqlite::Connection::open(&kit.vault)
        .unwrap()
        .execute(
            "UPDATE secret_versions SET ciphertext = ?1 WHERE secret = 'vpn'",
            [&foreign],
        )
        .unwrap();
    kit.unseal(&["alice", "bob"], &["db"]).assert().success();
    let status = kit.json(&["status"]);
    assert_eq!(status["epoch"], 2, "{status}");
    assert!(
        status["attention"]
            .to_string()
            .contains("secret vpn version 1 is sealed to epoch 1, not the current epoch 2"),
        "{status}"
    );
    let log = kit.json(&["audit", "log"]);
    let new_epoch = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "new_epoch")
        .unwrap()
        .clone();
    assert_eq!(new_epoch["details"]["not_resealed"][0]["secret"], "vpn");
    // The rest of the vault moved on and opens with the new epoch's shares.
    let out = kit
        .unseal(&["alice", "bob"], &["db"])
        .args(["--no-rekey", "--json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["revealed"][0]["value"], "d1");
}
