//! The tenants the activation service can answer for, by tenant id, kept current from one watch
//! of the tenant namespaces (those carrying the tenant-id label), of which it keeps five strings
//! each.
//!
//! An activation request is unauthenticated: looking its tenant up here costs the API server
//! nothing, where a label-selected list of namespaces per request cost a cluster-wide LIST, and
//! answered an unknown tenant faster than a known one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use futures::TryStreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, ResourceExt};
use uuid::Uuid;

use crate::tenant::{
    OWNER_UID_LABEL, OWNERSHIP_PROOF_ANNOTATION, PARTNER_NAME_LABEL, PARTNER_NAMESPACE_LABEL,
    TENANT_ID_LABEL,
};

/// A tenant namespace as its labels and annotations describe it; the service checks it against
/// the Partner it names before believing it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tenant {
    pub namespace: String,
    pub owner_uid: String,
    pub partner_namespace: String,
    pub partner_name: String,
    /// The operator's ownership proof the namespace carries, if any.
    pub proof: Option<String>,
}

impl Tenant {
    /// The tenant id and what the namespace says, if it is a live tenant namespace.
    fn of(ns: &Namespace) -> Option<(Uuid, Tenant)> {
        if ns.metadata.deletion_timestamp.is_some() {
            return None;
        }
        let labels = ns.labels();
        let annotations = ns.annotations();
        let id = labels.get(TENANT_ID_LABEL)?;
        let id = Uuid::parse_str(id)
            .ok()
            .filter(|u| u.hyphenated().to_string() == *id)?;
        Some((
            id,
            Tenant {
                namespace: ns.name_any(),
                owner_uid: labels.get(OWNER_UID_LABEL)?.clone(),
                partner_namespace: annotations.get(PARTNER_NAMESPACE_LABEL)?.clone(),
                partner_name: annotations.get(PARTNER_NAME_LABEL)?.clone(),
                proof: annotations.get(OWNERSHIP_PROOF_ANNOTATION).cloned(),
            },
        ))
    }
}

/// Tenant namespaces by tenant id (several only if someone labelled a namespace of their own
/// like a tenant: the Partner check tells them apart).
#[derive(Clone, Default)]
pub struct Directory {
    inner: Arc<RwLock<Maps>>,
    ready: Arc<AtomicBool>,
}

#[derive(Default)]
struct Maps {
    by_id: HashMap<Uuid, Vec<Tenant>>,
    /// The id each namespace was filed under, to move or drop it when it changes.
    id_of: HashMap<String, Uuid>,
}

impl Maps {
    fn remove(&mut self, namespace: &str) {
        if let Some(id) = self.id_of.remove(namespace)
            && let Some(tenants) = self.by_id.get_mut(&id)
        {
            tenants.retain(|t| t.namespace != namespace);
            if tenants.is_empty() {
                self.by_id.remove(&id);
            }
        }
    }

    fn apply(&mut self, ns: &Namespace) {
        let name = ns.name_any();
        self.remove(&name);
        if let Some((id, tenant)) = Tenant::of(ns) {
            self.id_of.insert(name, id);
            self.by_id.entry(id).or_default().push(tenant);
        }
    }
}

impl Directory {
    /// Whether the first list has been read (before it, no tenant can be told unknown).
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// The namespaces filed under tenant id `id`.
    pub fn get(&self, id: &Uuid) -> Vec<Tenant> {
        self.inner
            .read()
            .unwrap()
            .by_id
            .get(id)
            .cloned()
            .unwrap_or_default()
    }

    /// Keeps the directory current until the returned future is dropped.
    pub async fn watch(self, client: Client) {
        let config = watcher::Config::default()
            .labels(TENANT_ID_LABEL)
            .page_size(100);
        let mut relist = Maps::default();
        let events = watcher::watcher(Api::<Namespace>::all(client), config).default_backoff();
        futures::pin_mut!(events);
        loop {
            match events.try_next().await {
                Ok(Some(event)) => self.handle(event, &mut relist),
                Ok(None) => return,
                Err(err) => tracing::warn!(error = %err, "activation service: watching tenants"),
            }
        }
    }

    fn handle(&self, event: Event<Namespace>, relist: &mut Maps) {
        match event {
            Event::Init => *relist = Maps::default(),
            Event::InitApply(ns) => relist.apply(&ns),
            Event::InitDone => {
                *self.inner.write().unwrap() = std::mem::take(relist);
                self.ready.store(true, Ordering::Release);
            }
            Event::Apply(ns) => self.inner.write().unwrap().apply(&ns),
            Event::Delete(ns) => self.inner.write().unwrap().remove(&ns.name_any()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn ns(name: &str, id: &str, owner: &str, deleting: bool) -> Namespace {
        let mut meta = Namespace::default();
        meta.metadata.name = Some(name.into());
        meta.metadata.labels = Some(BTreeMap::from([
            (TENANT_ID_LABEL.into(), id.into()),
            (OWNER_UID_LABEL.into(), owner.into()),
        ]));
        meta.metadata.annotations = Some(BTreeMap::from([
            (PARTNER_NAMESPACE_LABEL.into(), "partners".into()),
            (PARTNER_NAME_LABEL.into(), "contoso".into()),
        ]));
        if deleting {
            meta.metadata.deletion_timestamp =
                Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    k8s_openapi::jiff::Timestamp::now(),
                ));
        }
        meta
    }

    #[test]
    fn tenants_are_filed_by_id_moved_and_dropped_as_their_namespaces_change() {
        let id = "6f1c2d3e-4f5a-5b6c-8d7e-9f0a1b2c3d4e";
        let uuid = Uuid::parse_str(id).unwrap();
        let directory = Directory::default();
        let mut relist = Maps::default();
        directory.handle(Event::Init, &mut relist);
        directory.handle(Event::InitApply(ns("t-1", id, "u1", false)), &mut relist);
        directory.handle(
            Event::InitApply(ns("odd", "NOT-A-UUID", "u", false)),
            &mut relist,
        );
        assert!(!directory.is_ready());
        directory.handle(Event::InitDone, &mut relist);
        assert!(directory.is_ready());
        assert_eq!(directory.get(&uuid).len(), 1);
        assert_eq!(directory.get(&uuid)[0].owner_uid, "u1");
        // A namespace labelled like it by someone else: filed too, told apart later.
        directory.handle(Event::Apply(ns("t-2", id, "u2", false)), &mut relist);
        assert_eq!(directory.get(&uuid).len(), 2);
        // Terminating, then gone.
        directory.handle(Event::Apply(ns("t-2", id, "u2", true)), &mut relist);
        assert_eq!(directory.get(&uuid).len(), 1);
        directory.handle(Event::Delete(ns("t-1", id, "u1", false)), &mut relist);
        assert!(directory.get(&uuid).is_empty());
    }
}
