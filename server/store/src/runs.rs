//! The `runs` table: one row per run, mirroring `state/run.json`.
//!
//! The columns exist for queries (list by repository, by status); `payload_json` holds the
//! whole [`RunRecord`] so the record is rebuilt exactly, including fields added later that have
//! no column.

use super::{AuditStore, Durability, StoreError, limit_i64};
use noctune_core::{RunId, RunRecord};

const UPSERT: &str = "INSERT INTO runs (run_id, repo_root, pack, profile, status, started_at,
        updated_at, ended_at, head_sha, branch, error, payload_json)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
    ON CONFLICT (run_id) DO UPDATE SET repo_root = excluded.repo_root, pack = excluded.pack,
        profile = excluded.profile, status = excluded.status, started_at = excluded.started_at,
        updated_at = excluded.updated_at, ended_at = excluded.ended_at,
        head_sha = excluded.head_sha, branch = excluded.branch, error = excluded.error,
        payload_json = excluded.payload_json";

impl AuditStore {
    /// Records a run's current `run.json`. Durable: called on every status change, and a status
    /// the user has seen must not be lost to a crash.
    ///
    /// Last write wins: `run.json` is the source of truth and the run-state machine
    /// (`RunStatus::transition`) is applied by its writer, not re-judged here.
    pub fn upsert_run(&self, rec: &RunRecord) -> Result<(), StoreError> {
        let payload = self.encode("run record", rec)?;
        self.write(Durability::Full, "recording a run", |tx| {
            let mut stmt = tx
                .prepare_cached(UPSERT)
                .map_err(self.err("recording a run"))?;
            stmt.execute(rusqlite::params![
                rec.run_id.as_str(),
                rec.repo_root,
                rec.pack,
                rec.profile,
                rec.status.as_str(),
                rec.started_at,
                rec.updated_at,
                rec.ended_at,
                rec.head_sha,
                rec.branch,
                rec.error,
                payload,
            ])
            .map_err(self.err("recording a run"))?;
            Ok(())
        })
    }

    pub fn get_run(&self, run_id: &RunId) -> Result<Option<RunRecord>, StoreError> {
        let what = "reading a run";
        let mut stmt = self
            .conn
            .prepare_cached("SELECT payload_json FROM runs WHERE run_id = ?1")
            .map_err(self.err(what))?;
        let mut rows = stmt.query([run_id.as_str()]).map_err(self.err(what))?;
        match rows.next().map_err(self.err(what))? {
            None => Ok(None),
            Some(row) => {
                let json: String = row.get(0).map_err(self.err(what))?;
                self.decode(format!("run {run_id}"), &json).map(Some)
            }
        }
    }

    /// Runs newest first (by `started_at`, then `run_id`), of one repository or of all.
    pub fn list_runs(
        &self,
        repo_root: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RunRecord>, StoreError> {
        let what = "listing runs";
        // Two statements rather than `?1 IS NULL OR repo_root = ?1`, so each can use its index.
        let (sql, arg): (&str, Vec<&dyn rusqlite::ToSql>) = match &repo_root {
            Some(root) => (
                "SELECT run_id, payload_json FROM runs WHERE repo_root = ?1
                 ORDER BY started_at DESC, run_id DESC LIMIT ?2",
                vec![root],
            ),
            None => (
                "SELECT run_id, payload_json FROM runs
                 ORDER BY started_at DESC, run_id DESC LIMIT ?1",
                vec![],
            ),
        };
        let limit = limit_i64(limit);
        let mut params = arg;
        params.push(&limit);
        let mut stmt = self.conn.prepare_cached(sql).map_err(self.err(what))?;
        let mut rows = stmt.query(params.as_slice()).map_err(self.err(what))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(self.err(what))? {
            let id: String = row.get(0).map_err(self.err(what))?;
            let json: String = row.get(1).map_err(self.err(what))?;
            out.push(self.decode(format!("run {id}"), &json)?);
        }
        Ok(out)
    }
}
