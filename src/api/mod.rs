//! The custom resources users write: [`Distributor`] (cluster-scoped) and [`Partner`]
//! (namespaced), and the one the operator writes for them, [`BillingStatement`]
//! (cluster-scoped); group `partner-operator.io`, version `v1alpha1`.
//!
//! Every rule that can be checked at admission lives in the generated schema (types, required
//! fields, enums, patterns, lengths, formats) or in a CEL `x-kubernetes-validations` rule whose
//! message names the field. The operator never writes `spec`; it only writes `status`.

pub mod bounds;
pub mod conditions;
pub mod decoded;
pub mod distributor;
pub mod grammar;
pub mod partner;
pub mod selector;
pub mod statement;
pub mod webhooks;

pub use conditions::*;
pub use decoded::Decoded;
pub use distributor::*;
pub use partner::*;
pub use statement::*;
pub use webhooks::*;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// API group of both kinds.
pub const GROUP: &str = "partner-operator.io";
/// API version of both kinds.
pub const VERSION: &str = "v1alpha1";

/// Label put on namespaces whose Partners may bind to the Distributor named by its value, when
/// the Distributor does not set `spec.partnerNamespaces`.
pub const DISTRIBUTOR_LABEL: &str = "partner-operator.io/distributor";

/// Organization names: 1..256 characters, none of them a Unicode control, format, line or
/// paragraph separator character (`Cc`, `Cf`, `Zl`, `Zp`: CR/LF would break the headers of the
/// emails a name appears in, C1 controls are printed raw by kubectl, bidi overrides make text
/// read as something else), and no `=?`, which opens an RFC 2047 encoded word that mail clients
/// would decode in a Subject. The pattern reads: characters other than `=` and those classes,
/// or `=`s followed by one that is not `?`, then maybe `=`s at the end.
pub(crate) const ORGANIZATION_NAME_PATTERN: &str =
    r"^(?:[^=\p{Cc}\p{Cf}\p{Zl}\p{Zp}]|=+[^=?\p{Cc}\p{Cf}\p{Zl}\p{Zp}])*=*$";

/// The CRDs, in the order they are printed by `partner-operator crds`.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![Distributor::crd(), Partner::crd(), BillingStatement::crd()]
        .into_iter()
        .map(|crd| {
            let mut crd = serde_json::to_value(crd).expect("a CRD serializes");
            grammar::constrain_date_times(&mut crd["spec"]["versions"]);
            for version in crd["spec"]["versions"].as_array_mut().into_iter().flatten() {
                bounds::bound_integers(&mut version["schema"]);
            }
            serde_json::from_value(crd).expect("a CRD with patterns added")
        })
        .collect()
}

/// The CRDs as one multi-document YAML stream: exactly what `partner-operator crds` prints and
/// what `crds/` holds.
pub fn crds_yaml() -> String {
    crds()
        .iter()
        .map(|crd| serde_yaml::to_string(crd).expect("a CRD always serializes"))
        .collect::<Vec<_>>()
        .join("---\n")
}

/// Schema for `notificationEmail`: a bare address in the grammar the operator sends to
/// ([`grammar::EMAIL_PATTERN`], within Kubernetes' `email` format), bounded to the 254
/// characters SMTP allows.
pub(crate) fn email_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "string",
        "format": "email",
        "pattern": grammar::EMAIL_PATTERN,
        "minLength": 3,
        "maxLength": 254,
        "x-kubernetes-validations": [{
            "rule": grammar::EMAIL_LOCAL_PART_RULE,
            "message": "must have at most 64 characters before the @",
        }],
    })
}

/// An organization name has something to read: a character other than a space or separator
/// (`Z*`; the controls are refused by [`ORGANIZATION_NAME_PATTERN`]). A name of spaces only
/// would greet a partner in an email as nobody. Said as "not only separators" rather than
/// `matches('[^\\p{Z}]')`: the same answer, with a pattern of about twenty characters instead
/// of all the others (the sandbox's CEL library compiles it at each call).
pub(crate) const ORGANIZATION_NAME_VISIBLE_RULE: &str = r"!self.matches('^\\p{Z}*$')";

/// Schema for `organizationName`.
pub(crate) fn organization_name_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "string",
        "minLength": 1,
        "maxLength": 256,
        "pattern": ORGANIZATION_NAME_PATTERN,
        "x-kubernetes-validations": [{
            "rule": ORGANIZATION_NAME_VISIBLE_RULE,
            "message": "must contain a character other than spaces",
        }],
    })
}
