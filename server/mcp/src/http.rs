//! `/mcp`: the same tools over Streamable HTTP, mounted by the studio server inside its auth
//! layer (token, Host and Origin checks). rmcp's own Host and Origin allowlists are set to
//! loopback as a second line of defence.

use super::server::NoctuneMcp;
use futures_util::Stream;
use noctune_studio::Studio;
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::session::{EventStore, ServerSseMessage};
use rmcp::transport::streamable_http_server::{RestoreOutcome, SessionId, SessionManager};
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use std::sync::Arc;
use tracing::instrument::WithSubscriber;

/// Loopback hosts (any port): the studio server binds 127.0.0.1 only.
pub const ALLOWED_HOSTS: [&str; 3] = ["127.0.0.1", "localhost", "::1"];
/// Browser origins allowed to call `/mcp` (any port; the studio layer checks the exact one).
pub const ALLOWED_ORIGINS: [&str; 3] =
    ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"];

/// A router serving MCP Streamable HTTP at `/mcp`.
pub fn http_router(studio: Arc<Studio>) -> axum::Router {
    let config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(ALLOWED_HOSTS)
        .with_allowed_origins(ALLOWED_ORIGINS)
        .enforce_origin_validation();
    let service = StreamableHttpService::new(
        move || Ok(NoctuneMcp::new(studio.clone())),
        Arc::new(QuietSessions(LocalSessionManager::default())),
        config,
    );
    axum::Router::new().route_service("/mcp", service)
}

/// rmcp's in-memory sessions, except that making one logs nothing: rmcp logs each new
/// session's id at INFO, and a session id is as good as a password for that session (with the
/// access token), so it must not land in a log that `NOCTUNE_LOG=info` turns on. Everything
/// else is rmcp's own.
struct QuietSessions(LocalSessionManager);

type Local = LocalSessionManager;

impl SessionManager for QuietSessions {
    type Error = <Local as SessionManager>::Error;
    type Transport = <Local as SessionManager>::Transport;

    fn create_session(
        &self,
    ) -> impl Future<Output = Result<(SessionId, Self::Transport), Self::Error>> + Send {
        // Only this call's own events are dropped (no subscriber while it runs); the
        // session's worker task it spawns logs as usual.
        self.0
            .create_session()
            .with_subscriber(tracing::Dispatch::none())
    }

    fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> impl Future<Output = Result<ServerJsonRpcMessage, Self::Error>> + Send {
        self.0.initialize_session(id, message)
    }

    fn has_session(
        &self,
        id: &SessionId,
    ) -> impl Future<Output = Result<bool, Self::Error>> + Send {
        self.0.has_session(id)
    }

    fn close_session(
        &self,
        id: &SessionId,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        self.0.close_session(id)
    }

    fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> impl Future<
        Output = Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error>,
    > + Send {
        self.0.create_stream(id, message)
    }

    fn accept_message(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        self.0.accept_message(id, message)
    }

    fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> impl Future<
        Output = Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error>,
    > + Send {
        self.0.create_standalone_stream(id)
    }

    fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> impl Future<
        Output = Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error>,
    > + Send {
        self.0.resume(id, last_event_id)
    }

    fn restore_session(
        &self,
        id: SessionId,
    ) -> impl Future<Output = Result<RestoreOutcome<Self::Transport>, Self::Error>> + Send {
        // Makes a session too, logging its id the same way.
        self.0
            .restore_session(id)
            .with_subscriber(tracing::Dispatch::none())
    }

    fn event_store(&self) -> Option<Arc<dyn EventStore>> {
        self.0.event_store()
    }
}
