//! Honest read errors, through the real binary: a file with an interrupted
//! write this user cannot roll back, a directory, a missing file, a file that
//! is not a vault and a file this user cannot read each get their own one-line
//! error, and nothing is changed.

mod support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::{one_line_error, Kit};

/// How to run the binary as an unprivileged user here (root bypasses file
/// permissions), or why that cannot be done.
fn unprivileged() -> Result<Vec<String>, String> {
    let uid = std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .map_err(|e| format!("cannot tell this process's uid ({e})"))?;
    if uid != 0 {
        return Err(format!(
            "running as uid {uid}, not root: cannot switch to another user"
        ));
    }
    let binary = assert_cmd::cargo::cargo_bin("breakglass");
    let candidates: [&[&str]; 2] = [
        &[
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
        ],
        &["runuser", "-u", "nobody", "--"],
    ];
    for prefix in candidates {
        let works = Command::new(prefix[0])
            .args(&prefix[1..])
            .arg(&binary)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if works {
            return Ok(prefix.iter().map(|s| s.to_string()).collect());
        }
    }
    Err("neither setpriv nor runuser can run the binary as an unprivileged user here".into())
}

/// The binary on `vault` as the unprivileged user, with its own state directory.
fn run_as(prefix: &[String], vault: &Path, state: &Path, args: &[&str]) -> Output {
    Command::new(&prefix[0])
        .args(&prefix[1..])
        .arg(assert_cmd::cargo::cargo_bin("breakglass"))
        .arg("--vault")
        .arg(vault)
        .args(args)
        .env_remove("BREAKGLASS_VAULT")
        .env("BREAKGLASS_STATE_DIR", state)
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn journal(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-journal");
    PathBuf::from(name)
}

/// A rollback journal SQLite will play back (its header was synced).
fn is_hot(journal: &Path) -> bool {
    std::fs::read(journal)
        .is_ok_and(|b| b.starts_with(&[0xd9, 0xd5, 0x05, 0xf9, 0x20, 0xa1, 0x63, 0xd7]))
}

/// A copy of the kit's vault in `dir` as a writer killed mid-transaction leaves
/// it: the file partly overwritten and a hot journal beside it. A small page
/// cache makes SQLite spill the transaction into the file before commit; the
/// two files are copied then, and the transaction is rolled back.
fn crashed_copy(kit: &Kit, dir: &Path) -> PathBuf {
    let conn = rusqlite::Connection::open(&kit.vault).unwrap();
    conn.execute_batch(
        "PRAGMA cache_size = 2; BEGIN IMMEDIATE;
         UPDATE audit SET details = details || hex(randomblob(40000));",
    )
    .unwrap();
    let db = dir.join("vault.db");
    std::fs::copy(&kit.vault, &db).unwrap();
    std::fs::copy(journal(&kit.vault), journal(&db)).unwrap();
    conn.execute_batch("ROLLBACK").unwrap();
    assert!(is_hot(&journal(&db)), "the crafted journal is hot");
    db
}

fn says_hot_journal(err: &str, db: &Path) {
    assert!(
        err.contains(&format!(
            "{}: has an unfinished write from an interrupted command",
            db.display()
        )) && err.contains("must be rolled back before the vault can be read")
            && err.contains("this user cannot roll it back")
            && err.contains("write access to the file and its directory")
            && err.contains("the file's owner (root)")
            && !err.contains("attempt to write a readonly database"),
        "{err}"
    );
}

#[test]
fn a_read_of_a_file_with_an_interrupted_write_this_user_cannot_roll_back_says_so() {
    let prefix = match unprivileged() {
        Ok(prefix) => prefix,
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    let kit = Kit::init(&["alice", "bob"], 2);
    kit.put("vpn", "password", "pw");
    let entries = kit.json(&["audit", "log"]);
    chmod(kit.dir.path(), 0o755);
    let crash = kit.path("crash");
    std::fs::create_dir(&crash).unwrap();
    chmod(&crash, 0o755);
    let db = crashed_copy(&kit, &crash);
    let state = kit.path("nobody-state");
    std::fs::create_dir(&state).unwrap();
    chmod(&state, 0o777);

    // Neither the file nor its directory is writable by this user.
    chmod(&db, 0o644);
    chmod(&journal(&db), 0o644);
    let files = || {
        (
            std::fs::read(&db).unwrap(),
            std::fs::read(journal(&db)).unwrap(),
        )
    };
    let before = files();
    for args in [
        &["status"][..],
        &["list"],
        &["audit", "verify"],
        &["audit", "log"],
    ] {
        let out = run_as(&prefix, &db, &state, args);
        let err = one_line_error(&out);
        says_hot_journal(&err, &db);
        assert!(out.stdout.is_empty(), "{args:?}");
        assert_eq!(files(), before, "{args:?} changed nothing");
    }
    // A write command is told the same.
    let out = run_as(
        &prefix,
        &db,
        &state,
        &["runbook", "set", "--file", "/dev/null"],
    );
    says_hot_journal(&one_line_error(&out), &db);
    assert_eq!(files(), before);

    // The file is writable but its directory is not: the journal cannot be
    // removed, so the write is still unfinished.
    chmod(&db, 0o666);
    chmod(&journal(&db), 0o666);
    for args in [&["status"][..], &["audit", "verify"]] {
        let out = run_as(&prefix, &db, &state, args);
        says_hot_journal(&one_line_error(&out), &db);
        assert!(is_hot(&journal(&db)));
    }

    // Someone who can write both (here root) rolls it back by reading it: the
    // vault is as it was before the interrupted write, and readable by anyone.
    chmod(&db, 0o644);
    support::bg(&db)
        .args(["audit", "verify"])
        .assert()
        .success();
    assert!(!journal(&db).exists());
    let out = run_as(&prefix, &db, &state, &["audit", "log", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(after, entries);
}

#[test]
fn a_file_this_user_cannot_read_says_so() {
    let prefix = match unprivileged() {
        Ok(prefix) => prefix,
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    let kit = Kit::init(&["alice", "bob"], 2);
    chmod(kit.dir.path(), 0o755);
    chmod(&kit.vault, 0o600);
    let state = kit.path("nobody-state");
    std::fs::create_dir(&state).unwrap();
    chmod(&state, 0o777);
    for args in [&["status"][..], &["list"], &["audit", "verify"]] {
        let err = one_line_error(&run_as(&prefix, &kit.vault, &state, args));
        assert!(
            err.contains(&format!(
                "{}: this user cannot read the vault file (permission denied)",
                kit.vault.display()
            )) && err.contains("the file's owner is root"),
            "{err}"
        );
    }
}

#[test]
fn a_directory_a_missing_file_and_files_that_are_not_vaults_each_get_their_own_error() {
    let kit = Kit::new(&["alice"]);
    let cases: Vec<(PathBuf, String)> = {
        let dir = kit.path("somedir");
        std::fs::create_dir(&dir).unwrap();
        let holder = kit.path("holder");
        std::fs::create_dir(&holder).unwrap();
        std::fs::write(holder.join("breakglass.db"), b"").unwrap();
        let other = kit.path("other.db");
        rusqlite::Connection::open(&other)
            .unwrap()
            .execute_batch("CREATE TABLE t(a)")
            .unwrap();
        let empty = kit.path("empty.db");
        std::fs::write(&empty, b"").unwrap();
        let text = kit.path("notes.txt");
        std::fs::write(
            &text,
            "just some text, long enough to not be a database header\n",
        )
        .unwrap();
        vec![
            (
                dir.clone(),
                format!(
                    "{}: is a directory, not a vault file; pass the vault file itself with --vault PATH",
                    dir.display()
                ),
            ),
            (
                holder.clone(),
                format!(
                    "{}: is a directory, not a vault file; did you mean --vault {}?",
                    holder.display(),
                    holder.join("breakglass.db").display()
                ),
            ),
            (
                kit.path("missing.db"),
                format!(
                    "{}: no such vault file; pass --vault PATH or run `breakglass init`",
                    kit.path("missing.db").display()
                ),
            ),
            (
                other.clone(),
                format!(
                    "{}: not a breakglass vault (a SQLite database of another application: 1 table, and not breakglass's application id); check the --vault path",
                    other.display()
                ),
            ),
            (
                empty.clone(),
                format!(
                    "{}: not a breakglass vault (the file is empty); check the --vault path",
                    empty.display()
                ),
            ),
            (
                text.clone(),
                format!(
                    "{}: not a breakglass vault (not a SQLite database); check the --vault path",
                    text.display()
                ),
            ),
        ]
    };
    // A file's bytes, or a directory's sorted entry names.
    let snapshot = |path: &Path| -> Option<Vec<u8>> {
        if path.is_dir() {
            let mut names: Vec<_> = std::fs::read_dir(path)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_encoded_bytes())
                .collect();
            names.sort();
            Some(names.join(&b'/'))
        } else {
            std::fs::read(path).ok()
        }
    };
    for (path, want) in &cases {
        let before = snapshot(path);
        for args in [
            &["status"][..],
            &["list"],
            &["audit", "verify"],
            &["audit", "log"],
            &["runbook", "set", "--file", "/dev/null"],
        ] {
            let err = one_line_error(&support::bg(path).args(args).output().unwrap());
            assert!(err.contains(want), "{args:?}: want {want}\ngot {err}");
            assert!(!err.contains("disk I/O error"), "{err}");
            assert_eq!(snapshot(path), before, "{args:?} on {}", path.display());
        }
    }
}
