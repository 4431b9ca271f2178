//! Gates: checks an edited file must pass before it may be proposed. Parse (Python's own
//! compiler, one process for the whole batch) and lint (ruff: the edit may not add findings).

use crate::gate_memo::{FileLint, LintMemo, lint_key};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

const PY_PARSE: &str = r#"
import json, sys
out = {}
for path, src in json.load(sys.stdin).items():
    try:
        compile(src, path, "exec", dont_inherit=True)
    except (SyntaxError, ValueError) as e:
        out[path] = f"{type(e).__name__}: {e}"
json.dump(out, sys.stdout)
"#;

#[derive(Debug)]
pub enum GateUnavailable {
    Missing(String),
}

/// Parses each Python source; returns the error message per path that does not parse.
/// `Err` when python3 cannot be run (the caller logs that the gate was skipped).
pub fn python_parse_errors(
    sources: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, GateUnavailable> {
    if sources.is_empty() {
        return Ok(BTreeMap::new());
    }
    let input = serde_json::to_vec(sources).map_err(|e| GateUnavailable::Missing(e.to_string()))?;
    let out = run_with_stdin(&["python3", "-I", "-c", PY_PARSE], &input)?;
    serde_json::from_slice(&out)
        .map_err(|e| GateUnavailable::Missing(format!("python3 gate output: {e}")))
}

/// Batch parse check of files on disk with ruff's parser (fast: parallel, no bytecode), for
/// the command proposer's many edits. Returns the first syntax error per repo-relative path.
/// Independent of the project's ruff configuration (`--isolated`): the fallback for when
/// [`ruff_lint`] cannot run with it.
pub fn ruff_parse_errors(
    dir: &Path,
    files: &[String],
) -> Result<BTreeMap<String, String>, GateUnavailable> {
    let mut errors = BTreeMap::new();
    for (rel, f) in ruff_findings(dir, &["--isolated", "--select", "E9"], files)? {
        errors.entry(rel).or_insert_with(|| syntax_error_text(&f));
    }
    Ok(errors)
}

/// What one `ruff check` of files on disk found, with the project's own ruff configuration.
#[derive(Debug, Default)]
pub struct Lint {
    /// Finding code -> count, per file (every file asked about has an entry).
    pub counts: BTreeMap<String, BTreeMap<String, usize>>,
    /// The first syntax error per file that does not parse: ruff reports those whatever
    /// rules are selected, so one run is both the parse gate and the lint gate.
    pub syntax: BTreeMap<String, String>,
}

impl Lint {
    fn add(&mut self, path: &str, file: FileLint) {
        self.counts.insert(path.to_string(), file.counts);
        if let Some(e) = file.syntax {
            self.syntax.insert(path.to_string(), e);
        }
    }

    /// Whether ruff found anything at all in `file`.
    pub fn has_findings(&self, file: &str) -> bool {
        self.counts.get(file).is_some_and(|c| !c.is_empty())
    }
}

/// The options of [`ruff_lint`]'s run (besides those of every gate run): what its answers
/// depend on, for the memo.
pub const LINT_FLAGS: &[&str] = &["--no-fix"];

/// Ruff's findings for files on disk, with the project's own ruff configuration: one batch
/// run for many files.
pub fn ruff_lint(dir: &Path, files: &[String]) -> Result<Lint, GateUnavailable> {
    let mut lint = Lint {
        counts: files.iter().map(|f| (f.clone(), BTreeMap::new())).collect(),
        syntax: BTreeMap::new(),
    };
    for (rel, f) in ruff_findings(dir, LINT_FLAGS, files)? {
        let code = f.get("code").and_then(|c| c.as_str());
        // `invalid-syntax` since ruff 0.12; no code at all before it.
        let code = match code {
            None | Some("invalid-syntax") | Some("E999") => {
                lint.syntax
                    .entry(rel.clone())
                    .or_insert_with(|| syntax_error_text(&f));
                "syntax"
            }
            Some(c) => c,
        };
        *lint
            .counts
            .entry(rel)
            .or_default()
            .entry(code.to_string())
            .or_insert(0) += 1;
    }
    Ok(lint)
}

/// [`ruff_lint`] of `files` (each with the blob id of its content on disk), asking ruff only
/// about those `memo` has no answer for, and telling it ruff's answers.
pub fn ruff_lint_memo(
    dir: &Path,
    files: &[(String, git2::Oid)],
    memo: &mut LintMemo,
) -> Result<Lint, GateUnavailable> {
    let mut lint = Lint::default();
    let mut ask = Vec::new();
    for (path, blob) in files {
        match memo.get(&lint_key(path, blob)) {
            Some(known) => lint.add(path, known),
            None => ask.push((path, blob)),
        }
    }
    if ask.is_empty() {
        return Ok(lint);
    }
    let paths: Vec<String> = ask.iter().map(|(p, _)| (*p).clone()).collect();
    let mut found = ruff_lint(dir, &paths)?;
    for (path, blob) in ask {
        let answer = FileLint {
            counts: found.counts.remove(path).unwrap_or_default(),
            syntax: found.syntax.remove(path),
        };
        memo.put(lint_key(path, blob), answer.clone());
        lint.add(path, answer);
    }
    Ok(lint)
}

fn syntax_error_text(f: &serde_json::Value) -> String {
    let row = f
        .pointer("/location/row")
        .and_then(|v| v.as_u64())
        .unwrap_or(0);
    let msg = f
        .get("message")
        .and_then(|v| v.as_str())
        .unwrap_or("syntax error");
    format!("line {row}: {msg}")
}

/// Runs `ruff check <extra> --output-format json` on `files` in `dir`; returns each finding
/// with its repo-relative path.
fn ruff_findings(
    dir: &Path,
    extra: &[&str],
    files: &[String],
) -> Result<Vec<(String, serde_json::Value)>, GateUnavailable> {
    let mut findings: Vec<serde_json::Value> = Vec::new();
    // One run for all the files, unless their names would not fit on one command line.
    for batch in crate::tools::batches(files, crate::tools::MAX_FILE_ARGS_BYTES) {
        let out = Command::new("ruff")
            .arg("check")
            .args(extra)
            .args(["--no-cache", "--output-format", "json", "--exit-zero", "--"])
            .args(crate::tools::file_operands(batch))
            .current_dir(dir)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .map_err(|e| GateUnavailable::Missing(format!("ruff: {e}")))?;
        let part: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout)
            .map_err(|e| GateUnavailable::Missing(format!("ruff output: {e}")))?;
        findings.extend(part);
    }
    let root = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    Ok(findings
        .into_iter()
        .map(|f| {
            let file = f.get("filename").and_then(|v| v.as_str()).unwrap_or("");
            let rel = Path::new(file)
                .strip_prefix(&root)
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_else(|_| file.to_string());
            (rel, f)
        })
        .collect())
}

/// Ruff's finding codes (with their count) for a source, as if it were at `path`.
pub fn lint_codes(path: &str, source: &str) -> Result<BTreeMap<String, usize>, GateUnavailable> {
    let path = crate::tools::file_operand(path);
    let out = run_with_stdin(
        &[
            "ruff",
            "check",
            "--isolated",
            "--no-cache",
            "--exit-zero",
            "--output-format",
            "json",
            "--stdin-filename",
            &path,
            "-",
        ],
        source.as_bytes(),
    )?;
    let findings: Vec<serde_json::Value> = serde_json::from_slice(&out)
        .map_err(|e| GateUnavailable::Missing(format!("ruff output: {e}")))?;
    let mut codes = BTreeMap::new();
    for f in findings {
        let code = f
            .get("code")
            .and_then(|c| c.as_str())
            .unwrap_or("syntax")
            .to_string();
        *codes.entry(code).or_insert(0) += 1;
    }
    Ok(codes)
}

/// Findings in `after` that `before` did not have (by code, counting repeats).
pub fn new_findings(
    before: &BTreeMap<String, usize>,
    after: &BTreeMap<String, usize>,
) -> Vec<String> {
    after
        .iter()
        .filter(|(code, n)| **n > before.get(*code).copied().unwrap_or(0))
        .map(|(code, _)| code.clone())
        .collect()
}

/// Lets ruff fix what it can in `source` (the repair step for a model's edit).
pub fn ruff_fix(path: &str, source: &str) -> Result<String, GateUnavailable> {
    let path = crate::tools::file_operand(path);
    let out = run_with_stdin(
        &[
            "ruff",
            "check",
            "--isolated",
            "--no-cache",
            "--fix",
            "--exit-zero",
            "--quiet",
            "--stdin-filename",
            &path,
            "-",
        ],
        source.as_bytes(),
    )?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

fn run_with_stdin(argv: &[&str], input: &[u8]) -> Result<Vec<u8>, GateUnavailable> {
    let mut child = Command::new(argv[0])
        .args(&argv[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| GateUnavailable::Missing(format!("{}: {e}", argv[0])))?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| GateUnavailable::Missing("stdin".into()))?;
    let data = input.to_vec();
    // Write from another thread so a large output cannot deadlock against a large input.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let out = child
        .wait_with_output()
        .map_err(|e| GateUnavailable::Missing(e.to_string()))?;
    let _ = writer.join();
    Ok(out.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn new_findings_counts_repeats() {
        let b = BTreeMap::from([("F401".to_string(), 1)]);
        let a = BTreeMap::from([("F401".to_string(), 2), ("E711".to_string(), 1)]);
        assert_eq!(new_findings(&b, &a), vec!["E711", "F401"]);
        assert!(new_findings(&a, &b).is_empty());
    }

    #[test]
    fn a_file_named_like_an_option_is_linted_and_fixed_as_that_file() {
        for path in ["-rf.py", "--config=evil.py"] {
            let codes = lint_codes(path, "import os\n").expect("ruff on PATH");
            assert_eq!(codes, BTreeMap::from([("F401".to_string(), 1)]), "{path}");
            assert_eq!(
                ruff_fix(path, "import os\n").expect("ruff on PATH"),
                "",
                "{path}"
            );
        }
    }
}
