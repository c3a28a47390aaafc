//! The one grammar of dates and email addresses, shared by admission and the operator.
//!
//! kube-apiserver's `date-time` and `email` formats are more lenient than what the operator can
//! use: `date-time` splits the value at the first `t` and takes `2027-06-30T00:00:00+99:99`,
//! `2027-06-30T00:00:00,5Z` or `2027-06-30T00:00:00Zt-x`, which chrono refuses; `email` is Go's
//! `mail.ParseAddress`, which takes `Eve <eve@example.com>` (a display name the operator would
//! put into a header) and quoted local parts. So every such field also carries one of the
//! patterns below: admission refuses exactly what [`parse_date_time`] and [`parse_email`]
//! refuse, and those are what the operator reads with. `tests/integration/grammar.rs` holds a
//! corpus of values to both API servers and these functions, and checks that they agree.
//!
//! The patterns are RE2 (kube-apiserver) and Rust `regex` alike: no look-around, no
//! back-references.

use std::str::FromStr;
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use regex::Regex;

/// RFC 3339 as the operator reads it: `T` and `Z` upper-case, seconds required, a fraction of
/// 1 to 9 digits after a `.`, an offset of at most 23:59, a year from 1970 to 2999 (no date the
/// operator deals in lies outside: a trial ending in 9999 is a Partner that never pays, one
/// ending before 1970 a mistake). Whether the day exists (no 30 February) is for the
/// `date-time` format beside it, and for chrono. Whether a date lies in the past can only be
/// said against the clock, which admission does not have: the operator holds a trial's
/// `expirationDate` between its start and `trial.days` after it, with an
/// `ExpirationDateLimited` Warning Event naming the field.
pub const DATE_TIME_PATTERN: &str = r"^(19[7-9][0-9]|2[0-9]{3})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$";

/// A bare address, `local@domain`: a dot-atom local part (RFC 5322's atom characters but `%`,
/// dots between them) and a host name of letters, digits and hyphens. No display name, no
/// quoting, no comments, no IP literal, and no `%`: `victim%elsewhere.example@relay.example`
/// is a source route that a relay may forward to another host than the one named after `@`,
/// which `allowedRecipientDomains` checks.
pub const EMAIL_PATTERN: &str = r"^[A-Za-z0-9!#$&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$&'*+/=?^_`{|}~-]+)*@[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$";

/// A host name of letters, digits and hyphens, as in [`EMAIL_PATTERN`]'s domain.
pub const DOMAIN_PATTERN: &str = r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$";

/// A Kubernetes object name that is a DNS-1123 label (a webhook endpoint's name).
pub const DNS_LABEL_PATTERN: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";

/// A Kubernetes object name that is a DNS-1123 subdomain: labels joined by dots (a
/// Distributor's or a Secret's name).
pub const DNS_SUBDOMAIN_PATTERN: &str =
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

/// SMTP's limit on the part before the `@` (RFC 5321, 4.5.3.1.1), as a CEL rule beside
/// [`EMAIL_PATTERN`] (a regular expression without look-ahead cannot bound a dot-atom): the
/// first `@` comes after one to 64 characters. Said with `indexOf` (which counts characters,
/// as a regular expression does) rather than `matches('^[^@]{1,64}@')`: the same answer, but an
/// evaluator that compiles the pattern at each call (the sandbox's CEL library) built 64
/// copies of "any character but @" for every write.
pub const EMAIL_LOCAL_PART_RULE: &str = "self.indexOf('@') > 0 && self.indexOf('@') <= 64";

/// The most characters before the `@`.
pub const EMAIL_LOCAL_PART_MAX: usize = 64;

static DATE_TIME: LazyLock<Regex> = LazyLock::new(|| Regex::new(DATE_TIME_PATTERN).unwrap());
static EMAIL: LazyLock<Regex> = LazyLock::new(|| Regex::new(EMAIL_PATTERN).unwrap());

/// Why a value is not in the grammar. Says nothing of the value itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrammarError {
    #[error("not an RFC 3339 date-time of the form 2027-06-30T00:00:00Z")]
    DateTime,
    #[error("not a bare email address of the form name@example.com")]
    Email,
}

/// A date-time as admission accepts it, in UTC.
pub fn parse_date_time(value: &str) -> Result<DateTime<Utc>, GrammarError> {
    if !DATE_TIME.is_match(value) {
        return Err(GrammarError::DateTime);
    }
    DateTime::parse_from_rfc3339(value)
        .map(|at| at.with_timezone(&Utc))
        .map_err(|_| GrammarError::DateTime)
}

/// An email address as admission accepts it.
pub fn parse_email(value: &str) -> Result<lettre::Address, GrammarError> {
    let local_part = value.split_once('@').map_or(value, |(local, _)| local);
    if value.len() > 254 || local_part.len() > EMAIL_LOCAL_PART_MAX || !EMAIL.is_match(value) {
        return Err(GrammarError::Email);
    }
    lettre::Address::from_str(value).map_err(|_| GrammarError::Email)
}

/// An instant as Kubernetes writes one: RFC 3339 in UTC with `Z` (`2027-03-01T09:00:00Z`),
/// fractions of a second only when it has some. Every date the operator writes (conditions,
/// Event messages, the tenant's entitlements) reads the same as those in `status`.
pub trait Zulu {
    fn zulu(&self) -> String;
}

impl Zulu for DateTime<Utc> {
    fn zulu(&self) -> String {
        self.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
    }
}

/// Adds [`DATE_TIME_PATTERN`] beside every `format: date-time` in a schema, `status` and
/// `metav1.Condition` fields included: whoever can write a Partner's status is held to the
/// grammar as well.
pub fn constrain_date_times(schema: &mut serde_json::Value) {
    match schema {
        serde_json::Value::Object(map) => {
            if map.get("format").and_then(|f| f.as_str()) == Some("date-time") {
                map.insert("pattern".into(), DATE_TIME_PATTERN.into());
            }
            for value in map.values_mut() {
                constrain_date_times(value);
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(constrain_date_times),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_in_the_grammar_read_as_chrono_reads_them() {
        for (value, utc) in [
            ("2027-06-30T00:00:00Z", "2027-06-30T00:00:00+00:00"),
            (
                "2027-06-30T02:00:00.5+02:00",
                "2027-06-30T00:00:00.500+00:00",
            ),
            (
                "2028-02-29T23:59:59.123456789-23:59",
                "2028-03-01T23:58:59.123456789+00:00",
            ),
        ] {
            assert_eq!(parse_date_time(value).unwrap().to_rfc3339(), utc, "{value}");
        }
        for value in [
            "2027-06-30T00:00:00+99:99",
            "2027-06-30T00:00:00,5Z",
            "2027-06-30T00:00:00Zt-x",
            "2027-06-30t00:00:00z",
            "2027-06-30 00:00:00Z",
            "2027-06-30T00:00Z",
            "2027-02-30T00:00:00Z",
            "2027-06-30T24:00:00Z",
            "2027-06-30T23:59:60Z",
            "2027-06-30T00:00:00.1234567890Z",
            "2027-06-30",
            "9999-12-31T00:00:00Z",
            "3000-01-01T00:00:00Z",
            "1969-12-31T23:59:59Z",
            "",
        ] {
            assert_eq!(
                parse_date_time(value),
                Err(GrammarError::DateTime),
                "{value}"
            );
        }
    }

    #[test]
    fn only_bare_addresses_are_emails() {
        for value in ["a@b", "admin@contoso.example", "o'brien+trial@x-y.example"] {
            assert!(parse_email(value).is_ok(), "{value}");
        }
        for value in [
            "Eve <eve@x.example>",
            "\"a b\"@x.example",
            "a@[127.0.0.1]",
            "a..b@x.example",
            ".a@x.example",
            "a@-x.example",
            "a@x.example\r\nBcc: c@y.example",
            "victim%elsewhere.example@relay.example",
            "a@",
            "@x.example",
            "",
        ] {
            assert_eq!(
                parse_email(value).map(drop),
                Err(GrammarError::Email),
                "{value}"
            );
        }
    }

    #[test]
    fn every_date_time_in_a_schema_gets_the_pattern() {
        let mut schema = serde_json::json!({"properties": {
            "a": {"type": "string", "format": "date-time"},
            "b": {"type": "array", "items": {"type": "string", "format": "date-time"}},
            "c": {"type": "string", "format": "email"},
        }});
        constrain_date_times(&mut schema);
        assert_eq!(schema["properties"]["a"]["pattern"], DATE_TIME_PATTERN);
        assert_eq!(
            schema["properties"]["b"]["items"]["pattern"],
            DATE_TIME_PATTERN
        );
        assert!(schema["properties"]["c"].get("pattern").is_none());
    }
}
