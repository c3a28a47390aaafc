//! The patch types kube-apiserver accepts: JSON patch, JSON merge patch, strategic merge patch
//! (for built-ins, as far as `kubectl apply` and `kubectl patch` need it) and server-side apply.

use serde_json::{Map, Value};

/// A list of objects whose items are merged by this key under strategic merge and apply
/// (`containers` by `name`, `conditions` by `type`, ...), instead of being replaced whole.
fn merge_key(items: &[Value]) -> Option<&'static str> {
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

/// The fields an applied configuration sets, in the `FieldsV1` format of `managedFields`
/// (`{"f:spec": {"f:replicas": {}}}`; keyed list items as `k:{"name":"x"}`).
pub fn fields_of(applied: &Value) -> Value {
    match applied {
        Value::Object(map) => {
            let mut fields = Map::new();
            for (key, value) in map {
                if matches!(key.as_str(), "apiVersion" | "kind") {
                    continue;
                }
                if key == "metadata" {
                    let mut meta = Map::new();
                    for meta_key in ["labels", "annotations", "finalizers"] {
                        if let Some(v) = value.get(meta_key) {
                            meta.insert(format!("f:{meta_key}"), fields_of(v));
                        }
                    }
                    if !meta.is_empty() {
                        fields.insert("f:metadata".into(), Value::Object(meta));
                    }
                    continue;
                }
                fields.insert(format!("f:{key}"), fields_of(value));
            }
            Value::Object(fields)
        }
        Value::Array(items) => match merge_key(items) {
            Some(key) => Value::Object(
                items
                    .iter()
                    .map(|item| {
                        let id = serde_json::json!({ key: item[key] });
                        (format!("k:{id}"), fields_of(item))
                    })
                    .collect(),
            ),
            None => Value::Object(Map::new()),
        },
        _ => Value::Object(Map::new()),
    }
}

/// Server-side apply of `applied` by a field manager onto `live`: the applied fields are merged
/// in (keyed lists item by item), and fields the same manager applied before but no longer
/// applies are removed. Conflicts between managers are not detected: every apply acts as
/// `force=true`.
pub fn apply(live: &mut Value, applied: &Value, previously_owned: Option<&Value>) {
    if let Some(previous) = previously_owned {
        remove_dropped(live, previous, &fields_of(applied));
    }
    strategic(live, applied);
}

/// Removes from `live` the fields in `previous` that are not in `current`.
fn remove_dropped(live: &mut Value, previous: &Value, current: &Value) {
    let (Some(previous), Some(live_map)) = (previous.as_object(), live.as_object_mut()) else {
        return;
    };
    for (field, sub_previous) in previous {
        let sub_current = current.get(field);
        if let Some(name) = field.strip_prefix("f:") {
            match sub_current {
                None => {
                    live_map.remove(name);
                }
                Some(sub_current) => {
                    if let Some(child) = live_map.get_mut(name) {
                        if child.is_array() {
                            remove_dropped_items(child, sub_previous, sub_current);
                        } else {
                            remove_dropped(child, sub_previous, sub_current);
                        }
                    }
                }
            }
        }
    }
}

fn remove_dropped_items(live: &mut Value, previous: &Value, current: &Value) {
    let Value::Array(items) = live else { return };
    let Some(previous) = previous.as_object() else {
        return;
    };
    for (field, sub_previous) in previous {
        let Some(id) = field.strip_prefix("k:") else {
            continue;
        };
        let Ok(Value::Object(id)) = serde_json::from_str::<Value>(id) else {
            continue;
        };
        let Some((key, value)) = id.iter().next() else {
            continue;
        };
        let position = items.iter().position(|item| item.get(key) == Some(value));
        match (current.get(field), position) {
            (None, Some(i)) => {
                items.remove(i);
            }
            (Some(sub_current), Some(i)) => {
                remove_dropped(&mut items[i], sub_previous, sub_current)
            }
            _ => {}
        }
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
    fn apply_removes_what_the_manager_stopped_applying() {
        let first = json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"x": 1, "y": 2}});
        let mut live = json!({"metadata": {"name": "n"}, "spec": {"z": 3}});
        apply(&mut live, &first, None);
        let owned = fields_of(&first);
        let second = json!({"metadata": {"labels": {"a": "1"}}, "spec": {"x": 5}});
        apply(&mut live, &second, Some(&owned));
        assert_eq!(
            live,
            json!({"metadata": {"name": "n", "labels": {"a": "1"}}, "spec": {"x": 5, "z": 3}})
        );
    }
}
