//! `noctune/chat`, `noctune/chatDelta`, `noctune/chatCancel`; permission prompts as
//! `window/showMessageRequest`; chat edits as `workspace/applyEdit` (so they land in the
//! editor's buffer and its undo works). The chat service (sessions, gate, backups, tools)
//! decides everything; this module only carries its questions and events to the editor.

use super::documents::{Documents, end_position, uri_path};
use super::protocol::{self, ChatCancelParams, ChatDelta, ChatParams, id_string};
use super::state::{ChatTracker, Shared, failed, invalid};
use noctune_studio::chat::{
    BufferOverlay, CancelToken, ChatEvent, EditSink, PermissionAnswer, PermissionRequest, Prompter,
    TurnContext,
};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tower_lsp_server::Client;
use tower_lsp_server::jsonrpc::Result;
use tower_lsp_server::ls_types::request::ApplyWorkspaceEdit;
use tower_lsp_server::ls_types::{
    ApplyWorkspaceEditParams, CreateFile, CreateFileOptions, DocumentChangeOperation,
    DocumentChanges, MessageActionItem, MessageType, OneOf,
    OptionalVersionedTextDocumentIdentifier, Position, Range, ResourceOp, ShowDocumentParams,
    TextDocumentEdit, TextEdit, Uri, WorkspaceEdit,
};

/// How long an edit waits for the editor's answer to `workspace/applyEdit`.
const APPLY_TIMEOUT: Duration = Duration::from_secs(120);

/// Removes a turn from the tracker and cancels it when the request ends in any way
/// (including `$/cancelRequest`, which drops the handler's future).
struct InFlight<'a> {
    tracker: &'a ChatTracker,
    request_id: String,
    cancel: CancelToken,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.cancel.cancel();
        self.tracker.lock().remove(&self.request_id);
    }
}

/// Answers permission prompts with the editor's message box.
struct EditorPrompter {
    client: Client,
    actor: String,
    /// Where "Show diff" writes the diff of an edit's permission prompt (a `.diff` file that
    /// `window/showDocument` opens).
    diff_dir: std::path::PathBuf,
    show_document: bool,
}

impl EditorPrompter {
    /// Opens the prompt's diff in the editor (a `.diff` file under the cache); `false` when the
    /// client cannot show documents or the file could not be written.
    async fn show_diff(&self, req: &PermissionRequest, diff: &str) -> bool {
        let file = self.diff_dir.join(format!("chat-{}.diff", req.id));
        let body = format!(
            "# Noctune chat: {} [{}]\n{diff}",
            req.summary,
            req.class.as_str()
        );
        let written = tokio::task::spawn_blocking({
            let (dir, file) = (self.diff_dir.clone(), file.clone());
            move || std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(&file, body))
        })
        .await;
        let Some(uri) = Uri::from_file_path(&file) else {
            return false;
        };
        if !matches!(written, Ok(Ok(()))) || !self.show_document {
            return false;
        }
        let params = ShowDocumentParams {
            uri,
            external: Some(false),
            take_focus: Some(true),
            selection: None,
        };
        self.client.show_document(params).await.unwrap_or(false)
    }
}

/// "+3 -1 lines" of a unified diff, for the one-line prompt message.
fn diff_summary(diff: &str) -> String {
    let (mut added, mut removed) = (0, 0);
    for l in diff.lines() {
        if l.starts_with('+') && !l.starts_with("+++") {
            added += 1;
        } else if l.starts_with('-') && !l.starts_with("---") {
            removed += 1;
        }
    }
    format!("+{added} -{removed} lines")
}

impl Prompter for EditorPrompter {
    fn ask<'a>(
        &'a self,
        req: &'a PermissionRequest,
    ) -> Pin<Box<dyn Future<Output = PermissionAnswer> + Send + 'a>> {
        Box::pin(async move {
            // A protected path can only be allowed once; offer only what the gate accepts.
            let titles: &[&str] = if req.protected {
                &[protocol::ALLOW_ONCE, protocol::DENY]
            } else {
                &[
                    protocol::ALLOW_ONCE,
                    protocol::ALLOW_SESSION,
                    protocol::ALLOW_ALWAYS,
                    protocol::DENY,
                ]
            };
            // An edit's prompt offers its diff first; picking "Show diff" opens it and asks
            // again, so the user decides after seeing the change.
            let diff = req.preview.as_ref().map(|p| p.diff.as_str());
            let show: &[&str] = if diff.is_some() {
                &[protocol::ACTION_SHOW_DIFF]
            } else {
                &[]
            };
            let actions: Vec<MessageActionItem> = show
                .iter()
                .chain(titles)
                .map(|t| MessageActionItem {
                    title: t.to_string(),
                    properties: HashMap::new(),
                })
                .collect();
            let protected = if req.protected {
                " (a protected path: only a one-time approval is possible)"
            } else {
                ""
            };
            let change = diff
                .map(|d| format!(" ({})", diff_summary(d)))
                .unwrap_or_default();
            let message = format!(
                "Noctune chat wants to {}{change} [{}]{protected}. Allow it?",
                req.summary,
                req.class.as_str()
            );
            loop {
                let answer = self
                    .client
                    .show_message_request(
                        MessageType::WARNING,
                        message.clone(),
                        Some(actions.clone()),
                    )
                    .await;
                return match answer {
                    Ok(Some(item)) => match item.title.as_str() {
                        protocol::ACTION_SHOW_DIFF => {
                            if let Some(d) = diff {
                                self.show_diff(req, d).await;
                            }
                            continue;
                        }
                        protocol::ALLOW_ONCE => PermissionAnswer::Once,
                        protocol::ALLOW_SESSION => PermissionAnswer::Session,
                        protocol::ALLOW_ALWAYS => PermissionAnswer::Always,
                        _ => PermissionAnswer::Deny,
                    },
                    _ => PermissionAnswer::Deny,
                };
            }
        })
    }

    fn actor(&self) -> String {
        self.actor.clone()
    }
}

/// Chat edits as one full-document `workspace/applyEdit`. Called from the tool's blocking
/// thread; waits for the editor's answer.
struct EditorSink {
    client: Client,
    docs: Arc<Documents>,
    runtime: tokio::runtime::Handle,
    /// The client can create files in a workspace edit (else a new file is an edit of an
    /// empty document, which editors like Neovim accept).
    create_files: bool,
}

impl EditorSink {
    fn edit(
        &self,
        path: &Path,
        old: &str,
        new: &str,
    ) -> std::result::Result<WorkspaceEdit, String> {
        let uri = self
            .docs
            .uri_of(path)
            .or_else(|| Uri::from_file_path(path))
            .ok_or_else(|| format!("{} cannot be named by a file URI", path.display()))?;
        // Replace what the editor holds: its buffer if open, else the file as the tool read it.
        let open = self.docs.text_of(path);
        let is_new = open.is_none() && !path.exists();
        let current = open.unwrap_or_else(|| old.to_string());
        let range = Range {
            start: Position {
                line: 0,
                character: 0,
            },
            end: end_position(&current, self.docs.encoding()),
        };
        let text_edit = TextEdit {
            range,
            new_text: new.to_string(),
        };
        if is_new && self.create_files {
            let create = CreateFile {
                uri: uri.clone(),
                options: Some(CreateFileOptions {
                    overwrite: Some(false),
                    ignore_if_exists: Some(true),
                }),
                annotation_id: None,
            };
            let fill = TextDocumentEdit {
                text_document: OptionalVersionedTextDocumentIdentifier { uri, version: None },
                edits: vec![OneOf::Left(text_edit)],
            };
            return Ok(WorkspaceEdit {
                document_changes: Some(DocumentChanges::Operations(vec![
                    DocumentChangeOperation::Op(ResourceOp::Create(create)),
                    DocumentChangeOperation::Edit(fill),
                ])),
                ..WorkspaceEdit::default()
            });
        }
        Ok(WorkspaceEdit {
            changes: Some(HashMap::from([(uri, vec![text_edit])])),
            ..WorkspaceEdit::default()
        })
    }
}

impl EditSink for EditorSink {
    fn replace_file(&self, path: &Path, old: &str, new: &str) -> std::result::Result<(), String> {
        let edit = self.edit(path, old, new)?;
        let params = ApplyWorkspaceEditParams {
            label: Some("Noctune chat edit".into()),
            edit,
        };
        let (tx, rx) = std::sync::mpsc::channel();
        let client = self.client.clone();
        self.runtime.spawn(async move {
            let _ = tx.send(client.send_request::<ApplyWorkspaceEdit>(params).await);
        });
        match rx.recv_timeout(APPLY_TIMEOUT) {
            Ok(Ok(r)) if r.applied => Ok(()),
            Ok(Ok(r)) => Err(r
                .failure_reason
                .unwrap_or_else(|| "the editor declined the edit".into())),
            Ok(Err(e)) => Err(format!("workspace/applyEdit failed: {}", e.message)),
            Err(_) => Err(format!(
                "the editor did not answer workspace/applyEdit within {}s",
                APPLY_TIMEOUT.as_secs()
            )),
        }
    }
}

/// The event as a `noctune/chatDelta` payload: `{session, requestId, seq, kind, ...fields}`.
fn delta(session: &str, request_id: &str, seq: u64, e: &ChatEvent) -> Value {
    let mut v = serde_json::to_value(e)
        .unwrap_or_else(|_| json!({"type": "error", "message": "unserialisable event"}));
    let kind = v.get("type").cloned().unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        o.remove("type");
        o.insert("kind".into(), kind);
        o.insert("session".into(), json!(session));
        o.insert("requestId".into(), json!(request_id));
        o.insert("seq".into(), json!(seq));
    }
    v
}

/// The document as the chat sees it: repository-relative when inside the repository.
fn document_name(repo: &Path, uri: &Uri) -> Option<String> {
    let p = uri_path(uri)?;
    Some(match p.strip_prefix(repo) {
        Ok(rel) => rel.display().to_string(),
        Err(_) => p.display().to_string(),
    })
}

pub async fn chat(shared: &Shared, p: ChatParams) -> Result<Value> {
    if p.message.trim().is_empty() {
        return Err(invalid("`message` must not be empty"));
    }
    let studio = shared.studio().await?;
    let repo = shared.repo().await?;
    let r = repo.clone();
    let service = tokio::task::spawn_blocking(move || studio.chat(&r))
        .await
        .map_err(|e| failed(e.to_string()))?
        .map_err(|e| failed(e.to_string()))?;
    if let Some(profile) = p.profile.as_deref().filter(|s| !s.is_empty()) {
        let session = p.session.clone().unwrap_or_default();
        if !session.is_empty() {
            let (svc, prof) = (service.clone(), profile.to_string());
            tokio::task::spawn_blocking(move || svc.select_profile(&session, &prof))
                .await
                .map_err(|e| failed(e.to_string()))?
                .map_err(|e| failed(e.to_string()))?;
        }
    }
    let session = p
        .session
        .clone()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(noctune_studio::chat::new_session_id);
    let request_id = match &p.request_id {
        Some(id) => id_string(id),
        None => format!(
            "chat-{}",
            shared.chat.next.fetch_add(1, Ordering::Relaxed) + 1
        ),
    };
    let cancel = CancelToken::new();
    shared
        .chat
        .lock()
        .insert(request_id.clone(), (session.clone(), cancel.clone()));
    let _in_flight = InFlight {
        tracker: &shared.chat,
        request_id: request_id.clone(),
        cancel: cancel.clone(),
    };

    let selection = match (&p.context.text, &p.context.uri, p.context.selection) {
        (Some(t), _, _) => Some(t.clone()),
        (None, Some(uri), Some(range)) => shared.docs.slice(uri, range),
        _ => None,
    };
    let edit_sink: Option<Arc<dyn EditSink>> = shared.caps().apply_edit.then(|| {
        Arc::new(EditorSink {
            client: shared.client.clone(),
            docs: shared.docs.clone(),
            runtime: tokio::runtime::Handle::current(),
            create_files: shared.caps().create_files,
        }) as Arc<dyn EditSink>
    });
    let overlay: Arc<dyn BufferOverlay> = shared.docs.clone();
    let context = TurnContext {
        document: p.context.uri.as_ref().and_then(|u| document_name(&repo, u)),
        selection,
        edit_sink,
        overlay: Some(overlay),
    };
    let prompter = EditorPrompter {
        client: shared.client.clone(),
        actor: shared.decided_by(),
        diff_dir: repo.join(".noctune_cache").join("lsp").join("diffs"),
        show_document: shared.caps().show_document,
    };

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Value>();
    let (s, rid) = (session.clone(), request_id.clone());
    let turn = async move {
        let mut seq = 0u64;
        let mut on_event = move |e: ChatEvent| {
            let _ = tx.send(delta(&s, &rid, seq, &e));
            seq += 1;
        };
        service
            .send(
                &session,
                &p.message,
                context,
                &prompter,
                &mut on_event,
                &cancel,
            )
            .await
    };
    let client = shared.client.clone();
    let forward = async move {
        while let Some(v) = rx.recv().await {
            client.send_notification::<ChatDelta>(v).await;
        }
    };
    let (summary, ()) = tokio::join!(turn, forward);
    // Let the writer take the last deltas before the response exists (same task: one yield
    // hands the queued notifications to the output first).
    tokio::task::yield_now().await;
    tokio::task::yield_now().await;
    let summary = summary.map_err(|e| failed(e.to_string()))?;
    let mut out = serde_json::to_value(&summary).unwrap_or_else(|_| json!({}));
    if let Some(o) = out.as_object_mut() {
        o.insert("session".into(), json!(summary.session_id));
        o.insert("requestId".into(), json!(request_id));
        o.insert("text".into(), json!(summary.answer));
    }
    Ok(out)
}

/// `noctune/chatCancel`: by request id, or every turn of a session.
pub fn cancel(shared: &Shared, p: ChatCancelParams) -> Value {
    let rid = p.request_id.as_ref().map(id_string);
    let mut n = 0;
    for (id, (session, c)) in shared.chat.lock().iter() {
        if rid.as_deref() == Some(id.as_str())
            || (rid.is_none() && p.session.as_deref() == Some(session.as_str()))
        {
            c.cancel();
            n += 1;
        }
    }
    json!({"cancelled": n})
}
