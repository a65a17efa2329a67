//! The ldap-password rotator through the real binary against a real slapd:
//! `put --rotator ldap-password --rotator-config FILE`, endorsement, `rotate
//! --credentials FILE`, then the revealed password binds and the old one does
//! not. Also a wrong bind password, an edited config and the credentials canary.
//! (tests/ldap_rotator.rs drives the protocol module itself, against slapd and
//! a Samba AD DC.)

mod support;

#[path = "support/slapd.rs"]
mod slapd;
#[path = "support/tls.rs"]
mod tls;

use std::path::Path;
use std::sync::Arc;

use ldap3::{LdapConn, LdapConnSettings};
use support::Kit;

fn slapd_or_skip() -> Option<slapd::Slapd> {
    if slapd::available() {
        return Some(slapd::Slapd::start());
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "slapd is not installed but CI=true: .ci/run installs slapd and ldap-utils"
    );
    eprintln!("SKIPPED: slapd not installed (apt-get install slapd ldap-utils)");
    None
}

/// The LDAP result code of a bind as `dn` with `password` (a fresh connection).
fn bind_rc(server: &slapd::Slapd, dn: &str, password: &str) -> u32 {
    let pem = std::fs::read(&server.ca_file).unwrap();
    let tls = breakglass::crypto::tls::client_config(Some(&pem)).unwrap();
    let settings = LdapConnSettings::new().set_config(Arc::clone(&tls));
    let mut conn = LdapConn::with_settings(settings, &server.ldaps_url()).unwrap();
    let rc = conn.simple_bind(dn, password).unwrap().rc;
    let _ = conn.unbind();
    rc
}

/// A 2-of-2 vault holding `bg-admin` (erin's current password) whose rotator
/// is ldap-password on `server`, endorsed by a full drill; the admin bind
/// password is in `bind.pw`.
fn vault(server: &slapd::Slapd, ca_file: &Path) -> Kit {
    vault_for(server, ca_file, "erin")
}

/// As [`vault`], for the directory user `uid`.
fn vault_for(server: &slapd::Slapd, ca_file: &Path, uid: &str) -> Kit {
    let kit = Kit::init(&["alice", "bob"], 2);
    let config = serde_json::json!({
        "url": server.ldaps_url(),
        "bind_dn": slapd::ADMIN_DN,
        "user_dn": slapd::user_dn(uid),
        "ca_file": ca_file,
    });
    std::fs::write(kit.path("ldap.json"), config.to_string()).unwrap();
    support::write_private(&kit.path("old.pw"), &slapd::old_password(uid));
    support::write_private(&kit.path("bind.pw"), &format!("{}\n", slapd::ADMIN_PW));
    kit.bg()
        .args([
            "put",
            "bg-admin",
            "--kind",
            "password",
            "--rotator",
            "ldap-password",
        ])
        .arg("--rotator-config")
        .arg(kit.path("ldap.json"))
        .arg("--file")
        .arg(kit.path("old.pw"))
        .assert()
        .success();
    kit.bg()
        .args(["drill", "--full", "--endorse", "--identity"])
        .arg(kit.key("alice"))
        .arg("--identity")
        .arg(kit.key("bob"))
        .assert()
        .success();
    kit
}

fn rotate(kit: &Kit) -> std::process::Output {
    kit.bg()
        .args(["rotate", "bg-admin", "--json", "--credentials"])
        .arg(kit.path("bind.pw"))
        .output()
        .unwrap()
}

/// `unseal --json` by alice and bob, revealing `reveal` with `extra` flags;
/// it must succeed.
fn unseal_json(kit: &Kit, reveal: &[&str], extra: &[&str]) -> serde_json::Value {
    let out = kit
        .unseal(&["alice", "bob"], reveal)
        .arg("--json")
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn revealed(kit: &Kit) -> String {
    let v = unseal_json(kit, &["bg-admin"], &["--no-rekey"]);
    v["revealed"][0]["value"].as_str().unwrap().to_string()
}

#[test]
fn the_binary_rotates_a_directory_password_and_only_the_new_one_binds() {
    let Some(server) = slapd_or_skip() else {
        return;
    };
    let kit = vault(&server, &server.ca_file);
    let user = slapd::user_dn("erin");
    let out = rotate(&kit);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["state"].as_str(), v["rotator"].as_str()),
        (Some("active"), Some("ldap-password"))
    );
    let new = revealed(&kit);
    assert_eq!(new.len(), 32);
    assert_eq!(bind_rc(&server, &user, &new), 0);
    assert_eq!(bind_rc(&server, &user, &slapd::old_password("erin")), 49);
    // Neither the bind password nor the new password is in the output, the log or the file.
    let log = kit.bg().args(["audit", "log", "--json"]).output().unwrap();
    for haystack in [&out.stdout, &out.stderr, &log.stdout, &kit.vault_bytes()] {
        let text = String::from_utf8_lossy(haystack);
        assert!(!text.contains(slapd::ADMIN_PW) && !text.contains(&new));
    }
}

#[test]
fn a_wrong_bind_password_changes_nothing_and_the_old_version_stays_active() {
    let Some(server) = slapd_or_skip() else {
        return;
    };
    let kit = vault(&server, &server.ca_file);
    std::fs::remove_file(kit.path("bind.pw")).unwrap();
    support::write_private(&kit.path("bind.pw"), "not-the-admin-password");
    let out = rotate(&kit);
    assert!(!out.status.success());
    let error = support::one_line_error(&out);
    assert!(
        error.contains("ldap-password") && error.contains("49"),
        "{error}"
    );
    assert!(error.contains("old version stays active"), "{error}");
    assert_eq!(revealed(&kit), slapd::old_password("erin"));
    assert_eq!(
        bind_rc(
            &server,
            &slapd::user_dn("erin"),
            &slapd::old_password("erin")
        ),
        0
    );
}

#[test]
fn a_directory_config_edited_in_the_file_never_receives_the_bind_password() {
    let Some(server) = slapd_or_skip() else {
        return;
    };
    let kit = vault(&server, &server.ca_file);
    // sqlite3-style edit: another user to rotate (an attacker's choice).
    let conn = rusqlite::Connection::open(&kit.vault).unwrap();
    let changed = conn
        .execute(
            "UPDATE rotators SET config = replace(config, 'uid=erin', 'uid=frank')",
            [],
        )
        .unwrap();
    assert_eq!(changed, 1);
    drop(conn);
    let out = rotate(&kit);
    assert!(!out.status.success());
    let error = support::one_line_error(&out);
    assert!(
        error.contains("uid=frank") && error.contains("no quorum endorsed it"),
        "{error}"
    );
    // Nothing changed in the directory.
    assert_eq!(
        bind_rc(
            &server,
            &slapd::user_dn("frank"),
            &slapd::old_password("frank")
        ),
        0
    );
    assert_eq!(
        bind_rc(
            &server,
            &slapd::user_dn("erin"),
            &slapd::old_password("erin")
        ),
        0
    );
}

#[test]
fn a_rotator_config_is_checked_strictly_before_anything_is_stored() {
    let kit = Kit::init(&["alice", "bob"], 2);
    for (config, said) in [
        (
            r#"{"url":"ldap://127.0.0.1:389","bind_dn":"cn=a","user_dn":"cn=b"}"#,
            "starttls",
        ),
        (
            r#"{"url":"ldaps://h","bind_dn":"cn=a","user_dn":"cn=b","password":"x"}"#,
            "password",
        ),
        ("not json", "not valid"),
    ] {
        std::fs::write(kit.path("bad.json"), config).unwrap();
        let out = kit
            .bg()
            .args([
                "put",
                "x",
                "--kind",
                "password",
                "--rotator",
                "ldap-password",
            ])
            .arg("--rotator-config")
            .arg(kit.path("bad.json"))
            .write_stdin("value")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{config}");
        let error = support::one_line_error(&out);
        assert!(
            error.contains("bad.json") && error.contains(said),
            "{config}: {error}"
        );
    }
    // A rotator for the wrong kind of secret, and an unknown rotator, are named too.
    std::fs::write(
        kit.path("ok.json"),
        r#"{"url":"ldaps://h","bind_dn":"cn=a","user_dn":"cn=b"}"#,
    )
    .unwrap();
    let out = kit
        .bg()
        .args([
            "put",
            "x",
            "--kind",
            "bypass-codes",
            "--rotator",
            "ldap-password",
        ])
        .arg("--rotator-config")
        .arg(kit.path("ok.json"))
        .write_stdin("123456")
        .output()
        .unwrap();
    assert!(support::one_line_error(&out).contains("rotates password secrets"));
    let out = kit
        .bg()
        .args([
            "put",
            "x",
            "--kind",
            "password",
            "--rotator",
            "ftp-password",
        ])
        .arg("--rotator-config")
        .arg(kit.path("ok.json"))
        .write_stdin("v")
        .output()
        .unwrap();
    assert!(support::one_line_error(&out).contains("unknown rotator"));
    assert!(kit.json(&["list"])["secrets"]
        .as_array()
        .unwrap()
        .is_empty());
}

#[test]
fn a_secret_has_a_hook_or_a_rotator_and_an_edited_config_is_shown_escaped() {
    let kit = Kit::init(&["alice", "bob"], 2);
    std::fs::write(
        kit.path("ok.json"),
        r#"{"url":"ldaps://ldap.example.org","bind_dn":"cn=a","user_dn":"cn=b"}"#,
    )
    .unwrap();
    kit.bg()
        .args([
            "put",
            "svc",
            "--kind",
            "password",
            "--rotator",
            "ldap-password",
        ])
        .arg("--rotator-config")
        .arg(kit.path("ok.json"))
        .write_stdin("old")
        .assert()
        .success();
    support::write_private(&kit.path("bind.pw"), "x");
    // A hook beside the rotator: refused at put and at rotate, nothing stored.
    let put = kit
        .bg()
        .args(["put", "svc", "--kind", "password", "--apply", "cat"])
        .write_stdin("v2")
        .output()
        .unwrap();
    assert!(support::one_line_error(&put).contains("not both"));
    let rotate = kit
        .bg()
        .args([
            "rotate",
            "svc",
            "--generate",
            "--apply",
            "cat",
            "--credentials",
        ])
        .arg(kit.path("bind.pw"))
        .output()
        .unwrap();
    assert!(support::one_line_error(&rotate).contains("not both"));
    // An edit that puts an escape sequence in the config: shown escaped, and refused.
    let conn = rusqlite::Connection::open(&kit.vault).unwrap();
    conn.execute(
        "UPDATE rotators SET config = replace(config, 'cn=b', 'cn=b' || char(27) || '[2J')",
        [],
    )
    .unwrap();
    drop(conn);
    let out = kit
        .bg()
        .args(["rotate", "svc", "--credentials"])
        .arg(kit.path("bind.pw"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        !out.stderr.contains(&0x1b),
        "a raw escape reached the terminal"
    );
    assert!(support::one_line_error(&out).contains("\\u{1b}"));
    // Even with --trust-hook, a config not in the form put wrote is refused.
    let out = kit
        .bg()
        .args(["rotate", "svc", "--trust-hook", "--credentials"])
        .arg(kit.path("bind.pw"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(!out.stderr.contains(&0x1b));
    assert!(
        support::one_line_error(&out).contains("unusable"),
        "{}",
        support::one_line_error(&out)
    );
}

#[test]
fn the_ca_is_embedded_and_endorsed_so_a_swapped_ca_file_or_edited_ca_changes_nothing() {
    let Some(server) = slapd_or_skip() else {
        return;
    };
    // The config names a CA file; `put` stores its certificates.
    let ca_copy = {
        let kit_dir = tempfile::tempdir().unwrap();
        let path = kit_dir.path().join("dir-ca.pem");
        std::fs::copy(&server.ca_file, &path).unwrap();
        (kit_dir, path)
    };
    let kit = vault(&server, &ca_copy.1);
    let real_pem = std::fs::read(&ca_copy.1).unwrap();
    let real_digest = hex::encode(breakglass::crypto::sha256(&[&real_pem]));
    // The file at the path is swapped for an attacker's CA: never read again.
    let attacker = tls::TestPki::other();
    std::fs::write(&ca_copy.1, &attacker.ca_pem).unwrap();
    let out = rotate(&kit);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        bind_rc(&server, &slapd::user_dn("erin"), &revealed(&kit)),
        0
    );

    // An sqlite3 edit of the embedded CA (to the attacker's) is not endorsed;
    // the refusal names the stored CA by its SHA-256, not pages of PEM.
    let conn = rusqlite::Connection::open(&kit.vault).unwrap();
    let stored: String = conn
        .query_row("SELECT config FROM rotators", [], |r| r.get(0))
        .unwrap();
    let mut config: serde_json::Value = serde_json::from_str(&stored).unwrap();
    assert_eq!(
        config["ca_pem"].as_str().map(str::as_bytes),
        Some(&real_pem[..])
    );
    assert!(config.get("ca_file").is_none());
    config["ca_pem"] = attacker.ca_pem.clone().into();
    let edited = format!(
        r#"{{"url":{},"starttls":false,"bind_dn":{},"user_dn":{},"ca_pem":{}}}"#,
        config["url"], config["bind_dn"], config["user_dn"], config["ca_pem"]
    );
    conn.execute("UPDATE rotators SET config = ?1", [&edited])
        .unwrap();
    let out = rotate(&kit);
    assert!(!out.status.success());
    let error = support::one_line_error(&out);
    let attacker_digest = hex::encode(breakglass::crypto::sha256(&[attacker.ca_pem.as_bytes()]));
    assert!(
        error.contains("no quorum endorsed it")
            && error.contains(&attacker_digest)
            && !error.contains("BEGIN CERTIFICATE"),
        "{error}"
    );
    assert_ne!(attacker_digest, real_digest);

    // A stored config that names a CA file by path is refused even when the
    // user trusts what is stored: the file could be anything at rotation time.
    let by_path = format!(
        r#"{{"url":{},"starttls":false,"bind_dn":{},"user_dn":{},"ca_file":{}}}"#,
        config["url"],
        config["bind_dn"],
        config["user_dn"],
        serde_json::Value::String(ca_copy.1.display().to_string())
    );
    conn.execute("UPDATE rotators SET config = ?1", [&by_path])
        .unwrap();
    drop(conn);
    let out = kit
        .bg()
        .args(["rotate", "bg-admin", "--trust-hook", "--credentials"])
        .arg(kit.path("bind.pw"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let error = support::one_line_error(&out);
    assert!(error.contains("names a CA file by path"), "{error}");
}

/// The stored `userPassword` of `uid`, read as the directory's administrator.
fn stored_password_hash(server: &slapd::Slapd, uid: &str) -> Vec<u8> {
    let pem = std::fs::read(&server.ca_file).unwrap();
    let tls = breakglass::crypto::tls::client_config(Some(&pem)).unwrap();
    let settings = LdapConnSettings::new().set_config(Arc::clone(&tls));
    let mut conn = LdapConn::with_settings(settings, &server.ldaps_url()).unwrap();
    conn.simple_bind(slapd::ADMIN_DN, slapd::ADMIN_PW)
        .unwrap()
        .success()
        .unwrap();
    let (entries, _) = conn
        .search(
            &slapd::user_dn(uid),
            ldap3::Scope::Base,
            "(objectClass=*)",
            vec!["userPassword"],
        )
        .unwrap()
        .success()
        .unwrap();
    let entry = ldap3::SearchEntry::construct(entries.into_iter().next().unwrap());
    let _ = conn.unbind();
    match entry.attrs.get("userPassword") {
        Some(text) => text[0].clone().into_bytes(),
        None => entry.bin_attrs["userPassword"][0].clone(),
    }
}

#[test]
fn an_unproven_rotation_keeps_its_password_revealable_beside_the_active_one() {
    let Some(server) = slapd_or_skip() else {
        return;
    };
    // An ACL lets nobody authenticate as `noauth`: the set succeeds, the proof
    // bind cannot, so the directory may hold a password the vault calls failed.
    let kit = vault_for(&server, &server.ca_file, "noauth");
    let before = stored_password_hash(&server, "noauth");
    let out = rotate(&kit);
    assert!(!out.status.success());
    let error = support::one_line_error(&out);
    assert!(
        error.contains("proof bind")
            && error.contains("may now hold version 2's value")
            && error.contains("--reveal-version bg-admin=2"),
        "{error}"
    );
    assert_ne!(
        stored_password_hash(&server, "noauth"),
        before,
        "the set reached the directory"
    );
    // A quorum reveals both: the active (old) value and the failed version.
    let v = unseal_json(
        &kit,
        &["bg-admin"],
        &["--reveal-version", "bg-admin=2", "--no-rekey"],
    );
    let revealed = v["revealed"].as_array().unwrap();
    assert_eq!(revealed.len(), 2, "{v}");
    assert_eq!(
        (
            revealed[0]["version"].as_u64(),
            revealed[0]["state"].as_str()
        ),
        (Some(1), Some("active"))
    );
    assert_eq!(
        revealed[0]["value"].as_str(),
        Some(slapd::old_password("noauth").trim_end())
    );
    assert_eq!(
        (
            revealed[1]["version"].as_u64(),
            revealed[1]["state"].as_str(),
            revealed[1]["mode"].as_str()
        ),
        (Some(2), Some("failed"), Some("version"))
    );
    let new = revealed[1]["value"].as_str().unwrap();
    assert_eq!(new.len(), 32);
    // The log names the state of what was revealed.
    let log = kit.json(&["audit", "log"]);
    let reveal = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|e| e["action"] == "reveal" && e["details"]["version"] == 2)
        .expect("a reveal row for version 2");
    assert_eq!(reveal["details"]["state"], "failed");

    // The failed version moves to the next epoch (a rekey), so it stays
    // revealable; a superseded-by-nothing, older failed one would not.
    unseal_json(&kit, &[], &["--reveal-version", "bg-admin=2"]);
    let v = unseal_json(&kit, &[], &["--reveal-version", "bg-admin=2", "--no-rekey"]);
    assert_eq!(v["revealed"][0]["value"].as_str(), Some(new));
}

/// The stored rotator config of `secret` and its apply hook, read with SQL.
fn stored_settings(kit: &Kit, secret: &str) -> (Option<String>, Option<String>) {
    let conn = rusqlite::Connection::open(&kit.vault).unwrap();
    let config = conn
        .query_row(
            "SELECT config FROM rotators WHERE secret = ?1",
            [secret],
            |r| r.get(0),
        )
        .ok();
    let hook = conn
        .query_row(
            "SELECT apply_cmd FROM rotation_settings WHERE secret = ?1",
            [secret],
            |r| r.get(0),
        )
        .ok()
        .flatten();
    (config, hook)
}

/// `rotate SECRET --rotator ldap-password --rotator-config starttls.json`.
fn rotate_with_starttls_rotator(kit: &Kit, secret: &str) -> std::process::Output {
    kit.bg()
        .args([
            "rotate",
            secret,
            "--rotator",
            "ldap-password",
            "--rotator-config",
        ])
        .arg(kit.path("starttls.json"))
        .arg("--credentials")
        .arg(kit.path("bind.pw"))
        .output()
        .unwrap()
}

#[test]
fn a_rotator_is_changed_or_removed_from_the_command_line_without_a_new_deposit() {
    let Some(server) = slapd_or_skip() else {
        return;
    };
    let kit = vault(&server, &server.ca_file);
    let user = slapd::user_dn("erin");
    // A new config (StartTLS instead of LDAPS) given on the command line runs
    // now, though no quorum endorsed it yet: the user's own words.
    let config = serde_json::json!({
        "url": server.ldap_url(),
        "starttls": true,
        "bind_dn": slapd::ADMIN_DN,
        "user_dn": user,
        "ca_file": server.ca_file,
    });
    std::fs::write(kit.path("starttls.json"), config.to_string()).unwrap();
    let out = rotate_with_starttls_rotator(&kit, "bg-admin");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(bind_rc(&server, &user, &revealed(&kit)), 0);
    let stored = stored_settings(&kit, "bg-admin").0.unwrap();
    assert!(stored.contains(r#""starttls":true"#), "{stored}");
    // Kept, but a later rotation from the stored config needs an endorsement.
    let out = rotate(&kit);
    assert!(support::one_line_error(&out).contains("no quorum endorsed it"));

    // `--rotator none` removes it: the new value is given again.
    let rows = kit.audit_actions().len();
    let out = kit
        .bg()
        .args([
            "rotate",
            "bg-admin",
            "--rotator",
            "none",
            "--rotator-config",
        ])
        .arg(kit.path("starttls.json"))
        .output()
        .unwrap();
    assert!(support::one_line_error(&out).contains("drop --rotator-config"));
    let out = kit
        .bg()
        .args(["rotate", "bg-admin", "--rotator", "ldap-password"])
        .output()
        .unwrap();
    assert!(support::one_line_error(&out).contains("--rotator-config FILE"));
    assert_eq!(kit.audit_actions().len(), rows, "a refused command wrote");
    std::fs::write(kit.path("manual.pw"), "typed-by-hand-1").unwrap();
    kit.bg()
        .args(["rotate", "bg-admin", "--rotator", "none", "--file"])
        .arg(kit.path("manual.pw"))
        .assert()
        .success();
    assert_eq!(stored_settings(&kit, "bg-admin"), (None, None));
    assert_eq!(revealed(&kit), "typed-by-hand-1");

    // A hook is replaced by a rotator set with put, and a rotator by a hook
    // once it is removed: a secret has one or the other, never both.
    kit.bg()
        .args([
            "put",
            "svc",
            "--kind",
            "password",
            "--apply",
            "cat >/dev/null",
        ])
        .write_stdin("v1")
        .assert()
        .success();
    kit.bg()
        .args([
            "put",
            "svc",
            "--kind",
            "password",
            "--rotator",
            "ldap-password",
            "--rotator-config",
        ])
        .arg(kit.path("starttls.json"))
        .write_stdin("v2")
        .assert()
        .success();
    let (config, hook) = stored_settings(&kit, "svc");
    assert!(config.is_some() && hook.is_none(), "{config:?} {hook:?}");
    kit.bg()
        .args([
            "put",
            "svc",
            "--kind",
            "password",
            "--rotator",
            "none",
            "--apply",
            "cat >/dev/null",
        ])
        .write_stdin("v3")
        .assert()
        .success();
    assert_eq!(
        stored_settings(&kit, "svc"),
        (None, Some("cat >/dev/null".into()))
    );
    // A rotator for another kind of secret is refused by name, nothing stored.
    let out = kit
        .bg()
        .args([
            "put",
            "notes",
            "--kind",
            "note",
            "--rotator",
            "ldap-password",
            "--rotator-config",
        ])
        .arg(kit.path("starttls.json"))
        .write_stdin("n")
        .output()
        .unwrap();
    assert!(support::one_line_error(&out).contains("rotates password secrets, not note"));

    // While another rotation is pending (another process), a change is
    // refused under the write lock and nothing is changed.
    let conn = rusqlite::Connection::open(&kit.vault).unwrap();
    conn.execute(
        "INSERT INTO secret_versions (secret, version, epoch, ciphertext, state, depositor, created)
         SELECT secret, version + 1, epoch, ciphertext, 'pending', 'other', strftime('%Y-%m-%dT%H:%M:%SZ','now')
         FROM secret_versions WHERE secret = 'svc' AND state = 'active'",
        [],
    )
    .unwrap();
    drop(conn);
    let out = rotate_with_starttls_rotator(&kit, "svc");
    assert!(support::one_line_error(&out).contains("pending"));
    assert_eq!(
        stored_settings(&kit, "svc"),
        (None, Some("cat >/dev/null".into()))
    );
}

#[test]
fn killed_while_the_directory_is_silent_the_rotation_stays_pending_and_its_password_readable() {
    let Some(server) = slapd_or_skip() else {
        return;
    };
    let kit = vault(&server, &server.ca_file);
    server.freeze(true);
    let mut child = support::spawnable(&kit.vault)
        .args(["rotate", "bg-admin", "--credentials"])
        .arg(kit.path("bind.pw"))
        .spawn()
        .unwrap();
    // Phase 1 is written (a pending version), then the directory never answers.
    let conn = rusqlite::Connection::open(&kit.vault).unwrap();
    let pending = || -> bool {
        conn.query_row(
            "SELECT count(*) FROM secret_versions WHERE secret = 'bg-admin' AND state = 'pending'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .unwrap_or(0)
            == 1
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !pending() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(pending(), "no pending version was written");
    child.kill().unwrap();
    child.wait().unwrap();
    server.freeze(false);
    // The vault opens, the old password stays active, and the pending
    // password can be read by a quorum (it may have reached the directory).
    let v = unseal_json(
        &kit,
        &["bg-admin"],
        &["--reveal-version", "bg-admin=2", "--no-rekey"],
    );
    assert_eq!(
        v["revealed"][0]["value"].as_str(),
        Some(slapd::old_password("erin").trim_end())
    );
    assert_eq!(v["revealed"][1]["state"], "pending");
    assert_eq!(v["revealed"][1]["value"].as_str().map(str::len), Some(32));
    // A second rotation meanwhile is refused; --abandon settles it by name.
    let out = rotate(&kit);
    assert!(support::one_line_error(&out).contains("--abandon"));
    kit.bg()
        .args(["rotate", "bg-admin", "--abandon"])
        .assert()
        .success();
    assert_eq!(
        bind_rc(
            &server,
            &slapd::user_dn("erin"),
            &slapd::old_password("erin")
        ),
        0,
        "the directory never received the new password"
    );
    let out = rotate(&kit);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
