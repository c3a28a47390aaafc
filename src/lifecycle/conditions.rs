//! The conditions of a bound Partner: `TenantProvisioned`, `ActivationSent`, and `Ready` from
//! the ladder below.

use chrono::{DateTime, Utc};

use super::draft::ProvisionedDraft;
use super::reasons::{self, EventReason};
use crate::api::grammar::Zulu;
use crate::api::{
    EmailEvent, EmailHoldReason, EmailRecord, SubscriptionLevel, find_condition, types,
};

/// Sets the three conditions; a conversion refused for a past date is said in a Warning, once
/// per generation of the spec.
pub(super) fn set(d: &mut ProvisionedDraft) {
    let (provisioned, reason, message) = match (d.obs.tenant_exists, d.obs.entitlements) {
        (true, Some(_)) => (
            true,
            reasons::PROVISIONED,
            "tenant namespace and entitlements are in place",
        ),
        (true, None) => (
            false,
            reasons::PROVISIONING,
            "writing the tenant's entitlements",
        ),
        (false, _) => (
            false,
            reasons::PROVISIONING,
            "creating the tenant namespace",
        ),
    };
    d.set_condition(types::TENANT_PROVISIONED, provisioned, reason, message);

    let activation = activation(d);
    let (sent, reason, message) = match &activation {
        Some(reason_and_message) => (false, reason_and_message.0, reason_and_message.1.clone()),
        None => (true, reasons::SENT, "activation email sent".to_string()),
    };
    d.set_condition(types::ACTIVATION_SENT, sent, reason, message);

    let (ready, reason, message) = match READY_LADDER.iter().find_map(|rung| rung(d)) {
        Some((reason, message)) => (false, reason, message),
        None => (true, reasons::READY, format!("{} tenant is ready", d.level)),
    };
    let refused_before = find_condition(&d.before.conditions, types::READY).is_some_and(|c| {
        c.reason == reasons::EXPIRATION_DATE_IN_PAST && c.observed_generation == d.generation
    });
    if reason == reasons::EXPIRATION_DATE_IN_PAST && !refused_before {
        d.event(EventReason::ExpirationDateInPast, message.clone());
    }
    d.set_condition(types::READY, ready, reason, message);
}

/// Why a Partner is not Ready: a reason and a message.
type NotReady = (&'static str, String);

/// Why the Partner is not Ready: the first rung that answers, in this order (the most
/// actionable first: a refused date is said whatever the level, an expired trial included).
const READY_LADDER: [fn(&ProvisionedDraft) -> Option<NotReady>; 4] =
    [tenant_missing, activation, conversion_refused, expired];

fn tenant_missing(d: &ProvisionedDraft) -> Option<NotReady> {
    (!d.obs.tenant_exists).then(|| {
        (
            reasons::PROVISIONING,
            "creating the tenant namespace".to_string(),
        )
    })
}

/// Why the activation email is not sent yet: its delivery failed, or it is on its way.
fn activation(d: &ProvisionedDraft) -> Option<NotReady> {
    let record = d
        .status
        .emails
        .iter()
        .find(|e| e.event == EmailEvent::Activation);
    match record {
        Some(EmailRecord {
            sent_at: Some(_), ..
        }) => None,
        Some(EmailRecord {
            held: Some(held),
            last_error,
            ..
        }) => {
            let reason = match held.reason {
                EmailHoldReason::RateLimited => reasons::EMAIL_RATE_LIMITED,
                EmailHoldReason::RecipientNotAllowed => reasons::RECIPIENT_NOT_ALLOWED,
                EmailHoldReason::Refused => reasons::EMAIL_REFUSED,
            };
            let why = last_error.as_deref().unwrap_or(reason);
            Some((reason, format!("activation email held: {why}")))
        }
        Some(EmailRecord {
            last_error: Some(error),
            ..
        }) => Some((
            reasons::EMAIL_DELIVERY_FAILED,
            format!("activation email not delivered: {error}"),
        )),
        _ => Some((
            reasons::ACTIVATION_PENDING,
            "sending the activation email".to_string(),
        )),
    }
}

fn expired(d: &ProvisionedDraft) -> Option<NotReady> {
    (d.level == SubscriptionLevel::Expired)
        .then(|| (reasons::EXPIRED, "the subscription has expired".to_string()))
}

fn conversion_refused(d: &ProvisionedDraft) -> Option<NotReady> {
    d.refused_date.map(|date: DateTime<Utc>| {
        (
            reasons::EXPIRATION_DATE_IN_PAST,
            format!(
                "spec.subscription.expirationDate {} lies in the past: not converted to \
                 Production",
                date.zulu()
            ),
        )
    })
}
