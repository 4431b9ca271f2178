//! Git through libgit2 (git2): worktrees, branches, file restore, commits.
//!
//! Invariant: nothing here executes a program. libgit2 runs no hooks, does not support
//! `core.fsmonitor` or external filter drivers (`filter.<name>.clean/smudge/process`), and we
//! never spawn the `git` CLI, so a repository's hooks and command-valued config can never run
//! through us. `tests/it/engine_safety.rs` keeps this true with a booby-trapped repository.

use git2::{BranchType, Repository, Signature, WorktreeAddOptions};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error(
        "{0} is not a git repository (or has no commits yet): run `git init && git add -A && git commit -m init` there first, or pass --repo with a repository's root"
    )]
    NotARepo(PathBuf),
    #[error(
        "{0} is a bare repository; runs need a working tree: clone it (`git clone {0} DIR`), or pass --repo with a checkout"
    )]
    Bare(PathBuf),
    #[error("git: {context}: {source}")]
    Git {
        context: String,
        source: git2::Error,
    },
    #[error("git: {0}")]
    Io(#[from] std::io::Error),
}

fn ctx(context: impl Into<String>) -> impl FnOnce(git2::Error) -> GitError {
    let context = context.into();
    move |source| GitError::Git { context, source }
}

pub type Result<T> = std::result::Result<T, GitError>;

/// Opens the repository whose working tree root is `root` and checks it has a HEAD commit.
/// Makes libgit2 read and write objects as git itself does, for this whole process: without
/// re-hashing every object it reads (`strict_hash_verification`) and without looking up every
/// object a new tree or commit names (`strict_object_creation`). Both are on by default and
/// were a quarter of a run's own CPU time on Django (perf: SHA-1 with collision detection over
/// every blob a checkout, status or harvest read). Nothing trusts an object's content for
/// that check alone: an approval's texts are checked against their blob ids and approval id
/// by `noctune_core` whenever they are loaded.
pub fn read_objects_as_git_does() {
    git2::opts::strict_hash_verification(false);
    git2::opts::strict_object_creation(false);
}

pub fn open_repo(root: &Path) -> Result<Repository> {
    let repo = Repository::open(root).map_err(|_| GitError::NotARepo(root.to_path_buf()))?;
    if repo.is_bare() {
        return Err(GitError::Bare(root.to_path_buf()));
    }
    if repo
        .head()
        .ok()
        .and_then(|h| h.peel_to_commit().ok())
        .is_none()
    {
        return Err(GitError::NotARepo(root.to_path_buf()));
    }
    Ok(repo)
}

/// The canonical working-tree root of the repository containing `dir`.
pub fn discover_root(dir: &Path) -> Result<PathBuf> {
    let repo = Repository::discover(dir).map_err(|_| GitError::NotARepo(dir.to_path_buf()))?;
    let wd = repo
        .workdir()
        .ok_or_else(|| GitError::Bare(dir.to_path_buf()))?;
    Ok(std::fs::canonicalize(wd)?)
}

pub fn head_sha(repo: &Repository) -> Result<String> {
    let c = repo
        .head()
        .and_then(|h| h.peel_to_commit())
        .map_err(ctx("read HEAD"))?;
    Ok(c.id().to_string())
}

/// Name of the branch HEAD points at, or `None` when detached.
pub fn head_branch(repo: &Repository) -> Option<String> {
    let head = repo.head().ok()?;
    if head.is_branch() {
        head.shorthand().ok().map(str::to_string)
    } else {
        None
    }
}

/// Creates (or reuses) a worktree at `path` on a new branch `branch` started at `base` (the
/// commit the run started from). The user's own working tree and branch are not touched.
///
/// A worktree whose HEAD was detached when its run ended ([`release_branch`]) is put back on
/// `branch` (recreated at `base` if it was deleted for having no commit), so a resumed run
/// commits where it left off.
pub fn ensure_worktree(
    repo: &Repository,
    name: &str,
    path: &Path,
    branch: &str,
    base: &str,
) -> Result<Repository> {
    let base = repo
        .find_commit(git2::Oid::from_str(base).map_err(ctx(format!("commit id {base}")))?)
        .map_err(ctx(format!("find the run's base commit {base}")))?;
    if path.join(".git").exists() {
        let wt =
            Repository::open(path).map_err(ctx(format!("open worktree {}", path.display())))?;
        if wt.head_detached().unwrap_or(false) {
            if head_branch(repo).as_deref() == Some(branch) {
                return Err(GitError::Git {
                    context: format!("branch {branch} is checked out in your working tree"),
                    source: git2::Error::from_str(
                        "switch your working tree to another branch, then resume",
                    ),
                });
            }
            if repo.find_branch(branch, BranchType::Local).is_err() {
                repo.branch(branch, &base, false)
                    .map_err(ctx(format!("create branch {branch}")))?;
            }
            wt.set_head(&format!("refs/heads/{branch}"))
                .map_err(ctx(format!(
                    "put worktree {} back on {branch}",
                    path.display()
                )))?;
            restore_to_head(&wt)?;
        }
        // Commits go to HEAD: a worktree that is not on the run's branch must never be used.
        if head_branch(&wt).as_deref() != Some(branch) {
            return Err(GitError::Git {
                context: format!("worktree {} is not on branch {branch}", path.display()),
                source: git2::Error::from_str("move or delete that folder, then resume"),
            });
        }
        return Ok(wt);
    }
    let br = match repo.find_branch(branch, BranchType::Local) {
        Ok(b) => b,
        Err(_) => repo
            .branch(branch, &base, false)
            .map_err(ctx(format!("create branch {branch}")))?,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    // A stale registration (folder deleted by hand) would make `worktree` fail; prune it.
    if let Ok(wt) = repo.find_worktree(name)
        && wt.validate().is_err()
    {
        let mut opts = git2::WorktreePruneOptions::new();
        opts.valid(true).working_tree(true);
        let _ = wt.prune(Some(&mut opts));
    }
    let reference = br.into_reference();
    let mut opts = WorktreeAddOptions::new();
    opts.reference(Some(&reference));
    let wt = repo
        .worktree(name, path, Some(&opts))
        .map_err(ctx(format!("add worktree {}", path.display())))?;
    Repository::open_from_worktree(&wt).map_err(ctx("open new worktree"))
}

/// Frees a finished run's branch: the worktree's HEAD is detached at the branch's tip, so the
/// branch is checked out nowhere and `git switch`, `git checkout` or `git merge` of it work
/// in the user's tree at once (the worktree stays, for a resume or the next run to take over).
/// A branch with no commit after `base` is deleted. Returns whether it was.
pub fn release_branch(
    repo: &Repository,
    wt: Option<&Repository>,
    branch: &str,
    base: &str,
) -> Result<bool> {
    if let Some(wt) = wt
        && head_branch(wt).as_deref() == Some(branch)
    {
        let tip = wt
            .head()
            .and_then(|h| h.peel_to_commit())
            .map_err(ctx("read the worktree's HEAD"))?;
        wt.set_head_detached(tip.id())
            .map_err(ctx(format!("detach the worktree's HEAD from {branch}")))?;
    }
    let Ok(mut br) = repo.find_branch(branch, BranchType::Local) else {
        return Ok(false);
    };
    let tip = br
        .get()
        .peel_to_commit()
        .map_err(ctx(format!("read branch {branch}")))?;
    if tip.id().to_string() != base {
        return Ok(false);
    }
    br.delete()
        .map_err(ctx(format!("delete the empty branch {branch}")))?;
    Ok(true)
}

/// Whether a local branch of that name exists.
pub fn branch_exists(repo: &Repository, branch: &str) -> bool {
    repo.find_branch(branch, BranchType::Local).is_ok()
}

/// Paths of the user's working tree that differ from HEAD (staged, modified, deleted or
/// untracked, not ignored; an untracked folder counts once), sorted. Noctune's cache is not
/// one of them.
pub fn uncommitted_changes(repo: &Repository) -> Result<Vec<String>> {
    let mut opts = git2::StatusOptions::new();
    opts.include_untracked(true)
        .recurse_untracked_dirs(false)
        .include_ignored(false)
        .exclude_submodules(true);
    let statuses = repo.statuses(Some(&mut opts)).map_err(ctx("status"))?;
    let mut out: Vec<String> = statuses
        .iter()
        .filter(|s| s.status() != git2::Status::CURRENT && !s.status().is_ignored())
        .filter_map(|s| s.path().ok().map(str::to_string))
        .filter(|p| !never_staged(p))
        .collect();
    out.sort();
    out.dedup();
    Ok(out)
}

/// Moves an existing worktree from `from` to `to` (the folder and libgit2's link back to it),
/// then checks out a new branch `branch` at `base` (the new run's start) in it. Only files that
/// differ between the old and the new commit are rewritten, which is what makes recycling a
/// finished run's worktree much cheaper than a fresh checkout of a large repository.
pub fn recycle_worktree(
    repo: &Repository,
    from: &Path,
    to: &Path,
    branch: &str,
    base: &str,
) -> Result<Repository> {
    let link = std::fs::read_to_string(from.join(".git"))?;
    let admin = PathBuf::from(
        link.trim()
            .strip_prefix("gitdir:")
            .map(str::trim)
            .ok_or_else(|| GitError::NotARepo(from.to_path_buf()))?,
    );
    if !admin.join("gitdir").is_file() {
        return Err(GitError::NotARepo(from.to_path_buf()));
    }
    // Switch branches first, in place: if that fails nothing has moved.
    let head = repo
        .find_commit(git2::Oid::from_str(base).map_err(ctx(format!("commit id {base}")))?)
        .map_err(ctx(format!("find the run's base commit {base}")))?;
    if repo.find_branch(branch, BranchType::Local).is_err() {
        repo.branch(branch, &head, false)
            .map_err(ctx(format!("create branch {branch}")))?;
    }
    {
        let wt =
            Repository::open(from).map_err(ctx(format!("open worktree {}", from.display())))?;
        let target = wt
            .find_commit(head.id())
            .map_err(ctx("find HEAD commit in the worktree"))?;
        reset_worktree_to(&wt, &target)?;
        wt.set_head(&format!("refs/heads/{branch}"))
            .map_err(ctx(format!("switch to {branch}")))?;
    }
    std::fs::rename(from, to)?;
    std::fs::write(
        admin.join("gitdir"),
        format!("{}\n", to.join(".git").display()),
    )?;
    let wt =
        Repository::open(to).map_err(ctx(format!("open recycled worktree {}", to.display())))?;
    if head_branch(&wt).as_deref() != Some(branch) {
        return Err(GitError::Git {
            context: format!("recycled worktree is not on {branch}"),
            source: git2::Error::from_str("HEAD mismatch"),
        });
    }
    Ok(wt)
}

/// Makes `wt`'s files and index exactly `target`'s tree (untracked and ignored files removed),
/// writing only what differs: the paths its HEAD and `target` differ in, plus whatever the
/// worktree has dirty, staged, untracked or ignored against its HEAD. A forced checkout of the
/// whole tree costs seconds on a large repository (it re-hashes every file whose index stat
/// data is racy); a status scan and a tree-to-tree diff do not.
fn reset_worktree_to(wt: &Repository, target: &git2::Commit) -> Result<()> {
    let full = || {
        let mut cb = git2::build::CheckoutBuilder::new();
        cb.force().remove_untracked(true).remove_ignored(true);
        wt.checkout_tree(target.as_object(), Some(&mut cb))
            .map_err(ctx("check out the new branch"))
    };
    let target_tree = target.tree().map_err(ctx("read the new base's tree"))?;
    let (Ok(old_tree), Some(workdir)) = (wt.head().and_then(|h| h.peel_to_tree()), wt.workdir())
    else {
        return full();
    };
    let workdir = workdir.to_path_buf();
    let mut idx = wt.index().map_err(ctx("index"))?;
    // A conflicted index is rare and odd: let the full checkout deal with it.
    if idx.has_conflicts() {
        return full();
    }
    let mut tracked: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    let diff = wt
        .diff_tree_to_tree(Some(&old_tree), Some(&target_tree), None)
        .map_err(ctx("diff the worktree's HEAD against the new base"))?;
    for d in diff.deltas() {
        for f in [d.old_file(), d.new_file()] {
            if let Some(p) = f.path().and_then(Path::to_str) {
                tracked.insert(p.to_string());
            }
        }
    }
    let mut opts = git2::StatusOptions::new();
    opts.include_untracked(true)
        .recurse_untracked_dirs(false)
        .include_ignored(true)
        .recurse_ignored_dirs(false)
        .renames_head_to_index(false)
        .renames_index_to_workdir(false);
    let statuses = wt.statuses(Some(&mut opts)).map_err(ctx("status"))?;
    let mut stray: Vec<String> = Vec::new();
    for s in statuses.iter() {
        let st = s.status();
        let Ok(p) = s.path().map(str::to_string) else {
            // A path that is not UTF-8: only the full checkout can be trusted with it.
            return full();
        };
        if st.is_empty() || st == git2::Status::CURRENT {
            continue;
        }
        if st.intersects(git2::Status::WT_NEW | git2::Status::IGNORED)
            && !st.intersects(
                git2::Status::INDEX_NEW
                    | git2::Status::INDEX_MODIFIED
                    | git2::Status::INDEX_DELETED
                    | git2::Status::INDEX_TYPECHANGE
                    | git2::Status::INDEX_RENAMED,
            )
        {
            stray.push(p);
        } else {
            tracked.insert(p);
        }
    }
    // Untracked and ignored entries (a folder is listed once, as `dir/`) go first, so the
    // checkout below can put the new base's files where they were.
    for p in &stray {
        let at = workdir.join(p.trim_end_matches('/'));
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.is_dir() => std::fs::remove_dir_all(&at)?,
            Ok(_) => std::fs::remove_file(&at)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
    }
    let mut cb = git2::build::CheckoutBuilder::new();
    cb.force().disable_pathspec_match(true);
    let mut any = false;
    for p in &tracked {
        if target_tree.get_path(Path::new(p)).is_ok() {
            cb.path(p);
            any = true;
        } else {
            match std::fs::symlink_metadata(workdir.join(p)) {
                Ok(m) if m.is_dir() => std::fs::remove_dir_all(workdir.join(p))?,
                Ok(_) => std::fs::remove_file(workdir.join(p))?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
            remove_empty_parents(&workdir, p);
        }
    }
    if any {
        wt.checkout_tree(target_tree.as_object(), Some(&mut cb))
            .map_err(ctx("check out the new base's changed files"))?;
    }
    // The index is the new base's tree exactly (staged leftovers dropped); entries whose
    // content did not change keep their stat data, so the next status stays cheap.
    idx.read(true).map_err(ctx("re-read index"))?;
    idx.read_tree(&target_tree).map_err(ctx("reset index"))?;
    idx.write().map_err(ctx("write index"))?;
    Ok(())
}

/// Removes the folders above `rel` that its removal left empty (git tracks no folders; an
/// empty one left behind would still be a Python namespace package).
fn remove_empty_parents(workdir: &Path, rel: &str) {
    let mut p = Path::new(rel).parent();
    while let Some(dir) = p.filter(|d| !d.as_os_str().is_empty()) {
        if std::fs::remove_dir(workdir.join(dir)).is_err() {
            break;
        }
        p = dir.parent();
    }
}

/// Paths (repo-relative, `/`-separated) that differ between the working tree and HEAD,
/// including new untracked files (but not ignored ones).
pub fn changed_files(wt: &Repository) -> Result<Vec<String>> {
    let mut opts = git2::StatusOptions::new();
    opts.include_untracked(true)
        .recurse_untracked_dirs(true)
        .include_ignored(false);
    let statuses = wt.statuses(Some(&mut opts)).map_err(ctx("status"))?;
    let mut out: Vec<String> = statuses
        .iter()
        .filter(|s| !s.status().is_empty() && s.status() != git2::Status::CURRENT)
        .filter_map(|s| s.path().ok().map(str::to_string))
        .collect();
    out.sort();
    out.dedup();
    Ok(out)
}

/// The content of `path` in HEAD, or `None` when HEAD has no such file.
pub fn head_blob(wt: &Repository, path: &str) -> Result<Option<Vec<u8>>> {
    let tree = wt
        .head()
        .and_then(|h| h.peel_to_tree())
        .map_err(ctx("read HEAD tree"))?;
    match tree.get_path(Path::new(path)) {
        Ok(entry) => {
            let obj = entry.to_object(wt).map_err(ctx(format!("read {path}")))?;
            Ok(obj.as_blob().map(|b| b.content().to_vec()))
        }
        Err(_) => Ok(None),
    }
}

/// Every file path in HEAD's tree, sorted.
pub fn head_files(wt: &Repository) -> Result<Vec<String>> {
    let tree = wt
        .head()
        .and_then(|h| h.peel_to_tree())
        .map_err(ctx("read HEAD tree"))?;
    let mut out = Vec::new();
    tree.walk(git2::TreeWalkMode::PreOrder, |dir, entry| {
        if entry.kind() == Some(git2::ObjectType::Blob)
            && let Ok(name) = entry.name()
        {
            out.push(format!("{dir}{name}"));
        }
        git2::TreeWalkResult::Ok
    })
    .map_err(ctx("walk HEAD tree"))?;
    out.sort();
    Ok(out)
}

/// Restores the working tree to HEAD: modified files get their HEAD content back and
/// untracked files are removed. Used to roll back a failed or interrupted patchset.
pub fn restore_to_head(wt: &Repository) -> Result<()> {
    let mut cb = git2::build::CheckoutBuilder::new();
    cb.force().remove_untracked(true);
    wt.checkout_head(Some(&mut cb))
        .map_err(ctx("restore worktree to HEAD"))?;
    let mut idx = wt.index().map_err(ctx("index"))?;
    let tree = wt
        .head()
        .and_then(|h| h.peel_to_tree())
        .map_err(ctx("HEAD tree"))?;
    idx.read_tree(&tree).map_err(ctx("reset index"))?;
    idx.write().map_err(ctx("write index"))?;
    Ok(())
}

/// Restores just `paths` to HEAD (files HEAD lacks are removed): the cheap rollback when the
/// caller knows what changed.
pub fn restore_paths(wt: &Repository, paths: &[String]) -> Result<()> {
    if paths.is_empty() {
        return Ok(());
    }
    let workdir = wt
        .workdir()
        .ok_or_else(|| GitError::NotARepo(wt.path().to_path_buf()))?
        .to_path_buf();
    let tree = wt
        .head()
        .and_then(|h| h.peel_to_tree())
        .map_err(ctx("HEAD tree"))?;
    let mut cb = git2::build::CheckoutBuilder::new();
    cb.force().disable_pathspec_match(true);
    let mut any_tracked = false;
    for p in paths {
        if tree.get_path(Path::new(p)).is_ok() {
            cb.path(p);
            any_tracked = true;
        } else {
            let _ = std::fs::remove_file(workdir.join(p));
        }
    }
    if any_tracked {
        wt.checkout_head(Some(&mut cb))
            .map_err(ctx("restore files to HEAD"))?;
    }
    Ok(())
}

/// Restores the working tree to HEAD only if something differs (a status scan is much
/// cheaper than a forced checkout of every file).
pub fn ensure_clean(wt: &Repository) -> Result<()> {
    let dirty = changed_files(wt)?;
    if dirty.is_empty() {
        Ok(())
    } else {
        restore_to_head(wt)
    }
}

/// Folders a commit never stages, at any depth, whatever the caller passes and whatever a
/// `.gitignore` says (or no longer says): Noctune's cache, which holds chat transcripts (with
/// what the model read), edit backups and grants. The name is `noctune_util::cache::CACHE_DIR`
/// (this crate depends on none of ours; the engine's tests check the two agree).
pub const NEVER_STAGED: [&str; 1] = [".noctune_cache"];

fn never_staged(path: &str) -> bool {
    path.split('/')
        .any(|c| NEVER_STAGED.iter().any(|n| c.eq_ignore_ascii_case(n)))
}

/// Stages `paths` (added, modified or deleted) and commits them on the worktree's branch.
/// Paths under [`NEVER_STAGED`] are left out.
pub fn commit_paths(wt: &Repository, paths: &[String], message: &str) -> Result<String> {
    let mut idx = wt.index().map_err(ctx("index"))?;
    let workdir = wt
        .workdir()
        .ok_or_else(|| GitError::NotARepo(wt.path().to_path_buf()))?;
    for p in paths.iter().filter(|p| !never_staged(p)) {
        if workdir.join(p).exists() {
            idx.add_path(Path::new(p))
                .map_err(ctx(format!("stage {p}")))?;
        } else {
            idx.remove_path(Path::new(p))
                .map_err(ctx(format!("stage removal of {p}")))?;
        }
    }
    idx.write().map_err(ctx("write index"))?;
    let tree_id = idx.write_tree().map_err(ctx("write tree"))?;
    let tree = wt.find_tree(tree_id).map_err(ctx("find tree"))?;
    let parent = wt
        .head()
        .and_then(|h| h.peel_to_commit())
        .map_err(ctx("read HEAD"))?;
    let sig = signature(wt);
    let id = wt
        .commit(Some("HEAD"), &sig, &sig, message, &tree, &[&parent])
        .map_err(ctx("commit"))?;
    Ok(id.to_string())
}

fn signature(repo: &Repository) -> Signature<'static> {
    repo.signature()
        .map(|s| s.to_owned())
        .or_else(|_| Signature::now("Noctune Studio", "noctune@localhost"))
        .unwrap_or_else(|_| {
            Signature::new(
                "Noctune Studio",
                "noctune@localhost",
                &git2::Time::new(0, 0),
            )
            .expect("static signature is valid")
        })
}

/// Commits on `branch` after `base` (oldest first): `(sha, summary)`.
pub fn commits_since(repo: &Repository, branch: &str, base: &str) -> Result<Vec<(String, String)>> {
    let tip = repo
        .find_branch(branch, BranchType::Local)
        .and_then(|b| b.get().peel_to_commit())
        .map_err(ctx(format!("find branch {branch}")))?;
    let mut walk = repo.revwalk().map_err(ctx("revwalk"))?;
    walk.push(tip.id()).map_err(ctx("revwalk"))?;
    if let Ok(base) = git2::Oid::from_str(base) {
        let _ = walk.hide(base);
    }
    walk.set_sorting(git2::Sort::TOPOLOGICAL | git2::Sort::REVERSE)
        .map_err(ctx("revwalk"))?;
    let mut out = Vec::new();
    for oid in walk {
        let oid = oid.map_err(ctx("revwalk"))?;
        let c = repo.find_commit(oid).map_err(ctx("find commit"))?;
        out.push((
            oid.to_string(),
            c.summary().ok().flatten().unwrap_or("").to_string(),
        ));
    }
    Ok(out)
}

/// Writes `content` as a blob to the repository's object store (shared by its worktrees) and
/// returns its id. Content git already has (a file of the base commit) is not written again.
pub fn write_blob(repo: &Repository, content: &[u8]) -> Result<String> {
    Ok(repo.blob(content).map_err(ctx("write a blob"))?.to_string())
}

/// The content of blob `id`; `None` when the object store has no such blob (or it is not one).
pub fn read_blob(repo: &Repository, id: &str) -> Result<Option<Vec<u8>>> {
    let oid = git2::Oid::from_str(id).map_err(ctx(format!("blob id {id}")))?;
    match repo.find_blob(oid) {
        Ok(b) => Ok(Some(b.content().to_vec())),
        Err(e) if e.code() == git2::ErrorCode::NotFound => Ok(None),
        Err(e) => Err(ctx(format!("read blob {id}"))(e)),
    }
}

/// The id git gives `content` as a blob, without writing it.
pub fn blob_id(content: &[u8]) -> Result<String> {
    Ok(git2::Oid::hash_object(git2::ObjectType::Blob, content)
        .map_err(ctx("hash a blob"))?
        .to_string())
}

/// Keeps blobs reachable, so `git gc` never prunes them: `refname` (under `refs/noctune/`)
/// points at a tree with one entry per blob, named by its id; ids it holds already are left
/// as they are. Returns whether the ref changed.
pub fn keep_blobs(repo: &Repository, refname: &str, ids: &[String]) -> Result<bool> {
    let current = match repo.find_reference(refname) {
        Ok(r) => Some(r.peel_to_tree().map_err(ctx(format!("read {refname}")))?),
        Err(e) if e.code() == git2::ErrorCode::NotFound => None,
        Err(e) => return Err(ctx(format!("read {refname}"))(e)),
    };
    let mut tb = repo
        .treebuilder(current.as_ref())
        .map_err(ctx("build a tree"))?;
    let mut added = false;
    for id in ids {
        if tb.get(id).ok().flatten().is_some() {
            continue;
        }
        let oid = git2::Oid::from_str(id).map_err(ctx(format!("blob id {id}")))?;
        tb.insert(id, oid, i32::from(git2::FileMode::Blob))
            .map_err(ctx(format!("keep blob {id}")))?;
        added = true;
    }
    if !added {
        return Ok(false);
    }
    let tree = tb.write().map_err(ctx("write a tree"))?;
    repo.reference(refname, tree, true, "noctune: keep approval blobs")
        .map_err(ctx(format!("update {refname}")))?;
    Ok(true)
}

/// Deletes a ref if it exists (what [`keep_blobs`] kept becomes prunable). Returns whether it
/// existed.
pub fn drop_ref(repo: &Repository, refname: &str) -> Result<bool> {
    match repo.find_reference(refname) {
        Ok(mut r) => {
            r.delete().map_err(ctx(format!("delete {refname}")))?;
            Ok(true)
        }
        Err(e) if e.code() == git2::ErrorCode::NotFound => Ok(false),
        Err(e) => Err(ctx(format!("read {refname}"))(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_blobs_are_written_once_and_reachable_from_the_ref() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(dir.path()).unwrap();
        let a = write_blob(&repo, b"a = 1\n").unwrap();
        assert_eq!(a, blob_id(b"a = 1\n").unwrap());
        assert_eq!(write_blob(&repo, b"a = 1\n").unwrap(), a);
        let b = write_blob(&repo, b"b = 2\n").unwrap();
        let name = "refs/noctune/runs/r1";
        assert!(keep_blobs(&repo, name, std::slice::from_ref(&a)).unwrap());
        assert!(keep_blobs(&repo, name, &[a.clone(), b.clone()]).unwrap());
        assert!(
            !keep_blobs(&repo, name, std::slice::from_ref(&b)).unwrap(),
            "nothing new"
        );
        let tree = repo.find_reference(name).unwrap().peel_to_tree().unwrap();
        let ids: Vec<String> = tree.iter().map(|e| e.id().to_string()).collect();
        assert_eq!(ids.len(), 2);
        assert!(ids.contains(&a) && ids.contains(&b));
        assert_eq!(
            read_blob(&repo, &b).unwrap().as_deref(),
            Some(&b"b = 2\n"[..])
        );
        let missing = blob_id(b"never written").unwrap();
        assert_eq!(read_blob(&repo, &missing).unwrap(), None);
        assert!(drop_ref(&repo, name).unwrap());
        assert!(!drop_ref(&repo, name).unwrap());
    }

    fn write(root: &Path, rel: &str, body: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }

    /// Everything in `root` but `.git`, as (path, content), sorted.
    fn files(root: &Path) -> Vec<(String, String)> {
        fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
            for e in std::fs::read_dir(dir).unwrap().flatten() {
                if e.file_name() == ".git" {
                    continue;
                }
                let rel = e
                    .path()
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                if e.file_type().unwrap().is_dir() {
                    out.push((format!("{rel}/"), String::new()));
                    walk(root, &e.path(), out);
                } else {
                    out.push((rel, std::fs::read_to_string(e.path()).unwrap()));
                }
            }
        }
        let mut out = Vec::new();
        walk(root, root, &mut out);
        out.sort();
        out
    }

    #[test]
    fn a_recycled_dirty_worktree_is_exactly_the_new_base() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("repo");
        let repo = Repository::init(&root).unwrap();
        let sig = Signature::now("t", "t@example.com").unwrap();
        write(&root, ".gitignore", "*.pyc\nbuild/\n");
        write(&root, "keep.py", "keep = 1\n");
        write(&root, "pkg/changed.py", "v = 'base'\n");
        write(&root, "pkg/gone_later.py", "g = 1\n");
        write(&root, "edited.py", "e = 1\n");
        write(&root, "deleted.py", "d = 1\n");
        write(&root, "staged.py", "s = 1\n");
        let mut idx = repo.index().unwrap();
        idx.add_all(["*"], git2::IndexAddOption::DEFAULT, None)
            .unwrap();
        idx.write().unwrap();
        let tree = repo.find_tree(idx.write_tree().unwrap()).unwrap();
        let base = repo
            .commit(Some("HEAD"), &sig, &sig, "base", &tree, &[])
            .unwrap();
        let base = base.to_string();
        let want = files(&root);

        // The previous run: its branch changed, added and deleted files, then was left dirty.
        let old = dir.path().join("wts/old");
        let wt = ensure_worktree(&repo, "old", &old, "run-old", &base).unwrap();
        write(&old, "pkg/changed.py", "v = 'fixed'\n");
        write(&old, "pkg/new_on_branch.py", "n = 1\n");
        std::fs::remove_file(old.join("pkg/gone_later.py")).unwrap();
        commit_paths(
            &wt,
            &[
                "pkg/changed.py".into(),
                "pkg/new_on_branch.py".into(),
                "pkg/gone_later.py".into(),
            ],
            "fix",
        )
        .unwrap();
        write(&old, "edited.py", "e = 'dirty'\n");
        std::fs::remove_file(old.join("deleted.py")).unwrap();
        write(&old, "staged.py", "s = 'staged'\n");
        write(&old, "staged_new.py", "sn = 1\n");
        let mut widx = wt.index().unwrap();
        widx.add_path(Path::new("staged.py")).unwrap();
        widx.add_path(Path::new("staged_new.py")).unwrap();
        widx.write().unwrap();
        write(&old, "untracked.py", "u = 1\n");
        write(&old, "newdir/deep/u.py", "u = 1\n");
        write(&old, "pkg/cache.pyc", "junk");
        write(&old, "build/out.txt", "junk");
        drop(wt);

        let to = dir.path().join("wts/new");
        let wt = recycle_worktree(&repo, &old, &to, "run-new", &base).unwrap();
        assert_eq!(
            files(&to),
            want,
            "the files are the new base's, nothing more"
        );
        let mut opts = git2::StatusOptions::new();
        opts.include_untracked(true).include_ignored(true);
        let dirty: Vec<String> = wt
            .statuses(Some(&mut opts))
            .unwrap()
            .iter()
            .map(|s| format!("{:?} {}", s.status(), s.path().unwrap_or("")))
            .collect();
        assert!(dirty.is_empty(), "clean, index included: {dirty:?}");
        assert_eq!(head_branch(&wt).as_deref(), Some("run-new"));
        assert_eq!(head_sha(&wt).unwrap(), base);
    }

    #[test]
    fn the_cache_is_never_staged_at_any_depth() {
        for p in [
            ".noctune_cache/studio_chat/sessions/s1.json",
            ".NOCTUNE_CACHE/x",
            "sub/.noctune_cache/studio_edits/backups/1/.env",
        ] {
            assert!(never_staged(p), "{p}");
        }
        for p in [
            "src/noctune_cache.py",
            "noctune_cache/x",
            ".noctune_cache_old",
        ] {
            assert!(!never_staged(p), "{p}");
        }
    }
}
