//! Cutting text to a size without splitting a character: the one implementation every layer
//! uses (log tails, tool output shown to a model, diffs, messages).

/// The longest prefix of `s` with at most `max` bytes.
pub fn prefix_bytes(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The longest suffix of `s` with at most `max` bytes.
pub fn suffix_bytes(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

/// The first `n` characters of `s` (all of it when shorter).
pub fn prefix_chars(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((end, _)) => &s[..end],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_splits_a_character() {
        assert_eq!(prefix_bytes("héllo", 2), "h");
        assert_eq!(prefix_bytes("héllo", 3), "hé");
        assert_eq!(prefix_bytes("abc", 10), "abc");
        assert_eq!(prefix_bytes("", 0), "");
        assert_eq!(suffix_bytes("héllo", 4), "llo");
        assert_eq!(suffix_bytes("héllo", 5), "éllo");
        assert_eq!(suffix_bytes("abc", 10), "abc");
        assert_eq!(prefix_chars("héllo", 2), "hé");
        assert_eq!(prefix_chars("hé", 5), "hé");
        for s in ["", "a", "é", "日本語テキスト", "a😀b"] {
            for n in 0..=s.len() + 1 {
                assert!(s.starts_with(prefix_bytes(s, n)) && prefix_bytes(s, n).len() <= n);
                assert!(s.ends_with(suffix_bytes(s, n)) && suffix_bytes(s, n).len() <= n);
            }
        }
    }
}
