//! Helpers every surface needs in the same form.

use noctune_core::{ErrorCode, OpError};

/// Runs a blocking facade call off the async threads (the facade's calls are synchronous:
/// they read files, SQLite and wait for processes).
pub async fn blocking_io<T, E>(
    f: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, OpError>
where
    T: Send + 'static,
    E: Into<OpError> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(Into::into),
        Err(e) => Err(OpError::new(
            ErrorCode::Internal,
            format!("the call failed inside Noctune: {e}"),
        )),
    }
}

/// Logs to stderr (stdout is a protocol channel for `lsp` and `mcp`); `NOCTUNE_LOG` filters.
pub fn logging_init() {
    noctune_util::logging::init();
}

pub use noctune_core::text::{prefix_bytes, prefix_chars, suffix_bytes};
