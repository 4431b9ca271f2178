//! Binding, the per-launch token, the printed URL and serving until shutdown: our own accept
//! loop (not `axum::serve`), so every connection is watched by `conn.rs` and an accept error
//! such as running out of file descriptors backs off instead of spinning.

use super::{AppState, api_chat, auth, conn, routes};
use noctune_studio::{Studio, limits};
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

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
    unauthenticated: Arc<conn::Unauthenticated>,
}

impl Server {
    /// Binds the port and makes the token. A port in use is an error that names the port and
    /// the flag to change it.
    pub async fn bind(studio: Arc<Studio>, opts: Options) -> anyhow::Result<Server> {
        let fd_limit = conn::raise_fd_limit();
        let unauthenticated =
            conn::Unauthenticated::new(limits::unauthenticated_connection_cap(fd_limit));
        tracing::debug!(
            "open-file limit {fd_limit}: at most {} connections without the token",
            unauthenticated.cap()
        );
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
            page_routes: routes::page_routes(),
        });
        Ok(Server {
            mcp: opts.mcp,
            listener,
            state,
            url_host,
            unauthenticated,
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

    /// Serves until `shutdown` completes: then no new connection is accepted, each open one
    /// finishes the request in progress, and what is still open one second later (event
    /// streams) is cut.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let app = routes::app(self.state.clone(), self.mcp);
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut conns = tokio::task::JoinSet::new();
        let mut accept_errors = AcceptErrors::default();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        let _ = stream.set_nodelay(true);
                        let shared = self.unauthenticated.admit();
                        conns.spawn(conn::serve(stream, shared, app.clone(), stop_rx.clone()));
                    }
                    Err(e) => accept_errors.back_off(e, &self.unauthenticated).await,
                },
            }
        }
        drop(self.listener);
        // Chat turns end themselves (saving their sessions) rather than being cut below.
        self.state.chat.shutdown();
        let _ = stop_tx.send(true);
        let drained = async { while conns.join_next().await.is_some() {} };
        let _ = tokio::time::timeout(Duration::from_secs(1), drained).await;
        // Dropping the set cuts the connections still open.
        drop(conns);
        Ok(())
    }
}

/// What to do when `accept` fails: a connection that died in the queue is skipped; anything
/// else (most often no file descriptor left: EMFILE, ENFILE) waits a little before the next
/// try rather than spinning, after closing the oldest connection without the token so that
/// the next accept finds a descriptor. Logged at most every ten seconds.
#[derive(Default)]
struct AcceptErrors {
    last_logged: Option<Instant>,
    since_logged: u64,
}

impl AcceptErrors {
    async fn back_off(&mut self, e: std::io::Error, unauthenticated: &conn::Unauthenticated) {
        use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
        if matches!(
            e.kind(),
            ConnectionAborted | ConnectionRefused | ConnectionReset
        ) {
            return;
        }
        let out_of_fds = matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE));
        if out_of_fds {
            unauthenticated.evict_oldest();
        }
        self.since_logged += 1;
        if self
            .last_logged
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(10))
        {
            let hint = if out_of_fds {
                " (out of file descriptors: raise `ulimit -n`)"
            } else {
                ""
            };
            tracing::warn!(
                "accepting a connection failed {} time(s): {e}{hint}; retrying",
                self.since_logged
            );
            self.last_logged = Some(Instant::now());
            self.since_logged = 0;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
