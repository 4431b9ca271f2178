//! Failed tool calls: a facade error (or bad arguments) becomes a `CallToolResult` with
//! `isError: true` whose text is `<code>: <message>`, and the same `{error, message}` in the
//! result's `_meta` under [`ERROR_META_KEY`]. Never a protocol error, a crash or a hung call.
//!
//! Why not `structuredContent`: a tool's declared output schema describes its success, and
//! official SDK clients validate any `structuredContent` against it, so an error there would
//! be thrown away as a schema violation and the agent would never see our message.

use super::types::ToolErrorOut;
use noctune_studio::{ErrorCode, OpError};
use rmcp::model::{CallToolResult, JsonObject, MetaObject};

/// Where an error result's `_meta` carries `{error, message}` (schema: [`ToolErrorOut`]).
pub const ERROR_META_KEY: &str = "io.noctune/error";

pub fn into_result(e: OpError) -> CallToolResult {
    let mut r = CallToolResult::error(vec![rmcp::model::ContentBlock::text(format!(
        "{}: {}",
        e.code, e.message
    ))]);
    let out = ToolErrorOut::from(e);
    if let Ok(serde_json::Value::Object(v)) = serde_json::to_value(&out) {
        let mut meta = JsonObject::new();
        meta.insert(ERROR_META_KEY.into(), serde_json::Value::Object(v));
        r.meta = Some(MetaObject(meta));
    }
    r
}

/// Parses a tool's arguments; a wrong shape is a tool error naming the problem.
pub fn parse_args<T: serde::de::DeserializeOwned>(
    tool: &str,
    args: rmcp::model::JsonObject,
) -> Result<T, OpError> {
    serde_json::from_value(serde_json::Value::Object(args)).map_err(|e| {
        OpError::new(
            ErrorCode::InvalidArguments,
            format!(
                "{tool}: bad arguments: {e}. See the tool's inputSchema (tools/list) for the expected fields."
            ),
        )
    })
}
