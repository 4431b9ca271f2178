//! The MCP tools' request and response shapes. Each derives `JsonSchema`, so the schemas that
//! `tools/list` declares are generated from the very types the handlers parse and return.
//!
//! The outputs are the core's records themselves (`RunRecord`, `ApprovalView`,
//! `ApprovalDecision`, `Event`), the same types and schemas as on HTTP and in the editors'
//! `wire.json`; the wrappers here only add what a tool answer has besides them (a run's
//! `terminal` flag, a page's cursor, the count of pending approvals).

use noctune_core::{
    ApprovalDecision, ApprovalFilter, BulkDecision, Decision, ErrorCode, Event, OpError, RunRecord,
    RunStatus,
};
use noctune_studio::ApprovalView;
use noctune_studio::schema::EventRecord;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

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

/// One approval by its id, or (`all_pending: true`) every pending approval of the run that
/// `glob` and `max_risk` pick, each decided and recorded by itself.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("oneOf" = [
    {
        "title": "one approval",
        "required": ["approval_id"],
        "properties": {"all_pending": {"const": false}},
        "not": {"anyOf": [{"required": ["glob"]}, {"required": ["max_risk"]}]}
    },
    {
        "title": "every pending approval the filter picks",
        "required": ["all_pending"],
        "properties": {"all_pending": {"const": true}},
        "not": {"required": ["approval_id"]}
    }
]))]
pub struct DecideApprovalArgs {
    /// A run id as returned by enqueue_run.
    #[schemars(length(min = 1, max = 64))]
    pub run_id: String,
    /// The approval_id of a pending approval from list_approvals. Not with all_pending.
    #[serde(default)]
    #[schemars(length(min = 16, max = 64))]
    pub approval_id: Option<String>,
    /// true: decide every pending approval of the run that glob and max_risk pick, instead of
    /// the one approval_id names; the answer lists each approval's outcome.
    #[serde(default)]
    pub all_pending: bool,
    /// With all_pending: only approvals whose file path matches this glob (`*` within a
    /// directory, `**` across them), e.g. "src/**/*.py".
    #[serde(default)]
    pub glob: Option<String>,
    /// With all_pending: only approvals with a risk score of at most this (0-100).
    #[serde(default)]
    #[schemars(range(max = 100))]
    pub max_risk: Option<u8>,
    /// "approve" applies the edit; "reject" drops it.
    #[schemars(schema_with = "decision_schema")]
    pub decision: String,
    /// Why; recorded in the audit trail.
    #[serde(default)]
    pub reason: String,
}

/// What decide_approval decides, from its arguments' two forms.
pub enum DecideTarget {
    One(String),
    AllPending(ApprovalFilter),
}

impl DecideApprovalArgs {
    pub fn target(&self) -> Result<DecideTarget, OpError> {
        let filtered = self.glob.is_some() || self.max_risk.is_some();
        match (&self.approval_id, self.all_pending) {
            (Some(_), true) => Err(OpError::invalid(
                "pass either approval_id (one approval) or all_pending: true (every pending \
                 approval glob and max_risk pick), not both",
            )),
            (Some(_), false) if filtered => Err(OpError::invalid(
                "glob and max_risk pick among all pending approvals: pass them with \
                 all_pending: true and without approval_id",
            )),
            (Some(id), false) => Ok(DecideTarget::One(id.clone())),
            (None, true) => Ok(DecideTarget::AllPending(ApprovalFilter {
                glob: self.glob.clone(),
                max_risk: self.max_risk,
            })),
            (None, false) => Err(OpError::invalid(
                "say what to decide: approval_id (from list_approvals), or all_pending: true for \
                 every pending approval",
            )),
        }
    }
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

/// The declared values of `decision`: the core's [`Decision`], inline. The Rust field stays a
/// string so that a wrong value is answered with a tool error that says what to send, not a
/// protocol error.
fn decision_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let mut s = Decision::json_schema(generator);
    s.insert(
        "description".into(),
        "\"approve\" applies the edit; \"reject\" drops it.".into(),
    );
    s
}

// ---------------------------------------------------------------------------------------------
// Outputs
// ---------------------------------------------------------------------------------------------

/// A run's `state/run.json`, after the liveness check.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct RunView {
    #[serde(flatten)]
    pub record: RunRecord,
    /// True once the run can no longer change (done, failed or stopped).
    pub terminal: bool,
}

impl From<RunRecord> for RunView {
    fn from(record: RunRecord) -> Self {
        RunView {
            terminal: record.status.is_terminal(),
            record,
        }
    }
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct EventsPage {
    pub run_id: String,
    /// The run's status, read before the events: when it is terminal and `more` is false,
    /// every event has been seen.
    pub status: RunStatus,
    /// Lines of the run's `events.jsonl`, `idx` contiguous from 0.
    #[schemars(with = "Vec<EventRecord>")]
    pub events: Vec<Event>,
    /// Pass as `cursor` to get the events after these.
    pub next_cursor: u64,
    /// True when the page is full, so more events may already be waiting.
    pub more: bool,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ApprovalList {
    pub run_id: String,
    pub approvals: Vec<ApprovalView>,
    /// How many approvals wait for a decision.
    pub pending: u32,
}

/// The answer of decide_approval: the decision on the one approval, or (all_pending) every
/// approval of the run with its outcome.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(untagged)]
#[schemars(extend("type" = "object"))]
pub enum DecideApprovalOut {
    One(ApprovalDecision),
    Many(BulkDecision),
}

/// What every failed call (`isError: true`) carries in its result's `_meta` under
/// `io.noctune/error`; each tool's `_meta` declares this schema under the same key. The
/// facade's [`OpError`] with the key `error` for its code.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ToolErrorOut {
    /// A stable code, the facade's [`ErrorCode`].
    pub error: ErrorCode,
    /// What went wrong and what to do about it.
    pub message: String,
}

impl From<OpError> for ToolErrorOut {
    fn from(e: OpError) -> Self {
        ToolErrorOut {
            error: e.code,
            message: e.message,
        }
    }
}
