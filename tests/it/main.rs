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
mod policy_props;
mod store;
