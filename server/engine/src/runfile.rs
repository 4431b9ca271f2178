//! Reading and changing `state/run.json`. Every change goes through [`update`], which takes the
//! run's lock, applies the core's transition rule and writes atomically.

use super::paths::RunPaths;
use noctune_core::{RunRecord, RunStatus, TransitionError};
use noctune_util::{fsx, time};
use std::fs::File;

#[derive(Debug, thiserror::Error)]
pub enum RunFileError {
    #[error(
        "run {run_id}: {path} is missing: the run was never started here or its folder was deleted"
    )]
    Missing { run_id: String, path: String },
    #[error(
        "run {run_id}: {path} is corrupt ({detail}); the audit DB still has the run's history: `noctune status {run_id}`"
    )]
    Corrupt {
        run_id: String,
        path: String,
        detail: String,
    },
    #[error("run {run_id}: {0}", run_id = .1)]
    Transition(TransitionError, String),
    #[error("run file IO: {0}")]
    Io(#[from] std::io::Error),
}

pub fn read(paths: &RunPaths) -> Result<RunRecord, RunFileError> {
    let path = paths.run_json();
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(RunFileError::Missing {
                run_id: paths.run_id.to_string(),
                path: path.display().to_string(),
            });
        }
        Err(e) => return Err(e.into()),
    };
    serde_json::from_slice(&bytes).map_err(|e| RunFileError::Corrupt {
        run_id: paths.run_id.to_string(),
        path: path.display().to_string(),
        detail: e.to_string(),
    })
}

pub fn create(paths: &RunPaths, rec: &RunRecord) -> Result<(), RunFileError> {
    std::fs::create_dir_all(paths.approvals_dir())?;
    fsx::write_json_atomic(&paths.run_json(), rec)?;
    Ok(())
}

/// Holds the run's lock while it lives.
pub struct RunLock(File);

impl RunLock {
    pub fn acquire(paths: &RunPaths) -> std::io::Result<RunLock> {
        std::fs::create_dir_all(paths.state_dir())?;
        let f = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(paths.lock_file())?;
        f.lock()?;
        Ok(RunLock(f))
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

/// Applies `change` to the current record under the run's lock. `change` returns the status to
/// move to (checked by [`RunStatus::transition`]) or `None` to keep the status. `updated_at` is
/// always refreshed; `ended_at` is set when the run reaches a terminal status.
pub fn update(
    paths: &RunPaths,
    change: impl FnOnce(&mut RunRecord) -> Option<RunStatus>,
) -> Result<RunRecord, RunFileError> {
    let _lock = RunLock::acquire(paths)?;
    let rec = read(paths)?;
    let before = rec.status;
    let mut next = rec.clone();
    if let Some(to) = change(&mut next) {
        next.status = before
            .transition(to)
            .map_err(|e| RunFileError::Transition(e, paths.run_id.to_string()))?;
    } else {
        next.status = before;
    }
    next.updated_at = time::now_rfc3339();
    if next.status.is_terminal() && !before.is_terminal() {
        next.ended_at = Some(next.updated_at.clone());
    }
    if next.status == RunStatus::Queued && before.is_terminal() {
        next.ended_at = None;
        next.error = None;
    }
    fsx::write_json_atomic(&paths.run_json(), &next)?;
    Ok(next)
}
