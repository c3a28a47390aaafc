//! Discovery (`/version`, `/api`, `/apis`, resource lists) and the OpenAPI v3 documents that
//! `kubectl apply` (to find out that the server validates fields itself) and `kubectl explain`
//! read.

use serde_json::{Value, json};

use super::resources::{Registry, ResourceType};

/// The Kubernetes version the server speaks.
pub const KUBERNETES_VERSION: &str = "v1.32.0";

pub fn version() -> Value {
    json!({
        "major": "1", "minor": "32", "gitVersion": KUBERNETES_VERSION,
        "gitCommit": "partner-operator-sandbox", "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z", "goVersion": "none", "compiler": "rustc",
        "platform": "linux/amd64",
    })
}

pub fn api_versions() -> Value {
    json!({
        "kind": "APIVersions", "apiVersion": "v1", "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}],
    })
}

pub fn api_groups(registry: &Registry) -> Value {
    let mut groups: Vec<Value> = Vec::new();
    for ((group, version), _) in registry.group_versions() {
        if group.is_empty() {
            continue;
        }
        let gv = json!({"groupVersion": format!("{group}/{version}"), "version": version});
        match groups.iter_mut().find(|g| g["name"] == json!(group)) {
            Some(existing) => existing["versions"].as_array_mut().expect("array").push(gv),
            None => groups
                .push(json!({"name": group, "versions": [gv.clone()], "preferredVersion": gv})),
        }
    }
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

fn verbs(resource: &ResourceType) -> Vec<&'static str> {
    vec![
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
        "watch",
    ]
    .into_iter()
    .filter(|v| *v != "deletecollection" || resource.kind != "Namespace")
    .collect()
}

pub fn resource_list(registry: &Registry, group: &str, version: &str) -> Option<Value> {
    let resources = registry.resources_of(group, version)?;
    let mut entries = Vec::new();
    for resource in &resources {
        let mut entry = json!({
            "name": resource.plural, "singularName": resource.singular, "namespaced": resource.namespaced,
            "kind": resource.kind, "verbs": verbs(resource),
        });
        if !resource.short_names.is_empty() {
            entry["shortNames"] = json!(resource.short_names);
        }
        if !resource.categories.is_empty() {
            entry["categories"] = json!(resource.categories);
        }
        entries.push(entry);
        if resource.status_subresource {
            entries.push(json!({
                "name": format!("{}/status", resource.plural), "singularName": "", "namespaced": resource.namespaced,
                "kind": resource.kind, "verbs": ["get", "patch", "update"],
            }));
        }
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": entries}),
    )
}

fn openapi_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

pub fn openapi_v3_index(registry: &Registry) -> Value {
    let mut paths = serde_json::Map::new();
    for ((group, version), _) in registry.group_versions() {
        let path = openapi_path(&group, &version);
        paths.insert(
            path.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{path}")}),
        );
    }
    json!({"paths": paths})
}

/// The schema component name kube-apiserver gives a kind (`io.k8s.api.core.v1.Namespace`, or the
/// reversed group for custom resources).
fn component_name(resource: &ResourceType) -> String {
    if resource.validator.is_none() {
        let group = match resource.group.as_str() {
            "" => "core".to_string(),
            g => g.split('.').next().unwrap_or(g).to_string(),
        };
        return format!("io.k8s.api.{group}.{}.{}", resource.version, resource.kind);
    }
    let reversed: Vec<&str> = resource.group.split('.').rev().collect();
    format!(
        "{}.{}.{}",
        reversed.join("."),
        resource.version,
        resource.kind
    )
}

/// The OpenAPI v3 document of one group/version (`api/v1`, `apis/<group>/<version>`).
pub fn openapi_v3(registry: &Registry, path: &str) -> Option<Value> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version) = match segments.as_slice() {
        ["api", version] => (String::new(), version.to_string()),
        ["apis", group, version] => (group.to_string(), version.to_string()),
        _ => return None,
    };
    let resources = registry.resources_of(&group, &version)?;
    let mut paths = serde_json::Map::new();
    let mut schemas = serde_json::Map::new();
    let prefix = format!("/{}", openapi_path(&group, &version));
    for resource in &resources {
        let gvk =
            json!([{"group": resource.group, "version": resource.version, "kind": resource.kind}]);
        let component = component_name(resource);
        let mut schema = resource.schema.clone().unwrap_or_else(
            || json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
        );
        if let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) {
            properties.insert("apiVersion".into(), json!({"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object."}));
            properties.insert("kind".into(), json!({"type": "string", "description": "Kind is a string value representing the REST resource this object represents."}));
            properties.insert(
                "metadata".into(),
                json!({"type": "object", "description": "Standard object's metadata."}),
            );
        }
        schema["x-kubernetes-group-version-kind"] = gvk.clone();
        schemas.insert(component.clone(), schema);
        let reference = json!({"$ref": format!("#/components/schemas/{component}")});
        let body = json!({"content": {"application/json": {"schema": reference}}});
        let query = |name: &str| json!({"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": true}});
        let write_params = json!([
            query("dryRun"),
            query("fieldManager"),
            query("fieldValidation")
        ]);
        let operation = |verb: &str| {
            json!({
                "x-kubernetes-action": verb, "x-kubernetes-group-version-kind": gvk[0],
                "parameters": write_params, "requestBody": body, "responses": {"200": body},
            })
        };
        let collection = if resource.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}", resource.plural)
        } else {
            format!("{prefix}/{}", resource.plural)
        };
        paths.insert(
            collection.clone(),
            json!({"get": {"x-kubernetes-action": "list", "x-kubernetes-group-version-kind": gvk[0], "responses": {"200": body}}, "post": operation("post")}),
        );
        paths.insert(
            format!("{collection}/{{name}}"),
            json!({
                "parameters": write_params,
                "get": {"x-kubernetes-action": "get", "x-kubernetes-group-version-kind": gvk[0], "responses": {"200": body}},
                "put": operation("put"), "patch": operation("patch"),
                "delete": {"x-kubernetes-action": "delete", "x-kubernetes-group-version-kind": gvk[0], "responses": {"200": body}},
            }),
        );
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": KUBERNETES_VERSION},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}
