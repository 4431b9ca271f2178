//! The real-server tier: the client and the chat turn against llama.cpp's own `llama-server`
//! (started by `tests/llm-real.sh` with the tiny random-weight model of
//! `scripts/llm/llama-kit.sh`). Only what does not depend on the model's words is
//! checked: streaming in pieces, usage and timings, the over-long prompt's error, cancellation,
//! json_schema-constrained output, a whole chat turn, what `/props` says (the Qwen2.5 template
//! renders tools) and the server's own token count of a prompt.
//!
//! Every test here is `#[ignore]`d: it needs a running llama-server, whose base URL (ending in
//! /v1) is in `NOCTUNE_LLAMA_URL`. `tests/llm-real.sh` (run by `tests/run-all.sh`) builds it,
//! starts it and runs `cargo test --test it -- --ignored llm_real::`. Run by hand without the
//! variable, a test fails and says how to set it; it never passes without a server.

use crate::chat_turns::{ChatEnv, profile_toml, send_on};
use crate::support::llm_server::Reply;
use noctune_chat::agent::{ChatEvent, NoPrompter};
use noctune_chat::context;
use noctune_chat::service::ChatService;
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
