//! MCP both ways.
//!
//! - Server: the tools `enqueue_run`, `get_status`, `tail_events`, `list_approvals`,
//!   `decide_approval`, `stop_run` over stdio (`noctune mcp`, [`stdio`]) and Streamable HTTP
//!   (`/mcp` on the studio server, [`http_router`]). Each translates into one `Studio` call.
//! - Client: chat uses the tools of the servers in `[mcp_servers.<name>]` ([`connect_all`],
//!   [`McpClients::tools`]), named `<server>__<tool>` and gated like our run tools.
//!
//! Invariant: this module decides nothing about runs, approvals or permissions; the engine and
//! the chat permission gate do.

pub mod client;
pub mod client_config;
pub mod errors;
pub mod http;
pub mod server;
pub mod stdio;
pub mod tools_bridge;
pub mod types;

pub use client::{McpClients, ServerState, ServerStatus, connect_all};
pub use http::http_router;
pub use server::{NoctuneMcp, ServerOptions};
