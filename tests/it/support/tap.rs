//! `HttpTap`: a transparent recording proxy between the code under test and a model server
//! (the real llama-server or [`super::llm_server::ScriptedLlm`]).
//!
//! Why: a chat turn only shows what the chat layer chose to show. Tests of the real-model tier
//! also need what the server really sent (did the answer end with `finish_reason: "length"`,
//! was the request sent without `tools` and with a stop sequence), the recordings of
//! `fixtures/llm/recordings/smollm2/` are the server's raw SSE bodies, and the benchmarks need
//! the moment the server's first token arrived, measured in the same turn as the moment the
//! user saw text. The tap forwards every byte at once in both directions (it never buffers a
//! stream) and parses a copy on the side.
//!
//! It speaks only what it has to: HTTP/1.1 with keep-alive, bodies with `Content-Length` or
//! `Transfer-Encoding: chunked` (or, for a response with neither, up to the close). One
//! thread with its own runtime, like the scripted server, so sync tests and benches can use it.
//! Dropping it stops it.
//!
//! ```ignore
//! let tap = HttpTap::start(llm.addr());
//! // point the profile at tap.base_url() instead of the server's
//! let chat = tap.chat_exchanges();
//! assert_eq!(chat[0].finish_reason().as_deref(), Some("length"));
//! ```

#![allow(dead_code)] // shared by tests and benches; each uses a part

use serde_json::Value;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One request and its response as they crossed the tap.
#[derive(Clone, Debug)]
pub struct Exchange {
    pub method: String,
    /// The request target, query included.
    pub path: String,
    /// The request body (de-chunked).
    pub request_body: Vec<u8>,
    /// The response status (0 if the response never started).
    pub status: u16,
    /// The response body (de-chunked): for a streamed chat answer, the raw SSE text.
    pub response_body: Vec<u8>,
    /// When the last byte of the request went to the server.
    pub sent_at: Instant,
    /// When the first byte of the response came back.
    pub first_byte_at: Option<Instant>,
    /// When the first SSE chunk with answer text (`"delta":{"content":"<non-empty>`) came back.
    pub first_content_at: Option<Instant>,
    /// When each SSE chunk with answer text came back (a read holding several counts several).
    pub content_at: Vec<Instant>,
    /// When the response ended (or the connection closed before its end).
    pub ended_at: Option<Instant>,
    /// Whether the response body arrived whole (false: the connection closed mid-body, e.g.
    /// the client cancelled the stream).
    pub complete: bool,
}

impl Exchange {
    /// A chat-completions request.
    pub fn is_chat(&self) -> bool {
        self.method == "POST"
            && self
                .path
                .split('?')
                .next()
                .unwrap_or("")
                .ends_with("/chat/completions")
    }

    /// The request body as JSON (`Null` if it is none).
    pub fn request_json(&self) -> Value {
        serde_json::from_slice(&self.request_body).unwrap_or(Value::Null)
    }

    pub fn response_text(&self) -> String {
        String::from_utf8_lossy(&self.response_body).into_owned()
    }

    /// The JSON payloads of the response's `data:` events, `[DONE]` left out.
    pub fn sse_payloads(&self) -> Vec<Value> {
        sse_payloads(&self.response_text())
    }

    /// The streamed answer text, joined from the content deltas.
    pub fn streamed_content(&self) -> String {
        sse_content(&self.response_text())
    }

    /// The `finish_reason` the server gave, if its stream got that far.
    pub fn finish_reason(&self) -> Option<String> {
        self.sse_payloads()
            .iter()
            .find_map(|p| p["choices"][0]["finish_reason"].as_str().map(str::to_owned))
    }

    /// `usage.completion_tokens` of the stream's usage chunk, if any.
    pub fn completion_tokens(&self) -> Option<u64> {
        self.sse_payloads()
            .iter()
            .find_map(|p| p["usage"]["completion_tokens"].as_u64())
    }

    /// From the request to the server's first token (`None` if no text came).
    pub fn time_to_first_content(&self) -> Option<Duration> {
        self.first_content_at
            .map(|t| t.duration_since(self.sent_at))
    }
}

/// The JSON payloads of an SSE body's `data:` events, `[DONE]` and non-JSON data left out.
pub fn sse_payloads(sse: &str) -> Vec<Value> {
    sse.split("\n\n")
        .filter_map(|event| {
            let data: String = event
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(str::trim_start)
                .collect();
            (!data.is_empty() && data != "[DONE]")
                .then(|| serde_json::from_str(&data).ok())
                .flatten()
        })
        .collect()
}

/// The answer text of a streamed chat completion: its content deltas joined.
pub fn sse_content(sse: &str) -> String {
    sse_payloads(sse)
        .iter()
        .filter_map(|p| {
            p["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect()
}

struct Shared {
    target: SocketAddr,
    exchanges: Mutex<Vec<Exchange>>,
    /// Exchanges before this index were cleared ([`HttpTap::clear`]). They stay in the list:
    /// a kept-alive connection may still be filling one in by its index.
    cleared: Mutex<usize>,
}

/// A running tap. Dropping it stops it (connections still open are dropped).
pub struct HttpTap {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock only means a test thread panicked; the data is still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl HttpTap {
    /// Listens on 127.0.0.1 (ephemeral port) and forwards every connection to `target`.
    pub fn start(target: SocketAddr) -> HttpTap {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared {
            target,
            exchanges: Mutex::new(Vec::new()),
            cleared: Mutex::new(0),
        });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("http-tap-{}", addr.port()))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("tap runtime");
                rt.block_on(async move {
                    let listener = TcpListener::from_std(listener).expect("tokio listener");
                    tokio::select! {
                        _ = stopped => {}
                        _ = accept_loop(listener, s) => {}
                    }
                });
                rt.shutdown_timeout(Duration::from_millis(200));
            })
            .expect("spawn tap thread");
        HttpTap {
            addr,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Starts a tap in front of a base URL such as `http://127.0.0.1:PORT/v1`.
    pub fn in_front_of(base_url: &str) -> HttpTap {
        let rest = base_url
            .strip_prefix("http://")
            .unwrap_or_else(|| panic!("the tap speaks plain http only: {base_url}"));
        let hostport = rest.split('/').next().unwrap_or(rest);
        let addr: SocketAddr = hostport
            .parse()
            .or_else(|_| {
                use std::net::ToSocketAddrs;
                hostport
                    .to_socket_addrs()
                    .map_err(|e| e.to_string())?
                    .next()
                    .ok_or_else(|| "no address".to_string())
            })
            .unwrap_or_else(|e| panic!("not a host:port in {base_url}: {e}"));
        HttpTap::start(addr)
    }

    /// `http://127.0.0.1:TAP_PORT/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every exchange whose request was complete, in the order the requests were sent.
    pub fn exchanges(&self) -> Vec<Exchange> {
        let from = *lock(&self.shared.cleared);
        let mut all = lock(&self.shared.exchanges)[from..].to_vec();
        all.sort_by_key(|e| e.sent_at);
        all
    }

    /// The chat-completion exchanges only.
    pub fn chat_exchanges(&self) -> Vec<Exchange> {
        self.exchanges()
            .into_iter()
            .filter(Exchange::is_chat)
            .collect()
    }

    /// Forgets what was recorded so far.
    pub fn clear(&self) {
        *lock(&self.shared.cleared) = lock(&self.shared.exchanges).len();
    }
}

impl Drop for HttpTap {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            // Kept sleep, not a wait: accept failed (e.g. out of descriptors); do not spin.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = client.set_nodelay(true);
        tokio::spawn(proxy(client, shared.clone()));
    }
}

/// The requests of one connection not yet paired with a response.
#[derive(Default)]
struct Pending {
    /// Index into `Shared::exchanges` of each sent request waiting for its response.
    waiting: std::collections::VecDeque<usize>,
}

async fn proxy(client: TcpStream, shared: Arc<Shared>) {
    let Ok(server) = TcpStream::connect(shared.target).await else {
        return; // the client sees the connection close, as if the server were down
    };
    let _ = server.set_nodelay(true);
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let pending = Arc::new(Mutex::new(Pending::default()));

    let up = {
        let (shared, pending) = (shared.clone(), pending.clone());
        async move {
            let mut parser = BodyParser::default();
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                let n = match cr.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                if sw.write_all(&buf[..n]).await.is_err() {
                    break;
                }
                let now = Instant::now();
                for msg in parser.feed(&buf[..n], false) {
                    let exchange = Exchange {
                        method: msg.first.0,
                        path: msg.first.1,
                        request_body: msg.body,
                        status: 0,
                        response_body: Vec::new(),
                        sent_at: now,
                        first_byte_at: None,
                        first_content_at: None,
                        content_at: Vec::new(),
                        ended_at: None,
                        complete: false,
                    };
                    let mut all = lock(&shared.exchanges);
                    all.push(exchange);
                    lock(&pending).waiting.push_back(all.len() - 1);
                }
            }
            let _ = sw.shutdown().await;
        }
    };

    let down = {
        let (shared, pending) = (shared.clone(), pending.clone());
        async move {
            let mut parser = BodyParser::default();
            let mut buf = vec![0u8; 16 * 1024];
            let mut scan = ContentScan::default();
            loop {
                let n = match sr.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let now = Instant::now();
                // Recorded before forwarding, so a timestamp is never later than the moment the
                // client could have seen the bytes.
                if let Some(&i) = lock(&pending).waiting.front() {
                    let mut all = lock(&shared.exchanges);
                    let e = &mut all[i];
                    e.first_byte_at.get_or_insert(now);
                    let pieces = scan.feed(&buf[..n]);
                    if pieces > 0 {
                        e.first_content_at.get_or_insert(now);
                        e.content_at.extend(std::iter::repeat_n(now, pieces));
                    }
                }
                if cw.write_all(&buf[..n]).await.is_err() {
                    break;
                }
                for msg in parser.feed(&buf[..n], true) {
                    let Some(i) = lock(&pending).waiting.pop_front() else {
                        continue;
                    };
                    scan = ContentScan::default();
                    let mut all = lock(&shared.exchanges);
                    let e = &mut all[i];
                    e.status = msg.first.1.parse().unwrap_or(0);
                    e.response_body = msg.body;
                    e.ended_at = Some(now);
                    e.complete = true;
                }
                // A response still coming keeps what came so far: when the client hangs up
                // mid-stream (a cancelled answer) this task is dropped with the connection.
                if let Some((status, body)) = parser.in_progress()
                    && let Some(&i) = lock(&pending).waiting.front()
                {
                    let mut all = lock(&shared.exchanges);
                    let e = &mut all[i];
                    e.status = status.parse().unwrap_or(0);
                    e.response_body = body.to_vec();
                    e.ended_at = Some(now);
                }
            }
            // The connection closed: a response without length ends here; one cut mid-body
            // keeps what came.
            let partial = parser.finish();
            if let Some(i) = lock(&pending).waiting.pop_front() {
                let mut all = lock(&shared.exchanges);
                let e = &mut all[i];
                if let Some(msg) = partial {
                    e.status = msg.first.1.parse().unwrap_or(0);
                    e.complete = msg.complete;
                    e.response_body = msg.body;
                }
                e.ended_at = Some(Instant::now());
            }
            let _ = cw.shutdown().await;
        }
    };
    // Either side closing ends the connection for both (the client cancelling a stream must
    // reach the server, which then stops generating).
    tokio::select! {
        _ = up => {}
        _ = down => {}
    }
}

/// Finds `"delta":{"content":"` followed by a character other than `"` in a byte stream that
/// arrives in pieces (the pattern may straddle two reads).
#[derive(Default)]
struct ContentScan {
    tail: Vec<u8>,
}

const CONTENT_MARK: &[u8] = b"\"delta\":{\"content\":\"";

impl ContentScan {
    /// How many marks the new bytes completed.
    fn feed(&mut self, bytes: &[u8]) -> usize {
        self.tail.extend_from_slice(bytes);
        let hits = self
            .tail
            .windows(CONTENT_MARK.len() + 1)
            .filter(|w| w.starts_with(CONTENT_MARK) && w[CONTENT_MARK.len()] != b'"')
            .count();
        // The kept tail is shorter than a whole match, so no match is counted twice.
        let keep = self.tail.len().saturating_sub(CONTENT_MARK.len());
        self.tail.drain(..keep);
        hits
    }
}

/// One parsed HTTP message: its first line's first two words (method + target, or version +
/// status) and its de-chunked body.
struct Message {
    first: (String, String),
    body: Vec<u8>,
    complete: bool,
}

/// An incremental HTTP/1.1 message reader (heads, then `Content-Length`, chunked, or — for a
/// response — everything up to the close).
#[derive(Default)]
struct BodyParser {
    buf: Vec<u8>,
    state: State,
}

#[derive(Default)]
enum State {
    #[default]
    Head,
    Fixed {
        first: (String, String),
        left: usize,
        body: Vec<u8>,
    },
    Chunked {
        first: (String, String),
        body: Vec<u8>,
    },
    UntilClose {
        first: (String, String),
        body: Vec<u8>,
    },
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

impl BodyParser {
    /// Takes more bytes; returns the messages they completed.
    fn feed(&mut self, bytes: &[u8], is_response: bool) -> Vec<Message> {
        self.buf.extend_from_slice(bytes);
        let mut done = Vec::new();
        loop {
            match std::mem::take(&mut self.state) {
                State::Head => {
                    let Some(end) = find(&self.buf, b"\r\n\r\n") else {
                        return done;
                    };
                    let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                    self.buf.drain(..end + 4);
                    let mut lines = head.split("\r\n");
                    let mut words = lines.next().unwrap_or("").split(' ');
                    let first = (
                        words.next().unwrap_or("").to_owned(),
                        words.next().unwrap_or("").to_owned(),
                    );
                    let mut length = None;
                    let mut chunked = false;
                    for line in lines {
                        if let Some((name, value)) = line.split_once(':') {
                            let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
                            if name == "content-length" {
                                length = value.parse::<usize>().ok();
                            } else if name == "transfer-encoding"
                                && value.to_ascii_lowercase().contains("chunked")
                            {
                                chunked = true;
                            }
                        }
                    }
                    let no_body_status = is_response
                        && (first.1.starts_with('1') || first.1 == "204" || first.1 == "304");
                    self.state = if chunked {
                        State::Chunked {
                            first,
                            body: Vec::new(),
                        }
                    } else if let Some(left) = length {
                        State::Fixed {
                            first,
                            left,
                            body: Vec::new(),
                        }
                    } else if is_response && !no_body_status {
                        State::UntilClose {
                            first,
                            body: Vec::new(),
                        }
                    } else {
                        State::Fixed {
                            first,
                            left: 0,
                            body: Vec::new(),
                        }
                    };
                }
                State::Fixed {
                    first,
                    mut left,
                    mut body,
                } => {
                    let take = left.min(self.buf.len());
                    body.extend(self.buf.drain(..take));
                    left -= take;
                    if left > 0 {
                        self.state = State::Fixed { first, left, body };
                        return done;
                    }
                    done.push(Message {
                        first,
                        body,
                        complete: true,
                    });
                }
                State::Chunked { first, mut body } => {
                    let Some(line_end) = find(&self.buf, b"\r\n") else {
                        self.state = State::Chunked { first, body };
                        return done;
                    };
                    let size_text = String::from_utf8_lossy(&self.buf[..line_end]).into_owned();
                    let size =
                        usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                            .unwrap_or(0);
                    if self.buf.len() < line_end + 2 + size + 2 {
                        self.state = State::Chunked { first, body };
                        return done;
                    }
                    self.buf.drain(..line_end + 2);
                    body.extend(self.buf.drain(..size));
                    self.buf.drain(..2);
                    if size == 0 {
                        done.push(Message {
                            first,
                            body,
                            complete: true,
                        });
                    } else {
                        self.state = State::Chunked { first, body };
                    }
                }
                State::UntilClose { first, mut body } => {
                    body.append(&mut self.buf);
                    self.state = State::UntilClose { first, body };
                    return done;
                }
            }
        }
    }

    /// The second word of the first line and the body so far of a message not complete yet.
    fn in_progress(&self) -> Option<(&str, &[u8])> {
        match &self.state {
            State::Head => None,
            State::Fixed { first, body, .. }
            | State::Chunked { first, body }
            | State::UntilClose { first, body } => Some((first.1.as_str(), body.as_slice())),
        }
    }

    /// The connection closed: the message in progress, if any (complete only for a response
    /// that ends at the close).
    fn finish(&mut self) -> Option<Message> {
        match std::mem::take(&mut self.state) {
            State::Head => None,
            State::UntilClose { first, body } => Some(Message {
                first,
                body,
                complete: true,
            }),
            State::Fixed { first, body, .. } | State::Chunked { first, body } => {
                // A chunked body cut mid-stream: keep the whole chunks received, plus the
                // bytes of the chunk in progress (what the client saw).
                let mut body = body;
                if let Some(line_end) = find(&self.buf, b"\r\n") {
                    body.extend_from_slice(&self.buf[line_end + 2..]);
                }
                Some(Message {
                    first,
                    body,
                    complete: false,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    // A bench that includes this file (`#[path]`) compiles it with cfg(test) but without the
    // #[test] functions, so the import is unused there.
    #[allow(unused_imports)]
    use super::*;

    #[test]
    fn chunked_response_is_dechunked_across_reads() {
        let mut p = BodyParser::default();
        let wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
        let mut out = Vec::new();
        for piece in wire.chunks(7) {
            out.extend(p.feed(piece, true));
        }
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].first.1, "200");
        assert_eq!(out[0].body, b"hello world");
    }

    #[test]
    fn content_scan_finds_a_mark_split_over_reads() {
        let text = br#"data: {"choices":[{"delta":{"role":"assistant","content":null}}]}

data: {"choices":[{"delta":{"content":""}}]}

data: {"choices":[{"delta":{"content":"Hi"}}]}"#;
        // Cut right after the mark: whether it is answer text shows only in the next read.
        let cut = text.windows(2).position(|w| w == b"Hi").unwrap();
        let mut s = ContentScan::default();
        assert_eq!(s.feed(&text[..cut]), 0);
        assert_eq!(s.feed(&text[cut..]), 1);
    }
}
