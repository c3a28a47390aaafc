//! Deletion: delete (preconditions, finalizers, `deletionTimestamp`, foreground propagation)
//! and deletecollection, and what goes with a removed object: a CRD's resources and objects,
//! and a Terminating Namespace once it is empty.

use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::errors::{ApiError, ApiResult};
use super::kinds::{Kind, NAMESPACES};
use super::resources::ResourceType;
use super::routing::{Query, Request, Target, json_response};
use super::store::{Write, Written};

/// The finalizer of an object deleted with `propagationPolicy: Foreground`.
pub(super) const FOREGROUND_DELETION: &str = "foregroundDeletion";
/// The finalizer of an object deleted with `propagationPolicy: Orphan`.
pub(super) const ORPHAN: &str = "orphan";

/// Namespaces a cluster cannot do without: kube-apiserver's NamespaceLifecycle admission
/// refuses to delete them.
const UNDELETABLE_NAMESPACES: [&str; 3] = ["default", "kube-system", "kube-public"];

/// What a delete asks for besides the object: `DeleteOptions`, from the body or the query.
struct DeleteOptions {
    uid: Option<String>,
    resource_version: Option<String>,
    policy: Option<String>,
    orphan_dependents: Option<bool>,
}

impl DeleteOptions {
    /// The options, validated as kube-apiserver validates them (an unknown propagation policy,
    /// or one given with the deprecated `orphanDependents`, is refused with 422).
    fn parse(body: &[u8], query: &Query) -> Result<Self, ApiError> {
        let body: Value = serde_json::from_slice(body).unwrap_or(json!({}));
        let text = |v: &Value| v.as_str().map(str::to_string);
        let options = Self {
            uid: text(&body["preconditions"]["uid"]),
            resource_version: text(&body["preconditions"]["resourceVersion"]),
            policy: text(&body["propagationPolicy"]).or_else(|| query.propagation_policy.clone()),
            orphan_dependents: body["orphanDependents"].as_bool(),
        };
        let invalid = |message: String| {
            ApiError::invalid_request("DeleteOptions.meta.k8s.io", "propagationPolicy", &message)
        };
        if let Some(policy) = &options.policy {
            if options.orphan_dependents.is_some() {
                return Err(invalid(format!(
                    "propagationPolicy: Invalid value: {policy:?}: orphanDependents and deletionPropagation cannot be both set"
                )));
            }
            if !matches!(policy.as_str(), "Foreground" | "Background" | "Orphan") {
                return Err(invalid(format!(
                    "propagationPolicy: Unsupported value: {policy:?}: supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\""
                )));
            }
        }
        Ok(options)
    }

    fn check_preconditions(
        &self,
        resource: &ResourceType,
        current: &Value,
    ) -> Result<(), ApiError> {
        let name = current["metadata"]["name"].as_str().unwrap_or_default();
        let stored = |field: &str| current["metadata"][field].as_str().unwrap_or_default();
        if let Some(uid) = &self.uid
            && stored("uid") != uid
        {
            if matches!(
                Kind::of(resource),
                Kind::Namespace | Kind::CustomResourceDefinition
            ) {
                // These registries check it themselves, in other words.
                let mut error =
                    ApiError::uid_precondition_failed(resource, name, uid, stored("uid"));
                if Kind::of(resource) == Kind::CustomResourceDefinition {
                    error.lowercase_precondition();
                }
                return Err(error);
            }
            return Err(ApiError::delete_precondition_failed(
                resource,
                name,
                format!(
                    "the UID in the precondition ({uid}) does not match the UID in record ({}). The object might have been deleted and then recreated",
                    stored("uid")
                ),
            ));
        }
        if let Some(version) = &self.resource_version
            && stored("resourceVersion") != version
        {
            return Err(ApiError::delete_precondition_failed(
                resource,
                name,
                format!(
                    "the ResourceVersion in the precondition ({version}) does not match the ResourceVersion in record ({}). The object might have been modified",
                    stored("resourceVersion")
                ),
            ));
        }
        Ok(())
    }

    /// The garbage collector's finalizers the object is to carry while it is deleted: what
    /// the options ask for, else what the object already carries (kube-apiserver's
    /// `deletionFinalizersForGarbageCollection`).
    fn finalizers_for(&self, current: &[Value]) -> Vec<Value> {
        let has = |f: &str| current.iter().any(|c| c == f);
        let (orphan, foreground) = match (self.orphan_dependents, self.policy.as_deref()) {
            (Some(orphan), _) => (orphan, false),
            (None, Some(policy)) => (policy == "Orphan", policy == "Foreground"),
            (None, None) if has(ORPHAN) => (true, false),
            (None, None) => (false, has(FOREGROUND_DELETION)),
        };
        let mut finalizers: Vec<Value> = current
            .iter()
            .filter(|f| *f != ORPHAN && *f != FOREGROUND_DELETION)
            .cloned()
            .collect();
        if orphan {
            finalizers.push(json!(ORPHAN));
        }
        if foreground {
            finalizers.push(json!(FOREGROUND_DELETION));
        }
        finalizers
    }
}

/// What a delete does to `current`: removes it, or, while finalizers (its own, or the garbage
/// collector's that the options ask for) hold it, marks it deleted (`deletionTimestamp`, and
/// a new `generation` for a kind that has one, as kube-apiserver does for controllers to see).
fn deletion_of(current: &Value, options: &DeleteOptions, kind: Kind, now: &str) -> Write {
    let before: Vec<Value> = current["metadata"]["finalizers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let finalizers = options.finalizers_for(&before);
    let same_set =
        finalizers.len() == before.len() && finalizers.iter().all(|f| before.contains(f));
    let deleting = !current["metadata"]["deletionTimestamp"].is_null();
    if finalizers.is_empty() && !kind.terminates() {
        return Write::Delete;
    }
    if deleting && same_set {
        return Write::Unchanged;
    }
    let mut object = current.clone();
    if !same_set {
        object["metadata"]["finalizers"] = json!(finalizers);
    }
    if !deleting {
        object["metadata"]["deletionTimestamp"] = json!(now);
        object["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        if let Some(generation) = current["metadata"]["generation"].as_i64() {
            object["metadata"]["generation"] = json!(generation + 1);
        }
        if kind.terminates() {
            object["status"]["phase"] = json!("Terminating");
        }
    }
    Write::Put(object)
}

/// What kube-apiserver answers a delete that removed the object with, for the kinds that do
/// not return the object itself: a `Status` naming it.
fn deleted_status(resource: &ResourceType, object: &Value) -> Value {
    let mut details = json!({"name": object["metadata"]["name"], "kind": resource.plural,
        "uid": object["metadata"]["uid"]});
    if !resource.group.is_empty() {
        details["group"] = json!(resource.group);
    }
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
        "details": details})
}

impl Request<'_> {
    /// Deletes every object the selectors match, one by one, as kube-apiserver does; answers
    /// with the list of what it deleted.
    pub(super) fn delete_collection(&self, body: &[u8]) -> ApiResult {
        let (labels, fields) = self.selectors()?;
        let (objects, revision) = self
            .state
            .store
            .list(&self.key(), self.target.namespace.as_deref());
        let mut deleted = vec![];
        for object in objects
            .iter()
            .filter(|o| labels.matches(o) && fields.matches(o))
        {
            let target = Target {
                namespace: object["metadata"]["namespace"].as_str().map(str::to_string),
                name: object["metadata"]["name"].as_str().map(str::to_string),
                subresource: None,
                ..self.target.clone()
            };
            let request = Request {
                target: &target,
                ..*self
            };
            if request.delete(body).is_ok() {
                deleted.push(object.clone());
            }
        }
        let list = json!({
            "kind": format!("{}List", self.resource.kind),
            "apiVersion": self.resource.api_version(),
            "metadata": {"resourceVersion": revision.to_string()},
            "items": deleted.iter().map(|o| &**o).collect::<Vec<_>>(),
        });
        Ok(axum::Json(list).into_response())
    }

    pub(super) fn delete(&self, body: &[u8]) -> ApiResult {
        let kind = Kind::of(self.resource);
        if kind == Kind::Namespace && UNDELETABLE_NAMESPACES.contains(&self.name()) {
            return Err(ApiError::namespace_undeletable(self.name()));
        }
        let options = DeleteOptions::parse(body, self.query)?;
        let resource = self.resource;
        let name = self.name().to_string();
        let now = self.now();
        let dry_run = self.query.dry_run;
        let written = self
            .state
            .store
            .write(&self.key(), self.namespace(), &name, |current| {
                let current = current.ok_or_else(|| ApiError::not_found(resource, &name))?;
                options.check_preconditions(resource, current)?;
                if dry_run {
                    return Ok(Write::Unchanged);
                }
                Ok(deletion_of(current, &options, kind, &now))
            })?;
        if let Written::Stored(object) = &written
            && [ORPHAN, FOREGROUND_DELETION].iter().any(|f| {
                object["metadata"]["finalizers"]
                    .as_array()
                    .is_some_and(|a| a.contains(&json!(f)))
            })
        {
            super::gc::deleting(self.state, self.resource, self.target);
        }
        match &written {
            Written::Deleted(object) => {
                self.after_removal(object);
                if kind.returns_deleted_object() {
                    return Ok(json_response(StatusCode::OK, object, &[]));
                }
                if kind.defines_resources() {
                    // kube-apiserver answers with the CRD marked deleted while its custom
                    // resources go; the sandbox has removed them already.
                    let mut answer = (**object).clone();
                    answer["metadata"]["deletionTimestamp"] = json!(now);
                    return Ok(json_response(StatusCode::OK, &answer, &[]));
                }
                Ok(json_response(
                    StatusCode::OK,
                    &deleted_status(self.resource, object),
                    &[],
                ))
            }
            // Deletion is under way (finalizers): the object as it now is; 202 only when
            // the client asked for dependents to go, with the old `orphanDependents: false`.
            written if options.orphan_dependents == Some(false) => {
                Ok(json_response(StatusCode::ACCEPTED, written.object(), &[]))
            }
            written => Ok(json_response(StatusCode::OK, written.object(), &[])),
        }
    }

    pub(super) fn after_removal(&self, object: &Value) {
        if Kind::of(self.resource).defines_resources() {
            let group = object["spec"]["group"].as_str().unwrap_or_default();
            let plural = object["spec"]["names"]["plural"]
                .as_str()
                .unwrap_or_default();
            for version in object["spec"]["versions"].as_array().into_iter().flatten() {
                let version = version["name"].as_str().unwrap_or_default();
                // The custom resources go with their definition.
                if let Some(resource) = self.state.registry.get(group, version, plural) {
                    let (objects, _) = self.state.store.list(&resource.key(), None);
                    for object in objects {
                        let _ = self.state.store.write(
                            &resource.key(),
                            object["metadata"]["namespace"].as_str().unwrap_or_default(),
                            object["metadata"]["name"].as_str().unwrap_or_default(),
                            |current| current.map(|_| Write::Delete).ok_or(()),
                        );
                    }
                    self.state.store.forget(&resource.key());
                }
                self.state.registry.remove(group, version, plural);
            }
        }
        if let Some(namespace) = object["metadata"]["namespace"].as_str() {
            self.remove_namespace_if_empty(namespace);
        }
        super::gc::removed(self.state, object);
    }

    pub(super) fn remove_namespace_if_empty(&self, namespace: &str) {
        let terminating = self
            .state
            .store
            .get(NAMESPACES, "", namespace)
            .is_some_and(|ns| !ns["metadata"]["deletionTimestamp"].is_null());
        if terminating && self.state.store.namespace_is_empty(namespace) {
            let _ = self
                .state
                .store
                .write(NAMESPACES, "", namespace, |current| {
                    Ok::<_, ()>(if current.is_some() {
                        Write::Delete
                    } else {
                        Write::Unchanged
                    })
                });
        }
    }
}
