//! Binding, the per-launch token, the printed URL and serving until shutdown.

use super::{AppState, api_chat, auth, routes};
use anyhow::Context;
use noctune_studio::Studio;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub struct Options {
    /// The repository Studio serves (canonical).
    pub repo_root: PathBuf,
    pub host: IpAddr,
    /// 0: any free port.
    pub port: u16,
    /// Served at `/mcp` behind the same lock as everything else: the MCP surface's Streamable
    /// HTTP service (this crate does not know MCP; the binary mounts it).
    pub mcp: Option<axum::Router>,
}

impl Options {
    pub fn loopback(repo_root: PathBuf, port: u16) -> Options {
        Options {
            repo_root,
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port,
            mcp: None,
        }
    }
}

/// A bound, not yet serving, Studio server.
pub struct Server {
    mcp: Option<axum::Router>,
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    url_host: String,
}

impl Server {
    /// Binds the port and makes the token. A port in use is an error that names the port and
    /// the flag to change it.
    pub async fn bind(studio: Arc<Studio>, opts: Options) -> anyhow::Result<Server> {
        let addr = SocketAddr::new(opts.host, opts.port);
        let std_listener = std::net::TcpListener::bind(addr).map_err(|e| match e.kind() {
            std::io::ErrorKind::AddrInUse => anyhow::anyhow!(
                "port {} on {} is already in use (another `noctune studio`?); choose another with --port N, or --port 0 for any free port",
                opts.port,
                opts.host
            ),
            std::io::ErrorKind::PermissionDenied => anyhow::anyhow!(
                "not allowed to listen on port {} of {}: {e}; choose a port above 1023 with --port N",
                opts.port,
                opts.host
            ),
            _ => anyhow::anyhow!("cannot listen on {addr}: {e} (see --host and --port)"),
        })?;
        std_listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(std_listener)?;
        let port = listener.local_addr()?.port();
        let token = auth::Token::generate()?;
        let mut allowed_hosts: Vec<String> = ["127.0.0.1", "localhost", "[::1]"]
            .iter()
            .map(|h| format!("{h}:{port}"))
            .collect();
        if port == 80 {
            allowed_hosts.extend(["127.0.0.1", "localhost", "[::1]"].map(String::from));
        }
        let url_host = match opts.host {
            IpAddr::V4(ip) if ip.is_loopback() || ip.is_unspecified() => "127.0.0.1".to_string(),
            IpAddr::V6(ip) if ip.is_loopback() => "[::1]".to_string(),
            IpAddr::V6(ip) if ip.is_unspecified() => "127.0.0.1".to_string(),
            IpAddr::V4(ip) => ip.to_string(),
            IpAddr::V6(ip) => format!("[{ip}]"),
        };
        if !opts.host.is_loopback() {
            tracing::warn!(
                "listening on {} (not loopback): other machines can reach this server; only the token protects it",
                opts.host
            );
            // An address literal cannot be DNS-rebound, so it may be used as a Host.
            if !opts.host.is_unspecified() {
                allowed_hosts.push(format!("{url_host}:{port}"));
            }
        }
        let state = Arc::new(AppState {
            chat: api_chat::ChatState::new(studio.clone(), opts.repo_root.clone()),
            studio,
            repo_root: opts.repo_root,
            port,
            token,
            allowed_hosts,
        });
        Ok(Server {
            mcp: opts.mcp,
            listener,
            state,
            url_host,
        })
    }

    pub fn port(&self) -> u16 {
        self.state.port
    }

    /// The URL to open: `http://127.0.0.1:PORT/studio?token=...`.
    pub fn url(&self) -> String {
        format!(
            "http://{}:{}/studio?token={}",
            self.url_host,
            self.state.port,
            self.state.token.as_str()
        )
    }

    /// Serves until `shutdown` completes (open event streams are cut one second later).
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let app = routes::app(self.state.clone(), self.mcp);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = axum::serve(self.listener, app).with_graceful_shutdown(async move {
            shutdown.await;
            let _ = tx.send(());
        });
        let cut = async move {
            if rx.await.is_ok() {
                tokio::time::sleep(Duration::from_secs(1)).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            r = server => r.context("serving HTTP")?,
            _ = cut => {}
        }
        Ok(())
    }
}
