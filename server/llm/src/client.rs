//! The HTTP side: one [`LlmClient`] per model endpoint, cheap to clone and share.
//!
//! Every chat request is streamed (`stream: true` with `stream_options.include_usage`), because
//! local models are slow and a user must see the answer grow and be able to stop it. Three
//! timeouts bound a request (see [`LlmEndpoint`]); they are applied here rather than with
//! reqwest's single `timeout` so that an error can say which wait ran out.

use super::cancel::CancelToken;
use super::caps::ServerCapabilities;
use super::error::{self, LlmError, TimeoutPhase};
use super::stream::{self, Assembler, ChatOutcome, Limits, StreamEvent};
use super::wire::{
    AppliedTemplate, ApplyTemplateBody, ChatMessage, ChatRequest, ModelList, Props, RequestBody,
    StreamOptions, TokenizeBody, Tokens, ToolSpec,
};
use reqwest::header::{self, HeaderMap, HeaderValue};
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Once};
use std::time::Duration;
use tokio::time::Instant;

/// How long [`LlmClient::server_capabilities`] waits for each answer. Both are small and served
/// at once by a running server; one that takes longer is busy or not there, and the caller is
/// better off going on without the answer than waiting for it.
const CAPS_TIMEOUT: Duration = Duration::from_secs(5);
/// How long each of the two requests of [`LlmClient::count_tokens`] may take. Tokenizing a full
/// context takes well under a second; this only bounds a stuck server.
const COUNT_TIMEOUT: Duration = Duration::from_secs(15);

/// Where a model is served and how to ask it.
#[derive(Clone)]
pub struct LlmEndpoint {
    /// The OpenAI-compatible API root, e.g. `http://127.0.0.1:8080/v1` (llama-server's).
    pub base_url: String,
    /// Sent as `model`; llama-server serves one model and ignores it, other servers need it.
    pub model: String,
    /// Defaults for requests that do not set their own.
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
    /// Sent as `Authorization: Bearer ...` (llama-server's `--api-key`, hosted APIs).
    pub api_key: Option<String>,
    /// The whole request, prompt processing included. Local CPU inference of a long prompt can
    /// take minutes, hence the generous default.
    pub request_timeout: Duration,
    /// Opening the connection. A local server that is not running refuses at once; this bounds
    /// the wait for a remote one that does not answer.
    pub connect_timeout: Duration,
    /// Longest silence between two pieces once the answer has started: catches a stuck server
    /// long before `request_timeout` would.
    pub idle_timeout: Duration,
}

impl LlmEndpoint {
    /// llama-server's address when started with `--port 8080`.
    pub const DEFAULT_BASE_URL: &'static str = "http://127.0.0.1:8080/v1";

    /// An endpoint with the server's own sampling defaults and timeouts of 10 min (request),
    /// 10 s (connect) and 60 s (idle).
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            model: model.into(),
            temperature: None,
            max_tokens: None,
            api_key: None,
            request_timeout: Duration::from_secs(600),
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// Keeps the api_key out of logs.
impl fmt::Debug for LlmEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LlmEndpoint")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("temperature", &self.temperature)
            .field("max_tokens", &self.max_tokens)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("request_timeout", &self.request_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .finish()
    }
}

/// A client of one model endpoint. Clones share the connection pool.
#[derive(Clone, Debug)]
pub struct LlmClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    endpoint: LlmEndpoint,
    /// `base_url` without a trailing slash; error messages quote it as the user wrote it.
    base: String,
    /// The server root: `base` without its `/v1`, where llama-server has `/props`,
    /// `/apply-template` and `/tokenize`.
    root: String,
    http: reqwest::Client,
    /// The last capabilities the server reported, and when: asked again only after
    /// [`CAPS_FRESH_FOR`], so a turn does not pay a `/props` round trip before every answer.
    caps: std::sync::Mutex<Option<(std::time::Instant, ServerCapabilities)>>,
}

/// How long reported capabilities are reused. A server restarted with another model or
/// template is noticed within this time; answers in between go out as for the old one.
const CAPS_FRESH_FOR: std::time::Duration = std::time::Duration::from_secs(30);

impl LlmClient {
    /// Checks the endpoint and builds the HTTP client; sends nothing.
    pub fn new(endpoint: LlmEndpoint) -> Result<Self, LlmError> {
        install_crypto_provider();
        let base = endpoint.base_url.trim().trim_end_matches('/').to_owned();
        let invalid = |detail: String| LlmError::InvalidEndpoint {
            url: endpoint.base_url.clone(),
            detail,
        };
        let url = reqwest::Url::parse(&base).map_err(|e| invalid(e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid(format!(
                "the scheme must be http or https, not `{}`",
                url.scheme()
            )));
        }
        let mut headers = HeaderMap::new();
        if let Some(key) = endpoint
            .api_key
            .as_deref()
            .map(str::trim)
            .filter(|k| !k.is_empty())
        {
            let mut value = HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| {
                invalid("the api_key has characters that cannot be sent in an HTTP header".into())
            })?;
            value.set_sensitive(true);
            headers.insert(header::AUTHORIZATION, value);
        }
        let mut builder = reqwest::Client::builder()
            .connect_timeout(endpoint.connect_timeout)
            .default_headers(headers)
            .user_agent(concat!("noctune/", env!("CARGO_PKG_VERSION")));
        if is_loopback(&url) {
            // A local model server must never be reached through an HTTP(S)_PROXY.
            builder = builder.no_proxy();
        }
        let http = builder.build().map_err(|e| invalid(e.to_string()))?;
        let root = base.strip_suffix("/v1").unwrap_or(&base).to_owned();
        Ok(Self {
            inner: Arc::new(Inner {
                endpoint,
                base,
                root,
                http,
                caps: std::sync::Mutex::new(None),
            }),
        })
    }

    pub fn endpoint(&self) -> &LlmEndpoint {
        &self.inner.endpoint
    }

    /// Streams one chat completion. `on_event` sees each [`StreamEvent`] as it arrives. Always
    /// sends `stream: true` and `stream_options.include_usage: true`.
    ///
    /// Ends with the assembled answer, or an error: [`LlmError::Cancelled`] as soon as `cancel`
    /// fires, [`LlmError::StreamCut`] (with the partial answer) if the stream breaks off.
    pub async fn stream_chat(
        &self,
        req: &ChatRequest,
        cancel: &CancelToken,
        on_event: &mut (dyn FnMut(StreamEvent) + Send),
    ) -> Result<ChatOutcome, LlmError> {
        if cancel.is_cancelled() {
            return Err(LlmError::Cancelled);
        }
        let ep = &self.inner.endpoint;
        let body = RequestBody {
            model: &ep.model,
            messages: &req.messages,
            stream: true,
            stream_options: Some(StreamOptions {
                include_usage: true,
            }),
            tools: req.tools.as_deref(),
            tool_choice: req.tool_choice.as_ref(),
            temperature: req.temperature.or(ep.temperature),
            max_tokens: req.max_tokens.or(ep.max_tokens),
            response_format: req.response_format.as_ref(),
            stop: req.stop.as_deref().filter(|s| !s.is_empty()),
        };
        let started = Instant::now();
        let limits = Limits {
            started,
            deadline: started + ep.request_timeout,
            request_timeout: ep.request_timeout,
            idle_timeout: ep.idle_timeout,
        };
        tracing::debug!(
            base_url = %self.inner.base,
            messages = req.messages.len(),
            tools = req.tools.as_ref().map_or(0, Vec::len),
            "model request"
        );
        let post = || {
            self.inner
                .http
                .post(self.url("chat/completions"))
                .header(header::ACCEPT, "text/event-stream")
                .json(&body)
        };
        let request = send_retrying_closed(post(), || Some(post()));
        let response = tokio::select! {
            biased;
            _ = cancel.cancelled() => return Err(LlmError::Cancelled),
            sent = tokio::time::timeout_at(limits.deadline, request) => match sent {
                Err(_) => return Err(LlmError::Timeout {
                    after: ep.request_timeout,
                    phase: TimeoutPhase::FirstByte,
                }),
                Ok(Err(e)) => return Err(self.send_error(e)),
                Ok(Ok(response)) => response,
            },
        };

        let status = response.status();
        if !status.is_success() {
            let body = self
                .read_body(response, limits, cancel)
                .await?
                .unwrap_or_default();
            let err = error::from_http(status.as_u16(), &self.inner.endpoint.base_url, &body);
            tracing::debug!(status = status.as_u16(), error = %err, "model request refused");
            return Err(err);
        }
        let is_json = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().starts_with("application/json"));
        let outcome = if is_json {
            // A server that ignores `stream: true`: one JSON answer, replayed as events.
            let text = self
                .read_body(response, limits, cancel)
                .await?
                .ok_or_else(|| LlmError::InvalidResponse {
                    url: self.inner.endpoint.base_url.clone(),
                    detail: "the answer broke off".into(),
                })?;
            let mut asm = Assembler::new(&self.inner.endpoint.base_url);
            asm.set_time_to_first_byte(started.elapsed());
            asm.feed_completion(&text, on_event)?;
            asm.finish()
        } else {
            let bytes = Box::pin(response.bytes_stream());
            stream::read_sse(
                bytes,
                &self.inner.endpoint.base_url,
                limits,
                cancel,
                on_event,
            )
            .await?
        };
        tracing::debug!(
            finish_reason = outcome.finish_reason.as_deref().unwrap_or(""),
            ttfb_ms = outcome.time_to_first_byte.as_millis() as u64,
            total_ms = started.elapsed().as_millis() as u64,
            completion_tokens = outcome.usage.as_ref().map_or(0, |u| u.completion_tokens),
            "model answer"
        );
        Ok(outcome)
    }

    /// Convenience: full text of a streamed answer (used by a proposer).
    pub async fn complete_text(&self, messages: Vec<ChatMessage>) -> Result<String, LlmError> {
        let request = ChatRequest::new(messages);
        let outcome = self
            .stream_chat(&request, &CancelToken::new(), &mut |_| {})
            .await?;
        Ok(outcome.content)
    }

    /// The model ids the server offers (`GET /models`).
    pub async fn list_models(&self) -> Result<Vec<String>, LlmError> {
        let ep = &self.inner.endpoint;
        let request = self.inner.http.get(self.url("models"));
        let (status, body) = self.small_request(request, ep.request_timeout).await?;
        if !(200..300).contains(&status) {
            return Err(error::from_http(status, &ep.base_url, &body));
        }
        let list: ModelList =
            serde_json::from_str(&body).map_err(|e| LlmError::InvalidResponse {
                url: ep.base_url.clone(),
                detail: format!("{e}: {}", error::quote(&body)),
            })?;
        let mut ids: Vec<String> = Vec::new();
        let names = list
            .data
            .into_iter()
            .filter_map(|m| m.id.or(m.model).or(m.name))
            .chain(
                list.models
                    .into_iter()
                    .filter_map(|m| m.model.or(m.name).or(m.id)),
            );
        for name in names {
            if !ids.contains(&name) {
                ids.push(name);
            }
        }
        Ok(ids)
    }

    /// What the server says it can do: llama-server's `GET /props` (whether the chat template
    /// renders native tools, the per-request context, the model), else what `GET /v1/models`
    /// tells (the model, vLLM's context) with the rest unknown.
    ///
    /// A server without these endpoints is no error: its capabilities are just unknown
    /// ([`ServerCapabilities::unknown`]). Errors are only for a server that cannot be asked at
    /// all ([`LlmError::Unreachable`], [`LlmError::Timeout`] after a few seconds), which a caller
    /// may treat as unknown too: the chat request itself then reports the problem. What the
    /// server reported is reused for 30 s (`CAPS_FRESH_FOR`) by this client and its clones.
    pub async fn server_capabilities(&self) -> Result<ServerCapabilities, LlmError> {
        if let Some((at, caps)) = self.inner.caps.lock().ok().and_then(|c| c.clone())
            && at.elapsed() < CAPS_FRESH_FOR
        {
            return Ok(caps);
        }
        let caps = self.ask_capabilities().await?;
        // Only what the server said is kept: "unknown" (it told us nothing) is asked again.
        if caps != ServerCapabilities::unknown()
            && let Ok(mut slot) = self.inner.caps.lock()
        {
            *slot = Some((std::time::Instant::now(), caps.clone()));
        }
        Ok(caps)
    }

    async fn ask_capabilities(&self) -> Result<ServerCapabilities, LlmError> {
        let props = self.inner.http.get(self.root_url("props"));
        let (status, body) = self.small_request(props, CAPS_TIMEOUT).await?;
        if (200..300).contains(&status) {
            let caps = serde_json::from_str::<Props>(&body)
                .ok()
                .and_then(ServerCapabilities::from_props);
            if let Some(caps) = caps {
                tracing::debug!(?caps, "model server capabilities from /props");
                return Ok(caps);
            }
        }
        let models = self.inner.http.get(self.url("models"));
        let (status, body) = self.small_request(models, CAPS_TIMEOUT).await?;
        let caps = if (200..300).contains(&status) {
            serde_json::from_str::<ModelList>(&body)
                .map(ServerCapabilities::from_models)
                .unwrap_or_default()
        } else {
            ServerCapabilities::unknown()
        };
        tracing::debug!(?caps, "model server capabilities from /models");
        Ok(caps)
    }

    /// How many prompt tokens `messages` (with `tools`, when native tools are offered) take on
    /// this server, counted by the server itself: llama-server's `POST /apply-template` renders
    /// the chat template as a chat request would, and `POST /tokenize` counts the prompt the way
    /// a chat request's prompt is tokenized, so the number is that request's
    /// `usage.prompt_tokens`.
    ///
    /// `Ok(None)`: the server cannot count (no such endpoints: not llama-server, or an old one);
    /// estimate instead. `Err`: the server could not be asked, or refused these messages (e.g.
    /// `tools` without `--jinja`), as it would refuse the chat request.
    pub async fn count_tokens(
        &self,
        messages: &[ChatMessage],
        tools: Option<&[ToolSpec]>,
    ) -> Result<Option<usize>, LlmError> {
        let body = ApplyTemplateBody {
            messages,
            tools: tools.filter(|t| !t.is_empty()),
        };
        let url = self.root_url("apply-template");
        let request = self.inner.http.post(&url).json(&body);
        let Some(applied) = self.optional_json::<AppliedTemplate>(request, &url).await? else {
            return Ok(None);
        };
        let Some(prompt) = applied.prompt else {
            return Ok(None);
        };
        let url = self.root_url("tokenize");
        let body = TokenizeBody {
            content: &prompt,
            add_special: true,
            parse_special: true,
        };
        let request = self.inner.http.post(&url).json(&body);
        let count = self
            .optional_json::<Tokens>(request, &url)
            .await?
            .and_then(|t| t.tokens)
            .map(|t| t.len());
        tracing::debug!(
            messages = messages.len(),
            prompt_bytes = prompt.len(),
            tokens = count,
            "prompt tokens counted by the model server"
        );
        Ok(count)
    }

    /// The JSON answer of one of llama-server's own endpoints; `None` when the server does not
    /// have it (404, 405, 501) or answers with something else.
    async fn optional_json<T: serde::de::DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
        url: &str,
    ) -> Result<Option<T>, LlmError> {
        let (status, body) = self.small_request(request, COUNT_TIMEOUT).await?;
        match status {
            200..=299 => Ok(serde_json::from_str(&body).ok()),
            404 | 405 | 501 => Ok(None),
            _ => Err(error::from_http(status, url, &body)),
        }
    }

    /// Sends a request with a small answer and reads it whole within `timeout` (at most the
    /// endpoint's request timeout): the status and the body ("" if it broke off).
    async fn small_request(
        &self,
        request: reqwest::RequestBuilder,
        timeout: Duration,
    ) -> Result<(u16, String), LlmError> {
        let timeout = timeout.min(self.inner.endpoint.request_timeout);
        let started = Instant::now();
        let limits = Limits {
            started,
            deadline: started + timeout,
            request_timeout: timeout,
            idle_timeout: timeout,
        };
        let again = request.try_clone();
        let sent = send_retrying_closed(request, move || again);
        let response = match tokio::time::timeout_at(limits.deadline, sent).await {
            Err(_) => {
                return Err(LlmError::Timeout {
                    after: timeout,
                    phase: TimeoutPhase::FirstByte,
                });
            }
            Ok(Err(e)) => return Err(self.send_error(e)),
            Ok(Ok(response)) => response,
        };
        let status = response.status().as_u16();
        let body = self
            .read_body(response, limits, &CancelToken::new())
            .await?
            .unwrap_or_default();
        Ok((status, body))
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.inner.base)
    }

    /// A path at the server root rather than under the OpenAI API (`/v1`).
    fn root_url(&self, path: &str) -> String {
        format!("{}/{path}", self.inner.root)
    }

    fn send_error(&self, e: reqwest::Error) -> LlmError {
        let ep = &self.inner.endpoint;
        if e.is_timeout() {
            let (after, phase) = if e.is_connect() {
                (ep.connect_timeout, TimeoutPhase::Connect)
            } else {
                (ep.request_timeout, TimeoutPhase::FirstByte)
            };
            return LlmError::Timeout { after, phase };
        }
        if e.is_builder() {
            return LlmError::InvalidEndpoint {
                url: ep.base_url.clone(),
                detail: e.to_string(),
            };
        }
        LlmError::Unreachable {
            url: ep.base_url.clone(),
            source: e,
        }
    }

    /// Reads a whole (small) body within the request's deadline. `None` if the connection broke
    /// while reading: an error body is then simply missing.
    async fn read_body(
        &self,
        response: reqwest::Response,
        limits: Limits,
        cancel: &CancelToken,
    ) -> Result<Option<String>, LlmError> {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => Err(LlmError::Cancelled),
            read = tokio::time::timeout_at(limits.deadline, response.text()) => match read {
                Err(_) => Err(LlmError::Timeout {
                    after: limits.request_timeout,
                    phase: TimeoutPhase::Total,
                }),
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "model server body broke off");
                    Ok(None)
                }
                Ok(Ok(text)) => Ok(Some(text)),
            },
        }
    }
}

/// reqwest is built with `rustls-no-provider`: the crypto provider must be chosen once per
/// process before the first HTTPS-capable client is built, or reqwest panics. `ring` builds much
/// faster than aws-lc. Idempotent; if something else installed a provider first, that one stays.
/// [`LlmClient::new`] calls it; other modules building their own reqwest client may too.
pub fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

fn is_loopback(url: &reqwest::Url) -> bool {
    match url.host_str() {
        Some(host) if host.eq_ignore_ascii_case("localhost") => true,
        Some(host) => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}

/// Sends `request`; when the connection it went out on turns out to be closed before any
/// answer came, sends it once more (`again`) on a new one. A server closes an idle keep-alive
/// connection whenever it likes, and a request the pool hands that connection at the same
/// moment fails with "connection closed before message completed" (hyper's
/// `IncompleteMessage`) though nothing reached the server's handler; llama-server did so
/// under about one chat request in four after a streamed answer, in our SmolLM2 tier.
async fn send_retrying_closed(
    request: reqwest::RequestBuilder,
    again: impl FnOnce() -> Option<reqwest::RequestBuilder>,
) -> reqwest::Result<reqwest::Response> {
    match request.send().await {
        Err(e) if closed_before_answer(&e) => match again() {
            Some(retry) => {
                tracing::debug!(
                    "the model server closed the connection under a request; sending it again"
                );
                retry.send().await
            }
            None => Err(e),
        },
        other => other,
    }
}

/// Whether `e` is a connection that closed before the server answered at all.
fn closed_before_answer(e: &reqwest::Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(h) = s.downcast_ref::<hyper::Error>() {
            return h.is_incomplete_message();
        }
        source = s.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_checks() {
        let bad = LlmClient::new(LlmEndpoint::new("not a url", "m")).unwrap_err();
        assert!(matches!(bad, LlmError::InvalidEndpoint { .. }), "{bad}");
        assert!(
            bad.to_string().contains("http://127.0.0.1:8080/v1"),
            "{bad}"
        );
        let ftp = LlmClient::new(LlmEndpoint::new("ftp://x/v1", "m")).unwrap_err();
        assert!(ftp.to_string().contains("http or https"), "{ftp}");
        let mut ep = LlmEndpoint::new("http://127.0.0.1:8080/v1/", "m");
        ep.api_key = Some("secret-key".into());
        assert!(!format!("{ep:?}").contains("secret-key"));
        let client = LlmClient::new(ep).expect("valid");
        assert_eq!(client.url("models"), "http://127.0.0.1:8080/v1/models");
        assert_eq!(client.root_url("props"), "http://127.0.0.1:8080/props");
        // A base_url without /v1 (llama-server answers there too): the root is the base.
        let bare = LlmClient::new(LlmEndpoint::new("http://127.0.0.1:8080", "m")).expect("valid");
        assert_eq!(bare.root_url("tokenize"), "http://127.0.0.1:8080/tokenize");
    }

    /// Chat and engine code spawn these futures and send errors across threads.
    #[test]
    fn futures_and_errors_are_send() {
        fn is_send<T: Send>(_: &T) {}
        fn is_send_sync<T: Send + Sync + 'static>() {}
        is_send_sync::<LlmError>();
        is_send_sync::<LlmClient>();
        let client = LlmClient::new(LlmEndpoint::new("http://127.0.0.1:9/v1", "m")).expect("valid");
        let (req, cancel) = (ChatRequest::default(), CancelToken::new());
        let mut on_event = |_: StreamEvent| {};
        let chat = client.stream_chat(&req, &cancel, &mut on_event);
        is_send(&chat);
        let text = client.complete_text(Vec::new());
        is_send(&text);
        let models = client.list_models();
        is_send(&models);
        let caps = client.server_capabilities();
        is_send(&caps);
        let count = client.count_tokens(&[], None);
        is_send(&count);
    }

    /// A server that closes the first connection under a request without answering (as one
    /// closing an idle keep-alive connection does) and answers on the next: the request is
    /// sent again, once, and succeeds. `closes` connections are closed that way.
    fn closing_server(closes: usize) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}/v1", listener.local_addr().expect("addr"));
        let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = seen.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && conn.read(&mut byte).unwrap_or(0) == 1 {
                    head.push(byte[0]);
                }
                if n < closes {
                    continue; // dropped: closed without a byte of answer
                }
                let body = r#"{"data":[{"id":"m1"}]}"#;
                let _ = write!(
                    conn,
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        (url, seen)
    }

    #[tokio::test]
    async fn a_request_whose_connection_closes_before_an_answer_is_sent_again_once() {
        let (url, seen) = closing_server(1);
        let client = LlmClient::new(LlmEndpoint::new(&url, "m")).expect("valid");
        let models = client
            .list_models()
            .await
            .expect("answered on the second connection");
        assert_eq!(models, vec!["m1".to_string()]);
        assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 2);

        // Only once: a server that keeps closing is reported, not asked forever.
        let (url, seen) = closing_server(usize::MAX);
        let client = LlmClient::new(LlmEndpoint::new(&url, "m")).expect("valid");
        let err = client.list_models().await.expect_err("never answered");
        assert!(matches!(err, LlmError::Unreachable { .. }), "{err:?}");
        assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[test]
    fn loopback_hosts() {
        let check = |u: &str| is_loopback(&reqwest::Url::parse(u).expect("url"));
        assert!(check("http://127.0.0.1:8080/v1"));
        assert!(check("http://localhost:8080/v1"));
        assert!(check("http://[::1]:8080/v1"));
        assert!(!check("https://api.example.com/v1"));
        assert!(!check("http://10.0.0.2:8080/v1"));
    }
}
