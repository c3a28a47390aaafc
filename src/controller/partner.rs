//! The Partner reconciler: observe, plan ([`lifecycle::plan`] decides everything), write the
//! status the plan gives, carry out its effects ([`super::executor`]), look again when the plan
//! says; and for a Partner being deleted, the same with [`lifecycle::plan_deletion`]. Nothing
//! here decides what happens to a Partner.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::Namespace;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::Event as Finalizer;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};
use tracing::{debug, info, warn};

use super::entitlements;
use super::executor::{Next, Pass, carry_out, write_outcome};
use super::finalizer::finalizer;
use super::outside::{Kube, Outside, cached_tenant};
use super::webhook_delivery::RIDE_ALONG_PATIENCE;
use super::{Context, FINALIZER};
use crate::api::{Counted, Partner, SubscriptionLevel};
use crate::lifecycle::{self, Effect, Observation, Plan};
use crate::mail::MailError;
use crate::status::Persistence;
use crate::tenant::{self, Tenant, tenant_namespace_of};

/// Why a reconciliation failed; retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("email {event}: {source}")]
    Mail {
        event: &'static str,
        source: MailError,
    },
    #[error("finalizer: {0}")]
    Finalizer(String),
    #[error("the status kept changing under the operator; retrying")]
    Unsettled,
    #[error("tenant namespace {0} is being deleted; it is created again once it is gone")]
    TenantTerminating(String),
    #[error("billing statement: {0}")]
    Statement(#[from] crate::statements::StoreError),
}

/// Plans per reconciliation at most; each step performs effects that the next plan sees.
const MAX_STEPS: usize = 8;
/// How often a Partner kept for its webhook deliveries is looked at without being woken.
const DELETION_RECHECK: Duration = Duration::from_secs(60);
/// Added to every requeue at a deadline, so Partners that share a deadline spread a little.
const MAX_JITTER: Duration = Duration::from_millis(50);

/// A Partner's reconciliation, on a worker of its own ([`super::on_workers`]).
pub async fn reconcile(partner: Arc<Partner>, ctx: Arc<Context>) -> Result<Action, Error> {
    super::on_workers::on_workers(reconcile_in_place(partner, ctx)).await
}

async fn reconcile_in_place(partner: Arc<Partner>, ctx: Arc<Context>) -> Result<Action, Error> {
    if !ctx.synced() {
        return Ok(Action::requeue(Duration::from_millis(200)));
    }
    // A copy older than the operator's own last write: that write's watch event wakes the
    // Partner again, with the cache caught up.
    if ctx.caches.own_writes.lags(&partner) {
        return Ok(Action::await_change());
    }
    let started = std::time::Instant::now();
    let api: Api<Partner> =
        Api::namespaced(ctx.client.clone(), &partner.namespace().unwrap_or_default());
    let reference = ObjectRef::from_obj(&*partner);
    let result = async {
        // Its Distributor is out of the cache because it cannot be read, not because it was
        // deleted: nothing is decided on its absence (a Production Partner would end,
        // unbound). The Distributor's next readable version wakes this Partner.
        let distributor = &partner.spec.distributor_ref.name;
        if ctx.caches.unreadable_distributors.contains(distributor) {
            return Ok(Action::await_change());
        }
        let partner = match delete(&api, &partner, &ctx).await? {
            Deleting::No => partner,
            Deleting::Released(current) => Arc::new(*current),
            Deleting::Waiting(action) => return Ok(action),
        };
        // The finalizer (with the uid the tenant is made for) is added before anything else is
        // done, and removed once the deletion released the Partner.
        let Some(claimed) = super::claim::claim(&api, &partner, FINALIZER).await? else {
            return Ok(Action::await_change());
        };
        let partner = if claimed.resource_version() == partner.resource_version() {
            partner
        } else {
            ctx.caches.own_writes.wrote(&claimed);
            Arc::new(claimed)
        };
        finalizer(&api, FINALIZER, partner, |event| async {
            match event {
                Finalizer::Apply(partner) => apply(&api, &partner, &ctx).await,
                Finalizer::Cleanup(_) => Ok(Action::await_change()),
            }
        })
        .await
        .map_err(|err| match err {
            kube::runtime::finalizer::Error::ApplyFailed(e)
            | kube::runtime::finalizer::Error::CleanupFailed(e) => e,
            kube::runtime::finalizer::Error::AddFinalizer(e)
            | kube::runtime::finalizer::Error::RemoveFinalizer(e) => Error::Kube(e),
            other => Error::Finalizer(other.to_string()),
        })
    }
    .await;
    ctx.outputs
        .metrics
        .observe_reconcile("partner", started.elapsed(), result.is_err());
    if result.is_ok() {
        ctx.pacing.partner_backoff.succeeded(&reference);
    }
    result
}

pub fn error_policy(partner: Arc<Partner>, error: &Error, ctx: Arc<Context>) -> Action {
    let wait = ctx
        .pacing
        .partner_backoff
        .failed(&ObjectRef::from_obj(&*partner));
    warn!(
        partner = %ObjectRef::from_obj(&*partner),
        error = %error,
        retry_in = ?wait,
        "reconciliation failed"
    );
    Action::requeue(wait)
}

async fn apply(api: &Api<Partner>, cached: &Partner, ctx: &Arc<Context>) -> Result<Action, Error> {
    let world = Kube { ctx, api };
    let mut pass = Pass::new(cached);
    let result = steps(&world, &mut pass, cached).await;
    // An email sent and not recorded yet (the write that records it was not reached: a read
    // before it failed, or the steps ran out) is recorded before the retry, which would send
    // it again.
    if result.is_err()
        && let Some(sent) = pass.unrecorded.take()
    {
        write_outcome(&world, &mut pass.current, sent.outcome()).await?;
    }
    result
}

/// Plans, writes and carries out, step by step, until a plan leaves nothing to do now.
async fn steps(world: &Kube<'_>, pass: &mut Pass, cached: &Partner) -> Result<Action, Error> {
    let ctx = world.ctx;
    for _ in 0..MAX_STEPS {
        let Written {
            plan,
            told,
            creates_tenant,
            now,
        } = plan_and_write(world, pass).await?;
        if creates_tenant {
            create_tenant_first(world, pass, &plan).await;
            // Planned at the same instant, the status written next provisions the tenant just
            // made at the time it was planned (its trial's end is in its `entitlements`).
            pass.planned_at = Some(now);
            continue;
        }
        resume_activation(world, pass, &plan).await?;
        if let Some(event) = told {
            world.publish(&pass.current, &event);
        }
        publish_events(world, &pass.current, &plan);
        for effect in &plan.effects {
            if let Effect::DeliverWebhook(send) = effect {
                world.deliver_webhook(&pass.current, send);
            }
        }
        let action = match carry_out(world, &ctx.pacing, pass, &plan).await? {
            Next::PlanAgain => continue,
            Next::Done => {
                ctx.pacing
                    .mail_slots
                    .forget(&ObjectRef::from_obj(&pass.current));
                look_again(ctx, &plan)
            }
            Next::Requeue(after) => Action::requeue(after),
        };
        finish(ctx, cached, &pass.current, &plan);
        return Ok(action);
    }
    Err(Error::Unsettled)
}

/// An activation the plan resumed from the tenant's record is written as the activation
/// service writes it, under its field manager (the operator's own writes neither apply nor
/// remove `activation.activatedAt`). Only then: nothing else makes a plan say a Partner is
/// activated that its status does not.
async fn resume_activation(world: &Kube<'_>, pass: &mut Pass, plan: &Plan) -> Result<(), Error> {
    let activated_at = |status: Option<&crate::api::PartnerStatus>| {
        status
            .and_then(|s| s.activation.as_ref())
            .and_then(|a| a.activated_at)
    };
    let Some(at) = activated_at(Some(&plan.status)) else {
        return Ok(());
    };
    if activated_at(pass.current.status.as_ref()).is_some() {
        return Ok(());
    }
    crate::status::transact(
        world.api,
        &mut pass.current,
        crate::status::Writer::ActivationService,
        Persistence::Outcome,
        Some(&world.ctx.caches.watch_progress),
        |_, status| {
            status.activation.get_or_insert_default().activated_at = Some(at);
        },
    )
    .await?;
    Ok(())
}

/// One step's plan, as written (or left unwritten, for a tenant made first).
struct Written {
    plan: Plan,
    /// The Event of the email this write recorded sent.
    told: Option<lifecycle::PartnerEvent>,
    /// The plan makes a new tenant, before its status is written.
    creates_tenant: bool,
    /// The instant it was planned at.
    now: DateTime<Utc>,
}

/// Plans on the Partner as stored and writes the plan's status (a conflict plans again on what
/// was written meanwhile), with the email this reconciliation sent and the webhook deliveries
/// waiting for a write recorded in it.
async fn plan_and_write(world: &Kube<'_>, pass: &mut Pass) -> Result<Written, Error> {
    let ctx = world.ctx;
    // What is at the tenant's name: found by this reconciliation, else as the cache shows.
    let at_tenant_name = match pass.tenant_found.clone() {
        Some(found) => found,
        None => cached_or_proven(ctx, pass).await?,
    };
    let version = pass.current.resource_version();
    // What this reconciliation wrote is the operator's own; else as observed, in a tenant
    // that is this Partner's (the plan looks at no other's).
    let entitlements = match pass.entitlements_written.clone() {
        Some(written) => Some(written),
        None if at_tenant_name.is_owned() => entitlements::observed(ctx, &pass.current).await?,
        None => None,
    };
    // An email sent and not yet recorded is recorded by this write, and retried as such.
    let unrecorded = pass.unrecorded.take();
    let persistence = match unrecorded {
        Some(_) => Persistence::Outcome,
        None => Persistence::Recomputed,
    };
    let tenant_first =
        unrecorded.is_none() && !pass.tenant_first_tried && at_tenant_name == Tenant::Absent;
    // This write records an email sent: a webhook delivery on its first attempt (during
    // onboarding, the one this reconciliation's previous write handed on) rides along with
    // it, rather than being written on its own a moment later.
    if unrecorded.is_some() {
        let reference = ObjectRef::from_obj(&pass.current);
        ctx.outputs
            .webhooks
            .first_attempts_over(&reference, RIDE_ALONG_PATIENCE)
            .await;
    }
    let delivered = ctx.outputs.webhooks.delivered.of(&pass.current);
    let now = pass
        .planned_at
        .take()
        .unwrap_or_else(|| ctx.clock.timestamp());
    let plan_at_now =
        |partner: &Partner| plan_for(ctx, partner, &at_tenant_name, entitlements.as_ref(), now);
    let transacted = world
        .transact(&mut pass.current, persistence, |partner, status| {
            let (recorded, told) = match &unrecorded {
                Some(sent) => {
                    let (recorded, told) = sent.recorded_on(partner);
                    (Some(recorded), told)
                }
                None => (None, None),
            };
            let partner = recorded.as_ref().unwrap_or(partner);
            let mut plan = plan_at_now(partner);
            // Webhook deliveries ride along with a write made anyway, or go on their own once
            // due.
            if !delivered.is_empty() && (delivered.due() || plan.status != *status) {
                let partner = delivered.recorded_on(partner);
                plan = plan_at_now(&partner);
            }
            let creates_tenant = tenant_first && plan.effects.iter().any(is_tenant);
            if !creates_tenant {
                status.clone_from(&plan.status);
            }
            (plan, told, creates_tenant)
        })
        .await?;
    if transacted.written {
        crate::crash_points::pass("after-status-write");
        settle_deliveries(ctx, &pass.current);
    }
    pass.fresh |= pass.current.resource_version() != version;
    let (plan, told, creates_tenant) = transacted.value;
    Ok(Written {
        plan,
        told,
        creates_tenant,
        now,
    })
}

/// Forgets the webhook deliveries `written` records, and has the Distributor's pending counts
/// follow.
fn settle_deliveries(ctx: &Context, written: &Partner) {
    if ctx.outputs.webhooks.delivered.settle(written) {
        ctx.recount(&written.spec.distributor_ref.name);
    }
}

fn is_tenant(effect: &Effect) -> bool {
    matches!(effect, Effect::EnsureTenant { .. })
}

/// A new tenant's namespace is made before the status that records it is written: one write
/// then says both that it is provisioned and what follows (written first, "creating the
/// tenant" would be replaced at once by a second write). The tenant's name and ownership come
/// from the Partner's metadata, never from its status, so nothing depends on the order; a
/// crash in between finds the namespace made and records it.
///
/// Only the namespace: what goes into it (the entitlements and the lifecycle record, an
/// emailed activation token) is written after the status, as the plan's first effect. The
/// record says what the status held, so a Partner that resumes from it takes its emails as
/// decided and sent; written before the status, it would hold an activation email that a
/// status write lost before it was ever sent. Should the namespace fail, the plan's status is
/// written as before and the tenant tried again after it, so the failure is told there.
async fn create_tenant_first(world: &Kube<'_>, pass: &mut Pass, plan: &Plan) {
    pass.tenant_first_tried = true;
    if !plan.effects.iter().any(is_tenant) {
        return;
    }
    match world.make_tenant(&pass.current).await {
        Ok(found) => pass.tenant_found = Some(found),
        Err(err) => {
            debug!(partner = %ObjectRef::from_obj(&pass.current), error = %err, "tenant not made before its status; made after it");
        }
    }
}

/// The plan for `partner` as the caches, and what this reconciliation found and wrote, show it.
fn plan_for(
    ctx: &Context,
    partner: &Partner,
    at_tenant_name: &Tenant,
    entitlements: Option<&BTreeMap<String, String>>,
    now: DateTime<Utc>,
) -> Plan {
    let distributor = ctx
        .caches
        .distributors
        .get(&ObjectRef::new(&partner.spec.distributor_ref.name));
    lifecycle::plan(&Observation {
        partner,
        distributor: distributor.as_deref(),
        namespace_allowed: ctx.namespace_allows(partner, distributor.as_deref()),
        tenant_exists: at_tenant_name.is_owned(),
        tenant_taken: *at_tenant_name == Tenant::Taken,
        entitlements,
        default_activation_base_url: ctx.settings.activation_base_url.as_deref(),
        now,
    })
}

/// A transition's Events (e.g. ConvertedToProduction and BillingStarted), handed on together.
fn publish_events(world: &impl Outside, partner: &Partner, plan: &Plan) {
    for effect in &plan.effects {
        if let Effect::Event(event) = effect {
            info!(partner = %ObjectRef::from_obj(partner), reason = %event.reason, "{}", event.message);
            world.publish(partner, event);
        }
    }
}

/// Metrics, and a recount of the Distributor when how this Partner counts there moved.
fn finish(ctx: &Context, before: &Partner, after: &Partner, plan: &Plan) {
    record_next_deadline(ctx, after, plan.next_review);
    let counted = |p: &Partner| p.status.as_ref().map(Counted::of);
    if counted(before) != counted(after) {
        ctx.recount(&after.spec.distributor_ref.name);
    }
}

/// The Partner's next deadline (`None`: it has none, or it is gone), where mail slots and
/// metrics read it; and its trial's end, for the metrics (a trial's end is always a deadline).
fn record_next_deadline(ctx: &Context, partner: &Partner, at: Option<DateTime<Utc>>) {
    ctx.pacing.deadlines.set(&ObjectRef::from_obj(partner), at);
    let (namespace, name) = (partner.namespace().unwrap_or_default(), partner.name_any());
    ctx.outputs.metrics.set_next_deadline(&namespace, &name, at);
    let trial = at.and_then(|_| trial_end(ctx, partner));
    let trial = trial
        .as_ref()
        .map(|(distributor, auto, end)| (distributor.as_str(), *auto, *end));
    ctx.outputs.metrics.set_trial_end(&namespace, &name, trial);
}

/// A Partner in Trial: its Distributor, whether the trial converts by itself (a Distributor
/// not in the cache counts with the default policy), and its end.
fn trial_end(ctx: &Context, partner: &Partner) -> Option<(String, bool, DateTime<Utc>)> {
    let status = partner.status.as_ref()?;
    if status.subscription_level != Some(SubscriptionLevel::Trial) {
        return None;
    }
    let end = status.trial.as_ref()?.ends_at;
    let distributor = &partner.spec.distributor_ref.name;
    let policy = ctx
        .caches
        .distributors
        .get(&ObjectRef::new(distributor))
        .map(|d| d.spec.trial.clone())
        .unwrap_or_default();
    Some((distributor.clone(), partner.auto_upgrade(&policy), end))
}

/// When the plan says to look again: after `recheck_after`, at its next deadline (plus a little
/// jitter), or on the next change.
fn look_again(ctx: &Context, plan: &Plan) -> Action {
    if let Some(after) = plan.recheck_after {
        return Action::requeue(after);
    }
    match plan
        .next_review
        .and_then(|at| ctx.clock.real_duration_until(at))
    {
        Some(wait) => {
            let jitter = MAX_JITTER.mul_f64(rand::random::<f64>());
            Action::requeue(wait + jitter)
        }
        // No deadline, or a frozen clock that only a jump (which wakes every Partner) moves.
        None => Action::await_change(),
    }
}

/// What the cache shows at the tenant's name; for a tenant of an earlier version without its
/// proof, under `--prove-existing-tenants`, what it is once proven; for a tenant the operator
/// made that the Namespace cache does not show yet, what a read finds.
async fn cached_or_proven(ctx: &Context, pass: &mut Pass) -> Result<Tenant, Error> {
    let cached = cached_tenant(ctx, &pass.current);
    let proven = tenant::prove_if_earlier(
        &ctx.client,
        &pass.current,
        cached.as_deref(),
        &ctx.settings.ownership,
    )
    .await?;
    if let Some(found) = &proven {
        pass.tenant_found = Some(found.clone());
    }
    let state = proven.unwrap_or_else(|| cached_tenant_state(ctx, &pass.current));
    let own_writes = &ctx.caches.own_writes;
    if state != Tenant::Absent || !own_writes.tenant_made(&pass.current) {
        return Ok(state);
    }
    let found = Api::<Namespace>::all(ctx.client.clone())
        .get_opt(&tenant_namespace_of(&pass.current))
        .await?;
    let found = tenant::classify(found.as_ref(), &pass.current, &ctx.settings.ownership.key);
    if !found.is_owned() {
        own_writes.tenant_gone(&ObjectRef::from_obj(&pass.current));
    }
    pass.tenant_found = Some(found.clone());
    Ok(found)
}

/// What the cache shows at the tenant's name.
fn cached_tenant_state(ctx: &Context, partner: &Partner) -> Tenant {
    tenant::classify(
        cached_tenant(ctx, partner).as_deref(),
        partner,
        &ctx.settings.ownership.key,
    )
}

/// What [`delete`] found.
enum Deleting {
    /// The Partner is not being deleted (or no longer has the operator's finalizer).
    No,
    /// Nothing waits any more: the finalizer may go, with the Partner as written.
    Released(Box<Partner>),
    /// Its webhook events are still being delivered: the Partner is kept until they are (or
    /// are given up on, `retryHours` after a failure). Each delivery's record wakes it.
    Waiting(Action),
}

/// A Partner being deleted, as [`lifecycle::plan_deletion`] decides: the deletion recorded in
/// its status first (once), then its tenant deprovisioned, its Events told, and its webhook
/// events handed on; it keeps its finalizer until every event pending for an endpoint still
/// listed is delivered or given up on, so that no event is lost with the Partner.
async fn delete(
    api: &Api<Partner>,
    partner: &Partner,
    ctx: &Arc<Context>,
) -> Result<Deleting, Error> {
    let deleting = partner.metadata.deletion_timestamp.is_some()
        && partner.finalizers().iter().any(|f| f == FINALIZER);
    if !deleting {
        return Ok(Deleting::No);
    }
    // Only the Distributor the Partner is bound to is told (and waited for).
    let bound = ctx
        .caches
        .distributors
        .get(&ObjectRef::new(&partner.spec.distributor_ref.name))
        .filter(|d| ctx.namespace_allows(partner, Some(d)));
    let world = Kube { ctx, api };
    let now = world.now();
    let mut current = partner.clone();
    let delivered = ctx.outputs.webhooks.delivered.of(partner);
    let transacted = world
        .transact(&mut current, Persistence::Outcome, |partner, status| {
            let partner = delivered.recorded_on(partner);
            let plan = lifecycle::plan_deletion(&partner, bound.as_deref(), now);
            status.clone_from(&plan.status);
            plan
        })
        .await?;
    if transacted.written {
        settle_deliveries(ctx, &current);
    }
    let plan = transacted.value;
    if plan.delete_tenant {
        // The name derived from the Partner, whatever the status says; the namespace is
        // deleted only if it is this Partner's (`tenant::delete` checks).
        let found = tenant::delete(&ctx.client, partner, &ctx.settings.ownership).await?;
        if let Some(event) = plan.tenant_deleted(partner, &found) {
            world.publish(partner, &event);
        }
    }
    for event in &plan.events {
        world.publish(&current, event);
    }
    if !plan.releases() {
        for send in &plan.deliveries {
            world.deliver_webhook(&current, send);
        }
        return Ok(Deleting::Waiting(Action::requeue(DELETION_RECHECK)));
    }
    // A retained tenant is released before the Partner can go: no Partner resumes it.
    if !plan.delete_tenant {
        tenant::release(&ctx.client, partner, &ctx.settings.ownership, now).await?;
    }
    // Its billing is in the month's statement before the Partner can go.
    ctx.outputs.statements.record_deleted(&current).await?;
    record_next_deadline(ctx, partner, None);
    ctx.caches.own_writes.forget(&ObjectRef::from_obj(partner));
    ctx.caches
        .entitlements_read
        .forget(&tenant_namespace_of(partner));
    ctx.pacing.mail_slots.forget(&ObjectRef::from_obj(partner));
    ctx.outputs
        .webhooks
        .delivered
        .forget(&ObjectRef::from_obj(partner));
    ctx.recount(&partner.spec.distributor_ref.name);
    Ok(Deleting::Released(Box::new(current)))
}
