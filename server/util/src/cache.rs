//! The layout of a repository's `.noctune_cache/` that more than one crate relies on (the
//! engine keeps runs and worktrees there, chat its sessions, backups and grants, the facade
//! restores its `.gitignore`), so that its name, its one tool-writable folder and its ignore
//! file are decided once.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

/// The cache folder, at the repository root.
pub const CACHE_DIR: &str = ".noctune_cache";

/// The one folder of the cache that chat tools may write (without a grant): the model's
/// scratch space. Everything else in the cache is Noctune's own state.
pub const SCRATCH_DIR: &str = "scratch";

/// What Noctune itself keeps in the cache (besides `SCRATCH_DIR`). A folder of this name at
/// any depth may be another repository's cache under the same allowed root, so no tool may
/// write these names in any `.noctune_cache`.
pub const OWN_ENTRIES: [&str; 8] = [
    ".gitignore",
    "studio_allow.json",
    "runs",
    "worktrees",
    "studio_edits",
    "studio_chat",
    "lsp",
    "sessions",
];

/// The content of the cache's `.gitignore`, exactly: everything in the cache is ignored, so
/// transcripts, backups and worktrees never show in `git status` or a `git add -A`.
pub const GITIGNORE: &[u8] = b"# Noctune Studio's cache: never committed\n*\n";

pub fn cache_dir(repo_root: &Path) -> PathBuf {
    repo_root.join(CACHE_DIR)
}

/// Creates `.noctune_cache/` and makes its `.gitignore` exactly [`GITIGNORE`]: a missing,
/// edited, emptied or replaced (symlink, folder) ignore file is restored. Called on every
/// start (facade open, chat, run), because anything that could write the file before (a tool,
/// a person, a checkout) would otherwise leave the cache committable for good.
pub fn ensure_cache_dir(repo_root: &Path) -> std::io::Result<PathBuf> {
    let dir = cache_dir(repo_root);
    std::fs::create_dir_all(&dir)?;
    let ignore = dir.join(".gitignore");
    match std::fs::symlink_metadata(&ignore) {
        Ok(md) if md.is_file() => {
            if std::fs::read(&ignore)? == GITIGNORE {
                return Ok(dir);
            }
        }
        // A folder by that name: ours to remove (it is inside the cache).
        Ok(md) if md.is_dir() => std::fs::remove_dir_all(&ignore)?,
        // A symlink or anything else is replaced by the rename below, never followed.
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    crate::fsx::write_atomic(&ignore, GITIGNORE)?;
    Ok(dir)
}

/// [`ensure_cache_dir`] if the repository has a cache folder already (returns whether it has):
/// for a start that writes nothing into the cache itself, which must leave a repository
/// without one untouched.
pub fn restore_if_present(repo_root: &Path) -> std::io::Result<bool> {
    match std::fs::symlink_metadata(cache_dir(repo_root)) {
        Ok(md) if md.is_dir() => ensure_cache_dir(repo_root).map(|_| true),
        Ok(_) => Ok(false),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ignore_of(root: &Path) -> Vec<u8> {
        std::fs::read(root.join(CACHE_DIR).join(".gitignore")).unwrap()
    }

    #[test]
    fn creates_and_restores_the_ignore_file() {
        let dir = std::env::temp_dir().join(format!(
            "noctune-cache-test-{}-{}",
            std::process::id(),
            crate::time::now_compact()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        ensure_cache_dir(&dir).unwrap();
        assert_eq!(ignore_of(&dir), GITIGNORE);
        let ignore = dir.join(CACHE_DIR).join(".gitignore");
        for bad in [
            &b""[..],
            b"!*\n",
            b"# Noctune Studio's cache: never committed\n*\n!x\n",
        ] {
            std::fs::write(&ignore, bad).unwrap();
            ensure_cache_dir(&dir).unwrap();
            assert_eq!(ignore_of(&dir), GITIGNORE, "after {bad:?}");
        }
        std::fs::remove_file(&ignore).unwrap();
        std::fs::create_dir_all(ignore.join("x")).unwrap();
        ensure_cache_dir(&dir).unwrap();
        assert_eq!(ignore_of(&dir), GITIGNORE, "a folder in its place");
        let elsewhere = dir.join("elsewhere");
        std::fs::write(&elsewhere, "keep").unwrap();
        std::fs::remove_file(&ignore).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &ignore).unwrap();
        ensure_cache_dir(&dir).unwrap();
        assert!(std::fs::symlink_metadata(&ignore).unwrap().is_file());
        assert_eq!(ignore_of(&dir), GITIGNORE, "a symlink in its place");
        assert_eq!(
            std::fs::read(&elsewhere).unwrap(),
            b"keep",
            "its target untouched"
        );
        std::fs::write(&ignore, "!*\n").unwrap();
        assert!(restore_if_present(&dir).unwrap());
        assert_eq!(ignore_of(&dir), GITIGNORE, "restored where present");
        let bare = dir.join("bare");
        std::fs::create_dir_all(&bare).unwrap();
        assert!(!restore_if_present(&bare).unwrap());
        assert!(
            !bare.join(CACHE_DIR).exists(),
            "no cache made where there was none"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
