//! The Distributor reconciler: keeps `status.partners` and `status.billing` equal to what its
//! Partners' statuses say, and reports the Distributor Ready.
//!
//! Counts are read from the Partner cache through the index, never by listing. A Partner being
//! deleted no longer counts (its billing ended when its deletion began).

use std::sync::Arc;
use std::time::Duration;

use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};

use super::Context;
use crate::api::Distributor;
use crate::lifecycle::{self, DistributorPlan, Member};
use crate::metrics::{DistributorLabels, EndpointLabels, LevelLabels, SeatLabels};

/// How soon a count put off because the cache trailed one of the operator's writes is tried
/// again. While Partners onboard, some write is always that recent: every count scans all of
/// the Distributor's Partners, and five a second cost a sixth of the operator's CPU at 10,000
/// Partners (docs/performance.md). A count a second late is still current enough.
const LAGGING_RECHECK: Duration = Duration::from_secs(1);

/// A Distributor's count, on a worker of its own ([`super::on_workers`]).
pub async fn reconcile(
    distributor: Arc<Distributor>,
    ctx: Arc<Context>,
) -> Result<Action, kube::Error> {
    super::on_workers::on_workers(reconcile_in_place(distributor, ctx)).await
}

async fn reconcile_in_place(
    distributor: Arc<Distributor>,
    ctx: Arc<Context>,
) -> Result<Action, kube::Error> {
    if !ctx.synced() {
        return Ok(Action::requeue(Duration::from_millis(200)));
    }
    let started = std::time::Instant::now();
    let result = recount(&distributor, &ctx).await;
    ctx.outputs
        .metrics
        .observe_reconcile("distributor", started.elapsed(), result.is_err());
    if result.is_ok() {
        ctx.pacing
            .distributor_backoff
            .succeeded(&ObjectRef::from_obj(&*distributor));
    }
    result
}

pub fn error_policy(
    distributor: Arc<Distributor>,
    error: &kube::Error,
    ctx: Arc<Context>,
) -> Action {
    let reference = ObjectRef::from_obj(&*distributor);
    let wait = ctx.pacing.distributor_backoff.failed(&reference);
    tracing::warn!(distributor = %reference, %error, retry_in = ?wait, "distributor reconciliation failed");
    Action::requeue(wait)
}

async fn recount(distributor: &Distributor, ctx: &Context) -> Result<Action, kube::Error> {
    let name = distributor.name_any();
    // The cache is written before the index, so it holds every Partner the index names; should
    // that ever not hold, a short count would be a needless write that a later count undoes,
    // so look again shortly instead. The same when the cache trails a status the operator
    // wrote (the write that asked for this recount): counted on the older copy, the change
    // would go uncounted until some later change asked again.
    let members = ctx.caches.index.of_distributor(&name);
    let found: Vec<_> = members
        .iter()
        .filter_map(|r| ctx.caches.partners.get(r))
        .collect();
    if found.len() < members.len() {
        return Ok(Action::requeue(Duration::from_millis(200)));
    }
    if found.iter().any(|p| ctx.caches.own_writes.lags(p)) {
        return Ok(Action::requeue(LAGGING_RECHECK));
    }
    let members: Vec<Member> = found
        .iter()
        .map(|partner| Member {
            partner,
            bound: ctx.namespace_allows(partner, Some(distributor)),
        })
        .collect();
    let now = ctx.clock.timestamp();
    let plan = lifecycle::plan_distributor(distributor, &members, now);
    export_metrics(ctx, distributor, &plan);
    export_webhook_metrics(ctx, distributor, &plan);
    let changed = distributor.status.as_ref() != Some(&plan.status);
    // A change is written (and its Event told) once its interval is over; the count then is
    // the latest.
    if let Some(wait) = changed
        .then(|| ctx.outputs.recounts.write_wait(&name))
        .flatten()
    {
        return Ok(Action::requeue(wait));
    }
    if let Some((reason, message)) = &plan.event {
        let published = super::events::publish(
            &ctx.client,
            "partner-operator",
            distributor,
            *reason,
            message,
            ctx.clock.now(),
        )
        .await;
        if let Err(err) = published {
            tracing::warn!(error = %err, "could not record an Event");
        }
    }
    if changed {
        let api = Api::<Distributor>::all(ctx.client.clone());
        crate::status::write(&api, distributor, &plan.status, false).await?;
        ctx.outputs.recounts.wrote(&name);
    }
    Ok(Action::await_change())
}

/// The Distributor's gauges: Partners per level, billable Partners, seats per SKU.
fn export_metrics(ctx: &Context, distributor: &Distributor, plan: &DistributorPlan) {
    let metrics = &ctx.outputs.metrics;
    let name = distributor.name_any();
    let counts = plan.status.partners.clone().unwrap_or_default();
    let billing = plan.status.billing.clone().unwrap_or_default();
    for (level, count) in [
        ("Pending", counts.pending),
        ("Trial", counts.trial),
        ("Production", counts.production),
        ("Expired", counts.expired),
    ] {
        metrics
            .partners
            .get_or_create(&LevelLabels {
                distributor: name.to_string(),
                level: level.to_string(),
            })
            .set(i64::from(count));
    }
    metrics
        .billable_partners
        .get_or_create(&DistributorLabels {
            distributor: name.to_string(),
        })
        .set(i64::from(billing.production_partners));
    // Every SKU on offer, so a SKU whose last seat went away reads 0 rather than its last value.
    for sku in &distributor.spec.skus {
        let seats = billing.seats.get(&sku.0).copied().unwrap_or(0);
        metrics
            .seats
            .get_or_create(&SeatLabels {
                distributor: name.clone(),
                sku: sku.0.clone(),
            })
            .set(i64::from(seats));
    }
}

/// Each webhook endpoint's backlog: events pending, and the age of the oldest.
fn export_webhook_metrics(ctx: &Context, distributor: &Distributor, plan: &DistributorPlan) {
    let now = ctx.clock.now();
    for h in &plan.health {
        let labels = EndpointLabels {
            distributor: distributor.name_any(),
            endpoint: h.endpoint.clone(),
        };
        let metrics = &ctx.outputs.metrics;
        metrics
            .webhooks_pending
            .get_or_create(&labels)
            .set(i64::from(h.pending));
        let age = h
            .oldest
            .map_or(0.0, |t| (now - t).num_milliseconds().max(0) as f64 / 1000.0);
        metrics
            .webhooks_oldest_pending_seconds
            .get_or_create(&labels)
            .set(age);
    }
}
