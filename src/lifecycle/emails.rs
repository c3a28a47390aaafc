//! The lifecycle's emails: recorded once, each with its Message-ID and the facts it tells, and
//! what their delivery (or its failure) changes in the status.

use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};

use super::reasons::EventReason;
use super::{ActivationToken, Draft, Email, Flow, PartnerEvent};
use crate::api::{EmailEvent, EmailFacts, EmailRecord, PartnerStatus};
use crate::mail::EmailVars;

/// Records an email for `event` unless one was recorded before (for a renewal and the end of
/// Production: in the current billing period); returns whether it was new.
pub(super) fn record(d: &mut Draft, event: EmailEvent) -> bool {
    let period = match event {
        EmailEvent::Renewed | EmailEvent::ProductionExpired => billing_period(&d.status),
        _ => 0,
    };
    if d.status
        .emails
        .iter()
        .any(|e| e.event == event && e.period == period)
    {
        return false;
    }
    d.status.emails.push(EmailRecord {
        event,
        period,
        message_id: message_id_in_period(d.uid(), event, period),
        sent_at: None,
        last_error: None,
        facts: None,
    });
    true
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

/// An email decided in this plan tells the dates as they are now, on every copy: its facts are
/// fixed in its record.
pub(super) fn fix_facts(d: &mut Draft) {
    let facts = email_facts(&d.status);
    for record in d.status.emails.iter_mut().filter(|e| e.facts.is_none()) {
        record.facts = Some(facts.clone());
    }
}

/// The email of `record`, to its recipients (the activation email to the partner; the others
/// to the partner and the Distributor), with everything it tells; replies go to the
/// Distributor's notification address.
pub(super) fn email(d: &Draft, record: &EmailRecord) -> Email {
    let partner = d.partner;
    let distributor = d.bound();
    let facts = record
        .facts
        .clone()
        .unwrap_or_else(|| email_facts(&d.status));
    let mut to = vec![partner.spec.notification_email.clone()];
    if record.event != EmailEvent::Activation {
        to.push(distributor.spec.notification_email.clone());
    }
    // The news of an activation is the distributor's alone; its replies reach the partner.
    let mut reply_to = distributor.spec.notification_email.clone();
    if record.event == EmailEvent::Activated {
        to.remove(0);
        reply_to = partner.spec.notification_email.clone();
    }
    Email {
        event: record.event,
        message_id: record.message_id.clone(),
        to,
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
            // Answers go to the distributor; the sender stays the operator's.
            reply_to: Some(reply_to),
            deletion_policy: partner.spec.tenant.deletion_policy,
        },
        link_base: (record.event == EmailEvent::Activation)
            .then(|| d.link_base.clone())
            .flatten(),
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

/// The deterministic Message-ID of a Partner's email `event`: the same on every retry, so a
/// message resent after a crash is recognisable as the same message. Derived by hashing, so it
/// reveals neither the uid nor anything secret.
pub fn message_id(partner_uid: &str, event: EmailEvent) -> String {
    message_id_in_period(partner_uid, event, 0)
}

/// The Message-ID of `event` in billing period `period` (the first period's is [`message_id`]).
fn message_id_in_period(partner_uid: &str, event: EmailEvent, period: u32) -> String {
    let key = match period {
        0 => format!("{partner_uid}/{}", event.as_str()),
        n => format!("{partner_uid}/{}/{n}", event.as_str()),
    };
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
/// and a Warning says it.
pub fn failed(status: &mut PartnerStatus, email: &Email, error: &str) -> PartnerEvent {
    mark_email_failed(status, &email.message_id, error);
    PartnerEvent {
        reason: EventReason::EmailDeliveryFailed,
        message: format!(
            "{} email to {} not delivered: {error}",
            email.event.as_str(),
            email.to.join(", ")
        ),
    }
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
