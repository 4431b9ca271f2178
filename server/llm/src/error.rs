//! What can go wrong talking to a model server, with messages that say what to do about it.
//!
//! The messages are shown to users as they are (in chat, in a run's `error`), so each names the
//! server and the fix. The server's own error body is parsed (llama-server and OpenAI send
//! `{"error": {"code", "message", "type"}}`) so its message reaches the user instead of a bare
//! status code, and so a context overflow becomes [`LlmError::ContextOverflow`] with numbers.

use super::outcome::ChatOutcome;
use serde_json::Value;
use std::fmt;
use std::time::Duration;

/// The command that starts llama-server where `base_url` expects it: its port (the scheme's
/// default when the URL names none, llama-server's 8080 when the URL cannot be read) and, when
/// it is not loopback, its host.
pub fn start_command(base_url: &str) -> String {
    let url = reqwest::Url::parse(base_url.trim()).ok();
    let port = url
        .as_ref()
        .and_then(reqwest::Url::port_or_known_default)
        .unwrap_or(8080);
    let host = url.as_ref().and_then(reqwest::Url::host_str).unwrap_or("");
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host.is_empty()
        || host.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    let host = if loopback {
        String::new()
    } else {
        format!("--host {bare} ")
    };
    format!("llama-server -m MODEL.gguf {host}--port {port} --jinja")
}

/// What to do when nothing answers at `base_url`: the one text every surface shows (a chat
/// turn's error, the web page's banner, an editor's message, a run's error).
pub fn start_hint(base_url: &str) -> String {
    format!(
        "Start one with `{}` (or `./scripts/studio.sh`, which starts the bundled demo model), or \
         point the profile's base_url (or NOCTUNE_STUDIO_LLM_BASE_URL) at a running server",
        start_command(base_url)
    )
}

/// Error bodies and chunks are quoted in messages; this keeps a stray HTML page short.
const QUOTE_LIMIT: usize = 300;

#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// No connection: nothing listens at the URL, DNS failed, TLS failed, the connection was
    /// dropped before an answer.
    #[error("cannot reach the model server at {url} ({}). {}", short_reason(.source), start_hint(.url))]
    Unreachable {
        url: String,
        #[source]
        source: reqwest::Error,
    },

    /// The server answered with an error status (or sent an error object mid-stream; then
    /// `status` is the error's `code`, 500 if it has none). `kind` is the error's `type`
    /// (e.g. `invalid_request_error`), when the body had one.
    #[error("the model server at {url} answered HTTP {status}: {message}{}", http_hint(*.status))]
    Http {
        status: u16,
        url: String,
        message: String,
        kind: Option<String>,
    },

    /// The prompt does not fit: llama-server's `exceed_context_size_error`.
    #[error(
        "the prompt needs {n_prompt_tokens} tokens but the model server's context holds only \
         {n_ctx}; shorten the conversation (or the files attached to it), or restart llama-server \
         with a larger `--ctx-size` and set the profile's context_window to match"
    )]
    ContextOverflow { n_prompt_tokens: u64, n_ctx: u64 },

    /// A `data:` line that is not a JSON chunk (or not UTF-8).
    #[error(
        "the model server sent a stream chunk that could not be read ({detail}): `{line}`; check \
         that base_url points at an OpenAI-compatible endpoint (for llama-server, ending in /v1)"
    )]
    MalformedChunk { line: String, detail: String },

    /// The stream ended before the answer was complete: no `finish_reason` and no `[DONE]`.
    /// `partial` holds everything that did arrive (text, reasoning, tool calls so far).
    #[error(
        "the model server's stream ended before the answer was complete ({} characters and {} \
         tool call(s) arrived, no finish_reason and no [DONE]); the server may have crashed or \
         been restarted: check its log",
        .partial.content.chars().count(),
        .partial.tool_calls.len()
    )]
    StreamCut { partial: Box<ChatOutcome> },

    #[error("{}", timeout_message(*.after, *.phase))]
    Timeout {
        after: Duration,
        phase: TimeoutPhase,
    },

    #[error("the request to the model server was cancelled")]
    Cancelled,

    /// The endpoint itself is unusable (a base_url that is not a URL, an api_key that cannot be
    /// sent as a header); found when the client is built.
    #[error(
        "the model server endpoint `{url}` is not usable: {detail}; expected a base_url like \
         http://127.0.0.1:8080/v1"
    )]
    InvalidEndpoint { url: String, detail: String },

    /// A non-streamed answer (e.g. `GET /models`) that is not the expected JSON.
    #[error(
        "the model server at {url} sent an answer that could not be read ({detail}); check that \
         base_url points at an OpenAI-compatible endpoint (for llama-server, ending in /v1)"
    )]
    InvalidResponse { url: String, detail: String },
}

/// Which wait ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutPhase {
    /// Opening the TCP/TLS connection (`connect_timeout`).
    Connect,
    /// Waiting for the first byte of the answer (`request_timeout`); includes prompt processing.
    FirstByte,
    /// A gap between two pieces of a streamed answer (`idle_timeout`).
    Idle,
    /// The whole request (`request_timeout`) after the answer had started.
    Total,
}

impl fmt::Display for TimeoutPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TimeoutPhase::Connect => "connect",
            TimeoutPhase::FirstByte => "first byte",
            TimeoutPhase::Idle => "idle",
            TimeoutPhase::Total => "total",
        })
    }
}

impl LlmError {
    /// A stable name of what went wrong, for records that outlive the message (a chat
    /// session's failed turn) and for clients that decide by kind.
    pub fn code(&self) -> &'static str {
        match self {
            LlmError::Unreachable { .. } => "model_unreachable",
            LlmError::Http { .. } => "model_http_error",
            LlmError::ContextOverflow { .. } => "context_overflow",
            LlmError::MalformedChunk { .. } => "malformed_chunk",
            LlmError::StreamCut { .. } => "stream_cut",
            LlmError::Timeout { .. } => "model_timeout",
            LlmError::Cancelled => "cancelled",
            LlmError::InvalidEndpoint { .. } => "invalid_endpoint",
            LlmError::InvalidResponse { .. } => "invalid_response",
        }
    }

    /// True when the server refused the request because of its native `tools` (a server started
    /// without `--jinja`, a model whose template has no tool support, vLLM without
    /// `--enable-auto-tool-choice`): the caller should retry in prompt tool mode.
    pub fn is_tools_rejected(&self) -> bool {
        match self {
            LlmError::Http {
                status,
                message,
                kind,
                ..
            } => {
                *status >= 400 && {
                    let message = message.to_ascii_lowercase();
                    let kind = kind.as_deref().unwrap_or_default().to_ascii_lowercase();
                    message.contains("tool") || kind.contains("tool")
                }
            }
            _ => false,
        }
    }

    pub fn is_context_overflow(&self) -> bool {
        matches!(self, LlmError::ContextOverflow { .. })
    }

    /// What arrived before a stream was cut.
    pub fn partial(&self) -> Option<&ChatOutcome> {
        match self {
            LlmError::StreamCut { partial } => Some(partial),
            _ => None,
        }
    }
}

/// Turns an error answer into an [`LlmError`], reading the body the way servers write it:
/// `{"error": {"message", "type", "code", ...}}` (llama-server, OpenAI, vLLM), `{"error": "..."}`
/// (Ollama), `{"detail": "..."}` (FastAPI), `{"message": "..."}`, or plain text.
pub(crate) fn from_http(status: u16, url: &str, body: &str) -> LlmError {
    match serde_json::from_str::<Value>(body) {
        Ok(value) => from_error_value(status, url, &value)
            .unwrap_or_else(|| http(status, url, quote(body), None)),
        Err(_) => {
            let text = body.trim();
            let message = if text.is_empty() {
                default_reason(status)
            } else {
                quote(text)
            };
            http(status, url, message, None)
        }
    }
}

/// An error object sent inside a stream (`data: {"error": {...}}`), or the body of an error
/// answer. `status` is used when the object has no numeric `code`. `None` if `body` does not look
/// like an error at all.
pub(crate) fn from_error_value(status: u16, url: &str, body: &Value) -> Option<LlmError> {
    let error = body.get("error").unwrap_or(body);
    let text = |key: &str| error.get(key).and_then(Value::as_str).map(str::to_owned);
    let (message, kind) = match error {
        Value::String(s) => (Some(s.clone()), None),
        Value::Object(_) => (
            text("message").or_else(|| text("detail")),
            text("type").or_else(|| text("code")),
        ),
        _ => (None, None),
    };
    let message = message?;
    if kind.as_deref() == Some("exceed_context_size_error") {
        let number = |key: &str| error.get(key).and_then(Value::as_u64);
        if let (Some(n_prompt_tokens), Some(n_ctx)) = (number("n_prompt_tokens"), number("n_ctx")) {
            return Some(LlmError::ContextOverflow {
                n_prompt_tokens,
                n_ctx,
            });
        }
    }
    let status = error
        .get("code")
        .and_then(Value::as_u64)
        .and_then(|code| u16::try_from(code).ok())
        .filter(|code| (100..600).contains(code))
        .unwrap_or(status);
    Some(http(status, url, quote(&message), kind))
}

fn http(status: u16, url: &str, message: String, kind: Option<String>) -> LlmError {
    LlmError::Http {
        status,
        url: url.to_owned(),
        message,
        kind,
    }
}

fn default_reason(status: u16) -> String {
    reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("no message")
        .to_owned()
}

/// A short quote of server text: one line, at most [`QUOTE_LIMIT`] characters.
pub(crate) fn quote(text: &str) -> String {
    let one_line = text.trim().replace(['\r', '\n'], " ");
    match one_line.char_indices().nth(QUOTE_LIMIT) {
        Some((cut, _)) => format!("{}…", &one_line[..cut]),
        None => one_line,
    }
}

fn http_hint(status: u16) -> &'static str {
    match status {
        401 | 403 => " (check the profile's api_key)",
        404 => " (check that base_url points at the OpenAI-compatible API, usually ending in /v1)",
        503 => " (the server is busy or still loading the model; try again shortly)",
        _ => "",
    }
}

fn timeout_message(after: Duration, phase: TimeoutPhase) -> String {
    match phase {
        TimeoutPhase::Connect => format!(
            "could not connect to the model server within {after:?} (connect timeout); check that \
             it is running and that base_url points at it"
        ),
        TimeoutPhase::FirstByte => format!(
            "the model server sent nothing for {after:?} (request timeout); the prompt may be too \
             long for this machine or the server busy with other requests: raise the profile's \
             timeout or shorten the prompt"
        ),
        TimeoutPhase::Idle => format!(
            "the model server stopped streaming: nothing arrived for {after:?} (idle timeout); the \
             server may be overloaded or stuck: check its log"
        ),
        TimeoutPhase::Total => format!(
            "the answer took longer than {after:?} (request timeout); raise the profile's timeout \
             or lower max_tokens"
        ),
    }
}

/// The most telling part of a transport error: "connection refused" rather than reqwest's
/// "error sending request for url (...)".
fn short_reason(error: &reqwest::Error) -> String {
    let mut innermost: &dyn std::error::Error = error;
    let mut current: Option<&dyn std::error::Error> = Some(error);
    while let Some(e) = current {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(text) = io_kind_text(io.kind())
        {
            return text.to_owned();
        }
        innermost = e;
        current = e.source();
    }
    if error.is_timeout() {
        return "timed out".to_owned();
    }
    innermost.to_string()
}

fn io_kind_text(kind: std::io::ErrorKind) -> Option<&'static str> {
    use std::io::ErrorKind::*;
    Some(match kind {
        ConnectionRefused => "connection refused",
        ConnectionReset => "connection reset",
        ConnectionAborted => "connection aborted",
        NotConnected => "not connected",
        AddrNotAvailable => "address not available",
        TimedOut => "timed out",
        UnexpectedEof => "connection closed",
        HostUnreachable => "host unreachable",
        NetworkUnreachable => "network unreachable",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::recording;

    const URL: &str = "http://127.0.0.1:8080/v1";

    #[test]
    fn recorded_context_overflow_has_the_numbers() {
        let err = from_http(400, URL, &recording("context-overflow.json"));
        match &err {
            LlmError::ContextOverflow {
                n_prompt_tokens,
                n_ctx,
            } => {
                assert_eq!((*n_prompt_tokens, *n_ctx), (5030, 4096));
            }
            other => panic!("expected ContextOverflow, got {other:?}"),
        }
        let text = err.to_string();
        assert!(text.contains("5030") && text.contains("4096") && text.contains("--ctx-size"));
    }

    #[test]
    fn recorded_bad_request_keeps_message_and_type() {
        let err = from_http(400, URL, &recording("bad-request.json"));
        match &err {
            LlmError::Http {
                status,
                message,
                kind,
                url,
            } => {
                assert_eq!(*status, 400);
                assert_eq!(message, "Expected 'messages' to be an array");
                assert_eq!(kind.as_deref(), Some("invalid_request_error"));
                assert_eq!(url, URL);
            }
            other => panic!("expected Http, got {other:?}"),
        }
        assert!(!err.is_tools_rejected());
        assert_eq!(
            err.to_string(),
            "the model server at http://127.0.0.1:8080/v1 answered HTTP 400: Expected 'messages' \
             to be an array"
        );
    }

    #[test]
    fn recorded_not_found_keeps_message_and_type() {
        // What llama-server answers for a path it does not have (an older build's /apply-template).
        let err = from_http(404, URL, &recording("not-found.json"));
        assert!(
            matches!(&err, LlmError::Http { status: 404, message, kind, .. }
                if message == "File Not Found" && kind.as_deref() == Some("not_found_error")),
            "{err:?}"
        );
        assert!(!err.is_tools_rejected());
    }

    #[test]
    fn other_error_body_shapes() {
        let ollama = from_http(400, URL, r#"{"error":"llama3 does not support tools"}"#);
        assert!(ollama.is_tools_rejected(), "{ollama}");

        let fastapi = from_http(422, URL, r#"{"detail":"bad things"}"#);
        assert!(matches!(&fastapi, LlmError::Http { message, .. } if message == "bad things"));

        let html = from_http(502, URL, "<html>\n<body>Bad Gateway</body></html>");
        assert!(matches!(&html, LlmError::Http { status: 502, message, .. }
            if message == "<html> <body>Bad Gateway</body></html>"));

        let empty = from_http(503, URL, "");
        assert!(empty.to_string().contains("Service Unavailable"), "{empty}");
        assert!(empty.to_string().contains("still loading"), "{empty}");

        let long = from_http(500, URL, &"x".repeat(5000));
        assert!(long.to_string().len() < 600);
    }

    #[test]
    fn tools_rejection_is_recognised() {
        let jinja = from_http(
            400,
            URL,
            r#"{"error":{"code":400,"message":"tools param requires --jinja flag","type":"invalid_request_error"}}"#,
        );
        assert!(jinja.is_tools_rejected());
        let vllm = from_http(
            400,
            URL,
            r#"{"object":"error","message":"\"auto\" tool choice requires --enable-auto-tool-choice","type":"BadRequestError","code":400}"#,
        );
        assert!(vllm.is_tools_rejected(), "{vllm}");
        let other = from_http(500, URL, r#"{"error":{"message":"out of memory"}}"#);
        assert!(!other.is_tools_rejected());
    }

    #[test]
    fn the_start_hint_names_the_profiles_port() {
        assert_eq!(
            start_command("http://127.0.0.1:8091/v1"),
            "llama-server -m MODEL.gguf --port 8091 --jinja"
        );
        assert_eq!(
            start_command("http://localhost/v1"),
            "llama-server -m MODEL.gguf --port 80 --jinja"
        );
        assert_eq!(
            start_command("http://10.0.0.2:9000/v1"),
            "llama-server -m MODEL.gguf --host 10.0.0.2 --port 9000 --jinja"
        );
        assert_eq!(
            start_command("not a url"),
            "llama-server -m MODEL.gguf --port 8080 --jinja"
        );
        let hint = start_hint("http://[::1]:7001/v1");
        assert!(
            hint.contains("--port 7001 ") && hint.contains("./scripts/studio.sh"),
            "{hint}"
        );
        assert!(!hint.contains("8080"), "{hint}");
    }

    #[test]
    fn in_stream_error_uses_its_code() {
        let value = serde_json::json!({"error": {"code": 503, "message": "Loading model", "type": "unavailable_error"}});
        let err = from_error_value(500, URL, &value).expect("an error");
        assert!(matches!(err, LlmError::Http { status: 503, .. }));
        assert!(from_error_value(500, URL, &serde_json::json!({"choices": []})).is_none());
    }
}
