//! MCP as a server (the client side is `noctune-mcp-client`).
//!
//! - Server: the tools `enqueue_run`, `get_status`, `tail_events`, `list_approvals`,
//!   `decide_approval`, `stop_run` over stdio (`noctune mcp`, [`stdio`]) and Streamable HTTP
//!   (`/mcp` on the studio server, [`http_router`]). Each translates into one `Studio` call.
//!
//! Invariant: this module decides nothing about runs, approvals or permissions; the engine and
//! the chat permission gate do.

pub mod errors;
pub mod http;
pub mod server;
pub mod stdio;
pub mod types;

pub use http::http_router;
pub use server::NoctuneMcp;
