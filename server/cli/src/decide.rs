//! `noctune decide`: one approval, or with `--all-pending` every pending approval of a run that
//! `--glob` and `--max-risk` pick (the facade decides each one by itself).

use noctune_core::{ApprovalFilter, BulkDecision, BulkOutcome, Decision, SkipReason};
use noctune_studio::Studio;
use std::io::Write;

/// What `noctune decide` decides: one approval, or every pending one a filter picks.
pub enum DecideTarget {
    One {
        approval_id: String,
        decision: Decision,
    },
    AllPending {
        filter: ApprovalFilter,
        decision: Decision,
        dry_run: bool,
    },
}

impl DecideTarget {
    /// From the positional words: `APPROVAL_ID DECISION`, or `DECISION` alone with a filter
    /// (`--all-pending`).
    pub fn of(
        args: &[String],
        all_pending: Option<ApprovalFilter>,
        dry_run: bool,
    ) -> anyhow::Result<DecideTarget> {
        match (all_pending, args) {
            (Some(filter), [decision]) => Ok(DecideTarget::AllPending {
                filter,
                decision: Studio::parse_decision(decision)?,
                dry_run,
            }),
            (Some(_), [id, _]) => anyhow::bail!(
                "--all-pending decides every pending approval of the run, so it takes no approval \
                 id: drop {id:?}, or drop --all-pending to decide only that approval"
            ),
            (None, [approval_id, decision]) => Ok(DecideTarget::One {
                approval_id: approval_id.clone(),
                decision: Studio::parse_decision(decision)?,
            }),
            _ => anyhow::bail!(
                "say which approval and what to decide: `noctune decide RUN APPROVAL_ID \
                 approve|reject`, or `noctune decide RUN --all-pending approve|reject` for every \
                 pending approval (`noctune approvals RUN` lists them)"
            ),
        }
    }
}

pub fn decide(
    out: &mut dyn Write,
    run_id: &str,
    target: DecideTarget,
    reason: &str,
    by: Option<String>,
) -> anyhow::Result<i32> {
    let by = by
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "cli".into());
    let by = format!("cli:{by}");
    let studio = super::runs::studio()?;
    let (filter, decision, dry_run) = match target {
        DecideTarget::One {
            approval_id,
            decision,
        } => {
            let d = studio.decide(run_id, &approval_id, decision, reason, &by)?;
            writeln!(
                out,
                "{} {} by {} at {}",
                d.approval_id,
                d.decision.as_str(),
                d.decided_by,
                d.decided_at
            )?;
            return Ok(0);
        }
        DecideTarget::AllPending {
            filter,
            decision,
            dry_run,
        } => (filter, decision, dry_run),
    };
    let report = if dry_run {
        studio.preview_many(run_id, &filter, decision, reason)?
    } else {
        studio.decide_many(run_id, &filter, decision, reason, &by)?
    };
    print_bulk(out, &report)
}

/// One line per approval decided or left pending (and per tampered one), then the totals:
/// `approved 87, skipped 3 (risk > 30)`. Approvals that were not pending (auto-approved,
/// decided before) are only counted. Exits 1 when an approval is tampered or its decision was
/// refused, so a script notices.
fn print_bulk(out: &mut dyn Write, r: &BulkDecision) -> anyhow::Result<i32> {
    // A preview lists what it would decide as `matches`.
    let done = if r.dry_run {
        "matches"
    } else {
        past(r.decision)
    };
    let mut failed = false;
    for i in &r.items {
        match &i.outcome {
            BulkOutcome::Decided { .. } | BulkOutcome::Matched => {
                writeln!(
                    out,
                    "{done:<9} {}  risk {}  {}",
                    i.file_path, i.risk_score, i.approval_id
                )?;
            }
            BulkOutcome::Skipped {
                reason: SkipReason::AutoApproved | SkipReason::AlreadyDecided,
                ..
            } => {}
            BulkOutcome::Skipped {
                reason, message, ..
            } => {
                failed |= matches!(reason, SkipReason::Tampered | SkipReason::Refused);
                writeln!(
                    out,
                    "{:<9} {}  risk {}  {}: {message}",
                    "skipped", i.file_path, i.risk_score, i.approval_id
                )?;
            }
        }
    }
    writeln!(out, "{}", totals(r))?;
    Ok(i32::from(failed))
}

fn past(d: Decision) -> &'static str {
    match d {
        Decision::Approve => "approved",
        Decision::Reject => "rejected",
    }
}

/// `approved 87, skipped 3 (risk > 30); not pending: 2788 auto-approved`.
fn totals(r: &BulkDecision) -> String {
    let count = |reason: SkipReason| {
        r.items
            .iter()
            .filter(|i| i.skip_reason() == Some(reason))
            .count()
    };
    let label = |reason: SkipReason| match reason {
        SkipReason::OverMaxRisk => format!("risk > {}", r.filter.max_risk.unwrap_or_default()),
        SkipReason::GlobMismatch => format!("not matching {:?}", r.filter.glob().unwrap_or("")),
        SkipReason::Tampered => "tampered".into(),
        SkipReason::Refused => "refused".into(),
        SkipReason::AutoApproved => "auto-approved".into(),
        SkipReason::AlreadyDecided => "already decided".into(),
    };
    let parts = |reasons: &[SkipReason]| -> (usize, Vec<(usize, String)>) {
        let parts: Vec<(usize, String)> = reasons
            .iter()
            .map(|&x| (count(x), label(x)))
            .filter(|(n, _)| *n > 0)
            .collect();
        (parts.iter().map(|(n, _)| n).sum(), parts)
    };
    let (skipped, why) = parts(&[
        SkipReason::OverMaxRisk,
        SkipReason::GlobMismatch,
        SkipReason::Tampered,
        SkipReason::Refused,
    ]);
    let (_, not_pending) = parts(&[SkipReason::AutoApproved, SkipReason::AlreadyDecided]);
    let verb = if r.dry_run {
        format!("would be {}", past(r.decision))
    } else {
        past(r.decision).to_string()
    };
    let mut line = format!("{verb} {}, skipped {skipped}", r.matched);
    match why.as_slice() {
        [] => {}
        [(_, only)] => line.push_str(&format!(" ({only})")),
        many => {
            let each: Vec<String> = many.iter().map(|(n, l)| format!("{n} {l}")).collect();
            line.push_str(&format!(" ({})", each.join(", ")));
        }
    }
    if !not_pending.is_empty() {
        let each: Vec<String> = not_pending
            .iter()
            .map(|(n, l)| format!("{n} {l}"))
            .collect();
        line.push_str(&format!("; not pending: {}", each.join(", ")));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use noctune_core::{ApprovalStatus, BulkItem};

    fn item(outcome: BulkOutcome) -> BulkItem {
        BulkItem {
            approval_id: "0123456789abcdef0123".into(),
            file_path: "pkg/a.py".into(),
            risk_score: 40,
            status: ApprovalStatus::Pending,
            outcome,
        }
    }

    fn skipped(reason: SkipReason) -> BulkOutcome {
        BulkOutcome::Skipped {
            reason,
            message: "why".into(),
            code: None,
        }
    }

    #[test]
    fn the_totals_say_what_was_left_and_why() {
        let mut items = vec![item(BulkOutcome::Matched), item(BulkOutcome::Matched)];
        items.push(item(skipped(SkipReason::OverMaxRisk)));
        items.push(item(skipped(SkipReason::Tampered)));
        items.extend((0..3).map(|_| item(skipped(SkipReason::AutoApproved))));
        items.push(item(skipped(SkipReason::AlreadyDecided)));
        let filter = ApprovalFilter {
            glob: None,
            max_risk: Some(30),
        };
        let r = BulkDecision::new("r".into(), Decision::Approve, true, filter, items);
        assert_eq!(
            totals(&r),
            "would be approved 2, skipped 2 (1 risk > 30, 1 tampered); not pending: 3 \
             auto-approved, 1 already decided"
        );
        let mut out = Vec::new();
        // A tampered approval makes the command fail, so a script notices.
        assert_eq!(print_bulk(&mut out, &r).unwrap(), 1);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count(), 5, "{text}");
        assert!(text.starts_with("matches   pkg/a.py  risk 40"), "{text}");
        let glob = ApprovalFilter {
            glob: Some("src/**".into()),
            max_risk: None,
        };
        let one = BulkDecision::new(
            "r".into(),
            Decision::Reject,
            false,
            glob,
            vec![item(skipped(SkipReason::GlobMismatch))],
        );
        assert_eq!(
            totals(&one),
            "rejected 0, skipped 1 (not matching \"src/**\")"
        );
    }
}
