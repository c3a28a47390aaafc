//! The Partner reconciler: observe, plan ([`lifecycle::plan`] decides everything), write the
//! status the plan gives, carry out its effects, record what they did, look again when the plan
//! says. Nothing here decides what happens to a Partner; it decides only how writes are made
//! safely.
//!
//! Exactly-once email rests on three rules:
//! - the intent is written to `status.emails` (with a resourceVersion precondition) *before* the
//!   email goes out, so after a crash the same email is retried with the same Message-ID;
//! - an email is only sent from a Partner read fresh from the API server (the status the
//!   operator just wrote, or a GET), never from a cache that may not yet show a delivery;
//! - recording the delivery is retried on conflicts and transient API errors, because a
//!   delivery that is not recorded would be repeated.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::Namespace;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};
use tracing::{debug, info, warn};

use super::mail_send;
use super::webhook_delivery::WebhookDeliveries;
use super::{Context, FINALIZER};
use crate::api::{Counted, Partner, PartnerStatus};
use crate::lifecycle::{self, ActivationToken, Effect, Observation, Outcome, Plan};
use crate::mail::MailError;
use crate::status::{self, Persistence, Writer};
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
}

/// Plans per reconciliation at most; each step performs effects that the next plan sees.
const MAX_STEPS: usize = 8;
/// How soon a reconciliation that found no free mail slot looks again, if nothing wakes it.
const MAIL_SLOT_RETRY: Duration = Duration::from_secs(2);
/// How often a Partner kept for its webhook deliveries is looked at without being woken.
const DELETION_RECHECK: Duration = Duration::from_secs(60);
/// Added to every requeue at a deadline, so Partners that share a deadline spread a little.
const MAX_JITTER: Duration = Duration::from_millis(50);

pub async fn reconcile(partner: Arc<Partner>, ctx: Arc<Context>) -> Result<Action, Error> {
    if !ctx.synced() {
        return Ok(Action::requeue(Duration::from_millis(200)));
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
        if ctx.unreadable_distributors.contains(distributor) {
            return Ok(Action::await_change());
        }
        let partner = match delete(&api, &partner, &ctx).await? {
            Deleting::No => partner,
            Deleting::Released(current) => Arc::new(*current),
            Deleting::Waiting(action) => return Ok(action),
        };
        // The finalizer is added before anything else is done, and removed once the deletion
        // released the Partner.
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
    ctx.metrics
        .observe_reconcile("partner", started.elapsed(), result.is_err());
    if result.is_ok() {
        ctx.partner_backoff.succeeded(&reference);
    }
    result
}

pub fn error_policy(partner: Arc<Partner>, error: &Error, ctx: Arc<Context>) -> Action {
    let wait = ctx.partner_backoff.failed(&ObjectRef::from_obj(&*partner));
    warn!(
        partner = %ObjectRef::from_obj(&*partner),
        error = %error,
        retry_in = ?wait,
        "reconciliation failed"
    );
    Action::requeue(wait)
}

/// What one reconciliation knows beyond the cache, which may lag behind its own writes.
struct Pass {
    /// The Partner as last read or written.
    current: Partner,
    /// Whether `current` came from the API server in this reconciliation (not from the cache).
    fresh: bool,
    /// What this reconciliation found at the tenant's name.
    tenant_found: Option<Tenant>,
    /// What this reconciliation wrote to the tenant's `entitlements`.
    entitlements_written: Option<BTreeMap<String, String>>,
    /// Taken before the fresh read that precedes sending, held until this reconciliation ends
    /// (the emails sent and recorded).
    mail_slot: Option<super::mail_slots::MailSlot>,
}

/// What follows the effects of one plan.
pub(super) enum Next {
    /// Plan again on what the effects changed.
    PlanAgain,
    /// Nothing left to do: look again when the plan says.
    Done,
    /// Come back later (a mail slot, or the emails' own pass).
    Requeue(Duration),
}

async fn apply(api: &Api<Partner>, cached: &Partner, ctx: &Arc<Context>) -> Result<Action, Error> {
    let mut pass = Pass {
        current: cached.clone(),
        fresh: false,
        tenant_found: None,
        entitlements_written: None,
        mail_slot: None,
    };
    for _ in 0..MAX_STEPS {
        // What is at the tenant's name: found by this reconciliation, else as the cache shows.
        let at_tenant_name = match pass.tenant_found.clone() {
            Some(found) => found,
            None => cached_or_proven(ctx, &mut pass).await?,
        };
        let version = pass.current.resource_version();
        let entitlements_written = pass.entitlements_written.clone();
        // Planned on the Partner as stored: a conflict plans again on what was written meanwhile.
        let transacted = status::transact(
            api,
            &mut pass.current,
            Writer::Operator,
            Persistence::Recomputed,
            |partner, status| {
                let plan = plan_for(ctx, partner, &at_tenant_name, entitlements_written.as_ref());
                status.clone_from(&plan.status);
                plan
            },
        )
        .await?;
        if transacted.written {
            crate::crash_points::pass("after-status-write");
        }
        pass.fresh |= pass.current.resource_version() != version;
        let plan = transacted.value;
        publish_events(ctx, &pass.current, &plan).await;
        start_webhooks(ctx, &pass.current, &plan);
        let action = match carry_out(api, ctx, &mut pass, &plan).await? {
            Next::PlanAgain => continue,
            Next::Done => {
                ctx.mail_slots.forget(&ObjectRef::from_obj(&pass.current));
                look_again(ctx, &plan)
            }
            Next::Requeue(after) => Action::requeue(after),
        };
        finish(ctx, cached, &pass.current, &plan);
        return Ok(action);
    }
    Err(Error::Unsettled)
}

/// The plan for `partner` as the caches, and what this reconciliation found and wrote, show it.
fn plan_for(
    ctx: &Context,
    partner: &Partner,
    at_tenant_name: &Tenant,
    entitlements_written: Option<&BTreeMap<String, String>>,
) -> Plan {
    let distributor = ctx
        .distributors
        .get(&ObjectRef::new(&partner.spec.distributor_ref.name));
    let cached_entitlements = cached_entitlements(ctx, partner);
    lifecycle::plan(&Observation {
        partner,
        distributor: distributor.as_deref(),
        namespace_allowed: ctx.namespace_allows(partner, distributor.as_deref()),
        tenant_exists: at_tenant_name.is_owned(),
        tenant_taken: *at_tenant_name == Tenant::Taken,
        entitlements: entitlements_written.or(cached_entitlements.as_ref()),
        default_activation_base_url: ctx.activation_base_url.as_deref(),
        now: ctx.clock.timestamp(),
    })
}

/// A transition's Events (e.g. ConvertedToProduction and BillingStarted) go out together.
async fn publish_events(ctx: &Context, partner: &Partner, plan: &Plan) {
    let events = plan.effects.iter().filter_map(|effect| match effect {
        Effect::Event(event) => Some(event),
        _ => None,
    });
    futures::future::join_all(events.map(|event| {
        info!(partner = %ObjectRef::from_obj(partner), reason = %event.reason, "{}", event.message);
        ctx.publish(partner, event)
    }))
    .await;
}

/// Hands the plan's webhook deliveries to their own tasks: nothing here waits for them.
fn start_webhooks(ctx: &Arc<Context>, partner: &Partner, plan: &Plan) {
    for effect in &plan.effects {
        if let Effect::DeliverWebhook(send) = effect {
            WebhookDeliveries::start(ctx, partner, send);
        }
    }
}

/// Performs the plan's writes in order (its Events are out already). The tenant is written
/// before any email waits for a mail slot: a slow mail server delays only the mail.
async fn carry_out(
    api: &Api<Partner>,
    ctx: &Context,
    pass: &mut Pass,
    plan: &Plan,
) -> Result<Next, Error> {
    let writes = plan
        .effects
        .iter()
        .any(|e| !matches!(e, Effect::Event(_) | Effect::DeliverWebhook(_)));
    if !writes {
        return Ok(Next::Done);
    }
    for effect in &plan.effects {
        match effect {
            Effect::Event(_) | Effect::DeliverWebhook(_) => {}
            Effect::EnsureTenant { restore_activation } => {
                let found = ensure_tenant(ctx, &pass.current, restore_activation.as_ref()).await?;
                let owned = found.is_owned();
                pass.tenant_found = Some(found);
                if !owned {
                    // Plan again on what was found: nothing goes into a tenant not this one's.
                    return Ok(Next::PlanAgain);
                }
                pass.entitlements_written = written_entitlements(&pass.current);
            }
            Effect::IssueActivation(token) => {
                // The token is stored right before its email, under the same mail slot: a
                // Partner waiting for a slot writes nothing meanwhile.
                if let Some(next) = ready_to_send(api, ctx, pass).await? {
                    return Ok(next);
                }
                let found = issue_activation(ctx, &pass.current, token).await?;
                if !found.is_owned() {
                    // No link goes out whose token hash is not stored in the Partner's tenant.
                    pass.tenant_found = Some(found);
                    return Ok(Next::PlanAgain);
                }
            }
            Effect::SendEmail(email) => {
                if let Some(next) = ready_to_send(api, ctx, pass).await? {
                    return Ok(next);
                }
                if let Some(next) = mail_send::send(api, &mut pass.current, ctx, email).await? {
                    return Ok(next);
                }
            }
            Effect::SendEmailsNextPass => return Ok(Next::Requeue(Duration::ZERO)),
        }
    }
    Ok(Next::PlanAgain)
}

/// Creates the tenant the status describes, or keeps it current; what it found at the tenant's
/// name. A namespace of this Partner's that is being deleted is an error: retried with backoff,
/// and its deletion wakes the Partner anyway.
async fn ensure_tenant(
    ctx: &Context,
    current: &Partner,
    restore_activation: Option<&ActivationToken>,
) -> Result<Tenant, Error> {
    let status = current.status.clone().unwrap_or_default();
    let token = restore_activation.map(|t| {
        (
            token(ctx, current, &t.message_id),
            t.expires_at,
            superseded_hashes(ctx, current, t),
        )
    });
    let found = tenant::ensure(
        &ctx.client,
        current,
        &status,
        cached_tenant(ctx, current).as_deref(),
        &ctx.ownership,
        token
            .as_ref()
            .map(|(token, expires_at, superseded)| tenant::IssuedToken {
                token,
                expires_at: *expires_at,
                superseded,
            }),
    )
    .await?;
    if found == Tenant::Terminating {
        return Err(Error::TenantTerminating(tenant_namespace_of(current)));
    }
    Ok(found)
}

/// Stores the hash of the activation token in the tenant; what it found at the tenant's name.
async fn issue_activation(
    ctx: &Context,
    current: &Partner,
    activation: &ActivationToken,
) -> Result<Tenant, Error> {
    let status = current.status.clone().unwrap_or_default();
    let superseded = superseded_hashes(ctx, current, activation);
    Ok(tenant::store_activation(
        &ctx.client,
        current,
        &status,
        cached_tenant(ctx, current).as_deref(),
        &ctx.ownership,
        tenant::IssuedToken {
            token: &token(ctx, current, &activation.message_id),
            expires_at: activation.expires_at,
            superseded: &superseded,
        },
    )
    .await?)
}

/// The hashes of the tokens of the activation emails `activation` replaces.
fn superseded_hashes(
    ctx: &Context,
    partner: &Partner,
    activation: &ActivationToken,
) -> Vec<String> {
    activation
        .superseded
        .iter()
        .map(|id| tenant::token_hash(&token(ctx, partner, id)))
        .collect()
}

/// The activation token of the email `message_id`: the same on every copy of that email.
pub(super) fn token(ctx: &Context, partner: &Partner, message_id: &str) -> String {
    ctx.activation_key
        .token(&partner.uid().unwrap_or_default(), message_id)
}

/// Before the first email of a pass (or its activation token): a mail slot (else the Partner steps aside until one
/// frees), then a fresh read of the Partner (a cached status may not show an email that went
/// out already; the plan is made again on what is stored).
async fn ready_to_send(
    api: &Api<Partner>,
    ctx: &Context,
    pass: &mut Pass,
) -> Result<Option<Next>, Error> {
    if pass.mail_slot.is_none() {
        let reference = ObjectRef::from_obj(&pass.current);
        let deadlines_due = ctx.deadlines.any_due(ctx.clock.timestamp());
        match ctx.mail_slots.try_take(&reference, deadlines_due) {
            Some(slot) => pass.mail_slot = Some(slot),
            None => {
                debug!(partner = %reference, "waiting for a mail slot");
                // Woken when a slot frees; the requeue only covers a wake-up that another
                // reconciliation of this Partner consumed.
                return Ok(Some(Next::Requeue(MAIL_SLOT_RETRY)));
            }
        }
    }
    if !pass.fresh {
        pass.current = api.get_status(&pass.current.name_any()).await?;
        pass.fresh = true;
        return Ok(Some(Next::PlanAgain));
    }
    Ok(None)
}

/// Metrics, and a recount of the Distributor when how this Partner counts there moved.
fn finish(ctx: &Context, before: &Partner, after: &Partner, plan: &Plan) {
    record_next_deadline(ctx, after, plan.next_review);
    let counted = |p: &Partner| p.status.as_ref().map(Counted::of);
    if counted(before) != counted(after) {
        ctx.recount(&after.spec.distributor_ref.name);
    }
}

/// The Partner's next deadline (`None`: it has none), where mail slots and metrics read it.
fn record_next_deadline(ctx: &Context, partner: &Partner, at: Option<DateTime<Utc>>) {
    ctx.deadlines.set(&ObjectRef::from_obj(partner), at);
    ctx.metrics.set_next_deadline(
        &partner.namespace().unwrap_or_default(),
        &partner.name_any(),
        at,
    );
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

/// The `data` of the tenant's `entitlements` ConfigMap as the cache has it.
fn cached_entitlements(ctx: &Context, partner: &Partner) -> Option<BTreeMap<String, String>> {
    let reference = ObjectRef::new(tenant::ENTITLEMENTS).within(&tenant_namespace_of(partner));
    ctx.entitlements
        .get(&reference)
        .map(|cm| cm.data.clone().unwrap_or_default())
}

/// What [`tenant::ensure`] just wrote for `partner`'s status.
fn written_entitlements(partner: &Partner) -> Option<BTreeMap<String, String>> {
    tenant::entitlements_data(partner, partner.status.as_ref()?)
}

/// What the cache shows at the tenant's name; for a tenant of an earlier version without its
/// proof, under `--prove-existing-tenants`, what it is once proven.
async fn cached_or_proven(ctx: &Context, pass: &mut Pass) -> Result<Tenant, Error> {
    let cached = cached_tenant(ctx, &pass.current);
    let proven = tenant::prove_if_earlier(
        &ctx.client,
        &pass.current,
        cached.as_deref(),
        &ctx.ownership,
    )
    .await?;
    if let Some(found) = &proven {
        pass.tenant_found = Some(found.clone());
    }
    Ok(proven.unwrap_or_else(|| cached_tenant_state(ctx, &pass.current)))
}

/// What the cache shows at the tenant's name.
fn cached_tenant_state(ctx: &Context, partner: &Partner) -> Tenant {
    tenant::classify(
        cached_tenant(ctx, partner).as_deref(),
        partner,
        &ctx.ownership.key,
    )
}

/// The Namespace by the name of the Partner's tenant (derived from the Partner, not read from
/// its status) as the cache has it.
fn cached_tenant(ctx: &Context, partner: &Partner) -> Option<Arc<Namespace>> {
    ctx.namespaces
        .get(&ObjectRef::new(&tenant_namespace_of(partner)))
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
        .distributors
        .get(&ObjectRef::new(&partner.spec.distributor_ref.name))
        .filter(|d| ctx.namespace_allows(partner, Some(d)));
    let now = ctx.clock.timestamp();
    let mut current = partner.clone();
    let plan = status::transact(
        api,
        &mut current,
        Writer::Operator,
        Persistence::Outcome,
        |partner, status| {
            let plan = lifecycle::plan_deletion(partner, bound.as_deref(), now);
            status.clone_from(&plan.status);
            plan
        },
    )
    .await?
    .value;
    if plan.delete_tenant {
        // The name derived from the Partner, whatever the status says; the namespace is
        // deleted only if it is this Partner's (`tenant::delete` checks).
        let found = tenant::delete(&ctx.client, partner, &ctx.ownership).await?;
        let outcome = Outcome::TenantDeleted {
            partner,
            found: &found,
            waiting: !plan.releases(),
        };
        if let Some(event) = lifecycle::record_outcome(&mut PartnerStatus::default(), &outcome) {
            ctx.publish(partner, &event).await;
        }
    }
    for event in &plan.events {
        ctx.publish(&current, event).await;
    }
    if !plan.releases() {
        for send in &plan.deliveries {
            WebhookDeliveries::start(ctx, &current, send);
        }
        return Ok(Deleting::Waiting(Action::requeue(DELETION_RECHECK)));
    }
    record_next_deadline(ctx, partner, None);
    ctx.mail_slots.forget(&ObjectRef::from_obj(partner));
    ctx.recount(&partner.spec.distributor_ref.name);
    Ok(Deleting::Released(Box::new(current)))
}
