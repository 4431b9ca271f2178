//! The effective configuration, after every source has been applied.

use noctune_core::PolicyPack;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolMode {
    /// Native OpenAI `tools` first; falls back to `prompt` for the session when the server
    /// rejects them or the model prints a call as text.
    Auto,
    Native,
    Prompt,
}

impl ToolMode {
    pub fn parse(s: &str) -> Option<ToolMode> {
        match s {
            "auto" => Some(ToolMode::Auto),
            "native" => Some(ToolMode::Native),
            "prompt" => Some(ToolMode::Prompt),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelProfile {
    pub name: String,
    pub base_url: String,
    pub model: String,
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
    pub context_window: u32,
    pub tool_mode: ToolMode,
    /// Name of an environment variable holding an API key (never the key itself in config).
    pub api_key_env: Option<String>,
    pub timeout_secs: u64,
}

impl ModelProfile {
    pub fn default_local() -> ModelProfile {
        ModelProfile {
            name: "default".into(),
            base_url: "http://127.0.0.1:8080/v1".into(),
            model: "local".into(),
            temperature: Some(0.2),
            max_tokens: Some(2048),
            context_window: 8192,
            tool_mode: ToolMode::Auto,
            api_key_env: None,
            timeout_secs: 300,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolStage {
    /// Changes files (a proposer runs it).
    Fix,
    /// Checks a patchset before it is committed (tests, type checkers); must exit 0.
    Check,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolDef {
    pub name: String,
    /// argv; `{files}` expands to the files the tool should look at (or `.` when none given),
    /// a name that looks like an option (`-rf.py`) as `./-rf.py` (engine `tools::argv`).
    pub command: Vec<String>,
    pub stage: ToolStage,
    pub timeout_secs: u64,
}

/// The tools every pack may name. Each ends its options with `--` before `{files}` (ruff and
/// mypy accept it): a file is then an operand even if its name were not made safe first.
///
/// pytest runs every test (no `-x`): a patchset fails only on a test that passes on the base
/// commit, and stopping at the first failure would hide which ones those are when a test
/// fails on the base commit already.
pub fn builtin_tools() -> Vec<ToolDef> {
    let t = |name: &str, argv: &[&str], stage, timeout_secs| ToolDef {
        name: name.into(),
        command: argv.iter().map(|s| s.to_string()).collect(),
        stage,
        timeout_secs,
    };
    vec![
        t(
            "ruff",
            &[
                "ruff",
                "check",
                "--fix",
                "--exit-zero",
                "--no-cache",
                "--quiet",
                "--",
                "{files}",
            ],
            ToolStage::Fix,
            600,
        ),
        // Not `--quiet`: it hides why ruff format failed (a file it cannot parse), which is
        // then all the log has to say.
        t(
            "format",
            &["ruff", "format", "--no-cache", "--", "{files}"],
            ToolStage::Fix,
            600,
        ),
        t(
            "ruff_upgrade",
            &[
                "ruff",
                "check",
                "--select",
                "UP",
                "--fix",
                "--exit-zero",
                "--no-cache",
                "--quiet",
                "--",
                "{files}",
            ],
            ToolStage::Fix,
            600,
        ),
        t(
            "pytest",
            &["python3", "-m", "pytest", "-q", "-p", "no:cacheprovider"],
            ToolStage::Check,
            1800,
        ),
        t(
            "mypy",
            &[
                "python3",
                "-m",
                "mypy",
                "--ignore-missing-imports",
                "--no-incremental",
                "--",
                "{files}",
            ],
            ToolStage::Check,
            900,
        ),
    ]
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EngineSettings {
    /// Seconds between a cooperative stop request and killing the worker.
    pub stop_grace_secs: u64,
    /// Seconds between worker heartbeats written to `run.json`.
    pub heartbeat_secs: u64,
    /// A run whose heartbeat is older than this is taken for dead.
    pub lease_secs: u64,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            stop_grace_secs: 10,
            heartbeat_secs: 2,
            lease_secs: 30,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Config {
    pub repo_root: PathBuf,
    pub packs: BTreeMap<String, PolicyPack>,
    pub profiles: BTreeMap<String, ModelProfile>,
    pub default_profile: String,
    pub tools: BTreeMap<String, ToolDef>,
    pub engine: EngineSettings,
    pub allowed_roots: Vec<PathBuf>,
    /// Raw `[mcp_servers.<name>]` tables; validated by the MCP client.
    pub mcp_servers: BTreeMap<String, toml::Value>,
    /// Files that contributed, in the order applied.
    pub sources: Vec<PathBuf>,
}

impl Config {
    pub fn defaults(repo_root: &Path) -> Config {
        let p = ModelProfile::default_local();
        Config {
            repo_root: repo_root.to_path_buf(),
            packs: PolicyPack::builtins()
                .into_iter()
                .map(|p| (p.name.clone(), p))
                .collect(),
            default_profile: p.name.clone(),
            profiles: BTreeMap::from([(p.name.clone(), p)]),
            tools: builtin_tools()
                .into_iter()
                .map(|t| (t.name.clone(), t))
                .collect(),
            engine: EngineSettings::default(),
            allowed_roots: vec![repo_root.to_path_buf()],
            mcp_servers: BTreeMap::new(),
            sources: Vec::new(),
        }
    }

    pub fn pack(&self, name: &str) -> Option<&PolicyPack> {
        self.packs.get(name)
    }

    /// The profile called `name`, or the default one for `None`.
    pub fn profile(&self, name: Option<&str>) -> Option<&ModelProfile> {
        self.profiles.get(name.unwrap_or(&self.default_profile))
    }
}
