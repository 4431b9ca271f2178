//! Which files a command pack's fixers are given (issue 11): the repository's tracked files
//! that match the pack's `allowed_globs`, stubs included by the built-in globs, with the
//! project's own ruff excludes still holding; and a fixer that fails says why in its own words.

use crate::support::cli::Noctune;
use crate::support::repo::FixtureRepo;
use serde_json::Value;

/// pyproj's pyproject.toml, with `vendor/` excluded from ruff as a project would.
const PYPROJECT: &str = r#"[project]
name = "shapes"
version = "0.1.0"

[tool.ruff]
line-length = 100
extend-exclude = ["vendor"]

[tool.ruff.lint]
select = ["E4", "E7", "E9", "F"]
"#;

const PACK: &str = r#"
[policy_packs.scoped]
extends = "lint_fix"
checks = []
auto_approve = { enabled = true, max_risk = 100, max_lines = 100 }
grouping = "per_pack"
"#;

fn of<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == kind).collect()
}

/// Before: the fixers ran on `.`, so ruff format rewrote the Markdown guide (and the stub, which
/// the built-in globs did not allow) and both were refused as policy violations on every run.
#[test]
fn fixers_get_only_the_packs_tracked_files_and_the_projects_excludes_hold() {
    let repo = FixtureRepo::new(
        "pyproj",
        &[
            ("pyproject.toml", PYPROJECT),
            ("noctune.toml", PACK),
            (
                "shapes/types.pyi",
                "import os\ndef area(w:float,h:float)->float: ...\n",
            ),
            ("docs/guide.md", "# Guide\n\n```python\nx=1\n```\n"),
            ("vendor/third.py", "import os\nx=1\n"),
        ],
    );
    let nt = Noctune::new();
    let run_id = nt.start(&repo.path(), "scoped");
    let done = nt.wait_status(&run_id, "done", 120);
    let events = nt.events(&run_id);
    assert!(
        of(&events, "policy_violation").is_empty() && of(&events, "edit_refused").is_empty(),
        "nothing outside allowed_globs is rewritten: {:#?}",
        [of(&events, "policy_violation"), of(&events, "edit_refused")]
    );
    let started = of(&events, "tool_started");
    assert_eq!(
        started.len(),
        2,
        "ruff and format ran once each: {started:#?}"
    );
    for e in &started {
        let argv: Vec<&str> = e["payload"]["argv"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert!(argv.contains(&"--force-exclude"), "{argv:?}");
        let files = &argv[argv.iter().position(|a| *a == "--").unwrap() + 1..];
        assert!(files.contains(&"shapes/types.pyi"), "{argv:?}");
        assert!(files.contains(&"shapes/geometry.py"), "{argv:?}");
        assert!(
            !files
                .iter()
                .any(|f| *f == "." || f.ends_with(".md") || f.ends_with(".toml")),
            "only the pack's files: {argv:?}"
        );
    }
    let branch = done["branch"].as_str().unwrap();
    assert_eq!(
        repo.read_at(branch, "shapes/types.pyi"),
        "def area(w: float, h: float) -> float: ...\n",
        "stubs are in the built-in globs: fixed and formatted"
    );
    assert_eq!(
        repo.read_at(branch, "vendor/third.py"),
        "import os\nx=1\n",
        "the project's ruff exclude holds for files named on ruff's command line"
    );
    assert_eq!(
        repo.read_at(branch, "docs/guide.md"),
        "# Guide\n\n```python\nx=1\n```\n"
    );
    assert!(
        !repo
            .read_at(branch, "shapes/geometry.py")
            .contains("import os"),
        "the package's files are fixed"
    );
}

/// A pack whose globs take in no file its fixers read runs no fixer (an empty `{files}` would
/// have meant the whole tree) and ends with nothing to change.
#[test]
fn a_fixer_with_no_file_in_scope_is_not_run() {
    let cfg = "[policy_packs.nothing]\nextends = \"lint_fix\"\nchecks = []\nallowed_globs = [\"nowhere/**/*.py\", \"README.md\"]\n";
    let repo = FixtureRepo::new("pyproj", &[("noctune.toml", cfg)]);
    let nt = Noctune::new();
    let run_id = nt.start(&repo.path(), "nothing");
    let done = nt.wait_status(&run_id, "done", 60);
    let events = nt.events(&run_id);
    let skipped: Vec<(&str, &str)> = of(&events, "tool_skipped")
        .iter()
        .map(|e| {
            (
                e["payload"]["tool"].as_str().unwrap(),
                e["payload"]["reason"].as_str().unwrap(),
            )
        })
        .collect();
    // ruff check reads no Markdown; ruff format does, and README.md is already formatted.
    assert_eq!(skipped.len(), 1, "{events:#?}");
    assert_eq!(skipped[0].0, "ruff");
    assert!(skipped[0].1.contains("allowed_globs"), "{skipped:?}");
    assert_eq!(done["commits"], 0, "{done:#}");
    assert!(of(&events, "policy_violation").is_empty(), "{events:#?}");
}

/// Before: ruff format ran with `--quiet`, which hides its errors, and a failed fixer left
/// only `exit code 2` in its tool_finished event.
#[test]
fn a_fixer_that_fails_says_why_in_its_own_words() {
    let cfg = r#"
[tools.format]
command = ["ruff", "format", "--no-cache", "--quiet", "--", "{files}"]
stage = "fix"

[policy_packs.fmt]
extends = "lint_fix"
checks = []
auto_approve = { enabled = true, max_risk = 100, max_lines = 100 }
"#;
    let repo = FixtureRepo::new(
        "pyproj",
        &[
            ("noctune.toml", cfg),
            ("shapes/broken.py", "def broken(:\n    pass\n"),
        ],
    );
    let nt = Noctune::new();
    let run_id = nt.start(&repo.path(), "fmt");
    let done = nt.wait_status(&run_id, "done", 120);
    let events = nt.events(&run_id);
    let warned: Vec<&str> = of(&events, "log")
        .iter()
        .filter_map(|e| e["payload"]["message"].as_str())
        .filter(|m| m.starts_with("fixer format failed"))
        .collect();
    assert_eq!(warned.len(), 1, "{events:#?}");
    assert!(warned[0].contains("exit code 2"), "{warned:?}");
    assert!(
        warned[0].contains("Failed to parse shapes/broken.py"),
        "ruff's own error text: {warned:?}"
    );
    assert!(
        done["commits"].as_u64().unwrap() >= 1,
        "what format did to the other files is still proposed: {done:#}"
    );
}

/// A fixer that takes no `{files}` decides for itself what it rewrites; policy still refuses
/// what it wrote outside the pack's globs.
#[test]
fn a_fixer_without_files_in_its_argv_is_still_held_to_the_globs() {
    let cfg = r#"
[tools.append]
command = ["sh", "-c", "printf '\nX = 1\n' >> scripts/report.py && printf '\nY = 2\n' >> shapes/render.py"]
stage = "fix"

[policy_packs.append]
allowed_globs = ["shapes/**/*.py"]
tools_allowed = ["append"]
proposer = { kind = "command", tools = ["append"] }
auto_approve = { enabled = true, max_risk = 100, max_lines = 100 }
"#;
    let repo = FixtureRepo::new("pyproj", &[("noctune.toml", cfg)]);
    let nt = Noctune::new();
    let run_id = nt.start(&repo.path(), "append");
    let done = nt.wait_status(&run_id, "done", 60);
    let events = nt.events(&run_id);
    let violations: Vec<&str> = of(&events, "policy_violation")
        .iter()
        .map(|e| e["payload"]["file"].as_str().unwrap())
        .collect();
    assert_eq!(violations, ["scripts/report.py"], "{events:#?}");
    let branch = done["branch"].as_str().unwrap();
    assert!(
        repo.read_at(branch, "shapes/render.py")
            .ends_with("\nY = 2\n")
    );
    assert!(!repo.read_at(branch, "scripts/report.py").contains("X = 1"));
}
