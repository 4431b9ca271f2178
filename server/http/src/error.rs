//! JSON errors (`{"error": code, "message": ...}`) and the extractors that turn bad input into
//! them: malformed JSON → 400, wrong content type → 415, too large → 413. Nothing here decides
//! anything about runs or chat; it only translates.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use noctune_studio::{ErrorCode, OpError};
use serde::de::DeserializeOwned;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }
    pub fn not_found(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, code, message)
    }
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
    pub fn body_too_large(limit: usize) -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the request body is larger than the limit of {limit} bytes"),
        )
    }
}

/// The body of every error answer.
#[derive(serde::Serialize, schemars::JsonSchema)]
#[schemars(rename = "Error")]
pub struct ErrorBody {
    /// A stable code: the facade's (unknown_run, invalid_arguments, outside_allowed_roots,
    /// ...) or the HTTP layer's (unauthorized, malformed_json, body_too_large, not_found, ...).
    pub error: String,
    /// What went wrong and what to do.
    pub message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.code.to_string(),
            message: self.message,
        };
        (self.status, axum::Json(body)).into_response()
    }
}

/// The HTTP status of each facade error code: the one place HTTP meets the codes.
///
/// `too_large` from the facade is a field over its documented limit (a decision reason, a chat
/// message) in a body that fits: a bad request, as the schema's `maxLength` says. 413 is for a
/// body over the body limit, answered here before the facade is called (`body_too_large`).
pub fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::InvalidArguments
        | ErrorCode::TooLarge
        | ErrorCode::UnknownPack
        | ErrorCode::UnknownProfile
        | ErrorCode::NotARepo
        | ErrorCode::ConfigError => StatusCode::BAD_REQUEST,
        ErrorCode::UnknownRun | ErrorCode::UnknownApproval | ErrorCode::UnknownSession => {
            StatusCode::NOT_FOUND
        }
        ErrorCode::OutsideAllowedRoots => StatusCode::FORBIDDEN,
        ErrorCode::AlreadyDecided | ErrorCode::ApprovalTampered | ErrorCode::WrongState => {
            StatusCode::CONFLICT
        }
        ErrorCode::ModelUnavailable => StatusCode::BAD_GATEWAY,
        ErrorCode::GitError | ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<OpError> for ApiError {
    fn from(e: OpError) -> ApiError {
        let status = status_of(e.code);
        if status.is_server_error() {
            tracing::error!("{}: {}", e.code, e.message);
        }
        ApiError {
            status,
            code: e.code.as_str(),
            message: e.message,
        }
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(e: tokio::task::JoinError) -> ApiError {
        ApiError::internal(format!("the request's worker thread failed: {e}"))
    }
}

/// Runs a blocking facade call off the async threads.
pub async fn blocking<T, E>(
    f: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, ApiError>
where
    T: Send + 'static,
    E: Into<OpError> + Send + 'static,
{
    noctune_studio::blocking_io(f).await.map_err(ApiError::from)
}

/// `axum::Json` with our error shape.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(rej) => Err(json_rejection(rej)),
        }
    }
}

fn json_rejection(rej: JsonRejection) -> ApiError {
    match rej {
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as JSON with `Content-Type: application/json`",
        ),
        JsonRejection::JsonSyntaxError(e) => ApiError::bad_request(
            "malformed_json",
            format!("the body is not valid JSON: {}", e.body_text()),
        ),
        JsonRejection::JsonDataError(e) => ApiError::bad_request(
            "invalid_body",
            format!("the JSON body does not fit the schema: {}", e.body_text()),
        ),
        JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::body_too_large(super::BODY_LIMIT)
        }
        other => ApiError::new(other.status(), "bad_body", other.body_text()),
    }
}

/// `axum::extract::Query` with our error shape.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(ApiQuery(v)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => Err(ApiError::bad_request(
                "invalid_query",
                format!("bad query string: {}", e.body_text()),
            )),
            Err(e) => Err(ApiError::bad_request("invalid_query", e.body_text())),
        }
    }
}

/// `axum::extract::Path` with our error shape.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(ApiPath(v)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => {
                Err(ApiError::bad_request("invalid_path", e.body_text()))
            }
            Err(e) => Err(ApiError::bad_request("invalid_path", e.body_text())),
        }
    }
}
