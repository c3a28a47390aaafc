//! Updates, patches of every kind, the status subresource, finalizers, deletion and its
//! preconditions, Namespace termination and deleting a collection.

use super::*;

pub(super) async fn updates_of_custom_resources(http: Http, ns: String) -> Value {
    let base = partners(&ns);
    let created = http.post(&base, partner("u")).await;
    let path = format!("{base}/u");
    let mut unconditional = created.body.clone();
    unconditional["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resourceVersion");
    unconditional["spec"]["organizationName"] = json!("Changed");
    let unconditional = http.put(&path, unconditional).await;
    let mut other_uid = created.body.clone();
    other_uid["metadata"]["uid"] = json!("00000000-0000-0000-0000-000000000001");
    let other_uid = http.put(&path, other_uid).await;
    let mut renamed = created.body.clone();
    renamed["metadata"]["name"] = json!("other");
    let renamed = http.put(&path, renamed).await;
    let mut other_ns = created.body.clone();
    other_ns["metadata"]["namespace"] = json!("default");
    let other_ns = http.put(&path, other_ns).await;
    let missing = http
        .patch(&format!("{base}/absent"), MERGE, json!({"spec": {}}))
        .await;
    json!({
        "unconditional": unconditional.outcome(), "otherUid": other_uid.outcome(),
        "renamed": renamed.outcome(), "otherNamespace": other_ns.outcome(), "patchMissing": missing.outcome(),
    })
}

pub(super) async fn merge_json_and_strategic_patches(http: Http, ns: String) -> Value {
    http.post(&cms(&ns), cm("p", json!({"a": "1", "b": "2"})))
        .await;
    let path = format!("{}/p", cms(&ns));
    let merge = http
        .patch(&path, MERGE, json!({"data": {"a": null, "c": "3"}}))
        .await;
    let json_patch = http
        .patch(
            &path,
            JSON_PATCH,
            json!([{"op": "add", "path": "/data/d", "value": "4"}, {"op": "remove", "path": "/data/b"}]),
        )
        .await;
    let failed_test = http
        .patch(
            &path,
            JSON_PATCH,
            json!([{"op": "test", "path": "/data/c", "value": "wrong"}]),
        )
        .await;
    let bad_remove = http
        .patch(
            &path,
            JSON_PATCH,
            json!([{"op": "remove", "path": "/data/nothing"}]),
        )
        .await;
    let stale = http
        .patch(
            &path,
            MERGE,
            json!({"metadata": {"resourceVersion": "1"}, "data": {"e": "5"}}),
        )
        .await;
    let deployments = format!("/apis/apps/v1/namespaces/{ns}/deployments");
    http.post(&deployments, json!({
        "metadata": {"name": "web"},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
                {"name": "web", "image": "nginx:1"}, {"name": "sidecar", "image": "envoy:1"}]}}},
    })).await;
    let strategic = http
        .patch(
            &format!("{deployments}/web"),
            STRATEGIC,
            json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:2"}]}}}}),
        )
        .await;
    let containers: Vec<Value> = strategic.body["spec"]["template"]["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| json!([c["name"], c["image"]]))
        .collect();
    let strategic_cm = http
        .patch(&path, STRATEGIC, json!({"data": {"c": null, "f": "6"}}))
        .await;
    let crd_strategic = http
        .patch(
            &format!("{}/sm", partners(&ns)),
            STRATEGIC,
            json!({"spec": {"organizationName": "X"}}),
        )
        .await;
    json!({
        "merge": [merge.outcome(), merge.body["data"]], "json": [json_patch.outcome(), json_patch.body["data"]],
        "failedTest": failed_test.outcome(), "badRemove": bad_remove.outcome(), "stalePrecondition": stale.outcome(),
        "strategic": [strategic.outcome(), containers], "strategicConfigMap": [strategic_cm.outcome(), strategic_cm.body["data"]],
        "strategicOnCustomResource": crd_strategic.outcome(),
    })
}

pub(super) async fn status_subresource_and_generation(http: Http, ns: String) -> Value {
    let base = partners(&ns);
    let created = http.post(&base, partner("gen")).await;
    let path = format!("{base}/gen");
    let label = http
        .patch(&path, MERGE, json!({"metadata": {"labels": {"x": "y"}}}))
        .await;
    let spec = http
        .patch(
            &path,
            MERGE,
            json!({"spec": {"organizationName": "Changed"}}),
        )
        .await;
    let status = http
        .patch(
            &format!("{path}/status"),
            MERGE,
            json!({"status": {"observedGeneration": 2}, "spec": {"organizationName": "Ignored"}}),
        )
        .await;
    let status_via_main = http
        .patch(&path, MERGE, json!({"status": {"observedGeneration": 9}}))
        .await;
    let mut put = status_via_main.body.clone();
    put["status"]["observedGeneration"] = json!(10);
    let put_main = http.put(&path, put).await;
    let mut put_status = put_main.body.clone();
    put_status["status"]["observedGeneration"] = json!(11);
    put_status["spec"]["organizationName"] = json!("Ignored too");
    let put_status = http.put(&format!("{path}/status"), put_status).await;
    let unchanged = http
        .patch(
            &path,
            MERGE,
            json!({"spec": {"organizationName": "Changed"}}),
        )
        .await;
    let generation = |r: &Reply| r.body["metadata"]["generation"].clone();
    json!({
        "created": generation(&created), "afterLabel": generation(&label), "afterSpec": generation(&spec),
        "afterStatus": [generation(&status), status.body["status"], status.body["spec"]["organizationName"]],
        "statusViaMain": [status_via_main.outcome(), status_via_main.body["status"]],
        "putMain": [put_main.outcome(), put_main.body["status"]],
        "putStatus": [put_status.outcome(), put_status.body["status"], put_status.body["spec"]["organizationName"], generation(&put_status)],
        "noOpKeepsVersion": unchanged.rv() == put_status.rv(),
    })
}

pub(super) async fn finalizers_and_deletion(http: Http, ns: String) -> Value {
    let mut object = cm("held", json!({}));
    object["metadata"]["finalizers"] = json!(["example.com/hold"]);
    http.post(&cms(&ns), object).await;
    let path = format!("{}/held", cms(&ns));
    let deleted = http.delete(&path).await;
    let still = http.get(&path).await;
    let again = http.delete(&path).await;
    let add_finalizer = http
        .patch(
            &path,
            JSON_PATCH,
            json!([{"op": "add", "path": "/metadata/finalizers/-", "value": "example.com/late"}]),
        )
        .await;
    let released = http
        .patch(&path, MERGE, json!({"metadata": {"finalizers": null}}))
        .await;
    let gone = http.get(&path).await;
    json!({
        "delete": [deleted.outcome(), deleted.body["metadata"]["deletionTimestamp"].is_string(), deleted.body["metadata"]["deletionGracePeriodSeconds"]],
        "stillThere": [still.outcome(), still.body["metadata"]["finalizers"]],
        "deleteAgain": [again.outcome(), again.body["metadata"]["deletionTimestamp"].is_string()],
        "addFinalizerWhileDeleting": add_finalizer.outcome(),
        "released": released.outcome(), "gone": gone.outcome(),
    })
}

pub(super) async fn delete_preconditions(http: Http, ns: String) -> Value {
    http.post(&cms(&ns), cm("pre", json!({}))).await;
    let path = format!("{}/pre", cms(&ns));
    let with_body = |body: Value| {
        let http = http.clone();
        let path = path.clone();
        async move {
            http.call(
                Method::DELETE,
                &path,
                "application/json",
                "application/json",
                Some(&body),
            )
            .await
        }
    };
    let wrong_uid =
        with_body(json!({"preconditions": {"uid": "00000000-0000-0000-0000-000000000000"}})).await;
    let wrong_version = with_body(json!({"preconditions": {"resourceVersion": "1"}})).await;
    let mut dependent = cm("dependent", json!({}));
    dependent["metadata"]["ownerReferences"] = json!([{"apiVersion": "v1", "kind": "ConfigMap",
        "name": "pre", "uid": http.get(&path).await.body["metadata"]["uid"], "blockOwnerDeletion": true}]);
    http.post(&cms(&ns), dependent).await;
    let deleted = with_body(json!({"propagationPolicy": "Foreground"})).await;
    let gone = http
        .until(&path, Patience::API_SERVER, |r| r.code == 404)
        .await;
    let dependent_gone = http.get(&format!("{}/dependent", cms(&ns))).await;
    json!({"wrongUid": wrong_uid.outcome(), "wrongVersion": wrong_version.outcome(),
        "foreground": [deleted.outcome(), deleted.body["metadata"]["finalizers"]],
        "ownerGone": gone.outcome(), "dependentGone": dependent_gone.outcome()})
}

pub(super) async fn namespace_termination(http: Http, _ns: String) -> Value {
    let ns = "terminating";
    http.post("/api/v1/namespaces", json!({"metadata": {"name": ns}}))
        .await;
    http.post(&cms(ns), cm("content", json!({}))).await;
    let deleted = http.delete(&format!("/api/v1/namespaces/{ns}")).await;
    let phase = deleted.body["status"]["phase"].clone();
    let finalizers = deleted.body["spec"]["finalizers"].clone();
    let create_inside = http.post(&cms(ns), cm("late", json!({}))).await;
    let gone = http
        .until(
            &format!("/api/v1/namespaces/{ns}"),
            Patience::API_SERVER,
            |r| r.code == 404,
        )
        .await;
    let content = http.get(&format!("{}/content", cms(ns))).await;
    json!({"delete": deleted.outcome(), "phase": phase, "specFinalizers": finalizers,
        "createInside": create_inside.outcome(), "eventually": gone.outcome(), "content": content.outcome()})
}

pub(super) async fn delete_collection(http: Http, ns: String) -> Value {
    for (name, tier) in [("a", "x"), ("b", "x"), ("c", "y")] {
        let mut object = cm(name, json!({}));
        object["metadata"]["labels"] = json!({"tier": tier});
        http.post(&cms(&ns), object).await;
    }
    let deleted = http
        .delete(&format!("{}?labelSelector=tier%3Dx", cms(&ns)))
        .await;
    let left = http.get(&cms(&ns)).await;
    json!({"deleteCollection": deleted.outcome(), "left": names(&left)})
}
