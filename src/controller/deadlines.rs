//! Each Partner's next deadline as its last reconciliation planned it, so the operator can tell
//! whether deadline work is due: a Partner whose deadline has passed and that has not been
//! reconciled since is waiting in the controller's queue for its conversion, notice or expiry.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use kube::runtime::reflector::ObjectRef;

use crate::api::Partner;

/// How far back a passed deadline still counts as due. A Partner whose reconciliation keeps
/// failing stays behind its deadline; after this long it no longer holds emails back (it is
/// retried with backoff all the same). Measured on the operator's clock: in the sandbox at
/// `--speed 86400` a minute is less than a millisecond, so there the limit hardly applies.
const DUE_WINDOW: chrono::Duration = chrono::Duration::minutes(1);

#[derive(Default)]
pub struct Deadlines {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    by_partner: HashMap<ObjectRef<Partner>, DateTime<Utc>>,
    /// How many Partners have each deadline.
    by_time: BTreeMap<DateTime<Utc>, usize>,
}

impl Deadlines {
    /// Records (or, with `None`, forgets) `partner`'s next deadline.
    pub fn set(&self, partner: &ObjectRef<Partner>, at: Option<DateTime<Utc>>) {
        let mut inner = self.inner.lock().unwrap();
        let previous = match at {
            Some(at) => inner.by_partner.insert(partner.clone(), at),
            None => inner.by_partner.remove(partner),
        };
        if previous == at {
            return;
        }
        if let Some(previous) = previous
            && let Some(count) = inner.by_time.get_mut(&previous)
        {
            *count -= 1;
            if *count == 0 {
                inner.by_time.remove(&previous);
            }
        }
        if let Some(at) = at {
            *inner.by_time.entry(at).or_default() += 1;
        }
    }

    /// Whether some Partner's deadline passed (within the last minute) and it has not been
    /// reconciled since.
    pub fn any_due(&self, now: DateTime<Utc>) -> bool {
        let inner = self.inner.lock().unwrap();
        inner.by_time.range(now - DUE_WINDOW..=now).next().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partner(name: &str) -> ObjectRef<Partner> {
        ObjectRef::new(name).within("partners")
    }

    fn at(second: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + second, 0).unwrap()
    }

    #[test]
    fn a_deadline_is_due_from_its_instant_until_the_partner_moves_on() {
        let deadlines = Deadlines::default();
        deadlines.set(&partner("a"), Some(at(10)));
        deadlines.set(&partner("b"), Some(at(20)));
        assert!(!deadlines.any_due(at(9)));
        assert!(deadlines.any_due(at(10)));
        // a was reconciled: its next deadline is later.
        deadlines.set(&partner("a"), Some(at(100)));
        assert!(!deadlines.any_due(at(15)));
        assert!(deadlines.any_due(at(20)));
        // b has no deadline left.
        deadlines.set(&partner("b"), None);
        assert!(!deadlines.any_due(at(50)));
        assert!(deadlines.any_due(at(100)));
    }

    #[test]
    fn a_deadline_passed_more_than_a_minute_ago_is_no_longer_due() {
        let deadlines = Deadlines::default();
        deadlines.set(&partner("stuck"), Some(at(0)));
        assert!(deadlines.any_due(at(60)));
        assert!(!deadlines.any_due(at(61)));
    }
}
