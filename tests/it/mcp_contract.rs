//! Contract tests of the MCP server: a real rmcp client talks to the real `noctune mcp` over
//! stdio, and every request and response, success and error, is checked against the JSON
//! schemas the server declares (input, output, and the error schema in `_meta`).

use crate::mcp_support::{TOOLS, connect_stdio};
use crate::support::cli::Noctune;
use crate::support::repo::FixtureRepo;
use crate::support::wait::wait_until_async;
use serde_json::{Value, json};

const CLIENT: &str = "noctune-contract-test";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tool_declares_its_schemas_and_the_approval_flow_matches_them() {
    let repo = FixtureRepo::new("pyproj", &[]);
    let nt = Noctune::new();
    let mcp = connect_stdio(&nt, CLIENT, &[], &[]).await;

    let names: Vec<&str> = mcp.schemas.keys().map(String::as_str).collect();
    let mut want = TOOLS.to_vec();
    want.sort();
    assert_eq!(names, want);
    for (name, s) in &mcp.schemas {
        assert_eq!(s.input["type"], "object", "{name}");
        assert_eq!(s.output["type"], "object", "{name}");
        assert_eq!(s.error["required"], json!(["error", "message"]), "{name}");
    }
    assert_eq!(
        mcp.schemas["decide_approval"].input["properties"]["decision"]["enum"],
        json!(["approve", "reject"])
    );

    // enqueue_run → run.json exists at once.
    let repo_root = repo.path().display().to_string();
    let run = mcp
        .ok(
            "enqueue_run",
            json!({"repo_root": repo_root, "pack": "lint_fix"}),
        )
        .await;
    let run_id = run["run_id"].as_str().unwrap().to_string();
    assert_eq!(run["pack"], "lint_fix");
    assert!(
        ["queued", "running"].contains(&run["status"].as_str().unwrap()),
        "{run:#}"
    );
    assert!(
        repo.path()
            .join(format!(".noctune_cache/runs/{run_id}/state/run.json"))
            .is_file()
    );

    // tail until the risky edit waits for approval.
    let (events, cursor) = mcp
        .tail_until(&run_id, 0, 90, |e| e["type"] == "approval_requested")
        .await;
    assert_eq!(events[0]["type"], "run_queued");
    // The run goes on with the other files, then waits for the decision.
    wait_until_async(
        std::time::Duration::from_secs(60),
        "the run to wait for approval",
        async || {
            let status = mcp.ok("get_status", json!({"run_id": run_id})).await;
            assert_eq!(status["terminal"], false, "{status:#}");
            status["status"] == "waiting_approval"
        },
    )
    .await;

    let list = mcp.ok("list_approvals", json!({"run_id": run_id})).await;
    assert_eq!(list["pending"], 1, "{list:#}");
    let pending: Vec<&Value> = list["approvals"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["status"] == "pending")
        .collect();
    let approval_id = pending[0]["approval_id"].as_str().unwrap().to_string();
    assert_eq!(pending[0]["file_path"], "shapes/render.py");
    assert_eq!(pending[0]["decision"], Value::Null);

    // Bad requests: rejected by the declared input schema, and by the server as tool errors.
    for (tool, args) in [
        (
            "decide_approval",
            json!({"run_id": run_id, "approval_id": approval_id, "decision": "maybe", "reason": "x"}),
        ),
        (
            "decide_approval",
            json!({"run_id": run_id, "approval_id": approval_id}),
        ),
        ("get_status", json!({})),
        ("get_status", json!({"run_id": run_id, "extra": 1})),
        (
            "tail_events",
            json!({"run_id": run_id, "cursor": 0, "limit": 0}),
        ),
        ("tail_events", json!({"run_id": run_id, "cursor": -1})),
        ("enqueue_run", json!({"pack": "lint_fix"})),
        ("stop_run", json!({"run_id": 7})),
    ] {
        assert!(
            !mcp.request_is_valid(tool, &args),
            "{tool} {args}: the schema should refuse it"
        );
        let msg = mcp.err(tool, args.clone(), "invalid_arguments").await;
        assert!(!msg.is_empty(), "{tool} {args}");
    }
    let msg = mcp.err("decide_approval", json!({"run_id": run_id, "approval_id": approval_id, "decision": "maybe", "reason": ""}), "invalid_arguments").await;
    assert!(msg.contains("\"approve\" or \"reject\""), "{msg}");

    // Unknown things: valid requests by the schema, refused with a message that says what to do.
    let ghost = "20990101T000000Z-deadbeef";
    for tool in ["get_status", "list_approvals", "stop_run"] {
        let msg = mcp.err(tool, json!({"run_id": ghost}), "unknown_run").await;
        // the same surface-neutral words as on every other surface
        assert!(
            msg.contains(ghost) && msg.contains("list the runs"),
            "{msg}"
        );
    }
    mcp.err(
        "tail_events",
        json!({"run_id": ghost, "cursor": 0}),
        "unknown_run",
    )
    .await;
    mcp.err(
        "decide_approval",
        json!({"run_id": ghost, "approval_id": approval_id, "decision": "approve", "reason": ""}),
        "unknown_run",
    )
    .await;
    let msg = mcp
        .err(
            "get_status",
            json!({"run_id": "../etc"}),
            // a malformed id names no run that could exist: the same code as on HTTP
            "unknown_run",
        )
        .await;
    assert!(msg.contains("invalid run id"), "{msg}");
    let msg = mcp.err("decide_approval", json!({"run_id": run_id, "approval_id": "0123456789abcdef0123", "decision": "approve", "reason": ""}), "unknown_approval").await;
    assert!(msg.contains("list the run's approvals"), "{msg}");
    let msg = mcp
        .err(
            "enqueue_run",
            json!({"repo_root": repo_root, "pack": "no_such_pack"}),
            "unknown_pack",
        )
        .await;
    assert!(msg.contains("lint_fix"), "{msg}");
    let msg = mcp
        .err(
            "enqueue_run",
            json!({"repo_root": "relative/dir", "pack": "lint_fix"}),
            "invalid_arguments",
        )
        .await;
    assert!(msg.contains("absolute"), "{msg}");
    let not_repo = tempfile::tempdir().unwrap();
    let msg = mcp
        .err(
            "enqueue_run",
            json!({"repo_root": not_repo.path(), "pack": "lint_fix"}),
            "not_a_repo",
        )
        .await;
    assert!(msg.contains("git init"), "{msg}");

    // Approve; decided_by names this MCP client. A second decision is refused.
    let d = mcp.ok("decide_approval", json!({"run_id": run_id, "approval_id": approval_id, "decision": "approve", "reason": "looks right"})).await;
    assert_eq!(d["decided_by"], format!("mcp:{CLIENT}"));
    assert_eq!(d["decision"], "approve");
    let msg = mcp.err("decide_approval", json!({"run_id": run_id, "approval_id": approval_id, "decision": "reject", "reason": "late"}), "already_decided").await;
    assert!(msg.contains(&format!("mcp:{CLIENT}")), "{msg}");

    // tail until the run is over.
    let (rest, end) = mcp
        .tail_until(&run_id, cursor, 120, |e| e["type"] == "run_done")
        .await;
    assert!(
        rest.iter().any(|e| e["type"] == "approval_decided"),
        "{rest:#?}"
    );
    let done = mcp.ok("get_status", json!({"run_id": run_id})).await;
    assert_eq!(done["status"], "done", "{done:#}");
    assert_eq!(done["terminal"], true);
    let after = mcp
        .ok(
            "tail_events",
            json!({"run_id": run_id, "cursor": end + 1000}),
        )
        .await;
    assert_eq!(after["events"], json!([]));
    assert_eq!(after["next_cursor"], end + 1000);
    let list = mcp.ok("list_approvals", json!({"run_id": run_id})).await;
    assert_eq!(list["pending"], 0);
    let msg = mcp
        .err("stop_run", json!({"run_id": run_id}), "wrong_state")
        .await;
    assert!(msg.contains("nothing to stop"), "{msg}");
    let msg = mcp.err("decide_approval", json!({"run_id": run_id, "approval_id": approval_id, "decision": "reject", "reason": ""}), "wrong_state").await;
    assert!(msg.contains("start a new run"), "{msg}");

    // The audit DB agrees: the decision is recorded with the MCP client's name.
    let approvals = nt.approvals(&run_id);
    let a = approvals
        .iter()
        .find(|a| a["approval_id"] == approval_id.as_str())
        .unwrap();
    assert_eq!(a["decision"]["decided_by"], format!("mcp:{CLIENT}"));
    assert_eq!(nt.status(&run_id)["status"], "done");
    mcp.client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_run_ends_a_waiting_run_stopped() {
    let repo = FixtureRepo::new("pyproj", &[]);
    let nt = Noctune::new();
    let mcp = connect_stdio(&nt, CLIENT, &[], &[]).await;
    let run = mcp
        .ok(
            "enqueue_run",
            json!({"repo_root": repo.path(), "pack": "lint_fix", "profile": null}),
        )
        .await;
    let run_id = run["run_id"].as_str().unwrap().to_string();
    let (_, cursor) = mcp
        .tail_until(&run_id, 0, 90, |e| e["type"] == "approval_requested")
        .await;
    let stopped = mcp
        .ok("stop_run", json!({"run_id": run_id, "grace_secs": 5}))
        .await;
    assert_eq!(stopped["status"], "stopped", "{stopped:#}");
    assert_eq!(stopped["terminal"], true);
    let (rest, _) = mcp
        .tail_until(&run_id, cursor, 30, |e| e["type"] == "stopped")
        .await;
    assert!(
        rest.iter().any(|e| e["type"] == "stop_requested"),
        "{rest:#?}"
    );
    assert_eq!(nt.status(&run_id)["status"], "stopped");
    mcp.client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repo_outside_the_allowed_roots_is_refused_without_side_effects() {
    let repo = FixtureRepo::new("pyproj", &[]);
    let elsewhere = tempfile::tempdir().unwrap();
    let nt = Noctune::new();
    let roots = elsewhere.path().display().to_string();

    // The engine's rule (NOCTUNE_STUDIO_ALLOWED_ROOTS) ...
    let mcp = connect_stdio(
        &nt,
        CLIENT,
        &[],
        &[("NOCTUNE_STUDIO_ALLOWED_ROOTS", &roots)],
    )
    .await;
    let msg = mcp
        .err(
            "enqueue_run",
            json!({"repo_root": repo.path(), "pack": "lint_fix"}),
            "outside_allowed_roots",
        )
        .await;
    assert!(msg.contains("NOCTUNE_STUDIO_ALLOWED_ROOTS"), "{msg}");
    mcp.client.cancel().await.unwrap();

    // ... and `noctune mcp --repo DIR`, which limits runs to DIR's allowed roots.
    let other = FixtureRepo::new("pyproj", &[]);
    let mcp = connect_stdio(
        &nt,
        CLIENT,
        &["--repo", other.path().to_str().unwrap()],
        &[],
    )
    .await;
    let msg = mcp
        .err(
            "enqueue_run",
            json!({"repo_root": repo.path(), "pack": "lint_fix"}),
            "outside_allowed_roots",
        )
        .await;
    assert!(msg.contains(&other.path().display().to_string()), "{msg}");
    mcp.client.cancel().await.unwrap();

    assert!(
        !repo.path().join(".noctune_cache").exists(),
        "a refused run must leave nothing behind"
    );
    assert_eq!(repo.status(), Vec::<String>::new());
    let runs = nt.run(&["runs", "--json"]).ok().json();
    assert_eq!(runs, json!([]), "no run may be recorded");
}
