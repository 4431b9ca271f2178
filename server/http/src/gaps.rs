//! Reads the `Studio` facade does not offer yet: events from the audit DB alone, a run's
//! patchset plan, and the repository configuration (packs and profiles) for the start form.
//! They only read, and belong in `studio/` once it grows them; until then they live here so
//! that no handler reaches past this file.

use noctune_core::{Event, RunRecord};
use noctune_engine::RunPaths;
use noctune_engine::api::EngineError;
use noctune_engine::worker::PatchsetPlan;
use noctune_store::AuditStore;
use noctune_studio::Studio;
use serde::Serialize;
use std::path::Path;
use std::sync::Mutex;

/// One audit DB connection for the DB-only reads, opened on first use.
#[derive(Default)]
pub struct DbReader {
    conn: Mutex<Option<AuditStore>>,
}

impl DbReader {
    /// Up to `limit` events with `idx >= cursor`, from SQLite only (`events_db`).
    pub fn events_db(
        &self,
        studio: &Studio,
        run_id: &str,
        cursor: u64,
        limit: usize,
    ) -> Result<Vec<Event>, EngineError> {
        let rec = studio.status(run_id)?; // unknown run → 404
        let mut guard = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            *guard = Some(AuditStore::open(&studio.db_path())?);
        }
        let store = guard
            .as_ref()
            .ok_or_else(|| EngineError::Io(std::io::Error::other("audit DB not open")))?;
        Ok(store.events_from(&rec.run_id, cursor, limit)?)
    }
}

/// A run's planned patchsets (`state/patchsets.json`; empty before planning).
pub fn patchsets(rec: &RunRecord) -> PatchsetPlan {
    let paths = RunPaths::new(Path::new(&rec.repo_root), &rec.run_id);
    std::fs::read(paths.patchsets())
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

pub fn run_paths(rec: &RunRecord) -> RunPaths {
    RunPaths::new(Path::new(&rec.repo_root), &rec.run_id)
}

#[derive(Debug, Serialize)]
pub struct RepoConfig {
    pub repo_root: String,
    pub packs: Vec<PackSummary>,
    pub profiles: Vec<ProfileSummary>,
    pub default_profile: String,
}

#[derive(Debug, Serialize)]
pub struct PackSummary {
    pub name: String,
    pub allowed_globs: Vec<String>,
    pub proposer: String,
}

#[derive(Debug, Serialize)]
pub struct ProfileSummary {
    pub name: String,
    pub base_url: String,
    pub model: String,
}

pub fn repo_config(repo_root: &Path) -> Result<RepoConfig, EngineError> {
    let cfg = noctune_config::load(repo_root)?;
    Ok(RepoConfig {
        repo_root: repo_root.display().to_string(),
        packs: cfg
            .packs
            .values()
            .map(|p| PackSummary {
                name: p.name.clone(),
                allowed_globs: p.allowed_globs.clone(),
                proposer: serde_json::to_value(&p.proposer)
                    .ok()
                    .and_then(|v| v.get("kind").and_then(|k| k.as_str()).map(str::to_string))
                    .unwrap_or_default(),
            })
            .collect(),
        profiles: cfg
            .profiles
            .values()
            .map(|p| ProfileSummary {
                name: p.name.clone(),
                base_url: p.base_url.clone(),
                model: p.model.clone(),
            })
            .collect(),
        default_profile: cfg.default_profile.clone(),
    })
}
