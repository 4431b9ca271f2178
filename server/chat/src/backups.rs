//! The way back from chat edits: before each edit the old content is copied to
//! `<repo>/.noctune_cache/studio_edits/backups/<id>/<relative path>` and a line is appended to
//! `.noctune_cache/studio_edits/journal.jsonl`; [`undo_last`] restores the newest edit that is
//! not yet undone.
//!
//! The journal is append-only (an undo appends an `undo` line rather than rewriting the file),
//! so two processes editing the same repository cannot lose each other's lines, and a crash can
//! cost at most the last, partial line, which is skipped when read.
//!
//! Backup ids are `20261125T161558.123Z-0000`: they sort by time, and the counter (claimed by
//! creating the folder, which fails if it exists) keeps them unique within a millisecond and
//! across processes.
//!
//! Every file here is read and written through the root's open descriptor
//! ([`noctune_sandbox::RootDir`]): the backup of `<rel>` is stored under a path the model chose,
//! and the journal, the backups and the undo target are all below folders that someone could
//! swap for a symlink, so none of them is reached by walking a path string.

use noctune_sandbox::{Intent, RootDir, Sandbox, SandboxError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Relative to the repository root.
pub const EDITS_DIR: &str = ".noctune_cache/studio_edits";
pub const BACKUPS_DIR: &str = ".noctune_cache/studio_edits/backups";
pub const JOURNAL: &str = ".noctune_cache/studio_edits/journal.jsonl";

/// One chat edit, as journaled.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EditEntry {
    /// The backup id (also the backup folder's name).
    pub id: String,
    pub ts: String,
    pub session_id: String,
    /// Repository-relative, '/'-separated.
    pub path: String,
    /// The backup file, repository-relative; `None` when the file did not exist before.
    pub backup: Option<String>,
    pub existed_before: bool,
    /// sha256 of the content the edit wrote, so an undo can tell that the file changed since
    /// and refuse to throw those changes away.
    #[serde(default)]
    pub after_sha256: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum JournalLine {
    Edit(EditEntry),
    /// The edit was undone.
    Undo {
        id: String,
        ts: String,
        session_id: Option<String>,
    },
    /// The edit never landed (e.g. the editor rejected it); nothing to undo.
    Discard {
        id: String,
        ts: String,
    },
}

/// What [`undo_last`] did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UndoOutcome {
    pub id: String,
    /// Repository-relative.
    pub path: String,
    /// The backup the content came from; `None` when the file was removed instead.
    pub restored_from: Option<PathBuf>,
    /// The edit had created the file, so undo removed it.
    pub removed: bool,
    /// When the undone edit was made.
    pub edit_ts: String,
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("nothing to undo{}: no chat edit in {journal} that is not undone yet", for_session(.session_id))]
    NothingToUndo {
        journal: PathBuf,
        session_id: Option<String>,
    },
    #[error("cannot read the edit journal {path}: {source}")]
    Journal {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the edit journal entry {id} is unusable ({detail}); the journal may have been edited by hand. Restore from {backups} yourself"
    )]
    BadEntry {
        id: String,
        detail: String,
        backups: PathBuf,
    },
    #[error("cannot undo the edit of {path}: {source}")]
    Sandbox { path: String, source: SandboxError },
    #[error("the backup {backup} of {path} is missing: {source}; it cannot be restored")]
    BackupMissing {
        path: String,
        backup: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} changed after the chat edit {id} (by you or another tool); undoing would throw those changes away. Undo it by hand from {backup}, or force the undo"
    )]
    ChangedSince {
        id: String,
        path: String,
        backup: String,
    },
}

fn for_session(s: &Option<String>) -> String {
    s.as_ref()
        .map(|s| format!(" in session {s}"))
        .unwrap_or_default()
}

/// What [`record_edit`] needs to know about one edit.
#[derive(Debug, Clone, Copy)]
pub struct EditRecord<'a> {
    pub session_id: &'a str,
    /// Repository-relative, '/'-separated, no `..`.
    pub rel: &'a str,
    /// The content before the edit; `None` if the file did not exist.
    pub before: Option<&'a [u8]>,
    /// The content the edit writes, if known (enables the "changed since" check of undo).
    pub after: Option<&'a [u8]>,
}

/// Backs up `content` (the current content of `rel`, which exists) before an edit, and
/// journals it with no session. Returns the backup file.
pub fn backup(repo_root: &Path, rel: &str, content: &[u8]) -> std::io::Result<PathBuf> {
    let entry = record_edit(
        &RootDir::open(repo_root)?,
        &EditRecord {
            session_id: "",
            rel,
            before: Some(content),
            after: None,
        },
    )?;
    Ok(entry
        .backup
        .map(|b| repo_root.join(b))
        .unwrap_or_else(|| repo_root.join(BACKUPS_DIR).join(&entry.id)))
}

/// Backs up the old content (if any) and appends the edit to the journal, beneath `root` (the
/// open root the edited file is in: `SafePath::root_dir`). Call before the edit is written;
/// call [`discard`] if it then does not land.
pub fn record_edit(root: &RootDir, e: &EditRecord<'_>) -> std::io::Result<EditEntry> {
    let rel = clean_rel(e.rel).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "backup path {:?} must be repository-relative without '..'",
                e.rel
            ),
        )
    })?;
    root.create_dir_all(BACKUPS_DIR)?;
    let id = claim_id(root)?;
    let backup = match e.before {
        Some(content) => {
            let rel_backup = format!("{BACKUPS_DIR}/{id}/{rel}");
            root.write_atomic(&rel_backup, content)?;
            Some(rel_backup)
        }
        None => None,
    };
    let entry = EditEntry {
        id,
        ts: noctune_util::time::now_rfc3339(),
        session_id: e.session_id.to_string(),
        path: rel,
        backup,
        existed_before: e.before.is_some(),
        after_sha256: e.after.map(sha256_hex),
    };
    append(root, &JournalLine::Edit(entry.clone()))?;
    Ok(entry)
}

/// Marks a journaled edit as never applied (the write failed or was rejected).
pub fn discard(root: &RootDir, id: &str) -> std::io::Result<()> {
    append(
        root,
        &JournalLine::Discard {
            id: id.to_string(),
            ts: noctune_util::time::now_rfc3339(),
        },
    )
}

/// The journaled edits, oldest first, each with whether it is undone (or discarded).
pub fn edits(repo_root: &Path) -> Result<Vec<(EditEntry, bool)>, BackupError> {
    let root = RootDir::open(repo_root).map_err(|e| BackupError::Journal {
        path: repo_root.join(JOURNAL),
        source: e.into(),
    })?;
    edits_in(&root)
}

fn edits_in(root: &RootDir) -> Result<Vec<(EditEntry, bool)>, BackupError> {
    let path = root.path().join(JOURNAL);
    let bytes = match root.read(JOURNAL) {
        Ok(b) => b,
        Err(SandboxError::NotFound { .. }) => return Ok(Vec::new()),
        Err(e) => {
            return Err(BackupError::Journal {
                path,
                source: e.into(),
            });
        }
    };
    // Lossy: a line broken by a crash or a hand edit is skipped below, not fatal here.
    let text = String::from_utf8_lossy(&bytes);
    let mut out: Vec<(EditEntry, bool)> = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        // A partial last line (a crash mid-append) or a foreign line is skipped.
        let Ok(parsed) = serde_json::from_str::<JournalLine>(line) else {
            tracing::warn!("skipping an unreadable line of {}", path.display());
            continue;
        };
        match parsed {
            JournalLine::Edit(e) => out.push((e, false)),
            JournalLine::Undo { id, .. } | JournalLine::Discard { id, .. } => {
                for (_, undone) in out.iter_mut().filter(|(e, _)| e.id == id) {
                    *undone = true;
                }
            }
        }
    }
    Ok(out)
}

/// Restores the newest edit not yet undone (of `session_id`, or of any session): the old
/// content is written back, or the file removed if the edit created it. Refuses if the file
/// changed after the edit; see [`undo_last_with`] to force.
pub fn undo_last(repo_root: &Path, session_id: Option<&str>) -> Result<UndoOutcome, BackupError> {
    undo_last_with(repo_root, session_id, false)
}

/// [`undo_last`]; with `force`, also when the file changed after the edit.
pub fn undo_last_with(
    repo_root: &Path,
    session_id: Option<&str>,
    force: bool,
) -> Result<UndoOutcome, BackupError> {
    // Everything below goes through the sandbox like any chat write: a folder swapped for a
    // symlink since the edit must not redirect the restore (or the backup read) outside.
    let sandbox =
        Sandbox::new(vec![repo_root.to_path_buf()]).map_err(|e| BackupError::Journal {
            path: repo_root.join(JOURNAL),
            source: e.into(),
        })?;
    let root = &sandbox.root_dirs()[0];
    let entry = edits_in(root)?
        .into_iter()
        .rev()
        .find(|(e, undone)| !undone && session_id.is_none_or(|s| e.session_id == s))
        .map(|(e, _)| e)
        .ok_or_else(|| BackupError::NothingToUndo {
            journal: repo_root.join(JOURNAL),
            session_id: session_id.map(str::to_string),
        })?;
    let bad = |detail: &str| BackupError::BadEntry {
        id: entry.id.clone(),
        detail: detail.to_string(),
        backups: repo_root.join(BACKUPS_DIR),
    };
    if clean_rel(&entry.path).as_deref() != Some(entry.path.as_str()) {
        return Err(bad("its path is not a plain repository-relative path"));
    }
    let refused = |source| BackupError::Sandbox {
        path: entry.path.clone(),
        source,
    };
    let target = sandbox
        .resolve(&sandbox.roots()[0], &entry.path, Intent::Write)
        .map_err(refused)?;
    let current = match sandbox.read(&target) {
        Ok(bytes) => Some(bytes),
        Err(SandboxError::NotFound { .. }) => None,
        Err(e) => return Err(refused(e)),
    };
    if let Some(after) = &entry.after_sha256
        && !force
        && current.as_deref().map(sha256_hex).as_ref() != Some(after)
    {
        return Err(BackupError::ChangedSince {
            id: entry.id.clone(),
            path: entry.path.clone(),
            backup: entry
                .backup
                .clone()
                .unwrap_or_else(|| "(the file did not exist)".into()),
        });
    }
    let mut outcome = UndoOutcome {
        id: entry.id.clone(),
        path: entry.path.clone(),
        restored_from: None,
        removed: false,
        edit_ts: entry.ts.clone(),
    };
    if entry.existed_before {
        let rel_backup = entry
            .backup
            .as_deref()
            .ok_or_else(|| bad("it has no backup"))?;
        let expected = format!("{BACKUPS_DIR}/{}/{}", entry.id, entry.path);
        if rel_backup != expected {
            return Err(bad("its backup is not where noctune writes backups"));
        }
        let backup_abs = repo_root.join(rel_backup);
        let content = root
            .read(rel_backup)
            .map_err(|e| BackupError::BackupMissing {
                path: entry.path.clone(),
                backup: backup_abs.clone(),
                source: e.into(),
            })?;
        sandbox.write_atomic(&target, &content).map_err(refused)?;
        outcome.restored_from = Some(backup_abs);
    } else if current.is_some() {
        sandbox.remove(&target).map_err(refused)?;
        outcome.removed = true;
    }
    append(
        root,
        &JournalLine::Undo {
            id: entry.id.clone(),
            ts: noctune_util::time::now_rfc3339(),
            session_id: session_id.map(str::to_string),
        },
    )
    .map_err(|source| BackupError::Journal {
        path: repo_root.join(JOURNAL),
        source,
    })?;
    Ok(outcome)
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut s = String::with_capacity(64);
    for b in digest {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// `rel` with `.` and empty parts dropped; `None` if absolute, empty, or with `..` or `\`.
fn clean_rel(rel: &str) -> Option<String> {
    if rel.starts_with('/') || rel.contains('\\') || rel.contains('\0') {
        return None;
    }
    let parts: Vec<&str> = rel
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    if parts.is_empty() || parts.contains(&"..") {
        return None;
    }
    Some(parts.join("/"))
}

/// Claims a fresh backup id by creating its folder under [`BACKUPS_DIR`] (which fails if
/// another edit, in this or another process, took it first).
fn claim_id(root: &RootDir) -> std::io::Result<String> {
    let now = noctune_util::time::now_rfc3339().replace(['-', ':'], "");
    for n in 0..10_000u32 {
        let id = format!("{now}-{n:04}");
        if root.create_dir(&format!("{BACKUPS_DIR}/{id}"))? {
            return Ok(id);
        }
    }
    Err(std::io::Error::other(format!(
        "no free backup id under {} for {now}",
        root.path().join(BACKUPS_DIR).display()
    )))
}

fn append(root: &RootDir, line: &JournalLine) -> std::io::Result<()> {
    let mut f = root.open_append(JOURNAL)?;
    // A crash mid-append leaves a last line without its newline; start on a fresh line so
    // this one is not glued to it (and lost with it).
    let mut bytes = Vec::new();
    if ends_without_newline(&mut f)? {
        bytes.push(b'\n');
    }
    serde_json::to_writer(&mut bytes, line).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    // One write of one line with O_APPEND: concurrent appenders do not interleave.
    f.write_all(&bytes)?;
    f.sync_data()
}

fn ends_without_newline(f: &mut std::fs::File) -> std::io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    let len = f.metadata()?.len();
    if len == 0 {
        return Ok(false);
    }
    f.seek(SeekFrom::Start(len - 1))?;
    let mut last = [0u8; 1];
    f.read_exact(&mut last)?;
    Ok(last[0] != b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_and_are_unique() {
        let d = tempfile::tempdir().unwrap();
        let root = RootDir::open(d.path()).unwrap();
        let ids: Vec<String> = (0..50).map(|_| claim_id(&root).unwrap()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted, ids);
    }

    #[test]
    fn clean_rel_refuses_escapes() {
        assert_eq!(clean_rel("./a//b.py").as_deref(), Some("a/b.py"));
        assert_eq!(clean_rel("../x"), None);
        assert_eq!(clean_rel("/etc/passwd"), None);
        assert_eq!(clean_rel(""), None);
    }

    #[test]
    fn partial_journal_line_is_skipped() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        std::fs::write(root.join("a.txt"), "one").unwrap();
        record_edit(
            &RootDir::open(root).unwrap(),
            &EditRecord {
                session_id: "s",
                rel: "a.txt",
                before: Some(b"one"),
                after: Some(b"two"),
            },
        )
        .unwrap();
        std::fs::write(root.join("a.txt"), "two").unwrap();
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(root.join(JOURNAL))
            .unwrap();
        f.write_all(b"{\"kind\":\"edit\",\"id\":").unwrap();
        let out = undo_last(root, Some("s")).unwrap();
        assert_eq!(out.path, "a.txt");
        assert_eq!(std::fs::read_to_string(root.join("a.txt")).unwrap(), "one");
        assert!(
            matches!(
                undo_last(root, Some("s")),
                Err(BackupError::NothingToUndo { .. })
            ),
            "the undo line after the partial one was read"
        );
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn an_edit_never_writes_its_backup_or_journal_through_a_link_out() {
        let d = tempfile::tempdir().unwrap();
        let (root, outside) = (d.path().join("repo"), d.path().join("outside"));
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(root.join("a.txt"), "one").unwrap();
        std::os::unix::fs::symlink(&outside, root.join(".noctune_cache")).unwrap();
        let e = record_edit(
            &RootDir::open(&root).unwrap(),
            &EditRecord {
                session_id: "s",
                rel: "a.txt",
                before: Some(b"one"),
                after: Some(b"two"),
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("leads outside"), "{e}");
        assert!(names(&outside).is_empty(), "{:?}", names(&outside));
    }

    #[test]
    fn undo_never_restores_from_a_backup_reached_through_a_link_out() {
        let d = tempfile::tempdir().unwrap();
        let (root, outside) = (d.path().join("repo"), d.path().join("outside"));
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(root.join("a.txt"), "one").unwrap();
        let entry = record_edit(
            &RootDir::open(&root).unwrap(),
            &EditRecord {
                session_id: "s",
                rel: "a.txt",
                before: Some(b"one"),
                after: Some(b"two"),
            },
        )
        .unwrap();
        std::fs::write(root.join("a.txt"), "two").unwrap();
        // The backup folder is swapped for a link to a folder outside with a secret `a.txt`:
        // restoring from it would copy the secret into the repository.
        let id_dir = root.join(BACKUPS_DIR).join(&entry.id);
        std::fs::rename(&id_dir, d.path().join("moved")).unwrap();
        std::fs::write(outside.join("a.txt"), "secret").unwrap();
        std::os::unix::fs::symlink(&outside, &id_dir).unwrap();
        let e = undo_last(&root, Some("s")).unwrap_err();
        assert!(matches!(e, BackupError::BackupMissing { .. }), "{e}");
        assert!(e.to_string().contains("leads outside"), "{e}");
        assert_eq!(std::fs::read_to_string(root.join("a.txt")).unwrap(), "two");
    }
}
