//! Single-use bypass codes and the status flags for age, expiry and low codes.

mod support;

use support::{one_line_error, Kit};

fn one_code(kit: &Kit) -> Result<String, String> {
    let out = kit
        .unseal(&["alice", "bob"], &["duo"])
        .args(["--one", "--json"])
        .output()
        .unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).to_string());
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    Ok(v["revealed"][0]["value"].as_str().unwrap().to_string())
}

fn attention(kit: &Kit) -> String {
    kit.json(&["status"])["attention"].to_string()
}

#[test]
fn one_hands_out_distinct_codes_until_none_are_left() {
    let kit = Kit::init(&["alice", "bob"], 2);
    kit.put("duo", "bypass-codes", "111111\n222222\n333333\n444444\n");
    kit.put("vpn", "password", "pw");
    let status = kit.json(&["status"]);
    assert_eq!(
        status["bypass_codes"],
        serde_json::json!([{"name": "duo", "remaining": 4, "total": 4}])
    );
    let mut seen = Vec::new();
    for expected_left in [3, 2, 1, 0] {
        let code = one_code(&kit).unwrap();
        assert_eq!(code.len(), 6);
        assert!(!seen.contains(&code), "{code} handed out twice");
        seen.push(code);
        assert_eq!(
            kit.json(&["status"])["bypass_codes"][0]["remaining"],
            expected_left
        );
    }
    seen.sort();
    assert_eq!(seen, ["111111", "222222", "333333", "444444"]);
    assert!(attention(&kit).contains("secret duo has 0 unused bypass codes left"));
    let err = one_code(&kit).unwrap_err();
    assert!(err.contains("secret duo: all 4 codes are used"), "{err}");
    // A code handed out with --one is spent, not "exposed": the others were never seen.
    let list = kit.json(&["list"]);
    assert_eq!(list["secrets"][0]["state"], "ok");
    // Each --one reveal is logged with the code's index, never the code.
    let log = serde_json::to_string(&kit.json(&["audit", "log"])).unwrap();
    assert!(log.contains("\"code_index\":3"));
    assert!(!log.contains("111111"));
    // New codes reset the count.
    kit.bg()
        .args(["rotate", "duo"])
        .write_stdin("555555 666666 777777")
        .assert()
        .success();
    assert_eq!(kit.json(&["status"])["bypass_codes"][0]["remaining"], 3);
    assert!(!attention(&kit).contains("unused bypass codes"));
}

#[test]
fn low_code_count_is_flagged() {
    let kit = Kit::init(&["alice", "bob"], 2);
    kit.put("duo", "bypass-codes", "1 2 3");
    assert!(!attention(&kit).contains("bypass codes left"));
    one_code(&kit).unwrap();
    assert!(attention(&kit).contains("secret duo has 2 unused bypass codes left (of 3)"));
    kit.bg().args(["status", "--check"]).assert().code(1);
}

#[test]
fn one_is_only_for_bypass_codes() {
    let kit = Kit::init(&["alice", "bob"], 2);
    kit.put("vpn", "password", "pw");
    kit.put("steps", "note", "call the lead");
    let before = kit.vault_bytes();
    // --one with no bypass-codes secret to reveal: refused, naming one.
    let out = kit
        .unseal(&["alice", "bob"], &["vpn"])
        .arg("--one")
        .output()
        .unwrap();
    let err = one_line_error(&out);
    assert!(
        err.contains("secret vpn: is a password secret; --one hands out single bypass codes only"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
    // --reveal-one of a password or a note is refused by name, whatever else is named.
    for name in ["vpn", "steps"] {
        let out = kit
            .unseal(&["alice", "bob"], &[])
            .args(["--reveal-one", name])
            .output()
            .unwrap();
        let err = one_line_error(&out);
        assert!(
            err.contains(&format!("secret {name}: is a "))
                && err.contains("--reveal-one hands out single bypass codes only")
                && err.contains(&format!("use --reveal {name} for the whole value")),
            "{err}"
        );
        assert!(out.stdout.is_empty());
    }
    // One name in both modes is refused.
    kit.put("duo", "bypass-codes", "1 2 3");
    let before_duo = kit.vault_bytes();
    let out = kit
        .unseal(&["alice", "bob"], &["duo"])
        .args(["--reveal-one", "duo"])
        .output()
        .unwrap();
    assert!(one_line_error(&out).contains("secret duo: is named by both --reveal and --reveal-one"));
    // --one with nothing to reveal is a mistake, not a quorum session.
    let out = kit
        .unseal(&["alice", "bob"], &[])
        .arg("--one")
        .output()
        .unwrap();
    assert!(one_line_error(&out).contains("no secret is named to reveal; use --reveal-one NAME"));
    // Refused before any share is gathered: nothing was written.
    assert_ne!(before, before_duo);
    assert_eq!(kit.vault_bytes(), before_duo);
}

/// The outage of the issue: a password and one bypass code in one quorum, in
/// one transaction, one new epoch; each reveal says its mode.
fn password_and_one_code_in_one_unseal(extra: &[&str]) -> serde_json::Value {
    let kit = Kit::init(&["alice", "bob"], 2);
    kit.put("vpn", "password", "vpn-pw");
    kit.put("duo", "bypass-codes", "111111\n222222\n333333\n");
    kit.put("steps", "note", "call the lead");
    let before = kit.audit_actions().len();
    let out = kit
        .unseal(&["alice", "bob"], &["vpn", "steps"])
        .args(extra)
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let revealed = v["revealed"].as_array().unwrap();
    let by_name = |name: &str| revealed.iter().find(|r| r["name"] == name).unwrap().clone();
    assert_eq!(revealed.len(), 3, "{v}");
    let vpn = by_name("vpn");
    assert_eq!(
        (
            &vpn["mode"],
            &vpn["value"],
            &vpn["code_index"],
            &vpn["codes_left"]
        ),
        (
            &"whole".into(),
            &"vpn-pw".into(),
            &serde_json::Value::Null,
            &serde_json::Value::Null
        )
    );
    let steps = by_name("steps");
    assert_eq!(
        (&steps["mode"], &steps["value"]),
        (&"whole".into(), &"call the lead".into())
    );
    let duo = by_name("duo");
    assert_eq!(
        (
            &duo["mode"],
            &duo["value"],
            &duo["code_index"],
            &duo["codes_left"]
        ),
        (&"one-code".into(), &"111111".into(), &0.into(), &2.into())
    );
    assert_eq!(
        (v["epoch"].as_u64(), v["new_epoch"].as_u64()),
        (Some(1), Some(2))
    );
    // One quorum session: one unseal row, a reveal row per secret with its mode, one new epoch.
    let log = kit.json(&["audit", "log"])["entries"]
        .as_array()
        .unwrap()
        .clone();
    let new: Vec<&serde_json::Value> = log[before..].iter().collect();
    let count = |action: &str| new.iter().filter(|e| e["action"] == action).count();
    assert_eq!(
        (count("unseal"), count("reveal"), count("new_epoch")),
        (1, 3, 1)
    );
    let mode_of = |name: &str| {
        new.iter()
            .find(|e| e["action"] == "reveal" && e["subject"] == name)
            .map(|e| e["details"]["mode"].clone())
            .unwrap()
    };
    assert_eq!(mode_of("vpn"), "whole");
    assert_eq!(mode_of("duo"), "one-code");
    // The password and the note are exposed; the codes are not, one is used.
    let list = kit.json(&["list"]);
    let state = |name: &str| {
        list["secrets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .map(|s| s["state"].clone())
            .unwrap()
    };
    assert_eq!(
        (state("vpn"), state("steps"), state("duo")),
        ("exposed".into(), "exposed".into(), "ok".into())
    );
    assert_eq!(kit.json(&["status"])["bypass_codes"][0]["remaining"], 2);
    v
}

#[test]
fn reveal_one_and_reveal_share_one_quorum() {
    password_and_one_code_in_one_unseal(&["--reveal-one", "duo"]);
}

#[test]
fn one_gives_one_code_of_each_bypass_codes_reveal_and_the_rest_whole() {
    password_and_one_code_in_one_unseal(&["--reveal", "duo", "--one"]);
}

#[test]
fn human_output_says_which_reveal_is_one_code() {
    let kit = Kit::init(&["alice", "bob"], 2);
    kit.put("vpn", "password", "vpn-pw");
    kit.put("duo", "bypass-codes", "111111 222222");
    let out = kit
        .unseal(&["alice", "bob"], &["vpn"])
        .args(["--reveal-one", "duo"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("--- vpn (password, v1)\nvpn-pw\n"), "{text}");
    assert!(
        text.contains(
            "--- duo (bypass-codes, v1; one code, now marked used, 1 unused left)\n111111\n"
        ),
        "{text}"
    );
    assert!(!text.contains("222222"), "{text}");
}

#[test]
fn expiry_and_max_age_are_flagged() {
    let kit = Kit::init(&["alice", "bob"], 2);
    let soon = (chrono::Utc::now() + chrono::Duration::days(5))
        .format("%Y-%m-%d")
        .to_string();
    let later = (chrono::Utc::now() + chrono::Duration::days(60))
        .format("%Y-%m-%d")
        .to_string();
    kit.bg()
        .args(["put", "duo", "--kind", "bypass-codes", "--expires", &soon])
        .write_stdin("1 2 3 4")
        .assert()
        .success();
    kit.bg()
        .args(["put", "vpn", "--kind", "password", "--max-age", "90d"])
        .write_stdin("pw")
        .assert()
        .success();
    let a = attention(&kit);
    assert!(
        a.contains(&format!("secret duo expires on {soon} (in 5 days)"))
            || a.contains(&format!("secret duo expires on {soon} (in 4 days)")),
        "{a}"
    );
    assert!(!a.contains("overdue for rotation"));
    kit.bg().args(["status", "--check"]).assert().code(1);
    // New codes with a later expiry clear the flag.
    kit.bg()
        .args(["rotate", "duo", "--expires", &later])
        .write_stdin("5 6 7 8")
        .assert()
        .success();
    assert!(!attention(&kit).contains("expires on"));
    // Age the active vpn version past its max age.
    let conn = rusqlite::Connection::open(&kit.vault).unwrap();
    conn.execute(
        "UPDATE secret_versions SET created = '2020-01-01T00:00:00.000Z' WHERE secret = 'vpn'",
        [],
    )
    .unwrap();
    drop(conn);
    assert!(
        attention(&kit).contains("secret vpn is overdue for rotation: version 1 is"),
        "{}",
        attention(&kit)
    );
    kit.bg()
        .args(["rotate", "vpn", "--generate"])
        .assert()
        .success();
    assert!(!attention(&kit).contains("overdue for rotation"));
}

#[test]
fn policy_options_are_validated() {
    let kit = Kit::init(&["alice", "bob"], 2);
    let err = one_line_error(
        &kit.bg()
            .args(["put", "x", "--kind", "password", "--max-age", "soon"])
            .write_stdin("v")
            .output()
            .unwrap(),
    );
    assert!(err.contains("--max-age soon"), "{err}");
    let err = one_line_error(
        &kit.bg()
            .args(["put", "x", "--kind", "password", "--expires", "31/12/2027"])
            .write_stdin("v")
            .output()
            .unwrap(),
    );
    assert!(err.contains("--expires 31/12/2027"), "{err}");
    let err = one_line_error(
        &kit.bg()
            .args(["put", "codes", "--kind", "bypass-codes"])
            .write_stdin("   \n")
            .output()
            .unwrap(),
    );
    assert!(err.contains("codes"), "{err}");
    assert_eq!(kit.audit_actions(), ["init"]);
}
