//! Shared test support.
pub mod cli;
pub mod repo;
pub mod pkg_index;
pub mod llm_server;
pub mod lsp_client;
