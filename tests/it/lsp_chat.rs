//! Chat through `noctune lsp`: streamed deltas, the editor's buffers and selection as context,
//! permission prompts as `window/showMessageRequest`, edits as `workspace/applyEdit`, cancel.

use crate::support::cli::Noctune;
use crate::support::llm_server::{Reply, Script, ScriptedLlm};
use crate::support::lsp_client::{LspClient, file_uri, full_caps};
use crate::support::repo::FixtureRepo;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn start(nt: &Noctune, repo: &FixtureRepo, llm: &ScriptedLlm) -> LspClient {
    LspClient::start(
        nt,
        &repo.path(),
        &["--no-http"],
        &[("NOCTUNE_STUDIO_LLM_BASE_URL", &llm.base_url())],
    )
}

fn deltas_of(c: &LspClient, request_id: &str) -> Vec<Value> {
    c.seen
        .iter()
        .filter(|m| m["method"] == "noctune/chatDelta" && m["params"]["requestId"] == request_id)
        .map(|m| m["params"].clone())
        .collect()
}

fn tool_messages(req: &Value) -> Vec<String> {
    req["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "tool")
        .map(|m| m["content"].to_string())
        .collect()
}

#[test]
fn a_chat_answer_streams_as_deltas_with_the_unsaved_buffer_and_selection_as_context() {
    let repo = FixtureRepo::new("pyproj", &[]);
    let nt = Noctune::new();
    let llm = ScriptedLlm::start(
        Script::new()
            .reply(Reply::tool_call(
                "call_1",
                "readFile",
                r#"{"path": "shapes/geometry.py"}"#,
            ))
            .reply(Reply::text(&["The file ", "defines ", "shapes."]).gap(30)),
    );
    let mut c = start(&nt, &repo, &llm);
    c.initialize(&repo.path(), full_caps());
    let path = repo.path().join("shapes/geometry.py");
    let uri = file_uri(&path);
    let text = std::fs::read_to_string(&path).unwrap();
    c.notify(
        "textDocument/didOpen",
        json!({"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": text}}),
    );
    // An unsaved edit, sent incrementally: a new first line.
    c.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": uri, "version": 2},
               "contentChanges": [{"range": {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 0}},
                                   "text": "UNSAVED_MARKER = 1\n"}]}),
    );
    let id = c.request(
        "noctune/chat",
        json!({"message": "What does this file do?", "requestId": "r1",
               "context": {"uri": uri, "selection": {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 14}}}}),
    );
    let resp = c.response(id, 60);
    let result = &resp["result"];
    assert_eq!(
        result["text"],
        "The file defines shapes.",
        "{resp:#}\n{}",
        c.stderr()
    );
    let session = result["session"].as_str().unwrap().to_string();
    assert!(!session.is_empty());

    let deltas = deltas_of(&c, "r1");
    let kinds: Vec<&str> = deltas.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    let pieces: Vec<&str> = deltas
        .iter()
        .filter(|d| d["kind"] == "delta")
        .map(|d| d["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        pieces,
        vec!["The file ", "defines ", "shapes."],
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&"tool_call") && kinds.contains(&"tool_result"),
        "{kinds:?}"
    );
    assert_eq!(kinds.last(), Some(&"done"), "{kinds:?}");
    assert!(deltas.iter().all(|d| d["session"] == session.as_str()));
    let seqs: Vec<u64> = deltas.iter().map(|d| d["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    // Every delta came before the response.
    let resp_at = c
        .seen
        .iter()
        .position(|m| m["id"] == json!(id) && m.get("method").is_none())
        .unwrap();
    let last_delta_at = c
        .seen
        .iter()
        .rposition(|m| m["method"] == "noctune/chatDelta")
        .unwrap();
    assert!(
        last_delta_at < resp_at,
        "a delta arrived after the response"
    );

    // The model saw the selection (from the synced, unsaved buffer) and read the buffer, not the disk.
    let reqs = llm.requests();
    assert!(
        reqs[0].to_string().contains("UNSAVED_MARKER"),
        "selection not in the prompt: {:#}",
        reqs[0]
    );
    assert!(
        tool_messages(&reqs[1])
            .iter()
            .any(|m| m.contains("UNSAVED_MARKER")),
        "readFile did not see the buffer"
    );
    assert!(c.shutdown_exit().success());
}

/// Answers permission prompts with `button` and records each prompt's offered titles.
fn answer_with(c: &mut LspClient, button: &'static str, prompts: Arc<Mutex<Vec<Vec<String>>>>) {
    c.set_hook(move |req| match req["method"].as_str() {
        Some("window/showMessageRequest") => {
            let titles = req["params"]["actions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["title"].as_str().unwrap().to_string())
                .collect();
            prompts.lock().unwrap().push(titles);
            Some(json!({"title": button}))
        }
        Some("window/workDoneProgress/create") => Some(Value::Null),
        _ => None,
    });
}

fn write_turn(c: &mut LspClient, llm: &ScriptedLlm, session: &str, file: &str) -> Value {
    llm.push(Reply::tool_call(
        "call_w",
        "writeFile",
        &json!({"path": file, "content": "hello\n"}).to_string(),
    ));
    llm.push(Reply::text(&["ok"]));
    let r = c.call(
        "noctune/chat",
        json!({"session": session, "message": format!("write {file}")}),
    );
    assert!(r["error"].is_null(), "{r:#}");
    r
}

#[test]
fn permission_prompts_offer_the_four_buttons_and_each_answer_is_honoured() {
    let repo = FixtureRepo::new("pyproj", &[]);
    let nt = Noctune::new();
    let llm = ScriptedLlm::start(Script::new());
    let mut c = start(&nt, &repo, &llm);
    // No applyEdit support: edits go to disk, so the test can see them.
    c.initialize(&repo.path(), json!({"window": {"workDoneProgress": true}}));
    let prompts = Arc::new(Mutex::new(Vec::new()));
    // A file edit's prompt offers its diff first (see chat_edit_tool.rs).
    let buttons = [
        "Show diff",
        "Allow once",
        "Allow this session",
        "Always allow",
        "Deny",
    ];

    // Deny: nothing is written and the model is told write_not_allowed.
    answer_with(&mut c, "Deny", prompts.clone());
    write_turn(&mut c, &llm, "s-deny", "deny.txt");
    assert!(!repo.path().join("deny.txt").exists());
    let last = llm.requests().last().cloned().unwrap();
    assert!(
        tool_messages(&last)
            .iter()
            .any(|m| m.contains("write_not_allowed")),
        "{:?}",
        tool_messages(&last)
    );
    assert!(
        c.seen
            .iter()
            .any(|m| m["method"] == "noctune/chatDelta"
                && m["params"]["kind"] == "permission_request")
    );

    // Allow once: written; the next write in the same session asks again.
    answer_with(&mut c, "Allow once", prompts.clone());
    write_turn(&mut c, &llm, "s-once", "once.txt");
    assert_eq!(repo.read("once.txt"), "hello\n");
    let before = prompts.lock().unwrap().len();
    write_turn(&mut c, &llm, "s-once", "once2.txt");
    assert_eq!(
        prompts.lock().unwrap().len(),
        before + 1,
        "once must not cover a second call"
    );

    // Allow this session: the second write of the session is not asked about.
    answer_with(&mut c, "Allow this session", prompts.clone());
    write_turn(&mut c, &llm, "s-session", "session.txt");
    let before = prompts.lock().unwrap().len();
    write_turn(&mut c, &llm, "s-session", "session2.txt");
    assert_eq!(
        prompts.lock().unwrap().len(),
        before,
        "the session grant was not used"
    );
    assert!(repo.path().join("session2.txt").exists());

    // Always allow: persisted in studio_allow.json, and no prompt in another session.
    answer_with(&mut c, "Always allow", prompts.clone());
    write_turn(&mut c, &llm, "s-always", "always.txt");
    let allow =
        std::fs::read_to_string(repo.path().join(".noctune_cache/studio_allow.json")).unwrap();
    assert!(allow.contains("write"), "{allow}");
    let before = prompts.lock().unwrap().len();
    write_turn(&mut c, &llm, "s-other", "always2.txt");
    assert_eq!(prompts.lock().unwrap().len(), before);
    assert!(repo.path().join("always2.txt").exists());

    for offered in prompts.lock().unwrap().iter() {
        assert_eq!(offered, &buttons.map(String::from).to_vec());
    }
    assert!(c.shutdown_exit().success());
}

#[test]
fn chat_edits_arrive_as_workspace_apply_edit_and_a_rejected_edit_is_reported_to_the_model() {
    let repo = FixtureRepo::new("pyproj", &[]);
    let nt = Noctune::new();
    let llm = ScriptedLlm::start(Script::new());
    let mut c = start(&nt, &repo, &llm);
    // A client that can create files in a workspace edit (as VS Code can).
    let mut caps = full_caps();
    caps["workspace"]["workspaceEdit"] =
        json!({"documentChanges": true, "resourceOperations": ["create"]});
    c.initialize(&repo.path(), caps);
    let edits = Arc::new(Mutex::new(Vec::<Value>::new()));
    let seen = edits.clone();
    c.set_hook(move |req| match req["method"].as_str() {
        Some("window/showMessageRequest") => Some(json!({"title": "Allow this session"})),
        Some("workspace/applyEdit") => {
            let mut e = seen.lock().unwrap();
            e.push(req["params"].clone());
            Some(if e.len() != 2 {
                json!({"applied": true})
            } else {
                json!({"applied": false, "failureReason": "the user closed the buffer"})
            })
        }
        _ => None,
    });

    let path = repo.path().join("shapes/geometry.py");
    let before = std::fs::read_to_string(&path).unwrap();
    let new = "# rewritten by chat\n";
    llm.push(Reply::tool_call(
        "call_1",
        "writeFile",
        &json!({"path": "shapes/geometry.py", "content": new}).to_string(),
    ));
    llm.push(Reply::text(&["Edited."]));
    let r = c.call(
        "noctune/chat",
        json!({"session": "s-edit", "message": "rewrite geometry.py"}),
    );
    assert_eq!(r["text"], "Edited.", "{r:#}");
    let applied = edits.lock().unwrap()[0].clone();
    let changes = &applied["edit"]["changes"][file_uri(&path)];
    assert_eq!(changes[0]["newText"], new, "{applied:#}");
    assert_eq!(
        changes[0]["range"]["start"],
        json!({"line": 0, "character": 0})
    );
    let lines = before.matches('\n').count();
    assert_eq!(
        changes[0]["range"]["end"],
        json!({"line": lines, "character": before.rsplit('\n').next().unwrap().len()})
    );
    // The edit went to the editor, not to the disk; the backup was still made.
    assert_eq!(std::fs::read_to_string(&path).unwrap(), before);
    let backups = repo.path().join(".noctune_cache/studio_edits/backups");
    assert!(
        std::fs::read_dir(&backups)
            .map(|d| d.count() > 0)
            .unwrap_or(false),
        "no backup under {}",
        backups.display()
    );
    let tool_ok = c
        .seen
        .iter()
        .find(|m| m["params"]["kind"] == "tool_result")
        .unwrap();
    assert_eq!(tool_ok["params"]["ok"], true, "{tool_ok:#}");

    // The editor refuses the next edit: the model is told, as a failed tool call.
    llm.push(Reply::tool_call(
        "call_2",
        "writeFile",
        &json!({"path": "shapes/render.py", "content": "x = 1\n"}).to_string(),
    ));
    llm.push(Reply::text(&["Sorry."]));
    let n_before = llm.requests().len();
    let r = c.call(
        "noctune/chat",
        json!({"session": "s-edit", "message": "now render.py"}),
    );
    assert_eq!(r["text"], "Sorry.");
    let reqs = llm.requests();
    assert_eq!(reqs.len(), n_before + 2);
    let told = tool_messages(&reqs[n_before + 1]);
    assert!(
        told.iter()
            .any(|m| m.contains("the user closed the buffer") && m.contains("edit_rejected")),
        "{told:#?}"
    );
    let failed = c
        .seen
        .iter()
        .rev()
        .find(|m| m["params"]["kind"] == "tool_result")
        .unwrap();
    assert_eq!(failed["params"]["ok"], false);

    // A new file: created, then filled, in one workspace edit.
    llm.push(Reply::tool_call(
        "call_3",
        "writeFile",
        &json!({"path": "shapes/fresh.py", "content": "A = 1\n"}).to_string(),
    ));
    llm.push(Reply::text(&["Created."]));
    let r = c.call(
        "noctune/chat",
        json!({"session": "s-edit", "message": "add fresh.py"}),
    );
    assert_eq!(r["text"], "Created.");
    let created = edits.lock().unwrap()[2].clone();
    let fresh = file_uri(&repo.path().join("shapes/fresh.py"));
    let ops = &created["edit"]["documentChanges"];
    assert_eq!(ops[0]["kind"], "create", "{created:#}");
    assert_eq!(ops[0]["uri"], fresh.as_str());
    assert_eq!(ops[1]["textDocument"]["uri"], fresh.as_str());
    assert_eq!(ops[1]["edits"][0]["newText"], "A = 1\n");
    assert!(c.shutdown_exit().success());
}

#[test]
fn chat_cancel_ends_a_turn_early() {
    let repo = FixtureRepo::new("pyproj", &[]);
    let nt = Noctune::new();
    let llm = ScriptedLlm::start(
        Reply::text(&["slow ", "answer ", "never ", "ends"]).stall_after(2, 20_000),
    );
    let mut c = start(&nt, &repo, &llm);
    c.initialize(&repo.path(), full_caps());
    let t = std::time::Instant::now();
    let id = c.request("noctune/chat", json!({"message": "hi", "requestId": 42}));
    c.wait_for(20, |m| {
        m["method"] == "noctune/chatDelta" && m["params"]["kind"] == "delta"
    });
    let cancelled = c.call("noctune/chatCancel", json!({"requestId": 42}));
    assert_eq!(cancelled["cancelled"], 1);
    let r = c.response(id, 10);
    assert!(t.elapsed() < Duration::from_secs(15));
    assert_eq!(r["result"]["finish_reason"], "cancelled", "{r:#}");
    assert!(c.shutdown_exit().success());
}
