//! Defaulting from the schema's `default` values, as kube-apiserver applies it: a missing field
//! with a default gets it, and a default that creates an object is itself defaulted further (so
//! `default: {}` on a parent fills in its children's defaults). A `null` where the schema does
//! not allow one counts as missing: it gets the default, or is dropped if there is none (a
//! chart rendering an empty value into a field must not fail validation for it).

use serde_json::Value;

use super::structural::Schema;

/// Applies every default of `schema` to `value`, recursively.
pub(super) fn apply(schema: &Schema, value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (name, property) in &schema.properties {
                let missing = map
                    .get(name)
                    .is_none_or(|v| v.is_null() && !property.nullable);
                if !missing {
                    continue;
                }
                match &property.default {
                    Some(default) => {
                        map.insert(name.clone(), default.clone());
                    }
                    None => {
                        map.remove(name);
                    }
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
                    if item.is_null()
                        && !item_schema.nullable
                        && let Some(default) = &item_schema.default
                    {
                        *item = default.clone();
                    }
                    apply(item_schema, item);
                }
            }
        }
        _ => {}
    }
}
