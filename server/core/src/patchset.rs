//! Grouping approved edits into patchsets (one commit each).

use super::Grouping;

/// What grouping needs to know about an approved edit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInput {
    pub file_path: String,
    pub lines_changed: u32,
}

/// Groups edits into at most `max` patchsets and returns, per patchset, the indices of its
/// edits into `edits`.
///
/// Stable: the result depends only on the paths and sizes, never on input order. Groups are
/// ordered by their key (the module path); while there are more than `max`, the smallest group
/// (fewest changed lines, then the earlier key) is merged into its smaller neighbour in key
/// order, so related modules stay together.
pub fn group_into_patchsets(
    edits: &[GroupInput],
    grouping: &Grouping,
    max: usize,
) -> Vec<Vec<usize>> {
    let max = max.max(1);
    let mut keyed: std::collections::BTreeMap<String, Vec<usize>> = Default::default();
    for (i, e) in edits.iter().enumerate() {
        let key = match grouping {
            Grouping::PerFile => e.file_path.clone(),
            Grouping::PerModule { depth } => module_key(&e.file_path, *depth),
            Grouping::PerPack | Grouping::Single => String::new(),
        };
        keyed.entry(key).or_default().push(i);
    }
    let mut groups: Vec<(String, Vec<usize>)> = keyed.into_iter().collect();
    for (_, members) in groups.iter_mut() {
        members.sort_by(|a, b| edits[*a].file_path.cmp(&edits[*b].file_path).then(a.cmp(b)));
    }
    let size = |g: &(String, Vec<usize>)| -> u64 {
        g.1.iter().map(|i| edits[*i].lines_changed as u64).sum()
    };
    while groups.len() > max {
        let (smallest, _) = groups
            .iter()
            .enumerate()
            .min_by(|(_, a), (_, b)| size(a).cmp(&size(b)).then(a.0.cmp(&b.0)))
            .expect("more than one group");
        let neighbour = match (smallest.checked_sub(1), groups.get(smallest + 1)) {
            (Some(l), Some(r)) => {
                if size(&groups[l]) <= size(r) {
                    l
                } else {
                    smallest + 1
                }
            }
            (Some(l), None) => l,
            (None, _) => smallest + 1,
        };
        let (keep, drop) = (smallest.min(neighbour), smallest.max(neighbour));
        let (_, moved) = groups.remove(drop);
        groups[keep].1.extend(moved);
        let members = &mut groups[keep].1;
        members.sort_by(|a, b| edits[*a].file_path.cmp(&edits[*b].file_path).then(a.cmp(b)));
    }
    groups
        .into_iter()
        .map(|(_, m)| m)
        .filter(|m| !m.is_empty())
        .collect()
}

/// The directory prefix of `path` with at most `depth` components; top-level files group
/// under their own name's directory, the root (`""`).
fn module_key(path: &str, depth: usize) -> String {
    let parts: Vec<&str> = path.split('/').collect();
    let dirs = &parts[..parts.len().saturating_sub(1)];
    dirs[..dirs.len().min(depth)].join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(p: &str, n: u32) -> GroupInput {
        GroupInput {
            file_path: p.into(),
            lines_changed: n,
        }
    }

    fn paths(edits: &[GroupInput], groups: &[Vec<usize>]) -> Vec<Vec<String>> {
        groups
            .iter()
            .map(|g| g.iter().map(|i| edits[*i].file_path.clone()).collect())
            .collect()
    }

    #[test]
    fn per_module_groups_by_directory() {
        let edits = vec![
            e("a/x.py", 1),
            e("b/y.py", 2),
            e("a/z.py", 3),
            e("top.py", 1),
        ];
        let g = group_into_patchsets(&edits, &Grouping::PerModule { depth: 1 }, 5);
        assert_eq!(
            paths(&edits, &g),
            vec![vec!["top.py"], vec!["a/x.py", "a/z.py"], vec!["b/y.py"]]
        );
    }

    #[test]
    fn caps_at_max_by_merging_smallest_and_is_order_independent() {
        let edits: Vec<_> = (0..9).map(|i| e(&format!("f{i}.py"), i + 1)).collect();
        let g = group_into_patchsets(&edits, &Grouping::PerFile, 5);
        assert_eq!(g.len(), 5);
        let mut rev = edits.clone();
        rev.reverse();
        let g2 = group_into_patchsets(&rev, &Grouping::PerFile, 5);
        assert_eq!(paths(&edits, &g), paths(&rev, &g2));
        let all: usize = g.iter().map(|m| m.len()).sum();
        assert_eq!(all, 9);
    }

    #[test]
    fn single_and_per_pack_make_one() {
        let edits = vec![e("a.py", 1), e("b/c.py", 1)];
        assert_eq!(group_into_patchsets(&edits, &Grouping::Single, 5).len(), 1);
        assert_eq!(group_into_patchsets(&edits, &Grouping::PerPack, 5).len(), 1);
        assert!(group_into_patchsets(&[], &Grouping::PerFile, 5).is_empty());
    }
}

/// A run's planned patchsets (`state/patchsets.json`), in commit order.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct PatchsetPlan {
    pub patchsets: Vec<PlannedPatchset>,
}

/// One commit's worth of approved edits.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct PlannedPatchset {
    /// The approvals whose edits it applies.
    pub approval_ids: Vec<String>,
    /// The files it changes, relative to the repository root.
    pub files: Vec<String>,
    pub status: PatchsetStatus,
    /// The commit on the run's branch, once committed.
    pub commit_sha: Option<String>,
    /// Why it failed, when it did.
    pub reason: Option<String>,
}

/// `planned` → `committed`, or `failed` when its checks failed and it was rolled back.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum PatchsetStatus {
    /// Grouped, not committed yet.
    Planned,
    /// Applied, checked and committed (`commit_sha` says where).
    Committed,
    /// Its checks failed; it was rolled back (`reason` says why).
    Failed,
}

/// How a check came out: on the base commit (its baseline) or on a patchset.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    /// Exit status 0.
    Passed,
    /// Any other ending (a non-zero exit, a timeout).
    Failed,
    /// Nothing was checked: no tests collected (pytest's exit 5), or the tool is not installed.
    Skipped,
}

impl CheckStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Passed => "passed",
            CheckStatus::Failed => "failed",
            CheckStatus::Skipped => "skipped",
        }
    }
}

/// A test run's results by test id (pytest node ids, `tests/test_a.py::test_x`).
#[derive(
    Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct TestResults {
    pub passed: std::collections::BTreeSet<String>,
    /// Failed or errored (a collection error is one, named after its file).
    pub failing: std::collections::BTreeSet<String>,
    pub skipped: std::collections::BTreeSet<String>,
}

impl TestResults {
    fn contains(&self, id: &str) -> bool {
        self.passed.contains(id) || self.failing.contains(id) || self.skipped.contains(id)
    }
    pub fn total(&self) -> usize {
        self.passed.len() + self.failing.len() + self.skipped.len()
    }
}

/// What one run of a check showed, in the terms a regression is decided in ([`judge`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct CheckReport {
    pub status: CheckStatus,
    /// The exit status; null when it did not exit by itself (a timeout) or never started.
    pub exit_code: Option<i32>,
    /// Per-test results, for a test runner that wrote a report; null otherwise.
    pub tests: Option<TestResults>,
    /// Findings the tool printed as `path:line[:col]: message`, keyed `path: message` (line
    /// numbers left out, so an edit that only shifts lines adds none), with their counts.
    pub findings: std::collections::BTreeMap<String, usize>,
    /// One line for people: `12 passed`, `2 failing of 14`, `no tests collected`, `exit 1`.
    pub summary: String,
}

impl CheckReport {
    /// What failed in this run: failing test ids, else findings; sorted.
    pub fn failing(&self) -> Vec<String> {
        match &self.tests {
            Some(t) => t.failing.iter().cloned().collect(),
            None => self.findings.keys().cloned().collect(),
        }
    }
}

/// Whether a patchset's check result is a regression against the base commit's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckVerdict {
    /// Nothing that worked on the base commit is broken (it may fail as it does there).
    Pass,
    Regressed {
        /// Test ids or findings that are new, when the tool names them.
        regressions: Vec<String>,
        /// Why, for people.
        summary: String,
    },
}

/// The one rule for a check's result on a patchset: it fails only on a regression against the
/// base commit (`base`; `None` when no baseline could be taken, which leaves the tool's exit
/// status as the verdict).
///
/// - Tests (a test report on both sides): a test that passed on the base commit and does not
///   pass now (fails, errors, is skipped or did not run), or a failing test the base commit
///   did not have. Tests that fail on both sides are not regressions.
/// - Findings (`path:line: message` lines on either side): a finding more often than on the
///   base commit; if there are none, a check that passed on the base commit and fails now.
/// - Otherwise the exit status: a check that fails now and did not fail the same way (same
///   exit status) on the base commit.
/// - No tests collected (skipped) is a pass, unless tests passed on the base commit.
pub fn judge(base: Option<&CheckReport>, now: &CheckReport) -> CheckVerdict {
    let regressed = |regressions: Vec<String>, summary: String| CheckVerdict::Regressed {
        regressions,
        summary,
    };
    let exit = |r: &CheckReport| match r.exit_code {
        Some(c) => format!("exit {c}"),
        None => r.summary.clone(),
    };
    let Some(base) = base else {
        return match now.status {
            CheckStatus::Failed => regressed(now.failing(), now.summary.clone()),
            _ => CheckVerdict::Pass,
        };
    };
    let base_passed = base.tests.as_ref().map_or(0, |t| t.passed.len());
    match now.status {
        CheckStatus::Passed => return CheckVerdict::Pass,
        CheckStatus::Skipped if base_passed == 0 => return CheckVerdict::Pass,
        _ => {}
    }
    match (&base.tests, &now.tests) {
        (Some(b), Some(n)) => {
            let mut regs: Vec<String> = b
                .passed
                .iter()
                .filter(|id| !n.passed.contains(*id))
                .map(|id| {
                    if n.failing.contains(id) {
                        id.clone()
                    } else if n.skipped.contains(id) {
                        format!("{id} (skipped now)")
                    } else {
                        format!("{id} (did not run)")
                    }
                })
                .collect();
            regs.extend(
                n.failing
                    .iter()
                    .filter(|id| !b.contains(id))
                    .map(|id| format!("{id} (new, failing)")),
            );
            if regs.is_empty() {
                CheckVerdict::Pass
            } else {
                let summary = format!(
                    "{} {} that {} on the base commit {} now",
                    regs.len(),
                    if regs.len() == 1 { "test" } else { "tests" },
                    if regs.len() == 1 { "passes" } else { "pass" },
                    if regs.len() == 1 { "fails" } else { "fail" },
                );
                regressed(regs, summary)
            }
        }
        (Some(b), None) if !b.passed.is_empty() => regressed(
            Vec::new(),
            format!(
                "no test results now ({}), {} tests passed on the base commit",
                exit(now),
                b.passed.len()
            ),
        ),
        (_, Some(n)) => {
            let regs: Vec<String> = n.failing.iter().cloned().collect();
            if regs.is_empty() {
                // Failed with a report that names no failing test (an internal error): only
                // the exit status can tell.
                same_exit_or(base, now, &exit)
            } else {
                let summary = format!(
                    "{} failing now; the base commit has no test results",
                    regs.len()
                );
                regressed(regs, summary)
            }
        }
        _ if !base.findings.is_empty() || !now.findings.is_empty() => {
            let new: Vec<String> = now
                .findings
                .iter()
                .filter_map(|(k, n)| {
                    let before = base.findings.get(k).copied().unwrap_or(0);
                    (*n > before).then(|| {
                        if *n - before == 1 {
                            k.clone()
                        } else {
                            format!("{k} (x{})", *n - before)
                        }
                    })
                })
                .collect();
            if !new.is_empty() {
                let summary = format!(
                    "{} new {} (not on the base commit)",
                    new.len(),
                    if new.len() == 1 {
                        "finding"
                    } else {
                        "findings"
                    }
                );
                regressed(new, summary)
            } else if base.status == CheckStatus::Passed {
                regressed(
                    Vec::new(),
                    format!("{}; it passed on the base commit", exit(now)),
                )
            } else {
                CheckVerdict::Pass
            }
        }
        _ => same_exit_or(base, now, &exit),
    }
}

fn same_exit_or(
    base: &CheckReport,
    now: &CheckReport,
    exit: &dyn Fn(&CheckReport) -> String,
) -> CheckVerdict {
    if base.status == CheckStatus::Failed && base.exit_code == now.exit_code {
        CheckVerdict::Pass
    } else {
        CheckVerdict::Regressed {
            regressions: Vec::new(),
            summary: format!(
                "{}; on the base commit it {}",
                exit(now),
                match base.status {
                    CheckStatus::Passed => "passed".to_string(),
                    CheckStatus::Skipped => "checked nothing".to_string(),
                    CheckStatus::Failed => format!("ended with {}", exit(base)),
                }
            ),
        }
    }
}

/// Findings of a checker's output: lines `path:line[:col]: message` (ruff's concise format,
/// mypy, flake8, pyright's CLI) and ruff's full format (`CODE message` then ` --> path:l:c`),
/// keyed `path: message` with their counts. Summary lines (`Found 3 errors`) are not findings.
pub fn parse_findings(output: &str) -> std::collections::BTreeMap<String, usize> {
    let mut out = std::collections::BTreeMap::new();
    let mut previous = "";
    for line in output.lines() {
        let trimmed = line.trim_start();
        if let Some(loc) = trimmed.strip_prefix("--> ") {
            if let Some((path, _)) = split_location(loc.trim())
                && !previous.is_empty()
            {
                *out.entry(format!("{path}: {previous}")).or_insert(0) += 1;
            }
        } else if let Some((path, rest)) = split_location(line)
            && !rest.is_empty()
        {
            *out.entry(format!("{path}: {rest}")).or_insert(0) += 1;
        }
        if !trimmed.is_empty() && !trimmed.starts_with('|') && !trimmed.starts_with("-->") {
            previous = trimmed;
        }
    }
    out
}

/// Per-test results of a unittest-style runner run verbosely (`python -m unittest -v`,
/// Django's `tests/runtests.py -v 2`): its lines `name (dotted.id) ... ok|FAIL|ERROR|skipped
/// ...`, where a test with a docstring has the docstring's first line, and the result, on the
/// next line; and the `FAIL: name (id)` / `ERROR: name (id)` headings of its report. Ids are
/// `dotted.id` (Python 3.11+ prints the whole id in the parentheses; older versions print the
/// class, which gets the name appended). `None` when the output has no such line, so a run
/// that crashed before any test is not taken for one that ran none.
pub fn parse_unittest(output: &str) -> Option<TestResults> {
    fn test_id(line: &str) -> Option<String> {
        let (name, rest) = line.split_once(" (")?;
        let (inner, _) = rest.split_once(')')?;
        let ident = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_alphanumeric() || c == '_' || c == '.')
        };
        if !ident(name) || name.contains('.') || !ident(inner) {
            return None;
        }
        if inner.rsplit('.').next() == Some(name) {
            Some(inner.to_string())
        } else {
            Some(format!("{inner}.{name}"))
        }
    }
    let mut r = TestResults::default();
    let mut seen = false;
    let mut pending: Option<String> = None;
    for line in output.lines() {
        let line = line.trim_end();
        if let Some(heading) = line
            .strip_prefix("FAIL: ")
            .or_else(|| line.strip_prefix("ERROR: "))
        {
            if let Some(id) = test_id(heading) {
                r.passed.remove(&id);
                r.failing.insert(id);
                seen = true;
            }
            continue;
        }
        let (head, result) = match line.rsplit_once(" ... ") {
            Some((h, res)) => (h, Some(res)),
            None => (line, None),
        };
        let id = test_id(head).or_else(|| result.and(pending.clone()));
        let Some(id) = id else {
            pending = None;
            continue;
        };
        let Some(result) = result else {
            // The docstring's first line and the result follow on the next line.
            pending = Some(id);
            continue;
        };
        pending = None;
        seen = true;
        match result {
            "ok" | "expected failure" => {
                if !r.failing.contains(&id) {
                    r.passed.insert(id);
                }
            }
            "FAIL" | "ERROR" | "unexpected success" => {
                r.passed.remove(&id);
                r.failing.insert(id);
            }
            s if s.starts_with("skipped") => {
                r.skipped.insert(id);
            }
            _ => {}
        }
    }
    seen.then_some(r)
}

/// `path:line[:col][: message]` → (path, message without the numbers).
fn split_location(line: &str) -> Option<(&str, &str)> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let (path, rest) = line.split_once(':')?;
    if path.is_empty() || path.contains(char::is_whitespace) {
        return None;
    }
    let (line_no, rest) = rest.split_once(':').unwrap_or((rest, ""));
    if !digits(line_no) {
        return None;
    }
    let message = match rest.split_once(':') {
        Some((col, msg)) if digits(col) => msg,
        _ if digits(rest) => "",
        _ => rest,
    };
    Some((path, message.trim()))
}

#[cfg(test)]
mod check_tests {
    use super::*;
    use std::collections::BTreeSet;

    fn set(ids: &[&str]) -> BTreeSet<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    fn tests(status: CheckStatus, passed: &[&str], failing: &[&str]) -> CheckReport {
        CheckReport {
            status,
            exit_code: Some(match status {
                CheckStatus::Passed => 0,
                CheckStatus::Failed => 1,
                CheckStatus::Skipped => 5,
            }),
            tests: Some(TestResults {
                passed: set(passed),
                failing: set(failing),
                skipped: BTreeSet::new(),
            }),
            findings: Default::default(),
            summary: String::new(),
        }
    }

    fn exit_only(status: CheckStatus, code: i32, output: &str) -> CheckReport {
        CheckReport {
            status,
            exit_code: Some(code),
            tests: None,
            findings: parse_findings(output),
            summary: format!("exit {code}"),
        }
    }

    #[test]
    fn a_test_failing_on_both_sides_is_no_regression_a_newly_failing_one_is() {
        let base = tests(CheckStatus::Failed, &["t::a", "t::b"], &["t::flaky"]);
        let same = tests(CheckStatus::Failed, &["t::a", "t::b"], &["t::flaky"]);
        assert_eq!(judge(Some(&base), &same), CheckVerdict::Pass);
        let worse = tests(CheckStatus::Failed, &["t::a"], &["t::flaky", "t::b"]);
        match judge(Some(&base), &worse) {
            CheckVerdict::Regressed { regressions, .. } => assert_eq!(regressions, ["t::b"]),
            v => panic!("{v:?}"),
        }
        // Stopped early (-x): a test that passed on the base commit and did not run counts.
        let stopped = tests(CheckStatus::Failed, &[], &["t::flaky"]);
        match judge(Some(&base), &stopped) {
            CheckVerdict::Regressed { regressions, .. } => {
                assert_eq!(regressions, ["t::a (did not run)", "t::b (did not run)"])
            }
            v => panic!("{v:?}"),
        }
        // Without a baseline a failure is a failure.
        assert!(matches!(judge(None, &same), CheckVerdict::Regressed { .. }));
    }

    #[test]
    fn no_tests_collected_is_a_pass_unless_tests_passed_on_the_base_commit() {
        let none = tests(CheckStatus::Skipped, &[], &[]);
        assert_eq!(judge(Some(&none), &none), CheckVerdict::Pass);
        assert_eq!(judge(None, &none), CheckVerdict::Pass);
        let base = tests(CheckStatus::Passed, &["t::a"], &[]);
        assert!(matches!(
            judge(Some(&base), &none),
            CheckVerdict::Regressed { .. }
        ));
    }

    #[test]
    fn findings_are_compared_without_line_numbers() {
        let base = exit_only(
            CheckStatus::Failed,
            1,
            "a.py:3: error: Missing return  [return]\nFound 1 error in 1 file\n",
        );
        let shifted = exit_only(
            CheckStatus::Failed,
            1,
            "a.py:9: error: Missing return  [return]\nFound 1 error in 1 file\n",
        );
        assert_eq!(judge(Some(&base), &shifted), CheckVerdict::Pass);
        let more = exit_only(
            CheckStatus::Failed,
            1,
            "a.py:9: error: Missing return  [return]\nb.py:1:5: F401 `os` imported but unused\n",
        );
        match judge(Some(&base), &more) {
            CheckVerdict::Regressed { regressions, .. } => {
                assert_eq!(regressions, ["b.py: F401 `os` imported but unused"])
            }
            v => panic!("{v:?}"),
        }
        let full = parse_findings(
            "F401 [*] `os` imported but unused\n --> shapes/geometry.py:1:8\n  |\n1 | import os\n",
        );
        assert_eq!(
            full.keys().collect::<Vec<_>>(),
            ["shapes/geometry.py: F401 [*] `os` imported but unused"]
        );
    }

    #[test]
    fn without_details_the_exit_status_decides() {
        let base = exit_only(CheckStatus::Failed, 1, "no module named pytest");
        assert_eq!(
            judge(Some(&base), &exit_only(CheckStatus::Failed, 1, "")),
            CheckVerdict::Pass
        );
        assert!(matches!(
            judge(Some(&base), &exit_only(CheckStatus::Failed, 2, "")),
            CheckVerdict::Regressed { .. }
        ));
        let ok = exit_only(CheckStatus::Passed, 0, "");
        assert!(matches!(
            judge(Some(&ok), &exit_only(CheckStatus::Failed, 1, "")),
            CheckVerdict::Regressed { .. }
        ));
    }
}

#[cfg(test)]
mod unittest_tests {
    use super::*;

    #[test]
    fn a_verbose_unittest_run_is_read_per_test() {
        // As Django 5.1's tests/runtests.py -v 2 printed it (Python 3.11).
        let out = "Found 5 test(s).\n\
            test_a (utils_tests.test_text.TestUtilsText.test_a) ... ok\n\
            test_doc (template_tests.test_loaders.CachedLoaderTests.test_doc)\n\
            When a TemplateDoesNotExist instance is cached, the cached instance ... ok\n\
            test_case (template_tests.test_loaders.FileSystemLoaderTests.test_case) ... skipped 'case-insensitive'\n\
            test_perm (template_tests.test_loaders.FileSystemLoaderTests.test_perm) ... FAIL\n\
            test_old (mod.OldStyle) ... ERROR\n\
            \n\
            ======================================================================\n\
            FAIL: test_perm (template_tests.test_loaders.FileSystemLoaderTests.test_perm)\n\
            ----------------------------------------------------------------------\n\
            Traceback (most recent call last):\n\
            \x20 File \"/x/test_loaders.py\", line 226, in test_perm\n\
            ERROR: setUpClass (mod.Broken)\n\
            Ran 5 tests in 0.273s\n\
            FAILED (failures=1, errors=1, skipped=1)\n";
        let r = parse_unittest(out).expect("results");
        let ids = |s: &std::collections::BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>();
        assert_eq!(
            ids(&r.passed),
            [
                "template_tests.test_loaders.CachedLoaderTests.test_doc",
                "utils_tests.test_text.TestUtilsText.test_a"
            ]
        );
        assert_eq!(
            ids(&r.failing),
            [
                "mod.Broken.setUpClass",
                "mod.OldStyle.test_old",
                "template_tests.test_loaders.FileSystemLoaderTests.test_perm"
            ]
        );
        assert_eq!(
            ids(&r.skipped),
            ["template_tests.test_loaders.FileSystemLoaderTests.test_case"]
        );
    }

    #[test]
    fn output_without_test_lines_is_no_results() {
        assert_eq!(parse_unittest(""), None);
        assert_eq!(
            parse_unittest("Traceback (most recent call last):\nImportError: no django\n"),
            None
        );
        // ruff and mypy lines are not tests.
        assert_eq!(
            parse_unittest("pkg/a.py:1:8: F401 [*] `os` imported but unused\nFound 1 error.\n"),
            None
        );
    }

    #[test]
    fn a_test_that_passed_on_base_and_fails_now_is_a_regression() {
        let base = parse_unittest("test_a (m.T.test_a) ... ok\ntest_b (m.T.test_b) ... FAIL\n");
        let now = parse_unittest("test_a (m.T.test_a) ... ERROR\ntest_b (m.T.test_b) ... FAIL\n");
        let report = |t: Option<TestResults>| CheckReport {
            status: CheckStatus::Failed,
            exit_code: Some(1),
            tests: t,
            findings: Default::default(),
            summary: String::new(),
        };
        assert_eq!(
            judge(Some(&report(base.clone())), &report(now)),
            CheckVerdict::Regressed {
                regressions: vec!["m.T.test_a".into()],
                summary: "1 test that passes on the base commit fails now".into(),
            }
        );
        assert_eq!(
            judge(Some(&report(base.clone())), &report(base)),
            CheckVerdict::Pass,
            "failing the same way as on base"
        );
    }
}
