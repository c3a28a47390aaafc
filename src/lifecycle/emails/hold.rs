//! Emails held back: an address outside the Distributor's allowed domains, a refusal for good
//! until either spec changes, the rate limit until it has room.

use chrono::{DateTime, Utc};

use crate::api::{EmailHold, EmailHoldReason, EmailRecord, Recipient};
use crate::lifecycle::draft::ProvisionedDraft;
use crate::lifecycle::reasons::EventReason;

/// Holds back the emails that must not go out now, saying why in their records (and, when the
/// reason is new, in a Warning): an address outside the Distributor's allowed domains, an email
/// the SMTP server refused for good while neither spec changed since, an email over the rate
/// limit until the limit has room. A hold whose cause is gone is lifted.
pub(in crate::lifecycle) fn hold(d: &mut ProvisionedDraft) {
    let distributor = d.distributor();
    let policy = &distributor.spec.email;
    let partner_address = d.partner.spec.notification_email.as_str();
    let generations = (d.generation, distributor.metadata.generation);
    let mut events = Vec::new();
    let mut reviews = Vec::new();
    for record in d.status.emails.iter_mut().filter(|e| e.sent_at.is_none()) {
        let to_partner = record.recipient != Some(Recipient::Distributor);
        if to_partner && !policy.allows(partner_address) {
            let why = format!(
                "{partner_address:?} is not in a domain of Distributor {:?}'s \
                 spec.email.allowedRecipientDomains",
                distributor.metadata.name.as_deref().unwrap_or_default()
            );
            if !matches!(&record.held, Some(h) if h.reason == EmailHoldReason::RecipientNotAllowed)
            {
                events.push((
                    EventReason::RecipientNotAllowed,
                    format!("{} email held: {why}", record.event.as_str()),
                ));
                record.held = Some(EmailHold {
                    reason: EmailHoldReason::RecipientNotAllowed,
                    until: None,
                    partner_generation: None,
                    distributor_generation: None,
                });
            }
            record.last_error = Some(why);
            continue;
        }
        let lifted = match &record.held {
            None => continue,
            Some(held) => match held.reason {
                EmailHoldReason::RecipientNotAllowed => true,
                EmailHoldReason::Refused => {
                    (held.partner_generation, held.distributor_generation) != generations
                }
                // Kept until it is sent, or held again with a later `until` (so a Partner
                // that loses the race for the next place says so once, not at every try).
                EmailHoldReason::RateLimited => {
                    reviews.extend(held.until.filter(|until| *until > d.now));
                    false
                }
            },
        };
        if lifted {
            record.held = None;
            record.last_error = None;
        }
    }
    for (reason, message) in events {
        d.event(reason, message);
    }
    d.deadlines.extend(reviews);
}

/// Whether `record` must not be sent at `now`: held, and not a rate-limited email whose wait is
/// over (that one is tried; the reconciler holds it again if the limit still has no room).
pub(in crate::lifecycle) fn held_at(record: &EmailRecord, now: DateTime<Utc>) -> bool {
    match &record.held {
        None => false,
        Some(held) => {
            held.reason != EmailHoldReason::RateLimited || held.until.is_some_and(|u| u > now)
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::super::testing::{activation_sent_reason, sends};
    use crate::api::{Distributor, EmailEvent, Partner, Recipient, RecipientDomain};
    use crate::lifecycle::fixtures::*;
    use crate::lifecycle::reasons::{self, EventReason};
    use crate::lifecycle::{Effect, PartnerEvent, Plan, plan};

    /// The first plan's status taken as stored, nothing sent.
    fn recorded(mut p: Partner, first: &Plan) -> Partner {
        p.status = Some(first.status.clone());
        p
    }

    fn only_contoso(d: &mut Distributor) {
        d.spec.email.allowed_recipient_domains =
            Some(vec![RecipientDomain("CONTOSO.example".into())]);
    }

    #[test]
    fn an_address_outside_the_allowed_domains_is_held_until_allowed() {
        let mut p = partner();
        p.spec.notification_email = "admin@elsewhere.example".into();
        let mut d = distributor();
        only_contoso(&mut d);
        let first = plan(&observe(&p, &d, None, t0()));
        assert!(sends(&first).is_empty());
        assert_eq!(
            activation_sent_reason(&first),
            reasons::RECIPIENT_NOT_ALLOWED
        );
        assert!(
            first.effects.contains(&Effect::Event(PartnerEvent {
                reason: EventReason::RecipientNotAllowed,
                message:
                    "activation email held: \"admin@elsewhere.example\" is not in a domain of \
                      Distributor \"northwind\"'s spec.email.allowedRecipientDomains"
                        .into(),
            }))
        );
        // Said once: the next plan holds it quietly.
        let p = recorded(p, &first);
        let again = plan(&observe(&p, &d, None, t0()));
        assert!(!again.effects.iter().any(|e| matches!(e, Effect::Event(_))));
        // The domain is allowed (in any case): the email goes out.
        d.spec.email.allowed_recipient_domains =
            Some(vec![RecipientDomain("Elsewhere.Example".into())]);
        let allowed = plan(&observe(&p, &d, None, t0()));
        assert_eq!(
            sends(&allowed),
            [(EmailEvent::Activation, Recipient::Partner)]
        );
    }

    #[test]
    fn the_allowed_domains_do_not_hold_the_distributors_copy() {
        let (p, mut d) = (partner(), distributor());
        let mut p = settle(&observe(&p, &d, None, t0()));
        p.spec.notification_email = "admin@elsewhere.example".into();
        only_contoso(&mut d);
        let ended = plan(&observe(&p, &d, None, t0() + Duration::days(11)));
        let p = recorded(p, &ended);
        let notice = plan(&observe(&p, &d, None, t0() + Duration::days(11)));
        assert_eq!(
            sends(&notice),
            [(EmailEvent::UpgradeNotice, Recipient::Distributor)]
        );
    }
}
