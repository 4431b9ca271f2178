//! The lock on `noctune studio`: token, Host, Origin, body limits, bad input, port in use.
//! Plain HTTP against the real binary on 127.0.0.1.

use crate::http_support::{Setup, StudioProc, raw_request};
use crate::support::cli::Noctune;
use crate::support::repo::FixtureRepo;
use serde_json::json;

/// A concrete path for a route pattern.
fn concrete(path: &str) -> String {
    path.replace("{run_id}", "20990101T000000Z-00000000")
        .replace("{session_id}", "s-0000")
        .replace("{request_id}", "p-0000")
        .replace("{file}", "app.css")
        .replace("{grant}", "write")
        .replace("{id}", "x")
}

#[test]
fn no_token_is_401_on_every_route_and_unknown_paths() {
    let s = Setup::new();
    let st = &s.studio;
    let table = noctune_http::route_table();
    assert!(table.len() >= 15, "{table:?}");
    for r in &table {
        let path = concrete(r.path);
        let body: &[u8] = if r.method == "POST" {
            br#"{"pack":"lint_fix"}"#
        } else {
            b""
        };
        let resp = st.raw(
            r.method,
            &path,
            &[("Content-Type", "application/json")],
            body,
        );
        assert_eq!(
            resp.status,
            401,
            "{} {path} without a token: {}",
            r.method,
            resp.text()
        );
        assert_eq!(resp.code(), "unauthorized");
        // A wrong token is no better, by cookie or Bearer.
        let cookie = format!("noctune_token_{}={}", st.port, "0".repeat(64));
        let resp = st.raw(
            r.method,
            &path,
            &[("Cookie", &cookie), ("Authorization", "Bearer nope")],
            body,
        );
        assert_eq!(resp.status, 401, "{} {path} with a wrong token", r.method);
    }
    for path in [
        "/nope",
        "/studio/../api/runs",
        "/favicon.ico",
        "/api/openapi.json?token=wrong",
    ] {
        assert_eq!(st.raw("GET", path, &[], b"").status, 401, "{path}");
    }
    // A browser asking for a page gets a readable page, still 401.
    let page = st.raw("GET", "/studio", &[("Accept", "text/html")], b"");
    assert_eq!(page.status, 401);
    assert!(page.text().contains("noctune studio"), "{}", page.text());
    // Nothing was started by any of those POSTs.
    assert!(!s.runs_dir().exists());
}

#[test]
fn the_printed_url_trades_the_token_for_a_strict_cookie_and_bearer_works() {
    let s = Setup::new();
    let st = &s.studio;
    let path = format!("/studio?token={}&x=1", st.token);
    let r = st.raw("GET", &path, &[], b"");
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(
        r.header("location"),
        Some("/studio?x=1"),
        "the token leaves the URL"
    );
    let cookie = r.header("set-cookie").unwrap().to_string();
    assert!(
        cookie.starts_with(&format!("noctune_token_{}={}", st.port, st.token)),
        "{cookie}"
    );
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attr), "{attr} in {cookie}");
    }
    let pair = cookie.split(';').next().unwrap().to_string();
    let page = st.raw(
        "GET",
        "/studio",
        &[("Cookie", &format!("a=b; {pair}"))],
        b"",
    );
    assert_eq!(page.status, 200);
    assert!(
        page.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    let api = st.raw("GET", "/api/runs", &[("Cookie", &pair)], b"");
    assert_eq!(api.status, 200, "{}", api.text());
    let api = st.raw("GET", "/api/runs", &[("Authorization", &st.bearer())], b"");
    assert_eq!(api.status, 200);
    assert_eq!(api.json(), json!({"runs": []}));
    let lower = st.raw(
        "GET",
        "/api/runs",
        &[("Authorization", &format!("bearer {}", st.token))],
        b"",
    );
    assert_eq!(lower.status, 200, "the scheme is case-insensitive");
    // Wrong token in the URL: no cookie.
    let bad = st.raw(
        "GET",
        &format!("/studio?token={}", "f".repeat(64)),
        &[],
        b"",
    );
    assert_eq!(bad.status, 401);
    assert!(bad.header("set-cookie").is_none());
    // A token in the URL is not a way to call the API with side effects.
    let post = st.raw(
        "POST",
        &format!("/api/runs?token={}", st.token),
        &[("Content-Type", "application/json")],
        br#"{"pack":"lint_fix"}"#,
    );
    assert_eq!(post.status, 401);
    assert!(!s.runs_dir().exists());
}

#[test]
fn foreign_hosts_and_origins_are_403_with_no_side_effect() {
    let s = Setup::new();
    let st = &s.studio;
    let auth = st.bearer();
    let other_port = format!("127.0.0.1:{}", st.port.wrapping_add(1));
    for host in [
        "evil.example",
        "localhost.evil.example",
        "127.0.0.1.nip.io",
        other_port.as_str(),
        "localhost",
        "127.0.0.1",
    ] {
        let h = if host.contains(':') || host == "localhost" || host == "127.0.0.1" {
            host.to_string()
        } else {
            format!("{host}:{}", st.port)
        };
        let r = st.raw(
            "GET",
            "/api/runs",
            &[("Host", &h), ("Authorization", &auth)],
            b"",
        );
        assert_eq!(r.status, 403, "Host {h}: {}", r.text());
        assert_eq!(r.code(), "bad_host");
        let r = st.raw(
            "POST",
            "/api/runs",
            &[
                ("Host", &h),
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            br#"{"pack":"lint_fix"}"#,
        );
        assert_eq!(r.status, 403, "POST with Host {h}");
    }
    // The loopback names with our port are fine.
    for host in [
        format!("localhost:{}", st.port),
        format!("[::1]:{}", st.port),
        format!("LOCALHOST:{}", st.port),
    ] {
        let r = st.raw(
            "GET",
            "/api/runs",
            &[("Host", &host), ("Authorization", &auth)],
            b"",
        );
        assert_eq!(r.status, 200, "Host {host}");
    }
    // Two Host headers.
    let r = st.raw(
        "GET",
        "/api/runs",
        &[
            ("Host", &st.host()),
            ("Host", "evil.example"),
            ("Authorization", &auth),
        ],
        b"",
    );
    assert!(
        r.status == 403 || r.status == 400,
        "two Hosts: {}",
        r.status
    );

    let https_self = format!("https://127.0.0.1:{}", st.port);
    let other_origin = format!("http://127.0.0.1:{}", st.port.wrapping_add(1));
    for origin in [
        "http://evil.example",
        "null",
        https_self.as_str(),
        other_origin.as_str(),
        "http://localhost.evil.example",
    ] {
        let r = st.raw(
            "GET",
            "/api/runs",
            &[("Origin", origin), ("Authorization", &auth)],
            b"",
        );
        assert_eq!(r.status, 403, "Origin {origin}");
        assert_eq!(r.code(), "bad_origin");
        assert!(r.header("access-control-allow-origin").is_none());
    }
    let own = st.origin();
    let r = st.raw(
        "GET",
        "/api/runs",
        &[
            ("Origin", &own),
            ("Origin", "http://evil.example"),
            ("Authorization", &auth),
        ],
        b"",
    );
    assert_eq!(r.status, 403, "two Origin headers");
    let r = st.raw(
        "GET",
        "/api/runs",
        &[("Origin", &own), ("Authorization", &auth)],
        b"",
    );
    assert_eq!(r.status, 200, "our own origin");
    assert!(
        r.header("access-control-allow-origin").is_none(),
        "no CORS headers"
    );

    // A cross-site text/plain POST (the "simple request" a page elsewhere can send): 403, and
    // the sentinel (no run directory) stays absent.
    let r = st.raw(
        "POST",
        "/api/runs",
        &[
            ("Origin", "http://evil.example"),
            ("Sec-Fetch-Site", "cross-site"),
            ("Content-Type", "text/plain"),
            ("Cookie", &format!("noctune_token_{}={}", st.port, st.token)),
        ],
        br#"{"pack":"lint_fix"}"#,
    );
    assert_eq!(r.status, 403);
    // Even without Origin, fetch metadata from another site is refused.
    let r = st.raw(
        "POST",
        "/api/runs",
        &[
            ("Sec-Fetch-Site", "cross-site"),
            ("Content-Type", "application/json"),
            ("Authorization", &auth),
        ],
        br#"{"pack":"lint_fix"}"#,
    );
    assert_eq!(r.status, 403);
    // A same-origin text/plain POST is not JSON: 415, nothing started.
    let r = st.raw(
        "POST",
        "/api/runs",
        &[("Content-Type", "text/plain"), ("Authorization", &auth)],
        br#"{"pack":"lint_fix"}"#,
    );
    assert_eq!(r.status, 415, "{}", r.text());
    assert!(!s.runs_dir().exists(), "no run was started");

    // A cross-origin SSE request.
    let mut sse = st.sse(
        "/api/runs/20990101T000000Z-00000000/events/stream",
        &[("Origin", "http://evil.example")],
    );
    assert_eq!(sse.status, 403);
    assert!(sse.next(std::time::Duration::from_millis(300)).is_none());
}

#[test]
fn security_headers_on_pages_api_and_errors() {
    let s = Setup::new();
    let st = &s.studio;
    for (path, auth) in [
        ("/studio", true),
        ("/studio/runs", true),
        ("/api/runs", true),
        ("/api/runs", false),
        ("/studio/assets/app.css", true),
    ] {
        let r = if auth {
            st.get(path)
        } else {
            st.raw("GET", path, &[], b"")
        };
        let csp = r
            .header("content-security-policy")
            .unwrap_or_else(|| panic!("CSP on {path}"));
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(csp.contains("default-src 'self'"), "{csp}");
        assert_eq!(r.header("x-frame-options"), Some("DENY"));
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
        assert!(r.header("access-control-allow-origin").is_none());
    }
    // The pages load nothing from elsewhere.
    for page in ["/studio", "/studio/runs", "/studio/runs/x"] {
        let html = st.get(page).text();
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "{page} refers to another origin"
        );
    }
}

#[test]
fn body_limit_bad_json_and_sql_looking_values_change_nothing() {
    let s = Setup::new();
    let st = &s.studio;
    let auth = st.bearer();
    // 3 MB body.
    let big = format!(
        r#"{{"pack":"lint_fix","repo":"{}"}}"#,
        "a".repeat(3 * 1024 * 1024)
    );
    let r = st.raw(
        "POST",
        "/api/runs",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        big.as_bytes(),
    );
    assert_eq!(r.status, 413, "{}", r.text());
    assert_eq!(r.code(), "body_too_large");
    // Malformed JSON.
    for bad in [
        &b"{"[..],
        b"{\"pack\": }",
        b"[1,2",
        b"\xff\xfe",
        b"pack=lint_fix",
    ] {
        let r = st.raw(
            "POST",
            "/api/runs",
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            bad,
        );
        assert_eq!(
            r.status,
            400,
            "{:?}: {}",
            String::from_utf8_lossy(bad),
            r.text()
        );
        assert!(!r.json()["message"].as_str().unwrap().is_empty());
    }
    // Deeply nested JSON.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let r = st.raw(
        "POST",
        "/api/runs",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        deep.as_bytes(),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    let deep_obj = format!(
        r#"{{"pack":"lint_fix","profile":{}1{}}}"#,
        r#"{"a":"#.repeat(5000),
        "}".repeat(5000)
    );
    let r = st.raw(
        "POST",
        "/api/runs",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        deep_obj.as_bytes(),
    );
    assert_eq!(r.status, 400);
    // Wrong shapes.
    for body in [
        json!({}),
        json!({"pack": 5}),
        json!({"pack": "lint_fix", "extra": true}),
        json!([]),
    ] {
        let r = st.post_json("/api/runs", &body);
        assert_eq!(r.status, 400, "{body}: {}", r.text());
    }
    let r = st.post_json("/api/runs", &json!({"pack": "no_such_pack"}));
    assert_eq!(
        (r.status, r.code().as_str()),
        (400, "unknown_pack"),
        "{}",
        r.text()
    );
    assert!(
        r.json()["message"].as_str().unwrap().contains("lint_fix"),
        "names the known packs"
    );
    let r = st.post_json("/api/runs", &json!({"pack": "lint_fix", "repo": "/"}));
    assert!(r.status == 400 || r.status == 403, "{}", r.text());
    // SQL-looking filter values are plain values.
    let r = st.get("/api/runs?status=%27%20OR%201%3D1%20--");
    assert_eq!((r.status, r.code().as_str()), (400, "invalid_status"));
    let r = st.get("/api/runs?repo=x%27%20OR%20%271%27%3D%271");
    assert_eq!(r.status, 400, "{}", r.text());
    let r = st.get("/runs/x%27%20OR%201%3D1--/events_db?cursor=0");
    assert_eq!(r.status, 404);
    let r = st.get("/runs/20990101T000000Z-00000000/events_db?cursor=0%20OR%201%3D1");
    assert_eq!(r.status, 400);
    let r = st.get("/runs/20990101T000000Z-00000000/events_db?cursor=-1");
    assert_eq!(r.status, 400);
    assert!(!s.runs_dir().exists(), "bad input started nothing");
    // And the server is still fine.
    assert_eq!(st.get("/api/runs").json(), json!({"runs": []}));
}

#[test]
fn the_token_is_never_logged() {
    let repo = FixtureRepo::new("pyproj", &[]);
    let nt = Noctune::new();
    let st = StudioProc::start_with(
        &nt,
        &repo.path(),
        &[("NOCTUNE_LOG", "trace,hyper=trace,axum=trace")],
    );
    let cookie = format!("noctune_token_{}={}", st.port, st.token);
    st.raw("GET", &format!("/studio?token={}", st.token), &[], b"");
    st.raw("GET", "/api/runs", &[("Cookie", &cookie)], b"");
    st.get("/api/runs/nope");
    st.get("/api/nothing-here");
    st.raw(
        "GET",
        "/api/runs",
        &[("Host", "evil.example"), ("Authorization", &st.bearer())],
        b"",
    );
    st.raw(
        "POST",
        "/api/runs",
        &[
            ("Authorization", &st.bearer()),
            ("Content-Type", "application/json"),
        ],
        b"{bad",
    );
    let token = st.token.clone();
    let stderr = st.stop();
    assert!(
        stderr.contains("/api/runs"),
        "the log has the requests: {stderr}"
    );
    assert!(
        !stderr.contains(&token),
        "the token leaked into the log:\n{stderr}"
    );
    assert!(
        !stderr.contains(&token[..16]),
        "part of the token leaked into the log"
    );
}

#[test]
fn a_taken_port_is_a_clear_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let repo = FixtureRepo::new("pyproj", &[]);
    let nt = Noctune::new();
    let r = nt.run(&[
        "studio",
        "--repo",
        repo.path().to_str().unwrap(),
        "--port",
        &port,
        "--no-open",
    ]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains(&format!("port {port}")), "{}", r.stderr);
    assert!(r.stderr.contains("--port"), "{}", r.stderr);
    assert!(r.stdout.is_empty(), "no URL printed: {}", r.stdout);
    drop(listener);
}

#[test]
fn raw_http_without_host_is_refused() {
    let s = Setup::new();
    // HTTP/1.1 without Host is malformed (hyper answers 400); with HTTP/1.0 there may be none.
    let r = raw_request(
        s.studio.port,
        "GET",
        "/api/runs",
        &[("Authorization", &s.studio.bearer())],
        b"",
        None,
    );
    assert!(r.status == 400 || r.status == 403, "{}", r.status);
}

#[test]
fn loopback_by_default_another_address_only_with_the_flag_and_a_warning() {
    let repo = FixtureRepo::new("pyproj", &[]);
    let nt = Noctune::new();
    let st = StudioProc::start(&nt, &repo.path());
    assert!(st.url.starts_with("http://127.0.0.1:"));
    let quiet = st.stop();
    assert!(!quiet.contains("not loopback"), "{quiet}");
    // --host 0.0.0.0: a warning, the URL still names loopback, and the Host rules still hold.
    let st = StudioProc::start_full(&nt, &repo.path(), &["--host", "0.0.0.0"], &[]);
    assert!(st.url.starts_with("http://127.0.0.1:"), "{}", st.url);
    assert_eq!(st.get("/api/runs").status, 200);
    let r = st.raw(
        "GET",
        "/api/runs",
        &[
            ("Host", &format!("evil.example:{}", st.port)),
            ("Authorization", &st.bearer()),
        ],
        b"",
    );
    assert_eq!(r.status, 403);
    let stderr = st.stop();
    assert!(
        stderr.contains("not loopback") && stderr.contains("0.0.0.0"),
        "{stderr}"
    );
    // A bad address is refused by the flag's parser.
    let r = nt.run(&[
        "studio",
        "--repo",
        repo.path().to_str().unwrap(),
        "--host",
        "evil.example",
        "--no-open",
    ]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("--host"), "{}", r.stderr);
}
