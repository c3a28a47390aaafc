//! Updates and patches of existing objects: a replacement (PUT), the JSON, merge and strategic
//! merge patches, and server-side apply (which creates the object when it is missing). Each
//! computes the new object from the stored one and hands it to
//! [`Request::write_existing`](super::writes).

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::errors::{ApiError, ApiResult};
use super::kinds::Kind;
use super::routing::{Request, parse_body};
use super::{events, ownership, patch};
use crate::admission::{FieldError, FieldErrorReason};

const APPLY: &str = "application/apply-patch+yaml";
const STRATEGIC: &str = "application/strategic-merge-patch+json";

impl Request<'_> {
    pub(super) fn update(&self, body: &[u8], content_type: &str) -> ApiResult {
        let object = parse_body(body, content_type)?;
        self.check_type(&object)?;
        if object["metadata"]["name"]
            .as_str()
            .is_some_and(|n| n != self.name())
        {
            return Err(ApiError::bad_request(
                "the name of the object does not match the name on the URL",
            ));
        }
        if let Some(given) = object["metadata"]["namespace"].as_str()
            && !given.is_empty()
            && given != self.namespace()
        {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        let expected_version = object["metadata"]["resourceVersion"]
            .as_str()
            .filter(|v| !v.is_empty())
            .map(str::to_string);
        let kind = Kind::of(self.resource);
        let exists = self
            .state
            .store
            .get(&self.key(), self.namespace(), self.name())
            .is_some();
        if !exists && expected_version.is_none() && kind.creates_on_update() {
            // As kube-apiserver's registries that allow create on update.
            return self.create(body, content_type);
        }
        let unconditional = self.resource.validator.is_none() && kind.allows_unconditional_update();
        if exists && expected_version.is_none() && !unconditional {
            return Err(ApiError::invalid(
                self.resource,
                self.name(),
                &[FieldError {
                    field: "metadata.resourceVersion".into(),
                    reason: FieldErrorReason::Invalid,
                    message: "metadata.resourceVersion: Invalid value: 0: must be specified for an update".into(),
                }],
            ));
        }
        let resource = self.resource;
        let name = self.name();
        self.write_existing(
            |current| {
                // A uid in the object is a precondition, as kube-apiserver takes it.
                if let Some(uid) = object["metadata"]["uid"].as_str()
                    && !uid.is_empty()
                    && current["metadata"]["uid"].as_str() != Some(uid)
                {
                    return Err(ApiError::uid_precondition_failed(
                        resource,
                        name,
                        current["metadata"]["uid"].as_str().unwrap_or_default(),
                        uid,
                    ));
                }
                Ok(object.clone())
            },
            expected_version,
        )
    }

    pub(super) fn patch(&self, body: &[u8], content_type: &str) -> ApiResult {
        let content_type = content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_string();
        if content_type == STRATEGIC && self.resource.validator.is_some() {
            // Custom resources have no patch strategies to merge by.
            return Err(ApiError::unsupported_media_type(format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got {content_type})"
            )));
        }
        let patch_body = parse_body(body, &content_type)?;
        if content_type == APPLY {
            self.check_apply(&patch_body)?;
            if self
                .state
                .store
                .get(&self.key(), self.namespace(), self.name())
                .is_none()
            {
                return self.apply_creates(&patch_body);
            }
        }
        self.write_existing(
            |current| {
                let object = self.patched(current, &patch_body, &content_type)?;
                self.check_identity(current, &object)?;
                Ok(object)
            },
            // As in kube-apiserver, a resourceVersion in the patch is a precondition.
            patch_body["metadata"]["resourceVersion"]
                .as_str()
                .map(str::to_string),
        )
    }

    /// What a server-side apply must carry: a field manager, and no other name than the URL's.
    fn check_apply(&self, patch_body: &Value) -> Result<(), ApiError> {
        if self
            .query
            .field_manager
            .as_deref()
            .is_none_or(str::is_empty)
        {
            return Err(ApiError::invalid_request(
                "PatchOptions.meta.k8s.io",
                "fieldManager",
                "fieldManager: Required value: is required for apply patch",
            ));
        }
        // An apply names the type of what it applies.
        let api_version = patch_body["apiVersion"].as_str().unwrap_or_default();
        let kind = patch_body["kind"].as_str().unwrap_or_default();
        if api_version.is_empty() || kind.is_empty() {
            let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
            return Err(ApiError::bad_request(format!(
                "invalid object type: {group}/{version}, Kind={kind}"
            )));
        }
        if !patch_body["metadata"]["managedFields"].is_null() {
            return Err(ApiError::bad_request("metadata.managedFields must be nil"));
        }
        if let Some(given) = patch_body["metadata"]["name"].as_str()
            && given != self.name()
        {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({given}) does not match the name on the URL ({})",
                self.name()
            )));
        }
        Ok(())
    }

    /// A server-side apply of a missing object creates it, its applier owning what it sent.
    fn apply_creates(&self, patch_body: &Value) -> ApiResult {
        self.check_type(patch_body)?;
        // kube-apiserver authorizes an apply that creates the object for `create` as well
        // as `patch`; the log says so, so that an RBAC check built on it asks for both.
        self.state
            .log
            .record_implied("create", self.target, self.user_agent);
        let mut object = patch_body.clone();
        object["metadata"]["name"] = json!(self.name());
        let (manager, api_version, now) = (self.manager(), self.resource.api_version(), self.now());
        let apply = ownership::Apply {
            writer: self.writer(&manager, &api_version, &now),
            force: self.query.force,
        };
        object["metadata"]["managedFields"] = ownership::created_by_apply(&apply, patch_body);
        self.create_object(object, false)
    }

    /// `current` with the patch applied, as its content type says.
    fn patched(
        &self,
        current: &Value,
        patch_body: &Value,
        content_type: &str,
    ) -> Result<Value, ApiError> {
        let mut object = if self.events_v1 {
            events::to_events_v1(current)
        } else {
            current.clone()
        };
        match content_type {
            "application/json-patch+json" => {
                patch::json(&mut object, patch_body).map_err(|e| {
                    ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "Invalid",
                        format!("the JSON patch could not be applied: {e}"),
                    )
                })?;
            }
            "application/merge-patch+json" => patch::merge(&mut object, patch_body),
            STRATEGIC => patch::strategic(&mut object, patch_body),
            APPLY => {
                let (manager, api_version, now) =
                    (self.manager(), self.resource.api_version(), self.now());
                let apply = ownership::Apply {
                    writer: self.writer(&manager, &api_version, &now),
                    force: self.query.force,
                };
                object = apply.apply(&object, patch_body).map_err(|conflicts| {
                    ApiError::apply_conflicts(conflicts.message(), json!(conflicts.causes()))
                })?;
            }
            other => {
                return Err(ApiError::unsupported_media_type(format!(
                    "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {other})"
                )));
            }
        }
        if self.events_v1 {
            object = events::to_core(&object);
        }
        Ok(object)
    }

    /// A patch may not move its object: another name or namespace is refused (400), and a uid
    /// other than the stored one fails as a precondition (409), as kube-apiserver answers.
    fn check_identity(&self, current: &Value, patched: &Value) -> Result<(), ApiError> {
        let meta = &patched["metadata"];
        if let Some(name) = meta["name"].as_str()
            && name != self.name()
        {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({name}) does not match the name on the URL ({})",
                self.name()
            )));
        }
        if let Some(namespace) = meta["namespace"].as_str()
            && self.resource.namespaced
            && namespace != self.namespace()
        {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        let stored = current["metadata"]["uid"].as_str().unwrap_or_default();
        match meta["uid"].as_str() {
            Some(uid) if !uid.is_empty() && uid != stored => Err(
                ApiError::uid_precondition_failed(self.resource, self.name(), stored, uid),
            ),
            _ => Ok(()),
        }
    }
}
