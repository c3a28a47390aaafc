//! The patch types kube-apiserver accepts: JSON patch, JSON merge patch, strategic merge patch
//! (for built-ins, as far as `kubectl apply` and `kubectl patch` need it) and server-side apply.

use serde_json::Value;

use super::fieldset::{self, ListKind, Path, Shapes};

/// A list of objects whose items are merged by this key under strategic merge and apply
/// (`containers` by `name`, `conditions` by `type`, ...), instead of being replaced whole.
pub(super) fn merge_key(items: &[Value]) -> Option<&'static str> {
    ["name", "type", "containerPort", "port"]
        .into_iter()
        .find(|key| !items.is_empty() && items.iter().all(|item| item.get(*key).is_some()))
}

/// RFC 7386 merge patch.
pub fn merge(target: &mut Value, patch: &Value) {
    json_patch::merge(target, patch);
}

/// RFC 6902 JSON patch.
pub fn json(target: &mut Value, patch: &Value) -> Result<(), String> {
    let patch: json_patch::Patch =
        serde_json::from_value(patch.clone()).map_err(|e| e.to_string())?;
    // kube-apiserver's JSON patch (evanphx/json-patch) lets `test` compare a missing member
    // with `null`; clients rely on it ("add the finalizers list only if there is none").
    let operations = patch
        .0
        .into_iter()
        .filter(|op| match op {
            json_patch::PatchOperation::Test(test) => {
                !(test.value.is_null() && target.pointer(test.path.as_str()).is_none())
            }
            _ => true,
        })
        .collect();
    json_patch::patch(target, &json_patch::Patch(operations)).map_err(|e| e.to_string())
}

/// Strategic merge patch: a merge patch in which lists of keyed objects merge item by item, and
/// the `$patch`/`$setElementOrder`/`$retainKeys` directives kubectl sends are honoured or ignored.
pub fn strategic(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            if patch.get("$patch").and_then(Value::as_str) == Some("replace") {
                let mut replacement = patch.clone();
                replacement.remove("$patch");
                *target = replacement;
                return;
            }
            for (key, value) in patch {
                if key.starts_with('$') {
                    continue;
                }
                if value.is_null() {
                    target.remove(key);
                    continue;
                }
                match target.get_mut(key) {
                    Some(existing) => strategic(existing, value),
                    None => {
                        let mut fresh = Value::Null;
                        strategic(&mut fresh, value);
                        target.insert(key.clone(), fresh);
                    }
                }
            }
        }
        (target @ Value::Array(_), Value::Array(patch_items)) => {
            let Value::Array(items) = target else {
                unreachable!()
            };
            match merge_key(patch_items)
                .filter(|k| items.is_empty() || merge_key(items) == Some(*k))
            {
                Some(key) => merge_keyed_lists(items, patch_items, key),
                None => *target = Value::Array(patch_items.iter().map(strip_directives).collect()),
            }
        }
        (target, patch) => *target = strip_directives(patch),
    }
}

fn merge_keyed_lists(items: &mut Vec<Value>, patch_items: &[Value], key: &str) {
    for patch_item in patch_items {
        let id = &patch_item[key];
        let position = items.iter().position(|i| &i[key] == id);
        let delete = patch_item.get("$patch").and_then(Value::as_str) == Some("delete");
        match (position, delete) {
            (Some(i), true) => {
                items.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => strategic(&mut items[i], patch_item),
            (None, false) => items.push(strip_directives(patch_item)),
        }
    }
}

fn strip_directives(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(strip_directives).collect()),
        other => other.clone(),
    }
}

/// Server-side apply's merge of an applied configuration into the live object (as
/// structured-merge-diff merges): maps merge, keyed lists item by item (by their list-map
/// keys), sets as sets; label selectors and other lists are replaced whole.
pub fn apply(target: &mut Value, applied: &Value, shapes: Shapes) {
    apply_at(target, applied, &mut vec![], shapes);
}

fn apply_at(target: &mut Value, applied: &Value, path: &mut Path, shapes: Shapes) {
    match (&mut *target, applied) {
        (Value::Object(fields), Value::Object(applied)) if !shapes.is_atomic_map(path) => {
            for (key, value) in applied {
                if value.is_null() {
                    fields.remove(key);
                    continue;
                }
                match fields.get_mut(key) {
                    Some(existing) => {
                        path.push(format!("f:{key}"));
                        apply_at(existing, value, path, shapes);
                        path.pop();
                    }
                    None => {
                        fields.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (Value::Array(items), Value::Array(applied_items)) => {
            let sample = if applied_items.is_empty() {
                &*items
            } else {
                applied_items
            };
            match shapes.list_kind(path, sample) {
                ListKind::Atomic => *target = applied.clone(),
                ListKind::Set => {
                    for item in applied_items {
                        if !items.contains(item) {
                            items.push(item.clone());
                        }
                    }
                }
                kind @ ListKind::Keyed(_) => {
                    for item in applied_items {
                        let id = fieldset::item_key(&kind, item);
                        match items
                            .iter()
                            .position(|i| fieldset::item_key(&kind, i) == id)
                        {
                            Some(i) => {
                                path.push(id);
                                apply_at(&mut items[i], item, path, shapes);
                                path.pop();
                            }
                            None => items.push(item.clone()),
                        }
                    }
                }
            }
        }
        _ => *target = applied.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strategic_merges_keyed_lists_and_ignores_directives() {
        let mut live = json!({"spec": {"containers": [{"name": "a", "image": "x:1"}, {"name": "b", "image": "y:1"}]}});
        strategic(
            &mut live,
            &json!({"$setElementOrder/containers": [], "spec": {"containers": [{"name": "b", "image": "y:2"}, {"name": "c", "image": "z"}]}}),
        );
        assert_eq!(
            live,
            json!({"spec": {"containers": [{"name": "a", "image": "x:1"}, {"name": "b", "image": "y:2"}, {"name": "c", "image": "z"}]}})
        );
        strategic(
            &mut live,
            &json!({"spec": {"containers": [{"name": "a", "$patch": "delete"}]}}),
        );
        assert_eq!(live["spec"]["containers"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn apply_merges_sets_and_ports_by_their_keys() {
        let mut live = json!({"metadata": {"finalizers": ["a", "b"]},
            "spec": {"ports": [{"containerPort": 53, "protocol": "UDP"}], "selector": {"x": "1", "y": "2"}}});
        apply(
            &mut live,
            &json!({"metadata": {"finalizers": ["c"]},
                "spec": {"ports": [{"containerPort": 53}], "selector": {"x": "1"}}}),
            Shapes::Builtin,
        );
        assert_eq!(
            live,
            json!({"metadata": {"finalizers": ["a", "b", "c"]},
                "spec": {"ports": [{"containerPort": 53, "protocol": "UDP"}, {"containerPort": 53}], "selector": {"x": "1"}}})
        );
    }
}
