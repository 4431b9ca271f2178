//! Findings of the real-project tier (`scripts/real-projects.sh`: lint_fix on the sdists of
//! attrs, requests, flask, rich and Django), each reproduced on a fixture repository of our own.

use crate::support::cli::Noctune;
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
    let ran = nt.run(&[
        "run",
        "--repo",
        repo.path().to_str().unwrap(),
        "--pack",
        "lint_util",
    ]);
    assert_eq!(
        ran.code, 3,
        "the one patchset breaks a test that passes on base: {}\n{}",
        ran.stdout, ran.stderr
    );
    let runs = nt.run(&["runs", "--json"]).ok().json();
    let rec = nt.status(runs[0]["run_id"].as_str().unwrap());
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
