//! `Table` responses (`kubectl get`), label and field selectors, and the JSONPath subset printer
//! columns use.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::resources::ResourceType;

/// A parsed `labelSelector`: every requirement must hold.
#[derive(Debug, Default)]
pub struct LabelSelector(Vec<Requirement>);

#[derive(Debug)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

impl LabelSelector {
    /// Whether it selects everything.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Parses `a=b,c!=d,e in (x,y),f notin (z),g,!h`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut requirements = Vec::new();
        let mut rest = text.trim();
        while !rest.is_empty() {
            // Split off one requirement: up to a comma outside parentheses.
            let mut depth = 0;
            let end = rest
                .char_indices()
                .find(|(_, c)| {
                    match c {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        _ => {}
                    }
                    *c == ',' && depth == 0
                })
                .map_or(rest.len(), |(i, _)| i);
            let part = rest[..end].trim();
            rest = rest.get(end + 1..).unwrap_or("").trim();
            if part.is_empty() {
                continue;
            }
            let values = |list: &str| -> Result<Vec<String>, String> {
                let inner = list
                    .trim()
                    .strip_prefix('(')
                    .and_then(|l| l.strip_suffix(')'))
                    .ok_or_else(|| format!("invalid label selector {text:?}"))?;
                Ok(inner.split(',').map(|v| v.trim().to_string()).collect())
            };
            let requirement = if let Some((k, v)) = part.split_once("!=") {
                Requirement::NotEquals(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = part.split_once("==") {
                Requirement::Equals(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = part.split_once('=') {
                Requirement::Equals(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = part.split_once(" notin ") {
                Requirement::NotIn(k.trim().into(), values(v)?)
            } else if let Some((k, v)) = part.split_once(" in ") {
                Requirement::In(k.trim().into(), values(v)?)
            } else if let Some(k) = part.strip_prefix('!') {
                Requirement::NotExists(k.trim().into())
            } else if part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
            {
                Requirement::Exists(part.into())
            } else {
                return Err(format!("invalid label selector {text:?}"));
            };
            let (key, values): (&str, Vec<&str>) = match &requirement {
                Requirement::Equals(k, v) | Requirement::NotEquals(k, v) => (k, vec![v]),
                Requirement::In(k, vs) | Requirement::NotIn(k, vs) => {
                    (k, vs.iter().map(String::as_str).collect())
                }
                Requirement::Exists(k) | Requirement::NotExists(k) => (k, vec![]),
            };
            if !super::validation::is_label_key(key)
                || !values.iter().all(|v| super::validation::is_label_value(v))
            {
                return Err(format!("unable to parse requirement: {part:?}"));
            }
            requirements.push(requirement);
        }
        Ok(Self(requirements))
    }

    pub fn matches(&self, object: &Value) -> bool {
        let labels = &object["metadata"]["labels"];
        let get = |k: &str| labels.get(k).and_then(Value::as_str);
        self.0.iter().all(|r| match r {
            Requirement::Equals(k, v) => get(k) == Some(v.as_str()),
            Requirement::NotEquals(k, v) => get(k) != Some(v.as_str()),
            Requirement::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Requirement::NotIn(k, vs) => get(k).is_none_or(|x| !vs.iter().any(|v| v == x)),
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::NotExists(k) => get(k).is_none(),
        })
    }
}

/// A parsed `fieldSelector` over `metadata.name`, `metadata.namespace` and any other dotted
/// field path (as CRDs' `selectableFields` allow).
#[derive(Debug, Default)]
pub struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    /// Whether it selects everything.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let mut terms = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (field, equal, value) = if let Some((f, v)) = part.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, true, v)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, true, v)
            } else {
                return Err(format!("invalid field selector {text:?}"));
            };
            terms.push((field.trim().to_string(), equal, value.trim().to_string()));
        }
        Ok(Self(terms))
    }

    /// The fields it names.
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(field, _, _)| field.as_str())
    }

    pub fn matches(&self, object: &Value) -> bool {
        self.0.iter().all(|(field, equal, value)| {
            let actual = field.split('.').fold(object, |v, k| &v[k]);
            let actual = match actual {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            (actual == *value) == *equal
        })
    }
}

/// Evaluates the JSONPath subset printer columns use: `.a.b`, `.a[0]`, `.a[*].b` and
/// `.a[?(@.k=="v")].b`.
pub fn json_path(object: &Value, path: &str) -> Vec<Value> {
    let mut current = vec![object.clone()];
    let mut rest = path
        .trim()
        .trim_start_matches('{')
        .trim_end_matches('}')
        .trim_start_matches('.');
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('[') {
            let Some(close) = after.find(']') else {
                return vec![];
            };
            let selector = &after[..close];
            rest = after[close + 1..].trim_start_matches('.');
            current = current
                .into_iter()
                .flat_map(|v| {
                    let items = v.as_array().cloned().unwrap_or_default();
                    if selector == "*" {
                        items
                    } else if let Ok(i) = selector.parse::<usize>() {
                        items.get(i).cloned().into_iter().collect()
                    } else if let Some(filter) = selector
                        .strip_prefix("?(@.")
                        .and_then(|f| f.strip_suffix(')'))
                    {
                        let (key, expected) = filter.split_once("==").unwrap_or((filter, ""));
                        let expected = expected.trim().trim_matches('"').trim_matches('\'');
                        items
                            .into_iter()
                            .filter(|item| {
                                item.get(key.trim()).and_then(Value::as_str) == Some(expected)
                            })
                            .collect()
                    } else {
                        vec![]
                    }
                })
                .collect();
        } else {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            let key = &rest[..end];
            rest = rest[end..].trim_start_matches('.');
            current = current
                .into_iter()
                .filter_map(|v| v.get(key).cloned())
                .collect();
        }
    }
    current
}

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

/// A `meta.k8s.io/v1` `Table` of `objects` with the resource's printer columns.
pub fn table(
    resource: &ResourceType,
    objects: &[std::sync::Arc<Value>],
    resource_version: u64,
    now: DateTime<Utc>,
) -> Value {
    if resource.group.is_empty() && resource.kind == "Event" {
        return events_table(objects, resource_version, now);
    }
    let mut columns = vec![
        json!({"name": "Name", "type": "string", "format": "name", "description": "Name of the object", "priority": 0}),
    ];
    let mut paths: Vec<(String, String)> = Vec::new();
    if resource.printer_columns.is_empty() {
        let extra: &[(&str, &str, &str)] = match resource.kind.as_str() {
            "Namespace" => &[("Status", "string", ".status.phase")],
            "ConfigMap" => &[("Data", "string", "#data")],
            "Secret" => &[("Type", "string", ".type"), ("Data", "string", "#data")],
            "Lease" => &[("Holder", "string", ".spec.holderIdentity")],
            _ => &[],
        };
        for (name, type_, path) in extra {
            columns.push(json!({"name": name, "type": type_, "format": "", "description": "", "priority": 0}));
            paths.push((path.to_string(), type_.to_string()));
        }
        // Built-in tables type their Age column as a string (it is printed, not a timestamp);
        // a CRD's default one is a date.
        let age_type = if resource.validator.is_some() {
            "date"
        } else {
            "string"
        };
        columns.push(
            json!({"name": "Age", "type": age_type, "format": "", "description": "", "priority": 0}),
        );
        paths.push((".metadata.creationTimestamp".into(), "date".into()));
    } else {
        for column in &resource.printer_columns {
            columns.push(json!({
                "name": column.name, "type": column.type_, "format": column.format.clone().unwrap_or_default(),
                "description": column.description.clone().unwrap_or_default(), "priority": column.priority.unwrap_or(0),
            }));
            paths.push((column.json_path.clone(), column.type_.clone()));
        }
    }
    let rows: Vec<Value> = objects
        .iter()
        .map(|object| {
            let mut cells = vec![object["metadata"]["name"].clone()];
            for (path, type_) in &paths {
                cells.push(if let Some(field) = path.strip_prefix('#') {
                    json!(
                        object
                            .get(field)
                            .and_then(Value::as_object)
                            .map_or(0, |m| m.len())
                    )
                } else {
                    cell(json_path(object, path), type_, now)
                });
            }
            row(json!(cells), &object["metadata"])
        })
        .collect();
    document(columns, rows, resource_version)
}

/// One row of a `Table`, with the object's metadata as `PartialObjectMetadata`.
fn row(cells: Value, metadata: &Value) -> Value {
    json!({
        "cells": cells,
        "object": {
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": metadata,
        },
    })
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
        column("Name", 1),
    ];
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
    let rows: Vec<Value> = objects
        .iter()
        .map(|event| {
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
                &event["metadata"],
            )
        })
        .collect();
    document(columns, rows, resource_version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_selectors() {
        let object = json!({"metadata": {"labels": {"app": "x", "tier": "db"}}});
        for (selector, expected) in [
            ("app=x", true),
            ("app==x,tier=db", true),
            ("app!=x", false),
            ("tier in (db, cache)", true),
            ("tier notin (db)", false),
            ("app", true),
            ("!missing", true),
            ("missing", false),
            ("", true),
        ] {
            assert_eq!(
                LabelSelector::parse(selector).unwrap().matches(&object),
                expected,
                "{selector}"
            );
        }
        assert!(LabelSelector::parse("a in x").is_err());
    }

    #[test]
    fn json_paths() {
        let object = json!({"status": {"conditions": [{"type": "Synced", "status": "False"}, {"type": "Ready", "status": "True"}]}, "spec": {"skus": ["A", "B"]}});
        assert_eq!(
            json_path(&object, ".status.conditions[?(@.type==\"Ready\")].status"),
            vec![json!("True")]
        );
        assert_eq!(json_path(&object, ".spec.skus"), vec![json!(["A", "B"])]);
        assert_eq!(json_path(&object, ".spec.skus[1]"), vec![json!("B")]);
        assert!(json_path(&object, ".spec.missing").is_empty());
    }
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
