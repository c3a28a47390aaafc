//! The admission corpus: real manifests under `tests/admission/`, each admitted through the same
//! path the sandbox API server uses (`partner_sandbox::admission`), against the CRDs the binary
//! generates.
//!
//! - `accept/*.yaml` must be admitted; `# expect: <path>=<json>` lines check defaulted values.
//! - `reject/*.yaml` must be refused; `# field: <path>` names the field some error must carry and
//!   `# message: <text>` a fragment of that error's message.
//!
//! A file with two YAML documents is an update: the first is the stored object, the second the
//! new one (so transition rules such as the immutable `distributorRef` run).

use std::path::{Path, PathBuf};

use partner_sandbox::admission::{CrdValidator, FieldError, UnknownFieldPolicy};
use serde::Deserialize;
use serde_json::Value;

fn validator_for(kind: &str) -> CrdValidator {
    let crd = partner_operator::api::crds()
        .into_iter()
        .find(|crd| crd.spec.names.kind == kind)
        .unwrap_or_else(|| panic!("no CRD for {kind}"));
    CrdValidator::for_crd(&crd, "v1alpha1").expect("our CRD schemas compile")
}

struct Case {
    path: PathBuf,
    headers: Vec<(String, String)>,
    /// The stored object, for an update.
    old: Option<Value>,
    object: Value,
}

impl Case {
    fn load(path: &Path) -> Self {
        let text = std::fs::read_to_string(path).unwrap();
        let headers = text
            .lines()
            .take_while(|l| l.starts_with('#'))
            .filter_map(|l| l.trim_start_matches('#').split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        let mut documents: Vec<Value> = serde_yaml::Deserializer::from_str(&text)
            .map(|doc| {
                Value::deserialize(doc).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            })
            .collect();
        let object = documents.pop().expect("a manifest");
        let old = documents.pop();
        Self {
            path: path.to_path_buf(),
            headers,
            old,
            object,
        }
    }

    fn header(&self, key: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn admit(&self) -> Result<Value, Vec<FieldError>> {
        let kind = self.object["kind"].as_str().expect("kind");
        let validator = validator_for(kind);
        let old = self.old.as_ref().map(|old| {
            validator
                .admit(old.clone(), None, UnknownFieldPolicy::Strict)
                .unwrap_or_else(|e| {
                    panic!(
                        "{}: the stored object must be valid: {e:?}",
                        self.path.display()
                    )
                })
                .object
        });
        validator
            .admit(
                self.object.clone(),
                old.as_ref(),
                UnknownFieldPolicy::Strict,
            )
            .map(|a| a.object)
    }
}

fn cases(dir: &str) -> Vec<Case> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/admission")
        .join(dir);
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    paths.sort();
    paths.iter().map(|p| Case::load(p)).collect()
}

/// The value at a dotted path; `name[i]` indexes a list.
fn at<'a>(object: &'a Value, path: &str) -> &'a Value {
    path.split('.')
        .fold(object, |v, key| match key.split_once('[') {
            Some((key, index)) => {
                let index: usize = index.trim_end_matches(']').parse().expect("a list index");
                &v[key][index]
            }
            None => &v[key],
        })
}

#[test]
fn the_corpus_has_at_least_thirty_cases() {
    let total = cases("accept").len() + cases("reject").len();
    assert!(total >= 30, "only {total} admission cases");
}

#[test]
fn valid_manifests_are_admitted_with_their_defaults() {
    for case in cases("accept") {
        let admitted = case
            .admit()
            .unwrap_or_else(|e| panic!("{} was refused: {e:#?}", case.path.display()));
        for expectation in case.header("expect") {
            let (path, expected) = expectation.split_once('=').expect("expect: path=json");
            let expected: Value = serde_json::from_str(expected).expect("expected value is JSON");
            assert_eq!(
                at(&admitted, path),
                &expected,
                "{}: {path} after admission",
                case.path.display()
            );
        }
    }
}

#[test]
fn invalid_manifests_are_refused_with_a_message_naming_the_field() {
    let all = cases("reject");
    assert!(!all.is_empty());
    for case in all {
        let name = case.path.display();
        let field = *case
            .header("field")
            .first()
            .unwrap_or_else(|| panic!("{name}: no '# field:' header"));
        let fragment = *case
            .header("message")
            .first()
            .unwrap_or_else(|| panic!("{name}: no '# message:' header"));
        let errors = match case.admit() {
            Ok(object) => panic!("{name} was admitted: {object:#}"),
            Err(errors) => errors,
        };
        assert!(
            errors.iter().any(|e| e.field == field
                && e.message.contains(fragment)
                && e.message.contains(field)),
            "{name}: expected an error on {field} containing {fragment:?}, got {errors:#?}"
        );
    }
}

#[test]
fn unknown_fields_are_pruned_with_a_warning_when_not_strict() {
    let case = Case::load(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/admission/reject/distributor-unknown-field.yaml"),
    );
    let admitted = validator_for("Distributor")
        .admit(case.object.clone(), None, UnknownFieldPolicy::Warn)
        .expect("admitted under Warn");
    assert!(admitted.object["spec"].get("billingPlan").is_none());
    assert_eq!(
        admitted.warnings,
        vec!["unknown field \"spec.billingPlan\"".to_string()]
    );
}

#[test]
fn every_error_of_a_manifest_is_reported_at_once() {
    let object: Value = serde_yaml::from_str(
        r#"
apiVersion: partner-operator.io/v1alpha1
kind: Partner
metadata: {name: bad, namespace: default}
spec:
  organizationName: ""
  notificationEmail: nope
  distributorRef: {name: northwind}
  subscription: {level: production}
"#,
    )
    .unwrap();
    let errors = validator_for("Partner")
        .admit(object, None, UnknownFieldPolicy::Strict)
        .unwrap_err();
    let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        // An empty name is too short (the pattern, which refuses characters, matches it); an
        // address both fails the pattern and the `email` format; and as kube-apiserver does,
        // the last one says the CEL rules were not checked.
        vec![
            "spec.notificationEmail",
            "spec.notificationEmail",
            "spec.organizationName",
            "spec.subscription.level",
            "<nil>"
        ]
    );
    assert_eq!(errors[3].reason.cause_type(), "FieldValueNotSupported");
    assert_eq!(
        errors[3].message,
        r#"spec.subscription.level: Unsupported value: "production": supported values: "Trial", "Production""#
    );
}
