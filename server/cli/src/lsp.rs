//! `noctune lsp [--repo DIR] [--port N] [--no-http]`: the editor sidecar on stdio. The same
//! process serves /studio (and /mcp) over HTTP unless `--no-http`; its URL (with the token) is
//! what `noctune/studioUrl` answers.

use noctune_lsp::{Options, StudioUrl};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::watch;

pub fn lsp(repo: Option<PathBuf>, port: u16, no_http: bool) -> anyhow::Result<i32> {
    // First, before anything could print: stdout is the protocol's from here on.
    let io = noctune_lsp::claim_stdio()?;
    let repo = match repo {
        Some(d) => Some(super::repo_root(Some(d))?),
        None => None,
    };
    if let Some(root) = &repo {
        super::mcp_tools::attach_in_background(
            Arc::new(super::surface_studio(Some(root.clone()))?),
            root,
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let code = runtime.block_on(async move {
        let (tx, rx) = watch::channel(if no_http {
            StudioUrl::Disabled
        } else {
            StudioUrl::Starting
        });
        if !no_http {
            tokio::spawn(serve_http(repo.clone(), port, tx));
        }
        noctune_lsp::serve(
            io,
            Options {
                repo,
                studio_url: rx,
            },
        )
        .await
    });
    // Do not wait for blocking tasks (run supervisors, a stdin read) to finish.
    std::process::exit(code);
}

/// Starts /studio for the workspace's repository in the background (never delays
/// `initialize`), and publishes its URL or why it did not start.
async fn serve_http(repo: Option<PathBuf>, port: u16, tx: watch::Sender<StudioUrl>) {
    let started = async {
        let repo = match repo {
            Some(r) => r,
            None => tokio::task::spawn_blocking(|| super::repo_root(None))
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .map_err(|e| {
                    anyhow::anyhow!(
                        "no repository for /studio ({e}); start the server with --repo DIR"
                    )
                })?,
        };
        let for_repo = repo.clone();
        let studio = tokio::task::spawn_blocking(move || super::surface_studio(Some(for_repo)))
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))??;
        let studio = Arc::new(studio);
        let mut opts = noctune_http::Options::loopback(repo, port);
        opts.mcp = Some(noctune_mcp::http_router(studio.clone()));
        noctune_http::Server::bind(studio, opts).await
    };
    match started.await {
        Ok(server) => {
            let url = server.url();
            tracing::info!("Noctune Studio: {url}");
            let _ = tx.send(StudioUrl::Ready(url));
            if let Err(e) = server.serve(std::future::pending()).await {
                tracing::warn!("/studio server stopped: {e:#}");
            }
        }
        Err(e) => {
            tracing::warn!("/studio did not start: {e:#}");
            let _ = tx.send(StudioUrl::Failed(format!("{e:#}")));
        }
    }
}
