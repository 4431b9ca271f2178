//! Test support for the HTTP surface: the real `noctune studio` binary on a fixture repository,
//! and a small raw HTTP/1.1 client (so a test controls every header byte: Host, two Origins,
//! no token) with an SSE reader.

#![allow(dead_code)]

use crate::support::cli::Noctune;
use crate::support::repo::FixtureRepo;
use crate::support::wait::{poll_for, wait_until};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running `noctune studio --port 0 --no-open`, killed on drop.
pub struct StudioProc {
    child: Child,
    pub port: u16,
    pub token: String,
    pub url: String,
    stderr: Arc<Mutex<String>>,
    /// The thread copying stderr into `stderr`; it ends at end of file.
    stderr_reader: Option<std::thread::JoinHandle<()>>,
}

impl StudioProc {
    pub fn start(nt: &Noctune, repo: &Path) -> StudioProc {
        StudioProc::start_with(nt, repo, &[])
    }

    pub fn start_with(nt: &Noctune, repo: &Path, env: &[(&str, &str)]) -> StudioProc {
        StudioProc::start_full(nt, repo, &[], env)
    }

    /// With extra command-line arguments (e.g. `--host`).
    pub fn start_full(
        nt: &Noctune,
        repo: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> StudioProc {
        let mut cmd = nt.cmd();
        cmd.args([
            "studio",
            "--repo",
            repo.to_str().unwrap(),
            "--port",
            "0",
            "--no-open",
        ])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn noctune studio");
        let stderr = Arc::new(Mutex::new(String::new()));
        let err_pipe = child.stderr.take().unwrap();
        let sink = stderr.clone();
        let stderr_reader = std::thread::spawn(move || {
            let mut r = BufReader::new(err_pipe);
            let mut line = String::new();
            while r.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                sink.lock().unwrap().push_str(&line);
                line.clear();
            }
        });
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).expect("read the URL line");
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = out.read_to_end(&mut sink);
        });
        let url = line
            .trim()
            .strip_prefix("Noctune Studio: ")
            .unwrap_or_else(|| {
                panic!(
                    "unexpected first line {line:?}; stderr: {}",
                    stderr.lock().unwrap()
                )
            })
            .to_string();
        let (base, token) = url.split_once("/studio?token=").expect("URL with token");
        let port: u16 = base.rsplit(':').next().unwrap().parse().unwrap();
        assert!(base.starts_with("http://127.0.0.1:"), "{url}");
        assert_eq!(token.len(), 64, "32 random bytes as hex");
        StudioProc {
            child,
            port,
            token: token.to_string(),
            url,
            stderr,
            stderr_reader: Some(stderr_reader),
        }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// A request that never panics: the body of a 2xx answer, else None.
    fn try_request(&self, method: &str, path: &str) -> Option<Vec<u8>> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .ok()?;
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.host(),
            self.bearer()
        );
        stream.write_all(req.as_bytes()).ok()?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).ok()?;
        let end = find(&raw, b"\r\n\r\n")?;
        let head = String::from_utf8_lossy(&raw[..end]).into_owned();
        if !head.starts_with("HTTP/1.1 2") {
            return None;
        }
        let body = raw[end + 4..].to_vec();
        Some(
            if head
                .to_ascii_lowercase()
                .contains("transfer-encoding: chunked")
            {
                dechunk(&body)
            } else {
                body
            },
        )
    }

    /// Stops the server and returns everything it wrote to stderr (all of it: the reader has
    /// seen the end of the pipe).
    pub fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(reader) = self.stderr_reader.take() {
            wait_until(
                Duration::from_secs(10),
                "the end of the studio's stderr (does a child of it still hold the pipe?)",
                || reader.is_finished(),
            );
            reader.join().expect("the stderr reader");
        }
        self.stderr()
    }

    /// A request with exactly these headers (plus Host unless given, Content-Length and
    /// Connection: close).
    pub fn raw(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
        raw_request(self.port, method, path, headers, body, Some(&self.host()))
    }

    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.token)
    }

    pub fn get(&self, path: &str) -> Resp {
        let auth = self.bearer();
        self.raw("GET", path, &[("Authorization", &auth)], b"")
    }

    pub fn post_json(&self, path: &str, body: &Value) -> Resp {
        let auth = self.bearer();
        self.raw(
            "POST",
            path,
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            body.to_string().as_bytes(),
        )
    }

    pub fn post(&self, path: &str) -> Resp {
        let auth = self.bearer();
        self.raw("POST", path, &[("Authorization", &auth)], b"")
    }

    pub fn delete(&self, path: &str) -> Resp {
        let auth = self.bearer();
        self.raw("DELETE", path, &[("Authorization", &auth)], b"")
    }

    /// GET a JSON answer that must be 200.
    #[track_caller]
    pub fn json(&self, path: &str) -> Value {
        let r = self.get(path);
        assert_eq!(r.status, 200, "GET {path}: {}", r.text());
        r.json()
    }

    /// Polls the run's API status until `pred` holds.
    #[track_caller]
    pub fn wait_status(&self, run_id: &str, secs: u64, pred: impl Fn(&str) -> bool) -> Value {
        let mut last = Value::Null;
        poll_for(Duration::from_secs(secs), || {
            last = self.json(&format!("/api/runs/{run_id}"));
            pred(last["status"].as_str().unwrap()).then(|| last.clone())
        })
        .unwrap_or_else(|elapsed| {
            panic!("timed out after {elapsed:.1?} waiting for run {run_id}; last status {last:#}")
        })
    }

    /// POSTs a JSON body and reads the answer as an event stream (a chat turn).
    pub fn sse_post(&self, path: &str, body: &str) -> SseReader {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: {}\r\nAccept: text/event-stream\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.host(),
            self.bearer(),
            body.len()
        );
        stream.write_all(req.as_bytes()).unwrap();
        let mut r = SseReader {
            stream,
            buf: Vec::new(),
            status: 0,
            body: Vec::new(),
            chunk_left: None,
            ended: false,
        };
        r.read_head();
        r
    }

    /// Opens the live event stream of a run.
    pub fn sse(&self, path: &str, extra: &[(&str, &str)]) -> SseReader {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut req = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: {}\r\nAccept: text/event-stream\r\n",
            self.host(),
            self.bearer()
        );
        for (k, v) in extra {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        stream.write_all(req.as_bytes()).unwrap();
        let mut r = SseReader {
            stream,
            buf: Vec::new(),
            status: 0,
            body: Vec::new(),
            chunk_left: None,
            ended: false,
        };
        r.read_head();
        r
    }
}

impl Drop for StudioProc {
    fn drop(&mut self) {
        // Workers outlive the server: stop the runs a failed test left live (never panicking
        // here: this may run while a failed test unwinds).
        if let Ok(None) = self.child.try_wait()
            && let Some(body) = self.try_request("GET", "/api/runs")
            && let Ok(v) = serde_json::from_slice::<Value>(&body)
        {
            for run in v["runs"].as_array().cloned().unwrap_or_default() {
                if !matches!(run["status"].as_str(), Some("done" | "failed" | "stopped")) {
                    let id = run["run_id"].as_str().unwrap_or("");
                    self.try_request("POST", &format!("/api/runs/{id}/stop?grace_secs=1"));
                }
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
    /// The `error` code of a JSON error answer.
    pub fn code(&self) -> String {
        self.json()["error"].as_str().unwrap_or("").to_string()
    }
}

pub fn raw_request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    host: Option<&str>,
) -> Resp {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\n");
    if let Some(h) = host
        && !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host"))
    {
        req.push_str(&format!("Host: {h}\r\n"));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("Connection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).unwrap();
    // A server may answer (413) before reading a big body; a write error then is fine.
    let _ = stream.write_all(body);
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    parse_response(&raw)
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

fn parse_response(raw: &[u8]) -> Resp {
    let end = find(raw, b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"))
    {
        body = dechunk(&body);
    }
    Resp {
        status,
        headers,
        body,
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(i) = find(b, b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&b[..i]).trim(), 16).unwrap_or(0);
        let Some(chunk) = b.get(i + 2..i + 2 + size) else {
            break;
        };
        if size == 0 {
            break;
        }
        out.extend_from_slice(chunk);
        b = b.get(i + 2 + size + 2..).unwrap_or(&[]);
    }
    out
}

/// One SSE message.
#[derive(Debug, Clone)]
pub struct SseMsg {
    pub event: String,
    pub id: Option<String>,
    pub data: String,
}

impl SseMsg {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap()
    }
}

/// Reads a chunked `text/event-stream` answer message by message.
pub struct SseReader {
    stream: TcpStream,
    buf: Vec<u8>,
    pub status: u16,
    body: Vec<u8>,
    chunk_left: Option<usize>,
    pub ended: bool,
}

impl SseReader {
    fn fill(&mut self) -> bool {
        let mut b = [0u8; 16384];
        match self.stream.read(&mut b) {
            Ok(0) => {
                self.ended = true;
                false
            }
            Ok(n) => {
                self.buf.extend_from_slice(&b[..n]);
                true
            }
            Err(_) => false,
        }
    }

    fn read_head(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while find(&self.buf, b"\r\n\r\n").is_none() {
            assert!(Instant::now() < deadline, "no SSE answer head");
            self.fill();
            if self.ended {
                break;
            }
        }
        let end = find(&self.buf, b"\r\n\r\n").expect("answer head");
        let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
        self.status = head.split(' ').nth(1).unwrap().parse().unwrap();
        self.buf.drain(..end + 4);
    }

    /// Moves complete chunk payloads from `buf` to `body`.
    fn dechunk(&mut self) {
        loop {
            match self.chunk_left {
                None => {
                    let Some(i) = find(&self.buf, b"\r\n") else {
                        return;
                    };
                    let size =
                        usize::from_str_radix(String::from_utf8_lossy(&self.buf[..i]).trim(), 16)
                            .unwrap_or(0);
                    self.buf.drain(..i + 2);
                    if size == 0 {
                        self.ended = true;
                        return;
                    }
                    self.chunk_left = Some(size);
                }
                Some(n) => {
                    if self.buf.len() < n + 2 {
                        return;
                    }
                    self.body.extend_from_slice(&self.buf[..n]);
                    self.buf.drain(..n + 2);
                    self.chunk_left = None;
                }
            }
        }
    }

    /// The next message (comments skipped), or None at the end of the stream or after `timeout`.
    pub fn next(&mut self, timeout: Duration) -> Option<SseMsg> {
        let deadline = Instant::now() + timeout;
        loop {
            self.dechunk();
            if let Some(i) = find(&self.body, b"\n\n") {
                let block = String::from_utf8_lossy(&self.body[..i]).into_owned();
                self.body.drain(..i + 2);
                let mut msg = SseMsg {
                    event: "message".into(),
                    id: None,
                    data: String::new(),
                };
                let mut data = Vec::new();
                for line in block.lines() {
                    if line.starts_with(':') {
                        continue;
                    }
                    let (k, v) = line.split_once(':').unwrap_or((line, ""));
                    let v = v.strip_prefix(' ').unwrap_or(v);
                    match k {
                        "event" => msg.event = v.to_string(),
                        "id" => msg.id = Some(v.to_string()),
                        "data" => data.push(v.to_string()),
                        _ => {}
                    }
                }
                if data.is_empty() {
                    continue;
                }
                msg.data = data.join("\n");
                return Some(msg);
            }
            if self.ended || Instant::now() >= deadline {
                return None;
            }
            self.fill();
        }
    }

    /// Every message until the stream's `end` message (included) or `timeout`.
    pub fn until_end(&mut self, timeout: Duration) -> Vec<SseMsg> {
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        while let Some(m) = self.next(deadline.saturating_duration_since(Instant::now())) {
            let end = m.event == "end";
            out.push(m);
            if end {
                break;
            }
        }
        out
    }
}

/// A fixture repository and a private audit DB, and Studio serving them.
pub struct Setup {
    pub repo: FixtureRepo,
    pub nt: Noctune,
    pub studio: StudioProc,
}

impl Setup {
    pub fn new() -> Setup {
        let repo = FixtureRepo::new("pyproj", &[]);
        let nt = Noctune::new();
        let studio = StudioProc::start(&nt, &repo.path());
        Setup { repo, nt, studio }
    }

    pub fn runs_dir(&self) -> PathBuf {
        self.repo.path().join(".noctune_cache/runs")
    }

    pub fn run_json(&self, run_id: &str) -> Value {
        let p = self.runs_dir().join(run_id).join("state/run.json");
        serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap()
    }

    /// Starts a run through the API and returns its id.
    #[track_caller]
    pub fn start(&self, pack: &str) -> String {
        let r = self
            .studio
            .post_json("/api/runs", &serde_json::json!({"pack": pack}));
        assert_eq!(r.status, 201, "{}", r.text());
        r.json()["run_id"].as_str().unwrap().to_string()
    }
}
