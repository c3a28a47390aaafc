//! Admission of custom resources, as kube-apiserver performs it: pruning (or, under
//! `fieldValidation=Strict`, rejecting) unknown fields, defaulting from the schema, the OpenAPI
//! checks of the structural schema, then the CEL `x-kubernetes-validations` rules.
//!
//! It works from a `CustomResourceDefinition` object, not from our Rust types, so that the
//! sandbox API server admits any CRD registered at run time through exactly this path, and the
//! admission tests exercise the very code that guards the sandbox.
//!
//! Errors follow kube-apiserver's field error format (`spec.skus[1]: Invalid value: ...`) and are
//! all returned at once, as the API server aggregates them.

mod cel_rules;
mod defaulting;
mod errors;
mod numbers;
pub mod schema_checks;
mod structural;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps,
};
use serde_json::Value;

pub use errors::{FieldError, FieldErrorReason};

/// What to do with fields the schema does not declare: the API's `fieldValidation` parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum UnknownFieldPolicy {
    /// Reject the object, naming each unknown field (kubectl's default).
    Strict,
    /// Drop them and say so in warnings (the API's default for clients that do not ask).
    #[default]
    Warn,
    /// Drop them silently.
    Ignore,
}

impl UnknownFieldPolicy {
    /// From the `fieldValidation` query parameter; none (or an empty one) is `Warn`, as in
    /// kube-apiserver (which refuses any other value before admission).
    pub fn from_query(value: Option<&str>) -> Self {
        match value {
            Some("Strict") => Self::Strict,
            Some("Ignore") => Self::Ignore,
            _ => Self::Warn,
        }
    }
}

/// An admitted object: defaulted and pruned, with warnings for the client.
#[derive(Clone, Debug, PartialEq)]
pub struct Admitted {
    pub object: Value,
    pub warnings: Vec<String>,
}

/// The schema of a CRD version cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum InvalidSchema {
    #[error("CRD has no version {0:?}")]
    NoSuchVersion(String),
    #[error("CRD version {0:?} has no openAPIV3Schema")]
    NoSchema(String),
    #[error("invalid pattern {pattern:?} at {path}: {error}")]
    Pattern {
        path: String,
        pattern: String,
        error: String,
    },
    #[error("invalid CEL rule at {path}: {error}")]
    Cel { path: String, error: String },
}

/// The admission checks of one CRD version, compiled once.
pub struct CrdValidator {
    schema: structural::Schema,
    cel: cel_rules::CelRules,
}

impl std::fmt::Debug for CrdValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CrdValidator").finish_non_exhaustive()
    }
}

impl CrdValidator {
    /// Compiles the checks of an `openAPIV3Schema`.
    pub fn new(schema: &JSONSchemaProps) -> Result<Self, InvalidSchema> {
        let json = serde_json::to_value(schema).expect("a schema always serializes");
        let cel = cel_rules::CelRules::compile(&json).map_err(|error| InvalidSchema::Cel {
            path: String::new(),
            error,
        })?;
        Ok(Self {
            schema: structural::Schema::compile(&json, "")?,
            cel,
        })
    }

    /// The checks of `version` of `crd`.
    pub fn for_crd(crd: &CustomResourceDefinition, version: &str) -> Result<Self, InvalidSchema> {
        let served = crd
            .spec
            .versions
            .iter()
            .find(|v| v.name == version)
            .ok_or_else(|| InvalidSchema::NoSuchVersion(version.to_string()))?;
        let schema = served
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .ok_or_else(|| InvalidSchema::NoSchema(version.to_string()))?;
        Self::new(schema)
    }

    /// The `x-kubernetes-list-type` and `x-kubernetes-list-map-keys` of the list at `path` (in
    /// `FieldsV1` keys: `f:spec`, `f:items`, `k:{...}` for an item), if the schema gives them.
    pub fn list_type(&self, path: &[String]) -> Option<(String, Vec<String>)> {
        let node = self.schema.at(path)?;
        Some((node.list_type()?.to_string(), node.list_map_keys().to_vec()))
    }

    /// Admits `object` (a create, or an update of `old`): prunes or rejects unknown fields,
    /// applies defaults, checks the schema, then the CEL rules (transition rules only on update,
    /// and only where the old object has the field).
    pub fn admit(
        &self,
        mut object: Value,
        old: Option<&Value>,
        unknown_fields: UnknownFieldPolicy,
    ) -> Result<Admitted, Vec<FieldError>> {
        let mut warnings = Vec::new();
        let unknown = self.schema.prune(&mut object);
        if !unknown.is_empty() {
            match unknown_fields {
                UnknownFieldPolicy::Strict => {
                    return Err(unknown.into_iter().map(FieldError::unknown_field).collect());
                }
                UnknownFieldPolicy::Warn => {
                    warnings.extend(
                        unknown
                            .iter()
                            .map(|path| format!("unknown field \"{path}\"")),
                    );
                }
                UnknownFieldPolicy::Ignore => {}
            }
        }
        defaulting::apply(&self.schema, &mut object);
        let mut errors = Vec::new();
        self.schema.validate(&object, "", &mut errors);
        if errors.iter().any(blocks_rules) {
            // As kube-apiserver: the rules are not evaluated on an object of the wrong shape (a
            // missing, mistyped, unsupported or oversized value), and it says so. Other value
            // errors (a pattern, a bound) leave the rules to run.
            if self.cel.any() {
                errors.push(FieldError {
                    field: "<nil>".into(),
                    reason: FieldErrorReason::Invalid,
                    message: "<nil>: Invalid value: null: some validation rules were not checked because the object was invalid; correct the existing errors to complete validation".into(),
                });
            }
        } else {
            // CEL rules see the defaulted objects, as in kube-apiserver.
            let mut old = old.cloned();
            if let Some(old) = old.as_mut() {
                self.schema.prune(old);
                defaulting::apply(&self.schema, old);
            }
            if let Err(failures) = self.cel.evaluate(&object, old.as_ref()) {
                errors.extend(
                    failures
                        .iter()
                        .map(|failure| FieldError::from_cel(failure, &object)),
                );
            }
        }
        if errors.is_empty() {
            // Stored as kube-apiserver encodes it; the rules saw the numbers as sent.
            numbers::integral_floats_as_integers(&mut object);
            Ok(Admitted { object, warnings })
        } else {
            Err(errors)
        }
    }
}

/// Whether a schema error keeps the CEL rules from running: kube-apiserver's `hasBlockingErr`
/// (the rules assume a well-typed object of bounded size).
fn blocks_rules(error: &FieldError) -> bool {
    matches!(
        error.reason,
        FieldErrorReason::NotSupported
            | FieldErrorReason::Required
            | FieldErrorReason::TooLong
            | FieldErrorReason::TooMany
            | FieldErrorReason::TypeInvalid
    )
}

/// The message kube-apiserver puts in a 422 `Status`: `Kind.group "name" is invalid: ...`.
pub fn invalid_message(kind_group: &str, name: &str, errors: &[FieldError]) -> String {
    let details = errors
        .iter()
        .map(|e| e.message.as_str())
        .collect::<Vec<_>>();
    let details = if details.len() == 1 {
        details[0].to_string()
    } else {
        format!("[{}]", details.join(", "))
    };
    format!("{kind_group} {name:?} is invalid: {details}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn validator(schema: Value) -> CrdValidator {
        CrdValidator::new(&serde_json::from_value(schema).unwrap()).unwrap()
    }

    fn object_schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {
                        "name": {"type": "string", "maxLength": 5},
                        "port": {"x-kubernetes-int-or-string": true},
                        "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
                        "policy": {
                            "type": "object",
                            "default": {},
                            "properties": {
                                "mode": {"type": "string", "default": "Auto", "enum": ["Auto", "Manual"]},
                                "limit": {"type": "integer", "default": 3}
                            }
                        },
                        "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                        "frozen": {
                            "type": "string",
                            "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "spec.frozen is immutable"}]
                        }
                    }
                }
            }
        })
    }

    #[test]
    fn defaults_fill_nested_objects_created_by_a_parent_default() {
        let v = validator(object_schema());
        let admitted = v
            .admit(
                json!({"spec": {"name": "a"}}),
                None,
                UnknownFieldPolicy::Strict,
            )
            .unwrap();
        assert_eq!(
            admitted.object["spec"]["policy"],
            json!({"mode": "Auto", "limit": 3})
        );
    }

    #[test]
    fn unknown_fields_are_pruned_warned_or_rejected() {
        let v = validator(object_schema());
        let object = json!({"apiVersion": "x/v1", "kind": "X", "metadata": {"name": "n"},
            "spec": {"name": "a", "bogus": 1, "extra": {"anything": {"goes": true}}}});
        let ignored = v
            .admit(object.clone(), None, UnknownFieldPolicy::Ignore)
            .unwrap();
        assert!(ignored.object["spec"].get("bogus").is_none());
        assert_eq!(
            ignored.object["spec"]["extra"]["anything"]["goes"],
            json!(true)
        );
        assert_eq!(ignored.object["metadata"]["name"], json!("n"));
        assert!(ignored.warnings.is_empty());
        let warned = v
            .admit(object.clone(), None, UnknownFieldPolicy::Warn)
            .unwrap();
        assert_eq!(
            warned.warnings,
            vec!["unknown field \"spec.bogus\"".to_string()]
        );
        let errors = v
            .admit(object, None, UnknownFieldPolicy::Strict)
            .unwrap_err();
        assert_eq!(errors[0].field, "spec.bogus");
        assert_eq!(errors[0].reason, FieldErrorReason::UnknownField);
    }

    #[test]
    fn int_or_string_accepts_both_and_nothing_else() {
        let v = validator(object_schema());
        for port in [json!(80), json!("http")] {
            v.admit(
                json!({"spec": {"name": "a", "port": port}}),
                None,
                UnknownFieldPolicy::Strict,
            )
            .unwrap();
        }
        let errors = v
            .admit(
                json!({"spec": {"name": "a", "port": true}}),
                None,
                UnknownFieldPolicy::Strict,
            )
            .unwrap_err();
        assert_eq!(errors[0].field, "spec.port");
    }

    #[test]
    fn list_type_set_rejects_duplicates() {
        let v = validator(object_schema());
        let errors = v
            .admit(
                json!({"spec": {"name": "a", "tags": ["x", "y", "x"]}}),
                None,
                UnknownFieldPolicy::Strict,
            )
            .unwrap_err();
        assert_eq!(errors[0].field, "spec.tags[2]");
        assert_eq!(errors[0].reason, FieldErrorReason::Duplicate);
        assert_eq!(errors[0].message, "spec.tags[2]: Duplicate value: \"x\"");
    }

    #[test]
    fn errors_are_aggregated() {
        let v = validator(object_schema());
        let errors = v
            .admit(
                json!({"spec": {"name": "toolong", "policy": {"mode": "Sometimes", "limit": "3"}}}),
                None,
                UnknownFieldPolicy::Strict,
            )
            .unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        // The schema has CEL rules, which an invalid object does not get to.
        assert_eq!(
            fields,
            vec![
                "spec.name",
                "spec.policy.limit",
                "spec.policy.mode",
                "<nil>"
            ]
        );
        assert!(
            invalid_message("X.example.io", "n", &errors)
                .starts_with("X.example.io \"n\" is invalid: [spec.name: Too long")
        );
    }

    #[test]
    fn transition_rules_run_only_on_update_and_where_the_old_object_has_the_field() {
        let v = validator(object_schema());
        let create = json!({"spec": {"name": "a", "frozen": "x"}});
        v.admit(create.clone(), None, UnknownFieldPolicy::Strict)
            .unwrap();
        let changed = json!({"spec": {"name": "a", "frozen": "y"}});
        let errors = v
            .admit(changed.clone(), Some(&create), UnknownFieldPolicy::Strict)
            .unwrap_err();
        assert_eq!(errors[0].field, "spec.frozen");
        assert!(errors[0].message.contains("spec.frozen is immutable"));
        let old_without = json!({"spec": {"name": "a"}});
        v.admit(changed, Some(&old_without), UnknownFieldPolicy::Strict)
            .unwrap();
    }
}
