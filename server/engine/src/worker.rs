//! The worker: one process per run (`noctune worker --run-dir DIR`), doing the run's steps in
//! order and checking for a stop request between them. Everything it decides is recorded
//! (`run.json`, `events.jsonl`, approval files, `patchsets.json`, the audit DB) so that a
//! resumed worker continues where this one left off.

use super::ctx::{Halt, RunCtx, compile_globs};
use super::events::EventLog;
use super::events::SPLIT_MARK;
use super::paths::RunPaths;
use super::proposers;
use super::records::{full_ingest, load_decision, load_plan, load_request, load_requests};
use super::runfile;
use super::storage::GitBlobs;
use noctune_core::approval::{EditBinding, decision_matches};
use noctune_core::event::EventPayload;
use noctune_core::patchset::{CheckReport, CheckVerdict, judge};
use noctune_core::{
    ApprovalId, ApprovalRequest, ApprovedEdit, DecisionError, EventKind, GroupInput,
    PatchsetStatus, PlannedPatchset, Proposal, RecordedEdit, RunRecord, RunStatus, StoredEdit,
    Verdict, approval_id, group_into_patchsets, police, unified_diff,
};
use noctune_store::AuditStore;
use noctune_util::{fsx, time};

use serde_json::json;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

/// Entry point of `noctune worker --run-dir DIR`.
pub fn run_worker(run_dir: &Path) -> anyhow::Result<()> {
    noctune_git::read_objects_as_git_does();
    let run_dir = std::fs::canonicalize(run_dir)
        .map_err(|e| anyhow::anyhow!("--run-dir {}: {e}", run_dir.display()))?;
    let rec: RunRecord = serde_json::from_slice(&std::fs::read(run_dir.join("state/run.json"))?)?;
    let repo_root = PathBuf::from(&rec.repo_root);
    let paths = RunPaths::new(&repo_root, &rec.run_id);
    let events = EventLog::new(&paths);
    let store = AuditStore::open_default()?;

    let pid = std::process::id();
    let started = super::process::start_time(pid);
    let resumed = super::events::read_events(&paths, 0, usize::MAX)
        .map(|evs| evs.iter().any(|e| e.kind == EventKind::RunStarted.as_str()))
        .unwrap_or(false);
    let rec = runfile::update(&paths, |r| {
        r.worker_pid = Some(pid);
        r.worker_start_time = started;
        r.stage = "setup".into();
        Some(RunStatus::Running)
    })?;
    let (worker_pid, pack, branch) = (pid, rec.pack.clone(), rec.branch.clone());
    let ev = events.append(&if resumed {
        EventPayload::RunResumed {
            worker_pid,
            pack,
            branch,
        }
    } else {
        EventPayload::RunStarted {
            worker_pid,
            pack,
            branch,
        }
    })?;
    let _ = store.ingest_events(&paths.run_id, &[ev]);
    let _ = store.upsert_run(&rec);

    let beating = Arc::new(AtomicBool::new(true));
    let heartbeat = spawn_heartbeat(&paths, beating.clone(), &repo_root);

    let result = setup(&paths, &rec, store, events).map(|mut ctx| {
        let r = execute(&mut ctx);
        (ctx, r)
    });
    beating.store(false, Ordering::SeqCst);
    let _ = heartbeat.join();

    match result {
        Ok((mut ctx, outcome)) => finish(&mut ctx, outcome),
        Err(h) => finish_without_ctx(&paths, h),
    }
}

fn spawn_heartbeat(
    paths: &RunPaths,
    beating: Arc<AtomicBool>,
    repo_root: &Path,
) -> std::thread::JoinHandle<()> {
    let paths = paths.clone();
    let every = noctune_config::load(repo_root)
        .map(|c| c.engine.heartbeat_secs)
        .unwrap_or(2)
        .max(1);
    std::thread::spawn(move || {
        let mut waited = Duration::ZERO;
        while beating.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(100));
            waited += Duration::from_millis(100);
            if waited >= Duration::from_secs(every) {
                waited = Duration::ZERO;
                let _ = runfile::update(&paths, |_| None);
            }
        }
    })
}

fn setup(
    paths: &RunPaths,
    rec: &RunRecord,
    store: AuditStore,
    events: EventLog,
) -> Result<RunCtx, Halt> {
    let repo_root = PathBuf::from(&rec.repo_root);
    let cfg = noctune_config::load(&repo_root).map_err(Halt::from_display)?;
    let pack = cfg
        .pack(&rec.pack)
        .cloned()
        .ok_or_else(|| Halt::Fail(format!("pack {:?} is no longer defined", rec.pack)))?;
    let profile = cfg
        .profile(Some(&rec.profile))
        .cloned()
        .ok_or_else(|| Halt::Fail(format!("model profile {:?} is not defined", rec.profile)))?;
    let globs = compile_globs(&pack.allowed_globs).map_err(Halt::Fail)?;
    let t = std::time::Instant::now();
    let repo = noctune_git::open_repo(&repo_root).map_err(Halt::from_display)?;
    // A worktree made or recycled just now is exactly the base commit; one that was already
    // there (a resumed run) may hold whatever an interrupted worker left half-applied.
    let existed = paths.worktree().join(".git").exists();
    let wt = match recycle_done_worktree(&repo, paths, &rec.branch, &rec.head_sha) {
        Some(wt) => wt,
        None => noctune_git::ensure_worktree(
            &repo,
            rec.run_id.as_str(),
            &paths.worktree(),
            &rec.branch,
            &rec.head_sha,
        )
        .map_err(Halt::from_display)?,
    };
    tracing::debug!(
        elapsed_ms = t.elapsed().as_millis() as u64,
        "worktree ready"
    );
    let mut ctx = RunCtx::new(paths.clone(), cfg, pack, profile, wt, store, events, globs);
    ctx.worktree_fresh = !existed;
    Ok(ctx)
}

/// Takes over the worktree of a finished (`done`) run, if there is one, instead of checking out
/// the whole repository again. The claim is an atomic rename of the run's marker file, so two
/// starting runs cannot take the same worktree.
fn recycle_done_worktree(
    repo: &git2::Repository,
    paths: &RunPaths,
    branch: &str,
    base: &str,
) -> Option<git2::Repository> {
    if paths.worktree().exists() {
        return None;
    }
    let dir = super::paths::worktrees_dir(&paths.repo_root);
    let mut markers: Vec<PathBuf> = std::fs::read_dir(&dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "recyclable"))
        .collect();
    markers.sort();
    for marker in markers.into_iter().rev() {
        let claimed = marker.with_extension(format!("claimed-{}", paths.run_id));
        if std::fs::rename(&marker, &claimed).is_err() {
            continue;
        }
        let old = dir.join(marker.file_stem()?);
        let result = noctune_git::recycle_worktree(repo, &old, &paths.worktree(), branch, base);
        let _ = std::fs::remove_file(&claimed);
        match result {
            Ok(wt) => {
                tracing::debug!(from = %old.display(), "recycled a finished run's worktree");
                return Some(wt);
            }
            Err(e) => tracing::warn!(
                "could not recycle worktree {}: {e}; checking out a new one",
                old.display()
            ),
        }
    }
    None
}

fn execute(ctx: &mut RunCtx) -> Result<(), Halt> {
    // Whatever an interrupted worker left half-applied is undone: the worktree starts at the
    // branch's last commit, so recorded patchsets can be re-applied cleanly.
    let t = std::time::Instant::now();
    if !ctx.worktree_fresh {
        noctune_git::ensure_clean(&ctx.wt).map_err(Halt::from_display)?;
    }
    tracing::debug!(
        elapsed_ms = t.elapsed().as_millis() as u64,
        "worktree checked clean"
    );
    ctx.emit(EventPayload::WorktreeReady {
        path: ctx.worktree_path().display().to_string(),
    })?;
    ctx.check_stop()?;
    if !ctx.paths.proposals_done().exists() {
        ctx.set_stage("propose")?;
        let proposals = proposers::propose(ctx, None)?;
        super::crossfile::prefetch(ctx, &proposals)?;
        let ids = police_and_record(ctx, proposals)?;
        fsx::sync_filesystem(&ctx.paths.approvals_dir())?;
        fsx::write_json_atomic(
            &ctx.paths.proposals_done(),
            &json!({"approval_ids": ids, "at": time::now_rfc3339()}),
        )?;
    }
    loop {
        ctx.set_stage("approvals")?;
        wait_for_decisions(ctx)?;
        ctx.set_stage("patchsets")?;
        if commit_patchsets(ctx)? {
            return Ok(());
        }
    }
}

/// An edit the pack's rules let through, to be recorded: auto-approved or waiting for a
/// decision.
struct Approvable {
    proposal: Proposal,
    lines_changed: u32,
    risk: u8,
    auto: bool,
    reason: String,
}

/// Polices each proposal and records the ones that may be approved; their approval ids, in
/// order. The texts of all of them are written to the object store at once, in parallel.
fn police_and_record(ctx: &mut RunCtx, proposals: Vec<Proposal>) -> Result<Vec<String>, Halt> {
    let t = std::time::Instant::now();
    let lap = |what: &str| {
        tracing::debug!(
            elapsed_ms = t.elapsed().as_millis() as u64,
            "record: {what}"
        );
    };
    let mut approvable = Vec::new();
    for p in proposals {
        ctx.check_stop()?;
        if let Some(a) = police_one(ctx, p)? {
            approvable.push(a);
        }
    }
    lap("policed");
    let edits: Vec<&Proposal> = approvable.iter().map(|a| &a.proposal).collect();
    let pack = ctx.pack.name.clone();
    let prepared = super::storage::store_edits(&ctx.worktree_path(), &edits, |p| Prepared {
        approval_id: approval_id(&pack, p),
        diff: unified_diff(&p.file_path, &p.before, &p.after),
        binding: EditBinding::of(p),
    })
    .map_err(Halt::from_display)?;
    lap("texts stored");
    let ids = approvable
        .into_iter()
        .zip(prepared)
        .map(|(a, (stored, prepared))| record(ctx, a, stored, prepared))
        .collect();
    lap("requests written");
    ids
}

/// What a request is made of besides the edit, computed beside the writing of its texts.
struct Prepared {
    approval_id: ApprovalId,
    diff: String,
    binding: EditBinding,
}

/// Polices one proposal: `None` (with the event that says why) when it may not be applied.
fn police_one(ctx: &mut RunCtx, p: Proposal) -> Result<Option<Approvable>, Halt> {
    let facts = super::crossfile::edit_facts(ctx, &p)?;
    let in_globs = ctx.in_globs(&p.file_path);
    let verdict = police(&ctx.pack, in_globs, &facts, ctx.tests_available());
    let (risk, auto, reason) = match &verdict {
        Verdict::PolicyViolation { reason } => {
            ctx.emit(EventPayload::PolicyViolation {
                file: p.file_path.clone(),
                reason: reason.clone(),
                source: p.source,
            })?;
            return Ok(None);
        }
        Verdict::Refused { reason } => {
            ctx.emit(EventPayload::EditRefused {
                file: p.file_path.clone(),
                reason: reason.clone(),
                approval_id: None,
            })?;
            return Ok(None);
        }
        Verdict::NeedsApproval { risk, reasons } => (*risk, false, reasons.join("; ")),
        Verdict::AutoApprove { risk } => (
            *risk,
            true,
            format!("risk {risk} within the pack's auto_approve rules"),
        ),
    };
    Ok(Some(Approvable {
        proposal: p,
        lines_changed: facts.lines_changed(),
        risk,
        auto,
        reason,
    }))
}

/// Writes the approval request of `a` (its texts are in the object store as `stored`) and
/// says it is auto-approved or waits for a decision. Returns its approval id.
fn record(
    ctx: &mut RunCtx,
    a: Approvable,
    stored: StoredEdit,
    prepared: Prepared,
) -> Result<String, Halt> {
    let Approvable {
        proposal: p,
        lines_changed,
        risk,
        auto,
        reason,
    } = a;
    let Prepared {
        approval_id: id,
        diff,
        binding,
    } = prepared;
    // The texts are in the object store; the request keeps the diff and their blob ids.
    let req = ApprovalRequest {
        approval_id: id.clone(),
        run_id: ctx.paths.run_id.clone(),
        pack: ctx.pack.name.clone(),
        created_at: time::now_rfc3339(),
        file_path: p.file_path.clone(),
        symbol: p.symbol.clone(),
        risk_score: risk,
        reason: reason.clone(),
        diff,
        lines_changed,
        auto_approved: auto,
        content: RecordedEdit::Stored(stored),
    };
    let path = ctx.paths.approval(id.as_str());
    if !path.exists() {
        // Made durable in one go (`sync_filesystem`) before the proposals are marked done.
        fsx::write_atomic_unsynced(&path, &fsx::json_bytes(&req)?)?;
    }
    ctx.record_approval(req.clone());
    ctx.verified.proposed(&req, p, binding);
    if auto {
        ctx.emit(EventPayload::AutoApproved {
            approval_id: id.to_string(),
            file: req.file_path,
            risk_score: risk,
            lines: req.lines_changed,
        })?;
    } else {
        let decide = format!("noctune decide {} {} approve", ctx.paths.run_id, id);
        ctx.emit(EventPayload::ApprovalRequested {
            approval_id: id.to_string(),
            file: req.file_path,
            symbol: req.symbol,
            risk_score: risk,
            reason,
            lines: req.lines_changed,
            decide,
        })?;
    }
    Ok(id.to_string())
}

fn announced_decisions(ctx: &RunCtx) -> BTreeSet<String> {
    let events = super::events::read_events(&ctx.paths, 0, usize::MAX).unwrap_or_default();
    events
        .into_iter()
        .filter(|e| e.kind == EventKind::ApprovalDecided.as_str())
        .filter_map(|e| match e.body() {
            Some(EventPayload::ApprovalDecided { approval_id, .. }) => Some(approval_id),
            _ => None,
        })
        .collect()
}

/// Ends the run over an approval whose recorded content, or the decision on it, is not what its
/// id names. Nothing of it is applied. The run fails rather than asking again: after a resume
/// the request file is the only copy of the proposal (so there is nothing trusted to ask about),
/// and whatever rewrote the run's state can rewrite a new request too, so going on would only
/// move the problem; a failed run says so where every surface shows it.
fn tampered(ctx: &mut RunCtx, r: &ApprovalRequest, why: &str) -> Halt {
    let emitted = ctx.emit(EventPayload::ApprovalTampered {
        approval_id: r.approval_id.to_string(),
        file: r.file_path.clone(),
        reason: why.to_string(),
    });
    if let Err(h) = emitted {
        return h;
    }
    Halt::Fail(format!(
        "{why}; nothing of it was applied. The run's approval files were changed outside Noctune, so the run stops here; start a new run"
    ))
}

/// When `<id>.json` last changed, to notice a request rewritten while the run waits.
fn stamp(ctx: &RunCtx, id: &str) -> Option<(u64, SystemTime)> {
    let m = std::fs::metadata(ctx.paths.approval(id)).ok()?;
    Some((m.len(), m.modified().ok()?))
}

fn wait_for_decisions(ctx: &mut RunCtx) -> Result<(), Halt> {
    let mut announced = announced_decisions(ctx);
    let reqs = load_requests(&ctx.paths)?;
    // Every request is checked before the run waits on it (also what a resume finds), so a
    // changed one fails the run now instead of waiting for a decision that will be refused.
    for r in &reqs {
        if let Err(e) = ctx.verified.verify(r, &GitBlobs(&ctx.wt)) {
            return Err(tampered(ctx, r, &e.to_string()));
        }
    }
    // Before anything waits on them, no `git gc` may prune the blobs they name.
    if let Err(e) = super::storage::keep_reachable(&ctx.wt, &ctx.paths.run_id, &reqs) {
        tracing::warn!(
            "keeping the approvals' blobs reachable: {e}; a pruned post-image is rebuilt from its diff"
        );
    }
    // Only the pending ones are polled; a decision file appears once and never changes. A
    // pending request is checked again when its file changes.
    let mut pending: Vec<(ApprovalRequest, Option<(u64, SystemTime)>)> = reqs
        .into_iter()
        .filter(|r| !r.auto_approved)
        .map(|r| {
            let at = stamp(ctx, r.approval_id.as_str());
            (r, at)
        })
        .collect();
    let mut waiting = false;
    loop {
        let mut still = Vec::with_capacity(pending.len());
        for (r, at) in pending {
            let id = r.approval_id.to_string();
            let now = stamp(ctx, &id);
            if now != at || now.is_none() {
                match load_request(&ctx.paths, &id) {
                    Some(again) if again == r => {}
                    Some(again) => {
                        let why = match again.verify(&GitBlobs(&ctx.wt)) {
                            Err(e) => e.to_string(),
                            Ok(_) => format!(
                                "approval {id}: its request was rewritten while it waited for a decision"
                            ),
                        };
                        return Err(tampered(ctx, &r, &why));
                    }
                    None => {
                        let why = format!(
                            "approval {id}: its request file was removed or cannot be read"
                        );
                        return Err(tampered(ctx, &r, &why));
                    }
                }
            }
            match load_decision(&ctx.paths, &id) {
                Some(d) => {
                    let checked = ctx
                        .verified
                        .verify(&r, &GitBlobs(&ctx.wt))
                        .map_err(DecisionError::from)
                        .and_then(|v| decision_matches(&r, &d, v));
                    if let Err(e) = checked {
                        return Err(tampered(ctx, &r, &e.to_string()));
                    }
                    if announced.insert(id) {
                        ctx.emit(EventPayload::ApprovalDecided {
                            approval_id: d.approval_id.to_string(),
                            file: r.file_path.clone(),
                            decision: d.decision,
                            decided_by: d.decided_by,
                            decided_at: d.decided_at,
                            reason: d.reason,
                        })?;
                    }
                }
                None => still.push((r, now)),
            }
        }
        pending = still;
        if pending.is_empty() {
            if waiting {
                ctx.set_status(RunStatus::Running, None)?;
            }
            return Ok(());
        }
        if !waiting {
            ctx.set_status(RunStatus::WaitingApproval, None)?;
            waiting = true;
        }
        ctx.flush_db();
        for _ in 0..4 {
            ctx.check_stop()?;
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Applies and commits every planned patchset. Returns `false` when a stale approval was
/// re-proposed and new decisions are needed first.
///
/// The requests are read and checked here, where they are turned into [`ApprovedEdit`]s, and
/// what is written to the worktree is the checked copy in memory, never the file again.
fn commit_patchsets(ctx: &mut RunCtx) -> Result<bool, Halt> {
    let reqs = load_requests(&ctx.paths)?;
    let mut approved: Vec<ApprovedEdit> = Vec::new();
    for r in &reqs {
        let decision = if r.auto_approved {
            None
        } else {
            match load_decision(&ctx.paths, r.approval_id.as_str()) {
                Some(d) => Some(d),
                None => continue,
            }
        };
        let verified = ctx
            .verified
            .verify(r, &GitBlobs(&ctx.wt))
            .map_err(DecisionError::from);
        let edit = match decision {
            None => verified.and_then(|v| {
                ApprovedEdit::from_verdict_verified(
                    r,
                    v,
                    &ctx.pack,
                    ctx.in_globs(&r.file_path),
                    ctx.tests_available(),
                )
            }),
            Some(d) => verified.and_then(|v| ApprovedEdit::from_decision_verified(r, &d, v)),
        };
        let edit = if r.auto_approved {
            super::crossfile::still_auto_approved(ctx, edit)?
        } else {
            edit
        };
        match edit {
            Ok(e) => approved.push(e),
            Err(DecisionError::Rejected(_)) => {}
            // A decision file that names another approval was not written by a decision either.
            Err(e @ (DecisionError::Tampered(_) | DecisionError::WrongApproval { .. })) => {
                return Err(tampered(ctx, r, &e.to_string()));
            }
            Err(e) => {
                ctx.emit(EventPayload::EditRefused {
                    file: r.file_path.clone(),
                    reason: e.to_string(),
                    approval_id: Some(r.approval_id.to_string()),
                })?;
            }
        }
    }
    let mut plan = load_plan(&ctx.paths).unwrap_or_default();
    let planned: BTreeSet<String> = plan
        .patchsets
        .iter()
        .flat_map(|p| p.approval_ids.iter().cloned())
        .collect();
    let fresh: Vec<&ApprovedEdit> = approved
        .iter()
        .filter(|e| !planned.contains(e.approval_id().as_str()))
        .collect();
    if !fresh.is_empty() {
        let groups: Vec<Vec<usize>> = if ctx.pack.commit_each_approval {
            (0..fresh.len()).map(|i| vec![i]).collect()
        } else {
            let inputs: Vec<GroupInput> = fresh
                .iter()
                .map(|e| GroupInput {
                    file_path: e.proposal().file_path.clone(),
                    lines_changed: super::crossfile::diff_facts(e.proposal()).lines_changed(),
                })
                .collect();
            let room = ctx
                .pack
                .patchset_max_commits
                .saturating_sub(plan.patchsets.len())
                .max(1);
            group_into_patchsets(&inputs, &ctx.pack.grouping, room)
        };
        for g in groups {
            let ps = PlannedPatchset {
                approval_ids: g
                    .iter()
                    .map(|i| fresh[*i].approval_id().to_string())
                    .collect(),
                files: g
                    .iter()
                    .map(|i| fresh[*i].proposal().file_path.clone())
                    .collect(),
                status: PatchsetStatus::Planned,
                commit_sha: None,
                reason: None,
            };
            plan.patchsets.push(ps);
        }
        fsx::write_json_atomic(&ctx.paths.patchsets(), &plan)?;
        let total = plan.patchsets.len();
        for (i, ps) in plan.patchsets.iter().enumerate() {
            if ps.status == PatchsetStatus::Planned {
                ctx.emit(EventPayload::PatchsetPlanned {
                    n: i + 1,
                    of: total,
                    files: ps.files.clone(),
                    approval_ids: ps.approval_ids.clone(),
                })?;
            }
        }
    }
    let mut need_decisions = false;
    let mut baselines = Baselines::default();
    let mut splits = 0;
    // The plan can grow while it is worked through: a failed patchset of several files is
    // replaced by its two halves ([`split_failed`]), the first of which comes next.
    let mut next = 0;
    while next < plan.patchsets.len() {
        let i = next;
        next += 1;
        let total = plan.patchsets.len();
        if plan.patchsets[i].status != PatchsetStatus::Planned {
            continue;
        }
        ctx.check_stop()?;
        let ids: BTreeSet<&str> = plan.patchsets[i]
            .approval_ids
            .iter()
            .map(String::as_str)
            .collect();
        let edits: Vec<&ApprovedEdit> = approved
            .iter()
            .filter(|e| ids.contains(e.approval_id().as_str()))
            .collect();
        // An approval is bound to its pre-image: a file that changed since is re-proposed.
        let mut stale = Vec::new();
        for e in &edits {
            let current =
                std::fs::read_to_string(ctx.worktree_path().join(&e.proposal().file_path))
                    .unwrap_or_default();
            if current != e.proposal().before {
                stale.push(e.proposal().file_path.clone());
            }
        }
        if !stale.is_empty() {
            for f in &stale {
                ctx.emit(EventPayload::ApprovalStale {
                    file: f.clone(),
                    reason: "the file changed since the edit was approved; proposing it again"
                        .into(),
                })?;
            }
            let fresh_props = proposers::propose(ctx, Some(&stale))?;
            police_and_record(ctx, fresh_props)?;
            fsx::sync_filesystem(&ctx.paths.approvals_dir())?;
            plan.patchsets[i].status = PatchsetStatus::Failed;
            plan.patchsets[i].reason =
                Some(format!("stale pre-image: {} re-proposed", stale.join(", ")));
            fsx::write_json_atomic(&ctx.paths.patchsets(), &plan)?;
            need_decisions = true;
            continue;
        }
        let files: Vec<String> = edits
            .iter()
            .map(|e| e.proposal().file_path.clone())
            .collect();
        // Taken while the worktree holds no edit: what this patchset's checks are judged by.
        let pending_files = planned_files(&plan, i);
        take_baselines(ctx, &mut baselines, &files, &pending_files)?;
        let imports = super::crossfile::import_baseline(ctx, &files)?;
        for e in &edits {
            // The commit is the durable record; a crash before it (a file half written
            // included) is undone by restore_to_head, so in place is enough.
            let target = ctx.worktree_path().join(&e.proposal().file_path);
            fsx::overwrite(&target, e.proposal().after.as_bytes())?;
        }
        ctx.emit(EventPayload::PatchsetApplied {
            n: i + 1,
            of: total,
            files: files.clone(),
        })?;
        let failure = match super::crossfile::import_regressions(ctx, imports) {
            Ok(Some(f)) => Ok(Some(CheckFailure {
                tool: f.tool,
                what: f.what,
                tail: f.tail,
                regressions: f.regressions,
            })),
            Ok(None) => check_patchset(ctx, &baselines, &files),
            Err(h) => Err(h),
        };
        let failure = match failure {
            Ok(f) => f,
            Err(h) => {
                noctune_git::restore_to_head(&ctx.wt).map_err(Halt::from_display)?;
                return Err(h);
            }
        };
        if let Some(f) = failure {
            noctune_git::restore_to_head(&ctx.wt).map_err(Halt::from_display)?;
            let halves = (splits < MAX_SPLITS)
                .then(|| split_failed(&mut plan, i))
                .flatten();
            let reason = match halves {
                Some((a, b)) => {
                    splits += 1;
                    format!(
                        "{} failed ({}); patchset rolled back and {SPLIT_MARK} {a} and {b} \
                         files, each checked again",
                        f.tool, f.what
                    )
                }
                None => {
                    plan.patchsets[i].status = PatchsetStatus::Failed;
                    plan.patchsets[i].reason = Some(format!(
                        "{} failed ({}); patchset rolled back, nothing committed",
                        f.tool, f.what
                    ));
                    plan.patchsets[i].reason.clone().unwrap_or_default()
                }
            };
            fsx::write_json_atomic(&ctx.paths.patchsets(), &plan)?;
            ctx.emit(EventPayload::PatchsetFailed {
                n: i + 1,
                of: total,
                files,
                tool: f.tool,
                reason,
                output_tail: f.tail,
                regressions: f.regressions,
            })?;
            if halves.is_some() {
                let of = plan.patchsets.len();
                for n in [i, i + 1] {
                    let ps = &plan.patchsets[n];
                    let (files, approval_ids) = (ps.files.clone(), ps.approval_ids.clone());
                    ctx.emit(EventPayload::PatchsetPlanned {
                        n: n + 1,
                        of,
                        files,
                        approval_ids,
                    })?;
                }
                next = i;
            }
            continue;
        }
        let message = commit_label(ctx, &plan, i, need_decisions);
        let body = edits
            .iter()
            .map(|e| {
                format!(
                    "- {} (approval {}, by {})",
                    e.proposal().file_path,
                    e.approval_id(),
                    e.approved_by()
                )
            })
            .collect::<Vec<_>>()
            .join("\n");
        let sha = noctune_git::commit_paths(&ctx.wt, &files, &format!("{message}\n\n{body}\n"))
            .map_err(Halt::from_display)?;
        plan.patchsets[i].status = PatchsetStatus::Committed;
        plan.patchsets[i].commit_sha = Some(sha.clone());
        fsx::write_json_atomic(&ctx.paths.patchsets(), &plan)?;
        ctx.emit(EventPayload::PatchsetCommitted {
            n: i + 1,
            of: total,
            sha,
            message,
            files,
        })?;
    }
    Ok(!need_decisions)
}

/// Most failed patchsets one pass over the plan splits ([`split_failed`]). Finding one bad
/// edit among n files takes about 2·log2(n) check runs; the cap keeps a check that fails
/// whatever is applied (a flaky suite, a broken environment) from running the checks twice per
/// file.
const MAX_SPLITS: usize = 32;

/// Replaces the failed patchset `i` of several files by its two halves (planned, in its place
/// and right after it), so that the edit that failed it is found and rolled back alone while
/// the others are committed: one bad edit (ruff's F401 removing a re-export, found on
/// requests' `compat.py`) rolled back a whole package's lint fixes. The halves keep the plan's
/// file order (files of a module stay together). Returns their sizes; `None` (nothing changed)
/// for a patchset of one file, which fails for good.
fn split_failed(plan: &mut noctune_core::PatchsetPlan, i: usize) -> Option<(usize, usize)> {
    let ps = &plan.patchsets[i];
    let n = ps.files.len();
    if n < 2 || ps.approval_ids.len() != n {
        return None;
    }
    let half = |range: std::ops::Range<usize>| PlannedPatchset {
        approval_ids: ps.approval_ids[range.clone()].to_vec(),
        files: ps.files[range].to_vec(),
        status: PatchsetStatus::Planned,
        commit_sha: None,
        reason: None,
    };
    let mid = n / 2;
    let (a, b) = (half(0..mid), half(mid..n));
    plan.patchsets.splice(i..=i, [a, b]);
    Some((mid, n - mid))
}

/// The baselines a worker took (per check: the files it covered and its report; `None` for a
/// check the pack does not allow), and whether the project's install was looked for yet.
#[derive(Default)]
struct Baselines {
    taken: Vec<(String, Option<BTreeSet<String>>, Option<CheckReport>)>,
    probed: bool,
}

impl Baselines {
    /// The baseline of `check` that covers `files` (any, for a check that takes no files).
    fn covering(&self, check: &str, files: &[String]) -> Option<&Option<CheckReport>> {
        self.taken
            .iter()
            .rev()
            .find(|(c, on, _)| {
                c == check
                    && on
                        .as_ref()
                        .is_none_or(|on| files.iter().all(|f| on.contains(f)))
            })
            .map(|(_, _, r)| r)
    }
}

/// The files of patchset `from` and of every planned one after it.
fn planned_files(plan: &noctune_core::PatchsetPlan, from: usize) -> Vec<String> {
    let mut out: BTreeSet<String> = BTreeSet::new();
    for p in &plan.patchsets[from..] {
        if p.status == PatchsetStatus::Planned {
            out.extend(p.files.iter().cloned());
        }
    }
    out.into_iter().collect()
}

/// Takes each check's baseline that `files` need and is not taken yet, on the worktree as it
/// is (no edit applied). A check that takes files (`{files}`) is run on every file still to be
/// checked, so that one baseline serves all the patchsets; a patchset it does not cover (one
/// planned after a re-proposal) gets its own, on the commit it is applied to.
fn take_baselines(
    ctx: &mut RunCtx,
    baselines: &mut Baselines,
    files: &[String],
    pending_files: &[String],
) -> Result<(), Halt> {
    for check in ctx.pack.checks.clone() {
        if baselines.covering(&check, files).is_some() {
            continue;
        }
        let scoped = ctx
            .cfg
            .tools
            .get(&check)
            .is_some_and(|t| t.command.iter().any(|a| a == "{files}"));
        let on: Vec<String> = if scoped {
            pending_files.to_vec()
        } else {
            Vec::new()
        };
        let probe = !baselines.probed;
        let report = proposers::baseline(ctx, &check, &on, probe)?;
        baselines.probed |= report.is_some();
        let covered = scoped.then(|| on.into_iter().collect());
        baselines.taken.push((check, covered, report));
    }
    Ok(())
}

/// Why a patchset's checks failed.
struct CheckFailure {
    tool: String,
    what: String,
    tail: String,
    regressions: Vec<String>,
}

/// Runs the pack's checks on an applied patchset; the first that regressed against its
/// baseline ([`judge`]) fails it.
fn check_patchset(
    ctx: &mut RunCtx,
    baselines: &Baselines,
    files: &[String],
) -> Result<Option<CheckFailure>, Halt> {
    for check in ctx.pack.checks.clone() {
        let Some((outcome, report)) = proposers::run_check(ctx, &check, files)? else {
            continue;
        };
        let base = baselines.covering(&check, files).and_then(Option::as_ref);
        if let CheckVerdict::Regressed {
            regressions,
            summary,
        } = judge(base, &report)
        {
            return Ok(Some(CheckFailure {
                tool: check,
                what: format!("{}: {summary}", outcome.describe()),
                tail: outcome.tail().to_string(),
                regressions,
            }));
        }
    }
    Ok(None)
}

/// The first line of patchset `i`'s commit. Its number counts committed patchsets only.
/// `[patchset N/N]` when it is the last the run will commit (no planned one after it and no
/// re-proposal pending, `more_coming`), else `[patchset N]`: at commit time a later patchset
/// may still be rolled back, so the total is not known, and a commit once made is not
/// rewritten to fix its label.
fn commit_label(
    ctx: &RunCtx,
    plan: &noctune_core::PatchsetPlan,
    i: usize,
    more_coming: bool,
) -> String {
    let n = plan
        .patchsets
        .iter()
        .filter(|p| p.status == PatchsetStatus::Committed)
        .count()
        + 1;
    let last = !more_coming
        && plan.patchsets[i + 1..]
            .iter()
            .all(|p| p.status != PatchsetStatus::Planned);
    let label = if last {
        format!("[patchset {n}/{n}]")
    } else {
        format!("[patchset {n}]")
    };
    format!(
        "Noctune Studio: {} (#{}) {label}",
        ctx.pack.name, ctx.paths.run_id
    )
}

fn finish(ctx: &mut RunCtx, outcome: Result<(), Halt>) -> anyhow::Result<()> {
    finish_inner(ctx, outcome)
        .map_err(|h| anyhow::anyhow!("recording the end of the run failed: {h:?}"))?;
    full_ingest(&ctx.paths, &ctx.store);
    Ok(())
}

fn finish_inner(ctx: &mut RunCtx, outcome: Result<(), Halt>) -> Result<(), Halt> {
    let stop = matches!(outcome, Err(Halt::Stop)) || ctx.stop_requested();
    match outcome {
        Ok(()) if !stop => {
            let branch = branch(ctx);
            let end = close(ctx, RunStatus::Done)?;
            ctx.emit(EventPayload::RunDone {
                commits: end.commits,
                branch,
                reason: end.reason,
                branch_deleted: end.branch_deleted.then_some(true),
            })?;
            ctx.set_status(RunStatus::Done, None)?;
            // A done run is never resumed: the next run may take its worktree over.
            let _ = fsx::write_atomic_unsynced(&ctx.paths.recyclable_marker(), b"");
        }
        Err(Halt::Fail(msg)) if !stop => {
            let _ = noctune_git::restore_to_head(&ctx.wt);
            close(ctx, RunStatus::Failed)?;
            ctx.emit(EventPayload::RunFailed { error: msg.clone() })?;
            ctx.set_status(RunStatus::Failed, Some(msg))?;
        }
        _ => {
            let _ = noctune_git::restore_to_head(&ctx.wt);
            close(ctx, RunStatus::Stopped)?;
            let stage = runfile::read(&ctx.paths)
                .map(|r| r.stage)
                .unwrap_or_default();
            ctx.emit(EventPayload::Stopped {
                stage,
                forced: false,
            })?;
            let cur = runfile::read(&ctx.paths)
                .map_err(Halt::from_display)?
                .status;
            if cur != RunStatus::Stopping {
                ctx.set_status(RunStatus::Stopping, None)?;
            }
            ctx.set_status(RunStatus::Stopped, None)?;
        }
    }
    Ok(())
}

/// Frees the run's branch and records its closing summary ([`super::api::close_run`]).
fn close(ctx: &mut RunCtx, ending: RunStatus) -> Result<super::api::Closing, Halt> {
    ctx.flush_db();
    super::api::close_run(&ctx.paths, ending).map_err(Halt::from_display)
}

fn branch(ctx: &RunCtx) -> String {
    runfile::read(&ctx.paths)
        .map(|r| r.branch)
        .unwrap_or_default()
}

/// When setup itself failed (bad config, not a repo any more) there is no context yet.
fn finish_without_ctx(paths: &RunPaths, h: Halt) -> anyhow::Result<()> {
    let events = EventLog::new(paths);
    let store = AuditStore::open_default()?;
    let (body, status, err) = match h {
        Halt::Stop => (
            EventPayload::Stopped {
                stage: "setup".into(),
                forced: false,
            },
            RunStatus::Stopped,
            None,
        ),
        Halt::Fail(m) => (
            EventPayload::RunFailed { error: m.clone() },
            RunStatus::Failed,
            Some(m),
        ),
    };
    let ending = match status {
        RunStatus::Stopped => RunStatus::Stopped,
        _ => RunStatus::Failed,
    };
    if let Err(e) = super::api::close_run(paths, ending) {
        tracing::warn!("recording the end of the run: {e}");
    }
    events.append(&body)?;
    let rec = runfile::update(paths, |r| {
        r.error = err.clone();
        if status == RunStatus::Stopped && r.status != RunStatus::Stopping {
            Some(RunStatus::Failed)
        } else {
            Some(status)
        }
    })?;
    let _ = store.upsert_run(&rec);
    full_ingest(paths, &store);
    Ok(())
}
