//! Live run events by SSE against the real binary: catch-up from a cursor, resume after
//! `Last-Event-ID`, a reconnecting client misses nothing, and the stream ends when the run is
//! terminal and drained.

use crate::http_support::{Setup, SseMsg};
use serde_json::{Value, json};
use std::time::Duration;

fn idx_of(msgs: &[SseMsg]) -> Vec<u64> {
    msgs.iter()
        .filter(|m| m.event == "message")
        .map(|m| m.json()["idx"].as_u64().unwrap())
        .collect()
}

fn finish_run(s: &Setup, run_id: &str) {
    let st = &s.studio;
    st.wait_status(run_id, 90, |s| s == "waiting_approval");
    let approvals = st.json(&format!("/api/runs/{run_id}/approvals"))["approvals"].clone();
    for a in approvals
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["status"] == "pending")
    {
        let r = st.post_json(
            &format!("/api/runs/{run_id}/decide"),
            &json!({"approval_id": a["approval_id"], "decision": "approve", "reason": "fine"}),
        );
        assert_eq!(r.status, 200, "{}", r.text());
    }
    st.wait_status(run_id, 120, |s| s == "done");
}

#[test]
fn catch_up_from_a_cursor_and_after_last_event_id_then_end() {
    let s = Setup::new();
    let st = &s.studio;
    let run_id = s.start("lint_fix");
    finish_run(&s, &run_id);
    let all = st.json(&format!("/api/runs/{run_id}/events?limit=5000"))["events"]
        .as_array()
        .unwrap()
        .clone();
    let n = all.len() as u64;

    let mut sse = st.sse(&format!("/api/runs/{run_id}/events/stream?cursor=3"), &[]);
    assert_eq!(sse.status, 200);
    let msgs = sse.until_end(Duration::from_secs(20));
    assert_eq!(idx_of(&msgs), (3..n).collect::<Vec<_>>());
    for m in msgs.iter().filter(|m| m.event == "message") {
        assert_eq!(
            m.id.as_deref(),
            Some(m.json()["idx"].to_string().as_str()),
            "id = idx"
        );
        assert_eq!(
            &m.json(),
            &all[m.json()["idx"].as_u64().unwrap() as usize],
            "the same event as events.jsonl"
        );
    }
    let end = msgs.last().unwrap();
    assert_eq!(end.event, "end");
    assert_eq!(end.json()["status"], "done");
    assert!(
        sse.next(Duration::from_millis(500)).is_none(),
        "the stream is closed after end"
    );

    // Last-Event-ID wins over the cursor of the URL (a reconnecting EventSource keeps its URL).
    let mut sse = st.sse(
        &format!("/api/runs/{run_id}/events/stream?cursor=0"),
        &[("Last-Event-ID", "5")],
    );
    let msgs = sse.until_end(Duration::from_secs(20));
    assert_eq!(idx_of(&msgs), (6..n).collect::<Vec<_>>());
    // Past the end: just the end, at once.
    let t = std::time::Instant::now();
    let mut sse = st.sse(&format!("/api/runs/{run_id}/events/stream?cursor={n}"), &[]);
    let msgs = sse.until_end(Duration::from_secs(20));
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "a drained terminal run ends at once: {:?}",
        t.elapsed()
    );
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].event, "end");
    // A bad Last-Event-ID or cursor is a 400.
    assert_eq!(
        st.sse(
            &format!("/api/runs/{run_id}/events/stream"),
            &[("Last-Event-ID", "x")]
        )
        .status,
        400
    );
    assert_eq!(
        st.sse(&format!("/api/runs/{run_id}/events/stream?cursor=-2"), &[])
            .status,
        400
    );
}

#[test]
fn a_client_that_reconnects_with_its_last_id_misses_nothing_of_a_live_run() {
    let s = Setup::new();
    let st = &s.studio;
    let run_id = s.start("lint_fix");
    let path = format!("/api/runs/{run_id}/events/stream?cursor=0");
    let mut got: Vec<Value> = Vec::new();
    // First connection: a few events, then hang up mid-run.
    let mut sse = st.sse(&path, &[]);
    while got.len() < 3 {
        let m = sse
            .next(Duration::from_secs(30))
            .expect("live events arrive");
        got.push(m.json());
    }
    drop(sse);
    // Reconnect repeatedly with the last id; approve when asked; follow to the end.
    let mut ended = None;
    for _ in 0..200 {
        let last = got.last().unwrap()["idx"].to_string();
        let mut sse = st.sse(&path, &[("Last-Event-ID", &last)]);
        assert_eq!(sse.status, 200);
        // Read a handful per connection, so the run is followed over many reconnects.
        for _ in 0..4 {
            let Some(m) = sse.next(Duration::from_secs(2)) else {
                break;
            };
            if m.event == "end" {
                ended = Some(m.json());
                break;
            }
            let ev = m.json();
            if ev["type"] == "approval_requested" {
                let r = st.post_json(&format!("/api/runs/{run_id}/decide"), &json!({"approval_id": ev["payload"]["approval_id"], "decision": "approve", "reason": "ok"}));
                assert_eq!(r.status, 200, "{}", r.text());
            }
            got.push(ev);
        }
        if ended.is_some() {
            break;
        }
    }
    let end = ended.expect("the stream ended");
    assert_eq!(end["status"], "done");
    let idx: Vec<u64> = got.iter().map(|e| e["idx"].as_u64().unwrap()).collect();
    assert_eq!(
        idx,
        (0..idx.len() as u64).collect::<Vec<_>>(),
        "no event lost or repeated"
    );
    let file = st.json(&format!("/api/runs/{run_id}/events?limit=5000"))["events"].clone();
    assert_eq!(json!(got), file, "exactly events.jsonl");
    assert_eq!(got.last().unwrap()["type"], "status_changed");
    assert_eq!(got.last().unwrap()["payload"]["status"], "done");
}
