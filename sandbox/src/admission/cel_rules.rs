//! The CEL `x-kubernetes-validations` rules of one CRD version, evaluated as kube-apiserver
//! evaluates them but without paying, on every write, for work whose answer cannot change.
//!
//! Two things make that cost high in the CEL library the sandbox uses: it converts the value at
//! every node of the schema to a CEL value, with or without rules there (so a status write
//! converted the whole status, node by node), and `matches()` compiles its regular expression
//! at each call (kube-apiserver compiles a constant pattern once, with the program). So:
//! - **Only branches with rules are walked.** The schema handed to the library keeps a subtree
//!   only if it holds a rule; below a node with rules everything is kept, since the rule's
//!   `self` is converted along the schema (formats, maps, embedded objects).
//! - **A top-level field whose value already passed its rules is not evaluated again.** A rule
//!   that does not read `oldSelf` is a function of its value alone (kube's CEL environment has
//!   no clock and no randomness), so once a write passed with, say, a given `spec`, every later
//!   write carrying the same `spec` (status writes, finalizers, labels) has the same answer
//!   for those rules. Values that passed are remembered by digest, per validator: a CRD that
//!   changes gets a new validator and forgets them. Transition rules (`oldSelf`) are always
//!   evaluated: their answer depends on the old object too.
//!
//! The result of an admission is exactly the one a full evaluation gives; the tests below
//! check it against a validator that remembers nothing.

use std::collections::HashSet;
use std::sync::Mutex;

use serde_json::Value;
use sha2::Digest as _;

/// Most top-level fields whose rules are remembered: each is a bit of the variant's index, and
/// every combination is compiled once.
const MOST_REMEMBERED_FIELDS: usize = 3;

/// Values remembered as passed, at most; past it the set starts again (a write whose value is
/// forgotten is only evaluated again).
const MOST_REMEMBERED_VALUES: usize = 16_384;

pub(super) struct CelRules {
    /// The rules with the remembered fields' own rules left out, indexed by a mask of those
    /// fields (bit `i` set: `remembered[i]` is left out); index 0 is every rule.
    variants: Vec<kube_cel::CompiledSchema>,
    /// Top-level fields with rules that do not read `oldSelf`.
    remembered: Vec<String>,
    /// Digests of (field, value) pairs whose rules passed.
    passed: Mutex<HashSet<[u8; 32]>>,
    /// `kube_cel::Validator` holds a CEL context that is `Send` but not `Sync`: one per core,
    /// so that admissions on different threads do not wait for each other.
    evaluators: Vec<Mutex<kube_cel::Validator>>,
}

impl CelRules {
    /// Compiles the rules of `schema` (an `openAPIV3Schema` as JSON).
    pub(super) fn compile(schema: &Value) -> Result<Self, String> {
        let full = kube_cel::compile_schema(schema);
        if let Some(error) = full.compilation_errors().first() {
            return Err(error.to_string());
        }
        let mut remembered: Vec<String> = schema["properties"]
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(_, field)| has_own_rules(field))
            .map(|(name, _)| name.clone())
            .collect();
        if remembered.len() > MOST_REMEMBERED_FIELDS {
            remembered.clear();
        }
        let variants = (0..1usize << remembered.len())
            .map(|mask| {
                let mut variant = schema.clone();
                for (i, field) in remembered.iter().enumerate() {
                    if mask & (1 << i) != 0 {
                        strip_own_rules(&mut variant["properties"][field]);
                    }
                }
                keep_branches_with_rules(&mut variant);
                kube_cel::compile_schema(&variant)
            })
            .collect();
        Ok(Self {
            variants,
            remembered,
            passed: Mutex::new(HashSet::new()),
            evaluators: (0..std::thread::available_parallelism().map_or(1, |n| n.get()))
                .map(|_| Mutex::new(kube_cel::Validator::new()))
                .collect(),
        })
    }

    /// Whether any rule is declared.
    pub(super) fn any(&self) -> bool {
        has_rules(&self.variants[0])
    }

    /// Evaluates the rules on `object` (an update of `old`), both defaulted.
    pub(super) fn evaluate(
        &self,
        object: &Value,
        old: Option<&Value>,
    ) -> Result<(), Vec<kube_cel::ValidationError>> {
        let digests: Vec<Option<[u8; 32]>> = self
            .remembered
            .iter()
            .enumerate()
            .map(|(i, field)| object.get(field).map(|value| digest(i, value)))
            .collect();
        let mask = {
            let passed = self.passed.lock().unwrap_or_else(|e| e.into_inner());
            digests.iter().enumerate().fold(0, |mask, (i, d)| match d {
                Some(d) if passed.contains(d) => mask | (1 << i),
                _ => mask,
            })
        };
        let evaluator = self
            .evaluators
            .iter()
            .find_map(|e| e.try_lock().ok())
            .unwrap_or_else(|| self.evaluators[0].lock().unwrap_or_else(|e| e.into_inner()));
        evaluator
            .validate_compiled(&self.variants[mask], object, old)
            .map_err(|failures| failures.into_vec())?;
        drop(evaluator);
        let mut passed = self.passed.lock().unwrap_or_else(|e| e.into_inner());
        for (i, d) in digests.into_iter().enumerate() {
            if let Some(d) = d
                && mask & (1 << i) == 0
            {
                if passed.len() >= MOST_REMEMBERED_VALUES {
                    passed.clear();
                }
                passed.insert(d);
            }
        }
        Ok(())
    }
}

/// The digest of the `field`-th remembered field holding `value`.
fn digest(field: usize, value: &Value) -> [u8; 32] {
    let mut hasher = sha2::Sha256::new();
    hasher.update([field as u8]);
    hasher.update(serde_json::to_vec(value).expect("a JSON value serializes"));
    hasher.finalize().into()
}

/// The schema nodes directly under `node` (its properties, items, additional properties and
/// the branches of `allOf`, `anyOf`, `oneOf`).
fn children(node: &Value) -> Vec<&Value> {
    let mut found = Vec::new();
    for (key, value) in node.as_object().into_iter().flatten() {
        match key.as_str() {
            "properties" => found.extend(value.as_object().into_iter().flat_map(|p| p.values())),
            "items" | "additionalProperties" if value.is_object() => found.push(value),
            "allOf" | "anyOf" | "oneOf" => found.extend(value.as_array().into_iter().flatten()),
            _ => {}
        }
    }
    found
}

/// [`children`], to change them.
fn children_mut(node: &mut Value) -> Vec<&mut Value> {
    let mut found = Vec::new();
    for (key, value) in node.as_object_mut().into_iter().flatten() {
        match key.as_str() {
            "properties" => found.extend(
                value
                    .as_object_mut()
                    .into_iter()
                    .flat_map(|p| p.values_mut()),
            ),
            "items" | "additionalProperties" if value.is_object() => found.push(value),
            "allOf" | "anyOf" | "oneOf" => found.extend(value.as_array_mut().into_iter().flatten()),
            _ => {}
        }
    }
    found
}

/// The rules declared at `node` itself.
fn rules_at(node: &Value) -> impl Iterator<Item = &Value> {
    node.get("x-kubernetes-validations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// Whether the rule reads the old object (`oldSelf`), as the CEL library decides it.
fn is_transition_rule(rule: &Value) -> bool {
    let compiled =
        kube_cel::compile_schema(&serde_json::json!({"x-kubernetes-validations": [rule]}));
    compiled
        .validations
        .iter()
        .any(|v| v.as_ref().is_ok_and(|r| r.is_transition_rule))
}

/// Whether the subtree at `node` holds a rule that does not read `oldSelf`.
fn has_own_rules(node: &Value) -> bool {
    rules_at(node).any(|rule| !is_transition_rule(rule))
        || children(node).into_iter().any(has_own_rules)
}

/// Leaves out of the subtree at `node` every rule that does not read `oldSelf`.
fn strip_own_rules(node: &mut Value) {
    if let Some(rules) = node
        .get_mut("x-kubernetes-validations")
        .and_then(Value::as_array_mut)
    {
        rules.retain(is_transition_rule);
        if rules.is_empty() {
            node.as_object_mut()
                .expect("a node with rules is an object")
                .remove("x-kubernetes-validations");
        }
    }
    children_mut(node).into_iter().for_each(strip_own_rules);
}

/// Whether the subtree at `node` holds any rule.
fn holds_rules(node: &Value) -> bool {
    rules_at(node).next().is_some() || children(node).into_iter().any(holds_rules)
}

/// Drops from `node` the branches without rules, unless `node` has rules of its own (then its
/// `self` needs the whole subtree).
fn keep_branches_with_rules(node: &mut Value) {
    if rules_at(node).next().is_some() {
        return;
    }
    let Some(object) = node.as_object_mut() else {
        return;
    };
    if let Some(properties) = object.get_mut("properties").and_then(Value::as_object_mut) {
        properties.retain(|_, child| holds_rules(child));
        properties.values_mut().for_each(keep_branches_with_rules);
    }
    for key in ["items", "additionalProperties"] {
        let Some(child) = object.get_mut(key).filter(|c| c.is_object()) else {
            continue;
        };
        if holds_rules(child) {
            keep_branches_with_rules(child);
        } else {
            object.remove(key);
        }
    }
}

/// Whether a compiled schema has any rule.
fn has_rules(schema: &kube_cel::CompiledSchema) -> bool {
    !schema.validations.is_empty()
        || schema.properties.values().any(has_rules)
        || schema.items.as_deref().is_some_and(has_rules)
        || schema
            .additional_properties
            .as_deref()
            .is_some_and(has_rules)
        || schema
            .all_of
            .iter()
            .chain(&schema.one_of)
            .chain(&schema.any_of)
            .any(has_rules)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "metadata": {"type": "object"},
                "spec": {
                    "type": "object",
                    "properties": {
                        "email": {
                            "type": "string",
                            "x-kubernetes-validations": [{"rule": "self.matches('^[^@]{1,4}@')", "message": "short local part"}]
                        },
                        "owner": {
                            "type": "string",
                            "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "immutable"}]
                        },
                        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
                    }
                },
                "status": {
                    "type": "object",
                    "properties": {"phase": {"type": "string"}}
                }
            }
        })
    }

    fn messages(result: Result<(), Vec<kube_cel::ValidationError>>) -> Vec<String> {
        result
            .err()
            .unwrap_or_default()
            .iter()
            .map(|e| e.to_string())
            .collect()
    }

    #[test]
    fn only_fields_with_rules_that_ignore_the_old_object_are_remembered() {
        let rules = CelRules::compile(&schema()).unwrap();
        assert_eq!(rules.remembered, vec!["spec".to_string()]);
        assert_eq!(rules.variants.len(), 2);
        assert!(rules.any());
        let transition_only = json!({"type": "object", "properties": {"spec": {
            "type": "string", "x-kubernetes-validations": [{"rule": "self == oldSelf"}]}}});
        assert!(
            CelRules::compile(&transition_only)
                .unwrap()
                .remembered
                .is_empty()
        );
    }

    #[test]
    fn branches_without_rules_are_not_walked() {
        let mut variant = schema();
        keep_branches_with_rules(&mut variant);
        assert_eq!(
            variant["properties"]
                .as_object()
                .unwrap()
                .keys()
                .collect::<Vec<_>>(),
            vec!["spec"]
        );
        assert!(
            variant["properties"]["spec"]["properties"]
                .get("free")
                .is_none()
        );
        // Below a node with rules, everything stays: the rule's `self` is converted along it.
        let mut ruled = json!({"type": "object", "x-kubernetes-validations": [{"rule": "true"}],
            "properties": {"a": {"type": "string", "format": "date-time"}}});
        let before = ruled.clone();
        keep_branches_with_rules(&mut ruled);
        assert_eq!(ruled, before);
    }

    #[test]
    fn remembered_answers_equal_a_full_evaluation() {
        let rules = CelRules::compile(&schema()).unwrap();
        let good = json!({"metadata": {"name": "a"}, "spec": {"email": "ab@x", "owner": "o"}, "status": {}});
        let fresh = || CelRules::compile(&schema()).unwrap();
        // A create, then updates of the same spec: the first evaluates and remembers.
        assert!(rules.evaluate(&good, None).is_ok());
        assert_eq!(rules.passed.lock().unwrap().len(), 1);
        let mut status_write = good.clone();
        status_write["status"]["phase"] = json!("Ready");
        assert!(rules.evaluate(&status_write, Some(&good)).is_ok());
        // A remembered spec still has its transition rules evaluated.
        let mut other_owner = good.clone();
        other_owner["spec"]["owner"] = json!("other");
        assert_eq!(
            messages(rules.evaluate(&good, Some(&other_owner))),
            messages(fresh().evaluate(&good, Some(&other_owner)))
        );
        assert_eq!(messages(rules.evaluate(&good, Some(&other_owner))).len(), 1);
        // A value never seen is evaluated, and a failure is not remembered.
        let bad = json!({"metadata": {"name": "a"}, "spec": {"email": "toolong@x", "owner": "o"}});
        for _ in 0..2 {
            assert_eq!(
                messages(rules.evaluate(&bad, None)),
                messages(fresh().evaluate(&bad, None))
            );
            assert_eq!(messages(rules.evaluate(&bad, None)).len(), 1);
        }
    }
}
