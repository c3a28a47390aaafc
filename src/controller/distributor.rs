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
use crate::api::{Distributor, DistributorStatus, distributor_totals, set_condition, types};
use crate::lifecycle::{self, EventReason, reasons};
use crate::metrics::{DistributorLabels, EndpointLabels, LevelLabels, SeatLabels};

pub async fn reconcile(
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

/// Whether `partner`'s status says it is not (yet) on any level.
fn pending(partner: &crate::api::Partner) -> bool {
    partner.status.as_ref().is_none_or(|s| {
        s.subscription_level.unwrap_or_default() == crate::api::SubscriptionLevel::Pending
    })
}

async fn recount(distributor: &Distributor, ctx: &Context) -> Result<Action, kube::Error> {
    let name = distributor.name_any();
    // The cache is written before the index, so it holds every Partner the index names; should
    // that ever not hold, a short count would be a needless write that a later count undoes,
    // so look again shortly instead.
    let members = ctx.caches.index.of_distributor(&name);
    let found: Vec<_> = members
        .iter()
        .filter_map(|r| ctx.caches.partners.get(r))
        .collect();
    if found.len() < members.len() {
        return Ok(Action::requeue(Duration::from_millis(200)));
    }
    let partners: Vec<_> = found
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .cloned()
        .collect();
    // Counted from the Partners' status, which whoever may write `partners/status` can write:
    // beyond `Pending` (a Partner naming this Distributor from anywhere), only Partners in a
    // namespace this Distributor accepts count, so a status forged elsewhere bills nobody.
    let (counts, billing) = distributor_totals(
        &distributor.spec.skus,
        partners
            .iter()
            .filter(|p| pending(p) || ctx.namespace_allows(p, Some(distributor)))
            .filter_map(|p| p.status.as_ref()),
    );
    export_metrics(ctx, distributor, &counts, &billing);

    let before = distributor.status.clone().unwrap_or_default();
    let generation = distributor.metadata.generation;
    let mut status = DistributorStatus {
        observed_generation: generation,
        conditions: before.conditions.clone(),
        partners: Some(counts),
        billing: Some(billing),
    };
    set_condition(
        &mut status.conditions,
        types::READY,
        true,
        reasons::COUNTS_CURRENT,
        "spec accepted; partner counts and billing are current",
        generation,
        ctx.clock.timestamp(),
    );
    // A Partner being deleted still has events to deliver: the end of its billing, its deletion.
    webhooks_health(ctx, distributor, &found, &mut status, generation).await;
    if status != before {
        let api = Api::<Distributor>::all(ctx.client.clone());
        crate::status::write(&api, distributor, &status, false).await?;
    }
    Ok(Action::await_change())
}

/// The `WebhooksDelivered` condition (when the Distributor has endpoints), the webhook gauges,
/// and an Event when the condition turns.
async fn webhooks_health(
    ctx: &Context,
    distributor: &Distributor,
    partners: &[Arc<crate::api::Partner>],
    status: &mut DistributorStatus,
    generation: Option<i64>,
) {
    if distributor.spec.webhooks.endpoints.is_empty() {
        status
            .conditions
            .retain(|c| c.type_ != types::WEBHOOKS_DELIVERED);
        return;
    }
    // Only the Partners bound to it: an unbound one is sent nothing, and what its status says
    // of deliveries (anyone with `partners/status` there may write it) is not the Distributor's.
    let health = lifecycle::webhooks::endpoint_health(
        distributor,
        partners
            .iter()
            .filter(|p| ctx.namespace_allows(p, Some(distributor)))
            .filter_map(|p| p.status.as_ref()),
    );
    let now = ctx.clock.now();
    for h in &health {
        let labels = EndpointLabels {
            distributor: distributor.name_any(),
            endpoint: h.endpoint.clone(),
        };
        ctx.outputs
            .metrics
            .webhooks_pending
            .get_or_create(&labels)
            .set(i64::from(h.pending));
        let age = h
            .oldest
            .map_or(0.0, |t| (now - t).num_milliseconds().max(0) as f64 / 1000.0);
        ctx.outputs
            .metrics
            .webhooks_oldest_pending_seconds
            .get_or_create(&labels)
            .set(age);
    }
    let (ok, reason, message) = lifecycle::webhooks::delivered_condition(&health);
    let was = crate::api::find_condition(&status.conditions, types::WEBHOOKS_DELIVERED)
        .map(|c| c.status == "True");
    set_condition(
        &mut status.conditions,
        types::WEBHOOKS_DELIVERED,
        ok,
        reason,
        &message,
        generation,
        ctx.clock.timestamp(),
    );
    let event = match (was, ok) {
        (Some(true) | None, false) => Some(EventReason::WebhookDeliveryFailing),
        (Some(false), true) => Some(EventReason::WebhookDeliveryRecovered),
        _ => None,
    };
    if let Some(reason) = event {
        let published = super::events::publish(
            &ctx.client,
            "partner-operator",
            distributor,
            reason,
            &message,
            now,
        )
        .await;
        if let Err(err) = published {
            tracing::warn!(error = %err, "could not record an Event");
        }
    }
}

fn export_metrics(
    ctx: &Context,
    distributor: &Distributor,
    counts: &crate::api::PartnerCounts,
    billing: &crate::api::DistributorBilling,
) {
    let metrics = &ctx.outputs.metrics;
    let name = distributor.name_any();
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
