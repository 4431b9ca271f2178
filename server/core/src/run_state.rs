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
    /// Commits the run made on its branch, set when it ends; null while it is live (and in
    /// records of older versions).
    #[serde(default)]
    pub commits: Option<usize>,
    /// Why a run that ended `done` committed nothing (`nothing to change`, `every patchset
    /// regressed pytest`, ...); null otherwise.
    #[serde(default)]
    pub reason: Option<String>,
    /// What the run did, written when it ends; null before.
    #[serde(default)]
    pub summary: Option<RunSummary>,
}

/// The closing account of a run (`run.json`'s `summary`): what was proposed and decided, what
/// was committed or rolled back and why, and how the checks did on the base commit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunSummary {
    /// Files with a proposed edit.
    pub files_proposed: usize,
    pub auto_approved: usize,
    /// Approved by a person.
    pub approved: usize,
    /// Rejected by a person.
    pub rejected: usize,
    /// Refused by the pack's policy (outside its globs, too large, ...).
    pub refused: usize,
    /// Dropped before they were proposed (by a gate, or a failed model request).
    pub dropped: usize,
    pub patchsets_committed: usize,
    /// Patchsets rolled back, each with why.
    pub rolled_back: Vec<RolledBack>,
    /// Commits on the run's branch.
    pub commits: usize,
    /// How each check did on the base commit, before any edit.
    pub baselines: Vec<BaselineSummary>,
    /// Anything else worth knowing (uncommitted changes left out, an installed copy of the
    /// project, a deleted empty branch).
    pub notes: Vec<String>,
}

/// A patchset that was not committed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RolledBack {
    pub files: Vec<String>,
    pub reason: String,
    /// The check that failed it; null for another reason (a stale approval).
    #[serde(default)]
    pub tool: Option<String>,
}

/// A check's result on the base commit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BaselineSummary {
    pub tool: String,
    pub status: super::patchset::CheckStatus,
    /// How many tests (or findings) fail on the base commit.
    pub failing: usize,
    pub summary: String,
    /// Patchsets this check rolled back.
    pub regressions: usize,
}

impl RunSummary {
    /// Why a finished run has no commit, from what it did; `None` when it has one.
    pub fn no_commit_reason(&self) -> Option<String> {
        if self.commits > 0 {
            return None;
        }
        let decided = self.auto_approved + self.approved;
        Some(if self.files_proposed == 0 {
            let mut why = "nothing to change".to_string();
            let left: Vec<String> = [
                (self.dropped, "dropped by a gate"),
                (self.refused, "refused"),
            ]
            .into_iter()
            .filter(|(n, _)| *n > 0)
            .map(|(n, what)| format!("{n} {what}"))
            .collect();
            if !left.is_empty() {
                why = format!("nothing to change ({} before proposing)", left.join(", "));
            }
            why
        } else if decided == 0 {
            if self.rejected > 0 && self.refused == 0 {
                "all edits rejected".to_string()
            } else if self.rejected == 0 {
                "all edits refused by the pack's policy".to_string()
            } else {
                format!(
                    "no edit approved ({} rejected, {} refused)",
                    self.rejected, self.refused
                )
            }
        } else if self.rolled_back.is_empty() {
            "no approved edit could be applied".to_string()
        } else {
            let mut tools: Vec<&str> = self
                .rolled_back
                .iter()
                .filter_map(|r| r.tool.as_deref())
                .collect();
            tools.sort_unstable();
            tools.dedup();
            let all_by_checks = self.rolled_back.iter().all(|r| r.tool.is_some());
            match tools.as_slice() {
                [one] if all_by_checks => format!("every patchset regressed {one}"),
                [] => format!(
                    "every patchset was rolled back: {}",
                    self.rolled_back[0].reason
                ),
                many => format!("every patchset was rolled back ({})", many.join(", ")),
            }
        })
    }

    /// The summary as lines for people (every surface prints these).
    pub fn lines(&self, branch: &str) -> Vec<String> {
        let mut out = vec![format!(
            "proposed {} file(s): {} auto-approved, {} approved, {} rejected; {} refused, {} dropped",
            self.files_proposed,
            self.auto_approved,
            self.approved,
            self.rejected,
            self.refused,
            self.dropped
        )];
        out.push(format!(
            "patchsets: {} committed, {} rolled back",
            self.patchsets_committed,
            self.rolled_back.len()
        ));
        for r in &self.rolled_back {
            out.push(format!(
                "  rolled back {}: {}",
                r.files.join(", "),
                r.reason
            ));
        }
        for b in &self.baselines {
            let regressions = match b.regressions {
                0 => "regressions: none".to_string(),
                n => format!("regressions: {n} patchset(s) rolled back"),
            };
            out.push(match b.status {
                super::patchset::CheckStatus::Failed => format!(
                    "{} also fails on the base commit: {}; {regressions}",
                    b.tool, b.summary
                ),
                super::patchset::CheckStatus::Passed => {
                    format!(
                        "{} passes on the base commit ({}); {regressions}",
                        b.tool, b.summary
                    )
                }
                super::patchset::CheckStatus::Skipped => {
                    format!("{} checked nothing: {}", b.tool, b.summary)
                }
            });
        }
        out.push(match self.no_commit_reason() {
            None => format!("commits: {} on {branch}", self.commits),
            Some(why) => format!("commits: 0 ({why})"),
        });
        out.extend(self.notes.iter().map(|n| format!("note: {n}")));
        out
    }
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
