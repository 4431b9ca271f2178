//! The SQLite audit DB (milestone M5): one file for all repositories that mirrors every run's
//! status, events, approval requests and decisions, plus the chat permission audit (grants).
//!
//! `run.json` and `events.jsonl` stay the source of truth of a live run; this DB is what lets a
//! surface list and rebuild runs of every repository without walking their folders, and what
//! keeps the audit trail after a `.noctune_cache` is deleted.
//!
//! The file is shared by several processes (the CLI, each run's worker, a server), so every
//! connection sets a busy timeout and WAL mode, and every write is one short IMMEDIATE
//! transaction. Status changes, decisions and grants are durable (`synchronous=FULL` for their
//! commit); events are batched with `synchronous=NORMAL`, since `events.jsonl` can re-ingest
//! them (ingest is idempotent).
//!
//! Depends only on `crate::core` (the values it stores) and `crate::util`.

mod approvals;
mod error;
mod events;
mod grants;
mod runs;
mod schema;

pub use error::StoreError;
pub use grants::{GRANT_ACTIONS, GRANT_SCOPES, GrantRecord};
pub use schema::MIGRATIONS;

use rusqlite::{Connection, Transaction, TransactionBehavior};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// A handle on the audit DB: one SQLite connection. It is `Send` (servers keep it behind a
/// `Mutex`), not `Sync`; open one handle per thread or process that writes.
pub struct AuditStore {
    conn: Connection,
    path: PathBuf,
}

impl std::fmt::Debug for AuditStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

// Servers share a store behind a Mutex across tokio tasks; keep that possible.
const _: () = {
    const fn assert_send<T: Send>() {}
    assert_send::<AuditStore>();
};

/// Whether a write must survive a power loss the moment it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Durability {
    /// `synchronous=FULL`: the WAL is fsynced at commit (status changes, decisions, grants).
    Full,
    /// `synchronous=NORMAL`: fsync at checkpoints only (event batches, approval requests).
    Normal,
}

/// The DB path: `NOCTUNE_STUDIO_DB` if set, else `$XDG_DATA_HOME/noctune/audit.sqlite`, else
/// `$HOME/.local/share/noctune/audit.sqlite`.
pub fn default_db_path() -> PathBuf {
    db_path_from(|k| std::env::var_os(k))
}

/// [`default_db_path`] with the environment handed in, so it can be tested without touching
/// the process environment. Empty values count as unset; a relative `XDG_DATA_HOME` is ignored,
/// as the XDG spec says.
fn db_path_from(env: impl Fn(&str) -> Option<OsString>) -> PathBuf {
    let set = |k: &str| env(k).filter(|v| !v.is_empty());
    if let Some(p) = set("NOCTUNE_STUDIO_DB") {
        return PathBuf::from(p);
    }
    let data_home = set("XDG_DATA_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute());
    let data_home = data_home.unwrap_or_else(|| {
        let home = set("HOME").map(PathBuf::from).or_else(std::env::home_dir);
        // No home at all (a bare container): a relative path beats refusing to start.
        home.unwrap_or_else(|| PathBuf::from("."))
            .join(".local")
            .join("share")
    });
    data_home.join("noctune").join("audit.sqlite")
}

/// Wraps a rusqlite error with the DB path and the operation, as a `map_err` argument.
pub(crate) fn sql_err(
    path: &Path,
    what: &'static str,
) -> impl FnOnce(rusqlite::Error) -> StoreError + use<> {
    let path = path.to_path_buf();
    move |e| StoreError::sqlite(&path, what, e)
}

impl AuditStore {
    /// Opens (creating if needed, with its parent folders) and migrates the DB at `path`.
    pub fn open(path: &Path) -> Result<AuditStore, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                path: path.to_path_buf(),
                dir: dir.to_path_buf(),
                source,
            })?;
        }
        let conn = Connection::open(path).map_err(|source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        schema::prepare(&conn, path)?;
        // Ingest and cursor queries reuse a handful of statements; keep them all prepared.
        conn.set_prepared_statement_cache_capacity(32);
        Ok(AuditStore {
            conn,
            path: path.to_path_buf(),
        })
    }

    /// Opens the DB at [`default_db_path`].
    pub fn open_default() -> Result<AuditStore, StoreError> {
        AuditStore::open(&default_db_path())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, what: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError + use<> {
        sql_err(&self.path, what)
    }

    /// Runs `f` in one IMMEDIATE transaction (the write lock is taken up front, so the busy
    /// timeout applies and no deadlock between two upgrading readers is possible).
    ///
    /// `synchronous` cannot change inside a transaction, so a durable write raises it to FULL
    /// before `BEGIN` and puts NORMAL back after the commit, even when `f` fails.
    fn write<T>(
        &self,
        durability: Durability,
        what: &'static str,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if durability == Durability::Full {
            self.conn
                .execute_batch("PRAGMA synchronous=FULL")
                .map_err(self.err(what))?;
        }
        let result: Result<T, StoreError> = (|| {
            let tx = Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)
                .map_err(self.err(what))?;
            let value = f(&tx)?;
            tx.commit().map_err(self.err(what))?;
            Ok(value)
        })();
        if durability == Durability::Full {
            let reset = self
                .conn
                .execute_batch("PRAGMA synchronous=NORMAL")
                .map_err(self.err(what));
            if result.is_ok() {
                reset?;
            }
        }
        result
    }

    /// Fails with [`StoreError::UnknownRun`] unless the run has been recorded; gives a clear
    /// message where the foreign key alone would say "FOREIGN KEY constraint failed".
    fn require_run(
        &self,
        tx: &Transaction<'_>,
        run_id: &str,
        what: &'static str,
    ) -> Result<(), StoreError> {
        let exists: bool = tx
            .prepare_cached("SELECT EXISTS(SELECT 1 FROM runs WHERE run_id = ?1)")
            .and_then(|mut s| s.query_row([run_id], |r| r.get(0)))
            .map_err(self.err(what))?;
        if exists {
            Ok(())
        } else {
            Err(StoreError::UnknownRun {
                path: self.path.clone(),
                run_id: run_id.into(),
                what,
            })
        }
    }

    /// Parses a `payload_json` column; a row we cannot read is reported, never unwrapped.
    fn decode<T: serde::de::DeserializeOwned>(
        &self,
        what: String,
        json: &str,
    ) -> Result<T, StoreError> {
        serde_json::from_str(json).map_err(|e| StoreError::BadRow {
            path: self.path.clone(),
            what,
            detail: e.to_string(),
        })
    }

    fn encode<T: serde::Serialize>(&self, what: &str, value: &T) -> Result<String, StoreError> {
        serde_json::to_string(value).map_err(|e| StoreError::InvalidInput {
            path: self.path.clone(),
            detail: format!("{what} cannot be encoded as JSON: {e}"),
        })
    }
}

/// SQLite counts in `i64`; callers pass `usize` limits. Anything larger is "no limit".
fn limit_i64(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let map: HashMap<String, OsString> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn db_path_prefers_override_then_xdg_then_home() {
        let all = [
            ("NOCTUNE_STUDIO_DB", "/x/a.db"),
            ("XDG_DATA_HOME", "/xdg"),
            ("HOME", "/h"),
        ];
        assert_eq!(db_path_from(env(&all)), PathBuf::from("/x/a.db"));
        assert_eq!(
            db_path_from(env(&all[1..])),
            PathBuf::from("/xdg/noctune/audit.sqlite")
        );
        assert_eq!(
            db_path_from(env(&all[2..])),
            PathBuf::from("/h/.local/share/noctune/audit.sqlite")
        );
        let odd = [
            ("NOCTUNE_STUDIO_DB", ""),
            ("XDG_DATA_HOME", "rel"),
            ("HOME", "/h"),
        ];
        assert_eq!(
            db_path_from(env(&odd)),
            PathBuf::from("/h/.local/share/noctune/audit.sqlite")
        );
    }

    fn synchronous(conn: &Connection) -> i64 {
        conn.query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn durable_writes_run_with_synchronous_full_and_restore_normal() {
        let dir = tempfile::tempdir().unwrap();
        let store = AuditStore::open(&dir.path().join("a.sqlite")).unwrap();
        assert_eq!(synchronous(&store.conn), 1, "NORMAL between writes");
        let inside = store
            .write(Durability::Full, "test", |tx| Ok(synchronous(tx)))
            .unwrap();
        assert_eq!(inside, 2, "FULL during a durable write");
        assert_eq!(synchronous(&store.conn), 1);
        let failed: Result<(), _> = store.write(Durability::Full, "test", |_| {
            Err(StoreError::InvalidInput {
                path: PathBuf::new(),
                detail: "x".into(),
            })
        });
        assert!(failed.is_err());
        assert_eq!(
            synchronous(&store.conn),
            1,
            "restored after a failed write too"
        );
        let normal = store
            .write(Durability::Normal, "test", |tx| Ok(synchronous(tx)))
            .unwrap();
        assert_eq!(normal, 1);
    }

    #[test]
    fn connection_settings() {
        let dir = tempfile::tempdir().unwrap();
        let store = AuditStore::open(&dir.path().join("nested/dirs/a.sqlite")).unwrap();
        let mode: String = store
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let fk: i64 = store
            .conn
            .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
            .unwrap();
        assert_eq!(fk, 1);
        let busy: i64 = store
            .conn
            .query_row("PRAGMA busy_timeout", [], |r| r.get(0))
            .unwrap();
        assert_eq!(busy, 5000);
    }
}
