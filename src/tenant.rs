//! A Partner's tenant: its Namespace, the `entitlements` ConfigMap in it, and the `activation`
//! Secret that holds only a hash of the activation token.
//!
//! Every write is a server-side apply under the operator's field manager, so each call is
//! idempotent, creates what is missing and leaves fields other managers own alone (a label a
//! platform team adds to the tenant namespace survives).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use rand::RngCore;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::api::{Partner, PartnerStatus};

/// The field manager of every write the operator makes.
pub const FIELD_MANAGER: &str = "partner-operator";
/// Labels on a tenant namespace, so the operator can watch its tenants by label and find the
/// Partner a namespace belongs to.
pub const TENANT_ID_LABEL: &str = "partner-operator.io/tenant-id";
pub const PARTNER_NAMESPACE_LABEL: &str = "partner-operator.io/partner-namespace";
pub const PARTNER_NAME_LABEL: &str = "partner-operator.io/partner";
/// Not `partner-operator.io/distributor`: that label lets a namespace hold Partners, which a
/// tenant namespace must not do by accident.
pub const TENANT_DISTRIBUTOR_LABEL: &str = "partner-operator.io/tenant-distributor";
/// Name of the ConfigMap that tells the tenant's workloads what they are entitled to.
pub const ENTITLEMENTS: &str = "entitlements";
/// Name of the Secret holding the activation token's hash.
pub const ACTIVATION: &str = "activation";

/// Creates or updates the tenant namespace and its `entitlements` from `status`.
///
/// `cached` is the tenant Namespace as the operator's cache has it: when it exists with every
/// label in place, it is not applied again (one request less per change of entitlements).
pub async fn ensure(
    client: &Client,
    partner: &Partner,
    status: &PartnerStatus,
    cached: Option<&Namespace>,
) -> kube::Result<()> {
    let Some(tenant) = &status.tenant else {
        return Ok(());
    };
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let labels = tenant_labels(partner, &tenant.id);
    if !namespace_current(cached, &labels) {
        let namespace = json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": tenant.namespace, "labels": labels},
        });
        Api::<Namespace>::all(client.clone())
            .patch(&tenant.namespace, &params, &Patch::Apply(namespace))
            .await?;
    }
    let skus: Vec<&str> = status.skus.iter().map(|s| s.0.as_str()).collect();
    let level = status.subscription_level.unwrap_or_default().to_string();
    let entitlements = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": ENTITLEMENTS, "namespace": tenant.namespace, "labels": labels},
        "data": {
            "tenantId": tenant.id,
            "organization": partner.spec.organization_name,
            "distributor": partner.spec.distributor_ref.name,
            "level": level,
            "skus": skus.join(","),
            "expiresAt": status.expires_at.map(|at| at.to_rfc3339()).unwrap_or_default(),
        },
    });
    Api::<ConfigMap>::namespaced(client.clone(), &tenant.namespace)
        .patch(ENTITLEMENTS, &params, &Patch::Apply(entitlements))
        .await?;
    Ok(())
}

/// A fresh activation token: 256 random bits, hex-encoded. Lives only in memory and in the email.
pub fn new_activation_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// The SHA-256 of a token, hex-encoded: what the tenant's activation service compares against.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Stores the hash of `token` and its expiry in the tenant's `activation` Secret. A token
/// issued again (after a crash between storing and sending) replaces the previous one, so only
/// the link actually delivered works.
pub async fn store_activation(
    client: &Client,
    partner: &Partner,
    status: &PartnerStatus,
    token: &str,
    expires_at: DateTime<Utc>,
) -> kube::Result<()> {
    let Some(tenant) = &status.tenant else {
        return Ok(());
    };
    let secret = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": ACTIVATION,
            "namespace": tenant.namespace,
            "labels": tenant_labels(partner, &tenant.id),
        },
        "type": "Opaque",
        "stringData": {
            "tokenSha256": token_hash(token),
            "expiresAt": expires_at.to_rfc3339(),
        },
    });
    Api::<Secret>::namespaced(client.clone(), &tenant.namespace)
        .patch(
            ACTIVATION,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(secret),
        )
        .await?;
    Ok(())
}

/// Deletes the tenant namespace (and with it everything in it). Gone already is fine.
pub async fn delete(client: &Client, namespace: &str) -> kube::Result<()> {
    match Api::<Namespace>::all(client.clone())
        .delete(namespace, &DeleteParams::background())
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(err) => Err(err),
    }
}

/// The Partner a tenant namespace belongs to, from its labels.
pub fn owner_of(namespace: &Namespace) -> Option<(String, String)> {
    let labels = namespace.labels();
    Some((
        labels.get(PARTNER_NAMESPACE_LABEL)?.clone(),
        labels.get(PARTNER_NAME_LABEL)?.clone(),
    ))
}

/// Whether the namespace exists, is not being deleted, and carries every tenant label.
fn namespace_current(cached: Option<&Namespace>, labels: &BTreeMap<String, String>) -> bool {
    cached.is_some_and(|ns| {
        ns.metadata.deletion_timestamp.is_none()
            && labels
                .iter()
                .all(|(k, v)| ns.metadata.labels.as_ref().and_then(|l| l.get(k)) == Some(v))
    })
}

fn tenant_labels(partner: &Partner, tenant_id: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (TENANT_ID_LABEL.to_string(), tenant_id.to_string()),
        (
            PARTNER_NAMESPACE_LABEL.to_string(),
            partner.namespace().unwrap_or_default(),
        ),
        (PARTNER_NAME_LABEL.to_string(), partner.name_any()),
        (
            TENANT_DISTRIBUTOR_LABEL.to_string(),
            partner.spec.distributor_ref.name.clone(),
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_256_random_bits_and_only_their_hash_is_kept() {
        let a = new_activation_token();
        let b = new_activation_token();
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        let hash = token_hash(&a);
        assert_eq!(hash.len(), 64);
        assert_ne!(hash, a);
        assert_eq!(hash, token_hash(&a));
    }
}
