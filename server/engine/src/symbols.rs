//! Finding the Python symbols an `llm` proposer rewrites, with the same parser as the module
//! index ([`super::pyindex`]): a symbol is a `def`/`async def` with its decorators, and its
//! lines are the parser's, so a `def` inside a string or a signature with brackets in its
//! defaults cannot throw them off. The original engine chose symbols from imports and call
//! sites; so do we: symbols that other files reference most come first.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Symbol {
    pub name: String,
    /// 0-based line range `[start, end)` including decorators.
    pub start: usize,
    pub end: usize,
    pub indent: usize,
}

/// Every function and method in `text`, in file order, with its decorators.
pub fn functions(text: &str) -> Vec<Symbol> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for f in super::pyindex::function_spans(text) {
        let mut end = f.end.min(lines.len()).max(f.def_line + 1);
        while end > f.def_line + 1 && lines[end - 1].trim().is_empty() {
            end -= 1;
        }
        out.push(Symbol {
            name: f.name,
            start: f.start,
            end,
            indent: f.indent,
        });
    }
    out
}

/// Whether a function's signature lacks annotations (a parameter without `:` or no `->`).
pub fn needs_annotations(text: &str, s: &Symbol) -> bool {
    let lines: Vec<&str> = text.lines().collect();
    let sig: String = lines[s.start..s.end]
        .iter()
        .skip_while(|l| l.trim_start().starts_with('@'))
        .take_while(|l| !l.trim_end().ends_with(':') || l.contains('('))
        .map(|l| l.trim())
        .collect::<Vec<_>>()
        .join(" ");
    let Some(open) = sig.find('(') else {
        return false;
    };
    let close = sig.rfind(')').unwrap_or(sig.len());
    let params = &sig[open + 1..close.max(open + 1)];
    let unannotated = params
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty() && *p != "self" && *p != "cls" && *p != "*" && *p != "/")
        .any(|p| !p.contains(':'));
    unannotated || !sig[close..].contains("->")
}

/// Picks up to `max` symbols that need annotations, most referenced (in `corpus`) first, then
/// by position; returned in file order.
pub fn choose(text: &str, corpus: &str, max: usize) -> Vec<Symbol> {
    let mut cands: Vec<(usize, Symbol)> = functions(text)
        .into_iter()
        .filter(|s| s.indent == 0 && needs_annotations(text, s))
        .map(|s| (corpus.matches(s.name.as_str()).count(), s))
        .collect();
    cands.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.start.cmp(&b.1.start)));
    let mut chosen: Vec<Symbol> = cands.into_iter().take(max).map(|(_, s)| s).collect();
    chosen.sort_by_key(|s| s.start);
    chosen
}

/// The source of a symbol.
pub fn source_of(text: &str, s: &Symbol) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[s.start..s.end].join("\n")
}

/// Replaces each symbol with its rewrite (`symbols` sorted by position, non-overlapping),
/// keeping every other byte of the file.
pub fn replace(text: &str, rewrites: &[(Symbol, String)]) -> String {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut out = String::with_capacity(text.len() + 256);
    let mut i = 0;
    for (s, new) in rewrites {
        for l in &lines[i..s.start] {
            out.push_str(l);
        }
        out.push_str(new.trim_end_matches('\n'));
        out.push('\n');
        i = s.end;
    }
    for l in &lines[i..] {
        out.push_str(l);
    }
    out
}

/// The code of the first fenced block of a model's reply (or the whole reply without fences).
pub fn extract_code(reply: &str) -> String {
    if let Some(start) = reply.find("```") {
        let after = &reply[start + 3..];
        let body_start = after.find('\n').map(|n| n + 1).unwrap_or(0);
        let body = &after[body_start..];
        let end = body.find("```").unwrap_or(body.len());
        return body[..end].trim_end().to_string();
    }
    reply.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    const SRC: &str = "import os\n\n@cache\ndef area(w, h):\n    return w * h\n\n\ndef typed(x: int) -> int:\n    return x\n\nclass A:\n    def m(self, y):\n        return y\n";

    #[test]
    fn finds_functions_with_decorators() {
        let f = functions(SRC);
        let names: Vec<_> = f
            .iter()
            .map(|s| (s.name.as_str(), s.start, s.end))
            .collect();
        assert_eq!(names, vec![("area", 2, 5), ("typed", 7, 9), ("m", 11, 13)]);
    }

    #[test]
    fn a_def_in_a_string_and_brackets_in_a_signature_do_not_confuse_it() {
        let src = "DOC = \"\"\"\ndef not_a_function(x):\n\"\"\"\n\n\nasync def f(a=\")\", b=(1,\n      2)):\n    # a comment\n    return a\n\n\ndef g(): pass\n";
        let f = functions(src);
        let names: Vec<_> = f
            .iter()
            .map(|s| (s.name.as_str(), s.start, s.end, s.indent))
            .collect();
        assert_eq!(
            names,
            vec![("f", 5, 9), ("g", 11, 12)]
                .into_iter()
                .map(|(n, a, b)| (n, a, b, 0))
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn chooses_unannotated_top_level() {
        let c = choose(SRC, "area(1,2) area(3,4)", 3);
        assert_eq!(
            c.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            vec!["area"]
        );
    }

    #[test]
    fn replace_keeps_rest() {
        let s = &functions(SRC)[0];
        let out = replace(
            SRC,
            &[(
                s.clone(),
                "@cache\ndef area(w: int, h: int) -> int:\n    return w * h".into(),
            )],
        );
        assert!(out.starts_with(
            "import os\n\n@cache\ndef area(w: int, h: int) -> int:\n    return w * h\n\n\ndef typed"
        ));
        assert_eq!(
            extract_code("Sure:\n```python\ndef f(): pass\n```\n"),
            "def f(): pass"
        );
    }
}
