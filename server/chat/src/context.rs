//! Fitting a conversation into the model's context window.
//!
//! Local models run with small contexts (4k-8k tokens are common) and tool output is large, so
//! a long chat would soon fail with "exceeds the available context size". Instead we trim,
//! cheapest information first, and always leave a visible note so the model (and the user in an
//! export) knows something was left out:
//! 1. older tool results are replaced by a note (the model already used them);
//! 2. older arguments of tool calls (a whole file for `writeFile`) likewise;
//! 3. older turns are dropped, oldest first, and the system prompt says how many;
//! 4. the current turn's tool results are cut to their head;
//! 5. finally the system prompt and the user's message are cut.
//!
//! Token counts are estimated (bytes / 3.5: close for code and English with common tokenizers,
//! and on the safe side for other scripts); a server that still reports an overflow makes the
//! caller retry once with a budget scaled by the server's own count (see [`Budget::scaled`]).

use noctune_core::text::{prefix_bytes, suffix_bytes};
use noctune_llm::{ChatMessage, Role};

/// Bytes per token of the estimate.
pub const BYTES_PER_TOKEN: f64 = 3.5;
/// Tokens a chat template adds per message (role markers, separators).
const PER_MESSAGE_TOKENS: usize = 4;
/// What a replaced tool result says.
pub const TRIM_NOTE: &str = "tool output trimmed to fit the context window";

/// Estimated tokens of a text.
pub fn estimate_text(text: &str) -> usize {
    (text.len() as f64 / BYTES_PER_TOKEN).ceil() as usize
}

/// Estimated tokens of a message as sent (reasoning is never sent back).
pub fn estimate_message(m: &ChatMessage) -> usize {
    let mut n = PER_MESSAGE_TOKENS + m.content.as_deref().map_or(0, estimate_text);
    for call in m.tool_calls.iter().flatten() {
        n += 8 + estimate_text(&call.function.name) + estimate_text(&call.function.arguments);
    }
    n
}

pub fn estimate_messages(messages: &[ChatMessage]) -> usize {
    messages.iter().map(estimate_message).sum()
}

/// How many prompt tokens a request may use.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    /// Estimated tokens available for the messages (system prompt included).
    pub prompt_tokens: usize,
}

impl Budget {
    /// The window minus room for the answer (the profile's `max_tokens`, at most a quarter of
    /// the window so a large `max_tokens` cannot starve the prompt) and for the tool schemas.
    pub fn for_window(context_window: u32, max_tokens: Option<u32>, tools_tokens: usize) -> Budget {
        let window = context_window.max(256) as usize;
        let reserve = (max_tokens.unwrap_or(1024) as usize).min(window / 4);
        Budget {
            prompt_tokens: window.saturating_sub(reserve + tools_tokens).max(64),
        }
    }

    /// A budget after the server said the prompt (`estimated` by us) needed `n_prompt_tokens`
    /// of its `n_ctx`: our estimate is rescaled to the server's count, with 10% to spare.
    pub fn scaled(self, estimated: usize, n_prompt_tokens: u64, n_ctx: u64) -> Budget {
        let ratio = if estimated == 0 {
            1.0
        } else {
            (n_prompt_tokens as f64 / estimated as f64).max(1.0)
        };
        let server_room = (n_ctx as f64 * 0.75) / ratio; // leaves room for the answer
        let halved = self.prompt_tokens as f64 * 0.6;
        Budget {
            prompt_tokens: (server_room.min(halved) * 0.9).max(64.0) as usize,
        }
    }
}

/// What [`fit`] did, for a notice to the user and for tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FitReport {
    pub trimmed_tool_results: usize,
    pub trimmed_tool_arguments: usize,
    pub dropped_messages: usize,
    pub cut_current_turn: bool,
    pub cut_system_or_user: bool,
    pub estimated_tokens: usize,
}

impl FitReport {
    pub fn trimmed_anything(&self) -> bool {
        self.trimmed_tool_results > 0
            || self.trimmed_tool_arguments > 0
            || self.dropped_messages > 0
            || self.cut_current_turn
            || self.cut_system_or_user
    }
}

/// Returns `system` + `history`, trimmed to `budget`. Never fails: when even the last resort
/// does not fit, what is left is sent and the server has the last word.
pub fn fit(
    system: ChatMessage,
    history: &[ChatMessage],
    budget: Budget,
) -> (Vec<ChatMessage>, FitReport) {
    let mut report = FitReport::default();
    let mut msgs: Vec<ChatMessage> = history.to_vec();
    let mut system = system;
    let limit = budget.prompt_tokens;
    let total = |system: &ChatMessage, msgs: &[ChatMessage]| {
        estimate_message(system) + estimate_messages(msgs)
    };
    // The current turn starts at the last user message.
    let current =
        |msgs: &[ChatMessage]| msgs.iter().rposition(|m| m.role == Role::User).unwrap_or(0);

    // 1 + 2: older tool results and tool-call arguments, oldest first.
    let mut i = 0;
    while total(&system, &msgs) > limit && i < current(&msgs) {
        let m = &mut msgs[i];
        if m.role == Role::Tool {
            let len = m.content.as_deref().map_or(0, str::len);
            if len > 120 {
                m.content = Some(format!("[{TRIM_NOTE}: {len} chars]"));
                report.trimmed_tool_results += 1;
            }
        } else if let Some(calls) = m.tool_calls.as_mut() {
            for call in calls {
                let len = call.function.arguments.len();
                if len > 200 {
                    let note =
                        format!("[arguments trimmed to fit the context window: {len} chars]");
                    call.function.arguments = serde_json::json!({ "note": note }).to_string();
                    report.trimmed_tool_arguments += 1;
                }
            }
        }
        i += 1;
    }

    // 3: drop whole older turns (a user message and everything up to the next one), so that
    // no tool result is left without its call.
    while total(&system, &msgs) > limit && current(&msgs) > 0 {
        let next_user = msgs[1..]
            .iter()
            .position(|m| m.role == Role::User)
            .map_or(msgs.len(), |p| p + 1);
        let cut = next_user.min(current(&msgs));
        if cut == 0 {
            break;
        }
        msgs.drain(..cut);
        report.dropped_messages += cut;
    }
    if report.dropped_messages > 0 {
        let note = format!(
            "\n\n[{} earlier messages of this conversation were left out to fit the context window.]",
            report.dropped_messages
        );
        system
            .content
            .get_or_insert_with(String::new)
            .push_str(&note);
    }

    // 4: the current turn's tool results, oldest first, cut to what still fits.
    let start = current(&msgs);
    for idx in start..msgs.len() {
        let over = total(&system, &msgs).saturating_sub(limit);
        if over == 0 {
            break;
        }
        if msgs[idx].role != Role::Tool {
            continue;
        }
        let content = msgs[idx].content.clone().unwrap_or_default();
        let over_bytes = (over as f64 * BYTES_PER_TOKEN).ceil() as usize + 80;
        let keep = content.len().saturating_sub(over_bytes);
        let trimmed = if keep < 200 {
            format!("[{TRIM_NOTE}: {} chars]", content.len())
        } else {
            let head = prefix_bytes(&content, keep);
            format!(
                "{head}\n[{TRIM_NOTE}: {} more chars]",
                content.len() - head.len()
            )
        };
        if trimmed.len() < content.len() {
            msgs[idx].content = Some(trimmed);
            report.cut_current_turn = true;
        }
    }

    // 5: the system prompt (its repo overview), then the user's message (head and tail kept).
    let over = total(&system, &msgs).saturating_sub(limit);
    if over > 0 {
        let text = system.content.clone().unwrap_or_default();
        let keep = text
            .len()
            .saturating_sub((over as f64 * BYTES_PER_TOKEN) as usize + 40)
            .max(400);
        if keep < text.len() {
            system.content = Some(format!(
                "{}\n[system prompt shortened to fit the context window]",
                prefix_bytes(&text, keep)
            ));
            report.cut_system_or_user = true;
        }
    }
    let over = total(&system, &msgs).saturating_sub(limit);
    if over > 0 && start < msgs.len() {
        let text = msgs[start].content.clone().unwrap_or_default();
        let keep = text
            .len()
            .saturating_sub((over as f64 * BYTES_PER_TOKEN) as usize + 80)
            .max(200);
        if keep < text.len() {
            let head = prefix_bytes(&text, keep / 2);
            let tail = suffix_bytes(&text, keep / 2);
            msgs[start].content = Some(format!(
                "{head}\n[… {} chars of this message left out to fit the context window …]\n{tail}",
                text.len() - head.len() - tail.len()
            ));
            report.cut_system_or_user = true;
        }
    }

    let mut out = Vec::with_capacity(msgs.len() + 1);
    out.push(system);
    out.extend(msgs);
    report.estimated_tokens = estimate_messages(&out);
    (out, report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use noctune_llm::ToolCall;

    fn assistant_call(id: &str, args: &str) -> ChatMessage {
        ChatMessage {
            role: Role::Assistant,
            tool_calls: Some(vec![ToolCall::function(id, "readFile", args)]),
            ..Default::default()
        }
    }

    fn history(turns: usize, tool_bytes: usize) -> Vec<ChatMessage> {
        let mut h = Vec::new();
        for t in 0..turns {
            h.push(ChatMessage::user(format!("question {t}")));
            h.push(assistant_call(&format!("c{t}"), "{\"path\": \"a.py\"}"));
            h.push(ChatMessage::tool_result(
                format!("c{t}"),
                "x".repeat(tool_bytes),
            ));
            h.push(ChatMessage::assistant(format!("answer {t}")));
        }
        h
    }

    #[test]
    fn small_conversations_pass_unchanged() {
        let h = history(2, 100);
        let (out, report) = fit(
            ChatMessage::system("sys"),
            &h,
            Budget::for_window(8192, Some(512), 0),
        );
        assert_eq!(&out[1..], &h[..]);
        assert!(!report.trimmed_anything());
    }

    #[test]
    fn older_tool_output_goes_first_with_a_visible_note() {
        let h = history(4, 4000);
        let budget = Budget {
            prompt_tokens: 2000,
        };
        let (out, report) = fit(ChatMessage::system("sys"), &h, budget);
        assert!(estimate_messages(&out) <= 2000, "{report:?}");
        assert!(report.trimmed_tool_results >= 1);
        assert_eq!(report.dropped_messages, 0);
        // The current turn's result is intact; an older one carries the note.
        assert_eq!(out.last().unwrap().content.as_deref(), Some("answer 3"));
        assert_eq!(
            out[out.len() - 2].content.as_deref().map(str::len),
            Some(4000)
        );
        assert!(out[3].content.as_deref().unwrap().contains(TRIM_NOTE));
    }

    #[test]
    fn then_older_turns_are_dropped_whole() {
        let h = history(30, 100);
        let budget = Budget { prompt_tokens: 300 };
        let (out, report) = fit(ChatMessage::system("sys"), &h, budget);
        assert!(report.dropped_messages > 0);
        assert!(
            estimate_messages(&out) <= 300,
            "{}",
            estimate_messages(&out)
        );
        assert_eq!(out[1].role, Role::User, "a turn starts with the user");
        assert!(
            out[0]
                .content
                .as_deref()
                .unwrap()
                .contains("left out to fit the context window")
        );
        // Every tool result still follows its call.
        for (i, m) in out.iter().enumerate() {
            if m.role == Role::Tool {
                assert!(out[i - 1].tool_calls.is_some());
            }
        }
        assert_eq!(out.last().unwrap().content.as_deref(), Some("answer 29"));
    }

    #[test]
    fn a_huge_current_result_is_cut_to_its_head() {
        let mut h = vec![ChatMessage::user("read it"), assistant_call("c1", "{}")];
        h.push(ChatMessage::tool_result("c1", "y".repeat(100_000)));
        let (out, report) = fit(
            ChatMessage::system("sys"),
            &h,
            Budget {
                prompt_tokens: 1000,
            },
        );
        assert!(report.cut_current_turn);
        let result = out[3].content.as_deref().unwrap();
        assert!(
            result.starts_with("yyy") && result.contains(TRIM_NOTE),
            "{}",
            &result[result.len() - 80..]
        );
        assert!(estimate_messages(&out) <= 1000);
    }

    #[test]
    fn never_fails_even_when_nothing_fits() {
        let h = vec![ChatMessage::user("é".repeat(50_000))];
        let (out, report) = fit(
            ChatMessage::system("s".repeat(10_000)),
            &h,
            Budget { prompt_tokens: 64 },
        );
        assert!(report.cut_system_or_user);
        assert_eq!(out.len(), 2);
        assert!(out[1].content.as_deref().unwrap().contains("left out"));
    }

    #[test]
    fn budgets() {
        let b = Budget::for_window(4096, Some(8192), 100);
        assert_eq!(b.prompt_tokens, 4096 - 1024 - 100);
        let s = b.scaled(1000, 5030, 4096);
        assert!(s.prompt_tokens < b.prompt_tokens);
        assert!((s.prompt_tokens as f64) < 4096.0 * 0.75 / 5.03);
    }
}
