//! The MCP client: connections to the servers of `[mcp_servers.<name>]`, each a stdio child
//! process or a Streamable HTTP endpoint, with its state (ready, failed, disconnected) and its
//! tools.
//!
//! The connections live on a runtime of their own (one worker thread), so they outlive
//! whichever runtime called [`connect_all`], and chat's synchronous `Tool::call` can wait for
//! a result from any thread. A server that fails to start, crashes or times out makes the call
//! a tool error that says so; a crashed server is started again on the next call.

use super::client_config::{ConfiguredServer, ServerSpec, TransportSpec, configured_servers};
use noctune_chat::tool::ToolError;
use noctune_config::Config;
use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig, ContentBlock,
    Implementation, JsonObject, ProtocolVersion,
};
use rmcp::service::RunningService;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{RoleClient, ServiceExt};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type Service = RunningService<RoleClient, ClientConfig>;

/// Largest text a tool result may hand to the model.
const MAX_RESULT_CHARS: usize = 256 * 1024;
const STDERR_TAIL_LINES: usize = 20;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ServerState {
    /// `enabled = false` in the config.
    Disabled,
    /// The config table is invalid; `error` names the file and key.
    Misconfigured {
        error: String,
    },
    /// Not started yet (it starts at the first call).
    Idle,
    Ready,
    /// It could not be started.
    Failed {
        error: String,
    },
    /// It was running and went away (crash, kill); it is restarted at the next call.
    Disconnected {
        error: String,
    },
}

impl ServerState {
    pub fn label(&self) -> &'static str {
        match self {
            ServerState::Disabled => "disabled",
            ServerState::Misconfigured { .. } => "misconfigured",
            ServerState::Idle => "idle",
            ServerState::Ready => "ready",
            ServerState::Failed { .. } => "failed",
            ServerState::Disconnected { .. } => "disconnected",
        }
    }
    pub fn error(&self) -> Option<&str> {
        match self {
            ServerState::Misconfigured { error }
            | ServerState::Failed { error }
            | ServerState::Disconnected { error } => Some(error),
            _ => None,
        }
    }
}

/// A tool of a remote server, as chat sees it.
#[derive(Debug, Clone, Serialize)]
pub struct RemoteTool {
    /// The server's own name for it.
    pub name: String,
    /// `<server>__<tool>`, limited to what model APIs accept (`[A-Za-z0-9_-]{1,64}`).
    pub chat_name: String,
    pub description: String,
    pub input_schema: Value,
}

/// What `noctune mcp list-servers` shows of one server.
#[derive(Debug, Clone, Serialize)]
pub struct ServerStatus {
    pub name: String,
    pub transport: String,
    #[serde(flatten)]
    pub state: ServerState,
    pub server_info: Option<String>,
    pub pid: Option<u32>,
    pub tools: Vec<RemoteTool>,
}

struct Snapshot {
    state: ServerState,
    tools: Vec<RemoteTool>,
    pid: Option<u32>,
    server_info: Option<String>,
}

struct Conn {
    name: String,
    transport: String,
    spec: Option<ServerSpec>,
    service: tokio::sync::Mutex<Option<Arc<Service>>>,
    snap: Mutex<Snapshot>,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn client_info() -> ClientConfig {
    ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new("noctune", env!("CARGO_PKG_VERSION")),
    )
    .with_protocol_version(ProtocolVersion::LATEST_WITH_INITIALIZE)
}

/// `<server>__<tool>` with characters model APIs refuse replaced and the length capped.
fn chat_name(server: &str, tool: &str, taken: &mut Vec<String>) -> String {
    let clean: String = tool
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut name: String = format!("{server}__{clean}").chars().take(64).collect();
    let mut n = 2;
    while taken.contains(&name) {
        let suffix = format!("_{n}");
        name = format!("{server}__{clean}")
            .chars()
            .take(64 - suffix.len())
            .collect::<String>()
            + &suffix;
        n += 1;
    }
    taken.push(name.clone());
    name
}

impl Conn {
    fn new(c: ConfiguredServer) -> Conn {
        let (spec, state) = match (c.spec, c.enabled) {
            (Err(error), _) => (None, ServerState::Misconfigured { error }),
            (Ok(spec), false) => (Some(spec), ServerState::Disabled),
            (Ok(spec), true) => (Some(spec), ServerState::Idle),
        };
        Conn {
            transport: spec.as_ref().map(|s| s.describe()).unwrap_or_default(),
            name: c.name,
            spec,
            service: tokio::sync::Mutex::new(None),
            snap: Mutex::new(Snapshot {
                state,
                tools: Vec::new(),
                pid: None,
                server_info: None,
            }),
            stderr_tail: Arc::new(Mutex::new(VecDeque::new())),
        }
    }

    fn set_state(&self, state: ServerState) {
        lock(&self.snap).state = state;
    }

    fn stderr_note(&self) -> String {
        let tail = lock(&self.stderr_tail);
        if tail.is_empty() {
            String::new()
        } else {
            let lines: Vec<&str> = tail
                .iter()
                .rev()
                .take(5)
                .rev()
                .map(String::as_str)
                .collect();
            format!("; its last stderr lines: {}", lines.join(" | "))
        }
    }

    fn status(&self) -> ServerStatus {
        let s = lock(&self.snap);
        ServerStatus {
            name: self.name.clone(),
            transport: self.transport.clone(),
            state: s.state.clone(),
            server_info: s.server_info.clone(),
            pid: s.pid,
            tools: s.tools.clone(),
        }
    }

    /// Starts the server, does the handshake and lists its tools, within the startup timeout.
    async fn start(&self, spec: &ServerSpec) -> Result<Arc<Service>, String> {
        lock(&self.stderr_tail).clear();
        let started = tokio::time::timeout(spec.startup_timeout, self.start_inner(spec)).await;
        let (service, tools) = match started {
            Ok(Ok(x)) => x,
            Ok(Err(e)) => return Err(format!("{e}{}", self.stderr_note())),
            Err(_) => {
                return Err(format!(
                    "no answer to the handshake and tools/list within {}s (startup_timeout_secs){}",
                    spec.startup_timeout.as_secs(),
                    self.stderr_note()
                ));
            }
        };
        let mut taken = Vec::new();
        let tools = tools
            .into_iter()
            .map(|t| RemoteTool {
                chat_name: chat_name(&self.name, &t.name, &mut taken),
                name: t.name.to_string(),
                description: t.description.as_deref().unwrap_or("").to_string(),
                input_schema: Value::Object((*t.input_schema).clone()),
            })
            .collect();
        let info = service
            .peer()
            .peer_info()
            .and_then(|p| p.server_info.clone())
            .map(|i| format!("{} {}", i.name, i.version));
        let mut snap = lock(&self.snap);
        snap.tools = tools;
        snap.server_info = info;
        snap.state = ServerState::Ready;
        Ok(Arc::new(service))
    }

    async fn start_inner(
        &self,
        spec: &ServerSpec,
    ) -> Result<(Service, Vec<rmcp::model::Tool>), String> {
        let service = match &spec.transport {
            TransportSpec::Stdio {
                command,
                args,
                env,
                cwd,
            } => {
                let mut cmd = tokio::process::Command::new(command);
                cmd.args(args).envs(env).current_dir(cwd).kill_on_drop(true);
                let (proc, stderr) = TokioChildProcess::builder(cmd)
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .map_err(|e| format!("cannot start `{command}`: {e}"))?;
                lock(&self.snap).pid = proc.id();
                if let Some(stderr) = stderr {
                    tokio::spawn(collect_stderr(
                        self.name.clone(),
                        stderr,
                        self.stderr_tail.clone(),
                    ));
                }
                client_info()
                    .serve(proc)
                    .await
                    .map_err(|e| format!("the MCP handshake failed: {e}"))?
            }
            TransportSpec::Http { url, headers } => {
                noctune_llm::install_crypto_provider();
                let mut h = HashMap::new();
                for (k, v) in headers {
                    // Validated with the config; skip rather than panic if one slipped through.
                    if let (Ok(k), Ok(v)) = (
                        reqwest::header::HeaderName::from_bytes(k.as_bytes()),
                        reqwest::header::HeaderValue::from_str(v),
                    ) {
                        h.insert(k, v);
                    }
                }
                let transport = StreamableHttpClientTransport::from_config(
                    StreamableHttpClientTransportConfig::with_uri(url.as_str()).custom_headers(h),
                );
                client_info()
                    .serve(transport)
                    .await
                    .map_err(|e| format!("the MCP handshake with {url} failed: {e}"))?
            }
        };
        let tools = service
            .list_all_tools()
            .await
            .map_err(|e| format!("tools/list failed: {e}"))?;
        Ok((service, tools))
    }

    /// The running service, starting it if needed. A service found dead is reported once.
    async fn ensure(&self, tool: &str) -> Result<Arc<Service>, ToolError> {
        let not_run = if tool.is_empty() {
            String::new()
        } else {
            format!(" `{tool}` was not run;")
        };
        let Some(spec) = &self.spec else {
            let state = lock(&self.snap).state.clone();
            let why = state.error().unwrap_or("it is not configured").to_string();
            return Err(ToolError::new(
                "mcp_server_unavailable",
                format!("MCP server `{}` cannot be used: {why}", self.name),
            ));
        };
        if lock(&self.snap).state == ServerState::Disabled {
            return Err(ToolError::new(
                "mcp_server_unavailable",
                format!(
                    "MCP server `{}` is disabled (enabled = false in {})",
                    self.name,
                    spec.file.display()
                ),
            ));
        }
        let mut slot = self.service.lock().await;
        if let Some(s) = slot.as_ref() {
            if !s.peer().is_transport_closed() {
                return Ok(s.clone());
            }
            *slot = None;
            let error = format!(
                "the server process exited or the connection closed{}",
                self.stderr_note()
            );
            self.set_state(ServerState::Disconnected {
                error: error.clone(),
            });
            return Err(ToolError::new(
                "mcp_server_crashed",
                format!(
                    "MCP server `{}` stopped since the last call ({error});{not_run} it will be started again on the next call.",
                    self.name
                ),
            ));
        }
        match self.start(spec).await {
            Ok(s) => {
                *slot = Some(s.clone());
                Ok(s)
            }
            Err(error) => {
                self.set_state(ServerState::Failed {
                    error: error.clone(),
                });
                Err(ToolError::new(
                    "mcp_server_unavailable",
                    format!(
                        "MCP server `{}` could not be started: {error}.{} [mcp_servers.{}] in {} (`noctune mcp list-servers` shows its state).",
                        self.name,
                        if tool.is_empty() {
                            " Check".to_string()
                        } else {
                            format!(" `{tool}` was not run; check")
                        },
                        self.name,
                        spec.file.display()
                    ),
                ))
            }
        }
    }

    async fn call(&self, tool: String, args: JsonObject) -> Result<Value, ToolError> {
        let service = self.ensure(&tool).await?;
        let timeout = self
            .spec
            .as_ref()
            .map(|s| s.call_timeout)
            .unwrap_or(Duration::from_secs(60));
        let params = CallToolRequestParams::new(tool.clone()).with_arguments(args);
        match tokio::time::timeout(timeout, service.call_tool(params)).await {
            Err(_) => Err(ToolError::new(
                "mcp_timeout",
                format!(
                    "MCP server `{}` did not answer `{tool}` within {}s; the call was abandoned (raise timeout_secs under [mcp_servers.{}] if it needs longer).",
                    self.name,
                    timeout.as_secs(),
                    self.name
                ),
            )),
            Ok(Ok(result)) => render(&self.name, &tool, result),
            Ok(Err(e)) => {
                let closed = service.peer().is_transport_closed()
                    || matches!(
                        e,
                        rmcp::ServiceError::TransportClosed | rmcp::ServiceError::TransportSend(_)
                    );
                if !closed {
                    return Err(ToolError::new(
                        "mcp_error",
                        format!("MCP server `{}` refused `{tool}`: {e}", self.name),
                    ));
                }
                // Give the stderr reader a moment to catch the dying words.
                tokio::time::sleep(Duration::from_millis(50)).await;
                let mut slot = self.service.lock().await;
                if slot.as_ref().is_some_and(|s| Arc::ptr_eq(s, &service)) {
                    *slot = None;
                }
                let error = format!(
                    "the connection closed during `{tool}` ({e}){}",
                    self.stderr_note()
                );
                self.set_state(ServerState::Disconnected {
                    error: error.clone(),
                });
                Err(ToolError::new(
                    "mcp_server_crashed",
                    format!(
                        "MCP server `{}` went away: {error}. The call did not complete; the server will be started again on the next call.",
                        self.name
                    ),
                ))
            }
        }
    }

    async fn close(&self) {
        if let Some(s) = self.service.lock().await.take() {
            s.cancellation_token().cancel();
            let t = Instant::now();
            while !s.peer().is_transport_closed() && t.elapsed() < Duration::from_secs(2) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

async fn collect_stderr(
    name: String,
    stderr: tokio::process::ChildStderr,
    tail: Arc<Mutex<VecDeque<String>>>,
) {
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::debug!("mcp server {name}: {line}");
        let mut t = lock(&tail);
        if t.len() >= STDERR_TAIL_LINES {
            t.pop_front();
        }
        t.push_back(line.chars().take(500).collect());
    }
}

/// A remote result as chat's tool output: its `structuredContent` when it has one, else its
/// text. `isError` results become tool errors carrying the server's message.
fn render(server: &str, tool: &str, r: CallToolResult) -> Result<Value, ToolError> {
    let mut text = String::new();
    for block in &r.content {
        if !text.is_empty() {
            text.push('\n');
        }
        match block {
            ContentBlock::Text(t) => text.push_str(&t.text),
            other => {
                let mut v = serde_json::to_value(other).unwrap_or(Value::Null);
                if let Some(data) = v.get_mut("data") {
                    let n = data.as_str().map(str::len).unwrap_or(0);
                    *data = Value::String(format!("<{n} base64 characters omitted>"));
                }
                text.push_str(&v.to_string());
            }
        }
    }
    if text.chars().count() > MAX_RESULT_CHARS {
        text = text.chars().take(MAX_RESULT_CHARS).collect::<String>()
            + "\n[output truncated by Noctune]";
    }
    if r.is_error == Some(true) {
        let msg = if text.is_empty() {
            r.structured_content
                .map(|v| v.to_string())
                .unwrap_or_default()
        } else {
            text
        };
        return Err(ToolError::new(
            "mcp_tool_error",
            format!("{server}__{tool} failed: {msg}"),
        ));
    }
    Ok(match r.structured_content {
        Some(v) if !v.is_null() => {
            json!({"server": server, "tool": tool, "structured": v, "content": text})
        }
        _ => json!({"server": server, "tool": tool, "content": text}),
    })
}

pub(super) struct Inner {
    rt: Mutex<Option<tokio::runtime::Runtime>>,
    handle: Option<tokio::runtime::Handle>,
    conns: Vec<Arc<Conn>>,
}

impl Inner {
    fn conn(&self, server: &str) -> Option<Arc<Conn>> {
        self.conns.iter().find(|c| c.name == server).cloned()
    }

    /// Runs `fut` on the client runtime and waits for it from this (any) thread.
    fn wait<T: Send + 'static>(
        &self,
        limit: Duration,
        fut: impl std::future::Future<Output = T> + Send + 'static,
    ) -> Option<T> {
        let handle = self.handle.as_ref()?;
        let (tx, rx) = std::sync::mpsc::channel();
        handle.spawn(async move {
            let _ = tx.send(fut.await);
        });
        let recv = || rx.recv_timeout(limit).ok();
        match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(recv)
            }
            _ => recv(),
        }
    }

    pub(super) fn call_blocking(
        &self,
        server: &str,
        tool: &str,
        args: &Value,
    ) -> Result<Value, ToolError> {
        let conn = self.conn(server).ok_or_else(|| {
            ToolError::new(
                "mcp_server_unavailable",
                format!("no MCP server `{server}` is configured"),
            )
        })?;
        let args = match args {
            Value::Object(m) => m.clone(),
            Value::Null => JsonObject::new(),
            other => {
                return Err(ToolError::new(
                    "invalid_arguments",
                    format!("{server}__{tool} takes a JSON object of arguments, not {other}"),
                ));
            }
        };
        let limit = conn
            .spec
            .as_ref()
            .map(|s| s.startup_timeout + s.call_timeout)
            .unwrap_or_default()
            + Duration::from_secs(5);
        let tool_name = tool.to_string();
        let c = conn.clone();
        self.wait(limit, async move { c.call(tool_name, args).await })
            .unwrap_or_else(|| {
                Err(ToolError::new(
                    "mcp_timeout",
                    format!(
                        "MCP server `{server}` did not answer `{tool}` within {}s",
                        limit.as_secs()
                    ),
                ))
            })
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let conns = self.conns.clone();
        // Close each connection (a stdio server sees EOF and exits) before the runtime goes.
        let _ = self.wait(Duration::from_secs(3), async move {
            for c in conns {
                c.close().await;
            }
        });
        if let Some(rt) = lock(&self.rt).take() {
            rt.shutdown_background();
        }
    }
}

/// The configured MCP servers and their connections. Cheap to clone.
#[derive(Clone)]
pub struct McpClients {
    pub(super) inner: Arc<Inner>,
}

impl McpClients {
    fn new(servers: Vec<ConfiguredServer>) -> McpClients {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("noctune-mcp-client")
            .enable_all()
            .build();
        let (rt, handle) = match rt {
            Ok(rt) => {
                let h = rt.handle().clone();
                (Some(rt), Some(h))
            }
            Err(e) => {
                tracing::error!(
                    "cannot start the MCP client runtime: {e}; MCP servers are unavailable"
                );
                (None, None)
            }
        };
        let conns = servers
            .into_iter()
            .map(|s| Arc::new(Conn::new(s)))
            .collect();
        McpClients {
            inner: Arc::new(Inner {
                rt: Mutex::new(rt),
                handle,
                conns,
            }),
        }
    }

    /// No servers at all (nothing configured).
    pub fn empty() -> McpClients {
        McpClients::new(Vec::new())
    }

    /// Starts every enabled server concurrently and returns when each is ready or failed.
    fn start_all(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let conns: Vec<Arc<Conn>> = self
            .inner
            .conns
            .iter()
            .filter(|c| lock(&c.snap).state == ServerState::Idle)
            .cloned()
            .collect();
        async move {
            let mut set = tokio::task::JoinSet::new();
            for c in conns {
                set.spawn(async move {
                    if let Err(e) = c.ensure("").await {
                        tracing::warn!("{}", e.message);
                    }
                });
            }
            while set.join_next().await.is_some() {}
        }
    }

    fn startup_limit(&self) -> Duration {
        self.inner
            .conns
            .iter()
            .filter_map(|c| c.spec.as_ref())
            .map(|s| s.startup_timeout)
            .max()
            .unwrap_or_default()
            + Duration::from_secs(5)
    }

    /// [`connect_all`] for synchronous callers.
    pub fn connect_all_blocking(cfg: &Config) -> McpClients {
        let clients = McpClients::new(configured_servers(cfg));
        let fut = clients.start_all();
        clients.inner.wait(clients.startup_limit(), fut);
        clients
    }

    /// Every server with its state and tools.
    pub fn statuses(&self) -> Vec<ServerStatus> {
        self.inner.conns.iter().map(|c| c.status()).collect()
    }

    /// The pid of a stdio server's process (the last one started).
    pub fn server_pid(&self, server: &str) -> Option<u32> {
        self.inner.conn(server).and_then(|c| lock(&c.snap).pid)
    }

    /// Calls a remote tool by the server's own name for it, waiting on this thread.
    pub fn call(&self, server: &str, tool: &str, args: &Value) -> Result<Value, ToolError> {
        self.inner.call_blocking(server, tool, args)
    }

    /// Each known tool with its server's name, in server order; [`McpClients::tools`]
    /// (tools_bridge.rs) makes chat tools of them, so this file never names the bridge.
    pub(super) fn for_each_tool(&self, mut f: impl FnMut(&str, &RemoteTool)) {
        for c in &self.inner.conns {
            for t in lock(&c.snap).tools.iter() {
                f(&c.name, t);
            }
        }
    }
}

/// Connects to every configured MCP server (`[mcp_servers.<name>]`). Never fails: a server
/// that cannot start is recorded as failed, logged, and left out of [`McpClients::tools`].
pub async fn connect_all(cfg: &Config) -> McpClients {
    let clients = McpClients::new(configured_servers(cfg));
    let fut = clients.start_all();
    let limit = clients.startup_limit();
    if let Some(handle) = clients.inner.handle.clone() {
        let job = handle.spawn(fut);
        let _ = tokio::time::timeout(limit, job).await;
    }
    clients
}
