//! `/api/runs...` and `/runs/{run_id}/events_db`: each handler turns the request into one
//! `Studio` call (on the blocking pool) and its answer into JSON.

use super::AppState;
use super::error::{ApiError, ApiJson, ApiPath, ApiQuery, blocking};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use noctune_core::{ApprovalId, PlannedPatchset};
use noctune_studio::schema::{EventRecord, JsonSchema};
use noctune_studio::{
    ApprovalDecision, ApprovalView, Commit, Decision, Event, OpError, RepoConfig, RunRecord,
    RunStatus, StartRequest, Studio,
};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

type St = State<Arc<AppState>>;

const DEFAULT_PAGE: usize = 500;
const MAX_PAGE: usize = noctune_studio::limits::MAX_EVENT_PAGE;

/// Largest cursor documented (JSON numbers are exact up to 2^53 - 1).
pub const MAX_CURSOR: u64 = (1 << 53) - 1;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Repository root (default: the one Studio serves).
    repo: Option<String>,
    /// Only runs in this status.
    #[schemars(with = "Option<RunStatus>")]
    status: Option<String>,
}

/// The runs of a repository, newest first.
#[derive(Serialize, JsonSchema)]
pub struct RunList {
    pub runs: Vec<RunRecord>,
}

pub async fn list(
    State(st): St,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<RunList>, ApiError> {
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
    Ok(Json(RunList { runs }))
}

/// What `POST /api/runs` starts.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "StartRequest")]
pub struct StartBody {
    /// Repository root (default: the one Studio serves); it must be inside the allowed roots.
    repo: Option<String>,
    /// The policy pack: lint_fix, typing_pass, py_upgrade, deps_bump or one the repository
    /// configures (GET /api/config lists them).
    pack: String,
    /// Model profile for packs with an llm proposer (default: the configured default).
    profile: Option<String>,
}

pub async fn start(
    State(st): St,
    ApiJson(body): ApiJson<StartBody>,
) -> Result<(StatusCode, Json<RunRecord>), ApiError> {
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
    Ok((StatusCode::CREATED, Json(record)))
}

pub async fn status(
    State(st): St,
    ApiPath(run_id): ApiPath<String>,
) -> Result<Json<RunRecord>, ApiError> {
    let studio = st.studio.clone();
    let rec = blocking(move || studio.status(&run_id)).await?;
    Ok(Json(rec))
}

/// Longest grace period a stop request may ask for.
const MAX_GRACE_SECS: u64 = 3600;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StopQuery {
    /// Seconds before the worker is killed (default: the repo's `engine.stop_grace_secs`).
    #[schemars(range(max = MAX_GRACE_SECS))]
    grace_secs: Option<u64>,
}

pub async fn stop(
    State(st): St,
    ApiPath(run_id): ApiPath<String>,
    ApiQuery(q): ApiQuery<StopQuery>,
) -> Result<Json<RunRecord>, ApiError> {
    let studio = st.studio.clone();
    let grace = q
        .grace_secs
        .map(|s| Duration::from_secs(s.min(MAX_GRACE_SECS)));
    let rec = blocking(move || studio.stop(&run_id, grace)).await?;
    Ok(Json(rec))
}

pub async fn resume(
    State(st): St,
    ApiPath(run_id): ApiPath<String>,
) -> Result<Json<RunRecord>, ApiError> {
    let studio = st.studio.clone();
    let record = blocking(move || studio.resume(&run_id)).await?;
    Ok(Json(record))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CursorQuery {
    /// First event idx to return.
    #[serde(default)]
    #[schemars(range(max = MAX_CURSOR))]
    cursor: u64,
    /// Page size (default 500).
    #[schemars(range(min = 1, max = MAX_PAGE))]
    limit: Option<usize>,
}

/// A page of a run's events.
#[derive(Serialize, JsonSchema)]
pub struct EventPage {
    /// The events with idx >= the cursor, in order.
    #[schemars(with = "Vec<EventRecord>")]
    pub events: Vec<Event>,
    /// The cursor of the next page.
    pub next_cursor: u64,
}

fn page(events: Vec<Event>, cursor: u64) -> Json<EventPage> {
    let next = events.last().map_or(cursor, |e| e.idx + 1);
    Json(EventPage {
        events,
        next_cursor: next,
    })
}

/// Events from `events.jsonl` with `idx >= cursor`.
pub async fn events(
    State(st): St,
    ApiPath(run_id): ApiPath<String>,
    ApiQuery(q): ApiQuery<CursorQuery>,
) -> Result<Json<EventPage>, ApiError> {
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
) -> Result<Json<EventPage>, ApiError> {
    let state = st.clone();
    let limit = q.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
    let cursor = q.cursor;
    let events = blocking(move || state.studio.events_from_db(&run_id, cursor, limit)).await?;
    Ok(page(events, cursor))
}

/// A run's approvals.
#[derive(Serialize, JsonSchema)]
pub struct ApprovalList {
    pub approvals: Vec<ApprovalView>,
}

pub async fn approvals(
    State(st): St,
    ApiPath(run_id): ApiPath<String>,
) -> Result<Json<ApprovalList>, ApiError> {
    let studio = st.studio.clone();
    let approvals = blocking(move || studio.approvals(&run_id)).await?;
    Ok(Json(ApprovalList { approvals }))
}

/// A decision on a pending edit.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "DecideRequest")]
pub struct DecideBody {
    /// The approval_id of a pending approval (GET .../approvals).
    #[schemars(with = "ApprovalId")]
    approval_id: String,
    /// `approve` applies the edit; `reject` drops it.
    #[schemars(with = "Decision")]
    decision: String,
    /// Why; recorded in the audit trail.
    #[serde(default)]
    #[schemars(length(max = noctune_studio::limits::MAX_REASON_BYTES))]
    reason: String,
}

pub async fn decide(
    State(st): St,
    ApiPath(run_id): ApiPath<String>,
    ApiJson(body): ApiJson<DecideBody>,
) -> Result<Json<ApprovalDecision>, ApiError> {
    let decision = Studio::parse_decision(&body.decision)?;
    let studio = st.studio.clone();
    let d =
        blocking(move || studio.decide(&run_id, &body.approval_id, decision, &body.reason, "web"))
            .await?;
    Ok(Json(d))
}

/// A run's patchset plan and the commits on its branch.
#[derive(Serialize, JsonSchema)]
pub struct Patchsets {
    /// The run's branch.
    pub branch: String,
    /// The planned patchsets, in commit order.
    pub patchsets: Vec<PlannedPatchset>,
    /// The commits on the branch (none before its worktree exists).
    pub commits: Vec<Commit>,
}

/// The run's patchset plan and the commits on its branch.
pub async fn patchsets(
    State(st): St,
    ApiPath(run_id): ApiPath<String>,
) -> Result<Json<Patchsets>, ApiError> {
    let studio = st.studio.clone();
    let out = blocking(move || {
        let rec = studio.status(&run_id)?;
        let plan = studio.patchsets(&run_id)?;
        // Before the worktree exists the branch does not either: no commits yet.
        let commits = studio.commits(&rec).unwrap_or_default();
        Ok::<_, OpError>(Patchsets {
            branch: rec.branch,
            patchsets: plan.patchsets,
            commits,
        })
    })
    .await?;
    Ok(Json(out))
}

/// The repository's packs and model profiles (for the start form).
pub async fn config(State(st): St) -> Result<Json<RepoConfig>, ApiError> {
    let root = st.repo_root.clone();
    let studio = st.studio.clone();
    let cfg = blocking(move || studio.repo_config(&root)).await?;
    Ok(Json(cfg))
}
