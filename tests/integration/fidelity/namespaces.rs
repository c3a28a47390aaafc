//! Namespaces: the label that names them, and the ones a cluster cannot do without.

use super::*;

const NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// Every Namespace carries `kubernetes.io/metadata.name` with its name, whatever a client
/// sends, so a namespace selector can pick one by name.
pub(super) async fn namespace_name_label(http: Http, ns: String) -> Value {
    let labels = |reply: &Reply| reply.body["metadata"]["labels"].clone();
    let path = format!("/api/v1/namespaces/{ns}");
    let created = http.get(&path).await;
    let other = format!("{ns}-x");
    let disguised = http
        .post(
            "/api/v1/namespaces",
            json!({"metadata": {"name": other, "labels": {NAME_LABEL: "default", "team": "a"}}}),
        )
        .await;
    let removed = http
        .patch(
            &path,
            MERGE,
            json!({"metadata": {"labels": {NAME_LABEL: null}}}),
        )
        .await;
    let mut replaced = created.body.clone();
    replaced["metadata"]["labels"] = json!({"team": "b"});
    let replaced = http.put(&path, replaced).await;
    let selected = http
        .get(&format!(
            "/api/v1/namespaces?labelSelector={NAME_LABEL}%3D{other}"
        ))
        .await;
    http.delete(&format!("/api/v1/namespaces/{other}")).await;
    json!({
        "created": labels(&created),
        "disguised": [disguised.outcome(), labels(&disguised)],
        "labelRemoved": [removed.outcome(), labels(&removed)],
        "labelsReplaced": [replaced.outcome(), labels(&replaced)],
        "selectedByName": names(&selected),
    })
}

/// `default`, `kube-system` and `kube-public` cannot be deleted (dry run or not); they stay.
pub(super) async fn undeletable_namespaces(http: Http, _ns: String) -> Value {
    let mut answers = vec![];
    for name in ["default", "kube-system", "kube-public"] {
        let path = format!("/api/v1/namespaces/{name}");
        let deleted = http.delete(&path).await;
        let dry_run = http.delete(&format!("{path}?dryRun=All")).await;
        let after = http.get(&path).await;
        answers.push(json!([
            deleted.outcome(),
            deleted.body["message"],
            deleted.body["details"],
            dry_run.outcome(),
            after.body["status"]["phase"]
        ]));
    }
    json!(answers)
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
            .map(|c| json!([c["type"], c["status"], c["reason"], c["message"]]))
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
