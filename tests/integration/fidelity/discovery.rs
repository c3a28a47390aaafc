//! Discovery and the OpenAPI v3 document.

use super::*;

pub(super) async fn discovery(http: Http, _ns: String) -> Value {
    let core = http.get("/api").await;
    let groups = http.get("/apis").await;
    let ours = groups.body["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|g| g["name"] == "partner-operator.io")
        .cloned()
        .unwrap_or_default();
    let wanted_groups = [
        "apps",
        "coordination.k8s.io",
        "events.k8s.io",
        "rbac.authorization.k8s.io",
        "apiextensions.k8s.io",
        "policy",
        "networking.k8s.io",
    ];
    let served: BTreeSet<&str> = groups.body["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|g| g["name"].as_str())
        .collect();
    let resources = |reply: &Reply, wanted: &[&str]| {
        let mut out = vec![];
        for r in reply.body["resources"].as_array().into_iter().flatten() {
            let name = r["name"].as_str().unwrap_or_default();
            if wanted.contains(&name.split('/').next().unwrap_or_default()) {
                let mut verbs: Vec<String> = r["verbs"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|v| v.as_str().unwrap_or_default().to_string())
                    .collect();
                verbs.sort();
                out.push(json!([
                    name,
                    r["kind"],
                    r["namespaced"],
                    verbs,
                    r["shortNames"],
                    r["singularName"]
                ]));
            }
        }
        out.sort_by_key(|v| v.to_string());
        out
    };
    let core_v1 = http.get("/api/v1").await;
    let ours_v1 = http.get("/apis/partner-operator.io/v1alpha1").await;
    let version = http.get("/version").await;
    json!({
        "api": [core.body["kind"], core.body["versions"]],
        "groupsServed": wanted_groups.iter().map(|g| served.contains(g)).collect::<Vec<_>>(),
        "ours": ours,
        "coreV1": resources(&core_v1, &["configmaps", "secrets", "namespaces", "events", "serviceaccounts"])
            .into_iter().filter(|r| !matches!(r[0].as_str(), Some("namespaces/finalize" | "serviceaccounts/token"))).collect::<Vec<_>>(),
        "partnerV1alpha1": [ours_v1.body["groupVersion"], resources(&ours_v1, &["partners", "distributors"])],
        "version": [version.code, version.body["major"], version.body.get("gitVersion").is_some()],
    })
}

pub(super) async fn discovery_of_unserved_subresources(http: Http, _ns: String) -> Value {
    let core_v1 = http.get("/api/v1").await;
    let subresources: Vec<Value> = core_v1.body["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["name"].as_str())
        .filter(|n| matches!(*n, "namespaces/finalize" | "serviceaccounts/token"))
        .map(|n| json!(n))
        .collect();
    json!({"subresources": subresources, "missingGroupVersion": http.get("/apis/nothing.example/v1").await.outcome()})
}

pub(super) async fn openapi_v3(http: Http, _ns: String) -> Value {
    let index = http.get("/openapi/v3").await;
    let paths = &index.body["paths"];
    let ours = paths["apis/partner-operator.io/v1alpha1"]["serverRelativeURL"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let doc = http.get(&ours).await;
    let partner = &doc.body["components"]["schemas"]["io.partner-operator.v1alpha1.Partner"];
    let mut spec_fields: Vec<String> = partner["properties"]["spec"]["properties"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    spec_fields.sort();
    json!({
        "index": [index.code, paths.get("api/v1").is_some(), paths.get("apis/apps/v1").is_some(), ours.starts_with("/openapi/v3/apis/partner-operator.io/v1alpha1?hash=")],
        "doc": doc.code,
        "gvk": partner["x-kubernetes-group-version-kind"],
        "specFields": spec_fields,
        "required": partner["properties"]["spec"]["required"],
        "hasMetadataRef": partner["properties"]["metadata"].to_string().contains("ObjectMeta"),
        "pathForPartners": doc.body["paths"].get("/apis/partner-operator.io/v1alpha1/namespaces/{namespace}/partners/{name}").is_some(),
        "missing": http.get("/openapi/v3/apis/nothing.example/v1").await.code,
    })
}

/// `/version`: the Kubernetes version the server says it is, as clients check it.
pub(super) async fn version(http: Http, _ns: String) -> Value {
    let version = http.get("/version").await;
    let body = &version.body;
    json!([
        version.code,
        body["major"],
        body["minor"],
        body["gitVersion"],
        body["gitTreeState"],
        body["emulationMajor"],
        body["emulationMinor"],
        body["minCompatibilityMajor"],
        body["minCompatibilityMinor"]
    ])
}
