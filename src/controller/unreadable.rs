//! Partners and Distributors the operator cannot decode, kept out of everything else.
//!
//! Both watches decode each object on its own ([`Decoded`]); this adapter turns their events
//! into the typed events the caches, the index and the controllers take. An unreadable object
//! is never handed on: one that was readable before leaves the cache as if deleted (so nothing
//! acts on what it used to say), and none is reconciled: for a Partner nothing is provisioned,
//! mailed, billed or deleted and its finalizer stays; the Partners of an unreadable Distributor
//! are held as they are (see [`UnreadableNames`]), never taken for unbound. It is reported
//! instead: a log line, the `unreadable_partners` or `unreadable_distributors` gauge, and a
//! Warning Event on it, once per stored version. It comes back as soon as an edit makes it
//! readable.
//!
//! A Distributor whose status alone does not decode ([`Decoded::WithoutStatus`]) is handed on
//! without its status, which its reconciler then writes anew from its Partners; it is reported
//! the same way until then.
//!
//! What is logged and reported is where the body does not fit (a field's path and the type's
//! complaint), never the body.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};

use futures::{Stream, StreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use kube::runtime::watcher::{self, Event};
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::mpsc::UnboundedSender;
use tracing::warn;

use crate::api::decoded::Lenient;
use crate::api::{Decoded, Distributor, Partner};

/// A kind watched through [`Decoded`].
pub trait Watchable: Resource<DynamicType = ()> + Lenient + Clone + Send + Sync + 'static {
    /// The kind as the log and the Event say it.
    const KIND: &'static str;
    /// An object of this kind carrying only `metadata`.
    fn placeholder(metadata: ObjectMeta) -> Self;
    /// What is reported about it.
    fn regarding(metadata: ObjectMeta) -> Regarding;
}

impl Watchable for Partner {
    const KIND: &'static str = "Partner";
    fn placeholder(metadata: ObjectMeta) -> Self {
        Partner::placeholder(metadata)
    }
    fn regarding(metadata: ObjectMeta) -> Regarding {
        Regarding::Partner(Partner::placeholder(metadata))
    }
}

impl Watchable for Distributor {
    const KIND: &'static str = "Distributor";
    fn placeholder(metadata: ObjectMeta) -> Self {
        Distributor::placeholder(metadata)
    }
    fn regarding(metadata: ObjectMeta) -> Regarding {
        Regarding::Distributor(Distributor::placeholder(metadata))
    }
}

/// The object an Event is about.
pub enum Regarding {
    Partner(Partner),
    Distributor(Distributor),
}

/// One unreadable object to report in an Event: which, and what the Event says.
pub struct Report {
    pub regarding: Regarding,
    pub note: String,
}

/// The names of the objects unreadable now (for Distributors, which are cluster-scoped, a name
/// is one object): the Partner reconciler holds a Partner whose Distributor is one of them,
/// since the Distributor missing from the cache does not mean that it was deleted.
#[derive(Clone, Default)]
pub struct UnreadableNames(Arc<RwLock<HashSet<String>>>);

impl UnreadableNames {
    pub fn contains(&self, name: &str) -> bool {
        self.0.read().unwrap().contains(name)
    }
}

/// One object reported: the resourceVersion reported, its name, and whether it is held (out
/// of the cache) rather than read without its status.
struct Entry {
    version: Option<String>,
    name: String,
    held: bool,
}

/// Which objects are unreadable now, by uid.
struct Unreadable {
    now: HashMap<String, Entry>,
    /// While the watch relists: the unreadable ones seen since it began.
    relisting: Option<HashSet<String>>,
    gauge: Gauge,
    names: UnreadableNames,
    reports: UnboundedSender<Report>,
}

impl Unreadable {
    fn found<K: Watchable>(&mut self, metadata: ObjectMeta, error: &str, without_status: bool) {
        let uid = metadata.uid.clone().unwrap_or_default();
        if let Some(seen) = self.relisting.as_mut() {
            seen.insert(uid.clone());
        }
        let version = metadata.resource_version.clone();
        let name = metadata.name.clone().unwrap_or_default();
        if self.now.get(&uid).map(|e| &e.version) == Some(&version) {
            return;
        }
        let held = !without_status;
        self.now.insert(
            uid,
            Entry {
                version,
                name: name.clone(),
                held,
            },
        );
        self.refresh();
        let namespace = metadata.namespace.clone().unwrap_or_default();
        let kind = K::KIND;
        let note = if without_status {
            warn!(kind, %namespace, %name, %error, "cannot decode the status of this object; writing it anew");
            format!(
                "the operator cannot read this {kind}'s status ({error}); it writes the status anew"
            )
        } else {
            warn!(kind, %namespace, %name, %error, "cannot decode this object; leaving it alone until it is fixed");
            format!(
                "the operator cannot read this {kind} ({error}); it is not reconciled until an \
                 edit makes it readable"
            )
        };
        let _ = self.reports.send(Report {
            regarding: K::regarding(metadata),
            note,
        });
    }

    /// The gauge and the names follow `now`.
    fn refresh(&mut self) {
        self.gauge.set(self.now.len() as i64);
        *self.names.0.write().unwrap() = self
            .now
            .values()
            .filter(|e| e.held)
            .map(|e| e.name.clone())
            .collect();
    }

    fn gone(&mut self, uid: Option<&str>) {
        if self.now.remove(uid.unwrap_or_default()).is_some() {
            self.refresh();
        }
    }

    fn relist_done(&mut self) {
        if let Some(seen) = self.relisting.take() {
            self.now.retain(|uid, _| seen.contains(uid));
            self.refresh();
        }
    }
}

/// The typed events of a watch of [`Decoded`] objects, with the unreadable ones reported to
/// `reports`, counted in `gauge` and named in `names`.
pub fn readable<K: Watchable>(
    events: impl Stream<Item = watcher::Result<Event<Decoded<K>>>> + Send,
    gauge: Gauge,
    names: UnreadableNames,
    reports: UnboundedSender<Report>,
) -> impl Stream<Item = watcher::Result<Event<K>>> + Send {
    let state = Arc::new(Mutex::new(Unreadable {
        now: HashMap::new(),
        relisting: None,
        gauge,
        names,
        reports,
    }));
    events.filter_map(move |event| {
        let mut unreadable = state.lock().unwrap();
        let typed = match event {
            Err(err) => Some(Err(err)),
            Ok(Event::Init) => {
                unreadable.relisting = Some(HashSet::new());
                Some(Ok(Event::Init))
            }
            Ok(Event::InitDone) => {
                unreadable.relist_done();
                Some(Ok(Event::InitDone))
            }
            Ok(Event::InitApply(decoded)) => handed_on(&mut unreadable, decoded, true),
            Ok(Event::Apply(decoded)) => handed_on(&mut unreadable, decoded, false),
            Ok(Event::Delete(decoded)) => {
                unreadable.gone(decoded.meta().uid.as_deref());
                Some(Ok(Event::Delete(match decoded {
                    Decoded::Typed(object) | Decoded::WithoutStatus { object, .. } => object,
                    Decoded::Unreadable { metadata, .. } => K::placeholder(metadata),
                })))
            }
        };
        futures::future::ready(typed)
    })
}

/// What an (Init)Apply of `decoded` becomes.
fn handed_on<K: Watchable>(
    unreadable: &mut Unreadable,
    decoded: Decoded<K>,
    initial: bool,
) -> Option<watcher::Result<Event<K>>> {
    let apply = |object| {
        Some(Ok(if initial {
            Event::InitApply(object)
        } else {
            Event::Apply(object)
        }))
    };
    match decoded {
        Decoded::Typed(object) => {
            unreadable.gone(object.meta().uid.as_deref());
            apply(object)
        }
        Decoded::WithoutStatus { object, error } => {
            unreadable.found::<K>(object.meta().clone(), &error, true);
            apply(object)
        }
        // Not part of the fresh cache the relist builds.
        Decoded::Unreadable { metadata, error } if initial => {
            unreadable.found::<K>(metadata, &error, false);
            None
        }
        // Out of the cache: what it said before no longer holds.
        Decoded::Unreadable { metadata, error } => {
            unreadable.found::<K>(metadata.clone(), &error, false);
            Some(Ok(Event::Delete(K::placeholder(metadata))))
        }
    }
}
