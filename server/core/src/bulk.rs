//! Deciding many approvals of a run at once: which of them a bulk decision picks
//! ([`ApprovalFilter`], [`select`]) and what happened to each ([`BulkDecision`]).
//!
//! A bulk decision is only a loop over the one single-decision path: each picked approval is
//! decided (and recorded) by itself, so every rule of a single decision (content-bound
//! approvals, write-once decisions, the reason limit) holds for each of them unchanged. What
//! this module adds is the rule of which approvals are picked and the shape of the answer.

use crate::approval::{ApprovalDecision, ApprovalStatus, ApprovalView, Decision};
use crate::error::ErrorCode;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Which approvals of a run a bulk decision applies to: always only the pending ones, further
/// narrowed by a glob on the file path and a ceiling on the risk score.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ApprovalFilter {
    /// Only approvals whose file path (relative to the repository root) matches this glob, as
    /// a policy pack's `allowed_globs` match: `*` stays within one directory, `**` crosses
    /// them (`shapes/**/*.py`). Absent or empty: every file.
    #[serde(default)]
    pub glob: Option<String>,
    /// Only approvals whose risk score is at most this (0-100). Absent: any risk.
    #[serde(default)]
    #[schemars(range(max = 100))]
    pub max_risk: Option<u8>,
}

/// The highest risk score there is; a `max_risk` above it is a mistake worth naming.
pub const MAX_RISK: u8 = 100;

impl ApprovalFilter {
    /// The glob to match, if any (an empty one is none: a form's empty field).
    pub fn glob(&self) -> Option<&str> {
        self.glob
            .as_deref()
            .map(str::trim)
            .filter(|g| !g.is_empty())
    }
}

/// Why an approval was left as it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// A person decided it already.
    AlreadyDecided,
    /// The pack's rules approved it; there is nothing to decide.
    AutoApproved,
    /// Its recorded content is not what its approval id names: it cannot be decided.
    Tampered,
    /// Its file does not match the filter's glob.
    GlobMismatch,
    /// Its risk score is above the filter's `max_risk`.
    OverMaxRisk,
    /// The single decision was refused (`code` and `message` say why).
    Refused,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::AlreadyDecided => "already_decided",
            SkipReason::AutoApproved => "auto_approved",
            SkipReason::Tampered => "tampered",
            SkipReason::GlobMismatch => "glob_mismatch",
            SkipReason::OverMaxRisk => "over_max_risk",
            SkipReason::Refused => "refused",
        }
    }
}

/// What a bulk decision did with one approval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BulkOutcome {
    /// Decided by this request; the decision as recorded.
    Decided { decision: ApprovalDecision },
    /// Picked by the filter: a preview (`dry_run`) that decides nothing would decide it.
    Matched,
    /// Left as it was.
    Skipped {
        reason: SkipReason,
        /// Why, in words (names the rule, the decision or the mismatch).
        message: String,
        /// The error code of the refused single decision (`refused`, and `tampered` when the
        /// decision found it so); absent when the approval was not picked at all.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<ErrorCode>,
    },
}

/// One approval of the run and what the bulk decision did with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BulkItem {
    /// The approval (16-64 lowercase hex characters).
    pub approval_id: String,
    /// The edited file, relative to the repository root.
    pub file_path: String,
    /// 0-100, as the approval is listed.
    #[schemars(range(max = 100))]
    pub risk_score: u8,
    /// The approval's status before this request.
    pub status: ApprovalStatus,
    pub outcome: BulkOutcome,
}

impl BulkItem {
    pub fn skip_reason(&self) -> Option<SkipReason> {
        match &self.outcome {
            BulkOutcome::Skipped { reason, .. } => Some(*reason),
            _ => None,
        }
    }
}

/// The answer to a bulk decision: every approval of the run, in the run's order, with its
/// outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BulkDecision {
    pub run_id: String,
    pub decision: Decision,
    /// True for a preview: nothing was decided, `matched` counts what would be.
    pub dry_run: bool,
    pub filter: ApprovalFilter,
    /// How many approvals were decided by this request.
    pub decided: u32,
    /// How many were decided, or in a preview would be (the same as `decided` otherwise).
    pub matched: u32,
    /// How many were left as they were.
    pub skipped: u32,
    pub items: Vec<BulkItem>,
}

impl BulkDecision {
    /// The answer over `items`, with its counts.
    pub fn new(
        run_id: String,
        decision: Decision,
        dry_run: bool,
        filter: ApprovalFilter,
        items: Vec<BulkItem>,
    ) -> BulkDecision {
        let count = |f: fn(&BulkOutcome) -> bool| items.iter().filter(|i| f(&i.outcome)).count();
        let decided = count(|o| matches!(o, BulkOutcome::Decided { .. }));
        let matched = count(|o| !matches!(o, BulkOutcome::Skipped { .. }));
        let skipped = items.len() - matched;
        BulkDecision {
            run_id,
            decision,
            dry_run,
            filter,
            decided: decided as u32,
            matched: matched as u32,
            skipped: skipped as u32,
            items,
        }
    }
}

/// The one rule of which approvals a bulk decision picks: `None` when `view` is picked,
/// else why not. `glob_matches` is the filter's glob applied to the file path (compiled by the
/// caller once per request, as the pack's globs are); it is not asked for without a glob.
pub fn select(
    view: &ApprovalView,
    filter: &ApprovalFilter,
    glob_matches: impl Fn(&str) -> bool,
) -> Option<(SkipReason, String)> {
    match view.status {
        ApprovalStatus::Pending => {}
        ApprovalStatus::Tampered => return Some((SkipReason::Tampered, view.reason.clone())),
        ApprovalStatus::AutoApproved => {
            return Some((
                SkipReason::AutoApproved,
                "approved by the pack's rules; nothing to decide".into(),
            ));
        }
        ApprovalStatus::Approved | ApprovalStatus::Rejected => {
            let said = match &view.decision {
                Some(d) => format!(
                    "already {} by {} at {}",
                    past(d.decision),
                    d.decided_by,
                    d.decided_at
                ),
                None => format!("already {}", view.status.as_str()),
            };
            return Some((SkipReason::AlreadyDecided, said));
        }
    }
    if let Some(glob) = filter.glob()
        && !glob_matches(&view.file_path)
    {
        return Some((
            SkipReason::GlobMismatch,
            format!("{} does not match {glob:?}", view.file_path),
        ));
    }
    if let Some(max) = filter.max_risk
        && view.risk_score > max
    {
        return Some((
            SkipReason::OverMaxRisk,
            format!("risk {} > {max}", view.risk_score),
        ));
    }
    None
}

fn past(d: Decision) -> &'static str {
    match d {
        Decision::Approve => "approved",
        Decision::Reject => "rejected",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(file: &str, risk: u8, status: ApprovalStatus) -> ApprovalView {
        ApprovalView {
            approval_id: "0123456789abcdef0123".into(),
            file_path: file.into(),
            symbol: String::new(),
            risk_score: risk,
            reason: "the request was changed after it was proposed".into(),
            diff: String::new(),
            status,
            created_at: "2026-01-01T00:00:00Z".into(),
            lines_changed: 1,
            decision: None,
        }
    }

    #[test]
    fn only_pending_approvals_within_glob_and_risk_are_picked() {
        let filter = ApprovalFilter {
            glob: Some("pkg/*.py".into()),
            max_risk: Some(20),
        };
        let in_pkg = |p: &str| p.starts_with("pkg/") && !p[4..].contains('/');
        let pick = |v: &ApprovalView| select(v, &filter, in_pkg).map(|(r, _)| r);
        assert_eq!(pick(&view("pkg/a.py", 20, ApprovalStatus::Pending)), None);
        assert_eq!(
            pick(&view("pkg/a.py", 21, ApprovalStatus::Pending)),
            Some(SkipReason::OverMaxRisk)
        );
        assert_eq!(
            pick(&view("pkg/sub/a.py", 1, ApprovalStatus::Pending)),
            Some(SkipReason::GlobMismatch)
        );
        for (status, reason) in [
            (ApprovalStatus::Tampered, SkipReason::Tampered),
            (ApprovalStatus::AutoApproved, SkipReason::AutoApproved),
            (ApprovalStatus::Approved, SkipReason::AlreadyDecided),
            (ApprovalStatus::Rejected, SkipReason::AlreadyDecided),
        ] {
            assert_eq!(
                pick(&view("pkg/a.py", 1, status)),
                Some(reason),
                "{status:?}"
            );
        }
        // Without a glob the matcher is not consulted; an empty glob is none.
        let none = ApprovalFilter {
            glob: Some("  ".into()),
            max_risk: None,
        };
        let v = view("deep/x.py", 100, ApprovalStatus::Pending);
        assert_eq!(select(&v, &none, |_| panic!("asked")), None);
        let (_, why) = select(
            &view("pkg/a.py", 31, ApprovalStatus::Pending),
            &filter,
            in_pkg,
        )
        .unwrap();
        assert_eq!(why, "risk 31 > 20");
    }

    #[test]
    fn counts_follow_the_outcomes() {
        let item = |outcome| BulkItem {
            approval_id: "0123456789abcdef0123".into(),
            file_path: "a.py".into(),
            risk_score: 1,
            status: ApprovalStatus::Pending,
            outcome,
        };
        let skipped = || BulkOutcome::Skipped {
            reason: SkipReason::OverMaxRisk,
            message: String::new(),
            code: None,
        };
        let r = BulkDecision::new(
            "r".into(),
            Decision::Approve,
            true,
            ApprovalFilter::default(),
            vec![item(BulkOutcome::Matched), item(skipped()), item(skipped())],
        );
        assert_eq!((r.decided, r.matched, r.skipped), (0, 1, 2));
        let text = serde_json::to_value(&r).unwrap();
        assert_eq!(text["items"][0]["outcome"]["kind"], "matched");
        assert_eq!(text["items"][1]["outcome"]["reason"], "over_max_risk");
        assert!(text["items"][1]["outcome"].get("code").is_none());
    }
}
