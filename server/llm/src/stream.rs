//! Reading a streamed answer: SSE events in, [`StreamEvent`]s out, one [`ChatOutcome`] at the end.
//!
//! The [`Assembler`] is pure (chunk text in, events out) so it can be tested on recorded streams
//! without a network; [`read_sse`] adds the waiting: timeouts, cancellation and the end of the
//! stream. A stream is complete when `data: [DONE]` arrives or, for servers that omit `[DONE]`,
//! when it ends after a `finish_reason`; anything else is [`LlmError::StreamCut`] with what did
//! arrive, so a caller can still show (or resume from) the partial answer.

use super::cancel::CancelToken;
use super::error::{self, LlmError, TimeoutPhase};
pub use super::outcome::ChatOutcome;
use super::wire::{Chunk, Completion, FunctionCall, Timings, ToolCall, ToolCallDelta, Usage};
use eventsource_stream::{EventStreamError, Eventsource};
use futures_util::{Stream, StreamExt};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// What [`super::LlmClient::stream_chat`] reports while an answer arrives, in arrival order.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// A piece of the answer text.
    ContentDelta(String),
    /// A piece of the model's thinking (`reasoning_content`), never part of the answer text.
    ReasoningDelta(String),
    /// A native tool call began; `index` tells calls of one turn apart.
    ToolCallStarted {
        index: u32,
        id: String,
        name: String,
    },
    /// A piece of the JSON arguments of call `index`.
    ToolCallArgumentsDelta {
        index: u32,
        piece: String,
    },
    Usage(Usage),
    Timings(Timings),
    /// The model stopped: `"stop"`, `"length"`, `"tool_calls"`, ... (usage may still follow).
    Finished {
        finish_reason: String,
    },
}

/// What a `data:` event meant for the stream as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    Continue,
    /// `data: [DONE]`: nothing more will come.
    Done,
}

/// A tool call being assembled from its deltas.
#[derive(Debug, Default)]
struct PartialCall {
    id: String,
    name: String,
    arguments: String,
    announced: bool,
}

/// Turns chunk after chunk into events and the growing [`ChatOutcome`].
#[derive(Debug)]
pub(crate) struct Assembler {
    url: String,
    outcome: ChatOutcome,
    calls: BTreeMap<u32, PartialCall>,
    /// The index a call without an `index` field belongs to (some servers omit it).
    last_index: Option<u32>,
    done: bool,
}

impl Assembler {
    pub(crate) fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            outcome: ChatOutcome::default(),
            calls: BTreeMap::new(),
            last_index: None,
            done: false,
        }
    }

    /// Handles the data of one SSE event.
    pub(crate) fn feed(
        &mut self,
        data: &str,
        on_event: &mut (dyn FnMut(StreamEvent) + Send),
    ) -> Result<Flow, LlmError> {
        let data = data.trim();
        if data.is_empty() {
            return Ok(Flow::Continue);
        }
        if data == "[DONE]" {
            self.done = true;
            return Ok(Flow::Done);
        }
        let chunk: Chunk = serde_json::from_str(data).map_err(|e| LlmError::MalformedChunk {
            line: error::quote(data),
            detail: e.to_string(),
        })?;
        if let Some(err) = chunk.error.as_ref().filter(|e| !e.is_null()) {
            let fallback = LlmError::Http {
                status: 500,
                url: self.url.clone(),
                message: error::quote(&err.to_string()),
                kind: None,
            };
            return Err(error::from_error_value(500, &self.url, err).unwrap_or(fallback));
        }
        // Only the first choice is read: we never ask for `n > 1`.
        for choice in chunk
            .choices
            .unwrap_or_default()
            .into_iter()
            .filter(|c| c.index == 0)
        {
            if let Some(delta) = choice.delta {
                let reasoning = delta.reasoning_content.or(delta.reasoning);
                if let Some(piece) = reasoning.filter(|p| !p.is_empty()) {
                    self.outcome.reasoning.push_str(&piece);
                    on_event(StreamEvent::ReasoningDelta(piece));
                }
                if let Some(piece) = delta.content.filter(|p| !p.is_empty()) {
                    self.outcome.content.push_str(&piece);
                    on_event(StreamEvent::ContentDelta(piece));
                }
                for call in delta.tool_calls.unwrap_or_default() {
                    self.feed_call(call, on_event);
                }
            }
            if let Some(reason) = choice.finish_reason.filter(|r| !r.is_empty()) {
                self.outcome.finish_reason = Some(reason.clone());
                on_event(StreamEvent::Finished {
                    finish_reason: reason,
                });
            }
        }
        if let Some(usage) = chunk.usage {
            self.outcome.usage = Some(usage.clone());
            on_event(StreamEvent::Usage(usage));
        }
        if let Some(timings) = chunk.timings {
            self.outcome.timings = Some(timings.clone());
            on_event(StreamEvent::Timings(timings));
        }
        Ok(Flow::Continue)
    }

    fn feed_call(&mut self, delta: ToolCallDelta, on_event: &mut (dyn FnMut(StreamEvent) + Send)) {
        let function = delta.function.unwrap_or_default();
        let id = delta.id.filter(|id| !id.is_empty());
        let index = delta.index.unwrap_or_else(|| {
            // No index: a new id starts a new call, anything else continues the last one.
            let known = |id: &String| self.calls.values().any(|c| &c.id == id);
            match (&id, self.last_index) {
                (Some(id), _) if !known(id) => self.calls.keys().next_back().map_or(0, |i| i + 1),
                (_, Some(last)) => last,
                (None, None) => 0,
                (Some(_), None) => 0,
            }
        });
        self.last_index = Some(index);
        let call = self.calls.entry(index).or_default();
        // id and name come from the first delta that has them; some servers repeat them later.
        if call.id.is_empty()
            && let Some(id) = id
        {
            call.id = id;
        }
        if call.name.is_empty()
            && let Some(name) = function.name.filter(|n| !n.is_empty())
        {
            call.name = name;
        }
        if !call.announced && !call.name.is_empty() {
            call.announced = true;
            if call.id.is_empty() {
                call.id = format!("call_{index}");
            }
            on_event(StreamEvent::ToolCallStarted {
                index,
                id: call.id.clone(),
                name: call.name.clone(),
            });
        }
        if let Some(piece) = function.arguments.filter(|p| !p.is_empty()) {
            call.arguments.push_str(&piece);
            on_event(StreamEvent::ToolCallArgumentsDelta { index, piece });
        }
    }

    /// A complete answer needs `[DONE]` or a finish_reason.
    pub(crate) fn is_complete(&self) -> bool {
        self.done || self.outcome.finish_reason.is_some()
    }

    pub(crate) fn has_output(&self) -> bool {
        !self.outcome.content.is_empty()
            || !self.outcome.reasoning.is_empty()
            || !self.calls.is_empty()
    }

    pub(crate) fn set_time_to_first_byte(&mut self, ttfb: Duration) {
        self.outcome.time_to_first_byte = ttfb;
    }

    /// The outcome so far, tool calls assembled (complete or not).
    pub(crate) fn finish(mut self) -> ChatOutcome {
        self.outcome.tool_calls = self
            .calls
            .into_iter()
            .map(|(index, call)| ToolCall {
                id: if call.id.is_empty() {
                    format!("call_{index}")
                } else {
                    call.id
                },
                kind: "function".to_owned(),
                function: FunctionCall {
                    name: call.name,
                    arguments: call.arguments,
                },
            })
            .collect();
        self.outcome
    }

    /// A server that ignored `stream: true` and sent one JSON answer: replays it as events, so
    /// callers see the same thing either way.
    pub(crate) fn feed_completion(
        &mut self,
        body: &str,
        on_event: &mut (dyn FnMut(StreamEvent) + Send),
    ) -> Result<(), LlmError> {
        let completion: Completion =
            serde_json::from_str(body).map_err(|e| LlmError::InvalidResponse {
                url: self.url.clone(),
                detail: format!("{e}: {}", error::quote(body)),
            })?;
        let choice = completion.choices.into_iter().next().unwrap_or_default();
        let message = choice.message.unwrap_or_default();
        if let Some(piece) = message
            .reasoning_content
            .or(message.reasoning)
            .filter(|p| !p.is_empty())
        {
            self.outcome.reasoning.push_str(&piece);
            on_event(StreamEvent::ReasoningDelta(piece));
        }
        if let Some(piece) = message.content.filter(|p| !p.is_empty()) {
            self.outcome.content.push_str(&piece);
            on_event(StreamEvent::ContentDelta(piece));
        }
        for (i, call) in message
            .tool_calls
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            let index = u32::try_from(i).unwrap_or(u32::MAX);
            self.feed_call(
                ToolCallDelta {
                    index: Some(index),
                    id: call.id,
                    function: call.function,
                },
                on_event,
            );
        }
        if let Some(reason) = choice.finish_reason.filter(|r| !r.is_empty()) {
            self.outcome.finish_reason = Some(reason.clone());
            on_event(StreamEvent::Finished {
                finish_reason: reason,
            });
        }
        if let Some(usage) = completion.usage {
            self.outcome.usage = Some(usage.clone());
            on_event(StreamEvent::Usage(usage));
        }
        if let Some(timings) = completion.timings {
            self.outcome.timings = Some(timings.clone());
            on_event(StreamEvent::Timings(timings));
        }
        self.done = true;
        Ok(())
    }
}

/// The waits that bound reading one answer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// When the request was sent.
    pub started: Instant,
    /// `started + request_timeout`.
    pub deadline: Instant,
    pub request_timeout: Duration,
    /// Longest gap between two pieces once the answer has started.
    pub idle_timeout: Duration,
}

/// Reads an SSE body to the end and assembles the answer.
///
/// Until the first byte arrives only the request deadline applies (prompt processing of a long
/// prompt on a CPU can take minutes); after it, also the idle timeout. The idle timer runs on
/// raw bytes, not on whole events, so a server's keep-alive comments (`: ping`) keep a slow
/// stream alive.
pub(crate) async fn read_sse<S, B, E>(
    bytes: S,
    url: &str,
    limits: Limits,
    cancel: &CancelToken,
    on_event: &mut (dyn FnMut(StreamEvent) + Send),
) -> Result<ChatOutcome, LlmError>
where
    S: Stream<Item = Result<B, E>> + Send + Unpin,
    B: AsRef<[u8]>,
    E: fmt::Display,
{
    // Milliseconds after `started` of the last bytes received; u64::MAX = none yet.
    let activity = Arc::new(AtomicU64::new(u64::MAX));
    let seen = activity.clone();
    let started = limits.started;
    let bytes = bytes.inspect(move |item| {
        if item.is_ok() {
            let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
            seen.store(ms, Ordering::Relaxed);
        }
    });
    let mut events = bytes.eventsource();
    let mut asm = Assembler::new(url);
    let mut ttfb_set = false;

    loop {
        let last = activity.load(Ordering::Relaxed);
        let idle_deadline = (last != u64::MAX)
            .then(|| started + Duration::from_millis(last) + limits.idle_timeout)
            .map_or(limits.deadline, |idle| idle.min(limits.deadline));
        let next = tokio::select! {
            biased;
            _ = cancel.cancelled() => return Err(LlmError::Cancelled),
            next = events.next() => next,
            _ = tokio::time::sleep_until(idle_deadline) => {
                if activity.load(Ordering::Relaxed) != last {
                    continue; // bytes came in meanwhile (a partial event): the gap restarts
                }
                let now = Instant::now();
                return Err(if now >= limits.deadline {
                    let phase =
                        if last == u64::MAX { TimeoutPhase::FirstByte } else { TimeoutPhase::Total };
                    LlmError::Timeout { after: limits.request_timeout, phase }
                } else {
                    LlmError::Timeout { after: limits.idle_timeout, phase: TimeoutPhase::Idle }
                });
            }
        };
        if !ttfb_set {
            let last = activity.load(Ordering::Relaxed);
            if last != u64::MAX {
                asm.set_time_to_first_byte(Duration::from_millis(last));
                ttfb_set = true;
            }
        }
        match next {
            None => break,
            Some(Ok(event)) => {
                if asm.feed(&event.data, on_event)? == Flow::Done {
                    break;
                }
            }
            Some(Err(EventStreamError::Transport(e))) => {
                // The connection broke. After a finish_reason the answer is whole anyway.
                tracing::warn!(url, error = %e, "model stream broke off");
                break;
            }
            Some(Err(EventStreamError::Utf8(e))) => {
                return Err(LlmError::MalformedChunk {
                    line: String::new(),
                    detail: format!("not UTF-8: {e}"),
                });
            }
            Some(Err(EventStreamError::Parser(e))) => {
                return Err(LlmError::MalformedChunk {
                    line: error::quote(&e.input),
                    detail: format!("not server-sent events: {:?}", e.code),
                });
            }
        }
    }
    if asm.is_complete() {
        Ok(asm.finish())
    } else {
        if !asm.has_output() {
            tracing::warn!(url, "model stream ended before any output");
        }
        Err(LlmError::StreamCut {
            partial: Box::new(asm.finish()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::recording;
    use serde_json::json;

    const URL: &str = "http://127.0.0.1:8080/v1";

    fn limits() -> Limits {
        let started = Instant::now();
        Limits {
            started,
            deadline: started + Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(5),
        }
    }

    /// Feeds `text` to [`read_sse`] in pieces of `size` bytes, which splits events, lines and
    /// even UTF-8 characters the way TCP may.
    async fn read_in_pieces(
        text: &str,
        size: usize,
    ) -> (Result<ChatOutcome, LlmError>, Vec<StreamEvent>) {
        let pieces: Vec<Result<Vec<u8>, std::io::Error>> = text
            .as_bytes()
            .chunks(size)
            .map(|c| Ok(c.to_vec()))
            .collect();
        let mut events = Vec::new();
        let result = read_sse(
            futures_util::stream::iter(pieces),
            URL,
            limits(),
            &CancelToken::new(),
            &mut |e| events.push(e),
        )
        .await;
        (result, events)
    }

    fn sse(chunks: &[serde_json::Value], done: bool) -> String {
        let mut out: String = chunks.iter().map(|c| format!("data: {c}\n\n")).collect();
        if done {
            out.push_str("data: [DONE]\n\n");
        }
        out
    }

    fn delta(delta: serde_json::Value) -> serde_json::Value {
        json!({"choices": [{"finish_reason": null, "index": 0, "delta": delta}],
               "object": "chat.completion.chunk"})
    }

    fn finish(reason: &str) -> serde_json::Value {
        json!({"choices": [{"finish_reason": reason, "index": 0, "delta": {}}]})
    }

    #[tokio::test]
    async fn recorded_plain_stream_assembles_in_any_split() {
        let text = recording("plain-stream.sse");
        for size in [1, 3, 7, 64, text.len()] {
            let (result, events) = read_in_pieces(&text, size).await;
            let outcome = result.expect("complete stream");
            assert_eq!(
                outcome.content, "elineEHICLEEHICLE\u{7f15}\u{8036}\u{fffd} voc Logging",
                "split {size}"
            );
            assert_eq!(outcome.finish_reason.as_deref(), Some("length"));
            let usage = outcome.usage.as_ref().expect("usage");
            assert_eq!(
                (
                    usage.prompt_tokens,
                    usage.completion_tokens,
                    usage.total_tokens
                ),
                (18, 8, 26)
            );
            let timings = outcome.timings.as_ref().expect("timings");
            assert_eq!(timings.prompt_n, Some(18));
            assert_eq!(timings.predicted_n, Some(8));
            assert_eq!(timings.predicted_per_second, Some(132.93074308285384));
            assert_eq!(timings.cache_n, Some(0));
            let contents = events
                .iter()
                .filter(|e| matches!(e, StreamEvent::ContentDelta(_)))
                .count();
            assert_eq!(contents, 6, "split {size}");
            assert!(matches!(events.last(), Some(StreamEvent::Timings(_))));
        }
    }

    #[tokio::test]
    async fn recorded_json_schema_stream_has_timings_on_the_finish_chunk() {
        let (result, _) = read_in_pieces(&recording("json-schema-stream.sse"), 5).await;
        let outcome = result.expect("complete");
        assert_eq!(outcome.finish_reason.as_deref(), Some("stop"));
        assert!(outcome.usage.is_none(), "no include_usage in that request");
        assert_eq!(outcome.timings.and_then(|t| t.predicted_n), Some(42));
        assert!(outcome.content.starts_with('{') && outcome.content.ends_with('}'));
    }

    #[tokio::test]
    async fn tool_calls_split_over_many_chunks_are_assembled_by_index() {
        let args0 = r#"{"path": "src/main.rs", "start": 1}"#;
        let args1 = r#"{"pattern": "fn main"}"#;
        let mut chunks = vec![delta(json!({"role": "assistant", "content": null}))];
        chunks.push(delta(
            json!({"tool_calls": [{"index": 0, "id": "call_a", "type": "function",
            "function": {"name": "readFile", "arguments": ""}}]}),
        ));
        for piece in args0.as_bytes().chunks(4) {
            let piece = std::str::from_utf8(piece).unwrap();
            chunks.push(delta(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}),
            ));
        }
        chunks.push(delta(
            json!({"tool_calls": [{"index": 1, "id": "call_b", "type": "function",
            "function": {"name": "search", "arguments": "{\"pat"}}]}),
        ));
        chunks.push(delta(json!({"tool_calls": [{"index": 1, "function": {"arguments": "tern\": \"fn main\"}"}}]})));
        chunks.push(finish("tool_calls"));
        let (result, events) = read_in_pieces(&sse(&chunks, true), 11).await;
        let outcome = result.expect("complete");
        assert_eq!(
            outcome.tool_calls,
            vec![
                ToolCall::function("call_a", "readFile", args0),
                ToolCall::function("call_b", "search", args1)
            ]
        );
        assert_eq!(outcome.finish_reason.as_deref(), Some("tool_calls"));
        assert!(outcome.content.is_empty());
        let started: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                StreamEvent::ToolCallStarted { index, id, name } => {
                    Some((*index, id.clone(), name.clone()))
                }
                _ => None,
            })
            .collect();
        assert_eq!(
            started,
            vec![
                (0, "call_a".into(), "readFile".into()),
                (1, "call_b".into(), "search".into())
            ]
        );
        let pieces = events
            .iter()
            .filter(|e| matches!(e, StreamEvent::ToolCallArgumentsDelta { index: 0, .. }))
            .count();
        assert_eq!(pieces, args0.len().div_ceil(4));
    }

    #[tokio::test]
    async fn calls_without_index_or_id_still_assemble() {
        let chunks = vec![
            delta(
                json!({"tool_calls": [{"id": "x1", "function": {"name": "a", "arguments": "{\"k\""}}]}),
            ),
            delta(json!({"tool_calls": [{"function": {"arguments": ":1}"}}]})),
            delta(
                json!({"tool_calls": [{"id": "x2", "function": {"name": "b", "arguments": "{}"}}]}),
            ),
            delta(
                json!({"tool_calls": [{"index": 2, "function": {"name": "c", "arguments": "{}"}}]}),
            ),
            finish("tool_calls"),
        ];
        let (result, _) = read_in_pieces(&sse(&chunks, false), 1000).await;
        let outcome = result.expect("finish_reason without [DONE] is complete");
        assert_eq!(
            outcome.tool_calls,
            vec![
                ToolCall::function("x1", "a", "{\"k\":1}"),
                ToolCall::function("x2", "b", "{}"),
                ToolCall::function("call_2", "c", "{}"),
            ]
        );
    }

    #[tokio::test]
    async fn reasoning_is_kept_apart_from_content() {
        let chunks = vec![
            delta(json!({"role": "assistant", "content": null})),
            delta(json!({"reasoning_content": "Let me"})),
            delta(json!({"reasoning_content": " think."})),
            delta(json!({"reasoning": " (other name)"})),
            delta(json!({"content": "Answer"})),
            finish("stop"),
        ];
        let (result, events) = read_in_pieces(&sse(&chunks, true), 9).await;
        let outcome = result.expect("complete");
        assert_eq!(outcome.reasoning, "Let me think. (other name)");
        assert_eq!(outcome.content, "Answer");
        assert_eq!(events[0], StreamEvent::ReasoningDelta("Let me".into()));
        let msg = outcome.assistant_message();
        assert_eq!(msg.content.as_deref(), Some("Answer"));
        assert_eq!(
            msg.reasoning_content.as_deref(),
            Some("Let me think. (other name)")
        );
    }

    #[tokio::test]
    async fn a_cut_stream_keeps_the_partial_answer() {
        let chunks = vec![
            delta(json!({"content": "I will read it."})),
            delta(
                json!({"tool_calls": [{"index": 0, "id": "c1", "function": {"name": "readFile", "arguments": "{\"pa"}}]}),
            ),
        ];
        let (result, _) = read_in_pieces(&sse(&chunks, false), 8).await;
        match result {
            Err(LlmError::StreamCut { partial }) => {
                assert_eq!(partial.content, "I will read it.");
                assert_eq!(
                    partial.tool_calls,
                    vec![ToolCall::function("c1", "readFile", "{\"pa")]
                );
                assert!(partial.finish_reason.is_none());
            }
            other => panic!("expected StreamCut, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn malformed_chunks_and_error_objects() {
        let text = format!(
            "data: {}\n\ndata: {{\"choices\": [{{\"delta\"\n\n",
            delta(json!({"content": "a"}))
        );
        match read_in_pieces(&text, 4).await.0 {
            Err(LlmError::MalformedChunk { line, detail }) => {
                assert!(line.contains("\"delta\""), "{line}");
                assert!(!detail.is_empty());
            }
            other => panic!("expected MalformedChunk, got {other:?}"),
        }
        let text = "data: {\"error\":{\"code\":500,\"message\":\"slot crashed\",\"type\":\"server_error\"}}\n\n";
        match read_in_pieces(text, 4).await.0 {
            Err(LlmError::Http {
                status: 500,
                message,
                kind,
                ..
            }) => {
                assert_eq!(message, "slot crashed");
                assert_eq!(kind.as_deref(), Some("server_error"));
            }
            other => panic!("expected Http, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn keepalive_comments_and_empty_data_are_ignored() {
        let text = format!(
            ": ping\n\ndata: {}\n\n: ping\n\ndata:\n\ndata: {}\n\ndata: [DONE]\n\n",
            delta(json!({"content": "x"})),
            finish("stop")
        );
        let outcome = read_in_pieces(&text, 2).await.0.expect("complete");
        assert_eq!(outcome.content, "x");
    }

    #[tokio::test]
    async fn non_streamed_answer_is_replayed_as_events() {
        let mut asm = Assembler::new(URL);
        let mut events = Vec::new();
        asm.feed_completion(&recording("plain.json"), &mut |e| events.push(e))
            .expect("parsed");
        let outcome = asm.finish();
        assert!(outcome.content.ends_with("Veter"));
        assert_eq!(outcome.finish_reason.as_deref(), Some("length"));
        assert_eq!(outcome.usage.map(|u| u.total_tokens), Some(38));
        assert_eq!(outcome.timings.and_then(|t| t.cache_n), Some(5));
        assert!(matches!(events[0], StreamEvent::ContentDelta(_)));
    }
}
