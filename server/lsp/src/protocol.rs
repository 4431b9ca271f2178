//! The `noctune/*` extension of the protocol: method names and their JSON shapes. The one
//! description for humans is `docs/lsp-protocol.md`; the editor clients mirror these names
//! (`editors/vscode/src/protocol.ts`, `editors/nvim/lua/noctune/protocol.lua`).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tower_lsp_server::ls_types::{NumberOrString, Range, Uri, notification::Notification};

pub const CHAT: &str = "noctune/chat";
pub const CHAT_DELTA: &str = "noctune/chatDelta";
pub const CHAT_CANCEL: &str = "noctune/chatCancel";
pub const RUNS_START: &str = "noctune/runs/start";
pub const RUNS_LIST: &str = "noctune/runs/list";
pub const RUNS_STOP: &str = "noctune/runs/stop";
pub const APPROVALS: &str = "noctune/approvals";
pub const PACKS: &str = "noctune/packs";
pub const STUDIO_URL: &str = "noctune/studioUrl";

/// `workspace/executeCommand` commands.
pub const CMD_APPROVE: &str = "noctune.approve";
pub const CMD_REJECT: &str = "noctune.reject";
pub const CMD_SHOW_DIFF: &str = "noctune.showDiff";
pub const COMMANDS: [&str; 3] = [CMD_APPROVE, CMD_REJECT, CMD_SHOW_DIFF];

/// Diagnostics source.
pub const SOURCE: &str = "noctune";

/// The buttons of a permission prompt (`window/showMessageRequest`), in this order.
pub const ALLOW_ONCE: &str = "Allow once";
pub const ALLOW_SESSION: &str = "Allow this session";
pub const ALLOW_ALWAYS: &str = "Always allow";
pub const DENY: &str = "Deny";

/// Code action titles.
pub const ACTION_APPROVE: &str = "Approve";
pub const ACTION_REJECT: &str = "Reject";
pub const ACTION_SHOW_DIFF: &str = "Show diff";

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatParams {
    pub session: Option<String>,
    pub message: String,
    #[serde(default)]
    pub context: ChatContext,
    /// Chosen by the client so it can route deltas (and cancel) before the first one arrives;
    /// generated when absent.
    pub request_id: Option<NumberOrString>,
    pub profile: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ChatContext {
    pub uri: Option<Uri>,
    pub selection: Option<Range>,
    /// The selected text as the client sees it (else taken from the synced document).
    pub text: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatCancelParams {
    pub request_id: Option<NumberOrString>,
    pub session: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunsStartParams {
    pub pack: String,
    /// A repository other than the workspace's (absolute path); it must be inside the allowed
    /// roots of the workspace's repository.
    pub repo: Option<String>,
    pub profile: Option<String>,
    pub work_done_token: Option<NumberOrString>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RunsStopParams {
    pub run_id: String,
    pub grace_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ApprovalsParams {
    pub run_id: Option<String>,
    /// Also decided and auto-approved ones (default: pending only).
    #[serde(default)]
    pub all: bool,
}

#[derive(Debug, Default, Deserialize)]
pub struct StudioUrlParams {
    /// Also ask the client to open it (`window/showDocument`, external).
    #[serde(default)]
    pub open: bool,
}

/// Arguments of `noctune.approve` / `noctune.reject` / `noctune.showDiff`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DecideArgs {
    pub run_id: String,
    pub approval_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A pending (or, with `all`, any) approval of a run on this workspace.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ApprovalItem {
    pub run_id: String,
    pub pack: String,
    pub approval_id: String,
    pub file_path: String,
    pub uri: String,
    /// 0-based line of the first changed line in the user's file.
    pub line: u32,
    pub symbol: String,
    pub risk_score: u8,
    pub reason: String,
    pub diff: String,
    pub status: String,
    pub created_at: String,
    pub lines_changed: u32,
    pub decision: Option<Value>,
}

/// `noctune/chatDelta`.
pub enum ChatDelta {}

impl Notification for ChatDelta {
    type Params = Value;
    const METHOD: &'static str = CHAT_DELTA;
}

pub fn id_string(id: &NumberOrString) -> String {
    match id {
        NumberOrString::Number(n) => n.to_string(),
        NumberOrString::String(s) => s.clone(),
    }
}
