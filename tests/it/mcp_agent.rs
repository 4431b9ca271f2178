//! An external agent nobody here wrote: `tests/e2e/mcp/agent_flow.py`, on the official MCP
//! Python SDK (`mcp` from PyPI, in the venv `tests/e2e/run-mcp.sh` makes), drives the whole
//! flow over stdio and over Streamable HTTP. Then the run's commits, its run.json and the audit
//! DB must agree with what the agent saw.
//!
//! `#[ignore]`d: they need that venv. `tests/run-all.sh` runs them with
//! `cargo test --test it -- --ignored mcp_agent::` right after tests/e2e/run-mcp.sh made it.

use crate::http_support::StudioProc;
use crate::support::cli::{Noctune, bin};
use crate::support::repo::FixtureRepo;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The python of the MCP Python SDK venv (`NOCTUNE_MCP_VENV`, by default
/// ~/.cache/noctune-mcp-venv, where tests/e2e/run-mcp.sh makes it). Panics, saying how to make
/// it, when there is none: a test that needs it never passes without it.
pub(crate) fn venv_python() -> PathBuf {
    let venv = match std::env::var_os("NOCTUNE_MCP_VENV") {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => Path::new(&std::env::var_os("HOME").expect("HOME")).join(".cache/noctune-mcp-venv"),
    };
    let py = venv.join("bin/python");
    let ok = py.is_file()
        && Command::new(&py)
            .args(["-c", "import mcp"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
    assert!(
        ok,
        "no MCP Python SDK venv at {} (`import mcp` fails there): run tests/e2e/run-mcp.sh to \
         create it, or set NOCTUNE_MCP_VENV to a venv with tests/e2e/mcp/requirements.txt installed",
        venv.display()
    );
    py
}

fn agent(py: &Path, nt: &Noctune, args: &[&str]) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/mcp/agent_flow.py");
    let mut cmd = Command::new(py);
    cmd.arg(script).args(args);
    // The same private audit DB and environment as the CLI the test checks with.
    let base = nt.cmd();
    for (k, v) in base.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    let out = cmd.output().expect("run the python agent");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the agent failed ({}):\n{stderr}\n{stdout}",
        out.status
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("agent output is not JSON ({e}): {stdout}\n{stderr}"))
}

/// What the agent saw must be what the run left: commits, run.json and the audit DB.
fn check_agrees(nt: &Noctune, repo: &FixtureRepo, seen: &Value) {
    let a = &seen["approve"];
    let run_id = a["run_id"].as_str().unwrap();

    // run.json (through the CLI, and the file itself) = the agent's last get_status.
    let status = nt.status(run_id);
    for k in [
        "status",
        "branch",
        "head_sha",
        "ended_at",
        "pack",
        "repo_root",
    ] {
        assert_eq!(status[k], a["status"][k], "run.json {k} vs agent");
    }
    let file: Value = serde_json::from_str(
        &std::fs::read_to_string(
            repo.path()
                .join(format!(".noctune_cache/runs/{run_id}/state/run.json")),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(file["status"], "done");

    // The commits: one per patchset_committed event the agent saw, the approved edit applied.
    let branch = a["branch"].as_str().unwrap();
    let commits = repo.branch_commits(branch);
    assert_eq!(
        commits.len(),
        a["committed"].as_array().unwrap().len(),
        "{commits:#?} vs {:#}",
        a["committed"]
    );
    assert!(
        commits
            .iter()
            .all(|(_, m)| m.starts_with(&format!("Noctune Studio: lint_fix (#{run_id})"))),
        "{commits:#?}"
    );
    assert_eq!(a["approval_file"], "shapes/render.py");
    assert!(
        repo.read_at(branch, "shapes/render.py")
            .contains("def describe(w, h):"),
        "the approved edit is committed"
    );

    // Every event the agent read, in order, is in the log and the audit DB.
    let events = nt.events(run_id);
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    let agent_types: Vec<&str> = a["event_types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(types, agent_types, "events.jsonl vs what the agent tailed");
    let store = noctune_store::AuditStore::open(&nt.db()).unwrap();
    let id = noctune_core::RunId::parse(run_id).unwrap();
    assert_eq!(
        store.event_count(&id).unwrap(),
        events.len() as u64,
        "audit DB events"
    );
    let db_run = store.get_run(&id).unwrap().unwrap();
    assert_eq!(db_run.status.as_str(), "done");

    // The decision: approvals --json and the audit DB's decisions table name the agent.
    let approval_id = a["approval_id"].as_str().unwrap();
    let approvals = nt.approvals(run_id);
    let mine = approvals
        .iter()
        .find(|x| x["approval_id"] == approval_id)
        .unwrap();
    assert_eq!(mine["status"], "approved");
    assert_eq!(mine["decision"]["decided_by"], "mcp:python-sdk-agent");
    assert_eq!(mine["decision"]["decided_by"], a["decision"]["decided_by"]);
    let decisions = store.decisions(&id).unwrap();
    let d = decisions
        .iter()
        .find(|d| d.approval_id.as_str() == approval_id)
        .expect("decision in the audit DB");
    assert_eq!(d.decided_by, "mcp:python-sdk-agent");
    assert_eq!(d.reason, "reviewed by the python agent");
    assert_eq!(d.decided_at, a["decision"]["decided_at"].as_str().unwrap());

    // The stopped run.
    let s = &seen["stop"];
    let stop_id = s["run_id"].as_str().unwrap();
    assert_eq!(nt.status(stop_id)["status"], "stopped");
    assert_eq!(s["status"]["status"], "stopped");
    let stop_types: Vec<String> = nt
        .events(stop_id)
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect();
    let seen_types: Vec<String> = s["event_types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    assert_eq!(stop_types, seen_types);
    let sid = noctune_core::RunId::parse(stop_id).unwrap();
    assert_eq!(
        store.get_run(&sid).unwrap().unwrap().status.as_str(),
        "stopped"
    );
    // The user's own branch and working tree are untouched by both runs.
    assert_eq!(repo.head_branch(), "main");
    assert_eq!(repo.status(), Vec::<String>::new());
}

#[test]
#[ignore = "needs the MCP Python SDK venv (NOCTUNE_MCP_VENV); run by tests/run-all.sh"]
fn python_sdk_agent_drives_the_flow_over_stdio() {
    let py = venv_python();
    let repo = FixtureRepo::new("pyproj", &[]);
    let nt = Noctune::new();
    let seen = agent(
        &py,
        &nt,
        &[
            "--stdio",
            bin().to_str().unwrap(),
            "--repo",
            repo.path().to_str().unwrap(),
        ],
    );
    assert_eq!(seen["transport"], "stdio");
    check_agrees(&nt, &repo, &seen);
}

#[test]
#[ignore = "needs the MCP Python SDK venv (NOCTUNE_MCP_VENV); run by tests/run-all.sh"]
fn python_sdk_agent_drives_the_flow_over_streamable_http() {
    let py = venv_python();
    let repo = FixtureRepo::new("pyproj", &[]);
    let nt = Noctune::new();
    let studio = StudioProc::start(&nt, &repo.path());
    let url = format!("http://127.0.0.1:{}/mcp", studio.port);
    let seen = agent(
        &py,
        &nt,
        &[
            "--url",
            &url,
            "--token",
            &studio.token,
            "--repo",
            repo.path().to_str().unwrap(),
        ],
    );
    assert_eq!(seen["transport"], "http");
    check_agrees(&nt, &repo, &seen);
    studio.stop();
}
