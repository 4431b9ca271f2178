//! `/mcp` over Streamable HTTP: served by `noctune studio` behind its lock (token, Host,
//! Origin), with rmcp's own Host/Origin allowlists as a second line. A refused request has no
//! side effect: the very same `enqueue_run` that creates a run when allowed creates nothing.

use crate::http_support::{Resp, StudioProc, raw_request};
use crate::support::cli::Noctune;
use crate::support::repo::FixtureRepo;
use rmcp::ServiceExt;
use rmcp::model::{
    CallToolRequestParams, ClientCapabilities, ClientConfig, Implementation, ProtocolVersion,
};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};
use std::sync::Arc;

const PROTOCOL: &str = "2025-06-18";

/// The JSON-RPC message of an MCP POST answer (JSON or a one-event SSE stream).
fn message(r: &Resp) -> Value {
    let text = r.text();
    if let Ok(v) = serde_json::from_str::<Value>(&text) {
        return v;
    }
    text.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .find(|v| v.get("jsonrpc").is_some())
        .unwrap_or_else(|| panic!("no JSON-RPC message in {} {text}", r.status))
}

fn initialize_body() -> Vec<u8> {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
           "params": {"protocolVersion": PROTOCOL, "capabilities": {}, "clientInfo": {"name": "raw-http-test", "version": "1"}}})
    .to_string()
    .into_bytes()
}

/// Opens an MCP session on `port` with the given auth header; returns its session id.
fn open_session(port: u16, host: &str, auth: &str) -> String {
    let base = [
        ("Authorization", auth),
        ("Content-Type", "application/json"),
        ("Accept", "application/json, text/event-stream"),
    ];
    let r = raw_request(port, "POST", "/mcp", &base, &initialize_body(), Some(host));
    assert_eq!(r.status, 200, "initialize: {}", r.text());
    assert_eq!(message(&r)["result"]["serverInfo"]["name"], "noctune");
    let sid = r
        .header("mcp-session-id")
        .expect("a session id")
        .to_string();
    let mut h = base.to_vec();
    h.push(("Mcp-Session-Id", &sid));
    h.push(("MCP-Protocol-Version", PROTOCOL));
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string();
    let r = raw_request(port, "POST", "/mcp", &h, note.as_bytes(), Some(host));
    assert!(
        r.status == 202 || r.status == 200,
        "initialized: {} {}",
        r.status,
        r.text()
    );
    sid
}

#[test]
fn studio_mcp_refuses_a_foreign_origin_or_host_and_a_missing_token_with_no_side_effect() {
    let repo = FixtureRepo::new("pyproj", &[]);
    let nt = Noctune::new();
    let studio = StudioProc::start(&nt, &repo.path());
    let host = studio.host();
    let bearer = studio.bearer();
    let sid = open_session(studio.port, &host, &bearer);
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                      "params": {"name": "enqueue_run", "arguments": {"repo_root": repo.path(), "pack": "lint_fix"}}})
    .to_string();
    let mcp_headers = |auth: Option<&str>, origin: Option<&str>| -> Vec<(String, String)> {
        let mut h = vec![
            ("Content-Type".to_string(), "application/json".to_string()),
            (
                "Accept".to_string(),
                "application/json, text/event-stream".to_string(),
            ),
            ("Mcp-Session-Id".to_string(), sid.clone()),
            ("MCP-Protocol-Version".to_string(), PROTOCOL.to_string()),
        ];
        if let Some(a) = auth {
            h.push(("Authorization".into(), a.into()));
        }
        if let Some(o) = origin {
            h.push(("Origin".into(), o.into()));
        }
        h
    };
    let send = |h: Vec<(String, String)>, host: &str| -> Resp {
        let refs: Vec<(&str, &str)> = h.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        raw_request(
            studio.port,
            "POST",
            "/mcp",
            &refs,
            call.as_bytes(),
            Some(host),
        )
    };
    let nothing_happened = |what: &str| {
        assert!(
            !repo.path().join(".noctune_cache").exists(),
            "{what}: the repository was touched"
        );
        assert_eq!(
            nt.run(&["runs", "--json"]).ok().json(),
            json!([]),
            "{what}: a run was recorded"
        );
    };

    let r = send(mcp_headers(None, None), &host);
    assert_eq!(r.status, 401, "no token: {}", r.text());
    nothing_happened("no token");
    let r = send(mcp_headers(Some("Bearer not-the-token"), None), &host);
    assert_eq!(r.status, 401, "wrong token: {}", r.text());
    nothing_happened("wrong token");
    let r = send(
        mcp_headers(Some(&bearer), Some("http://evil.example")),
        &host,
    );
    assert_eq!(r.status, 403, "foreign Origin: {}", r.text());
    nothing_happened("foreign Origin");
    let r = send(
        mcp_headers(
            Some(&bearer),
            Some(&format!("http://localhost:{}", studio.port + 1)),
        ),
        &host,
    );
    assert_eq!(r.status, 403, "Origin on another port: {}", r.text());
    nothing_happened("Origin on another port");
    let r = send(
        mcp_headers(Some(&bearer), None),
        &format!("evil.example:{}", studio.port),
    );
    assert_eq!(r.status, 403, "foreign Host: {}", r.text());
    nothing_happened("foreign Host");

    // The same request, allowed, does create a run: the refusals above were meaningful.
    let r = send(mcp_headers(Some(&bearer), Some(&studio.origin())), &host);
    assert_eq!(r.status, 200, "allowed: {}", r.text());
    let m = message(&r);
    assert_ne!(m["result"]["isError"], true, "{m:#}");
    let run_id = m["result"]["structuredContent"]["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        repo.path()
            .join(format!(".noctune_cache/runs/{run_id}/state/run.json"))
            .is_file()
    );
    nt.run(&["stop", &run_id, "--grace", "1"]);
    studio.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rmcp_client_uses_studio_mcp_with_the_bearer_token() {
    let repo = FixtureRepo::new("pyproj", &[]);
    let nt = Noctune::new();
    let studio = StudioProc::start(&nt, &repo.path());
    let _ = rustls::crypto::ring::default_provider().install_default();
    let url = format!("http://127.0.0.1:{}/mcp", studio.port);
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(url).auth_header(studio.token.clone()),
    );
    let info = ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new("rmcp-http-test", "1"),
    )
    .with_protocol_version(ProtocolVersion::LATEST_WITH_INITIALIZE);
    let client = info.serve(transport).await.expect("handshake over /mcp");
    let tools = client.list_all_tools().await.unwrap();
    assert_eq!(tools.len(), 6);
    let r = client
        .call_tool(
            CallToolRequestParams::new("get_status").with_arguments(
                json!({"run_id": "20990101T000000Z-00000000"})
                    .as_object()
                    .unwrap()
                    .clone(),
            ),
        )
        .await
        .unwrap();
    assert_eq!(r.is_error, Some(true));
    assert_eq!(r.structured_content, None);
    assert_eq!(
        r.meta.unwrap().0["io.noctune/error"]["error"],
        "unknown_run"
    );
    client.cancel().await.unwrap();
    studio.stop();
}

/// rmcp's own allowlists, set by `http_router`, without the studio lock in front.
#[test]
fn http_router_itself_refuses_foreign_hosts_and_origins() {
    let nt = Noctune::new();
    let studio = Arc::new(noctune_studio::Studio::open(&nt.db()).unwrap());
    let app = noctune_mcp::http_router(studio);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap().port()).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    let port = rx.recv().unwrap();
    let host = format!("127.0.0.1:{port}");
    let h = [
        ("Content-Type", "application/json"),
        ("Accept", "application/json, text/event-stream"),
    ];
    let ok = raw_request(port, "POST", "/mcp", &h, &initialize_body(), Some(&host));
    assert_eq!(ok.status, 200, "{}", ok.text());
    let bad_host = raw_request(
        port,
        "POST",
        "/mcp",
        &h,
        &initialize_body(),
        Some(&format!("attacker.example:{port}")),
    );
    assert_eq!(bad_host.status, 403, "{}", bad_host.text());
    let mut with_origin = h.to_vec();
    with_origin.push(("Origin", "https://attacker.example"));
    let bad_origin = raw_request(
        port,
        "POST",
        "/mcp",
        &with_origin,
        &initialize_body(),
        Some(&host),
    );
    assert_eq!(bad_origin.status, 403, "{}", bad_origin.text());
    let own = format!("http://127.0.0.1:{port}");
    let mut with_own = h.to_vec();
    with_own.push(("Origin", &own));
    let good_origin = raw_request(
        port,
        "POST",
        "/mcp",
        &with_own,
        &initialize_body(),
        Some(&host),
    );
    assert_eq!(good_origin.status, 200, "{}", good_origin.text());
}
