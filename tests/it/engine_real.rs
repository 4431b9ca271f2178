//! Findings of the real-project tier (`scripts/real-projects.sh`: lint_fix on the sdists of
//! attrs, requests, flask, rich and Django), each reproduced on a fixture repository of our own.

use crate::support::cli::{Noctune, Ran};
use crate::support::repo::FixtureRepo;
use serde_json::Value;

/// A pack that auto-approves every edit of `globs`, one patchset per file: the runs below never
/// wait for a decision.
fn auto_pack(name: &str, globs: &str) -> String {
    format!(
        "[policy_packs.{name}]\nextends = \"lint_fix\"\nallowed_globs = {globs}\n\
         auto_approve = {{ enabled = true, max_risk = 100, max_lines = 1000 }}\n\
         grouping = \"per_file\"\n"
    )
}

fn of_type<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == kind).collect()
}

/// `noctune run --pack PACK` on `repo` to its end; what it printed, and the run's record.
fn run_pack(nt: &Noctune, repo: &FixtureRepo, pack: &str) -> (Ran, Value) {
    let ran = nt.run(&[
        "run",
        "--repo",
        repo.path().to_str().unwrap(),
        "--pack",
        pack,
    ]);
    let runs = nt.run(&["runs", "--json"]).ok().json();
    let rec = nt.status(runs[0]["run_id"].as_str().unwrap());
    (ran, rec)
}

/// A lint fix (F401 drops `import sys` from shapes/util/helpers.py) that this test sees.
const CONTRACT_TEST: &str = "import shapes.util.helpers as h\n\n\ndef test_helpers_reexports_sys():\n    assert hasattr(h, \"sys\")\n";

/// flask 3.1.0's tests/test_cli.py imports `_pytest.monkeypatch.notset`, which pytest 9 no
/// longer has: one module that cannot be imported on the base commit.
const UNIMPORTABLE_TEST: &str = "from _pytest.monkeypatch import notset_gone_in_this_pytest\n\n\ndef test_never_collected():\n    assert notset_gone_in_this_pytest is not None\n";

/// Found on flask: pytest stops the whole session at a collection error ("Interrupted: 1 error
/// during collection"), so no test ran on the base commit nor on any patchset and every edit
/// was committed unchecked ("1 failing of 1"). The rest of the suite must still judge them.
#[test]
fn a_test_module_that_cannot_be_imported_on_base_does_not_switch_the_other_tests_off() {
    let repo = FixtureRepo::new(
        "pyproj",
        &[
            ("tests/test_contract.py", CONTRACT_TEST),
            ("tests/test_needs_old_pytest.py", UNIMPORTABLE_TEST),
            (
                "noctune.toml",
                &auto_pack("lint_util", "[\"shapes/util/*.py\"]"),
            ),
        ],
    );
    let nt = Noctune::new();
    let (ran, rec) = run_pack(&nt, &repo, "lint_util");
    assert_eq!(
        ran.code, 3,
        "the one patchset breaks a test that passes on base: {}\n{}",
        ran.stdout, ran.stderr
    );
    assert_eq!(rec["commits"], 0);
    assert_eq!(rec["reason"], "every patchset regressed pytest");
    let events = nt.events(rec["run_id"].as_str().unwrap());
    let base = &of_type(&events, "check_baseline")[0]["payload"];
    assert_eq!(base["status"], "failed", "{base:#}");
    assert_eq!(
        base["failing"],
        serde_json::json!(["tests/test_needs_old_pytest.py::tests.test_needs_old_pytest"]),
        "only the module that cannot be imported fails on base: {base:#}"
    );
    let summary = base["summary"].as_str().unwrap();
    assert!(
        summary.starts_with("1 failing of ") && summary != "1 failing of 1",
        "the other tests ran on base: {summary}"
    );
    let failed = &of_type(&events, "patchset_failed")[0]["payload"];
    assert_eq!(
        failed["regressions"],
        serde_json::json!(["tests/test_contract.py::test_helpers_reexports_sys"]),
        "{failed:#}"
    );
}

/// Found on requests: per-module grouping put all twelve files of `src/requests` in one
/// patchset, ruff's F401 fix of `compat.py` (a module of re-exports) broke every import, and the
/// whole package's lint fixes were rolled back with it. A failed patchset of several files is
/// now split in halves and each half checked again, so only the edit that fails is left out.
#[test]
fn one_bad_edit_in_a_patchset_of_several_files_is_rolled_back_alone() {
    let pack = "[policy_packs.lint_pkg]\nextends = \"lint_fix\"\n\
                allowed_globs = [\"shapes/**/*.py\"]\n\
                auto_approve = { enabled = true, max_risk = 100, max_lines = 1000 }\n\
                grouping = \"per_pack\"\n";
    let repo = FixtureRepo::new(
        "pyproj",
        &[
            ("tests/test_contract.py", CONTRACT_TEST),
            ("noctune.toml", pack),
        ],
    );
    let nt = Noctune::new();
    let (ran, rec) = run_pack(&nt, &repo, "lint_pkg");
    assert_eq!(ran.code, 0, "{}\n{}", ran.stdout, ran.stderr);
    let events = nt.events(rec["run_id"].as_str().unwrap());
    let first = &of_type(&events, "patchset_planned")[0]["payload"];
    let all = first["files"].as_array().unwrap().len();
    assert!(
        all >= 2,
        "one patchset of every edited file of the package: {first:#}"
    );

    // What is left out is the one edit that breaks the test, with the check's reason.
    let s = &rec["summary"];
    assert_eq!(
        s["rolled_back"],
        serde_json::json!([{
            "files": ["shapes/util/helpers.py"],
            "reason": s["rolled_back"][0]["reason"],
            "tool": "pytest",
        }]),
        "{s:#}"
    );
    assert!(
        s["rolled_back"][0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("pytest failed ("),
        "{s:#}"
    );
    let branch = rec["branch"].as_str().unwrap();
    assert!(
        repo.read_at(branch, "shapes/util/helpers.py")
            .contains("import sys")
    );
    let committed: Vec<String> = of_type(&events, "patchset_committed")
        .iter()
        .flat_map(|e| e["payload"]["files"].as_array().unwrap().clone())
        .map(|f| f.as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        committed.len(),
        all - 1,
        "every other edit is committed: {committed:?}"
    );
    assert!(!committed.contains(&"shapes/util/helpers.py".to_string()));
    assert_eq!(rec["commits"], repo.branch_commits(branch).len());
    // The split is said, in the events and in the summary.
    let splits: Vec<&Value> = of_type(&events, "patchset_failed")
        .into_iter()
        .filter(|e| e["payload"]["files"].as_array().unwrap().len() > 1)
        .collect();
    assert!(!splits.is_empty());
    assert!(
        splits.iter().all(|e| e["payload"]["reason"]
            .as_str()
            .unwrap()
            .contains("split into patchsets of")),
        "{splits:#?}"
    );
    assert!(
        s["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().contains("split in halves")),
        "{s:#}"
    );
    // Commit labels count committed patchsets only: 1, 2, ... without gaps for the halves
    // that failed (oldest first).
    let labels: Vec<String> = repo
        .branch_commits(branch)
        .into_iter()
        .map(|(_, m)| m.lines().next().unwrap_or("").to_string())
        .collect();
    for (k, l) in labels.iter().enumerate() {
        let n = k + 1;
        assert!(
            l.ends_with(&format!("[patchset {n}]")) || l.ends_with(&format!("[patchset {n}/{n}]")),
            "{labels:?}"
        );
    }
}

/// A unittest-style contract test: passes on base, fails once F401 drops `import sys`.
const CONTRACT_UNITTEST: &str = "import unittest\n\nimport shapes.util.helpers as h\n\n\nclass Contract(unittest.TestCase):\n    def test_helpers_reexports_sys(self):\n        self.assertTrue(hasattr(h, \"sys\"))\n";

/// Fails on base whatever the edits: as Django's test_permissions_error does when run as root.
const BROKEN_UNITTEST: &str = "import unittest\n\n\nclass Broken(unittest.TestCase):\n    def test_broken_on_main(self):\n        self.assertEqual(1 + 1, 3)\n";

/// Found on Django: its suite runs with its own runner (`tests/runtests.py`), not pytest, and
/// fails on the base commit (tests that expect a PermissionError fail as root). Judged by its
/// exit status alone, a patchset that breaks more tests "fails the same way" (exit 1 both
/// times) and is committed. Run verbosely, a unittest-style runner names each test's result,
/// and it is judged per test as pytest is.
#[test]
fn a_unittest_runner_that_fails_on_base_still_catches_a_regression_per_test() {
    let pack = "[tools.unit]\ncommand = [\"python3\", \"-m\", \"unittest\", \"discover\", \"-s\", \"tests\", \"-v\"]\n\
                stage = \"check\"\n\n\
                [policy_packs.lint_unit]\nextends = \"lint_fix\"\n\
                allowed_globs = [\"shapes/util/*.py\"]\n\
                tools_allowed = [\"ruff\", \"format\", \"unit\"]\nchecks = [\"unit\"]\n\
                auto_approve = { enabled = true, max_risk = 100, max_lines = 1000 }\n\
                grouping = \"per_file\"\n";
    let repo = FixtureRepo::new(
        "pyproj",
        &[
            ("tests/test_contract_ut.py", CONTRACT_UNITTEST),
            ("tests/test_broken_ut.py", BROKEN_UNITTEST),
            ("noctune.toml", pack),
        ],
    );
    let nt = Noctune::new();
    let (ran, rec) = run_pack(&nt, &repo, "lint_unit");
    assert_eq!(ran.code, 3, "{}\n{}", ran.stdout, ran.stderr);
    assert_eq!(rec["reason"], "every patchset regressed unit", "{rec:#}");
    let events = nt.events(rec["run_id"].as_str().unwrap());
    let base = &of_type(&events, "check_baseline")[0]["payload"];
    assert_eq!(base["status"], "failed", "{base:#}");
    assert_eq!(
        base["failing"],
        serde_json::json!(["test_broken_ut.Broken.test_broken_on_main"]),
        "{base:#}"
    );
    assert_eq!(base["summary"], "1 failing of 2", "{base:#}");
    let failed = &of_type(&events, "patchset_failed")[0]["payload"];
    assert_eq!(
        failed["regressions"],
        serde_json::json!(["test_contract_ut.Contract.test_helpers_reexports_sys"]),
        "{failed:#}"
    );
}
