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
