//! The ldap-password and ad-password rotators against real directory servers:
//! OpenLDAP's slapd (one throwaway server per test, loopback high ports) and a
//! Samba AD DC (one shared server: its ports 389/636 are fixed).
//!
//! Each test skips with a message on stderr when its server is not installed
//! (or, for Samba, when not root), and fails instead when CI=true.

mod support;

#[path = "support/samba.rs"]
mod samba;
#[path = "support/slapd.rs"]
mod slapd;
#[path = "support/tls.rs"]
mod tls;

use std::path::Path;
use std::sync::Arc;

use breakglass::rotators::ldap::{
    set_ad_password, set_ldap_password, BindPassword, LdapConfig, LdapError,
};
use ldap3::{LdapConn, LdapConnSettings};

fn on_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// Skips (returns false) with a message, or fails on CI.
fn require(available: bool, what: &str) -> bool {
    if !available {
        assert!(!on_ci(), "{what}; CI must run this test");
        eprintln!("SKIPPED: {what}");
    }
    available
}

/// The result code of a simple bind as `dn` with `password` over `url`
/// (independent of the rotator's own code path: a fresh connection each time).
fn bind_rc(url: &str, ca_file: &Path, dn: &str, password: &str) -> u32 {
    let pem = std::fs::read(ca_file).unwrap();
    let tls = breakglass::crypto::tls::client_config(Some(&pem)).unwrap();
    let starttls = url.starts_with("ldap://");
    let settings = LdapConnSettings::new()
        .set_starttls(starttls)
        .set_config(Arc::clone(&tls));
    let mut conn = LdapConn::with_settings(settings, url).unwrap();
    let rc = conn.simple_bind(dn, password).unwrap().rc;
    let _ = conn.unbind();
    rc
}

fn config(url: &str, starttls: bool, bind_dn: &str, user_dn: &str, ca_file: &Path) -> LdapConfig {
    let json = serde_json::json!({
        "url": url,
        "starttls": starttls,
        "bind_dn": bind_dn,
        "user_dn": user_dn,
        "ca_file": ca_file,
    });
    LdapConfig::parse(&json.to_string()).unwrap()
}

fn pw(s: &str) -> BindPassword {
    BindPassword::new(s.to_string())
}

fn assert_no_secret(err: &LdapError, secrets: &[&str]) {
    let message = err.to_string();
    assert!(!message.contains('\n'), "not one line: {message}");
    for secret in secrets {
        assert!(!message.contains(secret), "{message} holds a password");
    }
}

// ---------------------------------------------------------------- slapd

fn slapd() -> Option<slapd::Slapd> {
    require(
        slapd::available(),
        "slapd/slapadd not installed (apt-get install slapd ldap-utils)",
    )
    .then(slapd::Slapd::start)
}

#[test]
fn ldap_rotation_sets_the_new_password_and_the_old_one_fails() {
    let Some(server) = slapd() else { return };
    let user = slapd::user_dn("alice");
    let old = slapd::old_password("alice");
    let cfg = config(
        &server.ldaps_url(),
        false,
        slapd::ADMIN_DN,
        &user,
        &server.ca_file,
    );
    assert_eq!(
        bind_rc(&server.ldaps_url(), &server.ca_file, &user, &old),
        0
    );
    set_ldap_password(&cfg, &pw(slapd::ADMIN_PW), b"New alice p\xc3\xa4ss 1").unwrap();
    assert_eq!(
        bind_rc(
            &server.ldaps_url(),
            &server.ca_file,
            &user,
            "New alice päss 1"
        ),
        0
    );
    assert_eq!(
        bind_rc(&server.ldaps_url(), &server.ca_file, &user, &old),
        49
    );
}

#[test]
fn ldap_rotation_over_starttls() {
    let Some(server) = slapd() else { return };
    let user = slapd::user_dn("bob");
    let cfg = config(
        &server.ldap_url(),
        true,
        slapd::ADMIN_DN,
        &user,
        &server.ca_file,
    );
    set_ldap_password(&cfg, &pw(slapd::ADMIN_PW), b"new-bob-pw").unwrap();
    assert_eq!(
        bind_rc(&server.ldap_url(), &server.ca_file, &user, "new-bob-pw"),
        0
    );
    assert_eq!(
        bind_rc(
            &server.ldap_url(),
            &server.ca_file,
            &user,
            &slapd::old_password("bob")
        ),
        49
    );
}

#[test]
fn ldap_self_change_sends_the_old_password() {
    let Some(server) = slapd() else { return };
    let user = slapd::user_dn("carol");
    let old = slapd::old_password("carol");
    let cfg = config(&server.ldaps_url(), false, &user, &user, &server.ca_file);
    set_ldap_password(&cfg, &pw(&old), b"new-carol-pw").unwrap();
    assert_eq!(
        bind_rc(&server.ldaps_url(), &server.ca_file, &user, "new-carol-pw"),
        0
    );
    assert_eq!(
        bind_rc(&server.ldaps_url(), &server.ca_file, &user, &old),
        49
    );
}

#[test]
fn ldap_wrong_bind_password_changes_nothing() {
    let Some(server) = slapd() else { return };
    let user = slapd::user_dn("dave");
    let old = slapd::old_password("dave");
    let cfg = config(
        &server.ldaps_url(),
        false,
        slapd::ADMIN_DN,
        &user,
        &server.ca_file,
    );
    let err = set_ldap_password(&cfg, &pw("wrong-admin-pw"), b"new-dave-pw").unwrap_err();
    assert!(matches!(err, LdapError::NotSet(_)), "{err:?}");
    assert!(!err.password_may_have_changed());
    assert!(
        err.to_string()
            .contains("LDAP result 49 invalidCredentials"),
        "{err}"
    );
    assert!(err.to_string().contains(slapd::ADMIN_DN), "{err}");
    assert_no_secret(&err, &["wrong-admin-pw", "new-dave-pw"]);
    assert_eq!(
        bind_rc(&server.ldaps_url(), &server.ca_file, &user, &old),
        0
    );
    assert_eq!(
        bind_rc(&server.ldaps_url(), &server.ca_file, &user, "new-dave-pw"),
        49
    );
}

#[test]
fn ldap_set_refused_without_the_right_changes_nothing() {
    let Some(server) = slapd() else { return };
    // erin binds fine but may not write frank's password.
    let erin = slapd::user_dn("erin");
    let frank = slapd::user_dn("frank");
    let cfg = config(&server.ldaps_url(), false, &erin, &frank, &server.ca_file);
    let err =
        set_ldap_password(&cfg, &pw(&slapd::old_password("erin")), b"new-frank-pw").unwrap_err();
    assert!(matches!(err, LdapError::NotSet(_)), "{err:?}");
    assert!(
        err.to_string()
            .contains("LDAP result 50 insufficientAccessRights"),
        "{err}"
    );
    assert!(
        err.to_string().contains("the old password is unchanged"),
        "{err}"
    );
    assert_no_secret(&err, &[&slapd::old_password("erin"), "new-frank-pw"]);
    assert_eq!(
        bind_rc(
            &server.ldaps_url(),
            &server.ca_file,
            &frank,
            &slapd::old_password("frank")
        ),
        0
    );
}

#[test]
fn ldap_proof_failure_is_told_apart_from_a_refused_set() {
    let Some(server) = slapd() else { return };
    // An ACL lets nobody authenticate as `noauth`: the administrator's set
    // succeeds, the proof bind cannot.
    let user = slapd::user_dn("noauth");
    let cfg = config(
        &server.ldaps_url(),
        false,
        slapd::ADMIN_DN,
        &user,
        &server.ca_file,
    );
    let err = set_ldap_password(&cfg, &pw(slapd::ADMIN_PW), b"new-noauth-pw").unwrap_err();
    assert!(matches!(err, LdapError::ProofFailed(_)), "{err:?}");
    assert!(err.password_may_have_changed());
    assert!(
        err.to_string().starts_with(&format!(
            "proof bind as {user} with the new password failed: LDAP result 49 invalidCredentials"
        )),
        "{err}"
    );
    assert_no_secret(&err, &[slapd::ADMIN_PW, "new-noauth-pw"]);
}

#[test]
fn ldap_server_that_accepts_but_never_answers_times_out_and_changes_nothing() {
    let Some(server) = slapd() else { return };
    for (url, starttls) in [(server.ldaps_url(), false), (server.ldap_url(), true)] {
        let mut cfg = config(
            &url,
            starttls,
            slapd::ADMIN_DN,
            &slapd::user_dn("carol"),
            &server.ca_file,
        );
        cfg.timeout_secs = Some(2);
        server.freeze(true);
        let started = std::time::Instant::now();
        let result = set_ldap_password(&cfg, &pw(slapd::ADMIN_PW), b"new-carol-pw-1");
        server.freeze(false);
        let err = result.unwrap_err();
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
        assert!(matches!(err, LdapError::NotSet(_)), "{err:?}");
        assert!(
            err.to_string()
                .contains(&format!("no answer from {url} within 2 s"))
                && err.to_string().ends_with("nothing was changed"),
            "{err}"
        );
        assert_no_secret(&err, &[slapd::ADMIN_PW, "new-carol-pw-1"]);
        assert_eq!(
            bind_rc(
                &url,
                &server.ca_file,
                &slapd::user_dn("carol"),
                &slapd::old_password("carol")
            ),
            0
        );
    }
}

#[test]
fn ldap_server_down_is_named() {
    let pki = tls::TestPki::new();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &pki.ca_pem).unwrap();
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("ldaps://127.0.0.1:{port}");
    let cfg = config(
        &url,
        false,
        slapd::ADMIN_DN,
        &slapd::user_dn("alice"),
        &ca_file,
    );
    let err = set_ldap_password(&cfg, &pw(slapd::ADMIN_PW), b"new-pw-123").unwrap_err();
    assert!(matches!(err, LdapError::NotSet(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("server is down (connection refused) at {url}; nothing was changed")
    );
}

#[test]
fn ldap_certificate_from_another_ca_is_refused() {
    let Some(server) = slapd() else { return };
    let user = slapd::user_dn("alice");
    let other = tls::TestPki::other();
    let other_ca = server.dir.path().join("other-ca.pem");
    std::fs::write(&other_ca, &other.ca_pem).unwrap();
    for (url, starttls) in [(server.ldaps_url(), false), (server.ldap_url(), true)] {
        let cfg = config(&url, starttls, slapd::ADMIN_DN, &user, &other_ca);
        let err = set_ldap_password(&cfg, &pw(slapd::ADMIN_PW), b"new-alice-pw").unwrap_err();
        assert!(matches!(err, LdapError::NotSet(_)), "{err:?}");
        assert!(
            err.to_string().starts_with(&format!(
                "TLS certificate did not verify at {url}: not issued by a trusted CA;"
            )),
            "{err}"
        );
        assert_no_secret(&err, &[slapd::ADMIN_PW, "new-alice-pw"]);
    }
    assert_eq!(
        bind_rc(
            &server.ldaps_url(),
            &server.ca_file,
            &user,
            &slapd::old_password("alice")
        ),
        0
    );
}

// ---------------------------------------------------------------- Samba AD

fn samba() -> Option<&'static samba::Samba> {
    let why = samba::unavailable();
    if !require(why.is_none(), why.as_deref().unwrap_or("")) {
        return None;
    }
    Some(samba::shared())
}

#[test]
fn ad_rotation_sets_the_new_password_and_the_old_one_fails() {
    let Some(dc) = samba() else { return };
    let user = dc.user_dn("ad-alice");
    let old = dc.old_password("ad-alice");
    let cfg = config(samba::LDAPS_URL, false, &dc.admin_dn(), &user, &dc.ca_file);
    assert_eq!(bind_rc(samba::LDAPS_URL, &dc.ca_file, &user, &old), 0);
    // Non-ASCII, including a character outside the BMP (a surrogate pair in UTF-16).
    let new = "Päss€-😀-alice-9";
    set_ad_password(&cfg, &pw(samba::ADMIN_PW), new.as_bytes()).unwrap();
    assert_eq!(bind_rc(samba::LDAPS_URL, &dc.ca_file, &user, new), 0);
    assert_eq!(bind_rc(samba::LDAPS_URL, &dc.ca_file, &user, &old), 49);
}

#[test]
fn ad_rotation_over_starttls() {
    let Some(dc) = samba() else { return };
    let user = dc.user_dn("ad-bob");
    let cfg = config(samba::LDAP_URL, true, &dc.admin_dn(), &user, &dc.ca_file);
    set_ad_password(&cfg, &pw(samba::ADMIN_PW), b"New-bob-pw-2").unwrap();
    assert_eq!(
        bind_rc(samba::LDAPS_URL, &dc.ca_file, &user, "New-bob-pw-2"),
        0
    );
    assert_eq!(
        bind_rc(
            samba::LDAPS_URL,
            &dc.ca_file,
            &user,
            &dc.old_password("ad-bob")
        ),
        49
    );
}

#[test]
fn ad_self_change_deletes_the_old_and_adds_the_new() {
    let Some(dc) = samba() else { return };
    let user = dc.user_dn("ad-carol");
    let old = dc.old_password("ad-carol");
    let cfg = config(samba::LDAPS_URL, false, &user, &user, &dc.ca_file);
    set_ad_password(&cfg, &pw(&old), b"New-carol-pw-3").unwrap();
    assert_eq!(
        bind_rc(samba::LDAPS_URL, &dc.ca_file, &user, "New-carol-pw-3"),
        0
    );
    assert_eq!(bind_rc(samba::LDAPS_URL, &dc.ca_file, &user, &old), 49);
}

#[test]
fn ad_wrong_bind_password_changes_nothing() {
    let Some(dc) = samba() else { return };
    let user = dc.user_dn("ad-dave");
    let old = dc.old_password("ad-dave");
    let cfg = config(samba::LDAPS_URL, false, &dc.admin_dn(), &user, &dc.ca_file);
    let err = set_ad_password(&cfg, &pw("Wrong-admin-pw-1"), b"New-dave-pw-4").unwrap_err();
    assert!(matches!(err, LdapError::NotSet(_)), "{err:?}");
    assert!(
        err.to_string()
            .contains("LDAP result 49 invalidCredentials"),
        "{err}"
    );
    assert_no_secret(&err, &["Wrong-admin-pw-1", "New-dave-pw-4"]);
    assert_eq!(bind_rc(samba::LDAPS_URL, &dc.ca_file, &user, &old), 0);
    assert_eq!(
        bind_rc(samba::LDAPS_URL, &dc.ca_file, &user, "New-dave-pw-4"),
        49
    );
}

#[test]
fn ad_policy_refusal_names_the_servers_diagnostic() {
    let Some(dc) = samba() else { return };
    let user = dc.user_dn("ad-erin");
    let old = dc.old_password("ad-erin");
    let cfg = config(samba::LDAPS_URL, false, &dc.admin_dn(), &user, &dc.ca_file);
    let err = set_ad_password(&cfg, &pw(samba::ADMIN_PW), b"Sh0rt!").unwrap_err();
    assert!(matches!(err, LdapError::NotSet(_)), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("LDAP result 19 constraintViolation (0000052D: Constraint violation - check_password_restrictions: the password is too short."),
        "{message}"
    );
    assert!(
        message.contains("the old password is unchanged"),
        "{message}"
    );
    assert_no_secret(&err, &[samba::ADMIN_PW, "Sh0rt!"]);
    assert_eq!(bind_rc(samba::LDAPS_URL, &dc.ca_file, &user, &old), 0);
}

#[test]
fn ad_proof_failure_on_a_disabled_account() {
    let Some(dc) = samba() else { return };
    // An administrator may reset a disabled account's password; nobody can bind as it.
    let user = dc.user_dn("ad-disabled");
    let cfg = config(samba::LDAPS_URL, false, &dc.admin_dn(), &user, &dc.ca_file);
    let err = set_ad_password(&cfg, &pw(samba::ADMIN_PW), b"New-disabled-pw-5").unwrap_err();
    assert!(matches!(err, LdapError::ProofFailed(_)), "{err:?}");
    assert!(err.password_may_have_changed());
    assert!(
        err.to_string().starts_with(&format!(
            "proof bind as {user} with the new password failed: LDAP result 49 invalidCredentials"
        )),
        "{err}"
    );
    assert_no_secret(&err, &[samba::ADMIN_PW, "New-disabled-pw-5"]);
}

#[test]
fn ad_certificate_from_another_ca_is_refused() {
    let Some(dc) = samba() else { return };
    let user = dc.user_dn("ad-frank");
    let other = tls::TestPki::other();
    let dir = tempfile::tempdir().unwrap();
    let other_ca = dir.path().join("other-ca.pem");
    std::fs::write(&other_ca, &other.ca_pem).unwrap();
    let cfg = config(samba::LDAPS_URL, false, &dc.admin_dn(), &user, &other_ca);
    let err = set_ad_password(&cfg, &pw(samba::ADMIN_PW), b"New-frank-pw-6").unwrap_err();
    assert!(matches!(err, LdapError::NotSet(_)), "{err:?}");
    assert!(
        err.to_string().starts_with(&format!(
            "TLS certificate did not verify at {}: not issued by a trusted CA;",
            samba::LDAPS_URL
        )),
        "{err}"
    );
    assert_eq!(
        bind_rc(
            samba::LDAPS_URL,
            &dc.ca_file,
            &user,
            &dc.old_password("ad-frank")
        ),
        0
    );
}

#[test]
fn ad_server_down_is_named() {
    // An AD rotation against a port where nothing listens (needs no Samba).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("ldaps://127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, tls::TestPki::new().ca_pem).unwrap();
    let cfg = config(
        &url,
        false,
        "CN=Administrator,CN=Users,DC=bg,DC=test",
        "CN=x,DC=bg,DC=test",
        &ca_file,
    );
    let err = set_ad_password(&cfg, &pw(samba::ADMIN_PW), b"New-pw-7-x").unwrap_err();
    assert!(matches!(err, LdapError::NotSet(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("server is down (connection refused) at {url}; nothing was changed")
    );
}

#[test]
fn the_binary_rotates_an_ad_password_and_only_the_new_one_binds() {
    let Some(dc) = samba() else { return };
    let kit = support::Kit::init(&["alice", "bob"], 2);
    let user = dc.user_dn("ad-grace");
    let config = serde_json::json!({
        "url": samba::LDAPS_URL,
        "bind_dn": dc.admin_dn(),
        "user_dn": user,
        "ca_file": dc.ca_file,
    });
    std::fs::write(kit.path("ad.json"), config.to_string()).unwrap();
    support::write_private(&kit.path("old.pw"), &dc.old_password("ad-grace"));
    support::write_private(&kit.path("bind.pw"), samba::ADMIN_PW);
    kit.bg()
        .args([
            "put",
            "bg-ad",
            "--kind",
            "password",
            "--rotator",
            "ad-password",
        ])
        .arg("--rotator-config")
        .arg(kit.path("ad.json"))
        .arg("--file")
        .arg(kit.path("old.pw"))
        .assert()
        .success();
    // Not endorsed: runs only with --trust-hook (logged as rotator_trusted).
    let out = kit
        .bg()
        .args(["rotate", "bg-ad", "--json", "--trust-hook", "--credentials"])
        .arg(kit.path("bind.pw"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(kit.audit_actions().iter().any(|a| a == "rotator_trusted"));
    let unsealed = kit
        .unseal(&["alice", "bob"], &["bg-ad"])
        .args(["--json", "--no-rekey", "--endorse"])
        .output()
        .unwrap();
    assert!(
        unsealed.status.success(),
        "{}",
        String::from_utf8_lossy(&unsealed.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&unsealed.stdout).unwrap();
    let new = v["revealed"][0]["value"].as_str().unwrap().to_string();
    assert_eq!(bind_rc(samba::LDAPS_URL, &dc.ca_file, &user, &new), 0);
    assert_eq!(
        bind_rc(
            samba::LDAPS_URL,
            &dc.ca_file,
            &user,
            &dc.old_password("ad-grace")
        ),
        49
    );
    for haystack in [&out.stdout, &out.stderr, &kit.vault_bytes()] {
        let text = String::from_utf8_lossy(haystack);
        assert!(!text.contains(samba::ADMIN_PW) && !text.contains(&new));
    }
}
