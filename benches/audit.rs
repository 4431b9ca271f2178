//! Audit DB benchmark (`cargo bench --bench audit`). Plain binary, no harness: it prints one
//! table with each figure, the baseline measured in the same run, and the target.
//!
//! 1. Batched event ingest (events/s, target >= 50k/s) vs writing the same events as JSON lines
//!    to a file with one fsync at the end: what SQLite costs over the `events.jsonl` we write
//!    anyway.
//! 2. Durable state transitions (`upsert_run` with synchronous=FULL, target >= 500/s) vs an
//!    fsync'd append of one line: the floor any durable write pays on this disk.
//! 3. A cursor page of 100 from the middle of a run at 1M events vs at 1k events (target: within
//!    2x), i.e. cursor queries do not degrade with the size of the log.
//! 4. Bytes stored per approval (issue 11) of a lint fix in a 3,000-line file: the request file
//!    and the audit DB row as this version writes them (the diff and git blob ids) vs the
//!    whole-text form older versions wrote, computed in the same run (target: the DB row within
//!    2x the diff, the request file within 2x the diff + 1 KB), plus what the git object store
//!    gains (the post-image's blob; the pre-image is the base commit's own).
//!
//! Files go to a temporary folder (`NOCTUNE_BENCH_DIR` to choose the disk). Takes ~30-60 s;
//! `NOCTUNE_BENCH_STORAGE_ONLY=1` runs case 4 alone.

use noctune_core::{
    ApprovalRequest, BlobSource, Event, Proposal, ProposalSource, RecordedEdit, ResumePolicy,
    RunId, RunRecord, RunStatus, approval_id, unified_diff,
};
use noctune_store::AuditStore;
use serde_json::json;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

const INGEST_EVENTS: u64 = 200_000;
const BATCH: usize = 1_000;
const BIG_LOG: u64 = 1_000_000;
const SMALL_LOG: u64 = 1_000;
const PAGE: usize = 100;
/// Durable writes stop at this count or this time, whichever comes first.
const DURABLE_MAX: usize = 3_000;
const DURABLE_TIME: Duration = Duration::from_secs(4);

fn main() {
    let base = std::env::var_os("NOCTUNE_BENCH_DIR").map(std::path::PathBuf::from);
    let dir = match &base {
        Some(b) => tempfile::tempdir_in(b),
        None => tempfile::tempdir(),
    }
    .expect(
        "create a temporary folder for the benchmark (set NOCTUNE_BENCH_DIR to a writable folder)",
    );
    println!(
        "Noctune audit DB benchmark: SQLite {}, files in {}",
        rusqlite::version(),
        dir.path().display()
    );
    let sample = serde_json::to_string(&event(12_345))
        .map(|s| s.len())
        .unwrap_or(0);
    println!("event size: ~{sample} bytes as a JSON line; batches of {BATCH}\n");

    let started = Instant::now();
    let mut rows = storage(dir.path());
    // `NOCTUNE_BENCH_STORAGE_ONLY=1`: just the byte counts (they do not depend on timing).
    if std::env::var_os("NOCTUNE_BENCH_STORAGE_ONLY").is_none() {
        rows.extend([
            ingest(dir.path()),
            transitions(dir.path()),
            cursor(dir.path()),
        ]);
    }
    print_table(&rows);
    println!(
        "\ntotal benchmark time: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

struct Row {
    metric: &'static str,
    value: String,
    baseline: String,
    ratio: String,
    target: &'static str,
    pass: bool,
}

fn run(n: u32) -> RunRecord {
    RunRecord {
        run_id: RunId::parse(&format!("20261125T101010Z-{n:08x}")).expect("valid run id"),
        status: RunStatus::Running,
        started_at: "2026-11-25T10:10:10.000Z".into(),
        updated_at: "2026-11-25T10:10:10.000Z".into(),
        ended_at: None,
        repo_root: "/home/dev/src/project".into(),
        pack: "lint_fix".into(),
        profile: "default".into(),
        branch: format!("noctune/lint_fix/20261125T101010Z-{n:08x}"),
        head_sha: "0123456789abcdef0123456789abcdef01234567".into(),
        error: None,
        resume_policy: ResumePolicy::Continue,
        worker_pid: Some(31337),
        worker_start_time: Some(123_456_789),
        stage: "propose".into(),
        commits: None,
        reason: None,
        summary: None,
    }
}

/// A realistic event: a tool finishing on a file (~200 bytes as a JSON line).
fn event(idx: u64) -> Event {
    Event {
        idx,
        ts: format!(
            "2026-11-25T10:{:02}:{:02}.{:03}Z",
            idx / 60_000 % 60,
            idx / 1000 % 60,
            idx % 1000
        ),
        kind: "tool_finished".into(),
        payload: json!({
            "tool": "ruff check --fix",
            "file": format!("src/pkg/module_{:05}.py", idx % 10_000),
            "exit_code": 0,
            "duration_ms": idx % 997,
            "summary": "Found 3 errors (3 fixed, 0 remaining).",
        }),
    }
}

fn rate(n: f64, d: Duration) -> f64 {
    n / d.as_secs_f64().max(1e-9)
}

fn fmt_rate(r: f64, unit: &str) -> String {
    let s = format!("{:.0}", r);
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{out} {unit}")
}

fn ingest(dir: &Path) -> Row {
    let store = AuditStore::open(&dir.join("ingest.sqlite")).expect("open bench DB");
    let rec = run(1);
    store.upsert_run(&rec).expect("record run");
    let events: Vec<Event> = (0..INGEST_EVENTS).map(event).collect();

    let t = Instant::now();
    for batch in events.chunks(BATCH) {
        let n = store.ingest_events(&rec.run_id, batch).expect("ingest");
        assert_eq!(n, batch.len());
    }
    let sqlite = rate(INGEST_EVENTS as f64, t.elapsed());

    // Baseline: the same events as JSON lines, buffered, one fsync at the end.
    let t = Instant::now();
    let file = std::fs::File::create(dir.join("events.jsonl")).expect("create jsonl");
    let mut w = std::io::BufWriter::new(file);
    for e in &events {
        serde_json::to_writer(&mut w, e).expect("write jsonl");
        w.write_all(b"\n").expect("write jsonl");
    }
    let file = w.into_inner().expect("flush jsonl");
    file.sync_all().expect("fsync jsonl");
    let jsonl = rate(INGEST_EVENTS as f64, t.elapsed());

    Row {
        metric: "event ingest, batches of 1000",
        value: fmt_rate(sqlite, "ev/s"),
        baseline: format!("jsonl+fsync {}", fmt_rate(jsonl, "ev/s")),
        ratio: format!("{:.2}x", sqlite / jsonl),
        target: ">= 50,000 ev/s",
        pass: sqlite >= 50_000.0,
    }
}

fn transitions(dir: &Path) -> Row {
    let store = AuditStore::open(&dir.join("durable.sqlite")).expect("open bench DB");
    let mut rec = run(2);
    let statuses = [RunStatus::Running, RunStatus::WaitingApproval];
    let t = Instant::now();
    let mut n = 0;
    while n < DURABLE_MAX && t.elapsed() < DURABLE_TIME {
        rec.status = statuses[n % 2];
        rec.updated_at = format!("2026-11-25T10:10:{:02}.{:03}Z", n / 1000 % 60, n % 1000);
        store.upsert_run(&rec).expect("durable upsert");
        n += 1;
    }
    let sqlite = rate(n as f64, t.elapsed());

    // Baseline: append one line and fdatasync, as a durable log of transitions would.
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("transitions.jsonl"))
        .expect("open transitions log");
    let line = serde_json::to_string(&rec).expect("encode run") + "\n";
    let t = Instant::now();
    let mut m = 0;
    while m < DURABLE_MAX && t.elapsed() < DURABLE_TIME {
        file.write_all(line.as_bytes()).expect("append");
        file.sync_data().expect("fdatasync");
        m += 1;
    }
    let append = rate(m as f64, t.elapsed());

    Row {
        metric: "durable transitions (sync FULL)",
        value: fmt_rate(sqlite, "/s"),
        baseline: format!("append+fsync {}", fmt_rate(append, "/s")),
        ratio: format!("{:.2}x", sqlite / append),
        target: ">= 500 /s",
        pass: sqlite >= 500.0,
    }
}

/// Builds a DB whose one run has `n` events (batches of 10k: this is setup, not measured).
fn log_of(dir: &Path, name: &str, n: u64) -> (AuditStore, RunId) {
    let store = AuditStore::open(&dir.join(name)).expect("open bench DB");
    let rec = run(3);
    store.upsert_run(&rec).expect("record run");
    let mut start = 0;
    while start < n {
        let end = (start + 10_000).min(n);
        let batch: Vec<Event> = (start..end).map(event).collect();
        store.ingest_events(&rec.run_id, &batch).expect("ingest");
        start = end;
    }
    (store, rec.run_id)
}

/// Median time of a page of [`PAGE`] events starting in the middle of the log.
fn page_time(store: &AuditStore, run_id: &RunId, n: u64) -> Duration {
    let mut times = Vec::with_capacity(301);
    for i in 0..301u64 {
        // Vary the cursor a little around the middle so every query is a real seek.
        let cursor = n / 2 - (PAGE as u64) + (i * 7) % (PAGE as u64);
        let t = Instant::now();
        let page = store.events_from(run_id, cursor, PAGE).expect("page");
        times.push(t.elapsed());
        assert_eq!(page.len(), PAGE);
        assert_eq!(page[0].idx, cursor);
    }
    times.sort();
    times[times.len() / 2]
}

fn cursor(dir: &Path) -> Row {
    let t = Instant::now();
    let (big, big_id) = log_of(dir, "big.sqlite", BIG_LOG);
    println!(
        "setup: {BIG_LOG} events ingested in {:.1} s (batches of 10k)",
        t.elapsed().as_secs_f64()
    );
    let (small, small_id) = log_of(dir, "small.sqlite", SMALL_LOG);
    let t_big = page_time(&big, &big_id, BIG_LOG);
    let t_small = page_time(&small, &small_id, SMALL_LOG);
    let t = Instant::now();
    let count = big.event_count(&big_id).expect("count");
    println!(
        "info: event_count over {count} events takes {:.3} ms\n",
        t.elapsed().as_secs_f64() * 1e3
    );
    let ratio = t_big.as_secs_f64() / t_small.as_secs_f64().max(1e-9);
    Row {
        metric: "cursor page of 100, middle",
        value: format!("@1M {:.0} us", t_big.as_secs_f64() * 1e6),
        baseline: format!("@1k {:.0} us", t_small.as_secs_f64() * 1e6),
        ratio: format!("{ratio:.2}x"),
        target: "within 2x",
        pass: ratio <= 2.0,
    }
}

/// The 3,000-line file of case 4 and its lint fix: `ruff format` spacing in eight functions.
fn big_edit() -> (String, String) {
    let mut before = String::from("\"\"\"Generated: many small functions.\"\"\"\n");
    let mut i = 0;
    while before.lines().count() + 4 <= 3000 {
        let body = if i % 90 == 45 {
            format!("x+{i}")
        } else {
            format!("x + {i}")
        };
        before.push_str(&format!("\n\ndef f{i}(x):\n    return {body}\n"));
        i += 1;
    }
    let after = (0..i).step_by(1).fold(before.clone(), |t, i| {
        t.replace(&format!("return x+{i}\n"), &format!("return x + {i}\n"))
    });
    (before, after)
}

/// Bytes of every column of the approval rows of `run_id`, and of `payload_json` alone.
fn row_bytes(db: &Path, run_id: &RunId) -> (i64, i64) {
    let conn = rusqlite::Connection::open(db).expect("open the bench DB");
    let cols = conn
        .prepare("SELECT name FROM pragma_table_info('approvals')")
        .and_then(|mut s| {
            s.query_map([], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()
        })
        .expect("approvals columns");
    let sum: Vec<String> = cols
        .iter()
        .map(|c| format!("ifnull(length(CAST(\"{c}\" AS BLOB)), 0)"))
        .collect();
    conn.query_row(
        &format!(
            "SELECT sum({}), sum(length(CAST(payload_json AS BLOB))) FROM approvals WHERE run_id = ?1",
            sum.join(" + ")
        ),
        [run_id.as_str()],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .expect("row size")
}

fn storage(dir: &Path) -> Vec<Row> {
    let (before, after) = big_edit();
    let file = "pkg/big.py";
    let root = dir.join("storage-repo");
    let repo = git2::Repository::init(&root).expect("init the bench repository");
    std::fs::create_dir_all(root.join("pkg")).expect("mkdir");
    std::fs::write(root.join(file), &before).expect("write the file");
    let mut idx = repo.index().expect("index");
    idx.add_path(Path::new(file)).expect("stage");
    let tree = repo
        .find_tree(idx.write_tree().expect("tree"))
        .expect("tree");
    let sig = git2::Signature::now("bench", "bench@localhost").expect("signature");
    repo.commit(Some("HEAD"), &sig, &sig, "base", &tree, &[])
        .expect("commit");
    let objects = |repo: &git2::Repository| -> u64 {
        fn walk(d: &Path) -> u64 {
            std::fs::read_dir(d)
                .map(|it| {
                    it.flatten()
                        .map(|e| match e.file_type() {
                            Ok(t) if t.is_dir() => walk(&e.path()),
                            _ => e.metadata().map(|m| m.len()).unwrap_or(0),
                        })
                        .sum()
                })
                .unwrap_or(0)
        }
        walk(&repo.path().join("objects"))
    };

    let p = Proposal {
        file_path: file.into(),
        symbol: String::new(),
        before: before.clone(),
        after,
        source: ProposalSource::Command,
        major_bump: false,
    };
    let diff = unified_diff(file, &p.before, &p.after);
    let rec = run(7);
    let request = |content: RecordedEdit| ApprovalRequest {
        approval_id: approval_id("lint_fix", &p),
        run_id: rec.run_id.clone(),
        pack: "lint_fix".into(),
        created_at: "2026-11-25T10:12:00.000Z".into(),
        file_path: file.into(),
        symbol: String::new(),
        risk_score: 40,
        reason: "risk 40 > max_risk 30".into(),
        diff: diff.clone(),
        lines_changed: 16,
        auto_approved: false,
        content,
    };
    let odb_before = objects(&repo);
    let stored = noctune_engine::storage::store_edit(&repo, &p).expect("write the blobs");
    let odb_added = objects(&repo) - odb_before;
    let new = request(RecordedEdit::Stored(stored));
    let blobs = noctune_engine::storage::GitBlobs(&repo);
    assert!(new.verify(&blobs).is_ok(), "the stored request verifies");
    assert_eq!(blobs.id_of(p.before.as_bytes()), {
        let t = repo
            .head()
            .and_then(|h| h.peel_to_tree())
            .expect("HEAD tree");
        t.get_path(Path::new(file)).expect("file").id().to_string()
    });
    let old = request(RecordedEdit::Whole(p.clone()));

    // What the worker writes to `state/approvals/<id>.json`, in each form.
    let new_file = noctune_util::fsx::json_bytes(&new).expect("encode").len();
    let old_file = noctune_util::fsx::json_bytes(&old).expect("encode").len();

    // The audit DB row: this version's store, and a version-1 DB with the row as it wrote it.
    let new_db = dir.join("storage-new.sqlite");
    let store = AuditStore::open(&new_db).expect("open bench DB");
    store.upsert_run(&rec).expect("record run");
    store.upsert_approval(&new).expect("record approval");
    drop(store);
    let old_db = dir.join("storage-old.sqlite");
    {
        let conn = rusqlite::Connection::open(&old_db).expect("open the v1 DB");
        conn.execute_batch(noctune_store::MIGRATIONS[0])
            .expect("v1 schema");
        conn.execute(
            "INSERT INTO runs (run_id, repo_root, pack, profile, status, started_at, updated_at,
                 head_sha, branch, payload_json) VALUES (?1, ?2, ?3, ?4, 'running', ?5, ?5, ?6, ?7, ?8)",
            rusqlite::params![
                rec.run_id.as_str(),
                rec.repo_root,
                rec.pack,
                rec.profile,
                rec.started_at,
                rec.head_sha,
                rec.branch,
                serde_json::to_string(&rec).expect("encode"),
            ],
        )
        .expect("v1 run");
        conn.execute(
            "INSERT INTO approvals (run_id, approval_id, created_at, file_path, symbol,
                 risk_score, reason, diff, payload_json) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            rusqlite::params![
                old.run_id.as_str(),
                old.approval_id.as_str(),
                old.created_at,
                old.file_path,
                old.symbol,
                old.risk_score,
                old.reason,
                old.diff,
                serde_json::to_string(&old).expect("encode"),
            ],
        )
        .expect("v1 row");
    }
    let (new_row, new_payload) = row_bytes(&new_db, &rec.run_id);
    let (old_row, old_payload) = row_bytes(&old_db, &rec.run_id);
    let d = diff.len();
    println!(
        "bytes per approval, lint fix of a 3,000-line file ({} bytes, {d}-byte diff in 8 hunks):",
        before.len()
    );
    println!(
        "  request file: {new_file} (was {old_file}); audit DB row: {new_row}, of which payload_json {new_payload} (was {old_row}, payload_json {old_payload})"
    );
    println!(
        "  git object store: +{odb_added} bytes (the post-image's blob, zlib; the pre-image is the base commit's blob)\n"
    );
    vec![
        Row {
            metric: "request file / approval (3,000 lines)",
            value: format!("{new_file} B"),
            baseline: format!("whole texts {old_file} B"),
            ratio: format!("{:.3}x", new_file as f64 / old_file as f64),
            target: "<= 2x diff + 1 KB",
            pass: new_file <= 2 * d + 1024,
        },
        Row {
            metric: "audit DB row / approval (3,000 lines)",
            value: format!("{new_row} B"),
            baseline: format!("whole texts {old_row} B"),
            ratio: format!("{:.3}x", new_row as f64 / old_row as f64),
            target: "<= 2x diff",
            pass: new_row as usize <= 2 * d,
        },
    ]
}

fn print_table(rows: &[Row]) {
    let head = [
        "metric",
        "value",
        "baseline (same run)",
        "ratio",
        "target",
        "result",
    ];
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            [
                r.metric.to_string(),
                r.value.clone(),
                r.baseline.clone(),
                r.ratio.clone(),
                r.target.to_string(),
                if r.pass { "PASS".into() } else { "MISS".into() },
            ]
        })
        .collect();
    let mut width = head.map(str::len);
    for row in &cells {
        for (w, c) in width.iter_mut().zip(row) {
            *w = (*w).max(c.len());
        }
    }
    let line = |row: &[String]| {
        let parts: Vec<String> = row
            .iter()
            .zip(width)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("| {} |", parts.join(" | "));
    };
    line(&head.map(String::from));
    let rule: Vec<String> = width.iter().map(|w| "-".repeat(*w)).collect();
    println!("|-{}-|", rule.join("-|-"));
    for row in &cells {
        line(row);
    }
}
