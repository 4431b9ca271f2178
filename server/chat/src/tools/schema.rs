//! The published argument schemas of the chat tools, generated from each tool's argument struct
//! with schemars and cut down to what models and llama-server accept: a flat object schema with
//! no `$schema`, `title`, `$ref`/`$defs`, `null` alternatives for optional fields, or `format`s
//! outside JSON Schema 2020-12 (schemars adds `uint`, `int64`, `double`, ... for Rust numbers;
//! the range is stated by `minimum`/`maximum` where it matters).
//!
//! Only the schema comes from the struct: the tools still parse their arguments leniently from
//! the JSON value (numbers sent as strings, alias keys), see `common.rs`.

use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value};

#[cfg(test)]
use noctune_core::json_schema::STANDARD_FORMATS;
use noctune_core::json_schema::standard_formats_only;

/// The arguments schema of a tool whose arguments are `T`.
pub(crate) fn args_schema<T: JsonSchema>() -> Value {
    let generator = SchemaSettings::draft2020_12()
        .with(|s| {
            s.meta_schema = None;
            s.inline_subschemas = true;
        })
        .into_generator();
    let schema = generator.into_root_schema_for::<T>();
    let mut value = serde_json::to_value(schema).unwrap_or_else(|_| Value::Object(Map::new()));
    flatten(&mut value);
    value
}

/// Post-processes a generated root schema (see the module doc).
fn flatten(root: &mut Value) {
    let Some(obj) = root.as_object_mut() else {
        return;
    };
    obj.remove("$schema");
    obj.remove("title");
    let defs = match obj.remove("$defs") {
        Some(Value::Object(defs)) => defs,
        _ => Map::new(),
    };
    inline_refs(root, &defs, 0);
    standard_formats_only(root);
    if let Some(props) = root.get_mut("properties").and_then(Value::as_object_mut) {
        props.values_mut().for_each(drop_null_alternative);
    }
}

/// Replaces every `{"$ref": "#/$defs/X", ...}` by the definition `X` (with the ref's sibling
/// keywords, such as a field's `description`, kept over the definition's).
fn inline_refs(schema: &mut Value, defs: &Map<String, Value>, depth: usize) {
    match schema {
        Value::Object(m) => {
            let target = m
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix("#/$defs/"))
                .and_then(|name| defs.get(name));
            if let (Some(Value::Object(def)), true) = (target, depth < 32) {
                m.remove("$ref");
                let mut merged = def.clone();
                merged.remove("title");
                merged.extend(std::mem::take(m));
                *m = merged;
                inline_refs(schema, defs, depth + 1);
                return;
            }
            m.values_mut().for_each(|v| inline_refs(v, defs, depth));
        }
        Value::Array(a) => a.iter_mut().for_each(|v| inline_refs(v, defs, depth)),
        _ => {}
    }
}

/// An optional field (`Option<T>`) is generated as `"type": [T, "null"]` (and a `null` in its
/// `enum`); the tools' schemas state optionality by `required` alone, as they always did.
fn drop_null_alternative(prop: &mut Value) {
    let Some(m) = prop.as_object_mut() else {
        return;
    };
    if let Some(Value::Array(types)) = m.get_mut("type") {
        types.retain(|t| t != "null");
        if types.len() == 1 {
            let only = types.remove(0);
            m.insert("type".into(), only);
        }
    }
    if let Some(Value::Array(values)) = m.get_mut("enum") {
        values.retain(|v| !v.is_null());
    }
    if m.get("default").is_some_and(Value::is_null) {
        m.remove("default");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::default_tools;
    use crate::tools::files::LIST_MAX;
    use crate::tools::runs::RunControl;
    use crate::tools::search::SEARCH_MAX;
    use noctune_core::{
        ApprovalDecision, ApprovalView, Decision, Event, OpError, RunRecord, StartRequest,
    };
    use serde_json::json;
    use std::collections::BTreeMap;
    use std::sync::Arc;

    struct NoRuns;

    impl RunControl for NoRuns {
        fn start(&self, _: &StartRequest) -> Result<RunRecord, OpError> {
            unreachable!()
        }
        fn status(&self, _: &str) -> Result<RunRecord, OpError> {
            unreachable!()
        }
        fn stop(&self, _: &str) -> Result<RunRecord, OpError> {
            unreachable!()
        }
        fn events(&self, _: &str, _: u64, _: usize) -> Result<Vec<Event>, OpError> {
            unreachable!()
        }
        fn approvals(&self, _: &str) -> Result<Vec<ApprovalView>, OpError> {
            unreachable!()
        }
        fn decide(
            &self,
            _: &str,
            _: &str,
            _: Decision,
            _: &str,
            _: &str,
        ) -> Result<ApprovalDecision, OpError> {
            unreachable!()
        }
    }

    /// The hand-written schemas the tools published before they were generated: the migration
    /// must not change what the model sees.
    fn hand_written() -> BTreeMap<&'static str, Value> {
        BTreeMap::from([
            (
                "editFile",
                json!({
                    "type": "object",
                    "properties": {
                        "path": {"type": "string", "description": "File path relative to the repository root"},
                        "old_text": {"type": "string", "description": "Exact text to replace, copied from the file (no line numbers)"},
                        "new_text": {"type": "string", "description": "Replacement text (\"\" deletes)"},
                        "occurrence": {"type": "integer", "minimum": 1, "description": "Which match (1-based) if old_text occurs more than once"},
                        "edits": {
                            "type": "array",
                            "description": "Several edits of this file, all or none (instead of old_text/new_text)",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "old_text": {"type": "string"},
                                    "new_text": {"type": "string"}
                                },
                                "required": ["old_text", "new_text"]
                            }
                        }
                    },
                    "required": ["path"]
                }),
            ),
            (
                "readFile",
                json!({
                    "type": "object",
                    "properties": {
                        "path": {"type": "string", "description": "File path relative to the repository root, e.g. src/app.py"},
                        "start_line": {"type": "integer", "minimum": 1, "description": "First line to read (1-based, default 1)"},
                        "end_line": {"type": "integer", "minimum": 1, "description": "Last line to read, inclusive (default: end of file)"}
                    },
                    "required": ["path"]
                }),
            ),
            (
                "listFiles",
                json!({
                    "type": "object",
                    "properties": {
                        "glob": {"type": "string", "description": "Only paths matching this glob, e.g. *.py or src/**/*.rs"},
                        "path": {"type": "string", "description": "Folder to list, relative to the repository root (default: the whole repository)"},
                        "max": {"type": "integer", "minimum": 1, "maximum": LIST_MAX, "description": "At most this many paths (default 500)"}
                    }
                }),
            ),
            (
                "search",
                json!({
                    "type": "object",
                    "properties": {
                        "pattern": {"type": "string", "description": "Regular expression (Rust syntax) or, with literal, plain text"},
                        "literal": {"type": "boolean", "description": "Treat pattern as plain text (default false)"},
                        "glob": {"type": "string", "description": "Only files matching this glob, e.g. *.py or src/**/*.rs"},
                        "path": {"type": "string", "description": "Folder (or file) to search, relative to the repository root (default: all)"},
                        "max_results": {"type": "integer", "minimum": 1, "maximum": SEARCH_MAX, "description": "At most this many matching lines (default 100)"},
                        "case_insensitive": {"type": "boolean", "description": "Ignore case (default false)"}
                    },
                    "required": ["pattern"]
                }),
            ),
            (
                "writeFile",
                json!({
                    "type": "object",
                    "properties": {
                        "path": {"type": "string", "description": "File path relative to the repository root"},
                        "content": {"type": "string", "description": "The complete new content of the file (no line numbers)"}
                    },
                    "required": ["path", "content"]
                }),
            ),
            (
                "replaceLines",
                json!({
                    "type": "object",
                    "properties": {
                        "path": {"type": "string", "description": "File path relative to the repository root"},
                        "start_line": {"type": "integer", "minimum": 1, "description": "First line to replace (1-based)"},
                        "end_line": {"type": "integer", "minimum": 0, "description": "Last line to replace, inclusive"},
                        "new_text": {"type": "string", "description": "Replacement lines, without line numbers"}
                    },
                    "required": ["path", "start_line", "end_line", "new_text"]
                }),
            ),
            (
                "noctuneStart",
                json!({
                    "type": "object",
                    "properties": {
                        "pack": {"type": "string", "description": "policy pack name, e.g. lint_fix"},
                        "profile": {"type": "string", "description": "model profile for llm packs (optional)"}
                    },
                    "required": ["pack"]
                }),
            ),
            (
                "noctuneStop",
                json!({
                    "type": "object",
                    "properties": {"run_id": {"type": "string"}},
                    "required": ["run_id"]
                }),
            ),
            (
                "noctuneEvents",
                json!({
                    "type": "object",
                    "properties": {
                        "run_id": {"type": "string"},
                        "cursor": {"type": "integer", "minimum": 0},
                        "limit": {"type": "integer", "minimum": 1, "maximum": 200}
                    },
                    "required": ["run_id"]
                }),
            ),
            (
                "noctuneApprovals",
                json!({
                    "type": "object",
                    "properties": {
                        "run_id": {"type": "string"},
                        "pending_only": {"type": "boolean"}
                    },
                    "required": ["run_id"]
                }),
            ),
            (
                "noctuneDecide",
                json!({
                    "type": "object",
                    "properties": {
                        "run_id": {"type": "string"},
                        "approval_id": {"type": "string"},
                        "decision": {"type": "string", "enum": ["approve", "reject"]},
                        "reason": {"type": "string"}
                    },
                    "required": ["run_id", "approval_id", "decision"]
                }),
            ),
        ])
    }

    /// No `$ref`, `$defs`, `$schema`, `title` or non-standard `format` anywhere.
    fn assert_plain(name: &str, v: &Value) {
        match v {
            Value::Object(m) => {
                for key in ["$ref", "$defs", "definitions", "$schema"] {
                    assert!(!m.contains_key(key), "{name}: {key} in {v}");
                }
                if let Some(f) = m.get("format") {
                    let f = f.as_str().unwrap_or_default();
                    assert!(STANDARD_FORMATS.contains(&f), "{name}: format {f}");
                }
                for (k, sub) in m {
                    if k == "properties" {
                        let props = sub.as_object().expect("properties is an object");
                        props.values().for_each(|p| assert_plain(name, p));
                    } else {
                        assert_ne!(k, "title", "{name}: title in {v}");
                        assert_plain(name, sub);
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|x| assert_plain(name, x)),
            _ => {}
        }
    }

    #[test]
    fn every_tool_publishes_a_flat_object_schema_equal_to_the_hand_written_one() {
        let old = hand_written();
        let without_runs = default_tools(None);
        let with_runs = default_tools(Some(Arc::new(NoRuns)));
        assert!(with_runs.len() > without_runs.len());
        let mut seen = Vec::new();
        for tool in without_runs.iter().chain(&with_runs) {
            let name = tool.name();
            let schema = tool.parameters();
            assert_eq!(schema["type"], "object", "{name}: {schema}");
            let props = schema["properties"]
                .as_object()
                .unwrap_or_else(|| panic!("{name}: no properties in {schema}"));
            assert!(!props.is_empty(), "{name}");
            if let Some(required) = schema.get("required") {
                for r in required.as_array().expect("required is an array") {
                    let r = r.as_str().expect("required names are strings");
                    assert!(props.contains_key(r), "{name}: required {r} is no property");
                }
            }
            assert_plain(name, &schema);
            let expected = old
                .get(name)
                .unwrap_or_else(|| panic!("{name}: no hand-written schema to compare"));
            assert_eq!(&schema, expected, "{name}");
            seen.push(name);
        }
        for name in ["readFile", "noctuneDecide"] {
            assert!(seen.contains(&name), "{name} not among the default tools");
        }
        for name in old.keys() {
            assert!(seen.contains(name), "{name} not among the default tools");
        }
    }
}
