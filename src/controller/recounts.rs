//! Asking the Distributor controller to recount, at a pace its debounce can follow.
//!
//! The controller waits [`super::DISTRIBUTOR_DEBOUNCE`] after a request before it reconciles,
//! and a new request within that wait starts it again: a steady stream of requests (every
//! Partner onboarded, every webhook delivered) would postpone the recount for as long as the
//! stream lasts (a new Distributor went without any status through a whole trial of webhook
//! deliveries). So each Distributor is asked at most once per [`RECOUNT_EVERY`], longer than the
//! debounce; a request that comes sooner is not dropped but sent when the interval is over,
//! once for all that came meanwhile, so the last change is always counted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::runtime::reflector::ObjectRef;
use tokio::sync::mpsc::UnboundedSender;
use tokio::time::Instant;

use crate::api::Distributor;

/// At most one recount request per Distributor this often. Each recount that finds the counts
/// moved writes the Distributor's status: while Partners onboard, that is one write per
/// Distributor per interval (an interval of 500 ms cost the API server about one write for
/// every two Partners onboarded, with ten Distributors).
pub const RECOUNT_EVERY: Duration = Duration::from_secs(2);

/// The recount requests sent, and those held for the end of their interval; and when each
/// Distributor's status was last written.
#[derive(Clone)]
pub struct Recounts {
    triggers: UnboundedSender<ObjectRef<Distributor>>,
    /// Per Distributor: when a request was last sent, and whether one is held.
    sent: Arc<Mutex<HashMap<String, (Instant, bool)>>>,
    /// Per Distributor: when its status was last written.
    written: Arc<Mutex<HashMap<String, Instant>>>,
}

impl Recounts {
    pub fn new(triggers: UnboundedSender<ObjectRef<Distributor>>) -> Self {
        Self {
            triggers,
            sent: Arc::default(),
            written: Arc::default(),
        }
    }

    /// How long a recount that would write `distributor`'s status waits first, if its last
    /// write was less than [`RECOUNT_EVERY`] ago. Requests are paced, but each status write is
    /// also a change of the Distributor that wakes its controller, which counts again (while
    /// Partners onboard, the counts have always moved): unpaced, that loop wrote each
    /// Distributor's status about once a second.
    pub fn write_wait(&self, distributor: &str) -> Option<Duration> {
        let written = self.written.lock().unwrap();
        let next = *written.get(distributor)? + RECOUNT_EVERY;
        next.checked_duration_since(Instant::now())
            .filter(|wait| !wait.is_zero())
    }

    /// `distributor`'s status was written now.
    pub fn wrote(&self, distributor: &str) {
        self.written
            .lock()
            .unwrap()
            .insert(distributor.to_string(), Instant::now());
    }

    /// Asks for a recount of `distributor`: now, or at the end of its interval.
    pub fn request(&self, distributor: &str) {
        let now = Instant::now();
        let mut sent = self.sent.lock().unwrap();
        match sent.get_mut(distributor) {
            Some((_, true)) => {}
            Some((last, held)) if now < *last + RECOUNT_EVERY => {
                *held = true;
                let at = *last + RECOUNT_EVERY;
                let this = self.clone();
                let name = distributor.to_string();
                tokio::spawn(async move {
                    tokio::time::sleep_until(at).await;
                    this.sent
                        .lock()
                        .unwrap()
                        .insert(name.clone(), (Instant::now(), false));
                    let _ = this.triggers.send(ObjectRef::new(&name));
                });
            }
            _ => {
                sent.insert(distributor.to_string(), (now, false));
                let _ = self.triggers.send(ObjectRef::new(distributor));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_burst_is_one_request_now_and_one_at_the_end_of_the_interval() {
        let (triggers, mut received) = tokio::sync::mpsc::unbounded_channel();
        let recounts = Recounts::new(triggers);
        for _ in 0..100 {
            recounts.request("northwind");
        }
        recounts.request("tailspin");
        assert_eq!(received.try_recv().unwrap().name, "northwind");
        assert_eq!(received.try_recv().unwrap().name, "tailspin");
        assert!(
            received.try_recv().is_err(),
            "the rest of the burst is held"
        );

        // The held request goes at the end of the interval, once.
        let held = tokio::time::timeout(RECOUNT_EVERY * 2, received.recv()).await;
        assert_eq!(held.unwrap().unwrap().name, "northwind");
        tokio::time::sleep(RECOUNT_EVERY * 2).await;
        assert!(received.try_recv().is_err());

        // A request after a quiet interval goes at once.
        recounts.request("northwind");
        assert_eq!(received.try_recv().unwrap().name, "northwind");
    }

    #[tokio::test(start_paused = true)]
    async fn a_status_is_written_at_most_once_an_interval() {
        let (triggers, _received) = tokio::sync::mpsc::unbounded_channel();
        let recounts = Recounts::new(triggers);
        assert_eq!(recounts.write_wait("northwind"), None, "never written");
        recounts.wrote("northwind");
        assert_eq!(recounts.write_wait("northwind"), Some(RECOUNT_EVERY));
        assert_eq!(recounts.write_wait("tailspin"), None, "per Distributor");
        tokio::time::sleep(RECOUNT_EVERY / 4).await;
        assert_eq!(
            recounts.write_wait("northwind"),
            Some(RECOUNT_EVERY * 3 / 4)
        );
        tokio::time::sleep(RECOUNT_EVERY).await;
        assert_eq!(recounts.write_wait("northwind"), None);
    }
}
