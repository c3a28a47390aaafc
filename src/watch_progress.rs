//! How far the operator's Partner watch has come: the newest resourceVersion it delivered.
//!
//! kube-apiserver makes an update on the copy of the object its watch cache holds, and the
//! watch cache trails etcd. An update whose resourceVersion precondition is newer than that
//! copy (the operator writing the status right after its own previous write of the same
//! Partner) is first made in full on the stale copy, fails its precondition, and is made again
//! on a copy read from etcd: twice the work, a third of the Partners' updates during an
//! onboarding (docs/performance.md). The operator's watch is served from that watch cache, so
//! once the watch has delivered a resourceVersion, the watch cache holds it too: a write that
//! first waits for that ([`WatchProgress::caught_up`]) is made once.
//!
//! resourceVersions are opaque to clients in general; kube-apiserver's (etcd's revisions) and
//! the sandbox's are integers that grow with every write of any object. Anything else is never
//! waited for. Waiting only spares the API server work: the precondition keeps every write
//! safe either way, so a watch that trails longer than the patience is not waited out.

use std::time::Duration;

use tokio::sync::watch;

/// The newest resourceVersion the Partner watch has delivered, and who waits for one.
pub struct WatchProgress {
    newest: watch::Sender<u64>,
}

impl Default for WatchProgress {
    fn default() -> Self {
        Self {
            newest: watch::channel(0).0,
        }
    }
}

impl WatchProgress {
    /// The watch delivered an object at `version`.
    pub fn delivered(&self, version: Option<&str>) {
        let Some(version) = ordered(version) else {
            return;
        };
        self.newest.send_if_modified(|newest| {
            let newer = version > *newest;
            if newer {
                *newest = version;
            }
            newer
        });
    }

    /// Waits until the watch has delivered `version` or a newer one, at most `patience`;
    /// whether it has.
    pub async fn caught_up(&self, version: Option<&str>, patience: Duration) -> bool {
        let Some(version) = ordered(version) else {
            return true;
        };
        let mut newest = self.newest.subscribe();
        tokio::time::timeout(patience, newest.wait_for(|newest| *newest >= version))
            .await
            .is_ok_and(|seen| seen.is_ok())
    }
}

/// `version` as a number that grows with every write, if it is one (kube-apiserver's and the
/// sandbox's are); `None` for a version clients may not order.
pub fn ordered(version: Option<&str>) -> Option<u64> {
    version?.parse().ok()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_version_delivered_is_caught_up_at_once_and_a_newer_one_when_it_comes() {
        let progress = Arc::new(WatchProgress::default());
        progress.delivered(Some("10"));
        progress.delivered(Some("7"));
        let patience = Duration::from_secs(1);
        assert!(progress.caught_up(Some("10"), patience).await);
        assert!(progress.caught_up(Some("3"), patience).await);
        let waiting = {
            let progress = progress.clone();
            tokio::spawn(async move { progress.caught_up(Some("12"), patience).await })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        progress.delivered(Some("11"));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!waiting.is_finished(), "11 is not 12");
        progress.delivered(Some("12"));
        assert!(waiting.await.unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn a_watch_that_trails_is_waited_for_no_longer_than_the_patience() {
        let progress = WatchProgress::default();
        progress.delivered(Some("10"));
        let started = tokio::time::Instant::now();
        assert!(
            !progress
                .caught_up(Some("11"), Duration::from_millis(300))
                .await
        );
        assert_eq!(started.elapsed(), Duration::from_millis(300));
    }

    #[tokio::test(start_paused = true)]
    async fn an_opaque_version_is_never_waited_for() {
        let progress = WatchProgress::default();
        progress.delivered(Some("opaque"));
        let started = tokio::time::Instant::now();
        assert!(
            progress
                .caught_up(Some("opaque"), Duration::from_secs(9))
                .await
        );
        assert!(progress.caught_up(None, Duration::from_secs(9)).await);
        assert_eq!(started.elapsed(), Duration::ZERO);
    }
}
