//! Production: conversion, billing, and the end of Production.

use chrono::{DateTime, Utc};

use super::draft::{Draft, ProvisionedDraft};
use super::emails;
use super::reasons::EventReason;
use crate::api::grammar::Zulu;
use crate::api::{
    BillingPeriod, BillingStatus, EmailEvent, ProductionReason, ProductionStatus, RequestedLevel,
    SubscriptionLevel,
};

/// Whether a conversion by hand may happen now: `expirationDate`, if set, must lie in the
/// future. A date in the past is kept for the Ready condition and the Warning that refuse it.
pub(super) fn may_convert_by_hand<P>(d: &mut Draft<P>) -> bool {
    match d.partner.spec.subscription.expiration_date {
        Some(date) if date <= d.now => {
            d.refused_date = Some(date);
            false
        }
        _ => true,
    }
}

/// Converts to Production by hand, now; a running trial ends now.
pub(super) fn convert_by_hand(d: &mut ProvisionedDraft) {
    if !may_convert_by_hand(d) {
        return;
    }
    if d.level == SubscriptionLevel::Trial
        && let Some(trial) = d.status.trial.as_mut()
    {
        trial.ends_at = d.now;
    }
    convert(d, ProductionReason::Manual, d.now);
}

/// Enters Production at `since`: billing starts then, the `converted` email is recorded, and
/// two Events say so.
pub(super) fn convert(d: &mut ProvisionedDraft, reason: ProductionReason, since: DateTime<Utc>) {
    d.level = SubscriptionLevel::Production;
    d.status.production = Some(ProductionStatus { since, reason });
    emails::record(d, EmailEvent::Converted);
    d.event(
        EventReason::ConvertedToProduction,
        format!("converted to Production ({reason:?}) on {}", since.zulu()),
    );
    start_billing(d, since);
}

/// A Partner created as Production (its tenant provisioned while `level: Production` with no
/// date in the past) has no trial: Production and billing start with the tenant, and it is
/// never told of a trial or a conversion.
pub(super) fn start_in_production<P>(d: &mut Draft<P>) {
    d.level = SubscriptionLevel::Production;
    d.status.trial = None;
    d.status.production = Some(ProductionStatus {
        since: d.now,
        reason: ProductionReason::Manual,
    });
    let now = d.now;
    start_billing(d, now);
}

/// Starts billing at `since` (once: a `startedAt` already set never changes) and says so.
pub(super) fn start_billing<P>(d: &mut Draft<P>, since: DateTime<Utc>) {
    let billing = d.status.billing.get_or_insert_with(|| BillingStatus {
        billed_to: d.partner.spec.distributor_ref.name.clone(),
        started_at: since,
        ended_at: None,
        periods: vec![BillingPeriod {
            started_at: since,
            ended_at: None,
        }],
    });
    let message = format!(
        "billing to {} started on {}",
        billing.billed_to,
        billing.started_at.zulu()
    );
    d.event(EventReason::BillingStarted, message);
}

/// A trial that expired converts by hand as a running one does (never one whose Production
/// ended: that was a Production subscription, not a trial).
///
/// A trial that expired earlier in this plan is seen here too: it expired because a conversion
/// by hand was refused (or none was asked for), and the same date refuses it again.
pub(super) fn convert_expired_trial(d: &mut ProvisionedDraft) {
    let expired_trial = d.level == SubscriptionLevel::Expired && d.status.production.is_none();
    if expired_trial && d.partner.spec.subscription.level == RequestedLevel::Production {
        convert_by_hand(d);
    }
}

/// An expired Production subscription whose `expirationDate` is moved into the future is
/// renewed, now: Production again, a new billing period (the earlier ones are kept), an Event,
/// and an email to both parties. (So is one whose Production ended when it was unbound, once it
/// is bound again with a date still ahead.)
pub(super) fn renew(d: &mut ProvisionedDraft) {
    let Some(until) = d.partner.spec.subscription.expiration_date else {
        return;
    };
    let billing_ended = d
        .status
        .billing
        .as_ref()
        .is_some_and(|b| b.ended_at.is_some());
    let expired_production =
        d.level == SubscriptionLevel::Expired && d.status.production.is_some() && billing_ended;
    if !expired_production || until <= d.now {
        return;
    }
    let now = d.now;
    let billing = d.status.billing.as_mut().expect("billing ended");
    if billing.periods.is_empty() {
        // A status written before periods were kept: its one period first.
        billing.periods.push(BillingPeriod {
            started_at: billing.started_at,
            ended_at: billing.ended_at,
        });
    }
    billing.periods.push(BillingPeriod {
        started_at: now,
        ended_at: None,
    });
    billing.started_at = now;
    billing.ended_at = None;
    let billed_to = billing.billed_to.clone();
    d.level = SubscriptionLevel::Production;
    d.status.production = Some(ProductionStatus {
        since: now,
        reason: ProductionReason::Renewal,
    });
    emails::record(d, EmailEvent::Renewed);
    d.event(
        EventReason::ProductionRenewed,
        format!(
            "Production renewed on {} until {}",
            now.zulu(),
            until.zulu()
        ),
    );
    d.event(
        EventReason::BillingStarted,
        format!(
            "billing to {billed_to} started on {}: a new billing period",
            now.zulu()
        ),
    );
}

/// Production ends at `expirationDate` when it lies after the conversion (after an automatic
/// upgrade, the date that ended the trial does not also end Production). Until then that date
/// is a deadline.
pub(super) fn expire(d: &mut ProvisionedDraft) {
    if d.level != SubscriptionLevel::Production {
        return;
    }
    let since = d.status.production.as_ref().map_or(d.now, |p| p.since);
    let ends = d
        .partner
        .spec
        .subscription
        .expiration_date
        .filter(|date| *date > since);
    d.status.expires_at = ends;
    let Some(ends) = ends else {
        return;
    };
    if d.now < ends {
        d.deadlines.push(ends);
        return;
    }
    d.level = SubscriptionLevel::Expired;
    emails::record(d, EmailEvent::ProductionExpired);
    end(
        d,
        ends,
        EventReason::ProductionExpired,
        format!("Production subscription expired on {}", ends.zulu()),
        "",
    );
}

/// A Production Partner that lost its binding (its Distributor gone, or its namespace no longer
/// selected) is not billed to anyone, so it does not keep Production either: billing and the
/// Production entitlements end together, now, and the level becomes `Expired` (never a silent
/// count drop on the Distributor while the tenant still says Production). Its tenant's
/// entitlements follow, as for every unbound Partner with a tenant.
pub(super) fn end_unbound<P>(d: &mut Draft<P>, why: &str) {
    d.level = SubscriptionLevel::Expired;
    d.status.expires_at = None;
    let now = d.now;
    end(
        d,
        now,
        EventReason::ProductionEndedUnbound,
        format!("Production ended on {}: {why}", now.zulu()),
        ": the Partner is no longer bound to it",
    );
}

/// Production ends at `at`: the billing period ends then (once: an end already set stays), and
/// two Events say so, what ended Production and the billing's end (`billing_note` appended to
/// its message).
fn end<P>(
    d: &mut Draft<P>,
    at: DateTime<Utc>,
    why: EventReason,
    message: String,
    billing_note: &str,
) {
    let billed_to = match d.status.billing.as_mut() {
        Some(billing) => {
            billing.end(at);
            billing.billed_to.clone()
        }
        None => d.partner.spec.distributor_ref.name.clone(),
    };
    d.event(why, message);
    d.event(
        EventReason::BillingEnded,
        format!(
            "billing to {billed_to} ended on {}{billing_note}",
            at.zulu()
        ),
    );
}
