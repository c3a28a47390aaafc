//! Deletion: propagation policies and the garbage collector, what a delete answers with, and
//! the generation of an object being deleted.

use super::*;

/// A ConfigMap `name` owned by the ConfigMap `owner` (its reply from a create), blocking its
/// owner's foreground deletion or not, and held by `finalizers`.
fn dependent(name: &str, owner: &Reply, block: bool, finalizers: Value) -> Value {
    let mut object = cm(name, json!({}));
    object["metadata"]["ownerReferences"] = json!([{"apiVersion": "v1", "kind": "ConfigMap",
        "name": owner.body["metadata"]["name"], "uid": owner.body["metadata"]["uid"],
        "blockOwnerDeletion": block}]);
    object["metadata"]["finalizers"] = finalizers;
    object
}

async fn delete_with(http: &Http, path: &str, options: Value) -> Reply {
    http.call(
        Method::DELETE,
        path,
        "application/json",
        "application/json",
        Some(&options),
    )
    .await
}

/// `kubectl delete --cascade=orphan`: the owner carries the `orphan` finalizer until its
/// dependents have lost their reference to it; they stay.
pub(super) async fn delete_orphaning_dependents(http: Http, ns: String) -> Value {
    let owner = http.post(&cms(&ns), cm("owner", json!({}))).await;
    http.post(&cms(&ns), dependent("kept", &owner, true, json!([])))
        .await;
    let owner_path = format!("{}/owner", cms(&ns));
    let deleted = delete_with(&http, &owner_path, json!({"propagationPolicy": "Orphan"})).await;
    let gone = http
        .until(&owner_path, Patience::API_SERVER, |r| r.code == 404)
        .await;
    let kept = http.get(&format!("{}/kept", cms(&ns))).await;
    json!({
        "delete": [deleted.outcome(), deleted.body["metadata"]["finalizers"],
            deleted.body["metadata"]["deletionTimestamp"].is_string()],
        "ownerEventually": gone.outcome(),
        "dependent": [kept.outcome(), kept.body["metadata"]["ownerReferences"]],
    })
}

/// Foreground deletion: the owner stays until every dependent that blocks it is gone, even
/// one a finalizer holds; a dependent that does not block it goes too, without holding it.
pub(super) async fn delete_in_the_foreground(http: Http, ns: String) -> Value {
    let owner = http.post(&cms(&ns), cm("owner", json!({}))).await;
    http.post(
        &cms(&ns),
        dependent("held", &owner, true, json!(["example.com/hold"])),
    )
    .await;
    http.post(&cms(&ns), dependent("loose", &owner, false, json!([])))
        .await;
    let owner_path = format!("{}/owner", cms(&ns));
    let held_path = format!("{}/held", cms(&ns));
    let deleted = delete_with(
        &http,
        &owner_path,
        json!({"propagationPolicy": "Foreground"}),
    )
    .await;
    let held = http
        .until(&held_path, Patience::API_SERVER, |r| {
            r.body["metadata"]["deletionTimestamp"].is_string()
        })
        .await;
    let loose = http
        .until(&format!("{}/loose", cms(&ns)), Patience::API_SERVER, |r| {
            r.code == 404
        })
        .await;
    let waiting = http.get(&owner_path).await;
    http.patch(&held_path, MERGE, json!({"metadata": {"finalizers": null}}))
        .await;
    let gone = http
        .until(&owner_path, Patience::API_SERVER, |r| r.code == 404)
        .await;
    json!({
        "delete": [deleted.outcome(), deleted.body["metadata"]["finalizers"]],
        "heldDependent": [held.outcome(), held.body["metadata"]["finalizers"]],
        "looseDependent": loose.outcome(),
        "ownerWhileHeld": [waiting.outcome(), waiting.body["metadata"]["finalizers"]],
        "ownerOnceReleased": gone.outcome(),
    })
}

/// Propagation policies kube-apiserver does not know, given in the body or the query, and
/// the deprecated `orphanDependents` given with one.
pub(super) async fn delete_with_invalid_options(http: Http, ns: String) -> Value {
    http.post(&cms(&ns), cm("x", json!({}))).await;
    let path = format!("{}/x", cms(&ns));
    let answer = |reply: Reply| json!([reply.outcome(), reply.body["message"]]);
    let unknown = delete_with(&http, &path, json!({"propagationPolicy": "Cascade"})).await;
    let both = delete_with(
        &http,
        &path,
        json!({"propagationPolicy": "Orphan", "orphanDependents": true}),
    )
    .await;
    let in_query = http
        .delete(&format!("{path}?propagationPolicy=cascade"))
        .await;
    let still = http.get(&path).await;
    json!({"unknown": answer(unknown), "both": answer(both), "inQuery": answer(in_query),
        "stillThere": still.outcome()})
}

/// The garbage collector deletes a dependent whose owners do not exist, and takes an absent
/// owner's reference off a dependent another owner still holds.
pub(super) async fn dependents_of_absent_owners(http: Http, ns: String) -> Value {
    let ghost = json!({"apiVersion": "v1", "kind": "ConfigMap", "name": "ghost",
        "uid": "00000000-0000-0000-0000-000000000001"});
    let mut orphan = cm("orphan", json!({}));
    orphan["metadata"]["ownerReferences"] = json!([ghost]);
    http.post(&cms(&ns), orphan).await;
    let owner = http.post(&cms(&ns), cm("owner", json!({}))).await;
    let mut shared = cm("shared", json!({}));
    shared["metadata"]["ownerReferences"] = json!([ghost, {"apiVersion": "v1", "kind": "ConfigMap",
        "name": "owner", "uid": owner.body["metadata"]["uid"]}]);
    http.post(&cms(&ns), shared).await;
    let orphan = http
        .until(&format!("{}/orphan", cms(&ns)), Patience::API_SERVER, |r| {
            r.code == 404
        })
        .await;
    let shared = http
        .until(&format!("{}/shared", cms(&ns)), Patience::API_SERVER, |r| {
            r.body["metadata"]["ownerReferences"]
                .as_array()
                .is_some_and(|refs| refs.len() == 1)
        })
        .await;
    let owners: Vec<Value> = shared.body["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| r["name"].clone())
        .collect();
    json!({"withoutOwners": orphan.outcome(), "withOneLeft": [shared.outcome(), owners]})
}

/// What a delete that removes its object answers with: a `Status` naming it for most kinds,
/// the object itself for Namespaces, Services and ServiceAccounts.
pub(super) async fn delete_answers(http: Http, ns: String) -> Value {
    let cases = [
        (cms(&ns), cm("x", json!({}))),
        (
            format!("/api/v1/namespaces/{ns}/secrets"),
            json!({"metadata": {"name": "x"}}),
        ),
        (
            format!("/apis/coordination.k8s.io/v1/namespaces/{ns}/leases"),
            json!({"metadata": {"name": "x"}, "spec": {}}),
        ),
        (
            format!("/api/v1/namespaces/{ns}/serviceaccounts"),
            json!({"metadata": {"name": "x"}}),
        ),
        (
            format!("/api/v1/namespaces/{ns}/services"),
            json!({"metadata": {"name": "x"}, "spec": {"ports": [{"port": 80}]}}),
        ),
        (partners(&ns), partner("x")),
    ];
    let mut answers = vec![];
    for (path, object) in cases {
        http.post(&path, object).await;
        let deleted = http.delete(&format!("{path}/x")).await;
        let body = &deleted.body;
        answers.push(json!([
            deleted.code,
            body["kind"],
            body["status"],
            body["details"]["name"],
            body["details"]["kind"],
            body["details"]["group"],
            body["details"]["uid"].is_string(),
            body["metadata"]["name"]
        ]));
    }
    let namespace = format!("{ns}-gone");
    http.post(
        "/api/v1/namespaces",
        json!({"metadata": {"name": namespace}}),
    )
    .await;
    let deleted = http
        .delete(&format!("/api/v1/namespaces/{namespace}"))
        .await;
    answers.push(json!([
        deleted.code,
        deleted.body["kind"],
        deleted.body["metadata"]["name"],
        deleted.body["status"]["phase"]
    ]));
    json!(answers)
}

/// `metadata.generation` moves when a delete marks an object with a generation as deleted
/// (controllers watching generations see it), and not again on a second delete.
pub(super) async fn generation_on_deletion(http: Http, ns: String) -> Value {
    let mut held = partner("held");
    held["metadata"]["finalizers"] = json!(["example.com/hold"]);
    let created = http.post(&partners(&ns), held).await;
    let path = format!("{}/held", partners(&ns));
    let deleted = http.delete(&path).await;
    let again = http.delete(&path).await;
    let mut config = cm("held", json!({}));
    config["metadata"]["finalizers"] = json!(["example.com/hold"]);
    http.post(&cms(&ns), config).await;
    let config = http.delete(&format!("{}/held", cms(&ns))).await;
    for path in [path, format!("{}/held", cms(&ns))] {
        http.patch(&path, MERGE, json!({"metadata": {"finalizers": null}}))
            .await;
    }
    json!({
        "partner": [created.body["metadata"]["generation"], deleted.body["metadata"]["generation"],
            again.body["metadata"]["generation"]],
        "configMap": config.body["metadata"]["generation"],
    })
}
