//! The `search` tool: ripgrep's own crates (`grep-regex`, `grep-searcher`, `ignore`) so that it
//! matches like `rg`, respects `.gitignore`, and stays within 1.5x of `rg`'s time on a large
//! tree (benches/chat.rs measures it).
//!
//! The walk is parallel, so matches arrive in no particular order; they are sorted by (path,
//! line) before the cap is applied, so the same query on the same tree always gives the same
//! answer. Each thread keeps only its best `max + 1` matches, which bounds memory however many
//! lines match, and still yields the exact global first `max` (the global first `max` are among
//! every thread's first `max`).
//!
//! Secret files (`permissions::is_secret`: `.env*`, keys, credentials) are not searched, and
//! the result lists them: their lines would land in the saved transcript without the user's
//! approval. Searching one secret file by naming it as `path` is a read the gate asks for.

use super::common::{
    arg_bool, arg_path, arg_usize, bad_args, glob_accepts, glob_filter, resolve, shown, skipped_dir,
};
use super::schema::args_schema;
use crate::permissions::is_secret;
use crate::tool::{Tool, ToolClass, ToolContext, ToolError};
use grep::regex::{RegexMatcher, RegexMatcherBuilder};
use grep::searcher::sinks::Lossy;
use grep::searcher::{BinaryDetection, Searcher, SearcherBuilder};
use ignore::{DirEntry, ParallelVisitor, ParallelVisitorBuilder, WalkState};
use noctune_sandbox::{Intent, RootDir};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

pub const SEARCH_DEFAULT: usize = 100;
pub const SEARCH_MAX: usize = 1000;
/// A matching line longer than this is cut in the result (minified files).
const LINE_MAX_CHARS: usize = 300;
/// At most this many skipped secret files are named in a result.
const SKIPPED_SHOWN: usize = 20;

pub struct Search;

// The arguments of `search`: only its published schema is derived from this (`call` parses
// leniently, see `common.rs`); the doc comments are the descriptions the model sees.
#[derive(Deserialize, JsonSchema)]
#[allow(dead_code)]
struct SearchArgs {
    /// Regular expression (Rust syntax) or, with literal, plain text
    pattern: String,
    /// Treat pattern as plain text (default false)
    #[serde(default)]
    literal: Option<bool>,
    /// Only files matching this glob, e.g. *.py or src/**/*.rs
    #[serde(default)]
    glob: Option<String>,
    /// Folder (or file) to search, relative to the repository root (default: all)
    #[serde(default)]
    path: Option<String>,
    /// At most this many matching lines (default 100)
    #[serde(default)]
    #[schemars(range(min = 1, max = SEARCH_MAX))]
    max_results: Option<u64>,
    /// Ignore case (default false)
    #[serde(default)]
    case_insensitive: Option<bool>,
}

impl Tool for Search {
    fn name(&self) -> &'static str {
        "search"
    }
    fn description(&self) -> &'static str {
        "Search file contents of the repository like ripgrep (respects .gitignore). Results are \
         `path:line: text`, sorted, capped by max_results. Regex by default; literal=true for \
         plain text. Narrow with glob (e.g. \"*.py\") or path (a folder). Secret files (.env, \
         keys, credentials) are skipped and listed in skipped_secret_files; pass one as path \
         to search it (the user is asked first)."
    }
    fn parameters(&self) -> Value {
        args_schema::<SearchArgs>()
    }
    fn class(&self) -> ToolClass {
        ToolClass::Read
    }
    fn target_path(&self, args: &Value) -> Option<String> {
        arg_path(args).map(str::to_string)
    }
    fn call(&self, ctx: &ToolContext, args: &Value) -> Result<Value, ToolError> {
        let pattern = args
            .get("pattern")
            .or_else(|| args.get("query"))
            .and_then(Value::as_str)
            .filter(|p| !p.is_empty())
            .ok_or_else(|| bad_args("`pattern` (the text or regex to find) is required"))?;
        let literal = arg_bool(args, "literal");
        let max = arg_usize(args, "max_results")?
            .unwrap_or(SEARCH_DEFAULT)
            .clamp(1, SEARCH_MAX);
        let matcher = RegexMatcherBuilder::new()
            .case_insensitive(arg_bool(args, "case_insensitive"))
            .fixed_strings(literal)
            .line_terminator(Some(b'\n'))
            .build(pattern)
            .map_err(|e| {
                ToolError::new(
                    "bad_pattern",
                    format!("{pattern:?} is not a valid regex: {e}; escape special characters or pass literal: true"),
                )
            })?;
        let filter = glob_filter(args.get("glob").and_then(Value::as_str))?;
        let path = arg_path(args)
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .unwrap_or(".");
        let sp = resolve(ctx, path, Intent::List)?;

        // The one file named as the target was the gate's to allow; any other secret is skipped.
        let named_file = sp.abs().is_file().then(|| sp.abs().to_path_buf());
        let shared = Arc::new(Shared {
            repo_root: ctx.repo_root.clone(),
            root_dir: sp.root_dir().clone(),
            named_file,
            skipped: Mutex::new(Vec::new()),
            matcher,
            filter,
            max,
            found: Mutex::new(Vec::new()),
            total: AtomicU64::new(0),
            files: AtomicU64::new(0),
        });
        ignore::WalkBuilder::new(sp.abs())
            .hidden(false)
            .require_git(false)
            .filter_entry(|e| !skipped_dir(e.file_name()))
            .threads(0)
            .build_parallel()
            .visit(&mut Builder(shared.clone()));

        let mut found =
            std::mem::take(&mut *shared.found.lock().unwrap_or_else(|e| e.into_inner()));
        found.sort_unstable();
        let total = shared.total.load(Ordering::Relaxed) as usize;
        let truncated = total > max;
        found.truncate(max);
        let matches: Vec<String> = found
            .into_iter()
            .map(|m| format!("{}:{}: {}", m.path, m.line, m.text))
            .collect();
        let mut skipped =
            std::mem::take(&mut *shared.skipped.lock().unwrap_or_else(|e| e.into_inner()));
        skipped.sort_unstable();
        let mut out = json!({
            "pattern": pattern,
            "path": shown(ctx, sp.abs()),
            "count": matches.len(),
            "truncated": truncated,
            "files_searched": shared.files.load(Ordering::Relaxed),
            "matches": matches,
        });
        if !skipped.is_empty() {
            out["skipped_secret_files"] = json!(&skipped[..skipped.len().min(SKIPPED_SHOWN)]);
            out["note"] = json!(format!(
                "{} secret file(s) not searched (what a tool returns is saved with the chat); \
                 to search one, pass it as path: the user is asked first",
                skipped.len()
            ));
        }
        if truncated {
            out["hint"] = json!(format!(
                "more than {max} matching lines; narrow with glob or path, or a more specific pattern"
            ));
        } else if matches.is_empty() {
            out["hint"] = json!(
                "no match; try case_insensitive, a shorter pattern, or literal: true for text with regex characters"
            );
        }
        Ok(out)
    }
}

/// One matching line. Field order is the sort order.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Found {
    path: String,
    line: u64,
    text: String,
}

struct Shared {
    repo_root: PathBuf,
    /// Every file is opened through the root's descriptor (beneath it, by the kernel): the
    /// walk goes by path, so a folder swapped for a link mid-walk could hand us a path outside,
    /// and what is read must still come from inside.
    root_dir: Arc<RootDir>,
    /// The target itself when it is a file (see `call`).
    named_file: Option<PathBuf>,
    /// Secret files not searched (repository-relative).
    skipped: Mutex<Vec<String>>,
    matcher: RegexMatcher,
    filter: Option<(globset::GlobMatcher, bool)>,
    max: usize,
    found: Mutex<Vec<Found>>,
    /// Matching lines seen (each file counted up to `max + 1`): enough to know `truncated`.
    total: AtomicU64,
    files: AtomicU64,
}

struct Builder(Arc<Shared>);

impl<'s> ParallelVisitorBuilder<'s> for Builder {
    fn build(&mut self) -> Box<dyn ParallelVisitor + 's> {
        Box::new(Visitor {
            shared: self.0.clone(),
            searcher: SearcherBuilder::new()
                .line_number(true)
                .binary_detection(BinaryDetection::quit(0))
                .build(),
            found: Vec::new(),
        })
    }
}

/// One walker thread: its own searcher and matches, handed over when the thread is done.
struct Visitor {
    shared: Arc<Shared>,
    searcher: Searcher,
    found: Vec<Found>,
}

impl Visitor {
    fn search_file(&mut self, path: &Path, rel: String) {
        let max = self.shared.max as u64;
        let mut in_file = 0u64;
        let found = &mut self.found;
        let below_root = path
            .strip_prefix(self.shared.root_dir.path())
            .ok()
            .and_then(Path::to_str);
        // A path that no longer leads to a regular file beneath the root is skipped, like a file
        // that vanished mid-walk.
        let Some(file) = below_root.and_then(|r| self.shared.root_dir.open_read(r).ok()) else {
            return;
        };
        let result = self.searcher.search_file(
            &self.shared.matcher,
            &file,
            Lossy(|line, text| {
                in_file += 1;
                found.push(Found {
                    path: rel.clone(),
                    line,
                    text: clip(text),
                });
                // One past the cap tells "truncated" without reading the rest of the file.
                Ok(in_file <= max)
            }),
        );
        // Unreadable files (permissions, vanished mid-walk) are skipped, as rg does.
        let _ = result;
        self.shared.total.fetch_add(in_file, Ordering::Relaxed);
        self.shared.files.fetch_add(1, Ordering::Relaxed);
        let keep = self.shared.max + 1;
        if self.found.len() > 4 * keep {
            self.found.sort_unstable();
            self.found.truncate(keep);
        }
    }
}

impl ParallelVisitor for Visitor {
    fn visit(&mut self, entry: Result<DirEntry, ignore::Error>) -> WalkState {
        let Ok(entry) = entry else {
            return WalkState::Continue;
        };
        // Regular files only: symlinks are not followed (they could lead out of the sandbox)
        // and FIFOs or devices are never opened.
        if !entry.file_type().is_some_and(|t| t.is_file()) {
            return WalkState::Continue;
        }
        let rel = match entry.path().strip_prefix(&self.shared.repo_root) {
            Ok(r) => r.to_string_lossy().into_owned(),
            Err(_) => entry.path().to_string_lossy().into_owned(),
        };
        if !glob_accepts(&self.shared.filter, &rel) {
            return WalkState::Continue;
        }
        if is_secret(&rel) && self.shared.named_file.as_deref() != Some(entry.path()) {
            self.shared
                .skipped
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(rel);
            return WalkState::Continue;
        }
        self.search_file(entry.path(), rel);
        WalkState::Continue
    }
}

impl Drop for Visitor {
    fn drop(&mut self) {
        let mut all = self.shared.found.lock().unwrap_or_else(|e| e.into_inner());
        all.append(&mut self.found);
    }
}

fn clip(line: &str) -> String {
    let line = line.trim_end_matches(['\n', '\r']);
    match line.char_indices().nth(LINE_MAX_CHARS) {
        Some((i, _)) => format!("{}…", &line[..i]),
        None => line.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clips_long_lines() {
        assert_eq!(clip("abc\r\n"), "abc");
        let long = "é".repeat(LINE_MAX_CHARS + 5);
        assert_eq!(clip(&long).chars().count(), LINE_MAX_CHARS + 1);
    }

    #[test]
    fn sorts_by_path_then_line() {
        let mut v = [
            Found {
                path: "b".into(),
                line: 1,
                text: String::new(),
            },
            Found {
                path: "a".into(),
                line: 10,
                text: String::new(),
            },
            Found {
                path: "a".into(),
                line: 2,
                text: String::new(),
            },
        ];
        v.sort_unstable();
        let keys: Vec<(&str, u64)> = v.iter().map(|f| (f.path.as_str(), f.line)).collect();
        assert_eq!(keys, [("a", 2), ("a", 10), ("b", 1)]);
    }
}
