//! The audit DB on a real SQLite file: schema and migrations, refusal of files it must not
//! touch, exact round trips, idempotent ingest, cursor pages, final decisions, several writers,
//! and rebuilding a run's state from the DB alone.

use noctune_core::{
    ApprovalDecision, ApprovalRequest, Decision, Event, Proposal, ProposalSource, RecordedEdit,
    ResumePolicy, RunId, RunRecord, RunStatus, approval_id,
};
use noctune_store::{AuditStore, GrantRecord, StoreError};
use serde_json::json;
use std::path::{Path, PathBuf};

fn db(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("data").join("noctune").join("audit.sqlite")
}

fn run_id(n: u32) -> RunId {
    RunId::parse(&format!("20261125T1010{:02}Z-{n:08x}", n % 60)).unwrap()
}

fn run(n: u32, repo: &str, status: RunStatus) -> RunRecord {
    RunRecord {
        run_id: run_id(n),
        status,
        started_at: format!("2026-11-25T10:10:{:02}.000Z", n % 60),
        updated_at: "2026-11-25T10:11:00.000Z".into(),
        ended_at: None,
        repo_root: repo.into(),
        pack: "lint_fix".into(),
        profile: "default".into(),
        branch: format!("noctune/lint_fix/{}", run_id(n)),
        head_sha: "0123456789abcdef0123456789abcdef01234567".into(),
        error: None,
        resume_policy: ResumePolicy::Continue,
        worker_pid: Some(4242),
        worker_start_time: Some(987_654),
        stage: "propose".into(),
        commits: None,
        reason: None,
        summary: None,
    }
}

fn event(idx: u64) -> Event {
    Event {
        idx,
        ts: format!("2026-11-25T10:10:{:02}.{:03}Z", idx / 1000 % 60, idx % 1000),
        kind: "tool_finished".into(),
        payload: json!({"tool": "ruff", "file": format!("src/m{idx}.py"), "ok": idx.is_multiple_of(2),
                        "nested": {"f": 1.5, "list": [1, null, "x"]}}),
    }
}

fn request(run: &RunId, file: &str, risk: u8) -> ApprovalRequest {
    let proposal = Proposal {
        file_path: file.into(),
        symbol: "main".into(),
        before: "def main():\n    pass\n".into(),
        after: "def main() -> None:\n    pass\n".into(),
        source: ProposalSource::Llm,
        major_bump: false,
    };
    ApprovalRequest {
        approval_id: approval_id("lint_fix", &proposal),
        run_id: run.clone(),
        pack: "lint_fix".into(),
        created_at: "2026-11-25T10:12:00.000Z".into(),
        file_path: file.into(),
        symbol: "main".into(),
        risk_score: risk,
        reason: "risk 40 > max_risk 30".into(),
        diff: "-def main():\n+def main() -> None:\n".into(),
        lines_changed: 2,
        auto_approved: false,
        content: RecordedEdit::Whole(proposal),
    }
}

fn decision(req: &ApprovalRequest, d: Decision, at: &str) -> ApprovalDecision {
    ApprovalDecision {
        approval_id: req.approval_id.clone(),
        decision: d,
        decided_at: at.into(),
        decided_by: "alice".into(),
        reason: "looks right".into(),
        file_path: None,
        before_sha256: None,
        after_sha256: None,
    }
}

fn raw(path: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).unwrap()
}

#[test]
fn migrations_create_the_schema_and_reopen_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    let store = AuditStore::open(&path).unwrap();
    assert_eq!(store.path(), path);
    store
        .upsert_run(&run(1, "/repo", RunStatus::Running))
        .unwrap();
    drop(store);

    let conn = raw(&path);
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, noctune_store::MIGRATIONS.len() as i64);
    let mut tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    tables.sort();
    assert_eq!(
        tables,
        ["approvals", "decisions", "events", "grants", "runs"]
    );
    drop(conn);

    for _ in 0..3 {
        let store = AuditStore::open(&path).unwrap();
        assert_eq!(
            store.list_runs(None, 10).unwrap().len(),
            1,
            "data survives a reopen"
        );
    }
    let version: i64 = raw(&path)
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, noctune_store::MIGRATIONS.len() as i64);
}

#[test]
fn a_newer_schema_version_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("future.sqlite");
    raw(&path)
        .execute_batch("CREATE TABLE x(a); PRAGMA user_version = 99;")
        .unwrap();

    let err = AuditStore::open(&path).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::SchemaTooNew {
                found: 99,
                known,
                ..
            } if known == noctune_store::MIGRATIONS.len() as i64
        ),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(
        msg.contains("newer") && msg.contains("upgrade noctune"),
        "{msg}"
    );

    let conn = raw(&path);
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "delete", "a refused DB is not switched to WAL");
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 99);
}

#[test]
fn a_file_that_is_not_sqlite_gives_a_clear_error_and_is_not_modified() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.sqlite");
    let text = "these are my notes, not a database\n".repeat(20);
    std::fs::write(&path, &text).unwrap();

    let err = AuditStore::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::NotADatabase { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(
        msg.contains("not an SQLite database") && msg.contains("NOCTUNE_STUDIO_DB"),
        "{msg}"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
}

#[test]
fn a_folder_in_place_of_the_db_gives_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = AuditStore::open(dir.path()).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(&dir.path().display().to_string()), "{msg}");
    assert!(msg.contains("NOCTUNE_STUDIO_DB"), "{msg}");
}

#[test]
fn run_records_round_trip_exactly_and_list_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let store = AuditStore::open(&db(&dir)).unwrap();
    assert_eq!(store.get_run(&run_id(9)).unwrap(), None);

    let mut a = run(1, "/repo/a", RunStatus::Queued);
    a.worker_pid = None;
    a.worker_start_time = None;
    store.upsert_run(&a).unwrap();
    assert_eq!(store.get_run(&a.run_id).unwrap(), Some(a.clone()));

    a.status = RunStatus::Failed;
    a.ended_at = Some("2026-11-25T10:20:00.000Z".into());
    a.error = Some("worker 4242 exited with signal 9 (killed)".into());
    a.resume_policy = ResumePolicy::Never;
    store.upsert_run(&a).unwrap();
    assert_eq!(
        store.get_run(&a.run_id).unwrap(),
        Some(a.clone()),
        "an update replaces the row"
    );

    let b = run(2, "/repo/b", RunStatus::Running);
    let c = run(3, "/repo/a", RunStatus::Done);
    store.upsert_run(&b).unwrap();
    store.upsert_run(&c).unwrap();

    let all: Vec<RunId> = store
        .list_runs(None, 10)
        .unwrap()
        .into_iter()
        .map(|r| r.run_id)
        .collect();
    assert_eq!(all, [c.run_id.clone(), b.run_id.clone(), a.run_id.clone()]);
    let in_a = store.list_runs(Some("/repo/a"), 10).unwrap();
    assert_eq!(in_a, [c.clone(), a.clone()]);
    assert_eq!(store.list_runs(None, 1).unwrap(), [c]);
    assert!(store.list_runs(Some("/elsewhere"), 10).unwrap().is_empty());
    assert!(store.list_runs(None, 0).unwrap().is_empty());
}

#[test]
fn events_ingest_idempotently_and_cursor_pages_are_contiguous() {
    let dir = tempfile::tempdir().unwrap();
    let store = AuditStore::open(&db(&dir)).unwrap();
    let r = run(1, "/repo", RunStatus::Running);
    store.upsert_run(&r).unwrap();
    let other = run(2, "/repo", RunStatus::Running);
    store.upsert_run(&other).unwrap();

    let events: Vec<Event> = (0..300).map(event).collect();
    assert_eq!(store.ingest_events(&r.run_id, &events[..250]).unwrap(), 250);
    assert_eq!(
        store.ingest_events(&r.run_id, &events[100..]).unwrap(),
        50,
        "overlap skipped"
    );
    assert_eq!(
        store.ingest_events(&r.run_id, &events).unwrap(),
        0,
        "a full re-ingest adds nothing"
    );
    assert_eq!(store.ingest_events(&r.run_id, &[]).unwrap(), 0);
    assert_eq!(store.ingest_events(&other.run_id, &events[..5]).unwrap(), 5);
    assert_eq!(store.event_count(&r.run_id).unwrap(), 300);
    assert_eq!(store.event_count(&other.run_id).unwrap(), 5);
    assert_eq!(store.event_count(&run_id(77)).unwrap(), 0, "unknown run");
    let stored: i64 = raw(store.path())
        .query_row(
            "SELECT count(*) FROM events WHERE run_id = ?1",
            [r.run_id.as_str()],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(stored, 300, "the kept counter matches the rows");

    let mut cursor = 0;
    let mut seen = Vec::new();
    loop {
        let page = store.events_from(&r.run_id, cursor, 64).unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 64);
        assert_eq!(page[0].idx, cursor, "a page starts at the cursor");
        cursor = page.last().unwrap().idx + 1;
        seen.extend(page);
    }
    assert_eq!(
        seen, events,
        "pages are contiguous and events round-trip exactly"
    );
    assert_eq!(
        store.events_from(&r.run_id, 150, 3).unwrap(),
        events[150..153]
    );
    assert!(store.events_from(&r.run_id, 300, 10).unwrap().is_empty());
    assert!(
        store
            .events_from(&r.run_id, u64::MAX, 10)
            .unwrap()
            .is_empty()
    );
    assert!(store.events_from(&run_id(77), 0, 10).unwrap().is_empty());
}

#[test]
fn writes_for_an_unknown_run_say_to_record_the_run_first() {
    let dir = tempfile::tempdir().unwrap();
    let store = AuditStore::open(&db(&dir)).unwrap();
    let id = run_id(5);
    let err = store.ingest_events(&id, &[event(0)]).unwrap_err();
    assert!(matches!(err, StoreError::UnknownRun { .. }), "{err:?}");
    assert!(err.to_string().contains("upsert_run"), "{err}");
    let err = store
        .upsert_approval(&request(&id, "a.py", 10))
        .unwrap_err();
    assert!(matches!(err, StoreError::UnknownRun { .. }), "{err:?}");
}

#[test]
fn approvals_and_decisions_round_trip_and_a_decision_is_final() {
    let dir = tempfile::tempdir().unwrap();
    let store = AuditStore::open(&db(&dir)).unwrap();
    let r = run(1, "/repo", RunStatus::WaitingApproval);
    store.upsert_run(&r).unwrap();
    let z = request(&r.run_id, "src/z.py", 70);
    let a = request(&r.run_id, "src/a.py", 40);
    let mut m = request(&r.run_id, "src/m.py", 55);
    m.auto_approved = true;
    for req in [&z, &a, &m] {
        store.upsert_approval(req).unwrap();
    }
    store.upsert_approval(&a).unwrap(); // a re-sent request is harmless
    assert_eq!(
        store.approvals(&r.run_id).unwrap(),
        [a.clone(), m.clone(), z.clone()]
    );

    let dz = decision(&z, Decision::Reject, "2026-11-25T10:13:00.000Z");
    let da = decision(&a, Decision::Approve, "2026-11-25T10:14:00.000Z");
    store.record_decision(&r.run_id, &dz).unwrap();
    store.record_decision(&r.run_id, &da).unwrap();
    assert_eq!(
        store.decisions(&r.run_id).unwrap(),
        [dz.clone(), da.clone()]
    );

    let again = decision(&a, Decision::Reject, "2026-11-25T10:15:00.000Z");
    let err = store.record_decision(&r.run_id, &again).unwrap_err();
    match &err {
        StoreError::AlreadyDecided {
            approval_id,
            existing,
            decided_by,
            ..
        } => {
            assert_eq!(approval_id, a.approval_id.as_str());
            assert_eq!(existing, "approve");
            assert_eq!(decided_by, "alice");
        }
        other => panic!("expected AlreadyDecided, got {other:?}"),
    }
    assert!(err.to_string().contains("already decided"), "{err}");
    let err = store.record_decision(&r.run_id, &da).unwrap_err();
    assert!(
        matches!(err, StoreError::AlreadyDecided { .. }),
        "even an identical decision"
    );
    assert_eq!(
        store.decisions(&r.run_id).unwrap(),
        [dz, da],
        "the first decision stands"
    );

    let stray = request(&r.run_id, "src/never_requested.py", 1);
    let err = store
        .record_decision(
            &r.run_id,
            &decision(&stray, Decision::Approve, "2026-11-25T10:16:00Z"),
        )
        .unwrap_err();
    assert!(matches!(err, StoreError::UnknownApproval { .. }), "{err:?}");
}

#[test]
fn grants_are_appended_and_listed_newest_first_per_repository() {
    let dir = tempfile::tempdir().unwrap();
    let store = AuditStore::open(&db(&dir)).unwrap();
    let g = |repo: &str, action: &str, scope: &str, n: u32| GrantRecord {
        repo_root: repo.into(),
        ts: format!("2026-11-25T10:00:{n:02}.000Z"),
        actor: "alice".into(),
        action: action.into(),
        scope: scope.into(),
        tool_class: "write".into(),
        tool: "writeFile".into(),
        path: n.is_multiple_of(2).then(|| format!("src/f{n}.py")),
        session_id: Some("s-1".into()),
    };
    let records = [
        g("/a", "granted", "always", 1),
        g("/b", "denied", "once", 2),
        g("/a", "used", "session", 3),
    ];
    for r in &records {
        store.record_grant(r).unwrap();
    }
    assert_eq!(
        store.grants("/a", 10).unwrap(),
        [records[2].clone(), records[0].clone()]
    );
    assert_eq!(store.grants("/a", 1).unwrap(), [records[2].clone()]);
    assert_eq!(store.grants("/b", 10).unwrap(), [records[1].clone()]);

    let err = store
        .record_grant(&g("/a", "stolen", "always", 4))
        .unwrap_err();
    assert!(
        err.to_string().contains("granted, denied, revoked, used"),
        "{err}"
    );
    let err = store
        .record_grant(&g("/a", "granted", "forever", 4))
        .unwrap_err();
    assert!(err.to_string().contains("once, session, always"), "{err}");
}

#[test]
fn two_handles_interleave_writes_without_lock_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    AuditStore::open(&path).unwrap();
    // Each thread has its own connection, as a worker process and the CLI would.
    let writers: Vec<_> = (0..2u32)
        .map(|w| {
            let path = path.clone();
            std::thread::spawn(move || {
                let store = AuditStore::open(&path).unwrap();
                let mut rec = run(w + 1, "/repo", RunStatus::Running);
                store.upsert_run(&rec).unwrap();
                for i in 0..100u64 {
                    let batch: Vec<Event> = (i * 10..i * 10 + 10).map(event).collect();
                    assert_eq!(store.ingest_events(&rec.run_id, &batch).unwrap(), 10);
                    rec.status = if i % 2 == 0 {
                        RunStatus::WaitingApproval
                    } else {
                        RunStatus::Running
                    };
                    store.upsert_run(&rec).unwrap();
                    let req = request(&rec.run_id, &format!("src/f{i}.py"), 20);
                    store.upsert_approval(&req).unwrap();
                    let at = format!("2026-11-25T10:20:{:02}.{i:03}Z", w);
                    store
                        .record_decision(&rec.run_id, &decision(&req, Decision::Approve, &at))
                        .unwrap();
                    // Read the other writer's rows while it writes (WAL: no reader blocking).
                    store.list_runs(Some("/repo"), 10).unwrap();
                }
                rec.run_id
            })
        })
        .collect();
    let ids: Vec<RunId> = writers.into_iter().map(|t| t.join().unwrap()).collect();
    let store = AuditStore::open(&path).unwrap();
    for id in &ids {
        assert_eq!(store.event_count(id).unwrap(), 1000);
        assert_eq!(store.approvals(id).unwrap().len(), 100);
        assert_eq!(store.decisions(id).unwrap().len(), 100);
        assert_eq!(
            store.get_run(id).unwrap().map(|r| r.status),
            Some(RunStatus::Running)
        );
    }
}

#[test]
fn status_approvals_and_decisions_rebuild_from_sqlite_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    let mut rec = run(1, "/gone/repo", RunStatus::Queued);
    let (a, b) = (
        request(&rec.run_id, "a.py", 40),
        request(&rec.run_id, "b.py", 60),
    );
    {
        let store = AuditStore::open(&path).unwrap();
        for status in [RunStatus::Running, RunStatus::WaitingApproval] {
            rec.status = status;
            store.upsert_run(&rec).unwrap();
        }
        store.upsert_approval(&a).unwrap();
        store.upsert_approval(&b).unwrap();
        store
            .record_decision(
                &rec.run_id,
                &decision(&a, Decision::Approve, "2026-11-25T10:30:00Z"),
            )
            .unwrap();
        store
            .ingest_events(&rec.run_id, &(0..10).map(event).collect::<Vec<_>>())
            .unwrap();
    }
    // No run folder, no run.json: only the DB file (as after `.noctune_cache` is deleted).
    let store = AuditStore::open(&path).unwrap();
    let rebuilt = store
        .get_run(&rec.run_id)
        .unwrap()
        .expect("run is in the DB");
    assert_eq!(rebuilt, rec);
    assert_eq!(rebuilt.status, RunStatus::WaitingApproval);
    let approvals = store.approvals(&rec.run_id).unwrap();
    let decisions = store.decisions(&rec.run_id).unwrap();
    let pending: Vec<&str> = approvals
        .iter()
        .filter(|r| !decisions.iter().any(|d| d.approval_id == r.approval_id))
        .map(|r| r.file_path.as_str())
        .collect();
    assert_eq!(
        pending,
        ["b.py"],
        "the approval still waiting is known from the DB alone"
    );
    assert_eq!(decisions.len(), 1);
    assert_eq!(decisions[0].decision, Decision::Approve);

    // The query columns agree with the payloads, so SQL alone (e.g. sqlite3 on the CLI) can
    // answer the same questions.
    let conn = raw(&path);
    let status: String = conn
        .query_row(
            "SELECT status FROM runs WHERE run_id = ?1",
            [rec.run_id.as_str()],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(status, "waiting_approval");
    let (file, verdict): (String, String) = conn
        .query_row(
            "SELECT a.file_path, d.decision FROM approvals a JOIN decisions d
             USING (run_id, approval_id) WHERE run_id = ?1",
            [rec.run_id.as_str()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((file.as_str(), verdict.as_str()), ("a.py", "approve"));
}

#[test]
fn the_store_can_move_between_threads() {
    fn assert_send<T: Send>() {}
    assert_send::<AuditStore>();
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Mutex::new(AuditStore::open(&db(&dir)).unwrap());
    std::thread::scope(|s| {
        s.spawn(|| {
            store
                .lock()
                .unwrap()
                .upsert_run(&run(1, "/r", RunStatus::Queued))
                .unwrap()
        });
    });
    assert_eq!(store.lock().unwrap().list_runs(None, 5).unwrap().len(), 1);
}

#[test]
fn several_handles_opening_a_fresh_db_at_once_migrate_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    let barrier = std::sync::Barrier::new(4);
    std::thread::scope(|s| {
        for w in 0..4u32 {
            let (path, barrier) = (&path, &barrier);
            s.spawn(move || {
                barrier.wait();
                let store = AuditStore::open(path).unwrap();
                store
                    .upsert_run(&run(w + 1, "/repo", RunStatus::Queued))
                    .unwrap();
            });
        }
    });
    let store = AuditStore::open(&path).unwrap();
    assert_eq!(store.list_runs(None, 10).unwrap().len(), 4);
    let version: i64 = raw(&path)
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, noctune_store::MIGRATIONS.len() as i64);
}
