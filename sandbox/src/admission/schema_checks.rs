//! What kube-apiserver refuses in a CRD's `openAPIV3Schema` before serving it: a schema that is
//! not structural (a field without a `type`, a root that is not an object) and a CEL rule that
//! does not compile. Each error names the field of the CRD at fault, as kube-apiserver does.

use serde_json::{Value, json};

use super::{FieldError, FieldErrorReason};

/// The errors of the schema found at `path` (`spec.validation.openAPIV3Schema`, or a version's).
pub fn check(schema: &Value, path: &str) -> Vec<FieldError> {
    let mut errors = vec![];
    match schema["type"].as_str() {
        None | Some("") => errors.push(required(path, "must not be empty at the root")),
        Some("object") => {}
        Some(other) => errors.push(FieldError {
            field: format!("{path}.type"),
            reason: FieldErrorReason::Invalid,
            message: format!("{path}.type: Invalid value: {other:?}: must be object at the root"),
        }),
    }
    walk(schema, path, &mut errors);
    errors
}

fn required(path: &str, why: &str) -> FieldError {
    FieldError {
        field: format!("{path}.type"),
        reason: FieldErrorReason::Required,
        message: format!("{path}.type: Required value: {why}"),
    }
}

/// Checks the rules of `node`, then every schema under it.
fn walk(node: &Value, path: &str, errors: &mut Vec<FieldError>) {
    rules(node, path, errors);
    for (name, child) in node["properties"].as_object().into_iter().flatten() {
        let child_path = format!("{path}.properties[{name}]");
        if untyped(child) {
            errors.push(required(
                &child_path,
                "must not be empty for specified object fields",
            ));
        }
        walk(child, &child_path, errors);
    }
    if node["items"].is_object() {
        let child_path = format!("{path}.items");
        if untyped(&node["items"]) {
            errors.push(required(
                &child_path,
                "must not be empty for specified array items",
            ));
        }
        walk(&node["items"], &child_path, errors);
    }
    if node["additionalProperties"].is_object() {
        let child_path = format!("{path}.additionalProperties");
        if untyped(&node["additionalProperties"]) {
            errors.push(required(
                &child_path,
                "must not be empty for specified object fields",
            ));
        }
        walk(&node["additionalProperties"], &child_path, errors);
    }
}

/// A node with no `type` that is not exempt from having one.
fn untyped(node: &Value) -> bool {
    node["type"].as_str().is_none_or(str::is_empty)
        && node["x-kubernetes-int-or-string"] != true
        && node["x-kubernetes-preserve-unknown-fields"] != true
}

/// The CEL rules of one node that do not compile.
fn rules(node: &Value, path: &str, errors: &mut Vec<FieldError>) {
    for (i, rule) in node["x-kubernetes-validations"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let compiled = kube_cel::compile_schema(&json!({"x-kubernetes-validations": [rule]}));
        if let Some(error) = compiled.compilation_errors().first() {
            let field = format!("{path}.x-kubernetes-validations[{i}].rule");
            let text = rule["rule"].as_str().unwrap_or_default();
            errors.push(FieldError {
                message: format!("{field}: Invalid value: {text:?}: compilation failed: {error}"),
                field,
                reason: FieldErrorReason::Invalid,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untyped_fields_and_broken_rules_are_named() {
        let schema = json!({"type": "object", "properties": {
            "spec": {"properties": {"a": {"type": "string"}},
                "x-kubernetes-validations": [{"rule": "self.nope("}]},
            "any": {"x-kubernetes-preserve-unknown-fields": true}}});
        let fields: Vec<String> = check(&schema, "s").into_iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            vec![
                "s.properties[spec].type",
                "s.properties[spec].x-kubernetes-validations[0].rule"
            ]
        );
        assert_eq!(check(&json!({}), "s")[0].field, "s.type");
    }
}
