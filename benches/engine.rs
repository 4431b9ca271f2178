//! Engine overhead benchmark (`cargo bench --bench engine`).
//!
//! Generates a 5,000-file Python repository (50 packages x 100 modules of ~120 lines; one module
//! in ten has a fixable lint problem and sloppy formatting), runs the `command` proposer pack
//! through the real `noctune` binary to `done`, and splits the wall time into the fixer tools'
//! own time (from the run's `tool_finished` events) and everything else (the engine's
//! overhead: worker start, worktree, diff harvest, gates, policy, approvals, patchsets,
//! commits, event log and audit DB). Baseline measured in the same run: the same fixer commands
//! run directly on a plain copy of the repository.
//!
//! Target: overhead / tool time <= 0.2.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const PACKAGES: usize = 50;
const MODULES: usize = 100;

fn generate(root: &Path) {
    for d in 0..PACKAGES {
        let dir = root.join(format!("pkg{d:02}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("__init__.py"), "").unwrap();
        for m in 0..MODULES {
            let i = d * MODULES + m;
            let sloppy = i % 10 == 0;
            let mut src = String::new();
            if sloppy {
                src.push_str("import os\n");
            }
            src.push_str("import math\nfrom typing import Iterable\n\n\n");
            for k in 0..12 {
                if sloppy && k == 0 {
                    src.push_str(&format!("def f{k}_{i}(values,scale = 2):\n    total=0\n"));
                } else {
                    src.push_str(&format!("def f{k}_{i}(values, scale=2):\n    total = 0\n"));
                }
                src.push_str(&format!(
                    "    for v in values:\n        if v > {k}:\n            total += math.sqrt(v) * scale\n        else:\n            total -= v\n    return total\n\n\nclass C{k}_{i}:\n    def run(self, xs: Iterable[float]) -> float:\n        return f{k}_{i}(list(xs))\n\n\n"
                ));
            }
            std::fs::write(
                dir.join(format!("m{m:03}.py")),
                src.trim_end().to_string() + "\n",
            )
            .unwrap();
        }
    }
    // A project's own lint selection, as real projects have (ruff's defaults change between
    // releases; this keeps the amount of work stable).
    std::fs::write(root.join("pyproject.toml"), "[project]\nname = \"bench\"\nversion = \"0\"\n\n[tool.ruff.lint]\nselect = [\"E4\", \"E7\", \"E9\", \"F\"]\n").unwrap();
    let repo = git2::Repository::init_opts(
        root,
        git2::RepositoryInitOptions::new().initial_head("main"),
    )
    .unwrap();
    let mut idx = repo.index().unwrap();
    idx.add_all(["*"].iter(), git2::IndexAddOption::DEFAULT, None)
        .unwrap();
    idx.write().unwrap();
    let tree = repo.find_tree(idx.write_tree().unwrap()).unwrap();
    let sig = git2::Signature::now("Bench", "bench@example.com").unwrap();
    repo.commit(Some("HEAD"), &sig, &sig, "generated", &tree, &[])
        .unwrap();
    std::fs::write(
        root.join("noctune.toml"),
        "[policy_packs.bench]\nextends = \"lint_fix\"\nchecks = []\nauto_approve = { enabled = true, max_risk = 100, max_lines = 1000 }\n",
    )
    .unwrap();
}

fn copy_tree(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let name = e.file_name();
        if name == ".git" || name == ".noctune_cache" {
            continue;
        }
        let t = to.join(&name);
        if e.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&t).unwrap();
            copy_tree(&e.path(), &t);
        } else {
            std::fs::copy(e.path(), &t).unwrap();
        }
    }
}

/// Flushes pending writes so one measurement does not pay for the previous one's write-back.
fn settle() {
    let _ = Command::new("sync").status();
    std::thread::sleep(std::time::Duration::from_millis(500));
}

fn direct_tools(dir: &Path) -> f64 {
    settle();
    let t = Instant::now();
    for argv in [
        vec![
            "ruff",
            "check",
            "--fix",
            "--exit-zero",
            "--no-cache",
            "--quiet",
            ".",
        ],
        vec!["ruff", "format", "--no-cache", "--quiet", "."],
    ] {
        let s = Command::new(argv[0])
            .args(&argv[1..])
            .current_dir(dir)
            .status()
            .expect("ruff on PATH (pip install ruff)");
        assert!(s.success());
    }
    t.elapsed().as_secs_f64()
}

struct Measured {
    wall: f64,
    tools: f64,
    /// From the worker's start to the end of proposing (worktree, fixers, harvest, gates,
    /// policy, approval records): the part that scales with the repository.
    propose: f64,
    changed: usize,
    commits: usize,
}

fn ts(v: &serde_json::Value) -> f64 {
    let s = v["ts"].as_str().unwrap_or("");
    noctune_util::time::parse_rfc3339_millis(s).unwrap_or(0) as f64 / 1000.0
}

fn engine_run(bin: &Path, repo: &Path, db: &Path) -> Measured {
    settle();
    let t = Instant::now();
    let out = Command::new(bin)
        .args([
            "run",
            "--repo",
            repo.to_str().unwrap(),
            "--pack",
            "bench",
            "--json",
        ])
        .env("NOCTUNE_STUDIO_DB", db)
        .output()
        .unwrap();
    let wall = t.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "run failed: {}\n{}",
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    let mut tools = 0.0;
    let (mut changed, mut commits) = (0, 0);
    let (mut started, mut proposed) = (None, None);
    for line in stdout.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if v["type"] == "run_started" {
            started = Some(ts(&v));
        }
        if v["type"] == "stage" && v["payload"]["stage"] == "approvals" && proposed.is_none() {
            proposed = Some(ts(&v));
        }
        match v["type"].as_str() {
            Some("tool_finished") => {
                tools += v["payload"]["elapsed_ms"].as_f64().unwrap_or(0.0) / 1000.0
            }
            Some("auto_approved") => changed += 1,
            Some("patchset_committed") => commits += 1,
            _ => {}
        }
    }
    let propose = proposed.unwrap_or(0.0) - started.unwrap_or(0.0);
    Measured {
        wall,
        tools,
        propose,
        changed,
        commits,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_noctune"));
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    println!("generating {} files ...", PACKAGES * (MODULES + 1));
    generate(&repo);
    let rounds = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let mut direct = Vec::new();
    let mut runs = Vec::new();
    for r in 0..rounds {
        let copy = work.path().join(format!("copy{r}"));
        std::fs::create_dir_all(&copy).unwrap();
        copy_tree(&repo, &copy);
        direct.push(direct_tools(&copy));
        runs.push(engine_run(&bin, &repo, &work.path().join("audit.sqlite")));
    }
    let m = &runs[runs.len() - 1];
    let wall = median(runs.iter().map(|r| r.wall).collect());
    let tools = median(runs.iter().map(|r| r.tools).collect());
    let overhead = median(runs.iter().map(|r| r.wall - r.tools).collect());
    let direct = median(direct);
    let ratio = overhead / tools;
    let propose = median(runs.iter().map(|r| r.propose).collect());
    let propose_ratio = (propose - tools) / tools;
    println!(
        "\nengine overhead on a {}-file repository, command proposer (ruff check --fix + ruff format), median of {rounds}",
        PACKAGES * (MODULES + 1)
    );
    println!(
        "  files changed and committed:      {} in {} commits",
        m.changed, m.commits
    );
    println!("  baseline, tools run directly:     {direct:8.3} s");
    println!(
        "  tools inside the run:             {tools:8.3} s  ({:.2}x the direct run)",
        tools / direct
    );
    println!("  whole run, `noctune run` to done: {wall:8.3} s");
    println!("  engine overhead (run - tools):    {overhead:8.3} s");
    println!(
        "  overhead / tool time, whole run:  {ratio:8.3}   target <= 0.2: {}",
        if ratio <= 0.2 { "PASS" } else { "MISS" }
    );
    println!(
        "  proposal phase (worker start to approvals): {propose:8.3} s, of which outside the tools {:.3} s",
        propose - tools
    );
    println!(
        "  overhead / tool time, proposal phase:       {propose_ratio:8.3}   target <= 0.2: {}",
        if propose_ratio <= 0.2 { "PASS" } else { "MISS" }
    );
}
