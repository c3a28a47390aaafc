//! The resourceVersion of each Partner's last status write by this operator.
//!
//! The watch that fills the Partner cache trails the operator's own writes, more so under load.
//! A reconciliation of a cached copy older than the operator's last write would plan on a
//! status it has since replaced: its write would either repeat what is stored or fail on the
//! precondition and read the Partner again, two requests for nothing. Such a reconciliation
//! waits instead: the watch event of that write wakes the Partner again, with the cache caught
//! up.
//!
//! resourceVersions are opaque to clients in general; kube-apiserver's (etcd's revisions) and
//! the sandbox's are integers that grow with every write, and only then is a copy taken to
//! lag. Anything else is never taken to lag, and the resourceVersion precondition keeps every
//! write safe either way.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;

use crate::api::Partner;

#[derive(Default)]
pub struct OwnWrites {
    /// Per Partner: the uid written and the resourceVersion the write returned.
    written: Mutex<HashMap<ObjectRef<Partner>, (String, u64)>>,
    /// Per Partner: the uid whose tenant namespace the operator made or found its own. The
    /// Namespace cache trails too: a tenant it does not show yet is looked up, not taken to be
    /// missing (which would say "creating the tenant namespace" on a Partner whose tenant is
    /// there, and write that twice).
    tenants: Mutex<HashMap<ObjectRef<Partner>, String>>,
    /// Per tenant namespace: the `entitlements` data the operator wrote there last, and when,
    /// until the cache has an event of that ConfigMap again or [`ENTITLEMENTS_MEMORY`] has
    /// passed. A reconciliation in between (a Partner woken for its mail slot, say) would
    /// otherwise compare with a cache that does not show the write yet and write the same data
    /// again. The bound makes it converge should an event have come before the write was
    /// remembered (the ConfigMap deleted at once, say).
    entitlements: Mutex<HashMap<String, (Entitlements, Instant)>>,
}

/// The `data` of an `entitlements` ConfigMap.
type Entitlements = BTreeMap<String, String>;

/// How long the entitlements the operator wrote stand for what the cache shows, at most.
const ENTITLEMENTS_MEMORY: Duration = Duration::from_secs(30);

impl OwnWrites {
    /// The operator wrote `partner` (as the API server returned it).
    pub fn wrote(&self, partner: &Partner) {
        let (Some(uid), Some(version)) = (partner.uid(), version(partner)) else {
            return;
        };
        let mut written = self.written.lock().unwrap_or_else(|p| p.into_inner());
        written.insert(ObjectRef::from_obj(partner), (uid, version));
    }

    /// Whether `cached` is older than the operator's last write of the same Partner.
    pub fn lags(&self, cached: &Partner) -> bool {
        let written = self.written.lock().unwrap_or_else(|p| p.into_inner());
        let Some((uid, last)) = written.get(&ObjectRef::from_obj(cached)) else {
            return false;
        };
        cached.uid().as_ref() == Some(uid) && version(cached).is_some_and(|v| v < *last)
    }

    /// The operator made `partner`'s tenant namespace, or found it its own.
    pub fn made_tenant(&self, partner: &Partner) {
        let Some(uid) = partner.uid() else {
            return;
        };
        let mut tenants = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
        tenants.insert(ObjectRef::from_obj(partner), uid);
    }

    /// Whether the operator made `partner`'s tenant (this Partner's, by uid) and has not seen
    /// it gone since.
    pub fn tenant_made(&self, partner: &Partner) -> bool {
        let tenants = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
        tenants.get(&ObjectRef::from_obj(partner)) == partner.uid().as_ref()
    }

    /// `partner`'s tenant was looked up and is not there.
    pub fn tenant_gone(&self, partner: &ObjectRef<Partner>) {
        let mut tenants = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
        tenants.remove(partner);
    }

    /// The operator wrote `data` into the `entitlements` of tenant `namespace`.
    pub fn wrote_entitlements(&self, namespace: &str, data: BTreeMap<String, String>) {
        let mut entitlements = self.entitlements.lock().unwrap_or_else(|p| p.into_inner());
        entitlements.insert(namespace.to_string(), (data, Instant::now()));
    }

    /// What the operator wrote into the `entitlements` of tenant `namespace`, if the cache has
    /// had no event of that ConfigMap since.
    pub fn entitlements(&self, namespace: &str) -> Option<BTreeMap<String, String>> {
        let entitlements = self.entitlements.lock().unwrap_or_else(|p| p.into_inner());
        entitlements
            .get(namespace)
            .filter(|(_, at)| at.elapsed() < ENTITLEMENTS_MEMORY)
            .map(|(data, _)| data.clone())
    }

    /// The cache has an event of the `entitlements` of tenant `namespace` (the operator's own
    /// write, or anyone's later): from now on the cache says what is there.
    pub fn entitlements_seen(&self, namespace: &str) {
        let mut entitlements = self.entitlements.lock().unwrap_or_else(|p| p.into_inner());
        entitlements.remove(namespace);
    }

    /// The Partner is gone: nothing more is kept of it.
    pub fn forget(&self, partner: &ObjectRef<Partner>) {
        let mut written = self.written.lock().unwrap_or_else(|p| p.into_inner());
        written.remove(partner);
        self.tenant_gone(partner);
    }
}

fn version(partner: &Partner) -> Option<u64> {
    crate::watch_progress::ordered(partner.resource_version().as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::fixtures::partner;

    fn at(version: &str, uid: &str) -> Partner {
        let mut p = partner();
        p.metadata.resource_version = Some(version.into());
        p.metadata.uid = Some(uid.into());
        p
    }

    #[test]
    fn a_copy_older_than_the_last_write_lags_and_nothing_else_does() {
        let writes = OwnWrites::default();
        assert!(!writes.lags(&at("5", "u")), "nothing written yet");
        writes.wrote(&at("10", "u"));
        assert!(writes.lags(&at("9", "u")));
        assert!(!writes.lags(&at("10", "u")));
        assert!(!writes.lags(&at("11", "u")));
        assert!(!writes.lags(&at("9", "another"),), "a Partner made again");
        assert!(!writes.lags(&at("opaque", "u")));
        writes.forget(&ObjectRef::from_obj(&at("10", "u")));
        assert!(!writes.lags(&at("9", "u")));
    }

    #[test]
    fn a_tenant_made_is_remembered_for_that_partner_until_seen_gone() {
        let writes = OwnWrites::default();
        assert!(!writes.tenant_made(&at("1", "u")));
        writes.made_tenant(&at("1", "u"));
        assert!(writes.tenant_made(&at("2", "u")));
        assert!(
            !writes.tenant_made(&at("2", "another")),
            "a Partner made again"
        );
        writes.tenant_gone(&ObjectRef::from_obj(&at("1", "u")));
        assert!(!writes.tenant_made(&at("2", "u")));
    }

    #[test]
    fn entitlements_written_stand_until_the_cache_has_an_event_of_them() {
        let writes = OwnWrites::default();
        assert_eq!(writes.entitlements("t1"), None);
        let data = BTreeMap::from([("level".to_string(), "Trial".to_string())]);
        writes.wrote_entitlements("t1", data.clone());
        assert_eq!(writes.entitlements("t1"), Some(data));
        assert_eq!(writes.entitlements("t2"), None);
        writes.entitlements_seen("t1");
        assert_eq!(writes.entitlements("t1"), None);
    }

    #[test]
    fn entitlements_written_stand_no_longer_than_their_bound() {
        let writes = OwnWrites::default();
        let data = BTreeMap::from([("level".to_string(), "Trial".to_string())]);
        writes.wrote_entitlements("t1", data);
        for (_, at) in writes.entitlements.lock().unwrap().values_mut() {
            *at -= ENTITLEMENTS_MEMORY;
        }
        assert_eq!(writes.entitlements("t1"), None, "the cache says again");
    }
}
