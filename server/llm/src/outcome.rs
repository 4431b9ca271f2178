//! The whole answer a stream assembles into.
//!
//! Apart from [`super::stream`] so that [`super::error`] can carry a partial answer
//! ([`super::LlmError::StreamCut`]) without the error and stream modules importing each other.

use super::wire::{ChatMessage, Role, Timings, ToolCall, Usage};
use std::time::Duration;

/// A whole answer, assembled from the stream.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChatOutcome {
    pub content: String,
    pub reasoning: String,
    /// In `index` order. Arguments are the concatenated pieces, unparsed. A call whose first
    /// delta had no id gets `call_<index>`, so tool results can always answer it.
    pub tool_calls: Vec<ToolCall>,
    pub finish_reason: Option<String>,
    pub usage: Option<Usage>,
    pub timings: Option<Timings>,
    /// From sending the request to the first byte of the answer: prompt processing time, mostly.
    pub time_to_first_byte: Duration,
}

impl ChatOutcome {
    /// The assistant message to append to the conversation for the next request.
    pub fn assistant_message(&self) -> ChatMessage {
        ChatMessage {
            role: Role::Assistant,
            content: (!self.content.is_empty() || self.tool_calls.is_empty())
                .then(|| self.content.clone()),
            reasoning_content: (!self.reasoning.is_empty()).then(|| self.reasoning.clone()),
            tool_calls: (!self.tool_calls.is_empty()).then(|| self.tool_calls.clone()),
            ..ChatMessage::default()
        }
    }
}
