//! The schema of `spec.partnerNamespaces`: a label selector that is one.
//!
//! The generated schema of `LabelSelector` takes any string as an operator or a key, `In`
//! without values, `Exists` with values and any number of entries: selectors that no label
//! selector can be, which the operator would have to make sense of on every namespace it looks
//! at. This one holds them to what Kubernetes' own validation of a label selector allows
//! (qualified-name keys, label values, the four operators with or without values as each
//! needs), with a bound on the number of entries.

use schemars::json_schema;

/// A label key: an optional DNS subdomain prefix and `/`, then a name of at most 63
/// characters (Kubernetes' qualified name). The prefix's length is bounded by
/// [`KEY_PREFIX_RULE`].
pub const LABEL_KEY_PATTERN: &str = r"^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$";

/// A label value: empty, or at most 63 characters, alphanumeric at both ends.
pub const LABEL_VALUE_PATTERN: &str = r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$";

/// The prefix of a label key is at most 253 characters.
const KEY_PREFIX_RULE: &str = "!self.contains('/') || self.matches('^[^/]{1,253}/')";

/// At most this many `matchLabels` entries, `matchExpressions` and values in one expression.
pub const MAX_MATCH_LABELS: u32 = 64;
pub const MAX_MATCH_EXPRESSIONS: u32 = 64;
pub const MAX_VALUES: u32 = 64;

/// The longest label key: a 253-character prefix, `/` and a 63-character name.
const MAX_KEY_LENGTH: u32 = 317;

fn label_key() -> serde_json::Value {
    serde_json::json!({
        "type": "string",
        "maxLength": MAX_KEY_LENGTH,
        "pattern": LABEL_KEY_PATTERN,
        "x-kubernetes-validations": [{
            "rule": KEY_PREFIX_RULE,
            "message": "a label key's prefix (before the /) has at most 253 characters",
        }],
    })
}

/// Schema for `spec.partnerNamespaces`.
pub(crate) fn label_selector_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let value = serde_json::json!({
        "type": "string",
        "maxLength": 63,
        "pattern": LABEL_VALUE_PATTERN,
    });
    // In a CEL string literal a backslash starts an escape: `\.` must be written `\\.`.
    let key_pattern = LABEL_KEY_PATTERN.replace('\\', r"\\");
    json_schema!({
        "description": "Namespaces whose Partners may bind to this distributor: a label selector \
            (at most 64 matchLabels and 64 matchExpressions, each with at most 64 values). When \
            unset, namespaces labelled `partner-operator.io/distributor=<this distributor's name>`.",
        "type": "object",
        "nullable": true,
        "x-kubernetes-map-type": "atomic",
        "properties": {
            "matchLabels": {
                "description": "Labels a namespace must carry, key and value.",
                "type": "object",
                "maxProperties": MAX_MATCH_LABELS,
                "additionalProperties": value.clone(),
                "x-kubernetes-validations": [{
                    "rule": format!(
                        "self.all(k, size(k) <= {MAX_KEY_LENGTH} && k.matches('{key_pattern}') \
                         && (!k.contains('/') || k.matches('^[^/]{{1,253}}/')))"
                    ),
                    "message": "every key must be a label key: an optional DNS subdomain prefix and /, \
                        then at most 63 letters, digits, '-', '_' or '.', alphanumeric at both ends",
                }],
            },
            "matchExpressions": {
                "description": "Requirements a namespace's labels must meet: In and NotIn with \
                    values, Exists and DoesNotExist without.",
                "type": "array",
                "maxItems": MAX_MATCH_EXPRESSIONS,
                "items": {
                    "type": "object",
                    "required": ["key", "operator"],
                    "properties": {
                        "key": label_key(),
                        "operator": {
                            "type": "string",
                            "enum": ["In", "NotIn", "Exists", "DoesNotExist"],
                        },
                        "values": {
                            "type": "array",
                            "maxItems": MAX_VALUES,
                            "items": value,
                        },
                    },
                    "x-kubernetes-validations": [{
                        "rule": "(self.operator == 'In' || self.operator == 'NotIn') \
                            == (has(self.values) && size(self.values) > 0)",
                        "message": "In and NotIn need at least one value; Exists and DoesNotExist take none",
                    }],
                },
            },
        },
    })
}
