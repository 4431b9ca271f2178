//! The pages and their assets, embedded from `web/` into the binary (also in debug builds), so
//! `cargo build` alone gives a complete program. No CDN, no build step.

use super::error::{ApiError, ApiPath};
use axum::http::StatusCode;
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "../../web/"]
struct Web;

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "json" => "application/json",
        _ => "application/octet-stream",
    }
}

fn serve(name: &str, headers: &HeaderMap) -> Response {
    let Some(file) = Web::get(name) else {
        return ApiError::not_found("not_found", format!("no asset {name:?}")).into_response();
    };
    let etag = format!(
        "\"{}\"",
        file.metadata
            .sha256_hash()
            .iter()
            .take(12)
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == etag);
    let mut resp = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(header::CONTENT_TYPE, content_type(name))],
            file.data.into_owned(),
        )
            .into_response()
    };
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    // Pages carry no secrets but do change between builds: revalidate each time (cheap, 304).
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

pub async fn root() -> Redirect {
    Redirect::to("/studio")
}

pub async fn studio_page(headers: HeaderMap) -> Response {
    serve("studio.html", &headers)
}

pub async fn runs_page(headers: HeaderMap) -> Response {
    serve("runs.html", &headers)
}

/// The run page; the run id is read from the URL by the page's script (which shows an unknown
/// run's 404 from the API). An id that cannot be a run id is a 404 here already.
pub async fn run_page(headers: HeaderMap, ApiPath(run_id): ApiPath<String>) -> Response {
    if let Err(e) = noctune_core::RunId::parse(&run_id) {
        return ApiError::not_found("unknown_run", e.to_string()).into_response();
    }
    serve("run.html", &headers)
}

pub async fn asset(headers: HeaderMap, ApiPath(file): ApiPath<String>) -> Response {
    // One flat folder: no `..`, no subfolders, no hidden files.
    if file.starts_with('.') || file.contains('/') || file.contains('\\') || file.ends_with(".html")
    {
        return ApiError::not_found("not_found", format!("no asset {file:?}")).into_response();
    }
    serve(&format!("assets/{file}"), &headers)
}
