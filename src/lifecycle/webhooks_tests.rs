use chrono::Duration;

use serde_json::json;

use super::*;
use crate::api::*;
use crate::lifecycle::fixtures::*;
use crate::lifecycle::{Plan, plan};
use crate::tenant::entitlements_data;

fn with_endpoints(names: &[&str]) -> Distributor {
    let mut d = distributor();
    d.spec.webhooks.endpoints = names
        .iter()
        .map(|name| WebhookEndpoint {
            name: name.to_string(),
            url: format!("https://{name}.example/hooks"),
            signing_key_secret_ref: SecretKeyRef {
                name: "key".into(),
                key: "signingKey".into(),
            },
            types: None,
            timeout_seconds: 10,
        })
        .collect();
    d
}

/// The `data` the event of record `i` is sent with: rebuilt from the facts.
fn data_of(p: &Partner, d: &Distributor, status: &PartnerStatus, i: usize) -> serde_json::Value {
    rebuild(p, d, status, &status.webhooks[i])
        .expect("a record of the operator's matches its facts")
        .data
}

fn rejections(plan: &Plan) -> usize {
    plan.effects
        .iter()
        .filter(
            |e| matches!(e, Effect::Event(ev) if ev.reason == EventReason::WebhookRecordRejected),
        )
        .count()
}

fn types(status: &PartnerStatus) -> Vec<WebhookEventType> {
    status.webhooks.iter().map(|r| r.type_).collect()
}

fn sends(plan: &Plan) -> Vec<(String, String)> {
    plan.effects
        .iter()
        .filter_map(|e| match e {
            Effect::DeliverWebhook(send) => {
                Some((send.record.id.clone(), send.endpoint.name.clone()))
            }
            _ => None,
        })
        .collect()
}

/// `partner` after `plan`, its emails sent and its tenant as the status says, but its webhook
/// events still owed (what the tests here look at; see [`crate::lifecycle::simulate`] for a
/// Partner whose every write succeeded).
fn after(
    mut partner: Partner,
    plan: &Plan,
) -> (Partner, std::collections::BTreeMap<String, String>) {
    let mut status = plan.status.clone();
    for id in status
        .emails
        .iter()
        .map(|e| e.message_id.clone())
        .collect::<Vec<_>>()
    {
        crate::lifecycle::mark_email_sent(&mut status, &id, t0());
    }
    partner.status = Some(status);
    let p = partner;
    let data = entitlements_data(&p, p.status.as_ref().unwrap()).unwrap();
    (p, data)
}

#[test]
fn provisioning_is_recorded_with_the_transition_and_handed_to_each_endpoint() {
    let (p, d) = (partner(), with_endpoints(&["billing", "crm"]));
    let first = plan(&observe(&p, &d, None, t0()));
    assert_eq!(types(&first.status), [WebhookEventType::Provisioned]);
    let record = &first.status.webhooks[0];
    assert_eq!(record.id, "uid-1.provisioned.0");
    assert_eq!(record.time, t0());
    let data = data_of(&p, &d, &first.status, 0);
    assert_eq!(data["organization"], "Contoso");
    assert_eq!(data["distributor"], "northwind");
    assert_eq!(data["level"], "Trial");
    assert!(data["tenant"]["id"].is_string());
    assert_eq!(
        sends(&first),
        [
            ("uid-1.provisioned.0".into(), "billing".into()),
            ("uid-1.provisioned.0".into(), "crm".into())
        ]
    );
    // Planned again on the written status, the event is not recorded twice.
    let (p, data) = after(p, &first);
    let again = plan(&observe(&p, &d, Some(&data), t0()));
    assert_eq!(types(&again.status), [WebhookEventType::Provisioned]);
}

#[test]
fn without_endpoints_nothing_is_recorded() {
    let (p, d) = (partner(), distributor());
    let first = plan(&observe(&p, &d, None, t0()));
    assert!(first.status.webhooks.is_empty());
    assert!(sends(&first).is_empty());
}

#[test]
fn each_endpoint_gets_one_event_at_a_time_in_order() {
    let (p, d) = (partner(), with_endpoints(&["billing"]));
    let first = plan(&observe(&p, &d, None, t0()));
    let (p, data) = after(p, &first);
    // The notice goes out and the trial ends with the provisioning still undelivered: the
    // notice, the conversion and billing queue behind it.
    let noticed = plan(&observe(&p, &d, Some(&data), t0() + Duration::days(12)));
    let (p, data) = after(p, &noticed);
    let ended = plan(&observe(&p, &d, Some(&data), t0() + Duration::days(14)));
    assert_eq!(
        types(&ended.status),
        [
            WebhookEventType::Provisioned,
            WebhookEventType::TrialEnding,
            WebhookEventType::Converted,
            WebhookEventType::BillingPeriodStarted
        ]
    );
    assert_eq!(
        sends(&ended),
        [("uid-1.provisioned.0".into(), "billing".into())]
    );
    let converted = &ended.status.webhooks[2];
    assert_eq!(converted.id, "uid-1.converted.1");
    assert_eq!(converted.time, t0() + Duration::days(14));
    let data = data_of(&p, &d, &ended.status, 2);
    assert_eq!(data["reason"], "AutoUpgrade");
    assert_eq!(data["seats"]["ESSENTIALS"], 1);
    assert_eq!(data["period"]["number"], 1);
    // The provisioning, sent after the conversion, says what it said then.
    let provisioned = data_of(&p, &d, &ended.status, 0);
    assert_eq!(provisioned["level"], "Trial");
    assert_eq!(provisioned["seats"], json!({}));
    assert_eq!(provisioned["expiresAt"], json!(t0() + Duration::days(14)));
    // Delivered, the next one is due.
    let mut status = ended.status.clone();
    assert!(delivered(&mut status, "uid-1.provisioned.0", "billing"));
    assert!(!delivered(&mut status, "uid-1.provisioned.0", "billing"));
    let next = due(&status, &d);
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].record.type_, WebhookEventType::TrialEnding);
}

#[test]
fn a_type_filter_limits_what_an_endpoint_is_sent() {
    let p = partner();
    let mut d = with_endpoints(&["billing", "crm"]);
    d.spec.webhooks.endpoints[0].types = Some(vec![WebhookEventType::BillingPeriodStarted]);
    let first = plan(&observe(&p, &d, None, t0()));
    assert_eq!(first.status.webhooks[0].pending.len(), 1);
    assert_eq!(first.status.webhooks[0].pending[0].endpoint, "crm");
}

#[test]
fn failures_are_retried_for_the_window_then_given_up_with_a_warning() {
    let (p, d) = (partner(), with_endpoints(&["billing"]));
    let first = plan(&observe(&p, &d, None, t0()));
    let send = due(&first.status, &d).remove(0);
    let mut status = first.status.clone();
    let warned = failed(&mut status, &send, "HTTP 500", t0()).expect("first failure warns");
    assert_eq!(warned.reason, EventReason::WebhookDeliveryFailed);
    assert!(failed(&mut status, &send, "HTTP 500", t0() + Duration::hours(1)).is_none());
    let pending = &status.webhooks[0].pending[0];
    assert_eq!(pending.attempts, 2);
    assert_eq!(pending.first_failed_at, Some(t0()));
    assert_eq!(pending.last_error.as_deref(), Some("HTTP 500"));
    let gave_up = failed(&mut status, &send, "timed out", t0() + Duration::hours(24)).unwrap();
    assert_eq!(gave_up.reason, EventReason::WebhookAbandoned);
    assert!(gave_up.reason.is_warning());
    assert!(status.webhooks.is_empty());
}

#[test]
fn an_endpoint_taken_off_the_list_is_sent_nothing_more() {
    let (p, d) = (partner(), with_endpoints(&["billing"]));
    let first = plan(&observe(&p, &d, None, t0()));
    let (p, data) = after(p, &first);
    let gone = with_endpoints(&[]);
    let next = plan(&observe(&p, &gone, Some(&data), t0()));
    assert!(next.status.webhooks.is_empty());
    assert!(
        next.effects
            .iter()
            .any(|e| matches!(e, Effect::Event(ev) if ev.reason == EventReason::WebhookAbandoned))
    );
}

#[test]
fn a_deletion_ends_billing_and_is_told_once() {
    let (p, d) = (partner(), with_endpoints(&["billing"]));
    let first = plan(&observe(&p, &d, None, t0()));
    let (mut p, data) = after(p, &first);
    p.spec.subscription.level = RequestedLevel::Production;
    let converted = plan(&observe(&p, &d, Some(&data), t0() + Duration::days(1)));
    let mut status = converted.status.clone();
    status.webhooks.clear();
    let at = t0() + Duration::days(2);
    let ended = record_deletion(&mut status, at).expect("billing ends");
    assert_eq!(ended.reason, EventReason::BillingEnded);
    record_deletion_events(&mut status, &p, Some(&d), true, at);
    assert_eq!(
        types(&status),
        [
            WebhookEventType::BillingPeriodEnded,
            WebhookEventType::Deleted
        ]
    );
    let data = data_of(&p, &d, &status, 0);
    assert_eq!(data["reason"], "PartnerDeleted");
    assert_eq!(data["period"]["endedAt"], json!(at));
    // Once.
    assert!(record_deletion(&mut status, at + Duration::hours(1)).is_none());
}

#[test]
fn a_deleted_partner_is_kept_until_its_webhook_events_are_delivered() {
    let (p, d) = (partner(), with_endpoints(&["billing"]));
    let first = plan(&observe(&p, &d, None, t0()));
    let (mut p, data) = after(p, &first);
    p.spec.subscription.level = RequestedLevel::Production;
    let converted = plan(&observe(&p, &d, Some(&data), t0() + Duration::days(1)));
    let mut status = converted.status.clone();
    status.webhooks.clear();
    p.status = Some(status);
    let at = t0() + Duration::days(2);
    let deleting = crate::lifecycle::deletion::plan_deletion(&p, Some(&d), at);
    assert!(!deleting.releases() && deleting.delete_tenant);
    assert_eq!(
        deleting.deliveries.len(),
        1,
        "one event at a time per endpoint"
    );
    assert_eq!(deleting.events[0].reason, EventReason::BillingEnded);
    let ready = find_condition(&deleting.status.conditions, crate::api::types::READY).unwrap();
    assert_eq!(ready.reason, crate::lifecycle::reasons::WEBHOOKS_PENDING);
    // Looked at again while it waits: only a tenant deleted now is told.
    let owned = crate::tenant::Tenant::Owned("u".into());
    assert!(deleting.tenant_deleted(&p, &owned).is_some());
    assert!(
        deleting
            .tenant_deleted(&p, &crate::tenant::Tenant::Terminating)
            .is_none()
    );
    // Unbound, nobody is told and nothing waits.
    let unbound = crate::lifecycle::deletion::plan_deletion(&p, None, at);
    assert!(unbound.releases() && unbound.status.webhooks.is_empty());
    // Every event delivered: the Partner may go, and nothing is said twice.
    let mut status = deleting.status;
    status.webhooks.clear();
    p.status = Some(status);
    let done = crate::lifecycle::deletion::plan_deletion(&p, Some(&d), at + Duration::hours(1));
    assert!(done.releases() && done.events.is_empty());
}

#[test]
fn a_partner_created_in_production_is_provisioned_before_it_is_billed() {
    let mut p = partner();
    p.spec.subscription.level = RequestedLevel::Production;
    let d = with_endpoints(&["billing"]);
    let first = plan(&observe(&p, &d, None, t0()));
    assert_eq!(
        types(&first.status),
        [
            WebhookEventType::Provisioned,
            WebhookEventType::BillingPeriodStarted
        ]
    );
    assert_eq!(data_of(&p, &d, &first.status, 1)["reason"], "Manual");
    assert_eq!(data_of(&p, &d, &first.status, 0)["level"], "Production");
}

#[test]
fn an_activation_is_told_at_the_moment_it_happened() {
    let (p, d) = (partner(), with_endpoints(&["crm"]));
    let first = plan(&observe(&p, &d, None, t0()));
    let (mut p, data) = after(p, &first);
    let activated_at = t0() + Duration::hours(3);
    let status = p.status.as_mut().unwrap();
    status.webhooks.clear();
    status.activation.as_mut().unwrap().activated_at = Some(activated_at);
    let told = plan(&observe(&p, &d, Some(&data), t0() + Duration::hours(4)));
    assert_eq!(types(&told.status), [WebhookEventType::Activated]);
    assert_eq!(told.status.webhooks[0].time, activated_at);
    assert_eq!(told.status.webhooks[0].id, "uid-1.activated.0");
    // Once: the next plan finds the activation told.
    let (p, data) = after(p, &told);
    let again = plan(&observe(&p, &d, Some(&data), t0() + Duration::hours(5)));
    assert_eq!(types(&again.status), [WebhookEventType::Activated]);
}

/// A record as someone with `partners/status` could write it.
fn forged(id: &str, type_: WebhookEventType) -> WebhookRecord {
    WebhookRecord {
        id: id.into(),
        type_,
        time: t0(),
        data: json!({"seats": {"ESSENTIALS": 1000}}),
        pending: vec![WebhookDelivery::to("billing")],
    }
}

#[test]
fn a_record_that_matches_no_transition_is_dropped_with_a_warning_and_never_sent() {
    let (p, d) = (partner(), with_endpoints(&["billing"]));
    let first = plan(&observe(&p, &d, None, t0()));
    let (mut p, data) = after(p, &first);
    let status = p.status.as_mut().unwrap();
    status.webhooks.clear();
    status.webhooks.extend([
        // Another Partner's event id: its receiver would take the real one as a duplicate.
        forged("uid-2.provisioned.0", WebhookEventType::Provisioned),
        // A conversion that did not happen.
        forged("uid-1.converted.1", WebhookEventType::Converted),
        // A type the id does not say.
        forged("uid-1.provisioned.0", WebhookEventType::Deleted),
        forged("uid-1.provisioned.00", WebhookEventType::Provisioned),
    ]);
    let next = plan(&observe(&p, &d, Some(&data), t0() + Duration::hours(1)));
    assert!(
        next.status.webhooks.is_empty(),
        "{:?}",
        next.status.webhooks
    );
    assert!(sends(&next).is_empty());
    assert_eq!(rejections(&next), 4);
    let warning = next
        .effects
        .iter()
        .find_map(|e| match e {
            Effect::Event(ev) if ev.reason == EventReason::WebhookRecordRejected => Some(ev),
            _ => None,
        })
        .unwrap();
    assert!(warning.reason.is_warning());
    assert!(!warning.message.contains("uid-2"), "{}", warning.message);
}

#[test]
fn what_is_sent_is_rebuilt_from_the_facts_not_taken_from_the_record() {
    let (p, d) = (partner(), with_endpoints(&["billing"]));
    let first = plan(&observe(&p, &d, None, t0()));
    let (p, _) = after(p, &first);
    let status = p.status.clone().unwrap();
    let mut record = forged("uid-1.provisioned.0", WebhookEventType::Provisioned);
    record.time = t0() + Duration::days(300);
    let event = rebuild(&p, &d, &status, &record).expect("a provisioning that happened");
    assert_eq!(event.id, "uid-1.provisioned.0");
    assert_eq!(event.time, t0());
    assert_eq!(event.data, data_of(&p, &d, &status, 0));
    assert_eq!(event.data["seats"], json!({}));
    // Another Distributor's name never goes into it: the one it is bound to is asked for.
    let mut other = d.clone();
    other.metadata.name = Some("contoso-dist".into());
    assert_eq!(
        rebuild(&p, &other, &status, &record).unwrap().data["distributor"],
        "contoso-dist"
    );
}

#[test]
fn an_unbound_partner_records_and_sends_nothing() {
    let (p, d) = (partner(), with_endpoints(&["billing"]));
    let first = plan(&observe(&p, &d, None, t0()));
    let (p, data) = after(p, &first);
    let mut obs = observe(&p, &d, Some(&data), t0() + Duration::hours(1));
    obs.namespace_allowed = false;
    let unbound = plan(&obs);
    assert!(sends(&unbound).is_empty());
    // What was recorded while bound waits (it is sent if the Partner is bound again).
    assert_eq!(types(&unbound.status), [WebhookEventType::Provisioned]);
    // A forged Partner, never bound, with a record of its own: nothing is sent, nothing added.
    let mut stranger = partner();
    stranger.metadata.uid = Some("uid-9".into());
    stranger.status = Some(PartnerStatus {
        webhooks: vec![forged("uid-1.provisioned.0", WebhookEventType::Provisioned)],
        ..PartnerStatus::default()
    });
    let mut obs = observe(&stranger, &d, None, t0());
    obs.namespace_allowed = false;
    let planned = plan(&obs);
    assert!(sends(&planned).is_empty());
    assert_eq!(planned.status.webhooks.len(), 1);
}
