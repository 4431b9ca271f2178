//! HTTP surface benchmark (`cargo bench --bench http`), against the real `noctune studio`.
//!
//! 1. Live events latency: this process appends events to a run's `events.jsonl` through the
//!    engine's own `EventLog` and an SSE reader (a raw HTTP client) takes them off the stream;
//!    latency = receive time - append time, both measured here. Target p99 <= 100 ms.
//! 2. Fan-out: 50 SSE clients on one run while 10,000 events are appended as fast as the
//!    engine writes them, then the run ends; every client must get every event, in order, and
//!    the `end` message. Target: none lost, none reordered.
//! 3. First load of /studio: the page plus every asset it loads (scripts, their imports, the
//!    style sheet, the icon), bytes on the wire (headers included). Target <= 150 KB.
//!
//! Prints the figures and PASS/MISS for each; exits non-zero on a MISS.

use noctune_core::event::LogLevel;
use noctune_core::{EventPayload, ResumePolicy, RunId, RunRecord, RunStatus};
use noctune_engine::RunPaths;
use noctune_engine::events::EventLog;
use noctune_engine::{process, runfile};
use noctune_store::AuditStore;
use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const LATENCY_EVENTS: u64 = 400;
const FANOUT_CLIENTS: usize = 50;
const FANOUT_EVENTS: u64 = 10_000;
const FIRST_LOAD_BUDGET: usize = 150 * 1024;

struct Studio {
    child: Child,
    port: u16,
    token: String,
}

impl Drop for Studio {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_studio(repo: &Path, db: &Path) -> Studio {
    let mut child = Command::new(env!("CARGO_BIN_EXE_noctune"))
        .args([
            "studio",
            "--repo",
            repo.to_str().unwrap(),
            "--port",
            "0",
            "--no-open",
        ])
        .env("NOCTUNE_STUDIO_DB", db)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn noctune studio");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = out.read_to_end(&mut sink);
    });
    let url = line
        .trim()
        .strip_prefix("Noctune Studio: ")
        .expect("URL line")
        .to_string();
    let (base, token) = url.split_once("/studio?token=").unwrap();
    let port = base.rsplit(':').next().unwrap().parse().unwrap();
    Studio {
        child,
        port,
        token: token.to_string(),
    }
}

/// A git repository with one commit, and a run in status `running` whose "worker" is this
/// process (so the liveness check sees it alive).
fn make_run(repo: &Path, store: &AuditStore) -> (RunPaths, EventLog) {
    std::fs::write(repo.join("README.md"), "bench\n").unwrap();
    let git = git2::Repository::init_opts(
        repo,
        git2::RepositoryInitOptions::new().initial_head("main"),
    )
    .unwrap();
    let mut idx = git.index().unwrap();
    idx.add_all(["*"].iter(), git2::IndexAddOption::DEFAULT, None)
        .unwrap();
    idx.write().unwrap();
    let tree = git.find_tree(idx.write_tree().unwrap()).unwrap();
    let sig = git2::Signature::now("Bench", "bench@example.com").unwrap();
    let head = git
        .commit(Some("HEAD"), &sig, &sig, "init", &tree, &[])
        .unwrap();
    noctune_engine::paths::ensure_cache_dir(repo).unwrap();
    let run_id = RunId::new_from(
        &noctune_util::time::now_compact(),
        noctune_util::fsx::random_bytes::<4>(),
    );
    let paths = RunPaths::new(repo, &run_id);
    let now = noctune_util::time::now_rfc3339();
    let pid = std::process::id();
    let rec = RunRecord {
        run_id: run_id.clone(),
        status: RunStatus::Running,
        started_at: now.clone(),
        updated_at: now,
        ended_at: None,
        repo_root: repo.display().to_string(),
        pack: "bench".into(),
        profile: "default".into(),
        branch: format!("noctune/bench/{run_id}"),
        head_sha: head.to_string(),
        error: None,
        resume_policy: ResumePolicy::Continue,
        worker_pid: Some(pid),
        worker_start_time: process::start_time(pid),
        stage: "bench".into(),
        commits: None,
        reason: None,
        summary: None,
    };
    runfile::create(&paths, &rec).unwrap();
    store.upsert_run(&rec).unwrap();
    let log = EventLog::new(&paths);
    log.append(&EventPayload::RunStarted {
        worker_pid: pid,
        pack: "bench".into(),
        branch: "bench".into(),
    })
    .unwrap();
    (paths, log)
}

/// A raw SSE client: sends the request, then yields `(id, event)` pairs as they arrive.
struct SseClient {
    stream: TcpStream,
    raw: Vec<u8>,
    body: Vec<u8>,
    chunk_left: Option<usize>,
    head_done: bool,
    /// The terminating chunk arrived (messages may still be in `body`).
    eof: bool,
}

impl SseClient {
    fn connect(port: u16, token: &str, path: &str) -> SseClient {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_nodelay(true).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"
        );
        stream.write_all(req.as_bytes()).unwrap();
        SseClient {
            stream,
            raw: Vec::new(),
            body: Vec::new(),
            chunk_left: None,
            head_done: false,
            eof: false,
        }
    }

    fn find(h: &[u8], n: &[u8]) -> Option<usize> {
        h.windows(n.len()).position(|w| w == n)
    }

    /// The next message as (event name, id), or None when the stream ends. An `error` message
    /// is printed.
    fn next(&mut self) -> Option<(String, Option<u64>)> {
        loop {
            if !self.head_done
                && let Some(i) = Self::find(&self.raw, b"\r\n\r\n")
            {
                let head = String::from_utf8_lossy(&self.raw[..i]).to_string();
                assert!(head.starts_with("HTTP/1.1 200"), "SSE answer: {head}");
                self.raw.drain(..i + 4);
                self.head_done = true;
            }
            if self.head_done {
                loop {
                    match self.chunk_left {
                        None => {
                            let Some(i) = Self::find(&self.raw, b"\r\n") else {
                                break;
                            };
                            let size = usize::from_str_radix(
                                String::from_utf8_lossy(&self.raw[..i]).trim(),
                                16,
                            )
                            .unwrap_or(0);
                            self.raw.drain(..i + 2);
                            if size == 0 {
                                self.eof = true;
                                break;
                            }
                            self.chunk_left = Some(size);
                        }
                        Some(n) if self.raw.len() >= n + 2 => {
                            self.body.extend_from_slice(&self.raw[..n]);
                            self.raw.drain(..n + 2);
                            self.chunk_left = None;
                        }
                        Some(_) => break,
                    }
                }
                while let Some(i) = Self::find(&self.body, b"\n\n") {
                    let block = String::from_utf8_lossy(&self.body[..i]).to_string();
                    self.body.drain(..i + 2);
                    let mut event = "message".to_string();
                    let mut id = None;
                    let mut has_data = false;
                    if block.contains("event: error") {
                        eprintln!("stream error: {block}");
                    }
                    for l in block.lines() {
                        if let Some(v) = l.strip_prefix("event:") {
                            event = v.trim().to_string();
                        } else if let Some(v) = l.strip_prefix("id:") {
                            id = v.trim().parse().ok();
                        } else if l.starts_with("data:") {
                            has_data = true;
                        }
                    }
                    if has_data {
                        return Some((event, id));
                    }
                }
                if self.eof {
                    return None;
                }
            }
            let mut buf = [0u8; 65536];
            match self.stream.read(&mut buf) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.raw.extend_from_slice(&buf[..n]),
            }
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "MISS" }
}

/// Keeps the run's heartbeat (`updated_at`) fresh, as a worker does.
fn heartbeat(paths: RunPaths, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            let _ = runfile::update(&paths, |_| None);
            std::thread::sleep(Duration::from_millis(500));
        }
    })
}

fn bench_latency(studio: &Studio, paths: &RunPaths, log: &EventLog) -> bool {
    let next = log.read_from(0, usize::MAX).unwrap().len() as u64;
    let path = format!("/api/runs/{}/events/stream?cursor={next}", paths.run_id);
    let sent: Arc<Mutex<HashMap<u64, Instant>>> = Arc::new(Mutex::new(HashMap::new()));
    let mut client = SseClient::connect(studio.port, &studio.token, &path);
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        while got.len() < LATENCY_EVENTS as usize {
            match client.next() {
                Some((ev, Some(id))) if ev == "message" => got.push((id, Instant::now())),
                Some(_) => {}
                None => break,
            }
        }
        got
    });
    std::thread::sleep(Duration::from_millis(300)); // the stream is open and caught up
    for i in 0..LATENCY_EVENTS {
        let ev = log.append(&bench_log(format!("latency {i}"))).unwrap();
        sent.lock().unwrap().insert(ev.idx, Instant::now());
        // Spread the writes: a live run writes in bursts and pauses, not in lockstep with polls.
        std::thread::sleep(Duration::from_millis(3 + (i * 7919 % 23)));
    }
    let got = reader.join().unwrap();
    let sent = sent.lock().unwrap();
    let mut lat: Vec<f64> = got
        .iter()
        .filter_map(|(id, at)| {
            sent.get(id)
                .map(|s| at.saturating_duration_since(*s).as_secs_f64() * 1000.0)
        })
        .collect();
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let ok = lat.len() == LATENCY_EVENTS as usize && percentile(&lat, 0.99) <= 100.0;
    println!(
        "live events latency (append to events.jsonl -> SSE reader), {} events: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (target p99 <= 100 ms) {}",
        lat.len(),
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat.last().copied().unwrap_or(f64::NAN),
        verdict(ok)
    );
    ok
}

fn bench_fanout(
    studio: &Studio,
    paths: &RunPaths,
    log: &EventLog,
    hb_stop: &Arc<AtomicBool>,
) -> bool {
    let start = log.read_from(0, usize::MAX).unwrap().len() as u64;
    let path = format!("/api/runs/{}/events/stream?cursor={start}", paths.run_id);
    let clients: Vec<_> = (0..FANOUT_CLIENTS)
        .map(|_| {
            let mut c = SseClient::connect(studio.port, &studio.token, &path);
            std::thread::spawn(move || {
                let mut ids = Vec::new();
                let mut ended = false;
                while let Some((ev, id)) = c.next() {
                    if ev == "end" {
                        ended = true;
                        break;
                    }
                    if let Some(id) = id {
                        ids.push(id);
                    }
                }
                (ids, ended)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let t = Instant::now();
    for i in 0..FANOUT_EVENTS {
        log.append(&bench_log(format!("fanout {i}"))).unwrap();
    }
    let write_secs = t.elapsed().as_secs_f64();
    // End the run the way a worker does: run.json first, then the final status event.
    hb_stop.store(true, Ordering::Relaxed);
    runfile::update(paths, |_| Some(RunStatus::Done)).unwrap();
    let last = log
        .append(&EventPayload::StatusChanged {
            status: RunStatus::Done,
            error: None,
            resumed: None,
        })
        .unwrap();
    let expected: Vec<u64> = (start..=last.idx).collect();
    let mut lost = 0usize;
    let mut reordered = 0usize;
    let mut not_ended = 0usize;
    for c in clients {
        let (ids, ended) = c.join().unwrap();
        if !ended {
            not_ended += 1;
        }
        if ids != expected {
            let seen: BTreeSet<u64> = ids.iter().copied().collect();
            lost += expected.iter().filter(|i| !seen.contains(i)).count();
            if ids.windows(2).any(|w| w[1] <= w[0]) {
                reordered += 1;
            }
        }
    }
    let total = t.elapsed().as_secs_f64();
    let ok = lost == 0 && reordered == 0 && not_ended == 0;
    println!(
        "fan-out: {FANOUT_CLIENTS} SSE clients x {} events (written in {:.2} s; all delivered and ended {:.2} s after the first write): lost {lost}, reordered clients {reordered}, streams without end {not_ended} {}",
        expected.len(),
        write_secs,
        total,
        verdict(ok)
    );
    ok
}

/// GET with the token cookie: (status, body, bytes on the wire).
fn get(port: u16, token: &str, path: &str) -> (u16, Vec<u8>, usize) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nCookie: noctune_token_{port}={token}\r\nAccept-Encoding: gzip, br\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let i = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..i]).to_string();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, raw[i + 4..].to_vec(), raw.len())
}

fn refs(text: &str, base: &str) -> Vec<String> {
    let mut out = Vec::new();
    for attr in ["src=\"", "href=\""] {
        for part in text.split(attr).skip(1) {
            let r = &part[..part.find('"').unwrap_or(0)];
            if r.starts_with("/studio/assets/") {
                out.push(r.to_string());
            }
        }
    }
    for part in text.split(" from '").skip(1) {
        let r = &part[..part.find('\'').unwrap_or(0)];
        if let Some(name) = r.strip_prefix("./") {
            out.push(format!("{base}{name}"));
        }
    }
    out
}

fn bench_first_load(studio: &Studio) -> bool {
    let mut queue = vec!["/studio".to_string()];
    let mut seen = BTreeSet::new();
    let mut total = 0usize;
    let mut lines = Vec::new();
    while let Some(p) = queue.pop() {
        if !seen.insert(p.clone()) {
            continue;
        }
        let (status, body, wire) = get(studio.port, &studio.token, &p);
        assert_eq!(status, 200, "{p}");
        total += wire;
        lines.push(format!("{p} {wire} B"));
        let text = String::from_utf8_lossy(&body);
        queue.extend(refs(&text, "/studio/assets/"));
    }
    let ok = total <= FIRST_LOAD_BUDGET;
    println!(
        "/studio first load: {} requests, {:.1} KB on the wire (target <= {} KB) {}\n    {}",
        seen.len(),
        total as f64 / 1024.0,
        FIRST_LOAD_BUDGET / 1024,
        verdict(ok),
        lines.join("\n    ")
    );
    ok
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let repo: PathBuf = std::fs::canonicalize(work.path()).unwrap().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    let db = work.path().join("audit.sqlite");
    let store = AuditStore::open(&db).unwrap();
    let (paths, log) = make_run(&repo, &store);
    let hb_stop = Arc::new(AtomicBool::new(false));
    let hb = heartbeat(paths.clone(), hb_stop.clone());
    let studio = start_studio(&repo, &db);
    let a = bench_latency(&studio, &paths, &log);
    let b = bench_fanout(&studio, &paths, &log, &hb_stop);
    let c = bench_first_load(&studio);
    let _ = hb.join();
    drop(studio); // process::exit would skip it
    if !(a && b && c) {
        std::process::exit(1);
    }
}

fn bench_log(message: String) -> EventPayload {
    EventPayload::Log {
        level: LogLevel::Info,
        message,
        file: None,
        project: None,
    }
}
