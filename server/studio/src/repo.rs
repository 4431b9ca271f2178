//! Repositories and their configuration as surfaces show them: finding the repository of a
//! folder, the packs and profiles for a start form, the full configuration report, and whether
//! a profile's model server answers.

use crate::Studio;
use noctune_core::{ErrorCode, OpError};
use serde::Serialize;
use std::collections::BTreeMap;

pub use noctune_config::{EngineSettings, ModelProfile, ToolDef};
pub use noctune_core::PolicyPack;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub(crate) fn discover(path: &Path) -> Result<PathBuf, OpError> {
    if !path.is_dir() {
        return Err(OpError::new(
            ErrorCode::NotARepo,
            format!("{}: no such directory", path.display()),
        ));
    }
    noctune_git::discover_root(path).map_err(|e| OpError::new(ErrorCode::NotARepo, e.to_string()))
}

fn load(repo_root: &Path) -> Result<noctune_config::Config, OpError> {
    noctune_config::load(repo_root).map_err(|e| OpError::new(ErrorCode::ConfigError, e.to_string()))
}

/// The packs and model profiles of a repository, for a start form.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct RepoConfig {
    /// Absolute path of the repository.
    pub repo_root: String,
    /// The policy packs a run may use (built-in and configured).
    pub packs: Vec<PackSummary>,
    /// The configured model profiles.
    pub profiles: Vec<ProfileSummary>,
    /// The profile used when a request names none.
    pub default_profile: String,
}

/// A policy pack as a start form shows it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct PackSummary {
    pub name: String,
    /// Globs of the files the pack may touch.
    pub allowed_globs: Vec<String>,
    /// Where its edits come from: `command`, `llm` or `deps_bump`.
    pub proposer: String,
}

/// A model profile as a start form shows it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ProfileSummary {
    pub name: String,
    /// The OpenAI-compatible server's base URL (e.g. `http://127.0.0.1:8080/v1`).
    pub base_url: String,
    /// The model name sent to it.
    pub model: String,
}

/// Everything the configuration of a repository resolves to, with where it came from.
#[derive(Debug, Clone, Serialize)]
pub struct ConfigReport {
    pub repo_root: PathBuf,
    pub sources: Vec<PathBuf>,
    pub default_profile: String,
    pub policy_packs: BTreeMap<String, PolicyPack>,
    pub model_profiles: BTreeMap<String, ModelProfile>,
    pub tools: BTreeMap<String, ToolDef>,
    pub engine: EngineSettings,
    pub allowed_roots: Vec<PathBuf>,
    pub audit_db: PathBuf,
}

/// Whether a profile's model server answers, and if not what to do.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ModelHealth {
    /// Whether the model server answered.
    pub ok: bool,
    /// The profile asked about.
    pub profile: String,
    /// The profile's server base URL.
    pub base_url: String,
    /// The profile's model name.
    pub model: String,
    /// What went wrong when it did not answer; null when ok.
    pub message: Option<String>,
    /// A command that starts llama-server where this profile expects it.
    pub start_command: String,
}

impl Studio {
    /// The packs and profiles of `repo_root`, for a start form.
    pub fn repo_config(&self, repo_root: &Path) -> Result<RepoConfig, OpError> {
        let cfg = load(repo_root)?;
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

    /// The whole resolved configuration of `repo_root` (`noctune config check`).
    pub fn config_report(&self, repo_root: &Path) -> Result<ConfigReport, OpError> {
        let cfg = load(repo_root)?;
        Ok(ConfigReport {
            repo_root: cfg.repo_root.clone(),
            sources: cfg.sources.clone(),
            default_profile: cfg.default_profile.clone(),
            policy_packs: cfg.packs.clone(),
            model_profiles: cfg.profiles.clone(),
            tools: cfg.tools.clone(),
            engine: cfg.engine.clone(),
            allowed_roots: cfg.allowed_roots.clone(),
            audit_db: self.db_path(),
        })
    }

    /// Asks the model server of `profile` (default: the repository's default) whether it
    /// answers, with short timeouts.
    pub async fn model_health(
        &self,
        repo_root: &Path,
        profile: Option<&str>,
    ) -> Result<ModelHealth, OpError> {
        let cfg = load(repo_root)?;
        let name = profile
            .filter(|p| !p.is_empty())
            .unwrap_or(&cfg.default_profile)
            .to_string();
        let profile = cfg.profiles.get(&name).ok_or_else(|| {
            OpError::new(
                ErrorCode::UnknownProfile,
                format!(
                    "unknown model profile {name:?}; known profiles: {}",
                    cfg.profiles.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            )
        })?;
        let mut ep = noctune_llm::LlmEndpoint::new(profile.base_url.clone(), profile.model.clone());
        ep.connect_timeout = Duration::from_secs(2);
        ep.request_timeout = Duration::from_secs(5);
        let checked = match noctune_llm::LlmClient::new(ep) {
            Ok(client) => client.list_models().await.map(|_| ()),
            Err(e) => Err(e),
        };
        Ok(ModelHealth {
            ok: checked.is_ok(),
            profile: profile.name.clone(),
            base_url: profile.base_url.clone(),
            model: profile.model.clone(),
            message: checked.err().map(|e| e.to_string()),
            start_command: noctune_llm::error::start_command(&profile.base_url),
        })
    }
}
