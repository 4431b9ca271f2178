//! Bulk decisions: every pending approval of a run that a filter picks, decided one by one
//! through [`Studio::decide`], so each is checked and recorded exactly as a single decision
//! is (content-bound approvals, write-once decisions, the audit DB).

use crate::{Studio, limits};
use noctune_core::bulk::{self, MAX_RISK};
use noctune_core::{
    ApprovalFilter, ApprovalView, BulkDecision, BulkItem, BulkOutcome, Decision, ErrorCode,
    OpError, SkipReason,
};

/// The filter's checks and its glob, compiled the way a policy pack's `allowed_globs` are: the
/// matcher of the file path (true for every path without a glob).
fn matcher(filter: &ApprovalFilter) -> Result<impl Fn(&str) -> bool, OpError> {
    if let Some(max) = filter.max_risk
        && max > MAX_RISK
    {
        return Err(OpError::invalid(format!(
            "max_risk {max} is out of range: risk scores are 0 to {MAX_RISK}"
        )));
    }
    let set = match filter.glob() {
        None => None,
        Some(glob) => Some(
            noctune_engine::ctx::compile_globs(&[glob.to_string()]).map_err(|e| {
                OpError::invalid(format!(
                    "{e}; write a glob on the file path as a policy pack's allowed_globs are, \
                     e.g. \"src/**/*.py\""
                ))
            })?,
        ),
    };
    Ok(move |path: &str| set.as_ref().is_none_or(|s| s.is_match(path)))
}

/// Whether a refused single decision concerns that approval only (the others may still be
/// decided) rather than the whole request (the run, the reason, this machine).
fn per_approval(code: ErrorCode) -> Option<SkipReason> {
    match code {
        ErrorCode::ApprovalTampered => Some(SkipReason::Tampered),
        ErrorCode::AlreadyDecided => Some(SkipReason::AlreadyDecided),
        ErrorCode::UnknownApproval => Some(SkipReason::Refused),
        _ => None,
    }
}

fn skipped(
    v: &ApprovalView,
    reason: SkipReason,
    message: String,
    code: Option<ErrorCode>,
) -> BulkItem {
    item(
        v,
        BulkOutcome::Skipped {
            reason,
            message,
            code,
        },
    )
}

fn item(v: &ApprovalView, outcome: BulkOutcome) -> BulkItem {
    BulkItem {
        approval_id: v.approval_id.clone(),
        file_path: v.file_path.clone(),
        risk_score: v.risk_score,
        status: v.status,
        outcome,
    }
}

impl Studio {
    /// Decides every pending approval of the run that `filter` picks ([`bulk::select`]), each
    /// through [`Studio::decide`] with the same reason and `decided_by`, in the run's order.
    /// Answers every approval of the run with what happened to it. A bad glob, `max_risk` or
    /// reason is refused before anything is decided; an approval whose single decision is
    /// refused (tampered, decided meanwhile) is skipped with the code. A refusal that concerns
    /// the whole request (the run ended, the disk) is returned as the error when nothing was
    /// decided yet, else ends the loop with the rest skipped as `refused`.
    pub fn decide_many(
        &self,
        run_id: &str,
        filter: &ApprovalFilter,
        decision: Decision,
        reason: &str,
        decided_by: &str,
    ) -> Result<BulkDecision, OpError> {
        self.bulk(run_id, filter, decision, reason, Some(decided_by))
    }

    /// What [`Studio::decide_many`] would decide, deciding nothing: the same checks of the
    /// filter, each picked approval `matched`.
    pub fn preview_many(
        &self,
        run_id: &str,
        filter: &ApprovalFilter,
        decision: Decision,
        reason: &str,
    ) -> Result<BulkDecision, OpError> {
        self.bulk(run_id, filter, decision, reason, None)
    }

    fn bulk(
        &self,
        run_id: &str,
        filter: &ApprovalFilter,
        decision: Decision,
        reason: &str,
        decided_by: Option<&str>,
    ) -> Result<BulkDecision, OpError> {
        let matches = matcher(filter)?;
        limits::check_reason(reason)?;
        let views = self.approvals(run_id)?;
        let mut items = Vec::with_capacity(views.len());
        let mut stopped: Option<OpError> = None;
        for v in &views {
            if let Some((reason, message)) = bulk::select(v, filter, &matches) {
                items.push(skipped(v, reason, message, None));
                continue;
            }
            let Some(by) = decided_by else {
                items.push(item(v, BulkOutcome::Matched));
                continue;
            };
            if let Some(e) = &stopped {
                let message = format!("not decided: {}", e.message);
                items.push(skipped(v, SkipReason::Refused, message, Some(e.code)));
                continue;
            }
            match self.decide(run_id, &v.approval_id, decision, reason, by) {
                Ok(d) => items.push(item(v, BulkOutcome::Decided { decision: d })),
                Err(e) => match per_approval(e.code) {
                    Some(why) => items.push(skipped(v, why, e.message, Some(e.code))),
                    None if !items
                        .iter()
                        .any(|i| matches!(i.outcome, BulkOutcome::Decided { .. })) =>
                    {
                        return Err(e);
                    }
                    None => {
                        items.push(skipped(
                            v,
                            SkipReason::Refused,
                            e.message.clone(),
                            Some(e.code),
                        ));
                        stopped = Some(e);
                    }
                },
            }
        }
        Ok(BulkDecision::new(
            run_id.to_string(),
            decision,
            decided_by.is_none(),
            filter.clone(),
            items,
        ))
    }
}
