//! Create, read, update and delete: optimistic concurrency, conflicts, names, labels and
//! admission's messages.

use super::*;

pub(super) async fn crud_and_optimistic_concurrency(http: Http, ns: String) -> Value {
    let created = http.post(&cms(&ns), cm("one", json!({"a": "1"}))).await;
    let path = format!("{}/one", cms(&ns));
    let got = http.get(&path).await;
    let mut update = got.body.clone();
    update["data"]["a"] = json!("2");
    let updated = http.put(&path, update.clone()).await;
    let stale = http.put(&path, update).await; // the old resourceVersion
    let mut no_version = updated.body.clone();
    no_version["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resourceVersion");
    no_version["data"]["a"] = json!("3");
    let unconditional = http.put(&path, no_version).await;
    let deleted = http.delete(&path).await;
    let gone = http.get(&path).await;
    json!({
        "create": created.outcome(), "get": got.outcome(), "data": got.body["data"],
        "update": updated.outcome(), "updatedData": updated.body["data"],
        "versionMoved": updated.rv() != got.rv(),
        "stale": stale.outcome(), "unconditional": unconditional.outcome(),
        "unconditionalData": unconditional.body["data"],
        "delete": deleted.outcome(), "afterDelete": gone.outcome(),
        "deleteAgain": http.delete(&path).await.outcome(),
    })
}

pub(super) async fn create_conflicts_and_missing_targets(http: Http, ns: String) -> Value {
    http.post(&cms(&ns), cm("one", json!({}))).await;
    let duplicate = http.post(&cms(&ns), cm("one", json!({}))).await;
    let missing_ns = http
        .post(&cms("no-such-namespace"), cm("x", json!({})))
        .await;
    let put_missing = http
        .put(&format!("{}/absent", cms(&ns)), cm("absent", json!({})))
        .await;
    let mut other_ns = cm("two", json!({}));
    other_ns["metadata"]["namespace"] = json!("default");
    let wrong_ns = http.post(&cms(&ns), other_ns).await;
    let unknown_resource = http.get(&format!("/api/v1/namespaces/{ns}/nothings")).await;
    let wrong_kind = http
        .post(
            &cms(&ns),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}}),
        )
        .await;
    json!({
        "duplicate": duplicate.outcome(), "missingNamespace": missing_ns.outcome(),
        "putMissing": put_missing.outcome(), "namespaceMismatch": wrong_ns.outcome(),
        "unknownResource": unknown_resource.outcome(), "wrongKind": wrong_kind.outcome(),
    })
}

pub(super) async fn generate_name(http: Http, ns: String) -> Value {
    let created = http
        .post(
            &cms(&ns),
            json!({"metadata": {"generateName": "gen-"}, "data": {}}),
        )
        .await;
    let name = created.body["metadata"]["name"].as_str().unwrap_or("");
    json!({"create": created.outcome(), "prefixed": name.starts_with("gen-"), "length": name.len(),
        "generateNameKept": created.body["metadata"]["generateName"]})
}

pub(super) async fn status_dropped_on_create_custom_resource(http: Http, ns: String) -> Value {
    let mut object = partner("with-status");
    object["status"] = json!({"observedGeneration": 7});
    let created = http.post(&partners(&ns), object).await;
    let got = http.get(&format!("{}/with-status", partners(&ns))).await;
    json!({"create": created.outcome(), "returned": created.body.get("status"), "stored": got.body.get("status")})
}

pub(super) async fn status_dropped_on_create_builtin(http: Http, ns: String) -> Value {
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "nginx"}]}}},
        "status": {"replicas": 5, "readyReplicas": 5},
    });
    let created = http
        .post(
            &format!("/apis/apps/v1/namespaces/{ns}/deployments"),
            deployment,
        )
        .await;
    json!({"create": created.outcome(), "replicas": created.body["status"]["replicas"], "ready": created.body["status"]["readyReplicas"]})
}

pub(super) async fn invalid_names(http: Http, ns: String) -> Value {
    let upper = http.post(&cms(&ns), cm("Bad_Name", json!({}))).await;
    let long = http.post(&cms(&ns), cm(&"a".repeat(254), json!({}))).await;
    let dotted_ns = http
        .post(
            "/api/v1/namespaces",
            json!({"metadata": {"name": "has.dot"}}),
        )
        .await;
    let no_name = http
        .post(&cms(&ns), json!({"metadata": {}, "data": {}}))
        .await;
    let mut p = partner("Bad_Partner");
    p["metadata"]["name"] = json!("Bad_Partner");
    let cr = http.post(&partners(&ns), p).await;
    json!({"upper": upper.outcome(), "tooLong": long.outcome(), "namespaceWithDot": dotted_ns.outcome(),
        "noName": no_name.outcome(), "customResource": cr.outcome()})
}

pub(super) async fn invalid_labels_and_annotations(http: Http, ns: String) -> Value {
    let with_meta = |name: &str, key: &str, meta: Value| {
        let mut object = cm(name, json!({}));
        object["metadata"][key] = meta;
        object
    };
    let long_value = http
        .post(
            &cms(&ns),
            with_meta("a", "labels", json!({"tier": "x".repeat(64)})),
        )
        .await;
    let ok_value = http
        .post(
            &cms(&ns),
            with_meta("b", "labels", json!({"tier": "x".repeat(63)})),
        )
        .await;
    let bad_key = http
        .post(
            &cms(&ns),
            with_meta("c", "labels", json!({"bad key!": "v"})),
        )
        .await;
    let bad_value = http
        .post(&cms(&ns), with_meta("d", "labels", json!({"k": "-dash"})))
        .await;
    let prefixed = http
        .post(
            &cms(&ns),
            with_meta("e", "labels", json!({"example.com/k": "v"})),
        )
        .await;
    let bad_annotation = http
        .post(
            &cms(&ns),
            with_meta("f", "annotations", json!({"bad key": "v"})),
        )
        .await;
    let long_annotation_value = http
        .post(
            &cms(&ns),
            with_meta("g", "annotations", json!({"k": "x".repeat(1000)})),
        )
        .await;
    let update_bad = http
        .patch(
            &format!("{}/b", cms(&ns)),
            MERGE,
            json!({"metadata": {"labels": {"tier": "y".repeat(64)}}}),
        )
        .await;
    json!({"longValue": long_value.outcome(), "value63": ok_value.outcome(), "badKey": bad_key.outcome(),
        "badValue": bad_value.outcome(), "prefixedKey": prefixed.outcome(), "badAnnotationKey": bad_annotation.outcome(),
        "longAnnotationValue": long_annotation_value.outcome(), "patchToBadLabel": update_bad.outcome()})
}

pub(super) async fn invalid_labels_on_custom_resources(http: Http, ns: String) -> Value {
    let mut p = partner("labelled");
    p["metadata"]["labels"] = json!({"tier": "x".repeat(64), "bad key": "v"});
    let created = http.post(&partners(&ns), p).await;
    json!({"create": created.outcome(), "causes": cause_messages(&created)})
}

/// The messages of a `Status`'s causes, sorted: kube-apiserver walks labels in map order, so
/// its causes come in any order.
pub(super) fn cause_messages(reply: &Reply) -> Value {
    let mut messages: Vec<String> = reply.body["details"]["causes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| c["message"].as_str().unwrap_or_default().to_string())
        .collect();
    messages.sort();
    json!(messages)
}

pub(super) async fn admission_messages(http: Http, ns: String) -> Value {
    let mut p = partner("bad");
    p["spec"]["notificationEmail"] = json!("not-an-email");
    let created = http.post(&partners(&ns), p).await;
    let mut missing = partner("missing");
    missing["spec"]
        .as_object_mut()
        .unwrap()
        .remove("organizationName");
    let missing = http.post(&partners(&ns), missing).await;
    json!({"invalid": created.outcome(), "invalidMessage": created.body["message"], "invalidCauses": cause_messages(&created),
        "missing": missing.outcome(), "missingMessage": missing.body["message"], "missingCauses": cause_messages(&missing)})
}
