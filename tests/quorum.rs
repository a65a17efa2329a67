//! Local quorum unseal through the real binary: subsets, key kinds, and every
//! share-level rejection.

mod support;

use support::{one_line_error, subsets, Kit};

const NAMES: [&str; 5] = ["alice", "bob", "carol", "dave", "erin"];

fn revealed_value(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["revealed"][0]["value"].as_str().unwrap().to_string()
}

#[test]
fn every_3_subset_of_3_of_5_unseals_and_every_2_subset_fails() {
    let kit = Kit::init(&NAMES, 3);
    kit.put("vpn", "password", "the-vpn-password");
    for (i, subset) in subsets(5, 3).into_iter().enumerate() {
        let chosen: Vec<&str> = subset.iter().map(|&i| NAMES[i]).collect();
        let out = kit
            .unseal(&chosen, &["vpn"])
            .arg("--json")
            .output()
            .unwrap();
        assert_eq!(revealed_value(&out), "the-vpn-password", "{chosen:?}");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["custodians"], serde_json::json!(chosen));
        // Each reveal ends its epoch; the same keys open the next one.
        assert_eq!(v["epoch"], i + 1);
        assert_eq!(v["new_epoch"], i + 2);
    }
    for subset in subsets(5, 2) {
        let chosen: Vec<&str> = subset.iter().map(|&i| NAMES[i]).collect();
        let out = kit.unseal(&chosen, &["vpn"]).output().unwrap();
        let err = one_line_error(&out);
        assert!(
            err.contains("2 of 3 shares gathered; 1 more missing"),
            "{chosen:?}: {err}"
        );
        assert!(!String::from_utf8_lossy(&out.stdout).contains("the-vpn-password"));
    }
}

#[test]
fn unseal_is_logged_with_reason_requester_and_custodians() {
    let kit = Kit::init(&NAMES, 3);
    kit.put("vpn", "password", "pw");
    kit.bg()
        .args(["unseal", "--reason", "INC-42 Duo down", "--reveal", "vpn"])
        .arg("--identity")
        .arg(kit.key("bob"))
        .arg("--identity")
        .arg(kit.key("dave"))
        .arg("--identity")
        .arg(kit.key("erin"))
        .assert()
        .success();
    let log = kit.json(&["audit", "log"]);
    let entries = log["entries"].as_array().unwrap();
    let unseal = entries.iter().find(|e| e["action"] == "unseal").unwrap();
    assert_eq!(unseal["reason"], "INC-42 Duo down");
    assert_eq!(
        unseal["details"]["custodians"],
        serde_json::json!(["bob", "dave", "erin"])
    );
    assert!(unseal["details"]["requester"]
        .as_str()
        .unwrap()
        .contains('@'));
    let reveal = entries.iter().find(|e| e["action"] == "reveal").unwrap();
    assert_eq!(reveal["subject"], "vpn");
    assert_eq!(reveal["reason"], "INC-42 Duo down");
    assert!(unseal["seq"].as_u64() < reveal["seq"].as_u64());
}

#[test]
fn passphrase_and_ssh_custodians_unseal_together() {
    let kit = Kit::new(&["alice"]);
    let ssh = support::ssh_ed25519_key(kit.dir.path(), "bob_ssh");
    std::fs::write(kit.path("carol.pass"), "carol passphrase").unwrap();
    std::fs::write(kit.path("wrong.pass"), "not carol's").unwrap();
    kit.bg()
        .args(["init", "--threshold", "2", "--insecure-test-only-kdf"])
        .arg("--custodian")
        .arg(format!("alice={}", kit.public("alice")))
        .arg("--custodian")
        .arg(format!("bob=@{}", ssh.with_extension("pub").display()))
        .arg("--custodian")
        .arg("carol=passphrase")
        .arg("--passphrase-file")
        .arg(format!("carol={}", kit.path("carol.pass").display()))
        .assert()
        .success();
    kit.put("vpn", "password", "pw-ssh-pass");
    let out = kit
        .bg()
        .args([
            "unseal",
            "--reason",
            "r",
            "--reveal",
            "vpn",
            "--json",
            "--identity",
        ])
        .arg(&ssh)
        .arg("--passphrase-file")
        .arg(format!("carol={}", kit.path("carol.pass").display()))
        .output()
        .unwrap();
    assert_eq!(revealed_value(&out), "pw-ssh-pass");

    // A wrong passphrase is named and refused.
    let out = kit
        .bg()
        .args(["unseal", "--reason", "r", "--reveal", "vpn", "--identity"])
        .arg(&ssh)
        .arg("--passphrase-file")
        .arg(format!("carol={}", kit.path("wrong.pass").display()))
        .output()
        .unwrap();
    let err = one_line_error(&out);
    assert!(err.contains("custodian carol: wrong passphrase"), "{err}");
    assert!(out.stdout.is_empty());

    // With no terminal, a missing passphrase custodian is never waited for.
    let out = kit
        .bg()
        .args(["unseal", "--reason", "r", "--reveal", "vpn", "--identity"])
        .arg(&ssh)
        .output()
        .unwrap();
    let err = one_line_error(&out);
    assert!(
        err.contains("1 of 2 shares gathered; 1 more missing"),
        "{err}"
    );
}

#[test]
fn duplicate_share_is_refused_by_name() {
    let kit = Kit::init(&NAMES, 3);
    kit.put("vpn", "password", "pw");
    let out = kit
        .unseal(&["alice", "alice", "bob"], &["vpn"])
        .output()
        .unwrap();
    let err = one_line_error(&out);
    assert!(err.contains("custodian alice: share given twice"), "{err}");
    // Two copies of the same key under different file names are the same share.
    std::fs::copy(kit.key("bob"), kit.path("bob-copy.key")).unwrap();
    let out = kit
        .unseal(&["alice", "bob"], &["vpn"])
        .arg("--identity")
        .arg(kit.path("bob-copy.key"))
        .output()
        .unwrap();
    assert!(one_line_error(&out).contains("custodian bob: share given twice"));
}

#[test]
fn identity_of_no_custodian_is_named() {
    let kit = Kit::init(&NAMES, 3);
    let stranger = Kit::new(&["mallory"]);
    let out = kit
        .unseal(&["alice", "bob"], &[])
        .arg("--identity")
        .arg(stranger.key("mallory"))
        .output()
        .unwrap();
    let err = one_line_error(&out);
    assert!(
        err.contains("mallory.key") && err.contains("matches no custodian"),
        "{err}"
    );
    // Not a key file at all.
    std::fs::write(kit.path("junk.key"), "hello").unwrap();
    let out = kit
        .unseal(&[], &[])
        .arg("--identity")
        .arg(kit.path("junk.key"))
        .output()
        .unwrap();
    assert!(one_line_error(&out).contains("junk.key"));
}

#[test]
fn unknown_secret_is_named_before_any_share_is_used() {
    let kit = Kit::init(&NAMES, 3);
    kit.put("vpn", "password", "pw");
    let before = kit.vault_bytes();
    let out = kit
        .unseal(&["alice", "bob", "carol"], &["vpn", "nope"])
        .output()
        .unwrap();
    let err = one_line_error(&out);
    assert!(err.contains("secret nope: no such secret"), "{err}");
    assert!(out.stdout.is_empty());
    assert_eq!(kit.vault_bytes(), before);
}

fn set_envelope(kit: &Kit, custodian: &str, envelope: &str) {
    let conn = rusqlite::Connection::open(&kit.vault).unwrap();
    let n = conn
        .execute(
            "UPDATE envelopes SET envelope = ?1 WHERE custodian = ?2",
            rusqlite::params![envelope, custodian],
        )
        .unwrap();
    assert_eq!(n, 1);
}

#[test]
fn envelope_swapped_from_another_vault_is_named_and_skipped() {
    let kit = Kit::init(&NAMES, 3);
    kit.put("vpn", "password", "pw-real");
    // Another vault for the same alice key: its envelope decrypts with alice's key.
    let other = support::bg(&kit.path("other.db"))
        .args(["init", "--threshold", "2"])
        .arg("--custodian")
        .arg(format!("alice={}", kit.public("alice")))
        .arg("--custodian")
        .arg(format!("bob={}", kit.public("bob")))
        .output()
        .unwrap();
    assert!(other.status.success());
    let foreign: String = rusqlite::Connection::open(kit.path("other.db"))
        .unwrap()
        .query_row(
            "SELECT envelope FROM envelopes WHERE custodian = 'alice'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    set_envelope(&kit, "alice", &foreign);

    // Enough good shares remain: alice is named, skipped, and the unseal succeeds.
    let out = kit
        .unseal(&["alice", "bob", "carol", "dave"], &["vpn"])
        .args(["--json", "--no-rekey"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("custodian alice: share belongs to another vault"),
        "{stderr}"
    );
    assert_eq!(revealed_value(&out), "pw-real");

    // Not enough: it fails, naming the rejected custodian.
    let out = kit
        .unseal(&["alice", "bob", "carol"], &["vpn"])
        .output()
        .unwrap();
    let err = one_line_error(&out);
    assert!(
        err.contains("2 of 3 shares gathered") && err.contains("rejected custodian alice:"),
        "{err}"
    );
    assert!(
        kit.audit_actions()
            .iter()
            .filter(|a| *a == "share_rejected")
            .count()
            >= 2
    );
}

#[test]
fn corrupted_envelope_is_named_and_skipped() {
    let kit = Kit::init(&NAMES, 3);
    kit.put("vpn", "password", "pw-real");
    let conn = rusqlite::Connection::open(&kit.vault).unwrap();
    let envelope: String = conn
        .query_row(
            "SELECT envelope FROM envelopes WHERE custodian = 'bob'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    drop(conn);
    // Flip one base64 character in the armored payload.
    let mut lines: Vec<String> = envelope.lines().map(String::from).collect();
    let i = lines.len() - 2;
    let flipped: String = lines[i]
        .chars()
        .enumerate()
        .map(|(j, c)| {
            if j == 3 {
                if c == 'A' {
                    'B'
                } else {
                    'A'
                }
            } else {
                c
            }
        })
        .collect();
    lines[i] = flipped;
    set_envelope(&kit, "bob", &(lines.join("\n") + "\n"));

    let out = kit
        .unseal(&["alice", "bob", "carol", "dave"], &["vpn"])
        .args(["--json", "--no-rekey"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("custodian bob:") && stderr.contains("not used"),
        "{stderr}"
    );
    assert_eq!(revealed_value(&out), "pw-real");

    let out = kit
        .unseal(&["alice", "bob", "carol"], &["vpn"])
        .output()
        .unwrap();
    assert!(one_line_error(&out).contains("rejected custodian bob:"));
}

#[test]
fn share_failing_its_commitment_is_rejected() {
    // Re-encrypt a share with one byte changed, to the custodian's real key: it
    // decrypts fine but fails its commitment.
    let kit = Kit::init(&NAMES, 3);
    kit.put("vpn", "password", "pw-real");
    let conn = rusqlite::Connection::open(&kit.vault).unwrap();
    let envelope: String = conn
        .query_row(
            "SELECT envelope FROM envelopes WHERE custodian = 'carol'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    drop(conn);
    let opened = std::process::Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(kit.key("carol"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(envelope.as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    assert!(opened.status.success());
    let mut plain = opened.stdout;
    let last = plain.len() - 1;
    plain[last] ^= 0x01;
    std::fs::write(kit.path("plain.bin"), &plain).unwrap();
    let sealed = std::process::Command::new("age")
        .args(["-a", "-r", &kit.public("carol")])
        .arg(kit.path("plain.bin"))
        .output()
        .unwrap();
    assert!(sealed.status.success());
    set_envelope(&kit, "carol", &String::from_utf8(sealed.stdout).unwrap());

    let out = kit
        .unseal(&["alice", "bob", "carol"], &["vpn"])
        .output()
        .unwrap();
    let err = one_line_error(&out);
    assert!(
        err.contains("rejected custodian carol: share fails its commitment"),
        "{err}"
    );
    let out = kit
        .unseal(&["alice", "bob", "carol", "erin"], &["vpn"])
        .args(["--json", "--no-rekey"])
        .output()
        .unwrap();
    assert_eq!(revealed_value(&out), "pw-real");
}

#[test]
fn failed_unseal_is_logged() {
    let kit = Kit::init(&NAMES, 3);
    let out = kit.unseal(&["alice"], &[]).output().unwrap();
    one_line_error(&out);
    let log = kit.json(&["audit", "log"]);
    let last = log["entries"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["action"], "unseal_failed");
    assert_eq!(last["reason"], "test outage");
    assert!(last["details"]["error"]
        .as_str()
        .unwrap()
        .contains("1 of 3"));
}
