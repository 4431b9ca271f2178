//! Chat sessions: saved after every turn, listed, loaded, deleted, exported as a transcript.

use crate::chat_turns::{ChatEnv, allow, send_on};
use crate::support::llm_server::Reply;
use noctune_chat::agent::NoPrompter;
use noctune_chat::permissions::PermissionAnswer;
use noctune_chat::service::{ChatError, ChatService};
use noctune_chat::session::{Session, SessionError};
use noctune_llm::Role;
use serde_json::Value;

#[tokio::test]
async fn sessions_round_trip_through_disk() {
    let mut env = ChatEnv::new(
        [
            Reply::reasoning_then_text(&["Thinking."], &["Let me read."]).with_tool_calls([(
                "r1",
                "readFile",
                r#"{"path": "shapes/geometry.py"}"#,
            )]),
            Reply::text(&["It defines area and perimeter."]),
            Reply::text(&["Second answer."]),
        ],
        "native",
    );
    send_on(
        &env.service,
        "round-trip",
        "What does geometry.py do?",
        &NoPrompter,
    )
    .await;
    env.restart();
    let s = env.service.load_session("round-trip").unwrap();
    assert_eq!(s.title, "What does geometry.py do?");
    let roles: Vec<Role> = s.messages.iter().map(|m| m.role).collect();
    assert_eq!(
        roles,
        [Role::User, Role::Assistant, Role::Tool, Role::Assistant]
    );
    assert_eq!(
        s.messages[1].reasoning_content.as_deref(),
        Some("Thinking.")
    );
    assert_eq!(
        s.messages[1].tool_calls.as_ref().unwrap()[0].function.name,
        "readFile"
    );
    assert!(
        s.messages[2]
            .content
            .as_deref()
            .unwrap()
            .contains("def area")
    );

    // A loaded session continues: the next request carries the whole history (no reasoning).
    send_on(&env.service, "round-trip", "And then?", &NoPrompter).await;
    let req = env.llm.last_request().unwrap();
    let msgs = req["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 6, "{req:#}");
    assert!(msgs.iter().all(|m| m.get("reasoning_content").is_none()));
    let s2 = env.service.load_session("round-trip").unwrap();
    assert_eq!(s2.messages.len(), 6);
    assert!(s2.updated_at >= s.updated_at);

    // The file is plain JSON that deserialises to the same session.
    let path = env
        .repo
        .path()
        .join(".noctune_cache/studio_chat/sessions/round-trip.json");
    let from_file: Session = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(from_file, s2);
}

#[tokio::test]
async fn list_and_delete() {
    let env = ChatEnv::new([Reply::text(&["a"]), Reply::text(&["b"])], "auto");
    send_on(&env.service, "first", "one", &NoPrompter).await;
    send_on(&env.service, "second", "two", &NoPrompter).await;
    let made = env.service.new_session(None).unwrap();
    let list = env.service.list_sessions().unwrap();
    let ids: Vec<&str> = list.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids.len(), 3);
    assert!(ids.contains(&"first") && ids.contains(&"second") && ids.contains(&made.id.as_str()));
    assert_eq!(list.iter().find(|s| s.id == "first").unwrap().messages, 2);
    assert!(env.service.delete_session("first").unwrap());
    assert!(!env.service.delete_session("first").unwrap());
    assert!(matches!(
        env.service.load_session("first"),
        Err(ChatError::Session(SessionError::NotFound { .. }))
    ));
    assert_eq!(env.service.list_sessions().unwrap().len(), 2);
}

#[tokio::test]
async fn session_ids_are_file_names_and_are_checked() {
    let env = ChatEnv::new(Reply::text(&["never"]), "auto");
    for bad in ["../escape", "a/b", ".hidden", "", "x\0y"] {
        let err = env
            .service
            .send(
                bad,
                "hi",
                Default::default(),
                &NoPrompter,
                &mut |_| {},
                &Default::default(),
            )
            .await
            .err()
            .unwrap_or_else(|| panic!("{bad:?} accepted"));
        assert!(err.to_string().contains("invalid session id"), "{err}");
        assert!(env.service.load_session(bad).is_err());
    }
    assert!(env.llm.requests().is_empty());
}

#[tokio::test]
async fn the_export_has_every_message_tool_call_result_and_grant() {
    let env = ChatEnv::new(
        [
            Reply::tool_calls([
                ("r1", "readFile", r#"{"path": "shapes/render.py"}"#),
                (
                    "w1",
                    "writeFile",
                    r#"{"path": "shapes/render.py", "content": "x = 1\n"}"#,
                ),
            ]),
            Reply::text(&["Done."]),
            Reply::tool_call(
                "w2",
                "writeFile",
                r#"{"path": "shapes/geometry.py", "content": "y = 2\n"}"#,
            ),
            Reply::text(&["Could not."]),
        ],
        "native",
    );
    send_on(
        &env.service,
        "exp",
        "edit render",
        &allow(PermissionAnswer::Session),
    )
    .await;
    send_on(&env.service, "exp", "edit geometry", &NoPrompter).await; // the session grant holds
    let export = env.service.export_session("exp").unwrap();
    let session = env.service.load_session("exp").unwrap();
    assert_eq!(export["session_id"], "exp");
    assert_eq!(
        export["messages"].as_array().unwrap().len(),
        session.messages.len()
    );
    assert_eq!(
        export["messages"],
        serde_json::to_value(&session.messages).unwrap()
    );
    let calls = export["tool_calls"].as_array().unwrap();
    let ids: Vec<&str> = calls.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["r1", "w1", "w2"]);
    for c in calls {
        assert_eq!(c["ok"], true, "{c:#}");
        assert!(c["result"].is_object(), "{c:#}");
    }
    assert_eq!(calls[1]["arguments"]["content"], "x = 1\n");
    // Grants: as answered in the session, and the audit DB's records (granted, used).
    let grants = export["grants"].as_array().unwrap();
    assert_eq!(grants.len(), 1, "{grants:#?}");
    assert_eq!(grants[0]["answer"], "session");
    assert_eq!(grants[0]["class"], "write");
    let audit = export["audit_grants"].as_array().unwrap();
    let actions: Vec<&str> = audit
        .iter()
        .map(|g| g["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"granted") && actions.iter().filter(|a| **a == "used").count() == 2,
        "{audit:#?}"
    );
    assert!(audit.iter().all(|g| g["session_id"] == "exp"));
}

#[tokio::test]
async fn profiles_are_listed_and_selected_per_session() {
    let env = ChatEnv::new(Reply::text(&["hi"]), "auto");
    let toml = std::fs::read_to_string(env.repo.path().join("noctune.toml")).unwrap()
        + "\n[model_profiles.other]\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"x\"\n";
    std::fs::write(env.repo.path().join("noctune.toml"), toml).unwrap();
    let service = ChatService::open(&env.repo.path(), None, None).unwrap();
    let names: Vec<String> = service.profiles().into_iter().map(|p| p.name).collect();
    assert!(
        names.contains(&"scripted".to_string()) && names.contains(&"other".to_string()),
        "{names:?}"
    );
    assert_eq!(service.default_profile(), "scripted");
    assert!(matches!(
        service.select_profile("p1", "nope"),
        Err(ChatError::UnknownProfile { .. })
    ));
    service.select_profile("p1", "other").unwrap();
    assert_eq!(
        service.load_session("p1").unwrap().profile.as_deref(),
        Some("other")
    );
    // The selected profile's server (port 9: nothing there) is the one asked.
    let turn = send_on(&service, "p1", "hello", &NoPrompter).await;
    assert!(
        turn.error().unwrap().contains("127.0.0.1:9"),
        "{:?}",
        turn.error()
    );
    assert!(env.llm.requests().is_empty());
}

#[tokio::test]
async fn concurrent_turns_of_one_session_do_not_interleave() {
    let env = ChatEnv::new(
        [Reply::text(&["one"]).delay(100), Reply::text(&["two"])],
        "auto",
    );
    let (a, b) = tokio::join!(
        send_on(&env.service, "same", "first", &NoPrompter),
        send_on(&env.service, "same", "second", &NoPrompter)
    );
    assert!(a.summary.error.is_none() && b.summary.error.is_none());
    let s = env.service.load_session("same").unwrap();
    let texts: Vec<&str> = s
        .messages
        .iter()
        .map(|m| m.content.as_deref().unwrap())
        .collect();
    assert_eq!(texts.len(), 4, "{texts:?}");
    assert_eq!(
        s.messages.iter().map(|m| m.role).collect::<Vec<_>>(),
        [Role::User, Role::Assistant, Role::User, Role::Assistant]
    );
    // The second request saw the whole first turn.
    let second: &Value = &env.llm.requests()[1];
    assert_eq!(second["messages"].as_array().unwrap().len(), 4);
}
