//! Remote quorum through the real binary: request → approve (custodians with only
//! their own key: the request carries their envelope) → unseal, and every rejection.

mod support;

use std::path::{Path, PathBuf};

use support::{bg_without_vault, one_line_error, Kit};

const NAMES: [&str; 5] = ["alice", "bob", "carol", "dave", "erin"];

struct Outage {
    kit: Kit,
    request: PathBuf,
    words: String,
    request_id: String,
}

/// A 3-of-5 vault with a secret, each custodian's key alone in their own
/// directory, and an open request.
fn outage() -> Outage {
    let kit = Kit::init(&NAMES, 3);
    kit.put("vpn", "password", "remote-vpn-password");
    for name in NAMES {
        let home = kit.path(&format!("home-{name}"));
        std::fs::create_dir(&home).unwrap();
        std::fs::copy(kit.key(name), home.join("me.key")).unwrap();
    }
    let request = kit.path("request.txt");
    let out = kit
        .bg()
        .args(["request", "--reason", "Duo outage INC-7", "--json", "--out"])
        .arg(&request)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let code = v["code"].as_str().unwrap();
    assert!(code.starts_with("BGREQ2:") && !code.contains(char::is_whitespace));
    assert_eq!(std::fs::read_to_string(&request).unwrap().trim(), code);
    let words: Vec<&str> = v["words"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    assert_eq!(words.len(), 6);
    Outage {
        request_id: v["request_id"].as_str().unwrap().to_string(),
        words: words.join(" "),
        request,
        kit,
    }
}

impl Outage {
    fn home(&self, name: &str) -> PathBuf {
        self.kit.path(&format!("home-{name}"))
    }

    /// A custodian approves from their own directory with only their key.
    fn approve(&self, name: &str, words: &str, out: &str) -> std::process::Output {
        let home = self.home(name);
        std::fs::copy(&self.request, home.join("request.txt")).unwrap();
        bg_without_vault(&home)
            .args([
                "approve",
                "--request",
                "request.txt",
                "--identity",
                "me.key",
                "--json",
            ])
            .args(["--words", words, "--out", out])
            .output()
            .unwrap()
    }

    /// Approve and return the approval file's path (in the requester's directory).
    fn approval(&self, name: &str) -> PathBuf {
        let out = self.approve(name, &self.words, "approval.txt");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["custodian"], name);
        let file = self.home(name).join("approval.txt");
        assert_eq!(
            std::fs::read_to_string(&file).unwrap().trim(),
            v["code"].as_str().unwrap()
        );
        let back = self.kit.path(&format!("approval-{name}.txt"));
        std::fs::copy(&file, &back).unwrap();
        back
    }

    fn unseal(&self, approvals: &[&Path], identities: &[&str]) -> std::process::Output {
        let mut cmd = self.kit.bg();
        cmd.args(["unseal", "--reveal", "vpn", "--json", "--request"])
            .arg(&self.request);
        for a in approvals {
            cmd.arg("--approval").arg(a);
        }
        for i in identities {
            cmd.arg("--identity").arg(self.kit.key(i));
        }
        cmd.output().unwrap()
    }
}

fn revealed(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["revealed"][0]["value"].as_str().unwrap().to_string()
}

#[test]
fn three_of_five_remote_custodians_open_the_vault() {
    let o = outage();
    let approvals: Vec<PathBuf> = ["bob", "dave", "erin"]
        .iter()
        .map(|n| o.approval(n))
        .collect();
    let refs: Vec<&Path> = approvals.iter().map(|p| p.as_path()).collect();
    let out = o.unseal(&refs, &[]);
    assert_eq!(revealed(&out), "remote-vpn-password");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["custodians"], serde_json::json!(["bob", "dave", "erin"]));

    // The log holds the request, each approval, the unseal (with the request's reason) and the reveal.
    let log = o.kit.json(&["audit", "log"]);
    let rows: Vec<(String, String)> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().into(),
                e["subject"].as_str().unwrap().into(),
            )
        })
        .collect();
    let tail: Vec<(&str, &str)> = rows[rows.len() - 8..]
        .iter()
        .map(|(a, s)| (a.as_str(), s.as_str()))
        .collect();
    assert_eq!(tail[0], ("request", o.request_id.as_str()));
    assert_eq!(
        &tail[1..4],
        [
            ("approval_accepted", "bob"),
            ("approval_accepted", "dave"),
            ("approval_accepted", "erin")
        ]
    );
    assert_eq!(tail[4].0, "unseal");
    assert_eq!(tail[5], ("reveal", "vpn"));
    // The reveal, the new epoch and its checkpoint are one transaction.
    assert_eq!([tail[6].0, tail[7].0], ["new_epoch", "checkpoint"]);
    let unseal = &log["entries"].as_array().unwrap()[rows.len() - 4];
    assert_eq!(unseal["reason"], "Duo outage INC-7");
    assert_eq!(unseal["details"]["request_id"], o.request_id.as_str());

    // The ephemeral key is gone: the same approvals cannot be replayed.
    let out = o.unseal(&refs, &[]);
    let err = one_line_error(&out);
    assert!(
        err.contains(&format!("request {} was already used", o.request_id)),
        "{err}"
    );
    assert!(err.contains("approval-bob.txt"), "{err}");
}

#[test]
fn ephemeral_key_stays_on_the_requesters_machine() {
    let o = outage();
    let state = o.kit.path("state/requests");
    let key_file = state.join(format!("{}.json", o.request_id));
    let meta = std::fs::metadata(&key_file).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let key_text = std::fs::read_to_string(&key_file).unwrap();
    let v: serde_json::Value = serde_json::from_str(&key_text).unwrap();
    let secret = v["identity"].as_str().unwrap();
    assert!(secret.starts_with("AGE-SECRET-KEY-1"));
    let vault = o.kit.vault_bytes();
    assert!(
        !vault.windows(secret.len()).any(|w| w == secret.as_bytes()),
        "ephemeral key in the vault file"
    );
    // status lists the open request
    let status = o.kit.json(&["status"]);
    assert_eq!(
        status["open_requests"][0]["request_id"],
        o.request_id.as_str()
    );
    assert_eq!(status["open_requests"][0]["expired"], false);
    // After use, the key is deleted (a tombstone remains) and the request is no longer open.
    let approvals: Vec<PathBuf> = ["alice", "bob", "carol"]
        .iter()
        .map(|n| o.approval(n))
        .collect();
    let refs: Vec<&Path> = approvals.iter().map(|p| p.as_path()).collect();
    revealed(&o.unseal(&refs, &[]));
    let after: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&key_file).unwrap()).unwrap();
    assert!(after["identity"].is_null());
    assert!(!std::fs::read_to_string(&key_file).unwrap().contains(secret));
    assert_eq!(
        o.kit.json(&["status"])["open_requests"],
        serde_json::json!([])
    );
}

#[test]
fn mixed_local_identity_and_two_remote_approvals() {
    let o = outage();
    let a = o.approval("carol");
    let b = o.approval("erin");
    let out = o.unseal(&[&a, &b], &["alice"]);
    assert_eq!(revealed(&out), "remote-vpn-password");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["custodians"],
        serde_json::json!(["alice", "carol", "erin"])
    );
}

#[test]
fn wrong_read_back_words_are_refused_and_nothing_is_written() {
    let o = outage();
    let out = o.approve("bob", "alpha bravo charlie delta", "approval.txt");
    let err = one_line_error(&out);
    assert!(
        err.contains("words given with --words do not match")
            && err.contains("compare them with the requester by voice"),
        "{err}"
    );
    assert!(!o.home("bob").join("approval.txt").exists());
    // Case and spacing do not matter.
    let shouty = format!("  {}  ", o.words.to_uppercase().replace(' ', "   "));
    let out = o.approve("bob", &shouty, "approval.txt");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn approval_for_another_request_is_rejected_by_name() {
    let o = outage();
    let stale = o.approval("bob");
    // A second request: bob's approval of the first cannot serve it.
    let second = o.kit.path("request2.txt");
    o.kit
        .bg()
        .args(["request", "--reason", "second", "--out"])
        .arg(&second)
        .assert()
        .success();
    let c = o.approval("carol");
    let out = o
        .kit
        .bg()
        .args(["unseal", "--request"])
        .arg(&second)
        .arg("--approval")
        .arg(&stale)
        .arg("--approval")
        .arg(&c)
        .output()
        .unwrap();
    let err = one_line_error(&out);
    assert!(
        err.contains("approval-bob.txt") && err.contains("is not for this request"),
        "{err}"
    );
    assert!(o
        .kit
        .audit_actions()
        .contains(&"approval_rejected".to_string()));
}

#[test]
fn second_approval_from_the_same_custodian_is_rejected() {
    let o = outage();
    let first = o.approval("bob");
    let again = o.kit.path("approval-bob-again.txt");
    let out = o.approve("bob", &o.words, "approval2.txt");
    assert!(out.status.success());
    std::fs::copy(o.home("bob").join("approval2.txt"), &again).unwrap();
    let c = o.approval("carol");
    let out = o.unseal(&[&first, &again, &c], &[]);
    let err = one_line_error(&out);
    assert!(
        err.contains("approval-bob-again.txt from bob: is a second approval from custodian bob"),
        "{err}"
    );
    let log = o.kit.json(&["audit", "log"]);
    let rejected = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "approval_rejected")
        .unwrap();
    assert_eq!(rejected["subject"], "bob");
}

#[test]
fn envelope_of_another_vault_cannot_approve() {
    let o = outage();
    // Bob is also a custodian of another vault; he grabs the wrong envelope.
    let other = o.kit.path("other.db");
    support::bg(&other)
        .args(["init", "--threshold", "2", "--custodian"])
        .arg(format!("bob={}", o.kit.public("bob")))
        .arg("--custodian")
        .arg(format!("carol={}", o.kit.public("carol")))
        .assert()
        .success();
    support::bg(&other)
        .args(["custodian", "export", "bob", "--out"])
        .arg(o.home("bob").join("other-envelope.age"))
        .assert()
        .success();
    std::fs::copy(&o.request, o.home("bob").join("request.txt")).unwrap();
    let out = bg_without_vault(&o.home("bob"))
        .args([
            "approve",
            "--request",
            "request.txt",
            "--identity",
            "me.key",
            "--envelope",
            "other-envelope.age",
        ])
        .args(["--words", &o.words, "--out", "a.txt"])
        .output()
        .unwrap();
    let err = one_line_error(&out);
    assert!(
        err.contains("custodian bob: share belongs to another vault"),
        "{err}"
    );
}

#[test]
fn truncated_and_mangled_approvals_are_named() {
    let o = outage();
    let good = std::fs::read_to_string(o.approval("bob")).unwrap();
    let cut = o.kit.path("cut.txt");
    std::fs::write(&cut, &good.trim()[..good.trim().len() - 10]).unwrap();
    let mangled = o.kit.path("mangled.txt");
    let mut chars: Vec<char> = good.trim().chars().collect();
    let i = chars.len() / 2;
    chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
    std::fs::write(&mangled, chars.into_iter().collect::<String>()).unwrap();
    let out = o.unseal(&[&cut, &mangled], &["carol"]);
    let err = one_line_error(&out);
    assert!(err.contains("cut.txt: is cut short"), "{err}");
    assert!(
        err.contains("mangled.txt: is damaged (checksum mismatch"),
        "{err}"
    );
    // A request code pasted where an approval is expected is named as such.
    let out = o.unseal(&[&o.request], &["carol", "dave"]);
    let err = one_line_error(&out);
    assert!(
        err.contains("is a request code, not an approval code"),
        "{err}"
    );
}

#[test]
fn wrapped_and_indented_codes_still_work_and_damaged_requests_are_named() {
    let o = outage();
    let code = std::fs::read_to_string(&o.request).unwrap();
    let wrapped: String = code
        .trim()
        .as_bytes()
        .chunks(72)
        .map(|c| format!("    {}\n", std::str::from_utf8(c).unwrap()))
        .collect();
    std::fs::write(o.home("bob").join("request.txt"), &wrapped).unwrap();
    let out = bg_without_vault(&o.home("bob"))
        .args(["approve", "--request", "-", "--identity", "me.key"])
        .args(["--words", &o.words, "--out", "a.txt"])
        .write_stdin(wrapped.clone())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Wrap the approval too, and use it.
    let approval = std::fs::read_to_string(o.home("bob").join("a.txt")).unwrap();
    let wrapped_approval: String = approval
        .trim()
        .as_bytes()
        .chunks(72)
        .map(|c| format!("> {}\r\n", std::str::from_utf8(c).unwrap()))
        .collect();
    let back = o.kit.path("wrapped-approval.txt");
    std::fs::write(&back, wrapped_approval).unwrap();
    let c = o.approval("carol");
    let d = o.approval("dave");
    assert_eq!(
        revealed(&o.unseal(&[&back, &c, &d], &[])),
        "remote-vpn-password"
    );

    // One character changed, or cut short: named, not misread.
    let mut chars: Vec<char> = code.trim().chars().collect();
    let i = chars.len() / 3;
    chars[i] = if chars[i] == 'x' { 'y' } else { 'x' };
    std::fs::write(
        o.home("erin").join("request.txt"),
        chars.iter().collect::<String>(),
    )
    .unwrap();
    let out = bg_without_vault(&o.home("erin"))
        .args([
            "approve",
            "--request",
            "request.txt",
            "--identity",
            "me.key",
        ])
        .args(["--words", &o.words, "--out", "a.txt"])
        .output()
        .unwrap();
    assert!(one_line_error(&out).contains("request code is damaged"));
    std::fs::write(
        o.home("erin").join("request.txt"),
        &code.trim()[..code.trim().len() / 2],
    )
    .unwrap();
    let out = bg_without_vault(&o.home("erin"))
        .args([
            "approve",
            "--request",
            "request.txt",
            "--identity",
            "me.key",
        ])
        .args(["--words", &o.words, "--out", "a.txt"])
        .output()
        .unwrap();
    assert!(one_line_error(&out).contains("request code is cut short"));
}

/// Re-encode a request code with an edited request, canonically (as an attacker
/// in transit could: the code's checksum is not a signature).
fn forge_request(code: &str, edit: impl Fn(&mut breakglass::remote::Request)) -> String {
    let mut request = breakglass::remote::ParsedRequest::parse(code)
        .unwrap()
        .request;
    edit(&mut request);
    let parsed = breakglass::remote::ParsedRequest::parse(code).unwrap();
    breakglass::remote::ParsedRequest::new(request, parsed.manifest, parsed.envelopes)
        .unwrap()
        .code
}

#[test]
fn expired_request_is_refused_by_the_custodian_and_ignored_in_a_handed_back_file() {
    let o = outage();
    let code = std::fs::read_to_string(&o.request).unwrap();
    let expired = forge_request(&code, |r| r.expires = "2020-01-01T00:00:00Z".into());
    std::fs::write(o.home("bob").join("request.txt"), &expired).unwrap();
    // The custodian hears the words of the forged request (they changed with it).
    let out = bg_without_vault(&o.home("bob"))
        .args([
            "approve",
            "--request",
            "request.txt",
            "--identity",
            "me.key",
            "--out",
            "a.txt",
            "--words",
            "x x x x x x",
        ])
        .output()
        .unwrap();
    // Checked before any words: the expiry is named whatever was typed.
    let err = one_line_error(&out);
    assert!(
        err.contains(&format!("request {} expired", o.request_id)),
        "{err}"
    );
    // With the forged request's own words, the custodian sees it has expired.
    let forged_words = breakglass::remote::ParsedRequest::parse(&expired)
        .unwrap()
        .words()
        .unwrap()
        .join(" ");
    let out = bg_without_vault(&o.home("bob"))
        .args([
            "approve",
            "--request",
            "request.txt",
            "--identity",
            "me.key",
            "--out",
            "a.txt",
            "--words",
            &forged_words,
        ])
        .output()
        .unwrap();
    let err = one_line_error(&out);
    assert!(
        err.contains(&format!("request {} expired", o.request_id)),
        "{err}"
    );
    // The requester trusts only its own record of the request: an expiry edited
    // into the file it is handed back changes nothing (see tests/hostile_file for
    // an expired record with a file that says otherwise).
    let expired_file = o.kit.path("expired-request.txt");
    std::fs::write(&expired_file, &expired).unwrap();
    let good = o.approval("bob");
    let out = o
        .kit
        .bg()
        .args(["unseal", "--reveal", "vpn", "--json", "--request"])
        .arg(&expired_file)
        .arg("--approval")
        .arg(&good)
        .arg("--identity")
        .arg(o.kit.key("carol"))
        .arg("--identity")
        .arg(o.kit.key("dave"))
        .output()
        .unwrap();
    assert_eq!(revealed(&out), "remote-vpn-password");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let warnings = v["warnings"].to_string();
    assert!(
        warnings.contains("expired-request.txt differs from request")
            && warnings.contains("the record was used"),
        "{warnings}"
    );
}

#[test]
fn read_back_words_cover_the_whole_request() {
    let o = outage();
    let code = std::fs::read_to_string(&o.request).unwrap();
    // Swapping the ephemeral recipient (a man in the middle) changes the words.
    let swapped = forge_request(&code, |r| {
        r.recipient = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p".into()
    });
    std::fs::write(o.home("bob").join("request.txt"), &swapped).unwrap();
    let out = bg_without_vault(&o.home("bob"))
        .args([
            "approve",
            "--request",
            "request.txt",
            "--identity",
            "me.key",
        ])
        .args(["--words", &o.words, "--out", "a.txt"])
        .output()
        .unwrap();
    assert!(one_line_error(&out).contains("words given with --words do not match"));
    assert!(!o.home("bob").join("a.txt").exists());
}

#[test]
fn passphrase_custodian_approves_without_a_vault_copy() {
    let kit = Kit::new(&["alice", "bob"]);
    std::fs::write(kit.path("carol.pass"), "carol's passphrase").unwrap();
    kit.bg()
        .args(["init", "--threshold", "2", "--insecure-test-only-kdf"])
        .arg("--custodian")
        .arg(format!("alice={}", kit.public("alice")))
        .arg("--custodian")
        .arg(format!("bob={}", kit.public("bob")))
        .args(["--custodian", "carol=passphrase", "--passphrase-file"])
        .arg(format!("carol={}", kit.path("carol.pass").display()))
        .assert()
        .success();
    kit.put("vpn", "password", "pp-remote");
    let home = kit.path("home-carol");
    std::fs::create_dir(&home).unwrap();
    kit.bg()
        .args(["custodian", "export", "carol", "--out"])
        .arg(home.join("env.age"))
        .assert()
        .success();
    std::fs::copy(kit.path("carol.pass"), home.join("pass")).unwrap();
    let out = kit
        .bg()
        .args(["request", "--reason", "r", "--json", "--out"])
        .arg(kit.path("req.txt"))
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let words: Vec<&str> = v["words"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    std::fs::copy(kit.path("req.txt"), home.join("req.txt")).unwrap();
    let out = bg_without_vault(&home)
        .args([
            "approve",
            "--request",
            "req.txt",
            "--passphrase-file",
            "carol=pass",
            "--envelope",
            "env.age",
        ])
        .args(["--words", &words.join(" "), "--out", "ap.txt"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = kit
        .bg()
        .args(["unseal", "--reveal", "vpn", "--json", "--request"])
        .arg(kit.path("req.txt"))
        .arg("--approval")
        .arg(home.join("ap.txt"))
        .arg("--identity")
        .arg(kit.key("alice"))
        .output()
        .unwrap();
    assert_eq!(revealed(&out), "pp-remote");
}

#[test]
fn approve_without_words_and_no_terminal_never_waits() {
    let o = outage();
    std::fs::copy(&o.request, o.home("bob").join("request.txt")).unwrap();
    let out = bg_without_vault(&o.home("bob"))
        .args([
            "approve",
            "--request",
            "request.txt",
            "--identity",
            "me.key",
            "--out",
            "a.txt",
        ])
        .output()
        .unwrap();
    let err = one_line_error(&out);
    assert!(
        err.contains("no terminal to type the read-back words; pass --words"),
        "{err}"
    );
    assert!(!o.home("bob").join("a.txt").exists());
}

#[test]
fn request_ttl_and_reason_are_validated() {
    let kit = Kit::init(&NAMES, 3);
    for (ttl, want) in [
        ("0m", "between 1m and 24h"),
        ("25h", "between 1m and 24h"),
        ("7d", "between 1m and 24h"),
        ("2w", "unknown unit"),
        ("soon", "expected a number"),
    ] {
        let out = kit
            .bg()
            .args(["request", "--reason", "r", "--ttl", ttl, "--out"])
            .arg(kit.path("r.txt"))
            .output()
            .unwrap();
        let err = one_line_error(&out);
        assert!(err.contains(want), "{ttl}: {err}");
    }
    let out = kit
        .bg()
        .args(["request", "--reason", " ", "--out"])
        .arg(kit.path("r.txt"))
        .output()
        .unwrap();
    assert!(one_line_error(&out).contains("--reason is empty"));
    assert!(!kit.path("r.txt").exists());
    assert_eq!(kit.audit_actions(), ["init"]);
}

#[test]
fn approvals_and_envelopes_from_another_epoch_are_rejected() {
    let o = outage();
    // Erin keeps an offline backup of her epoch-1 envelope.
    o.kit
        .bg()
        .args(["custodian", "export", "erin", "--out"])
        .arg(o.home("erin").join("backup.age"))
        .assert()
        .success();
    let early = o.approval("bob");
    // Meanwhile a local unseal reveals a secret: the vault moves to epoch 2.
    o.kit
        .unseal(&["alice", "carol", "dave"], &["vpn"])
        .assert()
        .success();
    assert_eq!(o.kit.json(&["status"])["epoch"], 2);
    // The epoch-1 request and its approval are refused as a whole.
    let out = o.unseal(&[&early], &["alice", "carol"]);
    let err = one_line_error(&out);
    assert!(
        err.contains("is for epoch 1; the vault is at epoch 2"),
        "{err}"
    );
    // A new request for epoch 2 cannot be approved with an epoch-1 envelope.
    let fresh = o.kit.path("request-epoch2.txt");
    let out = o
        .kit
        .bg()
        .args(["request", "--reason", "again", "--json", "--out"])
        .arg(&fresh)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let words: Vec<&str> = v["words"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    std::fs::copy(&fresh, o.home("erin").join("request2.txt")).unwrap();
    let out = bg_without_vault(&o.home("erin"))
        .args([
            "approve",
            "--request",
            "request2.txt",
            "--identity",
            "me.key",
            "--envelope",
            "backup.age",
        ])
        .args(["--words", &words.join(" "), "--out", "a.txt"])
        .output()
        .unwrap();
    let err = one_line_error(&out);
    assert!(
        err.contains("custodian erin: your exported envelope is from epoch 1, the request is for epoch 2; drop --envelope"),
        "{err}"
    );
    // With only her key, the epoch-2 request carries her new envelope: no re-export.
    let out = bg_without_vault(&o.home("erin"))
        .args([
            "approve",
            "--request",
            "request2.txt",
            "--identity",
            "me.key",
        ])
        .args(["--words", &words.join(" "), "--out", "a.txt"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
