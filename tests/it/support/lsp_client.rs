//! A small LSP client for tests: runs the real `noctune lsp` over stdio, frames JSON-RPC by
//! hand, answers the server's requests through a replaceable hook, and keeps every message
//! (and any byte on stdout that is not part of a frame) for assertions.

#![allow(dead_code)] // a library for several test files

use super::cli::Noctune;
use super::wait::poll_for;
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Answers a server→client request: `Some(result)` is sent back, `None` leaves it to the test.
pub type Hook = Box<dyn FnMut(&Value) -> Option<Value> + Send>;

pub struct LspClient {
    pub child: Child,
    stdin: Arc<Mutex<Option<ChildStdin>>>,
    rx: Receiver<Value>,
    backlog: VecDeque<Value>,
    /// Every message received, in order.
    pub seen: Vec<Value>,
    hook: Arc<Mutex<Hook>>,
    /// Bytes on stdout that were not a well-formed frame.
    violations: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<String>>,
    next_id: i64,
}

/// The default answers: progress tokens, showDocument and applyEdit accepted; permission
/// prompts are left to the test.
pub fn default_hook() -> Hook {
    Box::new(|req: &Value| match req["method"].as_str() {
        Some("window/workDoneProgress/create") | Some("client/registerCapability") => {
            Some(Value::Null)
        }
        Some("window/showDocument") => Some(json!({"success": true})),
        Some("workspace/applyEdit") => Some(json!({"applied": true})),
        Some("workspace/configuration") => Some(json!([])),
        _ => None,
    })
}

fn write_frame(w: &mut impl Write, v: &Value) {
    let body = v.to_string();
    let _ = write!(w, "Content-Length: {}\r\n\r\n{body}", body.len());
    let _ = w.flush();
}

/// Reads frames strictly: exactly `Content-Length: N\r\n\r\n` then N bytes of JSON.
fn read_frames(
    mut out: impl Read,
    tx: std::sync::mpsc::Sender<Value>,
    stdin: Arc<Mutex<Option<ChildStdin>>>,
    hook: Arc<Mutex<Hook>>,
    violations: Arc<Mutex<Vec<String>>>,
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        let n = match out.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        loop {
            let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                break;
            };
            let header = String::from_utf8_lossy(&buf[..end]).to_string();
            let len = header
                .strip_prefix("Content-Length: ")
                .and_then(|l| l.parse::<usize>().ok());
            let Some(len) = len else {
                violations
                    .lock()
                    .unwrap()
                    .push(format!("not a frame header: {header:?}"));
                buf.drain(..end + 4);
                continue;
            };
            if buf.len() < end + 4 + len {
                break;
            }
            let body: Vec<u8> = buf.drain(..end + 4 + len).skip(end + 4).collect();
            let v: Value = match serde_json::from_slice(&body) {
                Ok(v) => v,
                Err(e) => {
                    violations.lock().unwrap().push(format!(
                        "frame body is not JSON ({e}): {}",
                        String::from_utf8_lossy(&body)
                    ));
                    continue;
                }
            };
            if v.get("method").is_some() && v.get("id").is_some() {
                let answer = (hook.lock().unwrap())(&v);
                if let (Some(result), Some(w)) = (answer, stdin.lock().unwrap().as_mut()) {
                    write_frame(
                        w,
                        &json!({"jsonrpc": "2.0", "id": v["id"], "result": result}),
                    );
                }
            }
            if tx.send(v).is_err() {
                return;
            }
        }
    }
    if !buf.is_empty() {
        violations.lock().unwrap().push(format!(
            "trailing bytes: {:?}",
            String::from_utf8_lossy(&buf)
        ));
    }
}

impl LspClient {
    /// `noctune lsp --repo REPO` with the test's audit DB, extra args and env.
    pub fn start(nt: &Noctune, repo: &Path, args: &[&str], env: &[(&str, &str)]) -> LspClient {
        let mut cmd: Command = nt.cmd();
        cmd.arg("lsp")
            .arg("--repo")
            .arg(repo)
            .args(args)
            .current_dir(repo);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Self::spawn(cmd)
    }

    pub fn spawn(mut cmd: Command) -> LspClient {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn noctune lsp");
        let stdin = Arc::new(Mutex::new(child.stdin.take()));
        let stdout = child.stdout.take().unwrap();
        let mut stderr_pipe = child.stderr.take().unwrap();
        let (tx, rx) = channel();
        let hook: Arc<Mutex<Hook>> = Arc::new(Mutex::new(default_hook()));
        let violations = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        {
            let (stdin, hook, violations) = (stdin.clone(), hook.clone(), violations.clone());
            std::thread::spawn(move || read_frames(stdout, tx, stdin, hook, violations));
        }
        {
            let stderr = stderr.clone();
            std::thread::spawn(move || {
                let mut b = [0u8; 4096];
                while let Ok(n) = stderr_pipe.read(&mut b) {
                    if n == 0 {
                        break;
                    }
                    stderr
                        .lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&b[..n]));
                }
            });
        }
        LspClient {
            child,
            stdin,
            rx,
            backlog: VecDeque::new(),
            seen: Vec::new(),
            hook,
            violations,
            stderr,
            next_id: 0,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn violations(&self) -> Vec<String> {
        self.violations.lock().unwrap().clone()
    }

    /// Replaces the answer hook for server→client requests.
    pub fn set_hook(&mut self, hook: impl FnMut(&Value) -> Option<Value> + Send + 'static) {
        *self.hook.lock().unwrap() = Box::new(hook);
    }

    pub fn send(&mut self, v: &Value) {
        if let Some(w) = self.stdin.lock().unwrap().as_mut() {
            write_frame(w, v);
        }
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        if let Some(w) = self.stdin.lock().unwrap().as_mut() {
            w.write_all(bytes).unwrap();
            w.flush().unwrap();
        }
    }

    /// Closes the server's stdin (the editor went away).
    pub fn close_stdin(&mut self) {
        self.stdin.lock().unwrap().take();
    }

    pub fn request(&mut self, method: &str, params: Value) -> i64 {
        self.next_id += 1;
        let id = self.next_id;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        id
    }

    pub fn notify(&mut self, method: &str, params: Value) {
        self.send(&json!({"jsonrpc": "2.0", "method": method, "params": params}));
    }

    pub fn respond(&mut self, id: &Value, result: Value) {
        self.send(&json!({"jsonrpc": "2.0", "id": id, "result": result}));
    }

    fn recv(&mut self, deadline: Instant) -> Option<Value> {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.rx.recv_timeout(left) {
            Ok(v) => {
                self.seen.push(v.clone());
                Some(v)
            }
            Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => None,
        }
    }

    /// The first message (from the backlog, then the stream) matching `pred`; others stay in
    /// the backlog for later calls.
    #[track_caller]
    pub fn wait_for(&mut self, secs: u64, mut pred: impl FnMut(&Value) -> bool) -> Value {
        if let Some(i) = self.backlog.iter().position(&mut pred) {
            return self.backlog.remove(i).unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(secs);
        while let Some(v) = self.recv(deadline) {
            if pred(&v) {
                return v;
            }
            self.backlog.push_back(v);
        }
        panic!(
            "timed out after {secs}s; backlog: {:#?}\nstderr:\n{}",
            self.backlog.iter().rev().take(20).collect::<Vec<_>>(),
            self.stderr()
        );
    }

    /// Like `wait_for` but `None` on timeout.
    pub fn try_wait_for(
        &mut self,
        dur: Duration,
        mut pred: impl FnMut(&Value) -> bool,
    ) -> Option<Value> {
        if let Some(i) = self.backlog.iter().position(&mut pred) {
            return self.backlog.remove(i);
        }
        let deadline = Instant::now() + dur;
        while let Some(v) = self.recv(deadline) {
            if pred(&v) {
                return Some(v);
            }
            self.backlog.push_back(v);
        }
        None
    }

    /// Takes every backlog message matching `pred`.
    pub fn drain(&mut self, mut pred: impl FnMut(&Value) -> bool) -> Vec<Value> {
        let (hit, keep): (Vec<Value>, Vec<Value>) = self.backlog.drain(..).partition(|v| pred(v));
        self.backlog = keep.into();
        hit
    }

    /// The response to request `id` (the whole message).
    #[track_caller]
    pub fn response(&mut self, id: i64, secs: u64) -> Value {
        self.wait_for(secs, |v| v["id"] == json!(id) && v.get("method").is_none())
    }

    /// Sends a request and returns its `result`, panicking on an error response.
    #[track_caller]
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.request(method, params);
        let r = self.response(id, 120);
        assert!(
            r.get("error").is_none(),
            "{method} failed: {r:#}\nstderr:\n{}",
            self.stderr()
        );
        r["result"].clone()
    }

    /// `initialize` + `initialized` with these client capabilities.
    pub fn initialize(&mut self, root: &Path, capabilities: Value) -> Value {
        let uri = format!("file://{}", root.display());
        let result = self.call(
            "initialize",
            json!({
                "processId": std::process::id(),
                "clientInfo": {"name": "noctune-test", "version": "1"},
                "rootUri": uri,
                "workspaceFolders": [{"uri": uri, "name": "repo"}],
                "capabilities": capabilities,
            }),
        );
        self.notify("initialized", json!({}));
        result
    }

    /// `shutdown`, `exit`, and the exit status (panics if the process lingers).
    pub fn shutdown_exit(&mut self) -> ExitStatus {
        self.call("shutdown", Value::Null);
        self.notify("exit", Value::Null);
        self.wait_exit(10)
            .expect("the server did not exit within 10 s of `exit`")
    }

    /// The exit status, or `None` if the server is still running after `secs`.
    pub fn wait_exit(&mut self, secs: u64) -> Option<ExitStatus> {
        poll_for(Duration::from_secs(secs), || {
            self.child.try_wait().ok().flatten()
        })
        .ok()
    }
}

impl Drop for LspClient {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Capabilities of a full-featured editor client.
pub fn full_caps() -> Value {
    json!({
        "general": {"positionEncodings": ["utf-16"]},
        "window": {"workDoneProgress": true, "showDocument": {"support": true},
                   "showMessage": {"messageActionItem": {"additionalPropertiesSupport": false}}},
        "workspace": {"applyEdit": true, "workspaceEdit": {"documentChanges": false}},
        "textDocument": {"synchronization": {"dynamicRegistration": false}, "publishDiagnostics": {}},
    })
}

pub fn file_uri(p: &Path) -> String {
    format!("file://{}", p.display())
}

/// Descendants of `pid` (from /proc): `(pid, process group, cmdline)`.
pub fn descendants(pid: u32) -> Vec<(u32, u32, String)> {
    let mut all = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        let ppid: u32 = fields.get(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let pgrp: u32 = fields.get(2).and_then(|s| s.parse().ok()).unwrap_or(0);
        let cmd = std::fs::read_to_string(format!("/proc/{p}/cmdline"))
            .unwrap_or_default()
            .replace('\0', " ");
        all.push((p, ppid, pgrp, cmd));
    }
    let mut out = Vec::new();
    let mut frontier = vec![pid];
    while let Some(parent) = frontier.pop() {
        for (p, pp, pg, cmd) in &all {
            if *pp == parent {
                out.push((*p, *pg, cmd.clone()));
                frontier.push(*p);
            }
        }
    }
    out
}

/// The process group of `pid`.
pub fn pgrp(pid: u32) -> u32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rfind(')')
        .and_then(|i| {
            stat[i + 2..]
                .split_whitespace()
                .nth(2)
                .and_then(|s| s.parse().ok())
        })
        .unwrap_or(0)
}

pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rfind(')')
                .and_then(|i| s.get(i + 2..i + 3))
                .is_some_and(|st| st != "Z" && st != "X")
        })
        .unwrap_or(false)
}
