//! The lifecycle's emails: recorded once, each with its Message-ID and the facts it tells, and
//! what their delivery (or its failure) changes in the status.

use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};

use super::reasons::EventReason;
use super::{ActivationToken, Draft, Email, Flow, PartnerEvent};
use crate::api::{
    EmailEvent, EmailFacts, EmailHold, EmailHoldReason, EmailRecord, PartnerStatus, Recipient,
};
use crate::mail::EmailVars;

/// Who is sent a message for `event`: the activation link goes to the partner alone, the news
/// of its activation to the distributor alone; every other event to the partner and to the
/// distributor, each in a message of their own.
fn recipients(event: EmailEvent) -> &'static [Recipient] {
    match event {
        EmailEvent::Activation => &[Recipient::Partner],
        // The news of an activation is the distributor's alone.
        EmailEvent::Activated => &[Recipient::Distributor],
        _ => &[Recipient::Partner, Recipient::Distributor],
    }
}

/// Records an email for `event` to each of its recipients, unless one was recorded before (for
/// a renewal and the end of Production: in the current billing period); returns whether any
/// was new. A record from before messages were split by recipient covers both once it was
/// sent (its one message went to both).
pub(super) fn record(d: &mut Draft, event: EmailEvent) -> bool {
    let period = match event {
        EmailEvent::Renewed | EmailEvent::ProductionExpired => billing_period(&d.status),
        _ => 0,
    };
    let mut new = false;
    for &recipient in recipients(event) {
        let recorded = d.status.emails.iter().any(|e| {
            e.event == event
                && e.period == period
                && match e.recipient {
                    Some(to) => to == recipient,
                    None => e.sent_at.is_some() || recipient == Recipient::Partner,
                }
        });
        if recorded {
            continue;
        }
        d.status.emails.push(EmailRecord {
            event,
            recipient: Some(recipient),
            period,
            message_id: message_id_to(d.uid(), event, period, recipient),
            sent_at: None,
            last_error: None,
            facts: None,
            held: None,
        });
        new = true;
    }
    new
}

/// The activation email goes out right after provisioning; its link is valid for the
/// Distributor's `activation.linkValidityDays` from then.
pub(super) fn record_activation(d: &mut Draft) -> Flow {
    if record(d, EmailEvent::Activation) {
        let validity = Duration::days(i64::from(d.bound().spec.activation.link_validity_days));
        let id = d.status.emails.last().map(|e| e.message_id.clone());
        let activation = d.status.activation.get_or_insert_with(Default::default);
        activation.message_id = id;
        activation.link_expires_at = Some(d.now + validity);
    }
    Flow::Next
}

/// The base of the activation link: the Distributor's `spec.activation.baseUrl`, else the
/// operator's `--activation-base-url`; an error that names what to set when neither gives one.
fn link_base(d: &Draft) -> Result<url::Url, String> {
    let distributor = d.bound();
    let name = distributor.metadata.name.as_deref().unwrap_or_default();
    let base = distributor
        .spec
        .activation
        .base_url
        .as_deref()
        .or(d.obs.default_activation_base_url)
        .ok_or_else(|| {
            format!(
                "no activation base URL: set spec.activation.baseUrl on Distributor {name:?} or \
                 start the operator with --activation-base-url"
            )
        })?;
    crate::tenant::link_base(base)
        .map_err(|why| format!("the activation base URL {base:?} is refused: {why}"))
}

/// An activation email that is due but for which no link can be made is not sent: its record
/// says why (so `ActivationSent` and `Ready` do), and a Warning says it once. It goes out when
/// the Distributor gets a base URL (a Distributor change wakes its Partners).
pub(super) fn check_activation_link(d: &mut Draft) -> Flow {
    let reason = match link_base(d) {
        Ok(base) => {
            d.link_base = Some(base);
            return Flow::Next;
        }
        Err(reason) => reason,
    };
    let Some(record) = d
        .status
        .emails
        .iter_mut()
        .find(|e| e.event == EmailEvent::Activation && e.sent_at.is_none())
    else {
        return Flow::Next;
    };
    if record.last_error.as_deref() != Some(reason.as_str()) {
        record.last_error = Some(reason.clone());
        d.event(
            EventReason::EmailDeliveryFailed,
            format!("activation email not sent: {reason}"),
        );
    }
    Flow::Next
}

/// Holds back the emails that must not go out now, saying why in their records (and, when the
/// reason is new, in a Warning): an address outside the Distributor's allowed domains, an email
/// the SMTP server refused for good while neither spec changed since, an email over the rate
/// limit until the limit has room. A hold whose cause is gone is lifted.
pub(super) fn hold(d: &mut Draft) -> Flow {
    let distributor = d.bound();
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
    Flow::Next
}

/// Whether `record` must not be sent at `now`: held, and not a rate-limited email whose wait is
/// over (that one is tried; the reconciler holds it again if the limit still has no room).
pub(super) fn held_at(record: &EmailRecord, now: DateTime<Utc>) -> bool {
    match &record.held {
        None => false,
        Some(held) => {
            held.reason != EmailHoldReason::RateLimited || held.until.is_some_and(|u| u > now)
        }
    }
}

/// An email decided in this plan tells the dates as they are now, on every copy: its facts are
/// fixed in its record.
pub(super) fn fix_facts(d: &mut Draft) {
    let facts = email_facts(&d.status);
    for record in d.status.emails.iter_mut().filter(|e| e.facts.is_none()) {
        record.facts = Some(facts.clone());
    }
}

/// The email of `record`, to its one recipient, with everything it tells. Replies go to the
/// Distributor's public `spec.email.replyTo` when it sets one; no message names another
/// recipient's address.
pub(super) fn email(d: &Draft, record: &EmailRecord) -> Email {
    let partner = d.partner;
    let distributor = d.bound();
    let facts = record
        .facts
        .clone()
        .unwrap_or_else(|| email_facts(&d.status));
    let recipient = record.recipient.unwrap_or(Recipient::Partner);
    let to = match recipient {
        Recipient::Partner => partner.spec.notification_email.clone(),
        Recipient::Distributor => distributor.spec.notification_email.clone(),
    };
    Email {
        event: record.event,
        message_id: record.message_id.clone(),
        to: vec![to],
        recipient,
        distributor: distributor.metadata.name.clone().unwrap_or_default(),
        rate_limit: distributor.spec.email.rate_limit,
        vars: EmailVars {
            partner_organization: partner.spec.organization_name.clone(),
            distributor_organization: distributor.spec.organization_name.clone(),
            distributor_name: distributor.metadata.name.clone().unwrap_or_default(),
            tenant_id: d
                .status
                .tenant
                .as_ref()
                .map(|t| t.id.clone())
                .unwrap_or_default(),
            tenant_namespace: crate::tenant::tenant_namespace_of(partner),
            activation_link: None,
            link_expires_at: facts.link_expires_at,
            trial_ends_at: facts.trial_ends_at,
            production_since: facts.production_since,
            expires_at: facts.expires_at,
            reply_to: distributor.spec.email.reply_to.clone(),
            deletion_policy: partner.spec.tenant.deletion_policy,
            to_distributor: recipient == Recipient::Distributor,
        },
        link_base: (record.event == EmailEvent::Activation)
            .then(|| d.link_base.clone())
            .flatten(),
        generations: (d.generation, distributor.metadata.generation),
    }
}

/// The token of the activation link emailed last, to store again, if one was emailed.
pub(super) fn sent_activation(status: &PartnerStatus) -> Option<ActivationToken> {
    let sent = status
        .emails
        .iter()
        .rev()
        .find(|e| e.event == EmailEvent::Activation && e.sent_at.is_some())?;
    Some(ActivationToken {
        superseded: superseded_activations(status, &sent.message_id),
        message_id: sent.message_id.clone(),
        expires_at: sent
            .facts
            .as_ref()
            .and_then(|f| f.link_expires_at)
            .or(status.activation.as_ref()?.link_expires_at)?,
    })
}

/// The Message-IDs of the activation emails sent before the one with `current`.
pub(super) fn superseded_activations(status: &PartnerStatus, current: &str) -> Vec<String> {
    status
        .emails
        .iter()
        .filter(|e| e.event == EmailEvent::Activation && e.sent_at.is_some())
        .map(|e| e.message_id.clone())
        .filter(|id| id != current)
        .collect()
}

/// The dates an email decided now tells. A Production subscription that ended tells when its
/// billing ended; else its expiration date.
pub fn email_facts(status: &PartnerStatus) -> EmailFacts {
    EmailFacts {
        trial_ends_at: status.trial.as_ref().map(|t| t.ends_at),
        production_since: status.production.as_ref().map(|p| p.since),
        expires_at: status
            .billing
            .as_ref()
            .and_then(|b| b.ended_at)
            .or(status.expires_at),
        link_expires_at: status.activation.as_ref().and_then(|a| a.link_expires_at),
    }
}

/// The deterministic Message-ID of a Partner's email `event` (to the partner): the same on
/// every retry, so a message resent after a crash is recognisable as the same message. Derived
/// by hashing, so it reveals neither the uid nor anything secret.
pub fn message_id(partner_uid: &str, event: EmailEvent) -> String {
    message_id_to(partner_uid, event, 0, Recipient::Partner)
}

/// The Message-ID of `event` in billing period `period` to `recipient` (the partner's in the
/// first period is [`message_id`]).
pub fn message_id_to(
    partner_uid: &str,
    event: EmailEvent,
    period: u32,
    recipient: Recipient,
) -> String {
    let mut key = format!("{partner_uid}/{}", event.as_str());
    if period > 0 {
        key.push_str(&format!("/{period}"));
    }
    if recipient == Recipient::Distributor {
        key.push_str("/distributor");
    }
    let digest = Sha256::digest(key.as_bytes());
    format!(
        "<{}.{}@partner-operator.io>",
        event.as_str(),
        &hex::encode(digest)[..32]
    )
}

/// The index of the current billing period: 0 before billing, or for a status written before
/// periods were kept.
fn billing_period(status: &PartnerStatus) -> u32 {
    status.billing.as_ref().map_or(0, |b| {
        u32::try_from(b.periods.len().saturating_sub(1)).unwrap_or(u32::MAX)
    })
}

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
            until.to_rfc3339()
        ),
        RateLimit::Recipient { per_hour } => format!(
            "{} was sent {per_hour} activation emails within the hour, the most the operator \
             sends one address ({RECIPIENT_LIMIT_FLAG}); next room at {}",
            email.to.join(", "),
            until.to_rfc3339()
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

    use super::super::fixtures::*;
    use super::super::{Effect, Plan, plan, reasons};
    use super::*;
    use crate::api::{Distributor, Partner, RecipientDomain, find_condition, types};

    /// The emails `plan` sends, by event and recipient.
    fn sends(plan: &Plan) -> Vec<(EmailEvent, Recipient)> {
        plan.effects
            .iter()
            .filter_map(|e| match e {
                Effect::SendEmail(email) => Some((email.event, email.recipient)),
                _ => None,
            })
            .collect()
    }

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

    fn activation_sent_reason(plan: &Plan) -> String {
        find_condition(&plan.status.conditions, types::ACTIVATION_SENT)
            .unwrap()
            .reason
            .clone()
    }

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
        let first = plan(&observe(&p, &d, None, t0()));
        let mut p = settled(p, &first, t0());
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

    #[test]
    fn each_recipient_has_a_message_id_of_its_own() {
        let ids = [
            message_id_to("uid-1", EmailEvent::Converted, 0, Recipient::Partner),
            message_id_to("uid-1", EmailEvent::Converted, 0, Recipient::Distributor),
            message_id_to("uid-1", EmailEvent::Converted, 1, Recipient::Distributor),
        ];
        assert_eq!(ids[0], message_id("uid-1", EmailEvent::Converted));
        assert!(ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2]);
    }
}
