//! The run engine: run lifecycle, worker, proposers, gates, approvals, patchsets,
//! `events.jsonl` and `run.json`.
//!
//! Invariant: no surface types here (no LSP, HTTP or MCP). Surfaces call [`api`]. All policy
//! decisions come from `crate::core`; this module does the IO around them.

pub mod api;
pub mod crossfile;
pub mod ctx;
pub mod events;
pub mod gate_memo;
pub mod gates;
pub mod paths;
pub mod process;
pub mod proposers;
pub mod pyindex;
pub mod records;
pub mod runfile;
pub mod storage;
pub mod symbols;
pub mod tools;
pub mod verified;
pub mod worker;

pub use api::{ApprovalView, EngineError, StartRequest, Started};
pub use paths::RunPaths;
