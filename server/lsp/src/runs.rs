//! `noctune/runs/start|list|stop`, `noctune/packs`, and `$/progress` for runs started here
//! (files done, approvals waiting). A run's worker is detached by design: it keeps running
//! when the editor goes away; this session only waits for it (to reap it and to mark a dead
//! worker's run failed) while it lives.

use super::protocol::{RunsStartParams, RunsStopParams};
use super::state::{Reporting, Shared, Snapshot, blocking, failed, invalid};
use noctune_core::{ApprovalStatus, RunStatus};
use noctune_studio::StartRequest;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;
use tower_lsp_server::jsonrpc::Result;
use tower_lsp_server::ls_types::notification::Progress;
use tower_lsp_server::ls_types::{
    NumberOrString, ProgressParams, ProgressParamsValue, WorkDoneProgress, WorkDoneProgressBegin,
    WorkDoneProgressEnd, WorkDoneProgressReport,
};

fn to_json(v: &impl serde::Serialize) -> Result<Value> {
    serde_json::to_value(v).map_err(|e| failed(e.to_string()))
}

async fn send_progress(shared: &Shared, token: NumberOrString, value: WorkDoneProgress) {
    let params = ProgressParams {
        token,
        value: ProgressParamsValue::WorkDone(value),
    };
    shared.client.send_notification::<Progress>(params).await;
}

/// `noctune/runs/start`: starts a run of `pack` on this workspace's repository.
pub async fn start(shared: &Shared, p: RunsStartParams) -> Result<Value> {
    if p.pack.trim().is_empty() {
        return Err(invalid("`pack` is required (see noctune/packs)"));
    }
    let studio = shared.studio().await?;
    let repo = match p.repo.as_deref().filter(|r| !r.is_empty()) {
        Some(r) => std::path::PathBuf::from(r),
        None => shared.repo().await?,
    };
    let req = StartRequest {
        repo,
        pack: p.pack.clone(),
        profile: p.profile.clone(),
    };
    let s = studio.clone();
    let record = blocking(move || s.start_run(&req)).await?;
    let run_id = record.run_id.to_string();
    shared.runs.add_live(&run_id);
    if shared.caps().work_done_progress || p.work_done_token.is_some() {
        let token = match p.work_done_token {
            Some(t) => Some(t),
            None => {
                let t = NumberOrString::String(format!("noctune/run/{run_id}"));
                shared
                    .client
                    .create_work_done_progress(t.clone())
                    .await
                    .ok()
                    .map(|_| t)
            }
        };
        if let Some(token) = token {
            let begin = WorkDoneProgressBegin {
                title: format!("Noctune: {}", record.pack),
                cancellable: Some(false),
                message: Some(format!("run {run_id} queued")),
                percentage: None,
            };
            send_progress(shared, token.clone(), WorkDoneProgress::Begin(begin)).await;
            shared
                .runs
                .progress
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(
                    run_id.clone(),
                    Reporting {
                        token,
                        last: String::new(),
                    },
                );
        }
    }
    shared.wake.notify_one();
    to_json(&record)
}

/// `noctune/runs/list`: runs of this workspace, newest first.
pub async fn list(shared: &Shared) -> Result<Value> {
    let studio = shared.studio().await?;
    let repo = shared.repo().await?;
    let runs = blocking(move || studio.list_runs(Some(&repo))).await?;
    Ok(json!({"runs": to_json(&runs)?}))
}

/// `noctune/runs/stop`: cooperative stop, then a kill after the grace period.
pub async fn stop(shared: &Shared, p: RunsStopParams) -> Result<Value> {
    let studio = shared.studio().await?;
    let grace = p.grace_secs.map(Duration::from_secs);
    let rec = blocking(move || studio.stop(&p.run_id, grace)).await?;
    shared.wake.notify_one();
    to_json(&rec)
}

/// `noctune/packs`: the packs and model profiles this workspace's configuration defines.
pub async fn packs(shared: &Shared) -> Result<Value> {
    let repo = shared.repo().await?;
    let studio = shared.studio().await?;
    let cfg = blocking(move || studio.repo_config(&repo)).await?;
    Ok(json!({
        "packs": cfg.packs.iter().map(|p| &p.name).collect::<Vec<_>>(),
        "profiles": cfg.profiles.iter().map(|p| &p.name).collect::<Vec<_>>(),
        "default_profile": cfg.default_profile,
    }))
}

fn message(status: RunStatus, stage: &str, files_done: usize, waiting: usize) -> String {
    let mut m = format!("{}: {files_done} files done", status.as_str());
    if waiting > 0 {
        m.push_str(&format!(", {waiting} approvals waiting"));
    }
    if !stage.is_empty() && stage != status.as_str() {
        m.push_str(&format!(" ({stage})"));
    }
    m
}

/// Reports progress of the runs started here; ends it when they end.
pub async fn report(shared: &Shared, snap: &Snapshot) {
    let mut sends = Vec::new();
    {
        let mut progress = shared
            .runs
            .progress
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for (rec, approvals) in &snap.runs {
            let id = rec.run_id.to_string();
            let Some(r) = progress.get_mut(&id) else {
                continue;
            };
            let done: BTreeSet<&str> = approvals
                .iter()
                .filter(|a| a.status != ApprovalStatus::Pending)
                .map(|a| a.file_path.as_str())
                .collect();
            let waiting = approvals
                .iter()
                .filter(|a| a.status == ApprovalStatus::Pending)
                .count();
            let msg = message(rec.status, &rec.stage, done.len(), waiting);
            if rec.status.is_terminal() {
                let end = match &rec.error {
                    Some(e) => format!("{msg}: {e}"),
                    None => msg,
                };
                sends.push((
                    r.token.clone(),
                    WorkDoneProgress::End(WorkDoneProgressEnd { message: Some(end) }),
                ));
                progress.remove(&id);
            } else if msg != r.last {
                r.last = msg.clone();
                let rep = WorkDoneProgressReport {
                    cancellable: Some(false),
                    message: Some(msg),
                    percentage: None,
                };
                sends.push((r.token.clone(), WorkDoneProgress::Report(rep)));
            }
        }
    }
    for (token, value) in sends {
        send_progress(shared, token, value).await;
    }
}
