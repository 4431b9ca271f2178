//! The risk score: 0 (trivial) to 100 (must be read by a human).
//!
//! | signal | points |
//! |---|---|
//! | changed lines (added + removed) | 1 per line, at most 30 |
//! | removed lines outweigh added ones | up to 10 (removed share above one half) |
//! | public symbols touched | 8 each, at most 24 |
//! | written by a model rather than a deterministic tool | 15 |
//! | config or dependency file (`pyproject.toml`, `requirements*.txt`, `*.cfg`, ...) | 25 |
//! | a major-version dependency bump | 25 |
//! | CI configuration (`.github/`, ...) | 40 |
//! | test file (an edit there can hide a failure) | 10 |
//! | binary content | 100 |
//! | removes module-level names other files use (or `__all__` lists) | 50 |
//!
//! The sum is capped at 100. With the built-in `max_risk = 30`, a formatting fix of a few
//! lines in one private helper passes, a model's rewrite of a public function does not. An
//! edit that removes names other files use is never auto-approved whatever the score
//! ([`crate::police`] says so); its 50 points put it above every built-in `max_risk` anyway.

use super::EditFacts;

pub fn risk_score(f: &EditFacts) -> u8 {
    if f.is_binary {
        return 100;
    }
    let changed = f.lines_changed();
    let mut score = changed.min(30);
    if changed > 0 && f.lines_removed * 2 > changed {
        let removed_share = f.lines_removed as f64 / changed as f64; // in (0.5, 1]
        score += ((removed_share - 0.5) * 20.0).round() as u32;
    }
    score += (f.public_symbols_touched * 8).min(24);
    if f.from_llm {
        score += 15;
    }
    if f.is_config_or_deps {
        score += 25;
    }
    if f.major_bump {
        score += 25;
    }
    if f.is_ci {
        score += 40;
    }
    if f.is_test {
        score += 10;
    }
    if !f.removed_names_used_elsewhere.is_empty() {
        score += 50;
    }
    score.min(100) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_private_fix_is_low_risk() {
        let f = EditFacts {
            lines_added: 1,
            lines_removed: 1,
            ..Default::default()
        };
        assert_eq!(risk_score(&f), 2);
    }

    #[test]
    fn signals_add_up_and_cap() {
        let f = EditFacts {
            lines_added: 40,
            lines_removed: 0,
            public_symbols_touched: 5,
            from_llm: true,
            is_config_or_deps: true,
            is_ci: true,
            ..Default::default()
        };
        assert_eq!(risk_score(&f), 100);
        let deletion_heavy = EditFacts {
            lines_added: 0,
            lines_removed: 10,
            ..Default::default()
        };
        assert_eq!(risk_score(&deletion_heavy), 20);
        assert_eq!(
            risk_score(&EditFacts {
                is_binary: true,
                ..Default::default()
            }),
            100
        );
    }

    #[test]
    fn removing_a_name_other_files_use_scores_high() {
        // An unused-import fix of one line: 1 point, plus up to 10 for being all removal.
        let fix = EditFacts {
            lines_removed: 1,
            ..Default::default()
        };
        assert_eq!(risk_score(&fix), 11);
        let breaks_an_importer = EditFacts {
            removed_names_used_elsewhere: vec![
                "pkg.compat.helper is imported by pkg/api.py:3".into(),
            ],
            ..fix
        };
        assert_eq!(risk_score(&breaks_an_importer), 61);
    }

    #[test]
    fn police_never_auto_approves_it_and_names_the_users() {
        let mut pack = crate::PolicyPack::builtins().remove(0);
        pack.auto_approve.max_risk = 100;
        let facts = EditFacts {
            lines_removed: 1,
            removed_names_used_elsewhere: vec![
                "pkg.compat.helper is imported by pkg/api.py:3".into(),
            ],
            ..Default::default()
        };
        match crate::police(&pack, true, &facts, true) {
            crate::Verdict::NeedsApproval { risk, reasons } => {
                assert_eq!(risk, 61);
                assert_eq!(
                    reasons,
                    [
                        "the edit removes names other files use: pkg.compat.helper is imported by pkg/api.py:3"
                    ]
                );
            }
            v => panic!("{v:?}"),
        }
        let unused = EditFacts {
            lines_removed: 1,
            ..Default::default()
        };
        assert!(matches!(
            crate::police(&pack, true, &unused, true),
            crate::Verdict::AutoApprove { risk: 11 }
        ));
    }
}
