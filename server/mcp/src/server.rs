//! The MCP server: six tools that translate into `Studio` calls. The same handler serves stdio
//! (`noctune mcp`) and Streamable HTTP (`/mcp`).
//!
//! Every tool declares an input schema, an output schema (the `structuredContent` of a
//! success) and, in its `_meta`, the schema of its error results. Studio calls block (SQLite,
//! files, waiting for a worker), so each runs on tokio's blocking pool.

use super::errors::{ERROR_META_KEY, into_result, parse_args};
use super::types::*;
// Published schemas use JSON Schema 2020-12's formats only: the facade's rule, shared with the
// HTTP OpenAPI document.
use noctune_studio::schema::standard_formats_only_object as standard_formats_only;
use noctune_studio::{ApprovalStatus, ErrorCode, OpError, StartRequest, Studio};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::{schema_for_input, schema_for_output};
use rmcp::model::{CallToolResult, JsonObject, MetaObject};
use rmcp::service::RequestContext;
use rmcp::{RoleServer, ServerHandler, tool, tool_handler, tool_router};
use schemars::JsonSchema;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone)]
pub struct NoctuneMcp {
    studio: Arc<Studio>,
    tool_router: ToolRouter<Self>,
}

fn input<T: JsonSchema + 'static>() -> Arc<JsonObject> {
    // The input types are structs, so their schema root is always an object.
    let schema = schema_for_input::<T>().unwrap_or_else(|_| Arc::new(JsonObject::new()));
    Arc::new(standard_formats_only((*schema).clone()))
}

fn output<T: JsonSchema + 'static>() -> Arc<JsonObject> {
    Arc::new(standard_formats_only((*schema_for_output::<T>()).clone()))
}

fn error_meta() -> MetaObject {
    let mut m = JsonObject::new();
    m.insert(
        ERROR_META_KEY.into(),
        serde_json::Value::Object((*output::<ToolErrorOut>()).clone()),
    );
    MetaObject(m)
}

fn success<T: Serialize>(value: &T) -> CallToolResult {
    match serde_json::to_value(value) {
        Ok(v) => CallToolResult::structured(v),
        Err(e) => into_result(OpError::new(
            ErrorCode::Internal,
            format!("cannot encode the result: {e}"),
        )),
    }
}

fn finish<T: Serialize>(r: Result<T, OpError>) -> CallToolResult {
    match r {
        Ok(v) => success(&v),
        Err(e) => into_result(e),
    }
}

use noctune_studio::blocking_io as blocking;

/// `mcp:<clientInfo.name>`: from the per-request `_meta` (protocol 2026-07-28) or from the
/// `initialize` request (earlier protocols).
pub fn decided_by(ctx: &RequestContext<RoleServer>) -> String {
    let name = ctx
        .meta
        .client_info()
        .map(|i| i.name)
        .or_else(|| ctx.peer.peer_info().map(|p| p.client_info.name.clone()))
        .unwrap_or_default();
    let clean: String = name.chars().filter(|c| !c.is_control()).take(100).collect();
    let clean = clean.trim();
    format!(
        "mcp:{}",
        if clean.is_empty() {
            "unknown-client"
        } else {
            clean
        }
    )
}

impl NoctuneMcp {
    /// The server of `studio`, whose roots decide which repositories runs may start on.
    pub fn new(studio: Arc<Studio>) -> NoctuneMcp {
        NoctuneMcp {
            studio,
            tool_router: Self::tool_router(),
        }
    }

    /// The declared tools (for `tools/list`, tests and documentation).
    pub fn tools(&self) -> Vec<rmcp::model::Tool> {
        self.tool_router.list_all()
    }
}

#[tool_router]
impl NoctuneMcp {
    #[tool(
        name = "enqueue_run",
        description = "Start a run of a policy pack on a git repository. Returns the run's state \
                       (run.json) as soon as it exists; the run goes on in the background. Follow \
                       it with tail_events or get_status.",
        input_schema = input::<EnqueueRunArgs>(),
        output_schema = output::<RunView>(),
        meta = error_meta(),
        annotations(read_only_hint = false, destructive_hint = false, idempotent_hint = false, open_world_hint = false)
    )]
    async fn enqueue_run(&self, args: JsonObject) -> CallToolResult {
        let studio = self.studio.clone();
        finish(
            blocking(move || -> Result<_, OpError> {
                let a: EnqueueRunArgs = parse_args("enqueue_run", args)?;
                let req = StartRequest {
                    repo: PathBuf::from(&a.repo_root),
                    pack: a.pack,
                    profile: a.profile,
                };
                Ok(RunView::from(studio.start_run(&req)?))
            })
            .await,
        )
    }

    #[tool(
        name = "get_status",
        description = "A run's state (its run.json after a liveness check: a dead worker makes \
                       the run failed with the reason in `error`).",
        input_schema = input::<RunIdArgs>(),
        output_schema = output::<RunView>(),
        meta = error_meta(),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn get_status(&self, args: JsonObject) -> CallToolResult {
        let studio = self.studio.clone();
        finish(
            blocking(move || -> Result<_, OpError> {
                let a: RunIdArgs = parse_args("get_status", args)?;
                Ok(RunView::from(studio.status(&a.run_id)?))
            })
            .await,
        )
    }

    #[tool(
        name = "tail_events",
        description = "A page of a run's events from `cursor` (0 = the beginning). Call again \
                       with `next_cursor` for the following ones; stop when `status` is terminal \
                       and `more` is false.",
        input_schema = input::<TailEventsArgs>(),
        output_schema = output::<EventsPage>(),
        meta = error_meta(),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn tail_events(&self, args: JsonObject) -> CallToolResult {
        let studio = self.studio.clone();
        finish(
            blocking(move || -> Result<_, OpError> {
                let a: TailEventsArgs = parse_args("tail_events", args)?;
                let limit = a.limit.unwrap_or(DEFAULT_EVENT_LIMIT);
                if !(1..=MAX_EVENT_LIMIT).contains(&limit) {
                    return Err(OpError::invalid(format!(
                        "limit {limit} is out of range; pass 1 to {MAX_EVENT_LIMIT}"
                    )));
                }
                // Status first: if it is terminal, the events read after it are complete.
                let status = studio.status(&a.run_id)?.status;
                let events = studio.events(&a.run_id, a.cursor, limit as usize)?;
                let next_cursor = events.last().map(|e| e.idx + 1).unwrap_or(a.cursor);
                let more = events.len() >= limit as usize;
                Ok(EventsPage {
                    run_id: a.run_id,
                    status,
                    events,
                    next_cursor,
                    more,
                })
            })
            .await,
        )
    }

    #[tool(
        name = "list_approvals",
        description = "A run's approvals: each proposed edit that needed a decision, with its \
                       diff, risk score, status (pending, approved, rejected, auto_approved, \
                       tampered: its recorded content is not what its id names, so it cannot be \
                       decided and is never applied) and decision.",
        input_schema = input::<RunIdArgs>(),
        output_schema = output::<ApprovalList>(),
        meta = error_meta(),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn list_approvals(&self, args: JsonObject) -> CallToolResult {
        let studio = self.studio.clone();
        finish(
            blocking(move || -> Result<_, OpError> {
                let a: RunIdArgs = parse_args("list_approvals", args)?;
                let approvals = studio.approvals(&a.run_id)?;
                let pending = approvals
                    .iter()
                    .filter(|x| x.status == ApprovalStatus::Pending)
                    .count() as u32;
                Ok(ApprovalList {
                    run_id: a.run_id,
                    approvals,
                    pending,
                })
            })
            .await,
        )
    }

    #[tool(
        name = "decide_approval",
        description = "Approve or reject a pending edit of a run, by approval_id; or with \
                       all_pending: true (and no approval_id) every pending edit of the run that \
                       glob and max_risk pick, each recorded as its own decision, answering each \
                       approval's outcome (decided, or skipped with the reason: already decided, \
                       auto-approved, tampered, glob or risk, refused). A decision is final and \
                       recorded with this client's name (decided_by = mcp:<client name>).",
        input_schema = input::<DecideApprovalArgs>(),
        output_schema = output::<DecideApprovalOut>(),
        meta = error_meta(),
        annotations(read_only_hint = false, destructive_hint = false, idempotent_hint = false, open_world_hint = false)
    )]
    async fn decide_approval(
        &self,
        args: JsonObject,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let studio = self.studio.clone();
        let by = decided_by(&ctx);
        finish(
            blocking(move || -> Result<_, OpError> {
                let a: DecideApprovalArgs = parse_args("decide_approval", args)?;
                let decision = Studio::parse_decision(&a.decision)?;
                Ok(match a.target()? {
                    DecideTarget::One(id) => DecideApprovalOut::One(
                        studio.decide(&a.run_id, &id, decision, &a.reason, &by)?,
                    ),
                    DecideTarget::AllPending(filter) => DecideApprovalOut::Many(
                        studio.decide_many(&a.run_id, &filter, decision, &a.reason, &by)?,
                    ),
                })
            })
            .await,
        )
    }

    #[tool(
        name = "stop_run",
        description = "Stop a run: cooperatively first, then the worker is killed after the grace \
                       period. Returns the final state (stopped).",
        input_schema = input::<StopRunArgs>(),
        output_schema = output::<RunView>(),
        meta = error_meta(),
        annotations(read_only_hint = false, destructive_hint = true, idempotent_hint = false, open_world_hint = false)
    )]
    async fn stop_run(&self, args: JsonObject) -> CallToolResult {
        let studio = self.studio.clone();
        finish(
            blocking(move || -> Result<_, OpError> {
                let a: StopRunArgs = parse_args("stop_run", args)?;
                let grace = a.grace_secs.map(|s| Duration::from_secs(s.min(600)));
                Ok(RunView::from(studio.stop(&a.run_id, grace)?))
            })
            .await,
        )
    }
}

#[tool_handler(
    router = self.tool_router,
    name = "noctune",
    instructions = "Noctune Studio runs policy packs (lint_fix, typing_pass, py_upgrade, deps_bump) on git repositories. Flow: enqueue_run -> tail_events (until an approval_requested event or a terminal status) -> list_approvals -> decide_approval (one approval, or all_pending) -> tail_events until status is done; stop_run ends a run early."
)]
impl ServerHandler for NoctuneMcp {}
