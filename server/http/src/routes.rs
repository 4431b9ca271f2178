//! The route table: every route is mounted through [`Routes`] together with its documentation
//! (an [`openapi::Doc`]: summary, parameters, the request and response types, the error
//! statuses), so [`route_table`] is exactly what the router serves and `/api/openapi.json` is
//! generated from the same entries and the types the handlers parse and return.

use super::error::{ApiError, ErrorBody};
use super::openapi::{self, Content, Doc, Entry, Param, doc, input};
use super::{AppState, BODY_LIMIT, api_bulk, api_chat, api_runs, assets, auth, body, sse};
use axum::Json;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::http::{Method, StatusCode, Uri};
use axum::routing::{delete, get, post};
use noctune_core::RunId;
use noctune_studio::{ApprovalDecision, ModelHealth, RepoConfig, RunRecord};
use serde_json::{Map, Value};
use std::sync::{Arc, OnceLock};

type S = Arc<AppState>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInfo {
    pub method: &'static str,
    /// In OpenAPI/axum syntax: `/api/runs/{run_id}`.
    pub path: &'static str,
}

pub(super) struct Routes {
    router: Router<S>,
    table: Vec<Entry>,
    /// The routes mounted with [`Routes::page`].
    pages: Vec<&'static str>,
}

impl Routes {
    fn new() -> Routes {
        Routes {
            router: Router::new(),
            table: Vec::new(),
            pages: Vec::new(),
        }
    }
    /// A page a person opens (an HTML answer to GET): the only kind of route where the lock
    /// trades a token in the URL for a cookie ([`page_routes`]).
    fn page<H: Handler<T, S>, T: 'static>(mut self, path: &'static str, h: H, doc: Doc) -> Routes {
        self.pages.push(path);
        self.get(path, h, doc)
    }
    fn get<H: Handler<T, S>, T: 'static>(mut self, path: &'static str, h: H, doc: Doc) -> Routes {
        self.table.push(Entry {
            method: "GET",
            path,
            doc,
        });
        self.router = self.router.route(path, get(h));
        self
    }
    fn post<H: Handler<T, S>, T: 'static>(mut self, path: &'static str, h: H, doc: Doc) -> Routes {
        self.table.push(Entry {
            method: "POST",
            path,
            doc,
        });
        self.router = self.router.route(path, post(h));
        self
    }
    fn delete<H: Handler<T, S>, T: 'static>(
        mut self,
        path: &'static str,
        h: H,
        doc: Doc,
    ) -> Routes {
        self.table.push(Entry {
            method: "DELETE",
            path,
            doc,
        });
        self.router = self.router.route(path, delete(h));
        self
    }
}

const RUN_ID: Param = Param {
    name: "run_id",
    schema: input::<RunId>,
    description: "A run id (GET /api/runs lists them)",
};
const SESSION_ID: Param = Param {
    name: "session_id",
    schema: input::<api_chat::SessionIdSchema>,
    description: "A chat session id",
};
const REQUEST_ID: Param = Param {
    name: "request_id",
    schema: input::<String>,
    description: "The id of a permission_request event",
};
const CLASS: Param = Param {
    name: "class",
    schema: input::<api_chat::GrantClassSchema>,
    description: "A tool class",
};
const FILE: Param = Param {
    name: "file",
    schema: input::<String>,
    description: "The file's name",
};
const LAST_EVENT_ID: Param = Param {
    name: "Last-Event-ID",
    schema: input::<sse::LastEventIdSchema>,
    description: "The idx of the last event received (a reconnecting EventSource sends it)",
};

/// An HTML page.
fn page(summary: &'static str) -> Doc {
    doc("pages", summary).answer(200, "HTML page", Content::Html)
}

fn build() -> Routes {
    use api_chat as chat;
    use api_runs as runs;
    Routes::new()
        // pages and their assets
        .get("/", assets::root, doc("pages", "Redirects to /studio").answer(303, "To /studio", Content::Empty))
        .page("/studio", assets::studio_page, page("The chat page. With ?token=... (on this page and the other pages only) the token is traded for a cookie and dropped from the URL (303)."))
        .page("/studio/runs", assets::runs_page, page("The runs page"))
        .page("/studio/runs/{run_id}", assets::run_page, page("One run: status, live events, approvals, patchsets").path(RUN_ID).errors(&[404]))
        .get("/studio/assets/{file}", assets::asset, doc("pages", "A script, style sheet or icon of the pages").path(FILE)
            .answer(200, "The file", Content::Types(&["text/javascript", "text/css", "image/svg+xml"])).errors(&[404]))
        .get("/api/openapi.json", openapi_document, doc("meta", "This document").ok::<Map<String, Value>>("OpenAPI 3.1"))
        // runs
        .get("/api/config", runs::config, doc("runs", "The repository's policy packs and model profiles").ok::<RepoConfig>("Configuration").errors(&[400]))
        .get("/api/runs", runs::list, doc("runs", "List runs, newest first").query::<runs::ListQuery>().ok::<runs::RunList>("Runs").errors(&[400]))
        .post("/api/runs", runs::start, doc("runs", "Start a run of a policy pack (the repo must be inside the allowed roots)")
            .body::<runs::StartBody>().created::<RunRecord>("run.json as created").errors(&[400, 403, 413, 415]))
        .get("/api/runs/{run_id}", runs::status, doc("runs", "A run's status: run.json after the liveness check").path(RUN_ID).ok::<RunRecord>("run.json").errors(&[404]))
        .post("/api/runs/{run_id}/stop", runs::stop, doc("runs", "Stop a run (cooperatively, then by force after the grace period); answers once it is stopped")
            .path(RUN_ID).query::<runs::StopQuery>().ok::<RunRecord>("run.json after the stop").errors(&[400, 404, 409]))
        .post("/api/runs/{run_id}/resume", runs::resume, doc("runs", "Resume a stopped or failed run").path(RUN_ID).ok::<RunRecord>("run.json").errors(&[404, 409]))
        .get("/api/runs/{run_id}/events", runs::events, doc("runs", "Events from events.jsonl with idx >= cursor")
            .path(RUN_ID).query::<runs::CursorQuery>().ok::<runs::EventPage>("A page of events").errors(&[400, 404]))
        .get("/api/runs/{run_id}/events/stream", sse::run_events, doc("runs", "Live events (SSE). Each message: id = idx, data = the event. Starts at cursor, or after Last-Event-ID (which wins). Ends with an `end` message when the run is terminal and drained.")
            .path(RUN_ID).query::<sse::StreamQuery>().header(LAST_EVENT_ID)
            .answer(200, "text/event-stream of events", Content::Sse(openapi::output::<sse::RunEventMessage>)).errors(&[400, 404]))
        .get("/runs/{run_id}/events_db", runs::events_db, doc("runs", "Events from the audit DB (SQLite) with idx >= cursor")
            .path(RUN_ID).query::<runs::CursorQuery>().ok::<runs::EventPage>("A page of events").errors(&[400, 404]))
        .get("/api/runs/{run_id}/approvals", runs::approvals, doc("runs", "A run's approvals with diff, risk score, reason and status")
            .path(RUN_ID).ok::<runs::ApprovalList>("Approvals").errors(&[404]))
        .post("/api/runs/{run_id}/decide", runs::decide, doc("runs", "Approve or reject a pending edit (decided_by \"web\")")
            .path(RUN_ID).body::<runs::DecideBody>().ok::<ApprovalDecision>("The decision").errors(&[400, 404, 409, 413, 415]))
        .post("/api/runs/{run_id}/approvals/decide", api_bulk::decide_many, doc("runs", "Approve or reject every pending edit of a run that glob and max_risk pick, each recorded as its own decision (decided_by \"web\"); with dry_run, what would be decided. Answers every approval with its outcome: decided, matched (dry_run) or skipped with the reason (already decided, auto-approved, tampered, glob or risk, refused)")
            .path(RUN_ID).body::<api_bulk::BulkDecideBody>().ok::<noctune_studio::BulkDecision>("Each approval's outcome").errors(&[400, 404, 409, 413, 415]))
        .get("/api/runs/{run_id}/patchsets", runs::patchsets, doc("runs", "The run's patchsets and the commits on its branch")
            .path(RUN_ID).ok::<runs::Patchsets>("Patchsets and commits").errors(&[404]))
        // chat
        .get("/api/chat/profiles", chat::profiles, doc("chat", "Model profiles and the default").ok::<chat::Profiles>("Profiles"))
        .get("/api/chat/health", chat::health, doc("chat", "Whether a profile's model server answers; if not, the message and the command that starts llama-server")
            .query::<chat::HealthQuery>().ok::<ModelHealth>("Health").errors(&[400]))
        .get("/api/chat/sessions", chat::list_sessions, doc("chat", "Saved chat sessions, newest first").ok::<chat::SessionList>("Sessions"))
        .post("/api/chat/sessions", chat::create_session, doc("chat", "Create an empty session")
            .body::<chat::NewSession>().created::<chat::NewSessionOut>("The new session").errors(&[400, 413, 415]))
        .get("/api/chat/sessions/{session_id}", chat::load_session, doc("chat", "Load a session (messages in the OpenAI wire shape, grants answered)")
            .path(SESSION_ID).ok::<chat::SessionOut>("The session").errors(&[404]))
        .delete("/api/chat/sessions/{session_id}", chat::delete_session, doc("chat", "Delete a session and forget its session grants")
            .path(SESSION_ID).ok::<chat::Deleted>("Deleted").errors(&[404]))
        .get("/api/chat/sessions/{session_id}/export", chat::export_session, doc("chat", "The transcript as JSON (messages, tool calls and results, grants), as a download")
            .path(SESSION_ID).ok::<chat::TranscriptSchema>("Transcript").errors(&[404]))
        .post("/api/chat/sessions/{session_id}/profile", chat::select_profile, doc("chat", "Select the session's model profile")
            .path(SESSION_ID).body::<chat::SelectProfile>().ok::<chat::ProfileSelected>("Selected").errors(&[400, 404, 413, 415]))
        .post("/api/chat/sessions/{session_id}/messages", chat::send, doc("chat", "Send a message (the session is created if missing). The answer streams as SSE; each message's event is the ChatEvent type and its data the ChatEvent as JSON. A permission_request parks the turn until POST /api/chat/permissions/{request_id} (or a timeout denies). Closing the stream cancels the turn. With retry: true (and no message) the failed last turn is sent again and replaces it (404 for no session, 409 when the last turn did not fail).")
            .path(SESSION_ID).body::<chat::SendBody>()
            .answer(200, "text/event-stream of ChatEvent", Content::Sse(openapi::output::<chat::ChatEventMessage>)).errors(&[400, 404, 409, 413, 415]))
        .post("/api/chat/sessions/{session_id}/undo", chat::undo, doc("chat", "Undo the session's last edit (restores the backup)")
            .path(SESSION_ID).ok::<chat::UndoOutcome>("What was undone").errors(&[404, 409]))
        .post("/api/chat/permissions/{request_id}", chat::answer_permission, doc("chat", "Answer a permission request of a running turn")
            .path(REQUEST_ID).body::<chat::PermissionBody>().ok::<chat::PermissionAnswered>("Accepted").errors(&[400, 404, 413, 415]))
        .get("/api/chat/grants", chat::grants, doc("chat", "The \"always allow\" grants of studio_allow.json").ok::<chat::Grants>("Grants"))
        .delete("/api/chat/grants/{class}", chat::revoke, doc("chat", "Revoke the always and session grants of a tool class")
            .path(CLASS).ok::<chat::Revoked>("Revoked").errors(&[400]))
}

/// What rmcp's Streamable HTTP service answers besides success (its own plain-text errors for
/// a missing session, a wrong Accept or content type); 401/403 (the lock's) and 413 (the body
/// limit's) are ours, in JSON.
const MCP_PLAIN: &[(u16, &str)] = &[
    (202, "Accepted (a notification or response)"),
    (400, "Bad request (e.g. no session id)"),
    (404, "Unknown MCP session"),
    (405, "Method not supported"),
    (
        406,
        "Accept must allow application/json and text/event-stream",
    ),
    (415, "Content-Type must be application/json"),
    (422, "Unprocessable JSON-RPC message"),
];

/// `/mcp` (mounted by [`app`] from the MCP crate's router).
fn mcp_entries() -> Vec<Entry> {
    let mcp = |summary| {
        doc("mcp", summary)
            .answer(
                200,
                "MCP Streamable HTTP (JSON-RPC; see the MCP specification)",
                Content::Types(&["application/json", "text/event-stream"]),
            )
            .errors(&[413])
            .plain(MCP_PLAIN)
    };
    vec![
        Entry {
            method: "GET",
            path: "/mcp",
            doc: mcp("MCP Streamable HTTP: server-to-client stream"),
        },
        Entry {
            method: "POST",
            path: "/mcp",
            doc: mcp("MCP Streamable HTTP: send a JSON-RPC message"),
        },
        Entry {
            method: "DELETE",
            path: "/mcp",
            doc: mcp("MCP Streamable HTTP: end a session"),
        },
    ]
}

/// Every documented route: the router's and, when mounted, `/mcp`.
fn entries() -> Vec<Entry> {
    let mut t = build().table;
    if MCP_MOUNTED {
        t.extend(mcp_entries());
    }
    t
}

/// Every (method, path) the server answers, `/mcp` included.
pub fn route_table() -> Vec<RouteInfo> {
    entries()
        .into_iter()
        .map(|e| RouteInfo {
            method: e.method,
            path: e.path,
        })
        .collect()
}

/// The route patterns of the pages (`/studio/runs/{run_id}`, ...), for the lock.
pub(super) fn page_routes() -> Vec<&'static str> {
    build().pages
}

/// Whether `/mcp` is served (flip together with the line in [`app`]).
const MCP_MOUNTED: bool = true;

/// The OpenAPI document of [`entries`] (built once).
pub fn openapi_json() -> Result<Value, String> {
    static DOC: OnceLock<Result<Value, String>> = OnceLock::new();
    DOC.get_or_init(|| openapi::document::<ErrorBody>(&entries()))
        .clone()
}

async fn openapi_document() -> Result<Json<Value>, ApiError> {
    openapi_json().map(Json).map_err(ApiError::internal)
}

/// The whole application: routes, then the body limit (read before any handler, so every
/// route answers 413 alike), then the lock around everything.
pub fn app(state: S, mcp: Option<Router>) -> Router {
    let mut routes = build().router.with_state(state.clone());
    // MCP Streamable HTTP, inside the same lock as everything else.
    if let Some(mcp) = mcp {
        routes = routes.merge(mcp);
    }
    routes
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn(body::limit))
        .layer(axum::middleware::from_fn_with_state(state, auth::guard))
}

async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(
        "not_found",
        format!(
            "no route {method} {}; the API is described at /api/openapi.json",
            uri.path()
        ),
    )
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{} does not accept {method}; see /api/openapi.json",
            uri.path()
        ),
    )
}
