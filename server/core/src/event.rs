//! Run events: one JSON object per line of `events.jsonl`, `{idx, ts, type, payload}` with
//! `idx` contiguous from 0.
//!
//! [`Event`] is the record as stored and sent (file, audit DB, HTTP/SSE, LSP, MCP): its
//! `payload` stays JSON so that lines written by any version, of any type, always read back.
//! [`EventPayload`] is the contract: one variant per [`EventKind`], each with the payload's
//! fields. Writers build events only from it ([`Event::new`]), readers get it back with
//! [`Event::body`], and [`event_schema`] is its JSON Schema for web, LSP and editor clients.

use crate::approval::Decision;
use crate::patchset::{CheckStatus, PatchsetPlan, PatchsetStatus};
use crate::proposal::ProposalSource;
use crate::run_state::{BaselineSummary, RolledBack, RunStatus, RunSummary};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub idx: u64,
    pub ts: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub payload: Value,
}

impl Event {
    /// The record of a typed event. The payload's JSON is the typed value's (keys sorted, as
    /// `serde_json` maps are), so it is the same bytes whichever writer made it.
    pub fn new(idx: u64, ts: String, body: &EventPayload) -> Event {
        Event {
            idx,
            ts,
            kind: body.kind().as_str().to_string(),
            payload: body.payload_json(),
        }
    }

    /// The typed payload, or `None` for a type this version does not know or a payload it
    /// cannot read (the record itself is still an [`Event`]).
    pub fn body(&self) -> Option<EventPayload> {
        let mut m = Map::new();
        m.insert("type".into(), Value::String(self.kind.clone()));
        m.insert("payload".into(), self.payload.clone());
        EventPayload::deserialize(Value::Object(m)).ok()
    }
}

/// A tool's gate that checks an edit before it is proposed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Gate {
    Parse,
    Lint,
}

impl Gate {
    pub fn as_str(self) -> &'static str {
        match self {
            Gate::Parse => "parse",
            Gate::Lint => "lint",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

/// What happened, with its fields: `{"type": <EventKind name>, "payload": {fields}}`.
/// A field that is an `Option` and marked "absent when none" is left out of the payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", content = "payload", rename_all = "snake_case")]
pub enum EventPayload {
    /// The run was created (by the host that starts it).
    RunQueued {
        pack: String,
        profile: String,
        repo_root: String,
        head_sha: String,
    },
    /// The user's working tree has changes HEAD does not have; the run works from HEAD.
    UncommittedChanges {
        head_sha: String,
        /// How many paths differ.
        count: usize,
        /// The first of them.
        files: Vec<String>,
    },
    /// A worker took the run for the first time.
    RunStarted {
        worker_pid: u32,
        pack: String,
        branch: String,
    },
    /// `run.json`'s status changed.
    StatusChanged {
        #[schemars(schema_with = "run_status_schema")]
        status: RunStatus,
        #[serde(default)]
        error: Option<String>,
        /// Set (true) when the change is a resume; absent when none.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resumed: Option<bool>,
    },
    /// The worker entered a stage (`setup`, `propose`, `approvals`, `patchsets`).
    Stage {
        stage: String,
    },
    Heartbeat {},
    WorktreeReady {
        path: String,
    },
    ToolStarted {
        tool: String,
        stage: String,
        argv: Vec<String>,
    },
    ToolFinished {
        tool: String,
        stage: String,
        ok: bool,
        #[serde(default)]
        exit_code: Option<i32>,
        #[serde(default)]
        elapsed_ms: Option<u64>,
        outcome: String,
        /// The tool's log file.
        log: String,
    },
    ToolSkipped {
        tool: String,
        reason: String,
        stage: String,
    },
    EditProposed {
        file: String,
        #[schemars(schema_with = "proposal_source_schema")]
        source: ProposalSource,
        /// The rewritten symbols (llm proposer); absent when none.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        symbols: Option<Vec<String>>,
        /// `project from→to, …` (deps_bump proposer); absent when none.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bumps: Option<String>,
        /// Whether a bump is a major one (deps_bump proposer); absent when none.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        major: Option<bool>,
    },
    EditRepaired {
        file: String,
        gate: Gate,
        how: String,
        /// The parse error that was repaired; absent when none.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        /// The lint findings that were repaired; absent when none.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        findings: Option<Vec<String>>,
    },
    EditDropped {
        file: String,
        reason: String,
        /// The gate that dropped it; absent when none.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        gate: Option<Gate>,
        /// The symbol(s) concerned; absent when none.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        symbol: Option<String>,
    },
    PolicyViolation {
        file: String,
        reason: String,
        #[schemars(schema_with = "proposal_source_schema")]
        source: ProposalSource,
    },
    EditRefused {
        file: String,
        reason: String,
        /// Absent when the edit had no approval yet.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        approval_id: Option<String>,
    },
    AutoApproved {
        approval_id: String,
        file: String,
        risk_score: u8,
        lines: u32,
    },
    ApprovalRequested {
        approval_id: String,
        file: String,
        symbol: String,
        risk_score: u8,
        reason: String,
        lines: u32,
        /// The CLI command that approves it.
        decide: String,
    },
    ApprovalDecided {
        approval_id: String,
        file: String,
        #[schemars(schema_with = "decision_schema")]
        decision: Decision,
        decided_by: String,
        decided_at: String,
        reason: String,
    },
    ApprovalStale {
        file: String,
        reason: String,
    },
    /// An approval's recorded content, or the decision on it, is not what its id names: it was
    /// not applied, and the run fails.
    ApprovalTampered {
        approval_id: String,
        file: String,
        reason: String,
    },
    /// Patchset `n` of `of` (1-based) was planned.
    PatchsetPlanned {
        n: usize,
        of: usize,
        files: Vec<String>,
        approval_ids: Vec<String>,
    },
    /// A check's result on the base commit, taken before the first patchset: a patchset fails
    /// the check only where it does worse than this.
    CheckBaseline {
        tool: String,
        #[schemars(schema_with = "check_status_schema")]
        status: CheckStatus,
        /// Tests (or findings) that fail on the base commit (the first 50).
        failing: Vec<String>,
        /// How many fail in all.
        #[serde(default)]
        failing_total: usize,
        summary: String,
        /// Taken by an earlier worker of this run, not again.
        #[serde(default)]
        cached: bool,
        /// Something that may make the result differ from what the edits do (an installed copy
        /// of the project that the tools could import); absent when none.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    PatchsetApplied {
        n: usize,
        of: usize,
        files: Vec<String>,
    },
    PatchsetFailed {
        n: usize,
        of: usize,
        files: Vec<String>,
        tool: String,
        reason: String,
        output_tail: String,
        /// The tests or findings that regressed against the base commit; absent when none
        /// are named.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        regressions: Vec<String>,
    },
    PatchsetCommitted {
        n: usize,
        of: usize,
        sha: String,
        message: String,
        files: Vec<String>,
    },
    StopRequested {
        grace_secs: u64,
    },
    Stopped {
        /// The stage the run stopped in (empty in lines of older versions that had none).
        #[serde(default)]
        stage: String,
        /// Whether the worker was killed rather than stopping by itself.
        #[serde(default)]
        forced: bool,
    },
    RunFailed {
        error: String,
    },
    RunDone {
        commits: Vec<String>,
        branch: String,
        /// Why nothing was committed; absent when something was.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// Set (true) when the branch was deleted because it had no commit; absent otherwise.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        branch_deleted: Option<bool>,
    },
    /// A worker took over a run that had started before.
    RunResumed {
        worker_pid: u32,
        pack: String,
        branch: String,
    },
    Log {
        level: LogLevel,
        message: String,
        /// Absent when none.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        file: Option<String>,
        /// Absent when none.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        project: Option<String>,
    },
}

impl EventPayload {
    pub fn kind(&self) -> EventKind {
        use EventKind as K;
        use EventPayload as P;
        match self {
            P::RunQueued { .. } => K::RunQueued,
            P::UncommittedChanges { .. } => K::UncommittedChanges,
            P::CheckBaseline { .. } => K::CheckBaseline,
            P::RunStarted { .. } => K::RunStarted,
            P::StatusChanged { .. } => K::StatusChanged,
            P::Stage { .. } => K::Stage,
            P::Heartbeat {} => K::Heartbeat,
            P::WorktreeReady { .. } => K::WorktreeReady,
            P::ToolStarted { .. } => K::ToolStarted,
            P::ToolFinished { .. } => K::ToolFinished,
            P::ToolSkipped { .. } => K::ToolSkipped,
            P::EditProposed { .. } => K::EditProposed,
            P::EditRepaired { .. } => K::EditRepaired,
            P::EditDropped { .. } => K::EditDropped,
            P::PolicyViolation { .. } => K::PolicyViolation,
            P::EditRefused { .. } => K::EditRefused,
            P::AutoApproved { .. } => K::AutoApproved,
            P::ApprovalRequested { .. } => K::ApprovalRequested,
            P::ApprovalDecided { .. } => K::ApprovalDecided,
            P::ApprovalStale { .. } => K::ApprovalStale,
            P::ApprovalTampered { .. } => K::ApprovalTampered,
            P::PatchsetPlanned { .. } => K::PatchsetPlanned,
            P::PatchsetApplied { .. } => K::PatchsetApplied,
            P::PatchsetFailed { .. } => K::PatchsetFailed,
            P::PatchsetCommitted { .. } => K::PatchsetCommitted,
            P::StopRequested { .. } => K::StopRequested,
            P::Stopped { .. } => K::Stopped,
            P::RunFailed { .. } => K::RunFailed,
            P::RunDone { .. } => K::RunDone,
            P::RunResumed { .. } => K::RunResumed,
            P::Log { .. } => K::Log,
        }
    }

    /// The `payload` object alone (without the `type`).
    pub fn payload_json(&self) -> Value {
        match serde_json::to_value(self) {
            Ok(Value::Object(mut m)) => m.remove("payload"),
            _ => None,
        }
        .unwrap_or_else(|| Value::Object(Map::new()))
    }
}

/// What to tell a person about uncommitted changes left out of a run.
pub fn uncommitted_note(head_sha: &str, count: usize, files: &[String]) -> String {
    let short = &head_sha[..head_sha.len().min(10)];
    let shown = if files.is_empty() {
        String::new()
    } else {
        let more = if count > files.len() { ", ..." } else { "" };
        format!(" ({count}: {}{more})", files.join(", "))
    };
    format!(
        "your working tree has uncommitted changes{shown}; the run starts from HEAD {short} and does not include them"
    )
}

impl RunSummary {
    /// The summary of a run from its events and patchset plan (`commits`: the commits on its
    /// branch).
    pub fn from_events(events: &[EventPayload], plan: &PatchsetPlan, commits: usize) -> RunSummary {
        use std::collections::BTreeSet;
        let mut s = RunSummary {
            commits,
            ..RunSummary::default()
        };
        let mut proposed = BTreeSet::new();
        let mut failed_by: std::collections::BTreeMap<usize, String> = Default::default();
        for ev in events {
            match ev {
                EventPayload::EditProposed { file, .. } => {
                    proposed.insert(file.clone());
                }
                EventPayload::AutoApproved { .. } => s.auto_approved += 1,
                EventPayload::ApprovalDecided { decision, .. } => match decision {
                    Decision::Approve => s.approved += 1,
                    Decision::Reject => s.rejected += 1,
                },
                EventPayload::PolicyViolation { .. } | EventPayload::EditRefused { .. } => {
                    s.refused += 1
                }
                EventPayload::EditDropped { .. } => s.dropped += 1,
                EventPayload::PatchsetFailed { n, tool, .. } => {
                    failed_by.insert(*n, tool.clone());
                }
                EventPayload::CheckBaseline {
                    tool,
                    status,
                    failing,
                    failing_total,
                    summary,
                    note,
                    ..
                } => {
                    s.baselines.retain(|b| &b.tool != tool);
                    s.baselines.push(BaselineSummary {
                        tool: tool.clone(),
                        status: *status,
                        failing: (*failing_total).max(failing.len()),
                        summary: summary.clone(),
                        regressions: 0,
                    });
                    if let Some(n) = note
                        && !s.notes.contains(n)
                    {
                        s.notes.push(n.clone());
                    }
                }
                EventPayload::UncommittedChanges {
                    head_sha,
                    count,
                    files,
                } => s.notes.push(uncommitted_note(head_sha, *count, files)),
                _ => {}
            }
        }
        s.files_proposed = proposed.len();
        for (i, p) in plan.patchsets.iter().enumerate() {
            match p.status {
                PatchsetStatus::Committed => s.patchsets_committed += 1,
                PatchsetStatus::Failed => s.rolled_back.push(RolledBack {
                    files: p.files.clone(),
                    reason: p.reason.clone().unwrap_or_default(),
                    tool: failed_by.get(&(i + 1)).cloned(),
                }),
                PatchsetStatus::Planned => {}
            }
        }
        for b in &mut s.baselines {
            b.regressions = s
                .rolled_back
                .iter()
                .filter(|r| r.tool.as_deref() == Some(b.tool.as_str()))
                .count();
        }
        s
    }
}

// The shape of an [`Event`] whose type this version knows; it exists for the schema only.
/// One event of a run: a line of `events.jsonl`, an item of the HTTP events page, an SSE
/// message. Clients should skip an event whose `type` they do not know.
#[derive(JsonSchema)]
#[schemars(rename = "Event")]
#[allow(dead_code)]
struct TypedEvent {
    /// Contiguous from 0 within a run.
    idx: u64,
    /// RFC 3339.
    ts: String,
    #[serde(flatten)]
    body: EventPayload,
}

/// The JSON Schema of an event line (`{idx, ts, type, payload}`), one alternative per type.
/// Clients should ignore events of a type they do not know.
pub fn event_schema() -> Value {
    serde_json::to_value(schemars::schema_for!(TypedEvent)).unwrap_or_default()
}

fn string_enum(names: &[&str]) -> Schema {
    json_schema!({"type": "string", "enum": names})
}

fn run_status_schema(_: &mut SchemaGenerator) -> Schema {
    string_enum(&RunStatus::ALL.map(RunStatus::as_str))
}

fn check_status_schema(_: &mut SchemaGenerator) -> Schema {
    string_enum(
        &[
            CheckStatus::Passed,
            CheckStatus::Failed,
            CheckStatus::Skipped,
        ]
        .map(CheckStatus::as_str),
    )
}

fn decision_schema(_: &mut SchemaGenerator) -> Schema {
    string_enum(&[Decision::Approve, Decision::Reject].map(Decision::as_str))
}

const PROPOSAL_SOURCES: [(ProposalSource, &str); 3] = [
    (ProposalSource::Command, "command"),
    (ProposalSource::Llm, "llm"),
    (ProposalSource::DepsBump, "deps_bump"),
];

fn proposal_source_schema(_: &mut SchemaGenerator) -> Schema {
    string_enum(&PROPOSAL_SOURCES.map(|(_, n)| n))
}

/// The closed list of event types a run emits. Surfaces render by these names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    RunQueued,
    UncommittedChanges,
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
    ApprovalTampered,
    PatchsetPlanned,
    CheckBaseline,
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
            UncommittedChanges => "uncommitted_changes",
            CheckBaseline => "check_baseline",
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
            ApprovalTampered => "approval_tampered",
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// One event of every type, with the JSON payload the engine wrote before payloads were
    /// typed (`json!`), which must stay the same bytes.
    fn samples() -> Vec<(EventPayload, Value)> {
        use EventPayload as P;
        let s = |x: &str| x.to_string();
        let files = || vec![s("a.py"), s("b.py")];
        vec![
            (
                P::RunQueued {
                    pack: s("lint_fix"),
                    profile: s("local"),
                    repo_root: s("/r"),
                    head_sha: s("abc"),
                },
                json!({"pack": "lint_fix", "profile": "local", "repo_root": "/r", "head_sha": "abc"}),
            ),
            (
                P::UncommittedChanges {
                    head_sha: s("abc"),
                    count: 2,
                    files: files(),
                },
                json!({"head_sha": "abc", "count": 2, "files": ["a.py", "b.py"]}),
            ),
            (
                P::CheckBaseline {
                    tool: s("pytest"),
                    status: CheckStatus::Failed,
                    failing: vec![s("tests/test_a.py::test_x")],
                    failing_total: 1,
                    summary: s("1 failing of 3"),
                    cached: false,
                    note: None,
                },
                json!({"tool": "pytest", "status": "failed", "failing": ["tests/test_a.py::test_x"],
                       "failing_total": 1, "summary": "1 failing of 3", "cached": false}),
            ),
            (
                P::RunStarted {
                    worker_pid: 7,
                    pack: s("lint_fix"),
                    branch: s("noctune/x"),
                },
                json!({"worker_pid": 7, "pack": "lint_fix", "branch": "noctune/x"}),
            ),
            (
                P::StatusChanged {
                    status: RunStatus::WaitingApproval,
                    error: None,
                    resumed: None,
                },
                json!({"status": "waiting_approval", "error": null}),
            ),
            (
                P::Stage {
                    stage: s("propose"),
                },
                json!({"stage": "propose"}),
            ),
            (P::Heartbeat {}, json!({})),
            (P::WorktreeReady { path: s("/w") }, json!({"path": "/w"})),
            (
                P::ToolStarted {
                    tool: s("ruff"),
                    stage: s("propose"),
                    argv: vec![s("ruff"), s("check")],
                },
                json!({"tool": "ruff", "stage": "propose", "argv": ["ruff", "check"]}),
            ),
            (
                P::ToolFinished {
                    tool: s("ruff"),
                    stage: s("check"),
                    ok: false,
                    exit_code: None,
                    elapsed_ms: Some(12),
                    outcome: s("timed out after 5s"),
                    log: s("/l"),
                },
                json!({"tool": "ruff", "stage": "check", "ok": false, "exit_code": null, "elapsed_ms": 12,
                       "outcome": "timed out after 5s", "log": "/l"}),
            ),
            (
                P::ToolSkipped {
                    tool: s("mypy"),
                    reason: s("no"),
                    stage: s("check"),
                },
                json!({"tool": "mypy", "reason": "no", "stage": "check"}),
            ),
            (
                P::EditProposed {
                    file: s("a.py"),
                    source: ProposalSource::Llm,
                    symbols: Some(vec![s("f")]),
                    bumps: None,
                    major: None,
                },
                json!({"file": "a.py", "source": "llm", "symbols": ["f"]}),
            ),
            (
                P::EditRepaired {
                    file: s("a.py"),
                    gate: Gate::Lint,
                    how: s("ruff --fix"),
                    error: None,
                    findings: Some(vec![s("F401")]),
                },
                json!({"file": "a.py", "gate": "lint", "findings": ["F401"], "how": "ruff --fix"}),
            ),
            (
                P::EditDropped {
                    file: s("a.py"),
                    reason: s("bad"),
                    gate: Some(Gate::Parse),
                    symbol: Some(s("f, g")),
                },
                json!({"file": "a.py", "symbol": "f, g", "gate": "parse", "reason": "bad"}),
            ),
            (
                P::PolicyViolation {
                    file: s("a.py"),
                    reason: s("outside"),
                    source: ProposalSource::DepsBump,
                },
                json!({"file": "a.py", "reason": "outside", "source": "deps_bump"}),
            ),
            (
                P::EditRefused {
                    file: s("a.py"),
                    reason: s("no"),
                    approval_id: None,
                },
                json!({"file": "a.py", "reason": "no"}),
            ),
            (
                P::AutoApproved {
                    approval_id: s("ab12"),
                    file: s("a.py"),
                    risk_score: 10,
                    lines: 3,
                },
                json!({"approval_id": "ab12", "file": "a.py", "risk_score": 10, "lines": 3}),
            ),
            (
                P::ApprovalRequested {
                    approval_id: s("ab12"),
                    file: s("a.py"),
                    symbol: s(""),
                    risk_score: 70,
                    reason: s("big"),
                    lines: 40,
                    decide: s("noctune decide r ab12 approve"),
                },
                json!({"approval_id": "ab12", "file": "a.py", "symbol": "", "risk_score": 70, "reason": "big",
                       "lines": 40, "decide": "noctune decide r ab12 approve"}),
            ),
            (
                P::ApprovalDecided {
                    approval_id: s("ab12"),
                    file: s("a.py"),
                    decision: Decision::Reject,
                    decided_by: s("me"),
                    decided_at: s("t"),
                    reason: s(""),
                },
                json!({"approval_id": "ab12", "file": "a.py", "decision": "reject", "decided_by": "me",
                       "decided_at": "t", "reason": ""}),
            ),
            (
                P::ApprovalStale {
                    file: s("a.py"),
                    reason: s("changed"),
                },
                json!({"file": "a.py", "reason": "changed"}),
            ),
            (
                P::ApprovalTampered {
                    approval_id: s("ab12"),
                    file: s("a.py"),
                    reason: s("changed"),
                },
                json!({"approval_id": "ab12", "file": "a.py", "reason": "changed"}),
            ),
            (
                P::PatchsetPlanned {
                    n: 1,
                    of: 2,
                    files: files(),
                    approval_ids: vec![s("ab12")],
                },
                json!({"n": 1, "of": 2, "files": ["a.py", "b.py"], "approval_ids": ["ab12"]}),
            ),
            (
                P::PatchsetApplied {
                    n: 1,
                    of: 2,
                    files: files(),
                },
                json!({"n": 1, "of": 2, "files": ["a.py", "b.py"]}),
            ),
            (
                P::PatchsetFailed {
                    n: 2,
                    of: 2,
                    files: files(),
                    tool: s("pytest"),
                    reason: s("failed"),
                    output_tail: s("E"),
                    regressions: vec![],
                },
                json!({"n": 2, "of": 2, "files": ["a.py", "b.py"], "tool": "pytest", "reason": "failed", "output_tail": "E"}),
            ),
            (
                P::PatchsetCommitted {
                    n: 1,
                    of: 1,
                    sha: s("deadbeef"),
                    message: s("m"),
                    files: files(),
                },
                json!({"n": 1, "of": 1, "sha": "deadbeef", "message": "m", "files": ["a.py", "b.py"]}),
            ),
            (
                P::StopRequested { grace_secs: 10 },
                json!({"grace_secs": 10}),
            ),
            (
                P::Stopped {
                    stage: s("approvals"),
                    forced: true,
                },
                json!({"forced": true, "stage": "approvals"}),
            ),
            (P::RunFailed { error: s("boom") }, json!({"error": "boom"})),
            (
                P::RunDone {
                    commits: vec![s("deadbeef")],
                    branch: s("noctune/x"),
                    reason: None,
                    branch_deleted: None,
                },
                json!({"commits": ["deadbeef"], "branch": "noctune/x"}),
            ),
            (
                P::RunResumed {
                    worker_pid: 8,
                    pack: s("lint_fix"),
                    branch: s("noctune/x"),
                },
                json!({"worker_pid": 8, "pack": "lint_fix", "branch": "noctune/x"}),
            ),
            (
                P::Log {
                    level: LogLevel::Warn,
                    message: s("m"),
                    file: Some(s("req.txt")),
                    project: Some(s("")),
                },
                json!({"level": "warn", "file": "req.txt", "project": "", "message": "m"}),
            ),
        ]
    }

    #[test]
    fn every_kind_has_a_payload_whose_json_is_what_the_engine_wrote_before() {
        let samples = samples();
        let kinds: std::collections::BTreeSet<&str> =
            samples.iter().map(|(p, _)| p.kind().as_str()).collect();
        assert_eq!(kinds.len(), samples.len(), "one sample per kind");
        assert_eq!(kinds.len(), 31, "every EventKind has a variant");
        for (body, old) in samples {
            let ev = Event::new(3, "2024-01-01T00:00:00Z".into(), &body);
            let line = serde_json::to_string(&ev).unwrap();
            let old_line = serde_json::to_string(&Event {
                idx: 3,
                ts: "2024-01-01T00:00:00Z".into(),
                kind: body.kind().as_str().into(),
                payload: old,
            })
            .unwrap();
            assert_eq!(line, old_line, "{:?}", body.kind());
            assert!(line.starts_with("{\"idx\":3,"), "{line}");
            // The serde tag is the kind's name, and the line reads back as the same value.
            let tagged = serde_json::to_value(&body).unwrap();
            assert_eq!(tagged["type"], body.kind().as_str());
            let back: Event = serde_json::from_str(&line).unwrap();
            assert_eq!(back.body(), Some(body));
        }
    }

    #[test]
    fn lines_of_older_versions_and_unknown_types_still_read() {
        // A setup failure of an older worker wrote `stopped` with only an error.
        let old = r#"{"idx":4,"ts":"t","type":"stopped","payload":{"error":null}}"#;
        let ev: Event = serde_json::from_str(old).unwrap();
        assert_eq!(
            ev.body(),
            Some(EventPayload::Stopped {
                stage: String::new(),
                forced: false
            })
        );
        // A resume's status change has no `error`.
        let resumed = r#"{"idx":5,"ts":"t","type":"status_changed","payload":{"resumed":true,"status":"queued"}}"#;
        let ev: Event = serde_json::from_str(resumed).unwrap();
        assert_eq!(
            ev.body(),
            Some(EventPayload::StatusChanged {
                status: RunStatus::Queued,
                error: None,
                resumed: Some(true)
            })
        );
        // A type (or a payload) this version does not know is still an event, just untyped.
        for line in [
            r#"{"idx":6,"ts":"t","type":"gc_done","payload":{"freed":3}}"#,
            r#"{"idx":7,"ts":"t","type":"stage","payload":{"stage":42}}"#,
            r#"{"idx":8,"ts":"t","type":"log","payload":"free text"}"#,
        ] {
            let ev: Event = serde_json::from_str(line).unwrap();
            assert_eq!(ev.body(), None, "{line}");
            assert_eq!(serde_json::to_string(&ev).unwrap(), line, "kept as it was");
        }
        // Extra fields a newer writer adds do not stop this version from reading the event.
        let newer = r#"{"idx":9,"ts":"t","type":"stage","payload":{"stage":"propose","extra":1}}"#;
        let ev: Event = serde_json::from_str(newer).unwrap();
        assert_eq!(
            ev.body(),
            Some(EventPayload::Stage {
                stage: "propose".into()
            })
        );
    }

    #[test]
    fn the_schema_has_one_alternative_per_type() {
        let schema = event_schema();
        let text = schema.to_string();
        let alts = schema
            .get("oneOf")
            .or_else(|| schema.get("anyOf"))
            .and_then(Value::as_array)
            .unwrap_or_else(|| panic!("no alternatives in {text}"));
        assert_eq!(alts.len(), 31, "{text}");
        for required in ["idx", "ts"] {
            assert!(
                schema["required"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|r| r == required),
                "{text}"
            );
        }
        for (body, _) in samples() {
            assert!(
                text.contains(&format!("\"{}\"", body.kind().as_str())),
                "{:?}",
                body.kind()
            );
        }
        assert!(
            text.contains("waiting_approval")
                && text.contains("deps_bump")
                && text.contains("reject")
        );
    }

    #[test]
    fn the_summary_counts_what_the_events_say_and_names_why_nothing_was_committed() {
        use crate::patchset::{PatchsetPlan, PatchsetStatus, PlannedPatchset};
        let s = |x: &str| x.to_string();
        let events = vec![
            EventPayload::UncommittedChanges {
                head_sha: s("0123456789abcdef"),
                count: 1,
                files: vec![s("a.py")],
            },
            EventPayload::EditProposed {
                file: s("a.py"),
                source: ProposalSource::Command,
                symbols: None,
                bumps: None,
                major: None,
            },
            EventPayload::AutoApproved {
                approval_id: s("ab"),
                file: s("a.py"),
                risk_score: 5,
                lines: 1,
            },
            EventPayload::EditDropped {
                file: s("b.py"),
                reason: s("does not parse"),
                gate: Some(Gate::Parse),
                symbol: None,
            },
            EventPayload::CheckBaseline {
                tool: s("pytest"),
                status: CheckStatus::Failed,
                failing: vec![s("t.py::x")],
                failing_total: 1,
                summary: s("1 failing of 3"),
                cached: false,
                note: None,
            },
            EventPayload::PatchsetFailed {
                n: 1,
                of: 1,
                files: vec![s("a.py")],
                tool: s("pytest"),
                reason: s("pytest failed"),
                output_tail: s(""),
                regressions: vec![s("t.py::y")],
            },
        ];
        let plan = PatchsetPlan {
            patchsets: vec![PlannedPatchset {
                approval_ids: vec![s("ab")],
                files: vec![s("a.py")],
                status: PatchsetStatus::Failed,
                commit_sha: None,
                reason: Some(s("pytest failed")),
            }],
        };
        let sum = RunSummary::from_events(&events, &plan, 0);
        assert_eq!(
            (sum.files_proposed, sum.auto_approved, sum.dropped),
            (1, 1, 1)
        );
        assert_eq!(sum.rolled_back[0].tool.as_deref(), Some("pytest"));
        assert_eq!(sum.baselines[0].regressions, 1);
        assert_eq!(
            sum.no_commit_reason().as_deref(),
            Some("every patchset regressed pytest")
        );
        let lines = sum.lines("noctune/x");
        assert!(
            lines.contains(&s(
                "pytest also fails on the base commit: 1 failing of 3; regressions: 1 patchset(s) rolled back"
            )),
            "{lines:#?}"
        );
        assert!(lines.iter().any(|l| l.starts_with(
            "note: your working tree has uncommitted changes (1: a.py); the run starts from HEAD 0123456789"
        )));
        let nothing = RunSummary::from_events(&[], &PatchsetPlan::default(), 0);
        assert_eq!(
            nothing.no_commit_reason().as_deref(),
            Some("nothing to change")
        );
        let done = RunSummary::from_events(&events[..2], &PatchsetPlan::default(), 2);
        assert_eq!(done.no_commit_reason(), None);
    }

    #[test]
    fn the_schema_lists_the_serde_names_of_the_value_types() {
        for (src, name) in PROPOSAL_SOURCES {
            assert_eq!(serde_json::to_value(src).unwrap(), name);
            // A new ProposalSource must be added to the list (this match stops compiling).
            match src {
                ProposalSource::Command | ProposalSource::Llm | ProposalSource::DepsBump => {}
            }
        }
        for s in RunStatus::ALL {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for g in [Gate::Parse, Gate::Lint] {
            assert_eq!(serde_json::to_value(g).unwrap(), g.as_str());
        }
        for d in [Decision::Approve, Decision::Reject] {
            assert_eq!(serde_json::to_value(d).unwrap(), d.as_str());
        }
    }
}
