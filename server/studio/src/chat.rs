//! Chat behind the facade: [`Studio::chat`] gives the one `ChatService` of a repository, and
//! `Studio` is the engine handle of the chat's run tools.
//!
//! One service per (audit DB, repository) per process, so that every surface of the process
//! (terminal, web page, editor) shares the repository's permission gate and sessions: a grant
//! given in the browser holds for the editor's chat of the same session.

use super::Studio;
use noctune_chat::service::{ChatError, ChatService};
use noctune_chat::tools::runs::RunControl;
use noctune_core::{ApprovalDecision, Decision, Event, RunRecord};
use noctune_engine::api::{ApprovalView, EngineError, StartRequest};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

type Services = Mutex<HashMap<(PathBuf, PathBuf), Arc<ChatService>>>;

fn services() -> &'static Services {
    static SERVICES: OnceLock<Services> = OnceLock::new();
    SERVICES.get_or_init(|| Mutex::new(HashMap::new()))
}

impl Studio {
    /// The chat service of the repository at `repo_root` (created on first use, then shared).
    pub fn chat(&self, repo_root: &Path) -> Result<Arc<ChatService>, ChatError> {
        let repo = std::fs::canonicalize(repo_root).map_err(|source| ChatError::Repo {
            path: repo_root.to_path_buf(),
            source,
        })?;
        let db = self.db_path();
        let key = (db.clone(), repo.clone());
        let mut map = services().lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = map.get(&key) {
            return Ok(s.clone());
        }
        let runs: Arc<dyn RunControl> = Arc::new(StudioRuns::open(&db)?);
        let service = Arc::new(ChatService::open(&repo, Some(&db), Some(runs))?);
        map.insert(key, service.clone());
        Ok(service)
    }
}

/// The engine as the chat's run tools see it: a `Studio` of its own on the same audit DB (so
/// a tool call never waits for a surface's connection).
struct StudioRuns {
    studio: Arc<Studio>,
}

impl StudioRuns {
    fn open(db: &Path) -> Result<StudioRuns, ChatError> {
        let studio = Studio::open(db).map_err(|e| match e {
            EngineError::Store(s) => ChatError::Store(s),
            other => ChatError::Repo {
                path: db.to_path_buf(),
                source: std::io::Error::other(other.to_string()),
            },
        })?;
        Ok(StudioRuns {
            studio: Arc::new(studio),
        })
    }
}

impl RunControl for StudioRuns {
    fn start(&self, req: &StartRequest) -> Result<RunRecord, EngineError> {
        let mut started = self.studio.start_run(req)?;
        let record = started.record.clone();
        // Reap the worker and turn its death into a failed run, as `noctune run` does.
        let studio = self.studio.clone();
        let run_id = record.run_id.to_string();
        let spawned = std::thread::Builder::new()
            .name(format!("supervise-{run_id}"))
            .spawn(move || {
                if let Err(e) = studio.supervise(&mut started, || {}) {
                    tracing::warn!(run_id, error = %e, "supervising a chat-started run failed");
                }
            });
        if let Err(e) = spawned {
            // Without a supervisor the liveness check of any reader still catches a dead
            // worker (pid + heartbeat lease); log and go on.
            tracing::warn!(error = %e, "could not start a supervisor thread");
        }
        Ok(record)
    }

    fn status(&self, run_id: &str) -> Result<RunRecord, EngineError> {
        self.studio.status(run_id)
    }

    fn stop(&self, run_id: &str) -> Result<RunRecord, EngineError> {
        self.studio.stop(run_id, None)
    }

    fn events(&self, run_id: &str, cursor: u64, limit: usize) -> Result<Vec<Event>, EngineError> {
        self.studio.events(run_id, cursor, limit)
    }

    fn approvals(&self, run_id: &str) -> Result<Vec<ApprovalView>, EngineError> {
        self.studio.approvals(run_id)
    }

    fn decide(
        &self,
        run_id: &str,
        approval_id: &str,
        decision: Decision,
        reason: &str,
        decided_by: &str,
    ) -> Result<ApprovalDecision, EngineError> {
        self.studio
            .decide(run_id, approval_id, decision, reason, decided_by)
    }
}
