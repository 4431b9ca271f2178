//! Field-by-field reading of config tables, so that each error can name its exact key.

use super::ConfigError;
use super::model::{Config, ModelProfile, ToolDef, ToolMode, ToolStage};
use noctune_core::{AutoApprove, Grouping, PolicyPack, ProposerSpec, policy::default_index};
use std::path::Path;
use toml::{Table, Value};

pub fn read_toml(file: &Path) -> Result<Table, ConfigError> {
    let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Read {
        file: file.to_path_buf(),
        source,
    })?;
    text.parse::<Table>().map_err(|e| ConfigError::Syntax {
        file: file.to_path_buf(),
        message: e.to_string().trim().replace('\n', " "),
    })
}

pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "string",
        Value::Integer(_) => "integer",
        Value::Float(_) => "float",
        Value::Boolean(_) => "boolean",
        Value::Datetime(_) => "datetime",
        Value::Array(_) => "array",
        Value::Table(_) => "table",
    }
}

struct Ctx<'a> {
    file: &'a Path,
    prefix: &'a str,
}

impl Ctx<'_> {
    fn err(
        &self,
        key: &str,
        problem: impl Into<String>,
        expected: impl Into<String>,
    ) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.to_path_buf(),
            key: format!("{}{key}", self.prefix),
            problem: problem.into(),
            expected: expected.into(),
        }
    }
    fn wrong_type(&self, key: &str, v: &Value, expected: &str) -> ConfigError {
        self.err(key, format!("is a {} ({v})", type_name(v)), expected)
    }
    fn table<'v>(&self, key: &str, v: &'v Value) -> Result<&'v Table, ConfigError> {
        v.as_table()
            .ok_or_else(|| self.wrong_type(key, v, "a table"))
    }
    fn string(&self, key: &str, v: &Value) -> Result<String, ConfigError> {
        v.as_str()
            .map(str::to_string)
            .ok_or_else(|| self.wrong_type(key, v, "a string"))
    }
    fn bool(&self, key: &str, v: &Value) -> Result<bool, ConfigError> {
        v.as_bool()
            .ok_or_else(|| self.wrong_type(key, v, "true or false"))
    }
    fn uint(&self, key: &str, v: &Value, max: u64) -> Result<u64, ConfigError> {
        match v.as_integer() {
            Some(n) if n >= 0 && (n as u64) <= max => Ok(n as u64),
            Some(n) => Err(self.err(
                key,
                format!("is {n}"),
                format!("an integer from 0 to {max}"),
            )),
            None => Err(self.wrong_type(key, v, &format!("an integer from 0 to {max}"))),
        }
    }
    fn strings(&self, key: &str, v: &Value) -> Result<Vec<String>, ConfigError> {
        let arr = v
            .as_array()
            .ok_or_else(|| self.wrong_type(key, v, "an array of strings"))?;
        arr.iter()
            .enumerate()
            .map(|(i, x)| self.string(&format!("{key}[{i}]"), x))
            .collect()
    }
    fn unknown(&self, key: &str, known: &[&str]) -> ConfigError {
        self.err(
            key,
            "is not a known key",
            format!("one of: {}", known.join(", ")),
        )
    }
}

const TOP_KEYS: [&str; 6] = [
    "policy_packs",
    "model_profiles",
    "tools",
    "engine",
    "mcp_servers",
    "default_profile",
];

pub fn apply(cfg: &mut Config, doc: &Table, file: &Path, prefix: &str) -> Result<(), ConfigError> {
    let cx = Ctx { file, prefix };
    for (key, value) in doc {
        match key.as_str() {
            "policy_packs" => {
                for (name, v) in cx.table(key, value)? {
                    let k = format!("policy_packs.{name}");
                    pack(&cx, cfg, name, &k, cx.table(&k, v)?)?;
                }
            }
            "model_profiles" => {
                for (name, v) in cx.table(key, value)? {
                    let k = format!("model_profiles.{name}");
                    profile(&cx, cfg, name, &k, cx.table(&k, v)?)?;
                }
            }
            "tools" => {
                for (name, v) in cx.table(key, value)? {
                    let k = format!("tools.{name}");
                    tool(&cx, cfg, name, &k, cx.table(&k, v)?)?;
                }
            }
            "engine" => engine(&cx, cfg, cx.table(key, value)?)?,
            "mcp_servers" => {
                for (name, v) in cx.table(key, value)? {
                    cfg.mcp_servers.insert(name.clone(), v.clone());
                }
            }
            "default_profile" => cfg.default_profile = cx.string(key, value)?,
            _ => return Err(cx.unknown(key, &TOP_KEYS)),
        }
    }
    if !cfg.profiles.contains_key(&cfg.default_profile) {
        let known: Vec<&str> = cfg.profiles.keys().map(String::as_str).collect();
        return Err(cx.err(
            "default_profile",
            format!("names {:?}, which is not defined", cfg.default_profile),
            format!("one of the model_profiles: {}", known.join(", ")),
        ));
    }
    for p in cfg.packs.values() {
        for t in p
            .tools_allowed
            .iter()
            .chain(&p.checks)
            .chain(proposer_tools(&p.proposer))
        {
            if !cfg.tools.contains_key(t) {
                let known: Vec<&str> = cfg.tools.keys().map(String::as_str).collect();
                return Err(cx.err(
                    &format!("policy_packs.{}", p.name),
                    format!("refers to tool {t:?}, which is not defined"),
                    format!(
                        "a tool defined under [tools.<name>] or a built-in: {}",
                        known.join(", ")
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn proposer_tools(p: &ProposerSpec) -> &[String] {
    match p {
        ProposerSpec::Command { tools } => tools,
        _ => &[],
    }
}

const PACK_KEYS: [&str; 11] = [
    "extends",
    "allowed_globs",
    "max_diff_lines",
    "tools_allowed",
    "checks",
    "auto_approve",
    "grouping",
    "proposer",
    "patchset_max_commits",
    "commit_each_approval",
    "module_depth",
];

fn pack(cx: &Ctx, cfg: &mut Config, name: &str, k: &str, t: &Table) -> Result<(), ConfigError> {
    let base = match t.get("extends") {
        Some(v) => {
            let parent = cx.string(&format!("{k}.extends"), v)?;
            cfg.packs.get(&parent).cloned().ok_or_else(|| {
                let known: Vec<&str> = cfg.packs.keys().map(String::as_str).collect();
                cx.err(
                    &format!("{k}.extends"),
                    format!("names unknown pack {parent:?}"),
                    format!("one of: {}", known.join(", ")),
                )
            })?
        }
        None => cfg.packs.get(name).cloned().unwrap_or_else(|| PolicyPack {
            name: name.to_string(),
            allowed_globs: Vec::new(),
            max_diff_lines: 400,
            tools_allowed: Vec::new(),
            checks: Vec::new(),
            auto_approve: AutoApprove::default(),
            grouping: Grouping::PerModule { depth: 1 },
            proposer: ProposerSpec::Command { tools: Vec::new() },
            patchset_max_commits: 5,
            commit_each_approval: false,
        }),
    };
    let mut p = PolicyPack {
        name: name.to_string(),
        ..base
    };
    let mut depth_override = None;
    for (key, v) in t {
        let fk = format!("{k}.{key}");
        match key.as_str() {
            "extends" => {}
            "allowed_globs" => {
                let globs = cx.strings(&fk, v)?;
                for (i, g) in globs.iter().enumerate() {
                    globset::Glob::new(g).map_err(|e| {
                        cx.err(
                            &format!("{fk}[{i}]"),
                            format!("{g:?} is not a valid glob: {e}"),
                            "a glob such as \"src/**/*.py\"",
                        )
                    })?;
                }
                p.allowed_globs = globs;
            }
            "max_diff_lines" => p.max_diff_lines = cx.uint(&fk, v, 1_000_000)? as u32,
            "tools_allowed" => p.tools_allowed = cx.strings(&fk, v)?,
            "checks" => p.checks = cx.strings(&fk, v)?,
            "patchset_max_commits" => {
                let n = cx.uint(&fk, v, 1000)? as usize;
                if n == 0 {
                    return Err(cx.err(&fk, "is 0", "at least 1"));
                }
                p.patchset_max_commits = n;
            }
            "commit_each_approval" => p.commit_each_approval = cx.bool(&fk, v)?,
            "module_depth" => depth_override = Some(cx.uint(&fk, v, 64)? as usize),
            "grouping" => {
                let s = cx.string(&fk, v)?;
                p.grouping = match s.as_str() {
                    "per_file" => Grouping::PerFile,
                    "per_module" => Grouping::PerModule { depth: 1 },
                    "per_pack" => Grouping::PerPack,
                    "single" => Grouping::Single,
                    _ => {
                        return Err(cx.err(
                            &fk,
                            format!("is {s:?}"),
                            "one of \"per_file\", \"per_module\", \"per_pack\", \"single\"",
                        ));
                    }
                };
            }
            "auto_approve" => {
                let at = cx.table(&fk, v)?;
                let mut aa = p.auto_approve.clone();
                for (ak, av) in at {
                    let afk = format!("{fk}.{ak}");
                    match ak.as_str() {
                        "enabled" => aa.enabled = cx.bool(&afk, av)?,
                        "max_risk" => aa.max_risk = cx.uint(&afk, av, 100)? as u8,
                        "max_lines" => aa.max_lines = cx.uint(&afk, av, 1_000_000)? as u32,
                        "require_tests" => aa.require_tests = cx.bool(&afk, av)?,
                        _ => {
                            return Err(cx.unknown(
                                &afk,
                                &["enabled", "max_risk", "max_lines", "require_tests"],
                            ));
                        }
                    }
                }
                p.auto_approve = aa;
            }
            "proposer" => p.proposer = proposer(cx, &fk, cx.table(&fk, v)?)?,
            _ => return Err(cx.unknown(&fk, &PACK_KEYS)),
        }
    }
    if let Some(d) = depth_override {
        if let Grouping::PerModule { depth } = &mut p.grouping {
            *depth = d;
        }
    }
    if p.allowed_globs.is_empty() {
        return Err(cx.err(
            &format!("{k}.allowed_globs"),
            "is missing or empty, so the pack could change nothing",
            "a list of globs such as [\"**/*.py\"] (or `extends = \"lint_fix\"`)",
        ));
    }
    cfg.packs.insert(name.to_string(), p);
    Ok(())
}

fn proposer(cx: &Ctx, k: &str, t: &Table) -> Result<ProposerSpec, ConfigError> {
    let kind = match t.get("kind") {
        Some(v) => cx.string(&format!("{k}.kind"), v)?,
        None => {
            return Err(cx.err(
                &format!("{k}.kind"),
                "is missing",
                "\"command\", \"llm\" or \"deps_bump\"",
            ));
        }
    };
    let get = |key: &str| t.get(key);
    let check_keys = |allowed: &[&str]| -> Result<(), ConfigError> {
        for key in t.keys() {
            if key != "kind" && !allowed.contains(&key.as_str()) {
                return Err(cx.unknown(&format!("{k}.{key}"), allowed));
            }
        }
        Ok(())
    };
    match kind.as_str() {
        "command" => {
            check_keys(&["tools"])?;
            let tools = match get("tools") {
                Some(v) => cx.strings(&format!("{k}.tools"), v)?,
                None => {
                    return Err(cx.err(
                        &format!("{k}.tools"),
                        "is missing",
                        "a list of tool names",
                    ));
                }
            };
            Ok(ProposerSpec::Command { tools })
        }
        "llm" => {
            check_keys(&["instructions", "max_symbols"])?;
            let instructions = match get("instructions") {
                Some(v) => cx.string(&format!("{k}.instructions"), v)?,
                None => {
                    return Err(cx.err(
                        &format!("{k}.instructions"),
                        "is missing",
                        "what the model should do to each symbol",
                    ));
                }
            };
            let max_symbols = match get("max_symbols") {
                Some(v) => cx.uint(&format!("{k}.max_symbols"), v, 50)? as usize,
                None => 3,
            };
            Ok(ProposerSpec::Llm {
                instructions,
                max_symbols,
            })
        }
        "deps_bump" => {
            check_keys(&["index_url", "allow_major"])?;
            let index_url = match get("index_url") {
                Some(v) => {
                    let u = cx.string(&format!("{k}.index_url"), v)?;
                    if !(u.starts_with("http://") || u.starts_with("https://")) {
                        return Err(cx.err(
                            &format!("{k}.index_url"),
                            format!("is {u:?}"),
                            "an http(s) URL of a PEP 503/691 simple index, e.g. \"https://pypi.org/simple/\"",
                        ));
                    }
                    u
                }
                None => default_index(),
            };
            let allow_major = match get("allow_major") {
                Some(v) => cx.bool(&format!("{k}.allow_major"), v)?,
                None => false,
            };
            Ok(ProposerSpec::DepsBump {
                index_url,
                allow_major,
            })
        }
        other => Err(cx.err(
            &format!("{k}.kind"),
            format!("is {other:?}"),
            "\"command\", \"llm\" or \"deps_bump\"",
        )),
    }
}

fn profile(cx: &Ctx, cfg: &mut Config, name: &str, k: &str, t: &Table) -> Result<(), ConfigError> {
    let mut p = cfg
        .profiles
        .get(name)
        .cloned()
        .unwrap_or_else(|| ModelProfile {
            name: name.to_string(),
            ..ModelProfile::default_local()
        });
    for (key, v) in t {
        let fk = format!("{k}.{key}");
        match key.as_str() {
            "base_url" => {
                let u = cx.string(&fk, v)?;
                if !(u.starts_with("http://") || u.starts_with("https://")) {
                    return Err(cx.err(
                        &fk,
                        format!("is {u:?}"),
                        "an http(s) URL such as \"http://127.0.0.1:8080/v1\"",
                    ));
                }
                p.base_url = u.trim_end_matches('/').to_string();
            }
            "model" => p.model = cx.string(&fk, v)?,
            "temperature" => {
                let f = v.as_float().or_else(|| v.as_integer().map(|i| i as f64));
                match f {
                    Some(f) if (0.0..=2.0).contains(&f) => p.temperature = Some(f as f32),
                    _ => return Err(cx.err(&fk, format!("is {v}"), "a number from 0.0 to 2.0")),
                }
            }
            "max_tokens" => p.max_tokens = Some(cx.uint(&fk, v, 10_000_000)? as u32),
            "context_window" => {
                let n = cx.uint(&fk, v, 100_000_000)? as u32;
                if n < 256 {
                    return Err(cx.err(&fk, format!("is {n}"), "at least 256 tokens"));
                }
                p.context_window = n;
            }
            "tool_mode" => {
                let s = cx.string(&fk, v)?;
                p.tool_mode = ToolMode::parse(&s).ok_or_else(|| {
                    cx.err(
                        &fk,
                        format!("is {s:?}"),
                        "\"auto\", \"native\" or \"prompt\"",
                    )
                })?;
            }
            "api_key_env" => p.api_key_env = Some(cx.string(&fk, v)?),
            "timeout_secs" => p.timeout_secs = cx.uint(&fk, v, 86_400)?.max(1),
            _ => {
                return Err(cx.unknown(
                    &fk,
                    &[
                        "base_url",
                        "model",
                        "temperature",
                        "max_tokens",
                        "context_window",
                        "tool_mode",
                        "api_key_env",
                        "timeout_secs",
                    ],
                ));
            }
        }
    }
    cfg.profiles.insert(name.to_string(), p);
    Ok(())
}

fn tool(cx: &Ctx, cfg: &mut Config, name: &str, k: &str, t: &Table) -> Result<(), ConfigError> {
    let mut d = cfg.tools.get(name).cloned().unwrap_or(ToolDef {
        name: name.to_string(),
        command: Vec::new(),
        stage: ToolStage::Check,
        timeout_secs: 900,
    });
    for (key, v) in t {
        let fk = format!("{k}.{key}");
        match key.as_str() {
            "command" => {
                let argv = cx.strings(&fk, v)?;
                if argv.is_empty() || argv[0].is_empty() {
                    return Err(cx.err(
                        &fk,
                        "is empty",
                        "an argv list such as [\"python3\", \"-m\", \"pytest\"]",
                    ));
                }
                d.command = argv;
            }
            "stage" => {
                let s = cx.string(&fk, v)?;
                d.stage = match s.as_str() {
                    "fix" => ToolStage::Fix,
                    "check" => ToolStage::Check,
                    _ => return Err(cx.err(&fk, format!("is {s:?}"), "\"fix\" or \"check\"")),
                };
            }
            "timeout_secs" => d.timeout_secs = cx.uint(&fk, v, 86_400)?.max(1),
            _ => return Err(cx.unknown(&fk, &["command", "stage", "timeout_secs"])),
        }
    }
    if d.command.is_empty() {
        return Err(cx.err(&format!("{k}.command"), "is missing", "an argv list"));
    }
    cfg.tools.insert(name.to_string(), d);
    Ok(())
}

fn engine(cx: &Ctx, cfg: &mut Config, t: &Table) -> Result<(), ConfigError> {
    for (key, v) in t {
        let fk = format!("engine.{key}");
        match key.as_str() {
            "stop_grace_secs" => cfg.engine.stop_grace_secs = cx.uint(&fk, v, 3600)?,
            "heartbeat_secs" => cfg.engine.heartbeat_secs = cx.uint(&fk, v, 600)?.max(1),
            "lease_secs" => cfg.engine.lease_secs = cx.uint(&fk, v, 86_400)?.max(3),
            _ => return Err(cx.unknown(&fk, &["stop_grace_secs", "heartbeat_secs", "lease_secs"])),
        }
    }
    Ok(())
}
