//! kubectl's `last-applied-configuration` annotation in server-side apply, as kube-apiserver
//! reads it for the manager `kubectl`: the conflicts it forgives (fields the client-side
//! applier set that nobody changed since, so `kubectl apply --server-side` takes over an object
//! `kubectl apply` made), and the annotation kept up to date while the object has one (so that
//! going back to client-side apply still works).

use serde_json::Value;

use super::fieldset::{self, Comparison, FieldSet, Shapes};

const ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The manager whose applies these rules are for.
pub const KUBECTL: &str = "kubectl";

/// kube-apiserver's limit on the total size of an object's annotations.
const ANNOTATIONS_LIMIT: usize = 256 * 1024;

fn annotation(object: &Value) -> Option<&str> {
    object["metadata"]["annotations"][ANNOTATION]
        .as_str()
        .filter(|v| !v.is_empty())
}

/// The fields an apply by `kubectl` may take without a conflict: those the last applied
/// configuration set, with the values it set still live. `None` when `live` has no readable
/// annotation for its `api_version`.
pub fn forgiven(live: &Value, api_version: &str, shapes: Shapes) -> Option<FieldSet> {
    let last: Value = serde_json::from_str(annotation(live)?).ok()?;
    if last["apiVersion"].as_str() != Some(api_version) {
        return None;
    }
    let comparison = Comparison::of(&last, live, shapes);
    let mut fields = fieldset::of_applied(&last, shapes);
    fields.retain(|p| !comparison.changed.contains(p) && !comparison.removed.contains(p));
    Some(fields)
}

/// After an apply by `kubectl` of `applied`: the annotation, if `object` has one, becomes the
/// applied configuration (dropped when it would make the annotations too large).
pub fn record(object: &mut Value, applied: &Value) {
    if annotation(object).is_none() {
        return;
    }
    let mut config = applied.clone();
    if let Some(annotations) = config["metadata"]
        .get_mut("annotations")
        .and_then(Value::as_object_mut)
    {
        annotations.remove(ANNOTATION);
    }
    let Some(annotations) = object["metadata"]["annotations"].as_object_mut() else {
        return;
    };
    annotations.insert(ANNOTATION.into(), Value::String(format!("{config}\n")));
    let size: usize = annotations
        .iter()
        .map(|(k, v)| k.len() + v.as_str().map_or(0, str::len))
        .sum();
    if size > ANNOTATIONS_LIMIT {
        annotations.remove(ANNOTATION);
    }
}
