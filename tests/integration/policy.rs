//! Dates and bindings obey the Distributor's policy whatever a Partner's author writes: a trial
//! ends within `trial.days` of provisioning and never before it (so Production and billing never
//! start before the Partner existed), and a Production Partner that loses its binding ends
//! billing and its Production entitlements together. On the sandbox and on kube-apiserver.

use crate::support;

use chrono::Duration;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, Patch, PatchParams};
use partner_operator::api::SubscriptionLevel;
use serde_json::json;
use support::*;

crate::on_both_servers!(
    expiration_dates_are_held_to_the_trial_policy,
    unbinding_a_production_partner_ends_billing_and_entitlements,
);

const NAMESPACE: &str = "northwind-partners";

async fn expiration_dates_are_held_to_the_trial_policy(server: Server) {
    let h = Harness::start(server).await;
    h.northwind(true).await;
    let start = start_time();
    for (name, date) in [
        ("backdated", "2000-01-01T00:00:00Z"),
        ("far-future", "2999-12-31T23:59:59Z"),
    ] {
        let mut p = partner(NAMESPACE, name, "northwind");
        p["spec"]["subscription"] = json!({"expirationDate": date});
        h.apply(p).await;
    }

    // Backdated, as created: held as a likely rebuild from Git, nothing provisioned or mailed.
    let held = h
        .wait_partner(NAMESPACE, "backdated", "SuspectedRebuild", |p| {
            condition(p, types::READY).is_some_and(|(_, r)| r == reasons::SUSPECTED_REBUILD)
        })
        .await;
    assert!(held.status.unwrap().tenant.is_none());
    // Its owner changes the spec: onboarded then.
    h.partners(NAMESPACE)
        .patch(
            "backdated",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"spec": {"subscription": {"autoUpgrade": true}}})),
        )
        .await
        .unwrap();
    // Backdated: the trial ends the moment it starts; Production and billing start then, not in
    // the year 2000.
    let backdated = h
        .wait_partner(NAMESPACE, "backdated", "Production", |p| {
            is_ready_at(p, SubscriptionLevel::Production)
        })
        .await;
    let status = backdated.status.unwrap();
    let trial = status.trial.unwrap();
    assert_eq!((trial.started_at, trial.ends_at), (start, start));
    assert_eq!(status.billing.unwrap().started_at, start);
    assert!(status.production.unwrap().since >= start);

    // Far future: the Distributor's 14 days.
    let far = h
        .wait_partner(NAMESPACE, "far-future", "Ready", is_ready)
        .await;
    let status = far.status.unwrap();
    assert_eq!(status.trial.unwrap().ends_at, start + Duration::days(14));
    assert_eq!(status.expires_at, Some(start + Duration::days(14)));
    let tenant = status.tenant.unwrap().namespace;
    assert_eq!(
        entitlements(&h, &tenant).await.unwrap()["expiresAt"],
        // As Kubernetes writes instants: with `Z`, as in the status.
        (start + Duration::days(14)).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
    );

    // Each says why, once, as a Warning naming the field.
    for name in ["backdated", "far-future"] {
        let reason = EventReason::ExpirationDateLimited.as_str();
        let limited = events_told_about(&h, NAMESPACE, reason, name).await;
        assert_eq!(limited.len(), 1, "{name}: {limited:?}");
        assert_eq!(limited[0].type_.as_deref(), Some("Warning"));
        let note = limited[0].note.clone().unwrap_or_default();
        assert!(note.contains("spec.subscription.expirationDate"), "{note}");
        assert!(limited[0].series.is_none(), "{name}: reported again");
    }
}

async fn unbinding_a_production_partner_ends_billing_and_entitlements(server: Server) {
    let h = Harness::start(server).await;
    h.northwind(true).await;
    let mut p = partner(NAMESPACE, "contoso", "northwind");
    p["spec"]["subscription"] = json!({"level": "Production"});
    h.apply(p).await;
    let contoso = h
        .wait_partner(NAMESPACE, "contoso", "Production", |p| {
            is_ready_at(p, SubscriptionLevel::Production)
        })
        .await;
    let tenant = contoso.status.unwrap().tenant.unwrap().namespace;
    wait_entitlements_level(&h, &tenant, SubscriptionLevel::Production).await;
    h.wait_billed("northwind", 1).await;

    // The namespace loses the label that binds it to northwind.
    h.clock.advance(Duration::days(3));
    let unbound_at = h.clock.now();
    Api::<Namespace>::all(h.client.clone())
        .patch(
            NAMESPACE,
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"labels": {"partner-operator.io/distributor": null}}}),
            ),
        )
        .await
        .unwrap();
    let contoso = h
        .wait_partner(NAMESPACE, "contoso", "Expired", |p| {
            level(p) == SubscriptionLevel::Expired
        })
        .await;
    let status = contoso.status.unwrap();
    assert_eq!(status.subscription_level, Some(SubscriptionLevel::Expired));
    assert_eq!(status.billing.unwrap().ended_at, Some(unbound_at));
    assert_eq!(
        condition(&contoso_again(&h).await, types::READY),
        Some(("False".into(), reasons::NAMESPACE_NOT_ALLOWED.into()))
    );
    // Together: the entitlements, the Distributor's count, and the Events that say so.
    wait_entitlements_level(&h, &tenant, SubscriptionLevel::Expired).await;
    h.wait_billed("northwind", 0).await;
    for reason in [
        EventReason::ProductionEndedUnbound.as_str(),
        EventReason::BillingEnded.as_str(),
    ] {
        let found = events_told(&h, NAMESPACE, reason).await;
        assert_eq!(found.len(), 1, "{reason}: {found:?}");
    }
}

async fn contoso_again(h: &Harness) -> partner_operator::api::Partner {
    h.partners(NAMESPACE).get("contoso").await.unwrap()
}
