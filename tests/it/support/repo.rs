//! Real git repositories made from `fixtures/`, created with libgit2 so that the test setup
//! itself never runs hooks.

use std::path::{Path, PathBuf};

pub fn fixture_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name == "__pycache__"
            || name == ".pytest_cache"
            || name == ".ruff_cache"
            || name == ".noctune_cache"
        {
            continue;
        }
        let target = to.join(&name);
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A git repository in a temp dir with the fixture's files committed on `main`.
pub struct FixtureRepo {
    pub dir: tempfile::TempDir,
}

impl FixtureRepo {
    /// `extra`: files (path, content) written before the first commit.
    pub fn new(fixture: &str, extra: &[(&str, &str)]) -> FixtureRepo {
        let dir = tempfile::Builder::new()
            .prefix("noctune-repo-")
            .tempdir()
            .unwrap();
        copy_dir(&fixture_dir(fixture), dir.path());
        for (path, content) in extra {
            let p = dir.path().join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, content).unwrap();
        }
        let repo = git2::Repository::init_opts(
            dir.path(),
            git2::RepositoryInitOptions::new().initial_head("main"),
        )
        .unwrap();
        commit_all(&repo, "initial");
        FixtureRepo { dir }
    }

    pub fn path(&self) -> PathBuf {
        std::fs::canonicalize(self.dir.path()).unwrap()
    }

    pub fn repo(&self) -> git2::Repository {
        git2::Repository::open(self.dir.path()).unwrap()
    }

    pub fn head_sha(&self) -> String {
        self.repo()
            .head()
            .unwrap()
            .peel_to_commit()
            .unwrap()
            .id()
            .to_string()
    }

    pub fn head_branch(&self) -> String {
        self.repo().head().unwrap().shorthand().unwrap().to_string()
    }

    /// `git status --porcelain` of the user's working tree, as libgit2 sees it.
    pub fn status(&self) -> Vec<String> {
        let repo = self.repo();
        let mut opts = git2::StatusOptions::new();
        opts.include_untracked(true);
        repo.statuses(Some(&mut opts))
            .unwrap()
            .iter()
            .map(|s| format!("{:?} {}", s.status(), s.path().unwrap()))
            .collect()
    }

    pub fn read(&self, path: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(path)).unwrap()
    }

    /// Commits on `branch` after the fixture's first commit: (sha, full message).
    pub fn branch_commits(&self, branch: &str) -> Vec<(String, String)> {
        let repo = self.repo();
        let tip = repo
            .find_branch(branch, git2::BranchType::Local)
            .unwrap()
            .get()
            .peel_to_commit()
            .unwrap();
        let mut walk = repo.revwalk().unwrap();
        walk.push(tip.id()).unwrap();
        walk.hide(repo.head().unwrap().peel_to_commit().unwrap().id())
            .unwrap();
        walk.set_sorting(git2::Sort::TOPOLOGICAL | git2::Sort::REVERSE)
            .unwrap();
        walk.map(|oid| {
            let c = repo.find_commit(oid.unwrap()).unwrap();
            (c.id().to_string(), c.message().unwrap().to_string())
        })
        .collect()
    }

    /// A file's content at the tip of `branch`.
    pub fn read_at(&self, branch: &str, path: &str) -> String {
        let repo = self.repo();
        let tree = repo
            .find_branch(branch, git2::BranchType::Local)
            .unwrap()
            .get()
            .peel_to_tree()
            .unwrap();
        let blob = tree
            .get_path(Path::new(path))
            .unwrap()
            .to_object(&repo)
            .unwrap()
            .peel_to_blob()
            .unwrap();
        String::from_utf8(blob.content().to_vec()).unwrap()
    }
}

pub fn commit_all(repo: &git2::Repository, message: &str) {
    let mut idx = repo.index().unwrap();
    idx.add_all(["*"].iter(), git2::IndexAddOption::DEFAULT, None)
        .unwrap();
    idx.write().unwrap();
    let tree = repo.find_tree(idx.write_tree().unwrap()).unwrap();
    let sig = git2::Signature::now("Fixture", "fixture@example.com").unwrap();
    let parents: Vec<git2::Commit> = repo
        .head()
        .ok()
        .and_then(|h| h.peel_to_commit().ok())
        .into_iter()
        .collect();
    let parent_refs: Vec<&git2::Commit> = parents.iter().collect();
    repo.commit(Some("HEAD"), &sig, &sig, message, &tree, &parent_refs)
        .unwrap();
}
