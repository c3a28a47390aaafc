//! What a reconciliation observes of its tenant's `entitlements` ConfigMap.
//!
//! The cache keeps, of each tenant's ConfigMap, only a digest of the keys the operator writes
//! ([`keep_digest`]), not its data: at 10,000 tenants the data (the lifecycle record, its proof,
//! the entitlements) was a quarter of the caches. What the plan compares the ConfigMap with is
//! what the Partner's status says it should hold ([`tenant::tenant_data`]), and nearly always
//! it holds just that: when the digests are equal, that data is what is observed, and it is
//! under the operator's proof by construction. When they differ (a status the ConfigMap does
//! not follow yet, a tenant restored or a status lost, a record somebody changed), the
//! ConfigMap is read, and its record believed only under the operator's proof.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
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
#[derive(Clone, Debug, PartialEq, Eq)]
enum Known {
    /// The data the operator wrote there last, which the cache does not show yet.
    Written(BTreeMap<String, String>),
    /// The digest of its data, as the cache has it.
    Digest(String),
}

/// What is known of the tenant's `entitlements`, `None` when there are none.
fn known(ctx: &Context, partner: &Partner) -> Option<Known> {
    let namespace = tenant_namespace_of(partner);
    if let Some(written) = ctx.caches.own_writes.entitlements(&namespace) {
        return Some(Known::Written(written));
    }
    let reference = ObjectRef::new(tenant::ENTITLEMENTS).within(&namespace);
    let cached = ctx.caches.entitlements.get(&reference)?;
    let digest = cached.data.as_ref().and_then(|data| data.get(DIGEST_KEY));
    Some(Known::Digest(digest.cloned().unwrap_or_default()))
}

/// The tenant's `entitlements` data as observed, its lifecycle record only under the
/// operator's proof: what the status says, when the cache's digest is of that; else as read.
pub(super) async fn observed(
    ctx: &Context,
    partner: &Partner,
) -> Result<Option<BTreeMap<String, String>>, Error> {
    let digest = match known(ctx, partner) {
        None => return Ok(None),
        Some(Known::Written(data)) => return Ok(Some(proven_record(ctx, partner, data))),
        Some(Known::Digest(digest)) => digest,
    };
    if let Some(expected) = expected_by_status(ctx, partner, &digest) {
        return Ok(Some(expected));
    }
    let namespace = tenant_namespace_of(partner);
    let read = Api::<ConfigMap>::namespaced(ctx.client.clone(), &namespace)
        .get_opt(tenant::ENTITLEMENTS)
        .await?;
    Ok(read.map(|cm| proven_record(ctx, partner, cm.data.unwrap_or_default())))
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

/// `data` with its lifecycle record only if the record is under the operator's proof (a record
/// somebody else wrote or changed is never believed: the plan writes it again from the status).
fn proven_record(
    ctx: &Context,
    partner: &Partner,
    data: BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let tenant = tenant_namespace_of(partner);
    let (data, proven) =
        tenant::record::verified(data, partner, &tenant, &ctx.settings.ownership.key);
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
