//! Pins in pip `requirements*.txt` files, read the way pip reads them (comments,
//! `\` continuations, per-requirement options) but edited only at the version bytes,
//! so everything else (line endings, spacing, comments) survives byte-for-byte.

use std::ops::Range;

use super::pin::Pin;
use super::spec::parse_requirement;

/// Every raisable pin in a requirements file, in file order.
pub fn find_pins(content: &str) -> Vec<Pin> {
    logical_lines(content)
        .iter()
        .filter_map(pin_in_line)
        .collect()
}

/// One logical line: physical lines joined at `\` continuations, with a map back to
/// file offsets (the `\` and the line break are not part of the text).
struct LogicalLine {
    text: String,
    /// (offset in `text`, offset in the file, length) for each physical piece.
    pieces: Vec<(usize, usize, usize)>,
}

impl LogicalLine {
    /// File span of a text span; `None` if it straddles a continuation.
    fn to_file(&self, span: Range<usize>) -> Option<Range<usize>> {
        self.pieces
            .iter()
            .find(|(at, _, len)| *at <= span.start && span.end <= at + len)
            .map(|(at, file, _)| file + span.start - at..file + span.end - at)
    }
}

fn logical_lines(content: &str) -> Vec<LogicalLine> {
    let mut lines = Vec::new();
    let mut current: Option<LogicalLine> = None;
    let mut offset = 0;
    for chunk in content.split_inclusive('\n') {
        let body = chunk.strip_suffix('\n').unwrap_or(chunk);
        let body = body.strip_suffix('\r').unwrap_or(body);
        let line = current.get_or_insert_with(|| LogicalLine {
            text: String::new(),
            pieces: Vec::new(),
        });
        // pip: a comment line never continues, even if it ends with a backslash.
        let continues = body.ends_with('\\') && !body.trim_start().starts_with('#');
        let piece = if continues {
            &body[..body.len() - 1]
        } else {
            body
        };
        line.pieces.push((line.text.len(), offset, piece.len()));
        line.text.push_str(piece);
        if !continues {
            lines.extend(current.take());
        }
        offset += chunk.len();
    }
    lines.extend(current);
    lines
}

fn pin_in_line(line: &LogicalLine) -> Option<Pin> {
    let text = strip_comment(&line.text);
    let options_at = first_option(text);
    let requirement = &text[..options_at];
    if requirement.trim().is_empty() {
        // Blank, comment, or an option line (`-r`, `-e .`, `--index-url`, ...).
        return None;
    }
    let options = &text[options_at..];
    let mut pin = Pin::from_requirement(parse_requirement(requirement)?, |s| line.to_file(s))?;
    pin.hashed = options.contains("--hash");
    Some(pin)
}

/// pip's comment rule: `#` at the start of the line or after whitespace.
fn strip_comment(text: &str) -> &str {
    let b = text.as_bytes();
    let at = (0..b.len()).find(|&i| b[i] == b'#' && (i == 0 || b[i - 1].is_ascii_whitespace()));
    &text[..at.unwrap_or(b.len())]
}

/// Where the options begin: the first whitespace-separated token starting with `-`
/// (pip splits a line into requirement and options the same way).
fn first_option(text: &str) -> usize {
    let b = text.as_bytes();
    (0..b.len())
        .find(|&i| b[i] == b'-' && (i == 0 || b[i - 1].is_ascii_whitespace()))
        .unwrap_or(b.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (current version text as found in the file, hashed?) for each pin.
    fn found(content: &str) -> Vec<(String, String, bool)> {
        find_pins(content)
            .into_iter()
            .map(|p| {
                (
                    p.project.clone(),
                    content[p.span.clone()].to_string(),
                    p.hashed,
                )
            })
            .collect()
    }

    fn pins(list: &[(&str, &str)]) -> Vec<(String, String, bool)> {
        list.iter()
            .map(|(p, v)| (p.to_string(), v.to_string(), false))
            .collect()
    }

    #[test]
    fn finds_pins_in_real_world_shapes() {
        let content = concat!(
            "# top comment\r\n",
            "\r\n",
            "requests==2.31.0\r\n",
            "Django>=4.2,<5\n",
            "numpy ~= 1.26.0\n",
            "pkg[extra]==1.0 ; python_version >= \"3.8\"  # comment\n",
            "-r other.txt\n",
            "--index-url https://example.com/simple\n",
            "-e .\n",
            "./vendored/thing\n",
            "https://example.com/pkg-1.0.tar.gz#egg=pkg\n",
            "direct @ https://example.com/direct-1.0.whl\n",
            "unpinned\n",
            "Zope.Interface == 5.0 \\\n",
            "    --hash=sha256:abc\n",
            "split==\\\n",
            "3.0\n",
            "# commented==1.0 \\\n",
            "after==2.0\n",
            "wild==1.*\n",
            "flask>=2.0 # why",
        );
        assert_eq!(
            found(content),
            vec![
                ("requests".into(), "2.31.0".into(), false),
                ("django".into(), "4.2".into(), false),
                ("numpy".into(), "1.26.0".into(), false),
                ("pkg".into(), "1.0".into(), false),
                ("zope-interface".into(), "5.0".into(), true),
                ("split".into(), "3.0".into(), false),
                ("after".into(), "2.0".into(), false),
                ("flask".into(), "2.0".into(), false),
            ]
        );
    }

    #[test]
    fn hash_in_fragment_is_not_a_comment() {
        assert_eq!(found("pkg==1.0#not-a-comment\n"), pins(&[]));
        assert_eq!(found("pkg==1.0\t# tab comment\n"), pins(&[("pkg", "1.0")]));
    }

    #[test]
    fn empty_and_unterminated() {
        assert!(found("").is_empty());
        assert_eq!(found("a==1"), pins(&[("a", "1")]));
        assert_eq!(found("a==1\\"), pins(&[("a", "1")]));
    }
}
