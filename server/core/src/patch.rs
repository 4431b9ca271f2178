//! Applying a diff of [`crate::unified_diff`] to the pre-image it was made from: how a stored
//! approval rebuilds its post-image when the post-image's blob is gone from the object store.
//!
//! Strict on purpose: every context and removed line must be the pre-image's own, byte for
//! byte, so a diff made for other content fails instead of producing something else. The
//! result is still checked by the caller (against the stored blob id and the approval id):
//! this only has to be exact for diffs [`crate::unified_diff`] wrote.

/// Why a diff does not apply to a text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the diff does not apply to the pre-image: {0}")]
pub struct PatchError(String);

/// Lines of `text` the way `similar` splits them (after `\r\n`, a lone `\r` or `\n`), each
/// with its terminator, so that a line of the diff and a line of the text compare exactly.
fn split_lines(text: &str) -> Vec<&str> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let end = match bytes[i] {
            b'\r' if bytes.get(i + 1) == Some(&b'\n') => i + 2,
            b'\r' | b'\n' => i + 1,
            _ => {
                i += 1;
                continue;
            }
        };
        out.push(&text[start..end]);
        start = end;
        i = end;
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

/// `@@ -a[,b] +c[,d] @@` -> (old start index, old count, new count).
fn hunk_header(line: &str) -> Option<(usize, usize, usize)> {
    let rest = line.strip_prefix("@@ -")?;
    let (ranges, _) = rest.split_once(" @@")?;
    let (old, new) = ranges.split_once(" +")?;
    let range = |r: &str| -> Option<(usize, usize)> {
        match r.split_once(',') {
            Some((s, n)) => Some((s.parse().ok()?, n.parse().ok()?)),
            None => Some((r.parse().ok()?, 1)),
        }
    };
    let (old_start, old_len) = range(old)?;
    let (_, new_len) = range(new)?;
    // An empty range names the line before it; a non-empty one its first line (1-based).
    let index = if old_len == 0 {
        old_start
    } else {
        old_start.checked_sub(1)?
    };
    Some((index, old_len, new_len))
}

const NO_NEWLINE: &str = "\\ No newline at end of file";

/// `before` with `diff` applied. `diff` must be a unified diff of `before` as
/// [`crate::unified_diff`] writes it (an empty diff: no change).
pub fn apply_unified(before: &str, diff: &str) -> Result<String, PatchError> {
    let old = split_lines(before);
    let lines = split_lines(diff);
    let mut out = String::with_capacity(before.len() + diff.len());
    let mut pos = 0usize; // next line of `old` not yet copied
    let mut i = 0usize;
    // The file header, when there is one.
    if lines.first().is_some_and(|l| l.starts_with("--- ")) {
        if !lines.get(1).is_some_and(|l| l.starts_with("+++ ")) {
            return Err(PatchError("a `---` header without its `+++` line".into()));
        }
        i = 2;
    }
    while i < lines.len() {
        let header = lines[i].trim_end_matches(['\r', '\n']);
        let (start, mut old_left, mut new_left) = hunk_header(header)
            .ok_or_else(|| PatchError(format!("line {}: not a hunk header: {header:?}", i + 1)))?;
        i += 1;
        if start < pos || start > old.len() {
            return Err(PatchError(format!(
                "a hunk starts at line {} of a {}-line pre-image",
                start + 1,
                old.len()
            )));
        }
        for line in &old[pos..start] {
            out.push_str(line);
        }
        pos = start;
        while old_left > 0 || new_left > 0 {
            let Some(line) = lines.get(i) else {
                return Err(PatchError("the diff ends inside a hunk".into()));
            };
            i += 1;
            let (tag, mut text) = line.split_at(line.chars().next().map_or(0, char::len_utf8));
            // The writer ends an unterminated last line with `\n` and this marker.
            if lines
                .get(i)
                .is_some_and(|l| l.trim_end_matches(['\r', '\n']) == NO_NEWLINE)
            {
                text = text.strip_suffix('\n').unwrap_or(text);
                i += 1;
            }
            let expect_old = |pos: usize| -> Result<(), PatchError> {
                match old.get(pos) {
                    Some(o) if *o == text => Ok(()),
                    Some(o) => Err(PatchError(format!(
                        "line {} of the pre-image is {o:?}, the diff expects {text:?}",
                        pos + 1
                    ))),
                    None => Err(PatchError("the diff runs past the pre-image".into())),
                }
            };
            match tag {
                " " if old_left > 0 && new_left > 0 => {
                    expect_old(pos)?;
                    out.push_str(text);
                    pos += 1;
                    old_left -= 1;
                    new_left -= 1;
                }
                "-" if old_left > 0 => {
                    expect_old(pos)?;
                    pos += 1;
                    old_left -= 1;
                }
                "+" if new_left > 0 => {
                    out.push_str(text);
                    new_left -= 1;
                }
                _ => {
                    return Err(PatchError(format!(
                        "line {i} of the diff does not fit its hunk: {line:?}"
                    )));
                }
            }
        }
    }
    for line in &old[pos..] {
        out.push_str(line);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unified_diff;

    fn round_trip(before: &str, after: &str) {
        let diff = unified_diff("f.py", before, after);
        assert_eq!(
            apply_unified(before, &diff).as_deref(),
            Ok(after),
            "diff:\n{diff}"
        );
    }

    #[test]
    fn rebuilds_the_post_image_of_every_kind_of_change() {
        let big: String = (0..300).map(|i| format!("x{i} = {i}\n")).collect();
        let edited = big
            .replace("x3 = 3\n", "")
            .replace("x150 = 150\n", "x150 = 151\nx150b = 0\n")
            .replace("x299 = 299\n", "x299 = 299\nend = True\n");
        for (before, after) in [
            ("a\nb\nc\n", "a\nB\nc\n"),
            ("", "new file\n"),
            ("gone\n", ""),
            ("no newline", "no newline at all"),
            ("a\nb", "a\nb\n"),
            ("a\nb\n", "a\nb"),
            ("crlf\r\nline\r\n", "crlf\r\nLINE\r\n"),
            ("lone\rcr\nmixed\n", "lone\rCR\nmixed\n"),
            ("same\n", "same\n"),
            ("é ü\n→\n", "é ü\n←\n"),
            (big.as_str(), edited.as_str()),
            (big.as_str(), ""),
        ] {
            round_trip(before, after);
        }
    }

    #[test]
    fn a_diff_for_other_content_does_not_apply() {
        let diff = unified_diff("f.py", "a\nb\nc\n", "a\nB\nc\n");
        assert!(apply_unified("a\nX\nc\n", &diff).is_err());
        assert!(apply_unified("", &diff).is_err());
        // Edited hunk bodies and headers are refused, not guessed at.
        let bad = diff.replace("+B", "+B\n+extra");
        assert!(apply_unified("a\nb\nc\n", &bad).is_err(), "{bad}");
        let bad = diff.replace("@@ -1,3 +1,3 @@", "@@ -9,3 +9,3 @@");
        assert!(apply_unified("a\nb\nc\n", &bad).is_err(), "{bad}");
        assert!(apply_unified("a\n", "not a diff\n").is_err());
    }
}
