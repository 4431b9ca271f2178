//! Policy packs: which files a run may touch, which tools it may run, and when an edit may go
//! through without a human.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// When an edit may go through without a human.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AutoApprove {
    /// Whether the pack auto-approves at all.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Highest risk score (0-100) that may be approved without a human.
    #[serde(default = "default_max_risk")]
    pub max_risk: u8,
    /// Most changed lines (added + removed) an auto-approved edit may have.
    #[serde(default = "default_max_lines")]
    pub max_lines: u32,
    /// Auto-approval also needs a test tool that is allowed to run; the patchset is committed
    /// only if it passes.
    #[serde(default)]
    pub require_tests: bool,
}

fn yes() -> bool {
    true
}
fn default_max_risk() -> u8 {
    30
}
fn default_max_lines() -> u32 {
    20
}

impl Default for AutoApprove {
    fn default() -> Self {
        AutoApprove {
            enabled: true,
            max_risk: 30,
            max_lines: 20,
            require_tests: false,
        }
    }
}

/// How approved edits are grouped into patchsets (one commit each).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", tag = "strategy")]
pub enum Grouping {
    PerFile,
    PerModule {
        #[serde(default = "default_depth")]
        depth: usize,
    },
    PerPack,
    Single,
}

fn default_depth() -> usize {
    1
}

/// Where a pack's proposed edits come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", tag = "kind", deny_unknown_fields)]
pub enum ProposerSpec {
    /// Runs fixer tools over the worktree and harvests the diff per file.
    Command { tools: Vec<String> },
    /// Asks the profile's model to rewrite up to `max_symbols` symbols per file.
    Llm {
        instructions: String,
        #[serde(default = "default_max_symbols")]
        max_symbols: usize,
    },
    /// Raises pins in requirements*.txt and pyproject.toml to the newest versions an index has.
    DepsBump {
        #[serde(default = "default_index")]
        index_url: String,
        #[serde(default)]
        allow_major: bool,
    },
}

fn default_max_symbols() -> usize {
    3
}
pub fn default_index() -> String {
    "https://pypi.org/simple/".to_string()
}

/// A policy pack: which files a run may touch, which tools it may run, and when an edit may
/// go through without a human.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PolicyPack {
    pub name: String,
    pub allowed_globs: Vec<String>,
    pub max_diff_lines: u32,
    pub tools_allowed: Vec<String>,
    /// Tools run on each patchset before it is committed (tests, type checkers).
    pub checks: Vec<String>,
    pub auto_approve: AutoApprove,
    pub grouping: Grouping,
    pub proposer: ProposerSpec,
    pub patchset_max_commits: usize,
    pub commit_each_approval: bool,
}

impl PolicyPack {
    pub fn tool_allowed(&self, tool: &str) -> bool {
        self.tools_allowed.iter().any(|t| t == tool)
    }

    /// The built-in packs. Users override any field in their config.
    pub fn builtins() -> Vec<PolicyPack> {
        // Stubs too: the fixers rewrite them as they do sources, and a stub the pack did
        // not allow would be fixed only to be refused.
        let py = vec!["**/*.py".to_string(), "**/*.pyi".to_string()];
        vec![
            PolicyPack {
                name: "lint_fix".into(),
                allowed_globs: py.clone(),
                max_diff_lines: 400,
                tools_allowed: vec!["ruff".into(), "format".into(), "pytest".into()],
                checks: vec!["pytest".into()],
                auto_approve: AutoApprove::default(),
                grouping: Grouping::PerModule { depth: 1 },
                proposer: ProposerSpec::Command {
                    tools: vec!["ruff".into(), "format".into()],
                },
                patchset_max_commits: 5,
                commit_each_approval: false,
            },
            PolicyPack {
                name: "py_upgrade".into(),
                allowed_globs: py.clone(),
                max_diff_lines: 400,
                tools_allowed: vec!["ruff_upgrade".into(), "pytest".into()],
                checks: vec!["pytest".into()],
                auto_approve: AutoApprove::default(),
                grouping: Grouping::PerModule { depth: 1 },
                proposer: ProposerSpec::Command {
                    tools: vec!["ruff_upgrade".into()],
                },
                patchset_max_commits: 5,
                commit_each_approval: false,
            },
            PolicyPack {
                name: "typing_pass".into(),
                allowed_globs: py,
                max_diff_lines: 200,
                tools_allowed: vec!["mypy".into(), "pytest".into()],
                checks: vec!["mypy".into(), "pytest".into()],
                auto_approve: AutoApprove {
                    enabled: true,
                    max_risk: 25,
                    max_lines: 12,
                    require_tests: true,
                },
                grouping: Grouping::PerModule { depth: 1 },
                proposer: ProposerSpec::Llm {
                    instructions: "Add precise type annotations to the parameters and return \
                                   type. Do not change behaviour, names or docstrings."
                        .into(),
                    max_symbols: 3,
                },
                patchset_max_commits: 5,
                commit_each_approval: false,
            },
            PolicyPack {
                name: "deps_bump".into(),
                allowed_globs: vec![
                    "**/requirements*.txt".into(),
                    "requirements*.txt".into(),
                    "**/pyproject.toml".into(),
                    "pyproject.toml".into(),
                ],
                max_diff_lines: 200,
                tools_allowed: vec!["pytest".into()],
                checks: vec!["pytest".into()],
                auto_approve: AutoApprove {
                    enabled: false,
                    max_risk: 0,
                    max_lines: 0,
                    require_tests: true,
                },
                grouping: Grouping::PerPack,
                proposer: ProposerSpec::DepsBump {
                    index_url: default_index(),
                    allow_major: false,
                },
                patchset_max_commits: 5,
                commit_each_approval: false,
            },
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A check a pack does not allow is skipped on every patchset (typing_pass's mypy was).
    #[test]
    fn every_built_in_pack_allows_its_own_checks_and_fixers() {
        for p in PolicyPack::builtins() {
            for c in &p.checks {
                assert!(
                    p.tool_allowed(c),
                    "{}: check {c} not in tools_allowed",
                    p.name
                );
            }
            if let ProposerSpec::Command { tools } = &p.proposer {
                for t in tools {
                    assert!(
                        p.tool_allowed(t),
                        "{}: fixer {t} not in tools_allowed",
                        p.name
                    );
                }
            }
        }
    }

    #[test]
    fn the_python_packs_take_stubs_too() {
        for p in PolicyPack::builtins() {
            if matches!(p.name.as_str(), "lint_fix" | "py_upgrade" | "typing_pass") {
                assert!(
                    p.allowed_globs.contains(&"**/*.pyi".to_string()),
                    "{}",
                    p.name
                );
                assert!(
                    p.allowed_globs.contains(&"**/*.py".to_string()),
                    "{}",
                    p.name
                );
            }
        }
    }
}
