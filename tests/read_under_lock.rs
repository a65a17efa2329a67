//! Every writing command reads what it acts on inside its own write
//! transaction: a deposit racing a revealing unseal is sealed to the key in
//! force when it commits, and a quorum whose epoch moved on writes nothing.

mod support;

use std::io::Write;
use std::time::Duration;

use breakglass::crypto::{CustodianIdentity, Passphrase};
use breakglass::vault::{KdfProgress, UnsealPrompt, UnsealRequest};
use breakglass::{Access, Vault};
use support::Kit;

fn revealed(kit: &Kit, name: &str) -> String {
    let out = kit
        .unseal(&["alice", "bob"], &[name])
        .args(["--no-rekey", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["revealed"][0]["value"].as_str().unwrap().to_string()
}

/// The reproduction: `put` opens the vault, waits for its value on
/// stdin while an unseal reveals and re-keys, then seals. It must seal to the
/// new epoch's key (or refuse), never to the dead one.
#[test]
fn a_deposit_racing_a_revealing_unseal_is_never_sealed_to_a_dead_key() {
    let kit = Kit::init(&["alice", "bob"], 2);
    kit.put("vpn", "password", "v1");
    kit.put("other", "password", "o1");
    let mut put = support::spawnable(&kit.vault)
        .args(["put", "vpn", "--kind", "password"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    kit.unseal(&["alice", "bob"], &["other"]).assert().success();
    assert_eq!(kit.json(&["status"])["epoch"], 2);
    put.stdin.take().unwrap().write_all(b"NEW-VALUE-2").unwrap();
    let out = put.wait_with_output().unwrap();
    if out.status.success() {
        assert_eq!(revealed(&kit, "vpn"), "NEW-VALUE-2");
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("run the command again"), "{err}");
        assert_eq!(revealed(&kit, "vpn"), "v1");
    }
    let status = kit.json(&["status"]);
    assert!(
        !status["attention"].to_string().contains("sealed to epoch"),
        "{status}"
    );
}

/// Answers carol's passphrase, but first lets another process unseal with
/// a reveal, so the vault moves to epoch 2 after this quorum's shares were read.
struct RacingPrompt<'a> {
    kit: &'a Kit,
}
impl KdfProgress for RacingPrompt<'_> {}
impl UnsealPrompt for RacingPrompt<'_> {
    fn passphrase(&mut self, _custodian: &str, _still_needed: usize) -> Option<Passphrase> {
        self.kit
            .unseal(&["alice"], &["vpn"])
            .arg("--passphrase-file")
            .arg(format!("carol={}", self.kit.path("carol.pass").display()))
            .assert()
            .success();
        Some(Passphrase::new("carol passphrase".into()))
    }
}

/// Two quorums gathered for epoch 1; the second to write finds epoch 2 and
/// writes and reveals nothing, with a message saying why.
#[test]
fn a_quorum_whose_epoch_moved_on_writes_and_reveals_nothing() {
    let kit = Kit::new(&["alice"]);
    std::fs::write(kit.path("carol.pass"), "carol passphrase").unwrap();
    kit.bg()
        .args(["init", "--threshold", "2", "--insecure-test-only-kdf"])
        .arg("--custodian")
        .arg(format!("alice={}", kit.public("alice")))
        .arg("--custodian")
        .arg("carol=passphrase")
        .arg("--passphrase-file")
        .arg(format!("carol={}", kit.path("carol.pass").display()))
        .assert()
        .success();
    kit.put("vpn", "password", "v1");
    // In-process opens keep their pins beside the kit, never in $HOME.
    std::env::set_var("BREAKGLASS_STATE_DIR", kit.path("state"));
    let mut stale = Vault::open(&kit.vault, Access::ReadWrite).unwrap();
    let alice = CustodianIdentity::parse_file(&std::fs::read(kit.key("alice")).unwrap()).unwrap();
    let err = stale
        .unseal(
            UnsealRequest {
                reason: "second quorum".into(),
                actor: "test@host".into(),
                identities: vec![("alice".into(), alice)],
                passphrases: vec![],
                reveal: vec!["vpn".into()],
                remote: None,
                no_rekey: false,
                one_code: false,
                endorse: Default::default(),
            },
            &mut RacingPrompt { kit: &kit },
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("moved from epoch 1 to epoch 2"), "{err}");
    let actions = kit.audit_actions();
    assert_eq!(actions.iter().filter(|a| *a == "reveal").count(), 1);
    assert_eq!(actions.iter().filter(|a| *a == "new_epoch").count(), 1);
    assert_eq!(actions.last().map(String::as_str), Some("unseal_failed"));
    assert_eq!(kit.json(&["status"])["epoch"], 2);
}

/// Another vault's manifests spliced into the file while `put` waits for its
/// value: the deposit is refused, never sealed to the spliced-in key.
#[test]
fn manifests_replaced_while_a_deposit_waits_are_refused() {
    let kit = Kit::init(&["alice", "bob"], 2);
    let other = Kit::init(&["alice", "bob"], 2);
    let mut put = support::spawnable(&kit.vault)
        .args(["put", "db-admin", "--kind", "password"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let conn = rusqlite::Connection::open(&kit.vault).unwrap();
    conn.execute("ATTACH ?1 AS b", [other.vault.display().to_string()])
        .unwrap();
    conn.execute_batch(
        "DELETE FROM main.envelopes; DELETE FROM main.manifests;
         INSERT INTO main.manifests SELECT * FROM b.manifests;
         INSERT INTO main.envelopes SELECT * FROM b.envelopes; DETACH b;",
    )
    .unwrap();
    drop(conn);
    put.stdin
        .take()
        .unwrap()
        .write_all(b"CANARY-DB-ADMIN")
        .unwrap();
    let out = put.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("manifests were replaced"), "{err}");
    let rows: i64 = rusqlite::Connection::open(&kit.vault)
        .unwrap()
        .query_row(
            "SELECT count(*) FROM secret_versions WHERE secret = 'db-admin'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(rows, 0);
}

/// The stored hook the user confirmed is the only one that runs: a row
/// swapped between the question and the answer is refused.
#[test]
fn a_hook_swapped_after_it_was_confirmed_never_runs() {
    use breakglass::vault::{Charset, NewValue, Policy, RotateRequest};
    let kit = Kit::init(&["alice", "bob"], 2);
    let shown = kit.path("shown");
    let stolen = kit.path("stolen");
    kit.bg()
        .args(["put", "vpn", "--kind", "password", "--apply"])
        .arg(format!("cat > '{}'", shown.display()))
        .write_stdin("v1")
        .assert()
        .success();
    // In-process opens keep their pins beside the kit, never in $HOME.
    std::env::set_var("BREAKGLASS_STATE_DIR", kit.path("state"));
    let mut vault = Vault::open(&kit.vault, Access::ReadWrite).unwrap();
    let confirmed = vault.untrusted_hook("vpn").unwrap();
    assert!(confirmed.is_some());
    rusqlite::Connection::open(&kit.vault)
        .unwrap()
        .execute(
            "UPDATE rotation_settings SET apply_cmd = ?1 WHERE secret = 'vpn'",
            [format!("cat > '{}'", stolen.display())],
        )
        .unwrap();
    let err = vault
        .rotate(RotateRequest {
            name: "vpn".into(),
            value: NewValue::Generate {
                length: 24,
                charset: Charset::Alnum,
            },
            apply: None,
            policy: Policy::default(),
            actor: "test@host".into(),
            trust_hook: false,
            confirmed_hook: confirmed,
            credentials: None,
            confirmed_rotator: None,
            rotator: None,
        })
        .unwrap_err()
        .to_string();
    assert!(err.contains("changed after you confirmed it"), "{err}");
    assert!(!stolen.exists() && !shown.exists());
}
