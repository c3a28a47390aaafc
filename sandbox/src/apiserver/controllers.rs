//! kube-controller-manager's part, for what the server itself does after a delete: the
//! namespace controller empties a Terminating Namespace, and the garbage collector removes the
//! references to a deleted owner and deletes the dependents it leaves without owners.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::ServerState;
use super::deletion::FOREGROUND_DELETION;
use super::kinds::Kind;
use super::resources::ResourceType;
use super::routing::{Request, Target};

/// How long kube-controller-manager's controllers take to act on a delete: a deleted Namespace
/// stays `Terminating` that long before its content is deleted, and so do a deleted owner's
/// dependents before the garbage collector sees to them.
const CONTROLLER_DELAY: Duration = Duration::from_millis(100);

/// After a delete the server answered with 200: the controllers a real cluster runs take
/// their turn a moment later, in the background.
pub(super) fn after_delete(
    state: &Arc<ServerState>,
    resource: &ResourceType,
    target: &Target,
    deleted_uid: Option<String>,
) {
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
    if state.owners_seen.load(std::sync::atomic::Ordering::Relaxed) {
        let state = state.clone();
        let target = target.clone();
        let resource = resource.clone();
        tokio::spawn(async move {
            tokio::time::sleep(CONTROLLER_DELAY).await;
            collect_garbage(&state, &resource, &target, deleted_uid.as_deref());
        });
    }
}

/// kube-controller-manager's garbage collector, for one deleted (or deleting) owner: its
/// dependents lose their reference to it, and those left without owners are deleted; an owner
/// deleted in the foreground then loses its `foregroundDeletion` finalizer.
fn collect_garbage(
    state: &Arc<ServerState>,
    resource: &ResourceType,
    target: &Target,
    deleted_uid: Option<&str>,
) {
    let name = target.name.as_deref().unwrap_or_default();
    let namespace = target.namespace.as_deref().unwrap_or_default();
    let owner = state.store.get(&resource.key(), namespace, name);
    // The owner's uid, as it was when the delete came.
    let owner_uid = deleted_uid.map(str::to_string).or_else(|| {
        owner
            .as_ref()
            .and_then(|o| o["metadata"]["uid"].as_str().map(str::to_string))
    });
    let Some(owner_uid) = owner_uid else { return };
    for ((group, version), resources) in state.registry.group_versions() {
        for dependent_type in resources {
            let (objects, _) = state.store.list(&dependent_type.key(), None);
            for object in objects {
                let refs = object["metadata"]["ownerReferences"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let is_ours = |r: &Value| r["uid"].as_str() == Some(owner_uid.as_str());
                if !refs.iter().any(is_ours) {
                    continue;
                }
                let remaining: Vec<Value> = refs.into_iter().filter(|r| !is_ours(r)).collect();
                let dependent_target = Target {
                    group: group.clone(),
                    version: version.clone(),
                    plural: Some(dependent_type.plural.clone()),
                    namespace: object["metadata"]["namespace"].as_str().map(str::to_string),
                    name: object["metadata"]["name"].as_str().map(str::to_string),
                    subresource: None,
                };
                let request = Request::internal(state, &dependent_type, &dependent_target);
                if remaining.is_empty() {
                    let _ = request.delete(b"");
                } else {
                    let _ = request.write_existing(
                        |current| {
                            let mut current = current.clone();
                            current["metadata"]["ownerReferences"] = json!(remaining);
                            Ok(current)
                        },
                        None,
                    );
                }
            }
        }
    }
    // Only an owner deleted in the foreground waits for its dependents: rewriting any other
    // deleting owner (a Terminating Namespace has no finalizers of its own) would remove it
    // before its own controller has finished with it.
    if let Some(owner) = owner
        && owner["metadata"]["uid"].as_str() == Some(owner_uid.as_str())
        && !owner["metadata"]["deletionTimestamp"].is_null()
        && owner["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| f.contains(&json!(FOREGROUND_DELETION)))
    {
        let _ = Request::internal(state, resource, target).write_existing(
            |current| {
                let mut current = current.clone();
                if let Some(finalizers) = current["metadata"]["finalizers"].as_array_mut() {
                    finalizers.retain(|f| f != FOREGROUND_DELETION);
                }
                Ok(current)
            },
            None,
        );
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
    }
}
