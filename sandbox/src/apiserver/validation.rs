//! ObjectMeta validation as kube-apiserver does it for every kind, built-in or custom: names,
//! label keys and values, annotation keys and their total size, finalizers while deleting. The
//! messages are kube-apiserver's (apimachinery's `validation` package), field paths included.

use serde_json::Value;

use super::kinds::NameRule;
use crate::admission::{FieldError, FieldErrorReason};

const QUALIFIED_NAME_MAX: usize = 63;
const LABEL_VALUE_MAX: usize = 63;
const ANNOTATIONS_MAX_BYTES: usize = 256 * 1024;

const QUALIFIED_NAME_ERROR: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const LABEL_VALUE_ERROR: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const SUBDOMAIN_ERROR: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

fn invalid(field: &str, value: &str, detail: &str) -> FieldError {
    FieldError {
        field: field.to_string(),
        reason: FieldErrorReason::Invalid,
        message: format!("{field}: Invalid value: {value:?}: {detail}"),
    }
}

/// `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`
fn is_name_part(text: &str) -> bool {
    let bytes = text.as_bytes();
    !bytes.is_empty()
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn is_dns_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

fn is_dns_label(name: &str) -> bool {
    name.len() <= 63 && !name.contains('.') && is_dns_subdomain(name)
}

/// The problems of a qualified name (`[prefix/]name`), as label and annotation keys are.
fn qualified_name_problems(key: &str) -> Vec<String> {
    let mut problems = vec![];
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        if prefix.is_empty() {
            problems.push("prefix part must be non-empty".to_string());
        } else if !is_dns_subdomain(prefix) {
            problems.push(format!("prefix part {SUBDOMAIN_ERROR}"));
        }
    }
    if name.is_empty() {
        problems.push("name part must be non-empty".to_string());
    } else {
        if name.len() > QUALIFIED_NAME_MAX {
            problems.push(format!(
                "name part must be no more than {QUALIFIED_NAME_MAX} bytes"
            ));
        }
        if !is_name_part(name) {
            problems.push(QUALIFIED_NAME_ERROR.to_string());
        }
    }
    if key.matches('/').count() > 1 {
        problems = vec![format!("{QUALIFIED_NAME_ERROR}")];
    }
    problems
}

/// Whether `key` may be a label key (as in a label selector).
pub fn is_label_key(key: &str) -> bool {
    qualified_name_problems(key).is_empty()
}

/// Whether `value` may be a label value.
pub fn is_label_value(value: &str) -> bool {
    value.is_empty() || (value.len() <= LABEL_VALUE_MAX && is_name_part(value))
}

/// Labels and annotations of `metadata`, on create and on update.
pub fn labels_and_annotations(metadata: &Value) -> Vec<FieldError> {
    let mut errors = vec![];
    for (key, value) in metadata["labels"].as_object().into_iter().flatten() {
        for problem in qualified_name_problems(key) {
            errors.push(invalid("metadata.labels", key, &problem));
        }
        let value = value.as_str().unwrap_or_default();
        if value.len() > LABEL_VALUE_MAX {
            errors.push(invalid(
                "metadata.labels",
                value,
                &format!("must be no more than {LABEL_VALUE_MAX} bytes"),
            ));
        }
        if !value.is_empty() && !is_name_part(value) {
            errors.push(invalid("metadata.labels", value, LABEL_VALUE_ERROR));
        }
    }
    let mut total = 0;
    for (key, value) in metadata["annotations"].as_object().into_iter().flatten() {
        for problem in qualified_name_problems(&key.to_ascii_lowercase()) {
            errors.push(invalid("metadata.annotations", key, &problem));
        }
        total += key.len() + value.as_str().map_or(0, str::len);
    }
    if total > ANNOTATIONS_MAX_BYTES {
        errors.push(FieldError {
            field: "metadata.annotations".into(),
            reason: FieldErrorReason::TooLong,
            message: format!(
                "metadata.annotations: Too long: may not be more than {ANNOTATIONS_MAX_BYTES} bytes"
            ),
        });
    }
    errors
}

/// A name given on create, checked as `rule` says for its kind.
pub(super) fn name(name: &str, rule: NameRule) -> Vec<FieldError> {
    if name.is_empty() {
        return vec![FieldError {
            field: "metadata.name".into(),
            reason: FieldErrorReason::Required,
            message: "metadata.name: Required value: name or generateName is required".into(),
        }];
    }
    let problem = match rule {
        NameRule::Subdomain => (!is_dns_subdomain(name)).then_some(SUBDOMAIN_ERROR),
        // A name that would be a subdomain but for its dots is told so.
        NameRule::Label if !is_dns_label(name) && is_dns_subdomain(name) => {
            Some("must not contain dots")
        }
        NameRule::Label => (!is_dns_label(name)).then_some(LABEL_ERROR),
        NameRule::PathSegment => path_segment_problem(name),
    };
    problem
        .map(|detail| vec![invalid("metadata.name", name, detail)])
        .unwrap_or_default()
}

/// What makes `name` unusable as one segment of a URL path, in kube-apiserver's words.
fn path_segment_problem(name: &str) -> Option<&'static str> {
    match name {
        "." => Some("may not be '.'"),
        ".." => Some("may not be '..'"),
        _ if name.contains('/') => Some("may not contain '/'"),
        _ if name.contains('%') => Some("may not contain '%'"),
        _ => None,
    }
}

const LABEL_ERROR: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

/// An object being deleted may lose finalizers, never gain one.
pub fn finalizers_while_deleting(old: &Value, new: &Value) -> Vec<FieldError> {
    if old["metadata"]["deletionTimestamp"].is_null() {
        return vec![];
    }
    let before: Vec<&Value> = old["metadata"]["finalizers"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    let added = new["metadata"]["finalizers"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|f| !before.contains(&f));
    if added {
        return vec![FieldError {
            field: "metadata.finalizers".into(),
            reason: FieldErrorReason::Forbidden,
            message: "metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted".into(),
        }];
    }
    vec![]
}

/// The fields of `ObjectMeta`.
const METADATA_FIELDS: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

/// The top-level fields of the built-in kinds whose every field is known here.
fn builtin_fields(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "ConfigMap" => &["data", "binaryData", "immutable"],
        "Secret" => &["data", "stringData", "type", "immutable"],
        "Namespace" | "Lease" => &["spec", "status"],
        "ServiceAccount" => &[
            "secrets",
            "imagePullSecrets",
            "automountServiceAccountToken",
        ],
        _ => return None,
    })
}

/// Removes the fields no schema declares (of `metadata` for every kind; at the top for the
/// built-ins [`builtin_fields`] knows; custom resources' are their validator's): their paths.
pub fn prune_unknown_builtin_fields(object: &mut Value, kind: &str, custom: bool) -> Vec<String> {
    let mut unknown = vec![];
    if let Some(meta) = object["metadata"].as_object_mut() {
        let extra: Vec<String> = meta
            .keys()
            .filter(|k| !METADATA_FIELDS.contains(&k.as_str()))
            .cloned()
            .collect();
        for key in extra {
            meta.remove(&key);
            unknown.push(format!("metadata.{key}"));
        }
    }
    if custom {
        return unknown;
    }
    if let (Some(fields), Some(map)) = (builtin_fields(kind), object.as_object_mut()) {
        let extra: Vec<String> = map
            .keys()
            .filter(|k| !matches!(k.as_str(), "apiVersion" | "kind" | "metadata"))
            .filter(|k| !fields.contains(&k.as_str()))
            .cloned()
            .collect();
        for key in extra {
            map.remove(&key);
            unknown.push(key);
        }
    }
    unknown
}

fn forbidden(field: &str, detail: &str) -> FieldError {
    FieldError {
        field: field.to_string(),
        reason: FieldErrorReason::Forbidden,
        message: format!("{field}: Forbidden: {detail}"),
    }
}

fn required(field: &str, detail: &str) -> FieldError {
    let message = match detail {
        "" => format!("{field}: Required value"),
        detail => format!("{field}: Required value: {detail}"),
    };
    FieldError {
        field: field.to_string(),
        reason: FieldErrorReason::Required,
        message,
    }
}

/// Finalizer names: qualified names; for the built-in kinds also either one of Kubernetes'
/// own (`kubernetes`, `orphan`, `foregroundDeletion`) or with a domain prefix.
pub fn finalizers(metadata: &Value, builtin: bool) -> Vec<FieldError> {
    let mut errors = vec![];
    for (i, name) in metadata["finalizers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .enumerate()
    {
        for problem in qualified_name_problems(name) {
            errors.push(invalid("metadata.finalizers", name, &problem));
        }
        if builtin
            && !name.contains('/')
            && !matches!(name, "kubernetes" | "orphan" | "foregroundDeletion")
        {
            errors.push(invalid(
                &format!("metadata.finalizers[{i}]"),
                name,
                "name is neither a standard finalizer name nor is it fully qualified",
            ));
        }
    }
    errors
}

/// Owner references: each names its owner's apiVersion, kind, name and uid.
pub fn owner_references(metadata: &Value) -> Vec<FieldError> {
    let mut errors = vec![];
    for (i, owner) in metadata["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        for field in ["apiVersion", "kind", "name", "uid"] {
            if owner[field].as_str().is_none_or(str::is_empty) {
                errors.push(required(
                    &format!("metadata.ownerReferences[{i}].{field}"),
                    "must not be empty",
                ));
            }
        }
    }
    errors
}

/// The checks of the built-in kinds the sandbox validates: data keys of Secrets and
/// ConfigMaps, their size and immutability, the keys a TLS Secret must have, and a Service's
/// ports.
pub fn builtin(kind: &str, core: bool, object: &Value, old: Option<&Value>) -> Vec<FieldError> {
    match (core, kind) {
        (true, "Service") => return service(object),
        (false, "Deployment") => return deployment(object),
        (false, "CustomResourceDefinition") => return crd_name(object),
        _ => {}
    }
    if !core || !matches!(kind, "Secret" | "ConfigMap") {
        return vec![];
    }
    let mut errors = data_size(kind, object);
    if kind == "Secret" && object["type"] == "kubernetes.io/tls" {
        for key in ["tls.crt", "tls.key"] {
            if object["data"].get(key).is_none() {
                errors.push(required(&format!("data[{key}]"), ""));
            }
        }
    }
    for field in ["data", "binaryData"] {
        for key in object[field]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, _)| k)
        {
            let valid = !key.is_empty()
                && key.len() <= 253
                && key
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
            if !valid {
                errors.push(invalid(
                    &format!("{field}[{key}]"),
                    key,
                    "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
                ));
            }
        }
    }
    if let Some(old) = old
        && old["immutable"] == Value::Bool(true)
    {
        const DETAIL: &str = "field is immutable when `immutable` is set";
        if object["data"] != old["data"] {
            errors.push(forbidden("data", DETAIL));
        }
        if object["binaryData"] != old["binaryData"] && kind == "ConfigMap" {
            errors.push(forbidden("binaryData", DETAIL));
        }
        if object["immutable"] != old["immutable"] {
            errors.push(forbidden("immutable", DETAIL));
        }
    }
    errors
}

/// A Deployment selects its Pods, and its Pod template carries the labels it selects by.
fn deployment(object: &Value) -> Vec<FieldError> {
    let selector = &object["spec"]["selector"];
    let labels = &object["spec"]["template"]["metadata"]["labels"];
    let mut errors = vec![];
    if !selector.is_object() {
        errors.push(required("spec.selector", ""));
    }
    let selected = selector["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    if !selector.is_object() || !selected {
        let field = "spec.template.metadata.labels";
        errors.push(FieldError {
            field: field.into(),
            reason: FieldErrorReason::Invalid,
            message: format!(
                "{field}: Invalid value: {}: `selector` does not match template `labels`",
                serde_json::to_string(labels.as_object().unwrap_or(&Default::default()))
                    .unwrap_or_default()
            ),
        });
    }
    errors
}

/// A CRD is named after what it defines: `<plural>.<group>`.
pub(super) fn crd_name(object: &Value) -> Vec<FieldError> {
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    let spec = &object["spec"];
    let expected = format!(
        "{}.{}",
        spec["names"]["plural"].as_str().unwrap_or_default(),
        spec["group"].as_str().unwrap_or_default()
    );
    if name == expected {
        return vec![];
    }
    vec![invalid(
        "metadata.name",
        name,
        "must be spec.names.plural+\".\"+spec.group",
    )]
}

/// A Service has ports, unless it is headless or an ExternalName.
fn service(object: &Value) -> Vec<FieldError> {
    let spec = &object["spec"];
    let exempt = spec["clusterIP"] == "None" || spec["type"] == "ExternalName";
    if !exempt && spec["ports"].as_array().is_none_or(Vec::is_empty) {
        return vec![required("spec.ports", "")];
    }
    vec![]
}

/// ConfigMaps and Secrets hold at most 1 MiB of keys and values (a Secret's values decoded),
/// as etcd's object size limit would have it.
fn data_size(kind: &str, object: &Value) -> Vec<FieldError> {
    use base64::Engine as _;
    const MAX: usize = 1024 * 1024;
    let decoded = |v: &Value| {
        let text = v.as_str().unwrap_or_default();
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_or(text.len(), |d| d.len())
    };
    let mut total = 0;
    for (field, encoded) in [("data", kind == "Secret"), ("binaryData", true)] {
        for (key, value) in object[field].as_object().into_iter().flatten() {
            let value_len = match encoded {
                true => decoded(value),
                false => value.as_str().map_or(0, str::len),
            };
            total += key.len() + value_len;
        }
    }
    if total <= MAX {
        return vec![];
    }
    // kube-apiserver names no field for a ConfigMap (`[]`), and `data` for a Secret.
    let field = if kind == "Secret" { "data" } else { "[]" };
    vec![FieldError {
        field: field.to_string(),
        reason: FieldErrorReason::TooLong,
        message: format!("{field}: Too long: may not be more than {MAX} bytes"),
    }]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_keys_and_values() {
        let ok = json!({"labels": {"example.com/tier": "web", "a": "", "b": "x".repeat(63)}});
        assert!(labels_and_annotations(&ok).is_empty());
        for bad in [
            json!({"labels": {"tier": "x".repeat(64)}}),
            json!({"labels": {"bad key": "v"}}),
            json!({"labels": {"k": "-v"}}),
            json!({"labels": {"/k": "v"}}),
            json!({"labels": {"Upper.Case/k": "v"}}),
            json!({"labels": {"a/b/c": "v"}}),
            json!({"annotations": {"bad key": "v"}}),
            json!({"annotations": {"k": "x".repeat(300 * 1024)}}),
        ] {
            assert_eq!(labels_and_annotations(&bad).len(), 1, "{bad}");
        }
    }
}
