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
//! [`plan`] is small chains of named steps over a draft that goes through typed phases, in the
//! order a Partner lives. The draft starts [`Unbound`](draft::Unbound); [`bind::bind`] either
//! leaves it so (the Distributor is missing or refuses the namespace: the chain ends) or returns
//! it [`Bound`](draft::Bound) to the Distributor, which every later step reads from the draft's
//! type instead of looking it up. While bound, the tenant's name is corrected and refused if
//! somebody else holds it (the chain ends). [`provision::provision`] then returns it
//! [`Provisioned`](draft::Provisioned): the level is Trial or above, and a Partner in Trial has
//! its trial. The provisioned chains follow: the level's transitions ([`LIFE`]: bound the
//! trial's end, record the activation email, a resend, the activation, end or convert the
//! trial, the notice before its end, convert an expired trial, renew an expired Production
//! subscription, end Production at its date, settle the level), which emails may go out
//! ([`OUTBOX`]: an activation link can be made, the holds), and what the plan reports
//! ([`REPORT`]: the conditions, with the Ready ladder, then the effects). Whatever phase the
//! chain ended in, the webhooks are told of its transitions.
//!
//! [`simulate`] carries plans out as if every write succeeded, from an observation until nothing
//! is left to do: the tests follow a Partner's life with it, and `kubectl partner status` tells
//! the next steps with it.
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
mod distributor;
mod draft;
mod effects;
pub mod emails;
mod import;
mod outcome;
mod production;
mod provision;
pub mod reasons;
mod resume;
mod simulate;
mod trial;
pub mod webhooks;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

pub use activation::resend_message_id;
pub use deletion::{DeletionPlan, plan_deletion};
pub use distributor::{DistributorPlan, Member, plan_distributor};
pub use emails::{email_facts, mark_email_failed, mark_email_sent, message_id};
pub use outcome::{Outcome, record_outcome};
pub use reasons::EventReason;
pub use simulate::{Simulation, simulate};
pub use webhooks::WebhookSend;

use draft::{BoundDraft, Draft, ProvisionedDraft};

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
    resume::resume(&mut draft);
    let mut bound = match bind::bind(draft) {
        bind::Binding::Bound(bound) => bound,
        bind::Binding::Unbound(unbound) => return finish(unbound, None),
    };
    let distributor = bound.distributor();
    if !TENANT_NAME
        .iter()
        .all(|step| step(&mut bound) == Flow::Next)
    {
        return finish(bound, Some(distributor));
    }
    let mut provisioned = provision::provision(bound);
    for step in LIFE.iter().chain(&OUTBOX).chain(&REPORT) {
        step(&mut provisioned);
    }
    finish(provisioned, Some(distributor))
}

/// Whichever step ended the chain, the transitions it made are told to the webhooks of the
/// Distributor the Partner is bound to, and what they have not been told yet is handed on.
fn finish<P>(mut draft: Draft<P>, bound_to: Option<&Distributor>) -> Plan {
    webhooks::record_events(&mut draft, bound_to);
    webhooks::deliver(&mut draft, bound_to);
    draft.into_plan()
}

/// A step while bound: it may end the chain.
type BoundStep = fn(&mut BoundDraft) -> Flow;

/// A step once provisioned: every one runs.
type ProvisionedStep = fn(&mut ProvisionedDraft);

/// Whether the chain goes on after a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flow {
    Next,
    Stop,
}

/// Bound: nobody else holds the tenant's name; a restored Partner without its tenant's record
/// waits for it; one that looks like a rebuild from Git is held; the tenant's name is the
/// Partner's.
const TENANT_NAME: [BoundStep; 4] = [
    provision::refuse_taken_name,
    resume::await_restore,
    import::hold_suspected_rebuild,
    provision::correct_tenant_status,
];

/// Provisioned: the level's transitions, in the order a Partner lives (what an import was told
/// elsewhere, the trial's end bound,
/// the activation email, a resend, the activation, the trial's end or conversion, the notice
/// before it, an expired trial converted, Production renewed or ended), then the level settled.
const LIFE: [ProvisionedStep; 11] = [
    import::sent_elsewhere,
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
];

/// Provisioned: which emails may go out (an activation link can be made; a hold is kept or
/// lifted).
const OUTBOX: [ProvisionedStep; 2] = [emails::check_activation_link, emails::hold];

/// Provisioned: what the conditions say, then the writes that follow the status.
const REPORT: [ProvisionedStep; 3] = [conditions::set, activation::condition, effects::effects];

/// The end of the level the steps reached: the trial's end in Trial, the expiration date (if
/// any) in Production, none otherwise. (The level itself goes into the status when the plan is
/// made, whichever step ended the chain.)
fn settle_level(d: &mut ProvisionedDraft) {
    d.status.expires_at = match d.level {
        SubscriptionLevel::Trial => d.running_trial().map(|trial| trial.ends_at),
        SubscriptionLevel::Production => d.status.expires_at,
        SubscriptionLevel::Pending | SubscriptionLevel::Expired => None,
    };
}

/// What the steps' tests share: a Partner, its Distributor, and an observation of them.
#[cfg(test)]
pub(crate) mod fixtures;
