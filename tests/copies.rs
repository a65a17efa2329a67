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
    std::fs::write(
        &pins_file,
        pins.replace(&fingerprint, "BG-AAAA-AAAA-AAAA-AAAA"),
    )
    .unwrap();
    let err = one_line_error(&kit.bg().arg("list").output().unwrap());
    assert!(
        err.contains("pinned it as BG-AAAA-AAAA-AAAA-AAAA") && err.contains("may be forged"),
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
