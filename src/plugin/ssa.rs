//! Writes by server-side apply under the plugin's own field manager, [`FIELD_MANAGER`].
//!
//! An apply states every field its manager wants: a field the manager applied before and leaves
//! out is removed. So each write sends the fields the plugin already owns (`managedFields` of
//! its manager), at their current values, with the command's changes on top: `auto-upgrade`
//! after `convert --expires` keeps the expiration date.
//!
//! A field another manager owns (a GitOps controller such as Argo CD or Flux, or
//! `kubectl apply`) is not taken over: the API server refuses the apply with a conflict, and
//! the plugin says which field and who owns it, unless `--force-conflicts` was given.

use serde_json::{Map, Value, json};

/// The plugin's field manager: what `managedFields` shows for its writes.
pub const FIELD_MANAGER: &str = "kubectl-partner";

/// The `spec` fields `manager` owns by apply, as paths (`["spec", "subscription", "level"]`),
/// read from an object's `metadata.managedFields`.
pub fn owned_spec_fields(object: &Value, manager: &str) -> Vec<Vec<String>> {
    let mut paths = vec![];
    let entries = object["metadata"]["managedFields"].as_array();
    for entry in entries.into_iter().flatten() {
        let ours = entry["manager"] == manager
            && entry["operation"] == "Apply"
            && entry
                .get("subresource")
                .is_none_or(|s| s.as_str() == Some(""));
        if ours && let Some(spec) = entry["fieldsV1"].get("f:spec") {
            leaves(spec, &mut vec!["spec".to_string()], &mut paths);
        }
    }
    paths
}

/// The leaves under a `fieldsV1` node: `f:` keys whose value has no `f:` children.
fn leaves(node: &Value, path: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    let children: Vec<(&str, &Value)> = node
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| k.strip_prefix("f:").map(|name| (name, v)))
        .collect();
    if children.is_empty() {
        out.push(path.clone());
        return;
    }
    for (name, child) in children {
        path.push(name.to_string());
        leaves(child, path, out);
        path.pop();
    }
}

fn get<'a>(object: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(object, |node, key| node.get(key))
}

fn set(object: &mut Value, path: &[String], value: Value) {
    let mut node = object;
    for key in &path[..path.len() - 1] {
        if !node.get(key).is_some_and(Value::is_object) {
            node[key] = Value::Object(Map::new());
        }
        node = node.get_mut(key).expect("just made");
    }
    node[path.last().expect("a path").as_str()] = value;
}

/// The applied configuration of a Partner: what the plugin owns of `current` (none for a new
/// one), at its current values, with `changes` set on top.
pub fn applied_config(
    name: &str,
    namespace: &str,
    current: Option<&Value>,
    changes: &[(&[&str], Value)],
) -> Value {
    let mut config = json!({
        "apiVersion": "partner-operator.io/v1alpha1",
        "kind": "Partner",
        "metadata": {"name": name, "namespace": namespace},
    });
    if let Some(current) = current {
        for path in owned_spec_fields(current, FIELD_MANAGER) {
            if let Some(value) = get(current, &path) {
                set(&mut config, &path, value.clone());
            }
        }
    }
    for (path, value) in changes {
        let path: Vec<String> = path.iter().map(|s| s.to_string()).collect();
        set(&mut config, &path, value.clone());
    }
    config
}

/// One field another manager owns, from an apply's conflict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// `spec.subscription.level`
    pub field: String,
    pub manager: String,
}

/// The conflicts of a refused apply (409, reason `Conflict`): from the Status' causes, else
/// from its message (`conflict with "argocd-controller" using ...: .spec.subscription.level`).
pub fn conflicts(status: &kube::core::Status) -> Vec<Conflict> {
    let manager_of = |text: &str| {
        let start = text.find("conflict with \"")? + "conflict with \"".len();
        let end = text[start..].find('"')?;
        Some(text[start..start + end].to_string())
    };
    let from_causes: Vec<Conflict> = status
        .details
        .iter()
        .flat_map(|d| &d.causes)
        .filter(|c| c.reason == "FieldManagerConflict")
        .filter_map(|c| {
            Some(Conflict {
                field: c.field.trim_start_matches('.').to_string(),
                manager: manager_of(&c.message)?,
            })
        })
        .collect();
    if !from_causes.is_empty() {
        return from_causes;
    }
    // `Apply failed with 1 conflict: conflict with "m" using v1: .spec.a`, or, for several,
    // `conflicts with "m":\n- .spec.a\n- .spec.b`.
    let mut found = vec![];
    let mut manager = None;
    for line in status.message.lines() {
        if let Some(m) = manager_of(&line.replace("conflicts with", "conflict with")) {
            manager = Some(m);
        }
        let field = match line.rfind(": .") {
            Some(at) => Some(&line[at + 3..]),
            None => line.trim_start().strip_prefix("- ."),
        };
        if let (Some(manager), Some(field)) = (&manager, field) {
            found.push(Conflict {
                field: field.trim().to_string(),
                manager: manager.clone(),
            });
        }
    }
    found
}

/// Whether every conflict is a value nobody declared: the conflicting manager is `kubectl
/// apply` without `--server-side` ([`CLIENT_SIDE_APPLY`], which writes by update), and the
/// object's `kubectl.kubernetes.io/last-applied-configuration` (what that manager declared)
/// does not hold the field. kube-apiserver records the defaults it fills in under the manager
/// of the write that created the object, so a Partner made by `kubectl apply -f` "owns" its
/// defaulted `spec.subscription.level`; but no `kubectl apply` of that configuration will set
/// it back, so taking it over fights nobody. Any other manager (`kubectl patch`, `kubectl
/// edit`, a controller) set its fields on purpose, and the annotation says nothing of them.
pub fn only_undeclared_defaults(object: &Value, conflicts: &[Conflict]) -> bool {
    let Some(applied) =
        object["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .as_str()
            .and_then(|text| serde_json::from_str::<Value>(text).ok())
    else {
        return false;
    };
    let managers = object["metadata"]["managedFields"].as_array();
    !conflicts.is_empty()
        && conflicts.iter().all(|conflict| {
            let by_update_only = conflict.manager == CLIENT_SIDE_APPLY
                && managers.into_iter().flatten().all(|entry| {
                    entry["manager"] != conflict.manager.as_str() || entry["operation"] == "Update"
                });
            let path: Vec<String> = conflict.field.split('.').map(String::from).collect();
            by_update_only && get(&applied, &path).is_none()
        })
}

/// The field manager of `kubectl apply` without `--server-side`: the one manager whose
/// declarations `last-applied-configuration` records.
const CLIENT_SIDE_APPLY: &str = "kubectl-client-side-apply";

/// The one line that refuses to take fields over.
pub fn conflict_line(partner: &str, conflicts: &[Conflict]) -> String {
    let owned: Vec<String> = conflicts
        .iter()
        .map(|c| format!("{} is managed by {:?}", c.field, c.manager))
        .collect();
    format!(
        "{partner}: {}; changing it here would fight that manager (a GitOps tool would set it \
         back): change it where that manager takes it from, or run again with --force-conflicts \
         to take it over",
        owned.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;
    use kube::core::response::{StatusCause, StatusDetails};

    fn partner_with_managers() -> Value {
        json!({
            "metadata": {"name": "contoso", "managedFields": [
                {"manager": "argocd-controller", "operation": "Apply", "fieldsV1": {
                    "f:spec": {"f:organizationName": {}, "f:subscription": {"f:autoUpgrade": {}}}}},
                {"manager": "kubectl-partner", "operation": "Apply", "fieldsV1": {
                    "f:spec": {"f:subscription": {".": {}, "f:level": {}, "f:expirationDate": {}}}}},
                {"manager": "kubectl-partner", "operation": "Update", "fieldsV1": {
                    "f:spec": {"f:notificationEmail": {}}}},
                {"manager": "partner-operator", "operation": "Apply", "subresource": "status",
                    "fieldsV1": {"f:status": {"f:subscriptionLevel": {}}}},
            ]},
            "spec": {
                "organizationName": "Contoso",
                "notificationEmail": "a@contoso.example",
                "subscription": {"level": "Production", "expirationDate": "2027-06-30T00:00:00Z",
                    "autoUpgrade": true},
            },
        })
    }

    #[test]
    fn only_the_plugins_applied_spec_fields_are_its_own() {
        let mut owned = owned_spec_fields(&partner_with_managers(), FIELD_MANAGER);
        owned.sort();
        assert_eq!(
            owned,
            [
                vec!["spec", "subscription", "expirationDate"],
                vec!["spec", "subscription", "level"],
            ]
        );
    }

    #[test]
    fn an_apply_keeps_what_the_plugin_owns_and_changes_the_rest() {
        let current = partner_with_managers();
        let config = applied_config(
            "contoso",
            "partners",
            Some(&current),
            &[(&["spec", "subscription", "autoUpgrade"], json!(false))],
        );
        assert_eq!(
            config,
            json!({
                "apiVersion": "partner-operator.io/v1alpha1",
                "kind": "Partner",
                "metadata": {"name": "contoso", "namespace": "partners"},
                "spec": {"subscription": {"level": "Production",
                    "expirationDate": "2027-06-30T00:00:00Z", "autoUpgrade": false}},
            })
        );
        // A new Partner: the changes alone.
        let new = applied_config(
            "a",
            "b",
            None,
            &[(&["spec", "organizationName"], json!("A"))],
        );
        assert_eq!(new["spec"], json!({"organizationName": "A"}));
    }

    fn refused(message: &str, causes: Vec<StatusCause>) -> Status {
        Status {
            code: 409,
            reason: "Conflict".into(),
            message: message.into(),
            details: Some(StatusDetails {
                name: "contoso".into(),
                group: "partner-operator.io".into(),
                kind: "partners".into(),
                uid: String::new(),
                causes,
                retry_after_seconds: 0,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_default_recorded_under_kubectl_apply_is_nobodys_declaration() {
        let object = |annotation: Option<&str>, operation: &str| {
            json!({"metadata": {
                "annotations": annotation.map(|a| json!({
                    "kubectl.kubernetes.io/last-applied-configuration": a})),
                "managedFields": [{"manager": "kubectl-client-side-apply", "operation": operation,
                    "fieldsV1": {"f:spec": {"f:subscription": {"f:level": {}, "f:autoUpgrade": {}}}}}],
            }})
        };
        let applied = r#"{"spec":{"subscription":{"autoUpgrade":false}}}"#;
        let on = |field: &str| {
            vec![Conflict {
                field: field.into(),
                manager: "kubectl-client-side-apply".into(),
            }]
        };
        let defaulted = on("spec.subscription.level");
        let declared = on("spec.subscription.autoUpgrade");
        assert!(only_undeclared_defaults(
            &object(Some(applied), "Update"),
            &defaulted
        ));
        assert!(!only_undeclared_defaults(
            &object(Some(applied), "Update"),
            &declared
        ));
        let mut both = defaulted.clone();
        both.extend(declared);
        assert!(!only_undeclared_defaults(
            &object(Some(applied), "Update"),
            &both
        ));
        // An applier owns what it applied: never taken over.
        assert!(!only_undeclared_defaults(
            &object(Some(applied), "Apply"),
            &defaulted
        ));
        // Set by `kubectl patch`: on purpose, though the annotation does not hold it.
        let patched = json!({"metadata": {
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": applied},
            "managedFields": [{"manager": "kubectl-patch", "operation": "Update",
                "fieldsV1": {"f:spec": {"f:subscription": {"f:expirationDate": {}}}}}],
        }});
        let by_patch = vec![Conflict {
            field: "spec.subscription.expirationDate".into(),
            manager: "kubectl-patch".into(),
        }];
        assert!(!only_undeclared_defaults(&patched, &by_patch));
        // Without kubectl's record of what was declared, nothing is known to be a default.
        assert!(!only_undeclared_defaults(
            &object(None, "Update"),
            &defaulted
        ));
        assert!(!only_undeclared_defaults(
            &object(Some(applied), "Update"),
            &[]
        ));
    }

    #[test]
    fn conflicts_name_the_field_and_its_manager() {
        let from_causes = refused(
            "Apply failed with 1 conflict: conflict with \"argocd-controller\" using partner-operator.io/v1alpha1: .spec.subscription.autoUpgrade",
            vec![StatusCause {
                reason: "FieldManagerConflict".into(),
                message: "conflict with \"argocd-controller\" using partner-operator.io/v1alpha1"
                    .into(),
                field: ".spec.subscription.autoUpgrade".into(),
            }],
        );
        let expected = vec![Conflict {
            field: "spec.subscription.autoUpgrade".into(),
            manager: "argocd-controller".into(),
        }];
        assert_eq!(conflicts(&from_causes), expected);
        let from_message = refused(
            "Apply failed with 1 conflict: conflict with \"argocd-controller\" using partner-operator.io/v1alpha1: .spec.subscription.autoUpgrade",
            vec![],
        );
        assert_eq!(conflicts(&from_message), expected);
        let several = refused(
            "Apply failed with 2 conflicts: conflicts with \"flux\":\n- .spec.a\n- .spec.b",
            vec![],
        );
        assert_eq!(
            conflicts(&several),
            [
                Conflict {
                    field: "spec.a".into(),
                    manager: "flux".into()
                },
                Conflict {
                    field: "spec.b".into(),
                    manager: "flux".into()
                },
            ]
        );
        assert_eq!(
            conflict_line("partners/contoso", &expected),
            "partners/contoso: spec.subscription.autoUpgrade is managed by \"argocd-controller\"; \
             changing it here would fight that manager (a GitOps tool would set it back): change \
             it where that manager takes it from, or run again with --force-conflicts to take it over"
        );
    }
}
