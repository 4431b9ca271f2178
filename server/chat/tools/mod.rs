//! The built-in chat tools.

pub mod files;
pub mod search;
pub mod runs;
