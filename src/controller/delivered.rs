//! Webhook events an endpoint has, whose delivery the Partner's status does not record yet.
//!
//! A delivery is recorded by the Partner's reconciler, not by the task that made it: the record
//! rides along with the next status write the Partner needs anyway (during onboarding, the one
//! that records the activation email a moment later), and is written on its own only once it
//! has waited [`RECORD_WITHIN`]. A write of its own, from the task's copy of the Partner, raced
//! the reconciler's writes and lost (a refused precondition, a read, a second write); folded,
//! the record costs nothing.
//!
//! Until it is written, a delivery lives only here: the plan does not see it (the endpoint's
//! next event waits for the record, which keeps each endpoint's view of a Partner in order),
//! and a delivery this ledger holds is not handed on again. A crash loses the ledger, and the
//! events in it are sent again with the same id: at least once, as for a crash before any
//! record.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;

use crate::api::{Partner, PartnerStatus};
use crate::lifecycle::{self, Outcome};

/// How long a delivery waits for a status write to ride along with before it is written on its
/// own.
pub const RECORD_WITHIN: Duration = Duration::from_secs(2);

/// Per Partner, the deliveries made and not yet recorded.
#[derive(Default)]
pub struct Delivered {
    entries: Mutex<HashMap<ObjectRef<Partner>, Vec<Delivery>>>,
}

/// One event an endpoint answered 2xx to.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Delivery {
    /// The Partner's uid: a Partner re-created under the same name has none of these.
    uid: String,
    id: String,
    endpoint: String,
    at: Instant,
}

/// What the ledger holds for one Partner, as one reconciliation sees it.
#[derive(Debug, Default)]
pub struct Unwritten {
    deliveries: Vec<Delivery>,
}

impl Unwritten {
    pub fn is_empty(&self) -> bool {
        self.deliveries.is_empty()
    }

    /// Whether a delivery has waited long enough to be written on its own.
    pub fn due(&self) -> bool {
        // A little early: the wake at [`RECORD_WITHIN`] must find it due.
        let due = RECORD_WITHIN.mul_f64(0.9);
        self.deliveries.iter().any(|d| d.at.elapsed() >= due)
    }

    /// Records the deliveries in `status`.
    pub fn record(&self, status: &mut PartnerStatus) {
        for delivery in &self.deliveries {
            let outcome = Outcome::WebhookDelivered {
                id: &delivery.id,
                endpoint: &delivery.endpoint,
            };
            lifecycle::record_outcome(status, &outcome);
        }
    }

    /// `partner` with the deliveries recorded.
    pub fn recorded_on(&self, partner: &Partner) -> Partner {
        let mut partner = partner.clone();
        self.record(partner.status.get_or_insert_default());
        partner
    }
}

impl Delivered {
    /// `endpoint` has event `id` of `partner`.
    pub fn add(&self, partner: &ObjectRef<Partner>, uid: &str, id: &str, endpoint: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let list = entries.entry(partner.clone()).or_default();
        list.retain(|d| d.uid == uid && !(d.id == id && d.endpoint == endpoint));
        list.push(Delivery {
            uid: uid.to_string(),
            id: id.to_string(),
            endpoint: endpoint.to_string(),
            at: Instant::now(),
        });
    }

    /// Whether `endpoint`'s delivery of event `id` of `partner` waits here for its record.
    pub fn holds(&self, partner: &Partner, id: &str, endpoint: &str) -> bool {
        self.of(partner)
            .deliveries
            .iter()
            .any(|d| d.id == id && d.endpoint == endpoint)
    }

    /// The deliveries of `partner` (this uid) not yet recorded.
    pub fn of(&self, partner: &Partner) -> Unwritten {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let uid = partner.uid().unwrap_or_default();
        let deliveries = entries
            .get(&ObjectRef::from_obj(partner))
            .map(|list| list.iter().filter(|d| d.uid == uid).cloned().collect())
            .unwrap_or_default();
        Unwritten { deliveries }
    }

    /// Forgets the deliveries `stored` (a Partner as the API server returned it) no longer has
    /// pending: recorded, or their event gone from the status. Whether any was forgotten.
    pub fn settle(&self, stored: &Partner) -> bool {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let reference = ObjectRef::from_obj(stored);
        let Some(list) = entries.get_mut(&reference) else {
            return false;
        };
        let uid = stored.uid().unwrap_or_default();
        let before = list.len();
        list.retain(|d| d.uid == uid && pending(stored, &d.id, &d.endpoint));
        let settled = list.len() != before;
        if list.is_empty() {
            entries.remove(&reference);
        }
        settled
    }

    /// Forgets `partner` (it is gone).
    pub fn forget(&self, partner: &ObjectRef<Partner>) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.remove(partner);
    }
}

/// Whether `partner`'s status has event `id` pending for `endpoint`.
pub fn pending(partner: &Partner, id: &str, endpoint: &str) -> bool {
    partner.status.as_ref().is_some_and(|s| {
        s.webhooks
            .iter()
            .filter(|r| r.id == id)
            .any(|r| r.pending.iter().any(|p| p.endpoint == endpoint))
    })
}

#[cfg(test)]
#[path = "delivered_tests.rs"]
mod tests;
