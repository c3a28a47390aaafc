//! One Partner the operator cannot read harms only itself. Such a Partner is stored while the
//! CRD's schema takes any body (as an older CRD without the date grammar took this date); then
//! the project's CRD is installed again, and the operator starts over a list that holds it. On
//! the sandbox and on kube-apiserver.

mod support;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::ResourceExt;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use partner_operator::api::Partner;
use partner_operator::tenant::tenant_namespace_of;
use serde_json::{Value, json};
use support::metrics::{sample, scrape_until};
use support::*;

crate::on_both_servers!(an_unreadable_partner_harms_only_itself,);

/// A date kube-apiserver's `date-time` format takes and chrono refuses.
const POISON: &str = "2027-06-30T00:00:00+99:99";
/// A date inside the trial (which starts at the harness's start, 2027-03-01), as a fix.
const FIXED: &str = "2027-03-10T00:00:00Z";
const NAMESPACE: &str = "northwind-partners";
const UNREADABLE: &str = "partner_operator_unreadable_partners";

/// Partners as untyped objects: the typed Partner cannot hold the poison.
fn untyped(h: &Harness) -> Api<DynamicObject> {
    Api::namespaced_with(
        h.client.clone(),
        NAMESPACE,
        &ApiResource::erase::<Partner>(&()),
    )
}

fn with_expiration(name: &str, date: &str) -> Value {
    let mut object = partner(NAMESPACE, name, "northwind");
    object["spec"]["subscription"] = json!({"expirationDate": date});
    object
}

async fn create(h: &Harness, object: Value, dry_run: bool) -> kube::Result<DynamicObject> {
    let params = PostParams {
        dry_run,
        ..Default::default()
    };
    untyped(h)
        .create(&params, &serde_json::from_value(object).unwrap())
        .await
}

async fn set_expiration(h: &Harness, name: &str, date: &str) {
    let patch = json!({"spec": {"subscription": {"expirationDate": date}}});
    untyped(h)
        .patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .unwrap();
}

/// Installs the Partner CRD with a schema that takes any body (`permissive`), or as the project
/// ships it; returns once the server takes, or refuses, a Partner with the poison date.
async fn partner_schema(h: &Harness, permissive: bool) {
    // Replaced whole (not applied): fields another manager set stay with an apply.
    let api = Api::<CustomResourceDefinition>::all(h.client.clone());
    let mut crd = api.get("partners.partner-operator.io").await.unwrap();
    let shipped = partner_operator::api::crds()
        .into_iter()
        .find(|c| c.name_any() == "partners.partner-operator.io")
        .unwrap();
    crd.spec.versions[0].schema = if permissive {
        Some(
            serde_json::from_value(json!({"openAPIV3Schema": {
                "type": "object", "x-kubernetes-preserve-unknown-fields": true}}))
            .unwrap(),
        )
    } else {
        shipped.spec.versions[0].schema.clone()
    };
    api.replace(&crd.name_any(), &PostParams::default(), &crd)
        .await
        .unwrap();
    let what = if permissive { "taken" } else { "refused" };
    eventually(
        &format!("the poison date {what}"),
        Patience::RECONCILE,
        || async {
            create(h, with_expiration("probe", POISON), true)
                .await
                .is_ok()
                == permissive
        },
    )
    .await;
}

/// Waits until the operator's `/metrics` counts `value` unreadable Partners.
async fn gauge_reads(metrics: std::net::SocketAddr, value: f64) {
    let scrape = scrape_until(metrics, UNREADABLE, value).await;
    assert_eq!(sample(&scrape, UNREADABLE), Some(value), "{scrape}");
}

/// The Warning Events that say `name` cannot be read.
async fn unreadable_events(h: &Harness, name: &str) -> usize {
    events(h, NAMESPACE, "Unreadable")
        .await
        .iter()
        .filter(|e| {
            e.type_.as_deref() == Some("Warning")
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
        })
        .count()
}

async fn an_unreadable_partner_harms_only_itself(server: Server) {
    let mut h = Harness::start_servers(server).await;
    h.northwind(true).await;
    partner_schema(&h, true).await;
    let poisoned = create(&h, with_expiration("poisoned", POISON), false)
        .await
        .unwrap();
    h.apply(partner(NAMESPACE, "contoso", "northwind")).await;
    partner_schema(&h, false).await;

    // The operator starts over a list that holds it: every other Partner is served.
    h.start_operator();
    let metrics = h.metrics_addr();
    let contoso = h
        .wait_partner(NAMESPACE, "contoso", "Ready", is_ready)
        .await;
    eventually(
        "the unreadable Partner reported",
        Patience::RECONCILE,
        || async { unreadable_events(&h, "poisoned").await == 1 },
    )
    .await;
    gauge_reads(metrics, 1.0).await;
    // Left alone: no finalizer, no tenant, no email.
    let stored = untyped(&h).get("poisoned").await.unwrap();
    assert!(stored.metadata.finalizers.unwrap_or_default().is_empty());
    let its_tenant = tenant_namespace_of(&Partner::placeholder(poisoned.metadata.clone()));
    let namespaces = Api::<Namespace>::all(h.client.clone());
    assert!(namespaces.get_opt(&its_tenant).await.unwrap().is_none());
    assert!(
        h.smtp
            .received()
            .iter()
            .all(|m| !m.to.iter().any(|to| to.contains("poisoned"))),
        "mail for the unreadable Partner"
    );

    // An edit that makes it readable brings it in.
    set_expiration(&h, "poisoned", FIXED).await;
    h.wait_partner(NAMESPACE, "poisoned", "Ready", is_ready)
        .await;
    gauge_reads(metrics, 0.0).await;

    // A Partner that turns unreadable while the operator runs is left as it was: its tenant
    // stays (the operator acts on nothing it cannot read, deletion least of all).
    let tenant = contoso.status.unwrap().tenant.unwrap().namespace;
    partner_schema(&h, true).await;
    set_expiration(&h, "contoso", POISON).await;
    partner_schema(&h, false).await;
    eventually(
        "contoso reported unreadable",
        Patience::RECONCILE,
        || async { unreadable_events(&h, "contoso").await == 1 },
    )
    .await;
    gauge_reads(metrics, 1.0).await;
    let kept = namespaces.get(&tenant).await.unwrap();
    assert!(
        kept.metadata.deletion_timestamp.is_none(),
        "{tenant} deleted"
    );
    set_expiration(&h, "contoso", FIXED).await;
    let contoso = h
        .wait_partner(NAMESPACE, "contoso", "expiration date", |p| {
            p.status.as_ref().and_then(|s| s.expires_at) == Some(FIXED.parse().unwrap())
        })
        .await;
    assert!(is_ready(&contoso));
    gauge_reads(metrics, 0.0).await;
    h.stop_operator().await;
}
