//! Shared test support.
pub mod cli;
pub mod harness;
pub mod llm_server;
pub mod lsp_client;
pub mod pkg_index;
pub mod repo;
pub mod tap;
pub mod wait;
