//! `noctune run|runs|status|events|approvals|stop|resume|config check`.

use anyhow::Context;
use noctune_core::{RunRecord, RunStatus, StartRequest};
use noctune_studio::Studio;
use serde_json::json;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

pub(crate) fn studio() -> anyhow::Result<Studio> {
    Studio::open_default()
        .context("opening the audit DB (set NOCTUNE_STUDIO_DB to use another file)")
}

fn print_json(out: &mut dyn Write, v: &impl serde::Serialize) -> anyhow::Result<()> {
    writeln!(out, "{}", serde_json::to_string(v)?)?;
    Ok(())
}

pub fn config_check(out: &mut dyn Write, repo: Option<PathBuf>, json: bool) -> anyhow::Result<i32> {
    let root = super::repo_root(repo)?;
    let report = studio()?.config_report(&root)?;
    if json {
        print_json(out, &report)?;
        return Ok(0);
    }
    let cfg: noctune_studio::ConfigReport = report;
    writeln!(out, "repository: {}", cfg.repo_root.display())?;
    let sources: Vec<String> = cfg
        .sources
        .iter()
        .map(|s| s.display().to_string())
        .collect();
    writeln!(
        out,
        "config files: {}",
        if sources.is_empty() {
            "(none; built-in defaults)".into()
        } else {
            sources.join(", ")
        }
    )?;
    writeln!(out, "audit DB: {}", cfg.audit_db.display())?;
    writeln!(
        out,
        "allowed roots: {}",
        cfg.allowed_roots
            .iter()
            .map(|r| r.display().to_string())
            .collect::<Vec<_>>()
            .join(":")
    )?;
    writeln!(out, "\npolicy packs:")?;
    for p in cfg.policy_packs.values() {
        let aa = &p.auto_approve;
        writeln!(
            out,
            "  {:<14} globs={:?} max_diff_lines={} tools_allowed={:?} checks={:?}",
            p.name, p.allowed_globs, p.max_diff_lines, p.tools_allowed, p.checks
        )?;
        writeln!(
            out,
            "  {:<14} proposer={} auto_approve={{enabled={}, max_risk={}, max_lines={}, require_tests={}}} grouping={:?} max_commits={}",
            "",
            serde_json::to_string(&p.proposer)?,
            aa.enabled,
            aa.max_risk,
            aa.max_lines,
            aa.require_tests,
            p.grouping,
            p.patchset_max_commits
        )?;
    }
    writeln!(out, "\nmodel profiles (default: {}):", cfg.default_profile)?;
    for p in cfg.model_profiles.values() {
        writeln!(
            out,
            "  {:<14} {} model={} context_window={} tool_mode={:?}",
            p.name, p.base_url, p.model, p.context_window, p.tool_mode
        )?;
    }
    writeln!(out, "\ntools:")?;
    for t in cfg.tools.values() {
        writeln!(
            out,
            "  {:<14} {:?} {}",
            t.name,
            t.stage,
            t.command.join(" ")
        )?;
    }
    Ok(0)
}

pub fn run(
    out: &mut dyn Write,
    repo: Option<PathBuf>,
    pack: String,
    profile: Option<String>,
    detach: bool,
    json: bool,
) -> anyhow::Result<i32> {
    let root = super::repo_root(repo)?;
    let studio = studio()?;
    let record = studio.start_run(&StartRequest {
        repo: root,
        pack,
        profile,
    })?;
    if !json {
        uncommitted_note(out, &studio, &record, detach)?;
    }
    follow_started(out, &studio, record, detach, json)
}

/// Says so at once when the user's working tree has changes the run leaves out (the host
/// records it as the run's second event, before the worker starts). On stderr with
/// `--detach`, whose stdout is the run id alone.
fn uncommitted_note(
    out: &mut dyn Write,
    studio: &Studio,
    record: &RunRecord,
    detach: bool,
) -> anyhow::Result<()> {
    use noctune_core::event::{EventPayload, uncommitted_note};
    let first = studio.events(record.run_id.as_str(), 0, 2)?;
    for ev in first {
        if let Some(EventPayload::UncommittedChanges {
            head_sha,
            count,
            files,
        }) = ev.body()
        {
            let line = format!("note: {}", uncommitted_note(&head_sha, count, &files));
            if detach {
                let _ = writeln!(std::io::stderr(), "{line}");
            } else {
                writeln!(out, "{line}")?;
            }
        }
    }
    Ok(())
}

pub fn resume(out: &mut dyn Write, run_id: &str, detach: bool, json: bool) -> anyhow::Result<i32> {
    let studio = studio()?;
    let record = studio.resume(run_id)?;
    follow_started(out, &studio, record, detach, json)
}

fn follow_started(
    out: &mut dyn Write,
    studio: &Studio,
    record: RunRecord,
    detach: bool,
    json: bool,
) -> anyhow::Result<i32> {
    let run_id = record.run_id.to_string();
    if detach {
        if json {
            print_json(out, &json!({"run_id": run_id}))?;
        } else {
            writeln!(out, "{run_id}")?;
        }
        return Ok(0);
    }
    if !json {
        writeln!(
            out,
            "run {run_id}: pack {} on {} (branch {})",
            record.pack, record.repo_root, record.branch
        )?;
        writeln!(
            out,
            "  events: noctune events {run_id} --follow    stop: noctune stop {run_id}"
        )?;
    }
    // The facade waits for the run and hands its events to this callback, which cannot hand
    // an error back: a line that cannot be printed ends the process here, as the error would
    // at the end (quietly when the reader of stdout has gone), and the run goes on in its
    // worker as a detached one does.
    let mut progress = super::progress::Progress::new(&run_id, json);
    let rec = studio.wait(&run_id, |evs| {
        if let Err(e) = progress.events(out, evs) {
            super::out::exit_now(e.into())
        }
    })?;
    progress.finish(out)?;
    finish_report(out, studio, &rec, json)
}

fn finish_report(
    out: &mut dyn Write,
    studio: &Studio,
    rec: &RunRecord,
    json: bool,
) -> anyhow::Result<i32> {
    if json {
        print_json(out, rec)?;
    } else {
        writeln!(out, "run {} ended: {}", rec.run_id, rec.status)?;
        if let Some(e) = &rec.error {
            writeln!(out, "  error: {e}")?;
        }
        if let Ok(commits) = studio.commits(rec) {
            for c in commits {
                writeln!(
                    out,
                    "  commit {} {}",
                    &c.sha[..c.sha.len().min(10)],
                    c.summary
                )?;
            }
        }
        print_summary(out, rec)?;
    }
    Ok(exit_code(rec))
}

/// The exit status of `noctune run` (and `resume`) for a run that ended `done` and committed
/// nothing (its `reason` says why). Documented in `noctune run --help` and docs/runs.md.
pub const EXIT_NO_COMMITS: i32 = 3;

/// `noctune run`'s exit status: 0 for a run that ended `done` with at least one commit,
/// [`EXIT_NO_COMMITS`] for one that ended `done` with none, 1 for a failed or stopped one.
fn exit_code(rec: &RunRecord) -> i32 {
    match rec.status {
        RunStatus::Done if rec.commits.unwrap_or(0) > 0 => 0,
        RunStatus::Done => EXIT_NO_COMMITS,
        _ => 1,
    }
}

/// The run's closing summary (`run.json`'s `summary`), for people.
fn print_summary(out: &mut dyn Write, rec: &RunRecord) -> anyhow::Result<()> {
    if let Some(s) = &rec.summary {
        writeln!(out, "summary:")?;
        for line in s.lines(&rec.branch) {
            writeln!(out, "  {line}")?;
        }
    }
    Ok(())
}

pub fn list(out: &mut dyn Write, repo: Option<PathBuf>, json: bool) -> anyhow::Result<i32> {
    let studio = studio()?;
    let root = match repo {
        Some(r) => Some(super::repo_root(Some(r))?),
        None => None,
    };
    let runs = studio.list_runs(root.as_deref())?;
    if json {
        print_json(out, &runs)?;
    } else if runs.is_empty() {
        writeln!(
            out,
            "no runs yet; start one with `noctune run --repo DIR --pack lint_fix`"
        )?;
    } else {
        writeln!(
            out,
            "{:<26} {:<17} {:<12} {:<25} REPO",
            "RUN", "STATUS", "PACK", "STARTED"
        )?;
        for r in runs {
            writeln!(
                out,
                "{:<26} {:<17} {:<12} {:<25} {}",
                r.run_id, r.status, r.pack, r.started_at, r.repo_root
            )?;
        }
    }
    Ok(0)
}

pub fn status(out: &mut dyn Write, run_id: &str, json: bool) -> anyhow::Result<i32> {
    let studio = studio()?;
    let rec = studio.status(run_id)?;
    if json {
        print_json(out, &rec)?;
    } else {
        writeln!(out, "{}", serde_json::to_string_pretty(&rec)?)?;
        print_summary(out, &rec)?;
    }
    Ok(0)
}

pub fn events(
    out: &mut dyn Write,
    run_id: &str,
    mut cursor: u64,
    follow: bool,
    json: bool,
) -> anyhow::Result<i32> {
    let studio = studio()?;
    loop {
        let batch = studio.events(run_id, cursor, 1000)?;
        for ev in &batch {
            cursor = ev.idx + 1;
            if json {
                print_json(out, ev)?;
            } else {
                writeln!(
                    out,
                    "{:>5} {} {:<20} {}",
                    ev.idx, ev.ts, ev.kind, ev.payload
                )?;
            }
        }
        if batch.len() == 1000 {
            continue;
        }
        if !follow
            || studio.status(run_id)?.status.is_terminal()
                && studio.events(run_id, cursor, 1)?.is_empty()
        {
            return Ok(0);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub fn approvals(out: &mut dyn Write, run_id: &str, json: bool) -> anyhow::Result<i32> {
    let studio = studio()?;
    let list = studio.approvals(run_id)?;
    if json {
        print_json(out, &list)?;
        return Ok(0);
    }
    if list.is_empty() {
        writeln!(out, "run {run_id} has no approvals")?;
    }
    for a in list {
        writeln!(
            out,
            "{} {:<13} risk {:>3}  {} {}",
            a.approval_id,
            a.status.as_str(),
            a.risk_score,
            a.file_path,
            a.symbol
        )?;
        writeln!(out, "    reason: {}", a.reason)?;
        if a.status == noctune_core::ApprovalStatus::Pending {
            writeln!(
                out,
                "    decide: noctune decide {run_id} {} approve|reject --reason TEXT",
                a.approval_id
            )?;
        }
        for l in a.diff.lines() {
            writeln!(out, "    {l}")?;
        }
    }
    Ok(0)
}

pub fn stop(out: &mut dyn Write, run_id: &str, grace: Option<u64>) -> anyhow::Result<i32> {
    let studio = studio()?;
    let rec = studio.stop(run_id, grace.map(Duration::from_secs))?;
    writeln!(out, "run {} is {}", rec.run_id, rec.status)?;
    Ok(0)
}
