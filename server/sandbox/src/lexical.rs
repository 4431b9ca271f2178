//! The checks that need no filesystem: refused spellings, and `.`/`..` folded away.
//!
//! These run first so that an obviously hostile path (`../../etc/passwd`) is refused without
//! ever probing outside the roots (whether a file exists there is information too).

use std::path::PathBuf;

/// Why a spelling is refused before any lookup.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Refusal {
    Empty,
    Nul,
    Home,
    Backslash,
    /// `%2e` and friends: the escape as written, and what it decodes to.
    Encoded(String, char),
}

/// Bytes that must never reach us percent-encoded: a URL-decoding layer in front of us (a
/// browser, an HTTP client, a model that "helpfully" encodes) would turn them into traversal.
const ENCODED_FORBIDDEN: [u8; 5] = [b'.', b'/', b'\\', b'%', 0];

pub(super) fn refuse_spelling(input: &str) -> Option<Refusal> {
    if input.trim().is_empty() {
        return Some(Refusal::Empty);
    }
    if input.contains('\0') {
        return Some(Refusal::Nul);
    }
    if input.starts_with('~') {
        return Some(Refusal::Home);
    }
    if let Some(r) = encoded_escape(input) {
        return Some(r);
    }
    if input.contains('\\') {
        return Some(Refusal::Backslash);
    }
    None
}

fn encoded_escape(input: &str) -> Option<Refusal> {
    let b = input.as_bytes();
    let hex = |c: u8| (c as char).to_digit(16);
    let mut i = 0;
    while i + 2 < b.len() {
        if b[i] == b'%'
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            let byte = (h * 16 + l) as u8;
            if ENCODED_FORBIDDEN.contains(&byte) {
                return Some(Refusal::Encoded(input[i..i + 3].to_string(), byte as char));
            }
        }
        i += 1;
    }
    None
}

/// The path's components with `.` and empty ones dropped and `..` applied, starting from
/// `start` (already normalized components). A `..` at `/` stays at `/`, as the kernel does; the
/// caller then finds the result outside the roots.
pub(super) fn fold(mut start: PathBuf, input: &str) -> PathBuf {
    for part in input.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                start.pop();
            }
            name => start.push(name),
        }
    }
    start
}

/// Whether the input has a `..` component (for choosing the clearer error message).
pub(super) fn has_dotdot(input: &str) -> bool {
    input.split('/').any(|p| p == "..")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn refused_spellings() {
        assert_eq!(refuse_spelling(""), Some(Refusal::Empty));
        assert_eq!(refuse_spelling("  "), Some(Refusal::Empty));
        assert_eq!(refuse_spelling("a\0b"), Some(Refusal::Nul));
        assert_eq!(refuse_spelling("~"), Some(Refusal::Home));
        assert_eq!(refuse_spelling("~root/x"), Some(Refusal::Home));
        assert_eq!(refuse_spelling("a\\..\\b"), Some(Refusal::Backslash));
        for (s, c) in [
            ("%2e%2e%2fetc", '.'),
            ("a%2Fb", '/'),
            ("a%5cb", '\\'),
            ("%252e", '%'),
            ("x%00", '\0'),
        ] {
            match refuse_spelling(s) {
                Some(Refusal::Encoded(_, d)) => assert_eq!(d, c, "{s}"),
                other => panic!("{s}: {other:?}"),
            }
        }
        assert_eq!(refuse_spelling("100%"), None);
        assert_eq!(refuse_spelling("a%41b%2"), None, "%41 is 'A': harmless");
        assert_eq!(refuse_spelling("src/a~b.py"), None);
    }

    #[test]
    fn folds_dots() {
        let base = PathBuf::from("/r");
        assert_eq!(fold(base.clone(), "./a//b/../c"), Path::new("/r/a/c"));
        assert_eq!(fold(base.clone(), "../../x"), Path::new("/x"));
        assert_eq!(
            fold(base, "/abs/./y"),
            Path::new("/r/abs/y"),
            "joined, never replaced"
        );
        assert!(has_dotdot("a/../b"));
        assert!(!has_dotdot("a/..b"));
    }
}
