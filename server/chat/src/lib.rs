//! Chat with a local model: sessions, the turn loop (streaming, native or prompt-based tool
//! calling), the tool registry, the permission gate, backups.
//!
//! Invariant: no protocol types (LSP, HTTP, MCP). Surfaces drive chat through `studio/`,
//! supplying a permission prompter, an optional `EditSink` and `BufferOverlay`.

pub mod agent;
pub mod backups;
pub mod context;
pub mod overview;
pub mod permissions;
pub mod prompt_tools;
pub mod service;
pub mod session;
pub mod tool;
pub mod tools;
