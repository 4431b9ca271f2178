//! The lock on every route: Host, Origin, fetch metadata, then the per-launch token (cookie or
//! `Authorization: Bearer`), then the body size. Runs before any handler, for pages, API, SSE,
//! assets and `/mcp` alike, and adds the security headers to every answer (errors included).
//! A request that passes marks its connection as the token holder's (`conn.rs` closes the
//! others first when too many are open).
//!
//! A token in the URL (`?token=`, the printed URL) is accepted by the pages only, to open one:
//! it is traded for a cookie and a redirect to the same page without it. Anywhere else a URL
//! token is refused, as it would end up in histories and logs.
//!
//! The token is compared in constant time and never logged: log lines carry the method and the
//! path only, never the query string or headers.

use super::error::ApiError;
use super::{AppState, conn};
use axum::extract::{MatchedPath, Request, State};
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// The per-launch secret: 32 random bytes from the OS, as 64 hex characters.
pub struct Token {
    hex: String,
    digest: [u8; 32],
}

impl Token {
    pub fn generate() -> std::io::Result<Token> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| {
            std::io::Error::other(format!("no OS randomness for the access token: {e}"))
        })?;
        Ok(Token::from_hex(
            bytes.iter().map(|b| format!("{b:02x}")).collect(),
        ))
    }

    fn from_hex(hex: String) -> Token {
        let digest = Sha256::digest(hex.as_bytes()).into();
        Token { hex, digest }
    }

    pub fn as_str(&self) -> &str {
        &self.hex
    }

    /// Constant-time comparison: both sides are hashed to a fixed length first, so neither the
    /// content nor the length of a guess changes how long this takes.
    pub fn matches(&self, candidate: &str) -> bool {
        let other: [u8; 32] = Sha256::digest(candidate.as_bytes()).into();
        let mut diff = 0u8;
        for (a, b) in self.digest.iter().zip(other.iter()) {
            diff |= a ^ b;
        }
        std::hint::black_box(diff) == 0
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

pub fn cookie_name(port: u16) -> String {
    // Cookies ignore ports: one name per port keeps two Studios on one machine apart.
    format!("noctune_token_{port}")
}

pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                       connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; \
                       form-action 'self'; frame-ancestors 'none'";

/// The middleware. Order: Host (403), Origin (403), fetch metadata (403), token (401), declared
/// body size (413).
pub async fn guard(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let verdict = check(&st, &req);
    if verdict.is_ok()
        && let Some(client) = req.extensions().get::<conn::Client>()
    {
        client.authenticated();
    }
    let resp = match verdict {
        Ok(None) => next.run(req).await,
        Ok(Some(early)) => early,
        Err(Denied::Forbidden(code, message)) => {
            ApiError::new(StatusCode::FORBIDDEN, code, message).into_response()
        }
        Err(Denied::Unauthorized(message)) => unauthorized(req.headers(), message),
        Err(Denied::TooLarge) => ApiError::body_too_large(super::BODY_LIMIT).into_response(),
    };
    tracing::debug!("{method} {path} -> {}", resp.status().as_u16());
    harden(resp)
}

/// Why a request is refused (turned into the answer by [`guard`]).
enum Denied {
    Forbidden(&'static str, String),
    Unauthorized(&'static str),
    TooLarge,
}

fn check(st: &AppState, req: &Request) -> Result<Option<Response>, Denied> {
    let headers = req.headers();
    let host = check_host(st, req)?;
    check_origin(headers, &host)?;
    check_fetch_site(headers)?;
    let query_token = query_param(req.uri().query().unwrap_or(""), "token");
    if let Some(candidate) = query_token {
        // The first visit trades the token in the URL for a cookie and drops it from the URL.
        // Refused before the token is compared: the answer says nothing about the token.
        let page = req
            .extensions()
            .get::<MatchedPath>()
            .is_some_and(|m| st.page_routes.contains(&m.as_str()));
        if !page || (req.method() != Method::GET && req.method() != Method::HEAD) {
            return Err(Denied::Unauthorized(
                "a token in the URL is only accepted to open a page (GET /studio, /studio/runs, /studio/runs/RUN_ID); elsewhere send `Authorization: Bearer <token>` or the cookie those pages set",
            ));
        }
        if !st.token.matches(candidate) {
            return Err(Denied::Unauthorized(
                "the token in the URL is wrong (it changes at every launch of `noctune studio`)",
            ));
        }
        return Ok(Some(trade_for_cookie(st, req, candidate)));
    }
    if !has_valid_token(st, headers) {
        return Err(Denied::Unauthorized(
            "missing or wrong access token: open the URL that `noctune studio` printed, or send `Authorization: Bearer <token>`",
        ));
    }
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && len > super::BODY_LIMIT as u64
    {
        return Err(Denied::TooLarge);
    }
    Ok(None)
}

fn forbidden(code: &'static str, message: String) -> Denied {
    Denied::Forbidden(code, message)
}

/// The request's host (from `Host`, or the URI's authority) if it is one of ours.
fn check_host(st: &AppState, req: &Request) -> Result<String, Denied> {
    let mut hosts = req.headers().get_all(header::HOST).iter();
    let from_header = hosts.next();
    if hosts.next().is_some() {
        return Err(forbidden("bad_host", "more than one Host header".into()));
    }
    let host = match (from_header, req.uri().authority()) {
        (Some(h), Some(a)) => {
            let h = h.to_str().unwrap_or("").to_ascii_lowercase();
            if h != a.as_str().to_ascii_lowercase() {
                return Err(forbidden(
                    "bad_host",
                    "the Host header and the request target disagree".into(),
                ));
            }
            h
        }
        (Some(h), None) => h.to_str().unwrap_or("").to_ascii_lowercase(),
        (None, Some(a)) => a.as_str().to_ascii_lowercase(),
        (None, None) => return Err(forbidden("bad_host", "no Host header".into())),
    };
    if st.allowed_hosts.contains(&host) {
        Ok(host)
    } else {
        Err(forbidden(
            "bad_host",
            format!(
                "Host {host:?} is not this server: use http://127.0.0.1:{} (DNS names other than localhost are refused to stop DNS rebinding)",
                st.port
            ),
        ))
    }
}

fn check_origin(headers: &HeaderMap, host: &str) -> Result<(), Denied> {
    let mut origins = headers.get_all(header::ORIGIN).iter();
    let Some(origin) = origins.next() else {
        return Ok(());
    };
    if origins.next().is_some() {
        return Err(forbidden(
            "bad_origin",
            "more than one Origin header".into(),
        ));
    }
    let origin = origin.to_str().unwrap_or("");
    if origin.eq_ignore_ascii_case(&format!("http://{host}")) {
        Ok(())
    } else {
        Err(forbidden(
            "bad_origin",
            format!(
                "requests from other origins are refused (Origin {origin:?}, expected http://{host})"
            ),
        ))
    }
}

fn check_fetch_site(headers: &HeaderMap) -> Result<(), Denied> {
    match headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        Some("cross-site") | Some("same-site") => Err(forbidden(
            "bad_origin",
            "requests from other sites are refused (Sec-Fetch-Site)".into(),
        )),
        _ => Ok(()),
    }
}

fn has_valid_token(st: &AppState, headers: &HeaderMap) -> bool {
    for v in headers.get_all(header::AUTHORIZATION) {
        if let Ok(v) = v.to_str()
            && let Some((scheme, tok)) = v.split_once(' ')
            && scheme.eq_ignore_ascii_case("bearer")
            && st.token.matches(tok.trim())
        {
            return true;
        }
    }
    let name = cookie_name(st.port);
    for v in headers.get_all(header::COOKIE) {
        let Ok(v) = v.to_str() else { continue };
        for pair in v.split(';') {
            if let Some((k, val)) = pair.trim().split_once('=')
                && k == name
                && st.token.matches(val)
            {
                return true;
            }
        }
    }
    false
}

fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == name).then_some(v)
    })
}

/// The same page without the token in its query: a path of ours, never another site's.
fn page_location(path: &str, query: &str) -> String {
    // A page's path starts with one `/` and a letter; anything else (`//host`, `/\host`, which
    // browsers read as another host) falls back to the chat page.
    let ours = path.starts_with('/') && path[1..].starts_with(|c: char| c.is_ascii_alphanumeric());
    let mut location = if ours { path } else { "/studio" }.to_string();
    let rest: Vec<&str> = query
        .split('&')
        .filter(|kv| !kv.is_empty() && kv.split('=').next() != Some("token"))
        .collect();
    if !rest.is_empty() {
        location.push('?');
        location.push_str(&rest.join("&"));
    }
    location
}

fn trade_for_cookie(st: &AppState, req: &Request, token: &str) -> Response {
    let location = page_location(req.uri().path(), req.uri().query().unwrap_or(""));
    let cookie = format!(
        "{}={token}; HttpOnly; SameSite=Strict; Path=/",
        cookie_name(st.port)
    );
    let mut resp = StatusCode::SEE_OTHER.into_response();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&location) {
        h.insert(header::LOCATION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        h.insert(header::SET_COOKIE, v);
    }
    resp
}

fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"))
}

fn unauthorized(headers: &HeaderMap, message: &str) -> Response {
    let mut resp = if wants_html(headers) {
        let page = format!(
            "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>Noctune Studio: sign-in needed</title>\
             <body><h1>Noctune Studio</h1><p>{message}.</p><p>Each launch prints a new URL such as \
             <code>http://127.0.0.1:PORT/studio?token=...</code>; open that one.</p></body></html>"
        );
        (
            StatusCode::UNAUTHORIZED,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            page,
        )
            .into_response()
    } else {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).into_response()
    };
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"noctune\""),
    );
    resp
}

/// Security headers on every answer; CORS headers never leave this server.
pub fn harden(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    let cors: Vec<HeaderName> = h
        .keys()
        .filter(|k| k.as_str().starts_with("access-control-"))
        .cloned()
        .collect();
    for k in cors {
        h.remove(k);
    }
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_compare() {
        let t = Token::from_hex("ab".repeat(32));
        assert!(t.matches(&"ab".repeat(32)));
        assert!(!t.matches(&"ab".repeat(31)));
        assert!(!t.matches(""));
        assert!(!format!("{t:?}").contains("abab"));
    }

    #[test]
    fn the_redirect_stays_on_our_pages() {
        assert_eq!(page_location("/studio", "token=t&x=1"), "/studio?x=1");
        assert_eq!(
            page_location("/studio/runs/R1", "x=1&token=t&y"),
            "/studio/runs/R1?x=1&y"
        );
        assert_eq!(page_location("/studio", "token=t"), "/studio");
        for bad in ["//evil.example/", "/\\evil.example", "", "evil", "/"] {
            assert_eq!(page_location(bad, "token=t"), "/studio", "{bad:?}");
        }
    }

    #[test]
    fn query_params() {
        assert_eq!(query_param("a=1&token=xy&b", "token"), Some("xy"));
        assert_eq!(query_param("tokens=1", "token"), None);
    }
}
