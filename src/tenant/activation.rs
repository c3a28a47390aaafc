//! Activation tokens: made from the operator's key, so the same email always carries the same
//! link, and stored in the tenant only as a hash.

use rand::RngCore;
use sha2::{Digest, Sha256};

/// The operator's key for activation tokens. A token is HMAC-SHA256 under this key of the
/// Partner's uid and the email's Message-ID: 256 bits nobody can compute without the key, and
/// the same every time the same email is sent, so a copy resent after a crash (or after an SMTP
/// server took the message without confirming it) carries the same link as the first, and
/// either works. Only the token's SHA-256 is stored (the tenant's `activation` Secret); the key
/// itself lives in a Secret of the operator's own (`--activation-key-file`). Never printed.
#[derive(Clone)]
pub struct ActivationKey(std::sync::Arc<[u8]>);

/// The fewest bytes a key may have: as many as the token it makes.
pub const ACTIVATION_KEY_MIN_BYTES: usize = 32;

impl ActivationKey {
    /// A fresh random key, for a process that keeps none: its tokens cannot be made again after
    /// a restart.
    pub fn random() -> Self {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        Self(bytes.to_vec().into())
    }

    /// The key as stored in a file: its bytes, without a trailing newline; at least
    /// [`ACTIVATION_KEY_MIN_BYTES`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
        if bytes.len() < ACTIVATION_KEY_MIN_BYTES {
            return Err(format!(
                "an activation key needs at least {ACTIVATION_KEY_MIN_BYTES} bytes, this one has {}",
                bytes.len()
            ));
        }
        Ok(Self(bytes.to_vec().into()))
    }

    /// The token of the email `message_id` of the Partner with `partner_uid`, hex-encoded.
    pub fn token(&self, partner_uid: &str, message_id: &str) -> String {
        use hmac::Mac;
        let mut mac = hmac::Hmac::<Sha256>::new_from_slice(&self.0).expect("any key length");
        mac.update(partner_uid.as_bytes());
        mac.update(&[0]);
        mac.update(message_id.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

impl std::fmt::Debug for ActivationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ActivationKey(..)")
    }
}

/// The SHA-256 of a token, hex-encoded: what the tenant's activation service compares against.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The base of activation links, if `base` may be one: an absolute `https://` URL with a host,
/// no user part and no backslash (the rule `spec.activation.baseUrl` has at admission, and
/// `--activation-base-url` at start). A link in clear would expose its token; a user part
/// (`https://portal.example@evil.example/`) or a backslash would let a link look like another
/// site's.
///
/// One exception: `http://` to a loopback address (`127.0.0.0/8`, `[::1]`, `localhost`), where
/// the link never leaves the machine. The sandbox's own activation service is such a base; the
/// admission pattern of `spec.activation.baseUrl` stays https-only, so only the operator's
/// `--activation-base-url` can be one.
pub fn link_base(base: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(base).map_err(|err| format!("not a URL: {err}"))?;
    if base.contains('\\') {
        return Err("a backslash is not allowed".into());
    }
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    if url.scheme() != "https" && !(url.scheme() == "http" && loopback) {
        return Err(format!(
            "https:// only (http:// only to a loopback address), not {}://",
            url.scheme()
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("a user part (user@) is not allowed".into());
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("no host".into());
    }
    Ok(url)
}

/// `<base>?tenant=<id>&token=<token>`: the link of an activation email.
pub fn activation_link(base: &url::Url, tenant_id: &str, token: &str) -> String {
    let mut url = base.clone();
    url.query_pairs_mut()
        .append_pair("tenant", tenant_id)
        .append_pair("token", token);
    url.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_256_bits_the_same_for_one_email_and_only_their_hash_is_kept() {
        let key = ActivationKey::random();
        let a = key.token("uid-1", "<activation.1@partner-operator.io>");
        assert_eq!(a, key.token("uid-1", "<activation.1@partner-operator.io>"));
        let b = key.token("uid-2", "<activation.1@partner-operator.io>");
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert_ne!(a, key.token("uid-1", "<activation.2@partner-operator.io>"));
        assert_ne!(
            a,
            ActivationKey::random().token("uid-1", "<activation.1@partner-operator.io>")
        );
        assert!(ActivationKey::from_bytes(b"short\n").is_err());
        let stored = ActivationKey::from_bytes(&[b'k'; 33]).unwrap();
        assert_eq!(
            stored.token("u", "m"),
            ActivationKey::from_bytes(&[&[b'k'; 33][..], b"\n"].concat())
                .unwrap()
                .token("u", "m")
        );
        assert_eq!(format!("{stored:?}"), "ActivationKey(..)");
        let hash = token_hash(&a);
        assert_eq!(hash.len(), 64);
        assert_ne!(hash, a);
        assert_eq!(hash, token_hash(&a));
    }

    #[test]
    fn link_bases_are_https_without_a_user_part_or_a_backslash() {
        assert!(link_base("https://portal.example/activate").is_ok());
        for loopback in [
            "http://127.0.0.1:8081/activate",
            "http://[::1]:8081/activate",
            "http://localhost:8081/activate",
        ] {
            assert!(link_base(loopback).is_ok(), "{loopback}");
        }
        for refused in [
            "http://portal.example/activate",
            "http://127.0.0.1.evil.example/activate",
            "http://10.0.0.1/activate",
            "http://user@127.0.0.1/activate",
            "file:///etc/passwd",
            "ftp://portal.example/",
            "https://portal.northwind.example@evil.example/activate",
            "https://user:pw@portal.example/",
            "https://evil.example\\@portal.example/",
            "not a url",
        ] {
            assert!(link_base(refused).is_err(), "{refused}");
        }
    }

    #[test]
    fn links_carry_the_tenant_and_the_token_after_the_base_query() {
        let base = url::Url::parse("https://portal.example/activate?lang=en").unwrap();
        assert_eq!(
            activation_link(&base, "t-1", "abc"),
            "https://portal.example/activate?lang=en&tenant=t-1&token=abc"
        );
    }
}
