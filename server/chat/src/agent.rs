//! The turn loop: one user message in, a streamed answer out, with as many tool rounds as the
//! model needs (capped).
//!
//! Per round: build the request (system prompt with the repo overview, the conversation trimmed
//! to the context window, native `tools` or the prompt-mode protocol), stream it, then run the
//! calls the model made, each through the permission gate, and loop with their results.
//!
//! What keeps a session consistent whatever happens: the messages of a round (the assistant's
//! calls and their results) are appended only once the round's answer is complete, so a model
//! error (server down, HTTP 500, malformed chunk, stream cut mid-call) or a cancel never leaves
//! half a call in the history. The user's message stays whatever happens: the caller records
//! how a turn that ended without an answer ended (`ChatService::send`).
//!
//! Tool modes (`ModelProfile::tool_mode`): `native` sends OpenAI `tools`; `prompt` teaches a
//! text protocol and parses calls from the answer (`prompt_tools`); `auto` starts native and
//! falls back to prompt mode for the rest of the session when the server rejects `tools` (the
//! same round is retried at once) or the model prints a call as text instead of calling.

use super::context::{self, Budget};
use super::permissions::{Check, PermissionAnswer, PermissionGate, PermissionRequest};
use super::prompt_tools::{self, StreamFilter};
use super::session::{GrantNote, Session};
use super::tool::{Tool, ToolClass, ToolContext, ToolError};
use noctune_config::{ModelProfile, ToolMode};
use noctune_llm::{
    CancelToken, ChatMessage, ChatOutcome, ChatRequest, LlmClient, LlmError, Role,
    ServerCapabilities, StreamEvent, Timings, ToolCall, ToolSpec, Usage,
};
use noctune_sandbox::Intent;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// Tool rounds per turn; the round after the last gets no tools, so the model must answer.
pub const MAX_TOOL_ROUNDS: usize = 8;
/// The key under which arguments that are no JSON object are kept (see `gated_call`).
const INVALID_ARGS: &str = "_unreadable_arguments";
/// A selection attached to a message is cut to this many characters.
const MAX_SELECTION_CHARS: usize = 8000;
/// Why `auto` describes the tools in the prompt when the server says its template has none.
const NO_TOOL_TEMPLATE: &str = "the model's chat template has no tool support (server /props: \
                                supports_tools false); tools are described in the prompt";
/// The once-per-session warning of `tool_mode = native` on such a server.
const NATIVE_WITHOUT_TOOLS: &str = "tool_mode is native but the model's chat template has no \
                                    tool support (server /props: supports_tools false): the \
                                    model will see no tools; set tool_mode to auto or prompt";
/// `finish_reason` of an answer stopped because it repeated itself.
const REPETITION: &str = "repetition";

/// A context this small (tokens) is a small local model's: `auto` prefers the prompt protocol
/// there when native tool schemas would take over a third of it.
const SMALL_WINDOW: usize = 4096;

/// What a surface sees of a turn, in order. Serialised as `{"type": "delta", ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ChatEvent {
    /// A piece of the visible answer.
    Delta { text: String },
    /// A piece of the model's thinking (`reasoning_content`), not part of the answer.
    Reasoning { text: String },
    /// A tool call about to run (after its permission check, if any, is asked for).
    ToolCall {
        id: String,
        name: String,
        arguments: Value,
    },
    ToolResult {
        id: String,
        name: String,
        ok: bool,
        result: Value,
    },
    /// The gate asks the user; the surface's [`Prompter`] is called right after.
    PermissionRequest(PermissionRequest),
    /// Something the user should know that is not an answer: a tool-mode fallback, trimming.
    Notice { message: String },
    /// The turn ended normally (`finish_reason` `cancelled` when stopped by the user).
    Done {
        finish_reason: String,
        usage: Option<Usage>,
        timings: Option<Timings>,
    },
    /// The turn ended on an error; the session stays usable.
    Error { message: String },
}

/// How a surface answers permission prompts. A boxed future instead of `async fn` keeps the
/// trait object-safe without the async-trait crate.
pub trait Prompter: Send + Sync {
    fn ask<'a>(
        &'a self,
        req: &'a PermissionRequest,
    ) -> Pin<Box<dyn Future<Output = PermissionAnswer> + Send + 'a>>;

    /// Who answers, for the audit DB (`granted_by`).
    fn actor(&self) -> String {
        "user".to_string()
    }
}

/// Nobody can answer (a non-interactive surface without `--allow`): every ask is denied, so
/// the model gets `*_not_allowed` and asks the user in its answer.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoPrompter;

impl Prompter for NoPrompter {
    fn ask<'a>(
        &'a self,
        _req: &'a PermissionRequest,
    ) -> Pin<Box<dyn Future<Output = PermissionAnswer> + Send + 'a>> {
        Box::pin(std::future::ready(PermissionAnswer::Deny))
    }
    fn actor(&self) -> String {
        "nobody (no prompter)".to_string()
    }
}

/// Answers every ask the same way (`noctune chat --allow once|session|always`). The gate
/// itself turns any grant for a protected path into a one-time one.
#[derive(Debug, Clone)]
pub struct FixedPrompter {
    pub answer: PermissionAnswer,
    pub actor: String,
}

impl Prompter for FixedPrompter {
    fn ask<'a>(
        &'a self,
        _req: &'a PermissionRequest,
    ) -> Pin<Box<dyn Future<Output = PermissionAnswer> + Send + 'a>> {
        Box::pin(std::future::ready(self.answer))
    }
    fn actor(&self) -> String {
        self.actor.clone()
    }
}

/// Where the user is, attached to a message by an editor or the web page, plus the editor's
/// hooks for this turn.
#[derive(Clone, Default)]
pub struct TurnContext {
    /// The document the user is looking at (repository-relative or absolute).
    pub document: Option<String>,
    /// The text selected in it.
    pub selection: Option<String>,
    /// Where edits land (an editor's `workspace/applyEdit`); default: the file on disk.
    pub edit_sink: Option<Arc<dyn super::tool::EditSink>>,
    /// Unsaved editor buffers.
    pub overlay: Option<Arc<dyn super::tool::BufferOverlay>>,
}

/// The tool mode a round actually used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModeUsed {
    Native,
    Prompt,
}

/// How a turn went, for the caller (the events carry the same, as it happens).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TurnSummary {
    pub session_id: String,
    /// The visible answer of the last round.
    pub answer: String,
    pub finish_reason: Option<String>,
    pub rounds: usize,
    pub tool_calls: usize,
    pub usage: Option<Usage>,
    pub timings: Option<Timings>,
    pub tool_mode: ModeUsed,
    /// Set when the turn ended on an error (the same message as the `Error` event).
    pub error: Option<String>,
    /// The error's stable code (`noctune_llm::LlmError::code`), with `error`.
    #[serde(default)]
    pub error_code: Option<String>,
}

/// Everything one turn uses, borrowed from the service.
pub struct TurnDeps<'a> {
    pub client: &'a LlmClient,
    pub profile: &'a ModelProfile,
    pub tools: &'a [Arc<dyn Tool>],
    pub gate: &'a PermissionGate,
    pub tool_ctx: ToolContext,
    pub overview: &'a str,
    pub prompter: &'a dyn Prompter,
    pub cancel: &'a CancelToken,
}

type Sink<'s> = &'s mut (dyn FnMut(ChatEvent) + Send);

/// Runs one turn on `session`. Never fails: errors end the turn with an `Error` event (and
/// `TurnSummary::error`), leaving the session consistent.
pub async fn run_turn(
    deps: &TurnDeps<'_>,
    session: &mut Session,
    message: &str,
    context: &TurnContext,
    on_event: Sink<'_>,
) -> TurnSummary {
    session
        .messages
        .push(ChatMessage::user(user_content(message, context)));
    let mut turn = Turn {
        deps,
        rounds: 0,
        calls: 0,
        usage: None,
        noticed_trim: false,
        caps: ServerCapabilities::unknown(),
        context_window: deps.profile.context_window,
    };
    turn.detect_capabilities(session, on_event).await;
    let result = turn.run(session, on_event).await;
    let mut summary = TurnSummary {
        session_id: session.id.clone(),
        answer: String::new(),
        finish_reason: None,
        rounds: turn.rounds,
        tool_calls: turn.calls,
        usage: turn.usage.clone(),
        timings: None,
        tool_mode: turn.mode(session),
        error: None,
        error_code: None,
    };
    match result {
        Ok(end) => {
            summary.answer = end.answer;
            summary.finish_reason = Some(end.finish_reason.clone());
            summary.timings = end.timings.clone();
            on_event(ChatEvent::Done {
                finish_reason: end.finish_reason,
                usage: summary.usage.clone(),
                timings: end.timings,
            });
        }
        Err(e) => {
            let message = e.to_string();
            summary.error = Some(message.clone());
            summary.error_code = Some(e.code().to_string());
            on_event(ChatEvent::Error { message });
        }
    }
    summary
}

/// Whether an answer ended as the model meant it to (`stop`, `tool_calls`) rather than being
/// cut off (`length`) or ending without a reason: only then may its text hold whole calls.
fn ended_normally(finish_reason: Option<&str>) -> bool {
    matches!(finish_reason, Some("stop" | "tool_calls"))
}

/// The message as sent: the user's text plus where they are.
fn user_content(message: &str, context: &TurnContext) -> String {
    let mut out = message.to_string();
    if let Some(doc) = context.document.as_deref().filter(|d| !d.is_empty()) {
        out.push_str(&format!("\n\n[The user is looking at `{doc}`.]"));
    }
    if let Some(sel) = context
        .selection
        .as_deref()
        .filter(|s| !s.trim().is_empty())
    {
        let cut = match sel.char_indices().nth(MAX_SELECTION_CHARS) {
            Some((end, _)) => format!("{}\n[… selection cut]", &sel[..end]),
            None => sel.to_string(),
        };
        out.push_str(&format!("\n\n[Selected text:]\n```\n{cut}\n```"));
    }
    out
}

struct RoundEnd {
    answer: String,
    finish_reason: String,
    timings: Option<Timings>,
}

struct Turn<'d, 'a> {
    deps: &'d TurnDeps<'a>,
    rounds: usize,
    calls: usize,
    usage: Option<Usage>,
    noticed_trim: bool,
    /// What the server said it can do at the start of the turn (unknown if it could not say).
    caps: ServerCapabilities,
    /// The context window requests are fitted to: the profile's, or the server's when the
    /// server reports a smaller one.
    context_window: u32,
}

impl Turn<'_, '_> {
    /// Asks the server what it can do, before the first request: llama-server silently drops
    /// native `tools` its chat template cannot render, so waiting for an error would never
    /// tell. A server that cannot be asked is treated as unknown (the chat request reports it).
    async fn detect_capabilities(&mut self, session: &mut Session, on_event: Sink<'_>) {
        let caps = tokio::select! {
            c = self.deps.client.server_capabilities() => c.unwrap_or_default(),
            _ = self.deps.cancel.cancelled() => ServerCapabilities::unknown(),
        };
        let profile = self.deps.profile;
        if caps.supports_tools == Some(false) && !self.deps.tools.is_empty() {
            match profile.tool_mode {
                ToolMode::Auto if !session.prompt_tools => {
                    session.prompt_tools = true;
                    session.fallback_reason = Some(NO_TOOL_TEMPLATE.into());
                    on_event(ChatEvent::Notice {
                        message: NO_TOOL_TEMPLATE.into(),
                    });
                }
                ToolMode::Native
                    if session.fallback_reason.as_deref() != Some(NATIVE_WITHOUT_TOOLS) =>
                {
                    session.fallback_reason = Some(NATIVE_WITHOUT_TOOLS.into());
                    on_event(ChatEvent::Notice {
                        message: format!("warning: {NATIVE_WITHOUT_TOOLS}"),
                    });
                }
                _ => {}
            }
        }
        self.fit_to_server_window(&caps, session, on_event);
        self.prefer_prompt_tools_in_a_small_window(session, on_event);
        self.caps = caps;
    }

    /// `auto` with a small context (≤ [`SMALL_WINDOW`]): native tool schemas cost ~1,400-1,900
    /// tokens (6-11 tools), most of a 2k window, where the prompt protocol describes the same
    /// tools in ~400. Using them would leave the conversation almost no room, so `auto` takes
    /// the prompt protocol.
    fn prefer_prompt_tools_in_a_small_window(&self, session: &mut Session, on_event: Sink<'_>) {
        let window = self.context_window as usize;
        // Only small windows: a model given 8k or more is a capable one, and native calls
        // are what it does best, even when many tools (an MCP server's) take a third of it.
        if self.deps.profile.tool_mode != ToolMode::Auto
            || session.prompt_tools
            || self.deps.tools.is_empty()
            || window > SMALL_WINDOW
        {
            return;
        }
        let native = context::estimate_tools(&self.tool_specs());
        if native * 3 <= window {
            return;
        }
        let why = format!(
            "the native tool schemas (~{native} tokens) would take most of the {window}-token \
             context; tools are described in the prompt instead (~400 tokens)"
        );
        session.prompt_tools = true;
        session.fallback_reason = Some(why.clone());
        on_event(ChatEvent::Notice { message: why });
    }

    /// Fits requests to the smaller of the profile's window and the server's: a profile that
    /// claims more than llama-server's per-slot `--ctx-size` would otherwise fail each long
    /// turn with an overflow first and trim only on the retry.
    fn fit_to_server_window(
        &mut self,
        caps: &ServerCapabilities,
        session: &mut Session,
        on_event: Sink<'_>,
    ) {
        let profile_window = self.deps.profile.context_window;
        let Some(server) = caps.context_window.filter(|n| *n < profile_window) else {
            session.server_context_window = None;
            return;
        };
        self.context_window = server;
        if session.server_context_window != Some(server) {
            session.server_context_window = Some(server);
            on_event(ChatEvent::Notice {
                message: format!(
                    "the model server's context is {server} tokens per request, smaller than \
                     the profile's context_window ({profile_window}): fitting requests to \
                     {server} (set context_window = {server} in the profile to match)"
                ),
            });
        }
    }

    fn mode(&self, session: &Session) -> ModeUsed {
        match self.deps.profile.tool_mode {
            ToolMode::Native => ModeUsed::Native,
            ToolMode::Prompt => ModeUsed::Prompt,
            ToolMode::Auto if session.prompt_tools => ModeUsed::Prompt,
            ToolMode::Auto => ModeUsed::Native,
        }
    }

    /// The turn's tools as the model is told of them (native schemas; the prompt protocol
    /// is written from the same specs).
    fn tool_specs(&self) -> Vec<ToolSpec> {
        self.deps
            .tools
            .iter()
            .map(|t| ToolSpec::function(t.name(), t.description(), t.parameters()))
            .collect()
    }

    fn known_names(&self) -> Vec<&'static str> {
        self.deps.tools.iter().map(|t| t.name()).collect()
    }

    async fn run(
        &mut self,
        session: &mut Session,
        on_event: Sink<'_>,
    ) -> Result<RoundEnd, LlmError> {
        loop {
            if self.deps.cancel.is_cancelled() {
                return Ok(self.cancelled());
            }
            let offer_tools = self.rounds < MAX_TOOL_ROUNDS && !self.deps.tools.is_empty();
            let outcome = match self.stream_round(session, offer_tools, on_event).await {
                Ok(o) => o,
                Err(LlmError::Cancelled) => return Ok(self.cancelled()),
                Err(e) => return Err(e),
            };
            self.add_usage(outcome.usage.as_ref());
            let mode = self.mode(session);
            let known = self.known_names();

            // The calls of this round: native ones, or calls printed as text.
            let mut visible = outcome.content.clone();
            let mut calls: Vec<ToolCall> = Vec::new();
            for c in &outcome.tool_calls {
                // Stored and sent back as valid JSON whatever the model wrote: servers parse
                // the arguments of earlier calls when they render the chat template.
                let args = prompt_tools::parse_arguments(&c.function.arguments)
                    .unwrap_or_else(|| json!({ INVALID_ARGS: c.function.arguments }))
                    .to_string();
                calls.push(ToolCall::function(
                    c.id.clone(),
                    c.function.name.clone(),
                    args,
                ));
            }
            let texts_may_call =
                mode == ModeUsed::Prompt || self.deps.profile.tool_mode == ToolMode::Auto;
            if calls.is_empty() && texts_may_call && offer_tools {
                let parsed = prompt_tools::parse_reply(&outcome.content, &known);
                if !parsed.calls.is_empty() {
                    if mode == ModeUsed::Native {
                        session.prompt_tools = true;
                        session.fallback_reason =
                            Some("the model printed a tool call as text".into());
                        on_event(ChatEvent::Notice {
                            message: "the model printed a tool call as text instead of calling \
                                      it; using prompt-mode tool calls for the rest of this session"
                                .into(),
                        });
                    }
                    visible = parsed.visible;
                    let base = session.messages.len();
                    for (i, c) in parsed.calls.into_iter().enumerate() {
                        let args = match c.arguments {
                            Value::Object(_) => c.arguments.to_string(),
                            other => json!({ INVALID_ARGS: other }).to_string(),
                        };
                        calls.push(ToolCall::function(
                            format!("call_t{base}_{i}"),
                            c.name,
                            args,
                        ));
                    }
                } else if let Some(at) = prompt_tools::first_cut_call(
                    &outcome.content,
                    ended_normally(outcome.finish_reason.as_deref()),
                ) {
                    // A call cut off before it could be read (often before its name): not an
                    // answer, and not to be run. It is recorded as the call it began, so the
                    // model is told below that it was cut off and asked again.
                    let call_text = &outcome.content[at..];
                    visible = outcome.content[..at].trim_end().to_string();
                    calls.push(ToolCall::function(
                        format!("call_t{}_cut", session.messages.len()),
                        prompt_tools::cut_call_name(call_text).unwrap_or_else(|| "tool".into()),
                        json!({ INVALID_ARGS: call_text }).to_string(),
                    ));
                }
            }
            if !offer_tools || outcome.finish_reason.as_deref() == Some(REPETITION) {
                // The last round, or an answer stopped mid-loop: an answer is all we take.
                calls.clear();
            }
            if mode == ModeUsed::Prompt || texts_may_call {
                // Only Noctune writes results; one the model wrote is made up.
                visible = prompt_tools::strip_invented_results(&visible);
            }
            // A call is run only when its text is whole: never from an answer cut off by
            // max_tokens (its arguments would be "repaired" into something the model never
            // meant, e.g. a writeFile that drops half a file).
            let ended_normally = ended_normally(outcome.finish_reason.as_deref());
            let cut_off = !calls.is_empty()
                && (outcome.finish_reason.as_deref() == Some("length")
                    || outcome.tool_calls.iter().any(|c| {
                        prompt_tools::arguments_cut_off(&c.function.arguments, ended_normally)
                    })
                    || (outcome.tool_calls.is_empty()
                        && prompt_tools::calls_cut_off(&outcome.content, ended_normally)));

            let finish_reason = outcome
                .finish_reason
                .clone()
                .unwrap_or_else(|| "stop".into());
            session.messages.push(ChatMessage {
                role: Role::Assistant,
                content: (!visible.is_empty() || calls.is_empty()).then(|| visible.clone()),
                reasoning_content: (!outcome.reasoning.is_empty())
                    .then(|| outcome.reasoning.clone()),
                tool_calls: (!calls.is_empty()).then(|| calls.clone()),
                ..ChatMessage::default()
            });
            if calls.is_empty() {
                if finish_reason == "length" {
                    on_event(ChatEvent::Notice {
                        message: format!(
                            "answer cut off at {} tokens (max_tokens)",
                            self.completion_tokens(&outcome)
                        ),
                    });
                }
                return Ok(RoundEnd {
                    answer: visible,
                    finish_reason,
                    timings: outcome.timings,
                });
            }
            self.rounds += 1;
            if cut_off {
                let how = if finish_reason == "length" {
                    format!(
                        "was cut off at {} tokens (max_tokens)",
                        self.completion_tokens(&outcome)
                    )
                } else {
                    "arrived unfinished (its arguments end mid-value)".to_string()
                };
                for call in &calls {
                    let name = call.function.name.clone();
                    on_event(ChatEvent::Notice {
                        message: format!(
                            "the model's {name} call {how} and was not run; the model is asked \
                             to retry with a shorter call"
                        ),
                    });
                    let error = ToolError::new(
                        "call_cut_off",
                        format!(
                            "this {name} call {how}, so it was NOT run and nothing changed. Retry \
                             with a shorter call: change a file with editFile or replaceLines \
                             instead of writing it whole, or split the work into several calls."
                        ),
                    );
                    let mut msg =
                        ChatMessage::tool_result(call.id.clone(), error.to_json().to_string());
                    msg.name = Some(name);
                    session.messages.push(msg);
                }
                continue;
            }
            for call in &calls {
                let (name, result) = self.run_call(session, call, on_event).await;
                self.calls += 1;
                let mut msg = ChatMessage::tool_result(call.id.clone(), result.to_string());
                msg.name = Some(name);
                session.messages.push(msg);
            }
        }
    }

    /// The tokens an answer took, as the server counted them (else the profile's max_tokens).
    fn completion_tokens(&self, outcome: &ChatOutcome) -> String {
        outcome
            .usage
            .as_ref()
            .map(|u| u.completion_tokens)
            .filter(|n| *n > 0)
            .or(self.deps.profile.max_tokens.map(u64::from))
            .map_or_else(|| "the server's limit of".into(), |n| n.to_string())
    }

    fn cancelled(&self) -> RoundEnd {
        RoundEnd {
            answer: String::new(),
            finish_reason: "cancelled".into(),
            timings: None,
        }
    }

    fn add_usage(&mut self, usage: Option<&Usage>) {
        let Some(u) = usage else { return };
        let total = self.usage.get_or_insert_with(Usage::default);
        total.prompt_tokens += u.prompt_tokens;
        total.completion_tokens += u.completion_tokens;
        total.total_tokens += u.total_tokens;
    }

    /// One model request with its retries: once in prompt mode when `auto` finds native tools
    /// rejected, once with a harder trim when the server reports a context overflow.
    async fn stream_round(
        &mut self,
        session: &mut Session,
        offer_tools: bool,
        on_event: Sink<'_>,
    ) -> Result<ChatOutcome, LlmError> {
        let mut budget: Option<Budget> = None;
        let mut overflow_retried = false;
        let mut recounted = false;
        loop {
            let mode = self.mode(session);
            let (request, used_budget, estimated) =
                self.build_request(session, mode, offer_tools, budget, on_event);
            let tools_tokens = request.tools.as_deref().map_or(0, context::estimate_tools);
            let mut counted = None;
            // Counting costs two round trips before the answer; it matters only near the
            // window. The estimate undercounts dense text by up to ~2x (numbered code), so a
            // prompt estimated under half the budget fits whatever the tokenizer.
            let fits_for_sure = (estimated + tools_tokens) * 2
                < Budget::for_window(self.context_window, self.deps.profile.max_tokens, 0)
                    .prompt_tokens;
            if !recounted && !fits_for_sure && self.caps.can_count_tokens() {
                // The server's own count, when it can give one: our estimate may be far off
                // for its tokenizer.
                recounted = true;
                counted = tokio::select! {
                    c = self.deps.client.count_tokens(&request.messages, request.tools.as_deref()) => c,
                    _ = self.deps.cancel.cancelled() => return Err(LlmError::Cancelled),
                }
                .ok()
                .flatten();
            }
            // Over the window by the server's count (it would refuse the request): rebuilt
            // once with a budget rescaled to its tokenizer.
            let fits = Budget::for_window(self.context_window, self.deps.profile.max_tokens, 0);
            if let Some(counted) = counted
                && counted > fits.prompt_tokens
            {
                budget = Some(used_budget.recounted(estimated + tools_tokens, counted));
                continue;
            }
            let known = self.known_names();
            let filter_text =
                mode == ModeUsed::Prompt || self.deps.profile.tool_mode == ToolMode::Auto;
            let mut filter = filter_text.then(|| StreamFilter::new(&known));
            // Stops the request when the answer starts repeating itself.
            let round_cancel = CancelToken::new();
            let mut content = String::new();
            let mut looped = false;
            let result = {
                let filter = &mut filter;
                let (content, looped) = (&mut content, &mut looped);
                let round_cancel = round_cancel.clone();
                let mut forward = |e: StreamEvent| match e {
                    StreamEvent::ContentDelta(text) => {
                        if *looped {
                            return;
                        }
                        content.push_str(&text);
                        let shown = match filter.as_mut() {
                            Some(f) => f.feed(&text),
                            None => text,
                        };
                        if !shown.is_empty() {
                            on_event(ChatEvent::Delta { text: shown });
                        }
                        if prompt_tools::repeats_itself(content) {
                            *looped = true;
                            round_cancel.cancel();
                        }
                    }
                    StreamEvent::ReasoningDelta(text) => on_event(ChatEvent::Reasoning { text }),
                    _ => {}
                };
                let user_cancel = self.deps.cancel;
                tokio::select! {
                    r = self.deps.client.stream_chat(&request, &round_cancel, &mut forward) => r,
                    _ = user_cancel.cancelled() => Err(LlmError::Cancelled),
                }
            };
            if let Some(f) = filter.as_mut() {
                let whole = result
                    .as_ref()
                    .is_ok_and(|o| ended_normally(o.finish_reason.as_deref()));
                let rest = f.finish(whole);
                if !rest.is_empty() && (result.is_ok() || looped) {
                    on_event(ChatEvent::Delta { text: rest });
                }
            }
            if looped && !self.deps.cancel.is_cancelled() {
                on_event(ChatEvent::Notice {
                    message: "stopped: the answer repeats itself".into(),
                });
                // What was said up to the loop is the answer; no call is taken from it.
                return Ok(ChatOutcome {
                    content,
                    finish_reason: Some(REPETITION.into()),
                    ..ChatOutcome::default()
                });
            }
            match result {
                Err(e)
                    if e.is_tools_rejected()
                        && mode == ModeUsed::Native
                        && request.tools.is_some()
                        && self.deps.profile.tool_mode == ToolMode::Auto =>
                {
                    session.prompt_tools = true;
                    session.fallback_reason = Some(e.to_string());
                    on_event(ChatEvent::Notice {
                        message: format!(
                            "the model server does not accept native tools ({e}); using \
                             prompt-mode tool calls for the rest of this session"
                        ),
                    });
                }
                Err(LlmError::ContextOverflow {
                    n_prompt_tokens,
                    n_ctx,
                }) if !overflow_retried => {
                    overflow_retried = true;
                    budget = Some(used_budget.scaled(estimated, n_prompt_tokens, n_ctx));
                    let mut message = format!(
                        "the prompt ({n_prompt_tokens} tokens) did not fit the server's context \
                         ({n_ctx}); trimming harder and retrying"
                    );
                    if u64::from(self.deps.profile.context_window) > n_ctx {
                        message.push_str(&format!(
                            "; the profile's context_window ({}) is larger than the server's \
                             --ctx-size ({n_ctx}): lower it to match",
                            self.deps.profile.context_window
                        ));
                    }
                    on_event(ChatEvent::Notice { message });
                }
                other => return other,
            }
        }
    }

    /// The request for the current state of the session: `(request, budget, estimated tokens)`.
    fn build_request(
        &mut self,
        session: &Session,
        mode: ModeUsed,
        offer_tools: bool,
        budget: Option<Budget>,
        on_event: Sink<'_>,
    ) -> (ChatRequest, Budget, usize) {
        let specs = self.tool_specs();
        let native = mode == ModeUsed::Native && offer_tools;
        let mut system = system_prompt(&self.deps.tool_ctx.repo_root, self.deps.overview);
        if mode == ModeUsed::Prompt && offer_tools {
            system.push_str("\n\n");
            system.push_str(&prompt_tools::protocol_prompt(&specs));
        }
        if !offer_tools {
            system.push_str(
                "\n\nYou have used all tool rounds of this turn: answer now with what you know, \
                 without calling tools.",
            );
        }
        let tools_tokens = if native {
            context::estimate_text(&serde_json::to_string(&specs).unwrap_or_default())
        } else {
            0
        };
        let budget = budget.unwrap_or_else(|| {
            Budget::for_window(
                self.context_window,
                self.deps.profile.max_tokens,
                tools_tokens,
            )
        });
        let (mut messages, report) =
            context::fit(ChatMessage::system(system), &session.messages, budget);
        if report.trimmed_anything() && !self.noticed_trim {
            self.noticed_trim = true;
            on_event(ChatEvent::Notice {
                message: format!(
                    "the conversation was trimmed to fit the context window ({} tokens): {} older \
                     tool output(s) replaced by a note, {} older message(s) left out",
                    self.context_window,
                    report.trimmed_tool_results + report.trimmed_tool_arguments,
                    report.dropped_messages
                ),
            });
        }
        for m in &mut messages {
            m.reasoning_content = None; // thinking is never sent back
        }
        if mode == ModeUsed::Prompt {
            messages = prompt_tools::render_for_prompt_mode(&messages);
        } else {
            // The tool's name on a result is ours (for prompt-mode rendering and exports);
            // OpenAI's schema has no `name` on tool messages and strict servers refuse it.
            for m in messages.iter_mut().filter(|m| m.role == Role::Tool) {
                m.name = None;
            }
        }
        let messages = merge_consecutive_users(messages);
        let prompt_calls = mode == ModeUsed::Prompt && offer_tools;
        let request = ChatRequest {
            messages,
            tools: native.then_some(specs),
            // The model stops where it would invent the result of its own call.
            stop: prompt_calls.then(|| vec![prompt_tools::RESULT_STOP.to_string()]),
            ..ChatRequest::default()
        };
        (request, budget, report.estimated_tokens)
    }

    /// Runs one call through the gate; returns the tool's name and the result the model sees.
    async fn run_call(
        &mut self,
        session: &mut Session,
        call: &ToolCall,
        on_event: Sink<'_>,
    ) -> (String, Value) {
        let name = call.function.name.clone();
        let args: Value = serde_json::from_str(&call.function.arguments).unwrap_or(Value::Null);
        on_event(ChatEvent::ToolCall {
            id: call.id.clone(),
            name: name.clone(),
            arguments: args.clone(),
        });
        let result = self.gated_call(session, &name, args, on_event).await;
        let (ok, value) = match result {
            Ok(v) => (true, v),
            Err(e) => (false, e.to_json()),
        };
        on_event(ChatEvent::ToolResult {
            id: call.id.clone(),
            name: name.clone(),
            ok,
            result: value.clone(),
        });
        (name, value)
    }

    async fn gated_call(
        &mut self,
        session: &mut Session,
        name: &str,
        args: Value,
        on_event: Sink<'_>,
    ) -> Result<Value, ToolError> {
        let deps = self.deps;
        let Some(tool) = deps.tools.iter().find(|t| t.name() == name).cloned() else {
            let known = self.known_names().join(", ");
            return Err(ToolError::new(
                "unknown_tool",
                format!("there is no tool named {name:?}; the tools are: {known}"),
            ));
        };
        if !args.is_object() || args.get(INVALID_ARGS).is_some() {
            return Err(ToolError::new(
                "invalid_arguments",
                format!(
                    "could not read the arguments of {name} as a JSON object ({}); they must \
                     match its schema: {}",
                    cut_chars(&args.get(INVALID_ARGS).unwrap_or(&args).to_string(), 200),
                    tool.parameters()
                ),
            ));
        }
        let class = tool.class();
        // The path a call touches, checked by the sandbox before anyone is asked; for a read,
        // so that the gate can ask before a secret file is read (a symlink is judged by what
        // it points to).
        let rel = match tool.target_path(&args) {
            None => None,
            Some(p) => {
                let intent = match class {
                    ToolClass::Write => Intent::Write,
                    // A folder (listFiles, search) or a file.
                    ToolClass::Read => Intent::List,
                    _ => Intent::Read,
                };
                match deps
                    .tool_ctx
                    .sandbox
                    .resolve(&deps.tool_ctx.repo_root, &p, intent)
                {
                    Ok(safe) => Some(gate_path(&deps.tool_ctx.repo_root, &safe)),
                    // The read tool refuses it itself, in its own words.
                    Err(_) if class == ToolClass::Read => None,
                    Err(e) => return Err(ToolError::new(e.code(), e.to_string())),
                }
            }
        };
        let session_id = session.id.clone();
        let mut check = deps.gate.check(&session_id, name, class, rel.as_deref());
        // The diff the user approves; the call is refused if the file changes before it runs.
        let mut approved_preview = None;
        if let Check::Ask(mut req) = check {
            req.preview = tool.preview(&deps.tool_ctx, &args);
            approved_preview = req.preview.clone();
            on_event(ChatEvent::PermissionRequest(req.clone()));
            let answer = tokio::select! {
                a = deps.prompter.ask(&req) => a,
                _ = deps.cancel.cancelled() => PermissionAnswer::Deny,
            };
            session.grants.push(GrantNote {
                at: noctune_util::time::now_rfc3339(),
                tool: name.to_string(),
                class: class.as_str().to_string(),
                path: rel.clone(),
                answer: answer_str(answer).to_string(),
                protected: req.protected,
            });
            if let Err(e) = deps.gate.answer(&req, answer, &deps.prompter.actor()) {
                return Err(ToolError::new("permission_error", e.to_string()));
            }
            check = if answer == PermissionAnswer::Deny {
                Check::Ask(req)
            } else {
                deps.gate.check(&session_id, name, class, rel.as_deref())
            };
        }
        match check {
            Check::Forbidden { code, message } => Err(ToolError::new(code, message)),
            Check::Ask(req) => Err(not_allowed(class, &req)),
            Check::Allowed { scope } => {
                let ctx = deps.tool_ctx.clone();
                let joined = tokio::task::spawn_blocking(move || {
                    if let Some(shown) = &approved_preview {
                        crate::tool::confirm_preview(tool.as_ref(), &ctx, &args, shown)?;
                    }
                    tool.call(&ctx, &args)
                })
                .await;
                if scope.is_some() {
                    deps.gate
                        .consume_once(&session_id, name, class, rel.as_deref());
                }
                match joined {
                    Ok(result) => result,
                    Err(e) => Err(ToolError::new(
                        "tool_crashed",
                        format!("{name} failed unexpectedly ({e}); the error was logged"),
                    )),
                }
            }
        }
    }
}

/// The path the gate judges: relative to the repository when inside it (so that its own
/// `.noctune_cache/` is recognised even when the allowed root is a parent folder), else
/// relative to the allowed root it lies in.
fn gate_path(repo_root: &std::path::Path, safe: &noctune_sandbox::SafePath) -> String {
    match safe
        .abs()
        .strip_prefix(repo_root)
        .ok()
        .and_then(|r| r.to_str())
    {
        Some("") => ".".to_string(),
        Some(rel) => rel.to_string(),
        None => safe.rel().to_string(),
    }
}

fn cut_chars(s: &str, max: usize) -> String {
    let head = noctune_core::text::prefix_chars(s, max);
    if head.len() < s.len() {
        format!("{head}…")
    } else {
        s.to_string()
    }
}

fn answer_str(a: PermissionAnswer) -> &'static str {
    match a {
        PermissionAnswer::Once => "once",
        PermissionAnswer::Session => "session",
        PermissionAnswer::Always => "always",
        PermissionAnswer::Deny => "deny",
    }
}

/// The error a denied (or unanswerable) call returns, worded so that the model asks the user.
fn not_allowed(class: ToolClass, req: &PermissionRequest) -> ToolError {
    let what = match class {
        ToolClass::Write => "write files",
        ToolClass::Run => "start or stop runs",
        ToolClass::Decide => "decide approvals",
        ToolClass::Read => "read this secret file",
    };
    let scopes = if class == ToolClass::Read {
        "for this file, for the rest of this session"
    } else if req.protected {
        "this path is protected, so only a one-time approval is possible"
    } else {
        "once, for this session, or always"
    };
    ToolError::new(
        class.not_allowed_code(),
        format!(
            "{} was not run: the user has not allowed you to {what} ({}). Tell the user what you \
             want to do and why, and ask them to allow it ({scopes}); then try again.",
            req.summary, req.tool
        ),
    )
}

/// The system prompt: role, rules, the repository overview.
pub fn system_prompt(repo_root: &std::path::Path, overview: &str) -> String {
    format!(
        "You are Noctune, a coding assistant working in the repository at {}.\n\
         - Answer questions about the code by reading it with the tools (listFiles, search, \
         readFile); do not guess what a file contains.\n\
         - When you refer to code, cite it as path:line (e.g. src/app.py:42), with paths \
         relative to the repository root.\n\
         - To change a file use editFile: old_text copied exactly from readFile's output \
         (without the line numbers), new_text its replacement; writeFile is for new files.\n\
         - Edits (editFile, writeFile, replaceLines), runs (noctuneStart, noctuneStop) and decisions \
         (noctuneDecide) need the user's permission, and so does reading a secret file (.env, \
         keys, credentials); search skips secret files. If a tool answers with an error ending \
         in _not_allowed, say what you wanted to do and ask the user to allow it.\n\
         - .noctune_cache/ is Noctune's own; scratch files you need may go under \
         .noctune_cache/scratch/ (no permission needed).\n\
         - Keep answers short and concrete.\n\n\
         ## Repository overview\n{overview}",
        repo_root.display()
    )
}

/// Joins consecutive user messages: strict chat templates require alternating roles, and a
/// turn that failed before any answer may leave two user messages in a row.
fn merge_consecutive_users(messages: Vec<ChatMessage>) -> Vec<ChatMessage> {
    let mut out: Vec<ChatMessage> = Vec::with_capacity(messages.len());
    for m in messages {
        match out.last_mut() {
            Some(last) if last.role == Role::User && m.role == Role::User => {
                let c = last.content.get_or_insert_with(String::new);
                c.push_str("\n\n");
                c.push_str(m.content.as_deref().unwrap_or_default());
            }
            _ => out.push(m),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialise_with_a_snake_case_type() {
        let v = serde_json::to_value(ChatEvent::Delta { text: "hi".into() }).unwrap();
        assert_eq!(v, json!({"type": "delta", "text": "hi"}));
        let v = serde_json::to_value(ChatEvent::ToolResult {
            id: "c".into(),
            name: "readFile".into(),
            ok: false,
            result: json!({"error": "x"}),
        })
        .unwrap();
        assert_eq!(v["type"], "tool_result");
        let req = PermissionRequest {
            id: "p1".into(),
            session_id: "s".into(),
            tool: "writeFile".into(),
            class: ToolClass::Write,
            path: Some("a.py".into()),
            protected: false,
            summary: "writeFile a.py".into(),
            preview: None,
        };
        let v = serde_json::to_value(ChatEvent::PermissionRequest(req)).unwrap();
        assert_eq!(v["type"], "permission_request");
        assert_eq!(v["class"], "write");
        let back: ChatEvent = serde_json::from_value(v).unwrap();
        assert!(matches!(back, ChatEvent::PermissionRequest(_)));
        let v = serde_json::to_value(ChatEvent::Done {
            finish_reason: "stop".into(),
            usage: None,
            timings: None,
        })
        .unwrap();
        assert_eq!(v["type"], "done");
    }

    #[test]
    fn user_content_carries_the_context() {
        let ctx = TurnContext {
            document: Some("src/a.py".into()),
            selection: Some("x = 1".into()),
            ..TurnContext::default()
        };
        let c = user_content("why?", &ctx);
        assert!(c.starts_with("why?") && c.contains("`src/a.py`") && c.contains("x = 1"));
        assert_eq!(user_content("plain", &TurnContext::default()), "plain");
    }

    #[test]
    fn consecutive_user_messages_are_merged() {
        let out = merge_consecutive_users(vec![
            ChatMessage::system("s"),
            ChatMessage::user("a"),
            ChatMessage::user("b"),
            ChatMessage::assistant("c"),
        ]);
        assert_eq!(out.len(), 3);
        assert_eq!(out[1].content.as_deref(), Some("a\n\nb"));
    }
}
