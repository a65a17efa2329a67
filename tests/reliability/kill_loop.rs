//! Kill loop: SIGKILL each writing operation at random points of its life,
//! then check the vault. The window is the length of an unkilled run of the
//! same operation on the same vault plus 30% (re-timed every 20 runs, as the
//! log grows). A third of the kills fall at a random point of the next tenth
//! of the window (so even a short run covers start-up, the work, the commits
//! and, for `rotate`, the apply hook), a third at a random point of its second
//! half, where the commits are, and a third at a random moment (up to a fifth
//! of the window) after the command's first write reached the vault file,
//! where a second transaction would leave a mixed state. 10 kills per
//! operation in the fast mode, 200 in the long mode.
//!
//! After every run, killed or not:
//! - `PRAGMA integrity_check` is ok (corruption otherwise);
//! - `audit verify` passes (corruption otherwise);
//! - every active secret reveals its deposited value with the current
//!   epoch's quorum (`unseal --no-rekey` on a copy; corruption otherwise);
//! - the vault is at exactly the old or the new state of the operation, as
//!   each `classify` below defines it (a mixed state otherwise);
//! - a secret's value on stdout has its `reveal` row in the file;
//! - no staging file (`pins.json.<pid>`, `*.closing`, `.creating-`, journal)
//!   is left in the vault's directory or the state directory.
//!
//! A run that failed a check is counted, and the vault is put back to the
//! starting copy so one fault is not counted again in every later run.

use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::harness::{
    self, audit_verify, by_mode, integrity, leaked, snapshot, stray_files, strings, Examples, Rig,
    Snap,
};

/// Where a run left the vault.
enum Outcome {
    Old,
    New,
    Mixed(String),
}

/// One run of an operation: its arguments and the new value it deposits, if any.
struct Run {
    args: Vec<String>,
    canary: Option<(String, String)>,
}

trait Operation {
    fn name(&self) -> &'static str;
    /// Secrets and copies the operation needs (the vault is a fresh 2-of-3).
    fn setup(&mut self, rig: &mut Rig);
    fn next(&mut self, rig: &mut Rig, before: &Snap, run: usize) -> Run;
    /// Old or new state, or what is mixed. Records a new value in `rig.values`.
    fn classify(&mut self, rig: &mut Rig, before: &Snap, after: &Snap) -> Outcome;
    /// After the checks, before the next run.
    fn tidy(&mut self, _rig: &mut Rig, _after: &Snap) {}
}

fn describe(before: &Snap, after: &Snap) -> String {
    format!(
        "epoch {}→{}, threshold {}→{}, new rows {:?}",
        before.epoch,
        after.epoch,
        before.threshold,
        after.threshold,
        after.actions_since(before.head())
    )
}

#[derive(Default)]
struct Figures {
    runs: usize,
    kills: usize,
    old: usize,
    new: usize,
    corruptions: usize,
    mixed: usize,
    stray: usize,
    printed_without_row: usize,
    errors: usize,
}

fn kill_loop(op: &mut dyn Operation) {
    let kills_wanted = by_mode(10, 200);
    let mut rng = harness::rng(&format!("kill loop {}", op.name()));
    let mut rig = Rig::new(None);
    rig.init(2);
    op.setup(&mut rig);
    let template = rig.save("start");
    let started = Instant::now();
    let mut f = Figures::default();
    let mut examples = Examples::default();
    let mut window_ms: Option<u64> = None;
    let stdout_path = rig.home.join("run.stdout");
    let stderr_path = rig.home.join("run.stderr");
    while f.kills < kills_wanted && f.runs < kills_wanted * 3 + 10 {
        let unkilled = window_ms.is_none() || f.runs % 20 == 0;
        let before = snapshot(&rig.vault).expect("the vault reads before the run");
        let run = op.next(&mut rig, &before, f.runs);
        let began = Instant::now();
        let mut child = rig
            .command()
            .args(&run.args)
            .stdout(std::fs::File::create(&stdout_path).unwrap())
            .stderr(std::fs::File::create(&stderr_path).unwrap())
            .spawn()
            .unwrap();
        if !unkilled {
            let window = window_ms.unwrap_or(100);
            match f.runs % 3 {
                // A random point of the next tenth of the window (cycling),
                // so even a short fast mode covers the whole run.
                0 => {
                    let tenth = (f.runs / 3 % 10) as u64;
                    let delay = (tenth * window + harness::random_ms(&mut rng, window)) / 10;
                    std::thread::sleep(Duration::from_millis(delay));
                }
                // A random point of its second half, where the commits are.
                1 => {
                    let delay = window / 2 + harness::random_ms(&mut rng, window / 2);
                    std::thread::sleep(Duration::from_millis(delay));
                }
                // A random moment up to a fifth of the window after the
                // command's first write reaches the vault file: right after
                // its first commit, where a second transaction would leave a
                // mixed state. Timing alone rarely hits that gap in a short
                // run, as the machine's load shifts every point.
                _ => {
                    let extra = harness::random_ms(&mut rng, window / 5);
                    wait_for_write(&rig.vault, &mut child, Duration::from_millis(window * 2));
                    std::thread::sleep(Duration::from_millis(extra));
                }
            }
            let _ = child.kill();
        }
        let status = child.wait().unwrap();
        let elapsed = began.elapsed().as_millis() as u64;
        f.runs += 1;
        let killed = status.signal() == Some(9);
        let stdout = std::fs::read(&stdout_path).unwrap_or_default();
        let stderr = std::fs::read(&stderr_path).unwrap_or_default();
        if killed {
            f.kills += 1;
        } else {
            if unkilled {
                window_ms = Some((elapsed * 13 / 10).max(5));
            }
            if !status.success() {
                f.errors += 1;
                examples.add(format!(
                    "run {} (not killed) failed: {}",
                    f.runs,
                    String::from_utf8_lossy(&stderr).trim()
                ));
            }
        }
        let when = if killed {
            format!("run {} (killed after {elapsed} ms)", f.runs)
        } else {
            format!("run {} (ran to the end, {elapsed} ms)", f.runs)
        };

        let mut broken = false;
        let after = integrity(&rig.vault).and_then(|()| snapshot(&rig.vault));
        match after {
            Err(e) => {
                f.corruptions += 1;
                broken = true;
                examples.add(format!("{when}: {e}"));
            }
            Ok(after) => {
                if let Err(e) = audit_verify(&rig, &rig.vault) {
                    f.corruptions += 1;
                    broken = true;
                    examples.add(format!("{when}: {e}"));
                }
                match op.classify(&mut rig, &before, &after) {
                    Outcome::Old => f.old += 1,
                    Outcome::New => f.new += 1,
                    Outcome::Mixed(why) => {
                        f.mixed += 1;
                        broken = true;
                        examples.add(format!("{when}: mixed state: {why}"));
                    }
                }
                let vault = rig.vault.clone();
                if let Err(e) = rig.reveal_check(&vault, &after) {
                    f.corruptions += 1;
                    broken = true;
                    examples.add(format!("{when}: {e}"));
                }
                let mut canaries = rig.canaries();
                canaries.extend(run.canary.clone());
                for (name, _) in leaked(&stdout, &canaries) {
                    if !after.has_row(before.head(), "reveal", name, None) {
                        f.printed_without_row += 1;
                        examples.add(format!("{when}: printed {name}'s value with no reveal row"));
                    }
                }
                for (name, _) in leaked(&stderr, &canaries) {
                    f.printed_without_row += 1;
                    examples.add(format!("{when}: printed {name}'s value on stderr"));
                }
                if !broken {
                    op.tidy(&mut rig, &after);
                }
            }
        }
        let stray = stray_files(&[&rig.dir]);
        if !stray.is_empty() {
            f.stray += stray.len();
            examples.add(format!("{when}: left {}", stray.join(", ")));
            for path in stray {
                let _ = std::fs::remove_file(path);
            }
        }
        if broken {
            rig.restore(&template);
        }
    }
    // A killed `rotate` leaves its hook running (it sleeps, then writes into
    // the rig's directory): let the last ones end before the directory goes.
    std::thread::sleep(Duration::from_millis(500));
    let line = format!(
        "kill loop | {} | runs {} | kills {} | corruptions {} | mixed states {} | stray files {} | values printed without their reveal row {} | unkilled runs that failed {} | old {} / new {} | {:.0} s ({})",
        op.name(),
        f.runs,
        f.kills,
        f.corruptions,
        f.mixed,
        f.stray,
        f.printed_without_row,
        f.errors,
        f.old,
        f.new,
        started.elapsed().as_secs_f64(),
        if harness::long_mode() { "long" } else { "fast" },
    );
    harness::report(&line);
    assert!(
        f.kills >= kills_wanted,
        "{line}: too few runs were killed (the kill window is off)"
    );
    assert!(
        f.corruptions == 0
            && f.mixed == 0
            && f.stray == 0
            && f.printed_without_row == 0
            && f.errors == 0,
        "{line}{}",
        examples.text()
    );
}

/// Return once `vault` was written (its modification time or size changed),
/// the child ended, or `limit` passed.
fn wait_for_write(vault: &std::path::Path, child: &mut std::process::Child, limit: Duration) {
    use std::os::unix::fs::MetadataExt;
    let stamp = |m: std::fs::Metadata| (m.mtime(), m.mtime_nsec(), m.size());
    let first = std::fs::metadata(vault).map(stamp).ok();
    let began = Instant::now();
    while began.elapsed() < limit {
        if std::fs::metadata(vault).map(stamp).ok() != first {
            return;
        }
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// `put kp`: old = kp's versions unchanged and no row; new = v+1 active,
/// reveals the new value, and exactly its `put` row.
#[derive(Default)]
struct Put {
    canary: String,
}

impl Operation for Put {
    fn name(&self) -> &'static str {
        "put"
    }
    fn setup(&mut self, rig: &mut Rig) {
        let first = rig.canary("put");
        rig.put("kp", &first);
        let other = rig.canary("other");
        rig.put("other", &other);
    }
    fn next(&mut self, rig: &mut Rig, _before: &Snap, _run: usize) -> Run {
        self.canary = rig.canary("put");
        let file = rig.value_file(&self.canary);
        Run {
            args: strings(&["put", "kp", "--kind", "password", "--file", &file]),
            canary: Some(("kp".into(), self.canary.clone())),
        }
    }
    fn classify(&mut self, rig: &mut Rig, before: &Snap, after: &Snap) -> Outcome {
        let rows = after.actions_since(before.head());
        let v = before.max_version("kp") + 1;
        if rows.is_empty() && before.versions.get("kp") == after.versions.get("kp") {
            Outcome::Old
        } else if after.active("kp") == [v]
            && rows == ["put"]
            && after.has_row(before.head(), "put", "kp", Some(v))
        {
            rig.values.insert(("kp".into(), v), self.canary.clone());
            Outcome::New
        } else {
            Outcome::Mixed(format!(
                "{}; kp versions {:?}",
                describe(before, after),
                after.versions.get("kp")
            ))
        }
    }
}

/// `rotate kr --file NEW --apply HOOK`, the hook sleeping before it writes the
/// value it got to a file (the "system" the credential lives in). Old = the old
/// version still active (the new one absent, or `pending` after a kill between
/// the phases, which `status` flags); new = the new version active, its
/// `rotate` row, and the hook applied exactly that value.
struct Rotate {
    canary: String,
    applied: PathBuf,
    hook_seconds: &'static str,
    abandon_unsupported: bool,
}

impl Operation for Rotate {
    fn name(&self) -> &'static str {
        "rotate with a hook"
    }
    fn setup(&mut self, rig: &mut Rig) {
        let first = rig.canary("rotate");
        rig.put("kr", &first);
        let other = rig.canary("other");
        rig.put("other", &other);
    }
    fn next(&mut self, rig: &mut Rig, _before: &Snap, run: usize) -> Run {
        self.canary = rig.canary("rotate");
        let file = rig.value_file(&self.canary);
        self.applied = rig.home.join(format!("applied-{run}"));
        let hook = format!(
            "sleep {}; cat > '{}'",
            self.hook_seconds,
            self.applied.display()
        );
        Run {
            args: strings(&["rotate", "kr", "--file", &file, "--apply", &hook, "--json"]),
            canary: Some(("kr".into(), self.canary.clone())),
        }
    }
    fn classify(&mut self, rig: &mut Rig, before: &Snap, after: &Snap) -> Outcome {
        let v = before.max_version("kr") + 1;
        let old_active = before.active("kr");
        let active = after.active("kr");
        let rotated = after.has_row(before.head(), "rotate", "kr", Some(v));
        let rows = after.actions_since(before.head());
        if active == old_active
            && !rotated
            && match after.state_of("kr", v) {
                None => rows.is_empty(),
                Some("pending") => rows == ["rotate_started"],
                Some(_) => false,
            }
        {
            return Outcome::Old;
        }
        if active == [v] && rotated {
            let applied = std::fs::read_to_string(&self.applied).unwrap_or_default();
            if applied != self.canary {
                return Outcome::Mixed(format!(
                    "v{v} is active but the hook never applied it ({})",
                    describe(before, after)
                ));
            }
            rig.values.insert(("kr".into(), v), self.canary.clone());
            return Outcome::New;
        }
        Outcome::Mixed(format!(
            "{}; kr versions {:?}",
            describe(before, after),
            after.versions.get("kr")
        ))
    }
    /// An interrupted rotation stays pending; with one rotation at a time it
    /// is ended with `rotate NAME --abandon` (a binary without the flag
    /// abandons it itself on the next rotation).
    fn tidy(&mut self, rig: &mut Rig, after: &Snap) {
        let pending = after
            .versions
            .get("kr")
            .is_some_and(|v| v.iter().any(|(_, s)| s == "pending"));
        if !pending || self.abandon_unsupported {
            return;
        }
        let out = rig.run(&strings(&["rotate", "kr", "--abandon"]));
        if out.status.code() == Some(2) {
            self.abandon_unsupported = true;
        }
    }
}

/// A revealing `unseal` (which ends the epoch). Old = no new row and the same
/// epoch; new = the unseal and reveal rows and the next epoch, whose envelopes
/// are the only ones. Reveal rows with the epoch unchanged are mixed: the
/// shares just combined would still open the vault.
struct Unseal;

impl Operation for Unseal {
    fn name(&self) -> &'static str {
        "revealing unseal"
    }
    fn setup(&mut self, rig: &mut Rig) {
        // A dozen credentials: the re-key re-seals each, as a real kit would.
        for i in 0..12 {
            let value = rig.canary("unseal");
            rig.put(&format!("s{i}"), &value);
        }
    }
    fn next(&mut self, rig: &mut Rig, before: &Snap, _run: usize) -> Run {
        let mut args = strings(&[
            "unseal",
            "--reason",
            "kill loop",
            "--json",
            "--reveal",
            "s0",
            "--reveal",
            "s2",
        ]);
        args.extend(rig.identities(before.threshold));
        Run { args, canary: None }
    }
    fn classify(&mut self, _rig: &mut Rig, before: &Snap, after: &Snap) -> Outcome {
        let rows = after.actions_since(before.head());
        let one_epoch = after.envelope_epochs == [after.epoch];
        if rows.is_empty() && after.epoch == before.epoch && one_epoch {
            return Outcome::Old;
        }
        let head = before.head();
        if after.epoch == before.epoch + 1
            && one_epoch
            && rows.iter().any(|a| a == "unseal")
            && after.has_row(head, "reveal", "s0", None)
            && after.has_row(head, "reveal", "s2", None)
            && rows.iter().any(|a| a == "new_epoch")
        {
            return Outcome::New;
        }
        Outcome::Mixed(format!(
            "{}; envelopes of epochs {:?}",
            describe(before, after),
            after.envelope_epochs
        ))
    }
}

/// `rekey --threshold K` (K alternating 2 and 3). Old = same epoch and
/// threshold, no new row; new = the next epoch under the new threshold, with
/// its `new_epoch` row. The quorum session's rows without the new epoch are
/// mixed.
struct Rekey {
    target: usize,
}

impl Operation for Rekey {
    fn name(&self) -> &'static str {
        "rekey"
    }
    fn setup(&mut self, rig: &mut Rig) {
        for i in 0..12 {
            let value = rig.canary("rekey");
            rig.put(&format!("s{i}"), &value);
        }
    }
    fn next(&mut self, rig: &mut Rig, before: &Snap, _run: usize) -> Run {
        self.target = if before.threshold == 2 { 3 } else { 2 };
        let mut args = strings(&[
            "rekey",
            "--reason",
            "kill loop",
            "--threshold",
            &self.target.to_string(),
            "--json",
        ]);
        args.extend(rig.identities(3));
        Run { args, canary: None }
    }
    fn classify(&mut self, _rig: &mut Rig, before: &Snap, after: &Snap) -> Outcome {
        let rows = after.actions_since(before.head());
        let one_epoch = after.envelope_epochs == [after.epoch];
        if rows.is_empty()
            && after.epoch == before.epoch
            && after.threshold == before.threshold
            && one_epoch
        {
            return Outcome::Old;
        }
        if after.epoch == before.epoch + 1
            && after.threshold == self.target
            && one_epoch
            && rows.iter().any(|a| a == "new_epoch")
        {
            return Outcome::New;
        }
        Outcome::Mixed(format!(
            "{}; envelopes of epochs {:?}",
            describe(before, after),
            after.envelope_epochs
        ))
    }
}

/// `drill --full` with all three custodians. Old = no new row; new = the three
/// `drill` rows, `drill_full` and its `checkpoint`, nothing else.
struct Drill;

impl Operation for Drill {
    fn name(&self) -> &'static str {
        "drill --full"
    }
    fn setup(&mut self, rig: &mut Rig) {
        for i in 0..2 {
            let value = rig.canary("drill");
            rig.put(&format!("s{i}"), &value);
        }
    }
    fn next(&mut self, rig: &mut Rig, _before: &Snap, _run: usize) -> Run {
        let mut args = strings(&["drill", "--full", "--json"]);
        args.extend(rig.identities(3));
        Run { args, canary: None }
    }
    fn classify(&mut self, _rig: &mut Rig, before: &Snap, after: &Snap) -> Outcome {
        let mut rows = after.actions_since(before.head());
        if rows.is_empty() {
            return Outcome::Old;
        }
        rows.sort();
        if rows == ["checkpoint", "drill", "drill", "drill", "drill_full"] {
            return Outcome::New;
        }
        Outcome::Mixed(describe(before, after))
    }
}

/// `audit merge other.db`, where other.db is a diverged copy that gains two
/// entries before every run. Old = no new row; new = one `merged` row for
/// every foreign entry not merged yet, nothing else.
#[derive(Default)]
struct Merge {
    expected: usize,
}

impl Merge {
    fn other(rig: &Rig) -> PathBuf {
        rig.dir.join("other.db")
    }

    /// Foreign entries past the common prefix that no `merged` row cites yet.
    fn fresh(rig: &Rig) -> usize {
        let mine = snapshot(&rig.vault).unwrap();
        let hashes = |path: &std::path::Path| -> Vec<String> {
            let conn = rusqlite::Connection::open_with_flags(
                path,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )
            .unwrap();
            let mut stmt = conn.prepare("SELECT hash FROM audit ORDER BY seq").unwrap();
            let rows = stmt
                .query_map([], |r| r.get::<_, String>(0))
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            rows
        };
        let own = hashes(&rig.vault);
        let foreign = hashes(&Merge::other(rig));
        let common = own.iter().zip(&foreign).take_while(|(a, b)| a == b).count();
        let cited: Vec<&str> = mine
            .rows
            .iter()
            .filter(|r| r.action == "merged")
            .filter_map(|r| r.details["foreign_hash"].as_str())
            .collect();
        foreign[common..]
            .iter()
            .filter(|h| !cited.contains(&h.as_str()))
            .count()
    }
}

impl Operation for Merge {
    fn name(&self) -> &'static str {
        "audit merge"
    }
    fn setup(&mut self, rig: &mut Rig) {
        let value = rig.canary("merge");
        rig.put("s0", &value);
        std::fs::copy(&rig.vault, Merge::other(rig)).unwrap();
        let text = rig.value_file("runbook on this copy");
        rig.ok(&strings(&["runbook", "set", "--file", &text]));
    }
    fn next(&mut self, rig: &mut Rig, _before: &Snap, run: usize) -> Run {
        let other = Merge::other(rig);
        for i in 0..2 {
            let text = rig.value_file(&format!("runbook {run}.{i} on the other copy"));
            rig.ok_on(&other, &strings(&["runbook", "set", "--file", &text]));
        }
        self.expected = Merge::fresh(rig);
        Run {
            args: strings(&["audit", "merge", &other.display().to_string(), "--json"]),
            canary: None,
        }
    }
    fn classify(&mut self, _rig: &mut Rig, before: &Snap, after: &Snap) -> Outcome {
        let rows = after.actions_since(before.head());
        if rows.is_empty() {
            return Outcome::Old;
        }
        if rows.len() == self.expected && rows.iter().all(|a| a == "merged") {
            return Outcome::New;
        }
        Outcome::Mixed(format!(
            "{} merged rows of {} expected; {}",
            rows.iter().filter(|a| *a == "merged").count(),
            self.expected,
            describe(before, after)
        ))
    }
}

#[test]
fn kill_loop_put() {
    kill_loop(&mut Put::default());
}

#[test]
fn kill_loop_rotate_with_a_hook() {
    kill_loop(&mut Rotate {
        canary: String::new(),
        applied: PathBuf::new(),
        hook_seconds: "0.05",
        abandon_unsupported: false,
    });
}

#[test]
fn kill_loop_revealing_unseal() {
    kill_loop(&mut Unseal);
}

#[test]
fn kill_loop_rekey() {
    kill_loop(&mut Rekey { target: 2 });
}

#[test]
fn kill_loop_drill_full() {
    kill_loop(&mut Drill);
}

#[test]
fn kill_loop_audit_merge() {
    kill_loop(&mut Merge::default());
}
