//! `/mcp`: the same tools over Streamable HTTP, mounted by the studio server inside its auth
//! layer (token, Host and Origin checks). rmcp's own Host and Origin allowlists are set to
//! loopback as a second line of defence.

use super::server::NoctuneMcp;
use noctune_studio::Studio;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use std::sync::Arc;

/// Loopback hosts (any port): the studio server binds 127.0.0.1 only.
pub const ALLOWED_HOSTS: [&str; 3] = ["127.0.0.1", "localhost", "::1"];
/// Browser origins allowed to call `/mcp` (any port; the studio layer checks the exact one).
pub const ALLOWED_ORIGINS: [&str; 3] =
    ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"];

/// A router serving MCP Streamable HTTP at `/mcp`.
pub fn http_router(studio: Arc<Studio>) -> axum::Router {
    let config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(ALLOWED_HOSTS)
        .with_allowed_origins(ALLOWED_ORIGINS)
        .enforce_origin_validation();
    let service = StreamableHttpService::new(
        move || Ok(NoctuneMcp::new(studio.clone())),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    axum::Router::new().route_service("/mcp", service)
}
