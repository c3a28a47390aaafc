//! Delivering the webhook events the lifecycle recorded, beside the reconciler and never in its
//! way.
//!
//! A plan hands on, per Partner and endpoint, the oldest event that endpoint does not have yet
//! ([`crate::lifecycle::webhooks::deliver`]). Here each such delivery runs as a task of its own,
//! so a slow or absent receiver holds no reconciliation slot: provisioning, deadlines and email
//! go on regardless. The task:
//! - takes a place among the endpoint's deliveries in flight ([`PER_ENDPOINT`]), so one slow
//!   endpoint cannot take the connections of the others;
//! - checks, at each attempt, that the Partner is still bound to the Distributor and rebuilds
//!   the event from its facts (a record that matches none is never sent);
//! - POSTs the signed event, and on a 2xx leaves the delivery with the Partner's reconciler,
//!   which records it with its next status write ([`super::delivered`]) and then hands on the
//!   Partner's next event;
//! - on a failure records the attempt (a Warning Event on the first), waits out an exponential
//!   backoff in real time, and tries again, until `retryHours` after the first failure, when
//!   the event is given up on (a Warning Event) and the next one goes.
//!
//! At most one delivery per Partner and endpoint is in flight, which keeps each endpoint's view
//! of a Partner in order. Everything that must survive a restart is in the status: a crash
//! before the delivery is recorded sends the event again with the same id (at least once).
//! A failed attempt is recorded by the task itself, at once: its backoff and its Warning must
//! outlive a crash, and failures are rare.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Client, ResourceExt};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use super::Context;
use super::delivered::{Delivered, RECORD_WITHIN, pending};
use super::executor::write_outcome;
use super::outside::Kube;
use super::recent::Recent;
use crate::api::{Distributor, Partner, WebhookDelivery, WebhookEndpoint};
use crate::lifecycle::webhooks::WebhookEvent;
use crate::lifecycle::{self, EventReason, Outcome, WebhookSend};
use crate::metrics::EndpointLabels;
use crate::webhooks::{EgressPolicy, Sender, SigningKeysCache};

/// Deliveries in flight to one endpoint at once.
const PER_ENDPOINT: usize = 8;
/// The first retry waits this long; each next one twice as long, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(2);
/// A receiver back after an outage has every event within this long.
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// A delivery just completed is not handed on again for this long: a plan made from a cache
/// that does not show the outcome yet would otherwise send it twice.
const COMPLETED_MEMORY: Duration = Duration::from_secs(60);
/// How long a reconciliation about to write its Partner's status waits for a delivery's first
/// attempt that is under way, so that the delivery's record rides along with that write.
pub const RIDE_ALONG_PATIENCE: Duration = Duration::from_millis(500);

/// The deliveries in flight, and what they are made with.
pub struct WebhookDeliveries {
    sender: Sender,
    keys: SigningKeysCache,
    /// (Partner, endpoint) with a delivery in flight.
    in_flight: Mutex<HashSet<(ObjectRef<Partner>, String)>>,
    /// (event id, endpoint) recently delivered or given up on.
    completed: Mutex<Recent<(String, String)>>,
    /// Per Partner, its deliveries whose first attempt is under way (or about to be: a place
    /// was free and no deadline was due when it was handed on), and what wakes those who wait
    /// for them to be over.
    first_attempts: Mutex<HashMap<ObjectRef<Partner>, FirstAttempts>>,
    /// A place in flight per (Distributor, endpoint).
    per_endpoint: Mutex<HashMap<(String, String), Arc<Semaphore>>>,
    /// Wakes a Partner once its delivery task is over, so its next event is handed on: the
    /// reconciliation its status write caused may have run while the task still held its place.
    wakes: tokio::sync::mpsc::UnboundedSender<ObjectRef<Partner>>,
    /// The delivery tasks: they end with the operator ([`AbortDeliveries`]), as a crash ends
    /// them, never outliving the controllers that started them.
    tasks: Mutex<JoinSet<()>>,
    /// Deliveries made and not yet recorded in their Partner's status.
    pub delivered: Delivered,
}

/// Ends every delivery in flight when dropped: with the controllers, whether they stop or the
/// operator's task is dropped. An event whose delivery is cut short is still pending in its
/// Partner's status, and the next operator sends it again (the same id).
pub struct AbortDeliveries(pub Arc<Context>);

impl Drop for AbortDeliveries {
    fn drop(&mut self) {
        self.0.outputs.webhooks.tasks.lock().unwrap().abort_all();
    }
}

impl WebhookDeliveries {
    /// Signing keys are read from Secrets in `secrets_namespace`; deliveries connect only
    /// where `egress` permits; a Partner whose delivery task ended is sent to `wakes`.
    pub fn new(
        client: Client,
        secrets_namespace: String,
        egress: EgressPolicy,
        wakes: tokio::sync::mpsc::UnboundedSender<ObjectRef<Partner>>,
    ) -> Self {
        Self {
            wakes,
            sender: Sender::new(egress),
            keys: SigningKeysCache::new(client, secrets_namespace),
            in_flight: Mutex::default(),
            completed: Mutex::new(Recent::new(COMPLETED_MEMORY)),
            first_attempts: Mutex::default(),
            per_endpoint: Mutex::default(),
            tasks: Mutex::default(),
            delivered: Delivered::default(),
        }
    }

    /// Starts delivering `send` for `partner`, unless a delivery to that endpoint is in flight
    /// for it already, or this one was just completed.
    pub fn start(ctx: &Arc<Context>, partner: &Partner, send: &WebhookSend) {
        let this = &ctx.outputs.webhooks;
        let reference = ObjectRef::from_obj(partner);
        let key = (reference.clone(), send.endpoint.name.clone());
        {
            let mut completed = this.completed.lock().unwrap();
            if completed.contains(&(send.record.id.clone(), send.endpoint.name.clone())) {
                return;
            }
        }
        if this
            .delivered
            .holds(partner, &send.record.id, &send.endpoint.name)
        {
            return;
        }
        if !this.in_flight.lock().unwrap().insert(key.clone()) {
            return;
        }
        let place = this.place(send);
        // A delivery that can go at once is waited for by the status write its record can ride
        // along with (see [`WebhookDeliveries::first_attempts_over`]).
        let first_attempt = (place.available_permits() > 0
            && !ctx.pacing.deadlines_due(&ctx.clock))
        .then(|| FirstAttempt::new(ctx, partner));
        let mut tasks = this.tasks.lock().unwrap();
        // Reap the finished ones.
        while tasks.try_join_next().is_some() {}
        let (ctx, send) = (ctx.clone(), send.clone());
        tasks.spawn(async move {
            let mut first_attempt = first_attempt;
            let place = match place.clone().try_acquire_owned() {
                Ok(place) => place,
                Err(_) => {
                    first_attempt.take();
                    place.acquire_owned().await.expect("never closed")
                }
            };
            let done = deliver_until_done(&ctx, &reference, &send, &mut first_attempt).await;
            drop(first_attempt);
            drop(place);
            ctx.outputs.webhooks.in_flight.lock().unwrap().remove(&key);
            // A delivery waits for a status write to ride along with; if none came, the
            // Partner writes it on its own then.
            if done == Done::Delivered {
                tokio::time::sleep(RECORD_WITHIN).await;
            }
            let _ = ctx.outputs.webhooks.wakes.send(reference);
        });
    }

    /// Waits, at most `patience`, until no delivery of `partner` has its first attempt under
    /// way: one that succeeds is then in [`Self::delivered`], for the status write that follows
    /// to record.
    pub async fn first_attempts_over(&self, partner: &ObjectRef<Partner>, patience: Duration) {
        let Some(notify) = self
            .first_attempts
            .lock()
            .unwrap()
            .get(partner)
            .map(|(_, notify)| notify.clone())
        else {
            return;
        };
        let over = notify.notified();
        tokio::pin!(over);
        over.as_mut().enable();
        if !self.first_attempts.lock().unwrap().contains_key(partner) {
            return;
        }
        let _ = tokio::time::timeout(patience, over).await;
    }

    fn place(&self, send: &WebhookSend) -> Arc<Semaphore> {
        self.per_endpoint
            .lock()
            .unwrap()
            .entry((send.distributor.clone(), send.endpoint.name.clone()))
            .or_insert_with(|| Arc::new(Semaphore::new(PER_ENDPOINT)))
            .clone()
    }

    fn completed(&self, send: &WebhookSend) {
        self.completed
            .lock()
            .unwrap()
            .note((send.record.id.clone(), send.endpoint.name.clone()));
    }
}

/// How many of a Partner's deliveries have their first attempt under way, and what wakes those
/// who wait for them to be over.
type FirstAttempts = (usize, Arc<Notify>);

/// A delivery's first attempt under way, counted in [`WebhookDeliveries::first_attempts`]
/// until dropped; with the Partner as the status write that handed the delivery on returned
/// it, for while the cache trails that write.
struct FirstAttempt {
    ctx: Arc<Context>,
    partner: ObjectRef<Partner>,
    handed: Partner,
}

impl FirstAttempt {
    fn new(ctx: &Arc<Context>, handed: &Partner) -> Self {
        let partner = ObjectRef::from_obj(handed);
        let mut attempts = ctx.outputs.webhooks.first_attempts.lock().unwrap();
        attempts.entry(partner.clone()).or_default().0 += 1;
        Self {
            ctx: ctx.clone(),
            partner,
            handed: handed.clone(),
        }
    }
}

impl Drop for FirstAttempt {
    fn drop(&mut self) {
        let mut attempts = self.ctx.outputs.webhooks.first_attempts.lock().unwrap();
        let Some((count, notify)) = attempts.get_mut(&self.partner) else {
            return;
        };
        *count -= 1;
        if *count == 0 {
            notify.notify_waiters();
            attempts.remove(&self.partner);
        }
    }
}

/// How a delivery task ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Done {
    /// The endpoint has the event; the reconciler records it.
    Delivered,
    /// Given up on (recorded), or no longer wanted.
    Over,
}

/// Attempts `send` until it is delivered, given up on, or no longer wanted.
async fn deliver_until_done(
    ctx: &Arc<Context>,
    reference: &ObjectRef<Partner>,
    send: &WebhookSend,
    first_attempt: &mut Option<FirstAttempt>,
) -> Done {
    let labels = EndpointLabels {
        distributor: send.distributor.clone(),
        endpoint: send.endpoint.name.clone(),
    };
    let mut delivery = send.delivery.clone();
    loop {
        if let Some(wait) = backoff_left(&delivery) {
            first_attempt.take();
            tokio::time::sleep(wait).await;
        }
        if ctx.pacing.deadlines_due(&ctx.clock) {
            first_attempt.take();
            ctx.pacing.deadlines_first(&ctx.clock).await;
        }
        let handed = first_attempt.as_ref().map(|first| &first.handed);
        let Some((partner, distributor, event)) = still_wanted(ctx, reference, handed, send) else {
            return Done::Over;
        };
        let Some(endpoint) = distributor.spec.webhooks.endpoint(&send.endpoint.name) else {
            return Done::Over;
        };
        let outcome = attempt(ctx, &partner, &distributor, &event, endpoint).await;
        crate::crash_points::pass("after-webhook");
        let Err(err) = outcome else {
            delivered(ctx, &partner, send, &event, &labels);
            return Done::Delivered;
        };
        first_attempt.take();
        let api: Api<Partner> = Api::namespaced(
            ctx.client.clone(),
            reference.namespace.as_deref().unwrap_or_default(),
        );
        let world = Kube { ctx, api: &api };
        let mut current = (*partner).clone();
        let at = Utc::now();
        delivery.first_failed_at.get_or_insert(at);
        if failed(&world, &mut current, send, &delivery, err, at, &labels).await {
            return Done::Over;
        }
        // Tried again after a backoff, with the same id (at least once).
        delivery.attempts += 1;
        delivery.last_attempt_at = Some(Utc::now());
    }
}

/// The Partner, its Distributor and the event, while the event is still to deliver: the
/// Partner's cache (or, while the cache trails the operator's last write, the copy the delivery
/// was handed on with, if that is the write) says it is pending for the endpoint (not delivered
/// meanwhile, the endpoint still listed, the Partner not gone); the Distributor is as it lists
/// the endpoint now (its URL or key may have changed since the first attempt); and the event is
/// rebuilt from the facts of a Partner bound to it (a record that matches none is dropped by the next plan).
fn still_wanted(
    ctx: &Context,
    reference: &ObjectRef<Partner>,
    handed: Option<&Partner>,
    send: &WebhookSend,
) -> Option<(Arc<Partner>, Arc<Distributor>, WebhookEvent)> {
    let cached = ctx.caches.partners.get(reference)?;
    let own_writes = &ctx.caches.own_writes;
    let partner = match handed {
        _ if !own_writes.lags(&cached) => cached,
        Some(handed) if cached.uid() == handed.uid() && !own_writes.lags(handed) => {
            Arc::new(handed.clone())
        }
        _ => return None,
    };
    if !pending(&partner, &send.record.id, &send.endpoint.name) {
        return None;
    }
    let distributor = ctx
        .caches
        .distributors
        .get(&ObjectRef::new(&send.distributor))?;
    let Some(event) = verified_event(ctx, &partner, &distributor, &send.record.id) else {
        debug!(partner = %reference, endpoint = %send.endpoint.name, "webhook record not sent: unbound, or it matches no transition");
        return None;
    };
    Some((partner, distributor, event))
}

/// The endpoint has the event: left with the Partner's reconciler to record
/// ([`super::delivered`]).
fn delivered(
    ctx: &Context,
    partner: &Partner,
    send: &WebhookSend,
    event: &WebhookEvent,
    labels: &EndpointLabels,
) {
    ctx.outputs
        .metrics
        .webhooks_delivered
        .get_or_create(labels)
        .inc();
    let delay = (ctx.clock.now() - event.time).num_milliseconds();
    ctx.outputs
        .metrics
        .webhook_delivery_delay
        .observe(delay.max(0) as f64 / 1000.0);
    let reference = ObjectRef::from_obj(partner);
    debug!(partner = %reference, event = %send.record.id, endpoint = %send.endpoint.name, "webhook delivered");
    ctx.outputs.webhooks.delivered.add(
        &reference,
        &partner.uid().unwrap_or_default(),
        &send.record.id,
        &send.endpoint.name,
    );
    ctx.outputs.webhooks.completed(send);
}

/// An attempt failed: recorded (whether the delivery is over: given up on, `retryHours` after
/// the first failure).
async fn failed(
    world: &Kube<'_>,
    current: &mut Partner,
    send: &WebhookSend,
    delivery: &WebhookDelivery,
    err: crate::webhooks::DeliveryError,
    at: chrono::DateTime<Utc>,
    labels: &EndpointLabels,
) -> bool {
    let ctx = world.ctx;
    ctx.outputs
        .metrics
        .webhook_attempts_failed
        .get_or_create(labels)
        .inc();
    let error = err.to_string();
    info!(partner = %ObjectRef::from_obj(&*current), event = %send.record.id, endpoint = %send.endpoint.name, attempts = delivery.attempts + 1, %error, "webhook delivery failed");
    let outcome = Outcome::WebhookFailed {
        send,
        error: &error,
        at,
    };
    let recorded = write_outcome(world, current, outcome).await;
    ctx.recount(&send.distributor);
    match recorded {
        Ok(Some(event)) if event.reason == EventReason::WebhookAbandoned => {
            ctx.outputs
                .metrics
                .webhooks_abandoned
                .get_or_create(labels)
                .inc();
            ctx.outputs.webhooks.completed(send);
            true
        }
        Ok(_) => false,
        Err(err) => {
            warn!(partner = %ObjectRef::from_obj(&*current), error = %err, "could not record a failed webhook delivery");
            false
        }
    }
}

/// The event record `id` of `partner` stands for, if the Partner is bound to `distributor`
/// (its namespace selected by it, as the operator's own cache says) and the record matches a
/// transition of its status.
fn verified_event(
    ctx: &Context,
    partner: &Partner,
    distributor: &Distributor,
    id: &str,
) -> Option<WebhookEvent> {
    let bound = partner.spec.distributor_ref.name == distributor.name_any()
        && ctx.namespace_allows(partner, Some(distributor));
    let status = partner.status.as_ref()?;
    let record = status.webhooks.iter().find(|r| r.id == id)?;
    bound
        .then(|| lifecycle::webhooks::rebuild(partner, distributor, status, record))
        .flatten()
}

/// One POST of `event`, signed with `distributor`'s keys, to `endpoint`.
async fn attempt(
    ctx: &Context,
    partner: &Partner,
    distributor: &Distributor,
    event: &WebhookEvent,
    endpoint: &WebhookEndpoint,
) -> Result<(), crate::webhooks::DeliveryError> {
    let keys = ctx
        .outputs
        .webhooks
        .keys
        .get(&distributor.name_any(), &endpoint.signing_key_secret_ref)
        .await?;
    let body = crate::webhooks::cloudevent(event, partner);
    ctx.outputs
        .webhooks
        .sender
        .post(
            &endpoint.url,
            endpoint.timeout_seconds,
            &event.id,
            Utc::now().timestamp(),
            body,
            &keys,
        )
        .await
}

/// What is left of the wait after the last failed attempt, if any.
fn backoff_left(delivery: &WebhookDelivery) -> Option<Duration> {
    let last = delivery.last_attempt_at?;
    let wait = backoff(delivery.attempts);
    let since = (Utc::now() - last).to_std().unwrap_or_default();
    wait.checked_sub(since).filter(|left| !left.is_zero())
}

/// The wait after `attempts` failed attempts: doubling from [`FIRST_BACKOFF`] to
/// [`MAX_BACKOFF`], with up to a tenth more at random so that deliveries that failed together
/// do not all come back together.
fn backoff(attempts: u32) -> Duration {
    let doubled = FIRST_BACKOFF.saturating_mul(1 << attempts.saturating_sub(1).min(16));
    let wait = doubled.min(MAX_BACKOFF);
    wait + wait.mul_f64(rand::random::<f64>() / 10.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let within = |attempts: u32, base: u64| {
            let wait = backoff(attempts);
            let base = Duration::from_secs(base);
            assert!(
                wait >= base && wait <= base + base / 10,
                "{attempts}: {wait:?}"
            );
        };
        within(1, 2);
        within(2, 4);
        within(5, 32);
        within(9, 300);
        within(40, 300);
    }

    #[test]
    fn the_wait_counts_from_the_last_attempt() {
        let mut delivery = WebhookDelivery::to("billing");
        assert_eq!(backoff_left(&delivery), None, "never attempted");
        delivery.attempts = 1;
        delivery.last_attempt_at = Some(Utc::now() - chrono::Duration::seconds(60));
        assert_eq!(backoff_left(&delivery), None, "waited out");
        delivery.last_attempt_at = Some(Utc::now());
        assert!(backoff_left(&delivery).is_some());
    }
}
