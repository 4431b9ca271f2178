//! The facade's rules hold on every surface: a repository outside the allowed roots is refused
//! with the same code and message over HTTP, MCP (stdio and Streamable HTTP), LSP and chat,
//! and the same facade error (an unknown run) reads the same everywhere.

use crate::http_support::StudioProc;
use crate::mcp_support::connect_stdio;
use crate::support::cli::Noctune;
use crate::support::lsp_client::LspClient;
use crate::support::repo::FixtureRepo;
use noctune_studio::Studio;
use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig, Implementation,
    ProtocolVersion,
};
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{RoleClient, ServiceExt};
use serde_json::{Value, json};

const UNKNOWN_RUN: &str = "20990101T000000Z-00000000";

async fn mcp_over_http(studio: &StudioProc) -> RunningService<RoleClient, ClientConfig> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let url = format!("http://127.0.0.1:{}/mcp", studio.port);
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(url).auth_header(studio.token.clone()),
    );
    ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new("facade-test", "1"),
    )
    .with_protocol_version(ProtocolVersion::LATEST_WITH_INITIALIZE)
    .serve(transport)
    .await
    .expect("handshake over /mcp")
}

/// (code, message) of a failed MCP call, from the result's `_meta`; checks the text agrees.
fn mcp_failure(r: &CallToolResult) -> (String, String) {
    assert_eq!(r.is_error, Some(true), "{r:?}");
    let e = &r.meta.as_ref().expect("error _meta").0["io.noctune/error"];
    let (code, message) = (
        e["error"].as_str().unwrap().to_string(),
        e["message"].as_str().unwrap().to_string(),
    );
    let text: String = r
        .content
        .iter()
        .filter_map(|c| c.as_text())
        .map(|t| t.text.clone())
        .collect();
    assert_eq!(text, format!("{code}: {message}"));
    (code, message)
}

async fn mcp_call(
    client: &RunningService<RoleClient, ClientConfig>,
    tool: &str,
    args: Value,
) -> CallToolResult {
    client
        .call_tool(
            CallToolRequestParams::new(tool.to_string())
                .with_arguments(args.as_object().unwrap().clone()),
        )
        .await
        .expect("a tool error is a result, not a protocol error")
}

/// (code, message) of a failed LSP request.
fn lsp_failure(lsp: &mut LspClient, method: &str, params: Value) -> (String, String) {
    let id = lsp.request(method, params);
    let r = lsp.response(id, 60);
    let e = &r["error"];
    assert!(e.is_object(), "{method} should fail: {r:#}");
    (
        e["data"]["error"].as_str().unwrap_or_default().to_string(),
        e["message"].as_str().unwrap_or_default().to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repository_outside_the_roots_is_refused_alike_on_every_surface() {
    let a = FixtureRepo::new("pyproj", &[]);
    let b = FixtureRepo::new("pyproj", &[]);
    let b_path = b.path().display().to_string();
    let nt = Noctune::new();

    // HTTP: POST /api/runs on `noctune studio --repo A`.
    let studio = StudioProc::start(&nt, &a.path());
    let r = studio.post_json("/api/runs", &json!({"repo": b_path, "pack": "lint_fix"}));
    assert_eq!(
        (r.status, r.code().as_str()),
        (403, "outside_allowed_roots")
    );
    let message = r.json()["message"].as_str().unwrap().to_string();
    assert!(message.contains(&b_path), "{message}");

    // MCP over /mcp on the same server.
    let client = mcp_over_http(&studio).await;
    let r = mcp_call(
        &client,
        "enqueue_run",
        json!({"repo_root": b_path, "pack": "lint_fix"}),
    )
    .await;
    assert_eq!(
        mcp_failure(&r),
        ("outside_allowed_roots".into(), message.clone())
    );
    client.cancel().await.unwrap();
    studio.stop();

    // MCP over stdio: `noctune mcp --repo A`.
    let a_path = a.path().display().to_string();
    let mcp = connect_stdio(&nt, "facade-test", &["--repo", &a_path], &[]).await;
    let got = mcp
        .err(
            "enqueue_run",
            json!({"repo_root": b_path, "pack": "lint_fix"}),
            "outside_allowed_roots",
        )
        .await;
    assert_eq!(got, message);
    mcp.client.cancel().await.unwrap();

    // LSP: noctune/runs/start with another repository.
    let mut lsp = LspClient::start(&nt, &a.path(), &["--no-http"], &[]);
    lsp.initialize(&a.path(), json!({}));
    let got = lsp_failure(
        &mut lsp,
        "noctune/runs/start",
        json!({"pack": "lint_fix", "repo": b_path}),
    );
    assert_eq!(got, ("outside_allowed_roots".into(), message.clone()));
    lsp.shutdown_exit();

    // Chat: the facade confined to A gives no chat for B, and the chat run tools of A's chat
    // start runs only through the same rule.
    let confined = Studio::for_repository(&nt.db(), &a.path()).unwrap();
    let e = confined.chat(&b.path()).err().expect("chat for B refused");
    assert_eq!(
        (e.code.as_str(), e.message.as_str()),
        ("outside_allowed_roots", message.as_str())
    );

    // And `noctuneStart` itself, handed a context for B by a surface that got it wrong, goes
    // through the same rule.
    let service = confined.chat(&a.path()).unwrap();
    let start = service
        .tools()
        .into_iter()
        .find(|t| t.name() == "noctuneStart")
        .expect("noctuneStart registered");
    let ctx = noctune_studio::chat::ToolContext {
        repo_root: b.path().canonicalize().unwrap(),
        sandbox: service.sandbox().clone(),
        session_id: "facade-test".into(),
        edit_sink: None,
        overlay: None,
        read_stamps: Default::default(),
    };
    let e = start
        .call(&ctx, &json!({"pack": "lint_fix"}))
        .err()
        .expect("noctuneStart on B refused");
    assert_eq!(
        (e.code.as_str(), e.message.as_str()),
        ("outside_allowed_roots", message.as_str())
    );

    // Nothing was started anywhere.
    assert!(
        nt.run(&["runs", "--json"])
            .json()
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_error_has_the_same_code_and_message_on_every_surface() {
    let repo = FixtureRepo::new("pyproj", &[]);
    let nt = Noctune::new();
    let studio = StudioProc::start(&nt, &repo.path());
    let r = studio.get(&format!("/api/runs/{UNKNOWN_RUN}"));
    assert_eq!((r.status, r.code().as_str()), (404, "unknown_run"));
    let message = r.json()["message"].as_str().unwrap().to_string();
    assert!(!message.contains("noctune "), "no CLI hints: {message}");
    let expected = ("unknown_run".to_string(), message.clone());

    let client = mcp_over_http(&studio).await;
    for tool in ["get_status", "tail_events", "list_approvals", "stop_run"] {
        let r = mcp_call(&client, tool, json!({"run_id": UNKNOWN_RUN})).await;
        assert_eq!(mcp_failure(&r), expected, "{tool} over /mcp");
    }
    client.cancel().await.unwrap();
    studio.stop();

    let mcp = connect_stdio(&nt, "facade-test", &[], &[]).await;
    let got = mcp
        .err("get_status", json!({"run_id": UNKNOWN_RUN}), "unknown_run")
        .await;
    assert_eq!(got, message, "over stdio");
    mcp.client.cancel().await.unwrap();

    let mut lsp = LspClient::start(&nt, &repo.path(), &["--no-http"], &[]);
    lsp.initialize(&repo.path(), json!({}));
    let got = lsp_failure(
        &mut lsp,
        "noctune/runs/stop",
        json!({"run_id": UNKNOWN_RUN}),
    );
    assert_eq!(got, expected, "over LSP");
    lsp.shutdown_exit();

    // A chat run tool, through the service a surface gets from the facade.
    let studio = Studio::for_repository(&nt.db(), &repo.path()).unwrap();
    let service = studio.chat(&repo.path()).unwrap();
    let tool = service
        .tools()
        .into_iter()
        .find(|t| t.name() == "noctuneEvents")
        .expect("noctuneEvents registered");
    let ctx = noctune_studio::chat::ToolContext {
        repo_root: repo.path().canonicalize().unwrap(),
        sandbox: service.sandbox().clone(),
        session_id: "facade-test".into(),
        edit_sink: None,
        overlay: None,
        read_stamps: Default::default(),
    };
    let e = tool
        .call(&ctx, &json!({"run_id": UNKNOWN_RUN}))
        .err()
        .expect("unknown run");
    assert_eq!((e.code.clone(), e.message.clone()), expected, "chat tool");
}
