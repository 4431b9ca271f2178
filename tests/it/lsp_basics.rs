//! `noctune lsp` as an editor sees it: initialize and capabilities, malformed input, the
//! /studio URL, and a clean exit.

use crate::support::cli::Noctune;
use crate::support::lsp_client::{LspClient, alive, descendants, full_caps, pgrp};
use crate::support::repo::FixtureRepo;
use crate::support::wait::{poll_for, wait_until};
use serde_json::{Value, json};
use std::time::Duration;

#[test]
fn initialize_reports_sync_code_actions_commands_and_the_noctune_methods() {
    let repo = FixtureRepo::new("pyproj", &[]);
    let nt = Noctune::new();
    let mut c = LspClient::start(&nt, &repo.path(), &["--no-http"], &[]);
    let r = c.initialize(&repo.path(), full_caps());
    let caps = &r["capabilities"];
    assert_eq!(
        caps["textDocumentSync"]["change"], 2,
        "incremental sync: {caps:#}"
    );
    assert_eq!(caps["textDocumentSync"]["openClose"], true);
    assert_eq!(caps["positionEncoding"], "utf-16");
    assert_eq!(
        caps["codeActionProvider"]["codeActionKinds"],
        json!(["quickfix"])
    );
    let commands = caps["executeCommandProvider"]["commands"]
        .as_array()
        .unwrap();
    for cmd in ["noctune.approve", "noctune.reject", "noctune.showDiff"] {
        assert!(
            commands.contains(&json!(cmd)),
            "{cmd} missing: {commands:?}"
        );
    }
    let ext = &caps["experimental"]["noctune"];
    for m in [
        "noctune/chat",
        "noctune/chatCancel",
        "noctune/runs/start",
        "noctune/runs/list",
        "noctune/runs/stop",
        "noctune/approvals",
        "noctune/studioUrl",
    ] {
        assert!(
            ext["requests"].as_array().unwrap().contains(&json!(m)),
            "{m} missing: {ext:#}"
        );
    }
    assert_eq!(ext["notifications"], json!(["noctune/chatDelta"]));
    assert_eq!(r["serverInfo"]["name"], "noctune");

    // A UTF-8 capable client gets UTF-8 positions.
    let mut c8 = LspClient::start(&nt, &repo.path(), &["--no-http"], &[]);
    let r8 = c8.initialize(
        &repo.path(),
        json!({"general": {"positionEncodings": ["utf-8", "utf-16"]}}),
    );
    assert_eq!(r8["capabilities"]["positionEncoding"], "utf-8");

    // Our own methods work with and without params; with --no-http there is no URL.
    let runs = c.call("noctune/runs/list", Value::Null);
    assert_eq!(runs["runs"], json!([]));
    let url = c.call("noctune/studioUrl", json!({}));
    assert_eq!(url["enabled"], false, "{url:#}");
    assert_eq!(url["url"], Value::Null);
    let packs = c.call("noctune/packs", json!({}));
    assert!(
        packs["packs"]
            .as_array()
            .unwrap()
            .contains(&json!("lint_fix")),
        "{packs:#}"
    );
    assert!(c.shutdown_exit().success());
    assert!(c.violations().is_empty(), "{:?}", c.violations());
}

#[test]
fn malformed_frames_get_protocol_errors_and_the_server_keeps_serving() {
    let repo = FixtureRepo::new("pyproj", &[]);
    let nt = Noctune::new();
    let mut c = LspClient::start(&nt, &repo.path(), &["--no-http"], &[]);
    c.initialize(&repo.path(), full_caps());

    let is_error = |code: i64| move |v: &Value| v["error"]["code"] == json!(code);
    // A Content-Length that is not a number.
    c.send_raw(b"Content-Length: twelve\r\n\r\n{\"jsonrpc\":\"2.0\"}");
    let e = c.wait_for(10, is_error(-32700));
    assert_eq!(e["id"], Value::Null);
    // No Content-Length at all.
    c.send_raw(b"Content-Type: application/vscode-jsonrpc; charset=utf-8\r\n\r\n{}");
    c.wait_for(10, is_error(-32700));
    // A body that is not JSON.
    let bad = b"{\"jsonrpc\": \"2.0\", \"id\": 5, \"method\": ";
    c.send_raw(format!("Content-Length: {}\r\n\r\n", bad.len()).as_bytes());
    c.send_raw(bad);
    c.wait_for(10, is_error(-32700));
    // JSON that is not a JSON-RPC message (keeps its id), and a batch.
    c.send(&json!({"jsonrpc": "1.0", "id": 77, "method": "noctune/runs/list"}));
    let e = c.wait_for(10, is_error(-32600));
    assert_eq!(e["id"], 77);
    c.send(&json!([1, 2, 3]));
    c.wait_for(10, is_error(-32600));
    // An unknown method, and bad params for a known one.
    let id = c.request("noctune/doesNotExist", json!({}));
    assert_eq!(c.response(id, 10)["error"]["code"], -32601);
    let id = c.request("noctune/runs/stop", json!({"run_id": 12}));
    assert_eq!(c.response(id, 10)["error"]["code"], -32602);
    let id = c.request(
        "workspace/executeCommand",
        json!({"command": "noctune.approve", "arguments": ["nope"]}),
    );
    assert_eq!(c.response(id, 10)["error"]["code"], -32602);
    // Invalid UTF-8 inside a frame.
    let body: &[u8] = b"{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"\xff\xfe\"}";
    c.send_raw(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    c.send_raw(body);
    c.wait_for(10, is_error(-32700));

    // Still alive and serving.
    let runs = c.call("noctune/runs/list", json!({}));
    assert!(runs["runs"].is_array());
    assert!(
        c.child.try_wait().unwrap().is_none(),
        "the server died:\n{}",
        c.stderr()
    );
    assert!(c.shutdown_exit().success());
    assert!(
        c.violations().is_empty(),
        "non-frame bytes on stdout: {:?}",
        c.violations()
    );
    // Every message parsed as JSON-RPC 2.0.
    for m in &c.seen {
        assert_eq!(m["jsonrpc"], "2.0", "{m}");
    }
}

#[test]
fn studio_url_is_served_by_the_same_process_and_shutdown_leaves_no_child_behind() {
    let repo = FixtureRepo::new("pyproj", &[]);
    let nt = Noctune::new();
    let mut c = LspClient::start(&nt, &repo.path(), &[], &[]);
    c.initialize(&repo.path(), full_caps());
    // The first call starts the studio server (and asks to open it); the URL may come later.
    let mut u = c.call("noctune/studioUrl", json!({"open": true}));
    let got = poll_for(Duration::from_secs(10), || {
        if !u["url"].is_string() {
            u = c.call("noctune/studioUrl", json!({}));
        }
        u["url"].as_str().map(str::to_string)
    });
    let url = got.unwrap_or_else(|_| panic!("no URL within 10 s: {u:#}\n{}", c.stderr()));
    assert!(
        url.starts_with("http://127.0.0.1:") && url.contains("/studio?token="),
        "{url}"
    );
    // The open request became a window/showDocument to the client.
    let show = c.wait_for(10, |v| v["method"] == "window/showDocument");
    assert_eq!(show["params"]["uri"], url);
    assert_eq!(show["params"]["external"], true);
    // The port answers (the HTTP server lives in this process).
    let port: u16 = url["http://127.0.0.1:".len()..]
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());

    // A run started from the editor: its worker is detached (a process group of its own).
    let run = c.call("noctune/runs/start", json!({"pack": "lint_fix"}));
    let run_id = run["run_id"].as_str().unwrap().to_string();
    let worker = run["worker_pid"].as_u64().unwrap() as u32;
    let pid = c.pid();
    assert_ne!(
        pgrp(worker),
        pgrp(pid),
        "the worker must not share the server's process group"
    );
    let helpers: Vec<(u32, u32, String)> = descendants(pid)
        .into_iter()
        .filter(|(_, g, _)| *g == pgrp(pid))
        .collect();
    let status = c.shutdown_exit();
    assert!(status.success(), "exit {status:?}\n{}", c.stderr());
    assert!(!alive(pid));
    for (p, _, cmd) in helpers {
        wait_until(
            Duration::from_secs(3),
            &format!("helper {p} ({cmd}) to end with the server"),
            || !alive(p),
        );
    }
    // The run goes on without the editor (by design), and can be stopped from elsewhere.
    let st = nt.wait_for(&run_id, 60, |s| {
        s["status"] == "waiting_approval" || s["status"] == "done"
    });
    assert!(st["error"].is_null(), "{st:#}");
    nt.run(&["stop", &run_id, "--grace", "2"]);
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the /studio port is still open"
    );
    assert!(c.violations().is_empty(), "{:?}", c.violations());
}

#[test]
fn exit_without_shutdown_is_code_1_and_closed_stdin_ends_the_server() {
    let repo = FixtureRepo::new("pyproj", &[]);
    let nt = Noctune::new();
    let mut c = LspClient::start(&nt, &repo.path(), &["--no-http"], &[]);
    c.initialize(&repo.path(), full_caps());
    c.notify("exit", Value::Null);
    assert_eq!(c.wait_exit(10).expect("no exit").code(), Some(1));

    let mut c = LspClient::start(&nt, &repo.path(), &["--no-http"], &[]);
    c.initialize(&repo.path(), full_caps());
    let pid = c.pid();
    c.close_stdin();
    assert!(
        c.wait_exit(10).is_some(),
        "server {pid} did not end when stdin closed"
    );
}
