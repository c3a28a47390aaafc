//! What a reconciliation observes of its tenant's `entitlements` ConfigMap.
//!
//! The cache keeps, of each tenant's ConfigMap, only a digest of the keys the operator writes
//! ([`keep_digest`]), not its data: at 10,000 tenants the data (the lifecycle record, its proof,
//! the entitlements) was a quarter of the caches. What the plan compares the ConfigMap with is
//! what the Partner's status says it should hold ([`tenant::tenant_data`]), and nearly always
//! it holds just that: when the digests are equal, that data is what is observed, and it is
//! under the operator's proof by construction. When they differ (a status the ConfigMap does
//! not follow yet, a tenant restored or a status lost, a record somebody changed), the
//! ConfigMap is read, and its record believed only under the operator's proof. A read stands
//! for as long as the cache shows the version read ([`Reads`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::reflector::ObjectRef;
use tracing::debug;

use super::Context;
use super::partner::Error;
use crate::api::Partner;
use crate::tenant::{self, tenant_namespace_of};

/// The key under which the cache keeps the digest of a ConfigMap's data. A ConfigMap's own keys
/// hold only letters, digits, `-`, `_` and `.`, so none is taken for it.
const DIGEST_KEY: &str = "partner-operator:digest";

/// What the cache keeps of an `entitlements` ConfigMap's `data`: the digest of the operator's
/// keys, under [`DIGEST_KEY`].
pub(super) fn keep_digest(cm: &mut ConfigMap) {
    let digest = tenant::entitlements_digest(cm.data.as_ref().unwrap_or(&BTreeMap::new()));
    cm.data = Some(BTreeMap::from([(
        DIGEST_KEY.to_string(),
        hex::encode(digest),
    )]));
    cm.binary_data = None;
}

/// What is known, without a request, of the tenant's `entitlements`.
enum Known {
    /// The data the operator wrote there last, which the cache does not show yet.
    Written(BTreeMap<String, String>),
    /// The digest of its data and its resourceVersion, as the cache has them.
    Digest { digest: String, version: String },
}

/// The `entitlements` read by name, per tenant namespace, with the resourceVersion read. While
/// the cache shows that version, the read stands for another: a difference that lasts (a
/// Partner awaiting its tenant's restore, a tenant write that keeps failing) costs one read per
/// version of the ConfigMap, not one per reconciliation. A digest that agrees again, or the
/// Partner's deletion, forgets it.
#[derive(Default)]
pub struct Reads(Mutex<HashMap<String, Read>>);

/// The resourceVersion read and the `data`.
type Read = (String, BTreeMap<String, String>);

impl Reads {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Read>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The data read in `namespace`, if it was read at `version`.
    fn at(&self, namespace: &str, version: &str) -> Option<BTreeMap<String, String>> {
        let reads = self.lock();
        let (read_at, data) = reads.get(namespace)?;
        (read_at == version).then(|| data.clone())
    }

    fn keep(&self, namespace: &str, version: String, data: BTreeMap<String, String>) {
        self.lock().insert(namespace.to_string(), (version, data));
    }

    /// Forgets what was read in `namespace`.
    pub fn forget(&self, namespace: &str) {
        self.lock().remove(namespace);
    }
}

/// What is known of the `entitlements` in the tenant namespace `namespace`, `None` when there
/// are none.
fn known(ctx: &Context, namespace: &str) -> Option<Known> {
    if let Some(written) = ctx.caches.own_writes.entitlements(namespace) {
        return Some(Known::Written(written));
    }
    let reference = ObjectRef::new(tenant::ENTITLEMENTS).within(namespace);
    let cached = ctx.caches.entitlements.get(&reference)?;
    let digest = cached.data.as_ref().and_then(|data| data.get(DIGEST_KEY));
    Some(Known::Digest {
        digest: digest.cloned().unwrap_or_default(),
        version: cached.resource_version().unwrap_or_default(),
    })
}

/// The tenant's `entitlements` data as observed, its lifecycle record only under the
/// operator's proof: what the status says, when the cache's digest is of that; else as read.
pub(super) async fn observed(
    ctx: &Context,
    partner: &Partner,
) -> Result<Option<BTreeMap<String, String>>, Error> {
    let namespace = tenant_namespace_of(partner);
    let proven = |data| proven_record(ctx, partner, &namespace, data);
    let (digest, version) = match known(ctx, &namespace) {
        None => return Ok(None),
        Some(Known::Written(data)) => return Ok(Some(proven(data))),
        Some(Known::Digest { digest, version }) => (digest, version),
    };
    let reads = &ctx.caches.entitlements_read;
    if let Some(expected) = expected_by_status(ctx, partner, &digest) {
        reads.forget(&namespace);
        return Ok(Some(expected));
    }
    if let Some(data) = reads.at(&namespace, &version) {
        return Ok(Some(proven(data)));
    }
    let read = Api::<ConfigMap>::namespaced(ctx.client.clone(), &namespace)
        .get_opt(tenant::ENTITLEMENTS)
        .await?;
    Ok(read.map(|cm| {
        let data = cm.data.unwrap_or_default();
        if let Some(version) = cm.metadata.resource_version {
            reads.keep(&namespace, version, data.clone());
        }
        proven(data)
    }))
}

/// What the status says the `entitlements` hold, if `digest` (hex) is of that.
fn expected_by_status(
    ctx: &Context,
    partner: &Partner,
    digest: &str,
) -> Option<BTreeMap<String, String>> {
    let status = partner.status.as_ref()?;
    let expected = tenant::tenant_data(partner, status, &ctx.settings.ownership.key)?;
    (hex::encode(tenant::entitlements_digest(&expected)) == digest).then_some(expected)
}

/// `data` (of the tenant namespace `tenant`) with its lifecycle record only if the record is
/// under the operator's proof (a record somebody else wrote or changed is never believed: the
/// plan writes it again from the status).
fn proven_record(
    ctx: &Context,
    partner: &Partner,
    tenant: &str,
    data: BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let (data, proven) =
        tenant::record::verified(data, partner, tenant, &ctx.settings.ownership.key);
    if !proven {
        debug!(partner = %ObjectRef::from_obj(partner), %tenant, "the tenant's lifecycle record is not under the operator's proof: not believed, written again");
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_map(data: &[(&str, &str)]) -> ConfigMap {
        ConfigMap {
            data: Some(
                data.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        }
    }

    #[test]
    fn a_read_stands_while_the_cache_shows_the_version_read() {
        let reads = Reads::default();
        let data = BTreeMap::from([("level".to_string(), "Trial".to_string())]);
        reads.keep("tenant-a", "7".into(), data.clone());
        assert_eq!(reads.at("tenant-a", "7"), Some(data));
        assert_eq!(
            reads.at("tenant-a", "8"),
            None,
            "a newer version is read again"
        );
        assert_eq!(reads.at("tenant-b", "7"), None);
        reads.forget("tenant-a");
        assert_eq!(reads.at("tenant-a", "7"), None);
    }

    #[test]
    fn the_cache_keeps_only_the_digest_of_the_operators_keys() {
        let mut written = config_map(&[("level", "Trial"), ("lifecycleRecord", "{}")]);
        let mut with_theirs = config_map(&[
            ("level", "Trial"),
            ("lifecycleRecord", "{}"),
            ("addedByTheTenant", "x"),
        ]);
        let mut other = config_map(&[("level", "Production"), ("lifecycleRecord", "{}")]);
        for cm in [&mut written, &mut with_theirs, &mut other] {
            keep_digest(cm);
            assert_eq!(cm.data.as_ref().unwrap().len(), 1);
        }
        assert_eq!(written.data, with_theirs.data);
        assert_ne!(written.data, other.data);
        let digest = &written.data.as_ref().unwrap()[DIGEST_KEY];
        let data = config_map(&[("level", "Trial"), ("lifecycleRecord", "{}")]).data;
        assert_eq!(
            *digest,
            hex::encode(tenant::entitlements_digest(&data.unwrap()))
        );
    }
}
