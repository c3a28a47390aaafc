//! The writes that follow the status: the tenant, the activation token, each email.

use super::draft::{Draft, ProvisionedDraft};
use super::{ActivationToken, Effect, Observation, emails};
use crate::api::{EmailEvent, PartnerStatus, Recipient};

/// The writes that follow the status: the tenant first (the activation Secret lives in it), then
/// each email not sent yet, the activation email right after its token is stored. Emails wait
/// for the next pass when this plan moved the level (see [`Effect::SendEmailsNextPass`]); none
/// goes out while the activation email cannot (no link can be made), so no partner hears of its
/// trial before it has its link.
pub(super) fn effects(d: &mut ProvisionedDraft) {
    emails::fix_facts(d);
    if let Some(tenant) = tenant_effect(d, true) {
        d.effects.insert(0, tenant);
    }
    // While the activation email is held, the partner hears of nothing else first.
    let activation_held = d.status.emails.iter().any(|e| {
        e.event == EmailEvent::Activation && e.sent_at.is_none() && emails::held_at(e, d.now)
    });
    let unsent: Vec<_> = d
        .status
        .emails
        .iter()
        .filter(|e| e.sent_at.is_none() && !emails::held_at(e, d.now))
        .filter(|e| !activation_held || e.recipient == Some(Recipient::Distributor))
        .cloned()
        .collect();
    let activation_blocked =
        d.link_base.is_none() && unsent.iter().any(|e| e.event == EmailEvent::Activation);
    if unsent.is_empty() || activation_blocked {
        return;
    }
    let level_moved =
        d.before.subscription_level.is_some() && d.before.subscription_level != Some(d.level);
    if level_moved {
        d.effects.push(Effect::SendEmailsNextPass);
        return;
    }
    for record in &unsent {
        let email = emails::email(d, record);
        if email.event == EmailEvent::Activation {
            d.effects.push(Effect::IssueActivation(ActivationToken {
                superseded: emails::superseded_activations(&d.status, &email.message_id),
                message_id: email.message_id.clone(),
                expires_at: email.vars.link_expires_at.unwrap_or(d.now),
            }));
        }
        d.effects.push(Effect::SendEmail(Box::new(email)));
    }
}

/// The tenant write this plan needs, if any: only for a tenant that exists or is to be made
/// (never while unbound: `bound` says), and only when what is observed differs from what the
/// status says at the level the steps reached.
pub(super) fn tenant_effect<P>(d: &mut Draft<P>, bound: bool) -> Option<Effect> {
    d.status.subscription_level = Some(d.level);
    let wanted = d.status.tenant.is_some() && (bound || d.obs.tenant_exists);
    if !wanted || tenant_current(d.obs, &d.status) {
        return None;
    }
    // A tenant whose namespace is missing holds nothing, whatever a cache still shows of its
    // entitlements: it is made again with the emailed link's token.
    let remade = !d.obs.tenant_exists || d.obs.entitlements.is_none();
    Some(Effect::EnsureTenant {
        restore_activation: remade.then(|| emails::sent_activation(&d.status)).flatten(),
    })
}

/// Whether the tenant is as `status` says: the namespace exists and its `entitlements` hold
/// what they should (compared with what is observed, never with an earlier status).
fn tenant_current(obs: &Observation, status: &PartnerStatus) -> bool {
    obs.tenant_exists
        && obs.entitlements.is_some_and(|observed| {
            // Keys someone else added are theirs: only the operator's own are compared.
            crate::tenant::entitlements_data(obs.partner, status).is_some_and(|desired| {
                desired
                    .iter()
                    .all(|(key, value)| observed.get(key) == Some(value))
            })
        })
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::super::fixtures::*;
    use super::super::{EventReason, plan, reasons};
    use super::*;
    use crate::api::SubscriptionLevel;
    use crate::tenant::entitlements_data;

    #[test]
    fn the_chain_names_its_steps_in_the_order_a_partner_lives() {
        // The first plan provisions, records the activation email, and issues its token
        // before sending it; the tenant comes first.
        let (p, d) = (partner(), distributor());
        let first = plan(&observe(&p, &d, None, t0()));
        let kinds: Vec<_> = first
            .effects
            .iter()
            .map(|e| match e {
                Effect::EnsureTenant { .. } => "tenant",
                Effect::IssueActivation(_) => "issue",
                Effect::SendEmail(_) => "send",
                Effect::Event(_) => "event",
                Effect::SendEmailsNextPass => "next pass",
                Effect::DeliverWebhook(_) => "webhook",
            })
            .collect();
        assert_eq!(kinds, ["tenant", "event", "issue", "send"]);
        // The activation link's expiry (the `Activated` condition turns) comes before the
        // notice.
        assert_eq!(first.next_review, Some(t0() + Duration::days(7)));
    }

    #[test]
    fn emails_decided_by_a_deadline_go_out_in_their_own_pass() {
        let (p, d) = (partner(), distributor());
        let p = settle(&observe(&p, &d, None, t0()));
        let data = entitlements_data(&p, p.status.as_ref().unwrap()).unwrap();
        let ended = plan(&observe(&p, &d, Some(&data), t0() + Duration::days(14)));
        assert_eq!(
            ended.status.subscription_level,
            Some(SubscriptionLevel::Production)
        );
        // The tenant's entitlements follow the new level in the same pass; the emails wait.
        assert_eq!(
            ended.effects[0],
            Effect::EnsureTenant {
                restore_activation: None
            }
        );
        assert!(ended.effects.contains(&Effect::SendEmailsNextPass));
        assert!(
            !ended
                .effects
                .iter()
                .any(|e| matches!(e, Effect::SendEmail(_)))
        );
        // The next pass, on the status written, sends them.
        let mut p = p;
        p.status = Some(ended.status.clone());
        let data = entitlements_data(&p, p.status.as_ref().unwrap()).unwrap();
        let next = plan(&observe(&p, &d, Some(&data), t0() + Duration::days(14)));
        let sent: Vec<_> = next
            .effects
            .iter()
            .filter_map(|e| match e {
                Effect::SendEmail(email) => Some((email.event, email.recipient)),
                _ => None,
            })
            .collect();
        // The partner and the distributor, each in a message of their own.
        assert_eq!(
            sent,
            [
                (EmailEvent::Converted, Recipient::Partner),
                (EmailEvent::Converted, Recipient::Distributor)
            ]
        );
    }

    #[test]
    fn a_tenant_whose_entitlements_are_missing_gets_the_emailed_activation_token_back() {
        let (p, d) = (partner(), distributor());
        let p = settle(&observe(&p, &d, None, t0()));
        let again = plan(&observe(&p, &d, None, t0() + Duration::hours(1)));
        let activation = &p.status.as_ref().unwrap().emails[0];
        assert_eq!(
            again.effects,
            [Effect::EnsureTenant {
                restore_activation: Some(ActivationToken {
                    superseded: vec![],
                    message_id: activation.message_id.clone(),
                    expires_at: t0() + Duration::days(7),
                })
            }]
        );
        // Entitlements that are there but stale are rewritten without touching the token.
        let mut stale = entitlements_data(&p, p.status.as_ref().unwrap()).unwrap();
        stale.insert("level".into(), "Production".into());
        let fix = plan(&observe(&p, &d, Some(&stale), t0() + Duration::hours(1)));
        assert_eq!(
            fix.effects,
            [Effect::EnsureTenant {
                restore_activation: None
            }]
        );
    }

    #[test]
    fn without_a_base_url_the_activation_email_waits_and_says_why_once() {
        let p = partner();
        let mut d = distributor();
        d.spec.activation.base_url = None;
        let first = plan(&observe(&p, &d, None, t0()));
        assert!(
            !first
                .effects
                .iter()
                .any(|e| matches!(e, Effect::SendEmail(_) | Effect::IssueActivation(_)))
        );
        let failures: Vec<_> = first
            .effects
            .iter()
            .filter(
                |e| matches!(e, Effect::Event(ev) if ev.reason == EventReason::EmailDeliveryFailed),
            )
            .collect();
        assert_eq!(failures.len(), 1);
        let sent = crate::api::find_condition(
            &first.status.conditions,
            crate::api::types::ACTIVATION_SENT,
        )
        .unwrap();
        assert_eq!(sent.reason, reasons::EMAIL_DELIVERY_FAILED);
        assert!(sent.message.contains("spec.activation.baseUrl"));
        // Said once: the next plan finds the reason recorded.
        let mut p = p;
        p.status = Some(first.status.clone());
        let again = plan(&observe(&p, &d, None, t0()));
        assert!(!again.effects.iter().any(|e| matches!(e, Effect::Event(_))));
        // Nothing else is mailed before the partner has its link, not even when its trial ends.
        let mut tenant_made = p.clone();
        tenant_made.status = Some(again.status.clone());
        let data = entitlements_data(&tenant_made, tenant_made.status.as_ref().unwrap()).unwrap();
        let ended = plan(&observe(
            &tenant_made,
            &d,
            Some(&data),
            t0() + Duration::days(15),
        ));
        assert!(
            ended
                .status
                .emails
                .iter()
                .any(|e| e.event == EmailEvent::Converted)
        );
        assert!(
            !ended
                .effects
                .iter()
                .any(|e| matches!(e, Effect::SendEmail(_) | Effect::SendEmailsNextPass))
        );
        // The operator's default base URL is enough.
        let with_default = plan(&Observation {
            default_activation_base_url: Some("https://portal.example/a"),
            ..observe(&p, &d, None, t0())
        });
        assert!(with_default.effects.iter().any(|e| matches!(
            e,
            Effect::SendEmail(email) if email.link_base.as_ref().map(|u| u.as_str()) == Some("https://portal.example/a")
        )));
    }
}
