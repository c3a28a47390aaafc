//! Exponential backoff per object: a failing object waits longer each time, and one object's
//! failures never slow another's retries.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Duration;

use kube::runtime::reflector::{Lookup, ObjectRef};

/// First retry after a failure; doubles on each further failure.
const BASE: Duration = Duration::from_millis(500);

/// Consecutive failures per object, and the longest wait between retries.
pub struct Backoff<K: Lookup>
where
    K::DynamicType: Eq + Hash,
{
    failures: Mutex<HashMap<ObjectRef<K>, u32>>,
    cap: Duration,
}

impl<K: Lookup> Backoff<K>
where
    K::DynamicType: Eq + Hash + Clone,
{
    /// Waits that double from 0.5 s up to `cap`.
    pub fn up_to(cap: Duration) -> Self {
        Self {
            failures: Mutex::default(),
            cap,
        }
    }

    /// The wait before retrying `object` after one more failure.
    pub fn failed(&self, object: &ObjectRef<K>) -> Duration {
        let mut failures = self.failures.lock().unwrap();
        let count = failures.entry(object.clone()).or_default();
        *count = count.saturating_add(1);
        wait_after(*count).min(self.cap)
    }

    /// `object` reconciled: its next failure starts from the shortest wait again.
    pub fn succeeded(&self, object: &ObjectRef<K>) {
        self.failures.lock().unwrap().remove(object);
    }
}

/// The wait after `failures` consecutive failures: 0.5 s, 1 s, 2 s, ...
fn wait_after(failures: u32) -> Duration {
    let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(16));
    BASE.saturating_mul(factor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Distributor;

    #[test]
    fn waits_double_up_to_the_cap() {
        assert_eq!(wait_after(1), Duration::from_millis(500));
        assert_eq!(wait_after(2), Duration::from_secs(1));
        assert_eq!(wait_after(5), Duration::from_secs(8));
        let backoff = Backoff::<Distributor>::up_to(Duration::from_secs(300));
        let a = ObjectRef::new("a");
        let waits: Vec<_> = (0..12).map(|_| backoff.failed(&a)).collect();
        assert_eq!(waits[10], Duration::from_secs(300));
        assert_eq!(waits[11], Duration::from_secs(300));
        for _ in 0..100 {
            backoff.failed(&a);
        }
        assert_eq!(backoff.failed(&a), Duration::from_secs(300));
    }

    #[test]
    fn each_object_backs_off_on_its_own_and_a_success_resets_it() {
        let backoff = Backoff::<Distributor>::up_to(Duration::from_secs(30));
        let (a, b) = (ObjectRef::new("a"), ObjectRef::new("b"));
        assert_eq!(backoff.failed(&a), Duration::from_millis(500));
        assert_eq!(backoff.failed(&a), Duration::from_secs(1));
        assert_eq!(backoff.failed(&b), Duration::from_millis(500));
        backoff.succeeded(&a);
        assert_eq!(backoff.failed(&a), Duration::from_millis(500));
    }
}
