//! `deps_bump` against a real (local) simple index over HTTP: both page formats,
//! yanked and pre-release filtering, the major-bump rule, unknown projects, caching,
//! and index failures.

use noctune_deps as deps;
use noctune_deps::{DepsError, DepsWarning, Version};

use crate::support::pkg_index::{Format, Options, PkgIndex};

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().build().unwrap()
}

fn files(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(p, c)| (p.to_string(), c.to_string()))
        .collect()
}

const REQUESTS: &[&str] = &[
    "2.30.0",
    "2.31.0",
    "2.32.2",
    "2.32.3",
    "2.33.0rc1",
    "2.34.0.dev1",
    "3.0.0",
];

/// requests 2.32.3 is yanked, so the newest acceptable 2.x is 2.32.2.
fn index(options: Options) -> PkgIndex {
    PkgIndex::start_with(
        &[
            ("requests", REQUESTS),
            ("Django", &["4.2", "4.2.11", "5.0.6"]),
        ],
        options.yank("requests", "2.32.3"),
    )
}

async fn bump_requirements(idx: &PkgIndex, allow_major: bool) -> (String, Vec<DepsWarning>) {
    let input = files(&[(
        "requirements.txt",
        "requests==2.31.0\nDjango>=4.2,<5  # LTS\n",
    )]);
    let (edits, warnings) = deps::propose(&client(), &idx.url(), allow_major, &input)
        .await
        .unwrap();
    assert_eq!(edits.len(), 1);
    (edits[0].after.clone(), warnings)
}

#[tokio::test]
async fn json_index_skips_yanked_prerelease_and_major() {
    let idx = index(Options::default());
    let (after, warnings) = bump_requirements(&idx, false).await;
    assert_eq!(after, "requests==2.32.2\nDjango>=4.2.11,<5  # LTS\n");
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert_eq!(warnings[0].project, "requests");
    assert!(
        warnings[0].message.contains("3.0.0"),
        "{}",
        warnings[0].message
    );
    assert!(
        warnings[0].message.contains("allow_major"),
        "{}",
        warnings[0].message
    );
}

#[tokio::test]
async fn html_index_gives_the_same_answer() {
    let idx = index(Options::default().format(Format::Html));
    let (after, _) = bump_requirements(&idx, false).await;
    assert_eq!(after, "requests==2.32.2\nDjango>=4.2.11,<5  # LTS\n");
}

#[tokio::test]
async fn json_without_versions_key_reads_file_names() {
    let idx = index(Options::default().format(Format::Json).omit_versions_key());
    let (after, _) = bump_requirements(&idx, false).await;
    assert_eq!(after, "requests==2.32.2\nDjango>=4.2.11,<5  # LTS\n");
}

#[tokio::test]
async fn major_bump_only_when_allowed() {
    let idx = index(Options::default());
    let (after, warnings) = bump_requirements(&idx, true).await;
    // Django stays below its own `<5` bound even with majors allowed.
    assert_eq!(after, "requests==3.0.0\nDjango>=4.2.11,<5  # LTS\n");
    assert!(warnings.is_empty(), "{warnings:#?}");
    let input = files(&[("requirements.txt", "requests==2.31.0\n")]);
    let (edits, _) = deps::propose(&client(), &idx.url(), true, &input)
        .await
        .unwrap();
    let bump = &edits[0].bumps[0];
    assert_eq!(
        (bump.from.as_str(), bump.to.as_str(), bump.major),
        ("2.31.0", "3.0.0", true)
    );
}

#[tokio::test]
async fn prerelease_pin_may_move_to_newer_prerelease() {
    let idx = index(Options::default());
    let input = files(&[("requirements.txt", "requests==2.33.0a1\n")]);
    let (edits, _) = deps::propose(&client(), &idx.url(), false, &input)
        .await
        .unwrap();
    assert_eq!(edits[0].after, "requests==2.34.0.dev1\n");
}

#[tokio::test]
async fn unknown_project_warns_and_the_rest_goes_on() {
    let idx = index(Options::default());
    let input = files(&[("requirements.txt", "no-such-thing==1.0\nrequests==2.30.0\n")]);
    let (edits, warnings) = deps::propose(&client(), &idx.url(), false, &input)
        .await
        .unwrap();
    assert_eq!(edits[0].after, "no-such-thing==1.0\nrequests==2.32.2\n");
    let unknown: Vec<_> = warnings
        .iter()
        .filter(|w| w.project == "no-such-thing")
        .collect();
    assert_eq!(unknown.len(), 1, "{warnings:#?}");
    assert_eq!(unknown[0].file_path, "requirements.txt");
    assert!(
        unknown[0].message.contains(&idx.url()),
        "{}",
        unknown[0].message
    );
}

#[tokio::test]
async fn each_project_is_fetched_once_per_call_by_normalised_name() {
    let idx = index(Options::default());
    let pyproject =
        "[project]\nname = \"x\"\ndependencies = [\n  \"Requests==2.30.0\",  # note\n]\n";
    let input = files(&[
        ("svc/pyproject.toml", pyproject),
        ("requirements.txt", "requests==2.31.0\n"),
        ("requirements-dev.txt", "REQUESTS>=2.30\ndjango==4.2\n"),
    ]);
    let (edits, _) = deps::propose(&client(), &idx.url(), false, &input)
        .await
        .unwrap();
    let paths: Vec<&str> = edits.iter().map(|e| e.file_path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "requirements-dev.txt",
            "requirements.txt",
            "svc/pyproject.toml"
        ]
    );
    assert_eq!(
        edits[2].after,
        "[project]\nname = \"x\"\ndependencies = [\n  \"Requests==2.32.2\",  # note\n]\n"
    );
    let mut requested = idx.requests();
    requested.sort();
    assert_eq!(requested, ["/simple/django/", "/simple/requests/"]);
}

#[tokio::test]
async fn nothing_to_bump_gives_no_edit() {
    let idx = index(Options::default());
    let input = files(&[("requirements.txt", "requests==2.32.2\n-r other.txt\n")]);
    let (edits, _) = deps::propose(&client(), &idx.url(), false, &input)
        .await
        .unwrap();
    assert!(edits.is_empty());
}

#[tokio::test]
async fn fetch_versions_lists_installable_versions() {
    for format in [Format::Json, Format::Html] {
        let idx = index(Options::default().format(format));
        // No trailing slash and a non-normalised name still hit `/simple/requests/`.
        let base = idx.url().trim_end_matches('/').to_string();
        let got = deps::fetch_versions(&client(), &base, "Requests")
            .await
            .unwrap();
        let got: Vec<String> = got.iter().map(Version::to_string).collect();
        let want = [
            "2.30.0",
            "2.31.0",
            "2.32.2",
            "2.33.0rc1",
            "2.34.0.dev1",
            "3.0.0",
        ];
        assert_eq!(got, want, "{format:?}");
        assert_eq!(idx.requests(), ["/simple/requests/"]);
    }
}

#[tokio::test]
async fn unreachable_index_names_url_and_setting() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}/simple/");
    let input = files(&[("requirements.txt", "requests==2.31.0\n")]);
    let err = deps::propose(&client(), &url, false, &input)
        .await
        .unwrap_err();
    assert!(matches!(err, DepsError::Network { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&url), "{msg}");
    assert!(msg.contains("index_url"), "{msg}");
}

#[tokio::test]
async fn server_error_is_fatal() {
    let idx = index(Options::default().fail("django", 503));
    let input = files(&[("requirements.txt", "django==4.2\n")]);
    let err = deps::propose(&client(), &idx.url(), false, &input)
        .await
        .unwrap_err();
    assert!(
        matches!(err, DepsError::Status { status: 503, .. }),
        "{err:?}"
    );
}

#[test]
fn index_serves_both_formats_by_accept_header() {
    let idx = PkgIndex::start(&[("Foo.Bar", &["1.0"])]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (json_type, html_body, redirected) = rt.block_on(async {
        let c = client();
        let url = format!("{}foo-bar/", idx.url());
        let json = c
            .get(&url)
            .header("Accept", "application/vnd.pypi.simple.v1+json")
            .send()
            .await
            .unwrap();
        let json_type = json.headers()["content-type"].to_str().unwrap().to_string();
        let html = c.get(&url).send().await.unwrap().text().await.unwrap();
        let redirected = c
            .get(format!("{}Foo.Bar/", idx.url()))
            .send()
            .await
            .unwrap();
        (json_type, html, redirected.url().path().to_string())
    });
    assert_eq!(json_type, "application/vnd.pypi.simple.v1+json");
    assert!(html_body.contains(">Foo.Bar-1.0.tar.gz</a>"), "{html_body}");
    assert_eq!(redirected, "/simple/foo-bar/");
    assert_eq!(
        idx.requests(),
        [
            "/simple/foo-bar/",
            "/simple/foo-bar/",
            "/simple/Foo.Bar/",
            "/simple/foo-bar/"
        ]
    );
}
