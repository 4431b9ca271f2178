//! How a run ends, through the real binary: checks judged against their result on the base
//! commit (a test that fails there does not hold unrelated edits back; no tests collected is
//! not a failure), an honest outcome (`commits`, `reason`, `summary` in run.json; `noctune run`
//! exits 3 for a done run without commits), and a result branch the user's tree can check out
//! at once (none at all when there is nothing to commit).

use crate::support::cli::{Noctune, Ran};
use crate::support::repo::FixtureRepo;
use serde_json::Value;
use std::path::Path;

/// A pack that auto-approves every edit of `globs`, one patchset per file: the runs below never
/// wait for a decision.
fn auto_pack(name: &str, globs: &str) -> String {
    format!(
        "[policy_packs.{name}]\nextends = \"lint_fix\"\nallowed_globs = {globs}\n\
         auto_approve = {{ enabled = true, max_risk = 100, max_lines = 1000 }}\n\
         grouping = \"per_file\"\n"
    )
}

/// `noctune run` in the foreground, as a person types it.
fn run_foreground(nt: &Noctune, repo: &Path, pack: &str) -> Ran {
    nt.run(&["run", "--repo", repo.to_str().unwrap(), "--pack", pack])
}

/// The run of a foreground `noctune run`: the newest one.
fn last_run(nt: &Noctune) -> Value {
    let runs = nt.run(&["runs", "--json"]).ok().json();
    let id = runs[0]["run_id"].as_str().unwrap().to_string();
    nt.status(&id)
}

fn of_type<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == kind).collect()
}

fn git(repo: &Path, args: &[&str]) -> Ran {
    std::process::Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .output()
        .unwrap()
        .into()
}

const BROKEN_ON_MAIN: &str = "def test_broken_on_main():\n    assert 1 + 1 == 3\n";

#[test]
fn a_test_failing_on_the_base_commit_does_not_keep_unrelated_lint_edits_out() {
    let repo = FixtureRepo::new(
        "pyproj",
        &[
            ("tests/test_broken.py", BROKEN_ON_MAIN),
            ("noctune.toml", &auto_pack("lint_all", "[\"**/*.py\"]")),
        ],
    );
    let nt = Noctune::new();
    let ran = run_foreground(&nt, &repo.path(), "lint_all");
    assert_eq!(ran.code, 0, "{}\n{}", ran.stdout, ran.stderr);
    let rec = last_run(&nt);
    let run_id = rec["run_id"].as_str().unwrap();
    let events = nt.events(run_id);

    let baseline = of_type(&events, "check_baseline");
    assert_eq!(baseline.len(), 1, "one baseline per check: {baseline:#?}");
    let b = &baseline[0]["payload"];
    assert_eq!(b["tool"], "pytest");
    assert_eq!(b["status"], "failed");
    assert_eq!(
        b["failing"],
        serde_json::json!(["tests/test_broken.py::test_broken_on_main"]),
        "{b:#}"
    );
    assert!(
        of_type(&events, "patchset_failed").is_empty(),
        "{events:#?}"
    );
    let commits = repo.branch_commits(rec["branch"].as_str().unwrap());
    assert_eq!(commits.len(), 4, "one per file: {commits:#?}");
    assert_eq!(rec["commits"], 4);
    assert_eq!(rec["reason"], Value::Null);
    let s = &rec["summary"];
    assert_eq!(s["commits"], 4);
    assert_eq!(s["baselines"][0]["status"], "failed");
    assert_eq!(s["baselines"][0]["failing"], 1);
    assert_eq!(s["baselines"][0]["regressions"], 0);
    assert!(
        ran.stdout
            .contains("pytest also fails on the base commit: 1 failing of 6; regressions: none"),
        "{}",
        ran.stdout
    );
}

#[test]
fn a_project_without_tests_commits_its_lint_fixes() {
    let repo = FixtureRepo::new("notests", &[]);
    let nt = Noctune::new();
    let ran = run_foreground(&nt, &repo.path(), "lint_fix");
    assert_eq!(ran.code, 0, "{}\n{}", ran.stdout, ran.stderr);
    let rec = last_run(&nt);
    let events = nt.events(rec["run_id"].as_str().unwrap());
    let b = &of_type(&events, "check_baseline")[0]["payload"];
    assert_eq!(b["status"], "skipped", "{b:#}");
    assert_eq!(b["summary"], "no tests collected");
    let branch = rec["branch"].as_str().unwrap();
    assert_eq!(repo.branch_commits(branch).len(), 1);
    assert!(!repo.read_at(branch, "tidy/words.py").contains("import os"));
    assert!(
        ran.stdout
            .contains("pytest checked nothing: no tests collected"),
        "{}",
        ran.stdout
    );
}

const CONTRACT_TEST: &str = "import shapes.util.helpers as h\n\n\ndef test_helpers_reexports_sys():\n    assert hasattr(h, \"sys\")\n";

#[test]
fn a_run_whose_every_patchset_regresses_ends_done_with_no_commits_and_exits_3() {
    let repo = FixtureRepo::new(
        "pyproj",
        &[
            ("tests/test_contract.py", CONTRACT_TEST),
            (
                "noctune.toml",
                &auto_pack("lint_util", "[\"shapes/util/*.py\"]"),
            ),
        ],
    );
    let nt = Noctune::new();
    let ran = run_foreground(&nt, &repo.path(), "lint_util");
    assert_eq!(
        ran.code, 3,
        "done without commits: {}\n{}",
        ran.stdout, ran.stderr
    );
    let rec = last_run(&nt);
    assert_eq!(rec["status"], "done");
    assert_eq!(rec["commits"], 0);
    assert_eq!(rec["reason"], "every patchset regressed pytest");
    let s = &rec["summary"];
    assert_eq!(
        s["rolled_back"][0]["files"],
        serde_json::json!(["shapes/util/helpers.py"])
    );
    assert_eq!(s["rolled_back"][0]["tool"], "pytest");
    assert_eq!(s["baselines"][0]["status"], "passed");
    let events = nt.events(rec["run_id"].as_str().unwrap());
    let failed = &of_type(&events, "patchset_failed")[0]["payload"];
    assert_eq!(
        failed["regressions"],
        serde_json::json!(["tests/test_contract.py::test_helpers_reexports_sys"]),
        "{failed:#}"
    );
    assert!(
        ran.stdout
            .contains("commits: 0 (every patchset regressed pytest)"),
        "{}",
        ran.stdout
    );
    // `noctune status` shows the same summary.
    let status = nt.run(&["status", rec["run_id"].as_str().unwrap()]).ok();
    assert!(
        status.stdout.contains("summary:\n  proposed ")
            && status
                .stdout
                .contains("  commits: 0 (every patchset regressed pytest)\n"),
        "{}",
        status.stdout
    );
    let help = nt.run(&["run", "--help"]).ok();
    assert!(
        help.stdout
            .contains("3 it ended done and committed nothing"),
        "{}",
        help.stdout
    );
}

#[test]
fn the_result_branch_can_be_switched_to_and_merged_at_once_and_the_worktree_is_recycled() {
    let repo = FixtureRepo::new(
        "pyproj",
        &[("noctune.toml", &auto_pack("lint_all", "[\"**/*.py\"]"))],
    );
    let nt = Noctune::new();
    let first = nt.start(&repo.path(), "lint_all");
    let done = nt.wait_status(&first, "done", 120);
    let branch = done["branch"].as_str().unwrap().to_string();
    assert!(!repo.branch_commits(&branch).is_empty());

    // The real git CLI, in the user's tree, right after the run.
    git(&repo.path(), &["switch", &branch]).ok();
    assert!(
        repo.read("shapes/render.py")
            .contains("def describe(w, h):")
    );
    git(&repo.path(), &["switch", "main"]).ok();
    git(&repo.path(), &["checkout", &branch]).ok();
    git(&repo.path(), &["checkout", "main"]).ok();
    git(&repo.path(), &["merge", "--ff-only", &branch]).ok();
    assert!(
        repo.read("shapes/render.py")
            .contains("def describe(w, h):")
    );

    // The next run takes the finished run's worktree over, and frees its branch too.
    let wt = |run: &str| repo.path().join(format!(".noctune_cache/worktrees/{run}"));
    std::fs::write(
        repo.path().join("shapes/extra.py"),
        "import sys\n\n\ndef one():\n    return 1\n",
    )
    .unwrap();
    crate::support::repo::commit_all(&repo.repo(), "extra");
    let second = nt.start(&repo.path(), "lint_all");
    let done2 = nt.wait_status(&second, "done", 120);
    assert!(
        !wt(&first).exists(),
        "the first run's worktree was recycled"
    );
    assert!(wt(&second).is_dir());
    let branch2 = done2["branch"].as_str().unwrap();
    assert!(
        repo.read_at(branch2, "shapes/extra.py")
            .starts_with("def one():"),
        "{}",
        repo.read_at(branch2, "shapes/extra.py")
    );
    git(&repo.path(), &["switch", branch2]).ok();
}

#[test]
fn a_run_with_nothing_to_change_leaves_no_branch_and_says_why() {
    let repo = FixtureRepo::new("clean", &[]);
    let nt = Noctune::new();
    let ran = run_foreground(&nt, &repo.path(), "lint_fix");
    assert_eq!(ran.code, 3, "{}\n{}", ran.stdout, ran.stderr);
    let rec = last_run(&nt);
    assert_eq!(rec["status"], "done");
    assert_eq!(rec["commits"], 0);
    assert_eq!(rec["reason"], "nothing to change");
    let branch = rec["branch"].as_str().unwrap();
    assert!(
        repo.repo()
            .find_branch(branch, git2::BranchType::Local)
            .is_err(),
        "the empty branch {branch} is deleted"
    );
    let events = nt.events(rec["run_id"].as_str().unwrap());
    let done = &of_type(&events, "run_done")[0]["payload"];
    assert_eq!(done["branch_deleted"], true);
    assert_eq!(done["reason"], "nothing to change");
    assert!(
        ran.stdout.contains("commits: 0 (nothing to change)"),
        "{}",
        ran.stdout
    );
}

const GEOMETRY_CONTRACT: &str = "import shapes.geometry as g\n\n\ndef test_geometry_keeps_os():\n    assert hasattr(g, \"os\")\n";

#[test]
fn commit_labels_count_committed_patchsets_only() {
    let repo = FixtureRepo::new(
        "pyproj",
        &[
            ("tests/test_geometry_contract.py", GEOMETRY_CONTRACT),
            (
                "noctune.toml",
                &auto_pack(
                    "lint_two",
                    "[\"shapes/geometry.py\", \"shapes/util/helpers.py\"]",
                ),
            ),
        ],
    );
    let nt = Noctune::new();
    let run_id = nt.start(&repo.path(), "lint_two");
    let done = nt.wait_status(&run_id, "done", 120);
    let events = nt.events(&run_id);
    let failed = of_type(&events, "patchset_failed");
    assert_eq!(failed.len(), 1, "{events:#?}");
    assert_eq!(
        failed[0]["payload"]["files"],
        serde_json::json!(["shapes/geometry.py"])
    );
    let commits = repo.branch_commits(done["branch"].as_str().unwrap());
    assert_eq!(commits.len(), 1, "{commits:#?}");
    assert!(
        commits[0].1.starts_with(&format!(
            "Noctune Studio: lint_two (#{run_id}) [patchset 1/1]\n"
        )),
        "{}",
        commits[0].1
    );
    assert_eq!(done["commits"], 1);
}

#[test]
fn a_bare_repository_is_named_as_one() {
    let dir = tempfile::tempdir().unwrap();
    git2::Repository::init_bare(dir.path()).unwrap();
    let nt = Noctune::new();
    let ran = run_foreground(&nt, dir.path(), "lint_fix");
    assert_ne!(ran.code, 0);
    let canon = std::fs::canonicalize(dir.path()).unwrap();
    assert!(
        ran.stderr.contains(&format!(
            "{} is a bare repository; runs need a working tree: clone it",
            canon.display()
        )),
        "{}",
        ran.stderr
    );
    assert!(!ran.stderr.contains("git init"), "{}", ran.stderr);
}

#[test]
fn uncommitted_changes_of_the_users_tree_are_mentioned_at_the_start() {
    let repo = FixtureRepo::new("clean", &[]);
    std::fs::write(
        repo.path().join("calc/ops.py"),
        "def add(a, b):\n    return a - b\n",
    )
    .unwrap();
    let nt = Noctune::new();
    let ran = run_foreground(&nt, &repo.path(), "lint_fix");
    let head = repo.head_sha();
    let line = format!(
        "note: your working tree has uncommitted changes (1: calc/ops.py); the run starts from HEAD {} and does not include them",
        &head[..10]
    );
    assert!(ran.stdout.contains(&line), "{}", ran.stdout);
    let rec = last_run(&nt);
    assert!(
        rec["summary"]["notes"].as_array().unwrap().iter().any(|n| n
            .as_str()
            .unwrap()
            .starts_with("your working tree has uncommitted")),
        "{rec:#}"
    );
    // The run's tests ran on HEAD's code, not the user's broken edit.
    let events = nt.events(rec["run_id"].as_str().unwrap());
    assert_eq!(
        of_type(&events, "check_baseline").len(),
        0,
        "nothing to change, so no check ran"
    );
    assert_eq!(rec["reason"], "nothing to change");
}

/// The model adds `float` annotations to whatever function it is shown.
fn annotating_model() -> crate::support::llm_server::ScriptedLlm {
    use crate::support::llm_server::{Reply, Script, ScriptedLlm, last_user_text};
    ScriptedLlm::start(Script::new().fallback(|req| {
        let text = last_user_text(req);
        let start = text.find("```python\n").map(|i| i + 10).unwrap_or(0);
        let end = text[start..]
            .find("```")
            .map(|i| start + i)
            .unwrap_or(text.len());
        let mut lines: Vec<String> = text[start..end]
            .trim_end()
            .lines()
            .map(str::to_string)
            .collect();
        if let Some(sig) = lines.iter_mut().find(|l| l.starts_with("def ")) {
            let open = sig.find('(').unwrap();
            let close = sig.rfind(')').unwrap();
            let params: Vec<String> = sig[open + 1..close]
                .split(',')
                .map(|p| format!("{}: float", p.trim()))
                .collect();
            *sig = format!("{}({}) -> float:", &sig[..open], params.join(", "));
        }
        let code = lines.join("\n");
        Reply::text(&["```python\n", &code, "\n```\n"])
    }))
}

#[test]
fn typing_pass_runs_mypy_as_a_check() {
    let model = annotating_model();
    let cfg = "[policy_packs.typing_geo]\nextends = \"typing_pass\"\nallowed_globs = [\"shapes/geometry.py\"]\n";
    let repo = FixtureRepo::new("pyproj", &[("noctune.toml", cfg)]);
    let nt = Noctune::new();
    let out = nt
        .cmd()
        .args([
            "run",
            "--repo",
            repo.path().to_str().unwrap(),
            "--pack",
            "typing_geo",
            "--detach",
            "--json",
        ])
        .env("NOCTUNE_STUDIO_LLM_BASE_URL", model.base_url())
        .output()
        .unwrap();
    let run_id = serde_json::from_slice::<Value>(&out.stdout).unwrap()["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    nt.wait_status(&run_id, "waiting_approval", 60);
    for a in nt.approvals(&run_id) {
        nt.decide(&run_id, a["approval_id"].as_str().unwrap(), "approve", "ok")
            .ok();
    }
    let done = nt.wait_status(&run_id, "done", 120);
    let events = nt.events(&run_id);
    let mypy: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "tool_finished" && e["payload"]["tool"] == "mypy")
        .collect();
    let stages: Vec<&str> = mypy
        .iter()
        .map(|e| e["payload"]["stage"].as_str().unwrap())
        .collect();
    assert_eq!(stages, ["baseline", "check"], "{events:#?}");
    assert!(
        !events
            .iter()
            .any(|e| e["type"] == "tool_skipped" && e["payload"]["tool"] == "mypy"),
        "mypy is allowed by typing_pass"
    );
    assert_eq!(done["commits"], 1, "{done:#}");
}
