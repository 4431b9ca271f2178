//! The run-state machine and the shape of `state/run.json`.
//!
//! `queued → running ⇄ waiting_approval → (done | failed | stopped)`, with `stopping` between a
//! stop request and `stopped`. [`RunStatus::transition`] is the only place that decides whether
//! a status change is legal; every writer of `run.json` goes through it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Where a run is: queued → running ⇄ waiting_approval → done | failed | stopped, with
/// stopping between a stop request and stopped. done, failed and stopped are terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Queued,
    Running,
    WaitingApproval,
    Stopping,
    Done,
    Failed,
    Stopped,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("run status cannot change from {from} to {to}")]
pub struct TransitionError {
    pub from: RunStatus,
    pub to: RunStatus,
}

impl RunStatus {
    pub const ALL: [RunStatus; 7] = [
        RunStatus::Queued,
        RunStatus::Running,
        RunStatus::WaitingApproval,
        RunStatus::Stopping,
        RunStatus::Done,
        RunStatus::Failed,
        RunStatus::Stopped,
    ];

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunStatus::Done | RunStatus::Failed | RunStatus::Stopped
        )
    }

    /// Whether a worker process is expected to exist for a run in this status.
    pub fn is_live(self) -> bool {
        !self.is_terminal()
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::WaitingApproval => "waiting_approval",
            RunStatus::Stopping => "stopping",
            RunStatus::Done => "done",
            RunStatus::Failed => "failed",
            RunStatus::Stopped => "stopped",
        }
    }

    pub fn parse(s: &str) -> Option<RunStatus> {
        RunStatus::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// The single rule for status changes. Resume is the one way out of a terminal state:
    /// `stopped`/`failed` → `queued`. `done` is final.
    pub fn transition(self, to: RunStatus) -> Result<RunStatus, TransitionError> {
        use RunStatus::*;
        let ok = match (self, to) {
            (a, b) if a == b => !a.is_terminal(),
            (Queued, Running | Failed | Stopping | Stopped) => true,
            (Running, WaitingApproval | Done | Failed | Stopping) => true,
            (WaitingApproval, Running | Failed | Stopping) => true,
            (Stopping, Stopped | Failed) => true,
            (Stopped | Failed, Queued) => true,
            _ => false,
        };
        if ok {
            Ok(to)
        } else {
            Err(TransitionError { from: self, to })
        }
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What `noctune resume` does with a run's recorded work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ResumePolicy {
    /// Keep every recorded proposal, decision and committed patchset; redo only what is missing.
    #[default]
    Continue,
    /// The run may not be resumed (set by a user who wants a fresh run instead).
    Never,
}

/// `state/run.json`: the single source of truth of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunRecord {
    /// The run's id: a UTC timestamp and random hex (`20261125T101010Z-0a1b2c3d`).
    pub run_id: super::RunId,
    pub status: RunStatus,
    /// When the run was created (RFC 3339, UTC).
    pub started_at: String,
    /// When run.json last changed (RFC 3339, UTC).
    pub updated_at: String,
    /// When the run reached a terminal status (RFC 3339, UTC); null while it is live.
    pub ended_at: Option<String>,
    /// Absolute path of the repository the run works on.
    pub repo_root: String,
    /// The policy pack the run applies.
    pub pack: String,
    /// The model profile of the pack's proposer.
    pub profile: String,
    /// The branch the run commits to (the user's branch is never touched).
    pub branch: String,
    /// The commit the run started from.
    pub head_sha: String,
    /// Why a failed run failed; null otherwise.
    pub error: Option<String>,
    pub resume_policy: ResumePolicy,
    /// Process id of the run's worker while one runs.
    pub worker_pid: Option<u32>,
    /// Start time of the worker process (clock ticks since boot, `/proc/<pid>/stat` field 22),
    /// so that a reused pid is not mistaken for our worker.
    #[serde(default)]
    pub worker_start_time: Option<u64>,
    /// The worker's current step: `queued`, `propose`, `approvals`, `patchsets`, ...
    pub stage: String,
}

#[cfg(test)]
mod tests {
    use super::RunStatus::*;
    use super::*;

    #[test]
    fn legal_paths() {
        let path = [Queued, Running, WaitingApproval, Running, Done];
        for w in path.windows(2) {
            assert!(w[0].transition(w[1]).is_ok(), "{:?}", w);
        }
        assert!(
            Running
                .transition(Stopping)
                .unwrap()
                .transition(Stopped)
                .is_ok()
        );
        assert!(Stopped.transition(Queued).is_ok());
    }

    #[test]
    fn terminal_states_are_sticky() {
        for to in RunStatus::ALL {
            assert!(Done.transition(to).is_err(), "done -> {to}");
            if to != Queued {
                assert!(Failed.transition(to).is_err(), "failed -> {to}");
                assert!(Stopped.transition(to).is_err(), "stopped -> {to}");
            }
        }
        assert!(
            Stopping.transition(Done).is_err(),
            "a stop request must end in stopped"
        );
    }

    #[test]
    fn names_round_trip() {
        for s in RunStatus::ALL {
            assert_eq!(RunStatus::parse(s.as_str()), Some(s));
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.as_str())
            );
        }
    }
}

/// What a surface asks for when it starts a run.
#[derive(Debug, Clone)]
pub struct StartRequest {
    pub repo: std::path::PathBuf,
    pub pack: String,
    pub profile: Option<String>,
}
