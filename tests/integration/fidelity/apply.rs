//! Server-side apply: conflicts, managed fields, idempotence, the status subresource, atomic
//! lists, and the field manager it requires.

use super::*;

pub(super) async fn server_side_apply_conflicts_and_force(http: Http, ns: String) -> Value {
    let path = format!("{}/applied", cms(&ns));
    let applied = |value: &str| cm("applied", json!({"key": value}));
    let first = http
        .patch(&format!("{path}?fieldManager=alice"), APPLY, applied("a"))
        .await;
    let same = http
        .patch(&format!("{path}?fieldManager=alice"), APPLY, applied("a2"))
        .await;
    let conflict = http
        .patch(&format!("{path}?fieldManager=bob"), APPLY, applied("b"))
        .await;
    let agreeing = http
        .patch(&format!("{path}?fieldManager=carol"), APPLY, applied("a2"))
        .await;
    let forced = http
        .patch(
            &format!("{path}?fieldManager=bob&force=true"),
            APPLY,
            applied("b"),
        )
        .await;
    // An update by another manager takes the field; alice's next apply conflicts with it.
    http.patch(
        &format!("{path}?fieldManager=editor"),
        MERGE,
        json!({"data": {"key": "e"}}),
    )
    .await;
    let after_update = http
        .patch(&format!("{path}?fieldManager=bob"), APPLY, applied("b2"))
        .await;
    // Dropping a field from one's applied configuration removes it, if no one else owns it.
    let own = http
        .patch(
            &format!("{path}?fieldManager=dave"),
            APPLY,
            cm("applied", json!({"only-dave": "1"})),
        )
        .await;
    let dropped = http
        .patch(
            &format!("{path}?fieldManager=dave"),
            APPLY,
            cm("applied", json!({})),
        )
        .await;
    json!({
        "first": first.outcome(), "sameManager": same.outcome(), "conflict": conflict.outcome(),
        "conflictMessage": conflict.body["message"],
        "agreeing": agreeing.outcome(), "forced": forced.outcome(), "forcedData": forced.body["data"],
        "afterUpdate": after_update.outcome(), "own": own.outcome(), "droppedData": dropped.body["data"],
    })
}

pub(super) async fn server_side_apply_managed_fields(http: Http, ns: String) -> Value {
    let path = format!("{}/managed", cms(&ns));
    let first = http
        .patch(
            &format!("{path}?fieldManager=applier"),
            APPLY,
            cm("managed", json!({"a": "1"})),
        )
        .await;
    let merged = http
        .patch(
            &format!("{path}?fieldManager=merger"),
            MERGE,
            json!({"data": {"b": "2"}}),
        )
        .await;
    let mut object = merged.body.clone();
    object["data"]["c"] = json!("3");
    let put = http
        .put(&format!("{path}?fieldManager=putter"), object)
        .await;
    let p = http
        .post(
            &format!("{}?fieldManager=creator", partners(&ns)),
            partner("p"),
        )
        .await;
    let status = http
        .patch(
            &format!("{}/p/status?fieldManager=reporter", partners(&ns)),
            MERGE,
            json!({"status": {"observedGeneration": 1}}),
        )
        .await;
    json!({
        "afterApply": managers(&first.body), "afterMerge": managers(&merged.body), "afterPut": managers(&put.body),
        "applyFields": first.body["metadata"]["managedFields"][0]["fieldsV1"],
        "created": managers(&p.body), "afterStatus": managers(&status.body),
    })
}

pub(super) async fn server_side_apply_is_idempotent(http: Http, ns: String) -> Value {
    let path = format!("/api/v1/namespaces/{ns}/secrets/applied?fieldManager=operator");
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "applied", "labels": {"a": "b"}},
        "type": "Opaque", "data": {"hash": "YWJj"}});
    let first = http.patch(&path, APPLY, secret.clone()).await;
    // Real time on purpose: managedFields times have whole seconds, and an idempotent apply
    // must not move them a second later.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second = http.patch(&path, APPLY, secret.clone()).await;
    let mut changed = secret;
    changed["data"]["hash"] = json!("ZGVm");
    let third = http.patch(&path, APPLY, changed).await;
    let namespace = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": format!("{ns}-tenant"), "labels": {"t": "1"}}});
    let ns_path = format!("/api/v1/namespaces/{ns}-tenant?fieldManager=operator");
    let ns_first = http.patch(&ns_path, APPLY, namespace.clone()).await;
    let ns_second = http.patch(&ns_path, APPLY, namespace).await;
    json!({
        "first": [first.outcome(), first.body["data"], first.body["type"]],
        "secondKeepsVersion": [second.outcome(), second.rv() == first.rv(),
            second.body["metadata"]["managedFields"][0]["time"] == first.body["metadata"]["managedFields"][0]["time"]],
        "changed": [third.outcome(), third.rv() != first.rv(), managers(&third.body)],
        "namespace": [ns_first.outcome(), ns_first.body["status"]["phase"], ns_second.rv() == ns_first.rv()],
    })
}

pub(super) fn condition(type_: &str) -> Value {
    json!({"type": type_, "status": "True", "reason": "R", "message": "m", "lastTransitionTime": "2027-01-01T00:00:00Z"})
}

pub(super) fn partner_status(conditions: Value) -> Value {
    json!({"apiVersion": "partner-operator.io/v1alpha1", "kind": "Partner", "metadata": {"name": "s"},
        "status": {"observedGeneration": 1, "conditions": conditions}})
}

pub(super) fn condition_types(r: &Reply) -> Value {
    json!(
        r.body["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| c["type"].clone())
            .collect::<Vec<_>>()
    )
}

pub(super) async fn server_side_apply_on_status(http: Http, ns: String) -> Value {
    let base = partners(&ns);
    http.post(&base, partner("s")).await;
    let first = http
        .patch(
            &format!("{base}/s/status?fieldManager=operator"),
            APPLY,
            partner_status(json!([condition("Ready")])),
        )
        .await;
    let again = http
        .patch(
            &format!("{base}/s/status?fieldManager=operator"),
            APPLY,
            partner_status(json!([condition("Ready")])),
        )
        .await;
    json!({
        "first": [first.outcome(), condition_types(&first), first.body["spec"]["organizationName"], managers(&first.body), first.body["metadata"]["generation"]],
        "againKeepsVersion": again.rv() == first.rv(),
    })
}

/// Lists of custom resources are atomic unless their schema says `x-kubernetes-list-type: map`.
pub(super) async fn server_side_apply_atomic_lists(http: Http, ns: String) -> Value {
    let base = partners(&ns);
    http.post(&base, partner("s")).await;
    http.patch(
        &format!("{base}/s/status?fieldManager=operator"),
        APPLY,
        partner_status(json!([condition("Ready")])),
    )
    .await;
    let other = http
        .patch(
            &format!("{base}/s/status?fieldManager=other"),
            APPLY,
            partner_status(json!([condition("Other")])),
        )
        .await;
    let forced = http
        .patch(
            &format!("{base}/s/status?fieldManager=other&force=true"),
            APPLY,
            partner_status(json!([condition("Other")])),
        )
        .await;
    json!({
        "other": [other.outcome(), condition_types(&other)],
        "forced": [forced.outcome(), condition_types(&forced), managers(&forced.body)],
    })
}

pub(super) async fn create_with_server_owned_fields(http: Http, ns: String) -> Value {
    let mut with_version = cm("rv", json!({}));
    with_version["metadata"]["resourceVersion"] = json!("5");
    let with_version = http.post(&cms(&ns), with_version).await;
    let mut with_meta = cm("meta", json!({}));
    with_meta["metadata"]["uid"] = json!("00000000-0000-0000-0000-000000000001");
    with_meta["metadata"]["creationTimestamp"] = json!("2000-01-01T00:00:00Z");
    with_meta["metadata"]["deletionTimestamp"] = json!("2000-01-01T00:00:00Z");
    let with_meta = http.post(&cms(&ns), with_meta).await;
    let mut p = partner("p");
    p["metadata"]["generation"] = json!(7);
    let p = http.post(&partners(&ns), p).await;
    json!({
        "resourceVersion": with_version.outcome(),
        "meta": [with_meta.outcome(), with_meta.body["metadata"]["uid"] == "00000000-0000-0000-0000-000000000001",
            with_meta.body["metadata"]["creationTimestamp"] == "2000-01-01T00:00:00Z", with_meta.body["metadata"]["deletionTimestamp"]],
        "generation": [p.outcome(), p.body["metadata"]["generation"]],
    })
}

pub(super) async fn apply_requires_field_manager(http: Http, ns: String) -> Value {
    let reply = http
        .patch(
            &format!("{}/nomanager", cms(&ns)),
            APPLY,
            cm("nomanager", json!({})),
        )
        .await;
    let yaml = http
        .patch(
            &format!("{}/yaml?fieldManager=m", cms(&ns)),
            APPLY,
            json!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: yaml\ndata:\n  k: v\n"),
        )
        .await;
    let wrong_name = http
        .patch(
            &format!("{}/one?fieldManager=m", cms(&ns)),
            APPLY,
            cm("other", json!({})),
        )
        .await;
    json!({"withoutManager": reply.outcome(), "yaml": [yaml.outcome(), yaml.body["data"]], "nameMismatch": wrong_name.outcome()})
}
