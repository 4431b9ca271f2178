//! `noctune chat` through the real binary, against the scripted model server (the default
//! profile's base_url comes from NOCTUNE_STUDIO_LLM_BASE_URL, as a user would set it).

use crate::support::cli::{Noctune, Ran};
use crate::support::llm_server::{Reply, Script, ScriptedLlm};
use crate::support::repo::FixtureRepo;
use serde_json::{Value, json};
use std::io::Write;
use std::process::Stdio;

fn chat(nt: &Noctune, llm_url: &str, args: &[&str], stdin: &str) -> Ran {
    let mut child = nt
        .cmd()
        .env("NOCTUNE_STUDIO_LLM_BASE_URL", llm_url)
        .arg("chat")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap().into()
}

fn events(ran: &Ran) -> Vec<Value> {
    ran.stdout
        .lines()
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}\nstderr: {}", ran.stderr))
        })
        .collect()
}

fn types(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

fn tool_results(events: &[Value]) -> Vec<&Value> {
    events
        .iter()
        .filter(|e| e["type"] == "tool_result")
        .collect()
}

const WRITE: &str = r#"{"path": "shapes/render.py", "content": "print('from chat')\n"}"#;

#[test]
fn one_turn_with_json_prints_one_event_per_line() {
    let llm = ScriptedLlm::start(Reply::text(&["Hello", " from", " the model."]));
    let repo = FixtureRepo::new("pyproj", &[]);
    let nt = Noctune::new();
    let repo_s = repo.path().display().to_string();
    let ran = chat(
        &nt,
        &llm.base_url(),
        &[
            "--repo",
            &repo_s,
            "--session",
            "cli-1",
            "--json",
            "say",
            "hello",
        ],
        "",
    )
    .ok();
    let ev = events(&ran);
    assert_eq!(
        types(&ev),
        ["delta", "delta", "delta", "done"],
        "{}",
        ran.stdout
    );
    let text: String = ev.iter().filter_map(|e| e["text"].as_str()).collect();
    assert_eq!(text, "Hello from the model.");
    assert_eq!(ev[3]["finish_reason"], "stop");
    assert!(ev[3]["usage"]["completion_tokens"].as_u64().unwrap() > 0);
    assert_eq!(
        crate::support::llm_server::last_user_text(&llm.last_request().unwrap()),
        "say hello"
    );
    assert!(
        repo.path()
            .join(".noctune_cache/studio_chat/sessions/cli-1.json")
            .is_file()
    );
}

#[test]
fn not_on_a_terminal_nothing_is_granted_without_allow() {
    let llm = ScriptedLlm::start([
        Reply::tool_call("w1", "writeFile", WRITE),
        Reply::text(&["Please allow writes."]),
    ]);
    let repo = FixtureRepo::new("pyproj", &[]);
    let before = repo.read("shapes/render.py");
    let nt = Noctune::new();
    let repo_s = repo.path().display().to_string();
    let ran = chat(
        &nt,
        &llm.base_url(),
        &["--repo", &repo_s, "--json", "rewrite render.py"],
        "o\n",
    )
    .ok();
    let ev = events(&ran);
    assert!(types(&ev).contains(&"permission_request"), "{}", ran.stdout);
    let results = tool_results(&ev);
    assert_eq!(
        results[0]["result"]["error"], "write_not_allowed",
        "{}",
        ran.stdout
    );
    assert_eq!(
        repo.read("shapes/render.py"),
        before,
        "the piped 'o' answered nothing"
    );
}

#[test]
fn allow_once_lets_the_write_happen() {
    let llm = ScriptedLlm::start([
        Reply::tool_call("w1", "writeFile", WRITE),
        Reply::text(&["Done."]),
    ]);
    let repo = FixtureRepo::new("pyproj", &[]);
    let nt = Noctune::new();
    let repo_s = repo.path().display().to_string();
    let ran = chat(
        &nt,
        &llm.base_url(),
        &["--repo", &repo_s, "--allow", "once", "rewrite render.py"],
        "",
    )
    .ok();
    assert_eq!(repo.read("shapes/render.py"), "print('from chat')\n");
    assert!(
        repo.path()
            .join(".noctune_cache/studio_edits/backups")
            .is_dir()
    );
    // Text mode shows the call readably.
    assert!(
        ran.stdout.contains("→ writeFile shapes/render.py"),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout.contains("✓") && ran.stdout.contains("Done."),
        "{}",
        ran.stdout
    );
}

#[test]
fn an_unreachable_model_is_a_clear_error_and_a_failure_exit() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/v1");
    let repo = FixtureRepo::new("pyproj", &[]);
    let nt = Noctune::new();
    let repo_s = repo.path().display().to_string();
    let ran = chat(&nt, &url, &["--repo", &repo_s, "hello"], "");
    assert_ne!(ran.code, 0);
    assert!(
        ran.stderr.contains(&url) && ran.stderr.contains("llama-server"),
        "{}",
        ran.stderr
    );
    let ran = chat(&nt, &url, &["--repo", &repo_s, "--json", "hello"], "");
    assert_ne!(ran.code, 0);
    let ev = events(&ran);
    assert_eq!(types(&ev), ["error"]);
    assert!(ev[0]["message"].as_str().unwrap().contains(&url));
}

#[test]
fn the_interactive_loop_reads_messages_and_commands_from_stdin() {
    let llm = ScriptedLlm::start([
        Reply::tool_call("w1", "writeFile", WRITE),
        Reply::text(&["Written."]),
        Reply::text(&["Second answer."]),
    ]);
    let repo = FixtureRepo::new("pyproj", &[]);
    let original = repo.read("shapes/render.py");
    let nt = Noctune::new();
    let repo_s = repo.path().display().to_string();
    let export = repo.path().join("transcript.json");
    let input = format!(
        "rewrite render.py\n/undo\nthanks\n/sessions\n/grants\n/export {}\n/bogus\n/quit\nnever sent\n",
        export.display()
    );
    let ran = chat(
        &nt,
        &llm.base_url(),
        &["--repo", &repo_s, "--session", "inter", "--allow", "once"],
        &input,
    )
    .ok();
    assert!(
        ran.stdout.contains("Written.") && ran.stdout.contains("Second answer."),
        "{}",
        ran.stdout
    );
    assert_eq!(
        repo.read("shapes/render.py"),
        original,
        "/undo restored it\n{}",
        ran.stderr
    );
    assert!(
        ran.stderr.contains("undid the edit of shapes/render.py"),
        "{}",
        ran.stderr
    );
    assert!(ran.stderr.contains("* inter"), "{}", ran.stderr);
    assert!(
        ran.stderr.contains("unknown command /bogus"),
        "{}",
        ran.stderr
    );
    let transcript: Value =
        serde_json::from_str(&std::fs::read_to_string(&export).unwrap()).unwrap();
    assert_eq!(transcript["messages"].as_array().unwrap().len(), 6);
    assert_eq!(transcript["tool_calls"][0]["name"], "writeFile");
    assert_eq!(llm.requests().len(), 3, "the line after /quit was not sent");
}

#[test]
fn no_such_profile_is_refused_before_anything_is_sent() {
    let llm = ScriptedLlm::start(Reply::text(&["unused"]));
    let repo = FixtureRepo::new("pyproj", &[]);
    let nt = Noctune::new();
    let repo_s = repo.path().display().to_string();
    let ran = chat(
        &nt,
        &llm.base_url(),
        &["--repo", &repo_s, "--profile", "nope", "hi"],
        "",
    );
    assert_ne!(ran.code, 0);
    assert!(
        ran.stderr.contains("unknown model profile \"nope\""),
        "{}",
        ran.stderr
    );
    assert!(llm.requests().is_empty());
}

/// The tool result in `request`'s last tool message, parsed.
fn last_tool_result(request: &Value) -> Option<Value> {
    let msgs = request["messages"].as_array()?;
    let m = msgs.iter().rev().find(|m| m["role"] == "tool")?;
    serde_json::from_str(m["content"].as_str()?).ok()
}

#[test]
fn a_run_started_through_chat_is_real_and_its_events_can_be_tailed() {
    // The model starts lint_fix, then tails the run it got back, then answers.
    let script = Script::new().fallback(|req| {
        let tools = req["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["role"] == "tool")
            .count();
        match tools {
            0 => Reply::tool_call("s1", "noctuneStart", r#"{"pack": "lint_fix"}"#),
            1 => {
                let started = last_tool_result(req).unwrap_or(Value::Null);
                let run_id = started["run_id"].as_str().unwrap_or("missing").to_string();
                Reply::tool_call(
                    "e1",
                    "noctuneEvents",
                    &json!({"run_id": run_id, "cursor": 0}).to_string(),
                )
            }
            _ => Reply::text(&["The run is under way."]),
        }
    });
    let llm = ScriptedLlm::start(script);
    let repo = FixtureRepo::new("pyproj", &[]);
    let nt = Noctune::new();
    let repo_s = repo.path().display().to_string();
    let ran = chat(
        &nt,
        &llm.base_url(),
        &[
            "--repo",
            &repo_s,
            "--json",
            "--allow",
            "session",
            "run lint_fix",
        ],
        "",
    )
    .ok();
    let ev = events(&ran);
    let results = tool_results(&ev);
    assert_eq!(results.len(), 2, "{}", ran.stdout);
    let start = &results[0];
    assert_eq!(start["name"], "noctuneStart");
    assert_eq!(start["ok"], true, "{start:#}");
    let run_id = start["result"]["run_id"].as_str().unwrap().to_string();
    let tail = &results[1];
    assert_eq!(tail["name"], "noctuneEvents");
    assert_eq!(tail["ok"], true, "{tail:#}");
    let first_types: Vec<&str> = tail["result"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(first_types.first(), Some(&"run_queued"), "{tail:#}");
    assert!(tail["result"]["next_cursor"].as_u64().unwrap() >= 1);
    // Only the start asked (run class); reading events needs no grant.
    let asks: Vec<&Value> = ev
        .iter()
        .filter(|e| e["type"] == "permission_request")
        .collect();
    assert_eq!(asks.len(), 1);
    assert_eq!(asks[0]["class"], "run");

    // A real run: it goes on after the chat process exited, and the CLI sees it.
    let status = nt.wait_for(&run_id, 90, |s| {
        s["status"] != "queued" && s["status"] != "running"
    });
    assert_ne!(status["status"], "failed", "{status:#}");
    assert_eq!(status["pack"], "lint_fix");
    if status["status"] == "waiting_approval" {
        nt.run(&["stop", &run_id, "--grace", "1"]).ok();
    }
}
