//! Chat behind the facade: [`Studio::chat`] gives the one `ChatService` of a repository, and
//! the facade is the engine handle of the chat's run tools, so a run started from chat is
//! checked against the same roots and supervised by the same code as one started anywhere else.
//!
//! One service per (audit DB, repository) per process, so that every surface of the process
//! (terminal, web page, editor) shares the repository's permission gate and sessions: a grant
//! given in the browser holds for the editor's chat of the same session.
//!
//! The chat values surfaces handle (events of a turn, permission prompts, the buffer overlay
//! and edit sink an editor supplies) are re-exported here: this module is the chat API of
//! every surface.

use super::{Roots, Studio};
use noctune_chat::tools::runs::RunControl;
use noctune_core::{
    ApprovalDecision, ApprovalView, Decision, Event, OpError, RunRecord, StartRequest,
};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

pub use noctune_chat::agent::{
    ChatEvent, FixedPrompter, ModeUsed, NoPrompter, Prompter, TurnContext, TurnSummary,
};
pub use noctune_chat::permissions::{AlwaysGrant, GrantScope, PermissionAnswer, PermissionRequest};
pub use noctune_chat::service::{ChatError, ChatService, check_message};
pub use noctune_chat::session::{
    SESSIONS_DIR, Session, SessionSummary, new_id as new_session_id, validate_id,
};
pub use noctune_chat::tool::{BufferOverlay, EditSink, Tool, ToolClass, ToolContext, ToolError};
pub use noctune_llm::CancelToken;
pub use noctune_mcp_client::{McpClients, ServerState, ServerStatus};

type Services = Mutex<HashMap<(PathBuf, PathBuf), Arc<ChatService>>>;

fn services() -> &'static Services {
    static SERVICES: OnceLock<Services> = OnceLock::new();
    SERVICES.get_or_init(|| Mutex::new(HashMap::new()))
}

impl Studio {
    /// The chat service of the repository at `repo_root` (created on first use, then shared).
    pub fn chat(&self, repo_root: &Path) -> Result<Arc<ChatService>, OpError> {
        let repo = std::fs::canonicalize(repo_root).map_err(|source| ChatError::Repo {
            path: repo_root.to_path_buf(),
            source,
        })?;
        if let Roots::Fixed(roots) = &self.roots {
            noctune_engine::api::check_allowed(&repo, roots)?;
        }
        super::restore_cache(&repo, true);
        let db = self.db_path();
        let key = (db.clone(), repo.clone());
        let mut map = services().lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = map.get(&key) {
            return Ok(s.clone());
        }
        let runs: Arc<dyn RunControl> = Arc::new(StudioRuns::open(self)?);
        let service = Arc::new(ChatService::open(&repo, Some(&db), Some(runs))?);
        map.insert(key, service.clone());
        Ok(service)
    }

    /// Connects the MCP servers configured for `repo_root` (a failing one only logs: chat
    /// goes on without its tools) and registers their tools as `<server>__<tool>`. The
    /// connections stay open for the life of the process. Returns how many tools were added.
    pub fn attach_mcp_servers(&self, repo_root: &Path) -> usize {
        let Ok(service) = self.chat(repo_root) else {
            return 0;
        };
        if service.config().mcp_servers.is_empty() {
            return 0;
        }
        let clients = McpClients::connect_all_blocking(service.config());
        let tools = clients.tools();
        let n = tools.len();
        for t in tools {
            service.register_tool(t);
        }
        kept_clients()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(clients);
        n
    }

    /// The status of the MCP servers configured for `repo_root`, each started once.
    pub fn mcp_server_status(&self, repo_root: &Path) -> Result<Vec<ServerStatus>, OpError> {
        let cfg = noctune_config::load(repo_root)
            .map_err(|e| OpError::new(noctune_core::ErrorCode::ConfigError, e.to_string()))?;
        let clients = McpClients::connect_all_blocking(&cfg);
        Ok(clients.statuses())
    }
}

fn kept_clients() -> &'static Mutex<Vec<McpClients>> {
    static CLIENTS: OnceLock<Mutex<Vec<McpClients>>> = OnceLock::new();
    CLIENTS.get_or_init(|| Mutex::new(Vec::new()))
}

/// The engine as the chat's run tools see it: a `Studio` of its own on the same audit DB and
/// with the same roots (so a tool call never waits for a surface's connection).
struct StudioRuns {
    studio: Studio,
}

impl StudioRuns {
    fn open(parent: &Studio) -> Result<StudioRuns, OpError> {
        let mut studio = Studio::open(&parent.db)?;
        studio.roots = parent.roots.clone();
        Ok(StudioRuns { studio })
    }
}

impl RunControl for StudioRuns {
    fn start(&self, req: &StartRequest) -> Result<RunRecord, OpError> {
        self.studio.start_run(req)
    }

    fn status(&self, run_id: &str) -> Result<RunRecord, OpError> {
        self.studio.status(run_id)
    }

    fn stop(&self, run_id: &str) -> Result<RunRecord, OpError> {
        self.studio.stop(run_id, None)
    }

    fn events(&self, run_id: &str, cursor: u64, limit: usize) -> Result<Vec<Event>, OpError> {
        self.studio.events(run_id, cursor, limit)
    }

    fn approvals(&self, run_id: &str) -> Result<Vec<ApprovalView>, OpError> {
        self.studio.approvals(run_id)
    }

    fn decide(
        &self,
        run_id: &str,
        approval_id: &str,
        decision: Decision,
        reason: &str,
        decided_by: &str,
    ) -> Result<ApprovalDecision, OpError> {
        self.studio
            .decide(run_id, approval_id, decision, reason, decided_by)
    }
}
