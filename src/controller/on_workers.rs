//! Reconciliations run as tasks of their own.
//!
//! kube's controller polls every reconciliation it has started inside its own task, beside its
//! watches and its scheduler: however many run at once, they share the one thread that task is
//! on. Spawned, each reconciliation runs on whichever worker is free (docs/performance.md).

use std::future::Future;

use tokio_util::task::AbortOnDropHandle;
use tracing::Instrument as _;

/// Runs `work` as a task of its own and waits for it. Dropping the returned future (the
/// controller's shutdown) stops the task, as it would stop `work` polled in place; a panic in
/// `work` is the caller's panic.
pub async fn on_workers<T: Send + 'static>(work: impl Future<Output = T> + Send + 'static) -> T {
    let task = AbortOnDropHandle::new(tokio::spawn(work.in_current_span()));
    match task.await {
        Ok(outcome) => outcome,
        Err(failed) => match failed.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            // Only the runtime shutting down cancels it; nothing waits for the answer then.
            Err(cancelled) => panic!("a reconciliation's task was cancelled: {cancelled}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    #[tokio::test]
    async fn the_answer_comes_back_and_a_dropped_wait_stops_the_task() {
        assert_eq!(on_workers(async { 7 }).await, 7);
        let finished = Arc::new(AtomicBool::new(false));
        let flag = finished.clone();
        let waiting = on_workers(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            flag.store(true, Ordering::SeqCst);
        });
        assert!(
            tokio::time::timeout(Duration::from_millis(10), waiting)
                .await
                .is_err()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            !finished.load(Ordering::SeqCst),
            "the task outlived its wait"
        );
    }

    #[tokio::test]
    #[should_panic(expected = "boom")]
    async fn a_panic_is_the_callers() {
        on_workers(async { panic!("boom") }).await
    }
}
