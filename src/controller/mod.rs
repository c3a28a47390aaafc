//! The reconcilers and their wiring: a Partner controller that drives each Partner through
//! [`crate::lifecycle`], and a Distributor controller that keeps each Distributor's counts.
//!
//! What feeds them:
//! - Partners, through one watch whose events also maintain a [`PartnerIndex`] (by Distributor
//!   and by namespace), so a change elsewhere finds its Partners without a list;
//! - Distributors, through a watch whose *spec* changes (and deletions) reach the Partners that
//!   name them; status-only updates are filtered out, or every count update would wake every
//!   Partner of the Distributor;
//! - Namespaces, through a watch whose store answers "may this namespace bind?" and "does the
//!   tenant exist?"; a tenant namespace (labelled with its Partner) maps to its Partner, so a
//!   deleted tenant is provisioned again; any other namespace maps to the Partners inside it;
//! - the tenants' `entitlements` ConfigMaps, through a watch by name and ownership label: the
//!   reconciler compares them with the status, and a change or deletion wakes their Partner;
//! - the clock: when a test or the sandbox moves it, every Partner is looked at again;
//! - the Partner reconciler, which tells the Distributor controller when a count may have moved;
//! - the webhook deliveries, each of which wakes its Partner when it is over.
//!
//! No periodic resync: a Partner is requeued at its next deadline (plus a little jitter), and
//! errors back off exponentially up to a cap, per Partner.

mod backoff;
mod context;
mod deadlines;
mod distributor;
mod events;
mod executor;
mod index;
mod mail_rate;
mod mail_slots;
mod pacing;
mod partner;
mod recipient_rate;
mod recounts;
mod unreadable;
mod webhook_delivery;
mod world;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::ListParams;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher::{self, Event};
use kube::runtime::{Controller, WatchStreamExt, reflector};
use kube::{Api, Client, ResourceExt};
use tokio_stream::wrappers::{UnboundedReceiverStream, WatchStream};
use tracing::{info, warn};

pub use context::Context;
use context::{Caches, Listed, Watched};
pub use index::PartnerIndex;
pub use recipient_rate::DEFAULT_PER_HOUR as DEFAULT_EMAILS_PER_RECIPIENT_PER_HOUR;
use unreadable::{Regarding, UnreadableNames};

use crate::api::{Decoded, Distributor, Partner};
use crate::clock::Clock;
use crate::lifecycle::{EventReason, PartnerEvent};
use crate::mail::Mailer;
use crate::metrics::{Metrics, Readiness};
use crate::shutdown::Shutdown;

/// The finalizer the operator puts on every Partner, so it can deprovision the tenant.
pub const FINALIZER: &str = "partner-operator.io/tenant";

/// How long the Distributor controller waits for more requests before it recounts (each new
/// request restarts the wait: [`recounts`] paces them).
const DISTRIBUTOR_DEBOUNCE: Duration = Duration::from_millis(200);

/// Distributor changes the Distributor controller may lag behind before the watch waits for it.
const DISTRIBUTOR_BUFFER: usize = 256;

/// Everything the operator needs besides a Kubernetes client.
pub struct OperatorConfig {
    pub mailer: Arc<Mailer>,
    /// `--activation-base-url`: used for Distributors that set no `spec.activation.baseUrl`.
    pub activation_base_url: Option<String>,
    /// What activation tokens are made with.
    pub activation_key: crate::tenant::ActivationKey,
    /// What tenants' ownership proofs are made and checked with (`--ownership-key-file`,
    /// `--prove-existing-tenants`).
    pub ownership: crate::tenant::Ownership,
    /// `--namespace`: watch Partners in this namespace only.
    pub namespace: Option<String>,
    pub clock: Clock,
    pub metrics: Arc<Metrics>,
    pub readiness: Readiness,
    /// Reconciliations run at once, per controller.
    pub concurrency: u16,
    /// `--webhook-secrets-namespace`: where the webhook signing keys' Secrets are read.
    pub webhook_secrets_namespace: String,
    /// Where webhook deliveries may connect (`--webhook-allow-private-networks`).
    pub webhook_egress: crate::webhooks::EgressPolicy,
    /// `--email-per-recipient-per-hour`: activation emails to one address in any hour (0: no
    /// limit).
    pub email_per_recipient_per_hour: u32,
}

/// Why the operator could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "the {0} CRD is not installed in the cluster (apply crds/ or the Helm chart's CRDs first)"
    )]
    MissingCrd(&'static str),
    #[error("cannot reach the Kubernetes API server: {0}")]
    Unreachable(String),
}

/// Checks that the API server answers and serves both CRDs.
pub async fn preflight(client: &Client) -> Result<(), StartError> {
    let probe = ListParams::default().limit(1);
    let check = |result: kube::Result<()>, kind: &'static str| match result {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Err(StartError::MissingCrd(kind)),
        Err(err) => Err(StartError::Unreachable(err.to_string())),
    };
    check(
        Api::<Decoded<Distributor>>::all(client.clone())
            .list(&probe)
            .await
            .map(drop),
        "distributors.partner-operator.io",
    )?;
    check(
        Api::<Decoded<Partner>>::all(client.clone())
            .list(&probe)
            .await
            .map(drop),
        "partners.partner-operator.io",
    )
}

/// Runs both controllers until `shutdown`.
pub async fn run(client: Client, config: OperatorConfig, shutdown: Shutdown) {
    let partners_api: Api<Decoded<Partner>> = match &config.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let distributors_api: Api<Decoded<Distributor>> = Api::all(client.clone());
    let namespaces_api: Api<Namespace> = Api::all(client.clone());
    let index = PartnerIndex::default();
    let listed = Arc::new(Listed::new(config.readiness.clone()));

    // Partners: one watch feeds the cache (the reconciler reads it), the index (Distributor and
    // namespace changes find their Partners) and the controller. The cache is written before
    // the index, so every Partner the index names is in the cache.
    let (partners, partners_writer) = reflector::store();
    let indexing = index.clone();
    let partners_listed = listed.clone();
    // Each Partner decodes on its own: one the operator cannot read is reported and left out
    // (`unreadable`), never failing the list for all the others.
    let (unreadable_reports, mut unreadable_rx) = tokio::sync::mpsc::unbounded_channel();
    let partner_events = reflector(
        partners_writer,
        unreadable::readable(
            kube::runtime::watcher(partners_api, watch_config()),
            config.metrics.unreadable_partners.clone(),
            UnreadableNames::default(),
            unreadable_reports.clone(),
        )
        .modify(trim_for_cache),
    )
    .default_backoff()
    .inspect_ok(move |event| match event {
        Event::Apply(p) | Event::InitApply(p) => indexing.insert(p),
        Event::Delete(p) => indexing.remove(p),
        Event::InitDone => partners_listed.mark(Watched::Partners),
        Event::Init => {}
    })
    .touched_objects();
    let partner_controller = Controller::for_stream(partner_events, partners.clone());

    // Distributors: one watch feeds a store both reconcilers read, the Distributor controller
    // (every change, through the store's subscription) and the Partners of a Distributor whose
    // spec changed or that went away.
    let (distributors, distributors_writer) = reflector::store_shared(DISTRIBUTOR_BUFFER);
    let distributor_updates = distributors_writer
        .subscribe()
        .expect("a shared store has subscribers");
    let generations = Mutex::new(HashMap::<String, Option<i64>>::new());
    let distributors_listed = listed.clone();
    // Each Distributor decodes on its own too: one with an unreadable spec is held out (its
    // Partners held as they are), one with an unreadable status is read without it.
    let unreadable_distributors = UnreadableNames::default();
    let distributor_changes = reflector(
        distributors_writer,
        unreadable::readable(
            kube::runtime::watcher(distributors_api.clone(), watch_config()),
            config.metrics.unreadable_distributors.clone(),
            unreadable_distributors.clone(),
            unreadable_reports,
        )
        .modify(trim_for_cache),
    )
    .default_backoff()
    .try_filter_map(move |event| {
        let mut seen = generations.lock().unwrap();
        let changed = match event {
            Event::Apply(d) | Event::InitApply(d) => {
                let generation = d.metadata.generation;
                (seen.insert(d.name_any(), generation) != Some(generation)).then_some(d)
            }
            Event::Delete(d) => {
                seen.remove(&d.name_any());
                Some(d)
            }
            Event::InitDone => {
                distributors_listed.mark(Watched::Distributors);
                None
            }
            Event::Init => None,
        };
        futures::future::ready(Ok(changed))
    });

    // Namespaces: a store, and changes as triggers.
    let (namespaces, namespaces_writer) = reflector::store();
    let namespaces_listed = listed.clone();
    let namespace_events = reflector(
        namespaces_writer,
        kube::runtime::watcher(namespaces_api, watch_config()).modify(|ns: &mut Namespace| {
            // Of the annotations, only a tenant's ownership proof is read.
            let proof = crate::tenant::presented_proof(ns).map(str::to_string);
            trim_for_cache(ns);
            ns.metadata.annotations = proof.map(|proof| {
                [(crate::tenant::OWNERSHIP_PROOF_ANNOTATION.to_string(), proof)].into()
            });
        }),
    )
    .default_backoff()
    .inspect_ok(move |event| {
        if matches!(event, Event::InitDone) {
            namespaces_listed.mark(Watched::Namespaces);
        }
    })
    .touched_objects();

    // The tenants' `entitlements` ConfigMaps (by name, and only those carrying a tenant's
    // ownership label): compared with what each Partner's status says, so a tenant write that
    // was lost is made again; a change or deletion wakes the tenant's Partner.
    let (entitlements, entitlements_writer) = reflector::store();
    let entitlements_listed = listed.clone();
    let entitlements_api: Api<ConfigMap> = Api::all(client.clone());
    let entitlement_events = reflector(
        entitlements_writer,
        kube::runtime::watcher(
            entitlements_api,
            watch_config()
                .fields(&format!("metadata.name={}", crate::tenant::ENTITLEMENTS))
                .labels(crate::tenant::OWNER_UID_LABEL),
        )
        .modify(|cm: &mut ConfigMap| {
            // Only `data` is compared: ten thousand tenants' labels would be held for nothing.
            trim_for_cache(cm);
            cm.metadata.labels = None;
        }),
    )
    .default_backoff()
    .inspect_ok(move |event| {
        if matches!(event, Event::InitDone) {
            entitlements_listed.mark(Watched::Entitlements);
        }
    })
    .touched_objects();

    let (distributor_triggers, distributor_trigger_rx) = tokio::sync::mpsc::unbounded_channel();
    let (mail_wakes, mail_wake_rx) = tokio::sync::mpsc::unbounded_channel();
    let (webhook_wakes, webhook_wake_rx) = tokio::sync::mpsc::unbounded_channel();
    // The SMTP connections themselves are bounded inside the mailer (`max_connections`).
    let (mail_phase, while_deadlines_due) = pacing::mail_slot_counts(config.concurrency);
    let mail_slots = mail_slots::MailSlots::new(
        mail_phase,
        while_deadlines_due,
        mail_wakes,
        config.metrics.emails_waiting.clone(),
    );
    let ctx = Arc::new(Context::new(
        client.clone(),
        &config,
        Caches {
            partners,
            distributors: distributors.clone(),
            unreadable_distributors,
            namespaces,
            entitlements,
            index: index.clone(),
            listed,
        },
        distributor_triggers,
        mail_slots,
        webhook_wakes,
    ));

    let _deliveries = webhook_delivery::AbortDeliveries(ctx.clone());
    let reporter = ctx.clone();
    tokio::spawn(async move {
        while let Some(report) = unreadable_rx.recv().await {
            let event = PartnerEvent {
                reason: EventReason::Unreadable,
                message: report.note,
            };
            match &report.regarding {
                Regarding::Partner(partner) => reporter.publish(partner, &event).await,
                Regarding::Distributor(distributor) => {
                    reporter.publish_on(distributor, &event).await
                }
            }
        }
    });

    let clock_jumps = WatchStream::from_changes(config.clock.jumps()).map(|_| {
        tracing::debug!("the clock moved: looking at every Partner again");
    });
    let by_distributor = index.clone();
    let by_namespace = index.clone();
    let by_tenant = index.clone();
    let partner_controller = partner_controller
        .with_config(
            kube::runtime::controller::Config::default()
                .concurrency(config.concurrency)
                .debounce(Duration::from_millis(10)),
        )
        .watches_stream(distributor_changes, move |d: Distributor| {
            by_distributor.of_distributor(&d.name_any())
        })
        .watches_stream(namespace_events, move |ns: Namespace| {
            let name = ns.name_any();
            let mut partners = by_namespace.in_namespace(&name);
            partners.extend(by_namespace.tenant_owner(&name));
            partners
        })
        .watches_stream(entitlement_events, move |cm: ConfigMap| {
            by_tenant.tenant_owner(&cm.namespace().unwrap_or_default())
        })
        .reconcile_on(UnboundedReceiverStream::new(mail_wake_rx))
        .reconcile_on(UnboundedReceiverStream::new(webhook_wake_rx))
        .reconcile_all_on(clock_jumps)
        .graceful_shutdown_on(shutdown.clone().wait())
        .run(partner::reconcile, partner::error_policy, ctx.clone())
        .for_each(|result| async move { log_outcome("partner", result) });

    let distributor_controller = Controller::for_shared_stream(distributor_updates, distributors)
        .with_config(
            kube::runtime::controller::Config::default()
                .concurrency(4)
                .debounce(DISTRIBUTOR_DEBOUNCE),
        )
        .reconcile_on(UnboundedReceiverStream::new(distributor_trigger_rx))
        .graceful_shutdown_on(shutdown.clone().wait())
        .run(
            distributor::reconcile,
            distributor::error_policy,
            ctx.clone(),
        )
        .for_each(|result| async move { log_outcome("distributor", result) });

    info!("controllers started");
    // A controller still waiting for its first list does not wind down by itself: give the
    // graceful shutdown a few seconds, then stop regardless.
    let deadline = async {
        shutdown.wait().await;
        tokio::time::sleep(Duration::from_secs(5)).await;
    };
    tokio::select! {
        _ = async { futures::join!(partner_controller, distributor_controller) } => {}
        _ = deadline => warn!("controllers did not stop within 5 s of the shutdown signal"),
    }
    config.readiness.set_ready(false);
    info!("controllers stopped");
}

/// What the caches keep of an object: not its `managedFields` nor its annotations. No decision
/// reads them, and they are most of its size: kubectl's last-applied configuration repeats the
/// whole object, and anyone who can write a Partner may give it 256 kB of annotations, which
/// would otherwise be held for as long as the Partner exists, bound to a Distributor or not.
fn trim_for_cache<K: kube::Resource>(object: &mut K) {
    let meta = object.meta_mut();
    meta.managed_fields = None;
    meta.annotations = None;
}

/// Objects per page when a watch lists. A page's body is held whole while it is decoded: at
/// kube's default of 500, a relist over 700 Partners carrying 250 kB of annotations each took
/// the operator to 318 MiB (`benches/operator.rs`, scenario 6; 1,000 other Partners). With 100,
/// and annotations dropped as each Partner is decoded ([`Decoded`]), 10,000 Partners and those
/// 700 peak at 172 MiB (200 MiB with their tenants' entitlements watched), and a restart over
/// 10,000 settles in 3.1–3.6 s (1.9 s at 500); 25 would save another 30 MiB for twice the
/// requests.
const LIST_PAGE_SIZE: u32 = 100;

fn watch_config() -> watcher::Config {
    watcher::Config::default().page_size(LIST_PAGE_SIZE)
}

/// Failures are logged by the error policies; what is left here is the runtime's own news.
fn log_outcome<K: kube::Resource, E: std::error::Error, Q: std::error::Error>(
    controller: &'static str,
    result: Result<
        (ObjectRef<K>, kube::runtime::controller::Action),
        kube::runtime::controller::Error<E, Q>,
    >,
) {
    use kube::runtime::controller::Error;
    match result {
        Ok(_) | Err(Error::ReconcilerFailed(..)) => {}
        // A trigger for an object deleted meanwhile: nothing to do.
        Err(Error::ObjectNotFound(object)) => {
            tracing::debug!(controller, %object, "object gone before its reconciliation");
        }
        Err(err) => warn!(controller, error = %err, "controller error"),
    }
}
