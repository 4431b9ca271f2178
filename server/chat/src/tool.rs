//! What a chat tool is, and what it may use while it runs.
//!
//! Tools never decide permissions themselves: the turn loop asks `permissions::PermissionGate`
//! before calling a tool of class write/run/decide, and the sandbox (`crate::sandbox`) is the
//! only place that turns a user-supplied path into a filesystem path.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Permission classes. Reads inside the allowed roots need no grant; the rest do.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum ToolClass {
    Read,
    Write,
    Run,
    Decide,
}

impl ToolClass {
    pub fn as_str(self) -> &'static str {
        match self {
            ToolClass::Read => "read",
            ToolClass::Write => "write",
            ToolClass::Run => "run",
            ToolClass::Decide => "decide",
        }
    }
    /// The error code a tool of this class returns without a grant.
    pub fn not_allowed_code(self) -> &'static str {
        match self {
            ToolClass::Read => "read_not_allowed",
            ToolClass::Write => "write_not_allowed",
            ToolClass::Run => "run_not_allowed",
            ToolClass::Decide => "decide_not_allowed",
        }
    }
}

/// A tool's failure, returned to the model as `{"error": code, "message": message}` so that it
/// can explain or ask; never a crash of the turn.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ToolError {
    pub code: String,
    pub message: String,
}

impl ToolError {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> ToolError {
        ToolError {
            code: code.into(),
            message: message.into(),
        }
    }
    pub fn to_json(&self) -> Value {
        serde_json::json!({"error": self.code, "message": self.message})
    }
}

/// Where a chat edit lands. The default writes files (atomically, after a backup); an editor
/// surface (LSP) supplies one that sends `workspace/applyEdit` so the edit lands in the open
/// buffer and the editor's undo works.
pub trait EditSink: Send + Sync {
    /// Replaces the whole content of `path` (absolute, already sandboxed). `Err` (e.g. the
    /// editor rejected the edit) is reported to the model as a failed tool call.
    fn replace_file(&self, path: &Path, old: &str, new: &str) -> Result<(), String>;
}

/// Unsaved editor buffers, so chat reads what the user sees rather than what is on disk.
pub trait BufferOverlay: Send + Sync {
    fn text_of(&self, path: &Path) -> Option<String>;
}

/// Everything a tool may use during one call.
#[derive(Clone)]
pub struct ToolContext {
    /// The repository the chat session is about (canonical).
    pub repo_root: PathBuf,
    pub sandbox: Arc<noctune_sandbox::Sandbox>,
    pub session_id: String,
    pub edit_sink: Option<Arc<dyn EditSink>>,
    pub overlay: Option<Arc<dyn BufferOverlay>>,
    /// Content hashes of files as the model last read them (path → sha256), to refuse an edit
    /// of a file that changed since ("conflict").
    pub read_stamps: Arc<std::sync::Mutex<std::collections::HashMap<PathBuf, String>>>,
}

/// A chat tool. Implementations are small, synchronous, and return JSON the model can read.
pub trait Tool: Send + Sync {
    fn name(&self) -> &'static str;
    fn description(&self) -> &'static str;
    /// JSON Schema of the arguments object. The built-in tools generate it from an argument
    /// struct (`tools::schema::args_schema`): a flat object schema with standard keywords only.
    fn parameters(&self) -> Value;
    fn class(&self) -> ToolClass;
    /// The repository-relative path the call would touch, if any (for the permission prompt
    /// and the protected-path rule). Must not touch the filesystem.
    fn target_path(&self, _args: &Value) -> Option<String> {
        None
    }
    /// The change the call would make, computed from the current content and the arguments
    /// without writing anything, for the permission prompt to show before the user decides.
    /// `None`: the tool changes no file, or the call would fail (it then fails when run).
    fn preview(&self, _ctx: &ToolContext, _args: &Value) -> Option<Preview> {
        None
    }
    fn call(&self, ctx: &ToolContext, args: &Value) -> Result<Value, ToolError>;
}

/// What a file edit would change: the diff shown in the permission prompt, and the content
/// hashes it was computed from, which bind the approval to that content.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Preview {
    /// As the tools show it: repository-relative inside the repository.
    pub path: String,
    /// Unified diff (cut when long, like a tool result's).
    pub diff: String,
    /// `None`: the file does not exist yet.
    pub before_sha256: Option<String>,
    pub after_sha256: String,
}

/// Refuses a call whose change is no longer the one the user approved: the file (or editor
/// buffer) changed between the prompt and the answer, so the diff shown is not what would be
/// written. Recomputed right before the call; the model redoes the edit and the user is asked
/// again with the new diff.
pub fn confirm_preview(
    tool: &dyn Tool,
    ctx: &ToolContext,
    args: &Value,
    shown: &Preview,
) -> Result<(), ToolError> {
    let now = tool.preview(ctx, args);
    let same = now.as_ref().is_some_and(|p| {
        p.before_sha256 == shown.before_sha256 && p.after_sha256 == shown.after_sha256
    });
    if same {
        return Ok(());
    }
    Err(ToolError::new(
        "changed_since_prompt",
        format!(
            "{} changed after the user was shown the diff, so the approved change was not \
             applied (nothing was written). Read the file again and redo the edit; the user \
             will see the new diff.",
            shown.path
        ),
    ))
}
