//! Behaviours the sandbox still does not share with kube-apiserver, each listed in
//! `docs/sandbox-fidelity.md`: these probes show the difference, and fail once it is gone.

use super::*;

/// Kinds the sandbox does not serve (Pods, Jobs, ...): kube-apiserver lists them; the sandbox
/// answers 404 saying it does not serve them.
pub(super) async fn unserved_kinds(http: Http, ns: String) -> Value {
    let pods = http.get(&format!("/api/v1/namespaces/{ns}/pods")).await;
    let jobs = http
        .get(&format!("/apis/batch/v1/namespaces/{ns}/jobs"))
        .await;
    json!({"pods": pods.outcome(), "jobs": jobs.outcome()})
}

/// An update that leaves alone a value which a CEL rule added to the CRD afterwards refuses:
/// kube-apiserver ratchets the rule's error on an unchanged value into a warning and takes the
/// update; the sandbox refuses it. A change of the value is refused by both.
pub(super) async fn rule_on_an_unchanged_value(http: Http, ns: String) -> Value {
    let crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
    let crd_path = format!("{crds}/levers.fidelity.example");
    let levers = format!("/apis/fidelity.example/v1/namespaces/{ns}/levers");
    let lever = |name: &str| {
        json!({"apiVersion": "fidelity.example/v1", "kind": "Lever",
            "metadata": {"name": name}, "spec": {"count": 200}})
    };
    let crd = || fidelity_crd("Lever", None, json!({"count": {"type": "integer"}}));
    http.post(crds, crd()).await;
    http.until(&levers, Patience::API_SERVER, |r| r.code == 200)
        .await;
    let stored = http.post(&levers, lever("stored")).await;
    let mut with_rule = crd();
    with_rule["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["x-kubernetes-validations"] =
        json!([{"rule": "self.count < 100", "message": "count must be below 100"}]);
    with_rule["metadata"]["resourceVersion"] =
        http.get(&crd_path).await.body["metadata"]["resourceVersion"].clone();
    let rule_added = http.put(&crd_path, with_rule).await;
    // The rule is in force once a new object breaking it is refused.
    let tries = std::sync::atomic::AtomicUsize::new(0);
    let in_force = within(Patience::API_SERVER, || async {
        let n = tries.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let created = http.post(&levers, lever(&format!("probe-{n}"))).await;
        if created.code == 422 { Ok(()) } else { Err(()) }
    })
    .await
    .is_ok();
    let object = format!("{levers}/stored");
    let labelled = http
        .patch(&object, MERGE, json!({"metadata": {"labels": {"a": "b"}}}))
        .await;
    let changed = http
        .patch(&object, MERGE, json!({"spec": {"count": 150}}))
        .await;
    http.delete(&crd_path).await;
    json!({
        "stored": stored.code,
        "rule added": rule_added.code,
        "in force": in_force,
        "unchanged value": labelled.outcome(),
        "changed value": changed.outcome(),
    })
}
