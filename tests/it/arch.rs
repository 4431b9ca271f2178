//! The layering rules of DESIGN §2, checked by reading the source, so they cannot rot silently.
//! Each rule says what a module may NOT use; see docs/architecture.md for why.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const SURFACES: [&str; 4] = ["lsp", "http", "mcp", "cli"];

/// (module, forbidden crate-internal modules, forbidden external crates)
fn rules() -> Vec<(&'static str, Vec<&'static str>, Vec<&'static str>)> {
    let io_crates = vec![
        "tokio",
        "axum",
        "tower_lsp_server",
        "rusqlite",
        "git2",
        "reqwest",
        "rmcp",
        "std::fs",
        "std::process",
        "std::net",
    ];
    let mut all_but_core: Vec<&str> = vec![
        "sandbox", "config", "store", "git", "llm", "engine", "chat", "studio", "deps", "util",
    ];
    all_but_core.extend(SURFACES);
    let surfaces_and = |more: &[&'static str]| -> Vec<&'static str> {
        let mut v: Vec<&str> = SURFACES.to_vec();
        v.extend_from_slice(more);
        v
    };
    vec![
        ("core", all_but_core, io_crates),
        (
            "sandbox",
            surfaces_and(&["engine", "chat", "studio", "store", "llm"]),
            vec!["axum", "tower_lsp_server", "rmcp"],
        ),
        (
            "config",
            surfaces_and(&["engine", "chat", "studio", "store", "llm", "git"]),
            vec!["axum", "tower_lsp_server", "rmcp"],
        ),
        (
            "store",
            surfaces_and(&["engine", "chat", "studio", "llm", "git"]),
            vec!["axum", "tower_lsp_server", "rmcp", "reqwest"],
        ),
        (
            "git",
            surfaces_and(&["engine", "chat", "studio", "store", "llm"]),
            vec!["axum", "tower_lsp_server", "rmcp", "reqwest"],
        ),
        (
            "llm",
            surfaces_and(&["engine", "chat", "studio", "store", "git", "config"]),
            vec!["axum", "tower_lsp_server", "rmcp", "rusqlite", "git2"],
        ),
        (
            "deps",
            surfaces_and(&["engine", "chat", "studio", "store", "git", "config", "llm"]),
            vec!["axum", "tower_lsp_server", "rmcp", "rusqlite", "git2"],
        ),
        (
            "engine",
            surfaces_and(&["chat", "studio"]),
            vec!["axum", "tower_lsp_server", "rmcp"],
        ),
        (
            "chat",
            surfaces_and(&["studio"]),
            vec!["axum", "tower_lsp_server", "rmcp"],
        ),
        (
            "studio",
            SURFACES.to_vec(),
            vec!["axum", "tower_lsp_server", "rmcp"],
        ),
        ("lsp", vec!["http", "mcp", "cli"], vec!["axum", "rmcp"]),
        ("http", vec!["lsp", "cli"], vec!["tower_lsp_server"]),
        ("mcp", vec!["lsp", "http", "cli"], vec!["tower_lsp_server"]),
    ]
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Every `crate::<module>` and external path a source file names, outside comments and tests.
fn references(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let code: String = text
        .split("#[cfg(test)]")
        .next()
        .unwrap_or("")
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let bytes = code.as_bytes();
    for (i, _) in code.match_indices("::") {
        // walk back over the identifier (and `a::b` chains) before `::`
        let mut s = i;
        while s > 0
            && (bytes[s - 1].is_ascii_alphanumeric()
                || bytes[s - 1] == b'_'
                || bytes[s - 1] == b':')
        {
            s -= 1;
        }
        let mut e = i + 2;
        while e < bytes.len() && (bytes[e].is_ascii_alphanumeric() || bytes[e] == b'_') {
            e += 1;
        }
        out.push(code[s..e].trim_start_matches(':').to_string());
    }
    // Grouped imports: `use crate::{engine, http::x};`
    for (i, _) in code.match_indices("crate::{") {
        let body = &code[i + 8..];
        let end = body.find('}').unwrap_or(body.len());
        for item in body[..end].split(',') {
            let name: String = item
                .trim()
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.push(format!("crate::{name}"));
            }
        }
    }
    out
}

#[test]
fn modules_respect_the_layering_rules() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("server");
    let mut violations = BTreeMap::new();
    let mut checked = 0;
    for (module, internal, external) in rules() {
        let mut files = Vec::new();
        rust_files(&root.join(module), &mut files);
        for f in files {
            checked += 1;
            let text = std::fs::read_to_string(&f).unwrap();
            for r in references(&text) {
                let bad_internal = internal.iter().any(|m| {
                    r == format!("crate::{m}")
                        || r.starts_with(&format!("crate::{m}::"))
                        || r == format!("super::super::{m}")
                });
                let bad_external = external
                    .iter()
                    .any(|c| r == *c || r.starts_with(&format!("{c}::")));
                if bad_internal || bad_external {
                    violations
                        .entry(f.strip_prefix(&root).unwrap().display().to_string())
                        .or_insert_with(Vec::new)
                        .push(r);
                }
            }
        }
    }
    assert!(checked > 20, "the rule scan found only {checked} files");
    assert!(
        violations.is_empty(),
        "layering violations (file -> forbidden paths): {violations:#?}"
    );
}

#[test]
fn the_scanner_sees_violations() {
    let grouped = references("use crate::{core::RunId, http};");
    assert!(grouped.contains(&"crate::http".to_string()), "{grouped:?}");
    let refs = references(
        "use crate::engine::api;\nfn f() { tokio::spawn(x); }\n// crate::http::x in a comment\n",
    );
    assert!(refs.contains(&"crate::engine::api".to_string()));
    assert!(refs.contains(&"tokio::spawn".to_string()));
    assert!(!refs.iter().any(|r| r.contains("http")));
}
