//! Ordered, append-only schema migrations keyed by `PRAGMA user_version`.
//! Never edit a released step; add a new one.

use rusqlite::{Connection, TransactionBehavior};

const STEPS: &[&str] = &[
    // 1: initial schema.
    "CREATE TABLE manifests (
        epoch INTEGER PRIMARY KEY,
        body TEXT NOT NULL,
        signatures TEXT NOT NULL
    );
    CREATE TABLE envelopes (
        epoch INTEGER NOT NULL REFERENCES manifests(epoch),
        custodian TEXT NOT NULL,
        share_index INTEGER NOT NULL CHECK (share_index BETWEEN 1 AND 255),
        envelope TEXT NOT NULL,
        PRIMARY KEY (epoch, custodian)
    );
    CREATE TABLE secrets (
        name TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        username TEXT,
        url TEXT,
        note TEXT,
        created TEXT NOT NULL
    );
    CREATE TABLE secret_versions (
        secret TEXT NOT NULL REFERENCES secrets(name),
        version INTEGER NOT NULL CHECK (version >= 1),
        epoch INTEGER NOT NULL,
        ciphertext TEXT NOT NULL,
        state TEXT NOT NULL,
        depositor TEXT NOT NULL,
        created TEXT NOT NULL,
        PRIMARY KEY (secret, version)
    );
    CREATE TABLE runbook (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        text TEXT NOT NULL,
        updated TEXT NOT NULL,
        updated_by TEXT NOT NULL
    );
    CREATE TABLE audit (
        seq INTEGER PRIMARY KEY,
        time TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        subject TEXT NOT NULL,
        reason TEXT NOT NULL,
        details TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    );",
    // 2: exposure tracking and rotation settings.
    "CREATE TABLE exposures (
        secret TEXT PRIMARY KEY REFERENCES secrets(name),
        version INTEGER NOT NULL,
        epoch INTEGER NOT NULL,
        revealed_by TEXT NOT NULL,
        revealed_at TEXT NOT NULL,
        reason TEXT NOT NULL
    );
    CREATE TABLE rotation_settings (
        secret TEXT PRIMARY KEY REFERENCES secrets(name),
        apply_cmd TEXT,
        gen_length INTEGER,
        gen_charset TEXT,
        max_age_days INTEGER,
        expires TEXT
    );
    CREATE TABLE bypass_codes (
        secret TEXT NOT NULL REFERENCES secrets(name),
        version INTEGER NOT NULL,
        total INTEGER NOT NULL,
        PRIMARY KEY (secret, version)
    );
    CREATE TABLE bypass_used (
        secret TEXT NOT NULL REFERENCES secrets(name),
        version INTEGER NOT NULL,
        code_index INTEGER NOT NULL,
        used_at TEXT NOT NULL,
        PRIMARY KEY (secret, version, code_index)
    );
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        seq INTEGER NOT NULL,
        sink TEXT NOT NULL,
        payload TEXT NOT NULL,
        created TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        delivered TEXT
    );",
    // 3: signatures over anchors, written in quorum sessions. Outside the hash
    // chain on purpose: each one verifies on its own against its epoch's key.
    "CREATE TABLE anchor_signatures (
        seq INTEGER PRIMARY KEY,
        epoch INTEGER NOT NULL,
        signature TEXT NOT NULL
    );",
    // 4: the alert queue names a sink only by its index in a signed manifest
    // and the audit seq it reports; the event is built from that audit row at
    // delivery. Old rows keep their place if the newest manifest signs their
    // sink; any other (unsigned) sink is dropped.
    "CREATE TABLE alert_queue (
        id INTEGER PRIMARY KEY,
        seq INTEGER NOT NULL,
        epoch INTEGER NOT NULL,
        sink_index INTEGER NOT NULL,
        hash TEXT NOT NULL,
        created TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        delivered TEXT,
        UNIQUE (seq, sink_index)
    );
    INSERT OR IGNORE INTO alert_queue (seq, epoch, sink_index, hash, created, attempts, last_error, delivered)
        SELECT o.seq, m.epoch, CAST(j.key AS INTEGER), COALESCE((SELECT a.hash FROM audit a WHERE a.seq = o.seq), ''),
               o.created, o.attempts, o.last_error, o.delivered
        FROM outbox o
        JOIN (SELECT epoch, body FROM manifests ORDER BY epoch DESC LIMIT 1) m
        JOIN json_each(m.body, '$.alerts') j ON json(j.value) = json(o.sink)
        ORDER BY o.id;
    DROP TABLE outbox;",
    // 5: checkpoints sign a digest of what they endorse instead of listing it,
    // so a checkpoint row no longer grows with the vault. These tables hold
    // the endorsed sets of the latest checkpoint only (replaced in the
    // transaction that writes it); they count only while they hash to the
    // digests that checkpoint signed. Indexes keep a command's cost from
    // growing with the vault: audit rows by action (alerts, checkpoints), a
    // secret's versions by state (its active or pending one, however many
    // versions it has), and undelivered alerts.
    "CREATE TABLE endorsed_versions (
        secret TEXT NOT NULL,
        version INTEGER NOT NULL,
        ciphertext_sha256 TEXT NOT NULL,
        depositor TEXT NOT NULL,
        PRIMARY KEY (secret, version)
    );
    CREATE TABLE endorsed_settings (
        secret TEXT PRIMARY KEY,
        apply_cmd TEXT,
        gen_length INTEGER,
        gen_charset TEXT,
        max_age_days INTEGER,
        expires TEXT
    );
    CREATE INDEX audit_by_action ON audit (action, seq);
    CREATE INDEX secret_versions_by_state ON secret_versions (secret, state, version);
    CREATE INDEX alert_queue_undelivered ON alert_queue (id) WHERE delivered IS NULL;",
    // 6: each queued alert records the origin (a random per-machine id kept in
    // the state directory) that queued it, and only that origin delivers it
    // unasked, so a copy of the file on another machine never re-sends what
    // the first one queued; rows queued before have none ('') until adopted.
    // `claimed_until` keeps a second command from sending an alert another one
    // is delivering. `alert_backoff` holds each origin's failing sinks (keyed
    // by the sink as `alerts list` names it; it never chooses one) and when
    // they are tried again.
    "ALTER TABLE alert_queue ADD COLUMN origin TEXT NOT NULL DEFAULT '';
    ALTER TABLE alert_queue ADD COLUMN claimed_until TEXT;
    CREATE TABLE alert_backoff (
        origin TEXT NOT NULL,
        sink TEXT NOT NULL,
        failures INTEGER NOT NULL,
        retry_after TEXT NOT NULL,
        last_error TEXT,
        PRIMARY KEY (origin, sink)
    );",
    // 7: built-in rotators (`put --rotator KIND --rotator-config FILE`): the
    // rotator kind and its non-secret config (canonical JSON) per secret, and
    // the rotators the latest checkpoint endorsed, beside `endorsed_settings`
    // (hashed into the same signed settings digest). New tables, so readers
    // of older files treat them as empty.
    "CREATE TABLE rotators (
        secret TEXT PRIMARY KEY REFERENCES secrets(name),
        kind TEXT NOT NULL,
        config TEXT NOT NULL
    );
    CREATE TABLE endorsed_rotators (
        secret TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        config TEXT NOT NULL
    );",
];

pub const LATEST: i64 = STEPS.len() as i64;

/// Read-only opens accept files from this version on: later steps only add
/// tables that readers treat as empty when absent.
pub const READABLE_FROM: i64 = 2;

/// One `sqlite_master` row: (type, name, tbl_name, sql).
pub type SchemaObject = (String, String, String, Option<String>);

/// The exact schema a file at `version` must have: the first `version` steps
/// replayed in memory. Nothing else (trigger, view, index, table) is allowed.
pub fn expected_schema(version: i64) -> rusqlite::Result<Vec<SchemaObject>> {
    let conn = Connection::open_in_memory()?;
    for step in STEPS.iter().take(version.max(0) as usize) {
        conn.execute_batch(step)?;
    }
    schema_of(&conn)
}

/// The schema objects a file holds, sorted by type and name.
pub fn schema_of(conn: &Connection) -> rusqlite::Result<Vec<SchemaObject>> {
    let mut stmt =
        conn.prepare("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name")?;
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<rusqlite::Result<Vec<SchemaObject>>>()?;
    Ok(rows)
}

pub fn user_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.pragma_query_value(None, "user_version", |r| r.get(0))
}

pub fn pending(conn: &Connection) -> rusqlite::Result<bool> {
    Ok(user_version(conn)? < LATEST)
}

/// Too old to read without upgrading first.
pub fn too_old_to_read(conn: &Connection) -> rusqlite::Result<bool> {
    Ok(user_version(conn)? < READABLE_FROM)
}

/// Apply every step above the file's `user_version`, all in one exclusive transaction.
pub fn run(conn: &Connection) -> rusqlite::Result<()> {
    if !pending(conn)? {
        return Ok(());
    }
    let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Exclusive)?;
    let current = user_version(&tx)?;
    for (i, step) in STEPS.iter().enumerate().skip(current.max(0) as usize) {
        tx.execute_batch(step)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
    }
    tx.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_1_file_upgrades_in_place() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(STEPS[0]).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.execute(
            "INSERT INTO secrets (name, kind, created) VALUES ('vpn', 'password', 'now')",
            [],
        )
        .unwrap();
        run(&conn).unwrap();
        assert_eq!(user_version(&conn).unwrap(), LATEST);
        let kept: i64 = conn
            .query_row("SELECT count(*) FROM secrets", [], |r| r.get(0))
            .unwrap();
        assert_eq!(kept, 1);
        conn.execute(
            "INSERT INTO exposures VALUES ('vpn', 1, 1, 'a', 'now', 'r')",
            [],
        )
        .unwrap();
    }

    #[test]
    fn migrating_twice_is_a_no_op() {
        let conn = Connection::open_in_memory().unwrap();
        run(&conn).unwrap();
        assert_eq!(user_version(&conn).unwrap(), LATEST);
        run(&conn).unwrap();
        assert_eq!(user_version(&conn).unwrap(), LATEST);
        let tables: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(tables, 18);
    }

    #[test]
    fn a_version_5_queue_upgrades_with_no_origin_and_no_backoff() {
        let conn = Connection::open_in_memory().unwrap();
        for step in &STEPS[..5] {
            conn.execute_batch(step).unwrap();
        }
        conn.pragma_update(None, "user_version", 5).unwrap();
        conn.execute(
            "INSERT INTO alert_queue (seq, epoch, sink_index, hash, created, attempts, last_error)
             VALUES (7, 1, 0, 'h', '2026-01-01T00:00:00.000Z', 2, 'refused')",
            [],
        )
        .unwrap();
        run(&conn).unwrap();
        assert_eq!(user_version(&conn).unwrap(), LATEST);
        let row: (i64, String, Option<String>, i64, Option<String>) = conn
            .query_row(
                "SELECT seq, origin, claimed_until, attempts, last_error FROM alert_queue",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .unwrap();
        assert_eq!(row, (7, String::new(), None, 2, Some("refused".into())));
        let backoffs: i64 = conn
            .query_row("SELECT count(*) FROM alert_backoff", [], |r| r.get(0))
            .unwrap();
        assert_eq!(backoffs, 0);
        // The upgraded schema is exactly the one a new file gets.
        assert_eq!(schema_of(&conn).unwrap(), expected_schema(LATEST).unwrap());
    }
}
