//! The one rule for the `format`s a published JSON Schema may carry, for every schema the
//! program publishes (HTTP OpenAPI, MCP tools, chat tools, the editors' wire model).

use serde_json::Value;

/// JSON Schema 2020-12's defined formats; strict validators reject any other.
pub const STANDARD_FORMATS: [&str; 19] = [
    "date-time",
    "date",
    "time",
    "duration",
    "email",
    "idn-email",
    "hostname",
    "idn-hostname",
    "ipv4",
    "ipv6",
    "uri",
    "uri-reference",
    "iri",
    "iri-reference",
    "uuid",
    "uri-template",
    "json-pointer",
    "relative-json-pointer",
    "regex",
];

/// Drops every `format` that is not one of [`STANDARD_FORMATS`] (the ones schemars adds for
/// Rust integer and float widths: `uint32`, `int64`, `double`, ...; their range is stated by
/// `minimum`/`maximum` where it matters), anywhere in `schema`.
pub fn standard_formats_only(schema: &mut Value) {
    match schema {
        Value::Object(m) => {
            let drop = m
                .get("format")
                .and_then(Value::as_str)
                .is_some_and(|f| !STANDARD_FORMATS.contains(&f));
            if drop {
                m.remove("format");
            }
            m.values_mut().for_each(standard_formats_only);
        }
        Value::Array(a) => a.iter_mut().for_each(standard_formats_only),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_standard_formats_and_properties_named_format() {
        let mut s = serde_json::json!({
            "type": "object",
            "properties": {
                "n": {"type": "integer", "format": "uint32"},
                "t": {"type": "string", "format": "date-time"},
                "format": {"type": "string"}
            },
            "items": [{"format": "double"}]
        });
        standard_formats_only(&mut s);
        assert_eq!(s["properties"]["n"], serde_json::json!({"type": "integer"}));
        assert_eq!(s["properties"]["t"]["format"], "date-time");
        assert_eq!(
            s["properties"]["format"],
            serde_json::json!({"type": "string"})
        );
        assert_eq!(s["items"][0], serde_json::json!({}));
    }
}
