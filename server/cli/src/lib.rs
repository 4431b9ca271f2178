//! The terminal surface: `noctune <command>`. A closed enum of commands, each a thin call
//! into the `Studio` facade. Commands print through [`out::Out`], never `println!` (which
//! panics when stdout is a closed pipe); clippy's `print_stdout` keeps it so.

#![deny(clippy::print_stdout)]

mod chat;
mod decide;
mod lsp;
mod mcp;
mod mcp_tools;
mod out;
mod progress;
mod runs;
mod studio;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "noctune",
    version,
    about = "Noctune Studio: policy-pack runs, chat with a local LLM, and editor/web/MCP surfaces",
    after_help = "Environment: NOCTUNE_STUDIO_LLM_BASE_URL, NOCTUNE_STUDIO_LLM_MODEL, \
                  NOCTUNE_STUDIO_ALLOWED_ROOTS, NOCTUNE_STUDIO_DB, NOCTUNE_LOG (log filter, to stderr)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Start a run of a policy pack on a git repository
    #[command(
        after_help = "Exit status (without --detach): 0 the run ended done with at least one commit; \
                      3 it ended done and committed nothing (run.json's `reason` says why: nothing \
                      to change, all edits rejected, every patchset regressed a check); 1 it \
                      failed or was stopped, or the command itself failed. --detach exits 0 once \
                      the run is queued."
    )]
    Run {
        /// Repository root (default: the current directory's repository)
        #[arg(long, value_name = "DIR")]
        repo: Option<PathBuf>,
        /// Policy pack: lint_fix, typing_pass, py_upgrade, deps_bump or one from your config
        #[arg(long, value_name = "NAME")]
        pack: String,
        /// Model profile (for packs with an llm proposer)
        #[arg(long, value_name = "NAME")]
        profile: Option<String>,
        /// Return as soon as run.json exists and print the run id
        #[arg(long)]
        detach: bool,
        /// Machine-readable output
        #[arg(long)]
        json: bool,
    },
    /// List runs (newest first)
    Runs {
        #[arg(long, value_name = "DIR")]
        repo: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Show a run's state (run.json, after a liveness check)
    Status {
        run_id: String,
        #[arg(long)]
        json: bool,
    },
    /// Print a run's events from a cursor
    Events {
        run_id: String,
        #[arg(long, default_value_t = 0)]
        cursor: u64,
        /// Keep printing new events until the run ends
        #[arg(long)]
        follow: bool,
        #[arg(long)]
        json: bool,
    },
    /// List a run's approvals with their diffs and status
    Approvals {
        run_id: String,
        #[arg(long)]
        json: bool,
    },
    /// Approve or reject a pending edit, or with --all-pending every pending edit of the run
    /// (narrowed by --glob and --max-risk); exits 1 when a picked edit could not be decided
    #[command(
        override_usage = "noctune decide <RUN_ID> <APPROVAL_ID> <approve|reject> [OPTIONS]\n       \
                          noctune decide <RUN_ID> --all-pending <approve|reject> [--glob PATTERN] [--max-risk N] [--dry-run] [OPTIONS]"
    )]
    Decide {
        run_id: String,
        /// APPROVAL_ID and approve|reject; with --all-pending only approve|reject
        #[arg(value_name = "APPROVAL_ID|DECISION", num_args = 1..=2, required = true)]
        args: Vec<String>,
        /// Decide every pending approval of the run (each recorded as its own decision)
        #[arg(long)]
        all_pending: bool,
        /// With --all-pending: only files matching this glob (`*` within a directory, `**` across)
        #[arg(long, value_name = "PATTERN", requires = "all_pending")]
        glob: Option<String>,
        /// With --all-pending: only approvals with a risk score of at most N (0-100)
        #[arg(long, value_name = "N", requires = "all_pending")]
        max_risk: Option<u8>,
        /// With --all-pending: list what would be decided, decide nothing
        #[arg(long, requires = "all_pending")]
        dry_run: bool,
        #[arg(long, default_value = "")]
        reason: String,
        /// Who decides (default: $USER)
        #[arg(long, value_name = "NAME")]
        by: Option<String>,
    },
    /// Stop a run (cooperatively, then by force after the grace period)
    Stop {
        run_id: String,
        /// Seconds to wait before killing the worker (default: engine.stop_grace_secs)
        #[arg(long, value_name = "SECS")]
        grace: Option<u64>,
    },
    /// Continue a stopped or failed run from its recorded decisions and patchsets
    #[command(
        after_help = "Exit status: as for `noctune run` (0 done with commits, 3 done \
                            with none, 1 failed or stopped)."
    )]
    Resume {
        run_id: String,
        #[arg(long)]
        detach: bool,
        #[arg(long)]
        json: bool,
    },
    /// Serve the /studio web UI, its JSON API and /mcp on 127.0.0.1 (prints the URL to open)
    Studio {
        #[arg(long, value_name = "DIR")]
        repo: Option<PathBuf>,
        /// Port to listen on (0: any free port)
        #[arg(long, value_name = "N", default_value_t = 8765)]
        port: u16,
        /// Address to listen on; anything but loopback exposes Studio to other machines
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1")]
        host: std::net::IpAddr,
        /// Do not open a browser
        #[arg(long)]
        no_open: bool,
    },
    /// Serve the MCP tools (enqueue_run, get_status, tail_events, ...) on stdio for an agent;
    /// `noctune mcp list-servers` shows the MCP servers chat uses
    Mcp {
        /// Only enqueue runs inside this repository's allowed roots
        #[arg(long, value_name = "DIR")]
        repo: Option<PathBuf>,
        #[command(subcommand)]
        command: Option<mcp::McpCommand>,
    },
    /// Serve the editor sidecar (Language Server Protocol on stdio, with noctune/* methods for
    /// chat, runs and approvals); also serves /studio over HTTP unless --no-http
    Lsp {
        /// Repository root (default: the editor's workspace folder)
        #[arg(long, value_name = "DIR")]
        repo: Option<PathBuf>,
        /// Port of the /studio HTTP server (0: any free port)
        #[arg(long, value_name = "N", default_value_t = 0)]
        port: u16,
        /// Do not serve /studio over HTTP
        #[arg(long)]
        no_http: bool,
    },
    /// Chat with the model about a repository: one turn with MESSAGE, else an interactive loop
    Chat {
        /// Repository root (default: the current directory's repository)
        #[arg(long, value_name = "DIR")]
        repo: Option<PathBuf>,
        /// Model profile (default: the configured default_profile)
        #[arg(long, value_name = "NAME")]
        profile: Option<String>,
        /// Continue this session (default: a new one)
        #[arg(long, value_name = "ID")]
        session: Option<String>,
        /// One JSON event per line: delta, tool_call, tool_result, permission_request, done, error
        #[arg(long)]
        json: bool,
        /// Answer every permission prompt of this invocation with once, session or always
        /// (protected paths still get a one-time grant only); without it and not on a terminal,
        /// nothing is granted
        #[arg(long, value_name = "SCOPE", value_parser = ["once", "session", "always"])]
        allow: Option<String>,
        /// The message (several words are joined); none for the interactive loop
        #[arg(trailing_var_arg = true, allow_hyphen_values = false)]
        message: Vec<String>,
    },
    /// Configuration commands
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Internal: the process that executes one run
    #[command(hide = true)]
    Worker {
        #[arg(long, value_name = "DIR")]
        run_dir: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Validate the configuration and print the effective packs, profiles and tools
    Check {
        #[arg(long, value_name = "DIR")]
        repo: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

/// Runs a command; returns the process exit code.
pub fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    let out = &mut out::Out::stdout();
    match cli.command {
        Command::Worker { run_dir } => Ok(noctune_studio::Studio::run_worker(&run_dir)),
        Command::Config {
            command: ConfigCommand::Check { repo, json },
        } => runs::config_check(out, repo, json),
        Command::Run {
            repo,
            pack,
            profile,
            detach,
            json,
        } => runs::run(out, repo, pack, profile, detach, json),
        Command::Mcp { repo, command } => mcp::mcp(out, repo, command),
        Command::Lsp {
            repo,
            port,
            no_http,
        } => lsp::lsp(repo, port, no_http),
        Command::Chat {
            repo,
            profile,
            session,
            json,
            allow,
            message,
        } => chat::run(chat::ChatArgs {
            repo,
            profile,
            session,
            json,
            allow,
            message,
        }),
        Command::Runs { repo, json } => runs::list(out, repo, json),
        Command::Status { run_id, json } => runs::status(out, &run_id, json),
        Command::Events {
            run_id,
            cursor,
            follow,
            json,
        } => runs::events(out, &run_id, cursor, follow, json),
        Command::Approvals { run_id, json } => runs::approvals(out, &run_id, json),
        Command::Decide {
            run_id,
            args,
            all_pending,
            glob,
            max_risk,
            dry_run,
            reason,
            by,
        } => {
            let filter = noctune_core::ApprovalFilter { glob, max_risk };
            let target = decide::DecideTarget::of(&args, all_pending.then_some(filter), dry_run)?;
            decide::decide(out, &run_id, target, &reason, by)
        }
        Command::Stop { run_id, grace } => runs::stop(out, &run_id, grace),
        Command::Resume {
            run_id,
            detach,
            json,
        } => runs::resume(out, &run_id, detach, json),
        Command::Studio {
            repo,
            port,
            host,
            no_open,
        } => studio::studio(out, repo, port, host, no_open),
    }
}

/// The repository root for `--repo`, or the one containing the current directory.
pub fn repo_root(repo: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    match repo {
        Some(d) => {
            if !d.is_dir() {
                anyhow::bail!("--repo {}: no such directory", d.display());
            }
            Ok(std::fs::canonicalize(&d)?)
        }
        None => Ok(noctune_studio::Studio::discover_repository(
            &std::env::current_dir()?,
        )?),
    }
}

/// The facade for a surface that serves other programs (web page, editor, agent): confined to
/// the allowed roots of `--repo` (or the current directory's repository) when there is one,
/// else to `NOCTUNE_STUDIO_ALLOWED_ROOTS`.
pub fn surface_studio(repo: Option<PathBuf>) -> anyhow::Result<noctune_studio::Studio> {
    let db = noctune_studio::Studio::open_default()?.db_path();
    let root = match repo {
        Some(d) => repo_root(Some(d))?,
        None => match repo_root(None) {
            Ok(r) => r,
            // Not in a repository: the roots can only come from the environment.
            Err(_) => std::env::current_dir()?,
        },
    };
    Ok(noctune_studio::Studio::for_repository(&db, &root)?)
}

/// The whole program: logging, arguments, dispatch; returns the process exit code.
pub fn main() -> i32 {
    noctune_studio::logging_init();
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => out::exit_code(&e),
    }
}
