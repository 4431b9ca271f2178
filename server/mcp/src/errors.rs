//! Failed tool calls: an engine error (or bad arguments) becomes a `CallToolResult` with
//! `isError: true`, a text message and `structuredContent` `{error, message}`. Never a protocol
//! error, a crash or a hung call: the agent reads the message and knows what to do.

use super::types::ToolErrorOut;
use noctune_engine::api::EngineError;
use rmcp::model::CallToolResult;

#[derive(Debug, Clone)]
pub struct ToolFailure {
    pub code: &'static str,
    pub message: String,
}

impl ToolFailure {
    pub fn new(code: &'static str, message: impl Into<String>) -> ToolFailure {
        ToolFailure {
            code,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> ToolFailure {
        ToolFailure::new("invalid_arguments", message)
    }

    pub fn internal(message: impl Into<String>) -> ToolFailure {
        ToolFailure::new("internal", message)
    }

    pub fn into_result(self) -> CallToolResult {
        // The text is the message itself (what a person or model reads); the structured
        // content carries the code as well.
        let out = ToolErrorOut {
            error: self.code.to_string(),
            message: self.message,
        };
        let mut r = CallToolResult::error(vec![rmcp::model::ContentBlock::text(format!(
            "{}: {}",
            out.error, out.message
        ))]);
        r.structured_content = serde_json::to_value(&out).ok();
        r
    }
}

impl From<EngineError> for ToolFailure {
    fn from(e: EngineError) -> ToolFailure {
        let code = match &e {
            EngineError::Id(_) => "invalid_arguments",
            EngineError::UnknownRun(..) => "unknown_run",
            EngineError::UnknownPack { .. } => "unknown_pack",
            EngineError::UnknownProfile { .. } => "unknown_profile",
            EngineError::Git(noctune_git::GitError::NotARepo(_)) => "not_a_repo",
            EngineError::Git(_) => "git_error",
            EngineError::Config(_) => "config_error",
            EngineError::OutsideRoots { .. } => "outside_allowed_roots",
            EngineError::UnknownApproval { .. } => "unknown_approval",
            EngineError::AlreadyDecided { .. } => "already_decided",
            EngineError::AutoApproved(_) => "auto_approved",
            EngineError::WrongState { .. } => "wrong_state",
            EngineError::RunFile(_) | EngineError::Store(_) | EngineError::Io(_) => "internal",
        };
        let hint = match code {
            "unknown_run" => " Use a run_id returned by enqueue_run.",
            "unknown_approval" => " Call list_approvals for the run's approval ids.",
            _ => "",
        };
        let mut message = e.to_string();
        if !hint.is_empty() {
            if !message.ends_with('.') {
                message.push('.');
            }
            message.push_str(hint);
        }
        ToolFailure::new(code, message)
    }
}

/// Parses a tool's arguments; a wrong shape is a tool error naming the problem.
pub fn parse_args<T: serde::de::DeserializeOwned>(
    tool: &str,
    args: rmcp::model::JsonObject,
) -> Result<T, ToolFailure> {
    serde_json::from_value(serde_json::Value::Object(args)).map_err(|e| {
        ToolFailure::invalid(format!(
            "{tool}: bad arguments: {e}. See the tool's inputSchema (tools/list) for the expected fields."
        ))
    })
}
