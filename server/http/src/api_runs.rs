//! `/api/runs...` and `/runs/{run_id}/events_db`: each handler turns the request into one
//! `Studio` call (on the blocking pool) and its answer into JSON.

use super::AppState;
use super::error::{ApiError, ApiJson, ApiPath, ApiQuery, blocking};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use noctune_studio::{OpError, RunStatus, StartRequest, Studio};
use serde::Deserialize;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

type St = State<Arc<AppState>>;

const DEFAULT_PAGE: usize = 500;
const MAX_PAGE: usize = noctune_studio::limits::MAX_EVENT_PAGE;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Runs of this repository (default: the one Studio was started for).
    repo: Option<String>,
    /// Only runs in this status.
    status: Option<String>,
}

pub async fn list(
    State(st): St,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let status = match q.status.as_deref() {
        None | Some("") => None,
        Some(s) => Some(RunStatus::parse(s).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_status",
                format!(
                    "unknown status {s:?}; one of {}",
                    RunStatus::ALL.map(|s| s.as_str()).join(", ")
                ),
            )
        })?),
    };
    let repo = q
        .repo
        .filter(|r| !r.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| st.repo_root.clone());
    let studio = st.studio.clone();
    let runs = blocking(move || studio.list_runs(Some(&repo))).await?;
    let runs: Vec<_> = runs
        .into_iter()
        .filter(|r| status.is_none_or(|s| r.status == s))
        .collect();
    Ok(Json(json!({ "runs": runs })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartBody {
    repo: Option<String>,
    pack: String,
    profile: Option<String>,
}

pub async fn start(
    State(st): St,
    ApiJson(body): ApiJson<StartBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let req = StartRequest {
        repo: body
            .repo
            .filter(|r| !r.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| st.repo_root.clone()),
        pack: body.pack,
        profile: body.profile.filter(|p| !p.is_empty()),
    };
    let studio = st.studio.clone();
    let record = blocking(move || studio.start_run(&req)).await?;
    Ok((StatusCode::CREATED, Json(json!(record))))
}

pub async fn status(
    State(st): St,
    ApiPath(run_id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let studio = st.studio.clone();
    let rec = blocking(move || studio.status(&run_id)).await?;
    Ok(Json(json!(rec)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StopQuery {
    /// Seconds before the worker is killed (default: the repo's `engine.stop_grace_secs`).
    grace_secs: Option<u64>,
}

pub async fn stop(
    State(st): St,
    ApiPath(run_id): ApiPath<String>,
    ApiQuery(q): ApiQuery<StopQuery>,
) -> Result<Json<Value>, ApiError> {
    let studio = st.studio.clone();
    let grace = q.grace_secs.map(|s| Duration::from_secs(s.min(3600)));
    let rec = blocking(move || studio.stop(&run_id, grace)).await?;
    Ok(Json(json!(rec)))
}

pub async fn resume(
    State(st): St,
    ApiPath(run_id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let studio = st.studio.clone();
    let record = blocking(move || studio.resume(&run_id)).await?;
    Ok(Json(json!(record)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CursorQuery {
    #[serde(default)]
    cursor: u64,
    limit: Option<usize>,
}

fn page(events: Vec<noctune_core::Event>, cursor: u64) -> Json<Value> {
    let next = events.last().map_or(cursor, |e| e.idx + 1);
    Json(json!({ "events": events, "next_cursor": next }))
}

/// Events from `events.jsonl` with `idx >= cursor`.
pub async fn events(
    State(st): St,
    ApiPath(run_id): ApiPath<String>,
    ApiQuery(q): ApiQuery<CursorQuery>,
) -> Result<Json<Value>, ApiError> {
    let studio = st.studio.clone();
    let limit = q.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
    let cursor = q.cursor;
    let events = blocking(move || studio.events(&run_id, cursor, limit)).await?;
    Ok(page(events, cursor))
}

/// Events from the audit DB (SQLite) only, with `idx >= cursor`.
pub async fn events_db(
    State(st): St,
    ApiPath(run_id): ApiPath<String>,
    ApiQuery(q): ApiQuery<CursorQuery>,
) -> Result<Json<Value>, ApiError> {
    let state = st.clone();
    let limit = q.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
    let cursor = q.cursor;
    let events = blocking(move || state.studio.events_from_db(&run_id, cursor, limit)).await?;
    Ok(page(events, cursor))
}

pub async fn approvals(
    State(st): St,
    ApiPath(run_id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let studio = st.studio.clone();
    let list = blocking(move || studio.approvals(&run_id)).await?;
    Ok(Json(json!({ "approvals": list })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecideBody {
    approval_id: String,
    decision: String,
    #[serde(default)]
    reason: String,
}

pub async fn decide(
    State(st): St,
    ApiPath(run_id): ApiPath<String>,
    ApiJson(body): ApiJson<DecideBody>,
) -> Result<Json<Value>, ApiError> {
    let decision = Studio::parse_decision(&body.decision)?;
    let studio = st.studio.clone();
    let d =
        blocking(move || studio.decide(&run_id, &body.approval_id, decision, &body.reason, "web"))
            .await?;
    Ok(Json(json!(d)))
}

/// The run's patchset plan and the commits on its branch.
pub async fn patchsets(
    State(st): St,
    ApiPath(run_id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let studio = st.studio.clone();
    let out = blocking(move || {
        let rec = studio.status(&run_id)?;
        let plan = studio.patchsets(&run_id)?;
        // Before the worktree exists the branch does not either: no commits yet.
        let commits = studio.commits(&rec).unwrap_or_default();
        Ok::<_, OpError>(json!({
            "branch": rec.branch,
            "patchsets": plan.patchsets,
            "commits": commits,
        }))
    })
    .await?;
    Ok(Json(out))
}

/// The repository's packs and model profiles (for the start form).
pub async fn config(State(st): St) -> Result<Json<Value>, ApiError> {
    let root = st.repo_root.clone();
    let studio = st.studio.clone();
    let cfg = blocking(move || studio.repo_config(&root)).await?;
    Ok(Json(json!(cfg)))
}
