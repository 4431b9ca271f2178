//! What a surface may rely on about the order of a turn's events: the last one (`done` or
//! `error`) comes only after the session is saved, on every surface, because the chat service
//! itself holds it back (no surface has to).

use crate::chat_turns::ChatEnv;
use crate::support::llm_server::Reply;
use noctune_chat::agent::{ChatEvent, NoPrompter, TurnContext};
use noctune_llm::CancelToken;
use std::sync::{Arc, Mutex};

#[tokio::test]
async fn done_comes_after_the_session_is_saved() {
    let env = ChatEnv::new(Reply::text(&["Saved ", "first."]), "auto");
    let service = &env.service;
    // What the session file held when each terminal event arrived.
    let seen: Arc<Mutex<Vec<(String, usize)>>> = Arc::default();
    let seen_in = seen.clone();
    let store_dir = env.repo.path();
    let mut on_event = move |ev: ChatEvent| {
        if let ChatEvent::Done { .. } | ChatEvent::Error { .. } = &ev {
            let file = store_dir.join(".noctune_cache/studio_chat/sessions/s-save.json");
            let saved: serde_json::Value = std::fs::read(&file)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_default();
            let n = saved["messages"].as_array().map_or(0, |m| m.len());
            let kind = serde_json::to_value(&ev).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_string();
            seen_in.lock().unwrap().push((kind, n));
        }
    };
    let summary = service
        .send(
            "s-save",
            "hello",
            TurnContext::default(),
            &NoPrompter,
            &mut on_event,
            &CancelToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(summary.answer, "Saved first.");
    let seen = seen.lock().unwrap().clone();
    // user message + answer were on disk when `done` arrived
    assert_eq!(seen, vec![("done".to_string(), 2)]);
}
