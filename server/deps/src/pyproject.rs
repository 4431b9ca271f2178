//! Pins in `pyproject.toml`: the PEP 621 `[project]` dependency arrays and PEP 735
//! `[dependency-groups]`. The `toml` parser locates each string (with byte spans); the
//! edit replaces only the version bytes inside it, so comments and layout survive, and
//! [`verify`] proves afterwards that nothing but those strings changed.

use std::ops::Range;

use toml::de::{DeTable, DeValue};
use toml::{Spanned, Value};

use super::pin::Pin;
// The entry types live with `Pin` (which carries one) so the two files do not import
// each other; re-exported here, where entries are found and checked.
pub use super::pin::{PathSeg, TomlEntry};
use super::spec::parse_requirement;

/// Every raisable pin, in file order; `Err` carries the TOML parse error.
pub fn find_pins(content: &str) -> Result<Vec<Pin>, String> {
    let root = DeTable::parse(content).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let root = root.get_ref();
    if let Some(project) = root.get("project").and_then(|v| v.get_ref().as_table()) {
        let at = |k: &str| vec![PathSeg::Key("project".into()), PathSeg::Key(k.into())];
        if let Some(deps) = project.get("dependencies") {
            collect_array(content, deps, at("dependencies"), &mut out);
        }
        if let Some(opt) = project.get("optional-dependencies") {
            collect_table_of_arrays(content, opt, at("optional-dependencies"), &mut out);
        }
    }
    if let Some(groups) = root.get("dependency-groups") {
        let path = vec![PathSeg::Key("dependency-groups".into())];
        collect_table_of_arrays(content, groups, path, &mut out);
    }
    out.sort_by_key(|p| p.span.start);
    Ok(out)
}

fn collect_table_of_arrays(
    content: &str,
    value: &Spanned<DeValue<'_>>,
    path: Vec<PathSeg>,
    out: &mut Vec<Pin>,
) {
    let Some(table) = value.get_ref().as_table() else {
        return;
    };
    for (key, array) in table.iter() {
        let mut path = path.clone();
        path.push(PathSeg::Key(key.get_ref().to_string()));
        collect_array(content, array, path, out);
    }
}

/// String items only: `{include-group = "..."}` tables and anything odd are skipped.
fn collect_array(
    content: &str,
    value: &Spanned<DeValue<'_>>,
    path: Vec<PathSeg>,
    out: &mut Vec<Pin>,
) {
    let Some(items) = value.get_ref().as_array() else {
        return;
    };
    for (i, item) in items.iter().enumerate() {
        let Some(decoded) = item.get_ref().as_str() else {
            continue;
        };
        let Some(inner) = raw_inner(content, item.span()) else {
            continue;
        };
        // Escapes or a trimmed leading newline would shift offsets: leave such strings alone.
        if &content[inner.clone()] != decoded {
            continue;
        }
        let Some(req) = parse_requirement(decoded) else {
            continue;
        };
        let start = inner.start;
        let Some(mut pin) = Pin::from_requirement(req, |s| Some(start + s.start..start + s.end))
        else {
            continue;
        };
        let mut path = path.clone();
        path.push(PathSeg::Index(i));
        pin.toml = Some(TomlEntry {
            path,
            value: decoded.to_string(),
            inner_start: start,
        });
        out.push(pin);
    }
}

/// The span between the quotes of a string literal's source text.
fn raw_inner(content: &str, span: Range<usize>) -> Option<Range<usize>> {
    let raw = content.get(span.clone())?;
    let quote = ["\"\"\"", "'''", "\"", "'"]
        .into_iter()
        .find(|q| raw.len() >= 2 * q.len() && raw.starts_with(q) && raw.ends_with(q))?;
    Some(span.start + quote.len()..span.end - quote.len())
}

/// Checks that `after` is valid TOML equal to `before` except that each given entry's
/// string now reads as given, so a bug can never corrupt or reshape a user's file.
pub fn verify(before: &str, after: &str, changes: &[(&TomlEntry, String)]) -> Result<(), String> {
    let mut expected: Value = toml::from_str(before).map_err(|e| format!("before: {e}"))?;
    for (entry, new_value) in changes {
        let slot = entry
            .path
            .iter()
            .try_fold(&mut expected, |v, seg| match seg {
                PathSeg::Key(k) => v.get_mut(k.as_str()),
                PathSeg::Index(i) => v.get_mut(*i),
            })
            .ok_or("an edited entry is missing from the original")?;
        if slot.as_str() != Some(entry.value.as_str()) {
            return Err("an edited entry does not match the original".into());
        }
        *slot = Value::String(new_value.clone());
    }
    let actual: Value =
        toml::from_str(after).map_err(|e| format!("result is not valid TOML: {e}"))?;
    if actual != expected {
        return Err("the result differs from the original outside the edited versions".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(content: &str) -> Vec<(String, String)> {
        find_pins(content)
            .unwrap()
            .into_iter()
            .map(|p| (p.project.clone(), content[p.span.clone()].to_string()))
            .collect()
    }

    #[test]
    fn finds_only_dependency_strings() {
        let content = r#"
[build-system]
requires = ["setuptools==68.0"]  # not ours

[project]
name = "demo"
version = "1.0"
dependencies = [
    "requests==2.31.0",  # http
    'Django >=4.2, <5',
    """numpy~=1.26.0""",
    "escaped\u003d=1.0",
    "pkg @ https://example.com/pkg.whl",
    "plain",
]

[project.optional-dependencies]
dev = ["pytest==8.0.0"]

[tool.other]
dependencies = ["nope==1.0"]

[dependency-groups]
test = ["coverage[toml]>=7.0 ; python_version >= '3.9'", {include-group = "dev"}]
"#;
        assert_eq!(
            found(content),
            vec![
                ("requests".into(), "2.31.0".into()),
                ("django".into(), "4.2".into()),
                ("numpy".into(), "1.26.0".into()),
                ("pytest".into(), "8.0.0".into()),
                ("coverage".into(), "7.0".into()),
            ]
        );
        let pin = &find_pins(content).unwrap()[0];
        let entry = pin.toml.as_ref().unwrap();
        assert_eq!(entry.value, "requests==2.31.0");
        assert_eq!(
            entry.path,
            vec![
                PathSeg::Key("project".into()),
                PathSeg::Key("dependencies".into()),
                PathSeg::Index(0)
            ]
        );
    }

    #[test]
    fn dotted_and_inline_forms() {
        let content = "project.dependencies = ['a==1.0']\n";
        assert_eq!(found(content), vec![("a".into(), "1.0".into())]);
        let content = "project = { dependencies = [\"b==2\"] }\n";
        assert_eq!(found(content), vec![("b".into(), "2".into())]);
    }

    #[test]
    fn invalid_toml_is_an_error() {
        assert!(find_pins("[project\n").is_err());
    }

    #[test]
    fn verify_catches_collateral_changes() {
        let before = "[project]\ndependencies = [\"a==1.0\"]\nname = \"x\"\n";
        let pins = find_pins(before).unwrap();
        let entry = pins[0].toml.as_ref().unwrap();
        let good = before.replace("1.0", "2.0");
        assert!(verify(before, &good, &[(entry, "a==2.0".into())]).is_ok());
        let bad = good.replace("\"x\"", "\"y\"");
        assert!(verify(before, &bad, &[(entry, "a==2.0".into())]).is_err());
        assert!(verify(before, "[project", &[(entry, "a==2.0".into())]).is_err());
    }
}
