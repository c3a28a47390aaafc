//! Discovery (`/version`, `/api`, `/apis`, resource lists) and the OpenAPI v3 documents that
//! `kubectl apply` (to find out that the server validates fields itself) and `kubectl explain`
//! read.

use serde_json::{Value, json};

use super::kinds::Kind;
use super::resources::{Registry, ResourceType};

/// The Kubernetes version the server speaks: the kube-apiserver it is measured against
/// (`hack/kube-assets/go.mod`), so that a client's version checks and skew warnings read the
/// same on both.
pub const KUBERNETES_VERSION: &str = "v1.37.2";

pub fn version() -> Value {
    json!({
        "major": "1", "minor": "37", "emulationMajor": "1", "emulationMinor": "37",
        "minCompatibilityMajor": "1", "minCompatibilityMinor": "36", "gitVersion": KUBERNETES_VERSION,
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
    .filter(|v| *v != "deletecollection" || Kind::of(resource).serves_deletecollection())
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
        if Kind::of(resource) == Kind::Deployment {
            entries.push(json!({
                "name": format!("{}/scale", resource.plural), "singularName": "", "namespaced": true,
                "group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"],
            }));
        }
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
        // The document's hash, so clients cache it until it changes (as kube-apiserver's).
        let hash = openapi_v3(registry, &path).map_or_else(String::new, |doc| {
            use sha2::Digest as _;
            let digest = sha2::Sha512::digest(doc.to_string().as_bytes());
            hex::encode_upper(&digest[..32])
        });
        paths.insert(
            path.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={hash}")}),
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

const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

/// `ObjectMeta`, as far as `kubectl explain <kind>.metadata` shows it.
fn object_meta_schema() -> Value {
    let string = |d: &str| json!({"type": "string", "description": d});
    let map = |d: &str| json!({"type": "object", "additionalProperties": {"type": "string", "default": ""}, "description": d});
    json!({
        "type": "object",
        "description": "ObjectMeta is metadata that all persisted resources must have, which includes all objects users must create.",
        "properties": {
            "name": string("Name must be unique within a namespace."),
            "generateName": string("GenerateName is an optional prefix, used by the server, to generate a unique name ONLY IF the Name field has not been provided."),
            "namespace": string("Namespace defines the space within which each name must be unique."),
            "uid": string("UID is the unique in time and space value for this object."),
            "resourceVersion": string("An opaque value that represents the internal version of this object."),
            "generation": {"type": "integer", "format": "int64", "description": "A sequence number representing a specific generation of the desired state."},
            "creationTimestamp": {"type": "string", "format": "date-time", "description": "CreationTimestamp is a timestamp representing the server time when this object was created."},
            "deletionTimestamp": {"type": "string", "format": "date-time", "description": "DeletionTimestamp is RFC 3339 date and time at which this resource will be deleted."},
            "deletionGracePeriodSeconds": {"type": "integer", "format": "int64", "description": "Number of seconds allowed for this object to gracefully terminate before it will be removed from the system."},
            "labels": map("Map of string keys and values that can be used to organize and categorize (scope and select) objects."),
            "annotations": map("Annotations is an unstructured key value map stored with a resource that may be set by external tools to store and retrieve arbitrary metadata."),
            "finalizers": {"type": "array", "items": {"type": "string", "default": ""}, "x-kubernetes-list-type": "set", "description": "Must be empty before the object is deleted from the registry."},
            "ownerReferences": {"type": "array", "items": {"type": "object"}, "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["uid"], "description": "List of objects depended by this object."},
            "managedFields": {"type": "array", "items": {"type": "object"}, "description": "ManagedFields maps workflow-id and version to the set of fields that are managed by that workflow."},
        },
    })
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
        let mut schema = resource.schema.as_deref().cloned().unwrap_or_else(
            || json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
        );
        if let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) {
            properties.insert("apiVersion".into(), json!({"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object."}));
            properties.insert("kind".into(), json!({"type": "string", "description": "Kind is a string value representing the REST resource this object represents."}));
            properties.insert(
                "metadata".into(),
                json!({"allOf": [{"$ref": format!("#/components/schemas/{OBJECT_META}")}], "default": {},
                    "description": "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"}),
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
    schemas.insert(OBJECT_META.into(), object_meta_schema());
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": KUBERNETES_VERSION},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}
