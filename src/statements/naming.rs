//! Where a statement is found: its object name and labels, from its Distributor, month and part.
//!
//! Names read as what they are (`northwind.2027-03`, then `northwind.2027-03.1` for a second
//! part) and cannot collide: a Distributor's name is a DNS subdomain, and the suffix is always
//! `.YYYY-MM` or `.YYYY-MM.N`. Labels find a month's parts with one list, per Distributor.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use super::days::Month;

/// The month a statement is of, `YYYY-MM`.
pub const MONTH_LABEL: &str = "partner-operator.io/month";
/// The Distributor a statement is of (its name, or a digest of a name too long for a label).
pub const DISTRIBUTOR_LABEL: &str = crate::api::DISTRIBUTOR_LABEL;

/// Longest object name of a cluster-scoped custom resource.
const MAX_NAME: usize = 253;
/// Longest label value.
const MAX_LABEL: usize = 63;

/// The object name of `part` of `distributor`'s statement of `month`.
pub fn object_name(distributor: &str, month: Month, part: u32) -> String {
    let suffix = match part {
        0 => format!(".{month}"),
        n => format!(".{month}.{n}"),
    };
    if distributor.len() + suffix.len() <= MAX_NAME {
        return format!("{distributor}{suffix}");
    }
    // A name this long is cut, and what was cut off is kept as a digest.
    let keep = MAX_NAME - suffix.len() - 9;
    let prefix = distributor[..keep].trim_end_matches(['.', '-']);
    format!("{prefix}-{}{suffix}", &digest(distributor)[..8])
}

/// The label value naming `distributor`.
pub fn distributor_label(distributor: &str) -> String {
    if distributor.len() <= MAX_LABEL {
        distributor.to_string()
    } else {
        format!("sha256-{}", &digest(distributor)[..48])
    }
}

/// The labels of `distributor`'s statement of `month`.
pub fn labels(distributor: &str, month: Month) -> BTreeMap<String, String> {
    [
        (
            DISTRIBUTOR_LABEL.to_string(),
            distributor_label(distributor),
        ),
        (MONTH_LABEL.to_string(), month.to_string()),
    ]
    .into()
}

/// The label selector of `distributor`'s statement of `month`.
pub fn selector(distributor: &str, month: Month) -> String {
    format!(
        "{DISTRIBUTOR_LABEL}={},{MONTH_LABEL}={month}",
        distributor_label(distributor)
    )
}

fn digest(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_as_distributor_and_month_and_fit_every_limit() {
        let march = Month::parse("2027-03").unwrap();
        assert_eq!(object_name("northwind", march, 0), "northwind.2027-03");
        assert_eq!(object_name("northwind", march, 2), "northwind.2027-03.2");
        let long = format!("{}.example", "a".repeat(240));
        let name = object_name(&long, march, 12);
        assert!(name.len() <= MAX_NAME, "{name}");
        assert!(name.ends_with(".2027-03.12"));
        let other = object_name(&format!("{}.exampl", "a".repeat(240)), march, 12);
        assert_ne!(name, other);
        assert_eq!(distributor_label("northwind"), "northwind");
        assert!(distributor_label(&long).len() <= MAX_LABEL);
        assert_eq!(
            selector("northwind", march),
            "partner-operator.io/distributor=northwind,partner-operator.io/month=2027-03"
        );
    }
}
