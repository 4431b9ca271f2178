//! `noctune studio` under abuse of the connection and of the URL: connections that send
//! nothing or half a request head are closed and cannot keep the token holder out (even when
//! there are more of them than the server has file descriptors); over-limit bodies are 413 on
//! every route, chunked included; a token in the URL opens a page only and the redirect stays
//! on our pages; MCP session ids stay out of the log. Plain TCP against the real binary.

use crate::http_support::{Resp, Setup, StudioProc, raw_request};
use crate::support::cli::Noctune;
use crate::support::repo::FixtureRepo;
use serde_json::json;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

/// This test process holds one socket per flood connection (2,200, next to what the other
/// tests running at the same time hold): raise its own soft open-file limit to the hard one.
fn raise_own_fd_limit() {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write the struct we own.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl), 0);
        if rl.rlim_cur < rl.rlim_max {
            rl.rlim_cur = rl.rlim_max;
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &rl), 0);
        }
    }
    assert!(
        rl.rlim_cur >= 4096,
        "this test needs an open-file limit of at least 4096 (ulimit -Hn is {})",
        rl.rlim_max
    );
}

/// The pid of the `noctune studio` child of this process serving `repo`.
fn studio_pid(repo: &Path) -> libc::pid_t {
    let me = std::process::id().to_string();
    let repo = repo.to_str().unwrap();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<libc::pid_t>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1));
        if ppid != Some(me.as_str()) {
            continue;
        }
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if args.iter().any(|a| a == "studio") && args.iter().any(|a| a == repo) {
            return pid;
        }
    }
    panic!("no `noctune studio --repo {repo}` child of this process");
}

/// Lowers the running server's open-file limit (soft and hard) to `n`.
fn limit_fds_of(pid: libc::pid_t, n: u64) {
    let rl = libc::rlimit {
        rlim_cur: n,
        rlim_max: n,
    };
    // SAFETY: prlimit reads the struct we own and writes nothing (null old limit).
    let rc = unsafe { libc::prlimit(pid, libc::RLIMIT_NOFILE, &rl, std::ptr::null_mut()) };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
}

fn connect(port: u16) -> TcpStream {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("connecting to the studio: {e}"))
}

/// Whether the server closed `s` before `deadline` (a read sees the end, or a reset).
fn closed_by(mut s: &TcpStream, deadline: Instant) -> bool {
    let mut b = [0u8; 256];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut b) {
            Ok(0) => return true,
            // An answer (e.g. 408) before the close is fine; keep reading to the end.
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false;
            }
            Err(_) => return true,
        }
    }
}

/// Reads one answer (head and a Content-Length or chunked body) off a kept-alive connection.
fn read_answer(s: &mut TcpStream, timeout: Duration) -> Option<(u16, String)> {
    s.set_read_timeout(Some(timeout)).unwrap();
    let mut raw = Vec::new();
    let mut b = [0u8; 4096];
    loop {
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
            let status = head.split(' ').nth(1)?.parse().ok()?;
            let body = &raw[end + 4..];
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok());
            let complete = match len {
                Some(n) => body.len() >= n,
                None => body.ends_with(b"0\r\n\r\n"),
            };
            if complete {
                return Some((status, String::from_utf8_lossy(body).into_owned()));
            }
        }
        match s.read(&mut b) {
            Ok(0) | Err(_) => return None,
            Ok(n) => raw.extend_from_slice(&b[..n]),
        }
    }
}

#[test]
fn idle_and_half_sent_connections_are_closed_and_cannot_keep_the_token_holder_out() {
    raise_own_fd_limit();
    let repo = FixtureRepo::new("pyproj", &[]);
    let nt = Noctune::new();
    let st = StudioProc::start(&nt, &repo.path());
    // Fewer descriptors than the flood below has connections: without a cap on connections
    // that never showed the token, the flood takes every descriptor and nothing is accepted.
    limit_fds_of(studio_pid(&repo.path()), 1500);
    let port = st.port;
    let idle: Vec<TcpStream> = (0..2000).map(|_| connect(port)).collect();
    let half_head = format!("GET /api/runs HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n");
    let opened = Instant::now();
    let partial: Vec<TcpStream> = (0..200)
        .map(|_| {
            let mut s = connect(port);
            s.write_all(half_head.as_bytes()).unwrap();
            s
        })
        .collect();

    // The token holder still gets an answer, at once.
    let started = Instant::now();
    let mut s = connect(port);
    let req = format!(
        "GET /api/runs HTTP/1.1\r\nHost: {}\r\nAuthorization: {}\r\nConnection: close\r\n\r\n",
        st.host(),
        st.bearer()
    );
    s.write_all(req.as_bytes()).unwrap();
    let answer = read_answer(&mut s, Duration::from_secs(10));
    let took = started.elapsed();
    eprintln!("the authenticated request behind the flood answered in {took:?}");
    let (status, body) = answer.expect("an answer to the authenticated request");
    assert_eq!(status, 200, "{body}");
    assert!(
        took < Duration::from_secs(2),
        "the authenticated request took {took:?} behind 2,200 idle or half-sent connections"
    );

    // The half-sent heads are dropped (5 s for a head; 15 s is the generous bound here).
    let deadline = opened + Duration::from_secs(15);
    let still_open = partial.iter().filter(|s| !closed_by(s, deadline)).count();
    assert_eq!(
        still_open, 0,
        "half-sent connections still open 15 s after they were opened"
    );
    drop(idle);
    // And the server is fine afterwards.
    assert_eq!(st.get("/api/runs").status, 200);
}

#[test]
fn a_kept_alive_connection_may_idle_but_its_next_head_must_come_in_time() {
    let s = Setup::new();
    let st = &s.studio;
    let mut c = connect(st.port);
    let req = format!(
        "GET /api/runs HTTP/1.1\r\nHost: {}\r\nAuthorization: {}\r\n\r\n",
        st.host(),
        st.bearer()
    );
    c.write_all(req.as_bytes()).unwrap();
    let (status, _) = read_answer(&mut c, Duration::from_secs(10)).expect("first answer");
    assert_eq!(status, 200);
    // A pause longer than the head timeout (5 s) but shorter than the idle timeout (30 s), on
    // purpose: an idle kept-alive connection is not a slow head.
    std::thread::sleep(Duration::from_secs(6));
    c.write_all(req.as_bytes()).unwrap();
    let (status, _) = read_answer(&mut c, Duration::from_secs(10))
        .expect("the kept-alive connection still answers after 6 s idle");
    assert_eq!(status, 200);
    // Half of the next head, then nothing: closed like a first request's.
    c.write_all(b"GET /api/runs HTTP/1.1\r\n").unwrap();
    assert!(
        closed_by(&c, Instant::now() + Duration::from_secs(15)),
        "a later request's half-sent head kept the connection open for 15 s"
    );
}

/// POSTs `total` bytes with `Transfer-Encoding: chunked` (no Content-Length), writing from
/// another thread while the answer is read, as a server may answer before the body ends.
fn chunked_post(st: &StudioProc, path: &str, headers: &[(&str, &str)], total: usize) -> Resp {
    let mut s = connect(st.port);
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: {}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n",
        st.host(),
        st.bearer()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    let mut w = s.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let chunk = vec![b' '; 64 * 1024];
        let mut sent = 0;
        while sent < total {
            let frame = [format!("{:x}\r\n", chunk.len()).as_bytes(), &chunk, b"\r\n"].concat();
            if w.write_all(&frame).is_err() {
                return;
            }
            sent += chunk.len();
        }
        let _ = w.write_all(b"0\r\n\r\n");
    });
    let (status, body) = read_answer(&mut s, Duration::from_secs(60))
        .unwrap_or_else(|| panic!("no answer to the chunked POST {path}"));
    drop(s);
    let _ = writer.join();
    Resp {
        status,
        headers: Vec::new(),
        body: body.into_bytes(),
    }
}

#[test]
fn chunked_bodies_over_the_limit_are_413_on_mcp_and_the_api() {
    let s = Setup::new();
    let st = &s.studio;
    let over = noctune_http::BODY_LIMIT * 3;
    let json_type = [("Content-Type", "application/json")];
    for (path, headers) in [
        (
            "/mcp",
            &[
                ("Content-Type", "application/json"),
                ("Accept", "application/json, text/event-stream"),
            ][..],
        ),
        ("/api/runs", &json_type[..]),
        // A route that reads no body at all still refuses one over the limit.
        ("/api/runs/20990101T000000Z-00000000/stop", &[][..]),
    ] {
        let r = chunked_post(st, path, headers, over);
        assert_eq!(r.status, 413, "chunked POST {path}: {}", r.text());
        assert_eq!(r.code(), "body_too_large", "{path}");
    }
    // Under the limit, chunked is read as usual (a bad body for this route, not 413).
    let r = chunked_post(st, "/api/runs", &json_type, 128 * 1024);
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(!s.runs_dir().exists());
    assert_eq!(st.get("/api/runs").json(), json!({"runs": []}));
}

#[test]
fn a_url_token_opens_pages_only_and_the_redirect_stays_on_our_pages() {
    let s = Setup::new();
    let st = &s.studio;
    let t = st.token.clone();
    // Not a page: refused, with a message that says where the token goes, and no cookie.
    for path in [
        format!("/api/runs?token={t}"),
        format!("/api/openapi.json?token={t}"),
        format!("/studio/assets/app.css?token={t}"),
        format!("/?token={t}"),
    ] {
        let r = st.raw("GET", &path, &[], b"");
        assert_eq!(r.status, 401, "{path}: {}", r.text());
        assert!(r.header("set-cookie").is_none(), "{path}");
        assert!(r.header("location").is_none(), "{path}");
        let msg = r.json()["message"].as_str().unwrap().to_string();
        assert!(msg.contains("page") && msg.contains("Bearer"), "{msg}");
    }
    // Request targets that are not our pages never redirect off the site.
    for target in [
        format!("//evil.example/?token={t}"),
        format!("//evil.example/studio?token={t}"),
        format!("///evil.example?token={t}"),
        format!("//studio?token={t}"),
        format!("/studio//evil.example?token={t}"),
        format!("http://evil.example/studio?token={t}"),
    ] {
        let r = raw_request(st.port, "GET", &target, &[], b"", Some(&st.host()));
        if let Some(loc) = r.header("location") {
            assert!(
                loc.starts_with('/') && !loc.starts_with("//") && !loc.contains(':'),
                "GET {target} redirects to {loc:?}"
            );
        }
        assert!(r.status != 200, "GET {target}: {}", r.status);
    }
    // The pages trade it for the cookie and drop it from the URL, keeping the rest.
    let r = st.raw("GET", &format!("/studio?token={t}&x=1"), &[], b"");
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(r.header("location"), Some("/studio?x=1"));
    let cookie = r.header("set-cookie").unwrap();
    assert!(
        cookie.starts_with(&format!("noctune_token_{}={t};", st.port)),
        "{cookie}"
    );
    let run = "20990101T000000Z-00000000";
    let r = st.raw("GET", &format!("/studio/runs/{run}?token={t}"), &[], b"");
    assert_eq!(r.status, 303);
    assert_eq!(
        r.header("location"),
        Some(format!("/studio/runs/{run}").as_str())
    );
    assert!(r.header("set-cookie").is_some());
    // A wrong token on a page is still refused.
    let r = st.raw(
        "GET",
        &format!("/studio/runs?token={}", "f".repeat(64)),
        &[],
        b"",
    );
    assert_eq!(r.status, 401);
    assert!(r.header("set-cookie").is_none());
}

#[test]
fn mcp_session_ids_are_not_logged_at_info() {
    let repo = FixtureRepo::new("pyproj", &[]);
    let nt = Noctune::new();
    let st = StudioProc::start_with(&nt, &repo.path(), &[("NOCTUNE_LOG", "info")]);
    let auth = st.bearer();
    let headers = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
        ("Accept", "application/json, text/event-stream"),
    ];
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "log-test", "version": "1"}}});
    let r = raw_request(
        st.port,
        "POST",
        "/mcp",
        &headers,
        init.to_string().as_bytes(),
        Some(&st.host()),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let sid = r
        .header("mcp-session-id")
        .expect("a session id")
        .to_string();
    let mut h = headers.to_vec();
    h.push(("Mcp-Session-Id", &sid));
    h.push(("MCP-Protocol-Version", "2025-06-18"));
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    raw_request(
        st.port,
        "POST",
        "/mcp",
        &h,
        note.to_string().as_bytes(),
        Some(&st.host()),
    );
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    let r = raw_request(
        st.port,
        "POST",
        "/mcp",
        &h,
        list.to_string().as_bytes(),
        Some(&st.host()),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let r = raw_request(st.port, "DELETE", "/mcp", &h, b"", Some(&st.host()));
    assert!(r.status < 300, "DELETE: {} {}", r.status, r.text());
    let stderr = st.stop();
    assert!(
        !stderr.contains(&sid),
        "the MCP session id is in the log at info:\n{stderr}"
    );
}
