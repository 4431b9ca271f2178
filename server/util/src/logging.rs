//! Logs go to stderr (never stdout: stdout is a protocol channel for `lsp` and `mcp`).
//! Filter with `NOCTUNE_LOG` (e.g. `NOCTUNE_LOG=debug`); default `warn`.

pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("NOCTUNE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
