//! Which Partners a Distributor or a namespace concerns, kept current from the Partner watch, so
//! a change to either reaches its Partners without listing them.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;

use crate::api::Partner;

#[derive(Clone, Default)]
pub struct PartnerIndex {
    inner: Arc<RwLock<Inner>>,
}

#[derive(Default)]
struct Inner {
    by_distributor: HashMap<String, HashSet<ObjectRef<Partner>>>,
    by_namespace: HashMap<String, HashSet<ObjectRef<Partner>>>,
    /// The Partner whose tenant namespace has this name (derived from its uid, so one each).
    by_tenant: HashMap<String, ObjectRef<Partner>>,
    /// The Distributor each Partner names: a Partner removed as unreadable has no spec to say.
    distributor_of: HashMap<ObjectRef<Partner>, String>,
}

impl PartnerIndex {
    /// Records a Partner seen by the watch. `distributorRef` is immutable, so an entry never moves.
    pub fn insert(&self, partner: &Partner) {
        let reference = ObjectRef::from_obj(partner);
        let mut inner = self.inner.write().unwrap();
        inner
            .by_distributor
            .entry(partner.spec.distributor_ref.name.clone())
            .or_default()
            .insert(reference.clone());
        inner
            .distributor_of
            .insert(reference.clone(), partner.spec.distributor_ref.name.clone());
        inner
            .by_namespace
            .entry(partner.namespace().unwrap_or_default())
            .or_default()
            .insert(reference.clone());
        inner
            .by_tenant
            .insert(crate::tenant::tenant_namespace_of(partner), reference);
    }

    pub fn remove(&self, partner: &Partner) {
        let reference = ObjectRef::from_obj(partner);
        let mut inner = self.inner.write().unwrap();
        let distributor = inner.distributor_of.remove(&reference).unwrap_or_default();
        if let Some(set) = inner.by_distributor.get_mut(&distributor) {
            set.remove(&reference);
            if set.is_empty() {
                inner.by_distributor.remove(&distributor);
            }
        }
        let namespace = partner.namespace().unwrap_or_default();
        if let Some(set) = inner.by_namespace.get_mut(&namespace) {
            set.remove(&reference);
            if set.is_empty() {
                inner.by_namespace.remove(&namespace);
            }
        }
        let tenant = crate::tenant::tenant_namespace_of(partner);
        if inner.by_tenant.get(&tenant) == Some(&reference) {
            inner.by_tenant.remove(&tenant);
        }
    }

    pub fn of_distributor(&self, name: &str) -> Vec<ObjectRef<Partner>> {
        let inner = self.inner.read().unwrap();
        inner
            .by_distributor
            .get(name)
            .map(|set| set.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub fn in_namespace(&self, namespace: &str) -> Vec<ObjectRef<Partner>> {
        let inner = self.inner.read().unwrap();
        inner
            .by_namespace
            .get(namespace)
            .map(|set| set.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The Partner whose tenant namespace is `namespace`, whoever made that namespace: a Partner
    /// waiting for a taken name hears when it frees. Found by name only, never by the labels
    /// on the namespace, which whoever creates a namespace can set.
    pub fn tenant_owner(&self, namespace: &str) -> Option<ObjectRef<Partner>> {
        self.inner.read().unwrap().by_tenant.get(namespace).cloned()
    }
}
