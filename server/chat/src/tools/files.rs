//! The file tools: `editFile`, `readFile`, `listFiles`, `writeFile`, `replaceLines` (and, from
//! `search.rs`, `search`); [`file_tools`] lists them for the registry.
//!
//! `editFile` comes first: it edits by exact text (old → new), which small local models get
//! right far more often than line numbers (`replaceLines`) or whole-file rewrites (`writeFile`,
//! which loses every line the model did not copy back).
//!
//! Every path goes through the sandbox (`ctx.sandbox`), relative to the repository root, and
//! every read and write of a file goes through the sandbox's kernel-confined operations on the
//! resolved path (`Sandbox::read`, `Sandbox::write_atomic`), never through the path string: a
//! folder swapped for a symlink after the check cannot redirect them outside the roots.
//! Edits are guarded three ways: the permission gate (before the call, not here), a conflict
//! check against the content the model last read (`ctx.read_stamps`: an edit based on a stale
//! read is refused rather than silently overwriting someone's change), and a backup journaled
//! before every edit (`chat::backups`), which "undo last edit" restores.

use super::common::{
    arg_path, arg_str, arg_usize, bad_args, glob_accepts, glob_filter, required_path, resolve,
    shown, skipped_dir,
};
use super::edit::{Hunk, apply_hunks};
use super::schema::args_schema;
use crate::backups::{self, EditRecord, sha256_hex};
use crate::tool::{Preview, Tool, ToolClass, ToolContext, ToolError};
use noctune_sandbox::{Intent, SafePath};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

/// At most this much file content in one `readFile` result (a small model's context is small).
pub const READ_MAX_BYTES: usize = 256 * 1024;
/// At most this many lines in one `readFile` result.
pub const READ_MAX_LINES: usize = 2000;
/// Files larger than this are not read at all (hashing and splitting them would stall a turn).
pub const FILE_MAX_BYTES: u64 = 32 * 1024 * 1024;
/// `listFiles` default and hard cap.
pub const LIST_DEFAULT: usize = 500;
pub const LIST_MAX: usize = 5000;
/// A diff in a tool result is cut beyond this (the file itself is written in full).
const DIFF_MAX_BYTES: usize = 32 * 1024;

/// Every built-in file tool, `search` included.
pub fn file_tools() -> Vec<Arc<dyn Tool>> {
    vec![
        Arc::new(EditFile),
        Arc::new(ReadFile),
        Arc::new(ListFiles),
        Arc::new(super::search::Search),
        Arc::new(WriteFile),
        Arc::new(ReplaceLines),
    ]
}

// ---------------------------------------------------------------------------------------------
// Content as the model sees it: the editor's unsaved buffer first, else the file on disk.

struct Current {
    bytes: Vec<u8>,
    from_buffer: bool,
}

fn current_content(ctx: &ToolContext, sp: &SafePath) -> Result<Option<Current>, ToolError> {
    if let Some(text) = ctx.overlay.as_ref().and_then(|o| o.text_of(sp.abs())) {
        return Ok(Some(Current {
            bytes: text.into_bytes(),
            from_buffer: true,
        }));
    }
    if !sp.exists() {
        return Ok(None);
    }
    let io =
        |e: std::io::Error| ToolError::new("io_error", format!("cannot read {}: {e}", sp.rel()));
    let mut f = ctx.sandbox.open_read(sp).map_err(refused)?;
    let len = f.metadata().map_err(io)?.len();
    if len > FILE_MAX_BYTES {
        return Err(ToolError::new(
            "too_large",
            format!(
                "{} is {len} bytes, more than the {FILE_MAX_BYTES} bytes chat tools handle; use search to find the lines you need",
                sp.rel()
            ),
        ));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    f.read_to_end(&mut bytes).map_err(io)?;
    Ok(Some(Current {
        bytes,
        from_buffer: false,
    }))
}

/// A sandbox refusal (or failure) at the time of use, as a tool error the model can act on.
fn refused(e: noctune_sandbox::SandboxError) -> ToolError {
    ToolError::new(e.code(), e.to_string())
}

fn stamp_of(ctx: &ToolContext, abs: &Path) -> Option<String> {
    ctx.read_stamps
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(abs)
        .cloned()
}

fn set_stamp(ctx: &ToolContext, abs: &Path, hash: String) {
    ctx.read_stamps
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(abs.to_path_buf(), hash);
}

fn looks_binary(bytes: &[u8]) -> bool {
    bytes[..bytes.len().min(8192)].contains(&0)
}

// ---------------------------------------------------------------------------------------------

pub struct ReadFile;

// The arguments of `readFile`: only its published schema is derived from this (`call` parses
// leniently, see `common.rs`); the doc comments are the descriptions the model sees.
#[derive(Deserialize, JsonSchema)]
#[allow(dead_code)]
struct ReadFileArgs {
    /// File path relative to the repository root, e.g. src/app.py
    path: String,
    /// First line to read (1-based, default 1)
    #[serde(default)]
    #[schemars(range(min = 1))]
    start_line: Option<u64>,
    /// Last line to read, inclusive (default: end of file)
    #[serde(default)]
    #[schemars(range(min = 1))]
    end_line: Option<u64>,
}

impl Tool for ReadFile {
    fn name(&self) -> &'static str {
        "readFile"
    }
    fn description(&self) -> &'static str {
        "Read a text file of the repository. Lines come numbered as `N: text` so you can cite \
         path:N; the numbers are not part of the file. Long files are cut at 2000 lines or 256 KB \
         (`truncated: true`): read further with start_line/end_line."
    }
    fn parameters(&self) -> Value {
        args_schema::<ReadFileArgs>()
    }
    fn class(&self) -> ToolClass {
        ToolClass::Read
    }
    fn target_path(&self, args: &Value) -> Option<String> {
        arg_path(args).map(str::to_string)
    }
    fn call(&self, ctx: &ToolContext, args: &Value) -> Result<Value, ToolError> {
        let path = required_path(args)?;
        let start = arg_usize(args, "start_line")?;
        let end = arg_usize(args, "end_line")?;
        let sp = resolve(ctx, path, Intent::Read)?;
        let cur = current_content(ctx, &sp)?
            .ok_or_else(|| ToolError::new("not_found", format!("{path} does not exist")))?;
        if looks_binary(&cur.bytes) {
            return Err(ToolError::new(
                "binary_file",
                format!(
                    "{} is a binary file; only text files can be read",
                    shown(ctx, sp.abs())
                ),
            ));
        }
        set_stamp(ctx, sp.abs(), sha256_hex(&cur.bytes));
        let text = String::from_utf8_lossy(&cur.bytes);
        let page = page_of(&text, start, end)
            .map_err(|m| ToolError::new("bad_range", format!("{}: {m}", shown(ctx, sp.abs()))))?;
        let mut out = json!({
            "path": shown(ctx, sp.abs()),
            "start_line": page.start,
            "end_line": page.end,
            "total_lines": page.total,
            "truncated": page.truncated,
            "content": page.content,
        });
        if cur.from_buffer {
            out["source"] = json!("editor buffer (unsaved changes included)");
        }
        if page.truncated {
            out["hint"] = json!(format!(
                "cut at line {} of {}; read on with start_line={}",
                page.end,
                page.total,
                page.end + 1
            ));
        }
        if matches!(text, std::borrow::Cow::Owned(_)) {
            out["note"] = json!("the file is not valid UTF-8; invalid bytes are shown as U+FFFD");
        }
        Ok(out)
    }
}

/// A numbered slice of a text, within the caps.
#[derive(Debug, PartialEq)]
pub(crate) struct Page {
    pub start: usize,
    pub end: usize,
    pub total: usize,
    pub truncated: bool,
    pub content: String,
}

pub(crate) fn page_of(
    text: &str,
    start: Option<usize>,
    end: Option<usize>,
) -> Result<Page, String> {
    let lines: Vec<&str> = text.lines().collect();
    let total = lines.len();
    let start = start.unwrap_or(1).max(1);
    if total == 0 {
        return Ok(Page {
            start: 1,
            end: 0,
            total,
            truncated: false,
            content: String::new(),
        });
    }
    if start > total {
        return Err(format!(
            "start_line {start} is past the end: the file has {total} lines"
        ));
    }
    let want_end = end.unwrap_or(total).min(total);
    if want_end < start {
        return Err(format!("end_line {want_end} is before start_line {start}"));
    }
    let mut content = String::new();
    let mut last = start - 1;
    let mut truncated = false;
    for (i, line) in lines[start - 1..want_end].iter().enumerate() {
        let n = start + i;
        let entry = format!("{n}: {line}\n");
        if i >= READ_MAX_LINES || content.len() + entry.len() > READ_MAX_BYTES {
            truncated = true;
            if i == 0 {
                // One line over the whole budget (minified code): show its head.
                content.push_str(noctune_core::text::prefix_bytes(&entry, READ_MAX_BYTES));
                content.push_str(" [line cut]\n");
                last = n;
            }
            break;
        }
        content.push_str(&entry);
        last = n;
    }
    Ok(Page {
        start,
        end: last,
        total,
        truncated,
        content,
    })
}

// ---------------------------------------------------------------------------------------------

pub struct ListFiles;

// The arguments of `listFiles` (schema only, as for `ReadFileArgs`).
#[derive(Deserialize, JsonSchema)]
#[allow(dead_code)]
struct ListFilesArgs {
    /// Only paths matching this glob, e.g. *.py or src/**/*.rs
    #[serde(default)]
    glob: Option<String>,
    /// Folder to list, relative to the repository root (default: the whole repository)
    #[serde(default)]
    path: Option<String>,
    /// At most this many paths (default 500)
    #[serde(default)]
    #[schemars(range(min = 1, max = LIST_MAX))]
    max: Option<u64>,
}

impl Tool for ListFiles {
    fn name(&self) -> &'static str {
        "listFiles"
    }
    fn description(&self) -> &'static str {
        "List files of the repository (respects .gitignore; skips .git and .noctune_cache). \
         Optional glob (e.g. \"*.py\", \"src/**/*.rs\") and folder."
    }
    fn parameters(&self) -> Value {
        args_schema::<ListFilesArgs>()
    }
    fn class(&self) -> ToolClass {
        ToolClass::Read
    }
    fn target_path(&self, args: &Value) -> Option<String> {
        arg_path(args).map(str::to_string)
    }
    fn call(&self, ctx: &ToolContext, args: &Value) -> Result<Value, ToolError> {
        let path = arg_path(args)
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .unwrap_or(".");
        let max = arg_usize(args, "max")?
            .unwrap_or(LIST_DEFAULT)
            .clamp(1, LIST_MAX);
        let filter = glob_filter(args.get("glob").and_then(Value::as_str))?;
        let sp = resolve(ctx, path, Intent::List)?;
        let mut files = Vec::new();
        let mut truncated = false;
        let walk = ignore::WalkBuilder::new(sp.abs())
            .hidden(false)
            .require_git(false)
            .filter_entry(|e| !skipped_dir(e.file_name()))
            .sort_by_file_name(|a, b| a.cmp(b))
            .build();
        for entry in walk.flatten() {
            if !entry.file_type().is_some_and(|t| t.is_file()) {
                continue;
            }
            let rel = shown(ctx, entry.path());
            if !glob_accepts(&filter, &rel) {
                continue;
            }
            // The walk goes by path: a folder swapped for a link mid-walk could list names from
            // outside. Only a name that is a regular file beneath the root (asked of the kernel,
            // through the root's descriptor) is listed.
            if !listed_beneath(&sp, entry.path()) {
                continue;
            }
            if files.len() == max {
                truncated = true;
                break;
            }
            files.push(rel);
        }
        files.sort();
        let mut out = json!({
            "path": shown(ctx, sp.abs()),
            "count": files.len(),
            "truncated": truncated,
            "files": files,
        });
        if truncated {
            out["hint"] = json!("more files exist: narrow with glob or path, or raise max");
        }
        Ok(out)
    }
}

/// Whether `path` (found by the walk under `sp`) is a regular file beneath `sp`'s root now.
fn listed_beneath(sp: &noctune_sandbox::SafePath, path: &std::path::Path) -> bool {
    let root = sp.root_dir();
    path.strip_prefix(root.path())
        .ok()
        .and_then(std::path::Path::to_str)
        .and_then(|rel| root.metadata(rel).ok().flatten())
        .is_some_and(|md| md.is_file())
}

// ---------------------------------------------------------------------------------------------

pub struct EditFile;

// The arguments of `editFile` (schema only, as for `ReadFileArgs`).
#[derive(Deserialize, JsonSchema)]
#[allow(dead_code)]
struct EditFileArgs {
    /// File path relative to the repository root
    path: String,
    /// Exact text to replace, copied from the file (no line numbers)
    #[serde(default)]
    old_text: Option<String>,
    /// Replacement text ("" deletes)
    #[serde(default)]
    new_text: Option<String>,
    /// Which match (1-based) if old_text occurs more than once
    #[serde(default)]
    #[schemars(range(min = 1))]
    occurrence: Option<u64>,
    /// Several edits of this file, all or none (instead of old_text/new_text)
    #[serde(default)]
    edits: Option<Vec<EditHunkArgs>>,
}

#[derive(Deserialize, JsonSchema)]
#[allow(dead_code)]
struct EditHunkArgs {
    old_text: String,
    new_text: String,
}

const OLD_KEYS: [&str; 4] = ["old_text", "old_string", "old", "search"];
const NEW_KEYS: [&str; 4] = ["new_text", "new_string", "new", "replace"];

/// The hunks of an `editFile` call: `edits: [...]`, or one `old_text`/`new_text` pair.
fn hunks_of(args: &Value) -> Result<Vec<Hunk>, ToolError> {
    let one = |v: &Value, at: &str| -> Result<Hunk, ToolError> {
        let old = arg_str(v, &OLD_KEYS).ok_or_else(|| {
            bad_args(format!(
                "`old_text`{at} (the exact text to replace, a string) is required"
            ))
        })?;
        let new = arg_str(v, &NEW_KEYS).ok_or_else(|| {
            bad_args(format!(
                "`new_text`{at} (the replacement, a string; \"\" deletes) is required"
            ))
        })?;
        Ok(Hunk {
            old: old.to_string(),
            new: new.to_string(),
            occurrence: arg_usize(v, "occurrence")?,
        })
    };
    match args.get("edits") {
        None | Some(Value::Null) => Ok(vec![one(args, "")?]),
        Some(Value::Array(list)) => {
            if arg_str(args, &OLD_KEYS).is_some() {
                return Err(bad_args(
                    "pass either old_text/new_text or edits, not both (put every change in edits)",
                ));
            }
            if list.is_empty() {
                return Err(bad_args(
                    "`edits` is empty: give at least one {old_text, new_text}",
                ));
            }
            list.iter()
                .enumerate()
                .map(|(i, h)| one(h, &format!(" of edits[{i}]")))
                .collect()
        }
        Some(other) => Err(bad_args(format!(
            "`edits` must be an array of {{old_text, new_text}} objects, got {other}"
        ))),
    }
}

impl EditFile {
    fn plan(&self, ctx: &ToolContext, args: &Value) -> Result<Plan, ToolError> {
        let path = required_path(args)?;
        let hunks = hunks_of(args)?;
        let sp = resolve(ctx, path, Intent::Write)?;
        let Some(cur) = current_content(ctx, &sp)? else {
            return Err(ToolError::new(
                "not_found",
                format!("{path} does not exist; create it with writeFile"),
            ));
        };
        // No read-stamp conflict check here: old_text must match the current content, which
        // is the check a stale read would fail anyway.
        let text = String::from_utf8(cur.bytes.clone()).map_err(|_| {
            ToolError::new(
                "not_text",
                format!(
                    "{} is not valid UTF-8 text; replace it whole with writeFile",
                    shown(ctx, sp.abs())
                ),
            )
        })?;
        let edited = apply_hunks(&text, &hunks).map_err(|e| {
            ToolError::new(e.code, format!("{}: {}", shown(ctx, sp.abs()), e.message))
        })?;
        let mut extra = json!({"edits": hunks.len()});
        if !edited.notices.is_empty() {
            extra["notice"] = json!(edited.notices.join(" "));
        }
        Ok(Plan {
            sp,
            before: Some(cur.bytes),
            new: edited.text,
            extra,
        })
    }
}

impl Tool for EditFile {
    fn name(&self) -> &'static str {
        "editFile"
    }
    fn description(&self) -> &'static str {
        "Change a file: replace old_text (copied exactly from the file, a few whole lines) \
         with new_text. old_text must occur once, or pass occurrence. Several changes: \
         edits: [{old_text, new_text}, ...]."
    }
    fn parameters(&self) -> Value {
        args_schema::<EditFileArgs>()
    }
    fn class(&self) -> ToolClass {
        ToolClass::Write
    }
    fn target_path(&self, args: &Value) -> Option<String> {
        arg_path(args).map(str::to_string)
    }
    fn preview(&self, ctx: &ToolContext, args: &Value) -> Option<Preview> {
        self.plan(ctx, args).ok().map(|p| p.preview(ctx))
    }
    fn call(&self, ctx: &ToolContext, args: &Value) -> Result<Value, ToolError> {
        self.plan(ctx, args)?.apply(ctx)
    }
}

// ---------------------------------------------------------------------------------------------

pub struct WriteFile;

// The arguments of `writeFile` (schema only, as for `ReadFileArgs`).
#[derive(Deserialize, JsonSchema)]
#[allow(dead_code)]
struct WriteFileArgs {
    /// File path relative to the repository root
    path: String,
    /// The complete new content of the file (no line numbers)
    content: String,
}

impl WriteFile {
    fn plan(&self, ctx: &ToolContext, args: &Value) -> Result<Plan, ToolError> {
        let path = required_path(args)?;
        let content = arg_str(args, &["content", "text"]).ok_or_else(|| {
            bad_args("`content` (the whole new file content, a string) is required")
        })?;
        let sp = resolve(ctx, path, Intent::Write)?;
        let cur = current_content(ctx, &sp)?;
        if let (Some(cur), Some(stamp)) = (&cur, stamp_of(ctx, sp.abs())) {
            refuse_conflict(ctx, &sp, cur, &stamp)?;
        }
        Ok(Plan {
            sp,
            before: cur.map(|c| c.bytes),
            new: content.to_string(),
            extra: json!({}),
        })
    }
}

impl Tool for WriteFile {
    fn name(&self) -> &'static str {
        "writeFile"
    }
    fn description(&self) -> &'static str {
        "Create a new file. To change an existing file use editFile; writeFile replaces the \
         whole content, so every line you leave out is lost. Read an existing file first: if it \
         changed since you read it, the write is refused as a conflict."
    }
    fn parameters(&self) -> Value {
        args_schema::<WriteFileArgs>()
    }
    fn class(&self) -> ToolClass {
        ToolClass::Write
    }
    fn target_path(&self, args: &Value) -> Option<String> {
        arg_path(args).map(str::to_string)
    }
    fn preview(&self, ctx: &ToolContext, args: &Value) -> Option<Preview> {
        self.plan(ctx, args).ok().map(|p| p.preview(ctx))
    }
    fn call(&self, ctx: &ToolContext, args: &Value) -> Result<Value, ToolError> {
        self.plan(ctx, args)?.apply(ctx)
    }
}

pub struct ReplaceLines;

// The arguments of `replaceLines` (schema only, as for `ReadFileArgs`).
#[derive(Deserialize, JsonSchema)]
#[allow(dead_code)]
struct ReplaceLinesArgs {
    /// File path relative to the repository root
    path: String,
    /// First line to replace (1-based)
    #[schemars(range(min = 1))]
    start_line: u64,
    /// Last line to replace, inclusive
    #[schemars(range(min = 0))]
    end_line: u64,
    /// Replacement lines, without line numbers
    new_text: String,
}

impl ReplaceLines {
    fn plan(&self, ctx: &ToolContext, args: &Value) -> Result<Plan, ToolError> {
        let path = required_path(args)?;
        let start =
            arg_usize(args, "start_line")?.ok_or_else(|| bad_args("`start_line` is required"))?;
        let end = arg_usize(args, "end_line")?.ok_or_else(|| bad_args("`end_line` is required"))?;
        let new_text = arg_str(args, &["new_text", "text", "content"])
            .ok_or_else(|| bad_args("`new_text` (a string; \"\" deletes the lines) is required"))?;
        let sp = resolve(ctx, path, Intent::Write)?;
        let Some(cur) = current_content(ctx, &sp)? else {
            return Err(ToolError::new(
                "not_found",
                format!("{path} does not exist; create it with writeFile"),
            ));
        };
        let Some(stamp) = stamp_of(ctx, sp.abs()) else {
            return Err(ToolError::new(
                "read_first",
                format!(
                    "read {} with readFile before replacing lines, so the line numbers are the file's current ones",
                    shown(ctx, sp.abs())
                ),
            ));
        };
        refuse_conflict(ctx, &sp, &cur, &stamp)?;
        let text = String::from_utf8(cur.bytes.clone()).map_err(|_| {
            ToolError::new(
                "not_text",
                format!(
                    "{} is not valid UTF-8 text; replace it whole with writeFile",
                    shown(ctx, sp.abs())
                ),
            )
        })?;
        let (new, inserted) = replace_lines(&text, start, end, new_text)
            .map_err(|m| ToolError::new("bad_range", format!("{path}: {m}")))?;
        let extra = json!({
            "start_line": start,
            "end_line": end,
            "inserted_lines": inserted,
            "new_end_line": start + inserted - 1,
        });
        Ok(Plan {
            sp,
            before: Some(cur.bytes),
            new,
            extra,
        })
    }
}

impl Tool for ReplaceLines {
    fn name(&self) -> &'static str {
        "replaceLines"
    }
    fn description(&self) -> &'static str {
        "Replace lines start_line..end_line (1-based, inclusive, as numbered by readFile) of a \
         file you have read with new_text. new_text \"\" deletes them; end_line = start_line - 1 \
         inserts before start_line. Refused if the file changed since you read it."
    }
    fn parameters(&self) -> Value {
        args_schema::<ReplaceLinesArgs>()
    }
    fn class(&self) -> ToolClass {
        ToolClass::Write
    }
    fn target_path(&self, args: &Value) -> Option<String> {
        arg_path(args).map(str::to_string)
    }
    fn preview(&self, ctx: &ToolContext, args: &Value) -> Option<Preview> {
        self.plan(ctx, args).ok().map(|p| p.preview(ctx))
    }
    fn call(&self, ctx: &ToolContext, args: &Value) -> Result<Value, ToolError> {
        self.plan(ctx, args)?.apply(ctx)
    }
}

fn refuse_conflict(
    ctx: &ToolContext,
    sp: &SafePath,
    cur: &Current,
    stamp: &str,
) -> Result<(), ToolError> {
    if sha256_hex(&cur.bytes) == stamp {
        return Ok(());
    }
    Err(ToolError::new(
        "conflict",
        format!(
            "{} changed since you read it (edited by the user or another tool); read it again with readFile and redo the edit on the current content",
            shown(ctx, sp.abs())
        ),
    ))
}

/// Lines `start..=end` (1-based) of `text` replaced by `new_text`; returns the new text and the
/// number of lines inserted. Keeps the file's line endings (`\r\n` or `\n`) and whether it ends
/// with one.
pub(crate) fn replace_lines(
    text: &str,
    start: usize,
    end: usize,
    new_text: &str,
) -> Result<(String, usize), String> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let total = lines.len();
    if start == 0 {
        return Err("start_line is 1-based; the first line is 1".into());
    }
    if start > total + 1 {
        return Err(format!(
            "start_line {start} is past the end: the file has {total} lines (use {} to append)",
            total + 1
        ));
    }
    if end + 1 < start {
        return Err(format!(
            "end_line {end} is before start_line {start} (end_line = start_line - 1 inserts)"
        ));
    }
    if end > total {
        return Err(format!(
            "end_line {end} is past the end: the file has {total} lines"
        ));
    }
    let eol = if lines.first().is_some_and(|l| l.ends_with("\r\n")) {
        "\r\n"
    } else {
        "\n"
    };
    let mut body = new_text.replace("\r\n", "\n");
    if eol == "\r\n" {
        body = body.replace('\n', "\r\n");
    }
    let last_unterminated = lines.last().is_some_and(|l| !l.ends_with('\n'));
    let replaces_last = end == total && end >= start;
    let keep_unterminated = replaces_last && last_unterminated;
    if !(body.is_empty() || body.ends_with('\n') || keep_unterminated) {
        body.push_str(eol);
    }
    let inserted = body.split_inclusive('\n').count();
    let mut out = String::with_capacity(text.len() + body.len());
    for l in &lines[..start - 1] {
        out.push_str(l);
    }
    if start == total + 1 && last_unterminated && !body.is_empty() {
        // Appending after a last line that had no newline: give it one first.
        out.push_str(eol);
    }
    out.push_str(&body);
    for l in &lines[end..] {
        out.push_str(l);
    }
    Ok((out, inserted))
}

/// What a write tool would do: computed from the current content and the arguments, without
/// writing, so that the permission prompt can show the diff before the call is allowed.
struct Plan {
    sp: SafePath,
    before: Option<Vec<u8>>,
    new: String,
    extra: Value,
}

impl Plan {
    fn preview(&self, ctx: &ToolContext) -> Preview {
        let path = shown(ctx, self.sp.abs());
        let old = self
            .before
            .as_deref()
            .map(String::from_utf8_lossy)
            .unwrap_or_default();
        Preview {
            diff: diff_of(&path, &old, &self.new),
            path,
            before_sha256: self.before.as_deref().map(sha256_hex),
            after_sha256: sha256_hex(self.new.as_bytes()),
        }
    }

    fn apply(self, ctx: &ToolContext) -> Result<Value, ToolError> {
        apply_edit(ctx, &self.sp, self.before, self.new, self.extra)
    }
}

/// The unified diff of an edit, cut at [`DIFF_MAX_BYTES`].
fn diff_of(path: &str, old: &str, new: &str) -> String {
    let mut diff = similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(&format!("a/{path}"), &format!("b/{path}"))
        .to_string();
    if diff.len() > DIFF_MAX_BYTES {
        let cut = noctune_core::text::prefix_bytes(&diff, DIFF_MAX_BYTES).len();
        diff.truncate(cut);
        diff.push_str("\n[diff cut; the file is written in full]\n");
    }
    diff
}

/// Backup, write (through the editor when there is one), new read stamp, diff.
fn apply_edit(
    ctx: &ToolContext,
    sp: &SafePath,
    before: Option<Vec<u8>>,
    new: String,
    extra: Value,
) -> Result<Value, ToolError> {
    let path = shown(ctx, sp.abs());
    let old_text = before
        .as_deref()
        .map(String::from_utf8_lossy)
        .unwrap_or_default();
    let mut out = json!({"path": path, "bytes": new.len(), "created": before.is_none()});
    if let (Value::Object(o), Value::Object(e)) = (&mut out, extra) {
        o.extend(e);
    }
    if before.as_deref() == Some(new.as_bytes()) {
        set_stamp(ctx, sp.abs(), sha256_hex(new.as_bytes()));
        out["unchanged"] = json!(true);
        out["backup"] = Value::Null;
        out["diff"] = json!("");
        return Ok(out);
    }
    // Backups live beside the root the file is in (the repository, or another allowed root),
    // so that root's undo finds them.
    let edit = backups::record_edit(
        sp.root_dir(),
        &EditRecord {
            session_id: &ctx.session_id,
            rel: sp.rel(),
            before: before.as_deref(),
            after: Some(new.as_bytes()),
        },
    )
    .map_err(|e| {
        ToolError::new(
            "backup_failed",
            format!("no edit made: cannot back up {path} first: {e}"),
        )
    })?;
    let written = match &ctx.edit_sink {
        Some(sink) => sink.replace_file(sp.abs(), &old_text, &new).map_err(|e| {
            ToolError::new(
                "edit_rejected",
                format!("the editor did not apply the edit of {path}: {e}"),
            )
        }),
        None => ctx
            .sandbox
            .write_atomic(sp, new.as_bytes())
            .map_err(refused),
    };
    if let Err(e) = written {
        let _ = backups::discard(sp.root_dir(), &edit.id);
        return Err(e);
    }
    set_stamp(ctx, sp.abs(), sha256_hex(new.as_bytes()));
    let diff = diff_of(&path, &old_text, &new);
    out["backup"] = json!(edit.backup);
    out["diff"] = json!(diff);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_lines_ranges() {
        let t = "a\nb\nc\n";
        assert_eq!(
            replace_lines(t, 2, 2, "B").unwrap(),
            ("a\nB\nc\n".into(), 1)
        );
        assert_eq!(replace_lines(t, 2, 3, "").unwrap().0, "a\n");
        assert_eq!(replace_lines(t, 1, 0, "z").unwrap().0, "z\na\nb\nc\n");
        assert_eq!(
            replace_lines(t, 4, 3, "d\ne").unwrap(),
            ("a\nb\nc\nd\ne\n".into(), 2)
        );
        assert!(replace_lines(t, 5, 5, "x").is_err());
        assert!(replace_lines(t, 3, 1, "x").is_err());
        assert!(replace_lines(t, 0, 1, "x").is_err());
    }

    #[test]
    fn replace_lines_keeps_crlf_and_missing_final_newline() {
        assert_eq!(
            replace_lines("a\r\nb\r\n", 1, 1, "x\ny").unwrap().0,
            "x\r\ny\r\nb\r\n"
        );
        assert_eq!(replace_lines("a\nb", 2, 2, "c").unwrap().0, "a\nc");
        assert_eq!(replace_lines("a\nb", 3, 2, "c").unwrap().0, "a\nb\nc\n");
    }

    #[test]
    fn pages() {
        let p = page_of("x\ny\nz\n", Some(2), None).unwrap();
        assert_eq!((p.start, p.end, p.total, p.truncated), (2, 3, 3, false));
        assert_eq!(p.content, "2: y\n3: z\n");
        assert!(page_of("x\n", Some(3), None).is_err());
        let big: String = (0..3000).map(|i| format!("l{i}\n")).collect();
        let p = page_of(&big, None, None).unwrap();
        assert_eq!((p.end, p.truncated), (READ_MAX_LINES, true));
        let wide = "y".repeat(READ_MAX_BYTES * 2);
        let p = page_of(&wide, None, None).unwrap();
        assert!(p.truncated && p.content.len() < READ_MAX_BYTES + 20);
    }
}
