//! `noctune_llm` against the scripted model server, over real HTTP; and the scripted server
//! against llama-server's recorded output, so the stand-in provably matches the real server.

use crate::support::llm_server::{self, MODEL, Reply, Script, ScriptTimings, ScriptedLlm};
use crate::support::wait::wait_until_async;
use noctune_llm::{
    CancelToken, ChatMessage, ChatOutcome, ChatRequest, LlmClient, LlmError, StreamEvent,
    TimeoutPhase, ToolCall, ToolSpec,
};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

// ---- helpers ----

/// A recorded llama-server file (fixtures/llm/recordings).
fn recording(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/llm/recordings")
        .join(name);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("recording {name} not readable at {}: {e}", path.display()))
}

fn data_lines(sse: &str) -> Vec<&str> {
    sse.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect()
}

fn request() -> ChatRequest {
    ChatRequest::new(vec![
        ChatMessage::system("You are terse."),
        ChatMessage::user("Say hello"),
    ])
}

fn read_file_tool() -> ToolSpec {
    ToolSpec::function(
        "readFile",
        "Read a file of the repository",
        json!({"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}),
    )
}

async fn chat(
    client: &LlmClient,
    req: &ChatRequest,
) -> (Result<ChatOutcome, LlmError>, Vec<StreamEvent>) {
    let mut events = Vec::new();
    let result = client
        .stream_chat(req, &CancelToken::new(), &mut |e| events.push(e))
        .await;
    (result, events)
}

async fn chat_with(
    server: &ScriptedLlm,
    req: &ChatRequest,
) -> (Result<ChatOutcome, LlmError>, Vec<StreamEvent>) {
    let client = LlmClient::new(server.endpoint()).expect("client");
    chat(&client, req).await
}

fn count(events: &[StreamEvent], pred: impl Fn(&StreamEvent) -> bool) -> usize {
    events.iter().filter(|e| pred(e)).count()
}

/// One raw HTTP/1.1 exchange with `Connection: close`: the response head (through the blank
/// line) and the body, de-chunked if it was chunked.
async fn raw_exchange(
    server: &ScriptedLlm,
    method: &str,
    path: &str,
    body: &str,
) -> (String, String) {
    let mut stream = tokio::net::TcpStream::connect(server.addr())
        .await
        .expect("connect");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        server.addr(),
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read");
    let raw = String::from_utf8(raw).expect("utf-8 answer");
    let split = raw.find("\r\n\r\n").expect("a head") + 4;
    let (head, body) = raw.split_at(split);
    let body = if head.contains("Transfer-Encoding: chunked") {
        let mut out = String::new();
        let mut rest = body;
        loop {
            let (size, after) = rest.split_once("\r\n").expect("chunk size line");
            let size = usize::from_str_radix(size, 16).expect("hex size");
            if size == 0 {
                break;
            }
            out.push_str(&after[..size]);
            rest = &after[size + 2..];
        }
        out
    } else {
        body.to_owned()
    };
    (head.to_owned(), body)
}

/// The scripted reply that reproduces `plain-stream.sse`: its pieces, numbers and identity.
fn reply_like_plain_stream() -> Reply {
    let recorded = recording("plain-stream.sse");
    let chunks: Vec<Value> = data_lines(&recorded)
        .into_iter()
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).expect("recorded chunk is JSON"))
        .collect();
    let pieces: Vec<&str> = chunks
        .iter()
        .filter_map(|c| {
            c.pointer("/choices/0/delta/content")
                .and_then(Value::as_str)
        })
        .collect();
    let last = chunks.last().expect("chunks");
    let timings: ScriptTimings =
        serde_json::from_value(last["timings"].clone()).expect("recorded timings");
    let usage = &last["usage"];
    Reply::text(&pieces)
        .finish_reason("length")
        .usage(
            usage["prompt_tokens"].as_u64().unwrap(),
            usage["completion_tokens"].as_u64().unwrap(),
        )
        .timings(timings)
        .identity(
            chunks[0]["id"].as_str().unwrap(),
            chunks[0]["created"].as_u64().unwrap(),
        )
}

fn streaming_body() -> String {
    json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": true,
           "stream_options": {"include_usage": true}, "max_tokens": 8})
    .to_string()
}

// ---- the stand-in against the recordings ----

#[tokio::test]
async fn stand_in_stream_matches_the_recording_byte_for_byte() {
    let server = ScriptedLlm::start(reply_like_plain_stream());
    let (head, body) =
        raw_exchange(&server, "POST", "/v1/chat/completions", &streaming_body()).await;
    assert_eq!(head, recording("plain-stream.headers"), "response headers");
    assert_eq!(body, recording("plain-stream.sse"), "event stream");
}

#[tokio::test]
async fn stand_in_error_answers_match_the_recordings() {
    let server = ScriptedLlm::start(Script::new().reply(Reply::context_overflow(5030, 4096)));
    let (head, body) =
        raw_exchange(&server, "POST", "/v1/chat/completions", &streaming_body()).await;
    assert_eq!(head, recording("context-overflow.headers"));
    assert_eq!(body, recording("context-overflow.json"));

    // llama-server's own request check, not a scripted reply: nothing is consumed.
    let (head, body) = raw_exchange(
        &server,
        "POST",
        "/v1/chat/completions",
        r#"{"messages": "hi"}"#,
    )
    .await;
    assert_eq!(head, recording("bad-request.headers"));
    assert_eq!(body, recording("bad-request.json"));
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn stand_in_models_list_matches_the_recording() {
    // The recorded server's context (-c 4096); the stand-in's default is larger.
    let server = ScriptedLlm::start(Script::new().context_window(4096));
    let (head, body) = raw_exchange(&server, "GET", "/v1/models", "").await;
    assert!(
        head.starts_with("HTTP/1.1 200 OK\r\nServer: llama.cpp\r\n"),
        "{head}"
    );
    let mut ours: Value = serde_json::from_str(&body).expect("json");
    let mut recorded: Value = serde_json::from_str(&recording("models.json")).expect("json");
    ours["data"][0]["created"] = json!(0);
    recorded["data"][0]["created"] = json!(0);
    assert_eq!(ours, recorded);

    let (_, health) = raw_exchange(&server, "GET", "/health", "").await;
    assert_eq!(health, r#"{"status":"ok"}"#);
    let client = LlmClient::new(server.endpoint()).expect("client");
    assert_eq!(
        client.list_models().await.expect("models"),
        vec![MODEL.to_string()]
    );
}

#[tokio::test]
async fn client_sees_the_same_events_from_the_recording_and_the_stand_in() {
    let server = ScriptedLlm::start(vec![
        Reply::raw_sse(recording("plain-stream.sse")),
        reply_like_plain_stream(),
    ]);
    let (recorded, recorded_events) = chat_with(&server, &request()).await;
    let (scripted, scripted_events) = chat_with(&server, &request()).await;
    let (mut recorded, mut scripted) = (recorded.expect("recorded"), scripted.expect("scripted"));
    assert_eq!(recorded_events, scripted_events);
    recorded.time_to_first_byte = Duration::ZERO;
    scripted.time_to_first_byte = Duration::ZERO;
    assert_eq!(recorded, scripted);
    // What the recording holds, as events: 6 content pieces, finish, usage, timings.
    let kinds: Vec<&str> = recorded_events
        .iter()
        .map(|e| match e {
            StreamEvent::ContentDelta(_) => "content",
            StreamEvent::Finished { .. } => "finished",
            StreamEvent::Usage(_) => "usage",
            StreamEvent::Timings(_) => "timings",
            _ => "other",
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "content", "content", "content", "content", "content", "content", "finished", "usage",
            "timings"
        ]
    );
    assert_eq!(recorded.finish_reason.as_deref(), Some("length"));
    assert_eq!(recorded.usage.as_ref().map(|u| u.total_tokens), Some(26));
}

// ---- the client over real HTTP ----

#[tokio::test]
async fn streamed_answer_arrives_in_pieces() {
    let server = ScriptedLlm::start(Reply::text(&["Hel", "lo, ", "wor", "ld"]).gap(5));
    let (result, events) = chat_with(&server, &request()).await;
    let outcome = result.expect("answer");
    assert_eq!(outcome.content, "Hello, world");
    assert_eq!(outcome.finish_reason.as_deref(), Some("stop"));
    assert_eq!(
        count(&events, |e| matches!(e, StreamEvent::ContentDelta(_))),
        4
    );
    assert_eq!(events[0], StreamEvent::ContentDelta("Hel".into()));

    let sent = server.last_request().expect("a request");
    assert_eq!(sent["stream"], json!(true));
    assert_eq!(sent["stream_options"], json!({"include_usage": true}));
    assert_eq!(sent["model"], json!(MODEL));
    assert_eq!(
        sent["messages"][1],
        json!({"role": "user", "content": "Say hello"})
    );
    assert!(sent.get("tools").is_none());
}

#[tokio::test]
async fn reasoning_is_kept_apart_from_the_answer() {
    let server = ScriptedLlm::start(Reply::reasoning_then_text(
        &["The user", " wants a greeting."],
        &["Hello", "!"],
    ));
    let (result, events) = chat_with(&server, &request()).await;
    let outcome = result.expect("answer");
    assert_eq!(outcome.reasoning, "The user wants a greeting.");
    assert_eq!(outcome.content, "Hello!");
    assert_eq!(
        count(&events, |e| matches!(e, StreamEvent::ReasoningDelta(_))),
        2
    );
    let message = outcome.assistant_message();
    assert_eq!(message.content.as_deref(), Some("Hello!"));
    assert_eq!(
        message.reasoning_content.as_deref(),
        Some("The user wants a greeting.")
    );
}

#[tokio::test]
async fn a_native_tool_call_split_over_many_chunks_is_assembled() {
    let args = r#"{"path": "server/llm/client.rs", "start_line": 10, "end_line": 42}"#;
    let server = ScriptedLlm::start(Reply::tool_call("call_7", "readFile", args));
    let mut req = request();
    req.tools = Some(vec![read_file_tool()]);
    req.tool_choice = Some(json!("auto"));
    let (result, events) = chat_with(&server, &req).await;
    let outcome = result.expect("answer");
    assert_eq!(
        outcome.tool_calls,
        vec![ToolCall::function("call_7", "readFile", args)]
    );
    assert_eq!(outcome.finish_reason.as_deref(), Some("tool_calls"));
    let pieces = count(&events, |e| {
        matches!(e, StreamEvent::ToolCallArgumentsDelta { index: 0, .. })
    });
    assert!(pieces > 10, "arguments came in {pieces} pieces");
    assert_eq!(
        events[0],
        StreamEvent::ToolCallStarted {
            index: 0,
            id: "call_7".into(),
            name: "readFile".into()
        }
    );
    let sent = server.last_request().expect("request");
    assert_eq!(sent["tools"][0]["function"]["name"], json!("readFile"));
    assert_eq!(sent["tools"][0]["type"], json!("function"));
    assert_eq!(sent["tool_choice"], json!("auto"));
}

#[tokio::test]
async fn two_calls_in_one_turn_are_both_assembled() {
    let server = ScriptedLlm::start(Reply::text(&["Let me ", "look."]).with_tool_calls([
        ("call_a", "readFile", r#"{"path": "README.md"}"#),
        (
            "call_b",
            "search",
            r#"{"pattern": "fn stream_chat", "glob": "*.rs"}"#,
        ),
    ]));
    let mut req = request();
    req.tools = Some(vec![read_file_tool()]);
    let (result, events) = chat_with(&server, &req).await;
    let outcome = result.expect("answer");
    assert_eq!(outcome.content, "Let me look.");
    assert_eq!(
        outcome.tool_calls,
        vec![
            ToolCall::function("call_a", "readFile", r#"{"path": "README.md"}"#),
            ToolCall::function(
                "call_b",
                "search",
                r#"{"pattern": "fn stream_chat", "glob": "*.rs"}"#
            ),
        ]
    );
    assert_eq!(
        count(&events, |e| matches!(
            e,
            StreamEvent::ToolCallStarted { .. }
        )),
        2
    );
    assert!(
        count(&events, |e| matches!(
            e,
            StreamEvent::ToolCallArgumentsDelta { index: 1, .. }
        )) > 3
    );

    // The assistant message for the history carries both calls; tool results answer them.
    let message = outcome.assistant_message();
    assert_eq!(message.tool_calls.as_ref().map(Vec::len), Some(2));
}

#[tokio::test]
async fn usage_and_timings_are_read() {
    let server = ScriptedLlm::start(Reply::text(&["a", "b", "c"]).usage(120, 3));
    let (result, events) = chat_with(&server, &request()).await;
    let outcome = result.expect("answer");
    let usage = outcome.usage.expect("usage");
    assert_eq!(
        (
            usage.prompt_tokens,
            usage.completion_tokens,
            usage.total_tokens
        ),
        (120, 3, 123)
    );
    assert_eq!(
        usage.extra["prompt_tokens_details"],
        json!({"cached_tokens": 0})
    );
    let timings = outcome.timings.expect("timings");
    assert_eq!(timings.prompt_n, Some(120));
    assert_eq!(timings.predicted_n, Some(3));
    assert!(timings.predicted_per_second.is_some_and(|s| s > 0.0));
    assert_eq!(count(&events, |e| matches!(e, StreamEvent::Usage(_))), 1);
    assert_eq!(count(&events, |e| matches!(e, StreamEvent::Timings(_))), 1);
    assert!(outcome.time_to_first_byte < Duration::from_secs(5));
}

#[tokio::test]
async fn server_down_is_unreachable_and_names_the_url() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/v1");
    let client = LlmClient::new(noctune_llm::LlmEndpoint::new(&url, "m")).expect("client");
    let (result, events) = chat(&client, &request()).await;
    let err = result.expect_err("nothing listens");
    assert!(
        matches!(&err, LlmError::Unreachable { url: u, .. } if *u == url),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains(&url), "{text}");
    assert!(text.contains("connection refused"), "{text}");
    assert!(
        text.contains(&format!("llama-server -m MODEL.gguf --port {port} --jinja")),
        "{text}"
    );
    assert!(text.contains("NOCTUNE_STUDIO_LLM_BASE_URL"), "{text}");
    assert!(events.is_empty());
    assert!(matches!(
        client.list_models().await,
        Err(LlmError::Unreachable { .. })
    ));
}

#[tokio::test]
async fn http_500_is_an_http_error_with_the_message() {
    let server = ScriptedLlm::start(Reply::server_error("failed to allocate the KV cache"));
    let (result, _) = chat_with(&server, &request()).await;
    let err = result.expect_err("500");
    match &err {
        LlmError::Http {
            status,
            url,
            message,
            kind,
        } => {
            assert_eq!(*status, 500);
            assert_eq!(url, &server.base_url());
            assert_eq!(message, "failed to allocate the KV cache");
            assert_eq!(kind.as_deref(), Some("server_error"));
        }
        other => panic!("expected Http, got {other:?}"),
    }
    assert!(
        err.to_string()
            .contains("HTTP 500: failed to allocate the KV cache"),
        "{err}"
    );
    assert!(!err.is_tools_rejected());
}

#[tokio::test]
async fn context_overflow_has_the_numbers() {
    let server = ScriptedLlm::start(Reply::context_overflow(5030, 4096));
    let (result, _) = chat_with(&server, &request()).await;
    let err = result.expect_err("overflow");
    assert!(
        matches!(
            err,
            LlmError::ContextOverflow {
                n_prompt_tokens: 5030,
                n_ctx: 4096
            }
        ),
        "{err:?}"
    );
    assert!(err.is_context_overflow());
}

#[tokio::test]
async fn rejected_tools_are_recognised_so_chat_can_fall_back() {
    let server = ScriptedLlm::start(
        Script::new()
            .when(llm_server::has_tools, Reply::tools_unsupported())
            .fallback(|req| {
                Reply::text(&[&format!("prompt mode: {}", llm_server::last_user_text(req))])
            }),
    );
    let mut with_tools = request();
    with_tools.tools = Some(vec![read_file_tool()]);
    let (result, _) = chat_with(&server, &with_tools).await;
    let err = result.expect_err("tools refused");
    assert!(err.is_tools_rejected(), "{err}");
    assert!(matches!(err, LlmError::Http { status: 400, .. }));

    let (result, _) = chat_with(&server, &request()).await;
    assert_eq!(result.expect("no tools").content, "prompt mode: Say hello");
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn a_malformed_chunk_is_reported() {
    let server = ScriptedLlm::start(Reply::malformed_chunk());
    let (result, events) = chat_with(&server, &request()).await;
    match result {
        Err(LlmError::MalformedChunk { line, detail }) => {
            assert!(line.contains("brok"), "{line}");
            assert!(!detail.is_empty());
        }
        other => panic!("expected MalformedChunk, got {other:?}"),
    }
    assert_eq!(events, vec![StreamEvent::ContentDelta("Hello".into())]);
}

#[tokio::test]
async fn a_stream_cut_mid_call_keeps_the_partial_answer() {
    let server = ScriptedLlm::start(Reply::cut_mid_call().with_text(&["Reading it."]));
    let (result, _) = chat_with(&server, &request()).await;
    let err = result.expect_err("cut");
    let partial = err.partial().expect("partial answer").clone();
    assert_eq!(partial.content, "Reading it.");
    assert_eq!(partial.tool_calls.len(), 1);
    let call = &partial.tool_calls[0];
    assert_eq!(
        (call.id.as_str(), call.function.name.as_str()),
        ("call_cut", "readFile")
    );
    let full = r#"{"path": "src/lib.rs", "start": 10, "end": 40}"#;
    assert!(!call.function.arguments.is_empty() && call.function.arguments.len() < full.len());
    assert!(full.starts_with(&call.function.arguments));
    assert!(partial.finish_reason.is_none());
    assert!(
        err.to_string()
            .contains("ended before the answer was complete"),
        "{err}"
    );
}

#[tokio::test]
async fn stream_endings_without_done() {
    // Ends cleanly, but before any finish_reason: cut.
    let server = ScriptedLlm::start([
        Reply::text(&["one", "two", "three"]).end_after(3),
        Reply::text(&["whole"]).without_done(),
        Reply::stream_error(&["par", "tial"], "the slot was cancelled"),
    ]);
    let (result, _) = chat_with(&server, &request()).await;
    match result {
        Err(LlmError::StreamCut { partial }) => assert_eq!(partial.content, "onetwo"),
        other => panic!("expected StreamCut, got {other:?}"),
    }
    // A finish_reason without [DONE] is a complete answer (some servers never send [DONE]).
    let (result, _) = chat_with(&server, &request()).await;
    assert_eq!(result.expect("complete").content, "whole");
    // An error object inside the stream.
    let (result, _) = chat_with(&server, &request()).await;
    match result {
        Err(LlmError::Http {
            status: 500,
            message,
            ..
        }) => {
            assert_eq!(message, "the slot was cancelled")
        }
        other => panic!("expected Http, got {other:?}"),
    }
}

#[tokio::test]
async fn cancellation_ends_promptly() {
    let server = ScriptedLlm::start([
        Reply::text(&["never"]).delay(10_000),
        Reply::text(&["a", "b", "c", "d"]).stall_after(3, 10_000),
    ]);
    let client = LlmClient::new(server.endpoint()).expect("client");
    for expected_events in [0, 2] {
        let cancel = CancelToken::new();
        let asked = server.requests().len();
        let received = AtomicUsize::new(0);
        // Cancelled while the client is blocked: the first reply is in its scripted delay (the
        // request has arrived, no answer yet), the second stalls after its first two pieces.
        let canceller = async {
            wait_until_async(
                Duration::from_secs(10),
                "the request to arrive and the pieces before the stall to be seen",
                async || {
                    server.requests().len() > asked
                        && received.load(Ordering::SeqCst) >= expected_events
                },
            )
            .await;
            cancel.cancel();
        };
        let started = Instant::now();
        let mut events = Vec::new();
        let req = request();
        let mut on_event = |e| {
            received.fetch_add(1, Ordering::SeqCst);
            events.push(e)
        };
        let (result, ()) =
            tokio::join!(client.stream_chat(&req, &cancel, &mut on_event), canceller);
        assert!(matches!(result, Err(LlmError::Cancelled)), "{result:?}");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "took {:?}",
            started.elapsed()
        );
        assert_eq!(events.len(), expected_events, "{events:?}");
    }
    // Already cancelled: nothing is sent.
    let cancel = CancelToken::new();
    cancel.cancel();
    let before = server.requests().len();
    let result = client.stream_chat(&request(), &cancel, &mut |_| {}).await;
    assert!(matches!(result, Err(LlmError::Cancelled)));
    assert_eq!(server.requests().len(), before);
}

#[tokio::test]
async fn idle_and_request_timeouts() {
    let server = ScriptedLlm::start([
        Reply::text(&["a", "b", "c"]).stall_after(2, 10_000),
        Reply::text(&["late"]).delay(10_000),
    ]);
    let mut endpoint = server.endpoint();
    endpoint.idle_timeout = Duration::from_millis(300);
    endpoint.request_timeout = Duration::from_millis(1500);
    let client = LlmClient::new(endpoint).expect("client");

    let started = Instant::now();
    let (result, events) = chat(&client, &request()).await;
    let err = result.expect_err("stalled");
    assert!(
        matches!(err, LlmError::Timeout { phase: TimeoutPhase::Idle, after } if after == Duration::from_millis(300)),
        "{err:?}"
    );
    assert!(err.to_string().contains("idle timeout"), "{err}");
    assert_eq!(events, vec![StreamEvent::ContentDelta("a".into())]);
    assert!(started.elapsed() < Duration::from_secs(3));

    // Nothing at all before the request timeout: the idle timeout does not apply yet (prompt
    // processing can be long), the request timeout does.
    let started = Instant::now();
    let (result, _) = chat(&client, &request()).await;
    let err = result.expect_err("too slow");
    assert!(
        matches!(
            err,
            LlmError::Timeout {
                phase: TimeoutPhase::FirstByte,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(started.elapsed() >= Duration::from_millis(1400));
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_server_that_ignores_stream_still_works() {
    let server = ScriptedLlm::start(
        Reply::text(&["Whole ", "answer"])
            .with_tool_calls([("c1", "readFile", r#"{"path":"a"}"#)])
            .non_streamed(),
    );
    let (result, events) = chat_with(&server, &request()).await;
    let outcome = result.expect("answer");
    assert_eq!(outcome.content, "Whole answer");
    assert_eq!(
        outcome.tool_calls,
        vec![ToolCall::function("c1", "readFile", r#"{"path":"a"}"#)]
    );
    assert!(outcome.usage.is_some() && outcome.timings.is_some());
    assert_eq!(events[0], StreamEvent::ContentDelta("Whole answer".into()));
}

#[tokio::test]
async fn endpoint_settings_reach_the_server() {
    let server = ScriptedLlm::start([
        Reply::text(&["x"]),
        Reply::text(&["four ", "words ", "in ", "all"]),
    ]);
    let mut endpoint = server.endpoint();
    endpoint.api_key = Some("sk-local".into());
    endpoint.temperature = Some(0.25);
    endpoint.max_tokens = Some(256);
    let client = LlmClient::new(endpoint).expect("client");

    let mut req = request();
    req.max_tokens = Some(64);
    req.response_format = Some(json!({"type": "json_object"}));
    chat(&client, &req).await.0.expect("answer");
    let sent = server.last_request().expect("request");
    assert_eq!(sent["temperature"], json!(0.25));
    assert_eq!(
        sent["max_tokens"],
        json!(64),
        "the request's own value wins"
    );
    assert_eq!(sent["response_format"], json!({"type": "json_object"}));
    let recorded = server.recorded();
    assert_eq!(recorded[0].header("authorization"), Some("Bearer sk-local"));
    assert_eq!(recorded[0].header("accept"), Some("text/event-stream"));

    let text = client
        .complete_text(vec![ChatMessage::user("count")])
        .await
        .expect("text");
    assert_eq!(text, "four words in all");
    assert_eq!(server.pending(), 0);
}

#[tokio::test]
async fn one_request_too_many_fails_with_a_clear_message() {
    let server = ScriptedLlm::start(Script::new());
    let (result, _) = chat_with(&server, &request()).await;
    let err = result.expect_err("unscripted");
    assert!(
        err.to_string()
            .contains("no reply scripted for chat request #1"),
        "{err}"
    );
    assert!(err.to_string().contains("Say hello"), "{err}");
}

/// Sync tests can use the stand-in too: it runs its own runtime on its own thread.
#[test]
fn works_from_a_sync_test() {
    let server = ScriptedLlm::start(Reply::text(&["sync ", "ok"]));
    server.push(Reply::text(&["second"]));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    let client = LlmClient::new(server.endpoint()).expect("client");
    let first = runtime
        .block_on(client.complete_text(vec![ChatMessage::user("a")]))
        .expect("first");
    let second = runtime
        .block_on(client.complete_text(vec![ChatMessage::user("b")]))
        .expect("second");
    assert_eq!((first.as_str(), second.as_str()), ("sync ok", "second"));
    assert_eq!(server.requests().len(), 2);
}
