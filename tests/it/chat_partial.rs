//! Nothing of a turn is lost when it ends without its answer: a stream broken mid-answer, a
//! server gone, a stop. The question stays in the session and what had streamed is kept with
//! the error (`Session::failed_turns`), saved before the `error` event goes out, shown again on
//! reload, never sent back to the model as an answer; a retry replaces the failed turn instead
//! of adding a second copy. Also: the hint for an unreachable model server names the profile's
//! own port, and `noctune studio` ends promptly on SIGTERM or Ctrl-C while a run it started
//! waits for approval and a chat turn waits for the model, saving that turn and leaving the
//! run's worker (a process of its own) waiting, to be decided later.

use crate::chat_turns::{ChatEnv, Turn, profile_toml, send_on};
use crate::http_support::{StudioProc, raw_request};
use crate::support::cli::Noctune;
use crate::support::llm_server::{self, Reply, Script, ScriptedLlm};
use crate::support::repo::FixtureRepo;
use crate::support::wait::{poll_for, wait_until};
use noctune_chat::agent::{ChatEvent, NoPrompter, TurnContext};
use noctune_chat::service::{ChatError, ChatService};
use noctune_chat::session::Session;
use noctune_core::ErrorCode;
use noctune_llm::{CancelToken, Role};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const QUESTION: &str = "What does shapes/render.py do?";
const PARTIAL: &str = "It renders shapes ";

/// An answer that streams `PARTIAL` (two pieces) and then loses its connection: no finish
/// chunk, no `[DONE]` (a crashed or restarted server).
fn broken_answer() -> Reply {
    // role chunk + the two content chunks, then the connection is dropped
    Reply::text(&["It renders ", "shapes ", "as text."]).cut_after(3)
}

async fn retry_on(service: &ChatService, session: &str) -> Result<Turn, ChatError> {
    let mut events = Vec::new();
    let summary = service
        .retry(
            session,
            TurnContext::default(),
            &NoPrompter,
            &mut |e| events.push(e),
            &CancelToken::new(),
        )
        .await?;
    Ok(Turn { summary, events })
}

/// The user messages of a recorded request whose content mentions `text`.
fn user_messages_with(request: &Value, text: &str) -> usize {
    request["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "user")
        .map(|m| m["content"].as_str().unwrap_or("").matches(text).count())
        .sum()
}

fn assistant_texts(request: &Value) -> Vec<String> {
    request["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "assistant")
        .map(|m| m["content"].as_str().unwrap_or("").to_string())
        .collect()
}

#[tokio::test]
async fn a_broken_stream_keeps_the_question_and_the_partial_answer_saved_before_the_error() {
    let env = ChatEnv::new(broken_answer(), "native");
    // What the session file held when the `error` event arrived.
    let seen: Arc<Mutex<Option<Value>>> = Arc::default();
    let seen_in = seen.clone();
    let file = env
        .repo
        .path()
        .join(".noctune_cache/studio_chat/sessions/s1.json");
    let mut on_event = move |ev: ChatEvent| {
        if let ChatEvent::Error { .. } = &ev {
            let saved = std::fs::read(&file)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            *seen_in.lock().unwrap() = saved;
        }
    };
    let summary = env
        .service
        .send(
            "s1",
            QUESTION,
            TurnContext::default(),
            &NoPrompter,
            &mut on_event,
            &CancelToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(summary.error_code.as_deref(), Some("stream_cut"));
    let at_error = seen
        .lock()
        .unwrap()
        .clone()
        .expect("the session was on disk when `error` arrived");
    assert_eq!(at_error["messages"][0]["content"], QUESTION, "{at_error:#}");
    assert_eq!(
        at_error["failed_turns"][0]["partial"], PARTIAL,
        "{at_error:#}"
    );

    // A new process (a reload) sees the question, the partial answer and the error.
    let mut env = env;
    env.restart();
    let s: Session = env.service.load_session("s1").unwrap();
    assert_eq!(s.messages.len(), 1, "{:?}", s.messages);
    assert_eq!(s.messages[0].role, Role::User);
    assert_eq!(s.messages[0].content.as_deref(), Some(QUESTION));
    let f = s
        .failed_last_turn()
        .expect("the last turn is marked failed");
    assert_eq!((f.user_index, f.end_index), (0, 1));
    assert_eq!(f.partial, PARTIAL);
    assert_eq!(f.error.code, "stream_cut");
    assert!(
        f.error
            .message
            .contains("ended before the answer was complete"),
        "{}",
        f.error.message
    );
    let listed = env.service.list_sessions().unwrap();
    assert!(listed[0].last_turn_failed && listed[0].messages == 1);
    // The transcript carries it too.
    let export = env.service.export_session("s1").unwrap();
    assert_eq!(export["failed_turns"][0]["partial"], PARTIAL);
}

#[tokio::test]
async fn the_next_turn_does_not_send_the_partial_answer_as_an_answer() {
    let env = ChatEnv::new([broken_answer(), Reply::text(&["Fine."])], "native");
    let turn = env.send("s1", QUESTION, &NoPrompter).await;
    assert!(turn.error().is_some());
    let turn = env.send("s1", "Go on, please.", &NoPrompter).await;
    assert!(turn.summary.error.is_none(), "{:?}", turn.events);
    let last = env.llm.last_request().unwrap();
    for text in assistant_texts(&last) {
        assert!(
            !text.contains("It renders"),
            "the partial answer went to the model as an answer: {last:#}"
        );
    }
    // The question that got no answer is still context, once.
    assert_eq!(user_messages_with(&last, QUESTION), 1, "{last:#}");
    // The failed turn stays on record; the new one completed.
    let s = env.service.load_session("s1").unwrap();
    assert_eq!(s.failed_turns.len(), 1);
    assert!(s.failed_last_turn().is_none());
    let roles: Vec<Role> = s.messages.iter().map(|m| m.role).collect();
    assert_eq!(roles, [Role::User, Role::User, Role::Assistant]);
}

#[tokio::test]
async fn a_retry_replaces_the_failed_turn_instead_of_adding_one() {
    let env = ChatEnv::new(
        [
            // A turn that completes a tool round, then breaks in the answer after it.
            Reply::tool_call("r1", "readFile", r#"{"path": "shapes/render.py"}"#),
            broken_answer(),
            Reply::text(&["It renders ", "shapes as text."]),
        ],
        "native",
    );
    let turn = env.send("s1", QUESTION, &NoPrompter).await;
    assert!(turn.error().is_some());
    let s = env.service.load_session("s1").unwrap();
    let roles: Vec<Role> = s.messages.iter().map(|m| m.role).collect();
    assert_eq!(roles, [Role::User, Role::Assistant, Role::Tool]);
    let f = s.failed_last_turn().unwrap();
    assert_eq!((f.user_index, f.end_index), (0, 3));
    assert_eq!(f.partial, PARTIAL, "only the text of the round that broke");

    let retried = retry_on(&env.service, "s1").await.unwrap();
    assert!(retried.summary.error.is_none(), "{:?}", retried.events);
    assert_eq!(retried.text(), "It renders shapes as text.");
    let sent = env.llm.last_request().unwrap();
    assert_eq!(user_messages_with(&sent, QUESTION), 1, "{sent:#}");
    assert!(
        !sent["messages"].to_string().contains("\"r1\""),
        "the failed turn's tool round was replaced, not sent again: {sent:#}"
    );
    let s = env.service.load_session("s1").unwrap();
    let roles: Vec<Role> = s.messages.iter().map(|m| m.role).collect();
    assert_eq!(roles, [Role::User, Role::Assistant], "{:?}", s.messages);
    assert_eq!(s.messages[0].content.as_deref(), Some(QUESTION));
    assert!(s.failed_turns.is_empty(), "{:?}", s.failed_turns);

    // Nothing failed now: a retry is refused, and changes nothing.
    let refused = retry_on(&env.service, "s1").await.err().expect("refused");
    assert!(
        matches!(refused, ChatError::NothingToRetry { .. }),
        "{refused}"
    );
    assert_eq!(refused.code(), ErrorCode::WrongState);
    assert_eq!(env.service.load_session("s1").unwrap(), s);
}

#[tokio::test]
async fn a_turn_whose_server_is_gone_keeps_its_question() {
    let port = free_port();
    let env = ChatEnv::new(Reply::text(&["unused"]), "auto");
    let toml = profile_toml(&format!("http://127.0.0.1:{port}/v1"), "auto", 8192);
    std::fs::write(env.repo.path().join("noctune.toml"), toml).unwrap();
    let service = ChatService::open(&env.repo.path(), None, None).unwrap();
    let turn = send_on(&service, "s1", QUESTION, &NoPrompter).await;
    assert!(turn.error().is_some());
    let s = service.load_session("s1").unwrap();
    assert_eq!(s.messages[0].content.as_deref(), Some(QUESTION));
    let f = s.failed_last_turn().unwrap();
    assert_eq!(f.error.code, "model_unreachable");
    assert_eq!(f.partial, "");
}

#[tokio::test]
async fn a_stopped_turn_keeps_its_question_and_what_had_streamed() {
    // Two pieces, then a long silence: the stop comes while the model is mid-answer.
    let env = ChatEnv::new(
        Reply::text(&["It renders ", "shapes ", "as text."]).stall_after(3, 10_000),
        "native",
    );
    let cancel = CancelToken::new();
    let seen = Arc::new(Mutex::new(String::new()));
    let seen_in = seen.clone();
    let stop = cancel.clone();
    let mut on_event = move |ev: ChatEvent| {
        if let ChatEvent::Delta { text } = ev {
            let mut s = seen_in.lock().unwrap();
            s.push_str(&text);
            if *s == PARTIAL {
                stop.cancel();
            }
        }
    };
    let summary = env
        .service
        .send(
            "s1",
            QUESTION,
            TurnContext::default(),
            &NoPrompter,
            &mut on_event,
            &cancel,
        )
        .await
        .unwrap();
    assert_eq!(summary.finish_reason.as_deref(), Some("cancelled"));
    let s = env.service.load_session("s1").unwrap();
    assert_eq!(s.messages[0].content.as_deref(), Some(QUESTION));
    let f = s.failed_last_turn().unwrap();
    assert_eq!(f.partial, PARTIAL);
    assert_eq!(f.error.code, "cancelled");
}

// ---- over HTTP, the real binary ----

/// A turn's SSE messages until `done` or `error`, as `(event, data)`.
fn sse_turn(st: &StudioProc, session: &str, body: &Value) -> Vec<(String, Value)> {
    let mut sse = st.sse_post(
        &format!("/api/chat/sessions/{session}/messages"),
        &body.to_string(),
    );
    assert_eq!(sse.status, 200);
    let mut out = Vec::new();
    while let Some(m) = sse.next(Duration::from_secs(30)) {
        let last = m.event == "done" || m.event == "error";
        out.push((m.event.clone(), m.json()));
        if last {
            break;
        }
    }
    out
}

#[test]
fn over_http_a_broken_stream_is_shown_on_reload_and_retried_in_place() {
    let repo = FixtureRepo::new("pyproj", &[]);
    let nt = Noctune::new();
    let llm = ScriptedLlm::start(
        Script::new()
            .reply(broken_answer())
            .reply(Reply::text(&["It renders ", "shapes as text."])),
    );
    let base = llm.base_url();
    let st = StudioProc::start_with(
        &nt,
        &repo.path(),
        &[
            ("NOCTUNE_STUDIO_LLM_BASE_URL", base.as_str()),
            ("NOCTUNE_STUDIO_LLM_MODEL", llm_server::MODEL),
        ],
    );
    let id = st.post_json("/api/chat/sessions", &json!({})).json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    // Retrying before anything failed is refused before any stream starts.
    let r = st.post_json(
        &format!("/api/chat/sessions/{id}/messages"),
        &json!({"retry": true}),
    );
    assert_eq!(
        (r.status, r.code()),
        (409, "wrong_state".into()),
        "{}",
        r.text()
    );
    let r = st.post_json(
        &format!("/api/chat/sessions/{id}/messages"),
        &json!({"retry": true, "message": "x"}),
    );
    assert_eq!(r.status, 400, "{}", r.text());

    let msgs = sse_turn(&st, &id, &json!({"message": QUESTION}));
    let (last, data) = msgs.last().unwrap();
    assert_eq!(last, "error", "{msgs:?}");
    assert!(data["message"].as_str().unwrap().contains("ended before"));

    let s = st.json(&format!("/api/chat/sessions/{id}"));
    assert_eq!(s["messages"].as_array().unwrap().len(), 1, "{s:#}");
    assert_eq!(s["messages"][0]["content"], QUESTION);
    assert_eq!(s["failed_turns"][0]["partial"], PARTIAL, "{s:#}");
    assert_eq!(s["failed_turns"][0]["error"]["code"], "stream_cut");
    let list = st.json("/api/chat/sessions");
    assert_eq!(list["sessions"][0]["last_turn_failed"], true, "{list:#}");

    let msgs = sse_turn(&st, &id, &json!({"retry": true}));
    assert_eq!(msgs.last().unwrap().0, "done", "{msgs:?}");
    let s = st.json(&format!("/api/chat/sessions/{id}"));
    let contents: Vec<&str> = s["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(contents, [QUESTION, "It renders shapes as text."], "{s:#}");
    assert!(s.get("failed_turns").is_none(), "{s:#}");
    assert_eq!(
        user_messages_with(&llm.last_request().unwrap(), QUESTION),
        1
    );
}

// ---- the hint for a model server that does not answer ----

fn free_port() -> u16 {
    // Bound and released: nothing listens there while the test runs (it is not 8080).
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    assert_ne!(port, 8080);
    port
}

#[tokio::test]
async fn the_unreachable_hint_names_the_profiles_port_everywhere() {
    let port = free_port();
    let toml = profile_toml(&format!("http://127.0.0.1:{port}/v1"), "auto", 8192);
    let repo = FixtureRepo::new("pyproj", &[("noctune.toml", &toml)]);
    let command = format!("llama-server -m MODEL.gguf --port {port} --jinja");

    // A chat turn (every surface shows this message as it is: terminal, web, editor).
    let service = ChatService::open(&repo.path(), None, None).unwrap();
    let turn = send_on(&service, "s1", "hello", &NoPrompter).await;
    let err = turn.error().unwrap();
    assert!(err.contains(&command), "{err}");
    assert!(err.contains("./scripts/studio.sh"), "{err}");
    assert!(!err.contains("8080"), "{err}");

    // The terminal.
    let nt = Noctune::new();
    let ran = nt.run(&["chat", "--repo", repo.path().to_str().unwrap(), "hello"]);
    assert_ne!(ran.code, 0);
    assert!(ran.stderr.contains(&command), "{}", ran.stderr);
    assert!(!ran.stderr.contains("8080"), "{}", ran.stderr);

    // The web page's banner reads the health answer.
    let st = StudioProc::start(&nt, &repo.path());
    let h = st.json("/api/chat/health");
    assert_eq!(h["ok"], false);
    assert_eq!(h["start_command"], command.as_str(), "{h:#}");
    let message = h["message"].as_str().unwrap();
    assert!(
        message.contains(&command) && !message.contains("8080"),
        "{message}"
    );
}

// ---- `noctune studio` and its signals ----

/// `noctune studio` started here (not through `StudioProc`), so the test can signal it.
struct Signalled {
    child: Child,
    port: u16,
    token: String,
}

impl Signalled {
    fn start(nt: &Noctune, repo: &Path, llm: &ScriptedLlm) -> Signalled {
        let base = llm.base_url();
        let mut child = nt
            .cmd()
            .args([
                "studio",
                "--repo",
                repo.to_str().unwrap(),
                "--port",
                "0",
                "--no-open",
            ])
            .env("NOCTUNE_STUDIO_LLM_BASE_URL", &base)
            .env("NOCTUNE_STUDIO_LLM_MODEL", llm_server::MODEL)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut out, &mut std::io::sink());
        });
        let url = line
            .trim()
            .strip_prefix("Noctune Studio: ")
            .unwrap()
            .to_string();
        let (base, token) = url.split_once("/studio?token=").unwrap();
        let port = base.rsplit(':').next().unwrap().parse().unwrap();
        Signalled {
            child,
            port,
            token: token.to_string(),
        }
    }

    fn request(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let auth = format!("Bearer {}", self.token);
        let host = format!("127.0.0.1:{}", self.port);
        let mut headers = vec![("Authorization", auth.as_str())];
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        if !body.is_empty() {
            headers.push(("Content-Type", "application/json"));
        }
        let r = raw_request(
            self.port,
            method,
            path,
            &headers,
            body.as_bytes(),
            Some(&host),
        );
        assert!(r.status < 300, "{method} {path}: {} {}", r.status, r.text());
        r.json()
    }

    /// Opens a request whose answer streams, and leaves it open.
    fn open_stream(&self, method: &str, path: &str, body: &Value) -> TcpStream {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        let body = if method == "POST" {
            body.to_string()
        } else {
            String::new()
        };
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAuthorization: Bearer {}\r\n\
             Accept: text/event-stream\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.port,
            self.token,
            body.len()
        );
        s.write_all(req.as_bytes()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut head = [0u8; 12];
        s.read_exact(&mut head).unwrap();
        assert_eq!(&head, b"HTTP/1.1 200", "{path}");
        s
    }

    /// Sends `signal` and returns how long the process took to exit, and its status.
    fn signal_and_wait(mut self, signal: i32) -> (Duration, Option<i32>) {
        let pid = self.child.id() as i32;
        let sent = Instant::now();
        // SAFETY: a signal to the child this test spawned and has not reaped.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
        let status = poll_for(Duration::from_secs(20), || self.child.try_wait().unwrap());
        let took = sent.elapsed();
        match status {
            Ok(s) => (took, s.code()),
            Err(_) => {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("noctune studio still running 20 s after signal {signal}");
            }
        }
    }
}

/// A chat turn in progress over HTTP: its request has reached the model, whose answer is
/// far away. Returns the open stream (kept open, as a browser tab would).
fn chat_turn_waiting(st: &Signalled, llm: &ScriptedLlm, session: &str) -> TcpStream {
    let before = llm.requests().len();
    let stream = st.open_stream(
        "POST",
        &format!("/api/chat/sessions/{session}/messages"),
        &json!({"message": QUESTION}),
    );
    wait_until(
        Duration::from_secs(20),
        "the chat turn's request to reach the model",
        || llm.requests().len() > before,
    );
    stream
}

fn saved_session(repo: &Path, id: &str) -> Value {
    let file = repo.join(format!(".noctune_cache/studio_chat/sessions/{id}.json"));
    serde_json::from_slice(&std::fs::read(&file).unwrap_or_default()).unwrap_or(Value::Null)
}

#[test]
fn sigterm_ends_studio_promptly_while_a_run_waits_for_approval_and_a_turn_for_the_model() {
    let repo = FixtureRepo::new("pyproj", &[]);
    let nt = Noctune::new();
    // The model thinks for a minute: the turn is mid-wait when the signal comes.
    let llm = ScriptedLlm::start(Script::new().fallback(|_| Reply::text(&["late"]).delay(60_000)));
    let st = Signalled::start(&nt, &repo.path(), &llm);
    let run = st.request("POST", "/api/runs", Some(&json!({"pack": "lint_fix"})));
    let run_id = run["run_id"].as_str().unwrap().to_string();
    nt.wait_status(&run_id, "waiting_approval", 120);
    // What a browser has open: the run page's live events and a chat turn.
    let _events = st.open_stream(
        "GET",
        &format!("/api/runs/{run_id}/events/stream"),
        &Value::Null,
    );
    let _turn = chat_turn_waiting(&st, &llm, "s-term");

    let (took, code) = st.signal_and_wait(libc::SIGTERM);
    assert!(took < Duration::from_secs(5), "exit took {took:?}");
    assert_eq!(code, Some(0));

    // The turn was ended, not cut: its question is saved, marked as stopped.
    let s = saved_session(&repo.path(), "s-term");
    assert_eq!(s["messages"][0]["content"], QUESTION, "{s:#}");
    assert_eq!(s["failed_turns"][0]["error"]["code"], "cancelled", "{s:#}");

    // The run's worker is a process of its own: it still waits for the decision, and a later
    // decision (here from the terminal) carries the run on to its end.
    let status = nt.status(&run_id);
    assert_eq!(status["status"], "waiting_approval", "{status:#}");
    assert!(
        nt.approvals(&run_id)
            .iter()
            .any(|a| a["status"] == "pending"),
        "a pending approval"
    );
    let terminal = |s: &Value| matches!(s["status"].as_str(), Some("done" | "failed" | "stopped"));
    let end = nt.wait_for(&run_id, 120, |s| {
        if terminal(s) {
            return true;
        }
        for a in nt.approvals(&run_id) {
            if a["status"] == "pending" {
                let id = a["approval_id"].as_str().unwrap();
                nt.decide(&run_id, id, "reject", "decided after Studio stopped");
            }
        }
        false
    });
    assert_eq!(end["status"], "done", "{end:#}");
}

#[test]
fn ctrl_c_ends_studio_promptly_and_saves_the_turn_in_progress() {
    let repo = FixtureRepo::new("pyproj", &[]);
    let nt = Noctune::new();
    let llm = ScriptedLlm::start(Script::new().fallback(|_| Reply::text(&["late"]).delay(60_000)));
    let st = Signalled::start(&nt, &repo.path(), &llm);
    let _turn = chat_turn_waiting(&st, &llm, "s-int");
    let (took, code) = st.signal_and_wait(libc::SIGINT);
    assert!(took < Duration::from_secs(5), "exit took {took:?}");
    assert_eq!(code, Some(0));
    let s = saved_session(&repo.path(), "s-int");
    assert_eq!(s["messages"][0]["content"], QUESTION, "{s:#}");
    assert_eq!(s["failed_turns"][0]["error"]["code"], "cancelled", "{s:#}");
}

// ---- the terminal ----

#[test]
fn the_terminal_shows_a_failed_turn_when_the_session_is_resumed_and_retries_it() {
    let llm = ScriptedLlm::start(
        Script::new()
            .reply(broken_answer())
            .reply(Reply::text(&["It renders ", "shapes as text."])),
    );
    let toml = profile_toml(&llm.base_url(), "native", 8192);
    let repo = FixtureRepo::new("pyproj", &[("noctune.toml", &toml)]);
    let root = repo.path();
    let nt = Noctune::new();
    let ran = nt.run(&[
        "chat",
        "--repo",
        root.to_str().unwrap(),
        "--session",
        "s-cli",
        QUESTION,
    ]);
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    assert!(ran.stdout.contains(PARTIAL.trim_end()), "{}", ran.stdout);
    assert!(
        ran.stderr
            .contains("/retry in `noctune chat --session s-cli` sends it again"),
        "{}",
        ran.stderr
    );

    // Resumed: the question, what had streamed and why it ended; /retry answers it.
    let mut child = nt
        .cmd()
        .args([
            "chat",
            "--repo",
            root.to_str().unwrap(),
            "--session",
            "s-cli",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"/retry\n/quit\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    for shown in [
        "the last turn ended without a complete answer",
        &format!("you: {QUESTION}"),
        &format!("partial answer: {}", PARTIAL.trim_end()),
        "stream_cut: the model server's stream ended before the answer was complete",
        "/retry sends the same message again",
    ] {
        assert!(stderr.contains(shown), "{shown:?} not in:\n{stderr}");
    }
    assert!(stdout.contains("It renders shapes as text."), "{stdout}");
    let s = saved_session(&root, "s-cli");
    let contents: Vec<&str> = s["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(contents, [QUESTION, "It renders shapes as text."], "{s:#}");
}
