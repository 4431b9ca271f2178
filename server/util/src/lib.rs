//! Small shared helpers with IO: atomic file writes, timestamps, randomness, and the layout of
//! the repository's `.noctune_cache/`.

pub mod cache;
pub mod fsx;
pub mod logging;
pub mod par;
pub mod time;
