//! The body limit for every route (`/api`, `/mcp`, pages), whatever the framing: a body is read
//! up to the limit before any handler runs, so one over the limit is a 413 in our error shape
//! whether it declared its length or came chunked, and whether or not the handler would have
//! read it (`/mcp`'s service answers 500 to a body it cannot read; some POST routes take none).
//! Runs inside the lock: a request without the token has nothing of its body read.

use super::BODY_LIMIT;
use super::error::ApiError;
use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};

pub async fn limit(req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    if http_body::Body::size_hint(&body).exact() == Some(0) {
        return next.run(Request::from_parts(parts, body)).await;
    }
    match Limited::new(body, BODY_LIMIT).collect().await {
        Ok(collected) => {
            let body = Body::from(collected.to_bytes());
            next.run(Request::from_parts(parts, body)).await
        }
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            ApiError::body_too_large(BODY_LIMIT).into_response()
        }
        Err(e) => ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_body",
            format!("the request body could not be read: {e}"),
        )
        .into_response(),
    }
}
