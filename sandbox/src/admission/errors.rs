//! Field errors in kube-apiserver's format, so clients (kubectl, kube-rs) and people read the
//! same messages they would get from a real cluster.

use serde_json::Value;

/// Why a field was refused; maps to `metav1.StatusCause.type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldErrorReason {
    Invalid,
    Required,
    NotSupported,
    Duplicate,
    TooLong,
    TooMany,
    TypeInvalid,
    Forbidden,
    UnknownField,
}

impl FieldErrorReason {
    /// The `StatusCause.type` kube-apiserver uses for this reason.
    pub fn cause_type(&self) -> &'static str {
        match self {
            Self::Invalid | Self::TypeInvalid => "FieldValueInvalid",
            Self::Required => "FieldValueRequired",
            Self::NotSupported => "FieldValueNotSupported",
            Self::Duplicate => "FieldValueDuplicate",
            Self::TooLong => "FieldValueTooLong",
            Self::TooMany => "FieldValueTooMany",
            Self::Forbidden => "FieldValueForbidden",
            Self::UnknownField => "FieldValueInvalid",
        }
    }
}

/// One refused field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// The field's path, as kube-apiserver writes it: `spec.skus[1]`.
    pub field: String,
    pub reason: FieldErrorReason,
    /// The whole message, field path included.
    pub message: String,
}

impl FieldError {
    pub(super) fn new(
        field: &str,
        reason: FieldErrorReason,
        detail: impl std::fmt::Display,
    ) -> Self {
        Self {
            field: field.to_string(),
            reason,
            message: format!("{}: {detail}", display_path(field)),
        }
    }

    /// `path: Invalid value: <value>: <path> in body <detail>`.
    pub(super) fn invalid(field: &str, value: &Value, detail: impl std::fmt::Display) -> Self {
        Self::new(
            field,
            FieldErrorReason::Invalid,
            format_args!(
                "Invalid value: {}: {} in body {detail}",
                short_value(value),
                display_path(field)
            ),
        )
    }

    pub(super) fn unknown_field(path: String) -> Self {
        Self {
            message: format!("unknown field \"{path}\""),
            field: path,
            reason: FieldErrorReason::UnknownField,
        }
    }

    /// A failed CEL rule, as kube-apiserver words it: `path: Invalid value: <value>: <rule's
    /// message>` (the value left out for an object or a list), or by the rule's `reason`
    /// (`Forbidden`, `Required value`, `Duplicate value`).
    pub(super) fn from_cel(error: &kube_cel::ValidationError, object: &Value) -> Self {
        let value = lookup(object, &error.field_path)
            .filter(|v| !v.is_object() && !v.is_array())
            .map(go_value);
        let message = if error.message.is_empty() {
            format!("failed rule: {}", error.rule)
        } else {
            error.message.clone()
        };
        let (reason, body) = match error.reason.as_deref() {
            Some("FieldValueForbidden") => {
                (FieldErrorReason::Forbidden, format!("Forbidden: {message}"))
            }
            Some("FieldValueRequired") => (
                FieldErrorReason::Required,
                format!("Required value: {message}"),
            ),
            Some("FieldValueDuplicate") => (
                FieldErrorReason::Duplicate,
                format!("Duplicate value: {}", value.unwrap_or_default()),
            ),
            _ => (
                FieldErrorReason::Invalid,
                match value {
                    Some(value) => format!("Invalid value: {value}: {message}"),
                    None => format!("Invalid value: {message}"),
                },
            ),
        };
        Self {
            field: error.field_path.clone(),
            reason,
            message: format!("{}: {body}", display_path(&error.field_path)),
        }
    }
}

/// A scalar as Go's `%q` and `%v` print it in a field error.
fn go_value(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        Value::Null => "null".into(),
        other => other.to_string(),
    }
}

fn display_path(field: &str) -> &str {
    if field.is_empty() { "<root>" } else { field }
}

/// Values the way kube-apiserver prints them: strings quoted, numbers bare, composites by type.
pub(super) fn short_value(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "\"null\"".to_string(),
        Value::Array(_) | Value::Object(_) => format!("\"{}\"", type_name(value)),
    }
}

/// JSON type names as the OpenAPI schema calls them.
pub(super) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The value at a `spec.items[2].name` path.
fn lookup<'a>(object: &'a Value, path: &str) -> Option<&'a Value> {
    let mut current = object;
    for segment in path.split('.').filter(|s| !s.is_empty()) {
        let (name, indexes) = match segment.find('[') {
            Some(i) => (&segment[..i], &segment[i..]),
            None => (segment, ""),
        };
        if !name.is_empty() {
            current = current.get(name)?;
        }
        for index in indexes.split(['[', ']']).filter(|s| !s.is_empty()) {
            current = match current {
                Value::Array(items) => items.get(index.parse::<usize>().ok()?)?,
                other => other.get(index)?,
            };
        }
    }
    Some(current)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lookup_follows_fields_and_indexes() {
        let object = json!({"spec": {"skus": ["A", "B"], "ref": {"name": "x"}}});
        assert_eq!(lookup(&object, "spec.skus[1]"), Some(&json!("B")));
        assert_eq!(lookup(&object, "spec.ref"), Some(&json!({"name": "x"})));
        assert_eq!(lookup(&object, "spec.nothing"), None);
        assert_eq!(lookup(&object, ""), Some(&object));
    }
}
