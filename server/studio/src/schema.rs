//! The JSON Schemas the surfaces publish (the HTTP OpenAPI document, the MCP tools' input and
//! output schemas, the editors' `wire.json`), generated from the facade's types with schemars.
//!
//! Two rules hold for every published schema:
//! - only the `format`s JSON Schema 2020-12 defines ([`standard_formats_only`]; schemars adds
//!   `uint32`, `int64`, `double`, ... for Rust number types, which strict validators reject);
//! - every `$ref` resolves inside the document that carries it. [`Components`] generates all
//!   named schemas under one prefix (`#/components/schemas/` for OpenAPI, `#/$defs/` for a
//!   plain JSON Schema document) and rewrites the `$defs` of root schemas made elsewhere (such
//!   as the event schema) into it; [`unresolved_refs`] finds any that do not resolve.

use schemars::generate::SchemaSettings;
pub use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::{Map, Value};

/// The prefix of component references in an OpenAPI 3.1 document.
pub const OPENAPI_COMPONENTS: &str = "#/components/schemas/";
/// The prefix of definitions in a JSON Schema 2020-12 document.
pub const DEFS: &str = "#/$defs/";
/// JSON Schema 2020-12's meta-schema.
pub const DRAFT_2020_12: &str = "https://json-schema.org/draft/2020-12/schema";

pub use noctune_core::json_schema::{STANDARD_FORMATS, standard_formats_only};

/// [`standard_formats_only`] of a schema object (the form MCP tool schemas take).
pub fn standard_formats_only_object(mut schema: Map<String, Value>) -> Map<String, Value> {
    schema.values_mut().for_each(standard_formats_only);
    schema
}

/// Every `$ref` value in `v`, in document order.
pub fn refs(v: &Value) -> Vec<String> {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r.clone());
                }
                m.values().for_each(|x| walk(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(v, &mut out);
    out
}

/// The `$ref`s of `doc` that are not a JSON pointer (`#/...`, or `#` itself) to a value that
/// exists in `doc`: external references count as unresolved too, since published documents
/// must stand alone.
pub fn unresolved_refs(doc: &Value) -> Vec<String> {
    refs(doc)
        .into_iter()
        .filter(|r| match r.strip_prefix('#') {
            Some("") => false,
            Some(ptr) if ptr.starts_with('/') => doc.pointer(&percent_decode(ptr)).is_none(),
            _ => true,
        })
        .collect()
}

/// Decodes the `%XX` escapes a URI fragment may have (schemars escapes some characters of
/// schema names); the `~0`/`~1` escapes are the JSON pointer's own and stay.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(h) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(h);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| s.to_string())
}

/// Named schemas for one document, all under one prefix: Rust types by schemars (the
/// serialize contract for what the server sends, the deserialize contract for what it
/// accepts), root schemas made elsewhere, and hand-written ones.
pub struct Components {
    prefix: &'static str,
    output: SchemaGenerator,
    input: SchemaGenerator,
    /// Root schemas to embed, by the name they get.
    roots: Vec<(String, Value)>,
    /// Hand-written schemas, by name.
    named: Map<String, Value>,
}

/// One field of an input object: what a query string parameter is documented from.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub name: String,
    /// The field's schema without `null` (a parameter that is absent is the `None`).
    pub schema: Value,
    pub required: bool,
    pub description: Option<String>,
}

impl Components {
    /// Components referenced as `<prefix><Name>`: [`OPENAPI_COMPONENTS`] or [`DEFS`].
    pub fn new(prefix: &'static str) -> Components {
        let settings = |prefix: &str| {
            SchemaSettings::draft2020_12().with(|s| {
                s.definitions_path = prefix.trim_end_matches('/').to_string().into();
                s.meta_schema = None;
            })
        };
        Components {
            prefix,
            output: settings(prefix).for_serialize().into_generator(),
            input: settings(prefix).for_deserialize().into_generator(),
            roots: Vec::new(),
            named: Map::new(),
        }
    }

    /// The prefix references start with.
    pub fn prefix(&self) -> &'static str {
        self.prefix
    }

    /// A reference to the component `name`.
    pub fn reference(&self, name: &str) -> Value {
        serde_json::json!({ "$ref": format!("{}{name}", self.prefix) })
    }

    /// The schema of `T` as the server sends it: a `$ref` to its component for a named type,
    /// or an inline schema (`Vec<T>`, `Option<T>`, strings, ...).
    pub fn output<T: JsonSchema>(&mut self) -> Value {
        self.output.subschema_for::<T>().to_value()
    }

    /// The schema of `T` as the server accepts it (fields with a default are optional).
    pub fn input<T: JsonSchema>(&mut self) -> Value {
        self.input.subschema_for::<T>().to_value()
    }

    /// The fields of the input struct `T`, which is not made a component itself (query
    /// strings: each field becomes a parameter).
    pub fn input_fields<T: JsonSchema>(&mut self) -> Vec<Field> {
        let s = self.input.subschema_for::<T>().to_value();
        let object = match s.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let name = r.strip_prefix(self.prefix).unwrap_or(r).to_string();
                self.input
                    .definitions_mut()
                    .remove(&name)
                    .unwrap_or(Value::Null)
            }
            None => s,
        };
        let required: Vec<&str> = object
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut out = Vec::new();
        if let Some(props) = object.get("properties").and_then(Value::as_object) {
            for (name, schema) in props {
                let mut schema = non_null(schema.clone());
                let description = schema
                    .as_object_mut()
                    .and_then(|m| m.remove("description"))
                    .and_then(|d| d.as_str().map(str::to_string));
                out.push(Field {
                    name: name.clone(),
                    schema,
                    required: required.contains(&name.as_str()),
                    description,
                });
            }
        }
        out
    }

    /// Embeds a root schema made elsewhere (with its own `$defs` and `$ref: "#"`) as the
    /// component `name`, and returns a reference to it. Its definitions become components
    /// too; one whose name is taken by a different schema is renamed `<name>_<def>`.
    pub fn embed(&mut self, name: &str, root: Value) -> Value {
        self.roots.push((name.to_string(), root));
        self.reference(name)
    }

    /// Adds a hand-written schema as the component `name` (for types of crates that do not
    /// derive `JsonSchema`), and returns a reference to it.
    pub fn named(&mut self, name: &str, schema: Value) -> Value {
        self.named.insert(name.to_string(), schema);
        self.reference(name)
    }

    /// Every component, with standard formats only. Fails when two different schemas claim
    /// one name (a type whose request and response shapes differ needs two names).
    pub fn finish(mut self) -> Result<Map<String, Value>, String> {
        let mut out = self.output.take_definitions(true);
        let add = |out: &mut Map<String, Value>, name: String, schema: Value, from: &str| match out
            .get(&name)
        {
            Some(have) if *have != schema => Err(format!(
                "schema name {name} is used by two different schemas ({from}); rename one"
            )),
            _ => {
                out.insert(name, schema);
                Ok(())
            }
        };
        for (name, schema) in self.input.take_definitions(true) {
            add(&mut out, name, schema, "request and response")?;
        }
        for (name, schema) in std::mem::take(&mut self.named) {
            add(&mut out, name, schema, "hand-written")?;
        }
        for (name, root) in std::mem::take(&mut self.roots) {
            for (n, s) in embed_root(self.prefix, &name, root, &out) {
                add(&mut out, n, s, "embedded")?;
            }
        }
        for s in out.values_mut() {
            standard_formats_only(s);
        }
        Ok(out)
    }
}

/// `schema` without its `null` alternative: `type: [T, "null"]` → `type: T`, and
/// `anyOf: [S, {type: null}]` → `S`.
fn non_null(mut schema: Value) -> Value {
    if let Some(Value::Array(types)) = schema.get_mut("type") {
        types.retain(|t| t != "null");
        if types.len() == 1 {
            let t = types[0].clone();
            schema["type"] = t;
        }
    }
    let single = schema
        .get("anyOf")
        .or_else(|| schema.get("oneOf"))
        .and_then(Value::as_array)
        .and_then(|alts| {
            let rest: Vec<&Value> = alts.iter().filter(|a| a["type"] != "null").collect();
            (rest.len() == 1 && alts.len() == 2).then(|| rest[0].clone())
        });
    match single {
        Some(mut s) => {
            if let (Some(m), Some(d)) = (s.as_object_mut(), schema.get("description")) {
                m.entry("description").or_insert(d.clone());
            }
            s
        }
        None => schema,
    }
}

/// The components of a root schema under `prefix`: the root as `name`, each of its `$defs` by
/// its own name unless `taken` holds a different schema under it (then `<name>_<def>`), with
/// every internal `$ref` rewritten to match.
fn embed_root(
    prefix: &str,
    name: &str,
    mut root: Value,
    taken: &Map<String, Value>,
) -> Vec<(String, Value)> {
    let mut defs = match root.as_object_mut() {
        Some(m) => {
            m.remove("$schema");
            m.remove("$id");
            let mut defs = Map::new();
            for key in ["$defs", "definitions"] {
                if let Some(Value::Object(d)) = m.remove(key) {
                    defs.extend(d);
                }
            }
            defs
        }
        None => Map::new(),
    };
    // First pass with the plain names; a definition that then differs from what holds its
    // name already gets the prefixed one.
    let rename_with = |renamed: &dyn Fn(&str) -> String, v: &Value| {
        let mut v = v.clone();
        rewrite_refs(&mut v, prefix, name, renamed);
        v
    };
    let plain = |d: &str| d.to_string();
    let clash: Vec<String> = defs
        .iter()
        .filter(|(d, s)| {
            taken
                .get(d.as_str())
                .is_some_and(|have| *have != rename_with(&plain, s))
                || d.as_str() == name
        })
        .map(|(d, _)| d.clone())
        .collect();
    let renamed = |d: &str| {
        if clash.iter().any(|c| c == d) {
            format!("{name}_{d}")
        } else {
            d.to_string()
        }
    };
    let mut out = vec![(name.to_string(), rename_with(&renamed, &root))];
    for (d, s) in std::mem::take(&mut defs) {
        out.push((renamed(&d), rename_with(&renamed, &s)));
    }
    out
}

/// Rewrites the local `$ref`s of a root schema: `#` → the root's component, `#/$defs/X...` (or
/// `#/definitions/X...`) → `X`'s component (renamed by `renamed`) with the rest of the pointer.
fn rewrite_refs(v: &mut Value, prefix: &str, root_name: &str, renamed: &dyn Fn(&str) -> String) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get_mut("$ref") {
                if r == "#" {
                    *r = format!("{prefix}{root_name}");
                } else if let Some(rest) = r
                    .strip_prefix("#/$defs/")
                    .or_else(|| r.strip_prefix("#/definitions/"))
                {
                    let (def, tail) = match rest.find('/') {
                        Some(i) => (&rest[..i], &rest[i..]),
                        None => (rest, ""),
                    };
                    let def = percent_decode(def).replace("~1", "/").replace("~0", "~");
                    let target = renamed(&def).replace('~', "~0").replace('/', "~1");
                    *r = format!("{prefix}{target}{tail}");
                } else if let Some(tail) = r.strip_prefix("#/") {
                    // A pointer into the root itself.
                    *r = format!("{prefix}{root_name}/{tail}");
                }
            }
            m.values_mut()
                .for_each(|x| rewrite_refs(x, prefix, root_name, renamed));
        }
        Value::Array(a) => a
            .iter_mut()
            .for_each(|x| rewrite_refs(x, prefix, root_name, renamed)),
        _ => {}
    }
}

/// The wire model as one JSON Schema 2020-12 document: the records every surface sends
/// (runs, approvals, decisions and bulk decisions, patchsets, events, errors), each under `$defs`. Editors check
/// their protocol mirrors against it (`editors/vscode/schema/wire.json` is this, written by
/// `NOCTUNE_BLESS=1 cargo test --test it wire_`).
pub fn wire_model() -> Value {
    let mut c = Components::new(DEFS);
    c.output::<noctune_core::RunRecord>();
    c.output::<noctune_core::ApprovalView>();
    c.output::<noctune_core::BulkDecision>();
    c.output::<noctune_core::PatchsetPlan>();
    c.output::<crate::Commit>();
    c.output::<crate::RepoConfig>();
    c.output::<crate::ModelHealth>();
    c.output::<noctune_core::OpError>();
    c.output::<EventRecord>();
    let defs = c.finish().unwrap_or_else(|e| {
        let mut m = Map::new();
        m.insert("error".into(), Value::String(e));
        m
    });
    serde_json::json!({
        "$schema": DRAFT_2020_12,
        "title": "Noctune wire model",
        "description": "The records the server sends on every surface (HTTP, SSE, LSP, MCP), generated from the Rust types. Do not edit: regenerate with `NOCTUNE_BLESS=1 cargo test --test it wire_`.",
        "$defs": defs,
    })
}

/// The schema of [`noctune_core::Event`] for schemars, from [`event_schema`]: use it as
/// `#[schemars(with = "EventRecord")]` on an `Event` field (`Vec<EventRecord>` on a
/// `Vec<Event>`). It is the component `Event`, its definitions become components of the
/// document too.
pub struct EventRecord;

impl JsonSchema for EventRecord {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Event".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let path = generator.settings().definitions_path.to_string();
        let path = path
            .strip_prefix('#')
            .unwrap_or(&path)
            .trim_end_matches('/');
        let prefix = format!("#{path}/");
        let mut parts =
            embed_root(&prefix, "Event", event_schema(), generator.definitions()).into_iter();
        let root = parts.next().map(|(_, s)| s).unwrap_or(Value::Bool(true));
        for (name, schema) in parts {
            generator.definitions_mut().entry(name).or_insert(schema);
        }
        Schema::try_from(root).unwrap_or_default()
    }
}

/// The JSON Schema of one line of a run's `events.jsonl` (`{idx, ts, type, payload}`, one
/// alternative per event type): the core's typed events, as a root schema with its own `$defs`.
pub fn event_schema() -> Value {
    noctune_core::event::event_schema()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn non_standard_formats_go_and_standard_ones_stay() {
        let mut s = json!({"properties": {
            "a": {"type": "integer", "format": "uint32"},
            "b": {"type": "string", "format": "date-time"},
            "c": {"items": {"type": "number", "format": "double"}}}});
        standard_formats_only(&mut s);
        assert_eq!(
            s,
            json!({"properties": {
            "a": {"type": "integer"},
            "b": {"type": "string", "format": "date-time"},
            "c": {"items": {"type": "number"}}}})
        );
    }

    #[test]
    fn embedded_roots_get_their_defs_renamed_on_a_clash_and_every_ref_resolves() {
        let mut c = Components::new(OPENAPI_COMPONENTS);
        c.named("Taken", json!({"type": "string"}));
        c.embed(
            "Root",
            json!({
                "$schema": DRAFT_2020_12,
                "type": "object",
                "properties": {
                    "a": {"$ref": "#/$defs/Taken"},
                    "b": {"$ref": "#/$defs/Free"},
                    "c": {"$ref": "#/$defs/Free/properties/x"},
                    "self": {"$ref": "#"}
                },
                "$defs": {
                    "Taken": {"type": "integer"},
                    "Free": {"type": "object", "properties": {"x": {"$ref": "#/$defs/Taken"}}}
                }
            }),
        );
        let comps = c.finish().unwrap();
        assert_eq!(comps["Taken"], json!({"type": "string"}));
        assert_eq!(comps["Root_Taken"], json!({"type": "integer"}));
        assert!(comps["Root"].get("$schema").is_none());
        assert!(comps["Root"].get("$defs").is_none());
        let doc = json!({"components": {"schemas": comps}});
        assert_eq!(unresolved_refs(&doc), Vec::<String>::new());
        let all = refs(&doc);
        assert!(
            all.contains(&"#/components/schemas/Root".to_string()),
            "{all:?}"
        );
        assert!(
            all.contains(&"#/components/schemas/Root_Taken".to_string()),
            "{all:?}"
        );
        assert!(
            all.contains(&"#/components/schemas/Free/properties/x".to_string()),
            "{all:?}"
        );
    }

    #[test]
    fn unresolved_and_external_refs_are_found() {
        let doc = json!({"a": {"$ref": "#/nope"}, "b": {"$ref": "https://x/y.json"}, "c": {"$ref": "#/a"}, "d": {"$ref": "#"}});
        assert_eq!(unresolved_refs(&doc), vec!["#/nope", "https://x/y.json"]);
    }

    #[test]
    fn the_wire_model_stands_alone() {
        let w = wire_model();
        let defs = w["$defs"].as_object().unwrap();
        assert!(defs.get("error").is_none(), "{}", defs["error"]);
        for name in [
            "RunRecord",
            "RunStatus",
            "ApprovalView",
            "ApprovalStatus",
            "Event",
        ] {
            assert!(defs.contains_key(name), "{name} missing: {:?}", defs.keys());
        }
        assert_eq!(unresolved_refs(&w), Vec::<String>::new());
        let text = w.to_string();
        for f in ["uint", "int64", "int32", "double", "float"] {
            assert!(!text.contains(&format!("\"format\":\"{f}")), "{f}");
        }
    }
}
