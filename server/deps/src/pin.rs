//! A version pin found in a file, and the choice of the version to raise it to.

use std::ops::Range;

use super::spec::{Op, Requirement, Specifier, normalize_name};
use super::version::{Version, is_major_bump};

/// Where a dependency string in `pyproject.toml` lives: its TOML path and decoded value,
/// and the file offset where the string's contents start (just after the opening quote).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TomlEntry {
    pub path: Vec<PathSeg>,
    pub value: String,
    pub inner_start: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSeg {
    Key(String),
    Index(usize),
}

/// One requirement with a raisable version: its `==` pin, else its `~=` pin, else the
/// lower bound of its `>=` (in that order of preference; other clauses constrain).
#[derive(Debug, Clone)]
pub struct Pin {
    /// PEP 503-normalised project name (the index key).
    pub project: String,
    pub specifiers: Vec<Specifier>,
    /// Index of the clause whose version gets raised.
    pub anchor: usize,
    /// Byte span of that clause's version text in the whole file.
    pub span: Range<usize>,
    /// The requirements line carries `--hash` options, which a new version would break.
    pub hashed: bool,
    /// For `pyproject.toml`: the TOML string this pin lives in (for the post-edit check).
    pub toml: Option<TomlEntry>,
}

impl Pin {
    /// `None` when nothing may be raised: no pin, `===`, wildcard-only, or a local
    /// version (`torch==2.1.0+cu121` names one specific build). `to_file` maps a span
    /// of the requirement string to file offsets (`None` if it cannot be mapped).
    pub fn from_requirement(
        req: Requirement,
        to_file: impl Fn(Range<usize>) -> Option<Range<usize>>,
    ) -> Option<Pin> {
        let specs = &req.specifiers;
        if specs.iter().any(|s| s.op == Op::Arbitrary) {
            return None;
        }
        let anchor = [Op::Eq, Op::Compatible, Op::Ge]
            .iter()
            .find_map(|op| specs.iter().position(|s| s.op == *op && !s.wildcard))?;
        if specs[anchor].version.is_local() {
            return None;
        }
        let span = to_file(specs[anchor].span.clone())?;
        Some(Pin {
            project: normalize_name(&req.name),
            span,
            anchor,
            specifiers: req.specifiers,
            hashed: false,
            toml: None,
        })
    }

    pub fn current(&self) -> &Specifier {
        &self.specifiers[self.anchor]
    }
}

/// What to do with one pin, given the versions the index offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    Keep,
    Raise {
        /// The text to write in place of the current version.
        text: String,
        major: bool,
        /// A newer major version exists but majors are not allowed (for a warning).
        held_back: Option<Version>,
    },
    /// Only a (refused) major bump is available.
    HeldBack(Version),
}

/// Picks the newest acceptable version: newer than the pin, not local, not a
/// pre/dev release unless the pin is one, within the requirement's other clauses,
/// and not a major bump unless allowed.
pub fn choose(pin: &Pin, available: &[Version], allow_major: bool) -> Choice {
    let current = &pin.current().version;
    let allow_pre = current.is_prerelease();
    let others: Vec<&Specifier> = (pin.specifiers.iter().enumerate())
        .filter(|(i, _)| *i != pin.anchor)
        .map(|(_, s)| s)
        .collect();
    let eligible: Vec<&Version> = available
        .iter()
        .filter(|v| !v.is_local() && (allow_pre || !v.is_prerelease()) && *v > current)
        .filter(|v| others.iter().all(|s| s.contains(v)))
        .collect();
    let newest = eligible.iter().copied().max();
    let best = eligible
        .iter()
        .copied()
        .filter(|v| allow_major || !is_major_bump(current, v))
        .max();
    let held_back = match (newest, best) {
        (Some(n), b) if Some(n) != b && is_major_bump(current, n) => Some(n.clone()),
        _ => None,
    };
    let Some(best) = best else {
        return held_back.map_or(Choice::Keep, Choice::HeldBack);
    };
    let text = render(pin.current(), best);
    let written = Version::parse(&text).ok();
    if text == pin.current().text || written.is_none_or(|w| w <= *current) {
        return held_back.map_or(Choice::Keep, Choice::HeldBack);
    }
    Choice::Raise {
        text,
        major: is_major_bump(current, best),
        held_back,
    }
}

/// The new version text. `~=` keeps the pin's precision (`~=1.26` -> `~=1.27`, not
/// `~=1.27.3`), because its segment count decides the compatible range.
fn render(spec: &Specifier, to: &Version) -> String {
    let plain_final = to.pre().is_none() && to.post().is_none() && to.dev().is_none();
    if spec.op != Op::Compatible || !plain_final {
        return to.to_string();
    }
    let width = spec.version.release().len();
    let mut release = to.release().to_vec();
    release.resize(width, 0);
    Version::from_release(to.epoch(), release).to_string()
}

#[cfg(test)]
mod tests {
    use super::super::spec::parse_requirement;
    use super::*;

    fn pin(s: &str) -> Pin {
        Pin::from_requirement(parse_requirement(s).unwrap(), Some).unwrap()
    }

    fn vs(list: &[&str]) -> Vec<Version> {
        list.iter().map(|s| Version::parse(s).unwrap()).collect()
    }

    fn raise(text: &str, major: bool) -> Choice {
        Choice::Raise {
            text: text.into(),
            major,
            held_back: None,
        }
    }

    #[test]
    fn anchor_preference_and_refusals() {
        assert_eq!(pin("a>=1,==2").current().text, "2");
        assert_eq!(pin("a>=1,~=1.5").current().text, "1.5");
        assert_eq!(pin("a<3,>=1").current().text, "1");
        for s in ["a", "a<3", "a==1.*", "a===1.0", "a==2.1.0+cu121"] {
            assert!(
                Pin::from_requirement(parse_requirement(s).unwrap(), Some).is_none(),
                "{s}"
            );
        }
    }

    #[test]
    fn picks_newest_final_within_major() {
        let avail = vs(&["2.31.0", "2.32.3", "2.33.0rc1", "3.0.0", "2.32.4.dev1"]);
        let held = Choice::Raise {
            text: "2.32.3".into(),
            major: false,
            held_back: Some(Version::parse("3.0.0").unwrap()),
        };
        assert_eq!(choose(&pin("requests==2.31.0"), &avail, false), held);
        assert_eq!(
            choose(&pin("requests==2.31.0"), &avail, true),
            raise("3.0.0", true)
        );
        assert_eq!(
            choose(&pin("requests==2.32.3"), &avail, true),
            raise("3.0.0", true)
        );
        assert_eq!(choose(&pin("requests==3.0"), &avail, true), Choice::Keep);
        assert_eq!(
            choose(&pin("requests==2.32.3"), &avail, false),
            Choice::HeldBack(Version::parse("3.0.0").unwrap())
        );
    }

    #[test]
    fn prereleases_only_for_prerelease_pins() {
        let avail = vs(&["1.0", "1.1a1", "1.1b2"]);
        assert_eq!(choose(&pin("x==1.0"), &avail, false), Choice::Keep);
        assert_eq!(
            choose(&pin("x==1.1a1"), &avail, false),
            raise("1.1b2", false)
        );
    }

    #[test]
    fn other_clauses_bound_the_choice() {
        let avail = vs(&["4.2", "4.2.11", "5.0", "5.1.2"]);
        assert_eq!(
            choose(&pin("Django>=4.2,<5"), &avail, true),
            raise("4.2.11", false)
        );
        assert_eq!(
            choose(&pin("Django>=4.2,!=4.2.11,<5"), &avail, true),
            Choice::Keep
        );
    }

    #[test]
    fn compatible_release_keeps_precision() {
        let avail = vs(&["1.26.0", "1.26.4", "1.27.3", "2.1.0"]);
        assert_eq!(choose(&pin("numpy~=1.26.0"), &avail, false), {
            let mut c = raise("1.27.3", false);
            if let Choice::Raise { held_back, .. } = &mut c {
                *held_back = Some(Version::parse("2.1.0").unwrap());
            }
            c
        });
        assert_eq!(
            choose(&pin("numpy~=1.26"), &avail, true),
            raise("2.1", true)
        );
        let avail = vs(&["1.26.0", "1.26.4"]);
        assert_eq!(choose(&pin("numpy~=1.26"), &avail, false), Choice::Keep);
    }

    #[test]
    fn zero_major_minor_is_major() {
        let avail = vs(&["0.3.1", "0.3.9", "0.4.0"]);
        assert_eq!(
            choose(&pin("x==0.3.1"), &avail, false),
            Choice::Raise {
                text: "0.3.9".into(),
                major: false,
                held_back: Some(Version::parse("0.4.0").unwrap()),
            }
        );
    }
}
