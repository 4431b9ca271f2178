//! The one permission check of chat tools: [`PermissionGate::check`]. Every surface (terminal,
//! editor, browser, MCP) asks it before a tool of class write/run/decide runs, and answers its
//! prompts through [`PermissionGate::answer`], so the rules below live in one place.
//!
//! Rules:
//! - Read tools are allowed; the sandbox decides where.
//! - Write, run and decide tools need a grant. Grants are keyed by tool class for our own tools
//!   and by tool name for MCP tools (`server__tool`), since one MCP server's "write" says
//!   nothing about another's.
//! - Once = one call; Session = this chat session until it ends; Always = persisted in
//!   `<repo>/.noctune_cache/studio_allow.json`, listed and revocable.
//! - Writes under `.noctune_cache/` need no grant (it is our scratch space), except the grant
//!   file itself, the engine's run state and worktrees, and the edit backups: a model that could
//!   write those could grant itself permissions, forge approval decisions or erase the way back.
//!   Noctune's config (`noctune.toml`, `pyproject.toml`) is never writable by a tool.
//! - Protected paths (`.git/`, `.env*`, `.vscode/`, `.github/workflows/`, key files) need an
//!   explicit one-time approval every time, even under a session or always grant; an "always"
//!   answer to such a prompt grants that one call only.
//! - Every grant, denial, revoke and use is appended to the audit DB.
//!
//! An "always" grant is honoured only if the audit DB (outside the repository) has its
//! "granted" record: a cloned repository could ship its own `.noctune_cache/studio_allow.json`,
//! and must not be able to pre-approve writes that way.

use crate::tool::ToolClass;
use noctune_store::{AuditStore, GrantRecord, StoreError};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Where "always" grants live, relative to the repository root.
pub const ALLOW_FILE: &str = ".noctune_cache/studio_allow.json";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantScope {
    Once,
    Session,
    Always,
}

impl GrantScope {
    pub fn as_str(self) -> &'static str {
        match self {
            GrantScope::Once => "once",
            GrantScope::Session => "session",
            GrantScope::Always => "always",
        }
    }
}

/// A user's answer to a permission prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PermissionAnswer {
    Once,
    Session,
    Always,
    Deny,
}

impl std::str::FromStr for PermissionAnswer {
    type Err = PermissionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "once" => Ok(PermissionAnswer::Once),
            "session" => Ok(PermissionAnswer::Session),
            "always" => Ok(PermissionAnswer::Always),
            "deny" => Ok(PermissionAnswer::Deny),
            _ => Err(PermissionError::UnknownAnswer {
                input: s.to_string(),
            }),
        }
    }
}

/// What a surface shows the user: which tool wants to do what.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PermissionRequest {
    /// Unique per prompt.
    pub id: String,
    pub session_id: String,
    pub tool: String,
    pub class: ToolClass,
    pub path: Option<String>,
    /// A protected path: only a one-time approval is possible.
    pub protected: bool,
    /// e.g. `writeFile shapes/a.py`.
    pub summary: String,
}

/// The verdict of [`PermissionGate::check`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Check {
    /// Go ahead. `scope` says which grant allowed it; `None`: no grant needed (a read, or a
    /// write under `.noctune_cache/`).
    Allowed { scope: Option<GrantScope> },
    /// Ask the user (or, where no one can answer, return `class.not_allowed_code()`).
    Ask(PermissionRequest),
    /// No answer can allow this; return `{"error": code, "message": message}` to the model.
    Forbidden { code: String, message: String },
}

/// A persisted "always allow", as stored in `studio_allow.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlwaysGrant {
    pub scope: GrantScope,
    pub tool_class: ToolClass,
    /// `None`: every tool of the class (our own tools); `Some`: one MCP tool.
    pub tool: Option<String>,
    /// The canonical repository root it was granted for.
    pub root: String,
    pub granted_at: String,
    pub granted_by: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct AllowFile {
    version: u32,
    grants: Vec<AlwaysGrant>,
}

#[derive(Debug, thiserror::Error)]
pub enum PermissionError {
    #[error("cannot use the repository {path} for permissions: {source}; pass an existing folder")]
    Repo {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("permission audit DB: {0}")]
    Audit(#[from] StoreError),
    #[error("cannot read the grant file {path}: {source}; fix its permissions or move it aside")]
    AllowFileRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the grant file {path} is not valid ({detail}); move it aside and noctune will ask for permissions again"
    )]
    AllowFileBad { path: PathBuf, detail: String },
    #[error("cannot write the grant file {path}: {source}; make .noctune_cache writable")]
    AllowFileWrite {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{tool} is a read tool and needs no grant")]
    NotGated { tool: String },
    #[error("{message}")]
    Forbidden { message: String },
    #[error("unknown permission answer {input:?}: expected once, session, always or deny")]
    UnknownAnswer { input: String },
}

/// Grants are per class for our tools, per tool for MCP tools (named `server__tool`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct GrantKey {
    class: ToolClass,
    tool: Option<String>,
}

impl GrantKey {
    fn of(tool: &str, class: ToolClass) -> GrantKey {
        let tool = tool.contains("__").then(|| tool.to_string());
        GrantKey { class, tool }
    }
    fn matches(&self, g: &AlwaysGrant) -> bool {
        g.tool_class == self.class && g.tool == self.tool
    }
}

/// (mtime, length) of the grant file.
type FileStamp = (std::time::SystemTime, u64);

#[derive(Default)]
struct State {
    /// (session, key, path) → calls left.
    once: HashMap<(String, GrantKey, Option<String>), u32>,
    session: HashSet<(String, GrantKey)>,
    always: Vec<AlwaysGrant>,
    /// (mtime, len) of the grant file when `always` was loaded, to notice another process's
    /// grant or revoke without re-reading it on every check.
    allow_stamp: Option<FileStamp>,
}

/// One per repository; shared by every session and surface of it (Send + Sync).
pub struct PermissionGate {
    repo_root: PathBuf,
    repo_str: String,
    allow_path: PathBuf,
    audit: Option<Mutex<AuditStore>>,
    state: Mutex<State>,
    /// Serializes read-modify-write of the grant file within this process.
    file_lock: Mutex<()>,
    seq: AtomicU64,
}

impl std::fmt::Debug for PermissionGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PermissionGate")
            .field("repo_root", &self.repo_root)
            .finish_non_exhaustive()
    }
}

/// How [`PermissionGate::decide`] sees a call, before anything is asked.
enum Verdict {
    Allowed(Option<GrantScope>),
    Ask { protected: bool },
    Forbidden(String, String),
}

impl PermissionGate {
    /// Loads `<repo>/.noctune_cache/studio_allow.json`. `audit_db`: the audit DB file (`None`:
    /// no audit and no cross-check of "always" grants; for unit tests only).
    pub fn new(
        repo_root: &Path,
        audit_db: Option<&Path>,
    ) -> Result<PermissionGate, PermissionError> {
        let repo_root =
            std::fs::canonicalize(repo_root).map_err(|source| PermissionError::Repo {
                path: repo_root.to_path_buf(),
                source,
            })?;
        let audit = match audit_db {
            Some(p) => Some(Mutex::new(AuditStore::open(p)?)),
            None => None,
        };
        let gate = PermissionGate {
            repo_str: repo_root.to_string_lossy().into_owned(),
            allow_path: repo_root.join(ALLOW_FILE),
            repo_root,
            audit,
            state: Mutex::new(State::default()),
            file_lock: Mutex::new(()),
            seq: AtomicU64::new(0),
        };
        let (always, stamp) = gate.load_always()?;
        {
            let mut st = gate.lock();
            st.always = always;
            st.allow_stamp = stamp;
        }
        Ok(gate)
    }

    pub fn repo_root(&self) -> &Path {
        &self.repo_root
    }

    /// Whether `tool` of `class` may run now on `path` (repository-relative, '/'-separated, as
    /// `SafePath::rel` gives it) for `session_id`. Never blocks on IO beyond one `stat`.
    pub fn check(
        &self,
        session_id: &str,
        tool: &str,
        class: ToolClass,
        path: Option<&str>,
    ) -> Check {
        if class == ToolClass::Read {
            return Check::Allowed { scope: None };
        }
        let norm = match path.map(normalize).transpose() {
            Ok(n) => n,
            Err(message) => {
                return Check::Forbidden {
                    code: "path_not_allowed".into(),
                    message,
                };
            }
        };
        match self.decide(session_id, tool, class, norm.as_deref()) {
            Verdict::Allowed(scope) => Check::Allowed { scope },
            Verdict::Forbidden(code, message) => Check::Forbidden { code, message },
            Verdict::Ask { protected } => Check::Ask(PermissionRequest {
                id: self.request_id(),
                session_id: session_id.to_string(),
                tool: tool.to_string(),
                class,
                summary: match &norm {
                    Some(p) => format!("{tool} {p}"),
                    None => tool.to_string(),
                },
                path: norm,
                protected,
            }),
        }
    }

    fn decide(
        &self,
        session_id: &str,
        tool: &str,
        class: ToolClass,
        norm: Option<&str>,
    ) -> Verdict {
        if class == ToolClass::Read {
            return Verdict::Allowed(None);
        }
        if class == ToolClass::Write
            && let Some(p) = norm
        {
            if let Some(why) = forbidden_write(p) {
                return Verdict::Forbidden(
                    "write_forbidden".into(),
                    format!("{tool} may not write {p}: {why}"),
                );
            }
            if in_cache(p) {
                return Verdict::Allowed(None);
            }
        }
        let protected = norm.is_some_and(is_protected);
        self.refresh_always();
        let key = GrantKey::of(tool, class);
        let st = self.lock();
        if !protected {
            if st.session.contains(&(session_id.to_string(), key.clone())) {
                return Verdict::Allowed(Some(GrantScope::Session));
            }
            if st.always.iter().any(|g| key.matches(g)) {
                return Verdict::Allowed(Some(GrantScope::Always));
            }
        }
        let once_key = (session_id.to_string(), key, norm.map(str::to_string));
        if st.once.get(&once_key).is_some_and(|n| *n > 0) {
            return Verdict::Allowed(Some(GrantScope::Once));
        }
        Verdict::Ask { protected }
    }

    /// Records the user's answer to `req`. The request is re-derived from its tool, class and
    /// path (its `protected` flag is not trusted: a surface may pass it back from a client), so
    /// an "always" for a protected path still grants one call only.
    pub fn answer(
        &self,
        req: &PermissionRequest,
        answer: PermissionAnswer,
        actor: &str,
    ) -> Result<(), PermissionError> {
        if req.class == ToolClass::Read {
            return Err(PermissionError::NotGated {
                tool: req.tool.clone(),
            });
        }
        let norm = req
            .path
            .as_deref()
            .map(normalize)
            .transpose()
            .map_err(|message| PermissionError::Forbidden { message })?;
        if answer != PermissionAnswer::Deny
            && req.class == ToolClass::Write
            && let Some(p) = norm.as_deref()
            && let Some(why) = forbidden_write(p)
        {
            return Err(PermissionError::Forbidden {
                message: format!("{p} cannot be granted: {why}"),
            });
        }
        let protected = norm.as_deref().is_some_and(is_protected);
        let key = GrantKey::of(&req.tool, req.class);
        let effective = match answer {
            PermissionAnswer::Deny => None,
            _ if protected => Some(GrantScope::Once),
            PermissionAnswer::Once => Some(GrantScope::Once),
            PermissionAnswer::Session => Some(GrantScope::Session),
            PermissionAnswer::Always => Some(GrantScope::Always),
        };
        let now = noctune_util::time::now_rfc3339();
        let record = |action: &str, scope: GrantScope| GrantRecord {
            repo_root: self.repo_str.clone(),
            ts: now.clone(),
            actor: actor.to_string(),
            action: action.to_string(),
            scope: scope.as_str().to_string(),
            tool_class: req.class.as_str().to_string(),
            tool: req.tool.clone(),
            path: norm.clone(),
            session_id: Some(req.session_id.clone()),
        };
        match effective {
            None => self.audit(&record("denied", GrantScope::Once)),
            Some(GrantScope::Once) => {
                self.audit(&record("granted", GrantScope::Once))?;
                let mut st = self.lock();
                *st.once
                    .entry((req.session_id.clone(), key, norm.clone()))
                    .or_insert(0) += 1;
                Ok(())
            }
            Some(GrantScope::Session) => {
                self.audit(&record("granted", GrantScope::Session))?;
                self.lock().session.insert((req.session_id.clone(), key));
                Ok(())
            }
            Some(GrantScope::Always) => {
                // Audit first: a grant without its audit record is not honoured on reload.
                self.audit(&record("granted", GrantScope::Always))?;
                let grant = AlwaysGrant {
                    scope: GrantScope::Always,
                    tool_class: req.class,
                    tool: key.tool.clone(),
                    root: self.repo_str.clone(),
                    granted_at: now.clone(),
                    granted_by: actor.to_string(),
                };
                self.update_allow_file(|grants| {
                    grants.retain(|g| !key.matches(g));
                    grants.push(grant);
                    true
                })?;
                Ok(())
            }
        }
    }

    /// Call after a gated call that `check` allowed: records the use, and uses up the
    /// once-grant if that is what allowed it. Audit failures are logged, not returned: the call
    /// has already happened.
    pub fn consume_once(&self, session_id: &str, tool: &str, class: ToolClass, path: Option<&str>) {
        let Ok(norm) = path.map(normalize).transpose() else {
            return;
        };
        let scope = match self.decide(session_id, tool, class, norm.as_deref()) {
            Verdict::Allowed(Some(scope)) => scope,
            _ => return,
        };
        if scope == GrantScope::Once {
            let key = (
                session_id.to_string(),
                GrantKey::of(tool, class),
                norm.clone(),
            );
            let mut st = self.lock();
            if let Some(n) = st.once.get_mut(&key) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    st.once.remove(&key);
                }
            }
        }
        let rec = GrantRecord {
            repo_root: self.repo_str.clone(),
            ts: noctune_util::time::now_rfc3339(),
            actor: "assistant".into(),
            action: "used".into(),
            scope: scope.as_str().into(),
            tool_class: class.as_str().into(),
            tool: tool.into(),
            path: norm,
            session_id: Some(session_id.into()),
        };
        if let Err(e) = self.audit(&rec) {
            tracing::warn!("permission audit: recording a use of {tool} failed: {e}");
        }
    }

    /// The "always" grants in effect (re-read if another process changed the file).
    pub fn always_grants(&self) -> Vec<AlwaysGrant> {
        self.refresh_always();
        self.lock().always.clone()
    }

    /// Revokes the "always" grant of `tool_class` (or of one MCP `tool`), and the session
    /// grants of the same key in every session: after a revoke the next call asks. Returns
    /// whether any grant was removed.
    pub fn revoke(
        &self,
        tool_class: ToolClass,
        tool: Option<&str>,
        actor: &str,
    ) -> Result<bool, PermissionError> {
        let key = GrantKey {
            class: tool_class,
            tool: tool.map(str::to_string),
        };
        let mut removed = false;
        self.update_allow_file(|grants| {
            let before = grants.len();
            grants.retain(|g| !key.matches(g));
            removed = grants.len() != before;
            removed
        })?;
        {
            let mut st = self.lock();
            let before = st.session.len();
            st.session.retain(|(_, k)| *k != key);
            removed |= st.session.len() != before;
        }
        self.audit(&GrantRecord {
            repo_root: self.repo_str.clone(),
            ts: noctune_util::time::now_rfc3339(),
            actor: actor.into(),
            action: "revoked".into(),
            scope: GrantScope::Always.as_str().into(),
            tool_class: tool_class.as_str().into(),
            tool: tool.unwrap_or("*").into(),
            path: None,
            session_id: None,
        })?;
        Ok(removed)
    }

    /// Forgets the session's grants (session and unused once-grants).
    pub fn end_session(&self, session_id: &str) {
        let mut st = self.lock();
        st.session.retain(|(s, _)| s != session_id);
        st.once.retain(|(s, _, _), _| s != session_id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind; keep going with it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn audit(&self, rec: &GrantRecord) -> Result<(), PermissionError> {
        if let Some(db) = &self.audit {
            db.lock()
                .unwrap_or_else(|e| e.into_inner())
                .record_grant(rec)?;
        }
        Ok(())
    }

    fn request_id(&self) -> String {
        let r = noctune_util::fsx::random_bytes::<6>();
        let hex: String = r.iter().map(|b| format!("{b:02x}")).collect();
        format!("perm-{hex}-{}", self.seq.fetch_add(1, Ordering::Relaxed))
    }

    fn file_stamp(&self) -> Option<FileStamp> {
        let md = std::fs::metadata(&self.allow_path).ok()?;
        Some((md.modified().ok()?, md.len()))
    }

    /// Reloads the "always" grants if the file changed since they were loaded. A file that
    /// became unreadable or invalid drops every always grant (fail closed).
    fn refresh_always(&self) {
        let stamp = self.file_stamp();
        if self.lock().allow_stamp == stamp {
            return;
        }
        let loaded = self.load_always();
        let mut st = self.lock();
        match loaded {
            Ok((always, stamp)) => {
                st.always = always;
                st.allow_stamp = stamp;
            }
            Err(e) => {
                tracing::warn!("ignoring every always-allow grant: {e}");
                st.always.clear();
                st.allow_stamp = stamp;
            }
        }
    }

    fn read_allow_file(&self) -> Result<(AllowFile, Option<FileStamp>), PermissionError> {
        let stamp = self.file_stamp();
        let bytes = match std::fs::read(&self.allow_path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok((
                    AllowFile {
                        version: 1,
                        grants: Vec::new(),
                    },
                    None,
                ));
            }
            Err(source) => {
                return Err(PermissionError::AllowFileRead {
                    path: self.allow_path.clone(),
                    source,
                });
            }
        };
        let file: AllowFile =
            serde_json::from_slice(&bytes).map_err(|e| PermissionError::AllowFileBad {
                path: self.allow_path.clone(),
                detail: e.to_string(),
            })?;
        if file.version != 1 {
            return Err(PermissionError::AllowFileBad {
                path: self.allow_path.clone(),
                detail: format!("version {} (this noctune knows version 1)", file.version),
            });
        }
        Ok((file, stamp))
    }

    /// The grants of the file that are in effect: for this repository, and (with an audit DB)
    /// backed by their "granted always" audit record.
    fn load_always(&self) -> Result<(Vec<AlwaysGrant>, Option<FileStamp>), PermissionError> {
        let (file, stamp) = self.read_allow_file()?;
        let audited = match &self.audit {
            Some(db) => Some(
                db.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .grants(&self.repo_str, usize::MAX)?,
            ),
            None => None,
        };
        let mut out = Vec::new();
        for g in file.grants {
            let ok_root = g.root == self.repo_str && g.scope == GrantScope::Always;
            let ok_audit = audited.as_ref().is_none_or(|recs| {
                recs.iter().any(|r| {
                    r.action == "granted"
                        && r.scope == "always"
                        && r.ts == g.granted_at
                        && r.tool_class == g.tool_class.as_str()
                        && g.tool.as_ref().is_none_or(|t| *t == r.tool)
                })
            });
            if ok_root && ok_audit {
                out.push(g);
            } else {
                tracing::warn!(
                    "ignoring always-allow grant for {} {:?} in {}: {}",
                    g.tool_class.as_str(),
                    g.tool,
                    self.allow_path.display(),
                    if ok_root {
                        "no matching record in the audit DB"
                    } else {
                        "granted for another folder"
                    }
                );
            }
        }
        Ok((out, stamp))
    }

    /// Read-modify-write of the grant file (re-read first, so another process's earlier
    /// changes are kept); `change` returns whether it changed anything.
    fn update_allow_file(
        &self,
        change: impl FnOnce(&mut Vec<AlwaysGrant>) -> bool,
    ) -> Result<(), PermissionError> {
        let _guard = self.file_lock.lock().unwrap_or_else(|e| e.into_inner());
        let (mut file, _) = self.read_allow_file()?;
        if !change(&mut file.grants) {
            return Ok(());
        }
        noctune_util::fsx::write_json_atomic(&self.allow_path, &file).map_err(|source| {
            PermissionError::AllowFileWrite {
                path: self.allow_path.clone(),
                source,
            }
        })?;
        let stamp = self.file_stamp();
        let always = self.load_always().map(|(a, _)| a)?;
        let mut st = self.lock();
        st.always = always;
        st.allow_stamp = stamp;
        Ok(())
    }
}

/// Repository-relative, '/'-separated, `.` and `..` folded; `Err` if it climbs out or is
/// absolute.
fn normalize(p: &str) -> Result<String, String> {
    if p.starts_with('/') || p.contains('\\') || p.contains('\0') {
        return Err(format!(
            "permission paths are repository-relative with '/' separators; got {p:?}"
        ));
    }
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(format!("path {p:?} leaves the repository"));
                }
            }
            name => parts.push(name),
        }
    }
    Ok(parts.join("/"))
}

fn lower_parts(p: &str) -> Vec<String> {
    p.split('/').map(|c| c.to_ascii_lowercase()).collect()
}

/// Writes no grant can allow, with the reason. Case-insensitive, at any depth (an allowed root
/// may hold several repositories).
fn forbidden_write(p: &str) -> Option<&'static str> {
    let parts = lower_parts(p);
    let last = parts.last().map(String::as_str).unwrap_or("");
    if noctune_config::CONFIG_FILE_NAMES.contains(&last) {
        return Some(
            "it is Noctune's configuration, which chat tools never change; edit it yourself",
        );
    }
    if let Some(i) = parts.iter().position(|c| c == ".noctune_cache") {
        match parts.get(i + 1).map(String::as_str) {
            Some("studio_allow.json") => {
                return Some(
                    "it holds the permission grants, which only the user changes (through the permission prompt or revoke)",
                );
            }
            Some("runs") | Some("worktrees") => {
                return Some(
                    "it is a run's state or worktree, which only the run engine writes; use the noctune* tools",
                );
            }
            Some("studio_edits") => {
                return Some("it holds the edit backups, the way back from chat edits");
            }
            _ => {}
        }
    }
    None
}

fn in_cache(p: &str) -> bool {
    p.split('/')
        .any(|c| c.eq_ignore_ascii_case(".noctune_cache"))
}

/// Paths that need a one-time approval every time (matched case-insensitively, at any depth).
pub fn is_protected(p: &str) -> bool {
    let parts = lower_parts(p);
    let last = parts.last().map(String::as_str).unwrap_or("");
    let dir_hit = parts.iter().enumerate().any(|(i, c)| {
        matches!(c.as_str(), ".git" | ".vscode" | ".ssh")
            || c.starts_with(".env")
            || (c == ".github" && parts.get(i + 1).is_some_and(|n| n == "workflows"))
    });
    dir_hit
        || [".pem", ".key", ".p12", ".pfx"]
            .iter()
            .any(|ext| last.ends_with(ext))
        || ["id_rsa", "id_ed25519", "id_ecdsa", "id_dsa"]
            .iter()
            .any(|k| last.starts_with(k))
        || matches!(last, ".npmrc" | ".pypirc" | ".netrc")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protected_patterns() {
        for p in [
            ".git/config",
            ".GIT/hooks/pre-commit",
            "sub/.git/HEAD",
            ".env",
            "app/.Env.local",
            ".envrc",
            ".vscode/tasks.json",
            ".github/workflows/ci.yml",
            ".GitHub/Workflows/x.yml",
            "certs/server.PEM",
            "a.key",
            "home/.ssh/config",
            "id_rsa.pub",
            "keys/id_ed25519",
            "x.p12",
            ".npmrc",
            ".pypirc",
            ".netrc",
        ] {
            assert!(is_protected(p), "{p}");
        }
        for p in [
            "src/a.py",
            ".github/dependabot.yml",
            "gitignore",
            "environment.py",
            "keyboard.py",
            "README.md",
        ] {
            assert!(!is_protected(p), "{p}");
        }
    }

    #[test]
    fn forbidden_and_cache() {
        for p in [
            "noctune.toml",
            "pyproject.toml",
            "sub/PyProject.toml",
            ".noctune_cache/studio_allow.json",
            ".noctune_cache/runs/x/state/run.json",
            ".NOCTUNE_CACHE/worktrees/x/a.py",
            ".noctune_cache/studio_edits/journal.jsonl",
        ] {
            assert!(forbidden_write(p).is_some(), "{p}");
        }
        assert!(forbidden_write(".noctune_cache/notes.md").is_none());
        assert!(in_cache(".noctune_cache/notes.md"));
        assert!(!in_cache("src/noctune_cache.py"));
    }

    #[test]
    fn normalizes() {
        assert_eq!(normalize("./a//b/../c").unwrap(), "a/c");
        assert_eq!(normalize(".").unwrap(), "");
        assert!(normalize("../x").is_err());
        assert!(normalize("/etc/passwd").is_err());
        // A folded path is checked, not its spelling.
        assert_eq!(normalize("src/../.git/config").unwrap(), ".git/config");
    }

    #[test]
    fn mcp_tools_are_keyed_by_name() {
        assert_eq!(GrantKey::of("writeFile", ToolClass::Write).tool, None);
        assert_eq!(
            GrantKey::of("fs__write_file", ToolClass::Write)
                .tool
                .as_deref(),
            Some("fs__write_file")
        );
    }

    #[test]
    fn answers_parse() {
        assert_eq!(
            "Always".parse::<PermissionAnswer>().unwrap(),
            PermissionAnswer::Always
        );
        assert!("yes".parse::<PermissionAnswer>().is_err());
    }
}
