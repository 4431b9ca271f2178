//! Running a pack's tools (fixers and checks) as child processes in the run's worktree, with a
//! timeout, a cooperative stop, and the output's tail kept for the event log.

use noctune_config::ToolDef;
use std::path::Path;
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

/// Runs `tool` in `dir`. `should_stop` is polled every 50 ms; when it says so, the tool's
/// whole process group is killed and [`ToolOutcome::Interrupted`] returned.
pub fn run_tool(
    tool: &ToolDef,
    files: &[String],
    dir: &Path,
    log_path: &Path,
    should_stop: &dyn Fn() -> bool,
) -> std::io::Result<ToolOutcome> {
    use std::os::unix::process::CommandExt;
    let args = argv(tool, files);
    let log = std::fs::File::create(log_path)?;
    let start = Instant::now();
    let spawned = Command::new(&args[0])
        .args(&args[1..])
        .current_dir(dir)
        .env("PYTHONDONTWRITEBYTECODE", "1")
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
    let limit = Duration::from_secs(tool.timeout_secs);
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
