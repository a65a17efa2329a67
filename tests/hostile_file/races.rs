//! The same promises under a concurrent process and after a SIGKILL: pins are
//! never lost or left unreadable, an alert cut off by a kill is delivered by
//! the next command, and an endorsement covers only what the user was shown.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use breakglass::crypto::CustodianIdentity;
use breakglass::vault::UnsealRequest;
use breakglass::{Access, Vault};

use crate::support::{self, Kit};
use crate::vault_file::sqlite3;

/// The real binary on `vault`, as a child this test can kill.
fn spawn(vault: &Path, args: &[&str]) -> Child {
    support::spawnable(vault)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

fn pinned_paths(kit: &Kit) -> serde_json::Value {
    let text = std::fs::read_to_string(kit.path("state/pins.json")).unwrap();
    serde_json::from_str::<serde_json::Value>(&text).expect("pins.json parses")["paths"].clone()
}

/// Copies of one vault at `count` new paths.
fn copies(kit: &Kit, prefix: &str, count: usize) -> Vec<PathBuf> {
    (0..count)
        .map(|i| {
            let copy = kit.path(&format!("{prefix}-{i}.db"));
            std::fs::copy(&kit.vault, &copy).unwrap();
            copy
        })
        .collect()
}

#[test]
fn concurrent_first_uses_lose_no_pin() {
    let kit = Kit::init(&["alice", "bob"], 2);
    let paths = copies(&kit, "copy", 12);
    let children: Vec<Child> = paths.iter().map(|p| spawn(p, &["status"])).collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let pinned = pinned_paths(&kit);
    for path in &paths {
        let key = std::fs::canonicalize(path).unwrap().display().to_string();
        assert!(
            pinned.get(&key).is_some(),
            "lost the pin of {key}: {pinned}"
        );
    }
}

#[test]
fn a_kill_never_leaves_the_pins_unreadable() {
    let kit = Kit::init(&["alice", "bob"], 2);
    for (i, path) in copies(&kit, "killed", 40).iter().enumerate() {
        let mut child = spawn(path, &["status"]);
        std::thread::sleep(Duration::from_millis((i as u64 * 3) % 60));
        let _ = child.kill();
        let _ = child.wait();
    }
    pinned_paths(&kit);
    kit.bg().arg("status").assert().success();
    // No staging file is left behind, however many runs were killed.
    let leftovers = staging_leftovers(&kit.path("state"));
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
}

/// Staging files a killed run left (pins staged per process by older
/// versions, a request record's copies) are removed by the next command and
/// never read as records: the open request is listed once.
#[test]
fn staging_files_left_by_killed_runs_are_removed_and_never_read() {
    let kit = Kit::init(&["alice", "bob"], 2);
    let out = kit
        .bg()
        .args(["request", "--reason", "INC-9", "--json", "--out"])
        .arg(kit.path("request.txt"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let id = serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["request_id"]
        .as_str()
        .unwrap()
        .to_string();
    let state = kit.path("state");
    let record = state.join(format!("requests/{id}.json"));
    for staged in ["saving", "closing"] {
        std::fs::copy(&record, state.join(format!("requests/{id}.{staged}"))).unwrap();
    }
    std::fs::write(state.join("pins.json.4242"), "{\"paths\": {").unwrap();
    std::fs::write(state.join("custodian-pins.json.tmp"), "{").unwrap();
    assert_eq!(staging_leftovers(&state).len(), 4);

    let status = kit.json(&["status"]);
    assert_eq!(
        status["open_requests"].as_array().unwrap().len(),
        1,
        "{status}"
    );
    let leftovers = staging_leftovers(&state);
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
    assert!(record.exists(), "the record itself is kept");
}

/// Files in a state directory that are a state file's staging copy:
/// `NAME.json.<digits>` (one per killed process, as older versions named
/// them), `NAME.json.tmp`, and request records' `.saving` / `.closing`.
fn staging_leftovers(state: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for dir in [state.to_path_buf(), state.join("requests")] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let per_pid = name.rsplit_once(".json.").is_some_and(|(_, tail)| {
                !tail.is_empty() && tail.bytes().all(|b| b.is_ascii_digit())
            });
            if per_pid
                || name.ends_with(".tmp")
                || name.ends_with(".saving")
                || name.ends_with(".closing")
            {
                found.push(name);
            }
        }
    }
    found
}

/// A pins file that cannot be read is never taken as "no pins" (that would
/// accept a swapped file): every command stops, names it, and leaves it as is.
#[test]
fn an_unreadable_pins_file_stops_every_command_and_is_kept() {
    let kit = Kit::init(&["alice", "bob"], 2);
    let pins = kit.path("state/pins.json");
    std::fs::write(&pins, "{\"paths\": {\"/elsewhere\": ").unwrap();
    for args in [&["status"][..], &["list"], &["audit", "verify"]] {
        let err = support::one_line_error(&kit.bg().args(args).output().unwrap());
        assert!(
            err.contains(&pins.display().to_string()) && err.contains("is unreadable"),
            "{args:?}: {err}"
        );
    }
    let out = kit
        .bg()
        .args(["put", "vpn", "--kind", "password"])
        .write_stdin("pw")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(
        std::fs::read_to_string(&pins).unwrap(),
        "{\"paths\": {\"/elsewhere\": "
    );
}

/// An alert whose delivery is cut off by a kill stays queued (its queue row
/// was committed with the audit row) and goes out with the next command.
#[test]
fn an_alert_cut_off_by_a_kill_is_delivered_next_time() {
    let kit = Kit::new(&["alice", "bob"]);
    let started = kit.path("sink-started");
    let log = kit.path("events.jsonl");
    // The first delivery hangs (and is killed); later ones append.
    let sink = format!(
        "if [ -e '{s}' ]; then cat >> '{l}'; else touch '{s}'; sleep 30; fi",
        s = started.display(),
        l = log.display()
    );
    let mut init = kit.bg();
    init.args(["init", "--threshold", "2", "--alert-exec", &sink]);
    for n in ["alice", "bob"] {
        init.arg("--custodian")
            .arg(format!("{n}={}", kit.public(n)));
    }
    init.assert().success();
    let mut unseal = support::spawnable(&kit.vault);
    unseal
        .args(["unseal", "--reason", "INC-7", "--no-rekey", "--identity"])
        .arg(kit.key("alice"))
        .arg("--identity")
        .arg(kit.key("bob"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = unseal.spawn().unwrap();
    // The unseal alert is the first delivery: wait until the sink hangs in it.
    for _ in 0..600 {
        if started.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(started.exists(), "the sink never ran");
    // SIGKILL breakglass mid-delivery. The orphaned sink only sleeps, then
    // exits without writing, so it cannot deliver on breakglass's behalf.
    let _ = child.kill();
    let _ = child.wait();
    kit.bg().args(["alerts", "flush"]).assert().success();
    let events = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(events.contains("\"unseal\""), "{events}");
}

/// The list shown to the user is what the quorum endorses: a version
/// deposited (or a ciphertext swapped) by another process after it was shown
/// stays unendorsed.
#[test]
fn an_endorsement_covers_only_what_was_shown() {
    let kit = Kit::init(&["alice", "bob"], 2);
    kit.put("vpn", "password", "pw-1");
    kit.put("db", "password", "db-1");
    // In-process opens keep their pins beside the kit, never in $HOME.
    std::env::set_var("BREAKGLASS_STATE_DIR", kit.path("state"));
    let mut vault = Vault::open(&kit.vault, Access::ReadWrite).unwrap();
    let shown = vault.unendorsed().unwrap();
    assert_eq!(shown.versions.len(), 2);

    // Meanwhile: a new deposit by another process, and a ciphertext swapped in the file.
    kit.put("vpn", "password", "pw-2");
    sqlite3(
        &kit.vault,
        "UPDATE secret_versions SET ciphertext = ciphertext || ' ' WHERE secret = 'db';",
    );

    let identities = ["alice", "bob"]
        .iter()
        .map(|n| {
            let id = CustodianIdentity::parse_file(&std::fs::read(kit.key(n)).unwrap()).unwrap();
            (n.to_string(), id)
        })
        .collect();
    vault
        .unseal(
            UnsealRequest {
                reason: "endorsement race".into(),
                actor: "test@host".into(),
                identities,
                passphrases: vec![],
                reveal: vec![],
                remote: None,
                no_rekey: true,
                one_code: false,
                endorse: shown,
            },
            &mut NoPrompt,
        )
        .unwrap();
    let list = kit.json(&["list"]);
    for secret in list["secrets"].as_array().unwrap() {
        assert_eq!(secret["endorsement"], "unendorsed", "{list}");
    }
}

struct NoPrompt;
impl breakglass::vault::KdfProgress for NoPrompt {}
impl breakglass::vault::UnsealPrompt for NoPrompt {
    fn passphrase(
        &mut self,
        _custodian: &str,
        _still_needed: usize,
    ) -> Option<breakglass::crypto::Passphrase> {
        None
    }
}
