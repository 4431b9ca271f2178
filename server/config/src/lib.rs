//! Configuration: built-in defaults, then `pyproject.toml` `[tool.noctune]`, then
//! `noctune.toml`, then `NOCTUNE_STUDIO_*` environment variables; later sources win field by
//! field.
//!
//! Every error names the file, the key and what was expected, so a user can fix it without
//! reading our code. Nothing here knows about runs, chat or any surface.

mod model;
mod parse;

pub use model::{
    Config, EngineSettings, ModelProfile, ToolDef, ToolMode, ToolStage, builtin_tools,
};

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}: not valid TOML: {message}")]
    Syntax { file: PathBuf, message: String },
    #[error("{file}: key `{key}`: {problem}. Expected {expected}")]
    Invalid {
        file: PathBuf,
        key: String,
        problem: String,
        expected: String,
    },
    #[error("environment variable {var}={value:?}: {problem}")]
    Env {
        var: String,
        value: String,
        problem: String,
    },
}

pub const ENV_BASE_URL: &str = "NOCTUNE_STUDIO_LLM_BASE_URL";
pub const ENV_MODEL: &str = "NOCTUNE_STUDIO_LLM_MODEL";
pub const ENV_ALLOWED_ROOTS: &str = "NOCTUNE_STUDIO_ALLOWED_ROOTS";
pub const ENV_DB: &str = "NOCTUNE_STUDIO_DB";

/// Files that configure Noctune in a repository. No tool may write them (see the sandbox and
/// the chat permission rules).
pub const CONFIG_FILE_NAMES: [&str; 2] = ["noctune.toml", "pyproject.toml"];

/// Loads the effective configuration for `repo_root`.
pub fn load(repo_root: &Path) -> Result<Config, ConfigError> {
    let mut cfg = Config::defaults(repo_root);
    let pyproject = repo_root.join("pyproject.toml");
    if pyproject.is_file() {
        let doc = parse::read_toml(&pyproject)?;
        let section = doc
            .get("tool")
            .and_then(|t| t.as_table())
            .and_then(|t| t.get("noctune"));
        if let Some(section) = section {
            let table = section.as_table().ok_or_else(|| ConfigError::Invalid {
                file: pyproject.clone(),
                key: "tool.noctune".into(),
                problem: format!("is a {}", parse::type_name(section)),
                expected: "a table (`[tool.noctune]`)".into(),
            })?;
            parse::apply(&mut cfg, table, &pyproject, "tool.noctune.")?;
            cfg.sources.push(pyproject);
        }
    }
    let own = repo_root.join("noctune.toml");
    if own.is_file() {
        let doc = parse::read_toml(&own)?;
        parse::apply(&mut cfg, &doc, &own, "")?;
        cfg.sources.push(own);
    }
    apply_env(&mut cfg)?;
    Ok(cfg)
}

fn apply_env(cfg: &mut Config) -> Result<(), ConfigError> {
    let default = cfg.default_profile.clone();
    if let Some(p) = cfg.profiles.get_mut(&default) {
        if let Ok(url) = std::env::var(ENV_BASE_URL) {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(ConfigError::Env {
                    var: ENV_BASE_URL.into(),
                    value: url,
                    problem: "expected an http:// or https:// URL such as http://127.0.0.1:8080/v1"
                        .into(),
                });
            }
            p.base_url = url.trim_end_matches('/').to_string();
        }
        if let Ok(model) = std::env::var(ENV_MODEL) {
            p.model = model;
        }
    }
    if let Ok(roots) = std::env::var(ENV_ALLOWED_ROOTS) {
        let mut list = Vec::new();
        for part in std::env::split_paths(&roots) {
            if part.as_os_str().is_empty() {
                continue;
            }
            let canon = std::fs::canonicalize(&part).map_err(|e| ConfigError::Env {
                var: ENV_ALLOWED_ROOTS.into(),
                value: roots.clone(),
                problem: format!(
                    "{}: {e}; list existing directories separated by ':'",
                    part.display()
                ),
            })?;
            list.push(canon);
        }
        if !list.is_empty() {
            cfg.allowed_roots = list;
        }
    }
    Ok(())
}

/// The path of the audit DB from the environment (`NOCTUNE_STUDIO_DB`), or the XDG default.
pub fn db_path_from_env() -> PathBuf {
    if let Some(p) = std::env::var_os(ENV_DB).filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let data = std::env::var_os("XDG_DATA_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."));
    data.join("noctune").join("audit.sqlite")
}
