//! What a model server says it can do: [`ServerCapabilities`], read from llama-server's
//! `GET /props` or, for other servers, from `GET /v1/models`.
//!
//! Why ask instead of trying: llama-server answers a request whose `tools` its chat template
//! cannot render by dropping the tools without a word (no error, `finish_reason: stop`), so a
//! caller that offers native tools and waits for an error never learns that the model saw none.
//! `/props` reports it (`chat_template_caps.supports_tools`) before the first request.
//!
//! Only values here and their reading from the wire types; the HTTP side is
//! [`crate::LlmClient::server_capabilities`].

use super::wire::{ModelList, Props};

/// Which kind of server answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ServerKind {
    /// llama.cpp's `llama-server`: it has `/props`, `/apply-template` and `/tokenize`.
    LlamaCpp,
    /// Anything else OpenAI-compatible (vLLM, Ollama, LM Studio, a hosted API), or a server
    /// that told us nothing.
    #[default]
    Other,
}

/// What the server reported; `None` wherever it did not say.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServerCapabilities {
    pub server: ServerKind,
    /// Whether the model's chat template renders native `tools`. `Some(false)`: llama-server
    /// would silently drop them, so tools must be described in the prompt instead.
    pub supports_tools: Option<bool>,
    /// Tokens one request may use: llama-server's per-slot context (`--ctx-size` divided by
    /// `--parallel`), vLLM's `max_model_len`.
    pub context_window: Option<u32>,
    /// The model the server serves (llama-server: its alias or file name).
    pub model: Option<String>,
}

impl ServerCapabilities {
    /// Nothing known: a server without `/props` whose `/models` told us nothing either.
    pub fn unknown() -> Self {
        Self::default()
    }

    /// True when the server can count a prompt's tokens itself
    /// ([`crate::LlmClient::count_tokens`]); other servers would only answer 404s.
    pub fn can_count_tokens(&self) -> bool {
        self.server == ServerKind::LlamaCpp
    }

    /// From a `/props` answer; `None` if it does not look like llama-server's (some other
    /// server answering that path with something else).
    pub(crate) fn from_props(props: Props) -> Option<Self> {
        let looks_like_llama = props.default_generation_settings.is_some()
            || props.chat_template_caps.is_some()
            || props.build_info.is_some();
        if !looks_like_llama {
            return None;
        }
        Some(Self {
            server: ServerKind::LlamaCpp,
            supports_tools: props.chat_template_caps.and_then(|c| c.supports_tools),
            context_window: props
                .default_generation_settings
                .and_then(|s| s.n_ctx)
                .and_then(to_window),
            model: props
                .model_alias
                .or(props.model_path)
                .filter(|m| !m.trim().is_empty()),
        })
    }

    /// From a `/v1/models` answer of a server without `/props`: the first model, and its
    /// context when the server says (vLLM's `max_model_len`, llama-server's `meta.n_ctx`).
    pub(crate) fn from_models(list: ModelList) -> Self {
        let first = list.data.into_iter().chain(list.models).next();
        let Some(entry) = first else {
            return Self::unknown();
        };
        Self {
            server: ServerKind::Other,
            supports_tools: None,
            context_window: entry
                .max_model_len
                .or(entry.meta.and_then(|m| m.n_ctx))
                .and_then(to_window),
            model: entry.id.or(entry.model).or(entry.name),
        }
    }
}

/// A context size as the profile stores it; 0 (llama-server before a model is loaded) is no
/// information.
fn to_window(n: u64) -> Option<u32> {
    u32::try_from(n).ok().filter(|n| *n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::recording;

    fn props(name: &str) -> Props {
        serde_json::from_str(&recording(name)).expect("recorded props parse")
    }

    #[test]
    fn recorded_props_of_a_template_with_tools() {
        let caps = ServerCapabilities::from_props(props("props-tiny.json")).expect("llama-server");
        assert_eq!(
            caps,
            ServerCapabilities {
                server: ServerKind::LlamaCpp,
                supports_tools: Some(true),
                // -c 4096 -np 2: each slot holds 2048
                context_window: Some(2048),
                model: Some("tiny-qwen2-random.gguf".into()),
            }
        );
        assert!(caps.can_count_tokens());
    }

    #[test]
    fn recorded_props_of_a_template_without_tools() {
        let caps =
            ServerCapabilities::from_props(props("props-smollm2.json")).expect("llama-server");
        assert_eq!(caps.server, ServerKind::LlamaCpp);
        assert_eq!(caps.supports_tools, Some(false));
        assert_eq!(caps.context_window, Some(2048));
        assert_eq!(
            caps.model.as_deref(),
            Some("SmolLM2-135M-Instruct.Q4_1.gguf")
        );
    }

    #[test]
    fn props_of_an_older_server_without_template_caps() {
        let old: Props = serde_json::from_value(serde_json::json!({
            "default_generation_settings": {"n_ctx": 8192, "temperature": 0.8},
            "total_slots": 1,
            "chat_template": "{{ messages }}"
        }))
        .expect("parses");
        let caps = ServerCapabilities::from_props(old).expect("llama-server");
        assert_eq!(caps.supports_tools, None);
        assert_eq!(caps.context_window, Some(8192));
        assert_eq!(caps.model, None);
    }

    #[test]
    fn props_that_are_not_llama_servers() {
        let other: Props =
            serde_json::from_value(serde_json::json!({"status": "ok"})).expect("parses");
        assert_eq!(ServerCapabilities::from_props(other), None);
    }

    #[test]
    fn recorded_models_lists() {
        let smol: ModelList =
            serde_json::from_str(&recording("models-smollm2.json")).expect("parses");
        let caps = ServerCapabilities::from_models(smol);
        assert_eq!(caps.server, ServerKind::Other);
        assert_eq!(caps.supports_tools, None);
        assert_eq!(caps.context_window, Some(2048));
        assert_eq!(
            caps.model.as_deref(),
            Some("SmolLM2-135M-Instruct.Q4_1.gguf")
        );
        assert!(!caps.can_count_tokens());

        let vllm: ModelList = serde_json::from_value(serde_json::json!({
            "object": "list",
            "data": [{"id": "Qwen/Qwen2.5-7B-Instruct", "object": "model", "max_model_len": 32768}]
        }))
        .expect("parses");
        let caps = ServerCapabilities::from_models(vllm);
        assert_eq!(caps.context_window, Some(32768));
        assert_eq!(caps.model.as_deref(), Some("Qwen/Qwen2.5-7B-Instruct"));

        let empty: ModelList = serde_json::from_str(r#"{"data": []}"#).expect("parses");
        assert_eq!(
            ServerCapabilities::from_models(empty),
            ServerCapabilities::unknown()
        );
    }
}
