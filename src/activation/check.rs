//! The checks of an activation request, without I/O: the request's shape, and the token against
//! what the tenant's `activation` Secret stores.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use k8s_openapi::ByteString;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Keys of the tenant's `activation` Secret.
pub const TOKEN_SHA256: &str = "tokenSha256";
pub const EXPIRES_AT: &str = "expiresAt";
pub const SUPERSEDED_SHA256: &str = "supersededSha256";
/// Written by the activation service alone: when the tenant was activated, and (`"true"`)
/// that the Partner's status says so too.
pub const ACTIVATED_AT: &str = "activatedAt";
pub const ACTIVATION_RECORDED: &str = "activatedAtRecorded";

/// What the tenant's `activation` Secret says.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stored {
    /// The SHA-256 of the current token.
    pub token_sha256: Option<[u8; 32]>,
    pub expires_at: Option<DateTime<Utc>>,
    /// The SHA-256 of tokens replaced by a resend.
    pub superseded: Vec<[u8; 32]>,
    pub activated_at: Option<DateTime<Utc>>,
}

impl Stored {
    /// Reads the Secret's `data`; a value that does not parse counts as absent.
    pub fn from_data(data: &BTreeMap<String, ByteString>) -> Self {
        let text = |key: &str| {
            data.get(key)
                .and_then(|v| std::str::from_utf8(&v.0).ok())
                .map(str::trim)
        };
        let instant = |key: &str| text(key).and_then(|t| DateTime::parse_from_rfc3339(t).ok());
        Self {
            token_sha256: text(TOKEN_SHA256).and_then(digest),
            expires_at: instant(EXPIRES_AT).map(|t| t.with_timezone(&Utc)),
            superseded: text(SUPERSEDED_SHA256)
                .unwrap_or_default()
                .split(',')
                .filter_map(digest)
                .collect(),
            activated_at: instant(ACTIVATED_AT).map(|t| t.with_timezone(&Utc)),
        }
    }
}

fn digest(hex: &str) -> Option<[u8; 32]> {
    hex::decode(hex).ok()?.try_into().ok()
}

/// What a token is worth against a tenant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The current token, in time, the tenant not activated: it may activate.
    Valid,
    /// A token of this tenant (current or replaced); the tenant is activated already.
    AlreadyActivated(DateTime<Utc>),
    /// The current token, past its expiry.
    Expired,
    /// A token a resend replaced.
    Superseded,
    /// No token of this tenant: the same answer as an unknown tenant.
    Unknown,
}

/// Judges `token` against `stored` at `now`. `activated_at` is the activation as the Partner's
/// status records it (a Secret made again after the tenant was deleted no longer says it). The
/// token's hash is compared with every stored hash in constant time, all of them every time.
pub fn judge(
    stored: &Stored,
    activated_at: Option<DateTime<Utc>>,
    token: &str,
    now: DateTime<Utc>,
) -> Verdict {
    let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    let current = stored
        .token_sha256
        .is_some_and(|hash| bool::from(hash.ct_eq(&presented)));
    let superseded = stored
        .superseded
        .iter()
        .fold(subtle::Choice::from(0), |any, hash| {
            any | hash.ct_eq(&presented)
        });
    let known = current || bool::from(superseded);
    if !known {
        return Verdict::Unknown;
    }
    if let Some(at) = stored.activated_at.or(activated_at) {
        return Verdict::AlreadyActivated(at);
    }
    if !current {
        return Verdict::Superseded;
    }
    match stored.expires_at {
        Some(expires) if now < expires => Verdict::Valid,
        _ => Verdict::Expired,
    }
}

/// Whether `tenant` looks like a tenant id (a UUID in its lowercase hyphenated form): anything
/// else is answered as unknown without a look at the cluster, and never reaches a label selector.
pub fn is_tenant_id(tenant: &str) -> bool {
    uuid::Uuid::parse_str(tenant).is_ok_and(|id| id.hyphenated().to_string() == tenant)
}

/// Whether `token` looks like a token (64 lowercase hex digits).
pub fn is_token(token: &str) -> bool {
    token.len() == 64
        && token
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenant::{ActivationKey, token_hash};

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn secret(pairs: &[(&str, &str)]) -> BTreeMap<String, ByteString> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
            .collect()
    }

    #[test]
    fn a_token_is_valid_until_it_expires_and_only_the_current_one() {
        let key = ActivationKey::random();
        let (old, new) = (key.token("u", "<a>"), key.token("u", "<b>"));
        let stored = Stored::from_data(&secret(&[
            (TOKEN_SHA256, &token_hash(&new)),
            (EXPIRES_AT, "2027-03-08T09:00:00+00:00"),
            (SUPERSEDED_SHA256, &token_hash(&old)),
        ]));
        let before = at("2027-03-08T08:59:59Z");
        assert_eq!(judge(&stored, None, &new, before), Verdict::Valid);
        assert_eq!(
            judge(&stored, None, &new, at("2027-03-08T09:00:00Z")),
            Verdict::Expired
        );
        assert_eq!(judge(&stored, None, &old, before), Verdict::Superseded);
        let stranger = key.token("other", "<b>");
        assert_eq!(judge(&stored, None, &stranger, before), Verdict::Unknown);
        // The hash itself is no token.
        assert_eq!(
            judge(&stored, None, &token_hash(&new), before),
            Verdict::Unknown
        );
    }

    #[test]
    fn an_activated_tenant_says_so_to_any_of_its_tokens_and_nothing_to_others() {
        let key = ActivationKey::random();
        let (old, new) = (key.token("u", "<a>"), key.token("u", "<b>"));
        let when = at("2027-03-02T10:00:00Z");
        let mut data = secret(&[
            (TOKEN_SHA256, &token_hash(&new)),
            (EXPIRES_AT, "2027-03-08T09:00:00Z"),
            (SUPERSEDED_SHA256, &token_hash(&old)),
        ]);
        let stored = Stored::from_data(&data);
        // Recorded on the Partner only (the Secret was made again).
        let later = at("2027-03-09T09:00:00Z");
        assert_eq!(
            judge(&stored, Some(when), &new, later),
            Verdict::AlreadyActivated(when)
        );
        data.insert(
            ACTIVATED_AT.into(),
            ByteString(b"2027-03-02T10:00:00Z".to_vec()),
        );
        let stored = Stored::from_data(&data);
        assert_eq!(
            judge(&stored, None, &old, later),
            Verdict::AlreadyActivated(when)
        );
        assert_eq!(
            judge(&stored, None, &key.token("x", "<b>"), later),
            Verdict::Unknown
        );
    }

    #[test]
    fn a_secret_without_a_usable_hash_or_expiry_lets_nothing_in() {
        let key = ActivationKey::random();
        let token = key.token("u", "<a>");
        let now = at("2027-03-02T10:00:00Z");
        assert_eq!(
            judge(&Stored::default(), None, &token, now),
            Verdict::Unknown
        );
        let no_expiry = Stored::from_data(&secret(&[(TOKEN_SHA256, &token_hash(&token))]));
        assert_eq!(judge(&no_expiry, None, &token, now), Verdict::Expired);
        let garbled = Stored::from_data(&secret(&[
            (TOKEN_SHA256, "zz"),
            (EXPIRES_AT, "soon"),
            (SUPERSEDED_SHA256, ","),
        ]));
        assert_eq!(garbled, Stored::default());
    }

    #[test]
    fn only_well_formed_tenant_ids_and_tokens_are_looked_up() {
        assert!(is_tenant_id("6f1c2d3e-4f5a-5b6c-8d7e-9f0a1b2c3d4e"));
        for refused in [
            "",
            "6F1C2D3E-4F5A-5B6C-8D7E-9F0A1B2C3D4E",
            "6f1c2d3e4f5a5b6c8d7e9f0a1b2c3d4e",
            "x,partner-operator.io/owner-uid",
            "6f1c2d3e-4f5a-5b6c-8d7e-9f0a1b2c3d4e ",
        ] {
            assert!(!is_tenant_id(refused), "{refused:?}");
        }
        let token = ActivationKey::random().token("u", "m");
        assert!(is_token(&token));
        assert!(!is_token(&token.to_uppercase()));
        assert!(!is_token(&token[1..]));
        assert!(!is_token(&format!("{token}0")));
    }
}
