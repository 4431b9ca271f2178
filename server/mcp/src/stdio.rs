//! `noctune mcp`: the MCP server on stdin/stdout. stdout carries only protocol frames; logs
//! go to stderr (see `util::logging`).

use super::server::NoctuneMcp;
use noctune_studio::Studio;
use rmcp::ServiceExt;
use std::sync::Arc;

/// Serves until the client closes stdin.
pub async fn serve_stdio(studio: Arc<Studio>) -> anyhow::Result<()> {
    let running = NoctuneMcp::new(studio)
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| anyhow::anyhow!("MCP handshake on stdio failed: {e}"))?;
    let reason = running.waiting().await?;
    tracing::debug!("MCP stdio session ended: {reason:?}");
    Ok(())
}
