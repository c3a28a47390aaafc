//! Activation: the partner opens the emailed link and the operator's activation service records
//! it (`status.activation.activatedAt`, under its own field manager); the lifecycle then says so
//! (the `Activated` condition and Event, an email to the distributor). A declarative request for
//! a new link (`spec.activation.resendRequest`) issues a new token and email until then.

use chrono::Duration;
use sha2::{Digest, Sha256};

use super::draft::ProvisionedDraft;
use super::emails;
use super::reasons::{self, EventReason};
use crate::api::grammar::Zulu;
use crate::api::{EmailEvent, EmailRecord, Recipient, find_condition, types};

/// Activation emails kept in `status.emails` beyond the first: a link older than these stops
/// being told apart from a wrong one (404 instead of 410), and the status stays bounded however
/// many resends are asked for.
pub const KEPT_RESENDS: usize = 4;

/// A new value of `spec.activation.resendRequest` is handled once: before the tenant is
/// activated, by a new activation email (its own Message-ID, a new token that replaces the
/// previous one), unless an activation email is still on its way (it carries a fresh link
/// anyway); once activated, by a refusal (a Warning, and the `Activated` condition's reason).
/// Either way `status.activation.resendHandled` records the value.
pub(super) fn resend(d: &mut ProvisionedDraft) {
    let Some(request) = d.partner.spec.activation.resend_request.clone() else {
        return;
    };
    let validity = Duration::days(i64::from(
        d.distributor().spec.activation.link_validity_days,
    ));
    let uid = d.uid().to_string();
    let activation = d.status.activation.get_or_insert_with(Default::default);
    if activation.resend_handled.as_deref() == Some(request.as_str()) {
        return;
    }
    activation.resend_handled = Some(request.clone());
    if let Some(at) = activation.activated_at {
        d.event(
            EventReason::ResendRefused,
            format!(
                "spec.activation.resendRequest {request:?} refused: the tenant was activated at {}",
                at.zulu()
            ),
        );
        return;
    }
    let pending = d
        .status
        .emails
        .iter()
        .any(|e| e.event == EmailEvent::Activation && e.sent_at.is_none());
    if pending {
        return;
    }
    let previous = activation.message_id.clone().unwrap_or_default();
    let id = resend_message_id(&uid, &previous, &request);
    activation.message_id = Some(id.clone());
    activation.link_expires_at = Some(d.now + validity);
    activation.sent_at = None;
    d.status.emails.push(EmailRecord {
        event: EmailEvent::Activation,
        recipient: Some(Recipient::Partner),
        period: 0,
        message_id: id,
        sent_at: None,
        last_error: None,
        facts: None,
        held: None,
    });
    prune_resends(d);
}

/// Keeps the first activation email's record (its presence stops it being planned again) and
/// the newest [`KEPT_RESENDS`] resends.
fn prune_resends(d: &mut ProvisionedDraft) {
    let activations: Vec<usize> = d
        .status
        .emails
        .iter()
        .enumerate()
        .filter(|(_, e)| e.event == EmailEvent::Activation)
        .map(|(i, _)| i)
        .collect();
    let excess = activations.len().saturating_sub(KEPT_RESENDS + 1);
    for index in activations.into_iter().skip(1).take(excess).rev() {
        d.status.emails.remove(index);
    }
}

/// The Message-ID of the activation email that answers the resend `request`, following the one
/// with `previous`: deterministic (a retry after a crash is the same message, with the same
/// token) and new for every request, even a value asked for before.
pub fn resend_message_id(partner_uid: &str, previous: &str, request: &str) -> String {
    let key = format!("{partner_uid}/activation/resend/{previous}/{request}");
    let digest = Sha256::digest(key.as_bytes());
    format!(
        "<activation.{}@partner-operator.io>",
        &hex::encode(digest)[..32]
    )
}

/// Once the activation service recorded `activatedAt`, the distributor is told by email and an
/// Event says it, once.
pub(super) fn activated(d: &mut ProvisionedDraft) {
    if d.status
        .activation
        .as_ref()
        .and_then(|a| a.activated_at)
        .is_none()
    {
        return;
    }
    if emails::record(d, EmailEvent::Activated) {
        d.event(
            EventReason::Activated,
            format!("{} activated its tenant", d.partner.spec.organization_name),
        );
    }
}

/// The `Activated` condition: True once activated (reason `ResendRefused` while the last resend
/// request was refused); else False, `AwaitingActivation` until the link expires (a deadline)
/// and `ActivationLinkExpired` after.
pub(super) fn condition(d: &mut ProvisionedDraft) {
    let activation = d.status.activation.clone().unwrap_or_default();
    if let Some(at) = activation.activated_at {
        let request = d.partner.spec.activation.resend_request.as_deref();
        let refused_now = d.effects.iter().any(
            |e| matches!(e, super::Effect::Event(ev) if ev.reason == EventReason::ResendRefused),
        );
        let refused_before = find_condition(&d.before.conditions, types::ACTIVATED)
            .is_some_and(|c| c.reason == reasons::RESEND_REFUSED)
            && request.is_some()
            && request == activation.resend_handled.as_deref();
        let at = at.zulu();
        let (reason, message) = match (refused_now || refused_before, request) {
            (true, Some(request)) => (
                reasons::RESEND_REFUSED,
                format!(
                    "activated at {at}; spec.activation.resendRequest {request:?} refused: the \
                     tenant is activated"
                ),
            ),
            _ => (reasons::ACTIVATED, format!("activated at {at}")),
        };
        d.set_condition(types::ACTIVATED, true, reason, message);
        return;
    }
    let Some(expires) = activation.link_expires_at else {
        d.set_condition(
            types::ACTIVATED,
            false,
            reasons::AWAITING_ACTIVATION,
            "the activation link is not sent yet",
        );
        return;
    };
    if d.now >= expires {
        d.set_condition(
            types::ACTIVATED,
            false,
            reasons::ACTIVATION_LINK_EXPIRED,
            format!(
                "the activation link expired at {}: set spec.activation.resendRequest to a new \
                 value to send a new one",
                expires.zulu()
            ),
        );
    } else {
        d.deadlines.push(expires);
        d.set_condition(
            types::ACTIVATED,
            false,
            reasons::AWAITING_ACTIVATION,
            format!(
                "waiting for the partner to open the activation link (valid until {})",
                expires.zulu()
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::super::fixtures::*;
    use super::super::{Effect, Plan, plan};
    use super::*;
    use crate::api::{Partner, find_condition};
    use crate::tenant::entitlements_data;

    /// A Partner whose tenant is provisioned and whose activation email went out at t0.
    fn onboarded() -> Partner {
        let (p, d) = (partner(), distributor());
        settle(&observe(&p, &d, None, t0()))
    }

    /// `p` as the operator leaves it at `at`, its tenant as its status says.
    fn settle_at(p: &Partner, at: chrono::DateTime<chrono::Utc>) -> Partner {
        let d = distributor();
        let data = entitlements_data(p, p.status.as_ref().unwrap()).unwrap();
        settle(&observe(p, &d, Some(&data), at))
    }

    fn plan_at(p: &Partner, at: chrono::DateTime<chrono::Utc>) -> Plan {
        let d = distributor();
        let data = entitlements_data(p, p.status.as_ref().unwrap()).unwrap();
        plan(&observe(p, &d, Some(&data), at))
    }

    fn activated_condition(plan: &Plan) -> (String, String) {
        let c = find_condition(&plan.status.conditions, types::ACTIVATED).unwrap();
        (c.status.clone(), c.reason.clone())
    }

    fn events(plan: &Plan) -> Vec<EventReason> {
        plan.effects
            .iter()
            .filter_map(|e| match e {
                Effect::Event(ev) => Some(ev.reason),
                _ => None,
            })
            .collect()
    }

    fn sends(plan: &Plan) -> Vec<(EmailEvent, String, Vec<String>)> {
        plan.effects
            .iter()
            .filter_map(|e| match e {
                Effect::SendEmail(email) => {
                    Some((email.event, email.message_id.clone(), email.to.clone()))
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn the_link_is_awaited_until_it_expires() {
        let p = onboarded();
        let waiting = plan_at(&p, t0() + Duration::hours(1));
        assert_eq!(
            activated_condition(&waiting),
            ("False".into(), reasons::AWAITING_ACTIVATION.into())
        );
        assert_eq!(waiting.next_review, Some(t0() + Duration::days(7)));
        let expired = plan_at(&p, t0() + Duration::days(7));
        assert_eq!(
            activated_condition(&expired),
            ("False".into(), reasons::ACTIVATION_LINK_EXPIRED.into())
        );
    }

    #[test]
    fn an_activation_is_told_once_by_an_event_and_an_email_to_the_distributor() {
        let mut p = onboarded();
        let at = t0() + Duration::days(1);
        p.status
            .as_mut()
            .unwrap()
            .activation
            .as_mut()
            .unwrap()
            .activated_at = Some(at);
        let told = plan_at(&p, at);
        assert_eq!(
            activated_condition(&told),
            ("True".into(), reasons::ACTIVATED.into())
        );
        assert_eq!(events(&told), [EventReason::Activated]);
        let sent = sends(&told);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].0, EmailEvent::Activated);
        assert_eq!(sent[0].2, ["ops@northwind.example"]);
        let p = settle_at(&p, at);
        let again = plan_at(&p, at + Duration::hours(1));
        assert!(again.effects.is_empty(), "{:?}", again.effects);
        assert_eq!(again.status, p.status.unwrap());
    }

    #[test]
    fn a_resend_request_sends_a_new_link_once() {
        let mut p = onboarded();
        let first_id = p
            .status
            .as_ref()
            .unwrap()
            .activation
            .as_ref()
            .unwrap()
            .message_id
            .clone()
            .unwrap();
        p.spec.activation.resend_request = Some("2027-03-03T10:00:00Z".into());
        let at = t0() + Duration::days(2);
        let resent = plan_at(&p, at);
        let activation = resent.status.activation.clone().unwrap();
        assert_eq!(
            activation.resend_handled.as_deref(),
            Some("2027-03-03T10:00:00Z")
        );
        assert_eq!(activation.link_expires_at, Some(at + Duration::days(7)));
        let new_id = activation.message_id.clone().unwrap();
        assert_ne!(new_id, first_id);
        assert_eq!(
            new_id,
            resend_message_id("uid-1", &first_id, "2027-03-03T10:00:00Z")
        );
        let issued: Vec<_> = resent
            .effects
            .iter()
            .filter_map(|e| match e {
                Effect::IssueActivation(t) => Some(t.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(issued.len(), 1);
        assert_eq!(issued[0].message_id, new_id);
        assert_eq!(issued[0].superseded, std::slice::from_ref(&first_id));
        assert_eq!(
            sends(&resent),
            [(
                EmailEvent::Activation,
                new_id.clone(),
                vec!["admin@contoso.example".to_string()]
            )]
        );
        // Handled: the same request again sends nothing.
        let p = settle_at(&p, at);
        assert!(plan_at(&p, at + Duration::hours(1)).effects.is_empty());
    }

    #[test]
    fn a_resend_request_after_activation_is_refused_once_and_recorded_as_handled() {
        // A first request was answered with a new link.
        let mut p = onboarded();
        p.spec.activation.resend_request = Some("2027-03-03T10:00:00Z".into());
        let at = t0() + Duration::days(2);
        let mut p = settle_at(&p, at);
        let activated = at + Duration::hours(2);
        p.status
            .as_mut()
            .unwrap()
            .activation
            .as_mut()
            .unwrap()
            .activated_at = Some(activated);
        let mut p = settle_at(&p, activated);
        p.spec.activation.resend_request = Some("again".into());
        let refused = plan_at(&p, activated + Duration::hours(1));
        assert_eq!(events(&refused), [EventReason::ResendRefused]);
        assert!(sends(&refused).is_empty());
        assert_eq!(
            activated_condition(&refused),
            ("True".into(), reasons::RESEND_REFUSED.into())
        );
        assert_eq!(
            refused
                .status
                .activation
                .as_ref()
                .unwrap()
                .resend_handled
                .as_deref(),
            Some("again")
        );
        p.status = Some(refused.status.clone());
        let after = plan_at(&p, activated + Duration::hours(2));
        assert!(after.effects.is_empty(), "{:?}", after.effects);
        assert_eq!(
            activated_condition(&after),
            ("True".into(), reasons::RESEND_REFUSED.into())
        );
    }

    #[test]
    fn resends_keep_the_status_bounded() {
        let mut p = onboarded();
        for n in 0..(KEPT_RESENDS + 3) {
            p.spec.activation.resend_request = Some(format!("r{n}"));
            let at = t0() + Duration::hours(n as i64 + 1);
            p = settle_at(&p, at);
        }
        let activations = p
            .status
            .as_ref()
            .unwrap()
            .emails
            .iter()
            .filter(|e| e.event == EmailEvent::Activation)
            .count();
        assert_eq!(activations, KEPT_RESENDS + 1);
        assert_eq!(
            p.status.unwrap().emails[0].message_id,
            super::super::message_id("uid-1", EmailEvent::Activation)
        );
    }
}
