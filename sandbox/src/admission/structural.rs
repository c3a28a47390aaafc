//! The structural schema of a CRD version: pruning of unknown fields and the OpenAPI value checks
//! (type, required, enum, pattern, lengths, item counts, bounds, formats, list uniqueness).
//!
//! A focused walker rather than a general JSON-Schema library: the dialect of a structural schema
//! is small, and walking it ourselves gives exactly kube-apiserver's field paths and messages
//! (`spec.skus[1]: Invalid value: "x": spec.skus[1] in body should match '...'`), which is what
//! users see from a real cluster and what our tests assert. Logical junctors (`allOf`, `anyOf`,
//! `oneOf`, `not`) are not evaluated; none of the schemas the project serves uses them.

use std::collections::{BTreeMap, HashSet};

use regex::Regex;
use serde_json::Value;

use super::InvalidSchema;
use super::errors::{FieldError, FieldErrorReason, short_value, type_name};

/// One node of a compiled structural schema.
#[derive(Debug, Default)]
pub(super) struct Schema {
    type_: Option<String>,
    pub(super) properties: BTreeMap<String, Schema>,
    required: Vec<String>,
    pub(super) additional_properties: Option<Box<Schema>>,
    /// `additionalProperties: true`: any key, any value.
    additional_any: bool,
    pub(super) items: Option<Box<Schema>>,
    enum_values: Option<Vec<Value>>,
    pattern: Option<(String, Regex)>,
    min_length: Option<u64>,
    max_length: Option<u64>,
    min_items: Option<u64>,
    max_items: Option<u64>,
    min_properties: Option<u64>,
    max_properties: Option<u64>,
    minimum: Option<f64>,
    maximum: Option<f64>,
    exclusive_minimum: bool,
    exclusive_maximum: bool,
    multiple_of: Option<f64>,
    format: Option<String>,
    pub(super) nullable: bool,
    int_or_string: bool,
    preserve_unknown_fields: bool,
    embedded_resource: bool,
    list_type: Option<String>,
    list_map_keys: Vec<String>,
    pub(super) default: Option<Value>,
}

impl Schema {
    /// The node at a `FieldsV1` path (`f:` a property or map value, any other key an item).
    pub(super) fn at(&self, path: &[String]) -> Option<&Schema> {
        let mut node = self;
        for key in path {
            node = match key.strip_prefix("f:") {
                Some(name) => node
                    .properties
                    .get(name)
                    .or(node.additional_properties.as_deref())?,
                None => node.items.as_deref()?,
            };
        }
        Some(node)
    }

    pub(super) fn list_type(&self) -> Option<&str> {
        self.list_type.as_deref()
    }

    pub(super) fn list_map_keys(&self) -> &[String] {
        &self.list_map_keys
    }

    /// Compiles a JSON schema node (and its children); `path` is for error messages only.
    pub(super) fn compile(json: &Value, path: &str) -> Result<Self, InvalidSchema> {
        let u64_of = |key: &str| json.get(key).and_then(Value::as_u64);
        let f64_of = |key: &str| json.get(key).and_then(Value::as_f64);
        let bool_of = |key: &str| json.get(key).and_then(Value::as_bool).unwrap_or(false);
        let mut schema = Schema {
            type_: json.get("type").and_then(Value::as_str).map(str::to_string),
            required: json
                .get("required")
                .and_then(Value::as_array)
                .map(|r| {
                    r.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
            enum_values: json.get("enum").and_then(Value::as_array).cloned(),
            min_length: u64_of("minLength"),
            max_length: u64_of("maxLength"),
            min_items: u64_of("minItems"),
            max_items: u64_of("maxItems"),
            min_properties: u64_of("minProperties"),
            max_properties: u64_of("maxProperties"),
            minimum: f64_of("minimum"),
            maximum: f64_of("maximum"),
            exclusive_minimum: bool_of("exclusiveMinimum"),
            exclusive_maximum: bool_of("exclusiveMaximum"),
            multiple_of: f64_of("multipleOf"),
            format: json
                .get("format")
                .and_then(Value::as_str)
                .map(str::to_string),
            nullable: bool_of("nullable"),
            int_or_string: bool_of("x-kubernetes-int-or-string"),
            preserve_unknown_fields: bool_of("x-kubernetes-preserve-unknown-fields"),
            embedded_resource: bool_of("x-kubernetes-embedded-resource"),
            list_type: json
                .get("x-kubernetes-list-type")
                .and_then(Value::as_str)
                .map(str::to_string),
            list_map_keys: json
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .map(|k| {
                    k.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
            default: json.get("default").cloned(),
            ..Default::default()
        };
        if let Some(pattern) = json.get("pattern").and_then(Value::as_str) {
            let regex = Regex::new(pattern).map_err(|e| InvalidSchema::Pattern {
                path: path.to_string(),
                pattern: pattern.to_string(),
                error: e.to_string(),
            })?;
            schema.pattern = Some((pattern.to_string(), regex));
        }
        if let Some(properties) = json.get("properties").and_then(Value::as_object) {
            for (name, property) in properties {
                let child = Self::compile(property, &join(path, name))?;
                schema.properties.insert(name.clone(), child);
            }
        }
        match json.get("additionalProperties") {
            Some(Value::Bool(true)) => schema.additional_any = true,
            Some(additional @ Value::Object(_)) => {
                schema.additional_properties =
                    Some(Box::new(Self::compile(additional, &format!("{path}[*]"))?));
            }
            _ => {}
        }
        if let Some(items) = json.get("items").filter(|i| i.is_object()) {
            schema.items = Some(Box::new(Self::compile(items, &format!("{path}[*]"))?));
        }
        Ok(schema)
    }

    /// Removes the fields this schema does not declare from `value` and returns their paths.
    /// `apiVersion`, `kind` and `metadata` of the root (and of embedded resources) always stay.
    pub(super) fn prune(&self, value: &mut Value) -> Vec<String> {
        let mut unknown = Vec::new();
        self.prune_at(value, "", true, &mut unknown);
        unknown
    }

    fn prune_at(
        &self,
        value: &mut Value,
        path: &str,
        is_resource: bool,
        unknown: &mut Vec<String>,
    ) {
        match value {
            Value::Object(map) => {
                let keeps_all = self.preserve_unknown_fields || self.additional_any;
                let mut removed = Vec::new();
                for (name, child) in map.iter_mut() {
                    let child_path = join(path, name);
                    if is_resource && matches!(name.as_str(), "apiVersion" | "kind" | "metadata") {
                        continue;
                    }
                    if let Some(property) = self.properties.get(name) {
                        property.prune_at(child, &child_path, property.embedded_resource, unknown);
                    } else if let Some(additional) = &self.additional_properties {
                        additional.prune_at(
                            child,
                            &format!("{path}[{name}]"),
                            additional.embedded_resource,
                            unknown,
                        );
                    } else if !keeps_all {
                        removed.push(name.clone());
                        unknown.push(child_path);
                    }
                }
                for name in removed {
                    map.remove(&name);
                }
            }
            Value::Array(items) => {
                if let Some(item_schema) = &self.items {
                    for (i, item) in items.iter_mut().enumerate() {
                        item_schema.prune_at(
                            item,
                            &format!("{path}[{i}]"),
                            item_schema.embedded_resource,
                            unknown,
                        );
                    }
                }
            }
            _ => {}
        }
    }

    /// Checks `value` against this schema, appending every violation to `errors`.
    pub(super) fn validate(&self, value: &Value, path: &str, errors: &mut Vec<FieldError>) {
        if value.is_null() {
            if !self.nullable && !self.preserve_unknown_fields && self.type_.is_some() {
                errors.push(self.type_error(value, path));
            }
            return;
        }
        if self.int_or_string {
            if !(value.is_string() || is_integer(value)) {
                errors.push(FieldError::invalid(
                    path,
                    value,
                    format_args!("must be of type integer-or-string: {:?}", type_name(value)),
                ));
            }
            return;
        }
        if let Some(type_) = &self.type_
            && !type_matches(type_, value)
        {
            errors.push(self.type_error(value, path));
            if type_ == "integer" && value.is_number() {
                // kube-apiserver's format check of integers reports a fraction a second time.
                errors.push(FieldError {
                    field: "<nil>".into(),
                    reason: FieldErrorReason::Invalid,
                    message: format!("<nil>: Invalid value: \"\": Checked value must be of type integer (default format) in {path}"),
                });
            }
            return;
        }
        if let Some(allowed) = &self.enum_values
            && !allowed.contains(value)
        {
            let supported = allowed
                .iter()
                .map(short_value)
                .collect::<Vec<_>>()
                .join(", ");
            errors.push(FieldError::new(
                path,
                FieldErrorReason::NotSupported,
                format_args!(
                    "Unsupported value: {}: supported values: {supported}",
                    short_value(value)
                ),
            ));
        }
        match value {
            Value::String(s) => self.validate_string(s, value, path, errors),
            Value::Number(_) => self.validate_number(value, path, errors),
            Value::Array(items) => self.validate_array(items, path, errors),
            Value::Object(map) => self.validate_object(map, value, path, errors),
            _ => {}
        }
    }

    fn type_error(&self, value: &Value, path: &str) -> FieldError {
        let expected = self.type_.as_deref().unwrap_or("object");
        let mut error = FieldError::invalid(
            path,
            &Value::String(type_name(value).to_string()),
            format_args!("must be of type {expected}: {:?}", type_name(value)),
        );
        error.reason = FieldErrorReason::TypeInvalid;
        error
    }

    fn validate_string(&self, s: &str, value: &Value, path: &str, errors: &mut Vec<FieldError>) {
        let chars = s.chars().count() as u64;
        if let Some(max) = self.max_length
            && chars > max
        {
            errors.push(FieldError::new(
                path,
                FieldErrorReason::TooLong,
                format_args!("Too long: may not be more than {max} bytes"),
            ));
        }
        if let Some(min) = self.min_length
            && chars < min
        {
            errors.push(FieldError::invalid(
                path,
                value,
                format_args!("should be at least {min} chars long"),
            ));
        }
        if let Some((pattern, regex)) = &self.pattern
            && !regex.is_match(s)
        {
            errors.push(FieldError::invalid(
                path,
                value,
                format_args!("should match '{pattern}'"),
            ));
        }
        if let Some(format) = &self.format
            && !format_matches(format, s)
        {
            // A type error to kube-apiserver (its CEL rules are then not run).
            let mut error =
                FieldError::invalid(path, value, format_args!("must be of type {format}: {s:?}"));
            error.reason = FieldErrorReason::TypeInvalid;
            errors.push(error);
        }
    }

    fn validate_number(&self, value: &Value, path: &str, errors: &mut Vec<FieldError>) {
        let n = value.as_f64().unwrap_or_default();
        if let Some(min) = self.minimum {
            let below = if self.exclusive_minimum {
                n <= min
            } else {
                n < min
            };
            if below {
                let relation = if self.exclusive_minimum {
                    "greater than"
                } else {
                    "greater than or equal to"
                };
                errors.push(FieldError::invalid(
                    path,
                    value,
                    format_args!("should be {relation} {}", number(min)),
                ));
            }
        }
        if let Some(max) = self.maximum {
            let above = if self.exclusive_maximum {
                n >= max
            } else {
                n > max
            };
            if above {
                let relation = if self.exclusive_maximum {
                    "less than"
                } else {
                    "less than or equal to"
                };
                errors.push(FieldError::invalid(
                    path,
                    value,
                    format_args!("should be {relation} {}", number(max)),
                ));
            }
        }
        if let Some(factor) = self.multiple_of
            && factor != 0.0
            && (n / factor).fract() != 0.0
        {
            errors.push(FieldError::invalid(
                path,
                value,
                format_args!("should be a multiple of {}", number(factor)),
            ));
        }
    }

    fn validate_array(&self, items: &[Value], path: &str, errors: &mut Vec<FieldError>) {
        let count = items.len() as u64;
        if let Some(max) = self.max_items
            && count > max
        {
            errors.push(FieldError::new(
                path,
                FieldErrorReason::TooMany,
                format_args!("Too many: {count}: must have at most {max} items"),
            ));
        }
        if let Some(min) = self.min_items
            && count < min
        {
            errors.push(FieldError::invalid(
                path,
                &Value::from(count),
                format_args!("should have at least {min} items"),
            ));
        }
        if let Some(item_schema) = &self.items {
            for (i, item) in items.iter().enumerate() {
                item_schema.validate(item, &format!("{path}[{i}]"), errors);
            }
        }
        match self.list_type.as_deref() {
            Some("set") => {
                let mut seen = HashSet::new();
                for (i, item) in items.iter().enumerate() {
                    if !seen.insert(item.to_string()) {
                        let at = format!("{path}[{i}]");
                        errors.push(FieldError::new(
                            &at,
                            FieldErrorReason::Duplicate,
                            format_args!("Duplicate value: {}", duplicate_value(item)),
                        ));
                    }
                }
            }
            Some("map") if !self.list_map_keys.is_empty() => {
                let mut seen = HashSet::new();
                for (i, item) in items.iter().enumerate() {
                    let key: BTreeMap<&str, &Value> = self
                        .list_map_keys
                        .iter()
                        .filter_map(|k| item.get(k).map(|v| (k.as_str(), v)))
                        .collect();
                    if !seen.insert(serde_json::to_string(&key).unwrap_or_default()) {
                        let at = format!("{path}[{i}]");
                        errors.push(FieldError::new(
                            &at,
                            FieldErrorReason::Duplicate,
                            format_args!(
                                "Duplicate value: {}",
                                serde_json::to_string(&key).unwrap_or_default()
                            ),
                        ));
                    }
                }
            }
            _ => {}
        }
    }

    fn validate_object(
        &self,
        map: &serde_json::Map<String, Value>,
        value: &Value,
        path: &str,
        errors: &mut Vec<FieldError>,
    ) {
        for name in &self.required {
            if !map.contains_key(name) {
                errors.push(FieldError::new(
                    &join(path, name),
                    FieldErrorReason::Required,
                    "Required value",
                ));
            }
        }
        let count = map.len() as u64;
        if let Some(max) = self.max_properties
            && count > max
        {
            errors.push(FieldError::new(
                path,
                FieldErrorReason::TooMany,
                format_args!("Too many: {count}: must have at most {max} items"),
            ));
        }
        if let Some(min) = self.min_properties
            && count < min
        {
            errors.push(FieldError::invalid(
                path,
                value,
                format_args!("should have at least {min} properties"),
            ));
        }
        let mut names: Vec<&String> = map.keys().collect();
        names.sort();
        for name in names {
            let child = &map[name];
            if path.is_empty() && matches!(name.as_str(), "apiVersion" | "kind" | "metadata") {
                continue;
            }
            if let Some(property) = self.properties.get(name) {
                property.validate(child, &join(path, name), errors);
            } else if let Some(additional) = &self.additional_properties {
                // kube-apiserver names a map's entry as it names a property: `matchLabels.team`.
                additional.validate(child, &join(path, name), errors);
            }
        }
    }
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

fn is_integer(value: &Value) -> bool {
    value.is_i64()
        || value.is_u64()
        || value
            .as_f64()
            .is_some_and(|f| f.fract() == 0.0 && f.is_finite())
}

fn type_matches(type_: &str, value: &Value) -> bool {
    match type_ {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => is_integer(value),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        _ => true,
    }
}

fn duplicate_value(item: &Value) -> String {
    match item {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

/// Bounds print as integers when they are (`1`, not `1.0`), as in kube-apiserver.
fn number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        n.to_string()
    }
}

/// The string formats kube-apiserver checks. Unknown formats (and numeric ones such as `int32`)
/// are not checked, as in Kubernetes.
fn format_matches(format: &str, s: &str) -> bool {
    static EMAIL: std::sync::LazyLock<Regex> = std::sync::LazyLock::new(|| {
        Regex::new(
            r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$",
        )
        .expect("valid regex")
    });
    static HOSTNAME: std::sync::LazyLock<Regex> = std::sync::LazyLock::new(|| {
        Regex::new(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
            .expect("valid regex")
    });
    match format {
        // An address only, no display name: it goes straight into an SMTP envelope.
        "email" => s.len() <= 254 && EMAIL.is_match(s),
        "date-time" | "datetime" => chrono::DateTime::parse_from_rfc3339(s).is_ok(),
        "date" => chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok(),
        "uri" => url::Url::parse(s).is_ok(),
        "uuid" => uuid::Uuid::parse_str(s).is_ok(),
        "hostname" => s.len() <= 253 && HOSTNAME.is_match(s),
        "ipv4" => s.parse::<std::net::Ipv4Addr>().is_ok(),
        "ipv6" => s.parse::<std::net::Ipv6Addr>().is_ok(),
        "byte" => {
            s.len().is_multiple_of(4)
                && s.trim_end_matches('=')
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '/')
        }
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert!(format_matches("email", "admin@contoso.example"));
        assert!(format_matches("email", "first.last+tag@sub.example.com"));
        assert!(!format_matches("email", "not-an-email"));
        assert!(!format_matches("email", "a@b@c"));
        assert!(!format_matches("email", "Name <a@b.example>"));
        assert!(!format_matches("email", "a@-bad.example"));
        assert!(format_matches("date-time", "2027-06-30T00:00:00Z"));
        assert!(!format_matches("date-time", "next tuesday"));
        assert!(!format_matches("date-time", "2027-06-30"));
        assert!(format_matches("uint32", "anything"));
    }
}
