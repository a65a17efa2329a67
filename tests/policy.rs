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
