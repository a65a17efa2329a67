//! Security review of the issue-11 remote flow (request codes carrying the
//! manifest and envelopes, custodian-side checks, remote drills): attacks that
//! found a problem, kept as regression tests.

mod support;

use std::path::{Path, PathBuf};

use breakglass::remote::{request::ManifestSection, ParsedRequest};
use support::{bg_without_vault, one_line_error, Kit};

/// A 2-of-3 vault of age custodians; each custodian has a home directory with
/// only their key (`home-NAME/me.key`).
fn vault() -> Kit {
    let kit = Kit::init(&["alice", "bob", "carol"], 2);
    for name in ["alice", "bob", "carol"] {
        let home = home(&kit, name);
        std::fs::create_dir(&home).unwrap();
        std::fs::copy(kit.key(name), home.join("me.key")).unwrap();
    }
    kit
}

fn home(kit: &Kit, name: &str) -> PathBuf {
    kit.path(&format!("home-{name}"))
}

/// `request --out FILE`: the code text.
fn request(kit: &Kit, file: &str) -> String {
    let path = kit.path(file);
    kit.bg()
        .args(["request", "--reason", "Duo outage", "--out"])
        .arg(&path)
        .assert()
        .success();
    std::fs::read_to_string(&path).unwrap().trim().to_string()
}

/// `approve` as custodian `name`, from their home, with only their key.
fn approve(kit: &Kit, name: &str, code: &str, words: &str) -> std::process::Output {
    let home = home(kit, name);
    let _ = std::fs::remove_file(home.join("approval.txt"));
    std::fs::write(home.join("request.txt"), code).unwrap();
    bg_without_vault(&home)
        .args([
            "approve",
            "--request",
            "request.txt",
            "--out",
            "approval.txt",
            "--identity",
            "me.key",
            "--words",
            words,
        ])
        .output()
        .unwrap()
}

fn words_of(code: &str) -> String {
    ParsedRequest::parse(code)
        .unwrap()
        .words()
        .unwrap()
        .join(" ")
}

/// Finding: `check_request` assumes a parsed manifest's vault id is 32 hex
/// digits (`vault_id_bytes().expect(..)`), but `parse_self_signed` never checks
/// it. Anyone who can hand a custodian a code (a swap in transit needs no key:
/// the manifest is self-signed by the attacker's own key, and the genuine
/// envelope is public) makes `approve` panic before the words are asked.
#[test]
fn a_request_whose_manifest_has_a_malformed_vault_id_is_refused_not_a_panic() {
    let kit = vault();
    let code = request(&kit, "req.txt");
    let parsed = ParsedRequest::parse(&code).unwrap();
    let mut m: breakglass::manifest::Manifest =
        serde_json::from_str(&parsed.manifest.body).unwrap();
    let attacker = breakglass::crypto::VaultSeed::generate().derive_keys();
    m.verify_key = attacker.verify_key().to_hex();
    m.genesis_verify_key = m.verify_key.clone();
    m.vault_id = "not-a-vault-id".into();
    let mut r = parsed.request.clone();
    r.vault_id = m.vault_id.clone();
    r.fingerprint = m.fingerprint();
    let row = breakglass::manifest::sign(m, &attacker, None).to_row();
    let section = ManifestSection {
        body: row.body,
        signatures: row.signatures,
        links: vec![],
    };
    let forged = ParsedRequest::new(r, section, parsed.envelopes.clone())
        .unwrap()
        .code;
    let out = approve(&kit, "bob", &forged, &words_of(&forged));
    let err = one_line_error(&out);
    assert!(err.contains("do not approve"), "{err}");
    assert!(!home(&kit, "bob").join("approval.txt").exists());
    // The genuine request still approves (the test can fail).
    assert!(approve(&kit, "bob", &code, &words_of(&code))
        .status
        .success());
}

/// Finding: the request's free text (requester, reason) is printed raw by
/// `approve` before the words are asked. A code swapped in transit (the
/// genuine manifest and envelopes, only the core's reason changed) can carry
/// terminal control sequences that rewrite what the custodian sees, e.g. the
/// vault fingerprint line or the "Checked:" line.
#[test]
fn approve_prints_no_terminal_control_characters_from_the_request() {
    let kit = vault();
    let code = request(&kit, "req.txt");
    let parsed = ParsedRequest::parse(&code).unwrap();
    let mut r = parsed.request.clone();
    r.reason = "outage\u{1b}[2A\u{1b}[2K\rVault:     BG-FAKE-FAKE-FAKE-FAKE\u{7}".into();
    r.requester = "mallory\u{1b}]0;owned\u{7}".into();
    let forged = ParsedRequest::new(r, parsed.manifest.clone(), parsed.envelopes.clone())
        .unwrap()
        .code;
    // Wrong words: it must fail, but only after the details were shown.
    let out = approve(&kit, "bob", &forged, "a b c d e f");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(stderr.contains("Reason:"), "{stderr}");
    assert!(
        !stderr.chars().any(|c| c.is_control() && c != '\n'),
        "control characters reached the terminal: {stderr:?}"
    );
}

/// `breakglass init` of another vault (same custodian keys) at `path`.
fn other_vault(kit: &Kit, path: &Path) {
    let mut cmd = support::bg(path);
    cmd.args(["init", "--threshold", "2"]);
    for name in ["alice", "bob", "carol"] {
        cmd.arg("--custodian")
            .arg(format!("{name}={}", kit.public(name)));
    }
    cmd.assert().success();
}

/// Finding: `drill --challenge` asks for no words (nothing of the share
/// leaves), yet on first use it pins the custodian key to whatever vault the
/// challenge names. Anyone who knows a custodian's public key can build their
/// own vault around it and send a "drill challenge"; from then on the genuine
/// vault's requests are refused as VAULT FINGERPRINT MISMATCH ("it may be a
/// forged or swapped vault"), in the middle of an outage, and the message
/// tells the custodian to re-pin — towards the genuine one it now calls forged.
#[test]
fn an_unverified_drill_challenge_does_not_make_the_first_pin() {
    let kit = vault();
    let rogue = kit.path("rogue/rogue.db");
    std::fs::create_dir(rogue.parent().unwrap()).unwrap();
    other_vault(&kit, &rogue);
    let challenge = kit.path("rogue-challenge.txt");
    support::bg(&rogue)
        .args(["drill", "--remote", "--out"])
        .arg(&challenge)
        .assert()
        .success();
    let home = home(&kit, "bob");
    std::fs::copy(&challenge, home.join("challenge.txt")).unwrap();
    bg_without_vault(&home)
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
    // The genuine vault's first request must still approve.
    let code = request(&kit, "req.txt");
    let out = approve(&kit, "bob", &code, &words_of(&code));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Finding: with no pin and no `--vault` copy, the key chain starts only from
/// the genesis key, which `check_key_chain` takes as always parseable
/// (`expect("a parsed manifest has a genesis key")`); a self-signed manifest
/// with a malformed `genesis_verify_key` made `approve` panic.
#[test]
fn a_request_whose_manifest_has_a_malformed_genesis_key_is_refused_not_a_panic() {
    let kit = vault();
    let code = request(&kit, "req.txt");
    let parsed = ParsedRequest::parse(&code).unwrap();
    let mut m: breakglass::manifest::Manifest =
        serde_json::from_str(&parsed.manifest.body).unwrap();
    let attacker = breakglass::crypto::VaultSeed::generate().derive_keys();
    m.verify_key = attacker.verify_key().to_hex();
    m.genesis_verify_key = "not-a-key".into();
    let mut r = parsed.request.clone();
    r.fingerprint = m.fingerprint();
    let row = breakglass::manifest::sign(m, &attacker, None).to_row();
    let section = ManifestSection {
        body: row.body,
        signatures: row.signatures,
        links: vec![],
    };
    let forged = ParsedRequest::new(r, section, parsed.envelopes.clone())
        .unwrap()
        .code;
    let out = approve(&kit, "bob", &forged, &words_of(&forged));
    let err = one_line_error(&out);
    assert!(err.contains("do not approve"), "{err}");
    assert!(!home(&kit, "bob").join("approval.txt").exists());
}

mod parser {
    use super::*;
    use breakglass::remote::code::{self, CodeKind};
    use proptest::prelude::*;

    /// A real request payload from a real vault (made once).
    fn payload() -> &'static [u8] {
        static PAYLOAD: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
        PAYLOAD.get_or_init(|| {
            let kit = vault();
            code::decode(CodeKind::Request, &request(&kit, "req.txt")).unwrap()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]
        /// Hostile bytes anywhere (length fields, counts, names, links) in a
        /// checksummed code are refused by name, never a panic or a hang.
        #[test]
        fn any_overwritten_bytes_are_refused_or_parse_never_panic(
            at in any::<usize>(),
            bytes in proptest::collection::vec(any::<u8>(), 1..6),
            cut in any::<bool>(),
        ) {
            let mut p = payload().to_vec();
            let at = at % p.len();
            for (i, b) in bytes.iter().enumerate() {
                if at + i < p.len() {
                    p[at + i] = *b;
                }
            }
            if cut {
                p.truncate(at);
            }
            let _ = ParsedRequest::parse(&code::encode(CodeKind::Request, &p));
            let _ = ParsedRequest::parse_challenge(&code::encode(CodeKind::DrillChallenge, &p));
        }

        #[test]
        fn random_payloads_never_panic(p in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = ParsedRequest::parse(&code::encode(CodeKind::Request, &p));
            let _ = breakglass::vault::DrillProof::parse(&code::encode(CodeKind::DrillProof, &p));
        }
    }
}

/// Finding: the encoder has no size limit but every decoder refuses a payload
/// over 256 KiB ("its length field is implausible"). A vault whose manifest and
/// envelopes are that large (many custodians with ssh-rsa keys: each adds about
/// 2 KB to both) made request and challenge codes that no custodian could read,
/// and `request` still logged the request and printed words. Too large must be
/// refused when the code is made, by name.
#[test]
fn a_request_too_large_for_a_code_is_refused_when_made_not_when_read() {
    let kit = vault();
    let parsed = ParsedRequest::parse(&request(&kit, "req.txt")).unwrap();
    let mut envelopes = parsed.envelopes.clone();
    envelopes.insert("bob".into(), vec![7u8; 300 * 1024]);
    match ParsedRequest::new(parsed.request.clone(), parsed.manifest.clone(), envelopes) {
        Err(e) => assert!(e.to_string().contains("too large"), "{e}"),
        Ok(made) => {
            let read = ParsedRequest::parse(&made.code);
            assert!(
                read.is_ok(),
                "made a code that cannot be read: {:?}",
                read.err()
            );
        }
    }
}
