//! Deletion: delete (preconditions, finalizers, `deletionTimestamp`, foreground propagation)
//! and deletecollection, and what goes with a removed object: a CRD's resources and objects,
//! and a Terminating Namespace once it is empty.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::errors::{ApiError, ApiResult};
use super::kinds::{Kind, NAMESPACES};
use super::routing::{Request, Target, json_response};
use super::store::{Write, Written};

/// The finalizer of an object deleted with `propagationPolicy: Foreground`.
pub(super) const FOREGROUND_DELETION: &str = "foregroundDeletion";

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
        let options: Value = if body.is_empty() {
            json!({})
        } else {
            serde_json::from_slice(body).unwrap_or(json!({}))
        };
        let resource = self.resource;
        let name = self.name().to_string();
        let now = self.now();
        let dry_run = self.query.dry_run;
        let written = self
            .state
            .store
            .write(&self.key(), self.namespace(), &name, |current| {
                let current = current.ok_or_else(|| ApiError::not_found(resource, &name))?;
                let preconditions = &options["preconditions"];
                if let Some(uid) = preconditions["uid"].as_str()
                    && current["metadata"]["uid"].as_str() != Some(uid)
                {
                    return Err(ApiError::conflict(resource, &name));
                }
                if let Some(version) = preconditions["resourceVersion"].as_str()
                    && current["metadata"]["resourceVersion"].as_str() != Some(version)
                {
                    return Err(ApiError::conflict(resource, &name));
                }
                if dry_run {
                    return Ok(Write::Unchanged);
                }
                let mut current = current.clone();
                if options["propagationPolicy"] == "Foreground"
                    && current["metadata"]["deletionTimestamp"].is_null()
                {
                    // The garbage collector deletes the dependents first, then this finalizer.
                    let mut object = (*current).clone();
                    let finalizers = object["metadata"]["finalizers"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default();
                    if !finalizers.contains(&json!(FOREGROUND_DELETION)) {
                        let mut finalizers = finalizers;
                        finalizers.push(json!(FOREGROUND_DELETION));
                        object["metadata"]["finalizers"] = json!(finalizers);
                    }
                    current = Arc::new(object);
                }
                let current = &current;
                let has_finalizers = current["metadata"]["finalizers"]
                    .as_array()
                    .is_some_and(|f| !f.is_empty());
                let terminates = Kind::of(resource).terminates();
                if has_finalizers || terminates {
                    if !current["metadata"]["deletionTimestamp"].is_null() {
                        return Ok(Write::Unchanged);
                    }
                    let mut object = (**current).clone();
                    object["metadata"]["deletionTimestamp"] = json!(now);
                    object["metadata"]["deletionGracePeriodSeconds"] = json!(0);
                    if terminates {
                        object["status"]["phase"] = json!("Terminating");
                    }
                    return Ok(Write::Put(object));
                }
                Ok(Write::Delete)
            })?;
        if let Written::Deleted(object) = &written {
            self.after_removal(object);
        }
        Ok(json_response(StatusCode::OK, written.object(), &[]))
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
                }
                self.state.registry.remove(group, version, plural);
            }
        }
        if let Some(namespace) = object["metadata"]["namespace"].as_str() {
            self.remove_namespace_if_empty(namespace);
        }
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
