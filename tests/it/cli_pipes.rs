//! The terminal's output channels and the tools' argv, through the real binary (issue #10):
//! every command that prints ends quietly with status 0 when the reader of its stdout goes
//! away (`noctune approvals RUN | head -1`), logs carry no colour codes off a terminal or with
//! `NO_COLOR`, and a repository's file named like an option (`-rf.py`, `--config=evil.py`)
//! reaches the pack's tools as a file.

use crate::support::cli::{Noctune, Ran, run_reader_gone};
use crate::support::llm_server::{Reply, Script, ScriptedLlm};
use crate::support::repo::FixtureRepo;
use serde_json::Value;
use std::process::Command;

/// How `what` did not end as a person expects after `| head` (status 0, nothing on stderr
/// about it), if it did not.
fn loud(what: &str, ran: &Ran) -> Option<String> {
    let stderr = ran.stderr.to_lowercase();
    let bad = ["panicked", "backtrace", "broken pipe", "error"]
        .into_iter()
        .find(|b| stderr.contains(b));
    (ran.code != 0 || bad.is_some()).then(|| {
        format!(
            "{what}: exit {} after its reader went away, stderr has {bad:?}:\n{}",
            ran.code, ran.stderr
        )
    })
}

#[track_caller]
fn quiet(what: &str, ran: &Ran) {
    if let Some(e) = loud(what, ran) {
        panic!("{e}");
    }
}

fn cmd(nt: &Noctune, args: &[&str]) -> Command {
    let mut c = nt.cmd();
    c.args(args);
    c
}

#[test]
fn every_listing_command_ends_quietly_when_its_reader_goes_away() {
    // Many files for ruff to fix: the run's events and approvals fill pages.
    let modules: Vec<(String, &str)> = (0..150)
        .map(|i| {
            (
                format!("pkg/m{i:03}.py"),
                "import os\n\n\ndef f():\n    return 1\n",
            )
        })
        .collect();
    let extra: Vec<(&str, &str)> = modules.iter().map(|(p, c)| (p.as_str(), *c)).collect();
    let repo = FixtureRepo::new("pyproj", &extra);
    let repo_s = repo.path().display().to_string();
    let nt = Noctune::new();
    let run_id = nt.start(&repo.path(), "lint_fix");
    nt.wait_status(&run_id, "waiting_approval", 60);
    let pending = nt
        .approvals(&run_id)
        .into_iter()
        .find(|a| a["status"] == "pending")
        .expect("lint_fix on pyproj waits for one approval");
    let approval_id = pending["approval_id"].as_str().unwrap().to_string();
    let r = run_id.as_str();
    let listings: &[&[&str]] = &[
        &["runs"],
        &["runs", "--json"],
        &["runs", "--repo", &repo_s],
        &["status", r],
        &["status", r, "--json"],
        &["events", r],
        &["events", r, "--json"],
        &["events", r, "--follow"],
        &["events", r, "--follow", "--json"],
        &["approvals", r],
        &["approvals", r, "--json"],
        &["config", "check", "--repo", &repo_s],
        &["config", "check", "--repo", &repo_s, "--json"],
        &["mcp", "list-servers", "--repo", &repo_s],
        &["mcp", "list-servers", "--repo", &repo_s, "--json"],
        &["studio", "--repo", &repo_s, "--port", "0", "--no-open"],
        &["--help"],
        &["--version"],
    ];
    let mut failed = Vec::new();
    for args in listings {
        // Closed before the command starts: its first line already fails (EPIPE).
        failed.extend(loud(
            &args.join(" "),
            &run_reader_gone(cmd(&nt, args), 0, 30),
        ));
    }
    // `| head -1` on the long listings: they go on printing after the first line was read.
    for args in [
        &["events", r][..],
        &["events", r, "--json"],
        &["approvals", r],
    ] {
        let what = format!("{} | head -1", args.join(" "));
        // Pages more than the pipe holds (one page), so lines are written after the reader went.
        let whole = nt.run(args).ok().stdout.len();
        assert!(whole > 4 * 4096, "{what}: only {whole} bytes");
        let ran = run_reader_gone(cmd(&nt, args), 1, 30);
        assert!(!ran.stdout.is_empty(), "{what}: no first line");
        failed.extend(loud(&what, &ran));
    }
    assert!(failed.is_empty(), "{}", failed.join("\n\n"));

    // A command that changes something does it before it prints: the decision is recorded.
    let ran = run_reader_gone(
        cmd(
            &nt,
            &[
                "decide",
                r,
                &approval_id,
                "approve",
                "--reason",
                "ok",
                "--by",
                "t",
            ],
        ),
        0,
        30,
    );
    quiet("decide", &ran);
    let decided = nt
        .approvals(r)
        .into_iter()
        .find(|a| a["approval_id"] == approval_id.as_str())
        .unwrap();
    assert_eq!(decided["status"], "approved", "{decided:#}");
    nt.wait_status(r, "done", 120);
}

/// `noctune run` prints progress while it waits for the run: when its reader goes, it ends
/// at once (the run goes on in its worker, as a detached one does), and stop and resume print
/// into a closed pipe as quietly.
#[test]
fn run_progress_ends_quietly_and_the_run_goes_on() {
    let repo = FixtureRepo::new("pyproj", &[]);
    let repo_s = repo.path().display().to_string();
    let nt = Noctune::new();
    let run = ["run", "--repo", &repo_s, "--pack", "lint_fix"];
    // The first line is the run's id and branch; the progress lines come after it. The run
    // then waits for an approval nobody gives: a command that kept waiting would time out.
    let ran = run_reader_gone(cmd(&nt, &run), 1, 60);
    quiet("run | head -1", &ran);
    let run_id = ran
        .stdout
        .strip_prefix("run ")
        .and_then(|l| l.split(':').next())
        .unwrap_or_else(|| panic!("first line: {:?}", ran.stdout))
        .to_string();
    nt.wait_status(&run_id, "waiting_approval", 60);

    let ran = run_reader_gone(cmd(&nt, &["stop", &run_id]), 0, 60);
    quiet("stop", &ran);
    nt.wait_status(&run_id, "stopped", 30);
    let ran = run_reader_gone(cmd(&nt, &["resume", &run_id, "--json"]), 0, 60);
    quiet("resume --json", &ran);
    nt.wait_status(&run_id, "waiting_approval", 60);
    let ran = run_reader_gone(
        cmd(
            &nt,
            &["run", "--repo", &repo_s, "--pack", "lint_fix", "--json"],
        ),
        0,
        60,
    );
    quiet("run --json", &ran);
    let ran = run_reader_gone(
        cmd(
            &nt,
            &["run", "--repo", &repo_s, "--pack", "lint_fix", "--detach"],
        ),
        0,
        60,
    );
    quiet("run --detach", &ran);
    for r in nt.run(&["runs", "--json"]).ok().json().as_array().unwrap() {
        nt.run(&["stop", r["run_id"].as_str().unwrap()]);
    }
}

#[test]
fn chat_ends_quietly_when_its_reader_goes_away() {
    let llm = ScriptedLlm::start(
        Script::new().fallback(|_| Reply::text(&["Hello", " from", " the model.\n", "Bye.\n"])),
    );
    let repo = FixtureRepo::new("pyproj", &[]);
    let repo_s = repo.path().display().to_string();
    let nt = Noctune::new();
    for flags in [&[][..], &["--json"]] {
        let mut c = cmd(&nt, &["chat", "--repo", &repo_s]);
        c.args(flags)
            .args(["say", "hello"])
            .env("NOCTUNE_STUDIO_LLM_BASE_URL", llm.base_url());
        quiet(&format!("chat {flags:?}"), &run_reader_gone(c, 0, 60));
    }
}

/// The answer's first words meet the closed stdout: the turn is cancelled, so the write the
/// model asks for next does not happen although `--allow once` would grant it.
#[test]
fn chat_stops_the_turn_when_its_reader_goes_away() {
    let write = r#"{"path": "shapes/render.py", "content": "print('from chat')\n"}"#;
    let llm = ScriptedLlm::start([
        Reply::tool_call("w1", "writeFile", write).with_text(&["Rewriting render.py.\n"]),
        Reply::text(&["Done."]),
    ]);
    let repo = FixtureRepo::new("pyproj", &[]);
    let before = repo.read("shapes/render.py");
    let nt = Noctune::new();
    let repo_s = repo.path().display().to_string();
    let mut c = cmd(
        &nt,
        &[
            "chat",
            "--repo",
            &repo_s,
            "--allow",
            "once",
            "rewrite render.py",
        ],
    );
    c.env("NOCTUNE_STUDIO_LLM_BASE_URL", llm.base_url());
    quiet("chat --allow once", &run_reader_gone(c, 0, 60));
    assert_eq!(repo.read("shapes/render.py"), before);
}

fn chat_to_nowhere(nt: &Noctune, repo: &FixtureRepo) -> Command {
    let mut c = cmd(
        nt,
        &["chat", "--repo", &repo.path().display().to_string(), "hi"],
    );
    // Port 9 (discard) refuses: the request is logged at debug level, then it fails.
    c.env("NOCTUNE_STUDIO_LLM_BASE_URL", "http://127.0.0.1:9")
        .env("NOCTUNE_LOG", "debug")
        .env_remove("NO_COLOR");
    c
}

#[test]
fn logs_on_a_pipe_have_no_colour_codes() {
    let repo = FixtureRepo::new("pyproj", &[]);
    let nt = Noctune::new();
    let ran: Ran = chat_to_nowhere(&nt, &repo).output().unwrap().into();
    assert!(ran.stderr.contains("model request"), "{}", ran.stderr);
    assert!(!ran.stderr.contains("\x1b["), "{:?}", ran.stderr);
}

/// stderr on a pseudo-terminal, as a person's shell has it; returns what the terminal showed.
fn stderr_on_a_terminal(mut cmd: Command) -> String {
    use std::io::Read;
    use std::os::fd::{FromRawFd, OwnedFd};
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty writes two new descriptors into the two ints; the null pointers ask for
    // no name and default terminal settings.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors were just opened by openpty and are owned by nobody else.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    let mut child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(slave)
        .spawn()
        .unwrap();
    // The slave end must be closed here too, or reading the master never ends.
    drop(cmd);
    let mut master = std::fs::File::from(master);
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match master.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            // Linux answers EIO once the last slave descriptor is closed: the child ended.
            Err(_) => break,
        }
    }
    child.wait().unwrap();
    String::from_utf8_lossy(&seen).into_owned()
}

#[test]
fn logs_on_a_terminal_are_coloured_unless_no_color_is_set() {
    let repo = FixtureRepo::new("pyproj", &[]);
    let nt = Noctune::new();
    let coloured = stderr_on_a_terminal(chat_to_nowhere(&nt, &repo));
    assert!(coloured.contains("model request"), "{coloured:?}");
    assert!(
        coloured.contains("\x1b["),
        "a terminal gets colours: {coloured:?}"
    );
    let mut c = chat_to_nowhere(&nt, &repo);
    c.env("NO_COLOR", "1");
    let plain = stderr_on_a_terminal(c);
    assert!(plain.contains("model request"), "{plain:?}");
    assert!(!plain.contains("\x1b["), "NO_COLOR=1: {plain:?}");
}

const DASH_PACK: &str = r#"
[policy_packs.dash_names]
extends = "lint_fix"
allowed_globs = ["-*.py"]
tools_allowed = ["ruff", "format", "mypy", "argv_echo"]
checks = ["argv_echo", "mypy"]
auto_approve = { enabled = true, max_risk = 100, max_lines = 100 }
grouping = "per_pack"

# A tool of the user's own: prints the arguments it was given.
[tools.argv_echo]
command = ["python3", "-c", "import sys; print(sys.argv[1:])", "{files}"]
stage = "check"
"#;

/// Files named like options are fixed by ruff, pass the parse and lint gates (ruff on the
/// changed files) and the checks (mypy, a user's tool) as files: with the names passed bare,
/// ruff refused `-rf.py` (both gates were skipped) and mypy took `--config=evil.py` for its
/// `--config-file` option and `-rf.py` for an unknown one, so the patchset failed.
#[test]
fn files_named_like_options_reach_the_tools_as_files() {
    let repo = FixtureRepo::new(
        "pyproj",
        &[
            ("-rf.py", "import os\n\n\ndef f():\n    return 1\n"),
            ("--config=evil.py", "x=1\n"),
            ("noctune.toml", DASH_PACK),
        ],
    );
    let nt = Noctune::new();
    let run_id = nt.start(&repo.path(), "dash_names");
    let done = nt.wait_status(&run_id, "done", 120);
    let events = nt.events(&run_id);
    let of = |kind: &str| -> Vec<&Value> { events.iter().filter(|e| e["type"] == kind).collect() };
    let skipped: Vec<_> = of("log")
        .into_iter()
        .filter(|e| {
            e["payload"]["message"]
                .as_str()
                .unwrap_or("")
                .contains("gate skipped")
        })
        .collect();
    assert!(skipped.is_empty(), "{skipped:#?}");
    assert!(
        of("patchset_failed").is_empty(),
        "{:#?}",
        of("patchset_failed")
    );
    let argv = |tool: &str| -> Vec<String> {
        let started = of("tool_started");
        let e = started
            .iter()
            .find(|e| e["payload"]["tool"] == tool)
            .unwrap_or_else(|| panic!("{tool} did not run: {events:#?}"));
        serde_json::from_value(e["payload"]["argv"].clone()).unwrap()
    };
    assert_eq!(
        argv("mypy")[argv("mypy").len() - 3..],
        ["--", "./--config=evil.py", "./-rf.py"]
    );
    // The user's tool saw two paths.
    let finished = of("tool_finished");
    let echo = finished
        .iter()
        .find(|e| e["payload"]["tool"] == "argv_echo")
        .unwrap();
    let log = std::fs::read_to_string(echo["payload"]["log"].as_str().unwrap()).unwrap();
    assert_eq!(log.trim(), "['./--config=evil.py', './-rf.py']");

    let branch = done["branch"].as_str().unwrap();
    assert_eq!(repo.branch_commits(branch).len(), 1, "{events:#?}");
    assert_eq!(repo.read_at(branch, "-rf.py"), "def f():\n    return 1\n");
    assert_eq!(repo.read_at(branch, "--config=evil.py"), "x = 1\n");
}
