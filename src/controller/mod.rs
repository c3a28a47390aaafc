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
//! Beside them, the statement writer ([`crate::statements`]) counts the cached Partners into
//! each Distributor's monthly billing statement.
//!
//! No periodic resync: a Partner is requeued at its next deadline (plus a little jitter), and
//! errors back off exponentially up to a cap, per Partner.

mod backoff;
mod claim;
mod context;
mod deadlines;
mod delivered;
mod distributor;
mod entitlements;
mod events;
mod executor;
mod finalizer;
mod index;
mod mail_rate;
mod mail_slots;
mod on_workers;
mod outside;
mod own_writes;
mod pacing;
mod partner;
mod recent;
mod recipient_rate;
mod recounts;
mod statement_source;
mod unreadable;
mod watches;
mod webhook_delivery;

use std::sync::Arc;
use std::time::Duration;

use futures::{Future, Stream, StreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::ListParams;
use kube::runtime::Controller;
use kube::runtime::reflector::{ObjectRef, ReflectHandle, Store};
use kube::{Api, Client, ResourceExt};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio_stream::wrappers::{UnboundedReceiverStream, WatchStream};
use tracing::{info, warn};

pub use context::Context;
use context::{Caches, Listed};
pub use index::PartnerIndex;
use own_writes::OwnWrites;
pub use recipient_rate::DEFAULT_PER_HOUR as DEFAULT_EMAILS_PER_RECIPIENT_PER_HOUR;
use unreadable::{Regarding, Report, UnreadableNames};
use watches::{watch_distributors, watch_entitlements, watch_namespaces, watch_partners};

use crate::api::{Decoded, Distributor, Partner};
use crate::clock::Clock;
use crate::lifecycle::{EventReason, PartnerEvent};
use crate::mail::Mailer;
use crate::metrics::{Metrics, Readiness};
use crate::shutdown::Shutdown;
use crate::watch_progress::WatchProgress;

/// The finalizer the operator puts on every Partner, so it can deprovision the tenant.
pub const FINALIZER: &str = "partner-operator.io/tenant";

/// How long the Distributor controller waits for more requests before it recounts (each new
/// request restarts the wait: [`recounts`] paces them).
const DISTRIBUTOR_DEBOUNCE: Duration = Duration::from_millis(200);

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
    let index = PartnerIndex::default();
    let listed = Arc::new(Listed::new(config.readiness.clone()));
    // Each Partner and each Distributor decodes on its own: one the operator cannot read is
    // reported and left out (`unreadable`), never failing the list for all the others.
    let (unreadable_reports, unreadable_rx) = tokio::sync::mpsc::unbounded_channel();
    let watch_progress = Arc::new(WatchProgress::default());
    let (partners, partner_events) = watch_partners(
        &client,
        &config,
        &index,
        &listed,
        &watch_progress,
        unreadable_reports.clone(),
    );
    let unreadable_distributors = UnreadableNames::default();
    let distributors = watch_distributors(
        &client,
        &config,
        unreadable_distributors.clone(),
        &listed,
        unreadable_reports,
    );
    let (namespaces, namespace_events) = watch_namespaces(&client, &listed);
    let own_writes = Arc::new(OwnWrites::default());
    let (entitlements, entitlement_events) =
        watch_entitlements(&client, &listed, own_writes.clone());
    let caches = Caches {
        partners: partners.clone(),
        distributors: distributors.store.clone(),
        unreadable_distributors,
        namespaces,
        entitlements,
        entitlements_read: Default::default(),
        index: index.clone(),
        listed,
        own_writes,
        watch_progress,
    };
    let (ctx, wakes) = context(&client, &config, caches);
    let _deliveries = webhook_delivery::AbortDeliveries(ctx.clone());
    report_unreadable(ctx.clone(), unreadable_rx);

    let partner_controller = Controller::for_stream(partner_events, partners)
        .with_config(
            kube::runtime::controller::Config::default()
                .concurrency(config.concurrency)
                .debounce(Duration::from_millis(10)),
        )
        .watches_stream(distributors.spec_changes, partners_of_distributor(&index))
        .watches_stream(namespace_events, partners_of_namespace(&index))
        .watches_stream(entitlement_events, partner_of_tenant(&index))
        .reconcile_on(UnboundedReceiverStream::new(wakes.mail))
        .reconcile_on(UnboundedReceiverStream::new(wakes.webhooks))
        .reconcile_all_on(clock_jumps(&config.clock))
        .graceful_shutdown_on(shutdown.clone().wait())
        .run(partner::reconcile, partner::error_policy, ctx.clone())
        .for_each(|result| async move { log_outcome("partner", result) });
    let distributor_controller = distributor_controller(
        distributors.updates,
        distributors.store,
        wakes.recounts,
        ctx,
        shutdown.clone(),
    );

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

/// The receiving ends of what the context's parts send to the controllers.
struct Wakes {
    /// Distributors to recount, from the Partner reconciler.
    recounts: UnboundedReceiver<ObjectRef<Distributor>>,
    /// Partners whose turn for a mail slot came.
    mail: UnboundedReceiver<ObjectRef<Partner>>,
    /// Partners whose webhook delivery ended.
    webhooks: UnboundedReceiver<ObjectRef<Partner>>,
}

/// What every reconciliation shares, over the caches the watches fill, and the wakes its
/// parts send to the controllers.
fn context(client: &Client, config: &OperatorConfig, caches: Caches) -> (Arc<Context>, Wakes) {
    let (distributor_triggers, recounts) = tokio::sync::mpsc::unbounded_channel();
    let statements = crate::statements::StatementWriter::start(
        crate::statements::KubeStore::new(client.clone()),
        statement_source::CachedPartners {
            partners: caches.partners.clone(),
            distributors: caches.distributors.clone(),
            listed: caches.listed.clone(),
        },
        config.clock.clone(),
    );
    let (mail_wakes, mail) = tokio::sync::mpsc::unbounded_channel();
    let (webhook_wakes, webhooks) = tokio::sync::mpsc::unbounded_channel();
    let ctx = Context::new(
        client.clone(),
        config,
        caches,
        distributor_triggers,
        mail_slots(config, mail_wakes),
        webhook_wakes,
        statements,
    );
    let wakes = Wakes {
        recounts,
        mail,
        webhooks,
    };
    (Arc::new(ctx), wakes)
}

/// The Partner reconciliations that may be in the mail phase at once (see
/// [`pacing::MAIL_SLOTS_DIVISOR`]). The SMTP connections themselves are bounded inside the
/// mailer (`max_connections`).
fn mail_slots(
    config: &OperatorConfig,
    wakes: UnboundedSender<ObjectRef<Partner>>,
) -> Arc<mail_slots::MailSlots> {
    let (mail_phase, while_deadlines_due) = pacing::mail_slot_counts(config.concurrency);
    mail_slots::MailSlots::new(
        mail_phase,
        while_deadlines_due,
        wakes,
        config.metrics.emails_waiting.clone(),
    )
}

/// Records a Warning Event on each Partner or Distributor a watch could not read.
fn report_unreadable(ctx: Arc<Context>, mut reports: UnboundedReceiver<Report>) {
    tokio::spawn(async move {
        while let Some(report) = reports.recv().await {
            let event = PartnerEvent {
                reason: EventReason::Unreadable,
                message: report.note,
            };
            match &report.regarding {
                Regarding::Partner(partner) => ctx.publish(partner, &event),
                Regarding::Distributor(distributor) => ctx.publish_on(distributor, &event).await,
            }
        }
    });
}

/// When a test or the sandbox moves the clock, every Partner is looked at again.
fn clock_jumps(clock: &Clock) -> impl Stream<Item = ()> + Send + 'static {
    WatchStream::from_changes(clock.jumps()).map(|_| {
        tracing::debug!("the clock moved: looking at every Partner again");
    })
}

/// The Partners bound to a Distributor that changed.
fn partners_of_distributor(
    index: &PartnerIndex,
) -> impl Fn(Distributor) -> Vec<ObjectRef<Partner>> + Send + Sync + 'static {
    let index = index.clone();
    move |d| index.of_distributor(&d.name_any())
}

/// The Partners inside a namespace that changed, and the Partner whose tenant it is.
fn partners_of_namespace(
    index: &PartnerIndex,
) -> impl Fn(Namespace) -> Vec<ObjectRef<Partner>> + Send + Sync + 'static {
    let index = index.clone();
    move |ns| {
        let name = ns.name_any();
        let mut partners = index.in_namespace(&name);
        partners.extend(index.tenant_owner(&name));
        partners
    }
}

/// The Partner whose tenant holds an `entitlements` ConfigMap that changed.
fn partner_of_tenant(
    index: &PartnerIndex,
) -> impl Fn(ConfigMap) -> Option<ObjectRef<Partner>> + Send + Sync + 'static {
    let index = index.clone();
    move |cm| index.tenant_owner(&cm.namespace().unwrap_or_default())
}

/// The Distributor controller: it recounts on every Distributor change and whenever the Partner
/// reconciler asks (`recounts`).
fn distributor_controller(
    updates: ReflectHandle<Distributor>,
    store: Store<Distributor>,
    recounts: UnboundedReceiver<ObjectRef<Distributor>>,
    ctx: Arc<Context>,
    shutdown: Shutdown,
) -> impl Future<Output = ()> {
    Controller::for_shared_stream(updates, store)
        .with_config(
            kube::runtime::controller::Config::default()
                .concurrency(4)
                .debounce(DISTRIBUTOR_DEBOUNCE),
        )
        .reconcile_on(UnboundedReceiverStream::new(recounts))
        .graceful_shutdown_on(shutdown.wait())
        .run(distributor::reconcile, distributor::error_policy, ctx)
        .for_each(|result| async move { log_outcome("distributor", result) })
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
