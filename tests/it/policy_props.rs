//! Property: auto-approval is impossible whenever a pack constraint is violated, and
//! `ApprovedEdit::from_verdict` (the only way an undecided edit reaches apply/commit) agrees.

use noctune_core::{
    ApprovalRequest, ApprovedEdit, AutoApprove, EditFacts, NoBlobs, PolicyPack, Proposal,
    ProposalSource, RecordedEdit, RunId, Verdict, approval_id, police, risk_score,
};
use proptest::prelude::*;

fn pack(
    enabled: bool,
    max_risk: u8,
    max_lines: u32,
    require_tests: bool,
    max_diff_lines: u32,
) -> PolicyPack {
    let mut p = PolicyPack::builtins().into_iter().next().unwrap();
    p.auto_approve = AutoApprove {
        enabled,
        max_risk,
        max_lines,
        require_tests,
    };
    p.max_diff_lines = max_diff_lines;
    p
}

prop_compose! {
    fn facts()(added in 0u32..80, removed in 0u32..80, public in 0u32..5, cfg in any::<bool>(), ci in any::<bool>(),
               test in any::<bool>(), bin in prop::bool::weighted(0.05), llm in any::<bool>(), major in any::<bool>(),
               used in prop::bool::weighted(0.1))
        -> EditFacts {
        EditFacts { lines_added: added, lines_removed: removed, public_symbols_touched: public, is_config_or_deps: cfg,
                    is_ci: ci, is_test: test, is_binary: bin, from_llm: llm, major_bump: major,
                    removed_names_used_elsewhere: if used { vec!["pkg.m.f is imported by pkg/a.py:1".into()] } else { Vec::new() } }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn auto_approve_only_when_every_rule_holds(
        f in facts(), enabled in any::<bool>(), max_risk in 0u8..=100, max_lines in 0u32..120,
        require_tests in any::<bool>(), max_diff_lines in 0u32..160, in_globs in any::<bool>(), tests_available in any::<bool>(),
    ) {
        let p = pack(enabled, max_risk, max_lines, require_tests, max_diff_lines);
        let v = police(&p, in_globs, &f, tests_available);
        let all_rules_hold = enabled && in_globs && f.lines_changed() <= max_diff_lines && f.lines_changed() <= max_lines
            && risk_score(&f) <= max_risk && (!require_tests || tests_available) && !f.is_binary
            && f.removed_names_used_elsewhere.is_empty();
        prop_assert_eq!(matches!(v, Verdict::AutoApprove { .. }), all_rules_hold, "verdict {:?}", v);
        if !in_globs {
            prop_assert!(matches!(v, Verdict::PolicyViolation { .. }), "outside globs must be a violation");
        }
    }

    #[test]
    fn from_verdict_refuses_what_police_would_not_auto_approve(
        before in "[a-z_ =()\n]{0,200}", after in "[a-z_ =()\n]{0,200}", max_risk in 0u8..=100, max_lines in 0u32..40,
        in_globs in any::<bool>(), tampered in any::<bool>(),
    ) {
        let p = pack(true, max_risk, max_lines, false, 1000);
        let proposal = Proposal { file_path: "pkg/m.py".into(), symbol: String::new(), before, after, source: ProposalSource::Command, major_bump: false };
        let facts = EditFacts::of(&proposal);
        let verdict = police(&p, in_globs, &facts, true);
        let mut req = ApprovalRequest {
            approval_id: approval_id(&p.name, &proposal), run_id: RunId::parse("r1").unwrap(), pack: p.name.clone(),
            created_at: String::new(), file_path: proposal.file_path.clone(), symbol: String::new(), risk_score: 0,
            reason: String::new(), diff: String::new(), lines_changed: 0, auto_approved: true,
            content: RecordedEdit::Whole(proposal),
        };
        if tampered {
            // An approval file edited after the fact: its content no longer matches its id.
            if let RecordedEdit::Whole(p) = &mut req.content {
                p.after.push_str("\nimport os\n");
            }
        }
        let built = ApprovedEdit::from_verdict(&req, &p, in_globs, true, &NoBlobs(String::new()));
        let should = matches!(verdict, Verdict::AutoApprove { .. }) && !tampered;
        if tampered {
            prop_assert!(built.is_err());
        } else {
            prop_assert_eq!(built.is_ok(), should);
        }
    }
}

#[test]
fn approval_ids_are_stable_and_bound_to_the_pre_image() {
    let p = Proposal {
        file_path: "a.py".into(),
        symbol: "f".into(),
        before: "x = 1\n".into(),
        after: "x = 2\n".into(),
        source: ProposalSource::Llm,
        major_bump: false,
    };
    let id = approval_id("lint_fix", &p);
    assert_eq!(id, approval_id("lint_fix", &p.clone()));
    let mut other = p.clone();
    other.before = "x = 0\n".into();
    assert_ne!(id, approval_id("lint_fix", &other));
    assert_ne!(id, approval_id("typing_pass", &p));
}
