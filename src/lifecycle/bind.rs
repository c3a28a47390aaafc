//! The first step: is the Partner bound to its Distributor?

use chrono::{DateTime, Duration, Utc};

use super::draft::{Bound, BoundDraft, UnboundDraft};
use super::effects::tenant_effect;
use super::{production, reasons};
use crate::api::grammar::Zulu;
use crate::api::{SubscriptionLevel, chrono_time, find_condition, types};

/// How long a Production Partner whose Distributor does not exist keeps Production: a restore
/// or a re-apply from Git may create the Distributor after its Partners, and ending Production
/// (billing, entitlements, an email) for that would be wrong and could not be undone.
const MISSING_DISTRIBUTOR_GRACE_MINUTES: i64 = 10;

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
    let message = match distributor_may_return(&mut d, reason) {
        Some(until) => format!(
            "{message}; Production is kept until {} for it to come back (a restore may bring \
             a Distributor after its Partners), and ends then",
            until.zulu()
        ),
        None if d.level == SubscriptionLevel::Production => {
            production::end_unbound(&mut d, &message);
            message
        }
        None => message,
    };
    if let Some(tenant) = tenant_effect(&mut d, false) {
        d.effects.push(tenant);
    }
    d.set_condition(types::DISTRIBUTOR_BOUND, false, reason, &message);
    d.set_condition(types::READY, false, reason, message);
    Binding::Unbound(d)
}

/// For a Production Partner whose Distributor does not exist: until when it keeps Production
/// (a deadline then), counted from when the Partner was first seen without it; `None` once that
/// has passed, or when the Partner is not in Production or its Distributor refuses its
/// namespace (a Distributor that exists decided).
fn distributor_may_return(d: &mut UnboundDraft, reason: &str) -> Option<DateTime<Utc>> {
    if d.level != SubscriptionLevel::Production || reason != reasons::DISTRIBUTOR_NOT_FOUND {
        return None;
    }
    let missing_since = find_condition(&d.before.conditions, types::DISTRIBUTOR_BOUND)
        .filter(|c| c.status == "False" && c.reason == reasons::DISTRIBUTOR_NOT_FOUND)
        .map(|c| chrono_time(&c.last_transition_time))
        .unwrap_or(d.now)
        .min(d.now);
    let until = missing_since + Duration::minutes(MISSING_DISTRIBUTOR_GRACE_MINUTES);
    (d.now < until).then(|| {
        d.deadlines.push(until);
        until
    })
}
