//! `noctune run|runs|status|events|approvals|decide|stop|resume|config check`.

use anyhow::Context;
use noctune_core::{Decision, Event, RunRecord, RunStatus, StartRequest};
use noctune_studio::Studio;
use serde_json::json;
use std::path::PathBuf;
use std::time::Duration;

fn studio() -> anyhow::Result<Studio> {
    Studio::open_default()
        .context("opening the audit DB (set NOCTUNE_STUDIO_DB to use another file)")
}

fn print_json(v: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(v)?);
    Ok(())
}

pub fn config_check(repo: Option<PathBuf>, json: bool) -> anyhow::Result<i32> {
    let root = super::repo_root(repo)?;
    let report = studio()?.config_report(&root)?;
    if json {
        print_json(&report)?;
        return Ok(0);
    }
    let cfg: noctune_studio::ConfigReport = report;
    println!("repository: {}", cfg.repo_root.display());
    let sources: Vec<String> = cfg
        .sources
        .iter()
        .map(|s| s.display().to_string())
        .collect();
    println!(
        "config files: {}",
        if sources.is_empty() {
            "(none; built-in defaults)".into()
        } else {
            sources.join(", ")
        }
    );
    println!("audit DB: {}", cfg.audit_db.display());
    println!(
        "allowed roots: {}",
        cfg.allowed_roots
            .iter()
            .map(|r| r.display().to_string())
            .collect::<Vec<_>>()
            .join(":")
    );
    println!("\npolicy packs:");
    for p in cfg.policy_packs.values() {
        let aa = &p.auto_approve;
        println!(
            "  {:<14} globs={:?} max_diff_lines={} tools_allowed={:?} checks={:?}",
            p.name, p.allowed_globs, p.max_diff_lines, p.tools_allowed, p.checks
        );
        println!(
            "  {:<14} proposer={} auto_approve={{enabled={}, max_risk={}, max_lines={}, require_tests={}}} grouping={:?} max_commits={}",
            "",
            serde_json::to_string(&p.proposer)?,
            aa.enabled,
            aa.max_risk,
            aa.max_lines,
            aa.require_tests,
            p.grouping,
            p.patchset_max_commits
        );
    }
    println!("\nmodel profiles (default: {}):", cfg.default_profile);
    for p in cfg.model_profiles.values() {
        println!(
            "  {:<14} {} model={} context_window={} tool_mode={:?}",
            p.name, p.base_url, p.model, p.context_window, p.tool_mode
        );
    }
    println!("\ntools:");
    for t in cfg.tools.values() {
        println!("  {:<14} {:?} {}", t.name, t.stage, t.command.join(" "));
    }
    Ok(0)
}

pub fn run(
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
    follow_started(&studio, record, detach, json)
}

pub fn resume(run_id: &str, detach: bool, json: bool) -> anyhow::Result<i32> {
    let studio = studio()?;
    let record = studio.resume(run_id)?;
    follow_started(&studio, record, detach, json)
}

fn follow_started(
    studio: &Studio,
    record: RunRecord,
    detach: bool,
    json: bool,
) -> anyhow::Result<i32> {
    let run_id = record.run_id.to_string();
    if detach {
        if json {
            print_json(&json!({"run_id": run_id}))?;
        } else {
            println!("{run_id}");
        }
        return Ok(0);
    }
    if !json {
        println!(
            "run {run_id}: pack {} on {} (branch {})",
            record.pack, record.repo_root, record.branch
        );
        println!("  events: noctune events {run_id} --follow    stop: noctune stop {run_id}");
    }
    let rec = studio.wait(&run_id, |evs| {
        for ev in evs {
            if json {
                let _ = print_json(ev);
            } else if let Some(line) = progress_line(ev) {
                println!("{line}");
            }
        }
    })?;
    finish_report(studio, &rec, json)
}

fn finish_report(studio: &Studio, rec: &RunRecord, json: bool) -> anyhow::Result<i32> {
    if json {
        print_json(rec)?;
    } else {
        println!("run {} ended: {}", rec.run_id, rec.status);
        if let Some(e) = &rec.error {
            println!("  error: {e}");
        }
        if let Ok(commits) = studio.commits(rec) {
            for c in commits {
                println!("  commit {} {}", &c.sha[..c.sha.len().min(10)], c.summary);
            }
        }
    }
    Ok(if rec.status == RunStatus::Done { 0 } else { 1 })
}

/// One human-readable line for the events a person watching a run cares about.
pub fn progress_line(ev: &Event) -> Option<String> {
    use noctune_core::event::EventPayload as P;
    Some(match ev.body()? {
        P::Stage { stage } => format!("== {stage}"),
        P::ToolFinished {
            tool,
            stage,
            outcome,
            ..
        } => format!("  tool {tool} ({stage}): {outcome}"),
        P::ToolSkipped { tool, reason, .. } => format!("  tool {tool} skipped: {reason}"),
        P::EditProposed { file, .. } => format!("  proposed  {file}"),
        P::EditDropped { file, reason, .. } => format!("  dropped   {file}: {reason}"),
        P::EditRepaired { file, gate, .. } => format!("  repaired  {file} ({})", gate.as_str()),
        P::PolicyViolation { file, reason, .. } => format!("  REFUSED   {file}: {reason}"),
        P::EditRefused { file, reason, .. } => format!("  refused   {file}: {reason}"),
        P::AutoApproved {
            file, risk_score, ..
        } => format!("  approved  {file} (risk {risk_score}, auto)"),
        P::ApprovalRequested {
            file,
            risk_score,
            reason,
            decide,
            ..
        } => format!(
            "  WAITING   {file} (risk {risk_score}: {reason})\n            to approve: {decide}"
        ),
        P::ApprovalDecided {
            file,
            decision,
            decided_by,
            ..
        } => format!("  decided   {file}: {} by {decided_by}", decision.as_str()),
        P::PatchsetCommitted { n, of, sha, .. } => {
            format!("  commit    [{n}/{of}] {}", &sha[..sha.len().min(10)])
        }
        P::PatchsetFailed {
            n,
            of,
            reason,
            output_tail,
            ..
        } => format!(
            "  patchset  [{n}/{of}] not committed: {reason}\n{}",
            indent(&output_tail)
        ),
        P::StatusChanged { status, .. } => format!("  status -> {status}"),
        P::Stopped { .. } => "  stopped".into(),
        P::RunFailed { error } => format!("  FAILED: {error}"),
        _ => return None,
    })
}

fn indent(t: &str) -> String {
    t.lines()
        .map(|l| format!("            | {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn list(repo: Option<PathBuf>, json: bool) -> anyhow::Result<i32> {
    let studio = studio()?;
    let root = match repo {
        Some(r) => Some(super::repo_root(Some(r))?),
        None => None,
    };
    let runs = studio.list_runs(root.as_deref())?;
    if json {
        print_json(&runs)?;
    } else if runs.is_empty() {
        println!("no runs yet; start one with `noctune run --repo DIR --pack lint_fix`");
    } else {
        println!(
            "{:<26} {:<17} {:<12} {:<25} {}",
            "RUN", "STATUS", "PACK", "STARTED", "REPO"
        );
        for r in runs {
            println!(
                "{:<26} {:<17} {:<12} {:<25} {}",
                r.run_id, r.status, r.pack, r.started_at, r.repo_root
            );
        }
    }
    Ok(0)
}

pub fn status(run_id: &str, json: bool) -> anyhow::Result<i32> {
    let studio = studio()?;
    let rec = studio.status(run_id)?;
    if json {
        print_json(&rec)?;
    } else {
        println!("{}", serde_json::to_string_pretty(&rec)?);
    }
    Ok(0)
}

pub fn events(run_id: &str, mut cursor: u64, follow: bool, json: bool) -> anyhow::Result<i32> {
    let studio = studio()?;
    loop {
        let batch = studio.events(run_id, cursor, 1000)?;
        for ev in &batch {
            cursor = ev.idx + 1;
            if json {
                print_json(ev)?;
            } else {
                println!("{:>5} {} {:<20} {}", ev.idx, ev.ts, ev.kind, ev.payload);
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

pub fn approvals(run_id: &str, json: bool) -> anyhow::Result<i32> {
    let studio = studio()?;
    let list = studio.approvals(run_id)?;
    if json {
        print_json(&list)?;
        return Ok(0);
    }
    if list.is_empty() {
        println!("run {run_id} has no approvals");
    }
    for a in list {
        println!(
            "{} {:<13} risk {:>3}  {} {}",
            a.approval_id,
            a.status.as_str(),
            a.risk_score,
            a.file_path,
            a.symbol
        );
        println!("    reason: {}", a.reason);
        if a.status == noctune_core::ApprovalStatus::Pending {
            println!(
                "    decide: noctune decide {run_id} {} approve|reject --reason TEXT",
                a.approval_id
            );
        }
        for l in a.diff.lines() {
            println!("    {l}");
        }
    }
    Ok(0)
}

pub fn decide(
    run_id: &str,
    approval_id: &str,
    decision: &str,
    reason: &str,
    by: Option<String>,
) -> anyhow::Result<i32> {
    let decision = Decision::parse(decision).context("decision must be approve or reject")?;
    let by = by
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "cli".into());
    let studio = studio()?;
    let d = studio.decide(run_id, approval_id, decision, reason, &format!("cli:{by}"))?;
    println!(
        "{} {} by {} at {}",
        d.approval_id,
        d.decision.as_str(),
        d.decided_by,
        d.decided_at
    );
    Ok(0)
}

pub fn stop(run_id: &str, grace: Option<u64>) -> anyhow::Result<i32> {
    let studio = studio()?;
    let rec = studio.stop(run_id, grace.map(Duration::from_secs))?;
    println!("run {} is {}", rec.run_id, rec.status);
    Ok(0)
}
