//! A webhook event as the operator's own facts tell it. A record in `status.webhooks` says
//! only that an event is owed to some endpoints; whoever may write `partners/status` can put
//! one there, so nothing of it is signed as stored. The event sent is rebuilt from the
//! Partner's uid (which the API server chose), the transition the status records and its
//! billing period, for the Distributor the Partner is bound to; a record that names another
//! Partner's id, a type its id does not say, or a transition that did not happen is no event.
//!
//! What an event carries is what it was when the transition happened, whenever it is sent: the
//! level it led to, the billing period's bounds as they were, the seats billed then.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use crate::api::{
    Distributor, Partner, PartnerStatus, ProductionReason, SubscriptionLevel, WebhookEventType,
    WebhookRecord,
};

/// One event, ready to sign: every field from the operator's facts.
#[derive(Clone, Debug, PartialEq)]
pub struct WebhookEvent {
    pub id: String,
    pub type_: WebhookEventType,
    pub time: DateTime<Utc>,
    pub data: Value,
}

/// The CloudEvent id: the Partner's uid, the event and the billing period.
pub fn event_id(uid: &str, type_: WebhookEventType, period: u32) -> String {
    format!("{uid}.{}.{period}", type_.short())
}

/// The event `record` stands for, for `partner` bound to `distributor`; `None` when the record
/// matches no transition of this Partner.
pub fn rebuild(
    partner: &Partner,
    distributor: &Distributor,
    status: &PartnerStatus,
    record: &WebhookRecord,
) -> Option<WebhookEvent> {
    let uid = partner.metadata.uid.as_deref().filter(|u| !u.is_empty())?;
    let type_ = record.type_;
    let period: u32 = record
        .id
        .strip_prefix(uid)?
        .strip_prefix('.')?
        .strip_prefix(type_.short())?
        .strip_prefix('.')?
        .parse()
        .ok()?;
    let id = event_id(uid, type_, period);
    if id != record.id {
        return None;
    }
    let time = happened_at(type_, period, status, record.time)?;
    Some(WebhookEvent {
        id,
        type_,
        time,
        data: data(partner, distributor, status, type_, period),
    })
}

/// When the transition `type_` of billing period `period` happened, as the status records it;
/// `None` if it records no such transition.
pub(super) fn happened_at(
    type_: WebhookEventType,
    period: u32,
    status: &PartnerStatus,
    recorded: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    use WebhookEventType as T;
    match (type_, period) {
        (T::Provisioned, 0) => status.tenant.as_ref().map(|t| t.provisioned_at),
        (T::Activated, 0) => status.activation.as_ref()?.activated_at,
        // The notice's moment is not kept apart from the event: within the trial, as recorded.
        (T::TrialEnding, 0) => status
            .trial
            .as_ref()
            .map(|t| recorded.clamp(t.started_at, t.ends_at)),
        (T::Expired, 0) => status.trial.as_ref().map(|t| t.ends_at),
        (T::Deleted, 0) => status.deleted_at,
        (T::Converted | T::Renewed | T::BillingPeriodStarted, p) if p > 0 => {
            period_bounds(status, p).map(|(start, _)| start)
        }
        (T::Expired | T::BillingPeriodEnded, p) if p > 0 => period_bounds(status, p)?.1,
        _ => None,
    }
}

/// Billing period `period` (from 1): its start and end, if it ended.
fn period_bounds(
    status: &PartnerStatus,
    period: u32,
) -> Option<(DateTime<Utc>, Option<DateTime<Utc>>)> {
    let billing = status.billing.as_ref()?;
    let index = usize::try_from(period.checked_sub(1)?).ok()?;
    if billing.periods.is_empty() {
        return (index == 0).then_some((billing.started_at, billing.ended_at));
    }
    let last = index + 1 == billing.periods.len();
    billing.periods.get(index).map(|p| {
        let ended = p.ended_at.or(billing.ended_at.filter(|_| last));
        (p.started_at, ended)
    })
}

/// The level the transition led to.
fn level_of(type_: WebhookEventType, status: &PartnerStatus) -> SubscriptionLevel {
    use WebhookEventType as T;
    let current = status.subscription_level.unwrap_or_default();
    match type_ {
        T::Provisioned if status.trial.is_some() => SubscriptionLevel::Trial,
        T::Provisioned => SubscriptionLevel::Production,
        T::TrialEnding => SubscriptionLevel::Trial,
        T::Converted | T::Renewed | T::BillingPeriodStarted => SubscriptionLevel::Production,
        T::Expired => SubscriptionLevel::Expired,
        T::Activated => status
            .activation
            .as_ref()
            .and_then(|a| a.activated_at)
            .map_or(current, |at| level_at(status, at, current)),
        T::BillingPeriodEnded | T::Deleted => current,
    }
}

/// The level at `at`: Production within a billing period, Trial within the trial.
fn level_at(
    status: &PartnerStatus,
    at: DateTime<Utc>,
    otherwise: SubscriptionLevel,
) -> SubscriptionLevel {
    let billed = status.billing.as_ref().is_some_and(|b| {
        let periods = b.periods.len().max(1);
        (1..=periods).any(|p| {
            period_bounds(status, p as u32)
                .is_some_and(|(start, end)| start <= at && end.is_none_or(|end| at < end))
        })
    });
    let in_trial = status
        .trial
        .as_ref()
        .is_some_and(|t| t.started_at <= at && at < t.ends_at);
    match (billed, in_trial) {
        (true, _) => SubscriptionLevel::Production,
        (false, true) => SubscriptionLevel::Trial,
        (false, false) => otherwise,
    }
}

/// How the tenant entered Production the first time (a later renewal overwrote
/// `status.production.reason`): automatically if its first period began at the trial's end.
fn conversion_reason(status: &PartnerStatus) -> Option<ProductionReason> {
    let production = status.production.as_ref()?;
    if production.reason != ProductionReason::Renewal {
        return Some(production.reason);
    }
    let first = period_bounds(status, 1).map(|(start, _)| start);
    let automatic = status
        .trial
        .as_ref()
        .is_some_and(|t| Some(t.ends_at) == first);
    Some(match automatic {
        true => ProductionReason::AutoUpgrade,
        false => ProductionReason::Manual,
    })
}

/// `data.reason`: why the transition happened, where the type does not say it alone.
fn reason_of(type_: WebhookEventType, period: u32, status: &PartnerStatus) -> Option<String> {
    use WebhookEventType as T;
    let production = |r: ProductionReason| format!("{r:?}");
    match type_ {
        T::Renewed => Some(production(ProductionReason::Renewal)),
        T::BillingPeriodStarted if period > 1 => Some(production(ProductionReason::Renewal)),
        T::Converted | T::BillingPeriodStarted => conversion_reason(status).map(production),
        T::Expired if period == 0 => Some("TrialExpired".into()),
        T::Expired => Some("ProductionExpired".into()),
        T::BillingPeriodEnded => {
            let end = period_bounds(status, period).and_then(|(_, end)| end);
            let deleted = end.is_some() && end == status.deleted_at;
            Some(
                if deleted {
                    "PartnerDeleted"
                } else {
                    "ProductionExpired"
                }
                .into(),
            )
        }
        T::Provisioned | T::Activated | T::TrialEnding | T::Deleted => None,
    }
}

/// What an event carries: what an invoice needs.
fn data(
    partner: &Partner,
    distributor: &Distributor,
    status: &PartnerStatus,
    type_: WebhookEventType,
    period: u32,
) -> Value {
    use WebhookEventType as T;
    let level = level_of(type_, status);
    let mut data = Map::new();
    data.insert(
        "partner".into(),
        json!({
            "namespace": partner.metadata.namespace,
            "name": partner.metadata.name,
            "uid": partner.metadata.uid,
        }),
    );
    data.insert("organization".into(), json!(partner.spec.organization_name));
    data.insert("distributor".into(), json!(distributor.metadata.name));
    if let Some(tenant) = &status.tenant {
        data.insert(
            "tenant".into(),
            json!({"id": tenant.id, "namespace": tenant.namespace}),
        );
    }
    data.insert("level".into(), json!(level.to_string()));
    data.insert("skus".into(), json!(status.skus));
    // One seat of each SKU while billed.
    let billed = match type_ {
        T::Converted | T::Renewed | T::BillingPeriodStarted | T::BillingPeriodEnded => true,
        T::Expired => period > 0,
        T::Provisioned | T::Activated => level == SubscriptionLevel::Production,
        T::TrialEnding | T::Deleted => false,
    };
    let seats: Map<String, Value> = status
        .skus
        .iter()
        .filter(|_| billed)
        .map(|sku| (sku.0.clone(), json!(1)))
        .collect();
    data.insert("seats".into(), Value::Object(seats));
    if let Some(trial) = &status.trial {
        data.insert(
            "trial".into(),
            json!({"startedAt": trial.started_at, "endsAt": trial.ends_at}),
        );
    }
    if let (Some(billing), Some((started, ended))) =
        (&status.billing, period_bounds(status, period))
    {
        let ended = match type_ {
            T::Expired | T::BillingPeriodEnded => ended,
            _ => None,
        };
        data.insert(
            "period".into(),
            json!({
                "number": period,
                "billedTo": billing.billed_to,
                "startedAt": started,
                "endedAt": ended,
            }),
        );
    }
    let expires_at = match level {
        SubscriptionLevel::Trial => status.trial.as_ref().map(|t| t.ends_at),
        SubscriptionLevel::Production => status.expires_at,
        SubscriptionLevel::Pending | SubscriptionLevel::Expired => None,
    };
    if let Some(expires_at) = expires_at {
        data.insert("expiresAt".into(), json!(expires_at));
    }
    if let Some(reason) = reason_of(type_, period, status) {
        data.insert("reason".into(), json!(reason));
    }
    Value::Object(data)
}
