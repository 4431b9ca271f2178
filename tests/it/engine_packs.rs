//! The built-in packs that need an outside service: deps_bump against a package index served
//! on 127.0.0.1, typing_pass against the scripted OpenAI-compatible server.

use crate::support::cli::Noctune;
use crate::support::pkg_index::PkgIndex;
use crate::support::repo::FixtureRepo;

#[test]
fn deps_bump_raises_pins_to_the_newest_non_major_versions_of_the_index() {
    let index = PkgIndex::start(&[
        ("requests", &["2.31.0", "2.32.3", "3.0.0"]),
        ("attrs", &["23.1.0", "23.2.0", "24.2.0"]),
    ]);
    let cfg = format!(
        "[policy_packs.deps_bump.proposer]\nkind = \"deps_bump\"\nindex_url = \"{}\"\n",
        index.url()
    );
    let repo = FixtureRepo::new("pyproj", &[("noctune.toml", &cfg)]);
    let nt = Noctune::new();
    let run_id = nt.start(&repo.path(), "deps_bump");
    nt.wait_status(&run_id, "waiting_approval", 60);
    let approvals = nt.approvals(&run_id);
    assert_eq!(approvals.len(), 2, "{approvals:#?}");
    for a in &approvals {
        assert_eq!(
            a["status"], "pending",
            "deps_bump never auto-approves: {a:#}"
        );
        assert!(
            a["risk_score"].as_u64().unwrap() >= 25,
            "dependency files are risky: {a:#}"
        );
        nt.decide(
            &run_id,
            a["approval_id"].as_str().unwrap(),
            "approve",
            "bump",
        )
        .ok();
    }
    let done = nt.wait_status(&run_id, "done", 60);
    let branch = done["branch"].as_str().unwrap();
    let req = repo.read_at(branch, "requirements.txt");
    assert_eq!(req, "# runtime pins\nrequests==2.32.3\nattrs==23.2.0\n");
    let py = repo.read_at(branch, "pyproject.toml");
    assert!(
        py.contains("\"requests==2.32.3\",  # HTTP") && py.contains("\"attrs>=23.2.0\""),
        "{py}"
    );
    assert!(
        !py.contains("3.0.0") && !py.contains("24.2.0"),
        "no major bumps unless allowed"
    );
    assert_eq!(
        repo.branch_commits(branch).len(),
        1,
        "per_pack grouping: one commit"
    );
    // The user's files are untouched.
    assert!(repo.read("requirements.txt").contains("requests==2.31.0"));
}

/// The model rewrites whatever symbol it is shown, adding annotations; `clamp` always comes
/// back broken (a missing colon), also when asked to repair it.
fn typing_model() -> crate::support::llm_server::ScriptedLlm {
    use crate::support::llm_server::{Reply, Script, ScriptedLlm, last_user_text};
    ScriptedLlm::start(Script::new().fallback(|req| {
        let text = last_user_text(req);
        let code = if text.contains("does not parse") || text.contains("def clamp") {
            "def clamp(x: int, lo: int, hi: int) -> int\n    return max(lo, min(hi, x))".to_string()
        } else {
            let start = text.find("```python\n").map(|i| i + 10).unwrap_or(0);
            let end = text[start..]
                .find("```")
                .map(|i| start + i)
                .unwrap_or(text.len());
            let original = text[start..end].trim_end();
            let mut lines: Vec<String> = original.lines().map(str::to_string).collect();
            if let Some(sig) = lines.iter_mut().find(|l| l.starts_with("def ")) {
                let open = sig.find('(').unwrap();
                let close = sig.rfind(')').unwrap();
                let params: Vec<String> = sig[open + 1..close]
                    .split(',')
                    .map(|p| format!("{}: float", p.trim()))
                    .collect();
                *sig = format!("{}({}) -> float:", &sig[..open], params.join(", "));
            }
            lines.join("\n")
        };
        Reply::text(&["Here it is:\n```python\n", &code, "\n```\n"])
    }))
}

#[test]
fn typing_pass_rewrites_chosen_symbols_and_drops_a_reply_that_is_not_valid_code() {
    let model = typing_model();
    let cfg = "[policy_packs.typing_small]\nextends = \"typing_pass\"\nallowed_globs = [\"shapes/geometry.py\", \"shapes/util/helpers.py\"]\n";
    let repo = FixtureRepo::new("pyproj", &[("noctune.toml", cfg)]);
    let nt = Noctune::new();
    let out = nt
        .cmd()
        .args([
            "run",
            "--repo",
            repo.path().to_str().unwrap(),
            "--pack",
            "typing_small",
            "--detach",
            "--json",
        ])
        .env("NOCTUNE_STUDIO_LLM_BASE_URL", model.base_url())
        .output()
        .unwrap();
    let run_id = serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    nt.wait_status(&run_id, "waiting_approval", 60);

    let events = nt.events(&run_id);
    let dropped = events
        .iter()
        .find(|e| e["type"] == "edit_dropped")
        .expect("edit_dropped");
    assert_eq!(dropped["payload"]["file"], "shapes/util/helpers.py");
    assert_eq!(dropped["payload"]["gate"], "parse");
    assert!(
        dropped["payload"]["reason"]
            .as_str()
            .unwrap()
            .contains("does not parse"),
        "{dropped:#}"
    );
    let skipped: Vec<_> = events
        .iter()
        .filter(|e| e["type"] == "tool_skipped")
        .collect();
    assert!(
        skipped.is_empty(),
        "no checks run before approval: {skipped:#?}"
    );

    let approvals = nt.approvals(&run_id);
    assert_eq!(approvals.len(), 1, "{approvals:#?}");
    let a = &approvals[0];
    assert_eq!(a["file_path"], "shapes/geometry.py");
    assert_eq!(a["symbol"], "area, perimeter, circle_area");
    assert_eq!(
        a["status"], "pending",
        "a model's rewrite of public functions needs a human"
    );
    nt.decide(
        &run_id,
        a["approval_id"].as_str().unwrap(),
        "approve",
        "types ok",
    )
    .ok();
    let done = nt.wait_status(&run_id, "done", 60);
    let branch = done["branch"].as_str().unwrap();
    let geometry = repo.read_at(branch, "shapes/geometry.py");
    assert!(
        geometry.contains("def area(w: float, h: float) -> float:"),
        "{geometry}"
    );
    assert!(
        geometry.contains("import os\nimport math\n"),
        "the rest of the file is kept byte for byte: {geometry}"
    );
    let events = nt.events(&run_id);
    let mypy_ran = events
        .iter()
        .any(|e| e["type"] == "tool_finished" && e["payload"]["tool"] == "mypy");
    assert!(
        mypy_ran,
        "mypy is a check of typing_pass and in its tools_allowed"
    );
    // 3 symbols of geometry.py, plus clamp and its repair attempt.
    assert_eq!(model.requests().len(), 5);
}

/// A fixer that adds an unused import to one file (a lint finding), breaks another's syntax
/// and makes a clean edit to a third.
const CODEMOD: &str = r#"
[tools.codemod]
command = ["sh", "-c", "sed -i '1i import json' shapes/geometry.py && printf 'def broken(:\n' >> shapes/render.py && printf '\nTIMEOUT = 30\n' >> shapes/util/helpers.py"]
stage = "fix"

[policy_packs.codemod]
allowed_globs = ["**/*.py"]
tools_allowed = ["codemod"]
proposer = { kind = "command", tools = ["codemod"] }
auto_approve = { enabled = true, max_risk = 100, max_lines = 100 }
"#;

#[test]
fn gates_drop_fixer_edits_that_do_not_parse_or_add_lint_findings() {
    let repo = FixtureRepo::new("pyproj", &[("noctune.toml", CODEMOD)]);
    let nt = Noctune::new();
    let run_id = nt.start(&repo.path(), "codemod");
    let done = nt.wait_status(&run_id, "done", 60);
    assert_eq!(
        dropped(&nt, &run_id),
        vec![
            ("shapes/render.py".to_string(), "parse".to_string()),
            ("shapes/geometry.py".to_string(), "lint".to_string())
        ],
        "{:#?}",
        nt.events(&run_id)
    );
    let branch = done["branch"].as_str().unwrap();
    assert!(
        repo.read_at(branch, "shapes/util/helpers.py")
            .contains("TIMEOUT = 30"),
        "the clean edit went through"
    );
    assert!(
        !repo
            .read_at(branch, "shapes/geometry.py")
            .contains("import json")
    );
    assert!(!repo.read_at(branch, "shapes/render.py").contains("broken"));
}

/// The dropped edits of a run: (file, gate).
fn dropped(nt: &Noctune, run_id: &str) -> Vec<(String, String)> {
    nt.events(run_id)
        .iter()
        .filter(|e| e["type"] == "edit_dropped")
        .map(|e| {
            (
                e["payload"]["file"].as_str().unwrap().to_string(),
                e["payload"]["gate"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[test]
fn a_second_run_gets_the_gates_answers_from_the_memo_until_a_commit_changes_the_ruff_settings() {
    let repo = FixtureRepo::new("pyproj", &[("noctune.toml", CODEMOD)]);
    let nt = Noctune::new();
    // A `ruff` first on PATH that writes down each command line, then runs the real one.
    let bin = tempfile::tempdir().unwrap();
    let calls = bin.path().join("calls.log");
    let real = String::from_utf8(
        std::process::Command::new("sh")
            .args(["-c", "command -v ruff"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let wrapper = bin.path().join("ruff");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\nexec '{}' \"$@\"\n",
            calls.display(),
            real.trim()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let run = |nt: &Noctune| -> (String, Vec<String>) {
        let _ = std::fs::remove_file(&calls);
        let out = nt
            .cmd()
            .env("PATH", &path)
            .args(["run", "--repo", repo.path().to_str().unwrap()])
            .args(["--pack", "codemod", "--json"])
            .output()
            .unwrap();
        assert!(out.status.code().is_some(), "{out:?}");
        // `--json` streams the events, then the run's record on the last line.
        let stdout = String::from_utf8_lossy(&out.stdout);
        let last = stdout.lines().last().unwrap_or_default();
        let json: serde_json::Value =
            serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {stdout}"));
        let run_id = json["run_id"].as_str().unwrap().to_string();
        let lint_runs = std::fs::read_to_string(&calls)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with("check"))
            .map(str::to_string)
            .collect();
        (run_id, lint_runs)
    };
    let expected = vec![
        ("shapes/render.py".to_string(), "parse".to_string()),
        ("shapes/geometry.py".to_string(), "lint".to_string()),
    ];
    let (first, first_lints) = run(&nt);
    assert_eq!(dropped(&nt, &first), expected);
    assert_eq!(
        first_lints.len(),
        2,
        "the fixed files, then the pre-images with findings: {first_lints:?}"
    );
    let (second, second_lints) = run(&nt);
    assert_eq!(dropped(&nt, &second), expected, "the same answers");
    assert_eq!(
        second_lints,
        Vec::<String>::new(),
        "every answer came from the memo"
    );
    let branch = nt.status(&second)["branch"].as_str().unwrap().to_string();
    assert!(
        repo.read_at(&branch, "shapes/util/helpers.py")
            .contains("TIMEOUT = 30")
    );

    // A commit that changes what a file holds, and no path and no ruff setting: every answer
    // still holds (the memo is bound to the tree's layout, not to its every byte).
    let readme = repo.read("README.md") + "\nMore words.\n";
    std::fs::write(repo.path().join("README.md"), readme).unwrap();
    crate::support::repo::commit_all(&repo.repo(), "words");
    let (after_words, lints) = run(&nt);
    assert_eq!(dropped(&nt, &after_words), expected);
    assert_eq!(lints, Vec::<String>::new(), "the memo carries over");

    // A commit that changes the project's ruff rules: the memo of the old commit says nothing
    // about it, and ruff's new answer lets the unused import through.
    let pyproject = repo.read("pyproject.toml").replace(
        "select = [\"E4\", \"E7\", \"E9\", \"F\"]",
        "select = [\"E4\", \"E7\", \"E9\", \"F\"]\nignore = [\"F401\"]",
    );
    std::fs::write(repo.path().join("pyproject.toml"), pyproject).unwrap();
    crate::support::repo::commit_all(&repo.repo(), "ignore F401");
    let (third, third_lints) = run(&nt);
    assert_eq!(dropped(&nt, &third), expected[..1].to_vec());
    assert!(!third_lints.is_empty(), "ruff asked again");
    let branch = nt.status(&third)["branch"].as_str().unwrap().to_string();
    assert!(
        repo.read_at(&branch, "shapes/geometry.py")
            .starts_with("import json\n")
    );
}
