//! Errors of the audit DB. Every message names the DB file and says what to do, because the
//! people who read them are users at a terminal, not the code that called us.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "cannot create the folder {dir} for the audit DB {path}: {source}; make it writable or set NOCTUNE_STUDIO_DB to a file in a writable folder"
    )]
    CreateDir {
        path: PathBuf,
        dir: PathBuf,
        source: std::io::Error,
    },

    #[error(
        "cannot open the audit DB {path}: {source}; check that the path is a file (not a folder) that you may read and write, or set NOCTUNE_STUDIO_DB to another file"
    )]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },

    #[error(
        "{path} is not an SQLite database (SQLite says: file is not a database); move it aside or set NOCTUNE_STUDIO_DB to another file, and noctune will create a new audit DB"
    )]
    NotADatabase { path: PathBuf },

    #[error(
        "the audit DB {path} is damaged (SQLite says: {detail}); move it aside (with its -wal and -shm files) and noctune will create a new one"
    )]
    Corrupt { path: PathBuf, detail: String },

    #[error(
        "the audit DB {path} has schema version {found}, newer than this noctune knows (version {known}); it was written by a newer noctune: upgrade noctune, or set NOCTUNE_STUDIO_DB to another file"
    )]
    SchemaTooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },

    #[error(
        "the audit DB {path} stayed locked by another process for longer than the busy timeout while {what}; retry, and if it persists look for a stuck noctune process"
    )]
    Busy { path: PathBuf, what: &'static str },

    #[error(
        "the audit DB {path} has no run {run_id} while {what}; record the run with upsert_run before its events, approvals or decisions"
    )]
    UnknownRun {
        path: PathBuf,
        run_id: String,
        what: &'static str,
    },

    #[error(
        "the audit DB {path} has no approval {approval_id} of run {run_id}; record the approval request (upsert_approval) before its decision"
    )]
    UnknownApproval {
        path: PathBuf,
        run_id: String,
        approval_id: String,
    },

    #[error(
        "approval {approval_id} of run {run_id} is already decided ({existing} by {decided_by} at {decided_at}); a decision is final: the edit must be re-proposed to be decided again"
    )]
    AlreadyDecided {
        run_id: String,
        approval_id: String,
        existing: String,
        decided_by: String,
        decided_at: String,
    },

    #[error("invalid value for the audit DB {path}: {detail}")]
    InvalidInput { path: PathBuf, detail: String },

    #[error(
        "the audit DB {path} holds a {what} row that this noctune cannot read ({detail}); it was written by another tool or is damaged"
    )]
    BadRow {
        path: PathBuf,
        what: String,
        detail: String,
    },

    #[error("audit DB {path}: {what} failed: {source}")]
    Sqlite {
        path: PathBuf,
        what: &'static str,
        source: rusqlite::Error,
    },
}

impl StoreError {
    /// Maps a SQLite error to the variant a user can act on; `what` says which operation failed.
    pub(crate) fn sqlite(path: &Path, what: &'static str, e: rusqlite::Error) -> StoreError {
        use rusqlite::ErrorCode as C;
        let path = path.to_path_buf();
        match e.sqlite_error_code() {
            Some(C::NotADatabase) => StoreError::NotADatabase { path },
            Some(C::DatabaseCorrupt) => StoreError::Corrupt {
                path,
                detail: e.to_string(),
            },
            Some(C::DatabaseBusy | C::DatabaseLocked) => StoreError::Busy { path, what },
            Some(C::CannotOpen) => StoreError::Open { path, source: e },
            _ => StoreError::Sqlite {
                path,
                what,
                source: e,
            },
        }
    }
}
