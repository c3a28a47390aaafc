//! The keys the sandbox hands out: the webhook signing key its receiver verifies with, and the
//! key tenants' ownership proofs are made with, each kept in a Secret in the operator's
//! namespace as a deployed operator would find it.

use super::{SANDBOX_DISTRIBUTOR, SANDBOX_OPERATOR_NAMESPACE, SANDBOX_WEBHOOK_KEY_SECRET};

/// A fresh Standard Webhooks key: 32 random bytes.
pub fn new_webhook_key() -> String {
    let bytes: [u8; 32] = rand::random();
    format!(
        "whsec_{}",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, bytes)
    )
}

/// Makes the operator's namespace and, in it, the signing key Secret the examples' Distributor
/// names, holding `key` (replacing one an earlier run left on a real control plane's disk).
pub async fn store_webhook_key(client: &kube::Client, key: &str) -> Result<(), String> {
    use k8s_openapi::api::core::v1::{Namespace, Secret};
    use kube::api::{Api, Patch, PatchParams};
    let params = PatchParams::apply("partner-operator-sandbox").force();
    let namespace = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": SANDBOX_OPERATOR_NAMESPACE},
    });
    Api::<Namespace>::all(client.clone())
        .patch(
            SANDBOX_OPERATOR_NAMESPACE,
            &params,
            &Patch::Apply(namespace),
        )
        .await
        .map_err(|e| e.to_string())?;
    let secret = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": SANDBOX_WEBHOOK_KEY_SECRET,
            "namespace": SANDBOX_OPERATOR_NAMESPACE,
            "labels": {crate::webhooks::SIGNING_KEY_LABEL: "true"},
            // The examples' Distributor, the one it signs for.
            "annotations": {crate::webhooks::SIGNING_KEY_DISTRIBUTOR_ANNOTATION: SANDBOX_DISTRIBUTOR},
        },
        "stringData": {"signingKey": key},
    });
    Api::<Secret>::namespaced(client.clone(), SANDBOX_OPERATOR_NAMESPACE)
        .patch(SANDBOX_WEBHOOK_KEY_SECRET, &params, &Patch::Apply(secret))
        .await
        .map_err(|_| "the API server refused the Secret".to_string())?;
    Ok(())
}

/// The Secret in the operator's namespace holding the key tenants' ownership proofs are made
/// with, as the chart's `<release>-ownership-key`.
pub const SANDBOX_OWNERSHIP_KEY_SECRET: &str = "partner-operator-ownership-key";

/// The tenant ownership key: the one in [`SANDBOX_OWNERSHIP_KEY_SECRET`] if an earlier run
/// left it (a real control plane's disk outlives the process), else a fresh one stored there.
pub async fn ownership_key(client: &kube::Client) -> Result<crate::tenant::OwnershipKey, String> {
    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::Secret;
    use kube::api::{Api, PostParams};
    let api = Api::<Secret>::namespaced(client.clone(), SANDBOX_OPERATOR_NAMESPACE);
    let refused = |_| "the API server refused the Secret".to_string();
    let stored = api
        .get_opt(SANDBOX_OWNERSHIP_KEY_SECRET)
        .await
        .map_err(refused)?;
    let kept = stored
        .as_ref()
        .and_then(|secret| secret.data.as_ref()?.get("key"))
        .and_then(|key| crate::tenant::OwnershipKey::from_bytes(&key.0).ok());
    if let Some(key) = kept {
        return Ok(key);
    }
    let bytes = hex::encode(rand::random::<[u8; 32]>()).into_bytes();
    let key = crate::tenant::OwnershipKey::from_bytes(&bytes)?;
    let mut secret = Secret::default();
    secret.metadata.name = Some(SANDBOX_OWNERSHIP_KEY_SECRET.into());
    secret.data = Some([("key".to_string(), ByteString(bytes))].into());
    match stored {
        None => api.create(&PostParams::default(), &secret).await.map(drop),
        Some(old) => {
            secret.metadata.resource_version = old.metadata.resource_version;
            api.replace(
                SANDBOX_OWNERSHIP_KEY_SECRET,
                &PostParams::default(),
                &secret,
            )
            .await
            .map(drop)
        }
    }
    .map_err(refused)?;
    Ok(key)
}
