//! `/api/openapi.json` is generated (route table + schemars): it is a well-formed OpenAPI 3.1
//! document whose schemas are valid JSON Schema 2020-12 with standard formats only and
//! resolvable `$ref`s, its schemas are the Rust types' (what the server serialises has exactly
//! the documented fields), and the real server's answers fit the schemas documented for them.

use crate::http_support::Setup;
use noctune_studio::schema::{STANDARD_FORMATS, refs, unresolved_refs};
use serde_json::{Value, json};
use std::collections::BTreeSet;

fn doc() -> Value {
    noctune_http::openapi_json().expect("the OpenAPI document builds")
}

/// Every value of `key` anywhere in `v`.
fn values_of<'a>(v: &'a Value, key: &str, out: &mut Vec<&'a Value>) {
    match v {
        Value::Object(m) => {
            if let Some(x) = m.get(key) {
                out.push(x);
            }
            m.values().for_each(|x| values_of(x, key, out));
        }
        Value::Array(a) => a.iter().for_each(|x| values_of(x, key, out)),
        _ => {}
    }
}

/// A validator for `schema`, a schema inside `doc` (its `$ref`s point into `doc`).
fn validator(doc: &Value, schema: &Value) -> jsonschema::Validator {
    let wrapper = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "components": doc["components"],
        "allOf": [schema],
    });
    jsonschema::draft202012::new(&wrapper)
        .unwrap_or_else(|e| panic!("cannot compile {schema}: {e}"))
}

#[test]
fn the_generated_document_is_well_formed_openapi_3_1() {
    let doc = doc();
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    // References: all local, all into components, all resolve; no leftover `$defs`.
    assert_eq!(unresolved_refs(&doc), Vec::<String>::new());
    for r in refs(&doc) {
        assert!(r.starts_with("#/components/schemas/"), "{r}");
    }
    let mut defs = Vec::new();
    values_of(&doc, "$defs", &mut defs);
    assert!(defs.is_empty(), "leftover $defs: {defs:?}");
    // Formats: JSON Schema 2020-12's own only (no uint32, int64, double, ...).
    let mut formats = Vec::new();
    values_of(&doc, "format", &mut formats);
    for f in formats {
        let f = f.as_str().unwrap_or_default();
        assert!(STANDARD_FORMATS.contains(&f), "non-standard format {f:?}");
    }
    // Every component is a valid 2020-12 schema and compiles with its references.
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for (name, s) in schemas {
        jsonschema::draft202012::meta::validate(s)
            .unwrap_or_else(|e| panic!("component {name} is not a valid schema: {e}\n{s:#}"));
        validator(&doc, s);
    }
    // Operations: responses with descriptions, parameters that say where they are, request
    // bodies and JSON answers with schemas.
    let mut operation_ids = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        assert!(path.starts_with('/'), "{path}");
        for (method, op) in item.as_object().unwrap() {
            assert!(
                ["get", "post", "delete"].contains(&method.as_str()),
                "{method} {path}"
            );
            operation_ids += 1;
            assert!(op["summary"].as_str().is_some_and(|s| !s.is_empty()));
            let mut seen = BTreeSet::new();
            for p in op["parameters"].as_array().unwrap() {
                let (name, at) = (p["name"].as_str().unwrap(), p["in"].as_str().unwrap());
                assert!(
                    ["path", "query", "header"].contains(&at),
                    "{method} {path}: {p}"
                );
                assert!(seen.insert((name, at)), "{method} {path}: {name} twice");
                assert!(p["schema"].is_object(), "{method} {path}: {p}");
                if at == "path" {
                    assert_eq!(p["required"], true, "{method} {path}: {p}");
                    assert!(
                        path.contains(&format!("{{{name}}}")),
                        "{method} {path}: {p}"
                    );
                }
                // A query parameter is never null: absent is its None.
                let ty = &p["schema"]["type"];
                assert!(
                    !(ty.as_array().is_some_and(|t| t.contains(&json!("null")))),
                    "{method} {path}: {p}"
                );
            }
            let responses = op["responses"].as_object().unwrap();
            assert!(!responses.is_empty(), "{method} {path}");
            for (status, r) in responses {
                assert!(
                    status.len() == 3 && status.parse::<u16>().is_ok(),
                    "{method} {path}: {status}"
                );
                assert!(r["description"].is_string(), "{method} {path} {status}");
                // (MCP's JSON-RPC messages are the MCP specification's, not described here.)
                if let Some(j) = r.get("content").and_then(|c| c.get("application/json"))
                    && path != "/mcp"
                {
                    assert!(j["schema"].is_object(), "{method} {path} {status}");
                }
            }
            if let Some(b) = op.get("requestBody") {
                assert!(
                    b["content"]["application/json"]["schema"].is_object(),
                    "{method} {path}"
                );
            }
        }
    }
    assert!(operation_ids >= 30, "{operation_ids} operations");
}

#[test]
fn the_schemas_are_the_rust_types() {
    let doc = doc();
    let s = &doc["components"]["schemas"];
    // What the server serialises as a RunRecord has exactly the documented properties, and the
    // serde-required ones (every field: none is skipped) are required.
    let rec = noctune_core::RunRecord {
        run_id: noctune_core::RunId::parse("20990101T000000Z-00000000").unwrap(),
        status: noctune_core::RunStatus::Running,
        started_at: "t".into(),
        updated_at: "t".into(),
        ended_at: None,
        repo_root: "/r".into(),
        pack: "lint_fix".into(),
        profile: "default".into(),
        branch: "b".into(),
        head_sha: "0".into(),
        error: None,
        resume_policy: noctune_core::ResumePolicy::Continue,
        worker_pid: Some(1),
        worker_start_time: None,
        stage: "propose".into(),
        commits: None,
        reason: None,
        summary: None,
    };
    let sent = serde_json::to_value(&rec).unwrap();
    let keys: BTreeSet<&String> = sent.as_object().unwrap().keys().collect();
    let documented: BTreeSet<&String> = s["RunRecord"]["properties"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(keys, documented);
    let required: BTreeSet<&str> = s["RunRecord"]["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(required, keys.iter().map(|k| k.as_str()).collect());
    assert!(validator(&doc, &s["RunRecord"]).is_valid(&sent));
    // Status enums come from the core's enums.
    assert_eq!(
        s["RunStatus"]["enum"],
        json!(noctune_core::RunStatus::ALL.map(|x| x.as_str()))
    );
    assert_eq!(
        s["ApprovalStatus"]["enum"],
        json!([
            "pending",
            "approved",
            "rejected",
            "auto_approved",
            "tampered"
        ])
    );
    // A run id in the document follows RunId's rule.
    let run_id = validator(&doc, &json!({"$ref": "#/components/schemas/RunId"}));
    for ok in ["20261125T101010Z-0a1b2c3d", "_x", "a"] {
        assert!(run_id.is_valid(&json!(ok)), "{ok}");
        assert!(noctune_core::RunId::parse(ok).is_ok());
    }
    for bad in ["", "-rf", "../x", "a b", &"x".repeat(65)] {
        assert!(!run_id.is_valid(&json!(bad)), "{bad:?}");
        assert!(noctune_core::RunId::parse(bad).is_err());
    }
    // Request bodies are the handlers' structs: unknown fields refused, defaults optional.
    let start = &s["StartRequest"];
    assert_eq!(start["additionalProperties"], false);
    assert_eq!(start["required"], json!(["pack"]));
    let decide = &s["DecideRequest"];
    assert_eq!(decide["required"], json!(["approval_id", "decision"]));
    assert_eq!(
        decide["properties"]["decision"]["$ref"],
        "#/components/schemas/Decision"
    );
    // The error body.
    assert_eq!(s["Error"]["required"], json!(["error", "message"]));
    // Query parameters come from the query structs, with their limits.
    let events = &doc["paths"]["/api/runs/{run_id}/events"]["get"]["parameters"];
    let limit = events
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "limit")
        .unwrap();
    assert_eq!(limit["in"], "query");
    assert_eq!(limit["required"], false);
    assert_eq!(limit["schema"]["minimum"], 1);
    assert_eq!(
        limit["schema"]["maximum"],
        noctune_studio::limits::MAX_EVENT_PAGE
    );
}

/// Validates an answer against the schema the document gives for its operation and status.
#[track_caller]
fn conforms(doc: &Value, method: &str, template: &str, status: u16, body: &Value) {
    let op = &doc["paths"][template][method];
    assert!(op.is_object(), "{method} {template} is not documented");
    let schema = &op["responses"][status.to_string()]["content"]["application/json"]["schema"];
    assert!(
        schema.is_object(),
        "{method} {template}: no JSON schema for {status}"
    );
    let v = validator(doc, schema);
    let errors: Vec<String> = v
        .iter_errors(body)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{method} {template} {status}: the answer does not fit its schema: {errors:#?}\n{body:#}"
    );
}

#[test]
fn the_servers_answers_fit_their_documented_schemas() {
    let s = Setup::new();
    let st = &s.studio;
    let doc = st.json("/api/openapi.json");
    assert_eq!(doc, self::doc(), "the server serves the generated document");

    let r = st.post_json("/api/runs", &json!({"pack": "lint_fix"}));
    assert_eq!(r.status, 201, "{}", r.text());
    conforms(&doc, "post", "/api/runs", 201, &r.json());
    let run_id = r.json()["run_id"].as_str().unwrap().to_string();
    st.wait_status(&run_id, 90, |s| s == "waiting_approval");

    let get = |template: &str, path: String| {
        let r = st.get(&path);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        conforms(&doc, "get", template, 200, &r.json());
        r.json()
    };
    get("/api/config", "/api/config".into());
    get("/api/runs", "/api/runs".into());
    get("/api/runs/{run_id}", format!("/api/runs/{run_id}"));
    let events = get(
        "/api/runs/{run_id}/events",
        format!("/api/runs/{run_id}/events?cursor=0&limit=5000"),
    );
    assert!(events["events"].as_array().unwrap().len() > 3);
    get(
        "/runs/{run_id}/events_db",
        format!("/runs/{run_id}/events_db?cursor=0"),
    );
    get(
        "/api/runs/{run_id}/patchsets",
        format!("/api/runs/{run_id}/patchsets"),
    );
    let approvals = get(
        "/api/runs/{run_id}/approvals",
        format!("/api/runs/{run_id}/approvals"),
    );
    let pending = approvals["approvals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["status"] == "pending")
        .expect("a pending approval")
        .clone();
    let r = st.post_json(
        &format!("/api/runs/{run_id}/decide"),
        &json!({"approval_id": pending["approval_id"], "decision": "approve", "reason": "fine"}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    conforms(&doc, "post", "/api/runs/{run_id}/decide", 200, &r.json());
    let decided = get(
        "/api/runs/{run_id}/approvals",
        format!("/api/runs/{run_id}/approvals"),
    );
    assert!(decided.to_string().contains("\"decided_by\":\"web\""));
    let done = st.wait_status(&run_id, 120, |s| s == "done");
    conforms(&doc, "get", "/api/runs/{run_id}", 200, &done);
    get(
        "/api/runs/{run_id}/patchsets",
        format!("/api/runs/{run_id}/patchsets"),
    );
    // Chat answers that need no model.
    get("/api/chat/profiles", "/api/chat/profiles".into());
    get("/api/chat/sessions", "/api/chat/sessions".into());
    get("/api/chat/grants", "/api/chat/grants".into());
    let r = st.post_json("/api/chat/sessions", &json!({}));
    assert_eq!(r.status, 201, "{}", r.text());
    conforms(&doc, "post", "/api/chat/sessions", 201, &r.json());
    // Errors fit the error body.
    let r = st.get("/api/runs/20990101T000000Z-00000000");
    assert_eq!(r.status, 404);
    conforms(&doc, "get", "/api/runs/{run_id}", 404, &r.json());
    let r = st.post_json("/api/runs", &json!({"pack": "lint_fix", "nope": 1}));
    assert_eq!(r.status, 400);
    conforms(&doc, "post", "/api/runs", 400, &r.json());
}
