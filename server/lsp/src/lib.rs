//! The editor surface: `noctune lsp`, a language server on stdio with `noctune/*` extensions
//! for chat, runs and approvals (documented in `docs/lsp-protocol.md`).
//!
//! It translates and decides nothing: chat goes through `Studio::chat`, runs and decisions
//! through the `Studio` facade. Modules: `transport` (stdio framing and malformed input),
//! `server` (the `LanguageServer` impl), `documents` (text sync, the chat's buffer overlay),
//! `chat`, `runs` (`$/progress`), `diagnostics` (pending approvals), `approvals` (their code
//! actions and commands), `watch` (the 500 ms refresh), `protocol` (method names and shapes).
//!
//! Lifetime: the session ends on `exit` or when stdin closes; the process then exits at once
//! (in-flight chat turns are dropped) after ending its own helper processes. Run workers are
//! detached (own process group) by design and keep running.

mod approvals;
mod chat;
mod diagnostics;
mod documents;
mod protocol;
mod runs;
mod server;
mod state;
mod transport;
mod watch;

use serde_json::{Value, json};
use state::Shared;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tower_lsp_server::Server;
use tower_lsp_server::jsonrpc::Result;
use tower_lsp_server::ls_types::{MessageType, ShowDocumentParams, Uri};

pub use state::StudioUrl;
pub use transport::{ProtocolIo, claim_stdio};

/// How many requests are served at once (chat turns are long; keep room for the rest).
const CONCURRENCY: usize = 64;

pub struct Options {
    /// `--repo`; default: the workspace folder from `initialize`, else the current directory.
    pub repo: Option<PathBuf>,
    /// Where this process's /studio server is (the CLI starts it).
    pub studio_url: tokio::sync::watch::Receiver<StudioUrl>,
}

/// Serves one session on the claimed stdio. Returns the exit code: 0 after `shutdown` then
/// `exit`, 1 when the client went away without `shutdown` (as the protocol asks).
pub async fn serve(io: ProtocolIo, opts: Options) -> i32 {
    let wired = transport::wire(io);
    let (service, socket, shared) = server::build(opts.repo, opts.studio_url);
    let server =
        Server::new(wired.server_in, wired.server_out, socket).concurrency_level(CONCURRENCY);
    tokio::select! {
        _ = server.serve(service) => {}
        end = wired.ended => tracing::debug!("input ended: {end:?}"),
    }
    shared.chat.cancel_all();
    wired.output.flush(Duration::from_secs(2));
    end_helpers();
    if shared.is_shut_down() { 0 } else { 1 }
}

/// `noctune/studioUrl`: the /studio URL with its token (waits up to 5 s for a starting server).
async fn studio_url(shared: &Shared, p: protocol::StudioUrlParams) -> Result<Value> {
    let mut rx = shared.studio_url.clone();
    let _ = tokio::time::timeout(
        Duration::from_secs(5),
        rx.wait_for(|u| *u != StudioUrl::Starting),
    )
    .await;
    let now = rx.borrow().clone();
    Ok(match now {
        StudioUrl::Ready(url) => {
            let mut opened = false;
            if p.open
                && shared.caps().show_document
                && let Ok(uri) = url.parse::<Uri>()
            {
                let params = ShowDocumentParams {
                    uri,
                    external: Some(true),
                    take_focus: Some(true),
                    selection: None,
                };
                opened = shared.client.show_document(params).await.unwrap_or(false);
            }
            json!({"url": url, "enabled": true, "opened": opened})
        }
        StudioUrl::Disabled => {
            json!({"url": null, "enabled": false, "error": "this server was started with --no-http"})
        }
        StudioUrl::Starting => {
            json!({"url": null, "enabled": true, "error": "the /studio server is still starting"})
        }
        StudioUrl::Failed(e) => json!({"url": null, "enabled": true, "error": e}),
    })
}

/// Tells the client (its log) where /studio is, once the server is up.
async fn report_studio_url(shared: Arc<Shared>) {
    let mut rx = shared.studio_url.clone();
    let Ok(u) = rx
        .wait_for(|u| !matches!(u, StudioUrl::Starting))
        .await
        .map(|u| u.clone())
    else {
        return;
    };
    match u {
        StudioUrl::Ready(url) => {
            shared
                .client
                .log_message(MessageType::INFO, format!("Noctune Studio: {url}"))
                .await
        }
        StudioUrl::Failed(e) => {
            shared
                .client
                .log_message(
                    MessageType::WARNING,
                    format!("Noctune Studio did not start: {e}"),
                )
                .await
        }
        _ => {}
    }
}

/// `(pid, ppid, pgrp)` of every process, from `/proc`.
fn processes() -> Vec<(i32, i32, i32)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let rest = stat.get(stat.rfind(')')? + 2..)?;
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some((pid, f.get(1)?.parse().ok()?, f.get(2)?.parse().ok()?))
        })
        .collect()
}

/// Ends the helper processes this process started (e.g. MCP servers of chat tools): every
/// descendant still in our process group. Run workers live in process groups of their own and
/// are left alone.
fn end_helpers() {
    let me = std::process::id() as i32;
    // SAFETY: getpgrp has no preconditions.
    let group = unsafe { libc::getpgrp() };
    let all = processes();
    let mut doomed = Vec::new();
    let mut frontier = vec![me];
    while let Some(parent) = frontier.pop() {
        for &(pid, ppid, pgrp) in &all {
            if ppid == parent && pgrp == group && !doomed.contains(&pid) {
                doomed.push(pid);
                frontier.push(pid);
            }
        }
    }
    for &pid in &doomed {
        // SAFETY: signals to our own descendants, just listed.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
    if doomed.is_empty() {
        return;
    }
    std::thread::sleep(Duration::from_millis(200));
    for &pid in &doomed {
        // SAFETY: as above; a pid already gone makes kill fail harmlessly.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}
