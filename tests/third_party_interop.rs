//! Interop with stock third-party tools: the `age` CLI opens exported
//! envelopes; files are created 0600.

mod support;

use std::os::unix::fs::PermissionsExt;

use support::Kit;

fn age_decrypt(identity: &std::path::Path, file: &std::path::Path) -> std::process::Output {
    std::process::Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(identity)
        .arg(file)
        .output()
        .expect("the stock age CLI is installed (.ci/run installs it)")
}

#[test]
fn stock_age_opens_an_exported_age_key_envelope() {
    let kit = Kit::init(&["alice", "bob"], 2);
    let out_file = kit.path("alice.envelope");
    kit.bg()
        .args(["custodian", "export", "alice", "--out"])
        .arg(&out_file)
        .assert()
        .success();
    let mode = std::fs::metadata(&out_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let text = std::fs::read_to_string(&out_file).unwrap();
    assert!(text.starts_with("-----BEGIN AGE ENCRYPTED FILE-----"));
    let out = age_decrypt(&kit.key("alice"), &out_file);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.starts_with(b"BGSHARE1"));
    assert!(out.stdout.windows(5).any(|w| w == b"alice"));
    // Bob's key cannot open alice's envelope.
    assert!(!age_decrypt(&kit.key("bob"), &out_file).status.success());
}

#[test]
fn stock_age_opens_an_exported_ssh_key_envelope() {
    let kit = Kit::new(&["alice"]);
    let ssh = support::ssh_ed25519_key(kit.dir.path(), "bob_ssh");
    kit.bg()
        .args(["init", "--threshold", "2", "--custodian"])
        .arg(format!("alice={}", kit.public("alice")))
        .arg("--custodian")
        .arg(format!("bob=@{}", ssh.with_extension("pub").display()))
        .assert()
        .success();
    let out_file = kit.path("bob.envelope");
    kit.bg()
        .args(["custodian", "export", "bob", "--out"])
        .arg(&out_file)
        .assert()
        .success();
    let out = age_decrypt(&ssh, &out_file);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.starts_with(b"BGSHARE1"));
}

#[test]
fn vault_file_is_0600_and_readable_by_sqlite3() {
    let kit = Kit::init(&["alice", "bob"], 2);
    let mode = std::fs::metadata(&kit.vault).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let out = std::process::Command::new("sqlite3")
        .arg("-readonly")
        .arg(&kit.vault)
        .arg("SELECT action FROM audit; PRAGMA journal_mode;")
        .output()
        .expect("the stock sqlite3 shell is installed (.ci/run installs it)");
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "init\ndelete\n");
}
