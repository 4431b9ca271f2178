//! The stdio transport around `tower_lsp_server::Server`: it owns the protocol channel so that
//! nothing but frames ever reaches stdout, and it answers malformed input itself.
//!
//! `tower-lsp-server` stops reading (and so ends the session) after the first frame it cannot
//! decode; an editor typing into a broken pipe must not lose its server. So every frame is
//! checked here first (header, length, JSON, JSON-RPC shape): a good one is passed on re-framed,
//! a bad one is answered with a JSON-RPC error (`-32700` parse error or `-32600` invalid
//! request, `id` null unless it could be read) and the reader resynchronises on the next
//! `Content-Length` header.
//!
//! stdout: [`claim_stdio`] moves the protocol pipe to a private close-on-exec descriptor and
//! points fd 1 at stderr, so a stray `println!` (ours or a library's) or a child process can
//! never corrupt the stream. stdin likewise is replaced by `/dev/null` for children.

use serde_json::{Value, json};
use std::io::Write;
use std::os::fd::{FromRawFd, OwnedFd};
use std::pin::Pin;
use std::sync::mpsc as std_mpsc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tower_lsp_server::jsonrpc::{Request, Response};

/// Largest frame accepted (bytes); a bigger `Content-Length` is refused as malformed.
const MAX_FRAME: usize = 64 * 1024 * 1024;
/// Largest header block; more bytes without `\r\n\r\n` is garbage.
const MAX_HEADER: usize = 8 * 1024;

/// The protocol's input and output, taken away from fds 0 and 1.
pub struct ProtocolIo {
    input: std::fs::File,
    output: std::fs::File,
}

/// Moves stdin/stdout to private close-on-exec descriptors; fd 1 becomes stderr and fd 0
/// `/dev/null`, for everything else in the process and its children. Call it first.
pub fn claim_stdio() -> std::io::Result<ProtocolIo> {
    let input = dup_cloexec(0)?;
    let output = dup_cloexec(1)?;
    let devnull = std::fs::File::open("/dev/null")?;
    // SAFETY: dup2 on descriptors we own or that the process was started with.
    unsafe {
        if libc::dup2(2, 1) < 0 {
            return Err(std::io::Error::last_os_error());
        }
        if libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&devnull), 0) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(ProtocolIo {
        input: input.into(),
        output: output.into(),
    })
}

fn dup_cloexec(fd: i32) -> std::io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC returns a new descriptor that we then own.
    let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
    if new < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `new` is a fresh descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

enum Out {
    Bytes(Vec<u8>),
    Flush(std_mpsc::Sender<()>),
}

/// The writer side: whole frames in, written to the protocol fd by one thread in order.
#[derive(Clone)]
pub struct Output {
    tx: std_mpsc::Sender<Out>,
}

impl Output {
    fn start(mut file: std::fs::File) -> Output {
        let (tx, rx) = std_mpsc::channel::<Out>();
        let spawned = std::thread::Builder::new()
            .name("lsp-stdout".into())
            .spawn(move || {
                while let Ok(msg) = rx.recv() {
                    match msg {
                        Out::Bytes(b) => {
                            if file.write_all(&b).is_err() {
                                break; // the client is gone; the reader sees EOF and we exit
                            }
                        }
                        Out::Flush(ack) => {
                            let _ = file.flush();
                            let _ = ack.send(());
                        }
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!("cannot start the stdout writer: {e}");
        }
        Output { tx }
    }

    /// Queues one frame whose body is `body`.
    pub fn frame(&self, body: &[u8]) {
        let mut b = format!("Content-Length: {}\r\n\r\n", body.len()).into_bytes();
        b.extend_from_slice(body);
        let _ = self.tx.send(Out::Bytes(b));
    }

    /// Waits (up to `timeout`) until everything queued so far is written.
    pub fn flush(&self, timeout: std::time::Duration) {
        let (ack, done) = std_mpsc::channel();
        if self.tx.send(Out::Flush(ack)).is_ok() {
            let _ = done.recv_timeout(timeout);
        }
    }
}

/// `AsyncWrite` for the server: the codec writes whole frames per call, which we pass on.
struct OutputWriter(Output);

impl AsyncWrite for OutputWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.0.tx.send(Out::Bytes(buf.to_vec())) {
            Ok(()) => Poll::Ready(Ok(buf.len())),
            Err(_) => Poll::Ready(Err(std::io::ErrorKind::BrokenPipe.into())),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// What the input checker saw that the session must act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputEnd {
    /// The client closed stdin.
    Eof,
    /// An `exit` notification went through.
    Exit,
}

/// Streams handed to `tower_lsp_server::Server`, plus the pieces the session keeps.
pub struct Wired {
    pub server_in: tokio::io::DuplexStream,
    pub server_out: Pin<Box<dyn AsyncWrite + Send>>,
    pub output: Output,
    pub ended: tokio::sync::oneshot::Receiver<InputEnd>,
}

/// Starts the writer thread and the input checker.
pub fn wire(io: ProtocolIo) -> Wired {
    let output = Output::start(io.output);
    let (server_in, feed) = tokio::io::duplex(256 * 1024);
    let (end_tx, ended) = tokio::sync::oneshot::channel();
    let input = tokio::fs::File::from_std(io.input);
    let out = output.clone();
    tokio::spawn(async move {
        let end = check_input(input, feed, &out).await;
        let _ = end_tx.send(end);
    });
    Wired {
        server_in,
        server_out: Box::pin(OutputWriter(output.clone())),
        output,
        ended,
    }
}

async fn check_input(
    mut input: impl AsyncRead + Unpin,
    mut feed: tokio::io::DuplexStream,
    out: &Output,
) -> InputEnd {
    let mut dec = Decoder::default();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = match input.read(&mut chunk).await {
            Ok(0) | Err(_) => return InputEnd::Eof,
            Ok(n) => n,
        };
        dec.push(&chunk[..n]);
        while let Some(item) = dec.next() {
            match item {
                Checked::Forward { body, exit } => {
                    let mut framed = format!("Content-Length: {}\r\n\r\n", body.len()).into_bytes();
                    framed.extend_from_slice(&body);
                    if feed.write_all(&framed).await.is_err() {
                        return InputEnd::Eof;
                    }
                    if exit {
                        return InputEnd::Exit;
                    }
                }
                Checked::Reply(body) => out.frame(&body),
            }
        }
    }
}

/// One decoded frame: pass it on, or answer it with an error.
#[derive(Debug, PartialEq)]
pub enum Checked {
    Forward { body: Vec<u8>, exit: bool },
    Reply(Vec<u8>),
}

/// The frame decoder: headers, `Content-Length`, body, JSON and JSON-RPC checks.
#[derive(Default)]
pub struct Decoder {
    buf: Vec<u8>,
    /// Length of the body we are waiting for (headers already consumed).
    want: Option<usize>,
}

fn error_reply(code: i64, message: &str, id: Value) -> Checked {
    let v = json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}});
    Checked::Reply(v.to_string().into_bytes())
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

impl Decoder {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Drops bytes up to the next `Content-Length` header (after the first byte).
    fn resync(&mut self) {
        let skip = find(self.buf.get(1..).unwrap_or(&[]), b"Content-Length")
            .map_or(self.buf.len(), |p| p + 1);
        self.buf.drain(..skip);
    }

    pub fn next(&mut self) -> Option<Checked> {
        loop {
            if let Some(len) = self.want {
                if self.buf.len() < len {
                    return None;
                }
                let body: Vec<u8> = self.buf.drain(..len).collect();
                self.want = None;
                return Some(check_body(body));
            }
            // Skip blank lines and whitespace between frames.
            let lead = self
                .buf
                .iter()
                .take_while(|b| b.is_ascii_whitespace())
                .count();
            self.buf.drain(..lead);
            if self.buf.is_empty() {
                return None;
            }
            let Some(end) = find(&self.buf, b"\r\n\r\n") else {
                if self.buf.len() > MAX_HEADER {
                    self.resync();
                    return Some(error_reply(
                        -32700,
                        "Parse error: no header end (\\r\\n\\r\\n) in the first 8 KiB",
                        Value::Null,
                    ));
                }
                return None;
            };
            let header = String::from_utf8_lossy(&self.buf[..end]).into_owned();
            match content_length(&header) {
                Ok(len) => {
                    self.buf.drain(..end + 4);
                    self.want = Some(len);
                }
                Err(msg) => {
                    self.buf.drain(..end + 4);
                    self.resync_if_garbage();
                    return Some(error_reply(
                        -32700,
                        &format!("Parse error: {msg}"),
                        Value::Null,
                    ));
                }
            }
        }
    }

    /// After a bad header the body (if any) follows; skip to the next header.
    fn resync_if_garbage(&mut self) {
        if !self.buf.starts_with(b"Content-Length") {
            match find(&self.buf, b"Content-Length") {
                Some(p) => {
                    self.buf.drain(..p);
                }
                None => self.buf.clear(),
            }
        }
    }
}

fn content_length(header: &str) -> Result<usize, String> {
    let mut len = None;
    for line in header.split("\r\n") {
        let Some((name, value)) = line.split_once(':') else {
            return Err(format!("bad header line {:?}", truncate(line)));
        };
        if name.trim().eq_ignore_ascii_case("content-length") {
            let v = value.trim();
            let n: usize = v
                .parse()
                .map_err(|_| format!("bad Content-Length {:?}", truncate(v)))?;
            if n > MAX_FRAME {
                return Err(format!(
                    "Content-Length {n} is over the limit of {MAX_FRAME} bytes"
                ));
            }
            len = Some(n);
        }
    }
    len.ok_or_else(|| "missing Content-Length header".to_string())
}

fn truncate(s: &str) -> String {
    noctune_studio::prefix_chars(s, 60).to_string()
}

fn readable_id(v: &Value) -> Value {
    match v.get("id") {
        Some(id @ (Value::Number(_) | Value::String(_))) => id.clone(),
        _ => Value::Null,
    }
}

fn check_body(body: Vec<u8>) -> Checked {
    let mut value: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return error_reply(
                -32700,
                &format!("Parse error: invalid JSON: {e}"),
                Value::Null,
            );
        }
    };
    if !value.is_object() {
        return error_reply(
            -32600,
            "Invalid Request: a message must be a JSON object (batches are not supported)",
            Value::Null,
        );
    }
    let is_response = value.get("method").is_none()
        && (value.get("result").is_some() || value.get("error").is_some());
    let valid = if is_response {
        serde_json::from_value::<Response>(value.clone()).is_ok()
    } else {
        serde_json::from_value::<Request>(value.clone()).is_ok()
    };
    if !valid {
        return error_reply(
            -32600,
            "Invalid Request: not a JSON-RPC 2.0 request, notification or response",
            readable_id(&value),
        );
    }
    let method = value
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    // Our own methods take an object; let clients omit it, or send null or `[]` (how Neovim
    // encodes an empty Lua table), when it would be empty.
    let empty = |p: &Value| p.is_null() || p.as_array().is_some_and(Vec::is_empty);
    if method.starts_with("noctune/") && value.get("params").is_none_or(empty) {
        value["params"] = json!({});
        return Checked::Forward {
            body: value.to_string().into_bytes(),
            exit: false,
        };
    }
    Checked::Forward {
        body,
        exit: method == "exit",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(body: &str) -> Vec<u8> {
        format!("Content-Length: {}\r\n\r\n{body}", body.len()).into_bytes()
    }

    fn all(d: &mut Decoder) -> Vec<Checked> {
        std::iter::from_fn(|| d.next()).collect()
    }

    fn code(c: &Checked) -> i64 {
        match c {
            Checked::Reply(b) => serde_json::from_slice::<Value>(b).unwrap()["error"]["code"]
                .as_i64()
                .unwrap(),
            _ => 0,
        }
    }

    #[test]
    fn good_frames_pass_in_pieces() {
        let mut d = Decoder::default();
        let f = frame(r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#);
        for b in f.chunks(3) {
            d.push(b);
        }
        let got = all(&mut d);
        assert_eq!(got.len(), 1);
        assert!(matches!(&got[0], Checked::Forward { exit: false, .. }));
    }

    #[test]
    fn bad_length_bad_json_and_bad_shape_are_answered_and_the_next_frame_still_passes() {
        let mut d = Decoder::default();
        d.push(b"Content-Length: abc\r\n\r\n{}");
        d.push(&frame("{not json"));
        d.push(&frame(r#"[1,2]"#));
        d.push(&frame(r#"{"jsonrpc":"1.0","id":7,"method":"x"}"#));
        d.push(&frame(r#"{"jsonrpc":"2.0","method":"exit"}"#));
        let got = all(&mut d);
        let codes: Vec<i64> = got.iter().map(code).collect();
        assert_eq!(codes, vec![-32700, -32700, -32600, -32600, 0], "{got:?}");
        assert!(matches!(got[4], Checked::Forward { exit: true, .. }));
        if let Checked::Reply(b) = &got[3] {
            assert_eq!(serde_json::from_slice::<Value>(b).unwrap()["id"], 7);
        }
    }

    #[test]
    fn our_methods_get_empty_params() {
        let mut d = Decoder::default();
        d.push(&frame(
            r#"{"jsonrpc":"2.0","id":2,"method":"noctune/runs/list","params":null}"#,
        ));
        match d.next() {
            Some(Checked::Forward { body, .. }) => {
                assert_eq!(
                    serde_json::from_slice::<Value>(&body).unwrap()["params"],
                    json!({})
                )
            }
            other => panic!("{other:?}"),
        }
    }
}
