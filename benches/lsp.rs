//! The editor sidecar against the real binary (`cargo bench --bench lsp`), issue 5's benchmarks:
//!
//! 1. Cold start: spawn `noctune lsp` and send `initialize` at once; time to its response.
//!    Median over 30 starts, with the /studio HTTP server on (the default; it must not delay
//!    `initialize`) and, for reference, with `--no-http`. Target: median ≤ 50 ms.
//! 2. Idle RSS after `initialize`/`initialized` on the fixture repository (with HTTP, after the
//!    first watcher passes), from `/proc/<pid>/status` `VmRSS`. Target: ≤ 30 MB.
//! 3. Chat overhead: time from sending `noctune/chat` to the first `noctune/chatDelta` with
//!    answer text, versus posting the very body the sidecar sends straight to the same scripted
//!    server and timing the first content chunk; 200 requests each, interleaved, after a
//!    warm-up. Target: p50 overhead ≤ 2 ms.

#[path = "../tests/it/support/llm_server.rs"]
mod llm_server;

use llm_server::{Reply, Script, ScriptedLlm};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

const STARTS: usize = 30;
const REQUESTS: usize = 200;
const WARMUP: usize = 20;

fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "MISS" }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_noctune"))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let name = e.file_name();
        if [
            ".noctune_cache",
            "__pycache__",
            ".ruff_cache",
            ".pytest_cache",
        ]
        .iter()
        .any(|n| name == *n)
        {
            continue;
        }
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(&name));
        } else {
            std::fs::copy(e.path(), to.join(&name)).unwrap();
        }
    }
}

/// The fixture repository `pyproj` as a git repository (made with libgit2: no hooks run).
fn fixture_repo(dir: &Path) -> PathBuf {
    let repo_dir = dir.join("repo");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/pyproj"),
        &repo_dir,
    );
    let repo = git2::Repository::init_opts(
        &repo_dir,
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
    std::fs::canonicalize(repo_dir).unwrap()
}

/// A running `noctune lsp` with a reader thread that stamps each message when it is parsed.
struct Session {
    child: Child,
    stdin: ChildStdin,
    rx: Receiver<(Instant, Value)>,
    next_id: i64,
}

impl Session {
    fn start(repo: &Path, db: &Path, extra: &[&str], llm: Option<&str>) -> Session {
        let mut cmd = Command::new(bin());
        cmd.arg("lsp")
            .arg("--repo")
            .arg(repo)
            .args(extra)
            .current_dir(repo);
        cmd.env("NOCTUNE_STUDIO_DB", db)
            .env_remove("NOCTUNE_STUDIO_ALLOWED_ROOTS")
            .env_remove("NOCTUNE_LOG");
        match llm {
            Some(u) => cmd.env("NOCTUNE_STUDIO_LLM_BASE_URL", u),
            None => cmd.env_remove("NOCTUNE_STUDIO_LLM_BASE_URL"),
        };
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn noctune lsp");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            loop {
                let mut len = 0usize;
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let line = line.trim_end();
                    if line.is_empty() {
                        break;
                    }
                    if let Some(v) = line.strip_prefix("Content-Length: ") {
                        len = v.parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0u8; len];
                if r.read_exact(&mut body).is_err() {
                    return;
                }
                let at = Instant::now();
                if let Ok(v) = serde_json::from_slice(&body) {
                    if tx.send((at, v)).is_err() {
                        return;
                    }
                }
            }
        });
        Session {
            child,
            stdin,
            rx,
            next_id: 0,
        }
    }

    fn send(&mut self, v: &Value) {
        let body = v.to_string();
        write!(self.stdin, "Content-Length: {}\r\n\r\n{body}", body.len()).unwrap();
        self.stdin.flush().unwrap();
    }

    fn request(&mut self, method: &str, params: Value) -> i64 {
        self.next_id += 1;
        let id = self.next_id;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        id
    }

    /// The first message matching `pred` and when it arrived; answers server requests.
    fn wait(&mut self, mut pred: impl FnMut(&Value) -> bool) -> (Instant, Value) {
        loop {
            let (at, v) = self
                .rx
                .recv_timeout(Duration::from_secs(30))
                .expect("a message from the server within 30 s");
            if v.get("method").is_some() && v.get("id").is_some() {
                self.send(&json!({"jsonrpc": "2.0", "id": v["id"], "result": null}));
            }
            if pred(&v) {
                return (at, v);
            }
        }
    }

    fn initialize(&mut self, repo: &Path) -> Instant {
        let uri = format!("file://{}", repo.display());
        let sent = Instant::now();
        let id = self.request(
            "initialize",
            json!({"processId": std::process::id(), "rootUri": uri, "workspaceFolders": [{"uri": uri, "name": "repo"}],
                   "capabilities": {"window": {"workDoneProgress": true}, "workspace": {"applyEdit": true}}}),
        );
        self.wait(|v| v["id"] == json!(id) && v.get("method").is_none());
        self.send(&json!({"jsonrpc": "2.0", "method": "initialized", "params": {}}));
        sent
    }

    fn finish(mut self) {
        let id = self.request("shutdown", Value::Null);
        self.wait(|v| v["id"] == json!(id) && v.get("method").is_none());
        self.send(&json!({"jsonrpc": "2.0", "method": "exit"}));
        let _ = self.child.wait();
    }
}

fn cold_start(repo: &Path, db: &Path, extra: &[&str]) -> Vec<Duration> {
    let mut times = Vec::new();
    for _ in 0..STARTS {
        let spawned = Instant::now();
        let mut s = Session::start(repo, db, extra, None);
        let uri = format!("file://{}", repo.display());
        let id = s.request(
            "initialize",
            json!({"processId": null, "rootUri": uri, "capabilities": {}}),
        );
        let (at, _) = s.wait(|v| v["id"] == json!(id));
        times.push(at - spawned);
        s.send(&json!({"jsonrpc": "2.0", "method": "initialized", "params": {}}));
        s.finish();
    }
    times.sort();
    times
}

fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Posts `body` on a keep-alive connection; time to the first chunk with answer text.
fn direct_ttfb(stream: &mut BufReader<TcpStream>, host: &str, body: &str) -> Duration {
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nAccept: text/event-stream\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let started = Instant::now();
    stream.get_mut().write_all(head.as_bytes()).unwrap();
    stream.get_mut().write_all(body.as_bytes()).unwrap();
    let mut line = String::new();
    loop {
        line.clear();
        stream.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
    }
    let mut first = None;
    loop {
        line.clear();
        stream.read_line(&mut line).unwrap();
        let size = usize::from_str_radix(line.trim(), 16).unwrap();
        let mut data = vec![0u8; size + 2];
        stream.read_exact(&mut data).unwrap();
        if size == 0 {
            break;
        }
        if first.is_none() && data.windows(12).any(|w| w == b"{\"content\":\"") {
            first = Some(started.elapsed());
        }
    }
    first.expect("content in the answer")
}

fn main() {
    let work = tempfile::Builder::new()
        .prefix("noctune-bench-lsp-")
        .tempdir()
        .unwrap();
    let repo = fixture_repo(work.path());
    let db = work.path().join("audit.sqlite");
    println!("noctune lsp benchmarks ({})", bin().display());

    // 1. Cold start.
    let with_http = cold_start(&repo, &db, &[]);
    let no_http = cold_start(&repo, &db, &["--no-http"]);
    let med = percentile(&with_http, 0.5);
    println!(
        "  cold start to the initialize response, median of {STARTS}: {:7.2} ms (p90 {:.2} ms; --no-http median {:.2} ms)   target <= 50 ms: {}",
        ms(med),
        ms(percentile(&with_http, 0.9)),
        ms(percentile(&no_http, 0.5)),
        verdict(ms(med) <= 50.0)
    );

    // 2. Idle RSS.
    let mut s = Session::start(&repo, &db, &[], None);
    s.initialize(&repo);
    // The studio URL is ready once HTTP is up; then let the watcher run a few passes.
    let id = s.request("noctune/studioUrl", json!({}));
    let (_, url) = s.wait(|v| v["id"] == json!(id));
    std::thread::sleep(Duration::from_millis(1500));
    let rss = rss_kb(s.child.id());
    println!(
        "  idle RSS after initialize (HTTP {}):   {:7.1} MB                                   target <= 30 MB: {}",
        if url["result"]["url"].is_string() {
            "on"
        } else {
            "off"
        },
        rss as f64 / 1024.0,
        verdict(rss as f64 / 1024.0 <= 30.0)
    );
    s.finish();

    // 3. Chat overhead.
    let llm =
        ScriptedLlm::start(Script::new().fallback(|_| Reply::text(&["Hello", " world", "."])));
    let mut s = Session::start(&repo, &db, &["--no-http"], Some(&llm.base_url()));
    s.initialize(&repo);
    let chat = |s: &mut Session, n: usize| -> Duration {
        let rid = format!("b{n}");
        let sent = Instant::now();
        let id = s.request("noctune/chat", json!({"message": "What does this project do?", "requestId": rid, "session": format!("bench-{n}")}));
        let (first, _) =
            s.wait(|v| v["method"] == "noctune/chatDelta" && v["params"]["kind"] == "delta");
        s.wait(|v| v["id"] == json!(id) && v.get("method").is_none());
        first - sent
    };
    for n in 0..WARMUP {
        chat(&mut s, n);
    }
    let body = llm
        .last_request()
        .expect("the sidecar's request")
        .to_string();
    let addr = llm.addr();
    let mut conn = BufReader::new(TcpStream::connect(addr).unwrap());
    conn.get_ref().set_nodelay(true).unwrap();
    let host = addr.to_string();
    for _ in 0..WARMUP {
        direct_ttfb(&mut conn, &host, &body);
    }
    let (mut via, mut direct, mut diffs) = (Vec::new(), Vec::new(), Vec::new());
    for n in 0..REQUESTS {
        let v = chat(&mut s, WARMUP + n);
        let d = direct_ttfb(&mut conn, &host, &body);
        via.push(v);
        direct.push(d);
        diffs.push(v.as_secs_f64() - d.as_secs_f64());
    }
    s.finish();
    via.sort();
    direct.sort();
    diffs.sort_by(|a, b| a.total_cmp(b));
    let p50_over = ms(percentile(&via, 0.5)) - ms(percentile(&direct, 0.5));
    println!(
        "  time to first chatDelta, {REQUESTS} requests: sidecar p50 {:.2} ms p99 {:.2} ms; direct p50 {:.2} ms p99 {:.2} ms",
        ms(percentile(&via, 0.5)),
        ms(percentile(&via, 0.99)),
        ms(percentile(&direct, 0.5)),
        ms(percentile(&direct, 0.99))
    );
    println!(
        "  chat overhead through the sidecar, p50:      {p50_over:7.2} ms (paired p50 {:.2} ms)                       target <= 2 ms: {}",
        diffs[diffs.len() / 2] * 1000.0,
        verdict(p50_over <= 2.0)
    );
}
