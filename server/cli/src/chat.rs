//! `noctune chat`: the terminal surface of chat.
//!
//! With a message, one turn and exit; without, an interactive loop. Answers stream as they
//! arrive, tool calls are shown as one readable line each, and permission prompts are asked on
//! the terminal. Not on a terminal nobody can answer, so nothing is granted unless `--allow`
//! says how to answer every prompt of this invocation (the gate still limits protected paths to
//! a one-time grant). `--json` prints one event per line for scripts.

use super::out::Out;
use anyhow::Context;
use noctune_studio::chat::{
    CancelToken, ChatEvent, ChatService, FixedPrompter, NoPrompter, PermissionAnswer,
    PermissionRequest, Prompter, SESSIONS_DIR, Session, TurnContext, new_session_id, validate_id,
};
use serde_json::{Value, json};
use std::future::Future;
use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

/// The flags of `noctune chat`.
#[derive(Debug, Clone, Default)]
pub struct ChatArgs {
    pub repo: Option<PathBuf>,
    pub profile: Option<String>,
    pub session: Option<String>,
    pub json: bool,
    /// `once`, `session` or `always`: the answer to every permission prompt.
    pub allow: Option<String>,
    /// Words of the message; empty for the interactive loop.
    pub message: Vec<String>,
}

fn user() -> String {
    std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "user".into())
}

/// The repository: `--repo`, else the git repository around the current directory, else the
/// current directory itself (chat works in any folder).
fn repo_root(repo: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if repo.is_some() {
        return super::repo_root(repo);
    }
    let cwd = std::env::current_dir()?;
    Ok(noctune_studio::Studio::discover_repository(&cwd).unwrap_or(std::fs::canonicalize(&cwd)?))
}

pub fn run(args: ChatArgs) -> anyhow::Result<i32> {
    let root = repo_root(args.repo.clone())?;
    let studio = super::surface_studio(Some(root.clone()))?;
    let service = studio.chat(&root)?;
    studio.attach_mcp_servers(&root);
    let session_id = match &args.session {
        Some(id) => {
            validate_id(id)?;
            id.clone()
        }
        None => new_session_id(),
    };
    if let Some(p) = &args.profile {
        service.select_profile(&session_id, p)?;
    }
    let interactive_terminal = std::io::stdin().is_terminal();
    let prompter: Arc<dyn Prompter> = match args.allow.as_deref() {
        Some(scope) => {
            let answer: PermissionAnswer = scope.parse()?;
            if answer == PermissionAnswer::Deny {
                anyhow::bail!("--allow takes once, session or always");
            }
            Arc::new(FixedPrompter {
                answer,
                actor: format!("{} (noctune chat --allow {scope})", user()),
            })
        }
        None if interactive_terminal => Arc::new(TerminalPrompter),
        None => Arc::new(NoPrompter),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let message = args.message.join(" ");
    let mut ui = Ui::new(args.json);
    if !message.trim().is_empty() {
        let ok = rt.block_on(turn(
            &service,
            &session_id,
            Some(&message),
            prompter.as_ref(),
            &mut ui,
            false,
        ))?;
        if ok && !args.json && args.session.is_none() {
            eprintln!("(session {session_id}; continue with --session {session_id})");
        }
        return Ok(if ok { 0 } else { 1 });
    }
    rt.block_on(interactive(
        &service,
        session_id,
        prompter.as_ref(),
        &mut ui,
    ))
}

/// One turn (`None`: the failed last turn again); `Ok(false)` if it ended on an error.
async fn turn(
    service: &ChatService,
    session_id: &str,
    message: Option<&str>,
    prompter: &dyn Prompter,
    ui: &mut Ui,
    catch_ctrl_c: bool,
) -> anyhow::Result<bool> {
    let cancel = CancelToken::new();
    let watcher = catch_ctrl_c.then(|| {
        let c = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                c.cancel();
            }
        })
    });
    let mut on_event = |e: ChatEvent| {
        ui.event(e);
        if ui.failed.is_some() {
            // Nobody reads the answer any more: stop the model and any further tool calls.
            cancel.cancel();
        }
    };
    let result = match message {
        Some(message) => {
            service
                .send(
                    session_id,
                    message,
                    TurnContext::default(),
                    prompter,
                    &mut on_event,
                    &cancel,
                )
                .await
        }
        None => {
            service
                .retry(
                    session_id,
                    TurnContext::default(),
                    prompter,
                    &mut on_event,
                    &cancel,
                )
                .await
        }
    };
    if let Some(w) = watcher {
        w.abort();
    }
    if let Some(e) = ui.failed.take() {
        return Err(e.into());
    }
    let summary = result?;
    let stopped = summary.finish_reason.as_deref() == Some("cancelled");
    if (summary.error.is_some() || stopped) && !ui.json {
        let how = if catch_ctrl_c {
            "/retry".to_string()
        } else {
            format!("/retry in `noctune chat --session {session_id}`")
        };
        let what = if stopped { "stopped" } else { "failed" };
        eprintln!("(the turn {what}; its question is kept in the session: {how} sends it again)");
    }
    Ok(summary.error.is_none())
}

const HELP: &str = "commands: /retry  /undo  /sessions  /load ID  /new  /save  /export FILE  \
                    /grants  /revoke write|run|decide  /help  /quit (Ctrl-C stops an answer)";

async fn interactive(
    service: &ChatService,
    mut session_id: String,
    prompter: &dyn Prompter,
    ui: &mut Ui,
) -> anyhow::Result<i32> {
    let profile = service
        .load_session(&session_id)
        .ok()
        .and_then(|s| s.profile)
        .unwrap_or_else(|| service.default_profile().to_string());
    let url = service
        .profiles()
        .into_iter()
        .find(|p| p.name == profile)
        .map(|p| p.base_url)
        .unwrap_or_default();
    eprintln!(
        "noctune chat in {} (session {session_id}, profile {profile} at {url})\n{HELP}",
        service.repo_root().display()
    );
    if let Ok(s) = service.load_session(&session_id) {
        show_failed_last_turn(&s);
    }
    loop {
        if !ui.json {
            eprint!("\n> ");
            let _ = std::io::stderr().flush();
        }
        let Some(line) = read_line_or_interrupt().await else {
            break;
        };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let (cmd, rest) = line
            .split_once(' ')
            .map_or((line, ""), |(c, r)| (c, r.trim()));
        match cmd {
            "/quit" | "/exit" | "/q" => break,
            "/retry" => {
                if let Err(e) = turn(service, &session_id, None, prompter, ui, true).await {
                    eprintln!("error: {e:#}");
                }
            }
            c if c.starts_with('/') => {
                if let Err(e) = command(service, &mut session_id, c, rest) {
                    eprintln!("error: {e:#}");
                }
            }
            _ => {
                turn(service, &session_id, Some(line), prompter, ui, true).await?;
            }
        }
    }
    Ok(0)
}

/// One `/command` of the interactive loop (all but `/quit`).
fn command(
    service: &ChatService,
    session_id: &mut String,
    cmd: &str,
    rest: &str,
) -> anyhow::Result<()> {
    match cmd {
        "/help" => eprintln!("{HELP}"),
        "/undo" => {
            let u = service.undo_last(Some(session_id))?;
            let what = if u.removed {
                "removed (the edit had created it)"
            } else {
                "restored"
            };
            eprintln!("undid the edit of {} from {}: {what}", u.path, u.edit_ts);
        }
        "/sessions" => {
            for s in service.list_sessions()? {
                let mark = if s.id == *session_id { "*" } else { " " };
                eprintln!(
                    "{mark} {}  {}  {} messages  {}",
                    s.id, s.updated_at, s.messages, s.title
                );
            }
        }
        "/load" => {
            let s = service.load_session(rest)?;
            session_id.clone_from(&s.id);
            eprintln!("session {session_id} ({} messages)", s.messages.len());
            show_failed_last_turn(&s);
        }
        "/new" => {
            service.end_session(session_id);
            *session_id = new_session_id();
            eprintln!("new session {session_id}");
        }
        "/save" => eprintln!(
            "sessions are saved after every turn: {}",
            service
                .repo_root()
                .join(SESSIONS_DIR)
                .join(format!("{session_id}.json"))
                .display()
        ),
        "/export" if rest.is_empty() => eprintln!("usage: /export FILE"),
        "/export" => {
            let v = service.export_session(session_id)?;
            let text = serde_json::to_string_pretty(&v)? + "\n";
            std::fs::write(rest, text).with_context(|| format!("cannot write {rest}"))?;
            eprintln!("exported session {session_id} to {rest}");
        }
        "/grants" => {
            let grants = service.always_grants();
            if grants.is_empty() {
                eprintln!("no \"always\" grants in this repository");
            }
            for g in grants {
                eprintln!(
                    "always {}  granted {} by {}",
                    g.tool_class.as_str(),
                    g.granted_at,
                    g.granted_by
                );
            }
        }
        "/revoke" => {
            if service.revoke(rest, &user())? {
                eprintln!("revoked: {rest} tools will ask again");
            } else {
                eprintln!("there was no {rest} grant to revoke");
            }
        }
        other => eprintln!("unknown command {other}; {HELP}"),
    }
    Ok(())
}

/// When the session's last turn ended without its answer: the question, what had streamed
/// and why it ended, so that a resumed session shows where it stopped.
fn show_failed_last_turn(s: &Session) {
    let Some(f) = s.failed_last_turn() else {
        return;
    };
    let question = s
        .messages
        .get(f.user_index)
        .and_then(|m| m.content.as_deref())
        .unwrap_or("");
    eprintln!("\nthe last turn ended without a complete answer:");
    eprintln!("  you: {}", short(question, 300));
    if !f.partial.trim().is_empty() {
        eprintln!("  partial answer: {}", short(&f.partial, 600));
    }
    eprintln!("  {}: {}", f.error.code, f.error.message);
    eprintln!("  /retry sends the same message again");
}

/// A line of stdin, read off the runtime's thread; `None` at end of input or on Ctrl-C.
async fn read_line_or_interrupt() -> Option<String> {
    let read = tokio::task::spawn_blocking(|| {
        let mut s = String::new();
        match std::io::stdin().read_line(&mut s) {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(s),
        }
    });
    tokio::select! {
        line = read => line.ok().flatten(),
        _ = tokio::signal::ctrl_c() => None,
    }
}

/// Asks on the terminal (prompts on stderr, answers from stdin).
struct TerminalPrompter;

impl Prompter for TerminalPrompter {
    fn ask<'a>(
        &'a self,
        req: &'a PermissionRequest,
    ) -> Pin<Box<dyn Future<Output = PermissionAnswer> + Send + 'a>> {
        Box::pin(async move {
            let protected = if req.protected {
                " (protected path: only a one-time approval is possible)"
            } else {
                ""
            };
            if let Some(p) = &req.preview {
                eprint!("{}", preview_text(&p.diff, colored_stderr()));
            }
            loop {
                eprint!(
                    "\n? allow {} ({} tool){protected}: [o]nce, [s]ession, [a]lways, [d]eny? ",
                    req.summary,
                    req.class.as_str()
                );
                let _ = std::io::stderr().flush();
                let Some(line) = read_line_or_interrupt().await else {
                    return PermissionAnswer::Deny;
                };
                match line.trim().to_ascii_lowercase().as_str() {
                    "o" | "once" | "y" | "yes" => return PermissionAnswer::Once,
                    "s" | "session" => return PermissionAnswer::Session,
                    "a" | "always" => return PermissionAnswer::Always,
                    "d" | "deny" | "n" | "no" | "" => return PermissionAnswer::Deny,
                    other => eprintln!("unknown answer {other:?}"),
                }
            }
        })
    }

    fn actor(&self) -> String {
        format!("{} (terminal)", user())
    }
}

fn colored_stderr() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// The diff a permission prompt is about, shown above the question so that the user decides
/// on the change itself (added lines green, removed red on a terminal).
fn preview_text(diff: &str, color: bool) -> String {
    if diff.is_empty() {
        return "\n(the call would not change the file)\n".to_string();
    }
    let mut out = String::from("\n");
    for line in diff.lines() {
        let paint = match line.as_bytes().first() {
            _ if !color => None,
            _ if line.starts_with("+++") || line.starts_with("---") => Some("1"),
            Some(b'+') => Some("32"),
            Some(b'-') => Some("31"),
            Some(b'@') => Some("36"),
            _ => None,
        };
        match paint {
            Some(code) => out.push_str(&format!("\x1b[{code}m{line}\x1b[0m\n")),
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

/// Renders events on stdout: JSON lines, or text for people.
struct Ui {
    json: bool,
    /// Whether the cursor is at the start of a line on stdout.
    at_line_start: bool,
    color: bool,
    out: Out,
    /// The first write to stdout that failed; nothing more is printed, and the turn returns it.
    failed: Option<io::Error>,
}

impl Ui {
    fn new(json: bool) -> Ui {
        Ui {
            json,
            at_line_start: true,
            color: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
            out: Out::stdout(),
            failed: None,
        }
    }

    /// Writes and flushes at once: an answer streams, a line may have no end yet.
    fn print(&mut self, text: std::fmt::Arguments) {
        if self.failed.is_some() {
            return;
        }
        if let Err(e) = self.out.write_fmt(text).and_then(|()| self.out.flush()) {
            self.failed = Some(e);
        }
    }

    fn dim(&self, s: &str) -> String {
        if self.color {
            format!("\x1b[2m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }

    fn newline(&mut self) {
        if !self.at_line_start {
            self.print(format_args!("\n"));
            self.at_line_start = true;
        }
    }

    fn event(&mut self, e: ChatEvent) {
        if self.json {
            if let Ok(line) = serde_json::to_string(&e) {
                self.print(format_args!("{line}\n"));
            }
            return;
        }
        match e {
            ChatEvent::Delta { text } => {
                self.print(format_args!("{text}"));
                self.at_line_start = text.ends_with('\n');
            }
            ChatEvent::Reasoning { text } => {
                if self.color {
                    eprint!("{}", self.dim(&text));
                }
            }
            ChatEvent::ToolCall {
                name, arguments, ..
            } => {
                self.newline();
                let line = self.dim(&format!("→ {name} {}", describe_args(&arguments)));
                self.print(format_args!("{line}\n"));
            }
            ChatEvent::ToolResult { ok, result, .. } => {
                let line = if ok {
                    format!("  ✓ {}", describe_result(&result))
                } else {
                    format!(
                        "  ✗ {}: {}",
                        result
                            .get("error")
                            .and_then(Value::as_str)
                            .unwrap_or("error"),
                        short(
                            result.get("message").and_then(Value::as_str).unwrap_or(""),
                            160
                        )
                    )
                };
                let line = self.dim(&line);
                self.print(format_args!("{line}\n"));
            }
            ChatEvent::PermissionRequest(_) => self.newline(), // the prompter asks
            ChatEvent::Notice { message } => {
                self.newline();
                eprintln!("note: {message}");
            }
            ChatEvent::Done { .. } => self.newline(),
            ChatEvent::Error { message } => {
                self.newline();
                eprintln!("error: {message}");
            }
        }
    }
}

fn short(s: &str, max: usize) -> String {
    let one = s.replace('\n', " ");
    match one.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &one[..end]),
        None => one,
    }
}

/// `src/a.py` for a path argument, else compact JSON.
fn describe_args(args: &Value) -> String {
    for key in ["path", "file", "pattern", "run_id", "pack"] {
        if let Some(v) = args.get(key).and_then(Value::as_str) {
            return short(v, 100);
        }
    }
    short(&args.to_string(), 100)
}

fn describe_result(result: &Value) -> String {
    let count = |key: &str| result.get(key).and_then(Value::as_array).map(Vec::len);
    if let Some(n) = count("matches") {
        return format!("{n} matches");
    }
    if let Some(n) = count("files").or(count("entries")) {
        return format!("{n} files");
    }
    if let Some(n) = count("events") {
        return format!("{n} events");
    }
    if let Some(n) = count("approvals") {
        return format!("{n} approvals");
    }
    if let Some(c) = result.get("content").and_then(Value::as_str) {
        return format!("{} lines", c.lines().count());
    }
    if let Some(s) = result.get("status").and_then(Value::as_str) {
        return format!("status {s}");
    }
    short(&json!(result).to_string(), 100)
}
