//! `POST /api/runs/{run_id}/approvals/decide`: one decision for every pending approval of a
//! run that a glob and a risk ceiling pick, or with `dry_run` what it would decide. The facade
//! decides each approval through the single-decision path and says what happened to each.

use super::AppState;
use super::error::{ApiError, ApiJson, ApiPath, blocking};
use axum::Json;
use axum::extract::State;
use noctune_studio::schema::JsonSchema;
use noctune_studio::{ApprovalFilter, BulkDecision, Decision, Studio};
use serde::Deserialize;
use std::sync::Arc;

/// A decision for many pending approvals of a run.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "BulkDecideRequest")]
pub struct BulkDecideBody {
    /// `approve` applies the edits; `reject` drops them.
    #[schemars(with = "Decision")]
    decision: String,
    /// Only approvals whose file path matches this glob (`*` within a directory, `**` across
    /// them), as a policy pack's allowed_globs match. Absent or empty: every file.
    #[serde(default)]
    glob: Option<String>,
    /// Only approvals with a risk score of at most this (0-100). Absent: any risk.
    #[serde(default)]
    #[schemars(range(max = 100))]
    max_risk: Option<u8>,
    /// Why; recorded with each decision in the audit trail.
    #[serde(default)]
    #[schemars(length(max = noctune_studio::limits::MAX_REASON_BYTES))]
    reason: String,
    /// Decide nothing; answer what would be decided (for a confirmation).
    #[serde(default)]
    dry_run: bool,
}

/// Decided by `web`, as single decisions from the page are.
pub async fn decide_many(
    State(st): State<Arc<AppState>>,
    ApiPath(run_id): ApiPath<String>,
    ApiJson(body): ApiJson<BulkDecideBody>,
) -> Result<Json<BulkDecision>, ApiError> {
    let decision = Studio::parse_decision(&body.decision)?;
    let filter = ApprovalFilter {
        glob: body.glob,
        max_risk: body.max_risk,
    };
    let studio = st.studio.clone();
    let answer = blocking(move || {
        if body.dry_run {
            studio.preview_many(&run_id, &filter, decision, &body.reason)
        } else {
            studio.decide_many(&run_id, &filter, decision, &body.reason, "web")
        }
    })
    .await?;
    Ok(Json(answer))
}
