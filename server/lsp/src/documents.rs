//! Open documents, kept in sync incrementally, so chat reads what the user sees (unsaved
//! buffers included) through [`BufferOverlay`].
//!
//! Positions are in the encoding negotiated at `initialize` (UTF-8 when the client offers it,
//! else the protocol's default UTF-16). Out-of-range positions are clamped to the end of their
//! line or of the document, as the protocol asks; a change to an unknown document is ignored.

use noctune_studio::chat::BufferOverlay;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::sync::atomic::{AtomicU8, Ordering};
use tower_lsp_server::ls_types::{Position, Range, TextDocumentContentChangeEvent, Uri};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Utf8 = 0,
    Utf16 = 1,
    Utf32 = 2,
}

impl Encoding {
    fn units(self, c: char) -> u32 {
        match self {
            Encoding::Utf8 => c.len_utf8() as u32,
            Encoding::Utf16 => c.len_utf16() as u32,
            Encoding::Utf32 => 1,
        }
    }
}

#[derive(Debug, Clone)]
struct Doc {
    uri: Uri,
    text: String,
}

#[derive(Default)]
pub struct Documents {
    docs: RwLock<HashMap<PathBuf, Doc>>,
    encoding: AtomicU8,
}

/// The file path of a `file:` URI.
pub fn uri_path(uri: &Uri) -> Option<PathBuf> {
    uri.to_file_path().map(|p| p.into_owned())
}

impl Documents {
    pub fn new() -> Documents {
        Documents {
            docs: RwLock::default(),
            encoding: AtomicU8::new(Encoding::Utf16 as u8),
        }
    }

    pub fn set_encoding(&self, e: Encoding) {
        self.encoding.store(e as u8, Ordering::Relaxed);
    }

    pub fn encoding(&self) -> Encoding {
        match self.encoding.load(Ordering::Relaxed) {
            0 => Encoding::Utf8,
            2 => Encoding::Utf32,
            _ => Encoding::Utf16,
        }
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<PathBuf, Doc>> {
        self.docs.write().unwrap_or_else(|p| p.into_inner())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<PathBuf, Doc>> {
        self.docs.read().unwrap_or_else(|p| p.into_inner())
    }

    pub fn open(&self, uri: Uri, text: String) {
        if let Some(path) = uri_path(&uri) {
            self.write().insert(path, Doc { uri, text });
        }
    }

    pub fn close(&self, uri: &Uri) {
        if let Some(path) = uri_path(uri) {
            self.write().remove(&path);
        }
    }

    /// Applies content changes in order (ranged ones incrementally, range-less ones as a
    /// full replacement).
    pub fn change(&self, uri: &Uri, changes: Vec<TextDocumentContentChangeEvent>) {
        let Some(path) = uri_path(uri) else { return };
        let enc = self.encoding();
        let mut docs = self.write();
        let Some(doc) = docs.get_mut(&path) else {
            tracing::debug!("change to a document that is not open: {}", uri.as_str());
            return;
        };
        for c in changes {
            match c.range {
                None => doc.text = c.text,
                Some(r) => {
                    let start = offset(&doc.text, r.start, enc);
                    let end = offset(&doc.text, r.end, enc).max(start);
                    doc.text.replace_range(start..end, &c.text);
                }
            }
        }
    }

    #[cfg(test)]
    pub fn text(&self, uri: &Uri) -> Option<String> {
        let path = uri_path(uri)?;
        self.read().get(&path).map(|d| d.text.clone())
    }

    /// The URI the client opened `path` under (if open).
    pub fn uri_of(&self, path: &Path) -> Option<Uri> {
        self.read().get(path).map(|d| d.uri.clone())
    }

    /// The text of `range` in the open document.
    pub fn slice(&self, uri: &Uri, range: Range) -> Option<String> {
        let path = uri_path(uri)?;
        let docs = self.read();
        let d = docs.get(&path)?;
        let enc = self.encoding();
        let (s, e) = (
            offset(&d.text, range.start, enc),
            offset(&d.text, range.end, enc),
        );
        Some(d.text[s.min(e)..e.max(s)].to_string())
    }
}

impl BufferOverlay for Documents {
    fn text_of(&self, path: &Path) -> Option<String> {
        let docs = self.read();
        if let Some(d) = docs.get(path) {
            return Some(d.text.clone());
        }
        // The editor may have opened the file under a non-canonical path (a symlinked folder).
        let canon = std::fs::canonicalize(path).ok()?;
        docs.iter()
            .find(|(p, _)| std::fs::canonicalize(p).is_ok_and(|c| c == canon))
            .map(|(_, d)| d.text.clone())
    }
}

/// Byte offset of `pos` in `text` (clamped to the line end / the text end).
pub fn offset(text: &str, pos: Position, enc: Encoding) -> usize {
    let mut line_start = 0usize;
    for _ in 0..pos.line {
        match text[line_start..].find('\n') {
            Some(i) => line_start += i + 1,
            None => return text.len(),
        }
    }
    let line_end = text[line_start..]
        .find('\n')
        .map_or(text.len(), |i| line_start + i);
    let line = &text[line_start..line_end];
    let line = line.strip_suffix('\r').unwrap_or(line);
    let mut units = 0u32;
    for (i, c) in line.char_indices() {
        if units >= pos.character {
            return line_start + i;
        }
        units += enc.units(c);
    }
    line_start + line.len()
}

/// The position just past the end of `text`.
pub fn end_position(text: &str, enc: Encoding) -> Position {
    let line = text.matches('\n').count() as u32;
    let last = text.rsplit('\n').next().unwrap_or("");
    Position {
        line,
        character: last.chars().map(|c| enc.units(c)).sum(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(line: u32, character: u32) -> Position {
        Position { line, character }
    }

    #[test]
    fn offsets_in_each_encoding() {
        let t = "a😀b\nxyz";
        assert_eq!(offset(t, pos(0, 3), Encoding::Utf16), "a😀".len());
        assert_eq!(offset(t, pos(0, 5), Encoding::Utf8), "a😀".len());
        assert_eq!(offset(t, pos(0, 2), Encoding::Utf32), "a😀".len());
        assert_eq!(offset(t, pos(0, 99), Encoding::Utf16), "a😀b".len());
        assert_eq!(offset(t, pos(1, 1), Encoding::Utf16), "a😀b\nx".len());
        assert_eq!(offset(t, pos(9, 0), Encoding::Utf16), t.len());
        assert_eq!(end_position(t, Encoding::Utf16), pos(1, 3));
    }

    #[test]
    fn incremental_changes_apply_in_order() {
        let d = Documents::new();
        let uri: Uri = "file:///tmp/x.py".parse().unwrap();
        d.open(uri.clone(), "hello\nworld\n".into());
        let ch = |r: Option<Range>, t: &str| TextDocumentContentChangeEvent {
            range: r,
            range_length: None,
            text: t.into(),
        };
        d.change(
            &uri,
            vec![
                ch(
                    Some(Range {
                        start: pos(1, 0),
                        end: pos(1, 5),
                    }),
                    "there",
                ),
                ch(
                    Some(Range {
                        start: pos(0, 5),
                        end: pos(0, 5),
                    }),
                    ",",
                ),
            ],
        );
        assert_eq!(d.text(&uri).unwrap(), "hello,\nthere\n");
        assert_eq!(
            d.text_of(Path::new("/tmp/x.py")).unwrap(),
            "hello,\nthere\n"
        );
        d.change(&uri, vec![ch(None, "all new")]);
        assert_eq!(d.text(&uri).unwrap(), "all new");
        d.close(&uri);
        assert!(d.text(&uri).is_none());
    }
}
