//! Runs end to end through the real binary on real git repositories made from `fixtures/`.

use crate::support::cli::{Noctune, event_types};
use crate::support::repo::FixtureRepo;
use serde_json::Value;

fn by_file<'a>(approvals: &'a [Value], file: &str) -> &'a Value {
    approvals
        .iter()
        .find(|a| a["file_path"] == file)
        .unwrap_or_else(|| panic!("no approval for {file}: {approvals:#?}"))
}

#[test]
fn safe_edits_auto_apply_risky_edit_blocks_until_approved_then_commits() {
    let repo = FixtureRepo::new("pyproj", &[]);
    let head_before = repo.head_sha();
    let nt = Noctune::new();
    let run_id = nt.start(&repo.path(), "lint_fix");

    // run.json exists the moment `run --detach` returns.
    let run_json = repo
        .path()
        .join(format!(".noctune_cache/runs/{run_id}/state/run.json"));
    assert!(run_json.is_file());

    let waiting = nt.wait_status(&run_id, "waiting_approval", 60);
    assert_eq!(waiting["pack"], "lint_fix");
    let approvals = nt.approvals(&run_id);
    let render = by_file(&approvals, "shapes/render.py");
    assert_eq!(render["status"], "pending", "{render:#}");
    assert!(render["risk_score"].as_u64().unwrap() > 30, "{render:#}");
    assert!(
        render["diff"]
            .as_str()
            .unwrap()
            .contains("+def describe(w, h):")
    );
    for safe in [
        "shapes/geometry.py",
        "shapes/util/helpers.py",
        "scripts/report.py",
    ] {
        assert_eq!(
            by_file(&approvals, safe)["status"],
            "auto_approved",
            "{safe}"
        );
    }
    let events = nt.events(&run_id);
    let requested: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "approval_requested")
        .collect();
    assert_eq!(requested.len(), 1);
    assert!(
        requested[0]["payload"]["decide"]
            .as_str()
            .unwrap()
            .starts_with(&format!("noctune decide {run_id} "))
    );

    let id = render["approval_id"].as_str().unwrap();
    nt.decide(&run_id, id, "approve", "reviewed").ok();
    let done = nt.wait_status(&run_id, "done", 120);
    assert_eq!(done["error"], Value::Null);
    assert!(done["ended_at"].is_string());

    let branch = done["branch"].as_str().unwrap();
    assert_eq!(branch, format!("noctune/lint_fix/{run_id}"));
    let commits = repo.branch_commits(branch);
    assert!(!commits.is_empty() && commits.len() <= 5, "{commits:#?}");
    // Labels count committed patchsets; only the last one, when nothing can follow, knows
    // the total.
    let m = commits.len();
    for (i, (_, msg)) in commits.iter().enumerate() {
        let label = if i + 1 == m {
            format!("[patchset {m}/{m}]")
        } else {
            format!("[patchset {}]", i + 1)
        };
        assert!(
            msg.starts_with(&format!("Noctune Studio: lint_fix (#{run_id}) {label}\n")),
            "{msg}"
        );
    }
    assert!(
        repo.read_at(branch, "shapes/render.py")
            .contains("def describe(w, h):")
    );
    assert!(
        !repo
            .read_at(branch, "shapes/geometry.py")
            .contains("import os")
    );

    // The user's branch, HEAD and working tree are untouched.
    assert_eq!(repo.head_sha(), head_before);
    assert_eq!(repo.head_branch(), "main");
    assert_eq!(repo.status(), Vec::<String>::new());
    assert!(repo.read("shapes/render.py").contains("def describe(w,h):"));

    let types = event_types(&nt.events(&run_id));
    for t in [
        "run_queued",
        "run_started",
        "edit_proposed",
        "auto_approved",
        "approval_requested",
        "approval_decided",
        "patchset_committed",
        "run_done",
    ] {
        assert!(types.contains(&t.to_string()), "missing {t}: {types:?}");
    }
    let idx: Vec<u64> = nt
        .events(&run_id)
        .iter()
        .map(|e| e["idx"].as_u64().unwrap())
        .collect();
    assert_eq!(
        idx,
        (0..idx.len() as u64).collect::<Vec<_>>(),
        "idx contiguous from 0"
    );
}
