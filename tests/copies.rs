//! Stale copies and `verify-copy` through the real binary.

mod support;

use support::{bg, one_line_error, Kit};

#[test]
fn an_older_copy_is_warned_about_naming_both_epochs() {
    let kit = Kit::init(&["alice", "bob"], 2);
    kit.put("vpn", "password", "pw");
    let old_copy = kit.path("usb-stick.db");
    std::fs::copy(&kit.vault, &old_copy).unwrap();
    kit.unseal(&["alice", "bob"], &["vpn"]).assert().success();
    assert_eq!(kit.json(&["status"])["epoch"], 2);
    let out = bg(&old_copy).arg("status").output().unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("STALE COPY")
            && stderr.contains("is at epoch 1")
            && stderr.contains("seen epoch 2"),
        "{stderr}"
    );
    // The current file is not warned about.
    let out = kit.bg().arg("status").output().unwrap();
    assert!(!String::from_utf8_lossy(&out.stderr).contains("STALE"));
}

#[test]
fn a_fingerprint_that_does_not_match_the_pin_is_a_hard_error() {
    let kit = Kit::init(&["alice", "bob"], 2);
    let pins_file = kit.path("state/pins.json");
    let pins = std::fs::read_to_string(&pins_file).unwrap();
    let fingerprint = kit.json(&["status"])["fingerprint"]
        .as_str()
        .unwrap()
        .to_string();
    // The vault-id pin alone (the path pin says the same as the file).
    let mut edited: serde_json::Value = serde_json::from_str(&pins).unwrap();
    for pin in edited["vaults"].as_object_mut().unwrap().values_mut() {
        pin["fingerprint"] = "BG-AAAA-AAAA-AAAA-AAAA".into();
    }
    std::fs::write(&pins_file, edited.to_string()).unwrap();
    let err = one_line_error(&kit.bg().arg("list").output().unwrap());
    assert!(
        err.contains("pinned it as BG-AAAA-AAAA-AAAA-AAAA") && err.contains("may be forged"),
        "{err}"
    );
    // The path pin: this path held another vault.
    std::fs::write(
        &pins_file,
        pins.replace(&fingerprint, "BG-AAAA-AAAA-AAAA-AAAA"),
    )
    .unwrap();
    let err = one_line_error(&kit.bg().arg("list").output().unwrap());
    assert!(
        err.contains("pinned this path to vault BG-AAAA-AAAA-AAAA-AAAA")
            && err.contains(&format!(
                "breakglass repin BG-AAAA-AAAA-AAAA-AAAA {fingerprint}"
            )),
        "{err}"
    );
}

#[test]
fn verify_copy_tells_same_prefix_diverged_and_foreign() {
    let kit = Kit::init(&["alice", "bob"], 2);
    kit.put("vpn", "password", "pw");
    let copy = kit.path("copy.db");
    std::fs::copy(&kit.vault, &copy).unwrap();
    kit.put("rdp", "password", "pw2");

    // The copy is a prefix of this vault: fine.
    let out = kit
        .bg()
        .args(["verify-copy", "--json"])
        .arg(&copy)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["same_vault"], true);
    assert_eq!(
        (
            v["this_entries"].as_u64(),
            v["other_entries"].as_u64(),
            v["common_entries"].as_u64()
        ),
        (Some(3), Some(2), Some(2))
    );
    assert_eq!(v["diverged"], false);

    // Both used separately: diverged.
    bg(&copy)
        .args(["put", "other", "--kind", "note"])
        .write_stdin("n")
        .assert()
        .success();
    let out = kit.bg().arg("verify-copy").arg(&copy).output().unwrap();
    let err = one_line_error(&out);
    assert!(err.contains("diverge after entry 2"), "{err}");

    // Another vault altogether.
    let other = Kit::init(&["alice", "bob"], 2);
    let foreign = kit.path("foreign.db");
    std::fs::copy(&other.vault, &foreign).unwrap();
    let out = kit.bg().arg("verify-copy").arg(&foreign).output().unwrap();
    let err = one_line_error(&out);
    assert!(err.contains("is a different vault"), "{err}");
}

#[test]
fn merging_two_diverged_copies_keeps_every_entry_of_both() {
    let kit = Kit::init(&["alice", "bob"], 2);
    kit.put("vpn", "password", "pw");
    let copy = kit.path("laptop-copy.db");
    std::fs::copy(&kit.vault, &copy).unwrap();
    // Both copies are used during the same outage.
    kit.put("here", "note", "a");
    bg(&copy)
        .args(["put", "there", "--kind", "note"])
        .write_stdin("b")
        .assert()
        .success();
    bg(&copy)
        .args(["runbook", "set"])
        .write_stdin("call alice")
        .assert()
        .success();
    let theirs = serde_json::from_slice::<serde_json::Value>(
        &bg(&copy)
            .args(["audit", "log", "--json"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();

    let out = kit
        .bg()
        .args(["audit", "merge", "--json"])
        .arg(&copy)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["common"].as_u64(), v["merged"].as_u64()),
        (Some(2), Some(2))
    );
    kit.bg().args(["audit", "verify"]).assert().success();
    bg(&copy).args(["audit", "verify"]).assert().success();

    let log = kit.json(&["audit", "log"]);
    let entries = log["entries"].as_array().unwrap();
    assert!(entries
        .iter()
        .any(|e| e["action"] == "put" && e["subject"] == "here"));
    for foreign in &theirs["entries"].as_array().unwrap()[2..] {
        let cited = entries.iter().any(|e| {
            e["action"] == "merged"
                && e["details"]["foreign_hash"] == foreign["hash"]
                && e["details"]["foreign_seq"] == foreign["seq"]
                && e["details"]["foreign_action"] == foreign["action"]
        });
        assert!(cited, "foreign entry {} not merged", foreign["seq"]);
    }
    // Merging again adds nothing.
    let out = kit
        .bg()
        .args(["audit", "merge", "--json"])
        .arg(&copy)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["merged"].as_u64(), v["already_merged"].as_u64()),
        (Some(0), Some(2))
    );
}

#[test]
fn merge_refuses_another_vault_or_a_broken_log() {
    let kit = Kit::init(&["alice", "bob"], 2);
    let other = Kit::init(&["alice", "bob"], 2);
    let foreign = kit.path("foreign.db");
    std::fs::copy(&other.vault, &foreign).unwrap();
    let err = one_line_error(
        &kit.bg()
            .args(["audit", "merge"])
            .arg(&foreign)
            .output()
            .unwrap(),
    );
    assert!(err.contains("different vault"), "{err}");
    let copy = kit.path("copy.db");
    std::fs::copy(&kit.vault, &copy).unwrap();
    bg(&copy)
        .args(["put", "x", "--kind", "note"])
        .write_stdin("n")
        .assert()
        .success();
    rusqlite::Connection::open(&copy)
        .unwrap()
        .execute("UPDATE audit SET actor = 'mallory' WHERE seq = 2", [])
        .unwrap();
    let before = kit.vault_bytes();
    let err = one_line_error(
        &kit.bg()
            .args(["audit", "merge"])
            .arg(&copy)
            .output()
            .unwrap(),
    );
    assert!(
        err.contains("fails verification") && err.contains("nothing merged"),
        "{err}"
    );
    assert_eq!(kit.vault_bytes(), before);
}
