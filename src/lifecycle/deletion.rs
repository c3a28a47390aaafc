//! What deleting a Partner comes to: a chain of its own, as [`super::plan`] is for a live
//! Partner. The deletion is recorded once (its billing ends, its Distributor's webhooks are
//! told), the Partner is kept while those events wait for delivery, its tenant is deprovisioned
//! as `deletionPolicy` says, and then it may go.

use chrono::{DateTime, Utc};

use super::reasons::EventReason;
use super::{PartnerEvent, WebhookSend, webhooks};
use crate::api::grammar::Zulu;
use crate::api::{DeletionPolicy, Distributor, Partner, PartnerStatus};
use crate::tenant::{Tenant, tenant_namespace_of};

/// What deleting a Partner comes to at one look.
#[derive(Clone, Debug, PartialEq)]
pub struct DeletionPlan {
    /// Written before anything else: the deletion recorded, and while webhook events wait,
    /// the condition that says so.
    pub status: PartnerStatus,
    /// Events to record once the status is written, whatever the tenant's deletion finds.
    pub events: Vec<PartnerEvent>,
    /// Delete the tenant namespace (if it is this Partner's; the deletion checks). It goes at
    /// once, even while webhook events wait.
    pub delete_tenant: bool,
    /// The webhook events still to deliver; the Partner keeps its finalizer while there are
    /// any.
    pub deliveries: Vec<WebhookSend>,
}

impl DeletionPlan {
    /// Whether nothing waits any more: the finalizer may go.
    pub fn releases(&self) -> bool {
        self.deliveries.is_empty()
    }

    /// The Event that tells what deleting the tenant found. While the Partner is kept for its
    /// webhook deliveries it is looked at again, so only a deletion made now is told.
    pub fn tenant_deleted(&self, partner: &Partner, found: &Tenant) -> Option<PartnerEvent> {
        let told = self.releases() || matches!(found, Tenant::Owned(_));
        told.then(|| deprovisioned(partner, found)).flatten()
    }
}

/// One step of the deletion chain.
type Step = fn(&Partner, Option<&Distributor>, DateTime<Utc>, &mut DeletionPlan) -> Flow;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flow {
    Next,
    Stop,
}

/// The steps of [`plan_deletion`], in order.
const CHAIN: [Step; 3] = [record_once, await_webhooks, let_go];

/// Decides what deleting `partner` comes to at `now`; `bound`: the Distributor it is bound to
/// (only that one is told, and waited for).
pub fn plan_deletion(
    partner: &Partner,
    bound: Option<&Distributor>,
    now: DateTime<Utc>,
) -> DeletionPlan {
    let mut plan = DeletionPlan {
        status: partner.status.clone().unwrap_or_default(),
        events: Vec::new(),
        delete_tenant: partner.spec.tenant.deletion_policy == DeletionPolicy::Delete,
        deliveries: Vec::new(),
    };
    for step in CHAIN {
        if step(partner, bound, now, &mut plan) == Flow::Stop {
            break;
        }
    }
    plan
}

/// The deletion is recorded once (`status.deletedAt`): billing ends, and the bound
/// Distributor's webhook events of the end are recorded.
fn record_once(
    partner: &Partner,
    bound: Option<&Distributor>,
    now: DateTime<Utc>,
    plan: &mut DeletionPlan,
) -> Flow {
    if plan.status.deleted_at.is_some() {
        return Flow::Next;
    }
    let ended = webhooks::record_deletion(&mut plan.status, now);
    webhooks::record_deletion_events(&mut plan.status, partner, bound, ended.is_some(), now);
    plan.events.extend(ended);
    Flow::Next
}

/// While the bound Distributor's endpoints still wait for events (each verified against the
/// Partner's facts), the Partner is kept, and `Ready` says why.
fn await_webhooks(
    partner: &Partner,
    bound: Option<&Distributor>,
    now: DateTime<Utc>,
    plan: &mut DeletionPlan,
) -> Flow {
    let Some(distributor) = bound else {
        return Flow::Next;
    };
    let deliveries = webhooks::due_verified(partner, &plan.status, distributor);
    if deliveries.is_empty() {
        return Flow::Next;
    }
    webhooks::deletion_waits(
        &mut plan.status,
        &deliveries,
        partner.metadata.generation,
        now,
    );
    plan.deliveries = deliveries;
    Flow::Stop
}

/// Nothing waits: a retained tenant is said, and billing still running (a status written by
/// someone else after the deletion was recorded) ends now.
fn let_go(
    partner: &Partner,
    _bound: Option<&Distributor>,
    now: DateTime<Utc>,
    plan: &mut DeletionPlan,
) -> Flow {
    if !plan.delete_tenant && plan.status.tenant.is_some() {
        let namespace = tenant_namespace_of(partner);
        plan.events.push(PartnerEvent {
            reason: EventReason::TenantRetained,
            message: format!(
                "tenant namespace {namespace} kept (spec.tenant.deletionPolicy: Retain) and \
                 released: no Partner resumes it"
            ),
        });
    }
    if let Some(billing) = plan
        .status
        .billing
        .as_mut()
        .filter(|b| b.ended_at.is_none())
    {
        billing.end(now);
        plan.events.push(PartnerEvent {
            reason: EventReason::BillingEnded,
            message: format!(
                "billing to {} ended on {}: the Partner was deleted",
                billing.billed_to,
                now.zulu()
            ),
        });
    }
    Flow::Next
}

/// What deleting the tenant namespace found, said in an Event: deleted (or going already), or
/// not this Partner's and left alone. Nothing when there was none.
pub fn deprovisioned(partner: &Partner, found: &Tenant) -> Option<PartnerEvent> {
    let namespace = tenant_namespace_of(partner);
    match found {
        Tenant::Owned(_) | Tenant::Terminating => Some(PartnerEvent {
            reason: EventReason::TenantDeprovisioned,
            message: format!("tenant namespace {namespace} deleted"),
        }),
        Tenant::Taken => Some(PartnerEvent {
            reason: EventReason::TenantNamespaceTaken,
            message: format!("namespace {namespace} is not owned by this Partner: not deleted"),
        }),
        Tenant::Absent => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{partner, t0};
    use super::*;
    use crate::api::BillingStatus;

    fn billed_with_a_tenant() -> PartnerStatus {
        PartnerStatus {
            tenant: Some(crate::api::TenantStatus {
                id: "t".into(),
                namespace: "ns".into(),
                provisioned_at: t0(),
            }),
            billing: Some(BillingStatus {
                billed_to: "northwind".into(),
                started_at: t0(),
                ended_at: None,
                periods: vec![],
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_deleted_partner_deletes_its_tenant_unless_retained_and_ends_its_billing_once() {
        let mut p = partner();
        let plan = plan_deletion(&p, None, t0());
        assert!(plan.delete_tenant && plan.events.is_empty() && plan.releases());
        assert_eq!(plan.status.deleted_at, Some(t0()));

        p.spec.tenant.deletion_policy = DeletionPolicy::Retain;
        p.status = Some(billed_with_a_tenant());
        let plan = plan_deletion(&p, None, t0());
        assert!(!plan.delete_tenant);
        let reasons: Vec<_> = plan.events.iter().map(|e| e.reason).collect();
        assert_eq!(
            reasons,
            [EventReason::BillingEnded, EventReason::TenantRetained]
        );
        assert_eq!(plan.status.billing.as_ref().unwrap().ended_at, Some(t0()));
        // Looked at again later: recorded once, nothing ends twice.
        p.status = Some(plan.status);
        let again = plan_deletion(&p, None, t0() + chrono::Duration::days(1));
        assert_eq!(again.status, p.status.clone().unwrap());
        assert_eq!(
            again.events.len(),
            1,
            "only the retained tenant is said again"
        );
    }

    #[test]
    fn billing_that_runs_again_after_the_deletion_was_recorded_ends_when_it_goes() {
        let mut p = partner();
        let mut status = billed_with_a_tenant();
        status.deleted_at = Some(t0());
        p.status = Some(status);
        let plan = plan_deletion(&p, None, t0() + chrono::Duration::hours(1));
        assert_eq!(plan.events[0].reason, EventReason::BillingEnded);
        assert_eq!(
            plan.status.billing.unwrap().ended_at,
            Some(t0() + chrono::Duration::hours(1))
        );
    }

    #[test]
    fn a_tenant_deleted_as_the_partner_goes_is_told_whatever_was_found() {
        let p = partner();
        let releasing = plan_deletion(&p, None, t0());
        for (found, told) in [
            (Tenant::Owned("u".into()), true),
            (Tenant::Terminating, true),
            (Tenant::Taken, true),
            (Tenant::Absent, false),
        ] {
            assert_eq!(
                releasing.tenant_deleted(&p, &found).is_some(),
                told,
                "{found:?}"
            );
        }
    }

    #[test]
    fn what_the_tenant_deletion_found_is_said() {
        let p = partner();
        let said = |found| deprovisioned(&p, &found).map(|e| e.reason);
        assert_eq!(
            said(Tenant::Owned("u".into())),
            Some(EventReason::TenantDeprovisioned)
        );
        assert_eq!(
            said(Tenant::Terminating),
            Some(EventReason::TenantDeprovisioned)
        );
        assert_eq!(said(Tenant::Taken), Some(EventReason::TenantNamespaceTaken));
        assert_eq!(said(Tenant::Absent), None);
    }
}
