//! Shared pieces of the reliability harnesses: the mode, a vault rig driven
//! through the real binary, snapshots of the file read with rusqlite, and the
//! checks run after every kill or failure.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use age::secrecy::ExposeSecret;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The custodians of every harness vault; keys are `NAME.key` in the rig's home.
pub const NAMES: [&str; 3] = ["alice", "bob", "carol"];

/// `BREAKGLASS_LONG_HARNESS=1`: the long mode (release build, as root).
pub fn long_mode() -> bool {
    std::env::var("BREAKGLASS_LONG_HARNESS").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// `fast` in the normal test run, `long` in the long mode.
pub fn by_mode<T>(fast: T, long: T) -> T {
    if long_mode() {
        long
    } else {
        fast
    }
}

/// A seeded generator: `BREAKGLASS_HARNESS_SEED` repeats a run; the seed is printed.
pub fn rng(label: &str) -> StdRng {
    let seed: u64 = std::env::var("BREAKGLASS_HARNESS_SEED")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(rand::random);
    println!("{label}: BREAKGLASS_HARNESS_SEED={seed}");
    let mixed = label
        .bytes()
        .fold(seed, |h, b| h.rotate_left(7) ^ u64::from(b));
    StdRng::seed_from_u64(mixed)
}

/// Print one line of figures (and append it to `$BREAKGLASS_HARNESS_REPORT`).
pub fn report(line: &str) {
    println!("FIGURES {line}");
    if let Some(path) = std::env::var_os("BREAKGLASS_HARNESS_REPORT") {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "{line}");
        }
    }
}

pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .map(|l| l.split_whitespace().next() == Some("0"))
        })
        .unwrap_or(false)
}

/// A clear "the vault is busy, try again" error, the only error a race may give.
pub fn is_busy(stderr: &str) -> bool {
    let s = stderr.to_lowercase();
    (s.contains("busy") || s.contains("in progress"))
        && (s.contains("retry") || s.contains("try again") || s.contains("wait"))
}

/// The first line of stderr that says what went wrong, for examples.
pub fn first_error(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    stderr
        .lines()
        .find(|l| l.starts_with("error"))
        .or_else(|| stderr.lines().next())
        .unwrap_or("")
        .chars()
        .take(300)
        .collect()
}

/// Collected example problems: the first few of each kind, for the failure message.
#[derive(Default)]
pub struct Examples(Vec<String>);

impl Examples {
    pub fn add(&mut self, text: String) {
        if self.0.len() < 12 {
            self.0.push(text);
        }
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn take(self) -> Vec<String> {
        self.0
    }
    pub fn text(&self) -> String {
        self.0
            .iter()
            .map(|e| format!("\n  - {e}"))
            .collect::<String>()
    }
}

/// A vault with three age custodians (2-of-3), driven through the binary.
/// The keys, value files, templates and check copies live in `home` (the
/// ordinary disk); the vault file and its state directory live in `dir`,
/// which may be a tmpfs or a directory made read-only.
pub struct Rig {
    pub home: PathBuf,
    pub dir: PathBuf,
    pub vault: PathBuf,
    pub state: PathBuf,
    pub bin: PathBuf,
    /// A command the binary runs under (e.g. `setpriv` to another uid).
    pub wrapper: Vec<String>,
    /// The value of every version deposited: (secret, version) → value.
    pub values: BTreeMap<(String, u32), String>,
    counter: u64,
    _temp: tempfile::TempDir,
}

impl Rig {
    /// Keys in a fresh temp dir; the vault in `dir` (created), or beside the keys.
    pub fn new(dir: Option<&Path>) -> Rig {
        let temp = tempfile::tempdir().unwrap();
        let home = temp.path().to_path_buf();
        for name in NAMES {
            let identity = age::x25519::Identity::generate();
            crate::support::write_private(
                &home.join(format!("{name}.key")),
                identity.to_string().expose_secret(),
            );
            std::fs::write(
                home.join(format!("{name}.pub")),
                identity.to_public().to_string(),
            )
            .unwrap();
        }
        let dir = dir.map_or_else(|| home.join("v"), Path::to_path_buf);
        std::fs::create_dir_all(&dir).unwrap();
        Rig {
            vault: dir.join("vault.db"),
            state: dir.join("state"),
            dir,
            home,
            bin: assert_cmd::cargo::cargo_bin("breakglass"),
            wrapper: Vec::new(),
            values: BTreeMap::new(),
            counter: 0,
            _temp: temp,
        }
    }

    /// The binary on `vault`, with this rig's state directory and no ambient settings.
    pub fn command_on(&self, vault: &Path) -> Command {
        // In a session of its own, without a controlling terminal (as
        // support::detached_binary does): a run from a terminal never stops
        // at a prompt. setsid execs in place, so the child's pid stays the
        // binary's (the kill loop kills that pid).
        let mut argv: Vec<std::ffi::OsString> = self.wrapper.iter().map(Into::into).collect();
        argv.push(self.bin.clone().into());
        let mut cmd = if Path::new("/usr/bin/setsid").exists() {
            let mut c = Command::new("/usr/bin/setsid");
            c.arg("--wait").args(&argv);
            c
        } else {
            let mut c = Command::new(&argv[0]);
            c.args(&argv[1..]);
            c
        };
        cmd.arg("--vault")
            .arg(vault)
            .env_remove("BREAKGLASS_VAULT")
            .env_remove("BREAKGLASS_FINGERPRINT")
            .env("BREAKGLASS_STATE_DIR", &self.state)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        cmd
    }

    pub fn command(&self) -> Command {
        self.command_on(&self.vault)
    }

    pub fn run(&self, args: &[String]) -> Output {
        self.command().args(args).output().unwrap()
    }

    /// Run and insist on success.
    pub fn ok(&self, args: &[String]) -> Output {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "breakglass {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    pub fn ok_on(&self, vault: &Path, args: &[String]) -> Output {
        let out = self.command_on(vault).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "breakglass --vault {} {args:?}: {}",
            vault.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    pub fn key(&self, name: &str) -> String {
        self.home.join(format!("{name}.key")).display().to_string()
    }

    pub fn public(&self, name: &str) -> String {
        std::fs::read_to_string(self.home.join(format!("{name}.pub"))).unwrap()
    }

    /// `--identity` arguments for the first `k` custodians.
    pub fn identities(&self, k: usize) -> Vec<String> {
        NAMES[..k]
            .iter()
            .flat_map(|n| ["--identity".to_string(), self.key(n)])
            .collect()
    }

    /// A fresh canary value: unique, recognisable anywhere it leaks to.
    pub fn canary(&mut self, label: &str) -> String {
        self.counter += 1;
        format!(
            "CANARY-{label}-{}-{:016x}",
            self.counter,
            rand::random::<u64>()
        )
    }

    /// Write `value` to a new file in `home` (0600) and return its path.
    pub fn value_file(&mut self, value: &str) -> String {
        self.counter += 1;
        let path = self.home.join(format!("value-{}", self.counter));
        crate::support::write_private(&path, value);
        path.display().to_string()
    }

    /// A 2-of-3 vault (or `threshold`-of-3).
    pub fn init(&self, threshold: usize) {
        let mut args: Vec<String> =
            vec!["init".into(), "--threshold".into(), threshold.to_string()];
        for name in NAMES {
            args.push("--custodian".into());
            args.push(format!("{name}={}", self.public(name)));
        }
        self.ok(&args);
    }

    /// Deposit `value` as a new version of `name` and remember it.
    pub fn put(&mut self, name: &str, value: &str) {
        let file = self.value_file(value);
        self.ok(&strings(&[
            "put", name, "--kind", "password", "--file", &file,
        ]));
        let version = snapshot(&self.vault).unwrap().max_version(name);
        self.values
            .insert((name.to_string(), version), value.to_string());
    }

    /// Every canary value this rig deposited.
    pub fn canaries(&self) -> Vec<(String, String)> {
        self.values
            .iter()
            .map(|((name, _), value)| (name.clone(), value.clone()))
            .collect()
    }

    /// Keep the vault directory (vault, copies, state), the state directory
    /// (when it is elsewhere) and the values, to restore later.
    pub fn save(&self, label: &str) -> Template {
        let dir = self.home.join(format!("template-{label}"));
        let _ = std::fs::remove_dir_all(&dir);
        copy_tree(&self.dir, &dir.join("dir"), &[]);
        if !self.state.starts_with(&self.dir) && self.state.exists() {
            copy_tree(&self.state, &dir.join("state"), &[]);
        }
        Template {
            dir,
            values: self.values.clone(),
        }
    }

    /// Put the vault directory (and the state directory) back as saved;
    /// everything else in them is removed.
    pub fn restore(&mut self, template: &Template) {
        clear_dir(&self.dir, &[]);
        copy_tree(&template.dir.join("dir"), &self.dir, &[]);
        let state = template.dir.join("state");
        if state.exists() {
            std::fs::create_dir_all(&self.state).unwrap();
            clear_dir(&self.state, &[]);
            copy_tree(&state, &self.state, &[]);
        }
        self.values = template.values.clone();
    }

    /// Reveal `names` on a copy of `vault` (`--no-rekey`, so the check changes
    /// nothing) with the first `threshold` custodians: each name's (version,
    /// value), or why it does not reveal.
    pub fn reveal(
        &mut self,
        vault: &Path,
        threshold: usize,
        names: &[String],
    ) -> BTreeMap<String, Result<(u32, String), String>> {
        let mut result = BTreeMap::new();
        if names.is_empty() {
            return result;
        }
        self.counter += 1;
        let copy = self.home.join(format!("check-{}.db", self.counter));
        if let Err(e) = std::fs::copy(vault, &copy) {
            for name in names {
                result.insert(name.clone(), Err(format!("copy for the check: {e}")));
            }
            return result;
        }
        let unseal = |reveal: &[String]| -> Output {
            let mut args = strings(&[
                "unseal",
                "--reason",
                "harness check",
                "--no-rekey",
                "--json",
            ]);
            args.extend(self.identities(threshold));
            for name in reveal {
                args.push("--reveal".into());
                args.push(name.clone());
            }
            self.command_on(&copy).args(&args).output().unwrap()
        };
        // All at once; a secret that does not reveal stops the unseal and is
        // named in its error: note it and go on without it.
        let mut left: Vec<String> = names.to_vec();
        while !left.is_empty() {
            let out = unseal(&left);
            if out.status.success() {
                collect_revealed(&out, &mut result);
                break;
            }
            let error = first_error(&out);
            match left
                .iter()
                .position(|n| error.contains(&format!("secret {n}:")))
            {
                Some(i) => {
                    result.insert(left.remove(i), Err(error));
                }
                None => {
                    // Not about one secret: try each alone.
                    for name in &left {
                        let out = unseal(std::slice::from_ref(name));
                        if out.status.success() {
                            collect_revealed(&out, &mut result);
                        } else {
                            result.insert(name.clone(), Err(first_error(&out)));
                        }
                    }
                    break;
                }
            }
        }
        let _ = std::fs::remove_file(&copy);
        for name in names {
            result
                .entry(name.clone())
                .or_insert_with(|| Err("not in the unseal's output".into()));
        }
        result
    }

    /// Reveal every active secret with the current epoch's quorum and compare
    /// each value with the one deposited. Run `integrity` first: it rolls back
    /// a hot journal, and the check works on a copy of the file alone.
    pub fn reveal_check(&mut self, vault: &Path, snap: &Snap) -> Result<(), String> {
        let mut problems = Vec::new();
        let mut names = Vec::new();
        for (name, versions) in &snap.versions {
            let active: Vec<u32> = versions
                .iter()
                .filter(|(_, s)| s == "active")
                .map(|(v, _)| *v)
                .collect();
            match active.as_slice() {
                [v] => names.push((name.clone(), *v)),
                other => problems.push(format!(
                    "secret {name} has {} active versions {other:?}",
                    other.len()
                )),
            }
        }
        let list: Vec<String> = names.iter().map(|(n, _)| n.clone()).collect();
        let revealed = self.reveal(vault, snap.threshold, &list);
        for (name, version) in &names {
            match &revealed[name] {
                Err(e) => problems.push(format!("secret {name} v{version} does not reveal: {e}")),
                Ok((got, _)) if got != version => problems.push(format!(
                    "secret {name}: revealed v{got}, the active version is v{version}"
                )),
                Ok((_, value)) => {
                    if self
                        .values
                        .get(&(name.clone(), *version))
                        .is_some_and(|expected| expected != value)
                    {
                        problems.push(format!(
                            "secret {name} v{version} reveals another value than was deposited"
                        ));
                    }
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }
}

fn collect_revealed(out: &Output, into: &mut BTreeMap<String, Result<(u32, String), String>>) {
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    for r in v["revealed"].as_array().into_iter().flatten() {
        into.insert(
            r["name"].as_str().unwrap_or_default().to_string(),
            Ok((
                r["version"].as_u64().unwrap_or_default() as u32,
                r["value"].as_str().unwrap_or_default().to_string(),
            )),
        );
    }
}

/// A saved vault directory and the values deposited in it.
pub struct Template {
    pub dir: PathBuf,
    pub values: BTreeMap<(String, u32), String>,
}

pub fn strings(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

/// Copy every file under `from` to `to` (created), skipping names in `skip`.
pub fn copy_tree(from: &Path, to: &Path, skip: &[&str]) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if skip.iter().any(|s| name == *s) {
            continue;
        }
        let target = to.join(&name);
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target, &[]);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Remove everything in `dir` but the names in `keep`.
pub fn clear_dir(dir: &Path, keep: &[&str]) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if keep.iter().any(|k| entry.file_name() == *k) {
            continue;
        }
        if entry.file_type().unwrap().is_dir() {
            std::fs::remove_dir_all(entry.path()).unwrap();
        } else {
            std::fs::remove_file(entry.path()).unwrap();
        }
    }
}

/// Every file under `dir` (relative path → bytes), skipping top-level names
/// in `skip` and journals SQLite would ignore.
pub fn tree(dir: &Path, skip: &[&str]) -> BTreeMap<String, Vec<u8>> {
    fn walk(base: &Path, dir: &Path, skip: &[&str], out: &mut BTreeMap<String, Vec<u8>>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let rel = path.strip_prefix(base).unwrap().display().to_string();
            if skip.iter().any(|s| rel == *s) {
                continue;
            }
            if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                out.insert(format!("{rel}/"), Vec::new());
                walk(base, &path, &[], out);
            } else {
                let bytes = std::fs::read(&path).unwrap_or_default();
                // SQLite treats a journal that is empty or starts with a zero
                // byte as absent (see `stray_files`); so does the comparison.
                if rel.ends_with("-journal") && bytes.first().is_none_or(|&b| b == 0) {
                    continue;
                }
                out.insert(rel, bytes);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, skip, &mut out);
    out
}

/// What differs between two trees: added, removed and changed paths.
pub fn tree_diff(
    before: &BTreeMap<String, Vec<u8>>,
    after: &BTreeMap<String, Vec<u8>>,
) -> Vec<String> {
    let mut changes = Vec::new();
    for (path, bytes) in after {
        match before.get(path) {
            None => changes.push(format!("+{path}")),
            Some(old) if old != bytes => changes.push(format!("~{path}")),
            Some(_) => {}
        }
    }
    for path in before.keys() {
        if !after.contains_key(path) {
            changes.push(format!("-{path}"));
        }
    }
    changes
}

/// Staging files a command should never leave behind: `*.json.<pid>` (pins),
/// `*.closing` (requests), `.NAME.creating-*` (init) and a hot SQLite
/// journal that a reader did not roll back.
pub fn stray_files(dirs: &[&Path]) -> Vec<String> {
    let mut found = Vec::new();
    for dir in dirs {
        for path in tree(dir, &[]).keys() {
            let name = path.rsplit('/').next().unwrap_or(path);
            let pid_suffix = name.rsplit_once(".json.").is_some_and(|(_, tail)| {
                !tail.is_empty() && tail.bytes().all(|b| b.is_ascii_digit())
            });
            let full = dir.join(path);
            // A journal a killed writer left before its first sync is empty
            // or starts with a zero byte: SQLite treats it as absent (never
            // hot) and the next write transaction reuses and deletes it. A
            // journal that still starts with its magic after a reader opened
            // the file was not rolled back.
            let journal = name.ends_with("-journal")
                && std::fs::read(&full).is_ok_and(|b| b.first().is_some_and(|&c| c != 0));
            if pid_suffix || journal || name.ends_with(".closing") || name.contains(".creating-") {
                found.push(full.display().to_string());
            }
        }
    }
    found
}

/// Values in `text` (name, value) of the canaries given.
pub fn leaked<'a>(text: &[u8], canaries: &'a [(String, String)]) -> Vec<&'a (String, String)> {
    let text = String::from_utf8_lossy(text);
    canaries
        .iter()
        .filter(|(_, value)| text.contains(value.as_str()))
        .collect()
}

/// One audit row.
#[derive(Clone, Debug)]
pub struct Row {
    pub seq: i64,
    pub action: String,
    pub subject: String,
    pub details: serde_json::Value,
}

/// What the file holds, read with rusqlite (no breakglass code involved).
#[derive(Clone, Debug, Default)]
pub struct Snap {
    pub epoch: u64,
    pub threshold: usize,
    pub envelope_epochs: Vec<u64>,
    pub rows: Vec<Row>,
    /// secret → [(version, state)]
    pub versions: BTreeMap<String, Vec<(u32, String)>>,
}

impl Snap {
    pub fn head(&self) -> i64 {
        self.rows.last().map_or(0, |r| r.seq)
    }

    /// Rows appended after seq `head`.
    pub fn since(&self, head: i64) -> Vec<&Row> {
        self.rows.iter().filter(|r| r.seq > head).collect()
    }

    pub fn actions_since(&self, head: i64) -> Vec<String> {
        self.since(head).iter().map(|r| r.action.clone()).collect()
    }

    pub fn active(&self, name: &str) -> Vec<u32> {
        self.versions
            .get(name)
            .map(|v| {
                v.iter()
                    .filter(|(_, s)| s == "active")
                    .map(|(n, _)| *n)
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn max_version(&self, name: &str) -> u32 {
        self.versions
            .get(name)
            .and_then(|v| v.iter().map(|(n, _)| *n).max())
            .unwrap_or(0)
    }

    pub fn state_of(&self, name: &str, version: u32) -> Option<&str> {
        self.versions
            .get(name)?
            .iter()
            .find(|(n, _)| *n == version)
            .map(|(_, s)| s.as_str())
    }

    /// A row of `action` on `subject` after `head`, with `details.version == version` if given.
    pub fn has_row(&self, head: i64, action: &str, subject: &str, version: Option<u32>) -> bool {
        self.since(head).iter().any(|r| {
            r.action == action
                && r.subject == subject
                && version.is_none_or(|v| r.details["version"].as_u64() == Some(u64::from(v)))
        })
    }
}

fn open_rw(vault: &Path) -> Result<rusqlite::Connection, String> {
    let conn = rusqlite::Connection::open_with_flags(
        vault,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| format!("open {}: {e}", vault.display()))?;
    conn.busy_timeout(std::time::Duration::from_secs(20))
        .map_err(|e| e.to_string())?;
    Ok(conn)
}

/// `PRAGMA integrity_check` (a hot journal left by a kill is rolled back first,
/// as SQLite does for any reader).
pub fn integrity(vault: &Path) -> Result<(), String> {
    let conn = open_rw(vault)?;
    let rows: Vec<String> = conn
        .prepare("PRAGMA integrity_check")
        .and_then(|mut s| {
            s.query_map([], |r| r.get::<_, String>(0))?
                .collect::<Result<_, _>>()
        })
        .map_err(|e| format!("integrity_check: {e}"))?;
    if rows == ["ok"] {
        Ok(())
    } else {
        Err(format!("integrity_check: {}", rows.join("; ")))
    }
}

pub fn snapshot(vault: &Path) -> Result<Snap, String> {
    let conn = open_rw(vault)?;
    let err = |e: rusqlite::Error| format!("reading {}: {e}", vault.display());
    let (epoch, body): (i64, String) = conn
        .query_row(
            "SELECT epoch, body FROM manifests ORDER BY epoch DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(err)?;
    let manifest: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let envelope_epochs = conn
        .prepare("SELECT DISTINCT epoch FROM envelopes ORDER BY epoch")
        .and_then(|mut s| {
            s.query_map([], |r| r.get::<_, i64>(0).map(|e| e as u64))?
                .collect::<Result<_, _>>()
        })
        .map_err(err)?;
    let rows = conn
        .prepare("SELECT seq, action, subject, details FROM audit ORDER BY seq")
        .and_then(|mut s| {
            s.query_map([], |r| {
                Ok(Row {
                    seq: r.get(0)?,
                    action: r.get(1)?,
                    subject: r.get(2)?,
                    details: serde_json::from_str(&r.get::<_, String>(3)?).unwrap_or_default(),
                })
            })?
            .collect::<Result<_, _>>()
        })
        .map_err(err)?;
    let mut versions: BTreeMap<String, Vec<(u32, String)>> = BTreeMap::new();
    let list: Vec<(String, i64, String)> = conn
        .prepare("SELECT secret, version, state FROM secret_versions ORDER BY secret, version")
        .and_then(|mut s| {
            s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<Result<_, _>>()
        })
        .map_err(err)?;
    for (secret, version, state) in list {
        versions
            .entry(secret)
            .or_default()
            .push((version as u32, state));
    }
    Ok(Snap {
        epoch: epoch as u64,
        threshold: manifest["threshold"].as_u64().unwrap_or(2) as usize,
        envelope_epochs,
        rows,
        versions,
    })
}

/// `audit verify` through the binary.
pub fn audit_verify(rig: &Rig, vault: &Path) -> Result<(), String> {
    let out = rig
        .command_on(vault)
        .args(["audit", "verify", "--json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    if out.status.success() && v["ok"] == true {
        Ok(())
    } else {
        Err(format!(
            "audit verify: {} {}",
            v["problem"].as_str().unwrap_or(""),
            first_error(&out)
        ))
    }
}

/// A random delay up to `max_ms`.
pub fn random_ms(rng: &mut StdRng, max_ms: u64) -> u64 {
    rng.gen_range(0..=max_ms.max(1))
}
