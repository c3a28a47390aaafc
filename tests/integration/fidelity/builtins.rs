//! The built-in kinds the operator and the chart write: Events, Leases, Secrets, ConfigMaps,
//! defaults and garbage collection.

use super::*;

pub(super) async fn events_in_both_apis(http: Http, ns: String) -> Value {
    let new_api = format!("/apis/events.k8s.io/v1/namespaces/{ns}/events");
    let core_api = format!("/api/v1/namespaces/{ns}/events");
    let written = http
        .post(
            &new_api,
            json!({
                "apiVersion": "events.k8s.io/v1", "kind": "Event",
                "metadata": {"name": "new-style"},
                "eventTime": "2027-03-01T09:00:00.000000Z",
                "reportingController": "partner-operator.io/controller", "reportingInstance": "replica-1",
                "action": "Provision", "reason": "TenantProvisioned", "type": "Normal", "note": "provisioned the tenant",
                "regarding": {"apiVersion": "partner-operator.io/v1alpha1", "kind": "Partner", "namespace": ns, "name": "contoso"},
            }),
        )
        .await;
    let as_core = http.get(&format!("{core_api}/new-style")).await;
    let old = http
        .post(
            &core_api,
            json!({
                "metadata": {"name": "old-style"},
                "involvedObject": {"kind": "Partner", "namespace": ns, "name": "contoso"},
                "reason": "Converted", "message": "converted to production", "type": "Normal",
                "source": {"component": "partner-operator"}, "count": 2,
                "firstTimestamp": "2027-03-01T09:00:00Z", "lastTimestamp": "2027-03-01T09:05:00Z",
            }),
        )
        .await;
    let as_new = http.get(&format!("{new_api}/old-style")).await;
    let core_list = http.get(&core_api).await;
    let new_list = http.get(&new_api).await;
    let missing_time = http
        .post(
            &new_api,
            json!({"metadata": {"name": "no-time"}, "reason": "R", "type": "Normal", "action": "A",
                "reportingController": "x.io/c", "reportingInstance": "i", "regarding": {"kind": "Partner", "name": "c", "namespace": ns}}),
        )
        .await;
    json!({
        "written": written.outcome(),
        "asCore": [as_core.outcome(), as_core.body["message"], as_core.body["reason"], as_core.body["involvedObject"]["name"],
            as_core.body["reportingComponent"], as_core.body["reportingInstance"], as_core.body["action"]],
        "old": old.outcome(),
        "asNew": [as_new.outcome(), as_new.body["note"], as_new.body["regarding"]["name"], as_new.body["deprecatedCount"],
            as_new.body["deprecatedSource"]["component"]],
        "coreList": names(&core_list), "newList": names(&new_list),
        "newApiValidation": missing_time.outcome(),
    })
}

pub(super) async fn event_series_patched_through_events_api(http: Http, ns: String) -> Value {
    let new_api = format!("/apis/events.k8s.io/v1/namespaces/{ns}/events");
    http.post(
        &new_api,
        json!({
            "metadata": {"name": "repeated"}, "eventTime": "2027-03-01T09:00:00.000000Z",
            "reportingController": "partner-operator.io/controller", "reportingInstance": "r",
            "action": "Reconcile", "reason": "ReconcileFailed", "type": "Warning", "note": "failed",
            "regarding": {"kind": "Partner", "namespace": ns, "name": "contoso"},
        }),
    )
    .await;
    let patched = http
        .patch(
            &format!("{new_api}/repeated"),
            MERGE,
            json!({"series": {"count": 2, "lastObservedTime": "2027-03-01T09:05:00.000000Z"}}),
        )
        .await;
    let core = http
        .get(&format!("/api/v1/namespaces/{ns}/events/repeated"))
        .await;
    let watch = http
        .get(&format!("{new_api}?watch=true&timeoutSeconds=1"))
        .await;
    json!({
        "patched": [patched.outcome(), patched.body["series"], patched.body["note"], patched.body["apiVersion"]],
        "core": [core.body["series"], core.body["message"], core.body["apiVersion"]],
        "watch": watch.body.as_array().map(|events| events.iter().map(|e| json!([e["type"], e["object"]["apiVersion"], e["object"]["note"]])).collect::<Vec<_>>()),
    })
}

/// The kinds the Helm chart installs, created as Helm does.
pub(super) async fn chart_kinds(http: Http, ns: String) -> Value {
    let rules = json!([{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]);
    let subjects = json!([{"kind": "ServiceAccount", "name": "op", "namespace": ns}]);
    let cluster_role = format!("{ns}-role");
    let objects = [
        (
            format!("/api/v1/namespaces/{ns}/serviceaccounts"),
            json!({"metadata": {"name": "op"}}),
        ),
        (
            format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles"),
            json!({"metadata": {"name": "op"}, "rules": rules}),
        ),
        (
            format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings"),
            json!({"metadata": {"name": "op"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "op"}, "subjects": subjects}),
        ),
        (
            "/apis/rbac.authorization.k8s.io/v1/clusterroles".to_string(),
            json!({"metadata": {"name": cluster_role}, "rules": rules}),
        ),
        (
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings".to_string(),
            json!({"metadata": {"name": cluster_role}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cluster_role}, "subjects": subjects}),
        ),
        (
            format!("/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets"),
            json!({"metadata": {"name": "op"}, "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "op"}}}}),
        ),
        (
            format!("/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies"),
            json!({"metadata": {"name": "op"}, "spec": {"podSelector": {"matchLabels": {"app": "op"}}, "policyTypes": ["Ingress"]}}),
        ),
    ];
    let mut out = vec![];
    for (path, object) in objects {
        let created = http.post(&path, object).await;
        out.push(json!([
            created.outcome(),
            created.body["kind"],
            created.body["metadata"]["generation"]
        ]));
    }
    out.push(json!(
        http.get(&format!(
            "/apis/rbac.authorization.k8s.io/v1/clusterroles/{cluster_role}"
        ))
        .await
        .body["rules"]
    ));
    json!(out)
}

pub(super) async fn built_in_defaults(http: Http, ns: String) -> Value {
    let service = http
        .post(
            &format!("/api/v1/namespaces/{ns}/services"),
            json!({"metadata": {"name": "metrics"}, "spec": {"ports": [{"port": 8080}], "selector": {"app": "op"}}}),
        )
        .await;
    let deployment = http
        .post(
            &format!("/apis/apps/v1/namespaces/{ns}/deployments"),
            json!({"metadata": {"name": "op"}, "spec": {"selector": {"matchLabels": {"app": "op"}},
                "template": {"metadata": {"labels": {"app": "op"}}, "spec": {"containers": [{"name": "op", "image": "op:1"}]}}}}),
        )
        .await;
    json!({
        "service": [service.outcome(), service.body["spec"]["type"], service.body["spec"]["ports"][0]["protocol"], service.body["spec"]["ports"][0]["targetPort"],
            service.body["spec"]["clusterIP"].is_string()],
        "deployment": [deployment.outcome(), deployment.body["spec"]["replicas"], deployment.body["spec"]["strategy"]["type"],
            deployment.body["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"]],
    })
}

pub(super) async fn garbage_collection(http: Http, ns: String) -> Value {
    let owner = http.post(&cms(&ns), cm("owner", json!({}))).await;
    let mut dependent = cm("dependent", json!({}));
    dependent["metadata"]["ownerReferences"] = json!([{"apiVersion": "v1", "kind": "ConfigMap",
        "name": "owner", "uid": owner.body["metadata"]["uid"]}]);
    http.post(&cms(&ns), dependent).await;
    http.delete(&format!("{}/owner", cms(&ns))).await;
    let dependent = http
        .until(
            &format!("{}/dependent", cms(&ns)),
            Patience::API_SERVER,
            |r| r.code == 404,
        )
        .await;
    json!({"dependentAfterOwnerDeleted": dependent.outcome()})
}

pub(super) async fn leases(http: Http, ns: String) -> Value {
    let path = format!("/apis/coordination.k8s.io/v1/namespaces/{ns}/leases");
    let created = http
        .post(
            &path,
            json!({"metadata": {"name": "leader"}, "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15,
                "acquireTime": "2027-03-01T09:00:00.000000Z", "renewTime": "2027-03-01T09:00:00.000000Z", "leaseTransitions": 0}}),
        )
        .await;
    let mut renewed = created.body.clone();
    renewed["spec"]["renewTime"] = json!("2027-03-01T09:00:05.123456Z");
    let renew = http.put(&format!("{path}/leader"), renewed.clone()).await;
    renewed["spec"]["holderIdentity"] = json!("b");
    let stale = http.put(&format!("{path}/leader"), renewed).await;
    json!({"create": created.outcome(), "spec": created.body["spec"], "renew": [renew.outcome(), renew.body["spec"]["renewTime"]],
        "staleTakeover": stale.outcome()})
}

pub(super) async fn secrets(http: Http, ns: String) -> Value {
    let path = format!("/api/v1/namespaces/{ns}/secrets");
    let created = http
        .post(
            &path,
            json!({"metadata": {"name": "s"}, "data": {"a": "YQ==", "b": "Yg=="}, "stringData": {"b": "bee", "c": "see"}}),
        )
        .await;
    let immutable = http
        .post(
            &path,
            json!({"metadata": {"name": "frozen"}, "immutable": true, "stringData": {"k": "v"}}),
        )
        .await;
    let change = http
        .patch(
            &format!("{path}/frozen"),
            MERGE,
            json!({"data": {"k": "dw=="}}),
        )
        .await;
    let thaw = http
        .patch(
            &format!("{path}/frozen"),
            MERGE,
            json!({"immutable": false}),
        )
        .await;
    let relabel = http
        .patch(
            &format!("{path}/frozen"),
            MERGE,
            json!({"metadata": {"labels": {"ok": "yes"}}}),
        )
        .await;
    let bad_key = http
        .post(
            &path,
            json!({"metadata": {"name": "bad"}, "stringData": {"no/slash": "v"}}),
        )
        .await;
    let bad_base64 = http
        .post(
            &path,
            json!({"metadata": {"name": "bad64"}, "data": {"k": "not base64!"}}),
        )
        .await;
    json!({
        "create": [created.outcome(), created.body["data"], created.body.get("stringData").is_some(), created.body["type"]],
        "immutable": immutable.outcome(), "changeImmutable": change.outcome(), "thaw": thaw.outcome(),
        "relabelImmutable": relabel.outcome(), "badKey": bad_key.outcome(), "badBase64": bad_base64.outcome(),
    })
}

pub(super) async fn immutable_config_maps(http: Http, ns: String) -> Value {
    let mut object = cm("frozen", json!({"k": "v"}));
    object["immutable"] = json!(true);
    let created = http.post(&cms(&ns), object).await;
    let change = http
        .patch(
            &format!("{}/frozen", cms(&ns)),
            MERGE,
            json!({"data": {"k": "w"}}),
        )
        .await;
    json!({"create": created.outcome(), "change": change.outcome()})
}

/// `kubectl scale deployment`: the Deployment's `autoscaling/v1` Scale, read, patched and
/// replaced, and what it does to the Deployment.
pub(super) async fn deployment_scale(http: Http, ns: String) -> Value {
    let deployments = format!("/apis/apps/v1/namespaces/{ns}/deployments");
    http.post(
        &deployments,
        json!({"metadata": {"name": "web"}, "spec": {"replicas": 1,
            "selector": {"matchLabels": {"app": "web", "tier": "front"}},
            "template": {"metadata": {"labels": {"app": "web", "tier": "front"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}}),
    )
    .await;
    let scale = format!("{deployments}/web/scale");
    let read = http.get(&scale).await;
    let patched = http
        .patch(&scale, MERGE, json!({"spec": {"replicas": 3}}))
        .await;
    let after_patch = http.get(&format!("{deployments}/web")).await;
    let mut replaced = patched.body.clone();
    replaced["spec"]["replicas"] = json!(2);
    let replaced = http.put(&scale, replaced).await;
    let after_put = http.get(&format!("{deployments}/web")).await;
    let missing = http.get(&format!("{deployments}/absent/scale")).await;
    let not_scalable = http
        .get(&format!("/api/v1/namespaces/{ns}/configmaps/x/scale"))
        .await;
    json!({
        "read": [read.outcome(), read.body["kind"], read.body["apiVersion"], read.body["spec"],
            read.body["status"]["selector"], read.body["metadata"]["name"]],
        "patched": [patched.outcome(), patched.body["spec"]["replicas"], after_patch.body["spec"]["replicas"],
            after_patch.body["metadata"]["generation"]],
        "replaced": [replaced.outcome(), replaced.body["spec"]["replicas"], after_put.body["spec"]["replicas"]],
        "missing": [missing.outcome(), missing.body["message"]],
        "notScalable": not_scalable.outcome(),
    })
}
