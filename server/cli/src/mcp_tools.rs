//! Puts the tools of the MCP servers configured for a repository (`[mcp_servers.<name>]`) into
//! that repository's chat registry, next to our own. Lives in the CLI layer because chat and
//! the facade may not depend on the MCP adapter.

use noctune_mcp_client::McpClients;
use noctune_studio::Studio;
use std::path::Path;
use std::sync::{Mutex, OnceLock};

/// Connections stay open for the life of the process.
fn keep() -> &'static Mutex<Vec<McpClients>> {
    static CLIENTS: OnceLock<Mutex<Vec<McpClients>>> = OnceLock::new();
    CLIENTS.get_or_init(|| Mutex::new(Vec::new()))
}

/// Connects the configured servers (a failing one only logs: chat goes on without its tools)
/// and registers their tools as `<server>__<tool>`. Returns how many tools were added.
pub fn attach(studio: &Studio, repo_root: &Path) -> usize {
    let Ok(service) = studio.chat(repo_root) else {
        return 0;
    };
    if service.config().mcp_servers.is_empty() {
        return 0;
    }
    let clients = McpClients::connect_all_blocking(service.config());
    let tools = clients.tools();
    let n = tools.len();
    for t in tools {
        service.register_tool(t);
    }
    keep()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(clients);
    n
}

/// [`attach`] on a background thread, for servers whose startup must not wait for MCP servers.
pub fn attach_in_background(repo_root: &Path) {
    let root = repo_root.to_path_buf();
    std::thread::spawn(move || {
        if let Ok(studio) = Studio::open_default() {
            let n = attach(&studio, &root);
            tracing::debug!(tools = n, "MCP tools registered for chat");
        }
    });
}
