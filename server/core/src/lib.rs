//! Pure values and rules of Noctune: ids, the run-state machine, policy packs, proposals,
//! risk, approvals and patchset grouping.
//!
//! Invariant: nothing here performs IO. No tokio, axum, LSP, rusqlite, git2 or reqwest; no
//! filesystem or clock access except through values handed in by callers. Every rule that more
//! than one surface relies on (a run-state transition, the auto-approve verdict, the approval
//! invariant) lives in exactly one function of this module.

pub mod approval;
pub mod bulk;
pub mod error;
pub mod event;
pub mod ids;
pub mod json_schema;
pub mod patch;
pub mod patchset;
pub mod policy;
pub mod proposal;
pub mod risk;
pub mod run_state;
pub mod text;

pub use approval::{
    ApprovalDecision, ApprovalRequest, ApprovalStatus, ApprovalView, ApprovedEdit, BlobSource,
    Decision, DecisionError, NoBlobs, RecordedEdit, StoredEdit, Verdict, Verified, approval_id,
    police,
};
pub use bulk::{ApprovalFilter, BulkDecision, BulkItem, BulkOutcome, SkipReason};
pub use error::{ErrorCode, OpError};
pub use event::{Event, EventKind, EventPayload, event_schema};
pub use ids::{ApprovalId, IdError, RunId};
pub use patchset::{
    GroupInput, PatchsetPlan, PatchsetStatus, PlannedPatchset, group_into_patchsets,
};
pub use policy::{AutoApprove, Grouping, PolicyPack, ProposerSpec};
pub use proposal::{EditFacts, Proposal, ProposalSource, unified_diff};
pub use risk::risk_score;
pub use run_state::{ResumePolicy, RunRecord, RunStatus, StartRequest, TransitionError};
