//! The first step: is the Partner bound to its Distributor?

use super::draft::{Bound, BoundDraft, UnboundDraft};
use super::effects::tenant_effect;
use super::{production, reasons};
use crate::api::{SubscriptionLevel, types};

/// What binding found: the draft bound to its Distributor, or left unbound.
pub(super) enum Binding<'a> {
    Bound(BoundDraft<'a>),
    Unbound(UnboundDraft<'a>),
}

/// Bound (the Distributor exists and accepts the Partner's namespace): the draft is bound to
/// it, its SKUs apply, and the chain goes on. Unbound: nothing is provisioned, mailed or
/// billed; a tenant that exists keeps its level (the operator never downgrades) and still
/// follows the status, except that Production ends (see [`production::end_unbound`]); the
/// chain ends with the draft as it is.
pub(super) fn bind(mut d: UnboundDraft) -> Binding {
    let partner = d.partner;
    let distributor_name = &partner.spec.distributor_ref.name;
    let (reason, message) = match d.obs.distributor {
        None => (
            reasons::DISTRIBUTOR_NOT_FOUND,
            format!("Distributor {distributor_name:?} (spec.distributorRef.name) does not exist"),
        ),
        Some(_) if !d.obs.namespace_allowed => (
            reasons::NAMESPACE_NOT_ALLOWED,
            format!(
                "namespace {:?} is not selected by spec.partnerNamespaces of Distributor \
                 {distributor_name:?}",
                partner.metadata.namespace.as_deref().unwrap_or_default(),
            ),
        ),
        Some(distributor) => {
            d.set_condition(
                types::DISTRIBUTOR_BOUND,
                true,
                reasons::BOUND,
                format!("bound to Distributor {distributor_name:?}"),
            );
            d.status.skus = distributor.spec.skus.clone();
            return Binding::Bound(d.into_phase(Bound { distributor }));
        }
    };
    if d.level == SubscriptionLevel::Production {
        production::end_unbound(&mut d, &message);
    }
    if let Some(tenant) = tenant_effect(&mut d, false) {
        d.effects.push(tenant);
    }
    d.set_condition(types::DISTRIBUTOR_BOUND, false, reason, &message);
    d.set_condition(types::READY, false, reason, message);
    Binding::Unbound(d)
}
