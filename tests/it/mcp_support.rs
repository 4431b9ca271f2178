//! Test support for the MCP tests: a real rmcp client connected to the real `noctune mcp`
//! binary over stdio, which checks every request and response against the schemas the
//! server declares in `tools/list`.

#![allow(dead_code)]

use crate::support::cli::Noctune;
use crate::support::wait::poll_for_async;
use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig, Implementation,
    ProtocolVersion,
};
use rmcp::service::RunningService;
use rmcp::transport::TokioChildProcess;
use rmcp::{RoleClient, ServiceExt};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

pub const TOOLS: [&str; 6] = [
    "enqueue_run",
    "get_status",
    "tail_events",
    "list_approvals",
    "decide_approval",
    "stop_run",
];
/// Where a tool's `_meta` declares its error shape and an error result's `_meta` carries it.
pub const ERROR_SCHEMA_KEY: &str = "io.noctune/error";

pub struct Schemas {
    pub input: Value,
    pub output: Value,
    pub error: Value,
    input_v: jsonschema::Validator,
    output_v: jsonschema::Validator,
    error_v: jsonschema::Validator,
}

fn compile(tool: &str, what: &str, schema: &Value) -> jsonschema::Validator {
    jsonschema::meta::validate(schema).unwrap_or_else(|e| {
        panic!("{tool}: the declared {what} schema is not a valid JSON schema: {e}\n{schema:#}")
    });
    jsonschema::validator_for(schema)
        .unwrap_or_else(|e| panic!("{tool}: cannot compile the {what} schema: {e}"))
}

#[track_caller]
fn check(v: &jsonschema::Validator, tool: &str, what: &str, instance: &Value) {
    let errors: Vec<String> = v
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{tool}: {what} does not match its declared schema: {errors:#?}\n{instance:#}"
    );
}

pub struct McpSession {
    pub client: RunningService<RoleClient, ClientConfig>,
    pub schemas: BTreeMap<String, Schemas>,
}

/// `noctune mcp` with the test's private audit DB, connected with `client_name` as clientInfo.
pub async fn connect_stdio(
    nt: &Noctune,
    client_name: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> McpSession {
    let mut std_cmd = nt.cmd();
    std_cmd.arg("mcp").args(args);
    for (k, v) in env {
        std_cmd.env(k, v);
    }
    let cmd = tokio::process::Command::from(std_cmd);
    let transport = TokioChildProcess::new(cmd).expect("spawn noctune mcp");
    let info = ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new(client_name, "1.0"),
    )
    .with_protocol_version(ProtocolVersion::LATEST_WITH_INITIALIZE);
    let client = info
        .serve(transport)
        .await
        .expect("MCP handshake with noctune mcp");
    let tools = client.list_all_tools().await.expect("tools/list");
    let mut schemas = BTreeMap::new();
    for t in tools {
        let name = t.name.to_string();
        let input = Value::Object((*t.input_schema).clone());
        let output = Value::Object(
            (*t.output_schema
                .clone()
                .unwrap_or_else(|| panic!("{name} declares no outputSchema")))
            .clone(),
        );
        let error = t
            .meta
            .as_ref()
            .and_then(|m| m.0.get(ERROR_SCHEMA_KEY))
            .cloned()
            .unwrap_or_else(|| {
                panic!("{name} declares no error schema in _meta.{ERROR_SCHEMA_KEY}")
            });
        schemas.insert(
            name.clone(),
            Schemas {
                input_v: compile(&name, "input", &input),
                output_v: compile(&name, "output", &output),
                error_v: compile(&name, "error", &error),
                input,
                output,
                error,
            },
        );
    }
    McpSession { client, schemas }
}

impl McpSession {
    pub fn schemas(&self, tool: &str) -> &Schemas {
        self.schemas
            .get(tool)
            .unwrap_or_else(|| panic!("no tool {tool}"))
    }

    /// Whether `args` is a valid request for `tool` by its declared input schema.
    pub fn request_is_valid(&self, tool: &str, args: &Value) -> bool {
        self.schemas(tool).input_v.is_valid(args)
    }

    pub async fn call_raw(&self, tool: &str, args: Value) -> CallToolResult {
        let obj = args.as_object().cloned().unwrap_or_default();
        let fut = self
            .client
            .call_tool(CallToolRequestParams::new(tool.to_string()).with_arguments(obj));
        tokio::time::timeout(Duration::from_secs(60), fut)
            .await
            .unwrap_or_else(|_| panic!("{tool} hung for 60 s"))
            .unwrap_or_else(|e| panic!("{tool}: protocol error instead of a tool result: {e}"))
    }

    /// A valid request that must succeed: checks the request and the response against the
    /// declared schemas and returns the `structuredContent`.
    pub async fn ok(&self, tool: &str, args: Value) -> Value {
        check(&self.schemas(tool).input_v, tool, "the request", &args);
        let r = self.call_raw(tool, args).await;
        let text: Vec<String> = r
            .content
            .iter()
            .filter_map(|c| c.as_text().map(|t| t.text.clone()))
            .collect();
        assert_ne!(r.is_error, Some(true), "{tool} failed: {text:?}");
        let v = r
            .structured_content
            .clone()
            .unwrap_or_else(|| panic!("{tool}: no structuredContent"));
        check(&self.schemas(tool).output_v, tool, "the response", &v);
        // The text content carries the same JSON (for clients without structured output).
        let from_text: Value = serde_json::from_str(text.first().map(String::as_str).unwrap_or(""))
            .expect("text content is JSON");
        assert_eq!(from_text, v, "{tool}: text and structured content differ");
        v
    }

    /// A call that must fail with `code`: checks the error result against the declared error
    /// schema and returns its message.
    pub async fn err(&self, tool: &str, args: Value, code: &str) -> String {
        let r = self.call_raw(tool, args).await;
        assert_eq!(
            r.is_error,
            Some(true),
            "{tool} should have failed with {code}: {r:?}"
        );
        // Nothing in structuredContent: clients validate it against the success schema.
        assert_eq!(
            r.structured_content, None,
            "{tool}: error with structuredContent"
        );
        let v = r
            .meta
            .as_ref()
            .and_then(|m| m.0.get(ERROR_SCHEMA_KEY))
            .cloned()
            .unwrap_or_else(|| panic!("{tool}: error without _meta.{ERROR_SCHEMA_KEY}"));
        check(&self.schemas(tool).error_v, tool, "the error result", &v);
        assert_eq!(v["error"], code, "{tool}: {v:#}");
        let msg = v["message"].as_str().unwrap().to_string();
        let text = r
            .content
            .iter()
            .filter_map(|c| c.as_text())
            .map(|t| t.text.clone())
            .collect::<String>();
        assert_eq!(
            text,
            format!("{code}: {msg}"),
            "{tool}: the text content should carry the code and message"
        );
        msg
    }

    /// Pages through `tail_events` from `cursor` until an event satisfies `pred`, or the run
    /// is over and every event was read. Returns the events read and the next cursor.
    pub async fn tail_until(
        &self,
        run_id: &str,
        mut cursor: u64,
        secs: u64,
        pred: impl Fn(&Value) -> bool,
    ) -> (Vec<Value>, u64) {
        let mut seen = Vec::new();
        // One look: every page there is now; done when one matches or the run is over.
        let found = poll_for_async(Duration::from_secs(secs), async || {
            loop {
                let page = self
                    .ok(
                        "tail_events",
                        json!({"run_id": run_id, "cursor": cursor, "limit": 100}),
                    )
                    .await;
                let events = page["events"].as_array().unwrap().clone();
                for (i, e) in events.iter().enumerate() {
                    assert_eq!(
                        e["idx"].as_u64().unwrap(),
                        cursor + i as u64,
                        "contiguous idx"
                    );
                }
                cursor = page["next_cursor"].as_u64().unwrap();
                let hit = events.iter().any(&pred);
                seen.extend(events);
                let more = page["more"].as_bool().unwrap();
                let over =
                    ["done", "failed", "stopped"].contains(&page["status"].as_str().unwrap_or(""));
                if hit || (over && !more) {
                    return Some(());
                }
                if !more {
                    return None;
                }
            }
        })
        .await;
        if let Err(elapsed) = found {
            panic!("timed out after {elapsed:.1?} tailing {run_id}; events so far: {seen:#?}");
        }
        (seen, cursor)
    }
}
