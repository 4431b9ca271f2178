//! Serde types of the OpenAI chat-completions protocol as llama-server speaks it.
//!
//! Only data here, no logic (as in Zed's `open_ai` crate), so the wire format can be read and
//! changed in one place. Every incoming type tolerates unknown fields and missing optional ones:
//! servers add fields all the time (llama-server's `timings`, `prompt_tokens_details`), and a new
//! field must never turn a good answer into an error. `Usage` and `Timings` keep what they do not
//! name in `extra`, so nothing the server measured is lost.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    #[default]
    User,
    Assistant,
    Tool,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }
}

/// One message of the conversation sent to the model.
///
/// `content` is always serialised (as `null` when absent): llama-server, vLLM and OpenAI all
/// accept a null content on an assistant message that carries `tool_calls`, while some servers
/// reject a message with no `content` key at all. `reasoning_content` is kept apart from
/// `content` (never merged) so a UI can fold the thinking away and a caller can decide whether to
/// send it back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ChatMessage {
    pub role: Role,
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl ChatMessage {
    pub fn system(content: impl Into<String>) -> Self {
        Self::with_content(Role::System, content)
    }

    pub fn user(content: impl Into<String>) -> Self {
        Self::with_content(Role::User, content)
    }

    pub fn assistant(content: impl Into<String>) -> Self {
        Self::with_content(Role::Assistant, content)
    }

    /// The result of one tool call, answering the assistant's call `tool_call_id`.
    pub fn tool_result(tool_call_id: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            tool_call_id: Some(tool_call_id.into()),
            ..Self::with_content(Role::Tool, content)
        }
    }

    fn with_content(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: Some(content.into()),
            ..Self::default()
        }
    }
}

/// A native tool call made by the assistant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    /// Always `"function"` today; kept as a string so a new kind does not break parsing.
    #[serde(rename = "type", default = "function_kind")]
    pub kind: String,
    pub function: FunctionCall,
}

impl ToolCall {
    pub fn function(
        id: impl Into<String>,
        name: impl Into<String>,
        arguments: impl Into<String>,
    ) -> Self {
        Self {
            id: id.into(),
            kind: function_kind(),
            function: FunctionCall {
                name: name.into(),
                arguments: arguments.into(),
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionCall {
    pub name: String,
    /// The arguments as the model wrote them: a JSON object in a string, possibly invalid JSON
    /// (local models make mistakes); the caller parses and reports.
    #[serde(default)]
    pub arguments: String,
}

/// A tool offered to the model (`tools` in the request).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    #[serde(rename = "type", default = "function_kind")]
    pub kind: String,
    pub function: FunctionSpec,
}

impl ToolSpec {
    pub fn function(
        name: impl Into<String>,
        description: impl Into<String>,
        parameters: Value,
    ) -> Self {
        Self {
            kind: function_kind(),
            function: FunctionSpec {
                name: name.into(),
                description: description.into(),
                parameters,
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionSpec {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// A JSON schema of the arguments object.
    pub parameters: Value,
}

fn function_kind() -> String {
    "function".to_string()
}

/// What a caller asks for. The model name, `stream` and `stream_options` are added by the
/// client; `temperature` and `max_tokens` here override the endpoint's defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ChatRequest {
    pub messages: Vec<ChatMessage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<ToolSpec>>,
    /// `"auto"`, `"none"`, `"required"` or `{"type":"function","function":{"name":..}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// e.g. `{"type":"json_schema","json_schema":{..}}`: llama-server turns it into a grammar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<Value>,
    /// Texts that end the answer where they would begin (OpenAI `stop`); prompt-mode tool
    /// calling stops a model before it invents the result of its own call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Vec<String>>,
}

impl ChatRequest {
    pub fn new(messages: Vec<ChatMessage>) -> Self {
        Self {
            messages,
            ..Self::default()
        }
    }
}

/// Token counts of one request (`usage`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Usage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
    #[serde(default)]
    pub total_tokens: u64,
    /// Everything else, e.g. `prompt_tokens_details: {cached_tokens}`.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// llama-server's speed report (`timings`). Every field is optional because other servers send
/// none of it and llama-server versions differ (speculative decoding adds `draft_n`, ...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Timings {
    /// Prompt tokens served from the KV cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_n: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_n: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_per_token_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_per_second: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicted_n: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicted_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicted_per_token_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicted_per_second: Option<f64>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

// ---- outgoing request body ----

/// The JSON body POSTed to `/chat/completions`.
#[derive(Debug, Serialize)]
pub(crate) struct RequestBody<'a> {
    pub model: &'a str,
    pub messages: &'a [ChatMessage],
    pub stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tools: Option<&'a [ToolSpec]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_format: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop: Option<&'a [String]>,
}

#[derive(Debug, Serialize)]
pub(crate) struct StreamOptions {
    pub include_usage: bool,
}

// ---- incoming stream chunks ----

/// One `data:` event of a streamed answer (`object: "chat.completion.chunk"`). The last chunk of
/// llama-server has `choices: []` and carries `usage` and `timings`; an error mid-stream arrives
/// as `{"error": {...}}` with no choices.
#[derive(Debug, Deserialize, Default)]
pub(crate) struct Chunk {
    #[serde(default)]
    pub choices: Option<Vec<ChunkChoice>>,
    #[serde(default)]
    pub usage: Option<Usage>,
    #[serde(default)]
    pub timings: Option<Timings>,
    #[serde(default)]
    pub error: Option<Value>,
}

#[derive(Debug, Deserialize, Default)]
pub(crate) struct ChunkChoice {
    #[serde(default)]
    pub index: u32,
    #[serde(default)]
    pub delta: Option<Delta>,
    #[serde(default)]
    pub finish_reason: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
pub(crate) struct Delta {
    #[serde(default)]
    pub content: Option<String>,
    /// llama-server, DeepSeek, vLLM < 0.10.
    #[serde(default)]
    pub reasoning_content: Option<String>,
    /// Ollama, newer vLLM, OpenRouter: the same thing under another name.
    #[serde(default)]
    pub reasoning: Option<String>,
    #[serde(default)]
    pub tool_calls: Option<Vec<ToolCallDelta>>,
}

/// A piece of a tool call: the first piece of a call carries `id`, `type` and `function.name`,
/// later ones only `index` and a piece of `function.arguments`.
#[derive(Debug, Deserialize, Default)]
pub(crate) struct ToolCallDelta {
    #[serde(default)]
    pub index: Option<u32>,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub function: Option<FunctionDelta>,
}

#[derive(Debug, Deserialize, Default)]
pub(crate) struct FunctionDelta {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub arguments: Option<String>,
}

// ---- incoming non-streamed answer (servers that ignore `stream: true`) ----

#[derive(Debug, Deserialize, Default)]
pub(crate) struct Completion {
    #[serde(default)]
    pub choices: Vec<CompletionChoice>,
    #[serde(default)]
    pub usage: Option<Usage>,
    #[serde(default)]
    pub timings: Option<Timings>,
}

#[derive(Debug, Deserialize, Default)]
pub(crate) struct CompletionChoice {
    #[serde(default)]
    pub message: Option<CompletionMessage>,
    #[serde(default)]
    pub finish_reason: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
pub(crate) struct CompletionMessage {
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default)]
    pub reasoning_content: Option<String>,
    #[serde(default)]
    pub reasoning: Option<String>,
    #[serde(default)]
    pub tool_calls: Option<Vec<CompletionToolCall>>,
}

/// A complete tool call of a non-streamed answer: like [`ToolCall`] but tolerant of a missing id.
#[derive(Debug, Deserialize, Default)]
pub(crate) struct CompletionToolCall {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub function: Option<FunctionDelta>,
}

// ---- GET /models ----

/// `GET /v1/models`. llama-server answers with both the OpenAI list (`data[].id`) and an
/// Ollama-style list (`models[].name`); other servers send only `data`.
#[derive(Debug, Deserialize, Default)]
pub(crate) struct ModelList {
    #[serde(default)]
    pub data: Vec<ModelEntry>,
    #[serde(default)]
    pub models: Vec<ModelEntry>,
}

#[derive(Debug, Deserialize, Default)]
pub(crate) struct ModelEntry {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    /// vLLM: the model's context.
    #[serde(default)]
    pub max_model_len: Option<u64>,
    /// llama-server: `{n_ctx, n_ctx_train, n_vocab, ...}`.
    #[serde(default)]
    pub meta: Option<ModelMeta>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub(crate) struct ModelMeta {
    pub n_ctx: Option<u64>,
}

// ---- llama-server's own endpoints, at the server root (not under /v1) ----

/// `GET /props` (llama-server). Only what we read is named; each part is optional because
/// versions differ (`chat_template_caps` is recent; older servers do not send it).
#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub(crate) struct Props {
    pub default_generation_settings: Option<GenerationSettings>,
    pub chat_template_caps: Option<TemplateCaps>,
    pub model_alias: Option<String>,
    pub model_path: Option<String>,
    pub build_info: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub(crate) struct GenerationSettings {
    /// The context of one slot: what a single request may use (`--ctx-size` / `--parallel`).
    pub n_ctx: Option<u64>,
}

/// What the chat template renders, as llama-server found out by trying it.
#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub(crate) struct TemplateCaps {
    /// The template renders a request's `tools`; when false llama-server drops them silently.
    pub supports_tools: Option<bool>,
    pub supports_tool_calls: Option<bool>,
}

/// `POST /apply-template`: a chat request's `messages` and `tools`.
#[derive(Debug, Serialize)]
pub(crate) struct ApplyTemplateBody<'a> {
    pub messages: &'a [ChatMessage],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tools: Option<&'a [ToolSpec]>,
}

/// The answer of `/apply-template`: the prompt exactly as the model would see it.
#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub(crate) struct AppliedTemplate {
    pub prompt: Option<String>,
}

/// `POST /tokenize`, with the flags llama-server uses for a chat prompt: a BOS where the model
/// wants one, and `<|im_start|>` read as one special token rather than as text.
#[derive(Debug, Serialize)]
pub(crate) struct TokenizeBody<'a> {
    pub content: &'a str,
    pub add_special: bool,
    pub parse_special: bool,
}

/// The answer of `/tokenize`. Only the number of tokens matters, so the ids are not kept.
#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub(crate) struct Tokens {
    pub tokens: Option<Vec<serde::de::IgnoredAny>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::recording;
    use serde_json::json;

    #[test]
    fn apply_template_body_is_the_recorded_request() {
        let recorded: Value =
            serde_json::from_str(&recording("apply-template.request.json")).expect("json");
        let messages: Vec<ChatMessage> =
            serde_json::from_value(recorded["messages"].clone()).expect("messages");
        let tools: Vec<ToolSpec> =
            serde_json::from_value(recorded["tools"].clone()).expect("tools");
        let body = ApplyTemplateBody {
            messages: &messages,
            tools: Some(&tools),
        };
        assert_eq!(serde_json::to_value(&body).expect("serialises"), recorded);
    }

    #[test]
    fn recorded_apply_template_answers() {
        let prompt = |name: &str| {
            let applied: AppliedTemplate = serde_json::from_str(&recording(name)).expect("parses");
            applied.prompt.expect("a prompt")
        };
        let qwen = prompt("apply-template-tiny.json");
        assert!(qwen.starts_with("<|im_start|>system\n"), "{qwen}");
        assert!(qwen.ends_with("<|im_start|>assistant\n"), "{qwen}");
        assert!(
            qwen.contains("<tools>") && qwen.contains("<tool_call>"),
            "{qwen}"
        );
        // SmolLM2's template has no tools: they and the tool call are dropped without a word.
        let smollm2 = prompt("apply-template-smollm2.json");
        assert!(!smollm2.contains("readFile\""), "{smollm2}");
        assert!(
            smollm2.contains("<|im_start|>assistant\n<|im_end|>"),
            "{smollm2}"
        );
        let other: AppliedTemplate = serde_json::from_str(r#"{"text": "x"}"#).expect("parses");
        assert_eq!(other.prompt, None);
    }

    #[test]
    fn recorded_tokenize_answers_are_counted() {
        let count = |name: &str| {
            let tokens: Tokens = serde_json::from_str(&recording(name)).expect("parses");
            tokens.tokens.map(|t| t.len())
        };
        // the usage.prompt_tokens of the chat request with the same messages and tools
        assert_eq!(count("tokenize-tiny.json"), Some(422));
        assert_eq!(count("tokenize-smollm2.json"), Some(246));
        let with_pieces: Tokens = serde_json::from_value(
            json!({"tokens": [{"id": 9707, "piece": "Hello"}, {"id": 1879, "piece": " world"}]}),
        )
        .expect("parses");
        assert_eq!(with_pieces.tokens.map(|t| t.len()), Some(2));
        let body = TokenizeBody {
            content: "<|im_start|>user",
            add_special: true,
            parse_special: true,
        };
        assert_eq!(
            serde_json::to_value(&body).expect("serialises"),
            json!({"content": "<|im_start|>user", "add_special": true, "parse_special": true})
        );
    }

    #[test]
    fn messages_serialise_as_openai_expects() {
        let call = ToolCall::function("call_1", "readFile", r#"{"path":"a.rs"}"#);
        let msg = ChatMessage {
            role: Role::Assistant,
            tool_calls: Some(vec![call]),
            ..ChatMessage::default()
        };
        assert_eq!(
            serde_json::to_value(&msg).unwrap(),
            json!({"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "readFile", "arguments": "{\"path\":\"a.rs\"}"}}]})
        );
        assert_eq!(
            serde_json::to_value(ChatMessage::tool_result("call_1", "fn main() {}")).unwrap(),
            json!({"role": "tool", "content": "fn main() {}", "tool_call_id": "call_1"})
        );
    }

    #[test]
    fn unknown_fields_do_not_break_parsing_and_are_kept() {
        let usage: Usage = serde_json::from_value(json!({
            "completion_tokens": 8, "prompt_tokens": 18, "total_tokens": 26,
            "prompt_tokens_details": {"cached_tokens": 0}
        }))
        .unwrap();
        assert_eq!(
            (
                usage.prompt_tokens,
                usage.completion_tokens,
                usage.total_tokens
            ),
            (18, 8, 26)
        );
        assert_eq!(
            usage.extra["prompt_tokens_details"],
            json!({"cached_tokens": 0})
        );

        let timings: Timings = serde_json::from_value(
            json!({"prompt_n": 3, "draft_n": 5, "predicted_per_second": 9.5}),
        )
        .unwrap();
        assert_eq!(timings.prompt_n, Some(3));
        assert_eq!(timings.predicted_per_second, Some(9.5));
        assert_eq!(timings.extra["draft_n"], json!(5));

        let msg: ChatMessage =
            serde_json::from_value(json!({"role": "assistant", "content": "hi", "whatever": 1}))
                .unwrap();
        assert_eq!(msg.content.as_deref(), Some("hi"));
    }
}
