//! A tiny PEP 503/691 "simple" package index on 127.0.0.1, so `deps_bump` is tested
//! over real HTTP without touching PyPI. It runs on its own thread and runtime, so
//! sync and async tests can both use it, and it records every requested path.
//!
//! Each version gets two files (a wheel and an sdist). JSON pages carry the PEP 700
//! `versions` key unless [`Options::omit_versions_key`] is used; HTML pages mark
//! yanked files with `data-yanked`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

const JSON_TYPE: &str = "application/vnd.pypi.simple.v1+json";

/// Which page format to serve.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    /// PEP 691 JSON if the `Accept` header asks for it, else PEP 503 HTML.
    #[default]
    Negotiate,
    /// Always PEP 691 JSON.
    Json,
    /// Always PEP 503 HTML (an index that predates PEP 691).
    Html,
}

#[derive(Clone, Debug, Default)]
pub struct Options {
    pub format: Format,
    /// Serve PEP 691 API 1.0 JSON (no `versions` key): clients must read file names.
    pub omit_versions_key: bool,
    /// (project, version) pairs whose files are all yanked.
    pub yanked: Vec<(String, String)>,
    /// (project, HTTP status): answer that project's page with this status.
    pub failing: Vec<(String, u16)>,
}

impl Options {
    pub fn format(mut self, format: Format) -> Self {
        self.format = format;
        self
    }

    pub fn omit_versions_key(mut self) -> Self {
        self.omit_versions_key = true;
        self
    }

    pub fn yank(mut self, project: &str, version: &str) -> Self {
        self.yanked.push((normalize(project), version.to_string()));
        self
    }

    pub fn fail(mut self, project: &str, status: u16) -> Self {
        self.failing.push((normalize(project), status));
        self
    }
}

struct Shared {
    /// normalised name -> (name as given, versions)
    projects: BTreeMap<String, (String, Vec<String>)>,
    options: Options,
    requests: Mutex<Vec<String>>,
}

pub struct PkgIndex {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl PkgIndex {
    /// An index offering `projects` (name, versions), format negotiated by `Accept`.
    pub fn start(projects: &[(&str, &[&str])]) -> PkgIndex {
        PkgIndex::start_with(projects, Options::default())
    }

    pub fn start_with(projects: &[(&str, &[&str])], options: Options) -> PkgIndex {
        let projects = (projects.iter())
            .map(|(name, versions)| {
                let versions = versions.iter().map(|v| v.to_string()).collect();
                (normalize(name), (name.to_string(), versions))
            })
            .collect();
        let shared = Arc::new(Shared {
            projects,
            options,
            requests: Mutex::new(Vec::new()),
        });
        // Bound here, so the port is known (and accepting) before `start` returns.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let state = shared.clone();
        let thread = std::thread::Builder::new()
            .name("pkg-index".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                    let app = axum::Router::new().fallback(serve).with_state(state);
                    // Not a graceful shutdown: idle keep-alive connections of a live
                    // client would keep it waiting. Dropping the runtime ends them.
                    tokio::select! {
                        _ = axum::serve(listener, app) => {}
                        _ = stopped => {}
                    }
                });
            })
            .unwrap();
        PkgIndex {
            addr,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The index base URL, `http://127.0.0.1:PORT/simple/`.
    pub fn url(&self) -> String {
        format!("http://{}/simple/", self.addr)
    }

    /// Every requested path (with query), in arrival order.
    pub fn requests(&self) -> Vec<String> {
        self.shared.requests.lock().unwrap().clone()
    }
}

impl Drop for PkgIndex {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn normalize(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !out.ends_with('-') {
                out.push('-');
            }
        } else {
            out.extend(c.to_lowercase());
        }
    }
    out
}

async fn serve(State(shared): State<Arc<Shared>>, uri: Uri, headers: HeaderMap) -> Response {
    let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    shared.requests.lock().unwrap().push(path.to_string());
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let json = match shared.options.format {
        Format::Json => true,
        Format::Html => false,
        Format::Negotiate => accept.contains(JSON_TYPE),
    };
    let Some(rest) = uri.path().strip_prefix("/simple/") else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if rest.is_empty() {
        return root_page(&shared, json);
    }
    let Some(name) = rest.strip_suffix('/').filter(|n| !n.contains('/')) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let key = normalize(name);
    if let Some((_, status)) = shared.options.failing.iter().find(|(p, _)| *p == key) {
        return StatusCode::from_u16(*status).unwrap().into_response();
    }
    if !shared.projects.contains_key(&key) {
        return StatusCode::NOT_FOUND.into_response();
    }
    if key != name {
        // PyPI redirects non-normalised names to the normalised URL.
        let to = format!("/simple/{key}/");
        return (StatusCode::MOVED_PERMANENTLY, [(header::LOCATION, to)]).into_response();
    }
    project_page(&shared, &key, json)
}

fn root_page(shared: &Shared, json: bool) -> Response {
    if json {
        let projects: Vec<_> = (shared.projects.values())
            .map(|(name, _)| serde_json::json!({ "name": name }))
            .collect();
        let body = serde_json::json!({ "meta": { "api-version": "1.1" }, "projects": projects });
        return ([(header::CONTENT_TYPE, JSON_TYPE)], body.to_string()).into_response();
    }
    let links: String = (shared.projects.keys())
        .map(|k| format!("<a href=\"/simple/{k}/\">{k}</a>\n"))
        .collect();
    html(format!(
        "<!DOCTYPE html>\n<html><body>\n{links}</body></html>\n"
    ))
}

/// (file name, yanked) for every file of the project.
fn files(shared: &Shared, key: &str) -> Vec<(String, bool)> {
    let (name, versions) = &shared.projects[key];
    let wheel_name = normalize(name).replace('-', "_");
    let mut out = Vec::new();
    for v in versions {
        let yanked = (shared.options.yanked.iter()).any(|(p, y)| p == key && y == v);
        out.push((format!("{wheel_name}-{v}-py3-none-any.whl"), yanked));
        out.push((format!("{name}-{v}.tar.gz"), yanked));
    }
    out
}

fn project_page(shared: &Shared, key: &str, json: bool) -> Response {
    let files = files(shared, key);
    if json {
        let files: Vec<_> = (files.iter())
            .map(|(f, yanked)| {
                let yanked = if *yanked {
                    serde_json::json!("broken release")
                } else {
                    false.into()
                };
                serde_json::json!({
                    "filename": f,
                    "url": format!("/files/{f}"),
                    "hashes": { "sha256": "0".repeat(64) },
                    "requires-python": ">=3.8",
                    "yanked": yanked,
                })
            })
            .collect();
        let mut body = serde_json::json!({
            "meta": { "api-version": if shared.options.omit_versions_key { "1.0" } else { "1.1" } },
            "name": key,
            "files": files,
        });
        if !shared.options.omit_versions_key {
            body["versions"] = serde_json::json!(shared.projects[key].1);
        }
        return ([(header::CONTENT_TYPE, JSON_TYPE)], body.to_string()).into_response();
    }
    let links: String = (files.iter())
        .map(|(f, yanked)| {
            let yanked = if *yanked { " data-yanked=\"broken release\"" } else { "" };
            format!(
                "<a href=\"/files/{f}#sha256={}\" data-requires-python=\"&gt;=3.8\"{yanked}>{f}</a><br/>\n",
                "0".repeat(64)
            )
        })
        .collect();
    html(format!(
        "<!DOCTYPE html>\n<html><head><meta name=\"pypi:repository-version\" content=\"1.1\"></head>\n\
         <body><h1>Links for {key}</h1>\n{links}</body></html>\n"
    ))
}

fn html(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}
