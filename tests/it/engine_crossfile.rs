//! The cross-file gate and the import check, through the real binary on `fixtures/reexport`:
//! ruff's F401 fix removes `pkg/compat.py`'s re-export of `helper`, which `pkg/api.py`
//! imports (the tests do not import `pkg.api`, so pytest passes either way), and the unused
//! `import os` of `pkg/extra.py`, which nobody needs.

use crate::support::cli::Noctune;
use crate::support::repo::FixtureRepo;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

const COMPAT: &str = "from .core import helper  # re-export\n";

fn by_file<'a>(approvals: &'a [Value], file: &str) -> &'a Value {
    approvals
        .iter()
        .find(|a| a["file_path"] == file)
        .unwrap_or_else(|| panic!("no approval for {file}: {approvals:#?}"))
}

/// Starts `lint_fix` and waits until it asks for a decision or is done; returns the run id
/// and its approvals.
fn start(repo: &FixtureRepo, nt: &Noctune) -> (String, Vec<Value>) {
    let run_id = nt.start(&repo.path(), "lint_fix");
    nt.wait_for(&run_id, 90, |s| {
        s["status"] == "waiting_approval" || s["status"] == "done" || s["status"] == "failed"
    });
    let approvals = nt.approvals(&run_id);
    (run_id, approvals)
}

/// The tip of `branch` written out to a directory of its own.
fn export_branch(repo: &FixtureRepo, branch: &str) -> tempfile::TempDir {
    let r = repo.repo();
    let tree = r
        .find_branch(branch, git2::BranchType::Local)
        .unwrap()
        .get()
        .peel_to_tree()
        .unwrap();
    let dir = tempfile::Builder::new()
        .prefix("noctune-branch-")
        .tempdir()
        .unwrap();
    tree.walk(git2::TreeWalkMode::PreOrder, |root, entry| {
        if entry.kind() == Some(git2::ObjectType::Blob) {
            let path = dir.path().join(root).join(entry.name().unwrap());
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            let blob = entry.to_object(&r).unwrap().peel_to_blob().unwrap();
            std::fs::write(path, blob.content()).unwrap();
        }
        git2::TreeWalkResult::Ok
    })
    .unwrap();
    dir
}

/// `python3 -c "import pkg.api"` in `dir`, as someone who checks the branch out would.
#[track_caller]
fn assert_api_imports(dir: &Path) {
    let out = Command::new("python3")
        .args(["-B", "-c", "import pkg.api; assert pkg.api.run() == 42"])
        .current_dir(dir)
        .env_remove("PYTHONPATH")
        .output()
        .expect("python3 on PATH");
    assert!(
        out.status.success(),
        "import pkg.api fails on the result branch:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_re_export_another_file_imports_is_not_auto_approved_and_the_unrelated_fix_commits() {
    let repo = FixtureRepo::new("reexport", &[]);
    let nt = Noctune::new();
    let (run_id, approvals) = start(&repo, &nt);

    let compat = by_file(&approvals, "pkg/compat.py");
    assert_eq!(compat["status"], "pending", "{compat:#}");
    let reason = compat["reason"].as_str().unwrap();
    assert!(
        reason.contains(
            "the edit removes names other files use: pkg.compat.helper is imported by pkg/api.py:1"
        ),
        "{reason}"
    );
    let requested = nt
        .events(&run_id)
        .into_iter()
        .find(|e| e["type"] == "approval_requested")
        .expect("an approval_requested event");
    assert!(
        requested["payload"]["risk_score"].as_u64().unwrap() > 50,
        "{requested:#}"
    );
    // The listing every surface shows carries the same score, not the one file's alone.
    assert_eq!(
        compat["risk_score"], requested["payload"]["risk_score"],
        "{compat:#}"
    );
    // Removing `os` from pkg/extra.py breaks nobody: it stays auto-approved.
    let extra = by_file(&approvals, "pkg/extra.py");
    assert_eq!(extra["status"], "auto_approved", "{extra:#}");

    let id = compat["approval_id"].as_str().unwrap();
    nt.decide(&run_id, id, "reject", "pkg/api.py imports it")
        .ok();
    let done = nt.wait_status(&run_id, "done", 120);
    let branch = done["branch"].as_str().unwrap();
    assert!(!repo.read_at(branch, "pkg/extra.py").contains("import os"));
    assert_eq!(repo.read_at(branch, "pkg/compat.py"), COMPAT);
    assert_api_imports(export_branch(&repo, branch).path());
}

#[test]
fn a_person_approving_the_removal_gets_a_patchset_the_import_check_rolls_back() {
    // A fix outside `pkg` is a patchset of its own, which commits.
    let repo = FixtureRepo::new(
        "reexport",
        &[(
            "tools/tidy.py",
            "import sys\n\n\ndef tidy():\n    return 0\n",
        )],
    );
    let nt = Noctune::new();
    let (run_id, approvals) = start(&repo, &nt);
    let compat = by_file(&approvals, "pkg/compat.py");
    if compat["status"] == "pending" {
        let id = compat["approval_id"].as_str().unwrap();
        nt.decide(&run_id, id, "approve", "my call").ok();
    }
    let done = nt.wait_status(&run_id, "done", 120);

    let events = nt.events(&run_id);
    let failed: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "patchset_failed")
        .collect();
    // The package's patchset fails, is split in halves, and only pkg/compat.py's edit fails
    // for good (the last failure); pkg/extra.py's is committed.
    assert_eq!(failed.len(), 2, "{events:#?}");
    assert!(
        failed[0]["payload"]["reason"]
            .as_str()
            .unwrap()
            .contains("split into patchsets of"),
        "{:#}",
        failed[0]["payload"]
    );
    let p = &failed[1]["payload"];
    assert_eq!(p["files"], serde_json::json!(["pkg/compat.py"]), "{p:#}");
    assert_eq!(p["tool"], "import_check", "{p:#}");
    let reason = p["reason"].as_str().unwrap();
    assert!(
        reason.contains(
            "pkg.api no longer imports: ImportError: cannot import name 'helper' from 'pkg.compat'"
        ),
        "{reason}"
    );
    assert!(
        p["files"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "pkg/compat.py"),
        "{p:#}"
    );
    // The import ran with the worktree first on sys.path, both before and after the edits.
    let checks: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "tool_started" && e["payload"]["tool"] == "import_check")
        .collect();
    assert_eq!(
        checks.len(),
        6,
        "before and after each of 3 patchsets: {events:#?}"
    );
    let argv: Vec<&str> = checks[0]["payload"]["argv"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(&argv[..3], ["python3", "-I", "-B"], "{argv:?}");
    assert!(
        argv.ends_with(&["pkg", "pkg.api", "pkg.compat", "pkg.extra"]),
        "{argv:?}"
    );

    let branch = done["branch"].as_str().unwrap();
    assert!(!repo.read_at(branch, "tools/tidy.py").contains("import sys"));
    assert!(!repo.read_at(branch, "pkg/extra.py").contains("import os"));
    assert_eq!(repo.read_at(branch, "pkg/compat.py"), COMPAT);
    assert_api_imports(export_branch(&repo, branch).path());
}

#[test]
fn an_import_that_already_failed_at_the_base_is_not_blamed_on_the_patchset() {
    // pkg/broken.py imports pkg.extra and fails on import before any edit: the import check
    // imports it (it imports a touched module), sees it fail at the base too, and lets the
    // unrelated fix through.
    let repo = FixtureRepo::new(
        "reexport",
        &[(
            "pkg/broken.py",
            "from pkg.extra import answer\n\nraise RuntimeError(answer())\n",
        )],
    );
    let nt = Noctune::new();
    let (run_id, approvals) = start(&repo, &nt);
    let compat = by_file(&approvals, "pkg/compat.py");
    let id = compat["approval_id"].as_str().unwrap();
    nt.decide(&run_id, id, "reject", "keep it").ok();
    let done = nt.wait_status(&run_id, "done", 120);
    let events = nt.events(&run_id);
    assert!(
        !events.iter().any(|e| e["type"] == "patchset_failed"),
        "{events:#?}"
    );
    assert!(
        events.iter().any(|e| e["type"] == "tool_started"
            && e["payload"]["tool"] == "import_check"
            && e["payload"]["argv"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a == "pkg.broken")),
        "{events:#?}"
    );
    let branch = done["branch"].as_str().unwrap();
    assert!(!repo.read_at(branch, "pkg/extra.py").contains("import os"));
}

/// requests 2.32.3's `tests/compat.py` binds `StringIO` in a `try` and its `except` for
/// `tests/test_utils.py` (`from .compat import StringIO`, a relative import inside a test
/// package). Removing one of the two bindings changes what the importer gets: it was
/// auto-approved at risk 12, and only the import check caught it.
#[test]
fn a_re_export_used_by_a_relative_import_inside_the_tests_package_is_not_auto_approved() {
    let repo = FixtureRepo::new(
        "reexport",
        &[
            ("tests/__init__.py", ""),
            // Python 2's module, else io: ruff's F401 fix turns the second import into
            // `pass`, so on Python 3 the name is no longer bound, though the first binding
            // (that never succeeds) is still in the text.
            (
                "tests/compat.py",
                "try:\n    import StringIO\nexcept ImportError:\n    import io as StringIO\n",
            ),
            (
                "tests/test_buffers.py",
                "from .compat import StringIO\n\n\ndef test_buffer():\n    assert StringIO.StringIO().read() == \"\"\n",
            ),
        ],
    );
    let nt = Noctune::new();
    let (_run_id, approvals) = start(&repo, &nt);
    let compat = by_file(&approvals, "tests/compat.py");
    assert_eq!(compat["status"], "pending", "{compat:#}");
    let reason = compat["reason"].as_str().unwrap();
    assert!(
        reason.contains("tests.compat.StringIO is imported by tests/test_buffers.py:1"),
        "{reason}"
    );
}

#[test]
fn a_second_run_on_the_same_commit_still_holds_the_re_export_for_a_person() {
    // The second run's answers come from the gate memo (the removed names by the edit's blob
    // ids): a name the memo says is removed is still looked up among the other files.
    let repo = FixtureRepo::new("reexport", &[]);
    let nt = Noctune::new();
    for round in ["first", "second"] {
        let (run_id, approvals) = start(&repo, &nt);
        let compat = by_file(&approvals, "pkg/compat.py");
        assert_eq!(compat["status"], "pending", "{round} run: {compat:#}");
        assert!(
            compat["reason"]
                .as_str()
                .unwrap()
                .contains("pkg.compat.helper is imported by pkg/api.py:1"),
            "{round} run: {compat:#}"
        );
        let extra = by_file(&approvals, "pkg/extra.py");
        assert_eq!(extra["status"], "auto_approved", "{round} run: {extra:#}");
        let id = compat["approval_id"].as_str().unwrap();
        nt.decide(&run_id, id, "reject", "pkg/api.py imports it")
            .ok();
        nt.wait_status(&run_id, "done", 120);
    }
    let memo = nt.db().parent().unwrap().join("gate-memo");
    assert!(
        memo.join("removed-names.json").is_file(),
        "{}",
        memo.display()
    );
}
