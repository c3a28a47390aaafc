//! `Table` responses, as `kubectl get` asks for them (`as=Table`): the resource's printer
//! columns (a CRD's, or kube-apiserver's for the built-in kinds), ages as kubectl shows them.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::builtin_tables;
use super::json_path::json_path;
use super::resources::ResourceType;

/// Kubernetes' short human durations: `45s`, `3m`, `5h`, `2d`, `3y`.
pub fn human_age(since: DateTime<Utc>, now: DateTime<Utc>) -> String {
    // As kube-apiserver's `duration.HumanDuration`: up to a second in the future is "now"
    // (clock skew); further in the future is `<invalid>`; precision shrinks with the age.
    let seconds = (now - since).num_seconds();
    if seconds < -1 {
        return "<invalid>".into();
    }
    let seconds = seconds.max(0);
    let (minutes, hours, days) = (seconds / 60, seconds / 3600, seconds / 86400);
    let with_rest = |whole: i64, unit: &str, rest: i64, rest_unit: &str| match rest {
        0 => format!("{whole}{unit}"),
        rest => format!("{whole}{unit}{rest}{rest_unit}"),
    };
    match () {
        _ if seconds < 120 => format!("{seconds}s"),
        _ if minutes < 10 => with_rest(minutes, "m", seconds % 60, "s"),
        _ if minutes < 180 => format!("{minutes}m"),
        _ if hours < 8 => with_rest(hours, "h", minutes % 60, "m"),
        _ if hours < 48 => format!("{hours}h"),
        _ if hours < 24 * 8 => with_rest(days, "d", hours % 24, "h"),
        _ if hours < 24 * 365 * 2 => format!("{days}d"),
        _ if hours < 24 * 365 * 8 => with_rest(days / 365, "y", days % 365, "d"),
        _ => format!("{}y", days / 365),
    }
}

fn cell(value: Vec<Value>, type_: &str, now: DateTime<Utc>) -> Value {
    let value = match value.len() {
        0 => return Value::Null,
        1 => value.into_iter().next().unwrap(),
        _ => Value::Array(value),
    };
    match (type_, &value) {
        ("date", Value::String(s)) => DateTime::parse_from_rfc3339(s)
            .map(|t| Value::String(human_age(t.with_timezone(&Utc), now)))
            .unwrap_or(value),
        (_, Value::Array(_) | Value::Object(_)) => Value::String(value.to_string()),
        _ => value,
    }
}

/// What each row of a `Table` carries of its object: the `includeObject` option.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Include {
    /// Nothing (`None`): the row's `object` is null.
    Nothing,
    /// The object's metadata as `PartialObjectMetadata`, kube-apiserver's default.
    #[default]
    Metadata,
    /// The whole object (`Object`): what `kubectl get --sort-by` sorts on.
    Object,
}

impl Include {
    /// The option's value; an unknown one is refused in kube-apiserver's words.
    pub fn parse(value: Option<&str>) -> Result<Self, String> {
        match value.unwrap_or_default() {
            "" | "Metadata" => Ok(Self::Metadata),
            "Object" => Ok(Self::Object),
            "None" => Ok(Self::Nothing),
            other => Err(format!(
                "Unable to convert to Table as requested: includeObject: Invalid value: {other:?}: must be 'Metadata', 'Object', 'None', or empty"
            )),
        }
    }
}

/// A `meta.k8s.io/v1` `Table` of `objects` with the resource's printer columns.
pub fn table(
    resource: &ResourceType,
    objects: &[std::sync::Arc<Value>],
    resource_version: u64,
    now: DateTime<Utc>,
    include: Include,
) -> Value {
    if resource.group.is_empty() && resource.kind == "Event" {
        return events_table(objects, resource_version, now, include);
    }
    let name = json!({"name": "Name", "type": "string", "format": "name", "description": "Name of the object", "priority": 0});
    if let Some(builtin) = builtin_tables::columns(resource) {
        let mut columns = vec![name];
        columns.extend(builtin.iter().map(builtin_tables::Column::definition));
        let rows = objects
            .iter()
            .map(|object| {
                let mut cells = vec![object["metadata"]["name"].clone()];
                cells.extend(builtin.iter().map(|c| (c.cell)(object, now)));
                row(json!(cells), object, include)
            })
            .collect();
        return document(columns, rows, resource_version);
    }
    custom_table(resource, objects, resource_version, now, include, name)
}

/// A custom resource's `Table`: its CRD's printer columns, else its age (a date).
fn custom_table(
    resource: &ResourceType,
    objects: &[std::sync::Arc<Value>],
    resource_version: u64,
    now: DateTime<Utc>,
    include: Include,
    name: Value,
) -> Value {
    let mut columns = vec![name];
    let mut paths: Vec<(String, String)> = Vec::new();
    if resource.printer_columns.is_empty() {
        columns.push(
            json!({"name": "Age", "type": "date", "format": "", "description": "", "priority": 0}),
        );
        paths.push((".metadata.creationTimestamp".into(), "date".into()));
    }
    for column in &resource.printer_columns {
        columns.push(json!({
            "name": column.name, "type": column.type_, "format": column.format.clone().unwrap_or_default(),
            "description": column.description.clone().unwrap_or_default(), "priority": column.priority.unwrap_or(0),
        }));
        paths.push((column.json_path.clone(), column.type_.clone()));
    }
    let rows: Vec<Value> = objects
        .iter()
        .map(|object| {
            let mut cells = vec![object["metadata"]["name"].clone()];
            for (path, type_) in &paths {
                cells.push(cell(json_path(object, path), type_, now));
            }
            row(json!(cells), object, include)
        })
        .collect();
    document(columns, rows, resource_version)
}

/// One row of a `Table`, with as much of its object as `include` asks for.
fn row(cells: Value, object: &Value, include: Include) -> Value {
    let object = match include {
        Include::Nothing => Value::Null,
        Include::Metadata => json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": object["metadata"],
        }),
        Include::Object => object.clone(),
    };
    json!({"cells": cells, "object": object})
}

/// A `meta.k8s.io/v1` `Table` of `rows` under `columns`.
fn document(columns: Vec<Value>, rows: Vec<Value>, resource_version: u64) -> Value {
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version.to_string()},
        "columnDefinitions": columns,
        "rows": rows,
    })
}

/// `kubectl get events`: kube-apiserver's columns for core Events (no Name column).
fn events_table(
    objects: &[std::sync::Arc<Value>],
    resource_version: u64,
    now: DateTime<Utc>,
    include: Include,
) -> Value {
    let column = |name: &str, priority: u8| json!({"name": name, "type": "string", "format": "", "description": "", "priority": priority});
    let columns = vec![
        column("Last Seen", 0),
        column("Type", 0),
        column("Reason", 0),
        column("Object", 0),
        column("Subobject", 1),
        column("Source", 1),
        column("Message", 0),
        column("First Seen", 1),
        column("Count", 1),
        json!({"name": "Name", "type": "string", "format": "name", "description": "", "priority": 1}),
    ];
    let rows: Vec<Value> = objects
        .iter()
        .map(|event| event_row(event, now, include))
        .collect();
    document(columns, rows, resource_version)
}

/// One row of `kubectl get events`.
fn event_row(event: &Value, now: DateTime<Utc>, include: Include) -> Value {
    let age = |times: &[&Value]| {
        times
            .iter()
            .find_map(|t| t.as_str())
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map_or_else(
                || "<unknown>".to_string(),
                |t| human_age(t.with_timezone(&Utc), now),
            )
    };
    let last_seen = age(&[
        &event["series"]["lastObservedTime"],
        &event["lastTimestamp"],
        &event["eventTime"],
    ]);
    let first_seen = age(&[&event["firstTimestamp"], &event["eventTime"]]);
    let involved = &event["involvedObject"];
    let object = format!(
        "{}/{}",
        involved["kind"]
            .as_str()
            .unwrap_or_default()
            .to_ascii_lowercase(),
        involved["name"].as_str().unwrap_or_default()
    );
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let source = if text(&event["source"]["component"]).is_empty() {
        [
            text(&event["reportingComponent"]),
            text(&event["reportingInstance"]),
        ]
    } else {
        [
            text(&event["source"]["component"]),
            text(&event["source"]["host"]),
        ]
    };
    let source = source
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(", ");
    let count = event["series"]["count"]
        .as_i64()
        .or_else(|| event["count"].as_i64())
        .unwrap_or(1);
    row(
        json!([
            last_seen,
            event["type"],
            event["reason"],
            object,
            text(&involved["fieldPath"]),
            source,
            event["message"],
            first_seen,
            count,
            event["metadata"]["name"]
        ]),
        event,
        include,
    )
}

#[cfg(test)]
mod human_age_tests {
    use super::human_age;
    use chrono::{Duration, TimeZone, Utc};

    #[test]
    fn reads_like_kubectl() {
        let now = Utc.with_ymd_and_hms(2027, 3, 1, 9, 0, 0).unwrap();
        let age = |d: Duration| human_age(now - d, now);
        assert_eq!(age(Duration::seconds(-5)), "<invalid>");
        assert_eq!(age(Duration::seconds(-1)), "0s");
        assert_eq!(age(Duration::seconds(42)), "42s");
        assert_eq!(age(Duration::seconds(185)), "3m5s");
        assert_eq!(age(Duration::minutes(75)), "75m");
        assert_eq!(age(Duration::minutes(5 * 60 + 7)), "5h7m");
        assert_eq!(age(Duration::hours(30)), "30h");
        assert_eq!(age(Duration::hours(3 * 24 + 5)), "3d5h");
        assert_eq!(age(Duration::days(14)), "14d");
        assert_eq!(age(Duration::days(3 * 365 + 10)), "3y10d");
        assert_eq!(age(Duration::days(9 * 365)), "9y");
    }
}
