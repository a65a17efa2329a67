//! The SQLite file. The only module that writes SQL. It never sees plaintext:
//! every secret column holds an age ciphertext.

mod migrations;

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};

use crate::audit::{EndorsedSetting, EndorsedVersion, Entry};

/// "BGLS": marks a SQLite file as a breakglass vault.
const APPLICATION_ID: i64 = 0x4247_4c53;

/// Why the vault file could not be opened, read or written; each message names the file and what to do.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No file at the path.
    #[error("{path}: no such vault file; pass --vault PATH or run `breakglass init`")]
    Missing {
        /// The vault file.
        path: String,
    },
    /// The path is a directory.
    #[error("{path}: is a directory, not a vault file; {hint}")]
    Directory {
        /// The vault file.
        path: String,
        /// What to do instead.
        hint: String,
    },
    /// This user cannot read the file.
    #[error("{path}: this user cannot read the vault file ({detail}); run the command as a user who can (the file's owner is {owner}), or use a readable copy")]
    Unreadable {
        /// The vault file.
        path: String,
        /// The OS error.
        detail: String,
        /// The file's owner, so the user knows whom to run as.
        owner: String,
    },
    /// A hot journal that this user cannot roll back.
    #[error("{path}: has an unfinished write from an interrupted command ({journal}) that must be rolled back before the vault can be read, and this user cannot roll it back (that needs write access to the file and its directory); nothing was changed — ask someone who can write both, such as the file's owner ({owner}), to run any breakglass command on it (e.g. `breakglass --vault {path} status`), then try again")]
    HotJournal {
        /// The vault file.
        path: String,
        /// The journal file.
        journal: String,
        /// The owner of the file or journal.
        owner: String,
    },
    /// The file is not a breakglass vault.
    #[error("{path}: not a breakglass vault ({detail}); check the --vault path")]
    NotAVault {
        /// The vault file.
        path: String,
        /// What is wrong.
        detail: String,
    },
    /// The file is damaged or truncated.
    #[error("{path}: vault file is damaged or truncated ({detail}); restore it from a copy")]
    Corrupt {
        /// The vault file.
        path: String,
        /// What is wrong.
        detail: String,
    },
    /// The file's format is newer than this build.
    #[error("{path}: vault format {found} is newer than this breakglass understands ({supported}); upgrade breakglass")]
    TooNew {
        /// The vault file.
        path: String,
        /// The format found.
        found: i64,
        /// The newest format this build reads.
        supported: i64,
    },
    /// `init` refused to overwrite an existing file.
    #[error("{path}: {path} already exists; choose another path (init never overwrites a vault)")]
    Exists {
        /// The vault file.
        path: String,
    },
    /// Another process holds the vault's write lock.
    #[error("{path}: vault is busy (another breakglass command holds it); retry in a moment")]
    Busy {
        /// The vault file.
        path: String,
    },
    /// A write failed (disk full, read-only); nothing was changed.
    #[error("{path}: cannot write the vault ({detail}); nothing was changed")]
    Write {
        /// The vault file.
        path: String,
        /// What is wrong.
        detail: String,
    },
    /// The schema differs from the one this build made: the file was tampered with.
    #[error("{path}: the file's schema was altered ({detail}); nothing was run — the file was tampered with, restore it from a trusted copy")]
    Schema {
        /// The vault file.
        path: String,
        /// What is wrong.
        detail: String,
    },
    /// Another I/O error.
    #[error("{path}: {detail}")]
    Io {
        /// The vault file.
        path: String,
        /// What is wrong.
        detail: String,
    },
    /// A write sealed to an epoch that is no longer current was refused.
    #[error("{path}: refused to seal {what} to epoch {sealed}: the vault is at epoch {current}, whose key is the only one that opens it; nothing was changed — run the command again")]
    StaleEpoch {
        /// The vault file.
        path: String,
        /// What was being sealed.
        what: String,
        /// The epoch it was sealed to.
        sealed: u64,
        /// The vault's current epoch.
        current: u64,
    },
}

/// How a vault file is opened.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Read only: no lock is taken and nothing can be written.
    ReadOnly,
    /// Read and write, in transactions.
    ReadWrite,
}

/// An open vault file: the only place SQL runs.
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

/// One command's write transaction (`BEGIN IMMEDIATE`). Dropped without `commit`, it rolls back.
pub struct Tx<'a> {
    tx: rusqlite::Transaction<'a>,
    path: &'a Path,
}

/// A stored manifest: its epoch, exact body and signatures.
#[derive(Debug, Clone)]
pub struct ManifestRow {
    /// The epoch.
    pub epoch: u64,
    /// The canonical body, as signed.
    pub body: String,
    /// The signatures (JSON).
    pub signatures: String,
}

/// One custodian's envelope for one epoch.
#[derive(Debug, Clone)]
pub struct EnvelopeRow {
    /// The epoch.
    pub epoch: u64,
    /// The custodian.
    pub custodian: String,
    /// The custodian's share index.
    pub share_index: u8,
    /// The armored age file holding the share.
    pub envelope: String,
}

/// A secret's metadata (the value lives in its versions).
#[derive(Debug, Clone)]
pub struct SecretRow {
    /// The secret's name.
    pub name: String,
    /// Its kind.
    pub kind: String,
    /// The account name, if any.
    pub username: Option<String>,
    /// Where it is used, if given.
    pub url: Option<String>,
    /// A note, if any.
    pub note: Option<String>,
    /// When it was first deposited (RFC 3339, UTC).
    pub created: String,
}

/// One version of a secret's value, sealed to an epoch's recipient.
#[derive(Debug, Clone)]
pub struct VersionRow {
    /// The secret.
    pub secret: String,
    /// The version number, from 1.
    pub version: u32,
    /// The epoch whose recipient it is sealed to.
    pub epoch: u64,
    /// The armored age ciphertext.
    pub ciphertext: String,
    /// `active`, `pending` (rotation under way), `failed` or `superseded`.
    pub state: String,
    /// Who deposited it.
    pub depositor: String,
    /// When (RFC 3339, UTC).
    pub created: String,
}

/// A secret revealed in an unseal and not rotated since.
#[derive(Debug, Clone)]
pub struct ExposureRow {
    /// The secret.
    pub secret: String,
    /// The version revealed.
    pub version: u32,
    /// The epoch it was revealed in.
    pub epoch: u64,
    /// Who revealed it.
    pub revealed_by: String,
    /// When (RFC 3339, UTC).
    pub revealed_at: String,
    /// Why, as given at the unseal.
    pub reason: String,
}

/// How a secret is rotated: its apply hook and password generator settings.
#[derive(Debug, Clone, Default)]
pub struct RotationRow {
    /// The apply hook's command, if any.
    pub apply_cmd: Option<String>,
    /// Generated password length, if set.
    pub gen_length: Option<u32>,
    /// Generated password charset, if set.
    pub gen_charset: Option<String>,
    /// Rotate after this many days, if set.
    pub max_age_days: Option<u32>,
    /// YYYY-MM-DD after which the credential stops working (e.g. Duo codes).
    pub expires: Option<String>,
    /// A built-in rotator (`duo-bypass-codes`, `ldap-password`, `ad-password`)
    /// and its non-secret config (canonical JSON), if set.
    pub rotator: Option<RotatorSetting>,
}

/// A secret's built-in rotator: its kind and non-secret config (canonical JSON).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotatorSetting {
    /// `duo-bypass-codes`, `ldap-password` or `ad-password`.
    pub kind: String,
    /// Canonical JSON of the rotator's config.
    pub config: String,
}

/// One alert for one sink, queued in the same transaction as its audit row.
/// It holds no event and no sink: only the audit seq it reports and the index
/// of a sink in the signed manifest of `epoch`.
#[derive(Debug, Clone)]
pub struct AlertQueueRow {
    /// Row id.
    pub id: i64,
    /// The audit seq the alert reports.
    pub seq: u64,
    /// The epoch whose signed manifest lists the sink.
    pub epoch: u64,
    /// The sink's index in that manifest's alerts.
    pub sink_index: u32,
    /// The hash of the audit row it reports, so a renumbered log cannot
    /// hide a new alert behind an old row marked delivered.
    pub hash: String,
    /// When it was queued (RFC 3339, UTC).
    pub created: String,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// The last delivery error, if any.
    pub last_error: Option<String>,
    /// When it was delivered, if it was.
    pub delivered: Option<String>,
    /// The alert origin (a per-machine id) that queued it; '' when unknown
    /// (queued before schema 6). Only that origin delivers it unasked.
    pub origin: String,
    /// A command delivering it now holds it until then.
    pub claimed_until: Option<String>,
}

/// A sink that failed, for one origin: left alone until `retry_after`.
#[derive(Debug, Clone)]
pub struct BackoffRow {
    /// The machine (alert origin) the back-off applies to.
    pub origin: String,
    /// The sink as `alerts list` names it (a key only: it never picks a sink).
    pub sink: String,
    /// Failures in a row.
    pub failures: u32,
    /// No automatic try before this time (RFC 3339, UTC).
    pub retry_after: String,
    /// The last delivery error, if any.
    pub last_error: Option<String>,
}

/// The runbook as stored.
#[derive(Debug, Clone)]
pub struct RunbookRow {
    /// The runbook text.
    pub text: String,
    /// When it was set (RFC 3339, UTC).
    pub updated: String,
    /// Who set it.
    pub updated_by: String,
}

impl Store {
    /// Open an existing vault. Read-only opens never write, so an auditor can verify
    /// a read-only copy.
    pub fn open(path: &Path, access: Access) -> Result<Store, StoreError> {
        check_file(path)?;
        match Self::open_as(path, access) {
            // A command killed mid-transaction leaves a hot journal that only a
            // writer can roll back. SQLite does so on the first read of a
            // read-write open; a read-only one cannot, so roll it back here
            // (that restores the old state), then read. If this user cannot
            // write the file and its directory, say so: that is the problem,
            // not the read.
            Err(StoreError::Write { .. } | StoreError::Io { .. }) if hot_journal(path) => {
                if access == Access::ReadOnly {
                    roll_back_hot_journal(path)?;
                    Self::open_as(path, access)
                } else {
                    Err(hot_journal_error(path))
                }
            }
            other => other,
        }
    }

    fn open_as(path: &Path, access: Access) -> Result<Store, StoreError> {
        let shown = path.display().to_string();
        let flags = match access {
            Access::ReadOnly => OpenFlags::SQLITE_OPEN_READ_ONLY,
            Access::ReadWrite => OpenFlags::SQLITE_OPEN_READ_WRITE,
        } | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(|e| classify(&shown, e))?;
        let store = Store {
            conn,
            path: path.to_path_buf(),
        };
        store.configure()?;
        store.check_identity()?;
        store.check_schema()?;
        if access == Access::ReadWrite {
            migrations::run(&store.conn).map_err(|e| store.err(e))?;
        } else if migrations::too_old_to_read(&store.conn).map_err(|e| store.err(e))? {
            return Err(StoreError::Corrupt {
                path: shown,
                detail: "schema is older than this breakglass; run a write command once to upgrade"
                    .into(),
            });
        }
        Ok(store)
    }

    /// Create a new vault file at a temporary path beside `path`, mode 0600 from the
    /// start. `publish` moves it into place only once it is complete.
    pub fn create(path: &Path) -> Result<Store, StoreError> {
        let shown = path.display().to_string();
        if path.exists() {
            return Err(StoreError::Exists { path: shown });
        }
        let staging = staging_path(path);
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&staging)
            .map_err(|e| StoreError::Io {
                path: shown.clone(),
                detail: format!("cannot create {}: {e}", staging.display()),
            })?;
        let conn = Connection::open_with_flags(
            &staging,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| classify(&shown, e))?;
        let store = Store {
            conn,
            path: staging,
        };
        let setup = (|| {
            store
                .conn
                .pragma_update(None, "application_id", APPLICATION_ID)?;
            migrations::run(&store.conn)
        })();
        if let Err(e) = setup {
            let _ = std::fs::remove_file(&store.path);
            return Err(classify(&shown, e));
        }
        store.configure()?;
        Ok(store)
    }

    /// Move a freshly created vault into place; fails (and removes the staging file)
    /// if something appeared at `path` meanwhile.
    pub fn publish(self, path: &Path) -> Result<Store, StoreError> {
        let staging = self.path.clone();
        drop(self.conn);
        let shown = path.display().to_string();
        // hard_link refuses to replace an existing file, unlike rename.
        let linked = std::fs::hard_link(&staging, path);
        let _ = std::fs::remove_file(&staging);
        match linked {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(StoreError::Exists { path: shown })
            }
            Err(e) => {
                return Err(StoreError::Io {
                    path: shown,
                    detail: e.to_string(),
                })
            }
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Store::open(path, Access::ReadWrite)
    }

    /// Closes and deletes a file that `create` made, when the command that made it failed.
    pub fn discard(self) {
        let staging = self.path.clone();
        drop(self.conn);
        let _ = std::fs::remove_file(staging);
    }

    fn configure(&self) -> Result<(), StoreError> {
        let c = &self.conn;
        c.busy_timeout(Duration::from_secs(5))
            .map_err(|e| self.err(e))?;
        // The file may come from hostile hands: no SQL function it names runs
        // with side effects, its schema cannot be written, and no trigger or
        // view in it is ever run (the schema check refuses them, this is a
        // second wall).
        use rusqlite::config::DbConfig;
        for (option, on) in [
            (DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true),
            (DbConfig::SQLITE_DBCONFIG_TRUSTED_SCHEMA, false),
            (DbConfig::SQLITE_DBCONFIG_ENABLE_TRIGGER, false),
            (DbConfig::SQLITE_DBCONFIG_ENABLE_VIEW, false),
        ] {
            c.set_db_config(option, on).map_err(|e| self.err(e))?;
        }
        c.pragma_update(None, "trusted_schema", "OFF")
            .map_err(|e| self.err(e))?;
        // DELETE journal keeps one file at rest; FULL sync makes each commit durable.
        c.pragma_update(None, "foreign_keys", "ON")
            .and_then(|_| c.pragma_update(None, "secure_delete", "ON"))
            .and_then(|_| c.pragma_update(None, "synchronous", "FULL"))
            .map_err(|e| self.err(e))?;
        if !self.conn.is_readonly(rusqlite::MAIN_DB).unwrap_or(true) {
            c.pragma_update(None, "journal_mode", "DELETE")
                .map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    fn check_identity(&self) -> Result<(), StoreError> {
        let shown = self.path.display().to_string();
        let app_id: i64 = self
            .conn
            .pragma_query_value(None, "application_id", |r| r.get(0))
            .map_err(|e| self.err(e))?;
        if app_id != APPLICATION_ID {
            let empty = std::fs::metadata(&self.path).is_ok_and(|m| m.len() == 0);
            let detail = if empty {
                "the file is empty".to_string()
            } else {
                // Counted, not named: a hostile file's names could break the line.
                let tables: i64 = self
                    .conn
                    .query_row(
                        "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
                        [],
                        |r| r.get(0),
                    )
                    .unwrap_or(0);
                format!(
                    "a SQLite database of another application: {tables} table{}, and not breakglass's application id",
                    if tables == 1 { "" } else { "s" }
                )
            };
            return Err(StoreError::NotAVault {
                path: shown,
                detail,
            });
        }
        self.check_length()?;
        // A full structural check reads every page, so its cost grows with
        // the file. Read-only commands (list, status, audit) read most of it
        // anyway and get it; a write command (put, rotate, a quorum session)
        // stays constant: SQLite checks each page it reads (a damaged one is
        // SQLITE_CORRUPT, named below, and the command's one transaction
        // rolls back), and a cut file is caught by `check_length`.
        if self.conn.is_readonly(rusqlite::MAIN_DB).unwrap_or(true) {
            let check: String = self
                .conn
                .query_row("PRAGMA quick_check", [], |r| r.get(0))
                .map_err(|e| self.err(e))?;
            if check != "ok" {
                return Err(StoreError::Corrupt {
                    path: shown,
                    detail: check,
                });
            }
        }
        let version = migrations::user_version(&self.conn).map_err(|e| self.err(e))?;
        if version > migrations::LATEST {
            return Err(StoreError::TooNew {
                path: shown,
                found: version,
                supported: migrations::LATEST,
            });
        }
        Ok(())
    }

    /// A file shorter than the pages its header counts was cut off (a
    /// partial copy): refuse it before anything reads or writes it.
    fn check_length(&self) -> Result<(), StoreError> {
        let pragma = |name: &str| {
            self.conn
                .pragma_query_value(None, name, |r| r.get::<_, i64>(0))
                .map_err(|e| self.err(e))
        };
        let (page_size, pages) = (pragma("page_size")?, pragma("page_count")?);
        let length = std::fs::metadata(&self.path)
            .map(|m| m.len())
            .map_err(|e| StoreError::Io {
                path: self.path.display().to_string(),
                detail: e.to_string(),
            })?;
        let expected = u64::try_from(page_size.saturating_mul(pages)).unwrap_or(u64::MAX);
        if length < expected {
            return Err(StoreError::Corrupt {
                path: self.path.display().to_string(),
                detail: format!(
                    "the file is {length} bytes but its header counts {pages} pages of {page_size} bytes: it was cut off"
                ),
            });
        }
        Ok(())
    }

    /// Compare `sqlite_master` with the exact schema of the file's version.
    /// Any extra, changed or missing table, index, trigger or view is refused
    /// by name before any query touches the data.
    fn check_schema(&self) -> Result<(), StoreError> {
        let version = migrations::user_version(&self.conn).map_err(|e| self.err(e))?;
        let expected = migrations::expected_schema(version).map_err(|e| self.err(e))?;
        let actual = migrations::schema_of(&self.conn).map_err(|e| self.err(e))?;
        let key = |o: &migrations::SchemaObject| (o.0.clone(), o.1.clone());
        // Whitespace in a definition changes nothing it does.
        let same = |a: &migrations::SchemaObject, b: &migrations::SchemaObject| {
            let words = |sql: &Option<String>| {
                sql.as_deref().map(|t| {
                    t.split_whitespace()
                        .collect::<Vec<_>>()
                        .join(" ")
                        .replace("( ", "(")
                        .replace(" )", ")")
                        .replace(" ,", ",")
                })
            };
            a.2 == b.2 && words(&a.3) == words(&b.3)
        };
        let mut problems: Vec<String> = Vec::new();
        for object in &actual {
            match expected.iter().find(|e| key(e) == key(object)) {
                None => problems.push(format!("unexpected {} {}", object.0, object.1)),
                Some(e) if !same(e, object) => {
                    problems.push(format!("changed {} {}", object.0, object.1))
                }
                Some(_) => {}
            }
        }
        for object in &expected {
            if !actual.iter().any(|a| key(a) == key(object)) {
                problems.push(format!("missing {} {}", object.0, object.1));
            }
        }
        if problems.is_empty() {
            return Ok(());
        }
        Err(StoreError::Schema {
            path: self.path.display().to_string(),
            detail: problems.join(", "),
        })
    }

    /// The vault file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, e: rusqlite::Error) -> StoreError {
        classify(&self.path.display().to_string(), e)
    }

    /// How long a write waits for another command's lock before giving up
    /// as busy (5 s unless changed; the delivery after a command waits less).
    pub fn set_lock_wait(&self, wait: Duration) -> Result<(), StoreError> {
        self.conn.busy_timeout(wait).map_err(|e| self.err(e))
    }

    /// Start this command's single write transaction.
    pub fn begin(&mut self) -> Result<Tx<'_>, StoreError> {
        let shown = self.path.display().to_string();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| classify_write(&shown, e))?;
        Ok(Tx {
            tx,
            path: &self.path,
        })
    }

    /// Reads outside any transaction.
    pub fn read(&self) -> Reader<'_> {
        Reader {
            conn: &self.conn,
            path: &self.path,
        }
    }
}

impl Tx<'_> {
    /// Reads inside this transaction, seeing its own writes.
    pub fn read(&self) -> Reader<'_> {
        Reader {
            conn: &self.tx,
            path: self.path,
        }
    }

    fn err(&self, e: rusqlite::Error) -> StoreError {
        classify_write(&self.path.display().to_string(), e)
    }

    /// The last line of defence against a deposit sealed to a dead key: a
    /// version may only be written for the newest epoch in this transaction's
    /// view of the file (a re-key inserts its manifest before re-sealing).
    fn require_current_epoch(&self, sealed: u64, what: &str) -> Result<(), StoreError> {
        let current = self.read().latest_epoch()?;
        if sealed == current {
            return Ok(());
        }
        Err(StoreError::StaleEpoch {
            path: self.path.display().to_string(),
            what: what.to_string(),
            sealed,
            current,
        })
    }

    /// Execute one statement of this transaction.
    fn run(&self, sql: &str, params: impl rusqlite::Params) -> Result<(), StoreError> {
        self.tx
            .execute(sql, params)
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Commits every write of this transaction at once.
    pub fn commit(self) -> Result<(), StoreError> {
        let shown = self.path.display().to_string();
        self.tx.commit().map_err(|e| classify_write(&shown, e))
    }

    /// Stores an epoch's manifest.
    pub fn insert_manifest(&self, row: &ManifestRow) -> Result<(), StoreError> {
        self.run(
            "INSERT INTO manifests (epoch, body, signatures) VALUES (?1, ?2, ?3)",
            params![row.epoch as i64, row.body, row.signatures],
        )
    }

    /// Stores one custodian's envelope.
    pub fn insert_envelope(&self, row: &EnvelopeRow) -> Result<(), StoreError> {
        self.run(
                "INSERT INTO envelopes (epoch, custodian, share_index, envelope) VALUES (?1, ?2, ?3, ?4)",
                params![row.epoch as i64, row.custodian, row.share_index, row.envelope],
            )
    }

    /// Creates or updates a secret's metadata.
    pub fn upsert_secret(&self, row: &SecretRow) -> Result<(), StoreError> {
        self.run(
                "INSERT INTO secrets (name, kind, username, url, note, created) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT(name) DO UPDATE SET username = excluded.username, url = excluded.url, note = excluded.note",
                params![row.name, row.kind, row.username, row.url, row.note, row.created],
            )
    }

    /// Add a version as the active one; the previous active version becomes superseded.
    pub fn insert_active_version(&self, row: &VersionRow) -> Result<(), StoreError> {
        self.run(
            "UPDATE secret_versions SET state = 'superseded' WHERE secret = ?1 AND state = 'active'",
            params![row.secret],
        )?;
        self.insert_version(row)
    }

    /// Add a version in any state (e.g. `pending`) without touching the others.
    pub fn insert_version(&self, row: &VersionRow) -> Result<(), StoreError> {
        self.require_current_epoch(
            row.epoch,
            &format!("{} version {}", row.secret, row.version),
        )?;
        self.run(
                "INSERT INTO secret_versions (secret, version, epoch, ciphertext, state, depositor, created)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    row.secret,
                    row.version,
                    row.epoch as i64,
                    row.ciphertext,
                    row.state,
                    row.depositor,
                    row.created
                ],
            )
    }

    /// Make `version` the active one; the previous active version becomes superseded.
    pub fn activate_version(&self, secret: &str, version: u32) -> Result<(), StoreError> {
        let epoch: i64 = self
            .tx
            .query_row(
                "SELECT epoch FROM secret_versions WHERE secret = ?1 AND version = ?2",
                params![secret, version],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))?;
        self.require_current_epoch(epoch as u64, &format!("{secret} version {version}"))?;
        self.run(
            "UPDATE secret_versions SET state = 'superseded' WHERE secret = ?1 AND state = 'active' AND version != ?2",
            params![secret, version],
        )?;
        self.run(
            "UPDATE secret_versions SET state = 'active' WHERE secret = ?1 AND version = ?2",
            params![secret, version],
        )
    }

    /// Replace a `pending` version's sealed value (a rotator's peer made
    /// it), sealed to `epoch`. Exactly one pending row must match.
    pub fn replace_pending_value(
        &self,
        secret: &str,
        version: u32,
        epoch: u64,
        ciphertext: &str,
    ) -> Result<(), StoreError> {
        let changed = self
            .tx
            .execute(
                "UPDATE secret_versions SET ciphertext = ?3, epoch = ?4 WHERE secret = ?1 AND version = ?2 AND state = 'pending'",
                params![secret, version, ciphertext, epoch as i64],
            )
            .map_err(|e| self.err(e))?;
        if changed != 1 {
            return Err(self.err(rusqlite::Error::QueryReturnedNoRows));
        }
        Ok(())
    }

    /// Sets a version's state (`active`, `pending`, `failed`…).
    pub fn set_version_state(
        &self,
        secret: &str,
        version: u32,
        state: &str,
    ) -> Result<(), StoreError> {
        self.run(
            "UPDATE secret_versions SET state = ?3 WHERE secret = ?1 AND version = ?2",
            params![secret, version, state],
        )
    }

    /// Replace a version's ciphertext after re-encryption to a new epoch's key.
    pub fn reseal_version(
        &self,
        secret: &str,
        version: u32,
        epoch: u64,
        ciphertext: &str,
    ) -> Result<(), StoreError> {
        self.require_current_epoch(epoch, &format!("{secret} version {version}"))?;
        self.run(
                "UPDATE secret_versions SET epoch = ?3, ciphertext = ?4 WHERE secret = ?1 AND version = ?2",
                params![secret, version, epoch as i64, ciphertext],
            )
    }

    /// Deletes every envelope of `epoch` (after a rekey, the old shares must go).
    pub fn delete_envelopes(&self, epoch: u64) -> Result<(), StoreError> {
        self.run(
            "DELETE FROM envelopes WHERE epoch = ?1",
            params![epoch as i64],
        )
    }

    /// Records that a secret was revealed.
    pub fn upsert_exposure(&self, row: &ExposureRow) -> Result<(), StoreError> {
        self.run(
                "INSERT INTO exposures (secret, version, epoch, revealed_by, revealed_at, reason) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT(secret) DO UPDATE SET version = excluded.version, epoch = excluded.epoch,
                   revealed_by = excluded.revealed_by, revealed_at = excluded.revealed_at, reason = excluded.reason",
                params![row.secret, row.version, row.epoch as i64, row.revealed_by, row.revealed_at, row.reason],
            )
    }

    /// Forgets a secret's exposure (after a rotation).
    pub fn clear_exposure(&self, secret: &str) -> Result<(), StoreError> {
        self.run("DELETE FROM exposures WHERE secret = ?1", params![secret])
    }

    /// Set the given rotation settings, keeping the ones not given.
    pub fn update_rotation(&self, secret: &str, row: &RotationRow) -> Result<(), StoreError> {
        self.run(
                "INSERT INTO rotation_settings (secret, apply_cmd, gen_length, gen_charset, max_age_days, expires)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT(secret) DO UPDATE SET apply_cmd = COALESCE(excluded.apply_cmd, apply_cmd),
                   gen_length = COALESCE(excluded.gen_length, gen_length), gen_charset = COALESCE(excluded.gen_charset, gen_charset),
                   max_age_days = COALESCE(excluded.max_age_days, max_age_days), expires = COALESCE(excluded.expires, expires)",
                params![secret, row.apply_cmd, row.gen_length, row.gen_charset, row.max_age_days, row.expires],
            )?;
        if let Some(rotator) = &row.rotator {
            self.run(
                "INSERT INTO rotators (secret, kind, config) VALUES (?1, ?2, ?3)
                 ON CONFLICT(secret) DO UPDATE SET kind = excluded.kind, config = excluded.config",
                params![secret, rotator.kind, rotator.config],
            )?;
        }
        Ok(())
    }

    /// Set or remove a secret's built-in rotator, from the user's command line.
    /// A rotator set replaces any apply hook: a secret has one or the other.
    pub fn set_rotator(
        &self,
        secret: &str,
        rotator: Option<&RotatorSetting>,
    ) -> Result<(), StoreError> {
        match rotator {
            Some(rotator) => {
                self.run(
                    "UPDATE rotation_settings SET apply_cmd = NULL WHERE secret = ?1",
                    params![secret],
                )?;
                self.run(
                    "INSERT INTO rotators (secret, kind, config) VALUES (?1, ?2, ?3)
                     ON CONFLICT(secret) DO UPDATE SET kind = excluded.kind, config = excluded.config",
                    params![secret, rotator.kind, rotator.config],
                )
            }
            None => self.run("DELETE FROM rotators WHERE secret = ?1", params![secret]),
        }
    }

    /// How many single-use codes a bypass-codes version holds (counted at deposit).
    pub fn set_code_count(
        &self,
        secret: &str,
        version: u32,
        total: usize,
    ) -> Result<(), StoreError> {
        self.run(
            "INSERT OR REPLACE INTO bypass_codes (secret, version, total) VALUES (?1, ?2, ?3)",
            params![secret, version, total as i64],
        )
    }

    /// Marks bypass code `index` of a version as used at `at`.
    pub fn mark_code_used(
        &self,
        secret: &str,
        version: u32,
        index: usize,
        at: &str,
    ) -> Result<(), StoreError> {
        self.run(
                "INSERT INTO bypass_used (secret, version, code_index, used_at) VALUES (?1, ?2, ?3, ?4)",
                params![secret, version, index as i64, at],
            )
    }

    /// Queue the alert for audit row (`seq`, `hash`) to sink `sink_index` of
    /// epoch `epoch`'s manifest, as `origin`'s to deliver. A queue row for that
    /// (seq, sink) but another row hash is stale (the log was rewritten) and is
    /// replaced, undelivered.
    pub fn enqueue_alert(
        &self,
        seq: u64,
        hash: &str,
        epoch: u64,
        sink_index: u32,
        created: &str,
        origin: &str,
    ) -> Result<(), StoreError> {
        self.run(
            "INSERT INTO alert_queue (seq, epoch, sink_index, hash, created, origin) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT(seq, sink_index) DO UPDATE SET epoch = excluded.epoch, hash = excluded.hash,
               created = excluded.created, attempts = 0, last_error = NULL, delivered = NULL,
               origin = excluded.origin, claimed_until = NULL
             WHERE alert_queue.hash != excluded.hash",
            params![seq as i64, epoch as i64, sink_index, hash, created, origin],
        )
    }

    /// Record a delivery. Only an undelivered row changes, so recording one
    /// twice (two commands that both sent it) keeps the first time.
    pub fn alert_delivered(&self, id: i64, at: &str) -> Result<(), StoreError> {
        self.run(
            "UPDATE alert_queue SET delivered = ?2, attempts = attempts + 1, last_error = NULL, claimed_until = NULL
             WHERE id = ?1 AND delivered IS NULL",
            params![id, at],
        )
    }

    /// Records a failed delivery attempt of alert `id`.
    pub fn alert_failed(&self, id: i64, error: &str) -> Result<(), StoreError> {
        self.run(
            "UPDATE alert_queue SET attempts = attempts + 1, last_error = ?2, claimed_until = NULL
             WHERE id = ?1 AND delivered IS NULL",
            params![id, error],
        )
    }

    /// Hold an undelivered alert for this command's delivery until `until`
    /// (`None` lets it go).
    pub fn claim_alert(&self, id: i64, until: Option<&str>) -> Result<(), StoreError> {
        self.run(
            "UPDATE alert_queue SET claimed_until = ?2 WHERE id = ?1 AND delivered IS NULL",
            params![id, until],
        )
    }

    /// Make every undelivered alert queued by another origin (or none) this
    /// origin's to deliver. Returns how many.
    pub fn adopt_alerts(&self, origin: &str) -> Result<usize, StoreError> {
        self.tx
            .execute(
                "UPDATE alert_queue SET origin = ?1, claimed_until = NULL WHERE delivered IS NULL AND origin != ?1",
                params![origin],
            )
            .map_err(|e| self.err(e))
    }

    /// Records or updates a sink's back-off.
    pub fn set_backoff(&self, row: &BackoffRow) -> Result<(), StoreError> {
        self.run(
            "INSERT INTO alert_backoff (origin, sink, failures, retry_after, last_error) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(origin, sink) DO UPDATE SET failures = excluded.failures,
               retry_after = excluded.retry_after, last_error = excluded.last_error",
            params![row.origin, row.sink, row.failures, row.retry_after, row.last_error],
        )
    }

    /// Ends a sink's back-off after a delivery.
    pub fn clear_backoff(&self, origin: &str, sink: &str) -> Result<(), StoreError> {
        self.run(
            "DELETE FROM alert_backoff WHERE origin = ?1 AND sink = ?2",
            params![origin, sink],
        )
    }

    /// Replaces the runbook.
    pub fn set_runbook(&self, row: &RunbookRow) -> Result<(), StoreError> {
        self.run(
                "INSERT INTO runbook (id, text, updated, updated_by) VALUES (1, ?1, ?2, ?3)
                 ON CONFLICT(id) DO UPDATE SET text = excluded.text, updated = excluded.updated, updated_by = excluded.updated_by",
                params![row.text, row.updated, row.updated_by],
            )
    }

    /// Stores a quorum's signature over the audit head at `seq`, for anchors.
    pub fn insert_anchor_signature(
        &self,
        seq: u64,
        epoch: u64,
        signature: &str,
    ) -> Result<(), StoreError> {
        self.run(
            "INSERT INTO anchor_signatures (seq, epoch, signature) VALUES (?1, ?2, ?3)",
            params![seq as i64, epoch as i64, signature],
        )
    }

    /// Replace the endorsed sets with those of the checkpoint this
    /// transaction writes (whose digests they must match).
    pub fn replace_endorsements(
        &self,
        versions: &[EndorsedVersion],
        settings: &[EndorsedSetting],
    ) -> Result<(), StoreError> {
        self.run("DELETE FROM endorsed_versions", [])?;
        self.run("DELETE FROM endorsed_settings", [])?;
        self.run("DELETE FROM endorsed_rotators", [])?;
        let mut insert = self
            .tx
            .prepare_cached(
                "INSERT INTO endorsed_versions (secret, version, ciphertext_sha256, depositor) VALUES (?1, ?2, ?3, ?4)",
            )
            .map_err(|e| self.err(e))?;
        for v in versions {
            insert
                .execute(params![
                    v.secret,
                    v.version,
                    v.ciphertext_sha256,
                    v.depositor
                ])
                .map_err(|e| self.err(e))?;
        }
        let mut insert = self
            .tx
            .prepare_cached(
                "INSERT INTO endorsed_settings (secret, apply_cmd, gen_length, gen_charset, max_age_days, expires)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .map_err(|e| self.err(e))?;
        for s in settings {
            insert
                .execute(params![
                    s.secret,
                    s.apply_cmd,
                    s.gen_length,
                    s.gen_charset,
                    s.max_age_days,
                    s.expires
                ])
                .map_err(|e| self.err(e))?;
            if let (Some(kind), Some(config)) = (&s.rotator, &s.rotator_config) {
                self.run(
                    "INSERT INTO endorsed_rotators (secret, kind, config) VALUES (?1, ?2, ?3)",
                    params![s.secret, kind, config],
                )?;
            }
        }
        Ok(())
    }

    /// Appends an audit row (hash already computed).
    pub fn insert_audit(&self, entry: &Entry) -> Result<(), StoreError> {
        self.run(
                "INSERT INTO audit (seq, time, actor, action, subject, reason, details, prev_hash, hash)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    entry.seq as i64,
                    entry.time,
                    entry.actor,
                    entry.action,
                    entry.subject,
                    entry.reason,
                    entry.details,
                    entry.prev_hash,
                    entry.hash
                ],
            )
    }
}

/// Typed reads, usable on the store or inside a transaction.
pub struct Reader<'a> {
    conn: &'a Connection,
    path: &'a Path,
}

impl Reader<'_> {
    fn err(&self, e: rusqlite::Error) -> StoreError {
        classify(&self.path.display().to_string(), e)
    }

    /// Every manifest, oldest first.
    pub fn manifests(&self) -> Result<Vec<ManifestRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT epoch, body, signatures FROM manifests ORDER BY epoch")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(ManifestRow {
                    epoch: r.get::<_, i64>(0)? as u64,
                    body: r.get(1)?,
                    signatures: r.get(2)?,
                })
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }

    /// The newest manifest row, if any (one row, not the chain).
    pub fn latest_manifest(&self) -> Result<Option<ManifestRow>, StoreError> {
        self.conn
            .query_row(
                "SELECT epoch, body, signatures FROM manifests ORDER BY epoch DESC LIMIT 1",
                [],
                |r| {
                    Ok(ManifestRow {
                        epoch: r.get::<_, i64>(0)? as u64,
                        body: r.get(1)?,
                        signatures: r.get(2)?,
                    })
                },
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// The newest epoch with a manifest (0 if none).
    pub fn latest_epoch(&self) -> Result<u64, StoreError> {
        self.conn
            .query_row("SELECT COALESCE(MAX(epoch), 0) FROM manifests", [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|e| e as u64)
            .map_err(|e| self.err(e))
    }

    /// The envelopes of `epoch`.
    pub fn envelopes(&self, epoch: u64) -> Result<Vec<EnvelopeRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT epoch, custodian, share_index, envelope FROM envelopes WHERE epoch = ?1 ORDER BY share_index",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![epoch as i64], |r| {
                Ok(EnvelopeRow {
                    epoch: r.get::<_, i64>(0)? as u64,
                    custodian: r.get(1)?,
                    share_index: r.get(2)?,
                    envelope: r.get(3)?,
                })
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }

    /// Every secret's metadata, by name.
    pub fn secrets(&self) -> Result<Vec<SecretRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT name, kind, username, url, note, created FROM secrets ORDER BY name")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(SecretRow {
                    name: r.get(0)?,
                    kind: r.get(1)?,
                    username: r.get(2)?,
                    url: r.get(3)?,
                    note: r.get(4)?,
                    created: r.get(5)?,
                })
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }

    /// One secret's metadata, if it exists.
    pub fn secret(&self, name: &str) -> Result<Option<SecretRow>, StoreError> {
        self.conn
            .query_row(
                "SELECT name, kind, username, url, note, created FROM secrets WHERE name = ?1",
                params![name],
                |r| {
                    Ok(SecretRow {
                        name: r.get(0)?,
                        kind: r.get(1)?,
                        username: r.get(2)?,
                        url: r.get(3)?,
                        note: r.get(4)?,
                        created: r.get(5)?,
                    })
                },
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// The active version of a secret, if any.
    pub fn active_version(&self, secret: &str) -> Result<Option<VersionRow>, StoreError> {
        self.conn
            .query_row(
                "SELECT secret, version, epoch, ciphertext, state, depositor, created FROM secret_versions
                 WHERE secret = ?1 AND state = 'active' ORDER BY version DESC LIMIT 1",
                params![secret],
                version_row,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Every version of one secret, oldest first.
    pub fn versions_of(&self, secret: &str) -> Result<Vec<VersionRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT secret, version, epoch, ciphertext, state, depositor, created FROM secret_versions
                 WHERE secret = ?1 ORDER BY version",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![secret], version_row)
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }

    /// Every version in one of `states` (e.g. active and pending), for re-encryption.
    pub fn versions_in(&self, states: &[&str]) -> Result<Vec<VersionRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT secret, version, epoch, ciphertext, state, depositor, created FROM secret_versions ORDER BY secret, version",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], version_row)
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.err(e))?;
        Ok(rows
            .into_iter()
            .filter(|v| states.contains(&v.state.as_str()))
            .collect())
    }

    /// Secrets revealed and not rotated since.
    pub fn exposures(&self) -> Result<Vec<ExposureRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT secret, version, epoch, revealed_by, revealed_at, reason FROM exposures ORDER BY secret")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(ExposureRow {
                    secret: r.get(0)?,
                    version: r.get(1)?,
                    epoch: r.get::<_, i64>(2)? as u64,
                    revealed_by: r.get(3)?,
                    revealed_at: r.get(4)?,
                    reason: r.get(5)?,
                })
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }

    /// A secret's rotation settings (defaults when none are stored).
    pub fn rotation(&self, secret: &str) -> Result<RotationRow, StoreError> {
        let mut row = self
            .conn
            .query_row(
                "SELECT apply_cmd, gen_length, gen_charset, max_age_days, expires FROM rotation_settings WHERE secret = ?1",
                params![secret],
                |r| {
                    Ok(RotationRow {
                        apply_cmd: r.get(0)?,
                        gen_length: r.get(1)?,
                        gen_charset: r.get(2)?,
                        max_age_days: r.get(3)?,
                        expires: r.get(4)?,
                        rotator: None,
                    })
                },
            )
            .optional()
            .map(Option::unwrap_or_default)
            .map_err(|e| self.err(e))?;
        row.rotator = self.rotators_in("rotators")?.remove(secret);
        Ok(row)
    }

    /// Rotators by secret, from `rotators` or `endorsed_rotators` (empty in a
    /// file from before schema 7).
    fn rotators_in(
        &self,
        table: &str,
    ) -> Result<std::collections::HashMap<String, RotatorSetting>, StoreError> {
        if !self.has_table(table)? {
            return Ok(Default::default());
        }
        let sql = match table {
            "rotators" => "SELECT secret, kind, config FROM rotators",
            _ => "SELECT secret, kind, config FROM endorsed_rotators",
        };
        let mut stmt = self.conn.prepare(sql).map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    RotatorSetting {
                        kind: r.get(1)?,
                        config: r.get(2)?,
                    },
                ))
            })
            .and_then(|rows| rows.collect::<Result<_, _>>())
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }

    /// Every secret's rotation settings, by secret name.
    pub fn rotations(&self) -> Result<Vec<(String, RotationRow)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT secret, apply_cmd, gen_length, gen_charset, max_age_days, expires FROM rotation_settings ORDER BY secret")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    RotationRow {
                        apply_cmd: r.get(1)?,
                        gen_length: r.get(2)?,
                        gen_charset: r.get(3)?,
                        max_age_days: r.get(4)?,
                        expires: r.get(5)?,
                        rotator: None,
                    },
                ))
            })
            .and_then(|rows| rows.collect::<Result<Vec<(String, RotationRow)>, _>>())
            .map_err(|e| self.err(e))?;
        let mut rotators = self.rotators_in("rotators")?;
        let mut rows: Vec<(String, RotationRow)> = rows
            .into_iter()
            .map(|(secret, mut row)| {
                row.rotator = rotators.remove(&secret);
                (secret, row)
            })
            .collect();
        // A rotator set with no other setting still counts as a setting.
        rows.extend(rotators.into_iter().map(|(secret, rotator)| {
            (
                secret,
                RotationRow {
                    rotator: Some(rotator),
                    ..Default::default()
                },
            )
        }));
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(rows)
    }

    /// (total, used) codes of a bypass-codes version, if counted.
    pub fn code_counts(
        &self,
        secret: &str,
        version: u32,
    ) -> Result<Option<(usize, usize)>, StoreError> {
        let total: Option<i64> = self
            .conn
            .query_row(
                "SELECT total FROM bypass_codes WHERE secret = ?1 AND version = ?2",
                params![secret, version],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        let Some(total) = total else { return Ok(None) };
        Ok(Some((
            total as usize,
            self.used_codes(secret, version)?.len(),
        )))
    }

    /// Indexes of the codes already handed out from a version.
    pub fn used_codes(&self, secret: &str, version: u32) -> Result<Vec<usize>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT code_index FROM bypass_used WHERE secret = ?1 AND version = ?2 ORDER BY code_index")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![secret, version], |r| {
                r.get::<_, i64>(0).map(|i| i as usize)
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }

    /// Queued alerts, oldest first; only undelivered ones unless `all`.
    /// A file not yet upgraded (read-only open) has no queue yet: empty; one
    /// from before schema 6 has no origins (every row's is '').
    pub fn alert_queue(&self, all: bool) -> Result<Vec<AlertQueueRow>, StoreError> {
        if !self.has_table("alert_queue")? {
            return Ok(Vec::new());
        }
        let columns = if self.has_table("alert_backoff")? {
            "origin, claimed_until"
        } else {
            "'', NULL"
        };
        let filter = if all { "" } else { "WHERE delivered IS NULL" };
        let sql = format!(
            "SELECT id, seq, epoch, sink_index, hash, created, attempts, last_error, delivered, {columns}
             FROM alert_queue {filter} ORDER BY id"
        );
        let mut stmt = self.conn.prepare(&sql).map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(AlertQueueRow {
                    id: r.get(0)?,
                    seq: r.get::<_, i64>(1)? as u64,
                    epoch: r.get::<_, i64>(2)? as u64,
                    sink_index: r.get(3)?,
                    hash: r.get(4)?,
                    created: r.get(5)?,
                    attempts: r.get(6)?,
                    last_error: r.get(7)?,
                    delivered: r.get(8)?,
                    origin: r.get(9)?,
                    claimed_until: r.get(10)?,
                })
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }

    /// Every origin's failing sinks (none before schema 6).
    pub fn alert_backoffs(&self) -> Result<Vec<BackoffRow>, StoreError> {
        if !self.has_table("alert_backoff")? {
            return Ok(Vec::new());
        }
        let mut stmt = self
            .conn
            .prepare("SELECT origin, sink, failures, retry_after, last_error FROM alert_backoff ORDER BY origin, sink")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(BackoffRow {
                    origin: r.get(0)?,
                    sink: r.get(1)?,
                    // An edited count cannot stop the listing.
                    failures: r
                        .get::<_, i64>(2)
                        .map_or(1, |n| n.clamp(0, i64::from(u32::MAX)) as u32),
                    retry_after: r.get(3)?,
                    last_error: r.get(4)?,
                })
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }

    /// The newest version number of a secret, 0 when it has none.
    pub fn latest_version_number(&self, secret: &str) -> Result<u32, StoreError> {
        // Not MAX(): wrapped in COALESCE it scans every version of the secret.
        self.conn
            .query_row(
                "SELECT version FROM secret_versions WHERE secret = ?1 ORDER BY version DESC LIMIT 1",
                params![secret],
                |r| r.get(0),
            )
            .optional()
            .map(Option::unwrap_or_default)
            .map_err(|e| self.err(e))
    }

    /// The runbook, if one was set.
    pub fn runbook(&self) -> Result<Option<RunbookRow>, StoreError> {
        self.conn
            .query_row(
                "SELECT text, updated, updated_by FROM runbook WHERE id = 1",
                [],
                |r| {
                    Ok(RunbookRow {
                        text: r.get(0)?,
                        updated: r.get(1)?,
                        updated_by: r.get(2)?,
                    })
                },
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Every audit row, oldest first, exactly as stored.
    pub fn audit_entries(&self) -> Result<Vec<Entry>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT seq, time, actor, action, subject, reason, details, prev_hash, hash FROM audit ORDER BY seq",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], audit_row)
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }

    /// The audit rows whose action is one of `actions`, oldest first (an
    /// index lookup: the cost follows those rows, not the whole log).
    pub fn audit_entries_with(&self, actions: &[&str]) -> Result<Vec<Entry>, StoreError> {
        if actions.is_empty() {
            return Ok(Vec::new());
        }
        let marks = vec!["?"; actions.len()].join(", ");
        let sql = format!(
            "SELECT seq, time, actor, action, subject, reason, details, prev_hash, hash FROM audit
             WHERE action IN ({marks}) ORDER BY seq"
        );
        let mut stmt = self.conn.prepare(&sql).map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(actions), audit_row)
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }

    /// One audit row, if the log has it.
    /// The newest audit row with `action` (indexed: no scan of the log).
    pub fn last_audit_of(&self, action: &str) -> Result<Option<Entry>, StoreError> {
        self.conn
            .query_row(
                "SELECT seq, time, actor, action, subject, reason, details, prev_hash, hash FROM audit
                 WHERE action = ?1 ORDER BY seq DESC LIMIT 1",
                [action],
                audit_row,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// The audit row of `seq`, if present.
    pub fn audit_entry(&self, seq: u64) -> Result<Option<Entry>, StoreError> {
        self.conn
            .query_row(
                "SELECT seq, time, actor, action, subject, reason, details, prev_hash, hash FROM audit WHERE seq = ?1",
                [seq as i64],
                audit_row,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// The endorsed versions of the latest checkpoint, as the file holds them
    /// (unsigned: trust them only if they hash to that checkpoint's digest).
    /// A file from before schema 5 (read-only, not upgraded) has none.
    pub fn endorsed_versions(&self) -> Result<Vec<EndorsedVersion>, StoreError> {
        if !self.has_table("endorsed_versions")? {
            return Ok(Vec::new());
        }
        let mut stmt = self
            .conn
            .prepare(
                "SELECT secret, version, ciphertext_sha256, depositor FROM endorsed_versions ORDER BY secret, version",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(EndorsedVersion {
                    secret: r.get(0)?,
                    version: r.get(1)?,
                    ciphertext_sha256: r.get(2)?,
                    depositor: r.get(3)?,
                })
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }

    /// The endorsed rotation settings of the latest checkpoint, as the file
    /// holds them (unsigned, like `endorsed_versions`).
    pub fn endorsed_settings(&self) -> Result<Vec<EndorsedSetting>, StoreError> {
        if !self.has_table("endorsed_settings")? {
            return Ok(Vec::new());
        }
        let mut stmt = self
            .conn
            .prepare(
                "SELECT secret, apply_cmd, gen_length, gen_charset, max_age_days, expires FROM endorsed_settings ORDER BY secret",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(EndorsedSetting {
                    secret: r.get(0)?,
                    apply_cmd: r.get(1)?,
                    gen_length: r.get(2)?,
                    gen_charset: r.get(3)?,
                    max_age_days: r.get(4)?,
                    expires: r.get(5)?,
                    rotator: None,
                    rotator_config: None,
                })
            })
            .and_then(|rows| rows.collect::<Result<Vec<EndorsedSetting>, _>>())
            .map_err(|e| self.err(e))?;
        let mut rotators = self.rotators_in("endorsed_rotators")?;
        let mut rows: Vec<EndorsedSetting> = rows
            .into_iter()
            .map(|mut s| {
                if let Some(r) = rotators.remove(&s.secret) {
                    s.rotator = Some(r.kind);
                    s.rotator_config = Some(r.config);
                }
                s
            })
            .collect();
        rows.extend(rotators.into_iter().map(|(secret, r)| EndorsedSetting {
            secret,
            rotator: Some(r.kind),
            rotator_config: Some(r.config),
            ..Default::default()
        }));
        rows.sort_by(|a, b| a.secret.cmp(&b.secret));
        Ok(rows)
    }

    /// The (epoch, signature) over the anchor at `seq`, if a quorum session signed one.
    /// A file from before anchor signatures (read-only, not upgraded) has none.
    pub fn anchor_signature(&self, seq: u64) -> Result<Option<(u64, String)>, StoreError> {
        if !self.has_table("anchor_signatures")? {
            return Ok(None);
        }
        self.conn
            .query_row(
                "SELECT epoch, signature FROM anchor_signatures WHERE seq = ?1",
                [seq as i64],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)),
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    fn has_table(&self, name: &str) -> Result<bool, StoreError> {
        self.conn
            .query_row(
                "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = ?1",
                [name],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))
    }

    /// The newest audit row's (seq, hash), if the log is not empty.
    pub fn audit_head(&self) -> Result<Option<(u64, String)>, StoreError> {
        self.conn
            .query_row(
                "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)),
            )
            .optional()
            .map_err(|e| self.err(e))
    }
}

fn audit_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Entry> {
    Ok(Entry {
        seq: r.get::<_, i64>(0)? as u64,
        time: r.get(1)?,
        actor: r.get(2)?,
        action: r.get(3)?,
        subject: r.get(4)?,
        reason: r.get(5)?,
        details: r.get(6)?,
        prev_hash: r.get(7)?,
        hash: r.get(8)?,
    })
}

fn version_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<VersionRow> {
    Ok(VersionRow {
        secret: r.get(0)?,
        version: r.get(1)?,
        epoch: r.get::<_, i64>(2)? as u64,
        ciphertext: r.get(3)?,
        state: r.get(4)?,
        depositor: r.get(5)?,
        created: r.get(6)?,
    })
}

fn journal_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push("-journal");
    PathBuf::from(name)
}

/// The first bytes of a rollback journal whose header was synced: SQLite
/// treats such a journal, left with no writer holding the file, as hot.
const JOURNAL_MAGIC: [u8; 8] = [0xd9, 0xd5, 0x05, 0xf9, 0x20, 0xa1, 0x63, 0xd7];

/// Whether a writer left a journal that must be played back before the file
/// can be read (one with a zeroed header is not: it rolls back to nothing).
fn hot_journal(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 8];
    std::fs::File::open(journal_path(path))
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|_| head == JOURNAL_MAGIC)
}

fn hot_journal_error(path: &Path) -> StoreError {
    StoreError::HotJournal {
        path: path.display().to_string(),
        journal: journal_path(path).display().to_string(),
        owner: owner_of(path),
    }
}

/// Open read-write just long enough for SQLite to roll back an interrupted
/// transaction's journal. SQLite opens a file this user cannot write
/// read-only without complaint, and fails only at the first read: then, or if
/// the journal is still there afterwards, this user cannot roll it back.
fn roll_back_hot_journal(path: &Path) -> Result<(), StoreError> {
    let shown = path.display().to_string();
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE)
        .map_err(|_| hot_journal_error(path))?;
    let checked = conn
        .busy_timeout(Duration::from_secs(5))
        .and_then(|_| conn.query_row("PRAGMA quick_check", [], |r| r.get::<_, String>(0)));
    drop(conn);
    match checked {
        Err(e) => match classify(&shown, e) {
            StoreError::Write { .. } | StoreError::Io { .. } => Err(hot_journal_error(path)),
            other => Err(other),
        },
        Ok(_) if hot_journal(path) => Err(hot_journal_error(path)),
        Ok(_) => Ok(()),
    }
}

/// Before SQLite sees the path: a missing file, a directory and a file this
/// user cannot read each get their own message (SQLite says "disk I/O error"
/// or "unable to open database file" for all of them).
fn check_file(path: &Path) -> Result<(), StoreError> {
    let shown = path.display().to_string();
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(StoreError::Missing { path: shown })
        }
        Err(e) => {
            return Err(StoreError::Io {
                path: shown,
                detail: format!("cannot look at the vault file ({e}); check the --vault path and the directory's permissions"),
            })
        }
    };
    if meta.is_dir() {
        let inside = path.join("breakglass.db");
        let hint = if inside.is_file() {
            format!("did you mean --vault {}?", inside.display())
        } else {
            "pass the vault file itself with --vault PATH".to_string()
        };
        return Err(StoreError::Directory { path: shown, hint });
    }
    if let Err(e) = std::fs::File::open(path) {
        if e.kind() == std::io::ErrorKind::PermissionDenied {
            return Err(StoreError::Unreadable {
                path: shown,
                detail: "permission denied".into(),
                owner: owner_of(path),
            });
        }
    }
    Ok(())
}

/// The login name owning `path` (from /etc/passwd), else its uid.
fn owner_of(path: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    let Ok(uid) = std::fs::metadata(path).map(|m| m.uid()) else {
        return "unknown".into();
    };
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|passwd| {
            passwd.lines().find_map(|line| {
                let fields: Vec<&str> = line.split(':').collect();
                (fields.len() > 2 && fields[2] == uid.to_string()).then(|| fields[0].to_string())
            })
        })
        .unwrap_or_else(|| format!("uid {uid}"))
}

fn staging_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "vault".into());
    let suffix = hex::encode(crate::crypto::random_bytes::<6>());
    path.with_file_name(format!(".{name}.creating-{suffix}"))
}

fn classify(path: &str, e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode;
    let path = path.to_string();
    match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) => StoreError::NotAVault {
            path,
            detail: "not a SQLite database".into(),
        },
        Some(ErrorCode::DatabaseCorrupt) => StoreError::Corrupt {
            path,
            detail: e.to_string(),
        },
        Some(ErrorCode::DatabaseBusy) | Some(ErrorCode::DatabaseLocked) => {
            StoreError::Busy { path }
        }
        Some(ErrorCode::ReadOnly)
        | Some(ErrorCode::DiskFull)
        | Some(ErrorCode::CannotOpen)
        | Some(ErrorCode::PermissionDenied)
        | Some(ErrorCode::SystemIoFailure) => StoreError::Write {
            path,
            detail: e.to_string(),
        },
        _ => StoreError::Corrupt {
            path,
            detail: e.to_string(),
        },
    }
}

fn classify_write(path: &str, e: rusqlite::Error) -> StoreError {
    match classify(path, e) {
        StoreError::Corrupt { path, detail } => StoreError::Write { path, detail },
        other => other,
    }
}
