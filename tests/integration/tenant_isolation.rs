//! One Partner, one tenant, whatever its author does: tenant names that no other Partner can
//! produce, no adoption of a namespace the operator did not create for the Partner, and nothing
//! taken from a status a Partner author can write. On the sandbox and on kube-apiserver.

use crate::support;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use partner_operator::api::Partner;
use partner_operator::tenant::{OWNERSHIP_PROOF_ANNOTATION, is_dns1123_label, tenant_namespace_of};
use serde_json::json;
use support::*;

crate::on_both_servers!(
    names_that_join_alike_get_separate_tenants,
    an_existing_namespace_is_never_adopted,
    a_taken_name_that_frees_is_provisioned,
    a_tampered_status_moves_no_tenant,
    a_long_partner_name_is_provisioned,
    a_long_distributor_name_is_served,
    a_namespace_forged_with_the_ownership_label_is_taken,
    a_tenant_without_its_proof_is_taken_until_proven_again,
    a_forged_lifecycle_record_is_never_believed,
);

const OWNER: &str = "partner-operator.io/owner-uid";

fn namespaces(h: &Harness) -> Api<Namespace> {
    Api::all(h.client.clone())
}

/// The tenant a Ready Partner reports, checked against the name derived from it and the
/// ownership label on the namespace.
async fn tenant_of(h: &Harness, partner: &Partner) -> String {
    let name = partner.status.clone().unwrap().tenant.unwrap().namespace;
    assert_eq!(name, tenant_namespace_of(partner));
    assert!(is_dns1123_label(&name), "{name}");
    let ns = namespaces(h).get(&name).await.unwrap();
    assert_eq!(ns.metadata.labels.unwrap()[OWNER], uid(partner), "{name}");
    name
}

/// Waits until `name` is gone (a real server first marks a Namespace Terminating).
async fn wait_gone(h: &Harness, name: &str) {
    eventually(
        &format!("namespace {name} is gone"),
        Patience::DELETION,
        || async { namespaces(h).get_opt(name).await.ok().flatten().is_none() },
    )
    .await;
}

/// Waits until the Partner is gone (its finalizer done).
async fn delete_partner(h: &Harness, namespace: &str, name: &str) {
    let api = h.partners(namespace);
    api.delete(name, &DeleteParams::default()).await.unwrap();
    eventually(
        &format!("Partner {name} is gone"),
        Patience::DELETION,
        || async { api.get_opt(name).await.ok().flatten().is_none() },
    )
    .await;
}

/// A namespace nobody but the test touches: created with a label and a ConfigMap, returned as
/// its labels as the server keeps them (kube-apiserver adds one).
async fn bystander(h: &Harness, name: &str) -> BTreeMap<String, String> {
    h.namespace(name, &[("team", "outsiders")]).await;
    let marker: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "outsider-access"},
        "data": {"who": "outsiders"},
    }))
    .unwrap();
    Api::<ConfigMap>::namespaced(h.client.clone(), name)
        .create(&PostParams::default(), &marker)
        .await
        .unwrap();
    namespaces(h)
        .get(name)
        .await
        .unwrap()
        .metadata
        .labels
        .unwrap_or_default()
}

/// The bystander is as the test left it: there, not being deleted, same labels, no tenant
/// objects in it, its own ConfigMap intact.
async fn untouched(h: &Harness, name: &str, labels: &BTreeMap<String, String>) {
    let ns = namespaces(h).get(name).await.unwrap();
    assert!(ns.metadata.deletion_timestamp.is_none(), "{name} deleted");
    assert_eq!(
        ns.metadata.labels.as_ref(),
        Some(labels),
        "{name} relabelled"
    );
    assert!(ns.metadata.annotations.unwrap_or_default().is_empty());
    let configmaps = Api::<ConfigMap>::namespaced(h.client.clone(), name);
    assert!(configmaps.get_opt("entitlements").await.unwrap().is_none());
    let marker = configmaps.get("outsider-access").await.unwrap();
    assert_eq!(marker.data.unwrap()["who"], "outsiders");
    let secrets = Api::<k8s_openapi::api::core::v1::Secret>::namespaced(h.client.clone(), name);
    assert!(secrets.get_opt("activation").await.unwrap().is_none());
}

/// `c` in `a-b` and `b-c` in `a` (both `a-b-c` once joined), `acme-eu` and `acme.eu`: four
/// tenants, and deleting a Partner deletes only its own.
async fn names_that_join_alike_get_separate_tenants(server: Server) {
    let h = Harness::start(server).await;
    h.northwind(true).await;
    for ns in ["a-b", "a"] {
        h.namespace(ns, &[("partner-operator.io/distributor", "northwind")])
            .await;
    }
    let partners = [
        ("a-b", "c"),
        ("a", "b-c"),
        ("a", "acme-eu"),
        ("a", "acme.eu"),
    ];
    for (ns, name) in partners {
        h.apply(partner(ns, name, "northwind")).await;
    }
    let mut tenants = BTreeMap::new();
    for (ns, name) in partners {
        let p = h.wait_partner(ns, name, "Ready", is_ready).await;
        let tenant = tenant_of(&h, &p).await;
        let data = entitlements(&h, &tenant).await.expect("entitlements");
        assert_eq!(data["organization"], format!("{name} IT Services"));
        tenants.insert((ns, name), tenant);
    }
    let distinct: std::collections::BTreeSet<_> = tenants.values().collect();
    assert_eq!(distinct.len(), 4, "{tenants:?}");
    assert!(tenants[&("a-b", "c")].starts_with("a-b-c-"));
    assert!(tenants[&("a", "b-c")].starts_with("a-b-c-"));
    assert!(tenants[&("a", "acme.eu")].starts_with("a-acme-eu-"));

    delete_partner(&h, "a-b", "c").await;
    delete_partner(&h, "a", "acme.eu").await;
    wait_gone(&h, &tenants[&("a-b", "c")]).await;
    wait_gone(&h, &tenants[&("a", "acme.eu")]).await;
    for name in ["b-c", "acme-eu"] {
        let tenant = &tenants[&("a", name)];
        let ns = namespaces(&h).get(tenant).await.unwrap();
        assert!(ns.metadata.deletion_timestamp.is_none(), "{tenant}");
        let data = entitlements(&h, tenant).await.expect("entitlements kept");
        assert_eq!(data["organization"], format!("{name} IT Services"));
        let p = h.partners("a").get(name).await.unwrap();
        assert!(is_ready(&p), "{name}");
    }
}

/// A namespace made beforehand under the name a Partner's tenant will have is not adopted: the
/// Partner says so, and the namespace is neither written into nor deleted with the Partner.
async fn an_existing_namespace_is_never_adopted(server: Server) {
    let h = Harness::start(server).await;
    let (name, labels) = squat_a_future_tenant(&h).await;
    // The operator has looked at the Partner again since it reported the name taken.
    h.settled().await;
    untouched(&h, &name, &labels).await;
    assert!(h.smtp.received().is_empty(), "no activation link went out");

    // The Partner is gone once its finalizer is done: its cleanup, which would delete its
    // tenant (a Namespace is marked Terminating at once), has run to its end.
    delete_partner(&h, "tailspin-partners", "target").await;
    untouched(&h, &name, &labels).await;
}

/// Once the namespace in the way is gone, the Partner's tenant is provisioned: the namespace's
/// deletion wakes the Partner waiting for that name.
async fn a_taken_name_that_frees_is_provisioned(server: Server) {
    let h = Harness::start(server).await;
    let (name, _) = squat_a_future_tenant(&h).await;
    namespaces(&h)
        .delete(&name, &DeleteParams::default())
        .await
        .unwrap();
    let p = h
        .wait_partner("tailspin-partners", "target", "Ready", is_ready)
        .await;
    assert_eq!(tenant_of(&h, &p).await, name);
    let data = entitlements(&h, &name).await.expect("entitlements");
    assert_eq!(data["organization"], "target IT Services");
    assert!(
        Api::<ConfigMap>::namespaced(h.client.clone(), &name)
            .get_opt("outsider-access")
            .await
            .unwrap()
            .is_none(),
        "a namespace of its own, not the one that was in the way"
    );
    h.wait_emails(1).await;
}

/// Partner `target` whose tenant's name a namespace took first, reported `TenantNamespaceTaken`
/// with a Warning Event; the name and the labels the namespace was made with.
async fn squat_a_future_tenant(h: &Harness) -> (String, BTreeMap<String, String>) {
    // The Partner exists, unbound, before its Distributor: its uid (and so its tenant's name)
    // is known while nothing is provisioned yet.
    h.namespace(
        "tailspin-partners",
        &[("partner-operator.io/distributor", "tailspin")],
    )
    .await;
    h.apply(partner("tailspin-partners", "target", "tailspin"))
        .await;
    let p = h
        .wait_partner("tailspin-partners", "target", "DistributorNotFound", |p| {
            condition(p, types::READY).is_some_and(|(_, r)| r == reasons::DISTRIBUTOR_NOT_FOUND)
        })
        .await;
    let name = tenant_namespace_of(&p);
    let labels = bystander(h, &name).await;

    h.apply(distributor("tailspin", true)).await;
    let p = h
        .wait_partner("tailspin-partners", "target", "TenantNamespaceTaken", |p| {
            condition(p, types::READY).is_some_and(|(_, r)| r == reasons::TENANT_NAMESPACE_TAKEN)
        })
        .await;
    assert_eq!(
        condition(&p, types::READY).unwrap(),
        ("False".into(), reasons::TENANT_NAMESPACE_TAKEN.into())
    );
    assert_eq!(
        condition(&p, types::TENANT_PROVISIONED).unwrap(),
        ("False".into(), reasons::TENANT_NAMESPACE_TAKEN.into())
    );
    assert!(p.status.clone().unwrap().tenant.is_none());
    eventually("a Warning Event says why", Patience::RECONCILE, || async {
        events(
            h,
            "tailspin-partners",
            EventReason::TenantNamespaceTaken.as_str(),
        )
        .await
        .iter()
        .any(|e| {
            e.type_.as_deref() == Some("Warning")
                && e.note.as_deref().is_some_and(|n| n.contains(&name))
        })
    })
    .await;
    (name, labels)
}

/// A status writer points `status.tenant.namespace` at another namespace: the operator keeps to
/// the name it derives, corrects the status, and writes into and deletes only its own tenant.
async fn a_tampered_status_moves_no_tenant(server: Server) {
    let h = Harness::start(server).await;
    h.northwind(true).await;
    h.apply(partner("northwind-partners", "contoso", "northwind"))
        .await;
    let p = h
        .wait_partner("northwind-partners", "contoso", "Ready", is_ready)
        .await;
    let tenant = tenant_of(&h, &p).await;
    let labels = bystander(&h, "victim").await;

    let partners = h.partners("northwind-partners");
    let tamper = || async {
        partners
            .patch_status(
                "contoso",
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"tenant": {"namespace": "victim"}}})),
            )
            .await
            .unwrap();
    };
    tamper().await;
    h.wait_partner("northwind-partners", "contoso", "status corrected", |p| {
        p.status
            .as_ref()
            .and_then(|s| s.tenant.as_ref())
            .map(|t| t.namespace.as_str())
            == Some(tenant.as_str())
    })
    .await;

    // A spec change rewrites the entitlements, in the Partner's own tenant.
    tamper().await;
    partners
        .patch(
            "contoso",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"organizationName": "Contoso Renamed"}})),
        )
        .await
        .unwrap();
    eventually(
        "the entitlements follow the spec",
        Patience::RECONCILE,
        || async {
            entitlements(&h, &tenant)
                .await
                .is_some_and(|d| d["organization"] == "Contoso Renamed")
        },
    )
    .await;
    untouched(&h, "victim", &labels).await;

    // Deleting the Partner deletes its tenant, not the namespace its status names.
    tamper().await;
    delete_partner(&h, "northwind-partners", "contoso").await;
    wait_gone(&h, &tenant).await;
    untouched(&h, "victim", &labels).await;
}

/// A Partner name of 100 characters and one of 253 (the most a name may have): tenant names of
/// at most 63 characters, label values that fit (kube-apiserver refuses longer ones), the full
/// name in an annotation.
async fn a_long_partner_name_is_provisioned(server: Server) {
    let h = Harness::start(server).await;
    h.northwind(true).await;
    let names = [
        format!("{}.{}", "long-partner".repeat(5), "x".repeat(39)),
        format!("{}.{}", "long-partner".repeat(20), "y".repeat(12)),
    ];
    assert_eq!((names[0].len(), names[1].len()), (100, 253));
    for name in &names {
        let mut object = partner("northwind-partners", name, "northwind");
        object["spec"]["organizationName"] = json!("Long Name Ltd");
        object["spec"]["notificationEmail"] = json!("admin@long.example");
        h.apply(object).await;
    }
    let mut tenants = vec![];
    for name in &names {
        let p = h
            .wait_partner("northwind-partners", name, "Ready", is_ready)
            .await;
        let tenant = tenant_of(&h, &p).await;
        assert!(tenant.len() <= 63, "{tenant}");
        assert!(
            tenant.starts_with("northwind-partners-long-partner"),
            "{tenant}"
        );
        let ns = namespaces(&h).get(&tenant).await.unwrap();
        let labels = ns.metadata.labels.clone().unwrap();
        for value in labels.values() {
            assert!(value.len() <= 63, "{value}");
        }
        let annotations = ns.metadata.annotations.unwrap();
        assert_eq!(&annotations["partner-operator.io/partner"], name);
        assert_eq!(
            entitlements(&h, &tenant).await.unwrap()["organization"],
            "Long Name Ltd"
        );
        tenants.push((tenant, labels["partner-operator.io/partner"].clone()));
    }
    assert_ne!(tenants[0], tenants[1]);
    h.wait_emails(2).await;
    for (name, (tenant, _)) in names.iter().zip(&tenants) {
        delete_partner(&h, "northwind-partners", name).await;
        wait_gone(&h, tenant).await;
    }
    // Its Events are recorded, long name and all (an Event's name starts with the Partner's):
    // its deletion's.
    eventually("the long Partner's Events", Patience::RECONCILE, || async {
        events(
            &h,
            "northwind-partners",
            EventReason::TenantDeprovisioned.as_str(),
        )
        .await
        .iter()
        .any(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(names[1].as_str()))
    })
    .await;
}

/// A Distributor name of 253 characters: its Partners are provisioned (the tenant's labels fit,
/// the full name is in an annotation), converted and counted.
async fn a_long_distributor_name_is_served(server: Server) {
    let h = Harness::start(server).await;
    let name = format!("{}.{}", "distribution".repeat(20), "z".repeat(12));
    assert_eq!(name.len(), 253);
    // A label value cannot hold the name: the namespace is selected by another label.
    h.namespace("long-partners", &[("team", "long")]).await;
    let mut distributor = distributor(&name, true);
    distributor["spec"]["partnerNamespaces"] = json!({"matchLabels": {"team": "long"}});
    distributor["spec"]["notificationEmail"] = json!("ops@long.example");
    h.apply(distributor).await;
    let mut object = partner("long-partners", "contoso", &name);
    object["spec"]["subscription"] = json!({"level": "Production"});
    h.apply(object).await;
    let p = h
        .wait_partner("long-partners", "contoso", "Production", |p| {
            is_ready_at(p, SubscriptionLevel::Production)
        })
        .await;
    let tenant = tenant_of(&h, &p).await;
    let ns = namespaces(&h).get(&tenant).await.unwrap();
    assert!(ns.metadata.labels.unwrap().values().all(|v| v.len() <= 63));
    assert_eq!(
        ns.metadata.annotations.unwrap()["partner-operator.io/tenant-distributor"],
        name
    );
    assert_eq!(
        entitlements(&h, &tenant).await.unwrap()["distributor"],
        name
    );
    h.wait_billed(&name, 1).await;
}

/// Whether the Partner reports its tenant's name taken.
fn reports_taken(p: &Partner) -> bool {
    condition(p, types::READY)
        .is_some_and(|(s, r)| s == "False" && r == reasons::TENANT_NAMESPACE_TAKEN)
}

/// Namespaces made ahead of the operator carrying a Partner's ownership label, as anyone could
/// who gets past the chart's admission policies (here the server enforces none: the sandbox
/// never does, and the test's kube-apiserver has no policy bound): one without a proof, one
/// with a proof copied from another Partner's real tenant. Neither is adopted: the Partners
/// say their names are taken, nothing is written into the namespaces, and they survive their
/// Partners' deletion.
async fn a_namespace_forged_with_the_ownership_label_is_taken(server: Server) {
    let h = Harness::start(server).await;
    h.northwind(true).await;
    // A real tenant, whose proof the forger copies.
    h.apply(partner("northwind-partners", "forger", "northwind"))
        .await;
    let forger = h
        .wait_partner("northwind-partners", "forger", "Ready", is_ready)
        .await;
    let real = namespaces(&h)
        .get(&tenant_of(&h, &forger).await)
        .await
        .unwrap();
    let copied = real.metadata.annotations.unwrap()[OWNERSHIP_PROOF_ANNOTATION].clone();

    // The victims exist, unbound, before their Distributor: their tenants' names are known.
    h.namespace(
        "tailspin-partners",
        &[("partner-operator.io/distributor", "tailspin")],
    )
    .await;
    let mut forged = BTreeMap::new();
    for (victim, proof) in [("no-proof", None), ("copied-proof", Some(copied.as_str()))] {
        h.apply(partner("tailspin-partners", victim, "tailspin"))
            .await;
        let p = h
            .wait_partner("tailspin-partners", victim, "DistributorNotFound", |p| {
                condition(p, types::READY).is_some_and(|(_, r)| r == reasons::DISTRIBUTOR_NOT_FOUND)
            })
            .await;
        let name = tenant_namespace_of(&p);
        let mut ns: Namespace = serde_json::from_value(json!({"metadata": {
            "name": name,
            "labels": {OWNER: uid(&p), "team": "outsiders"},
        }}))
        .unwrap();
        if let Some(proof) = proof {
            ns.metadata.annotations =
                Some([(OWNERSHIP_PROOF_ANNOTATION.to_string(), proof.to_string())].into());
        }
        namespaces(&h)
            .create(&PostParams::default(), &ns)
            .await
            .unwrap();
        let stored = namespaces(&h).get(&name).await.unwrap();
        forged.insert(victim, (name, stored.metadata.resource_version.unwrap()));
    }
    h.apply(distributor("tailspin", true)).await;
    for victim in forged.keys() {
        h.wait_partner(
            "tailspin-partners",
            victim,
            "TenantNamespaceTaken",
            reports_taken,
        )
        .await;
    }
    eventually("a Warning Event for each", Patience::RECONCILE, || async {
        let events = events(
            &h,
            "tailspin-partners",
            EventReason::TenantNamespaceTaken.as_str(),
        )
        .await;
        forged.values().all(|(name, _)| {
            events.iter().any(|e| {
                e.type_.as_deref() == Some("Warning")
                    && e.note.as_deref().is_some_and(|n| {
                        n.contains(name.as_str()) && n.contains(OWNERSHIP_PROOF_ANNOTATION)
                    })
            })
        })
    })
    .await;
    h.settled().await;
    for (name, version) in forged.values() {
        never_written(&h, name, version).await;
    }
    // Only the forger's activation email went out.
    assert_eq!(h.smtp.received().len(), 1);
    for victim in forged.keys() {
        delete_partner(&h, "tailspin-partners", victim).await;
    }
    for (name, version) in forged.values() {
        never_written(&h, name, version).await;
    }
}

/// A tenant whose proof is gone (as one made by a version without proofs) is taken, not
/// written into, until an operator run with `prove_existing_tenants` gives it its proof again;
/// then it is the Partner's, and the Partner is Ready.
async fn a_tenant_without_its_proof_is_taken_until_proven_again(server: Server) {
    let mut h = Harness::start(server).await;
    h.northwind(true).await;
    h.apply(partner("northwind-partners", "contoso", "northwind"))
        .await;
    let p = h
        .wait_partner("northwind-partners", "contoso", "Ready", is_ready)
        .await;
    let tenant = tenant_of(&h, &p).await;
    let proof = namespaces(&h)
        .get(&tenant)
        .await
        .unwrap()
        .metadata
        .annotations
        .unwrap()[OWNERSHIP_PROOF_ANNOTATION]
        .clone();
    h.stop_operator().await;
    namespaces(&h)
        .patch(
            &tenant,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {OWNERSHIP_PROOF_ANNOTATION: null}}})),
        )
        .await
        .unwrap();
    Api::<ConfigMap>::namespaced(h.client.clone(), &tenant)
        .delete("entitlements", &DeleteParams::default())
        .await
        .unwrap();

    h.start_operator();
    h.wait_partner(
        "northwind-partners",
        "contoso",
        "TenantNamespaceTaken",
        reports_taken,
    )
    .await;
    h.settled().await;
    assert!(
        entitlements(&h, &tenant).await.is_none(),
        "written into an unproven tenant"
    );

    h.stop_operator().await;
    h.start_operator_with(partner_operator::operator::RunOptions {
        prove_existing_tenants: true,
        ..h.run_options()
    });
    h.wait_partner("northwind-partners", "contoso", "Ready", is_ready)
        .await;
    let ns = namespaces(&h).get(&tenant).await.unwrap();
    assert_eq!(
        ns.metadata.annotations.unwrap()[OWNERSHIP_PROOF_ANNOTATION],
        proof
    );
    eventually(
        "the entitlements written again",
        Patience::RECONCILE,
        || async { entitlements(&h, &tenant).await.is_some() },
    )
    .await;
}

/// The namespace `name` is as it was made at `version`: not deleted, not written, no tenant
/// objects in it.
async fn never_written(h: &Harness, name: &str, version: &str) {
    let ns = namespaces(h).get(name).await.unwrap();
    assert!(ns.metadata.deletion_timestamp.is_none(), "{name} deleted");
    assert_eq!(
        ns.metadata.resource_version.as_deref(),
        Some(version),
        "{name} written"
    );
    let configmaps = Api::<ConfigMap>::namespaced(h.client.clone(), name);
    assert!(
        configmaps.get_opt("entitlements").await.unwrap().is_none(),
        "{name}"
    );
    let secrets = Api::<k8s_openapi::api::core::v1::Secret>::namespaced(h.client.clone(), name);
    assert!(
        secrets.get_opt("activation").await.unwrap().is_none(),
        "{name}"
    );
}

/// The tenant's lifecycle record is believed only under the operator's proof: one edited in
/// the tenant (whose own workloads may write there) is written again from the status, and a
/// Partner whose status is then wiped resumes from the true record; a namespace the operator
/// never made, forged with the ownership label and a record, is taken, never resumed.
async fn a_forged_lifecycle_record_is_never_believed(server: Server) {
    use partner_operator::tenant::TENANT_OWNER_UID_LABEL;
    use partner_operator::tenant::record::{RECORD_KEY, RECORD_PROOF_KEY};
    const NS: &str = "northwind-partners";
    let h = Harness::start(server).await;
    h.northwind(true).await;
    h.apply(partner(NS, "contoso", "northwind")).await;
    let contoso = h.wait_partner(NS, "contoso", "Ready", is_ready).await;
    let tenant = tenant_of(&h, &contoso).await;
    let trial = contoso.status.clone().unwrap().trial.unwrap();
    let configmaps = Api::<ConfigMap>::namespaced(h.client.clone(), &tenant);
    let data = configmaps.get("entitlements").await.unwrap().data.unwrap();
    let true_record = data[RECORD_KEY].clone();
    let later = (trial.started_at + chrono::Duration::days(30))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let forged = true_record.replace(
        &trial
            .started_at
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        &later,
    );
    assert_ne!(forged, true_record);
    configmaps
        .patch(
            "entitlements",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {RECORD_KEY: forged}})),
        )
        .await
        .unwrap();
    eventually("the record written again", Patience::RECONCILE, || async {
        let data = configmaps.get("entitlements").await.unwrap().data.unwrap();
        data[RECORD_KEY] == true_record
    })
    .await;
    h.partners(NS)
        .patch_status(
            "contoso",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": null})),
        )
        .await
        .unwrap();
    let resumed = h
        .wait_partner(NS, "contoso", "resumed", |p| {
            p.status.as_ref().and_then(|s| s.tenant.as_ref()).is_some()
        })
        .await;
    assert_eq!(resumed.status.unwrap().trial, Some(trial));

    // A namespace made by someone else for a Partner that will claim it (its label says its
    // tenant was made for `forged-uid`), with the ownership label, a proof and a record.
    let claimed = "forged-uid";
    let name = partner_operator::tenant::tenant_namespace(NS, "fabrikam", claimed);
    let ns: Namespace = serde_json::from_value(json!({"metadata": {
        "name": name,
        "labels": {OWNER: claimed},
        "annotations": {OWNERSHIP_PROOF_ANNOTATION: format!("v1:{}", "0".repeat(64))},
    }}))
    .unwrap();
    namespaces(&h)
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let record = json!({"subscriptionLevel": "Production", "tenant": {"id": "x", "namespace": name,
        "provisionedAt": "2020-01-01T00:00:00Z"}});
    h.apply(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "entitlements", "namespace": name, "labels": {OWNER: claimed}},
        "data": {RECORD_KEY: record.to_string(), RECORD_PROOF_KEY: format!("v1:{}", "0".repeat(64))},
    }))
    .await;
    let mut fabrikam = partner(NS, "fabrikam", "northwind");
    fabrikam["metadata"]["labels"] = json!({TENANT_OWNER_UID_LABEL: claimed});
    h.apply(fabrikam).await;
    let p = h
        .wait_partner(NS, "fabrikam", "TenantNamespaceTaken", reports_taken)
        .await;
    let status = p.status.unwrap();
    assert!(status.tenant.is_none(), "{status:?}");
    assert_ne!(
        status.subscription_level,
        Some(partner_operator::api::SubscriptionLevel::Production)
    );
    h.settled().await;
    assert!(
        !h.smtp
            .received()
            .iter()
            .any(|m| m.to.iter().any(|t| t.contains("fabrikam"))),
        "a Partner whose tenant name is taken got mail"
    );
}
