//! Live run events by SSE: `GET /api/runs/{run_id}/events/stream?cursor=N`.
//!
//! Each message is one line of `events.jsonl` (`id` = its `idx`, `data` = the event as JSON).
//! The stream starts at `cursor` (or after `Last-Event-ID`, which wins, as a reconnecting
//! `EventSource` sends it), so a client that reconnects with its last cursor misses nothing.
//! It follows the file by byte offset and ends with an `end` message once the run is terminal
//! and its final `status_changed` event has been sent.

use super::AppState;
use super::error::{ApiError, ApiPath, ApiQuery, blocking};
use super::openapi::hand_written_schema;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use noctune_studio::{Event, EventFeed, RunStatus, Studio};
use serde::Deserialize;
use serde_json::json;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the file is checked for new lines.
const POLL: Duration = Duration::from_millis(20);
/// How often an idle stream re-reads the run's status.
const STATUS_EVERY: Duration = Duration::from_millis(300);
/// A terminal run whose final event never shows (a writer died in between) ends after this.
const TERMINAL_GRACE: Duration = Duration::from_secs(2);

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    /// First event idx to send (default 0; Last-Event-ID wins).
    #[schemars(range(max = super::api_runs::MAX_CURSOR))]
    cursor: Option<u64>,
}

hand_written_schema!(LastEventIdSchema, "LastEventId", {
    "type": "string",
    "pattern": "^[0-9]{1,15}$"
});

hand_written_schema!(RunEventMessage, "RunEventMessage", {
    "type": "object",
    "description": "One SSE message of a run's event stream",
    "properties": {
        "event": {"type": "string", "enum": ["message", "end", "error"], "description": "message (or absent): an event (data = Event); end: the run is terminal and drained (data = {status, next_cursor}); error: the stream failed (data = Error)"},
        "id": {"type": "string", "description": "The event's idx (message only)"},
        "data": {"type": "string", "contentMediaType": "application/json"}
    }
});

pub async fn run_events(
    State(st): State<Arc<AppState>>,
    ApiPath(run_id): ApiPath<String>,
    ApiQuery(q): ApiQuery<StreamQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let cursor = match headers.get("last-event-id") {
        Some(v) => {
            let last = v
                .to_str()
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "invalid_last_event_id",
                        "Last-Event-ID must be the idx of an event",
                    )
                })?;
            last + 1
        }
        None => q.cursor.unwrap_or(0),
    };
    let studio = st.studio.clone();
    let id = run_id.clone();
    let feed = blocking(move || studio.event_feed(&id)).await?;
    let follower = Follower {
        studio: st.studio.clone(),
        run_id,
        tail: Some(feed),
        next: cursor,
        queue: VecDeque::new(),
        saw_final: false,
        terminal_since: None,
        last_status: Instant::now(),
        finished: false,
    };
    let stream = futures_util::stream::unfold(follower, |mut f| async move {
        let msg = f.next_message().await?;
        Some((Ok::<_, Infallible>(msg), f))
    });
    let mut resp = Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response();
    resp.headers_mut().insert(
        "x-accel-buffering",
        axum::http::HeaderValue::from_static("no"),
    );
    Ok(resp)
}

struct Follower {
    studio: Arc<Studio>,
    run_id: String,
    tail: Option<EventFeed>,
    next: u64,
    queue: VecDeque<SseEvent>,
    /// Whether the last `status_changed` event read was into a terminal status.
    saw_final: bool,
    terminal_since: Option<Instant>,
    last_status: Instant,
    finished: bool,
}

impl Follower {
    async fn next_message(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(m) = self.queue.pop_front() {
                return Some(m);
            }
            if self.finished {
                return None;
            }
            match self.poll().await {
                Ok(events) if !events.is_empty() => {
                    for ev in events {
                        self.push(ev);
                    }
                    if !self.queue.is_empty() {
                        continue;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    self.end_with_error(e);
                    continue;
                }
            }
            if self.saw_final || self.last_status.elapsed() >= STATUS_EVERY {
                self.last_status = Instant::now();
                let studio = self.studio.clone();
                let id = self.run_id.clone();
                match blocking(move || studio.status(&id)).await {
                    Ok(rec) if rec.status.is_terminal() => {
                        let since = *self.terminal_since.get_or_insert_with(Instant::now);
                        if self.saw_final || since.elapsed() >= TERMINAL_GRACE {
                            let data =
                                json!({"status": rec.status, "next_cursor": self.next}).to_string();
                            self.queue
                                .push_back(SseEvent::default().event("end").data(data));
                            self.finished = true;
                            continue;
                        }
                    }
                    Ok(_) => {
                        self.terminal_since = None;
                        self.saw_final = false;
                    }
                    Err(e) => {
                        self.end_with_error(e.message);
                        continue;
                    }
                }
            }
            tokio::time::sleep(POLL).await;
        }
    }

    fn push(&mut self, ev: Event) {
        // Status changes before the cursor count too: a client resuming after the final event
        // gets its `end` at once.
        if ev.kind == "status_changed" {
            self.saw_final = ev
                .payload
                .get("status")
                .and_then(|s| s.as_str())
                .and_then(RunStatus::parse)
                .is_some_and(|s| s.is_terminal());
        }
        if ev.idx < self.next {
            return;
        }
        self.next = ev.idx + 1;
        let data = serde_json::to_string(&ev).unwrap_or_else(|_| "{}".into());
        self.queue
            .push_back(SseEvent::default().id(ev.idx.to_string()).data(data));
    }

    fn end_with_error(&mut self, message: String) {
        let data = json!({"error": "stream_failed", "message": message}).to_string();
        self.queue
            .push_back(SseEvent::default().event("error").data(data));
        self.finished = true;
    }

    /// New events: from `events.jsonl` by offset, or from the facade (the audit DB) when the
    /// file is gone.
    async fn poll(&mut self) -> Result<Vec<Event>, String> {
        if let Some(mut tail) = self.tail.take() {
            let (tail, res) = tokio::task::spawn_blocking(move || {
                if !tail.has_log() {
                    return (tail, Ok(None));
                }
                let r = tail.poll().map(Some);
                (tail, r)
            })
            .await
            .map_err(|e| e.to_string())?;
            self.tail = Some(tail);
            match res {
                Ok(Some(events)) => return Ok(events),
                Ok(None) => {}
                Err(e) => return Err(e.message),
            }
        }
        let studio = self.studio.clone();
        let id = self.run_id.clone();
        let next = self.next;
        blocking(move || studio.events(&id, next, 1000))
            .await
            .map_err(|e| e.message)
    }
}
