//! The tenant: its name is the Partner's alone, and it is provisioned once.

use super::draft::{BoundDraft, Provisioned, ProvisionedDraft};
use super::reasons::{self, EventReason};
use super::{Effect, Flow, import, production};
use crate::api::{
    RequestedLevel, SubscriptionLevel, TenantStatus, TrialStatus, find_condition, types,
};
use crate::tenant::{OWNER_UID_LABEL, OWNERSHIP_PROOF_ANNOTATION, tenant_id, tenant_namespace_of};

/// How soon a Partner whose tenant name is taken looks again, should no namespace event wake it.
const TAKEN_RECHECK: std::time::Duration = std::time::Duration::from_secs(30);

/// `status.tenant` only reports: whoever can write the status subresource may have changed it,
/// so the name and id derived from the Partner's metadata win and correct it.
pub(super) fn correct_tenant_status(d: &mut BoundDraft) -> Flow {
    let (namespace, id) = (tenant_namespace_of(d.partner), tenant_id(d.uid()));
    if let Some(tenant) = d.status.tenant.as_mut() {
        tenant.namespace = namespace;
        tenant.id = id;
    }
    Flow::Next
}

/// Somebody else holds the tenant's name: nothing is provisioned, written or mailed (the
/// activation Secret would land in that namespace) until it is gone. Said once in an Event, and
/// looked at again every [`TAKEN_RECHECK`].
pub(super) fn refuse_taken_name(d: &mut BoundDraft) -> Flow {
    if !d.obs.tenant_taken || d.obs.tenant_exists {
        return Flow::Next;
    }
    let namespace = tenant_namespace_of(d.partner);
    let message = format!(
        "namespace {namespace:?} already exists and is not owned by this Partner (label \
         {OWNER_UID_LABEL} is not its uid, or the operator's proof \
         {OWNERSHIP_PROOF_ANNOTATION} is missing or wrong): it is not adopted and nothing is \
         written into it"
    );
    let reported_before = find_condition(&d.before.conditions, types::READY)
        .is_some_and(|c| c.reason == reasons::TENANT_NAMESPACE_TAKEN);
    if !reported_before {
        d.event(EventReason::TenantNamespaceTaken, message.clone());
    }
    for type_ in [types::TENANT_PROVISIONED, types::READY] {
        d.set_condition(type_, false, reasons::TENANT_NAMESPACE_TAKEN, &message);
    }
    d.recheck_after = Some(TAKEN_RECHECK);
    Flow::Stop
}

/// The first time the Partner is bound, its tenant is provisioned, now, and its trial starts;
/// or, for a Partner created as Production, Production starts (see
/// [`production::start_in_production`]). From then on the level is at least Trial, and a
/// Partner in Trial has its trial: one a status lost (written by someone else) is taken to have
/// started when the tenant was provisioned, and the trial's policy bounds its end.
pub(super) fn provision(mut d: BoundDraft) -> ProvisionedDraft {
    if d.status.tenant.is_none() {
        let namespace = tenant_namespace_of(d.partner);
        d.status.tenant = Some(TenantStatus {
            id: tenant_id(d.uid()),
            namespace: namespace.clone(),
            provisioned_at: d.now,
        });
        if import::importing(&d).is_some() {
            // Said first: the provisioning comes before the billing it may start.
            d.event(EventReason::TenantProvisioned, String::new());
            let at = d.effects.len() - 1;
            let said = import::take_over(&mut d).unwrap_or_default();
            if let Some(Effect::Event(event)) = d.effects.get_mut(at) {
                event.message = format!("tenant {namespace} provisioned; {said}");
            }
            let distributor = d.distributor();
            return d.into_phase(Provisioned { distributor });
        }
        let production = d.partner.spec.subscription.level == RequestedLevel::Production
            && production::may_convert_by_hand(&mut d);
        let started = if production {
            "in Production"
        } else {
            "trial started"
        };
        // Said first: the provisioning comes before the billing it may start (the webhook
        // events follow the order of the Events).
        d.event(
            EventReason::TenantProvisioned,
            format!("tenant {namespace} provisioned; {started}"),
        );
        if production {
            production::start_in_production(&mut d);
        } else {
            d.level = SubscriptionLevel::Trial;
            d.status.trial = Some(TrialStatus {
                started_at: d.now,
                ends_at: d.now,
            });
        }
    }
    if d.level == SubscriptionLevel::Pending {
        d.level = SubscriptionLevel::Trial;
    }
    if d.level == SubscriptionLevel::Trial
        && d.status.trial.is_none()
        && let Some(tenant) = &d.status.tenant
    {
        let started_at = tenant.provisioned_at;
        d.status.trial = Some(TrialStatus {
            started_at,
            ends_at: started_at,
        });
    }
    let distributor = d.distributor();
    d.into_phase(Provisioned { distributor })
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::super::{Effect, Observation, plan};
    use super::*;
    use crate::api::PartnerStatus;

    #[test]
    fn a_taken_tenant_name_stops_the_chain_and_is_looked_at_again() {
        let (p, d) = (partner(), distributor());
        let taken = plan(&Observation {
            tenant_taken: true,
            ..observe(&p, &d, None, t0())
        });
        assert!(taken.status.tenant.is_none());
        assert_eq!(
            taken.recheck_after,
            Some(std::time::Duration::from_secs(30))
        );
        assert_eq!(taken.effects.len(), 1, "{:?}", taken.effects);
        assert!(matches!(
            &taken.effects[0],
            Effect::Event(e) if e.reason == EventReason::TenantNamespaceTaken && e.reason.is_warning()
        ));
    }

    #[test]
    fn a_trial_missing_from_the_status_started_with_the_tenant() {
        let (mut p, d) = (partner(), distributor());
        let first = plan(&observe(&p, &d, None, t0()));
        p.status = Some(PartnerStatus {
            trial: None,
            ..first.status.clone()
        });
        let again = plan(&observe(&p, &d, None, t0()));
        assert!(first.status.trial.is_some());
        assert_eq!(again.status.trial, first.status.trial);
    }
}
