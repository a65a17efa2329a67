//! The requester's side of a remote request, through the real binary: an
//! expired request's use is logged and alerted once, a failed `request` leaves
//! no key behind, and `--approval` takes several files (and says so when it is
//! given a code instead of a file).

mod support;

use std::path::{Path, PathBuf};

use breakglass::remote::ParsedRequest;
use support::{bg_without_vault, one_line_error, Kit};

const NAMES: [&str; 3] = ["alice", "bob", "carol"];

/// A 2-of-3 vault whose alerts are appended to `events.jsonl`, with a secret.
fn kit_with_alerts() -> Kit {
    let kit = Kit::new(&NAMES);
    let events = kit.path("events.jsonl");
    let mut init = kit.bg();
    init.args(["init", "--threshold", "2"]);
    for n in NAMES {
        init.arg("--custodian")
            .arg(format!("{n}={}", kit.public(n)));
    }
    init.arg("--alert-exec")
        .arg(format!("cat >> '{}'", events.display()))
        .assert()
        .success();
    kit.put("vpn", "password", "request-use-pw");
    kit
}

/// `request --json` writing the code to `file`: (request id, words).
fn request(kit: &Kit, file: &Path) -> (String, String) {
    let out = kit
        .bg()
        .args(["request", "--reason", "Duo outage INC-9", "--json", "--out"])
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let words: Vec<&str> = v["words"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    (
        v["request_id"].as_str().unwrap().to_string(),
        words.join(" "),
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn record_path(kit: &Kit, request_id: &str) -> PathBuf {
    kit.path(&format!("state/requests/{request_id}.json"))
}

/// Time passes: the request as recorded here is now past its expiry (the
/// record kept self-consistent, as a clock would make it; the key untouched).
fn expire(kit: &Kit, request_id: &str) {
    let path = record_path(kit, request_id);
    let mut record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let parsed = ParsedRequest::parse(record["request"].as_str().unwrap()).unwrap();
    let mut r = parsed.request.clone();
    r.expires = "2020-01-01T00:00:00Z".into();
    let expired = ParsedRequest::new(r, parsed.manifest.clone(), parsed.envelopes.clone()).unwrap();
    record["request"] = expired.code.clone().into();
    record["request_sha256"] = hex(expired.hash()).into();
    record["expires"] = "2020-01-01T00:00:00Z".into();
    std::fs::write(&path, serde_json::to_vec(&record).unwrap()).unwrap();
}

fn unseal_request(kit: &Kit, file: &Path) -> std::process::Output {
    kit.bg()
        .args(["unseal", "--reveal", "vpn", "--request"])
        .arg(file)
        .arg("--identity")
        .arg(kit.key("alice"))
        .arg("--identity")
        .arg(kit.key("bob"))
        .output()
        .unwrap()
}

/// (audit rows, delivered alerts) of `request_expired` for `request_id`.
fn expired_rows_and_alerts(kit: &Kit, request_id: &str) -> (usize, usize) {
    let log = kit.json(&["audit", "log"]);
    let rows = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "request_expired" && e["subject"] == request_id)
        .count();
    let events = std::fs::read_to_string(kit.path("events.jsonl")).unwrap_or_default();
    let alerts = events
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["event"] == "request_expired" && e["subject"] == request_id)
        .count();
    (rows, alerts)
}

#[test]
fn an_expired_requests_use_is_logged_and_alerted_once_and_refused() {
    let kit = kit_with_alerts();
    let file = kit.path("request.txt");
    let (id, _) = request(&kit, &file);
    expire(&kit, &id);
    assert_eq!(expired_rows_and_alerts(&kit, &id), (0, 0));
    let err = one_line_error(&unseal_request(&kit, &file));
    assert!(
        err.contains(&format!("request {id} expired at 2020-01-01T00:00:00Z")),
        "{err}"
    );
    assert_eq!(expired_rows_and_alerts(&kit, &id), (1, 1));
    let row = kit.json(&["audit", "log"])["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "request_expired")
        .cloned()
        .unwrap();
    assert_eq!(row["reason"], "Duo outage INC-9");
    assert_eq!(row["details"]["expires"], "2020-01-01T00:00:00Z");
    // Its key is gone; trying again is refused and logs nothing more.
    let record = std::fs::read_to_string(record_path(&kit, &id)).unwrap();
    assert!(record.contains("\"identity\":null"), "{record}");
    let err = one_line_error(&unseal_request(&kit, &file));
    assert!(err.contains("was already expired"), "{err}");
    assert_eq!(expired_rows_and_alerts(&kit, &id), (1, 1));
    assert!(!kit
        .audit_actions()
        .iter()
        .any(|a| a == "unseal" || a == "reveal"));
}

#[test]
fn a_request_status_found_expired_is_still_logged_at_its_use() {
    let kit = kit_with_alerts();
    let file = kit.path("request.txt");
    let (id, _) = request(&kit, &file);
    expire(&kit, &id);
    // `status` (read-only) closes the expired record as it lists it.
    let status = kit.json(&["status"]);
    assert_eq!(status["open_requests"][0]["expired"], true);
    let record = std::fs::read_to_string(record_path(&kit, &id)).unwrap();
    assert!(record.contains("\"identity\":null"), "{record}");
    assert_eq!(expired_rows_and_alerts(&kit, &id), (0, 0));
    for _ in 0..2 {
        let err = one_line_error(&unseal_request(&kit, &file));
        assert!(
            err.contains(&format!("request {id} was already expired")),
            "{err}"
        );
        assert_eq!(expired_rows_and_alerts(&kit, &id), (1, 1));
    }
}

/// A request of another vault that expired is refused; nothing is logged in this one.
#[test]
fn an_expired_request_of_another_vault_is_not_logged_here() {
    let kit = kit_with_alerts();
    let file = kit.path("request.txt");
    let (id, _) = request(&kit, &file);
    expire(&kit, &id);
    let other = Kit::new(&NAMES);
    let mut init = other.bg();
    init.args(["init", "--threshold", "2"]);
    for n in NAMES {
        init.arg("--custodian")
            .arg(format!("{n}={}", other.public(n)));
    }
    init.assert().success();
    // The other vault shares this machine's state directory.
    let out = support::bg(&other.vault)
        .env("BREAKGLASS_STATE_DIR", kit.path("state"))
        .args(["unseal", "--request"])
        .arg(&file)
        .arg("--identity")
        .arg(other.key("alice"))
        .arg("--identity")
        .arg(other.key("bob"))
        .output()
        .unwrap();
    let err = one_line_error(&out);
    assert!(err.contains("expired"), "{err}");
    let actions = other.audit_actions();
    assert!(
        !actions.iter().any(|a| a == "request_expired"),
        "{actions:?}"
    );
}

/// `approve` by `name` on their own machine (key and exported envelope only):
/// the approval file, handed back to the requester's directory.
fn approval(kit: &Kit, name: &str, request_file: &Path, words: &str) -> PathBuf {
    let home = kit.path(&format!("home-{name}"));
    if !home.exists() {
        std::fs::create_dir(&home).unwrap();
        std::fs::copy(kit.key(name), home.join("me.key")).unwrap();
        kit.bg()
            .args(["custodian", "export", name, "--out"])
            .arg(home.join("envelope.age"))
            .assert()
            .success();
    }
    let _ = std::fs::remove_file(home.join("approval.txt"));
    std::fs::copy(request_file, home.join("request.txt")).unwrap();
    let out = bg_without_vault(&home)
        .args([
            "approve",
            "--request",
            "request.txt",
            "--identity",
            "me.key",
            "--envelope",
            "envelope.age",
            "--out",
            "approval.txt",
            "--words",
            words,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let back = kit.path(&format!("approvals/{name}.txt"));
    std::fs::create_dir_all(back.parent().unwrap()).unwrap();
    std::fs::copy(home.join("approval.txt"), &back).unwrap();
    back
}

fn value_of(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["revealed"][0]["value"].as_str().unwrap().to_string()
}

#[test]
fn several_approval_files_after_one_flag() {
    let kit = kit_with_alerts();
    let file = kit.path("request.txt");
    let (_, words) = request(&kit, &file);
    approval(&kit, "bob", &file, &words);
    approval(&kit, "carol", &file, &words);
    // What `--approval approvals/*` expands to: several files after one flag.
    let mut files: Vec<PathBuf> = std::fs::read_dir(kit.path("approvals"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 2);
    let out = kit
        .bg()
        .args(["unseal", "--reveal", "vpn", "--json", "--request"])
        .arg(&file)
        .arg("--approval")
        .args(&files)
        .output()
        .unwrap();
    assert_eq!(value_of(&out), "request-use-pw");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["custodians"], serde_json::json!(["bob", "carol"]));
}

#[test]
fn an_approval_can_come_on_stdin_beside_files() {
    let kit = kit_with_alerts();
    let file = kit.path("request.txt");
    let (_, words) = request(&kit, &file);
    let bob = approval(&kit, "bob", &file, &words);
    let carol = approval(&kit, "carol", &file, &words);
    let out = kit
        .bg()
        .args(["unseal", "--reveal", "vpn", "--json", "--request"])
        .arg(&file)
        .arg("--approval")
        .arg(&bob)
        .args(["--approval", "-"])
        .write_stdin(std::fs::read_to_string(&carol).unwrap())
        .output()
        .unwrap();
    assert_eq!(value_of(&out), "request-use-pw");
    // stdin holds one code: a second - is refused before anything is read.
    let before = kit.vault_bytes();
    let out = kit
        .bg()
        .args([
            "unseal",
            "--reveal",
            "vpn",
            "--request",
            "-",
            "--approval",
            "-",
        ])
        .write_stdin("")
        .output()
        .unwrap();
    let err = one_line_error(&out);
    assert!(
        err.contains("- (stdin) is given 2 times, and stdin carries one code"),
        "{err}"
    );
    assert_eq!(kit.vault_bytes(), before);
}

#[test]
fn a_code_pasted_where_a_file_belongs_is_named() {
    let kit = kit_with_alerts();
    let file = kit.path("request.txt");
    let (_, words) = request(&kit, &file);
    let bob = approval(&kit, "bob", &file, &words);
    let approval_code = std::fs::read_to_string(&bob).unwrap().trim().to_string();
    let request_code = std::fs::read_to_string(&file).unwrap().trim().to_string();
    let before = kit.vault_bytes();
    let out = kit
        .bg()
        .args(["unseal", "--reveal", "vpn", "--request"])
        .arg(&file)
        .args(["--approval", &approval_code])
        .output()
        .unwrap();
    let err = one_line_error(&out);
    assert!(
        err.contains("--approval: this looks like an approval code, not a file: save it to a file")
            && err.contains("--approval -"),
        "{err}"
    );
    assert!(
        !err.contains("too long") && !err.contains(&approval_code),
        "{err}"
    );
    let out = kit
        .bg()
        .args(["unseal", "--reveal", "vpn", "--request", &request_code])
        .arg("--approval")
        .arg(&bob)
        .output()
        .unwrap();
    let err = one_line_error(&out);
    assert!(
        err.contains("--request: this looks like a request code, not a file"),
        "{err}"
    );
    assert_eq!(kit.vault_bytes(), before);
    // The custodian's side too.
    let home = kit.path("carol-laptop");
    std::fs::create_dir(&home).unwrap();
    let out = bg_without_vault(&home)
        .args([
            "approve",
            "--request",
            &request_code,
            "--custodian",
            "carol",
        ])
        .args(["--words", &words, "--out", "a.txt"])
        .output()
        .unwrap();
    let err = one_line_error(&out);
    assert!(
        err.contains("--request: this looks like a request code, not a file")
            && err.contains("--request -"),
        "{err}"
    );
    // A short code-like name that is a real file is read as a file.
    let named = kit.path("BGAPR1:bob");
    std::fs::copy(&bob, &named).unwrap();
    let carol = approval(&kit, "carol", &file, &words);
    let out = kit
        .bg()
        .current_dir(kit.path(""))
        .args(["unseal", "--reveal", "vpn", "--json", "--request"])
        .arg(&file)
        .args(["--approval", "BGAPR1:bob"])
        .arg(&carol)
        .output()
        .unwrap();
    assert_eq!(value_of(&out), "request-use-pw");
}

fn request_records(kit: &Kit) -> Vec<String> {
    std::fs::read_dir(kit.path("state/requests"))
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_request_whose_out_file_cannot_be_written_leaves_nothing() {
    let kit = kit_with_alerts();
    let before = kit.audit_actions();
    let out = kit
        .bg()
        .args(["request", "--reason", "Duo outage", "--out"])
        .arg(kit.path("no-such-dir/request.txt"))
        .output()
        .unwrap();
    let err = one_line_error(&out);
    assert!(
        err.contains("no-such-dir/request.txt: cannot write it"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
    assert!(
        request_records(&kit).is_empty(),
        "{:?}",
        request_records(&kit)
    );
    assert_eq!(kit.audit_actions(), before);
    assert_eq!(
        kit.json(&["status"])["open_requests"],
        serde_json::json!([])
    );
}

#[test]
fn a_request_record_whose_row_never_committed_is_refused_then_swept() {
    let kit = kit_with_alerts();
    // The vault as it was before the request: restoring it after is what a kill
    // between saving the key and committing the `request` row leaves.
    let before = kit.vault_bytes();
    let file = kit.path("request.txt");
    let (id, words) = request(&kit, &file);
    let bob = approval(&kit, "bob", &file, &words);
    let carol = approval(&kit, "carol", &file, &words);
    std::fs::write(&kit.vault, &before).unwrap();
    let out = kit
        .bg()
        .args(["unseal", "--reveal", "vpn", "--request"])
        .arg(&file)
        .arg("--approval")
        .arg(&bob)
        .arg(&carol)
        .output()
        .unwrap();
    let err = one_line_error(&out);
    assert!(
        err.contains(&format!("request {id} was never logged in this vault")),
        "{err}"
    );
    assert!(out.stdout.is_empty());
    assert!(!kit
        .audit_actions()
        .iter()
        .any(|a| a == "unseal" || a == "reveal"));
    // Young leftovers may belong to a `request` still waiting for the vault: kept.
    let record = format!("{id}.json");
    request(&kit, &kit.path("second.txt"));
    assert!(request_records(&kit).contains(&record));
    // Once old, the next request deletes it (key and all).
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(record_path(&kit, &id))
        .unwrap()
        .set_modified(old)
        .unwrap();
    let (third, _) = request(&kit, &kit.path("third.txt"));
    let records = request_records(&kit);
    assert!(!records.contains(&record), "{records:?}");
    assert!(records.contains(&format!("{third}.json")), "{records:?}");
}
