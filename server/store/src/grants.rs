//! The `grants` table: the chat permission audit (who granted, denied, revoked or used which
//! tool permission, in which scope). Append-only; the live "always allow" grants stay in each
//! repository's `studio_allow.json`, this is their history.

use super::{AuditStore, Durability, StoreError, limit_i64};
use serde::{Deserialize, Serialize};

/// The actions a grant record may have.
pub const GRANT_ACTIONS: [&str; 4] = ["granted", "denied", "revoked", "used"];
/// The scopes a grant record may have (once, session, always).
pub const GRANT_SCOPES: [&str; 3] = ["once", "session", "always"];

/// One permission event of a chat session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantRecord {
    pub repo_root: String,
    pub ts: String,
    /// Who acted: a user name, or `assistant` for a `used` record.
    pub actor: String,
    /// One of [`GRANT_ACTIONS`].
    pub action: String,
    /// One of [`GRANT_SCOPES`].
    pub scope: String,
    /// `write`, `run` or `decide` (the gated tool classes).
    pub tool_class: String,
    pub tool: String,
    pub path: Option<String>,
    pub session_id: Option<String>,
}

const INSERT: &str = "INSERT INTO grants (repo_root, ts, actor, action, scope, tool_class, tool,
        path, session_id, payload_json)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";

impl AuditStore {
    /// Appends a permission record. Durable: a permission audit that can lose its last
    /// "granted always" is no audit. An unknown action or scope is refused, since surfaces
    /// filter on these words.
    pub fn record_grant(&self, g: &GrantRecord) -> Result<(), StoreError> {
        let what = "recording a permission grant";
        for (field, value, allowed) in [
            ("action", &g.action, &GRANT_ACTIONS[..]),
            ("scope", &g.scope, &GRANT_SCOPES[..]),
        ] {
            if !allowed.contains(&value.as_str()) {
                return Err(StoreError::InvalidInput {
                    path: self.path.clone(),
                    detail: format!(
                        "grant {field} {value:?} is not one of {}",
                        allowed.join(", ")
                    ),
                });
            }
        }
        let payload = self.encode("grant record", g)?;
        self.write(Durability::Full, what, |tx| {
            tx.prepare_cached(INSERT)
                .and_then(|mut s| {
                    s.execute(rusqlite::params![
                        g.repo_root,
                        g.ts,
                        g.actor,
                        g.action,
                        g.scope,
                        g.tool_class,
                        g.tool,
                        g.path,
                        g.session_id,
                        payload,
                    ])
                })
                .map_err(self.err(what))?;
            Ok(())
        })
    }

    /// A repository's permission records, newest first.
    pub fn grants(&self, repo_root: &str, limit: usize) -> Result<Vec<GrantRecord>, StoreError> {
        let what = "reading permission grants";
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, payload_json FROM grants WHERE repo_root = ?1 ORDER BY id DESC LIMIT ?2",
            )
            .map_err(self.err(what))?;
        let mut rows = stmt
            .query(rusqlite::params![repo_root, limit_i64(limit)])
            .map_err(self.err(what))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(self.err(what))? {
            let id: i64 = row.get(0).map_err(self.err(what))?;
            let json: String = row.get(1).map_err(self.err(what))?;
            out.push(self.decode(format!("grant {id}"), &json)?);
        }
        Ok(out)
    }
}
