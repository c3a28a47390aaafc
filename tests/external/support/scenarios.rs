//! Scenarios several suites run the operator through.

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;

use super::*;

/// A whole trial with every kind of request the operator makes: onboarding through an SMTP
/// outage (a Warning Event, seen again), an activation through the activation service (its page,
/// then its API), the tenant's entitlements changed by somebody else and written back (read
/// by name), a manual conversion, a notice, an automatic conversion, and deletions with
/// both policies (the `Delete` tenant goes, the `Retain` tenant stays); every transition is
/// delivered to a webhook endpoint, signed with a key the operator reads from a Secret in
/// `keys_namespace` (its `--webhook-secrets-namespace`). Needs the operator running, its
/// activation service at `activation`, and the clock at [`START`]. Returns each Partner's
/// tenant.
pub async fn whole_trial(
    h: &Harness,
    activation: std::net::SocketAddr,
    keys_namespace: &str,
) -> std::collections::BTreeMap<&'static str, String> {
    let key = super::webhooks::new_key();
    let receiver =
        partner_sandbox::webhooks::WebhookSink::start("127.0.0.1:0".parse().unwrap(), &key, None)
            .await
            .expect("the webhook receiver starts");
    super::webhooks::store_key(
        &h.client,
        keys_namespace,
        "northwind-webhook-key",
        &key,
        true,
        "northwind",
    )
    .await;
    h.namespace(
        "northwind-partners",
        &[("partner-operator.io/distributor", "northwind")],
    )
    .await;
    let mut northwind = distributor("northwind", true);
    northwind["spec"]["webhooks"] = json!({"endpoints": [
        super::webhooks::endpoint("billing", &receiver.url(), "northwind-webhook-key"),
    ]});
    h.apply(northwind).await;
    h.smtp.set_down(true);
    h.apply(partner("northwind-partners", "contoso", "northwind"))
        .await;
    h.wait_partner("northwind-partners", "contoso", "a failed delivery", |p| {
        condition(p, types::READY)
            .is_some_and(|(_, reason)| reason == reasons::EMAIL_DELIVERY_FAILED)
    })
    .await;
    // The operator retries, and the Warning is seen again: its Event counted up (or another
    // one recorded, should the error read differently).
    eventually(
        "the failed delivery reported twice",
        Patience::RECONCILE,
        || async {
            let reported: i32 = events(h, "northwind-partners", reasons::EMAIL_DELIVERY_FAILED)
                .await
                .iter()
                .map(|e| e.series.as_ref().map_or(1, |s| s.count))
                .sum();
            if reported >= 2 { Ok(()) } else { Err(reported) }
        },
    )
    .await;
    h.smtp.set_down(false);
    let mut retained = partner("northwind-partners", "litware", "northwind");
    retained["spec"]["tenant"] = json!({"deletionPolicy": "Retain"});
    h.apply(retained).await;
    for name in ["contoso", "litware"] {
        h.wait_partner("northwind-partners", name, "Ready", is_ready)
            .await;
    }
    let mail = eventually(
        "litware's activation email",
        Patience::RECONCILE,
        || async {
            h.emails_of("activation")
                .into_iter()
                .find(|m| m.to == ["admin@litware.example"])
                .ok_or("not yet")
        },
    )
    .await;
    let link = activation_link(&mail);
    let page = super::http::request(
        activation,
        "GET",
        &format!("/activate?{}", link.query().unwrap()),
        &[],
        "text/plain",
        "",
    )
    .await;
    assert_eq!(page.status, 200, "{}", page.body);
    let param = |name: &str| {
        link.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
            .unwrap()
    };
    let answer = super::http::post_json(
        activation,
        "/v1/activations",
        &json!({"tenant": param("tenant"), "token": param("token")}),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    h.wait_partner("northwind-partners", "litware", "Activated", |p| {
        condition(p, types::ACTIVATED).is_some_and(|(s, _)| s == "True")
    })
    .await;
    // Somebody else (the tenant's own workloads, say) changes litware's entitlements once the
    // operator has recorded the activation there: the operator reads them, and writes them
    // back as its status says.
    let litware = h
        .partners("northwind-partners")
        .get("litware")
        .await
        .unwrap();
    let configmaps: Api<ConfigMap> = Api::namespaced(
        h.client.clone(),
        &partner_operator::tenant::tenant_namespace_of(&litware),
    );
    let entitlements = || async {
        let cm = configmaps.get_opt("entitlements").await.unwrap();
        cm.and_then(|cm| cm.data).unwrap_or_default()
    };
    eventually(
        "litware's entitlements record the activation",
        Patience::RECONCILE,
        || async {
            entitlements()
                .await
                .get("lifecycleRecord")
                .is_some_and(|record| record.contains("activatedAt"))
        },
    )
    .await;
    let changed = json!({"data": {"level": "Production"}});
    configmaps
        .patch(
            "entitlements",
            &PatchParams::default(),
            &Patch::Merge(changed),
        )
        .await
        .unwrap();
    eventually(
        "litware's entitlements written back",
        Patience::RECONCILE,
        || async { entitlements().await.get("level").map(String::as_str) == Some("Trial") },
    )
    .await;
    h.partners("northwind-partners")
        .patch(
            "litware",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"subscription": {
                "level": "Production", "expirationDate": "2030-01-01T00:00:00Z"}}})),
        )
        .await
        .unwrap();
    h.wait_partner("northwind-partners", "litware", "Production", |p| {
        is_ready_at(p, SubscriptionLevel::Production)
    })
    .await;
    h.advance_days(12);
    eventually("the upgrade notice", Patience::RECONCILE, || async {
        !h.emails_of("upgrade-notice").is_empty()
    })
    .await;
    h.advance_days(2);
    h.wait_partner("northwind-partners", "contoso", "Production", |p| {
        is_ready_at(p, SubscriptionLevel::Production)
    })
    .await;
    eventually("both conversions mailed", Patience::RECONCILE, || async {
        h.emails_of("converted").len() >= 2
    })
    .await;
    // Each tenant's name, derived from its Partner (uid included), read while they exist.
    let mut tenants = std::collections::BTreeMap::new();
    for name in ["contoso", "litware"] {
        let partner = h.partners("northwind-partners").get(name).await.unwrap();
        tenants.insert(
            name,
            partner_operator::tenant::tenant_namespace_of(&partner),
        );
    }
    let tenant = |name: &str| tenants[name].clone();
    let namespaces: Api<Namespace> = Api::all(h.client.clone());
    for name in ["contoso", "litware"] {
        assert!(namespaces.get_opt(&tenant(name)).await.unwrap().is_some());
        h.partners("northwind-partners")
            .delete(name, &Default::default())
            .await
            .unwrap();
    }
    for name in ["contoso", "litware"] {
        eventually(&format!("{name} gone"), Patience::DELETION, || async {
            h.partners("northwind-partners")
                .get_opt(name)
                .await
                .unwrap()
                .is_none()
        })
        .await;
    }
    eventually("contoso's tenant deleted", Patience::DELETION, || async {
        namespaces
            .get_opt(&tenant("contoso"))
            .await
            .unwrap()
            .is_none()
    })
    .await;
    let kept = namespaces.get_opt(&tenant("litware")).await.unwrap();
    assert!(
        kept.is_some_and(|ns| ns.metadata.deletion_timestamp.is_none()),
        "litware's tenant is retained"
    );
    // Each Partner's story reached the webhook endpoint before the Partner went.
    let deleted = receiver
        .received()
        .iter()
        .filter(|d| d.type_() == "io.partner-operator.partner.deleted")
        .count();
    assert_eq!(deleted, 2, "{:#?}", receiver.received());
    assert_eq!(receiver.rejected(), 0);
    tenants
}
