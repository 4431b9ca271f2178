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
