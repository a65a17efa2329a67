//! Signed checkpoints and anchors through the real binary: what a writer
//! without the key can no longer do to the log unnoticed.

mod support;

use support::{one_line_error, rechain, Kit};

/// A vault with an unseal (so checkpoints exist) and one more deposit after.
fn kit_with_checkpoints() -> Kit {
    let kit = Kit::init(&["alice", "bob"], 2);
    kit.put("vpn", "password", "pw");
    kit.unseal(&["alice", "bob"], &["vpn"])
        .arg("--endorse")
        .assert()
        .success();
    kit.put("late", "note", "after the checkpoint");
    kit
}

fn verify(kit: &Kit) -> (Option<i32>, serde_json::Value) {
    let out = kit
        .bg()
        .args(["audit", "verify", "--json"])
        .output()
        .unwrap();
    (
        out.status.code(),
        serde_json::from_slice(&out.stdout).unwrap(),
    )
}

fn checkpoint_seqs(kit: &Kit) -> Vec<i64> {
    let conn = rusqlite::Connection::open(&kit.vault).unwrap();
    let mut stmt = conn
        .prepare("SELECT seq FROM audit WHERE action = 'checkpoint' ORDER BY seq")
        .unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn verify_reports_what_is_signed_and_what_follows_unsigned() {
    let kit = kit_with_checkpoints();
    let (code, v) = verify(&kit);
    assert_eq!(code, Some(0));
    let last_checkpoint = *checkpoint_seqs(&kit).last().unwrap() as u64;
    assert_eq!(v["signed_through"], last_checkpoint);
    assert_eq!(
        v["unsigned_entries"], 1,
        "the late deposit follows unsigned"
    );
    let human = kit.bg().args(["audit", "verify"]).output().unwrap();
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(
        text.contains(&format!(
            "Signed by the vault key through entry {last_checkpoint}; 1 entries follow unsigned"
        )),
        "{text}"
    );
}

#[test]
fn a_changed_byte_in_a_checkpoint_is_caught_even_after_rechaining() {
    let kit = kit_with_checkpoints();
    let seq = checkpoint_seqs(&kit)[0];
    let conn = rusqlite::Connection::open(&kit.vault).unwrap();
    conn.execute(
        "UPDATE audit SET details = replace(details, '\"epoch\":2', '\"epoch\":2 ') WHERE seq = ?1",
        [seq],
    )
    .unwrap();
    drop(conn);
    // Without re-chaining, the hash chain breaks at that row.
    assert_eq!(verify(&kit).1["first_bad_seq"], seq);
    // Re-chained: the chain holds, but the signature no longer matches what
    // it signs (here: the count of endorsed versions next to their digest).
    let conn = rusqlite::Connection::open(&kit.vault).unwrap();
    let changed = conn
        .execute(
            "UPDATE audit SET details = json_set(details, '$.body.endorsed.versions.count', 7) WHERE seq = ?1",
            [seq],
        )
        .unwrap();
    assert_eq!(changed, 1);
    drop(conn);
    rechain(&kit.vault);
    let (code, v) = verify(&kit);
    assert_eq!(code, Some(1));
    assert_eq!(v["first_bad_seq"], seq);
    let err = one_line_error(&kit.bg().args(["audit", "verify"]).output().unwrap());
    assert!(
        err.contains(&format!("audit row {seq}: checkpoint")),
        "{err}"
    );
}

#[test]
fn a_rewritten_history_under_a_checkpoint_is_caught() {
    let kit = kit_with_checkpoints();
    // Edit an old row (who deposited), and recompute the whole chain without the key.
    let conn = rusqlite::Connection::open(&kit.vault).unwrap();
    conn.execute("UPDATE audit SET actor = 'someone@else' WHERE seq = 2", [])
        .unwrap();
    drop(conn);
    rechain(&kit.vault);
    // The first signature over the rewritten rows is epoch 2's manifest, which
    // committed to the log head when the epoch began (the row before `new_epoch`).
    let (code, v) = verify(&kit);
    assert_eq!(code, Some(1));
    assert_eq!(v["first_bad_seq"], checkpoint_seqs(&kit)[0] - 1);
    assert!(
        v["problem"]
            .as_str()
            .unwrap()
            .contains("the history before it was rewritten"),
        "{v}"
    );
}

#[test]
fn a_removed_checkpoint_breaks_the_chain() {
    let kit = kit_with_checkpoints();
    let seq = checkpoint_seqs(&kit)[0];
    let conn = rusqlite::Connection::open(&kit.vault).unwrap();
    conn.execute("DELETE FROM audit WHERE seq = ?1", [seq])
        .unwrap();
    drop(conn);
    assert_eq!(verify(&kit).1["first_bad_seq"], seq);
}

#[test]
fn a_checkpoint_resigned_with_a_foreign_key_is_caught() {
    let kit = kit_with_checkpoints();
    let other = kit_with_checkpoints();
    let seq = checkpoint_seqs(&kit)[0];
    let foreign_sig: String = rusqlite::Connection::open(&other.vault)
        .unwrap()
        .query_row(
            "SELECT json_extract(details, '$.signature') FROM audit WHERE action = 'checkpoint' ORDER BY seq LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let conn = rusqlite::Connection::open(&kit.vault).unwrap();
    conn.execute(
        "UPDATE audit SET details = json_set(details, '$.signature', ?1) WHERE seq = ?2",
        rusqlite::params![foreign_sig, seq],
    )
    .unwrap();
    drop(conn);
    rechain(&kit.vault);
    let (code, v) = verify(&kit);
    assert_eq!(code, Some(1));
    assert_eq!(v["first_bad_seq"], seq);
    assert!(
        v["problem"]
            .as_str()
            .unwrap()
            .contains("not by epoch 2's vault key"),
        "{v}"
    );
}

#[test]
fn an_anchor_catches_a_truncated_log() {
    let kit = kit_with_checkpoints();
    let out = kit.bg().args(["audit", "head"]).output().unwrap();
    let anchor = String::from_utf8(out.stdout).unwrap();
    assert!(anchor.starts_with("BGANCHOR1 BG-"), "{anchor}");
    std::fs::write(kit.path("anchor.txt"), &anchor).unwrap();
    // Still intact, and still fine after the log grows.
    kit.put("more", "note", "x");
    kit.bg()
        .args(["audit", "verify", "--anchor"])
        .arg(kit.path("anchor.txt"))
        .assert()
        .success();
    // Cut the tail: the chain that remains is valid, but the anchored head is gone.
    let conn = rusqlite::Connection::open(&kit.vault).unwrap();
    let max: i64 = conn
        .query_row("SELECT max(seq) FROM audit", [], |r| r.get(0))
        .unwrap();
    conn.execute("DELETE FROM audit WHERE seq >= ?1", [max - 1])
        .unwrap();
    drop(conn);
    kit.bg().args(["audit", "verify"]).assert().success();
    let out = kit
        .bg()
        .args(["audit", "verify", "--anchor", "-"])
        .write_stdin(anchor)
        .output()
        .unwrap();
    let err = one_line_error(&out);
    assert!(
        err.contains("no longer contains the anchored head") && err.contains("truncated"),
        "{err}"
    );
}

#[test]
fn unseal_prints_the_anchor() {
    let kit = Kit::init(&["alice", "bob"], 2);
    kit.put("vpn", "password", "pw");
    let out = kit
        .unseal(&["alice", "bob"], &["vpn"])
        .arg("--json")
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let head = kit.bg().args(["audit", "head"]).output().unwrap();
    let anchor = v["anchor"].as_str().unwrap();
    assert_eq!(anchor, String::from_utf8(head.stdout).unwrap().trim());
    // The session ended on a checkpoint by the new epoch's key, which signed the head.
    let fields: Vec<&str> = anchor.split(' ').collect();
    assert_eq!(fields.len(), 5, "{anchor}");
    assert!(fields[4].starts_with("2:"), "{anchor}");
    kit.bg()
        .args(["audit", "verify", "--anchor", "-"])
        .write_stdin(anchor)
        .assert()
        .success();
    // A deposit moves the head past the signed one: the new head's anchor is unsigned.
    kit.put("later", "note", "x");
    let head = kit.json(&["audit", "head"]);
    assert_eq!(head["anchor"].as_str().unwrap().split(' ').count(), 4);
}

fn verify_anchor(kit: &Kit, anchor: &str) -> std::process::Output {
    kit.bg()
        .args(["audit", "verify", "--anchor", "-"])
        .write_stdin(anchor.to_string())
        .output()
        .unwrap()
}

#[test]
fn a_signed_anchor_that_was_altered_or_forged_is_refused() {
    let kit = Kit::init(&["alice", "bob"], 2);
    kit.put("vpn", "password", "pw");
    kit.unseal(&["alice", "bob"], &[]).assert().success();
    let anchor = kit.json(&["audit", "head"])["anchor"]
        .as_str()
        .unwrap()
        .to_string();
    let fields: Vec<&str> = anchor.split(' ').collect();
    assert_eq!(fields.len(), 5, "{anchor}");
    assert!(verify_anchor(&kit, &anchor).status.success());

    // One hex digit of the signature changed.
    let (epoch, sig) = fields[4].split_once(':').unwrap();
    let flipped = if sig.starts_with('0') { "1" } else { "0" };
    let bad_sig = format!("{} {epoch}:{flipped}{}", fields[..4].join(" "), &sig[1..]);
    let err = one_line_error(&verify_anchor(&kit, &bad_sig));
    assert!(err.contains("altered or forged"), "{err}");

    // The signature moved onto an earlier head that is really in the log.
    let conn = rusqlite::Connection::open(&kit.vault).unwrap();
    let (seq, hash): (i64, String) = conn
        .query_row("SELECT seq, hash FROM audit WHERE seq = 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    drop(conn);
    let moved = format!("BGANCHOR1 {} {seq} {hash} {}", fields[1], fields[4]);
    let err = one_line_error(&verify_anchor(&kit, &moved));
    assert!(err.contains("altered or forged"), "{err}");

    // An epoch the vault never had, and a malformed signature.
    let err = one_line_error(&verify_anchor(
        &kit,
        &format!("{} 9:{sig}", fields[..4].join(" ")),
    ));
    assert!(err.contains("epoch 9, which this vault never had"), "{err}");
    let err = one_line_error(&verify_anchor(
        &kit,
        &format!("{} nonsense", fields[..4].join(" ")),
    ));
    assert!(err.contains("malformed signature"), "{err}");

    // A signature by another vault's key, over this vault's anchor text, fails too.
    let other = Kit::init(&["alice", "bob"], 2);
    other.unseal(&["alice", "bob"], &[]).assert().success();
    let other_anchor = other.json(&["audit", "head"])["anchor"]
        .as_str()
        .unwrap()
        .to_string();
    let foreign_sig = other_anchor.split(' ').nth(4).unwrap();
    let forged = format!("{} {foreign_sig}", fields[..4].join(" "));
    let err = one_line_error(&verify_anchor(&kit, &forged));
    assert!(err.contains("altered or forged"), "{err}");
}

#[test]
fn an_export_is_checked_against_an_anchor_with_no_vault() {
    let kit = kit_with_checkpoints();
    let anchor = kit.json(&["audit", "head"])["anchor"]
        .as_str()
        .unwrap()
        .to_string();
    let export = kit.path("audit.jsonl");
    kit.bg()
        .args(["audit", "export", "--format", "jsonl", "--out"])
        .arg(&export)
        .assert()
        .success();
    let dir = tempfile::tempdir().unwrap();
    let verify = |file: &std::path::Path| {
        support::bg_without_vault(dir.path())
            .args(["audit", "verify", "--file"])
            .arg(file)
            .args(["--anchor", "-"])
            .write_stdin(anchor.clone())
            .output()
            .unwrap()
    };
    assert!(verify(&export).status.success());
    // The export with its last line cut off still chains, but misses the anchored head.
    let text = std::fs::read_to_string(&export).unwrap();
    let cut: Vec<&str> = text.lines().collect();
    let short = kit.path("short.jsonl");
    std::fs::write(&short, cut[..cut.len() - 1].join("\n")).unwrap();
    let err = one_line_error(&verify(&short));
    assert!(
        err.contains("no longer contains the anchored head"),
        "{err}"
    );
}

#[test]
fn a_vault_from_before_anchor_signatures_still_reads_read_only_and_upgrades_on_write() {
    let kit = kit_with_checkpoints();
    // As the previous release wrote it: schema version 2, no anchor_signatures table.
    let conn = rusqlite::Connection::open(&kit.vault).unwrap();
    conn.execute_batch(
        "DROP TABLE endorsed_versions; DROP TABLE endorsed_settings; DROP INDEX audit_by_action; DROP INDEX secret_versions_by_state;
         DROP TABLE anchor_signatures; DROP TABLE alert_queue; DROP TABLE alert_backoff;
         DROP TABLE rotators; DROP TABLE endorsed_rotators;
         CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, seq INTEGER NOT NULL, sink TEXT NOT NULL,
           payload TEXT NOT NULL, created TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, delivered TEXT);
         PRAGMA user_version = 2;",
    )
    .unwrap();
    drop(conn);
    let mut perms = std::fs::metadata(&kit.vault).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o400);
    std::fs::set_permissions(&kit.vault, perms.clone()).unwrap();
    kit.bg().args(["audit", "verify"]).assert().success();
    let anchor = kit.json(&["audit", "head"])["anchor"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(anchor.split(' ').count(), 4, "no signature to show");
    kit.bg().args(["list"]).assert().success();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o600);
    std::fs::set_permissions(&kit.vault, perms).unwrap();
    // A quorum session on the upgraded file signs its anchor again.
    kit.unseal(&["alice", "bob"], &[]).assert().success();
    let conn = rusqlite::Connection::open(&kit.vault).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 7);
    drop(conn);
    let anchor = kit.json(&["audit", "head"])["anchor"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(anchor.split(' ').count(), 5, "{anchor}");
}

#[test]
fn export_round_trips_through_verify_file_with_no_vault() {
    let kit = kit_with_checkpoints();
    let export = kit.path("audit.jsonl");
    kit.bg()
        .args(["audit", "export", "--format", "jsonl", "--out"])
        .arg(&export)
        .assert()
        .success();
    let text = std::fs::read_to_string(&export).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let header: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(header["fingerprint"], kit.json(&["status"])["fingerprint"]);
    let first: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
    for key in [
        "seq",
        "time",
        "actor",
        "action",
        "subject",
        "reason",
        "details",
        "prev_hash",
        "hash",
    ] {
        assert!(first.get(key).is_some(), "{key}");
    }
    // An auditor elsewhere: no vault at all.
    let elsewhere = tempfile::tempdir().unwrap();
    let out = support::bg_without_vault(elsewhere.path())
        .args(["audit", "verify", "--json", "--file"])
        .arg(&export)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["entries"], (lines.len() - 1) as u64);
    assert!(v["signed_through"].as_u64().is_some());

    // One changed line is caught and named.
    let mut changed: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    assert!(changed[2].contains("\"action\":\"put\""));
    changed[2] = changed[2].replace("\"action\":\"put\"", "\"action\":\"runbook_set\"");
    let tampered = kit.path("tampered.jsonl");
    std::fs::write(&tampered, changed.join("\n") + "\n").unwrap();
    let out = support::bg_without_vault(elsewhere.path())
        .args(["audit", "verify", "--json", "--file"])
        .arg(&tampered)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["first_bad_seq"], 2);

    // A partial export (--since) verifies from where it starts.
    let partial = kit.path("since.jsonl");
    kit.bg()
        .args(["audit", "export", "--since", "3", "--out"])
        .arg(&partial)
        .assert()
        .success();
    support::bg_without_vault(elsewhere.path())
        .args(["audit", "verify", "--file"])
        .arg(&partial)
        .assert()
        .success();
}

#[test]
fn csv_export_has_stable_columns() {
    let kit = Kit::init(&["alice", "bob"], 2);
    kit.bg()
        .args(["put", "vpn", "--kind", "password"])
        .write_stdin("pw")
        .assert()
        .success();
    let out = kit
        .bg()
        .args(["audit", "export", "--format", "csv"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap(),
        "seq,time,actor,action,subject,reason,details,prev_hash,hash"
    );
    let init = lines.next().unwrap();
    assert!(
        init.starts_with("1,") && init.contains(",init,") && init.contains("\"{\"\"custodians\"\""),
        "{init}"
    );
    assert!(lines.next().unwrap().contains(",put,vpn,"));
}

fn endorsement(kit: &Kit, name: &str) -> String {
    let list = kit.json(&["list"]);
    list["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap()["endorsement"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn deposits_after_the_last_checkpoint_are_unendorsed() {
    let kit = kit_with_checkpoints();
    assert_eq!(endorsement(&kit, "vpn"), "endorsed");
    assert_eq!(endorsement(&kit, "late"), "unendorsed");
    let out = kit.unseal(&["alice", "bob"], &["late"]).output().unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("secret late version 1 was deposited by") && stderr.contains("unendorsed"),
        "{stderr}"
    );
    // Shown, but nobody confirmed it (no terminal, no --endorse): still unendorsed.
    assert!(
        stderr.contains("Written since the last signed checkpoint"),
        "{stderr}"
    );
    assert_eq!(endorsement(&kit, "late"), "unendorsed");
    // A quorum session that endorses what it is shown signs it.
    kit.unseal(&["alice", "bob"], &[])
        .arg("--endorse")
        .assert()
        .success();
    assert_eq!(endorsement(&kit, "late"), "endorsed");
}

#[test]
fn an_endorsed_ciphertext_swapped_in_the_file_is_tampered() {
    let kit = kit_with_checkpoints();
    // A writer with no key seals their own value to the public vault recipient for
    // vpn v1 (a genuine-looking row), here by copying another version's ciphertext.
    kit.put("decoy", "password", "attacker-value");
    let conn = rusqlite::Connection::open(&kit.vault).unwrap();
    conn.execute(
        "UPDATE secret_versions SET ciphertext = (SELECT ciphertext FROM secret_versions WHERE secret = 'decoy') WHERE secret = 'vpn' AND state = 'active'",
        [],
    )
    .unwrap();
    drop(conn);
    assert_eq!(endorsement(&kit, "vpn"), "tampered");
    assert!(kit.json(&["status"])["attention"]
        .to_string()
        .contains("secret vpn version 1 does not match the ciphertext the last checkpoint signed"));
    let out = kit.unseal(&["alice", "bob"], &["vpn"]).output().unwrap();
    let err = one_line_error(&out);
    assert!(
        err.contains(
            "secret vpn: version 1 does not match the ciphertext the last checkpoint signed"
        ),
        "{err}"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("attacker-value"));
}

/// A copy of `tests/fixtures/schema4` (written by the binary before schema 5,
/// whose checkpoints list what they endorse inline) in a fresh directory.
fn schema4_vault() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/schema4");
    for file in ["vault.sqlite", "alice.key", "bob.key"] {
        std::fs::copy(fixture.join(file), dir.path().join(file)).unwrap();
    }
    let vault = dir.path().join("vault.sqlite");
    (dir, vault)
}

fn user_version(vault: &std::path::Path) -> i64 {
    rusqlite::Connection::open(vault)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap()
}

fn endorsements(vault: &std::path::Path) -> Vec<(String, String)> {
    let out = support::bg(vault)
        .args(["list", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        list["endorsement_problem"],
        serde_json::Value::Null,
        "{list}"
    );
    list["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_string(),
                s["endorsement"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// A vault whose checkpoints were signed by the old code, with their lists
/// inline: it verifies and lists read-only as it is, upgrades on the first
/// write, keeps what its last inline checkpoint endorsed (versions and the
/// stored hook) until a quorum session signs a digest checkpoint, and then
/// both kinds of checkpoint verify in one log.
#[test]
fn a_vault_with_inline_checkpoints_verifies_lists_and_upgrades() {
    let (dir, vault) = schema4_vault();
    let bg = || support::bg(&vault);
    assert_eq!(user_version(&vault), 4);
    let verify = |signed_through: u64| {
        let out = bg().args(["audit", "verify", "--json"]).output().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(out.status.code(), Some(0), "{v}");
        assert_eq!(v["signed_through"], signed_through, "{v}");
    };
    verify(8);
    let before = pairs(&[
        ("db", "endorsed"),
        ("late", "unendorsed"),
        ("vpn", "endorsed"),
    ]);
    assert_eq!(endorsements(&vault), before);
    assert_eq!(user_version(&vault), 4, "reading never upgrades");

    // The first write command upgrades the file; nothing else changes.
    bg().args(["put", "extra", "--kind", "note"])
        .write_stdin("x")
        .assert()
        .success();
    assert_eq!(user_version(&vault), 7);
    verify(8);
    let mut after = before.clone();
    after.insert(1, ("extra".into(), "unendorsed".into()));
    assert_eq!(endorsements(&vault), after);
    // db's hook was endorsed inline: it runs without --trust-hook.
    let rotated = bg()
        .args(["rotate", "db", "--json"])
        .write_stdin("db-2")
        .output()
        .unwrap();
    assert!(
        rotated.status.success(),
        "{}",
        String::from_utf8_lossy(&rotated.stderr)
    );
    let rotated: serde_json::Value = serde_json::from_slice(&rotated.stdout).unwrap();
    assert_eq!(rotated["hook_exit"], 0);

    // A quorum session signs the first digest checkpoint, carrying the
    // inline endorsements over and adding what it was told to endorse.
    bg().args(["unseal", "--reason", "after the upgrade", "--endorse"])
        .arg("--identity")
        .arg(dir.path().join("alice.key"))
        .arg("--identity")
        .arg(dir.path().join("bob.key"))
        .assert()
        .success();
    let conn = rusqlite::Connection::open(&vault).unwrap();
    let (seq, details): (i64, String) = conn
        .query_row(
            "SELECT seq, details FROM audit WHERE action = 'checkpoint' ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let details: serde_json::Value = serde_json::from_str(&details).unwrap();
    assert!(details["body"].get("versions").is_none(), "{details}");
    assert_eq!(details["body"]["endorsed"]["versions"]["count"], 4);
    assert_eq!(
        details["body"]["endorsed"]["settings"]["count"], 1,
        "db's hook"
    );
    drop(conn);
    verify(seq as u64);
    assert!(endorsements(&vault).iter().all(|(_, e)| e == "endorsed"));
    // The hook endorsement survived the change of format.
    bg().args(["rotate", "db"])
        .write_stdin("db-3")
        .assert()
        .success();
}

/// A checkpoint row stays the same size however many secrets it endorses.
#[test]
fn a_checkpoint_row_does_not_grow_with_the_vault() {
    use breakglass::vault::{Deposit, SecretKind, SecretValue};
    let kit = Kit::init(&["alice", "bob"], 2);
    let details_of_last_checkpoint = || -> (usize, serde_json::Value) {
        let details: String = rusqlite::Connection::open(&kit.vault)
            .unwrap()
            .query_row(
                "SELECT details FROM audit WHERE action = 'checkpoint' ORDER BY seq DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .unwrap();
        (details.len(), serde_json::from_str(&details).unwrap())
    };
    kit.put("vpn", "password", "pw");
    kit.unseal(&["alice", "bob"], &[])
        .arg("--endorse")
        .assert()
        .success();
    let (small, _) = details_of_last_checkpoint();
    // 299 more deposits through the library (a process each would be slow).
    std::env::set_var("BREAKGLASS_STATE_DIR", kit.path("state"));
    let mut vault = breakglass::Vault::open(&kit.vault, breakglass::Access::ReadWrite).unwrap();
    for i in 0..299 {
        vault
            .put(
                Deposit {
                    name: format!("secret-{i:03}"),
                    kind: SecretKind::Password,
                    username: None,
                    url: None,
                    note: None,
                    value: SecretValue::new(b"value".to_vec()),
                    apply: None,
                    policy: Default::default(),
                    rotator: None,
                },
                "admin@host",
            )
            .unwrap();
    }
    drop(vault);
    kit.unseal(&["alice", "bob"], &[])
        .arg("--endorse")
        .assert()
        .success();
    let (large, details) = details_of_last_checkpoint();
    assert_eq!(details["body"]["endorsed"]["versions"]["count"], 300);
    // Only integers grow (the count, the seq): a few digits.
    assert!(
        large < small + 16 && large < 1024,
        "checkpoint details: {small} bytes at 1 secret, {large} at 300"
    );
    let list = kit.json(&["list"]);
    assert_eq!(list["secrets"].as_array().unwrap().len(), 300);
    assert!(list["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["endorsement"] == "endorsed"));
}
