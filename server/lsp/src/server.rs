//! The `LanguageServer` implementation and the `noctune/*` methods: each handler only
//! translates, the modules next to it do the work through the `Studio` facade.

use super::documents::Encoding;
use super::protocol::{
    self, ApprovalsParams, ChatCancelParams, ChatParams, RunsStartParams, RunsStopParams,
    StudioUrlParams,
};
use super::state::{ClientCaps, Shared};
use noctune_core::Decision;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::watch;
use tower_lsp_server::jsonrpc::Result;
use tower_lsp_server::ls_types::*;
use tower_lsp_server::{ClientSocket, LanguageServer, LspService};

pub struct Backend {
    pub shared: Arc<Shared>,
}

/// The service with our custom methods, and the shared state (for the session's end).
pub fn build(
    repo: Option<PathBuf>,
    studio_url: watch::Receiver<super::StudioUrl>,
) -> (LspService<Backend>, ClientSocket, Arc<Shared>) {
    let mut handle = None;
    let (service, socket) = LspService::build(|client| {
        let shared = Arc::new(Shared::new(client, repo, studio_url));
        handle = Some(shared.clone());
        Backend { shared }
    })
    .custom_method(protocol::CHAT, Backend::chat)
    .custom_method(protocol::CHAT_CANCEL, Backend::chat_cancel)
    .custom_method(protocol::RUNS_START, Backend::runs_start)
    .custom_method(protocol::RUNS_LIST, Backend::runs_list)
    .custom_method(protocol::RUNS_STOP, Backend::runs_stop)
    .custom_method(protocol::APPROVALS, Backend::approvals)
    .custom_method(protocol::PACKS, Backend::packs)
    .custom_method(protocol::STUDIO_URL, Backend::studio_url)
    .finish();
    let shared = match handle {
        Some(s) => s,
        None => unreachable!("LspService::build calls its init closure"),
    };
    (service, socket, shared)
}

fn pick_encoding(params: &InitializeParams) -> Encoding {
    let offered = params
        .capabilities
        .general
        .as_ref()
        .and_then(|g| g.position_encodings.clone())
        .unwrap_or_default();
    if offered.iter().any(|e| *e == PositionEncodingKind::UTF8) {
        Encoding::Utf8
    } else {
        Encoding::Utf16
    }
}

#[allow(deprecated)] // root_uri: older clients send only that
fn workspace_dir(params: &InitializeParams) -> Option<PathBuf> {
    let folder = params
        .workspace_folders
        .as_ref()
        .and_then(|f| f.first())
        .map(|f| f.uri.clone());
    folder
        .or_else(|| params.root_uri.clone())
        .and_then(|u| super::documents::uri_path(&u))
}

fn encoding_kind(e: Encoding) -> PositionEncodingKind {
    match e {
        Encoding::Utf8 => PositionEncodingKind::UTF8,
        Encoding::Utf16 => PositionEncodingKind::UTF16,
        Encoding::Utf32 => PositionEncodingKind::UTF32,
    }
}

impl LanguageServer for Backend {
    async fn initialize(&self, params: InitializeParams) -> Result<InitializeResult> {
        let s = &self.shared;
        let enc = pick_encoding(&params);
        s.docs.set_encoding(enc);
        let caps = &params.capabilities;
        *s.caps.lock().unwrap_or_else(|p| p.into_inner()) = ClientCaps {
            work_done_progress: caps
                .window
                .as_ref()
                .and_then(|w| w.work_done_progress)
                .unwrap_or(false),
            show_document: caps
                .window
                .as_ref()
                .and_then(|w| w.show_document.as_ref())
                .is_some_and(|d| d.support),
            apply_edit: caps
                .workspace
                .as_ref()
                .and_then(|w| w.apply_edit)
                .unwrap_or(false),
            create_files: caps
                .workspace
                .as_ref()
                .and_then(|w| w.workspace_edit.as_ref())
                .is_some_and(|e| {
                    e.document_changes == Some(true)
                        && e.resource_operations
                            .as_ref()
                            .is_some_and(|r| r.contains(&ResourceOperationKind::Create))
                }),
            name: params
                .client_info
                .as_ref()
                .map(|c| c.name.clone())
                .unwrap_or_default(),
        };
        {
            let mut hint = s.repo_hint.lock().unwrap_or_else(|p| p.into_inner());
            if hint.is_none() {
                *hint = workspace_dir(&params);
            }
        }
        let sync = TextDocumentSyncOptions {
            open_close: Some(true),
            change: Some(TextDocumentSyncKind::INCREMENTAL),
            save: Some(TextDocumentSyncSaveOptions::Supported(true)),
            ..TextDocumentSyncOptions::default()
        };
        Ok(InitializeResult {
            capabilities: ServerCapabilities {
                position_encoding: Some(encoding_kind(enc)),
                text_document_sync: Some(TextDocumentSyncCapability::Options(sync)),
                code_action_provider: Some(CodeActionProviderCapability::Options(
                    CodeActionOptions {
                        code_action_kinds: Some(vec![CodeActionKind::QUICKFIX]),
                        ..CodeActionOptions::default()
                    },
                )),
                execute_command_provider: Some(ExecuteCommandOptions {
                    commands: protocol::COMMANDS.iter().map(|c| c.to_string()).collect(),
                    ..ExecuteCommandOptions::default()
                }),
                experimental: Some(json!({"noctune": {
                    "protocolVersion": 1,
                    "requests": [protocol::CHAT, protocol::CHAT_CANCEL, protocol::RUNS_START, protocol::RUNS_LIST,
                                 protocol::RUNS_STOP, protocol::APPROVALS, protocol::PACKS, protocol::STUDIO_URL],
                    "notifications": [protocol::CHAT_DELTA],
                    "commands": protocol::COMMANDS,
                }})),
                ..ServerCapabilities::default()
            },
            server_info: Some(ServerInfo {
                name: "noctune".into(),
                version: Some(env!("CARGO_PKG_VERSION").into()),
            }),
            offset_encoding: None,
        })
    }

    async fn initialized(&self, _: InitializedParams) {
        tokio::spawn(super::watch::run(self.shared.clone()));
        tokio::spawn(super::report_studio_url(self.shared.clone()));
    }

    async fn shutdown(&self) -> Result<()> {
        self.shared
            .shutdown
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.shared.chat.cancel_all();
        Ok(())
    }

    async fn did_open(&self, p: DidOpenTextDocumentParams) {
        let d = p.text_document;
        self.shared.docs.open(d.uri, d.text);
    }

    async fn did_change(&self, p: DidChangeTextDocumentParams) {
        self.shared
            .docs
            .change(&p.text_document.uri, p.content_changes);
    }

    async fn did_close(&self, p: DidCloseTextDocumentParams) {
        self.shared.docs.close(&p.text_document.uri);
    }

    async fn did_save(&self, _: DidSaveTextDocumentParams) {}

    async fn code_action(&self, p: CodeActionParams) -> Result<Option<CodeActionResponse>> {
        Ok(Some(super::approvals::code_actions(&self.shared, &p)))
    }

    async fn execute_command(&self, p: ExecuteCommandParams) -> Result<Option<LSPAny>> {
        let s = &self.shared;
        let v = match p.command.as_str() {
            protocol::CMD_APPROVE => {
                super::approvals::decide(s, &p.arguments, Decision::Approve).await?
            }
            protocol::CMD_REJECT => {
                super::approvals::decide(s, &p.arguments, Decision::Reject).await?
            }
            protocol::CMD_SHOW_DIFF => super::approvals::show_diff(s, &p.arguments).await?,
            other => return Err(super::approvals::unknown_command(other)),
        };
        Ok(Some(v))
    }
}

impl Backend {
    async fn chat(&self, p: ChatParams) -> Result<Value> {
        super::chat::chat(&self.shared, p).await
    }

    async fn chat_cancel(&self, p: ChatCancelParams) -> Result<Value> {
        Ok(super::chat::cancel(&self.shared, p))
    }

    async fn runs_start(&self, p: RunsStartParams) -> Result<Value> {
        super::runs::start(&self.shared, p).await
    }

    async fn runs_list(&self, _: Value) -> Result<Value> {
        super::runs::list(&self.shared).await
    }

    async fn runs_stop(&self, p: RunsStopParams) -> Result<Value> {
        super::runs::stop(&self.shared, p).await
    }

    async fn approvals(&self, p: ApprovalsParams) -> Result<Value> {
        super::approvals::list(&self.shared, p).await
    }

    async fn packs(&self, _: Value) -> Result<Value> {
        super::runs::packs(&self.shared).await
    }

    async fn studio_url(&self, p: StudioUrlParams) -> Result<Value> {
        super::studio_url(&self.shared, p).await
    }
}
