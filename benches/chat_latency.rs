//! Added latency of chat (`cargo bench --bench chat_latency`), issue 3's first benchmark:
//! time to the first byte of the answer through noctune's `ChatService::send` (the core of
//! `noctune chat`, the web page and the editors: session load, system prompt with the repo
//! overview, context fitting, tool specs, the prompt-call stream filter, the model client)
//! versus directly from the same scripted llama-server, over 200 requests each, interleaved.
//!
//! "Directly" is measured two ways: a minimal keep-alive HTTP/1.1 client on a raw socket that
//! posts the very body noctune sends (the baseline of the target), and noctune's own
//! `LlmClient` with that body (to show how much of the overhead is the HTTP client).
//! Target: p50 overhead ≤ 1 ms, p99 ≤ 3 ms.

#[path = "../tests/it/support/llm_server.rs"]
mod llm_server;

use llm_server::{Reply, Script, ScriptedLlm};
use noctune_chat::agent::{ChatEvent, NoPrompter, TurnContext};
use noctune_chat::service::ChatService;
use noctune_llm::{CancelToken, ChatRequest, LlmClient, StreamEvent};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const REQUESTS: usize = 200;
const WARMUP: usize = 20;

fn main() {
    bench_ttfb();
}

fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "MISS" }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A keep-alive HTTP/1.1 connection that posts a body and times the first content chunk.
struct RawClient {
    reader: BufReader<TcpStream>,
    host: String,
}

impl RawClient {
    async fn connect(addr: std::net::SocketAddr) -> RawClient {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        RawClient {
            reader: BufReader::new(stream),
            host: addr.to_string(),
        }
    }

    /// Posts `body`; returns the time to the first chunk carrying answer text, after reading
    /// the whole response (so the connection can be reused).
    async fn ttfb(&mut self, body: &str) -> Duration {
        let head = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Accept: text/event-stream\r\nContent-Length: {}\r\n\r\n",
            self.host,
            body.len()
        );
        let started = Instant::now();
        let stream = self.reader.get_mut();
        stream.write_all(head.as_bytes()).await.expect("write head");
        stream.write_all(body.as_bytes()).await.expect("write body");
        let mut line = String::new();
        loop {
            line.clear();
            self.reader.read_line(&mut line).await.expect("header");
            if line == "\r\n" {
                break;
            }
        }
        let mut first = None;
        loop {
            line.clear();
            self.reader.read_line(&mut line).await.expect("chunk size");
            let size = usize::from_str_radix(line.trim(), 16).expect("hex chunk size");
            let mut data = vec![0u8; size + 2];
            self.reader.read_exact(&mut data).await.expect("chunk");
            if size == 0 {
                break;
            }
            if first.is_none() && data.windows(12).any(|w| w == b"{\"content\":\"") {
                first = Some(started.elapsed());
            }
        }
        first.expect("an answer with content")
    }
}

fn bench_ttfb() {
    let server =
        ScriptedLlm::start(Script::new().fallback(|_| Reply::text(&["Hello", " world", "."])));
    let work = tempfile::tempdir().expect("tempdir");
    let repo = work.path().join("repo");
    std::fs::create_dir_all(repo.join("src")).expect("mkdir");
    std::fs::write(repo.join("README.md"), "# demo\n\nA small project.\n").expect("readme");
    for i in 0..50 {
        std::fs::write(
            repo.join(format!("src/m{i}.py")),
            "def f():\n    return 1\n",
        )
        .expect("file");
    }
    std::fs::write(
        repo.join("noctune.toml"),
        format!(
            "default_profile = \"bench\"\n[model_profiles.bench]\nbase_url = \"{}\"\nmodel = \"tiny\"\n\
             tool_mode = \"auto\"\ncontext_window = 8192\nmax_tokens = 256\n",
            server.base_url()
        ),
    )
    .expect("config");
    let service = ChatService::open(&repo, None, None).expect("chat service");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");

    rt.block_on(async {
        // One turn to learn the exact body noctune sends (a new session each time, so every
        // request has the same size).
        let mut session_no = 0usize;
        let mut via_noctune = || {
            session_no += 1;
            let id = format!("bench-{session_no}");
            let service = &service;
            async move {
                let started = Instant::now();
                let mut first: Option<Duration> = None;
                let mut on_event = |e: ChatEvent| {
                    if first.is_none() && matches!(e, ChatEvent::Delta { .. }) {
                        first = Some(started.elapsed());
                    }
                };
                service
                    .send(&id, "What does this project do?", TurnContext::default(), &NoPrompter, &mut on_event, &CancelToken::new())
                    .await
                    .expect("turn");
                first.expect("a delta")
            }
        };
        via_noctune().await;
        let body_json = server.last_request().expect("a request");
        let body = body_json.to_string();
        let request: ChatRequest = serde_json::from_value(body_json).expect("a ChatRequest");
        let client = LlmClient::new(server.endpoint()).expect("client");
        let mut raw = RawClient::connect(server.addr()).await;
        let via_client = |client: &LlmClient, request: &ChatRequest| {
            let client = client.clone();
            let request = request.clone();
            async move {
                let started = Instant::now();
                let mut first: Option<Duration> = None;
                client
                    .stream_chat(&request, &CancelToken::new(), &mut |e| {
                        if first.is_none() && matches!(e, StreamEvent::ContentDelta(_)) {
                            first = Some(started.elapsed());
                        }
                    })
                    .await
                    .expect("answer");
                first.expect("content")
            }
        };

        for _ in 0..WARMUP {
            via_noctune().await;
            via_client(&client, &request).await;
            raw.ttfb(&body).await;
        }
        let (mut n, mut c, mut r) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..REQUESTS {
            // Rotate the order so none of the three always runs right after another.
            match i % 3 {
                0 => {
                    n.push(via_noctune().await);
                    c.push(via_client(&client, &request).await);
                    r.push(raw.ttfb(&body).await);
                }
                1 => {
                    c.push(via_client(&client, &request).await);
                    r.push(raw.ttfb(&body).await);
                    n.push(via_noctune().await);
                }
                _ => {
                    r.push(raw.ttfb(&body).await);
                    n.push(via_noctune().await);
                    c.push(via_client(&client, &request).await);
                }
            }
        }
        for v in [&mut n, &mut c, &mut r] {
            v.sort();
        }
        let p = |v: &[Duration]| (percentile(v, 0.5), percentile(v, 0.99));
        let (n50, n99) = p(&n);
        let (c50, c99) = p(&c);
        let (r50, r99) = p(&r);
        // Signed differences: on a busy machine the noise can exceed the overhead.
        let diff = |a: Duration, b: Duration| ms(a) - ms(b);
        let (o50, o99) = (diff(n50, r50), diff(n99, r99));
        println!(
            "\ntime to first byte of the answer, {REQUESTS} requests each, interleaved ({} bytes of \
             request body: auto tool mode with {} tool schemas)",
            body.len(),
            request.tools.as_ref().map_or(0, Vec::len)
        );
        println!("  direct, raw keep-alive HTTP:   p50 {:7.3} ms  p99 {:7.3} ms", ms(r50), ms(r99));
        println!("  direct, noctune's LlmClient:   p50 {:7.3} ms  p99 {:7.3} ms", ms(c50), ms(c99));
        println!("  through ChatService::send:     p50 {:7.3} ms  p99 {:7.3} ms", ms(n50), ms(n99));
        println!(
            "  overhead vs raw HTTP:          p50 {o50:+7.3} ms (target <= 1 ms) {}   p99 {o99:+7.3} ms (target <= 3 ms) {}",
            verdict(o50 <= 1.0),
            verdict(o99 <= 3.0)
        );
        println!(
            "  chat layer alone (vs LlmClient): p50 {:+7.3} ms  p99 {:+7.3} ms",
            diff(n50, c50),
            diff(n99, c99)
        );
    });
}
