//! Object storage with kube-apiserver's versioning and watch semantics.
//!
//! One global, monotonically increasing `resourceVersion` (as etcd's revision); every write is
//! recorded in a bounded per-resource history so a watch can resume from a version, and answered
//! with 410 Gone once that version was compacted away. Watchers get events through a bounded
//! broadcast channel: a watcher that falls behind is cut off (its stream ends and it relists), so
//! a slow client never stalls writers, as with the real server.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};

use axum::body::Bytes;

use serde_json::Value;
use tokio::sync::broadcast;

/// Events kept per resource for watches that resume from a version.
const HISTORY_PER_RESOURCE: usize = 20_000;
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
    /// The object before a modification, so a selector-filtered watch can see an object leave.
    pub previous: Option<Arc<Value>>,
    /// The object as JSON, encoded once for every watcher that sends it.
    encoded: Arc<OnceLock<Bytes>>,
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

#[derive(Default)]
struct Table {
    /// `(namespace, name)` -> object; the namespace is empty for cluster-scoped objects.
    objects: BTreeMap<(String, String), Arc<Value>>,
    history: VecDeque<Change>,
    /// Versions up to this one are no longer in `history`.
    compacted_through: u64,
    watchers: Option<broadcast::Sender<Change>>,
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

/// A watch request for a version that was compacted away.
#[derive(Debug)]
pub struct Gone;

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
        let table = inner.tables.entry(resource.to_string()).or_default();
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
            previous: current.filter(|_| kind == ChangeKind::Modified),
            encoded: Arc::default(),
        };
        table.history.push_back(change.clone());
        while table.history.len() > HISTORY_PER_RESOURCE {
            let dropped = table.history.pop_front().expect("non-empty");
            table.compacted_through = dropped.resource_version;
        }
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
        let table = inner.tables.entry(resource.to_string()).or_default();
        let start = match from {
            None => WatchStart::Snapshot(table.objects.values().cloned().collect()),
            Some(version) if version < table.compacted_through => return Err(Gone),
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
