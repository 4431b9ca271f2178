//! Chat benchmarks (`cargo bench --bench chat`), issue 3's "Benchmarks" section. `main` calls
//! one function per measurement; add new sections as new functions.
//!
//! - `bench_search`: the `search` tool (through the `Tool` trait, as the turn loop calls it) vs
//!   the `rg` command on the same generated 100k-file tree and the same patterns, measured in
//!   the same run. Target: median ≤ 1.5x rg's.
//! - `bench_permission_check`: sandbox `resolve` + `PermissionGate::check` per tool call, on
//!   realistic paths. Target: p99 ≤ 1 ms.
//! - `bench_protocol_tokens` (issue 12): prompt tokens the tool list costs per tool mode —
//!   `prompt` (the protocol text of `prompt_tools::protocol_prompt`) and `native` (the `tools`
//!   as the chat template renders them) — for the file tools and for Studio's file + run tools,
//!   against a 2k-context profile. Target: ≤ 400 tokens of tool list. Counted by llama-server's
//!   own `/apply-template` + `/tokenize` when `NOCTUNE_LLAMA_URL` / `NOCTUNE_LLAMA_SMOL_URL`
//!   is set (the difference between the prompt with and without the tool list), else by the
//!   calibrated estimate of `context.rs`; each line says which.

use noctune_chat::context;
use noctune_chat::permissions::{Check, PermissionAnswer, PermissionGate};
use noctune_chat::prompt_tools;
use noctune_chat::service::default_tools;
use noctune_chat::tool::{Tool, ToolClass, ToolContext};
use noctune_chat::tools::runs::{RunControl, run_tools};
use noctune_chat::tools::search::Search;
use noctune_core::{
    ApprovalDecision, ApprovalView, Decision, Event, OpError, RunRecord, StartRequest,
};
use noctune_llm::{ChatMessage, LlmClient, LlmEndpoint, ToolSpec};
use noctune_sandbox::{Intent, Sandbox};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn main() {
    bench_search();
    bench_permission_check();
    bench_protocol_tokens();
}

fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "MISS" }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

// ---------------------------------------------------------------------------------------------
// search vs rg

const TREE_DIRS: usize = 100;
const TREE_SUBDIRS: usize = 10;
const TREE_FILES: usize = 100;
const ROUNDS: usize = 7;

/// A tiny deterministic generator, so every run searches the same tree.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

const WORDS: [&str; 16] = [
    "let", "value", "return", "config", "handler", "request", "buffer", "index", "result", "match",
    "struct", "self", "option", "string", "vector", "error",
];

/// 100 x 10 x 100 = 100,000 small files (~15 lines each); one file in 200 has a
/// `needle_token_NNN` line. Generated once and kept under ~/.cache (a marker file says it is
/// complete), since writing 100k files costs more than the benchmark itself.
fn search_tree() -> PathBuf {
    let base = std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".cache"))
        .unwrap_or_else(std::env::temp_dir)
        .join("noctune-bench/chat-search-100k-v1");
    let marker = base.join(".complete");
    if marker.exists() {
        return base;
    }
    println!(
        "generating the 100k-file tree in {} (once)...",
        base.display()
    );
    let t = Instant::now();
    let _ = std::fs::remove_dir_all(&base);
    let mut rng = Lcg(42);
    let mut n = 0usize;
    for d in 0..TREE_DIRS {
        for s in 0..TREE_SUBDIRS {
            let dir = base.join(format!("mod{d:03}/sub{s:02}"));
            std::fs::create_dir_all(&dir).unwrap();
            for f in 0..TREE_FILES {
                let mut text = String::with_capacity(700);
                for line in 0..15 {
                    if line == 7 && n.is_multiple_of(200) {
                        text.push_str(&format!(
                            "    let x = needle_token_{:03}(y);\n",
                            (n / 200) % 1000
                        ));
                        continue;
                    }
                    for _ in 0..6 {
                        text.push_str(WORDS[(rng.next() % 16) as usize]);
                        text.push(' ');
                    }
                    text.push('\n');
                }
                std::fs::write(dir.join(format!("f{f:03}.rs")), text).unwrap();
                n += 1;
            }
        }
    }
    std::fs::write(&marker, format!("{n} files\n")).unwrap();
    println!("  {n} files in {:.1} s", t.elapsed().as_secs_f64());
    base
}

fn rg_available() -> bool {
    Command::new("rg")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// `rg` as a user runs it, its output captured through a pipe (pointing it at /dev/null would
/// let rg stop at the first match).
fn time_rg(tree: &Path, pattern: &str, fixed: bool) -> (Duration, usize) {
    let mut cmd = Command::new("rg");
    cmd.args(["-n", "--no-heading", "--color", "never"]);
    if fixed {
        cmd.arg("-F");
    }
    cmd.arg("-e").arg(pattern).arg(".").current_dir(tree);
    let t = Instant::now();
    let out = cmd.output().expect("run rg");
    let el = t.elapsed();
    let lines = out.stdout.iter().filter(|b| **b == b'\n').count();
    (el, lines)
}

fn time_tool(ctx: &ToolContext, pattern: &str, fixed: bool) -> (Duration, usize) {
    let args = json!({"pattern": pattern, "literal": fixed, "max_results": 1000});
    let t = Instant::now();
    let out = Search.call(ctx, &args).expect("search tool");
    let el = t.elapsed();
    (el, out["count"].as_u64().unwrap_or(0) as usize)
}

fn bench_search() {
    println!("== search: the `search` tool vs the rg command (100k files) ==");
    if !rg_available() {
        println!(
            "MISS search: `rg` not found; install it (`apt-get install -y ripgrep`) and rerun"
        );
        return;
    }
    let tree = search_tree();
    let root = std::fs::canonicalize(&tree).unwrap();
    let ctx = ToolContext {
        repo_root: root.clone(),
        sandbox: Arc::new(Sandbox::new(vec![root.clone()]).unwrap()),
        session_id: "bench".into(),
        edit_sink: None,
        overlay: None,
        read_stamps: Default::default(),
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "tree {} ({threads} CPUs), {ROUNDS} rounds each after a warm-up",
        root.display()
    );
    let mut all_ok = true;
    for (pattern, fixed) in [("needle_token", true), (r"needle_token_\d{2}7\(", false)] {
        // Warm the page cache for both, then alternate so drift hits both alike.
        let (_, rg_lines) = time_rg(&root, pattern, fixed);
        let (_, ours_lines) = time_tool(&ctx, pattern, fixed);
        assert_eq!(rg_lines, ours_lines, "same matches for {pattern:?}");
        let (mut rg, mut ours) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            rg.push(time_rg(&root, pattern, fixed).0);
            ours.push(time_tool(&ctx, pattern, fixed).0);
        }
        let (rg_m, ours_m) = (median(rg), median(ours));
        let ratio = ours_m.as_secs_f64() / rg_m.as_secs_f64();
        let ok = ratio <= 1.5;
        all_ok &= ok;
        println!(
            "{} search {:<28} {} matches: ours median {:7.1} ms, rg median {:7.1} ms, ratio {ratio:.2}x (target <= 1.5x)",
            verdict(ok),
            format!("{pattern:?}{}", if fixed { " (literal)" } else { "" }),
            ours_lines,
            ms(ours_m),
            ms(rg_m),
        );
    }
    println!("{} search overall", verdict(all_ok));
}

// ---------------------------------------------------------------------------------------------
// sandbox + permission check

const CHECKS: usize = 100_000;

fn bench_permission_check() {
    println!("== permission + sandbox check per tool call ({CHECKS} iterations) ==");
    let dir = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(dir.path()).unwrap().join("repo");
    for p in 0..10 {
        let pkg = root.join(format!("src/pkg{p}/sub"));
        std::fs::create_dir_all(&pkg).unwrap();
        for m in 0..10 {
            std::fs::write(pkg.join(format!("mod{m}.py")), "x = 1\n").unwrap();
        }
    }
    std::fs::create_dir_all(root.join(".git")).unwrap();
    std::fs::write(root.join(".git/config"), "").unwrap();
    std::fs::create_dir_all(root.join(".noctune_cache")).unwrap();
    std::fs::write(root.join("README.md"), "hi\n").unwrap();
    std::fs::write(root.join(".env"), "A=1\n").unwrap();
    let db = dir.path().join("audit.sqlite");
    let sandbox = Sandbox::new(vec![root.clone()]).unwrap();
    let gate = PermissionGate::new(&root, Some(&db)).unwrap();
    // A session grant for writes and an always grant for runs, as in a working session.
    if let Check::Ask(req) = gate.check("s1", "writeFile", ToolClass::Write, Some("src/a.py")) {
        gate.answer(&req, PermissionAnswer::Session, "bench")
            .unwrap();
    }
    if let Check::Ask(req) = gate.check("s1", "noctuneStart", ToolClass::Run, None) {
        gate.answer(&req, PermissionAnswer::Always, "bench")
            .unwrap();
    }

    let cases: Vec<(&str, ToolClass, Intent, String)> = (0..10)
        .flat_map(|p| {
            vec![
                (
                    "readFile",
                    ToolClass::Read,
                    Intent::Read,
                    format!("src/pkg{p}/sub/mod{p}.py"),
                ),
                (
                    "replaceLines",
                    ToolClass::Write,
                    Intent::Write,
                    format!("src/pkg{p}/sub/mod{}.py", 9 - p),
                ),
                (
                    "writeFile",
                    ToolClass::Write,
                    Intent::Write,
                    format!("src/pkg{p}/new/dir/file{p}.py"),
                ),
                (
                    "listFiles",
                    ToolClass::Read,
                    Intent::List,
                    format!("src/pkg{p}"),
                ),
            ]
        })
        .chain([
            (
                "writeFile",
                ToolClass::Write,
                Intent::Write,
                ".git/config".to_string(),
            ),
            (
                "writeFile",
                ToolClass::Write,
                Intent::Write,
                ".env".to_string(),
            ),
            (
                "writeFile",
                ToolClass::Write,
                Intent::Write,
                "noctune.toml".to_string(),
            ),
            (
                "writeFile",
                ToolClass::Write,
                Intent::Write,
                ".noctune_cache/notes.md".to_string(),
            ),
            (
                "readFile",
                ToolClass::Read,
                Intent::Read,
                "../../etc/passwd".to_string(),
            ),
            (
                "readFile",
                ToolClass::Read,
                Intent::Read,
                "./README.md".to_string(),
            ),
        ])
        .collect();

    let mut times = Vec::with_capacity(CHECKS);
    let (mut allowed, mut asked, mut refused) = (0usize, 0usize, 0usize);
    for i in 0..CHECKS {
        let (tool, class, intent, path) = &cases[i % cases.len()];
        let t = Instant::now();
        let verdict = match sandbox.resolve(&root, path, *intent) {
            Ok(sp) => Some(gate.check("s1", tool, *class, Some(sp.rel()))),
            Err(_) => None,
        };
        times.push(t.elapsed());
        match verdict {
            Some(Check::Allowed { .. }) => allowed += 1,
            Some(Check::Ask(_)) => asked += 1,
            _ => refused += 1,
        }
    }
    times.sort();
    let p = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    let (p50, p99, max) = (p(0.50), p(0.99), times[times.len() - 1]);
    println!(
        "  {} paths: {allowed} allowed, {asked} asked (protected), {refused} refused",
        cases.len()
    );
    println!(
        "{} permission+sandbox check: p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs (target p99 <= 1000 µs)",
        verdict(p99 <= Duration::from_millis(1)),
        p50.as_secs_f64() * 1e6,
        p99.as_secs_f64() * 1e6,
        max.as_secs_f64() * 1e6,
    );
}

// ---------------------------------------------------------------------------------------------
// prompt tokens of the tool list per tool mode

/// The tool-list budget of a 2k-context profile (issue 12).
const TOOL_LIST_TARGET: usize = 400;
const SMALL_WINDOW: usize = 2048;

/// Run tools need an engine; only their names, descriptions and schemas are used here.
struct NoRuns;

impl RunControl for NoRuns {
    fn start(&self, _: &StartRequest) -> Result<RunRecord, OpError> {
        Err(OpError::invalid("benchmark: no engine"))
    }
    fn status(&self, _: &str) -> Result<RunRecord, OpError> {
        Err(OpError::invalid("benchmark: no engine"))
    }
    fn stop(&self, _: &str) -> Result<RunRecord, OpError> {
        Err(OpError::invalid("benchmark: no engine"))
    }
    fn events(&self, _: &str, _: u64, _: usize) -> Result<Vec<Event>, OpError> {
        Err(OpError::invalid("benchmark: no engine"))
    }
    fn approvals(&self, _: &str) -> Result<Vec<ApprovalView>, OpError> {
        Err(OpError::invalid("benchmark: no engine"))
    }
    fn decide(
        &self,
        _: &str,
        _: &str,
        _: Decision,
        _: &str,
        _: &str,
    ) -> Result<ApprovalDecision, OpError> {
        Err(OpError::invalid("benchmark: no engine"))
    }
}

fn specs(tools: &[Arc<dyn Tool>]) -> Vec<ToolSpec> {
    tools
        .iter()
        .map(|t| ToolSpec::function(t.name(), t.description(), t.parameters()))
        .collect()
}

/// How the tool list of one mode is counted.
enum Counter {
    Server {
        client: LlmClient,
        label: String,
        /// `/props` says the template drops native tools (their count is then 0 and means
        /// only that the model sees none).
        drops_tools: bool,
    },
    Estimate,
}

impl Counter {
    fn label(&self) -> String {
        match self {
            Counter::Server { label, .. } => label.clone(),
            Counter::Estimate => "estimate (context::estimate_text, calibrated)".into(),
        }
    }

    /// Tokens of the prompt-mode protocol text: the prompt with it minus the prompt without.
    async fn prompt_mode(&self, specs: &[ToolSpec]) -> Result<usize, String> {
        let protocol = prompt_tools::protocol_prompt(specs);
        match self {
            Counter::Estimate => Ok(context::estimate_text(&protocol)),
            Counter::Server { client, .. } => {
                let base = "You are Noctune, a coding assistant.";
                let with = vec![
                    ChatMessage::system(format!("{base}\n\n{protocol}")),
                    ChatMessage::user("hi"),
                ];
                let without = vec![ChatMessage::system(base), ChatMessage::user("hi")];
                let a = count(client, &with, None).await?;
                let b = count(client, &without, None).await?;
                Ok(a.saturating_sub(b))
            }
        }
    }

    /// Tokens of native `tools` as the chat template renders them (0 when it drops them).
    async fn native(&self, specs: &[ToolSpec]) -> Result<usize, String> {
        match self {
            Counter::Estimate => Ok(context::estimate_tools(specs)),
            Counter::Server { client, .. } => {
                let msgs = vec![
                    ChatMessage::system("You are Noctune, a coding assistant."),
                    ChatMessage::user("hi"),
                ];
                let a = count(client, &msgs, Some(specs)).await?;
                let b = count(client, &msgs, None).await?;
                Ok(a.saturating_sub(b))
            }
        }
    }
}

async fn count(
    client: &LlmClient,
    messages: &[ChatMessage],
    tools: Option<&[ToolSpec]>,
) -> Result<usize, String> {
    client
        .count_tokens(messages, tools)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| "the server cannot count tokens (no /apply-template)".to_string())
}

fn bench_protocol_tokens() {
    println!(
        "\n== prompt tokens of the tool list per tool_mode, {SMALL_WINDOW}-token profile (target <= {TOOL_LIST_TARGET}) =="
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let file_tools = default_tools(None);
    let mut studio_tools = default_tools(None);
    studio_tools.extend(run_tools(Arc::new(NoRuns)));
    let sets = [
        ("file tools", specs(&file_tools)),
        ("file + run tools (Studio)", specs(&studio_tools)),
    ];

    let mut counters = Vec::new();
    for var in ["NOCTUNE_LLAMA_URL", "NOCTUNE_LLAMA_SMOL_URL"] {
        let Some(url) = std::env::var(var).ok().filter(|u| !u.trim().is_empty()) else {
            continue;
        };
        let client = LlmClient::new(LlmEndpoint::new(url.trim(), "bench")).expect("client");
        let caps = rt.block_on(client.server_capabilities());
        match caps {
            Ok(caps) if caps.can_count_tokens() => {
                let model = caps.model.unwrap_or_else(|| "?".into());
                let tools = match caps.supports_tools {
                    Some(true) => "template renders tools",
                    Some(false) => "template drops tools",
                    None => "tool support unknown",
                };
                counters.push(Counter::Server {
                    client,
                    label: format!("llama-server /tokenize ({model}, {tools})"),
                    drops_tools: caps.supports_tools == Some(false),
                });
            }
            Ok(_) => println!("  {var}={url}: not llama-server, cannot count; skipped"),
            Err(e) => println!("  {var}={url}: unreachable ({e}); skipped"),
        }
    }
    if counters.is_empty() {
        println!(
            "  no llama-server (set NOCTUNE_LLAMA_URL / NOCTUNE_LLAMA_SMOL_URL): the estimate only"
        );
    }
    counters.push(Counter::Estimate);

    for counter in &counters {
        println!("  counted by: {}", counter.label());
        for (set, specs) in &sets {
            let chars = prompt_tools::protocol_prompt(specs).len();
            let json = serde_json::to_string(specs).unwrap_or_default().len();
            for (mode, result, bytes) in [
                ("prompt", rt.block_on(counter.prompt_mode(specs)), chars),
                ("native", rt.block_on(counter.native(specs)), json),
            ] {
                if mode == "native"
                    && matches!(
                        counter,
                        Counter::Server {
                            drops_tools: true,
                            ..
                        }
                    )
                {
                    println!(
                        "    n/a  native {set:<26} {} tools: dropped by the chat template ({:?} tokens): the model sees none",
                        specs.len(),
                        result
                    );
                    continue;
                }
                match result {
                    Ok(n) => println!(
                        "    {} {mode:<6} {set:<26} {} tools: {n:4} tokens ({bytes} bytes), {:.1}% of {SMALL_WINDOW}, \
                         {:.2}x the target",
                        verdict(n <= TOOL_LIST_TARGET),
                        specs.len(),
                        100.0 * n as f64 / SMALL_WINDOW as f64,
                        n as f64 / TOOL_LIST_TARGET as f64,
                    ),
                    Err(e) => println!("    MISS {mode:<6} {set}: {e}"),
                }
            }
        }
    }
}
