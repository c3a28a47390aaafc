//! A Deployment's `/scale` subresource, which `kubectl scale deployment` reads and patches: an
//! `autoscaling/v1` `Scale` standing for the Deployment's `spec.replicas`, its status the
//! replicas it has and the selector that counts them.

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::errors::{ApiError, ApiResult};
use super::routing::{Request, Target, json_response, parse_body};

const MERGE: &str = "application/merge-patch+json";

impl Request<'_> {
    /// `get`, `update` or `patch` of the Deployment's Scale.
    pub(super) fn scale(&self, verb: &str, body: &[u8], content_type: &str) -> ApiResult {
        let current = self
            .state
            .store
            .get(&self.key(), self.namespace(), self.name())
            .ok_or_else(|| ApiError::not_found(self.resource, self.name()))?;
        let replicas = match verb {
            "get" => return Ok(json_response(StatusCode::OK, &scale_of(&current), &[])),
            "update" => parse_body(body, content_type)?["spec"]["replicas"].clone(),
            "patch" => patched_replicas(&scale_of(&current), body, content_type)?,
            _ => {
                return Err(ApiError::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "MethodNotAllowed",
                    "the server does not allow this method on the requested resource",
                ));
            }
        };
        // The Deployment itself is written, as a merge patch of its replicas.
        let target = Target {
            subresource: None,
            ..self.target.clone()
        };
        let deployment = Request {
            target: &target,
            ..*self
        };
        let change = json!({"spec": {"replicas": replicas}});
        deployment.patch(&serde_json::to_vec(&change).expect("serializes"), MERGE)?;
        let stored = self
            .state
            .store
            .get(&self.key(), self.namespace(), self.name())
            .ok_or_else(|| ApiError::not_found(self.resource, self.name()))?;
        Ok(json_response(StatusCode::OK, &scale_of(&stored), &[]))
    }
}

/// The replicas a patch of `scale` asks for.
fn patched_replicas(scale: &Value, body: &[u8], content_type: &str) -> Result<Value, ApiError> {
    let patch = parse_body(body, content_type)?;
    let mut patched = scale.clone();
    if content_type.starts_with("application/json-patch+json") {
        let operations: json_patch::Patch = serde_json::from_value(patch)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
        json_patch::patch(&mut patched, &operations).map_err(|e| {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", e.to_string())
        })?;
    } else {
        json_patch::merge(&mut patched, &patch);
    }
    Ok(patched["spec"]["replicas"].clone())
}

/// The Scale a Deployment stands for (kube-apiserver defaults `replicas` to 1).
fn scale_of(deployment: &Value) -> Value {
    let metadata = &deployment["metadata"];
    let selector = deployment["spec"]["selector"]["matchLabels"]
        .as_object()
        .map(|labels| {
            let mut pairs: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect();
            pairs.sort();
            pairs.join(",")
        })
        .unwrap_or_default();
    json!({
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {"name": metadata["name"], "namespace": metadata["namespace"],
            "uid": metadata["uid"], "resourceVersion": metadata["resourceVersion"],
            "creationTimestamp": metadata["creationTimestamp"]},
        "spec": {"replicas": deployment["spec"]["replicas"].as_i64().unwrap_or(1)},
        "status": {"replicas": deployment["status"]["replicas"].as_i64().unwrap_or(0),
            "selector": selector},
    })
}
