//! Each tool of a configured MCP server as a chat [`Tool`] named `<server>__<tool>`, of class
//! `Run`: the permission gate asks before each call (once / session / always, keyed by the
//! tool's name), exactly as for our own run tools.

use super::client::{Inner, McpClients, RemoteTool};
use noctune_chat::tool::{Tool, ToolClass, ToolContext, ToolError};
use serde_json::Value;
use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};

/// `Tool::name` and `Tool::description` are `&'static str`; remote names are known only at
/// run time, so each distinct string is leaked once (a handful per configured server).
fn intern(s: &str) -> &'static str {
    static SET: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut set = SET
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(found) = set.get(s) {
        return found;
    }
    let leaked: &'static str = Box::leak(s.to_string().into_boxed_str());
    set.insert(leaked);
    leaked
}

pub struct McpTool {
    clients: Arc<Inner>,
    server: String,
    remote: String,
    name: &'static str,
    description: &'static str,
    schema: Value,
}

impl McpTool {
    pub(super) fn new(clients: Arc<Inner>, server: &str, t: &RemoteTool) -> McpTool {
        let desc: String = t.description.chars().take(1000).collect();
        let description = if desc.is_empty() {
            format!("Tool `{}` of the MCP server `{server}`.", t.name)
        } else {
            format!("[MCP server {server}] {desc}")
        };
        let mut schema = t.input_schema.clone();
        if !schema.is_object() {
            schema = serde_json::json!({"type": "object"});
        }
        McpTool {
            clients,
            server: server.to_string(),
            remote: t.name.clone(),
            name: intern(&t.chat_name),
            description: intern(&description),
            schema,
        }
    }

    pub fn server(&self) -> &str {
        &self.server
    }

    pub fn remote_name(&self) -> &str {
        &self.remote
    }
}

impl Tool for McpTool {
    fn name(&self) -> &'static str {
        self.name
    }
    fn description(&self) -> &'static str {
        self.description
    }
    fn parameters(&self) -> Value {
        self.schema.clone()
    }
    fn class(&self) -> ToolClass {
        ToolClass::Run
    }
    fn call(&self, _ctx: &ToolContext, args: &Value) -> Result<Value, ToolError> {
        self.clients.call_blocking(&self.server, &self.remote, args)
    }
}

impl McpClients {
    /// The tools of every ready server as chat tools named `<server>__<tool>`.
    pub fn tools(&self) -> Vec<Arc<dyn Tool>> {
        let mut out: Vec<Arc<dyn Tool>> = Vec::new();
        self.for_each_tool(|server, t| {
            out.push(Arc::new(McpTool::new(self.inner.clone(), server, t)));
        });
        out
    }
}
