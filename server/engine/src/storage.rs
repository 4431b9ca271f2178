//! Compact approval storage: a request holds the unified diff and the git blob ids of the
//! pre- and post-image ([`StoredEdit`]); the texts live in the repository's object store,
//! where the pre-image is the base commit's own blob and costs nothing.
//!
//! What keeps the blobs: `refs/noctune/runs/<run_id>` points at a tree of every blob the
//! run's requests name ([`keep_reachable`]), so `git gc` does not prune a post-image that no
//! commit holds (a pending or rejected edit). Should the ref be gone anyway (deleted by hand,
//! [`forget_run`]), the post-image is rebuilt from the pre-image and the diff and checked
//! against its blob id (`ApprovalRequest::verify`); the pre-image is in the base commit.

use super::paths::RunPaths;
use noctune_core::{ApprovalRequest, BlobSource, Proposal, RunId, StoredEdit};
use std::path::Path;

/// The ref that keeps a run's blobs reachable.
pub fn run_ref(run_id: &RunId) -> String {
    format!("refs/noctune/runs/{run_id}")
}

/// Writes the pre- and post-image of `p` to the object store (shared by the worktree and the
/// user's repository) and returns what a request stores of it.
pub fn store_edit(repo: &git2::Repository, p: &Proposal) -> noctune_git::Result<StoredEdit> {
    Ok(StoredEdit {
        before_blob: noctune_git::write_blob(repo, p.before.as_bytes())?,
        after_blob: noctune_git::write_blob(repo, p.after.as_bytes())?,
        source: p.source,
        major_bump: p.major_bump,
    })
}

/// [`store_edit`] of each of `edits`, in order, with `also` of it, on as many threads as there
/// are cores (up to 4), each with its own handle on the object store of the repository at
/// `repo`: compressing the post-images of a large run's edits (and diffing them, for `also`)
/// is most of the time it takes to record them.
pub fn store_edits<X: Send>(
    repo: &Path,
    edits: &[&Proposal],
    also: impl Fn(&Proposal) -> X + Sync,
) -> noctune_git::Result<Vec<(StoredEdit, X)>> {
    let open = || noctune_git::open_repo(repo).map_err(|e| e.to_string());
    noctune_util::par::map_in_chunks(edits, open, |repo, p| {
        let repo = repo
            .as_ref()
            .map_err(|e| std::io::Error::other(e.clone()))?;
        Ok((store_edit(repo, p)?, also(p)))
    })
    .into_iter()
    .map(|answer| {
        answer.unwrap_or_else(|| {
            Err(noctune_git::GitError::Git {
                context: "store the edits' texts".into(),
                source: git2::Error::from_str("a thread panicked"),
            })
        })
    })
    .collect()
}

/// Adds every blob `reqs` name to the run's ref (idempotent; writes only when one is new).
pub fn keep_reachable(
    repo: &git2::Repository,
    run_id: &RunId,
    reqs: &[ApprovalRequest],
) -> noctune_git::Result<bool> {
    let mut ids: Vec<String> = reqs
        .iter()
        .filter_map(|r| r.content.blob_ids())
        .flat_map(|(a, b)| [a.to_string(), b.to_string()])
        .collect();
    ids.sort();
    ids.dedup();
    if ids.is_empty() {
        return Ok(false);
    }
    noctune_git::keep_blobs(repo, &run_ref(run_id), &ids)
}

/// Lets the run's blobs go (for when a run's records are deleted): after this a `git gc` may
/// prune post-images no commit holds.
pub fn forget_run(repo: &git2::Repository, run_id: &RunId) -> noctune_git::Result<bool> {
    noctune_git::drop_ref(repo, &run_ref(run_id))
}

/// A [`BlobSource`] over an open repository.
pub struct GitBlobs<'r>(pub &'r git2::Repository);

impl BlobSource for GitBlobs<'_> {
    fn read(&self, id: &str) -> Result<Option<Vec<u8>>, String> {
        noctune_git::read_blob(self.0, id).map_err(|e| e.to_string())
    }
    fn id_of(&self, content: &[u8]) -> String {
        // Hashing in memory cannot fail; an empty id matches no stored one.
        noctune_git::blob_id(content).unwrap_or_default()
    }
}

/// The object store of the repository at `root`, for surfaces that list or decide a run's
/// approvals. A repository that cannot be opened (moved, deleted) makes every read fail with
/// why, so its stored requests show as unreadable instead of as fine.
pub struct RepoBlobs(Result<git2::Repository, String>);

impl RepoBlobs {
    pub fn open(root: &Path) -> RepoBlobs {
        RepoBlobs(
            git2::Repository::open(root)
                .map_err(|e| format!("the repository at {} cannot be opened: {e}", root.display())),
        )
    }

    /// The run's repository.
    pub fn of_run(paths: &RunPaths) -> RepoBlobs {
        RepoBlobs::open(&paths.repo_root)
    }
}

impl BlobSource for RepoBlobs {
    fn read(&self, id: &str) -> Result<Option<Vec<u8>>, String> {
        match &self.0 {
            Ok(repo) => GitBlobs(repo).read(id),
            Err(why) => Err(why.clone()),
        }
    }
    fn id_of(&self, content: &[u8]) -> String {
        noctune_git::blob_id(content).unwrap_or_default()
    }
}
