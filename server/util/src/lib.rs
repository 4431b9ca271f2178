//! Small shared helpers with IO: atomic file writes, timestamps, randomness.

pub mod fsx;
pub mod logging;
pub mod time;
