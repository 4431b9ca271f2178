//! `noctune studio [--repo DIR] [--port N] [--host ADDR] [--no-open]`: serves the /studio web UI,
//! its JSON API and `/mcp` until Ctrl-C or SIGTERM.
//!
//! On either signal the server stops accepting, cancels the chat turns in progress (each saves
//! its session with the question and what had streamed, sends its last event and ends its
//! stream), gives open connections a second to finish and exits; a second signal exits at
//! once. Runs are not this process: each run's worker (`noctune worker`) is a process of its
//! own, in its own session, so it keeps running, and a run waiting for approval keeps waiting,
//! to be decided from the next `noctune studio`, the terminal or an editor. Only this
//! process's supervision of it ends; the liveness check (pid, start time, heartbeat lease) of
//! every reader still catches a worker that dies afterwards.

use noctune_http::{Options, Server};
use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

pub fn studio(
    out: &mut dyn Write,
    repo: Option<PathBuf>,
    port: u16,
    host: IpAddr,
    no_open: bool,
) -> anyhow::Result<i32> {
    let repo_root = super::repo_root(repo)?;
    let studio = Arc::new(super::surface_studio(Some(repo_root.clone()))?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let server = Server::bind(
            studio.clone(),
            Options {
                repo_root,
                host,
                port,
                mcp: Some(noctune_mcp::http_router(studio.clone())),
            },
        )
        .await?;
        let url = server.url();
        // One line, flushed at once: tests and scripts read the URL from here.
        writeln!(out, "Noctune Studio: {url}")?;
        out.flush()?;
        if !no_open {
            open_browser(&url);
        }
        server.serve(shutdown_signal()).await
    })?;
    Ok(0)
}

/// The first Ctrl-C or SIGTERM; a second one, while the first is being handled, ends the
/// process at once.
async fn shutdown_signal() {
    signal().await;
    tokio::spawn(async {
        signal().await;
        std::process::exit(130);
    });
}

async fn signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

/// Opens the URL in the desktop's browser, if there is one; failing that, the printed URL is
/// enough.
fn open_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    let spawned = std::process::Command::new(opener)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    match spawned {
        Ok(mut child) => {
            std::thread::spawn(move || child.wait());
        }
        Err(e) => tracing::info!(
            "could not open a browser ({opener}: {e}); open the printed URL yourself"
        ),
    }
}
