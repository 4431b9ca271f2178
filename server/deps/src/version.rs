//! A PEP 440 version: parsing (with the spec's normalisation rules) and ordering.
//!
//! Only what a dependency bumper needs: real-world pins must parse, and ordering must
//! match pip's (`packaging`) exactly, or we would "upgrade" to an older release.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

/// Why a string is not a PEP 440 version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{input}` is not a PEP 440 version: {reason}")]
pub struct VersionError {
    pub input: String,
    pub reason: &'static str,
}

/// Pre-release phase; the derive order is the PEP 440 order (a < b < rc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PreKind {
    Alpha,
    Beta,
    Rc,
}

impl PreKind {
    fn as_str(self) -> &'static str {
        match self {
            PreKind::Alpha => "a",
            PreKind::Beta => "b",
            PreKind::Rc => "rc",
        }
    }
}

/// One dot-separated part of a local label. The derive order puts strings before
/// numbers, which is what PEP 440 asks for (numeric segments sort higher).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LocalSegment {
    Str(String),
    Num(u64),
}

/// A parsed, normalised PEP 440 version. Equality and ordering follow PEP 440
/// (`1.0 == 1.0.0`, `1.0.dev0 < 1.0a1 < 1.0 < 1.0.post1`), not string equality.
#[derive(Debug, Clone)]
pub struct Version {
    epoch: u64,
    release: Vec<u64>,
    pre: Option<(PreKind, u64)>,
    post: Option<u64>,
    dev: Option<u64>,
    /// Empty when there is no local label (PEP 440 gives a label-less version the lowest rank).
    local: Vec<LocalSegment>,
}

impl Version {
    pub fn parse(input: &str) -> Result<Version, VersionError> {
        Parser::new(input).parse()
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    pub fn release(&self) -> &[u64] {
        &self.release
    }

    pub fn pre(&self) -> Option<(PreKind, u64)> {
        self.pre
    }

    pub fn post(&self) -> Option<u64> {
        self.post
    }

    pub fn dev(&self) -> Option<u64> {
        self.dev
    }

    /// Pre-releases and dev releases: what pip refuses by default, and so do we.
    pub fn is_prerelease(&self) -> bool {
        self.pre.is_some() || self.dev.is_some()
    }

    /// Local versions (`1.0+cu121`) are not meant for public indexes; never chosen.
    pub fn is_local(&self) -> bool {
        !self.local.is_empty()
    }

    /// The same version without its local label (what `==` compares when the
    /// specifier itself has no local label).
    pub fn public(&self) -> Version {
        Version {
            local: Vec::new(),
            ..self.clone()
        }
    }

    /// Epoch and release only (`1!2.0rc1.post3` -> `1!2.0`).
    pub fn base(&self) -> Version {
        Version {
            epoch: self.epoch,
            release: self.release.clone(),
            pre: None,
            post: None,
            dev: None,
            local: Vec::new(),
        }
    }

    /// A final release with this epoch and these release numbers.
    pub fn from_release(epoch: u64, release: Vec<u64>) -> Version {
        Version {
            epoch,
            release,
            pre: None,
            post: None,
            dev: None,
            local: Vec::new(),
        }
    }

    fn key(&self) -> Key<'_> {
        let mut n = self.release.len();
        while n > 1 && self.release[n - 1] == 0 {
            n -= 1;
        }
        let pre = match (self.pre, self.post, self.dev) {
            // `1.0.dev0` sorts before `1.0a0`: a dev release of the final comes first.
            (None, None, Some(_)) => PreKey::NegInf,
            (None, _, _) => PreKey::PosInf,
            (Some((kind, n)), _, _) => PreKey::Pre(kind, n),
        };
        Key {
            epoch: self.epoch,
            release: &self.release[..n],
            pre,
            post: self.post,
            dev: self.dev.map_or(DevKey::PosInf, DevKey::Dev),
            local: &self.local,
        }
    }
}

/// Is `from -> to` a major upgrade? The first release number changes (or the epoch);
/// for `0.x` the second one does too, because `0.x` projects break on minor bumps.
pub fn is_major_bump(from: &Version, to: &Version) -> bool {
    let seg = |v: &Version, i: usize| v.release.get(i).copied().unwrap_or(0);
    if from.epoch != to.epoch || seg(from, 0) != seg(to, 0) {
        return true;
    }
    seg(from, 0) == 0 && seg(from, 1) != seg(to, 1)
}

/// The comparison key, in PEP 440 field order; derived `Ord` compares field by field.
#[derive(PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Key<'a> {
    epoch: u64,
    release: &'a [u64],
    pre: PreKey,
    post: Option<u64>,
    dev: DevKey,
    local: &'a [LocalSegment],
}

#[derive(PartialEq, Eq, PartialOrd, Ord, Hash)]
enum PreKey {
    NegInf,
    Pre(PreKind, u64),
    PosInf,
}

#[derive(PartialEq, Eq, PartialOrd, Ord, Hash)]
enum DevKey {
    Dev(u64),
    PosInf,
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Version {}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key())
    }
}

impl Hash for Version {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key().hash(state)
    }
}

impl FromStr for Version {
    type Err = VersionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Version::parse(s)
    }
}

/// The PEP 440 normal form (`1.0-alpha.1` -> `1.0a1`, `1.0-1` -> `1.0.post1`).
impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.epoch != 0 {
            write!(f, "{}!", self.epoch)?;
        }
        let release: Vec<String> = self.release.iter().map(u64::to_string).collect();
        f.write_str(&release.join("."))?;
        if let Some((kind, n)) = self.pre {
            write!(f, "{}{n}", kind.as_str())?;
        }
        if let Some(n) = self.post {
            write!(f, ".post{n}")?;
        }
        if let Some(n) = self.dev {
            write!(f, ".dev{n}")?;
        }
        if !self.local.is_empty() {
            let local: Vec<String> = self
                .local
                .iter()
                .map(|s| match s {
                    LocalSegment::Str(s) => s.clone(),
                    LocalSegment::Num(n) => n.to_string(),
                })
                .collect();
            write!(f, "+{}", local.join("."))?;
        }
        Ok(())
    }
}

/// A hand-written cursor parser that follows the PEP 440 "permissive" regex
/// (case-insensitive, optional separators, implicit numbers, leading `v`).
struct Parser<'a> {
    input: &'a str,
    s: Vec<u8>,
    pos: usize,
}

const SEPARATORS: &[u8] = b"-_.";

impl<'a> Parser<'a> {
    fn new(input: &'a str) -> Self {
        Parser {
            input,
            s: input.trim().to_ascii_lowercase().into_bytes(),
            pos: 0,
        }
    }

    fn err(&self, reason: &'static str) -> VersionError {
        VersionError {
            input: self.input.to_string(),
            reason,
        }
    }

    fn parse(mut self) -> Result<Version, VersionError> {
        if self.s.is_empty() {
            return Err(self.err("empty"));
        }
        if self.peek() == Some(b'v') {
            self.pos += 1;
        }
        let first = self
            .number()?
            .ok_or_else(|| self.err("no release number"))?;
        let (epoch, mut release) = if self.peek() == Some(b'!') {
            self.pos += 1;
            let n = self
                .number()?
                .ok_or_else(|| self.err("no release after epoch"))?;
            (first, vec![n])
        } else {
            (0, vec![first])
        };
        while self.peek() == Some(b'.') && self.peek_at(1).is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
            release.push(self.number()?.unwrap_or(0));
        }
        let pre = self.pre()?;
        let post = self.post()?;
        let dev = self.dev()?;
        let local = self.local()?;
        if self.pos != self.s.len() {
            return Err(self.err("unexpected trailing characters"));
        }
        Ok(Version {
            epoch,
            release,
            pre,
            post,
            dev,
            local,
        })
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn peek_at(&self, off: usize) -> Option<u8> {
        self.s.get(self.pos + off).copied()
    }

    fn number(&mut self) -> Result<Option<u64>, VersionError> {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        if start == self.pos {
            return Ok(None);
        }
        let digits = std::str::from_utf8(&self.s[start..self.pos]).unwrap_or("");
        digits
            .parse()
            .map(Some)
            .map_err(|_| self.err("number too large"))
    }

    /// Consumes one of `labels` (after an optional separator); restores on failure.
    fn label(&mut self, labels: &[&str]) -> Option<usize> {
        let save = self.pos;
        if self.peek().is_some_and(|c| SEPARATORS.contains(&c)) {
            self.pos += 1;
        }
        for (i, l) in labels.iter().enumerate() {
            if self.s[self.pos..].starts_with(l.as_bytes()) {
                self.pos += l.len();
                return Some(i);
            }
        }
        self.pos = save;
        None
    }

    /// The number after a label; a separator is only consumed if digits follow it.
    fn label_number(&mut self) -> Result<u64, VersionError> {
        if self.peek().is_some_and(|c| SEPARATORS.contains(&c))
            && self.peek_at(1).is_some_and(|c| c.is_ascii_digit())
        {
            self.pos += 1;
        }
        Ok(self.number()?.unwrap_or(0))
    }

    fn pre(&mut self) -> Result<Option<(PreKind, u64)>, VersionError> {
        // Longest first, so `alpha` is not read as `a` + garbage.
        const LABELS: &[(&str, PreKind)] = &[
            ("preview", PreKind::Rc),
            ("alpha", PreKind::Alpha),
            ("beta", PreKind::Beta),
            ("pre", PreKind::Rc),
            ("rc", PreKind::Rc),
            ("a", PreKind::Alpha),
            ("b", PreKind::Beta),
            ("c", PreKind::Rc),
        ];
        let names: Vec<&str> = LABELS.iter().map(|(l, _)| *l).collect();
        match self.label(&names) {
            Some(i) => Ok(Some((LABELS[i].1, self.label_number()?))),
            None => Ok(None),
        }
    }

    fn post(&mut self) -> Result<Option<u64>, VersionError> {
        // Implicit post release: `1.0-1`.
        if self.peek() == Some(b'-') && self.peek_at(1).is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
            return self.number();
        }
        match self.label(&["post", "rev", "r"]) {
            Some(_) => Ok(Some(self.label_number()?)),
            None => Ok(None),
        }
    }

    fn dev(&mut self) -> Result<Option<u64>, VersionError> {
        match self.label(&["dev"]) {
            Some(_) => Ok(Some(self.label_number()?)),
            None => Ok(None),
        }
    }

    fn local(&mut self) -> Result<Vec<LocalSegment>, VersionError> {
        if self.peek() != Some(b'+') {
            return Ok(Vec::new());
        }
        self.pos += 1;
        let mut segments = Vec::new();
        loop {
            let start = self.pos;
            while self.peek().is_some_and(|c| c.is_ascii_alphanumeric()) {
                self.pos += 1;
            }
            if start == self.pos {
                return Err(self.err("empty local version segment"));
            }
            let text = std::str::from_utf8(&self.s[start..self.pos]).unwrap_or("");
            segments.push(match text.parse::<u64>() {
                Ok(n) if text.bytes().all(|c| c.is_ascii_digit()) => LocalSegment::Num(n),
                _ => LocalSegment::Str(text.to_string()),
            });
            if self.peek().is_some_and(|c| SEPARATORS.contains(&c)) {
                self.pos += 1;
            } else {
                return Ok(segments);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn normalises_real_world_spellings() {
        let cases = [
            ("1.2.3", "1.2.3"),
            ("v1.0", "1.0"),
            ("  2.0  ", "2.0"),
            ("1!2.0", "1!2.0"),
            ("1.0a1", "1.0a1"),
            ("1.0-alpha.1", "1.0a1"),
            ("1.0.beta2", "1.0b2"),
            ("1.0_c3", "1.0rc3"),
            ("1.0pre4", "1.0rc4"),
            ("1.0-preview5", "1.0rc5"),
            ("1.0RC1", "1.0rc1"),
            ("1.0a", "1.0a0"),
            ("1.0-1", "1.0.post1"),
            ("1.0.post", "1.0.post0"),
            ("1.0-r2", "1.0.post2"),
            ("1.0rev3", "1.0.post3"),
            ("1.0.dev", "1.0.dev0"),
            ("1.0-dev-7", "1.0.dev7"),
            ("1.0a.post1", "1.0a0.post1"),
            ("1.0rc1.post2.dev3", "1.0rc1.post2.dev3"),
            ("1.0+Ubuntu-1", "1.0+ubuntu.1"),
            ("2024.10.01", "2024.10.1"),
        ];
        for (input, want) in cases {
            assert_eq!(v(input).to_string(), want, "{input}");
        }
    }

    #[test]
    fn rejects_non_versions() {
        for bad in [
            "", "latest", "1.0.x", "1..0", "1.0+", "1.0+a..b", "1.0 2", "!1", "1.*",
        ] {
            assert!(Version::parse(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn pep440_ordering() {
        // Strictly increasing, from the PEP 440 / packaging test suites.
        let ordered = [
            "1.0.dev456",
            "1.0a1",
            "1.0a2.dev456",
            "1.0a12.dev456",
            "1.0a12",
            "1.0b1.dev456",
            "1.0b2",
            "1.0b2.post345.dev456",
            "1.0b2.post345",
            "1.0rc1.dev456",
            "1.0rc1",
            "1.0",
            "1.0+abc.5",
            "1.0+abc.7",
            "1.0+5",
            "1.0.post456.dev34",
            "1.0.post456",
            "1.0.15",
            "1.1.dev1",
            "1.10",
            "2!0.1",
        ];
        for pair in ordered.windows(2) {
            assert!(v(pair[0]) < v(pair[1]), "{} < {}", pair[0], pair[1]);
        }
    }

    #[test]
    fn equality_ignores_trailing_zeros_and_spelling() {
        assert_eq!(v("1.0"), v("1.0.0"));
        assert_eq!(v("1"), v("1.0.0.0"));
        assert_eq!(v("1.0-alpha1"), v("1.0a1"));
        assert_ne!(v("1.0"), v("1.0+local"));
        assert_eq!(v("1.0+local").public(), v("1.0"));
    }

    #[test]
    fn prerelease_and_local_flags() {
        assert!(v("1.0a1").is_prerelease());
        assert!(v("1.0.dev0").is_prerelease());
        assert!(v("1.0.post1.dev0").is_prerelease());
        assert!(!v("1.0.post1").is_prerelease());
        assert!(v("1.0+cu121").is_local());
    }

    #[test]
    fn major_bumps() {
        assert!(is_major_bump(&v("1.9"), &v("2.0")));
        assert!(!is_major_bump(&v("1.2"), &v("1.30.1")));
        assert!(is_major_bump(&v("0.3.1"), &v("0.4.0")));
        assert!(!is_major_bump(&v("0.3.1"), &v("0.3.9")));
        assert!(is_major_bump(&v("0.9"), &v("1.0")));
        assert!(is_major_bump(&v("1.0"), &v("1!1.0")));
        assert!(!is_major_bump(&v("0"), &v("0.0.5")));
    }
}
