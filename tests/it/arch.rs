//! The layering rules of docs/architecture.md, checked from what Cargo and the source say, so
//! they cannot rot silently:
//! - which workspace crate may depend on which (read from `cargo metadata`): an adapter that
//!   reaches past the facade into the engine, chat or store does not even compile, and this
//!   test keeps anyone from adding the dependency back;
//! - which external crates a layer may use (protocol crates only in their adapter, no IO in core);
//! - no file-level import cycles inside a crate (a cycle means two files are one module).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The adapters: each translates one protocol and may use only the facade and the core values.
const ADAPTERS: [&str; 4] = ["noctune-http", "noctune-lsp", "noctune-mcp", "noctune-cli"];

/// (crate, workspace crates it may depend on). A crate missing here fails the test, so a new
/// crate has to take its place in the layering on purpose.
fn allowed_internal() -> BTreeMap<&'static str, Vec<&'static str>> {
    BTreeMap::from([
        ("noctune-core", vec![]),
        ("noctune-util", vec![]),
        ("noctune-config", vec!["noctune-core"]),
        ("noctune-store", vec!["noctune-core", "noctune-util"]),
        ("noctune-git", vec![]),
        ("noctune-llm", vec!["noctune-util"]),
        ("noctune-sandbox", vec!["noctune-config"]),
        ("noctune-deps", vec![]),
        (
            "noctune-engine",
            vec![
                "noctune-config",
                "noctune-core",
                "noctune-deps",
                "noctune-git",
                "noctune-llm",
                "noctune-store",
                "noctune-util",
            ],
        ),
        (
            "noctune-chat",
            vec![
                "noctune-config",
                "noctune-core",
                "noctune-llm",
                "noctune-sandbox",
                "noctune-store",
                "noctune-util",
            ],
        ),
        (
            "noctune-mcp-client",
            vec![
                "noctune-chat",
                "noctune-config",
                "noctune-core",
                "noctune-llm",
            ],
        ),
        (
            "noctune-studio",
            vec![
                "noctune-chat",
                "noctune-config",
                "noctune-core",
                "noctune-engine",
                "noctune-git",
                "noctune-llm",
                "noctune-mcp-client",
                "noctune-store",
                "noctune-util",
            ],
        ),
        ("noctune-http", vec!["noctune-core", "noctune-studio"]),
        ("noctune-lsp", vec!["noctune-core", "noctune-studio"]),
        ("noctune-mcp", vec!["noctune-core", "noctune-studio"]),
        // The terminal surface also starts the other surfaces (`noctune lsp|studio|mcp`).
        (
            "noctune-cli",
            vec![
                "noctune-core",
                "noctune-studio",
                "noctune-http",
                "noctune-lsp",
                "noctune-mcp",
            ],
        ),
        ("noctune", vec!["noctune-cli"]),
    ])
}

/// (crate, external crates it may not depend on).
fn forbidden_external(name: &str) -> Vec<&'static str> {
    let protocols = [
        "axum",
        "tower-lsp-server",
        "rmcp",
        "tower-http",
        "rust-embed",
    ];
    let io = ["tokio", "rusqlite", "git2", "reqwest", "libc"];
    match name {
        "noctune-core" => protocols.iter().chain(io.iter()).copied().collect(),
        "noctune-http" => vec!["tower-lsp-server", "rusqlite", "git2"],
        // rmcp's Streamable HTTP server is an axum service, so /mcp needs axum's types.
        "noctune-mcp" => vec!["tower-lsp-server", "rusqlite", "git2", "rust-embed"],
        "noctune-lsp" => vec!["axum", "rmcp", "rusqlite", "git2", "rust-embed"],
        "noctune-mcp-client" => vec!["axum", "tower-lsp-server", "rusqlite", "git2"],
        "noctune-cli" => vec!["axum", "tower-lsp-server", "rmcp", "rusqlite", "git2"],
        _ => protocols.to_vec(),
    }
}

struct Package {
    name: String,
    manifest_dir: PathBuf,
    deps: Vec<String>,
}

fn workspace_packages() -> Vec<Package> {
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata JSON");
    meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| Package {
            name: p["name"].as_str().unwrap_or_default().to_string(),
            manifest_dir: PathBuf::from(p["manifest_path"].as_str().unwrap_or_default())
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default(),
            deps: p["dependencies"]
                .as_array()
                .into_iter()
                .flatten()
                // dev-dependencies may reach anywhere: tests are not a layer
                .filter(|d| d["kind"].is_null())
                .filter_map(|d| d["name"].as_str().map(str::to_string))
                .collect(),
        })
        .collect()
}

/// The violations of the crate rules among `packages`.
fn crate_violations(packages: &[Package]) -> Vec<String> {
    let rules = allowed_internal();
    let mut out = Vec::new();
    for p in packages {
        let Some(allowed) = rules.get(p.name.as_str()) else {
            out.push(format!(
                "{} has no place in the layering rules (tests/it/arch.rs)",
                p.name
            ));
            continue;
        };
        for d in &p.deps {
            if d.starts_with("noctune") && !allowed.contains(&d.as_str()) {
                out.push(format!("{} may not depend on {d}", p.name));
            }
            if forbidden_external(&p.name).contains(&d.as_str()) {
                out.push(format!("{} may not use {d}", p.name));
            }
        }
    }
    out
}

#[test]
fn crates_respect_the_layering_rules() {
    let packages = workspace_packages();
    assert!(
        packages.len() >= 15,
        "cargo metadata listed only {} packages",
        packages.len()
    );
    let bad = crate_violations(&packages);
    assert!(bad.is_empty(), "layering violations:\n{}", bad.join("\n"));
}

#[test]
fn the_crate_check_sees_violations() {
    let fake = |name: &str, deps: &[&str]| Package {
        name: name.into(),
        manifest_dir: PathBuf::new(),
        deps: deps.iter().map(|d| d.to_string()).collect(),
    };
    let bad = crate_violations(&[
        fake("noctune-http", &["noctune-studio", "noctune-engine"]),
        fake("noctune-core", &["tokio"]),
        fake("noctune-newthing", &[]),
        fake("noctune-lsp", &["noctune-studio", "serde"]),
    ]);
    assert_eq!(bad.len(), 3, "{bad:?}");
    assert!(bad[0].contains("noctune-http may not depend on noctune-engine"));
    assert!(bad[1].contains("noctune-core may not use tokio"));
    assert!(bad[2].contains("noctune-newthing has no place"));
    for adapter in ADAPTERS {
        let engine = crate_violations(&[fake(adapter, &["noctune-engine"])]);
        assert_eq!(engine.len(), 1, "{adapter}: {engine:?}");
    }
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

/// The source without comments and without `#[cfg(test)]` modules (tests may use anything).
fn code_of(text: &str) -> String {
    text.split("#[cfg(test)]")
        .next()
        .unwrap_or("")
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The module path (`["engine", "worker"]`) of a file under `src/`.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap_or(file);
    let mut parts: Vec<String> = rel
        .iter()
        .map(|c| c.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts
}

/// Modules of the crate that `code` (in module `me`) names through `crate::` or `super::`,
/// including grouped imports (`use crate::{a, b::c}`).
fn module_refs(code: &str, me: &[String]) -> BTreeSet<Vec<String>> {
    let mut out = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut push_path = |base: Vec<String>, rest: &str| {
        // rest: `a::b::C` or `{a, b::c}`; take module-looking (lowercase) segments
        let heads: Vec<String> = if let Some(body) = rest.strip_prefix('{') {
            let end = body.find('}').unwrap_or(body.len());
            body[..end]
                .split(',')
                .map(|s| s.trim().to_string())
                .collect()
        } else {
            vec![rest.to_string()]
        };
        for h in heads {
            let mut m = base.clone();
            for seg in h.split("::") {
                let seg = ident(seg.trim());
                if seg.is_empty() || seg.chars().next().is_some_and(|c| c.is_uppercase()) {
                    break;
                }
                m.push(seg);
                out.insert(m.clone());
            }
        }
    };
    for (i, _) in code.match_indices("crate::") {
        if i > 0 && code.as_bytes()[i - 1].is_ascii_alphanumeric() {
            continue;
        }
        push_path(Vec::new(), &code[i + 7..]);
    }
    for (i, _) in code.match_indices("super::") {
        if i >= 7 && &code[i - 7..i] == "super::" {
            continue; // counted from the first `super::` of the chain
        }
        let mut rest = &code[i + 7..];
        // `super` is the parent of this file's module (a mod.rs is its module already)
        let mut base: Vec<String> = me.to_vec();
        base.pop();
        while let Some(r) = rest.strip_prefix("super::") {
            base.pop();
            rest = r;
        }
        push_path(base, rest);
    }
    out
}

/// The cycles among the files of one crate: strongly connected components of more than one
/// file, where a file depends on the files of the modules it names.
fn file_cycles(src: &Path) -> Vec<Vec<String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let modules: Vec<Vec<String>> = files.iter().map(|f| module_of(src, f)).collect();
    let index: BTreeMap<Vec<String>, usize> = modules
        .iter()
        .enumerate()
        .map(|(i, m)| (m.clone(), i))
        .collect();
    let edges: Vec<BTreeSet<usize>> = files
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let text = std::fs::read_to_string(f).unwrap_or_default();
            module_refs(&code_of(&text), &modules[i])
                .into_iter()
                .filter_map(|m| index.get(&m).copied())
                .filter(|&j| j != i)
                // a parent module (lib.rs, mod.rs) declares and re-exports its children; only
                // edges between siblings and cousins make cycles worth naming
                .filter(|&j| !modules[i].is_empty() && !modules[j].is_empty())
                .filter(|&j| !modules[i].starts_with(&modules[j]))
                .filter(|&j| !modules[j].starts_with(&modules[i]))
                .collect()
        })
        .collect();
    tarjan(&edges)
        .into_iter()
        .filter(|c| c.len() > 1)
        .map(|c| {
            let mut names: Vec<String> = c
                .iter()
                .map(|&i| {
                    files[i]
                        .strip_prefix(src)
                        .unwrap_or(&files[i])
                        .display()
                        .to_string()
                })
                .collect();
            names.sort();
            names
        })
        .collect()
}

fn tarjan(edges: &[BTreeSet<usize>]) -> Vec<Vec<usize>> {
    struct St<'a> {
        edges: &'a [BTreeSet<usize>],
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on: Vec<bool>,
        stack: Vec<usize>,
        next: usize,
        out: Vec<Vec<usize>>,
    }
    fn visit(s: &mut St, v: usize) {
        s.index[v] = Some(s.next);
        s.low[v] = s.next;
        s.next += 1;
        s.stack.push(v);
        s.on[v] = true;
        for &w in s.edges[v].clone().iter() {
            match s.index[w] {
                None => {
                    visit(s, w);
                    s.low[v] = s.low[v].min(s.low[w]);
                }
                Some(iw) if s.on[w] => s.low[v] = s.low[v].min(iw),
                _ => {}
            }
        }
        if Some(s.low[v]) == s.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on[w] = false;
                comp.push(w);
                if w == v {
                    break;
                }
            }
            s.out.push(comp);
        }
    }
    let n = edges.len();
    let mut s = St {
        edges,
        index: vec![None; n],
        low: vec![0; n],
        on: vec![false; n],
        stack: Vec::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in 0..n {
        if s.index[v].is_none() {
            visit(&mut s, v);
        }
    }
    s.out
}

#[test]
fn no_file_level_import_cycles() {
    let mut found = Vec::new();
    let mut crates = 0;
    for p in workspace_packages() {
        let src = p.manifest_dir.join("src");
        if !src.is_dir() {
            continue;
        }
        crates += 1;
        for c in file_cycles(&src) {
            found.push(format!("{}: {}", p.name, c.join(" <-> ")));
        }
    }
    assert!(crates >= 15, "scanned only {crates} crates");
    assert!(found.is_empty(), "import cycles: {found:#?}");
}

#[test]
fn the_cycle_check_sees_a_cycle() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::write(src.join("lib.rs"), "mod a; mod b; mod c;").unwrap();
    std::fs::write(src.join("a.rs"), "use crate::b::Thing;").unwrap();
    std::fs::write(src.join("b.rs"), "use super::{a, c::X};").unwrap();
    std::fs::write(
        src.join("c.rs"),
        "pub struct X; // crate::a::y in a comment",
    )
    .unwrap();
    let cycles = file_cycles(src);
    assert_eq!(cycles, vec![vec!["a.rs".to_string(), "b.rs".to_string()]]);
}

/// The core is pure: no file, process or network IO even through `std`.
#[test]
fn core_does_no_io() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("server/core/src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 5, "core has only {} files", files.len());
    let mut bad = Vec::new();
    for f in files {
        let code = code_of(&std::fs::read_to_string(&f).unwrap());
        for io in ["std::fs", "std::process", "std::net", "std::env"] {
            if code.contains(io) {
                bad.push(format!("{}: {io}", f.display()));
            }
        }
    }
    assert!(bad.is_empty(), "IO in core: {bad:?}");
}
