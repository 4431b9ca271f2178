//! Recorded llama-server output (`fixtures/llm/recordings/` at the workspace root) for the unit
//! tests of this crate.

use std::path::PathBuf;

/// The text of a recorded file; panics with the path if it is missing.
pub(crate) fn recording(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/llm/recordings")
        .join(name);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("recording {name} not readable at {}: {e}", path.display()))
}
