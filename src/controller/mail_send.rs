//! Sending one email whose intent is recorded in `status.emails`: the rate limits first (the
//! operator's per recipient address, then the Distributor's), then the SMTP round trip, then
//! its outcome, recorded in status.
//!
//! The round trip is raced against the Partner's deletion: a mail server that accepts and never
//! answers must not hold a deletion up for as long as the send may take. Once the cache shows
//! the Partner being deleted (or gone, or replaced by another uid), the send is given up (its
//! connection closed) and the reconciliation ends, so the next one deprovisions the Partner.
//! The email's record stays without `sentAt` and goes with the Partner: nothing plans it again,
//! so it was sent at most once, under its Message-ID.

use std::time::Duration;

use kube::Api;
use kube::runtime::reflector::ObjectRef;
use tracing::{debug, info};

use super::Context;
use super::outcome::record_outcome;
use super::partner::{Error, Next, token};
use super::recipient_rate::Place;
use crate::api::{EmailEvent, Partner, Recipient};
use crate::lifecycle::emails::RateLimit;
use crate::lifecycle::{Email, Outcome};
use crate::mail::{ActivationLink, MailError, OutgoingEmail};
use crate::tenant;

/// How often the cache is looked at for the Partner's deletion while its email is in flight.
const DELETION_POLL: Duration = Duration::from_millis(200);

/// Sends one recorded email if the rate limits have room, then records the outcome in status
/// and says it in an Event if the lifecycle says to. An email over a limit, or refused for
/// good, is held in its record and the plan is made again; a failure that may pass is an
/// error, retried with backoff; a send given up for the Partner's deletion ends the
/// reconciliation.
pub(super) async fn send(
    api: &Api<Partner>,
    current: &mut Partner,
    ctx: &Context,
    email: &Email,
) -> Result<Option<Next>, Error> {
    let place = match take_places(api, current, ctx, email).await? {
        Ok(place) => place,
        Err(next) => return Ok(Some(next)),
    };
    let outgoing = outgoing(ctx, current, email);
    let kind = email.event.as_str();
    let labels = crate::metrics::EmailLabels { kind };
    let reference = ObjectRef::from_obj(&*current);
    let uid = current.metadata.uid.clone();
    let delivered = tokio::select! {
        biased;
        result = ctx.mailer.send(&outgoing) => result,
        () = deleted(ctx, &reference, uid.as_deref()) => {
            info!(partner = %reference, email = kind, "the Partner is being deleted: its email in flight is given up");
            return Ok(Some(Next::Requeue(Duration::ZERO)));
        }
    };
    match delivered {
        Ok(()) => {
            crate::crash_points::pass("after-send");
            ctx.metrics.emails_sent.get_or_create(&labels).inc();
            debug!(partner = %reference, email = kind, "email sent");
            let at = ctx.clock.timestamp();
            record_outcome(ctx, api, current, Outcome::EmailSent { email, at }).await?;
            Ok(None)
        }
        Err(err) => {
            // The server did not take it: the recipient's count is of emails that reached it.
            if let Some(place) = place {
                ctx.recipient_rate.give_back(place);
            }
            failed(api, current, ctx, email, err).await
        }
    }
}

/// A place in the recipient's count (for an activation email) and in the Distributor's, or
/// the email held by the limit that has none (what follows then).
async fn take_places(
    api: &Api<Partner>,
    current: &mut Partner,
    ctx: &Context,
    email: &Email,
) -> Result<Result<Option<Place>, Next>, Error> {
    let now = ctx.clock.timestamp();
    let mut place = None;
    let counted = email.event == EmailEvent::Activation && email.recipient == Recipient::Partner;
    if counted && let Some(address) = email.to.first() {
        match ctx
            .recipient_rate
            .try_take(address, now, || ctx.partners.state())
        {
            Ok(taken) => place = taken,
            Err(until) => {
                debug!(partner = %ObjectRef::from_obj(&*current), %until, "recipient rate limit reached");
                let limit = RateLimit::Recipient {
                    per_hour: ctx.recipient_rate.per_hour(),
                };
                return hold(api, current, ctx, email, limit, until).await.map(Err);
            }
        }
    }
    let room = ctx
        .mail_rate
        .try_take(&email.distributor, email.rate_limit, now, || {
            ctx.partners.state()
        });
    if let Err(until) = room {
        if let Some(place) = place {
            ctx.recipient_rate.give_back(place);
        }
        let labels = crate::metrics::DistributorLabels {
            distributor: email.distributor.clone(),
        };
        ctx.metrics.emails_rate_limited.get_or_create(&labels).inc();
        debug!(partner = %ObjectRef::from_obj(&*current), email = email.event.as_str(), %until, "email rate limit reached");
        return hold(api, current, ctx, email, RateLimit::Distributor, until)
            .await
            .map(Err);
    }
    Ok(Ok(place))
}

/// Holds `email` in its record until `until` (a Warning says so the first time); the plan is
/// made again.
async fn hold(
    api: &Api<Partner>,
    current: &mut Partner,
    ctx: &Context,
    email: &Email,
    limit: RateLimit,
    until: chrono::DateTime<chrono::Utc>,
) -> Result<Next, Error> {
    let outcome = Outcome::EmailRateLimited {
        email,
        limit,
        until,
    };
    record_outcome(ctx, api, current, outcome).await?;
    Ok(Next::PlanAgain)
}

/// The message of `email`, with the activation link made from the operator's key.
fn outgoing(ctx: &Context, current: &Partner, email: &Email) -> OutgoingEmail {
    let mut vars = email.vars.clone();
    if let Some(base) = &email.link_base {
        let token = token(ctx, current, &email.message_id);
        let link = tenant::activation_link(base, &vars.tenant_id, &token);
        vars.activation_link = Some(ActivationLink::new(link));
    }
    OutgoingEmail {
        event: email.event,
        to: email.to.clone(),
        message_id: email.message_id.clone(),
        vars,
    }
}

/// Records why `email` was not sent: a refusal for good holds it, and the plan is made again;
/// a failure that may pass is an error, retried with backoff.
async fn failed(
    api: &Api<Partner>,
    current: &mut Partner,
    ctx: &Context,
    email: &Email,
    err: MailError,
) -> Result<Option<Next>, Error> {
    let kind = email.event.as_str();
    let labels = crate::metrics::EmailLabels { kind };
    ctx.metrics.emails_failed.get_or_create(&labels).inc();
    let reason = err.to_string();
    let permanent = err.is_permanent();
    let outcome = Outcome::EmailFailed {
        email,
        error: &reason,
        permanent,
    };
    record_outcome(ctx, api, current, outcome).await?;
    if permanent {
        return Ok(Some(Next::PlanAgain));
    }
    Err(Error::Mail {
        event: kind,
        source: err,
    })
}

/// Resolves once the cache shows the Partner being deleted, gone, or replaced by another of
/// the same name (`uid` is the one whose email is in flight).
async fn deleted(ctx: &Context, reference: &ObjectRef<Partner>, uid: Option<&str>) {
    loop {
        let going = ctx.partners.get(reference).is_none_or(|p| {
            p.metadata.deletion_timestamp.is_some() || p.metadata.uid.as_deref() != uid
        });
        if going {
            return;
        }
        tokio::time::sleep(DELETION_POLL).await;
    }
}
