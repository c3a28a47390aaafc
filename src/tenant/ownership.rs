//! The operator's proof that it made a tenant namespace for a Partner.
//!
//! The ownership label ([`super::OWNER_UID_LABEL`]) says whose tenant a namespace is, and the
//! chart's admission policies let nobody but the operator set it. A policy is one line of
//! defence, and can be side-stepped (a subresource it does not match, a binding removed, a
//! cluster without ValidatingAdmissionPolicy): a namespace labelled by someone else would be
//! adopted, written into and, with its Partner, deleted. So the operator also signs what it
//! makes: the annotation [`OWNERSHIP_PROOF_ANNOTATION`] holds an HMAC-SHA256, under a key only
//! the operator reads, of the Partner's namespace, the Partner's name and the tenant
//! namespace's name. A namespace whose label matches but whose proof is missing or wrong is
//! taken, not the Partner's.
//!
//! The proof leaves out the Partner's uid (the label carries it, and both must hold): a
//! Partner restored from a backup gets a new uid, and its tenant's proof still holds.

use hmac::{Hmac, Mac};
use k8s_openapi::api::core::v1::Namespace;
use sha2::Sha256;

/// The annotation on a tenant namespace that holds the operator's proof of ownership.
pub const OWNERSHIP_PROOF_ANNOTATION: &str = "partner-operator.io/ownership-proof";

/// What every proof begins with: the version of its construction.
const PROOF_VERSION: &str = "v1:";

/// What the HMAC is taken over first, so a proof can never pass for another of the key's uses.
const DOMAIN: &[u8] = b"partner-operator.io/tenant-ownership/v1";
/// The same for a tenant's lifecycle record.
const RECORD_DOMAIN: &[u8] = b"partner-operator.io/tenant-record/v1";

/// The fewest bytes a key may have.
pub const OWNERSHIP_KEY_MIN_BYTES: usize = 32;

/// The key ownership proofs are made with: from a Secret the chart creates
/// (`<release>-ownership-key`, mounted as `--ownership-key-file`) and a backup carries, so
/// tenants stay provably the operator's across restarts, upgrades and restores. Never printed.
#[derive(Clone)]
pub struct OwnershipKey(std::sync::Arc<[u8]>);

impl OwnershipKey {
    /// A fresh random key, for a process that keeps none: the tenants it makes are its own
    /// only while it runs (a restarted operator without the key finds them all taken).
    pub fn random() -> Self {
        let bytes: [u8; 32] = rand::random();
        Self(bytes.to_vec().into())
    }

    /// The key as stored in a file: its bytes without a trailing newline; at least
    /// [`OWNERSHIP_KEY_MIN_BYTES`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
        if bytes.len() < OWNERSHIP_KEY_MIN_BYTES {
            return Err(format!(
                "an ownership key needs at least {OWNERSHIP_KEY_MIN_BYTES} bytes, this one has {}",
                bytes.len()
            ));
        }
        Ok(Self(bytes.to_vec().into()))
    }

    /// The HMAC over `domain` and `parts`, each ended by a NUL, which no Kubernetes name holds:
    /// no two lists run together.
    fn mac(&self, domain: &[u8], parts: &[&str]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("any key length");
        mac.update(domain);
        mac.update(&[0]);
        for part in parts {
            mac.update(part.as_bytes());
            mac.update(&[0]);
        }
        mac
    }

    /// The proof for the tenant namespace `tenant` of the Partner `partner_name` in
    /// `partner_namespace`: `v1:` and the HMAC in hex.
    pub fn proof(&self, partner_namespace: &str, partner_name: &str, tenant: &str) -> String {
        self.sign(DOMAIN, &[partner_namespace, partner_name, tenant])
    }

    /// Whether `presented` is the proof for that tenant, compared in constant time.
    pub fn verify(
        &self,
        partner_namespace: &str,
        partner_name: &str,
        tenant: &str,
        presented: &str,
    ) -> bool {
        self.check(
            DOMAIN,
            &[partner_namespace, partner_name, tenant],
            presented,
        )
    }

    /// The proof of a tenant's lifecycle record (see [`super::record`]): `record` is the
    /// record's JSON as stored, in the tenant `tenant` of that Partner.
    pub fn record_proof(
        &self,
        partner_namespace: &str,
        partner_name: &str,
        tenant: &str,
        record: &str,
    ) -> String {
        self.sign(
            RECORD_DOMAIN,
            &[partner_namespace, partner_name, tenant, record],
        )
    }

    /// Whether `presented` is the proof of that record, compared in constant time.
    pub fn verify_record(
        &self,
        partner_namespace: &str,
        partner_name: &str,
        tenant: &str,
        record: &str,
        presented: &str,
    ) -> bool {
        self.check(
            RECORD_DOMAIN,
            &[partner_namespace, partner_name, tenant, record],
            presented,
        )
    }

    fn sign(&self, domain: &[u8], parts: &[&str]) -> String {
        let tag = self.mac(domain, parts).finalize();
        format!("{PROOF_VERSION}{}", hex::encode(tag.into_bytes()))
    }

    fn check(&self, domain: &[u8], parts: &[&str], presented: &str) -> bool {
        let Some(tag) = presented
            .strip_prefix(PROOF_VERSION)
            .and_then(|hex_tag| hex::decode(hex_tag).ok())
        else {
            return false;
        };
        self.mac(domain, parts).verify_slice(&tag).is_ok()
    }
}

impl std::fmt::Debug for OwnershipKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OwnershipKey(..)")
    }
}

/// The proof `namespace` carries, if any.
pub fn presented_proof(namespace: &Namespace) -> Option<&str> {
    namespace
        .metadata
        .annotations
        .as_ref()?
        .get(OWNERSHIP_PROOF_ANNOTATION)
        .map(String::as_str)
}

/// How the operator treats tenants made before proofs existed: what `--prove-existing-tenants`
/// turns on.
#[derive(Clone, Debug)]
pub struct Ownership {
    pub key: OwnershipKey,
    /// Whether a namespace that carries a Partner's ownership label and *no* proof at all
    /// (made by a version of the operator before proofs) is taken for that Partner's tenant
    /// and given its proof. Off by default: then such a tenant is taken, like any unproven
    /// one, until an administrator who has checked the cluster's tenants turns this on once.
    /// A proof that is present and wrong is never replaced.
    pub prove_existing: bool,
}

impl Ownership {
    pub fn new(key: OwnershipKey) -> Self {
        Self {
            key,
            prove_existing: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proof_holds_for_its_partner_and_tenant_only_and_under_its_key_only() {
        let key = OwnershipKey::from_bytes(&[b'k'; 32]).unwrap();
        let proof = key.proof("team-a", "contoso", "tenant-contoso-1a2b");
        assert!(proof.starts_with("v1:") && proof.len() == 3 + 64, "{proof}");
        assert_eq!(proof, key.proof("team-a", "contoso", "tenant-contoso-1a2b"));
        assert!(key.verify("team-a", "contoso", "tenant-contoso-1a2b", &proof));
        for (ns, name, tenant) in [
            ("team-b", "contoso", "tenant-contoso-1a2b"),
            ("team-a", "fabrikam", "tenant-contoso-1a2b"),
            ("team-a", "contoso", "tenant-contoso-ffff"),
            // Parts that run together differently.
            ("team-ac", "ontoso", "tenant-contoso-1a2b"),
        ] {
            assert!(
                !key.verify(ns, name, tenant, &proof),
                "{ns}/{name} {tenant}"
            );
        }
        let other = OwnershipKey::from_bytes(&[b'o'; 32]).unwrap();
        assert!(!other.verify("team-a", "contoso", "tenant-contoso-1a2b", &proof));
        for forged in [
            "",
            "v1:",
            "v1:zz",
            &proof[3..],
            &proof.to_uppercase(),
            "v2:00",
        ] {
            assert!(
                !key.verify("team-a", "contoso", "tenant-contoso-1a2b", forged),
                "{forged}"
            );
        }
        assert!(OwnershipKey::from_bytes(b"short\n").is_err());
        assert_eq!(format!("{key:?}"), "OwnershipKey(..)");
        assert_ne!(
            OwnershipKey::random().proof("a", "b", "c"),
            OwnershipKey::random().proof("a", "b", "c")
        );
    }
}
