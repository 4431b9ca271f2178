//! A compact overview of a repository for the system prompt: its top-level layout, its
//! languages and the head of its README.
//!
//! Why: a model that knows where things are asks for the right files instead of listing
//! directories turn after turn, which matters most for small local models with small contexts.
//! The overview is capped (~2.5k characters) and respects `.gitignore`, so build output and
//! vendored trees never crowd it.

use std::collections::BTreeMap;
use std::path::Path;

/// The cap of the whole overview, in characters.
pub const MAX_CHARS: usize = 2500;
/// README lines included.
const README_LINES: usize = 40;
/// README characters included at most.
const README_CHARS: usize = 1200;
/// Files looked at; a huge tree is summarised from its first files (counts then say "+").
const MAX_FILES: usize = 20_000;
/// Top-level entries listed.
const MAX_ENTRIES: usize = 30;

/// Builds the overview of `root`. Never fails: unreadable parts are left out.
pub fn repo_overview(root: &Path) -> String {
    let mut dirs: BTreeMap<String, usize> = BTreeMap::new();
    let mut top_files: Vec<String> = Vec::new();
    let mut langs: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut total = 0usize;
    let mut truncated = false;

    let walker = ignore::WalkBuilder::new(root)
        .hidden(true)
        .require_git(false)
        .follow_links(false)
        .filter_entry(|e| {
            let name = e.file_name().to_string_lossy();
            !(name == ".git"
                || name == ".noctune_cache"
                || name == "node_modules"
                || name == "target")
        })
        .build();
    for entry in walker.flatten() {
        if !entry.file_type().is_some_and(|t| t.is_file()) {
            continue;
        }
        let Ok(rel) = entry.path().strip_prefix(root) else {
            continue;
        };
        total += 1;
        if total > MAX_FILES {
            truncated = true;
            break;
        }
        let mut parts = rel.components();
        let first = parts
            .next()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .unwrap_or_default();
        if parts.next().is_some() {
            *dirs.entry(first).or_default() += 1;
        } else {
            top_files.push(first);
        }
        if let Some(lang) = rel
            .extension()
            .and_then(|e| e.to_str())
            .and_then(language_of)
        {
            *langs.entry(lang).or_default() += 1;
        }
    }
    top_files.sort();

    let plus = if truncated { "+" } else { "" };
    let mut out = format!(
        "Repository `{}`: {}{plus} files.\n",
        root.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default(),
        total.min(MAX_FILES)
    );
    if !langs.is_empty() {
        let mut by_count: Vec<(&str, usize)> = langs.into_iter().collect();
        by_count.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let list: Vec<String> = by_count
            .iter()
            .take(8)
            .map(|(l, n)| format!("{l} ({n})"))
            .collect();
        out.push_str(&format!("Languages: {}.\n", list.join(", ")));
    }
    out.push_str("Top level:\n");
    let mut listed = 0;
    for (dir, n) in &dirs {
        if listed == MAX_ENTRIES {
            break;
        }
        out.push_str(&format!("  {dir}/ ({n}{plus} files)\n"));
        listed += 1;
    }
    for f in &top_files {
        if listed == MAX_ENTRIES {
            out.push_str(&format!(
                "  … {} more entries\n",
                dirs.len() + top_files.len() - listed
            ));
            break;
        }
        out.push_str(&format!("  {f}\n"));
        listed += 1;
    }
    if let Some((name, head)) = readme_head(root) {
        out.push_str(&format!("{name} (head):\n{head}\n"));
    }
    cap(out, MAX_CHARS)
}

fn readme_head(root: &Path) -> Option<(String, String)> {
    for name in [
        "README.md",
        "README.rst",
        "README.txt",
        "README",
        "readme.md",
        "Readme.md",
    ] {
        let path = root.join(name);
        // Only a regular file inside the repo (a symlinked README could point anywhere).
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        let Ok(text) = std::fs::read(&path) else {
            continue;
        };
        let text = String::from_utf8_lossy(&text[..text.len().min(16 * 1024)]).into_owned();
        let head: Vec<&str> = text.lines().take(README_LINES).collect();
        return Some((name.to_string(), cap(head.join("\n"), README_CHARS)));
    }
    None
}

/// `text` cut to at most `max` characters, with a marker when cut.
fn cap(text: String, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text,
        Some((end, _)) => format!("{}\n[…]", &text[..end]),
    }
}

fn language_of(ext: &str) -> Option<&'static str> {
    Some(match ext.to_ascii_lowercase().as_str() {
        "py" | "pyi" => "Python",
        "rs" => "Rust",
        "ts" | "tsx" => "TypeScript",
        "js" | "jsx" | "mjs" | "cjs" => "JavaScript",
        "go" => "Go",
        "java" => "Java",
        "kt" | "kts" => "Kotlin",
        "c" | "h" => "C",
        "cc" | "cpp" | "cxx" | "hpp" | "hh" => "C++",
        "cs" => "C#",
        "rb" => "Ruby",
        "php" => "PHP",
        "swift" => "Swift",
        "lua" => "Lua",
        "sh" | "bash" => "Shell",
        "md" | "rst" => "Markdown/rST",
        "toml" | "yaml" | "yml" | "json" | "ini" | "cfg" => "Config",
        "html" | "css" | "scss" => "Web",
        "sql" => "SQL",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summarises_layout_languages_and_readme() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("src/pkg")).unwrap();
        std::fs::create_dir_all(root.join("build")).unwrap();
        std::fs::write(root.join("src/a.py"), "x").unwrap();
        std::fs::write(root.join("src/pkg/b.py"), "x").unwrap();
        std::fs::write(root.join("src/c.rs"), "x").unwrap();
        std::fs::write(root.join("build/out.py"), "x").unwrap();
        std::fs::write(root.join(".gitignore"), "build/\n").unwrap();
        let readme: String = (0..100).map(|i| format!("line {i}\n")).collect();
        std::fs::write(root.join("README.md"), readme).unwrap();
        let o = repo_overview(root);
        assert!(o.contains("src/ (3 files)"), "{o}");
        assert!(!o.contains("build/"), "gitignored: {o}");
        assert!(o.contains("Python (2)") && o.contains("Rust (1)"), "{o}");
        assert!(
            o.contains("README.md (head):\nline 0")
                && o.contains("line 39")
                && !o.contains("line 40"),
            "{o}"
        );
        assert!(o.chars().count() <= MAX_CHARS + 4);
    }

    #[test]
    fn is_capped() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..200 {
            std::fs::write(
                dir.path().join(format!("file_with_a_long_name_{i:03}.py")),
                "",
            )
            .unwrap();
        }
        std::fs::write(dir.path().join("README"), "x".repeat(10_000)).unwrap();
        let o = repo_overview(dir.path());
        assert!(o.chars().count() <= MAX_CHARS + 4, "{}", o.len());
        assert!(o.contains("more entries"));
    }
}
