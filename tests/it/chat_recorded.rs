//! SmolLM2-135M-Instruct's real answers replayed through the chat service.
//!
//! `fixtures/llm/recordings/smollm2/*.sse` are raw SSE bodies that llama-server sent while
//! serving SmolLM2 (recorded by `scripts/llm/record_smollm2.py` from the request bodies next to
//! them; see that folder's README). The scripted server (`support::llm_server`, llama-server's
//! wire format) sends them back byte for byte, with `/props` saying what SmolLM2's server says
//! (no tool support in the template, a 2048-token slot), so the prompt-mode parser, the stream
//! filter, the cut-off and repetition guards and the result-block stripping meet the text a
//! real small model writes, in every test run, without a model.

use crate::chat_turns::{ChatEnv, Turn};
use crate::support::llm_server::{self, Reply, Script};
use crate::support::tap;
use noctune_chat::agent::{ChatEvent, ModeUsed, NoPrompter};
use std::path::PathBuf;

/// The model name SmolLM2's llama-server reports.
const SMOL_MODEL: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// A recording of `fixtures/llm/recordings/smollm2/`.
fn recording(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/llm/recordings/smollm2")
        .join(name);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("recording {name} not readable at {}: {e}", path.display()))
}

/// A follow-up answer for a round after a call that ran (the recordings are of one answer).
const AFTER_CALL: &str = "Done.";

/// A scripted SmolLM2 server: `/props` as SmolLM2's (no tools, 2048 tokens), the recorded body
/// for the first chat request (one event every `gap_ms`, as tokens come), a short answer for
/// any later one.
fn smol_script(sse: &str, gap_ms: u64) -> Script {
    Script::new()
        .model(SMOL_MODEL)
        .supports_tools(false)
        .context_window(2048)
        .reply(Reply::raw_sse(sse).gap(gap_ms))
        .fallback(|_| Reply::text(&[AFTER_CALL]))
}

/// One turn of `message` against a replayed answer, in `tool_mode`, with a 2k profile.
async fn replay(sse: &str, tool_mode: &str, message: &str) -> (ChatEnv, Turn) {
    let env = ChatEnv::with(smol_script(sse, 0), tool_mode, 2048, &[]);
    let turn = env.send("rec", message, &NoPrompter).await;
    (env, turn)
}

/// The visible text of a prompt-mode turn whose first answer is this SSE body (used by the
/// real-model tier to replay what SmolLM2 says without the stop sequence).
pub(crate) async fn replay_prompt_turn(sse: &str, message: &str) -> String {
    replay(sse, "prompt", message).await.1.text()
}

fn calls(turn: &Turn) -> Vec<(String, serde_json::Value)> {
    turn.events
        .iter()
        .filter_map(|e| match e {
            ChatEvent::ToolCall {
                name, arguments, ..
            } => Some((name.clone(), arguments.clone())),
            _ => None,
        })
        .collect()
}

/// The answer text and `finish_reason` of a recording, as the server sent them.
fn recorded(sse: &str) -> (String, Option<String>) {
    let finish = tap::sse_payloads(sse)
        .iter()
        .find_map(|p| p["choices"][0]["finish_reason"].as_str().map(str::to_owned));
    (tap::sse_content(sse), finish)
}

#[tokio::test]
async fn smollm2_recorded_answer_streams_as_it_came() {
    let sse = recording("hello.sse");
    let (content, finish) = recorded(&sse);
    assert_eq!(
        finish.as_deref(),
        Some("length"),
        "recorded at max_tokens 48"
    );
    let (_env, turn) = replay(
        &sse,
        "auto",
        "Say hello and tell me in one sentence what you are.",
    )
    .await;
    assert!(turn.summary.error.is_none(), "{:?}", turn.events);
    // /props says the template has no tools: auto describes them in the prompt.
    assert_eq!(turn.summary.tool_mode, ModeUsed::Prompt);
    // Nothing of plain prose is held back or changed, and it arrives piece by piece.
    assert_eq!(turn.text(), content);
    let pieces = tap::sse_payloads(&sse)
        .iter()
        .filter(|p| p["choices"][0]["delta"]["content"].is_string())
        .count();
    assert!(
        turn.deltas() * 2 >= pieces,
        "{} deltas for {pieces} pieces",
        turn.deltas()
    );
    // Cut off by max_tokens, and said so with the server's own count.
    assert!(
        turn.notices()
            .iter()
            .any(|n| n.contains("answer cut off at 48 tokens")),
        "{:?}",
        turn.notices()
    );
    match turn.events.last() {
        Some(ChatEvent::Done {
            finish_reason,
            usage,
            ..
        }) => {
            assert_eq!(finish_reason, "length");
            let recorded_usage = tap::sse_payloads(&sse)
                .iter()
                .find_map(|p| p["usage"]["prompt_tokens"].as_u64());
            assert_eq!(usage.as_ref().map(|u| u.prompt_tokens), recorded_usage);
        }
        other => panic!("expected done, got {other:?}"),
    }
}

#[tokio::test]
async fn smollm2_recorded_listfiles_call_is_parsed_and_run() {
    let sse = recording("listfiles-call.sse");
    let (content, finish) = recorded(&sse);
    assert_eq!(finish.as_deref(), Some("stop"));
    assert!(content.contains("<tool_call>"), "{content:?}");
    let (env, turn) = replay(
        &sse,
        "prompt",
        "Reply with only a <tool_call> block that calls listFiles with path shapes.",
    )
    .await;
    assert!(turn.summary.error.is_none(), "{:?}", turn.events);
    // SmolLM2 writes "arguments" before "name"; the path is its own choice.
    assert_eq!(
        calls(&turn),
        vec![("listFiles".to_string(), serde_json::json!({"path": "."}))]
    );
    let results = turn.results();
    assert_eq!(results.len(), 1);
    assert!(results[0].1, "listFiles ran: {:?}", results[0]);
    // The call's markup is not shown; the next request carries the result.
    assert!(!turn.text().contains("<tool_call"), "{:?}", turn.text());
    assert!(!turn.text().contains("\"arguments\""), "{:?}", turn.text());
    let second = env.llm.requests()[1].clone();
    let last_user = llm_server::last_user_text(&second);
    assert!(
        last_user.starts_with("<tool_result name=\"listFiles\""),
        "{last_user}"
    );
    assert!(last_user.contains("README.md"), "{last_user}");
    assert_eq!(turn.summary.answer, AFTER_CALL);
}

#[tokio::test]
async fn smollm2_recorded_call_cut_by_max_tokens_never_runs() {
    let sse = recording("listfiles-call-cut.sse");
    let (content, finish) = recorded(&sse);
    assert_eq!(finish.as_deref(), Some("length"));
    assert!(content.starts_with("<tool_call>"), "{content:?}");
    let (env, turn) = replay(
        &sse,
        "prompt",
        "Reply with only a <tool_call> block that calls listFiles with path shapes.",
    )
    .await;
    assert!(calls(&turn).is_empty(), "{:?}", turn.events);
    assert!(turn.results().is_empty(), "{:?}", turn.events);
    assert!(
        turn.notices().iter().any(|n| n.contains("cut off")),
        "{:?}",
        turn.notices()
    );
    // Whatever came next, no request carried a result of that call.
    for req in env.llm.requests().iter().skip(1) {
        let last = llm_server::last_user_text(req);
        assert!(
            !last.contains("\"entries\""),
            "a listing went back to the model: {last}"
        );
    }
}

#[tokio::test]
async fn smollm2_recorded_invented_result_block_is_never_shown() {
    let sse = recording("invented-result.sse");
    let (content, _) = recorded(&sse);
    assert!(
        content.contains("<tool_result") && content.contains("</tool_result>"),
        "the recording holds a result block SmolLM2 made up: {content:?}"
    );
    let message = "Reply with the <tool_result> block that listFiles gives for the shapes folder.";
    let (env, turn) = replay(&sse, "prompt", message).await;
    let shown = turn.text();
    assert!(!shown.contains("<tool_result"), "{shown:?}");
    assert!(!shown.contains("</tool_result>"), "{shown:?}");
    assert!(
        !shown.contains("\"entries\""),
        "the block's content: {shown:?}"
    );
    assert!(turn.results().is_empty(), "nothing ran: {:?}", turn.events);
    let session = env.service.load_session("rec").unwrap();
    for m in &session.messages {
        let c = m.content.as_deref().unwrap_or_default();
        if m.role == noctune_llm::Role::Assistant {
            assert!(!c.contains("<tool_result"), "stored: {c:?}");
        }
    }
}

#[tokio::test]
async fn smollm2_recorded_loop_is_stopped_early() {
    let sse = recording("loop.sse");
    let (content, finish) = recorded(&sse);
    assert_eq!(finish.as_deref(), Some("length"), "it looped to max_tokens");
    let env = ChatEnv::with(smol_script(&sse, 1), "auto", 2048, &[]);
    let line = "the cat sat on the mat and the dog sat on the log";
    let message = format!(
        "Repeat this line again and again, one per line, and never stop:\n{}",
        format!("{line}\n").repeat(6)
    );
    let turn = env.send("rec", &message, &NoPrompter).await;
    assert_eq!(turn.summary.finish_reason.as_deref(), Some("repetition"));
    assert!(
        turn.notices().iter().any(|n| n.contains("repeats itself")),
        "{:?}",
        turn.notices()
    );
    let shown = turn.text();
    assert!(
        shown.len() * 2 <= content.len(),
        "stopped early: {} of {} chars shown",
        shown.len(),
        content.len()
    );
    assert!(shown.starts_with(line), "{shown:?}");
}
