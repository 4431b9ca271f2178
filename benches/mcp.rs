//! MCP benchmarks (`cargo bench --bench mcp`), issue 6's "Benchmarks" section.
//!
//! The server is the real `/mcp` router (`noctune_mcp::http_router`) served by axum on
//! 127.0.0.1, the client the real rmcp Streamable HTTP client, the run a live one
//! (`waiting_approval`, a worker pid that is alive, a heartbeat every 2 s) so `get_status` does
//! its whole liveness check.
//!
//! - `get_status` sequentially, 1000 calls after 50 warm-up calls: p50 ≤ 2 ms.
//! - `get_status` from 20 concurrent clients (one session each) for 10 s: no error; throughput.
//! - `tail_events` over 100k events from cursor 0 to the end in pages (1000 and 5000 per page):
//!   total time, compared with reading and parsing `events.jsonl` directly.

use noctune_core::{Event, ResumePolicy, RunId, RunRecord, RunStatus};
use noctune_engine::{RunPaths, runfile};
use rmcp::model::{
    CallToolRequestParams, ClientCapabilities, ClientConfig, Implementation, ProtocolVersion,
};
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{RoleClient, ServiceExt};
use serde_json::{Value, json};
use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const EVENTS: u64 = 100_000;
const SEQUENTIAL_CALLS: usize = 1000;
const CLIENTS: usize = 20;
const SOAK: Duration = Duration::from_secs(10);

type Client = RunningService<RoleClient, ClientConfig>;

fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "MISS" }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// A live run in `repo` with `EVENTS` events, recorded in the audit DB at `db`.
fn make_run(repo: &Path, db: &Path) -> RunRecord {
    let run_id = RunId::parse("20260101T000000Z-bench001").unwrap();
    let paths = RunPaths::new(repo, &run_id);
    let pid = std::process::id();
    let now = noctune_util::time::now_rfc3339();
    let rec = RunRecord {
        run_id: run_id.clone(),
        status: RunStatus::WaitingApproval,
        started_at: now.clone(),
        updated_at: now,
        ended_at: None,
        repo_root: repo.display().to_string(),
        pack: "lint_fix".into(),
        profile: "default".into(),
        branch: format!("noctune/lint_fix/{run_id}"),
        head_sha: "0".repeat(40),
        error: None,
        resume_policy: ResumePolicy::Continue,
        worker_pid: Some(pid),
        worker_start_time: noctune_engine::process::start_time(pid),
        stage: "propose".into(),
        commits: None,
        reason: None,
        summary: None,
    };
    runfile::create(&paths, &rec).unwrap();
    let mut out = std::io::BufWriter::new(std::fs::File::create(paths.events()).unwrap());
    let kinds = [
        "edit_proposed",
        "tool_started",
        "tool_finished",
        "auto_approved",
        "heartbeat",
    ];
    for idx in 0..EVENTS {
        let ev = Event {
            idx,
            ts: "2026-01-01T00:00:00.000Z".into(),
            kind: kinds[(idx % 5) as usize].into(),
            payload: json!({"file": format!("pkg{:02}/m{:03}.py", idx % 50, idx % 100), "lines_changed": idx % 17, "risk": idx % 100, "tool": "ruff"}),
        };
        serde_json::to_writer(&mut out, &ev).unwrap();
        out.write_all(b"\n").unwrap();
    }
    out.flush().unwrap();
    noctune_store::AuditStore::open(db)
        .unwrap()
        .upsert_run(&rec)
        .unwrap();
    rec
}

async fn connect(url: &str, name: &str) -> Client {
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(url),
    );
    let info = ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new(name, "1"),
    )
    .with_protocol_version(ProtocolVersion::LATEST_WITH_INITIALIZE);
    info.serve(transport).await.expect("connect to /mcp")
}

async fn call(client: &Client, tool: &str, args: Value) -> Result<Value, String> {
    let params = CallToolRequestParams::new(tool.to_string())
        .with_arguments(args.as_object().cloned().unwrap_or_default());
    let r = client.call_tool(params).await.map_err(|e| e.to_string())?;
    if r.is_error == Some(true) {
        return Err(format!("{:?}", r.structured_content));
    }
    r.structured_content
        .ok_or_else(|| "no structured content".to_string())
}

async fn bench_get_status(url: &str, run_id: &str) {
    let client = connect(url, "bench-seq").await;
    let args = json!({"run_id": run_id});
    for _ in 0..50 {
        call(&client, "get_status", args.clone())
            .await
            .expect("get_status");
    }
    let mut times = Vec::with_capacity(SEQUENTIAL_CALLS);
    for _ in 0..SEQUENTIAL_CALLS {
        let t = Instant::now();
        let s = call(&client, "get_status", args.clone())
            .await
            .expect("get_status");
        times.push(t.elapsed());
        assert_eq!(s["status"], "waiting_approval", "{s}");
    }
    times.sort();
    let p50 = pct(&times, 0.5);
    println!(
        "get_status over Streamable HTTP, sequential ({SEQUENTIAL_CALLS} calls): p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, max {:.3} ms  [target p50 <= 2 ms: {}]",
        ms(p50),
        ms(pct(&times, 0.9)),
        ms(pct(&times, 0.99)),
        ms(*times.last().unwrap()),
        verdict(p50 <= Duration::from_millis(2))
    );
    let _ = client.cancel().await;
}

async fn bench_concurrent(url: &str, run_id: &str) {
    let ok = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let first_error = Arc::new(std::sync::Mutex::new(None::<String>));
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for i in 0..CLIENTS {
        clients.push(connect(url, &format!("bench-{i}")).await);
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for client in clients {
        let (ok, errors, first_error, stop) = (
            ok.clone(),
            errors.clone(),
            first_error.clone(),
            stop.clone(),
        );
        let args = json!({"run_id": run_id});
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match call(&client, "get_status", args.clone()).await {
                    Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        first_error.lock().unwrap().get_or_insert(e);
                        errors.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
            let _ = client.cancel().await;
        }));
    }
    tokio::time::sleep(SOAK).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = started.elapsed();
    let (ok, errors) = (ok.load(Ordering::Relaxed), errors.load(Ordering::Relaxed));
    println!(
        "get_status, {CLIENTS} concurrent clients for {:.1} s: {ok} calls, {errors} errors, {:.0} calls/s  [target: no error: {}]",
        elapsed.as_secs_f64(),
        ok as f64 / elapsed.as_secs_f64(),
        verdict(errors == 0 && ok > 0)
    );
    if let Some(e) = first_error.lock().unwrap().take() {
        println!("  first error: {e}");
    }
}

async fn bench_tail(url: &str, run_id: &str, events_file: &Path) {
    // Baseline: read and parse events.jsonl directly, as a reader of the file would.
    let t = Instant::now();
    let f = std::io::BufReader::new(std::fs::File::open(events_file).unwrap());
    let mut n = 0u64;
    for line in f.lines() {
        let e: Event = serde_json::from_str(&line.unwrap()).unwrap();
        assert_eq!(e.idx, n);
        n += 1;
    }
    let direct = t.elapsed();
    assert_eq!(n, EVENTS);
    println!(
        "tail_events baseline: read + parse events.jsonl directly: {EVENTS} events in {:.1} ms",
        ms(direct)
    );

    // Where the time goes: the same paging through `Studio::events` (the call tail_events
    // makes), without MCP.
    let studio = noctune_studio::Studio::open(
        &std::env::var_os("NOCTUNE_BENCH_DB")
            .map(std::path::PathBuf::from)
            .unwrap(),
    )
    .unwrap();
    for page in [1000usize, 5000] {
        let t = Instant::now();
        let (mut cursor, mut seen) = (0u64, 0u64);
        loop {
            let evs = studio.events(run_id, cursor, page).unwrap();
            seen += evs.len() as u64;
            match evs.last() {
                Some(e) if evs.len() == page => cursor = e.idx + 1,
                _ => break,
            }
        }
        assert_eq!(seen, EVENTS);
        println!(
            "  (Studio::events paging, no MCP, pages of {page}: {:.1} ms)",
            ms(t.elapsed())
        );
    }

    let client = connect(url, "bench-tail").await;
    for page in [1000u64, 5000] {
        let t = Instant::now();
        let (mut cursor, mut pages, mut seen) = (0u64, 0u32, 0u64);
        loop {
            let r = call(
                &client,
                "tail_events",
                json!({"run_id": run_id, "cursor": cursor, "limit": page}),
            )
            .await
            .expect("tail_events");
            let got = r["events"].as_array().unwrap().len() as u64;
            seen += got;
            pages += 1;
            cursor = r["next_cursor"].as_u64().unwrap();
            if !r["more"].as_bool().unwrap() || got == 0 {
                break;
            }
        }
        let total = t.elapsed();
        assert_eq!(seen, EVENTS, "every event once");
        println!(
            "tail_events over MCP, cursor 0 to the end in pages of {page}: {pages} calls, {:.1} ms total ({:.0} events/s), {:.1}x the direct read",
            ms(total),
            EVENTS as f64 / total.as_secs_f64(),
            total.as_secs_f64() / direct.as_secs_f64()
        );
    }
    let _ = client.cancel().await;
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::Builder::new()
        .prefix("noctune-mcp-bench-")
        .tempdir()
        .unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    let db = dir.path().join("audit.sqlite");
    // SAFETY: set before any other thread exists.
    unsafe { std::env::set_var("NOCTUNE_BENCH_DB", &db) };
    let rec = make_run(&repo, &db);
    let run_id = rec.run_id.to_string();
    let paths = RunPaths::new(&repo, &rec.run_id);

    // The heartbeat a live worker writes, so the run stays live through the whole bench.
    let beating = Arc::new(AtomicBool::new(true));
    let hb = {
        let (paths, beating) = (paths.clone(), beating.clone());
        std::thread::spawn(move || {
            while beating.load(Ordering::Relaxed) {
                let _ = runfile::update(&paths, |_| None);
                std::thread::sleep(Duration::from_secs(2));
            }
        })
    };

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let studio = Arc::new(noctune_studio::Studio::open(&db).unwrap());
        let app = noctune_mcp::http_router(studio);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/mcp", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        println!("MCP benchmarks: server {url}, run {run_id} ({EVENTS} events)");
        bench_get_status(&url, &run_id).await;
        bench_concurrent(&url, &run_id).await;
        bench_tail(&url, &run_id, &paths.events()).await;
    });
    beating.store(false, Ordering::Relaxed);
    let _ = hb.join();
    rt.shutdown_background();
}
