//! `/api/chat/...`: chat sessions (create, list, load, delete, export), a message's answer
//! streamed by SSE, permission answers, undo, model profiles and grants. Everything goes to the
//! repository's `ChatService` (from `Studio::chat`); this file only translates.
//!
//! Permission prompts: the web prompter parks the turn until the browser answers with
//! `POST /api/chat/permissions/{request_id}`, or denies after a timeout
//! (`NOCTUNE_STUDIO_PROMPT_TIMEOUT_SECS`, default 300).

use super::AppState;
use super::error::{ApiError, ApiJson, ApiPath, ApiQuery, blocking};
use super::openapi::hand_written_schema;
use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use noctune_studio::chat::{
    AlwaysGrant, CancelToken, ChatError, ChatEvent, ChatService, PermissionAnswer,
    PermissionRequest, Prompter, Session, SessionSummary, TurnContext, check_message, validate_id,
};
use noctune_studio::{ModelHealth, ModelProfile, OpError, Studio};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

type St = State<Arc<AppState>>;

pub struct ChatState {
    studio: Arc<Studio>,
    repo_root: PathBuf,
    service: Mutex<Option<Arc<ChatService>>>,
    prompts: Arc<Prompts>,
    turns: Arc<Turns>,
}

/// The cancel tokens of the turns in progress, so that a shutdown can end them: a cancelled
/// turn saves its session (question and what had streamed) and ends its event stream, instead
/// of being cut with the connection and losing both.
#[derive(Default)]
struct Turns {
    next: AtomicU64,
    running: Mutex<HashMap<u64, CancelToken>>,
    closing: AtomicBool,
}

impl Turns {
    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<u64, CancelToken>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn add(self: &Arc<Self>, cancel: &CancelToken) -> TurnGuard {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.running().insert(id, cancel.clone());
        // A turn that starts while the server is closing is cancelled at once.
        if self.closing.load(Ordering::SeqCst) {
            cancel.cancel();
        }
        TurnGuard(self.clone(), id)
    }
}

/// Forgets a turn's token when the turn ends, however it ends.
struct TurnGuard(Arc<Turns>, u64);

impl Drop for TurnGuard {
    fn drop(&mut self) {
        self.0.running().remove(&self.1);
    }
}

impl ChatState {
    pub fn new(studio: Arc<Studio>, repo_root: PathBuf) -> ChatState {
        let secs = std::env::var("NOCTUNE_STUDIO_PROMPT_TIMEOUT_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(300);
        ChatState {
            studio,
            repo_root,
            service: Mutex::new(None),
            prompts: Arc::new(Prompts {
                slots: Mutex::new(HashMap::new()),
                timeout: Duration::from_secs(secs),
            }),
            turns: Arc::default(),
        }
    }

    /// The server is shutting down: every turn in progress is cancelled (it saves its session,
    /// sends its last event and ends its stream), and so is any turn that starts from now on.
    pub fn shutdown(&self) {
        self.turns.closing.store(true, Ordering::SeqCst);
        for cancel in self.turns.running().values() {
            cancel.cancel();
        }
    }

    /// The repository's chat service (opened on first use; shared with other surfaces).
    async fn service(&self) -> Result<Arc<ChatService>, ApiError> {
        if let Some(s) = self
            .service
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            return Ok(s.clone());
        }
        let studio = self.studio.clone();
        let root = self.repo_root.clone();
        let s = blocking(move || studio.chat(&root)).await?;
        *self.service.lock().unwrap_or_else(|p| p.into_inner()) = Some(s.clone());
        Ok(s)
    }
}

impl From<ChatError> for ApiError {
    fn from(e: ChatError) -> ApiError {
        ApiError::from(OpError::from(e))
    }
}

// ---- permission prompts ----

enum Slot {
    /// Announced to the browser; nobody waits yet.
    Expected,
    /// The turn waits for the answer.
    Waiting(oneshot::Sender<PermissionAnswer>),
    /// The browser answered before the turn started waiting.
    Answered(PermissionAnswer),
}

struct Prompts {
    slots: Mutex<HashMap<String, Slot>>,
    timeout: Duration,
}

impl Prompts {
    fn slots(&self) -> std::sync::MutexGuard<'_, HashMap<String, Slot>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn expect(&self, id: &str) {
        self.slots().entry(id.to_string()).or_insert(Slot::Expected);
    }

    /// The browser's answer; false when no turn asked this.
    fn answer(&self, id: &str, answer: PermissionAnswer) -> bool {
        let mut slots = self.slots();
        match slots.remove(id) {
            Some(Slot::Waiting(tx)) => tx.send(answer).is_ok(),
            Some(Slot::Expected) => {
                slots.insert(id.to_string(), Slot::Answered(answer));
                true
            }
            Some(answered @ Slot::Answered(_)) => {
                slots.insert(id.to_string(), answered);
                false
            }
            None => false,
        }
    }
}

/// Removes a prompt's slot when its wait ends, however it ends.
struct SlotGuard(Arc<Prompts>, String);

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.0.slots().remove(&self.1);
    }
}

struct WebPrompter(Arc<Prompts>);

impl Prompter for WebPrompter {
    fn ask<'a>(
        &'a self,
        req: &'a PermissionRequest,
    ) -> Pin<Box<dyn Future<Output = PermissionAnswer> + Send + 'a>> {
        let prompts = self.0.clone();
        let id = req.id.clone();
        Box::pin(async move {
            let rx = {
                let mut slots = prompts.slots();
                if let Some(Slot::Answered(a)) = slots.remove(&id) {
                    return a;
                }
                let (tx, rx) = oneshot::channel();
                slots.insert(id.clone(), Slot::Waiting(tx));
                rx
            };
            let _guard = SlotGuard(prompts.clone(), id);
            match tokio::time::timeout(prompts.timeout, rx).await {
                Ok(Ok(a)) => a,
                _ => PermissionAnswer::Deny,
            }
        })
    }

    fn actor(&self) -> String {
        "web".to_string()
    }
}

// ---- the chat layer's types, whose schemas are written here until it derives them ----

hand_written_schema!(SessionSummarySchema, "SessionSummary", {
    "type": "object", "required": ["id", "title", "created_at", "updated_at", "messages"],
    "properties": {
        "id": {"type": "string"}, "title": {"type": "string"}, "created_at": {"type": "string"}, "updated_at": {"type": "string"},
        "messages": {"type": "integer", "minimum": 0}, "profile": {"type": ["string", "null"]}, "prompt_tools": {"type": "boolean"},
        "last_turn_failed": {"type": "boolean", "description": "The last turn ended without a complete answer (send with retry to try it again)"}
    }
});

hand_written_schema!(SessionSchema, "Session", {
    "type": "object", "required": ["id", "messages"],
    "properties": {
        "id": {"type": "string"}, "title": {"type": "string"}, "profile": {"type": ["string", "null"]},
        "created_at": {"type": "string"}, "updated_at": {"type": "string"},
        "messages": {"type": "array", "items": {"type": "object", "properties": {
            "role": {"type": "string"}, "content": {"type": ["string", "null"]}, "tool_calls": {"type": "array"}, "tool_call_id": {"type": "string"}}}},
        "grants": {"type": "array", "items": {"type": "object"}},
        "failed_turns": {"type": "array", "description": "Turns that ended without a complete answer, oldest first; their question stays in messages, the text that had streamed is only here (never sent to the model)", "items": {"type": "object",
            "required": ["user_index", "end_index", "partial", "error", "at"],
            "properties": {
                "user_index": {"type": "integer", "minimum": 0, "description": "Index in messages of the turn's user message"},
                "end_index": {"type": "integer", "minimum": 0, "description": "The partial answer belongs before messages[end_index] (the end of messages for the last turn)"},
                "partial": {"type": "string", "description": "The answer text that had streamed (incomplete)"},
                "error": {"type": "object", "required": ["code", "message"], "properties": {"code": {"type": "string"}, "message": {"type": "string"}}},
                "at": {"type": "string"}
            }}}
    }
});

hand_written_schema!(ModelProfileSchema, "ModelProfile", {
    "type": "object",
    "properties": {
        "name": {"type": "string"}, "base_url": {"type": "string"}, "model": {"type": "string"},
        "context_window": {"type": "integer"}, "tool_mode": {"type": "string"}
    }
});

hand_written_schema!(AlwaysGrantSchema, "AlwaysGrant", {
    "type": "object",
    "description": "A persisted \"always allow\" of studio_allow.json"
});

hand_written_schema!(ChatEventSchema, "ChatEvent", {
    "type": "object", "required": ["type"],
    "properties": {
        "type": {"type": "string", "enum": ["delta", "reasoning", "tool_call", "tool_result", "permission_request", "notice", "done", "error"]},
        "text": {"type": "string"}, "id": {"type": "string"}, "name": {"type": "string"}, "arguments": {}, "ok": {"type": "boolean"}, "result": {},
        "session_id": {"type": "string"}, "tool": {"type": "string"}, "class": {"type": "string"}, "path": {"type": ["string", "null"]}, "protected": {"type": "boolean"},
        "summary": {"type": "string"}, "message": {"type": "string"}, "finish_reason": {"type": "string"}, "usage": {}, "timings": {}
    }
});

/// One SSE message of a chat turn.
pub struct ChatEventMessage;

impl JsonSchema for ChatEventMessage {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ChatEventMessage".into()
    }
    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let event = g.subschema_for::<ChatEventSchema>();
        schemars::json_schema!({
            "type": "object",
            "description": "One SSE message of a chat turn: event = the ChatEvent's type, data = the ChatEvent as JSON",
            "properties": {
                "event": {"type": "string", "enum": ["delta", "reasoning", "tool_call", "tool_result", "permission_request", "notice", "done", "error"]},
                "data": {"type": "string", "contentMediaType": "application/json", "contentSchema": event}
            }
        })
    }
}

hand_written_schema!(TranscriptSchema, "Transcript", {
    "type": "object",
    "description": "The transcript as JSON: messages, tool calls and results, grants"
});

hand_written_schema!(SessionIdSchema, "SessionId", {
    "type": "string",
    "description": "1-64 of letters, digits, '.', '_' or '-', not starting with a dot",
    "pattern": "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$"
});

hand_written_schema!(GrantClassSchema, "GrantClass", {
    "type": "string",
    "description": "A tool class that asks before it acts",
    "enum": ["write", "run", "decide"]
});

// ---- handlers ----

/// The model profiles and the default.
#[derive(Serialize, JsonSchema)]
pub struct Profiles {
    #[schemars(with = "Vec<ModelProfileSchema>")]
    pub profiles: Vec<ModelProfile>,
    /// The profile used when a session names none.
    pub default: String,
}

pub async fn profiles(State(st): St) -> Result<Json<Profiles>, ApiError> {
    let svc = st.chat.service().await?;
    Ok(Json(Profiles {
        profiles: svc.profiles(),
        default: svc.default_profile().to_string(),
    }))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthQuery {
    /// Profile name (default: the default profile).
    profile: Option<String>,
}

/// Whether the profile's model server answers, and how to start llama-server if not.
pub async fn health(
    State(st): St,
    ApiQuery(q): ApiQuery<HealthQuery>,
) -> Result<Json<ModelHealth>, ApiError> {
    let health = st
        .studio
        .model_health(&st.repo_root, q.profile.as_deref())
        .await?;
    Ok(Json(health))
}

/// Saved chat sessions, newest first.
#[derive(Serialize, JsonSchema)]
pub struct SessionList {
    #[schemars(with = "Vec<SessionSummarySchema>")]
    pub sessions: Vec<SessionSummary>,
}

pub async fn list_sessions(State(st): St) -> Result<Json<SessionList>, ApiError> {
    let svc = st.chat.service().await?;
    let sessions = blocking(move || svc.list_sessions()).await?;
    Ok(Json(SessionList { sessions }))
}

#[derive(Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSession {
    /// The session's model profile (default: the configured default).
    profile: Option<String>,
}

/// The summary of a new session.
#[derive(Serialize, JsonSchema)]
#[serde(transparent)]
pub struct NewSessionOut(#[schemars(with = "SessionSummarySchema")] SessionSummary);

pub async fn create_session(
    State(st): St,
    ApiJson(body): ApiJson<NewSession>,
) -> Result<(StatusCode, Json<NewSessionOut>), ApiError> {
    let svc = st.chat.service().await?;
    let s = blocking(move || svc.new_session(body.profile.as_deref().filter(|p| !p.is_empty())))
        .await?;
    Ok((StatusCode::CREATED, Json(NewSessionOut(s))))
}

fn checked_id(id: &str) -> Result<(), ApiError> {
    validate_id(id).map_err(|e| ApiError::not_found("unknown_session", e.to_string()))
}

/// A whole session.
#[derive(Serialize, JsonSchema)]
#[serde(transparent)]
pub struct SessionOut(#[schemars(with = "SessionSchema")] Session);

pub async fn load_session(
    State(st): St,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<SessionOut>, ApiError> {
    checked_id(&id)?;
    let svc = st.chat.service().await?;
    let s = blocking(move || svc.load_session(&id)).await?;
    Ok(Json(SessionOut(s)))
}

/// A deleted session.
#[derive(Serialize, JsonSchema)]
pub struct Deleted {
    /// Always true.
    pub deleted: bool,
    pub id: String,
}

pub async fn delete_session(
    State(st): St,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Deleted>, ApiError> {
    checked_id(&id)?;
    let svc = st.chat.service().await?;
    let sid = id.clone();
    let removed = blocking(move || svc.delete_session(&sid)).await?;
    if !removed {
        return Err(ApiError::not_found(
            "unknown_session",
            format!("no chat session {id}"),
        ));
    }
    Ok(Json(Deleted { deleted: true, id }))
}

pub async fn export_session(
    State(st): St,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    checked_id(&id)?;
    let svc = st.chat.service().await?;
    let sid = id.clone();
    let transcript = blocking(move || svc.export_session(&sid)).await?;
    let disposition = format!("attachment; filename=\"noctune-chat-{id}.json\"");
    Ok((
        [(header::CONTENT_DISPOSITION, disposition)],
        Json(transcript),
    )
        .into_response())
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SelectProfile {
    /// A model profile name (GET /api/chat/profiles).
    profile: String,
}

/// The session and the profile it now uses.
#[derive(Serialize, JsonSchema)]
pub struct ProfileSelected {
    pub id: String,
    pub profile: String,
}

pub async fn select_profile(
    State(st): St,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<SelectProfile>,
) -> Result<Json<ProfileSelected>, ApiError> {
    checked_id(&id)?;
    let svc = st.chat.service().await?;
    let sid = id.clone();
    let profile = body.profile.clone();
    blocking(move || svc.select_profile(&sid, &profile)).await?;
    Ok(Json(ProfileSelected {
        id,
        profile: body.profile,
    }))
}

/// What an undo did.
#[derive(Serialize, JsonSchema)]
pub struct UndoOutcome {
    /// The undone edit's id.
    pub id: String,
    /// The file, repository-relative.
    pub path: String,
    /// The backup the content came from; null when the file was removed instead.
    pub restored_from: Option<String>,
    /// The edit had created the file, so undo removed it.
    pub removed: bool,
    /// When the undone edit was made.
    pub edit_ts: String,
}

pub async fn undo(
    State(st): St,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<UndoOutcome>, ApiError> {
    checked_id(&id)?;
    let svc = st.chat.service().await?;
    let out = blocking(move || svc.undo_last(Some(&id))).await?;
    Ok(Json(UndoOutcome {
        id: out.id,
        path: out.path,
        restored_from: out.restored_from.map(|p| p.display().to_string()),
        removed: out.removed,
        edit_ts: out.edit_ts,
    }))
}

/// The "always allow" grants of studio_allow.json.
#[derive(Serialize, JsonSchema)]
pub struct Grants {
    #[schemars(with = "Vec<AlwaysGrantSchema>")]
    pub always: Vec<AlwaysGrant>,
}

pub async fn grants(State(st): St) -> Result<Json<Grants>, ApiError> {
    let svc = st.chat.service().await?;
    Ok(Json(Grants {
        always: svc.always_grants(),
    }))
}

/// A revoked tool class.
#[derive(Serialize, JsonSchema)]
pub struct Revoked {
    pub class: String,
    /// Whether there was a grant to revoke.
    pub revoked: bool,
}

pub async fn revoke(
    State(st): St,
    ApiPath(class): ApiPath<String>,
) -> Result<Json<Revoked>, ApiError> {
    let svc = st.chat.service().await?;
    let c = class.clone();
    let revoked = blocking(move || svc.revoke(&c, "web")).await?;
    Ok(Json(Revoked { class, revoked }))
}

hand_written_schema!(PermissionAnswerSchema, "PermissionAnswer", {
    "type": "string",
    "enum": ["once", "session", "always", "deny"],
    "description": "once: this call; session: this tool class for the session; always: also later sessions; deny: refuse"
});

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PermissionBody {
    /// The answer; a wrong word is refused with `invalid_answer`.
    #[schemars(with = "PermissionAnswerSchema")]
    answer: String,
}

/// The accepted answer.
#[derive(Serialize, JsonSchema)]
pub struct PermissionAnswered {
    pub request_id: String,
    pub answer: String,
}

pub async fn answer_permission(
    State(st): St,
    ApiPath(request_id): ApiPath<String>,
    ApiJson(body): ApiJson<PermissionBody>,
) -> Result<Json<PermissionAnswered>, ApiError> {
    let answer: PermissionAnswer = body.answer.parse().map_err(|_| {
        ApiError::bad_request(
            "invalid_answer",
            format!(
                "answer {:?}: expected once, session, always or deny",
                body.answer
            ),
        )
    })?;
    if !st.chat.prompts.answer(&request_id, answer) {
        return Err(ApiError::not_found(
            "unknown_permission_request",
            format!(
                "no turn is waiting for permission request {request_id:?} (answered already, timed out, or the turn ended)"
            ),
        ));
    }
    Ok(Json(PermissionAnswered {
        request_id,
        answer: body.answer,
    }))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "SendMessage")]
pub struct SendBody {
    /// The user's message (not blank); left out with `retry`.
    #[serde(default)]
    #[schemars(length(min = 1))]
    message: Option<String>,
    /// Send the session's last turn again, which ended without a complete answer (an error or
    /// a stop): it replaces that turn, with the message it was sent with. 409 `wrong_state`
    /// when the last turn did not fail.
    #[serde(default)]
    retry: bool,
    /// The file the user is looking at (repository-relative).
    document: Option<String>,
    /// Text selected in it.
    selection: Option<String>,
}

/// Cancels the turn when the browser goes away (the response stream is dropped).
struct CancelOnDrop(CancelToken);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

fn sse_of(ev: &ChatEvent) -> SseEvent {
    let v = serde_json::to_value(ev)
        .unwrap_or_else(|_| json!({"type": "error", "message": "unserialisable event"}));
    let name = v
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("message")
        .to_string();
    SseEvent::default().event(name).data(v.to_string())
}

/// Sends a message (or, with `retry`, the failed last turn again); the answer streams back as
/// SSE (`delta`, `reasoning`, `tool_call`, `tool_result`, `permission_request`, `notice`,
/// `done`, `error`).
pub async fn send(
    State(st): St,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<SendBody>,
) -> Result<Response, ApiError> {
    validate_id(&id).map_err(|e| ApiError::bad_request("invalid_arguments", e.to_string()))?;
    let message = match (body.message, body.retry) {
        (Some(m), false) => {
            check_message(&m)?;
            Some(m)
        }
        (None, true) => None,
        (None, false) => {
            return Err(ApiError::bad_request(
                "invalid_arguments",
                "`message` is required (or `retry: true` to send the failed last turn again)",
            ));
        }
        (Some(_), true) => {
            return Err(ApiError::bad_request(
                "invalid_arguments",
                "`retry` sends the failed turn's own message again; leave `message` out",
            ));
        }
    };
    let svc = st.chat.service().await?;
    if message.is_none() {
        // Refused before the stream starts, with the status of its code.
        svc.check_retry(&id).await?;
    }
    let prompts = st.chat.prompts.clone();
    let cancel = CancelToken::new();
    let registered = st.chat.turns.add(&cancel);
    let (tx, rx) = mpsc::unbounded_channel::<ChatEvent>();
    let turn_cancel = cancel.clone();
    tokio::spawn(async move {
        let _registered = registered;
        let prompter = WebPrompter(prompts.clone());
        let events = tx.clone();
        // The chat service sends `done`/`error` only once the session is saved.
        let mut on_event = move |ev: ChatEvent| {
            if let ChatEvent::PermissionRequest(req) = &ev {
                prompts.expect(&req.id);
            }
            let _ = events.send(ev);
        };
        let context = TurnContext {
            document: body.document,
            selection: body.selection,
            ..TurnContext::default()
        };
        let res = match &message {
            Some(m) => {
                svc.send(&id, m, context, &prompter, &mut on_event, &turn_cancel)
                    .await
            }
            None => {
                svc.retry(&id, context, &prompter, &mut on_event, &turn_cancel)
                    .await
            }
        };
        if let Err(e) = res {
            let _ = tx.send(ChatEvent::Error {
                message: e.to_string(),
            });
        }
    });
    let guard = CancelOnDrop(cancel);
    let stream = futures_util::stream::unfold((rx, guard), |(mut rx, guard)| async move {
        let ev = rx.recv().await?;
        Some((Ok::<_, std::convert::Infallible>(sse_of(&ev)), (rx, guard)))
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}
