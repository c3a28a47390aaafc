//! Defaulting from the schema's `default` values, as kube-apiserver applies it: a missing field
//! with a default gets it, and a default that creates an object is itself defaulted further (so
//! `default: {}` on a parent fills in its children's defaults).

use serde_json::Value;

use super::structural::Schema;

/// Applies every default of `schema` to `value`, recursively.
pub(super) fn apply(schema: &Schema, value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (name, property) in &schema.properties {
                if !map.contains_key(name)
                    && let Some(default) = &property.default
                {
                    map.insert(name.clone(), default.clone());
                }
            }
            for (name, child) in map.iter_mut() {
                if let Some(property) = schema.properties.get(name) {
                    apply(property, child);
                } else if let Some(additional) = &schema.additional_properties {
                    apply(additional, child);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = &schema.items {
                for item in items {
                    apply(item_schema, item);
                }
            }
        }
        _ => {}
    }
}
