//! The `deps_bump` proposer: raises version pins in `requirements*.txt` and
//! `pyproject.toml` to the newest versions a PEP 503/691 "simple" index offers.
//!
//! Edits are textual and minimal (only the version bytes change) so the reviewer's
//! diff shows exactly the bumps and the user's formatting survives. Policy:
//! - only `==` and `~=` pins and the lower bound of `>=` are raised, within the
//!   requirement's other clauses (`Django>=4.2,<5` stays below 5);
//! - pre-releases and dev releases only when the pin already is one; yanked, local
//!   (`+cu121`) versions never; major bumps only when allowed;
//! - a project the index does not know is skipped with a warning.
//!
//! Self-contained: depends on no other crate module (callers install the rustls
//! crypto provider and build the `reqwest::Client`).

mod index;
mod pin;
mod pyproject;
mod requirements;
mod spec;
pub mod version;

use std::collections::{BTreeSet, HashMap};

use futures_util::StreamExt;

pub use index::{DEFAULT_INDEX_URL, fetch_versions};
pub use spec::normalize_name;
pub use version::{Version, VersionError, is_major_bump};

use pin::{Choice, Pin, choose};

/// How many index requests run at once: fast on big files, polite to the index.
const CONCURRENT_FETCHES: usize = 8;

/// One raised pin.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Bump {
    pub file_path: String,
    /// PEP 503-normalised project name.
    pub project: String,
    /// The version text as it was in the file.
    pub from: String,
    /// The version text written instead (a `~=` pin keeps its precision).
    pub to: String,
    pub major: bool,
}

/// The new content of one file, with the bumps that make up the difference.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DepsEdit {
    pub file_path: String,
    pub before: String,
    pub after: String,
    pub bumps: Vec<Bump>,
}

/// Something skipped that a reviewer should know about; the run goes on.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DepsWarning {
    pub file_path: String,
    /// Normalised project name; empty for a file-level problem.
    pub project: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DepsError {
    #[error("project `{project}` is not on the package index {index}")]
    UnknownProject { project: String, index: String },
    #[error(
        "cannot reach the package index {index}: {reason}; to use another index, set \
         `index_url` in the pack's proposer config"
    )]
    Network { index: String, reason: String },
    #[error(
        "the package index {index} answered HTTP {status} for `{project}`; to use another \
         index, set `index_url` in the pack's proposer config"
    )]
    Status {
        project: String,
        index: String,
        status: u16,
    },
    #[error("the package index {index} sent an unreadable page for `{project}`: {reason}")]
    BadResponse {
        project: String,
        index: String,
        reason: String,
    },
    #[error(
        "invalid package index URL `{index}`: {reason}; set `index_url` in the pack's \
         proposer config"
    )]
    InvalidIndexUrl { index: String, reason: String },
    /// A safety net: the textual edit would have changed more than versions.
    #[error("refusing the edit of {file_path}: {reason} (this is a bug in deps_bump)")]
    EditCheck { file_path: String, reason: String },
}

/// A file that `propose` understands: `pyproject.toml`, `requirements*.txt`,
/// `*-requirements.txt`/`*_requirements.txt`, or any `.txt` in a `requirements/` folder.
pub fn is_deps_file(path: &str) -> bool {
    let mut parts = path.rsplit(['/', '\\']);
    let name = parts.next().unwrap_or("");
    let parent = parts.next().unwrap_or("");
    if name == "pyproject.toml" {
        return true;
    }
    let Some(stem) = name.strip_suffix(".txt") else {
        return false;
    };
    stem.starts_with("requirements")
        || stem.ends_with("-requirements")
        || stem.ends_with("_requirements")
        || parent == "requirements"
}

/// Raises the pins in `files` ((repo-relative path, content) of every deps file in
/// scope). Files with at least one bump produce a [`DepsEdit`]; edits, bumps and
/// warnings are ordered by path, then position in the file. Each project is fetched
/// once per call. Errors only when the index itself is unusable.
pub async fn propose(
    client: &reqwest::Client,
    index_url: &str,
    allow_major: bool,
    files: &[(String, String)],
) -> Result<(Vec<DepsEdit>, Vec<DepsWarning>), DepsError> {
    let (scanned, warnings) = scan(files);
    let projects: BTreeSet<String> = (scanned.iter())
        .flat_map(|f| f.pins.iter().map(|p| p.project.clone()))
        .collect();
    let available: Available = futures_util::stream::iter(projects)
        .map(|p| async move {
            let fetched = fetch_versions(client, index_url, &p).await;
            (p, fetched)
        })
        .buffered(CONCURRENT_FETCHES)
        .collect()
        .await;
    plan(&scanned, warnings, &available, allow_major)
}

/// The index's answer per normalised project (the per-call cache).
type Available = HashMap<String, Result<Vec<Version>, DepsError>>;

/// One input file and the pins found in it.
struct Scanned<'a> {
    path: &'a str,
    content: &'a str,
    pins: Vec<Pin>,
}

/// Finds the pins of every file, sorted by path. The caller decides the scope:
/// anything not named `pyproject.toml` is read as a requirements file.
fn scan(files: &[(String, String)]) -> (Vec<Scanned<'_>>, Vec<DepsWarning>) {
    let mut warnings = Vec::new();
    let mut scanned: Vec<Scanned<'_>> = (files.iter())
        .map(|(path, content)| {
            let pins = if is_pyproject(path) {
                pyproject::find_pins(content).unwrap_or_else(|e| {
                    warnings.push(DepsWarning {
                        file_path: path.clone(),
                        project: String::new(),
                        message: format!("not valid TOML, skipped: {e}"),
                    });
                    Vec::new()
                })
            } else {
                requirements::find_pins(content)
            };
            Scanned {
                path,
                content,
                pins,
            }
        })
        .collect();
    scanned.sort_by(|a, b| a.path.cmp(b.path));
    (scanned, warnings)
}

/// Decides every pin against the index's answers and builds the edits.
fn plan(
    scanned: &[Scanned<'_>],
    mut warnings: Vec<DepsWarning>,
    available: &Available,
    allow_major: bool,
) -> Result<(Vec<DepsEdit>, Vec<DepsWarning>), DepsError> {
    let mut edits = Vec::new();
    for file in scanned {
        let path = file.path;
        let mut bumps = Vec::new();
        let mut replacements = Vec::new();
        for pin in &file.pins {
            let versions = match &available[pin.project.as_str()] {
                Ok(v) => v,
                Err(e @ (DepsError::UnknownProject { .. } | DepsError::BadResponse { .. })) => {
                    warnings.push(warn(path, pin, format!("{e}; skipped")));
                    continue;
                }
                Err(e) => return Err(e.clone()),
            };
            let from = &pin.current().text;
            let (text, major, held) = match choose(pin, versions, allow_major) {
                Choice::Keep => continue,
                Choice::HeldBack(v) => {
                    warnings.push(warn(path, pin, held_back(from, &v)));
                    continue;
                }
                Choice::Raise {
                    text,
                    major,
                    held_back,
                } => (text, major, held_back),
            };
            if pin.hashed {
                let msg = format!(
                    "{from} -> {text} is available but the line is pinned with --hash; \
                     regenerate the file with your lock tool (e.g. pip-compile)"
                );
                warnings.push(warn(path, pin, msg));
                continue;
            }
            if let Some(v) = held {
                warnings.push(warn(path, pin, held_back(from, &v)));
            }
            bumps.push(Bump {
                file_path: path.to_string(),
                project: pin.project.clone(),
                from: from.clone(),
                to: text.clone(),
                major,
            });
            replacements.push((pin, text));
        }
        if !replacements.is_empty() {
            edits.push(DepsEdit {
                file_path: path.to_string(),
                before: file.content.to_string(),
                after: apply(path, file.content, &replacements)?,
                bumps,
            });
        }
    }
    // Stable: per file, TOML problems first, then pins in file order.
    warnings.sort_by(|a, b| a.file_path.cmp(&b.file_path));
    Ok((edits, warnings))
}

fn is_pyproject(path: &str) -> bool {
    path.rsplit(['/', '\\']).next() == Some("pyproject.toml")
}

fn warn(path: &str, pin: &Pin, message: String) -> DepsWarning {
    DepsWarning {
        file_path: path.to_string(),
        project: pin.project.clone(),
        message,
    }
}

fn held_back(from: &str, newest: &Version) -> String {
    format!("{newest} is available but is a major bump from {from}; set allow_major to take it")
}

/// Splices the new version texts in (back to front, so earlier spans stay valid) and,
/// for `pyproject.toml`, proves the result differs only in those strings.
fn apply(path: &str, content: &str, replacements: &[(&Pin, String)]) -> Result<String, DepsError> {
    let mut after = content.to_string();
    let mut ordered: Vec<&(&Pin, String)> = replacements.iter().collect();
    ordered.sort_by_key(|(pin, _)| std::cmp::Reverse(pin.span.start));
    for (pin, text) in &ordered {
        after.replace_range(pin.span.clone(), text);
    }
    let entries: Vec<(&pyproject::TomlEntry, String)> = (replacements.iter())
        .filter_map(|(pin, text)| {
            let entry = pin.toml.as_ref()?;
            let start = pin.span.start - entry.inner_start;
            let end = pin.span.end - entry.inner_start;
            let value = format!("{}{text}{}", &entry.value[..start], &entry.value[end..]);
            Some((entry, value))
        })
        .collect();
    if is_pyproject(path) {
        pyproject::verify(content, &after, &entries).map_err(|reason| DepsError::EditCheck {
            file_path: path.to_string(),
            reason,
        })?;
    }
    Ok(after)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An index stand-in: project -> versions; other projects are unknown.
    fn available(index: &[(&str, &[&str])], files: &[Scanned<'_>]) -> Available {
        let mut out: Available = HashMap::new();
        for f in files {
            for pin in &f.pins {
                let found = index.iter().find(|(p, _)| *p == pin.project);
                let answer = match found {
                    Some((_, vs)) => Ok(vs.iter().map(|v| Version::parse(v).unwrap()).collect()),
                    None => Err(DepsError::UnknownProject {
                        project: pin.project.clone(),
                        index: "test-index".into(),
                    }),
                };
                out.insert(pin.project.clone(), answer);
            }
        }
        out
    }

    fn run(
        index: &[(&str, &[&str])],
        allow_major: bool,
        files: &[(&str, &str)],
    ) -> Result<(Vec<DepsEdit>, Vec<DepsWarning>), DepsError> {
        let files: Vec<(String, String)> = (files.iter())
            .map(|(p, c)| (p.to_string(), c.to_string()))
            .collect();
        let (scanned, warnings) = scan(&files);
        let avail = available(index, &scanned);
        plan(&scanned, warnings, &avail, allow_major)
    }

    const INDEX: &[(&str, &[&str])] = &[
        ("requests", &["2.31.0", "2.32.3", "2.33.0rc1", "3.0.0"]),
        ("django", &["4.2", "4.2.11", "5.0.6"]),
        ("numpy", &["1.26.0", "1.26.4", "2.0.0"]),
        ("pkg", &["1.0", "1.5"]),
        ("zope-interface", &["5.0", "5.5"]),
        ("flask", &["2.0", "2.3.3"]),
        ("split", &["3.0", "3.1"]),
        ("hashed", &["1.0", "1.1"]),
        ("beta", &["1.0b1", "1.0rc2", "1.0"]),
        ("pytest", &["8.0.0", "8.3.4"]),
        ("coverage", &["7.0", "7.6.1"]),
    ];

    #[test]
    fn rewrites_requirements_byte_for_byte() {
        let before = concat!(
            "# Pinned deps\r\n",
            "--index-url https://example.com/simple\r\n",
            "-r base.txt\r\n",
            "-e .\r\n",
            "\r\n",
            "requests==2.31.0\r\n",
            "Django>=4.2,<5   # LTS\r\n",
            "numpy ~= 1.26.0\r\n",
            "pkg[extra]==1.0 ; python_version >= \"3.8\"  # comment\r\n",
            "Zope.Interface===5.0\r\n",
            "split==\\\r\n",
            "    3.0\r\n",
            "hashed==1.0 \\\r\n",
            "    --hash=sha256:abc\r\n",
            "https://example.com/flask-2.0.tar.gz\r\n",
            "beta==1.0b1\r\n",
            "flask>=2.0",
        );
        let want = concat!(
            "# Pinned deps\r\n",
            "--index-url https://example.com/simple\r\n",
            "-r base.txt\r\n",
            "-e .\r\n",
            "\r\n",
            "requests==2.32.3\r\n",
            "Django>=4.2.11,<5   # LTS\r\n",
            "numpy ~= 1.26.4\r\n",
            "pkg[extra]==1.5 ; python_version >= \"3.8\"  # comment\r\n",
            "Zope.Interface===5.0\r\n",
            "split==\\\r\n",
            "    3.1\r\n",
            "hashed==1.0 \\\r\n",
            "    --hash=sha256:abc\r\n",
            "https://example.com/flask-2.0.tar.gz\r\n",
            "beta==1.0\r\n",
            "flask>=2.3.3",
        );
        let (edits, warnings) = run(INDEX, false, &[("requirements.txt", before)]).unwrap();
        assert_eq!(edits.len(), 1);
        assert_eq!(edits[0].before, before);
        assert_eq!(edits[0].after, want);
        let bumps: Vec<(&str, &str, &str)> = (edits[0].bumps.iter())
            .map(|b| (b.project.as_str(), b.from.as_str(), b.to.as_str()))
            .collect();
        assert_eq!(
            bumps,
            [
                ("requests", "2.31.0", "2.32.3"),
                ("django", "4.2", "4.2.11"),
                ("numpy", "1.26.0", "1.26.4"),
                ("pkg", "1.0", "1.5"),
                ("split", "3.0", "3.1"),
                ("beta", "1.0b1", "1.0"),
                ("flask", "2.0", "2.3.3"),
            ]
        );
        let projects: Vec<&str> = warnings.iter().map(|w| w.project.as_str()).collect();
        assert_eq!(projects, ["requests", "numpy", "hashed"], "{warnings:#?}");
        assert!(warnings[2].message.contains("--hash"));
    }

    #[test]
    fn rewrites_pyproject_in_place() {
        let before = r#"[build-system]
requires = ["setuptools==68.0"]

[project]
name = "demo"
dependencies = [
  "requests==2.31.0",   # keep this comment
  'numpy >= 1.26.0',
  "unknown-thing==1.0",
]

[project.optional-dependencies]
test = ["pytest==8.0.0"]

[dependency-groups]
cov = [{ include-group = "test" }, "coverage[toml]~=7.0"]
"#;
        let (edits, warnings) = run(INDEX, true, &[("sub/pyproject.toml", before)]).unwrap();
        let want = before
            .replace("2.31.0", "3.0.0")
            .replace("1.26.0", "2.0.0")
            .replace("8.0.0", "8.3.4")
            .replace("~=7.0", "~=7.6");
        assert_eq!(edits[0].after, want);
        let majors: Vec<bool> = edits[0].bumps.iter().map(|b| b.major).collect();
        assert_eq!(majors, [true, true, false, false]);
        assert_eq!(warnings.len(), 1);
        assert_eq!(warnings[0].project, "unknown-thing");
        assert!(warnings[0].message.contains("not on the package index"));
    }

    #[test]
    fn deterministic_order_and_only_changed_files() {
        let files = [
            ("z/requirements.txt", "pkg==1.0\n"),
            ("a/requirements-dev.txt", "pkg==1.5\n"),
            ("a/pyproject.toml", "[project\n"),
            ("b/requirements.txt", "pkg==1.0\nflask==2.0\n"),
        ];
        let (edits, warnings) = run(INDEX, false, &files).unwrap();
        let paths: Vec<&str> = edits.iter().map(|e| e.file_path.as_str()).collect();
        assert_eq!(paths, ["b/requirements.txt", "z/requirements.txt"]);
        assert_eq!(edits[0].after, "pkg==1.5\nflask==2.3.3\n");
        assert_eq!(warnings.len(), 1);
        assert_eq!(warnings[0].file_path, "a/pyproject.toml");
        assert!(warnings[0].message.contains("TOML"));
    }

    #[test]
    fn fatal_index_errors_abort() {
        let files = vec![("requirements.txt".to_string(), "pkg==1.0\n".to_string())];
        let (scanned, warnings) = scan(&files);
        let err = DepsError::Network {
            index: "http://127.0.0.1:9/simple/".into(),
            reason: "connection refused".into(),
        };
        let avail: Available = [("pkg".to_string(), Err(err.clone()))].into();
        assert_eq!(plan(&scanned, warnings, &avail, false), Err(err));
    }

    #[test]
    fn deps_file_names() {
        for yes in [
            "pyproject.toml",
            "svc/pyproject.toml",
            "requirements.txt",
            "requirements-dev.txt",
            "requirements_test.txt",
            "dev-requirements.txt",
            "requirements/base.txt",
            "a\\requirements.txt",
        ] {
            assert!(is_deps_file(yes), "{yes}");
        }
        for no in [
            "pyproject.toml.bak",
            "notes.txt",
            "requirements.in",
            "setup.cfg",
        ] {
            assert!(!is_deps_file(no), "{no}");
        }
    }
}
