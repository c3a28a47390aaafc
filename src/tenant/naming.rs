//! The names of a Partner's tenant: its namespace, its id, and label values made from names.
//!
//! Everything here is derived from what the API server sets and no Partner author chooses (the
//! uid) or from immutable metadata (namespace and name); nothing from a status, which whoever
//! may write the status subresource could change.

use sha2::{Digest, Sha256};

use crate::api::Partner;

/// The stable tenant id of a Partner: a name-based UUID of its uid, so re-provisioning after a
/// crash or a deleted namespace yields the same id.
pub fn tenant_id(partner_uid: &str) -> String {
    const NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x5c1c_1d2e_7a9b_4c1e_9e57_3f0a_b0c4_d2e1);
    uuid::Uuid::new_v5(&NAMESPACE, partner_uid.as_bytes()).to_string()
}

/// The label on a tenant namespace that carries the uid of the Partner that owns it. The operator
/// sets it when it creates the namespace and acts only on a namespace where it matches.
pub const OWNER_UID_LABEL: &str = "partner-operator.io/owner-uid";

/// The label on a Partner that carries the uid its tenant was made for: its own uid, set by the
/// operator when it first sees the Partner (in the write that adds its finalizer).
///
/// A restore (Velero, or `kubectl get -o yaml` applied elsewhere) gives a Partner a new uid,
/// and everything derived from the uid would change with it: the tenant's name and id, the
/// activation link, the Message-IDs. The label travels with the Partner, so the restored
/// Partner keeps its tenant. It is no key to anything: whatever it says, the tenant is the
/// Partner's only if that namespace carries the same uid in [`OWNER_UID_LABEL`] *and* the
/// operator's proof for this Partner's namespace and name (see [`super::ownership`]). A
/// Partner author who sets it to another value gets a tenant under another name, or a name
/// somebody else holds (refused as taken); never another Partner's tenant.
pub const TENANT_OWNER_UID_LABEL: &str = "partner-operator.io/tenant-owner-uid";

/// The uid `partner`'s tenant is made for: its [`TENANT_OWNER_UID_LABEL`] when set, else its
/// own uid.
pub fn tenant_owner_uid(partner: &Partner) -> &str {
    partner
        .metadata
        .labels
        .as_ref()
        .and_then(|labels| labels.get(TENANT_OWNER_UID_LABEL))
        .map(String::as_str)
        .filter(|uid| !uid.is_empty())
        .unwrap_or_else(|| partner.metadata.uid.as_deref().unwrap_or_default())
}

/// Whether `partner` was restored from a backup (or moved): its tenant was made for another
/// uid than its own.
pub fn is_restored(partner: &Partner) -> bool {
    partner
        .metadata
        .uid
        .as_deref()
        .is_some_and(|uid| !uid.is_empty() && tenant_owner_uid(partner) != uid)
}

/// Hex digits of the uid's hash that end a tenant namespace name (40 bits).
const TENANT_SUFFIX_HEX: usize = 10;
/// Longest readable prefix: 63 characters minus `-` and the suffix.
const TENANT_PREFIX_MAX: usize = 63 - 1 - TENANT_SUFFIX_HEX;

/// The tenant namespace of a Partner: `<readable prefix>-<suffix>`, a DNS-1123 label of at most
/// 63 characters.
///
/// - The prefix is `<namespace>-<name>`, lowercased, every character outside `[a-z0-9-]` (the
///   `.` a Partner name may hold) turned into `-`, cut to 52 characters: it is only there for
///   people. Several Partners may share it (`c` in `a-b` and `b-c` in `a`, `acme-eu` and
///   `acme.eu`, long names with a common start), so it decides nothing.
/// - The suffix is the first 10 hex digits of the SHA-256 of the Partner's uid. The uid is set by
///   the API server (a random UUID), never reused, and no Partner author chooses it; the
///   namespace and name are immutable. So the name is stable for the Partner's life, and another
///   Partner's name can only equal it if the 40-bit hashes of two server-chosen uids agree: by
///   chance about n²/2⁴¹ among n Partners (1 in 20,000 for 10,000 Partners), on purpose only by
///   creating some 10¹¹ Partners. A full uid (32 hex digits) would leave a prefix of 30
///   characters, too short to read. Even then the name is not shared: the tenant namespace
///   carries its owner's uid in a label, and the operator neither adopts nor writes into a
///   namespace that another uid owns (the second Partner reports `TenantNamespaceTaken`).
///
/// Nothing a Partner author or a status writer can set enters the name; a Partner deleted and
/// created again under the same name gets a new uid and so a new tenant.
pub fn tenant_namespace(partner_namespace: &str, partner_name: &str, partner_uid: &str) -> String {
    let readable: String = format!("{partner_namespace}-{partner_name}")
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let mut prefix = readable.trim_matches('-');
    if prefix.len() > TENANT_PREFIX_MAX {
        prefix = prefix[..TENANT_PREFIX_MAX].trim_end_matches('-');
    }
    if prefix.is_empty() {
        prefix = "tenant";
    }
    let suffix = &hex::encode(Sha256::digest(partner_uid.as_bytes()))[..TENANT_SUFFIX_HEX];
    format!("{prefix}-{suffix}")
}

/// The tenant namespace of `partner`, from its metadata only (see [`tenant_namespace`]): of the
/// uid its tenant was made for ([`tenant_owner_uid`]).
pub fn tenant_namespace_of(partner: &Partner) -> String {
    tenant_namespace(
        partner.metadata.namespace.as_deref().unwrap_or_default(),
        partner.metadata.name.as_deref().unwrap_or_default(),
        tenant_owner_uid(partner),
    )
}

/// The tenant id of `partner` (see [`tenant_id`]): of the uid its tenant was made for.
pub fn tenant_id_of(partner: &Partner) -> String {
    tenant_id(tenant_owner_uid(partner))
}

/// A label value for `value` (a Kubernetes name): itself when it fits the 63 characters a label
/// value may hold, else its first 52 characters and 10 hex digits of its SHA-256, so distinct
/// long names stay distinct labels. Names are DNS-1123 subdomains: what remains is made of
/// label-value characters, and the cut is trimmed back to end on a letter or digit.
pub fn label_value(value: &str) -> String {
    if value.len() <= 63 {
        return value.to_string();
    }
    let hash = &hex::encode(Sha256::digest(value.as_bytes()))[..TENANT_SUFFIX_HEX];
    let head: String = value.chars().take(TENANT_PREFIX_MAX).collect();
    let head = head.trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    format!("{head}-{hash}")
}

/// Whether `name` is a DNS-1123 label, as Kubernetes requires of a namespace name.
pub fn is_dns1123_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn tenant_namespaces_are_readable_and_end_in_the_uid_hash() {
        let name = tenant_namespace("northwind-partners", "contoso", "uid-1");
        let suffix = &hex::encode(Sha256::digest(b"uid-1"))[..10];
        assert_eq!(name, format!("northwind-partners-contoso-{suffix}"));
        assert_eq!(
            name,
            tenant_namespace("northwind-partners", "contoso", "uid-1")
        );
    }

    #[test]
    fn partners_whose_names_join_alike_get_different_tenants() {
        // `c` in `a-b` and `b-c` in `a`; `acme-eu` and `acme.eu`.
        let a = tenant_namespace("a-b", "c", "uid-1");
        let b = tenant_namespace("a", "b-c", "uid-2");
        assert!(a.starts_with("a-b-c-") && b.starts_with("a-b-c-"));
        assert_ne!(a, b);
        let dash = tenant_namespace("ns", "acme-eu", "uid-3");
        let dot = tenant_namespace("ns", "acme.eu", "uid-4");
        assert!(dot.starts_with("ns-acme-eu-"), "{dot}");
        assert_ne!(dash, dot);
    }

    #[test]
    fn long_names_are_cut_to_63_characters() {
        let name = tenant_namespace(&"n".repeat(63), &format!("{}.x", "p".repeat(250)), "u");
        assert_eq!(name.len(), 63, "{name}");
        assert!(is_dns1123_label(&name), "{name}");
        // A cut that ends on a separator does not leave it in front of the suffix.
        let name = tenant_namespace(&"n".repeat(51), "p", "u");
        assert!(name.starts_with(&format!("{}-", "n".repeat(51))), "{name}");
        assert!(!name.contains("--"), "{name}");
        assert!(is_dns1123_label(&tenant_namespace("", "", "")));
    }

    #[test]
    fn label_values_fit_and_long_ones_stay_distinct() {
        assert_eq!(label_value("contoso"), "contoso");
        let exact = "x".repeat(63);
        assert_eq!(label_value(&exact), exact);
        let a = label_value(&format!("{}a", "p".repeat(200)));
        let b = label_value(&format!("{}b", "p".repeat(200)));
        assert_ne!(a, b);
        for value in [
            &a,
            &b,
            &label_value(&format!("{}.{}", "q".repeat(51), "r".repeat(40))),
        ] {
            assert!(value.len() <= 63, "{value}");
            assert!(
                value.chars().last().unwrap().is_ascii_alphanumeric(),
                "{value}"
            );
            assert!(!value.contains(".-"), "{value}");
        }
    }

    /// Kubernetes names: a namespace is a DNS-1123 label, a Partner name a DNS-1123 subdomain.
    fn namespace_names() -> impl Strategy<Value = String> {
        "[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
    }
    fn partner_names() -> impl Strategy<Value = String> {
        "[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?"
    }

    proptest! {
        #[test]
        fn different_uids_never_share_a_tenant_namespace(
            ns_a in namespace_names(), name_a in partner_names(),
            ns_b in namespace_names(), name_b in partner_names(),
            uid_a in "[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
            uid_b in "[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
        ) {
            let a = tenant_namespace(&ns_a, &name_a, &uid_a);
            let b = tenant_namespace(&ns_b, &name_b, &uid_b);
            prop_assert!(is_dns1123_label(&a), "{}", a);
            prop_assert!(is_dns1123_label(&b), "{}", b);
            prop_assert_eq!(&a, &tenant_namespace(&ns_a, &name_a, &uid_a));
            if uid_a != uid_b {
                prop_assert_ne!(&a, &b);
            }
            // The same names with the other uid: still another tenant.
            if uid_a != uid_b {
                prop_assert_ne!(a, tenant_namespace(&ns_a, &name_a, &uid_b));
            }
        }

        #[test]
        fn any_name_makes_a_valid_tenant_namespace(ns in ".{0,80}", name in ".{0,300}", uid in ".{0,40}") {
            let namespace = tenant_namespace(&ns, &name, &uid);
            prop_assert!(is_dns1123_label(&namespace), "{}", namespace);
        }

        #[test]
        fn label_values_of_names_are_valid(name in partner_names()) {
            let value = label_value(&name);
            prop_assert!(value.len() <= 63);
            prop_assert!(value.starts_with(|c: char| c.is_ascii_alphanumeric()));
            prop_assert!(value.ends_with(|c: char| c.is_ascii_alphanumeric()));
            prop_assert!(value.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)));
        }
    }
}
