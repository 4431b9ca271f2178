//! A cancellation flag that async code can wait on.
//!
//! tokio-util's `CancellationToken` would do, but it is not a dependency; a `watch` channel gives
//! the same two things we need: a cheap check (`is_cancelled`) and a future that completes when
//! the flag is set (`cancelled`), which `tokio::select!` races against network reads.

use std::sync::Arc;
use tokio::sync::watch;

/// Cancels an LLM request from anywhere (a "Stop" button, a run being stopped).
///
/// Clones share one flag: cancelling any clone cancels them all. Once set it stays set; make a
/// new token for the next request.
#[derive(Clone, Debug)]
pub struct CancelToken {
    flag: Arc<watch::Sender<bool>>,
}

impl CancelToken {
    pub fn new() -> Self {
        Self {
            flag: Arc::new(watch::Sender::new(false)),
        }
    }

    /// Sets the flag and wakes every task waiting in [`CancelToken::cancelled`].
    pub fn cancel(&self) {
        self.flag.send_replace(true);
    }

    pub fn is_cancelled(&self) -> bool {
        *self.flag.borrow()
    }

    /// Completes once the token is cancelled (at once if it already is).
    pub async fn cancelled(&self) {
        let mut rx = self.flag.subscribe();
        // The sender lives in `self`, so the channel cannot close while we wait; an error here
        // would mean it did, and then nothing can cancel us any more: wait forever.
        if rx.wait_for(|set| *set).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

impl Default for CancelToken {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn cancel_wakes_a_waiter_and_stays_set() {
        let token = CancelToken::new();
        assert!(!token.is_cancelled());
        let waiter = {
            let token = token.clone();
            tokio::spawn(async move { token.cancelled().await })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        token.cancel();
        tokio::time::timeout(Duration::from_secs(2), waiter)
            .await
            .expect("waiter woke")
            .expect("task ran");
        assert!(token.is_cancelled());
        // Already cancelled: completes at once.
        tokio::time::timeout(Duration::from_millis(100), token.cancelled())
            .await
            .expect("immediate");
    }
}
