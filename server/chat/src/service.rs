//! `ChatService`: chat for one repository, as every surface uses it (through `studio`).
//!
//! It owns what must be shared by all sessions and surfaces of a repository: the sandbox (the
//! configured allowed roots), the one `PermissionGate` (so a grant given in the browser holds in
//! the terminal of the same process), the tool registry (built-in tools now, MCP tools added at
//! run time with [`ChatService::register_tool`]), the model clients per profile and a cached
//! repository overview. Sessions live on disk (`session.rs`), which is the source of truth, so
//! two processes see each other's sessions; turns of one session are serialised in-process.

use super::agent::{self, ChatEvent, Prompter, TurnContext, TurnDeps, TurnSummary};
use super::backups::{self, BackupError, UndoOutcome};
use super::overview;
use super::permissions::{AlwaysGrant, PermissionError, PermissionGate};
use super::session::{self, Session, SessionError, SessionStore, SessionSummary, TurnErrorNote};
use super::tool::{Tool, ToolClass, ToolContext};
use super::tools::runs::{RunControl, run_tools};
use noctune_config::{Config, ConfigError, ModelProfile};
use noctune_core::{ErrorCode, OpError};
use noctune_llm::{CancelToken, LlmClient, LlmEndpoint, LlmError};
use noctune_sandbox::{Sandbox, SandboxError};
use noctune_store::{AuditStore, StoreError};
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// How long a computed repository overview is reused.
const OVERVIEW_TTL: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    #[error(transparent)]
    Permission(#[from] PermissionError),
    #[error(transparent)]
    Llm(#[from] LlmError),
    #[error(transparent)]
    Undo(#[from] BackupError),
    #[error("audit DB: {0}")]
    Store(#[from] StoreError),
    #[error(
        "unknown model profile {name:?}; known profiles: {known} (define more under [model_profiles.<name>] in noctune.toml)"
    )]
    UnknownProfile { name: String, known: String },
    #[error("unknown tool class {0:?}: expected write, run or decide")]
    UnknownClass(String),
    #[error("cannot use {path} as a repository: {source}")]
    Repo {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("could not start an async runtime for chat: {0}")]
    Runtime(std::io::Error),
    #[error(
        "the message is {len} bytes; at most {MAX_MESSAGE_BYTES} are accepted, send a shorter one"
    )]
    MessageTooLong { len: usize },
    #[error("the message is empty; write what you want to ask")]
    EmptyMessage,
    #[error(
        "the last turn of chat session {id} did not fail, so there is nothing to retry; send a new message instead"
    )]
    NothingToRetry { id: String },
}

/// Longest chat message a turn accepts, from any surface.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// The rule for a message a turn accepts; [`ChatService::send`] applies it, and a surface that
/// wants to refuse before it starts streaming calls it first.
pub fn check_message(message: &str) -> Result<(), ChatError> {
    if message.trim().is_empty() {
        return Err(ChatError::EmptyMessage);
    }
    if message.len() > MAX_MESSAGE_BYTES {
        return Err(ChatError::MessageTooLong { len: message.len() });
    }
    Ok(())
}

impl ChatError {
    /// The one map from chat errors to the codes every surface shows.
    pub fn code(&self) -> ErrorCode {
        match self {
            ChatError::Session(SessionError::InvalidId(_)) => ErrorCode::InvalidArguments,
            ChatError::Session(SessionError::NotFound { .. }) => ErrorCode::UnknownSession,
            ChatError::UnknownProfile { .. } => ErrorCode::UnknownProfile,
            ChatError::UnknownClass(_) | ChatError::Permission(_) => ErrorCode::InvalidArguments,
            ChatError::Undo(_) => ErrorCode::WrongState,
            ChatError::MessageTooLong { .. } => ErrorCode::TooLarge,
            ChatError::EmptyMessage => ErrorCode::InvalidArguments,
            ChatError::NothingToRetry { .. } => ErrorCode::WrongState,
            ChatError::Config(_) => ErrorCode::ConfigError,
            ChatError::Llm(_) => ErrorCode::ModelUnavailable,
            ChatError::Sandbox(_) => ErrorCode::OutsideAllowedRoots,
            ChatError::Session(_)
            | ChatError::Store(_)
            | ChatError::Repo { .. }
            | ChatError::Runtime(_) => ErrorCode::Internal,
        }
    }
}

impl From<ChatError> for OpError {
    fn from(e: ChatError) -> OpError {
        OpError::new(e.code(), e.to_string())
    }
}

/// How a turn ended when it ended without a complete answer.
fn failure_of(summary: &TurnSummary) -> Option<TurnErrorNote> {
    if let Some(message) = &summary.error {
        return Some(TurnErrorNote {
            code: summary
                .error_code
                .clone()
                .unwrap_or_else(|| "model_error".into()),
            message: message.clone(),
        });
    }
    (summary.finish_reason.as_deref() == Some("cancelled")).then(|| TurnErrorNote {
        code: "cancelled".into(),
        message: "the answer was stopped before it was complete".into(),
    })
}

/// The built-in tools: the file tools, plus the run tools when an engine handle is given.
pub fn default_tools(runs: Option<Arc<dyn RunControl>>) -> Vec<Arc<dyn Tool>> {
    let mut tools = super::tools::files::file_tools();
    if let Some(runs) = runs {
        tools.extend(run_tools(runs));
    }
    tools
}

/// Parses `write`, `run` or `decide` (the gated classes).
pub fn parse_class(s: &str) -> Result<ToolClass, ChatError> {
    match s.trim().to_ascii_lowercase().as_str() {
        "write" => Ok(ToolClass::Write),
        "run" => Ok(ToolClass::Run),
        "decide" => Ok(ToolClass::Decide),
        _ => Err(ChatError::UnknownClass(s.to_string())),
    }
}

type Stamps = Arc<Mutex<HashMap<PathBuf, String>>>;

/// Chat for one repository. `Send + Sync`; share it behind an `Arc`.
pub struct ChatService {
    repo_root: PathBuf,
    config: Config,
    audit_db: Option<PathBuf>,
    sandbox: Arc<Sandbox>,
    gate: Arc<PermissionGate>,
    tools: RwLock<Vec<Arc<dyn Tool>>>,
    store: SessionStore,
    /// One lock per session: turns of a session never interleave.
    turn_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Per session: hashes of files as the model read them (conflict detection).
    stamps: Mutex<HashMap<String, Stamps>>,
    clients: Mutex<HashMap<String, LlmClient>>,
    overview: Mutex<Option<(Instant, Arc<str>)>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Plain data behind the lock; a panic elsewhere does not make it unusable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ChatService {
    /// Chat for the repository at `repo_root`, with the configuration found there, the audit
    /// DB at `audit_db` (grants are recorded and "always" grants checked against it; `None`
    /// only for tests) and the run tools when `runs` is given.
    pub fn open(
        repo_root: &Path,
        audit_db: Option<&Path>,
        runs: Option<Arc<dyn RunControl>>,
    ) -> Result<ChatService, ChatError> {
        let repo_root = std::fs::canonicalize(repo_root).map_err(|source| ChatError::Repo {
            path: repo_root.to_path_buf(),
            source,
        })?;
        let config = noctune_config::load(&repo_root)?;
        let sandbox = Arc::new(Sandbox::from_config(&config)?);
        let gate = Arc::new(PermissionGate::new(&repo_root, audit_db)?);
        Ok(ChatService {
            store: SessionStore::for_repo(&repo_root),
            tools: RwLock::new(default_tools(runs)),
            audit_db: audit_db.map(Path::to_path_buf),
            repo_root,
            config,
            sandbox,
            gate,
            turn_locks: Mutex::new(HashMap::new()),
            stamps: Mutex::new(HashMap::new()),
            clients: Mutex::new(HashMap::new()),
            overview: Mutex::new(None),
        })
    }

    pub fn repo_root(&self) -> &Path {
        &self.repo_root
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn gate(&self) -> &Arc<PermissionGate> {
        &self.gate
    }

    pub fn sandbox(&self) -> &Arc<Sandbox> {
        &self.sandbox
    }

    /// The tools offered to the model.
    pub fn tools(&self) -> Vec<Arc<dyn Tool>> {
        self.tools.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Adds a tool (e.g. one of a configured MCP server), replacing one of the same name.
    pub fn register_tool(&self, tool: Arc<dyn Tool>) {
        let mut tools = self.tools.write().unwrap_or_else(|p| p.into_inner());
        tools.retain(|t| t.name() != tool.name());
        tools.push(tool);
    }

    /// Removes a tool by name; `false` if there was none.
    pub fn unregister_tool(&self, name: &str) -> bool {
        let mut tools = self.tools.write().unwrap_or_else(|p| p.into_inner());
        let before = tools.len();
        tools.retain(|t| t.name() != name);
        tools.len() != before
    }

    // ---- turns ----

    /// Sends `message` in session `session_id` (created if it does not exist) and streams the
    /// turn to `on_event`. Model errors are not `Err`: they end the turn with an
    /// [`ChatEvent::Error`] and [`TurnSummary::error`]. `Err` means the turn could not start
    /// (bad session id, unknown profile, unusable endpoint) or the session could not be saved.
    ///
    /// A turn that ends without a complete answer (a model error, or a cancel) keeps the user's
    /// message in the session and records the failure with the text that had streamed
    /// ([`Session::failed_turns`]); [`ChatService::retry`] sends it again.
    pub async fn send(
        &self,
        session_id: &str,
        message: &str,
        context: TurnContext,
        prompter: &dyn Prompter,
        on_event: &mut (dyn FnMut(ChatEvent) + Send),
        cancel: &CancelToken,
    ) -> Result<TurnSummary, ChatError> {
        check_message(message)?;
        self.turn(
            session_id,
            Some(message),
            context,
            prompter,
            on_event,
            cancel,
        )
        .await
    }

    /// Sends the last turn of `session_id` again when it ended without a complete answer: the
    /// failed turn (its user message, any tool rounds it completed, its failure record) is
    /// replaced by the new one, so the question is in the session once. The message goes as it
    /// was first sent (with the document and selection it carried then); `context` gives only
    /// this turn's editor hooks. [`ChatError::NothingToRetry`] when the last turn did not fail.
    pub async fn retry(
        &self,
        session_id: &str,
        context: TurnContext,
        prompter: &dyn Prompter,
        on_event: &mut (dyn FnMut(ChatEvent) + Send),
        cancel: &CancelToken,
    ) -> Result<TurnSummary, ChatError> {
        let context = TurnContext {
            document: None,
            selection: None,
            ..context
        };
        self.turn(session_id, None, context, prompter, on_event, cancel)
            .await
    }

    /// Whether [`ChatService::retry`] would start: the session exists and its last turn ended
    /// without a complete answer. For a surface that refuses before it starts streaming. A turn
    /// of the session still in progress (one just stopped, saving) is waited for.
    pub async fn check_retry(&self, session_id: &str) -> Result<(), ChatError> {
        session::validate_id(session_id)?;
        let turn_lock = lock(&self.turn_locks)
            .entry(session_id.to_string())
            .or_default()
            .clone();
        let _turn = turn_lock.lock().await;
        let session = self.store.load(session_id)?;
        match session.failed_last_turn() {
            Some(_) => Ok(()),
            None => Err(ChatError::NothingToRetry {
                id: session_id.to_string(),
            }),
        }
    }

    /// One turn: of `message`, or (`None`) a retry of the failed last turn.
    async fn turn(
        &self,
        session_id: &str,
        message: Option<&str>,
        context: TurnContext,
        prompter: &dyn Prompter,
        on_event: &mut (dyn FnMut(ChatEvent) + Send),
        cancel: &CancelToken,
    ) -> Result<TurnSummary, ChatError> {
        session::validate_id(session_id)?;
        let turn_lock = lock(&self.turn_locks)
            .entry(session_id.to_string())
            .or_default()
            .clone();
        let _turn = turn_lock.lock().await;
        let (mut session, existed) = match self.store.load(session_id) {
            Ok(s) => (s, true),
            Err(SessionError::NotFound { .. }) if message.is_some() => {
                (Session::new(session_id, None), false)
            }
            Err(e) => return Err(e.into()),
        };
        let message = match message {
            Some(m) => m.to_string(),
            None => session
                .take_failed_last_turn()
                .and_then(|m| m.content)
                .ok_or_else(|| ChatError::NothingToRetry {
                    id: session_id.to_string(),
                })?,
        };
        let profile = self.profile_of(&session)?;
        let client = self.client_for(&profile)?;
        let overview = self.overview().await;
        let tools = self.tools();
        let tool_ctx = ToolContext {
            repo_root: self.repo_root.clone(),
            sandbox: self.sandbox.clone(),
            session_id: session_id.to_string(),
            edit_sink: context.edit_sink.clone(),
            overlay: context.overlay.clone(),
            read_stamps: self.stamps_of(session_id),
        };
        if session.title.is_empty() {
            session.title = session::title_of(&message);
        }
        let deps = TurnDeps {
            client: &client,
            profile: &profile,
            tools: &tools,
            gate: &self.gate,
            tool_ctx,
            overview: &overview,
            prompter,
            cancel,
        };
        let user_index = session.messages.len();
        // The turn's last event (`done` or `error`) goes out only once the session is saved, so
        // a surface that reloads the session on it sees the whole turn.
        let mut last: Option<ChatEvent> = None;
        // The answer text of the round in progress, as the user saw it: what a turn that
        // breaks off keeps. A tool call means the round before it completed (and is in the
        // session), so the text starts again.
        let mut partial = String::new();
        let summary = {
            let mut hold = |ev: ChatEvent| match ev {
                ChatEvent::Done { .. } | ChatEvent::Error { .. } => last = Some(ev),
                ev => {
                    match &ev {
                        ChatEvent::Delta { text } => partial.push_str(text),
                        ChatEvent::ToolCall { .. } => partial.clear(),
                        _ => {}
                    }
                    on_event(ev)
                }
            };
            agent::run_turn(&deps, &mut session, &message, &context, &mut hold).await
        };
        if let Some(note) = failure_of(&summary) {
            session.record_failed_turn(user_index, partial, note);
        }
        if existed || !session.messages.is_empty() {
            session.updated_at = noctune_util::time::now_rfc3339();
            // On failure the held event is dropped: the caller reports the `Err` instead.
            self.store.save(&session)?;
        }
        if let Some(ev) = last {
            on_event(ev);
        }
        Ok(summary)
    }

    /// [`ChatService::send`] for synchronous callers: runs the turn on a runtime of its own.
    /// Must not be called from inside an async runtime.
    pub fn send_blocking(
        &self,
        session_id: &str,
        message: &str,
        context: TurnContext,
        prompter: &dyn Prompter,
        on_event: &mut (dyn FnMut(ChatEvent) + Send),
        cancel: &CancelToken,
    ) -> Result<TurnSummary, ChatError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(ChatError::Runtime)?;
        rt.block_on(self.send(session_id, message, context, prompter, on_event, cancel))
    }

    fn stamps_of(&self, session_id: &str) -> Stamps {
        lock(&self.stamps)
            .entry(session_id.to_string())
            .or_default()
            .clone()
    }

    /// The repository overview, recomputed at most every [`OVERVIEW_TTL`] (walking a large
    /// tree takes long enough to matter for the time to the first token).
    pub async fn overview(&self) -> Arc<str> {
        if let Some((at, text)) = lock(&self.overview).as_ref()
            && at.elapsed() < OVERVIEW_TTL
        {
            return text.clone();
        }
        let root = self.repo_root.clone();
        let text: Arc<str> = tokio::task::spawn_blocking(move || overview::repo_overview(&root))
            .await
            .unwrap_or_default()
            .into();
        *lock(&self.overview) = Some((Instant::now(), text.clone()));
        text
    }

    // ---- profiles ----

    pub fn profiles(&self) -> Vec<ModelProfile> {
        self.config.profiles.values().cloned().collect()
    }

    pub fn default_profile(&self) -> &str {
        &self.config.default_profile
    }

    fn profile_named(&self, name: Option<&str>) -> Result<ModelProfile, ChatError> {
        self.config
            .profile(name)
            .cloned()
            .ok_or_else(|| ChatError::UnknownProfile {
                name: name.unwrap_or(&self.config.default_profile).to_string(),
                known: self
                    .config
                    .profiles
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    fn profile_of(&self, session: &Session) -> Result<ModelProfile, ChatError> {
        self.profile_named(session.profile.as_deref())
    }

    /// Sets the profile of a session (created if missing). A new profile may serve another
    /// model, so the tool-mode fallback is forgotten.
    pub fn select_profile(&self, session_id: &str, name: &str) -> Result<(), ChatError> {
        self.profile_named(Some(name))?;
        let mut session = self.load_or_new(session_id)?;
        if session.profile.as_deref() != Some(name) {
            session.profile = Some(name.to_string());
            session.prompt_tools = false;
            session.fallback_reason = None;
        }
        session.updated_at = noctune_util::time::now_rfc3339();
        self.store.save(&session)?;
        Ok(())
    }

    fn client_for(&self, profile: &ModelProfile) -> Result<LlmClient, ChatError> {
        let key = format!(
            "{}\u{0}{}\u{0}{}",
            profile.name, profile.base_url, profile.model
        );
        if let Some(c) = lock(&self.clients).get(&key) {
            return Ok(c.clone());
        }
        let mut ep = LlmEndpoint::new(profile.base_url.clone(), profile.model.clone());
        ep.temperature = profile.temperature;
        ep.max_tokens = profile.max_tokens;
        ep.request_timeout = Duration::from_secs(profile.timeout_secs.max(1));
        ep.api_key = profile
            .api_key_env
            .as_deref()
            .and_then(|var| std::env::var(var).ok())
            .filter(|k| !k.is_empty());
        let client = LlmClient::new(ep)?;
        lock(&self.clients).insert(key, client.clone());
        Ok(client)
    }

    // ---- sessions ----

    fn load_or_new(&self, id: &str) -> Result<Session, ChatError> {
        match self.store.load(id) {
            Ok(s) => Ok(s),
            Err(SessionError::NotFound { .. }) => Ok(Session::new(id, None)),
            Err(e) => Err(e.into()),
        }
    }

    /// Creates and saves an empty session with a new id.
    pub fn new_session(&self, profile: Option<&str>) -> Result<SessionSummary, ChatError> {
        if let Some(p) = profile {
            self.profile_named(Some(p))?;
        }
        let session = Session::new(session::new_id(), profile.map(str::to_string));
        self.store.save(&session)?;
        Ok(session.summary())
    }

    pub fn list_sessions(&self) -> Result<Vec<SessionSummary>, ChatError> {
        Ok(self.store.list()?)
    }

    pub fn load_session(&self, id: &str) -> Result<Session, ChatError> {
        Ok(self.store.load(id)?)
    }

    /// Saves a session as given (e.g. an imported one).
    pub fn save_session(&self, session: &Session) -> Result<(), ChatError> {
        Ok(self.store.save(session)?)
    }

    /// Deletes a session and forgets its grants; `false` if there was none.
    pub fn delete_session(&self, id: &str) -> Result<bool, ChatError> {
        let removed = self.store.delete(id)?;
        self.end_session(id);
        Ok(removed)
    }

    /// Forgets a session's "session" and unused "once" grants (a surface closing the chat).
    pub fn end_session(&self, id: &str) {
        self.gate.end_session(id);
        lock(&self.stamps).remove(id);
    }

    /// The transcript of a session: every message, tool call and result, and its grants (as
    /// answered in the session, and as recorded in the audit DB).
    pub fn export_session(&self, id: &str) -> Result<Value, ChatError> {
        let session = self.store.load(id)?;
        let mut audit = Vec::new();
        if let Some(db) = &self.audit_db {
            let store = AuditStore::open(db)?;
            let repo = self.repo_root.to_string_lossy();
            for g in store.grants(&repo, 100_000)? {
                if g.session_id.as_deref() == Some(id) {
                    audit.push(serde_json::to_value(&g).unwrap_or(Value::Null));
                }
            }
            audit.reverse(); // oldest first, like the messages
        }
        Ok(session.export(&self.repo_root, audit))
    }

    // ---- edits and grants ----

    /// Restores the newest chat edit not yet undone (of `session_id`, or of any session).
    pub fn undo_last(&self, session_id: Option<&str>) -> Result<UndoOutcome, ChatError> {
        Ok(backups::undo_last(&self.repo_root, session_id)?)
    }

    pub fn always_grants(&self) -> Vec<AlwaysGrant> {
        self.gate.always_grants()
    }

    /// Revokes the "always" and session grants of a class (`write`, `run`, `decide`).
    pub fn revoke(&self, class: &str, actor: &str) -> Result<bool, ChatError> {
        let class = parse_class(class)?;
        Ok(self.gate.revoke(class, None, actor)?)
    }
}
