//! Lists: chunking, selectors, and Tables as `kubectl get` asks for them.

use super::*;

pub(super) async fn list_chunking(http: Http, ns: String) -> Value {
    for name in ["a", "b", "c", "d", "e"] {
        http.post(&cms(&ns), cm(name, json!({}))).await;
    }
    let mut pages = vec![];
    let mut token = String::new();
    loop {
        let page = http
            .get(&format!("{}?limit=2&continue={token}", cms(&ns)))
            .await;
        pages.push(json!([
            page.outcome(),
            names(&page),
            page.body["metadata"]["remainingItemCount"]
        ]));
        match page.body["metadata"]["continue"].as_str() {
            Some(next) if !next.is_empty() && pages.len() < 5 => token = next.to_string(),
            _ => break,
        }
    }
    // With a selector, no count of what remains (kube-apiserver cannot know it cheaply).
    let selected = http
        .get(&format!(
            "{}?limit=2&fieldSelector=metadata.name!=c",
            cms(&ns)
        ))
        .await;
    pages.push(json!([
        selected.outcome(),
        names(&selected),
        selected.body["metadata"]["remainingItemCount"],
        selected.body["metadata"]["continue"].is_string()
    ]));
    let bad_token = http
        .get(&format!("{}?limit=2&continue=garbage", cms(&ns)))
        .await;
    let all = http.get(&cms(&ns)).await;
    json!({"pages": pages, "badToken": bad_token.outcome(),
        "unpaged": [names(&all), all.body["metadata"]["continue"], all.body["kind"], all.body["apiVersion"]]})
}

pub(super) async fn selectors(http: Http, ns: String) -> Value {
    for (name, tier) in [("a", Some("web")), ("b", Some("db")), ("c", None)] {
        let mut object = cm(name, json!({}));
        if let Some(tier) = tier {
            object["metadata"]["labels"] = json!({"tier": tier});
        }
        http.post(&cms(&ns), object).await;
    }
    let list = |query: &str| {
        let http = http.clone();
        let path = format!("{}?{query}", cms(&ns));
        async move {
            let reply = http.get(&path).await;
            json!([reply.outcome(), names(&reply)])
        }
    };
    json!({
        "equals": list("labelSelector=tier%3Dweb").await,
        "notEquals": list("labelSelector=tier!%3Dweb").await,
        "in": list("labelSelector=tier+in+(web,db)").await,
        "exists": list("labelSelector=tier").await,
        "notExists": list("labelSelector=!tier").await,
        "fieldName": list("fieldSelector=metadata.name%3Db").await,
        "fieldNamespace": list(&format!("fieldSelector=metadata.namespace%3D{ns}")).await,
        "badLabelSelector": list("labelSelector=tier%3D%3D%3D").await,
    })
}

pub(super) async fn unsupported_field_selector(http: Http, ns: String) -> Value {
    http.post(&cms(&ns), cm("a", json!({"k": "v"}))).await;
    let reply = http
        .get(&format!("{}?fieldSelector=data.k%3Dv", cms(&ns)))
        .await;
    json!([reply.outcome(), names(&reply)])
}

pub(super) async fn get_and_list_as_table(http: Http, ns: String) -> Value {
    http.post(&partners(&ns), partner("tabled")).await;
    http.post(&cms(&ns), cm("x", json!({"k": "v"}))).await;
    let summary = |reply: Reply| {
        let columns: Vec<Value> = reply.body["columnDefinitions"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| json!([c["name"], c["type"], c["priority"]]))
            .collect();
        let first = &reply.body["rows"][0];
        json!({"code": reply.code, "kind": reply.body["kind"], "columns": columns,
            "firstCells": first["cells"].as_array().map(|c| c.iter().take(c.len().saturating_sub(1)).cloned().collect::<Vec<_>>()),
            "rowObjectKind": first["object"]["kind"]})
    };
    let partner_list = http.get_as(&partners(&ns), TABLE).await;
    let partner_get = http
        .get_as(&format!("{}/tabled", partners(&ns)), TABLE)
        .await;
    let cm_list = http.get_as(&cms(&ns), TABLE).await;
    json!({"partners": summary(partner_list), "partner": summary(partner_get), "configMaps": summary(cm_list)})
}

/// `kubectl get` of the built-in kinds the operator writes: the columns of their Tables.
pub(super) async fn built_in_tables(http: Http, ns: String) -> Value {
    http.post(
        &format!("/api/v1/namespaces/{ns}/secrets"),
        json!({"metadata": {"name": "s"}, "stringData": {"k": "v"}}),
    )
    .await;
    http.post(
        &format!("/apis/coordination.k8s.io/v1/namespaces/{ns}/leases"),
        json!({"metadata": {"name": "l"}, "spec": {"holderIdentity": "a"}}),
    )
    .await;
    http.post(
        &format!("/api/v1/namespaces/{ns}/events"),
        json!({"metadata": {"name": "e"}, "involvedObject": {"kind": "Partner", "namespace": ns, "name": "contoso"},
            "reason": "TenantProvisioned", "message": "provisioned", "type": "Normal",
            "source": {"component": "partner-operator"}, "lastTimestamp": "2027-03-01T09:00:00Z"}),
    )
    .await;
    let columns = |reply: Reply| {
        let column_names: Vec<Value> = reply.body["columnDefinitions"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| c["name"].clone())
            .collect();
        // Ages depend on when the row was read, a second either way.
        let first_row: Vec<Value> = reply.body["rows"][0]["cells"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
            .skip(1)
            .map(|(i, cell)| match column_names.get(i) {
                Some(name) if name == "Age" => json!("<age>"),
                _ => cell.clone(),
            })
            .collect();
        let names: Vec<Value> = reply.body["columnDefinitions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["priority"] == 0)
            .map(|c| c["name"].clone())
            .collect();
        // The first cell is a name or an age; the others are compared.
        json!([reply.code, names, first_row])
    };
    json!({
        "namespaces": columns(http.get_as(&format!("/api/v1/namespaces/{ns}"), TABLE).await),
        "secrets": columns(http.get_as(&format!("/api/v1/namespaces/{ns}/secrets"), TABLE).await),
        "leases": columns(http.get_as(&format!("/apis/coordination.k8s.io/v1/namespaces/{ns}/leases"), TABLE).await),
        "events": columns(http.get_as(&format!("/api/v1/namespaces/{ns}/events"), TABLE).await),
    })
}

/// `kubectl get` over more objects than one chunk: each Table page carries the continue token
/// and the count of what remains, so every row is shown.
pub(super) async fn table_pages(http: Http, ns: String) -> Value {
    for name in ["a", "b", "c", "d", "e"] {
        http.post(&cms(&ns), cm(name, json!({}))).await;
    }
    let mut pages = vec![];
    let mut token = String::new();
    loop {
        let page = http
            .get_as(&format!("{}?limit=2&continue={token}", cms(&ns)), TABLE)
            .await;
        let rows: Vec<Value> = page.body["rows"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| r["cells"][0].clone())
            .collect();
        pages.push(json!([
            page.outcome(),
            page.body["kind"],
            rows,
            page.body["metadata"]["remainingItemCount"]
        ]));
        match page.body["metadata"]["continue"].as_str() {
            Some(next) if !next.is_empty() && pages.len() < 5 => token = next.to_string(),
            _ => break,
        }
    }
    json!(pages)
}

/// `includeObject` in a Table request: the whole object (what `kubectl get --sort-by` sorts
/// on), the metadata alone (the default), nothing, or an unknown value refused.
pub(super) async fn table_include_object(http: Http, ns: String) -> Value {
    http.post(&cms(&ns), cm("x", json!({"k": "v"}))).await;
    http.post(
        &format!("/api/v1/namespaces/{ns}/events"),
        json!({"metadata": {"name": "e"}, "involvedObject": {"kind": "ConfigMap", "namespace": ns, "name": "x"},
            "reason": "Seen", "message": "seen", "type": "Normal", "lastTimestamp": "2027-03-01T09:00:00Z"}),
    )
    .await;
    let row_object = |include: &str| {
        let http = http.clone();
        let path = format!("{}?includeObject={include}", cms(&ns));
        async move {
            let reply = http.get_as(&path, TABLE).await;
            let object = &reply.body["rows"][0]["object"];
            json!([
                reply.outcome(),
                object["kind"],
                object["apiVersion"],
                object["data"],
                object["metadata"]["name"],
                object.is_null(),
                reply.body["message"]
            ])
        }
    };
    let single = http
        .get_as(&format!("{}/x?includeObject=Object", cms(&ns)), TABLE)
        .await;
    let events = http
        .get_as(
            &format!("/api/v1/namespaces/{ns}/events?includeObject=Object"),
            TABLE,
        )
        .await;
    let event = &events.body["rows"][0]["object"];
    json!({
        "object": row_object("Object").await,
        "metadata": row_object("Metadata").await,
        "none": row_object("None").await,
        "unknown": row_object("Everything").await,
        "get": [single.outcome(), single.body["rows"][0]["object"]["data"]],
        "events": [events.outcome(), event["kind"], event["lastTimestamp"], event["reason"]],
        "withoutTable": http.get(&format!("{}?includeObject=Everything", cms(&ns))).await.outcome(),
    })
}

/// A read at a resourceVersion the server has not reached: 504, to be retried a second later.
pub(super) async fn reads_at_a_future_version(http: Http, ns: String) -> Value {
    http.post(&cms(&ns), cm("x", json!({}))).await;
    let answer = |reply: Reply| {
        let message = reply.body["message"].as_str().unwrap_or_default();
        json!([
            reply.outcome(),
            message.split(':').next(),
            reply.body["details"]["causes"],
            reply.body["details"]["retryAfterSeconds"]
        ])
    };
    let far = "900000000";
    let get = http
        .get_once(&format!("{}/x?resourceVersion={far}", cms(&ns)))
        .await;
    let list = http
        .get_once(&format!("{}?resourceVersion={far}", cms(&ns)))
        .await;
    let current = http.get(&format!("{}/x?resourceVersion=0", cms(&ns))).await;
    json!({"get": answer(get), "list": answer(list), "atZero": current.outcome()})
}

/// `resourceVersionMatch`, checked as kube-apiserver checks it, and a list at the exact
/// version the objects are at.
pub(super) async fn list_version_options(http: Http, ns: String) -> Value {
    http.post(&cms(&ns), cm("x", json!({}))).await;
    let at = http.get(&cms(&ns)).await.rv();
    let list = |query: String| {
        let http = http.clone();
        let path = format!("{}?{query}", cms(&ns));
        async move {
            let reply = http.get(&path).await;
            json!([reply.outcome(), reply.body["message"], names(&reply)])
        }
    };
    json!({
        "withoutVersion": list("resourceVersionMatch=NotOlderThan".into()).await,
        "unknown": list("resourceVersion=0&resourceVersionMatch=Newest".into()).await,
        "exactAtZero": list("resourceVersion=0&resourceVersionMatch=Exact".into()).await,
        "withContinue": list("resourceVersion=1&resourceVersionMatch=Exact&continue=abc".into()).await,
        "exactNow": list(format!("resourceVersion={at}&resourceVersionMatch=Exact")).await,
        "notOlderThan": list(format!("resourceVersion={at}&resourceVersionMatch=NotOlderThan")).await,
        "watchWithoutInitialEvents": list("watch=true&resourceVersionMatch=NotOlderThan&timeoutSeconds=1".into()).await,
    })
}

/// A list at an exact version some objects have changed since: the objects as they were.
pub(super) async fn list_at_an_exact_past_version(http: Http, ns: String) -> Value {
    let at = http.post(&cms(&ns), cm("x", json!({}))).await.rv();
    http.post(&cms(&ns), cm("y", json!({}))).await;
    let reply = http
        .get(&format!(
            "{}?resourceVersion={at}&resourceVersionMatch=Exact",
            cms(&ns)
        ))
        .await;
    json!([reply.outcome(), names(&reply)])
}

/// The pages of a list are one snapshot: what changed after the first page does not show on
/// the next ones, and they carry the first page's version.
pub(super) async fn continued_lists_are_a_snapshot(http: Http, ns: String) -> Value {
    for name in ["a", "b", "c", "d"] {
        http.post(&cms(&ns), cm(name, json!({"k": "before"}))).await;
    }
    let first = http.get(&format!("{}?limit=2", cms(&ns))).await;
    http.post(&cms(&ns), cm("bb", json!({}))).await;
    http.delete(&format!("{}/d", cms(&ns))).await;
    http.patch(
        &format!("{}/c", cms(&ns)),
        MERGE,
        json!({"data": {"k": "after"}}),
    )
    .await;
    let token = first.body["metadata"]["continue"]
        .as_str()
        .unwrap_or_default();
    let second = http
        .get(&format!("{}?limit=2&continue={token}", cms(&ns)))
        .await;
    let data: Vec<Value> = second.body["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| i["data"]["k"].clone())
        .collect();
    json!({"first": names(&first), "second": [second.outcome(), names(&second), data,
        second.body["metadata"]["resourceVersion"] == first.body["metadata"]["resourceVersion"],
        second.body["metadata"]["continue"]]})
}

/// `kubectl get` of more built-in kinds: the columns kube-apiserver's printers give them, wide
/// ones included, and their cells (ages, creation times and allocated cluster IPs aside).
pub(super) async fn more_built_in_tables(http: Http, ns: String) -> Value {
    let apps = format!("/apis/apps/v1/namespaces/{ns}/deployments");
    http.post(&apps, json!({"metadata": {"name": "web"}, "spec": {"replicas": 2,
        "selector": {"matchLabels": {"app": "web", "tier": "front"}},
        "template": {"metadata": {"labels": {"app": "web", "tier": "front"}}, "spec": {"containers": [
            {"name": "web", "image": "nginx:1"}, {"name": "log", "image": "busybox:1"}]}}}}))
        .await;
    let services = format!("/api/v1/namespaces/{ns}/services");
    http.post(
        &services,
        json!({"metadata": {"name": "web"}, "spec": {"selector": {"app": "web"},
        "ports": [{"name": "http", "port": 80}, {"name": "dns", "port": 53, "protocol": "UDP"}]}}),
    )
    .await;
    http.post(
        &services,
        json!({"metadata": {"name": "out"}, "spec": {"type": "ExternalName",
        "externalName": "example.com"}}),
    )
    .await;
    let rbac = format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}");
    http.post(
        &format!("{rbac}/roles"),
        json!({"metadata": {"name": "reader"}, "rules": []}),
    )
    .await;
    http.post(
        &format!("{rbac}/rolebindings"),
        json!({"metadata": {"name": "readers"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
        "subjects": [{"kind": "User", "name": "alice", "apiGroup": "rbac.authorization.k8s.io"},
            {"kind": "Group", "name": "ops", "apiGroup": "rbac.authorization.k8s.io"},
            {"kind": "ServiceAccount", "name": "bot", "namespace": ns}]}),
    )
    .await;
    let table = |reply: Reply| {
        let columns: Vec<Value> = reply.body["columnDefinitions"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| json!([c["name"], c["type"], c["priority"]]))
            .collect();
        let rows: Vec<Value> = reply.body["rows"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|row| {
                json!(
                    row["cells"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .enumerate()
                        .map(|(i, cell)| {
                            match columns.get(i).and_then(|c| c[0].as_str()) {
                                Some("Age" | "Created At" | "Cluster-IP") => json!("<varies>"),
                                _ => cell.clone(),
                            }
                        })
                        .collect::<Vec<_>>()
                )
            })
            .collect();
        json!([reply.code, columns, rows])
    };
    json!({
        "deployments": table(http.get_as(&apps, TABLE).await),
        "services": table(http.get_as(&services, TABLE).await),
        "roles": table(http.get_as(&format!("{rbac}/roles"), TABLE).await),
        "roleBindings": table(http.get_as(&format!("{rbac}/rolebindings"), TABLE).await),
        "crd": table(http.get_as(
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/partners.partner-operator.io", TABLE).await),
    })
}
