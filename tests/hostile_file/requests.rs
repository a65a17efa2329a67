//! See tests/hostile_file.rs. Requests and approvals: the attacker edits request
//! and approval codes in transit and files on disk, but has no quorum. Approvals
//! bind to the SHA-256 of the exact request bytes, the requester trusts only the
//! record it kept when it made the request, and custodian keys pin the vault
//! fingerprint they first served.

use std::path::{Path, PathBuf};

use breakglass::remote::code::{self, CodeKind};
use breakglass::remote::{ParsedRequest, Request};

use crate::support::{self, bg_without_vault, one_line_error, Kit};

const NAMES: [&str; 3] = ["alice", "bob", "carol"];
const REASON: &str = "Duo outage INC-7";

/// A 2-of-3 vault with a secret, each custodian's key and exported envelope in
/// their own home directory (their own state dir too), and an open request.
struct Open {
    kit: Kit,
    request: PathBuf,
    code: String,
    words: String,
    request_id: String,
}

fn open_request() -> Open {
    let kit = Kit::init(&NAMES, 2);
    kit.put("vpn", "password", "hostile-vpn-password");
    for name in NAMES {
        let home = kit.path(&format!("home-{name}"));
        std::fs::create_dir(&home).unwrap();
        std::fs::copy(kit.key(name), home.join("me.key")).unwrap();
        kit.bg()
            .args(["custodian", "export", name, "--out"])
            .arg(home.join("envelope.age"))
            .assert()
            .success();
    }
    let request = kit.path("request.txt");
    let v = request_json(&kit, &request, REASON);
    Open {
        code: v["code"].as_str().unwrap().to_string(),
        words: words_of(&v),
        request_id: v["request_id"].as_str().unwrap().to_string(),
        request,
        kit,
    }
}

/// `request --json` on `kit`'s vault, writing the code to `out`.
fn request_json(kit: &Kit, out: &Path, reason: &str) -> serde_json::Value {
    let out = kit
        .bg()
        .args(["request", "--reason", reason, "--json", "--out"])
        .arg(out)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn words_of(v: &serde_json::Value) -> String {
    let words: Vec<&str> = v["words"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    assert_eq!(words.len(), 6);
    words.join(" ")
}

/// A request re-encoded canonically after an edit, with a valid code checksum:
/// what someone in transit (or with the file) can make without any key.
fn forge(code: &str, edit: impl Fn(&mut Request)) -> String {
    let parsed = ParsedRequest::parse(code).unwrap();
    let mut request = parsed.request.clone();
    edit(&mut request);
    ParsedRequest::new(request, parsed.manifest, parsed.envelopes)
        .unwrap()
        .code
}

/// The code payload of `code` with its core replaced by `core` (attachments kept).
fn with_core(code: &str, core: &[u8]) -> Vec<u8> {
    let payload = code::decode(CodeKind::Request, code).unwrap();
    let old = u32::from_be_bytes(payload[..4].try_into().unwrap()) as usize;
    let mut out = (core.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(core);
    out.extend_from_slice(&payload[4 + old..]);
    out
}

impl Open {
    fn home(&self, name: &str) -> PathBuf {
        self.kit.path(&format!("home-{name}"))
    }

    /// `name` approves the request code `code` with `words`, from their own
    /// home with only their key and envelope.
    fn approve_code(&self, name: &str, code: &str, words: &str) -> std::process::Output {
        approve_in(
            &self.home(name),
            code,
            "envelope.age",
            words,
            "approval.txt",
        )
    }

    /// `name` approves `code`; the approval is copied back to the requester.
    fn approval_of(&self, name: &str, code: &str, words: &str) -> PathBuf {
        let out = self.approve_code(name, code, words);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let back = self.kit.path(&format!("approval-{name}.txt"));
        std::fs::copy(self.home(name).join("approval.txt"), &back).unwrap();
        std::fs::remove_file(self.home(name).join("approval.txt")).unwrap();
        back
    }

    fn unseal(&self, request: &Path, approvals: &[&Path]) -> std::process::Output {
        let mut cmd = self.kit.bg();
        cmd.args(["unseal", "--reveal", "vpn", "--json", "--request"])
            .arg(request);
        for a in approvals {
            cmd.arg("--approval").arg(a);
        }
        cmd.output().unwrap()
    }

    fn log(&self) -> Vec<serde_json::Value> {
        self.kit.json(&["audit", "log"])["entries"]
            .as_array()
            .unwrap()
            .clone()
    }

    /// The requester's own record of the request, kept at `request` time.
    fn record_path(&self) -> PathBuf {
        self.kit
            .path(&format!("state/requests/{}.json", self.request_id))
    }
}

/// `approve` in `home` (no vault copy), writing the approval to `out`.
fn approve_in(
    home: &Path,
    code: &str,
    envelope: &str,
    words: &str,
    out: &str,
) -> std::process::Output {
    std::fs::write(home.join("request.txt"), format!("{code}\n")).unwrap();
    bg_without_vault(home)
        .args([
            "approve",
            "--request",
            "request.txt",
            "--identity",
            "me.key",
            "--envelope",
            envelope,
        ])
        .args(["--words", words, "--out", out])
        .output()
        .unwrap()
}

#[test]
fn requests_reason_edited_after_approval_is_not_what_the_log_records() {
    let o = open_request();
    let bob = o.approval_of("bob", &o.code, &o.words);
    let carol = o.approval_of("carol", &o.code, &o.words);
    // Someone with the requester's files rewrites the reason the log would show.
    let edited = forge(&o.code, |r| r.reason = "routine test, ignore".into());
    std::fs::write(&o.request, format!("{edited}\n")).unwrap();

    let out = o.unseal(&o.request, &[&bob, &carol]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["revealed"][0]["value"], "hostile-vpn-password");
    assert!(
        v["warnings"]
            .to_string()
            .contains("request.txt differs from request"),
        "{}",
        v["warnings"]
    );

    let log = o.log();
    let session: Vec<&serde_json::Value> = log
        .iter()
        .filter(|e| {
            ["approval_accepted", "unseal", "reveal"].contains(&e["action"].as_str().unwrap())
        })
        .collect();
    assert_eq!(session.len(), 4, "{session:?}");
    for entry in session {
        assert_eq!(entry["reason"], REASON, "{entry}");
    }
    assert!(!serde_json::to_string(&log)
        .unwrap()
        .contains("routine test"));
    let unseal = log.iter().find(|e| e["action"] == "unseal").unwrap();
    let recorded = ParsedRequest::parse(&o.code).unwrap();
    assert_eq!(
        unseal["details"]["request_sha256"],
        hex(recorded.hash()).as_str()
    );
}

#[test]
fn requests_expiry_edited_in_the_handed_back_file_cannot_revive_an_expired_request() {
    let o = open_request();
    let bob = o.approval_of("bob", &o.code, &o.words);
    let carol = o.approval_of("carol", &o.code, &o.words);
    // Time passes: the request, as recorded when it was made, is now past its
    // expiry. (Simulated by moving the record's expiry into the past, keeping it
    // self-consistent, as a clock would; the ephemeral key is untouched.)
    let record_path = o.record_path();
    let mut record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&record_path).unwrap()).unwrap();
    let expired = ParsedRequest::parse(&forge(&o.code, |r| {
        r.expires = "2020-01-01T00:00:00Z".into()
    }))
    .unwrap();
    record["request"] = expired.code.clone().into();
    record["request_sha256"] = hex(expired.hash()).into();
    record["expires"] = "2020-01-01T00:00:00Z".into();
    std::fs::write(&record_path, serde_json::to_vec(&record).unwrap()).unwrap();

    // The file handed back claims the request runs for years yet.
    let revived = forge(&o.code, |r| r.expires = "2099-01-01T00:00:00Z".into());
    let handed_back = o.kit.path("handed-back.txt");
    std::fs::write(&handed_back, format!("{revived}\n")).unwrap();
    let before = o.log().len();

    let err = one_line_error(&o.unseal(&handed_back, &[&bob, &carol]));
    assert!(
        err.contains(&format!(
            "request {} expired at 2020-01-01T00:00:00Z",
            o.request_id
        )) && err.contains("approval-bob.txt"),
        "{err}"
    );
    assert!(!err.contains("2099"), "{err}");
    let log = o.log();
    assert!(
        !log[before..]
            .iter()
            .any(|e| ["unseal", "reveal"].contains(&e["action"].as_str().unwrap())),
        "{log:?}"
    );
    // The expired request's key is gone: even the genuine file cannot use it now.
    let err = one_line_error(&o.unseal(&o.request, &[&bob, &carol]));
    assert!(err.contains("was already expired"), "{err}");
}

#[test]
fn requests_non_canonical_request_codes_are_refused_by_name() {
    let o = open_request();
    let genuine = ParsedRequest::parse(&o.code).unwrap();
    let payload = genuine.core().to_vec();
    let value: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    let canonical = "not in canonical form";
    let variants: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "trailing space",
            [payload.as_slice(), b" "].concat(),
            canonical,
        ),
        (
            "trailing newline",
            [payload.as_slice(), b"\n"].concat(),
            canonical,
        ),
        (
            "extra spaces",
            serde_json::to_vec_pretty(&genuine.request).unwrap(),
            canonical,
        ),
        (
            "reordered keys",
            serde_json::to_vec(&value).unwrap(),
            canonical,
        ),
        (
            "escaped character",
            String::from_utf8(payload.clone())
                .unwrap()
                .replacen("Duo", "\\u0044uo", 1)
                .into_bytes(),
            canonical,
        ),
        (
            "duplicate key",
            String::from_utf8(payload.clone())
                .unwrap()
                .replacen('{', "{\"reason\":\"routine\",", 1)
                .into_bytes(),
            "duplicate field `reason`",
        ),
    ];
    for (what, bytes, why) in variants {
        assert_ne!(bytes, payload, "{what}");
        // A valid code (the checksum is right): only the request bytes are off.
        let code = code::encode(CodeKind::Request, &with_core(&o.code, &bytes));
        let out = o.approve_code("bob", &code, &o.words);
        let err = one_line_error(&out);
        assert!(
            err.contains("request.txt: request code")
                && err.contains(why)
                && err.contains("ask the requester to send"),
            "{what}: {err}"
        );
        assert!(!o.home("bob").join("approval.txt").exists(), "{what}");
        // The requester refuses such a file too.
        let file = o.kit.path("noncanonical.txt");
        std::fs::write(&file, &code).unwrap();
        let err = one_line_error(&o.unseal(&file, &[]));
        assert!(err.contains(why), "{what}: {err}");
    }
    // Whitespace around and inside the code text itself is only line wrapping.
    let wrapped = format!("  {}\n   {}  \n", &o.code[..40], &o.code[40..]);
    assert!(o.approve_code("bob", &wrapped, &o.words).status.success());
}

#[test]
fn requests_approval_of_an_edited_copy_with_the_same_request_id_is_refused() {
    let o = open_request();
    // B: request A with a harmless-looking reason, same request id and same
    // ephemeral key. Bob is talked into approving B (he is read B's words).
    let b = forge(&o.code, |r| {
        r.reason = "quarterly drill, nothing urgent".into()
    });
    let b_words = ParsedRequest::parse(&b).unwrap().words().unwrap().join(" ");
    assert_ne!(b_words, o.words);
    let bob = o.approval_of("bob", &b, &b_words);
    let carol = o.approval_of("carol", &o.code, &o.words);

    // The requester unseals A: bob's approval of B is named and not used.
    let err = one_line_error(&o.unseal(&o.request, &[&bob, &carol]));
    assert!(
        err.contains(&format!(
            "approval-bob.txt: approves different request bytes than request {}",
            o.request_id
        )) && err.contains("1 more missing"),
        "{err}"
    );
    let rejected: Vec<serde_json::Value> = o
        .log()
        .into_iter()
        .filter(|e| e["action"] == "approval_rejected")
        .collect();
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert!(rejected[0]["details"]["problem"]
        .as_str()
        .unwrap()
        .contains("approves different request bytes"));
    assert!(!o.log().iter().any(|e| e["action"] == "unseal"));
    // A genuine approval from bob still works: the request was not spent.
    let bob = o.approval_of("bob", &o.code, &o.words);
    assert!(o.unseal(&o.request, &[&bob, &carol]).status.success());
}

/// A second vault on the same machine with the same custodian keys (a forged
/// vault: anyone can seal envelopes to public keys). Returns its path.
fn second_vault(kit: &Kit) -> PathBuf {
    let other = kit.path("other.db");
    let mut init = support::bg(&other);
    init.args(["init", "--threshold", "2"]);
    for name in NAMES {
        init.arg("--custodian")
            .arg(format!("{name}={}", kit.public(name)));
    }
    init.assert().success();
    other
}

fn fingerprint(vault: &Path) -> String {
    let out = support::bg(vault)
        .args(["status", "--json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["fingerprint"].as_str().unwrap().to_string()
}

#[test]
fn requests_custodian_key_pinned_to_one_vault_will_not_approve_for_another() {
    let o = open_request();
    let first = fingerprint(&o.kit.vault);
    o.approval_of("bob", &o.code, &o.words);
    let pins = o.home("bob").join("state/custodian-pins.json");
    assert!(std::fs::read_to_string(&pins).unwrap().contains(&first));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&pins).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // A request from another vault that bob's key also opens.
    let other = second_vault(&o.kit);
    let second = fingerprint(&other);
    assert_ne!(first, second);
    support::bg(&other)
        .args(["custodian", "export", "bob", "--out"])
        .arg(o.home("bob").join("other-envelope.age"))
        .assert()
        .success();
    let out = support::bg(&other)
        .args(["request", "--reason", "please", "--json", "--out"])
        .arg(o.kit.path("other-request.txt"))
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let code = v["code"].as_str().unwrap();
    let words = words_of(&v);
    let out = approve_in(&o.home("bob"), code, "other-envelope.age", &words, "b.txt");
    let err = one_line_error(&out);
    assert!(
        err.contains("VAULT FINGERPRINT MISMATCH")
            && err.contains(&format!("pinned on this machine to vault {first}"))
            && err.contains(&format!("is for vault {second}"))
            && err.contains("re-pin"),
        "{err}"
    );
    assert!(!o.home("bob").join("b.txt").exists());

    // Re-pinning on purpose (as the error says: drop this key's pin) lets it through.
    std::fs::write(&pins, "{}").unwrap();
    let out = approve_in(&o.home("bob"), code, "other-envelope.age", &words, "b.txt");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(std::fs::read_to_string(&pins).unwrap().contains(&second));
}

#[test]
fn requests_custodian_key_pinned_to_one_vault_will_not_drill_another() {
    let kit = Kit::init(&NAMES, 2);
    let first = fingerprint(&kit.vault);
    kit.bg()
        .args(["drill", "--identity"])
        .arg(kit.key("bob"))
        .assert()
        .success();
    // Same machine (same state dir), another vault holding bob's key.
    let other = second_vault(&kit);
    let second = fingerprint(&other);
    let before = support::bg(&other)
        .args(["audit", "log", "--json"])
        .output()
        .unwrap()
        .stdout;
    let out = support::bg(&other)
        .args(["drill", "--identity"])
        .arg(kit.key("bob"))
        .output()
        .unwrap();
    let err = one_line_error(&out);
    assert!(
        err.contains("custodian bob: VAULT FINGERPRINT MISMATCH")
            && err.contains(&format!("pinned on this machine to vault {first}"))
            && err.contains(&format!("is for vault {second}"))
            && err.contains("re-pin"),
        "{err}"
    );
    let after = support::bg(&other)
        .args(["audit", "log", "--json"])
        .output()
        .unwrap()
        .stdout;
    assert_eq!(before, after, "a refused drill writes nothing");
    // The first vault still drills.
    kit.bg()
        .args(["drill", "--identity"])
        .arg(kit.key("bob"))
        .assert()
        .success();
}

#[test]
fn requests_ttl_overflow_is_refused_by_name_without_a_panic() {
    let kit = Kit::init(&NAMES, 2);
    for ttl in [
        "99999999999999d",
        "9223372036854775807d",
        "9223372036854775807s",
        "99999999999999999999999999m",
        "25h",
    ] {
        let out = kit
            .bg()
            .args(["request", "--reason", "r", "--ttl", ttl, "--out"])
            .arg(kit.path("r.txt"))
            .output()
            .unwrap();
        let err = one_line_error(&out);
        assert!(
            err.contains(&format!("--ttl {ttl}: is"))
                && err.contains("too long")
                && err.contains("choose between 1m and 24h"),
            "{ttl}: {err}"
        );
        assert!(!kit.path("r.txt").exists());
    }
    assert_eq!(kit.audit_actions(), ["init"]);
    assert!(!kit.path("state/requests").exists());
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
