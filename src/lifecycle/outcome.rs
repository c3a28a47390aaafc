//! What the result of an effect changes: the second input of the decider, beside
//! [`super::Observation`].
//!
//! The reconciler carries out a plan's effects; each result that must not be lost (an email
//! accepted, refused or held back, a webhook event delivered or failed) comes
//! back here as an [`Outcome`], and [`record_outcome`] says how the status records it and
//! which Event tells it. The status change is written before anything else happens, so a
//! crash never repeats an effect whose result was recorded.

use chrono::{DateTime, Utc};

use super::emails::{self, RateLimit};
use super::{Email, PartnerEvent, WebhookSend, webhooks};
use crate::api::PartnerStatus;

/// The result of one effect.
#[derive(Clone, Copy, Debug)]
pub enum Outcome<'a> {
    /// The SMTP server accepted the email at `at`.
    EmailSent { email: &'a Email, at: DateTime<Utc> },
    /// The SMTP server did not take the email: `permanent` for a refusal for good.
    EmailFailed {
        email: &'a Email,
        error: &'a str,
        permanent: bool,
    },
    /// A rate limit has no room for the email before `until`.
    EmailRateLimited {
        email: &'a Email,
        limit: RateLimit,
        until: DateTime<Utc>,
    },
    /// The endpoint answered 2xx to the event.
    WebhookDelivered { id: &'a str, endpoint: &'a str },
    /// An attempt to deliver the event failed at `at` (the system clock).
    WebhookFailed {
        send: &'a WebhookSend,
        error: &'a str,
        at: DateTime<Utc>,
    },
}

/// Records `outcome` in `status`; the Event that tells it, if any.
pub fn record_outcome(status: &mut PartnerStatus, outcome: &Outcome) -> Option<PartnerEvent> {
    match *outcome {
        Outcome::EmailSent { email, at } => emails::sent(status, email, at),
        Outcome::EmailFailed {
            email,
            error,
            permanent,
        } => Some(emails::failed(status, email, error, permanent)),
        Outcome::EmailRateLimited {
            email,
            limit,
            until,
        } => emails::rate_limited(status, email, limit, until),
        Outcome::WebhookDelivered { id, endpoint } => {
            webhooks::delivered(status, id, endpoint);
            None
        }
        Outcome::WebhookFailed { send, error, at } => webhooks::failed(status, send, error, at),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::fixtures::{distributor, observe, partner, t0};
    use crate::lifecycle::{Effect, EventReason, plan};

    fn first_email() -> (PartnerStatus, Email) {
        let (p, d) = (partner(), distributor());
        let first = plan(&observe(&p, &d, None, t0()));
        let email = first
            .effects
            .iter()
            .find_map(|e| match e {
                Effect::SendEmail(email) => Some((**email).clone()),
                _ => None,
            })
            .expect("the activation email");
        (first.status, email)
    }

    #[test]
    fn an_email_accepted_is_recorded_sent_and_told() {
        let (mut status, email) = first_email();
        let at = t0();
        let event = record_outcome(&mut status, &Outcome::EmailSent { email: &email, at });
        assert_eq!(event.map(|e| e.reason), Some(EventReason::ActivationSent));
        assert_eq!(status.emails[0].sent_at, Some(at));
    }

    #[test]
    fn a_refusal_for_good_holds_the_email_and_a_passing_failure_does_not() {
        let (status, email) = first_email();
        for (permanent, reason, held) in [
            (true, EventReason::EmailRefused, true),
            (false, EventReason::EmailDeliveryFailed, false),
        ] {
            let mut status = status.clone();
            let outcome = Outcome::EmailFailed {
                email: &email,
                error: "550 no such user",
                permanent,
            };
            let event = record_outcome(&mut status, &outcome);
            assert_eq!(event.map(|e| e.reason), Some(reason));
            assert_eq!(status.emails[0].held.is_some(), held);
            assert_eq!(status.emails[0].sent_at, None);
        }
    }

    #[test]
    fn a_rate_limit_is_told_once_while_the_email_waits() {
        let (mut status, email) = first_email();
        let outcome = Outcome::EmailRateLimited {
            email: &email,
            limit: RateLimit::Distributor,
            until: t0() + chrono::Duration::minutes(5),
        };
        let first = record_outcome(&mut status, &outcome);
        assert_eq!(first.map(|e| e.reason), Some(EventReason::EmailRateLimited));
        assert_eq!(record_outcome(&mut status, &outcome), None);
    }
}
