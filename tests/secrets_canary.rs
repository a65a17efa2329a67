//! A canary secret must never appear anywhere but the unseal's stdout: not in
//! the vault file, its journal, any stderr, the audit log or read-command output.

mod support;

use support::Kit;

#[test]
fn canary_value_only_ever_leaves_through_unseal_stdout() {
    let canary = format!("CANARY-{}", hex_nonce());
    let kit = Kit::init(&["alice", "bob", "carol"], 2);
    let mut stderr_all = Vec::new();
    let mut stdout_other = Vec::new();
    let mut run = |args: &[&str], stdin: Option<&str>| {
        let mut cmd = kit.bg();
        cmd.args(args);
        if let Some(s) = stdin {
            cmd.write_stdin(s);
        }
        let out = cmd.output().unwrap();
        stderr_all.extend_from_slice(&out.stderr);
        out
    };
    for (args, stdin) in [
        (
            &["put", "vpn", "--kind", "password", "--username", "admin"][..],
            Some(canary.as_str()),
        ),
        (
            &["put", "codes", "--kind", "bypass-codes"],
            Some("123456\n654321"),
        ),
        (&["list"], None),
        (&["list", "--json"], None),
        (&["status", "--json"], None),
        (&["custodian", "list", "--json"], None),
        (&["audit", "log"], None),
        (&["audit", "log", "--json"], None),
        (&["audit", "verify", "--json"], None),
    ] {
        let out = run(args, stdin);
        assert!(out.status.success(), "{args:?}");
        stdout_other.extend_from_slice(&out.stdout);
    }
    // A failed unseal (wrong custodian count) must not leak it either.
    let out = run(
        &[
            "unseal",
            "--reason",
            "r",
            "--reveal",
            "vpn",
            "--identity",
            kit.key("alice").to_str().unwrap(),
        ],
        None,
    );
    assert!(!out.status.success());
    stdout_other.extend_from_slice(&out.stdout);

    let key_a = kit.key("alice");
    let key_b = kit.key("bob");
    let out = run(
        &[
            "unseal",
            "--reason",
            "r",
            "--reveal",
            "vpn",
            "--identity",
            key_a.to_str().unwrap(),
            "--identity",
            key_b.to_str().unwrap(),
        ],
        None,
    );
    assert!(out.status.success());
    let revealed = String::from_utf8_lossy(&out.stdout);
    assert!(revealed.contains(&canary), "the reveal itself must show it");
    let after = run(&["audit", "log", "--json"], None);
    stdout_other.extend_from_slice(&after.stdout);

    let needle = canary.as_bytes();
    assert!(
        !contains(&kit.vault_bytes(), needle),
        "canary in the vault file"
    );
    let journal = kit.vault.with_extension("db-journal");
    if journal.exists() {
        assert!(
            !contains(&std::fs::read(journal).unwrap(), needle),
            "canary in the journal"
        );
    }
    assert!(!contains(&stderr_all, needle), "canary on stderr");
    assert!(
        !contains(&stdout_other, needle),
        "canary in read-command output or the log"
    );
    // The log is also clean when read straight from SQLite.
    let conn = rusqlite::Connection::open(&kit.vault).unwrap();
    let hits: i64 = conn
        .query_row(
            "SELECT count(*) FROM audit WHERE instr(actor || action || subject || reason || details, ?1) > 0",
            [&canary],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(hits, 0);
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn hex_nonce() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{nanos:x}{:x}", std::process::id())
}

/// Every file under `dir`, recursively.
fn all_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(all_files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// The remote flow (request, approvals by an age and a passphrase custodian,
/// a remote drill) leaks neither the canary value nor the passphrase: not in
/// any code, any output but the unseal's, the vault, or any file on any of the
/// machines involved; and an approval's share travels only age-encrypted.
#[test]
fn remote_codes_and_state_hold_no_secret() {
    let canary = format!("CANARY-{}", hex_nonce());
    let passphrase = format!("canary passphrase {} orbit lantern", hex_nonce());
    let kit = Kit::new(&["alice", "bob"]);
    support::write_private(&kit.path("erin.pass"), &passphrase);
    let mut init = kit.bg();
    init.args(["init", "--threshold", "2", "--insecure-test-only-kdf"]);
    for name in ["alice", "bob"] {
        init.arg("--custodian")
            .arg(format!("{name}={}", kit.public(name)));
    }
    init.args(["--custodian", "erin=passphrase", "--passphrase-file"])
        .arg(format!("erin={}", kit.path("erin.pass").display()));
    init.assert().success();
    kit.put("vpn", "password", &canary);

    let mut outputs: Vec<u8> = Vec::new();
    let mut keep = |out: &std::process::Output| {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        outputs.extend_from_slice(&out.stdout);
        outputs.extend_from_slice(&out.stderr);
    };
    let out = kit
        .bg()
        .args(["request", "--reason", "r", "--json", "--out"])
        .arg(kit.path("req.txt"))
        .output()
        .unwrap();
    keep(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let words = support::read_back_words(&v);
    for name in ["bob", "erin"] {
        let home = kit.path(&format!("home-{name}"));
        std::fs::create_dir(&home).unwrap();
        std::fs::copy(kit.path("req.txt"), home.join("req.txt")).unwrap();
        let mut cmd = support::bg_without_vault(&home);
        cmd.args([
            "approve",
            "--request",
            "req.txt",
            "--out",
            "a.txt",
            "--words",
            &words,
        ]);
        if name == "erin" {
            std::fs::copy(kit.path("erin.pass"), home.join("pass")).unwrap();
            cmd.args(["--passphrase-file", "erin=pass"]);
        } else {
            std::fs::copy(kit.key(name), home.join("me.key")).unwrap();
            cmd.args(["--identity", "me.key"]);
        }
        keep(&cmd.output().unwrap());
        // The share inside an approval is age-encrypted.
        let code = std::fs::read_to_string(home.join("a.txt")).unwrap();
        let payload =
            breakglass::remote::code::decode(breakglass::remote::code::CodeKind::Approval, &code)
                .unwrap();
        assert!(payload.starts_with(b"age-encryption.org/v1"));
    }
    // A remote drill by erin.
    keep(
        &kit.bg()
            .args(["drill", "--remote", "--out"])
            .arg(kit.path("ch.txt"))
            .output()
            .unwrap(),
    );
    let erin = kit.path("home-erin");
    std::fs::copy(kit.path("ch.txt"), erin.join("ch.txt")).unwrap();
    keep(
        &support::bg_without_vault(&erin)
            .args([
                "drill",
                "--challenge",
                "ch.txt",
                "--passphrase-file",
                "erin=pass",
                "--out",
                "proof.txt",
            ])
            .output()
            .unwrap(),
    );
    keep(
        &kit.bg()
            .args(["drill", "--proof"])
            .arg(erin.join("proof.txt"))
            .output()
            .unwrap(),
    );
    // The unseal with both approvals is the one place the value appears.
    let out = kit
        .bg()
        .args(["unseal", "--reveal", "vpn", "--request"])
        .arg(kit.path("req.txt"))
        .arg("--approval")
        .arg(kit.path("home-bob/a.txt"))
        .arg(kit.path("home-erin/a.txt"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&canary));
    outputs.extend_from_slice(&out.stderr);

    for needle in [canary.as_bytes(), passphrase.as_bytes()] {
        assert!(!contains(&outputs, needle), "a secret in command output");
        for file in all_files(kit.dir.path()) {
            if file.ends_with("erin.pass") || file.ends_with("home-erin/pass") {
                continue;
            }
            let bytes = std::fs::read(&file).unwrap();
            assert!(!contains(&bytes, needle), "a secret in {}", file.display());
        }
    }
}
