//! Asking the model server what it can do (`LlmClient::server_capabilities`) and letting it
//! count a prompt's tokens (`LlmClient::count_tokens`), against the scripted server over real
//! HTTP; and the scripted `/props` and `/apply-template` against llama-server's recordings.

use crate::support::llm_server::{MODEL, Script, ScriptedLlm, scripted_prompt};
use noctune_llm::{
    ChatMessage, LlmClient, LlmEndpoint, LlmError, ServerCapabilities, ServerKind, ToolSpec,
};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

/// A recorded llama-server file (fixtures/llm/recordings).
fn recording(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/llm/recordings")
        .join(name);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("recording {name} not readable at {}: {e}", path.display()))
}

fn client(server: &ScriptedLlm) -> LlmClient {
    LlmClient::new(server.endpoint()).expect("client")
}

/// The paths the server was asked for, in order.
fn asked(server: &ScriptedLlm) -> Vec<String> {
    server
        .recorded()
        .into_iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

fn read_file_tool() -> ToolSpec {
    ToolSpec::function(
        "readFile",
        "Read a file",
        json!({"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}),
    )
}

fn conversation() -> Vec<ChatMessage> {
    vec![ChatMessage::system("sys"), ChatMessage::user("hi")]
}

/// The key names of a JSON object (empty for anything else).
fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

// ---- server_capabilities ----

#[tokio::test]
async fn caps_of_a_template_with_tools() {
    let server = ScriptedLlm::start(Script::new());
    let caps = client(&server).server_capabilities().await.expect("caps");
    assert_eq!(
        caps,
        ServerCapabilities {
            server: ServerKind::LlamaCpp,
            supports_tools: Some(true),
            context_window: Some(16384),
            model: Some(MODEL.into()),
        }
    );
    assert!(caps.can_count_tokens());
    assert_eq!(asked(&server), ["GET /props"], "the root, not /v1/props");
}

#[tokio::test]
async fn caps_of_a_template_without_tools() {
    let server = ScriptedLlm::start(Script::new().supports_tools(false).context_window(2048));
    let caps = client(&server).server_capabilities().await.expect("caps");
    assert_eq!(caps.server, ServerKind::LlamaCpp);
    assert_eq!(caps.supports_tools, Some(false));
    assert_eq!(caps.context_window, Some(2048));
}

#[tokio::test]
async fn caps_of_an_older_llama_server_leave_tools_unknown() {
    let server = ScriptedLlm::start(Script::new().without_template_caps());
    let caps = client(&server).server_capabilities().await.expect("caps");
    assert_eq!(caps.server, ServerKind::LlamaCpp);
    assert_eq!(caps.supports_tools, None);
    assert_eq!(caps.context_window, Some(16384));
}

#[tokio::test]
async fn caps_of_a_server_without_props_come_from_its_models() {
    let server = ScriptedLlm::start(Script::new().without_props());
    let caps = client(&server).server_capabilities().await.expect("caps");
    assert_eq!(
        caps,
        ServerCapabilities {
            server: ServerKind::Other,
            supports_tools: None,
            // the models list's meta.n_ctx
            context_window: Some(16384),
            model: Some(MODEL.into()),
        }
    );
    assert!(!caps.can_count_tokens());
    assert_eq!(asked(&server), ["GET /props", "GET /v1/models"]);
}

#[tokio::test]
async fn caps_of_a_server_that_answers_neither_are_unknown() {
    let server = ScriptedLlm::start(Script::new());
    // A path prefix the server does not serve: /elsewhere/props and /elsewhere/v1/models are 404s.
    let endpoint = LlmEndpoint::new(format!("{}/elsewhere/v1", server.root_url()), MODEL);
    let caps = LlmClient::new(endpoint)
        .expect("client")
        .server_capabilities()
        .await
        .expect("a missing endpoint is no error");
    assert_eq!(caps, ServerCapabilities::unknown());
    assert_eq!(
        asked(&server),
        ["GET /elsewhere/props", "GET /elsewhere/v1/models"]
    );
}

#[tokio::test]
async fn caps_of_a_server_that_is_not_running_are_an_error() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    }; // closed again: nothing listens there
    let mut endpoint = LlmEndpoint::new(format!("http://127.0.0.1:{port}/v1"), MODEL);
    endpoint.connect_timeout = Duration::from_secs(2);
    let err = LlmClient::new(endpoint)
        .expect("client")
        .server_capabilities()
        .await
        .expect_err("nothing to ask");
    assert!(matches!(err, LlmError::Unreachable { .. }), "{err:?}");
}

// ---- count_tokens ----

#[tokio::test]
async fn count_tokens_renders_the_template_then_tokenizes_it() {
    let server = ScriptedLlm::start(Script::new());
    let count = client(&server)
        .count_tokens(&conversation(), None)
        .await
        .expect("counted");
    let prompt = "<|im_start|>system\nsys<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n\
                  <|im_start|>assistant\n";
    assert_eq!(count, Some(prompt.len().div_ceil(2)));

    let recorded = server.recorded();
    let paths: Vec<&str> = recorded.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["/apply-template", "/tokenize"]);
    assert_eq!(
        recorded[0].body,
        json!({"messages": [
            {"role": "system", "content": "sys"},
            {"role": "user", "content": "hi"}
        ]}),
        "no tools key without tools"
    );
    assert_eq!(
        recorded[1].body,
        json!({"content": prompt, "add_special": true, "parse_special": true}),
        "tokenized the way llama-server tokenizes a chat prompt"
    );
}

#[tokio::test]
async fn count_tokens_counts_tools_only_where_the_template_renders_them() {
    let tools = [read_file_tool()];
    for supports in [true, false] {
        let server = ScriptedLlm::start(Script::new().supports_tools(supports));
        let c = client(&server);
        let without = c
            .count_tokens(&conversation(), None)
            .await
            .expect("counted");
        let with = c
            .count_tokens(&conversation(), Some(&tools))
            .await
            .expect("counted");
        let (without, with) = (without.expect("a count"), with.expect("a count"));
        if supports {
            assert!(with > without + 20, "{with} vs {without}");
        } else {
            assert_eq!(with, without, "a template without tools drops them");
        }
        let sent = &server.recorded()[2].body;
        assert_eq!(sent["tools"][0]["function"]["name"], "readFile");
    }
}

#[tokio::test]
async fn count_tokens_on_a_server_without_them_is_none() {
    let server = ScriptedLlm::start(Script::new().without_token_counting());
    let count = client(&server)
        .count_tokens(&conversation(), Some(&[read_file_tool()]))
        .await
        .expect("a missing endpoint is no error");
    assert_eq!(count, None);
    assert_eq!(
        asked(&server),
        ["POST /apply-template"],
        "stops at the first 404"
    );
}

// ---- the stand-in against the recordings ----

#[tokio::test]
async fn stand_in_props_have_the_recorded_shape() {
    noctune_llm::install_crypto_provider(); // before reqwest builds its first client
    for (supports, name) in [(true, "props-tiny.json"), (false, "props-smollm2.json")] {
        let recorded: Value = serde_json::from_str(&recording(name)).expect("json");
        let server = ScriptedLlm::start(Script::new().supports_tools(supports));
        let scripted: Value = reqwest::get(format!("{}/props", server.root_url()))
            .await
            .expect("GET /props")
            .json()
            .await
            .expect("json");
        assert_eq!(keys(&scripted), keys(&recorded), "{name}: top-level keys");
        let dgs = "default_generation_settings";
        assert_eq!(keys(&scripted[dgs]), keys(&recorded[dgs]), "{name}: {dgs}");
        let caps = "chat_template_caps";
        assert_eq!(
            keys(&scripted[caps]),
            keys(&recorded[caps]),
            "{name}: {caps}"
        );
        for flag in [
            "supports_tools",
            "supports_tool_calls",
            "supports_system_role",
        ] {
            assert_eq!(scripted[caps][flag], recorded[caps][flag], "{name}: {flag}");
        }
    }
}

#[test]
fn stand_in_template_renders_the_recorded_conversation_as_smollm2_does() {
    let request: Value =
        serde_json::from_str(&recording("apply-template.request.json")).expect("json");
    let smollm2: Value =
        serde_json::from_str(&recording("apply-template-smollm2.json")).expect("json");
    // SmolLM2's template (no tools) is plain ChatML: the stand-in's rendering is byte-identical.
    assert_eq!(
        scripted_prompt(&request, false),
        smollm2["prompt"].as_str().expect("a prompt")
    );
    // With tools the stand-in renders them and the tool call, as Qwen2.5's template does (in
    // its own words).
    let tiny: Value = serde_json::from_str(&recording("apply-template-tiny.json")).expect("json");
    let with_tools = scripted_prompt(&request, true);
    for part in ["<tools>", "\"name\":\"readFile\"", "<tool_call>"] {
        assert!(with_tools.contains(part), "{part} in {with_tools}");
    }
    let tiny = tiny["prompt"].as_str().expect("a prompt");
    assert!(tiny.contains("<tools>") && tiny.contains("<tool_call>"));
}

#[tokio::test]
async fn caps_are_asked_once_per_client_while_fresh_and_unknown_is_asked_again() {
    let server = ScriptedLlm::start(Script::new());
    let c = client(&server);
    let first = c.server_capabilities().await.expect("caps");
    let again = c.clone().server_capabilities().await.expect("caps");
    assert_eq!(first, again);
    assert_eq!(asked(&server), ["GET /props"], "one /props for both");

    // A server that tells nothing is not remembered as such: it may be starting up.
    let silent = ScriptedLlm::start(Script::new().without_props());
    let c = client(&silent);
    let _ = c.server_capabilities().await;
    let _ = c.server_capabilities().await;
    let props = asked(&silent).iter().filter(|p| *p == "GET /props").count();
    assert!(props >= 1, "{:?}", asked(&silent));
}

#[tokio::test]
async fn a_short_turn_sends_no_token_count_before_the_answer() {
    use crate::chat_turns::ChatEnv;
    use crate::support::llm_server::Reply;
    use noctune_chat::agent::NoPrompter;
    let env = ChatEnv::new([Reply::text(&["Hi."]), Reply::text(&["Again."])], "native");
    env.send("s1", "hello", &NoPrompter).await;
    env.send("s1", "and again", &NoPrompter).await;
    let paths: Vec<String> = asked(&env.llm);
    assert!(
        !paths
            .iter()
            .any(|p| p.ends_with("/tokenize") || p.ends_with("/apply-template")),
        "a prompt far below the window is not counted: {paths:?}"
    );
    assert_eq!(
        paths.iter().filter(|p| p.ends_with("/props")).count(),
        1,
        "capabilities asked once for both turns: {paths:?}"
    );
}
