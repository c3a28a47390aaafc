//! Every integer in the CRDs' schemas has a `minimum` and a `maximum`.
//!
//! kube-apiserver checks `type: integer` and nothing of `format`: `format: uint32` admits
//! 4294967296 and -1, which the operator's `u32` fields cannot decode. One such value in a
//! Distributor's status once failed every relist of Distributors, and with it every Partner.
//! So each integer without bounds of its own gets those of its type here, and admission
//! refuses what the operator cannot read.

/// The largest integer an `int64` field is held to: 2^53 - 1, which a JSON number (and the
/// float the schema's bound is written as) holds exactly. Generations never come near it.
pub const INT64_MAX: i64 = (1 << 53) - 1;

/// `(minimum, maximum)` of an integer of `format`.
fn bounds(format: Option<&str>) -> (i64, i64) {
    match format {
        Some("uint32") => (0, i64::from(u32::MAX)),
        Some("int32") => (i64::from(i32::MIN), i64::from(i32::MAX)),
        Some("uint64" | "uint") => (0, INT64_MAX),
        Some("uint16") => (0, i64::from(u16::MAX)),
        Some("uint8") => (0, i64::from(u8::MAX)),
        // int64 and no format at all: no value here is ever negative (generations, counts).
        _ => (0, INT64_MAX),
    }
}

/// Adds the bounds of its format to every `type: integer` schema in `schema` that lacks one.
pub fn bound_integers(schema: &mut serde_json::Value) {
    match schema {
        serde_json::Value::Object(map) => {
            if map.get("type").and_then(|t| t.as_str()) == Some("integer") {
                let (min, max) = bounds(map.get("format").and_then(|f| f.as_str()));
                map.entry("minimum")
                    .or_insert(serde_json::json!(min as f64));
                map.entry("maximum")
                    .or_insert(serde_json::json!(max as f64));
            }
            for value in map.values_mut() {
                bound_integers(value);
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(bound_integers),
        _ => {}
    }
}

/// The integers of `schema` that lack a `minimum` or a `maximum`, by path (none, after
/// [`bound_integers`]).
pub fn unbounded_integers(schema: &serde_json::Value, path: &str, found: &mut Vec<String>) {
    match schema {
        serde_json::Value::Object(map) => {
            if map.get("type").and_then(|t| t.as_str()) == Some("integer")
                && !(map.contains_key("minimum") && map.contains_key("maximum"))
            {
                found.push(path.to_string());
            }
            for (key, value) in map {
                unbounded_integers(value, &format!("{path}.{key}"), found);
            }
        }
        serde_json::Value::Array(items) => {
            for (i, value) in items.iter().enumerate() {
                unbounded_integers(value, &format!("{path}[{i}]"), found);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_integer_of_both_crds_is_bounded() {
        for crd in crate::api::crds() {
            let crd = serde_json::to_value(crd).unwrap();
            let mut found = Vec::new();
            for version in crd["spec"]["versions"].as_array().unwrap() {
                unbounded_integers(&version["schema"], "schema", &mut found);
            }
            assert!(found.is_empty(), "{}: {found:?}", crd["metadata"]["name"]);
        }
    }

    #[test]
    fn bounds_of_their_own_are_kept_and_formats_give_the_rest() {
        let mut schema = serde_json::json!({"properties": {
            "days": {"type": "integer", "format": "uint32", "minimum": 1.0, "maximum": 365.0},
            "count": {"type": "integer", "format": "uint32", "minimum": 0.0},
            "generation": {"type": "integer", "format": "int64"},
            "name": {"type": "string"},
        }});
        bound_integers(&mut schema);
        let p = &schema["properties"];
        assert_eq!(
            (p["days"]["minimum"].as_f64(), p["days"]["maximum"].as_f64()),
            (Some(1.0), Some(365.0))
        );
        assert_eq!(p["count"]["maximum"].as_f64(), Some(4294967295.0));
        assert_eq!(p["generation"]["maximum"].as_f64(), Some(INT64_MAX as f64));
        assert_eq!(p["generation"]["minimum"].as_f64(), Some(0.0));
        assert!(p["name"].get("maximum").is_none());
    }
}
