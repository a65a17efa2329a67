//! Custodians who hold only their key (an age key, an SSH key or a passphrase):
//! requests carry their envelopes across epochs, approve checks everything
//! before asking for words, forged or stale requests are refused, and remote
//! drills (or drills on a copy, merged back) count.

mod support;

use std::path::{Path, PathBuf};

use support::{bg_without_vault, one_line_error, ssh_ed25519_key, write_private, Kit};

const PASSPHRASE: &str = "orbit lantern quarry velvet ninety tundra";

/// A 3-of-5 vault: alice, bob, carol with age keys, dave with an SSH key and
/// erin with a passphrase. Each custodian has a directory holding only their key.
fn mixed_vault() -> Kit {
    let kit = Kit::new(&["alice", "bob", "carol"]);
    let dave = ssh_ed25519_key(kit.dir.path(), "dave.ssh");
    write_private(&kit.path("erin.pass"), PASSPHRASE);
    let mut init = kit.bg();
    init.args(["init", "--threshold", "3", "--insecure-test-only-kdf"]);
    for name in ["alice", "bob", "carol"] {
        init.arg("--custodian")
            .arg(format!("{name}={}", kit.public(name)));
    }
    let dave_pub = std::fs::read_to_string(dave.with_extension("ssh.pub")).unwrap();
    init.arg("--custodian")
        .arg(format!("dave={}", dave_pub.trim()))
        .args(["--custodian", "erin=passphrase", "--passphrase-file"])
        .arg(format!("erin={}", kit.path("erin.pass").display()));
    init.assert().success();
    for name in ["alice", "bob", "carol"] {
        let home = home(&kit, name);
        std::fs::create_dir(&home).unwrap();
        std::fs::copy(kit.key(name), home.join("me.key")).unwrap();
    }
    std::fs::create_dir(home(&kit, "dave")).unwrap();
    std::fs::copy(&dave, home(&kit, "dave").join("me.key")).unwrap();
    std::fs::create_dir(home(&kit, "erin")).unwrap();
    std::fs::copy(kit.path("erin.pass"), home(&kit, "erin").join("pass")).unwrap();
    kit.put("vpn", "password", "first-vpn-password");
    kit
}

fn home(kit: &Kit, name: &str) -> PathBuf {
    kit.path(&format!("home-{name}"))
}

/// `request`: the code file and its words.
fn request(kit: &Kit, file: &str, extra: &[&str]) -> (PathBuf, String) {
    let path = kit.path(file);
    let out = kit
        .bg()
        .args(["request", "--reason", "Duo outage INC-9", "--json", "--out"])
        .arg(&path)
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let words = support::read_back_words(&v);
    (path, words)
}

/// A custodian approves from their own directory with only their key.
fn approve(kit: &Kit, name: &str, request: &Path, words: &str) -> std::process::Output {
    let home = home(kit, name);
    let _ = std::fs::remove_file(home.join("approval.txt"));
    std::fs::copy(request, home.join("request.txt")).unwrap();
    let mut cmd = bg_without_vault(&home);
    cmd.args([
        "approve",
        "--request",
        "request.txt",
        "--out",
        "approval.txt",
    ])
    .args(["--words", words]);
    if name == "erin" {
        cmd.args(["--passphrase-file", "erin=pass"]);
    } else {
        cmd.args(["--identity", "me.key"]);
    }
    cmd.output().unwrap()
}

fn approval(kit: &Kit, name: &str, request: &Path, words: &str) -> PathBuf {
    let out = approve(kit, name, request, words);
    assert!(
        out.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let back = kit.path(&format!("approval-{name}.txt"));
    std::fs::copy(home(kit, name).join("approval.txt"), &back).unwrap();
    back
}

fn unseal(kit: &Kit, request: &Path, approvals: &[PathBuf]) -> serde_json::Value {
    let mut cmd = kit.bg();
    cmd.args(["unseal", "--reveal", "vpn", "--json", "--request"])
        .arg(request);
    for a in approvals {
        cmd.arg("--approval").arg(a);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The files a custodian's directory holds besides their key and state.
fn extra_files(kit: &Kit, name: &str) -> Vec<String> {
    std::fs::read_dir(home(kit, name))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| {
            !["me.key", "pass", "state", "request.txt", "approval.txt"].contains(&n.as_str())
        })
        .collect()
}

#[test]
fn two_reveals_across_an_epoch_change_need_no_reexport() {
    let kit = mixed_vault();
    let (first, words) = request(&kit, "request-1.txt", &[]);
    let approvals: Vec<PathBuf> = ["alice", "dave", "erin"]
        .iter()
        .map(|n| approval(&kit, n, &first, &words))
        .collect();
    let v = unseal(&kit, &first, &approvals);
    assert_eq!(v["revealed"][0]["value"], "first-vpn-password");
    assert_eq!(kit.json(&["status"])["epoch"], 2);

    // Epoch 2: the same custodians, the same key files, nothing re-exported.
    kit.bg()
        .args(["rotate", "vpn", "--file"])
        .arg({
            std::fs::write(kit.path("new.txt"), "second-vpn-password").unwrap();
            kit.path("new.txt")
        })
        .assert()
        .success();
    let (second, words) = request(&kit, "request-2.txt", &[]);
    let approvals: Vec<PathBuf> = ["erin", "dave", "bob"]
        .iter()
        .map(|n| approval(&kit, n, &second, &words))
        .collect();
    let v = unseal(&kit, &second, &approvals);
    assert_eq!(v["revealed"][0]["value"], "second-vpn-password");
    assert_eq!(kit.json(&["status"])["epoch"], 3);
    for name in ["alice", "bob", "dave", "erin"] {
        assert!(
            extra_files(&kit, name).is_empty(),
            "{name}: {:?}",
            extra_files(&kit, name)
        );
    }
    // No envelope was ever exported.
    assert!(!kit.audit_actions().iter().any(|a| a.contains("export")));
}

#[test]
fn a_code_for_one_custodian_is_shorter_and_approves_the_same_request() {
    let kit = mixed_vault();
    let (full, words) = request(&kit, "req.txt", &["--for", "bob", "--for", "erin"]);
    let bob_code = kit.path("req.txt.bob");
    let full_len = std::fs::read_to_string(&full).unwrap().trim().len();
    let bob_len = std::fs::read_to_string(&bob_code).unwrap().trim().len();
    assert!(bob_len < full_len, "{bob_len} < {full_len}");
    // Bob's code does not carry Alice's envelope.
    let out = approve(&kit, "alice", &bob_code, &words);
    let err = one_line_error(&out);
    assert!(err.contains("carries no envelope for alice"), "{err}");
    let approvals = vec![
        approval(&kit, "bob", &bob_code, &words),
        approval(&kit, "erin", &kit.path("req.txt.erin"), &words),
        approval(&kit, "alice", &full, &words),
    ];
    let v = unseal(&kit, &full, &approvals);
    assert_eq!(v["revealed"][0]["value"], "first-vpn-password");
    // An unknown name is refused before anything is written.
    let out = kit
        .bg()
        .args(["request", "--reason", "r", "--for", "mallory", "--out"])
        .arg(kit.path("r2.txt"))
        .output()
        .unwrap();
    assert!(one_line_error(&out).contains("mallory"));
    assert!(!kit.path("r2.txt").exists());
}

#[test]
fn approve_checks_key_and_request_before_asking_for_words() {
    let kit = mixed_vault();
    let (req, _) = request(&kit, "req.txt", &[]);
    let home = home(&kit, "bob");
    std::fs::copy(&req, home.join("request.txt")).unwrap();
    // A public key given as the identity, no words and no terminal: the key is
    // named, never the missing words.
    std::fs::copy(kit.path("bob.pub"), home.join("me.pub")).unwrap();
    let out = bg_without_vault(&home)
        .args([
            "approve",
            "--request",
            "request.txt",
            "--identity",
            "me.pub",
            "--out",
            "a.txt",
        ])
        .output()
        .unwrap();
    let err = one_line_error(&out);
    assert!(err.contains("me.pub") && !err.contains("words"), "{err}");
    // Another vault's key opens nothing in this request: named before the words.
    let stranger = Kit::new(&["zed"]);
    std::fs::copy(stranger.key("zed"), home.join("zed.key")).unwrap();
    let out = bg_without_vault(&home)
        .args([
            "approve",
            "--request",
            "request.txt",
            "--identity",
            "zed.key",
            "--out",
            "a.txt",
        ])
        .output()
        .unwrap();
    let err = one_line_error(&out);
    assert!(
        err.contains("matches no custodian") && !err.contains("words"),
        "{err}"
    );
    // A wrong passphrase: named before the words.
    write_private(&home.join("wrong.pass"), "not the passphrase at all, sorry");
    let out = bg_without_vault(&home)
        .args([
            "approve",
            "--request",
            "request.txt",
            "--passphrase-file",
            "erin=wrong.pass",
            "--out",
            "a.txt",
        ])
        .output()
        .unwrap();
    let err = one_line_error(&out);
    assert!(err.contains("custodian erin: wrong passphrase"), "{err}");
    assert!(!home.join("a.txt").exists());
}

/// Re-encode `code` with its manifest replaced by one an attacker signed with
/// their own key (same vault id and genesis key, so the same fingerprint).
fn with_forged_manifest(code: &str, edit: impl Fn(&mut breakglass::manifest::Manifest)) -> String {
    use breakglass::remote::{request::ManifestSection, ParsedRequest};
    let parsed = ParsedRequest::parse(code).unwrap();
    let mut m: breakglass::manifest::Manifest =
        serde_json::from_str(&parsed.manifest.body).unwrap();
    let attacker = breakglass::crypto::VaultSeed::generate().derive_keys();
    m.verify_key = attacker.verify_key().to_hex();
    edit(&mut m);
    let signed = breakglass::manifest::sign(m, &attacker, None);
    let row = signed.to_row();
    let section = ManifestSection {
        body: row.body,
        signatures: row.signatures,
        links: parsed.manifest.links.clone(),
    };
    ParsedRequest::new(parsed.request.clone(), section, parsed.envelopes.clone())
        .unwrap()
        .code
}

#[test]
fn a_manifest_not_chained_to_the_fingerprint_is_refused() {
    let kit = mixed_vault();
    let (req, _) = request(&kit, "req.txt", &[]);
    let code = std::fs::read_to_string(&req).unwrap();
    // The attacker re-signs the manifest under their own key (same fingerprint).
    let forged = with_forged_manifest(code.trim(), |m| m.threshold = 3);
    let forged_file = kit.path("forged.txt");
    std::fs::write(&forged_file, &forged).unwrap();
    let forged_words = breakglass::remote::ParsedRequest::parse(&forged)
        .unwrap()
        .words()
        .unwrap()
        .join(" ");
    let out = approve(&kit, "bob", &forged_file, &forged_words);
    let err = one_line_error(&out);
    assert!(
        err.contains("key chain ends at epoch 1's key") && err.contains("do not approve"),
        "{err}"
    );
    assert!(!home(&kit, "bob").join("approval.txt").exists());
    // Refused before the passphrase custodian's KDF runs: the chain, not "wrong passphrase".
    let err = one_line_error(&approve(&kit, "erin", &forged_file, &forged_words));
    assert!(
        err.contains("key chain ends at epoch 1's key") && !err.contains("passphrase"),
        "{err}"
    );
    // The genuine request still approves (the test can fail).
    let (_, words) = (req.clone(), {
        let p = breakglass::remote::ParsedRequest::parse(code.trim()).unwrap();
        p.words().unwrap().join(" ")
    });
    assert!(approve(&kit, "bob", &req, &words).status.success());
}

#[test]
fn after_approving_epoch_two_an_epoch_one_request_is_stale() {
    let kit = mixed_vault();
    let (old, old_words) = request(&kit, "old.txt", &[]);
    kit.bg()
        .args(["unseal", "--reason", "r", "--reveal", "vpn", "--identity"])
        .arg(kit.key("alice"))
        .arg("--identity")
        .arg(kit.key("bob"))
        .arg("--identity")
        .arg(kit.key("carol"))
        .assert()
        .success();
    let (new, words) = request(&kit, "new.txt", &[]);
    // The first approval with a key on a machine says to compare the fingerprint now.
    let first = approve(&kit, "carol", &new, &words);
    assert!(first.status.success());
    assert!(
        String::from_utf8_lossy(&first.stderr).contains("FIRST USE of your key on this machine")
    );
    let again = approve(&kit, "carol", &new, &words);
    assert!(again.status.success());
    assert!(!String::from_utf8_lossy(&again.stderr).contains("FIRST USE"));
    let out = approve(&kit, "carol", &old, &old_words);
    let err = one_line_error(&out);
    assert!(err.contains("stale or replayed"), "{err}");
    // A custodian who never approved epoch 2 may still approve the old one
    // (the requester then refuses it: the vault moved on).
    assert!(approve(&kit, "alice", &old, &old_words).status.success());
}

/// The custodian side of a remote drill, from their own directory.
fn answer(kit: &Kit, name: &str, challenge: &Path) -> std::process::Output {
    let home = home(kit, name);
    let _ = std::fs::remove_file(home.join("proof.txt"));
    std::fs::copy(challenge, home.join("challenge.txt")).unwrap();
    let mut cmd = bg_without_vault(&home);
    cmd.args([
        "drill",
        "--challenge",
        "challenge.txt",
        "--out",
        "proof.txt",
    ]);
    if name == "erin" {
        cmd.args(["--passphrase-file", "erin=pass"]);
    } else {
        cmd.args(["--identity", "me.key"]);
    }
    cmd.output().unwrap()
}

fn last_drill(kit: &Kit, name: &str) -> serde_json::Value {
    let status = kit.json(&["status"]);
    status["custodians"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap()["last_drill"]
        .clone()
}

#[test]
fn a_remote_drill_counts_and_a_forged_drill_row_does_not() {
    let kit = mixed_vault();
    assert!(last_drill(&kit, "dave").is_null());
    let challenge = kit.path("challenge.txt");
    kit.bg()
        .args(["drill", "--remote", "--out"])
        .arg(&challenge)
        .assert()
        .success();
    let mut proofs = Vec::new();
    for name in ["dave", "erin"] {
        let out = answer(&kit, name, &challenge);
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let back = kit.path(&format!("proof-{name}.txt"));
        std::fs::copy(home(&kit, name).join("proof.txt"), &back).unwrap();
        proofs.push(back);
    }
    let out = kit
        .bg()
        .args(["drill", "--json", "--proof"])
        .args(&proofs)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(last_drill(&kit, "dave").is_string());
    assert!(last_drill(&kit, "erin").is_string());

    // A proof edited in transit fails by name and counts for no one.
    let text = std::fs::read_to_string(&proofs[0]).unwrap();
    let mut statement = breakglass::vault::DrillProof::parse(&text).unwrap();
    statement.statement.custodian = "alice".into();
    std::fs::write(kit.path("edited.txt"), statement.code()).unwrap();
    let out = kit
        .bg()
        .args(["drill", "--proof"])
        .arg(kit.path("edited.txt"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("is not signed by alice's share"));
    // Logged under its file, not under the name it claims.
    let log = kit.json(&["audit", "log"]);
    let last = log["entries"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["action"], "drill");
    assert!(
        last["subject"].as_str().unwrap().ends_with("edited.txt"),
        "{last}"
    );
    assert_eq!(last["details"]["claimed_custodian"], "alice");
    assert!(last_drill(&kit, "alice").is_null());

    // A passing drill row for carol typed into the file with sqlite3 (and the
    // chain recomputed) does not count: it carries no proof by carol's share.
    let conn = rusqlite::Connection::open(&kit.vault).unwrap();
    conn.execute(
        "INSERT INTO audit (seq, time, actor, action, subject, reason, details, prev_hash, hash)
         SELECT seq + 1, time, actor, 'drill', 'carol', '', '{\"outcome\":\"pass\",\"epoch\":1}', hash, hash FROM audit ORDER BY seq DESC LIMIT 1",
        [],
    )
    .unwrap();
    drop(conn);
    support::rechain(&kit.vault);
    assert!(last_drill(&kit, "carol").is_null());
}

#[test]
fn a_drill_on_a_custodians_copy_counts_once_merged() {
    let kit = mixed_vault();
    let laptop = home(&kit, "bob");
    let copy = laptop.join("copy.db");
    std::fs::copy(&kit.vault, &copy).unwrap();
    bg_without_vault(&laptop)
        .args(["--vault", "copy.db", "drill", "--identity", "me.key"])
        .assert()
        .success();
    assert!(last_drill(&kit, "bob").is_null());
    kit.bg()
        .args(["audit", "merge"])
        .arg(&copy)
        .assert()
        .success();
    assert!(last_drill(&kit, "bob").is_string());
}

#[test]
fn request_code_lengths_stay_pasteable() {
    // Measured for the README: age custodians, epoch 1.
    for n in [5usize, 9, 15] {
        let names: Vec<String> = (0..n).map(|i| format!("custodian{i:02}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let kit = Kit::init(&refs, 3);
        let (full, _) = request(&kit, "req.txt", &["--for", "custodian00"]);
        let full_len = std::fs::read_to_string(&full).unwrap().trim().len();
        let one_len = std::fs::read_to_string(kit.path("req.txt.custodian00"))
            .unwrap()
            .trim()
            .len();
        println!("{n} custodians: full code {full_len} characters, --for one {one_len}");
        // Chat tools take 4,000 (SMS-like) to 40,000 characters per message.
        assert!(full_len < 1_500 * n + 3_000, "{n}: {full_len}");
        assert!(one_len < 600 * n + 2_000, "{n}: {one_len}");
    }
}

/// A request whose key chain crosses an epoch made before key links (the
/// schema-4 fixture is at epoch 2, format 2) is refused until the custodian
/// approves once with a trusted copy; from then on their pin carries the chain.
#[test]
fn an_epoch_without_a_key_link_needs_one_approval_with_a_trusted_copy() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/schema4");
    let vault = dir.path().join("vault.sqlite");
    std::fs::copy(fixture.join("vault.sqlite"), &vault).unwrap();
    let alice_home = dir.path().join("home-alice");
    std::fs::create_dir(&alice_home).unwrap();
    std::fs::copy(fixture.join("alice.key"), alice_home.join("me.key")).unwrap();
    std::fs::copy(fixture.join("bob.key"), dir.path().join("bob.key")).unwrap();
    let make_request = |file: &str| -> (PathBuf, String) {
        let path = dir.path().join(file);
        let out = support::bg(&vault)
            .args(["request", "--reason", "legacy", "--json", "--out"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let words = support::read_back_words(&v);
        std::fs::copy(&path, alice_home.join("request.txt")).unwrap();
        (path, words)
    };
    let alice_approves = |words: &str, with_copy: bool| {
        let _ = std::fs::remove_file(alice_home.join("a.txt"));
        let mut cmd = bg_without_vault(&alice_home);
        if with_copy {
            cmd.arg("--vault").arg(&vault);
        }
        cmd.args([
            "approve",
            "--request",
            "request.txt",
            "--identity",
            "me.key",
            "--out",
            "a.txt",
        ])
        .args(["--words", words])
        .output()
        .unwrap()
    };
    let (_, words) = make_request("r1.txt");
    let err = one_line_error(&alice_approves(&words, false));
    assert!(
        err.contains("epoch 2 was made by an older breakglass") && err.contains("--vault COPY"),
        "{err}"
    );
    let out = alice_approves(&words, true);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Her pin now holds epoch 2's key: no copy needed any more.
    let (_, words) = make_request("r2.txt");
    assert!(alice_approves(&words, false).status.success());
    // An epoch made now has a link: after a re-key she still needs nothing.
    support::bg(&vault)
        .args(["rekey", "--identity"])
        .arg(fixture.join("alice.key"))
        .arg("--identity")
        .arg(dir.path().join("bob.key"))
        .assert()
        .success();
    let (_, words) = make_request("r3.txt");
    let out = alice_approves(&words, false);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_envelope_swapped_in_the_file_is_named_before_the_words() {
    let kit = mixed_vault();
    // Someone with the file puts carol's envelope in bob's row.
    let conn = rusqlite::Connection::open(&kit.vault).unwrap();
    let changed = conn
        .execute(
            "UPDATE envelopes SET envelope = (SELECT envelope FROM envelopes WHERE custodian = 'carol') WHERE custodian = 'bob'",
            [],
        )
        .unwrap();
    assert_eq!(changed, 1);
    drop(conn);
    let (req, _) = request(&kit, "req.txt", &[]);
    let out = approve(&kit, "bob", &req, "wrong words on purpose");
    let err = one_line_error(&out);
    assert!(
        err.contains(
            "your key is custodian bob's, but the request's envelope for bob does not open with it"
        ),
        "{err}"
    );
    assert!(!err.contains("words"), "{err}");
}
