//! A proposed edit of one file, and the facts about it that risk and policy look at.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProposalSource {
    Command,
    Llm,
    DepsBump,
}

/// One edit of one file: the whole file before and after. `symbol` names what was rewritten
/// (comma-separated symbols for the llm proposer, a package list for deps_bump, empty for tools).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Proposal {
    pub file_path: String,
    pub symbol: String,
    pub before: String,
    pub after: String,
    pub source: ProposalSource,
    /// A dependency bump that crosses a major version (deps_bump only).
    #[serde(default)]
    pub major_bump: bool,
}

/// Facts that the risk score and the auto-approve verdict are computed from.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct EditFacts {
    pub lines_added: u32,
    pub lines_removed: u32,
    /// Public (not `_`-prefixed) top-level `def`/`class` names whose lines the edit changes.
    pub public_symbols_touched: u32,
    pub is_config_or_deps: bool,
    pub is_ci: bool,
    pub is_test: bool,
    pub is_binary: bool,
    pub from_llm: bool,
    /// A version bump that crosses a major version (deps_bump).
    pub major_bump: bool,
    /// Module-level names the edit removes or renames that other files of the repository
    /// import or reference, or that `__all__` lists, each with who uses it
    /// (`pkg.compat.helper is imported by pkg/api.py:3`). The engine's cross-file gate fills
    /// it in: [`EditFacts::of`] sees one file and leaves it empty.
    #[serde(default)]
    pub removed_names_used_elsewhere: Vec<String>,
}

impl EditFacts {
    pub fn lines_changed(&self) -> u32 {
        self.lines_added + self.lines_removed
    }

    pub fn of(p: &Proposal) -> EditFacts {
        use similar::{ChangeTag, TextDiff};
        let lower = p.file_path.to_ascii_lowercase();
        let name = lower.rsplit('/').next().unwrap_or(&lower);
        let is_binary = p.before.contains('\0') || p.after.contains('\0');
        let diff = TextDiff::from_lines(&p.before, &p.after);
        let (mut added, mut removed) = (0u32, 0u32);
        let mut touched_lines = Vec::new();
        for change in diff.iter_all_changes() {
            match change.tag() {
                ChangeTag::Insert => added += 1,
                ChangeTag::Delete => {
                    removed += 1;
                    if let Some(i) = change.old_index() {
                        touched_lines.push(i);
                    }
                }
                ChangeTag::Equal => {}
            }
        }
        for op in diff.ops() {
            if let similar::DiffOp::Insert { old_index, .. } = op {
                touched_lines.push(*old_index);
            }
        }
        EditFacts {
            lines_added: added,
            lines_removed: removed,
            public_symbols_touched: public_symbols_at(&p.before, &touched_lines),
            is_config_or_deps: name == "pyproject.toml"
                || name == "setup.cfg"
                || name == "setup.py"
                || name.starts_with("requirements")
                || name.ends_with(".toml")
                || name.ends_with(".cfg")
                || name.ends_with(".ini")
                || name == "noctune.toml",
            is_ci: lower.starts_with(".github/")
                || lower.contains("/.github/")
                || name == ".gitlab-ci.yml",
            is_test: name.starts_with("test_")
                || name.ends_with("_test.py")
                || lower.starts_with("tests/")
                || lower.contains("/tests/")
                || name == "conftest.py",
            is_binary,
            from_llm: p.source == ProposalSource::Llm,
            major_bump: p.major_bump,
            removed_names_used_elsewhere: Vec::new(),
        }
    }
}

/// Counts the public top-level symbols whose bodies contain one of `lines` (0-based, in `text`).
fn public_symbols_at(text: &str, lines: &[usize]) -> u32 {
    let mut owners = std::collections::BTreeSet::new();
    let all: Vec<&str> = text.lines().collect();
    for &l in lines {
        let mut i = l.min(all.len().saturating_sub(1));
        loop {
            if let Some(name) = all.get(i).and_then(|line| top_level_symbol(line)) {
                if !name.starts_with('_') {
                    owners.insert(name.to_string());
                }
                break;
            }
            if i == 0 {
                break;
            }
            i -= 1;
        }
    }
    owners.len() as u32
}

fn top_level_symbol(line: &str) -> Option<&str> {
    let rest = line
        .strip_prefix("def ")
        .or_else(|| line.strip_prefix("async def "))
        .or_else(|| line.strip_prefix("class "))?;
    let end = rest
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    Some(&rest[..end])
}

/// A unified diff of one file with 3 lines of context, `a/` and `b/` prefixes.
pub fn unified_diff(path: &str, before: &str, after: &str) -> String {
    similar::TextDiff::from_lines(before, after)
        .unified_diff()
        .context_radius(3)
        .header(&format!("a/{path}"), &format!("b/{path}"))
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prop(path: &str, before: &str, after: &str) -> Proposal {
        Proposal {
            file_path: path.into(),
            symbol: String::new(),
            before: before.into(),
            after: after.into(),
            source: ProposalSource::Command,
            major_bump: false,
        }
    }

    #[test]
    fn counts_lines_and_public_symbols() {
        let before = "import os\n\ndef api(x):\n    return x\n\ndef _private():\n    pass\n";
        let after = "import os\n\ndef api(x):\n    return x + 1\n\ndef _private():\n    return 1\n";
        let f = EditFacts::of(&prop("pkg/mod.py", before, after));
        assert_eq!((f.lines_added, f.lines_removed), (2, 2));
        assert_eq!(f.public_symbols_touched, 1);
        assert!(!f.is_test && !f.is_config_or_deps);
    }

    #[test]
    fn classifies_paths() {
        assert!(EditFacts::of(&prop("tests/test_a.py", "a\n", "b\n")).is_test);
        assert!(EditFacts::of(&prop("requirements-dev.txt", "a\n", "b\n")).is_config_or_deps);
        assert!(EditFacts::of(&prop(".github/workflows/ci.yml", "a\n", "b\n")).is_ci);
    }

    #[test]
    fn diff_has_headers() {
        let d = unified_diff("a.py", "x = 1\n", "x = 2\n");
        assert!(d.contains("--- a/a.py") && d.contains("+x = 2"), "{d}");
    }
}
