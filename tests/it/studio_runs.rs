//! Runs through the facade, in process (support/harness.rs): the same calls every surface
//! makes, with the rules the facade decides once (limits, roots, supervision, error codes).

use crate::support::harness::Harness;
use noctune_studio::{
    ApprovalStatus, Decision, ErrorCode, PatchsetStatus, RunStatus, StartRequest, Studio,
};
use std::time::Duration;

#[test]
fn a_run_waits_for_a_decision_then_commits_and_the_reason_limit_holds() {
    let h = Harness::new("pyproj", &[]);
    let rec = h.start("lint_fix");
    assert_eq!(rec.status, RunStatus::Queued);
    let run_id = rec.run_id.to_string();
    h.wait_status(&run_id, RunStatus::WaitingApproval, 60);
    let approvals = h.approvals(&run_id);
    let pending: Vec<_> = approvals
        .iter()
        .filter(|a| a.status == ApprovalStatus::Pending)
        .collect();
    assert_eq!(pending.len(), 1, "{approvals:#?}");
    let id = pending[0].approval_id.clone();

    // Over the limit: refused with its own code, and nothing is decided.
    let long = "x".repeat(noctune_studio::limits::MAX_REASON_BYTES + 1);
    let e = h
        .studio
        .decide(&run_id, &id, Decision::Approve, &long, "test")
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::TooLarge, "{e:?}");
    assert!(h.approvals(&run_id).iter().all(|a| a.decision.is_none()));

    let e = Studio::parse_decision("maybe").unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidArguments);
    let e = h
        .studio
        .decide(
            &run_id,
            "0123456789abcdef0123",
            Decision::Approve,
            "",
            "test",
        )
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::UnknownApproval, "{e:?}");

    let d = h
        .studio
        .decide(&run_id, &id, Decision::Approve, "reviewed", "test:harness")
        .unwrap();
    assert_eq!(d.decided_by, "test:harness");
    let again = h
        .studio
        .decide(&run_id, &id, Decision::Reject, "", "test")
        .unwrap_err();
    assert_eq!(again.code, ErrorCode::AlreadyDecided);

    // `wait` follows the events to the end and hands back the final record.
    let mut seen = Vec::new();
    let done = h
        .studio
        .wait(&run_id, |evs| seen.extend(evs.iter().map(|e| e.idx)))
        .unwrap();
    assert_eq!(done.status, RunStatus::Done, "{done:#?}");
    let idx: Vec<u64> = (0..seen.len() as u64).collect();
    assert_eq!(seen, idx, "every event once, in order");

    let plan = h.studio.patchsets(&run_id).unwrap();
    assert!(!plan.patchsets.is_empty());
    assert!(
        plan.patchsets
            .iter()
            .all(|p| p.status == PatchsetStatus::Committed),
        "{plan:#?}"
    );
    let commits = h.studio.commits(&done).unwrap();
    assert_eq!(commits.len(), plan.patchsets.len());
    assert!(
        commits
            .iter()
            .all(|c| c.summary.contains("Noctune Studio: lint_fix"))
    );

    let e = h.studio.stop(&run_id, None).unwrap_err();
    assert_eq!(e.code, ErrorCode::WrongState);
}

#[test]
fn the_supervisor_in_this_process_says_how_a_killed_worker_died() {
    let h = Harness::new("pyproj", &[]);
    let rec = h.start("lint_fix");
    let run_id = rec.run_id.to_string();
    let running = h.wait_for(&run_id, 60, "a worker pid", |r| r.worker_pid.is_some());
    let pid = running.worker_pid.unwrap();
    // SAFETY: kill(2) on the worker this test started.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGKILL);
    }
    let started = std::time::Instant::now();
    let end = h.studio.wait(&run_id, |_| {}).unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(end.status, RunStatus::Failed);
    let error = end.error.unwrap_or_default();
    assert!(error.contains("killed by signal 9"), "{error}");
}

#[test]
fn stop_then_resume_goes_on_from_the_recorded_state() {
    let h = Harness::new("pyproj", &[]);
    let run_id = h.start("lint_fix").run_id.to_string();
    h.wait_status(&run_id, RunStatus::WaitingApproval, 60);
    let stopped = h
        .studio
        .stop(&run_id, Some(Duration::from_secs(5)))
        .unwrap();
    assert_eq!(stopped.status, RunStatus::Stopped);
    let resumed = h.studio.resume(&run_id).unwrap();
    assert_eq!(resumed.status, RunStatus::Queued);
    h.wait_status(&run_id, RunStatus::WaitingApproval, 60);
    let kinds: Vec<String> = h.events(&run_id).into_iter().map(|e| e.kind).collect();
    assert!(kinds.iter().any(|k| k == "stopped"), "{kinds:?}");
    h.studio
        .stop(&run_id, Some(Duration::from_secs(5)))
        .unwrap();
}

#[test]
fn bad_requests_change_nothing() {
    let h = Harness::new("pyproj", &[]);
    let relative = h
        .studio
        .start_run(&StartRequest {
            repo: "relative/dir".into(),
            pack: "lint_fix".into(),
            profile: None,
        })
        .unwrap_err();
    assert_eq!(relative.code, ErrorCode::InvalidArguments);
    let pack = h
        .studio
        .start_run(&StartRequest {
            repo: h.repo.path(),
            pack: "no_such_pack".into(),
            profile: None,
        })
        .unwrap_err();
    assert_eq!(pack.code, ErrorCode::UnknownPack);
    assert!(pack.message.contains("lint_fix"), "{}", pack.message);
    for id in ["20990101T000000Z-00000000", "../etc", ""] {
        let e = h.studio.status(id).unwrap_err();
        assert_eq!(e.code, ErrorCode::UnknownRun, "{id:?}: {e:?}");
    }
    assert!(h.studio.list_runs(Some(&h.repo.path())).unwrap().is_empty());
}

#[tokio::test]
async fn configuration_and_model_health_come_from_the_facade() {
    let h = Harness::new(
        "pyproj",
        &[(
            "noctune.toml",
            "default_profile = \"down\"\n\n[model_profiles.down]\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"m\"\n",
        )],
    );
    let cfg = h.studio.repo_config(&h.repo.path()).unwrap();
    assert_eq!(cfg.default_profile, "down");
    assert!(cfg.packs.iter().any(|p| p.name == "lint_fix"));
    let report = h.studio.config_report(&h.repo.path()).unwrap();
    assert_eq!(report.audit_db, h.db());
    assert!(report.policy_packs.contains_key("typing_pass"));
    let health = h.studio.model_health(&h.repo.path(), None).await.unwrap();
    assert!(!health.ok);
    assert!(
        health.start_command.contains("--port 9"),
        "{}",
        health.start_command
    );
    assert!(health.message.is_some());
    let e = h
        .studio
        .model_health(&h.repo.path(), Some("nope"))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::UnknownProfile);
}
