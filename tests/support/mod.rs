//! Shared helpers for the integration tests: they drive the real binary.
#![allow(dead_code)]

pub mod tmux;

use std::path::{Path, PathBuf};

use age::secrecy::ExposeSecret;
use assert_cmd::Command;
use tempfile::TempDir;

/// A temporary directory with a vault path and one age key per custodian.
pub struct Kit {
    pub dir: TempDir,
    pub vault: PathBuf,
    pub names: Vec<String>,
}

impl Kit {
    /// Make keys for `names` (files `NAME.key`, public keys in `NAME.pub`).
    pub fn new(names: &[&str]) -> Kit {
        let dir = tempfile::tempdir().unwrap();
        let vault = dir.path().join("vault.db");
        for name in names {
            let identity = age::x25519::Identity::generate();
            write_private(
                &dir.path().join(format!("{name}.key")),
                identity.to_string().expose_secret(),
            );
            std::fs::write(
                dir.path().join(format!("{name}.pub")),
                identity.to_public().to_string(),
            )
            .unwrap();
        }
        Kit {
            dir,
            vault,
            names: names.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// A K-of-N vault of age custodians.
    pub fn init(names: &[&str], threshold: usize) -> Kit {
        let kit = Kit::new(names);
        let mut cmd = kit.bg();
        cmd.args(["init", "--threshold", &threshold.to_string()]);
        for name in names {
            cmd.arg("--custodian")
                .arg(format!("{name}={}", kit.public(name)));
        }
        cmd.assert().success();
        kit
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    pub fn key(&self, name: &str) -> PathBuf {
        self.path(&format!("{name}.key"))
    }

    pub fn public(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(&format!("{name}.pub"))).unwrap()
    }

    /// The binary, pointed at this kit's vault, with no ambient configuration.
    pub fn bg(&self) -> Command {
        bg(&self.vault)
    }

    pub fn put(&self, name: &str, kind: &str, value: &str) {
        self.bg()
            .args(["put", name, "--kind", kind])
            .write_stdin(value)
            .assert()
            .success();
    }

    /// `unseal` with the keys of `custodians`, revealing `reveal`.
    pub fn unseal(&self, custodians: &[&str], reveal: &[&str]) -> Command {
        let mut cmd = self.bg();
        cmd.args(["unseal", "--reason", "test outage"]);
        for c in custodians {
            cmd.arg("--identity").arg(self.key(c));
        }
        for r in reveal {
            cmd.args(["--reveal", r]);
        }
        cmd
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let out = self.bg().args(args).arg("--json").output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    pub fn audit_actions(&self) -> Vec<String> {
        self.json(&["audit", "log"])["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["action"].as_str().unwrap().to_string())
            .collect()
    }

    pub fn vault_bytes(&self) -> Vec<u8> {
        std::fs::read(&self.vault).unwrap()
    }
}

/// The binary in a session of its own, without a controlling terminal (via
/// util-linux `setsid`), so it never prompts: breakglass asks on `/dev/tty`
/// whatever its standard streams are, and a test run from a terminal must not
/// stop at a prompt there. Where `setsid` is missing, the binary itself.
/// (tests/terminal.rs runs the binary on a real terminal, in tmux, instead.)
pub fn detached_binary() -> std::process::Command {
    let binary = assert_cmd::cargo::cargo_bin("breakglass");
    if Path::new("/usr/bin/setsid").exists() {
        let mut cmd = std::process::Command::new("/usr/bin/setsid");
        cmd.arg("--wait").arg(binary);
        cmd
    } else {
        std::process::Command::new(binary)
    }
}

/// The binary for `vault`, with its per-machine state (request keys) kept beside it.
pub fn bg(vault: &Path) -> Command {
    let mut cmd = Command::from_std(detached_binary());
    let state = vault.parent().unwrap().join("state");
    cmd.arg("--vault")
        .arg(vault)
        .env_remove("BREAKGLASS_VAULT")
        .env("BREAKGLASS_STATE_DIR", state)
        .env("NO_COLOR", "1");
    cmd
}

/// The same as [`bg`], as a `std` command a test can spawn, feed slowly or kill
/// (all standard streams piped).
pub fn spawnable(vault: &Path) -> std::process::Command {
    use std::process::Stdio;
    let mut cmd = detached_binary();
    cmd.arg("--vault")
        .arg(vault)
        .env_remove("BREAKGLASS_VAULT")
        .env(
            "BREAKGLASS_STATE_DIR",
            vault.parent().unwrap().join("state"),
        )
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

pub fn write_private(path: &Path, contents: &str) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    f.write_all(contents.as_bytes()).unwrap();
}

/// A failed command: exit 1, exactly one `error:` line on stderr, no panic. Returns stderr.
pub fn one_line_error(output: &std::process::Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert_eq!(output.status.code(), Some(1), "stderr: {stderr}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "want one error line, got: {stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{stderr}"
    );
    stderr
}

/// Every K-subset of 0..n (as index lists).
pub fn subsets(n: usize, k: usize) -> Vec<Vec<usize>> {
    (0u32..(1 << n))
        .filter(|m| m.count_ones() as usize == k)
        .map(|m| (0..n).filter(|i| m & (1 << i) != 0).collect())
        .collect()
}

/// A fresh unencrypted ssh-ed25519 key from the stock `ssh-keygen`; returns the private key path
/// (the public key is beside it with `.pub`).
pub fn ssh_ed25519_key(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", ""])
        .arg("-f")
        .arg(&path)
        .status()
        .expect("ssh-keygen is installed (.ci/run installs openssh-client)");
    assert!(status.success());
    path
}

/// The binary with no vault at all, run in `dir`: a remote custodian's laptop.
pub fn bg_without_vault(dir: &Path) -> Command {
    let mut cmd = Command::from_std(detached_binary());
    cmd.current_dir(dir)
        .env_remove("BREAKGLASS_VAULT")
        .env("BREAKGLASS_STATE_DIR", dir.join("state"))
        .env("NO_COLOR", "1");
    cmd
}

/// The newest epoch's manifest, as stored (read straight from the file).
pub fn latest_manifest(vault: &Path) -> serde_json::Value {
    let conn = rusqlite::Connection::open(vault).unwrap();
    let body: String = conn
        .query_row(
            "SELECT body FROM manifests ORDER BY epoch DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    serde_json::from_str(&body).unwrap()
}

/// Recompute every audit row's prev_hash and hash after the rows were edited in
/// the file, as someone with write access but no key could.
pub fn rechain(vault: &Path) {
    use sha2::Digest;
    let conn = rusqlite::Connection::open(vault).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT seq, time, actor, action, subject, reason, details FROM audit ORDER BY seq",
        )
        .unwrap();
    type Row = (u64, String, String, String, String, String, String);
    let rows: Vec<Row> = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)? as u64,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut prev = "0".repeat(64);
    for row in rows {
        let canonical = serde_json::to_vec(&row).unwrap();
        let digest = sha2::Sha256::new()
            .chain_update(b"breakglass/v1/audit-row\0")
            .chain_update(prev.as_bytes())
            .chain_update(&canonical)
            .finalize();
        let hash: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        conn.execute(
            "UPDATE audit SET prev_hash = ?1, hash = ?2 WHERE seq = ?3",
            rusqlite::params![prev, hash, row.0 as i64],
        )
        .unwrap();
        prev = hash;
    }
}

/// The read-back words of a `request --json` output, space-separated as said by voice.
pub fn read_back_words(request_json: &serde_json::Value) -> String {
    request_json["words"]
        .as_array()
        .expect("request --json has words")
        .iter()
        .map(|w| w.as_str().expect("each word is a string"))
        .collect::<Vec<_>>()
        .join(" ")
}
