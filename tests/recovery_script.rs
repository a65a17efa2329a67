//! The independent recovery script (recovery/recover.py: Python's standard
//! library and the stock `age` CLI, no code shared with this crate) against
//! vaults the real binary made: every quorum recovers every secret with the
//! value the binary reveals, smaller sets fail, tampering is named.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::Kit;

fn on_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// The system Python (Debian's python3-argon2 installs for it), else `python3`.
fn python() -> &'static str {
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

fn tools_present(tools: &[&str]) -> bool {
    let missing: Vec<&&str> = tools
        .iter()
        .filter(|t| {
            Command::new("sh")
                .args(["-c", &format!("command -v {t}")])
                .output()
                .map_or(true, |o| !o.status.success())
        })
        .collect();
    assert!(
        missing.is_empty() || !on_ci(),
        "CI=true but {missing:?} missing: .ci/run installs them"
    );
    if !missing.is_empty() {
        eprintln!("SKIPPED: {missing:?} not installed");
    }
    missing.is_empty()
}

fn recover(vault: &Path, identities: &[PathBuf], extra: &[&str], secret: &str) -> Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("recovery/recover.py");
    let mut cmd = Command::new(python());
    cmd.arg(script).arg("--vault").arg(vault);
    for identity in identities {
        cmd.arg("--identity").arg(identity);
    }
    cmd.args(extra).args(["--secret", secret]);
    cmd.output().unwrap()
}

/// The one `error:` line of a failed run (and never a traceback).
fn script_error(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("Traceback"), "{stderr}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    errors[0].to_string()
}

/// A copy of the kit's vault named `name`, edited with `sql` (as with the
/// sqlite3 shell): the original stays for the next attack.
fn edited_copy(kit: &Kit, name: &str, sql: &str) -> PathBuf {
    let copy = kit.path(name);
    std::fs::copy(&kit.vault, &copy).unwrap();
    rusqlite::Connection::open(&copy)
        .unwrap()
        .execute_batch(sql)
        .unwrap();
    copy
}

/// A 3-of-5 vault of three age, one ssh-ed25519 and one ssh-rsa custodian,
/// holding three secrets, moved to epoch 2 by an unseal; with the identity
/// files in custodian order and each secret's value as the binary reveals it.
struct Vault35 {
    kit: Kit,
    identities: Vec<PathBuf>,
    secrets: Vec<(String, String)>,
}

fn vault_3_of_5() -> Vault35 {
    let kit = Kit::new(&["a", "b", "c"]);
    let ed = support::ssh_ed25519_key(kit.dir.path(), "d_ed25519");
    let rsa = kit.path("e_rsa");
    assert!(Command::new("ssh-keygen")
        .args(["-q", "-t", "rsa", "-b", "2048", "-N", "", "-f"])
        .arg(&rsa)
        .status()
        .unwrap()
        .success());
    let mut init = kit.bg();
    init.args(["init", "--threshold", "3"]);
    for name in ["a", "b", "c"] {
        init.arg("--custodian")
            .arg(format!("{name}={}", kit.public(name)));
    }
    init.arg("--custodian")
        .arg(format!("d=@{}.pub", ed.display()))
        .arg("--custodian")
        .arg(format!("e=@{}.pub", rsa.display()));
    init.assert().success();
    for (name, kind, value) in [
        ("vpn", "password", "correct horse battery staple"),
        ("duo", "bypass-codes", "123456\n234567\n345678"),
        (
            "runbook-url",
            "note",
            "Ünïcødé ✓ https://fw.example/failmode?open=1\n\n",
        ),
    ] {
        let file = kit.path(&format!("{name}.value"));
        std::fs::write(&file, value).unwrap();
        kit.bg()
            .args(["put", name, "--kind", kind, "--file"])
            .arg(&file)
            .assert()
            .success();
    }
    let identities = vec![kit.key("a"), kit.key("b"), kit.key("c"), ed, rsa];
    // An unseal moves the vault to epoch 2: recovery reads the newest epoch.
    let unseal = |extra: &[&str]| {
        let mut cmd = kit.bg();
        cmd.args(["unseal", "--reason", "drill", "--json"]);
        for identity in &identities[..3] {
            cmd.arg("--identity").arg(identity);
        }
        for name in ["vpn", "duo", "runbook-url"] {
            cmd.args(["--reveal", name]);
        }
        let out = cmd.args(extra).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    unseal(&[]);
    let revealed = unseal(&["--no-rekey"]);
    assert_eq!(revealed["epoch"], 2);
    let secrets = revealed["revealed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_string(),
                r["value"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    Vault35 {
        kit,
        identities,
        secrets,
    }
}

#[test]
fn every_three_custodians_recover_every_secret_and_no_two_do() {
    if !tools_present(&[python(), "age", "age-keygen", "ssh-keygen"]) {
        return;
    }
    let v = vault_3_of_5();
    assert_eq!(v.secrets.len(), 3);
    for subset in support::subsets(5, 3) {
        let keys: Vec<PathBuf> = subset.iter().map(|&i| v.identities[i].clone()).collect();
        for (name, value) in &v.secrets {
            let out = recover(&v.kit.vault, &keys, &[], name);
            assert!(
                out.status.success(),
                "{subset:?} {name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(
                String::from_utf8(out.stdout).unwrap(),
                *value,
                "{subset:?} {name}"
            );
        }
    }
    for subset in support::subsets(5, 2) {
        let keys: Vec<PathBuf> = subset.iter().map(|&i| v.identities[i].clone()).collect();
        let out = recover(&v.kit.vault, &keys, &[], "vpn");
        let error = script_error(&out);
        assert!(
            error.contains("2 good share(s) of the 3 needed") && error.contains("epoch 2"),
            "{subset:?}: {error}"
        );
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn tampered_envelopes_and_manifests_are_named() {
    if !tools_present(&[python(), "age", "age-keygen", "ssh-keygen", "openssl"]) {
        return;
    }
    let v = vault_3_of_5();
    let vault = &v.kit.vault;
    let three = &v.identities[..3];
    // Signatures verify with openssl on the untouched file.
    let out = recover(vault, three, &["--check-with", "openssl"], "vpn");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let conn = rusqlite::Connection::open(vault).unwrap();
    // a's envelope row now holds b's envelope (an edit with sqlite3): a's key
    // cannot open it, and the custodian is named (found from the key's
    // public half), not just the key file.
    conn.execute(
        "UPDATE envelopes SET envelope = (SELECT envelope FROM envelopes WHERE custodian = 'b' AND epoch = 2) WHERE custodian = 'a' AND epoch = 2",
        [],
    )
    .unwrap();
    let keys = vec![
        v.identities[0].clone(),
        v.identities[2].clone(),
        v.identities[3].clone(),
    ];
    let out = recover(vault, &keys, &[], "vpn");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let error = script_error(&out);
    assert!(
        stderr.contains("custodian a: their envelope does not open with their key"),
        "{stderr}"
    );
    assert!(error.contains("2 good share(s) of the 3 needed"), "{error}");
    // A damaged envelope (one base64 character changed) of an SSH custodian
    // is named the same way.
    let damaged: String = conn
        .query_row(
            "SELECT envelope FROM envelopes WHERE custodian = 'd' AND epoch = 2",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let mut lines: Vec<String> = damaged.lines().map(String::from).collect();
    let flipped = if lines[2].starts_with('A') { "B" } else { "A" };
    lines[2].replace_range(0..1, flipped);
    conn.execute(
        "UPDATE envelopes SET envelope = ?1 WHERE custodian = 'd' AND epoch = 2",
        [lines.join("\n") + "\n"],
    )
    .unwrap();
    let keys = vec![
        v.identities[1].clone(),
        v.identities[2].clone(),
        v.identities[3].clone(),
    ];
    let out = recover(vault, &keys, &[], "vpn");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    script_error(&out);
    assert!(
        stderr.contains("custodian d: their envelope does not open with their key"),
        "{stderr}"
    );
    conn.execute(
        "UPDATE envelopes SET envelope = ?1 WHERE custodian = 'd' AND epoch = 2",
        [&damaged],
    )
    .unwrap();
    // Three untouched custodians still recover.
    let rest = vec![
        v.identities[2].clone(),
        v.identities[3].clone(),
        v.identities[4].clone(),
    ];
    assert!(recover(vault, &rest, &[], "vpn").status.success());
    // A commitment edited in the manifest: the share is named as tampered;
    // --check-with openssl also catches the edited manifest itself.
    conn.execute(
        "UPDATE manifests SET body = replace(body, (SELECT json_extract(body, '$.custodians[2].commitment') FROM manifests WHERE epoch = 2), '00' || substr((SELECT json_extract(body, '$.custodians[2].commitment') FROM manifests WHERE epoch = 2), 3)) WHERE epoch = 2",
        [],
    )
    .unwrap();
    drop(conn);
    let out = recover(vault, &rest, &[], "vpn");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    script_error(&out);
    assert!(
        stderr.contains("custodian c: the share does not match its commitment (tampered)"),
        "{stderr}"
    );
    let out = recover(vault, &rest, &["--check-with", "openssl"], "vpn");
    let error = script_error(&out);
    assert!(
        error.contains("manifest of epoch 2: its own signature does not verify"),
        "{error}"
    );
}

#[test]
fn bad_input_gets_one_line_and_no_value() {
    if !tools_present(&[python(), "age", "age-keygen", "ssh-keygen"]) {
        return;
    }
    let v = vault_3_of_5();
    let three = &v.identities[..3];
    let error = script_error(&recover(&v.kit.vault, three, &[], "nope"));
    assert!(error.contains("secret nope: not in this vault"), "{error}");
    // A key of another vault opens nothing and is named.
    let other = Kit::new(&["x"]);
    let keys = vec![
        v.identities[0].clone(),
        v.identities[1].clone(),
        other.key("x"),
    ];
    let out = recover(&v.kit.vault, &keys, &[], "vpn");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    script_error(&out);
    assert!(
        stderr.contains(&format!(
            "identity {} opens no envelope",
            other.key("x").display()
        )),
        "{stderr}"
    );
    // Not a vault, and no file at all.
    let junk = v.kit.path("junk.db");
    std::fs::write(&junk, "not sqlite").unwrap();
    assert!(script_error(&recover(&junk, three, &[], "vpn")).contains("is not a breakglass vault"));
    let missing = v.kit.path("missing.db");
    assert!(script_error(&recover(&missing, three, &[], "vpn")).contains("no such file"));
    assert!(script_error(&recover(
        &v.kit.vault,
        three,
        &["--passphrase-file", "a"],
        "vpn"
    ))
    .contains("give NAME=PATH"));
}

#[test]
fn a_passphrase_custodian_recovers_with_either_argon2() {
    if !tools_present(&[python(), "age", "age-keygen", "argon2"]) {
        return;
    }
    let has_module = Command::new(python())
        .args(["-c", "import argon2.low_level"])
        .status()
        .unwrap()
        .success();
    assert!(
        has_module || !on_ci(),
        "CI=true but python3-argon2 is missing"
    );
    // The argon2 command cannot take a salt with a zero byte: make vaults
    // until the salt has none (15 in 16 do).
    let (kit, salt) = loop {
        let kit = Kit::new(&["a"]);
        support::write_private(&kit.path("p.pass"), "correct horse battery staple\n");
        kit.bg()
            .args([
                "init",
                "--threshold",
                "2",
                "--insecure-test-only-kdf",
                "--custodian",
            ])
            .arg(format!("a={}", kit.public("a")))
            .args(["--custodian", "pat=passphrase", "--passphrase-file"])
            .arg(format!("pat={}", kit.path("p.pass").display()))
            .assert()
            .success();
        kit.put("vpn", "password", "from-a-passphrase");
        let conn = rusqlite::Connection::open(&kit.vault).unwrap();
        let salt: String = conn
            .query_row(
                "SELECT json_extract(body, '$.custodians[1].kdf.salt') FROM manifests",
                [],
                |r| r.get(0),
            )
            .unwrap();
        drop(conn);
        if !hex::decode(&salt).unwrap().contains(&0) {
            break (kit, salt);
        }
    };
    assert_eq!(salt.len(), 32);
    let pass = format!("pat={}", kit.path("p.pass").display());
    let mut ways = vec!["cli"];
    if has_module {
        ways.push("python");
    }
    for way in ways {
        let out = recover(
            &kit.vault,
            &[kit.key("a")],
            &["--passphrase-file", &pass, "--argon2", way],
            "vpn",
        );
        assert!(
            out.status.success(),
            "{way}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.stdout, b"from-a-passphrase", "{way}");
    }
    // A wrong passphrase is named, and nothing is printed.
    support::write_private(&kit.path("wrong.pass"), "wrong horse\n");
    let wrong = format!("pat={}", kit.path("wrong.pass").display());
    let out = recover(
        &kit.vault,
        &[kit.key("a")],
        &["--passphrase-file", &wrong],
        "vpn",
    );
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    script_error(&out);
    assert!(
        stderr.contains("passphrase of pat does not open their envelope"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
    // Neither passphrase reaches an error line.
    assert!(!stderr.contains("wrong horse") && !stderr.contains("correct horse"));
    // Nor the argv or environment of a tool the script runs, nor any derived
    // key: wrappers first on PATH log both, then run the real tool.
    let wrappers = kit.path("wrappers");
    std::fs::create_dir(&wrappers).unwrap();
    let log = kit.path("tools.log");
    for tool in ["age", "age-keygen", "argon2"] {
        let real = String::from_utf8(
            Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap();
        let wrapper = wrappers.join(tool);
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\n{{ echo \"argv: $*\"; env; }} >> '{}'\nexec {} \"$@\"\n",
                log.display(),
                real.trim()
            ),
        )
        .unwrap();
        let mut perms = std::fs::metadata(&wrapper).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
        std::fs::set_permissions(&wrapper, perms).unwrap();
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("recovery/recover.py");
    let out = Command::new(python())
        .arg(&script)
        .arg("--vault")
        .arg(&kit.vault)
        .arg("--identity")
        .arg(kit.key("a"))
        .args([
            "--passphrase-file",
            &pass,
            "--argon2",
            "cli",
            "--secret",
            "vpn",
        ])
        .env(
            "PATH",
            format!("{}:{}", wrappers.display(), std::env::var("PATH").unwrap()),
        )
        .output()
        .unwrap();
    assert_eq!(
        out.stdout,
        b"from-a-passphrase",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // (argon2's argv holds the raw salt bytes.)
    let logged = String::from_utf8_lossy(&std::fs::read(&log).unwrap()).to_string();
    assert!(logged.contains("argv: -d -i /dev/fd/"), "{logged}");
    assert!(logged.contains("argv: ") && logged.matches("argv: ").count() >= 3);
    assert!(!logged.contains("correct horse"), "{logged}");
    assert!(!logged.contains("AGE-SECRET-KEY-"), "{logged}");
    // Nor a passphrase of 128 bytes or more.
    support::write_private(&kit.path("long.pass"), &"long ".repeat(26));
    let long = format!("pat={}", kit.path("long.pass").display());
    let out = recover(
        &kit.vault,
        &[kit.key("a")],
        &["--passphrase-file", &long, "--argon2", "cli"],
        "vpn",
    );
    let error = script_error(&out);
    assert!(
        error.contains("128 bytes or longer") && error.contains("python3-argon2"),
        "{error}"
    );
    // A salt with a zero byte (edited in here): the argon2 command cannot
    // take it, and the script says what to install instead.
    let conn = rusqlite::Connection::open(&kit.vault).unwrap();
    conn.execute(
        "UPDATE manifests SET body = json_set(body, '$.custodians[1].kdf.salt', '00' || substr(json_extract(body, '$.custodians[1].kdf.salt'), 3))",
        [],
    )
    .unwrap();
    let out = recover(
        &kit.vault,
        &[kit.key("a")],
        &["--passphrase-file", &pass, "--argon2", "cli"],
        "vpn",
    );
    let error = script_error(&out);
    assert!(
        error.contains("salt holds a zero byte") && error.contains("python3-argon2"),
        "{error}"
    );
    // Argon2id parameters beyond what the binary accepts are refused before
    // any work (a hostile file asking for 8 GiB).
    conn.execute(
        "UPDATE manifests SET body = json_set(body, '$.custodians[1].kdf.params.m_kib', 8388608)",
        [],
    )
    .unwrap();
    let out = recover(
        &kit.vault,
        &[kit.key("a")],
        &["--passphrase-file", &pass],
        "vpn",
    );
    let error = script_error(&out);
    assert!(
        error.contains("custodian pat: Argon2id parameters m_kib=8388608 are outside"),
        "{error}"
    );
}

fn check_vectors(file: &Path) -> Output {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    Command::new(python())
        .arg(root.join("recovery/check_vectors.py"))
        .arg(file)
        .output()
        .unwrap()
}

#[test]
fn the_committed_vectors_pass_in_the_python_implementation_and_a_changed_one_fails() {
    if !tools_present(&[python(), "age-keygen", "openssl", "argon2"]) {
        return;
    }
    let vectors = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/vault-2of3.json");
    let out = check_vectors(&vectors);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Every group ran (none skipped on CI, where every tool is installed).
    for group in [
        "ok: shares",
        "ok: vault age identity",
        "ok: passphrase custodian carol",
        "ok: secret plaintext",
        "ok: audit row hashes",
        "ok: checkpoint digests, message and signature (openssl)",
        "ok: read-back words",
    ] {
        assert!(stdout.contains(group), "{group} missing: {stdout}");
    }
    // One changed byte anywhere is caught and named.
    let text = std::fs::read_to_string(&vectors).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (pointer, said) in [
        ("/custodians/1/commitment", "bob commitment"),
        ("/seed", "seed from"),
        ("/audit/1/hash", "audit row 2 hash"),
        ("/audit/2/reason", "audit row 3 hash"),
        ("/checkpoint/signature", "checkpoint signature"),
        ("/read_back_words/words/0", "read-back words"),
    ] {
        let mut changed = v.clone();
        let field = changed.pointer_mut(pointer).unwrap();
        let mut s = field.as_str().unwrap().to_string();
        let first = if s.starts_with('0') { "1" } else { "0" };
        s.replace_range(0..1, first);
        *field = s.into();
        let file = dir.path().join("changed.json");
        std::fs::write(&file, changed.to_string()).unwrap();
        let out = check_vectors(&file);
        assert_eq!(out.status.code(), Some(1), "{pointer}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.starts_with("error: ") && stderr.contains(said),
            "{pointer}: {stderr}"
        );
    }
}

#[test]
fn during_and_after_a_killed_rotation_the_script_reads_the_active_value() {
    if !tools_present(&[python(), "age", "age-keygen"]) {
        return;
    }
    let kit = Kit::init(&["alice", "bob"], 2);
    kit.put("db", "password", "old-db-pw");
    std::fs::write(kit.path("new"), "new-db-pw").unwrap();
    // Another process rotates with a hook that hangs: version 2 is pending.
    let mut child = support::spawnable(&kit.vault)
        .args(["rotate", "db", "--apply", "sleep 30", "--file"])
        .arg(kit.path("new"))
        .spawn()
        .unwrap();
    let conn = rusqlite::Connection::open(&kit.vault).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let pending = || {
        conn.query_row(
            "SELECT count(*) FROM secret_versions WHERE state = 'pending'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .unwrap_or(0)
            == 1
    };
    while !pending() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(pending());
    let keys = [kit.key("alice"), kit.key("bob")];
    let out = recover(&kit.vault, &keys, &[], "db");
    assert_eq!(
        out.stdout,
        b"old-db-pw",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let out = recover(&kit.vault, &keys, &[], "db");
    assert_eq!(
        out.stdout,
        b"old-db-pw",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A read-only copy (as on write-protected media) opens too.
    let copy = kit.path("copy.db");
    let conn2 = rusqlite::Connection::open(&kit.vault).unwrap();
    conn2
        .execute("VACUUM INTO ?1", [copy.to_str().unwrap()])
        .unwrap();
    let mut perms = std::fs::metadata(&copy).unwrap().permissions();
    perms.set_readonly(true);
    std::fs::set_permissions(&copy, perms).unwrap();
    let out = recover(&copy, &keys, &[], "db");
    assert_eq!(
        out.stdout,
        b"old-db-pw",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An age file of a framed value (FORMAT.md §5) to the vault's public
/// recipient, made with the stock `age` CLI: anyone holding the file can do
/// this, no key needed.
fn planted_ciphertext(vault: &Path, secret: &str, version: u32, value: &str) -> String {
    use std::io::Write;
    let manifest = support::latest_manifest(vault);
    let mut framed = b"BGSECRT1".to_vec();
    framed.extend(hex::decode(manifest["vault_id"].as_str().unwrap()).unwrap());
    framed.extend(version.to_be_bytes());
    framed.extend((secret.len() as u16).to_be_bytes());
    framed.extend(secret.as_bytes());
    framed.extend(value.as_bytes());
    let mut age = Command::new("age")
        .args(["-a", "-r", manifest["vault_recipient"].as_str().unwrap()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    age.stdin.take().unwrap().write_all(&framed).unwrap();
    let out = age.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

/// `--check-with openssl` also checks endorsement, as `unseal` does: a value
/// planted in the file (a framed age file to the public vault recipient) is
/// refused when it replaces an endorsed ciphertext and warned about when it
/// is a new version; an edited endorsement table or checkpoint endorses
/// nothing. Without the option the planted value is printed: the documented
/// limit.
#[test]
fn check_with_openssl_refuses_or_flags_a_planted_value() {
    if !tools_present(&[python(), "age", "age-keygen", "openssl"]) {
        return;
    }
    let kit = Kit::init(&["alice", "bob"], 2);
    kit.put("vpn", "password", "real-pw");
    kit.unseal(&["alice", "bob"], &["vpn"])
        .arg("--endorse")
        .assert()
        .success();
    let keys = [kit.key("alice"), kit.key("bob")];
    let checked = |vault: &Path| recover(vault, &keys, &["--check-with", "openssl"], "vpn");
    let out = checked(&kit.vault);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.stdout, b"real-pw", "{stderr}");
    assert!(
        stderr.contains("checked: secret vpn version 1 is endorsed by the checkpoint"),
        "{stderr}"
    );
    let planted = planted_ciphertext(&kit.vault, "vpn", 1, "attacker-pw");
    // The endorsed version's ciphertext replaced.
    let swapped = edited_copy(
        &kit,
        "swapped.db",
        &format!(
            "UPDATE secret_versions SET ciphertext = '{planted}' WHERE secret = 'vpn' AND version = 1"
        ),
    );
    let out = checked(&swapped);
    let error = script_error(&out);
    assert!(out.stdout.is_empty());
    assert!(
        error.contains("secret vpn version 1 is not the ciphertext checkpoint")
            && error.contains("tampered"),
        "{error}"
    );
    let unchecked = recover(&swapped, &keys, &[], "vpn");
    assert_eq!(unchecked.stdout, b"attacker-pw", "the documented limit");
    // A new version made active beside it: printed, with a warning.
    let planted2 = planted_ciphertext(&kit.vault, "vpn", 2, "attacker-pw");
    let added = edited_copy(
        &kit,
        "added.db",
        &format!(
            "UPDATE secret_versions SET state = 'superseded' WHERE secret = 'vpn';
             INSERT INTO secret_versions (secret, version, epoch, ciphertext, state, depositor, created)
               SELECT secret, 2, epoch, '{planted2}', 'active', 'mallory', created FROM secret_versions
               WHERE secret = 'vpn' AND version = 1;"
        ),
    );
    let conn = rusqlite::Connection::open(&added).unwrap();
    let out = checked(&added);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.stdout, b"attacker-pw", "{stderr}");
    assert!(
        stderr.contains("warning: secret vpn version 2 is not endorsed by the last checkpoint"),
        "{stderr}"
    );
    // ... and the endorsement table edited to cover it: endorses nothing.
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(planted2.as_bytes()));
    conn.execute(
        "INSERT INTO endorsed_versions (secret, version, ciphertext_sha256, depositor) VALUES ('vpn', 2, ?1, 'mallory')",
        [&sha],
    )
    .unwrap();
    let out = checked(&added);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        stderr.contains("signed a digest the endorsed_versions table does not hash to"),
        "{stderr}"
    );
    // ... and the checkpoint's digest rewritten to match, the log rechained:
    // the signature no longer verifies.
    let digest: String = {
        let out = Command::new(python())
            .arg("-c")
            .arg(
                "import sys, sqlite3; sys.path.insert(0, sys.argv[1]); import recover; \
                 db = sqlite3.connect(sys.argv[2]); \
                 print(recover.versions_digest(db.execute('SELECT secret, version, ciphertext_sha256, depositor FROM endorsed_versions').fetchall())['sha256'])",
            )
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("recovery"))
            .arg(&added)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    conn.execute(
        "UPDATE audit SET details = json_set(details, '$.body.endorsed.versions.sha256', ?1, '$.body.endorsed.versions.count', 2) WHERE seq = (SELECT max(seq) FROM audit WHERE action = 'checkpoint')",
        [&digest],
    )
    .unwrap();
    drop(conn);
    support::rechain(&added);
    let out = checked(&added);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        stderr.contains("is not signed by epoch 2's key (forged)"),
        "{stderr}"
    );
    assert!(!stderr.contains("checked:"), "{stderr}");
    // Printed with that warning, as unseal would; --require-endorsed refuses.
    assert_eq!(out.stdout, b"attacker-pw");
    let strict = recover(
        &added,
        &keys,
        &["--check-with", "openssl", "--require-endorsed"],
        "vpn",
    );
    assert!(strict.stdout.is_empty());
    assert!(script_error(&strict).contains("--require-endorsed"));
    // Breaking the checkpoint turns the swapped ciphertext's refusal into a
    // warning (nothing counts as endorsed), never into "checked"; strict mode
    // still refuses.
    let conn = rusqlite::Connection::open(&swapped).unwrap();
    conn.execute(
        "UPDATE audit SET action = 'note' WHERE action = 'checkpoint'",
        [],
    )
    .unwrap();
    drop(conn);
    let out = checked(&swapped);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        stderr.contains("the log holds no checkpoint, so nothing counts as endorsed"),
        "{stderr}"
    );
    let strict = recover(
        &swapped,
        &keys,
        &["--check-with", "openssl", "--require-endorsed"],
        "vpn",
    );
    assert!(strict.stdout.is_empty());
    script_error(&strict);
}

/// With `--check-with openssl`: a checkpoint that does not hold (an older
/// epoch's after the newest was erased, one unlinked from the row before it,
/// one signing another row) endorses nothing and says why; a manifest chain
/// missing the previous key's signature, or cut short of the genesis key, is
/// refused.
#[test]
fn check_with_openssl_names_a_broken_checkpoint_or_manifest_chain() {
    if !tools_present(&[python(), "age", "age-keygen", "openssl"]) {
        return;
    }
    let kit = Kit::init(&["alice", "bob"], 2);
    kit.put("vpn", "password", "real-pw");
    for _ in 0..2 {
        kit.unseal(&["alice", "bob"], &["vpn"])
            .arg("--endorse")
            .assert()
            .success();
    }
    let keys = [kit.key("alice"), kit.key("bob")];
    let last_checkpoint = "(SELECT max(seq) FROM audit WHERE action = 'checkpoint')";
    let edited = |sql: &str, rechain: bool| {
        let copy = edited_copy(&kit, "edited.db", sql);
        if rechain {
            support::rechain(&copy);
        }
        copy
    };
    for (sql, rechain, expected) in [
        (
            format!("UPDATE audit SET action = 'note' WHERE seq = {last_checkpoint}"),
            true,
            "is from epoch 2, but the vault is at epoch 3 (rows were erased)",
        ),
        (
            format!("UPDATE audit SET reason = 'edited' WHERE seq = {last_checkpoint} - 1"),
            false,
            "is not chained to the row before it",
        ),
        (
            format!("UPDATE audit SET reason = 'edited' WHERE seq = {last_checkpoint} - 1"),
            true,
            "does not sign the row before it",
        ),
    ] {
        let copy = edited(&sql, rechain);
        let out = recover(&copy, &keys, &["--check-with", "openssl"], "vpn");
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(out.stdout, b"real-pw", "{sql}: {stderr}");
        assert!(
            stderr.contains(expected) && stderr.contains("so nothing counts as endorsed"),
            "{sql}: {stderr}"
        );
        let strict = recover(
            &copy,
            &keys,
            &["--check-with", "openssl", "--require-endorsed"],
            "vpn",
        );
        assert!(strict.stdout.is_empty(), "{sql}");
        script_error(&strict);
    }
    // Epoch 3's manifest keeps only its own signature: epoch 2's is gone.
    let copy = edited("", false);
    let conn = rusqlite::Connection::open(&copy).unwrap();
    let (body, signatures): (String, String) = conn
        .query_row(
            "SELECT body, signatures FROM manifests WHERE epoch = 3",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let own = serde_json::from_str::<serde_json::Value>(&body).unwrap()["verify_key"].clone();
    let kept: Vec<serde_json::Value> = serde_json::from_str::<Vec<serde_json::Value>>(&signatures)
        .unwrap()
        .into_iter()
        .filter(|s| s["key"] == own)
        .collect();
    assert_eq!(kept.len(), 1);
    conn.execute(
        "UPDATE manifests SET signatures = ?1 WHERE epoch = 3",
        [serde_json::to_string(&kept).unwrap()],
    )
    .unwrap();
    drop(conn);
    let error = script_error(&recover(&copy, &keys, &["--check-with", "openssl"], "vpn"));
    assert!(
        error.contains("manifest of epoch 3: not signed by epoch 2's key"),
        "{error}"
    );
    // The chain cut short: epoch 1's manifest deleted.
    let copy = edited("DELETE FROM manifests WHERE epoch = 1", false);
    let error = script_error(&recover(&copy, &keys, &["--check-with", "openssl"], "vpn"));
    assert!(
        error.contains("manifest of epoch 2: the first key is not the genesis key"),
        "{error}"
    );
}

/// A whole vault replaced by one its maker signed, sealing the real
/// custodians' keys beside their own: every signature verifies, so only the
/// fingerprint the custodians hold tells it apart.
#[test]
fn a_replaced_vault_is_refused_by_its_fingerprint() {
    if !tools_present(&[python(), "age", "age-keygen", "openssl"]) {
        return;
    }
    let kit = Kit::init(&["alice", "bob"], 2);
    kit.put("vpn", "password", "real-pw");
    let real = kit.json(&["status"])["fingerprint"]
        .as_str()
        .unwrap()
        .to_string();
    let fake = Kit::new(&["m1", "m2"]);
    let mut init = fake.bg();
    init.args(["init", "--threshold", "2"]);
    for (name, public) in [
        ("alice", kit.public("alice")),
        ("bob", kit.public("bob")),
        ("m1", fake.public("m1")),
        ("m2", fake.public("m2")),
    ] {
        init.arg("--custodian").arg(format!("{name}={public}"));
    }
    init.assert().success();
    fake.put("vpn", "password", "attacker-pw");
    fake.unseal(&["m1", "m2"], &["vpn"])
        .arg("--endorse")
        .assert()
        .success();
    let keys = [kit.key("alice"), kit.key("bob")];
    let out = recover(&fake.vault, &keys, &["--check-with", "openssl"], "vpn");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        stderr.contains("warning: compare the fingerprint BG-"),
        "{stderr}"
    );
    let out = recover(
        &fake.vault,
        &keys,
        &["--check-with", "openssl", "--fingerprint", &real],
        "vpn",
    );
    assert!(out.stdout.is_empty());
    let error = script_error(&out);
    assert!(
        error.contains(&format!("not {real}")) && error.contains("another vault"),
        "{error}"
    );
    // The real vault passes with its fingerprint, lower case too.
    let out = recover(
        &kit.vault,
        &keys,
        &[
            "--check-with",
            "openssl",
            "--fingerprint",
            &real.to_lowercase(),
        ],
        "vpn",
    );
    assert_eq!(
        out.stdout,
        b"real-pw",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Without signatures a fingerprint proves nothing: refused as usage.
    let out = recover(&kit.vault, &keys, &["--fingerprint", &real], "vpn");
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
}

/// A command killed mid-write leaves its rollback journal beside the vault.
/// SQLite must roll it back before anything is read, which a read-only open
/// cannot do: the script rolls back a private copy, reads what was committed,
/// and leaves the vault and its journal exactly as they were.
#[test]
fn a_vault_left_mid_write_by_a_killed_writer_reads_as_committed() {
    if !tools_present(&[python(), "age", "age-keygen"]) {
        return;
    }
    let kit = Kit::init(&["alice", "bob"], 2);
    kit.put("vpn", "password", "committed-pw");
    // A writer that overwrites every value and envelope (spilling pages into
    // the file itself, with a tiny cache), then dies before committing.
    let out = Command::new(python())
        .arg("-c")
        .arg(
            "import os, sqlite3, sys\n\
             db = sqlite3.connect(sys.argv[1], isolation_level=None)\n\
             db.execute('PRAGMA cache_size = 2')\n\
             db.execute('BEGIN IMMEDIATE')\n\
             db.execute(\"UPDATE secret_versions SET ciphertext = printf('%.*c', 200000, 'x')\")\n\
             db.execute('DELETE FROM envelopes')\n\
             db.execute(\"UPDATE manifests SET body = printf('%.*c', 200000, 'y')\")\n\
             os._exit(0)\n",
        )
        .arg(&kit.vault)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let journal = kit.path("vault.db-journal");
    assert!(std::fs::metadata(&journal).unwrap().len() > 0);
    let before = (
        std::fs::read(&kit.vault).unwrap(),
        std::fs::read(&journal).unwrap(),
    );
    let keys = [kit.key("alice"), kit.key("bob")];
    let out = recover(&kit.vault, &keys, &[], "vpn");
    assert_eq!(
        out.stdout,
        b"committed-pw",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = (
        std::fs::read(&kit.vault).unwrap(),
        std::fs::read(&journal).unwrap(),
    );
    assert!(before == after, "the vault or its journal changed");
}

/// Edits a hostile file could carry get one `error:` line (never a
/// traceback, never a second line or an escape sequence from the file) and
/// print nothing.
#[test]
fn hostile_edits_get_one_escaped_line_and_no_value() {
    if !tools_present(&[python(), "age", "age-keygen"]) {
        return;
    }
    let kit = Kit::init(&["alice", "bob"], 2);
    kit.put("vpn", "password", "real-pw");
    kit.put("db", "password", "db-pw");
    let keys = [kit.key("alice"), kit.key("bob")];
    let marker = "awaiting-the-rotator's-value";
    let hostile_name = "vpn\n\u{1b}[31mFAKE\u{202e}";
    let cases: Vec<(&str, String, String)> = vec![
        (
            "another SQLite application",
            "PRAGMA application_id = 0".into(),
            "its SQLite application_id is not 0x42474C53".into(),
        ),
        (
            "threshold 0",
            "UPDATE manifests SET body = json_set(body, '$.threshold', 0)".into(),
            "the newest manifest is malformed".into(),
        ),
        (
            "epoch as a float",
            "UPDATE manifests SET body = json_set(body, '$.epoch', 1.0)".into(),
            "the newest manifest is malformed".into(),
        ),
        (
            "a value moved between rows",
            "UPDATE secret_versions SET ciphertext = (SELECT ciphertext FROM secret_versions WHERE secret = 'db') WHERE secret = 'vpn'".into(),
            "secret vpn version 1 holds db version 1 (moved between rows".into(),
        ),
        (
            "the Duo placeholder made active",
            format!(
                "UPDATE secret_versions SET ciphertext = '{}' WHERE secret = 'vpn'",
                planted_ciphertext(&kit.vault, "vpn", 1, marker)
            ),
            "holds the placeholder a Duo rotation keeps".into(),
        ),
        (
            "a name with control characters",
            format!(
                "UPDATE secret_versions SET ciphertext = '{}' WHERE secret = 'vpn'",
                planted_ciphertext(&kit.vault, hostile_name, 1, "x")
            ),
            "holds vpn\\u{a}\\u{1b}[31mFAKE\\u{202e} version 1".into(),
        ),
        (
            "a manifest that is not JSON",
            "UPDATE manifests SET body = '{' ".into(),
            "the vault file is malformed or unreadable".into(),
        ),
        (
            "a share record for another threshold",
            "UPDATE manifests SET body = json_set(body, '$.threshold', 1)".into(),
            "the share is for another vault, epoch, custodian or threshold".into(),
        ),
    ];
    for (what, sql, expected) in cases {
        let copy = edited_copy(&kit, "hostile.db", &sql);
        let out = recover(&copy, &keys, &[], "vpn");
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        script_error(&out);
        assert!(out.stdout.is_empty(), "{what}");
        assert!(stderr.contains(&expected), "{what}: {stderr}");
        assert!(
            !stderr.contains('\u{1b}') && !stderr.contains('\u{202e}'),
            "{what}: {stderr:?}"
        );
    }
}

/// Unseals commit new epochs (deleting the old envelopes and re-sealing every
/// secret) while the script reads: it must see each commit whole or not at
/// all, so every run recovers the value; reading table by table outside one
/// transaction fails here within a few runs.
#[test]
fn new_epochs_committed_while_the_script_reads_never_break_recovery() {
    if !tools_present(&[python(), "age", "age-keygen"]) {
        return;
    }
    let kit = Kit::init(&["alice", "bob"], 2);
    kit.put("vpn", "password", "vpn-pw");
    let keys = [kit.key("alice"), kit.key("bob")];
    let done = std::sync::atomic::AtomicBool::new(false);
    let (runs, epochs) = std::thread::scope(|scope| {
        let unsealer = scope.spawn(|| {
            for _ in 0..12 {
                let out = kit
                    .bg()
                    .args([
                        "unseal",
                        "--reason",
                        "race",
                        "--reveal",
                        "vpn",
                        "--identity",
                    ])
                    .arg(&keys[0])
                    .arg("--identity")
                    .arg(&keys[1])
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            done.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        let mut runs = 0;
        while !done.load(std::sync::atomic::Ordering::SeqCst) {
            let out = recover(&kit.vault, &keys, &[], "vpn");
            assert_eq!(
                out.stdout,
                b"vpn-pw",
                "run {runs}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            runs += 1;
        }
        unsealer.join().unwrap();
        let conn = rusqlite::Connection::open(&kit.vault).unwrap();
        let epochs: i64 = conn
            .query_row("SELECT max(epoch) FROM manifests", [], |r| r.get(0))
            .unwrap();
        (runs, epochs)
    });
    assert_eq!(epochs, 13);
    assert!(runs >= 3, "only {runs} runs overlapped the unseals");
}

fn check_codes(vault: &Path, args: &[&std::ffi::OsStr]) -> Output {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    Command::new(python())
        .arg(root.join("recovery/check_codes.py"))
        .arg("--vault")
        .arg(vault)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn codes_and_anchors_the_binary_makes_match_format_md_in_python() {
    if !tools_present(&[python(), "age", "openssl"]) {
        return;
    }
    let kit = Kit::init(&["alice", "bob"], 2);
    kit.put("vpn", "password", "hunter2");
    // A signed anchor from a revealing unseal (§6.3).
    let out = kit
        .unseal(&["alice", "bob"], &["vpn"])
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let anchor = v["anchor"].as_str().unwrap().to_string();
    assert_eq!(anchor.split_whitespace().count(), 5, "{anchor}");
    std::fs::write(kit.path("anchor.txt"), &anchor).unwrap();
    // A request code (§7.1) and its read-back words (§7.3).
    let out = kit
        .bg()
        .args(["request", "--reason", "Duo outage", "--json", "--out"])
        .arg(kit.path("req.txt"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let req: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    std::fs::write(kit.path("req.code"), req["code"].as_str().unwrap()).unwrap();
    let words: Vec<&str> = req["words"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    // bob approves it at home with only his key (§7.2); the requester's
    // ephemeral key is in its state directory.
    let bob_home = kit.path("bob-home");
    std::fs::create_dir(&bob_home).unwrap();
    std::fs::copy(kit.key("bob"), bob_home.join("me.key")).unwrap();
    std::fs::copy(kit.path("req.code"), bob_home.join("req.txt")).unwrap();
    support::bg_without_vault(&bob_home)
        .args(["approve", "--request", "req.txt", "--identity", "me.key"])
        .args(["--out", "approval.txt", "--words", &words.join(" ")])
        .assert()
        .success();
    let request_id = req["request_id"].as_str().unwrap();
    let pending: serde_json::Value = serde_json::from_slice(
        &std::fs::read(kit.path(&format!("state/requests/{request_id}.json"))).unwrap(),
    )
    .unwrap();
    std::fs::write(
        kit.path("request.key"),
        pending["identity"].as_str().unwrap(),
    )
    .unwrap();
    // A remote drill proof (§7.4), answered at alice's home with only her key.
    kit.bg()
        .args(["drill", "--remote", "--out"])
        .arg(kit.path("challenge.txt"))
        .assert()
        .success();
    let home = kit.path("alice-home");
    std::fs::create_dir(&home).unwrap();
    std::fs::copy(kit.key("alice"), home.join("me.key")).unwrap();
    std::fs::copy(kit.path("challenge.txt"), home.join("challenge.txt")).unwrap();
    support::bg_without_vault(&home)
        .args([
            "drill",
            "--challenge",
            "challenge.txt",
            "--out",
            "proof.txt",
            "--identity",
            "me.key",
        ])
        .assert()
        .success();
    let out = check_codes(
        &kit.vault,
        &[
            "--request".as_ref(),
            kit.path("req.code").as_os_str(),
            "--anchor".as_ref(),
            kit.path("anchor.txt").as_os_str(),
            "--proof".as_ref(),
            home.join("proof.txt").as_os_str(),
            "--identity".as_ref(),
            kit.key("alice").as_os_str(),
            "--approval".as_ref(),
            bob_home.join("approval.txt").as_os_str(),
            "--request-key".as_ref(),
            kit.path("request.key").as_os_str(),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.lines().next().unwrap(), words.join(" "));
    assert!(
        stdout.contains("ok: approval by bob")
            && stdout.contains("ok: anchor")
            && stdout.contains("ok: drill proof"),
        "{stdout}"
    );
    // An approval checked against another request of the same vault fails.
    let out = kit
        .bg()
        .args(["request", "--reason", "another", "--json", "--out"])
        .arg(kit.path("req2.txt"))
        .output()
        .unwrap();
    let req2: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    std::fs::write(kit.path("req2.code"), req2["code"].as_str().unwrap()).unwrap();
    let out = check_codes(
        &kit.vault,
        &[
            "--request".as_ref(),
            kit.path("req2.code").as_os_str(),
            "--approval".as_ref(),
            bob_home.join("approval.txt").as_os_str(),
            "--request-key".as_ref(),
            kit.path("request.key").as_os_str(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("approval request_id"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Each can fail: another row's seq in the anchor, and a proof claiming bob.
    let mut parts: Vec<String> = anchor.split_whitespace().map(String::from).collect();
    parts[2] = (parts[2].parse::<u64>().unwrap() - 1).to_string();
    std::fs::write(kit.path("bad-anchor.txt"), parts.join(" ")).unwrap();
    let out = check_codes(
        &kit.vault,
        &["--anchor".as_ref(), kit.path("bad-anchor.txt").as_os_str()],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("anchor head is not audit row"));
    let proof = std::fs::read_to_string(home.join("proof.txt")).unwrap();
    let mut parsed = breakglass::vault::DrillProof::parse(&proof).unwrap();
    parsed.statement.custodian = "bob".into();
    std::fs::write(kit.path("bad-proof.txt"), parsed.code()).unwrap();
    let out = check_codes(
        &kit.vault,
        &["--proof".as_ref(), kit.path("bad-proof.txt").as_os_str()],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("drill proof signature by bob's proof_key")
    );
}
