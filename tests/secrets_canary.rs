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
