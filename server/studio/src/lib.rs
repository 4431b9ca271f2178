//! The one API every surface (terminal, web, editor, MCP) calls: a `Studio` handle with plain
//! request/response types. Each rule that more than one surface relies on is decided here
//! once (or in the layer below that owns it): which repositories may be touched, supervision
//! of a run's worker, limits on what a request may carry, and the error code of a failure.
//!
//! Invariant: no protocol types (LSP, HTTP, MCP) and no protocol words in messages. A surface
//! translates its protocol into these calls and an [`OpError`] into its protocol; it decides
//! nothing. Adapter crates depend on this crate and `noctune-core` only, so the engine, chat,
//! store, config and git crates are out of their reach (tests/it/arch.rs keeps it so).

mod bulk;
pub mod chat;
pub mod limits;
mod repo;
mod runs;
pub mod schema;
mod util;

pub use noctune_core::{
    ApprovalDecision, ApprovalFilter, ApprovalStatus, ApprovalView, BulkDecision, BulkItem,
    BulkOutcome, Decision, ErrorCode, Event, OpError, PatchsetStatus, PlannedPatchset, RunRecord,
    RunStatus, SkipReason, StartRequest,
};
pub use repo::{
    ConfigReport, EngineSettings, ModelHealth, ModelProfile, PackSummary, PolicyPack,
    ProfileSummary, RepoConfig, ToolDef,
};
pub use runs::{Commit, EventFeed, PatchsetPlan};
pub use util::{blocking_io, logging_init, prefix_bytes, prefix_chars, suffix_bytes};

use noctune_store::AuditStore;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

/// Which repositories this handle may start runs on and chat in.
#[derive(Debug, Clone)]
enum Roots {
    /// Each repository's own configured roots: for the terminal, where the person at the
    /// keyboard names the repository.
    PerRepository,
    /// Fixed at launch (`noctune studio --repo A`, `noctune lsp`, `noctune mcp`): a request
    /// from a page, an editor or an agent may not reach any other repository.
    Fixed(Vec<PathBuf>),
}

pub struct Studio {
    store: Mutex<AuditStore>,
    db: PathBuf,
    roots: Roots,
    /// Runs whose worker this process reaps.
    supervised: Mutex<std::collections::HashSet<String>>,
}

impl Studio {
    /// A handle on the audit DB at `db` whose roots are each repository's own.
    pub fn open(db: &Path) -> Result<Studio, OpError> {
        let store = AuditStore::open(db).map_err(|e| {
            OpError::new(
                ErrorCode::Internal,
                format!(
                    "opening the audit DB {}: {e} (set NOCTUNE_STUDIO_DB to use another file)",
                    db.display()
                ),
            )
        })?;
        Ok(Studio {
            db: store.path().to_path_buf(),
            store: Mutex::new(store),
            roots: Roots::PerRepository,
            supervised: Mutex::default(),
        })
    }

    /// The audit DB named by the environment (`NOCTUNE_STUDIO_DB`, else the XDG data folder).
    pub fn open_default() -> Result<Studio, OpError> {
        Studio::open(&noctune_config::db_path_from_env())
    }

    /// A handle that serves `repo_root`: runs and chat only inside the roots its configuration
    /// allows (`NOCTUNE_STUDIO_ALLOWED_ROOTS`, default: the repository itself).
    pub fn for_repository(db: &Path, repo_root: &Path) -> Result<Studio, OpError> {
        let root = match repo::discover(repo_root) {
            Ok(root) => {
                restore_cache(&root, false);
                root
            }
            Err(_) => repo_root.to_path_buf(),
        };
        let cfg = noctune_config::load(&root)
            .map_err(|e| OpError::new(ErrorCode::ConfigError, e.to_string()))?;
        let mut studio = Studio::open(db)?;
        studio.roots = Roots::Fixed(cfg.allowed_roots.clone());
        Ok(studio)
    }

    /// The same DB with fixed roots (canonical paths).
    pub fn confined_to(mut self, roots: Vec<PathBuf>) -> Studio {
        self.roots = Roots::Fixed(roots);
        self
    }

    /// The roots this handle is confined to, if fixed.
    pub fn allowed_roots(&self) -> Option<&[PathBuf]> {
        match &self.roots {
            Roots::Fixed(r) => Some(r),
            Roots::PerRepository => None,
        }
    }

    pub fn db_path(&self) -> PathBuf {
        self.db.clone()
    }

    fn store(&self) -> MutexGuard<'_, AuditStore> {
        // A panic while holding the lock leaves the connection usable; keep serving.
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A connection of its own, for calls that wait (supervision, stop) so others go on.
    fn own_store(&self) -> Result<AuditStore, OpError> {
        AuditStore::open(&self.db)
            .map_err(|e| OpError::new(ErrorCode::Internal, format!("audit DB: {e}")))
    }

    /// The repository containing `path` (its work-tree root, canonical).
    pub fn discover_repository(path: &Path) -> Result<PathBuf, OpError> {
        repo::discover(path)
    }

    /// For hosts that are not the `noctune` binary (test harnesses, benchmarks): the binary
    /// whose `worker` subcommand performs runs started from this process. Set it once, before
    /// the first run; returns false if another binary was set already.
    pub fn use_worker_binary(exe: PathBuf) -> bool {
        noctune_engine::process::set_worker_exe(exe)
    }

    /// `noctune worker`: performs one run in this process (the worker side of a run).
    pub fn run_worker(run_dir: &Path) -> i32 {
        match noctune_engine::worker::run_worker(run_dir) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("error: {e:#}");
                2
            }
        }
    }
}

/// Makes the repository's `.noctune_cache/.gitignore` exactly Noctune's again, on every start
/// (open, chat, run): an ignore file that was edited or deleted since would leave transcripts,
/// backups and worktrees committable. `create`: make the cache if there is none (chat and runs
/// write there); an open alone leaves a repository without one untouched. A folder that cannot
/// be written (read-only checkout) is logged, not refused: nothing can be written there either.
pub(crate) fn restore_cache(repo_root: &Path, create: bool) {
    let restored = if create {
        noctune_util::cache::ensure_cache_dir(repo_root).map(|_| ())
    } else {
        noctune_util::cache::restore_if_present(repo_root).map(|_| ())
    };
    if let Err(e) = restored {
        tracing::warn!(
            "cannot restore {}/.gitignore in {}: {e}",
            noctune_util::cache::CACHE_DIR,
            repo_root.display()
        );
    }
}
