//! Disk full and read-only: every writing command, on a vault that cannot take
//! the write.
//!
//! - **Disk full**: the vault and its state directory on a small tmpfs
//!   (4 MiB, mounted by the test: CI runs as root), filled with a file until
//!   0, 4, 16, 24, 28 or 256 KiB are free (long mode: every 4 KiB from 0 to
//!   64, then 96, 128, 192 and 256; `BREAKGLASS_HARNESS_FREE_KIB=0,8,…`
//!   picks others), then each command once on a fresh copy of the same vault.
//!   With this vault, 16–28 KiB free is where a command's first transaction
//!   fits and its second does not.
//! - **Read-only**, three ways, because root ignores permission bits: a 0400
//!   vault file and a 0500 vault directory, with the command run as uid 65534
//!   (`setpriv --reuid=65534 --regid=65534 --clear-groups`, the files chowned
//!   to it) so the bits apply; and a read-only bind mount of the vault
//!   directory (`mount --bind` then `remount,bind,ro`) with the command run
//!   as root, where writes fail with EROFS. `chattr +i` would also stop root,
//!   but not on every file system (tmpfs, overlay), so it is not used.
//!
//! Each run is checked:
//! - a value on stdout has its `reveal` row in the file, and a command that
//!   failed printed no value at all; no value on stderr, ever;
//! - a command that failed changed no file (the vault, its directory, the
//!   state directory, the file the rotation hook writes); the one change
//!   allowed is rows that only record the failure (`unseal_failed`, …),
//!   counted apart;
//! - a command that succeeded wrote all of its rows (a revealing unseal:
//!   the reveal rows and the new epoch; a rekey: the new epoch);
//! - the file passes `PRAGMA integrity_check` and `audit verify` afterwards
//!   (with the space back), and no staging file is left.
//!
//! Without root, or when `mount` or `setpriv` fails, the cases are skipped
//! with the reason printed.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::{
    self, audit_verify, by_mode, first_error, integrity, is_root, leaked, snapshot, stray_files,
    strings, tree, tree_diff, Examples, Rig, Snap,
};

/// Rows that only record that something failed: a failed command may add these.
const FAILURE_ROWS: &[&str] = &[
    "unseal_failed",
    "rekey_failed",
    "rotate_failed",
    "share_rejected",
    "approval_rejected",
    "checkpoint_refused",
    "request_expired",
];

/// What a command that succeeded must have written.
enum Expect {
    Rows(&'static [&'static str]),
    /// The rows and the next epoch.
    RowsAndEpoch(&'static [&'static str]),
    /// A new vault at this path, with its `init` row.
    NewVault(PathBuf),
    /// This file, and these rows in the vault.
    File(PathBuf, &'static [&'static str]),
}

struct Case {
    name: &'static str,
    /// Another `--vault` than the rig's (init).
    vault: Option<PathBuf>,
    args: Vec<String>,
    expect: Expect,
    /// The new value the command deposits.
    canary: Option<(String, String)>,
}

/// The vault every case starts from: four secrets, a runbook, custodian keys
/// pinned by a full drill, a diverged copy (`other.db`) to merge, and a
/// request made here (its file and read-back words) to approve.
struct World {
    words: String,
    request: String,
    applied: PathBuf,
    /// A drill challenge, and bob's proof answering it.
    challenge: String,
    proof: String,
}

fn build_world(rig: &mut Rig) -> World {
    rig.init(2);
    for i in 0..4 {
        let value = rig.canary("stored");
        rig.put(&format!("s{i}"), &value);
    }
    let text = rig.value_file("call the on-call lead");
    rig.ok(&strings(&["runbook", "set", "--file", &text]));
    let mut drill = strings(&["drill", "--full"]);
    drill.extend(rig.identities(3));
    rig.ok(&drill);
    let other = rig.dir.join("other.db");
    std::fs::copy(&rig.vault, &other).unwrap();
    let text = rig.value_file("runbook written on the other copy");
    rig.ok_on(&other, &strings(&["runbook", "set", "--file", &text]));
    let text = rig.value_file("runbook written on this copy");
    rig.ok(&strings(&["runbook", "set", "--file", &text]));
    let request = rig.home.join("request.txt").display().to_string();
    let out = rig.ok(&strings(&[
        "request", "--reason", "harness", "--ttl", "24h", "--out", &request, "--json",
    ]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let words = v["words"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect::<Vec<_>>()
        .join(" ");
    let challenge = rig.home.join("challenge.txt").display().to_string();
    rig.ok(&strings(&["drill", "--remote", "--out", &challenge]));
    let proof = rig.home.join("proof.txt").display().to_string();
    rig.ok(&strings(&[
        "drill",
        "--challenge",
        &challenge,
        "--identity",
        &rig.key("bob"),
        "--out",
        &proof,
    ]));
    World {
        words,
        request,
        applied: rig.home.join("applied"),
        challenge,
        proof,
    }
}

/// Every writing command; outputs go to `out` (the full or read-only directory).
fn cases(rig: &mut Rig, world: &World, out: &Path) -> Vec<Case> {
    let mut cases = Vec::new();
    let out_path = |name: &str| out.join(name);

    let mut init = strings(&["init", "--threshold", "2"]);
    for name in harness::NAMES {
        init.push("--custodian".into());
        init.push(format!("{name}={}", rig.public(name)));
    }
    cases.push(Case {
        name: "init",
        vault: Some(out_path("new.db")),
        args: init,
        expect: Expect::NewVault(out_path("new.db")),
        canary: None,
    });

    let value = rig.canary("put-new");
    let file = rig.value_file(&value);
    cases.push(Case {
        name: "put (new secret)",
        vault: None,
        args: strings(&["put", "fresh", "--kind", "password", "--file", &file]),
        expect: Expect::Rows(&["put"]),
        canary: Some(("fresh".into(), value)),
    });

    let value = rig.canary("put-version");
    let file = rig.value_file(&value);
    cases.push(Case {
        name: "put (new version)",
        vault: None,
        args: strings(&["put", "s1", "--kind", "password", "--file", &file]),
        expect: Expect::Rows(&["put"]),
        canary: Some(("s1".into(), value)),
    });

    let value = rig.canary("rotate");
    let file = rig.value_file(&value);
    let hook = format!("cat > '{}'", world.applied.display());
    cases.push(Case {
        name: "rotate with a hook",
        vault: None,
        args: strings(&["rotate", "s2", "--file", &file, "--apply", &hook]),
        expect: Expect::Rows(&["rotate_started", "rotate"]),
        canary: Some(("s2".into(), value)),
    });

    let mut unseal = strings(&[
        "unseal",
        "--reason",
        "full disk",
        "--json",
        "--reveal",
        "s0",
    ]);
    unseal.extend(rig.identities(2));
    cases.push(Case {
        name: "unseal (revealing)",
        vault: None,
        args: unseal.clone(),
        expect: Expect::RowsAndEpoch(&["unseal", "reveal", "checkpoint", "new_epoch"]),
        canary: None,
    });
    unseal.push("--no-rekey".into());
    cases.push(Case {
        name: "unseal --no-rekey",
        vault: None,
        args: unseal,
        expect: Expect::Rows(&["unseal", "reveal", "rekey_skipped", "checkpoint"]),
        canary: None,
    });

    let mut rekey = strings(&["rekey", "--reason", "full disk", "--json"]);
    rekey.extend(rig.identities(2));
    cases.push(Case {
        name: "rekey",
        vault: None,
        args: rekey,
        expect: Expect::RowsAndEpoch(&["new_epoch"]),
        canary: None,
    });

    let mut drill = strings(&["drill", "--full", "--json"]);
    drill.extend(rig.identities(2));
    cases.push(Case {
        name: "drill --full",
        vault: None,
        args: drill,
        expect: Expect::Rows(&["drill", "drill_full", "checkpoint"]),
        canary: None,
    });
    let mut drill = strings(&["drill", "--json"]);
    drill.extend(rig.identities(1));
    cases.push(Case {
        name: "drill",
        vault: None,
        args: drill,
        expect: Expect::Rows(&["drill"]),
        canary: None,
    });

    let text = rig.value_file("the new runbook");
    cases.push(Case {
        name: "runbook set",
        vault: None,
        args: strings(&["runbook", "set", "--file", &text]),
        expect: Expect::Rows(&["runbook_set"]),
        canary: None,
    });

    let request_out = out_path("out-request.txt");
    cases.push(Case {
        name: "request",
        vault: None,
        args: strings(&[
            "request",
            "--reason",
            "full disk",
            "--ttl",
            "1h",
            "--out",
            &request_out.display().to_string(),
        ]),
        expect: Expect::File(request_out, &["request"]),
        canary: None,
    });

    let approval = out_path("out-approval.txt");
    cases.push(Case {
        name: "approve",
        vault: None,
        args: strings(&[
            "approve",
            "--request",
            &world.request,
            "--identity",
            &rig.key("bob"),
            "--words",
            &world.words,
            "--out",
            &approval.display().to_string(),
        ]),
        expect: Expect::File(approval, &[]),
        canary: None,
    });

    let challenge_out = out_path("out-challenge.txt");
    cases.push(Case {
        name: "drill --remote",
        vault: None,
        args: strings(&[
            "drill",
            "--remote",
            "--out",
            &challenge_out.display().to_string(),
        ]),
        expect: Expect::File(challenge_out, &["drill_challenge"]),
        canary: None,
    });

    let proof_out = out_path("out-proof.txt");
    cases.push(Case {
        name: "drill --challenge",
        vault: None,
        args: strings(&[
            "drill",
            "--challenge",
            &world.challenge,
            "--identity",
            &rig.key("bob"),
            "--out",
            &proof_out.display().to_string(),
        ]),
        expect: Expect::File(proof_out, &[]),
        canary: None,
    });

    cases.push(Case {
        name: "drill --proof",
        vault: None,
        args: strings(&["drill", "--proof", &world.proof]),
        expect: Expect::Rows(&["drill"]),
        canary: None,
    });

    cases.push(Case {
        name: "audit merge",
        vault: None,
        args: strings(&[
            "audit",
            "merge",
            &rig.dir.join("other.db").display().to_string(),
        ]),
        expect: Expect::Rows(&["merged"]),
        canary: None,
    });

    let envelope = out_path("out-alice.age");
    cases.push(Case {
        name: "custodian export",
        vault: None,
        args: strings(&[
            "custodian",
            "export",
            "alice",
            "--out",
            &envelope.display().to_string(),
        ]),
        expect: Expect::File(envelope, &[]),
        canary: None,
    });

    let export = out_path("out-audit.jsonl");
    cases.push(Case {
        name: "audit export",
        vault: None,
        args: strings(&[
            "audit",
            "export",
            "--format",
            "jsonl",
            "--out",
            &export.display().to_string(),
        ]),
        expect: Expect::File(export, &[]),
        canary: None,
    });
    cases
}

#[derive(Default)]
struct Figures {
    runs: usize,
    failed: usize,
    succeeded: usize,
    printed_without_row: usize,
    printed_by_failed: usize,
    changed_after_failure: usize,
    failure_rows_only: usize,
    incomplete: usize,
    corruptions: usize,
    stray: usize,
    stderr_leaks: usize,
    /// command → (runs, failed, runs with a problem)
    per_command: BTreeMap<&'static str, (usize, usize, usize)>,
}

impl Figures {
    fn line(&self, harness: &str, label: &str) -> String {
        format!(
            "{harness} | {label} | runs {} (failed {}, succeeded {}) | values printed without their log row {} | values printed by a failed command {} | changed files after a failure {} | successes missing rows {} | corruptions {} | stray files {} | values on stderr {} | failures that only logged the failure {} ({})",
            self.runs,
            self.failed,
            self.succeeded,
            self.printed_without_row,
            self.printed_by_failed,
            self.changed_after_failure,
            self.incomplete,
            self.corruptions,
            self.stray,
            self.stderr_leaks,
            self.failure_rows_only,
            if harness::long_mode() { "long" } else { "fast" },
        )
    }

    fn problems(&self) -> usize {
        self.printed_without_row
            + self.printed_by_failed
            + self.changed_after_failure
            + self.incomplete
            + self.corruptions
            + self.stray
            + self.stderr_leaks
    }

    fn clean(&self) -> bool {
        self.printed_without_row == 0
            && self.printed_by_failed == 0
            && self.changed_after_failure == 0
            && self.incomplete == 0
            && self.corruptions == 0
            && self.stray == 0
            && self.stderr_leaks == 0
    }
}

/// How one run is set up and undone, and what it watches.
struct Conditions<'a> {
    label: String,
    /// Make the write impossible (fill the disk, drop permissions, mount read-only).
    impose: &'a mut dyn FnMut(&mut Rig),
    /// Give the space or the permissions back, so the checks can read.
    lift: &'a mut dyn FnMut(&mut Rig),
    /// Every file a failed command must leave as it was (relative path → bytes).
    files: &'a dyn Fn(&Rig) -> BTreeMap<String, Vec<u8>>,
    /// The vault's key in `files`.
    vault_key: &'a str,
    /// Directories to search for staging files.
    stray_dirs: Vec<PathBuf>,
}

fn run_case(
    rig: &mut Rig,
    world: &World,
    case: &Case,
    when: &mut Conditions<'_>,
    f: &mut Figures,
    examples: &mut Examples,
) {
    let what = format!("{} ({})", case.name, when.label);
    let problems_before = f.problems();
    let before: Snap = snapshot(&rig.vault).unwrap();
    let _ = std::fs::remove_file(&world.applied);
    let files_before = (when.files)(rig);
    (when.impose)(rig);
    let vault = case.vault.clone().unwrap_or_else(|| rig.vault.clone());
    let out = rig.command_on(&vault).args(&case.args).output().unwrap();
    let files_after = (when.files)(rig);
    (when.lift)(rig);
    f.runs += 1;
    println!(
        "{what}: {}",
        match out.status.code() {
            Some(0) => "ok".to_string(),
            code => format!("exit {code:?}: {}", first_error(&out)),
        }
    );

    let mut canaries = rig.canaries();
    canaries.extend(case.canary.clone());
    for (name, _) in leaked(&out.stderr, &canaries) {
        f.stderr_leaks += 1;
        examples.add(format!("{what}: {name}'s value on stderr"));
    }
    let after = match integrity(&rig.vault).and_then(|()| snapshot(&rig.vault)) {
        Ok(after) => after,
        Err(e) => {
            f.corruptions += 1;
            examples.add(format!("{what}: {e}"));
            let tally = f.per_command.entry(case.name).or_default();
            tally.0 += 1;
            tally.1 += usize::from(!out.status.success());
            tally.2 += 1;
            return;
        }
    };
    if let Err(e) = audit_verify(rig, &rig.vault) {
        f.corruptions += 1;
        examples.add(format!("{what}: {e}"));
    }
    let head = before.head();
    for (name, _) in leaked(&out.stdout, &canaries) {
        if !out.status.success() {
            f.printed_by_failed += 1;
            examples.add(format!(
                "{what}: failed ({}) but printed {name}'s value",
                first_error(&out)
            ));
        }
        if !after.has_row(head, "reveal", name, None) {
            f.printed_without_row += 1;
            examples.add(format!("{what}: printed {name}'s value with no reveal row"));
        }
    }
    let rows = after.actions_since(head);
    if out.status.success() {
        f.succeeded += 1;
        let missing = |actions: &[&str]| -> Vec<String> {
            actions
                .iter()
                .filter(|a| !rows.iter().any(|r| r == *a))
                .map(|a| a.to_string())
                .collect()
        };
        let problem = match &case.expect {
            Expect::Rows(actions) => {
                let m = missing(actions);
                (!m.is_empty()).then(|| format!("rows {m:?} missing (new rows {rows:?})"))
            }
            Expect::RowsAndEpoch(actions) => {
                let m = missing(actions);
                if !m.is_empty() || after.epoch != before.epoch + 1 {
                    Some(format!(
                        "rows {m:?} missing, epoch {}→{} (new rows {rows:?})",
                        before.epoch, after.epoch
                    ))
                } else {
                    None
                }
            }
            Expect::NewVault(path) => match snapshot(path) {
                Ok(s) if s.rows.iter().any(|r| r.action == "init") => None,
                Ok(_) => Some(format!("{} has no init row", path.display())),
                Err(e) => Some(e),
            },
            Expect::File(path, actions) => {
                let m = missing(actions);
                let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
                (size == 0 || !m.is_empty())
                    .then(|| format!("{} has {size} bytes; rows {m:?} missing", path.display()))
            }
        };
        if let Some(problem) = problem {
            f.incomplete += 1;
            examples.add(format!("{what}: exit 0 but {problem}"));
        }
    } else {
        f.failed += 1;
        let diff = tree_diff(&files_before, &files_after);
        if !diff.is_empty() {
            let only_failure_rows = diff.iter().all(|d| *d == format!("~{}", when.vault_key))
                && !rows.is_empty()
                && rows.iter().all(|a| FAILURE_ROWS.contains(&a.as_str()))
                && after.versions == before.versions
                && after.epoch == before.epoch;
            if only_failure_rows {
                f.failure_rows_only += 1;
            } else {
                f.changed_after_failure += 1;
                examples.add(format!(
                    "{what}: failed ({}) but changed {diff:?} (new rows {rows:?})",
                    first_error(&out)
                ));
            }
        }
    }
    let stray_dirs: Vec<&Path> = when.stray_dirs.iter().map(PathBuf::as_path).collect();
    let stray = stray_files(&stray_dirs);
    if !stray.is_empty() {
        f.stray += stray.len();
        examples.add(format!("{what}: left {}", stray.join(", ")));
    }
    let bad = f.problems() > problems_before;
    let tally = f.per_command.entry(case.name).or_default();
    tally.0 += 1;
    tally.1 += usize::from(!out.status.success());
    tally.2 += usize::from(bad);
}

/// A mount made by this test, unmounted when dropped.
struct Mount(PathBuf);

impl Mount {
    fn run(args: &[&str], path: &Path) -> Result<(), String> {
        let out = Command::new(args[0])
            .args(&args[1..])
            .arg(path)
            .output()
            .map_err(|e| format!("{}: {e}", args[0]))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{} {}: {}",
                args.join(" "),
                path.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    fn tmpfs(path: &Path, kib: u64) -> Result<Mount, String> {
        let size = format!("size={kib}k,mode=0700");
        Mount::run(&["mount", "-t", "tmpfs", "-o", &size, "tmpfs"], path)?;
        Ok(Mount(path.to_path_buf()))
    }

    /// `path` bind-mounted read-only over itself.
    fn read_only(path: &Path) -> Result<Mount, String> {
        let p = path.display().to_string();
        Mount::run(&["mount", "--bind", &p], path)?;
        let mount = Mount(path.to_path_buf());
        Mount::run(&["mount", "-o", "remount,bind,ro"], path)?;
        Ok(mount)
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if Mount::run(&["umount"], &self.0).is_err() {
            let _ = Mount::run(&["umount", "-l"], &self.0);
        }
    }
}

/// Fill `dir`'s file system with `dir/filler`, then leave `free_kib` free.
fn fill(dir: &Path, free_kib: u64) {
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    let chunk = vec![0u8; 256 * 1024];
    loop {
        match file.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(28) => break,
            Err(e) => panic!("filling {}: {e}", path.display()),
        }
    }
    let len = file.metadata().unwrap().len();
    file.set_len(len.saturating_sub(free_kib * 1024)).unwrap();
}

fn finish(harness: &str, per_label: Vec<(String, Figures)>, examples: Examples) {
    let mut clean = true;
    let mut lines = Vec::new();
    let mut per_command: BTreeMap<&str, (usize, usize, usize)> = BTreeMap::new();
    for (label, f) in &per_label {
        let line = f.line(harness, label);
        harness::report(&line);
        clean &= f.clean();
        lines.push(line);
        for (command, (runs, failed, bad)) in &f.per_command {
            let t = per_command.entry(command).or_default();
            t.0 += runs;
            t.1 += failed;
            t.2 += bad;
        }
    }
    for (command, (runs, failed, bad)) in per_command {
        harness::report(&format!(
            "{harness} | {command} | runs {runs} | failed {failed} | runs with a problem {bad}"
        ));
    }
    if !examples.is_empty() {
        println!("{harness}: examples:{}", examples.text());
    }
    assert!(clean, "{}{}", lines.join("\n"), examples.text());
}

#[test]
fn disk_full_every_writing_command() {
    if !is_root() {
        println!("SKIPPED disk full: not root (mounting a tmpfs needs root; CI runs as root, run the long mode as root)");
        return;
    }
    let mount_dir = tempfile::tempdir().unwrap();
    let mount = match Mount::tmpfs(mount_dir.path(), 4096) {
        Ok(m) => m,
        Err(e) => {
            println!("SKIPPED disk full: {e}");
            return;
        }
    };
    let full = mount.0.clone();
    let mut rig = Rig::new(Some(&full));
    let world = build_world(&mut rig);
    let template = rig.save("full");
    let sizes: Vec<u64> = std::env::var("BREAKGLASS_HARNESS_FREE_KIB")
        .ok()
        .map(|list| {
            list.split(',')
                .filter_map(|n| n.trim().parse().ok())
                .collect()
        })
        .unwrap_or_else(|| {
            by_mode(
                vec![0, 4, 16, 24, 28, 256],
                (0..=64).step_by(4).chain([96, 128, 192, 256]).collect(),
            )
        });
    let mut examples = Examples::default();
    let mut per_size = Vec::new();
    for free in sizes {
        let mut f = Figures::default();
        let list = cases(&mut rig, &world, &full);
        for case in &list {
            rig.restore(&template);
            let applied = world.applied.clone();
            let files = move |rig: &Rig| {
                let mut t = tree(&rig.dir, &["filler"]);
                if let Ok(bytes) = std::fs::read(&applied) {
                    t.insert("(hook's system)".into(), bytes);
                }
                t
            };
            let dir = full.clone();
            let mut impose = move |_: &mut Rig| fill(&dir, free);
            let dir = full.clone();
            let mut lift = move |_: &mut Rig| {
                let _ = std::fs::remove_file(dir.join("filler"));
            };
            let mut when = Conditions {
                label: format!("{free} KiB free"),
                impose: &mut impose,
                lift: &mut lift,
                files: &files,
                vault_key: "vault.db",
                stray_dirs: vec![full.clone()],
            };
            run_case(&mut rig, &world, case, &mut when, &mut f, &mut examples);
        }
        per_size.push((format!("{free} KiB free"), f));
    }
    drop(rig);
    drop(mount);
    finish("disk full", per_size, examples);
}

/// `chown -R uid:gid path`.
fn chown_tree(path: &Path, id: u32) {
    let _ = std::os::unix::fs::chown(path, Some(id), Some(id));
    if path.is_dir() {
        for entry in std::fs::read_dir(path).unwrap().flatten() {
            chown_tree(&entry.path(), id);
        }
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn read_only_file_directory_and_mount() {
    if !is_root() {
        println!("SKIPPED read-only: not root (root ignores permission bits, so the test drops to uid 65534 with setpriv, and mounts read-only; both need root)");
        return;
    }
    const NOBODY: u32 = 65534;
    let root = tempfile::tempdir().unwrap();
    set_mode(root.path(), 0o755);
    let dir = root.path().join("v");
    let mut rig = Rig::new(Some(&dir));
    rig.state = root.path().join("state");
    // The test binary may sit where uid 65534 cannot reach it (/root/…): use a
    // hard link (or a copy) in a directory it can reach.
    std::fs::create_dir_all(root.path().join("bin")).unwrap();
    let bin = root.path().join("bin/breakglass");
    if std::fs::hard_link(&rig.bin, &bin).is_err() {
        std::fs::copy(&rig.bin, &bin).unwrap();
    }
    rig.bin = bin;
    set_mode(&rig.home, 0o755);
    let world = build_world(&mut rig);
    let template = rig.save("read-only");

    let setpriv = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(&rig.bin)
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !setpriv {
        println!("SKIPPED read-only 0400 file and 0500 directory: setpriv cannot run the binary as uid 65534");
    }
    let mut modes = Vec::new();
    if setpriv {
        modes.push("0400 vault file");
        modes.push("0500 vault directory");
    }
    modes.push("read-only mount");

    let mut examples = Examples::default();
    let mut per_mode = Vec::new();
    for mode in modes {
        let mut f = Figures::default();
        let list = cases(&mut rig, &world, &dir);
        for case in &list {
            rig.restore(&template);
            let as_nobody = mode != "read-only mount";
            rig.wrapper = if as_nobody {
                strings(&[
                    "setpriv",
                    "--reuid=65534",
                    "--regid=65534",
                    "--clear-groups",
                    "--",
                ])
            } else {
                Vec::new()
            };
            if as_nobody {
                // Not bin/: it may be a hard link to the build's own binary.
                chown_tree(&dir, NOBODY);
                chown_tree(&rig.state, NOBODY);
                chown_tree(&rig.home, NOBODY);
            }
            let (applied, state) = (world.applied.clone(), rig.state.clone());
            let files = move |rig: &Rig| {
                let mut t: BTreeMap<String, Vec<u8>> = tree(&rig.dir, &[])
                    .into_iter()
                    .map(|(k, v)| (format!("v/{k}"), v))
                    .collect();
                t.extend(
                    tree(&state, &[])
                        .into_iter()
                        .map(|(k, v)| (format!("state/{k}"), v)),
                );
                if let Ok(bytes) = std::fs::read(&applied) {
                    t.insert("(hook's system)".into(), bytes);
                }
                t
            };
            let mounted: std::cell::RefCell<Option<Mount>> = std::cell::RefCell::new(None);
            let mut impose = |rig: &mut Rig| match mode {
                "0400 vault file" => set_mode(&rig.vault, 0o400),
                "0500 vault directory" => set_mode(&rig.dir, 0o500),
                _ => match Mount::read_only(&rig.dir) {
                    Ok(m) => *mounted.borrow_mut() = Some(m),
                    Err(e) => panic!("read-only mount: {e}"),
                },
            };
            let mut lift = |rig: &mut Rig| {
                mounted.borrow_mut().take();
                set_mode(&rig.dir, 0o700);
                set_mode(&rig.vault, 0o600);
                rig.wrapper.clear();
            };
            let mut when = Conditions {
                label: mode.to_string(),
                impose: &mut impose,
                lift: &mut lift,
                files: &files,
                vault_key: "v/vault.db",
                stray_dirs: vec![dir.clone(), rig.state.clone()],
            };
            run_case(&mut rig, &world, case, &mut when, &mut f, &mut examples);
        }
        per_mode.push((mode.to_string(), f));
    }
    finish("read-only", per_mode, examples);
}
