//! Failure modes: failing checks, policy violations, a killed worker, stop and resume.

use crate::support::cli::{Noctune, event_types};
use crate::support::repo::FixtureRepo;
use crate::support::wait::{poll_for, wait_for};
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

const CONTRACT_TEST: &str = "import shapes.util.helpers as h\n\n\ndef test_helpers_reexports_sys():\n    assert hasattr(h, \"sys\")\n";

#[test]
fn failing_tests_keep_a_patchset_out_and_edits_outside_globs_are_refused() {
    // pkg_lint (pyproject.toml) only allows shapes/**; its auto-approval is stricter.
    let repo = FixtureRepo::new("pyproj", &[("tests/test_contract.py", CONTRACT_TEST)]);
    let nt = Noctune::new();
    let run_id = nt.start(&repo.path(), "pkg_lint");
    nt.wait_status(&run_id, "waiting_approval", 60);
    for a in nt.approvals(&run_id) {
        if a["status"] == "pending" {
            nt.decide(&run_id, a["approval_id"].as_str().unwrap(), "approve", "ok")
                .ok();
        }
    }
    let done = nt.wait_status(&run_id, "done", 120);
    let events = nt.events(&run_id);

    // The fixers are given the pack's files only, so scripts/report.py is not even rewritten
    // (a fixer that writes outside the globs anyway is refused: engine_scope).
    assert!(
        !events.iter().any(|e| e["type"] == "policy_violation"),
        "{events:#?}"
    );
    assert!(
        events
            .iter()
            .filter(|e| e["type"] == "tool_started")
            .all(|e| !e["payload"]["argv"]
                .to_string()
                .contains("scripts/report.py")),
        "{events:#?}"
    );
    assert!(
        nt.approvals(&run_id)
            .iter()
            .all(|a| a["file_path"] != "scripts/report.py")
    );

    let failed = events
        .iter()
        .find(|e| e["type"] == "patchset_failed")
        .expect("patchset_failed event");
    assert_eq!(
        failed["payload"]["files"],
        serde_json::json!(["shapes/util/helpers.py"])
    );
    assert!(
        failed["payload"]["reason"]
            .as_str()
            .unwrap()
            .contains("pytest failed"),
        "{failed:#}"
    );
    assert!(
        failed["payload"]["output_tail"]
            .as_str()
            .unwrap()
            .contains("test_helpers_reexports_sys"),
        "{failed:#}"
    );

    let branch = done["branch"].as_str().unwrap();
    let commits = repo.branch_commits(branch);
    assert_eq!(commits.len(), 1, "{commits:#?}");
    assert!(
        repo.read_at(branch, "shapes/util/helpers.py")
            .contains("import sys"),
        "failed patchset not committed"
    );
    assert!(
        repo.read_at(branch, "scripts/report.py")
            .contains("import json"),
        "outside the globs: untouched"
    );
    assert!(
        !repo
            .read_at(branch, "shapes/geometry.py")
            .contains("import os")
    );
}

/// A check tool that blocks until `release` exists (so a test can act while it runs). Its
/// `sleep 0.1` is the shell's own polling for that file inside the tool (at most 60 s), not a
/// wait in the test.
fn gated_config(release: &Path) -> String {
    format!(
        r#"
[tools.gate]
command = ["sh", "-c", "i=0; while [ ! -f '{}' ]; do i=$((i+1)); [ $i -gt 600 ] && exit 1; sleep 0.1; done"]
stage = "check"

[policy_packs.gated]
extends = "lint_fix"
tools_allowed = ["ruff", "format", "gate"]
checks = ["gate"]
auto_approve = {{ enabled = true, max_risk = 100, max_lines = 1000 }}
grouping = "single"

[engine]
stop_grace_secs = 5
"#,
        release.display()
    )
}

fn worker_pid(nt: &Noctune, run_id: &str) -> i32 {
    nt.status(run_id)["worker_pid"].as_i64().unwrap() as i32
}

fn wait_gate_running(nt: &Noctune, run_id: &str) {
    nt.wait_event(run_id, 60, |e| {
        e["type"] == "tool_started" && e["payload"]["tool"] == "gate"
    });
}

#[test]
fn killing_a_supervised_worker_fails_the_run_within_two_seconds() {
    let scratch = tempfile::tempdir().unwrap();
    let cfg = gated_config(&scratch.path().join("never"));
    let repo = FixtureRepo::new("pyproj", &[("noctune.toml", &cfg)]);
    let nt = Noctune::new();
    // Foreground `run`: the host process supervises its worker.
    let mut host = nt
        .cmd()
        .args([
            "run",
            "--repo",
            repo.path().to_str().unwrap(),
            "--pack",
            "gated",
            "--json",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let run_id = wait_for(Duration::from_secs(30), "the run to appear", || {
        let runs = nt.run(&["runs", "--json"]).ok().json();
        let first = runs.as_array().unwrap().first()?;
        Some(first["run_id"].as_str().unwrap().to_string())
    });
    wait_gate_running(&nt, &run_id);
    let pid = worker_pid(&nt, &run_id);
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let run_json = repo
        .path()
        .join(format!(".noctune_cache/runs/{run_id}/state/run.json"));
    let mut rec = Value::Null;
    // The 2 s are the promise under test (the supervisor notices within that), not a margin.
    let failed = poll_for(Duration::from_secs(2), || {
        rec = serde_json::from_slice(&std::fs::read(&run_json).unwrap()).unwrap();
        (rec["status"] == "failed").then_some(())
    });
    assert!(failed.is_ok(), "not failed within 2 s: {rec:#}");
    let err = rec["error"].as_str().unwrap();
    assert!(err.contains("signal 9") && err.contains("SIGKILL"), "{err}");
    let status = host.wait().unwrap();
    assert_eq!(status.code(), Some(1), "host reports the failure");
    // Logs are kept.
    assert!(
        repo.path()
            .join(format!(".noctune_cache/runs/{run_id}/worker.log"))
            .is_file()
    );
    assert!(event_types(&nt.events(&run_id)).contains(&"run_failed".to_string()));
}

#[test]
fn killing_a_detached_worker_is_detected_at_the_next_read() {
    let scratch = tempfile::tempdir().unwrap();
    let cfg = gated_config(&scratch.path().join("never"));
    let repo = FixtureRepo::new("pyproj", &[("noctune.toml", &cfg)]);
    let nt = Noctune::new();
    let run_id = nt.start(&repo.path(), "gated");
    wait_gate_running(&nt, &run_id);
    let pid = worker_pid(&nt, &run_id);
    unsafe { libc::kill(pid, libc::SIGKILL) };
    // Give the kernel a moment to reap (the worker's parent has exited).
    let s = nt.wait_status(&run_id, "failed", 10);
    let err = s["error"].as_str().unwrap();
    assert!(
        err.contains(&format!("worker process {pid} is gone")),
        "{err}"
    );
    assert!(
        nt.status(&run_id)["status"] == "failed",
        "stays failed, never done"
    );
}

#[test]
fn stop_mid_apply_leaves_a_consistent_worktree_and_resume_finishes() {
    let scratch = tempfile::tempdir().unwrap();
    let release = scratch.path().join("release");
    let repo = FixtureRepo::new("pyproj", &[("noctune.toml", &gated_config(&release))]);
    let nt = Noctune::new();
    let run_id = nt.start(&repo.path(), "gated");
    wait_gate_running(&nt, &run_id);
    // The patchset is applied and its check is running: stop now.
    let stopped = nt.run(&["stop", &run_id]).ok();
    assert!(stopped.stdout.contains("stopped"), "{}", stopped.stdout);
    let s = nt.status(&run_id);
    assert_eq!(s["status"], "stopped");
    assert_eq!(s["error"], Value::Null, "a stop is not a failure");
    let types = event_types(&nt.events(&run_id));
    assert!(
        types.contains(&"stop_requested".to_string()) && types.contains(&"stopped".to_string()),
        "{types:?}"
    );

    // The worktree is back at its branch's last commit: nothing half-applied.
    let wt = git2::Repository::open(
        repo.path()
            .join(format!(".noctune_cache/worktrees/{run_id}")),
    )
    .unwrap();
    let dirty: Vec<String> = wt
        .statuses(None)
        .unwrap()
        .iter()
        .map(|e| e.path().unwrap().to_string())
        .collect();
    assert!(dirty.is_empty(), "worktree dirty after stop: {dirty:?}");
    // Nothing was committed, so no empty branch is left; resume makes it again.
    assert!(
        repo.repo()
            .find_branch(s["branch"].as_str().unwrap(), git2::BranchType::Local)
            .is_err()
    );
    assert_eq!(s["commits"], 0);
    let proposed_before = types.iter().filter(|t| *t == "edit_proposed").count();

    std::fs::write(&release, "go").unwrap();
    nt.run(&["resume", &run_id, "--detach"]).ok();
    let done = nt.wait_status(&run_id, "done", 60);
    let commits = repo.branch_commits(done["branch"].as_str().unwrap());
    assert_eq!(commits.len(), 1, "{commits:#?}");
    let types = event_types(&nt.events(&run_id));
    assert!(types.contains(&"run_resumed".to_string()));
    assert_eq!(
        types.iter().filter(|t| *t == "edit_proposed").count(),
        proposed_before,
        "resume does not propose again"
    );
}

#[test]
fn stop_of_a_waiting_run_is_cooperative() {
    let repo = FixtureRepo::new("pyproj", &[]);
    let nt = Noctune::new();
    let run_id = nt.start(&repo.path(), "lint_fix");
    nt.wait_status(&run_id, "waiting_approval", 60);
    let t = Instant::now();
    nt.run(&["stop", &run_id]).ok();
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "cooperative stop, no kill needed"
    );
    let events = nt.events(&run_id);
    let stopped = events.iter().find(|e| e["type"] == "stopped").unwrap();
    assert_eq!(stopped["payload"]["forced"], false);
    // A decision made while stopped is used by resume.
    let pending: Vec<Value> = nt
        .approvals(&run_id)
        .into_iter()
        .filter(|a| a["status"] == "pending")
        .collect();
    for a in &pending {
        nt.decide(
            &run_id,
            a["approval_id"].as_str().unwrap(),
            "reject",
            "not now",
        )
        .ok();
    }
    nt.run(&["resume", &run_id, "--detach"]).ok();
    let done = nt.wait_status(&run_id, "done", 60);
    let branch = done["branch"].as_str().unwrap();
    assert!(
        repo.read_at(branch, "shapes/render.py")
            .contains("def describe(w,h):"),
        "rejected edit not applied"
    );
}
