//! The MCP tools' request and response shapes. Each derives `JsonSchema`, so the schemas that
//! `tools/list` declares are generated from the very types the handlers parse and return.
//!
//! The output types mirror the engine's records field by field (`From` impls below) instead
//! of serialising them as they are: an engine change then fails to compile here rather than
//! silently breaking the declared output schema.

use noctune_core::{ApprovalDecision, ApprovalStatus, Decision, Event, RunRecord, RunStatus};
use noctune_studio::ApprovalView;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Default and largest page of `tail_events`.
pub const DEFAULT_EVENT_LIMIT: u32 = 500;
pub const MAX_EVENT_LIMIT: u32 = 5000;

// ---------------------------------------------------------------------------------------------
// Inputs
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnqueueRunArgs {
    /// Absolute path of the git repository to run the pack on. It must be inside the allowed
    /// roots (NOCTUNE_STUDIO_ALLOWED_ROOTS, default: the repository itself).
    #[schemars(length(min = 1))]
    pub repo_root: String,
    /// Policy pack: lint_fix, typing_pass, py_upgrade, deps_bump or one defined in the
    /// repository's noctune.toml / pyproject.toml.
    #[schemars(length(min = 1))]
    pub pack: String,
    /// Model profile for packs with an llm proposer (default: the configured default).
    #[serde(default)]
    pub profile: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunIdArgs {
    /// A run id as returned by enqueue_run.
    #[schemars(length(min = 1, max = 64))]
    pub run_id: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TailEventsArgs {
    /// A run id as returned by enqueue_run.
    #[schemars(length(min = 1, max = 64))]
    pub run_id: String,
    /// Index of the first event wanted: 0 for the beginning, then the previous page's
    /// next_cursor.
    #[serde(default)]
    pub cursor: u64,
    /// Largest number of events to return (default 500, at most 5000).
    #[serde(default)]
    #[schemars(range(min = 1, max = 5000))]
    pub limit: Option<u32>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DecideApprovalArgs {
    /// A run id as returned by enqueue_run.
    #[schemars(length(min = 1, max = 64))]
    pub run_id: String,
    /// The approval_id of a pending approval from list_approvals.
    #[schemars(length(min = 16, max = 64))]
    pub approval_id: String,
    /// "approve" applies the edit; "reject" drops it.
    #[schemars(schema_with = "decision_schema")]
    pub decision: String,
    /// Why; recorded in the audit trail.
    #[serde(default)]
    pub reason: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StopRunArgs {
    /// A run id as returned by enqueue_run.
    #[schemars(length(min = 1, max = 64))]
    pub run_id: String,
    /// Seconds to wait for a cooperative stop before the worker is killed (default: the
    /// repository's engine.stop_grace_secs, 10).
    #[serde(default)]
    #[schemars(range(max = 600))]
    pub grace_secs: Option<u64>,
}

/// The declared values of `decision`. The Rust field stays a string so that a wrong value is
/// answered with a tool error that says what to send, not a protocol error.
fn decision_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "string",
        "enum": ["approve", "reject"],
        "description": "\"approve\" applies the edit; \"reject\" drops it."
    })
}

// ---------------------------------------------------------------------------------------------
// Outputs
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RunStatusOut {
    Queued,
    Running,
    WaitingApproval,
    Stopping,
    Done,
    Failed,
    Stopped,
}

impl From<RunStatus> for RunStatusOut {
    fn from(s: RunStatus) -> Self {
        match s {
            RunStatus::Queued => RunStatusOut::Queued,
            RunStatus::Running => RunStatusOut::Running,
            RunStatus::WaitingApproval => RunStatusOut::WaitingApproval,
            RunStatus::Stopping => RunStatusOut::Stopping,
            RunStatus::Done => RunStatusOut::Done,
            RunStatus::Failed => RunStatusOut::Failed,
            RunStatus::Stopped => RunStatusOut::Stopped,
        }
    }
}

/// A run's `state/run.json`, after the liveness check.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct RunView {
    pub run_id: String,
    /// queued → running ⇄ waiting_approval → done | failed | stopped (stopping in between a
    /// stop request and stopped).
    pub status: RunStatusOut,
    /// True once the run can no longer change (done, failed or stopped).
    pub terminal: bool,
    pub started_at: String,
    pub updated_at: String,
    pub ended_at: Option<String>,
    pub repo_root: String,
    pub pack: String,
    pub profile: String,
    /// The branch the run commits to (the user's branch is never touched).
    pub branch: String,
    /// The commit the run started from.
    pub head_sha: String,
    /// Why a failed run failed.
    pub error: Option<String>,
    pub resume_policy: String,
    pub worker_pid: Option<u32>,
    pub stage: String,
}

impl From<RunRecord> for RunView {
    fn from(r: RunRecord) -> Self {
        RunView {
            run_id: r.run_id.to_string(),
            status: r.status.into(),
            terminal: r.status.is_terminal(),
            started_at: r.started_at,
            updated_at: r.updated_at,
            ended_at: r.ended_at,
            repo_root: r.repo_root,
            pack: r.pack,
            profile: r.profile,
            branch: r.branch,
            head_sha: r.head_sha,
            error: r.error,
            resume_policy: match r.resume_policy {
                noctune_core::ResumePolicy::Continue => "continue".into(),
                noctune_core::ResumePolicy::Never => "never".into(),
            },
            worker_pid: r.worker_pid,
            stage: r.stage,
        }
    }
}

/// One line of the run's `events.jsonl`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct EventView {
    /// Contiguous from 0.
    pub idx: u64,
    pub ts: String,
    /// run_queued, run_started, approval_requested, approval_decided, patchset_committed,
    /// run_done, stopped, run_failed, ...
    #[serde(rename = "type")]
    pub kind: String,
    pub payload: Value,
}

impl From<Event> for EventView {
    fn from(e: Event) -> Self {
        EventView {
            idx: e.idx,
            ts: e.ts,
            kind: e.kind,
            payload: e.payload,
        }
    }
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct EventsPage {
    pub run_id: String,
    /// The run's status, read before the events: when it is terminal and `more` is false,
    /// every event has been seen.
    pub status: RunStatusOut,
    pub events: Vec<EventView>,
    /// Pass as `cursor` to get the events after these.
    pub next_cursor: u64,
    /// True when the page is full, so more events may already be waiting.
    pub more: bool,
}

#[derive(Debug, Clone, Copy, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalStatusOut {
    Pending,
    Approved,
    Rejected,
    AutoApproved,
}

impl From<ApprovalStatus> for ApprovalStatusOut {
    fn from(s: ApprovalStatus) -> Self {
        match s {
            ApprovalStatus::Pending => ApprovalStatusOut::Pending,
            ApprovalStatus::Approved => ApprovalStatusOut::Approved,
            ApprovalStatus::Rejected => ApprovalStatusOut::Rejected,
            ApprovalStatus::AutoApproved => ApprovalStatusOut::AutoApproved,
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DecisionOut {
    Approve,
    Reject,
}

impl From<Decision> for DecisionOut {
    fn from(d: Decision) -> Self {
        match d {
            Decision::Approve => DecisionOut::Approve,
            Decision::Reject => DecisionOut::Reject,
        }
    }
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct DecisionView {
    pub approval_id: String,
    pub decision: DecisionOut,
    pub decided_at: String,
    /// Who decided: `mcp:<client name>` for MCP clients, a user name from the CLI, ...
    pub decided_by: String,
    pub reason: String,
}

impl From<ApprovalDecision> for DecisionView {
    fn from(d: ApprovalDecision) -> Self {
        DecisionView {
            approval_id: d.approval_id.to_string(),
            decision: d.decision.into(),
            decided_at: d.decided_at,
            decided_by: d.decided_by,
            reason: d.reason,
        }
    }
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ApprovalOut {
    pub approval_id: String,
    pub file_path: String,
    pub symbol: String,
    /// 0-100.
    pub risk_score: u8,
    /// Why the edit needs a human decision.
    pub reason: String,
    /// Unified diff of the proposed edit.
    pub diff: String,
    pub status: ApprovalStatusOut,
    pub created_at: String,
    pub lines_changed: u32,
    pub decision: Option<DecisionView>,
}

impl From<ApprovalView> for ApprovalOut {
    fn from(a: ApprovalView) -> Self {
        ApprovalOut {
            approval_id: a.approval_id,
            file_path: a.file_path,
            symbol: a.symbol,
            risk_score: a.risk_score,
            reason: a.reason,
            diff: a.diff,
            status: a.status.into(),
            created_at: a.created_at,
            lines_changed: a.lines_changed,
            decision: a.decision.map(Into::into),
        }
    }
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ApprovalList {
    pub run_id: String,
    pub approvals: Vec<ApprovalOut>,
    /// How many approvals wait for a decision.
    pub pending: u32,
}

/// What every failed call (`isError: true`) carries in its result's `_meta` under
/// `io.noctune/error`; each tool's `_meta` declares this schema under the same key.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ToolErrorOut {
    /// A stable code (the facade's `ErrorCode`): invalid_arguments, too_large, unknown_run,
    /// unknown_approval, unknown_pack, unknown_profile, not_a_repo, outside_allowed_roots,
    /// already_decided, wrong_state, config_error, git_error, internal.
    pub error: String,
    /// What went wrong and what to do about it.
    pub message: String,
}
