//! The engine's calls, used by every surface (CLI, chat tools, HTTP, LSP, MCP): start,
//! supervise, status with a liveness check, events, approvals, decide, stop, resume.

use super::events::{EventLog, read_events};
use super::paths::{RunPaths, ensure_cache_dir};
use super::process;
use super::records::{full_ingest, load_decision, load_plan, load_request, load_requests};
use super::runfile::{self, RunFileError};
use noctune_core::approval::Tampered;
use noctune_core::event::EventPayload;
use noctune_core::{
    ApprovalDecision, Decision, ErrorCode, Event, IdError, OpError, ResumePolicy, RunId, RunRecord,
    RunStatus,
};
pub use noctune_core::{ApprovalView, StartRequest};
use noctune_store::{AuditStore, StoreError};
use noctune_util::{fsx, time};

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Id(#[from] IdError),
    #[error("unknown run {0}: no such run in the audit DB ({1}); list the runs to see their ids")]
    UnknownRun(String, String),
    #[error(
        "unknown pack {pack:?}; known packs: {known}. Define your own under [policy_packs.<name>] in noctune.toml"
    )]
    UnknownPack { pack: String, known: String },
    #[error("unknown model profile {profile:?}; known profiles: {known}")]
    UnknownProfile { profile: String, known: String },
    #[error(transparent)]
    Git(#[from] noctune_git::GitError),
    #[error(transparent)]
    Config(#[from] noctune_config::ConfigError),
    #[error(
        "{repo} is outside the allowed roots ({roots}); set NOCTUNE_STUDIO_ALLOWED_ROOTS to include it"
    )]
    OutsideRoots { repo: String, roots: String },
    #[error(
        "run {run_id} has no approval {approval_id}; list the run's approvals to see their ids"
    )]
    UnknownApproval { run_id: String, approval_id: String },
    #[error("approval {approval_id} was already decided: {decision} by {by} at {at}")]
    AlreadyDecided {
        approval_id: String,
        decision: String,
        by: String,
        at: String,
    },
    #[error("approval {0} was auto-approved by the pack's rules; there is nothing to decide")]
    AutoApproved(String),
    #[error(
        "{0}. Nothing was decided: the edit that would be applied is not the one proposed, so the run will not apply it; start a new run"
    )]
    Tampered(#[from] Tampered),
    #[error("run {run_id} is {status}; {what}")]
    WrongState {
        run_id: String,
        status: RunStatus,
        what: String,
    },
    #[error(transparent)]
    RunFile(#[from] RunFileError),
    #[error("audit DB: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl EngineError {
    /// The one map from engine errors to the codes every surface shows.
    pub fn code(&self) -> ErrorCode {
        match self {
            // a malformed id names no run or approval that could exist
            EngineError::Id(IdError::Run(_)) => ErrorCode::UnknownRun,
            EngineError::Id(_) => ErrorCode::UnknownApproval,
            EngineError::UnknownRun(..) => ErrorCode::UnknownRun,
            EngineError::UnknownPack { .. } => ErrorCode::UnknownPack,
            EngineError::UnknownProfile { .. } => ErrorCode::UnknownProfile,
            EngineError::Git(
                noctune_git::GitError::NotARepo(_) | noctune_git::GitError::Bare(_),
            ) => ErrorCode::NotARepo,
            EngineError::Git(_) => ErrorCode::GitError,
            EngineError::Config(_) => ErrorCode::ConfigError,
            EngineError::OutsideRoots { .. } => ErrorCode::OutsideAllowedRoots,
            EngineError::UnknownApproval { .. } => ErrorCode::UnknownApproval,
            EngineError::AlreadyDecided { .. } | EngineError::AutoApproved(_) => {
                ErrorCode::AlreadyDecided
            }
            EngineError::Tampered(_) => ErrorCode::ApprovalTampered,
            EngineError::WrongState { .. } => ErrorCode::WrongState,
            EngineError::RunFile(_) | EngineError::Store(_) | EngineError::Io(_) => {
                ErrorCode::Internal
            }
        }
    }
}

impl From<EngineError> for OpError {
    fn from(e: EngineError) -> OpError {
        OpError::new(e.code(), e.to_string())
    }
}

/// A run that was started or resumed, with its worker process.
pub struct Started {
    pub record: RunRecord,
    pub paths: RunPaths,
    pub worker: Child,
}

/// Checks that `repo` is inside the allowed roots (canonical paths).
pub fn check_allowed(repo: &Path, roots: &[PathBuf]) -> Result<(), EngineError> {
    if roots.iter().any(|r| repo.starts_with(r)) {
        Ok(())
    } else {
        Err(EngineError::OutsideRoots {
            repo: repo.display().to_string(),
            roots: roots
                .iter()
                .map(|r| r.display().to_string())
                .collect::<Vec<_>>()
                .join(":"),
        })
    }
}

pub fn start_run(store: &AuditStore, req: &StartRequest) -> Result<Started, EngineError> {
    let repo_root = std::fs::canonicalize(&req.repo)
        .map_err(|_| noctune_git::GitError::NotARepo(req.repo.clone()))?;
    let repo = noctune_git::open_repo(&repo_root)?;
    let cfg = noctune_config::load(&repo_root)?;
    check_allowed(&repo_root, &cfg.allowed_roots)?;
    if cfg.pack(&req.pack).is_none() {
        return Err(EngineError::UnknownPack {
            pack: req.pack.clone(),
            known: cfg.packs.keys().cloned().collect::<Vec<_>>().join(", "),
        });
    }
    let profile = req
        .profile
        .clone()
        .unwrap_or_else(|| cfg.default_profile.clone());
    if cfg.profile(Some(&profile)).is_none() {
        return Err(EngineError::UnknownProfile {
            profile,
            known: cfg.profiles.keys().cloned().collect::<Vec<_>>().join(", "),
        });
    }
    ensure_cache_dir(&repo_root)?;
    let run_id = RunId::new_from(&time::now_compact(), fsx::random_bytes::<4>());
    let paths = RunPaths::new(&repo_root, &run_id);
    let now = time::now_rfc3339();
    let record = RunRecord {
        run_id: run_id.clone(),
        status: RunStatus::Queued,
        started_at: now.clone(),
        updated_at: now,
        ended_at: None,
        repo_root: repo_root.display().to_string(),
        pack: req.pack.clone(),
        profile,
        branch: format!("noctune/{}/{}", req.pack, run_id),
        head_sha: noctune_git::head_sha(&repo)?,
        error: None,
        resume_policy: ResumePolicy::Continue,
        worker_pid: None,
        worker_start_time: None,
        stage: "queued".into(),
        commits: None,
        reason: None,
        summary: None,
    };
    runfile::create(&paths, &record)?;
    let log = EventLog::new(&paths);
    let mut evs = vec![log.append(&EventPayload::RunQueued {
        pack: record.pack.clone(),
        profile: record.profile.clone(),
        repo_root: record.repo_root.clone(),
        head_sha: record.head_sha.clone(),
    })?];
    // The run works from HEAD in a worktree of its own: what the user has not committed is not
    // in it, which they should hear before they wonder where an edit of theirs went.
    match noctune_git::uncommitted_changes(&repo) {
        Ok(changed) if !changed.is_empty() => {
            evs.push(log.append(&EventPayload::UncommittedChanges {
                head_sha: record.head_sha.clone(),
                count: changed.len(),
                files: changed.into_iter().take(5).collect(),
            })?)
        }
        Ok(_) => {}
        Err(e) => tracing::warn!("could not read the working tree's status: {e}"),
    }
    store.upsert_run(&record)?;
    store.ingest_events(&run_id, &evs)?;
    spawn(store, paths)
}

fn spawn(store: &AuditStore, paths: RunPaths) -> Result<Started, EngineError> {
    let worker = process::spawn_worker(&paths.run_dir, &paths.worker_log(), store.path())?;
    let pid = worker.id();
    let record = runfile::update(&paths, |r| {
        if r.status == RunStatus::Queued {
            r.worker_pid = Some(pid);
            r.worker_start_time = process::start_time(pid);
        }
        None
    })?;
    store.upsert_run(&record)?;
    Ok(Started {
        record,
        paths,
        worker,
    })
}

/// Waits for the worker to exit. A worker that dies before its run ended makes the run
/// `failed` with an `error` that says how it died (checked every 100 ms, so within 2 s).
pub fn supervise(
    store: &AuditStore,
    started: &mut Started,
    mut on_tick: impl FnMut(),
) -> Result<RunRecord, EngineError> {
    loop {
        on_tick();
        if let Some(status) = started.worker.try_wait()? {
            on_tick();
            let rec = runfile::read(&started.paths)?;
            // A run that ended, or that a resume gave to another worker after this one ended
            // it (resume clears the pid, its spawn sets the new one), is not this worker's.
            if rec.status.is_terminal() || rec.worker_pid != Some(started.worker.id()) {
                return Ok(rec);
            }
            let why = process::describe_exit(status);
            return mark_dead(
                store,
                &started.paths,
                &format!(
                    "{why} (stage {}); logs kept in {}",
                    rec.stage,
                    started.paths.worker_log().display()
                ),
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn mark_dead(store: &AuditStore, paths: &RunPaths, error: &str) -> Result<RunRecord, EngineError> {
    let cur = runfile::read(paths)?;
    if cur.status.is_terminal() {
        return Ok(cur);
    }
    // A stop request that ends in a dead worker is still a stop.
    let to = if cur.status == RunStatus::Stopping {
        RunStatus::Stopped
    } else {
        RunStatus::Failed
    };
    if let Err(e) = close_run(paths, to) {
        tracing::warn!("recording the end of run {}: {e}", paths.run_id);
    }
    let events = EventLog::new(paths);
    if to == RunStatus::Stopped {
        events.append(&EventPayload::Stopped {
            stage: cur.stage.clone(),
            forced: true,
        })?;
    } else {
        events.append(&EventPayload::RunFailed {
            error: error.to_string(),
        })?;
    }
    let rec = runfile::update(paths, |r| {
        if to == RunStatus::Failed {
            r.error = Some(error.to_string());
        }
        Some(to)
    })?;
    events.append(&EventPayload::StatusChanged {
        status: to,
        error: rec.error.clone(),
        resumed: None,
    })?;
    full_ingest(paths, store);
    Ok(rec)
}

/// Where a run lives, found through the audit DB.
pub fn locate(store: &AuditStore, run_id: &str) -> Result<(RunPaths, RunRecord), EngineError> {
    let id = RunId::parse(run_id)?;
    let rec = store.get_run(&id)?.ok_or_else(|| {
        EngineError::UnknownRun(run_id.to_string(), store.path().display().to_string())
    })?;
    let paths = RunPaths::new(Path::new(&rec.repo_root), &id);
    Ok((paths, rec))
}

/// The run's record after the liveness check: `run.json` when it exists (the source of
/// truth), else the audit DB's copy.
pub fn status(store: &AuditStore, run_id: &str) -> Result<RunRecord, EngineError> {
    let (paths, db_rec) = locate(store, run_id)?;
    match runfile::read(&paths) {
        Ok(rec) => check_liveness(store, &paths, rec),
        Err(RunFileError::Missing { .. }) => Ok(db_rec),
        Err(e) => Err(e.into()),
    }
}

/// Marks a live run whose worker is gone (or silent past the lease) as failed.
pub fn check_liveness(
    store: &AuditStore,
    paths: &RunPaths,
    rec: RunRecord,
) -> Result<RunRecord, EngineError> {
    if rec.status.is_terminal() {
        return Ok(rec);
    }
    let lease = noctune_config::load(Path::new(&rec.repo_root))
        .map(|c| c.engine.lease_secs)
        .unwrap_or(30);
    let age_ms = time::parse_rfc3339_millis(&rec.updated_at)
        .map(|t| time::unix_millis() as i64 - t)
        .unwrap_or(0);
    let dead = match rec.worker_pid {
        Some(pid) if !process::is_alive(pid, rec.worker_start_time) => Some(format!(
            "worker process {pid} is gone without finishing the run (found at a status check; last heartbeat {}); logs kept in {}",
            rec.updated_at,
            paths.worker_log().display()
        )),
        _ if age_ms > (lease as i64) * 1000 => Some(format!(
            "no heartbeat for {}s (lease {lease}s): the worker is hung or was never started; logs kept in {}",
            age_ms / 1000,
            paths.worker_log().display()
        )),
        _ => None,
    };
    match dead {
        Some(error) => mark_dead(store, paths, &error),
        None => Ok(rec),
    }
}

pub fn list_runs(store: &AuditStore, repo: Option<&Path>) -> Result<Vec<RunRecord>, EngineError> {
    let repo = match repo {
        Some(r) => Some(
            std::fs::canonicalize(r)
                .map_err(|_| noctune_git::GitError::NotARepo(r.to_path_buf()))?,
        ),
        None => None,
    };
    let repo_s = repo.as_ref().map(|r| r.display().to_string());
    let mut out = Vec::new();
    for rec in store.list_runs(repo_s.as_deref(), 1000)? {
        let paths = RunPaths::new(Path::new(&rec.repo_root), &rec.run_id);
        out.push(match runfile::read(&paths) {
            Ok(r) => check_liveness(store, &paths, r)?,
            Err(_) => rec,
        });
    }
    Ok(out)
}

/// Events with `idx >= cursor` from `events.jsonl`, or from the audit DB when the file is gone.
pub fn events(
    store: &AuditStore,
    run_id: &str,
    cursor: u64,
    limit: usize,
) -> Result<Vec<Event>, EngineError> {
    let (paths, _) = locate(store, run_id)?;
    if paths.events().exists() {
        Ok(read_events(&paths, cursor, limit)?)
    } else {
        Ok(store.events_from(&paths.run_id, cursor, limit)?)
    }
}

/// A run's approvals with their status, from the approval files or, when those are gone,
/// from the audit DB. Each is checked against its id as it is shown ([`ApprovalView::of`]):
/// the diff is computed from the content that would be applied, and a changed request or a
/// decision for other content shows as `tampered`.
pub fn approvals(store: &AuditStore, run_id: &str) -> Result<Vec<ApprovalView>, EngineError> {
    let (paths, _) = locate(store, run_id)?;
    let mut reqs = load_requests(&paths)?;
    let db_decisions = store.decisions(&paths.run_id)?;
    if reqs.is_empty() {
        reqs = store.approvals(&paths.run_id)?;
    }
    let blobs = super::storage::RepoBlobs::of_run(&paths);
    Ok(reqs
        .iter()
        .map(|r| {
            let decision = load_decision(&paths, r.approval_id.as_str()).or_else(|| {
                db_decisions
                    .iter()
                    .find(|d| d.approval_id == r.approval_id)
                    .cloned()
            });
            ApprovalView::of(r, decision, &blobs)
        })
        .collect())
}

/// Records a human decision. The one rule for deciding, whichever surface asks.
pub fn decide(
    store: &AuditStore,
    run_id: &str,
    approval_id: &str,
    decision: Decision,
    reason: &str,
    decided_by: &str,
) -> Result<ApprovalDecision, EngineError> {
    let id = noctune_core::ApprovalId::parse(approval_id)?;
    let rec = status(store, run_id)?;
    let (paths, _) = locate(store, run_id)?;
    if rec.status == RunStatus::Done {
        return Err(EngineError::WrongState {
            run_id: run_id.into(),
            status: rec.status,
            what: "its decisions can no longer change anything; start a new run".into(),
        });
    }
    // Its own file only (the id was checked to be hex above, so it names a file in the
    // approvals folder): reading all of them made deciding n approvals cost n² reads.
    let req = &load_request(&paths, id.as_str()).ok_or_else(|| EngineError::UnknownApproval {
        run_id: run_id.into(),
        approval_id: approval_id.into(),
    })?;
    // What is decided is the content the id names, checked now: a request changed since it
    // was shown is refused rather than decided.
    let bound = req
        .verify(&super::storage::RepoBlobs::of_run(&paths))?
        .binding;
    if req.auto_approved {
        return Err(EngineError::AutoApproved(approval_id.into()));
    }
    let already = |d: ApprovalDecision| EngineError::AlreadyDecided {
        approval_id: approval_id.into(),
        decision: d.decision.as_str().into(),
        by: d.decided_by,
        at: d.decided_at,
    };
    if let Some(d) = load_decision(&paths, approval_id) {
        return Err(already(d));
    }
    let d = ApprovalDecision::new(
        id,
        bound,
        decision,
        time::now_rfc3339(),
        decided_by.to_string(),
        reason.to_string(),
    );
    // Write-once: the decision file is linked into place, which fails if another decision
    // got there first, so two surfaces deciding at once cannot both win.
    let target = paths.decision(approval_id);
    let tmp = paths
        .approvals_dir()
        .join(format!(".{approval_id}.{}.tmp", std::process::id()));
    fsx::write_json_atomic(&tmp, &d)?;
    let linked = std::fs::hard_link(&tmp, &target);
    let _ = std::fs::remove_file(&tmp);
    if let Err(e) = linked {
        if e.kind() == std::io::ErrorKind::AlreadyExists
            && let Some(d) = load_decision(&paths, approval_id)
        {
            return Err(already(d));
        }
        return Err(e.into());
    }
    // The decision's approval must be in the DB first (a worker's ingest may have failed).
    store.upsert_approval(req)?;
    store.record_decision(&paths.run_id, &d)?;
    Ok(d)
}

/// Asks a run to stop: cooperative first, then a kill after `grace`. Ends `stopped` with a
/// `stopped` event either way.
pub fn stop(
    store: &AuditStore,
    run_id: &str,
    grace: Option<Duration>,
) -> Result<RunRecord, EngineError> {
    let rec = status(store, run_id)?;
    let (paths, _) = locate(store, run_id)?;
    if rec.status.is_terminal() {
        return Err(EngineError::WrongState {
            run_id: run_id.into(),
            status: rec.status,
            what: "there is nothing to stop".into(),
        });
    }
    let grace = grace.unwrap_or_else(|| {
        Duration::from_secs(
            noctune_config::load(&paths.repo_root)
                .map(|c| c.engine.stop_grace_secs)
                .unwrap_or(10),
        )
    });
    fsx::write_atomic(&paths.stop_request(), time::now_rfc3339().as_bytes())?;
    let events = EventLog::new(&paths);
    events.append(&EventPayload::StopRequested {
        grace_secs: grace.as_secs(),
    })?;
    let rec = runfile::update(&paths, |r| {
        if r.status == RunStatus::Stopping {
            None
        } else {
            Some(RunStatus::Stopping)
        }
    })?;
    store.upsert_run(&rec)?;
    let deadline = Instant::now() + grace;
    loop {
        let cur = runfile::read(&paths)?;
        if cur.status.is_terminal() {
            return Ok(cur);
        }
        let alive = cur
            .worker_pid
            .is_some_and(|p| process::is_alive(p, cur.worker_start_time));
        if !alive || Instant::now() >= deadline {
            if let Some(pid) = cur.worker_pid {
                process::kill(pid, cur.worker_start_time);
                // Wait for the kill to land so nothing writes after our final record.
                let t = Instant::now();
                while process::is_alive(pid, cur.worker_start_time)
                    && t.elapsed() < Duration::from_secs(2)
                {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            // The worker may have died mid-apply: put the worktree back to its last commit.
            if let Ok(wt) = git2::Repository::open(paths.worktree()) {
                let _ = noctune_git::restore_to_head(&wt);
            }
            return mark_dead(store, &paths, "stopped");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Continues a stopped or failed run from its recorded approvals and patchsets.
pub fn resume(store: &AuditStore, run_id: &str) -> Result<Started, EngineError> {
    let rec = status(store, run_id)?;
    let (paths, _) = locate(store, run_id)?;
    if !matches!(rec.status, RunStatus::Stopped | RunStatus::Failed) {
        return Err(EngineError::WrongState {
            run_id: run_id.into(),
            status: rec.status,
            what: "only a stopped or failed run can be resumed".into(),
        });
    }
    if rec.resume_policy == ResumePolicy::Never {
        return Err(EngineError::WrongState {
            run_id: run_id.into(),
            status: rec.status,
            what: "its resume_policy is `never`; start a new run".into(),
        });
    }
    let _ = std::fs::remove_file(paths.stop_request());
    let rec = runfile::update(&paths, |r| {
        r.worker_pid = None;
        r.worker_start_time = None;
        Some(RunStatus::Queued)
    })?;
    let ev = EventLog::new(&paths).append(&EventPayload::StatusChanged {
        status: RunStatus::Queued,
        error: None,
        resumed: Some(true),
    })?;
    store.upsert_run(&rec)?;
    store.ingest_events(&paths.run_id, &[ev])?;
    spawn(store, paths)
}

/// Commits a run made on its branch after the head it started from: `(sha, summary)`. None
/// when the branch is gone (a run that committed nothing deletes its branch).
pub fn commits(rec: &RunRecord) -> Result<Vec<(String, String)>, EngineError> {
    let repo = noctune_git::open_repo(Path::new(&rec.repo_root))?;
    if !noctune_git::branch_exists(&repo, &rec.branch) {
        return Ok(Vec::new());
    }
    Ok(noctune_git::commits_since(
        &repo,
        &rec.branch,
        &rec.head_sha,
    )?)
}

/// What a run leaves when it ends ([`close_run`]).
pub struct Closing {
    /// Its commits on its branch, oldest first.
    pub commits: Vec<String>,
    /// Why a `done` run committed nothing; `None` when it committed, or did not end `done`.
    pub reason: Option<String>,
    /// Whether its branch was deleted for having no commit.
    pub branch_deleted: bool,
}

/// The end of a run, whoever ends it (its worker, or a host that finds the worker dead or
/// kills it), before its terminal status is written: its branch is freed (the worktree's HEAD
/// detached so the branch can be checked out at once in the user's tree; a branch with no
/// commit deleted), and `run.json` gets `commits`, `reason` (`done` only) and `summary`.
pub fn close_run(paths: &RunPaths, ending: RunStatus) -> Result<Closing, EngineError> {
    let rec = runfile::read(paths)?;
    let mut notes = Vec::new();
    let mut deleted = false;
    let mut commits = Vec::new();
    match noctune_git::open_repo(Path::new(&rec.repo_root)) {
        Ok(repo) => {
            let wt = git2::Repository::open(paths.worktree()).ok();
            match noctune_git::release_branch(&repo, wt.as_ref(), &rec.branch, &rec.head_sha) {
                Ok(d) => deleted = d,
                Err(e) => notes.push(format!(
                    "the branch {} is still checked out: {e}",
                    rec.branch
                )),
            }
            if noctune_git::branch_exists(&repo, &rec.branch) {
                commits = noctune_git::commits_since(&repo, &rec.branch, &rec.head_sha)?
                    .into_iter()
                    .map(|(sha, _)| sha)
                    .collect();
            }
        }
        Err(e) => notes.push(format!("the repository could not be opened: {e}")),
    }
    let events: Vec<EventPayload> = read_events(paths, 0, usize::MAX)?
        .iter()
        .filter_map(Event::body)
        .collect();
    let plan = load_plan(paths).unwrap_or_default();
    let mut summary =
        noctune_core::run_state::RunSummary::from_events(&events, &plan, commits.len());
    let splits = events
        .iter()
        .filter(|e| {
            matches!(e, EventPayload::PatchsetFailed { reason, .. }
                if reason.contains(super::events::SPLIT_MARK))
        })
        .count();
    if splits > 0 {
        notes.push(format!(
            "{splits} failed patchset(s) of several files were split in halves and checked \
             again, so that only the edits that fail are rolled back"
        ));
    }
    if deleted {
        notes.push(format!(
            "the branch {} had no commit and was deleted",
            rec.branch
        ));
    }
    summary.notes.extend(notes);
    let reason = match ending {
        RunStatus::Done => summary.no_commit_reason(),
        _ => None,
    };
    let n = commits.len();
    let (why, sum) = (reason.clone(), summary);
    runfile::update(paths, move |r| {
        r.commits = Some(n);
        r.reason = why;
        r.summary = Some(sum);
        None
    })?;
    Ok(Closing {
        commits,
        reason,
        branch_deleted: deleted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queued_run(dir: &Path, worker_pid: Option<u32>) -> RunPaths {
        let run_id = RunId::parse("20240101T000000Z-00000001").unwrap();
        let paths = RunPaths::new(dir, &run_id);
        let now = time::now_rfc3339();
        let rec = RunRecord {
            run_id,
            status: RunStatus::Queued,
            started_at: now.clone(),
            updated_at: now,
            ended_at: None,
            repo_root: dir.display().to_string(),
            pack: "lint_fix".into(),
            profile: "default".into(),
            branch: "noctune/x".into(),
            head_sha: "0".repeat(40),
            error: None,
            resume_policy: ResumePolicy::Continue,
            worker_pid,
            worker_start_time: None,
            stage: "approvals".into(),
            commits: None,
            reason: None,
            summary: None,
        };
        runfile::create(&paths, &rec).unwrap();
        paths
    }

    fn supervise_exited_worker(
        dir: &Path,
        pid_in_record: impl Fn(u32) -> Option<u32>,
    ) -> RunRecord {
        let store = AuditStore::open(&dir.join("audit.db")).unwrap();
        let worker = std::process::Command::new("true").spawn().unwrap();
        let paths = queued_run(dir, pid_in_record(worker.id()));
        let mut started = Started {
            record: runfile::read(&paths).unwrap(),
            paths,
            worker,
        };
        supervise(&store, &mut started, || {}).unwrap()
    }

    #[test]
    fn a_worker_that_exits_before_its_run_ended_fails_the_run() {
        let dir = tempfile::tempdir().unwrap();
        let rec = supervise_exited_worker(dir.path(), Some);
        assert_eq!(rec.status, RunStatus::Failed);
        assert!(rec.error.unwrap().contains("stage approvals"));
    }

    #[test]
    fn a_worker_exiting_after_a_resume_gave_its_run_away_changes_nothing() {
        for pid_of_resumed in [None, Some(u32::MAX)] {
            let dir = tempfile::tempdir().unwrap();
            let rec = supervise_exited_worker(dir.path(), |_| pid_of_resumed);
            assert_eq!(rec.status, RunStatus::Queued, "{pid_of_resumed:?}");
            assert_eq!(rec.error, None);
        }
    }
}
