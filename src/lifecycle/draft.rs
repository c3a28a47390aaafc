//! The plan as the steps build it, in phases: a draft is [`Unbound`] until
//! [`bind`](super::bind::bind) finds its Distributor, [`Bound`] to it from then on, and
//! [`Provisioned`] once [`provision`](super::provision::provision) made sure of its tenant.
//! What a step may rely on is in the type of the draft it takes, never checked while it runs.

use chrono::{DateTime, Utc};

use super::reasons::EventReason;
use super::{Effect, Observation, PartnerEvent, Plan};
use crate::api::{Distributor, Partner, PartnerStatus, SubscriptionLevel, TrialStatus};

/// The plan being built, in phase `P`.
pub(super) struct Draft<'a, P> {
    pub(super) obs: &'a Observation<'a>,
    pub(super) partner: &'a Partner,
    pub(super) now: DateTime<Utc>,
    pub(super) generation: Option<i64>,
    /// The status as observed: what "did this change" compares with.
    pub(super) before: PartnerStatus,
    pub(super) status: PartnerStatus,
    /// The level the steps have reached; written to the status when the plan is made.
    pub(super) level: SubscriptionLevel,
    pub(super) effects: Vec<Effect>,
    pub(super) deadlines: Vec<DateTime<Utc>>,
    /// An `expirationDate` in the past that refused a conversion by hand.
    pub(super) refused_date: Option<DateTime<Utc>>,
    /// The base of the activation link, once
    /// [`check_activation_link`](super::emails::check_activation_link) found one.
    pub(super) link_base: Option<url::Url>,
    pub(super) recheck_after: Option<std::time::Duration>,
    /// What the phase knows.
    pub(super) phase: P,
}

/// Not bound (yet): the Distributor is missing or does not accept the Partner's namespace.
pub(super) struct Unbound;

/// Bound to its Distributor: its SKUs, policies and address apply.
pub(super) struct Bound<'a> {
    pub(super) distributor: &'a Distributor,
}

/// Bound, with a tenant: the level is Trial or above, and a Partner in Trial has its trial
/// in the status (see [`Draft::running_trial`]).
pub(super) struct Provisioned<'a> {
    pub(super) distributor: &'a Distributor,
}

/// A draft in each phase.
pub(super) type UnboundDraft<'a> = Draft<'a, Unbound>;
pub(super) type BoundDraft<'a> = Draft<'a, Bound<'a>>;
pub(super) type ProvisionedDraft<'a> = Draft<'a, Provisioned<'a>>;

impl<'a> UnboundDraft<'a> {
    pub(super) fn new(obs: &'a Observation<'a>) -> Self {
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
            effects: Vec::new(),
            deadlines: Vec::new(),
            refused_date: None,
            link_base: None,
            recheck_after: None,
            phase: Unbound,
        }
    }
}

impl<'a, P> Draft<'a, P> {
    /// The same draft in phase `next`.
    pub(super) fn into_phase<Q>(self, next: Q) -> Draft<'a, Q> {
        Draft {
            obs: self.obs,
            partner: self.partner,
            now: self.now,
            generation: self.generation,
            before: self.before,
            status: self.status,
            level: self.level,
            effects: self.effects,
            deadlines: self.deadlines,
            refused_date: self.refused_date,
            link_base: self.link_base,
            recheck_after: self.recheck_after,
            phase: next,
        }
    }

    /// The uid the Partner's tenant was made for ([`crate::tenant::tenant_owner_uid`]): what
    /// its tenant id, Message-IDs and activation tokens are made from, so a Partner restored
    /// with a new uid keeps them.
    pub(super) fn uid(&self) -> &'a str {
        crate::tenant::tenant_owner_uid(self.partner)
    }

    pub(super) fn event(&mut self, reason: EventReason, message: String) {
        self.effects
            .push(Effect::Event(PartnerEvent { reason, message }));
    }

    pub(super) fn set_condition(
        &mut self,
        type_: &str,
        ok: bool,
        reason: &str,
        message: impl Into<String>,
    ) {
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

    pub(super) fn into_plan(mut self) -> Plan {
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

impl<'a> BoundDraft<'a> {
    pub(super) fn distributor(&self) -> &'a Distributor {
        self.phase.distributor
    }
}

impl<'a> ProvisionedDraft<'a> {
    pub(super) fn distributor(&self) -> &'a Distributor {
        self.phase.distributor
    }

    /// The trial the Partner is in: `None` once the level left Trial (or never was), which
    /// steps may do as the chain goes on.
    pub(super) fn running_trial(&self) -> Option<&TrialStatus> {
        (self.level == SubscriptionLevel::Trial)
            .then_some(self.status.trial.as_ref())
            .flatten()
    }
}
