//! A Partner's life carried forward as if every write of its plans succeeded: what the operator
//! would do from an observation, at its time, until nothing is left to do. Tests follow a
//! Partner through its life with it, and `kubectl partner status` tells what comes next with it,
//! by the operator's own rules.

use std::collections::BTreeMap;

use super::{Effect, Observation, Plan, WebhookSend, mark_email_sent, plan, webhooks};
use crate::api::Partner;

/// What a simulation did, and where it left the Partner.
#[derive(Clone, Debug)]
pub struct Simulation {
    /// The Partner with the status its last plan wrote, the effects recorded in it.
    pub partner: Partner,
    /// Every plan made, in order: the first is what the operator does on its first look.
    pub plans: Vec<Plan>,
    /// The webhook deliveries made, in order.
    pub webhooks: Vec<WebhookSend>,
    /// Whether the tenant namespace exists (owned by the Partner) after the last plan.
    pub tenant_exists: bool,
    /// The tenant's `entitlements` after the last plan, as written.
    pub entitlements: Option<BTreeMap<String, String>>,
}

impl Simulation {
    /// Whether the last plan left nothing to do.
    pub fn settled(&self) -> bool {
        self.plans
            .last()
            .is_some_and(|plan| plan.effects.is_empty())
    }

    /// Every effect of every plan, in the order they were carried out.
    pub fn effects(&self) -> impl Iterator<Item = &Effect> {
        self.plans.iter().flat_map(|plan| plan.effects.iter())
    }

    /// The next deadline the last plan set, if any.
    pub fn next_review(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        self.plans.last().and_then(|plan| plan.next_review)
    }
}

/// Plans from `start`, carries each plan out as if every effect succeeded, and plans again (at
/// the same time, over the status written and the tenant as now made) until a plan has no effect
/// or `max_plans` were made. Carried out: the status is written; the tenant is made (unless its
/// name is taken) with the entitlements the status implies; every email sent is recorded as sent
/// at `start.now`; every webhook delivery is recorded as delivered. Activation tokens, Events and
/// the next pass need nothing recorded.
pub fn simulate(start: &Observation, max_plans: usize) -> Simulation {
    let mut run = Simulation {
        partner: start.partner.clone(),
        plans: Vec::new(),
        webhooks: Vec::new(),
        tenant_exists: start.tenant_exists,
        entitlements: start.entitlements.cloned(),
    };
    while run.plans.len() < max_plans && !run.settled() {
        let plan = plan(&Observation {
            partner: &run.partner,
            tenant_exists: run.tenant_exists,
            entitlements: run.entitlements.as_ref(),
            ..*start
        });
        run.carry_out(&plan, start);
        run.plans.push(plan);
    }
    run
}

impl Simulation {
    fn carry_out(&mut self, plan: &Plan, start: &Observation) {
        let mut status = plan.status.clone();
        for effect in &plan.effects {
            match effect {
                Effect::EnsureTenant { .. } => {
                    self.tenant_exists = !start.tenant_taken;
                    if self.tenant_exists {
                        self.entitlements =
                            crate::tenant::entitlements_data(&self.partner, &plan.status);
                    }
                }
                Effect::SendEmail(email) => {
                    mark_email_sent(&mut status, &email.message_id, start.now)
                }
                Effect::DeliverWebhook(send) => {
                    webhooks::delivered(&mut status, &send.record.id, &send.endpoint.name);
                    self.webhooks.push((**send).clone());
                }
                Effect::IssueActivation(_) | Effect::Event(_) | Effect::SendEmailsNextPass => {}
            }
        }
        self.partner.status = Some(status);
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::super::fixtures::*;
    use super::*;
    use crate::api::{EmailEvent, SecretKeyRef, SubscriptionLevel, WebhookEndpoint};

    #[test]
    fn a_new_partner_settles_provisioned_with_its_activation_email_sent() {
        let (p, d) = (partner(), distributor());
        let run = simulate(&observe(&p, &d, None, t0()), 8);
        assert!(run.settled());
        // Provisioned and mailed, then a look that finds everything done.
        assert_eq!(run.plans.len(), 2);
        assert!(run.tenant_exists);
        let status = run.partner.status.as_ref().unwrap();
        assert_eq!(
            run.entitlements,
            crate::tenant::entitlements_data(&run.partner, status)
        );
        assert_eq!(status.subscription_level, Some(SubscriptionLevel::Trial));
        assert!(status.emails.iter().all(|e| e.sent_at == Some(t0())));
        assert_eq!(
            status.activation.as_ref().and_then(|a| a.sent_at),
            Some(t0())
        );
        assert_eq!(run.next_review(), Some(t0() + Duration::days(7)));
    }

    #[test]
    fn emails_held_for_the_next_pass_go_out_in_the_same_simulation() {
        let (p, d) = (partner(), distributor());
        let p = settle(&observe(&p, &d, None, t0()));
        let data = crate::tenant::entitlements_data(&p, p.status.as_ref().unwrap());
        let run = simulate(
            &observe(&p, &d, data.as_ref(), t0() + Duration::days(14)),
            8,
        );
        assert!(run.settled());
        assert!(run.plans[0].effects.contains(&Effect::SendEmailsNextPass));
        let sent: Vec<_> = run
            .effects()
            .filter_map(|e| match e {
                Effect::SendEmail(email) => Some(email.event),
                _ => None,
            })
            .collect();
        assert_eq!(sent, [EmailEvent::Converted, EmailEvent::Converted]);
    }

    #[test]
    fn a_limit_stops_a_simulation_that_has_work_left() {
        let (p, d) = (partner(), distributor());
        let run = simulate(&observe(&p, &d, None, t0()), 1);
        assert_eq!(run.plans.len(), 1);
        assert!(!run.settled());
        // The first plan was carried out all the same.
        assert!(run.tenant_exists);
    }

    #[test]
    fn webhook_deliveries_are_recorded_as_delivered_one_event_at_a_time() {
        let p = partner();
        let mut d = distributor();
        d.spec.webhooks.endpoints = vec![WebhookEndpoint {
            name: "billing".into(),
            url: "https://billing.example/hooks".into(),
            signing_key_secret_ref: SecretKeyRef {
                name: "key".into(),
                key: "signingKey".into(),
            },
            types: None,
            timeout_seconds: 10,
        }];
        let run = simulate(&observe(&p, &d, None, t0()), 8);
        assert!(run.settled());
        let ids: Vec<_> = run.webhooks.iter().map(|s| s.record.id.as_str()).collect();
        assert_eq!(ids, ["uid-1.provisioned.0"]);
        assert!(run.partner.status.unwrap().webhooks.is_empty());
    }

    #[test]
    fn a_taken_tenant_name_is_never_made() {
        let (p, d) = (partner(), distributor());
        let run = simulate(
            &Observation {
                tenant_taken: true,
                ..observe(&p, &d, None, t0())
            },
            8,
        );
        assert!(!run.tenant_exists && run.entitlements.is_none());
        assert!(run.partner.status.unwrap().tenant.is_none());
    }
}
