//! The subscription lifecycle of a Partner, decided in one pure function.
//!
//! [`plan`] takes what the operator observed (the Partner, its Distributor if any, whether the
//! Partner's namespace may bind to it, whether the tenant namespace exists, the time) and returns
//! the status the Partner should have, the side effects that must happen, and when to look again.
//! It reads no clock and does no I/O, so every transition of DESIGN §2 is tested without a server,
//! and the reconciler stays a thin loop: plan, write the status if it changed, perform the effects,
//! record what they did.
//!
//! Crash safety comes from the order the reconciler follows and from determinism here:
//! - an email is first *recorded* in `status.emails` (event + deterministic Message-ID, no
//!   `sentAt`), that status is written, and only then is the email sent; a record without
//!   `sentAt` is planned again with the same Message-ID, so a retry after a crash is the same
//!   message, and an event that has a record is never planned anew;
//! - a transition's timestamps are the deadline, not the moment of observation (an automatic
//!   upgrade starts billing at `trial.endsAt` even if the operator was down then);
//! - the level only goes up: Pending < Trial < Production, and Expired is entered only from Trial
//!   or Production.

use chrono::{DateTime, Duration, Utc};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use sha2::{Digest, Sha256};

use crate::api::{
    BillingStatus, DISTRIBUTOR_LABEL, Distributor, EmailEvent, EmailFacts, EmailRecord, Partner,
    PartnerCounts, PartnerStatus, ProductionReason, ProductionStatus, RequestedLevel,
    SubscriptionLevel, TenantStatus, TrialStatus, set_condition, types,
};

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
    pub entitlements: Option<&'a std::collections::BTreeMap<String, String>>,
    pub now: DateTime<Utc>,
}

/// What must happen for a Partner.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// The status the Partner should have. Written before the effects are performed.
    pub status: PartnerStatus,
    /// Side effects, in the order they must be performed.
    pub effects: Vec<Effect>,
    /// When to look again: the next deadline, strictly after `now`, or none.
    pub next_review: Option<DateTime<Utc>>,
}

/// A side effect the reconciler performs. Each is idempotent.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// Create or update the tenant namespace and its `entitlements` ConfigMap from the status.
    EnsureTenant,
    /// Send the email recorded in `status.emails` under this Message-ID.
    SendEmail {
        event: EmailEvent,
        message_id: String,
        to: Vec<String>,
    },
    /// Record an Event on the Partner.
    Event {
        reason: &'static str,
        message: String,
    },
}

/// `Ready=False` reasons, first missing thing first.
pub mod reasons {
    pub const DISTRIBUTOR_NOT_FOUND: &str = "DistributorNotFound";
    pub const NAMESPACE_NOT_ALLOWED: &str = "NamespaceNotAllowed";
    pub const PROVISIONING: &str = "Provisioning";
    pub const ACTIVATION_PENDING: &str = "ActivationPending";
    pub const EMAIL_DELIVERY_FAILED: &str = "EmailDeliveryFailed";
    pub const EXPIRED: &str = "Expired";
    pub const EXPIRATION_DATE_IN_PAST: &str = "ExpirationDateInPast";
    pub const TENANT_NAMESPACE_TAKEN: &str = "TenantNamespaceTaken";
}

/// Event reasons (CamelCase, as Kubernetes Events use them).
pub mod events {
    pub const TENANT_PROVISIONED: &str = "TenantProvisioned";
    pub const TRIAL_ENDING_SOON: &str = "TrialEndingSoon";
    pub const CONVERTED_TO_PRODUCTION: &str = "ConvertedToProduction";
    pub const BILLING_STARTED: &str = "BillingStarted";
    pub const BILLING_ENDED: &str = "BillingEnded";
    pub const TRIAL_EXPIRED: &str = "TrialExpired";
    pub const PRODUCTION_EXPIRED: &str = "ProductionExpired";
    pub const EXPIRATION_DATE_IN_PAST: &str = "ExpirationDateInPast";
    pub const TENANT_NAMESPACE_TAKEN: &str = "TenantNamespaceTaken";
    pub const EXPIRATION_DATE_LIMITED: &str = "ExpirationDateLimited";
    pub const PRODUCTION_ENDED_UNBOUND: &str = "ProductionEndedUnbound";
}

/// Decides what must happen for a Partner. Pure: same observation, same plan.
pub fn plan(obs: &Observation) -> Plan {
    let partner = obs.partner;
    let now = obs.now;
    let generation = partner.metadata.generation;
    let before = partner.status.clone().unwrap_or_default();
    let mut status = before.clone();
    status.observed_generation = generation;
    let mut effects = Vec::new();
    let mut deadlines = Vec::new();

    let level = status.subscription_level.unwrap_or_default();
    let distributor = match (obs.distributor, obs.namespace_allowed) {
        (Some(d), true) => d,
        (distributor, _) => {
            // Unbound: nothing is provisioned, mailed or billed. A tenant that already exists
            // keeps its level (the operator never downgrades) and is frozen until bound again.
            let (reason, message) = if distributor.is_none() {
                (
                    reasons::DISTRIBUTOR_NOT_FOUND,
                    format!(
                        "Distributor {:?} (spec.distributorRef.name) does not exist",
                        partner.spec.distributor_ref.name
                    ),
                )
            } else {
                (
                    reasons::NAMESPACE_NOT_ALLOWED,
                    format!(
                        "namespace {:?} is not selected by spec.partnerNamespaces of Distributor {:?}",
                        partner.metadata.namespace.as_deref().unwrap_or_default(),
                        partner.spec.distributor_ref.name
                    ),
                )
            };
            status.subscription_level = Some(level);
            if level == SubscriptionLevel::Production {
                unbind_production(&mut status, &mut effects, obs, &message);
            }
            // An existing tenant still follows the status (nothing new is provisioned).
            if obs.tenant_exists && !tenant_current(obs, &status) {
                effects.push(Effect::EnsureTenant);
            }
            set_condition(
                &mut status.conditions,
                types::DISTRIBUTOR_BOUND,
                false,
                reason,
                &message,
                generation,
                now,
            );
            set_condition(
                &mut status.conditions,
                types::READY,
                false,
                reason,
                message,
                generation,
                now,
            );
            return Plan {
                status,
                effects,
                next_review: None,
            };
        }
    };

    let distributor_name = distributor.metadata.name.clone().unwrap_or_default();
    set_condition(
        &mut status.conditions,
        types::DISTRIBUTOR_BOUND,
        true,
        "Bound",
        format!("bound to Distributor {distributor_name:?}"),
        generation,
        now,
    );
    status.skus = distributor.spec.skus.clone();
    let policy = &distributor.spec.trial;
    let auto_upgrade = partner
        .spec
        .subscription
        .auto_upgrade
        .unwrap_or(policy.auto_upgrade);
    let uid = partner.metadata.uid.as_deref().unwrap_or_default();
    let namespace = tenant_namespace_of(partner);

    // `status.tenant` only reports: whoever can write the status subresource may have changed
    // it, so the name and id derived from the Partner's metadata win and correct it.
    if let Some(tenant) = status.tenant.as_mut() {
        tenant.namespace = namespace.clone();
        tenant.id = tenant_id(uid);
    }

    // Somebody else holds the tenant's name: nothing is provisioned, written or mailed (the
    // activation Secret would land in that namespace) until it is gone.
    if obs.tenant_taken && !obs.tenant_exists {
        let message = format!(
            "namespace {namespace:?} already exists and is not owned by this Partner \
             (label {OWNER_UID_LABEL} is not its uid): it is not adopted and nothing is written \
             into it"
        );
        let reported_before = partner
            .status
            .as_ref()
            .and_then(|s| crate::api::find_condition(&s.conditions, types::READY))
            .is_some_and(|c| c.reason == reasons::TENANT_NAMESPACE_TAKEN);
        if !reported_before {
            effects.push(Effect::Event {
                reason: events::TENANT_NAMESPACE_TAKEN,
                message: message.clone(),
            });
        }
        status.subscription_level = Some(level);
        for type_ in [types::TENANT_PROVISIONED, types::READY] {
            set_condition(
                &mut status.conditions,
                type_,
                false,
                reasons::TENANT_NAMESPACE_TAKEN,
                &message,
                generation,
                now,
            );
        }
        return Plan {
            status,
            effects,
            next_review: None,
        };
    }

    // Provision: the trial starts the moment the tenant is provisioned.
    if status.tenant.is_none() {
        status.tenant = Some(TenantStatus {
            id: tenant_id(uid),
            namespace,
            provisioned_at: now,
        });
        status.subscription_level = Some(SubscriptionLevel::Trial);
        status.trial = Some(TrialStatus {
            started_at: now,
            ends_at: now,
        });
        effects.push(Effect::Event {
            reason: events::TENANT_PROVISIONED,
            message: format!(
                "tenant {} provisioned; trial started",
                status.tenant.as_ref().unwrap().namespace
            ),
        });
    }
    let mut level = status
        .subscription_level
        .unwrap_or(SubscriptionLevel::Trial);
    if level == SubscriptionLevel::Pending {
        level = SubscriptionLevel::Trial;
    }

    // While in Trial its end follows the spec: `expirationDate` if the owner set one, else
    // `startedAt + trial.days` (so a changed Distributor policy moves running trials).
    let mut trial = status
        .trial
        .clone()
        .expect("a provisioned tenant has a trial");
    // Policy bounds the date: a trial ends no later than `trial.days` after it started (the
    // Distributor's terms, whatever the Partner's author writes), and no earlier than it
    // started (an automatic upgrade would otherwise start Production and billing before the
    // Partner existed).
    if level == SubscriptionLevel::Trial {
        let longest = trial.started_at + Duration::days(i64::from(policy.days));
        trial.ends_at = match (
            partner.spec.subscription.level,
            partner.spec.subscription.expiration_date,
        ) {
            (RequestedLevel::Trial, Some(date)) => {
                let bounded = date.clamp(trial.started_at, longest);
                let moved = before.trial.as_ref().map(|t| t.ends_at) != Some(bounded);
                if bounded != date && moved {
                    effects.push(Effect::Event {
                        reason: events::EXPIRATION_DATE_LIMITED,
                        message: format!(
                            "spec.subscription.expirationDate {} lies outside the trial the \
                             Distributor grants ({} to {}, trial.days {}): the trial ends on {}",
                            date.to_rfc3339(),
                            trial.started_at.to_rfc3339(),
                            longest.to_rfc3339(),
                            policy.days,
                            bounded.to_rfc3339()
                        ),
                    });
                }
                bounded
            }
            _ => longest,
        };
        status.trial = Some(trial.clone());
    }

    // Activation link: right after provisioning.
    let partner_to = vec![partner.spec.notification_email.clone()];
    let both_to = vec![
        partner.spec.notification_email.clone(),
        distributor.spec.notification_email.clone(),
    ];
    if record_email(&mut status, uid, EmailEvent::Activation) {
        let activation = status.activation.get_or_insert_with(Default::default);
        activation.message_id = Some(message_id(uid, EmailEvent::Activation));
        activation.link_expires_at =
            Some(now + Duration::days(i64::from(distributor.spec.activation.link_validity_days)));
    }

    let mut refused_date = None;
    if level == SubscriptionLevel::Trial {
        let ends_at = trial.ends_at;
        // Conversion by hand beats everything else that could happen to a trial.
        if partner.spec.subscription.level == RequestedLevel::Production {
            match manual_conversion(&mut status, partner, &distributor_name, now) {
                Ok(()) => {
                    level = SubscriptionLevel::Production;
                    record_email(&mut status, uid, EmailEvent::Converted);
                    push_conversion_events(&mut effects, &status);
                }
                Err(date) => refused_date = Some(date),
            }
        }
        if level == SubscriptionLevel::Trial && now >= ends_at {
            if auto_upgrade {
                level = SubscriptionLevel::Production;
                status.production = Some(ProductionStatus {
                    since: ends_at,
                    reason: ProductionReason::AutoUpgrade,
                });
                start_billing(&mut status, &distributor_name, ends_at);
                record_email(&mut status, uid, EmailEvent::Converted);
                push_conversion_events(&mut effects, &status);
            } else {
                level = SubscriptionLevel::Expired;
                record_email(&mut status, uid, EmailEvent::TrialExpired);
                effects.push(Effect::Event {
                    reason: events::TRIAL_EXPIRED,
                    message: format!("trial ended on {} without conversion", ends_at.to_rfc3339()),
                });
            }
        } else if level == SubscriptionLevel::Trial {
            deadlines.push(ends_at);
            // The notice: `upgradeNoticeDays` before the end. A notice whose moment already
            // passed when the tenant was provisioned goes out at once; none once the trial ended.
            if policy.upgrade_notice_days > 0 {
                let notice_at = ends_at - Duration::days(i64::from(policy.upgrade_notice_days));
                let event = if auto_upgrade {
                    EmailEvent::UpgradeNotice
                } else {
                    EmailEvent::ExpiryNotice
                };
                let noticed = status.emails.iter().any(|e| {
                    matches!(
                        e.event,
                        EmailEvent::UpgradeNotice | EmailEvent::ExpiryNotice
                    )
                });
                if !noticed && now >= notice_at {
                    record_email(&mut status, uid, event);
                    effects.push(Effect::Event {
                        reason: events::TRIAL_ENDING_SOON,
                        message: if auto_upgrade {
                            format!("trial converts to Production on {}", ends_at.to_rfc3339())
                        } else {
                            format!("trial expires on {}", ends_at.to_rfc3339())
                        },
                    });
                } else if !noticed {
                    deadlines.push(notice_at);
                }
            }
        }
    } else if level == SubscriptionLevel::Expired
        && status.production.is_none()
        && partner.spec.subscription.level == RequestedLevel::Production
    {
        // Converting a trial that expired.
        match manual_conversion(&mut status, partner, &distributor_name, now) {
            Ok(()) => {
                level = SubscriptionLevel::Production;
                record_email(&mut status, uid, EmailEvent::Converted);
                push_conversion_events(&mut effects, &status);
            }
            Err(date) => refused_date = Some(date),
        }
    }

    // Production ends at `expirationDate` when it lies after the conversion (after an automatic
    // upgrade the date that ended the trial does not also end Production).
    if level == SubscriptionLevel::Production {
        let since = status.production.as_ref().map(|p| p.since).unwrap_or(now);
        let ends = partner
            .spec
            .subscription
            .expiration_date
            .filter(|d| *d > since);
        status.expires_at = ends;
        if let Some(ends) = ends {
            if now >= ends {
                level = SubscriptionLevel::Expired;
                record_email(&mut status, uid, EmailEvent::ProductionExpired);
                end_production(
                    &mut status,
                    &mut effects,
                    ends,
                    &distributor_name,
                    (
                        events::PRODUCTION_EXPIRED,
                        format!("Production subscription expired on {}", ends.to_rfc3339()),
                    ),
                    "",
                );
            } else {
                deadlines.push(ends);
            }
        }
    }
    status.subscription_level = Some(level);
    status.expires_at = match level {
        SubscriptionLevel::Trial => Some(trial.ends_at),
        SubscriptionLevel::Production => status.expires_at,
        SubscriptionLevel::Pending | SubscriptionLevel::Expired => None,
    };

    // Conditions.
    if obs.tenant_exists && obs.entitlements.is_some() {
        set_condition(
            &mut status.conditions,
            types::TENANT_PROVISIONED,
            true,
            "Provisioned",
            "tenant namespace and entitlements are in place",
            generation,
            now,
        );
    } else {
        set_condition(
            &mut status.conditions,
            types::TENANT_PROVISIONED,
            false,
            reasons::PROVISIONING,
            if obs.tenant_exists {
                "writing the tenant's entitlements"
            } else {
                "creating the tenant namespace"
            },
            generation,
            now,
        );
    }
    let activation_record = status
        .emails
        .iter()
        .find(|e| e.event == EmailEvent::Activation)
        .cloned();
    let (activation_sent, activation_reason, activation_message) = match &activation_record {
        Some(EmailRecord {
            sent_at: Some(_), ..
        }) => (true, "Sent", "activation email sent".to_string()),
        Some(EmailRecord {
            last_error: Some(error),
            ..
        }) => (
            false,
            reasons::EMAIL_DELIVERY_FAILED,
            format!("activation email not delivered: {error}"),
        ),
        _ => (
            false,
            reasons::ACTIVATION_PENDING,
            "sending the activation email".to_string(),
        ),
    };
    set_condition(
        &mut status.conditions,
        types::ACTIVATION_SENT,
        activation_sent,
        activation_reason,
        activation_message.clone(),
        generation,
        now,
    );
    let (ready, ready_reason, ready_message) = if !obs.tenant_exists {
        (
            false,
            reasons::PROVISIONING,
            "creating the tenant namespace".to_string(),
        )
    } else if !activation_sent {
        (false, activation_reason, activation_message)
    } else if level == SubscriptionLevel::Expired {
        (
            false,
            reasons::EXPIRED,
            "the subscription has expired".to_string(),
        )
    } else if let Some(date) = refused_date {
        (
            false,
            reasons::EXPIRATION_DATE_IN_PAST,
            format!(
                "spec.subscription.expirationDate {} lies in the past: not converted to Production",
                date.to_rfc3339()
            ),
        )
    } else {
        (true, "Ready", format!("{level} tenant is ready"))
    };
    let refused_before = partner
        .status
        .as_ref()
        .and_then(|s| crate::api::find_condition(&s.conditions, types::READY))
        .is_some_and(|c| {
            c.reason == reasons::EXPIRATION_DATE_IN_PAST && c.observed_generation == generation
        });
    if ready_reason == reasons::EXPIRATION_DATE_IN_PAST && !refused_before {
        effects.push(Effect::Event {
            reason: events::EXPIRATION_DATE_IN_PAST,
            message: ready_message.clone(),
        });
    }
    set_condition(
        &mut status.conditions,
        types::READY,
        ready,
        ready_reason,
        ready_message,
        generation,
        now,
    );

    // An email decided in this plan tells the dates as they are now, on every copy.
    let facts = email_facts(&status);
    for record in status.emails.iter_mut().filter(|e| e.facts.is_none()) {
        record.facts = Some(facts.clone());
    }

    // Effects: the tenant first (the activation secret lives in it), then unsent emails.
    if !tenant_current(obs, &status) {
        effects.insert(0, Effect::EnsureTenant);
    }
    for record in status.emails.iter().filter(|e| e.sent_at.is_none()) {
        let to = match record.event {
            EmailEvent::Activation => partner_to.clone(),
            _ => both_to.clone(),
        };
        effects.push(Effect::SendEmail {
            event: record.event,
            message_id: record.message_id.clone(),
            to,
        });
    }

    Plan {
        status,
        effects,
        next_review: deadlines.into_iter().filter(|d| *d > now).min(),
    }
}

/// Converts a Trial (or an expired trial) to Production by hand, now. Refuses, returning the
/// date, when `expirationDate` does not lie in the future.
fn manual_conversion(
    status: &mut PartnerStatus,
    partner: &Partner,
    distributor: &str,
    now: DateTime<Utc>,
) -> Result<(), DateTime<Utc>> {
    if let Some(date) = partner.spec.subscription.expiration_date
        && date <= now
    {
        return Err(date);
    }
    status.production = Some(ProductionStatus {
        since: now,
        reason: ProductionReason::Manual,
    });
    start_billing(status, distributor, now);
    Ok(())
}

/// A Production Partner that lost its binding (its Distributor gone, or its namespace no longer
/// selected) is not billed to anyone, so it does not keep Production either: billing and the
/// Production entitlements end together, now, and the level becomes `Expired` (never a silent
/// count drop on the Distributor while the tenant still says Production). Its tenant's
/// entitlements follow, as for every unbound Partner with a tenant.
fn unbind_production(
    status: &mut PartnerStatus,
    effects: &mut Vec<Effect>,
    obs: &Observation,
    why: &str,
) {
    let now = obs.now;
    status.subscription_level = Some(SubscriptionLevel::Expired);
    status.expires_at = None;
    end_production(
        status,
        effects,
        now,
        &obs.partner.spec.distributor_ref.name,
        (
            events::PRODUCTION_ENDED_UNBOUND,
            format!("Production ended on {}: {why}", now.to_rfc3339()),
        ),
        ": the Partner is no longer bound to it",
    );
}

/// Production ends at `at`: the billing period ends then (once: an end already set stays), and
/// two Events say so, what ended Production (`why`) and the billing's end (`billing_note`
/// appended to its message).
fn end_production(
    status: &mut PartnerStatus,
    effects: &mut Vec<Effect>,
    at: DateTime<Utc>,
    distributor: &str,
    why: (&'static str, String),
    billing_note: &str,
) {
    let billed_to = match status.billing.as_mut() {
        Some(billing) => {
            billing.ended_at.get_or_insert(at);
            billing.billed_to.clone()
        }
        None => distributor.to_string(),
    };
    effects.push(Effect::Event {
        reason: why.0,
        message: why.1,
    });
    effects.push(Effect::Event {
        reason: events::BILLING_ENDED,
        message: format!(
            "billing to {billed_to} ended on {}{billing_note}",
            at.to_rfc3339()
        ),
    });
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

/// Billing starts once: a `startedAt` already set never changes.
fn start_billing(status: &mut PartnerStatus, distributor: &str, at: DateTime<Utc>) {
    if status.billing.is_none() {
        status.billing = Some(BillingStatus {
            billed_to: distributor.to_string(),
            started_at: at,
            ended_at: None,
        });
    }
}

fn push_conversion_events(effects: &mut Vec<Effect>, status: &PartnerStatus) {
    let production = status.production.as_ref().expect("converted");
    let billing = status
        .billing
        .as_ref()
        .expect("billing started on conversion");
    effects.push(Effect::Event {
        reason: events::CONVERTED_TO_PRODUCTION,
        message: format!(
            "converted to Production ({:?}) on {}",
            production.reason,
            production.since.to_rfc3339()
        ),
    });
    effects.push(Effect::Event {
        reason: events::BILLING_STARTED,
        message: format!(
            "billing to {} started on {}",
            billing.billed_to,
            billing.started_at.to_rfc3339()
        ),
    });
}

/// The dates an email decided now tells.
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

/// Records an email for `event` unless one was recorded before. Returns whether it was new.
fn record_email(status: &mut PartnerStatus, uid: &str, event: EmailEvent) -> bool {
    if status.emails.iter().any(|e| e.event == event) {
        return false;
    }
    status.emails.push(EmailRecord {
        event,
        message_id: message_id(uid, event),
        sent_at: None,
        last_error: None,
        facts: None,
    });
    true
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

/// What the tenant's `entitlements` ConfigMap carries, so the tenant is rewritten only when one
/// of these changed.
/// The deterministic Message-ID of a Partner's email `event`: the same on every retry, so a
/// message resent after a crash is recognisable as the same message. Derived by hashing, so it
/// reveals neither the uid nor anything secret.
pub fn message_id(partner_uid: &str, event: EmailEvent) -> String {
    let digest = Sha256::digest(format!("{partner_uid}/{}", event.as_str()).as_bytes());
    format!(
        "<{}.{}@partner-operator.io>",
        event.as_str(),
        &hex::encode(digest)[..32]
    )
}

/// The stable tenant id of a Partner: a name-based UUID of its uid, so re-provisioning after a
/// crash or a deleted namespace yields the same id.
pub fn tenant_id(partner_uid: &str) -> String {
    const NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x5c1c_1d2e_7a9b_4c1e_9e57_3f0a_b0c4_d2e1);
    uuid::Uuid::new_v5(&NAMESPACE, partner_uid.as_bytes()).to_string()
}

/// The label on a tenant namespace that carries the uid of the Partner that owns it. The operator
/// sets it when it creates the namespace and acts only on a namespace where it matches.
pub const OWNER_UID_LABEL: &str = "partner-operator.io/owner-uid";

/// Hex digits of the uid's hash that end a tenant namespace name (40 bits).
const TENANT_SUFFIX_HEX: usize = 10;
/// Longest readable prefix: 63 characters minus `-` and the suffix.
const TENANT_PREFIX_MAX: usize = 63 - 1 - TENANT_SUFFIX_HEX;

/// The tenant namespace of a Partner: `<readable prefix>-<suffix>`, a DNS-1123 label of at most
/// 63 characters.
///
/// - The prefix is `<namespace>-<name>`, lowercased, every character outside `[a-z0-9-]` (the
///   `.` a Partner name may hold) turned into `-`, cut to 52 characters: it is only there for
///   people. Several Partners may share it (`c` in `a-b` and `b-c` in `a`, `acme-eu` and
///   `acme.eu`, long names with a common start), so it decides nothing.
/// - The suffix is the first 10 hex digits of the SHA-256 of the Partner's uid. The uid is set by
///   the API server (a random UUID), never reused, and no Partner author chooses it; the
///   namespace and name are immutable. So the name is stable for the Partner's life, and another
///   Partner's name can only equal it if the 40-bit hashes of two server-chosen uids agree: by
///   chance about n²/2⁴¹ among n Partners (1 in 20,000 for 10,000 Partners), on purpose only by
///   creating some 10¹¹ Partners. A full uid (32 hex digits) would leave a prefix of 30
///   characters, too short to read. Even then the name is not shared: the tenant namespace
///   carries its owner's uid in a label, and the operator neither adopts nor writes into a
///   namespace that another uid owns (the second Partner reports `TenantNamespaceTaken`).
///
/// Nothing a Partner author or a status writer can set enters the name; a Partner deleted and
/// created again under the same name gets a new uid and so a new tenant.
pub fn tenant_namespace(partner_namespace: &str, partner_name: &str, partner_uid: &str) -> String {
    let readable: String = format!("{partner_namespace}-{partner_name}")
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let mut prefix = readable.trim_matches('-');
    if prefix.len() > TENANT_PREFIX_MAX {
        prefix = prefix[..TENANT_PREFIX_MAX].trim_end_matches('-');
    }
    if prefix.is_empty() {
        prefix = "tenant";
    }
    let suffix = &hex::encode(Sha256::digest(partner_uid.as_bytes()))[..TENANT_SUFFIX_HEX];
    format!("{prefix}-{suffix}")
}

/// The tenant namespace of `partner`, from its metadata only (see [`tenant_namespace`]).
pub fn tenant_namespace_of(partner: &Partner) -> String {
    tenant_namespace(
        partner.metadata.namespace.as_deref().unwrap_or_default(),
        partner.metadata.name.as_deref().unwrap_or_default(),
        partner.metadata.uid.as_deref().unwrap_or_default(),
    )
}

/// A label value for `value` (a Kubernetes name): itself when it fits the 63 characters a label
/// value may hold, else its first 52 characters and 10 hex digits of its SHA-256, so distinct
/// long names stay distinct labels. Names are DNS-1123 subdomains: what remains is made of
/// label-value characters, and the cut is trimmed back to end on a letter or digit.
pub fn label_value(value: &str) -> String {
    if value.len() <= 63 {
        return value.to_string();
    }
    let hash = &hex::encode(Sha256::digest(value.as_bytes()))[..TENANT_SUFFIX_HEX];
    let head: String = value.chars().take(TENANT_PREFIX_MAX).collect();
    let head = head.trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    format!("{head}-{hash}")
}

/// Whether `name` is a DNS-1123 label, as Kubernetes requires of a namespace name.
pub fn is_dns1123_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

/// Whether a namespace may hold Partners of `distributor`: it matches `partnerNamespaces`, or,
/// when that is unset, carries `partner-operator.io/distributor=<distributor name>`.
pub fn namespace_allowed(distributor: &Distributor, namespace: &Namespace) -> bool {
    let labels = namespace.metadata.labels.clone().unwrap_or_default();
    match &distributor.spec.partner_namespaces {
        Some(selector) => selector_matches(selector, &labels),
        None => {
            labels.get(DISTRIBUTOR_LABEL).map(String::as_str)
                == distributor.metadata.name.as_deref()
        }
    }
}

/// Label selector semantics of Kubernetes: every `matchLabels` pair and every expression must
/// hold; an empty selector matches everything.
pub fn selector_matches(
    selector: &LabelSelector,
    labels: &std::collections::BTreeMap<String, String>,
) -> bool {
    let labels_ok = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let expressions_ok = selector.match_expressions.iter().flatten().all(|expr| {
        let values = expr.values.clone().unwrap_or_default();
        let value = labels.get(&expr.key);
        match expr.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    });
    labels_ok && expressions_ok
}

/// A Distributor's counts: bound Partners by level, and Production Partners per SKU.
pub fn distributor_totals<'a>(
    partners: impl IntoIterator<Item = &'a PartnerStatus>,
) -> (PartnerCounts, crate::api::DistributorBilling) {
    let mut counts = PartnerCounts::default();
    let mut billing = crate::api::DistributorBilling::default();
    for status in partners {
        let bound = crate::api::is_condition_true(&status.conditions, types::DISTRIBUTOR_BOUND);
        match status.subscription_level.unwrap_or_default() {
            SubscriptionLevel::Pending => counts.pending += 1,
            _ if !bound => {}
            SubscriptionLevel::Trial => counts.trial += 1,
            SubscriptionLevel::Production => {
                counts.production += 1;
                billing.production_partners += 1;
                for sku in &status.skus {
                    *billing.seats.entry(sku.0.clone()).or_default() += 1;
                }
            }
            SubscriptionLevel::Expired => counts.expired += 1,
        }
    }
    (counts, billing)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn tenant_namespaces_are_readable_and_end_in_the_uid_hash() {
        let name = tenant_namespace("northwind-partners", "contoso", "uid-1");
        let suffix = &hex::encode(Sha256::digest(b"uid-1"))[..10];
        assert_eq!(name, format!("northwind-partners-contoso-{suffix}"));
        assert_eq!(
            name,
            tenant_namespace("northwind-partners", "contoso", "uid-1")
        );
    }

    #[test]
    fn partners_whose_names_join_alike_get_different_tenants() {
        // `c` in `a-b` and `b-c` in `a`; `acme-eu` and `acme.eu`.
        let a = tenant_namespace("a-b", "c", "uid-1");
        let b = tenant_namespace("a", "b-c", "uid-2");
        assert!(a.starts_with("a-b-c-") && b.starts_with("a-b-c-"));
        assert_ne!(a, b);
        let dash = tenant_namespace("ns", "acme-eu", "uid-3");
        let dot = tenant_namespace("ns", "acme.eu", "uid-4");
        assert!(dot.starts_with("ns-acme-eu-"), "{dot}");
        assert_ne!(dash, dot);
    }

    #[test]
    fn long_names_are_cut_to_63_characters() {
        let name = tenant_namespace(&"n".repeat(63), &format!("{}.x", "p".repeat(250)), "u");
        assert_eq!(name.len(), 63, "{name}");
        assert!(is_dns1123_label(&name), "{name}");
        // A cut that ends on a separator does not leave it in front of the suffix.
        let name = tenant_namespace(&"n".repeat(51), "p", "u");
        assert!(name.starts_with(&format!("{}-", "n".repeat(51))), "{name}");
        assert!(!name.contains("--"), "{name}");
        assert!(is_dns1123_label(&tenant_namespace("", "", "")));
    }

    #[test]
    fn label_values_fit_and_long_ones_stay_distinct() {
        assert_eq!(label_value("contoso"), "contoso");
        let exact = "x".repeat(63);
        assert_eq!(label_value(&exact), exact);
        let a = label_value(&format!("{}a", "p".repeat(200)));
        let b = label_value(&format!("{}b", "p".repeat(200)));
        assert_ne!(a, b);
        for value in [
            &a,
            &b,
            &label_value(&format!("{}.{}", "q".repeat(51), "r".repeat(40))),
        ] {
            assert!(value.len() <= 63, "{value}");
            assert!(
                value.chars().last().unwrap().is_ascii_alphanumeric(),
                "{value}"
            );
            assert!(!value.contains(".-"), "{value}");
        }
    }

    /// Kubernetes names: a namespace is a DNS-1123 label, a Partner name a DNS-1123 subdomain.
    fn namespace_names() -> impl Strategy<Value = String> {
        "[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
    }
    fn partner_names() -> impl Strategy<Value = String> {
        "[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?"
    }

    proptest! {
        #[test]
        fn different_uids_never_share_a_tenant_namespace(
            ns_a in namespace_names(), name_a in partner_names(),
            ns_b in namespace_names(), name_b in partner_names(),
            uid_a in "[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
            uid_b in "[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
        ) {
            let a = tenant_namespace(&ns_a, &name_a, &uid_a);
            let b = tenant_namespace(&ns_b, &name_b, &uid_b);
            prop_assert!(is_dns1123_label(&a), "{}", a);
            prop_assert!(is_dns1123_label(&b), "{}", b);
            prop_assert_eq!(&a, &tenant_namespace(&ns_a, &name_a, &uid_a));
            if uid_a != uid_b {
                prop_assert_ne!(&a, &b);
            }
            // The same names with the other uid: still another tenant.
            if uid_a != uid_b {
                prop_assert_ne!(a, tenant_namespace(&ns_a, &name_a, &uid_b));
            }
        }

        #[test]
        fn any_name_makes_a_valid_tenant_namespace(ns in ".{0,80}", name in ".{0,300}", uid in ".{0,40}") {
            let namespace = tenant_namespace(&ns, &name, &uid);
            prop_assert!(is_dns1123_label(&namespace), "{}", namespace);
        }

        #[test]
        fn label_values_of_names_are_valid(name in partner_names()) {
            let value = label_value(&name);
            prop_assert!(value.len() <= 63);
            prop_assert!(value.starts_with(|c: char| c.is_ascii_alphanumeric()));
            prop_assert!(value.ends_with(|c: char| c.is_ascii_alphanumeric()));
            prop_assert!(value.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)));
        }
    }
}
