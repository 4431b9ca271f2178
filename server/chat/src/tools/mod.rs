//! The built-in chat tools.

mod common;
pub mod files;
pub mod runs;
mod schema;
pub mod search;
