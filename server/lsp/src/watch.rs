//! The watcher: about every 500 ms (and at once when woken) it reads the runs of this
//! workspace through the facade and hands the snapshot to the diagnostics (approvals) and the
//! progress reports (runs). Runs started or decided elsewhere show up here the same way.

use super::state::{Shared, Snapshot};
use noctune_core::RunRecord;
use std::sync::Arc;
use std::time::Duration;

pub const PERIOD: Duration = Duration::from_millis(500);
/// Every this many ticks the full run list is read (new runs from other surfaces); in
/// between only the runs already known to be live.
const FULL_EVERY: u64 = 4;

static GATE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub async fn run(shared: Arc<Shared>) {
    let mut tick: u64 = 0;
    loop {
        if shared.is_shut_down() {
            return;
        }
        let ran = refresh(&shared, tick % FULL_EVERY == 0).await;
        tick += 1;
        // No repository (or no audit DB) yet: look again now and then, not every tick.
        let wait = if ran { PERIOD } else { PERIOD * 10 };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shared.wake.notified() => { tick = 0; }
        }
    }
}

/// One pass: snapshot, diagnostics, progress. Passes never overlap. `false` when there was
/// nothing to look at (no repository or audit DB).
pub async fn refresh(shared: &Shared, full: bool) -> bool {
    let _gate = GATE.lock().await;
    let (Ok(studio), Ok(repo)) = (shared.studio().await, shared.repo().await) else {
        return false;
    };
    let tracked = shared.runs.tracked_ids();
    let known = shared.runs.live_ids();
    let r = repo.clone();
    let snap = tokio::task::spawn_blocking(move || {
        let records: Vec<RunRecord> = if full || known.is_empty() {
            studio
                .list_runs(Some(&r))?
                .into_iter()
                .filter(|rec| {
                    !rec.status.is_terminal() || tracked.contains(&rec.run_id.to_string())
                })
                .collect()
        } else {
            let mut ids = known.clone();
            ids.extend(tracked.iter().cloned());
            ids.sort();
            ids.dedup();
            ids.iter().filter_map(|id| studio.status(id).ok()).collect()
        };
        let mut runs = Vec::new();
        for rec in records {
            let approvals = studio.approvals(rec.run_id.as_str()).unwrap_or_default();
            runs.push((rec, approvals));
        }
        Ok::<_, noctune_studio::OpError>(Snapshot { runs })
    })
    .await;
    let snap = match snap {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!("watcher: {e}");
            return false;
        }
        Err(e) => {
            tracing::warn!("watcher: {e}");
            return false;
        }
    };
    shared.runs.set_live(
        snap.runs
            .iter()
            .filter(|(r, _)| !r.status.is_terminal())
            .map(|(r, _)| r.run_id.to_string())
            .collect(),
    );
    super::diagnostics::publish(shared, &repo, &snap).await;
    super::runs::report(shared, &snap).await;
    true
}
