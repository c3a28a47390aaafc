//! Which namespaces may hold a Distributor's Partners.
//!
//! A Partner binds to the Distributor it names only from a namespace the Distributor accepts:
//! one its `spec.partnerNamespaces` selects or, when that is unset, one labelled
//! `partner-operator.io/distributor=<distributor name>`. So a Partner author in some other
//! namespace cannot open trials (and bills) in a Distributor's name.

use k8s_openapi::api::core::v1::Namespace;
use kube::core::{Selector, SelectorExt};

use crate::api::{DISTRIBUTOR_LABEL, Distributor};

/// Whether `namespace` may hold Partners of `distributor`.
///
/// The selector has Kubernetes' label selector semantics (kube's [`Selector`]): every
/// `matchLabels` pair and every expression must hold, and an empty selector selects every
/// namespace. A selector Kubernetes could not read (an unknown operator) selects none.
pub fn namespace_allowed(distributor: &Distributor, namespace: &Namespace) -> bool {
    let labels = namespace.metadata.labels.clone().unwrap_or_default();
    match &distributor.spec.partner_namespaces {
        Some(selector) => {
            Selector::try_from(selector.clone()).is_ok_and(|selector| selector.matches(&labels))
        }
        None => {
            labels.get(DISTRIBUTOR_LABEL).map(String::as_str)
                == distributor.metadata.name.as_deref()
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

    use super::*;
    use crate::api::{DistributorSpec, Sku};

    fn distributor(selector: Option<LabelSelector>) -> Distributor {
        Distributor::new(
            "northwind",
            DistributorSpec {
                organization_name: "Northwind".into(),
                notification_email: "ops@northwind.example".into(),
                skus: vec![Sku("ESSENTIALS".into())],
                partner_namespaces: selector,
                trial: Default::default(),
                activation: Default::default(),
                email: Default::default(),
                webhooks: Default::default(),
                branding: Default::default(),
            },
        )
    }

    fn namespace(labels: &[(&str, &str)]) -> Namespace {
        let mut ns = Namespace::default();
        ns.metadata.labels = Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        ns
    }

    fn requirement(key: &str, operator: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: operator.into(),
            values: (!values.is_empty()).then(|| values.iter().map(|v| v.to_string()).collect()),
        }
    }

    #[test]
    fn without_a_selector_the_distributor_label_decides() {
        let d = distributor(None);
        assert!(namespace_allowed(
            &d,
            &namespace(&[(DISTRIBUTOR_LABEL, "northwind")])
        ));
        assert!(!namespace_allowed(
            &d,
            &namespace(&[(DISTRIBUTOR_LABEL, "other")])
        ));
        assert!(!namespace_allowed(&d, &namespace(&[])));
    }

    #[test]
    fn every_operator_of_a_selector_holds() {
        let selector = |expressions: Vec<LabelSelectorRequirement>| LabelSelector {
            match_labels: Some([("team".to_string(), "northwind".to_string())].into()),
            match_expressions: Some(expressions),
        };
        let d = distributor(Some(selector(vec![
            requirement("env", "In", &["prod", "staging"]),
            requirement("frozen", "NotIn", &["true"]),
            requirement("billing", "Exists", &[]),
            requirement("sandbox", "DoesNotExist", &[]),
        ])));
        let ok = [("team", "northwind"), ("env", "prod"), ("billing", "x")];
        assert!(namespace_allowed(&d, &namespace(&ok)));
        assert!(!namespace_allowed(
            &d,
            &namespace(&[("team", "northwind"), ("env", "dev"), ("billing", "x")])
        ));
        assert!(!namespace_allowed(
            &d,
            &namespace(&[("team", "northwind"), ("env", "prod")])
        ));
        assert!(!namespace_allowed(
            &d,
            &namespace(&[ok[0], ok[1], ok[2], ("frozen", "true")])
        ));
        assert!(!namespace_allowed(
            &d,
            &namespace(&[ok[0], ok[1], ok[2], ("sandbox", "")])
        ));
        assert!(!namespace_allowed(
            &d,
            &namespace(&[(DISTRIBUTOR_LABEL, "northwind")])
        ));
        // An empty selector selects every namespace; one with an unknown operator, none.
        assert!(namespace_allowed(
            &distributor(Some(LabelSelector::default())),
            &namespace(&[])
        ));
        let unknown = distributor(Some(LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![requirement("env", "Like", &["prod"])]),
        }));
        assert!(!namespace_allowed(&unknown, &namespace(&[("env", "prod")])));
    }
}
