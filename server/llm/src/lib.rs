//! The OpenAI-compatible model client: wire types, SSE streaming and tool-call delta assembly.
//!
//! Written against llama.cpp's `llama-server` (the default model server of Noctune Studio) and
//! checked against its recorded output (`fixtures/llm/recordings/`), but it speaks the plain
//! OpenAI chat-completions protocol, so vLLM, Ollama, LM Studio or a hosted API work too.
//!
//! Why a client of our own instead of a generic OpenAI crate: llama-server streams fields the
//! generic crates drop (`reasoning_content`, `timings`), and local servers need errors that say
//! what to do (start the server, raise `--ctx-size`, fall back from native tools to prompt tools).
//!
//! Layout, kept small so each part can be read alone:
//! - [`wire`]: serde types exactly as they travel (no logic), tolerant of unknown fields.
//! - [`stream`]: SSE reading, delta assembly into a [`ChatOutcome`], the [`StreamEvent`]s.
//! - [`outcome`]: [`ChatOutcome`], the assembled answer (apart so errors can carry one).
//! - [`client`]: [`LlmEndpoint`], [`LlmClient`]: HTTP, timeouts, cancellation; also asks
//!   llama-server what it can do (`/props`) and counts a prompt's tokens with the server's own
//!   chat template and tokenizer (`/apply-template`, `/tokenize`).
//! - [`caps`]: [`ServerCapabilities`], what the server reported (native tools, context, model).
//! - [`error`]: [`LlmError`] and the parsing of server error bodies.
//! - [`cancel`]: [`CancelToken`], a tiny cancellation flag (tokio-util is not a dependency).
//!
//! This module knows nothing about chat sessions, tools or runs: it depends only on std, the
//! HTTP/serde crates and `crate::util`. The tool-calling fallback ladder lives with the caller,
//! which uses [`LlmError::is_tools_rejected`] to decide when to step down to prompt tools.

pub mod cancel;
pub mod caps;
pub mod client;
pub mod error;
pub mod outcome;
pub mod stream;
pub mod wire;

pub use cancel::CancelToken;
pub use caps::{ServerCapabilities, ServerKind};
pub use client::{LlmClient, LlmEndpoint, install_crypto_provider};
pub use error::{LlmError, TimeoutPhase};
pub use stream::{ChatOutcome, StreamEvent};
pub use wire::{
    ChatMessage, ChatRequest, FunctionCall, FunctionSpec, Role, Timings, ToolCall, ToolSpec, Usage,
};

#[cfg(test)]
mod test_support;
