//! A run's recorded files, read back: approval requests and decisions, the patchset plan, and
//! the copy of everything into the audit DB. Used by the worker and by the host (the API).

use super::paths::RunPaths;
use super::runfile;
use super::storage::RepoBlobs;
use noctune_core::approval::verify_decision;
use noctune_core::{ApprovalDecision, ApprovalRequest, PatchsetPlan};
use noctune_store::AuditStore;
use std::collections::BTreeSet;

/// The run's approval requests as recorded, unchecked: whoever uses one checks it against its
/// id (`ApprovalRequest::verify`). A file not named after the id it holds is not one of them.
pub fn load_requests(paths: &RunPaths) -> std::io::Result<Vec<ApprovalRequest>> {
    let mut out = Vec::new();
    let dir = match std::fs::read_dir(paths.approvals_dir()) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for entry in dir {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if !name.ends_with(".json") || name.ends_with(".decision.json") || name.starts_with('.') {
            continue;
        }
        if let Ok(req) = serde_json::from_slice::<ApprovalRequest>(&std::fs::read(&path)?)
            && name.strip_suffix(".json") == Some(req.approval_id.as_str())
        {
            out.push(req);
        }
    }
    out.sort_by(|a, b| {
        a.file_path
            .cmp(&b.file_path)
            .then(a.approval_id.cmp(&b.approval_id))
    });
    Ok(out)
}

/// One request read again from `<id>.json`; `None` when it is gone or unreadable.
pub fn load_request(paths: &RunPaths, id: &str) -> Option<ApprovalRequest> {
    let req: ApprovalRequest =
        serde_json::from_slice(&std::fs::read(paths.approval(id)).ok()?).ok()?;
    (req.approval_id.as_str() == id).then_some(req)
}

pub fn load_decision(paths: &RunPaths, id: &str) -> Option<ApprovalDecision> {
    let bytes = std::fs::read(paths.decision(id)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

pub fn load_plan(paths: &RunPaths) -> Option<PatchsetPlan> {
    serde_json::from_slice(&std::fs::read(paths.patchsets()).ok()?).ok()
}

/// Copies everything of the run into the audit DB (idempotent). A request whose content is not
/// what its id names, and a decision that does not match its request, are left out: the DB
/// keeps what was proposed and decided, not what was changed on disk afterwards.
pub fn full_ingest(paths: &RunPaths, store: &AuditStore) {
    if let Ok(events) = super::events::read_events(paths, 0, usize::MAX) {
        for chunk in events.chunks(2000) {
            let _ = store.ingest_events(&paths.run_id, chunk);
        }
    }
    if let Ok(mut reqs) = load_requests(paths) {
        let blobs = RepoBlobs::of_run(paths);
        reqs.retain(|r| r.verify(&blobs).is_ok());
        for r in &reqs {
            let _ = store.upsert_approval(r);
        }
        let decided: BTreeSet<String> = store
            .decisions(&paths.run_id)
            .map(|ds| ds.into_iter().map(|d| d.approval_id.to_string()).collect())
            .unwrap_or_default();
        for r in &reqs {
            if let Some(d) = load_decision(paths, r.approval_id.as_str())
                && !decided.contains(d.approval_id.as_str())
                && verify_decision(r, &d, &blobs).is_ok()
            {
                let _ = store.record_decision(&paths.run_id, &d);
            }
        }
    }
    if let Ok(rec) = runfile::read(paths) {
        let _ = store.upsert_run(&rec);
    }
}
