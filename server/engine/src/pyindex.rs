//! A module index of the repository's Python files, parsed with tree-sitter: each file's
//! module name, the names it binds at module level, and the names it takes from other modules
//! of the same repository. The cross-file gate asks it which names an edit removes and who
//! uses them ([`removed_public_names`]); the import check asks it which modules import the
//! touched ones ([`PyIndex::import_targets`]).
//!
//! Everything here works on values (paths and sources); [`PyIndex::build`] is the one function
//! that reads files.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use tree_sitter::{Node, Parser};

/// Files the index reads: sources and stubs.
pub fn is_python(path: &str) -> bool {
    path.ends_with(".py") || path.ends_with(".pyi")
}

/// How a file is imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleName {
    /// Dotted names the file can be imported as, the likeliest first: by its chain of
    /// packages (directories with `__init__.py`), then as a namespace package from the
    /// repository root and from `src/`.
    pub names: Vec<String>,
    /// A package's `__init__`.
    pub is_init: bool,
    /// Its directory is a package whose chain starts at the repository root or at `src/`, so
    /// `names[0]` is what `import` finds with those two directories on `sys.path`.
    pub rooted_package: bool,
}

impl ModuleName {
    /// From a repository-relative path; `init_dirs` are the directories that hold an
    /// `__init__.py`/`__init__.pyi`. `None` for a path no `import` can name.
    pub fn of(path: &str, init_dirs: &BTreeSet<String>) -> Option<ModuleName> {
        let stem = path
            .strip_suffix(".py")
            .or_else(|| path.strip_suffix(".pyi"))?;
        let comps: Vec<&str> = stem.split('/').collect();
        let (last, dirs) = comps.split_last()?;
        let is_init = *last == "__init__";
        let mut start = dirs.len();
        while start > 0 && init_dirs.contains(&dirs[..start].join("/")) {
            start -= 1;
        }
        let dotted = |from: usize| -> Option<String> {
            let parts: Vec<&str> = comps[from..]
                .iter()
                .copied()
                .filter(|c| !(is_init && *c == "__init__"))
                .collect();
            (!parts.is_empty() && parts.iter().all(|p| is_identifier(p))).then(|| parts.join("."))
        };
        // By the package chain; as namespace packages from the root; from below `src/`.
        let mut starts = vec![start, 0];
        if start > 1 && comps[0] == "src" {
            starts.push(1);
        }
        let mut names: Vec<String> = Vec::new();
        for n in starts.into_iter().filter_map(dotted) {
            if !names.contains(&n) {
                names.push(n);
            }
        }
        if names.is_empty() {
            return None;
        }
        let in_package = start < dirs.len();
        let rooted = start == 0 || (start == 1 && dirs[0] == "src");
        Some(ModuleName {
            names,
            is_init,
            rooted_package: in_package && rooted,
        })
    }

    pub fn primary(&self) -> &str {
        &self.names[0]
    }

    /// The package a relative import starts from, if it has one.
    pub fn package(&self) -> Option<String> {
        if self.is_init {
            return Some(self.primary().to_string());
        }
        self.primary().rsplit_once('.').map(|(p, _)| p.to_string())
    }
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_alphabetic() || c == '_')
        && chars.all(|c| c.is_alphanumeric() || c == '_')
}

/// What one source binds at module level and what it imports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileFacts {
    /// Module-level names (imports, `def`, `class`, assignments, `type` aliases, also inside
    /// top-level `if`/`try`/`with`/`for`/`while`) → the 1-based line that first binds them.
    pub defined: BTreeMap<String, u32>,
    /// How many statements bind each of `defined`'s names: `try: import X` / `except: import
    /// io as X` binds `X` twice, and an edit that drops one of them changes what an importer
    /// gets even though the name is still bound somewhere in the text.
    pub bindings: BTreeMap<String, u32>,
    /// The string entries of `__all__` when the module sets it (assigned, `+=`, `extend`,
    /// `append`).
    pub all: Option<BTreeSet<String>>,
    /// The parser recovered from a syntax error: the names may be incomplete.
    pub has_error: bool,
    imports: Vec<Import>,
    chains: Vec<Chain>,
}

/// An import, with relative module names already made absolute.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Import {
    /// `from module import name as bound`; `name` is `*` for a star import.
    From {
        module: String,
        name: String,
        bound: String,
        line: u32,
    },
    /// `import a.b.c` (binds `a` to `a`) or `import a.b as c` (binds `c` to `a.b`).
    Module {
        imported: String,
        bound: String,
        target: String,
        line: u32,
    },
}

/// `root.attr1.attr2` in the source: an identifier and the attributes read from it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Chain {
    parts: Vec<String>,
    line: u32,
}

fn python_parser() -> Parser {
    let mut p = Parser::new();
    // The grammar is compiled in, so its ABI is the one this tree-sitter was built for.
    p.set_language(&tree_sitter_python::LANGUAGE.into())
        .expect("tree-sitter-python's ABI matches tree-sitter");
    p
}

/// Parses one source. `package` is where its relative imports start (see
/// [`ModuleName::package`]); without one they are left out.
pub fn file_facts(src: &str, package: Option<&str>) -> FileFacts {
    facts_with(&mut python_parser(), src, package)
}

/// The module-level names of one source and its `__all__` only ([`FileFacts::defined`] and
/// [`FileFacts::all`], what [`removed_names`] compares): without the walk over every node for
/// imports and attribute chains that the index needs.
pub fn module_names(src: &str) -> FileFacts {
    module_names_with(&mut python_parser(), src)
}

fn module_names_with(parser: &mut Parser, src: &str) -> FileFacts {
    module_names_of(parser.parse(src, None).as_ref(), src)
}

fn module_names_of(tree: Option<&tree_sitter::Tree>, src: &str) -> FileFacts {
    let mut f = FileFacts::default();
    let Some(tree) = tree else {
        f.has_error = true;
        return f;
    };
    let root = tree.root_node();
    f.has_error = root.has_error();
    statements(root, src.as_bytes(), &mut f);
    f
}

/// The edits that turn `before` into `after`, one per changed run of lines (a line diff's
/// hunks), last first: told these, tree-sitter re-parses `after` from `before`'s tree and
/// reuses everything between them, with the same result as a parse from scratch. One edit
/// spanning the first to the last change (a fix at the top of a file and another at the end)
/// left 70% of the parse to redo on Django's edits; one per hunk leaves 15%.
fn line_edits(before: &str, after: &str) -> Vec<tree_sitter::InputEdit> {
    use tree_sitter::Point;
    fn line_starts(text: &str) -> Vec<usize> {
        std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect()
    }
    // The byte offset where line `line` starts (the end of the text past the last line).
    fn offset(starts: &[usize], len: usize, line: usize) -> usize {
        starts.get(line).copied().unwrap_or(len).min(len)
    }
    fn point(starts: &[usize], at: usize) -> Point {
        let row = starts.partition_point(|s| *s <= at).saturating_sub(1);
        Point {
            row,
            column: at - starts[row],
        }
    }
    let (bs, als) = (line_starts(before), line_starts(after));
    let diff = similar::TextDiff::from_lines(before, after);
    let mut edits: Vec<tree_sitter::InputEdit> = diff
        .ops()
        .iter()
        .filter(|op| op.tag() != similar::DiffTag::Equal)
        .map(|op| {
            let (old, new) = (op.old_range(), op.new_range());
            let start = offset(&bs, before.len(), old.start);
            let old_end = offset(&bs, before.len(), old.end);
            let new_start = offset(&als, after.len(), new.start);
            let new_end = offset(&als, after.len(), new.end);
            // Edits are applied last first, so each one's start is where it is in `before`
            // and its new end is that start plus the length of its new text.
            let new_end_byte = start + (new_end - new_start);
            let new_end_position = {
                let p = point(&als, new_end);
                let s = point(&als, new_start);
                let at = point(&bs, start);
                if p.row == s.row {
                    Point {
                        row: at.row,
                        column: at.column + (p.column - s.column),
                    }
                } else {
                    Point {
                        row: at.row + (p.row - s.row),
                        column: p.column,
                    }
                }
            };
            tree_sitter::InputEdit {
                start_byte: start,
                old_end_byte: old_end,
                new_end_byte,
                start_position: point(&bs, start),
                old_end_position: point(&bs, old_end),
                new_end_position,
            }
        })
        .collect();
    edits.reverse();
    edits
}

/// The module-level names an edit of one source removes ([`removed_names`]), from the
/// module-level statements alone.
pub fn removed_names_of(before: &str, after: &str) -> Vec<String> {
    removed_names_with(&mut python_parser(), before, after)
}

/// [`removed_names`] of one edit: `before` parsed, `after` re-parsed from its tree
/// ([`line_edits`]).
fn removed_names_with(parser: &mut Parser, before: &str, after: &str) -> Vec<String> {
    let old = parser.parse(before, None);
    let b = module_names_of(old.as_ref(), before);
    let new = match old {
        Some(mut tree) => {
            for edit in line_edits(before, after) {
                tree.edit(&edit);
            }
            parser.parse(after, Some(&tree))
        }
        None => parser.parse(after, None),
    };
    let a = module_names_of(new.as_ref(), after);
    removed_names(&b, &a)
}

/// [`removed_names`] of each (before, after) pair, in order, parsed on as many threads as
/// there are cores (up to 4): the first question the cross-file gate asks of every edit of a
/// run. `None` if a thread panicked (the caller then asks one edit at a time).
pub fn removed_names_many(pairs: &[(&str, &str)]) -> Option<Vec<Vec<String>>> {
    noctune_util::par::map_in_chunks(pairs, python_parser, |parser, (before, after)| {
        removed_names_with(parser, before, after)
    })
    .into_iter()
    .collect()
}

fn facts_with(parser: &mut Parser, src: &str, package: Option<&str>) -> FileFacts {
    let mut f = FileFacts::default();
    let Some(tree) = parser.parse(src, None) else {
        f.has_error = true;
        return f;
    };
    let root = tree.root_node();
    f.has_error = root.has_error();
    let b = src.as_bytes();
    statements(root, b, &mut f);
    walk(root, b, package, &mut f);
    f
}

fn text<'a>(n: Node, b: &'a [u8]) -> &'a str {
    n.utf8_text(b).unwrap_or("")
}

fn line(n: Node) -> u32 {
    n.start_position().row as u32 + 1
}

fn named_children<'t>(n: Node<'t>) -> Vec<Node<'t>> {
    let mut c = n.walk();
    n.named_children(&mut c).collect()
}

fn define(f: &mut FileFacts, name: &str, at: u32) {
    if !name.is_empty() {
        f.defined.entry(name.to_string()).or_insert(at);
        *f.bindings.entry(name.to_string()).or_insert(0) += 1;
    }
}

/// The module-level statements of a block (the module itself, or a top-level compound
/// statement's block).
fn statements(block: Node, b: &[u8], f: &mut FileFacts) {
    for s in named_children(block) {
        let at = line(s);
        match s.kind() {
            "import_statement" => {
                for n in named_children(s) {
                    match n.kind() {
                        "dotted_name" => {
                            let first = text(n, b).split('.').next().unwrap_or("");
                            define(f, first.trim(), at);
                        }
                        "aliased_import" => {
                            if let Some(a) = n.child_by_field_name("alias") {
                                define(f, text(a, b), at);
                            }
                        }
                        _ => {}
                    }
                }
            }
            "import_from_statement" => {
                for n in named_children(s) {
                    if s.child_by_field_name("module_name") == Some(n) {
                        continue;
                    }
                    match n.kind() {
                        "dotted_name" => define(f, text(n, b), at),
                        "aliased_import" => {
                            if let Some(a) = n.child_by_field_name("alias") {
                                define(f, text(a, b), at);
                            }
                        }
                        _ => {}
                    }
                }
            }
            "function_definition" | "class_definition" => {
                if let Some(n) = s.child_by_field_name("name") {
                    define(f, text(n, b), at);
                }
            }
            "decorated_definition" => {
                if let Some(n) = s
                    .child_by_field_name("definition")
                    .and_then(|d| d.child_by_field_name("name"))
                {
                    define(f, text(n, b), at);
                }
            }
            "type_alias_statement" => {
                if let Some(n) = s.child_by_field_name("left") {
                    let name = text(n, b);
                    let name = name.split('[').next().unwrap_or(name).trim();
                    define(f, name, at);
                }
            }
            "expression_statement" => {
                for e in named_children(s) {
                    expression_statement(e, b, f);
                }
            }
            "with_statement" => {
                for c in named_children(s) {
                    if c.kind() == "with_clause" {
                        for item in named_children(c) {
                            if let Some(t) = item
                                .child_by_field_name("value")
                                .filter(|v| v.kind() == "as_pattern")
                                .and_then(|v| v.child_by_field_name("alias"))
                            {
                                targets(t, b, f, at);
                            }
                        }
                    }
                }
                compound(s, b, f);
            }
            "for_statement" => {
                if let Some(t) = s.child_by_field_name("left") {
                    targets(t, b, f, at);
                }
                compound(s, b, f);
            }
            "if_statement" | "try_statement" | "while_statement" => compound(s, b, f),
            _ => {}
        }
    }
}

/// The blocks of a compound statement and of its clauses (`elif`, `else`, `except`,
/// `finally`).
fn compound(s: Node, b: &[u8], f: &mut FileFacts) {
    for c in named_children(s) {
        match c.kind() {
            "block" => statements(c, b, f),
            "with_clause" => {}
            k if k.ends_with("_clause") => compound(c, b, f),
            _ => {}
        }
    }
}

fn expression_statement(e: Node, b: &[u8], f: &mut FileFacts) {
    let at = line(e);
    match e.kind() {
        "assignment" => {
            // `x: int` alone binds nothing; `a = b = 1` nests the second assignment.
            let Some(right) = e.child_by_field_name("right") else {
                return;
            };
            if let Some(left) = e.child_by_field_name("left") {
                if text(left, b) == "__all__" {
                    f.all.get_or_insert_default().extend(strings(right, b));
                }
                targets(left, b, f, at);
            }
            if right.kind() == "assignment" {
                expression_statement(right, b, f);
            }
        }
        "augmented_assignment" => {
            if let (Some(left), Some(right)) = (
                e.child_by_field_name("left"),
                e.child_by_field_name("right"),
            ) && text(left, b) == "__all__"
            {
                f.all.get_or_insert_default().extend(strings(right, b));
            }
        }
        "call" => {
            let callee = e.child_by_field_name("function").map(|n| text(n, b));
            if matches!(callee, Some("__all__.extend" | "__all__.append"))
                && let Some(args) = e.child_by_field_name("arguments")
            {
                f.all.get_or_insert_default().extend(strings(args, b));
            }
        }
        _ => {}
    }
}

/// The names an assignment target binds (attributes and subscripts bind none).
fn targets(t: Node, b: &[u8], f: &mut FileFacts, at: u32) {
    match t.kind() {
        "identifier" => define(f, text(t, b), at),
        "pattern_list"
        | "tuple_pattern"
        | "list_pattern"
        | "tuple"
        | "list"
        | "expression_list"
        | "list_splat_pattern"
        | "list_splat"
        | "as_pattern_target"
        | "parenthesized_expression" => {
            for c in named_children(t) {
                targets(c, b, f, at);
            }
        }
        _ => {}
    }
}

/// The plain string literals in a list/tuple/concatenation (f-strings are left out).
fn strings(n: Node, b: &[u8]) -> Vec<String> {
    match n.kind() {
        "string" => {
            let parts = named_children(n);
            if parts.iter().any(|p| p.kind() == "interpolation") {
                return Vec::new();
            }
            let s: String = parts
                .iter()
                .filter(|p| p.kind() == "string_content")
                .map(|p| text(*p, b))
                .collect();
            vec![s]
        }
        "list"
        | "tuple"
        | "set"
        | "binary_operator"
        | "parenthesized_expression"
        | "argument_list" => named_children(n)
            .into_iter()
            .flat_map(|c| strings(c, b))
            .collect(),
        _ => Vec::new(),
    }
}

/// Every import (at any depth: a function's local import uses the module too) and every
/// maximal attribute chain on an identifier, in one pass over the tree.
fn walk(root: Node, b: &[u8], package: Option<&str>, f: &mut FileFacts) {
    let mut cursor = root.walk();
    loop {
        let n = cursor.node();
        let mut descend = true;
        match n.kind() {
            "import_statement" => {
                imports_of_import(n, b, f);
                descend = false;
            }
            "import_from_statement" => {
                imports_of_from(n, b, package, f);
                descend = false;
            }
            "attribute" => {
                // Only `attribute` has an `object` field: this one is part of a longer chain.
                let inner = cursor.field_name() == Some("object");
                if !inner && let Some(parts) = chain(n, b) {
                    f.chains.push(Chain {
                        parts,
                        line: line(n),
                    });
                }
            }
            _ => {}
        }
        if descend && cursor.goto_first_child() {
            continue;
        }
        loop {
            if cursor.goto_next_sibling() {
                break;
            }
            if !cursor.goto_parent() {
                return;
            }
        }
    }
}

/// `a.b.c` as `["a", "b", "c"]` when its innermost object is a name.
fn chain(mut n: Node, b: &[u8]) -> Option<Vec<String>> {
    let mut attrs = Vec::new();
    while n.kind() == "attribute" {
        attrs.push(text(n.child_by_field_name("attribute")?, b).to_string());
        n = n.child_by_field_name("object")?;
    }
    if n.kind() != "identifier" {
        return None;
    }
    attrs.push(text(n, b).to_string());
    attrs.reverse();
    Some(attrs)
}

fn dotted(n: Node, b: &[u8]) -> String {
    text(n, b).split_whitespace().collect()
}

fn imports_of_import(s: Node, b: &[u8], f: &mut FileFacts) {
    let at = line(s);
    for n in named_children(s) {
        match n.kind() {
            "dotted_name" => {
                let imported = dotted(n, b);
                let first = imported.split('.').next().unwrap_or("").to_string();
                f.imports.push(Import::Module {
                    imported,
                    bound: first.clone(),
                    target: first,
                    line: at,
                });
            }
            "aliased_import" => {
                if let (Some(name), Some(alias)) = (
                    n.child_by_field_name("name"),
                    n.child_by_field_name("alias"),
                ) {
                    let imported = dotted(name, b);
                    f.imports.push(Import::Module {
                        imported: imported.clone(),
                        bound: text(alias, b).to_string(),
                        target: imported,
                        line: at,
                    });
                }
            }
            _ => {}
        }
    }
}

fn imports_of_from(s: Node, b: &[u8], package: Option<&str>, f: &mut FileFacts) {
    let at = line(s);
    let Some(m) = s.child_by_field_name("module_name") else {
        return;
    };
    let module = match m.kind() {
        "relative_import" => {
            let mut level = 0;
            let mut rest = String::new();
            for c in named_children(m) {
                match c.kind() {
                    "import_prefix" => level = text(c, b).chars().filter(|c| *c == '.').count(),
                    "dotted_name" => rest = dotted(c, b),
                    _ => {}
                }
            }
            match resolve_relative(package, level, &rest) {
                Some(abs) => abs,
                None => return,
            }
        }
        _ => dotted(m, b),
    };
    for n in named_children(s) {
        if n == m {
            continue;
        }
        let (name, bound) = match n.kind() {
            "dotted_name" => (dotted(n, b), dotted(n, b)),
            "aliased_import" => match (
                n.child_by_field_name("name"),
                n.child_by_field_name("alias"),
            ) {
                (Some(name), Some(alias)) => (dotted(name, b), text(alias, b).to_string()),
                _ => continue,
            },
            "wildcard_import" => ("*".to_string(), String::new()),
            _ => continue,
        };
        f.imports.push(Import::From {
            module: module.clone(),
            name,
            bound,
            line: at,
        });
    }
}

/// `from ..x import y` in package `a.b.c` is `a.b.x`; `None` above the top package.
fn resolve_relative(package: Option<&str>, level: usize, rest: &str) -> Option<String> {
    let mut parts: Vec<&str> = package?.split('.').collect();
    for _ in 1..level {
        parts.pop()?;
    }
    if parts.is_empty() {
        return None;
    }
    if !rest.is_empty() {
        parts.push(rest);
    }
    Some(parts.join("."))
}

/// A function or method of a source: 0-based lines, `start` at its first decorator, `end`
/// one past its last line, `def_line` where `def` is; `indent` is the column of `def`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionSpan {
    pub name: String,
    pub start: usize,
    pub def_line: usize,
    pub end: usize,
    pub indent: usize,
}

/// Every `def`/`async def` of `src`, nested ones too, in file order.
pub fn function_spans(src: &str) -> Vec<FunctionSpan> {
    let mut out = Vec::new();
    let Some(tree) = python_parser().parse(src, None) else {
        return out;
    };
    let b = src.as_bytes();
    let mut cursor = tree.root_node().walk();
    loop {
        let n = cursor.node();
        if n.kind() == "function_definition"
            && let Some(name) = n.child_by_field_name("name")
        {
            let outer = n
                .parent()
                .filter(|p| p.kind() == "decorated_definition")
                .unwrap_or(n);
            let end = n.end_position();
            out.push(FunctionSpan {
                name: text(name, b).to_string(),
                start: outer.start_position().row,
                def_line: n.start_position().row,
                end: if end.column == 0 {
                    end.row
                } else {
                    end.row + 1
                },
                indent: n.start_position().column,
            });
        }
        if cursor.goto_first_child() {
            continue;
        }
        loop {
            if cursor.goto_next_sibling() {
                break;
            }
            if !cursor.goto_parent() {
                return out;
            }
        }
    }
}

/// How another file uses a module-level name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum UseKind {
    /// `from m import name`.
    Import,
    /// `from m import *`.
    Star,
    /// `m.name` through an imported module (`import pkg.m as c` then `c.name`).
    Attribute,
}

/// A use of `module.name` by a file of the repository, at a 1-based line.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Use {
    pub path: String,
    pub line: u32,
    pub module: String,
    pub name: String,
    pub kind: UseKind,
}

#[derive(Debug, Clone)]
struct Indexed {
    module: ModuleName,
    /// What identifies the content the facts were parsed from (a git blob id), if anything.
    key: Option<String>,
    facts: Arc<FileFacts>,
    /// Modules of the repository this file imports.
    imports: BTreeSet<String>,
}

/// The index of a repository's Python files.
#[derive(Debug, Clone, Default)]
pub struct PyIndex {
    init_dirs: BTreeSet<String>,
    files: BTreeMap<String, Indexed>,
    /// Dotted module name → the files it names.
    modules: HashMap<String, Vec<String>>,
    /// Every proper prefix of a module name: packages, namespace packages included.
    packages: HashSet<String>,
    /// Module → the uses of its names by other files.
    uses: HashMap<String, Vec<Use>>,
}

impl PyIndex {
    /// Reads and indexes `paths` (repository-relative) under `root`; files that are not
    /// Python, cannot be read or are not UTF-8 are left out.
    pub fn build(root: &Path, paths: &[String]) -> PyIndex {
        let keyed: Vec<(String, Option<String>)> =
            paths.iter().map(|p| (p.clone(), None)).collect();
        PyIndex::build_reusing(keyed, |p| std::fs::read_to_string(root.join(p)).ok(), None)
    }

    /// Indexes sources given as (repository-relative path, text).
    pub fn from_sources(sources: Vec<(String, String)>) -> PyIndex {
        let texts: HashMap<String, String> = sources.into_iter().collect();
        let keyed = texts.keys().map(|p| (p.clone(), None)).collect();
        PyIndex::build_reusing(keyed, |p| texts.get(p).cloned(), None)
    }

    /// Indexes `paths`, each with the key of its content (a git blob id) when known, reading
    /// a source with `read` only when `previous` has no facts for the same key and package:
    /// after a commit, only the files it changed are parsed again.
    pub fn build_reusing(
        paths: Vec<(String, Option<String>)>,
        read: impl Fn(&str) -> Option<String> + Sync,
        previous: Option<&PyIndex>,
    ) -> PyIndex {
        let init_dirs: BTreeSet<String> = paths
            .iter()
            .filter_map(|(p, _)| {
                let (dir, file) = p.rsplit_once('/')?;
                matches!(file, "__init__.py" | "__init__.pyi").then(|| dir.to_string())
            })
            .collect();
        let named: Vec<(String, Option<String>, ModuleName)> = paths
            .into_iter()
            .filter(|(p, _)| is_python(p))
            .filter_map(|(p, k)| {
                let m = ModuleName::of(&p, &init_dirs)?;
                Some((p, k, m))
            })
            .collect();
        let reused = |path: &str, key: &Option<String>, m: &ModuleName| {
            let old = previous?.files.get(path)?;
            (key.is_some() && old.key == *key && old.module == *m).then(|| old.facts.clone())
        };
        let to_parse: Vec<(usize, Option<String>)> = named
            .iter()
            .enumerate()
            .filter(|(_, (p, k, m))| reused(p, k, m).is_none())
            .map(|(i, (_, _, m))| (i, m.package()))
            .collect();
        let parsed = parse_all(&to_parse, |i| read(&named[i].0));
        let mut index = PyIndex {
            init_dirs,
            ..PyIndex::default()
        };
        for (path, _, module) in &named {
            for n in &module.names {
                index
                    .modules
                    .entry(n.clone())
                    .or_default()
                    .push(path.clone());
                let mut prefix = n.as_str();
                while let Some((p, _)) = prefix.rsplit_once('.') {
                    index.packages.insert(p.to_string());
                    prefix = p;
                }
            }
        }
        let mut parsed = parsed.into_iter().peekable();
        let mut indexed = BTreeMap::new();
        for (i, (path, key, module)) in named.into_iter().enumerate() {
            let facts = match reused(&path, &key, &module) {
                Some(f) => f,
                None => match parsed.next_if(|(j, _)| *j == i) {
                    Some((_, Some(f))) => Arc::new(f),
                    // Unreadable or not UTF-8: importable, but nothing known of its content.
                    _ => Arc::new(FileFacts::default()),
                },
            };
            let (uses, imports) = index.resolve(&path, &module, &facts);
            for u in uses {
                index.uses.entry(u.module.clone()).or_default().push(u);
            }
            indexed.insert(
                path,
                Indexed {
                    module,
                    key,
                    facts,
                    imports,
                },
            );
        }
        index.files = indexed;
        for v in index.uses.values_mut() {
            v.sort();
        }
        index
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// How `path` is imported, by the packages of this tree (also for a path not indexed).
    pub fn module_name(&self, path: &str) -> Option<ModuleName> {
        match self.files.get(path) {
            Some(f) => Some(f.module.clone()),
            None => ModuleName::of(path, &self.init_dirs),
        }
    }

    fn is_module(&self, m: &str) -> bool {
        self.modules.contains_key(m)
    }

    fn is_module_or_package(&self, m: &str) -> bool {
        self.modules.contains_key(m) || self.packages.contains(m)
    }

    /// One file's uses of other modules' names, and the repository modules it imports.
    fn resolve(
        &self,
        path: &str,
        me: &ModuleName,
        facts: &FileFacts,
    ) -> (Vec<Use>, BTreeSet<String>) {
        let mut uses = Vec::new();
        let mut imports = BTreeSet::new();
        let mut bound: HashMap<&str, Vec<String>> = HashMap::new();
        let own = |m: &str| me.names.iter().any(|n| n == m);
        let push = |uses: &mut Vec<Use>, module: &str, name: &str, line, kind| {
            if !own(module) {
                uses.push(Use {
                    path: path.to_string(),
                    line,
                    module: module.to_string(),
                    name: name.to_string(),
                    kind,
                });
            }
        };
        for imp in &facts.imports {
            match imp {
                Import::From {
                    module,
                    name,
                    bound: as_name,
                    line,
                } => {
                    if self.is_module_or_package(module) {
                        imports.insert(module.clone());
                    }
                    if name == "*" {
                        if self.is_module(module) {
                            push(&mut uses, module, "*", *line, UseKind::Star);
                        }
                        continue;
                    }
                    if self.is_module(module) {
                        push(&mut uses, module, name, *line, UseKind::Import);
                    }
                    let sub = format!("{module}.{name}");
                    if self.is_module_or_package(&sub) {
                        imports.insert(sub.clone());
                        bound.entry(as_name.as_str()).or_default().push(sub);
                    }
                }
                Import::Module {
                    imported,
                    bound: as_name,
                    target,
                    ..
                } => {
                    if self.is_module_or_package(imported) {
                        imports.insert(imported.clone());
                        bound
                            .entry(as_name.as_str())
                            .or_default()
                            .push(target.clone());
                    }
                }
            }
        }
        for c in &facts.chains {
            let Some(targets) = bound.get(c.parts[0].as_str()) else {
                continue;
            };
            for t in targets {
                let mut cur = t.clone();
                for attr in &c.parts[1..] {
                    let next = format!("{cur}.{attr}");
                    if self.is_module_or_package(&next) {
                        cur = next;
                        continue;
                    }
                    if self.is_module(&cur) {
                        push(&mut uses, &cur, attr, c.line, UseKind::Attribute);
                    }
                    break;
                }
            }
        }
        imports.retain(|m| !own(m));
        uses.sort();
        uses.dedup();
        (uses, imports)
    }

    /// Uses of `module.name` by files other than `except`; a star import counts for a name
    /// it brings in (`star`).
    pub fn uses_of(&self, module: &str, name: &str, star: bool, except: &str) -> Vec<&Use> {
        self.uses
            .get(module)
            .into_iter()
            .flatten()
            .filter(|u| u.path != except)
            .filter(|u| u.name == name || (star && u.kind == UseKind::Star))
            .collect()
    }

    /// The modules to import to see whether an edit of `touched` broke an import: each touched
    /// module of a package, its top-level package, and the package modules that import it.
    /// Only modules inside packages rooted at the repository root or `src/` (a script outside
    /// a package may do its work on import, so it is never imported); `__main__` never.
    pub fn import_targets(&self, touched: &[String]) -> Vec<String> {
        let importable =
            |m: &ModuleName| m.rooted_package && !m.primary().split('.').any(|c| c == "__main__");
        let mut out = BTreeSet::new();
        for path in touched.iter().filter(|p| p.ends_with(".py")) {
            let Some(f) = self.files.get(path) else {
                continue;
            };
            if !importable(&f.module) {
                continue;
            }
            let primary = f.module.primary();
            out.insert(primary.split('.').next().unwrap_or(primary).to_string());
            out.insert(primary.to_string());
            for other in self.files.values() {
                if importable(&other.module)
                    && f.module.names.iter().any(|n| other.imports.contains(n))
                {
                    out.insert(other.module.primary().to_string());
                }
            }
        }
        out.into_iter().collect()
    }
}

/// Parses the sources `read` gives for `items` (an index and the package of its relative
/// imports), on as many threads as there are cores (up to 4); `None` for one it could not read.
fn parse_all(
    items: &[(usize, Option<String>)],
    read: impl Fn(usize) -> Option<String> + Sync,
) -> Vec<(usize, Option<FileFacts>)> {
    noctune_util::par::map_in_chunks(items, python_parser, |parser, (i, package)| {
        let facts = read(*i).map(|src| facts_with(parser, &src, package.as_deref()));
        (*i, facts)
    })
    .into_iter()
    .flatten()
    .collect()
}

/// The `__all__` of a source ([`FileFacts::all`]), parsing only a source that spells it: one
/// that does not cannot set it.
pub fn all_of(src: &str) -> Option<BTreeSet<String>> {
    if !src.contains("__all__") {
        return None;
    }
    module_names(src).all
}

/// The last part of the module name of a Python file (`pkg/m.py` and `pkg/m/__init__.py`:
/// `m`); `None` for a path no module name ends with (a top-level `__init__.py`).
pub fn module_leaf(path: &str) -> Option<&str> {
    let stem = path
        .strip_suffix(".py")
        .or_else(|| path.strip_suffix(".pyi"))?;
    let (dirs, last) = match stem.rsplit_once('/') {
        Some((dirs, last)) => (Some(dirs), last),
        None => (None, stem),
    };
    if last != "__init__" {
        return Some(last);
    }
    let dirs = dirs?;
    Some(dirs.rsplit_once('/').map_or(dirs, |(_, d)| d))
}

/// Whether `src` could import or reference a module whose name ends in one of `leaves`: every
/// such use spells the module's last part (`import pkg.m`, `from pkg import m`, `pkg.m.x`,
/// `from .m import x`), except a relative import by dots alone (`from . import x`, `from ..
/// import x`), which any file with one might be. A superset, cheap to test, so that an index
/// for the uses of a few modules parses only the files that might use them.
pub fn could_use(src: &str, leaves: &BTreeSet<String>) -> bool {
    leaves.iter().any(|l| src.contains(l.as_str())) || has_dots_only_import(src)
}

fn has_dots_only_import(src: &str) -> bool {
    src.match_indices("from").any(|(i, _)| {
        src[i + 4..]
            .trim_start_matches([' ', '\t', '\\', '\r', '\n'])
            .starts_with('.')
    })
}

/// Module-level names the edit removes or renames: bound before and not after (or by fewer
/// statements after: one of alternative bindings dropped), or listed in `__all__` before and
/// not after (a name still listed but no longer bound is removed too).
pub fn removed_names(before: &FileFacts, after: &FileFacts) -> Vec<String> {
    let empty = BTreeSet::new();
    let (all_before, all_after) = (
        before.all.as_ref().unwrap_or(&empty),
        after.all.as_ref().unwrap_or(&empty),
    );
    // Unbound, or bound by fewer statements than before (one branch of a try/except or an
    // if/else of alternatives removed).
    let unbound = before.defined.keys().filter(|n| {
        !after.defined.contains_key(*n)
            || after.bindings.get(*n).copied().unwrap_or(0)
                < before.bindings.get(*n).copied().unwrap_or(0)
    });
    let unlisted = all_before.iter().filter(|n| !all_after.contains(*n));
    unbound
        .chain(unlisted)
        .cloned()
        .collect::<BTreeSet<String>>()
        .into_iter()
        .collect()
}

/// The decision of the cross-file gate: for the edit of `path` from `before` to `after`,
/// each module-level name it removes (or renames) that another file of `index` imports or
/// references, or that the module's `__all__` lists, with who uses it
/// (`pkg.compat.helper is imported by pkg/api.py:3`). Empty when nobody uses what it
/// removes, and for a file that is not Python.
pub fn removed_public_names(index: &PyIndex, path: &str, before: &str, after: &str) -> Vec<String> {
    if !is_python(path) {
        return Vec::new();
    }
    // The module-level statements are all this asks of the texts (no walk for imports).
    let b = module_names(before);
    let a = module_names(after);
    users_of_removed(index, path, &removed_names(&b, &a), b.all.as_ref())
}

/// [`removed_public_names`] when the names the edit removes are known already: `before_all`
/// is the pre-image's `__all__` ([`all_of`]).
pub fn users_of_removed(
    index: &PyIndex,
    path: &str,
    removed: &[String],
    before_all: Option<&BTreeSet<String>>,
) -> Vec<String> {
    if !is_python(path) {
        return Vec::new();
    }
    let Some(module) = index.module_name(path) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for name in removed {
        let listed = before_all.is_some_and(|all| all.contains(name));
        // What `from m import *` brings in: `__all__`, or else every public name.
        let starred = match before_all {
            Some(all) => all.contains(name),
            None => !name.starts_with('_'),
        };
        let mut users: Vec<&Use> = module
            .names
            .iter()
            .flat_map(|m| index.uses_of(m, name, starred, path))
            .collect();
        users.sort();
        users.dedup();
        let qualified = format!("{}.{name}", module.primary());
        if !users.is_empty() {
            out.push(format!("{qualified} is {}", describe(&users)));
        }
        if listed {
            out.push(format!(
                "{qualified} is listed in {}.__all__",
                module.primary()
            ));
        }
    }
    out
}

/// `imported by a.py:3, b.py:7 (from pkg.m import *); referenced by c.py:9`, at most five
/// places in all.
fn describe(users: &[&Use]) -> String {
    const SHOWN: usize = 5;
    let mut parts = Vec::new();
    let mut shown = 0;
    for (kind, verb) in [
        (UseKind::Import, "imported by"),
        (UseKind::Star, "imported by"),
        (UseKind::Attribute, "referenced by"),
    ] {
        let of_kind: Vec<&&Use> = users.iter().filter(|u| u.kind == kind).collect();
        if of_kind.is_empty() || shown >= SHOWN {
            continue;
        }
        let places: Vec<String> = of_kind
            .iter()
            .take(SHOWN - shown)
            .map(|u| match kind {
                UseKind::Star => format!("{}:{} (from {} import *)", u.path, u.line, u.module),
                _ => format!("{}:{}", u.path, u.line),
            })
            .collect();
        shown += places.len();
        parts.push(format!("{verb} {}", places.join(", ")));
    }
    let mut s = parts.join("; ");
    if users.len() > shown {
        s.push_str(&format!(" and {} more", users.len() - shown));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The batch answer is the one-at-a-time answer, edit by edit and in order (whatever
    /// chunk a thread got).
    #[test]
    fn dropping_one_of_two_alternative_bindings_removes_the_name() {
        let before = "try:\n    import StringIO\nexcept ImportError:\n    import io as StringIO\n";
        let after = "try:\n    import StringIO\nexcept ImportError:\n    pass\n";
        assert_eq!(removed_names_of(before, after), ["StringIO"]);
        // Reordering or reformatting keeps both.
        let swapped = "try:\n    import io as StringIO\nexcept ImportError:\n    import StringIO\n";
        assert!(removed_names_of(before, swapped).is_empty());
    }

    #[test]
    fn removed_names_of_many_edits_are_each_edits_own_in_order() {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for i in 0..37 {
            let before = format!(
                "import os\nfrom m import a{i}\n__all__ = ['f{i}']\n\ndef f{i}():\n    return os\n"
            );
            let after = match i % 3 {
                0 => before.replace(
                    "from m import a{i}\n"
                        .replace("{i}", &i.to_string())
                        .as_str(),
                    "",
                ),
                1 => before.replace("def f", "def g"),
                _ => before.replace("return os", "return  os"),
            };
            pairs.push((before, after));
        }
        let refs: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(b, a)| (b.as_str(), a.as_str()))
            .collect();
        let many = removed_names_many(&refs).expect("no thread panics");
        assert_eq!(many.len(), pairs.len());
        for (i, ((b, a), got)) in pairs.iter().zip(&many).enumerate() {
            let one = removed_names(&file_facts(b, None), &file_facts(a, None));
            assert_eq!(got, &one, "edit {i}");
            assert_eq!(got.is_empty(), i % 3 == 2, "edit {i}: {got:?}");
        }
        assert_eq!(removed_names_many(&[]), Some(Vec::new()));
    }

    /// Re-parsing from the old tree (one edit per changed run of lines, [`line_edits`]) gives
    /// the tree and the facts a parse from scratch gives: edits at the start, the end, in the
    /// middle, in two places, growing and shrinking, next to multi-byte characters, without a
    /// last newline, and to or from nothing.
    #[test]
    fn a_re_parse_from_the_old_tree_finds_what_a_fresh_parse_finds() {
        let base = "import os\nfrom m import (\n    a,\n    b,\n)\n__all__ = ['f', 'C']\n\n\ndef f():\n    return 'é'\n\n\nclass C:\n    x = 1\n";
        let edits = [
            base.replace("import os\n", ""),
            base.replace("    b,\n", ""),
            base.replace("def f()", "def g()"),
            base.replace(
                "class C:\n    x = 1\n",
                "if True:\n    class C:\n        x = 1\n",
            ),
            base.replace("'é'", "'ée'").replace("    a,\n", ""),
            base.replace("'é'", "'è'"),
            format!("{base}D = 2"),
            base.trim_end().to_string(),
            format!("Z = 0\n{base}"),
            format!("Z = 0\n{}", base.replace("'é'", "'è'").trim_end()),
            base.replace("import os\n", "import os, sys\n")
                .replace("def f()", "def  f()")
                .replace("x = 1", "x = 2\n\n\ny = 3"),
            String::new(),
            base.to_string(),
        ];
        let mut parser = python_parser();
        for after in &edits {
            for (b, a) in [(base, after.as_str()), (after.as_str(), base)] {
                let fresh = removed_names(&module_names(b), &module_names(a));
                assert_eq!(
                    removed_names_with(&mut parser, b, a),
                    fresh,
                    "{b:?} -> {a:?}"
                );
                let mut old = parser.parse(b, None).unwrap();
                for edit in line_edits(b, a) {
                    old.edit(&edit);
                }
                let again = parser.parse(a, Some(&old)).unwrap();
                let scratch = parser.parse(a, None).unwrap();
                // The same nodes at the same bytes and rows/columns (a wrong position in an
                // edit would keep the shape and move the nodes).
                assert_eq!(
                    layout(again.root_node()),
                    layout(scratch.root_node()),
                    "{b:?} -> {a:?}"
                );
            }
        }
    }

    /// A node's kind, byte range, and start and end (row, column).
    type Placed = (String, usize, usize, (usize, usize), (usize, usize));

    fn layout(n: Node) -> Vec<Placed> {
        let mut out = Vec::new();
        let mut stack = vec![n];
        while let Some(n) = stack.pop() {
            let (s, e) = (n.start_position(), n.end_position());
            out.push((
                n.kind().to_string(),
                n.start_byte(),
                n.end_byte(),
                (s.row, s.column),
                (e.row, e.column),
            ));
            let mut c = n.walk();
            stack.extend(n.children(&mut c));
        }
        out
    }

    fn index(files: &[(&str, &str)]) -> PyIndex {
        PyIndex::from_sources(
            files
                .iter()
                .map(|(p, s)| (p.to_string(), s.to_string()))
                .collect(),
        )
    }

    fn names(src: &str) -> Vec<String> {
        file_facts(src, None).defined.into_keys().collect()
    }

    #[test]
    fn module_level_names_of_every_binding_form() {
        let src = "\
import os, a.b.c, x.y as xy
from m import p, q as r
from . import rel
def f(): pass
async def g():
    inner = 1
class K:
    attr = 1
@deco
def decorated(): pass
v = 1
w: int = 2
bare: int
s, (t, *u) = 1, (2, 3)
[l1, l2] = 1, 2
c1 = c2 = 0
obj.attr = 3
d[0] = 4
type Alias = int
if X:
    in_if = 1
else:
    in_else = 2
try:
    import fast as impl
except ImportError:
    impl = None
with open('f') as (h1, h2):
    pass
for i in range(3):
    pass
";
        assert_eq!(
            names(src),
            [
                "Alias",
                "K",
                "a",
                "c1",
                "c2",
                "decorated",
                "f",
                "g",
                "h1",
                "h2",
                "i",
                "impl",
                "in_else",
                "in_if",
                "l1",
                "l2",
                "os",
                "p",
                "r",
                "rel",
                "s",
                "t",
                "u",
                "v",
                "w",
                "xy"
            ]
        );
        assert_eq!(file_facts(src, None).defined["w"], 12);
    }

    #[test]
    fn all_is_read_from_assignments_extend_append_and_plus_equals() {
        let f = file_facts(
            "__all__ = ['a', \"b\"]\n__all__ += ('c',)\n__all__.extend(['d', f'x{y}'])\n__all__.append('e')\n",
            None,
        );
        let all: Vec<&str> = f.all.as_ref().unwrap().iter().map(String::as_str).collect();
        assert_eq!(all, ["a", "b", "c", "d", "e"]);
        assert_eq!(file_facts("x = 1\n", None).all, None);
    }

    #[test]
    fn module_names_from_packages_src_layout_and_namespaces() {
        let idx = index(&[
            ("pkg/__init__.py", ""),
            ("pkg/sub/__init__.py", ""),
            ("pkg/sub/deep.py", ""),
            ("src/lib/__init__.py", ""),
            ("src/lib/core.py", ""),
            ("ns/part/mod.py", ""),
            ("scripts/run.py", ""),
            ("my-tools/x.py", ""),
        ]);
        let m = |p: &str| idx.module_name(p).unwrap();
        assert_eq!(m("pkg/sub/deep.py").names, ["pkg.sub.deep"]);
        assert!(m("pkg/sub/deep.py").rooted_package);
        assert_eq!(m("pkg/__init__.py").names, ["pkg"]);
        assert!(m("pkg/__init__.py").is_init);
        assert_eq!(m("pkg/__init__.py").package().as_deref(), Some("pkg"));
        assert_eq!(m("src/lib/core.py").names, ["lib.core", "src.lib.core"]);
        assert!(m("src/lib/core.py").rooted_package);
        assert_eq!(m("ns/part/mod.py").names, ["mod", "ns.part.mod"]);
        assert!(!m("ns/part/mod.py").rooted_package);
        assert_eq!(m("scripts/run.py").names, ["run", "scripts.run"]);
        assert_eq!(m("my-tools/x.py").names, ["x"]);
        assert_eq!(m("pkg/sub/deep.py").package().as_deref(), Some("pkg.sub"));
        // A file the index has not seen is named by the same packages.
        assert_eq!(m("pkg/new.py").names, ["pkg.new"]);
    }

    const REEXPORT: &[(&str, &str)] = &[
        ("pkg/__init__.py", ""),
        (
            "pkg/core.py",
            "def helper():\n    return 1\n\ndef unused():\n    return 2\n",
        ),
        (
            "pkg/compat.py",
            "from .core import helper  # re-export\nimport os\n",
        ),
        (
            "pkg/api.py",
            "import os\nfrom pkg.compat import helper\n\ndef run():\n    return helper()\n",
        ),
    ];

    #[test]
    fn a_re_export_removed_by_an_unused_import_fix_is_used_elsewhere() {
        let idx = index(REEXPORT);
        let before = REEXPORT[2].1;
        let after = "import os\n";
        assert_eq!(
            removed_public_names(&idx, "pkg/compat.py", before, after),
            ["pkg.compat.helper is imported by pkg/api.py:2"]
        );
        // Removing `os` from compat is fine: nobody takes it from there.
        assert!(
            removed_public_names(&idx, "pkg/compat.py", before, "from .core import helper\n")
                .is_empty()
        );
    }

    #[test]
    fn a_removal_nobody_uses_passes_and_the_removing_file_itself_does_not_count() {
        let idx = index(REEXPORT);
        assert!(
            removed_public_names(
                &idx,
                "pkg/api.py",
                REEXPORT[3].1,
                &REEXPORT[3].1.replace("import os\n", "")
            )
            .is_empty()
        );
        let core = REEXPORT[1].1;
        assert!(
            removed_public_names(&idx, "pkg/core.py", core, "def helper():\n    return 1\n")
                .is_empty()
        );
    }

    #[test]
    fn a_rename_of_a_used_function_is_caught_through_a_relative_import() {
        let idx = index(REEXPORT);
        let core = REEXPORT[1].1;
        let renamed = core.replace("def helper", "def helper2");
        assert_eq!(
            removed_public_names(&idx, "pkg/core.py", core, &renamed),
            ["pkg.core.helper is imported by pkg/compat.py:1"]
        );
    }

    #[test]
    fn an_aliased_module_import_and_its_attribute_use() {
        let idx = index(&[
            ("pkg/__init__.py", ""),
            ("pkg/compat.py", "from os import sep\nhelper = 1\n"),
            (
                "app/main.py",
                "import pkg.compat as c\nimport pkg.compat\n\n\ndef f():\n    return c.helper, pkg.compat.sep\n",
            ),
        ]);
        let before = "from os import sep\nhelper = 1\n";
        assert_eq!(
            removed_public_names(&idx, "pkg/compat.py", before, "helper = 1\n"),
            ["pkg.compat.sep is referenced by app/main.py:6"]
        );
        assert_eq!(
            removed_public_names(&idx, "pkg/compat.py", before, "from os import sep\n"),
            ["pkg.compat.helper is referenced by app/main.py:6"]
        );
    }

    #[test]
    fn an_index_parsing_only_the_files_that_could_use_a_module_answers_as_the_whole_one() {
        let others: &[(&str, &str)] = &[
            ("lib/__init__.py", "from .core import helper\n"),
            ("lib/core.py", "def helper(): pass\n__all__ = ['helper']\n"),
            ("lib/star.py", "from lib.core import *\n"),
            (
                "tools/run.py",
                "import lib\nlib.helper()\nfrom lib import helper as h\nimport lib.core as c\nc.helper\n",
            ),
            ("tools/other.py", "import os\nprint(os.sep)\n"),
            // Uses `pkg.thing` without spelling `pkg`.
            ("src/pkg/sub/deep.py", "from .. import thing\n"),
        ];
        let files = &[&RELATIVE[..], others].concat()[..];
        let whole = index(files);
        let edits: &[(&str, &str, &str)] = &[
            ("src/pkg/top.py", "x = 1\n", "y = 1\n"),
            ("src/pkg/sub/mod.py", "thing = 1\n", ""),
            ("lib/__init__.py", "from .core import helper\n", ""),
            (
                "lib/core.py",
                "def helper(): pass\n__all__ = ['helper']\n",
                "\n",
            ),
            ("tools/other.py", "import os\nprint(os.sep)\n", "print(1)\n"),
            ("src/pkg/__init__.py", "from .sub.mod import thing\n", ""),
        ];
        let texts: HashMap<&str, &str> = files.iter().copied().collect();
        for (path, before, after) in edits {
            let leaves = BTreeSet::from([module_leaf(path).unwrap().to_string()]);
            let some = PyIndex::build_reusing(
                files.iter().map(|(p, _)| (p.to_string(), None)).collect(),
                |p| {
                    texts
                        .get(p)
                        .map(|s| s.to_string())
                        .filter(|src| could_use(src, &leaves))
                },
                None,
            );
            let expected = removed_public_names(&whole, path, before, after);
            if *path == "src/pkg/__init__.py" {
                assert_eq!(
                    expected,
                    ["pkg.thing is imported by src/pkg/sub/deep.py:1"],
                    "the case only the dots-only rule finds"
                );
            }
            assert_eq!(
                removed_public_names(&some, path, before, after),
                expected,
                "{path}"
            );
        }
        // Not every file was parsed for every question.
        let leaves = BTreeSet::from(["other".to_string()]);
        assert!(!could_use(texts["lib/core.py"], &leaves));
        assert!(
            could_use(texts["src/pkg/sub/user.py"], &leaves),
            "from . import"
        );
    }

    #[test]
    fn all_of_parses_only_a_source_that_spells_all_and_agrees_with_the_parse() {
        for src in [
            "x = 1\n",
            "__all__ = ['a']\na = 1\n",
            "from m import *\n__all__ += ['b']\n",
            "if True:\n    __all__.extend(['c'])\n",
            "s = '__all__'\n",
        ] {
            assert_eq!(all_of(src), module_names(src).all, "{src:?}");
        }
        assert_eq!(all_of("x = 1\n"), None);
    }

    #[test]
    fn a_module_leaf_is_its_last_name_and_a_dots_only_import_is_found() {
        assert_eq!(module_leaf("pkg/m.py"), Some("m"));
        assert_eq!(module_leaf("pkg/m/__init__.pyi"), Some("m"));
        assert_eq!(module_leaf("top.py"), Some("top"));
        assert_eq!(module_leaf("__init__.py"), None);
        assert_eq!(module_leaf("README.md"), None);
        for src in [
            "from . import a",
            "x = 1\nfrom  .. import b",
            "from \\\n    .c import d",
        ] {
            assert!(has_dots_only_import(src), "{src:?}");
        }
        for src in ["from pkg import a", "import os", "frommage = 1"] {
            assert!(!has_dots_only_import(src), "{src:?}");
        }
    }

    /// A `src/` package whose modules import each other relatively at every level.
    const RELATIVE: [(&str, &str); 5] = [
        ("src/pkg/__init__.py", "from .sub.mod import thing\n"),
        (
            "src/pkg/sub/__init__.py",
            "from .. import top\nfrom . import mod\n",
        ),
        ("src/pkg/sub/mod.py", "thing = 1\n"),
        ("src/pkg/top.py", "x = 1\n"),
        (
            "src/pkg/sub/user.py",
            "from ..top import x\nfrom . import mod as m\nm.thing\n",
        ),
    ];

    #[test]
    fn relative_imports_at_every_level_and_from_a_package_init() {
        let idx = index(&RELATIVE);
        assert_eq!(
            removed_public_names(&idx, "src/pkg/top.py", "x = 1\n", "y = 1\n"),
            ["pkg.top.x is imported by src/pkg/sub/user.py:1"]
        );
        assert_eq!(
            removed_public_names(&idx, "src/pkg/sub/mod.py", "thing = 1\n", ""),
            [
                "pkg.sub.mod.thing is imported by src/pkg/__init__.py:1; referenced by src/pkg/sub/user.py:3"
            ]
        );
    }

    #[test]
    fn a_package_init_re_export_used_as_an_attribute_of_the_package() {
        let idx = index(&[
            ("pkg/__init__.py", "from .core import helper\n"),
            ("pkg/core.py", "def helper(): pass\n"),
            (
                "tools/run.py",
                "import pkg\npkg.helper()\nfrom pkg import helper as h\n",
            ),
        ]);
        assert_eq!(
            removed_public_names(&idx, "pkg/__init__.py", "from .core import helper\n", ""),
            ["pkg.helper is imported by tools/run.py:3; referenced by tools/run.py:2"]
        );
    }

    #[test]
    fn all_listing_and_star_imports() {
        let idx = index(&[
            ("pkg/__init__.py", "from .m import *\n"),
            ("pkg/m.py", "__all__ = ['a']\na = 1\nb = 2\n"),
            ("lone.py", "__all__ = ['z']\nz = 1\n"),
        ]);
        let before = "__all__ = ['a']\na = 1\nb = 2\n";
        assert_eq!(
            removed_public_names(&idx, "pkg/m.py", before, "__all__ = ['a']\nb = 2\n"),
            [
                "pkg.m.a is imported by pkg/__init__.py:1 (from pkg.m import *)",
                "pkg.m.a is listed in pkg.m.__all__"
            ]
        );
        // `b` is not in `__all__`, so the star import does not bring it in.
        assert!(
            removed_public_names(&idx, "pkg/m.py", before, "__all__ = ['a']\na = 1\n").is_empty()
        );
        // Listed in `__all__` counts even with no user in the repository.
        assert_eq!(
            removed_public_names(&idx, "lone.py", "__all__ = ['z']\nz = 1\n", "z = 1\n"),
            ["lone.z is listed in lone.__all__"]
        );
    }

    #[test]
    fn many_users_are_cut_to_five_places() {
        let mut files = vec![
            ("pkg/__init__.py".to_string(), String::new()),
            ("pkg/m.py".to_string(), "f = 1\n".to_string()),
        ];
        for i in 0..8 {
            files.push((format!("pkg/u{i}.py"), "from pkg.m import f\n".to_string()));
        }
        let idx = PyIndex::from_sources(files);
        let r = removed_public_names(&idx, "pkg/m.py", "f = 1\n", "");
        assert_eq!(r.len(), 1);
        assert!(r[0].ends_with("pkg/u4.py:1 and 3 more"), "{}", r[0]);
    }

    #[test]
    fn import_targets_are_the_touched_modules_their_package_and_their_importers() {
        let idx = index(&[
            ("pkg/__init__.py", ""),
            ("pkg/core.py", ""),
            ("pkg/compat.py", "from .core import helper\n"),
            ("pkg/api.py", "from pkg.compat import helper\n"),
            ("pkg/__main__.py", "from pkg import compat\n"),
            ("scripts/go.py", "import pkg.compat\n"),
            ("tests/test_api.py", "from pkg.compat import helper\n"),
        ]);
        assert_eq!(
            idx.import_targets(&["pkg/compat.py".into()]),
            ["pkg", "pkg.api", "pkg.compat"]
        );
        assert!(idx.import_targets(&["scripts/go.py".into()]).is_empty());
    }

    #[test]
    fn a_rebuild_parses_only_what_changed_and_keeps_the_answers() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let texts: HashMap<&str, &str> = REEXPORT.iter().copied().collect();
        let reads = AtomicUsize::new(0);
        let read = |p: &str| {
            reads.fetch_add(1, Ordering::SeqCst);
            texts.get(p).map(|s| s.to_string())
        };
        let keyed = |changed: &str| -> Vec<(String, Option<String>)> {
            REEXPORT
                .iter()
                .map(|(p, _)| {
                    let key = if *p == changed { "new" } else { "old" };
                    (p.to_string(), Some(format!("{p}@{key}")))
                })
                .collect()
        };
        let first = PyIndex::build_reusing(keyed(""), read, None);
        assert_eq!(reads.swap(0, Ordering::SeqCst), 4);
        let second = PyIndex::build_reusing(keyed("pkg/api.py"), read, Some(&first));
        assert_eq!(reads.load(Ordering::SeqCst), 1);
        let (before, after) = (REEXPORT[2].1, "import os\n");
        assert_eq!(
            removed_public_names(&second, "pkg/compat.py", before, after),
            removed_public_names(&first, "pkg/compat.py", before, after)
        );
        assert_eq!(second.len(), 4);
    }

    #[test]
    fn a_syntax_error_is_reported_and_what_parses_is_kept() {
        let f = file_facts("def ok(): pass\ndef broken(:\n", None);
        assert!(f.has_error);
        assert!(f.defined.contains_key("ok"));
    }
}
