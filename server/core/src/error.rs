//! How an operation's failure is shown on every surface: a stable [`ErrorCode`] and a message
//! in surface-neutral words (no CLI commands, no HTTP routes, no tool names).
//!
//! The codes are decided once, by the layer that knows the error (`EngineError::code`,
//! `ChatError::code`); each surface only maps a code to its protocol (an HTTP status, a
//! JSON-RPC error, an MCP `isError` result, a chat tool error), so the same failure has the same
//! code and message everywhere.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The stable, documented error codes. Clients match on these; messages are for people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request is malformed: a bad id, a missing or ill-typed field.
    InvalidArguments,
    /// A value is over a documented limit (a decision reason, a body).
    TooLarge,
    /// No run has this id.
    UnknownRun,
    /// The run has no approval with this id.
    UnknownApproval,
    /// No policy pack has this name (built-in or configured).
    UnknownPack,
    /// No model profile has this name.
    UnknownProfile,
    /// No chat session has this id.
    UnknownSession,
    /// The path is not (inside) a git repository.
    NotARepo,
    /// The repository is outside the roots this process may touch.
    OutsideAllowedRoots,
    /// The approval already has a decision (a person's, or the pack's auto-approval).
    AlreadyDecided,
    /// The approval's recorded content is not what its id names (it was changed after it was
    /// proposed): it cannot be decided and is never applied.
    ApprovalTampered,
    /// The run is in a state where the operation means nothing (stop a done run, ...).
    WrongState,
    /// A configuration file is broken; the message names file, key and fix.
    ConfigError,
    /// A git operation failed (worktree, branch, commit).
    GitError,
    /// The model server cannot be reached or refused the request.
    ModelUnavailable,
    /// Something on this machine failed (disk, database); the message says what.
    Internal,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 16] = [
        ErrorCode::InvalidArguments,
        ErrorCode::TooLarge,
        ErrorCode::UnknownRun,
        ErrorCode::UnknownApproval,
        ErrorCode::UnknownPack,
        ErrorCode::UnknownProfile,
        ErrorCode::UnknownSession,
        ErrorCode::NotARepo,
        ErrorCode::OutsideAllowedRoots,
        ErrorCode::AlreadyDecided,
        ErrorCode::ApprovalTampered,
        ErrorCode::WrongState,
        ErrorCode::ConfigError,
        ErrorCode::GitError,
        ErrorCode::ModelUnavailable,
        ErrorCode::Internal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidArguments => "invalid_arguments",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::UnknownRun => "unknown_run",
            ErrorCode::UnknownApproval => "unknown_approval",
            ErrorCode::UnknownPack => "unknown_pack",
            ErrorCode::UnknownProfile => "unknown_profile",
            ErrorCode::UnknownSession => "unknown_session",
            ErrorCode::NotARepo => "not_a_repo",
            ErrorCode::OutsideAllowedRoots => "outside_allowed_roots",
            ErrorCode::AlreadyDecided => "already_decided",
            ErrorCode::ApprovalTampered => "approval_tampered",
            ErrorCode::WrongState => "wrong_state",
            ErrorCode::ConfigError => "config_error",
            ErrorCode::GitError => "git_error",
            ErrorCode::ModelUnavailable => "model_unavailable",
            ErrorCode::Internal => "internal",
        }
    }

    /// Whether the caller can fix it by changing the request (as opposed to this machine's
    /// state). Surfaces use it to pick "client error" vs "server error".
    pub fn is_caller_error(self) -> bool {
        !matches!(
            self,
            ErrorCode::Internal | ErrorCode::GitError | ErrorCode::ModelUnavailable
        )
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed operation as every surface reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, thiserror::Error)]
#[error("{message}")]
pub struct OpError {
    pub code: ErrorCode,
    /// What went wrong and what to do about it, in surface-neutral words.
    pub message: String,
}

impl OpError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> OpError {
        OpError {
            code,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> OpError {
        OpError::new(ErrorCode::InvalidArguments, message)
    }
}

impl From<crate::IdError> for OpError {
    fn from(e: crate::IdError) -> OpError {
        OpError::invalid(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_serialise_as_their_names() {
        for c in ErrorCode::ALL {
            assert_eq!(
                serde_json::to_value(c).unwrap(),
                serde_json::Value::String(c.as_str().into())
            );
        }
    }
}
