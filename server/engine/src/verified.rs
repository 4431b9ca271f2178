//! The requests this worker has already checked ([`ApprovalRequest::verify`]), with what the
//! check found. The worker checks every request before it waits for decisions and again when
//! it turns approvals into edits; on a large run each check reads two blobs, hashes both
//! texts and diffs them again, and the second finds what the first did.
//!
//! An answer is reused only for a request equal, field by field, to the one it was found
//! for: a request file changed in between is checked again from scratch (and fails, if its
//! content no longer matches its id). The requests this worker writes itself are entered with
//! the texts it proposed ([`VerifiedMemo::proposed`]): those are the texts the blob ids name.

use noctune_core::approval::{EditBinding, Tampered};
use noctune_core::{ApprovalRequest, BlobSource, Proposal, Verified};
use std::collections::HashMap;

#[derive(Default)]
pub struct VerifiedMemo {
    checked: HashMap<String, (ApprovalRequest, Verified)>,
}

impl VerifiedMemo {
    /// Enters a request this worker just wrote for `proposal` (`binding` is
    /// `EditBinding::of(&proposal)`, computed by the caller beside the request's other parts).
    pub fn proposed(&mut self, req: &ApprovalRequest, proposal: Proposal, binding: EditBinding) {
        let verified = Verified { proposal, binding };
        self.checked
            .insert(req.approval_id.to_string(), (req.clone(), verified));
    }

    /// [`ApprovalRequest::verify`], answered from an earlier check of an identical request.
    pub fn verify(
        &mut self,
        req: &ApprovalRequest,
        blobs: &dyn BlobSource,
    ) -> Result<Verified, Tampered> {
        let id = req.approval_id.as_str();
        if let Some((seen, verified)) = self.checked.get(id)
            && seen == req
        {
            return Ok(verified.clone());
        }
        let verified = req.verify(blobs)?;
        self.checked
            .insert(id.to_string(), (req.clone(), verified.clone()));
        Ok(verified)
    }
}
