//! Run events: one JSON object per line of `events.jsonl`, `{idx, ts, type, payload}` with
//! `idx` contiguous from 0.

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub idx: u64,
    pub ts: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub payload: Value,
}

/// The closed list of event types a run emits. Surfaces render by these names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    RunQueued,
    RunStarted,
    StatusChanged,
    Stage,
    Heartbeat,
    WorktreeReady,
    ToolStarted,
    ToolFinished,
    ToolSkipped,
    EditProposed,
    EditRepaired,
    EditDropped,
    PolicyViolation,
    EditRefused,
    AutoApproved,
    ApprovalRequested,
    ApprovalDecided,
    ApprovalStale,
    PatchsetPlanned,
    PatchsetApplied,
    PatchsetFailed,
    PatchsetCommitted,
    StopRequested,
    Stopped,
    RunFailed,
    RunDone,
    RunResumed,
    Log,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        use EventKind::*;
        match self {
            RunQueued => "run_queued",
            RunStarted => "run_started",
            StatusChanged => "status_changed",
            Stage => "stage",
            Heartbeat => "heartbeat",
            WorktreeReady => "worktree_ready",
            ToolStarted => "tool_started",
            ToolFinished => "tool_finished",
            ToolSkipped => "tool_skipped",
            EditProposed => "edit_proposed",
            EditRepaired => "edit_repaired",
            EditDropped => "edit_dropped",
            PolicyViolation => "policy_violation",
            EditRefused => "edit_refused",
            AutoApproved => "auto_approved",
            ApprovalRequested => "approval_requested",
            ApprovalDecided => "approval_decided",
            ApprovalStale => "approval_stale",
            PatchsetPlanned => "patchset_planned",
            PatchsetApplied => "patchset_applied",
            PatchsetFailed => "patchset_failed",
            PatchsetCommitted => "patchset_committed",
            StopRequested => "stop_requested",
            Stopped => "stopped",
            RunFailed => "run_failed",
            RunDone => "run_done",
            RunResumed => "run_resumed",
            Log => "log",
        }
    }
}
