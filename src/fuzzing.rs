//! Fuzzing harnesses: one function per parser of untrusted input, shared by the
//! `cargo fuzz` targets in `fuzz/` and by `tests/fuzz_corpus.rs`, which replays
//! every committed corpus file through the same functions on stable Rust.
//!
//! Each harness takes arbitrary bytes and must return without panicking,
//! whatever they hold; errors are the expected outcome. Not a stable API.
//!
//! Codes carry a checksum, so random bytes rarely get past it. Every code
//! harness therefore parses the input twice: as pasted text, and as a payload
//! wrapped in a valid code of its kind, which reaches the decoder behind the
//! checksum.

use std::path::PathBuf;
use std::sync::OnceLock;

use crate::audit::Anchor;
use crate::crypto::{self, CustodianIdentity, DecryptOutcome};
use crate::manifest::{self, EpochLink, SignedManifest};
use crate::remote::code::{self, CodeKind};
use crate::remote::{Enrolment, ParsedRequest};
use crate::store::ManifestRow;
use crate::vault::records::{decode_secret, ShareRecord};
use crate::vault::remote::{APPROVAL_HEADER_LEN, APPROVAL_MAGIC};
use crate::vault::{self, DrillProof, Vault};
use crate::Access;

/// A fixed age key the approval and envelope harnesses decrypt with. It guards
/// nothing: seed approvals are sealed to it (`fuzz/seeds.sh`) so that mutated
/// ones reach the age parser and the plaintext behind it.
pub const FUZZ_IDENTITY: &str =
    "AGE-SECRET-KEY-1V5LFLPZNQNDMNWNSQWSWYJ97WW60KU5QSA6DSHZFA2X4NN8WARUQYGSPS2";

/// A harness: arbitrary bytes in, no panic out.
pub type Harness = fn(&[u8]);

/// Every harness by the name of its fuzz target and corpus directory.
pub const TARGETS: &[(&str, Harness)] = &[
    ("request_code", request_code),
    ("drill_challenge", drill_challenge),
    ("drill_proof", drill_proof),
    ("approval_code", approval_code),
    ("enrolment_code", enrolment_code),
    ("manifest", manifest),
    ("envelope", envelope),
    ("audit_export", audit_export),
    ("vault_file", vault_file),
];

fn text(data: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(data)
}

fn identity() -> &'static CustodianIdentity {
    static ID: OnceLock<CustodianIdentity> = OnceLock::new();
    ID.get_or_init(|| {
        CustodianIdentity::parse_file(FUZZ_IDENTITY.as_bytes())
            .expect("the fuzz identity parses")
            .pop()
            .expect("one key")
    })
}

/// What a custodian's machine checks of a parsed request before any key is used:
/// the carried manifest's self-signature, and its key links.
fn check_parsed(parsed: &ParsedRequest) {
    let r = &parsed.request;
    let _ = parsed.is_expired();
    let _ = parsed.request_id_bytes();
    let _ = SignedManifest::parse_self_signed(
        r.epoch,
        &parsed.manifest.body,
        &parsed.manifest.signatures,
    );
    let links = &parsed.manifest.links;
    if let Some(to) = links.iter().map(|l| l.epoch).max() {
        if let Some(first) = links.first() {
            let _ = manifest::follow_links(&r.vault_id, 1, first.verify_key, links, to);
        }
    }
    for envelope in parsed.envelopes.values() {
        open_envelope(envelope);
    }
}

fn request_kind(kind: CodeKind, data: &[u8]) {
    let parse = |t: &str| match kind {
        CodeKind::Request => ParsedRequest::parse(t),
        _ => ParsedRequest::parse_challenge(t),
    };
    if let Ok(parsed) = parse(&text(data)) {
        check_parsed(&parsed);
    }
    if data.len() <= code::MAX_PAYLOAD {
        if let Ok(parsed) = parse(&code::encode(kind, data)) {
            check_parsed(&parsed);
        }
    }
}

/// `approve --request`: a request code (`BGREQ2:`), as text or as a payload.
pub fn request_code(data: &[u8]) {
    request_kind(CodeKind::Request, data)
}

/// `drill --challenge`: a drill challenge code (`BGDRC1:`).
pub fn drill_challenge(data: &[u8]) {
    request_kind(CodeKind::DrillChallenge, data)
}

/// `drill --proof`: a drill proof code (`BGDRP1:`), then its statement's fields.
pub fn drill_proof(data: &[u8]) {
    let check = |proof: DrillProof| {
        let _ = hex::decode(&proof.signature);
        let _ = vault::validate_custodian_name(&proof.statement.custodian);
    };
    if let Ok(proof) = DrillProof::parse(&text(data)) {
        check(proof);
    }
    if data.len() <= code::MAX_PAYLOAD {
        if let Ok(proof) = DrillProof::parse(&code::encode(CodeKind::DrillProof, data)) {
            check(proof);
        }
    }
}

/// The plaintext of an approval, checked as `unseal --request` checks it: the
/// header, then the share record behind it.
fn approval_plaintext(plaintext: &[u8]) {
    if plaintext.len() < APPROVAL_HEADER_LEN || &plaintext[..8] != APPROVAL_MAGIC {
        return;
    }
    let _ = crypto::ct_eq(&plaintext[8..24], &[0u8; 16]);
    if let Some(record) = ShareRecord::decode(&plaintext[APPROVAL_HEADER_LEN..]) {
        let _ = vault::validate_custodian_name(&record.custodian);
    }
}

fn approval_sealed(sealed: &[u8]) {
    if let DecryptOutcome::Plaintext(p) = crypto::decrypt(sealed, identity()) {
        approval_plaintext(&p);
    }
}

/// `unseal --approval`: an approval code (`BGAPR1:`) as text, the same bytes as
/// the age file inside a code, and as the plaintext inside that file.
pub fn approval_code(data: &[u8]) {
    if let Ok(sealed) = code::decode(CodeKind::Approval, &text(data)) {
        approval_sealed(&sealed);
    }
    approval_sealed(data);
    approval_plaintext(data);
}

/// `init --custodian NAME=BGENR1:…`: an enrolment code (`BGENR1:`).
pub fn enrolment_code(data: &[u8]) {
    let _ = Enrolment::parse(&text(data));
    if data.len() <= code::MAX_PAYLOAD {
        let _ = Enrolment::parse(&code::encode(CodeKind::Enrolment, data));
    }
}

/// Manifest rows, three lines each (epoch, body, signatures): each parsed as a
/// request carries one, then all of them as a vault's chain. Also every line
/// as an encoded epoch link.
pub fn manifest(data: &[u8]) {
    let text = text(data);
    let lines: Vec<&str> = text.split('\n').collect();
    let mut rows = Vec::new();
    for row in lines.chunks(3) {
        let [epoch, body, signatures] = row else {
            break;
        };
        let epoch = epoch.trim().parse::<u64>().unwrap_or(0);
        let _ = SignedManifest::parse_self_signed(epoch, body, signatures);
        rows.push(ManifestRow {
            epoch,
            body: body.to_string(),
            signatures: signatures.to_string(),
        });
    }
    let _ = manifest::verify_chain(&rows);
    for line in &lines {
        if let Ok(bytes) = hex::decode(line.trim()) {
            let _ = EpochLink::decode(&bytes);
        }
    }
}

fn open_envelope(sealed: &[u8]) {
    if let DecryptOutcome::Plaintext(p) = crypto::decrypt(sealed, identity()) {
        let _ = ShareRecord::decode(&p);
        let _ = decode_secret(&p);
    }
}

/// Envelope payloads: the bytes as a share record and as a secret record, and
/// as an age file (armored or binary) whose plaintext is decoded both ways.
pub fn envelope(data: &[u8]) {
    let _ = ShareRecord::decode(data);
    let _ = decode_secret(data);
    let _ = crypto::dearmor(data);
    open_envelope(data);
}

/// `audit verify --export FILE [--anchor A]`: each line as an anchor, the text
/// as an export, and, when its last line is an anchor, the rest against it.
pub fn audit_export(data: &[u8]) {
    let text = text(data);
    for line in text.lines() {
        let _ = Anchor::parse(line);
    }
    let _ = vault::verify_export(&text, None);
    let trimmed = text.trim_end();
    if let Some((export, last)) = trimmed.rsplit_once('\n') {
        if last.starts_with("BGANCHOR1") {
            let _ = vault::verify_export(export, Some(last));
        }
    }
}

fn scratch_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("breakglass-fuzz-{}", std::process::id()));
        // Pins and pending requests go here, never to the user's state.
        std::env::set_var("BREAKGLASS_STATE_DIR", dir.join("state"));
        dir
    })
}

/// Opening a vault file made of these bytes read-only (from a fresh temporary
/// file and an empty state directory), then every read-only report on it.
pub fn vault_file(data: &[u8]) {
    let dir = scratch_dir();
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir.join("state")).expect("the fuzz scratch directory");
    let path = dir.join("vault.db");
    std::fs::write(&path, data).expect("the fuzz vault file");
    if let Ok(vault) = Vault::open(&path, Access::ReadOnly) {
        let _ = vault.status();
        let _ = vault.list();
        let _ = vault.custodians();
        let _ = vault.runbook();
        let _ = vault.audit_log();
        let _ = vault.verify_audit();
        let _ = vault.unendorsed();
        if let Ok(anchor) = vault.audit_anchor() {
            if let Ok(parsed) = Anchor::parse(&anchor) {
                let _ = vault.check_anchor(&parsed);
            }
        }
        if let Ok(export) = vault.export_audit(false, None) {
            let _ = vault::verify_export(&export, None);
        }
        let _ = vault.export_audit(true, None);
    }
    let _ = std::fs::remove_dir_all(dir);
}
