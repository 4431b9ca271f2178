//! The facade every surface (CLI, HTTP, LSP, MCP) talks to: one `Studio` handle with plain
//! request/response types. Surfaces translate their protocol into these calls and decide
//! nothing themselves.
//!
//! Invariant: no protocol types here (no LSP, HTTP or MCP).

mod chat;

use noctune_core::{ApprovalDecision, Decision, Event, RunRecord};
use noctune_engine::api::{self, ApprovalView, EngineError, StartRequest, Started};
use noctune_store::AuditStore;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

pub struct Studio {
    store: Mutex<AuditStore>,
}

impl Studio {
    pub fn open(db: &Path) -> Result<Studio, EngineError> {
        Ok(Studio {
            store: Mutex::new(AuditStore::open(db)?),
        })
    }

    pub fn open_default() -> Result<Studio, EngineError> {
        Studio::open(&noctune_config::db_path_from_env())
    }

    fn store(&self) -> MutexGuard<'_, AuditStore> {
        // A panic while holding the lock leaves the connection usable; keep serving.
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn db_path(&self) -> PathBuf {
        self.store().path().to_path_buf()
    }

    pub fn start_run(&self, req: &StartRequest) -> Result<Started, EngineError> {
        api::start_run(&self.store(), req)
    }

    /// Waits for a started run's worker, calling `on_tick` about every 100 ms.
    pub fn supervise(
        &self,
        started: &mut Started,
        on_tick: impl FnMut(),
    ) -> Result<RunRecord, EngineError> {
        // The store lock is taken per call inside, not held across the wait.
        let db = self.db_path();
        let store = AuditStore::open(&db)?;
        api::supervise(&store, started, on_tick)
    }

    pub fn status(&self, run_id: &str) -> Result<RunRecord, EngineError> {
        api::status(&self.store(), run_id)
    }

    pub fn list_runs(&self, repo: Option<&Path>) -> Result<Vec<RunRecord>, EngineError> {
        api::list_runs(&self.store(), repo)
    }

    pub fn events(
        &self,
        run_id: &str,
        cursor: u64,
        limit: usize,
    ) -> Result<Vec<Event>, EngineError> {
        api::events(&self.store(), run_id, cursor, limit)
    }

    pub fn approvals(&self, run_id: &str) -> Result<Vec<ApprovalView>, EngineError> {
        api::approvals(&self.store(), run_id)
    }

    pub fn decide(
        &self,
        run_id: &str,
        approval_id: &str,
        decision: Decision,
        reason: &str,
        decided_by: &str,
    ) -> Result<ApprovalDecision, EngineError> {
        api::decide(
            &self.store(),
            run_id,
            approval_id,
            decision,
            reason,
            decided_by,
        )
    }

    pub fn stop(&self, run_id: &str, grace: Option<Duration>) -> Result<RunRecord, EngineError> {
        let db = self.db_path();
        // Stopping waits for the worker; use a connection of its own so other calls go on.
        let store = AuditStore::open(&db)?;
        api::stop(&store, run_id, grace)
    }

    pub fn resume(&self, run_id: &str) -> Result<Started, EngineError> {
        api::resume(&self.store(), run_id)
    }

    pub fn commits(&self, rec: &RunRecord) -> Result<Vec<(String, String)>, EngineError> {
        api::commits(rec)
    }
}
