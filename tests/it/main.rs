//! The single integration-test binary (one link step instead of one per file).

mod support;

mod arch;

mod chat_cli;
mod chat_files;
mod chat_permissions;
mod chat_sandbox;
mod chat_sessions;
mod chat_turns;
mod deps;
mod engine_audit;
mod engine_bad_input;
mod engine_failures;
mod engine_packs;
mod engine_runs;
mod http_api;
mod http_chat;
mod http_security;
mod http_sse;
mod http_support;
mod llm_client;
mod llm_real;
mod lsp_basics;
mod lsp_chat;
mod lsp_runs;
mod mcp_agent;
mod mcp_chat;
mod mcp_client;
mod mcp_contract;
mod mcp_http;
mod mcp_support;
mod policy_props;
mod store;
