//! `ScriptedLlm`: the one stand-in for a model server in all our tests.
//!
//! It speaks llama-server's wire format byte for byte (checked against the recordings in
//! `fixtures/llm/recordings/` by `tests/it/llm_client.rs`): the same response headers, one HTTP
//! chunk per SSE event, chunks with `id`/`object`/`created`/`model`/`system_fingerprint` in
//! llama-server's key order, a role chunk first, a finish chunk, then (with
//! `stream_options.include_usage`) a `"choices": []` chunk carrying `usage` and `timings`, then
//! `data: [DONE]`. Without `include_usage` the timings ride on the finish chunk, as llama-server
//! does. Non-streamed requests get a `chat.completion` object; `GET /v1/models` and
//! `GET /health` answer like llama-server.
//!
//! llama-server's own endpoints at the server root are there too: `GET /props` (what the chat
//! template can do: [`Script::supports_tools`], [`Script::without_template_caps`],
//! [`Script::without_props`], [`Script::context_window`]), `POST /apply-template` (a ChatML
//! rendering, tools included only when the template "supports" them) and `POST /tokenize`
//! (deterministic: one token per [`BYTES_PER_SCRIPTED_TOKEN`] bytes, see
//! [`scripted_token_count`]); [`Script::without_token_counting`] takes the last two away.
//!
//! A test scripts the answers: a queue of [`Reply`] values consumed one per chat request, rules
//! ([`Script::when`]) for answers that depend on the request, and a [`Script::fallback`]. Every
//! request is recorded for assertions ([`ScriptedLlm::requests`]).
//!
//! The HTTP/1.1 server is hand-written on a tokio `TcpListener` (not hyper/axum) so that
//! headers and framing are exactly what we choose: no `Date` header, chunk boundaries where
//! llama-server puts them, and a real broken connection for [`Reply::cut_mid_call`]. It runs on
//! its own thread with its own runtime, so sync tests can use it as well as `#[tokio::test]`s.
//! Dropping the [`ScriptedLlm`] stops it.
//!
//! ```ignore
//! use crate::support::llm_server::{self, Reply, Script, ScriptedLlm};
//! let server = ScriptedLlm::start(
//!     Script::new()
//!         .when(llm_server::has_tools, Reply::tools_unsupported()) // every request with tools
//!         .reply(Reply::text(&["Let me ", "look."]).with_tool_calls([("call_1", "readFile", r#"{"path":"a.rs"}"#)]))
//!         .reply(Reply::text(&["Done."]).delay(50)),
//! );
//! let client = noctune_llm::LlmClient::new(server.endpoint())?; // base_url() ends in /v1
//! // ... run the code under test ...
//! assert_eq!(server.requests()[1]["messages"][2]["role"], "tool");
//! ```

#![allow(dead_code)] // a library for many test files; each uses a part of it

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The model name the recordings were made with; the default of every [`Script`].
pub const MODEL: &str = "tiny-qwen2-random.gguf";
/// llama-server's `system_fingerprint` in the recordings (a build without a git hash).
pub const FINGERPRINT: &str = "b0-unknown";

/// The scripted `/tokenize` counts one token per this many bytes (rounded up).
pub const BYTES_PER_SCRIPTED_TOKEN: usize = 2;

/// How many characters of tool-call arguments go in one chunk: llama-server streams tokens,
/// about this size, so a call's JSON arrives in many pieces.
const ARG_PIECE_CHARS: usize = 4;

// ---------------------------------------------------------------------------------------------
// Replies
// ---------------------------------------------------------------------------------------------

/// One scripted answer. Build with a constructor, adjust with the modifiers (`delay`, `gap`,
/// `stall_after`, `cut_after`, `usage`, ...).
#[derive(Clone, Debug)]
pub struct Reply {
    kind: Kind,
    delay: Duration,
    gap: Duration,
    stall: Option<(usize, Duration)>,
    cut_after: Option<usize>,
    end_after: Option<usize>,
    send_done: bool,
    finish_reason: Option<String>,
    usage: Option<(u64, u64)>,
    timings: Option<ScriptTimings>,
    identity: Option<(String, u64)>,
    non_streamed: bool,
}

#[derive(Clone, Debug)]
enum Kind {
    Turn(Turn),
    HttpError {
        status: u16,
        body: String,
    },
    RawSse(String),
    Raw {
        status: u16,
        content_type: String,
        body: String,
    },
}

/// The content of a normal answer.
#[derive(Clone, Debug, Default)]
struct Turn {
    reasoning: Vec<String>,
    content: Vec<String>,
    calls: Vec<ScriptedCall>,
    /// A data payload inserted after this many chunks (for [`Reply::malformed_chunk`]).
    inject: Option<(usize, String)>,
    /// An error object sent instead of the finish chunk (for [`Reply::stream_error`]).
    error: Option<String>,
}

#[derive(Clone, Debug)]
struct ScriptedCall {
    id: String,
    name: String,
    arguments: String,
}

/// llama-server's `timings`, serialised in its key order.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ScriptTimings {
    pub cache_n: u64,
    pub prompt_n: u64,
    pub prompt_ms: f64,
    pub prompt_per_token_ms: f64,
    pub prompt_per_second: f64,
    pub predicted_n: u64,
    pub predicted_ms: f64,
    pub predicted_per_token_ms: f64,
    pub predicted_per_second: f64,
}

impl ScriptTimings {
    /// Plausible numbers for a small CPU model: 2.5 ms per prompt token, 7.5 ms per output token.
    pub fn for_tokens(prompt_n: u64, predicted_n: u64) -> Self {
        Self {
            cache_n: 0,
            prompt_n,
            prompt_ms: prompt_n as f64 * 2.5,
            prompt_per_token_ms: 2.5,
            prompt_per_second: 400.0,
            predicted_n,
            predicted_ms: predicted_n as f64 * 7.5,
            predicted_per_token_ms: 7.5,
            predicted_per_second: 1000.0 / 7.5,
        }
    }
}

fn strings(pieces: &[&str]) -> Vec<String> {
    pieces.iter().map(|p| (*p).to_owned()).collect()
}

fn calls_from<I, A, B, C>(calls: I) -> Vec<ScriptedCall>
where
    I: IntoIterator<Item = (A, B, C)>,
    A: Into<String>,
    B: Into<String>,
    C: Into<String>,
{
    calls
        .into_iter()
        .map(|(id, name, args)| ScriptedCall {
            id: id.into(),
            name: name.into(),
            arguments: args.into(),
        })
        .collect()
}

/// Splits tool arguments into small pieces on character boundaries.
fn arg_pieces(arguments: &str) -> Vec<String> {
    let chars: Vec<char> = arguments.chars().collect();
    chars
        .chunks(ARG_PIECE_CHARS)
        .map(|c| c.iter().collect())
        .collect()
}

/// llama-server's error body, keys in its order.
fn error_body(code: u16, message: &str, kind: &str, extra: &str) -> String {
    format!(
        r#"{{"error":{{"code":{code},"message":{},"type":{}{extra}}}}}"#,
        js(message),
        js(kind)
    )
}

impl Reply {
    fn new(kind: Kind) -> Self {
        Self {
            kind,
            delay: Duration::ZERO,
            gap: Duration::ZERO,
            stall: None,
            cut_after: None,
            end_after: None,
            send_done: true,
            finish_reason: None,
            usage: None,
            timings: None,
            identity: None,
            non_streamed: false,
        }
    }

    fn turn(turn: Turn) -> Self {
        Self::new(Kind::Turn(turn))
    }

    fn turn_mut(&mut self) -> &mut Turn {
        if !matches!(self.kind, Kind::Turn(_)) {
            self.kind = Kind::Turn(Turn::default());
        }
        match &mut self.kind {
            Kind::Turn(turn) => turn,
            _ => unreachable!("just made a turn"),
        }
    }

    /// A plain answer streamed as these content pieces (one chunk each), `finish_reason: stop`.
    pub fn text(pieces: &[&str]) -> Self {
        Self::turn(Turn {
            content: strings(pieces),
            ..Turn::default()
        })
    }

    /// `reasoning_content` pieces (a thinking model), then the answer.
    pub fn reasoning_then_text(reasoning: &[&str], text: &[&str]) -> Self {
        Self::turn(Turn {
            reasoning: strings(reasoning),
            content: strings(text),
            ..Turn::default()
        })
    }

    /// Native tool calls `(id, name, arguments JSON)`, each call's arguments split into many
    /// small chunks, calls told apart by `index`, `finish_reason: tool_calls`.
    pub fn tool_calls<I, A, B, C>(calls: I) -> Self
    where
        I: IntoIterator<Item = (A, B, C)>,
        A: Into<String>,
        B: Into<String>,
        C: Into<String>,
    {
        Self::turn(Turn {
            calls: calls_from(calls),
            ..Turn::default()
        })
    }

    /// One native tool call.
    pub fn tool_call(id: &str, name: &str, arguments: &str) -> Self {
        Self::tool_calls([(id, name, arguments)])
    }

    /// An error answer with this status and JSON body (sent with `Connection: close`, as
    /// llama-server does).
    pub fn http_error(status: u16, body: Value) -> Self {
        Self::new(Kind::HttpError {
            status,
            body: body.to_string(),
        })
    }

    /// llama-server's answer to a prompt over the context, byte for byte as recorded in
    /// `context-overflow.json` (for 5030 and 4096).
    pub fn context_overflow(n_prompt_tokens: u64, n_ctx: u64) -> Self {
        let message = format!(
            "request ({n_prompt_tokens} tokens) exceeds the available context size ({n_ctx} \
             tokens), try increasing it"
        );
        let extra = format!(r#","n_prompt_tokens":{n_prompt_tokens},"n_ctx":{n_ctx}"#);
        let body = error_body(400, &message, "exceed_context_size_error", &extra);
        Self::new(Kind::HttpError { status: 400, body })
    }

    /// A 400 `invalid_request_error` like the recorded `bad-request.json`.
    pub fn bad_request(message: &str) -> Self {
        let body = error_body(400, message, "invalid_request_error", "");
        Self::new(Kind::HttpError { status: 400, body })
    }

    /// What llama-server started without `--jinja` says to a request with `tools`.
    pub fn tools_unsupported() -> Self {
        Self::bad_request("tools param requires --jinja flag")
    }

    /// A 500 `server_error` with this message.
    pub fn server_error(message: &str) -> Self {
        let body = error_body(500, message, "server_error", "");
        Self::new(Kind::HttpError { status: 500, body })
    }

    /// A normal start, then a `data:` line that is not JSON, then a normal end: a client that
    /// skipped bad chunks would see a complete answer; ours must report it.
    pub fn malformed_chunk() -> Self {
        Self::turn(Turn {
            content: strings(&["Hello", " world"]),
            inject: Some((
                2,
                r#"{"choices":[{"finish_reason":null,"index":0,"delta":{"content":"brok"#.into(),
            )),
            ..Turn::default()
        })
    }

    /// A tool call whose arguments stop half-way: the connection is dropped without the rest,
    /// without a finish chunk and without `[DONE]` (a crashed server).
    pub fn cut_mid_call() -> Self {
        let args = r#"{"path": "src/lib.rs", "start": 10, "end": 40}"#;
        let pieces = arg_pieces(args).len();
        // role chunk + the call's first chunk + half of the argument pieces
        Self::tool_call("call_cut", "readFile", args).cut_after(2 + pieces / 2)
    }

    /// These content pieces, then an error object in the stream and the end of the stream,
    /// as llama-server does when generation fails after the answer started.
    pub fn stream_error(pieces: &[&str], message: &str) -> Self {
        Self::turn(Turn {
            content: strings(pieces),
            error: Some(error_body(500, message, "server_error", "")),
            ..Turn::default()
        })
    }

    /// A 200 event stream whose body is exactly `text` (e.g. a recorded `.sse` file), one HTTP
    /// chunk per event.
    pub fn raw_sse(text: impl Into<String>) -> Self {
        Self::new(Kind::RawSse(text.into()))
    }

    /// Any answer: status, content type and body as given.
    pub fn raw(status: u16, content_type: &str, body: impl Into<String>) -> Self {
        Self::new(Kind::Raw {
            status,
            content_type: content_type.into(),
            body: body.into(),
        })
    }

    // ---- modifiers ----

    /// Adds reasoning pieces before the content.
    pub fn with_reasoning(mut self, pieces: &[&str]) -> Self {
        self.turn_mut().reasoning.extend(strings(pieces));
        self
    }

    /// Adds content pieces (streamed before any tool call, as models say "Let me look").
    pub fn with_text(mut self, pieces: &[&str]) -> Self {
        self.turn_mut().content.extend(strings(pieces));
        self
    }

    /// Adds tool calls after the content.
    pub fn with_tool_calls<I, A, B, C>(mut self, calls: I) -> Self
    where
        I: IntoIterator<Item = (A, B, C)>,
        A: Into<String>,
        B: Into<String>,
        C: Into<String>,
    {
        self.turn_mut().calls.extend(calls_from(calls));
        self
    }

    /// Waits this long before the first byte of the answer (prompt processing).
    pub fn delay(mut self, ms: u64) -> Self {
        self.delay = Duration::from_millis(ms);
        self
    }

    /// Waits this long between two events of the stream.
    pub fn gap(mut self, ms: u64) -> Self {
        self.gap = Duration::from_millis(ms);
        self
    }

    /// Goes silent for `ms` after the first `events` events (a stuck server).
    pub fn stall_after(mut self, events: usize, ms: u64) -> Self {
        self.stall = Some((events, Duration::from_millis(ms)));
        self
    }

    /// Drops the connection after `events` events: no terminating chunk (a crash).
    pub fn cut_after(mut self, events: usize) -> Self {
        self.cut_after = Some(events);
        self
    }

    /// Ends the HTTP body cleanly after `events` events, whatever was left to say.
    pub fn end_after(mut self, events: usize) -> Self {
        self.end_after = Some(events);
        self
    }

    /// Leaves out `data: [DONE]` (some servers never send it).
    pub fn without_done(mut self) -> Self {
        self.send_done = false;
        self
    }

    /// Default: `tool_calls` when the reply has calls, else `stop`.
    pub fn finish_reason(mut self, reason: &str) -> Self {
        self.finish_reason = Some(reason.into());
        self
    }

    /// Default: the prompt's characters / 4 and one token per streamed piece.
    pub fn usage(mut self, prompt_tokens: u64, completion_tokens: u64) -> Self {
        self.usage = Some((prompt_tokens, completion_tokens));
        self
    }

    /// Default: [`ScriptTimings::for_tokens`] of the usage.
    pub fn timings(mut self, timings: ScriptTimings) -> Self {
        self.timings = Some(timings);
        self
    }

    /// Fixes the completion `id` and `created` (default: random and now), e.g. to reproduce a
    /// recording byte for byte.
    pub fn identity(mut self, id: &str, created: u64) -> Self {
        self.identity = Some((id.into(), created));
        self
    }

    /// Answers with one `chat.completion` JSON object even when the request asks for a stream
    /// (servers that ignore `stream`).
    pub fn non_streamed(mut self) -> Self {
        self.non_streamed = true;
        self
    }
}

// ---------------------------------------------------------------------------------------------
// Scripts
// ---------------------------------------------------------------------------------------------

type Predicate = Arc<dyn Fn(&Value) -> bool + Send + Sync>;
type Fallback = Arc<dyn Fn(&Value) -> Reply + Send + Sync>;

struct Rule {
    matches: Predicate,
    reply: Reply,
    /// `None`: answers every matching request; `Some(n)`: only n more.
    remaining: Option<usize>,
}

/// How the server answers chat requests, in this order: the first matching rule, else the next
/// queued reply, else the fallback, else a 500 error that names the unscripted request (so a
/// test that makes one request too many fails with a clear message).
pub struct Script {
    queue: VecDeque<Reply>,
    rules: Vec<Rule>,
    fallback: Option<Fallback>,
    model: String,
    server: ServerSetup,
}

/// What `GET /props` says about the chat template.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PropsMode {
    /// llama-server whose template renders tools (`true`, Qwen2.5's) or drops them silently
    /// (`false`, SmolLM2's), as `chat_template_caps.supports_tools`.
    Caps { supports_tools: bool },
    /// An older llama-server: `/props` without `chat_template_caps`.
    NoTemplateCaps,
    /// Not llama-server: `/props` is a 404.
    Absent,
}

/// How the server describes itself outside the chat answers.
#[derive(Clone, Copy, Debug)]
struct ServerSetup {
    props: PropsMode,
    /// `default_generation_settings.n_ctx` of `/props`.
    n_ctx: u64,
    /// `/apply-template` and `/tokenize` exist.
    counts_tokens: bool,
}

impl Default for ServerSetup {
    fn default() -> Self {
        Self {
            props: PropsMode::Caps {
                supports_tools: true,
            },
            // Larger than a profile's default window, so tests fit to the profile unless they
            // ask for a smaller server (`Script::context_window`).
            n_ctx: 16384,
            counts_tokens: true,
        }
    }
}

impl ServerSetup {
    /// Whether `/apply-template` renders a request's tools (an older llama-server's template
    /// is assumed to, as `--jinja` with a tool-capable template does).
    fn renders_tools(&self) -> bool {
        !matches!(
            self.props,
            PropsMode::Caps {
                supports_tools: false
            }
        )
    }
}

impl Default for Script {
    fn default() -> Self {
        Self::new()
    }
}

impl Script {
    pub fn new() -> Self {
        Self {
            queue: VecDeque::new(),
            rules: Vec::new(),
            fallback: None,
            model: MODEL.into(),
            server: ServerSetup::default(),
        }
    }

    /// Queues a reply for the next unmatched request.
    pub fn reply(mut self, reply: Reply) -> Self {
        self.queue.push_back(reply);
        self
    }

    pub fn replies(mut self, replies: impl IntoIterator<Item = Reply>) -> Self {
        self.queue.extend(replies);
        self
    }

    /// Answers every request whose JSON body matches with (a copy of) `reply`.
    pub fn when(
        mut self,
        matches: impl Fn(&Value) -> bool + Send + Sync + 'static,
        reply: Reply,
    ) -> Self {
        self.rules.push(Rule {
            matches: Arc::new(matches),
            reply,
            remaining: None,
        });
        self
    }

    /// Like [`Script::when`], for the first matching request only.
    pub fn when_once(
        mut self,
        matches: impl Fn(&Value) -> bool + Send + Sync + 'static,
        reply: Reply,
    ) -> Self {
        self.rules.push(Rule {
            matches: Arc::new(matches),
            reply,
            remaining: Some(1),
        });
        self
    }

    /// Computes the answer from the request when no rule matched and the queue is empty.
    pub fn fallback(mut self, answer: impl Fn(&Value) -> Reply + Send + Sync + 'static) -> Self {
        self.fallback = Some(Arc::new(answer));
        self
    }

    /// The model name reported in chunks and by `/v1/models`.
    pub fn model(mut self, name: &str) -> Self {
        self.model = name.into();
        self
    }

    /// `GET /props` reports `chat_template_caps.supports_tools` as given (default: true). With
    /// false, `/apply-template` leaves the tools out, as llama-server does with such a template
    /// (chat requests are still answered from the script).
    pub fn supports_tools(mut self, supports: bool) -> Self {
        self.server.props = PropsMode::Caps {
            supports_tools: supports,
        };
        self
    }

    /// `GET /props` without `chat_template_caps`, as llama-server builds before it had them.
    pub fn without_template_caps(mut self) -> Self {
        self.server.props = PropsMode::NoTemplateCaps;
        self
    }

    /// No `GET /props` (a 404): a server that is not llama-server. `/v1/models` still answers.
    pub fn without_props(mut self) -> Self {
        self.server.props = PropsMode::Absent;
        self
    }

    /// The per-slot context `GET /props` (and `/v1/models` `meta.n_ctx`) reports (default 16384).
    pub fn context_window(mut self, n_ctx: u64) -> Self {
        self.server.n_ctx = n_ctx;
        self
    }

    /// No `/apply-template` and `/tokenize` (404s), as on servers that cannot count tokens.
    pub fn without_token_counting(mut self) -> Self {
        self.server.counts_tokens = false;
        self
    }

    fn next_reply(&mut self, request: &Value, number: usize) -> Reply {
        for rule in &mut self.rules {
            if rule.remaining != Some(0) && (rule.matches)(request) {
                if let Some(n) = rule.remaining.as_mut() {
                    *n -= 1;
                }
                return rule.reply.clone();
            }
        }
        if let Some(reply) = self.queue.pop_front() {
            return reply;
        }
        if let Some(fallback) = &self.fallback {
            return fallback(request);
        }
        Reply::server_error(&format!(
            "scripted LLM: no reply scripted for chat request #{number} (last user message: {:?})",
            last_user_text(request)
        ))
    }
}

impl From<Reply> for Script {
    fn from(reply: Reply) -> Self {
        Script::new().reply(reply)
    }
}

impl From<Vec<Reply>> for Script {
    fn from(replies: Vec<Reply>) -> Self {
        Script::new().replies(replies)
    }
}

impl<const N: usize> From<[Reply; N]> for Script {
    fn from(replies: [Reply; N]) -> Self {
        Script::new().replies(replies)
    }
}

// ---- request predicates, for `Script::when` ----

/// The request offers native `tools`.
pub fn has_tools(request: &Value) -> bool {
    request
        .get("tools")
        .and_then(Value::as_array)
        .is_some_and(|t| !t.is_empty())
}

/// The request asks for a streamed answer.
pub fn is_streaming(request: &Value) -> bool {
    request
        .get("stream")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// The text of the last `user` message ("" if none).
pub fn last_user_text(request: &Value) -> String {
    messages(request)
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .map(message_text)
        .unwrap_or_default()
}

/// The last message has role `tool` (the model is being given tool results).
pub fn last_is_tool_result(request: &Value) -> bool {
    messages(request)
        .last()
        .is_some_and(|m| m.get("role").and_then(Value::as_str) == Some("tool"))
}

fn messages(request: &Value) -> &[Value] {
    request
        .get("messages")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// A message's text, whether `content` is a string or an array of `{type: text, text}` parts.
fn message_text(message: &Value) -> String {
    match message.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

// ---------------------------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------------------------

/// One request as received.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub method: String,
    /// Without the query string.
    pub path: String,
    /// Names lower-cased.
    pub headers: Vec<(String, String)>,
    pub raw_body: String,
    /// The body as JSON; `Value::Null` if it was empty or not JSON.
    pub body: Value,
}

impl RecordedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    fn is_chat(&self) -> bool {
        self.method == "POST"
            && matches!(
                self.path.as_str(),
                "/v1/chat/completions" | "/chat/completions"
            )
    }
}

struct Shared {
    script: Mutex<Script>,
    log: Mutex<Vec<RecordedRequest>>,
    model: String,
    server: ServerSetup,
    chats: AtomicU64,
}

/// A running scripted model server. Dropping it stops the server.
pub struct ScriptedLlm {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ScriptedLlm {
    /// Starts serving on 127.0.0.1 with an ephemeral port. Accepts a [`Script`], a [`Reply`],
    /// a `Vec<Reply>` or an array of replies.
    pub fn start(script: impl Into<Script>) -> Self {
        let script = script.into();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared {
            model: script.model.clone(),
            server: script.server,
            script: Mutex::new(script),
            log: Mutex::new(Vec::new()),
            chats: AtomicU64::new(0),
        });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("scripted-llm-{}", addr.port()))
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("scripted LLM runtime");
                runtime.block_on(async move {
                    let listener = TcpListener::from_std(listener).expect("tokio listener");
                    tokio::select! {
                        _ = stopped => {}
                        _ = accept_loop(listener, server_shared) => {}
                    }
                });
                // Drops connections still streaming (stalled replies) without waiting for them.
                runtime.shutdown_timeout(Duration::from_millis(200));
            })
            .expect("spawn scripted LLM thread");
        Self {
            addr,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT/v1`: what a profile's `base_url` would be.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// `http://127.0.0.1:PORT` (for `/health`).
    pub fn root_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// An endpoint for this server with test-sized timeouts (30 s request, 2 s connect,
    /// 10 s idle).
    pub fn endpoint(&self) -> noctune_llm::LlmEndpoint {
        let mut endpoint =
            noctune_llm::LlmEndpoint::new(self.base_url(), self.shared.model.clone());
        endpoint.request_timeout = Duration::from_secs(30);
        endpoint.connect_timeout = Duration::from_secs(2);
        endpoint.idle_timeout = Duration::from_secs(10);
        endpoint
    }

    /// The JSON bodies of the chat-completion requests received, in arrival order.
    pub fn requests(&self) -> Vec<Value> {
        self.recorded()
            .into_iter()
            .filter(|r| r.is_chat())
            .map(|r| r.body)
            .collect()
    }

    pub fn last_request(&self) -> Option<Value> {
        self.requests().pop()
    }

    /// Every request received (chat, models, health, unknown paths).
    pub fn recorded(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.log).clone()
    }

    /// Queues one more reply while the server runs.
    pub fn push(&self, reply: Reply) {
        lock(&self.shared.script).queue.push_back(reply);
    }

    /// Queued replies not consumed yet.
    pub fn pending(&self) -> usize {
        lock(&self.shared.script).queue.len()
    }
}

impl Drop for ScriptedLlm {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A poisoned lock only means another test thread panicked; the data is still usable.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Kept sleep: not a wait for anything. accept() failed (e.g. out of file
            // descriptors); back off a little instead of spinning on the same error.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve_connection(stream, shared.clone()));
    }
}

struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Serves requests on one connection until either side closes it (keep-alive, as reqwest's
/// pool expects).
async fn serve_connection(mut stream: TcpStream, shared: Arc<Shared>) {
    let mut buf = Vec::new();
    while let Ok(Some(request)) = read_request(&mut stream, &mut buf).await {
        let client_closes = request
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        // A write error means the client went away (cancelled, timed out): just stop.
        let keep = respond(&mut stream, &shared, request)
            .await
            .unwrap_or_default();
        if !keep || client_closes {
            break;
        }
    }
    let _ = stream.shutdown().await;
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Reads more bytes into `buf`; false at end of stream.
async fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<bool> {
    let mut chunk = [0u8; 8192];
    let n = stream.read(&mut chunk).await?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n > 0)
}

async fn read_request(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<Request>> {
    let head_end = loop {
        if let Some(pos) = find(buf, b"\r\n\r\n") {
            break pos;
        }
        if buf.len() > 1 << 20 || !fill(stream, buf).await? {
            return Ok(None);
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    buf.drain(..head_end + 4);
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or_default().split(' ');
    let method = first.next().unwrap_or_default().to_owned();
    let target = first.next().unwrap_or("/");
    let path = target.split('?').next().unwrap_or("/").to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };

    let body = if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(pos) = find(buf, b"\r\n") {
                    break pos;
                }
                if !fill(stream, buf).await? {
                    return Ok(None);
                }
            };
            let size_text = String::from_utf8_lossy(&buf[..line_end]).into_owned();
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
            buf.drain(..line_end + 2);
            while buf.len() < size + 2 {
                if !fill(stream, buf).await? {
                    return Ok(None);
                }
            }
            if size == 0 {
                // No trailers expected: the final CRLF.
                buf.drain(..2);
                break body;
            }
            body.extend_from_slice(&buf[..size]);
            buf.drain(..size + 2);
        }
    } else {
        let length: usize = header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < length {
            if !fill(stream, buf).await? {
                return Ok(None);
            }
        }
        buf.drain(..length).collect()
    };
    Ok(Some(Request {
        method,
        path,
        headers,
        body,
    }))
}

/// Answers one request; returns whether the connection stays open.
async fn respond(
    stream: &mut TcpStream,
    shared: &Shared,
    request: Request,
) -> std::io::Result<bool> {
    let raw_body = String::from_utf8_lossy(&request.body).into_owned();
    let parsed = serde_json::from_str::<Value>(&raw_body);
    let recorded = RecordedRequest {
        method: request.method.clone(),
        path: request.path.clone(),
        headers: request.headers.clone(),
        raw_body: raw_body.clone(),
        body: parsed.as_ref().cloned().unwrap_or(Value::Null),
    };
    let is_chat = recorded.is_chat();
    lock(&shared.log).push(recorded);

    match (request.method.as_str(), request.path.as_str()) {
        (_, _) if is_chat => {}
        ("GET", "/v1/models" | "/models") => {
            let body = models_body(&shared.model, shared.server.n_ctx).to_string();
            return write_json(stream, 200, &body, false).await;
        }
        ("GET", "/health" | "/v1/health") => {
            return write_json(stream, 200, r#"{"status":"ok"}"#, false).await;
        }
        ("GET", "/props") if shared.server.props != PropsMode::Absent => {
            let body = props_body(&shared.model, &shared.server).to_string();
            return write_json(stream, 200, &body, false).await;
        }
        ("POST", "/apply-template") if shared.server.counts_tokens => {
            let messages = parsed
                .as_ref()
                .ok()
                .filter(|v| v.get("messages").is_some_and(Value::is_array));
            let Some(request) = messages else {
                let body = error_body(
                    400,
                    "Expected 'messages' to be an array",
                    "invalid_request_error",
                    "",
                );
                return write_json(stream, 400, &body, true).await;
            };
            let prompt = scripted_prompt(request, shared.server.renders_tools());
            let body = json!({ "prompt": prompt }).to_string();
            return write_json(stream, 200, &body, false).await;
        }
        ("POST", "/tokenize") if shared.server.counts_tokens => {
            let content = parsed
                .as_ref()
                .ok()
                .and_then(|v| v.get("content"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            let tokens: Vec<usize> = (0..scripted_token_count(content)).collect();
            let body = json!({ "tokens": tokens }).to_string();
            return write_json(stream, 200, &body, false).await;
        }
        _ => {
            let body = error_body(404, "File Not Found", "not_found_error", "");
            return write_json(stream, 404, &body, true).await;
        }
    }

    // A chat request: checked the way llama-server checks it, then answered from the script.
    let request_json = match parsed {
        Ok(value) => value,
        Err(e) => {
            let body = error_body(
                400,
                &format!("invalid JSON body: {e}"),
                "invalid_request_error",
                "",
            );
            return write_json(stream, 400, &body, true).await;
        }
    };
    if !request_json.get("messages").is_some_and(Value::is_array) {
        let body = error_body(
            400,
            "Expected 'messages' to be an array",
            "invalid_request_error",
            "",
        );
        return write_json(stream, 400, &body, true).await;
    }
    let number = shared.chats.fetch_add(1, Ordering::Relaxed) as usize + 1;
    let reply = lock(&shared.script).next_reply(&request_json, number);
    if !reply.delay.is_zero() {
        // Kept sleep: the scripted latency before the answer (`Reply::delay`), which a test
        // asks for to have a slow server (timeouts, cancellation), not a wait for anything.
        tokio::time::sleep(reply.delay).await;
    }
    let ctx = AnswerCtx::new(&reply, &request_json, &shared.model);
    match &reply.kind {
        Kind::HttpError { status, body } => write_json(stream, *status, body, true).await,
        Kind::Raw {
            status,
            content_type,
            body,
        } => {
            let head = format!(
                "HTTP/1.1 {status} {}\r\nServer: llama.cpp\r\nAccess-Control-Allow-Origin: \r\n\
                 Content-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                reason(*status),
                body.len()
            );
            stream.write_all(head.as_bytes()).await?;
            stream.write_all(body.as_bytes()).await?;
            Ok(false)
        }
        Kind::RawSse(text) => {
            let events = split_events(text);
            write_sse(stream, &reply, events).await
        }
        Kind::Turn(turn) => {
            if reply.non_streamed || !is_streaming(&request_json) {
                if reply.cut_after.is_some() {
                    return Ok(false); // dropped before any answer
                }
                let body = match (&turn.error, &turn.inject) {
                    (Some(error), _) => return write_json(stream, 500, error, true).await,
                    (None, Some((_, bad))) => bad.clone(),
                    (None, None) => ctx.completion_json(turn),
                };
                write_json(stream, 200, &body, false).await
            } else {
                let events = ctx
                    .stream_events(turn)
                    .into_iter()
                    .map(|p| format!("data: {p}\n\n"));
                write_sse(stream, &reply, events.collect()).await
            }
        }
    }
}

/// Splits an SSE text into events, each with its terminating blank line.
fn split_events(text: &str) -> Vec<String> {
    let mut events = Vec::new();
    let mut rest = text;
    while let Some(pos) = rest.find("\n\n") {
        events.push(rest[..pos + 2].to_owned());
        rest = &rest[pos + 2..];
    }
    if !rest.is_empty() {
        events.push(rest.to_owned());
    }
    events
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// A JSON answer with llama-server's headers. Errors close the connection, as llama-server's do.
async fn write_json(
    stream: &mut TcpStream,
    status: u16,
    body: &str,
    close: bool,
) -> std::io::Result<bool> {
    let connection = if close {
        "Connection: close"
    } else {
        "Keep-Alive: timeout=5, max=100"
    };
    let head = format!(
        "HTTP/1.1 {status} {}\r\nServer: llama.cpp\r\nAccess-Control-Allow-Origin: \r\n\
         Content-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\n{connection}\r\n\r\n",
        reason(status),
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.flush().await?;
    Ok(!close)
}

/// An event stream with llama-server's headers, one HTTP chunk per event, honouring the reply's
/// gap, stall, cut and end.
async fn write_sse(
    stream: &mut TcpStream,
    reply: &Reply,
    events: Vec<String>,
) -> std::io::Result<bool> {
    let head = "HTTP/1.1 200 OK\r\nServer: llama.cpp\r\nAccess-Control-Allow-Origin: \r\n\
                X-Accel-Buffering: no\r\nContent-Type: text/event-stream\r\n\
                Transfer-Encoding: chunked\r\nKeep-Alive: timeout=5, max=100\r\n\r\n";
    stream.write_all(head.as_bytes()).await?;
    stream.flush().await?;
    for (i, event) in events.iter().enumerate() {
        if reply.cut_after == Some(i) {
            return Ok(false); // no terminating chunk: the client sees a broken body
        }
        if reply.end_after == Some(i) {
            break;
        }
        if i > 0 && !reply.gap.is_zero() {
            // Kept sleep: the scripted gap between two chunks (`Reply::gap`), simulated latency.
            tokio::time::sleep(reply.gap).await;
        }
        let chunk = format!("{:x}\r\n{event}\r\n", event.len());
        stream.write_all(chunk.as_bytes()).await?;
        stream.flush().await?;
        if let Some((after, pause)) = reply.stall
            && after == i + 1
        {
            // Kept sleep: the scripted stall mid-stream (`Reply::stall_after`), so a test sees a
            // server that stops sending (idle timeout, cancellation while blocked on a read).
            tokio::time::sleep(pause).await;
        }
    }
    if reply.cut_after.is_some_and(|n| n >= events.len()) {
        return Ok(false);
    }
    stream.write_all(b"0\r\n\r\n").await?;
    stream.flush().await?;
    Ok(true)
}

/// A JSON string literal.
fn js(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

#[derive(Serialize)]
struct UsageOut {
    completion_tokens: u64,
    prompt_tokens: u64,
    total_tokens: u64,
    prompt_tokens_details: CachedOut,
}

#[derive(Serialize)]
struct CachedOut {
    cached_tokens: u64,
}

/// What one answer needs besides its content: identity, token counts, what the request asked.
struct AnswerCtx {
    id: String,
    created: u64,
    model: String,
    include_usage: bool,
    finish_reason: Option<String>,
    usage: Option<(u64, u64)>,
    timings: Option<ScriptTimings>,
    prompt_tokens: u64,
    send_done: bool,
}

static ID_COUNTER: AtomicU64 = AtomicU64::new(0);

/// `chatcmpl-` and 32 letters/digits, like llama-server's ids (unique, not cryptographic).
fn completion_id() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64;
    let mut x = nanos
        ^ (ID_COUNTER
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut id = String::from("chatcmpl-");
    for _ in 0..32 {
        // xorshift64*
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        let r = x.wrapping_mul(0x2545_F491_4F6C_DD1D);
        id.push(ALPHABET[(r >> 58) as usize % ALPHABET.len()] as char);
    }
    id
}

impl AnswerCtx {
    fn new(reply: &Reply, request: &Value, model: &str) -> Self {
        let (id, created) = reply.identity.clone().unwrap_or_else(|| {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            (completion_id(), now.as_secs())
        });
        let prompt_chars: usize = messages(request)
            .iter()
            .map(|m| message_text(m).len())
            .sum();
        Self {
            id,
            created,
            model: model.to_owned(),
            include_usage: request
                .pointer("/stream_options/include_usage")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            finish_reason: reply.finish_reason.clone(),
            usage: reply.usage,
            timings: reply.timings.clone(),
            prompt_tokens: (prompt_chars / 4).max(1) as u64,
            send_done: reply.send_done,
        }
    }

    fn finish_reason(&self, turn: &Turn) -> String {
        self.finish_reason.clone().unwrap_or_else(|| {
            if turn.calls.is_empty() {
                "stop".into()
            } else {
                "tool_calls".into()
            }
        })
    }

    fn tokens(&self, turn: &Turn) -> (u64, u64) {
        self.usage.unwrap_or_else(|| {
            let pieces = turn.reasoning.len()
                + turn.content.len()
                + turn
                    .calls
                    .iter()
                    .map(|c| 1 + arg_pieces(&c.arguments).len())
                    .sum::<usize>();
            (self.prompt_tokens, pieces.max(1) as u64)
        })
    }

    fn usage_json(&self, turn: &Turn) -> String {
        let (prompt, completion) = self.tokens(turn);
        let cached = self.timings.as_ref().map_or(0, |t| t.cache_n);
        let usage = UsageOut {
            completion_tokens: completion,
            prompt_tokens: prompt,
            total_tokens: prompt + completion,
            prompt_tokens_details: CachedOut {
                cached_tokens: cached,
            },
        };
        serde_json::to_string(&usage).unwrap_or_default()
    }

    fn timings_json(&self, turn: &Turn) -> String {
        let (prompt, completion) = self.tokens(turn);
        let timings = self
            .timings
            .clone()
            .unwrap_or_else(|| ScriptTimings::for_tokens(prompt, completion));
        serde_json::to_string(&timings).unwrap_or_default()
    }

    /// One `chat.completion.chunk`, keys in llama-server's order.
    fn chunk(&self, choices: &str, tail: &str) -> String {
        format!(
            r#"{{"choices":{choices},"created":{},"id":{},"model":{},"system_fingerprint":{},"object":"chat.completion.chunk"{tail}}}"#,
            self.created,
            js(&self.id),
            js(&self.model),
            js(FINGERPRINT)
        )
    }

    fn delta_chunk(&self, delta: &str) -> String {
        self.chunk(
            &format!(r#"[{{"finish_reason":null,"index":0,"delta":{delta}}}]"#),
            "",
        )
    }

    /// The data payloads of a streamed answer, `[DONE]` included.
    fn stream_events(&self, turn: &Turn) -> Vec<String> {
        let mut out = vec![self.delta_chunk(r#"{"role":"assistant","content":null}"#)];
        for piece in &turn.reasoning {
            out.push(self.delta_chunk(&format!(r#"{{"reasoning_content":{}}}"#, js(piece))));
        }
        for piece in &turn.content {
            out.push(self.delta_chunk(&format!(r#"{{"content":{}}}"#, js(piece))));
        }
        for (index, call) in turn.calls.iter().enumerate() {
            out.push(self.delta_chunk(&format!(
                r#"{{"tool_calls":[{{"index":{index},"id":{},"type":"function","function":{{"name":{},"arguments":""}}}}]}}"#,
                js(&call.id),
                js(&call.name)
            )));
            for piece in arg_pieces(&call.arguments) {
                out.push(self.delta_chunk(&format!(
                    r#"{{"tool_calls":[{{"index":{index},"function":{{"arguments":{}}}}}]}}"#,
                    js(&piece)
                )));
            }
        }
        if let Some((at, bad)) = &turn.inject {
            out.insert((*at).min(out.len()), bad.clone());
        }
        if let Some(error) = &turn.error {
            out.push(error.clone());
            return out; // llama-server ends the stream right after an error
        }
        let finish = format!(
            r#"[{{"finish_reason":{},"index":0,"delta":{{}}}}]"#,
            js(&self.finish_reason(turn))
        );
        if self.include_usage {
            out.push(self.chunk(&finish, ""));
            let tail = format!(
                r#","usage":{},"timings":{}"#,
                self.usage_json(turn),
                self.timings_json(turn)
            );
            out.push(self.chunk("[]", &tail));
        } else {
            out.push(self.chunk(
                &finish,
                &format!(r#","timings":{}"#, self.timings_json(turn)),
            ));
        }
        if self.send_done {
            out.push("[DONE]".into());
        }
        out
    }

    /// A non-streamed `chat.completion`, keys in llama-server's order (as in `plain.json`).
    fn completion_json(&self, turn: &Turn) -> String {
        let content: String = turn.content.concat();
        let mut message = format!(r#"{{"role":"assistant","content":{}"#, js(&content));
        if !turn.reasoning.is_empty() {
            message.push_str(&format!(
                r#","reasoning_content":{}"#,
                js(&turn.reasoning.concat())
            ));
        }
        if !turn.calls.is_empty() {
            let calls: Vec<String> = turn
                .calls
                .iter()
                .map(|c| {
                    format!(
                        r#"{{"type":"function","function":{{"name":{},"arguments":{}}},"id":{}}}"#,
                        js(&c.name),
                        js(&c.arguments),
                        js(&c.id)
                    )
                })
                .collect();
            message.push_str(&format!(r#","tool_calls":[{}]"#, calls.join(",")));
        }
        message.push('}');
        format!(
            r#"{{"choices":[{{"finish_reason":{},"index":0,"message":{message}}}],"created":{},"model":{},"system_fingerprint":{},"object":"chat.completion","usage":{},"id":{},"timings":{}}}"#,
            js(&self.finish_reason(turn)),
            self.created,
            js(&self.model),
            js(FINGERPRINT),
            self.usage_json(turn),
            js(&self.id),
            self.timings_json(turn)
        )
    }
}

/// `GET /v1/models` in llama-server's shape (both the OpenAI and the Ollama-style list).
fn models_body(model: &str, n_ctx: u64) -> Value {
    json!({
        "models": [{
            "name": model, "model": model, "modified_at": "", "size": "", "digest": "",
            "type": "model", "description": "", "tags": [""], "capabilities": ["completion"],
            "parameters": "",
            "details": {"parent_model": "", "format": "gguf", "family": "", "families": [""],
                        "parameter_size": "", "quantization_level": ""}
        }],
        "object": "list",
        "data": [{
            "id": model, "aliases": [model], "tags": [], "object": "model",
            "created": SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs(),
            "owned_by": "llamacpp",
            "meta": {"vocab_type": 2, "n_vocab": 151936, "n_ctx": n_ctx, "n_ctx_train": n_ctx,
                     "n_embd": 64, "n_params": 9806144, "size": 19612928, "ftype": "F16"}
        }]
    })
}

// ---------------------------------------------------------------------------------------------
// llama-server's own endpoints: /props, /apply-template, /tokenize
// ---------------------------------------------------------------------------------------------

/// The number of tokens the scripted `/tokenize` gives a text.
pub fn scripted_token_count(text: &str) -> usize {
    text.len().div_ceil(BYTES_PER_SCRIPTED_TOKEN)
}

/// The prompt the scripted `/apply-template` renders for a chat request body: ChatML, with the
/// tools in the system message (Qwen2.5's way) and tool calls as `<tool_call>` blocks when
/// `with_tools`, then the generation prompt. Tool results are sent as a `tool` turn.
pub fn scripted_prompt(request: &Value, with_tools: bool) -> String {
    let mut prompt = String::new();
    let msgs = messages(request);
    let tools: Vec<&Value> = request
        .get("tools")
        .and_then(Value::as_array)
        .map(|t| t.iter().collect())
        .unwrap_or_default();
    let mut rest = msgs;
    if with_tools && !tools.is_empty() {
        let system = msgs
            .first()
            .filter(|m| m.get("role").and_then(Value::as_str) == Some("system"));
        if system.is_some() {
            rest = &msgs[1..];
        }
        prompt.push_str("<|im_start|>system\n");
        prompt.push_str(&system.map(message_text).unwrap_or_default());
        prompt.push_str("\n\n# Tools\n\n<tools>");
        for tool in tools {
            prompt.push('\n');
            prompt.push_str(&tool.to_string());
        }
        prompt.push_str("\n</tools><|im_end|>\n");
    }
    for m in rest {
        let role = m.get("role").and_then(Value::as_str).unwrap_or("user");
        prompt.push_str(&format!("<|im_start|>{role}\n{}", message_text(m)));
        let calls = m.get("tool_calls").and_then(Value::as_array);
        for call in calls.into_iter().flatten().filter(|_| with_tools) {
            let name = call
                .pointer("/function/name")
                .cloned()
                .unwrap_or(Value::Null);
            let arguments = call
                .pointer("/function/arguments")
                .and_then(Value::as_str)
                .and_then(|a| serde_json::from_str::<Value>(a).ok())
                .unwrap_or(Value::Null);
            let body = json!({"name": name, "arguments": arguments});
            prompt.push_str(&format!("\n<tool_call>\n{body}\n</tool_call>"));
        }
        prompt.push_str("<|im_end|>\n");
    }
    prompt.push_str("<|im_start|>assistant\n");
    prompt
}

/// `GET /props` in llama-server's shape (as recorded in `props-tiny.json`, with fewer sampling
/// parameters and a shortened template).
fn props_body(model: &str, setup: &ServerSetup) -> Value {
    let mut props = json!({
        "default_generation_settings": {
            "params": {"seed": 4294967295u64, "temperature": 0.8, "top_k": 40, "top_p": 0.95,
                       "min_p": 0.05, "max_tokens": -1, "n_predict": -1, "stream": false,
                       "chat_format": "Content-only"},
            "n_ctx": setup.n_ctx
        },
        "total_slots": 2,
        "model_alias": model,
        "model_ftype": "F16",
        "model_path": model,
        "modalities": {"vision": false, "video": false, "audio": false},
        "media_marker": "<__media_scripted__>",
        "endpoint_slots": true,
        "endpoint_props": false,
        "endpoint_metrics": false,
        "ui": true,
        "ui_settings": {},
        "chat_template": "{%- for message in messages %}<|im_start|>{{ message.role }}\n{{ message.content }}<|im_end|>\n{%- endfor %}",
        "bos_token": "<|endoftext|>",
        "eos_token": "<|im_end|>",
        "build_info": FINGERPRINT,
        "is_sleeping": false,
        "cors_proxy_enabled": false
    });
    if let PropsMode::Caps { supports_tools } = setup.props {
        props["chat_template_caps"] = json!({
            "supports_object_arguments": supports_tools,
            "supports_parallel_tool_calls": supports_tools,
            "supports_preserve_reasoning": false,
            "supports_reasoning_effort": false,
            "supports_string_content": true,
            "supports_system_role": true,
            "supports_tool_calls": supports_tools,
            "supports_tools": supports_tools,
            "supports_typed_content": false
        });
    }
    props
}
