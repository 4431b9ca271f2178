//! The MCP client: `[mcp_servers.<name>]` servers (stdio and Streamable HTTP) bridged as chat
//! tools `<server>__<tool>`, `noctune mcp list-servers`, and the failures that must be clean
//! tool errors: a server that cannot start, one that never answers, one killed mid-session.

use crate::support::cli::{Noctune, bin};
use crate::support::lsp_client::alive;
use crate::support::repo::FixtureRepo;
use crate::support::wait::wait_until;
use axum::response::IntoResponse;
use noctune_chat::tool::{Tool, ToolClass, ToolContext};
use noctune_mcp_client::{McpClients, ServerState};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub(crate) fn e2e_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/mcp")
}

/// `[mcp_servers.self]`: our own `noctune mcp`, a real stdio MCP server that needs nothing
/// installed.
fn self_server(db: &Path) -> String {
    format!(
        "[mcp_servers.self]\ncommand = {:?}\nargs = [\"mcp\"]\nenv = {{ NOCTUNE_STUDIO_DB = {:?} }}\n",
        bin().display().to_string(),
        db.display().to_string()
    )
}

fn ctx(repo: &Path) -> ToolContext {
    let cfg = noctune_config::load(repo).unwrap();
    ToolContext {
        repo_root: repo.to_path_buf(),
        sandbox: Arc::new(noctune_sandbox::Sandbox::from_config(&cfg).unwrap()),
        session_id: "mcp-test".into(),
        edit_sink: None,
        overlay: None,
        read_stamps: Default::default(),
    }
}

fn tool(clients: &McpClients, name: &str) -> Arc<dyn Tool> {
    let tools = clients.tools();
    let names: Vec<&str> = tools.iter().map(|t| t.name()).collect();
    tools
        .iter()
        .find(|t| t.name() == name)
        .cloned()
        .unwrap_or_else(|| panic!("no tool {name} in {names:?}"))
}

fn kill(pid: u32) {
    let ok = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {pid}");
    wait_until(
        Duration::from_secs(10),
        &format!("MCP server {pid} to die"),
        || !alive(pid),
    );
}

#[test]
fn list_servers_shows_each_server_its_state_and_tools() {
    let nt = Noctune::new();
    // `mute` is `sleep 30`: a server that starts and never says a word (not a wait in the test).
    let config = format!(
        "{}\n[mcp_servers.missing]\ncommand = \"no-such-mcp-server-binary\"\n\n\
         [mcp_servers.mute]\ncommand = \"sleep\"\nargs = [\"30\"]\nstartup_timeout_secs = 1\n\n\
         [mcp_servers.broken]\nurl = \"ftp://example\"\n\n\
         [mcp_servers.off]\ncommand = \"true\"\nenabled = false\n",
        self_server(&nt.db())
    );
    let repo = FixtureRepo::new("pyproj", &[("noctune.toml", &config)]);
    let started = std::time::Instant::now();
    let r = nt.run(&[
        "mcp",
        "list-servers",
        "--repo",
        repo.path().to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(
        r.code, 1,
        "a failed server makes the exit code 1\n{}",
        r.stderr
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the silent server must time out after 1 s"
    );
    let out = r.json();
    let by: std::collections::BTreeMap<String, Value> = out["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap().to_string(), s.clone()))
        .collect();

    let me = &by["self"];
    assert_eq!(me["state"], "ready", "{me:#}");
    assert!(
        me["server_info"].as_str().unwrap().starts_with("noctune "),
        "{me:#}"
    );
    let names: Vec<&str> = me["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["chat_name"].as_str().unwrap())
        .collect();
    for t in [
        "self__enqueue_run",
        "self__get_status",
        "self__tail_events",
        "self__list_approvals",
        "self__decide_approval",
        "self__stop_run",
    ] {
        assert!(names.contains(&t), "{t} in {names:?}");
    }
    assert_eq!(by["missing"]["state"], "failed");
    assert!(
        by["missing"]["error"]
            .as_str()
            .unwrap()
            .contains("cannot start `no-such-mcp-server-binary`"),
        "{:#}",
        by["missing"]
    );
    assert_eq!(by["mute"]["state"], "failed");
    assert!(
        by["mute"]["error"].as_str().unwrap().contains("within 1s"),
        "{:#}",
        by["mute"]
    );
    assert_eq!(by["broken"]["state"], "misconfigured");
    let e = by["broken"]["error"].as_str().unwrap();
    assert!(
        e.contains("noctune.toml")
            && e.contains("`mcp_servers.broken.url`")
            && e.contains("Expected"),
        "{e}"
    );
    assert_eq!(by["off"]["state"], "disabled");

    // The human listing names the same things.
    let text = nt.run(&[
        "mcp",
        "list-servers",
        "--repo",
        repo.path().to_str().unwrap(),
    ]);
    assert!(
        text.stdout.contains("self__get_status") && text.stdout.contains("misconfigured"),
        "{}",
        text.stdout
    );
}

#[test]
fn bridged_tools_call_a_stdio_server_and_a_killed_server_is_a_clean_tool_error() {
    let nt = Noctune::new();
    let repo = FixtureRepo::new("pyproj", &[("noctune.toml", &self_server(&nt.db()))]);
    let cfg = noctune_config::load(&repo.path()).unwrap();
    let clients = McpClients::connect_all_blocking(&cfg);
    let status = tool(&clients, "self__get_status");
    assert_eq!(
        status.class(),
        ToolClass::Run,
        "MCP tools are gated like run tools"
    );
    assert!(status.description().contains("[MCP server self]"));
    assert_eq!(status.parameters()["required"], json!(["run_id"]));
    let cx = ctx(&repo.path());

    // A real result, and a remote tool error carried through with its message.
    let run_id = nt.start(&repo.path(), "lint_fix");
    let ok = status.call(&cx, &json!({"run_id": run_id})).unwrap();
    assert_eq!(ok["structured"]["run_id"], run_id.as_str(), "{ok:#}");
    let e = status
        .call(&cx, &json!({"run_id": "20990101T000000Z-00000000"}))
        .unwrap_err();
    assert_eq!(e.code, "mcp_tool_error");
    assert!(e.message.contains("unknown run"), "{e:?}");
    let e = status.call(&cx, &json!([1, 2])).unwrap_err();
    assert_eq!(e.code, "invalid_arguments");

    // Killed mid-session: the next call is a clean tool error that says what happened ...
    let pid = clients.server_pid("self").unwrap();
    kill(pid);
    let e = status.call(&cx, &json!({"run_id": run_id})).unwrap_err();
    assert_eq!(e.code, "mcp_server_crashed", "{e:?}");
    assert!(
        e.message.contains("MCP server `self`") && e.message.contains("started again"),
        "{e:?}"
    );
    let st = &clients.statuses()[0];
    assert_eq!(st.state.label(), "disconnected", "{st:?}");
    // ... and the one after it starts the server again.
    let ok = status.call(&cx, &json!({"run_id": run_id})).unwrap();
    assert_eq!(ok["structured"]["run_id"], run_id.as_str());
    assert_ne!(clients.server_pid("self"), Some(pid));
    assert_eq!(clients.statuses()[0].state, ServerState::Ready);
    nt.run(&["stop", &run_id, "--grace", "1"]);

    // Dropping the clients ends the server process.
    let pid = clients.server_pid("self").unwrap();
    drop(status);
    drop(clients);
    wait_until(
        Duration::from_secs(10),
        &format!("server {pid} to end once its clients are dropped"),
        || !alive(pid),
    );
}

#[test]
fn a_server_that_never_answers_a_call_times_out_cleanly() {
    let script = e2e_dir().join("slow_server.py");
    let config = format!(
        "[mcp_servers.slow]\ncommand = \"python3\"\nargs = [{:?}]\ntimeout_secs = 1\n",
        script.display().to_string()
    );
    let repo = FixtureRepo::new("pyproj", &[("noctune.toml", &config)]);
    let cfg = noctune_config::load(&repo.path()).unwrap();
    let clients = McpClients::connect_all_blocking(&cfg);
    let t = tool(&clients, "slow__wait_forever");
    let started = std::time::Instant::now();
    let e = t.call(&ctx(&repo.path()), &json!({})).unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(e.code, "mcp_timeout", "{e:?}");
    assert!(
        e.message.contains("within 1s") && e.message.contains("timeout_secs"),
        "{e:?}"
    );
    // The connection is still usable afterwards (the next call times out the same way,
    // rather than hanging or crashing).
    assert_eq!(
        t.call(&ctx(&repo.path()), &json!({})).unwrap_err().code,
        "mcp_timeout"
    );
}

#[test]
fn a_streamable_http_server_is_reached_with_the_configured_headers() {
    let nt = Noctune::new();
    let studio = Arc::new(noctune_studio::Studio::open(&nt.db()).unwrap());
    // Our own /mcp behind a check of the header the config must send.
    let app = noctune_mcp::http_router(studio).layer(axum::middleware::from_fn(
        |req: axum::extract::Request, next: axum::middleware::Next| async move {
            if req
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                == Some("Bearer s3cret")
            {
                next.run(req).await
            } else {
                axum::http::StatusCode::UNAUTHORIZED.into_response()
            }
        },
    ));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    let addr = rx.recv().unwrap();
    let config = format!(
        "[mcp_servers.web]\nurl = \"http://{addr}/mcp\"\nheaders = {{ Authorization = \"Bearer s3cret\" }}\n\n\
         [mcp_servers.nokey]\nurl = \"http://{addr}/mcp\"\nstartup_timeout_secs = 5\n"
    );
    let repo = FixtureRepo::new("pyproj", &[("noctune.toml", &config)]);
    let cfg = noctune_config::load(&repo.path()).unwrap();
    let clients = McpClients::connect_all_blocking(&cfg);
    let statuses = clients.statuses();
    let web = statuses.iter().find(|s| s.name == "web").unwrap();
    assert_eq!(web.state, ServerState::Ready, "{web:?}");
    let nokey = statuses.iter().find(|s| s.name == "nokey").unwrap();
    assert_eq!(nokey.state.label(), "failed", "{nokey:?}");
    assert!(
        nokey.state.error().unwrap().contains("401")
            || nokey
                .state
                .error()
                .unwrap()
                .to_lowercase()
                .contains("unauthorized"),
        "{nokey:?}"
    );

    let run_id = nt.start(&repo.path(), "lint_fix");
    let out = tool(&clients, "web__get_status")
        .call(&ctx(&repo.path()), &json!({"run_id": run_id}))
        .unwrap();
    assert_eq!(out["structured"]["run_id"], run_id.as_str(), "{out:#}");
    assert_eq!(out["server"], "web");
    nt.run(&["stop", &run_id, "--grace", "1"]);
}
