//! The chat turn loop against the scripted llama-server: streaming, native and prompt-mode tool
//! calls, the `auto` fallback, permissions, edits with backups and undo, context trimming,
//! model errors, and the run tools.

use crate::support::llm_server::{self, Reply, Script, ScriptedLlm};
use crate::support::repo::FixtureRepo;
use crate::support::wait::wait_until_async;
use noctune_chat::agent::{
    ChatEvent, FixedPrompter, NoPrompter, Prompter, TurnContext, TurnSummary,
};
use noctune_chat::context::TRIM_NOTE;
use noctune_chat::permissions::PermissionAnswer;
use noctune_chat::service::ChatService;
use noctune_chat::tools::runs::RunControl;
use noctune_llm::{CancelToken, Role};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

// ---- helpers (shared with chat_sessions.rs) ----

/// A profile `scripted` (the default) pointing at `base_url`.
pub(crate) fn profile_toml(base_url: &str, tool_mode: &str, context_window: u32) -> String {
    format!(
        "default_profile = \"scripted\"\n\n[model_profiles.scripted]\nbase_url = \"{base_url}\"\n\
         model = \"tiny\"\ntool_mode = \"{tool_mode}\"\ncontext_window = {context_window}\n\
         max_tokens = 256\ntimeout_secs = 30\n"
    )
}

/// A fixture repository, a scripted model server, a private audit DB and the chat service.
pub(crate) struct ChatEnv {
    pub llm: ScriptedLlm,
    pub repo: FixtureRepo,
    pub db: tempfile::TempDir,
    pub service: ChatService,
}

/// One finished turn with every event it emitted.
pub(crate) struct Turn {
    pub summary: TurnSummary,
    pub events: Vec<ChatEvent>,
}

impl Turn {
    pub fn text(&self) -> String {
        self.events
            .iter()
            .filter_map(|e| match e {
                ChatEvent::Delta { text } => Some(text.as_str()),
                _ => None,
            })
            .collect()
    }
    pub fn deltas(&self) -> usize {
        self.events
            .iter()
            .filter(|e| matches!(e, ChatEvent::Delta { .. }))
            .count()
    }
    /// `(name, ok, result)` of every tool result.
    pub fn results(&self) -> Vec<(String, bool, Value)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                ChatEvent::ToolResult {
                    name, ok, result, ..
                } => Some((name.clone(), *ok, result.clone())),
                _ => None,
            })
            .collect()
    }
    pub fn error(&self) -> Option<String> {
        self.events.iter().find_map(|e| match e {
            ChatEvent::Error { message } => Some(message.clone()),
            _ => None,
        })
    }
    pub fn notices(&self) -> Vec<String> {
        self.events
            .iter()
            .filter_map(|e| match e {
                ChatEvent::Notice { message } => Some(message.clone()),
                _ => None,
            })
            .collect()
    }
    pub fn permission_requests(&self) -> usize {
        self.events
            .iter()
            .filter(|e| matches!(e, ChatEvent::PermissionRequest(_)))
            .count()
    }
}

impl ChatEnv {
    pub fn new(script: impl Into<Script>, tool_mode: &str) -> ChatEnv {
        ChatEnv::with(script, tool_mode, 8192, &[])
    }

    pub fn with(
        script: impl Into<Script>,
        tool_mode: &str,
        context_window: u32,
        files: &[(&str, &str)],
    ) -> ChatEnv {
        let llm = ScriptedLlm::start(script);
        let toml = profile_toml(&llm.base_url(), tool_mode, context_window);
        let mut all: Vec<(&str, &str)> = vec![("noctune.toml", &toml)];
        all.extend_from_slice(files);
        let repo = FixtureRepo::new("pyproj", &all);
        let db = tempfile::Builder::new()
            .prefix("noctune-chat-db-")
            .tempdir()
            .unwrap();
        let service =
            ChatService::open(&repo.path(), Some(&db.path().join("audit.sqlite")), None).unwrap();
        ChatEnv {
            llm,
            repo,
            db,
            service,
        }
    }

    /// A new service on the same repository and audit DB: a restart.
    pub fn restart(&mut self) {
        self.service = ChatService::open(&self.repo.path(), Some(&self.db_path()), None).unwrap();
    }

    pub fn db_path(&self) -> PathBuf {
        self.db.path().join("audit.sqlite")
    }

    pub async fn send(&self, session: &str, message: &str, prompter: &dyn Prompter) -> Turn {
        send_on(&self.service, session, message, prompter).await
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.repo.path().join(rel)).unwrap()
    }
}

pub(crate) async fn send_on(
    service: &ChatService,
    session: &str,
    message: &str,
    prompter: &dyn Prompter,
) -> Turn {
    let mut events = Vec::new();
    let summary = service
        .send(
            session,
            message,
            TurnContext::default(),
            prompter,
            &mut |e| events.push(e),
            &CancelToken::new(),
        )
        .await
        .expect("the turn starts");
    Turn { summary, events }
}

pub(crate) fn allow(answer: PermissionAnswer) -> FixedPrompter {
    FixedPrompter {
        answer,
        actor: "tester".into(),
    }
}

/// The messages of a recorded request with this role.
pub(crate) fn messages_with_role(request: &Value, role: &str) -> Vec<Value> {
    request["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == role)
        .cloned()
        .collect()
}

/// Every file under `dir` (recursively).
pub(crate) fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Checks the wire invariant of a request: every assistant tool call is answered by a tool
/// message, and no tool message answers a call that is not there.
pub(crate) fn assert_calls_answered(request: &Value) {
    let msgs = request["messages"].as_array().unwrap();
    for (i, m) in msgs.iter().enumerate() {
        if let Some(calls) = m["tool_calls"].as_array() {
            for c in calls {
                let id = c["id"].as_str().unwrap();
                let answered = msgs[i + 1..]
                    .iter()
                    .take_while(|r| r["role"] == "tool")
                    .any(|r| r["tool_call_id"] == id);
                assert!(answered, "call {id} has no result in {request:#}");
            }
        }
        if m["role"] == "tool" {
            let prev_has_calls = msgs[..i]
                .iter()
                .rev()
                .find(|p| p["role"] != "tool")
                .is_some_and(|p| p["tool_calls"].is_array());
            assert!(prev_has_calls, "tool message without its call: {request:#}");
        }
    }
}

const WRITE_RENDER: &str = r#"{"path": "shapes/render.py", "content": "print('rewritten')\n"}"#;

// ---- streaming and native calls ----

#[tokio::test]
async fn a_streamed_answer_arrives_in_pieces() {
    let env = ChatEnv::new(
        Reply::text(&["The ", "answer ", "is ", "42."]).gap(5),
        "auto",
    );
    let turn = env.send("s1", "What is it?", &NoPrompter).await;
    assert_eq!(turn.deltas(), 4, "{:?}", turn.events);
    assert_eq!(turn.text(), "The answer is 42.");
    assert_eq!(turn.summary.answer, "The answer is 42.");
    match turn.events.last() {
        Some(ChatEvent::Done {
            finish_reason,
            usage,
            timings,
        }) => {
            assert_eq!(finish_reason, "stop");
            assert!(usage.as_ref().is_some_and(|u| u.completion_tokens > 0));
            assert!(timings.is_some());
        }
        other => panic!("expected done, got {other:?}"),
    }
    // The request: streamed, a system prompt with the overview and the citation rule, tools.
    let req = env.llm.last_request().unwrap();
    assert_eq!(req["stream"], true);
    let system = req["messages"][0]["content"].as_str().unwrap();
    assert!(
        system.contains("path:line") && system.contains("Repository overview"),
        "{system}"
    );
    assert!(
        system.contains("shapes/") && system.contains("Python"),
        "{system}"
    );
    assert!(llm_server::has_tools(&req));
}

#[tokio::test]
async fn a_native_call_split_over_many_chunks_is_assembled_and_run() {
    let args = r#"{"path": "shapes/geometry.py", "start_line": 1, "end_line": 5}"#;
    let env = ChatEnv::new(
        [
            Reply::text(&["Let me look."]).with_tool_calls([("call_1", "readFile", args)]),
            Reply::text(&["It defines area."]),
        ],
        "native",
    );
    let turn = env.send("s1", "What is in geometry.py?", &NoPrompter).await;
    let results = turn.results();
    assert_eq!(results.len(), 1, "{:?}", turn.events);
    assert!(results[0].1, "{:?}", results[0]);
    assert!(
        turn.events
            .iter()
            .any(|e| matches!(e, ChatEvent::ToolCall { name, arguments, .. }
        if name == "readFile" && arguments["path"] == "shapes/geometry.py"))
    );
    assert_eq!(turn.summary.tool_calls, 1);
    // The model got the file in a tool message answering call_1.
    let second = &env.llm.requests()[1];
    let tool_msgs = messages_with_role(second, "tool");
    assert_eq!(tool_msgs.len(), 1);
    assert_eq!(tool_msgs[0]["tool_call_id"], "call_1");
    assert!(
        tool_msgs[0].get("name").is_none(),
        "no `name` on tool messages: {:#}",
        tool_msgs[0]
    );
    assert!(
        tool_msgs[0]["content"]
            .as_str()
            .unwrap()
            .contains("def area"),
        "{:#}",
        tool_msgs[0]
    );
    assert_calls_answered(second);
    assert_eq!(turn.text(), "Let me look.It defines area.");
}

#[tokio::test]
async fn two_calls_in_one_turn_both_run() {
    let env = ChatEnv::new(
        [
            Reply::tool_calls([
                ("c1", "readFile", r#"{"path": "shapes/render.py"}"#),
                ("c2", "search", r#"{"pattern": "def area"}"#),
            ]),
            Reply::text(&["Done."]),
        ],
        "auto",
    );
    let turn = env.send("s1", "look around", &NoPrompter).await;
    let results = turn.results();
    assert_eq!(
        results
            .iter()
            .map(|r| (r.0.as_str(), r.1))
            .collect::<Vec<_>>(),
        [("readFile", true), ("search", true)],
        "{results:?}"
    );
    let second = &env.llm.requests()[1];
    let tool_msgs = messages_with_role(second, "tool");
    assert_eq!(
        tool_msgs
            .iter()
            .map(|m| m["tool_call_id"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["c1", "c2"]
    );
    assert!(
        tool_msgs[1]["content"]
            .as_str()
            .unwrap()
            .contains("geometry.py"),
        "{:#}",
        tool_msgs[1]
    );
    assert_calls_answered(second);
}

#[tokio::test]
async fn an_unknown_tool_and_bad_arguments_get_error_results_not_a_crash() {
    let env = ChatEnv::new(
        [
            Reply::tool_calls([
                ("c1", "deleteEverything", "{}"),
                ("c2", "readFile", "[1, 2]"),
                ("c3", "readFile", r#"{"path": "../../etc/passwd"}"#),
            ]),
            Reply::text(&["Sorry."]),
        ],
        "native",
    );
    let turn = env.send("s1", "go", &NoPrompter).await;
    let results = turn.results();
    assert_eq!(results.len(), 3);
    assert_eq!(results[0].2["error"], "unknown_tool");
    assert_eq!(results[1].2["error"], "invalid_arguments");
    assert!(
        !results[2].1
            && results[2].2["message"]
                .as_str()
                .unwrap()
                .contains("../../etc/passwd"),
        "{:?}",
        results[2]
    );
    assert!(
        results[1].2["message"].as_str().unwrap().contains("[1, 2]"),
        "{:?}",
        results[1]
    );
    // What the model wrote is sent back as valid JSON (servers parse earlier calls' arguments).
    let second = &env.llm.requests()[1];
    let assistant = &messages_with_role(second, "assistant")[0];
    for call in assistant["tool_calls"].as_array().unwrap() {
        let args = call["function"]["arguments"].as_str().unwrap();
        assert!(
            serde_json::from_str::<Value>(args).unwrap().is_object(),
            "{args}"
        );
    }
    assert!(turn.summary.error.is_none());
}

// ---- calls printed as text ----

fn printed_calls() -> Vec<(&'static str, String)> {
    let call = r#"{"name": "readFile", "arguments": {"path": "shapes/geometry.py"}}"#;
    vec![
        ("bare", format!("I'll read it.\n{call}")),
        ("fenced", format!("I'll read it.\n```json\n{call}\n```")),
        ("tagged", format!("<tool_call>\n{call}\n</tool_call>")),
        (
            "broken",
            "I'll read it: {'name': 'readFile', arguments: {'path': 'shapes/geometry.py',},"
                .to_string(),
        ),
    ]
}

#[tokio::test]
async fn prompt_mode_runs_calls_printed_in_every_format() {
    for (format, text) in printed_calls() {
        let env = ChatEnv::new(
            [Reply::text(&[&text]), Reply::text(&["It has area()."])],
            "prompt",
        );
        let turn = env.send("s1", "read geometry", &NoPrompter).await;
        let results = turn.results();
        assert_eq!(results.len(), 1, "{format}: {:?}", turn.events);
        assert!(
            results[0].1 && results[0].0 == "readFile",
            "{format}: {results:?}"
        );
        assert!(
            !turn.text().contains("\"arguments\""),
            "{format}: the call was shown: {}",
            turn.text()
        );
        let reqs = env.llm.requests();
        // Prompt mode: no native tools, the protocol in the system prompt, results as user text.
        assert!(!llm_server::has_tools(&reqs[0]), "{format}");
        assert!(
            reqs[0]["messages"][0]["content"]
                .as_str()
                .unwrap()
                .contains("<tool_call>")
        );
        assert!(messages_with_role(&reqs[1], "tool").is_empty(), "{format}");
        let last_user = llm_server::last_user_text(&reqs[1]);
        assert!(
            last_user.contains("<tool_result name=\"readFile\"") && last_user.contains("def area"),
            "{format}: {last_user}"
        );
    }
}

#[tokio::test]
async fn auto_mode_runs_a_printed_call_and_stays_in_prompt_mode() {
    for (format, text) in printed_calls() {
        let env = ChatEnv::new(
            [
                Reply::text(&[&text]),
                Reply::text(&["It has area()."]),
                Reply::text(&["Next answer."]),
            ],
            "auto",
        );
        let turn = env.send("s1", "read geometry", &NoPrompter).await;
        assert_eq!(turn.results().len(), 1, "{format}: {:?}", turn.events);
        assert!(turn.results()[0].1, "{format}");
        assert!(
            turn.notices().iter().any(|n| n.contains("prompt-mode")),
            "{format}: {:?}",
            turn.notices()
        );
        assert!(
            env.service.load_session("s1").unwrap().prompt_tools,
            "{format}"
        );
        let _ = env.send("s1", "and now?", &NoPrompter).await;
        let reqs = env.llm.requests();
        assert!(
            llm_server::has_tools(&reqs[0]),
            "{format}: auto starts native"
        );
        assert!(
            !llm_server::has_tools(&reqs[1]) && !llm_server::has_tools(&reqs[2]),
            "{format}: then prompt mode"
        );
    }
}

#[tokio::test]
async fn a_server_that_rejects_tools_makes_auto_fall_back_for_the_session() {
    let script = Script::new()
        .when(llm_server::has_tools, Reply::tools_unsupported())
        .reply(Reply::text(&[
            "<tool_call>{\"name\": \"listFiles\", \"arguments\": {\"glob\": \"*.py\"}}</tool_call>",
        ]))
        .reply(Reply::text(&["There are Python files."]))
        .reply(Reply::text(&["Still prompt mode."]));
    let mut env = ChatEnv::new(script, "auto");
    let turn = env.send("s1", "which files?", &NoPrompter).await;
    assert!(turn.summary.error.is_none(), "{:?}", turn.events);
    assert_eq!(turn.text(), "There are Python files.");
    assert_eq!(turn.results()[0].0, "listFiles");
    assert!(
        turn.notices().iter().any(|n| n.contains("--jinja")),
        "{:?}",
        turn.notices()
    );
    // The session remembers, also across a restart: no more requests with tools.
    env.restart();
    let turn = env.send("s1", "again", &NoPrompter).await;
    assert_eq!(turn.text(), "Still prompt mode.");
    let with_tools = env
        .llm
        .requests()
        .iter()
        .filter(|r| llm_server::has_tools(r))
        .count();
    assert_eq!(with_tools, 1, "only the first request offered native tools");
    assert!(
        env.service
            .load_session("s1")
            .unwrap()
            .fallback_reason
            .unwrap()
            .contains("--jinja")
    );
}

#[tokio::test]
async fn native_mode_does_not_fall_back() {
    let env = ChatEnv::new(
        Script::new().when(llm_server::has_tools, Reply::tools_unsupported()),
        "native",
    );
    let turn = env.send("s1", "hi", &NoPrompter).await;
    let err = turn.error().expect("an error");
    assert!(err.contains("HTTP 400") && err.contains("--jinja"), "{err}");
    assert_eq!(env.llm.requests().len(), 1);
}

// ---- permissions, edits, undo ----

#[tokio::test]
async fn without_a_grant_a_write_is_refused_and_the_model_sees_why() {
    let env = ChatEnv::new(
        [
            Reply::tool_call("w1", "writeFile", WRITE_RENDER),
            Reply::text(&["Please allow me to write."]),
        ],
        "native",
    );
    let before = env.read("shapes/render.py");
    let turn = env.send("s1", "rewrite render.py", &NoPrompter).await;
    assert_eq!(turn.permission_requests(), 1);
    let results = turn.results();
    assert_eq!(results[0].2["error"], "write_not_allowed", "{results:?}");
    assert!(results[0].2["message"].as_str().unwrap().contains("ask"));
    assert_eq!(env.read("shapes/render.py"), before, "nothing changed");
    assert!(
        !env.repo
            .path()
            .join(".noctune_cache/studio_edits/backups")
            .exists()
    );
    let tool_msg = &messages_with_role(&env.llm.requests()[1], "tool")[0];
    assert!(
        tool_msg["content"]
            .as_str()
            .unwrap()
            .contains("write_not_allowed"),
        "{tool_msg:#}"
    );
    let grants = env.service.load_session("s1").unwrap().grants;
    assert_eq!(grants[0].answer, "deny");
}

#[tokio::test]
async fn a_once_grant_works_once_and_leaves_a_backup() {
    let env = ChatEnv::new(
        [
            Reply::tool_call("w1", "writeFile", WRITE_RENDER),
            Reply::text(&["Written."]),
            Reply::tool_call(
                "w2",
                "writeFile",
                r#"{"path": "shapes/render.py", "content": "second\n"}"#,
            ),
            Reply::text(&["Not allowed."]),
        ],
        "native",
    );
    let original = env.read("shapes/render.py");
    let turn = env
        .send("s1", "rewrite render.py", &allow(PermissionAnswer::Once))
        .await;
    assert!(turn.results()[0].1, "{:?}", turn.results());
    assert_eq!(env.read("shapes/render.py"), "print('rewritten')\n");
    let backups = files_under(&env.repo.path().join(".noctune_cache/studio_edits/backups"));
    let backup = backups
        .iter()
        .find(|p| p.ends_with("shapes/render.py"))
        .unwrap_or_else(|| panic!("no backup: {backups:?}"));
    assert_eq!(std::fs::read_to_string(backup).unwrap(), original);
    // The once-grant is used up: the next write asks again (and nobody answers).
    let turn = env.send("s1", "again", &NoPrompter).await;
    assert_eq!(turn.results()[0].2["error"], "write_not_allowed");
    assert_eq!(env.read("shapes/render.py"), "print('rewritten')\n");
}

#[tokio::test]
async fn a_session_grant_holds_for_that_session_only() {
    let write = |content: &str| json!({"path": "shapes/render.py", "content": content}).to_string();
    let env = ChatEnv::new(
        [
            Reply::tool_call("w1", "writeFile", &write("one\n")),
            Reply::text(&["ok"]),
            Reply::tool_call("w2", "writeFile", &write("two\n")),
            Reply::text(&["ok"]),
            Reply::tool_call("w3", "writeFile", &write("three\n")),
            Reply::text(&["no"]),
        ],
        "native",
    );
    let t1 = env
        .send("s1", "write one", &allow(PermissionAnswer::Session))
        .await;
    assert!(t1.results()[0].1);
    // Same session, nobody to ask: the session grant answers.
    let t2 = env.send("s1", "write two", &NoPrompter).await;
    assert!(t2.results()[0].1, "{:?}", t2.results());
    assert_eq!(t2.permission_requests(), 0);
    assert_eq!(env.read("shapes/render.py"), "two\n");
    // Another session: not granted.
    let t3 = env.send("s2", "write three", &NoPrompter).await;
    assert_eq!(t3.results()[0].2["error"], "write_not_allowed");
    assert_eq!(env.read("shapes/render.py"), "two\n");
}

#[tokio::test]
async fn an_always_grant_survives_a_restart_and_can_be_revoked() {
    let write = |content: &str| json!({"path": "shapes/render.py", "content": content}).to_string();
    let mut env = ChatEnv::new(
        [
            Reply::tool_call("w1", "writeFile", &write("one\n")),
            Reply::text(&["ok"]),
            Reply::tool_call("w2", "writeFile", &write("two\n")),
            Reply::text(&["ok"]),
            Reply::tool_call(
                "w3",
                "writeFile",
                r#"{"path": ".env", "content": "SECRET=1\n"}"#,
            ),
            Reply::text(&["protected"]),
            Reply::tool_call("w4", "writeFile", &write("four\n")),
            Reply::text(&["revoked"]),
        ],
        "native",
    );
    env.send("s1", "write", &allow(PermissionAnswer::Always))
        .await;
    assert!(
        env.repo
            .path()
            .join(".noctune_cache/studio_allow.json")
            .is_file()
    );
    env.restart();
    let grants = env.service.always_grants();
    assert_eq!(grants.len(), 1);
    assert_eq!(grants[0].tool_class.as_str(), "write");
    // A new process, a new session, nobody to ask: the always grant answers.
    let t = env.send("s2", "write two", &NoPrompter).await;
    assert!(t.results()[0].1, "{:?}", t.results());
    assert_eq!(env.read("shapes/render.py"), "two\n");
    // A protected path needs its own approval even under always.
    let t = env.send("s2", "write .env", &NoPrompter).await;
    assert_eq!(t.permission_requests(), 1);
    assert_eq!(t.results()[0].2["error"], "write_not_allowed");
    assert!(!env.repo.path().join(".env").exists());
    // Revoked: asks again.
    assert!(env.service.revoke("write", "tester").unwrap());
    assert!(env.service.always_grants().is_empty());
    let t = env.send("s3", "write four", &NoPrompter).await;
    assert_eq!(t.results()[0].2["error"], "write_not_allowed");
    assert_eq!(env.read("shapes/render.py"), "two\n");
}

#[tokio::test]
async fn undo_restores_the_previous_content() {
    let env = ChatEnv::new(
        [
            Reply::tool_call("w1", "writeFile", WRITE_RENDER),
            Reply::text(&["Written."]),
        ],
        "native",
    );
    let original = env.read("shapes/render.py");
    env.send("s1", "rewrite", &allow(PermissionAnswer::Once))
        .await;
    assert_ne!(env.read("shapes/render.py"), original);
    let undone = env.service.undo_last(Some("s1")).unwrap();
    assert_eq!(undone.path, "shapes/render.py");
    assert_eq!(env.read("shapes/render.py"), original);
    assert!(
        env.service.undo_last(Some("s1")).is_err(),
        "nothing left to undo"
    );
}

#[tokio::test]
async fn an_edit_of_a_file_changed_since_it_was_read_is_refused() {
    let env = ChatEnv::new(
        [
            Reply::tool_call("r1", "readFile", r#"{"path": "shapes/render.py"}"#),
            Reply::text(&["Read it."]),
            Reply::tool_call("w1", "writeFile", WRITE_RENDER),
            Reply::text(&["Conflict."]),
        ],
        "native",
    );
    env.send("s1", "read render.py", &NoPrompter).await;
    std::fs::write(
        env.repo.path().join("shapes/render.py"),
        "# the user's own change\n",
    )
    .unwrap();
    let turn = env
        .send("s1", "now rewrite it", &allow(PermissionAnswer::Once))
        .await;
    assert_eq!(
        turn.results()[0].2["error"],
        "conflict",
        "{:?}",
        turn.results()
    );
    assert_eq!(env.read("shapes/render.py"), "# the user's own change\n");
}

// ---- context window ----

#[tokio::test]
async fn the_context_is_trimmed_instead_of_overflowing() {
    let big: String = (0..1500)
        .map(|i| format!("line {i}: some text of the big file\n"))
        .collect();
    let read = r#"{"path": "big.txt"}"#;
    let mut replies = Vec::new();
    for i in 0..4 {
        replies.push(Reply::tool_call(&format!("r{i}"), "readFile", read));
        replies.push(Reply::text(&["Read."]));
    }
    let env = ChatEnv::with(replies, "native", 4096, &[("big.txt", &big)]);
    for i in 0..4 {
        let t = env
            .send("s1", &format!("read big.txt, round {i}"), &NoPrompter)
            .await;
        assert!(t.summary.error.is_none(), "{:?}", t.events);
    }
    // Every request stayed within the window (estimated at 3.5 bytes per token, minus the
    // answer's room), and the older tool output carries the visible note.
    for (i, req) in env.llm.requests().iter().enumerate() {
        let bytes: usize = req["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m.to_string().len())
            .sum();
        assert!(
            bytes < 4096 * 7 / 2,
            "request {i}: {bytes} bytes of messages"
        );
    }
    let last = env.llm.last_request().unwrap();
    let notes = messages_with_role(&last, "tool")
        .iter()
        .filter(|m| m["content"].as_str().unwrap().contains(TRIM_NOTE))
        .count();
    assert!(notes >= 1, "{last:#}");
    assert_calls_answered(&last);
    // The session itself keeps everything.
    let s = env.service.load_session("s1").unwrap();
    assert!(
        s.messages
            .iter()
            .filter(|m| m.role == Role::Tool)
            .all(|m| !m.content.as_deref().unwrap().contains(TRIM_NOTE))
    );
}

#[tokio::test]
async fn a_context_overflow_from_the_server_is_retried_with_a_harder_trim() {
    let big: String = "word ".repeat(4000);
    let env = ChatEnv::with(
        [
            Reply::tool_call("r1", "readFile", r#"{"path": "big.txt"}"#),
            Reply::context_overflow(9000, 2048),
            Reply::text(&["Fits now."]),
        ],
        "native",
        8192,
        &[("big.txt", &big)],
    );
    let turn = env.send("s1", "read big.txt", &NoPrompter).await;
    assert!(turn.summary.error.is_none(), "{:?}", turn.events);
    assert_eq!(turn.text(), "Fits now.");
    assert!(
        turn.notices()
            .iter()
            .any(|n| n.contains("trimming harder") && n.contains("context_window")),
        "{:?}",
        turn.notices()
    );
    let reqs = env.llm.requests();
    let size = |r: &Value| r["messages"].to_string().len();
    assert!(
        size(&reqs[2]) < size(&reqs[1]) / 2,
        "{} vs {}",
        size(&reqs[2]),
        size(&reqs[1])
    );
}

// ---- model errors ----

async fn assert_error_then_usable(env: &ChatEnv, expect: &[&str]) {
    let turn = env.send("s1", "first", &NoPrompter).await;
    let err = turn
        .error()
        .unwrap_or_else(|| panic!("no error event: {:?}", turn.events));
    for word in expect {
        assert!(err.contains(word), "{err:?} lacks {word:?}");
    }
    assert_eq!(turn.summary.error.as_deref(), Some(err.as_str()));
    // No half call in the session; the next turn works and sends a well-formed conversation.
    if let Ok(s) = env.service.load_session("s1") {
        for m in &s.messages {
            if let Some(calls) = &m.tool_calls {
                for c in calls {
                    assert!(
                        s.messages
                            .iter()
                            .any(|r| r.tool_call_id.as_deref() == Some(&c.id)),
                        "half call {c:?}"
                    );
                }
            }
        }
    }
    env.llm.push(Reply::text(&["Back again."]));
    let turn = env.send("s1", "second", &NoPrompter).await;
    assert!(turn.summary.error.is_none(), "{:?}", turn.events);
    assert_eq!(turn.text(), "Back again.");
    let last = env.llm.last_request().unwrap();
    assert_calls_answered(&last);
    assert_eq!(
        last["messages"].as_array().unwrap().last().unwrap()["role"],
        "user"
    );
}

#[tokio::test]
async fn http_500_ends_the_turn_clearly_and_the_session_stays_usable() {
    let env = ChatEnv::new(Reply::server_error("out of memory"), "auto");
    assert_error_then_usable(&env, &["HTTP 500", "out of memory"]).await;
}

#[tokio::test]
async fn a_malformed_chunk_ends_the_turn_clearly() {
    let env = ChatEnv::new(Reply::malformed_chunk(), "auto");
    assert_error_then_usable(&env, &["could not be read"]).await;
}

#[tokio::test]
async fn a_stream_cut_mid_call_leaves_no_half_call() {
    let env = ChatEnv::new(Reply::cut_mid_call(), "native");
    assert_error_then_usable(&env, &["ended before the answer was complete"]).await;
}

#[tokio::test]
async fn a_cut_after_a_completed_round_keeps_that_round() {
    let env = ChatEnv::new(
        [
            Reply::tool_call("r1", "readFile", r#"{"path": "shapes/render.py"}"#),
            Reply::text(&["partial"]).cut_after(2),
        ],
        "native",
    );
    let turn = env.send("s1", "read", &NoPrompter).await;
    assert!(turn.error().is_some());
    let s = env.service.load_session("s1").unwrap();
    let roles: Vec<Role> = s.messages.iter().map(|m| m.role).collect();
    assert_eq!(roles, [Role::User, Role::Assistant, Role::Tool]);
    env.llm.push(Reply::text(&["ok"]));
    let turn = env.send("s1", "go on", &NoPrompter).await;
    assert!(turn.summary.error.is_none());
    assert_calls_answered(&env.llm.last_request().unwrap());
}

#[tokio::test]
async fn a_server_that_is_down_is_named_with_how_to_start_one() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let env = ChatEnv::new(Reply::text(&["unused"]), "auto");
    let toml = profile_toml(&format!("http://127.0.0.1:{port}/v1"), "auto", 8192);
    std::fs::write(env.repo.path().join("noctune.toml"), toml).unwrap();
    let service = ChatService::open(&env.repo.path(), None, None).unwrap();
    let turn = send_on(&service, "s1", "hello", &NoPrompter).await;
    let err = turn.error().unwrap();
    assert!(
        err.contains(&format!("127.0.0.1:{port}")) && err.contains("llama-server"),
        "{err}"
    );
    // The question is kept, marked as failed (chat_partial.rs tests the rest).
    let s = service.load_session("s1").unwrap();
    assert_eq!(
        s.failed_last_turn().unwrap().error.code,
        "model_unreachable"
    );
}

#[tokio::test]
async fn a_cancelled_turn_ends_as_cancelled() {
    let env = ChatEnv::new(Reply::text(&["slow"]).delay(5000), "auto");
    let cancel = CancelToken::new();
    // Cancelled while the model is thinking: the request has arrived, the answer is 5 s away.
    let canceller = async {
        wait_until_async(
            std::time::Duration::from_secs(10),
            "the turn's request to reach the model",
            async || !env.llm.requests().is_empty(),
        )
        .await;
        cancel.cancel();
    };
    let mut events = Vec::new();
    let started = std::time::Instant::now();
    let mut on_event = |e| events.push(e);
    let (summary, ()) = tokio::join!(
        env.service.send(
            "s1",
            "hi",
            TurnContext::default(),
            &NoPrompter,
            &mut on_event,
            &cancel,
        ),
        canceller
    );
    let summary = summary.unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
    assert_eq!(summary.finish_reason.as_deref(), Some("cancelled"));
    assert!(
        matches!(events.last(), Some(ChatEvent::Done { finish_reason, .. }) if finish_reason == "cancelled")
    );
}

#[tokio::test]
async fn tool_rounds_are_capped() {
    let script = Script::new().fallback(|req| {
        if llm_server::has_tools(req) {
            Reply::tool_call(
                &format!("c{}", req["messages"].as_array().unwrap().len()),
                "listFiles",
                "{}",
            )
        } else {
            Reply::text(&["Enough."])
        }
    });
    let env = ChatEnv::new(script, "native");
    let turn = env.send("s1", "loop forever", &NoPrompter).await;
    assert_eq!(turn.summary.rounds, noctune_chat::agent::MAX_TOOL_ROUNDS);
    assert_eq!(turn.text(), "Enough.");
    assert_eq!(
        env.llm.requests().len(),
        noctune_chat::agent::MAX_TOOL_ROUNDS + 1
    );
}

// ---- run tools ----

/// A stand-in engine that records decisions.
#[derive(Default)]
struct FakeRuns {
    repo: PathBuf,
    decided: Mutex<Vec<(String, String, String)>>,
}

impl RunControl for FakeRuns {
    fn start(
        &self,
        _req: &noctune_engine::api::StartRequest,
    ) -> Result<noctune_core::RunRecord, noctune_core::OpError> {
        Err(noctune_core::OpError::invalid(
            "this fake only answers status, approvals and decide",
        ))
    }
    fn status(&self, run_id: &str) -> Result<noctune_core::RunRecord, noctune_core::OpError> {
        let rec: noctune_core::RunRecord = serde_json::from_value(json!({
            "run_id": run_id, "status": "waiting_approval", "started_at": "2026-01-01T00:00:00.000Z",
            "updated_at": "2026-01-01T00:00:00.000Z", "ended_at": null, "repo_root": self.repo,
            "pack": "lint_fix", "profile": "default", "branch": "b", "head_sha": "0", "error": null,
            "resume_policy": "continue", "worker_pid": null, "stage": "x"
        }))
        .unwrap();
        Ok(rec)
    }
    fn stop(&self, run_id: &str) -> Result<noctune_core::RunRecord, noctune_core::OpError> {
        self.status(run_id)
    }
    fn events(
        &self,
        _run_id: &str,
        _c: u64,
        _l: usize,
    ) -> Result<Vec<noctune_core::Event>, noctune_core::OpError> {
        Ok(Vec::new())
    }
    fn approvals(
        &self,
        _run_id: &str,
    ) -> Result<Vec<noctune_engine::api::ApprovalView>, noctune_core::OpError> {
        Ok(Vec::new())
    }
    fn decide(
        &self,
        run_id: &str,
        approval_id: &str,
        decision: noctune_core::Decision,
        reason: &str,
        decided_by: &str,
    ) -> Result<noctune_core::ApprovalDecision, noctune_core::OpError> {
        self.decided
            .lock()
            .unwrap()
            .push((run_id.into(), approval_id.into(), decided_by.into()));
        Ok(serde_json::from_value(json!({
            "approval_id": approval_id, "decision": decision.as_str(), "decided_at": "now",
            "decided_by": decided_by, "reason": reason
        }))
        .unwrap())
    }
}

#[tokio::test]
async fn decide_is_gated_and_records_the_chat_session_as_decider() {
    let run_id = "20260101T000000Z-0000aaaa";
    let approval = "a".repeat(16);
    let env = ChatEnv::new(
        [
            Reply::tool_call(
                "d1",
                "noctuneDecide",
                &json!({"run_id": run_id, "approval_id": approval, "decision": "approve"})
                    .to_string(),
            ),
            Reply::text(&["Asked."]),
            Reply::tool_call(
                "d2",
                "noctuneDecide",
                &json!({"run_id": run_id, "approval_id": approval, "decision": "approve"})
                    .to_string(),
            ),
            Reply::text(&["Approved."]),
        ],
        "native",
    );
    let runs = Arc::new(FakeRuns {
        repo: env.repo.path(),
        ..FakeRuns::default()
    });
    let service =
        ChatService::open(&env.repo.path(), Some(&env.db_path()), Some(runs.clone())).unwrap();
    let t = send_on(&service, "sess-9", "approve it", &NoPrompter).await;
    assert_eq!(
        t.results()[0].2["error"],
        "decide_not_allowed",
        "{:?}",
        t.results()
    );
    assert!(runs.decided.lock().unwrap().is_empty());
    let t = send_on(
        &service,
        "sess-9",
        "yes, approve",
        &allow(PermissionAnswer::Once),
    )
    .await;
    assert!(t.results()[0].1, "{:?}", t.results());
    let decided = runs.decided.lock().unwrap().clone();
    assert_eq!(
        decided,
        vec![(
            run_id.to_string(),
            approval.clone(),
            "chat:sess-9".to_string()
        )]
    );
}
