//! Chat tools that drive policy-pack runs: `noctuneStart`, `noctuneStop`, `noctuneEvents`,
//! `noctuneApprovals`, `noctuneDecide`.
//!
//! They reach the engine through [`RunControl`], which the `studio` facade implements (chat may
//! not depend on `studio`, see `tests/it/arch.rs`; the facade hands itself in instead), so a run
//! started from chat is the same as one started from the CLI or the web page: supervised, in the
//! audit DB, decided by the one `decide` rule. Starting and stopping are class `run`, deciding is
//! `decide`; the permission gate asks before any of them. Every run a tool touches must belong
//! to a repository inside the sandbox's roots.

use super::schema::args_schema;
use crate::tool::{Tool, ToolClass, ToolContext, ToolError};
use noctune_core::{
    ApprovalDecision, ApprovalView, Decision, Event, OpError, RunRecord, StartRequest,
};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;

/// Events returned per `noctuneEvents` call by default, and at most.
const DEFAULT_EVENTS: usize = 50;
const MAX_EVENTS: usize = 200;
/// A diff shown to the model is cut to this many characters.
const MAX_DIFF_CHARS: usize = 4000;
/// An event payload is cut to this many characters.
const MAX_PAYLOAD_CHARS: usize = 1500;

/// What the run tools need from the engine. Implemented by `studio::Studio`.
pub trait RunControl: Send + Sync {
    /// Starts a run and supervises its worker in the background (a dead worker marks the run
    /// failed); returns as soon as `run.json` exists.
    fn start(&self, req: &StartRequest) -> Result<RunRecord, OpError>;
    fn status(&self, run_id: &str) -> Result<RunRecord, OpError>;
    fn stop(&self, run_id: &str) -> Result<RunRecord, OpError>;
    fn events(&self, run_id: &str, cursor: u64, limit: usize) -> Result<Vec<Event>, OpError>;
    fn approvals(&self, run_id: &str) -> Result<Vec<ApprovalView>, OpError>;
    fn decide(
        &self,
        run_id: &str,
        approval_id: &str,
        decision: Decision,
        reason: &str,
        decided_by: &str,
    ) -> Result<ApprovalDecision, OpError>;
}

/// The five run tools over `runs`.
pub fn run_tools(runs: Arc<dyn RunControl>) -> Vec<Arc<dyn Tool>> {
    vec![
        Arc::new(NoctuneStart(runs.clone())),
        Arc::new(NoctuneStop(runs.clone())),
        Arc::new(NoctuneEvents(runs.clone())),
        Arc::new(NoctuneApprovals(runs.clone())),
        Arc::new(NoctuneDecide(runs)),
    ]
}

/// A facade error as the model sees it: the same code and message as on every other surface.
fn engine_error(e: OpError) -> ToolError {
    ToolError::new(e.code.as_str(), e.message)
}

fn str_arg<'a>(args: &'a Value, key: &str) -> Result<&'a str, ToolError> {
    args.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            ToolError::new(
                "invalid_arguments",
                format!("`{key}` (a string) is required"),
            )
        })
}

fn opt_str<'a>(args: &'a Value, key: &str) -> Option<&'a str> {
    args.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// A number argument; models often send numbers as strings.
fn opt_u64(args: &Value, key: &str) -> Result<Option<u64>, ToolError> {
    match args.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_u64().map(Some).ok_or_else(|| {
            ToolError::new(
                "invalid_arguments",
                format!("`{key}` must be a whole number >= 0"),
            )
        }),
        Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| {
            ToolError::new(
                "invalid_arguments",
                format!("`{key}` must be a whole number >= 0"),
            )
        }),
        Some(_) => Err(ToolError::new(
            "invalid_arguments",
            format!("`{key}` must be a whole number >= 0"),
        )),
    }
}

/// Refuses runs of repositories outside the session's allowed roots.
fn check_run(
    runs: &dyn RunControl,
    ctx: &ToolContext,
    run_id: &str,
) -> Result<RunRecord, ToolError> {
    let rec = runs.status(run_id).map_err(engine_error)?;
    let repo = Path::new(&rec.repo_root);
    if ctx.sandbox.contains(repo) {
        Ok(rec)
    } else {
        Err(ToolError::new(
            "path_not_allowed",
            format!(
                "run {run_id} belongs to {}, outside this chat's allowed roots",
                rec.repo_root
            ),
        ))
    }
}

fn cut(text: &str, max: usize) -> String {
    let head = noctune_core::text::prefix_chars(text, max);
    if head.len() == text.len() {
        return text.to_string();
    }
    format!("{head}… [{} more chars]", text.len() - head.len())
}

fn record_json(rec: &RunRecord) -> Value {
    json!({
        "run_id": rec.run_id.to_string(),
        "status": rec.status.as_str(),
        "pack": rec.pack,
        "branch": rec.branch,
        "stage": rec.stage,
        "error": rec.error,
        "started_at": rec.started_at,
        "ended_at": rec.ended_at,
    })
}

// The tools' arguments: only the published schemas are derived from these (`call` parses
// leniently with `str_arg`/`opt_u64`); doc comments are the descriptions the model sees.

#[derive(Deserialize, JsonSchema)]
#[allow(dead_code)]
struct StartArgs {
    /// policy pack name, e.g. lint_fix
    pack: String,
    /// model profile for llm packs (optional)
    #[serde(default)]
    profile: Option<String>,
}

#[derive(Deserialize, JsonSchema)]
#[allow(dead_code)]
struct StopArgs {
    run_id: String,
}

#[derive(Deserialize, JsonSchema)]
#[allow(dead_code)]
struct EventsArgs {
    run_id: String,
    #[serde(default)]
    cursor: Option<u64>,
    #[serde(default)]
    #[schemars(range(min = 1, max = MAX_EVENTS))]
    limit: Option<u64>,
}

#[derive(Deserialize, JsonSchema)]
#[allow(dead_code)]
struct ApprovalsArgs {
    run_id: String,
    #[serde(default)]
    pending_only: Option<bool>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
enum DecisionArg {
    Approve,
    Reject,
}

#[derive(Deserialize, JsonSchema)]
#[allow(dead_code)]
struct DecideArgs {
    run_id: String,
    approval_id: String,
    decision: DecisionArg,
    #[serde(default)]
    reason: Option<String>,
}

struct NoctuneStart(Arc<dyn RunControl>);

impl Tool for NoctuneStart {
    fn name(&self) -> &'static str {
        "noctuneStart"
    }
    fn description(&self) -> &'static str {
        "Start a Noctune policy-pack run on this repository (lint_fix, typing_pass, py_upgrade, \
         deps_bump or a configured pack). The run works on its own git worktree and branch; \
         follow it with noctuneEvents and decide its approvals with noctuneDecide."
    }
    fn parameters(&self) -> Value {
        args_schema::<StartArgs>()
    }
    fn class(&self) -> ToolClass {
        ToolClass::Run
    }
    fn call(&self, ctx: &ToolContext, args: &Value) -> Result<Value, ToolError> {
        let req = StartRequest {
            repo: ctx.repo_root.clone(),
            pack: str_arg(args, "pack")?.to_string(),
            profile: opt_str(args, "profile").map(str::to_string),
        };
        let rec = self.0.start(&req).map_err(engine_error)?;
        let mut out = record_json(&rec);
        out["message"] = json!(format!(
            "run {} started; follow it with noctuneEvents {{\"run_id\": \"{}\"}}",
            rec.run_id, rec.run_id
        ));
        Ok(out)
    }
}

struct NoctuneStop(Arc<dyn RunControl>);

impl Tool for NoctuneStop {
    fn name(&self) -> &'static str {
        "noctuneStop"
    }
    fn description(&self) -> &'static str {
        "Stop a running Noctune run (cooperatively, then by force after the grace period)."
    }
    fn parameters(&self) -> Value {
        args_schema::<StopArgs>()
    }
    fn class(&self) -> ToolClass {
        ToolClass::Run
    }
    fn call(&self, ctx: &ToolContext, args: &Value) -> Result<Value, ToolError> {
        let run_id = str_arg(args, "run_id")?;
        check_run(self.0.as_ref(), ctx, run_id)?;
        let rec = self.0.stop(run_id).map_err(engine_error)?;
        Ok(record_json(&rec))
    }
}

struct NoctuneEvents(Arc<dyn RunControl>);

impl Tool for NoctuneEvents {
    fn name(&self) -> &'static str {
        "noctuneEvents"
    }
    fn description(&self) -> &'static str {
        "Read a run's events from a cursor (0 = from the start). Returns the events, the run's \
         status and next_cursor to pass next time. Heartbeats are left out."
    }
    fn parameters(&self) -> Value {
        args_schema::<EventsArgs>()
    }
    fn class(&self) -> ToolClass {
        ToolClass::Read
    }
    fn call(&self, ctx: &ToolContext, args: &Value) -> Result<Value, ToolError> {
        let run_id = str_arg(args, "run_id")?;
        let cursor = opt_u64(args, "cursor")?.unwrap_or(0);
        let limit =
            opt_u64(args, "limit")?.map_or(DEFAULT_EVENTS, |l| (l as usize).clamp(1, MAX_EVENTS));
        let rec = check_run(self.0.as_ref(), ctx, run_id)?;
        let events = self.0.events(run_id, cursor, limit).map_err(engine_error)?;
        let next_cursor = events.last().map_or(cursor, |e| e.idx + 1);
        let shown: Vec<Value> = events
            .iter()
            .filter(|e| e.kind != "heartbeat")
            .map(|e| {
                let payload = e.payload.to_string();
                let payload = if payload.len() > MAX_PAYLOAD_CHARS {
                    Value::String(cut(&payload, MAX_PAYLOAD_CHARS))
                } else {
                    e.payload.clone()
                };
                json!({"idx": e.idx, "ts": e.ts, "type": e.kind, "payload": payload})
            })
            .collect();
        Ok(json!({
            "run_id": run_id,
            "status": rec.status.as_str(),
            "events": shown,
            "next_cursor": next_cursor,
            "more": events.len() == limit,
        }))
    }
}

struct NoctuneApprovals(Arc<dyn RunControl>);

impl Tool for NoctuneApprovals {
    fn name(&self) -> &'static str {
        "noctuneApprovals"
    }
    fn description(&self) -> &'static str {
        "List a run's approvals (proposed edits) with their status, risk and diff."
    }
    fn parameters(&self) -> Value {
        args_schema::<ApprovalsArgs>()
    }
    fn class(&self) -> ToolClass {
        ToolClass::Read
    }
    fn call(&self, ctx: &ToolContext, args: &Value) -> Result<Value, ToolError> {
        let run_id = str_arg(args, "run_id")?;
        let pending_only = args
            .get("pending_only")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        check_run(self.0.as_ref(), ctx, run_id)?;
        let list = self.0.approvals(run_id).map_err(engine_error)?;
        let items: Vec<Value> = list
            .iter()
            .filter(|a| !pending_only || a.status == noctune_core::ApprovalStatus::Pending)
            .map(|a| {
                json!({
                    "approval_id": a.approval_id,
                    "file_path": a.file_path,
                    "symbol": a.symbol,
                    "status": a.status,
                    "risk_score": a.risk_score,
                    "lines_changed": a.lines_changed,
                    "reason": a.reason,
                    "diff": cut(&a.diff, MAX_DIFF_CHARS),
                })
            })
            .collect();
        Ok(json!({"run_id": run_id, "approvals": items}))
    }
}

struct NoctuneDecide(Arc<dyn RunControl>);

impl Tool for NoctuneDecide {
    fn name(&self) -> &'static str {
        "noctuneDecide"
    }
    fn description(&self) -> &'static str {
        "Approve or reject one pending approval of a run. Only do this when the user asked for \
         that decision."
    }
    fn parameters(&self) -> Value {
        args_schema::<DecideArgs>()
    }
    fn class(&self) -> ToolClass {
        ToolClass::Decide
    }
    fn call(&self, ctx: &ToolContext, args: &Value) -> Result<Value, ToolError> {
        let run_id = str_arg(args, "run_id")?;
        let approval_id = str_arg(args, "approval_id")?;
        let decision = Decision::parse(&str_arg(args, "decision")?.to_ascii_lowercase())
            .ok_or_else(|| {
                ToolError::new("invalid_arguments", "`decision` must be approve or reject")
            })?;
        let reason = opt_str(args, "reason").unwrap_or("decided in chat");
        check_run(self.0.as_ref(), ctx, run_id)?;
        let by = format!("chat:{}", ctx.session_id);
        let d = self
            .0
            .decide(run_id, approval_id, decision, reason, &by)
            .map_err(engine_error)?;
        Ok(json!({
            "run_id": run_id,
            "approval_id": d.approval_id.to_string(),
            "decision": d.decision.as_str(),
            "decided_by": d.decided_by,
            "decided_at": d.decided_at,
        }))
    }
}
