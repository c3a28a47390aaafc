//! The lifecycle's emails: recorded once, each with its Message-ID and the facts it tells; held
//! back while they must wait ([`mod@hold`]); and what their delivery (or its failure) changes
//! in the status ([`delivery`]).

mod delivery;
mod hold;

use chrono::Duration;
use sha2::{Digest, Sha256};

pub use delivery::{
    RECIPIENT_LIMIT_FLAG, RateLimit, failed, mark_email_failed, mark_email_sent, rate_limited, sent,
};
pub(super) use hold::{held_at, hold};

use super::draft::ProvisionedDraft;
use super::reasons::EventReason;
use super::{ActivationToken, Email};
use crate::api::{EmailEvent, EmailFacts, EmailRecord, PartnerStatus, Recipient};
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
pub(super) fn record(d: &mut ProvisionedDraft, event: EmailEvent) -> bool {
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
pub(super) fn record_activation(d: &mut ProvisionedDraft) {
    if record(d, EmailEvent::Activation) {
        let validity = Duration::days(i64::from(
            d.distributor().spec.activation.link_validity_days,
        ));
        let id = d.status.emails.last().map(|e| e.message_id.clone());
        let activation = d.status.activation.get_or_insert_with(Default::default);
        activation.message_id = id;
        activation.link_expires_at = Some(d.now + validity);
    }
}

/// The base of the activation link: the Distributor's `spec.activation.baseUrl`, else the
/// operator's `--activation-base-url`; an error that names what to set when neither gives one.
fn link_base(d: &ProvisionedDraft) -> Result<url::Url, String> {
    let distributor = d.distributor();
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
pub(super) fn check_activation_link(d: &mut ProvisionedDraft) {
    let reason = match link_base(d) {
        Ok(base) => {
            d.link_base = Some(base);
            return;
        }
        Err(reason) => reason,
    };
    let Some(record) = d
        .status
        .emails
        .iter_mut()
        .find(|e| e.event == EmailEvent::Activation && e.sent_at.is_none())
    else {
        return;
    };
    if record.last_error.as_deref() != Some(reason.as_str()) {
        record.last_error = Some(reason.clone());
        d.event(
            EventReason::EmailDeliveryFailed,
            format!("activation email not sent: {reason}"),
        );
    }
}

/// An email decided in this plan tells the dates as they are now, on every copy: its facts are
/// fixed in its record.
pub(super) fn fix_facts(d: &mut ProvisionedDraft) {
    let facts = email_facts(&d.status);
    for record in d.status.emails.iter_mut().filter(|e| e.facts.is_none()) {
        record.facts = Some(facts.clone());
    }
}

/// The email of `record`, to its one recipient, with everything it tells. Replies go to the
/// Distributor's public `spec.email.replyTo` when it sets one; no message names another
/// recipient's address.
pub(super) fn email(d: &ProvisionedDraft, record: &EmailRecord) -> Email {
    let partner = d.partner;
    let distributor = d.distributor();
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

/// What the emails' tests read from a plan.
#[cfg(test)]
mod testing {
    use super::super::{Effect, Plan};
    use crate::api::{EmailEvent, Recipient, find_condition, types};

    /// The emails `plan` sends, by event and recipient.
    pub(super) fn sends(plan: &Plan) -> Vec<(EmailEvent, Recipient)> {
        plan.effects
            .iter()
            .filter_map(|e| match e {
                Effect::SendEmail(email) => Some((email.event, email.recipient)),
                _ => None,
            })
            .collect()
    }

    pub(super) fn activation_sent_reason(plan: &Plan) -> String {
        find_condition(&plan.status.conditions, types::ACTIVATION_SENT)
            .unwrap()
            .reason
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
