//! The subscription lifecycle of a Partner: every decision the operator makes about one, in one
//! pure function.
//!
//! [`plan`] takes what the operator observed ([`Observation`]: the Partner, its Distributor if
//! any, whether the Partner's namespace may bind to it, what is at the tenant's name, the time)
//! and returns a [`Plan`]: the status the Partner should have, every write that must follow
//! ([`Effect`]: the tenant, an activation token, each email with everything it tells, each Event
//! with its reason), and when to look again. It reads no clock and does no I/O, so every
//! transition is tested without a server, and the reconciler only carries the plan out. What a
//! write's outcome changes (an email sent or refused, a webhook event delivered) is decided by
//! [`record_outcome`], and a Partner being deleted by its own chain, [`plan_deletion`]; every
//! reason is in [`reasons`].
//!
//! [`plan`] is a chain of small named steps over one draft ([`CHAIN`]), in the order a Partner
//! lives: bind to the Distributor, correct what the status says of the tenant, refuse a tenant
//! name somebody else holds, provision, bound
//! the trial's end, record the activation email, end or convert the trial, the notice before
//! its end, convert an expired trial, renew an expired Production subscription, end Production
//! at its date, settle the level, check that an activation link can be made, hold back the
//! emails that must wait (an address not allowed, a refusal, the rate limit), the conditions
//! (the Ready ladder), then the effects. A step may end the chain (an unbound Partner or a
//! taken name goes no further).
//!
//! Crash safety comes from the order the reconciler follows and from determinism here:
//! - an email is first *recorded* in `status.emails` (event + deterministic Message-ID, no
//!   `sentAt`), that status is written, and only then is the email sent; a record without
//!   `sentAt` is planned again with the same Message-ID and the same facts, so a retry after a
//!   crash is the same message, and an event that has a record is never planned anew;
//! - a transition's timestamps are the deadline, not the moment of observation (an automatic
//!   upgrade starts billing at `trial.endsAt` even if the operator was down then);
//! - the level only goes up: Pending < Trial < Production, and Expired is entered only from Trial
//!   or Production.

mod activation;
mod bind;
mod conditions;
pub mod deletion;
pub mod emails;
mod outcome;
mod production;
mod provision;
pub mod reasons;
mod trial;
pub mod webhooks;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

pub use activation::resend_message_id;
pub use deletion::{DeletionPlan, plan_deletion};
pub use emails::{email_facts, mark_email_failed, mark_email_sent, message_id};
pub use outcome::{Outcome, record_outcome};
pub use reasons::EventReason;
pub use webhooks::WebhookSend;

use crate::api::{
    Distributor, EmailEvent, EmailRateLimit, Partner, PartnerStatus, Recipient, SubscriptionLevel,
};
use crate::mail::EmailVars;

/// What the operator observed about one Partner.
#[derive(Clone, Copy, Debug)]
pub struct Observation<'a> {
    pub partner: &'a Partner,
    /// The Distributor named by `spec.distributorRef`, if it exists.
    pub distributor: Option<&'a Distributor>,
    /// Whether the Partner's namespace matches the Distributor's `partnerNamespaces`.
    pub namespace_allowed: bool,
    /// Whether the tenant namespace exists, owned by this Partner (its ownership label carries
    /// the Partner's uid) and not being deleted.
    pub tenant_exists: bool,
    /// Whether a namespace by the tenant's name exists that this Partner does not own: it is
    /// never adopted, written into or deleted.
    pub tenant_taken: bool,
    /// The `data` of the tenant's `entitlements` ConfigMap as observed; `None` when there is
    /// none. The tenant is written whenever this differs from what the status says, so a write
    /// that was lost, or landed unseen, is made good from what is observed.
    pub entitlements: Option<&'a BTreeMap<String, String>>,
    /// The operator's `--activation-base-url`, for a Distributor that sets no
    /// `spec.activation.baseUrl`.
    pub default_activation_base_url: Option<&'a str>,
    pub now: DateTime<Utc>,
}

/// What must happen for a Partner.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// The status the Partner should have. Written before the effects are performed.
    pub status: PartnerStatus,
    /// Writes, in the order they must be performed, after the status.
    pub effects: Vec<Effect>,
    /// When to look again: the next deadline, strictly after `now`, or none.
    pub next_review: Option<DateTime<Utc>>,
    /// Look again this soon even without a deadline or a change (a tenant name somebody else
    /// holds is watched, but the operator does not rely on seeing it freed).
    pub recheck_after: Option<std::time::Duration>,
}

/// A write the reconciler performs. Each is idempotent.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// Create the tenant namespace if it is missing and keep its `entitlements` ConfigMap as the
    /// status says. `restore_activation`: the activation token of a link already emailed, stored
    /// again first (the entitlements are missing, so the namespace may have been made again
    /// without the `activation` Secret, and the link the partner holds would no longer work).
    EnsureTenant {
        restore_activation: Option<ActivationToken>,
    },
    /// Store the activation token of the email that carries it in the tenant's `activation`
    /// Secret (its hash and expiry): always right before that email is sent.
    IssueActivation(ActivationToken),
    /// Send the email recorded in `status.emails` under its Message-ID.
    SendEmail(Box<Email>),
    /// Record an Event on the Partner.
    Event(PartnerEvent),
    /// The emails recorded in this plan go out in a pass of their own, queued behind the other
    /// Partners whose deadline is now: a thousand trials ending at once all convert before any
    /// of their emails holds a reconciliation slot.
    SendEmailsNextPass,
    /// Deliver a recorded webhook event to one endpoint (see [`webhooks`]): handed to the
    /// sender, which retries on its own and records the outcome; nothing waits for it.
    DeliverWebhook(Box<WebhookSend>),
}

/// An activation token to store: the token itself is made by the reconciler from the operator's
/// key, the Partner's uid and the Message-ID of the email that carries it, so it is the same on
/// every copy of that email and never appears in a plan.
#[derive(Clone, Debug, PartialEq)]
pub struct ActivationToken {
    pub message_id: String,
    pub expires_at: DateTime<Utc>,
    /// The Message-IDs of earlier activation emails whose links this one replaces: their
    /// tokens' hashes are kept beside it, so the activation service can say such a link was
    /// superseded (410) rather than unknown.
    pub superseded: Vec<String>,
}

/// One email to send, with everything it tells.
#[derive(Clone, Debug, PartialEq)]
pub struct Email {
    pub event: EmailEvent,
    pub message_id: String,
    /// The one recipient's address.
    pub to: Vec<String>,
    pub recipient: Recipient,
    /// The Distributor on whose behalf it goes, and its rate limit (the reconciler keeps the
    /// count: how many went out in the window is not in any one Partner's status).
    pub distributor: String,
    pub rate_limit: EmailRateLimit,
    /// The Partner's and the Distributor's `metadata.generation` the email was planned at: a
    /// refusal for good holds it until either changes.
    pub generations: (Option<i64>, Option<i64>),
    /// The template variables, all but the activation link.
    pub vars: EmailVars,
    /// For the activation email: the link's base; the reconciler adds the tenant id and token.
    pub link_base: Option<url::Url>,
}

/// An Event about the Partner: the reason says whether it is a Warning.
#[derive(Clone, Debug, PartialEq)]
pub struct PartnerEvent {
    pub reason: EventReason,
    pub message: String,
}

/// Decides what must happen for a Partner. Pure: same observation, same plan.
pub fn plan(obs: &Observation) -> Plan {
    let mut draft = Draft::new(obs);
    for step in CHAIN {
        if step(&mut draft) == Flow::Stop {
            break;
        }
    }
    // Whichever step ended the chain, the transitions it made are told to the webhooks, and
    // what they have not been told yet is handed on.
    webhooks::record(&mut draft);
    webhooks::deliver(&mut draft);
    draft.into_plan()
}

/// The steps of [`plan`], in order.
const CHAIN: [Step; 19] = [
    bind::bind,
    provision::correct_tenant_status,
    provision::refuse_taken_name,
    provision::provision,
    trial::bound_end,
    emails::record_activation,
    activation::resend,
    activation::activated,
    trial::end_or_convert,
    trial::notice,
    production::convert_expired_trial,
    production::renew,
    production::expire,
    settle_level,
    emails::check_activation_link,
    emails::hold,
    conditions::set,
    activation::condition,
    effects,
];

type Step = fn(&mut Draft) -> Flow;

/// Whether the chain goes on after a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flow {
    Next,
    Stop,
}

/// The plan as the steps build it.
struct Draft<'a> {
    obs: &'a Observation<'a>,
    partner: &'a Partner,
    now: DateTime<Utc>,
    generation: Option<i64>,
    /// The status as observed: what "did this change" compares with.
    before: PartnerStatus,
    status: PartnerStatus,
    /// The level the steps have reached; written to the status by [`settle_level`].
    level: SubscriptionLevel,
    /// The Distributor, once [`bind::bind`] found the Partner bound to it.
    distributor: Option<&'a Distributor>,
    effects: Vec<Effect>,
    deadlines: Vec<DateTime<Utc>>,
    /// An `expirationDate` in the past that refused a conversion by hand.
    refused_date: Option<DateTime<Utc>>,
    /// The base of the activation link, once [`emails::check_activation_link`] found one.
    link_base: Option<url::Url>,
    recheck_after: Option<std::time::Duration>,
}

impl<'a> Draft<'a> {
    fn new(obs: &'a Observation<'a>) -> Self {
        let before = obs.partner.status.clone().unwrap_or_default();
        let mut status = before.clone();
        status.observed_generation = obs.partner.metadata.generation;
        Self {
            obs,
            partner: obs.partner,
            now: obs.now,
            generation: obs.partner.metadata.generation,
            level: status.subscription_level.unwrap_or_default(),
            before,
            status,
            distributor: None,
            effects: Vec::new(),
            deadlines: Vec::new(),
            refused_date: None,
            link_base: None,
            recheck_after: None,
        }
    }

    fn uid(&self) -> &'a str {
        self.partner.metadata.uid.as_deref().unwrap_or_default()
    }

    /// The Distributor the Partner is bound to; only steps after [`bind::bind`] ask.
    fn bound(&self) -> &'a Distributor {
        self.distributor.expect("a step after binding")
    }

    fn event(&mut self, reason: EventReason, message: String) {
        self.effects
            .push(Effect::Event(PartnerEvent { reason, message }));
    }

    fn set_condition(&mut self, type_: &str, ok: bool, reason: &str, message: impl Into<String>) {
        crate::api::set_condition(
            &mut self.status.conditions,
            type_,
            ok,
            reason,
            message,
            self.generation,
            self.now,
        );
    }

    /// The trial's end, once provisioned.
    fn trial_ends_at(&self) -> DateTime<Utc> {
        self.status
            .trial
            .as_ref()
            .expect("a provisioned tenant has a trial")
            .ends_at
    }

    fn into_plan(mut self) -> Plan {
        let now = self.now;
        self.status.subscription_level = Some(self.level);
        Plan {
            status: self.status,
            effects: self.effects,
            next_review: self.deadlines.into_iter().filter(|d| *d > now).min(),
            recheck_after: self.recheck_after,
        }
    }
}

/// The end of the level the steps reached: the trial's end in Trial, the expiration date (if
/// any) in Production, none otherwise. (The level itself goes into the status when the plan is
/// made, whichever step ended the chain.)
fn settle_level(d: &mut Draft) -> Flow {
    d.status.expires_at = match d.level {
        SubscriptionLevel::Trial => Some(d.trial_ends_at()),
        SubscriptionLevel::Production => d.status.expires_at,
        SubscriptionLevel::Pending | SubscriptionLevel::Expired => None,
    };
    Flow::Next
}

/// The writes that follow the status: the tenant first (the activation Secret lives in it), then
/// each email not sent yet, the activation email right after its token is stored. Emails wait
/// for the next pass when this plan moved the level (see [`Effect::SendEmailsNextPass`]); none
/// goes out while the activation email cannot (no link can be made), so no partner hears of its
/// trial before it has its link.
fn effects(d: &mut Draft) -> Flow {
    emails::fix_facts(d);
    if let Some(tenant) = tenant_effect(d) {
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
        return Flow::Next;
    }
    let level_moved =
        d.before.subscription_level.is_some() && d.before.subscription_level != Some(d.level);
    if level_moved {
        d.effects.push(Effect::SendEmailsNextPass);
        return Flow::Next;
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
    Flow::Next
}

/// The tenant write this plan needs, if any: only for a tenant that exists or is to be made
/// (never while unbound), and only when what is observed differs from what the status says at
/// the level the steps reached.
fn tenant_effect(d: &mut Draft) -> Option<Effect> {
    d.status.subscription_level = Some(d.level);
    let bound = d.distributor.is_some();
    let wanted = d.status.tenant.is_some() && (bound || d.obs.tenant_exists);
    if !wanted || tenant_current(d.obs, &d.status) {
        return None;
    }
    Some(Effect::EnsureTenant {
        restore_activation: d
            .obs
            .entitlements
            .is_none()
            .then(|| emails::sent_activation(&d.status))
            .flatten(),
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

/// What the steps' tests share: a Partner, its Distributor, and an observation of them.
#[cfg(test)]
pub(crate) mod fixtures {
    use chrono::{DateTime, TimeZone, Utc};

    use super::Observation;
    use crate::api::*;

    pub fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2027, 3, 1, 9, 0, 0).unwrap()
    }

    pub fn distributor() -> Distributor {
        let mut d = Distributor::new(
            "northwind",
            DistributorSpec {
                organization_name: "Northwind".into(),
                notification_email: "ops@northwind.example".into(),
                skus: vec![Sku("ESSENTIALS".into())],
                partner_namespaces: None,
                trial: TrialPolicy::default(),
                activation: ActivationPolicy::default(),
                email: EmailPolicy::default(),
                webhooks: WebhookPolicy::default(),
            },
        );
        d.spec.activation.base_url = Some("https://portal.example/activate".into());
        d
    }

    pub fn partner() -> Partner {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "partner-operator.io/v1alpha1",
            "kind": "Partner",
            "metadata": {"name": "contoso", "namespace": "partners", "uid": "uid-1", "generation": 1},
            "spec": {
                "organizationName": "Contoso",
                "notificationEmail": "admin@contoso.example",
                "distributorRef": {"name": "northwind"},
            },
        }))
        .expect("a Partner")
    }

    /// A bound Partner whose tenant exists as its status says, at `now`.
    pub fn observe<'a>(
        partner: &'a Partner,
        distributor: &'a Distributor,
        entitlements: Option<&'a std::collections::BTreeMap<String, String>>,
        now: DateTime<Utc>,
    ) -> Observation<'a> {
        Observation {
            partner,
            distributor: Some(distributor),
            namespace_allowed: true,
            tenant_exists: partner.status.as_ref().is_some_and(|s| s.tenant.is_some()),
            tenant_taken: false,
            entitlements,
            default_activation_base_url: None,
            now,
        }
    }

    /// `partner` with the status of `plan`, every email in it sent at `at`.
    pub fn settled(mut partner: Partner, plan: &super::Plan, at: DateTime<Utc>) -> Partner {
        let mut status = plan.status.clone();
        let ids: Vec<_> = status.emails.iter().map(|e| e.message_id.clone()).collect();
        for id in ids {
            super::mark_email_sent(&mut status, &id, at);
        }
        partner.status = Some(status);
        partner
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::fixtures::*;
    use super::*;
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
        let first = plan(&observe(&p, &d, None, t0()));
        let p = settled(p, &first, t0());
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
        let first = plan(&observe(&p, &d, None, t0()));
        let p = settled(p, &first, t0());
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

    #[test]
    fn a_taken_tenant_name_stops_the_chain_and_is_looked_at_again() {
        let (p, d) = (partner(), distributor());
        let taken = plan(&Observation {
            tenant_taken: true,
            ..observe(&p, &d, None, t0())
        });
        assert!(taken.status.tenant.is_none());
        assert_eq!(
            taken.recheck_after,
            Some(std::time::Duration::from_secs(30))
        );
        assert_eq!(taken.effects.len(), 1, "{:?}", taken.effects);
        assert!(matches!(
            &taken.effects[0],
            Effect::Event(e) if e.reason == EventReason::TenantNamespaceTaken && e.reason.is_warning()
        ));
    }

    #[test]
    fn warnings_are_what_failed_was_refused_or_ended_unasked() {
        use EventReason::*;
        for reason in [
            TenantNamespaceTaken,
            EmailDeliveryFailed,
            TrialExpired,
            ProductionEndedUnbound,
            ExpirationDateInPast,
            ExpirationDateLimited,
            ResendRefused,
            Unreadable,
        ] {
            assert!(reason.is_warning(), "{reason}");
        }
        for reason in [
            TenantProvisioned,
            ActivationSent,
            TrialEndingSoon,
            ConvertedToProduction,
            BillingStarted,
            BillingEnded,
            ProductionExpired,
            TenantDeprovisioned,
            TenantRetained,
            Activated,
        ] {
            assert!(!reason.is_warning(), "{reason}");
        }
    }
}
