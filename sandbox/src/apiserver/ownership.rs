//! Field ownership (`metadata.managedFields`) as kube-apiserver's field manager keeps it: which
//! manager set which fields, by an `Apply` or an `Update` (create, update, patch; per
//! subresource), the conflicts an apply runs into when it would change a field another manager
//! owns, the fields an apply removes when its manager stops applying them (unless another
//! manager owns them too), and the entries a client writes itself (kubectl's migration from
//! client-side to server-side apply; `[{}]` to reset them).

use serde_json::{Map, Value, json};

use super::fieldset::{self, Comparison, FieldSet, Path, Shapes};
use super::{last_applied, patch};

/// kube-apiserver keeps at most this many `Update` entries; older ones are merged.
const MAX_UPDATE_MANAGERS: usize = 10;
const ANCIENT_CHANGES: &str = "ancient-changes";
const BEFORE_FIRST_APPLY: &str = "before-first-apply";

/// Fields no manager owns: the type, and the metadata the server sets.
const STRIPPED: [&[&str]; 12] = [
    &["f:apiVersion"],
    &["f:kind"],
    &["f:metadata"],
    &["f:metadata", "f:name"],
    &["f:metadata", "f:namespace"],
    &["f:metadata", "f:creationTimestamp"],
    &["f:metadata", "f:selfLink"],
    &["f:metadata", "f:uid"],
    &["f:metadata", "f:clusterName"],
    &["f:metadata", "f:generation"],
    &["f:metadata", "f:managedFields"],
    &["f:metadata", "f:resourceVersion"],
];

fn strip(mut set: FieldSet) -> FieldSet {
    set.retain(|path| !STRIPPED.iter().any(|s| path.iter().eq(s.iter())));
    set
}

/// One `managedFields` entry.
#[derive(Clone, Debug)]
struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    subresource: Option<String>,
    time: Option<Value>,
    fields: FieldSet,
}

impl Entry {
    /// An entry as kube-apiserver reads it; `None` for one it refuses.
    fn decode(value: &Value) -> Option<Entry> {
        let text = |key: &str| value[key].as_str().unwrap_or_default().to_string();
        let operation = text("operation");
        let readable = matches!(operation.as_str(), "Apply" | "Update")
            && !text("apiVersion").is_empty()
            && text("fieldsType") == "FieldsV1";
        if !readable {
            return None;
        }
        let fields = match value.get("fieldsV1") {
            None | Some(Value::Null) => FieldSet::new(),
            Some(fields) => fieldset::decode(fields)?,
        };
        Some(Entry {
            manager: text("manager"),
            operation,
            api_version: text("apiVersion"),
            subresource: value["subresource"]
                .as_str()
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            time: value.get("time").filter(|t| !t.is_null()).cloned(),
            fields,
        })
    }

    fn encode(&self) -> Value {
        let mut entry = Map::new();
        entry.insert("manager".into(), json!(self.manager));
        entry.insert("operation".into(), json!(self.operation));
        entry.insert("apiVersion".into(), json!(self.api_version));
        if let Some(time) = &self.time {
            entry.insert("time".into(), time.clone());
        }
        entry.insert("fieldsType".into(), json!("FieldsV1"));
        entry.insert("fieldsV1".into(), fieldset::encode(&self.fields));
        if let Some(subresource) = &self.subresource {
            entry.insert("subresource".into(), json!(subresource));
        }
        Value::Object(entry)
    }

    /// kube-apiserver's identifier of a manager (its entry without fields and time, in JSON,
    /// in the order of the Go struct's fields, as managers sort by it): an applier is one
    /// whatever its API version.
    fn identifier(&self) -> String {
        let mut parts = vec![];
        if !self.manager.is_empty() {
            parts.push(format!("\"manager\":{}", json!(self.manager)));
        }
        parts.push(format!("\"operation\":{}", json!(self.operation)));
        if self.operation == "Update" {
            parts.push(format!("\"apiVersion\":{}", json!(self.api_version)));
        }
        if let Some(subresource) = &self.subresource {
            parts.push(format!("\"subresource\":{}", json!(subresource)));
        }
        format!("{{{}}}", parts.join(","))
    }

    /// `"editor" with subresource "status" using v1`, as a conflict names its manager.
    fn printed(&self) -> String {
        let mut out = format!("{:?}", self.manager);
        if let Some(subresource) = &self.subresource {
            out.push_str(&format!(" with subresource {subresource:?}"));
        }
        if self.operation == "Update" {
            out.push_str(&format!(" using {}", self.api_version));
        }
        out
    }

    fn seconds(&self) -> String {
        self.time
            .as_ref()
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    }
}

/// The entries of `managedFields`, one per manager (a later one replacing an earlier); `None`
/// when one cannot be read.
fn decode(entries: Option<&Value>) -> Option<Vec<Entry>> {
    let mut out: Vec<Entry> = vec![];
    for value in entries.and_then(Value::as_array).into_iter().flatten() {
        let entry = Entry::decode(value)?;
        out.retain(|e| e.identifier() != entry.identifier());
        out.push(entry);
    }
    Some(out)
}

/// The entries in kube-apiserver's order (`Apply` first, then by time and manager), without
/// those that own nothing.
fn encode(mut entries: Vec<Entry>) -> Value {
    entries.retain(|e| !e.fields.is_empty());
    entries.sort_by(|a, b| {
        (
            &a.operation,
            a.seconds(),
            &a.manager,
            &a.api_version,
            &a.subresource,
        )
            .cmp(&(
                &b.operation,
                b.seconds(),
                &b.manager,
                &b.api_version,
                &b.subresource,
            ))
    });
    Value::Array(entries.iter().map(Entry::encode).collect())
}

/// `[]` and `[{}]` written to `managedFields` reset them.
fn is_reset(written: Option<&Value>) -> bool {
    match written.and_then(Value::as_array).map(Vec::as_slice) {
        Some([]) => true,
        Some([only]) => only.as_object().is_some_and(Map::is_empty),
        _ => false,
    }
}

fn without_managed_fields(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    object
}

/// Who writes, and where: what both operations share.
pub struct Writer<'a> {
    pub manager: &'a str,
    pub api_version: &'a str,
    pub time: &'a str,
    pub subresource: Option<&'a str>,
    /// Whether the resource has a status subresource (its status is written there only).
    pub status_subresource: bool,
    pub shapes: Shapes<'a>,
}

impl Writer<'_> {
    /// The fields a write through this endpoint may own: the status through `/status`, the
    /// rest elsewhere when the status has its own subresource.
    fn counts(&self, path: &Path) -> bool {
        let status = path.first().is_some_and(|k| k == "f:status");
        match self.subresource {
            Some(_) => status,
            None => !(self.status_subresource && status),
        }
    }

    fn entry(&self, operation: &str, fields: FieldSet) -> Entry {
        Entry {
            manager: self.manager.to_string(),
            operation: operation.to_string(),
            api_version: self.api_version.to_string(),
            subresource: self.subresource.map(str::to_string),
            time: Some(json!(self.time)),
            fields,
        }
    }

    fn compare(&self, old: &Value, new: &Value) -> Comparison {
        Comparison::of(
            &without_managed_fields(old),
            &without_managed_fields(new),
            self.shapes,
        )
        .filtered(|p| self.counts(p))
    }

    /// The managed fields after a create (`old` is `None`), update or patch made `new`: the
    /// entries `new` carries if it sets them (not through a subresource), else `old`'s; the
    /// fields the write changed taken from everyone and given to its manager.
    pub fn update(&self, old: Option<&Value>, new: &Value) -> Value {
        let written = new["metadata"].get("managedFields");
        let stored = || decode(old.and_then(|o| o["metadata"].get("managedFields")));
        let entries = if self.subresource.is_some() {
            stored()
        } else if is_reset(written) {
            Some(vec![])
        } else {
            decode(written).filter(|e| !e.is_empty()).or_else(stored)
        };
        let mut entries = entries.unwrap_or_default();
        if entries.is_empty() && old.is_some() {
            // kube-apiserver tracks no fields of an object that has none tracked.
            return Value::Array(vec![]);
        }
        let comparison = self.compare(old.unwrap_or(&json!({})), new);
        self.record_update(&mut entries, self.manager, comparison);
        cap_update_managers(&mut entries);
        encode(entries)
    }

    fn record_update(&self, entries: &mut Vec<Entry>, manager: &str, comparison: Comparison) {
        for entry in entries.iter_mut() {
            entry
                .fields
                .retain(|p| !comparison.changed.contains(p) && !comparison.removed.contains(p));
        }
        let mine = strip(comparison.changed);
        if mine.is_empty() {
            return;
        }
        let mut entry = Writer { manager, ..*self }.entry("Update", mine);
        if let Some(i) = entries
            .iter()
            .position(|e| e.identifier() == entry.identifier())
        {
            entry.fields.extend(entries.remove(i).fields);
        }
        entries.push(entry);
    }
}

/// More than [`MAX_UPDATE_MANAGERS`] `Update` entries: the oldest merged into one
/// `ancient-changes` entry per API version, as kube-apiserver does.
fn cap_update_managers(entries: &mut Vec<Entry>) {
    let mut updaters: Vec<String> = entries
        .iter()
        .filter(|e| e.operation == "Update" && !e.fields.is_empty())
        .map(Entry::identifier)
        .collect();
    let mut length = updaters.len();
    if length <= MAX_UPDATE_MANAGERS {
        return;
    }
    let find = |entries: &Vec<Entry>, id: &str| entries.iter().position(|e| e.identifier() == id);
    updaters.sort_by_key(|id| {
        let entry = &entries[find(entries, id).expect("an entry")];
        (entry.seconds(), id.clone())
    });
    let mut first_of_version: Vec<(String, String)> = vec![];
    for id in updaters {
        if length <= MAX_UPDATE_MANAGERS {
            break;
        }
        let Some(i) = find(entries, &id) else {
            continue;
        };
        let version = entries[i].api_version.clone();
        let Some((_, first)) = first_of_version.iter().find(|(v, _)| *v == version) else {
            first_of_version.push((version, id));
            continue;
        };
        let merged = entries.remove(i);
        let bucket = Entry {
            manager: ANCIENT_CHANGES.into(),
            subresource: None,
            ..merged.clone()
        };
        let bucket_at = match find(entries, &bucket.identifier()) {
            Some(at) => at,
            None => {
                let at = find(entries, first).expect("the first entry");
                entries[at].manager = ANCIENT_CHANGES.into();
                entries[at].subresource = None;
                at
            }
        };
        entries[bucket_at].fields.extend(merged.fields);
        entries[bucket_at].time = merged.time;
        length -= 1;
    }
}

/// Fields another manager owns that an apply would change.
#[derive(Debug)]
pub struct Conflicts(Vec<(Entry, Path)>);

impl Conflicts {
    /// kube-apiserver's message: `Apply failed with 1 conflict: conflict with "alice": .data.key`.
    pub fn message(&self) -> String {
        if let [(entry, path)] = self.0.as_slice() {
            return format!(
                "Apply failed with 1 conflict: conflict with {}: {}",
                entry.printed(),
                fieldset::display(path)
            );
        }
        let mut lines = vec![];
        let mut last = None;
        for (entry, path) in &self.0 {
            if last != Some(entry.identifier()) {
                lines.push(format!("conflicts with {}:", entry.printed()));
                last = Some(entry.identifier());
            }
            lines.push(format!("- {}", fieldset::display(path)));
        }
        format!(
            "Apply failed with {} conflicts: {}",
            self.0.len(),
            lines.join("\n")
        )
    }

    pub fn causes(&self) -> Vec<Value> {
        self.0
            .iter()
            .map(|(entry, path)| json!({"reason": "FieldManagerConflict",
                "message": format!("conflict with {}", entry.printed()), "field": fieldset::display(path)}))
            .collect()
    }
}

/// A server-side apply: its writer, and whether it takes fields from others (`force`).
pub struct Apply<'a> {
    pub writer: Writer<'a>,
    pub force: bool,
}

impl Apply<'_> {
    /// The fields `applied` sets that its manager owns.
    pub fn owned(&self, applied: &Value) -> FieldSet {
        strip(fieldset::of_applied(applied, self.writer.shapes))
            .into_iter()
            .filter(|p| self.writer.counts(p))
            .collect()
    }

    /// `live` with `applied` merged in and the fields its manager stopped applying (and no one
    /// else owns) removed, its `managedFields` recorded; or the conflicts.
    ///
    /// An apply by `kubectl` that conflicts only over fields its last applied configuration
    /// (the annotation of client-side apply) still holds takes them, as with `force`.
    pub fn apply(&self, live: &Value, applied: &Value) -> Result<Value, Conflicts> {
        let mut result = self.apply_once(live, applied, self.force);
        if self.writer.manager != last_applied::KUBECTL {
            return result;
        }
        if let Err(conflicts) = &mut result
            && let Some(forgiven) =
                last_applied::forgiven(live, self.writer.api_version, self.writer.shapes)
        {
            conflicts.0.retain(|(_, path)| !forgiven.contains(path));
            if conflicts.0.is_empty() {
                result = self.apply_once(live, applied, true);
            }
        }
        if let Ok(object) = &mut result {
            last_applied::record(object, applied);
        }
        result
    }

    fn apply_once(&self, live: &Value, applied: &Value, force: bool) -> Result<Value, Conflicts> {
        let writer = &self.writer;
        let mut entries = decode(live["metadata"].get("managedFields")).unwrap_or_default();
        if entries.is_empty() {
            // What is there already is owned by `before-first-apply`, so an apply conflicts
            // with it.
            let comparison = writer.compare(&json!({}), live);
            writer.record_update(&mut entries, BEFORE_FIRST_APPLY, comparison);
        }
        let mine = writer.entry("Apply", self.owned(applied));
        let previous = entries
            .iter()
            .position(|e| e.identifier() == mine.identifier())
            .map(|i| entries.remove(i));
        let live = without_managed_fields(live);
        let mut merged = live.clone();
        patch::apply(&mut merged, applied, writer.shapes);
        if let Some(previous) = &previous {
            let mut owned = mine.fields.clone();
            owned.extend(entries.iter().flat_map(|e| e.fields.iter().cloned()));
            let dropped = previous.fields.difference(&owned).cloned().collect();
            fieldset::remove(&mut merged, &dropped, &owned);
        }
        let comparison = writer.compare(&live, &merged);
        settle(&mut entries, &comparison, force)?;
        let changed = merged != live;
        entries.push(Entry {
            time: match (changed, previous) {
                (true, _) => mine.time.clone(),
                (false, Some(previous)) => previous.time,
                (false, None) => None,
            },
            ..mine
        });
        let entries = encode(entries);
        if entries.as_array().is_some_and(|e| !e.is_empty()) {
            merged["metadata"]["managedFields"] = entries;
        }
        Ok(merged)
    }
}

/// Takes from the other managers what the apply changed (with `force`) or removed; the
/// conflicts, without `force`.
fn settle(entries: &mut [Entry], comparison: &Comparison, force: bool) -> Result<(), Conflicts> {
    let mut conflicts = vec![];
    for entry in entries.iter_mut() {
        let contested: Vec<Path> = entry
            .fields
            .intersection(&comparison.changed)
            .cloned()
            .collect();
        if force {
            entry.fields.retain(|p| !contested.contains(p));
        } else {
            conflicts.extend(contested.into_iter().map(|p| (entry.clone(), p)));
        }
        entry.fields.retain(|p| !comparison.removed.contains(p));
    }
    if conflicts.is_empty() {
        return Ok(());
    }
    conflicts.sort_by(|(a, p), (b, q)| (a.identifier(), p).cmp(&(b.identifier(), q)));
    Err(Conflicts(conflicts))
}

/// The `managedFields` of an object an apply creates: its manager's entry alone.
pub fn created_by_apply(apply: &Apply, applied: &Value) -> Value {
    encode(vec![apply.writer.entry("Apply", apply.owned(applied))])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer(manager: &str) -> Writer<'_> {
        Writer {
            manager,
            api_version: "v1",
            time: "t",
            subresource: None,
            status_subresource: false,
            shapes: Shapes::Builtin,
        }
    }

    fn apply(manager: &str, force: bool) -> Apply<'_> {
        Apply {
            writer: writer(manager),
            force,
        }
    }

    fn cm(data: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": data})
    }

    #[test]
    fn a_second_manager_conflicts_unless_it_agrees_or_forces() {
        let live = apply("alice", false)
            .apply(&json!({}), &cm(json!({"key": "a"})))
            .unwrap();
        let conflict = apply("bob", false)
            .apply(&live, &cm(json!({"key": "b"})))
            .unwrap_err();
        assert_eq!(
            conflict.message(),
            "Apply failed with 1 conflict: conflict with \"alice\": .data.key"
        );
        assert!(
            apply("bob", false)
                .apply(&live, &cm(json!({"key": "a"})))
                .is_ok()
        );
        let forced = apply("bob", true)
            .apply(&live, &cm(json!({"key": "b"})))
            .unwrap();
        let managers: Vec<&Value> = forced["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| &e["manager"])
            .collect();
        assert_eq!(managers, [&json!("bob")]);
    }

    #[test]
    fn a_field_two_managers_applied_stays_until_both_drop_it() {
        let mut live = json!({});
        for (manager, data) in [("a", json!({"k": "v"})), ("b", json!({"k": "v"}))] {
            live = apply(manager, false).apply(&live, &cm(data)).unwrap();
        }
        live = apply("a", false).apply(&live, &cm(json!({}))).unwrap();
        assert_eq!(live["data"], json!({"k": "v"}));
        live = apply("b", false).apply(&live, &cm(json!({}))).unwrap();
        assert_eq!(live["data"], json!({}));
    }

    #[test]
    fn an_update_takes_the_fields_it_changes() {
        let old = json!({"metadata": {"managedFields": [
            {"manager": "alice", "operation": "Apply", "apiVersion": "v1", "fieldsType": "FieldsV1",
                "fieldsV1": {"f:data": {"f:a": {}, "f:b": {}}}}]},
            "data": {"a": "1", "b": "2"}});
        let new = json!({"metadata": {}, "data": {"a": "9", "b": "2"}});
        let entries = writer("editor").update(Some(&old), &new);
        assert_eq!(entries[0]["fieldsV1"], json!({"f:data": {"f:b": {}}}));
        assert_eq!(entries[1]["manager"], "editor");
        assert_eq!(entries[1]["fieldsV1"], json!({"f:data": {"f:a": {}}}));
    }

    #[test]
    fn written_entries_replace_the_stored_ones_and_an_empty_entry_resets_them() {
        let old = writer("creator").update(None, &cm(json!({"a": "1"})));
        let mut new = cm(json!({"a": "1"}));
        new["metadata"]["managedFields"] = json!([{}]);
        assert_eq!(
            writer("w").update(Some(&json!({"metadata": {"managedFields": old}})), &new),
            json!([])
        );
    }
}
