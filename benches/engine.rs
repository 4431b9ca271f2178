//! Engine overhead benchmark (`cargo bench --bench engine`).
//!
//! Two cases, chosen with `BENCH_CASE` (`generated`, the default; `django`; `all` for both):
//!
//! - `generated`: a 5,000-file Python repository (50 packages x 100 modules of ~120 lines; one
//!   module in ten has a fixable lint problem and sloppy formatting).
//! - `django`: Django 5.1.4's sdist from PyPI (2,788 `.py` files in 6,800), downloaded once with
//!   `pip download` into `~/.cache/noctune-bench` (`NOCTUNE_BENCH_CACHE` to choose), extracted
//!   and committed to a fresh repository for each benchmark run.
//!
//! Each round runs the fixers directly on a plain copy of the tree (`ruff check --fix .`, then
//! `ruff format .`, as a user would) and then a whole `lint_fix` run with checks off through
//! the real `noctune` binary to `done`, back to back; the figures are medians of
//! `BENCH_ROUNDS` (default 3) rounds. A run that asks for decisions (an edit the cross-file
//! gate keeps from auto-approval) gets them all approved by `noctune decide --all-pending`
//! as soon as it waits; that wait is a person's time, not the engine's, and is left out of the
//! run's time (it is printed).
//!
//! Printed: the whole run against the direct fixers (target <= 1.5x), the run's time outside
//! its tools against the tools' own time (from the `tool_finished` events), and where the
//! run's own time went, by step, from the event timestamps (`BENCH_PROFILE=1` adds the longest
//! gaps between two events). `NOCTUNE_BENCH_BIN` measures another build of `noctune`;
//! `BENCH_KEEP=1` keeps the repository and its runs (with `NOCTUNE_LOG=debug`, each run's
//! `worker.log` has the time of every step of its harvest). Round 1 checks out a new worktree
//! and finds the gate memo empty (the first run on a commit); the later rounds recycle the
//! previous run's worktree and get the gates' answers from the memo, as a user's second run on
//! the same commit does. `BENCH_COLD_MEMO=1` empties the memo before every round, for the
//! first run on a commit with a recycled worktree. The summary gives both medians.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

const PACKAGES: usize = 50;
const MODULES: usize = 100;
const DJANGO: &str = "Django-5.1.4";

fn commit_all(root: &Path) {
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
    repo.commit(Some("HEAD"), &sig, &sig, "initial", &tree, &[])
        .unwrap();
}

/// The pack both cases run: `lint_fix` with its checks off, auto-approving what policy lets
/// through. Written after the commit (an untracked file, as a user's own config may be).
const BENCH_PACK: &str = "[policy_packs.bench]\nextends = \"lint_fix\"\nchecks = []\nauto_approve = { enabled = true, max_risk = 100, max_lines = 1000 }\n";

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
    commit_all(root);
    std::fs::write(root.join("noctune.toml"), BENCH_PACK).unwrap();
}

fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("NOCTUNE_BENCH_CACHE") {
        return PathBuf::from(d);
    }
    let home = std::env::var_os("HOME").expect("HOME (or NOCTUNE_BENCH_CACHE) is set");
    PathBuf::from(home).join(".cache").join("noctune-bench")
}

/// Django's sdist, downloaded from PyPI the first time (pip's own client, no binary).
fn django_sdist() -> PathBuf {
    let cache = cache_dir();
    let sdist = cache.join(format!("{DJANGO}.tar.gz"));
    if !sdist.is_file() {
        std::fs::create_dir_all(&cache).unwrap();
        println!(
            "downloading Django 5.1.4's sdist into {} ...",
            cache.display()
        );
        let s = Command::new("python3")
            .args(["-m", "pip", "download", "--no-deps", "--no-binary", ":all:"])
            .arg("django==5.1.4")
            .arg("-d")
            .arg(&cache)
            .status()
            .expect("python3 -m pip");
        assert!(
            s.success() && sdist.is_file(),
            "pip download django==5.1.4 failed"
        );
    }
    sdist
}

fn django(root: &Path) {
    let sdist = django_sdist();
    let parent = root.parent().unwrap();
    let s = Command::new("tar")
        .args(["--no-same-owner", "-xzf"])
        .arg(&sdist)
        .arg("-C")
        .arg(parent)
        .status()
        .expect("tar");
    assert!(s.success(), "extracting {}", sdist.display());
    std::fs::rename(parent.join(DJANGO), root).unwrap();
    commit_all(root);
    std::fs::write(root.join("noctune.toml"), BENCH_PACK).unwrap();
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

/// The fixers of `lint_fix`, run directly on `dir` as a user would. ruff format exits 2 when
/// a file does not parse (Django has one on purpose) after formatting the others.
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
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("ruff on PATH (pip install ruff)");
        assert!(matches!(s.code(), Some(0 | 2)), "{argv:?}: {s}");
    }
    t.elapsed().as_secs_f64()
}

struct Measured {
    /// `noctune run` from spawn to exit, less the time it waited for decisions.
    wall: f64,
    /// The time it waited for decisions (`noctune decide --all-pending`, polling included).
    waited: f64,
    tools: f64,
    /// From the worker's start to the end of proposing (worktree, fixers, harvest, gates,
    /// policy, approval records): the part that scales with the repository.
    propose: f64,
    changed: usize,
    decided: usize,
    commits: usize,
    /// Where the run's time went: (step, seconds).
    steps: Vec<(&'static str, f64)>,
    /// The longest gaps between two consecutive events: (seconds, from, to).
    gaps: Vec<(f64, String, String)>,
}

fn ts(v: &serde_json::Value) -> f64 {
    let s = v["ts"].as_str().unwrap_or("");
    noctune_util::time::parse_rfc3339_millis(s).unwrap_or(0) as f64 / 1000.0
}

fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The run directory that appeared in `runs` since `before` was listed.
fn new_run_id(repo: &Path, before: &[String]) -> Option<String> {
    runs(repo).into_iter().find(|r| !before.contains(r))
}

fn runs(repo: &Path) -> Vec<String> {
    std::fs::read_dir(repo.join(".noctune_cache/runs"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn engine_run(bin: &Path, repo: &Path, db: &Path) -> Measured {
    settle();
    let before = runs(repo);
    let spawned = now_secs();
    let t = Instant::now();
    let mut child = Command::new(bin)
        .args([
            "run",
            "--repo",
            repo.to_str().unwrap(),
            "--pack",
            "bench",
            "--json",
        ])
        .env("NOCTUNE_STUDIO_DB", db)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut events = Vec::new();
    let mut waited = 0.0;
    let mut lines = Vec::new();
    for line in stdout.lines() {
        let Ok(line) = line else { break };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
            lines.push(line);
            continue;
        };
        if v["type"] == "status_changed" && v["payload"]["status"] == "waiting_approval" {
            let w = Instant::now();
            let id = new_run_id(repo, &before).expect("the run's folder");
            let out = Command::new(bin)
                .args([
                    "decide",
                    &id,
                    "--all-pending",
                    "approve",
                    "--reason",
                    "bench",
                ])
                .env("NOCTUNE_STUDIO_DB", db)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "decide --all-pending: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            waited += w.elapsed().as_secs_f64();
        }
        if v.get("type").is_some() && v.get("payload").is_some() {
            events.push(v);
        } else {
            lines.push(line);
        }
    }
    let status = child.wait().unwrap();
    let exited = t.elapsed().as_secs_f64();
    let mut stderr = String::new();
    use std::io::Read;
    let _ = child.stderr.take().unwrap().read_to_string(&mut stderr);
    assert!(
        status.code() == Some(0),
        "run failed ({status}): {}\n{stderr}",
        lines.join("\n")
    );
    // The time between the run's waiting_approval and its next event is the decision's (the
    // bench's `decide` and the worker's poll), not the engine's work.
    let mut wait_span = 0.0;
    for w in events.windows(2) {
        if w[0]["type"] == "status_changed" && w[0]["payload"]["status"] == "waiting_approval" {
            wait_span += ts(&w[1]) - ts(&w[0]);
        }
    }
    let waited = waited.max(wait_span);
    let first = |kind: &str, stage: Option<&str>| {
        events
            .iter()
            .find(|v| v["type"] == kind && stage.is_none_or(|s| v["payload"]["stage"] == s))
            .map(ts)
    };
    let mut tools = 0.0;
    let (mut changed, mut decided, mut commits) = (0, 0, 0);
    for v in &events {
        match v["type"].as_str() {
            Some("tool_finished") => {
                tools += v["payload"]["elapsed_ms"].as_f64().unwrap_or(0.0) / 1000.0
            }
            Some("auto_approved") => changed += 1,
            Some("approval_decided") => decided += 1,
            Some("patchset_committed") => commits += 1,
            _ => {}
        }
    }
    let started = first("run_started", None).unwrap_or(spawned);
    let ready = first("worktree_ready", None).unwrap_or(started);
    let approvals = first("stage", Some("approvals")).unwrap_or(ready);
    let patchsets = first("stage", Some("patchsets")).unwrap_or(approvals);
    let done = first("run_done", None).unwrap_or(patchsets);
    let end = spawned + exited;
    let steps = vec![
        (
            "start: spawn to the worker's run_started",
            started - spawned,
        ),
        (
            "worktree (new or recycled) and clean check",
            ready - started,
        ),
        ("fixers, the tools' own time", tools),
        (
            "proposing outside the tools (harvest, gates, policy, records)",
            approvals - ready - tools,
        ),
        (
            "approvals stage (decision wait excluded)",
            patchsets - approvals - waited,
        ),
        ("patchsets: apply, import check, commit", done - patchsets),
        ("closing: summary, branch release, exit", end - done),
    ];
    let mut gaps: Vec<(f64, String, String)> = events
        .windows(2)
        .map(|w| {
            let label = |v: &serde_json::Value| {
                let stage = v["payload"]["stage"]
                    .as_str()
                    .or(v["payload"]["tool"].as_str());
                match stage {
                    Some(s) => format!("{}({s})", v["type"].as_str().unwrap_or("")),
                    None => v["type"].as_str().unwrap_or("").to_string(),
                }
            };
            (ts(&w[1]) - ts(&w[0]), label(&w[0]), label(&w[1]))
        })
        .collect();
    gaps.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap());
    gaps.truncate(12);
    Measured {
        wall: exited - waited,
        waited,
        tools,
        propose: approvals - started,
        changed,
        decided,
        commits,
        steps,
        gaps,
    }
}

/// CPU time the whole machine has been busy (user, system, irq, steal; `/proc/stat`, in
/// seconds). The run's worker is not a child this process waits for (it outlives `noctune
/// run` when detached), so its CPU is not in this process's rusage; on an otherwise idle
/// machine the machine's busy time over a measurement is what it cost.
fn busy_cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(cpu) = stat.lines().next() else {
        return 0.0;
    };
    let f: Vec<f64> = cpu
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    let busy: f64 = [0, 1, 2, 5, 6, 7].iter().filter_map(|i| f.get(*i)).sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    busy / hz
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn bench(name: &str, describe: &str, make: fn(&Path)) {
    // NOCTUNE_BENCH_BIN: another build of `noctune` to measure (an older one, for a before/after).
    let bin = std::env::var_os("NOCTUNE_BENCH_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_noctune")));
    let base = std::env::var_os("NOCTUNE_BENCH_DIR").map(PathBuf::from);
    let work = match &base {
        Some(b) => tempfile::tempdir_in(b),
        None => tempfile::tempdir(),
    }
    .unwrap();
    let repo = work.path().join("repo");
    println!("\n[{name}] preparing {describe} ...");
    make(&repo);
    let rounds = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3usize)
        .max(1);
    let mut direct = Vec::new();
    let mut runs = Vec::new();
    let mut cpu = Vec::new();
    for r in 0..rounds {
        let copy = work.path().join(format!("copy{r}"));
        std::fs::create_dir_all(&copy).unwrap();
        copy_tree(&repo, &copy);
        // Each side's CPU includes writing back what it wrote (the `sync` after it), and not
        // what the copy before it left to write back (the `settle` before it).
        settle();
        let c0 = busy_cpu();
        let d = direct_tools(&copy);
        let _ = Command::new("sync").status();
        let c1 = busy_cpu();
        if std::env::var_os("BENCH_COLD_MEMO").is_some() {
            // The gate memo lives beside the audit DB.
            let _ = std::fs::remove_dir_all(work.path().join("gate-memo"));
        }
        let m = engine_run(&bin, &repo, &work.path().join("audit.sqlite"));
        let _ = Command::new("sync").status();
        let c2 = busy_cpu();
        let (dc, rc) = (c1 - c0, c2 - c1);
        println!(
            "  round {}: fixers directly {d:.3} s, whole run {:.3} s ({:.2}x; tools inside {:.3} s, waited for decisions {:.3} s); CPU {dc:.2} s vs {rc:.2} s ({:.2}x)",
            r + 1,
            m.wall,
            m.wall / d,
            m.tools,
            m.waited,
            rc / dc
        );
        cpu.push((dc, rc));
        direct.push(d);
        runs.push(m);
        let _ = std::fs::remove_dir_all(&copy);
    }
    let m = &runs[runs.len() / 2];
    let wall = median(runs.iter().map(|r| r.wall).collect());
    let tools = median(runs.iter().map(|r| r.tools).collect());
    let overhead = median(runs.iter().map(|r| r.wall - r.tools).collect());
    let direct_rounds = direct.clone();
    let direct = median(direct);
    let vs_direct = wall / direct;
    let propose = median(runs.iter().map(|r| r.propose).collect());
    println!("\n[{name}] lint_fix with checks off on {describe}, median of {rounds}");
    println!(
        "  files changed: {} auto-approved, {} decided; {} commits",
        m.changed, m.decided, m.commits
    );
    println!("  fixers run directly (ruff check --fix, ruff format): {direct:8.3} s");
    println!(
        "  tools inside the run:             {tools:8.3} s  ({:.2}x the direct run)",
        tools / direct
    );
    println!("  whole run, `noctune run` to done: {wall:8.3} s");
    let (dc, rc) = (
        median(cpu.iter().map(|c| c.0).collect()),
        median(cpu.iter().map(|c| c.1).collect()),
    );
    println!(
        "  CPU time the machine was busy (/proc/stat): fixers directly {dc:.2} s, whole run {rc:.2} s ({:.2}x) on {} cores",
        rc / dc,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "  whole run / fixers directly:      {vs_direct:8.2}x  target <= 1.5x: {}",
        if vs_direct <= 1.5 { "PASS" } else { "MISS" }
    );
    let ratios: Vec<f64> = runs
        .iter()
        .zip(&direct_rounds)
        .map(|(r, d)| r.wall / d)
        .collect();
    if ratios.len() > 1 {
        let later = if std::env::var_os("BENCH_COLD_MEMO").is_some() {
            "recycled worktree, gate memo emptied"
        } else {
            "recycled worktree, gate memo from the run before"
        };
        println!(
            "    round 1 (new worktree, empty gate memo): {:.2}x; later rounds ({later}), median: {:.2}x",
            ratios[0],
            median(ratios[1..].to_vec())
        );
    }
    println!(
        "  engine's own time (run - tools):  {overhead:8.3} s  ({:.2}x the tools' time)",
        overhead / tools
    );
    println!(
        "  proposal phase (worker start to approvals): {propose:8.3} s, of which outside the tools {:.3} s",
        propose - tools
    );
    println!("  where the time went (median run):");
    for (step, secs) in &m.steps {
        println!("    {secs:8.3} s  {step}");
    }
    if std::env::var_os("BENCH_PROFILE").is_some() {
        println!("  longest gaps between two events (median run):");
        for (secs, from, to) in &m.gaps {
            println!("    {secs:8.3} s  {from} -> {to}");
        }
    }
    if std::env::var_os("BENCH_KEEP").is_some() {
        // For a look at the runs' own records (worker.log with NOCTUNE_LOG=debug) afterwards.
        let kept = work.keep();
        println!("  kept the repository and its runs in {}", kept.display());
    }
}

fn main() {
    let case = std::env::var("BENCH_CASE").unwrap_or_else(|_| "generated".into());
    let (generated, django_case) = match case.as_str() {
        "generated" => (true, false),
        "django" => (false, true),
        "all" => (true, true),
        other => panic!("BENCH_CASE={other}: generated, django or all"),
    };
    if generated {
        bench(
            "generated",
            &format!("a generated {}-file repository", PACKAGES * (MODULES + 1)),
            generate,
        );
    }
    if django_case {
        bench("django", "Django 5.1.4's sdist (2,788 .py files)", django);
    } else {
        println!(
            "\n(BENCH_CASE=django or BENCH_CASE=all adds the same measurement on Django 5.1.4's sdist)"
        );
    }
}
