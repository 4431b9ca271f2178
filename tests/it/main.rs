//! The single integration-test binary (one link step instead of one per file).

mod support;

mod engine_failures;
mod engine_runs;
mod llm_client;
mod store;
