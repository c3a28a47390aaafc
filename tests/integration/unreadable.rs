//! One Partner or Distributor the operator cannot read harms only itself. Such an object is
//! stored while the CRD's schema takes any body (as an older CRD without the date grammar took
//! this date, or one without integer bounds a count of 2^32); then the project's CRD is
//! installed again, and the operator starts over a list that holds it. On the sandbox and on
//! kube-apiserver.

use crate::support;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::ResourceExt;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use partner_operator::api::{Distributor, Partner};
use partner_operator::tenant::tenant_namespace_of;
use serde_json::{Value, json};
use support::metrics::sample;
use support::scrape::scrape_until;
use support::*;

crate::on_both_servers!(
    an_unreadable_partner_harms_only_itself,
    an_unreadable_distributor_harms_only_itself,
);

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
    secrets::capture_for_secrets();
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

/// One more than a `u32` holds: `format: uint32` without a `maximum` took it.
const TOO_BIG: u64 = 1 << 32;
/// In the unreadable Distributor's body, and so in no log line.
const BODY_MARKER: &str = "Body Marker Q7Z Distribution";
const UNREADABLE_DISTRIBUTORS: &str = "partner_operator_unreadable_distributors";

/// Distributors as untyped objects.
fn untyped_distributors(h: &Harness) -> Api<DynamicObject> {
    Api::all_with(h.client.clone(), &ApiResource::erase::<Distributor>(&()))
}

/// Installs the Distributor CRD with a schema that takes any body, or as the project ships
/// it; returns once the server takes, or refuses, a trial of 2^32 days.
async fn distributor_schema(h: &Harness, permissive: bool) {
    let api = Api::<CustomResourceDefinition>::all(h.client.clone());
    let mut crd = api.get("distributors.partner-operator.io").await.unwrap();
    let shipped = partner_operator::api::crds()
        .into_iter()
        .find(|c| c.name_any() == "distributors.partner-operator.io")
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
    let mut probe = distributor("probe", true);
    probe["spec"]["trial"] = json!({"days": TOO_BIG});
    let what = if permissive { "taken" } else { "refused" };
    eventually(
        &format!("a trial of 2^32 days {what}"),
        Patience::RECONCILE,
        || async {
            let params = PostParams {
                dry_run: true,
                ..Default::default()
            };
            untyped_distributors(h)
                .create(&params, &serde_json::from_value(probe.clone()).unwrap())
                .await
                .is_ok()
                == permissive
        },
    )
    .await;
}

/// The Warning Events that say the Distributor `name` cannot be read (cluster-scoped: they are
/// in `default`).
async fn distributor_events(h: &Harness, name: &str) -> Vec<String> {
    events(h, "default", "Unreadable")
        .await
        .into_iter()
        .filter(|e| {
            e.type_.as_deref() == Some("Warning")
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
        })
        .map(|e| e.note.unwrap_or_default())
        .collect()
}

/// A Distributor whose status holds a count of 2^32 (written through the status subresource
/// by an administrator) and one whose spec holds a trial of 2^32 days, both stored before the
/// schema bounded every integer: after an operator restart the other Distributors' Partners are
/// served; the first is read without its status, which the operator writes anew; the second is
/// left alone, its Partner held as it is until an edit makes it readable. Each is reported by
/// the field that does not fit, and no log line holds its body.
async fn an_unreadable_distributor_harms_only_itself(server: Server) {
    secrets::capture_for_secrets();
    let mut h = Harness::start_servers(server).await;
    h.northwind(true).await;
    h.namespace(
        "bad-spec-partners",
        &[("partner-operator.io/distributor", "bad-spec")],
    )
    .await;
    h.apply(distributor("broken-status", true)).await;
    h.apply(distributor("bad-spec", true)).await;
    h.apply(partner("bad-spec-partners", "held", "bad-spec"))
        .await;
    distributor_schema(&h, true).await;
    let distributors = untyped_distributors(&h);
    distributors
        .patch_status(
            "broken-status",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"partners": {
                "pending": TOO_BIG, "trial": 0, "production": 0, "expired": 0}}})),
        )
        .await
        .unwrap();
    distributors
        .patch(
            "bad-spec",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"organizationName": BODY_MARKER, "trial": {"days": TOO_BIG}}}),
            ),
        )
        .await
        .unwrap();
    h.apply(partner(NAMESPACE, "contoso", "northwind")).await;
    distributor_schema(&h, false).await;

    // The operator starts over a list that holds both: the other Partners are served.
    h.start_operator();
    let metrics = h.metrics_addr();
    h.wait_partner(NAMESPACE, "contoso", "Ready", is_ready)
        .await;
    // The unreadable status is written anew, from the Distributor's Partners (none).
    eventually("the broken status rewritten", Patience::RECONCILE, || async {
        distributors.get_status("broken-status").await.unwrap().data["status"]["partners"]["pending"]
            == json!(0)
    })
    .await;
    eventually("both reported", Patience::RECONCILE, || async {
        let status = distributor_events(&h, "broken-status").await;
        let spec = distributor_events(&h, "bad-spec").await;
        status.iter().any(|n| n.contains("status.partners.pending"))
            && spec.iter().any(|n| n.contains("spec.trial.days"))
    })
    .await;
    let scrape = scrape_until(metrics, UNREADABLE_DISTRIBUTORS, 1.0).await;
    assert_eq!(
        sample(&scrape, UNREADABLE_DISTRIBUTORS),
        Some(1.0),
        "{scrape}"
    );
    // Its Partner is held as it is: not reconciled at all (no finalizer, no status).
    h.settled().await;
    let held = h.partners("bad-spec-partners").get("held").await.unwrap();
    assert!(held.status.is_none(), "{:?}", held.status);
    assert!(held.metadata.finalizers.unwrap_or_default().is_empty());

    // An edit that makes it readable brings it, and its Partner, in.
    distributors
        .patch(
            "bad-spec",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"trial": {"days": 14}}})),
        )
        .await
        .unwrap();
    h.wait_partner("bad-spec-partners", "held", "Ready", is_ready)
        .await;
    let scrape = scrape_until(metrics, UNREADABLE_DISTRIBUTORS, 0.0).await;
    assert_eq!(
        sample(&scrape, UNREADABLE_DISTRIBUTORS),
        Some(0.0),
        "{scrape}"
    );
    h.stop_operator().await;
    secrets::assert_not_logged(BODY_MARKER);
}
