//! Every limit a request to the facade is held to, in one place.

/// Largest decision reason, in bytes.
pub const MAX_REASON_BYTES: usize = 4000;
/// Largest page of events one call returns.
pub const MAX_EVENT_PAGE: usize = 5000;
/// Largest HTTP request body a surface accepts.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Longest chat message a turn accepts.
pub use noctune_chat::service::MAX_MESSAGE_BYTES;
