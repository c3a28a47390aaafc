//! The first step: is the Partner bound to its Distributor?

use super::reasons;
use super::{Draft, Flow, production, tenant_effect};
use crate::api::{SubscriptionLevel, types};

/// Bound (the Distributor exists and accepts the Partner's namespace): the Distributor's SKUs
/// apply, and the chain goes on. Unbound: nothing is provisioned, mailed or billed; a tenant
/// that exists keeps its level (the operator never downgrades) and still follows the status,
/// except that Production ends (see [`production::end_unbound`]); the chain stops.
pub(super) fn bind(d: &mut Draft) -> Flow {
    let partner = d.partner;
    let distributor_name = &partner.spec.distributor_ref.name;
    let unbound = match d.obs.distributor {
        None => Some((
            reasons::DISTRIBUTOR_NOT_FOUND,
            format!("Distributor {distributor_name:?} (spec.distributorRef.name) does not exist"),
        )),
        Some(_) if !d.obs.namespace_allowed => Some((
            reasons::NAMESPACE_NOT_ALLOWED,
            format!(
                "namespace {:?} is not selected by spec.partnerNamespaces of Distributor \
                 {distributor_name:?}",
                partner.metadata.namespace.as_deref().unwrap_or_default(),
            ),
        )),
        Some(distributor) => {
            d.distributor = Some(distributor);
            None
        }
    };
    let Some((reason, message)) = unbound else {
        d.set_condition(
            types::DISTRIBUTOR_BOUND,
            true,
            reasons::BOUND,
            format!("bound to Distributor {distributor_name:?}"),
        );
        d.status.skus = d.bound().spec.skus.clone();
        return Flow::Next;
    };
    if d.level == SubscriptionLevel::Production {
        production::end_unbound(d, &message);
    }
    if let Some(tenant) = tenant_effect(d) {
        d.effects.push(tenant);
    }
    d.set_condition(types::DISTRIBUTOR_BOUND, false, reason, &message);
    d.set_condition(types::READY, false, reason, message);
    Flow::Stop
}
