//! Request bodies in protobuf (`application/vnd.kubernetes.protobuf`), as kubectl's imperative
//! `create` and client-go's typed clients send them: decoded for the built-in kinds those use
//! and turned into the JSON the server handles, so that the write goes through the same path
//! (admission, validation, storage) as a JSON body.
//!
//! The body is the 4-byte magic `k8s\0`, then a `runtime.Unknown`: its `typeMeta` names the
//! kind, its `raw` holds the object's own protobuf encoding.

use base64::Engine;
use k8s_pb::api::core::v1 as core;
use k8s_pb::api::rbac::v1 as rbac;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::Unknown;
use prost::Message;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// The prefix of every protobuf-encoded object.
const MAGIC: &[u8] = b"k8s\0";

/// Why a protobuf body could not be turned into JSON.
#[derive(Debug, PartialEq)]
pub enum Error {
    /// Not a protobuf object (no magic, or bytes that do not decode): a bad request.
    Malformed(String),
    /// A kind the sandbox does not decode from protobuf: an unsupported media type.
    UnsupportedKind { api_version: String, kind: String },
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Malformed(why) => write!(f, "{why}"),
            Error::UnsupportedKind { api_version, kind } => write!(
                f,
                "the body of the request was in an unknown format - a protobuf body is decoded only for Namespace, Secret, ConfigMap, ServiceAccount, Role, ClusterRole, RoleBinding and ClusterRoleBinding; send {kind} ({api_version}) as application/json or application/yaml"
            ),
        }
    }
}

/// The JSON of a protobuf-encoded object.
pub fn to_json(body: &[u8]) -> Result<Value, Error> {
    let raw_unknown = body.strip_prefix(MAGIC).ok_or_else(|| {
        Error::Malformed("the protobuf body does not start with the \"k8s\\0\" prefix".into())
    })?;
    let unknown = Unknown::decode(raw_unknown).map_err(malformed)?;
    let type_meta = unknown.type_meta.unwrap_or_default();
    let api_version = type_meta.api_version.unwrap_or_default();
    let kind = type_meta.kind.unwrap_or_default();
    if unknown
        .content_encoding
        .as_deref()
        .is_some_and(|e| !e.is_empty())
    {
        return Err(Error::Malformed(format!(
            "content encoding {:?} of a protobuf body is not supported",
            unknown.content_encoding.unwrap_or_default()
        )));
    }
    let raw = unknown.raw.unwrap_or_default();
    let raw = raw.as_slice();
    let mut object = match (api_version.as_str(), kind.as_str()) {
        ("v1", "Namespace") => namespace(core::Namespace::decode(raw).map_err(malformed)?),
        ("v1", "Secret") => secret(core::Secret::decode(raw).map_err(malformed)?),
        ("v1", "ConfigMap") => config_map(core::ConfigMap::decode(raw).map_err(malformed)?),
        ("v1", "ServiceAccount") => {
            service_account(core::ServiceAccount::decode(raw).map_err(malformed)?)
        }
        ("rbac.authorization.k8s.io/v1", "Role") => {
            let role = rbac::Role::decode(raw).map_err(malformed)?;
            with_rules(role.metadata, &role.rules)
        }
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => {
            let role = rbac::ClusterRole::decode(raw).map_err(malformed)?;
            let mut object = with_rules(role.metadata, &role.rules);
            if let Some(aggregation) = role.aggregation_rule {
                object.insert(
                    "aggregationRule".into(),
                    json!({"clusterRoleSelectors": aggregation
                        .cluster_role_selectors
                        .iter()
                        .map(label_selector)
                        .collect::<Vec<_>>()}),
                );
            }
            object
        }
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => {
            let binding = rbac::RoleBinding::decode(raw).map_err(malformed)?;
            binding_json(binding.metadata, &binding.subjects, binding.role_ref)
        }
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
            let binding = rbac::ClusterRoleBinding::decode(raw).map_err(malformed)?;
            binding_json(binding.metadata, &binding.subjects, binding.role_ref)
        }
        _ => return Err(Error::UnsupportedKind { api_version, kind }),
    };
    object.insert("apiVersion".into(), json!(api_version));
    object.insert("kind".into(), json!(kind));
    Ok(Value::Object(object))
}

fn malformed(e: prost::DecodeError) -> Error {
    Error::Malformed(format!("the protobuf body could not be decoded: {e}"))
}

/// Sets `key` to `value` when it is not empty (JSON's `omitempty`: protobuf from Go carries
/// empty strings and maps the JSON encoding leaves out).
fn put(object: &mut Map<String, Value>, key: &str, value: Value) {
    let empty = match &value {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    };
    if !empty {
        object.insert(key.into(), value);
    }
}

fn string_map(map: &BTreeMap<String, String>) -> Value {
    json!(map)
}

fn bytes_map(map: &BTreeMap<String, Vec<u8>>) -> Value {
    let engine = base64::engine::general_purpose::STANDARD;
    Value::Object(
        map.iter()
            .map(|(k, v)| (k.clone(), json!(engine.encode(v))))
            .collect(),
    )
}

fn object_meta(meta: Option<meta::ObjectMeta>) -> Value {
    let meta = meta.unwrap_or_default();
    let mut out = Map::new();
    put(&mut out, "name", json!(meta.name));
    put(&mut out, "generateName", json!(meta.generate_name));
    put(&mut out, "namespace", json!(meta.namespace));
    put(&mut out, "uid", json!(meta.uid));
    put(&mut out, "resourceVersion", json!(meta.resource_version));
    put(&mut out, "labels", string_map(&meta.labels));
    put(&mut out, "annotations", string_map(&meta.annotations));
    put(&mut out, "finalizers", json!(meta.finalizers));
    let owners = meta
        .owner_references
        .iter()
        .map(|o| {
            let mut owner = Map::new();
            put(&mut owner, "apiVersion", json!(o.api_version));
            put(&mut owner, "kind", json!(o.kind));
            put(&mut owner, "name", json!(o.name));
            put(&mut owner, "uid", json!(o.uid));
            put(&mut owner, "controller", json!(o.controller));
            put(
                &mut owner,
                "blockOwnerDeletion",
                json!(o.block_owner_deletion),
            );
            Value::Object(owner)
        })
        .collect::<Vec<_>>();
    put(&mut out, "ownerReferences", json!(owners));
    Value::Object(out)
}

/// An object with its `metadata` (always there, as the JSON handlers expect).
fn with_metadata(meta: Option<meta::ObjectMeta>) -> Map<String, Value> {
    let mut object = Map::new();
    object.insert("metadata".into(), object_meta(meta));
    object
}

fn namespace(ns: core::Namespace) -> Map<String, Value> {
    let mut object = with_metadata(ns.metadata);
    if let Some(spec) = ns.spec {
        let mut out = Map::new();
        put(&mut out, "finalizers", json!(spec.finalizers));
        put(&mut object, "spec", Value::Object(out));
    }
    object
}

fn secret(secret: core::Secret) -> Map<String, Value> {
    let mut object = with_metadata(secret.metadata);
    put(&mut object, "data", bytes_map(&secret.data));
    put(&mut object, "stringData", string_map(&secret.string_data));
    put(&mut object, "type", json!(secret.r#type));
    put(&mut object, "immutable", json!(secret.immutable));
    object
}

fn config_map(cm: core::ConfigMap) -> Map<String, Value> {
    let mut object = with_metadata(cm.metadata);
    put(&mut object, "data", string_map(&cm.data));
    put(&mut object, "binaryData", bytes_map(&cm.binary_data));
    put(&mut object, "immutable", json!(cm.immutable));
    object
}

fn service_account(sa: core::ServiceAccount) -> Map<String, Value> {
    let mut object = with_metadata(sa.metadata);
    let secrets = sa
        .secrets
        .iter()
        .map(|r| {
            let mut out = Map::new();
            put(&mut out, "kind", json!(r.kind));
            put(&mut out, "namespace", json!(r.namespace));
            put(&mut out, "name", json!(r.name));
            put(&mut out, "uid", json!(r.uid));
            put(&mut out, "apiVersion", json!(r.api_version));
            put(&mut out, "resourceVersion", json!(r.resource_version));
            put(&mut out, "fieldPath", json!(r.field_path));
            Value::Object(out)
        })
        .collect::<Vec<_>>();
    put(&mut object, "secrets", json!(secrets));
    let pull = sa
        .image_pull_secrets
        .iter()
        .map(|r| {
            let mut out = Map::new();
            put(&mut out, "name", json!(r.name));
            Value::Object(out)
        })
        .collect::<Vec<_>>();
    put(&mut object, "imagePullSecrets", json!(pull));
    put(
        &mut object,
        "automountServiceAccountToken",
        json!(sa.automount_service_account_token),
    );
    object
}

fn with_rules(meta: Option<meta::ObjectMeta>, rules: &[rbac::PolicyRule]) -> Map<String, Value> {
    let mut object = with_metadata(meta);
    let rules = rules
        .iter()
        .map(|r| {
            let mut out = Map::new();
            // `verbs` is required: kept even when empty, as the JSON encoding does.
            out.insert("verbs".into(), json!(r.verbs));
            put(&mut out, "apiGroups", json!(r.api_groups));
            put(&mut out, "resources", json!(r.resources));
            put(&mut out, "resourceNames", json!(r.resource_names));
            put(&mut out, "nonResourceURLs", json!(r.non_resource_ur_ls));
            Value::Object(out)
        })
        .collect::<Vec<_>>();
    put(&mut object, "rules", json!(rules));
    object
}

fn label_selector(selector: &meta::LabelSelector) -> Value {
    let mut out = Map::new();
    put(&mut out, "matchLabels", string_map(&selector.match_labels));
    let expressions = selector
        .match_expressions
        .iter()
        .map(|e| {
            let mut out = Map::new();
            put(&mut out, "key", json!(e.key));
            put(&mut out, "operator", json!(e.operator));
            put(&mut out, "values", json!(e.values));
            Value::Object(out)
        })
        .collect::<Vec<_>>();
    put(&mut out, "matchExpressions", json!(expressions));
    Value::Object(out)
}

fn binding_json(
    meta: Option<meta::ObjectMeta>,
    subjects: &[rbac::Subject],
    role_ref: Option<rbac::RoleRef>,
) -> Map<String, Value> {
    let mut object = with_metadata(meta);
    let subjects = subjects
        .iter()
        .map(|s| {
            let mut out = Map::new();
            put(&mut out, "kind", json!(s.kind));
            put(&mut out, "apiGroup", json!(s.api_group));
            put(&mut out, "name", json!(s.name));
            put(&mut out, "namespace", json!(s.namespace));
            Value::Object(out)
        })
        .collect::<Vec<_>>();
    put(&mut object, "subjects", json!(subjects));
    if let Some(r) = role_ref {
        let mut out = Map::new();
        put(&mut out, "apiGroup", json!(r.api_group));
        put(&mut out, "kind", json!(r.kind));
        put(&mut out, "name", json!(r.name));
        object.insert("roleRef".into(), Value::Object(out));
    }
    object
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_pb::apimachinery::pkg::runtime::TypeMeta;

    /// The body a client-go typed client sends for `object`.
    fn body(api_version: &str, kind: &str, object: &impl Message) -> Vec<u8> {
        let unknown = Unknown {
            type_meta: Some(TypeMeta {
                api_version: Some(api_version.into()),
                kind: Some(kind.into()),
            }),
            raw: Some(object.encode_to_vec()),
            content_encoding: Some(String::new()),
            content_type: Some(String::new()),
        };
        [MAGIC, &unknown.encode_to_vec()].concat()
    }

    /// Metadata as Go encodes it: every string field present, empty or not.
    fn metadata(name: &str, namespace: &str) -> Option<meta::ObjectMeta> {
        Some(meta::ObjectMeta {
            name: Some(name.into()),
            generate_name: Some(String::new()),
            namespace: Some(namespace.into()),
            self_link: Some(String::new()),
            uid: Some(String::new()),
            resource_version: Some(String::new()),
            generation: Some(0),
            creation_timestamp: Some(meta::Time::default()),
            ..Default::default()
        })
    }

    #[test]
    fn namespace_with_labels_and_finalizers() {
        let mut meta = metadata("tenant-a", "").unwrap();
        meta.labels.insert("team".into(), "a".into());
        meta.annotations.insert("note".into(), "x".into());
        meta.finalizers.push("example.com/hold".into());
        let ns = core::Namespace {
            metadata: Some(meta),
            spec: Some(core::NamespaceSpec {
                finalizers: vec!["kubernetes".into()],
            }),
            status: Some(core::NamespaceStatus::default()),
        };
        assert_eq!(
            to_json(&body("v1", "Namespace", &ns)).unwrap(),
            json!({
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {
                    "name": "tenant-a",
                    "labels": {"team": "a"},
                    "annotations": {"note": "x"},
                    "finalizers": ["example.com/hold"],
                },
                "spec": {"finalizers": ["kubernetes"]},
            })
        );
    }

    #[test]
    fn secret_data_is_base64() {
        let mut meta = metadata("creds", "ns1").unwrap();
        meta.owner_references.push(meta::OwnerReference {
            api_version: Some("v1".into()),
            kind: Some("ConfigMap".into()),
            name: Some("owner".into()),
            uid: Some("u-1".into()),
            controller: Some(true),
            block_owner_deletion: None,
        });
        let secret = core::Secret {
            metadata: Some(meta),
            immutable: Some(true),
            data: [("key".to_string(), vec![0u8, 0xff, b'a'])].into(),
            string_data: [("plain".to_string(), "text".to_string())].into(),
            r#type: Some("Opaque".into()),
        };
        assert_eq!(
            to_json(&body("v1", "Secret", &secret)).unwrap(),
            json!({
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {
                    "name": "creds",
                    "namespace": "ns1",
                    "ownerReferences": [{
                        "apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": "u-1",
                        "controller": true,
                    }],
                },
                "data": {"key": "AP9h"},
                "stringData": {"plain": "text"},
                "type": "Opaque",
                "immutable": true,
            })
        );
    }

    #[test]
    fn config_map_data_and_binary_data() {
        let cm = core::ConfigMap {
            metadata: Some(meta::ObjectMeta {
                generate_name: Some("settings-".into()),
                resource_version: Some("42".into()),
                uid: Some("abc".into()),
                ..Default::default()
            }),
            immutable: None,
            data: [("a".to_string(), "1".to_string())].into(),
            binary_data: [("b".to_string(), b"hi".to_vec())].into(),
        };
        assert_eq!(
            to_json(&body("v1", "ConfigMap", &cm)).unwrap(),
            json!({
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"generateName": "settings-", "resourceVersion": "42", "uid": "abc"},
                "data": {"a": "1"},
                "binaryData": {"b": "aGk="},
            })
        );
    }

    #[test]
    fn service_account_references() {
        let sa = core::ServiceAccount {
            metadata: metadata("robot", "ns1"),
            secrets: vec![core::ObjectReference {
                name: Some("robot-token".into()),
                ..Default::default()
            }],
            image_pull_secrets: vec![core::LocalObjectReference {
                name: Some("registry".into()),
            }],
            automount_service_account_token: Some(false),
        };
        assert_eq!(
            to_json(&body("v1", "ServiceAccount", &sa)).unwrap(),
            json!({
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": "robot", "namespace": "ns1"},
                "secrets": [{"name": "robot-token"}],
                "imagePullSecrets": [{"name": "registry"}],
                "automountServiceAccountToken": false,
            })
        );
    }

    #[test]
    fn an_empty_service_account_has_metadata_only() {
        let sa = core::ServiceAccount {
            metadata: metadata("plain", ""),
            ..Default::default()
        };
        assert_eq!(
            to_json(&body("v1", "ServiceAccount", &sa)).unwrap(),
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "plain"}})
        );
    }

    #[test]
    fn role_and_binding() {
        let role = rbac::Role {
            metadata: metadata("reader", "ns1"),
            rules: vec![rbac::PolicyRule {
                verbs: vec!["get".into(), "list".into()],
                api_groups: vec![String::new()],
                resources: vec!["pods".into()],
                ..Default::default()
            }],
        };
        assert_eq!(
            to_json(&body("rbac.authorization.k8s.io/v1", "Role", &role)).unwrap(),
            json!({
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": {"name": "reader", "namespace": "ns1"},
                "rules": [{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}],
            })
        );
        let binding = rbac::ClusterRoleBinding {
            metadata: metadata("admins", ""),
            subjects: vec![rbac::Subject {
                kind: Some("User".into()),
                api_group: Some("rbac.authorization.k8s.io".into()),
                name: Some("alice".into()),
                namespace: Some(String::new()),
            }],
            role_ref: Some(rbac::RoleRef {
                api_group: Some("rbac.authorization.k8s.io".into()),
                kind: Some("ClusterRole".into()),
                name: Some("admin".into()),
            }),
        };
        assert_eq!(
            to_json(&body(
                "rbac.authorization.k8s.io/v1",
                "ClusterRoleBinding",
                &binding
            ))
            .unwrap(),
            json!({
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": "admins"},
                "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "alice"}],
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin"},
            })
        );
    }

    #[test]
    fn unknown_kinds_are_named() {
        let pod = core::Pod {
            metadata: metadata("p", "ns1"),
            ..Default::default()
        };
        let err = to_json(&body("v1", "Pod", &pod)).unwrap_err();
        assert_eq!(
            err,
            Error::UnsupportedKind {
                api_version: "v1".into(),
                kind: "Pod".into()
            }
        );
        assert!(err.to_string().contains("Pod (v1)"), "{err}");
    }

    #[test]
    fn malformed_bodies() {
        assert!(matches!(
            to_json(b"{\"kind\": \"Namespace\"}"),
            Err(Error::Malformed(_))
        ));
        assert!(matches!(
            to_json(b"k8s\0\x0a\xff"),
            Err(Error::Malformed(_))
        ));
        // A `raw` that is not the named kind's encoding.
        let mut bad = body("v1", "Secret", &core::Secret::default());
        bad.extend([0x12, 0x05, 0xff]);
        assert!(matches!(to_json(&bad), Err(Error::Malformed(_))));
    }
}
