//! What the outlook says of work that does not move: an email held back or failing, and why
//! no deadline is ahead.

use super::{World, auto_upgrade, status_of};
use crate::api::{
    EmailHoldReason, EmailRecord, Partner, Recipient, RequestedLevel, SubscriptionLevel,
};
use crate::plugin::dates::exact_and_relative;

/// Why an email decided earlier has not gone out: held back on purpose (the Distributor's
/// rate limit, a recipient domain it does not allow, a refusal for good), failing and retried,
/// or waiting for a mail slot.
pub(super) fn unsent_line(world: &World, record: &EmailRecord) -> String {
    let to = match record.recipient {
        Some(Recipient::Partner) => format!(" to {}", world.partner.spec.notification_email),
        Some(Recipient::Distributor) => match world.distributor {
            Some(d) => format!(" to {}", d.spec.notification_email),
            None => " to the distributor".into(),
        },
        None => String::new(),
    };
    let event = record.event.as_str();
    let error = record.last_error.as_deref().unwrap_or("no reason given");
    match (&record.held, &record.last_error) {
        (Some(hold), _) => match hold.reason {
            EmailHoldReason::RateLimited => format!(
                "the {event} email{to} is held by {}{}",
                if error.contains(crate::lifecycle::emails::RECIPIENT_LIMIT_FLAG) {
                    "the operator's limit of activation emails per recipient address"
                } else {
                    "the Distributor's rate limit"
                },
                hold.until
                    .map(|at| format!("; it goes out from {}", exact_and_relative(at, world.now)))
                    .unwrap_or_default()
            ),
            EmailHoldReason::RecipientNotAllowed => format!(
                "the {event} email{to} is held: {error} (the Distributor's \
                 spec.email.allowedRecipientDomains)"
            ),
            EmailHoldReason::Refused => format!(
                "the {event} email{to} was refused for good by the SMTP server: {error}; it is \
                 tried again once the Partner's or the Distributor's spec changes"
            ),
        },
        (None, Some(error)) => {
            format!("the {event} email{to} is failing: {error}; the operator retries with backoff")
        }
        (None, None) => format!(
            "the {event} email{to} is decided and waits for a mail slot: the operator sends it \
             in turn"
        ),
    }
}

/// Why no deadline is ahead.
pub(super) fn nothing_scheduled(world: &World, partner: &Partner, name: &str) -> String {
    let status = status_of(partner);
    let distributor = &partner.spec.distributor_ref.name;
    match status.subscription_level.unwrap_or_default() {
        SubscriptionLevel::Production => format!(
            "nothing is scheduled: Production has no expiration date, billing to {distributor} \
             goes on (`kubectl partner renew {name} --expires DATE` sets one)"
        ),
        SubscriptionLevel::Expired if status.production.is_none() => {
            let (_, source) = auto_upgrade(partner, world.distributor);
            let refused = partner.spec.subscription.level == RequestedLevel::Production;
            if refused {
                format!(
                    "nothing is scheduled: the trial expired and its conversion is refused \
                     (see the Ready condition); `kubectl partner convert {name} --expires DATE` \
                     with a future date converts it"
                )
            } else {
                format!(
                    "nothing is scheduled: the trial expired without conversion (auto-upgrade was \
                     off, {source}); `kubectl partner convert {name}` converts it to Production"
                )
            }
        }
        SubscriptionLevel::Expired => format!(
            "nothing is scheduled: Production expired; `kubectl partner renew {name} --expires \
             DATE` renews it"
        ),
        _ => "nothing is scheduled".into(),
    }
}
