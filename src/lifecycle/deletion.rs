//! What deleting a Partner does: its tenant is deprovisioned as `deletionPolicy` says, and its
//! billing ends.

use chrono::{DateTime, Utc};

use super::PartnerEvent;
use super::reasons::EventReason;
use crate::api::{DeletionPolicy, Partner, PartnerStatus};
use crate::tenant::{Tenant, tenant_namespace_of};

/// The decisions about a Partner being deleted.
#[derive(Clone, Debug, PartialEq)]
pub struct Deletion {
    /// Delete the tenant namespace (if it is this Partner's; the deletion checks).
    pub delete_tenant: bool,
    /// Events to record whatever the deletion finds.
    pub events: Vec<PartnerEvent>,
    /// The billing period ends now: the status change is [`end_billing`], then this Event.
    pub billing_ended: Option<PartnerEvent>,
}

/// Decides what deleting `partner` at `now` does.
pub fn deletion(partner: &Partner, now: DateTime<Utc>) -> Deletion {
    let status = partner.status.clone().unwrap_or_default();
    let namespace = tenant_namespace_of(partner);
    let policy = partner.spec.tenant.deletion_policy;
    let mut events = Vec::new();
    if policy == DeletionPolicy::Retain && status.tenant.is_some() {
        events.push(PartnerEvent {
            reason: EventReason::TenantRetained,
            message: format!(
                "tenant namespace {namespace} kept (spec.tenant.deletionPolicy: Retain)"
            ),
        });
    }
    let billing_ended = status
        .billing
        .as_ref()
        .filter(|b| b.ended_at.is_none())
        .map(|billing| PartnerEvent {
            reason: EventReason::BillingEnded,
            message: format!(
                "billing to {} ended on {}: the Partner was deleted",
                billing.billed_to,
                now.to_rfc3339()
            ),
        });
    Deletion {
        delete_tenant: policy == DeletionPolicy::Delete,
        events,
        billing_ended,
    }
}

/// The billing period ends at `at`, unless it ended already.
pub fn end_billing(status: &mut PartnerStatus, at: DateTime<Utc>) {
    if let Some(billing) = status.billing.as_mut() {
        billing.end(at);
    }
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

    #[test]
    fn a_deleted_partner_deletes_its_tenant_unless_retained_and_ends_its_billing() {
        let mut p = partner();
        let d = deletion(&p, t0());
        assert!(d.delete_tenant && d.events.is_empty() && d.billing_ended.is_none());

        p.spec.tenant.deletion_policy = DeletionPolicy::Retain;
        let mut status = PartnerStatus {
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
        };
        p.status = Some(status.clone());
        let d = deletion(&p, t0());
        assert!(!d.delete_tenant);
        assert_eq!(d.events[0].reason, EventReason::TenantRetained);
        assert_eq!(d.billing_ended.unwrap().reason, EventReason::BillingEnded);
        end_billing(&mut status, t0());
        end_billing(&mut status, t0() + chrono::Duration::days(1));
        assert_eq!(status.billing.unwrap().ended_at, Some(t0()), "ends once");
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
