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
//!
//! The sum is capped at 100. With the built-in `max_risk = 30`, a formatting fix of a few
//! lines in one private helper passes, a model's rewrite of a public function does not.

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
}
