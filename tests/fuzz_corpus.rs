//! Replays every committed fuzz corpus file (fuzz/corpus/<target>/) through the
//! same harness the `cargo fuzz` target runs (breakglass::fuzzing), on stable
//! Rust: a parser that starts panicking on an input the fuzzer once found, or
//! on a real code, vault or export, fails here without nightly.
//!
//! Crashes found by fuzzing have their own named tests below, with their input
//! kept in the corpus.

use std::path::{Path, PathBuf};

use breakglass::fuzzing::TARGETS;

fn corpus(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
}

fn files(target: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus(target))
        .unwrap_or_else(|e| panic!("fuzz/corpus/{target}: {e}"))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Held by whatever opens a vault here: the state directory is process-wide.
static VAULT_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn replay(target: &str) -> usize {
    let _guard =
        (target == "vault_file").then(|| VAULT_LOCK.lock().unwrap_or_else(|e| e.into_inner()));
    let (_, harness) = TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .unwrap_or_else(|| panic!("no harness {target}"));
    let files = files(target);
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        let result = std::panic::catch_unwind(|| harness(&bytes));
        assert!(
            result.is_ok(),
            "harness {target} panicked on {}",
            file.display()
        );
    }
    files.len()
}

#[test]
fn every_target_has_a_harness_and_a_seeded_corpus() {
    let mut dirs: Vec<String> =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
    dirs.sort();
    let mut names: Vec<String> = TARGETS.iter().map(|(n, _)| n.to_string()).collect();
    names.sort();
    assert_eq!(
        dirs, names,
        "fuzz/corpus/* and breakglass::fuzzing::TARGETS differ"
    );
    for name in &names {
        let target = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/fuzz_targets")
            .join(format!("{name}.rs"));
        let source = std::fs::read_to_string(&target)
            .unwrap_or_else(|e| panic!("{}: {e}", target.display()));
        assert!(
            source.contains(&format!("breakglass::fuzzing::{name}(")),
            "{} does not run the shared harness",
            target.display()
        );
        assert!(
            files(name).iter().any(|f| f
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("real-")),
            "fuzz/corpus/{name} has no seed from a real output"
        );
    }
}

macro_rules! replay_tests {
    ($($name:ident),* $(,)?) => {$(
        #[test]
        fn $name() {
            assert!(replay(stringify!($name)) > 0);
        }
    )*};
}

mod replays_corpus {
    use super::replay;
    replay_tests!(
        request_code,
        drill_challenge,
        drill_proof,
        approval_code,
        enrolment_code,
        manifest,
        envelope,
        audit_export,
        vault_file,
    );
}

/// The seeds named `real-*` (and the re-sealed approval) are what the binary
/// really wrote, and each passes its parser: a seed the parser refused at its
/// first check would leave the fuzzer outside the code it is meant to reach.
#[test]
fn real_seeds_pass_their_parsers() {
    use breakglass::crypto::{self, CustodianIdentity, DecryptOutcome};
    use breakglass::remote::code::{self, CodeKind};
    use breakglass::remote::{Enrolment, ParsedRequest};
    use breakglass::vault::{verify_export, DrillProof};

    let read =
        |target: &str, file: &str| std::fs::read_to_string(corpus(target).join(file)).unwrap();
    let request = ParsedRequest::parse(&read("request_code", "real-request.txt")).unwrap();
    assert!(!request.is_drill());
    assert!(
        ParsedRequest::parse_challenge(&read("drill_challenge", "real-challenge.txt"))
            .unwrap()
            .is_drill()
    );
    DrillProof::parse(&read("drill_proof", "real-proof.txt")).unwrap();
    Enrolment::parse(&read("enrolment_code", "real-enrolment.txt")).unwrap();

    let identity = CustodianIdentity::parse_file(breakglass::fuzzing::FUZZ_IDENTITY.as_bytes())
        .unwrap()
        .pop()
        .unwrap();
    let sealed = code::decode(
        CodeKind::Approval,
        &read("approval_code", "resealed-approval.txt"),
    )
    .unwrap();
    let DecryptOutcome::Plaintext(plaintext) = crypto::decrypt(&sealed, &identity) else {
        panic!("the re-sealed approval does not open with the fuzz key");
    };
    assert_eq!(&plaintext[..8], b"BGAPPR2\0");
    code::decode(
        CodeKind::Approval,
        &read("approval_code", "real-approval.txt"),
    )
    .unwrap();
    let envelope = std::fs::read(corpus("envelope").join("resealed-share-record.age")).unwrap();
    assert!(
        matches!(crypto::decrypt(&envelope, &identity), DecryptOutcome::Plaintext(p) if p.starts_with(b"BGSHARE1"))
    );

    let chain = read("manifest", "real-chain.txt");
    let lines: Vec<&str> = chain.lines().collect();
    let rows: Vec<breakglass::store::ManifestRow> = lines
        .chunks(3)
        .map(|r| breakglass::store::ManifestRow {
            epoch: r[0].parse().unwrap(),
            body: r[1].to_string(),
            signatures: r[2].to_string(),
        })
        .collect();
    assert!(rows.len() >= 2, "the seed chain has a second epoch");
    breakglass::manifest::verify_chain(&rows).unwrap();

    let export = read("audit_export", "real-export.jsonl");
    let anchor = read("audit_export", "real-anchor.txt");
    breakglass::audit::Anchor::parse(anchor.trim()).unwrap();
    verify_export(&export, None).unwrap();
    verify_export(&export, Some(anchor.trim())).unwrap();

    // The vault_file harness points BREAKGLASS_STATE_DIR at its own scratch
    // directory; this test holds the same lock and leaves a state directory
    // that outlives it, so whichever runs first, the other still has one.
    let _guard = VAULT_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap().keep();
    std::env::set_var("BREAKGLASS_STATE_DIR", state);
    let vault = dir.path().join("vault.db");
    std::fs::copy(corpus("vault_file").join("real-vault.vault"), &vault).unwrap();
    let opened = breakglass::Vault::open(&vault, breakglass::Access::ReadOnly).unwrap();
    assert!(opened.verify_audit().is_ok());
    assert_eq!(opened.list().unwrap().secrets.len(), 1);
}

/// An export whose first row claims seq u64::MAX (with a hash that matches,
/// as anyone can compute it) and has a row after it: the next expected seq
/// overflowed, a panic in a checked build (found while writing the audit
/// export harness; the input is `fuzz/corpus/audit_export/seq-overflow.jsonl`).
#[test]
fn export_seq_overflow_is_refused_not_a_panic() {
    let export =
        std::fs::read_to_string(corpus("audit_export").join("seq-overflow.jsonl")).unwrap();
    let first: breakglass::audit::Entry =
        serde_json::from_str(export.lines().nth(1).unwrap()).unwrap();
    assert_eq!(first.seq, u64::MAX);
    let (_, report) = breakglass::vault::verify_export(&export, None).unwrap();
    assert!(!report.ok);
    let problem = report.problem.unwrap();
    assert!(problem.contains("seq"), "{problem}");
}
