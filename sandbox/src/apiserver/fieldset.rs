//! Sets of fields as server-side apply counts them (structured-merge-diff's `fieldpath.Set`):
//! what an applied configuration sets, what changed between two versions of an object, and
//! their `FieldsV1` form in `managedFields`.
//!
//! A set holds paths of `FieldsV1` keys (`f:data`, `f:key`; `k:{"name":"web"}` for an item of
//! a keyed list, `v:"x"` for an item of a set). A path in the set is owned itself; a path with
//! owned paths below it that is owned too is written with a `"."` entry, as kube-apiserver does
//! for a map or list item a manager created.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use super::patch::merge_key;
use crate::admission::CrdValidator;

/// A field: its `FieldsV1` keys from the root.
pub type Path = Vec<String>;
pub type FieldSet = BTreeSet<Path>;

/// The fields of a `FieldsV1` value; `None` when it is not one.
pub fn decode(fields: &Value) -> Option<FieldSet> {
    fn walk(node: &Value, path: &mut Path, out: &mut FieldSet) -> Option<()> {
        let map = node.as_object()?;
        if (map.is_empty() || map.contains_key(".")) && !path.is_empty() {
            out.insert(path.clone());
        }
        for (key, child) in map {
            if key == "." {
                continue;
            }
            if !["f:", "k:", "v:", "i:"].iter().any(|p| key.starts_with(p)) {
                return None;
            }
            path.push(key.clone());
            walk(child, path, out)?;
            path.pop();
        }
        Some(())
    }
    let mut out = FieldSet::new();
    walk(fields, &mut vec![], &mut out)?;
    Some(out)
}

/// The `FieldsV1` form of `set`.
pub fn encode(set: &FieldSet) -> Value {
    let mut root = Value::Object(Map::new());
    for path in set {
        node_at(&mut root, path);
    }
    for path in set {
        let node = node_at(&mut root, path);
        if node.as_object().is_some_and(|m| !m.is_empty()) {
            node[".".to_string()] = json!({});
        }
    }
    root
}

fn node_at<'a>(root: &'a mut Value, path: &[String]) -> &'a mut Value {
    let mut node = root;
    for key in path {
        node = node
            .as_object_mut()
            .expect("an object")
            .entry(key.clone())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    node
}

/// How a list's items are told apart.
pub enum ListKind {
    /// Replaced whole, owned as one field.
    Atomic,
    /// Objects told apart by their key fields (`containers` by `name`).
    Keyed(Vec<String>),
    /// Scalars told apart by their value (`metadata.finalizers`).
    Set,
}

/// Where the shape of an object's fields comes from: the built-in kinds' patch strategies (as
/// far as the sandbox knows them), or a custom resource's schema (`x-kubernetes-list-type`
/// and `x-kubernetes-list-map-keys`; a list without them is atomic).
#[derive(Clone, Copy)]
pub enum Shapes<'a> {
    Builtin,
    Custom(&'a CrdValidator),
}

impl Shapes<'_> {
    /// The schema to follow at `path`: a custom resource's metadata is the built-ins' too.
    fn schema_at(&self, path: &[String]) -> Option<&CrdValidator> {
        match self {
            Shapes::Custom(validator) if path.first().is_some_and(|k| k != "f:metadata") => {
                Some(validator)
            }
            _ => None,
        }
    }

    pub fn list_kind(&self, path: &[String], items: &[Value]) -> ListKind {
        if let Some(validator) = self.schema_at(path) {
            return match validator.list_type(path) {
                Some((list_type, keys)) if list_type == "map" => ListKind::Keyed(keys),
                Some((list_type, _)) if list_type == "set" => ListKind::Set,
                _ => ListKind::Atomic,
            };
        }
        if path == ["f:metadata", "f:finalizers"] {
            return ListKind::Set;
        }
        if path
            .last()
            .is_some_and(|field| BUILTIN_ATOMIC_LISTS.contains(&field.as_str()))
        {
            return ListKind::Atomic;
        }
        if let Some(keys) = path.last().and_then(|field| builtin_list_keys(field)) {
            return ListKind::Keyed(keys.iter().map(|k| k.to_string()).collect());
        }
        merge_key(items).map_or(ListKind::Atomic, |key| {
            ListKind::Keyed(key_fields(key).into_iter().map(String::from).collect())
        })
    }

    /// Label selectors and RBAC role references of the built-ins are atomic: owned, compared
    /// and replaced whole.
    pub fn is_atomic_map(&self, path: &[String]) -> bool {
        self.schema_at(path).is_none()
            && path
                .last()
                .is_some_and(|key| BUILTIN_ATOMIC_MAPS.contains(&key.as_str()))
    }
}

/// Objects the built-ins replace whole: label selectors, RBAC role references.
const BUILTIN_ATOMIC_MAPS: [&str; 5] = [
    "f:selector",
    "f:podSelector",
    "f:namespaceSelector",
    "f:labelSelector",
    "f:roleRef",
];

/// Lists of objects with a `name` that the built-ins replace whole (RBAC subjects).
const BUILTIN_ATOMIC_LISTS: [&str; 1] = ["f:subjects"];

/// Lists of the built-ins keyed by fields other than the one [`merge_key`] would guess
/// (volume mounts have a `name` too, but are told apart by their `mountPath`).
fn builtin_list_keys(field: &str) -> Option<&'static [&'static str]> {
    match field {
        "f:volumeMounts" => Some(&["mountPath"]),
        "f:volumeDevices" => Some(&["devicePath"]),
        "f:ownerReferences" => Some(&["uid"]),
        "f:hostAliases" => Some(&["ip"]),
        "f:topologySpreadConstraints" => Some(&["topologyKey", "whenUnsatisfiable"]),
        _ => None,
    }
}

/// The fields that tell a keyed list's items apart: ports by their number and protocol, as
/// their schema's `x-kubernetes-list-map-keys` say.
fn key_fields(key: &'static str) -> Vec<&'static str> {
    match key {
        "containerPort" | "port" => vec![key, "protocol"],
        _ => vec![key],
    }
}

/// An item's value for a key field: a port's protocol is TCP when not given.
fn key_value(item: &Value, field: &str) -> Value {
    match item.get(field) {
        Some(value) => value.clone(),
        None if field == "protocol" => json!("TCP"),
        None => Value::Null,
    }
}

pub fn item_key(kind: &ListKind, item: &Value) -> String {
    match kind {
        ListKind::Keyed(keys) => {
            let id: Map<String, Value> = keys
                .iter()
                .map(|field| (field.clone(), key_value(item, field)))
                .collect();
            format!("k:{}", Value::Object(id))
        }
        _ => format!("v:{item}"),
    }
}

/// The fields an applied configuration sets (structured-merge-diff's `ToFieldSet`): its leaves,
/// empty maps, atomic lists, and the items of keyed lists and sets.
pub fn of_applied(applied: &Value, shapes: Shapes) -> FieldSet {
    let mut out = FieldSet::new();
    if let Some(map) = applied.as_object() {
        walk_applied_map(map, &mut vec![], &mut out, shapes);
    }
    out
}

fn walk_applied_map(map: &Map<String, Value>, path: &mut Path, out: &mut FieldSet, shapes: Shapes) {
    for (key, value) in map {
        path.push(format!("f:{key}"));
        match value {
            Value::Object(child) if !child.is_empty() && !shapes.is_atomic_map(path) => {
                walk_applied_map(child, path, out, shapes)
            }
            Value::Array(items) => walk_applied_list(items, path, out, shapes),
            _ => {
                out.insert(path.clone());
            }
        }
        path.pop();
    }
}

fn walk_applied_list(items: &[Value], path: &mut Path, out: &mut FieldSet, shapes: Shapes) {
    let kind = shapes.list_kind(path, items);
    if let ListKind::Atomic = kind {
        out.insert(path.clone());
        return;
    }
    for item in items {
        path.push(item_key(&kind, item));
        out.insert(path.clone());
        if let (ListKind::Keyed(_), Some(map)) = (&kind, item.as_object()) {
            walk_applied_map(map, path, out, shapes);
        }
        path.pop();
    }
}

/// What changed from one version of an object to the next: fields added or modified, and
/// fields removed; a map or list item that appears or goes counts itself, with its fields.
#[derive(Default, Debug)]
pub struct Comparison {
    pub changed: FieldSet,
    pub removed: FieldSet,
}

impl Comparison {
    pub fn of(old: &Value, new: &Value, shapes: Shapes) -> Comparison {
        let mut out = Comparison::default();
        out.compare(Some(old), Some(new), &mut vec![], shapes);
        out
    }

    /// The comparison without the fields `keep` rejects.
    pub fn filtered(mut self, keep: impl Fn(&Path) -> bool) -> Comparison {
        self.changed.retain(&keep);
        self.removed.retain(&keep);
        self
    }

    fn compare(
        &mut self,
        old: Option<&Value>,
        new: Option<&Value>,
        path: &mut Path,
        shapes: Shapes,
    ) {
        match (old, new) {
            (None, None) => {}
            (Some(Value::Object(_)) | None, Some(Value::Object(_)) | None)
                if descends(old, new, path, shapes) =>
            {
                let keys: BTreeSet<&String> = [old, new]
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_object)
                    .flat_map(Map::keys)
                    .collect();
                for key in keys {
                    path.push(format!("f:{key}"));
                    self.compare(
                        old.and_then(|o| o.get(key)),
                        new.and_then(|n| n.get(key)),
                        path,
                        shapes,
                    );
                    path.pop();
                }
                self.node(old, new, path);
            }
            (Some(Value::Array(_)) | None, Some(Value::Array(_)) | None)
                if !both_empty(old, new) =>
            {
                self.compare_lists(old, new, path, shapes);
            }
            _ => self.leaf(old, new, path),
        }
    }

    fn compare_lists(
        &mut self,
        old: Option<&Value>,
        new: Option<&Value>,
        path: &mut Path,
        shapes: Shapes,
    ) {
        let items = |v: Option<&Value>| v.and_then(Value::as_array).cloned().unwrap_or_default();
        let (old_items, new_items) = (items(old), items(new));
        let sample = if old_items.is_empty() {
            &new_items
        } else {
            &old_items
        };
        let kind = shapes.list_kind(path, sample);
        if let ListKind::Atomic = kind {
            return self.leaf(old, new, path);
        }
        let keyed = |items: &[Value]| -> Vec<(String, Value)> {
            items
                .iter()
                .map(|i| (item_key(&kind, i), i.clone()))
                .collect()
        };
        let (old_keyed, new_keyed) = (keyed(&old_items), keyed(&new_items));
        let find = |list: &[(String, Value)], key: &str| {
            list.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
        };
        let keys: BTreeSet<String> = old_keyed
            .iter()
            .chain(&new_keyed)
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            let (before, after) = (find(&old_keyed, &key), find(&new_keyed, &key));
            path.push(key);
            match kind {
                ListKind::Set => self.leaf(before.as_ref(), after.as_ref(), path),
                _ => self.compare(before.as_ref(), after.as_ref(), path, shapes),
            }
            path.pop();
        }
        self.node(old, new, path);
    }

    /// A map, list or list item: counted itself when it appears or goes.
    fn node(&mut self, old: Option<&Value>, new: Option<&Value>, path: &Path) {
        if path.is_empty() {
            return;
        }
        match (old, new) {
            (None, Some(_)) => {
                self.changed.insert(path.clone());
            }
            (Some(_), None) => {
                self.removed.insert(path.clone());
            }
            _ => {}
        }
    }

    fn leaf(&mut self, old: Option<&Value>, new: Option<&Value>, path: &Path) {
        if path.is_empty() {
            return;
        }
        match (old, new) {
            (None, Some(_)) => {
                self.changed.insert(path.clone());
            }
            (Some(_), None) => {
                self.removed.insert(path.clone());
            }
            (Some(a), Some(b)) if a != b => {
                self.changed.insert(path.clone());
            }
            _ => {}
        }
    }
}

/// Whether a comparison goes into a map's fields: not when the map is atomic, nor when it is
/// empty or absent on both sides (a leaf, then, as structured-merge-diff has it).
fn descends(old: Option<&Value>, new: Option<&Value>, path: &[String], shapes: Shapes) -> bool {
    !both_empty(old, new) && !shapes.is_atomic_map(path)
}

fn both_empty(old: Option<&Value>, new: Option<&Value>) -> bool {
    is_empty(old) && is_empty(new)
}

fn is_empty(value: Option<&Value>) -> bool {
    match value {
        None => true,
        Some(Value::Object(map)) => map.is_empty(),
        Some(Value::Array(items)) => items.is_empty(),
        Some(_) => false,
    }
}

/// Removes from `object` the fields of `paths`, but not a map or item under which a field of
/// `kept` lies.
pub fn remove(object: &mut Value, paths: &FieldSet, kept: &FieldSet) {
    for path in paths {
        let holds_kept = kept
            .iter()
            .any(|k| k.len() > path.len() && k.starts_with(path));
        if !holds_kept {
            remove_one(object, path);
        }
    }
}

fn remove_one(object: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut node = object;
    for key in parents {
        match step(node, key) {
            Some(next) => node = next,
            None => return,
        }
    }
    if let Some(name) = last.strip_prefix("f:") {
        if let Some(map) = node.as_object_mut() {
            map.remove(name);
        }
    } else if let Some(items) = node.as_array_mut()
        && let Some(i) = items.iter().position(|item| matches(item, last))
    {
        items.remove(i);
    }
}

fn step<'a>(node: &'a mut Value, key: &str) -> Option<&'a mut Value> {
    match key.strip_prefix("f:") {
        Some(name) => node.get_mut(name),
        None => node
            .as_array_mut()?
            .iter_mut()
            .find(|item| matches(item, key)),
    }
}

/// Whether a list item is the one a `k:` or `v:` key names.
fn matches(item: &Value, key: &str) -> bool {
    if let Some(id) = key.strip_prefix("k:") {
        let Ok(Value::Object(id)) = serde_json::from_str::<Value>(id) else {
            return false;
        };
        return id.iter().all(|(k, v)| key_value(item, k) == *v);
    }
    key.strip_prefix("v:")
        .and_then(|v| serde_json::from_str::<Value>(v).ok())
        .is_some_and(|v| &v == item)
}

/// `.spec.containers[name="web"].image`, as kube-apiserver prints a field in a conflict.
pub fn display(path: &[String]) -> String {
    let mut out = String::new();
    for key in path {
        if let Some(name) = key.strip_prefix("f:") {
            out.push('.');
            out.push_str(name);
        } else if let Some(id) = key.strip_prefix("k:") {
            let id: Map<String, Value> = serde_json::from_str(id).unwrap_or_default();
            let parts: Vec<String> = id.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out.push_str(&format!("[{}]", parts.join(",")));
        } else if let Some(value) = key.strip_prefix("v:") {
            out.push_str(&format!("[={value}]"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(paths: &[&[&str]]) -> FieldSet {
        paths
            .iter()
            .map(|p| p.iter().map(|s| s.to_string()).collect())
            .collect()
    }

    #[test]
    fn a_created_map_is_owned_with_a_dot() {
        let old = json!({"metadata": {"name": "x"}});
        let new = json!({"metadata": {"name": "x", "labels": {"a": "b"}, "finalizers": ["f"]}, "data": {"k": "v"}});
        let changed = Comparison::of(&old, &new, Shapes::Builtin).changed;
        assert_eq!(
            encode(&changed),
            json!({"f:data": {".": {}, "f:k": {}}, "f:metadata": {
                "f:labels": {".": {}, "f:a": {}}, "f:finalizers": {".": {}, "v:\"f\"": {}}}})
        );
    }

    #[test]
    fn an_applied_configuration_owns_items_but_not_maps() {
        let applied = json!({"metadata": {"labels": {"a": "b"}, "annotations": {}},
            "spec": {"containers": [{"name": "web", "image": "x"}], "args": ["a"]}});
        assert_eq!(
            encode(&of_applied(&applied, Shapes::Builtin)),
            json!({"f:metadata": {"f:labels": {"f:a": {}}, "f:annotations": {}},
                "f:spec": {"f:args": {}, "f:containers": {"k:{\"name\":\"web\"}": {".": {}, "f:image": {}, "f:name": {}}}}})
        );
    }

    #[test]
    fn decoding_reads_members_and_refuses_other_keys() {
        let fields = json!({"f:data": {".": {}, "f:k": {}}});
        assert_eq!(
            decode(&fields),
            Some(set(&[&["f:data"], &["f:data", "f:k"]]))
        );
        assert_eq!(encode(&decode(&fields).unwrap()), fields);
        assert_eq!(decode(&json!({"data": {}})), None);
    }

    #[test]
    fn removal_keeps_what_others_own_beneath() {
        let mut object = json!({"spec": {"containers": [{"name": "a", "image": "x", "env": "e"}]}});
        let item = ["f:spec", "f:containers", "k:{\"name\":\"a\"}"];
        let removed = set(&[&item, &[item[0], item[1], item[2], "f:image"]]);
        let kept = set(&[&[item[0], item[1], item[2], "f:env"]]);
        remove(&mut object, &removed, &kept);
        assert_eq!(
            object,
            json!({"spec": {"containers": [{"name": "a", "env": "e"}]}})
        );
    }
}
