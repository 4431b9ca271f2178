//! What every handler of one session shares: the client handle, the synced documents, the
//! lazily opened `Studio` facade and the workspace's repository.

use super::documents::Documents;
use noctune_studio::{OpError, Studio};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{Notify, OnceCell, watch};
use tower_lsp_server::Client;
use tower_lsp_server::jsonrpc::{Error, ErrorCode};

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
    pub approvals: super::approvals::Tracker,
    pub runs: super::runs::Tracker,
    pub chat: super::chat::Tracker,
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
