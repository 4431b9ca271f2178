//! What the file tools (`files.rs`) and `search` (`search.rs`) share: lenient arguments, the
//! sandbox, how a path is shown, globs and the folders no walk enters. Apart from both so that
//! neither tool file imports the other's helpers.

use crate::tool::{ToolContext, ToolError};
use noctune_sandbox::{Intent, SafePath};
use serde_json::Value;
use std::path::Path;

// Arguments. Small models send numbers as strings and invent near-synonyms for `path`; accept
// those rather than failing the turn.

const PATH_KEYS: [&str; 4] = ["path", "file", "file_path", "filepath"];

pub(crate) fn bad_args(msg: impl Into<String>) -> ToolError {
    ToolError::new("bad_arguments", msg)
}

pub(crate) fn arg_str<'a>(args: &'a Value, keys: &[&str]) -> Option<&'a str> {
    keys.iter()
        .find_map(|k| args.get(*k).and_then(Value::as_str))
}

pub(crate) fn arg_path(args: &Value) -> Option<&str> {
    arg_str(args, &PATH_KEYS)
}

pub(crate) fn arg_usize(args: &Value, key: &str) -> Result<Option<usize>, ToolError> {
    match args.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| *f >= 0.0 && f.fract() == 0.0)
                    .map(|f| f as u64)
            })
            .map(|n| Some(n as usize))
            .ok_or_else(|| {
                bad_args(format!(
                    "`{key}` must be a non-negative whole number, got {n}"
                ))
            }),
        Some(Value::String(s)) => s.trim().parse::<usize>().map(Some).map_err(|_| {
            bad_args(format!(
                "`{key}` must be a non-negative whole number, got {s:?}"
            ))
        }),
        Some(other) => Err(bad_args(format!("`{key}` must be a number, got {other}"))),
    }
}

pub(crate) fn arg_bool(args: &Value, key: &str) -> bool {
    match args.get(key) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => {
            matches!(s.trim().to_ascii_lowercase().as_str(), "true" | "yes" | "1")
        }
        Some(Value::Number(n)) => n.as_u64() == Some(1),
        _ => false,
    }
}

pub(crate) fn required_path(args: &Value) -> Result<&str, ToolError> {
    arg_path(args)
        .ok_or_else(|| bad_args("`path` (a file path relative to the repository root) is required"))
}

/// The sandbox, with its refusal turned into a tool error the model can act on.
pub(crate) fn resolve(
    ctx: &ToolContext,
    path: &str,
    intent: Intent,
) -> Result<SafePath, ToolError> {
    ctx.sandbox
        .resolve(&ctx.repo_root, path, intent)
        .map_err(|e| ToolError::new(e.code(), e.to_string()))
}

/// How a path is shown to the model: relative to the repository root when inside it (so it can
/// cite `path:line` and pass it back), absolute otherwise (another allowed root).
pub(crate) fn shown(ctx: &ToolContext, abs: &Path) -> String {
    match abs.strip_prefix(&ctx.repo_root) {
        Ok(rel) if rel.as_os_str().is_empty() => ".".to_string(),
        Ok(rel) => rel.to_string_lossy().into_owned(),
        Err(_) => abs.to_string_lossy().into_owned(),
    }
}

/// A glob over repository-relative paths; a glob without '/' also matches bare file names
/// (`test_*.py` finds `tests/test_a.py`).
pub(crate) fn glob_filter(
    glob: Option<&str>,
) -> Result<Option<(globset::GlobMatcher, bool)>, ToolError> {
    let Some(g) = glob.map(str::trim).filter(|g| !g.is_empty()) else {
        return Ok(None);
    };
    let m = globset::GlobBuilder::new(g)
        .literal_separator(false)
        .build()
        .map_err(|e| {
            bad_args(format!(
                "`glob` {g:?} is not a valid glob: {e}; e.g. \"*.py\" or \"src/**/*.rs\""
            ))
        })?
        .compile_matcher();
    Ok(Some((m, !g.contains('/'))))
}

pub(crate) fn glob_accepts(filter: &Option<(globset::GlobMatcher, bool)>, rel: &str) -> bool {
    match filter {
        None => true,
        Some((m, by_name)) => {
            m.is_match(rel) || (*by_name && rel.rsplit('/').next().is_some_and(|n| m.is_match(n)))
        }
    }
}

/// Folders no listing or search descends into: git's internals and our own cache.
pub(crate) fn skipped_dir(name: &std::ffi::OsStr) -> bool {
    name == ".git" || name == ".noctune_cache"
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lenient_numbers() {
        let a = json!({"start_line": "12", "end_line": 14.0, "bad": -1});
        assert_eq!(arg_usize(&a, "start_line").unwrap(), Some(12));
        assert_eq!(arg_usize(&a, "end_line").unwrap(), Some(14));
        assert!(arg_usize(&a, "bad").is_err());
        assert_eq!(arg_usize(&a, "none").unwrap(), None);
    }
}
