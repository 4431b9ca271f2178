//! The HTTP surface (`noctune studio`): the /studio pages, the JSON API under `/api`, live
//! events by SSE, and `/mcp`, all behind one lock (`auth.rs`).
//!
//! Handlers translate HTTP into `Studio` calls and back; they decide nothing. The facade's
//! calls are synchronous (some block), so handlers run them on the blocking pool.

mod api_bulk;
mod api_chat;
mod api_runs;
mod assets;
mod auth;
mod body;
mod conn;
mod error;
mod openapi;
mod routes;
mod server;
mod sse;

pub use routes::{RouteInfo, openapi_json, route_table};
pub use server::{Options, Server};

use noctune_studio::Studio;

pub use noctune_studio::limits::MAX_BODY_BYTES as BODY_LIMIT;
use std::path::PathBuf;
use std::sync::Arc;

/// What every handler can reach.
pub struct AppState {
    pub studio: Arc<Studio>,
    /// The repository `noctune studio` was started for (the default of `repo` fields).
    pub repo_root: PathBuf,
    pub port: u16,
    token: auth::Token,
    /// `host:port` values a request's Host may have.
    allowed_hosts: Vec<String>,
    /// The matched-route patterns of the pages, where a token in the URL opens the page.
    page_routes: Vec<&'static str>,
    chat: api_chat::ChatState,
}
