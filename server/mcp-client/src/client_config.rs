//! `[mcp_servers.<name>]`: the MCP servers chat may use, validated with messages that name
//! the file and the key.
//!
//! ```toml
//! [mcp_servers.fs]                      # stdio: a command Noctune starts
//! command = "node"
//! args = ["/opt/mcp/server-filesystem/dist/index.js", "/home/me/notes"]
//! env = { LOG_LEVEL = "warn" }          # values may use ${VAR} from Noctune's environment
//! cwd = "/home/me"                      # default: the repository root
//! timeout_secs = 60                     # per tool call (default 60)
//! startup_timeout_secs = 30             # start + handshake + tools/list (default 30)
//!
//! [mcp_servers.search]                  # Streamable HTTP
//! url = "http://127.0.0.1:9000/mcp"
//! headers = { Authorization = "Bearer ${SEARCH_TOKEN}" }
//! ```

use noctune_config::{Config, ConfigError};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const DEFAULT_CALL_TIMEOUT_SECS: u64 = 60;
pub const DEFAULT_STARTUP_TIMEOUT_SECS: u64 = 30;

const KNOWN_KEYS: [&str; 9] = [
    "command",
    "args",
    "env",
    "cwd",
    "url",
    "headers",
    "timeout_secs",
    "startup_timeout_secs",
    "enabled",
];
/// Headers the Streamable HTTP transport sets itself.
const RESERVED_HEADERS: [&str; 3] = ["accept", "mcp-session-id", "last-event-id"];

#[derive(Debug, Clone, PartialEq)]
pub enum TransportSpec {
    Stdio {
        command: String,
        args: Vec<String>,
        env: BTreeMap<String, String>,
        cwd: PathBuf,
    },
    Http {
        url: String,
        headers: BTreeMap<String, String>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServerSpec {
    pub name: String,
    pub transport: TransportSpec,
    pub call_timeout: Duration,
    pub startup_timeout: Duration,
    /// The file that defines it (for messages).
    pub file: PathBuf,
}

impl ServerSpec {
    /// `stdio: node a.js` or `http: http://...` for listings.
    pub fn describe(&self) -> String {
        match &self.transport {
            TransportSpec::Stdio { command, args, .. } => {
                let mut s = format!("stdio: {command}");
                for a in args {
                    s.push(' ');
                    s.push_str(a);
                }
                s
            }
            TransportSpec::Http { url, .. } => format!("http: {url}"),
        }
    }
}

/// One configured server: its spec, or why its table is invalid.
#[derive(Debug, Clone)]
pub struct ConfiguredServer {
    pub name: String,
    pub spec: Result<ServerSpec, String>,
    /// `enabled = false` servers are listed but never started.
    pub enabled: bool,
}

/// Which config file defines `[mcp_servers.<name>]`, and the key prefix there. The later
/// source wins, as in `config::load`.
fn source_of(cfg: &Config, name: &str) -> (PathBuf, String) {
    for file in cfg.sources.iter().rev() {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        let Ok(doc) = text.parse::<toml::Table>() else {
            continue;
        };
        let is_pyproject = file.file_name().is_some_and(|f| f == "pyproject.toml");
        let servers = if is_pyproject {
            doc.get("tool")
                .and_then(|t| t.get("noctune"))
                .and_then(|t| t.get("mcp_servers"))
        } else {
            doc.get("mcp_servers")
        };
        if servers.and_then(|s| s.get(name)).is_some() {
            let prefix = if is_pyproject {
                "tool.noctune.mcp_servers"
            } else {
                "mcp_servers"
            };
            return (file.clone(), format!("{prefix}.{name}"));
        }
    }
    (
        cfg.repo_root.join("noctune.toml"),
        format!("mcp_servers.{name}"),
    )
}

/// Every `[mcp_servers.<name>]` of the configuration, each validated on its own so that one
/// bad table does not hide the others.
pub fn configured_servers(cfg: &Config) -> Vec<ConfiguredServer> {
    cfg.mcp_servers
        .iter()
        .map(|(name, value)| {
            let (file, key) = source_of(cfg, name);
            let enabled = value
                .get("enabled")
                .and_then(|v| v.as_bool())
                .unwrap_or(true);
            let spec =
                parse_server(name, value, &file, &key, &cfg.repo_root).map_err(|e| e.to_string());
            ConfiguredServer {
                name: name.clone(),
                spec,
                enabled,
            }
        })
        .collect()
}

fn invalid(
    file: &Path,
    key: &str,
    problem: impl Into<String>,
    expected: impl Into<String>,
) -> ConfigError {
    ConfigError::Invalid {
        file: file.to_path_buf(),
        key: key.to_string(),
        problem: problem.into(),
        expected: expected.into(),
    }
}

fn type_name(v: &toml::Value) -> &'static str {
    match v {
        toml::Value::String(_) => "a string",
        toml::Value::Integer(_) => "an integer",
        toml::Value::Float(_) => "a float",
        toml::Value::Boolean(_) => "a boolean",
        toml::Value::Datetime(_) => "a date",
        toml::Value::Array(_) => "an array",
        toml::Value::Table(_) => "a table",
    }
}

/// Expands `${VAR}` from the environment; a missing variable is an error.
fn expand(s: &str, file: &Path, key: &str) -> Result<String, ConfigError> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or_else(|| {
            invalid(
                file,
                key,
                format!("{s:?} has an unclosed ${{"),
                "${NAME} references closed with }",
            )
        })?;
        let var = &after[..end];
        let value = std::env::var(var).map_err(|_| {
            invalid(
                file,
                key,
                format!("refers to environment variable {var}, which is not set"),
                format!("{var} to be set in Noctune's environment"),
            )
        })?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn string_map(
    v: &toml::Value,
    file: &Path,
    key: &str,
) -> Result<BTreeMap<String, String>, ConfigError> {
    let t = v.as_table().ok_or_else(|| {
        invalid(
            file,
            key,
            format!("is {}", type_name(v)),
            "a table of strings, e.g. { NAME = \"value\" }",
        )
    })?;
    let mut out = BTreeMap::new();
    for (k, v) in t {
        let sub = format!("{key}.{k}");
        let s = v
            .as_str()
            .ok_or_else(|| invalid(file, &sub, format!("is {}", type_name(v)), "a string"))?;
        out.insert(k.clone(), expand(s, file, &sub)?);
    }
    Ok(out)
}

fn secs(v: &toml::Value, file: &Path, key: &str) -> Result<Duration, ConfigError> {
    match v.as_integer() {
        Some(n) if (1..=3600).contains(&n) => Ok(Duration::from_secs(n as u64)),
        _ => Err(invalid(
            file,
            key,
            format!("is {v}"),
            "a whole number of seconds from 1 to 3600",
        )),
    }
}

pub fn valid_server_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn parse_server(
    name: &str,
    value: &toml::Value,
    file: &Path,
    key: &str,
    repo_root: &Path,
) -> Result<ServerSpec, ConfigError> {
    if !valid_server_name(name) {
        return Err(invalid(
            file,
            key,
            "has a name chat tools cannot carry",
            "a name of 1-32 letters, digits, '_' or '-' (tools are named <server>__<tool>)",
        ));
    }
    let t = value.as_table().ok_or_else(|| {
        invalid(
            file,
            key,
            format!("is {}", type_name(value)),
            "a table with `command` (stdio) or `url` (Streamable HTTP)",
        )
    })?;
    for k in t.keys() {
        if !KNOWN_KEYS.contains(&k.as_str()) {
            return Err(invalid(
                file,
                &format!("{key}.{k}"),
                "is not a known key",
                format!("one of: {}", KNOWN_KEYS.join(", ")),
            ));
        }
    }
    let str_of = |k: &str| -> Result<Option<String>, ConfigError> {
        match t.get(k) {
            None => Ok(None),
            Some(toml::Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.clone())),
            Some(v) => Err(invalid(
                file,
                &format!("{key}.{k}"),
                format!(
                    "is {}",
                    if v.as_str().is_some() {
                        "empty"
                    } else {
                        type_name(v)
                    }
                ),
                "a non-empty string",
            )),
        }
    };
    if let Some(v) = t.get("enabled")
        && !v.is_bool()
    {
        return Err(invalid(
            file,
            &format!("{key}.enabled"),
            format!("is {}", type_name(v)),
            "true or false",
        ));
    }
    let call_timeout = t
        .get("timeout_secs")
        .map(|v| secs(v, file, &format!("{key}.timeout_secs")))
        .transpose()?
        .unwrap_or(Duration::from_secs(DEFAULT_CALL_TIMEOUT_SECS));
    let startup_timeout = t
        .get("startup_timeout_secs")
        .map(|v| secs(v, file, &format!("{key}.startup_timeout_secs")))
        .transpose()?
        .unwrap_or(Duration::from_secs(DEFAULT_STARTUP_TIMEOUT_SECS));
    let command = str_of("command")?;
    let url = str_of("url")?;
    let transport = match (command, url) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                file,
                key,
                "has both `command` and `url`",
                "either `command` (a stdio server) or `url` (a Streamable HTTP server)",
            ));
        }
        (None, None) => {
            return Err(invalid(
                file,
                key,
                "has neither `command` nor `url`",
                "`command = \"...\"` (a stdio server) or `url = \"http://...\"` (a Streamable HTTP server)",
            ));
        }
        (Some(command), None) => {
            for k in ["url", "headers"] {
                if t.contains_key(k) {
                    return Err(invalid(
                        file,
                        &format!("{key}.{k}"),
                        "is for Streamable HTTP servers, but this one has `command`",
                        "only command, args, env, cwd for a stdio server",
                    ));
                }
            }
            let args = match t.get("args") {
                None => Vec::new(),
                Some(v) => {
                    let arr = v.as_array().ok_or_else(|| {
                        invalid(
                            file,
                            &format!("{key}.args"),
                            format!("is {}", type_name(v)),
                            "an array of strings",
                        )
                    })?;
                    arr.iter()
                        .enumerate()
                        .map(|(i, a)| {
                            let k = format!("{key}.args[{i}]");
                            a.as_str()
                                .ok_or_else(|| {
                                    invalid(file, &k, format!("is {}", type_name(a)), "a string")
                                })
                                .and_then(|s| expand(s, file, &k))
                        })
                        .collect::<Result<Vec<_>, _>>()?
                }
            };
            let env = t
                .get("env")
                .map(|v| string_map(v, file, &format!("{key}.env")))
                .transpose()?
                .unwrap_or_default();
            let cwd = match str_of("cwd")? {
                None => repo_root.to_path_buf(),
                Some(c) => {
                    let p = repo_root.join(expand(&c, file, &format!("{key}.cwd"))?);
                    if !p.is_dir() {
                        return Err(invalid(
                            file,
                            &format!("{key}.cwd"),
                            format!("{} is not a directory", p.display()),
                            "an existing directory (relative paths start at the repository root)",
                        ));
                    }
                    p
                }
            };
            TransportSpec::Stdio {
                command: expand(&command, file, &format!("{key}.command"))?,
                args,
                env,
                cwd,
            }
        }
        (None, Some(url)) => {
            for k in ["args", "env", "cwd"] {
                if t.contains_key(k) {
                    return Err(invalid(
                        file,
                        &format!("{key}.{k}"),
                        "is for stdio servers, but this one has `url`",
                        "only url and headers for a Streamable HTTP server",
                    ));
                }
            }
            let url = expand(&url, file, &format!("{key}.url"))?;
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(invalid(
                    file,
                    &format!("{key}.url"),
                    format!("{url:?} is not an http(s) URL"),
                    "a Streamable HTTP endpoint such as http://127.0.0.1:9000/mcp",
                ));
            }
            let headers = t
                .get("headers")
                .map(|v| string_map(v, file, &format!("{key}.headers")))
                .transpose()?
                .unwrap_or_default();
            for (h, v) in &headers {
                let hk = format!("{key}.headers.{h}");
                if reqwest::header::HeaderName::from_bytes(h.as_bytes()).is_err() {
                    return Err(invalid(
                        file,
                        &hk,
                        "is not a valid HTTP header name",
                        "letters, digits and '-'",
                    ));
                }
                if RESERVED_HEADERS.contains(&h.to_ascii_lowercase().as_str()) {
                    return Err(invalid(
                        file,
                        &hk,
                        "is set by the MCP transport itself",
                        "a header other than Accept, Mcp-Session-Id, Last-Event-ID",
                    ));
                }
                if reqwest::header::HeaderValue::from_str(v).is_err() {
                    return Err(invalid(
                        file,
                        &hk,
                        "has a value that cannot be sent in a header",
                        "visible ASCII text",
                    ));
                }
            }
            TransportSpec::Http { url, headers }
        }
    };
    Ok(ServerSpec {
        name: name.to_string(),
        transport,
        call_timeout,
        startup_timeout,
        file: file.to_path_buf(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg_with(toml_text: &str) -> (tempfile::TempDir, Config) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("noctune.toml"), toml_text).unwrap();
        let cfg = noctune_config::load(dir.path()).unwrap();
        (dir, cfg)
    }

    fn only(cfg: &Config) -> ConfiguredServer {
        let mut all = configured_servers(cfg);
        assert_eq!(all.len(), 1);
        all.remove(0)
    }

    #[test]
    fn stdio_and_http_servers_parse() {
        let (dir, cfg) = cfg_with(
            "[mcp_servers.fs]\ncommand = \"node\"\nargs = [\"a.js\", \"/tmp\"]\nenv = { A = \"1\" }\ntimeout_secs = 5\n\
             [mcp_servers.web]\nurl = \"http://127.0.0.1:1/mcp\"\nheaders = { Authorization = \"Bearer x\" }\n",
        );
        let all = configured_servers(&cfg);
        let fs = all[0].spec.as_ref().unwrap();
        assert_eq!(fs.name, "fs");
        assert_eq!(fs.call_timeout, Duration::from_secs(5));
        match &fs.transport {
            TransportSpec::Stdio {
                command,
                args,
                env,
                cwd,
            } => {
                assert_eq!(command, "node");
                assert_eq!(args, &["a.js", "/tmp"]);
                assert_eq!(env["A"], "1");
                assert_eq!(cwd, &cfg.repo_root);
            }
            other => panic!("{other:?}"),
        }
        assert!(fs.file.ends_with("noctune.toml"));
        let web = all[1].spec.as_ref().unwrap();
        assert!(
            matches!(&web.transport, TransportSpec::Http { headers, .. } if headers["Authorization"] == "Bearer x")
        );
        drop(dir);
    }

    #[test]
    fn errors_name_file_key_and_fix() {
        for (text, key, words) in [
            (
                "[mcp_servers.x]\nargs = []\n",
                "mcp_servers.x",
                "neither `command` nor `url`",
            ),
            (
                "[mcp_servers.x]\ncommand = \"a\"\nurl = \"http://h\"\n",
                "mcp_servers.x",
                "both",
            ),
            (
                "[mcp_servers.x]\ncommand = \"a\"\nargz = []\n",
                "mcp_servers.x.argz",
                "not a known key",
            ),
            (
                "[mcp_servers.x]\ncommand = \"a\"\nargs = [1]\n",
                "mcp_servers.x.args[0]",
                "an integer",
            ),
            (
                "[mcp_servers.x]\nurl = \"ftp://h\"\n",
                "mcp_servers.x.url",
                "not an http(s) URL",
            ),
            (
                "[mcp_servers.x]\nurl = \"http://h\"\nheaders = { Accept = \"a\" }\n",
                "mcp_servers.x.headers.Accept",
                "transport itself",
            ),
            (
                "[mcp_servers.x]\ncommand = \"a\"\ntimeout_secs = 0\n",
                "mcp_servers.x.timeout_secs",
                "seconds",
            ),
            (
                "[mcp_servers.x]\ncommand = \"a\"\nenv = { T = \"${NOCTUNE_TEST_SURELY_UNSET_VAR}\" }\n",
                "mcp_servers.x.env.T",
                "not set",
            ),
            (
                "[mcp_servers.\"a.b\"]\ncommand = \"a\"\n",
                "mcp_servers.a.b",
                "name",
            ),
        ] {
            let (_dir, cfg) = cfg_with(text);
            let err = only(&cfg).spec.unwrap_err();
            assert!(err.contains("noctune.toml"), "{err}");
            assert!(err.contains(&format!("`{key}`")), "{key}: {err}");
            assert!(err.contains(words), "{words}: {err}");
            assert!(err.contains("Expected"), "{err}");
        }
    }

    #[test]
    fn pyproject_tables_are_named_with_their_prefix() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("pyproject.toml"),
            "[tool.noctune.mcp_servers.x]\ncommand = 3\n",
        )
        .unwrap();
        let cfg = noctune_config::load(dir.path()).unwrap();
        let err = only(&cfg).spec.unwrap_err();
        assert!(
            err.contains("pyproject.toml") && err.contains("`tool.noctune.mcp_servers.x.command`"),
            "{err}"
        );
    }
}
