//! A Partner's tenant: its Namespace, the `entitlements` ConfigMap in it, and the `activation`
//! Secret that holds only a hash of the activation token.
//!
//! The tenant Namespace is named by [`tenant_namespace`] (from the Partner's uid, never
//! from its status) and is *created*, never applied: a create fails with 409 when the name is
//! taken, so the operator never adopts a namespace somebody else made. It carries the Partner's
//! uid in [`OWNER_UID_LABEL`] and the operator's proof that it made it
//! ([`OWNERSHIP_PROOF_ANNOTATION`], see [`ownership`]); the ConfigMap and Secret are written
//! into, and the namespace is deleted, only after the observed namespace shows that label with
//! this Partner's uid *and* a valid proof (a delete also with a uid precondition, so a
//! namespace swapped meanwhile survives). Its labels are set once, at creation: everything they
//! carry (uid, tenant id, names, `distributorRef`) is immutable, so the operator never relabels
//! a namespace. It patches one only to add the proof to a tenant of an earlier version, and
//! only when told to (`--prove-existing-tenants`).
//!
//! The ConfigMap and Secret are server-side applies under the operator's field manager, so each
//! call is idempotent and leaves fields other managers own alone.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

mod activation;
pub mod naming;
pub mod ownership;
pub mod record;
mod release;

pub use activation::{
    ACTIVATION_KEY_MIN_BYTES, ActivationKey, activation_link, link_base, token_hash,
};
pub use naming::*;
pub use ownership::{OWNERSHIP_PROOF_ANNOTATION, Ownership, OwnershipKey, presented_proof};
pub use record::TenantRecord;
use release::released;
pub use release::{RELEASED_ANNOTATION, release};

use crate::api::grammar::Zulu;
use crate::api::{Partner, PartnerStatus};

/// The field manager of every write the operator makes.
pub const FIELD_MANAGER: &str = "partner-operator";
/// Labels on a tenant namespace (and its ConfigMap and Secret), so people and tools can select
/// a Partner's tenant. A label value holds at most 63 characters: a longer name (a Partner or
/// Distributor name may have 253) is cut and ends in a hash of it ([`label_value`]), and the
/// full name is in the annotation of the same key. [`OWNER_UID_LABEL`] always selects exactly
/// one Partner's tenant.
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

/// An activation token to store in the tenant: the token (only its hash is written), when it
/// stops working, and the hashes of the earlier tokens it replaces (told apart from unknown
/// ones by the activation service, which answers 410 for them).
#[derive(Clone, Copy, Debug)]
pub struct IssuedToken<'a> {
    pub token: &'a str,
    pub expires_at: DateTime<Utc>,
    pub superseded: &'a [String],
}

/// What the operator found at the tenant's name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tenant {
    /// The namespace is this Partner's (ownership label) and live; its uid.
    Owned(String),
    /// A namespace by that name exists that this Partner does not own, or that carries its
    /// ownership label without the operator's proof.
    Taken,
    /// This Partner's namespace is being deleted: it can be created again once it is gone.
    Terminating,
    /// No namespace by that name.
    Absent,
}

impl Tenant {
    /// Whether the namespace is this Partner's and live: the only one written into.
    pub fn is_owned(&self) -> bool {
        matches!(self, Self::Owned(_))
    }
}

/// Whether `namespace` belongs to `partner`, and in what state: its ownership label carries
/// the uid the Partner's tenant was made for, it holds the operator's proof for this Partner
/// and this name, and it was not released.
pub fn classify(namespace: Option<&Namespace>, partner: &Partner, key: &OwnershipKey) -> Tenant {
    let Some(ns) = namespace else {
        return Tenant::Absent;
    };
    let owned = labelled_for(ns, partner) && proven(ns, partner, key) && !released(ns);
    match (owned, ns.metadata.deletion_timestamp.is_some()) {
        (false, _) => Tenant::Taken,
        (true, true) => Tenant::Terminating,
        (true, false) => Tenant::Owned(ns.metadata.uid.clone().unwrap_or_default()),
    }
}

/// Whether `ns` carries, in its ownership label, the uid `partner`'s tenant was made for.
fn labelled_for(ns: &Namespace, partner: &Partner) -> bool {
    let uid = tenant_owner_uid(partner);
    !uid.is_empty()
        && ns
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(OWNER_UID_LABEL))
            .map(String::as_str)
            == Some(uid)
}

/// Whether `ns` holds the operator's proof that it is `partner`'s tenant.
pub fn proven(ns: &Namespace, partner: &Partner, key: &OwnershipKey) -> bool {
    presented_proof(ns).is_some_and(|proof| {
        key.verify(
            &partner.namespace().unwrap_or_default(),
            &partner.name_any(),
            &ns.name_any(),
            proof,
        )
    })
}

/// The proof `partner`'s tenant carries.
fn proof_of(partner: &Partner, key: &OwnershipKey) -> String {
    key.proof(
        &partner.namespace().unwrap_or_default(),
        &partner.name_any(),
        &tenant_namespace_of(partner),
    )
}

/// What is at the tenant's name, as [`classify`] says; a namespace labelled for the Partner
/// but unproven is said in the log (the Partner says it in its status and an Event), and, when
/// `ownership.prove_existing` and it carries no proof at all, given one.
async fn judge(
    client: &Client,
    partner: &Partner,
    namespace: Option<&Namespace>,
    ownership: &Ownership,
) -> kube::Result<Tenant> {
    let found = classify(namespace, partner, &ownership.key);
    let Some(ns) = namespace.filter(|ns| found == Tenant::Taken && labelled_for(ns, partner))
    else {
        return Ok(found);
    };
    let name = ns.name_any();
    if ownership.prove_existing && presented_proof(ns).is_none() {
        return prove_existing(client, partner, ns, ownership).await;
    }
    tracing::warn!(
        namespace = %name,
        partner = %partner.name_any(),
        partner_namespace = %partner.namespace().unwrap_or_default(),
        proof = if presented_proof(ns).is_some() { "wrong" } else { "missing" },
        "a namespace carries this Partner's ownership label without the operator's proof: \
         taken, not adopted; nothing is written into it or deleted"
    );
    Ok(found)
}

/// Gives a tenant of an earlier version (labelled for `partner`, no proof) its proof, with a
/// precondition on the version observed, so a namespace changed meanwhile is judged again.
async fn prove_existing(
    client: &Client,
    partner: &Partner,
    ns: &Namespace,
    ownership: &Ownership,
) -> kube::Result<Tenant> {
    let name = ns.name_any();
    let patch = json!({
        "metadata": {
            "resourceVersion": ns.metadata.resource_version,
            "uid": ns.metadata.uid,
            "annotations": {OWNERSHIP_PROOF_ANNOTATION: proof_of(partner, &ownership.key)},
        },
    });
    let api = Api::<Namespace>::all(client.clone());
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    };
    match api.patch(&name, &params, &Patch::Merge(patch)).await {
        Ok(proven) => {
            tracing::info!(namespace = %name, "a tenant of an earlier version given its ownership proof");
            Ok(classify(Some(&proven), partner, &ownership.key))
        }
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(Tenant::Taken),
        Err(err) => Err(err),
    }
}

/// When told to prove tenants of an earlier version (`ownership.prove_existing`) and `cached`
/// is one for `partner` (its label, no proof at all): what is at the tenant's name once it has
/// been looked at afresh and, if it still is one, proven. `None` otherwise (nothing asked).
pub async fn prove_if_earlier(
    client: &Client,
    partner: &Partner,
    cached: Option<&Namespace>,
    ownership: &Ownership,
) -> kube::Result<Option<Tenant>> {
    match cached {
        Some(ns)
            if ownership.prove_existing
                && presented_proof(ns).is_none()
                && labelled_for(ns, partner) =>
        {
            observe(client, partner, cached, ownership).await.map(Some)
        }
        _ => Ok(None),
    }
}

/// The tenant namespace as it is now: `cached` when it shows the namespace this Partner's and
/// live, else a GET (a cache can lag behind a namespace deleted and made again by someone else).
async fn observe(
    client: &Client,
    partner: &Partner,
    cached: Option<&Namespace>,
    ownership: &Ownership,
) -> kube::Result<Tenant> {
    if let owned @ Tenant::Owned(_) = classify(cached, partner, &ownership.key) {
        return Ok(owned);
    }
    let name = tenant_namespace_of(partner);
    let live = Api::<Namespace>::all(client.clone()).get_opt(&name).await?;
    judge(client, partner, live.as_ref(), ownership).await
}

/// Creates the tenant namespace if it is missing, and nothing in it; returns what it found
/// there. A new tenant's namespace is made before the status that records it (see
/// `controller::partner::create_tenant_first`); what goes into it follows that status.
///
/// `cached` is the tenant Namespace as the operator's cache has it: when it shows the namespace
/// owned and live, no request is made.
pub async fn make(
    client: &Client,
    partner: &Partner,
    cached: Option<&Namespace>,
    ownership: &Ownership,
) -> kube::Result<Tenant> {
    if partner.uid().unwrap_or_default().is_empty() {
        // Every object the API server stores has a uid; without one there is no owner.
        return Ok(Tenant::Absent);
    }
    let found = match cached {
        None => Tenant::Absent,
        Some(_) => observe(client, partner, cached, ownership).await?,
    };
    match found {
        Tenant::Absent => {
            let labels = tenant_labels(partner, &tenant_id_of(partner));
            create(
                client,
                partner,
                &tenant_namespace_of(partner),
                &labels,
                ownership,
            )
            .await
        }
        other => Ok(other),
    }
}

/// Creates the tenant namespace if it is missing ([`make`]) and keeps its `entitlements`
/// current from `status`. Writes nothing unless the namespace is this Partner's; returns what
/// it found. `found` is what this reconciliation already found at the tenant's name: a
/// namespace it just made or found its own is not looked at again.
///
/// `activation` (the token of a link already emailed, and its expiry) is stored first, before
/// the entitlements: a tenant whose entitlements were missing may have lost its activation
/// Secret too (the namespace deleted and made again), and since the entitlements are written
/// last, a failure in between leaves them missing, so the next pass stores both again.
pub async fn ensure(
    client: &Client,
    partner: &Partner,
    status: &PartnerStatus,
    (found, cached): (Option<&Tenant>, Option<&Namespace>),
    ownership: &Ownership,
    activation: Option<IssuedToken<'_>>,
) -> kube::Result<Tenant> {
    let Some(tenant) = &status.tenant else {
        return Ok(Tenant::Absent);
    };
    let found = match found {
        Some(owned @ Tenant::Owned(_)) => owned.clone(),
        _ => make(client, partner, cached, ownership).await?,
    };
    if !found.is_owned() {
        return Ok(found);
    }
    let name = tenant_namespace_of(partner);
    let labels = tenant_labels(partner, &tenant.id);
    if let Some(issued) = activation {
        apply_activation(client, partner, &tenant.id, issued).await?;
    }
    let entitlements = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": ENTITLEMENTS,
            "namespace": name,
            "labels": labels,
            "annotations": tenant_annotations(partner),
        },
        "data": tenant_data(partner, status, &ownership.key),
    });
    Api::<ConfigMap>::namespaced(client.clone(), &name)
        .patch(
            ENTITLEMENTS,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(entitlements),
        )
        .await?;
    Ok(found)
}

/// What the tenant's `entitlements` ConfigMap holds for `status`, as written: the entitlements,
/// the lifecycle record and its proof. `None` before the tenant is provisioned.
pub fn tenant_data(
    partner: &Partner,
    status: &PartnerStatus,
    key: &OwnershipKey,
) -> Option<BTreeMap<String, String>> {
    let mut data = entitlements_data(partner, status)?;
    record::prove(&mut data, partner, &tenant_namespace_of(partner), key);
    Some(data)
}

/// The keys of an `entitlements` ConfigMap the operator writes ([`tenant_data`]); any other key
/// is somebody else's, and never compared.
pub const ENTITLEMENTS_KEYS: [&str; 8] = [
    "tenantId",
    "organization",
    "distributor",
    "level",
    "skus",
    "expiresAt",
    record::RECORD_KEY,
    record::RECORD_PROOF_KEY,
];

/// A digest of the operator's keys ([`ENTITLEMENTS_KEYS`]) of an `entitlements` ConfigMap's
/// `data`: equal for two `data` exactly when they hold the same values under those keys.
pub fn entitlements_digest(data: &BTreeMap<String, String>) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    for key in ENTITLEMENTS_KEYS {
        match data.get(key) {
            Some(value) => {
                hash.update([1]);
                hash.update((value.len() as u64).to_le_bytes());
                hash.update(value.as_bytes());
            }
            None => hash.update([0]),
        }
    }
    hash.finalize().into()
}

/// What the tenant's `entitlements` ConfigMap holds for `status`: the entitlements and the
/// lifecycle record ([`record`]), not the record's proof. `None` before the tenant is
/// provisioned.
pub fn entitlements_data(
    partner: &Partner,
    status: &PartnerStatus,
) -> Option<BTreeMap<String, String>> {
    let tenant = status.tenant.as_ref()?;
    let skus: Vec<&str> = status.skus.iter().map(|s| s.0.as_str()).collect();
    let record = TenantRecord::of(status).map(|r| r.to_json());
    Some(BTreeMap::from(
        [
            ("tenantId", tenant.id.clone()),
            ("organization", partner.spec.organization_name.clone()),
            ("distributor", partner.spec.distributor_ref.name.clone()),
            (
                "level",
                status.subscription_level.unwrap_or_default().to_string(),
            ),
            ("skus", skus.join(",")),
            (
                "expiresAt",
                status.expires_at.map(|at| at.zulu()).unwrap_or_default(),
            ),
            (record::RECORD_KEY, record.unwrap_or_default()),
        ]
        .map(|(key, value)| (key.to_string(), value)),
    ))
}

/// Creates the tenant namespace. A name already taken (409) is looked at: it may be this
/// Partner's own, made by an earlier attempt whose answer was lost, or someone else's.
async fn create(
    client: &Client,
    partner: &Partner,
    name: &str,
    labels: &BTreeMap<String, String>,
    ownership: &Ownership,
) -> kube::Result<Tenant> {
    let mut annotations = tenant_annotations(partner);
    annotations.insert(
        OWNERSHIP_PROOF_ANNOTATION.to_string(),
        proof_of(partner, &ownership.key),
    );
    let namespace: Namespace = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": annotations,
        },
    }))
    .expect("a namespace");
    let api = Api::<Namespace>::all(client.clone());
    match api
        .create(
            &PostParams {
                field_manager: Some(FIELD_MANAGER.into()),
                ..Default::default()
            },
            &namespace,
        )
        .await
    {
        Ok(created) => Ok(Tenant::Owned(created.metadata.uid.unwrap_or_default())),
        Err(kube::Error::Api(status)) if status.code == 409 => {
            let live = api.get_opt(name).await?;
            judge(client, partner, live.as_ref(), ownership).await
        }
        Err(err) => Err(err),
    }
}

/// Stores the hash of `token` and its expiry in the tenant's `activation` Secret. A token
/// issued again (after a crash between storing and sending) replaces the previous one, so only
/// the link actually delivered works. Stores nothing, and returns what it found, unless the
/// tenant namespace is this Partner's.
pub async fn store_activation(
    client: &Client,
    partner: &Partner,
    status: &PartnerStatus,
    cached: Option<&Namespace>,
    ownership: &Ownership,
    issued: IssuedToken<'_>,
) -> kube::Result<Tenant> {
    let Some(tenant) = &status.tenant else {
        return Ok(Tenant::Absent);
    };
    let found = observe(client, partner, cached, ownership).await?;
    if !matches!(found, Tenant::Owned(_)) {
        return Ok(found);
    }
    apply_activation(client, partner, &tenant.id, issued).await?;
    Ok(found)
}

/// Writes the `activation` Secret into the tenant namespace, which the caller has found to be
/// this Partner's. Its keys: `tokenSha256`, `expiresAt`, `supersededSha256` (comma-separated,
/// possibly empty) by the operator; `activatedAt` only by the activation service (another field
/// manager, so this apply leaves it alone).
async fn apply_activation(
    client: &Client,
    partner: &Partner,
    tenant_id: &str,
    issued: IssuedToken<'_>,
) -> kube::Result<()> {
    let name = tenant_namespace_of(partner);
    let secret = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": ACTIVATION,
            "namespace": name,
            "labels": tenant_labels(partner, tenant_id),
            "annotations": tenant_annotations(partner),
        },
        "type": "Opaque",
        "stringData": {
            "tokenSha256": token_hash(issued.token),
            "expiresAt": issued.expires_at.zulu(),
            "supersededSha256": issued.superseded.join(","),
        },
    });
    Api::<Secret>::namespaced(client.clone(), &name)
        .patch(
            ACTIVATION,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(secret),
        )
        .await
        .map(drop)
}

/// Deletes the Partner's tenant namespace (and with it everything in it) if it is this
/// Partner's: looked up by the name derived from the Partner (never from its status), checked
/// for the ownership label and the operator's proof, and deleted with a precondition on the uid that was checked, so a
/// namespace deleted and made again meanwhile is left alone. Returns what it found: `Owned`
/// when it deleted the namespace; gone already is fine.
pub async fn delete(
    client: &Client,
    partner: &Partner,
    ownership: &Ownership,
) -> kube::Result<Tenant> {
    let api = Api::<Namespace>::all(client.clone());
    let name = tenant_namespace_of(partner);
    let live = api.get_opt(&name).await?;
    let found = judge(client, partner, live.as_ref(), ownership).await?;
    // Not this Partner's, not there, or on its way out already.
    let Tenant::Owned(ns_uid) = found else {
        return Ok(found);
    };
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: Some(ns_uid.clone()),
            resource_version: None,
        }),
        ..DeleteParams::background()
    };
    match api.delete(&name, &params).await {
        Ok(_) => Ok(Tenant::Owned(ns_uid)),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(Tenant::Absent),
        // The uid precondition failed: the namespace there now is another one.
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(Tenant::Taken),
        Err(err) => Err(err),
    }
}

/// The labels of a Partner's tenant objects, every value at most 63 characters.
pub fn tenant_labels(partner: &Partner, tenant_id: &str) -> BTreeMap<String, String> {
    let mut labels: BTreeMap<String, String> = tenant_annotations(partner)
        .into_iter()
        .map(|(key, value)| (key, label_value(&value)))
        .collect();
    labels.insert(TENANT_ID_LABEL.to_string(), label_value(tenant_id));
    labels.insert(
        OWNER_UID_LABEL.to_string(),
        label_value(tenant_owner_uid(partner)),
    );
    labels
}

/// The names the labels carry, in full (a label may hold only a cut form of a long one).
fn tenant_annotations(partner: &Partner) -> BTreeMap<String, String> {
    BTreeMap::from([
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
#[path = "mod_tests.rs"]
mod tests;
