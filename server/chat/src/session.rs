//! Chat sessions on disk: `<repoRoot>/.noctune_cache/studio_chat/sessions/<session_id>.json`.
//!
//! A session is the whole conversation in the wire shape (`ChatMessage`s with their tool calls
//! and tool results), so a saved session can be sent to the model again as it is, plus what the
//! turn loop must remember between turns: the profile and whether `auto` tool mode fell back to
//! prompt mode. Files are written atomically (temp file, fsync, rename): a crash leaves the old
//! or the new session, never half of one. Session ids are file names, so they are validated
//! before they touch a path.

use noctune_llm::{ChatMessage, Role};
use noctune_util::{fsx, time};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

/// Where sessions live, relative to the repository root.
pub const SESSIONS_DIR: &str = ".noctune_cache/studio_chat/sessions";
/// Bumped when the file format changes incompatibly.
pub const FORMAT_VERSION: u32 = 1;
/// Longest accepted session id.
const MAX_ID_LEN: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(
        "invalid session id {0:?}: use 1-64 letters, digits, '-', '_' or '.', not starting with '.'"
    )]
    InvalidId(String),
    #[error("no chat session {id} (looked for {})", .path.display())]
    NotFound { id: String, path: PathBuf },
    #[error("chat session file {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("chat session file {} is not a readable session ({detail}); move it away to start over", .path.display())]
    Corrupt { path: PathBuf, detail: String },
}

/// A permission answer given during the session, for the transcript.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GrantNote {
    pub at: String,
    pub tool: String,
    pub class: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// `once`, `session`, `always` or `deny`.
    pub answer: String,
    #[serde(default)]
    pub protected: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    #[serde(default = "format_version")]
    pub version: u32,
    pub id: String,
    pub created_at: String,
    pub updated_at: String,
    /// The head of the first user message, for lists.
    #[serde(default)]
    pub title: String,
    /// The model profile of this session (`None`: the configured default).
    #[serde(default)]
    pub profile: Option<String>,
    /// `auto` tool mode fell back to prompt-mode calls for this session (the server rejected
    /// native `tools`, or the model printed calls as text); remembered so later turns do not
    /// repeat the failed attempt.
    #[serde(default)]
    pub prompt_tools: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_reason: Option<String>,
    /// The server's per-request context when it is smaller than the profile's `context_window`
    /// and requests were fitted to it; remembered so the notice is given once, not every turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_context_window: Option<u32>,
    /// The conversation, without the system prompt (rebuilt for every request).
    #[serde(default)]
    pub messages: Vec<ChatMessage>,
    #[serde(default)]
    pub grants: Vec<GrantNote>,
    /// The turns that ended without a complete answer (an error, or a stop by the user),
    /// oldest first. Their question stays in `messages`; what streamed before the end is kept
    /// here, never in `messages`, so it is not sent back to the model as if it were an answer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_turns: Vec<FailedTurn>,
}

/// A turn that ended without a complete answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailedTurn {
    /// Index in `messages` of the turn's user message.
    pub user_index: usize,
    /// Index in `messages` where the turn ended: the partial answer belongs before the message
    /// at this index (the end of `messages` when it is the last turn). Tool rounds the turn
    /// completed before it failed lie between `user_index` and this.
    pub end_index: usize,
    /// The visible answer text that streamed in the round that failed: incomplete, shown to
    /// the user with the error, never sent to the model.
    #[serde(default)]
    pub partial: String,
    pub error: TurnErrorNote,
    pub at: String,
}

/// Why a turn ended without a complete answer: `code` is stable (`cancelled`, `stream_cut`,
/// `model_unreachable`, `model_timeout`, ...: `noctune_llm::LlmError::code`), `message` says
/// what happened and what to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TurnErrorNote {
    pub code: String,
    pub message: String,
}

fn format_version() -> u32 {
    FORMAT_VERSION
}

impl Session {
    pub fn new(id: impl Into<String>, profile: Option<String>) -> Session {
        let now = time::now_rfc3339();
        Session {
            version: FORMAT_VERSION,
            id: id.into(),
            created_at: now.clone(),
            updated_at: now,
            title: String::new(),
            profile,
            prompt_tools: false,
            fallback_reason: None,
            server_context_window: None,
            messages: Vec::new(),
            grants: Vec::new(),
            failed_turns: Vec::new(),
        }
    }

    /// The last turn, when it ended without a complete answer (what a retry resends).
    pub fn failed_last_turn(&self) -> Option<&FailedTurn> {
        let last_user = self.messages.iter().rposition(|m| m.role == Role::User)?;
        self.failed_turns
            .last()
            .filter(|f| f.user_index == last_user && f.end_index <= self.messages.len())
    }

    /// Records how the turn that began at `user_index` ended, at the current end of `messages`.
    pub fn record_failed_turn(&mut self, user_index: usize, partial: String, error: TurnErrorNote) {
        self.failed_turns.retain(|f| f.user_index != user_index);
        self.failed_turns.push(FailedTurn {
            user_index,
            end_index: self.messages.len(),
            partial,
            error,
            at: time::now_rfc3339(),
        });
    }

    /// Takes the last turn back out (for a retry): its messages and its failure record go, and
    /// the user message it began with is returned. `None` when the last turn did not fail.
    pub fn take_failed_last_turn(&mut self) -> Option<ChatMessage> {
        let user_index = self.failed_last_turn()?.user_index;
        self.failed_turns.retain(|f| f.user_index < user_index);
        let user = self.messages.get(user_index).cloned();
        self.messages.truncate(user_index);
        user
    }

    pub fn summary(&self) -> SessionSummary {
        SessionSummary {
            id: self.id.clone(),
            title: self.title.clone(),
            created_at: self.created_at.clone(),
            updated_at: self.updated_at.clone(),
            messages: self.messages.len(),
            profile: self.profile.clone(),
            prompt_tools: self.prompt_tools,
            last_turn_failed: self.failed_last_turn().is_some(),
        }
    }

    /// Every tool call of the session with its result, in order.
    pub fn tool_calls(&self) -> Vec<Value> {
        let mut out = Vec::new();
        for (i, m) in self.messages.iter().enumerate() {
            for call in m.tool_calls.iter().flatten() {
                let result = self.messages[i + 1..]
                    .iter()
                    .take_while(|r| r.role == Role::Tool)
                    .find(|r| r.tool_call_id.as_deref() == Some(call.id.as_str()))
                    .and_then(|r| r.content.clone());
                let result_value = result.as_deref().map(|r| {
                    serde_json::from_str::<Value>(r)
                        .unwrap_or_else(|_| Value::String(r.to_string()))
                });
                let ok = result_value
                    .as_ref()
                    .is_some_and(|v| v.get("error").is_none());
                let arguments = serde_json::from_str::<Value>(&call.function.arguments)
                    .unwrap_or_else(|_| Value::String(call.function.arguments.clone()));
                out.push(json!({
                    "id": call.id,
                    "name": call.function.name,
                    "arguments": arguments,
                    "result": result_value,
                    "ok": ok,
                }));
            }
        }
        out
    }

    /// The transcript export: every message, every tool call with its result, the grants
    /// answered in this session and `extra` (e.g. the audit DB's permission records).
    pub fn export(&self, repo_root: &Path, extra_grants: Vec<Value>) -> Value {
        json!({
            "format": "noctune-chat-transcript/1",
            "session_id": self.id,
            "repo_root": repo_root.display().to_string(),
            "title": self.title,
            "profile": self.profile,
            "tool_mode_fallback": self.prompt_tools.then_some("prompt"),
            "fallback_reason": self.fallback_reason,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "exported_at": time::now_rfc3339(),
            "messages": self.messages,
            "tool_calls": self.tool_calls(),
            "grants": self.grants,
            "failed_turns": self.failed_turns,
            "audit_grants": extra_grants,
        })
    }
}

/// One line of a session list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionSummary {
    pub id: String,
    pub title: String,
    pub created_at: String,
    pub updated_at: String,
    pub messages: usize,
    pub profile: Option<String>,
    pub prompt_tools: bool,
    /// The last turn ended without a complete answer (it can be retried).
    #[serde(default)]
    pub last_turn_failed: bool,
}

/// Checks that `id` is a safe file name: 1-64 of `[A-Za-z0-9._-]`, not starting with a dot.
pub fn validate_id(id: &str) -> Result<(), SessionError> {
    let ok = !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(SessionError::InvalidId(id.to_string()))
    }
}

/// A new, sortable, unique session id: `20261125T161558Z-1a2b3c4d`.
pub fn new_id() -> String {
    let r = fsx::random_bytes::<4>();
    format!(
        "{}-{:02x}{:02x}{:02x}{:02x}",
        time::now_compact(),
        r[0],
        r[1],
        r[2],
        r[3]
    )
}

/// The sessions of one repository.
#[derive(Debug, Clone)]
pub struct SessionStore {
    dir: PathBuf,
}

impl SessionStore {
    pub fn for_repo(repo_root: &Path) -> SessionStore {
        SessionStore {
            dir: repo_root.join(SESSIONS_DIR),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path_of(&self, id: &str) -> Result<PathBuf, SessionError> {
        validate_id(id)?;
        Ok(self.dir.join(format!("{id}.json")))
    }

    /// Writes the session atomically.
    pub fn save(&self, session: &Session) -> Result<(), SessionError> {
        let path = self.path_of(&session.id)?;
        fsx::write_json_atomic(&path, session).map_err(|source| SessionError::Io { path, source })
    }

    pub fn exists(&self, id: &str) -> Result<bool, SessionError> {
        Ok(self.path_of(id)?.is_file())
    }

    pub fn load(&self, id: &str) -> Result<Session, SessionError> {
        let path = self.path_of(id)?;
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(SessionError::NotFound {
                    id: id.to_string(),
                    path,
                });
            }
            Err(source) => return Err(SessionError::Io { path, source }),
        };
        let mut session: Session =
            serde_json::from_slice(&bytes).map_err(|e| SessionError::Corrupt {
                path: path.clone(),
                detail: e.to_string(),
            })?;
        if session.version > FORMAT_VERSION {
            return Err(SessionError::Corrupt {
                path,
                detail: format!(
                    "written by a newer Noctune (format {} > {FORMAT_VERSION})",
                    session.version
                ),
            });
        }
        // The file name is the id; a copied file keeps working under its new name.
        session.id = id.to_string();
        Ok(session)
    }

    /// All sessions, most recently updated first. Unreadable files are skipped (and logged):
    /// one broken file must not hide the others.
    pub fn list(&self) -> Result<Vec<SessionSummary>, SessionError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(SessionError::Io {
                    path: self.dir.clone(),
                    source,
                });
            }
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(id) = name.strip_suffix(".json") else {
                continue;
            };
            if validate_id(id).is_err() {
                continue;
            }
            match self.load(id) {
                Ok(s) => out.push(s.summary()),
                Err(e) => tracing::warn!(error = %e, "skipping unreadable chat session"),
            }
        }
        out.sort_by(|a, b| b.updated_at.cmp(&a.updated_at).then(b.id.cmp(&a.id)));
        Ok(out)
    }

    /// Deletes a session; `false` if there was none.
    pub fn delete(&self, id: &str) -> Result<bool, SessionError> {
        let path = self.path_of(id)?;
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(SessionError::Io { path, source }),
        }
    }
}

/// A title from the first user message: its first line, at most 80 characters.
pub fn title_of(message: &str) -> String {
    let line = message
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    match line.char_indices().nth(80) {
        Some((end, _)) => format!("{}…", &line[..end]),
        None => line.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use noctune_llm::ToolCall;

    #[test]
    fn ids_are_validated() {
        for good in [
            "abc",
            "20261125T161558Z-1a2b3c4d",
            "a.b_c-d",
            &"x".repeat(64),
        ] {
            assert!(validate_id(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            ".",
            "..",
            "../x",
            "a/b",
            "a\\b",
            ".hidden",
            "a\0b",
            "é",
            &"x".repeat(65),
            "a b",
        ] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
        assert!(validate_id(&new_id()).is_ok());
    }

    #[test]
    fn round_trip_list_delete() {
        let dir = tempfile::tempdir().unwrap();
        let store = SessionStore::for_repo(dir.path());
        assert!(store.list().unwrap().is_empty());
        let mut s = Session::new("s1", Some("fast".into()));
        s.title = "hello".into();
        s.prompt_tools = true;
        s.messages.push(ChatMessage::user("hello"));
        s.messages.push(ChatMessage {
            role: Role::Assistant,
            tool_calls: Some(vec![ToolCall::function(
                "c1",
                "readFile",
                "{\"path\":\"a\"}",
            )]),
            ..Default::default()
        });
        s.messages.push(ChatMessage::tool_result(
            "c1",
            "{\"error\":\"not_found\",\"message\":\"x\"}",
        ));
        store.save(&s).unwrap();
        assert_eq!(store.load("s1").unwrap(), s);
        let mut s2 = Session::new("s2", None);
        s2.updated_at = "9999".into();
        store.save(&s2).unwrap();
        std::fs::write(store.dir().join("broken.json"), "{").unwrap();
        let list = store.list().unwrap();
        assert_eq!(
            list.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
            ["s2", "s1"]
        );
        assert!(matches!(
            store.load("broken"),
            Err(SessionError::Corrupt { .. })
        ));
        assert!(matches!(
            store.load("nope"),
            Err(SessionError::NotFound { .. })
        ));
        assert!(matches!(
            store.load("../x"),
            Err(SessionError::InvalidId(_))
        ));
        assert!(store.delete("s1").unwrap());
        assert!(!store.delete("s1").unwrap());

        let calls = s.tool_calls();
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0]["ok"], false);
        assert_eq!(calls[0]["arguments"]["path"], "a");
        let export = s.export(dir.path(), vec![]);
        assert_eq!(export["messages"].as_array().unwrap().len(), 3);
        assert_eq!(export["tool_mode_fallback"], "prompt");
    }

    #[test]
    fn a_failed_last_turn_is_found_kept_out_of_messages_and_taken_back() {
        let mut s = Session::new("s", None);
        s.messages.push(ChatMessage::user("one"));
        s.messages.push(ChatMessage::assistant("answer one"));
        assert!(s.failed_last_turn().is_none());
        s.messages.push(ChatMessage::user("two"));
        let note = TurnErrorNote {
            code: "stream_cut".into(),
            message: "cut".into(),
        };
        s.record_failed_turn(2, "half an ans".into(), note.clone());
        let f = s.failed_last_turn().unwrap();
        assert_eq!(
            (f.user_index, f.end_index, f.partial.as_str()),
            (2, 3, "half an ans")
        );
        assert_eq!(s.messages.len(), 3, "the partial text is not a message");
        assert!(s.summary().last_turn_failed);
        // Saved and loaded as it was; a file without the field reads as no failures.
        let back: Session = serde_json::from_value(serde_json::to_value(&s).unwrap()).unwrap();
        assert_eq!(back, s);
        let mut old = serde_json::to_value(&s).unwrap();
        old.as_object_mut().unwrap().remove("failed_turns");
        assert!(
            serde_json::from_value::<Session>(old)
                .unwrap()
                .failed_turns
                .is_empty()
        );
        // A later turn makes it history, no longer retryable.
        let mut later = s.clone();
        later.messages.push(ChatMessage::user("three"));
        assert!(later.failed_last_turn().is_none());
        assert!(later.take_failed_last_turn().is_none());
        assert_eq!(later.messages.len(), 4);
        // Taking it back removes its messages and its record, and gives the question.
        let user = s.take_failed_last_turn().unwrap();
        assert_eq!(user.content.as_deref(), Some("two"));
        assert_eq!(s.messages.len(), 2);
        assert!(s.failed_turns.is_empty());
        assert!(!s.summary().last_turn_failed);
    }

    #[test]
    fn titles() {
        assert_eq!(title_of("\n  first line \nsecond"), "first line");
        assert_eq!(title_of(&"é".repeat(100)).chars().count(), 81);
    }
}
