//! PEP 508 requirement strings (the subset that carries a version pin) and PEP 440
//! version specifiers, with byte spans so callers can edit the exact version text.

use std::ops::Range;

use super::version::Version;

/// PEP 503 normalisation: `re.sub(r"[-_.]+", "-", name).lower()`.
pub fn normalize_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut in_run = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !in_run {
                out.push('-');
            }
            in_run = true;
        } else {
            out.extend(c.to_lowercase());
            in_run = false;
        }
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `===`: arbitrary string equality.
    Arbitrary,
    Eq,
    Ne,
    Compatible,
    Le,
    Ge,
    Lt,
    Gt,
}

/// One `op version` clause.
#[derive(Debug, Clone)]
pub struct Specifier {
    pub op: Op,
    /// The version text exactly as written (for `==1.2.*`, including `.*`).
    pub text: String,
    /// Span of `text` within the parsed requirement string.
    pub span: Range<usize>,
    /// `==1.2.*` / `!=1.2.*`.
    pub wildcard: bool,
    /// The parsed version (for a wildcard, the prefix before `.*`).
    pub version: Version,
}

impl Specifier {
    /// Does `v` satisfy this clause? A close-enough PEP 440 reading: the pre-release
    /// subtleties of `<`/`>` are honoured, `===` compares normal forms.
    pub fn contains(&self, v: &Version) -> bool {
        let spec = &self.version;
        let cand = if spec.is_local() {
            v.clone()
        } else {
            v.public()
        };
        match self.op {
            Op::Arbitrary => self.text.trim().eq_ignore_ascii_case(&v.to_string()),
            Op::Eq if self.wildcard => prefix_match(spec, v),
            Op::Ne if self.wildcard => !prefix_match(spec, v),
            Op::Eq => cand == *spec,
            Op::Ne => cand != *spec,
            Op::Le => cand <= *spec,
            Op::Ge => cand >= *spec,
            Op::Lt => {
                cand < *spec
                    && !(!spec.is_prerelease() && v.is_prerelease() && v.base() == spec.base())
            }
            Op::Gt => {
                cand > *spec
                    && !(spec.post().is_none() && v.post().is_some() && v.base() == spec.base())
            }
            Op::Compatible => {
                let rel = spec.release();
                let prefix = Version::from_release(spec.epoch(), rel[..rel.len() - 1].to_vec());
                cand >= *spec && prefix_match(&prefix, v)
            }
        }
    }
}

/// `==prefix.*`: same epoch, and the release (zero-padded) starts with the prefix's.
fn prefix_match(prefix: &Version, v: &Version) -> bool {
    if prefix.epoch() != v.epoch() {
        return false;
    }
    let want = prefix.release();
    (0..want.len()).all(|i| v.release().get(i).copied().unwrap_or(0) == want[i])
}

/// A requirement that names a project and (maybe) constrains its version.
#[derive(Debug, Clone)]
pub struct Requirement {
    pub name: String,
    pub specifiers: Vec<Specifier>,
}

/// Parses `name [extras] specifiers [; markers]` (specifiers optionally in parentheses).
/// Returns `None` for anything else (direct `@ url` references, paths, malformed text,
/// unparseable versions): callers leave those untouched.
pub fn parse_requirement(s: &str) -> Option<Requirement> {
    let b = s.as_bytes();
    let mut i = skip_ws(b, 0);
    let name_start = i;
    while i < b.len() && (b[i].is_ascii_alphanumeric() || matches!(b[i], b'-' | b'_' | b'.')) {
        i += 1;
    }
    if i == name_start
        || !b[name_start].is_ascii_alphanumeric()
        || !b[i - 1].is_ascii_alphanumeric()
    {
        return None;
    }
    let name = s[name_start..i].to_string();
    i = skip_ws(b, i);
    if b.get(i) == Some(&b'[') {
        let close = s[i..].find(']')? + i;
        let extras = &s[i + 1..close];
        let valid = extras.split(',').map(str::trim).all(|e| {
            e.is_empty()
                || e.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(&c))
        });
        if !valid {
            return None;
        }
        i = skip_ws(b, close + 1);
    }
    let paren = b.get(i) == Some(&b'(');
    if paren {
        i += 1;
    }
    let mut specifiers = Vec::new();
    loop {
        i = skip_ws(b, i);
        let Some((op, len)) = read_op(&b[i..]) else {
            break;
        };
        i = skip_ws(b, i + len);
        let start = i;
        while i < b.len() && (b[i].is_ascii_alphanumeric() || b"-_.*+!".contains(&b[i])) {
            i += 1;
        }
        if start == i {
            return None;
        }
        specifiers.push(make_specifier(op, &s[start..i], start..i)?);
        let after = skip_ws(b, i);
        if b.get(after) == Some(&b',') {
            i = after + 1;
        } else {
            i = after;
            break;
        }
    }
    i = skip_ws(b, i);
    if paren {
        if b.get(i) != Some(&b')') {
            return None;
        }
        i = skip_ws(b, i + 1);
    }
    // Whatever follows must be environment markers; `@` (direct reference) and anything
    // else means this is not a plain versioned requirement.
    if i < b.len() && b[i] != b';' {
        return None;
    }
    Some(Requirement { name, specifiers })
}

fn make_specifier(op: Op, text: &str, span: Range<usize>) -> Option<Specifier> {
    let (core, wildcard) = match text.strip_suffix(".*") {
        Some(core) if matches!(op, Op::Eq | Op::Ne) => (core, true),
        _ => (text, false),
    };
    let version = Version::parse(core).ok()?;
    if wildcard && (version.pre().is_some() || version.post().is_some() || version.dev().is_some())
    {
        return None;
    }
    if op == Op::Compatible && (version.release().len() < 2 || version.is_local()) {
        return None;
    }
    Some(Specifier {
        op,
        text: text.to_string(),
        span,
        wildcard,
        version,
    })
}

fn read_op(b: &[u8]) -> Option<(Op, usize)> {
    const OPS: &[(&str, Op)] = &[
        ("===", Op::Arbitrary),
        ("==", Op::Eq),
        ("!=", Op::Ne),
        ("~=", Op::Compatible),
        ("<=", Op::Le),
        (">=", Op::Ge),
        ("<", Op::Lt),
        (">", Op::Gt),
    ];
    OPS.iter()
        .find(|(text, _)| b.starts_with(text.as_bytes()))
        .map(|(text, op)| (*op, text.len()))
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && (b[i] == b' ' || b[i] == b'\t') {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    fn spec(s: &str) -> Specifier {
        let req = parse_requirement(&format!("x{s}")).unwrap();
        req.specifiers.into_iter().next().unwrap()
    }

    #[test]
    fn pep503_normalisation() {
        assert_eq!(normalize_name("Django"), "django");
        assert_eq!(normalize_name("zope.interface"), "zope-interface");
        assert_eq!(normalize_name("Foo__Bar-.baz"), "foo-bar-baz");
    }

    #[test]
    fn parses_requirement_shapes_with_spans() {
        let s = r#"pkg[extra, other] (>= 1.0 , !=2.0.*) ; python_version >= "3.8""#;
        let req = parse_requirement(s).unwrap();
        assert_eq!(req.name, "pkg");
        assert_eq!(req.specifiers.len(), 2);
        assert_eq!(&s[req.specifiers[0].span.clone()], "1.0");
        assert_eq!(req.specifiers[1].op, Op::Ne);
        assert!(req.specifiers[1].wildcard);
        let s = "numpy ~= 1.26.0";
        let req = parse_requirement(s).unwrap();
        assert_eq!(req.specifiers[0].op, Op::Compatible);
        assert_eq!(&s[req.specifiers[0].span.clone()], "1.26.0");
        assert!(parse_requirement("requests").unwrap().specifiers.is_empty());
    }

    #[test]
    fn refuses_non_requirements() {
        for s in [
            "pkg @ https://example.com/pkg.whl",
            "./local/path",
            "https://example.com/x.tar.gz",
            "git+https://github.com/a/b",
            "pkg==",
            "pkg==latest",
            "pkg[bad extra]==1",
            "-pkg==1",
            "pkg==1.0 garbage",
            "pkg~=1",
        ] {
            assert!(parse_requirement(s).is_none(), "{s}");
        }
    }

    #[test]
    fn specifier_semantics() {
        assert!(spec("==1.0").contains(&v("1.0.0")));
        assert!(spec("==1.0").contains(&v("1.0+local")));
        assert!(spec("==1.2.*").contains(&v("1.2.9")));
        assert!(!spec("==1.2.*").contains(&v("1.3")));
        assert!(spec("!=1.2.*").contains(&v("1.3")));
        assert!(spec("~=1.4.5").contains(&v("1.4.9")));
        assert!(!spec("~=1.4.5").contains(&v("1.5.0")));
        assert!(spec("~=1.4").contains(&v("1.9")));
        assert!(!spec("~=1.4").contains(&v("2.0")));
        assert!(spec("<5").contains(&v("4.9")));
        assert!(!spec("<5").contains(&v("5.0a1")));
        assert!(!spec(">1.0").contains(&v("1.0.post1")));
        assert!(spec(">1.0").contains(&v("1.0.1")));
        assert!(spec(">=1.0,<2").contains(&v("1.0")));
        assert!(spec("===1.0").contains(&v("1.0")));
    }
}
