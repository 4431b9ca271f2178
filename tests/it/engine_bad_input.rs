//! Bad input gets a clear error, a non-zero exit, and changes nothing.

use crate::support::cli::Noctune;
use crate::support::repo::FixtureRepo;

fn runs_dir_entries(repo: &FixtureRepo) -> usize {
    std::fs::read_dir(repo.path().join(".noctune_cache/runs"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn unknown_pack_is_refused_and_creates_no_run() {
    let repo = FixtureRepo::new("pyproj", &[]);
    let nt = Noctune::new();
    let r = nt.run(&[
        "run",
        "--repo",
        repo.path().to_str().unwrap(),
        "--pack",
        "nope",
    ]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("unknown pack \"nope\"")
            && r.stderr.contains("lint_fix")
            && r.stderr.contains("pkg_lint"),
        "{}",
        r.stderr
    );
    assert_eq!(runs_dir_entries(&repo), 0);
    assert_eq!(
        nt.run(&["runs", "--json"]).ok().json(),
        serde_json::json!([])
    );
    assert!(repo.status().is_empty());
}

#[test]
fn unknown_or_malformed_run_ids_are_clear_errors() {
    let nt = Noctune::new();
    for args in [
        vec!["status", "20990101T000000Z-deadbeef"],
        vec!["events", "20990101T000000Z-deadbeef"],
        vec!["approvals", "20990101T000000Z-deadbeef"],
        vec!["stop", "20990101T000000Z-deadbeef"],
        vec!["resume", "20990101T000000Z-deadbeef"],
    ] {
        let r = nt.run(&args);
        assert_ne!(r.code, 0, "{args:?}");
        assert!(
            r.stderr.contains("unknown run 20990101T000000Z-deadbeef")
                && r.stderr.contains("noctune runs"),
            "{args:?}: {}",
            r.stderr
        );
    }
    let r = nt.run(&["status", "../../etc"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("invalid run id"), "{}", r.stderr);
}

#[test]
fn a_directory_that_is_not_a_git_repo_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.py"), "import os\n").unwrap();
    let nt = Noctune::new();
    let r = nt.run(&[
        "run",
        "--repo",
        dir.path().to_str().unwrap(),
        "--pack",
        "lint_fix",
    ]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("is not a git repository") && r.stderr.contains("git init"),
        "{}",
        r.stderr
    );
    assert!(
        !dir.path().join(".noctune_cache").exists(),
        "nothing written"
    );
    let r = nt.run(&[
        "run",
        "--repo",
        "/definitely/not/here",
        "--pack",
        "lint_fix",
    ]);
    assert!(
        r.code != 0 && r.stderr.contains("no such directory"),
        "{}",
        r.stderr
    );
}

#[test]
fn malformed_config_names_file_key_and_expectation() {
    let cases: [(&str, &str, &[&str]); 5] = [
        (
            "noctune.toml",
            "[policy_packs.x]\nallowed_globs = [\"**/*.py\"]\nmax_diff_lines = \"lots\"\n",
            &[
                "noctune.toml",
                "policy_packs.x.max_diff_lines",
                "an integer",
            ],
        ),
        (
            "noctune.toml",
            "[policy_packs.lint_fix]\nauto_approve = { max_risk = 101 }\n",
            &[
                "policy_packs.lint_fix.auto_approve.max_risk",
                "from 0 to 100",
            ],
        ),
        (
            "noctune.toml",
            "[policy_packs.lint_fix\nx = 1\n",
            &["noctune.toml", "not valid TOML"],
        ),
        (
            "noctune.toml",
            "[model_profiles.fast]\ntool_mode = \"magic\"\n",
            &[
                "model_profiles.fast.tool_mode",
                "\"auto\", \"native\" or \"prompt\"",
            ],
        ),
        (
            "noctune.toml",
            "[policy_packs.y]\nextends = \"lint_fix\"\ngroupng = \"single\"\n",
            &["policy_packs.y.groupng", "is not a known key", "grouping"],
        ),
    ];
    let nt = Noctune::new();
    for (file, text, needles) in cases {
        let repo = FixtureRepo::new("pyproj", &[(file, text)]);
        let r = nt.run(&["config", "check", "--repo", repo.path().to_str().unwrap()]);
        assert_ne!(r.code, 0, "{text}");
        for n in needles {
            assert!(r.stderr.contains(n), "missing {n:?} in: {}", r.stderr);
        }
        let r = nt.run(&[
            "run",
            "--repo",
            repo.path().to_str().unwrap(),
            "--pack",
            "lint_fix",
        ]);
        assert_ne!(r.code, 0);
        assert_eq!(
            runs_dir_entries(&repo),
            0,
            "no run created with a broken config"
        );
    }
    // pyproject keys are named with their full path.
    let bad_py = FixtureRepo::new("pyproj", &[]);
    let p = bad_py.path().join("pyproject.toml");
    let text = std::fs::read_to_string(&p)
        .unwrap()
        .replace("max_risk = 20", "max_risk = \"low\"");
    std::fs::write(&p, text).unwrap();
    let r = nt.run(&["config", "check", "--repo", bad_py.path().to_str().unwrap()]);
    assert!(
        r.stderr.contains("pyproject.toml")
            && r.stderr
                .contains("tool.noctune.policy_packs.pkg_lint.auto_approve.max_risk"),
        "{}",
        r.stderr
    );
}

#[test]
fn config_check_prints_the_effective_packs_and_profiles() {
    let repo = FixtureRepo::new("pyproj", &[]);
    let nt = Noctune::new();
    let r = nt
        .run(&["config", "check", "--repo", repo.path().to_str().unwrap()])
        .ok();
    for n in [
        "lint_fix",
        "typing_pass",
        "py_upgrade",
        "deps_bump",
        "pkg_lint",
        "pyproject.toml",
        "http://127.0.0.1:8080/v1",
    ] {
        assert!(r.stdout.contains(n), "missing {n}: {}", r.stdout);
    }
    let j = nt
        .cmd()
        .args([
            "config",
            "check",
            "--repo",
            repo.path().to_str().unwrap(),
            "--json",
        ])
        .env("NOCTUNE_STUDIO_LLM_BASE_URL", "http://127.0.0.1:9999/v1")
        .env("NOCTUNE_STUDIO_LLM_MODEL", "tiny")
        .output()
        .unwrap();
    let j: serde_json::Value = serde_json::from_slice(&j.stdout).unwrap();
    assert_eq!(
        j["policy_packs"]["pkg_lint"]["allowed_globs"],
        serde_json::json!(["shapes/**/*.py"])
    );
    assert_eq!(
        j["policy_packs"]["pkg_lint"]["auto_approve"]["max_risk"],
        20
    );
    assert_eq!(
        j["model_profiles"]["default"]["base_url"],
        "http://127.0.0.1:9999/v1"
    );
    assert_eq!(j["model_profiles"]["default"]["model"], "tiny");
}

#[test]
fn deciding_unknown_or_already_decided_approvals_fails_and_changes_nothing() {
    let repo = FixtureRepo::new("pyproj", &[]);
    let nt = Noctune::new();
    let run_id = nt.start(&repo.path(), "lint_fix");
    nt.wait_status(&run_id, "waiting_approval", 60);
    let r = nt.decide(&run_id, "0123456789abcdef01234567", "approve", "");
    assert_ne!(r.code, 0);
    assert!(
        r.stderr
            .contains("has no approval 0123456789abcdef01234567"),
        "{}",
        r.stderr
    );
    let r = nt.decide(&run_id, "not-hex", "approve", "");
    assert!(
        r.code != 0 && r.stderr.contains("invalid approval id"),
        "{}",
        r.stderr
    );

    let approvals = nt.approvals(&run_id);
    let auto = approvals
        .iter()
        .find(|a| a["status"] == "auto_approved")
        .unwrap();
    let r = nt.decide(&run_id, auto["approval_id"].as_str().unwrap(), "reject", "");
    assert!(
        r.code != 0 && r.stderr.contains("auto-approved"),
        "{}",
        r.stderr
    );

    let pending = approvals.iter().find(|a| a["status"] == "pending").unwrap();
    let id = pending["approval_id"].as_str().unwrap();
    nt.decide(&run_id, id, "reject", "too big").ok();
    let decision_file = repo.path().join(format!(
        ".noctune_cache/runs/{run_id}/state/approvals/{id}.decision.json"
    ));
    let before = std::fs::read(&decision_file).unwrap();
    let r = nt.decide(&run_id, id, "approve", "changed my mind");
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("already decided: reject by cli:tester"),
        "{}",
        r.stderr
    );
    assert_eq!(std::fs::read(&decision_file).unwrap(), before);
    nt.wait_status(&run_id, "done", 60);
    let after = nt.approvals(&run_id);
    assert_eq!(
        after.iter().find(|a| a["approval_id"] == id).unwrap()["status"],
        "rejected"
    );
}
