//! Chat with a real third-party MCP server from a package registry:
//! `@modelcontextprotocol/server-filesystem` (npm, pinned in tests/e2e/mcp/package.json,
//! installed by tests/e2e/run-mcp.sh). The scripted model asks for one of its tools; the user
//! gets a permission prompt, then the real result. Killed mid-session, the server gives a clean
//! tool error and the turn goes on.
//!
//! `#[ignore]`d: they need node and that package. `tests/run-all.sh` runs them with
//! `cargo test --test it -- --ignored mcp_chat::` right after tests/e2e/run-mcp.sh installed it.

use crate::chat_turns::{allow, profile_toml, send_on};
use crate::mcp_client::e2e_dir;
use crate::support::llm_server::{Reply, ScriptedLlm};
use crate::support::lsp_client::alive;
use crate::support::repo::FixtureRepo;
use crate::support::wait::wait_until_async;
use noctune_chat::agent::ChatEvent;
use noctune_chat::permissions::PermissionAnswer;
use noctune_chat::service::ChatService;
use noctune_chat::tool::ToolClass;
use serde_json::{Value, json};
use std::time::Duration;

/// The npm server's entry point. Panics, saying how to install it, when it or node is missing:
/// a test that needs it never passes without it.
fn filesystem_server() -> std::path::PathBuf {
    let index =
        e2e_dir().join("node_modules/@modelcontextprotocol/server-filesystem/dist/index.js");
    let node = std::process::Command::new("node")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        node,
        "node is not on PATH: install node (>= 20) to run this test"
    );
    assert!(
        index.is_file(),
        "{} is missing: run tests/e2e/run-mcp.sh (or `npm ci` in tests/e2e/mcp) to install it",
        index.display()
    );
    index
}

fn tool_results(events: &[ChatEvent]) -> Vec<(String, bool, Value)> {
    events
        .iter()
        .filter_map(|e| match e {
            ChatEvent::ToolResult {
                name, ok, result, ..
            } => Some((name.clone(), *ok, result.clone())),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs node and @modelcontextprotocol/server-filesystem (npm ci in tests/e2e/mcp); run by tests/run-all.sh"]
async fn chat_uses_a_third_party_mcp_server_with_a_permission_prompt_and_survives_its_death() {
    let index = filesystem_server();
    let repo = FixtureRepo::new("pyproj", &[]);
    let target = repo.path().join("shapes/render.py");
    let args = json!({"path": target}).to_string();
    let llm = ScriptedLlm::start([
        Reply::text(&["Let me read it."]).with_tool_calls([(
            "call_1",
            "fs__read_text_file",
            args.as_str(),
        )]),
        Reply::text(&["It defines describe."]),
        Reply::text(&["Again."]).with_tool_calls([("call_2", "fs__read_text_file", args.as_str())]),
        Reply::text(&["The file server is gone; try again later."]),
    ]);
    let config = format!(
        "{}\n[mcp_servers.fs]\ncommand = \"node\"\nargs = [{:?}, {:?}]\n",
        profile_toml(&llm.base_url(), "native", 8192),
        index.display().to_string(),
        repo.path().display().to_string()
    );
    std::fs::write(repo.path().join("noctune.toml"), config).unwrap();
    let db = tempfile::tempdir().unwrap();
    let service =
        ChatService::open(&repo.path(), Some(&db.path().join("audit.sqlite")), None).unwrap();
    let clients = noctune_mcp_client::connect_all(service.config()).await;
    let status = &clients.statuses()[0];
    assert_eq!(status.state.label(), "ready", "{status:?}");
    assert!(
        status
            .server_info
            .as_deref()
            .unwrap_or("")
            .contains("filesystem"),
        "{status:?}"
    );
    for t in clients.tools() {
        service.register_tool(t);
    }

    // Turn 1: a permission prompt for the MCP tool (class run), then the real file content.
    let turn = send_on(
        &service,
        "s1",
        "What is in render.py?",
        &allow(PermissionAnswer::Once),
    )
    .await;
    let prompts: Vec<_> = turn
        .events
        .iter()
        .filter_map(|e| match e {
            ChatEvent::PermissionRequest(r) => Some(r.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(prompts.len(), 1, "{:?}", turn.events);
    assert_eq!(prompts[0].tool, "fs__read_text_file");
    assert_eq!(prompts[0].class, ToolClass::Run);
    let results = tool_results(&turn.events);
    assert_eq!(results.len(), 1, "{results:?}");
    let (name, ok, result) = &results[0];
    assert_eq!(name, "fs__read_text_file");
    assert!(*ok, "{result:#}");
    let on_disk = std::fs::read_to_string(&target).unwrap();
    assert!(
        result.to_string().contains("def describe(w,h):") && on_disk.contains("def describe(w,h):"),
        "{result:#}"
    );
    assert_eq!(turn.summary.answer, "It defines describe.");
    assert_eq!(turn.summary.error, None);
    // The model was offered the server's tools next to ours.
    let req = &llm.requests()[0];
    let offered: Vec<&str> = req["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert!(
        offered.contains(&"fs__read_text_file") && offered.contains(&"readFile"),
        "{offered:?}"
    );

    // The server dies mid-session: the next call is a clean tool error and the turn goes on.
    let pid = clients.server_pid("fs").expect("the server's pid");
    assert!(
        std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    wait_until_async(
        Duration::from_secs(10),
        &format!("the MCP server {pid} to die"),
        async || !alive(pid),
    )
    .await;
    let turn = send_on(
        &service,
        "s1",
        "Read it again.",
        &allow(PermissionAnswer::Once),
    )
    .await;
    let results = tool_results(&turn.events);
    assert_eq!(results.len(), 1, "{results:?}");
    let (_, ok, result) = &results[0];
    assert!(!*ok, "{result:#}");
    assert_eq!(result["error"], "mcp_server_crashed", "{result:#}");
    assert!(
        result["message"]
            .as_str()
            .unwrap()
            .contains("MCP server `fs`"),
        "{result:#}"
    );
    assert_eq!(turn.summary.error, None, "the turn goes on");
    assert_eq!(
        turn.summary.answer,
        "The file server is gone; try again later."
    );
    // The model saw the error as the tool's answer.
    let last = llm.requests().last().unwrap().clone();
    let tool_msg = last["messages"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|m| m["role"] == "tool")
        .unwrap()
        .clone();
    assert!(
        tool_msg["content"]
            .as_str()
            .unwrap()
            .contains("mcp_server_crashed"),
        "{tool_msg:#}"
    );
}

/// `noctune chat` itself (the real binary) lists the configured server's tools next to ours
/// and runs one with `--allow once`.
#[test]
#[ignore = "needs node and @modelcontextprotocol/server-filesystem (npm ci in tests/e2e/mcp); run by tests/run-all.sh"]
fn noctune_chat_cli_registers_configured_mcp_servers_tools() {
    let index = filesystem_server();
    let repo = FixtureRepo::new("pyproj", &[]);
    let root = repo.path();
    let cfg = format!(
        "[mcp_servers.fs]\ncommand = \"node\"\nargs = [{:?}, {:?}]\n",
        index.display().to_string(),
        root.display().to_string()
    );
    std::fs::write(root.join("noctune.toml"), cfg).unwrap();
    let target = root.join("README.md").display().to_string();
    let llm = ScriptedLlm::start(vec![
        Reply::tool_call(
            "call_1",
            "fs__read_text_file",
            &json!({"path": target}).to_string(),
        ),
        Reply::text(&["The README says it is a fixture."]),
    ]);
    let nt = crate::support::cli::Noctune::new();
    let out = nt
        .cmd()
        .args([
            "chat",
            "--repo",
            root.to_str().unwrap(),
            "--json",
            "--allow",
            "once",
            "What is in the README?",
        ])
        .env("NOCTUNE_STUDIO_LLM_BASE_URL", llm.base_url())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let first = &llm.requests()[0];
    let names: Vec<&str> = first["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"fs__read_text_file") && names.contains(&"readFile"),
        "{names:?}"
    );
    let result = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|e| e["type"] == "tool_result")
        .expect("a tool_result event");
    assert_eq!(result["ok"], true, "{result}");
    assert!(
        result.to_string().contains("small fixture project"),
        "{result}"
    );
}
