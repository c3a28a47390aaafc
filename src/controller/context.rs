//! What every reconciliation shares: the client, the caches, the mailer, the clock.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::Client;
use kube::runtime::reflector::{ObjectRef, Store};
use tokio::sync::mpsc::UnboundedSender;
use tracing::warn;

use super::deadlines::Deadlines;
use super::mail_slots::MailSlots;
use super::{OperatorConfig, PartnerIndex};
use crate::api::{Distributor, Partner};
use crate::clock::Clock;
use crate::mail::Mailer;
use crate::metrics::{Metrics, Readiness};

pub struct Context {
    pub client: Client,
    pub clock: Clock,
    pub mailer: Arc<Mailer>,
    pub activation_base_url: Option<String>,
    pub activation_key: crate::tenant::ActivationKey,
    pub metrics: Arc<Metrics>,
    pub readiness: Readiness,
    pub partners: Store<Partner>,
    pub distributors: Store<Distributor>,
    pub namespaces: Store<Namespace>,
    /// The tenants' `entitlements` ConfigMaps.
    pub entitlements: Store<ConfigMap>,
    pub index: PartnerIndex,
    /// `reportingInstance` of our Events: the pod's name when there is one.
    instance: String,
    listed: Arc<Listed>,
    /// Tells the Distributor controller that one of its Partners changed in a way it counts.
    distributor_triggers: UnboundedSender<ObjectRef<Distributor>>,
    /// Consecutive failures per Partner, for exponential backoff.
    failures: Mutex<HashMap<ObjectRef<Partner>, u32>>,
    /// The reconciliations that may send email at once (see [`MailSlots`]).
    pub mail_slots: Arc<MailSlots>,
    /// Each Partner's next deadline: whether deadline work is due.
    pub deadlines: Deadlines,
}

/// First retry after a failure; doubles on each further failure.
const BACKOFF_BASE: Duration = Duration::from_millis(500);
/// The longest wait between retries.
const BACKOFF_CAP: Duration = Duration::from_secs(300);

/// The caches the watches fill, handed to [`Context::new`] together.
pub(super) struct Caches {
    pub partners: Store<Partner>,
    pub distributors: Store<Distributor>,
    pub namespaces: Store<Namespace>,
    /// The tenants' `entitlements` ConfigMaps.
    pub entitlements: Store<ConfigMap>,
    pub index: PartnerIndex,
    pub listed: Arc<Listed>,
}

impl Context {
    pub(super) fn new(
        client: Client,
        config: &OperatorConfig,
        caches: Caches,
        distributor_triggers: UnboundedSender<ObjectRef<Distributor>>,
        mail_slots: Arc<MailSlots>,
    ) -> Self {
        let Caches {
            partners,
            distributors,
            namespaces,
            entitlements,
            index,
            listed,
        } = caches;

        Self {
            instance: std::env::var("POD_NAME").unwrap_or_else(|_| "partner-operator".into()),
            client,
            clock: config.clock.clone(),
            mailer: config.mailer.clone(),
            activation_base_url: config.activation_base_url.clone(),
            activation_key: config.activation_key.clone(),
            metrics: config.metrics.clone(),
            readiness: config.readiness.clone(),
            partners,
            distributors,
            namespaces,
            entitlements,
            index,
            listed,
            distributor_triggers,
            failures: Mutex::default(),
            mail_slots,
            deadlines: Deadlines::default(),
        }
    }

    /// Whether every cache has been filled once. Until then a reconciler would decide on a
    /// partial picture (a Distributor not seen yet looks deleted), so it waits instead.
    pub fn synced(&self) -> bool {
        self.listed.all()
    }

    pub fn recount(&self, distributor: &str) {
        let _ = self.distributor_triggers.send(ObjectRef::new(distributor));
    }

    /// Records a Kubernetes Event on `partner`. Events are best effort: a failure is logged,
    /// never retried, and never fails the reconciliation.
    pub async fn publish(&self, partner: &Partner, warning: bool, reason: &str, note: String) {
        let now = self.clock.now();
        let published = super::events::publish(
            &self.client,
            &self.instance,
            partner,
            warning,
            reason,
            &note,
            now,
        )
        .await;
        if let Err(err) = published {
            warn!(reason, error = %err, "could not record an Event");
        }
    }

    /// The wait before retrying `partner` after one more failure.
    pub fn backoff(&self, partner: &ObjectRef<Partner>) -> Duration {
        let mut failures = self.failures.lock().unwrap();
        let count = failures.entry(partner.clone()).or_default();
        *count = count.saturating_add(1);
        backoff_after(*count)
    }

    pub fn succeeded(&self, partner: &ObjectRef<Partner>) {
        self.failures.lock().unwrap().remove(partner);
    }
}

/// The wait after `failures` consecutive failures: 0.5 s, 1 s, 2 s, ... up to 5 minutes.
fn backoff_after(failures: u32) -> Duration {
    let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(16));
    BACKOFF_BASE.saturating_mul(factor).min(BACKOFF_CAP)
}

/// Which watches have delivered their first complete list.
///
/// Each watch stream sets its flag when it sees `InitDone`, and `/readyz` turns ready once all
/// four are set. (kube's `Store::wait_until_ready` is not used for this: it wakes a single
/// waiter, and the controller runtime already waits on the Partner store, so a second waiter
/// could leave the controller asleep.)
#[derive(Default)]
pub struct Listed {
    partners: AtomicBool,
    distributors: AtomicBool,
    namespaces: AtomicBool,
    entitlements: AtomicBool,
    readiness: Readiness,
}

/// One of the watches whose first list [`Listed`] tracks.
#[derive(Clone, Copy, Debug)]
pub enum Watched {
    Partners,
    Distributors,
    Namespaces,
    Entitlements,
}

impl Listed {
    pub fn new(readiness: Readiness) -> Self {
        Self {
            readiness,
            ..Self::default()
        }
    }

    pub fn mark(&self, watched: Watched) {
        let flag = match watched {
            Watched::Partners => &self.partners,
            Watched::Distributors => &self.distributors,
            Watched::Namespaces => &self.namespaces,
            Watched::Entitlements => &self.entitlements,
        };
        flag.store(true, Ordering::Release);
        if self.all() {
            self.readiness.set_ready(true);
        }
    }

    pub fn all(&self) -> bool {
        self.partners.load(Ordering::Acquire)
            && self.distributors.load(Ordering::Acquire)
            && self.namespaces.load(Ordering::Acquire)
            && self.entitlements.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        assert_eq!(backoff_after(1), Duration::from_millis(500));
        assert_eq!(backoff_after(2), Duration::from_secs(1));
        assert_eq!(backoff_after(5), Duration::from_secs(8));
        assert_eq!(backoff_after(12), BACKOFF_CAP);
        assert_eq!(backoff_after(u32::MAX), BACKOFF_CAP);
    }
}
