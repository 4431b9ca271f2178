//! Connections: each one served by hyper's HTTP/1 connection under a watch of our own, so that
//! a client that connects and sends nothing, or half a request head, cannot hold a file
//! descriptor for long, and a flood of such clients can neither use up the descriptors nor keep
//! the token holder out (`noctune_studio::limits` has the figures):
//!
//! - a request head must be complete [`limits::REQUEST_HEAD_TIMEOUT`] after the accept (first
//!   request) or after its first byte (later requests on a kept-alive connection);
//! - a connection with no request in progress is closed after
//!   [`limits::IDLE_CONNECTION_TIMEOUT`];
//! - connections that have not made a request with the token yet are kept in accept order,
//!   at most the cap (derived from the file-descriptor limit); admitting one more closes the
//!   oldest. A request that passes the lock ([`Client::authenticated`]) takes its connection
//!   out of that list for good.
//!
//! hyper's own header timer is off: it runs from the end of one answer to the end of the next
//! head, so it cannot tell an idle keep-alive connection (allowed 30 s) from a trickled head
//! (allowed 5 s).

use axum::Router;
use axum::body::Body;
use hyper::body::{Frame, Incoming, SizeHint};
use noctune_studio::limits;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tower::ServiceExt;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing under these locks can be left half-done by a panic: use the value as it is.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The connections that have not made a request with the token yet, oldest first.
pub struct Unauthenticated {
    cap: usize,
    waiting: Mutex<Waiting>,
}

struct Waiting {
    next_id: u64,
    conns: BTreeMap<u64, Arc<Shared>>,
}

impl Unauthenticated {
    pub fn new(cap: usize) -> Arc<Unauthenticated> {
        Arc::new(Unauthenticated {
            cap: cap.max(1),
            waiting: Mutex::new(Waiting {
                next_id: 0,
                conns: BTreeMap::new(),
            }),
        })
    }

    pub fn cap(&self) -> usize {
        self.cap
    }

    /// A newly accepted connection; at the cap, the oldest one without the token is closed.
    pub fn admit(self: &Arc<Self>) -> Arc<Shared> {
        let mut w = lock(&self.waiting);
        let id = w.next_id;
        w.next_id += 1;
        while w.conns.len() >= self.cap {
            match w.conns.pop_first() {
                Some((_, oldest)) => oldest.evicted.notify_one(),
                None => break,
            }
        }
        let shared = Arc::new(Shared {
            id,
            waiting: Arc::downgrade(self),
            authenticated: AtomicBool::new(false),
            evicted: Notify::new(),
            phase: Mutex::new(Phase::Head(Instant::now())),
            changed: Notify::new(),
        });
        w.conns.insert(id, shared.clone());
        shared
    }

    /// Closes the oldest connection without the token (to free a file descriptor when the
    /// process has none left). False if there is none.
    pub fn evict_oldest(&self) -> bool {
        match lock(&self.waiting).conns.pop_first() {
            Some((_, oldest)) => {
                oldest.evicted.notify_one();
                true
            }
            None => false,
        }
    }

    fn forget(&self, id: u64) {
        lock(&self.waiting).conns.remove(&id);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        lock(&self.waiting).conns.len()
    }
}

/// What a connection's task, its socket and its requests share.
pub struct Shared {
    id: u64,
    waiting: Weak<Unauthenticated>,
    authenticated: AtomicBool,
    evicted: Notify,
    phase: Mutex<Phase>,
    /// The phase changed in a way that moves the deadline.
    changed: Notify,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for a request head whose first byte (or, for the first request, the accept)
    /// came at this instant.
    Head(Instant),
    /// This many requests are being answered (a head was read; the answer's body is not done).
    Busy(usize),
    /// Nothing in progress since this instant.
    Idle(Instant),
}

impl Phase {
    fn on_bytes(self, now: Instant) -> Phase {
        match self {
            Phase::Idle(_) => Phase::Head(now),
            other => other,
        }
    }

    fn on_request(self) -> Phase {
        match self {
            Phase::Busy(n) => Phase::Busy(n + 1),
            Phase::Head(_) | Phase::Idle(_) => Phase::Busy(1),
        }
    }

    fn on_answered(self, now: Instant) -> Phase {
        match self {
            Phase::Busy(n) if n > 1 => Phase::Busy(n - 1),
            _ => Phase::Idle(now),
        }
    }

    /// When the connection is to be closed, and why, if nothing happens before.
    fn deadline(self) -> Option<(Instant, &'static str)> {
        match self {
            Phase::Head(t) => Some((
                t + limits::REQUEST_HEAD_TIMEOUT,
                "the request head was not complete in time",
            )),
            Phase::Idle(t) => Some((t + limits::IDLE_CONNECTION_TIMEOUT, "idle")),
            Phase::Busy(_) => None,
        }
    }
}

impl Shared {
    fn bytes_arrived(&self) {
        let mut p = lock(&self.phase);
        let next = p.on_bytes(Instant::now());
        if next != *p {
            *p = next;
            drop(p);
            self.changed.notify_one();
        }
    }

    fn request_started(self: &Arc<Self>) -> InFlight {
        let mut p = lock(&self.phase);
        *p = p.on_request();
        InFlight(self.clone())
    }

    fn request_ended(&self) {
        let mut p = lock(&self.phase);
        *p = p.on_answered(Instant::now());
        drop(p);
        self.changed.notify_one();
    }

    fn deadline(&self) -> Option<(Instant, &'static str)> {
        lock(&self.phase).deadline()
    }
}

/// The connection a request came on (a request extension), for the lock to mark it.
#[derive(Clone)]
pub struct Client(Arc<Shared>);

impl Client {
    /// The connection made a request that passed the lock: it is the token holder's, and no
    /// longer among those closed first.
    pub fn authenticated(&self) {
        if !self.0.authenticated.swap(true, Ordering::SeqCst)
            && let Some(w) = self.0.waiting.upgrade()
        {
            w.forget(self.0.id);
        }
    }
}

/// One request in progress; dropped with the answer's body (or with the request if it is
/// abandoned).
struct InFlight(Arc<Shared>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_ended();
    }
}

/// The answer's body, holding its request's [`InFlight`] until hyper is done with it.
struct Tracked {
    body: Body,
    _in_flight: InFlight,
}

impl hyper::body::Body for Tracked {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The socket, telling [`Shared`] when bytes arrive.
struct Watched {
    stream: TcpStream,
    shared: Arc<Shared>,
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.stream).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.shared.bytes_arrived();
        }
        r
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// Serves one connection until it ends, is closed by a deadline or eviction, or (after
/// `shutdown` turns true) finishes the request in progress.
pub async fn serve(
    stream: TcpStream,
    shared: Arc<Shared>,
    app: Router,
    mut shutdown: watch::Receiver<bool>,
) {
    let io = hyper_util::rt::TokioIo::new(Watched {
        stream,
        shared: shared.clone(),
    });
    let for_requests = shared.clone();
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let in_flight = for_requests.request_started();
        let mut req = req.map(Body::new);
        req.extensions_mut().insert(Client(for_requests.clone()));
        let answer = app.clone().oneshot(req);
        async move {
            let resp = answer.await?;
            Ok::<_, Infallible>(resp.map(|body| Tracked {
                body,
                _in_flight: in_flight,
            }))
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.header_read_timeout(None);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let mut draining = *shutdown.borrow();
    if draining {
        conn.as_mut().graceful_shutdown();
    }
    loop {
        let (at, why) = shared
            .deadline()
            .unwrap_or((Instant::now() + Duration::from_secs(3600), "busy"));
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!("connection ended: {e}");
                }
                break;
            }
            () = shared.changed.notified() => {}
            () = tokio::time::sleep_until(at) => {
                if shared.deadline().is_some_and(|(d, _)| d <= Instant::now()) {
                    tracing::debug!("connection closed: {why}");
                    break;
                }
            }
            () = shared.evicted.notified() => {
                if !shared.authenticated.load(Ordering::SeqCst) {
                    tracing::debug!("connection closed: the oldest without the token, to admit a new one");
                    break;
                }
            }
            r = shutdown.changed(), if !draining => {
                draining = true;
                if r.is_ok() {
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
    if let Some(w) = shared.waiting.upgrade() {
        w.forget(shared.id);
    }
}

/// Raises this process's soft limit on open files to the hard limit (as servers commonly do;
/// the default soft limit is often 1024) and returns the limit now in force.
pub fn raise_fd_limit() -> u64 {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } != 0 {
        tracing::debug!("getrlimit(RLIMIT_NOFILE): {}", io::Error::last_os_error());
        return 1024;
    }
    // An unlimited hard limit is not a value setrlimit accepts for the soft one everywhere.
    let target = rl.rlim_max.min(1 << 20);
    if rl.rlim_cur < target {
        let raised = libc::rlimit {
            rlim_cur: target,
            rlim_max: rl.rlim_max,
        };
        // SAFETY: setrlimit reads the struct we own.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            rl.rlim_cur = target;
        } else {
            tracing::debug!(
                "could not raise the open-file limit from {} to {target}: {}",
                rl.rlim_cur,
                io::Error::last_os_error()
            );
        }
    }
    rl.rlim_cur
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn admitting_past_the_cap_evicts_the_oldest_and_authenticated_ones_leave_the_list() {
        let w = Unauthenticated::new(2);
        let a = w.admit();
        let b = w.admit();
        Client(b.clone()).authenticated();
        assert_eq!(w.len(), 1, "b has the token");
        let c = w.admit();
        assert_eq!(w.len(), 2);
        let d = w.admit();
        assert_eq!(w.len(), 2, "a went to make room for d");
        // a's eviction permit is stored; b, c and d have none.
        tokio::time::timeout(Duration::from_secs(1), a.evicted.notified())
            .await
            .expect("a evicted");
        for s in [&b, &c, &d] {
            assert!(
                tokio::time::timeout(Duration::from_millis(20), s.evicted.notified())
                    .await
                    .is_err()
            );
        }
        assert!(w.evict_oldest());
        assert!(w.evict_oldest());
        assert!(!w.evict_oldest());
    }

    #[test]
    fn deadlines_follow_the_phase() {
        let t = Instant::now();
        let head = Phase::Head(t);
        assert_eq!(head.deadline().unwrap().0, t + limits::REQUEST_HEAD_TIMEOUT);
        // Bytes of a head being read do not move its deadline.
        let later = t + Duration::from_secs(2);
        assert_eq!(head.on_bytes(later), head);
        let busy = head.on_request();
        assert_eq!(
            busy.deadline(),
            None,
            "a request in progress has no deadline"
        );
        // Body bytes while busy change nothing.
        assert_eq!(busy.on_bytes(later), busy);
        assert_eq!(busy.on_request().on_answered(later), busy);
        let idle = busy.on_answered(later);
        assert_eq!(
            idle.deadline().unwrap().0,
            later + limits::IDLE_CONNECTION_TIMEOUT
        );
        // The next request's first byte starts its head's clock.
        let next = later + Duration::from_secs(10);
        assert_eq!(
            idle.on_bytes(next).deadline().unwrap().0,
            next + limits::REQUEST_HEAD_TIMEOUT
        );
    }
}
