//! The gates' answers kept between runs, keyed by what they depend on: a second run on the
//! same commit asks ruff and the parser about the same texts again, and on a large tree those
//! answers are most of the run's own time (Django: about 1.7 CPU-seconds of 4.6).
//!
//! Two memos, each one JSON file beside the audit DB (outside the repository: a cloned
//! repository cannot ship answers, and no chat tool can write them):
//! - the module-level names an edit removes: a pure function of the two texts, keyed by their
//!   git blob ids, bound to this parser (the source of `pyindex.rs`, the grammar's version);
//! - ruff's findings in a file: they depend on the file's content, path and mode, ruff's
//!   version and settings, and which files exist (isort's first-party detection, `INP001`),
//!   not on what the other files hold. A memo is bound to ruff's `--version`, the commit's
//!   [`TreeLayout`] (every path and mode, every ruff configuration's content), the ruff
//!   configurations above the worktree and the user's own, the `RUFF_*` variables and the
//!   gate's flags, and keyed by path and blob id. So it carries over to a commit that only
//!   changes file contents (the merge of a run's branch, say), and the caller asks it only
//!   while the worktree holds the commit's files, at any content (see [`LintMemo`]).
//!
//! A memo that cannot be read (missing, corrupt, another version) is empty, one that cannot
//! be written is left as it was: either way the gate asks ruff or the parser, as without it.

use noctune_util::fsx;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// The memos' format; a file of another version is not read.
const FORMAT: u32 = 1;
/// A memo keeps at most this many entries: past it, only the last run's entries are kept.
const MAX_ENTRIES: usize = 50_000;
/// Lint memos kept (one per commit and ruff setup); the least recently used go first.
const MAX_LINT_MEMOS: usize = 8;

#[derive(Serialize, Deserialize)]
struct MemoFile<V> {
    format: u32,
    /// What every answer in it depends on besides its key, in words (see the module doc).
    context: String,
    entries: HashMap<String, V>,
}

/// Answers by key, read from one file and written back with what this run asked and learnt.
pub struct Memo<V> {
    path: Option<PathBuf>,
    context: String,
    stored: HashMap<String, V>,
    /// Hits and new answers of this run: kept whatever the size limit.
    used: HashMap<String, V>,
    learnt: usize,
}

impl<V: Clone + Serialize + DeserializeOwned> Memo<V> {
    fn open(path: Option<PathBuf>, context: String) -> Memo<V> {
        let stored = path
            .as_deref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|bytes| serde_json::from_slice::<MemoFile<V>>(&bytes).ok())
            .filter(|f| f.format == FORMAT && f.context == context)
            .map(|f| f.entries)
            .unwrap_or_default();
        Memo {
            path,
            context,
            stored,
            used: HashMap::new(),
            learnt: 0,
        }
    }

    /// A memo that remembers nothing and is never written.
    pub fn disabled() -> Memo<V> {
        Memo::open(None, String::new())
    }

    pub fn get(&mut self, key: &str) -> Option<V> {
        if let Some(v) = self.used.get(key) {
            return Some(v.clone());
        }
        let v = self.stored.remove(key)?;
        self.used.insert(key.to_string(), v.clone());
        Some(v)
    }

    pub fn put(&mut self, key: String, value: V) {
        self.learnt += 1;
        self.used.insert(key, value);
    }

    /// Writes the memo back if this run learnt anything (atomically: a concurrent run's
    /// write is replaced whole, never mixed). Failure is logged; the memo is only a memo.
    pub fn save(self) {
        let Some(path) = self.path else { return };
        if self.learnt == 0 {
            return;
        }
        let mut entries = self.used;
        if entries.len() + self.stored.len() <= MAX_ENTRIES {
            entries.extend(self.stored);
        }
        let file = MemoFile {
            format: FORMAT,
            context: self.context,
            entries,
        };
        let written = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| fsx::write_atomic_unsynced(&path, &fsx::json_bytes(&file)?));
        if let Err(e) = written {
            tracing::debug!(path = %path.display(), "gate memo not written: {e}");
        }
    }
}

/// Where the memos live: beside the audit DB at `db`.
fn memo_dir(db: &Path) -> Option<PathBuf> {
    Some(db.parent()?.join("gate-memo"))
}

fn sha256_hex(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    format!("{:x}", h.finalize())
}

/// The key of an edit's answers: its two texts' blob ids.
pub fn edit_key(before: &git2::Oid, after: &git2::Oid) -> String {
    format!("{before}{after}")
}

/// The module-level names each edit removes, by [`edit_key`].
pub type RemovedNamesMemo = Memo<Vec<String>>;

/// Opens the memo of removed names, bound to this parser: the source that decides what a
/// module-level name is, and the grammar it parses with.
pub fn removed_names_memo(db: &Path) -> RemovedNamesMemo {
    let language: tree_sitter::Language = tree_sitter_python::LANGUAGE.into();
    let grammar = language
        .metadata()
        .map(|m| {
            format!(
                "{}.{}.{}",
                m.major_version, m.minor_version, m.patch_version
            )
        })
        .unwrap_or_else(|| format!("abi {}", language.abi_version()));
    let parser = sha256_hex(&[include_bytes!("pyindex.rs")]);
    let context = format!(
        "removed module-level names; noctune {}; pyindex.rs sha256 {parser}; tree-sitter-python {grammar}",
        env!("CARGO_PKG_VERSION")
    );
    Memo::open(memo_dir(db).map(|d| d.join("removed-names.json")), context)
}

/// Ruff's answer for one file: finding code -> count, and its first syntax error.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FileLint {
    pub counts: BTreeMap<String, usize>,
    pub syntax: Option<String>,
}

/// Ruff's answers by `"<blob id> <path>"` ([`lint_key`]) for one [`TreeLayout`] and one ruff
/// setup. Valid while the worktree holds that layout's files, with any of them at other
/// content: a file's findings depend on its own content and on which files exist, not on what
/// the others hold. So the caller does not ask while a file is added or removed, or a ruff
/// configuration differs from the commit's.
pub type LintMemo = Memo<FileLint>;

pub fn lint_key(path: &str, blob: &git2::Oid) -> String {
    format!("{blob} {path}")
}

/// The file names ruff reads its settings from.
pub const RUFF_CONFIG_NAMES: [&str; 3] = ["pyproject.toml", "ruff.toml", ".ruff.toml"];

pub fn is_ruff_config(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    RUFF_CONFIG_NAMES.contains(&name)
}

/// `ruff --version` as the gates' ruff runs would see it (in the worktree: a version manager's
/// shim picks the ruff by the folder it runs in), asked in the background: through such a
/// shim it takes about 70 ms, which the caller spends on other work meanwhile.
pub struct RuffVersion(Option<std::process::Child>);

impl RuffVersion {
    pub fn ask(dir: &Path) -> RuffVersion {
        RuffVersion(
            std::process::Command::new("ruff")
                .arg("--version")
                .current_dir(dir)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .spawn()
                .ok(),
        )
    }

    fn answer(self) -> Option<String> {
        let out = self.0?.wait_with_output().ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
}

/// What of a commit's tree ruff's answer for one of its files depends on besides the file:
/// every path with its mode (which files exist; `EXE001` reads the executable bit) and every
/// ruff configuration with its content. A configuration that `extend`s another file (which may
/// have any name) binds the memo to the whole tree instead.
pub struct TreeLayout(String);

impl TreeLayout {
    pub fn of(repo: &git2::Repository, tree: &git2::Tree) -> Result<TreeLayout, git2::Error> {
        let mut h = Sha256::new();
        let mut configs = Vec::new();
        tree.walk(git2::TreeWalkMode::PreOrder, |dir, entry| {
            let name = entry.name_bytes();
            h.update(dir.as_bytes());
            h.update(name);
            h.update(entry.filemode().to_le_bytes());
            h.update(b"\0");
            if entry.kind() == Some(git2::ObjectType::Blob)
                && RUFF_CONFIG_NAMES.iter().any(|n| n.as_bytes() == name)
            {
                configs.push(entry.id());
            }
            git2::TreeWalkResult::Ok
        })?;
        for id in configs {
            let blob = repo.find_blob(id)?;
            if extends_another_file(&String::from_utf8_lossy(blob.content())) {
                return Ok(TreeLayout(format!("tree {}", tree.id())));
            }
            h.update(id.as_bytes());
        }
        Ok(TreeLayout(format!("layout sha256 {:x}", h.finalize())))
    }
}

/// Whether a ruff configuration names another one to read (`extend = "..."`, top level or in
/// `[tool.ruff]`; `extend-select` and the like are settings, not files).
fn extends_another_file(toml: &str) -> bool {
    toml.lines().any(|l| {
        l.trim_start()
            .strip_prefix("extend")
            .is_some_and(|rest| rest.trim_start().starts_with('='))
    })
}

/// Opens the lint memo for the worktree at a commit of layout `layout`, with the gate's
/// ruff flags `flags`. `None` when ruff's version cannot be read (then the gate's own ruff run
/// says what is wrong).
pub fn lint_memo(
    db: &Path,
    worktree: &Path,
    ruff: RuffVersion,
    layout: &TreeLayout,
    flags: &[&str],
) -> Option<LintMemo> {
    let version = ruff.answer()?;
    let outside = outside_ruff_configs(worktree);
    // Ruff reads a few settings from its own variables (`RUFF_*`); the gate passes every option
    // it relies on, but a variable we do not know of must not carry an answer across.
    let mut env: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.to_string_lossy().into_owned())))
        .filter(|(k, _)| k.starts_with("RUFF_"))
        .collect();
    env.sort();
    let context = format!(
        "ruff findings; {version}; flags {flags:?}; {}; \
         configurations outside the tree sha256 {outside}; environment {env:?}",
        layout.0
    );
    let dir = memo_dir(db)?;
    let name = format!("lint-{}.json", &sha256_hex(&[context.as_bytes()])[..16]);
    prune_lint_memos(&dir, &name);
    Some(Memo::open(Some(dir.join(name)), context))
}

/// The ruff configurations that are not in the commit's tree and may still apply to its files,
/// hashed with their paths: those in the folders above the worktree (ruff looks upwards for the
/// nearest one with ruff settings, past a `pyproject.toml` without them; the worktree lives in
/// the user's repository, whose files may differ from the commit's), and the user's own.
fn outside_ruff_configs(worktree: &Path) -> String {
    let mut dirs: Vec<PathBuf> = worktree
        .ancestors()
        .skip(1)
        .map(Path::to_path_buf)
        .collect();
    if let Some(x) = std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        dirs.push(PathBuf::from(x).join("ruff"));
    }
    if let Some(home) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        dirs.push(PathBuf::from(home).join(".config").join("ruff"));
    }
    let mut parts: Vec<Vec<u8>> = Vec::new();
    for d in dirs {
        for name in RUFF_CONFIG_NAMES {
            let p = d.join(name);
            if let Ok(bytes) = std::fs::read(&p) {
                parts.push(p.display().to_string().into_bytes());
                parts.push(bytes);
            }
        }
    }
    let refs: Vec<&[u8]> = parts.iter().map(|p| p.as_slice()).collect();
    sha256_hex(&refs)
}

/// Keeps the newest [`MAX_LINT_MEMOS`] lint memos (by modification time), besides `keep`.
fn prune_lint_memos(dir: &Path, keep: &str) {
    let Ok(read) = std::fs::read_dir(dir) else {
        return;
    };
    let mut memos: Vec<(std::time::SystemTime, PathBuf)> = read
        .flatten()
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with("lint-") && name.ends_with(".json") && name != keep
        })
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    if memos.len() < MAX_LINT_MEMOS {
        return;
    }
    memos.sort();
    for (_, p) in &memos[..=memos.len() - MAX_LINT_MEMOS] {
        let _ = std::fs::remove_file(p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_memo_answers_what_it_was_told_in_a_later_run_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.json");
        let mut m: Memo<Vec<String>> = Memo::open(Some(path.clone()), "ctx".into());
        assert_eq!(m.get("a"), None);
        m.put("a".into(), vec!["x".into()]);
        m.save();
        let mut again: Memo<Vec<String>> = Memo::open(Some(path.clone()), "ctx".into());
        assert_eq!(again.get("a"), Some(vec!["x".to_string()]));
        assert_eq!(again.get("b"), None);
        // Another context (another ruff, another commit) sees nothing of it.
        let mut other: Memo<Vec<String>> = Memo::open(Some(path.clone()), "other".into());
        assert_eq!(other.get("a"), None);
    }

    #[test]
    fn a_corrupt_memo_is_empty_and_is_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.json");
        std::fs::write(
            &path,
            b"{\"format\": 1, \"context\": \"ctx\", \"entries\": {\"a\": [",
        )
        .unwrap();
        let mut m: Memo<Vec<String>> = Memo::open(Some(path.clone()), "ctx".into());
        assert_eq!(m.get("a"), None);
        m.put("b".into(), Vec::new());
        m.save();
        let mut again: Memo<Vec<String>> = Memo::open(Some(path), "ctx".into());
        assert_eq!(again.get("b"), Some(Vec::new()));
    }

    #[test]
    fn a_memo_past_its_size_keeps_the_last_runs_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.json");
        let mut m: Memo<u8> = Memo::open(Some(path.clone()), "ctx".into());
        for i in 0..MAX_ENTRIES {
            m.put(format!("old{i}"), 0);
        }
        m.save();
        let mut m: Memo<u8> = Memo::open(Some(path.clone()), "ctx".into());
        assert_eq!(m.get("old7"), Some(0));
        m.put("new".into(), 1);
        m.save();
        let mut m: Memo<u8> = Memo::open(Some(path), "ctx".into());
        assert_eq!(m.get("new"), Some(1));
        assert_eq!(m.get("old7"), Some(0), "asked by the last run: kept");
        assert_eq!(m.get("old8"), None, "not asked: dropped past the limit");
    }

    #[test]
    fn a_ruff_configuration_above_the_worktree_is_part_of_the_context() {
        let dir = tempfile::tempdir().unwrap();
        let wt = dir.path().join("repo/.noctune_cache/worktrees/run");
        std::fs::create_dir_all(&wt).unwrap();
        let none = outside_ruff_configs(&wt);
        // The user's checkout (the worktree's grandparent's parent) gains ruff settings.
        std::fs::write(dir.path().join("repo/ruff.toml"), "line-length = 10\n").unwrap();
        let one = outside_ruff_configs(&wt);
        assert_ne!(none, one);
        std::fs::write(dir.path().join("repo/ruff.toml"), "line-length = 20\n").unwrap();
        assert_ne!(one, outside_ruff_configs(&wt));
        // One in the worktree itself is the commit's, and the tree id covers it.
        let two = outside_ruff_configs(&wt);
        std::fs::write(wt.join("ruff.toml"), "line-length = 30\n").unwrap();
        assert_eq!(outside_ruff_configs(&wt), two);
    }

    #[test]
    fn a_layout_changes_with_a_path_a_mode_or_a_configuration_not_with_a_files_content() {
        let dir = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init(dir.path()).unwrap();
        let layout = |files: &[(&str, &str, i32)]| {
            let mut b = repo.treebuilder(None).unwrap();
            for (name, content, mode) in files {
                let id = repo.blob(content.as_bytes()).unwrap();
                b.insert(name, id, *mode).unwrap();
            }
            let tree = repo.find_tree(b.write().unwrap()).unwrap();
            TreeLayout::of(&repo, &tree).unwrap().0
        };
        let base = layout(&[("a.py", "x = 1\n", 0o100644), ("ruff.toml", "", 0o100644)]);
        assert_eq!(
            base,
            layout(&[("a.py", "x = 2\n", 0o100644), ("ruff.toml", "", 0o100644)]),
            "another content of a.py"
        );
        for other in [
            layout(&[("b.py", "x = 1\n", 0o100644), ("ruff.toml", "", 0o100644)]),
            layout(&[("a.py", "x = 1\n", 0o100755), ("ruff.toml", "", 0o100644)]),
            layout(&[
                ("a.py", "x = 1\n", 0o100644),
                ("ruff.toml", "line-length = 9\n", 0o100644),
            ]),
            layout(&[("a.py", "x = 1\n", 0o100644)]),
        ] {
            assert_ne!(base, other);
        }
        let extends = layout(&[
            ("a.py", "x = 1\n", 0o100644),
            ("ruff.toml", "extend = \"base.toml\"\n", 0o100644),
        ]);
        assert!(extends.starts_with("tree "), "{extends}");
        assert!(!extends_another_file("extend-select = [\"I\"]\n"));
        assert!(extends_another_file(
            "[tool.ruff]\n  extend  = \"../base.toml\"\n"
        ));
    }

    #[test]
    fn only_the_newest_lint_memos_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..MAX_LINT_MEMOS + 3 {
            std::fs::write(dir.path().join(format!("lint-{i:02}.json")), b"{}").unwrap();
            let t = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(i as u64);
            std::fs::File::options()
                .write(true)
                .open(dir.path().join(format!("lint-{i:02}.json")))
                .unwrap()
                .set_modified(t)
                .unwrap();
        }
        prune_lint_memos(dir.path(), "lint-new.json");
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        // Room for the one about to be written.
        assert_eq!(left.len(), MAX_LINT_MEMOS - 1);
        assert_eq!(left[0], format!("lint-{:02}.json", 4));
    }
}
