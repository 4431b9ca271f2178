//! One wire model: `editors/vscode/schema/wire.json` is what `noctune_studio::schema::wire_model`
//! generates from the Rust types (the editors' protocol mirrors are checked against that file by
//! `editors/vscode/test/wire.test.mjs`), and the HTTP OpenAPI components and the MCP tools'
//! output schemas are the same schemas.
//!
//! After changing a wire type: `NOCTUNE_BLESS=1 cargo test --test it wire_` rewrites the file.

use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::Arc;

fn wire_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("editors/vscode/schema/wire.json")
}

fn generated() -> String {
    let mut text = serde_json::to_string_pretty(&noctune_studio::schema::wire_model()).unwrap();
    text.push('\n');
    text
}

#[test]
fn wire_json_is_generated_from_the_types() {
    let path = wire_path();
    let want = generated();
    if std::env::var_os("NOCTUNE_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &want).unwrap();
        return;
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "{} is stale (or missing): regenerate it with `NOCTUNE_BLESS=1 cargo test --test it wire_` \
         and commit it",
        path.display()
    );
}

/// `s` with references into `$defs` written as references into OpenAPI components.
fn as_components(s: &Value) -> Value {
    serde_json::from_str(
        &s.to_string()
            .replace("\"#/$defs/", "\"#/components/schemas/"),
    )
    .unwrap()
}

#[test]
fn wire_records_are_the_openapi_components() {
    let wire = noctune_studio::schema::wire_model();
    let doc = noctune_http::openapi_json().unwrap();
    let components = &doc["components"]["schemas"];
    for (name, s) in wire["$defs"].as_object().unwrap() {
        if components.get(name).is_some() {
            assert_eq!(
                components[name],
                as_components(s),
                "{name} differs between wire.json and the OpenAPI document"
            );
        }
    }
    for name in [
        "RunRecord",
        "ApprovalView",
        "ApprovalDecision",
        "Event",
        "RepoConfig",
    ] {
        assert!(components.get(name).is_some(), "{name} is not in OpenAPI");
    }
}

/// The MCP tools' outputs are the same records: a run is RunRecord plus `terminal`, approvals
/// are ApprovalView, a decision is ApprovalDecision (or a BulkDecision), events are Event.
#[test]
fn wire_records_are_the_mcp_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let studio = Arc::new(noctune_studio::Studio::open(&dir.path().join("audit.db")).unwrap());
    let tools = noctune_mcp::NoctuneMcp::new(studio).tools();
    let output = |name: &str| -> Value {
        let t = tools.iter().find(|t| t.name == name).unwrap();
        Value::Object((*t.output_schema.clone().unwrap()).clone())
    };
    let wire = noctune_studio::schema::wire_model();
    let defs = &wire["$defs"];
    // A def of the tool's own schema equals wire.json's def of that name.
    let same_defs = |tool: &str, out: &Value| {
        for (name, s) in out["$defs"].as_object().into_iter().flatten() {
            assert_eq!(s, &defs[name], "{tool}: {name} differs from wire.json's");
        }
    };
    for tool in ["enqueue_run", "get_status", "stop_run"] {
        let out = output(tool);
        let mut props = out["properties"].as_object().unwrap().clone();
        assert_eq!(
            props.remove("terminal"),
            Some(
                json!({"type": "boolean", "description": "True once the run can no longer change (done, failed or stopped)."})
            )
        );
        assert_eq!(
            Value::Object(props),
            defs["RunRecord"]["properties"],
            "{tool}"
        );
        same_defs(tool, &out);
    }
    let approvals = output("list_approvals");
    assert_eq!(
        approvals["properties"]["approvals"]["items"],
        json!({"$ref": "#/$defs/ApprovalView"})
    );
    same_defs("list_approvals", &approvals);
    // One decision, or (all_pending) the bulk decision with each approval's outcome.
    let decide = output("decide_approval");
    assert_eq!(decide["type"], "object");
    assert_eq!(
        decide["anyOf"],
        json!([{"$ref": "#/$defs/ApprovalDecision"}, {"$ref": "#/$defs/BulkDecision"}])
    );
    same_defs("decide_approval", &decide);
    let events = output("tail_events");
    assert_eq!(
        events["properties"]["events"]["items"],
        json!({"$ref": "#/$defs/Event"})
    );
    same_defs("tail_events", &events);
}
