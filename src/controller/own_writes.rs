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

use std::collections::HashMap;
use std::sync::Mutex;

use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;

use crate::api::Partner;

#[derive(Default)]
pub struct OwnWrites {
    /// Per Partner: the uid written and the resourceVersion the write returned.
    written: Mutex<HashMap<ObjectRef<Partner>, (String, u64)>>,
}

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

    /// The Partner is gone: nothing more is kept of it.
    pub fn forget(&self, partner: &ObjectRef<Partner>) {
        let mut written = self.written.lock().unwrap_or_else(|p| p.into_inner());
        written.remove(partner);
    }
}

fn version(partner: &Partner) -> Option<u64> {
    partner.resource_version()?.parse().ok()
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
}
