//! Prompt-mode tool calling: the call format we teach in the system prompt, and a tolerant
//! parser for the calls a model prints as text.
//!
//! Why: small local models (and servers started without `--jinja`) often cannot use native
//! OpenAI `tools`, and even when they can they frequently print the call JSON into the answer
//! instead of calling. The parser accepts every shape we have seen local models produce:
//! - a bare JSON object `{"name": ..., "arguments": {...}}` (also `tool`/`function` for the
//!   name and `args`/`parameters`/`input` for the arguments), or an array of them;
//! - a fenced block (```` ```json ... ``` ````);
//! - tag-wrapped JSON: `<tool_call>...</tool_call>` (Qwen/Hermes), `<tool>`, `<function_call>`.
//!
//! and repairs the usual breakage: trailing commas, single quotes, unquoted keys, missing
//! closing braces/brackets/quotes, Python's `True`/`False`/`None`, raw newlines in strings,
//! arguments given as a JSON string. Everything here is pure (text in, values out).

use noctune_llm::{ChatMessage, Role, ToolSpec};
use serde_json::{Map, Value};
use std::ops::Range;

/// How a call was written, for diagnostics and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallFormat {
    /// A JSON object (or array of them) in the running text.
    Bare,
    /// Inside a fenced code block.
    Fenced,
    /// Inside `<tool_call>`-style tags.
    Tagged,
}

/// One call found in the text.
#[derive(Debug, Clone, PartialEq)]
pub struct TextCall {
    pub name: String,
    /// The arguments object (a non-object value when the model wrote one; the caller
    /// reports it as invalid arguments).
    pub arguments: Value,
    pub format: CallFormat,
}

/// A reply split into what the user should read and the calls to run.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ParsedReply {
    /// The text outside the calls, whitespace-tidied.
    pub visible: String,
    pub calls: Vec<TextCall>,
}

/// Tags whose content is a call. Longest first so `<tool_call>` is not taken for `<tool>`.
const TAGS: [&str; 5] = ["tool_calls", "tool_call", "function_call", "tools", "tool"];

/// Fence languages whose blocks may hold a call; other fences are code and never scanned.
const CALL_FENCES: [&str; 8] = [
    "",
    "json",
    "json5",
    "jsonc",
    "tool_call",
    "tool",
    "function_call",
    "tool_code",
];

/// Nesting limit of the lenient JSON reader (model output is outside input).
const MAX_DEPTH: usize = 64;

/// Finds the calls in `text`. A call inside tags may name any tool (the model clearly meant a
/// call, and an unknown name gets an error result it can learn from); a bare or fenced call must
/// name one of `known` so that a JSON example in an answer is not mistaken for a call. An empty
/// `known` accepts every name.
pub fn parse_reply(text: &str, known: &[&str]) -> ParsedReply {
    let mut regions: Vec<(Range<usize>, Vec<TextCall>)> = Vec::new();
    // Regions never scanned for bare calls: tagged calls and code fences.
    let mut opaque: Vec<Range<usize>> = Vec::new();

    for (range, content) in tagged_regions(text) {
        let calls = calls_in(content, CallFormat::Tagged, &[]);
        opaque.push(range.clone());
        if !calls.is_empty() {
            regions.push((range, calls));
        }
    }
    for (range, lang, content) in fenced_regions(text, &opaque) {
        opaque.push(range.clone());
        if CALL_FENCES.contains(&lang.as_str()) {
            let calls = calls_in(content, CallFormat::Fenced, known);
            if !calls.is_empty() {
                regions.push((range, calls));
            }
        }
    }
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if let Some(r) = opaque.iter().find(|r| r.contains(&i)) {
            i = r.end;
            continue;
        }
        let b = bytes[i];
        if (b == b'{' || b == b'[')
            && starts_like_call(&text[i + 1..])
            && let Some((value, end)) = read_value(text, i)
        {
            let calls = value_to_calls(&value, CallFormat::Bare, known);
            if !calls.is_empty() {
                regions.push((i..end, calls));
            }
            // A JSON value that is no call is skipped whole: calls are never nested in other
            // data, and rescanning its inner braces would make this quadratic.
            i = end.max(i + 1);
            continue;
        }
        i += 1;
    }
    regions.sort_by_key(|(r, _)| r.start);

    let mut visible = String::with_capacity(text.len());
    let mut calls = Vec::new();
    let mut at = 0;
    for (range, found) in regions {
        if range.start < at {
            continue; // overlapping (cannot happen by construction; be safe)
        }
        visible.push_str(&text[at..range.start]);
        calls.extend(found);
        at = range.end;
    }
    visible.push_str(&text[at..]);
    ParsedReply {
        visible: tidy(&visible),
        calls,
    }
}

/// True when the text holds at least one call `parse_reply` would run.
pub fn has_calls(text: &str, known: &[&str]) -> bool {
    !parse_reply(text, known).calls.is_empty()
}

/// A cheap check before the lenient reader runs: after `{` comes a key, after `[` an object.
fn starts_like_call(rest: &str) -> bool {
    let t = rest.trim_start();
    match t.as_bytes().first() {
        Some(b'"' | b'\'') => true,
        Some(c) if c.is_ascii_alphabetic() || *c == b'_' => true,
        Some(b'{') => true,
        _ => false,
    }
}

/// Collapses runs of blank lines left where calls were removed, and trims.
fn tidy(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank = 0;
    for line in text.trim().lines() {
        if line.trim().is_empty() {
            blank += 1;
            if blank > 1 {
                continue;
            }
        } else {
            blank = 0;
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out.trim().to_string()
}

/// `(whole region, content)` of every `<tag>...</tag>`; an unclosed tag runs to the end.
fn tagged_regions(text: &str) -> Vec<(Range<usize>, &str)> {
    let lower = text.to_ascii_lowercase();
    let mut out: Vec<(Range<usize>, &str)> = Vec::new();
    let mut i = 0;
    while let Some(off) = lower[i..].find('<') {
        let start = i + off;
        let after = &lower[start + 1..];
        let tag = TAGS.iter().find(|t| {
            after.starts_with(**t)
                && after
                    .as_bytes()
                    .get(t.len())
                    .is_some_and(|c| *c == b'>' || c.is_ascii_whitespace())
        });
        let Some(tag) = tag else {
            i = start + 1;
            continue;
        };
        let Some(gt) = lower[start..].find('>') else {
            break;
        };
        let content_start = start + gt + 1;
        let close = format!("</{tag}>");
        let (content_end, end) = match lower[content_start..].find(&close) {
            Some(c) => (content_start + c, content_start + c + close.len()),
            None => (text.len(), text.len()),
        };
        out.push((start..end, &text[content_start..content_end]));
        i = end;
    }
    out
}

/// `(whole region, language, content)` of every fenced block outside `skip`; an unclosed
/// fence runs to the end.
fn fenced_regions<'t>(
    text: &'t str,
    skip: &[Range<usize>],
) -> Vec<(Range<usize>, String, &'t str)> {
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(off) = text[i..].find("```") {
        let start = i + off;
        if let Some(r) = skip.iter().find(|r| r.contains(&start)) {
            i = r.end.max(start + 3);
            continue;
        }
        let after = start + 3;
        let line_end = text[after..].find('\n').map_or(text.len(), |n| after + n);
        let lang = text[after..line_end].trim().to_ascii_lowercase();
        let content_start = (line_end + 1).min(text.len());
        let (content_end, end) = match text[content_start..].find("```") {
            Some(c) => (content_start + c, content_start + c + 3),
            None => (text.len(), text.len()),
        };
        out.push((start..end, lang, &text[content_start..content_end]));
        i = end;
    }
    out
}

/// Every call in a region's content: one or more JSON values, possibly with text between.
fn calls_in(content: &str, format: CallFormat, known: &[&str]) -> Vec<TextCall> {
    let mut calls = Vec::new();
    let bytes = content.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if (bytes[i] == b'{' || bytes[i] == b'[')
            && let Some((value, end)) = read_value(content, i)
        {
            let found = value_to_calls(&value, format, known);
            if !found.is_empty() {
                calls.extend(found);
                i = end;
                continue;
            }
        }
        i += 1;
    }
    calls
}

const NAME_KEYS: [&str; 4] = ["name", "tool", "tool_name", "function"];
const ARG_KEYS: [&str; 6] = [
    "arguments",
    "args",
    "parameters",
    "input",
    "params",
    "tool_input",
];
/// Keys of a call object that are neither its name nor its arguments.
const META_KEYS: [&str; 3] = ["id", "type", "call_id"];

/// The calls a JSON value describes: a call object, an array of them, or `{"tool_calls": [..]}`.
/// Empty when the value is not (entirely) calls.
fn value_to_calls(value: &Value, format: CallFormat, known: &[&str]) -> Vec<TextCall> {
    match value {
        Value::Array(items) => {
            let mut calls = Vec::new();
            for item in items {
                let found = value_to_calls(item, format, known);
                if found.is_empty() {
                    return Vec::new();
                }
                calls.extend(found);
            }
            calls
        }
        Value::Object(map) => {
            for key in ["tool_calls", "calls"] {
                if let Some(inner @ Value::Array(_)) = map.get(key) {
                    return value_to_calls(inner, format, known);
                }
            }
            object_to_call(map, format, known).into_iter().collect()
        }
        _ => Vec::new(),
    }
}

fn object_to_call(
    map: &Map<String, Value>,
    format: CallFormat,
    known: &[&str],
) -> Option<TextCall> {
    let mut name = None;
    let mut args = None;
    for key in NAME_KEYS {
        match map.get(key) {
            Some(Value::String(s)) => {
                name = Some(s.trim().to_string());
                break;
            }
            // OpenAI's own shape: {"type": "function", "function": {"name", "arguments"}}
            Some(Value::Object(f)) if key == "function" => {
                if let Some(Value::String(s)) = f.get("name") {
                    name = Some(s.trim().to_string());
                    args = ARG_KEYS.iter().find_map(|k| f.get(*k)).cloned();
                    break;
                }
            }
            _ => {}
        }
    }
    let name = name.filter(|n| is_tool_name(n))?;
    if !known.is_empty() && !known.contains(&name.as_str()) {
        return None;
    }
    let args = args
        .or_else(|| ARG_KEYS.iter().find_map(|k| map.get(*k)).cloned())
        .unwrap_or_else(|| {
            // {"name": "readFile", "path": "a.py"}: the other keys are the arguments.
            let rest: Map<String, Value> = map
                .iter()
                .filter(|(k, _)| {
                    !NAME_KEYS.contains(&k.as_str()) && !META_KEYS.contains(&k.as_str())
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            Value::Object(rest)
        });
    Some(TextCall {
        name,
        arguments: decode_arguments(args),
        format,
    })
}

fn is_tool_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':' | '/'))
}

/// Arguments given as a JSON string (`"arguments": "{\"path\": ...}"`) are decoded; `null` or
/// an empty string mean no arguments.
pub fn decode_arguments(args: Value) -> Value {
    match args {
        Value::Null => Value::Object(Map::new()),
        Value::String(s) if s.trim().is_empty() => Value::Object(Map::new()),
        Value::String(s) => match repair_json(&s) {
            Some(v @ Value::Object(_)) => v,
            _ => Value::String(s),
        },
        other => other,
    }
}

/// Parses the arguments string of a native call, repairing it like a printed one. `None` when
/// nothing object-like can be read.
pub fn parse_arguments(raw: &str) -> Option<Value> {
    match decode_arguments(Value::String(raw.to_string())) {
        v @ Value::Object(_) => Some(v),
        _ => None,
    }
}

/// Reads `text` as (broken) JSON: the first value, repaired. `None` when it is not JSON-like
/// at all.
pub fn repair_json(text: &str) -> Option<Value> {
    let start = text.len() - text.trim_start().len();
    let (value, end) = read_value(text, start)?;
    // Tolerate a trailing semicolon or comma; anything else means it was not one value.
    let rest = text[end..].trim_matches(|c: char| c.is_whitespace() || c == ';' || c == ',');
    rest.is_empty().then_some(value)
}

/// Reads one lenient JSON value starting at byte `start`; returns it and the end offset.
fn read_value(text: &str, start: usize) -> Option<(Value, usize)> {
    let mut r = Reader {
        s: text.as_bytes(),
        text,
        i: start,
        depth: 0,
    };
    let value = r.value()?;
    Some((value, r.i))
}

/// A forgiving recursive-descent JSON reader. Unlike serde_json it accepts the mistakes models
/// make; it never panics and gives up (`None`) only on input that is not JSON-like.
struct Reader<'a> {
    s: &'a [u8],
    text: &'a str,
    i: usize,
    depth: usize,
}

impl Reader<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(c) = self.peek() {
            if c.is_ascii_whitespace() {
                self.i += 1;
            } else if c == b'/' && self.s.get(self.i + 1) == Some(&b'/') {
                while self.peek().is_some_and(|c| c != b'\n') {
                    self.i += 1;
                }
            } else if c == b'/' && self.s.get(self.i + 1) == Some(&b'*') {
                match self.text[self.i + 2..].find("*/") {
                    Some(n) => self.i += n + 4,
                    None => self.i = self.s.len(),
                }
            } else {
                break;
            }
        }
    }

    fn value(&mut self) -> Option<Value> {
        self.skip_ws();
        match self.peek()? {
            b'{' => self.nested(Self::object),
            b'[' => self.nested(Self::array),
            q @ (b'"' | b'\'') => self.string(q).map(Value::String),
            b'-' | b'+' | b'0'..=b'9' | b'.' => self.number(),
            c if c.is_ascii_alphabetic() => {
                let word = self.ident();
                match word {
                    "true" | "True" | "TRUE" => Some(Value::Bool(true)),
                    "false" | "False" | "FALSE" => Some(Value::Bool(false)),
                    "null" | "None" | "NULL" | "undefined" | "nil" => Some(Value::Null),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    fn nested(&mut self, f: fn(&mut Self) -> Option<Value>) -> Option<Value> {
        if self.depth >= MAX_DEPTH {
            return None;
        }
        self.depth += 1;
        let v = f(self);
        self.depth -= 1;
        v
    }

    fn ident(&mut self) -> &str {
        let start = self.i;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c == b'-')
        {
            self.i += 1;
        }
        &self.text[start..self.i]
    }

    fn object(&mut self) -> Option<Value> {
        self.i += 1; // '{'
        let mut map = Map::new();
        loop {
            self.skip_ws();
            let key = match self.peek() {
                None => return Some(Value::Object(map)), // missing '}'
                Some(b'}') => {
                    self.i += 1;
                    return Some(Value::Object(map));
                }
                // A closer of an outer container: this object was never closed.
                Some(b']') => return Some(Value::Object(map)),
                Some(b',') => {
                    self.i += 1; // trailing, leading or doubled comma
                    continue;
                }
                Some(q @ (b'"' | b'\'')) => self.string(q)?,
                Some(c) if c.is_ascii_alphabetic() || c == b'_' || c == b'$' => {
                    self.ident().to_string()
                }
                Some(_) => return None,
            };
            self.skip_ws();
            match self.peek() {
                Some(b':') | Some(b'=') => self.i += 1,
                None => {
                    map.insert(key, Value::Null);
                    return Some(Value::Object(map));
                }
                Some(_) => return None,
            }
            self.skip_ws();
            if matches!(self.peek(), None | Some(b'}')) {
                map.insert(key, Value::Null); // `"k":` cut off
                continue;
            }
            let value = self.value()?;
            map.insert(key, value);
        }
    }

    fn array(&mut self) -> Option<Value> {
        self.i += 1; // '['
        let mut items = Vec::new();
        loop {
            self.skip_ws();
            match self.peek() {
                None => return Some(Value::Array(items)),
                Some(b']') => {
                    self.i += 1;
                    return Some(Value::Array(items));
                }
                Some(b'}') => return Some(Value::Array(items)),
                Some(b',') => {
                    self.i += 1;
                    continue;
                }
                Some(_) => items.push(self.value()?),
            }
        }
    }

    /// A string quoted with `q`. Raw newlines are kept; an unknown escape keeps its backslash;
    /// a missing closing quote ends the string at the end of the input.
    fn string(&mut self, q: u8) -> Option<String> {
        self.i += 1;
        let mut out: Vec<u8> = Vec::new();
        while let Some(c) = self.peek() {
            self.i += 1;
            if c == q {
                return String::from_utf8(out).ok();
            }
            if c != b'\\' {
                out.push(c);
                continue;
            }
            let Some(e) = self.peek() else { break };
            self.i += 1;
            match e {
                b'n' => out.push(b'\n'),
                b't' => out.push(b'\t'),
                b'r' => out.push(b'\r'),
                b'b' => out.push(0x08),
                b'f' => out.push(0x0c),
                b'0' => out.push(0),
                b'"' | b'\'' | b'\\' | b'/' | b'`' => out.push(e),
                b'u' => {
                    let ch = self.unicode_escape();
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                }
                b'\n' => {} // a line continuation
                other => {
                    out.push(b'\\');
                    out.push(other);
                }
            }
        }
        String::from_utf8(out).ok()
    }

    fn hex4(&mut self) -> Option<u32> {
        let h = self.text.get(self.i..self.i + 4)?;
        let v = u32::from_str_radix(h, 16).ok()?;
        self.i += 4;
        Some(v)
    }

    fn unicode_escape(&mut self) -> char {
        let Some(hi) = self.hex4() else {
            return char::REPLACEMENT_CHARACTER;
        };
        if (0xD800..0xDC00).contains(&hi) && self.text[self.i..].starts_with("\\u") {
            let save = self.i;
            self.i += 2;
            if let Some(lo) = self.hex4().filter(|lo| (0xDC00..0xE000).contains(lo)) {
                let c = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                return char::from_u32(c).unwrap_or(char::REPLACEMENT_CHARACTER);
            }
            self.i = save;
        }
        char::from_u32(hi).unwrap_or(char::REPLACEMENT_CHARACTER)
    }

    fn number(&mut self) -> Option<Value> {
        let start = self.i;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_digit() || matches!(c, b'-' | b'+' | b'.' | b'e' | b'E'))
        {
            self.i += 1;
        }
        let raw = self.text[start..self.i].trim_start_matches('+');
        let fixed = if raw.starts_with('.') {
            format!("0{raw}")
        } else if raw.starts_with("-.") {
            format!("-0{}", &raw[1..])
        } else {
            raw.trim_end_matches('.').to_string()
        };
        serde_json::from_str::<serde_json::Number>(&fixed)
            .ok()
            .map(Value::Number)
    }
}

/// The tag the results of prompt-mode calls come back in (`render_for_prompt_mode`). A model
/// that goes on writing after its call invents one; requests stop there
/// ([`RESULT_STOP`]) and any that slips through is removed ([`strip_invented_results`]).
pub const RESULT_TAG: &str = "tool_result";
/// The stop sequence of prompt-mode requests: the opening of a result block.
pub const RESULT_STOP: &str = "<tool_result";

/// Removes every `<tool_result ...>...</tool_result>` block (an unclosed one runs to the end)
/// from a model's answer: only Noctune writes results; one the model wrote is made up.
pub fn strip_invented_results(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let open = format!("<{RESULT_TAG}");
    let close = format!("</{RESULT_TAG}>");
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    let mut removed = false;
    while let Some(off) = lower[at..].find(&open) {
        let start = at + off;
        let boundary = lower
            .as_bytes()
            .get(start + open.len())
            .is_none_or(|c| *c == b'>' || c.is_ascii_whitespace() || *c == b'/');
        if !boundary {
            out.push_str(&text[at..start + open.len()]);
            at = start + open.len();
            continue;
        }
        out.push_str(&text[at..start]);
        removed = true;
        at = match lower[start..].find(&close) {
            Some(c) => start + c + close.len(),
            None => text.len(),
        };
    }
    out.push_str(&text[at..]);
    if removed { tidy(&out) } else { out }
}

/// Whether the arguments text of a call was cut off rather than finished: it ends inside a
/// string, or after a `:` or `,` (a value was still coming). Closing braces/brackets missing at
/// the very end are the only repair accepted, and only when the answer `ended_normally`
/// (`finish_reason` `stop` or `tool_calls`): then the model clearly meant them.
pub fn arguments_cut_off(raw: &str, ended_normally: bool) -> bool {
    let mut in_string: Option<u8> = None;
    let mut escaped = false;
    let mut depth: usize = 0;
    for b in raw.bytes() {
        if let Some(q) = in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == q {
                in_string = None;
            }
            continue;
        }
        match b {
            b'"' | b'\'' => in_string = Some(b),
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    if in_string.is_some() {
        return true;
    }
    if depth == 0 {
        return false;
    }
    let last = raw.trim_end().bytes().last();
    !ended_normally || matches!(last, None | Some(b':' | b',' | b'{' | b'[' | b'='))
}

/// Whether a prompt-mode answer holds a call that was cut off: a `<tool_call>` (or call fence)
/// whose JSON was left unfinished ([`arguments_cut_off`]).
pub fn calls_cut_off(text: &str, ended_normally: bool) -> bool {
    first_cut_call(text, ended_normally).is_some()
}

/// Where the first cut-off call of a prompt-mode answer begins (its `<tool_call>` tag or call
/// fence), if it has one: the text before it is the answer, the rest is an unfinished call
/// that must neither run nor be shown as if it were the answer.
pub fn first_cut_call(text: &str, ended_normally: bool) -> Option<usize> {
    let tagged = tagged_regions(text);
    let opaque: Vec<Range<usize>> = tagged.iter().map(|(r, _)| r.clone()).collect();
    let fenced = fenced_regions(text, &opaque);
    tagged
        .iter()
        .map(|(r, c)| (r.start, *c))
        .chain(
            fenced
                .iter()
                .filter(|(_, lang, _)| CALL_FENCES.contains(&lang.as_str()))
                .map(|(r, _, c)| (r.start, *c)),
        )
        .filter(|(_, c)| {
            c.find(['{', '['])
                .is_some_and(|i| arguments_cut_off(&c[i..], ended_normally))
        })
        .map(|(start, _)| start)
        .min()
}

/// The tool a cut-off call names, when its text got that far (`"name": "listFiles"`).
pub fn cut_call_name(call_text: &str) -> Option<String> {
    let at = call_text.find("\"name\"")? + "\"name\"".len();
    let rest = call_text[at..].trim_start().strip_prefix(':')?.trim_start();
    let rest = rest.strip_prefix('"')?;
    let end = rest.find('"')?;
    let name = &rest[..end];
    (!name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .then(|| name.to_string())
}

/// Whether an answer has started repeating itself: its last characters are one unit of 20 to
/// 80 characters (with some variety: not a rule of dashes) repeated at least 4 times, over at
/// least 160 characters. Small models loop like this until `max_tokens`; stopping at once
/// saves minutes of CPU and a wall of text.
pub fn repeats_itself(text: &str) -> bool {
    const MIN_UNIT: usize = 20;
    const MAX_UNIT: usize = 80;
    const REPEATS: usize = 4;
    const MIN_SPAN: usize = 160;
    let tail: Vec<char> = text.chars().rev().take(MAX_UNIT * REPEATS).collect();
    // `tail` is reversed: tail[0] is the last character.
    for unit in MIN_UNIT..=MAX_UNIT {
        let span = (unit * REPEATS).max(MIN_SPAN);
        if tail.len() < span {
            break;
        }
        if (0..span - unit).all(|i| tail[i] == tail[i + unit]) {
            let mut distinct: Vec<char> = tail[..unit]
                .iter()
                .copied()
                .filter(|c| !c.is_whitespace())
                .collect();
            distinct.sort_unstable();
            distinct.dedup();
            if distinct.len() >= 5 {
                return true;
            }
        }
    }
    same_line_repeated(text)
}

/// The short loop the unit rule above lets through: one non-blank line, too short or too
/// plain for it (SmolLM2's `# \n# \n…`), repeated line after line. An answer that ends in
/// [`SAME_LINES`] identical lines says nothing new.
fn same_line_repeated(text: &str) -> bool {
    // Whole lines only: the last one may still be growing.
    let Some(end) = text.rfind('\n') else {
        return false;
    };
    let mut lines = text[..end].rsplit('\n');
    let Some(last) = lines.next().filter(|l| !l.trim().is_empty()) else {
        return false;
    };
    lines.take(SAME_LINES - 1).filter(|l| *l == last).count() == SAME_LINES - 1
}

/// How many identical lines in a row end an answer that loops.
const SAME_LINES: usize = 12;

/// The part of the system prompt that teaches prompt-mode calls.
///
/// Compact on purpose: prompt mode is for small local models, often with a 2k context, so each
/// tool is one line (`name(arg, optional?:type): its first sentence`) instead of its JSON schema.
pub fn protocol_prompt(tools: &[ToolSpec]) -> String {
    let mut out = String::from(
        "## Tools\nTo call a tool, write only this, then stop:\n<tool_call>\n{\"name\": \
         \"readFile\", \"arguments\": {\"path\": \"src/a.py\"}}\n</tool_call>\nThe result \
         comes in the next message. Never write a <tool_result> yourself.\nTools:\n",
    );
    // The descriptions share a budget, so a long tool list (Studio's 11 tools) still fits the
    // ~400 tokens a 2k-context model can spare for it: each gets at most 70 characters, fewer
    // when there are many tools, never under 40 (a name and signature alone say too little).
    let per_tool = (DESCRIPTIONS_BUDGET / tools.len().max(1)).clamp(40, 70);
    for t in tools {
        let f = &t.function;
        out.push_str(&format!(
            "- {}({}): {}\n",
            f.name,
            compact_signature(&f.parameters),
            first_sentence(&f.description, per_tool)
        ));
    }
    out
}

/// Characters of tool descriptions in the protocol prompt, shared by all tools.
const DESCRIPTIONS_BUDGET: usize = 540;

/// `path, start_line?:int` from a JSON schema: required arguments first, types other than
/// string named.
fn compact_signature(schema: &Value) -> String {
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return String::new();
    };
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut args: Vec<(bool, String)> = props
        .iter()
        .map(|(name, p)| {
            let optional = !required.contains(&name.as_str());
            let ty = match p.get("type").and_then(Value::as_str) {
                Some("integer") => ":int",
                Some("number") => ":num",
                Some("boolean") => ":bool",
                Some("array") => ":list",
                Some("object") => ":obj",
                _ => "",
            };
            (
                optional,
                format!("{name}{}{ty}", if optional { "?" } else { "" }),
            )
        })
        .collect();
    args.sort_by_key(|(optional, _)| *optional);
    args.into_iter()
        .map(|(_, a)| a)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The first sentence of a description, cut to `max` characters.
fn first_sentence(text: &str, max: usize) -> String {
    let end = text
        .find(". ")
        .or_else(|| text.find(" ("))
        .map_or(text.len(), |i| i);
    let s = text[..end].trim_end_matches('.');
    let cut = noctune_core::text::prefix_chars(s, max);
    if cut.len() < s.len() {
        // At a word's end, so the model does not read a made-up word.
        let at_word = match cut.rfind(' ') {
            Some(i) if i >= cut.len() / 2 => &cut[..i],
            _ => cut,
        };
        format!("{}…", at_word.trim_end().trim_end_matches([',', ';', ':']))
    } else {
        cut.to_string()
    }
}

/// Rewrites a stored conversation (native shape: assistant `tool_calls`, `tool` messages) into
/// the prompt-mode shape: calls printed in the assistant's text, results as user messages.
/// Servers without tool support may reject or garble `tool` roles, so prompt mode never sends
/// them.
pub fn render_for_prompt_mode(messages: &[ChatMessage]) -> Vec<ChatMessage> {
    let mut out: Vec<ChatMessage> = Vec::with_capacity(messages.len());
    let mut names: std::collections::HashMap<String, String> = Default::default();
    for m in messages {
        match m.role {
            Role::Assistant if m.tool_calls.is_some() => {
                let mut text = m.content.clone().unwrap_or_default();
                for call in m.tool_calls.iter().flatten() {
                    names.insert(call.id.clone(), call.function.name.clone());
                    let args = parse_arguments(&call.function.arguments)
                        .unwrap_or_else(|| Value::Object(Map::new()));
                    let body = serde_json::json!({"name": call.function.name, "arguments": args});
                    if !text.is_empty() {
                        text.push('\n');
                    }
                    text.push_str(&format!("<tool_call>\n{body}\n</tool_call>"));
                }
                out.push(ChatMessage::assistant(text));
            }
            Role::Tool => {
                let id = m.tool_call_id.clone().unwrap_or_default();
                let name = m
                    .name
                    .clone()
                    .or_else(|| names.get(&id).cloned())
                    .unwrap_or_default();
                let block = format!(
                    "<tool_result name=\"{name}\" id=\"{id}\">\n{}\n</tool_result>",
                    m.content.as_deref().unwrap_or_default()
                );
                match out.last_mut() {
                    Some(last)
                        if last.role == Role::User
                            && last
                                .content
                                .as_deref()
                                .is_some_and(|c| c.starts_with("<tool_result")) =>
                    {
                        let c = last.content.get_or_insert_with(String::new);
                        c.push('\n');
                        c.push_str(&block);
                    }
                    _ => out.push(ChatMessage::user(block)),
                }
            }
            _ => out.push(m.clone()),
        }
    }
    out
}

/// Streams prompt-mode text to the user while holding back only what may become a call.
///
/// Text is passed on as it arrives up to a possible call marker (`{`, `<`, a backtick). A
/// marker is held only while it may still become a call, and released as soon as it cannot:
/// `{` whose first key is no call key (`{"a": 1}`), `<b>`, inline code, a fence in a code
/// language (its content then streams as it comes, up to the closing fence), a JSON fence whose
/// content does not start like JSON. One that may be a call (`<tool_call>`, `{"name": ..`, a
/// JSON fence with a call) holds the rest of the answer until it ends, when it is released
/// minus the calls; a `<tool_result>` the model invents is held and dropped.
#[derive(Debug)]
pub struct StreamFilter {
    known: Vec<String>,
    pending: String,
    hold_all: bool,
    /// Inside a code fence that cannot hold a call: everything passes up to its closing fence.
    in_code: bool,
}

enum Verdict {
    /// These many bytes are plain text.
    Release(usize),
    /// These many bytes are the opening line of a code fence: plain text, and so is what
    /// follows up to the closing fence.
    OpenCode(usize),
    /// Not decidable yet: wait for more text.
    Wait,
    /// May be a call: hold everything until the end.
    HoldAll,
}

/// Longest text held to decide whether a `{` starts a call; a key longer than this is none.
const MAX_UNDECIDED: usize = 80;

impl StreamFilter {
    pub fn new(known: &[&str]) -> Self {
        Self {
            known: known.iter().map(|s| s.to_string()).collect(),
            pending: String::new(),
            hold_all: false,
            in_code: false,
        }
    }

    /// The part of the text so far to show now.
    pub fn feed(&mut self, piece: &str) -> String {
        self.pending.push_str(piece);
        let mut out = String::new();
        while !self.hold_all && !self.pending.is_empty() {
            if self.in_code {
                match self.pending.find('`') {
                    None => {
                        out.push_str(&self.pending);
                        self.pending.clear();
                    }
                    Some(at) => {
                        out.push_str(&self.pending[..at]);
                        self.pending.drain(..at);
                        if self.pending.starts_with("```") {
                            out.push_str("```");
                            self.pending.drain(..3);
                            self.in_code = false;
                        } else if self.pending.len() < 3 && self.pending.bytes().all(|b| b == b'`')
                        {
                            break;
                        } else {
                            out.push('`');
                            self.pending.drain(..1);
                        }
                    }
                }
                continue;
            }
            match self.pending.find(['{', '<', '`']) {
                None => {
                    out.push_str(&self.pending);
                    self.pending.clear();
                }
                Some(at) => {
                    out.push_str(&self.pending[..at]);
                    self.pending.drain(..at);
                    match self.classify() {
                        Verdict::Release(n) => {
                            out.push_str(&self.pending[..n]);
                            self.pending.drain(..n);
                        }
                        Verdict::OpenCode(n) => {
                            out.push_str(&self.pending[..n]);
                            self.pending.drain(..n);
                            self.in_code = true;
                        }
                        Verdict::Wait => break,
                        Verdict::HoldAll => self.hold_all = true,
                    }
                }
            }
        }
        out
    }

    /// At the end of the answer: what is left to show (the held text minus its calls and any
    /// result block the model invented). `ended_normally` (`finish_reason` `stop` or
    /// `tool_calls`) says whether the held text may be whole; a call left unfinished (cut off
    /// by max_tokens) is not shown either: it is no answer, and the turn says it was cut off.
    pub fn finish(&mut self, ended_normally: bool) -> String {
        let held = std::mem::take(&mut self.pending);
        self.hold_all = false;
        self.in_code = false;
        let known: Vec<&str> = self.known.iter().map(String::as_str).collect();
        let parsed = parse_reply(&held, &known);
        let shown = if !parsed.calls.is_empty() {
            parsed.visible
        } else if let Some(at) = first_cut_call(&held, ended_normally) {
            held[..at].trim_end().to_string()
        } else {
            held
        };
        strip_invented_results(&shown)
    }

    /// `pending` starts with a marker: is it a call?
    fn classify(&self) -> Verdict {
        let p = self.pending.as_str();
        match p.as_bytes()[0] {
            b'`' => {
                if !p.starts_with("```") {
                    return if p.len() < 3 && p.bytes().all(|b| b == b'`') {
                        Verdict::Wait
                    } else {
                        Verdict::Release(1)
                    };
                }
                let Some(nl) = p.find('\n') else {
                    return Verdict::Wait;
                };
                let lang = p[3..nl].trim().to_ascii_lowercase();
                if !CALL_FENCES.contains(&lang.as_str()) {
                    return Verdict::OpenCode(nl + 1);
                }
                // A fence that may hold a call: only if its content starts like JSON.
                match p[nl + 1..].trim_start().as_bytes().first() {
                    None => return Verdict::Wait,
                    Some(b'{' | b'[') => {}
                    Some(_) => return Verdict::OpenCode(nl + 1),
                }
                let Some(close) = p[nl..].find("```") else {
                    return Verdict::Wait;
                };
                let end = nl + close + 3;
                let known: Vec<&str> = self.known.iter().map(String::as_str).collect();
                if !calls_in(&p[nl..nl + close], CallFormat::Fenced, &known).is_empty() {
                    Verdict::HoldAll
                } else {
                    Verdict::Release(end)
                }
            }
            b'<' => {
                let lower = p.get(..p.len().min(20)).unwrap_or(p).to_ascii_lowercase();
                let result_open = format!("<{RESULT_TAG}");
                if lower.starts_with(&result_open) {
                    return Verdict::HoldAll;
                } else if result_open.starts_with(&lower) {
                    return Verdict::Wait;
                }
                for tag in TAGS {
                    let open = format!("<{tag}");
                    if lower.starts_with(&open) {
                        match lower.as_bytes().get(open.len()) {
                            None => return Verdict::Wait,
                            Some(c) if *c == b'>' || c.is_ascii_whitespace() => {
                                return Verdict::HoldAll;
                            }
                            Some(_) => {}
                        }
                    } else if open.starts_with(&lower) {
                        return Verdict::Wait;
                    }
                }
                Verdict::Release(1)
            }
            _ => match first_key(&p[1..]) {
                Key::Undecided if p.len() < MAX_UNDECIDED => Verdict::Wait,
                Key::Found(k) if is_call_key(&k) => Verdict::HoldAll,
                _ => Verdict::Release(1),
            },
        }
    }
}

enum Key {
    /// The text after `{` is cut before its first key ends.
    Undecided,
    /// The first key, lower-cased.
    Found(String),
    /// Not an object with a key (`{}`, `{1`, `{ x + y`).
    None,
}

/// The first key of the object whose `{` came just before `rest`.
fn first_key(rest: &str) -> Key {
    let t = rest.trim_start();
    let b = t.as_bytes();
    match b.first() {
        None => Key::Undecided,
        Some(q @ (b'"' | b'\'')) => match t[1..].find(*q as char) {
            Some(end) => Key::Found(t[1..1 + end].to_ascii_lowercase()),
            None => Key::Undecided,
        },
        Some(c) if c.is_ascii_alphabetic() || *c == b'_' => {
            let end = b
                .iter()
                .position(|c| !(c.is_ascii_alphanumeric() || *c == b'_'))
                .unwrap_or(b.len());
            if end == b.len() {
                return Key::Undecided;
            }
            // `{name: ...}` is a key; `{name}` or `{ x + y }` is text.
            match t[end..].trim_start().as_bytes().first() {
                None => Key::Undecided,
                Some(b':' | b'=') => Key::Found(t[..end].to_ascii_lowercase()),
                Some(_) => Key::None,
            }
        }
        _ => Key::None,
    }
}

/// Keys a call object may start with.
fn is_call_key(key: &str) -> bool {
    NAME_KEYS.contains(&key)
        || META_KEYS.contains(&key)
        || ARG_KEYS.contains(&key)
        || matches!(key, "tool_calls" | "calls")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const KNOWN: [&str; 3] = ["readFile", "writeFile", "search"];

    fn one(text: &str) -> TextCall {
        let parsed = parse_reply(text, &KNOWN);
        assert_eq!(parsed.calls.len(), 1, "{text:?} -> {parsed:?}");
        parsed.calls.into_iter().next().unwrap()
    }

    #[test]
    fn a_short_line_repeated_is_a_loop_but_varied_or_blank_lines_are_not() {
        assert!(repeats_itself(&"# \n".repeat(40)));
        assert!(repeats_itself(&format!("Here:\n{}", "x = 1\n".repeat(12))));
        assert!(!repeats_itself(&format!("Here:\n{}", "x = 1\n".repeat(11))));
        assert!(!repeats_itself(&"\n".repeat(40)));
        let varied: String = (0..40).map(|i| format!("x{i} = {i}\n")).collect();
        assert!(!repeats_itself(&varied));
        // The unfinished last line does not count.
        assert!(!repeats_itself(&format!("{}# ", "# \n".repeat(11))));
    }

    #[test]
    fn bare_object() {
        let p = parse_reply(
            "Let me look.\n{\"name\": \"readFile\", \"arguments\": {\"path\": \"a.py\"}}",
            &KNOWN,
        );
        assert_eq!(p.visible, "Let me look.");
        assert_eq!(p.calls[0].name, "readFile");
        assert_eq!(p.calls[0].arguments, json!({"path": "a.py"}));
        assert_eq!(p.calls[0].format, CallFormat::Bare);
    }

    #[test]
    fn alternative_keys() {
        for text in [
            r#"{"tool": "readFile", "args": {"path": "a.py"}}"#,
            r#"{"function": "readFile", "parameters": {"path": "a.py"}}"#,
            r#"{"tool_name": "readFile", "input": {"path": "a.py"}}"#,
            r#"{"type": "function", "function": {"name": "readFile", "arguments": "{\"path\": \"a.py\"}"}}"#,
            r#"{"name": "readFile", "path": "a.py"}"#,
        ] {
            let c = one(text);
            assert_eq!(c.name, "readFile", "{text}");
            assert_eq!(c.arguments, json!({"path": "a.py"}), "{text}");
        }
    }

    #[test]
    fn arguments_as_a_json_string_are_decoded() {
        let c = one(r#"{"name": "search", "arguments": "{\"pattern\": \"fn main\"}"}"#);
        assert_eq!(c.arguments, json!({"pattern": "fn main"}));
        let c = one(r#"{"name": "search", "arguments": ""}"#);
        assert_eq!(c.arguments, json!({}));
        let c = one(r#"{"name": "search", "arguments": null}"#);
        assert_eq!(c.arguments, json!({}));
    }

    #[test]
    fn fenced_block() {
        let p = parse_reply(
            "I'll read it:\n```json\n{\"name\": \"readFile\", \"arguments\": {\"path\": \"b.py\"}}\n```\nThen answer.",
            &KNOWN,
        );
        assert_eq!(p.calls.len(), 1);
        assert_eq!(p.calls[0].format, CallFormat::Fenced);
        assert_eq!(p.visible, "I'll read it:\n\nThen answer.");
        // An unlabelled fence and an unclosed one work too.
        assert_eq!(
            one("```\n{\"name\": \"readFile\", \"arguments\": {}}\n```").name,
            "readFile"
        );
        assert_eq!(
            one("```json\n{\"name\": \"readFile\", \"arguments\": {}}").name,
            "readFile"
        );
    }

    #[test]
    fn tagged_forms() {
        for (open, close) in [
            ("<tool_call>", "</tool_call>"),
            ("<tool>", "</tool>"),
            ("<function_call>", "</function_call>"),
            ("<TOOL_CALL>", "</TOOL_CALL>"),
        ] {
            let text = format!(
                "ok {open}\n{{\"name\": \"readFile\", \"arguments\": {{\"path\": \"c.py\"}}}}\n{close} done"
            );
            let p = parse_reply(&text, &KNOWN);
            assert_eq!(p.calls.len(), 1, "{text}");
            assert_eq!(p.calls[0].format, CallFormat::Tagged);
            assert_eq!(p.visible, "ok  done");
        }
        // Unclosed tag: to the end.
        assert_eq!(
            one("<tool_call>{\"name\": \"readFile\", \"arguments\": {\"path\": \"x\"}}").arguments,
            json!({"path": "x"})
        );
    }

    #[test]
    fn tagged_calls_may_name_unknown_tools_but_bare_ones_may_not() {
        let p = parse_reply(
            "<tool_call>{\"name\": \"deleteAll\", \"arguments\": {}}</tool_call>",
            &KNOWN,
        );
        assert_eq!(p.calls[0].name, "deleteAll");
        let p = parse_reply("Example: {\"name\": \"Bob\", \"arguments\": {}}", &KNOWN);
        assert!(p.calls.is_empty());
        assert_eq!(p.visible, "Example: {\"name\": \"Bob\", \"arguments\": {}}");
    }

    #[test]
    fn several_calls_in_one_reply() {
        let text = "<tool_call>{\"name\": \"readFile\", \"arguments\": {\"path\": \"a\"}}</tool_call>\n\
                    <tool_call>{\"name\": \"search\", \"arguments\": {\"pattern\": \"x\"}}</tool_call>";
        let p = parse_reply(text, &KNOWN);
        assert_eq!(
            p.calls.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
            ["readFile", "search"]
        );
        assert_eq!(p.visible, "");
        let p = parse_reply(
            r#"[{"name": "readFile", "arguments": {"path": "a"}}, {"name": "search", "arguments": {"pattern": "b"}}]"#,
            &KNOWN,
        );
        assert_eq!(p.calls.len(), 2);
        let p = parse_reply(
            "{\"name\": \"readFile\", \"arguments\": {\"path\": \"a\"}}\n{\"name\": \"readFile\", \"arguments\": {\"path\": \"b\"}}",
            &KNOWN,
        );
        assert_eq!(p.calls.len(), 2);
        let p = parse_reply(
            r#"{"tool_calls": [{"name": "readFile", "arguments": {"path": "a"}}, {"name": "search", "arguments": {}}]}"#,
            &KNOWN,
        );
        assert_eq!(p.calls.len(), 2);
        let p = parse_reply(
            "<tool_call>\n{\"name\": \"readFile\", \"arguments\": {\"path\": \"a\"}}\n{\"name\": \"search\", \"arguments\": {}}\n</tool_call>",
            &KNOWN,
        );
        assert_eq!(p.calls.len(), 2);
    }

    #[test]
    fn repairs_common_breakage() {
        let cases = [
            (
                r#"{"name": "readFile", "arguments": {"path": "a.py",},}"#,
                json!({"path": "a.py"}),
            ),
            (
                r#"{'name': 'readFile', 'arguments': {'path': 'a.py'}}"#,
                json!({"path": "a.py"}),
            ),
            (
                r#"{name: "readFile", arguments: {path: "a.py", start: 3}}"#,
                json!({"path": "a.py", "start": 3}),
            ),
            (
                r#"{"name": "readFile", "arguments": {"path": "a.py""#,
                json!({"path": "a.py"}),
            ),
            (
                r#"{"name": "readFile", "arguments": {"path": "a.py"#,
                json!({"path": "a.py"}),
            ),
            (
                r#"{"name": "readFile", "arguments": {"path": "a.py", "all": True, "x": None, "y": False}}"#,
                json!({"path": "a.py", "all": true, "x": null, "y": false}),
            ),
            (
                r#"{"name": "readFile", "arguments": {"lines": [1, 2,]}}"#,
                json!({"lines": [1, 2]}),
            ),
            (
                r#"{"name": "readFile", "arguments": {"lines": [1, 2}}"#,
                json!({"lines": [1, 2]}),
            ),
            (
                r#"{"name": "readFile" "arguments": {"path": "a"}}"#,
                json!({"path": "a"}),
            ),
            (
                "{\"name\": \"writeFile\", \"arguments\": {\"content\": \"line1\nline2\"}}",
                json!({"content": "line1\nline2"}),
            ),
            (
                r#"{"name": "readFile", "arguments": {"path": "it's.py", "n": -1.5e2}}"#,
                json!({"path": "it's.py", "n": -150.0}),
            ),
            (
                r#"{'name': 'readFile', 'arguments': {'path': 'it\'s "q".py'}}"#,
                json!({"path": "it's \"q\".py"}),
            ),
            (
                r#"{"name": "readFile", "arguments": {"path": "\u00e9\ud83d\ude00"}}"#,
                json!({"path": "é😀"}),
            ),
        ];
        for (text, args) in cases {
            let c = one(text);
            assert_eq!(c.arguments, args, "{text}");
        }
    }

    #[test]
    fn not_json_is_left_alone() {
        for text in [
            "fn main() { println!(\"hi\"); }",
            "Use a dict like {a, b} here.",
            "The set [1, 2, 3] is small.",
            "{\"path\": \"no name here\"}",
            "<b>bold</b> and <toolbox> tags",
            "```rust\nfn f() -> Value { json!({\"name\": \"readFile\", \"arguments\": {}}) }\n```",
            "",
            "{{{{{{{{",
        ] {
            let p = parse_reply(text, &KNOWN);
            assert!(p.calls.is_empty(), "{text:?} -> {p:?}");
            assert_eq!(p.visible, tidy(text));
        }
    }

    #[test]
    fn deep_nesting_does_not_overflow_the_stack() {
        let text = format!(
            "{{\"name\": \"readFile\", \"arguments\": {}}}",
            "[".repeat(100_000)
        );
        let _ = parse_reply(&text, &KNOWN);
        assert!(repair_json(&"{\"a\":".repeat(10_000)).is_none());
    }

    #[test]
    fn repair_json_rules() {
        assert_eq!(repair_json("{\"a\": 1,}"), Some(json!({"a": 1})));
        assert_eq!(repair_json("  [1, 2  "), Some(json!([1, 2])));
        assert_eq!(
            repair_json("{\"a\": .5, \"b\": +3}"),
            Some(json!({"a": 0.5, "b": 3}))
        );
        assert_eq!(repair_json("{\"a\": 1} trailing words"), None);
        assert_eq!(repair_json("hello"), None);
        assert_eq!(
            repair_json("{\"a\": \"b\\qc\"}"),
            Some(json!({"a": "b\\qc"}))
        );
        assert_eq!(
            repair_json("// comment\n{\"a\": /* x */ 1}"),
            Some(json!({"a": 1}))
        );
    }

    #[test]
    fn native_arguments_are_repaired_too() {
        assert_eq!(
            parse_arguments("{\"path\": \"a\",}"),
            Some(json!({"path": "a"}))
        );
        assert_eq!(parse_arguments(""), Some(json!({})));
        assert_eq!(parse_arguments("[1]"), None);
        assert_eq!(parse_arguments("nonsense"), None);
    }

    #[test]
    fn stream_filter_passes_plain_text_and_holds_calls() {
        let mut f = StreamFilter::new(&KNOWN);
        assert_eq!(f.feed("Hello "), "Hello ");
        assert_eq!(f.feed("world. "), "world. ");
        assert_eq!(f.feed("Now <tool_"), "Now ");
        assert_eq!(
            f.feed("call>{\"name\": \"readFile\", \"arguments\": {}}</tool_call> bye"),
            ""
        );
        assert_eq!(f.finish(true), "bye");

        // Markers that are not calls are released as soon as that is clear.
        let mut f = StreamFilter::new(&KNOWN);
        assert_eq!(f.feed("a {} b <b>c</b> `x` d"), "a {} b <b>c</b> `x` d");
        // A code fence streams as it comes, `{` inside it included.
        assert_eq!(f.feed("```rust\nfn f() {"), "```rust\nfn f() {");
        assert_eq!(f.feed(" \"x\": }\n``"), " \"x\": }\n");
        assert_eq!(f.feed("`\nafter"), "```\nafter");
        assert_eq!(f.finish(true), "");
        let mut f = StreamFilter::new(&KNOWN);
        assert_eq!(f.feed("```python\ndef f():\n"), "```python\ndef f():\n");
        assert_eq!(f.feed("    return {'a': 1}\n"), "    return {'a': 1}\n");
        // An unlabelled fence of code is code too.
        let mut f = StreamFilter::new(&KNOWN);
        assert_eq!(f.feed("```\nls -l\n"), "```\nls -l\n");

        // A JSON-looking object whose first key is no call key is shown at once.
        let mut f = StreamFilter::new(&KNOWN);
        assert_eq!(f.feed("a {\"b"), "a ");
        assert_eq!(f.feed("\": 1} c"), "{\"b\": 1} c");
        assert_eq!(f.finish(true), "");
        let mut f = StreamFilter::new(&KNOWN);
        assert_eq!(f.feed("use {x} and {name: 1}"), "use {x} and ");
        assert_eq!(f.finish(true), "{name: 1}");

        // An invented result block is held and dropped.
        let mut f = StreamFilter::new(&KNOWN);
        assert_eq!(f.feed("Done. <tool_res"), "Done. ");
        assert_eq!(f.feed("ult name=\"x\">made up</tool_result>"), "");
        assert_eq!(f.finish(true), "");

        // A fenced call is held; its surrounding text is not lost.
        let mut f = StreamFilter::new(&KNOWN);
        let shown = f.feed("Reading.\n```json\n{\"name\": \"readFile\", \"arguments\": {}}\n```\n");
        assert_eq!(shown, "Reading.\n");
        assert_eq!(f.finish(true), "");
    }

    #[test]
    fn prompt_mode_rendering() {
        let call = noctune_llm::ToolCall::function("c1", "readFile", "{\"path\":\"a\"}");
        let msgs = vec![
            ChatMessage::user("q"),
            ChatMessage {
                role: Role::Assistant,
                content: Some("Looking.".into()),
                tool_calls: Some(vec![
                    call.clone(),
                    noctune_llm::ToolCall::function("c2", "search", "{}"),
                ]),
                ..Default::default()
            },
            ChatMessage::tool_result("c1", "{\"content\":\"x\"}"),
            ChatMessage::tool_result("c2", "{\"matches\":[]}"),
            ChatMessage::assistant("done"),
        ];
        let out = render_for_prompt_mode(&msgs);
        assert_eq!(out.len(), 4);
        assert!(
            out.iter()
                .all(|m| m.tool_calls.is_none() && m.role != Role::Tool)
        );
        let said = out[1].content.as_deref().unwrap();
        assert!(said.starts_with("Looking.\n<tool_call>"), "{said}");
        assert_eq!(parse_reply(said, &KNOWN).calls.len(), 2);
        let results = out[2].content.as_deref().unwrap();
        assert!(
            results.contains("name=\"readFile\" id=\"c1\"") && results.contains("name=\"search\"")
        );
    }

    #[test]
    fn protocol_prompt_lists_tools() {
        let spec = ToolSpec::function("readFile", "Read a file", json!({"type": "object"}));
        let p = protocol_prompt(&[spec]);
        assert!(p.contains("<tool_call>") && p.contains("- readFile(): Read a file"));
    }

    #[test]
    fn cut_off_arguments() {
        // Whole, or only closing braces missing at the very end of a normally ended answer.
        assert!(!arguments_cut_off(r#"{"path": "a.py"}"#, true));
        assert!(!arguments_cut_off(r#"{"path": "a.py""#, true));
        assert!(!arguments_cut_off(r#"{"a": {"b": [1, 2]"#, true));
        // The same missing braces after max_tokens or a stream without a finish: cut off.
        assert!(arguments_cut_off(r#"{"path": "a.py""#, false));
        // Inside a string, or a value still coming.
        assert!(arguments_cut_off(
            r#"{"path": "a.py", "content": "def f():\n"#,
            true
        ));
        assert!(arguments_cut_off(r#"{"path": "a.py", "content": "#, true));
        assert!(arguments_cut_off(r#"{"path": "a.py","#, true));
        assert!(arguments_cut_off(r#"{"text": "say \"hi"#, true));
        assert!(!arguments_cut_off(r#"{"text": "say \"hi\""}"#, true));
    }

    #[test]
    fn cut_off_prompt_calls() {
        let whole =
            "<tool_call>\n{\"name\": \"readFile\", \"arguments\": {\"path\": \"a\"}}\n</tool_call>";
        assert!(!calls_cut_off(whole, true));
        let cut = "<tool_call>\n{\"name\": \"writeFile\", \"arguments\": {\"path\": \"a\", \"content\": \"x";
        assert!(calls_cut_off(cut, true));
        assert!(!calls_cut_off("no call here: {\"a\": ", true));
    }

    #[test]
    fn invented_results_are_stripped() {
        let text = "Reading.\n<tool_call>{}</tool_call>\n<tool_result name=\"x\" id=\"1\">\nfake\n\
                    </tool_result>\nDone.";
        assert_eq!(
            strip_invented_results(text),
            "Reading.\n<tool_call>{}</tool_call>\n\nDone."
        );
        assert_eq!(strip_invented_results("a <tool_result>cut"), "a");
        assert_eq!(
            strip_invented_results("a <tool_results_x> b"),
            "a <tool_results_x> b"
        );
        assert_eq!(strip_invented_results("plain"), "plain");
    }

    #[test]
    fn repetition_is_recognised() {
        let unit = "I will now read the file to check it. ";
        assert!(repeats_itself(&format!("Sure. {}", unit.repeat(5))));
        assert!(!repeats_itself(&format!("Sure. {}", unit.repeat(3))));
        // Varied text, a rule of dashes, a short repeated word: no loop.
        let varied: String = (0..40)
            .map(|i| format!("line {i} of the answer\n"))
            .collect();
        assert!(!repeats_itself(&varied));
        assert!(!repeats_itself(&"-".repeat(400)));
        assert!(!repeats_itself(&"ab ".repeat(30)));
    }

    #[test]
    fn compact_protocol_lines() {
        let spec = ToolSpec::function(
            "readFile",
            "Read a text file of the repository. Lines come numbered.",
            json!({"type": "object", "required": ["path"], "properties": {
                "start_line": {"type": "integer"}, "path": {"type": "string"}}}),
        );
        let p = protocol_prompt(&[spec]);
        assert!(
            p.contains("- readFile(path, start_line?:int): Read a text file of the repository\n"),
            "{p}"
        );
        assert!(p.contains("Never write a <tool_result>"), "{p}");
    }
}
