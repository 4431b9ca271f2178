//! The OpenAPI 3.1 document of everything this server answers (`/api/openapi.json`),
//! assembled from the route table: each route in `routes.rs` is mounted together with its
//! [`Doc`] (summary, parameters, request type, response type, error statuses), and the
//! component schemas are generated from those Rust types by schemars
//! ([`noctune_studio::schema::Components`]). Nothing here names a route; `tests/it/http_api.rs`
//! checks that the document covers exactly the router's routes and that every `$ref` resolves.

use noctune_studio::schema::{
    Components, Field, JsonSchema, OPENAPI_COMPONENTS, standard_formats_only, unresolved_refs,
};
use serde_json::{Map, Value, json};

/// Makes a schema (usually a `$ref` to a generated component) for a document.
pub type SchemaFn = fn(&mut Components) -> Value;
/// The fields of a query-string type, one parameter each.
pub type FieldsFn = fn(&mut Components) -> Vec<Field>;

/// The schema of what the server sends as a `T`.
pub fn output<T: JsonSchema>(c: &mut Components) -> Value {
    c.output::<T>()
}

/// The schema of what the server accepts as a `T`.
pub fn input<T: JsonSchema>(c: &mut Components) -> Value {
    c.input::<T>()
}

fn fields<T: JsonSchema>(c: &mut Components) -> Vec<Field> {
    c.input_fields::<T>()
}

/// A path or header parameter.
#[derive(Clone, Copy)]
pub struct Param {
    pub name: &'static str,
    pub schema: SchemaFn,
    pub description: &'static str,
}

/// What a success answer carries.
#[derive(Clone, Copy)]
pub enum Content {
    /// `application/json` of a schema.
    Json(SchemaFn),
    /// An HTML page.
    Html,
    /// `text/event-stream`; the schema is one message's (`event`, `id`, `data`), as OpenAPI
    /// 3.2's `itemSchema` describes it.
    Sse(SchemaFn),
    /// Any of these media types, not described further.
    Types(&'static [&'static str]),
    /// No body.
    Empty,
}

/// The documentation of one operation.
#[derive(Clone)]
pub struct Doc {
    tag: &'static str,
    summary: &'static str,
    path: Vec<Param>,
    query: Option<FieldsFn>,
    headers: Vec<Param>,
    body: Option<SchemaFn>,
    ok: (u16, &'static str, Content),
    /// Statuses answered with the JSON error body.
    errors: &'static [u16],
    /// Statuses answered by something else (rmcp's own plain-text errors), described only.
    plain: &'static [(u16, &'static str)],
}

/// An operation of `tag` that answers 200 with no body until [`Doc::ok`] or another
/// answer is set.
pub fn doc(tag: &'static str, summary: &'static str) -> Doc {
    Doc {
        tag,
        summary,
        path: Vec::new(),
        query: None,
        headers: Vec::new(),
        body: None,
        ok: (200, "OK", Content::Empty),
        errors: &[],
        plain: &[],
    }
}

impl Doc {
    pub fn path(mut self, p: Param) -> Doc {
        self.path.push(p);
        self
    }
    /// Query parameters: the fields of the struct the handler parses the query string into.
    pub fn query<Q: JsonSchema>(mut self) -> Doc {
        self.query = Some(fields::<Q>);
        self
    }
    pub fn header(mut self, p: Param) -> Doc {
        self.headers.push(p);
        self
    }
    /// A JSON request body: the type the handler parses it into.
    pub fn body<B: JsonSchema>(mut self) -> Doc {
        self.body = Some(input::<B>);
        self
    }
    /// 200 with the JSON of the type the handler returns.
    pub fn ok<T: JsonSchema>(self, description: &'static str) -> Doc {
        self.answer(200, description, Content::Json(output::<T>))
    }
    /// 201 with the JSON of the type the handler returns.
    pub fn created<T: JsonSchema>(self, description: &'static str) -> Doc {
        self.answer(201, description, Content::Json(output::<T>))
    }
    pub fn answer(mut self, status: u16, description: &'static str, content: Content) -> Doc {
        self.ok = (status, description, content);
        self
    }
    /// The error statuses the operation can answer besides 401 and 403 (which every route
    /// can), each with the JSON error body.
    pub fn errors(mut self, statuses: &'static [u16]) -> Doc {
        self.errors = statuses;
        self
    }
    /// Statuses answered without the JSON error body.
    pub fn plain(mut self, statuses: &'static [(u16, &'static str)]) -> Doc {
        self.plain = statuses;
        self
    }
}

/// One documented route.
pub struct Entry {
    pub method: &'static str,
    pub path: &'static str,
    pub doc: Doc,
}

fn error_description(code: u16) -> &'static str {
    match code {
        400 => {
            "Bad input (malformed JSON, wrong field, a value over its limit, unknown pack or profile)"
        }
        401 => "Missing or wrong access token",
        403 => "Foreign Host or Origin, or a path outside the allowed roots",
        404 => "Unknown run, approval or session",
        409 => "Not possible in the current state (already decided, run terminal)",
        413 => "Body larger than 1 MiB",
        415 => "Body is not application/json",
        502 => "The model server cannot be reached",
        _ => "Error",
    }
}

fn content(c: &mut Components, content: Content) -> Option<Value> {
    Some(match content {
        Content::Json(s) => json!({"application/json": {"schema": s(c)}}),
        Content::Html => json!({"text/html": {"schema": {"type": "string"}}}),
        Content::Sse(s) => json!({"text/event-stream": {"itemSchema": s(c)}}),
        Content::Types(types) => {
            Value::Object(types.iter().map(|t| (t.to_string(), json!({}))).collect())
        }
        Content::Empty => return None,
    })
}

fn operation(c: &mut Components, error: &Value, d: &Doc) -> Value {
    let mut params = Vec::new();
    for p in &d.path {
        params.push(json!({"name": p.name, "in": "path", "required": true, "schema": (p.schema)(c), "description": p.description}));
    }
    if let Some(q) = d.query {
        for f in q(c) {
            let mut p =
                json!({"name": f.name, "in": "query", "required": f.required, "schema": f.schema});
            if let Some(desc) = f.description {
                p["description"] = json!(desc);
            }
            params.push(p);
        }
    }
    for h in &d.headers {
        params.push(json!({"name": h.name, "in": "header", "required": false, "schema": (h.schema)(c), "description": h.description}));
    }
    let mut responses = Map::new();
    let (status, description, body) = d.ok;
    let mut ok = json!({ "description": description });
    if let Some(body) = content(c, body) {
        ok["content"] = body;
    }
    responses.insert(status.to_string(), ok);
    for code in d.errors.iter().chain(&[401, 403]) {
        responses.insert(
            code.to_string(),
            json!({"description": error_description(*code), "content": {"application/json": {"schema": error}}}),
        );
    }
    for (code, what) in d.plain {
        responses.insert(code.to_string(), json!({ "description": what }));
    }
    let mut op = json!({"tags": [d.tag], "summary": d.summary, "parameters": params, "responses": responses});
    if let Some(b) = d.body {
        op["requestBody"] =
            json!({"required": true, "content": {"application/json": {"schema": b(c)}}});
    }
    op
}

/// The document of `entries`; `E` is the JSON error body every error status carries. Fails
/// when two types claim one schema name or a `$ref` does not resolve (a bug the tests catch).
pub fn document<E: JsonSchema>(entries: &[Entry]) -> Result<Value, String> {
    let mut c = Components::new(OPENAPI_COMPONENTS);
    let error = c.output::<E>();
    let mut paths = Map::new();
    for e in entries {
        let op = operation(&mut c, &error, &e.doc);
        let item = paths.entry(e.path).or_insert_with(|| json!({}));
        item[e.method.to_lowercase()] = op;
    }
    let schemas = c.finish()?;
    let mut doc = json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Noctune Studio",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The local Studio server: chat, runs, approvals and live events. Every route needs the per-launch token \
                            (cookie from the printed URL, or `Authorization: Bearer <token>`), a loopback Host with this port, and, when \
                            present, this server's own Origin. Errors are JSON: {\"error\": code, \"message\": text}. \
                            The schemas are generated from the server's own types."
        },
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "The token printed at launch"},
                "cookie": {"type": "apiKey", "in": "cookie", "name": "noctune_token_<port>", "description": "Set by the first visit to the printed URL"}
            }
        },
        "security": [{"bearer": []}, {"cookie": []}],
        "paths": paths,
    });
    standard_formats_only(&mut doc);
    let bad = unresolved_refs(&doc);
    if !bad.is_empty() {
        return Err(format!("unresolved $refs in the OpenAPI document: {bad:?}"));
    }
    Ok(doc)
}

/// A type whose schema is written by hand: for what is not a Rust type of ours (an SSE
/// message) or comes from a crate that does not derive `JsonSchema` (the chat layer's).
/// `hand_written_schema!(Marker, "Name", { ...json... })` makes `Marker` usable in
/// `#[schemars(with = "Marker")]` and in a [`Doc`]; the schema is the component `Name`.
macro_rules! hand_written_schema {
    ($marker:ident, $name:literal, $schema:tt) => {
        #[doc = concat!("The hand-written schema `", $name, "`.")]
        pub struct $marker;

        impl schemars::JsonSchema for $marker {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                $name.into()
            }
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!($schema)
            }
        }
    };
}
pub(crate) use hand_written_schema;
