//! Exponential backoff per object: a failing object waits longer each time, and one object's
//! failures never slow another's retries.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Duration;

use kube::runtime::reflector::{Lookup, ObjectRef};

/// First retry after a failure; doubles on each further failure.
const BASE: Duration = Duration::from_millis(500);
/// The longest wait between retries.
const CAP: Duration = Duration::from_secs(300);

/// Consecutive failures per object.
pub struct Backoff<K: Lookup>
where
    K::DynamicType: Eq + Hash,
{
    failures: Mutex<HashMap<ObjectRef<K>, u32>>,
}

impl<K: Lookup> Default for Backoff<K>
where
    K::DynamicType: Eq + Hash,
{
    fn default() -> Self {
        Self {
            failures: Mutex::default(),
        }
    }
}

impl<K: Lookup> Backoff<K>
where
    K::DynamicType: Eq + Hash + Clone,
{
    /// The wait before retrying `object` after one more failure.
    pub fn failed(&self, object: &ObjectRef<K>) -> Duration {
        let mut failures = self.failures.lock().unwrap();
        let count = failures.entry(object.clone()).or_default();
        *count = count.saturating_add(1);
        wait_after(*count)
    }

    /// `object` reconciled: its next failure starts from the shortest wait again.
    pub fn succeeded(&self, object: &ObjectRef<K>) {
        self.failures.lock().unwrap().remove(object);
    }
}

/// The wait after `failures` consecutive failures: 0.5 s, 1 s, 2 s, ... up to 5 minutes.
fn wait_after(failures: u32) -> Duration {
    let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(16));
    BASE.saturating_mul(factor).min(CAP)
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
        assert_eq!(wait_after(12), CAP);
        assert_eq!(wait_after(u32::MAX), CAP);
    }

    #[test]
    fn each_object_backs_off_on_its_own_and_a_success_resets_it() {
        let backoff = Backoff::<Distributor>::default();
        let (a, b) = (ObjectRef::new("a"), ObjectRef::new("b"));
        assert_eq!(backoff.failed(&a), Duration::from_millis(500));
        assert_eq!(backoff.failed(&a), Duration::from_secs(1));
        assert_eq!(backoff.failed(&b), Duration::from_millis(500));
        backoff.succeeded(&a);
        assert_eq!(backoff.failed(&a), Duration::from_millis(500));
    }
}
