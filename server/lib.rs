//! Noctune Studio. See `docs/architecture.md` for the codemap and the layering rules that
//! `tests/it/arch.rs` enforces.

pub mod chat;
pub mod cli;
pub mod config;
pub mod core;
pub mod deps;
pub mod engine;
pub mod git;
pub mod http;
pub mod llm;
pub mod lsp;
pub mod mcp;
pub mod sandbox;
pub mod store;
pub mod studio;
pub mod util;
