//! The turn loop with a model as small local models are: a chat template without tool support,
//! answers cut off by max_tokens (calls included), answers that loop, results the model invents
//! after its own call, and streaming that must not stall on code or JSON-looking text.

use crate::chat_turns::{ChatEnv, allow, messages_with_role};
use crate::support::llm_server::{Reply, Script};
use noctune_chat::agent::{ChatEvent, ModeUsed, NoPrompter, TurnContext};
use noctune_chat::context;
use noctune_chat::permissions::PermissionAnswer;
use noctune_llm::CancelToken;
use std::time::{Duration, Instant};

const FILE: &str = "shapes/geometry.py";

fn system_text(request: &serde_json::Value) -> String {
    messages_with_role(request, "system")[0]["content"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn a_template_without_tools_switches_auto_to_prompt_mode_with_a_notice() {
    let script = Script::new()
        .supports_tools(false)
        .reply(Reply::text(&["Hello."]))
        .reply(Reply::text(&["Again."]));
    let env = ChatEnv::new(script, "auto");
    let turn = env.send("s1", "hi", &NoPrompter).await;
    assert_eq!(
        turn.summary.tool_mode,
        ModeUsed::Prompt,
        "{:?}",
        turn.events
    );
    let notices = turn.notices();
    assert!(
        notices
            .iter()
            .any(|n| n.contains("supports_tools false") && n.contains("described in the prompt")),
        "{notices:?}"
    );
    let req = env.llm.last_request().unwrap();
    assert!(req.get("tools").is_none(), "no native tools: {req}");
    let system = system_text(&req);
    assert!(system.contains("<tool_call>"), "{system}");
    assert_eq!(req["stop"], serde_json::json!(["<tool_result"]));

    // Once per session.
    let turn = env.send("s1", "again", &NoPrompter).await;
    assert!(
        !turn.notices().iter().any(|n| n.contains("supports_tools")),
        "{:?}",
        turn.notices()
    );

    // The protocol with every tool fits a 2k context: measured with the calibrated estimate.
    let protocol = &system[system.find("## Tools").unwrap()..];
    let tokens = context::estimate_text(protocol);
    println!(
        "prompt protocol: {tokens} tokens (estimate), {} chars",
        protocol.len()
    );
    assert!(tokens <= 400, "{tokens} tokens:\n{protocol}");
}

#[tokio::test]
async fn native_mode_on_a_template_without_tools_warns() {
    let script = Script::new()
        .supports_tools(false)
        .reply(Reply::text(&["Hello."]));
    let env = ChatEnv::new(script, "native");
    let turn = env.send("s1", "hi", &NoPrompter).await;
    assert!(
        turn.notices()
            .iter()
            .any(|n| n.contains("warning") && n.contains("will see no tools")),
        "{:?}",
        turn.notices()
    );
}

#[tokio::test]
async fn a_native_write_cut_off_by_max_tokens_is_not_run() {
    let half = r#"{"path": "shapes/geometry.py", "content": "def area():\n    pass\n\n\ndef "#;
    let env = ChatEnv::new(
        [
            Reply::tool_call("c1", "writeFile", half)
                .finish_reason("length")
                .usage(100, 256),
            Reply::text(&["I will use editFile."]),
        ],
        "native",
    );
    let before = env.read(FILE);
    let turn = env
        .send("s1", "rewrite geometry", &allow(PermissionAnswer::Session))
        .await;
    assert_eq!(env.read(FILE), before, "the file is unchanged");
    assert!(turn.results().is_empty(), "nothing ran: {:?}", turn.events);
    assert!(
        turn.notices()
            .iter()
            .any(|n| n.contains("writeFile") && n.contains("cut off at 256 tokens")),
        "{:?}",
        turn.notices()
    );
    let reqs = env.llm.requests();
    assert_eq!(reqs.len(), 2);
    let told = messages_with_role(&reqs[1], "tool");
    let told = told[0]["content"].as_str().unwrap();
    assert!(
        told.contains("call_cut_off") && told.contains("NOT run"),
        "{told}"
    );
}

#[tokio::test]
async fn a_native_call_whose_arguments_end_mid_value_is_not_run() {
    // The stream ended normally, but the arguments stop inside a string.
    let env = ChatEnv::new(
        [
            Reply::tool_call(
                "c1",
                "writeFile",
                r#"{"path": "shapes/geometry.py", "content": "x = "#,
            ),
            Reply::text(&["Retrying."]),
        ],
        "native",
    );
    let before = env.read(FILE);
    let turn = env
        .send("s1", "rewrite geometry", &allow(PermissionAnswer::Session))
        .await;
    assert_eq!(env.read(FILE), before);
    assert!(turn.results().is_empty(), "{:?}", turn.events);
    assert!(
        turn.notices().iter().any(|n| n.contains("not run")),
        "{:?}",
        turn.notices()
    );
}

#[tokio::test]
async fn a_prompt_mode_write_cut_off_by_max_tokens_is_not_run() {
    let text = "<tool_call>\n{\"name\": \"writeFile\", \"arguments\": {\"path\": \
                \"shapes/geometry.py\", \"content\": \"def area():\\n    pass\\n\\n\\n";
    let env = ChatEnv::new(
        [
            Reply::text(&[text]).finish_reason("length").usage(100, 256),
            Reply::text(&["I will use editFile."]),
        ],
        "prompt",
    );
    let before = env.read(FILE);
    let turn = env
        .send("s1", "rewrite geometry", &allow(PermissionAnswer::Session))
        .await;
    assert_eq!(env.read(FILE), before, "the file is unchanged");
    assert!(turn.results().is_empty(), "{:?}", turn.events);
    assert!(
        turn.notices()
            .iter()
            .any(|n| n.contains("cut off at 256 tokens")),
        "{:?}",
        turn.notices()
    );
    let reqs = env.llm.requests();
    assert_eq!(reqs.len(), 2);
    let last_user = crate::support::llm_server::last_user_text(&reqs[1]);
    assert!(last_user.contains("call_cut_off"), "{last_user}");
}

#[tokio::test]
async fn a_prompt_mode_call_cut_off_before_its_name_is_neither_shown_nor_run_and_is_asked_again() {
    // SmolLM2 at max_tokens 12 (tests/it/llm_real.rs): the call's JSON starts with "arguments",
    // so the cut comes before any name. It used to be shown as the answer, with no retry.
    let env = ChatEnv::new(
        [
            Reply::text(&[
                "Let me look.\n",
                "<tool_call>\n{\"arguments\": {\"path\": \"",
            ])
            .finish_reason("length")
            .usage(100, 12),
            Reply::text(&["The repository has shapes/ and tests/."]),
        ],
        "prompt",
    );
    let turn = env.send("s1", "list the files", &NoPrompter).await;
    assert!(
        !turn.text().contains("<tool_call"),
        "shown: {:?}",
        turn.text()
    );
    assert!(
        !turn.text().contains("arguments"),
        "shown: {:?}",
        turn.text()
    );
    assert!(turn.text().starts_with("Let me look."), "{:?}", turn.text());
    assert!(turn.results().is_empty(), "{:?}", turn.events);
    assert!(
        turn.notices()
            .iter()
            .any(|n| n.contains("call was cut off at 12 tokens") && n.contains("was not run")),
        "{:?}",
        turn.notices()
    );
    let reqs = env.llm.requests();
    assert_eq!(reqs.len(), 2, "the model was asked again");
    let last_user = crate::support::llm_server::last_user_text(&reqs[1]);
    assert!(last_user.contains("call_cut_off"), "{last_user}");
    assert_eq!(
        turn.summary.answer,
        "The repository has shapes/ and tests/."
    );
}

#[tokio::test]
async fn an_answer_cut_off_by_max_tokens_says_so() {
    let env = ChatEnv::new(
        [Reply::text(&["The answer is"])
            .finish_reason("length")
            .usage(50, 256)],
        "auto",
    );
    let turn = env.send("s1", "explain", &NoPrompter).await;
    assert_eq!(turn.summary.finish_reason.as_deref(), Some("length"));
    assert!(
        turn.notices()
            .iter()
            .any(|n| n == "answer cut off at 256 tokens (max_tokens)"),
        "{:?}",
        turn.notices()
    );
}

#[tokio::test]
async fn a_looping_answer_is_stopped_early() {
    let unit = "I will now read the file to check it. ";
    let pieces: Vec<&str> = std::iter::repeat_n(unit, 300).collect();
    // 300 pieces 20 ms apart: 6 s if streamed to the end.
    let env = ChatEnv::new([Reply::text(&pieces).gap(20)], "auto");
    let started = Instant::now();
    let turn = env.send("s1", "check it", &NoPrompter).await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert_eq!(
        turn.summary.finish_reason.as_deref(),
        Some("repetition"),
        "{:?}",
        turn.summary
    );
    assert!(
        turn.notices()
            .iter()
            .any(|n| n == "stopped: the answer repeats itself"),
        "{:?}",
        turn.notices()
    );
    assert!(turn.text().len() < 1000, "{} chars", turn.text().len());
}

#[tokio::test]
async fn an_invented_result_block_never_reaches_the_user_or_the_session() {
    let call = "<tool_call>\n{\"name\": \"listFiles\", \"arguments\": {}}\n</tool_call>\n\
                <tool_result name=\"listFiles\">INVENTED a.py b.py</tool_result>\n";
    let env = ChatEnv::new(
        [
            Reply::text(&["Let me look.\n", call]),
            Reply::text(&[
                "There are Python files.\n",
                "<tool_result name=\"readFile\">\nINVENTED again\n</tool_result>",
            ]),
        ],
        "prompt",
    );
    let turn = env.send("s1", "what files?", &NoPrompter).await;
    assert_eq!(turn.results().len(), 1, "{:?}", turn.events);
    assert!(turn.results()[0].1, "listFiles ran: {:?}", turn.results());
    let shown = turn.text();
    assert!(!shown.contains("INVENTED"), "{shown}");
    assert!(
        !turn.summary.answer.contains("INVENTED"),
        "{:?}",
        turn.summary
    );
    let session = env.service.load_session("s1").unwrap();
    let saved = serde_json::to_string(&session.messages).unwrap();
    assert!(!saved.contains("INVENTED"), "{saved}");
    for req in env.llm.requests() {
        assert_eq!(req["stop"], serde_json::json!(["<tool_result"]));
    }
}

#[tokio::test]
async fn code_fences_and_json_text_stream_before_the_answer_ends() {
    // The stream stalls for 1.5 s after the code and the JSON-looking text.
    let env = ChatEnv::new(
        [Reply::text(&[
            "Here:\n```python\ndef f():\n",
            "    return {\"a\": 1}\n",
            "```\n",
            "and {\"a\": 1} is the value",
            ".",
        ])
        .stall_after(5, 1500)],
        "prompt",
    );
    let started = Instant::now();
    let mut seen: Vec<(Duration, ChatEvent)> = Vec::new();
    env.service
        .send(
            "s1",
            "show me",
            TurnContext::default(),
            &NoPrompter,
            &mut |e| seen.push((started.elapsed(), e)),
            &CancelToken::new(),
        )
        .await
        .expect("the turn starts");
    let done_at = seen
        .iter()
        .find(|(_, e)| matches!(e, ChatEvent::Done { .. }))
        .map(|(t, _)| *t)
        .expect("done");
    let shown_before = |needle: &str| {
        let mut text = String::new();
        for (t, e) in &seen {
            if let ChatEvent::Delta { text: d } = e {
                text.push_str(d);
                if text.contains(needle) {
                    return done_at.saturating_sub(*t) >= Duration::from_millis(1000);
                }
            }
        }
        false
    };
    assert!(shown_before("```python\ndef f():"), "{seen:?}");
    assert!(shown_before("return {\"a\": 1}"), "{seen:?}");
    assert!(shown_before("and {\"a\": 1} is"), "{seen:?}");
}

#[tokio::test]
async fn requests_fit_the_servers_smaller_window_from_the_first_round() {
    // The profile claims 8192 tokens; the server's slot holds 2048. Fitting to the profile
    // would send the whole file and learn of the overflow only from the server's error.
    let big: String = "word ".repeat(4000);
    let script = Script::new()
        .context_window(2048)
        .reply(Reply::tool_call("r1", "readFile", r#"{"path": "big.txt"}"#))
        .reply(Reply::text(&["Read it."]))
        .reply(Reply::text(&["Second."]));
    let env = ChatEnv::with(script, "native", 8192, &[("big.txt", &big)]);
    let turn = env.send("s1", "read big.txt", &NoPrompter).await;
    assert!(turn.summary.error.is_none(), "{:?}", turn.events);
    assert_eq!(turn.text(), "Read it.");
    let fitted: Vec<String> = turn
        .notices()
        .into_iter()
        .filter(|n| n.contains("2048 tokens per request") && n.contains("8192"))
        .collect();
    assert_eq!(fitted.len(), 1, "{:?}", turn.notices());
    let reqs = env.llm.requests();
    let bytes = reqs[1]["messages"].to_string().len();
    assert!(
        bytes < 2048 * 4,
        "the second request ({bytes} bytes) was not fitted to the server's 2048 tokens"
    );
    // Said once per session, not every turn.
    let again = env.send("s1", "and now?", &NoPrompter).await;
    assert!(
        !again
            .notices()
            .iter()
            .any(|n| n.contains("tokens per request")),
        "{:?}",
        again.notices()
    );
}

#[tokio::test]
async fn auto_in_a_2k_context_describes_the_tools_in_the_prompt_instead_of_native_schemas() {
    // The native schemas of the file tools are ~1,400+ tokens: most of a 2k window.
    let script = Script::new()
        .reply(Reply::text(&["Hello."]))
        .reply(Reply::text(&["Again."]));
    let env = ChatEnv::with(script, "auto", 2048, &[]);
    let turn = env.send("s1", "hi", &NoPrompter).await;
    assert_eq!(
        turn.summary.tool_mode,
        ModeUsed::Prompt,
        "{:?}",
        turn.events
    );
    assert!(
        turn.notices()
            .iter()
            .any(|n| n.contains("native tool schemas") && n.contains("2048-token context")),
        "{:?}",
        turn.notices()
    );
    let req = &env.llm.requests()[0];
    assert!(req.get("tools").is_none(), "no native tools: {req:#}");
    assert!(
        system_text(req).contains("<tool_call>"),
        "the prompt protocol is in the system prompt"
    );
    // A big window keeps native tools.
    let big = ChatEnv::with(
        Script::new().reply(Reply::text(&["Hi."])),
        "auto",
        32768,
        &[],
    );
    let turn = big.send("s1", "hi", &NoPrompter).await;
    assert_eq!(
        turn.summary.tool_mode,
        ModeUsed::Native,
        "{:?}",
        turn.events
    );
}
