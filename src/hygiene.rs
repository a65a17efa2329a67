//! Process hygiene: the one module that changes process-wide OS settings.
//!
//! The binary calls [`protect_process`] first thing in `main`, before it parses
//! an argument or reads a byte of input. It:
//!
//! 1. makes the process **non-dumpable** (`prctl(PR_SET_DUMPABLE, 0)`): the
//!    kernel writes no core file for it, and processes without
//!    `CAP_SYS_PTRACE` (another user, or the same user) can neither attach a
//!    debugger nor read its `/proc/<pid>/environ`, `mem` or `maps`;
//! 2. sets **`RLIMIT_CORE` to 0**, soft and hard, so even a later change of
//!    the dumpable flag (a `setuid` transition, say) yields no core. Apply
//!    hooks and `exec` alert sinks inherit this limit: they get secret values
//!    on their stdin, so they dump no core either;
//! 3. **locks memory** with `mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT)`,
//!    when nothing can make that lock fail later: the process has
//!    `CAP_IPC_LOCK` (root, or `setcap cap_ipc_lock+ep`), or its
//!    `RLIMIT_MEMLOCK` is unlimited once the soft limit is raised to the hard
//!    one. Every page the process touches from then on stays in RAM: the
//!    vault seed and derived keys, shares, passphrases, custodian identities,
//!    revealed and deposited values — including the buffers of the `age` and
//!    `argon2` crates, which no per-buffer lock of ours could reach — and
//!    Argon2id's working memory (256 MiB by default, up to the 4 GiB cap),
//!    which is itself derived from a passphrase. `MCL_ONFAULT` locks pages as
//!    they are touched, so nothing is pre-faulted.
//!
//! Why `mlockall` and not `mlock` of each secret buffer: most secret bytes live
//! in buffers we do not own (age's stream reader, argon2's blocks, the Ed25519
//! and X25519 key schedules), heap pages are shared between allocations, and
//! `mlock` does not nest, so `munlock` on one drop would unlock a neighbour.
//! Locking everything is simpler and covers what we cannot name.
//!
//! Why not `mlockall` under a finite limit: with `MCL_FUTURE`, an allocation
//! beyond `RLIMIT_MEMLOCK` fails, and Rust aborts on a failed allocation. A
//! typical desktop limit (8 MiB) is far below one Argon2id run (256 MiB). So
//! under a finite limit and without `CAP_IPC_LOCK`, memory stays unlocked and
//! [`Hygiene::warning`] gives the one warning line the binary prints before
//! any command that handles a secret. The remedy is `ulimit -l unlimited`
//! (or `memlock unlimited` in limits.conf) or the capability.
//!
//! Limits, stated plainly: root (or anyone with `CAP_SYS_PTRACE`) can still
//! read the memory of a running breakglass; locked pages still reach a
//! hibernation image; and the children the binary runs (hooks, `exec` sinks,
//! `sh`) are ordinary dumpable processes with unlocked memory once they exec.
//!
//! Everything here goes through `rustix`'s safe API: this module holds no
//! `unsafe` code, and the crate keeps `#![forbid(unsafe_code)]`. It is the
//! only place (besides the terminal modes in the binary's `input.rs`) where
//! the crate talks to the OS through `rustix`.

/// What [`protect_process`] achieved.
#[derive(Debug)]
pub struct Hygiene {
    /// Steps that failed (not dumpable, no core): each names its error.
    failures: Vec<String>,
    /// `None` when memory is locked; else why not.
    memory_unlocked: Option<String>,
}

impl Hygiene {
    /// Whether every page the process touches is locked in RAM.
    pub fn memory_locked(&self) -> bool {
        self.memory_unlocked.is_none()
    }

    /// Whether the process is non-dumpable with a core limit of 0.
    pub fn core_dumps_disabled(&self) -> bool {
        self.failures.is_empty()
    }

    /// The single warning line to show before handling a secret, or `None`
    /// when everything was done.
    pub fn warning(&self) -> Option<String> {
        let mut parts: Vec<String> = self.failures.clone();
        if let Some(why) = &self.memory_unlocked {
            parts.push(format!(
                "memory is not locked ({why}): secrets may reach swap; run with `ulimit -l unlimited` or CAP_IPC_LOCK (see SECURITY.md)"
            ));
        }
        (!parts.is_empty()).then(|| format!("warning: {}", parts.join("; ")))
    }
}

/// Make the process non-dumpable, set `RLIMIT_CORE` to 0 and lock memory where
/// the OS allows. Call it first in `main`. It never fails: what it cannot do
/// is reported by [`Hygiene::warning`].
pub fn protect_process() -> Hygiene {
    silence_plugin_transcripts();
    let failures = disable_core_dumps();
    let memory_unlocked = lock_memory().err();
    Hygiene {
        failures,
        memory_unlocked,
    }
}

/// Steps 1 and 2: non-dumpable, and a core limit of 0 (soft and hard).
#[cfg(target_os = "linux")]
fn disable_core_dumps() -> Vec<String> {
    use rustix::process::{set_dumpable_behavior, setrlimit, DumpableBehavior, Resource, Rlimit};
    let mut failures = Vec::new();
    if let Err(e) = set_dumpable_behavior(DumpableBehavior::NotDumpable) {
        failures.push(format!("could not make the process non-dumpable ({e})"));
    }
    let zero = Rlimit {
        current: Some(0),
        maximum: Some(0),
    };
    if let Err(e) = setrlimit(Resource::Core, zero) {
        failures.push(format!("could not set the core size limit to 0 ({e})"));
    }
    failures
}

#[cfg(not(target_os = "linux"))]
fn disable_core_dumps() -> Vec<String> {
    vec!["core dumps are not disabled on this OS (Linux only)".to_string()]
}

/// Step 3: `mlockall` when [`lock_is_safe`] says no later allocation can fail
/// because of it; else why not.
#[cfg(target_os = "linux")]
fn lock_memory() -> Result<(), String> {
    use rustix::mm::{mlockall, MlockAllFlags};
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    use rustix::thread::{capabilities, CapabilitySet};

    let has_ipc_lock = capabilities(None)
        .map(|c| c.effective.contains(CapabilitySet::IPC_LOCK))
        .unwrap_or(false);
    let mut limit = getrlimit(Resource::Memlock);
    if limit.current != limit.maximum {
        // Raising the soft limit to the hard one needs no privilege.
        let raised = Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        if setrlimit(Resource::Memlock, raised).is_ok() {
            limit = raised;
        }
    }
    lock_is_safe(has_ipc_lock, limit.current)?;
    mlockall(MlockAllFlags::CURRENT | MlockAllFlags::FUTURE | MlockAllFlags::ONFAULT)
        .map_err(|e| format!("mlockall failed: {e}"))
}

#[cfg(not(target_os = "linux"))]
fn lock_memory() -> Result<(), String> {
    Err("memory locking is implemented for Linux only".to_string())
}

/// Whether `mlockall(MCL_FUTURE)` can never make a later allocation fail:
/// with `CAP_IPC_LOCK` no limit applies, else the limit must be unlimited
/// (`None`). A finite limit is refused whatever its size: the process cannot
/// bound its locked total in advance (Argon2id up to 4 GiB, thread stacks,
/// allocator arenas count in full).
fn lock_is_safe(has_ipc_lock: bool, memlock_limit: Option<u64>) -> Result<(), String> {
    match (has_ipc_lock, memlock_limit) {
        (true, _) | (false, None) => Ok(()),
        (false, Some(bytes)) => Err(format!(
            "RLIMIT_MEMLOCK is {} and there is no CAP_IPC_LOCK",
            human_bytes(bytes)
        )),
    }
}

fn human_bytes(bytes: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= 1024 && bytes.is_multiple_of(1024) {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} bytes")
    }
}

/// `AGEDEBUG=plugin` makes the `age` crate print every plugin message to
/// stderr, file keys and PINs included. Drop it before any thread starts.
fn silence_plugin_transcripts() {
    if std::env::var_os("AGEDEBUG").is_some() {
        std::env::remove_var("AGEDEBUG");
    }
}

/// Kill (SIGKILL) this process's age plugins (an age plugin that stopped
/// answering; the `age` crate gives us no handle on it): our children whose
/// command line holds the protocol flag `--age-plugin=`, whatever their
/// program is called (a script started through `env`, say). Only one plugin
/// runs at a time. Returns how many were killed. On other systems nothing is
/// killed (the deadline still gives up on the plugin; SECURITY.md says so).
#[cfg(target_os = "linux")]
pub(crate) fn kill_child_plugins() -> usize {
    use rustix::process::{kill_process, Pid, Signal};
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut killed = 0;
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid …": comm may hold spaces and parentheses.
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let ppid = stat[close + 1..]
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok());
        if ppid != Some(me) {
            continue;
        }
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let is_plugin = cmdline
            .split(|b| *b == 0)
            .any(|arg| arg.starts_with(b"--age-plugin="));
        if is_plugin {
            if let Some(pid) = Pid::from_raw(pid) {
                if kill_process(pid, Signal::KILL).is_ok() {
                    killed += 1;
                }
            }
        }
    }
    killed
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn kill_child_plugins() -> usize {
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locking_needs_the_capability_or_no_limit() {
        assert!(lock_is_safe(true, Some(8 << 20)).is_ok());
        assert!(lock_is_safe(true, None).is_ok());
        assert!(lock_is_safe(false, None).is_ok());
        let err = lock_is_safe(false, Some(8 << 20)).unwrap_err();
        assert_eq!(err, "RLIMIT_MEMLOCK is 8 MiB and there is no CAP_IPC_LOCK");
        // Even a large finite limit: Argon2id alone may need up to 4 GiB.
        assert!(lock_is_safe(false, Some(64 << 30)).is_err());
        assert_eq!(human_bytes(65536), "64 KiB");
        assert_eq!(human_bytes(1000), "1000 bytes");
    }

    #[test]
    fn one_warning_line_names_everything_not_done() {
        let all_done = Hygiene {
            failures: vec![],
            memory_unlocked: None,
        };
        assert_eq!(all_done.warning(), None);
        assert!(all_done.memory_locked() && all_done.core_dumps_disabled());
        let unlocked = Hygiene {
            failures: vec!["could not set the core size limit to 0 (EPERM)".into()],
            memory_unlocked: Some("RLIMIT_MEMLOCK is 8 MiB and there is no CAP_IPC_LOCK".into()),
        };
        let line = unlocked.warning().unwrap();
        assert!(!line.contains('\n'), "{line}");
        assert!(
            line.starts_with("warning: could not set the core size limit"),
            "{line}"
        );
        assert!(
            line.contains("memory is not locked (RLIMIT_MEMLOCK is 8 MiB"),
            "{line}"
        );
    }

    /// The real calls, in this test process: afterwards the kernel reports it
    /// non-dumpable with a core limit of 0/0. (The memory lock is left to the
    /// canary harness, which checks `VmLck` of the real binary.)
    #[cfg(target_os = "linux")]
    #[test]
    fn core_dumps_are_disabled_for_real() {
        use rustix::process::{dumpable_behavior, getrlimit, DumpableBehavior, Resource};
        assert!(disable_core_dumps().is_empty());
        assert_eq!(dumpable_behavior().unwrap(), DumpableBehavior::NotDumpable);
        let core = getrlimit(Resource::Core);
        assert_eq!((core.current, core.maximum), (Some(0), Some(0)));
    }
}
