//! `events.k8s.io/v1` Events are core `v1` Events under another schema, as in kube-apiserver:
//! one storage, converted on the way in and out, so an Event written through either API is read
//! through both.

use axum::body::{Body, Bytes};
use axum::response::Response;
use futures::StreamExt;
use serde_json::{Map, Value, json};

use super::errors::ApiError;
use super::kinds::NameRule;
use super::resources::{Registry, ResourceType};
use super::routing::parse_body;
use crate::admission::{FieldError, FieldErrorReason};

/// `(events.k8s.io/v1 field, core v1 field)`.
const FIELDS: &[(&str, &str)] = &[
    ("metadata", "metadata"),
    ("eventTime", "eventTime"),
    ("series", "series"),
    ("reportingController", "reportingComponent"),
    ("reportingInstance", "reportingInstance"),
    ("action", "action"),
    ("reason", "reason"),
    ("regarding", "involvedObject"),
    ("related", "related"),
    ("note", "message"),
    ("type", "type"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

fn convert(object: &Value, api_version: &str, from_new: bool) -> Value {
    let mut out = Map::new();
    out.insert("kind".into(), json!("Event"));
    out.insert("apiVersion".into(), json!(api_version));
    for (new, core) in FIELDS {
        let (from, to) = if from_new { (new, core) } else { (core, new) };
        if let Some(value) = object.get(*from).filter(|v| !v.is_null() && *v != "") {
            out.insert(to.to_string(), value.clone());
        }
    }
    if !from_new {
        // The fields an `events.k8s.io/v1` Event always has, as kube-apiserver encodes them.
        for (field, empty) in [
            ("eventTime", Value::Null),
            ("deprecatedSource", json!({})),
            ("deprecatedFirstTimestamp", Value::Null),
            ("deprecatedLastTimestamp", Value::Null),
        ] {
            out.entry(field).or_insert(empty);
        }
    }
    Value::Object(out)
}

/// A request to `events.k8s.io/v1` Events as one to the core Events they are stored as: the
/// core resource, and for a create or an update the body converted (a new Event validated in
/// the new schema first) and its content type with it.
pub(super) fn to_core_request(
    registry: &Registry,
    resource: &ResourceType,
    verb: &str,
    body: Bytes,
    content_type: &str,
) -> Result<(ResourceType, Bytes, String), ApiError> {
    let core = registry
        .get("", "v1", "events")
        .expect("core Events are served");
    if !matches!(verb, "create" | "update") {
        return Ok((core, body, content_type.to_string()));
    }
    let event = parse_body(&body, content_type)?;
    let name = event["metadata"]["name"].as_str().unwrap_or_default();
    if verb == "create" && !name.is_empty() {
        // The new API checks names as most kinds do (core Events take any path segment), and
        // names the kind without its group.
        let errors = super::validation::name(name, NameRule::Subdomain);
        if !errors.is_empty() {
            return Err(ApiError::invalid(&core, name, &errors));
        }
    }
    let errors = validate_new(&event);
    if verb == "create" && !errors.is_empty() {
        let name = event["metadata"]["name"].as_str().unwrap_or_default();
        return Err(ApiError::invalid(resource, name, &errors));
    }
    let body = Bytes::from(serde_json::to_vec(&to_core(&event)).expect("serializes"));
    Ok((core, body, "application/json".into()))
}

/// An `events.k8s.io/v1` Event as the core Event it is stored as.
pub fn to_core(event: &Value) -> Value {
    convert(event, "v1", true)
}

/// A stored (core) Event as `events.k8s.io/v1` shows it.
pub fn to_events_v1(event: &Value) -> Value {
    convert(event, "events.k8s.io/v1", false)
}

/// What `events.k8s.io/v1` requires of a new Event.
pub fn validate_new(event: &Value) -> Vec<FieldError> {
    [
        "eventTime",
        "reportingController",
        "reportingInstance",
        "action",
    ]
    .into_iter()
    .filter(|f| event[*f].as_str().is_none_or(str::is_empty))
    .map(|f| FieldError {
        field: f.to_string(),
        reason: FieldErrorReason::Required,
        message: format!("{f}: Required value"),
    })
    .collect()
}

/// Converts the Events in a JSON body: one Event, a list, or a watch event.
fn convert_body(value: &mut Value) {
    match value["kind"].as_str() {
        Some("Event") => *value = to_events_v1(value),
        Some("EventList") => {
            value["apiVersion"] = json!("events.k8s.io/v1");
            for item in value["items"].as_array_mut().into_iter().flatten() {
                *item = to_events_v1(item);
            }
            if let Some(items) = value["items"].as_array_mut() {
                super::list_items::untype(items);
            }
        }
        Some("Status") if value["details"]["kind"] == "events" => {
            // Errors of the core Events the request went to, as the new API's.
            value["details"]["group"] = json!("events.k8s.io");
            if let Some(message) = value["message"].as_str() {
                value["message"] =
                    json!(message.replacen("events \"", "events.events.k8s.io \"", 1));
            }
        }
        _ => {
            if value.get("type").is_some() && value["object"]["kind"] == "Event" {
                let object = &mut value["object"];
                if object["apiVersion"] == "v1" && object.get("involvedObject").is_some()
                    || object
                        .get("metadata")
                        .is_some_and(|m| m.get("name").is_some())
                {
                    *object = to_events_v1(object);
                } else {
                    // A bookmark: no Event fields to convert.
                    object["apiVersion"] = json!("events.k8s.io/v1");
                }
            }
        }
    }
}

/// A response of the core Events API as the `events.k8s.io/v1` one.
pub async fn convert_response(response: Response, watch: bool) -> Response {
    let (mut parts, body) = response.into_parts();
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    if watch {
        let stream = body.into_data_stream().map(|chunk| {
            chunk.map(|bytes| {
                let mut out = Vec::with_capacity(bytes.len());
                for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                    match serde_json::from_slice::<Value>(line) {
                        Ok(mut event) => {
                            convert_body(&mut event);
                            out.extend(serde_json::to_vec(&event).expect("serializes"));
                        }
                        Err(_) => out.extend_from_slice(line),
                    }
                    out.push(b'\n');
                }
                Bytes::from(out)
            })
        });
        return Response::from_parts(parts, Body::from_stream(stream));
    }
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let body = match serde_json::from_slice::<Value>(&bytes) {
        Ok(mut value) => {
            convert_body(&mut value);
            Bytes::from(serde_json::to_vec(&value).expect("serializes"))
        }
        Err(_) => bytes,
    };
    Response::from_parts(parts, Body::from(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let new = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e"},
            "note": "n", "regarding": {"name": "p"}, "reportingController": "c", "deprecatedCount": 2});
        let core = to_core(&new);
        assert_eq!(core["message"], "n");
        assert_eq!(core["involvedObject"]["name"], "p");
        assert_eq!(core["reportingComponent"], "c");
        let back = to_events_v1(&core);
        assert_eq!(back["note"], new["note"]);
        assert_eq!(back["deprecatedCount"], new["deprecatedCount"]);
        assert_eq!(back["deprecatedSource"], json!({}));
    }
}
