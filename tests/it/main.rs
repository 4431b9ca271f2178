//! The single integration-test binary (one link step instead of one per file).

mod support;

mod llm_client;
mod store;
