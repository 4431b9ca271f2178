//! What every handler of one session shares: the client handle, the synced documents, the
//! lazily opened `Studio` facade and the workspace's repository.

use super::documents::Documents;
use super::protocol::ApprovalItem;
use noctune_core::RunRecord;
use noctune_studio::chat::CancelToken;
use noctune_studio::{ApprovalView, OpError, Studio};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{Notify, OnceCell, watch};
use tower_lsp_server::Client;
use tower_lsp_server::jsonrpc::{Error, ErrorCode};
use tower_lsp_server::ls_types::NumberOrString;

/// Where the /studio HTTP server of this process is, as the CLI reports it.
#[derive(Debug, Clone, PartialEq)]
pub enum StudioUrl {
    /// `--no-http`.
    Disabled,
    Starting,
    Ready(String),
    Failed(String),
}

/// What the client said it can do at `initialize`.
#[derive(Debug, Clone, Default)]
pub struct ClientCaps {
    pub work_done_progress: bool,
    pub show_document: bool,
    pub apply_edit: bool,
    /// `workspaceEdit.documentChanges` with the `create` resource operation (new files).
    pub create_files: bool,
    pub name: String,
}

pub struct Shared {
    pub client: Client,
    pub docs: Arc<Documents>,
    pub caps: Mutex<ClientCaps>,
    /// `--repo`, or the workspace folder / root URI from `initialize`.
    pub repo_hint: Mutex<Option<PathBuf>>,
    repo: OnceCell<PathBuf>,
    studio: OnceCell<Arc<Studio>>,
    pub studio_url: watch::Receiver<StudioUrl>,
    /// Wakes the watcher (a run started, a decision made here).
    pub wake: Notify,
    pub shutdown: AtomicBool,
    pub approvals: ApprovalsTracker,
    pub runs: RunsTracker,
    pub chat: ChatTracker,
}

impl Shared {
    pub fn new(
        client: Client,
        repo: Option<PathBuf>,
        studio_url: watch::Receiver<StudioUrl>,
    ) -> Shared {
        Shared {
            client,
            docs: Arc::new(Documents::new()),
            caps: Mutex::default(),
            repo_hint: Mutex::new(repo),
            repo: OnceCell::new(),
            studio: OnceCell::new(),
            studio_url,
            wake: Notify::new(),
            shutdown: AtomicBool::new(false),
            approvals: Default::default(),
            runs: Default::default(),
            chat: Default::default(),
        }
    }

    pub fn caps(&self) -> ClientCaps {
        self.caps.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn is_shut_down(&self) -> bool {
        self.shutdown.load(Ordering::Relaxed)
    }

    /// The facade, opened on first use (not during `initialize`) and confined to the allowed
    /// roots of the workspace's repository.
    pub async fn studio(&self) -> Result<Arc<Studio>, Error> {
        let repo = self.repo().await?;
        self.studio
            .get_or_try_init(|| async {
                blocking(move || {
                    let db = Studio::open_default()?.db_path();
                    Studio::for_repository(&db, &repo).map(Arc::new)
                })
                .await
            })
            .await
            .cloned()
    }

    /// The git repository of this workspace (canonical).
    pub async fn repo(&self) -> Result<PathBuf, Error> {
        self.repo
            .get_or_try_init(|| async {
                let hint = self.repo_hint.lock().unwrap_or_else(|p| p.into_inner()).clone();
                let start = match hint {
                    Some(p) => p,
                    None => std::env::current_dir().map_err(|e| failed(format!("no workspace folder and no current directory: {e}")))?,
                };
                tokio::task::spawn_blocking(move || Studio::discover_repository(&start).map_err(|e| failed(format!("{}; open a folder inside a git repository or start the server with --repo DIR", e.message))))
                    .await
                    .map_err(|e| failed(format!("internal: {e}")))?
            })
            .await
            .cloned()
    }

    /// Who decides when a decision comes from this editor.
    pub fn decided_by(&self) -> String {
        let user = std::env::var("USER").unwrap_or_else(|_| "user".into());
        let client = self.caps().name;
        if client.is_empty() {
            format!("{user} (lsp)")
        } else {
            format!("{user} (lsp: {client})")
        }
    }
}

// The per-feature state of the session and the watcher's snapshot live here, not in the
// feature files, so those files depend on this one and never the other way round.

/// What was last published, per document URI.
#[derive(Default)]
pub struct ApprovalsTracker {
    pub published: Mutex<BTreeMap<String, Vec<ApprovalItem>>>,
}

impl ApprovalsTracker {
    pub fn current(&self) -> BTreeMap<String, Vec<ApprovalItem>> {
        self.published
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

pub struct Reporting {
    pub token: NumberOrString,
    pub last: String,
}

#[derive(Default)]
pub struct RunsTracker {
    /// Runs this session reports `$/progress` for.
    pub progress: Mutex<BTreeMap<String, Reporting>>,
    /// Live runs of the workspace seen by the last watcher pass.
    live: Mutex<BTreeSet<String>>,
}

impl RunsTracker {
    pub fn tracked_ids(&self) -> Vec<String> {
        self.progress
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect()
    }
    pub fn live_ids(&self) -> Vec<String> {
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect()
    }
    pub fn set_live(&self, ids: BTreeSet<String>) {
        *self.live.lock().unwrap_or_else(|p| p.into_inner()) = ids;
    }
    pub fn add_live(&self, id: &str) {
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_string());
    }
}

/// Chat turns in flight, by request id, so they can be cancelled.
#[derive(Default)]
pub struct ChatTracker {
    active: Mutex<HashMap<String, (String, CancelToken)>>,
    pub next: AtomicU64,
}

impl ChatTracker {
    pub fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (String, CancelToken)>> {
        self.active.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn cancel_all(&self) {
        for (_, (_, c)) in self.lock().iter() {
            c.cancel();
        }
    }
}

/// What one watcher pass read: live runs of the workspace (and runs this session reports
/// progress for), with approvals.
pub struct Snapshot {
    pub runs: Vec<(RunRecord, Vec<ApprovalView>)>,
}

/// A request that was well formed but failed: the engine's message, for the user.
pub fn failed(message: impl Into<String>) -> Error {
    Error {
        code: ErrorCode::ServerError(-32803),
        message: message.into().into(),
        data: None,
    }
}

pub fn invalid(message: impl Into<String>) -> Error {
    Error::invalid_params(message.into())
}

/// Runs a blocking facade call off the async threads.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, OpError> + Send + 'static,
) -> Result<T, Error> {
    noctune_studio::blocking_io(f).await.map_err(op_error)
}

/// A facade error as a JSON-RPC error: the message for the user, the code in `data.error`.
pub fn op_error(e: OpError) -> Error {
    Error {
        code: ErrorCode::ServerError(-32803),
        message: e.message.into(),
        data: Some(serde_json::json!({"error": e.code.as_str()})),
    }
}
