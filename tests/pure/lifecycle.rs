//! The subscription lifecycle (docs/lifecycle.md), decided by `lifecycle::plan`, tested without a server:
//! a table test per transition, and property tests over random specs, clocks and event orders.

use chrono::{DateTime, Duration, TimeZone, Utc};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, ObjectMeta,
};
use partner_operator::api::*;
use partner_operator::lifecycle::{self, Effect, EventReason, Observation, Plan, reasons};
use partner_operator::{binding, tenant};
use proptest::prelude::*;

/// The tenant write of a plan that has no activation token to restore.
const ENSURE_TENANT: Effect = Effect::EnsureTenant {
    restore_activation: None,
};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 2, 9, 30, 0).unwrap()
}

fn distributor(days: u32, notice: u32, auto: bool) -> Distributor {
    let mut d = Distributor::new(
        "northwind",
        DistributorSpec {
            organization_name: "Northwind".into(),
            notification_email: "ops@northwind.example".into(),
            skus: vec![Sku("ESSENTIALS".into()), Sku("GOVERNANCE".into())],
            partner_namespaces: None,
            trial: TrialPolicy {
                days,
                upgrade_notice_days: notice,
                auto_upgrade: auto,
            },
            activation: ActivationPolicy::default(),
            email: EmailPolicy::default(),
            webhooks: WebhookPolicy::default(),
            branding: Default::default(),
        },
    );
    d.metadata.uid = Some("dist-uid".into());
    d
}

fn partner() -> Partner {
    let mut p = Partner::new(
        "contoso",
        PartnerSpec {
            organization_name: "Contoso".into(),
            notification_email: "admin@contoso.example".into(),
            distributor_ref: DistributorRef {
                name: "northwind".into(),
            },
            subscription: Subscription::default(),
            tenant: TenantPolicy::default(),
            activation: Default::default(),
            import: None,
        },
    );
    p.metadata.namespace = Some("northwind-partners".into());
    p.metadata.uid = Some("0b7c6a52-4f7e-4d8e-9a55-7f3f2f7a1c11".into());
    p.metadata.generation = Some(1);
    p
}

/// A model of the reconciler and the world around it: it follows a plan the way the controller
/// does (write status, perform effects, record what they did) and remembers every email sent.
struct World {
    partner: Partner,
    distributor: Option<Distributor>,
    namespace_allowed: bool,
    tenant_exists: bool,
    /// A namespace by the tenant's name exists that the Partner does not own.
    tenant_taken: bool,
    now: DateTime<Utc>,
    /// The `data` of the tenant's `entitlements` ConfigMap.
    entitlements: Option<std::collections::BTreeMap<String, String>>,
    /// The next tenant write is lost (the process dies after writing the status).
    lose_tenant_write: bool,
    /// (event, Message-ID, recipients) of every delivery, retries included.
    sent: Vec<(EmailEvent, String, Vec<String>)>,
    /// The Message-IDs of the activation tokens stored.
    issued: Vec<String>,
    events: Vec<EventReason>,
    /// (id, type) of every webhook delivery, repeats included, in the order they went out.
    webhooks: Vec<(String, WebhookEventType)>,
}

impl World {
    fn new(partner: Partner, distributor: Distributor) -> Self {
        Self {
            partner,
            distributor: Some(distributor),
            namespace_allowed: true,
            tenant_exists: false,
            tenant_taken: false,
            entitlements: None,
            lose_tenant_write: false,
            now: t0(),
            sent: vec![],
            issued: vec![],
            events: vec![],
            webhooks: vec![],
        }
    }

    fn plan(&self) -> Plan {
        lifecycle::plan(&self.observation())
    }

    fn observation(&self) -> Observation<'_> {
        Observation {
            partner: &self.partner,
            distributor: self.distributor.as_ref(),
            namespace_allowed: self.namespace_allowed,
            tenant_exists: self.tenant_exists,
            tenant_taken: self.tenant_taken,
            entitlements: self.entitlements.as_ref(),
            default_activation_base_url: Some("https://portal.example/activate"),
            now: self.now,
        }
    }

    /// One reconcile: plan, write status, perform the effects. With `crash`, the process dies
    /// after the emails went out but before their `sentAt` was recorded.
    fn reconcile_once(&mut self, crash: bool) -> Plan {
        let plan = self.plan();
        let mut status = plan.status.clone();
        for effect in &plan.effects {
            match effect {
                Effect::EnsureTenant { .. } if std::mem::take(&mut self.lose_tenant_write) => {}
                Effect::EnsureTenant { .. } => {
                    self.tenant_exists = !self.tenant_taken;
                    if self.tenant_exists {
                        self.entitlements = partner_operator::tenant::entitlements_data(
                            &self.partner,
                            &plan.status,
                        );
                    }
                }
                Effect::IssueActivation(token) => self.issued.push(token.message_id.clone()),
                Effect::SendEmail(email) => {
                    self.sent
                        .push((email.event, email.message_id.clone(), email.to.clone()));
                    lifecycle::mark_email_sent(&mut status, &email.message_id, self.now);
                }
                Effect::Event(event) => self.events.push(event.reason),
                Effect::SendEmailsNextPass | Effect::DeliverWebhook(_) => {}
            }
        }
        // The deliveries run beside the reconciler, one event at a time per endpoint, each
        // recorded once it went out; the world lets them all finish (a crash loses the status
        // written with them, so they go out again, with the same ids).
        if let Some(distributor) = &self.distributor {
            loop {
                let due = lifecycle::webhooks::due(&status, distributor);
                if due.is_empty() {
                    break;
                }
                for send in due {
                    self.webhooks
                        .push((send.record.id.clone(), send.record.type_));
                    lifecycle::webhooks::delivered(
                        &mut status,
                        &send.record.id,
                        &send.endpoint.name,
                    );
                }
            }
        }
        self.partner.status = Some(if crash { plan.status.clone() } else { status });
        if !crash && plan.effects.contains(&Effect::SendEmailsNextPass) {
            // The controller requeues at once: the emails go out in the next pass.
            self.reconcile_once(false);
        }
        plan
    }

    /// Reconciles until a plan has nothing left to do, as the controller's requeue would, every
    /// write succeeding; remembers what went out.
    fn settle(&mut self) -> Plan {
        let mut run = lifecycle::simulate(&self.observation(), 12);
        for effect in run.effects() {
            match effect {
                Effect::IssueActivation(token) => self.issued.push(token.message_id.clone()),
                Effect::SendEmail(email) => {
                    self.sent
                        .push((email.event, email.message_id.clone(), email.to.clone()))
                }
                Effect::Event(event) => self.events.push(event.reason),
                _ => {}
            }
        }
        let delivered = run
            .webhooks
            .iter()
            .map(|s| (s.record.id.clone(), s.record.type_));
        self.webhooks.extend(delivered);
        (self.tenant_exists, self.entitlements) = (run.tenant_exists, run.entitlements.take());
        self.partner = run.partner.clone();
        assert!(run.settled(), "did not settle: {:?}", run.plans.last());
        run.plans.pop().expect("a plan")
    }

    /// Moves time to `when` and settles. A Partner never reconciled before is first settled at
    /// the current time, so that its trial starts then.
    fn at(&mut self, when: DateTime<Utc>) -> Plan {
        if self.partner.status.is_none() {
            self.settle();
        }
        self.now = when;
        self.settle()
    }

    fn status(&self) -> &PartnerStatus {
        self.partner.status.as_ref().unwrap()
    }

    fn level(&self) -> SubscriptionLevel {
        self.status().subscription_level.unwrap()
    }

    /// The events of the messages sent to the partner, in order (the distributor gets a copy
    /// of each notice in a message of its own: [`World::sent_to_distributor`]).
    fn sent_events(&self) -> Vec<EmailEvent> {
        self.sent
            .iter()
            .filter(|(_, _, to)| to.as_slice() == ["admin@contoso.example"])
            .map(|(e, _, _)| *e)
            .collect()
    }

    /// The events of the messages sent to the distributor, in order.
    fn sent_to_distributor(&self) -> Vec<EmailEvent> {
        self.sent
            .iter()
            .filter(|(_, _, to)| to.as_slice() == ["ops@northwind.example"])
            .map(|(e, _, _)| *e)
            .collect()
    }

    fn ready(&self) -> (String, String) {
        let c = find_condition(&self.status().conditions, types::READY).unwrap();
        (c.status.clone(), c.reason.clone())
    }
}

#[test]
fn missing_distributor_leaves_the_partner_pending_and_does_nothing() {
    let mut w = World::new(partner(), distributor(14, 3, true));
    w.distributor = None;
    let plan = w.settle();
    assert_eq!(w.level(), SubscriptionLevel::Pending);
    assert!(plan.effects.is_empty() && plan.next_review.is_none());
    assert!(w.sent.is_empty() && w.status().tenant.is_none() && w.status().billing.is_none());
    assert_eq!(
        w.ready(),
        ("False".into(), reasons::DISTRIBUTOR_NOT_FOUND.into())
    );
    let bound = find_condition(&w.status().conditions, types::DISTRIBUTOR_BOUND).unwrap();
    assert_eq!(
        (bound.status.as_str(), bound.reason.as_str()),
        ("False", reasons::DISTRIBUTOR_NOT_FOUND)
    );
    assert!(bound.message.contains("spec.distributorRef.name"));
}

#[test]
fn namespace_not_allowed_leaves_the_partner_pending_until_it_is() {
    let mut w = World::new(partner(), distributor(14, 3, true));
    w.namespace_allowed = false;
    w.settle();
    assert_eq!(w.level(), SubscriptionLevel::Pending);
    assert_eq!(
        w.ready(),
        ("False".into(), reasons::NAMESPACE_NOT_ALLOWED.into())
    );
    assert!(w.sent.is_empty() && !w.tenant_exists);
    // The namespace gets its label an hour later: the Partner binds, and its trial starts then.
    w.namespace_allowed = true;
    w.at(t0() + Duration::hours(1));
    assert_eq!(w.level(), SubscriptionLevel::Trial);
    assert_eq!(
        w.status().trial.as_ref().unwrap().started_at,
        t0() + Duration::hours(1)
    );
}

#[test]
fn provisioning_starts_the_trial_and_sends_the_activation_link() {
    let mut w = World::new(partner(), distributor(14, 3, true));
    let first = w.plan();
    assert_eq!(first.effects[0], ENSURE_TENANT);
    let status = &first.status;
    assert_eq!(status.subscription_level, Some(SubscriptionLevel::Trial));
    let tenant = status.tenant.as_ref().unwrap();
    assert_eq!(tenant.namespace, tenant::tenant_namespace_of(&w.partner));
    assert!(tenant.namespace.starts_with("northwind-partners-contoso-"));
    assert_eq!(tenant.provisioned_at, t0());
    assert_eq!(
        tenant.id,
        tenant::tenant_id("0b7c6a52-4f7e-4d8e-9a55-7f3f2f7a1c11")
    );
    let trial = status.trial.as_ref().unwrap();
    assert_eq!(
        (trial.started_at, trial.ends_at),
        (t0(), t0() + Duration::days(14))
    );
    assert_eq!(status.expires_at, Some(t0() + Duration::days(14)));
    assert_eq!(
        status.skus,
        vec![Sku("ESSENTIALS".into()), Sku("GOVERNANCE".into())]
    );
    // The activation email is recorded (intent) before it is sent.
    let record = &status.emails[0];
    assert_eq!(
        (record.event, record.sent_at),
        (EmailEvent::Activation, None)
    );
    // Its token is stored in the tenant right before it is sent.
    let activation = first
        .effects
        .iter()
        .position(|e| matches!(e, Effect::IssueActivation(t) if t.message_id == record.message_id))
        .expect("the activation token is issued");
    let Effect::SendEmail(email) = &first.effects[activation + 1] else {
        panic!(
            "the activation email follows its token: {:?}",
            first.effects
        );
    };
    assert_eq!(
        (email.event, &email.message_id, &email.to),
        (
            EmailEvent::Activation,
            &record.message_id,
            &vec!["admin@contoso.example".to_string()]
        )
    );
    assert_eq!(email.vars.partner_organization, "Contoso");
    assert_eq!(email.vars.trial_ends_at, Some(t0() + Duration::days(14)));
    // No Reply-To unless the Distributor gives a public one (its notification address stays
    // its own); the email tells what deletion does to the tenant.
    assert_eq!(email.vars.reply_to, None);
    assert_eq!(email.vars.deletion_policy, DeletionPolicy::Delete);
    assert_eq!(
        email.link_base.as_ref().map(|u| u.as_str()),
        Some("https://portal.example/activate")
    );
    // The activation link's expiry (the `Activated` condition turns then) before the notice.
    assert_eq!(first.next_review, Some(t0() + Duration::days(7)));
    assert_eq!(
        status.activation.as_ref().unwrap().link_expires_at,
        Some(t0() + Duration::days(7))
    );
    let (ready, _) = {
        let c = find_condition(&status.conditions, types::READY).unwrap();
        (c.status.clone(), c.reason.clone())
    };
    assert_eq!(ready, "False");

    let settled = w.settle();
    assert_eq!(w.ready(), ("True".into(), "Ready".into()));
    assert_eq!(w.sent_events(), vec![EmailEvent::Activation]);
    assert_eq!(w.status().activation.as_ref().unwrap().sent_at, Some(t0()));
    assert!(settled.effects.is_empty());
    assert!(w.events.contains(&EventReason::TenantProvisioned));
    for condition in &w.status().conditions {
        assert_eq!(condition.observed_generation, Some(1), "{condition:?}");
    }
}

#[test]
fn a_settled_partner_plans_nothing_and_keeps_its_status() {
    let mut w = World::new(partner(), distributor(14, 3, true));
    w.settle();
    w.now = t0() + Duration::days(2);
    let plan = w.plan();
    assert!(plan.effects.is_empty());
    assert_eq!(Some(&plan.status), w.partner.status.as_ref());
}

#[test]
fn the_notice_goes_to_both_parties_three_days_before_the_end() {
    let mut w = World::new(partner(), distributor(14, 3, true));
    w.settle();
    w.at(t0() + Duration::days(11) - Duration::seconds(1));
    assert_eq!(w.sent_events(), vec![EmailEvent::Activation]);
    w.at(t0() + Duration::days(11));
    assert_eq!(
        w.sent_events(),
        vec![EmailEvent::Activation, EmailEvent::UpgradeNotice]
    );
    // Both parties, each in a message of their own, with Message-IDs of their own.
    assert_eq!(w.sent_to_distributor(), vec![EmailEvent::UpgradeNotice]);
    assert_eq!(w.sent[1].2, vec!["admin@contoso.example".to_string()]);
    assert_eq!(w.sent[2].2, vec!["ops@northwind.example".to_string()]);
    assert_ne!(w.sent[1].1, w.sent[2].1);
    assert_eq!(
        w.status().upgrade_notice_sent_at,
        Some(t0() + Duration::days(11))
    );
    assert!(w.events.contains(&EventReason::TrialEndingSoon));
    assert_eq!(w.plan().next_review, Some(t0() + Duration::days(14)));
}

#[test]
fn without_auto_upgrade_the_notice_announces_the_expiry() {
    let mut w = World::new(partner(), distributor(14, 3, false));
    w.at(t0() + Duration::days(12));
    assert_eq!(
        w.sent_events(),
        vec![EmailEvent::Activation, EmailEvent::ExpiryNotice]
    );
}

#[test]
fn a_partner_setting_overrides_the_distributor_default() {
    let mut p = partner();
    p.spec.subscription.auto_upgrade = Some(false);
    let mut w = World::new(p, distributor(14, 3, true));
    w.at(t0() + Duration::days(15));
    assert_eq!(w.level(), SubscriptionLevel::Expired);
}

#[test]
fn no_notice_when_upgrade_notice_days_is_zero() {
    let mut w = World::new(partner(), distributor(14, 0, true));
    // After the activation link's expiry, the next deadline is the trial's end: no notice.
    assert_eq!(w.settle().next_review, Some(t0() + Duration::days(7)));
    assert_eq!(
        w.at(t0() + Duration::days(7)).next_review,
        Some(t0() + Duration::days(14))
    );
    w.at(t0() + Duration::days(13));
    assert_eq!(w.sent_events(), vec![EmailEvent::Activation]);
}

#[test]
fn a_notice_whose_time_passed_at_provisioning_goes_out_at_once() {
    let mut w = World::new(partner(), distributor(2, 3, true));
    w.settle();
    assert_eq!(
        w.sent_events(),
        vec![EmailEvent::Activation, EmailEvent::UpgradeNotice]
    );
}

#[test]
fn no_notice_once_the_trial_has_ended() {
    // The operator was down through the notice and the end: only the conversion goes out.
    let mut w = World::new(partner(), distributor(14, 3, true));
    w.settle();
    w.at(t0() + Duration::days(20));
    assert_eq!(
        w.sent_events(),
        vec![EmailEvent::Activation, EmailEvent::Converted]
    );
}

#[test]
fn the_trial_converts_automatically_at_its_end_and_billing_starts_then() {
    let mut w = World::new(partner(), distributor(14, 3, true));
    w.settle();
    let ends = t0() + Duration::days(14);
    // The operator gets round to it two hours late: the timestamps are still the deadline's.
    w.at(ends + Duration::hours(2));
    assert_eq!(w.level(), SubscriptionLevel::Production);
    let production = w.status().production.clone().unwrap();
    assert_eq!(
        (production.since, production.reason),
        (ends, ProductionReason::AutoUpgrade)
    );
    let billing = w.status().billing.clone().unwrap();
    assert_eq!(
        (
            billing.billed_to.as_str(),
            billing.started_at,
            billing.ended_at
        ),
        ("northwind", ends, None)
    );
    assert_eq!(w.status().expires_at, None);
    assert!(
        w.events.contains(&EventReason::ConvertedToProduction)
            && w.events.contains(&EventReason::BillingStarted)
    );
    assert_eq!(w.ready(), ("True".into(), "Ready".into()));
    assert_eq!(w.plan().next_review, None);
}

#[test]
fn without_auto_upgrade_the_trial_expires_and_nothing_is_billed() {
    let mut w = World::new(partner(), distributor(14, 3, false));
    w.at(t0() + Duration::days(14));
    assert_eq!(w.level(), SubscriptionLevel::Expired);
    assert!(w.status().billing.is_none());
    assert_eq!(w.ready(), ("False".into(), reasons::EXPIRED.into()));
    assert_eq!(w.sent_events().last(), Some(&EmailEvent::TrialExpired));
    assert!(w.events.contains(&EventReason::TrialExpired));
}

#[test]
fn an_expiration_date_ends_the_trial_while_in_trial() {
    let mut p = partner();
    p.spec.subscription.expiration_date = Some(t0() + Duration::days(30));
    let mut w = World::new(p, distributor(45, 3, true));
    w.settle();
    assert_eq!(
        w.status().trial.as_ref().unwrap().ends_at,
        t0() + Duration::days(30)
    );
    w.at(t0() + Duration::days(29));
    assert_eq!(w.level(), SubscriptionLevel::Trial);
    w.at(t0() + Duration::days(30));
    assert_eq!(w.level(), SubscriptionLevel::Production);
    // The date that ended the trial does not also end Production.
    assert_eq!(w.status().expires_at, None);
    w.at(t0() + Duration::days(400));
    assert_eq!(w.level(), SubscriptionLevel::Production);
}

#[test]
fn a_backdated_expiration_date_ends_the_trial_when_it_starts_never_before() {
    let mut p = partner();
    p.spec.subscription.expiration_date = Some(Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).unwrap());
    let mut w = World::new(p, distributor(14, 3, true));
    // Created so, it is held: a re-apply from Git of a partner that lived before looks like
    // this, and onboarding it would mail it a trial that ends at once.
    w.settle();
    assert_eq!(w.level(), SubscriptionLevel::Pending);
    assert_eq!(
        w.ready(),
        ("False".into(), reasons::SUSPECTED_REBUILD.into())
    );
    assert_eq!(w.events, [EventReason::SuspectedRebuild]);
    assert!(w.sent.is_empty() && w.status().tenant.is_none());
    // Its owner changes the spec (here: nothing but the generation moves): onboarded then.
    w.partner.metadata.generation = Some(2);
    w.events.clear();
    w.settle();
    assert_eq!(w.level(), SubscriptionLevel::Production);
    let trial = w.status().trial.clone().unwrap();
    assert_eq!((trial.started_at, trial.ends_at), (t0(), t0()));
    assert_eq!(w.status().production.as_ref().unwrap().since, t0());
    assert_eq!(w.status().billing.as_ref().unwrap().started_at, t0());
    assert_eq!(
        w.events
            .iter()
            .filter(|e| **e == EventReason::ExpirationDateLimited)
            .count(),
        1
    );
}

#[test]
fn a_far_future_expiration_date_is_held_to_the_distributors_trial_days() {
    let mut p = partner();
    p.spec.subscription.expiration_date =
        Some(Utc.with_ymd_and_hms(9999, 12, 31, 0, 0, 0).unwrap());
    let mut w = World::new(p, distributor(14, 3, false));
    w.settle();
    let ends = t0() + Duration::days(14);
    assert_eq!(w.status().trial.as_ref().unwrap().ends_at, ends);
    assert_eq!(w.status().expires_at, Some(ends));
    assert_eq!(
        w.events
            .iter()
            .filter(|e| **e == EventReason::ExpirationDateLimited)
            .count(),
        1
    );
    // Said once: settled, it plans nothing.
    assert!(w.plan().effects.is_empty());
    w.at(ends);
    assert_eq!(w.level(), SubscriptionLevel::Expired);
    // A date inside the trial is the owner's to set, and says nothing.
    let mut p = partner();
    p.spec.subscription.expiration_date = Some(t0() + Duration::days(10));
    let mut w = World::new(p, distributor(14, 3, true));
    w.settle();
    assert_eq!(
        w.status().trial.as_ref().unwrap().ends_at,
        t0() + Duration::days(10)
    );
    assert!(!w.events.contains(&EventReason::ExpirationDateLimited));
}

#[test]
fn unbinding_a_production_partner_ends_billing_and_production_together() {
    for (unbind, grace) in [
        (
            (|w: &mut World| w.namespace_allowed = false) as fn(&mut World),
            Duration::zero(),
        ),
        // A Distributor that does not exist may come back (a restore brings it after its
        // Partners): Production waits ten minutes for it.
        (|w: &mut World| w.distributor = None, Duration::minutes(10)),
    ] {
        let mut w = World::new(partner(), distributor(14, 3, true));
        w.at(t0() + Duration::days(14));
        assert_eq!(w.level(), SubscriptionLevel::Production);
        w.now = t0() + Duration::days(20);
        unbind(&mut w);
        if grace > Duration::zero() {
            let kept = w.reconcile_once(false);
            assert_eq!(w.level(), SubscriptionLevel::Production);
            assert_eq!(kept.next_review, Some(w.now + grace));
        }
        let unbound_at = t0() + Duration::days(20) + grace;
        w.now = unbound_at;
        let plan = w.reconcile_once(false);
        assert_eq!(w.level(), SubscriptionLevel::Expired);
        assert_eq!(
            w.status().billing.as_ref().unwrap().ended_at,
            Some(unbound_at)
        );
        assert_eq!(w.status().expires_at, None);
        // The tenant's entitlements follow in the same pass.
        assert!(plan.effects.contains(&ENSURE_TENANT));
        assert!(
            w.events.contains(&EventReason::ProductionEndedUnbound)
                && w.events.contains(&EventReason::BillingEnded)
        );
        // Once: settled, nothing more.
        assert!(w.settle().effects.is_empty());
        let (_, billing) = distributor_totals(&[], [w.status()]);
        assert_eq!(billing.production_partners, 0);
    }
    // A trial unbound is only frozen: nothing was billed, nothing ends.
    let mut w = World::new(partner(), distributor(14, 3, true));
    w.settle();
    w.namespace_allowed = false;
    w.settle();
    assert_eq!(w.level(), SubscriptionLevel::Trial);
    assert!(w.status().billing.is_none());
}

#[test]
fn converting_by_hand_sets_the_new_expiration_and_its_end_stops_billing() {
    let mut w = World::new(partner(), distributor(14, 3, true));
    w.settle();
    let converted_at = t0() + Duration::days(5);
    let until = t0() + Duration::days(200);
    w.partner.spec.subscription.level = RequestedLevel::Production;
    w.partner.spec.subscription.expiration_date = Some(until);
    w.partner.metadata.generation = Some(2);
    let plan = w.at(converted_at);
    assert_eq!(w.level(), SubscriptionLevel::Production);
    let production = w.status().production.clone().unwrap();
    assert_eq!(
        (production.since, production.reason),
        (converted_at, ProductionReason::Manual)
    );
    assert_eq!(
        w.status().billing.as_ref().unwrap().started_at,
        converted_at
    );
    assert_eq!(w.status().expires_at, Some(until));
    // The activation link's expiry comes first, then the new end.
    assert_eq!(plan.next_review, Some(t0() + Duration::days(7)));
    assert_eq!(w.at(t0() + Duration::days(7)).next_review, Some(until));
    assert_eq!(w.sent_events().last(), Some(&EmailEvent::Converted));
    // Past the trial's old end nothing else happens: no notice, no second conversion.
    w.at(t0() + Duration::days(20));
    assert_eq!(
        w.sent_events(),
        vec![EmailEvent::Activation, EmailEvent::Converted]
    );
    // At the expiration date: Expired, billing ends at the date itself.
    w.at(until + Duration::minutes(3));
    assert_eq!(w.level(), SubscriptionLevel::Expired);
    assert_eq!(w.status().billing.as_ref().unwrap().ended_at, Some(until));
    assert_eq!(
        w.status().billing.as_ref().unwrap().started_at,
        converted_at
    );
    assert_eq!(w.sent_events().last(), Some(&EmailEvent::ProductionExpired));
    assert!(w.events.contains(&EventReason::BillingEnded));
}

#[test]
fn a_past_expiration_date_is_refused_in_a_condition_and_nothing_converts() {
    let mut w = World::new(partner(), distributor(14, 3, true));
    w.settle();
    w.partner.spec.subscription.level = RequestedLevel::Production;
    w.partner.spec.subscription.expiration_date = Some(t0() + Duration::days(1));
    w.partner.metadata.generation = Some(2);
    w.at(t0() + Duration::days(2));
    assert_eq!(w.level(), SubscriptionLevel::Trial);
    assert!(w.status().billing.is_none() && w.status().production.is_none());
    let ready = find_condition(&w.status().conditions, types::READY).unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", reasons::EXPIRATION_DATE_IN_PAST)
    );
    assert!(
        ready.message.contains("spec.subscription.expirationDate"),
        "{}",
        ready.message
    );
    assert_eq!(
        w.events
            .iter()
            .filter(|e| **e == EventReason::ExpirationDateInPast)
            .count(),
        1
    );
    // A future date fixes it.
    w.partner.spec.subscription.expiration_date = Some(t0() + Duration::days(90));
    w.partner.metadata.generation = Some(3);
    w.at(t0() + Duration::days(3));
    assert_eq!(w.level(), SubscriptionLevel::Production);
    assert_eq!(w.ready(), ("True".into(), "Ready".into()));
}

#[test]
fn an_expired_trial_can_be_converted_by_hand() {
    let mut w = World::new(partner(), distributor(14, 3, false));
    w.at(t0() + Duration::days(15));
    assert_eq!(w.level(), SubscriptionLevel::Expired);
    w.partner.spec.subscription.level = RequestedLevel::Production;
    w.partner.metadata.generation = Some(2);
    w.at(t0() + Duration::days(16));
    assert_eq!(w.level(), SubscriptionLevel::Production);
    assert_eq!(
        w.status().production.as_ref().unwrap().reason,
        ProductionReason::Manual
    );
    assert_eq!(
        w.status().billing.as_ref().unwrap().started_at,
        t0() + Duration::days(16)
    );
    assert_eq!(w.ready(), ("True".into(), "Ready".into()));
}

#[test]
fn a_partner_created_as_production_never_has_a_trial() {
    let mut p = partner();
    p.spec.subscription.level = RequestedLevel::Production;
    p.spec.subscription.expiration_date = Some(t0() + Duration::days(365));
    let mut w = World::new(p, distributor(14, 3, true));
    w.settle();
    assert_eq!(w.level(), SubscriptionLevel::Production);
    // Only the activation email, telling Production and its end; no trial, no conversion.
    assert_eq!(w.sent_events(), vec![EmailEvent::Activation]);
    let status = w.status();
    assert_eq!(status.trial, None);
    assert_eq!(status.expires_at, Some(t0() + Duration::days(365)));
    assert_eq!(status.production.as_ref().unwrap().since, t0());
    assert_eq!(status.billing.as_ref().unwrap().started_at, t0());
    let facts = status.emails[0].facts.clone().unwrap();
    assert_eq!(
        (
            facts.trial_ends_at,
            facts.production_since,
            facts.expires_at
        ),
        (None, Some(t0()), Some(t0() + Duration::days(365)))
    );
    assert!(w.events.contains(&EventReason::BillingStarted));
    assert!(!w.events.contains(&EventReason::ConvertedToProduction));
    assert!(!w.events.contains(&EventReason::TrialEndingSoon));
    // Its year passes without a notice or a conversion; then it expires.
    w.at(t0() + Duration::days(366));
    assert_eq!(w.level(), SubscriptionLevel::Expired);
    assert_eq!(
        w.sent_events(),
        vec![EmailEvent::Activation, EmailEvent::ProductionExpired]
    );
}

#[test]
fn an_expired_production_subscription_is_renewed_with_a_new_billing_period() {
    let mut p = partner();
    p.spec.subscription.level = RequestedLevel::Production;
    p.spec.subscription.expiration_date = Some(t0() + Duration::days(30));
    let mut w = World::new(p, distributor(14, 3, true));
    w.at(t0() + Duration::days(31));
    assert_eq!(w.level(), SubscriptionLevel::Expired);
    // A date still in the past renews nothing.
    w.partner.spec.subscription.expiration_date =
        Some(t0() + Duration::days(31) - Duration::hours(1));
    w.settle();
    assert_eq!(w.level(), SubscriptionLevel::Expired);
    // Moved into the future: Production again, billed from now, both parties told.
    let renewed_at = t0() + Duration::days(40);
    w.partner.spec.subscription.expiration_date = Some(t0() + Duration::days(100));
    w.at(renewed_at);
    assert_eq!(w.level(), SubscriptionLevel::Production);
    assert_eq!(w.ready(), ("True".into(), "Ready".into()));
    let status = w.status().clone();
    let production = status.production.unwrap();
    assert_eq!(
        (production.since, production.reason),
        (renewed_at, ProductionReason::Renewal)
    );
    let billing = status.billing.unwrap();
    assert_eq!((billing.started_at, billing.ended_at), (renewed_at, None));
    assert_eq!(
        billing.periods,
        vec![
            BillingPeriod {
                started_at: t0(),
                ended_at: Some(t0() + Duration::days(30))
            },
            BillingPeriod {
                started_at: renewed_at,
                ended_at: None
            },
        ]
    );
    assert_eq!(status.expires_at, Some(t0() + Duration::days(100)));
    assert!(w.events.contains(&EventReason::ProductionRenewed));
    let renewals: Vec<_> = w
        .sent
        .iter()
        .filter(|(e, _, _)| *e == EmailEvent::Renewed)
        .map(|(_, _, to)| to.clone())
        .collect();
    assert_eq!(
        renewals,
        [
            vec!["admin@contoso.example".to_string()],
            vec!["ops@northwind.example".to_string()]
        ]
    );
    // The renewed subscription ends in its turn, with an email of its own.
    w.at(t0() + Duration::days(101));
    assert_eq!(w.level(), SubscriptionLevel::Expired);
    let ends: Vec<_> = w
        .sent
        .iter()
        .filter(|(e, _, to)| *e == EmailEvent::ProductionExpired && to[0].starts_with("admin@"))
        .collect();
    assert_eq!(ends.len(), 2, "{:?}", w.sent_events());
    assert_ne!(
        ends[0].1, ends[1].1,
        "each period's end has its own Message-ID"
    );
    let billing = w.status().billing.clone().unwrap();
    assert_eq!(
        billing.periods[1].ended_at,
        Some(t0() + Duration::days(100))
    );
    assert_eq!(billing.ended_at, Some(t0() + Duration::days(100)));
}

#[test]
fn a_conversion_by_hand_ends_the_trial_then() {
    let mut w = World::new(partner(), distributor(14, 3, true));
    w.at(t0() + Duration::days(2));
    w.partner.spec.subscription.level = RequestedLevel::Production;
    w.settle();
    assert_eq!(
        w.status().trial.as_ref().unwrap().ends_at,
        t0() + Duration::days(2)
    );
}

#[test]
fn a_past_date_on_an_expired_trial_is_refused_and_said() {
    let mut w = World::new(partner(), distributor(14, 3, false));
    w.at(t0() + Duration::days(15));
    assert_eq!(w.level(), SubscriptionLevel::Expired);
    w.partner.spec.subscription.level = RequestedLevel::Production;
    w.partner.spec.subscription.expiration_date = Some(t0() + Duration::days(1));
    w.partner.metadata.generation = Some(2);
    w.settle();
    assert_eq!(w.level(), SubscriptionLevel::Expired);
    assert_eq!(
        w.ready(),
        ("False".into(), reasons::EXPIRATION_DATE_IN_PAST.into())
    );
    assert!(w.events.contains(&EventReason::ExpirationDateInPast));
}

#[test]
fn the_operator_never_downgrades() {
    let mut w = World::new(partner(), distributor(14, 3, true));
    w.at(t0() + Duration::days(14));
    assert_eq!(w.level(), SubscriptionLevel::Production);
    // The spec still says Trial (the default): Production stays.
    assert_eq!(w.partner.spec.subscription.level, RequestedLevel::Trial);
    w.at(t0() + Duration::days(40));
    assert_eq!(w.level(), SubscriptionLevel::Production);
    // The Distributor disappears: Production ends with its billing (never back to Trial), and
    // the Partner reports it is unbound.
    w.distributor = None;
    w.at(t0() + Duration::days(41));
    // Ten minutes for it to come back (a restore may bring it after its Partners).
    assert_eq!(w.level(), SubscriptionLevel::Production);
    w.at(t0() + Duration::days(41) + Duration::minutes(10));
    assert_eq!(w.level(), SubscriptionLevel::Expired);
    assert_eq!(
        w.ready(),
        ("False".into(), reasons::DISTRIBUTOR_NOT_FOUND.into())
    );
    let billing = w.status().billing.clone().unwrap();
    assert_eq!(
        (billing.started_at, billing.ended_at),
        (
            t0() + Duration::days(14),
            Some(t0() + Duration::days(41) + Duration::minutes(10))
        )
    );
}

#[test]
fn sku_changes_reach_the_status_and_the_tenant() {
    let mut w = World::new(partner(), distributor(14, 3, true));
    w.settle();
    let mut d = w.distributor.clone().unwrap();
    d.spec.skus.push(Sku("BACKUP".into()));
    w.distributor = Some(d);
    let plan = w.plan();
    assert_eq!(plan.effects, vec![ENSURE_TENANT]);
    assert_eq!(plan.status.skus.len(), 3);
}

#[test]
fn a_deleted_tenant_namespace_is_provisioned_again_with_the_same_id() {
    let mut w = World::new(partner(), distributor(14, 3, true));
    w.settle();
    let id = w.status().tenant.clone().unwrap();
    w.tenant_exists = false;
    let plan = w.plan();
    // Made again with the emailed link's token: a namespace that is gone holds no Secret,
    // whatever a cache still shows of its entitlements.
    let activation = w.status().activation.clone().unwrap().message_id;
    assert!(
        matches!(
            plan.effects.as_slice(),
            [Effect::EnsureTenant { restore_activation: Some(token) }]
                if Some(&token.message_id) == activation.as_ref()
        ),
        "{:?}",
        plan.effects
    );
    let provisioned = find_condition(&plan.status.conditions, types::TENANT_PROVISIONED).unwrap();
    assert_eq!(provisioned.status, "False");
    w.settle();
    assert_eq!(w.status().tenant.clone().unwrap(), id);
    assert_eq!(w.sent_events(), vec![EmailEvent::Activation]);
}

#[test]
fn a_crash_between_sending_and_recording_resends_the_same_message() {
    let mut w = World::new(partner(), distributor(14, 3, true));
    w.reconcile_once(true);
    w.reconcile_once(false);
    assert_eq!(w.sent.len(), 2);
    assert_eq!(
        w.sent[0].1, w.sent[1].1,
        "the retry carries the same Message-ID"
    );
    w.settle();
    assert_eq!(w.sent.len(), 2);
}

#[test]
fn a_failed_delivery_is_reported_until_it_succeeds() {
    let mut w = World::new(partner(), distributor(14, 3, true));
    let plan = w.plan();
    let mut status = plan.status.clone();
    let id = status.emails[0].message_id.clone();
    lifecycle::mark_email_failed(&mut status, &id, "550 mailbox unavailable");
    w.partner.status = Some(status);
    w.tenant_exists = true;
    let retry = w.plan();
    let sent = find_condition(&retry.status.conditions, types::ACTIVATION_SENT).unwrap();
    assert_eq!(sent.reason, reasons::EMAIL_DELIVERY_FAILED);
    assert!(sent.message.contains("550"));
    let ready = find_condition(&retry.status.conditions, types::READY).unwrap();
    assert_eq!(ready.reason, reasons::EMAIL_DELIVERY_FAILED);
    assert!(
        retry
            .effects
            .iter()
            .any(|e| matches!(e, Effect::SendEmail(email) if email.message_id == id))
    );
    w.settle();
    assert_eq!(w.ready(), ("True".into(), "Ready".into()));
}

#[test]
fn message_ids_are_deterministic_and_distinct_per_event() {
    let a = lifecycle::message_id("uid-1", EmailEvent::Activation);
    assert_eq!(a, lifecycle::message_id("uid-1", EmailEvent::Activation));
    assert_ne!(a, lifecycle::message_id("uid-1", EmailEvent::Converted));
    assert_ne!(a, lifecycle::message_id("uid-2", EmailEvent::Activation));
    assert!(a.starts_with("<activation.") && a.ends_with("@partner-operator.io>"));
    assert!(!a.contains("uid-1"));
}

#[test]
fn tenant_namespaces_come_from_the_partner_not_from_its_status() {
    let p = partner();
    let name = tenant::tenant_namespace_of(&p);
    assert_eq!(
        name,
        tenant::tenant_namespace(
            "northwind-partners",
            "contoso",
            "0b7c6a52-4f7e-4d8e-9a55-7f3f2f7a1c11"
        )
    );
    assert!(name.starts_with("northwind-partners-contoso-"), "{name}");
    assert!(tenant::is_dns1123_label(&name));
    let mut w = World::new(p, distributor(14, 3, true));
    w.settle();
    assert_eq!(w.status().tenant.clone().unwrap().namespace, name);

    // A status writer points the tenant elsewhere: the derived name wins and the status is
    // corrected; the tenant, as observed, already holds what the corrected status says.
    let mut status = w.status().clone();
    let tenant = status.tenant.as_mut().unwrap();
    let id = tenant.id.clone();
    tenant.namespace = "kube-system".into();
    tenant.id = "someone-else".into();
    w.partner.status = Some(status);
    let plan = w.plan();
    let corrected = plan.status.tenant.clone().unwrap();
    assert_eq!(
        (corrected.namespace.as_str(), corrected.id),
        (name.as_str(), id)
    );
    assert!(plan.effects.is_empty(), "{:?}", plan.effects);
}

#[test]
fn a_taken_tenant_name_is_reported_and_nothing_is_provisioned() {
    let mut w = World::new(partner(), distributor(14, 3, true));
    w.tenant_taken = true;
    let plan = w.settle();
    assert!(plan.effects.is_empty());
    let status = w.status();
    assert!(status.tenant.is_none(), "not provisioned");
    assert_eq!(status.subscription_level, Some(SubscriptionLevel::Pending));
    assert!(w.sent.is_empty(), "no activation email");
    assert_eq!(
        w.events,
        vec![EventReason::TenantNamespaceTaken],
        "one Event"
    );
    for type_ in [types::READY, types::TENANT_PROVISIONED] {
        let c = find_condition(&status.conditions, type_).unwrap();
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", reasons::TENANT_NAMESPACE_TAKEN)
        );
        assert!(c.message.contains(&tenant::tenant_namespace_of(&w.partner)));
    }
    // The name frees: provisioned as usual.
    w.tenant_taken = false;
    w.settle();
    assert_eq!(w.ready(), ("True".into(), "Ready".into()));
    assert_eq!(w.sent_events(), vec![EmailEvent::Activation]);
}

#[test]
fn namespace_binding_follows_the_selector_or_the_default_label() {
    let ns = |labels: &[(&str, &str)]| Namespace {
        metadata: ObjectMeta {
            name: Some("x".into()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        },
        ..Default::default()
    };
    let mut d = distributor(14, 3, true);
    assert!(binding::namespace_allowed(
        &d,
        &ns(&[("partner-operator.io/distributor", "northwind")])
    ));
    assert!(!binding::namespace_allowed(
        &d,
        &ns(&[("partner-operator.io/distributor", "other")])
    ));
    assert!(!binding::namespace_allowed(&d, &ns(&[])));
    d.spec.partner_namespaces = Some(LabelSelector {
        match_labels: Some([("team".to_string(), "northwind".to_string())].into()),
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: "env".into(),
            operator: "In".into(),
            values: Some(vec!["prod".into(), "staging".into()]),
        }]),
    });
    assert!(binding::namespace_allowed(
        &d,
        &ns(&[("team", "northwind"), ("env", "prod")])
    ));
    assert!(!binding::namespace_allowed(
        &d,
        &ns(&[("team", "northwind"), ("env", "dev")])
    ));
    assert!(!binding::namespace_allowed(
        &d,
        &ns(&[("partner-operator.io/distributor", "northwind")])
    ));
}

#[test]
fn distributor_totals_count_levels_and_seats() {
    let mut statuses = vec![];
    for (days, auto) in [(14, true), (14, true), (14, false), (30, true)] {
        let mut w = World::new(partner(), distributor(days, 3, auto));
        w.at(t0() + Duration::days(20));
        statuses.push(w.status().clone());
    }
    let mut pending = World::new(partner(), distributor(14, 3, true));
    pending.namespace_allowed = false;
    pending.settle();
    statuses.push(pending.status().clone());
    let (counts, billing) = distributor_totals(&[], &statuses);
    assert_eq!(
        counts,
        PartnerCounts {
            pending: 1,
            trial: 1,
            production: 2,
            expired: 1
        }
    );
    assert_eq!(billing.production_partners, 2);
    assert_eq!(billing.seats.get("ESSENTIALS"), Some(&2));
    assert_eq!(billing.seats.get("GOVERNANCE"), Some(&2));
}

// ---------------------------------------------------------------------------------------------
// Properties over random specs, clocks and orders of events.

#[derive(Clone, Debug)]
enum Step {
    /// Time passes (minutes).
    Advance(i64),
    /// One reconcile that dies after sending, before recording.
    Crash,
    /// The owner converts by hand, with an expiration date relative to now (days), maybe none.
    ConvertByHand(Option<i64>),
    /// The owner sets or clears `autoUpgrade`.
    SetAutoUpgrade(Option<bool>),
    /// The owner sets a trial expiration date relative to now (days).
    SetExpiration(Option<i64>),
    /// The Distributor changes its trial length.
    SetTrialDays(u32),
    /// Someone deletes the tenant namespace.
    DeleteTenant,
    /// The Distributor goes away, or comes back.
    ToggleDistributor,
    /// The namespace label is removed or restored.
    ToggleNamespace,
    /// The next tenant write is lost after the status that asked for it was written.
    LoseTenantWrite,
    /// Somebody empties the status (or sets `tenant: null`), while the tenant keeps its record.
    WipeStatus { tenant_only: bool },
    /// The Partner is restored from a backup: a new uid, the label of the uid its tenant was
    /// made for, with or without its status; the tenant as it was.
    Restore { with_status: bool },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (1i64..(20 * 24 * 60)).prop_map(Step::Advance),
        1 => Just(Step::Crash),
        1 => proptest::option::of(-5i64..400).prop_map(Step::ConvertByHand),
        1 => proptest::option::of(any::<bool>()).prop_map(Step::SetAutoUpgrade),
        1 => proptest::option::of(-5i64..60).prop_map(Step::SetExpiration),
        1 => (1u32..40).prop_map(Step::SetTrialDays),
        1 => Just(Step::DeleteTenant),
        1 => Just(Step::ToggleDistributor),
        1 => Just(Step::ToggleNamespace),
        1 => Just(Step::LoseTenantWrite),
        1 => any::<bool>().prop_map(|tenant_only| Step::WipeStatus { tenant_only }),
        1 => any::<bool>().prop_map(|with_status| Step::Restore { with_status }),
    ]
}

fn rank(level: SubscriptionLevel) -> u8 {
    match level {
        SubscriptionLevel::Pending => 0,
        SubscriptionLevel::Trial => 1,
        SubscriptionLevel::Production | SubscriptionLevel::Expired => 2,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn lifecycle_invariants_hold_in_any_order_of_events(
        days in 1u32..40,
        notice in 0u32..10,
        auto in any::<bool>(),
        steps in proptest::collection::vec(step(), 1..40),
    ) {
        let mut dist = distributor(days, notice, auto);
        dist.spec.webhooks.endpoints = vec![WebhookEndpoint {
            name: "billing".into(),
            url: "https://billing.example/hooks".into(),
            signing_key_secret_ref: SecretKeyRef { name: "key".into(), key: "signingKey".into() },
            types: None,
            timeout_seconds: 10,
        }];
        let mut w = World::new(partner(), dist.clone());
        let mut billing_started: Option<DateTime<Utc>> = None;
        let mut periods_before: Vec<BillingPeriod> = vec![];
        let mut status_before = PartnerStatus::default();
        let mut ids_by_event = std::collections::HashMap::<(EmailEvent, u32, Vec<String>), String>::new();
        let mut sent_and_recorded = std::collections::HashSet::<String>::new();
        let mut facts_by_id = std::collections::HashMap::<String, Option<EmailFacts>>::new();
        let mut last_rank = 0;
        let mut was_production = false;
        let mut restores = 0;
        let mut trial_started: Option<DateTime<Utc>> = None;
        for step in steps {
            let mut crash = false;
            match step {
                Step::Advance(minutes) => w.now += Duration::minutes(minutes),
                Step::Crash => crash = true,
                Step::ConvertByHand(days) => {
                    w.partner.spec.subscription.level = RequestedLevel::Production;
                    w.partner.spec.subscription.expiration_date = days.map(|d| w.now + Duration::days(d));
                }
                Step::SetAutoUpgrade(value) => w.partner.spec.subscription.auto_upgrade = value,
                Step::SetExpiration(days) => {
                    w.partner.spec.subscription.expiration_date = days.map(|d| w.now + Duration::days(d));
                }
                Step::SetTrialDays(days) => {
                    if let Some(d) = w.distributor.as_mut() {
                        d.spec.trial.days = days;
                    }
                }
                Step::DeleteTenant => {
                    w.tenant_exists = false;
                    w.entitlements = None;
                }
                Step::LoseTenantWrite => w.lose_tenant_write = true,
                Step::ToggleDistributor => {
                    w.distributor = if w.distributor.is_some() { None } else { Some(dist.clone()) };
                }
                Step::ToggleNamespace => w.namespace_allowed = !w.namespace_allowed,
                // The fault never loses both: a status wiped while the tenant holds its record.
                Step::WipeStatus { tenant_only } if w.entitlements.is_some() => {
                    if tenant_only {
                        w.partner.status.as_mut().unwrap().tenant = None;
                    } else {
                        w.partner.status = None;
                    }
                }
                Step::WipeStatus { .. } => {}
                Step::Restore { with_status } => {
                    let owner = tenant::tenant_owner_uid(&w.partner).to_string();
                    w.partner.metadata.labels.get_or_insert_default().insert(tenant::TENANT_OWNER_UID_LABEL.into(), owner);
                    restores += 1;
                    w.partner.metadata.uid = Some(format!("restored-{restores}"));
                    // Without its status only where the tenant keeps its record.
                    if !with_status && w.entitlements.is_some() {
                        w.partner.status = None;
                    }
                }
            }
            if !matches!(step, Step::Advance(_) | Step::Crash | Step::DeleteTenant | Step::ToggleDistributor | Step::ToggleNamespace | Step::LoseTenantWrite | Step::WipeStatus { .. } | Step::Restore { .. }) {
                let g = w.partner.metadata.generation.unwrap_or(1);
                w.partner.metadata.generation = Some(g + 1);
            }
            let sent_before = w.sent.len();
            let plan = w.reconcile_once(crash);

            // The next look is in the future, or there is none.
            if let Some(next) = plan.next_review {
                prop_assert!(next > w.now, "next review {next} not after now {}", w.now);
            }
            let status = w.status().clone();
            // The Distributor recounts when a Partner's count moved (`Counted`): whatever moved
            // its figures moved its count, so no change goes uncounted.
            let offered = [Sku("ESSENTIALS".into()), Sku("GOVERNANCE".into())];
            if distributor_totals(&offered, [&status_before]) != distributor_totals(&offered, [&status]) {
                prop_assert_ne!(Counted::of(&status_before), Counted::of(&status), "figures moved without a recount");
            }
            status_before = status.clone();
            let level = status.subscription_level.unwrap();
            // The level never goes down.
            prop_assert!(rank(level) >= last_rank, "level went down to {level:?}");
            // A trial starts once, whatever the status lost.
            if let Some(trial) = &status.trial {
                let first = *trial_started.get_or_insert(trial.started_at);
                prop_assert_eq!(trial.started_at, first, "the trial started again");
            }
            last_rank = rank(level);
            if level == SubscriptionLevel::Production {
                was_production = true;
            }
            prop_assert!(!(was_production && level == SubscriptionLevel::Trial));
            // Billing starts once and its first start never moves; periods are only added (a
            // renewal), and a period that ended never changes; the last is the current one.
            if let Some(billing) = &status.billing {
                let first = billing.periods.first().map(|p| p.started_at);
                if let Some(started) = billing_started {
                    prop_assert_eq!(Some(started), first);
                }
                billing_started = first;
                prop_assert!(billing.periods.len() >= periods_before.len());
                for (before, now) in periods_before.iter().zip(&billing.periods) {
                    if before.ended_at.is_some() {
                        prop_assert_eq!(before, now, "an ended billing period changed");
                    }
                }
                let last = billing.periods.last().expect("a period");
                prop_assert_eq!((last.started_at, last.ended_at), (billing.started_at, billing.ended_at));
                for period in &billing.periods {
                    prop_assert!(period.ended_at.is_none_or(|end| end >= period.started_at));
                }
                periods_before = billing.periods.clone();
            } else {
                prop_assert!(billing_started.is_none(), "billing disappeared");
            }
            // Dates obey policy: a running trial ends within the Distributor's `trial.days` of
            // its start and not before it; billing never starts before the tenant existed.
            let bound = w.distributor.is_some() && w.namespace_allowed;
            if let (SubscriptionLevel::Trial, true, Some(trial)) = (level, bound, &status.trial) {
                let longest = trial.started_at + Duration::days(i64::from(w.distributor.as_ref().unwrap().spec.trial.days));
                prop_assert!(trial.ends_at >= trial.started_at && trial.ends_at <= longest, "{:?}", trial);
            }
            if let (Some(billing), Some(tenant)) = (&status.billing, &status.tenant) {
                prop_assert!(billing.started_at >= tenant.provisioned_at, "billed before provisioning");
            }
            // Production and an open billing period go together, and only while bound.
            let billing_open = status.billing.as_ref().is_some_and(|b| b.ended_at.is_none());
            prop_assert_eq!(level == SubscriptionLevel::Production, billing_open);
            // A Distributor that does not exist may come back (a restore): Production waits
            // ten minutes from when the Partner was first seen without it, no longer.
            let distributor_may_return = w.distributor.is_none()
                && find_condition(&status.conditions, types::DISTRIBUTOR_BOUND).is_some_and(|c| {
                    c.reason == reasons::DISTRIBUTOR_NOT_FOUND
                        && chrono_time(&c.last_transition_time) + Duration::minutes(10) > w.now
                });
            prop_assert!(
                level != SubscriptionLevel::Production || bound || distributor_may_return,
                "Production while unbound"
            );
            // Nothing is provisioned, mailed or billed for a Partner that never bound.
            if level == SubscriptionLevel::Pending {
                prop_assert!(w.sent.is_empty() && status.billing.is_none() && status.tenant.is_none());
            }
            // Every email event has one Message-ID (per billing period, for the two that repeat
            // with renewals); once its delivery is recorded, never again.
            for (event, id, to) in &w.sent[sent_before..] {
                let period = status.emails.iter().find(|e| e.message_id == *id).map_or(0, |e| e.period);
                let known = ids_by_event.entry((*event, period, to.clone())).or_insert_with(|| id.clone());
                prop_assert_eq!(&*known, id, "{:?} got a second Message-ID", event);
                prop_assert!(!sent_and_recorded.contains(id), "{:?} sent again after it was recorded", event);
            }
            let mut keys: Vec<_> = status.emails.iter().map(|e| (e.event, e.period, e.recipient)).collect();
            let recorded = keys.len();
            keys.sort_by_key(|(e, p, r)| (e.as_str(), *p, *r == Some(Recipient::Distributor)));
            keys.dedup();
            prop_assert_eq!(keys.len(), recorded, "an email recorded twice in one period");
            for record in &status.emails {
                if record.sent_at.is_some() {
                    sent_and_recorded.insert(record.message_id.clone());
                }
                // What an email tells is fixed when it is decided: every copy tells the same.
                prop_assert!(record.facts.is_some(), "{:?} without its facts", record.event);
                let first = facts_by_id.entry(record.message_id.clone()).or_insert_with(|| record.facts.clone());
                prop_assert_eq!(&*first, &record.facts, "the facts of {:?} changed", record.event);
            }
            // Webhook events: an id always names the same event; the provisioning is told
            // first; a billing period's start before its end; a conversion once.
            let mut first_seen: Vec<(String, WebhookEventType)> = vec![];
            for (id, type_) in &w.webhooks {
                match first_seen.iter().find(|(seen, _)| seen == id) {
                    Some((_, known)) => prop_assert_eq!(known, type_, "the id {} named two events", id),
                    None => first_seen.push((id.clone(), *type_)),
                }
            }
            if status.tenant.is_some() {
                prop_assert!(!first_seen.is_empty(), "provisioned without telling the webhooks");
            }
            if let Some((_, first)) = first_seen.first() {
                prop_assert_eq!(*first, WebhookEventType::Provisioned, "{:?}", first_seen);
            }
            for (i, (id, type_)) in first_seen.iter().enumerate() {
                if *type_ == WebhookEventType::BillingPeriodEnded {
                    let period = id.rsplit('.').next().unwrap();
                    let started = first_seen[..i].iter().any(|(other, t)| {
                        *t == WebhookEventType::BillingPeriodStarted && other.rsplit('.').next() == Some(period)
                    });
                    prop_assert!(started, "period {} ended before it started: {:?}", period, first_seen);
                }
            }
            let conversions = first_seen.iter().filter(|(_, t)| *t == WebhookEventType::Converted).count();
            prop_assert!(conversions <= 1, "{:?}", first_seen);
            // Planning over its own output (effects done) plans nothing new.
            if !crash {
                let mut again = w.plan();
                if again.effects.iter().any(|e| matches!(e, Effect::EnsureTenant { .. })) {
                    // The tenant was just provisioned, or its lost write is made again; the
                    // next plan sees it.
                    w.tenant_exists = true;
                    w.entitlements = partner_operator::tenant::entitlements_data(&w.partner, &again.status);
                    again = w.plan();
                }
                let sends: Vec<_> = again.effects.iter().filter(|e| matches!(e, Effect::SendEmail(_))).collect();
                prop_assert!(sends.is_empty(), "re-plan sends again: {:?}", sends);
                w.partner.status = Some(again.status.clone());
                let third = w.plan();
                prop_assert!(third.effects.is_empty(), "third plan not empty: {:?}", third.effects);
                prop_assert_eq!(Some(&third.status), w.partner.status.as_ref());
                // Settled, the tenant's entitlements say what the status says, whatever was lost.
                if w.tenant_exists {
                    let desired = partner_operator::tenant::entitlements_data(&w.partner, w.status());
                    prop_assert_eq!(&w.entitlements, &desired);
                }
            }
        }
    }
}
