//! The JSON API of `noctune studio` against the real binary: the OpenAPI document covers the
//! router, unknown runs are 404, the runs flow (start → waiting_approval → reject/approve →
//! done) with the API's status equal to run.json at each step, events from events.jsonl and
//! from SQLite by cursor.

use crate::http_support::Setup;
use crate::support::wait::wait_for;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;

#[test]
fn openapi_documents_every_route_and_only_those() {
    let s = Setup::new();
    let doc = s.studio.json("/api/openapi.json");
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    let served: BTreeSet<(String, String)> = noctune_http::route_table()
        .into_iter()
        .map(|r| (r.method.to_lowercase(), r.path.to_string()))
        .collect();
    let documented: BTreeSet<(String, String)> = paths
        .iter()
        .flat_map(|(p, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .filter(|m| ["get", "post", "put", "delete", "patch"].contains(&m.as_str()))
                .map(move |m| (m.clone(), p.clone()))
        })
        .collect();
    let missing: Vec<_> = served.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "routes missing from /api/openapi.json: {missing:?}"
    );
    let extra: Vec<_> = documented.difference(&served).collect();
    assert!(extra.is_empty(), "documented but not served: {extra:?}");
    // The plan's exact path is there.
    assert!(paths.contains_key("/runs/{run_id}/events_db"));
    // Every $ref resolves.
    let text = doc.to_string();
    for part in text.split("\"#/components/schemas/").skip(1) {
        let name = &part[..part.find('"').unwrap()];
        assert!(
            doc["components"]["schemas"].get(name).is_some(),
            "unresolved $ref {name}"
        );
    }
    // Every operation documents 401 and 403, and path parameters are declared.
    for (p, item) in paths {
        for (m, op) in item.as_object().unwrap() {
            let responses = op["responses"]
                .as_object()
                .unwrap_or_else(|| panic!("{m} {p}: no responses"));
            assert!(
                responses.contains_key("401") && responses.contains_key("403"),
                "{m} {p}"
            );
            for seg in p.split('/').filter(|s| s.starts_with('{')) {
                let name = seg.trim_matches(['{', '}']);
                let declared = op["parameters"]
                    .as_array()
                    .is_some_and(|ps| ps.iter().any(|x| x["name"] == name && x["in"] == "path"));
                assert!(declared, "{m} {p}: path parameter {name} not declared");
            }
        }
    }
}

#[test]
fn unknown_runs_are_404_with_a_helpful_message() {
    let s = Setup::new();
    let st = &s.studio;
    let id = "20990101T000000Z-00000000";
    for path in [
        format!("/api/runs/{id}"),
        format!("/api/runs/{id}/events"),
        format!("/api/runs/{id}/approvals"),
        format!("/api/runs/{id}/patchsets"),
        format!("/runs/{id}/events_db?cursor=0"),
        "/api/runs/not%20a%20valid%20id".into(),
    ] {
        let r = st.get(&path);
        assert_eq!(r.status, 404, "{path}: {}", r.text());
        assert_eq!(r.code(), "unknown_run");
        assert!(
            r.json()["message"]
                .as_str()
                .unwrap()
                .contains("list the runs")
                || r.json()["message"]
                    .as_str()
                    .unwrap()
                    .contains("invalid run id")
        );
    }
    assert_eq!(st.post(&format!("/api/runs/{id}/stop")).status, 404);
    let r = st.post_json(
        &format!("/api/runs/{id}/decide"),
        &json!({"approval_id": "0123456789abcdef0123", "decision": "approve", "reason": ""}),
    );
    assert_eq!(r.status, 404, "{}", r.text());
    let sse = st.sse(&format!("/api/runs/{id}/events/stream"), &[]);
    assert_eq!(sse.status, 404);
    let r = st.get("/api/nope");
    assert_eq!((r.status, r.code().as_str()), (404, "not_found"));
    let r = st.raw(
        "DELETE",
        "/api/runs",
        &[("Authorization", &st.bearer())],
        b"",
    );
    assert_eq!(r.status, 405);
}

/// GET status and read run.json until two API reads around the file read agree (a live run
/// may move between the reads), then check they are equal.
#[track_caller]
fn api_equals_run_json(s: &Setup, run_id: &str) -> Value {
    let (a, file) = wait_for(
        Duration::from_secs(10),
        "two reads of the API status around one of run.json to agree",
        || {
            let a = s.studio.json(&format!("/api/runs/{run_id}"));
            let file = s.run_json(run_id);
            let b = s.studio.json(&format!("/api/runs/{run_id}"));
            (a == b).then_some((a, file))
        },
    );
    assert_eq!(a, file, "the API's status is run.json");
    a
}

fn sqlite(s: &Setup) -> rusqlite::Connection {
    rusqlite::Connection::open(s.nt.db()).unwrap()
}

#[test]
fn runs_flow_over_the_api_reject_is_audited_and_status_matches_run_json() {
    let s = Setup::new();
    let st = &s.studio;
    let r = st.post_json("/api/runs", &json!({"pack": "lint_fix"}));
    assert_eq!(r.status, 201, "{}", r.text());
    let started = r.json();
    let run_id = started["run_id"].as_str().unwrap().to_string();
    assert!(
        s.runs_dir().join(&run_id).join("state/run.json").is_file(),
        "run.json exists when start returns"
    );
    assert_eq!(started["status"], "queued");
    api_equals_run_json(&s, &run_id);

    let listed = st.json("/api/runs");
    assert_eq!(listed["runs"][0]["run_id"], run_id.as_str());
    assert_eq!(st.json("/api/runs?status=done")["runs"], json!([]));

    st.wait_status(&run_id, 90, |s| s == "waiting_approval");
    let rec = api_equals_run_json(&s, &run_id);
    assert_eq!(rec["status"], "waiting_approval");

    let approvals = st.json(&format!("/api/runs/{run_id}/approvals"))["approvals"]
        .as_array()
        .unwrap()
        .clone();
    let pending: Vec<&Value> = approvals
        .iter()
        .filter(|a| a["status"] == "pending")
        .collect();
    assert_eq!(pending.len(), 1, "{approvals:#?}");
    let a = pending[0];
    assert_eq!(a["file_path"], "shapes/render.py");
    assert!(a["diff"].as_str().unwrap().contains("@@"));
    let id = a["approval_id"].as_str().unwrap();

    // Bad decisions change nothing.
    let r = st.post_json(
        &format!("/api/runs/{run_id}/decide"),
        &json!({"approval_id": id, "decision": "maybe"}),
    );
    assert_eq!((r.status, r.code().as_str()), (400, "invalid_arguments"));
    let r = st.raw(
        "POST",
        &format!("/api/runs/{run_id}/decide"),
        &[
            ("Authorization", &st.bearer()),
            ("Content-Type", "application/json"),
        ],
        b"{\"approval_id\":",
    );
    assert_eq!((r.status, r.code().as_str()), (400, "malformed_json"));
    let r = st.post_json(
        &format!("/api/runs/{run_id}/decide"),
        &json!({"approval_id": "0123456789abcdef0123", "decision": "approve"}),
    );
    assert_eq!(
        (r.status, r.code().as_str()),
        (404, "unknown_approval"),
        "{}",
        r.text()
    );
    let r = st.post_json(
        &format!("/api/runs/{run_id}/decide"),
        &json!({"approval_id": "../../x", "decision": "approve"}),
    );
    // a malformed id names no approval that could exist
    assert_eq!((r.status, r.code().as_str()), (404, "unknown_approval"));
    assert_eq!(
        st.json(&format!("/api/runs/{run_id}/approvals"))["approvals"],
        json!(approvals),
        "nothing changed"
    );

    let r = st.post_json(
        &format!("/api/runs/{run_id}/decide"),
        &json!({"approval_id": id, "decision": "reject", "reason": "too risky for a lint pass"}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let d = r.json();
    assert_eq!(d["decided_by"], "web");
    assert_eq!(d["decision"], "reject");
    let again = st.post_json(
        &format!("/api/runs/{run_id}/decide"),
        &json!({"approval_id": id, "decision": "approve"}),
    );
    assert_eq!(
        (again.status, again.code().as_str()),
        (409, "already_decided")
    );

    // The rejection is in the audit DB with its reason and who decided.
    let (decision, by, reason): (String, String, String) = sqlite(&s)
        .query_row("SELECT decision, decided_by, reason FROM decisions WHERE run_id = ?1 AND approval_id = ?2", [&run_id, id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!(
        (decision.as_str(), by.as_str(), reason.as_str()),
        ("reject", "web", "too risky for a lint pass")
    );

    let done = st.wait_status(&run_id, 120, |s| s == "done" || s == "failed");
    assert_eq!(done["status"], "done", "{done:#}");
    assert_eq!(api_equals_run_json(&s, &run_id)["status"], "done");
    let ps = st.json(&format!("/api/runs/{run_id}/patchsets"));
    assert!(!ps["commits"].as_array().unwrap().is_empty(), "{ps:#}");
    let files: Vec<&str> = ps["patchsets"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| {
            p["files"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f.as_str().unwrap())
        })
        .collect();
    assert!(
        !files.contains(&"shapes/render.py"),
        "the rejected edit is in no patchset: {files:?}"
    );
    for c in ps["commits"].as_array().unwrap() {
        assert!(
            c["summary"]
                .as_str()
                .unwrap()
                .starts_with(&format!("Noctune Studio: lint_fix (#{run_id})")),
            "{c}"
        );
    }
    // The rejection shows in the run's approvals and events (and so in both event sources).
    let approvals = st.json(&format!("/api/runs/{run_id}/approvals"))["approvals"].clone();
    let rejected = approvals
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["approval_id"] == id)
        .unwrap();
    assert_eq!(rejected["status"], "rejected");
    assert_eq!(rejected["decision"]["reason"], "too risky for a lint pass");
    // A done run cannot be stopped.
    let r = st.post(&format!("/api/runs/{run_id}/stop"));
    assert_eq!((r.status, r.code().as_str()), (409, "wrong_state"));
}

#[test]
fn events_by_cursor_from_the_file_and_from_sqlite_page_alike() {
    let s = Setup::new();
    let st = &s.studio;
    let run_id = s.start("lint_fix");
    st.wait_status(&run_id, 90, |s| s == "waiting_approval");
    let approvals = st.json(&format!("/api/runs/{run_id}/approvals"))["approvals"].clone();
    let id = approvals
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["status"] == "pending")
        .unwrap()["approval_id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = st.post_json(
        &format!("/api/runs/{run_id}/decide"),
        &json!({"approval_id": id, "decision": "approve", "reason": "ok"}),
    );
    assert_eq!(r.status, 200);
    st.wait_status(&run_id, 120, |s| s == "done");

    let all = st.json(&format!("/api/runs/{run_id}/events?cursor=0&limit=5000"));
    let all_events = all["events"].as_array().unwrap().clone();
    assert!(all_events.len() > 10);
    assert_eq!(all["next_cursor"], all_events.len() as u64);
    // Page through both sources with a small page.
    for base in [
        format!("/api/runs/{run_id}/events"),
        format!("/runs/{run_id}/events_db"),
    ] {
        let mut cursor = 0u64;
        let mut got = Vec::new();
        loop {
            let page = st.json(&format!("{base}?cursor={cursor}&limit=4"));
            let evs = page["events"].as_array().unwrap();
            assert!(evs.len() <= 4);
            if evs.is_empty() {
                assert_eq!(
                    page["next_cursor"], cursor,
                    "an empty page keeps the cursor"
                );
                break;
            }
            got.extend(evs.iter().cloned());
            cursor = page["next_cursor"].as_u64().unwrap();
        }
        let idx: Vec<u64> = got.iter().map(|e| e["idx"].as_u64().unwrap()).collect();
        assert_eq!(
            idx,
            (0..all_events.len() as u64).collect::<Vec<_>>(),
            "{base}: contiguous from 0"
        );
        assert_eq!(got, all_events, "{base}: the same events");
    }
    // A cursor past the end is an empty page.
    let far = st.json(&format!("/runs/{run_id}/events_db?cursor=999999"));
    assert_eq!(far["events"], json!([]));
    // events_db reads SQLite alone: it still answers with events.jsonl gone.
    std::fs::remove_file(s.runs_dir().join(&run_id).join("events.jsonl")).unwrap();
    let db_only = st.json(&format!("/runs/{run_id}/events_db?cursor=0&limit=5000"));
    assert_eq!(db_only["events"].as_array().unwrap(), &all_events);
}

#[test]
fn stop_over_the_api_ends_stopped_and_the_ui_pages_are_served() {
    let s = Setup::new();
    let st = &s.studio;
    let run_id = s.start("lint_fix");
    st.wait_status(&run_id, 90, |s| s == "waiting_approval");
    let r = st.post(&format!("/api/runs/{run_id}/stop?grace_secs=5"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], "stopped");
    assert_eq!(api_equals_run_json(&s, &run_id)["status"], "stopped");
    let types: Vec<String> = st.json(&format!("/api/runs/{run_id}/events?limit=5000"))["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect();
    assert!(types.contains(&"stopped".to_string()), "{types:?}");
    for page in ["/studio", "/studio/runs", &format!("/studio/runs/{run_id}")] {
        let r = st.get(page);
        assert_eq!(r.status, 200, "{page}");
        assert!(r.text().contains("<!doctype html>"));
    }
    let r = st.get("/studio/assets/run.js");
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("text/javascript")
    );
    let etag = r.header("etag").unwrap().to_string();
    let r2 = st.raw(
        "GET",
        "/studio/assets/run.js",
        &[("Authorization", &st.bearer()), ("If-None-Match", &etag)],
        b"",
    );
    assert_eq!(r2.status, 304);
    assert_eq!(st.get("/studio/assets/..%2Fstudio.html").status, 404);
    assert_eq!(st.get("/studio/assets/nope.js").status, 404);
    let cfg = st.json("/api/config");
    assert!(
        cfg["packs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "lint_fix")
    );
}
