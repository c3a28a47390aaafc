//! The distributor's systems are told of every partner's lifecycle: signed CloudEvents,
//! verified by a receiver that uses the Standard Webhooks reference library (Python), every
//! event delivered by its id, in order per partner, through outages, 500s, timeouts and
//! crashes, without holding up anything else; a wrong key is refused, a rotation lets the new
//! one in.

use crate::support;

#[path = "webhooks/security.rs"]
mod security;

use std::collections::HashSet;

use partner_operator::api::Distributor;
use serde_json::{Value, json};
use support::webhook_receiver::{KEYS_NAMESPACE, Receiver};
use support::webhooks::{endpoint, new_key, store_key};
use support::*;

crate::on_both_servers!(
    an_onboarding_costs_six_writes_its_webhook_record_included,
    a_trial_is_told_in_order_once_per_event,
    an_outage_500s_and_timeouts_lose_nothing_and_hold_up_nothing,
    a_crash_mid_delivery_sends_the_same_id_again,
    a_wrong_key_is_refused_until_a_rotation_brings_the_right_one,
);

const NAMESPACE: &str = "northwind-partners";
const KEY_SECRET: &str = "northwind-webhook-key";

/// The servers, a receiver holding a fresh key, that key in a labelled Secret, and the
/// operator: what most tests here start from.
async fn started_with_receiver(server: Server) -> (Harness, Receiver) {
    support::secrets::capture_for_secrets();
    let mut h = Harness::start_servers(server).await;
    let key = new_key();
    let receiver = Receiver::start(&key);
    store_key(
        &h.client,
        KEYS_NAMESPACE,
        KEY_SECRET,
        &key,
        true,
        "northwind",
    )
    .await;
    start_operator(&mut h);
    (h, receiver)
}

/// The harness's operator reading signing keys from [`KEYS_NAMESPACE`].
fn start_operator(h: &mut Harness) {
    let mut options = h.run_options();
    options.webhook_secrets_namespace = Some(KEYS_NAMESPACE.into());
    h.start_operator_with(options);
}

/// `northwind` delivering to `receiver` (`endpoint` merged into its one endpoint), and its
/// partner namespace.
async fn northwind_with_webhooks(h: &Harness, receiver: &Receiver, extra: Value) {
    h.namespace(
        NAMESPACE,
        &[("partner-operator.io/distributor", "northwind")],
    )
    .await;
    let mut endpoint = endpoint("billing", &receiver.url(), KEY_SECRET);
    if let (Some(endpoint), Some(extra)) = (endpoint.as_object_mut(), extra.as_object()) {
        endpoint.extend(extra.clone());
    }
    let mut distributor = distributor("northwind", true);
    distributor["spec"]["webhooks"] = json!({"endpoints": [endpoint]});
    h.apply(distributor).await;
}

fn subject(name: &str) -> String {
    format!("{NAMESPACE}/{name}")
}

/// Waits until `receiver` has exactly `expected` (by type) for Partner `name`, in that order.
async fn wait_events(receiver: &Receiver, name: &str, expected: &[&str]) {
    wait_events_within(receiver, name, expected, Patience::RECONCILE).await;
}

async fn wait_events_within(
    receiver: &Receiver,
    name: &str,
    expected: &[&str],
    patience: Patience,
) {
    eventually(
        format!("{name}'s events {expected:?}"),
        patience,
        || async {
            let seen = receiver.events_of(&subject(name));
            if seen == expected { Ok(()) } else { Err(seen) }
        },
    )
    .await;
}

async fn wait_gone(h: &Harness, name: &str, patience: Patience) {
    eventually(format!("{name} gone"), patience, || async {
        h.partners(NAMESPACE).get_opt(name).await.unwrap().is_none()
    })
    .await;
}

fn webhooks_delivered(d: &Distributor) -> Option<(String, String, String)> {
    d.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == types::WEBHOOKS_DELIVERED)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

fn delivering_failed(d: &Distributor) -> bool {
    webhooks_delivered(d).is_some_and(|(status, reason, _)| {
        status == "False" && reason == reasons::WEBHOOK_DELIVERY_FAILING
    })
}

fn delivering_fine(d: &Distributor) -> bool {
    webhooks_delivered(d).is_some_and(|(status, _, _)| status == "True")
}

/// The budget of an onboarding on the API server: the finalizer, the tenant's Namespace,
/// `entitlements` and `activation` Secret, and two status writes (the email's intent, then
/// the email sent, Ready and the webhook event's delivery together). No Event: the conditions
/// tell an onboarding. (The Distributor's counts and statements are written per Distributor,
/// at most once every 2 s each however many Partners onboard, so they are not counted here.)
async fn an_onboarding_costs_six_writes_its_webhook_record_included(server: Server) {
    let (h, receiver) = started_with_receiver(server).await;
    northwind_with_webhooks(&h, &receiver, json!({})).await;
    h.settled().await;
    h.server.clear_requests();
    h.apply(partner(NAMESPACE, "contoso", "northwind")).await;
    h.wait_partner(NAMESPACE, "contoso", "Ready", is_ready)
        .await;
    wait_events(&receiver, "contoso", &["provisioned"]).await;
    // Longer than a delivery waits for a write to ride along with before it is written alone.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    h.settled().await;
    let writes: Vec<String> = h
        .server
        .requests()
        .iter()
        .filter(|r| r.is_write() && r.user_agent.as_deref() == Some("partner-operator"))
        .filter(|r| !matches!(r.resource.as_str(), "distributors" | "billingstatements"))
        .map(|r| {
            let subresource = r.subresource.as_deref().map(|s| format!("/{s}"));
            format!(
                "{} {}{}",
                r.verb,
                r.resource,
                subresource.unwrap_or_default()
            )
        })
        .collect();
    assert_eq!(
        writes,
        [
            "patch partners",
            "create namespaces",
            "patch partners/status",
            "patch configmaps",
            "patch secrets",
            "patch partners/status",
        ],
        "{writes:#?}"
    );
    let status = h.partners(NAMESPACE).get_status("contoso").await.unwrap();
    let webhooks = status.status.unwrap().webhooks;
    assert!(
        webhooks.iter().all(|r| r.pending.is_empty()),
        "the delivery is recorded: {webhooks:#?}"
    );
}

async fn a_trial_is_told_in_order_once_per_event(server: Server) {
    let (h, receiver) = started_with_receiver(server).await;
    northwind_with_webhooks(&h, &receiver, json!({})).await;
    h.apply(partner(NAMESPACE, "contoso", "northwind")).await;
    h.wait_partner(NAMESPACE, "contoso", "Ready", is_ready)
        .await;
    wait_events(&receiver, "contoso", &["provisioned"]).await;
    h.advance_days(11);
    wait_events(&receiver, "contoso", &["provisioned", "trial-ending"]).await;
    h.advance_days(3);
    let converted = ["provisioned", "trial-ending", "converted", "period-started"];
    wait_events(&receiver, "contoso", &converted).await;
    h.partners(NAMESPACE)
        .delete("contoso", &Default::default())
        .await
        .unwrap();
    let all = [&converted[..], &["period-ended", "deleted"]].concat();
    wait_events(&receiver, "contoso", &all).await;
    wait_gone(&h, "contoso", Patience::DELETION).await;

    let deliveries = receiver.deliveries();
    // Every delivery verified with the reference library; one per event (nothing failed, so
    // nothing was sent twice), each carrying its id as `webhook-id` and CloudEvent `id`.
    assert!(deliveries.iter().all(|d| d.verified), "{deliveries:#?}");
    assert_eq!(deliveries.len(), all.len(), "{deliveries:#?}");
    let ids: HashSet<_> = deliveries.iter().map(|d| d.id.clone()).collect();
    assert_eq!(ids.len(), all.len());
    for d in &deliveries {
        let body = d.body.as_ref().unwrap();
        assert_eq!(body["id"].as_str(), d.id.as_deref());
        assert_eq!(body["specversion"], "1.0");
        assert_eq!(body["datacontenttype"], "application/json");
        assert_eq!(
            d.content_type.as_deref(),
            Some("application/cloudevents+json; charset=utf-8")
        );
        assert!(d.signature.as_deref().unwrap().starts_with("v1,"));
        assert_eq!(body["data"]["organization"], "contoso IT Services");
        assert_eq!(body["data"]["distributor"], "northwind");
        assert!(body["data"]["tenant"]["id"].is_string());
    }
    let by_type = |short: &str| {
        deliveries
            .iter()
            .find(|d| d.short() == short)
            .and_then(|d| d.body.clone())
            .unwrap()
    };
    // The conversion came at the trial's end, and the billing period runs from it to the
    // deletion, one seat of each SKU.
    let trial_end = start_time() + chrono::Duration::days(14);
    let converted = by_type("converted");
    assert_eq!(converted["time"], json!(trial_end));
    assert_eq!(converted["data"]["reason"], "AutoUpgrade");
    assert_eq!(converted["data"]["seats"]["ESSENTIALS"], 1);
    let ended = by_type("period-ended");
    assert_eq!(ended["data"]["period"]["number"], 1);
    assert_eq!(ended["data"]["period"]["startedAt"], json!(trial_end));
    assert_eq!(ended["data"]["reason"], "PartnerDeleted");
    assert!(ended["data"]["period"]["endedAt"].is_string());
    h.wait_distributor("northwind", "WebhooksDelivered=True", delivering_fine)
        .await;
}

async fn an_outage_500s_and_timeouts_lose_nothing_and_hold_up_nothing(server: Server) {
    let (h, receiver) = started_with_receiver(server).await;
    receiver.answer(500, 0.0).await;
    northwind_with_webhooks(&h, &receiver, json!({})).await;
    let names = ["contoso", "fabrikam", "litware"];
    for name in names {
        h.apply(partner(NAMESPACE, name, "northwind")).await;
    }
    // Provisioning and email go on regardless.
    for name in names {
        h.wait_partner(NAMESPACE, name, "Ready", is_ready).await;
    }
    h.wait_emails(3).await;
    // The failures show: on the Distributor, in a Warning on each Partner, in its status.
    let failing = h
        .wait_distributor("northwind", "WebhooksDelivered=False", delivering_failed)
        .await;
    let (_, _, message) = webhooks_delivered(&failing).unwrap();
    assert!(message.contains("HTTP 500"), "{message}");
    assert!(
        !message.contains(&receiver.url()),
        "no URL in the message: {message}"
    );
    eventually("a Warning per Partner", Patience::RECONCILE, || async {
        events(&h, NAMESPACE, "WebhookDeliveryFailed").await.len() >= names.len()
    })
    .await;
    let contoso = h.partners(NAMESPACE).get("contoso").await.unwrap();
    let pending = &contoso.status.as_ref().unwrap().webhooks[0].pending[0];
    assert!(
        pending.attempts >= 1 && pending.last_error.is_some(),
        "{pending:?}"
    );

    // A slow receiver (past the endpoint's 2 s) times out; the trial's end goes on meanwhile.
    receiver.answer(204, 3.0).await;
    h.advance_days(15);
    for name in names {
        h.wait_partner(NAMESPACE, name, "Production", |p| {
            is_ready_at(p, SubscriptionLevel::Production)
        })
        .await;
    }
    // Back to normal: everything arrives, each Partner's events in order.
    receiver.answer(204, 0.0).await;
    for name in names {
        eventually(
            format!("{name}'s events after the outage"),
            Patience::TRIAL,
            || async {
                let seen = receiver.events_of(&subject(name));
                let want = ["provisioned", "converted", "period-started"];
                if seen == want { Ok(()) } else { Err(seen) }
            },
        )
        .await;
    }
    let recovered = h
        .wait_distributor("northwind", "WebhooksDelivered=True", delivering_fine)
        .await;
    assert!(webhooks_delivered(&recovered).is_some());
    // A resend repeats an id; it never makes a new one.
    let ids: HashSet<_> = receiver
        .deliveries()
        .into_iter()
        .filter(|d| d.verified)
        .filter_map(|d| d.id)
        .collect();
    assert_eq!(ids.len(), names.len() * 3, "{ids:?}");

    // A Partner deleted while the receiver fails is kept, saying why, until its last events
    // are delivered.
    receiver.answer(500, 0.0).await;
    h.partners(NAMESPACE)
        .delete("contoso", &Default::default())
        .await
        .unwrap();
    h.wait_partner(NAMESPACE, "contoso", "kept for its webhooks", |p| {
        reason(p, types::READY).as_deref() == Some(reasons::WEBHOOKS_PENDING)
    })
    .await;
    receiver.answer(204, 0.0).await;
    wait_gone(&h, "contoso", Patience::TRIAL).await;
    let told = receiver.events_of(&subject("contoso"));
    assert_eq!(told[3..], ["period-ended", "deleted"], "{told:?}");
}

async fn a_crash_mid_delivery_sends_the_same_id_again(server: Server) {
    let (mut h, receiver) = started_with_receiver(server).await;
    // The receiver takes the event and answers only after the operator is gone.
    receiver.answer(204, 3.0).await;
    northwind_with_webhooks(&h, &receiver, json!({"timeoutSeconds": 10})).await;
    h.apply(partner(NAMESPACE, "contoso", "northwind")).await;
    let first = eventually(
        "the first delivery arrives",
        Patience::RECONCILE,
        || async { receiver.deliveries().first().cloned().ok_or("none yet") },
    )
    .await;
    h.kill_operator();
    receiver.answer(204, 0.0).await;
    start_operator(&mut h);
    eventually("the event sent again", Patience::RECONCILE, || async {
        let deliveries = receiver.deliveries();
        if deliveries.len() >= 2 {
            Ok(())
        } else {
            Err(deliveries.len())
        }
    })
    .await;
    eventually(
        "contoso's status without webhooks pending",
        Patience::RECONCILE,
        || async {
            let p = h.partners(NAMESPACE).get("contoso").await.unwrap();
            p.status.is_some_and(|s| s.webhooks.is_empty())
        },
    )
    .await;
    let deliveries = receiver.deliveries();
    assert!(deliveries.iter().all(|d| d.verified));
    assert!(
        deliveries.iter().all(|d| d.id == first.id),
        "only the one event, under its one id: {deliveries:#?}"
    );
    assert_eq!(first.short(), "provisioned");
}

async fn a_wrong_key_is_refused_until_a_rotation_brings_the_right_one(server: Server) {
    support::secrets::capture_for_secrets();
    let mut h = Harness::start_servers(server).await;
    let (old, new) = (new_key(), new_key());
    let receiver = Receiver::start(&new);
    // Not labelled as a signing key: the operator will not use it.
    store_key(
        &h.client,
        KEYS_NAMESPACE,
        KEY_SECRET,
        &old,
        false,
        "northwind",
    )
    .await;
    start_operator(&mut h);
    northwind_with_webhooks(&h, &receiver, json!({})).await;
    h.apply(partner(NAMESPACE, "contoso", "northwind")).await;
    let refused = h
        .wait_distributor("northwind", "an unlabelled key refused", delivering_failed)
        .await;
    let (_, _, message) = webhooks_delivered(&refused).unwrap();
    assert!(
        message.contains("is not a signing key of Distributor northwind"),
        "{message}"
    );
    assert!(receiver.deliveries().is_empty(), "nothing sent unsigned");

    // Labelled, but the receiver holds another key: every delivery fails verification.
    store_key(
        &h.client,
        KEYS_NAMESPACE,
        KEY_SECRET,
        &old,
        true,
        "northwind",
    )
    .await;
    eventually(
        "a delivery signed by the old key",
        Patience::RECONCILE,
        || async { !receiver.deliveries().is_empty() },
    )
    .await;
    assert!(receiver.deliveries().iter().all(|d| !d.verified));
    h.wait_distributor("northwind", "the refusals show", |d| {
        webhooks_delivered(d).is_some_and(|(_, _, m)| m.contains("HTTP 401"))
    })
    .await;
    assert!(
        !old.is_empty()
            && !webhooks_delivered(&h.distributors().get("northwind").await.unwrap())
                .unwrap()
                .2
                .contains(&old[6..]),
        "no key in the condition"
    );

    // A rotation: both keys sign, so the receiver's verifies (once the key is read again, at
    // the delivery's next attempt after its backoff).
    store_key(
        &h.client,
        KEYS_NAMESPACE,
        KEY_SECRET,
        &format!("{new} {old}"),
        true,
        "northwind",
    )
    .await;
    wait_events_within(&receiver, "contoso", &["provisioned"], Patience::TRIAL).await;
    let delivered = receiver
        .deliveries()
        .into_iter()
        .find(|d| d.verified)
        .unwrap();
    assert_eq!(
        delivered.signature.unwrap().split(' ').count(),
        2,
        "one signature per key"
    );
    h.wait_distributor("northwind", "WebhooksDelivered=True", delivering_fine)
        .await;
    // Neither key was logged (by the operator, the API server or kube), whole or as base64.
    for key in [&old, &new] {
        support::secrets::assert_not_logged(key.trim_start_matches("whsec_"));
    }
}
