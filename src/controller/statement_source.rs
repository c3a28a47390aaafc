//! What the statement writer counts: the operator's caches of Partners and Distributors.

use std::sync::Arc;

use kube::ResourceExt;
use kube::runtime::reflector::Store;

use super::context::Listed;
use crate::api::{Distributor, Partner};
use crate::statements::Source;

pub struct CachedPartners {
    pub partners: Store<Partner>,
    pub distributors: Store<Distributor>,
    pub listed: Arc<Listed>,
}

impl Source for CachedPartners {
    fn synced(&self) -> bool {
        self.listed.all()
    }

    fn partners(&self) -> Vec<Arc<Partner>> {
        self.partners.state()
    }

    fn distributors(&self) -> Vec<String> {
        self.distributors
            .state()
            .iter()
            .map(|d| d.name_any())
            .collect()
    }
}
