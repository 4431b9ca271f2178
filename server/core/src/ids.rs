//! Identifiers. They are validated on the way in because run ids become directory names and
//! approval ids become file names: a value from outside never reaches the filesystem unchecked.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdError {
    #[error(
        "invalid run id {0:?}: expected 1-64 characters of letters, digits, '-' or '_' (see `noctune runs`)"
    )]
    Run(String),
    #[error(
        "invalid approval id {0:?}: expected 16-64 lowercase hex characters (see `noctune approvals RUN_ID`)"
    )]
    Approval(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RunId(String);

impl RunId {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !s.starts_with('-');
        if ok {
            Ok(RunId(s.to_string()))
        } else {
            Err(IdError::Run(s.to_string()))
        }
    }
    /// Builds a new id from a UTC timestamp (`YYYYMMDDTHHMMSSZ`) and random bytes supplied by
    /// the caller, so that this module stays free of clocks and entropy sources.
    pub fn new_from(timestamp_compact: &str, random: [u8; 4]) -> Self {
        let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
        RunId(format!("{timestamp_compact}-{hex}"))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for RunId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        RunId::parse(&s)
    }
}
impl From<RunId> for String {
    fn from(r: RunId) -> String {
        r.0
    }
}
impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ApprovalId(String);

impl ApprovalId {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let ok = (16..=64).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if ok {
            Ok(ApprovalId(s.to_string()))
        } else {
            Err(IdError::Approval(s.to_string()))
        }
    }
    pub(crate) fn from_hex(hex: String) -> Self {
        ApprovalId(hex)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
impl TryFrom<String> for ApprovalId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        ApprovalId::parse(&s)
    }
}
impl From<ApprovalId> for String {
    fn from(r: ApprovalId) -> String {
        r.0
    }
}
impl fmt::Display for ApprovalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// On the wire an id is a string; its schema states the same rule as `parse`.
impl schemars::JsonSchema for RunId {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "RunId".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A run id: 1-64 letters, digits, '-' or '_', not starting with '-'.",
            "pattern": "^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$"
        })
    }
}

impl schemars::JsonSchema for ApprovalId {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ApprovalId".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "An approval id: 16-64 lowercase hex characters (a hash of the proposed edit).",
            "pattern": "^[0-9a-f]{16,64}$"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn run_ids_reject_path_tricks() {
        for bad in ["", "../x", "a/b", "-rf", "a b", "a\0b", &"x".repeat(65)] {
            assert!(RunId::parse(bad).is_err(), "{bad:?}");
        }
        assert!(RunId::parse("20261125T101010Z-0a1b2c3d").is_ok());
    }
    #[test]
    fn approval_ids_are_lower_hex() {
        assert!(ApprovalId::parse("0123456789abcdef").is_ok());
        assert!(ApprovalId::parse("0123456789ABCDEF").is_err());
        assert!(ApprovalId::parse("short").is_err());
    }
}
