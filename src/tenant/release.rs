//! A retained tenant released when its Partner is deleted (`deletionPolicy: Retain`).

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;

use super::{FIELD_MANAGER, Ownership, Tenant, classify, tenant_namespace_of};
use crate::api::Partner;
use crate::api::grammar::Zulu;

/// The annotation a retained tenant gets when its Partner is deleted: when it was released.
pub const RELEASED_ANNOTATION: &str = "partner-operator.io/released-at";

/// Releases the tenant of a Partner deleted with `deletionPolicy: Retain`: the namespace keeps
/// everything in it and is marked released ([`RELEASED_ANNOTATION`], when), so no Partner
/// ever takes it again (see [`classify`]), not even one created again under the same name from
/// an export that carries [`TENANT_OWNER_UID_LABEL`](super::TENANT_OWNER_UID_LABEL) (it would bill from a period its deletion
/// ended). Written only into a namespace that is this Partner's, with preconditions on what
/// was checked. Returns what it found.
pub async fn release(
    client: &Client,
    partner: &Partner,
    ownership: &Ownership,
    at: DateTime<Utc>,
) -> kube::Result<Tenant> {
    let api = Api::<Namespace>::all(client.clone());
    let name = tenant_namespace_of(partner);
    let live = api.get_opt(&name).await?;
    let found = classify(live.as_ref(), partner, &ownership.key);
    let (Tenant::Owned(_), Some(ns)) = (&found, live) else {
        return Ok(found);
    };
    let patch = json!({
        "metadata": {
            "resourceVersion": ns.metadata.resource_version,
            "uid": ns.metadata.uid,
            "annotations": {RELEASED_ANNOTATION: at.zulu()},
        },
    });
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    match api.patch(&name, &params, &Patch::Merge(patch)).await {
        Ok(_) => Ok(found),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(Tenant::Absent),
        // A 409 (changed meanwhile) is retried, and the namespace judged again.
        Err(err) => Err(err),
    }
}

/// Whether `ns` is a tenant released when its Partner was deleted (see [`release`]).
pub(super) fn released(ns: &Namespace) -> bool {
    ns.metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(RELEASED_ANNOTATION))
}
