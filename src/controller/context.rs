//! What every reconciliation shares: the client and the clock, the settings links and proofs
//! are made with, the caches, the pacing of what is scarce, and the outputs.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Client;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store};
use tokio::sync::mpsc::UnboundedSender;
use tracing::warn;

use super::mail_slots::MailSlots;
use super::own_writes::OwnWrites;
use super::pacing::Pacing;
use super::recounts::Recounts;
use super::unreadable::UnreadableNames;
use super::webhook_delivery::WebhookDeliveries;
use super::{OperatorConfig, PartnerIndex};
use crate::api::{Distributor, Partner};
use crate::clock::Clock;
use crate::lifecycle::PartnerEvent;
use crate::mail::Mailer;
use crate::metrics::{Metrics, Readiness};
use crate::watch_progress::WatchProgress;

pub struct Context {
    pub client: Client,
    pub clock: Clock,
    /// What activation links and tenants' proofs are made with.
    pub settings: Settings,
    /// What the watches fill.
    pub caches: Caches,
    /// When what is scarce may be used (see [`Pacing`]).
    pub pacing: Pacing,
    /// Where effects and reports go besides the API server's objects.
    pub outputs: Outputs,
}

/// What activation links and tenants' proofs are made with.
pub struct Settings {
    /// The operator's `--activation-base-url`, for a Distributor that sets none.
    pub activation_base_url: Option<String>,
    pub activation_key: crate::tenant::ActivationKey,
    /// What tenants' ownership proofs are made and checked with.
    pub ownership: crate::tenant::Ownership,
}

/// The caches the watches fill.
pub struct Caches {
    pub partners: Store<Partner>,
    pub distributors: Store<Distributor>,
    /// Distributors whose spec the operator cannot read: not in `distributors`, yet not gone.
    pub unreadable_distributors: UnreadableNames,
    pub namespaces: Store<Namespace>,
    /// The tenants' `entitlements` ConfigMaps (a digest of each, see `entitlements`).
    pub entitlements: Store<ConfigMap>,
    /// The `entitlements` read by name, while the cache shows the version read.
    pub entitlements_read: super::entitlements::Reads,
    pub index: PartnerIndex,
    pub listed: Arc<Listed>,
    /// What the operator last wrote of each Partner's status: how far the Partner cache lags.
    pub own_writes: Arc<OwnWrites>,
    /// How far the Partner watch has come: a status write waits for it to deliver the copy the
    /// write was computed from.
    pub watch_progress: Arc<WatchProgress>,
}

/// Where effects and reports go besides the API server's objects: mail, webhooks, metrics,
/// the Distributor controller's recounts, the billing statements, Events' reporting instance.
pub struct Outputs {
    pub mailer: Arc<Mailer>,
    pub metrics: Arc<Metrics>,
    /// The webhook deliveries in flight (see [`WebhookDeliveries`]).
    pub webhooks: WebhookDeliveries,
    /// Tells the Distributor controller that one of its Partners changed in a way it counts,
    /// and paces its status writes.
    pub recounts: Recounts,
    /// Keeps the monthly billing statements; a deleted Partner is recorded here.
    pub statements: crate::statements::StatementWriter,
    /// `reportingInstance` of our Events: the pod's name when there is one.
    instance: String,
}

impl Context {
    pub(super) fn new(
        client: Client,
        config: &OperatorConfig,
        caches: Caches,
        distributor_triggers: UnboundedSender<ObjectRef<Distributor>>,
        mail_slots: Arc<MailSlots>,
        webhook_wakes: UnboundedSender<ObjectRef<Partner>>,
        statements: crate::statements::StatementWriter,
    ) -> Self {
        Self {
            client: client.clone(),
            clock: config.clock.clone(),
            settings: Settings {
                activation_base_url: config.activation_base_url.clone(),
                activation_key: config.activation_key.clone(),
                ownership: config.ownership.clone(),
            },
            caches,
            pacing: Pacing::new(mail_slots, config.email_per_recipient_per_hour),
            outputs: Outputs {
                mailer: config.mailer.clone(),
                metrics: config.metrics.clone(),
                webhooks: WebhookDeliveries::new(
                    client,
                    config.webhook_secrets_namespace.clone(),
                    config.webhook_egress.clone(),
                    webhook_wakes,
                ),
                recounts: Recounts::new(distributor_triggers),
                statements,
                instance: std::env::var("POD_NAME").unwrap_or_else(|_| "partner-operator".into()),
            },
        }
    }

    /// Whether every cache has been filled once. Until then a reconciler would decide on a
    /// partial picture (a Distributor not seen yet looks deleted), so it waits instead.
    pub fn synced(&self) -> bool {
        self.caches.listed.all()
    }

    /// Whether `partner`'s namespace is one `distributor` accepts, as the Namespace cache shows
    /// it (`None`: no Distributor, nothing is accepted).
    pub fn namespace_allows(&self, partner: &Partner, distributor: Option<&Distributor>) -> bool {
        let Some(distributor) = distributor else {
            return false;
        };
        let namespace = partner.metadata.namespace.clone().unwrap_or_default();
        self.caches
            .namespaces
            .get(&ObjectRef::new(&namespace))
            .is_some_and(|ns| crate::binding::namespace_allowed(distributor, &ns))
    }

    /// Asks the Distributor controller to recount `distributor` (see [`Recounts`]).
    pub fn recount(&self, distributor: &str) {
        self.outputs.recounts.request(distributor);
    }

    /// Records a Kubernetes Event on a Distributor, best effort as [`Context::publish`].
    pub async fn publish_on(&self, distributor: &Distributor, event: &PartnerEvent) {
        self.record(distributor, event, self.clock.now()).await;
    }

    /// Creates the Event (or counts it seen again); a failure is logged.
    async fn record<K: kube::Resource<DynamicType = ()>>(
        &self,
        regarding: &K,
        event: &PartnerEvent,
        at: chrono::DateTime<chrono::Utc>,
    ) {
        let published = super::events::publish(
            &self.client,
            &self.outputs.instance,
            regarding,
            event.reason,
            &event.message,
            at,
        )
        .await;
        if let Err(err) = published {
            warn!(reason = %event.reason, error = %err, "could not record an Event");
        }
    }

    /// Records a Kubernetes Event on `partner`, if its reason is one that is recorded
    /// ([`crate::lifecycle::EventReason::is_recorded`]), dated now. Events are best effort: a
    /// failure is logged, never retried, and never fails the reconciliation. So nothing waits
    /// for one: it is created by a task of its own, which waits while a deadline is due, as a
    /// webhook delivery does. A thousand trials ending at once are converted before their
    /// Events take a place among the requests in flight.
    pub fn publish(self: &Arc<Self>, partner: &Partner, event: &PartnerEvent) {
        if event.reason.holds_email() {
            let labels = crate::metrics::ReasonLabels {
                reason: event.reason.as_str(),
            };
            self.outputs
                .metrics
                .emails_held
                .get_or_create(&labels)
                .inc();
        }
        if !event.reason.is_recorded() {
            return;
        }
        let at = self.clock.now();
        // What an Event names of its Partner; not the Partner's spec and status.
        let regarding = PartialObjectMeta::<Partner> {
            types: None,
            metadata: ObjectMeta {
                name: partner.metadata.name.clone(),
                namespace: partner.metadata.namespace.clone(),
                uid: partner.metadata.uid.clone(),
                resource_version: partner.metadata.resource_version.clone(),
                ..ObjectMeta::default()
            },
            _phantom: std::marker::PhantomData,
        };
        let (ctx, event) = (self.clone(), event.clone());
        tokio::spawn(async move {
            ctx.pacing.deadlines_first(&ctx.clock).await;
            ctx.record(&regarding, &event, at).await;
        });
    }
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
