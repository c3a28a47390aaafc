//! The Partner's finalizer, added and removed under the operator's field manager.
//!
//! kube's `runtime::finalizer` does the same, but writes without a field manager, so its entry
//! in `managedFields` reads `unknown` (kube-apiserver's name for a write that names none): one
//! write of the operator's that `kubectl get -o yaml --show-managed-fields` could not tell from
//! a stranger's. This is that helper, its outcomes and errors unchanged, with every patch named
//! [`FIELD_MANAGER`].

use std::sync::Arc;

use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, PatchOperation, RemoveOperation, TestOperation};
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Error, Event};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::tenant::FIELD_MANAGER;

/// Runs `reconcile` with the finalizer `name` on `object`, as kube's `finalizer` does: adds it
/// first (and looks again once the watch shows it), hands a deleted object to `Cleanup` and
/// removes the finalizer after, and anything else to `Apply`.
pub async fn finalizer<K, F, E>(
    api: &Api<K>,
    name: &str,
    object: Arc<K>,
    reconcile: impl FnOnce(Event<K>) -> F,
) -> Result<Action, Error<E>>
where
    K: Resource + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
    F: std::future::Future<Output = Result<Action, E>>,
    E: std::error::Error + 'static,
{
    let index = object.finalizers().iter().position(|f| f == name);
    let deleting = object.meta().deletion_timestamp.is_some();
    match (index, deleting) {
        (Some(_), false) => reconcile(Event::Apply(object))
            .await
            .map_err(Error::ApplyFailed),
        (Some(index), true) => {
            let object_name = object.meta().name.clone().ok_or(Error::UnnamedObject)?;
            let action = reconcile(Event::Cleanup(object))
                .await
                .map_err(Error::CleanupFailed)?;
            let path = pointer(&format!("/metadata/finalizers/{index}"))?;
            let patch = vec![
                PatchOperation::Test(TestOperation {
                    path: path.clone(),
                    value: name.into(),
                }),
                PatchOperation::Remove(RemoveOperation { path }),
            ];
            api.patch::<K>(
                &object_name,
                &params(),
                &Patch::Json(json_patch::Patch(patch)),
            )
            .await
            .map_err(Error::RemoveFinalizer)?;
            Ok(action)
        }
        (None, false) => {
            let object_name = object.meta().name.as_deref().ok_or(Error::UnnamedObject)?;
            let patch = add(object.finalizers(), name)?;
            api.patch::<K>(object_name, &params(), &Patch::Json(patch))
                .await
                .map_err(Error::AddFinalizer)?;
            Ok(Action::await_change())
        }
        // Being deleted without the finalizer: nothing is the operator's to do.
        (None, true) => Ok(Action::await_change()),
    }
}

/// The patch that adds `name` to `current`, on condition the list is still `current`.
fn add<E: std::error::Error>(
    current: &[String],
    name: &str,
) -> Result<json_patch::Patch, Error<E>> {
    let operations = if current.is_empty() {
        vec![
            PatchOperation::Test(TestOperation {
                path: pointer("/metadata/finalizers")?,
                value: serde_json::Value::Null,
            }),
            PatchOperation::Add(AddOperation {
                path: pointer("/metadata/finalizers")?,
                value: vec![name].into(),
            }),
        ]
    } else {
        vec![
            PatchOperation::Test(TestOperation {
                path: pointer("/metadata/finalizers")?,
                value: current.into(),
            }),
            PatchOperation::Add(AddOperation {
                path: pointer("/metadata/finalizers/-")?,
                value: name.into(),
            }),
        ]
    };
    Ok(json_patch::Patch(operations))
}

fn pointer<E: std::error::Error>(path: &str) -> Result<PointerBuf, Error<E>> {
    PointerBuf::parse(path).map_err(|_| Error::InvalidFinalizer)
}

/// Every finalizer patch names the operator.
fn params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    }
}
