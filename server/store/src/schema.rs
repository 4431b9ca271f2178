//! Connection settings and schema migrations.
//!
//! Migrations are by hand with `PRAGMA user_version` (the helper crates pin an older rusqlite,
//! and two SQLite builds cannot link). `user_version` is the number of [`MIGRATIONS`] applied.
//! A step is never edited once released: a schema change is a new step at the end.

use super::{StoreError, sql_err};
use rusqlite::{Connection, Transaction, TransactionBehavior};
use std::path::Path;
use std::time::Duration;

/// How long a writer waits for another process's write lock before giving up. The CLI, a run's
/// worker and a server all write the same file; their transactions are short, so 5 s is ample.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The schema, one step per version. Step `i` takes the DB from version `i` to `i + 1`.
/// Tests (and the benchmark's "before" figures) build a version-1 DB from `MIGRATIONS[0]`.
pub const MIGRATIONS: &[&str] = &[
    // v1: runs, events, approvals, decisions, grants.
    r#"
    CREATE TABLE runs (
        run_id       TEXT PRIMARY KEY NOT NULL,
        repo_root    TEXT NOT NULL,
        pack         TEXT NOT NULL,
        profile      TEXT NOT NULL,
        status       TEXT NOT NULL,
        started_at   TEXT NOT NULL,
        updated_at   TEXT NOT NULL,
        ended_at     TEXT,
        head_sha     TEXT NOT NULL,
        branch       TEXT NOT NULL,
        error        TEXT,
        payload_json TEXT NOT NULL,
        -- Rows in `events` for this run, kept by `ingest_events` in the same transaction, so
        -- `event_count` is one lookup instead of a scan of the run's events.
        event_count  INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX runs_by_started ON runs(started_at, run_id);
    CREATE INDEX runs_by_repo ON runs(repo_root, started_at, run_id);

    CREATE TABLE events (
        run_id       TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
        idx          INTEGER NOT NULL,
        ts           TEXT NOT NULL,
        "type"       TEXT NOT NULL,
        payload_json TEXT NOT NULL,
        PRIMARY KEY (run_id, idx)
    ) WITHOUT ROWID;

    CREATE TABLE approvals (
        run_id       TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
        approval_id  TEXT NOT NULL,
        created_at   TEXT NOT NULL,
        file_path    TEXT NOT NULL,
        symbol       TEXT NOT NULL,
        risk_score   INTEGER NOT NULL,
        reason       TEXT NOT NULL,
        diff         TEXT NOT NULL,
        payload_json TEXT NOT NULL,
        PRIMARY KEY (run_id, approval_id)
    );

    CREATE TABLE decisions (
        run_id       TEXT NOT NULL,
        approval_id  TEXT NOT NULL,
        decision     TEXT NOT NULL,
        decided_at   TEXT NOT NULL,
        decided_by   TEXT NOT NULL,
        reason       TEXT NOT NULL,
        payload_json TEXT NOT NULL,
        PRIMARY KEY (run_id, approval_id),
        FOREIGN KEY (run_id, approval_id)
            REFERENCES approvals(run_id, approval_id) ON DELETE CASCADE
    );

    CREATE TABLE grants (
        id           INTEGER PRIMARY KEY,
        repo_root    TEXT NOT NULL,
        ts           TEXT NOT NULL,
        actor        TEXT NOT NULL,
        action       TEXT NOT NULL,
        scope        TEXT NOT NULL,
        tool_class   TEXT NOT NULL,
        tool         TEXT NOT NULL,
        path         TEXT,
        session_id   TEXT,
        payload_json TEXT NOT NULL
    );
    CREATE INDEX grants_by_repo ON grants(repo_root, id);
    "#,
    // v2: an approval row holds its diff (in `diff`) and the git blob ids of the pre- and
    // post-image (the texts are in the repository's object store), and `payload_json` only
    // what has no column of its own. Rows written before keep their whole texts in
    // `payload_json`, with NULL blob ids, and read as they did.
    r#"
    ALTER TABLE approvals ADD COLUMN before_blob TEXT;
    ALTER TABLE approvals ADD COLUMN after_blob TEXT;
    "#,
];

/// The schema version this binary writes.
pub(crate) fn known_version() -> i64 {
    MIGRATIONS.len() as i64
}

/// Per-connection settings, then the schema. The version is checked before anything is written,
/// so a DB from a newer noctune, or a file that is not SQLite, is left untouched.
pub(crate) fn prepare(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let err = |what| sql_err(path, what);
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(err("setting busy_timeout"))?;
    // The first statement that reads the file: this is where "not a database" shows up.
    let version = user_version(conn).map_err(err("reading the schema version"))?;
    check_version(path, version)?;
    // WAL lets readers (a server tailing events) run while a worker writes. The mode is stored
    // in the file, so this is a no-op after the first open.
    let mode = switch_to_wal(conn).map_err(err("switching to WAL journal mode"))?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(db = %path.display(), mode, "audit DB is not in WAL mode; concurrent readers will wait for writers");
    }
    // NORMAL is safe in WAL mode (no corruption on power loss, only the last commits may be
    // lost); durable writes raise it to FULL for their transaction (see `AuditStore::write`).
    conn.execute_batch("PRAGMA foreign_keys=ON; PRAGMA synchronous=NORMAL;")
        .map_err(err("setting foreign_keys and synchronous"))?;
    migrate(conn, path)
}

/// SQLite answers BUSY to a journal-mode change without calling the busy handler when another
/// connection holds the file (two processes opening a new DB at once), so retry by hand.
fn switch_to_wal(conn: &Connection) -> rusqlite::Result<String> {
    let current: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
    if current.eq_ignore_ascii_case("wal") {
        return Ok(current);
    }
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    loop {
        match conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get::<_, String>(0)) {
            Ok(mode) => return Ok(mode),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => return Err(e),
        }
    }
}

fn user_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
}

fn check_version(path: &Path, found: i64) -> Result<(), StoreError> {
    if found > known_version() {
        return Err(StoreError::SchemaTooNew {
            path: path.to_path_buf(),
            found,
            known: known_version(),
        });
    }
    Ok(())
}

/// Applies the missing steps in one IMMEDIATE transaction. The version is read again under the
/// write lock because another process may have migrated while we waited for it.
fn migrate(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let err = |what| sql_err(path, what);
    if user_version(conn).map_err(err("reading the schema version"))? == known_version() {
        return Ok(());
    }
    let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)
        .map_err(err("starting the schema migration"))?;
    let found = user_version(&tx).map_err(err("reading the schema version"))?;
    check_version(path, found)?;
    let start = usize::try_from(found).map_err(|_| StoreError::BadRow {
        path: path.to_path_buf(),
        what: "schema version".into(),
        detail: format!("negative user_version {found}"),
    })?;
    for step in &MIGRATIONS[start..] {
        tx.execute_batch(step)
            .map_err(err("applying a schema migration"))?;
    }
    // user_version is part of the DB header and changes atomically with the transaction.
    tx.execute_batch(&format!("PRAGMA user_version = {}", known_version()))
        .map_err(err("recording the schema version"))?;
    tx.commit().map_err(err("committing the schema migration"))
}
