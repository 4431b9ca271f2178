//! The chat API of `noctune studio` against the real binary and the scripted model server:
//! sessions CRUD and export, a turn streamed by SSE with a permission prompt answered over
//! HTTP, the prompt timeout that denies, model health, and `/mcp` behind the same lock.

use crate::http_support::{SseMsg, StudioProc};
use crate::support::cli::Noctune;
use crate::support::llm_server::{self, Reply, Script, ScriptedLlm};
use crate::support::repo::FixtureRepo;
use serde_json::json;
use std::time::Duration;

struct ChatSetup {
    repo: FixtureRepo,
    _nt: Noctune,
    llm: ScriptedLlm,
    studio: StudioProc,
}

fn setup(script: Script, extra_env: &[(&str, &str)]) -> ChatSetup {
    let repo = FixtureRepo::new("pyproj", &[]);
    let nt = Noctune::new();
    let llm = ScriptedLlm::start(script);
    let base = llm.base_url();
    let mut env = vec![
        ("NOCTUNE_STUDIO_LLM_BASE_URL", base.as_str()),
        ("NOCTUNE_STUDIO_LLM_MODEL", llm_server::MODEL),
    ];
    env.extend_from_slice(extra_env);
    let studio = StudioProc::start_with(&nt, &repo.path(), &env);
    ChatSetup {
        repo,
        _nt: nt,
        llm,
        studio,
    }
}

/// POSTs a message and reads the SSE answer; `on` may act on each event (answer prompts).
fn send(st: &StudioProc, session: &str, message: &str, mut on: impl FnMut(&SseMsg)) -> Vec<SseMsg> {
    let body = json!({"message": message}).to_string();
    let mut sse = st.sse_post(&format!("/api/chat/sessions/{session}/messages"), &body);
    assert_eq!(sse.status, 200);
    let mut out = Vec::new();
    while let Some(m) = sse.next(Duration::from_secs(30)) {
        on(&m);
        let last = m.event == "done" || m.event == "error";
        out.push(m);
        if last {
            break;
        }
    }
    out
}

fn events(msgs: &[SseMsg]) -> Vec<String> {
    msgs.iter().map(|m| m.event.clone()).collect()
}

#[test]
fn sessions_create_list_load_export_delete() {
    let s = setup(
        Script::new().fallback(|_| Reply::text(&["Hello ", "there."])),
        &[],
    );
    let st = &s.studio;
    let r = st.post_json("/api/chat/sessions", &json!({}));
    assert_eq!(r.status, 201, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_string();
    let msgs = send(st, &id, "hi", |_| {});
    assert_eq!(events(&msgs), ["delta", "delta", "done"]);
    assert_eq!(msgs[0].json(), json!({"type": "delta", "text": "Hello "}));
    let list = st.json("/api/chat/sessions");
    assert!(
        list["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["id"] == id.as_str() && x["title"] == "hi"),
        "{list}"
    );
    let loaded = st.json(&format!("/api/chat/sessions/{id}"));
    assert_eq!(loaded["messages"][0]["content"], "hi");
    assert_eq!(loaded["messages"][1]["content"], "Hello there.");
    assert!(
        s.repo
            .path()
            .join(format!(".noctune_cache/studio_chat/sessions/{id}.json"))
            .is_file()
    );
    let exp = st.get(&format!("/api/chat/sessions/{id}/export"));
    assert_eq!(exp.status, 200);
    assert!(
        exp.header("content-disposition")
            .unwrap()
            .starts_with("attachment")
    );
    assert_eq!(exp.json()["session_id"], id.as_str());
    let r = st.post_json(
        &format!("/api/chat/sessions/{id}/profile"),
        &json!({"profile": "nope"}),
    );
    assert_eq!((r.status, r.code().as_str()), (400, "unknown_profile"));
    let profiles = st.json("/api/chat/profiles");
    assert_eq!(profiles["default"], "default");
    assert_eq!(st.delete(&format!("/api/chat/sessions/{id}")).status, 200);
    assert_eq!(st.get(&format!("/api/chat/sessions/{id}")).status, 404);
    assert_eq!(st.delete(&format!("/api/chat/sessions/{id}")).status, 404);
    for bad in ["..%2Fx", ".hidden", "a%20b"] {
        assert_eq!(
            st.get(&format!("/api/chat/sessions/{bad}")).status,
            404,
            "{bad}"
        );
    }
    let r = st.post_json("/api/chat/sessions/x/messages", &json!({"message": "  "}));
    assert_eq!((r.status, r.code().as_str()), (400, "invalid_arguments"));
    let r = st.post_json("/api/chat/sessions/.x/messages", &json!({"message": "hi"}));
    assert_eq!((r.status, r.code().as_str()), (400, "invalid_arguments"));
}

#[test]
fn a_write_asks_over_sse_and_the_browser_answer_decides() {
    let s = setup(
        Script::new()
            .reply(Reply::tool_call(
                "call_1",
                "writeFile",
                r#"{"path": "shapes/util/helpers.py", "content": "x = 1\n"}"#,
            ))
            .when(
                llm_server::last_is_tool_result,
                Reply::text(&["May I write it?"]),
            ),
        &[],
    );
    let st = &s.studio;
    let before = s.repo.read("shapes/util/helpers.py");
    let mut answered = None;
    let msgs = send(st, "s-deny", "edit helpers", |m| {
        if m.event == "permission_request" {
            let id = m.json()["id"].as_str().unwrap().to_string();
            // Bad answers are refused and change nothing.
            let r = st.post_json(
                &format!("/api/chat/permissions/{id}"),
                &json!({"answer": "maybe"}),
            );
            assert_eq!((r.status, r.code().as_str()), (400, "invalid_answer"));
            let r = st.post_json(
                &format!("/api/chat/permissions/{id}"),
                &json!({"answer": "deny"}),
            );
            assert_eq!(r.status, 200, "{}", r.text());
            answered = Some(id);
        }
    });
    let ev = events(&msgs);
    assert_eq!(
        ev.iter().filter(|e| *e == "permission_request").count(),
        1,
        "{ev:?}"
    );
    let result = msgs
        .iter()
        .find(|m| m.event == "tool_result")
        .unwrap()
        .json();
    assert_eq!(result["ok"], false);
    assert_eq!(result["result"]["error"], "write_not_allowed");
    assert!(
        ev.ends_with(&["delta".to_string(), "done".to_string()]),
        "{ev:?}"
    );
    assert_eq!(s.repo.read("shapes/util/helpers.py"), before);
    // The answered request is gone: a second answer is a 404.
    let r = st.post_json(
        &format!("/api/chat/permissions/{}", answered.unwrap()),
        &json!({"answer": "once"}),
    );
    assert_eq!(
        (r.status, r.code().as_str()),
        (404, "unknown_permission_request")
    );
    let r = st.post_json("/api/chat/permissions/nope", &json!({"answer": "once"}));
    assert_eq!(r.status, 404);
    assert_eq!(s.llm.requests().len(), 2);
}

#[test]
fn allow_once_edits_with_a_backup_and_undo_restores() {
    let s = setup(
        Script::new()
            .reply(Reply::tool_call(
                "call_1",
                "writeFile",
                r#"{"path": "shapes/util/helpers.py", "content": "x = 1\n"}"#,
            ))
            .when(llm_server::last_is_tool_result, Reply::text(&["Done."])),
        &[],
    );
    let st = &s.studio;
    let before = s.repo.read("shapes/util/helpers.py");
    let msgs = send(st, "s-once", "edit helpers", |m| {
        if m.event == "permission_request" {
            let id = m.json()["id"].as_str().unwrap().to_string();
            assert_eq!(
                st.post_json(
                    &format!("/api/chat/permissions/{id}"),
                    &json!({"answer": "once"})
                )
                .status,
                200
            );
        }
    });
    let result = msgs
        .iter()
        .find(|m| m.event == "tool_result")
        .unwrap()
        .json();
    assert_eq!(result["ok"], true, "{result}");
    assert!(
        result["result"]["diff"]
            .as_str()
            .unwrap()
            .contains("+x = 1")
    );
    assert_eq!(s.repo.read("shapes/util/helpers.py"), "x = 1\n");
    assert!(
        s.repo
            .path()
            .join(".noctune_cache/studio_edits/backups")
            .is_dir()
    );
    let r = st.post("/api/chat/sessions/s-once/undo");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["path"], "shapes/util/helpers.py");
    assert_eq!(s.repo.read("shapes/util/helpers.py"), before);
    let r = st.post("/api/chat/sessions/s-once/undo");
    assert_eq!(
        (r.status, r.code().as_str()),
        (409, "wrong_state"),
        "{}",
        r.text()
    );
}

#[test]
fn an_unanswered_prompt_is_denied_after_the_timeout() {
    let s = setup(
        Script::new()
            .reply(Reply::tool_call(
                "call_1",
                "writeFile",
                r#"{"path": "a.txt", "content": "x"}"#,
            ))
            .when(
                llm_server::last_is_tool_result,
                Reply::text(&["Please allow it."]),
            ),
        &[("NOCTUNE_STUDIO_PROMPT_TIMEOUT_SECS", "1")],
    );
    let t = std::time::Instant::now();
    let msgs = send(&s.studio, "s-timeout", "write a.txt", |_| {});
    assert!(t.elapsed() < Duration::from_secs(20));
    let result = msgs
        .iter()
        .find(|m| m.event == "tool_result")
        .unwrap()
        .json();
    assert_eq!(result["result"]["error"], "write_not_allowed");
    assert!(!s.repo.path().join("a.txt").exists());
}

#[test]
fn model_health_and_the_llama_server_hint() {
    let s = setup(Script::new(), &[]);
    let h = s.studio.json("/api/chat/health");
    assert_eq!(h["ok"], true, "{h}");
    drop(s.llm);
    let h = s.studio.json("/api/chat/health");
    assert_eq!(h["ok"], false);
    assert!(
        h["message"].as_str().unwrap().contains("llama-server"),
        "{h}"
    );
    assert!(
        h["start_command"]
            .as_str()
            .unwrap()
            .starts_with("llama-server "),
        "{h}"
    );
    let r = s.studio.get("/api/chat/health?profile=nope");
    assert_eq!(r.status, 400);
}

#[test]
fn mcp_is_served_inside_the_lock() {
    let s = setup(Script::new(), &[]);
    let st = &s.studio;
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}});
    let body = init.to_string();
    let bearer = st.bearer();
    let base = [
        ("Content-Type", "application/json"),
        ("Accept", "application/json, text/event-stream"),
    ];
    let r = st.raw("POST", "/mcp", &base, body.as_bytes());
    assert_eq!(r.status, 401);
    let mut with = base.to_vec();
    with.push(("Authorization", bearer.as_str()));
    let r = st.raw("POST", "/mcp", &with, body.as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.text().contains("serverInfo") || r.text().contains("protocolVersion"),
        "{}",
        r.text()
    );
    with.push(("Origin", "http://evil.example"));
    let r = st.raw("POST", "/mcp", &with, body.as_bytes());
    assert_eq!(r.status, 403);
}
