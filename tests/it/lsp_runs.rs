//! Runs and approvals through `noctune lsp`: `$/progress`, pending approvals as diagnostics,
//! the Approve / Show diff code actions, and decisions made elsewhere clearing diagnostics.

use crate::support::cli::Noctune;
use crate::support::lsp_client::{LspClient, file_uri, full_caps};
use crate::support::repo::FixtureRepo;
use serde_json::{Value, json};

fn diagnostics_for<'a>(uri: &'a str, nonempty: bool) -> impl FnMut(&Value) -> bool + 'a {
    move |m: &Value| {
        m["method"] == "textDocument/publishDiagnostics"
            && m["params"]["uri"] == uri
            && m["params"]["diagnostics"]
                .as_array()
                .is_some_and(|d| d.is_empty() != nonempty)
    }
}

/// The text of the first line the diff removes or changes (the old side).
fn first_removed(diff: &str) -> Option<String> {
    diff.lines()
        .skip_while(|l| !l.starts_with("@@"))
        .find(|l| l.starts_with('-') || l.starts_with('+'))
        .and_then(|l| l.strip_prefix('-'))
        .map(str::to_string)
}

#[test]
fn a_pending_approval_is_a_diagnostic_whose_approve_action_lets_the_run_finish() {
    let repo = FixtureRepo::new("pyproj", &[]);
    let nt = Noctune::new();
    let mut c = LspClient::start(&nt, &repo.path(), &["--no-http"], &[]);
    c.initialize(&repo.path(), full_caps());

    let rec = c.call("noctune/runs/start", json!({"pack": "lint_fix"}));
    let run_id = rec["run_id"].as_str().unwrap().to_string();
    assert_eq!(rec["pack"], "lint_fix");
    // Progress: the token is created, then begun.
    let create = c.wait_for(10, |m| m["method"] == "window/workDoneProgress/create");
    let token = create["params"]["token"].clone();
    let begin = c.wait_for(10, |m| {
        m["method"] == "$/progress" && m["params"]["value"]["kind"] == "begin"
    });
    assert_eq!(begin["params"]["token"], token);
    assert_eq!(begin["params"]["value"]["title"], "Noctune: lint_fix");

    let path = repo.path().join("shapes/render.py");
    let uri = file_uri(&path);
    let published = c.wait_for(120, diagnostics_for(&uri, true));
    let d = published["params"]["diagnostics"][0].clone();
    assert_eq!(d["severity"], 3, "{d:#}");
    assert_eq!(d["source"], "noctune");
    assert_eq!(d["data"]["run_id"], run_id.as_str());
    let approval_id = d["data"]["approval_id"].as_str().unwrap().to_string();
    let waiting = c.wait_for(30, |m| {
        m["method"] == "$/progress"
            && m["params"]["value"]["message"]
                .as_str()
                .is_some_and(|s| s.contains("1 approvals waiting"))
    });
    assert_eq!(waiting["params"]["token"], token);

    // On the affected line of the user's file.
    let listed = c.call("noctune/approvals", json!({}));
    let item = &listed["approvals"][0];
    assert_eq!(item["approval_id"], approval_id.as_str());
    assert_eq!(item["file_path"], "shapes/render.py");
    let line = d["range"]["start"]["line"].as_u64().unwrap() as usize;
    assert_eq!(item["line"], line);
    if let Some(old) = first_removed(item["diff"].as_str().unwrap()) {
        assert_eq!(
            std::fs::read_to_string(&path)
                .unwrap()
                .lines()
                .nth(line)
                .unwrap(),
            old
        );
    }

    // Code actions on that line.
    let actions = c.call(
        "textDocument/codeAction",
        json!({"textDocument": {"uri": uri}, "range": d["range"], "context": {"diagnostics": [d]}}),
    );
    let titles: Vec<&str> = actions
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, vec!["Approve", "Reject", "Show diff"]);
    let cmd_of = |i: usize| actions[i]["command"].clone();

    // Show diff: the client is asked to open a diff file.
    let show = cmd_of(2);
    let shown = c.call(
        "workspace/executeCommand",
        json!({"command": show["command"], "arguments": show["arguments"]}),
    );
    assert!(shown["diff"].as_str().unwrap().contains("@@"), "{shown:#}");
    let doc = c.wait_for(10, |m| m["method"] == "window/showDocument");
    let diff_uri = doc["params"]["uri"].as_str().unwrap();
    assert!(diff_uri.ends_with(".diff"), "{diff_uri}");
    assert!(
        std::fs::read_to_string(diff_uri.trim_start_matches("file://"))
            .unwrap()
            .contains(shown["diff"].as_str().unwrap())
    );

    // Approve: decided through the facade, the diagnostic goes away, the run finishes.
    let approve = cmd_of(0);
    let decided = c.call(
        "workspace/executeCommand",
        json!({"command": approve["command"], "arguments": approve["arguments"]}),
    );
    assert_eq!(decided["decision"], "approve", "{decided:#}");
    assert!(
        decided["decided_by"]
            .as_str()
            .unwrap()
            .contains("noctune-test")
    );
    c.wait_for(10, diagnostics_for(&uri, false));
    let done = nt.wait_status(&run_id, "done", 120);
    assert!(
        repo.read_at(done["branch"].as_str().unwrap(), "shapes/render.py")
            .contains("def describe(w, h):")
    );
    let end = c.wait_for(30, |m| {
        m["method"] == "$/progress" && m["params"]["value"]["kind"] == "end"
    });
    assert_eq!(end["params"]["token"], token);
    assert!(
        end["params"]["value"]["message"]
            .as_str()
            .unwrap()
            .starts_with("done"),
        "{end:#}"
    );
    assert_eq!(
        c.call("noctune/approvals", json!({}))["approvals"],
        json!([])
    );
    let runs = c.call("noctune/runs/list", json!({}));
    assert_eq!(runs["runs"][0]["run_id"], run_id.as_str());
    assert_eq!(runs["runs"][0]["status"], "done");
    assert!(c.shutdown_exit().success());
    assert!(c.violations().is_empty(), "{:?}", c.violations());
}

#[test]
fn a_decision_made_through_the_cli_clears_the_diagnostic() {
    let repo = FixtureRepo::new("pyproj", &[]);
    let nt = Noctune::new();
    let mut c = LspClient::start(&nt, &repo.path(), &["--no-http"], &[]);
    c.initialize(&repo.path(), full_caps());
    // A run started elsewhere (the CLI) on this workspace.
    let run_id = nt.start(&repo.path(), "lint_fix");
    let uri = file_uri(&repo.path().join("shapes/render.py"));
    let published = c.wait_for(120, diagnostics_for(&uri, true));
    let approval_id = published["params"]["diagnostics"][0]["data"]["approval_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        published["params"]["diagnostics"][0]["data"]["run_id"],
        run_id.as_str()
    );

    let t = std::time::Instant::now();
    nt.decide(&run_id, &approval_id, "reject", "not now").ok();
    c.wait_for(10, diagnostics_for(&uri, false));
    assert!(
        t.elapsed() < std::time::Duration::from_secs(5),
        "cleared only after {:?}",
        t.elapsed()
    );
    // Deciding again from the editor is refused with the engine's message, not a crash.
    let id = c.request("workspace/executeCommand", json!({"command": "noctune.approve", "arguments": [{"run_id": run_id, "approval_id": approval_id}]}));
    let r = c.response(id, 10);
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already decided"),
        "{r:#}"
    );
    nt.wait_status(&run_id, "done", 120);
    // Stopping a finished run is an error that says why.
    let id = c.request("noctune/runs/stop", json!({"run_id": run_id}));
    assert!(
        c.response(id, 10)["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nothing to stop")
    );
    assert!(c.shutdown_exit().success());
}
