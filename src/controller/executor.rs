//! Carrying out a plan: its effects in the plan's order, against the outside world
//! ([`Outside`]), paced ([`Pacing`]), each result that must not be lost recorded as the lifecycle
//! decides ([`lifecycle::record_outcome`]). Nothing here decides what happens to a Partner.
//!
//! Exactly-once email rests on three rules:
//! - the intent is written to `status.emails` (with a resourceVersion precondition) *before* the
//!   email goes out, so after a crash the same email is retried with the same Message-ID;
//! - an email is only sent from a Partner read fresh from the API server (the status the
//!   operator just wrote, or a GET), never from a cache that may not yet show a delivery;
//! - recording the delivery is retried on conflicts and transient API errors, because a
//!   delivery that is not recorded would be repeated.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use kube::runtime::reflector::ObjectRef;
use tracing::debug;

use super::mail_slots::MailSlot;
use super::outside::{Outside, Sending};
use super::pacing::Pacing;
use super::partner::Error;
use crate::api::Partner;
use crate::lifecycle::emails::RateLimit;
use crate::lifecycle::{self, Effect, Email, Outcome, PartnerEvent, Plan};
use crate::status::Persistence;
use crate::tenant::{self, Tenant};

/// How soon a reconciliation that found no free mail slot looks again, if nothing wakes it.
const MAIL_SLOT_RETRY: Duration = Duration::from_secs(2);

/// What one reconciliation knows beyond the cache, which may lag behind its own writes.
pub(super) struct Pass {
    /// The Partner as last read or written.
    pub current: Partner,
    /// Whether `current` came from the API server in this reconciliation (not from the cache).
    pub fresh: bool,
    /// What this reconciliation found at the tenant's name.
    pub tenant_found: Option<Tenant>,
    /// What this reconciliation wrote to the tenant's `entitlements`.
    pub entitlements_written: Option<BTreeMap<String, String>>,
    /// Taken before the fresh read that precedes sending, held until this reconciliation ends
    /// (the emails sent and recorded).
    pub mail_slot: Option<MailSlot>,
    /// An email the mail server accepted, recorded by the next plan's status write.
    pub unrecorded: Option<Unrecorded>,
    /// Whether this reconciliation tried to make a new tenant before writing the status that
    /// records it (see `partner::create_tenant_first`).
    pub tenant_first_tried: bool,
    /// The instant the next plan is made at, if not now (see `partner::create_tenant_first`).
    pub planned_at: Option<DateTime<Utc>>,
}

/// An email the mail server accepted and the status does not say yet. The next plan is made on
/// the Partner with it recorded, so one write records the delivery and whatever follows from
/// it; nothing else is sent before that write.
pub(super) struct Unrecorded {
    email: Box<Email>,
    at: DateTime<Utc>,
}

impl Unrecorded {
    pub fn outcome(&self) -> Outcome<'_> {
        Outcome::EmailSent {
            email: &self.email,
            at: self.at,
        }
    }

    /// `partner` with the email recorded sent, and the Event that tells it.
    pub fn recorded_on(&self, partner: &Partner) -> (Partner, Option<PartnerEvent>) {
        let mut partner = partner.clone();
        let status = partner.status.get_or_insert_default();
        let event = lifecycle::record_outcome(status, &self.outcome());
        (partner, event)
    }
}

impl Pass {
    /// A reconciliation of `cached`, the Partner as the cache shows it.
    pub fn new(cached: &Partner) -> Self {
        Self {
            current: cached.clone(),
            fresh: false,
            tenant_found: None,
            entitlements_written: None,
            mail_slot: None,
            unrecorded: None,
            tenant_first_tried: false,
            planned_at: None,
        }
    }
}

/// What follows the effects of one plan.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Next {
    /// Plan again on what the effects changed.
    PlanAgain,
    /// Nothing left to do: look again when the plan says.
    Done,
    /// Come back later (a mail slot, or the emails' own pass).
    Requeue(Duration),
}

/// Performs the plan's writes in order (its Events and webhook deliveries are out already).
/// The tenant is written before any email waits for a mail slot: a slow mail server delays
/// only the mail.
pub(super) async fn carry_out(
    world: &impl Outside,
    pacing: &Pacing,
    pass: &mut Pass,
    plan: &Plan,
) -> Result<Next, Error> {
    let writes = plan
        .effects
        .iter()
        .any(|e| !matches!(e, Effect::Event(_) | Effect::DeliverWebhook(_)));
    if !writes {
        return Ok(Next::Done);
    }
    for effect in &plan.effects {
        let next = match effect {
            Effect::Event(_) | Effect::DeliverWebhook(_) => None,
            Effect::EnsureTenant { restore_activation } => {
                let found = world
                    .ensure_tenant(
                        &pass.current,
                        restore_activation.as_ref(),
                        pass.tenant_found.as_ref(),
                    )
                    .await?;
                let owned = found.is_owned();
                pass.tenant_found = Some(found);
                // Plan again on what was found: nothing goes into a tenant not this one's.
                if owned {
                    pass.entitlements_written = pass
                        .current
                        .status
                        .as_ref()
                        .and_then(|status| tenant::entitlements_data(&pass.current, status));
                    None
                } else {
                    Some(Next::PlanAgain)
                }
            }
            Effect::IssueActivation(token) => match ready_to_send(world, pacing, pass).await? {
                Some(next) => Some(next),
                // The token is stored right before its email, under the same mail slot.
                None => {
                    let found = world.store_activation(&pass.current, token).await?;
                    // No link goes out whose token hash is not stored in the Partner's tenant.
                    (!found.is_owned()).then(|| {
                        pass.tenant_found = Some(found);
                        Next::PlanAgain
                    })
                }
            },
            Effect::SendEmail(email) => match ready_to_send(world, pacing, pass).await? {
                Some(next) => Some(next),
                None => send(world, pacing, pass, email).await?,
            },
            Effect::SendEmailsNextPass => Some(Next::Requeue(Duration::ZERO)),
        };
        if let Some(next) = next {
            return Ok(next);
        }
    }
    Ok(Next::PlanAgain)
}

/// Before the first email of a pass (or its activation token): a mail slot (else the Partner
/// steps aside until one frees), then a fresh read of the Partner (a cached status may not
/// show an email that went out already; the plan is made again on what is stored).
async fn ready_to_send(
    world: &impl Outside,
    pacing: &Pacing,
    pass: &mut Pass,
) -> Result<Option<Next>, Error> {
    if pass.mail_slot.is_none() {
        let reference = ObjectRef::from_obj(&pass.current);
        match pacing.mail_slot(&reference, world.now()) {
            Some(slot) => pass.mail_slot = Some(slot),
            None => {
                debug!(partner = %reference, "waiting for a mail slot");
                // Woken when a slot frees; the requeue only covers a wake-up that another
                // reconciliation of this Partner consumed.
                return Ok(Some(Next::Requeue(MAIL_SLOT_RETRY)));
            }
        }
    }
    if !pass.fresh {
        pass.current = world.read(&pass.current).await?;
        pass.fresh = true;
        return Ok(Some(Next::PlanAgain));
    }
    Ok(None)
}

/// Sends one recorded email if the rate limits have room (the operator's per recipient
/// address, then the Distributor's). Accepted, it is left for the next plan's write to record
/// ([`Unrecorded`]), before anything else is sent. An email over a limit, or refused for good,
/// is held in its record and the plan is made again; a failure that may pass is an error,
/// retried with backoff; a send given up for the Partner's deletion ends the reconciliation.
async fn send(
    world: &impl Outside,
    pacing: &Pacing,
    pass: &mut Pass,
    email: &Email,
) -> Result<Option<Next>, Error> {
    let current = &mut pass.current;
    let kind = email.event.as_str();
    let labels = crate::metrics::EmailLabels { kind };
    let place = match pacing.take_places(email, world.now(), || world.partners()) {
        Ok(place) => place,
        Err((limit, until)) => {
            if limit == RateLimit::Distributor {
                let labels = crate::metrics::DistributorLabels {
                    distributor: email.distributor.clone(),
                };
                world
                    .metrics()
                    .emails_rate_limited
                    .get_or_create(&labels)
                    .inc();
            }
            debug!(partner = %ObjectRef::from_obj(&*current), email = kind, %until, "email rate limit reached");
            let outcome = Outcome::EmailRateLimited {
                email,
                limit,
                until,
            };
            write_outcome(world, current, outcome).await?;
            return Ok(Some(Next::PlanAgain));
        }
    };
    match world.send_email(current, email).await {
        Sending::Sent => {
            crate::crash_points::pass("after-send");
            world.metrics().emails_sent.get_or_create(&labels).inc();
            debug!(partner = %ObjectRef::from_obj(&*current), email = kind, "email sent");
            pass.unrecorded = Some(Unrecorded {
                email: Box::new(email.clone()),
                at: world.now(),
            });
            Ok(Some(Next::PlanAgain))
        }
        Sending::GivenUp => Ok(Some(Next::Requeue(Duration::ZERO))),
        Sending::Failed(err) => {
            // The server did not take it: the recipient's count is of emails that reached it.
            if let Some(place) = place {
                pacing.recipient_rate.give_back(place);
            }
            world.metrics().emails_failed.get_or_create(&labels).inc();
            let (error, permanent) = (err.to_string(), err.is_permanent());
            let outcome = Outcome::EmailFailed {
                email,
                error: &error,
                permanent,
            };
            write_outcome(world, current, outcome).await?;
            if permanent {
                return Ok(Some(Next::PlanAgain));
            }
            Err(Error::Mail {
                event: kind,
                source: err,
            })
        }
    }
}

/// Records `outcome` on `current` (left as written) and tells its Event; the Event, if any.
/// Transient errors are retried: an outcome that is lost would be acted on again.
pub(super) async fn write_outcome(
    world: &impl Outside,
    current: &mut Partner,
    outcome: Outcome<'_>,
) -> kube::Result<Option<PartnerEvent>> {
    let event = world
        .transact(current, Persistence::Outcome, |_, status| {
            lifecycle::record_outcome(status, &outcome)
        })
        .await?
        .value;
    if let Some(event) = &event {
        world.publish(current, event);
    }
    Ok(event)
}

#[cfg(test)]
#[path = "executor_tests.rs"]
mod tests;
