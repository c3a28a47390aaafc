//! Behaviours the sandbox still does not share with kube-apiserver, each listed in
//! `docs/sandbox-fidelity.md`: these probes show the difference, and fail once it is gone.

use super::*;

/// A `null` for a field its schema does not make nullable: kube-apiserver drops it.
pub(super) async fn nulls_in_custom_resources(http: Http, ns: String) -> Value {
    let mut object = partner("nulls");
    object["spec"]["activation"] = Value::Null;
    let created = http.post(&partners(&ns), object).await;
    json!([
        created.outcome(),
        created.body["spec"].get("activation").is_some()
    ])
}

/// CRDs kube-apiserver refuses: a schema that is not structural, a CEL rule that does not
/// compile.
pub(super) async fn crd_schemas_refused(http: Http, _ns: String) -> Value {
    let crd = |plural: &str, schema: Value| {
        json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": format!("{plural}.fidelity.example.com")},
            "spec": {"group": "fidelity.example.com", "scope": "Namespaced",
                "names": {"plural": plural, "kind": "Gap"},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": schema}}]}})
    };
    let path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
    let unstructured = http
        .post(
            path,
            crd(
                "untyped",
                json!({"type": "object", "properties": {"spec": {"properties": {"a": {"type": "string"}}}}}),
            ),
        )
        .await;
    let bad_rule = http
        .post(
            path,
            crd(
                "badrules",
                json!({"type": "object", "x-kubernetes-validations": [{"rule": "self.nope("}]}),
            ),
        )
        .await;
    json!({"notStructural": unstructured.outcome(), "ruleNotCompiling": bad_rule.outcome()})
}

/// A Namespace held in `Terminating` by an object's finalizer: kube-controller-manager says
/// why in its conditions.
pub(super) async fn namespace_terminating_conditions(http: Http, ns: String) -> Value {
    let mut held = cm("held", json!({}));
    held["metadata"]["finalizers"] = json!(["example.com/hold"]);
    http.post(&cms(&ns), held).await;
    let path = format!("/api/v1/namespaces/{ns}");
    http.delete(&path).await;
    let conditions = |r: &Reply| {
        let mut types: Vec<Value> = r.body["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| json!([c["type"], c["status"]]))
            .collect();
        types.sort_by_key(|t| t.to_string());
        types
    };
    let stuck = http
        .until(&path, Patience::API_SERVER, |r| {
            conditions(r)
                .iter()
                .any(|c| c[0] == "NamespaceFinalizersRemaining" && c[1] == "True")
        })
        .await;
    http.patch(
        &format!("{}/held", cms(&ns)),
        MERGE,
        json!({"metadata": {"finalizers": null}}),
    )
    .await;
    json!([stuck.body["status"]["phase"], conditions(&stuck)])
}

/// Kinds the sandbox does not serve (Pods, Jobs, ...): kube-apiserver lists them; the sandbox
/// answers 404 saying it does not serve them.
pub(super) async fn unserved_kinds(http: Http, ns: String) -> Value {
    let pods = http.get(&format!("/api/v1/namespaces/{ns}/pods")).await;
    let jobs = http
        .get(&format!("/apis/batch/v1/namespaces/{ns}/jobs"))
        .await;
    json!({"pods": pods.outcome(), "jobs": jobs.outcome()})
}
