//! Where a run's files live (docs/architecture.md, "Files on disk").

use noctune_core::RunId;
use std::path::{Path, PathBuf};

/// The cache's name and its `.gitignore` are decided in `noctune_util::cache`, which chat and
/// the facade use too.
pub use noctune_util::cache::{CACHE_DIR, cache_dir, ensure_cache_dir};

#[derive(Debug, Clone)]
pub struct RunPaths {
    pub repo_root: PathBuf,
    pub run_id: RunId,
    pub run_dir: PathBuf,
}

impl RunPaths {
    pub fn new(repo_root: &Path, run_id: &RunId) -> RunPaths {
        RunPaths {
            repo_root: repo_root.to_path_buf(),
            run_id: run_id.clone(),
            run_dir: runs_dir(repo_root).join(run_id.as_str()),
        }
    }
    pub fn state_dir(&self) -> PathBuf {
        self.run_dir.join("state")
    }
    pub fn run_json(&self) -> PathBuf {
        self.state_dir().join("run.json")
    }
    pub fn lock_file(&self) -> PathBuf {
        self.state_dir().join("run.lock")
    }
    pub fn events(&self) -> PathBuf {
        self.run_dir.join("events.jsonl")
    }
    pub fn approvals_dir(&self) -> PathBuf {
        self.state_dir().join("approvals")
    }
    pub fn approval(&self, id: &str) -> PathBuf {
        self.approvals_dir().join(format!("{id}.json"))
    }
    pub fn decision(&self, id: &str) -> PathBuf {
        self.approvals_dir().join(format!("{id}.decision.json"))
    }
    /// Written once every file has been proposed, gated and policed.
    pub fn proposals_done(&self) -> PathBuf {
        self.state_dir().join("proposals.json")
    }
    pub fn patchsets(&self) -> PathBuf {
        self.state_dir().join("patchsets.json")
    }
    pub fn stop_request(&self) -> PathBuf {
        self.state_dir().join("stop_requested")
    }
    pub fn worker_log(&self) -> PathBuf {
        self.run_dir.join("worker.log")
    }
    pub fn worktree(&self) -> PathBuf {
        worktrees_dir(&self.repo_root).join(self.run_id.as_str())
    }
    /// Written when a run is done: its worktree may be taken over by the next run.
    pub fn recyclable_marker(&self) -> PathBuf {
        worktrees_dir(&self.repo_root).join(format!("{}.recyclable", self.run_id))
    }
}

pub fn worktrees_dir(repo_root: &Path) -> PathBuf {
    cache_dir(repo_root).join("worktrees")
}

pub fn runs_dir(repo_root: &Path) -> PathBuf {
    cache_dir(repo_root).join("runs")
}

#[cfg(test)]
mod tests {
    #[test]
    fn git_never_stages_the_cache() {
        // noctune-git depends on no crate of ours, so it spells the name itself.
        assert!(noctune_git::NEVER_STAGED.contains(&super::CACHE_DIR));
    }
}
