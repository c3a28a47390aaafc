//! How the operator writes a status.
//!
//! The reconciler's writes ([`write_changes`]) are merge patches of what changed, with the
//! resourceVersion of the copy the changes were computed from as a precondition: the stored
//! status is then that copy's, so the patch leaves exactly the desired one, whoever wrote the
//! fields it removes (an earlier version of the operator, `kubectl edit --subresource=status`).
//! Only the changes are sent, and the API server merges them without server-side apply's field
//! management: on kube-apiserver, with every Partner written twice during onboarding, the
//! status writes are its largest cost (docs/performance.md).
//!
//! Writers without a precondition ([`write`], the Distributor's counts) apply the whole status
//! by server-side apply under the operator's field manager, and remove what the written status
//! holds beyond the desired one with a merge patch right after, under the same precondition.
//!
//! Some fields have another owner by design: `status.activation.activatedAt` is written by the
//! activation service under its own field manager ([`apply_only`]). The reconciler neither
//! writes such a field (one owner per field) nor removes it: [`write_changes`] names them.

use std::fmt::Debug;

use kube::api::{Patch, PatchParams};
use kube::core::object::HasStatus;
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use crate::tenant::FIELD_MANAGER;

/// Writes `status` on `object` by server-side apply, and removes what the stored status holds
/// beyond it. With `precondition`, only if `object`'s resourceVersion is still the stored one
/// (else 409, and nothing is written).
pub async fn write<K>(
    api: &Api<K>,
    object: &K,
    status: &K::Status,
    precondition: bool,
) -> kube::Result<K>
where
    K: Resource<DynamicType = ()> + HasStatus + Clone + Debug + DeserializeOwned,
    K::Status: Serialize,
{
    let name = object.name_any();
    let desired = serde_json::to_value(status).expect("a status serializes");
    let mut metadata = json!({"name": name});
    if precondition {
        metadata["resourceVersion"] = json!(object.resource_version());
    }
    let apply = json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "metadata": metadata,
        "status": desired,
    });
    let written = api
        .patch_status(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(apply),
        )
        .await?;
    let live = serde_json::to_value(written.status()).expect("a status serializes");
    let Some(removal) = removal(&live, &desired) else {
        return Ok(written);
    };
    let patch = json!({
        "metadata": {"resourceVersion": written.resource_version()},
        "status": removal,
    });
    api.patch_status(&name, &operator_params(), &Patch::Merge(patch))
        .await
}

/// Makes `object`'s status `status` (but the fields at `others`, paths inside the status, which
/// belong to other writers and are left as stored) by a merge patch of the changes from
/// `object`'s status, only if `object`'s resourceVersion is still the stored one (else 409,
/// and nothing is written).
pub async fn write_changes<K>(
    api: &Api<K>,
    object: &K,
    status: &K::Status,
    others: &[&[&str]],
) -> kube::Result<K>
where
    K: Resource<DynamicType = ()> + HasStatus + Clone + Debug + DeserializeOwned,
    K::Status: Serialize,
{
    let without_others = |status: Option<&K::Status>| {
        let mut value = serde_json::to_value(status).expect("a status serializes");
        for path in others {
            take(&mut value, path);
        }
        value
    };
    let stored = without_others(object.status());
    let desired = without_others(Some(status));
    let patch = json!({
        "metadata": {"resourceVersion": object.resource_version()},
        "status": changes(&stored, &desired).unwrap_or_else(|| json!({})),
    });
    api.patch_status(&object.name_any(), &operator_params(), &Patch::Merge(patch))
        .await
}

fn operator_params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    }
}

/// Applies only the fields of `status` at `paths` on `object`, under `manager`, with `object`'s
/// resourceVersion as a precondition: a writer that owns a few fields and nothing else. Nothing
/// is removed (a field it owns that is absent from `status` is left as stored).
pub(super) async fn apply_only<K>(
    api: &Api<K>,
    object: &K,
    status: &K::Status,
    manager: &str,
    paths: &[&[&str]],
) -> kube::Result<K>
where
    K: Resource<DynamicType = ()> + HasStatus + Clone + Debug + DeserializeOwned,
    K::Status: Serialize,
{
    let full = serde_json::to_value(status).expect("a status serializes");
    let mut owned = json!({});
    for path in paths {
        copy(&full, &mut owned, path);
    }
    let apply = json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "metadata": {"name": object.name_any(), "resourceVersion": object.resource_version()},
        "status": owned,
    });
    api.patch_status(
        &object.name_any(),
        &PatchParams::apply(manager).force(),
        &Patch::Apply(apply),
    )
    .await
}

/// Copies the field at `path` of `from` into `to`, with the objects on the way.
fn copy(from: &Value, to: &mut Value, path: &[&str]) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    let (Some(inner), Value::Object(map)) = (from.get(*first), to) else {
        return;
    };
    if rest.is_empty() {
        map.insert((*first).to_string(), inner.clone());
        return;
    }
    let slot = map.entry((*first).to_string()).or_insert_with(|| json!({}));
    copy(inner, slot, rest);
}

/// Removes the field at `path` from `value`, and the objects on the way that it leaves empty.
fn take(value: &mut Value, path: &[&str]) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    let Value::Object(map) = value else {
        return;
    };
    if rest.is_empty() {
        map.remove(*first);
        return;
    }
    if let Some(inner) = map.get_mut(*first) {
        take(inner, rest);
        if inner.as_object().is_some_and(Map::is_empty) {
            map.remove(*first);
        }
    }
}

/// The merge patch that makes `stored` into `desired`: what differs, object by object (a list
/// is replaced whole), and `null` for what `desired` no longer holds; `None` when they are the
/// same.
fn changes(stored: &Value, desired: &Value) -> Option<Value> {
    let (Value::Object(stored), Value::Object(desired)) = (stored, desired) else {
        return (stored != desired).then(|| desired.clone());
    };
    let mut patch = Map::new();
    for (key, wanted) in desired {
        let change = match stored.get(key) {
            Some(was) => changes(was, wanted),
            None => Some(wanted.clone()),
        };
        if let Some(change) = change {
            patch.insert(key.clone(), change);
        }
    }
    for key in stored.keys().filter(|key| !desired.contains_key(*key)) {
        patch.insert(key.clone(), Value::Null);
    }
    (!patch.is_empty()).then_some(Value::Object(patch))
}

/// A merge patch that removes what `live` holds beyond `desired`, object by object; `None` when
/// it holds nothing more. (Lists are atomic in these schemas: an apply replaces them whole.)
fn removal(live: &Value, desired: &Value) -> Option<Value> {
    let (Value::Object(live), Value::Object(desired)) = (live, desired) else {
        return None;
    };
    let mut patch = Map::new();
    for (key, value) in live {
        match desired.get(key) {
            None => {
                patch.insert(key.clone(), Value::Null);
            }
            Some(wanted) => {
                if let Some(inner) = removal(value, wanted) {
                    patch.insert(key.clone(), inner);
                }
            }
        }
    }
    (!patch.is_empty()).then_some(Value::Object(patch))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_status_holds_beyond_the_desired_one_is_removed_at_any_depth() {
        let live = json!({
            "expiresAt": "2027-03-15T09:00:00Z",
            "billing": {"productionPartners": 0, "seats": {"ESSENTIALS": 0, "RETIRED": 1}},
            "conditions": [{"type": "Ready"}, {"type": "Old"}],
        });
        let desired = json!({
            "billing": {"productionPartners": 0, "seats": {"ESSENTIALS": 0}},
            "conditions": [{"type": "Ready"}],
        });
        assert_eq!(
            removal(&live, &desired),
            Some(json!({"expiresAt": null, "billing": {"seats": {"RETIRED": null}}}))
        );
        assert_eq!(removal(&desired, &desired), None);
        assert_eq!(removal(&Value::Null, &desired), None);
    }

    #[test]
    fn the_changes_patch_what_differs_and_remove_what_is_gone() {
        let stored = json!({
            "level": "Trial",
            "billing": {"productionPartners": 0, "seats": {"ESSENTIALS": 0, "RETIRED": 1}},
            "conditions": [{"type": "Ready", "status": "False"}, {"type": "Old"}],
            "expiresAt": "2027-03-15T09:00:00Z",
        });
        let desired = json!({
            "level": "Trial",
            "billing": {"productionPartners": 0, "seats": {"ESSENTIALS": 2}},
            "conditions": [{"type": "Ready", "status": "True"}],
            "activation": {"sentAt": "2027-03-01T09:00:00Z"},
        });
        let patch = changes(&stored, &desired).unwrap();
        assert_eq!(
            patch,
            json!({
                "billing": {"seats": {"ESSENTIALS": 2, "RETIRED": null}},
                "conditions": [{"type": "Ready", "status": "True"}],
                "activation": {"sentAt": "2027-03-01T09:00:00Z"},
                "expiresAt": null,
            })
        );
        let mut merged = stored.clone();
        json_patch::merge(&mut merged, &patch);
        assert_eq!(
            merged, desired,
            "the patch makes the stored status the desired one"
        );
        assert_eq!(changes(&desired, &desired), None);
        assert_eq!(changes(&Value::Null, &desired), Some(desired.clone()));
    }

    #[test]
    fn a_writer_of_a_few_fields_applies_those_alone() {
        let full = json!({"activation": {"activatedAt": "t", "sentAt": "x"}, "a": 1});
        let mut owned = json!({});
        copy(&full, &mut owned, &["activation", "activatedAt"]);
        copy(&full, &mut owned, &["missing", "field"]);
        assert_eq!(owned, json!({"activation": {"activatedAt": "t"}}));
    }

    #[test]
    fn a_field_of_another_manager_is_neither_applied_nor_removed() {
        let others: &[&[&str]] = &[&["activation", "activatedAt"]];
        let mut live =
            json!({"activation": {"activatedAt": "2027-03-02T09:00:00Z", "sentAt": "x"}});
        let mut desired = live.clone();
        for path in others {
            take(&mut desired, path);
        }
        assert_eq!(desired, json!({"activation": {"sentAt": "x"}}));
        for path in others {
            take(&mut live, path);
        }
        assert_eq!(changes(&live, &desired), None);
        // Alone in its object, the object goes too (and is not removed as a whole either).
        let mut only = json!({"activation": {"activatedAt": "t"}, "a": 1});
        take(&mut only, others[0]);
        assert_eq!(only, json!({"a": 1}));
    }
}
