//! Logs go to stderr (never stdout: stdout is a protocol channel for `lsp` and `mcp`).
//! Filter with `NOCTUNE_LOG` (e.g. `NOCTUNE_LOG=debug`); default `warn`.

use std::io::IsTerminal;

/// rmcp opens an INFO span per MCP session that carries the session id, which works like a
/// bearer token for that session: its spans and events stay out of the logs whatever
/// `NOCTUNE_LOG` asks for (our own MCP code logs sessions without their ids).
const ALWAYS_QUIET: &str = "rmcp::transport::streamable_http_server::session=warn";

pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("NOCTUNE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let filter = match ALWAYS_QUIET.parse() {
        Ok(directive) => filter.add_directive(directive),
        Err(_) => filter,
    };
    let ansi = colour_allowed(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false)
        .try_init();
}

/// Colour codes only for a person at a terminal: a log file, a pipe or an editor's output pane
/// would show them as `\x1b[2m` noise. `NO_COLOR` set to anything but the empty string turns
/// them off there too (<https://no-color.org>).
pub fn colour_allowed(is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    is_terminal && no_color.is_none_or(|v| v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::colour_allowed;
    use std::ffi::OsStr;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(colour_allowed(true, None));
        assert!(colour_allowed(true, Some(OsStr::new(""))));
        assert!(!colour_allowed(true, Some(OsStr::new("1"))));
        assert!(!colour_allowed(false, None));
        assert!(!colour_allowed(false, Some(OsStr::new(""))));
    }
}
