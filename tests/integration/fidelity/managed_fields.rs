//! `metadata.managedFields`: what each write records (`"."` for maps and list items a manager
//! created, `v:` for the items of sets, an entry per manager, operation and subresource, its
//! order and times), fields owned by two managers, and writes that set `managedFields` (kubectl's
//! migration from client-side to server-side apply, the reset with `[{}]`).

use super::*;

/// The `fieldsV1` of `manager`'s entries, by operation: `{"Apply": {...}, "Update": {...}}`.
pub(super) fn fields_of(object: &Value, manager: &str) -> Value {
    let mut out = serde_json::Map::new();
    for entry in object["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["manager"] == manager)
    {
        let key = format!(
            "{}{}",
            entry["operation"].as_str().unwrap_or_default(),
            entry["subresource"]
                .as_str()
                .map(|s| format!("/{s}"))
                .unwrap_or_default()
        );
        out.insert(key, entry["fieldsV1"].clone());
    }
    Value::Object(out)
}

fn apply_shared(manager: &str, data: Value) -> (String, Value) {
    (
        format!("?fieldManager={manager}"),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "shared"}, "data": data}),
    )
}

async fn apply_each(http: &Http, path: &str, steps: &[(&str, Value)]) -> Vec<Reply> {
    let mut replies = vec![];
    for (manager, data) in steps {
        let (query, body) = apply_shared(manager, data.clone());
        replies.push(http.patch(&format!("{path}{query}"), APPLY, body).await);
    }
    replies
}

/// Two managers apply the same value to a field, so both own it; when one stops applying it,
/// the field stays, owned by the other.
pub(super) async fn ssa_shared_field_ownership(http: Http, ns: String) -> Value {
    let path = format!("{}/shared", cms(&ns));
    let steps = [
        ("a", json!({"k": "v", "a": "1"})),
        ("b", json!({"k": "v"})),
        ("a", json!({"a": "1"})),
    ];
    apply_each(&http, &path, &steps).await;
    let after = http.get(&path).await;
    json!({"data": after.body["data"], "managers": managers(&after.body),
        "a": fields_of(&after.body, "a"), "b": fields_of(&after.body, "b")})
}

/// A field two managers applied goes once both stop applying it.
pub(super) async fn ssa_shared_field_dropped_by_both(http: Http, ns: String) -> Value {
    let path = format!("{}/shared", cms(&ns));
    let steps = [
        ("a", json!({"k": "v", "a": "1"})),
        ("b", json!({"k": "v", "b": "1"})),
        ("a", json!({"a": "1"})),
        ("b", json!({"b": "1"})),
    ];
    let replies = apply_each(&http, &path, &steps).await;
    let last = &replies[3];
    json!({"data": last.body["data"], "a": fields_of(&last.body, "a"), "b": fields_of(&last.body, "b")})
}

/// A field an update took from its applier stays when the applier stops applying it; one an
/// update removed leaves its owners' entries.
pub(super) async fn ssa_fields_taken_or_removed_by_updates(http: Http, ns: String) -> Value {
    let path = format!("{}/shared", cms(&ns));
    apply_each(
        &http,
        &path,
        &[("a", json!({"k": "v", "j": "1", "r": "x"}))],
    )
    .await;
    let taken = http
        .patch(
            &format!("{path}?fieldManager=editor"),
            MERGE,
            json!({"data": {"k": "w", "r": null}}),
        )
        .await;
    let dropped = apply_each(&http, &path, &[("a", json!({"j": "1"}))]).await;
    json!({"afterUpdate": [fields_of(&taken.body, "a"), fields_of(&taken.body, "editor")],
        "afterApply": [dropped[0].body["data"], managers(&dropped[0].body)]})
}

/// Writing `managedFields` with an empty list resets field ownership (nothing else changed, so
/// no entry is left).
pub(super) async fn managed_fields_reset(http: Http, ns: String) -> Value {
    let path = format!("{}/shared", cms(&ns));
    let applied = apply_each(&http, &path, &[("a", json!({"k": "v"}))]).await;
    let mut reset = applied[0].body.clone();
    reset["metadata"]["managedFields"] = json!([]);
    let reset = http.put(&path, reset).await;
    json!([reset.outcome(), managers(&reset.body)])
}

/// `[{}]`, the reset kube-apiserver documents, clears them; an update leaving `managedFields`
/// out keeps them.
pub(super) async fn managed_fields_reset_with_an_empty_entry(http: Http, ns: String) -> Value {
    let path = format!("{}/shared", cms(&ns));
    apply_each(&http, &path, &[("a", json!({"k": "v"}))]).await;
    let kept = http
        .patch(
            &format!("{path}?fieldManager=labeller"),
            MERGE,
            json!({"metadata": {"labels": {"l": "1"}}}),
        )
        .await;
    let reset = http
        .patch(
            &format!("{path}?fieldManager=resetter"),
            MERGE,
            json!({"metadata": {"managedFields": [{}]}}),
        )
        .await;
    let after = http
        .patch(
            &format!("{path}?fieldManager=b"),
            APPLY,
            apply_shared("b", json!({"k": "other"})).1,
        )
        .await;
    json!({"kept": managers(&kept.body), "reset": [reset.outcome(), managers(&reset.body)],
        "applyAfterReset": [after.outcome(), after.body["message"], managers(&after.body)]})
}

/// kubectl's migration from client-side to server-side apply: a JSON patch that hands the
/// `kubectl-client-side-apply` entry's fields to an `Apply` entry of `kubectl`, after which
/// that apply may change and drop them without a conflict.
pub(super) async fn managed_fields_migration(http: Http, ns: String) -> Value {
    let path = format!("{}/migrated", cms(&ns));
    let created = http
        .post(
            &format!("{}?fieldManager=kubectl-client-side-apply", cms(&ns)),
            cm("migrated", json!({"a": "1", "b": "2"})),
        )
        .await;
    let mut entry = created.body["metadata"]["managedFields"][0].clone();
    entry["manager"] = json!("kubectl");
    entry["operation"] = json!("Apply");
    let migrated = http
        .patch(
            &path,
            JSON_PATCH,
            json!([
                {"op": "test", "path": "/metadata/resourceVersion", "value": created.rv()},
                {"op": "replace", "path": "/metadata/managedFields", "value": [entry]},
            ]),
        )
        .await;
    let applied = http
        .patch(
            &format!("{path}?fieldManager=kubectl"),
            APPLY,
            cm("migrated", json!({"a": "changed"})),
        )
        .await;
    json!({"migrated": [migrated.outcome(), managers(&migrated.body), fields_of(&migrated.body, "kubectl")],
        "applied": [applied.outcome(), applied.body["data"], managers(&applied.body), fields_of(&applied.body, "kubectl")]})
}

/// Entries a server cannot read (an unknown operation, no `fieldsType`) are ignored: the
/// update keeps the stored ones. An entry whose fields are empty goes.
pub(super) async fn managed_fields_written_badly(http: Http, ns: String) -> Value {
    let path = format!("{}/shared", cms(&ns));
    let applied = apply_each(&http, &path, &[("a", json!({"k": "v"}))]).await;
    let write = |entries: Value| {
        let mut object = applied[0].body.clone();
        object["metadata"]["managedFields"] = entries;
        if let Some(meta) = object["metadata"].as_object_mut() {
            meta.remove("resourceVersion");
        }
        let http = http.clone();
        let path = path.clone();
        async move {
            http.put(&format!("{path}?fieldManager=writer"), object)
                .await
        }
    };
    let entry = |operation: &str, fields_type: &str, fields: Value| json!({"manager": "x", "operation": operation, "apiVersion": "v1", "fieldsType": fields_type, "fieldsV1": fields});
    let fields = json!({"f:data": {"f:k": {}}});
    let bad_operation = write(json!([entry("Bogus", "FieldsV1", fields.clone())])).await;
    let no_type = write(json!([entry("Update", "", fields.clone())])).await;
    let empty = write(json!([
        entry("Update", "FieldsV1", json!({})),
        entry("Apply", "FieldsV1", fields)
    ]))
    .await;
    json!({"badOperation": [bad_operation.outcome(), managers(&bad_operation.body)],
        "noFieldsType": [no_type.outcome(), managers(&no_type.body)],
        "emptyFields": [empty.outcome(), managers(&empty.body)]})
}

/// An apply may not carry `managedFields`.
pub(super) async fn apply_with_managed_fields(http: Http, ns: String) -> Value {
    let mut body = cm("carrying", json!({"k": "v"}));
    body["metadata"]["managedFields"] = json!([{"manager": "x", "operation": "Apply", "apiVersion": "v1", "fieldsType": "FieldsV1", "fieldsV1": {}}]);
    let path = format!("{}/carrying?fieldManager=m", cms(&ns));
    let missing = http.patch(&path, APPLY, body.clone()).await;
    http.patch(&path, APPLY, cm("carrying", json!({"k": "v"})))
        .await;
    let existing = http.patch(&path, APPLY, body).await;
    json!({"creating": missing.outcome(), "existing": [existing.outcome(), existing.body["message"]]})
}

/// `managedFields` mark a map a manager created with a `"."` entry (`f:labels: {".": {}}`).
pub(super) async fn managed_fields_own_their_maps(http: Http, ns: String) -> Value {
    let mut object = cm("labelled", json!({"k": "v"}));
    object["metadata"]["labels"] = json!({"a": "b"});
    object["metadata"]["finalizers"] = json!(["example.com/f"]);
    let created = http.post(&cms(&ns), object).await;
    let path = format!("{}/labelled", cms(&ns));
    let added = http
        .patch(
            &format!("{path}?fieldManager=second"),
            MERGE,
            json!({"metadata": {"labels": {"c": "d"}, "annotations": {"n": "1"}}, "data": {"k": null}}),
        )
        .await;
    http.patch(&path, MERGE, json!({"metadata": {"finalizers": null}}))
        .await;
    json!({"created": created.body["metadata"]["managedFields"][0]["fieldsV1"],
        "second": fields_of(&added.body, "second")})
}

/// What an apply owns: list items by key (`k:{...}` with `"."`), the items of a set (`v:`),
/// maps without `"."`, empty maps as leaves.
pub(super) async fn managed_fields_of_an_apply(http: Http, ns: String) -> Value {
    let path = format!("{}/applied?fieldManager=m", cms(&ns));
    let mut body = cm("applied", json!({"k": "v"}));
    body["metadata"]["labels"] = json!({"a": "b"});
    body["metadata"]["annotations"] = json!({});
    body["metadata"]["finalizers"] = json!(["example.com/f"]);
    let applied = http.patch(&path, APPLY, body).await;
    http.patch(
        &format!("{}/applied", cms(&ns)),
        MERGE,
        json!({"metadata": {"finalizers": null}}),
    )
    .await;
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "nginx", "args": ["a", "b"]}]}}}});
    let deployment = http
        .patch(
            &format!("/apis/apps/v1/namespaces/{ns}/deployments/web?fieldManager=m"),
            APPLY,
            deployment,
        )
        .await;
    json!({"configMap": fields_of(&applied.body, "m"),
        "deployment": [deployment.outcome(), deployment.body["metadata"]["managedFields"][0]["fieldsV1"]["f:spec"]]})
}

/// An apply by a new manager that changes nothing still records its entry (a new version),
/// with no time; an apply that changes something sets it.
pub(super) async fn apply_agreeing_without_a_change(http: Http, ns: String) -> Value {
    let path = format!("{}/shared", cms(&ns));
    let replies = apply_each(
        &http,
        &path,
        &[
            ("a", json!({"k": "v"})),
            ("b", json!({"k": "v"})),
            ("b", json!({"k": "v"})),
        ],
    )
    .await;
    let has_time = |r: &Reply, manager: &str| {
        r.body["metadata"]["managedFields"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["manager"] == manager)
            .map(|e| e.get("time").is_some())
            .collect::<Vec<_>>()
    };
    json!({"agreeing": [managers(&replies[1].body), replies[1].rv() != replies[0].rv(),
            has_time(&replies[1], "a"), has_time(&replies[1], "b")],
        "again": replies[2].rv() == replies[1].rv()})
}

/// Entries in kube-apiserver's order: `Apply` before `Update`, then by time and manager.
pub(super) async fn managed_fields_order(http: Http, ns: String) -> Value {
    let path = format!("{}/ordered", cms(&ns));
    http.post(
        &format!("{}?fieldManager=z-creator", cms(&ns)),
        cm("ordered", json!({"c": "1"})),
    )
    .await;
    http.patch(
        &format!("{path}?fieldManager=a-first"),
        APPLY,
        cm("ordered", json!({"a": "1"})),
    )
    .await;
    let last = http
        .patch(
            &format!("{path}?fieldManager=b-second"),
            APPLY,
            cm("ordered", json!({"b": "1"})),
        )
        .await;
    json!(
        last.body["metadata"]["managedFields"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| json!([e["manager"], e["operation"]]))
            .collect::<Vec<_>>()
    )
}

/// More than ten `Update` managers: the oldest are merged into `ancient-changes`.
pub(super) async fn update_managers_capped(http: Http, ns: String) -> Value {
    let path = format!("{}/many", cms(&ns));
    http.post(
        &format!("{}?fieldManager=m00", cms(&ns)),
        cm("many", json!({"m00": "x"})),
    )
    .await;
    let mut last = None;
    for i in 1..=11 {
        let manager = format!("m{i:02}");
        last = Some(
            http.patch(
                &format!("{path}?fieldManager={manager}"),
                MERGE,
                json!({"data": {manager.clone(): "x"}}),
            )
            .await,
        );
    }
    let last = last.expect("written");
    let mut names: Vec<Value> = last.body["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| e["manager"].clone())
        .collect();
    names.sort_by_key(|n| n.to_string());
    json!({"managers": names, "ancient": fields_of(&last.body, "ancient-changes")})
}

/// The conflict messages: an `Update` manager named with its API version (and subresource),
/// several conflicts grouped by manager.
pub(super) async fn apply_conflict_messages(http: Http, ns: String) -> Value {
    let path = format!("{}/contested", cms(&ns));
    http.patch(
        &format!("{path}?fieldManager=alice"),
        APPLY,
        cm("contested", json!({"a": "1", "b": "1"})),
    )
    .await;
    http.patch(
        &format!("{path}?fieldManager=editor"),
        MERGE,
        json!({"data": {"e": "1"}}),
    )
    .await;
    let one = http
        .patch(
            &format!("{path}?fieldManager=bob"),
            APPLY,
            cm("contested", json!({"e": "2"})),
        )
        .await;
    let many = http
        .patch(
            &format!("{path}?fieldManager=bob"),
            APPLY,
            cm("contested", json!({"a": "2", "b": "2", "e": "2"})),
        )
        .await;
    let causes = |r: &Reply| {
        let mut causes: Vec<Value> = r.body["details"]["causes"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| json!([c["reason"], c["message"], c["field"]]))
            .collect();
        causes.sort_by_key(|c| c.to_string());
        causes
    };
    json!({"one": [one.outcome(), one.body["message"], causes(&one)],
        "many": [many.outcome(), many.body["message"], causes(&many)]})
}

/// An apply of nothing (its manager stops applying every field) removes the fields and the
/// manager's entry.
pub(super) async fn apply_of_nothing(http: Http, ns: String) -> Value {
    let path = format!("{}/shared", cms(&ns));
    let replies = apply_each(
        &http,
        &path,
        &[("a", json!({"k": "v"})), ("b", json!({"j": "1"}))],
    )
    .await;
    let empty = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "shared"}});
    let emptied = http
        .patch(&format!("{path}?fieldManager=a"), APPLY, empty)
        .await;
    json!([
        replies[1].outcome(),
        emptied.outcome(),
        emptied.body["data"],
        managers(&emptied.body)
    ])
}

/// A create that carries `managedFields`: they are taken, and the creator takes from them every
/// field it sets.
pub(super) async fn create_with_managed_fields(http: Http, ns: String) -> Value {
    let mut object = cm("imported", json!({"k": "v"}));
    object["metadata"]["managedFields"] = json!([
        {"manager": "imported", "operation": "Apply", "apiVersion": "v1", "fieldsType": "FieldsV1",
            "fieldsV1": {"f:data": {"f:k": {}, "f:gone": {}}}},
        {"manager": "other", "operation": "Update", "apiVersion": "v1", "fieldsType": "FieldsV1",
            "fieldsV1": {"f:data": {"f:k": {}}}}]);
    let created = http
        .post(&format!("{}?fieldManager=creator", cms(&ns)), object)
        .await;
    json!([
        created.outcome(),
        managers(&created.body),
        fields_of(&created.body, "imported"),
        fields_of(&created.body, "creator")
    ])
}

/// A conflict through `/status` with a manager that updated the status there.
pub(super) async fn apply_conflicts_on_status(http: Http, ns: String) -> Value {
    let base = partners(&ns);
    http.post(&base, partner("s")).await;
    http.patch(
        &format!("{base}/s/status?fieldManager=reporter"),
        MERGE,
        json!({"status": {"observedGeneration": 1}}),
    )
    .await;
    let mut status = partner_status(json!([]));
    status["status"] = json!({"observedGeneration": 2});
    let conflict = http
        .patch(
            &format!("{base}/s/status?fieldManager=operator"),
            APPLY,
            status.clone(),
        )
        .await;
    let forced = http
        .patch(
            &format!("{base}/s/status?fieldManager=operator&force=true"),
            APPLY,
            status,
        )
        .await;
    json!({"conflict": [conflict.outcome(), conflict.body["message"]],
        "forced": [forced.outcome(), managers(&forced.body), fields_of(&forced.body, "reporter"),
            fields_of(&forced.body, "operator")]})
}

/// `kubectl apply --server-side` over an object `kubectl apply` made: the fields its
/// last-applied annotation set, unchanged since, are taken without a conflict (not those
/// another manager changed since), and the annotation follows the applied configuration.
pub(super) async fn server_side_apply_after_client_side(http: Http, ns: String) -> Value {
    let last = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "csa", "namespace": ns}, "data": {"a": "1", "b": "2"}});
    let mut object = cm("csa", json!({"a": "1", "b": "2"}));
    object["metadata"]["annotations"] =
        json!({"kubectl.kubernetes.io/last-applied-configuration": format!("{last}\n")});
    http.post(
        &format!("{}?fieldManager=kubectl-client-side-apply", cms(&ns)),
        object,
    )
    .await;
    let path = format!("{}/csa", cms(&ns));
    http.patch(
        &format!("{path}?fieldManager=editor"),
        MERGE,
        json!({"data": {"b": "3"}}),
    )
    .await;
    let apply = |manager: &str, data: Value| {
        let (http, url) = (http.clone(), format!("{path}?fieldManager={manager}"));
        async move { http.patch(&url, APPLY, cm("csa", data)).await }
    };
    let other = apply("someone", json!({"a": "changed"})).await;
    let edited = apply("kubectl", json!({"a": "changed", "b": "4"})).await;
    let taken = apply("kubectl", json!({"a": "changed", "b": "3"})).await;
    let annotation = |r: &Reply| {
        let text =
            r.body["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
                .as_str()
                .unwrap_or_default()
                .to_string();
        json!([
            serde_json::from_str::<Value>(&text).unwrap_or(Value::Null),
            text.ends_with('\n')
        ])
    };
    json!({"otherManager": other.outcome(), "changedSince": [edited.outcome(), edited.body["message"]],
        "taken": [taken.outcome(), taken.body["data"], managers(&taken.body),
            fields_of(&taken.body, "kubectl-client-side-apply"), annotation(&taken)]})
}
