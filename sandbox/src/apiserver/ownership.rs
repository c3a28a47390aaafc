//! Field ownership (`metadata.managedFields`) as server-side apply keeps it: which manager set
//! which fields, by an `Apply` or an `Update` (create, update, patch; per subresource), and the
//! conflicts an apply runs into when it would change a field another manager owns.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use super::patch::fields_of;

/// A field: its `FieldsV1` keys from the root (`f:data`, `f:key`; `k:{"name":"web"}`).
type Path = Vec<String>;

/// The fields of a `FieldsV1` set.
fn leaves(fields: &Value) -> BTreeSet<Path> {
    fn walk(node: &Value, path: &mut Path, out: &mut BTreeSet<Path>) {
        let Some(map) = node.as_object() else { return };
        if (map.is_empty() || map.contains_key(".")) && !path.is_empty() {
            out.insert(path.clone());
        }
        for (key, child) in map {
            if key == "." {
                continue;
            }
            path.push(key.clone());
            walk(child, path, out);
            path.pop();
        }
    }
    let mut out = BTreeSet::new();
    walk(fields, &mut vec![], &mut out);
    out
}

fn to_fields(paths: &BTreeSet<Path>) -> Value {
    let mut root = Value::Object(Map::new());
    for path in paths {
        let mut node = &mut root;
        for key in path {
            node = node
                .as_object_mut()
                .expect("an object")
                .entry(key.clone())
                .or_insert_with(|| Value::Object(Map::new()));
        }
    }
    root
}

/// The value a field has in `object`, if it is set.
fn value_at<'a>(object: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut node = object;
    for key in path {
        if let Some(name) = key.strip_prefix("f:") {
            node = node.get(name)?;
        } else if let Some(id) = key.strip_prefix("k:") {
            let id: Map<String, Value> = serde_json::from_str(id).ok()?;
            node = node
                .as_array()?
                .iter()
                .find(|item| id.iter().all(|(k, v)| item.get(k) == Some(v)))?;
        } else {
            return None;
        }
    }
    Some(node)
}

/// `.spec.containers[name="web"].image`, as kube-apiserver prints a field in a conflict.
fn display(path: &[String]) -> String {
    let mut out = String::new();
    for key in path {
        if let Some(name) = key.strip_prefix("f:") {
            out.push('.');
            out.push_str(name);
        } else if let Some(id) = key.strip_prefix("k:") {
            let id: Map<String, Value> = serde_json::from_str(id).unwrap_or_default();
            let parts: Vec<String> = id.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out.push_str(&format!("[{}]", parts.join(",")));
        }
    }
    out
}

/// What changed from `old` to `new`: the changed and added values, nested as in the objects.
fn changes(old: &Value, new: &Value) -> Option<Value> {
    match (old, new) {
        (Value::Object(old), Value::Object(new)) => {
            let mut out = Map::new();
            for (key, value) in new {
                match old.get(key) {
                    Some(before) if before == value => {}
                    Some(before) => {
                        if let Some(changed) = changes(before, value) {
                            out.insert(key.clone(), changed);
                        }
                    }
                    None => {
                        out.insert(key.clone(), value.clone());
                    }
                }
            }
            (!out.is_empty()).then_some(Value::Object(out))
        }
        (old, new) if old == new => None,
        (_, new) => Some(new.clone()),
    }
}

fn entry_fields(entry: &Value) -> BTreeSet<Path> {
    leaves(&entry["fieldsV1"])
}

fn is_entry(entry: &Value, manager: &str, operation: &str, subresource: Option<&str>) -> bool {
    entry["manager"] == json!(manager)
        && entry["operation"] == json!(operation)
        && entry["subresource"].as_str() == subresource
}

fn new_entry(
    manager: &str,
    operation: &str,
    api_version: &str,
    time: &str,
    subresource: Option<&str>,
    fields: Value,
) -> Value {
    let mut entry = json!({
        "manager": manager, "operation": operation, "apiVersion": api_version,
        "time": time, "fieldsType": "FieldsV1", "fieldsV1": fields,
    });
    if let Some(subresource) = subresource {
        entry["subresource"] = json!(subresource);
    }
    entry
}

/// Drops from every entry the fields `object` no longer has, then the entries left empty.
fn prune(entries: Vec<Value>, object: &Value) -> Vec<Value> {
    entries
        .into_iter()
        .filter_map(|mut entry| {
            let kept: BTreeSet<Path> = entry_fields(&entry)
                .into_iter()
                .filter(|p| value_at(object, p).is_some())
                .collect();
            if kept.is_empty() {
                return None;
            }
            entry["fieldsV1"] = to_fields(&kept);
            Some(entry)
        })
        .collect()
}

/// The managed fields after `manager` changed `old` into `new` by a create, update or patch.
pub struct Update<'a> {
    pub manager: &'a str,
    pub api_version: &'a str,
    pub time: &'a str,
    pub subresource: Option<&'a str>,
}

impl Update<'_> {
    pub fn record(&self, old: Option<&Value>, new: &Value) -> Value {
        let entries: Vec<Value> = old
            .and_then(|o| o["metadata"]["managedFields"].as_array().cloned())
            .unwrap_or_default();
        let changed = match old {
            None => Some(new.clone()),
            Some(old) => changes(old, new),
        };
        let changed = changed.map(|c| leaves(&fields_of(&c))).unwrap_or_default();
        if changed.is_empty() {
            return Value::Array(entries);
        }
        // An update takes the fields it changed from everyone else, without a conflict.
        let mut mine = BTreeSet::new();
        let mut others = vec![];
        for mut entry in entries {
            let fields = entry_fields(&entry);
            if is_entry(&entry, self.manager, "Update", self.subresource) {
                mine = fields;
                continue;
            }
            let kept: BTreeSet<Path> = fields.difference(&changed).cloned().collect();
            entry["fieldsV1"] = to_fields(&kept);
            others.push(entry);
        }
        mine.extend(changed);
        others.push(new_entry(
            self.manager,
            "Update",
            self.api_version,
            self.time,
            self.subresource,
            to_fields(&mine),
        ));
        Value::Array(prune(others, new))
    }
}

/// Fields another manager owns with a different value than an apply sets.
#[derive(Debug)]
pub struct Conflicts(Vec<(String, String)>);

impl Conflicts {
    /// kube-apiserver's message: `Apply failed with 1 conflict: conflict with "alice": .data.key`.
    pub fn message(&self) -> String {
        let count = self.0.len();
        let mut managers: Vec<&str> = self.0.iter().map(|(m, _)| m.as_str()).collect();
        managers.dedup();
        if count == 1 {
            let (manager, field) = &self.0[0];
            return format!("Apply failed with 1 conflict: conflict with \"{manager}\": {field}");
        }
        let parts: Vec<String> = managers
            .iter()
            .map(|manager| {
                let fields: Vec<String> = self
                    .0
                    .iter()
                    .filter(|(m, _)| m == manager)
                    .map(|(_, f)| format!("- {f}"))
                    .collect();
                format!("conflicts with \"{manager}\":\n{}", fields.join("\n"))
            })
            .collect();
        format!("Apply failed with {count} conflicts: {}", parts.join("\n"))
    }

    pub fn causes(&self) -> Vec<Value> {
        self.0
            .iter()
            .map(|(manager, field)| json!({"reason": "FieldManagerConflict", "message": format!("conflict with \"{manager}\""), "field": field}))
            .collect()
    }
}

/// An apply by `manager` of `applied` onto `live`.
pub struct Apply<'a> {
    pub manager: &'a str,
    pub api_version: &'a str,
    pub time: &'a str,
    pub subresource: Option<&'a str>,
    pub force: bool,
}

impl Apply<'_> {
    /// The entries before the apply, with what `force` takes from other managers taken; or the
    /// conflicts. Also returns the fields the manager applied last time.
    pub fn check(
        &self,
        live: &Value,
        applied: &Value,
    ) -> Result<(Vec<Value>, Option<Value>), Conflicts> {
        let applied_fields = leaves(&fields_of(applied));
        let entries: Vec<Value> = live["metadata"]["managedFields"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut conflicts = vec![];
        let mut previous = None;
        let mut others = vec![];
        for mut entry in entries {
            if is_entry(&entry, self.manager, "Apply", self.subresource) {
                previous = Some(entry["fieldsV1"].clone());
                continue;
            }
            let fields = entry_fields(&entry);
            let contested: BTreeSet<Path> = fields
                .intersection(&applied_fields)
                .filter(|p| value_at(live, p) != value_at(applied, p))
                .cloned()
                .collect();
            if !contested.is_empty() {
                if self.force {
                    let kept: BTreeSet<Path> = fields.difference(&contested).cloned().collect();
                    entry["fieldsV1"] = to_fields(&kept);
                } else {
                    let manager = entry["manager"].as_str().unwrap_or_default().to_string();
                    conflicts.extend(contested.iter().map(|p| (manager.clone(), display(p))));
                }
            }
            others.push(entry);
        }
        if !conflicts.is_empty() {
            return Err(Conflicts(conflicts));
        }
        Ok((others, previous))
    }

    /// The managed fields once the apply is done: the others', and the manager's entry; those
    /// of `live`, its times included, when the apply changed nothing (no write follows).
    pub fn record(
        &self,
        others: Vec<Value>,
        applied: &Value,
        result: &Value,
        live: &Value,
    ) -> Value {
        let fields = fields_of(applied);
        let without_managed = |object: &Value| {
            let mut object = object.clone();
            if let Some(meta) = object["metadata"].as_object_mut() {
                meta.remove("managedFields");
            }
            object
        };
        let same_entry = live["metadata"]["managedFields"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|e| {
                is_entry(e, self.manager, "Apply", self.subresource) && e["fieldsV1"] == fields
            });
        if same_entry && without_managed(result) == without_managed(live) {
            return live["metadata"]["managedFields"].clone();
        }
        let mut entries = prune(others, result);
        entries.push(new_entry(
            self.manager,
            "Apply",
            self.api_version,
            self.time,
            self.subresource,
            fields,
        ));
        Value::Array(entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply<'a>(manager: &'a str, force: bool) -> Apply<'a> {
        Apply {
            manager,
            api_version: "v1",
            time: "t",
            subresource: None,
            force,
        }
    }

    #[test]
    fn a_second_manager_conflicts_unless_it_agrees_or_forces() {
        let applied = json!({"data": {"key": "a"}});
        let (others, _) = apply("alice", false).check(&json!({}), &applied).unwrap();
        let mut live = applied.clone();
        live["metadata"]["managedFields"] =
            apply("alice", false).record(others, &applied, &applied, &json!({}));
        let conflict = apply("bob", false)
            .check(&live, &json!({"data": {"key": "b"}}))
            .unwrap_err();
        assert_eq!(
            conflict.message(),
            "Apply failed with 1 conflict: conflict with \"alice\": .data.key"
        );
        assert!(apply("bob", false).check(&live, &applied).is_ok());
        let (others, _) = apply("bob", true)
            .check(&live, &json!({"data": {"key": "b"}}))
            .unwrap();
        assert!(others.iter().all(|e| e["fieldsV1"] == json!({})));
    }

    #[test]
    fn an_update_takes_the_fields_it_changes() {
        let update = Update {
            manager: "editor",
            api_version: "v1",
            time: "t",
            subresource: None,
        };
        let old = json!({"metadata": {"managedFields": [
            {"manager": "alice", "operation": "Apply", "fieldsV1": {"f:data": {"f:a": {}, "f:b": {}}}}]},
            "data": {"a": "1", "b": "2"}});
        let new = json!({"metadata": {}, "data": {"a": "9", "b": "2"}});
        let entries = update.record(Some(&old), &new);
        assert_eq!(entries[0]["fieldsV1"], json!({"f:data": {"f:b": {}}}));
        assert_eq!(entries[1]["manager"], "editor");
        assert_eq!(entries[1]["fieldsV1"], json!({"f:data": {"f:a": {}}}));
    }
}
