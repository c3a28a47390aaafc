//! The Partners (and Distributors) as a watch keeps them, with the user's credentials: the
//! Partners page renders from here without a request to the API server, and each change is
//! told to the pages that show it ([`super::live`]).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use futures::StreamExt;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Client, Resource};
use tokio::sync::broadcast;

use super::Scope;
use crate::api::{Distributor, Partner};

/// A Partner's key: namespace and name.
pub type Key = (String, String);

/// A change to tell the pages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Upserted(Key),
    Deleted(Key),
    /// The watch listed everything anew: a page reloads.
    Relisted,
}

/// The watched objects, and why the watch fails when it does.
pub struct Store {
    partners: RwLock<BTreeMap<Key, Partner>>,
    distributors: RwLock<BTreeMap<String, Distributor>>,
    /// The API server's last refusal of the Partners' watch (a 403 says which permission).
    error: RwLock<Option<String>>,
    /// Whether the first list arrived.
    listed: RwLock<bool>,
    changes: broadcast::Sender<Change>,
}

impl Default for Store {
    fn default() -> Self {
        Self {
            partners: RwLock::default(),
            distributors: RwLock::default(),
            error: RwLock::default(),
            listed: RwLock::default(),
            changes: broadcast::channel(1024).0,
        }
    }
}

fn key_of(partner: &Partner) -> Key {
    (
        partner.metadata.namespace.clone().unwrap_or_default(),
        partner.metadata.name.clone().unwrap_or_default(),
    )
}

impl Store {
    /// Reads the Partners and Distributors under the locks.
    pub fn read<T>(
        &self,
        f: impl FnOnce(&BTreeMap<Key, Partner>, &BTreeMap<String, Distributor>) -> T,
    ) -> T {
        let partners = self.partners.read().expect("not poisoned");
        let distributors = self.distributors.read().expect("not poisoned");
        f(&partners, &distributors)
    }

    pub fn error(&self) -> Option<String> {
        self.error.read().expect("not poisoned").clone()
    }

    pub fn listed(&self) -> bool {
        *self.listed.read().expect("not poisoned")
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    /// Replaces the whole set (for a test, or a relist).
    pub fn replace(&self, partners: Vec<Partner>) {
        let map = partners.into_iter().map(|p| (key_of(&p), p)).collect();
        *self.partners.write().expect("not poisoned") = map;
        *self.listed.write().expect("not poisoned") = true;
        let _ = self.changes.send(Change::Relisted);
    }

    fn apply(&self, event: Event<Partner>, buffer: &mut Vec<Partner>) {
        match event {
            Event::Init => buffer.clear(),
            Event::InitApply(p) => buffer.push(p),
            Event::InitDone => self.replace(std::mem::take(buffer)),
            Event::Apply(p) => {
                let key = key_of(&p);
                self.partners
                    .write()
                    .expect("not poisoned")
                    .insert(key.clone(), p);
                let _ = self.changes.send(Change::Upserted(key));
            }
            Event::Delete(p) => {
                let key = key_of(&p);
                self.partners.write().expect("not poisoned").remove(&key);
                let _ = self.changes.send(Change::Deleted(key));
            }
        }
    }
}

/// Keeps `store` current until the process ends: the Partners of `scope`, and the
/// Distributors when the user may read them (they tell the default of automatic upgrade).
pub async fn watch(client: Client, scope: Scope, store: Arc<Store>) {
    let partners: Api<Partner> = match &scope {
        Scope::Namespace(ns) => Api::namespaced(client.clone(), ns),
        Scope::All => Api::all(client.clone()),
    };
    tokio::spawn(watch_distributors(Api::all(client), store.clone()));
    let stream = watcher::watcher(partners, watcher::Config::default()).default_backoff();
    let mut stream = std::pin::pin!(stream);
    let mut buffer = vec![];
    while let Some(item) = stream.next().await {
        match item {
            Ok(event) => {
                *store.error.write().expect("not poisoned") = None;
                store.apply(event, &mut buffer);
            }
            Err(err) => {
                let line = match err {
                    watcher::Error::InitialListFailed(e) | watcher::Error::WatchStartFailed(e) => {
                        super::super::api_error("watching partners", e).0
                    }
                    other => format!("watching partners: {other}"),
                };
                *store.error.write().expect("not poisoned") = Some(line);
            }
        }
    }
}

async fn watch_distributors(api: Api<Distributor>, store: Arc<Store>) {
    let stream = watcher::watcher(api, watcher::Config::default()).default_backoff();
    let mut stream = std::pin::pin!(stream);
    let mut buffer = BTreeMap::new();
    // A user who may not read Distributors sees "default" for automatic upgrade.
    while let Some(item) = stream.next().await {
        let Ok(event) = item else { continue };
        let name = |d: &Distributor| d.meta().name.clone().unwrap_or_default();
        let mut map = store.distributors.write().expect("not poisoned");
        match event {
            Event::Init => buffer.clear(),
            Event::InitApply(d) => {
                buffer.insert(name(&d), d);
            }
            Event::InitDone => *map = std::mem::take(&mut buffer),
            Event::Apply(d) => {
                map.insert(name(&d), d);
            }
            Event::Delete(d) => {
                map.remove(&name(&d));
            }
        }
    }
}
