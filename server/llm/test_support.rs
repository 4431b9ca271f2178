//! Recorded llama-server output for the unit tests of this module.
//!
//! The repository's copy (`fixtures/llm/recordings/`) comes first so the repo tests itself; the
//! team's shared folder (`../shared/llm/recordings/`) is the fallback and the original.

use std::path::PathBuf;

const IN_REPO: &str = "fixtures/llm/recordings";
const SHARED: &str = "../shared/llm/recordings";

fn dir(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// The text of a recorded file; panics with both paths if neither exists.
pub(crate) fn recording(name: &str) -> String {
    let candidates = [dir(IN_REPO).join(name), dir(SHARED).join(name)];
    for path in &candidates {
        if let Ok(text) = std::fs::read_to_string(path) {
            return text;
        }
    }
    panic!("recording {name} not found in {candidates:?}")
}

#[test]
fn in_repo_recordings_match_the_shared_originals() {
    let shared = dir(SHARED);
    let Ok(entries) = std::fs::read_dir(&shared) else {
        return; // no shared folder on this machine: nothing to compare
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == "README.md" {
            continue; // the copy adds a note on where it came from
        }
        let original = std::fs::read(entry.path()).expect("shared recording readable");
        let copy = std::fs::read(dir(IN_REPO).join(&name))
            .unwrap_or_else(|e| panic!("{IN_REPO}/{name} missing ({e}); copy it from {SHARED}"));
        assert!(
            copy == original,
            "{IN_REPO}/{name} differs from {SHARED}/{name}"
        );
    }
}
