//! The built-in chat tools.

pub mod files;
pub mod runs;
pub mod search;
