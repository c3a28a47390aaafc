//! partner-sandbox: the test ground of partner-operator, a whole working system on one machine,
//! with no cluster.
//!
//! The parts a cluster and a mail provider would supply, run in-process on loopback so the
//! operator can be tried and tested end to end without either:
//! - [`apiserver`]: a Kubernetes API server, faithful to kube-apiserver for what we touch;
//! - [`admission`]: what kube-apiserver checks before it stores a custom resource (defaults,
//!   schema, CEL), the embedded server's admission path;
//! - [`smtp`]: an SMTP server that keeps every message it accepts;
//! - [`control_plane`]: the real etcd, kube-apiserver and kube-controller-manager on loopback,
//!   the reference the embedded server is measured against and the sandbox's alternative to it.
//!
//! A crate of its own so the operator's library does not carry it: only the operator's
//! `sandbox` subcommand, its tests and its benchmarks use it. It knows nothing of the operator:
//! callers hand it the CRDs to install and the time its timestamps are read from.

pub mod admission;
pub mod apiserver;
pub mod control_plane;
pub mod smtp;
pub mod webhooks;

/// `object` as a backup keeps it (`kubectl get -o yaml`, Velero): typed, without what the API
/// server sets on its own (uid, resourceVersion, managedFields, timestamps, generation); a
/// Namespace without its status and with an empty spec. Anything else keeps its status: whether
/// it is restored is the restore's choice.
pub fn backed_up(
    object: impl serde::Serialize,
    api_version: &str,
    kind: &str,
) -> serde_json::Value {
    let mut object = serde_json::to_value(object).expect("an object serializes");
    object["apiVersion"] = serde_json::json!(api_version);
    object["kind"] = serde_json::json!(kind);
    if let Some(metadata) = object["metadata"].as_object_mut() {
        for field in [
            "uid",
            "resourceVersion",
            "managedFields",
            "creationTimestamp",
            "generation",
            "deletionTimestamp",
            "selfLink",
        ] {
            metadata.remove(field);
        }
    }
    if kind == "Namespace" {
        if let Some(fields) = object.as_object_mut() {
            fields.remove("status");
        }
        object["spec"] = serde_json::json!({});
    }
    object
}

/// Creates `object` (any kind the server serves, found by discovery) as a client would.
pub async fn create_object(client: &kube::Client, object: serde_json::Value) -> Result<(), String> {
    let type_meta: kube::core::TypeMeta =
        serde_json::from_value(object.clone()).map_err(|e| e.to_string())?;
    let gvk = kube::core::GroupVersionKind::try_from(&type_meta).map_err(|e| e.to_string())?;
    let (resource, caps) = kube::discovery::pinned_kind(client, &gvk)
        .await
        .map_err(|e| e.to_string())?;
    let object: kube::core::DynamicObject =
        serde_json::from_value(object).map_err(|e| e.to_string())?;
    let api: kube::Api<kube::core::DynamicObject> = match (&object.metadata.namespace, caps.scope) {
        (Some(ns), kube::discovery::Scope::Namespaced) => {
            kube::Api::namespaced_with(client.clone(), ns, &resource)
        }
        _ => kube::Api::all_with(client.clone(), &resource),
    };
    api.create(&Default::default(), &object)
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}
