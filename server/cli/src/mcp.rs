//! `noctune mcp [--repo DIR]` (the MCP server on stdio) and `noctune mcp list-servers`.

use clap::Subcommand;
use noctune_studio::Studio;
use noctune_studio::chat::ServerState;
use serde_json::json;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Subcommand, Debug)]
pub enum McpCommand {
    /// Start each configured MCP server ([mcp_servers.<name>]) and show its state and tools
    ListServers {
        #[arg(long, value_name = "DIR")]
        repo: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

pub fn mcp(
    out: &mut dyn Write,
    repo: Option<PathBuf>,
    command: Option<McpCommand>,
) -> anyhow::Result<i32> {
    match command {
        None => serve(repo),
        Some(McpCommand::ListServers {
            repo: sub_repo,
            json,
        }) => list_servers(out, sub_repo.or(repo), json),
    }
}

fn serve(repo: Option<PathBuf>) -> anyhow::Result<i32> {
    // With --repo, agents reach only that repository's allowed roots; without, the person who
    // started the server named no repository and each repository's own roots apply.
    let studio = Arc::new(match repo {
        Some(dir) => super::surface_studio(Some(dir))?,
        None => Studio::open_default()?,
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(noctune_mcp::stdio::serve_stdio(studio))?;
    // Supervisor threads of runs still going on end with the process; their workers go on and
    // any later status check notices how they end.
    rt.shutdown_background();
    Ok(0)
}

fn list_servers(out: &mut dyn Write, repo: Option<PathBuf>, json: bool) -> anyhow::Result<i32> {
    let root = super::repo_root(repo)?;
    let statuses = Studio::open_default()?.mcp_server_status(&root)?;
    let bad = statuses
        .iter()
        .any(|s| !matches!(s.state, ServerState::Ready | ServerState::Disabled));
    if json {
        writeln!(
            out,
            "{}",
            serde_json::to_string(&json!({"repo_root": root, "servers": statuses}))?
        )?;
    } else if statuses.is_empty() {
        writeln!(
            out,
            "no MCP servers configured; add [mcp_servers.<name>] with `command` or `url` to {}",
            root.join("noctune.toml").display()
        )?;
    } else {
        for s in &statuses {
            let info = s
                .server_info
                .as_deref()
                .map(|i| format!(" ({i})"))
                .unwrap_or_default();
            writeln!(
                out,
                "{:<16} {:<13} {}{info}",
                s.name,
                s.state.label(),
                s.transport
            )?;
            if let Some(e) = s.state.error() {
                writeln!(out, "  error: {e}")?;
            }
            for t in &s.tools {
                let first = t.description.lines().next().unwrap_or("");
                let short: String = first.chars().take(90).collect();
                writeln!(out, "  {:<40} {short}", t.chat_name)?;
            }
        }
    }
    Ok(if bad { 1 } else { 0 })
}
