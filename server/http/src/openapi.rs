//! The OpenAPI 3.1 document of everything this server answers, served at `/api/openapi.json`.
//! Written by hand next to the handlers; `tests/it/http_api.rs` checks that every route of
//! [`super::route_table`] is in it and that it names no route the server lacks.

use axum::Json;
use serde_json::{Map, Value, json};

pub(super) fn err_ref() -> Value {
    json!({"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
}

pub(super) fn json_body(schema: Value) -> Value {
    json!({"content": {"application/json": {"schema": schema}}})
}

pub(super) fn r(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

pub(super) fn run_id_param() -> Value {
    json!({"name": "run_id", "in": "path", "required": true, "schema": {"type": "string", "pattern": "^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$"}})
}

pub(super) fn query(name: &str, schema: Value, description: &str) -> Value {
    json!({"name": name, "in": "query", "required": false, "schema": schema, "description": description})
}

/// An operation: summary, parameters, optional request body, the success answer, and the
/// error statuses it can give (every route can also give 401/403/413).
pub(super) fn op(
    tag: &str,
    summary: &str,
    params: Vec<Value>,
    body: Option<Value>,
    ok: (&str, Value),
    errors: &[&str],
) -> Value {
    let mut responses = Map::new();
    responses.insert(ok.0.to_string(), ok.1);
    for code in errors.iter().chain(["401", "403"].iter()) {
        let description = match *code {
            "400" => "Bad input (malformed JSON, wrong field, unknown pack or profile)",
            "401" => "Missing or wrong access token",
            "403" => "Foreign Host or Origin, or a path outside the allowed roots",
            "404" => "Unknown run, approval or session",
            "409" => "Not possible in the current state (already decided, run terminal)",
            "413" => "Body larger than 1 MiB",
            "415" => "Body is not application/json",
            _ => "Error",
        };
        let mut e = err_ref();
        e["description"] = json!(description);
        responses.insert(code.to_string(), e);
    }
    let mut o =
        json!({"tags": [tag], "summary": summary, "parameters": params, "responses": responses});
    if let Some(b) = body {
        let mut b = json_body(b);
        b["required"] = json!(true);
        o["requestBody"] = b;
    }
    o
}

pub(super) fn page(description: &str) -> Value {
    json!({"description": description, "content": {"text/html": {"schema": {"type": "string"}}}})
}

pub(super) fn ok_json(description: &str, schema: Value) -> (&'static str, Value) {
    let mut v = json_body(schema);
    v["description"] = json!(description);
    ("200", v)
}

/// An SSE answer; `message` describes one message (`event`, `id`, `data`), as OpenAPI 3.2's
/// `itemSchema` does.
pub(super) fn sse(description: &str, message: Value) -> (&'static str, Value) {
    (
        "200",
        json!({"description": description, "content": {"text/event-stream": {"itemSchema": message}}}),
    )
}

/// Largest cursor documented (JSON numbers are exact up to 2^53 - 1).
const MAX_CURSOR: u64 = (1 << 53) - 1;

fn paths() -> Value {
    let cursor = || {
        query(
            "cursor",
            json!({"type": "integer", "minimum": 0, "maximum": MAX_CURSOR, "default": 0}),
            "First event idx to return",
        )
    };
    let limit = || {
        query(
            "limit",
            json!({"type": "integer", "minimum": 1, "maximum": 5000, "default": 500}),
            "Page size",
        )
    };
    let mut p = json!({
        "/": {"get": op("pages", "Redirects to /studio", vec![], None, ("303", json!({"description": "To /studio"})), &[])},
        "/studio": {"get": op("pages", "The chat page. With ?token=... the token is traded for a cookie and dropped from the URL (303).", vec![], None, ("200", page("HTML page")), &[])},
        "/studio/runs": {"get": op("pages", "The runs page", vec![], None, ("200", page("HTML page")), &[])},
        "/studio/runs/{run_id}": {"get": op("pages", "One run: status, live events, approvals, patchsets", vec![run_id_param()], None, ("200", page("HTML page")), &["404"])},
        "/studio/assets/{file}": {"get": op("pages", "A script, style sheet or icon of the pages", vec![json!({"name": "file", "in": "path", "required": true, "schema": {"type": "string"}})], None,
            ("200", json!({"description": "The file", "content": {"text/javascript": {}, "text/css": {}, "image/svg+xml": {}}})), &["404"])},
        "/api/openapi.json": {"get": op("meta", "This document", vec![], None, ok_json("OpenAPI 3.1", json!({"type": "object"})), &[])},
        "/api/config": {"get": op("runs", "The repository's policy packs and model profiles", vec![], None, ok_json("Configuration", r("RepoConfig")), &["400"])},
        "/api/runs": {
            "get": op("runs", "List runs, newest first", vec![
                query("repo", json!({"type": "string"}), "Repository root (default: the one Studio serves)"),
                query("status", json!({"type": "string", "enum": ["queued", "running", "waiting_approval", "stopping", "done", "failed", "stopped"]}), "Only runs in this status"),
            ], None, ok_json("Runs", json!({"type": "object", "required": ["runs"], "properties": {"runs": {"type": "array", "items": r("RunRecord")}}})), &["400"]),
            "post": op("runs", "Start a run of a policy pack (the repo must be inside the allowed roots)", vec![], Some(r("StartRequest")),
                ("201", {let mut v = json_body(r("RunRecord")); v["description"] = json!("run.json as created"); v}), &["400", "403", "413", "415"]),
        },
        "/api/runs/{run_id}": {"get": op("runs", "A run's status: run.json after the liveness check", vec![run_id_param()], None, ok_json("run.json", r("RunRecord")), &["404"])},
        "/api/runs/{run_id}/stop": {"post": op("runs", "Stop a run (cooperatively, then by force after the grace period); answers once it is stopped", vec![run_id_param(),
            query("grace_secs", json!({"type": "integer", "minimum": 0, "maximum": 3600}), "Seconds before the worker is killed")], None, ok_json("run.json after the stop", r("RunRecord")), &["400", "404", "409"])},
        "/api/runs/{run_id}/resume": {"post": op("runs", "Resume a stopped or failed run", vec![run_id_param()], None, ok_json("run.json", r("RunRecord")), &["404", "409"])},
        "/api/runs/{run_id}/events": {"get": op("runs", "Events from events.jsonl with idx >= cursor", vec![run_id_param(), cursor(), limit()], None, ok_json("A page of events", r("EventPage")), &["400", "404"])},
        "/api/runs/{run_id}/events/stream": {"get": op("runs", "Live events (SSE). Each message: id = idx, data = the event. Starts at cursor, or after Last-Event-ID (which wins). Ends with an `end` message when the run is terminal and drained.",
            vec![run_id_param(), query("cursor", json!({"type": "integer", "minimum": 0, "maximum": MAX_CURSOR}), "First event idx to send"),
                 json!({"name": "Last-Event-ID", "in": "header", "required": false, "schema": {"type": "string", "pattern": "^[0-9]{1,15}$"}})], None, sse("text/event-stream of events", r("RunEventMessage")), &["400", "404"])},
        "/runs/{run_id}/events_db": {"get": op("runs", "Events from the audit DB (SQLite) with idx >= cursor", vec![run_id_param(), cursor(), limit()], None, ok_json("A page of events", r("EventPage")), &["400", "404"])},
        "/api/runs/{run_id}/approvals": {"get": op("runs", "A run's approvals with diff, risk score, reason and status", vec![run_id_param()], None,
            ok_json("Approvals", json!({"type": "object", "required": ["approvals"], "properties": {"approvals": {"type": "array", "items": r("Approval")}}})), &["404"])},
        "/api/runs/{run_id}/decide": {"post": op("runs", "Approve or reject a pending edit (decided_by \"web\")", vec![run_id_param()], Some(r("DecideRequest")), ok_json("The decision", r("Decision")), &["400", "404", "409", "413", "415"])},
        "/api/runs/{run_id}/patchsets": {"get": op("runs", "The run's patchsets and the commits on its branch", vec![run_id_param()], None, ok_json("Patchsets and commits", r("Patchsets")), &["404"])},
    });
    let obj = p.as_object_mut().expect("paths is an object");
    for (path, item) in super::api_chat::openapi_paths() {
        obj.insert(path, item);
    }
    if let Some(mcp) = mcp_path() {
        obj.insert("/mcp".into(), mcp);
    }
    p
}

/// What rmcp's Streamable HTTP service answers besides success (its own plain-text errors for
/// a missing session, a wrong Accept or content type), and our lock's 401/403/413.
fn mcp_responses(ok: Value) -> Value {
    let mut r = json!({"200": ok, "202": {"description": "Accepted (a notification or response)"}});
    for (code, what) in [
        ("400", "Bad request (e.g. no session id)"),
        ("401", "Missing or wrong access token"),
        ("403", "Foreign Host or Origin"),
        ("404", "Unknown MCP session"),
        ("405", "Method not supported"),
        (
            "406",
            "Accept must allow application/json and text/event-stream",
        ),
        ("413", "Body larger than 1 MiB"),
        ("415", "Content-Type must be application/json"),
        ("422", "Unprocessable JSON-RPC message"),
    ] {
        r[code] = json!({"description": what});
    }
    r
}

fn mcp_path() -> Option<Value> {
    if !super::route_table().iter().any(|r| r.path == "/mcp") {
        return None;
    }
    let body = || json!({"description": "MCP Streamable HTTP (JSON-RPC; see the MCP specification)", "content": {"application/json": {}, "text/event-stream": {}}});
    Some(json!({
        "post": {"tags": ["mcp"], "summary": "MCP Streamable HTTP: send a JSON-RPC message", "responses": mcp_responses(body())},
        "get": {"tags": ["mcp"], "summary": "MCP Streamable HTTP: server-to-client stream", "responses": mcp_responses(body())},
        "delete": {"tags": ["mcp"], "summary": "MCP Streamable HTTP: end a session", "responses": mcp_responses(body())},
    }))
}

fn schemas() -> Value {
    let status = json!({"type": "string", "enum": ["queued", "running", "waiting_approval", "stopping", "done", "failed", "stopped"]});
    let nstr = json!({"type": ["string", "null"]});
    let mut s = json!({
        "Error": {"type": "object", "required": ["error", "message"], "properties": {
            "error": {"type": "string", "description": "A stable code, e.g. unknown_run, malformed_json, body_too_large"},
            "message": {"type": "string", "description": "What went wrong and what to do"}}},
        "RunRecord": {"type": "object", "description": "state/run.json", "required": ["run_id", "status", "started_at", "updated_at", "repo_root", "pack", "profile", "branch", "head_sha", "stage"], "properties": {
            "run_id": {"type": "string"}, "status": status, "started_at": {"type": "string"}, "updated_at": {"type": "string"},
            "ended_at": nstr, "repo_root": {"type": "string"}, "pack": {"type": "string"}, "profile": {"type": "string"},
            "branch": {"type": "string"}, "head_sha": {"type": "string"}, "error": nstr,
            "resume_policy": {"type": "string", "enum": ["continue", "never"]}, "worker_pid": {"type": ["integer", "null"]},
            "worker_start_time": {"type": ["integer", "null"]}, "stage": {"type": "string"}}},
        "Event": {"type": "object", "required": ["idx", "ts", "type", "payload"], "properties": {
            "idx": {"type": "integer", "minimum": 0}, "ts": {"type": "string"}, "type": {"type": "string"}, "payload": {}}},
        "RunEventMessage": {"type": "object", "description": "One SSE message of a run's event stream", "properties": {
            "event": {"type": "string", "enum": ["message", "end", "error"], "description": "message: an event (data = Event); end: the run is terminal and drained (data = {status, next_cursor}); error: the stream failed (data = Error)"},
            "id": {"type": "string", "description": "The event's idx (message only)"},
            "data": {"type": "string", "contentMediaType": "application/json"}}},
        "EventPage": {"type": "object", "required": ["events", "next_cursor"], "properties": {
            "events": {"type": "array", "items": r("Event")}, "next_cursor": {"type": "integer", "description": "The cursor of the next page"}}},
        "StartRequest": {"type": "object", "required": ["pack"], "additionalProperties": false, "properties": {
            "repo": {"type": "string", "description": "Repository root (default: the one Studio serves)"},
            "pack": {"type": "string"}, "profile": {"type": "string"}}},
        "DecideRequest": {"type": "object", "required": ["approval_id", "decision"], "additionalProperties": false, "properties": {
            "approval_id": {"type": "string", "pattern": "^[0-9a-f]{16,64}$"},
            "decision": {"type": "string", "enum": ["approve", "reject"]},
            "reason": {"type": "string", "maxLength": 4000}}},
        "Decision": {"type": "object", "required": ["approval_id", "decision", "decided_at", "decided_by", "reason"], "properties": {
            "approval_id": {"type": "string"}, "decision": {"type": "string", "enum": ["approve", "reject"]},
            "decided_at": {"type": "string"}, "decided_by": {"type": "string"}, "reason": {"type": "string"}}},
        "Approval": {"type": "object", "required": ["approval_id", "file_path", "risk_score", "reason", "diff", "status"], "properties": {
            "approval_id": {"type": "string"}, "file_path": {"type": "string"}, "symbol": {"type": "string"},
            "risk_score": {"type": "integer", "minimum": 0, "maximum": 100}, "reason": {"type": "string"},
            "diff": {"type": "string", "description": "Unified diff"}, "status": {"type": "string", "enum": ["pending", "approved", "rejected", "auto_approved"]},
            "created_at": {"type": "string"}, "lines_changed": {"type": "integer"},
            "decision": {"oneOf": [r("Decision"), {"type": "null"}]}}},
        "Patchsets": {"type": "object", "required": ["branch", "patchsets", "commits"], "properties": {
            "branch": {"type": "string"},
            "patchsets": {"type": "array", "items": {"type": "object", "properties": {
                "approval_ids": {"type": "array", "items": {"type": "string"}}, "files": {"type": "array", "items": {"type": "string"}},
                "status": {"type": "string", "enum": ["planned", "committed", "failed"]}, "commit_sha": nstr, "reason": nstr}}},
            "commits": {"type": "array", "items": {"type": "object", "required": ["sha", "summary"], "properties": {"sha": {"type": "string"}, "summary": {"type": "string"}}}}}},
        "RepoConfig": {"type": "object", "properties": {
            "repo_root": {"type": "string"}, "default_profile": {"type": "string"},
            "packs": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}, "allowed_globs": {"type": "array", "items": {"type": "string"}}, "proposer": {"type": "string"}}}},
            "profiles": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}, "base_url": {"type": "string"}, "model": {"type": "string"}}}}}},
    });
    let obj = s.as_object_mut().expect("schemas is an object");
    for (name, schema) in super::api_chat::openapi_schemas() {
        obj.insert(name, schema);
    }
    s
}

pub fn build() -> Value {
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Noctune Studio",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The local Studio server: chat, runs, approvals and live events. Every route needs the per-launch token \
                            (cookie from the printed URL, or `Authorization: Bearer <token>`), a loopback Host with this port, and, when \
                            present, this server's own Origin. Errors are JSON: {\"error\": code, \"message\": text}."
        },
        "components": {
            "schemas": schemas(),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "The token printed at launch"},
                "cookie": {"type": "apiKey", "in": "cookie", "name": "noctune_token_<port>", "description": "Set by the first visit to the printed URL"}
            }
        },
        "security": [{"bearer": []}, {"cookie": []}],
        "paths": paths(),
    })
}

pub async fn document() -> Json<Value> {
    Json(build())
}
