//! Attack 4 through the real binary: custodians removed by a `rekey` still hold
//! their epoch-1 envelopes in an old backup. Together they rebuild epoch 1's
//! key, and with it sign a forged checkpoint and anchor over today's file.
//! Neither may verify, and the forged deposit must never read as endorsed.

use std::path::Path;

use breakglass::audit::{self, CheckpointBody, EndorsedVersion};
use breakglass::crypto::{self, CustodianIdentity, DecryptOutcome, Share, VaultKeys};

use crate::support::{self, Kit};
use crate::vault_file::sqlite3;

/// Rebuild a past epoch's keys from a backup copy and the custodians' own key
/// files, as the removed custodians could: no breakglass command involved.
fn rebuild_epoch_keys(backup: &Path, epoch: u64, key_files: &[&Path]) -> VaultKeys {
    let conn = rusqlite::Connection::open(backup).unwrap();
    let mut shares = Vec::new();
    for key_file in key_files {
        let identity = CustodianIdentity::parse_file(&std::fs::read(key_file).unwrap())
            .unwrap()
            .remove(0);
        let mut stmt = conn
            .prepare("SELECT envelope FROM envelopes WHERE epoch = ?1")
            .unwrap();
        let envelopes: Vec<String> = stmt
            .query_map([epoch as i64], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let record = envelopes
            .iter()
            .find_map(|e| match crypto::decrypt(e.as_bytes(), &identity) {
                DecryptOutcome::Plaintext(p) => Some(p),
                _ => None,
            })
            .expect("the backup holds this custodian's envelope");
        // Share record: magic(8) vault(16) epoch(8) threshold index name_len name share.
        let name_len = usize::from(record[34]);
        shares.push(Share::from_bytes(&record[35 + name_len..]).unwrap());
    }
    let refs: Vec<&Share> = shares.iter().collect();
    crypto::combine(&refs, refs.len()).unwrap().derive_keys()
}

/// The last audit row's (seq, hash), and the vault id the latest checkpoint names.
fn head_and_vault_id(vault: &Path) -> (u64, String, String) {
    let conn = rusqlite::Connection::open(vault).unwrap();
    let (seq, hash): (i64, String) = conn
        .query_row(
            "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let details: String = conn
        .query_row(
            "SELECT details FROM audit WHERE action = 'checkpoint' ORDER BY seq DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let details: serde_json::Value = serde_json::from_str(&details).unwrap();
    let vault_id = details["body"]["vault_id"].as_str().unwrap().to_string();
    (seq as u64, hash, vault_id)
}

#[test]
fn removed_custodians_old_key_cannot_sign_new_history() {
    let kit = Kit::new(&["alice", "bob", "carol", "dave"]);
    let mut init = kit.bg();
    init.args(["init", "--threshold", "2"]);
    for n in ["alice", "bob", "carol"] {
        init.arg("--custodian")
            .arg(format!("{n}={}", kit.public(n)));
    }
    init.assert().success();
    kit.put("vpn", "password", "genuine-value");
    let backup = kit.path("backup.db");
    std::fs::copy(&kit.vault, &backup).unwrap();

    // bob and carol leave; the vault moves to epoch 2.
    kit.bg()
        .args([
            "rekey",
            "--remove-custodian",
            "bob",
            "--remove-custodian",
            "carol",
        ])
        .arg("--add-custodian")
        .arg(format!("dave={}", kit.public("dave")))
        .arg("--identity")
        .arg(kit.key("alice"))
        .arg("--identity")
        .arg(kit.key("bob"))
        .assert()
        .success();
    let old_keys = rebuild_epoch_keys(&backup, 1, &[&kit.key("bob"), &kit.key("carol")]);
    let fingerprint = kit.json(&["status"])["fingerprint"]
        .as_str()
        .unwrap()
        .to_string();

    // Anyone may deposit; the attacker then signs an anchor over it with epoch 1.
    kit.put("vpn", "password", "attacker-value");
    let (seq, hash, vault_id) = head_and_vault_id(&kit.vault);
    let signature = hex::encode(old_keys.sign(&audit::anchor_message(&fingerprint, 1, seq, &hash)));
    let anchor = format!("BGANCHOR1 {fingerprint} {seq} {hash} 1:{signature}");
    let out = kit
        .bg()
        .args(["audit", "verify", "--anchor", "-"])
        .write_stdin(anchor)
        .output()
        .unwrap();
    let err = support::one_line_error(&out);
    assert!(err.contains("an old key cannot sign new history"), "{err}");

    // And a checkpoint under epoch 1 that endorses the forged version.
    let ciphertext_sha256: String = {
        let conn = rusqlite::Connection::open(&kit.vault).unwrap();
        let ciphertext: String = conn
            .query_row(
                "SELECT ciphertext FROM secret_versions WHERE secret = 'vpn' AND version = 2",
                [],
                |r| r.get(0),
            )
            .unwrap();
        hex::encode(crypto::sha256(&[ciphertext.as_bytes()]))
    };
    // A digest checkpoint, with the endorsement table made to match it.
    let forged = EndorsedVersion {
        secret: "vpn".into(),
        version: 2,
        ciphertext_sha256,
        depositor: "mallory@laptop".into(),
    };
    let body = CheckpointBody {
        vault_id,
        epoch: 1,
        seq,
        head: hash,
        versions: None,
        settings: vec![],
        endorsed: Some(audit::EndorsedDigests {
            versions: audit::versions_digest(std::slice::from_ref(&forged)),
            settings: audit::settings_digest(&[]),
        }),
    };
    sqlite3(
        &kit.vault,
        &format!(
            "DELETE FROM endorsed_versions; INSERT INTO endorsed_versions VALUES ('vpn', 2, '{}', 'mallory@laptop');",
            forged.ciphertext_sha256
        ),
    );
    let details = serde_json::json!({
        "body": body,
        "signature": hex::encode(old_keys.sign(&audit::checkpoint_message(&body))),
    });
    sqlite3(
        &kit.vault,
        &format!(
            "INSERT INTO audit (seq, time, actor, action, subject, reason, details, prev_hash, hash) \
             VALUES ({}, '2026-11-23T00:00:00.000Z', 'mallory@laptop', 'checkpoint', '{fingerprint}', '', '{}', '', '');",
            seq + 1,
            details
        ),
    );
    support::rechain(&kit.vault);

    let err = support::one_line_error(&kit.bg().args(["audit", "verify"]).output().unwrap());
    assert!(err.contains("an old key cannot sign new history"), "{err}");
    let list = kit.json(&["list"]);
    assert_ne!(list["secrets"][0]["endorsement"], "endorsed", "{list}");

    // The real quorum's unseal still reveals, and says the value is not to be trusted.
    let out = kit
        .unseal(&["alice", "dave"], &["vpn"])
        .arg("--no-rekey")
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("secret vpn version 2 was deposited by"),
        "{stderr}"
    );
    assert!(
        stderr.contains("an old key cannot sign new history"),
        "{stderr}"
    );
}
