//! Errors, answered as kube-apiserver answers them: a `Status` object with the code, reason,
//! message and details the real server gives for the same failure. Every handler builds its
//! errors here, so a reason or message is spelled in one place.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::resources::ResourceType;
use crate::admission::FieldError;

/// An error answered as a `Status` object.
#[derive(Debug)]
pub struct ApiError {
    code: StatusCode,
    reason: &'static str,
    message: String,
    details: Option<Value>,
    retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(code: StatusCode, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }
    /// 404, every one of them: what is missing, in kube-apiserver's words.
    pub fn not_found_because(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NotFound", message)
    }
    /// 404 for an object that does not exist.
    pub fn not_found(resource: &ResourceType, name: &str) -> Self {
        Self::not_found_because(format!(
            "{} \"{name}\" not found",
            resource.qualified_plural()
        ))
        .with_details(resource, name)
    }
    /// 404 for an object created in a namespace that does not exist.
    pub fn namespace_not_found(namespace: &str) -> Self {
        Self::not_found_because(format!("namespaces \"{namespace}\" not found"))
    }
    /// 404 for a path that names no resource the server serves.
    pub fn no_such_resource() -> Self {
        Self::not_found_because("the server could not find the requested resource")
    }
    /// 415 for a body in a format the request's resource does not take.
    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            message,
        )
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }
    pub fn conflict(resource: &ResourceType, name: &str) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                resource.qualified_plural()
            ),
        )
        .with_details(resource, name)
    }
    pub fn invalid(resource: &ResourceType, name: &str, errors: &[FieldError]) -> Self {
        let causes: Vec<Value> = errors
            .iter()
            .map(|e| {
                // A cause names its field apart; its message does not repeat it.
                let message = e
                    .message
                    .strip_prefix(&format!("{}: ", e.field))
                    .unwrap_or(&e.message);
                json!({"reason": e.reason.cause_type(), "message": message, "field": e.field})
            })
            .collect();
        let mut error = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            crate::admission::invalid_message(&resource.qualified_kind(), name, errors),
        );
        error.details = Some(
            json!({"name": name, "group": resource.group, "kind": resource.kind, "causes": causes}),
        );
        omit_empty_group(&mut error.details);
        error
    }
    /// 422 for a request option (`fieldManager`, `dryRun`, ...) rather than the object.
    pub fn invalid_request(kind: &str, field: &str, message: &str) -> Self {
        let mut error = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            format!("{kind} \"\" is invalid: {message}"),
        );
        // The cause names its field apart, and its reason by the kind of error.
        let detail = message
            .strip_prefix(&format!("{field}: "))
            .unwrap_or(message);
        let reason = [
            ("Required value", "FieldValueRequired"),
            ("Unsupported value", "FieldValueNotSupported"),
            ("Forbidden", "FieldValueForbidden"),
            ("Too long", "FieldValueTooLong"),
        ]
        .iter()
        .find(|(prefix, _)| detail.starts_with(prefix))
        .map_or("FieldValueInvalid", |(_, reason)| reason);
        error.details = Some(
            json!({"kind": kind.split('.').next().unwrap_or(kind), "group": "meta.k8s.io",
            "causes": [{"reason": reason, "message": detail, "field": field}]}),
        );
        error
    }
    /// 409 for a create whose object exists already.
    pub fn already_exists(resource: &ResourceType, name: &str) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", resource.qualified_plural()),
        )
        .with_details(resource, name)
    }
    /// 409 for an update whose object names another uid than the stored one.
    pub fn uid_precondition_failed(
        resource: &ResourceType,
        name: &str,
        stored: &str,
        given: &str,
    ) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": Precondition failed: UID in precondition: {stored}, UID in object meta: {given}",
                resource.qualified_plural(),
            ),
        )
        .with_details(resource, name)
    }
    /// 409 for a delete whose preconditions the stored object does not meet: kube-apiserver's
    /// storage names the kind (`Role.rbac.authorization.k8s.io`), not the resource.
    pub fn delete_precondition_failed(resource: &ResourceType, name: &str, why: String) -> Self {
        let mut error = Self::new(
            StatusCode::CONFLICT,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": {why}",
                resource.qualified_kind()
            ),
        );
        error.details = Some(json!({"name": name, "group": resource.group, "kind": resource.kind}));
        omit_empty_group(&mut error.details);
        error
    }
    /// The CRD registry's spelling of a failed precondition (`precondition failed: ...`).
    pub fn lowercase_precondition(&mut self) {
        self.message = self
            .message
            .replacen("Precondition failed", "precondition failed", 1);
    }
    /// 409 for a server-side apply that would take fields other managers own.
    pub fn apply_conflicts(message: String, causes: Value) -> Self {
        let mut error = Self::new(StatusCode::CONFLICT, "Conflict", message);
        error.details = Some(json!({"causes": causes}));
        error
    }
    /// 403 for a create in a namespace being deleted.
    pub fn namespace_terminating(resource: &ResourceType, name: &str, namespace: &str) -> Self {
        let mut error = Self::new(
            StatusCode::FORBIDDEN,
            "Forbidden",
            format!(
                "{} \"{name}\" is forbidden: unable to create new content in namespace {namespace} because it is being terminated",
                resource.qualified_plural()
            ),
        );
        error.details = Some(json!({"name": name, "kind": resource.plural, "causes": [{
            "reason": "NamespaceTerminating", "field": "metadata.namespace",
            "message": format!("namespace {namespace} is being terminated"),
        }]}));
        error
    }
    /// 403 for a delete of a Namespace the cluster cannot do without (`default`,
    /// `kube-system`, `kube-public`), as kube-apiserver's NamespaceLifecycle admission refuses it.
    pub fn namespace_undeletable(name: &str) -> Self {
        let mut error = Self::new(
            StatusCode::FORBIDDEN,
            "Forbidden",
            format!("namespaces \"{name}\" is forbidden: this namespace may not be deleted"),
        );
        error.details = Some(json!({"name": name, "kind": "namespaces"}));
        error
    }
    /// 410 for a watch from a version older than the server still has the changes after.
    pub fn expired(requested: u64, oldest: u64) -> Self {
        Self::new(
            StatusCode::GONE,
            "Expired",
            format!("too old resource version: {requested} ({oldest})"),
        )
    }
    /// 410 for a list at a version whose objects are no longer kept.
    pub fn expired_list(message: &str) -> Self {
        Self::new(StatusCode::GONE, "Expired", message)
    }
    /// 504 for a read at a version the server has not reached, as kube-apiserver answers once
    /// its watch cache has waited for it in vain; the client is to retry a second later.
    pub fn resource_version_too_large(requested: u64, current: u64) -> Self {
        let mut error = Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            "Timeout",
            format!("Timeout: Too large resource version: {requested}, current: {current}"),
        );
        error.details = Some(json!({"causes": [{"reason": "ResourceVersionTooLarge",
            "message": "Too large resource version"}], "retryAfterSeconds": 1}));
        error.retry_after = Some(1);
        error
    }
    fn with_details(mut self, resource: &ResourceType, name: &str) -> Self {
        self.details =
            Some(json!({"name": name, "group": resource.group, "kind": resource.plural}));
        omit_empty_group(&mut self.details);
        self
    }
    pub fn injected(code: u16) -> Self {
        let (code, reason) = match code {
            429 => (StatusCode::TOO_MANY_REQUESTS, "TooManyRequests"),
            409 => (StatusCode::CONFLICT, "Conflict"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "InternalError"),
        };
        let mut error = Self::new(code, reason, "injected fault");
        if code == StatusCode::TOO_MANY_REQUESTS {
            error.retry_after = Some(1);
        }
        error
    }
    pub fn status_body(&self) -> Value {
        let mut status = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": self.message, "reason": self.reason, "code": self.code.as_u16(),
        });
        if let Some(details) = &self.details {
            status["details"] = details.clone();
        }
        if self.reason.is_empty() {
            status.as_object_mut().expect("object").remove("reason");
        }
        status
    }
}

/// kube-apiserver leaves out an empty `details.group` (the core group), as it does any empty
/// field of a `Status`.
fn omit_empty_group(details: &mut Option<Value>) {
    if let Some(Value::Object(map)) = details
        && map.get("group").is_some_and(|g| g == "")
    {
        map.remove("group");
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.code, axum::Json(self.status_body())).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

pub(super) type ApiResult = Result<Response, ApiError>;
