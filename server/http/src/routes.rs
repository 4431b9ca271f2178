//! The route table. Routes are added through [`Routes`], which records each (method, path) as it
//! mounts it, so [`route_table`] is exactly what the router serves and a test can check that
//! the OpenAPI document covers all of it.

use super::error::ApiError;
use super::{AppState, BODY_LIMIT, api_chat, api_runs, assets, auth, openapi, sse};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::http::{Method, StatusCode, Uri};
use axum::routing::{delete, get, post};
use std::sync::Arc;

type S = Arc<AppState>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInfo {
    pub method: &'static str,
    /// In OpenAPI/axum syntax: `/api/runs/{run_id}`.
    pub path: &'static str,
}

pub(super) struct Routes {
    router: Router<S>,
    table: Vec<RouteInfo>,
}

impl Routes {
    fn new() -> Routes {
        Routes {
            router: Router::new(),
            table: Vec::new(),
        }
    }
    pub(super) fn get<H: Handler<T, S>, T: 'static>(mut self, path: &'static str, h: H) -> Routes {
        self.table.push(RouteInfo {
            method: "GET",
            path,
        });
        self.router = self.router.route(path, get(h));
        self
    }
    pub(super) fn post<H: Handler<T, S>, T: 'static>(mut self, path: &'static str, h: H) -> Routes {
        self.table.push(RouteInfo {
            method: "POST",
            path,
        });
        self.router = self.router.route(path, post(h));
        self
    }
    pub(super) fn delete<H: Handler<T, S>, T: 'static>(
        mut self,
        path: &'static str,
        h: H,
    ) -> Routes {
        self.table.push(RouteInfo {
            method: "DELETE",
            path,
        });
        self.router = self.router.route(path, delete(h));
        self
    }
}

fn build() -> Routes {
    let r = Routes::new()
        // pages and their assets
        .get("/", assets::root)
        .get("/studio", assets::studio_page)
        .get("/studio/runs", assets::runs_page)
        .get("/studio/runs/{run_id}", assets::run_page)
        .get("/studio/assets/{file}", assets::asset)
        .get("/api/openapi.json", openapi::document)
        // runs
        .get("/api/config", api_runs::config)
        .get("/api/runs", api_runs::list)
        .post("/api/runs", api_runs::start)
        .get("/api/runs/{run_id}", api_runs::status)
        .post("/api/runs/{run_id}/stop", api_runs::stop)
        .post("/api/runs/{run_id}/resume", api_runs::resume)
        .get("/api/runs/{run_id}/events", api_runs::events)
        .get("/api/runs/{run_id}/events/stream", sse::run_events)
        .get("/runs/{run_id}/events_db", api_runs::events_db)
        .get("/api/runs/{run_id}/approvals", api_runs::approvals)
        .post("/api/runs/{run_id}/decide", api_runs::decide)
        .get("/api/runs/{run_id}/patchsets", api_runs::patchsets);
    api_chat::routes(r)
}

/// Every (method, path) the server answers, `/mcp` included.
pub fn route_table() -> Vec<RouteInfo> {
    let mut t = build().table;
    if MCP_MOUNTED {
        for method in ["GET", "POST", "DELETE"] {
            t.push(RouteInfo {
                method,
                path: "/mcp",
            });
        }
    }
    t
}

/// Whether `/mcp` is served (flip together with the line in [`app`]).
const MCP_MOUNTED: bool = true;

/// The whole application: routes, then the body limit, then the lock around everything.
pub fn app(state: S, mcp: Option<Router>) -> Router {
    let mut routes = build().router.with_state(state.clone());
    // MCP Streamable HTTP, inside the same lock as everything else.
    if let Some(mcp) = mcp {
        routes = routes.merge(mcp);
    }
    routes
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(BODY_LIMIT))
        .layer(axum::middleware::from_fn_with_state(state, auth::guard))
}

async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(
        "not_found",
        format!(
            "no route {method} {}; the API is described at /api/openapi.json",
            uri.path()
        ),
    )
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{} does not accept {method}; see /api/openapi.json",
            uri.path()
        ),
    )
}
