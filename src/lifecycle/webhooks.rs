//! The lifecycle events told to the Distributor's webhook endpoints: which transitions are
//! events, what each carries, and what a delivery's outcome changes in the status.
//!
//! Every transition the plan makes already says itself in an Event of the plan
//! (`TenantProvisioned`, `ConvertedToProduction`, `BillingStarted`, ...; most are also recorded
//! as Kubernetes Events, see [`super::EventReason::is_recorded`]): [`record`] reads those of this plan and
//! records one [`WebhookRecord`] per webhook event, in the same status write as the transition
//! (so no transition is written without its event, and a crash before the write plans both
//! again, with the same id). [`deliver`] hands each endpoint the oldest event it does not have
//! yet, one at a time per Partner and endpoint, so each endpoint sees a Partner's events in the
//! order they happened. The delivery itself (signing, HTTP, retries) is the reconciler's, and
//! never holds up the Partner's own work (a status write waits a moment for a first attempt
//! under way, to record it); its outcome comes back through [`delivered`] and
//! [`failed`].
//!
//! Only a Partner bound to its Distributor (the one whose `partnerNamespaces` select its
//! namespace) records or is sent anything. A record says only which event is owed to whom:
//! what is signed is rebuilt from the operator's facts ([`facts`]), and a record that matches
//! none (someone with `partners/status` wrote it) is dropped with a Warning.

use chrono::{DateTime, Utc};

use super::draft::Draft;
use super::{Effect, EventReason, PartnerEvent};
use crate::api::grammar::Zulu;
use crate::api::{
    Distributor, Partner, PartnerStatus, WebhookDelivery, WebhookEndpoint, WebhookEventType,
    WebhookRecord,
};

pub use facts::{WebhookEvent, event_id, rebuild};

/// One delivery to hand to the sender: the event and the endpoint as the plan saw them.
#[derive(Clone, Debug, PartialEq)]
pub struct WebhookSend {
    pub record: WebhookRecord,
    pub endpoint: WebhookEndpoint,
    /// Its delivery state as recorded (attempts so far).
    pub delivery: WebhookDelivery,
    pub distributor: String,
    pub retry_for: chrono::Duration,
}

/// Records the webhook events of this plan's transitions, for every endpoint that wants them;
/// and drops what is pending for an endpoint the Distributor no longer lists.
pub(super) fn record_events<P>(d: &mut Draft<P>, bound_to: Option<&Distributor>) {
    drop_unlisted(d);
    // Only for the Distributor the Partner is bound to: an unbound Partner tells nobody.
    let Some(distributor) = bound_to else {
        return;
    };
    if distributor.spec.webhooks.endpoints.is_empty() {
        return;
    }
    let reasons: Vec<EventReason> = d
        .effects
        .iter()
        .filter_map(|e| match e {
            Effect::Event(event) => Some(event.reason),
            _ => None,
        })
        .collect();
    for reason in reasons {
        let Some((type_, period)) = event_of(reason, &d.status) else {
            continue;
        };
        let time = facts::happened_at(type_, period, &d.status, d.now).unwrap_or(d.now);
        add(&mut d.status, d.partner, distributor, type_, period, time);
    }
}

/// What deleting a Partner tells: billing ends now (if it runs), and the deletion itself.
/// Recorded once (`status.deletedAt`); returns the Event of the billing's end, if it ended now.
pub fn record_deletion(status: &mut PartnerStatus, now: DateTime<Utc>) -> Option<PartnerEvent> {
    if status.deleted_at.is_some() {
        return None;
    }
    status.deleted_at = Some(now);
    let billing = status.billing.as_mut().filter(|b| b.ended_at.is_none())?;
    billing.end(now);
    let billed_to = billing.billed_to.clone();
    let ended = PartnerEvent {
        reason: EventReason::BillingEnded,
        message: format!(
            "billing to {billed_to} ended on {}: the Partner was deleted",
            now.zulu()
        ),
    };
    Some(ended)
}

/// The webhook events of a deletion, recorded with [`record_deletion`]'s status change, for
/// the Distributor the Partner is bound to (`None`: unbound, nothing is told).
pub fn record_deletion_events(
    status: &mut PartnerStatus,
    partner: &Partner,
    distributor: Option<&Distributor>,
    billing_ended: bool,
    now: DateTime<Utc>,
) {
    let Some(distributor) = distributor else {
        return;
    };
    if distributor.spec.webhooks.endpoints.is_empty() || status.tenant.is_none() {
        return;
    }
    let period = billing_period(status);
    if billing_ended {
        let type_ = WebhookEventType::BillingPeriodEnded;
        add(status, partner, distributor, type_, period, now);
    }
    add(
        status,
        partner,
        distributor,
        WebhookEventType::Deleted,
        0,
        now,
    );
}

/// A deleted Partner waiting for `sends` says so in `Ready=False` (reason `WebhooksPending`),
/// naming the endpoints and how to stop waiting.
pub fn deletion_waits(
    status: &mut PartnerStatus,
    sends: &[WebhookSend],
    generation: Option<i64>,
    now: DateTime<Utc>,
) {
    let endpoints: Vec<&str> = sends.iter().map(|s| s.endpoint.name.as_str()).collect();
    crate::api::set_condition(
        &mut status.conditions,
        crate::api::types::READY,
        false,
        super::reasons::WEBHOOKS_PENDING,
        format!(
            "deleting: kept until its webhook events are delivered to endpoint(s) {} \
             or given up on (spec.webhooks.retryHours after a failure); removing an endpoint \
             from the Distributor drops what waits for it",
            endpoints.join(", ")
        ),
        generation,
        now,
    );
}

/// Hands each endpoint the oldest event it does not have yet (the next waits until it is
/// delivered or given up on).
/// A record that matches no transition of the Partner is dropped first, with a Warning.
pub(super) fn deliver<P>(d: &mut Draft<P>, bound_to: Option<&Distributor>) {
    let Some(distributor) = bound_to else {
        return;
    };
    reject_unmatched(d, distributor);
    for send in due(&d.status, distributor) {
        d.effects.push(Effect::DeliverWebhook(Box::new(send)));
    }
}

/// The deliveries due for `status`: per endpoint, the oldest event pending for it.
pub fn due(status: &PartnerStatus, distributor: &Distributor) -> Vec<WebhookSend> {
    let policy = &distributor.spec.webhooks;
    let mut seen = std::collections::BTreeSet::new();
    let mut sends = Vec::new();
    for record in &status.webhooks {
        for delivery in &record.pending {
            if !seen.insert(delivery.endpoint.clone()) {
                continue;
            }
            let Some(endpoint) = policy.endpoint(&delivery.endpoint) else {
                continue;
            };
            sends.push(WebhookSend {
                record: record.clone(),
                endpoint: endpoint.clone(),
                delivery: delivery.clone(),
                distributor: distributor.metadata.name.clone().unwrap_or_default(),
                retry_for: policy.retry_for(),
            });
        }
    }
    sends
}

/// [`due`], without the records that match no transition of `partner` (never sent; the
/// Partner's next plan drops them).
pub fn due_verified(
    partner: &Partner,
    status: &PartnerStatus,
    distributor: &Distributor,
) -> Vec<WebhookSend> {
    due(status, distributor)
        .into_iter()
        .filter(|send| rebuild(partner, distributor, status, &send.record).is_some())
        .collect()
}

/// Drops the records the operator cannot rebuild from its facts (see [`facts`]): written by
/// someone else into `status.webhooks`. The Warning says what was dropped, not what it said.
fn reject_unmatched<P>(d: &mut Draft<P>, distributor: &Distributor) {
    let (partner, status) = (d.partner, &d.status);
    let (kept, rejected): (Vec<_>, Vec<_>) = status
        .webhooks
        .iter()
        .cloned()
        .partition(|r| rebuild(partner, distributor, status, r).is_some());
    if rejected.is_empty() {
        return;
    }
    d.status.webhooks = kept;
    for record in rejected {
        d.event(
            EventReason::WebhookRecordRejected,
            format!(
                "a {} record in status.webhooks matches no transition of this Partner \
                 (its id must be <uid>.<event>.<period> of a transition its status records): \
                 dropped, nothing was sent",
                record.type_
            ),
        );
    }
}

/// The endpoint has the event: it leaves the record, and the record leaves once every endpoint
/// has it. Whether anything changed.
pub fn delivered(status: &mut PartnerStatus, id: &str, endpoint: &str) -> bool {
    let before = status.webhooks.len() + pending_count(status);
    for record in status.webhooks.iter_mut().filter(|r| r.id == id) {
        record.pending.retain(|p| p.endpoint != endpoint);
    }
    status.webhooks.retain(|r| !r.pending.is_empty());
    before != status.webhooks.len() + pending_count(status)
}

/// An attempt failed at `at` (the system clock: delivery is retried in real time, whatever
/// clock the lifecycle runs on). Retried until `retry_for` after the first failure; after that
/// the event is given up on for that endpoint. The Warning to record: on the first failure,
/// and when given up on.
pub fn failed(
    status: &mut PartnerStatus,
    send: &WebhookSend,
    error: &str,
    at: DateTime<Utc>,
) -> Option<PartnerEvent> {
    let (id, endpoint) = (&send.record.id, &send.endpoint.name);
    let delivery = status
        .webhooks
        .iter_mut()
        .filter(|r| &r.id == id)
        .flat_map(|r| r.pending.iter_mut())
        .find(|p| &p.endpoint == endpoint)?;
    delivery.attempts += 1;
    let first = *delivery.first_failed_at.get_or_insert(at);
    delivery.last_attempt_at = Some(at);
    delivery.last_error = Some(error.to_string());
    let attempts = delivery.attempts;
    let type_ = send.record.type_;
    if at - first >= send.retry_for {
        delivered(status, id, endpoint);
        return Some(PartnerEvent {
            reason: EventReason::WebhookAbandoned,
            message: format!(
                "webhook {type_} ({id}) given up for endpoint {endpoint} after {attempts} \
                 attempts over {} hours: {error}",
                send.retry_for.num_hours()
            ),
        });
    }
    (attempts == 1).then(|| PartnerEvent {
        reason: EventReason::WebhookDeliveryFailed,
        message: format!(
            "webhook {type_} ({id}) to endpoint {endpoint} failed: {error}; retrying with backoff"
        ),
    })
}

/// Drops what is pending for endpoints the Distributor no longer lists (or for a Distributor
/// that is gone): nothing more goes to them.
fn drop_unlisted<P>(d: &mut Draft<P>) {
    let listed = |name: &str| {
        d.obs
            .distributor
            .is_some_and(|dist| dist.spec.webhooks.endpoint(name).is_some())
    };
    let mut dropped = Vec::new();
    for record in &mut d.status.webhooks {
        record.pending.retain(|p| {
            let keep = listed(&p.endpoint);
            if !keep {
                dropped.push((record.type_, record.id.clone(), p.endpoint.clone()));
            }
            keep
        });
    }
    d.status.webhooks.retain(|r| !r.pending.is_empty());
    for (type_, id, endpoint) in dropped {
        d.event(
            EventReason::WebhookAbandoned,
            format!("webhook {type_} ({id}) dropped: endpoint {endpoint} is no longer listed"),
        );
    }
}

/// What a Distributor's endpoint lacks, over its Partners.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EndpointHealth {
    pub endpoint: String,
    /// Events recorded that it does not have yet.
    pub pending: u32,
    /// When the oldest of them happened.
    pub oldest: Option<DateTime<Utc>>,
    /// Deliveries to it that failed at their last attempt, and the latest such error.
    pub failing: u32,
    pub last_error: Option<String>,
}

/// Each listed endpoint's health, from its Partners' statuses.
pub fn endpoint_health<'a>(
    distributor: &Distributor,
    partners: impl IntoIterator<Item = &'a PartnerStatus>,
) -> Vec<EndpointHealth> {
    let mut health: Vec<EndpointHealth> = distributor
        .spec
        .webhooks
        .endpoints
        .iter()
        .map(|e| EndpointHealth {
            endpoint: e.name.clone(),
            ..EndpointHealth::default()
        })
        .collect();
    let mut latest_failure = vec![None; health.len()];
    for record in partners.into_iter().flat_map(|s| &s.webhooks) {
        for delivery in &record.pending {
            let Some(i) = health.iter().position(|h| h.endpoint == delivery.endpoint) else {
                continue;
            };
            let h = &mut health[i];
            h.pending += 1;
            h.oldest = Some(h.oldest.map_or(record.time, |t| t.min(record.time)));
            if delivery.attempts > 0 {
                h.failing += 1;
                if delivery.last_attempt_at >= latest_failure[i] {
                    latest_failure[i] = delivery.last_attempt_at;
                    h.last_error = delivery.last_error.clone();
                }
            }
        }
    }
    health
}

/// The Distributor's `WebhooksDelivered` condition: whether it holds, its reason and message.
pub fn delivered_condition(health: &[EndpointHealth]) -> (bool, &'static str, String) {
    let failing: Vec<String> = health
        .iter()
        .filter(|h| h.failing > 0)
        .map(|h| {
            format!(
                "endpoint {}: {} deliveries failing, {} events pending since {}; last error: {}",
                h.endpoint,
                h.failing,
                h.pending,
                h.oldest.map_or_else(String::new, |t| {
                    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                }),
                h.last_error.as_deref().unwrap_or("none recorded"),
            )
        })
        .collect();
    if failing.is_empty() {
        // No count here: the status would change with every delivery (the gauges count).
        return (
            true,
            super::reasons::WEBHOOKS_CURRENT,
            "no delivery is failing".to_string(),
        );
    }
    (
        false,
        super::reasons::WEBHOOK_DELIVERY_FAILING,
        failing.join("; "),
    )
}

fn pending_count(status: &PartnerStatus) -> usize {
    status.webhooks.iter().map(|r| r.pending.len()).sum()
}

/// The webhook event a Partner Event tells, and its billing period (0 for events outside
/// billing).
fn event_of(reason: EventReason, status: &PartnerStatus) -> Option<(WebhookEventType, u32)> {
    let period = billing_period(status);
    Some(match reason {
        EventReason::TenantProvisioned => (WebhookEventType::Provisioned, 0),
        EventReason::Activated => (WebhookEventType::Activated, 0),
        EventReason::TrialEndingSoon => (WebhookEventType::TrialEnding, 0),
        EventReason::ConvertedToProduction => (WebhookEventType::Converted, period),
        EventReason::ProductionRenewed => (WebhookEventType::Renewed, period),
        EventReason::TrialExpired => (WebhookEventType::Expired, 0),
        EventReason::ProductionExpired | EventReason::ProductionEndedUnbound => {
            (WebhookEventType::Expired, period)
        }
        EventReason::BillingStarted => (WebhookEventType::BillingPeriodStarted, period),
        EventReason::BillingEnded => (WebhookEventType::BillingPeriodEnded, period),
        _ => return None,
    })
}

/// The current (or last) billing period, counted from 1; 0 before billing.
fn billing_period(status: &PartnerStatus) -> u32 {
    status.billing.as_ref().map_or(0, |b| {
        u32::try_from(b.periods.len().max(1)).unwrap_or(u32::MAX)
    })
}

fn add(
    status: &mut PartnerStatus,
    partner: &Partner,
    distributor: &Distributor,
    type_: WebhookEventType,
    period: u32,
    time: DateTime<Utc>,
) {
    let id = event_id(
        partner.metadata.uid.as_deref().unwrap_or_default(),
        type_,
        period,
    );
    if status.webhooks.iter().any(|r| r.id == id) {
        return;
    }
    let pending: Vec<_> = distributor
        .spec
        .webhooks
        .endpoints
        .iter()
        .filter(|e| e.wants(type_))
        .map(|e| WebhookDelivery::to(&e.name))
        .collect();
    if pending.is_empty() {
        return;
    }
    status.webhooks.push(WebhookRecord {
        id,
        type_,
        time,
        data: serde_json::Value::Null,
        pending,
    });
}

#[path = "webhooks_facts.rs"]
mod facts;

#[cfg(test)]
#[path = "webhooks_tests.rs"]
mod tests;
