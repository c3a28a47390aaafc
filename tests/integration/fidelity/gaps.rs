//! Behaviours the sandbox still does not share with kube-apiserver, each listed in
//! `docs/sandbox-fidelity.md`: these probes show the difference, and fail once it is gone.

use super::*;

fn apply_cm(manager: &str, data: Value) -> (String, Value) {
    (
        format!("?fieldManager={manager}"),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "shared"}, "data": data}),
    )
}

/// Two managers apply the same value to a field, so both own it; when one stops applying it,
/// the field stays, owned by the other.
pub(super) async fn ssa_shared_field_ownership(http: Http, ns: String) -> Value {
    let path = format!("{}/shared", cms(&ns));
    for (manager, data) in [
        ("a", json!({"k": "v", "a": "1"})),
        ("b", json!({"k": "v"})),
        ("a", json!({"a": "1"})),
    ] {
        let (query, body) = apply_cm(manager, data);
        http.patch(&format!("{path}{query}"), APPLY, body).await;
    }
    let after = http.get(&path).await;
    json!({"data": after.body["data"], "managers": managers(&after.body)})
}

/// An update that empties `managedFields` resets field ownership (kubectl's migration from
/// client-side to server-side apply relies on writing them).
pub(super) async fn managed_fields_reset(http: Http, ns: String) -> Value {
    let (query, body) = apply_cm("a", json!({"k": "v"}));
    let path = format!("{}/shared", cms(&ns));
    let applied = http.patch(&format!("{path}{query}"), APPLY, body).await;
    let mut reset = applied.body.clone();
    reset["metadata"]["managedFields"] = json!([]);
    let reset = http.put(&path, reset).await;
    json!([reset.outcome(), managers(&reset.body)])
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

/// `managedFields` mark a map a manager created with a `"."` entry (`f:labels: {".": {}}`).
pub(super) async fn managed_fields_own_their_maps(http: Http, ns: String) -> Value {
    let mut object = cm("labelled", json!({"k": "v"}));
    object["metadata"]["labels"] = json!({"a": "b"});
    let created = http.post(&cms(&ns), object).await;
    json!(created.body["metadata"]["managedFields"][0]["fieldsV1"])
}
