//! Object storage with kube-apiserver's versioning and watch semantics.
//!
//! One global, monotonically increasing `resourceVersion` (as etcd's revision); every write is
//! recorded in a per-resource history, kept as kube-apiserver's watch cache keeps it, so a watch
//! can resume from a version, and is answered with 410 Gone for a version from before the
//! resource was served or whose changes the history has let go. Watchers get events through a
//! bounded broadcast channel: a watcher that falls behind is cut off (its stream ends and it
//! relists), so a slow client never stalls writers, as with the real server.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::body::Bytes;

use serde_json::Value;
use tokio::sync::broadcast;

mod page;

pub use page::{Page, PageQuery};

/// kube-apiserver's watch cache: it starts with room for 100 changes of a resource, doubles
/// that (up to 102,400) while the oldest change it holds is younger than 75 s, halves it again
/// once the newest quarter is older, and lets the oldest change go when it is full. A watch
/// from before the oldest change it holds gets 410 Gone, and the client relists.
const HISTORY_MIN: usize = 100;
const HISTORY_MAX: usize = 100 * 1024;
const HISTORY_FRESH: Duration = Duration::from_secs(75);
/// Events a watcher may lag behind before it is cut off.
const WATCH_BUFFER: usize = 4_096;

/// `group/version/resource`, the key of a resource type.
pub type ResourceKey = String;

/// One change to an object.
#[derive(Clone, Debug)]
pub struct Change {
    pub resource_version: u64,
    pub kind: ChangeKind,
    pub object: Arc<Value>,
    /// The object before a modification or a deletion, so a selector-filtered watch can see an
    /// object leave, and a list can be served as it was at an earlier version.
    pub previous: Option<Arc<Value>>,
    /// The object as JSON, encoded once for every watcher that sends it.
    encoded: Arc<OnceLock<Bytes>>,
    /// When it was recorded, for the history's window.
    at: Instant,
}

impl Change {
    /// An object as a watch replays it from a snapshot.
    pub fn added(object: Arc<Value>) -> Self {
        Self {
            resource_version: 0,
            kind: ChangeKind::Added,
            object,
            previous: None,
            encoded: Arc::default(),
            at: Instant::now(),
        }
    }

    /// The object as JSON; the first watcher to ask encodes it.
    pub fn encoded_object(&self) -> &Bytes {
        self.encoded
            .get_or_init(|| Bytes::from(serde_json::to_vec(&*self.object).expect("serializes")))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    Added,
    Modified,
    Deleted,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }
}

struct Table {
    /// `(namespace, name)` -> object; the namespace is empty for cluster-scoped objects.
    objects: BTreeMap<(String, String), Arc<Value>>,
    history: VecDeque<Change>,
    /// How many changes `history` holds before it lets the oldest go.
    capacity: usize,
    /// A watch from a version before this one gets 410 Gone: the changes after it are no
    /// longer all in `history`.
    compacted_through: u64,
    watchers: Option<broadcast::Sender<Change>>,
}

impl Table {
    /// A resource served from `revision` on: its history starts there.
    fn starting_at(revision: u64) -> Self {
        Self {
            objects: BTreeMap::new(),
            history: VecDeque::new(),
            capacity: HISTORY_MIN,
            compacted_through: revision,
            watchers: None,
        }
    }

    /// Records a change in the history, resized as kube-apiserver's watch cache resizes.
    fn record(&mut self, change: Change) {
        if self.history.len() >= self.capacity {
            let age = |i: usize| change.at.duration_since(self.history[i].at);
            if age(0) < HISTORY_FRESH {
                self.capacity = (self.capacity * 2).min(HISTORY_MAX);
            } else if age(self.history.len() - self.capacity / 4) > HISTORY_FRESH {
                self.capacity = (self.capacity / 2).max(HISTORY_MIN);
            }
        }
        let mut dropped = false;
        while self.history.len() >= self.capacity {
            self.history.pop_front();
            dropped = true;
        }
        self.history.push_back(change);
        if dropped {
            let oldest = self.history.front().expect("just pushed").resource_version;
            self.compacted_through = self.compacted_through.max(oldest - 1);
        }
    }
}

/// The whole store. Cheap to clone.
#[derive(Clone, Default)]
pub struct Store {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    revision: u64,
    tables: HashMap<ResourceKey, Table>,
}

/// Where a watch starts.
pub enum WatchStart {
    /// Replay every current object as ADDED, then follow.
    Snapshot(Vec<Arc<Value>>),
    /// Replay the changes after the requested version, then follow.
    Replay(Vec<Change>),
}

/// A watch request for a version whose changes are no longer all kept: the oldest version a
/// watch may start from.
#[derive(Debug)]
pub struct Gone {
    pub oldest: u64,
}

impl Store {
    /// The current revision (the resourceVersion of the latest write).
    pub fn revision(&self) -> u64 {
        self.inner.lock().unwrap().revision
    }

    pub fn get(&self, resource: &str, namespace: &str, name: &str) -> Option<Arc<Value>> {
        let inner = self.inner.lock().unwrap();
        inner
            .tables
            .get(resource)?
            .objects
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }

    /// Objects of a resource, in `(namespace, name)` order, with the revision they were read at.
    /// `namespace: None` lists across namespaces.
    pub fn list(&self, resource: &str, namespace: Option<&str>) -> (Vec<Arc<Value>>, u64) {
        let inner = self.inner.lock().unwrap();
        let items = match inner.tables.get(resource) {
            None => vec![],
            Some(table) => match namespace {
                None => table.objects.values().cloned().collect(),
                Some(ns) => table
                    .objects
                    .range((ns.to_string(), String::new())..)
                    .take_while(|((n, _), _)| n == ns)
                    .map(|(_, v)| v.clone())
                    .collect(),
            },
        };
        (items, inner.revision)
    }

    /// Whether any object of any resource lives in `namespace`.
    pub fn namespace_is_empty(&self, namespace: &str) -> bool {
        let inner = self.inner.lock().unwrap();
        inner.tables.values().all(|t| {
            t.objects
                .range((namespace.to_string(), String::new())..)
                .next()
                .is_none_or(|((n, _), _)| n != namespace)
        })
    }

    /// Writes `object` (setting its `metadata.resourceVersion`) through `decide`, which sees the
    /// current object under the store lock and returns the object to store, `None` to delete, or
    /// an error. Returns what `decide` returned after the write.
    pub fn write<E>(
        &self,
        resource: &str,
        namespace: &str,
        name: &str,
        decide: impl FnOnce(Option<&Arc<Value>>) -> Result<Write, E>,
    ) -> Result<Written, E> {
        let mut inner = self.inner.lock().unwrap();
        let key = (namespace.to_string(), name.to_string());
        let current = inner
            .tables
            .get(resource)
            .and_then(|t| t.objects.get(&key))
            .cloned();
        let write = decide(current.as_ref())?;
        let (kind, mut object) = match write {
            Write::Unchanged => {
                return Ok(Written::Unchanged(
                    current.expect("an unchanged write has an object"),
                ));
            }
            Write::Put(object) => (
                if current.is_some() {
                    ChangeKind::Modified
                } else {
                    ChangeKind::Added
                },
                object,
            ),
            Write::Delete => (
                ChangeKind::Deleted,
                current.as_deref().cloned().expect("a delete has an object"),
            ),
        };
        inner.revision += 1;
        let revision = inner.revision;
        object["metadata"]["resourceVersion"] = Value::String(revision.to_string());
        let object = Arc::new(object);
        let table = inner
            .tables
            .entry(resource.to_string())
            .or_insert_with(|| Table::starting_at(0));
        match kind {
            ChangeKind::Deleted => {
                table.objects.remove(&key);
            }
            _ => {
                table.objects.insert(key, object.clone());
            }
        }
        let change = Change {
            resource_version: revision,
            kind,
            object: object.clone(),
            previous: current,
            encoded: Arc::default(),
            at: Instant::now(),
        };
        table.record(change.clone());
        if let Some(watchers) = &table.watchers {
            let _ = watchers.send(change);
        }
        Ok(match kind {
            ChangeKind::Deleted => Written::Deleted(object),
            _ => Written::Stored(object),
        })
    }

    /// Starts a watch on a resource from `from` (`None`: a snapshot of the current objects).
    /// Also returns the revision the start is consistent with: the receiver delivers exactly the
    /// changes after it, so it is the version a bookmark may carry until a change is received.
    pub fn watch(
        &self,
        resource: &str,
        from: Option<u64>,
    ) -> Result<(WatchStart, broadcast::Receiver<Change>, u64), Gone> {
        let mut inner = self.inner.lock().unwrap();
        let revision = inner.revision;
        let table = inner
            .tables
            .entry(resource.to_string())
            .or_insert_with(|| Table::starting_at(revision));
        let start = match from {
            None => WatchStart::Snapshot(table.objects.values().cloned().collect()),
            Some(version) if version < table.compacted_through => {
                return Err(Gone {
                    oldest: table.compacted_through,
                });
            }
            Some(version) if version > revision => WatchStart::Replay(vec![]),
            Some(version) => WatchStart::Replay(
                table
                    .history
                    .iter()
                    .filter(|c| c.resource_version > version)
                    .cloned()
                    .collect(),
            ),
        };
        let receiver = table
            .watchers
            .get_or_insert_with(|| broadcast::channel(WATCH_BUFFER).0)
            .subscribe();
        Ok((start, receiver, revision))
    }

    /// Starts the history of a resource now being served (a built-in kind as the server
    /// starts, a custom resource as its CRD is created): a watch from an earlier version gets
    /// 410 Gone, as from kube-apiserver, whose watch cache for it starts at that point.
    pub fn serve(&self, resource: &str) {
        let mut inner = self.inner.lock().unwrap();
        let revision = inner.revision;
        inner
            .tables
            .entry(resource.to_string())
            .or_insert_with(|| Table::starting_at(revision));
    }

    /// Forgets a resource no longer served (its CRD is gone, and its objects with it).
    pub fn forget(&self, resource: &str) {
        self.inner.lock().unwrap().tables.remove(resource);
    }

    /// Forgets all history: every watch resuming from an earlier version gets 410 Gone.
    pub fn compact(&self) {
        let mut inner = self.inner.lock().unwrap();
        let revision = inner.revision;
        for table in inner.tables.values_mut() {
            table.history.clear();
            table.compacted_through = revision;
        }
    }

    /// Ends every open watch (clients see their stream close and re-watch).
    pub fn drop_watches(&self) {
        let mut inner = self.inner.lock().unwrap();
        for table in inner.tables.values_mut() {
            table.watchers = None;
        }
    }
}

/// What a write should do.
pub enum Write {
    Put(Value),
    Delete,
    /// Nothing changed: no new version, no event.
    Unchanged,
}

/// What a write did.
pub enum Written {
    Stored(Arc<Value>),
    Deleted(Arc<Value>),
    Unchanged(Arc<Value>),
}

impl Written {
    pub fn object(&self) -> &Arc<Value> {
        match self {
            Self::Stored(o) | Self::Deleted(o) | Self::Unchanged(o) => o,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn put(store: &Store, name: &str, data: &str) -> u64 {
        let object = json!({"metadata": {"namespace": "ns", "name": name}, "data": data});
        let written = store
            .write("/v1/configmaps", "ns", name, |_| {
                Ok::<_, ()>(Write::Put(object))
            })
            .unwrap();
        written.object()["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    }

    #[test]
    fn a_watch_from_before_the_resource_was_served_is_gone() {
        let store = Store::default();
        put(&store, "elsewhere", "1");
        store.serve("/v1/secrets");
        assert!(store.watch("/v1/secrets", Some(0)).is_err());
        assert!(store.watch("/v1/secrets", Some(1)).is_ok());
    }

    #[test]
    fn the_history_grows_while_its_oldest_change_is_fresh() {
        let store = Store::default();
        store.serve("/v1/configmaps");
        for i in 0..(HISTORY_MIN * 3) {
            put(&store, &format!("o{i}"), "1");
        }
        // Every change is seconds old at most: none was let go.
        assert!(store.watch("/v1/configmaps", Some(0)).is_ok());
    }
}
