//! Waiting for something to happen, instead of sleeping a fixed time and hoping it did.
//!
//! Every helper polls its condition right away, then again after a short back-off that grows
//! from 5 ms to at most 100 ms (so a fast condition costs ~5 ms, a slow one ~10 polls a
//! second), and gives up at the deadline. The `wait_*` functions panic with what they waited
//! for and how long; the `poll_*` ones return `Err(elapsed)` for callers that want to say more
//! (the last status seen, a log) or that treat a timeout as an answer (`wait_exit`).
//!
//! ```ignore
//! wait_until(Duration::from_secs(5), "the server to exit", || !alive(pid));
//! let run = wait_for(Duration::from_secs(30), "a run to appear", || first_run(&nt));
//! wait_until_async(Duration::from_secs(5), "the request to reach the model", async || {
//!     !llm.requests().is_empty()
//! })
//! .await;
//! ```
//!
//! A sleep that is not waiting for anything (a gap a test needs on purpose, e.g. to let a lease
//! expire, or a scripted server's simulated latency) stays a sleep, with a comment saying why.

#![allow(dead_code)]

use std::time::{Duration, Instant};

const FIRST_PAUSE: Duration = Duration::from_millis(5);
const MAX_PAUSE: Duration = Duration::from_millis(100);

/// The next pause: doubled, capped at [`MAX_PAUSE`], and never past the deadline.
fn next_pause(pause: &mut Duration, started: Instant, deadline: Duration) -> Duration {
    let left = deadline.saturating_sub(started.elapsed());
    let this = (*pause).min(left);
    *pause = (*pause * 2).min(MAX_PAUSE);
    this
}

/// Calls `f` until it returns `Some`, for at most `deadline`; `Err(elapsed)` on timeout.
/// `f` is always called at least once, and once more at the deadline.
pub fn poll_for<T>(deadline: Duration, mut f: impl FnMut() -> Option<T>) -> Result<T, Duration> {
    let started = Instant::now();
    let mut pause = FIRST_PAUSE;
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        let elapsed = started.elapsed();
        if elapsed >= deadline {
            return Err(elapsed);
        }
        // The one sleep of the polling loop: a back-off between two looks at the condition.
        std::thread::sleep(next_pause(&mut pause, started, deadline));
    }
}

/// Calls `f` until it returns `Some` and returns that, or panics naming `what` after `deadline`.
#[track_caller]
pub fn wait_for<T>(deadline: Duration, what: &str, f: impl FnMut() -> Option<T>) -> T {
    poll_for(deadline, f).unwrap_or_else(|elapsed| timed_out(what, elapsed, deadline))
}

/// Waits until `condition` holds, or panics naming `what` after `deadline`.
#[track_caller]
pub fn wait_until(deadline: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    wait_for(deadline, what, || condition().then_some(()))
}

/// [`poll_for`] for async code: the back-off is a `tokio::time::sleep`, so the runtime's other
/// tasks (a scripted server on the same thread, say) go on meanwhile.
pub async fn poll_for_async<T>(
    deadline: Duration,
    mut f: impl AsyncFnMut() -> Option<T>,
) -> Result<T, Duration> {
    let started = Instant::now();
    let mut pause = FIRST_PAUSE;
    loop {
        if let Some(v) = f().await {
            return Ok(v);
        }
        let elapsed = started.elapsed();
        if elapsed >= deadline {
            return Err(elapsed);
        }
        // The back-off between two looks at the condition (see `poll_for`).
        tokio::time::sleep(next_pause(&mut pause, started, deadline)).await;
    }
}

/// [`wait_for`] for async code.
pub async fn wait_for_async<T>(
    deadline: Duration,
    what: &str,
    f: impl AsyncFnMut() -> Option<T>,
) -> T {
    match poll_for_async(deadline, f).await {
        Ok(v) => v,
        Err(elapsed) => timed_out(what, elapsed, deadline),
    }
}

/// [`wait_until`] for async code; the condition may await (`async || ...`).
pub async fn wait_until_async(
    deadline: Duration,
    what: &str,
    mut condition: impl AsyncFnMut() -> bool,
) {
    wait_for_async(deadline, what, async || condition().await.then_some(())).await
}

#[track_caller]
fn timed_out(what: &str, elapsed: Duration, deadline: Duration) -> ! {
    panic!("timed out after {elapsed:.1?} (limit {deadline:?}) waiting for {what}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_until_returns_as_soon_as_the_condition_holds() {
        let mut n = 0;
        let started = Instant::now();
        wait_until(Duration::from_secs(5), "the third look", || {
            n += 1;
            n == 3
        });
        assert_eq!(n, 3);
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn wait_until_panics_with_what_and_the_elapsed_time() {
        let err = std::panic::catch_unwind(|| {
            wait_until(Duration::from_millis(50), "pigs to fly", || false)
        })
        .unwrap_err();
        let msg = err.downcast_ref::<String>().unwrap();
        assert!(
            msg.contains("waiting for pigs to fly") && msg.contains("timed out after"),
            "{msg}"
        );
    }

    #[test]
    fn poll_for_gives_the_value_or_the_elapsed_time() {
        assert_eq!(poll_for(Duration::ZERO, || Some(7)), Ok(7));
        let elapsed = poll_for(Duration::from_millis(30), || None::<()>).unwrap_err();
        assert!(elapsed >= Duration::from_millis(30), "{elapsed:?}");
    }

    #[tokio::test]
    async fn the_async_variant_awaits_its_condition() {
        let mut n = 0;
        let got = wait_for_async(Duration::from_secs(5), "the second look", async || {
            tokio::task::yield_now().await;
            n += 1;
            (n == 2).then_some(n)
        })
        .await;
        assert_eq!(got, 2);
    }
}
