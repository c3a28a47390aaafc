//! Server-side apply of lists and structs by their types: keyed lists item by item (by
//! their keys: ports by number and protocol, volume mounts by path, a custom resource's as its
//! schema says), sets value by value, atomic lists and label selectors whole.

use super::*;

fn deployment(containers: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": containers}}}})
}

/// Items of a keyed list: one another manager applied too stays when its first applier drops
/// it; `force` takes a field of an item from the others.
pub(super) async fn ssa_shared_list_items(http: Http, ns: String) -> Value {
    let path = format!("/apis/apps/v1/namespaces/{ns}/deployments/web");
    let web = json!({"name": "web", "image": "nginx"});
    let side = json!({"name": "side", "image": "busybox"});
    let apply = |manager: &str, body: Value, force: bool| {
        let (http, url) = (
            http.clone(),
            format!("{path}?fieldManager={manager}&force={force}"),
        );
        async move { http.patch(&url, APPLY, body).await }
    };
    apply("a", deployment(json!([web, side])), false).await;
    let only_web = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"template": {"spec": {"containers": [web]}}}});
    apply("b", only_web, false).await;
    let dropped = apply("a", deployment(json!([side])), false).await;
    let containers = |r: &Reply| {
        json!(
            r.body["spec"]["template"]["spec"]["containers"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| json!([c["name"], c["image"]]))
                .collect::<Vec<_>>()
        )
    };
    let template = |r: &Reply, manager: &str| {
        fields_of(&r.body, manager)["Apply"]["f:spec"]["f:template"]["f:spec"].clone()
    };
    let image = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:2"}]}}}});
    let conflict = apply("c", image.clone(), false).await;
    let forced = apply("c", image, true).await;
    json!({"dropped": [dropped.outcome(), containers(&dropped), template(&dropped, "a"), template(&dropped, "b")],
        "conflict": [conflict.outcome(), conflict.body["message"]],
        "forced": [forced.outcome(), containers(&forced), template(&forced, "b"), template(&forced, "c")]})
}

/// Container ports, keyed by port and protocol.
pub(super) async fn managed_fields_of_ports(http: Http, ns: String) -> Value {
    let path = format!("/apis/apps/v1/namespaces/{ns}/deployments/web?fieldManager=m");
    let containers = json!([{"name": "web", "image": "nginx",
        "ports": [{"containerPort": 80}, {"containerPort": 53, "protocol": "UDP"},
            {"containerPort": 53, "protocol": "TCP"}]}]);
    let applied = http.patch(&path, APPLY, deployment(containers)).await;
    let ports: Vec<Value> = applied.body["spec"]["template"]["spec"]["containers"][0]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| p["containerPort"].clone())
        .collect();
    // The protocol a port was given (kube-apiserver defaults the others': `builtin-defaults`).
    json!([
        applied.outcome(),
        ports,
        fields_of(&applied.body, "m")["Apply"]["f:spec"]["f:template"]["f:spec"]["f:containers"]
    ])
}

/// A set (`metadata.finalizers`) merges item by item: an apply keeps the items others added,
/// and removes only its own.
pub(super) async fn ssa_sets_merge_as_sets(http: Http, ns: String) -> Value {
    let path = format!("{}/finalized", cms(&ns));
    let applied = |finalizers: Value| {
        let mut body = cm("finalized", json!({"k": "v"}));
        body["metadata"]["finalizers"] = finalizers;
        body
    };
    let apply = |body: Value| {
        let (http, url) = (http.clone(), format!("{path}?fieldManager=a"));
        async move { http.patch(&url, APPLY, body).await }
    };
    apply(applied(json!(["example.com/a"]))).await;
    http.patch(
        &format!("{path}?fieldManager=controller"),
        MERGE,
        json!({"metadata": {"finalizers": ["example.com/a", "example.com/b"]}}),
    )
    .await;
    let again = apply(applied(json!(["example.com/a", "example.com/c"]))).await;
    let dropped = apply(applied(json!([]))).await;
    http.patch(&path, MERGE, json!({"metadata": {"finalizers": null}}))
        .await;
    json!({"again": [again.body["metadata"]["finalizers"], fields_of(&again.body, "controller"), fields_of(&again.body, "a")],
        "dropped": [dropped.body["metadata"]["finalizers"], managers(&dropped.body)]})
}

/// Lists of a custom resource as its schema types them: a map keyed by two fields merges item
/// by item, a set value by value, a list without a type is atomic (a conflict, then replaced).
pub(super) async fn ssa_list_types_of_custom_resources(http: Http, ns: String) -> Value {
    let crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
    let crd = fidelity_crd(
        "Listing",
        None,
        json!({
            "byName": {"type": "array", "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["name", "zone"],
                "items": {"type": "object", "required": ["name", "zone"], "properties": {
                    "name": {"type": "string"}, "zone": {"type": "string"}, "size": {"type": "integer"}}}},
            "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
            "plain": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
        }),
    );
    let created = http.post(crds, crd).await;
    let listings = format!("/apis/fidelity.example/v1/namespaces/{ns}/listings");
    http.until(&listings, Patience::API_SERVER, |r| r.code == 200)
        .await;
    let apply = |manager: &str, spec: Value, force: bool| {
        let (http, url) = (
            http.clone(),
            format!("{listings}/l?fieldManager={manager}&force={force}"),
        );
        let body = json!({"apiVersion": "fidelity.example/v1", "kind": "Listing",
            "metadata": {"name": "l"}, "spec": spec});
        async move { http.patch(&url, APPLY, body).await }
    };
    let spec = |zone: &str, tag: &str, plain: &str| json!({"byName": [{"name": "x", "zone": zone, "size": 1}], "tags": [tag], "plain": [{"name": plain}]});
    let first = apply("a", spec("east", "t1", "p1"), false).await;
    let conflict = apply("b", spec("west", "t2", "p2"), false).await;
    let forced = apply("b", spec("west", "t2", "p2"), true).await;
    let dropped = apply(
        "a",
        json!({"byName": [{"name": "x", "zone": "east", "size": 1}]}),
        false,
    )
    .await;
    http.delete(&format!("{crds}/listings.fidelity.example"))
        .await;
    json!({"crd": created.code, "first": [first.outcome(), fields_of(&first.body, "a")],
        "conflict": [conflict.outcome(), conflict.body["message"]],
        "forced": [forced.outcome(), forced.body["spec"], fields_of(&forced.body, "a"), fields_of(&forced.body, "b")],
        "dropped": [dropped.outcome(), dropped.body["spec"]]})
}

/// Volume mounts, keyed by their path (two mounts of one volume are two items), and label
/// selectors inside a pod template, atomic.
pub(super) async fn managed_fields_of_mounts(http: Http, ns: String) -> Value {
    let path = format!("/apis/apps/v1/namespaces/{ns}/deployments/web?fieldManager=m");
    let mut body = deployment(json!([{"name": "web", "image": "nginx",
        "volumeMounts": [{"name": "v", "mountPath": "/a"}, {"name": "v", "mountPath": "/b"}]}]));
    body["spec"]["template"]["spec"]["volumes"] = json!([{"name": "v", "emptyDir": {}}]);
    body["spec"]["template"]["spec"]["topologySpreadConstraints"] = json!([{"maxSkew": 1,
        "topologyKey": "zone", "whenUnsatisfiable": "ScheduleAnyway",
        "labelSelector": {"matchLabels": {"app": "web"}}}]);
    let applied = http.patch(&path, APPLY, body).await;
    let template = &fields_of(&applied.body, "m")["Apply"]["f:spec"]["f:template"]["f:spec"];
    json!([
        applied.outcome(),
        template["f:containers"],
        template["f:volumes"],
        template["f:topologySpreadConstraints"]
    ])
}

/// A RoleBinding's `subjects` is atomic: another manager's different list conflicts, and with
/// `force` replaces it.
pub(super) async fn ssa_atomic_subjects(http: Http, ns: String) -> Value {
    let path = format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings/rb");
    let binding = |user: &str| {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "rb"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"},
            "subjects": [{"kind": "User", "name": user, "apiGroup": "rbac.authorization.k8s.io"}]})
    };
    let first = http
        .patch(&format!("{path}?fieldManager=a"), APPLY, binding("alice"))
        .await;
    let other = http
        .patch(&format!("{path}?fieldManager=b"), APPLY, binding("bob"))
        .await;
    let forced = http
        .patch(
            &format!("{path}?fieldManager=b&force=true"),
            APPLY,
            binding("bob"),
        )
        .await;
    let names = |r: &Reply| {
        json!(
            r.body["subjects"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| s["name"].clone())
                .collect::<Vec<_>>()
        )
    };
    json!({"first": [first.outcome(), fields_of(&first.body, "a")],
        "other": [other.outcome(), other.body["message"]],
        "forced": [forced.outcome(), names(&forced), managers(&forced.body)]})
}
