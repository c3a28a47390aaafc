//! Webhook signing keys: made, stored in Secrets as the operator reads them, and named by a
//! Distributor's endpoints.

use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

/// A fresh Standard Webhooks key (32 random bytes).
pub fn new_key() -> String {
    let bytes: [u8; 32] = rand::random();
    format!(
        "whsec_{}",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, bytes)
    )
}

/// Stores `value` as the `signingKey` of Secret `name` in `namespace` (made if missing), bound
/// to Distributor `distributor` (annotated with its name) and labelled as a signing key if
/// `labelled`.
pub async fn store_key(
    client: &Client,
    namespace: &str,
    name: &str,
    value: &str,
    labelled: bool,
    distributor: &str,
) {
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let params = PatchParams::apply("tests").force();
    namespaces
        .patch(
            namespace,
            &params,
            &Patch::Apply(
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}),
            ),
        )
        .await
        .expect("the keys' namespace");
    let labels = if labelled {
        json!({partner_operator::webhooks::SIGNING_KEY_LABEL: "true"})
    } else {
        json!({})
    };
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(client.clone(), namespace);
    secrets
        .patch(
            name,
            &params,
            &Patch::Apply(json!({
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "labels": labels,
                    "annotations": {
                        partner_operator::webhooks::SIGNING_KEY_DISTRIBUTOR_ANNOTATION: distributor,
                    },
                },
                "stringData": {"signingKey": value},
            })),
        )
        .await
        .expect("the signing key's Secret");
}

/// A Distributor endpoint named `name` delivering to `url`, signed with Secret `secret`.
pub fn endpoint(name: &str, url: &str, secret: &str) -> Value {
    json!({"name": name, "url": url, "signingKeySecretRef": {"name": secret}, "timeoutSeconds": 2})
}
