//! The canary harness (issue 12 §2): a local and a remote ceremony — init,
//! deposit, custodian export, unseal with reveal by local keys, request,
//! approvals by an age and a passphrase custodian, unseal with reveal by
//! approvals, rotate with a hook, audit export, alerts to an `exec` sink — run
//! through the real binary, with canary values, a canary passphrase, the
//! custodians' age keys and every share of every epoch as needles. It scans:
//!
//! - `/proc/<pid>/cmdline` and `environ` of every breakglass process while it
//!   runs, and of the hooks and sinks it starts (polled every millisecond);
//! - every file under the test's directory but its own inputs (the vault, its
//!   journal, the state directories, exports, codes, alert output);
//! - the stdout and stderr of every command, except the stdout of the two
//!   explicit reveals;
//! - a core dump attempt: `kill -ABRT` on a breakglass that holds a canary
//!   value in memory, started with `ulimit -c unlimited` in an empty directory
//!   (the core pattern here is `core`, relative): no core file, and the kernel
//!   reports no core dumped. A control process in the same place does dump.
//!
//! Figures: places scanned / hits (hits must be 0), printed at the end (run
//! with `--nocapture` to see them). `BREAKGLASS_CANARY_ROUNDS=N` repeats the
//! whole run N times (the long mode); the default is one round.

mod support;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use support::Kit;

/// One secret to look for, in the forms it could leak in.
struct Needle {
    label: String,
    bytes: Vec<u8>,
}

#[derive(Default)]
struct Harness {
    needles: Vec<Needle>,
    hits: Vec<String>,
    /// (command number, pid, "cmdline" | "environ") read at least once.
    proc_places: BTreeSet<(usize, u32, &'static str)>,
    /// Places refused to the test (non-dumpable, read by another user).
    proc_unreadable: BTreeSet<(usize, u32, &'static str)>,
    /// (command number, pid) of breakglass processes and of their children.
    breakglass_procs: BTreeSet<(usize, u32)>,
    child_procs: BTreeSet<(usize, u32)>,
    commands: usize,
    /// Commands whose breakglass process was seen running at least once.
    commands_seen: usize,
    stream_places: usize,
    file_places: usize,
    max_vmlck_kib: u64,
}

impl Harness {
    fn add(&mut self, label: &str, bytes: &[u8]) {
        self.needles.push(Needle {
            label: label.to_string(),
            bytes: bytes.to_vec(),
        });
    }

    /// A canary value or passphrase: raw, hex and base64.
    fn add_text(&mut self, label: &str, text: &str) {
        self.add(label, text.as_bytes());
        self.add(&format!("{label} (hex)"), hex::encode(text).as_bytes());
        let b64 = base64::engine::general_purpose::STANDARD.encode(text);
        self.add(&format!("{label} (base64)"), b64.as_bytes());
    }

    /// A custodian's age key: its text and its raw 32 bytes.
    fn add_age_key(&mut self, label: &str, key_file: &Path) {
        use bech32::FromBase32;
        let text = std::fs::read_to_string(key_file).unwrap();
        let text = text.trim();
        self.add(label, text.as_bytes());
        let (_, data, _) = bech32::decode(&text.to_lowercase()).unwrap();
        let raw = Vec::<u8>::from_base32(&data).unwrap();
        assert_eq!(raw.len(), 32);
        self.add(&format!("{label} (raw)"), &raw);
        self.add(&format!("{label} (hex)"), hex::encode(&raw).as_bytes());
    }

    /// The share inside an exported envelope, opened here with the
    /// custodian's key: raw (with and without its index byte), hex (lower
    /// and upper case) and base64.
    fn add_share(&mut self, label: &str, envelope: &Path, key_file: &Path) -> Vec<u8> {
        let identity: age::x25519::Identity = std::fs::read_to_string(key_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let ciphertext = std::fs::read(envelope).unwrap();
        let plaintext = age::decrypt(&identity, &ciphertext).unwrap();
        // The record ends with the share: index byte + 32 bytes (SHARE_LEN 33).
        let share = plaintext[plaintext.len() - 33..].to_vec();
        assert_ne!(share[0], 0, "a share index is never 0");
        self.add(label, &share);
        self.add(&format!("{label} (32 bytes)"), &share[1..]);
        self.add(&format!("{label} (hex)"), hex::encode(&share).as_bytes());
        self.add(
            &format!("{label} (HEX)"),
            hex::encode_upper(&share).as_bytes(),
        );
        self.add(
            &format!("{label} (32 bytes, hex)"),
            hex::encode(&share[1..]).as_bytes(),
        );
        let b64 = base64::engine::general_purpose::STANDARD.encode(&share);
        self.add(&format!("{label} (base64)"), b64.as_bytes());
        share
    }

    fn check(&mut self, place: &str, haystack: &[u8]) {
        for n in &self.needles {
            if contains(haystack, &n.bytes) {
                self.hits.push(format!("{} in {place}", n.label));
            }
        }
    }

    /// Read cmdline and environ of `root` and all its descendants.
    fn scan_proc_tree(&mut self, command: usize, root: u32) -> bool {
        let mut seen_breakglass = false;
        for (pid, comm) in descendants(root) {
            if comm == "breakglass" {
                seen_breakglass = true;
                self.breakglass_procs.insert((command, pid));
                if let Some(kib) = vmlck_kib(pid) {
                    self.max_vmlck_kib = self.max_vmlck_kib.max(kib);
                }
            } else if pid != root {
                // A hook or an alert sink (`sh`, `cat`, `sleep`) it started.
                self.child_procs.insert((command, pid));
            } else {
                // Still `setsid`, not yet the breakglass it execs.
                continue;
            }
            for file in ["cmdline", "environ"] {
                match std::fs::read(format!("/proc/{pid}/{file}")) {
                    Ok(bytes) => {
                        self.proc_places.insert((command, pid, file));
                        self.check(&format!("/proc/{pid}/{file} ({comm})"), &bytes);
                    }
                    // Refused (non-dumpable, read by another user); a process
                    // that just ended is not a place.
                    Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                        self.proc_unreadable.insert((command, pid, file));
                    }
                    Err(_) => {}
                }
            }
        }
        seen_breakglass
    }

    /// Run `cmd` (all streams piped) to its end, feeding `stdin` and scanning
    /// its process tree every millisecond. Its stdout is scanned unless it is
    /// an explicit reveal.
    fn run(&mut self, label: &str, mut cmd: Command, stdin: &[u8], reveal: bool) -> Output {
        self.commands += 1;
        let number = self.commands;
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let pid = child.id();
        let mut input = child.stdin.take().unwrap();
        let stdin = stdin.to_vec();
        let writer = std::thread::spawn(move || {
            let _ = input.write_all(&stdin);
        });
        let mut out = child.stdout.take().unwrap();
        let mut err = child.stderr.take().unwrap();
        let out_reader = std::thread::spawn(move || {
            let mut v = Vec::new();
            out.read_to_end(&mut v).unwrap();
            v
        });
        let err_reader = std::thread::spawn(move || {
            let mut v = Vec::new();
            err.read_to_end(&mut v).unwrap();
            v
        });
        let mut seen = false;
        let status = loop {
            seen |= self.scan_proc_tree(number, pid);
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        writer.join().unwrap();
        let stdout = out_reader.join().unwrap();
        let stderr = err_reader.join().unwrap();
        if seen {
            self.commands_seen += 1;
        }
        self.check(&format!("stderr of {label}"), &stderr);
        self.stream_places += 1;
        if !reveal {
            self.check(&format!("stdout of {label}"), &stdout);
            self.stream_places += 1;
        }
        let output = Output {
            status,
            stdout,
            stderr,
        };
        assert!(
            output.status.success(),
            "{label}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    /// Every file under `dir` but the test's own inputs.
    fn scan_files(&mut self, dir: &Path, inputs: &[PathBuf]) {
        for file in all_files(dir) {
            if inputs.contains(&file) {
                continue;
            }
            let bytes = std::fs::read(&file).unwrap();
            self.file_places += 1;
            self.check(&file.display().to_string(), &bytes);
        }
    }
}

/// `root` and every process below it, with their `comm`.
fn descendants(root: u32) -> Vec<(u32, String)> {
    let mut table = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // pid (comm) state ppid …; comm may hold spaces, so split at the last ')'.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = stat[open + 1..close].to_string();
        let ppid: u32 = stat[close + 2..]
            .split(' ')
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        table.push((pid, ppid, comm));
    }
    let mut tree: Vec<(u32, String)> = table
        .iter()
        .filter(|(pid, _, _)| *pid == root)
        .map(|(pid, _, comm)| (*pid, comm.clone()))
        .collect();
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i].0;
        for (pid, ppid, comm) in &table {
            if *ppid == parent && !tree.iter().any(|(p, _)| p == pid) {
                tree.push((*pid, comm.clone()));
            }
        }
        i += 1;
    }
    tree
}

fn proc_status_field(pid: u32, field: &str) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(field).map(|v| v.trim().to_string()))
}

fn vmlck_kib(pid: u32) -> Option<u64> {
    proc_status_field(pid, "VmLck:")?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(all_files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

fn nonce() -> String {
    let mut bytes = [0u8; 8];
    rand::Rng::fill(&mut rand::thread_rng(), &mut bytes);
    hex::encode(bytes)
}

/// The test's effective uid.
fn own_uid() -> u32 {
    proc_status_field(std::process::id(), "Uid:")
        .and_then(|uids| uids.split_whitespace().nth(1)?.parse().ok())
        .unwrap()
}

/// As root, the core-dump attempt runs as `nobody` (util-linux `setpriv`):
/// root may read any process's `/proc` files, so only another user shows
/// what non-dumpable changes. Otherwise it runs as the test's own user.
const NOBODY: u32 = 65534;

fn as_runner(root: bool, program: &str) -> Command {
    if root {
        let mut c = Command::new("/usr/bin/setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", program]);
        c
    } else {
        Command::new(program)
    }
}

/// The owner of `/proc/<pid>/environ`, and whether the runner can read it.
/// The kernel gives a non-dumpable process's `/proc` files to root and
/// refuses them to its own user.
fn environ_owner_and_readable(root: bool, pid: u32) -> (u32, bool) {
    use std::os::unix::fs::MetadataExt;
    let path = format!("/proc/{pid}/environ");
    let owner = std::fs::metadata(&path).unwrap().uid();
    let readable = as_runner(root, "cat")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success();
    (owner, readable)
}

fn core_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect()
}

fn send_abrt(pid: u32) {
    let status = Command::new("kill")
        .args(["-s", "ABRT", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// The binary for `vault` (std command, state beside the vault, no terminal).
fn bg(vault: &Path) -> Command {
    let mut cmd = support::detached_binary();
    cmd.arg("--vault")
        .arg(vault)
        .env_remove("BREAKGLASS_VAULT")
        .env(
            "BREAKGLASS_STATE_DIR",
            vault.parent().unwrap().join("state"),
        )
        .env("NO_COLOR", "1");
    cmd
}

/// The binary on a custodian's laptop: no vault, run in `home`.
fn bg_home(home: &Path) -> Command {
    let mut cmd = support::detached_binary();
    cmd.current_dir(home)
        .env_remove("BREAKGLASS_VAULT")
        .env("BREAKGLASS_STATE_DIR", home.join("state"))
        .env("NO_COLOR", "1");
    cmd
}

/// What the core-dump attempt found.
struct CoreFigures {
    runner: &'static str,
    control_dumped: bool,
    control_files: usize,
    breakglass_dumped: bool,
    breakglass_files: usize,
    core_limit_line: String,
    environ_owner: Option<u32>,
    vmlck_kib: Option<u64>,
    warned: bool,
}

/// `kill -ABRT` a control `sleep` and a breakglass `put` that holds a canary
/// value (stdin left open), both started with `ulimit -c unlimited` in an
/// empty directory.
fn core_dump_attempt(h: &mut Harness, kit: &Kit, value: &str, as_nobody: bool) -> CoreFigures {
    use std::os::unix::fs::{chown, PermissionsExt};
    let root = as_nobody;
    let runner_uid = if as_nobody { NOBODY } else { own_uid() };
    let scratch = tempfile::tempdir().unwrap();
    let cores = scratch.path().join("cores");
    std::fs::create_dir(&cores).unwrap();
    let vault = scratch.path().join("vault.db");
    std::fs::copy(&kit.vault, &vault).unwrap();
    let mut binary = assert_cmd::cargo::cargo_bin("breakglass");
    if root {
        for p in [scratch.path(), &cores, &vault] {
            chown(p, Some(NOBODY), Some(NOBODY)).unwrap();
        }
        // Through sh, as below (setpriv itself may still exec it).
        let runs = as_runner(true, "sh")
            .args(["-c", "exec \"$0\" --version"])
            .arg(&binary)
            .output()
            .is_ok_and(|o| o.status.success());
        if !runs {
            // The build directory is closed to nobody: a copy it can run.
            let copy = scratch.path().join("breakglass");
            std::fs::copy(&binary, &copy).unwrap();
            std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
            binary = copy;
        }
    }
    let unlimited = "ulimit -c unlimited 2>/dev/null || ulimit -c hard; exec \"$@\"";

    // The control shows the place is checkable: an ordinary process dumps
    // here, and its /proc files are its user's and readable by them.
    let mut control = as_runner(root, "sh")
        .args(["-c", unlimited, "sh", "sleep", "30"])
        .current_dir(&cores)
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let (owner, readable) = environ_owner_and_readable(root, control.id());
    assert_eq!(
        (owner, readable),
        (runner_uid, true),
        "a dumpable control process: its /proc files are its own user's and readable by it"
    );
    send_abrt(control.id());
    let status = control.wait().unwrap();
    let control_dumped = status.core_dumped();
    let control_files = core_files(&cores).len();
    for f in core_files(&cores) {
        std::fs::remove_file(f).unwrap();
    }

    h.commands += 1;
    let number = h.commands;
    let mut child = as_runner(root, "sh")
        .args(["-c", unlimited, "sh", "setsid"])
        .arg(&binary)
        .arg("--vault")
        .arg(&vault)
        .args(["put", "held", "--kind", "password"])
        .env_remove("BREAKGLASS_VAULT")
        .env("BREAKGLASS_STATE_DIR", scratch.path().join("state"))
        .env("NO_COLOR", "1")
        .current_dir(&cores)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    // The value goes in; stdin stays open, so the process waits holding it.
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(value.as_bytes()).unwrap();
    stdin.flush().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    // Through setpriv and sh, the pid ends up as breakglass (each execs).
    while !h.scan_proc_tree(number, pid) {
        if child.try_wait().unwrap().is_some() {
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            panic!("breakglass ended early: {err}");
        }
        assert!(Instant::now() < deadline, "breakglass did not start");
        std::thread::sleep(Duration::from_millis(5));
    }
    h.commands_seen += 1;
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        child.try_wait().unwrap().is_none(),
        "put must wait for the end of its stdin"
    );
    h.scan_proc_tree(number, pid);
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let core_limit_line = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert_eq!(
        core_limit_line, "Max core file size 0 0 bytes",
        "started with an unlimited core size, breakglass must set soft and hard to 0"
    );
    // Root reads every process's /proc files: the check needs another user.
    let environ_owner = (runner_uid != 0).then(|| {
        let (owner, readable) = environ_owner_and_readable(root, pid);
        assert_eq!(
            (owner, readable),
            (0, false),
            "breakglass's /proc files must be root's and closed to its own user (non-dumpable)"
        );
        owner
    });
    let vmlck_kib = vmlck_kib(pid);
    send_abrt(pid);
    drop(stdin);
    let status = child.wait().unwrap();
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    child.stdout.unwrap().read_to_end(&mut stdout).unwrap();
    child.stderr.unwrap().read_to_end(&mut stderr).unwrap();
    h.check("stdout of the aborted put", &stdout);
    h.check("stderr of the aborted put", &stderr);
    h.stream_places += 2;
    assert_eq!(status.signal(), Some(6), "killed by SIGABRT");
    let breakglass_dumped = status.core_dumped();
    let breakglass_files = core_files(&cores).len();
    for f in core_files(&cores) {
        // Scanned before the assertion below fails, so the report names it.
        let bytes = std::fs::read(&f).unwrap();
        h.check(&format!("core file {}", f.display()), &bytes);
    }
    assert!(!breakglass_dumped, "the kernel reports a core dumped");
    assert_eq!(breakglass_files, 0, "a core file was written");
    // The one warning line when memory is not locked, and only then.
    let stderr = String::from_utf8_lossy(&stderr);
    let warnings = stderr.matches("memory is not locked").count();
    let locked = vmlck_kib.unwrap_or(0) > 0;
    assert_eq!(
        warnings,
        usize::from(!locked),
        "VmLck {vmlck_kib:?} kB; stderr: {stderr}"
    );
    // Whatever the aborted put left behind is scanned too.
    h.scan_files(scratch.path(), &[binary.clone()]);
    CoreFigures {
        runner: if as_nobody {
            "nobody"
        } else if runner_uid == 0 {
            "root"
        } else {
            "the test's user"
        },
        control_dumped,
        control_files,
        breakglass_dumped,
        breakglass_files,
        core_limit_line,
        environ_owner,
        vmlck_kib,
        warned: warnings == 1,
    }
}

fn one_round(h: &mut Harness) -> Vec<CoreFigures> {
    let n = nonce();
    let vpn = format!("CANARYvpn{n}");
    let db = format!("CANARYdb{n}");
    let rotated = format!("CANARYrotated{n}");
    let held = format!("CANARYheld{n}");
    let passphrase = format!("canary passphrase {n} orbit lantern");
    for (label, text) in [
        ("value vpn", &vpn),
        ("value db", &db),
        ("rotated value", &rotated),
        ("value held at the abort", &held),
        ("passphrase", &passphrase),
    ] {
        h.add_text(label, text);
    }

    let kit = Kit::new(&["alice", "bob"]);
    std::fs::create_dir(kit.path("home")).unwrap();
    std::fs::create_dir(kit.path("tmp")).unwrap();
    for name in ["alice", "bob"] {
        h.add_age_key(&format!("{name}'s age key"), &kit.key(name));
    }
    support::write_private(&kit.path("erin.pass"), &passphrase);
    let alerts = kit.path("alerts.jsonl");
    // The sink takes its time, so every vault-writing command is still running
    // (and scanned) while it delivers.
    let sink = format!(
        "cat >> '{}'; echo >> '{}'; sleep 0.2",
        alerts.display(),
        alerts.display()
    );

    // Local ceremony.
    let mut init = bg(&kit.vault);
    init.args(["init", "--threshold", "2", "--insecure-test-only-kdf"]);
    for name in ["alice", "bob"] {
        init.arg("--custodian")
            .arg(format!("{name}={}", kit.public(name)));
    }
    init.args(["--custodian", "erin=passphrase", "--passphrase-file"])
        .arg(format!("erin={}", kit.path("erin.pass").display()))
        .arg("--alert-exec")
        .arg(&sink);
    h.run("init", init, b"", false);
    let mut put = bg(&kit.vault);
    put.args(["put", "vpn", "--kind", "password", "--username", "admin"]);
    h.run("put vpn", put, vpn.as_bytes(), false);
    let mut put = bg(&kit.vault);
    put.args(["put", "db", "--kind", "password"]);
    h.run("put db", put, db.as_bytes(), false);

    let export = |h: &mut Harness, epoch: u32| {
        let dir = kit.path(&format!("exports-epoch{epoch}"));
        let mut cmd = bg(&kit.vault);
        cmd.args(["custodian", "export", "--all", "--out-dir"])
            .arg(&dir);
        h.run(
            &format!("custodian export (epoch {epoch})"),
            cmd,
            b"",
            false,
        );
        for name in ["alice", "bob"] {
            h.add_share(
                &format!("{name}'s epoch-{epoch} share"),
                &dir.join(format!("{name}.age")),
                &kit.key(name),
            );
        }
    };
    export(h, 1);

    let mut unseal = bg(&kit.vault);
    unseal
        .args(["unseal", "--reason", "canary outage", "--reveal", "vpn"])
        .arg("--identity")
        .arg(kit.key("alice"))
        .arg("--identity")
        .arg(kit.key("bob"));
    let out = h.run("local unseal (reveal)", unseal, b"", true);
    assert!(String::from_utf8_lossy(&out.stdout).contains(&vpn));
    // The matcher finds a needle where one is: the explicit reveal.
    assert!(
        h.needles
            .iter()
            .any(|n| n.label == "value vpn" && contains(&out.stdout, &n.bytes)),
        "the scan would miss the revealed value"
    );
    export(h, 2);

    // Remote ceremony: bob with his age key, erin with her passphrase, at home.
    let mut request = bg(&kit.vault);
    request
        .args(["request", "--reason", "canary remote", "--json", "--out"])
        .arg(kit.path("req.txt"));
    let out = h.run("request", request, b"", false);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let words = v["words"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect::<Vec<_>>()
        .join(" ");
    for name in ["bob", "erin"] {
        let home = kit.path(&format!("home-{name}"));
        std::fs::create_dir_all(home.join("tmp")).unwrap();
        let mut approve = bg_home(&home);
        approve.args([
            "approve",
            "--request",
            "-",
            "--out",
            "a.txt",
            "--words",
            &words,
        ]);
        if name == "erin" {
            std::fs::copy(kit.path("erin.pass"), home.join("pass")).unwrap();
            approve.args(["--passphrase-file", "erin=pass"]);
        } else {
            std::fs::copy(kit.key(name), home.join("me.key")).unwrap();
            approve.args(["--identity", "me.key"]);
        }
        let code = std::fs::read(kit.path("req.txt")).unwrap();
        h.run(&format!("approve ({name})"), approve, &code, false);
    }
    let mut unseal = bg(&kit.vault);
    unseal
        .args(["unseal", "--reveal", "db", "--request"])
        .arg(kit.path("req.txt"))
        .arg("--approval")
        .arg(kit.path("home-bob/a.txt"))
        .arg(kit.path("home-erin/a.txt"));
    let out = h.run("remote unseal (reveal)", unseal, b"", true);
    assert!(String::from_utf8_lossy(&out.stdout).contains(&db));
    export(h, 3);

    // Rotation with a hook that takes the new value on stdin, slowly.
    let hook_got = kit.path("hook-got.sha256");
    let mut rotate = bg(&kit.vault);
    rotate
        .args(["rotate", "vpn", "--apply"])
        .arg(format!("sha256sum > '{}'; sleep 0.3", hook_got.display()));
    h.run("rotate with hook", rotate, rotated.as_bytes(), false);
    let got = std::fs::read_to_string(&hook_got).unwrap();
    let want = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(rotated.as_bytes()))
    };
    assert!(got.starts_with(&want), "the hook got the rotated value");

    // Exports for auditors, and the alerts.
    let mut audit = bg(&kit.vault);
    audit
        .args(["audit", "export", "--out"])
        .arg(kit.path("audit.jsonl"));
    h.run("audit export (jsonl)", audit, b"", false);
    let mut audit = bg(&kit.vault);
    audit
        .args(["audit", "export", "--format", "csv", "--out"])
        .arg(kit.path("audit.csv"));
    h.run("audit export (csv)", audit, b"", false);
    let mut list = bg(&kit.vault);
    list.args(["alerts", "list", "--all", "--json"]);
    h.run("alerts list", list, b"", false);
    let mut log = bg(&kit.vault);
    log.args(["audit", "log", "--json"]);
    h.run("audit log", log, b"", false);
    let delivered = std::fs::read_to_string(&alerts).unwrap();
    for action in ["unseal", "rotate"] {
        assert!(
            delivered.contains(action),
            "the exec sink wrote a {action} event: {delivered}"
        );
    }

    // As root: once as root (memory locked) and once as nobody (not locked,
    // and non-dumpable shows in /proc); otherwise as the test's user.
    let mut cores = vec![core_dump_attempt(h, &kit, &held, false)];
    if own_uid() == 0 && Path::new("/usr/bin/setpriv").exists() {
        cores.push(core_dump_attempt(h, &kit, &held, true));
    }

    // Every file written, but the test's own inputs (keys and passphrase).
    let inputs = [
        kit.key("alice"),
        kit.key("bob"),
        kit.path("erin.pass"),
        kit.path("home-erin/pass"),
        kit.path("home-bob/me.key"),
    ];
    h.scan_files(kit.dir.path(), &inputs);
    cores
}

#[test]
fn canaries_never_leave_through_proc_files_streams_or_a_core() {
    let rounds: usize = std::env::var("BREAKGLASS_CANARY_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(1);
    let mut h = Harness::default();
    let mut cores = Vec::new();
    for _ in 0..rounds {
        cores.extend(one_round(&mut h));
    }
    let environ_read = h
        .proc_places
        .iter()
        .filter(|(_, _, f)| *f == "environ")
        .count();
    let hits_where = |pred: &dyn Fn(&String) -> bool| h.hits.iter().filter(|x| pred(x)).count();
    let mut report = format!(
        "canary harness: {rounds} round(s), {} needles per round (values, passphrase, age keys, shares; raw/hex/base64)\n\
         /proc cmdline+environ: {} places scanned / {} hits ({} breakglass processes, {} hook/sink processes; \
         environ read {environ_read}, refused {}; commands seen running {}/{})\n\
         files written: {} scanned / {} hits\n\
         stdout+stderr (the reveals' stdout excluded): {} scanned / {} hits\n\
         memory locked: max VmLck seen in the ceremony {} kB\n\
         core dumps (kill -ABRT under ulimit -c unlimited): {} attempts / {} cores\n",
        h.needles.len() / rounds,
        h.proc_places.len(),
        hits_where(&|x| x.contains("/proc/")),
        h.breakglass_procs.len(),
        h.child_procs.len(),
        h.proc_unreadable.len(),
        h.commands_seen,
        h.commands,
        h.file_places,
        hits_where(&|x| x.contains(" in /") && !x.contains("/proc/")),
        h.stream_places,
        hits_where(&|x| x.contains("stdout") || x.contains("stderr")),
        h.max_vmlck_kib,
        cores.len(),
        cores
            .iter()
            .map(|c| usize::from(c.breakglass_dumped) + c.breakglass_files)
            .sum::<usize>(),
    );
    for c in &cores {
        report.push_str(&format!(
            "  as {}: core dumped {} / core files {} (control sleep: dumped {}, files {}); {}; \
             non-dumpable seen in /proc: {}; VmLck {:?} kB; memory warning {}\n",
            c.runner,
            c.breakglass_dumped,
            c.breakglass_files,
            c.control_dumped,
            c.control_files,
            c.core_limit_line,
            match c.environ_owner {
                Some(owner) => format!("environ owned by uid {owner} and refused to its own user"),
                None => "not checkable (root reads every process's /proc files)".to_string(),
            },
            c.vmlck_kib,
            c.warned,
        ));
    }
    report.push_str(&format!("hits: {:?}", h.hits));
    println!("{report}");
    assert!(h.hits.is_empty(), "{report}");
    // The scan saw what it claims to scan.
    assert!(h.breakglass_procs.len() >= h.commands / 2, "{report}");
    assert!(
        !h.child_procs.is_empty(),
        "no hook or sink was scanned: {report}"
    );
    assert!(h.file_places >= 15, "{report}");
}
