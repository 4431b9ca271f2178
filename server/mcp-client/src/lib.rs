//! MCP as a client: chat uses the tools of the servers in `[mcp_servers.<name>]`
//! ([`connect_all`], [`McpClients::tools`]), named `<server>__<tool>` and gated like our run
//! tools by chat's permission gate.
//!
//! Invariant: this crate decides nothing about permissions (chat's gate does) and knows no
//! surface; it only speaks MCP to other servers.

pub mod client;
pub mod client_config;
pub mod tools_bridge;

pub use client::{McpClients, ServerState, ServerStatus, connect_all};
