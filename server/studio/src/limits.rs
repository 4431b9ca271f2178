//! Every limit a request to the facade is held to, in one place.

use noctune_core::{ErrorCode, OpError};
use std::time::Duration;

/// Largest decision reason, in bytes.
pub const MAX_REASON_BYTES: usize = 4000;

/// The reason limit, for one decision and for a bulk one (checked before anything is decided).
pub(crate) fn check_reason(reason: &str) -> Result<(), OpError> {
    if reason.len() > MAX_REASON_BYTES {
        return Err(OpError::new(
            ErrorCode::TooLarge,
            format!(
                "the reason is {} bytes; at most {MAX_REASON_BYTES} are kept, shorten it",
                reason.len()
            ),
        ));
    }
    Ok(())
}
/// Largest page of events one call returns.
pub const MAX_EVENT_PAGE: usize = 5000;
/// Largest HTTP request body a surface accepts.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Longest chat message a turn accepts.
pub use noctune_chat::service::MAX_MESSAGE_BYTES;

/// How long a client has to send the head of a request (request line and headers): counted
/// from the accept for a connection's first request, and from the first byte of each later one.
/// A client on the same machine sends its head in well under a millisecond; a connection that
/// trickles one holds a file descriptor for nothing.
pub const REQUEST_HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a connection may stay open with no request in progress between two requests.
pub const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);
/// Most connections kept open that have not yet made a request with the access token; at the
/// cap the oldest of them is closed to admit a new one, so a flood of them can neither use up
/// the file descriptors nor keep the token holder out.
pub const MAX_UNAUTHENTICATED_CONNECTIONS: usize = 1024;
/// File descriptors left for everything that is not a connection (the audit DB, repositories,
/// workers' pipes, the listener) when [`unauthenticated_connection_cap`] is derived.
pub const RESERVED_FILE_DESCRIPTORS: u64 = 128;

/// The cap on connections without the token for a process that may open `fd_limit` files:
/// at most half of what is left after [`RESERVED_FILE_DESCRIPTORS`] (the other half is for the
/// token holder's connections), never more than [`MAX_UNAUTHENTICATED_CONNECTIONS`], at least 1.
pub fn unauthenticated_connection_cap(fd_limit: u64) -> usize {
    let half = fd_limit.saturating_sub(RESERVED_FILE_DESCRIPTORS) / 2;
    usize::try_from(half)
        .unwrap_or(usize::MAX)
        .clamp(1, MAX_UNAUTHENTICATED_CONNECTIONS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_cap_stays_below_the_file_descriptor_limit() {
        assert_eq!(unauthenticated_connection_cap(1_048_576), 1024);
        assert_eq!(unauthenticated_connection_cap(20_000), 1024);
        assert_eq!(unauthenticated_connection_cap(1024), 448);
        assert_eq!(unauthenticated_connection_cap(256), 64);
        assert_eq!(unauthenticated_connection_cap(100), 1);
        assert_eq!(unauthenticated_connection_cap(0), 1);
        for fds in [130u64, 300, 1000, 1500, 2048, 4096] {
            assert!((unauthenticated_connection_cap(fds) as u64) < fds, "{fds}");
        }
    }
}
