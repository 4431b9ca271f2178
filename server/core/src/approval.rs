//! Approvals: the auto-approve verdict, approval ids, decisions, and [`ApprovedEdit`], the only
//! value the apply/commit code accepts.
//!
//! The approval invariant ("no undecided edit is ever applied or committed") is enforced by
//! types: `ApprovedEdit` has private fields and only two constructors, one from an approve
//! decision that matches the request, one from an auto-approve [`Verdict`] computed by
//! [`police`].

use super::{ApprovalId, EditFacts, PolicyPack, Proposal, risk_score};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The id of an approval: a hash of (pack, file, symbol, before, after). The same inputs give
/// the same id, and a decision is bound to that exact pre-image.
pub fn approval_id(pack: &str, p: &Proposal) -> ApprovalId {
    let mut h = Sha256::new();
    for part in [pack, &p.file_path, &p.symbol, &p.before, &p.after] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    let digest = h.finalize();
    ApprovalId::from_hex(digest[..12].iter().map(|b| format!("{b:02x}")).collect())
}

/// Content hash used to check that a file still has the pre-image an approval was made for.
pub fn content_sha(text: &str) -> String {
    let d = Sha256::digest(text.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// Outside `allowed_globs`: never applied, not even with a human's approval.
    PolicyViolation {
        reason: String,
    },
    /// Over `max_diff_lines`: never applied.
    Refused {
        reason: String,
    },
    /// Needs a human decision; `reasons` says which rules failed.
    NeedsApproval {
        risk: u8,
        reasons: Vec<String>,
    },
    AutoApprove {
        risk: u8,
    },
}

/// The one place that decides what happens to a proposed edit.
///
/// `in_allowed_globs` is the pack's glob match of the file path (compiled by the caller once per
/// run); `tests_available` says whether a check tool of the pack is allowed to run.
pub fn police(
    pack: &PolicyPack,
    in_allowed_globs: bool,
    facts: &EditFacts,
    tests_available: bool,
) -> Verdict {
    if !in_allowed_globs {
        return Verdict::PolicyViolation {
            reason: format!(
                "outside the allowed_globs of pack {:?} ({})",
                pack.name,
                pack.allowed_globs.join(", ")
            ),
        };
    }
    let lines = facts.lines_changed();
    if lines > pack.max_diff_lines {
        return Verdict::Refused {
            reason: format!(
                "{lines} changed lines exceed max_diff_lines = {}",
                pack.max_diff_lines
            ),
        };
    }
    let risk = risk_score(facts);
    let aa = &pack.auto_approve;
    let mut reasons = Vec::new();
    if !aa.enabled {
        reasons.push("auto_approve is disabled for this pack".to_string());
    }
    if risk > aa.max_risk {
        reasons.push(format!("risk {risk} > max_risk {}", aa.max_risk));
    }
    if lines > aa.max_lines {
        reasons.push(format!(
            "{lines} changed lines > auto_approve.max_lines {}",
            aa.max_lines
        ));
    }
    if aa.require_tests && !tests_available {
        reasons.push("require_tests is set but no test tool is allowed to run".to_string());
    }
    if facts.is_binary {
        reasons.push("binary content".to_string());
    }
    if reasons.is_empty() {
        Verdict::AutoApprove { risk }
    } else {
        Verdict::NeedsApproval { risk, reasons }
    }
}

/// A person's decision on a proposed edit: `approve` applies it, `reject` drops it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Approve,
    Reject,
}

impl Decision {
    pub fn parse(s: &str) -> Option<Decision> {
        match s {
            "approve" | "approved" => Some(Decision::Approve),
            "reject" | "rejected" => Some(Decision::Reject),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Approve => "approve",
            Decision::Reject => "reject",
        }
    }
}

/// Where an approval is: `pending` waits for a person; `approved`/`rejected` are a person's
/// decision; `auto_approved` is the pack's rules approving it without one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalStatus {
    Pending,
    Approved,
    Rejected,
    AutoApproved,
}

impl ApprovalStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalStatus::Pending => "pending",
            ApprovalStatus::Approved => "approved",
            ApprovalStatus::Rejected => "rejected",
            ApprovalStatus::AutoApproved => "auto_approved",
        }
    }
}

/// `state/approvals/<approval_id>.json`. Holds the whole pre-image and post-image so a decision
/// can be applied later (or after a resume) without asking the proposer again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalRequest {
    pub approval_id: ApprovalId,
    pub run_id: super::RunId,
    pub pack: String,
    pub created_at: String,
    pub file_path: String,
    pub symbol: String,
    pub risk_score: u8,
    pub reason: String,
    pub diff: String,
    pub lines_changed: u32,
    /// `true` when the pack's rules approved it without a human.
    pub auto_approved: bool,
    pub proposal: Proposal,
}

/// `state/approvals/<approval_id>.decision.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ApprovalDecision {
    /// The approval decided.
    pub approval_id: ApprovalId,
    pub decision: Decision,
    /// When (RFC 3339, UTC).
    pub decided_at: String,
    /// Who decided: a user name from the CLI, `web`, `<user> (lsp: <client>)`, `mcp:<client name>`, ...
    pub decided_by: String,
    /// Why; recorded in the audit trail (may be empty).
    pub reason: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecisionError {
    #[error("decision is for approval {got}, not {expected}")]
    WrongApproval { expected: String, got: String },
    #[error("approval {0} was rejected; a rejected edit cannot be applied")]
    Rejected(String),
    #[error("approval {0} was not auto-approved by the pack's rules")]
    NotAutoApproved(String),
}

/// An edit that may be applied and committed. See the module docs for why this is a type.
#[derive(Debug, Clone, PartialEq)]
pub struct ApprovedEdit {
    approval_id: ApprovalId,
    proposal: Proposal,
    approved_by: String,
}

impl ApprovedEdit {
    pub fn from_decision(
        req: &ApprovalRequest,
        d: &ApprovalDecision,
    ) -> Result<ApprovedEdit, DecisionError> {
        if d.approval_id != req.approval_id {
            return Err(DecisionError::WrongApproval {
                expected: req.approval_id.to_string(),
                got: d.approval_id.to_string(),
            });
        }
        if d.decision != Decision::Approve {
            return Err(DecisionError::Rejected(req.approval_id.to_string()));
        }
        Ok(ApprovedEdit {
            approval_id: req.approval_id.clone(),
            proposal: req.proposal.clone(),
            approved_by: d.decided_by.clone(),
        })
    }

    /// From a request the pack's rules approved. The verdict is recomputed here rather than
    /// trusted from the stored flag, so an edited approval file cannot grant itself approval.
    pub fn from_verdict(
        req: &ApprovalRequest,
        pack: &PolicyPack,
        in_allowed_globs: bool,
        tests_available: bool,
    ) -> Result<ApprovedEdit, DecisionError> {
        let facts = EditFacts::of(&req.proposal);
        match police(pack, in_allowed_globs, &facts, tests_available) {
            Verdict::AutoApprove { .. }
                if approval_id(&pack.name, &req.proposal) == req.approval_id =>
            {
                Ok(ApprovedEdit {
                    approval_id: req.approval_id.clone(),
                    proposal: req.proposal.clone(),
                    approved_by: format!("policy:{}", pack.name),
                })
            }
            _ => Err(DecisionError::NotAutoApproved(req.approval_id.to_string())),
        }
    }

    pub fn approval_id(&self) -> &ApprovalId {
        &self.approval_id
    }
    pub fn proposal(&self) -> &Proposal {
        &self.proposal
    }
    pub fn approved_by(&self) -> &str {
        &self.approved_by
    }
}

/// An approval as every surface shows it: the request, its status and its decision.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ApprovalView {
    /// 16-64 lowercase hex characters: a hash of the pack and the edit's pre- and post-image.
    pub approval_id: String,
    /// The edited file, relative to the repository root.
    pub file_path: String,
    /// The function, class or other symbol the edit touches (may be empty).
    pub symbol: String,
    /// 0-100: how risky the edit looks (size, kind of code touched, tests available).
    #[schemars(range(max = 100))]
    pub risk_score: u8,
    /// Why the edit needs a human decision (or why it was auto-approved).
    pub reason: String,
    /// Unified diff of the proposed edit.
    pub diff: String,
    pub status: ApprovalStatus,
    /// When the edit was proposed (RFC 3339, UTC).
    pub created_at: String,
    /// Lines added plus lines removed.
    pub lines_changed: u32,
    /// The recorded decision; null while pending (and for most auto-approved edits).
    pub decision: Option<ApprovalDecision>,
}
