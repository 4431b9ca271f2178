//! Registers the tools of the MCP servers configured for a repository with its chat, for the
//! commands that chat (`noctune chat`, `noctune lsp`, `noctune studio`).

use noctune_studio::Studio;
use std::path::Path;
use std::sync::Arc;

/// [`Studio::attach_mcp_servers`] on a background thread, for servers whose startup must not
/// wait for MCP servers.
pub fn attach_in_background(studio: Arc<Studio>, repo_root: &Path) {
    let root = repo_root.to_path_buf();
    std::thread::spawn(move || {
        let n = studio.attach_mcp_servers(&root);
        tracing::debug!(tools = n, "MCP tools registered for chat");
    });
}
