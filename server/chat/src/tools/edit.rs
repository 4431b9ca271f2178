//! Exact-text edits (`editFile`): find `old_text` in a file and put `new_text` in its place.
//!
//! Pure text in, text out, so that the matching rules are tested without a filesystem. The
//! rules, in the order they are tried for each hunk:
//! 1. the exact text (line endings aside: the model's `\n` is the file's `\r\n`);
//! 2. the same text without the `N: ` line numbers `readFile` shows, when every line of
//!    `old_text` carries one (small models copy them along);
//! 3. whole lines equal but for leading/trailing whitespace (the model re-indented or dropped
//!    trailing spaces); `new_text` is then re-indented to the file's indentation.
//!
//! Stages 2 and 3 say so in a notice, so that the model and the user check the diff. No match
//! is an error that shows the closest lines; several matches are an error that counts them,
//! unless `occurrence` picks one. Several hunks apply in order, all or none.

/// One replacement.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Hunk {
    pub old: String,
    pub new: String,
    /// 1-based; `None`: the match must be unique.
    pub occurrence: Option<usize>,
}

/// The edited text and what the model should know about how it was matched.
#[derive(Debug, PartialEq)]
pub(crate) struct Edited {
    pub text: String,
    pub notices: Vec<String>,
}

/// Why a hunk could not be applied; `code` is the tool error code.
#[derive(Debug, PartialEq)]
pub(crate) struct HunkError {
    pub code: &'static str,
    pub message: String,
}

fn err(code: &'static str, message: String) -> HunkError {
    HunkError { code, message }
}

/// At most this many file lines shown as "closest" to a missing `old_text`.
const CLOSEST_MAX_LINES: usize = 12;
/// At most this many match line numbers listed for an ambiguous `old_text`.
const AMBIGUOUS_MAX_LISTED: usize = 10;

/// Applies `hunks` to `text` in order; on any failure nothing is applied and the error names
/// the hunk (when there are several).
pub(crate) fn apply_hunks(text: &str, hunks: &[Hunk]) -> Result<Edited, HunkError> {
    let mut cur = text.to_string();
    let mut notices = Vec::new();
    for (i, h) in hunks.iter().enumerate() {
        let label = |m: String| {
            if hunks.len() > 1 {
                format!(
                    "edit {} of {}: {m} No edit of the file was made (edits apply all or none).",
                    i + 1,
                    hunks.len()
                )
            } else {
                m
            }
        };
        match apply_one(&cur, h) {
            Ok((next, notice)) => {
                cur = next;
                if let Some(n) = notice {
                    notices.push(label(n));
                }
            }
            Err(e) => return Err(err(e.code, label(e.message))),
        }
    }
    Ok(Edited { text: cur, notices })
}

fn eol_of(text: &str) -> &'static str {
    match text.find('\n') {
        Some(i) if i > 0 && text.as_bytes()[i - 1] == b'\r' => "\r\n",
        _ => "\n",
    }
}

fn with_eol(s: &str, eol: &str) -> String {
    let lf = s.replace("\r\n", "\n");
    if eol == "\r\n" {
        lf.replace('\n', "\r\n")
    } else {
        lf
    }
}

fn apply_one(text: &str, h: &Hunk) -> Result<(String, Option<String>), HunkError> {
    if h.old.trim().is_empty() {
        return Err(err(
            "bad_arguments",
            "old_text is empty: copy the exact lines to replace from readFile (to create a file use writeFile)".into(),
        ));
    }
    let eol = eol_of(text);
    let old = with_eol(&h.old, eol);
    let new = with_eol(&h.new, eol);
    // 1. Exact.
    let exact: Vec<usize> = text.match_indices(old.as_str()).map(|(i, _)| i).collect();
    if !exact.is_empty() {
        let at = pick(&exact, h.occurrence, |&i| line_of(text, i))?;
        let mut out = String::with_capacity(text.len() + new.len());
        out.push_str(&text[..at]);
        out.push_str(&new);
        out.push_str(&text[at + old.len()..]);
        return Ok((out, None));
    }
    // 2. Without readFile's line numbers.
    if let Some(bare_old) = strip_line_numbers(&h.old) {
        let bare_new = strip_line_numbers(&h.new).unwrap_or_else(|| h.new.clone());
        let retry = Hunk {
            old: bare_old,
            new: bare_new,
            occurrence: h.occurrence,
        };
        if let Ok((out, notice)) = apply_one(text, &retry) {
            let mut n = "old_text carried readFile's `N: ` line numbers, which are not part of \
                         the file; they were removed before matching. Leave them out next time."
                .to_string();
            if let Some(more) = notice {
                n.push(' ');
                n.push_str(&more);
            }
            return Ok((out, Some(n)));
        }
    }
    // 3. Whole lines, whitespace aside.
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let want = trimmed_block(&h.old);
    let starts: Vec<usize> = (0..lines.len().saturating_sub(want.len() - 1))
        .filter(|&s| {
            want.iter()
                .enumerate()
                .all(|(j, w)| lines[s + j].trim() == w.trim())
        })
        .collect();
    if starts.is_empty() {
        return Err(err("not_found", not_found_message(&lines, &want)));
    }
    let start = pick(&starts, h.occurrence, |&s| s + 1)?;
    let end = start + want.len();
    let file_indent = indent_of(lines[start]);
    let model_indent = indent_of(want[0]);
    let mut body = String::new();
    let new_lf = h.new.replace("\r\n", "\n");
    for l in new_lf.lines() {
        match l.strip_prefix(model_indent) {
            Some(rest) if !l.trim().is_empty() => {
                body.push_str(file_indent);
                body.push_str(rest);
            }
            _ => body.push_str(l),
        }
        body.push_str(eol);
    }
    let last_unterminated = !lines[end - 1].ends_with('\n');
    if last_unterminated && body.ends_with(eol) {
        body.truncate(body.len() - eol.len());
    }
    let mut out: String = lines[..start].concat();
    out.push_str(&body);
    out.push_str(&lines[end..].concat());
    let notice = format!(
        "old_text matched lines {}-{} only when ignoring whitespace (indentation, trailing \
         spaces); new_text was re-indented to the file's indentation. Check the diff.",
        start + 1,
        end
    );
    Ok((out, Some(notice)))
}

/// The one match to replace, by `occurrence` or because it is the only one.
fn pick<T: Copy>(
    matches: &[T],
    occurrence: Option<usize>,
    line: impl Fn(&T) -> usize,
) -> Result<T, HunkError> {
    match occurrence {
        Some(n) if n >= 1 && n <= matches.len() => Ok(matches[n - 1]),
        Some(n) => Err(err(
            "bad_occurrence",
            format!(
                "occurrence {n} does not exist: old_text occurs {} time(s) (occurrence is 1-based)",
                matches.len()
            ),
        )),
        None if matches.len() == 1 => Ok(matches[0]),
        None => {
            let listed: Vec<String> = matches
                .iter()
                .take(AMBIGUOUS_MAX_LISTED)
                .map(|m| line(m).to_string())
                .collect();
            let more = if matches.len() > AMBIGUOUS_MAX_LISTED {
                ", ..."
            } else {
                ""
            };
            Err(err(
                "ambiguous",
                format!(
                    "old_text occurs {} times (at lines {}{more}); include more surrounding lines \
                     so that it is unique, or pass occurrence (1-based) to pick one",
                    matches.len(),
                    listed.join(", ")
                ),
            ))
        }
    }
}

/// 1-based line number of byte offset `at`.
fn line_of(text: &str, at: usize) -> usize {
    text[..at].matches('\n').count() + 1
}

fn indent_of(line: &str) -> &str {
    let n = line.len() - line.trim_start().len();
    &line[..n]
}

/// `old_text`'s lines without leading and trailing blank lines (at least one line: the caller
/// refused a blank `old_text`).
fn trimmed_block(s: &str) -> Vec<&str> {
    let lines: Vec<&str> = s.lines().collect();
    let first = lines.iter().position(|l| !l.trim().is_empty()).unwrap_or(0);
    let last = lines
        .iter()
        .rposition(|l| !l.trim().is_empty())
        .unwrap_or(first);
    lines[first..=last].to_vec()
}

/// `s` without a `N: ` prefix on every non-blank line, if every non-blank line has one.
fn strip_line_numbers(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut any = false;
    for l in s.split_inclusive('\n') {
        if l.trim().is_empty() {
            out.push_str(l);
            continue;
        }
        let digits = l.len() - l.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let rest = l[digits..].strip_prefix(": ").or_else(|| {
            // "12:" followed directly by the line's end (an empty line in readFile output).
            l[digits..]
                .strip_prefix(':')
                .filter(|r| r.trim().is_empty())
        });
        match rest {
            Some(rest) if digits > 0 => {
                out.push_str(rest);
                any = true;
            }
            _ => return None,
        }
    }
    any.then_some(out)
}

fn words(s: &str) -> std::collections::HashSet<&str> {
    s.split(|c: char| !c.is_alphanumeric() && c != '_')
        .filter(|w| !w.is_empty())
        .collect()
}

/// How alike two lines are, 0..=1 (shared words over all words; equal lines score 1).
fn likeness(a: &str, b: &str) -> f64 {
    if a.trim() == b.trim() {
        return 1.0;
    }
    let (wa, wb) = (words(a), words(b));
    let union = wa.union(&wb).count();
    if union == 0 {
        return 0.0;
    }
    wa.intersection(&wb).count() as f64 / union as f64
}

/// "not found", with the file's lines most like `want` (numbered as readFile numbers them), so
/// that the model can copy the right text.
fn not_found_message(lines: &[&str], want: &[&str]) -> String {
    let mut score = vec![0.0f64; lines.len()];
    // Score each window start by how alike its lines are to old_text's (first 20 lines suffice
    // to place it; the cost stays linear in the file).
    for (j, w) in want.iter().enumerate().take(20) {
        if w.trim().is_empty() {
            continue;
        }
        for (i, l) in lines.iter().enumerate().skip(j) {
            score[i - j] += likeness(l, w);
        }
    }
    let best = score
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .filter(|(_, s)| **s > 0.0)
        .map(|(i, _)| i);
    let head = "old_text was not found in the file (not even ignoring whitespace).";
    let Some(start) = best else {
        return format!(
            "{head} No line of the file resembles it: read the file with readFile and copy \
             old_text from it exactly, without the `N: ` line numbers."
        );
    };
    let end = (start + want.len().max(1))
        .min(lines.len())
        .min(start + CLOSEST_MAX_LINES);
    let shown: String = (start..end)
        .map(|i| format!("{}: {}\n", i + 1, lines[i].trim_end_matches(['\r', '\n'])))
        .collect();
    format!(
        "{head} The closest lines are {}-{}:\n{shown}Copy old_text exactly from the file \
         (without the `N: ` line numbers) and try again.",
        start + 1,
        end
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(old: &str, new: &str) -> Vec<Hunk> {
        vec![Hunk {
            old: old.into(),
            new: new.into(),
            occurrence: None,
        }]
    }

    const PY: &str =
        "def area(r):\n    return 3.14 * r * r\n\n\ndef perimeter(r):\n    return 2 * 3.14 * r\n";

    #[test]
    fn exact_match_replaces_only_that_text() {
        let e = apply_hunks(PY, &one("3.14 * r * r", "math.pi * r ** 2")).unwrap();
        assert_eq!(
            e.text,
            PY.replace("3.14 * r * r", "math.pi * r ** 2"),
            "the rest of the file is kept"
        );
        assert!(e.notices.is_empty());
    }

    #[test]
    fn missing_old_text_shows_the_closest_lines() {
        let e = apply_hunks(
            PY,
            &one("def perimeter(radius):\n    return 2*pi*radius", "x"),
        )
        .unwrap_err();
        assert_eq!(e.code, "not_found");
        assert!(e.message.contains("closest lines are 5-6"), "{}", e.message);
        assert!(e.message.contains("5: def perimeter(r):"), "{}", e.message);
        let e = apply_hunks(PY, &one("zzz qqq", "x")).unwrap_err();
        assert!(
            e.message.contains("No line of the file resembles"),
            "{}",
            e.message
        );
    }

    #[test]
    fn ambiguous_old_text_is_counted_and_occurrence_picks_one() {
        let e = apply_hunks(PY, &one("3.14", "PI")).unwrap_err();
        assert_eq!(e.code, "ambiguous");
        assert!(
            e.message.contains("occurs 2 times (at lines 2, 6)"),
            "{}",
            e.message
        );
        let picked = apply_hunks(
            PY,
            &[Hunk {
                old: "3.14".into(),
                new: "PI".into(),
                occurrence: Some(2),
            }],
        )
        .unwrap();
        assert_eq!(picked.text, PY.replace("2 * 3.14", "2 * PI"));
        let e = apply_hunks(
            PY,
            &[Hunk {
                old: "3.14".into(),
                new: "PI".into(),
                occurrence: Some(3),
            }],
        )
        .unwrap_err();
        assert_eq!(e.code, "bad_occurrence");
    }

    #[test]
    fn whitespace_differences_are_tolerated_with_a_notice() {
        // The model dropped the indentation and added trailing spaces.
        let e = apply_hunks(
            PY,
            &one(
                "return 2 * 3.14 * r   \n",
                "# perimeter\nreturn 2 * math.pi * r\n",
            ),
        )
        .unwrap();
        assert_eq!(
            e.text,
            PY.replace(
                "    return 2 * 3.14 * r\n",
                "    # perimeter\n    return 2 * math.pi * r\n"
            )
        );
        assert_eq!(e.notices.len(), 1);
        assert!(
            e.notices[0].contains("ignoring whitespace"),
            "{:?}",
            e.notices
        );
        assert!(e.notices[0].contains("lines 6-6"), "{:?}", e.notices);
    }

    #[test]
    fn crlf_files_match_lf_text_and_keep_crlf() {
        let crlf = "a\r\nb\r\nc\r\n";
        let e = apply_hunks(crlf, &one("a\nb\n", "x\ny\nz\n")).unwrap();
        assert_eq!(e.text, "x\r\ny\r\nz\r\nc\r\n");
        assert!(e.notices.is_empty());
    }

    #[test]
    fn read_file_line_numbers_are_stripped_with_a_notice() {
        let e = apply_hunks(
            PY,
            &one("5: def perimeter(r):\n6:     return 2 * 3.14 * r", "6: x"),
        )
        .unwrap();
        assert_eq!(
            e.text,
            PY.replace("def perimeter(r):\n    return 2 * 3.14 * r", "x")
        );
        assert!(e.notices[0].contains("line numbers"), "{:?}", e.notices);
    }

    #[test]
    fn several_edits_apply_in_order_all_or_none() {
        let ok = apply_hunks(
            PY,
            &[
                Hunk {
                    old: "def area(r)".into(),
                    new: "def area(radius)".into(),
                    occurrence: None,
                },
                Hunk {
                    old: "3.14 * r * r".into(),
                    new: "3.14 * radius * radius".into(),
                    occurrence: None,
                },
            ],
        )
        .unwrap();
        assert!(
            ok.text
                .starts_with("def area(radius):\n    return 3.14 * radius * radius\n")
        );
        let bad = apply_hunks(
            PY,
            &[
                Hunk {
                    old: "def area(r)".into(),
                    new: "def area(radius)".into(),
                    occurrence: None,
                },
                Hunk {
                    old: "no such line".into(),
                    new: "x".into(),
                    occurrence: None,
                },
            ],
        )
        .unwrap_err();
        assert_eq!(bad.code, "not_found");
        assert!(bad.message.starts_with("edit 2 of 2:"), "{}", bad.message);
        assert!(
            bad.message.contains("No edit of the file was made"),
            "{}",
            bad.message
        );
    }

    #[test]
    fn empty_old_text_is_refused() {
        assert_eq!(
            apply_hunks(PY, &one("  \n", "x")).unwrap_err().code,
            "bad_arguments"
        );
    }

    #[test]
    fn deleting_lines_and_unterminated_last_lines() {
        let e = apply_hunks("a\n  b\nc", &one("c", "")).unwrap();
        assert_eq!(e.text, "a\n  b\n");
        let e = apply_hunks("a\n  b", &one("b  ", "B")).unwrap();
        assert_eq!(e.text, "a\n  B");
    }
}
