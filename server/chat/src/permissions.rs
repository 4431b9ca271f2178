//! The one permission check of chat tools: [`PermissionGate::check`]. Every surface (terminal,
//! editor, browser, MCP) asks it before a tool of class write/run/decide runs, and answers its
//! prompts through [`PermissionGate::answer`], so the rules below live in one place.
//!
//! Rules:
//! - Read tools are allowed (the sandbox decides where), except on secret files
//!   ([`is_secret`]: `.env*`, private keys, credential files, Noctune's cache): the first read of
//!   each such file in a session asks, and the answer holds for that file and session only.
//!   Transcripts are saved and MCP tools can send text anywhere, so a secret is read only when
//!   the user said so. Search tools skip secret files (and say so) unless asked for that one file.
//! - Write, run and decide tools need a grant. Grants are keyed by tool class for our own tools
//!   and by tool name for MCP tools (`server__tool`), since one MCP server's "write" says
//!   nothing about another's.
//! - Once = one call; Session = this chat session until it ends; Always = persisted in
//!   `<repo>/.noctune_cache/studio_allow.json`, listed and revocable.
//! - The repository's own `.noctune_cache/` (at its root) is Noctune's state: no tool writes
//!   any of it (grants, runs, worktrees, sessions, backups, its `.gitignore`), except
//!   `.noctune_cache/scratch/`, which needs no grant. A model that could write the rest could
//!   grant itself permissions, forge approval decisions, erase the way back, or un-ignore the
//!   cache so that transcripts get committed. A `.noctune_cache` deeper down gets no exemption:
//!   it may be another repository's cache, so it is protected (and Noctune's names in it are
//!   never writable). Noctune's config (`noctune.toml`, `pyproject.toml`) is never writable.
//! - A name with an invisible or reordering character (Unicode Cc, Cf, line/paragraph
//!   separators) is never writable: the prompt would show another name than the one written.
//! - Protected paths ([`is_protected`]: `.git/`, `.github/`, editor and agent settings, CI
//!   files, `.gitattributes`, `.gitmodules`, `.env*`, keys and credentials, ...) need an
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
    /// A protected path: only a one-time approval is possible. Also set on a secret read
    /// (`class` read), which the user allows for that file and session only.
    pub protected: bool,
    /// e.g. `writeFile shapes/a.py`.
    pub summary: String,
    /// For a file edit: the exact change the call would make, shown before the user decides.
    /// The approval binds it: if the file changes before the call runs, the call is refused
    /// (`tool::confirm_preview`) rather than applied to other content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview: Option<crate::tool::Preview>,
}

/// The verdict of [`PermissionGate::check`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Check {
    /// Go ahead. `scope` says which grant allowed it; `None`: no grant needed (a read, or a
    /// write under `.noctune_cache/scratch/`).
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
    /// (session, path) of the secret files the user allowed to be read in that session.
    secret_reads: HashSet<(String, String)>,
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

    /// Whether `tool` of `class` may run now on `path` (repository-relative, '/'-separated; a
    /// path in another allowed root relative to that root, as `SafePath::rel` gives it) for
    /// `session_id`. Never blocks on IO beyond one `stat`.
    pub fn check(
        &self,
        session_id: &str,
        tool: &str,
        class: ToolClass,
        path: Option<&str>,
    ) -> Check {
        let norm = match gate_path(class, path) {
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
                    Some(p) if class == ToolClass::Read => format!(
                        "{tool} {} (a secret file: what is read is saved with the chat)",
                        shown_path(p)
                    ),
                    Some(p) => format!("{tool} {}", shown_path(p)),
                    None => tool.to_string(),
                },
                path: norm,
                preview: None,
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
            return match norm {
                Some(p) if is_secret(p) => {
                    let key = (session_id.to_string(), p.to_string());
                    if self.lock().secret_reads.contains(&key) {
                        Verdict::Allowed(Some(GrantScope::Session))
                    } else {
                        Verdict::Ask { protected: true }
                    }
                }
                _ => Verdict::Allowed(None),
            };
        }
        let protected = norm.is_some_and(is_protected);
        if class == ToolClass::Write
            && let Some(p) = norm
        {
            if let Some(why) = forbidden_write(p) {
                return Verdict::Forbidden(
                    "write_forbidden".into(),
                    format!("{tool} may not write {}: {why}", shown_path(p)),
                );
            }
            if in_scratch(p) && !protected {
                return Verdict::Allowed(None);
            }
        }
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
        let norm = gate_path(req.class, req.path.as_deref())
            .map_err(|message| PermissionError::Forbidden { message })?;
        if req.class == ToolClass::Read {
            return match norm {
                Some(p) if is_secret(&p) => self.answer_secret_read(req, p, answer, actor),
                _ => Err(PermissionError::NotGated {
                    tool: req.tool.clone(),
                }),
            };
        }
        if answer != PermissionAnswer::Deny
            && req.class == ToolClass::Write
            && let Some(p) = norm.as_deref()
            && let Some(why) = forbidden_write(p)
        {
            return Err(PermissionError::Forbidden {
                message: format!("{} cannot be granted: {why}", shown_path(p)),
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

    /// A secret read: any answer but deny allows reading that one file for the rest of the
    /// session (asking again on every read would only teach the user to click through).
    fn answer_secret_read(
        &self,
        req: &PermissionRequest,
        path: String,
        answer: PermissionAnswer,
        actor: &str,
    ) -> Result<(), PermissionError> {
        let granted = answer != PermissionAnswer::Deny;
        self.audit(&GrantRecord {
            repo_root: self.repo_str.clone(),
            ts: noctune_util::time::now_rfc3339(),
            actor: actor.to_string(),
            action: if granted { "granted" } else { "denied" }.into(),
            scope: if granted {
                GrantScope::Session
            } else {
                GrantScope::Once
            }
            .as_str()
            .into(),
            tool_class: req.class.as_str().into(),
            tool: req.tool.clone(),
            path: Some(path.clone()),
            session_id: Some(req.session_id.clone()),
        })?;
        if granted {
            self.lock()
                .secret_reads
                .insert((req.session_id.clone(), path));
        }
        Ok(())
    }

    /// Call after a gated call that `check` allowed: records the use, and uses up the
    /// once-grant if that is what allowed it. Audit failures are logged, not returned: the call
    /// has already happened.
    pub fn consume_once(&self, session_id: &str, tool: &str, class: ToolClass, path: Option<&str>) {
        let Ok(norm) = gate_path(class, path) else {
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
        st.secret_reads.retain(|(s, _)| s != session_id);
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

/// The path the rules judge: [`normalize`]d. A read's path has passed the sandbox already, so
/// one that does not normalize (a name with a backslash) is judged as it is rather than
/// refused; a gated call's is refused.
fn gate_path(class: ToolClass, path: Option<&str>) -> Result<Option<String>, String> {
    match path.map(normalize).transpose() {
        Err(_) if class == ToolClass::Read => Ok(path.map(str::to_string)),
        other => other,
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

// ---- the path rules ---------------------------------------------------------------------------
//
// Every rule below matches path components case-insensitively (a case-insensitive filesystem
// opens `.GIT/config` as `.git/config`) and at any depth (an allowed root may hold several
// repositories), except the cache exemption, which is for the repository's own `.noctune_cache/`
// at its root only.

use noctune_util::cache::{CACHE_DIR, OWN_ENTRIES, SCRATCH_DIR};

/// Folders whose content configures tools that run programs or hold credentials: git (hooks,
/// config), CI (`.github/**` entirely: actions, workflows, dependabot), editors and agents
/// (tasks, settings, rules, MCP servers), dev containers, git hook managers, key stores.
const PROTECTED_DIRS: [&str; 13] = [
    ".git",
    ".github",
    ".gitlab",
    ".circleci",
    ".husky",
    ".vscode",
    ".idea",
    ".claude",
    ".cursor",
    ".devcontainer",
    ".ssh",
    ".gnupg",
    ".aws",
];

/// Files (by name) that run programs when git, CI, an editor, an agent or a shell picks them
/// up, or that hold credentials.
const PROTECTED_FILES: [&str; 21] = [
    ".gitattributes",
    ".gitmodules",
    ".gitconfig",
    ".mcp.json",
    ".cursorrules",
    ".gitlab-ci.yml",
    ".travis.yml",
    "azure-pipelines.yml",
    "bitbucket-pipelines.yml",
    ".pre-commit-config.yaml",
    ".git-credentials",
    ".netrc",
    "_netrc",
    ".npmrc",
    ".pypirc",
    ".yarnrc",
    ".yarnrc.yml",
    ".pgpass",
    ".dockercfg",
    "credentials",
    "credentials.json",
];

/// Keys and certificates, by extension.
const KEY_EXTENSIONS: [&str; 10] = [
    ".pem",
    ".key",
    ".p12",
    ".pfx",
    ".crt",
    ".cer",
    ".der",
    ".jks",
    ".keystore",
    ".ppk",
];

/// Private keys, by extension (certificates are public: `.crt`, `.cer`, `.der` are not here).
const PRIVATE_KEY_EXTENSIONS: [&str; 7] =
    [".pem", ".key", ".p12", ".pfx", ".jks", ".keystore", ".ppk"];

/// SSH key files (`id_rsa`, `id_ed25519_sk`, ... and their `.pub`).
const SSH_KEY_PREFIXES: [&str; 4] = ["id_rsa", "id_ed25519", "id_ecdsa", "id_dsa"];

/// Credential files, by name: their content is a secret.
const SECRET_FILES: [&str; 12] = [
    ".git-credentials",
    ".netrc",
    "_netrc",
    ".npmrc",
    ".pypirc",
    ".yarnrc.yml",
    ".pgpass",
    ".dockercfg",
    "credentials",
    "credentials.json",
    ".htpasswd",
    "secrets.json",
];

/// `.env` files made to be committed: templates with no real values.
const ENV_TEMPLATES: [&str; 4] = [".env.example", ".env.sample", ".env.template", ".env.dist"];

/// Where a path lies relative to a Noctune cache.
#[derive(Debug, PartialEq, Eq)]
enum CacheSpot {
    /// Not in any `.noctune_cache`.
    Outside,
    /// `.noctune_cache/scratch/<something>` at the repository root: the model's scratch space.
    Scratch,
    /// Anything else of the root `.noctune_cache` (the folder itself included).
    Own,
    /// Inside a `.noctune_cache` below the root (another repository's cache, or a decoy);
    /// `own`: one of the names Noctune keeps there.
    Nested { own: bool },
}

fn cache_spot(parts: &[String]) -> CacheSpot {
    if parts.first().is_some_and(|c| c == CACHE_DIR) {
        return if parts.len() > 2 && parts[1] == SCRATCH_DIR {
            CacheSpot::Scratch
        } else {
            CacheSpot::Own
        };
    }
    match parts.iter().position(|c| c == CACHE_DIR) {
        Some(i) => CacheSpot::Nested {
            own: parts
                .get(i + 1)
                .is_some_and(|n| OWN_ENTRIES.contains(&n.as_str())),
        },
        None => CacheSpot::Outside,
    }
}

/// Characters no written name may contain: control characters (Unicode Cc, ASCII controls
/// included), format characters (Cf: zero-width characters, bidirectional embeddings,
/// overrides and isolates, the BOM, the soft hyphen, tags, ...) and the line and paragraph
/// separators. Each is invisible or reorders what is shown, so the name a prompt shows would
/// not be the name written (`invoice\u{202E}fdp.exe` shows as `invoiceexe.pdf`).
fn hidden_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{0600}'..='\u{0605}'
                | '\u{061C}'
                | '\u{06DD}'
                | '\u{070F}'
                | '\u{0890}'..='\u{0891}'
                | '\u{08E2}'
                | '\u{180E}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{206F}'
                | '\u{FEFF}'
                | '\u{FFF9}'..='\u{FFFB}'
                | '\u{110BD}'
                | '\u{110CD}'
                | '\u{13430}'..='\u{1343F}'
                | '\u{1BCA0}'..='\u{1BCA3}'
                | '\u{1D173}'..='\u{1D17A}'
                | '\u{E0001}'
                | '\u{E0020}'..='\u{E007F}'
        )
}

/// `U+202E RIGHT-TO-LEFT OVERRIDE`: how a refusal names a hidden character.
fn char_label(c: char) -> String {
    let name = match c {
        '\0' => "NULL",
        '\t' => "CHARACTER TABULATION",
        '\n' => "LINE FEED",
        '\r' => "CARRIAGE RETURN",
        '\u{1B}' => "ESCAPE",
        '\u{7F}' => "DELETE",
        '\u{85}' => "NEXT LINE",
        '\u{AD}' => "SOFT HYPHEN",
        '\u{061C}' => "ARABIC LETTER MARK",
        '\u{180E}' => "MONGOLIAN VOWEL SEPARATOR",
        '\u{200B}' => "ZERO WIDTH SPACE",
        '\u{200C}' => "ZERO WIDTH NON-JOINER",
        '\u{200D}' => "ZERO WIDTH JOINER",
        '\u{200E}' => "LEFT-TO-RIGHT MARK",
        '\u{200F}' => "RIGHT-TO-LEFT MARK",
        '\u{2028}' => "LINE SEPARATOR",
        '\u{2029}' => "PARAGRAPH SEPARATOR",
        '\u{202A}' => "LEFT-TO-RIGHT EMBEDDING",
        '\u{202B}' => "RIGHT-TO-LEFT EMBEDDING",
        '\u{202C}' => "POP DIRECTIONAL FORMATTING",
        '\u{202D}' => "LEFT-TO-RIGHT OVERRIDE",
        '\u{202E}' => "RIGHT-TO-LEFT OVERRIDE",
        '\u{2060}' => "WORD JOINER",
        '\u{2061}' => "FUNCTION APPLICATION",
        '\u{2062}' => "INVISIBLE TIMES",
        '\u{2063}' => "INVISIBLE SEPARATOR",
        '\u{2064}' => "INVISIBLE PLUS",
        '\u{2066}' => "LEFT-TO-RIGHT ISOLATE",
        '\u{2067}' => "RIGHT-TO-LEFT ISOLATE",
        '\u{2068}' => "FIRST STRONG ISOLATE",
        '\u{2069}' => "POP DIRECTIONAL ISOLATE",
        '\u{FEFF}' => "ZERO WIDTH NO-BREAK SPACE",
        '\u{E0001}' => "LANGUAGE TAG",
        '\u{E0020}'..='\u{E007F}' => "TAG CHARACTER",
        c if c.is_control() => "CONTROL CHARACTER",
        _ => "FORMAT CHARACTER",
    };
    format!("U+{:04X} {name}", c as u32)
}

/// `p` with every hidden character written as `\u{...}`, for what a person reads.
pub fn shown_path(p: &str) -> String {
    let mut out = String::with_capacity(p.len());
    for c in p.chars() {
        if hidden_char(c) {
            out.push_str(&format!("\\u{{{:04X}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// Writes no grant can allow, with the reason.
fn forbidden_write(p: &str) -> Option<String> {
    if let Some(c) = p.chars().find(|c| hidden_char(*c)) {
        return Some(format!(
            "the name contains {}, an invisible or reordering character that makes a name look \
             like another; no grant allows it, use a name without it",
            char_label(c)
        ));
    }
    let parts = lower_parts(p);
    let last = parts.last().map(String::as_str).unwrap_or("");
    if noctune_config::CONFIG_FILE_NAMES.contains(&last) {
        return Some(
            "it is Noctune's configuration, which chat tools never change; edit it yourself".into(),
        );
    }
    let scratch = format!("{CACHE_DIR}/{SCRATCH_DIR}/");
    let why = match cache_spot(&parts) {
        CacheSpot::Outside | CacheSpot::Scratch | CacheSpot::Nested { own: false } => return None,
        CacheSpot::Nested { own: true } => {
            "it is Noctune's own state in another folder's cache, which only Noctune writes"
                .to_string()
        }
        CacheSpot::Own => match parts.get(1).map(String::as_str) {
            Some("studio_allow.json") => "it holds the permission grants, which only the user \
                 changes (through the permission prompt or revoke)"
                .into(),
            Some("runs") | Some("worktrees") => "it is a run's state or worktree, which only \
                 the run engine writes; use the noctune* tools"
                .into(),
            Some("studio_edits") => {
                "it holds the edit backups, the way back from chat edits".into()
            }
            Some("studio_chat") => "it holds the saved chat sessions".into(),
            Some(".gitignore") => "it keeps Noctune's cache out of git; Noctune restores it on \
                 every start"
                .into(),
            _ => format!(
                "{CACHE_DIR}/ is Noctune's own state; a scratch file may go under {scratch}"
            ),
        },
    };
    Some(why)
}

/// Writes that need no grant: the scratch folder of the root cache (unless protected).
fn in_scratch(p: &str) -> bool {
    cache_spot(&lower_parts(p)) == CacheSpot::Scratch
}

/// Paths whose writes need a one-time approval every time, even under a session or always
/// grant: what runs programs or holds credentials (see the tables above), secret files, and
/// anything in a `.noctune_cache` below the root.
pub fn is_protected(p: &str) -> bool {
    let parts = lower_parts(p);
    let last = parts.last().map(String::as_str).unwrap_or("");
    parts
        .iter()
        .any(|c| PROTECTED_DIRS.contains(&c.as_str()) || c.starts_with(".env"))
        || PROTECTED_FILES.contains(&last)
        || KEY_EXTENSIONS.iter().any(|ext| last.ends_with(ext))
        || SSH_KEY_PREFIXES.iter().any(|k| last.starts_with(k))
        || matches!(cache_spot(&parts), CacheSpot::Nested { .. })
        || is_secret(p)
}

/// Files whose content is a secret: reading one needs the user's approval (once per file per
/// session), because what a tool returns is saved with the session and can reach any MCP
/// tool the model calls next. `.env*` files (but not the templates made to be committed),
/// private keys, credential files, `.ssh/` and `.gnupg/` (public keys aside), and every
/// Noctune cache except the root scratch folder (saved transcripts and edit backups hold what
/// was read and written before).
pub fn is_secret(p: &str) -> bool {
    let parts = lower_parts(p);
    let last = parts.last().map(String::as_str).unwrap_or("");
    let public_key = last.ends_with(".pub");
    (last.starts_with(".env") && !ENV_TEMPLATES.contains(&last))
        || SECRET_FILES.contains(&last)
        || PRIVATE_KEY_EXTENSIONS.iter().any(|ext| last.ends_with(ext))
        || (SSH_KEY_PREFIXES.iter().any(|k| last.starts_with(k)) && !public_key)
        || (parts[..parts.len().saturating_sub(1)]
            .iter()
            .any(|c| c == ".ssh" || c == ".gnupg")
            && !public_key)
        || matches!(
            cache_spot(&parts),
            CacheSpot::Own | CacheSpot::Nested { .. }
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every protected name of the rules, in several spellings and depths.
    const PROTECTED: &[&str] = &[
        ".git/config",
        ".GIT/hooks/pre-commit",
        "sub/.git/HEAD",
        ".gitattributes",
        "src/.GitAttributes",
        ".gitmodules",
        ".gitconfig",
        ".mcp.json",
        "tools/.MCP.json",
        ".claude/settings.json",
        ".claude/commands/x.md",
        ".cursor/rules/r.mdc",
        ".cursorrules",
        ".github/workflows/ci.yml",
        ".GitHub/Workflows/x.yml",
        ".github/actions/setup/action.yml",
        ".github/dependabot.yml",
        ".github/CODEOWNERS",
        ".gitlab/ci/build.yml",
        ".gitlab-ci.yml",
        ".circleci/config.yml",
        ".travis.yml",
        "azure-pipelines.yml",
        "bitbucket-pipelines.yml",
        ".pre-commit-config.yaml",
        ".husky/pre-commit",
        ".devcontainer/devcontainer.json",
        ".devcontainer/Dockerfile",
        ".idea/workspace.xml",
        ".vscode/tasks.json",
        ".vscode/settings.json",
        ".env",
        "app/.Env.local",
        ".envrc",
        ".env.example",
        ".git-credentials",
        ".netrc",
        "_netrc",
        ".npmrc",
        ".pypirc",
        ".yarnrc",
        ".yarnrc.yml",
        ".pgpass",
        ".dockercfg",
        ".aws/config",
        "deploy/credentials",
        "gcp/credentials.json",
        "certs/server.PEM",
        "a.key",
        "x.p12",
        "x.pfx",
        "ca.crt",
        "ca.cer",
        "ca.der",
        "release.jks",
        "android.keystore",
        "putty.ppk",
        "home/.ssh/config",
        "id_rsa",
        "id_rsa.pub",
        "keys/id_ed25519",
        "id_ecdsa_sk",
        "id_dsa",
        ".gnupg/pubring.kbx",
        // A cache below the root: another repository's, or a decoy.
        ".git/.noctune_cache/x",
        ".github/workflows/.noctune_cache/ci.yml",
        "sub/.noctune_cache/notes.md",
        // Protected wins over the scratch exemption.
        ".noctune_cache/scratch/.git/config",
    ];

    const NOT_PROTECTED: &[&str] = &[
        "src/a.py",
        "gitignore",
        ".gitignore",
        "src/.gitignore",
        "environment.py",
        "keyboard.py",
        "README.md",
        "github/workflows.md",
        "docs/claude.md",
        "src/monkey.pyc",
        "order.py",
        "credentials.py",
        ".noctune_cache/scratch/notes.md",
        "src/noctune_cache/x.py",
    ];

    #[test]
    fn protected_names_at_any_depth_and_in_any_case() {
        for p in PROTECTED {
            assert!(is_protected(p), "{p} should be protected");
        }
        for p in NOT_PROTECTED {
            assert!(!is_protected(p), "{p} should not be protected");
        }
    }

    #[test]
    fn secret_files_for_reads() {
        for p in [
            ".env",
            ".ENV.production",
            "app/.env.local",
            ".envrc",
            ".git-credentials",
            "home/.netrc",
            "_netrc",
            ".npmrc",
            ".pypirc",
            ".pgpass",
            "deploy/credentials",
            "credentials.json",
            "certs/server.pem",
            "tls/server.key",
            "x.p12",
            "release.jks",
            "id_rsa",
            "keys/id_ed25519",
            "home/.ssh/config",
            ".gnupg/secring.gpg",
            ".noctune_cache/studio_chat/sessions/s1.json",
            ".noctune_cache/studio_edits/backups/1/.env",
            "other/.noctune_cache/studio_chat/sessions/s1.json",
        ] {
            assert!(is_secret(p), "{p} should be secret");
        }
        for p in [
            "src/a.py",
            ".env.example",
            ".env.sample",
            ".env.template",
            "id_rsa.pub",
            "home/.ssh/id_ed25519.pub",
            "ca.crt",
            ".env/bin/activate",
            "environment.py",
            ".noctune_cache/scratch/notes.md",
            ".git/config",
        ] {
            assert!(!is_secret(p), "{p} should not be secret");
        }
    }

    #[test]
    fn hidden_characters_are_refused_by_name() {
        for (c, label) in [
            ('\u{200B}', "U+200B ZERO WIDTH SPACE"),
            ('\u{200C}', "U+200C ZERO WIDTH NON-JOINER"),
            ('\u{200D}', "U+200D ZERO WIDTH JOINER"),
            ('\u{200E}', "U+200E LEFT-TO-RIGHT MARK"),
            ('\u{200F}', "U+200F RIGHT-TO-LEFT MARK"),
            ('\u{202A}', "U+202A LEFT-TO-RIGHT EMBEDDING"),
            ('\u{202B}', "U+202B RIGHT-TO-LEFT EMBEDDING"),
            ('\u{202C}', "U+202C POP DIRECTIONAL FORMATTING"),
            ('\u{202D}', "U+202D LEFT-TO-RIGHT OVERRIDE"),
            ('\u{202E}', "U+202E RIGHT-TO-LEFT OVERRIDE"),
            ('\u{2066}', "U+2066 LEFT-TO-RIGHT ISOLATE"),
            ('\u{2067}', "U+2067 RIGHT-TO-LEFT ISOLATE"),
            ('\u{2068}', "U+2068 FIRST STRONG ISOLATE"),
            ('\u{2069}', "U+2069 POP DIRECTIONAL ISOLATE"),
            ('\u{FEFF}', "U+FEFF ZERO WIDTH NO-BREAK SPACE"),
            ('\u{00AD}', "U+00AD SOFT HYPHEN"),
            ('\u{2060}', "U+2060 WORD JOINER"),
            ('\u{2028}', "U+2028 LINE SEPARATOR"),
            ('\u{061C}', "U+061C ARABIC LETTER MARK"),
            ('\u{E0041}', "U+E0041 TAG CHARACTER"),
            ('\n', "U+000A LINE FEED"),
            ('\r', "U+000D CARRIAGE RETURN"),
            ('\t', "U+0009 CHARACTER TABULATION"),
            ('\u{1B}', "U+001B ESCAPE"),
            ('\u{7F}', "U+007F DELETE"),
            ('\u{01}', "U+0001 CONTROL CHARACTER"),
            ('\u{9B}', "U+009B CONTROL CHARACTER"),
        ] {
            for p in [format!("src/invoice{c}yp.exe"), format!("dir{c}/a.py")] {
                let why = forbidden_write(&p).unwrap_or_else(|| panic!("{p:?} was allowed"));
                assert!(why.contains(label), "{p:?}: {why}");
            }
        }
        // Letters of any script are fine; only invisible and reordering characters are not.
        for p in [
            "src/café.py",
            "docs/日本語.md",
            "src/naïve—ok.py",
            "a b.txt",
        ] {
            assert!(forbidden_write(p).is_none(), "{p}");
        }
        assert_eq!(shown_path("a\u{202E}b"), "a\\u{202E}b");
    }

    #[test]
    fn only_the_root_cache_is_special() {
        // Everything Noctune keeps in its root cache: never writable.
        for p in [
            ".noctune_cache",
            ".noctune_cache/.gitignore",
            ".NOCTUNE_CACHE/.GitIgnore",
            ".noctune_cache/studio_allow.json",
            ".noctune_cache/runs/x/state/run.json",
            ".NOCTUNE_CACHE/worktrees/x/a.py",
            ".noctune_cache/studio_edits/journal.jsonl",
            ".noctune_cache/studio_edits/backups/1/src/a.py",
            ".noctune_cache/studio_chat/sessions/s1.json",
            ".noctune_cache/sessions/x",
            ".noctune_cache/lsp/diffs/a.diff",
            ".noctune_cache/notes.md",
            ".noctune_cache/scratch",
        ] {
            assert!(forbidden_write(p).is_some(), "{p}");
            assert!(!in_scratch(p), "{p}");
        }
        let why = forbidden_write(".noctune_cache/notes.md").unwrap();
        assert!(why.contains(".noctune_cache/scratch/"), "{why}");
        // The scratch folder: no grant needed.
        for p in [
            ".noctune_cache/scratch/notes.md",
            ".Noctune_Cache/Scratch/a/b.txt",
        ] {
            assert!(forbidden_write(p).is_none(), "{p}");
            assert!(in_scratch(p), "{p}");
        }
        // Deeper down: no exemption. Noctune's names are forbidden, the rest protected.
        for p in [
            "sub/.noctune_cache/studio_allow.json",
            "other/.noctune_cache/runs/x/state/run.json",
            "other/.noctune_cache/.gitignore",
            ".git/.noctune_cache/studio_chat/x",
        ] {
            assert!(forbidden_write(p).is_some(), "{p}");
        }
        for p in [
            "sub/.noctune_cache/scratch/x.md",
            ".git/.noctune_cache/x",
            ".github/workflows/.noctune_cache/ci.yml",
        ] {
            assert!(forbidden_write(p).is_none(), "{p}");
            assert!(!in_scratch(p), "{p}");
            assert!(is_protected(p), "{p}");
        }
        assert!(!in_scratch("src/noctune_cache.py"));
        for p in ["noctune.toml", "pyproject.toml", "sub/PyProject.toml"] {
            assert!(forbidden_write(p).is_some(), "{p}");
        }
    }

    #[test]
    fn the_gate_applies_the_rules() {
        let dir = std::env::temp_dir().join(format!(
            "noctune-gate-test-{}-{}",
            std::process::id(),
            noctune_util::time::now_compact()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let g = PermissionGate::new(&dir, None).unwrap();
        let w = ToolClass::Write;
        let req = match g.check("s", "writeFile", w, Some("src/a.py")) {
            Check::Ask(r) => r,
            other => panic!("{other:?}"),
        };
        g.answer(&req, PermissionAnswer::Session, "t").unwrap();
        for p in PROTECTED {
            match g.check("s", "writeFile", w, Some(p)) {
                Check::Ask(r) => assert!(r.protected, "{p}"),
                other => panic!("{p}: {other:?}"),
            }
        }
        for p in NOT_PROTECTED
            .iter()
            .filter(|p| !p.starts_with(".noctune_cache"))
        {
            assert_eq!(
                g.check("s", "writeFile", w, Some(p)),
                Check::Allowed {
                    scope: Some(GrantScope::Session)
                },
                "{p}"
            );
        }
        match g.check("s", "writeFile", w, Some("src/a\u{202E}yp.exe")) {
            Check::Forbidden { code, message } => {
                assert_eq!(code, "write_forbidden");
                assert!(
                    message.contains("U+202E RIGHT-TO-LEFT OVERRIDE"),
                    "{message}"
                );
                assert!(message.contains("src/a\\u{202E}yp.exe"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        // A secret read asks once per file and session.
        let read = ToolClass::Read;
        let req = match g.check("s", "readFile", read, Some(".env")) {
            Check::Ask(r) => r,
            other => panic!("{other:?}"),
        };
        assert!(req.protected && req.summary.contains("secret"), "{req:?}");
        g.answer(&req, PermissionAnswer::Once, "t").unwrap();
        for _ in 0..2 {
            assert_eq!(
                g.check("s", "readFile", read, Some(".env")),
                Check::Allowed {
                    scope: Some(GrantScope::Session)
                }
            );
            g.consume_once("s", "readFile", read, Some(".env"));
        }
        assert!(matches!(
            g.check("s", "search", read, Some("./.env")),
            Check::Allowed { .. }
        ));
        assert!(matches!(
            g.check("s", "readFile", read, Some(".npmrc")),
            Check::Ask(_)
        ));
        assert!(matches!(
            g.check("t", "readFile", read, Some(".env")),
            Check::Ask(_)
        ));
        g.end_session("s");
        assert!(matches!(
            g.check("s", "readFile", read, Some(".env")),
            Check::Ask(_)
        ));
        assert_eq!(
            g.check("s", "readFile", read, Some("src/a.py")),
            Check::Allowed { scope: None }
        );
        std::fs::remove_dir_all(&dir).unwrap();
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
