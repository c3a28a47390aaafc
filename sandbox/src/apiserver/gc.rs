//! kube-controller-manager's garbage collector, as far as objects the server stores go: once an
//! owner is gone its dependents follow (unless another owner holds them); an owner deleted with
//! `propagationPolicy: Orphan` first lets its dependents go (the `orphan` finalizer); one
//! deleted in the foreground stays until the dependents that block it are gone (the
//! `foregroundDeletion` finalizer); and a dependent whose owners never existed is deleted.
//!
//! It acts a moment after the write that calls for it, in the background, as the real one does,
//! and only once some object was written with `ownerReferences`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde_json::{Value, json};

use super::ServerState;
use super::controllers::CONTROLLER_DELAY;
use super::deletion::{FOREGROUND_DELETION, ORPHAN};
use super::resources::ResourceType;
use super::routing::{Request, Target};

/// An object the collector looks at: its type, where it is, and what it was when read.
struct Located {
    resource: ResourceType,
    target: Target,
    object: Arc<Value>,
}

impl Located {
    fn of(resource: &ResourceType, object: Arc<Value>) -> Self {
        let target = Target {
            group: resource.group.clone(),
            version: resource.version.clone(),
            plural: Some(resource.plural.clone()),
            namespace: object["metadata"]["namespace"].as_str().map(str::to_string),
            name: object["metadata"]["name"].as_str().map(str::to_string),
            subresource: None,
        };
        Self {
            resource: resource.clone(),
            target,
            object,
        }
    }

    fn request<'a>(&'a self, state: &'a ServerState) -> Request<'a> {
        Request::internal(state, &self.resource, &self.target)
    }

    fn uid(&self) -> &str {
        self.object["metadata"]["uid"].as_str().unwrap_or_default()
    }

    /// Being deleted, and held by `finalizer`.
    fn deleting_with(&self, finalizer: &str) -> bool {
        !self.object["metadata"]["deletionTimestamp"].is_null()
            && has_finalizer(&self.object, finalizer)
    }
}

fn has_finalizer(object: &Value, finalizer: &str) -> bool {
    object["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|f| f.iter().any(|f| f == finalizer))
}

fn owner_refs(object: &Value) -> Vec<Value> {
    object["metadata"]["ownerReferences"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Runs `work` a moment from now; when it is about dependents, only if any object ever had
/// owners.
fn later(state: &ServerState, dependents: bool, work: impl FnOnce(&ServerState) + Send + 'static) {
    if dependents && !state.owners_seen.load(Ordering::Relaxed) {
        return;
    }
    let Some(state) = state.this.upgrade() else {
        return;
    };
    tokio::spawn(async move {
        tokio::time::sleep(CONTROLLER_DELAY).await;
        work(&state);
    });
}

/// An object was removed: its dependents are collected, and an owner of it that waits in the
/// foreground for its dependents may now go.
pub(super) fn removed(state: &ServerState, object: &Value) {
    let uid = object["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let namespace = object["metadata"]["namespace"].as_str().map(str::to_string);
    let refs = owner_refs(object);
    later(state, true, move |state| {
        for dependent in dependents_of(state, &uid) {
            attempt_to_delete(state, &dependent);
        }
        for owner_ref in &refs {
            if let Owner::Present(owner) = resolve(state, owner_ref, namespace.as_deref()) {
                release_if_unblocked(state, &owner);
            }
        }
    });
}

/// An object is being deleted and still there: the collector's part for an `orphan` or
/// `foregroundDeletion` finalizer on it.
pub(super) fn deleting(state: &ServerState, resource: &ResourceType, target: &Target) {
    let (resource, target) = (resource.clone(), target.clone());
    // An `orphan` finalizer is removed whether or not the object had dependents.
    later(state, false, move |state| {
        let Some(object) = state.store.get(
            &resource.key(),
            target.namespace.as_deref().unwrap_or_default(),
            target.name.as_deref().unwrap_or_default(),
        ) else {
            return;
        };
        let owner = Located::of(&resource, object);
        if owner.deleting_with(ORPHAN) {
            orphan_dependents(state, &owner);
        } else if owner.deleting_with(FOREGROUND_DELETION) {
            for dependent in dependents_of(state, owner.uid()) {
                if !dependent.deleting_with(FOREGROUND_DELETION) {
                    attempt_to_delete(state, &dependent);
                }
            }
            release_if_unblocked(state, &owner);
        }
    });
}

/// An object was written with `ownerReferences`: if none of its owners exists, it goes.
pub(super) fn written(state: &ServerState, resource: &ResourceType, object: &Value) {
    if owner_refs(object).is_empty() {
        return;
    }
    let resource = resource.clone();
    let namespace = object["metadata"]["namespace"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let name = object["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    later(state, true, move |state| {
        if let Some(object) = state.store.get(&resource.key(), &namespace, &name) {
            attempt_to_delete(state, &Located::of(&resource, object));
        }
    });
}

/// What an owner reference leads to.
enum Owner {
    /// A kind the server does not serve: the collector cannot tell, and leaves the dependent.
    Unresolvable,
    /// No such object, or another one of that name (another uid).
    Absent,
    Present(Box<Located>),
}

/// The owner `owner_ref` names, looked up in the dependent's namespace (a cluster-scoped
/// dependent's namespaced owner is therefore absent, as the real collector takes it).
fn resolve(state: &ServerState, owner_ref: &Value, namespace: Option<&str>) -> Owner {
    let api_version = owner_ref["apiVersion"].as_str().unwrap_or_default();
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let Some(resource) = state
        .registry
        .resources_of(group, version)
        .into_iter()
        .flatten()
        .find(|r| owner_ref["kind"].as_str() == Some(r.kind.as_str()))
    else {
        return Owner::Unresolvable;
    };
    let namespace = if resource.namespaced {
        namespace.unwrap_or_default()
    } else {
        ""
    };
    let name = owner_ref["name"].as_str().unwrap_or_default();
    match state.store.get(&resource.key(), namespace, name) {
        Some(object) if object["metadata"]["uid"] == owner_ref["uid"] => {
            Owner::Present(Box::new(Located::of(&resource, object)))
        }
        _ => Owner::Absent,
    }
}

/// Every object with an owner reference to `uid`.
fn dependents_of(state: &ServerState, uid: &str) -> Vec<Located> {
    let mut dependents = vec![];
    for (_, resources) in state.registry.group_versions() {
        for resource in resources {
            let (objects, _) = state.store.list(&resource.key(), None);
            dependents.extend(
                objects
                    .into_iter()
                    .filter(|o| owner_refs(o).iter().any(|r| r["uid"] == uid))
                    .map(|o| Located::of(&resource, o)),
            );
        }
    }
    dependents
}

/// The dependents whose reference to `owner` blocks its deletion (`blockOwnerDeletion`).
fn blocking_dependents(state: &ServerState, owner: &Located) -> Vec<Located> {
    dependents_of(state, owner.uid())
        .into_iter()
        .filter(|d| {
            owner_refs(&d.object)
                .iter()
                .any(|r| r["uid"] == owner.uid() && r["blockOwnerDeletion"] == true)
        })
        .collect()
}

/// The real collector's `attemptToDeleteItem` for one dependent: with an owner that exists
/// and is not waiting for it, it only loses its references to the others; without one, it is
/// deleted (in the foreground when an owner waits for it and it has dependents of its own).
fn attempt_to_delete(state: &ServerState, dependent: &Located) {
    let namespace = dependent.target.namespace.as_deref();
    let refs = owner_refs(&dependent.object);
    if refs.is_empty() {
        // Orphaned meanwhile: nothing owns it any more, and nothing is to collect.
        return;
    }
    let (mut solid, mut dropped, mut waiting) = (false, vec![], false);
    for owner_ref in refs {
        match resolve(state, &owner_ref, namespace) {
            Owner::Unresolvable => return,
            Owner::Absent => dropped.push(owner_ref["uid"].clone()),
            Owner::Present(owner) if owner.deleting_with(FOREGROUND_DELETION) => {
                waiting = true;
                dropped.push(owner_ref["uid"].clone());
            }
            Owner::Present(_) => solid = true,
        }
    }
    let request = dependent.request(state);
    if solid {
        if !dropped.is_empty() {
            let _ = request.write_existing(|current| Ok(without_refs(current, &dropped)), None);
        }
        return;
    }
    let options = if waiting && !dependents_of(state, dependent.uid()).is_empty() {
        json!({"propagationPolicy": "Foreground"})
    } else {
        // The finalizers it carries say how (an `orphan` or `foregroundDeletion` one).
        json!({})
    };
    let _ = request.delete(options.to_string().as_bytes());
}

/// `propagationPolicy: Orphan`: the dependents lose their reference to the owner, then the
/// owner its `orphan` finalizer.
fn orphan_dependents(state: &ServerState, owner: &Located) {
    let uid = [json!(owner.uid())];
    for dependent in dependents_of(state, owner.uid()) {
        let _ = dependent
            .request(state)
            .write_existing(|current| Ok(without_refs(current, &uid)), None);
    }
    remove_finalizer(state, owner, ORPHAN);
}

/// An owner deleted in the foreground goes once no dependent blocks it.
fn release_if_unblocked(state: &ServerState, owner: &Located) {
    if owner.deleting_with(FOREGROUND_DELETION) && blocking_dependents(state, owner).is_empty() {
        remove_finalizer(state, owner, FOREGROUND_DELETION);
    }
}

fn remove_finalizer(state: &ServerState, owner: &Located, finalizer: &str) {
    let _ = owner.request(state).write_existing(
        |current| {
            let mut current = current.clone();
            if let Some(finalizers) = current["metadata"]["finalizers"].as_array_mut() {
                finalizers.retain(|f| f != finalizer);
            }
            Ok(current)
        },
        None,
    );
}

fn without_refs(object: &Value, uids: &[Value]) -> Value {
    let mut object = object.clone();
    let kept: Vec<Value> = owner_refs(&object)
        .into_iter()
        .filter(|r| !uids.contains(&r["uid"]))
        .collect();
    match kept.is_empty() {
        true => {
            if let Some(meta) = object["metadata"].as_object_mut() {
                meta.remove("ownerReferences");
            }
        }
        false => object["metadata"]["ownerReferences"] = json!(kept),
    }
    object
}
