//! Runs behind the facade: start (roots check and supervision inside), status, list, events,
//! approvals, decide (validation and limits inside), stop, resume, patchsets, commits.

use crate::{Roots, Studio, limits};
use noctune_core::{
    ApprovalDecision, ApprovalView, Decision, ErrorCode, Event, OpError, RunRecord, StartRequest,
};
use noctune_engine::RunPaths;
use noctune_engine::api::{self, Started};
use noctune_engine::events::EventTail;
use std::path::Path;
use std::time::Duration;

pub use noctune_core::PatchsetPlan;

/// A commit a run made on its branch.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct Commit {
    /// The full commit id (hex).
    pub sha: String,
    /// The first line of its message.
    pub summary: String,
}

/// New events of one run as they are appended (for following a run live).
pub struct EventFeed {
    tail: EventTail,
    paths: RunPaths,
}

impl EventFeed {
    /// The complete events appended since the last call (none while the log does not exist).
    pub fn poll(&mut self) -> Result<Vec<Event>, OpError> {
        self.tail
            .poll()
            .map_err(|e| OpError::new(ErrorCode::Internal, format!("reading events: {e}")))
    }

    /// Whether the run still has its events file (it may have been deleted; the audit DB
    /// keeps the events then).
    pub fn has_log(&self) -> bool {
        self.paths.events().exists()
    }
}

impl Studio {
    /// A decision word as every surface accepts it.
    pub fn parse_decision(word: &str) -> Result<Decision, OpError> {
        Decision::parse(word).ok_or_else(|| {
            OpError::invalid(format!(
                "decision {word:?}: expected \"approve\" or \"reject\""
            ))
        })
    }

    /// The one rule for which repositories a request may reach.
    fn check_roots(&self, repo: &Path) -> Result<std::path::PathBuf, OpError> {
        let canon = std::fs::canonicalize(repo).map_err(|_| {
            OpError::new(
                ErrorCode::NotARepo,
                format!(
                    "{}: no such directory; pass an existing repository's absolute path",
                    repo.display()
                ),
            )
        })?;
        if let Roots::Fixed(roots) = &self.roots {
            api::check_allowed(&canon, roots)?;
        }
        Ok(canon)
    }

    /// Starts a run and supervises its worker from this process: a worker that dies before
    /// the run ended makes the run `failed` with how it died. Returns once `run.json` exists.
    pub fn start_run(&self, req: &StartRequest) -> Result<RunRecord, OpError> {
        if !req.repo.is_absolute() {
            return Err(OpError::invalid(format!(
                "repository {:?} is relative; pass its absolute path",
                req.repo.display().to_string()
            )));
        }
        let repo = self.check_roots(&req.repo)?;
        let started = api::start_run(
            &self.store(),
            &StartRequest {
                repo,
                pack: req.pack.clone(),
                profile: req.profile.clone().filter(|p| !p.is_empty()),
            },
        )?;
        Ok(self.supervise(started))
    }

    /// Continues a stopped or failed run, supervised like a started one.
    pub fn resume(&self, run_id: &str) -> Result<RunRecord, OpError> {
        let rec = self.status(run_id)?;
        let repo = self.check_roots(Path::new(&rec.repo_root))?;
        super::restore_cache(&repo, true);
        let started = api::resume(&self.store(), run_id)?;
        Ok(self.supervise(started))
    }

    /// The one supervisor: a thread that reaps the worker and records how it ended. Without it
    /// (the thread cannot start, or this process exits first) the liveness check of every
    /// reader still catches a dead worker by pid and heartbeat lease.
    fn supervise(&self, mut started: Started) -> RunRecord {
        let record = started.record.clone();
        self.supervised
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(record.run_id.to_string());
        let db = self.db.clone();
        let run_id = record.run_id.to_string();
        let spawned = std::thread::Builder::new()
            .name(format!("supervise-{run_id}"))
            .spawn(move || {
                let result = noctune_store::AuditStore::open(&db)
                    .map_err(api::EngineError::from)
                    .and_then(|store| api::supervise(&store, &mut started, || {}));
                if let Err(e) = result {
                    tracing::warn!(run_id, error = %e, "supervising the run failed");
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "could not start a supervisor thread");
        }
        record
    }

    /// Blocks until the run is terminal, handing each new event to `on_events` as it is
    /// appended (about every 100 ms). Returns the final record.
    pub fn wait(
        &self,
        run_id: &str,
        mut on_events: impl FnMut(&[Event]),
    ) -> Result<RunRecord, OpError> {
        let mut cursor = 0;
        let ours = self
            .supervised
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(run_id);
        loop {
            // A run this process supervises is read as it is: its supervisor, which reaps the
            // worker, says how a dead worker died (a liveness check would race it).
            let rec = if ours {
                let rec = self.status_unchecked(run_id)?;
                rec
            } else {
                self.status(run_id)?
            };
            loop {
                let batch = self.events(run_id, cursor, limits::MAX_EVENT_PAGE)?;
                if let Some(last) = batch.last() {
                    cursor = last.idx + 1;
                    on_events(&batch);
                }
                if batch.len() < limits::MAX_EVENT_PAGE {
                    break;
                }
            }
            if rec.status.is_terminal() {
                return Ok(rec);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn status_unchecked(&self, run_id: &str) -> Result<RunRecord, OpError> {
        let (paths, _) = api::locate(&self.store(), run_id)?;
        noctune_engine::runfile::read(&paths)
            .map_err(|e| OpError::new(ErrorCode::Internal, e.to_string()))
    }

    pub fn status(&self, run_id: &str) -> Result<RunRecord, OpError> {
        Ok(api::status(&self.store(), run_id)?)
    }

    /// Runs, newest first; of one repository when `repo` is given.
    pub fn list_runs(&self, repo: Option<&Path>) -> Result<Vec<RunRecord>, OpError> {
        Ok(api::list_runs(&self.store(), repo)?)
    }

    /// Up to `limit` (at most [`limits::MAX_EVENT_PAGE`]) events with `idx >= cursor`.
    pub fn events(&self, run_id: &str, cursor: u64, limit: usize) -> Result<Vec<Event>, OpError> {
        let limit = limit.clamp(1, limits::MAX_EVENT_PAGE);
        Ok(api::events(&self.store(), run_id, cursor, limit)?)
    }

    /// Events from the audit DB alone (what remains when the run's folder is gone).
    pub fn events_from_db(
        &self,
        run_id: &str,
        cursor: u64,
        limit: usize,
    ) -> Result<Vec<Event>, OpError> {
        let rec = self.status(run_id)?;
        let limit = limit.clamp(1, limits::MAX_EVENT_PAGE);
        self.store()
            .events_from(&rec.run_id, cursor, limit)
            .map_err(|e| OpError::new(ErrorCode::Internal, format!("audit DB: {e}")))
    }

    /// Follows the run's events file from its start.
    pub fn event_feed(&self, run_id: &str) -> Result<EventFeed, OpError> {
        let rec = self.status(run_id)?;
        let paths = RunPaths::new(Path::new(&rec.repo_root), &rec.run_id);
        Ok(EventFeed {
            tail: EventTail::new(&paths),
            paths,
        })
    }

    pub fn approvals(&self, run_id: &str) -> Result<Vec<ApprovalView>, OpError> {
        Ok(api::approvals(&self.store(), run_id)?)
    }

    /// Records a person's decision. `decided_by` names the surface and who (`web`,
    /// `cli:alice`, `mcp:<client>`, `lsp:<editor>`, `chat:<session>`).
    pub fn decide(
        &self,
        run_id: &str,
        approval_id: &str,
        decision: Decision,
        reason: &str,
        decided_by: &str,
    ) -> Result<ApprovalDecision, OpError> {
        limits::check_reason(reason)?;
        Ok(api::decide(
            &self.store(),
            run_id,
            approval_id,
            decision,
            reason,
            decided_by,
        )?)
    }

    /// Asks a run to stop: cooperative first, then a kill after `grace` (default: the
    /// repository's `engine.stop_grace_secs`). Returns the final record.
    pub fn stop(&self, run_id: &str, grace: Option<Duration>) -> Result<RunRecord, OpError> {
        let store = self.own_store()?;
        Ok(api::stop(&store, run_id, grace)?)
    }

    /// The commits a run made on its branch after the head it started from.
    pub fn commits(&self, rec: &RunRecord) -> Result<Vec<Commit>, OpError> {
        Ok(api::commits(rec)?
            .into_iter()
            .map(|(sha, summary)| Commit { sha, summary })
            .collect())
    }

    /// The run's planned patchsets (empty before planning).
    pub fn patchsets(&self, run_id: &str) -> Result<PatchsetPlan, OpError> {
        let rec = self.status(run_id)?;
        let paths = RunPaths::new(Path::new(&rec.repo_root), &rec.run_id);
        Ok(std::fs::read(paths.patchsets())
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default())
    }
}
