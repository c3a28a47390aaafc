//! kube-controller-manager's part, for what the server itself does after a delete: the
//! namespace controller empties a Terminating Namespace, and the garbage collector
//! ([`super::gc`]) sees to an owner held by its finalizers.

use std::sync::Arc;
use std::time::Duration;

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::ServerState;
use super::kinds::{Kind, NAMESPACES};
use super::resources::ResourceType;
use super::routing::{Request, Target};
use super::store::Write;

/// How long kube-controller-manager's controllers take to act on a delete: a deleted Namespace
/// stays `Terminating` that long before its content is deleted, and so do a deleted owner's
/// dependents before the garbage collector sees to them.
pub(super) const CONTROLLER_DELAY: Duration = Duration::from_millis(100);

/// After a delete the server answered with 200: the controllers a real cluster runs take
/// their turn a moment later, in the background.
pub(super) fn after_delete(state: &Arc<ServerState>, resource: &ResourceType, target: &Target) {
    if Kind::of(resource).terminates() {
        // The namespace controller's part: empty the Namespace in the background, then remove it.
        let state = state.clone();
        let resource = resource.clone();
        let target = target.clone();
        tokio::spawn(async move {
            tokio::time::sleep(CONTROLLER_DELAY).await;
            let Some(namespace) = state.store.get(
                &resource.key(),
                "",
                target.name.as_deref().unwrap_or_default(),
            ) else {
                return;
            };
            Request::internal(&state, &resource, &target).terminate_namespace(&namespace);
        });
    }
}

impl Request<'_> {
    /// Deleting a namespace deletes what is in it; the namespace goes once it is empty.
    /// Called a moment after the Namespace turned `Terminating`, as kube-controller-manager's
    /// namespace controller does it.
    fn terminate_namespace(&self, namespace: &Value) {
        let name = namespace["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        for ((group, version), resources) in self.state.registry.group_versions() {
            for resource in resources.into_iter().filter(|r| r.namespaced) {
                let (objects, _) = self.state.store.list(&resource.key(), Some(&name));
                for object in objects {
                    let target = Target {
                        group: group.clone(),
                        version: version.clone(),
                        plural: Some(resource.plural.clone()),
                        namespace: Some(name.clone()),
                        name: object["metadata"]["name"].as_str().map(str::to_string),
                        subresource: None,
                    };
                    let _ = Request::internal(self.state, &resource, &target).delete(b"");
                }
            }
        }
        self.remove_namespace_if_empty(&name);
        self.say_what_remains(&name);
    }

    /// A Namespace that stays `Terminating` (its content's finalizers hold it) says why in its
    /// conditions, as kube-controller-manager's namespace controller writes them: what
    /// resources remain, and which finalizers keep them.
    fn say_what_remains(&self, name: &str) {
        let mut resources = BTreeMap::<String, usize>::new();
        let mut finalizers = BTreeMap::<String, usize>::new();
        for (_, types) in self.state.registry.group_versions() {
            for resource in types.into_iter().filter(|r| r.namespaced) {
                let (objects, _) = self.state.store.list(&resource.key(), Some(name));
                for object in &objects {
                    // As the namespace controller prints it (`configmaps.` for the core group).
                    let group_resource = format!("{}.{}", resource.plural, resource.group);
                    *resources.entry(group_resource).or_default() += 1;
                    for f in object["metadata"]["finalizers"]
                        .as_array()
                        .into_iter()
                        .flatten()
                    {
                        *finalizers
                            .entry(f.as_str().unwrap_or_default().to_string())
                            .or_default() += 1;
                    }
                }
            }
        }
        if resources.is_empty() {
            return;
        }
        let now = self.now();
        let condition = |type_: &str, status: bool, reason: &str, message: String| {
            json!({"type": type_, "status": if status { "True" } else { "False" },
                "lastTransitionTime": now, "reason": reason, "message": message})
        };
        let counted = |counts: &BTreeMap<String, usize>, joiner: &str| {
            counts
                .iter()
                .map(|(what, n)| format!("{what}{joiner}{n} resource instances"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut conditions = vec![
            condition(
                "NamespaceDeletionDiscoveryFailure",
                false,
                "ResourcesDiscovered",
                "All resources successfully discovered".into(),
            ),
            condition(
                "NamespaceDeletionGroupVersionParsingFailure",
                false,
                "ParsedGroupVersions",
                "All legacy kube types successfully parsed".into(),
            ),
            condition(
                "NamespaceDeletionContentFailure",
                false,
                "ContentDeleted",
                "All content successfully deleted, may be waiting on finalization".into(),
            ),
            condition(
                "NamespaceContentRemaining",
                true,
                "SomeResourcesRemain",
                format!(
                    "Some resources are remaining: {}",
                    counted(&resources, " has ")
                ),
            ),
        ];
        conditions.push(if finalizers.is_empty() {
            condition(
                "NamespaceFinalizersRemaining",
                false,
                "ContentHasNoFinalizers",
                "All content-preserving finalizers finished".into(),
            )
        } else {
            condition(
                "NamespaceFinalizersRemaining",
                true,
                "SomeFinalizersRemain",
                format!(
                    "Some content in the namespace has finalizers remaining: {}",
                    counted(&finalizers, " in ")
                ),
            )
        });
        let _ = self.state.store.write(NAMESPACES, "", name, |current| {
            Ok::<_, ()>(match current {
                Some(namespace) if !namespace["metadata"]["deletionTimestamp"].is_null() => {
                    let mut namespace = (**namespace).clone();
                    namespace["status"]["conditions"] = json!(conditions);
                    Write::Put(namespace)
                }
                _ => Write::Unchanged,
            })
        });
    }
}
