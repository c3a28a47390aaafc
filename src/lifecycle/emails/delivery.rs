//! What an email's delivery, or its failure, changes in the status.

use chrono::{DateTime, Utc};

use crate::api::grammar::Zulu;
use crate::api::{EmailEvent, EmailHold, EmailHoldReason, PartnerStatus};
use crate::lifecycle::reasons::EventReason;
use crate::lifecycle::{Email, PartnerEvent};

/// The SMTP server accepted `email` at `at`: its record says so, and for the activation email
/// an Event says to whom it went.
pub fn sent(status: &mut PartnerStatus, email: &Email, at: DateTime<Utc>) -> Option<PartnerEvent> {
    mark_email_sent(status, &email.message_id, at);
    (email.event == EmailEvent::Activation).then(|| PartnerEvent {
        reason: EventReason::ActivationSent,
        message: format!("activation email sent to {}", email.to.join(", ")),
    })
}

/// Sending `email` failed with `error` (a text that carries no secret): its record keeps why,
/// and a Warning says it. A permanent refusal (a 5xx reply, an address the server cannot take)
/// holds the email until the Partner's or the Distributor's spec changes, instead of retrying it.
pub fn failed(
    status: &mut PartnerStatus,
    email: &Email,
    error: &str,
    permanent: bool,
) -> PartnerEvent {
    mark_email_failed(status, &email.message_id, error);
    let record = status
        .emails
        .iter_mut()
        .find(|e| e.message_id == email.message_id);
    if permanent && let Some(record) = record {
        record.held = Some(EmailHold {
            reason: EmailHoldReason::Refused,
            until: None,
            partner_generation: email.generations.0,
            distributor_generation: email.generations.1,
        });
        return PartnerEvent {
            reason: EventReason::EmailRefused,
            message: format!(
                "{} email to {} refused for good: {error}; not tried again until the Partner's \
                 or the Distributor's spec changes",
                email.event.as_str(),
                email.to.join(", ")
            ),
        };
    }
    PartnerEvent {
        reason: EventReason::EmailDeliveryFailed,
        message: format!(
            "{} email to {} not delivered: {error}",
            email.event.as_str(),
            email.to.join(", ")
        ),
    }
}

/// The operator's flag that sets the limit per recipient address, as hold messages name it.
pub const RECIPIENT_LIMIT_FLAG: &str = "--email-per-recipient-per-hour";

/// Which rate limit holds an email back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateLimit {
    /// The Distributor's `spec.email.rateLimit`.
    Distributor,
    /// The operator's limit on activation emails to one address
    /// (`--email-per-recipient-per-hour`), across Partners and Distributors.
    Recipient { per_hour: u32 },
}

/// A rate limit has no room for `email` before `until`: its record says so, and a Warning says
/// it when the email was not waiting already.
pub fn rate_limited(
    status: &mut PartnerStatus,
    email: &Email,
    limit: RateLimit,
    until: DateTime<Utc>,
) -> Option<PartnerEvent> {
    let record = status
        .emails
        .iter_mut()
        .find(|e| e.message_id == email.message_id)?;
    let was_waiting = matches!(&record.held, Some(h) if h.reason == EmailHoldReason::RateLimited);
    let why = match limit {
        RateLimit::Distributor => format!(
            "Distributor {:?} sent its {} emails per {} minutes (spec.email.rateLimit); next room \
             at {}",
            email.distributor,
            email.rate_limit.messages,
            email.rate_limit.window_minutes,
            until.zulu()
        ),
        RateLimit::Recipient { per_hour } => format!(
            "{} was sent {per_hour} activation emails within the hour, the most the operator \
             sends one address ({RECIPIENT_LIMIT_FLAG}); next room at {}",
            email.to.join(", "),
            until.zulu()
        ),
    };
    record.last_error = Some(why.clone());
    record.held = Some(EmailHold {
        reason: EmailHoldReason::RateLimited,
        until: Some(until),
        partner_generation: None,
        distributor_generation: None,
    });
    (!was_waiting).then(|| PartnerEvent {
        reason: EventReason::EmailRateLimited,
        message: format!("{} email waits: {why}", email.event.as_str()),
    })
}

/// Marks the email with `message_id` as accepted by the SMTP server at `at`, mirroring the time
/// into the fields users read (`activation.sentAt`, `upgradeNoticeSentAt`).
pub fn mark_email_sent(status: &mut PartnerStatus, message_id: &str, at: DateTime<Utc>) {
    let Some(record) = status
        .emails
        .iter_mut()
        .find(|e| e.message_id == message_id)
    else {
        return;
    };
    record.sent_at = Some(at);
    record.last_error = None;
    record.held = None;
    match record.event {
        EmailEvent::Activation => {
            status
                .activation
                .get_or_insert_with(Default::default)
                .sent_at = Some(at);
        }
        EmailEvent::UpgradeNotice | EmailEvent::ExpiryNotice => {
            status.upgrade_notice_sent_at = Some(at)
        }
        _ => {}
    }
}

/// Records why sending the email with `message_id` failed. The text must carry no secret.
pub fn mark_email_failed(status: &mut PartnerStatus, message_id: &str, error: &str) {
    if let Some(record) = status
        .emails
        .iter_mut()
        .find(|e| e.message_id == message_id)
    {
        record.last_error = Some(error.to_string());
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::super::testing::{activation_sent_reason, sends};
    use super::*;
    use crate::api::Recipient;
    use crate::lifecycle::fixtures::*;
    use crate::lifecycle::reasons;
    use crate::lifecycle::{Effect, Plan, plan};

    /// The first email `plan` sends.
    fn first_email(plan: &Plan) -> &Email {
        plan.effects
            .iter()
            .find_map(|e| match e {
                Effect::SendEmail(email) => Some(&**email),
                _ => None,
            })
            .expect("an email to send")
    }

    #[test]
    fn a_refusal_for_good_waits_for_either_spec_to_change() {
        let (p, mut d) = (partner(), distributor());
        d.metadata.generation = Some(4);
        let first = plan(&observe(&p, &d, None, t0()));
        let email = first_email(&first);
        let mut status = first.status.clone();
        let event = failed(&mut status, email, "550 no such mailbox", true);
        assert_eq!(event.reason, EventReason::EmailRefused);
        let mut p = p;
        p.status = Some(status);
        let held = plan(&observe(&p, &d, None, t0()));
        assert!(sends(&held).is_empty());
        assert_eq!(activation_sent_reason(&held), reasons::EMAIL_REFUSED);
        // The Distributor's spec changes: tried again.
        d.metadata.generation = Some(5);
        assert_eq!(sends(&plan(&observe(&p, &d, None, t0()))).len(), 1);
        // So does a change of the Partner's own.
        d.metadata.generation = Some(4);
        p.metadata.generation = Some(2);
        assert_eq!(sends(&plan(&observe(&p, &d, None, t0()))).len(), 1);
    }

    #[test]
    fn a_rate_limited_email_is_tried_again_when_the_limit_has_room() {
        let (p, d) = (partner(), distributor());
        let first = plan(&observe(&p, &d, None, t0()));
        let email = first_email(&first);
        let room_at = t0() + Duration::minutes(20);
        let mut status = first.status.clone();
        let event =
            rate_limited(&mut status, email, RateLimit::Distributor, room_at).expect("said once");
        assert_eq!(event.reason, EventReason::EmailRateLimited);
        assert!(
            rate_limited(&mut status, email, RateLimit::Distributor, room_at).is_none(),
            "not twice"
        );
        let mut p = p;
        p.status = Some(status);
        let waiting = plan(&observe(&p, &d, None, t0()));
        assert!(sends(&waiting).is_empty());
        assert_eq!(
            activation_sent_reason(&waiting),
            reasons::EMAIL_RATE_LIMITED
        );
        assert_eq!(waiting.next_review, Some(room_at));
        let room = plan(&observe(&p, &d, None, room_at));
        assert_eq!(sends(&room), [(EmailEvent::Activation, Recipient::Partner)]);
    }
}
