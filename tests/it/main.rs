//! The single integration-test binary (one link step instead of one per file): every file here
//! is a module of it, listed below. `cargo test --test it <filter>` runs a part, e.g.
//! `cargo test --test it http_ -- --test-threads=2`.
//!
//! Where a new test goes, by file prefix (add a `mod` line below for a new file):
//! - `arch`: the layering rules of docs/architecture.md (crate dependencies, import cycles).
//! - `chat_*`: the chat layer: turns (`chat_turns`), sessions, file tools, permissions,
//!   sandbox, and `noctune chat` through the binary (`chat_cli`).
//! - `engine_*`: runs through the real binary: packs, failures, bad input, audit.
//! - `http_*`: `noctune studio`'s HTTP API, SSE and its lock (token, Host, Origin).
//! - `lsp_*`: `noctune lsp` as an editor sees it.
//! - `mcp_*`: the MCP server (`mcp_contract`, `mcp_http`), the MCP client (`mcp_client`,
//!   `mcp_chat`) and an external agent (`mcp_agent`).
//! - `llm_*`: the model client against the scripted server (`llm_client`), and against a real
//!   llama-server (`llm_real`).
//! - `store`: the audit DB; `deps`: `deps_bump` and the package index; `policy_props`:
//!   property tests of the policy.
//! - `wire`: the one wire model: `editors/vscode/schema/wire.json` is generated from the types,
//!   and the OpenAPI components and MCP output schemas are the same schemas.
//!
//! Support code: `support/` (the binary as a user runs it: `cli`; fixture repos: `repo`; the
//! scripted model server: `llm_server`; a recording proxy in front of a model server: `tap`;
//! an LSP client: `lsp_client`; a package index:
//! `pkg_index`; waiting: `wait`), plus `http_support.rs` and `mcp_support.rs` for their tiers.
//!
//! What the tests use is real: git repositories made from `fixtures/` (`FixtureRepo`), the
//! real `noctune` binary with a private audit DB (`Noctune`), real HTTP on 127.0.0.1, and, for
//! the model, the scripted llama-server stand-in in `support/llm_server.rs` (`ScriptedLlm`),
//! which speaks llama-server's wire format.
//!
//! A test that needs something not every machine has (a real llama-server, the MCP Python SDK
//! venv, an npm package) is `#[ignore = "needs <what>; run by tests/run-all.sh"]`, and panics
//! saying how to get it when it is missing (it never returns early and passes).
//! `tests/run-all.sh` installs or builds the thing, then runs those tests with
//! `cargo test --test it -- --ignored <filter>` and fails if the filter matches no test; add a
//! new such test to one of its filters (or a new `run_ignored` line).
//!
//! Never sleep to wait for something: use `support::wait::wait_until` (or `wait_for`,
//! `poll_for`, and the `_async` variants), which polls with a short back-off and fails naming
//! what it waited for. A sleep that makes a time gap on purpose (a lease that must expire, a
//! scripted server's latency) is fine with a comment saying why.

mod support;

mod arch;

mod approval_tamper;
mod chat_cli;
mod chat_edit_tool;
mod chat_events;
mod chat_files;
mod chat_model_hygiene;
mod chat_partial;
mod chat_permissions;
mod chat_recorded;
mod chat_sandbox;
mod chat_sandbox_race;
mod chat_sessions;
mod chat_trust;
mod chat_turns;
mod cli_pipes;
mod deps;
mod engine_audit;
mod engine_bad_input;
mod engine_crossfile;
mod engine_failures;
mod engine_outcome;
mod engine_packs;
mod engine_real;
mod engine_runs;
mod engine_scope;
mod engine_storage;
mod http_api;
mod http_chat;
mod http_limits;
mod http_openapi;
mod http_security;
mod http_sse;
mod http_support;
mod llm_caps;
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
mod studio_bulk;
mod studio_facade;
mod studio_runs;
mod wire;
