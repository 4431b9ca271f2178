//! A client for "simple" package indexes: PEP 691 JSON when the index speaks it,
//! PEP 503 HTML otherwise (private mirrors often only do HTML).

use std::collections::HashMap;
use std::time::Duration;

use reqwest::header::{ACCEPT, CONTENT_TYPE};

use super::DepsError;
use super::spec::normalize_name;
use super::version::Version;

/// PyPI's simple index, used when the pack's proposer config sets no `index_url`.
pub const DEFAULT_INDEX_URL: &str = "https://pypi.org/simple/";

/// JSON first; HTML accepted so that PEP 503-only indexes still work.
const ACCEPT_VALUE: &str = "application/vnd.pypi.simple.v1+json, text/html;q=0.1";

/// A stuck index must not hang a run forever.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The installable (non-yanked) versions the index offers for `project`, sorted
/// ascending and de-duplicated. Pre-releases are included; the caller filters them.
pub async fn fetch_versions(
    client: &reqwest::Client,
    index_url: &str,
    project: &str,
) -> Result<Vec<Version>, DepsError> {
    let index = index_url.to_string();
    let normalized = normalize_name(project);
    let url = format!("{}/{normalized}/", index_url.trim_end_matches('/'));
    let url = reqwest::Url::parse(&url).map_err(|e| DepsError::InvalidIndexUrl {
        index: index.clone(),
        reason: e.to_string(),
    })?;
    let network = |e: reqwest::Error| DepsError::Network {
        index: index.clone(),
        reason: error_chain(&e),
    };
    let response = client
        .get(url)
        .header(ACCEPT, ACCEPT_VALUE)
        .timeout(REQUEST_TIMEOUT)
        .send()
        .await
        .map_err(network)?;
    let status = response.status();
    if status == reqwest::StatusCode::NOT_FOUND || status == reqwest::StatusCode::GONE {
        return Err(DepsError::UnknownProject {
            project: project.to_string(),
            index,
        });
    }
    if !status.is_success() {
        return Err(DepsError::Status {
            project: project.to_string(),
            index,
            status: status.as_u16(),
        });
    }
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let body = response.text().await.map_err(network)?;
    let is_json = content_type.contains("json")
        || (content_type.is_empty() && body.trim_start().starts_with('{'));
    let parsed = if is_json {
        parse_json(&body, &normalized)
    } else {
        Ok(parse_html(&body, &normalized))
    };
    parsed.map_err(|reason| DepsError::BadResponse {
        project: project.to_string(),
        index,
        reason,
    })
}

/// "error sending request: ... : connection refused": reqwest hides the useful part
/// (the cause) in the source chain.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[derive(serde::Deserialize)]
struct JsonPage {
    #[serde(default)]
    files: Vec<JsonFile>,
    /// PEP 700 (API 1.1): the authoritative version list.
    versions: Option<Vec<String>>,
}

#[derive(serde::Deserialize)]
struct JsonFile {
    filename: String,
    /// PEP 691: `false`, `true`, or a reason string (which means yanked).
    #[serde(default)]
    yanked: Option<serde_json::Value>,
}

fn parse_json(body: &str, project: &str) -> Result<Vec<Version>, String> {
    let page: JsonPage =
        serde_json::from_str(body).map_err(|e| format!("invalid PEP 691 JSON: {e}"))?;
    let files = page.files.into_iter().map(|f| {
        let yanked = match f.yanked {
            Some(serde_json::Value::Bool(b)) => b,
            Some(serde_json::Value::String(_)) => true,
            _ => false,
        };
        (f.filename, yanked)
    });
    Ok(collect_versions(files, page.versions, project))
}

/// PEP 503: one `<a href=...>filename</a>` per file; `data-yanked` marks yanked ones.
fn parse_html(body: &str, project: &str) -> Vec<Version> {
    // ASCII lowercasing keeps byte offsets, so `lower` indexes `body` too.
    let lower = body.to_ascii_lowercase();
    let mut files = Vec::new();
    let mut pos = 0;
    while let Some(found) = lower[pos..].find("<a") {
        let start = pos + found + 2;
        pos = start;
        if !lower[start..].starts_with(|c: char| c.is_ascii_whitespace() || c == '>') {
            continue;
        }
        let Some((attrs, tag_end)) = parse_attributes(body, start) else {
            break;
        };
        let text_end = lower[tag_end..]
            .find("</a")
            .map_or(body.len(), |i| tag_end + i);
        pos = text_end;
        let text = decode_entities(body[tag_end..text_end].trim());
        let filename = if text.is_empty() {
            let href = attrs.get("href").map(String::as_str).unwrap_or("");
            let path = href.split(['#', '?']).next().unwrap_or("");
            path.rsplit('/').next().unwrap_or("").to_string()
        } else {
            text
        };
        files.push((filename, attrs.contains_key("data-yanked")));
    }
    collect_versions(files.into_iter(), None, project)
}

/// Attributes of a tag whose name ended at `start`; returns them (names lowercased,
/// values entity-decoded) and the offset just past the closing `>`.
fn parse_attributes(body: &str, start: usize) -> Option<(HashMap<String, String>, usize)> {
    let b = body.as_bytes();
    let mut attrs = HashMap::new();
    let mut i = start;
    loop {
        while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b'/') {
            i += 1;
        }
        if i >= b.len() {
            return None;
        }
        if b[i] == b'>' {
            return Some((attrs, i + 1));
        }
        let name_start = i;
        while i < b.len() && !b[i].is_ascii_whitespace() && !b"=>/".contains(&b[i]) {
            i += 1;
        }
        let name = body[name_start..i].to_ascii_lowercase();
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let mut value = String::new();
        if b.get(i) == Some(&b'=') {
            i += 1;
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            let value_start;
            if let Some(&q) = b.get(i).filter(|c| **c == b'"' || **c == b'\'') {
                value_start = i + 1;
                i = value_start + body[value_start..].find(q as char)?;
                value = decode_entities(&body[value_start..i]);
                i += 1;
            } else {
                value_start = i;
                while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'>' {
                    i += 1;
                }
                value = decode_entities(&body[value_start..i]);
            }
        }
        if !name.is_empty() {
            attrs.insert(name, value);
        }
    }
}

fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&amp;", "&")
}

/// Versions with at least one non-yanked file. With a PEP 700 `versions` list, that
/// list is authoritative, minus versions whose every file is yanked.
fn collect_versions(
    files: impl Iterator<Item = (String, bool)>,
    listed: Option<Vec<String>>,
    project: &str,
) -> Vec<Version> {
    // version -> has at least one installable (non-yanked) file
    let mut installable: HashMap<Version, bool> = HashMap::new();
    for (filename, yanked) in files {
        if let Some(v) = version_from_filename(&filename, project) {
            *installable.entry(v).or_insert(false) |= !yanked;
        }
    }
    let mut versions: Vec<Version> = match listed {
        Some(listed) => listed
            .iter()
            .filter_map(|s| Version::parse(s).ok())
            .filter(|v| installable.get(v) != Some(&false))
            .collect(),
        None => (installable.into_iter())
            .filter_map(|(v, ok)| ok.then_some(v))
            .collect(),
    };
    versions.sort();
    versions.dedup();
    versions
}

const SDIST_SUFFIXES: &[&str] = &[
    ".tar.gz", ".tar.bz2", ".tar.xz", ".tar.zst", ".tgz", ".tbz", ".zip", ".tar",
];

/// The version in a distribution file name: wheels and eggs have it as the second
/// `-` field; sdists are `{name}-{version}` where old names may contain `-`, so the
/// split is chosen where the prefix normalises to the project name.
pub(crate) fn version_from_filename(filename: &str, project: &str) -> Option<Version> {
    let lower = filename.to_ascii_lowercase();
    if lower.ends_with(".whl") || lower.ends_with(".egg") {
        let stem = &filename[..filename.len() - 4];
        return stem.split('-').nth(1).and_then(|v| Version::parse(v).ok());
    }
    let suffix = SDIST_SUFFIXES.iter().find(|s| lower.ends_with(*s))?;
    let stem = &filename[..filename.len() - suffix.len()];
    let split = (stem.match_indices('-'))
        .map(|(i, _)| i)
        .find(|&i| normalize_name(&stem[..i]) == project)
        .or_else(|| stem.rfind('-'))?;
    Version::parse(&stem[split + 1..]).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strs(v: Vec<Version>) -> Vec<String> {
        v.iter().map(Version::to_string).collect()
    }

    #[test]
    fn versions_from_file_names() {
        let cases = [
            (
                "requests-2.31.0-py3-none-any.whl",
                "requests",
                Some("2.31.0"),
            ),
            ("requests-2.31.0.tar.gz", "requests", Some("2.31.0")),
            ("zope.interface-5.0.zip", "zope-interface", Some("5.0")),
            ("my-old-pkg-1.0rc1.tar.gz", "my-old-pkg", Some("1.0rc1")),
            ("foo_bar-1.0-1-py3-none-any.whl", "foo-bar", Some("1.0")),
            ("Foo-0.1-py2.7.egg", "foo", Some("0.1")),
            ("foo-1.0.exe", "foo", None),
            ("foo-notaversion.tar.gz", "foo", None),
        ];
        for (file, project, want) in cases {
            let got = version_from_filename(file, project).map(|v| v.to_string());
            assert_eq!(got.as_deref(), want, "{file}");
        }
    }

    #[test]
    fn json_skips_yanked_and_honours_versions_key() {
        let body = r#"{"meta": {"api-version": "1.1"}, "name": "x",
            "files": [
              {"filename": "x-1.0.tar.gz", "url": "u", "hashes": {}},
              {"filename": "x-1.1.tar.gz", "url": "u", "hashes": {}, "yanked": "broken"},
              {"filename": "x-1.2-py3-none-any.whl", "url": "u", "hashes": {}, "yanked": true},
              {"filename": "x-1.2.tar.gz", "url": "u", "hashes": {}, "yanked": false}
            ],
            "versions": ["1.0", "1.1", "1.2", "1.3"]}"#;
        assert_eq!(strs(parse_json(body, "x").unwrap()), ["1.0", "1.2", "1.3"]);
        let no_key = body.replace(r#""versions": ["1.0", "1.1", "1.2", "1.3"]"#, r#""x": 1"#);
        assert_eq!(strs(parse_json(&no_key, "x").unwrap()), ["1.0", "1.2"]);
        assert!(parse_json("<html>", "x").is_err());
    }

    #[test]
    fn html_anchors() {
        let body = r#"<!DOCTYPE html><html><body>
            <h1>Links for x</h1>
            <a href="../../files/x-1.0.tar.gz#sha256=00" data-requires-python="&gt;=3.8">x-1.0.tar.gz</a><br/>
            <A HREF='x-1.1.tar.gz' data-yanked>x-1.1.tar.gz</A>
            <a href="x-1.2.tar.gz" data-yanked="">x-1.2.tar.gz</a>
            <a href="/f/x-2.0-py3-none-any.whl?x=1"></a>
            <abbr>x-9.0.tar.gz</abbr>
            </body></html>"#;
        assert_eq!(strs(parse_html(body, "x")), ["1.0", "2.0"]);
    }

    #[test]
    fn network_error_names_the_index_and_the_setting() {
        let e = DepsError::Network {
            index: "https://mirror.example/simple/".into(),
            reason: "connection refused".into(),
        };
        let msg = e.to_string();
        assert!(msg.contains("https://mirror.example/simple/"), "{msg}");
        assert!(msg.contains("index_url"), "{msg}");
    }
}
