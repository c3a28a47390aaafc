//! What a Distributor's status says: its Partners counted by level, their billing, and whether
//! its webhook endpoints are being delivered to. Pure, as [`super::plan`] is for a Partner.

use chrono::{DateTime, Utc};

use super::reasons::{self, EventReason};
use super::webhooks::{EndpointHealth, delivered_condition, endpoint_health};
use crate::api::{
    Distributor, DistributorStatus, Partner, SubscriptionLevel, distributor_totals, find_condition,
    set_condition, types,
};

/// One Partner that names the Distributor, as the operator observed it.
#[derive(Clone, Copy, Debug)]
pub struct Member<'a> {
    pub partner: &'a Partner,
    /// Whether the Partner's namespace is one the Distributor accepts.
    pub bound: bool,
}

/// What the Distributor's status should be.
#[derive(Clone, Debug, PartialEq)]
pub struct DistributorPlan {
    pub status: DistributorStatus,
    /// Each endpoint's backlog (empty without endpoints), for the metrics.
    pub health: Vec<EndpointHealth>,
    /// When `WebhooksDelivered` turned: the Event's reason and message.
    pub event: Option<(EventReason, String)>,
}

/// Decides the status of `distributor` over the Partners that name it, at `now`.
///
/// Counts come from the Partners' status, which whoever may write `partners/status` can write:
/// beyond `Pending` (a Partner naming this Distributor from anywhere), only bound Partners
/// count, so a status forged elsewhere bills nobody. A Partner being deleted no longer counts
/// (its billing ended when its deletion began), but its webhook events still wait.
pub fn plan_distributor(
    distributor: &Distributor,
    members: &[Member],
    now: DateTime<Utc>,
) -> DistributorPlan {
    let counted = members
        .iter()
        .filter(|m| m.partner.metadata.deletion_timestamp.is_none())
        .filter(|m| m.bound || pending(m.partner))
        .filter_map(|m| m.partner.status.as_ref());
    let (counts, billing) = distributor_totals(&distributor.spec.skus, counted);
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
        now,
    );
    let (health, event) = webhooks_delivered(distributor, members, &mut status, now);
    DistributorPlan {
        status,
        health,
        event,
    }
}

/// The `WebhooksDelivered` condition (when the Distributor has endpoints), from the bound
/// Partners only: an unbound one is sent nothing, and what its status says of deliveries is
/// not the Distributor's. The Event when the condition turns.
fn webhooks_delivered(
    distributor: &Distributor,
    members: &[Member],
    status: &mut DistributorStatus,
    now: DateTime<Utc>,
) -> (Vec<EndpointHealth>, Option<(EventReason, String)>) {
    if distributor.spec.webhooks.endpoints.is_empty() {
        status
            .conditions
            .retain(|c| c.type_ != types::WEBHOOKS_DELIVERED);
        return (Vec::new(), None);
    }
    let bound = members
        .iter()
        .filter(|m| m.bound)
        .filter_map(|m| m.partner.status.as_ref());
    let health = endpoint_health(distributor, bound);
    let (ok, reason, message) = delivered_condition(&health);
    let was =
        find_condition(&status.conditions, types::WEBHOOKS_DELIVERED).map(|c| c.status == "True");
    set_condition(
        &mut status.conditions,
        types::WEBHOOKS_DELIVERED,
        ok,
        reason,
        &message,
        status.observed_generation,
        now,
    );
    let event = match (was, ok) {
        (Some(true) | None, false) => Some(EventReason::WebhookDeliveryFailing),
        (Some(false), true) => Some(EventReason::WebhookDeliveryRecovered),
        _ => None,
    };
    (health, event.map(|reason| (reason, message)))
}

/// Whether `partner`'s status says it is not (yet) on any level.
fn pending(partner: &Partner) -> bool {
    partner
        .status
        .as_ref()
        .is_none_or(|s| s.subscription_level.unwrap_or_default() == SubscriptionLevel::Pending)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::PartnerStatus;
    use crate::lifecycle::fixtures::{distributor, partner, t0};

    /// A Partner on `level` whose status says it is bound (as the operator writes it).
    fn at(level: SubscriptionLevel) -> Partner {
        let mut p = partner();
        let mut status = PartnerStatus {
            subscription_level: Some(level),
            ..Default::default()
        };
        set_condition(
            &mut status.conditions,
            types::DISTRIBUTOR_BOUND,
            true,
            "Bound",
            "",
            None,
            t0(),
        );
        p.status = Some(status);
        p
    }

    #[test]
    fn only_bound_partners_count_beyond_pending_and_the_deleted_not_at_all() {
        let d = distributor();
        let (trial, production, pending) = (
            at(SubscriptionLevel::Trial),
            at(SubscriptionLevel::Production),
            at(SubscriptionLevel::Pending),
        );
        let mut deleting = at(SubscriptionLevel::Trial);
        deleting.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::from_second(t0().timestamp()).unwrap(),
            ));
        let members = [
            Member {
                partner: &trial,
                bound: true,
            },
            Member {
                partner: &production,
                bound: false,
            },
            Member {
                partner: &pending,
                bound: false,
            },
            Member {
                partner: &deleting,
                bound: true,
            },
        ];
        let plan = plan_distributor(&d, &members, t0());
        let counts = plan.status.partners.unwrap();
        assert_eq!((counts.trial, counts.production, counts.pending), (1, 0, 1));
        let ready = find_condition(&plan.status.conditions, types::READY).unwrap();
        assert_eq!(ready.status, "True");
        assert!(plan.health.is_empty() && plan.event.is_none());
    }
}
