//! One shutdown signal that many tasks wait for: the controllers, the metrics server, leader
//! election.

use std::future::Future;

use tokio::sync::watch;

/// A shutdown that any number of tasks can wait for. Clones wait for the same signal.
#[derive(Clone, Debug)]
pub struct Shutdown(watch::Receiver<bool>);

/// Triggers a [`Shutdown`].
#[derive(Debug)]
pub struct Trigger(watch::Sender<bool>);

impl Shutdown {
    /// A shutdown, and what triggers it.
    pub fn new() -> (Trigger, Self) {
        let (tx, rx) = watch::channel(false);
        (Trigger(tx), Self(rx))
    }

    /// A shutdown triggered when `signal` resolves.
    pub fn on(signal: impl Future<Output = ()> + Send + 'static) -> Self {
        let (trigger, shutdown) = Self::new();
        tokio::spawn(async move {
            signal.await;
            trigger.fire();
        });
        shutdown
    }

    /// A shutdown triggered by whichever of `self` and `other` comes first.
    pub fn or(self, other: Shutdown) -> Self {
        Self::on(async move {
            tokio::select! {
                _ = self.wait() => {}
                _ = other.wait() => {}
            }
        })
    }

    /// Resolves once the shutdown was triggered (at once if it was already). A trigger dropped
    /// without firing never shuts down.
    pub async fn wait(mut self) {
        if self.0.wait_for(|stopped| *stopped).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

impl Trigger {
    pub fn fire(&self) {
        let _ = self.0.send(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_clone_sees_the_shutdown_and_late_waiters_too() {
        let (trigger, shutdown) = Shutdown::new();
        let early = tokio::spawn(shutdown.clone().wait());
        trigger.fire();
        early.await.unwrap();
        shutdown.clone().wait().await;
        let (_, never) = Shutdown::new();
        let either = shutdown.or(never);
        either.wait().await;
    }
}
