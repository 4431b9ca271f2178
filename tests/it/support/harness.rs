//! The in-process harness: the `Studio` facade (and, through it, chat) in this test process
//! on a private audit DB and a real git repository made from `fixtures/`. No surface process
//! is spawned; only each run's worker is a child process, as in production (its program is
//! the real `noctune` binary).
//!
//! Use it for behaviour of the facade and below; keep the binary-level tests (support/cli.rs)
//! for what only a process can show: exit codes, stdio protocols, signals, printed output.

use crate::support::cli::bin;
use crate::support::repo::FixtureRepo;
use crate::support::wait::wait_for;
use noctune_studio::{ApprovalView, Event, RunRecord, RunStatus, StartRequest, Studio};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub struct Harness {
    pub repo: FixtureRepo,
    pub studio: Arc<Studio>,
    db_dir: tempfile::TempDir,
}

impl Harness {
    /// A repository from `fixture` (plus `extra` files) and a facade confined to its roots.
    pub fn new(fixture: &str, extra: &[(&str, &str)]) -> Harness {
        assert!(
            Studio::use_worker_binary(bin()),
            "another worker binary is set"
        );
        let repo = FixtureRepo::new(fixture, extra);
        let db_dir = tempfile::Builder::new()
            .prefix("noctune-harness-db-")
            .tempdir()
            .unwrap();
        let studio = Studio::for_repository(&db_dir.path().join("audit.sqlite"), &repo.path())
            .unwrap_or_else(|e| panic!("opening the facade: {e}"));
        Harness {
            repo,
            studio: Arc::new(studio),
            db_dir,
        }
    }

    pub fn db(&self) -> PathBuf {
        self.db_dir.path().join("audit.sqlite")
    }

    pub fn start(&self, pack: &str) -> RunRecord {
        self.studio
            .start_run(&StartRequest {
                repo: self.repo.path(),
                pack: pack.into(),
                profile: None,
            })
            .unwrap_or_else(|e| panic!("start {pack}: {} {}", e.code, e.message))
    }

    /// The run's record once `pred` holds for it (panics after `secs`).
    pub fn wait_for(
        &self,
        run_id: &str,
        secs: u64,
        what: &str,
        pred: impl Fn(&RunRecord) -> bool,
    ) -> RunRecord {
        wait_for(Duration::from_secs(secs), what, || {
            let rec = self.studio.status(run_id).ok()?;
            pred(&rec).then_some(rec)
        })
    }

    pub fn wait_status(&self, run_id: &str, status: RunStatus, secs: u64) -> RunRecord {
        let rec = self.wait_for(run_id, secs, &format!("run {run_id} to be {status}"), |r| {
            r.status == status || r.status.is_terminal()
        });
        assert_eq!(rec.status, status, "{rec:#?}");
        rec
    }

    pub fn events(&self, run_id: &str) -> Vec<Event> {
        self.studio.events(run_id, 0, 5000).unwrap()
    }

    pub fn approvals(&self, run_id: &str) -> Vec<ApprovalView> {
        self.studio.approvals(run_id).unwrap()
    }
}
