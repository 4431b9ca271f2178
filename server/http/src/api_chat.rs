//! `/api/chat/...`: chat sessions (create, list, load, delete, export), a message's answer
//! streamed by SSE, permission answers, undo, model profiles and grants. Everything goes to the
//! repository's `ChatService` (from `Studio::chat`); this file only translates.
//!
//! Permission prompts: the web prompter parks the turn until the browser answers with
//! `POST /api/chat/permissions/{request_id}`, or denies after a timeout
//! (`NOCTUNE_STUDIO_PROMPT_TIMEOUT_SECS`, default 300).

use super::AppState;
use super::error::{ApiError, ApiJson, ApiPath, ApiQuery, blocking};
use super::openapi::{json_body, ok_json, op, query, r, sse};
use super::routes::Routes;
use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use noctune_studio::chat::{
    CancelToken, ChatError, ChatEvent, ChatService, PermissionAnswer, PermissionRequest, Prompter,
    TurnContext, validate_id,
};
use noctune_studio::{OpError, Studio};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

type St = State<Arc<AppState>>;

/// Longest accepted chat message (the body limit caps it anyway).
const MAX_MESSAGE: usize = 256 * 1024;

pub struct ChatState {
    studio: Arc<Studio>,
    repo_root: PathBuf,
    service: Mutex<Option<Arc<ChatService>>>,
    prompts: Arc<Prompts>,
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

// ---- handlers ----

pub async fn profiles(State(st): St) -> Result<Json<Value>, ApiError> {
    let svc = st.chat.service().await?;
    Ok(Json(
        json!({"profiles": svc.profiles(), "default": svc.default_profile()}),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthQuery {
    profile: Option<String>,
}

/// Whether the profile's model server answers, and how to start llama-server if not.
pub async fn health(
    State(st): St,
    ApiQuery(q): ApiQuery<HealthQuery>,
) -> Result<Json<Value>, ApiError> {
    let health = st
        .studio
        .model_health(&st.repo_root, q.profile.as_deref())
        .await?;
    Ok(Json(json!(health)))
}

pub async fn list_sessions(State(st): St) -> Result<Json<Value>, ApiError> {
    let svc = st.chat.service().await?;
    let list = blocking(move || svc.list_sessions()).await?;
    Ok(Json(json!({ "sessions": list })))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct NewSession {
    profile: Option<String>,
}

pub async fn create_session(
    State(st): St,
    ApiJson(body): ApiJson<NewSession>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let svc = st.chat.service().await?;
    let s = blocking(move || svc.new_session(body.profile.as_deref().filter(|p| !p.is_empty())))
        .await?;
    Ok((StatusCode::CREATED, Json(json!(s))))
}

fn checked_id(id: &str) -> Result<(), ApiError> {
    validate_id(id).map_err(|e| ApiError::not_found("unknown_session", e.to_string()))
}

pub async fn load_session(
    State(st): St,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    checked_id(&id)?;
    let svc = st.chat.service().await?;
    let s = blocking(move || svc.load_session(&id)).await?;
    Ok(Json(json!(s)))
}

pub async fn delete_session(
    State(st): St,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(json!({"deleted": true, "id": id})))
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelectProfile {
    profile: String,
}

pub async fn select_profile(
    State(st): St,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<SelectProfile>,
) -> Result<Json<Value>, ApiError> {
    checked_id(&id)?;
    let svc = st.chat.service().await?;
    let sid = id.clone();
    let profile = body.profile.clone();
    blocking(move || svc.select_profile(&sid, &profile)).await?;
    Ok(Json(json!({"id": id, "profile": body.profile})))
}

pub async fn undo(State(st): St, ApiPath(id): ApiPath<String>) -> Result<Json<Value>, ApiError> {
    checked_id(&id)?;
    let svc = st.chat.service().await?;
    let out = blocking(move || svc.undo_last(Some(&id))).await?;
    Ok(Json(json!({
        "id": out.id, "path": out.path, "restored_from": out.restored_from, "removed": out.removed, "edit_ts": out.edit_ts,
    })))
}

pub async fn grants(State(st): St) -> Result<Json<Value>, ApiError> {
    let svc = st.chat.service().await?;
    Ok(Json(json!({"always": svc.always_grants()})))
}

pub async fn revoke(
    State(st): St,
    ApiPath(class): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let svc = st.chat.service().await?;
    let c = class.clone();
    let revoked = blocking(move || svc.revoke(&c, "web")).await?;
    Ok(Json(json!({"class": class, "revoked": revoked})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PermissionBody {
    answer: String,
}

pub async fn answer_permission(
    State(st): St,
    ApiPath(request_id): ApiPath<String>,
    ApiJson(body): ApiJson<PermissionBody>,
) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(
        json!({"request_id": request_id, "answer": body.answer}),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendBody {
    message: String,
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

/// Sends a message; the answer streams back as SSE (`delta`, `reasoning`, `tool_call`,
/// `tool_result`, `permission_request`, `notice`, `done`, `error`).
pub async fn send(
    State(st): St,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<SendBody>,
) -> Result<Response, ApiError> {
    validate_id(&id).map_err(|e| ApiError::bad_request("invalid_arguments", e.to_string()))?;
    if body.message.trim().is_empty() {
        return Err(ApiError::bad_request(
            "empty_message",
            "the message is empty",
        ));
    }
    if body.message.len() > MAX_MESSAGE {
        return Err(ApiError::bad_request(
            "message_too_long",
            format!("the message is longer than {MAX_MESSAGE} bytes"),
        ));
    }
    let svc = st.chat.service().await?;
    let prompts = st.chat.prompts.clone();
    let cancel = CancelToken::new();
    let (tx, rx) = mpsc::unbounded_channel::<ChatEvent>();
    let turn_cancel = cancel.clone();
    tokio::spawn(async move {
        let prompter = WebPrompter(prompts.clone());
        let events = tx.clone();
        // `done`/`error` go out only once `send` returned, i.e. once the session is saved: a
        // client that reloads the session on `done` sees the whole turn.
        let held: Arc<Mutex<Vec<ChatEvent>>> = Arc::default();
        let hold = held.clone();
        let mut on_event = move |ev: ChatEvent| {
            match &ev {
                ChatEvent::PermissionRequest(req) => prompts.expect(&req.id),
                ChatEvent::Done { .. } | ChatEvent::Error { .. } => {
                    hold.lock().unwrap_or_else(|p| p.into_inner()).push(ev);
                    return;
                }
                _ => {}
            }
            let _ = events.send(ev);
        };
        let context = TurnContext {
            document: body.document,
            selection: body.selection,
            ..TurnContext::default()
        };
        let res = svc
            .send(
                &id,
                &body.message,
                context,
                &prompter,
                &mut on_event,
                &turn_cancel,
            )
            .await;
        for ev in std::mem::take(&mut *held.lock().unwrap_or_else(|p| p.into_inner())) {
            let _ = tx.send(ev);
        }
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

pub(super) fn routes(r: Routes) -> Routes {
    r.get("/api/chat/profiles", profiles)
        .get("/api/chat/health", health)
        .get("/api/chat/sessions", list_sessions)
        .post("/api/chat/sessions", create_session)
        .get("/api/chat/sessions/{session_id}", load_session)
        .delete("/api/chat/sessions/{session_id}", delete_session)
        .get("/api/chat/sessions/{session_id}/export", export_session)
        .post("/api/chat/sessions/{session_id}/profile", select_profile)
        .post("/api/chat/sessions/{session_id}/messages", send)
        .post("/api/chat/sessions/{session_id}/undo", undo)
        .post("/api/chat/permissions/{request_id}", answer_permission)
        .get("/api/chat/grants", grants)
        .delete("/api/chat/grants/{class}", revoke)
}

// ---- OpenAPI ----

fn sid() -> Value {
    json!({"name": "session_id", "in": "path", "required": true, "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$"}})
}

pub(super) fn openapi_paths() -> Vec<(String, Value)> {
    let sessions_list = json!({"type": "object", "required": ["sessions"], "properties": {"sessions": {"type": "array", "items": r("SessionSummary")}}});
    vec![
        (
            "/api/chat/profiles".into(),
            json!({"get": op("chat", "Model profiles and the default", vec![], None, ok_json("Profiles", r("Profiles")), &[])}),
        ),
        (
            "/api/chat/health".into(),
            json!({"get": op("chat", "Whether a profile's model server answers; if not, the message and the command that starts llama-server",
            vec![query("profile", json!({"type": "string"}), "Profile name (default: the default profile)")], None, ok_json("Health", r("ModelHealth")), &["400"])}),
        ),
        (
            "/api/chat/sessions".into(),
            json!({
                "get": op("chat", "Saved chat sessions, newest first", vec![], None, ok_json("Sessions", sessions_list), &[]),
                "post": op("chat", "Create an empty session", vec![], Some(r("NewSession")), ("201", {let mut v = json_body(r("SessionSummary")); v["description"] = json!("The new session"); v}), &["400", "413", "415"]),
            }),
        ),
        (
            "/api/chat/sessions/{session_id}".into(),
            json!({
                "get": op("chat", "Load a session (messages in the OpenAI wire shape, grants answered)", vec![sid()], None, ok_json("The session", r("Session")), &["404"]),
                "delete": op("chat", "Delete a session and forget its session grants", vec![sid()], None, ok_json("Deleted", json!({"type": "object", "properties": {"deleted": {"type": "boolean"}, "id": {"type": "string"}}})), &["404"]),
            }),
        ),
        (
            "/api/chat/sessions/{session_id}/export".into(),
            json!({"get": op("chat", "The transcript as JSON (messages, tool calls and results, grants), as a download", vec![sid()], None, ok_json("Transcript", json!({"type": "object"})), &["404"])}),
        ),
        (
            "/api/chat/sessions/{session_id}/profile".into(),
            json!({"post": op("chat", "Select the session's model profile", vec![sid()], Some(json!({"type": "object", "required": ["profile"], "additionalProperties": false, "properties": {"profile": {"type": "string"}}})),
            ok_json("Selected", json!({"type": "object"})), &["400", "404", "413", "415"])}),
        ),
        (
            "/api/chat/sessions/{session_id}/messages".into(),
            json!({"post": op("chat", "Send a message (the session is created if missing). The answer streams as SSE; each message's event is the ChatEvent type and its data the ChatEvent as JSON. A permission_request parks the turn until POST /api/chat/permissions/{request_id} (or a timeout denies). Closing the stream cancels the turn.",
            vec![sid()], Some(r("SendMessage")), sse("text/event-stream of ChatEvent", r("ChatEventMessage")), &["400", "413", "415"])}),
        ),
        (
            "/api/chat/sessions/{session_id}/undo".into(),
            json!({"post": op("chat", "Undo the session's last edit (restores the backup)", vec![sid()], None, ok_json("What was undone", r("UndoOutcome")), &["404", "409"])}),
        ),
        (
            "/api/chat/permissions/{request_id}".into(),
            json!({"post": op("chat", "Answer a permission request of a running turn",
            vec![json!({"name": "request_id", "in": "path", "required": true, "schema": {"type": "string"}})],
            Some(json!({"type": "object", "required": ["answer"], "additionalProperties": false, "properties": {"answer": {"type": "string", "enum": ["once", "session", "always", "deny"]}}})),
            ok_json("Accepted", json!({"type": "object"})), &["400", "404", "413", "415"])}),
        ),
        (
            "/api/chat/grants".into(),
            json!({"get": op("chat", "The \"always allow\" grants of studio_allow.json", vec![], None, ok_json("Grants", json!({"type": "object", "properties": {"always": {"type": "array", "items": {"type": "object"}}}})), &[])}),
        ),
        (
            "/api/chat/grants/{class}".into(),
            json!({"delete": op("chat", "Revoke the always and session grants of a tool class",
            vec![json!({"name": "class", "in": "path", "required": true, "schema": {"type": "string", "enum": ["write", "run", "decide"]}})], None,
            ok_json("Revoked", json!({"type": "object", "properties": {"class": {"type": "string"}, "revoked": {"type": "boolean"}}})), &["400"])}),
        ),
    ]
}

pub(super) fn openapi_schemas() -> Vec<(String, Value)> {
    let nstr = json!({"type": ["string", "null"]});
    vec![
        (
            "SessionSummary".into(),
            json!({"type": "object", "required": ["id", "title", "created_at", "updated_at", "messages"], "properties": {
            "id": {"type": "string"}, "title": {"type": "string"}, "created_at": {"type": "string"}, "updated_at": {"type": "string"},
            "messages": {"type": "integer"}, "profile": nstr, "prompt_tools": {"type": "boolean"}}}),
        ),
        (
            "Session".into(),
            json!({"type": "object", "required": ["id", "messages"], "properties": {
            "id": {"type": "string"}, "title": {"type": "string"}, "profile": nstr, "created_at": {"type": "string"}, "updated_at": {"type": "string"},
            "messages": {"type": "array", "items": {"type": "object", "properties": {"role": {"type": "string"}, "content": nstr, "tool_calls": {"type": "array"}, "tool_call_id": {"type": "string"}}}},
            "grants": {"type": "array", "items": {"type": "object"}}}}),
        ),
        (
            "NewSession".into(),
            json!({"type": "object", "additionalProperties": false, "properties": {"profile": {"type": ["string", "null"]}}}),
        ),
        (
            "ChatEventMessage".into(),
            json!({"type": "object", "description": "One SSE message of a chat turn: event = the ChatEvent's type, data = the ChatEvent as JSON", "properties": {
                "event": {"type": "string", "enum": ["delta", "reasoning", "tool_call", "tool_result", "permission_request", "notice", "done", "error"]},
                "data": {"type": "string", "contentMediaType": "application/json"}}}),
        ),
        (
            "SendMessage".into(),
            json!({"type": "object", "required": ["message"], "additionalProperties": false, "properties": {
            "message": {"type": "string", "minLength": 1}, "document": {"type": ["string", "null"]}, "selection": {"type": ["string", "null"]}}}),
        ),
        (
            "ChatEvent".into(),
            json!({"type": "object", "required": ["type"], "properties": {
            "type": {"type": "string", "enum": ["delta", "reasoning", "tool_call", "tool_result", "permission_request", "notice", "done", "error"]},
            "text": {"type": "string"}, "id": {"type": "string"}, "name": {"type": "string"}, "arguments": {}, "ok": {"type": "boolean"}, "result": {},
            "session_id": {"type": "string"}, "tool": {"type": "string"}, "class": {"type": "string"}, "path": nstr, "protected": {"type": "boolean"},
            "summary": {"type": "string"}, "message": {"type": "string"}, "finish_reason": {"type": "string"}, "usage": {}, "timings": {}}}),
        ),
        (
            "UndoOutcome".into(),
            json!({"type": "object", "properties": {"id": {"type": "string"}, "path": {"type": "string"}, "restored_from": nstr, "removed": {"type": "boolean"}, "edit_ts": {"type": "string"}}}),
        ),
        (
            "Profiles".into(),
            json!({"type": "object", "properties": {"default": {"type": "string"}, "profiles": {"type": "array", "items": {"type": "object", "properties": {
            "name": {"type": "string"}, "base_url": {"type": "string"}, "model": {"type": "string"}, "context_window": {"type": "integer"}, "tool_mode": {"type": "string"}}}}}}),
        ),
        (
            "ModelHealth".into(),
            json!({"type": "object", "required": ["ok", "profile", "base_url", "start_command"], "properties": {
            "ok": {"type": "boolean"}, "profile": {"type": "string"}, "base_url": {"type": "string"}, "model": {"type": "string"}, "message": nstr, "start_command": {"type": "string"}}}),
        ),
    ]
}
