//! Determinism, the audit DB as a second source of truth, and a repository that tries to make
//! git run commands.

use crate::support::cli::Noctune;
use crate::support::repo::FixtureRepo;
use serde_json::Value;
use std::collections::BTreeMap;

fn run_to_done(nt: &Noctune, repo: &FixtureRepo, pack: &str) -> (String, Value) {
    let run_id = nt.start(&repo.path(), pack);
    nt.wait_for(&run_id, 90, |s| {
        s["status"] == "waiting_approval" || s["status"] == "done"
    });
    for a in nt.approvals(&run_id) {
        if a["status"] == "pending" {
            nt.decide(
                &run_id,
                a["approval_id"].as_str().unwrap(),
                "approve",
                "fine",
            )
            .ok();
        }
    }
    let done = nt.wait_status(&run_id, "done", 120);
    (run_id, done)
}

fn patchset_files(repo: &FixtureRepo, run_id: &str) -> Vec<Value> {
    let p = repo
        .path()
        .join(format!(".noctune_cache/runs/{run_id}/state/patchsets.json"));
    let plan: Value = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
    plan["patchsets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["files"].clone())
        .collect()
}

#[test]
fn same_inputs_give_identical_approval_ids_and_patchset_grouping() {
    let a = FixtureRepo::new("pyproj", &[]);
    let b = FixtureRepo::new("pyproj", &[]);
    let nt = Noctune::new();
    let (run_a, _) = run_to_done(&nt, &a, "lint_fix");
    let (run_b, _) = run_to_done(&nt, &b, "lint_fix");
    let (run_a2, done_a2) = run_to_done(&nt, &a, "lint_fix");
    // The second run on `a` took over the first (done) run's worktree instead of a new checkout.
    let wt = |run: &str| a.path().join(format!(".noctune_cache/worktrees/{run}"));
    assert!(!wt(&run_a).exists(), "run_a's worktree was recycled");
    // Its HEAD is detached at the run's branch once the run is done (the branch is free for
    // the user's tree).
    let recycled = git2::Repository::open(wt(&run_a2)).unwrap();
    assert!(recycled.head_detached().unwrap());
    assert_eq!(
        recycled.head().unwrap().peel_to_commit().unwrap().id(),
        a.repo()
            .find_branch(done_a2["branch"].as_str().unwrap(), git2::BranchType::Local)
            .unwrap()
            .get()
            .peel_to_commit()
            .unwrap()
            .id()
    );
    assert_eq!(
        recycled.statuses(None).unwrap().len(),
        0,
        "recycled worktree is clean"
    );
    let ids = |run: &str| -> BTreeMap<String, String> {
        nt.approvals(run)
            .iter()
            .map(|x| {
                (
                    x["file_path"].as_str().unwrap().to_string(),
                    x["approval_id"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    assert_eq!(ids(&run_a).len(), 4);
    assert_eq!(ids(&run_a), ids(&run_b));
    assert_eq!(ids(&run_a), ids(&run_a2));
    assert_eq!(patchset_files(&a, &run_a), patchset_files(&b, &run_b));
    assert_eq!(patchset_files(&a, &run_a), patchset_files(&a, &run_a2));
    assert_eq!(
        patchset_files(&a, &run_a),
        vec![
            serde_json::json!(["scripts/report.py"]),
            serde_json::json!([
                "shapes/geometry.py",
                "shapes/render.py",
                "shapes/util/helpers.py"
            ])
        ]
    );
}

#[test]
fn status_approvals_and_decisions_are_rebuilt_from_sqlite_when_files_are_gone() {
    let repo = FixtureRepo::new("pyproj", &[]);
    let nt = Noctune::new();
    let (run_id, done) = run_to_done(&nt, &repo, "lint_fix");
    let approvals_before = nt.approvals(&run_id);
    let events_before = nt.events(&run_id);
    assert!(approvals_before.iter().any(|a| a["status"] == "approved"));

    let run_dir = repo.path().join(format!(".noctune_cache/runs/{run_id}"));
    std::fs::remove_file(run_dir.join("events.jsonl")).unwrap();
    assert_eq!(
        nt.events(&run_id),
        events_before,
        "events come from SQLite, same idx/ts/type/payload"
    );
    // Even with the whole run folder gone.
    std::fs::remove_dir_all(&run_dir).unwrap();
    let status = nt.status(&run_id);
    assert_eq!(status, done);
    assert_eq!(nt.approvals(&run_id), approvals_before);
    let approved = approvals_before
        .iter()
        .find(|a| a["status"] == "approved")
        .unwrap();
    assert_eq!(approved["decision"]["decided_by"], "cli:tester");
    assert_eq!(approved["decision"]["reason"], "fine");
    // Cursor paging over the DB.
    let page = nt.run(&["events", &run_id, "--cursor", "3", "--json"]).ok();
    let first: Value = serde_json::from_str(page.stdout.lines().next().unwrap()).unwrap();
    assert_eq!(first["idx"], 3);
}

#[test]
fn a_repository_whose_git_config_and_hooks_run_commands_never_gets_them_run() {
    let sentinel_dir = tempfile::tempdir().unwrap();
    let sentinel = sentinel_dir.path().join("SENTINEL");
    let touch = format!("touch {}", sentinel.display());
    let repo = FixtureRepo::new("pyproj", &[(".gitattributes", "* filter=evil diff=evil\n")]);
    let git_dir = repo.path().join(".git");
    let mut config = std::fs::read_to_string(git_dir.join("config")).unwrap();
    config.push_str(&format!(
        "[core]\n\tfsmonitor = {touch}\n\thooksPath = .git/hooks\n\tsshCommand = {touch}\n\teditor = {touch}\n\tpager = {touch}\n\
         [filter \"evil\"]\n\tclean = {touch}; cat\n\tsmudge = {touch}; cat\n\tprocess = {touch}\n\trequired = false\n\
         [diff \"evil\"]\n\ttextconv = {touch}\n\tcommand = {touch}\n\
         [commit]\n\tgpgsign = true\n[gpg]\n\tprogram = {touch}\n[credential]\n\thelper = !{touch}\n"
    ));
    std::fs::write(git_dir.join("config"), config).unwrap();
    for hook in [
        "pre-commit",
        "prepare-commit-msg",
        "commit-msg",
        "post-commit",
        "post-checkout",
        "reference-transaction",
        "post-index-change",
        "pre-auto-gc",
    ] {
        let p = git_dir.join("hooks").join(hook);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, format!("#!/bin/sh\n{touch}\n")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let nt = Noctune::new();
    let (run_id, done) = run_to_done(&nt, &repo, "lint_fix");
    assert!(
        !repo
            .branch_commits(done["branch"].as_str().unwrap())
            .is_empty(),
        "the run did commit"
    );
    nt.run(&["approvals", &run_id]).ok();
    assert!(
        !sentinel.exists(),
        "a repository hook or command-valued config was executed"
    );
    // Control: the trap is armed. The git CLI, which honours core.fsmonitor, does trip it.
    let _ = std::process::Command::new("git")
        .arg("-C")
        .arg(repo.path())
        .arg("status")
        .output();
    assert!(
        sentinel.exists(),
        "the booby trap did not work, so this test proves nothing"
    );
}
