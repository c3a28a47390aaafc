//! The sandbox: a whole working system on one machine, with no cluster.
//!
//! The parts a cluster and a mail provider would supply, run in-process on loopback so the
//! operator can be tried and tested end to end without either:
//! - [`apiserver`]: a Kubernetes API server, faithful to kube-apiserver for what we touch;
//! - [`smtp`]: an SMTP server that keeps every message it accepts;
//! - [`command`]: `partner-operator sandbox`, which runs both with the operator;
//! - [`control_plane`]: the real etcd, kube-apiserver and kube-controller-manager on loopback,
//!   the reference the embedded server is measured against and the sandbox's alternative to it.

pub mod apiserver;
pub mod command;
pub mod control_plane;
pub mod smtp;

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
