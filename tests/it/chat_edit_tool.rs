//! `editFile` through the real turn loop and the scripted model: an exact-text edit under a
//! grant changes exactly the matched lines, leaves a backup that undo restores, and a refused
//! match (missing, ambiguous) writes nothing and tells the model how to fix the call; the
//! permission prompt shows the diff, and an approval does not apply to a file changed since.

use crate::chat_turns::{ChatEnv, allow};
use crate::support::cli::Noctune;
use crate::support::llm_server::{Reply, Script, ScriptedLlm};
use crate::support::lsp_client::LspClient;
use crate::support::repo::FixtureRepo;
use noctune_chat::agent::{ChatEvent, Prompter};
use noctune_chat::permissions::{PermissionAnswer, PermissionRequest};
use serde_json::{Value, json};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

const GEOMETRY: &str = "shapes/geometry.py";

fn edit(old: &str, new: &str) -> String {
    json!({"path": GEOMETRY, "old_text": old, "new_text": new}).to_string()
}

#[tokio::test]
async fn edit_file_under_a_grant_changes_exactly_the_match_and_undo_restores_it() {
    let env = ChatEnv::new(
        [
            Reply::tool_call(
                "e1",
                "editFile",
                &edit("    return 2 * (w + h)\n", "    return 2 * w + 2 * h\n"),
            ),
            Reply::text(&["Edited."]),
        ],
        "native",
    );
    let original = env.read(GEOMETRY);
    let turn = env
        .send("s1", "expand the perimeter", &allow(PermissionAnswer::Once))
        .await;
    let results = turn.results();
    assert_eq!(results[0].0, "editFile");
    assert!(results[0].1, "{results:?}");
    assert_eq!(
        env.read(GEOMETRY),
        original.replace("    return 2 * (w + h)\n", "    return 2 * w + 2 * h\n"),
        "only the matched line changed"
    );
    let diff = results[0].2["diff"].as_str().unwrap();
    assert!(
        diff.contains("-    return 2 * (w + h)\n+    return 2 * w + 2 * h\n"),
        "{diff}"
    );
    assert!(results[0].2["backup"].is_string(), "{}", results[0].2);
    let undone = env.service.undo_last(Some("s1")).unwrap();
    assert_eq!(undone.path, GEOMETRY);
    assert_eq!(env.read(GEOMETRY), original);
}

#[tokio::test]
async fn a_missing_or_ambiguous_old_text_writes_nothing_and_says_how_to_fix_it() {
    let env = ChatEnv::new(
        [
            Reply::tool_call(
                "e1",
                "editFile",
                &edit("def perimeter(width, height):\n", "def perimeter(a, b):\n"),
            ),
            Reply::tool_call("e2", "editFile", &edit("return", "yield")),
            Reply::text(&["Could not edit."]),
        ],
        "native",
    );
    let original = env.read(GEOMETRY);
    let turn = env
        .send("s1", "rename", &allow(PermissionAnswer::Session))
        .await;
    let results = turn.results();
    assert_eq!(results.len(), 2, "{results:?}");
    assert_eq!(results[0].2["error"], "not_found", "{:?}", results[0]);
    let msg = results[0].2["message"].as_str().unwrap();
    assert!(
        msg.contains("def perimeter(w, h):"),
        "closest lines shown: {msg}"
    );
    assert_eq!(results[1].2["error"], "ambiguous", "{:?}", results[1]);
    assert!(
        results[1].2["message"]
            .as_str()
            .unwrap()
            .contains("occurrence"),
        "{:?}",
        results[1]
    );
    assert_eq!(env.read(GEOMETRY), original);
}

// ---- diff-first permission prompts ----

/// Answers every prompt with `answer`, after recording what it was shown and (if set) writing
/// `meanwhile` into the file, as a user editing it while the prompt is open would.
struct Watching {
    root: PathBuf,
    meanwhile: Option<&'static str>,
    answer: PermissionAnswer,
    seen: Mutex<Vec<PermissionRequest>>,
}

impl Prompter for Watching {
    fn ask<'a>(
        &'a self,
        req: &'a PermissionRequest,
    ) -> Pin<Box<dyn Future<Output = PermissionAnswer> + Send + 'a>> {
        self.seen.lock().unwrap().push(req.clone());
        if let Some(text) = self.meanwhile {
            std::fs::write(self.root.join(GEOMETRY), text).unwrap();
        }
        Box::pin(std::future::ready(self.answer))
    }
}

fn watching(env: &ChatEnv, meanwhile: Option<&'static str>) -> Watching {
    Watching {
        root: env.repo.path(),
        meanwhile,
        answer: PermissionAnswer::Once,
        seen: Mutex::new(Vec::new()),
    }
}

#[tokio::test]
async fn the_permission_prompt_and_its_event_carry_the_diff_the_call_makes() {
    let env = ChatEnv::new(
        [
            Reply::tool_call(
                "e1",
                "editFile",
                &edit("    return w * h\n", "    return float(w) * h\n"),
            ),
            Reply::text(&["Edited."]),
        ],
        "native",
    );
    let p = watching(&env, None);
    let turn = env.send("s1", "floats", &p).await;
    let seen = p.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    let preview = seen[0].preview.as_ref().expect("the prompt has a preview");
    assert_eq!(preview.path, GEOMETRY);
    assert!(
        preview
            .diff
            .contains("-    return w * h\n+    return float(w) * h\n"),
        "{}",
        preview.diff
    );
    // The event a surface renders carries the same diff, on the wire too.
    let event = turn
        .events
        .iter()
        .find_map(|e| match e {
            ChatEvent::PermissionRequest(r) => Some(r.clone()),
            _ => None,
        })
        .expect("a permission_request event");
    assert_eq!(event.preview.as_ref(), Some(preview));
    let wire = serde_json::to_value(ChatEvent::PermissionRequest(event)).unwrap();
    assert_eq!(wire["preview"]["diff"], json!(preview.diff));
    // What was shown is what was written.
    let written = &turn.results()[0].2;
    assert_eq!(written["diff"], json!(preview.diff));
}

#[tokio::test]
async fn a_file_changed_between_the_prompt_and_the_answer_is_not_edited() {
    let changed = "def area(w, h):\n    return w * h  # the user's own change\n";
    let env = ChatEnv::new(
        [
            Reply::tool_call(
                "e1",
                "editFile",
                &edit("def area(w, h):\n", "def area(width, height):\n"),
            ),
            Reply::text(&["The file changed."]),
        ],
        "native",
    );
    let p = watching(&env, Some(changed));
    let turn = env.send("s1", "rename", &p).await;
    assert_eq!(p.seen.lock().unwrap().len(), 1);
    let results = turn.results();
    assert!(!results[0].1, "{results:?}");
    assert_eq!(results[0].2["error"], "changed_since_prompt", "{results:?}");
    assert_eq!(
        env.read(GEOMETRY),
        changed,
        "the approved diff was not applied"
    );
}

#[test]
fn the_editor_prompt_summarises_the_change_and_show_diff_opens_it_before_asking_again() {
    let repo = FixtureRepo::new("pyproj", &[]);
    let nt = Noctune::new();
    let llm = ScriptedLlm::start(Script::new());
    let mut c = LspClient::start(
        &nt,
        &repo.path(),
        &["--no-http"],
        &[("NOCTUNE_STUDIO_LLM_BASE_URL", &llm.base_url())],
    );
    c.initialize(
        &repo.path(),
        json!({"window": {"workDoneProgress": true, "showDocument": {"support": true}}}),
    );
    // First "Show diff", then (asked again) "Allow once".
    let prompts = Arc::new(Mutex::new(Vec::<Value>::new()));
    let seen = prompts.clone();
    c.set_hook(move |req| match req["method"].as_str() {
        Some("window/showMessageRequest") => {
            let mut p = seen.lock().unwrap();
            p.push(req["params"].clone());
            Some(json!({"title": if p.len() == 1 { "Show diff" } else { "Allow once" }}))
        }
        Some("window/showDocument") => Some(json!({"success": true})),
        Some("window/workDoneProgress/create") => Some(Value::Null),
        _ => None,
    });
    llm.push(Reply::tool_call(
        "e1",
        "editFile",
        &edit("    return w * h\n", "    return float(w) * h\n"),
    ));
    llm.push(Reply::text(&["Edited."]));
    let r = c.call(
        "noctune/chat",
        json!({"session": "s-lsp", "message": "floats"}),
    );
    assert_eq!(r["text"], "Edited.", "{r:#}");
    let prompts = prompts.lock().unwrap().clone();
    assert_eq!(
        prompts.len(),
        2,
        "asked again after Show diff: {prompts:#?}"
    );
    let msg = prompts[0]["message"].as_str().unwrap();
    assert!(
        msg.contains("editFile shapes/geometry.py (+1 -1 lines)"),
        "{msg}"
    );
    assert_eq!(prompts[0]["actions"][0]["title"], "Show diff");
    // The diff was opened as a document, and it is the change that was then made.
    let shown = c
        .seen
        .iter()
        .find(|m| m["method"] == "window/showDocument")
        .unwrap_or_else(|| panic!("no showDocument in {:#?}", c.seen))
        .clone();
    let uri = shown["params"]["uri"].as_str().unwrap();
    let file = uri.strip_prefix("file://").unwrap();
    let diff = std::fs::read_to_string(file).unwrap();
    assert!(
        diff.contains("-    return w * h\n+    return float(w) * h\n"),
        "{diff}"
    );
    let now = std::fs::read_to_string(repo.path().join(GEOMETRY)).unwrap();
    assert!(now.contains("    return float(w) * h\n"), "{now}");
    // The chat delta carries the same diff for clients that render it themselves.
    assert!(c.seen.iter().any(|m| {
        m["method"] == "noctune/chatDelta"
            && m["params"]["kind"] == "permission_request"
            && m["params"]["preview"]["diff"]
                .as_str()
                .is_some_and(|d| d.contains("float(w)"))
    }));
    assert!(c.shutdown_exit().success());
}

#[test]
fn the_browser_gets_the_diff_in_the_permission_request_event_before_answering() {
    let repo = FixtureRepo::new("pyproj", &[]);
    let nt = Noctune::new();
    let llm = ScriptedLlm::start(
        Script::new()
            .reply(Reply::tool_call(
                "e1",
                "editFile",
                &edit("    return w * h\n", "    return float(w) * h\n"),
            ))
            .when(
                crate::support::llm_server::last_is_tool_result,
                Reply::text(&["Done."]),
            ),
    );
    let base = llm.base_url();
    let st = crate::http_support::StudioProc::start_with(
        &nt,
        &repo.path(),
        &[
            ("NOCTUNE_STUDIO_LLM_BASE_URL", base.as_str()),
            (
                "NOCTUNE_STUDIO_LLM_MODEL",
                crate::support::llm_server::MODEL,
            ),
        ],
    );
    let body = json!({"message": "floats"}).to_string();
    let mut sse = st.sse_post("/api/chat/sessions/s-web/messages", &body);
    assert_eq!(sse.status, 200);
    let mut asked = None;
    let mut result = None;
    while let Some(m) = sse.next(std::time::Duration::from_secs(30)) {
        if m.event == "permission_request" {
            let req = m.json();
            // The file is untouched while the user looks at the diff.
            assert!(repo.read(GEOMETRY).contains("    return w * h\n"));
            let id = req["id"].as_str().unwrap().to_string();
            asked = Some(req);
            let r = st.post_json(
                &format!("/api/chat/permissions/{id}"),
                &json!({"answer": "once"}),
            );
            assert_eq!(r.status, 200);
        }
        if m.event == "tool_result" {
            result = Some(m.json());
        }
        if m.event == "done" || m.event == "error" {
            break;
        }
    }
    let asked = asked.expect("a permission_request event");
    let diff = asked["preview"]["diff"].as_str().unwrap_or_default();
    assert!(
        diff.contains("-    return w * h\n+    return float(w) * h\n"),
        "{asked:#}"
    );
    assert_eq!(asked["preview"]["path"], GEOMETRY);
    let result = result.expect("a tool_result event");
    assert_eq!(result["result"]["diff"].as_str(), Some(diff), "{result:#}");
    assert!(repo.read(GEOMETRY).contains("    return float(w) * h\n"));
}
