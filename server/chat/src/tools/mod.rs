//! The built-in chat tools.

mod common;
mod edit;
pub mod files;
pub mod runs;
mod schema;
pub mod search;
