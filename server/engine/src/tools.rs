//! Running a pack's tools (fixers and checks) as child processes in the run's worktree, with a
//! timeout, a cooperative stop, and the output's tail kept for the event log.

pub mod junit;

use noctune_config::ToolDef;
use noctune_core::patchset::{CheckReport, CheckStatus, parse_findings, parse_unittest};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub enum ToolOutcome {
    Finished {
        code: i32,
        tail: String,
        elapsed: Duration,
    },
    TimedOut {
        after: Duration,
        tail: String,
    },
    Interrupted,
    NotFound {
        program: String,
        detail: String,
    },
}

impl ToolOutcome {
    pub fn succeeded(&self) -> bool {
        matches!(self, ToolOutcome::Finished { code: 0, .. })
    }
    pub fn tail(&self) -> &str {
        match self {
            ToolOutcome::Finished { tail, .. } | ToolOutcome::TimedOut { tail, .. } => tail,
            ToolOutcome::NotFound { detail, .. } => detail,
            ToolOutcome::Interrupted => "",
        }
    }
    pub fn describe(&self) -> String {
        match self {
            ToolOutcome::Finished { code, .. } => format!("exit code {code}"),
            ToolOutcome::TimedOut { after, .. } => format!("timed out after {}s", after.as_secs()),
            ToolOutcome::Interrupted => "interrupted by a stop request".into(),
            ToolOutcome::NotFound { program, .. } => {
                format!("{program} not found on PATH; install it or change [tools.<name>].command")
            }
        }
    }
}

/// Expands `{files}` in the tool's argv (to `files`, or `.` when empty), each file as an
/// operand the tool cannot take for an option ([`file_operands`]).
pub fn argv(tool: &ToolDef, files: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for a in &tool.command {
        if a == "{files}" {
            if files.is_empty() {
                out.push(".".to_string());
            } else {
                out.extend(file_operands(files));
            }
        } else {
            out.push(a.clone());
        }
    }
    out
}

/// Repository paths as program arguments that no program reads as options: a name that
/// starts with `-` (`-rf.py`, `--config=evil.py`) or `@` (argparse's "read arguments from
/// this file", which pytest enables) becomes `./-rf.py`, the same file.
///
/// The prefix, rather than `--` alone, is the rule for every tool because it needs nothing of
/// the program: it holds for one that does not accept `--`, and wherever a user's argv puts
/// `{files}` (a `--` inserted before files followed by more options would turn those options
/// into operands). The built-in tools, which all accept it, also have `--` before `{files}`
/// (`noctune_config::builtin_tools`).
pub fn file_operands(files: &[String]) -> impl Iterator<Item = String> + '_ {
    files.iter().map(|f| file_operand(f))
}

/// One path of [`file_operands`] (also for an option's value: `--stdin-filename -rf.py` is
/// refused by ruff, which reads `-rf.py` as flags).
pub fn file_operand(path: &str) -> String {
    if path.starts_with('-') || path.starts_with('@') {
        format!("./{path}")
    } else {
        path.to_string()
    }
}

/// Whether a tool's argv names the files it should look at (`{files}`).
pub fn takes_files(tool: &ToolDef) -> bool {
    tool.command.iter().any(|a| a == "{files}")
}

/// The ruff subcommand a tool runs (`check`, `format`), for `ruff ...` and `python -m ruff
/// ...`; `None` for a tool that is not ruff.
pub fn ruff_subcommand(tool: &ToolDef) -> Option<&str> {
    let cmd = &tool.command;
    let program = Path::new(cmd.first()?).file_name()?.to_str()?;
    let rest = if program == "ruff" {
        &cmd[1..]
    } else {
        let at = cmd
            .windows(2)
            .position(|w| w[0] == "-m" && w[1] == "ruff")?;
        &cmd[at + 2..]
    };
    rest.iter()
        .take_while(|a| *a != "--" && *a != "{files}")
        .map(String::as_str)
        .find(|a| matches!(*a, "check" | "format"))
}

/// File kinds ruff takes when it walks a tree itself (`ruff format` also formats the Python
/// of Markdown files). A file named on its command line is read as Python whatever its name
/// (a README.txt is reported as a syntax error and a JSON file linted), so a ruff fixer is
/// given only these.
const RUFF_CHECK_EXTENSIONS: [&str; 4] = ["py", "pyi", "pyw", "ipynb"];

/// The files of `files` (the pack's files in scope) that fixer `tool` is given: all of them,
/// or for ruff only the kinds it reads itself ([`RUFF_CHECK_EXTENSIONS`]).
pub fn fixer_files(tool: &ToolDef, files: &[String]) -> Vec<String> {
    let Some(sub) = ruff_subcommand(tool) else {
        return files.to_vec();
    };
    files
        .iter()
        .filter(|f| {
            let ext = Path::new(f.as_str())
                .extension()
                .and_then(|e| e.to_str())
                .unwrap_or("");
            RUFF_CHECK_EXTENSIONS.contains(&ext) || (sub == "format" && ext == "md")
        })
        .cloned()
        .collect()
}

/// A fixer's argv for `files` (never empty: a fixer with no file in scope is not run, since
/// `{files}` alone means `.`). For ruff, `--force-exclude`: ruff fixes a file named on its
/// command line even where the project's `exclude` says not to, unless told so. For `ruff
/// format`, without `--quiet`/`--silent`, which hide why it failed (a file it cannot parse),
/// the only thing its log would have to say.
pub fn fixer_argv(tool: &ToolDef, files: &[String]) -> Vec<String> {
    let Some(sub) = ruff_subcommand(tool) else {
        return argv(tool, files);
    };
    let mut command: Vec<String> = tool.command.clone();
    if sub == "format" {
        command.retain(|a| !matches!(a.as_str(), "--quiet" | "-q" | "--silent"));
    }
    if !command.iter().any(|a| a == "--force-exclude") {
        // Among the options: before the `--` that ends them, or else before the files.
        let files_at = command.iter().position(|a| a == "{files}");
        let at = match files_at {
            Some(i) => command[..i].iter().position(|a| a == "--").unwrap_or(i),
            None => command.len(),
        };
        command.insert(at, "--force-exclude".into());
    }
    let tool = ToolDef {
        command,
        ..tool.clone()
    };
    argv(&tool, files)
}

/// Most bytes of file operands one tool invocation gets. Linux caps a command line (and the
/// environment) at a quarter of the stack limit, 2 MB by default; a large repository's file
/// list is passed in several runs instead.
pub const MAX_FILE_ARGS_BYTES: usize = 512 * 1024;

/// `files` in consecutive batches of at most `max_bytes` of operands each (a file longer
/// than that gets a batch of its own).
pub fn batches(files: &[String], max_bytes: usize) -> Vec<&[String]> {
    let mut out = Vec::new();
    let (mut start, mut size) = (0, 0);
    for (i, f) in files.iter().enumerate() {
        let n = f.len() + 3;
        if i > start && size + n > max_bytes {
            out.push(&files[start..i]);
            (start, size) = (i, 0);
        }
        size += n;
    }
    if start < files.len() {
        out.push(&files[start..]);
    }
    out
}

/// What a failed tool said about why: its `error:` lines (ruff's own messages, such as
/// `Failed to parse x.py:3:1: ...`), else the last lines of its output; at most 2,000 chars.
pub fn error_text(log: &Path) -> String {
    let text = std::fs::read(log)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let errors: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("error:"))
        .collect();
    let picked = if errors.is_empty() {
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        lines[lines.len().saturating_sub(10)..].join("\n")
    } else {
        errors.join("\n")
    };
    noctune_core::text::prefix_chars(picked.trim(), 2000).to_string()
}

/// Runs `tool` in `dir`. `should_stop` is polled every 50 ms; when it says so, the tool's
/// whole process group is killed and [`ToolOutcome::Interrupted`] returned.
pub fn run_tool(
    tool: &ToolDef,
    files: &[String],
    dir: &Path,
    log_path: &Path,
    should_stop: &dyn Fn() -> bool,
) -> std::io::Result<ToolOutcome> {
    run_argv(
        &argv(tool, files),
        Duration::from_secs(tool.timeout_secs),
        dir,
        log_path,
        should_stop,
    )
}

/// The import path a tool runs with: the worktree (and its `src/`, for the src layout) before
/// anything else, so that an installed copy of the project (an editable install of the user's
/// checkout, most often) cannot stand in for the code under test; then `PYTHONPATH` as it was.
pub fn python_path(dir: &Path) -> std::ffi::OsString {
    let mut parts: Vec<PathBuf> = vec![dir.to_path_buf()];
    if dir.join("src").is_dir() {
        parts.push(dir.join("src"));
    }
    if let Some(old) = std::env::var_os("PYTHONPATH") {
        parts.extend(std::env::split_paths(&old).filter(|p| !p.as_os_str().is_empty()));
    }
    std::env::join_paths(parts).unwrap_or_else(|_| dir.as_os_str().to_owned())
}

/// Runs the program `args` in `dir` ([`run_tool`] for an expanded argv).
pub fn run_argv(
    args: &[String],
    limit: Duration,
    dir: &Path,
    log_path: &Path,
    should_stop: &dyn Fn() -> bool,
) -> std::io::Result<ToolOutcome> {
    use std::os::unix::process::CommandExt;
    let log = std::fs::File::create(log_path)?;
    let start = Instant::now();
    let spawned = Command::new(&args[0])
        .args(&args[1..])
        .current_dir(dir)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONPATH", python_path(dir))
        .env("MYPY_CACHE_DIR", "/dev/null")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log))
        .process_group(0)
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(ToolOutcome::NotFound {
                program: args[0].clone(),
                detail: e.to_string(),
            });
        }
        Err(e) => return Err(e),
    };
    let pgid = child.id() as libc::pid_t;
    let kill_group = || {
        // SAFETY: signals the process group we created for this child.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    };
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(ToolOutcome::Finished {
                code: status.code().unwrap_or(-1),
                tail: tail_of(log_path),
                elapsed: start.elapsed(),
            });
        }
        if should_stop() {
            kill_group();
            let _ = child.wait();
            return Ok(ToolOutcome::Interrupted);
        }
        if start.elapsed() > limit {
            kill_group();
            let _ = child.wait();
            return Ok(ToolOutcome::TimedOut {
                after: limit,
                tail: tail_of(log_path),
            });
        }
        std::thread::sleep(Duration::from_millis(
            if start.elapsed() < Duration::from_millis(200) {
                5
            } else {
                50
            },
        ));
    }
}

/// Whether a tool runs pytest (`pytest ...`, `py.test ...`, `python -m pytest ...`): its
/// results are then read per test from a JUnit XML report.
pub fn is_pytest(tool: &ToolDef) -> bool {
    let base = |a: &str| {
        Path::new(a)
            .file_name()
            .and_then(|n| n.to_str())
            .map(str::to_string)
    };
    let program = tool
        .command
        .first()
        .and_then(|a| base(a))
        .unwrap_or_default();
    program == "pytest"
        || program == "py.test"
        || tool
            .command
            .windows(2)
            .any(|w| w[0] == "-m" && w[1] == "pytest")
}

/// A check's argv: [`argv`], and for pytest the options that make it write its per-test
/// results to `junit` (`--junitxml`, with `file` attributes so ids are pytest's node ids) and
/// leave no `.pytest_cache` in the worktree, and `--continue-on-collection-errors`: without it
/// one test module that cannot be imported (a missing test dependency, an incompatible pytest)
/// interrupts the session before any test runs, so the base commit and every patchset would be
/// judged by no test at all. They go before a `--`, after which pytest takes everything for a
/// path.
pub fn check_argv(tool: &ToolDef, files: &[String], junit: Option<&Path>) -> Vec<String> {
    let mut args = argv(tool, files);
    let Some(junit) = junit.filter(|_| is_pytest(tool)) else {
        return args;
    };
    let mut extra = Vec::new();
    if !args
        .windows(2)
        .any(|w| w[0] == "-p" && w[1] == "no:cacheprovider")
    {
        extra.extend(["-p".to_string(), "no:cacheprovider".to_string()]);
    }
    extra.extend([
        "--continue-on-collection-errors".to_string(),
        "-o".to_string(),
        "junit_family=xunit1".to_string(),
        format!("--junitxml={}", junit.display()),
    ]);
    let at = args.iter().position(|a| a == "--").unwrap_or(args.len());
    args.splice(at..at, extra);
    args
}

/// What a check run showed ([`CheckReport`]): pytest's exit 5 (no tests collected) checks
/// nothing; per-test results come from the JUnit report when pytest wrote one, findings from
/// the output otherwise.
pub fn check_report(outcome: &ToolOutcome, log: &Path, junit: Option<&Path>) -> CheckReport {
    let output = std::fs::read(log)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let tests = junit
        .and_then(|j| std::fs::read_to_string(j).ok())
        .and_then(|xml| junit::parse(&xml).ok())
        // Not pytest: a unittest-style runner run verbosely (Django's runtests.py -v 2) names
        // its tests too, so it is judged per test rather than by its exit status alone.
        .or_else(|| junit.is_none().then(|| parse_unittest(&output)).flatten());
    let (status, exit_code) = match outcome {
        ToolOutcome::Finished { code: 0, .. } => (CheckStatus::Passed, Some(0)),
        ToolOutcome::Finished { code: 5, .. } if junit.is_some() => (CheckStatus::Skipped, Some(5)),
        ToolOutcome::Finished { code, .. } => (CheckStatus::Failed, Some(*code)),
        ToolOutcome::NotFound { .. } => (CheckStatus::Skipped, None),
        ToolOutcome::TimedOut { .. } | ToolOutcome::Interrupted => (CheckStatus::Failed, None),
    };
    let findings = if tests.is_some() {
        Default::default()
    } else {
        parse_findings(&output)
    };
    let summary = match (&tests, status) {
        (_, CheckStatus::Skipped) if exit_code == Some(5) => "no tests collected".to_string(),
        (_, CheckStatus::Skipped) => outcome.describe(),
        (Some(t), _) if t.failing.is_empty() => format!("{} passed", t.passed.len()),
        (Some(t), _) => format!("{} failing of {}", t.failing.len(), t.total()),
        (None, _) if !findings.is_empty() => {
            let n: usize = findings.values().sum();
            format!("{}, {n} finding(s)", outcome.describe())
        }
        (None, CheckStatus::Failed) => {
            let last = output
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("");
            if last.is_empty() {
                outcome.describe()
            } else {
                format!(
                    "{}: {}",
                    outcome.describe(),
                    noctune_core::text::prefix_chars(last.trim(), 200)
                )
            }
        }
        (None, _) => outcome.describe(),
    };
    CheckReport {
        status,
        exit_code,
        tests,
        findings,
        summary,
    }
}

/// Top-level Python packages of a checkout (folders with an `__init__.py` at its root or
/// under `src/`), the names an installed copy of the project would also have.
pub fn project_packages(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for root in [dir.to_path_buf(), dir.join("src")] {
        let Ok(entries) = std::fs::read_dir(&root) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let is_ident = !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if is_ident
                && !matches!(name.as_str(), "tests" | "test" | "docs" | "examples")
                && e.path().join("__init__.py").is_file()
            {
                out.push(name);
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Where `python` imports each of `names` from when the worktree is not on its path: an
/// installed copy of the project (`(name, location)`), which the tools would have imported
/// instead of the worktree's code without [`python_path`]. Empty when python cannot tell.
pub fn installed_copies(python: &str, worktree: &Path, names: &[String]) -> Vec<(String, String)> {
    if names.is_empty() {
        return Vec::new();
    }
    const PROBE: &str = r#"import importlib.util, os, sys
wt = os.path.realpath(sys.argv[1])
sys.path = [p for p in sys.path if p and not os.path.realpath(p).startswith(wt)]
for n in sys.argv[2:]:
    try:
        spec = importlib.util.find_spec(n)
    except Exception:
        spec = None
    if spec is None:
        continue
    loc = spec.origin or next(iter(spec.submodule_search_locations or []), None)
    if loc and not os.path.realpath(loc).startswith(wt):
        print(n + "\t" + loc)
"#;
    let out = Command::new(python)
        .arg("-c")
        .arg(PROBE)
        .arg(worktree)
        .args(names)
        .current_dir(std::env::temp_dir())
        .env_remove("PYTHONPATH")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output();
    let Ok(out) = out else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(n, loc)| (n.to_string(), loc.to_string()))
        .collect()
}

/// The last 40 lines (at most 4 KB) of a log file.
pub fn tail_of(path: &Path) -> String {
    let text = std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let mut tail = lines[lines.len().saturating_sub(40)..].join("\n");
    if tail.len() > 4096 {
        tail = noctune_core::text::suffix_bytes(&tail, 4096).to_string();
    }
    tail
}

#[cfg(test)]
mod tests {
    use super::*;
    use noctune_config::ToolStage;

    fn tool(command: &[&str]) -> ToolDef {
        ToolDef {
            name: "t".into(),
            command: command.iter().map(|s| s.to_string()).collect(),
            stage: ToolStage::Check,
            timeout_secs: 1,
        }
    }

    fn files(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn file_names_that_look_like_options_are_passed_as_paths() {
        let t = tool(&["mypy", "--strict", "--", "{files}"]);
        let f = files(&[
            "-rf.py",
            "--config=evil.py",
            "@args.txt",
            "-",
            "ok.py",
            "a/-b.py",
        ]);
        assert_eq!(
            argv(&t, &f),
            [
                "mypy",
                "--strict",
                "--",
                "./-rf.py",
                "./--config=evil.py",
                "./@args.txt",
                "./-",
                "ok.py",
                "a/-b.py"
            ]
        );
    }

    #[test]
    fn files_in_the_middle_of_a_user_argv_keep_the_options_after_them() {
        let t = tool(&["lint", "{files}", "--fix"]);
        assert_eq!(argv(&t, &files(&["-x.py"])), ["lint", "./-x.py", "--fix"]);
        assert_eq!(argv(&t, &[]), ["lint", ".", "--fix"]);
    }

    #[test]
    fn ruff_fixers_get_force_exclude_among_their_options_and_format_is_never_quiet() {
        let check = tool(&["ruff", "check", "--fix", "--quiet", "--", "{files}"]);
        assert_eq!(ruff_subcommand(&check), Some("check"));
        assert_eq!(
            fixer_argv(&check, &files(&["a.py", "-b.py"])),
            [
                "ruff",
                "check",
                "--fix",
                "--quiet",
                "--force-exclude",
                "--",
                "a.py",
                "./-b.py"
            ],
            "ruff check keeps --quiet: its findings still show"
        );
        let format = tool(&[
            "python3", "-m", "ruff", "format", "-q", "{files}", "--quiet",
        ]);
        assert_eq!(ruff_subcommand(&format), Some("format"));
        assert_eq!(
            fixer_argv(&format, &files(&["a.py"])),
            ["python3", "-m", "ruff", "format", "--force-exclude", "a.py"]
        );
        let already = tool(&["ruff", "format", "--force-exclude", "--", "{files}"]);
        assert_eq!(
            fixer_argv(&already, &files(&["a.py"])),
            ["ruff", "format", "--force-exclude", "--", "a.py"]
        );
        let other = tool(&["black", "--quiet", "{files}"]);
        assert_eq!(ruff_subcommand(&other), None);
        assert_eq!(
            fixer_argv(&other, &files(&["a.py"])),
            ["black", "--quiet", "a.py"]
        );
        // A tool that is not ruff but has "check" in its argv is left alone.
        assert_eq!(ruff_subcommand(&tool(&["mypy", "check"])), None);
    }

    #[test]
    fn ruff_fixers_are_given_only_the_kinds_of_file_ruff_reads() {
        let scope = files(&[
            "a.py",
            "b.pyi",
            "c.ipynb",
            "README.md",
            "data.json",
            "Makefile",
        ]);
        let check = tool(&["ruff", "check", "--fix", "--", "{files}"]);
        let format = tool(&["ruff", "format", "--", "{files}"]);
        let other = tool(&["prettier", "--write", "{files}"]);
        assert_eq!(fixer_files(&check, &scope), ["a.py", "b.pyi", "c.ipynb"]);
        assert_eq!(
            fixer_files(&format, &scope),
            ["a.py", "b.pyi", "c.ipynb", "README.md"]
        );
        assert_eq!(fixer_files(&other, &scope), scope);
    }

    #[test]
    fn long_file_lists_are_split_into_batches_that_keep_every_file_once() {
        let many: Vec<String> = (0..1000).map(|i| format!("pkg/module_{i:04}.py")).collect();
        let parts = batches(&many, 4096);
        assert!(parts.len() > 1);
        assert!(
            parts
                .iter()
                .all(|p| p.iter().map(|f| f.len() + 3).sum::<usize>() <= 4096)
        );
        assert_eq!(parts.concat(), many);
        assert_eq!(batches(&many, usize::MAX).len(), 1);
        let long = files(&["x".repeat(100).as_str(), "y.py"]);
        assert_eq!(batches(&long, 10), [&long[..1], &long[1..]]);
        assert!(batches(&[], 10).is_empty());
    }

    #[test]
    fn a_failed_tools_error_lines_are_its_explanation() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("t.log");
        std::fs::write(
            &log,
            "1 file reformatted\nerror: Failed to parse x.py:1:12: Expected a parameter\n",
        )
        .unwrap();
        assert_eq!(
            error_text(&log),
            "error: Failed to parse x.py:1:12: Expected a parameter"
        );
        std::fs::write(&log, "Traceback\n  boom\nValueError: bad\n\n").unwrap();
        assert_eq!(error_text(&log), "Traceback\n  boom\nValueError: bad");
    }

    #[test]
    fn the_built_in_tools_end_their_options_before_the_files() {
        for t in noctune_config::builtin_tools() {
            if let Some(i) = t.command.iter().position(|a| a == "{files}") {
                assert_eq!(t.command[i - 1], "--", "{}: {:?}", t.name, t.command);
                let a = argv(&t, &files(&["-rf.py"]));
                assert_eq!(&a[i - 1..], ["--", "./-rf.py"], "{}", t.name);
            }
        }
    }
}
