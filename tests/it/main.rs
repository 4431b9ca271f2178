//! The single integration-test binary (one link step instead of one per file).

mod support;

mod arch;

mod engine_audit;
mod engine_bad_input;
mod engine_failures;
mod engine_packs;
mod deps;
mod engine_runs;
mod llm_client;
mod mcp_agent;
mod mcp_chat;
mod mcp_client;
mod mcp_contract;
mod mcp_http;
mod mcp_support;
mod policy_props;
mod store;
mod chat_sandbox;
mod chat_permissions;
mod chat_files;
mod http_support;
mod http_security;
mod http_api;
mod http_sse;
mod http_chat;
mod chat_turns;
mod chat_cli;
mod chat_sessions;
mod llm_real;
mod lsp_basics;
mod lsp_chat;
mod lsp_runs;
