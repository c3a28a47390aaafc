//! Partners the operator cannot decode, kept out of everything else.
//!
//! The Partner watch decodes each object on its own ([`Decoded`]); this adapter turns its events
//! into the typed events the cache, the index and the controller take. An unreadable Partner is
//! never handed on: one that was readable before leaves the cache as if deleted (so nothing
//! acts on what it used to say), and none is reconciled, so nothing is provisioned, mailed,
//! billed or deleted for it and its finalizer stays. It is reported instead: a log line, the
//! `unreadable_partners` gauge, and a Warning Event on it, once per stored version. It comes
//! back as soon as an edit makes it readable.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use futures::{Stream, StreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::runtime::watcher::{self, Event};
use tokio::sync::mpsc::UnboundedSender;
use tracing::warn;

use crate::api::{Decoded, Partner};
use crate::metrics::Metrics;

/// One unreadable Partner to report in an Event: its metadata and what the Event says.
pub struct Report {
    pub metadata: ObjectMeta,
    pub note: String,
}

/// Which Partners are unreadable now, by uid, with the resourceVersion last reported.
struct Unreadable {
    now: HashMap<String, Option<String>>,
    /// While the watch relists: the unreadable ones seen since it began.
    relisting: Option<HashSet<String>>,
    metrics: Arc<Metrics>,
    reports: UnboundedSender<Report>,
}

impl Unreadable {
    fn found(&mut self, metadata: ObjectMeta, error: &str) {
        let uid = metadata.uid.clone().unwrap_or_default();
        if let Some(seen) = self.relisting.as_mut() {
            seen.insert(uid.clone());
        }
        let version = metadata.resource_version.clone();
        if self.now.get(&uid) == Some(&version) {
            return;
        }
        self.now.insert(uid, version);
        self.metrics.unreadable_partners.set(self.now.len() as i64);
        let name = metadata.name.clone().unwrap_or_default();
        let namespace = metadata.namespace.clone().unwrap_or_default();
        warn!(%namespace, %name, %error, "cannot decode this Partner; leaving it alone until it is fixed");
        let _ = self.reports.send(Report {
            metadata,
            note: format!(
                "the operator cannot read this Partner ({error}); it is not reconciled until \
                 an edit makes it readable"
            ),
        });
    }

    fn gone(&mut self, uid: Option<&str>) {
        if self.now.remove(uid.unwrap_or_default()).is_some() {
            self.metrics.unreadable_partners.set(self.now.len() as i64);
        }
    }

    fn relist_done(&mut self) {
        if let Some(seen) = self.relisting.take() {
            self.now.retain(|uid, _| seen.contains(uid));
            self.metrics.unreadable_partners.set(self.now.len() as i64);
        }
    }
}

/// The typed events of a watch of [`Decoded`] Partners, with the unreadable ones reported to
/// `reports` and counted in `metrics`.
pub fn readable_partners(
    events: impl Stream<Item = watcher::Result<Event<Decoded<Partner>>>> + Send,
    metrics: Arc<Metrics>,
    reports: UnboundedSender<Report>,
) -> impl Stream<Item = watcher::Result<Event<Partner>>> + Send {
    let state = Arc::new(Mutex::new(Unreadable {
        now: HashMap::new(),
        relisting: None,
        metrics,
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
            Ok(Event::InitApply(Decoded::Typed(partner))) => {
                unreadable.gone(partner.metadata.uid.as_deref());
                Some(Ok(Event::InitApply(partner)))
            }
            Ok(Event::Apply(Decoded::Typed(partner))) => {
                unreadable.gone(partner.metadata.uid.as_deref());
                Some(Ok(Event::Apply(partner)))
            }
            Ok(Event::Delete(Decoded::Typed(partner))) => {
                unreadable.gone(partner.metadata.uid.as_deref());
                Some(Ok(Event::Delete(partner)))
            }
            // Not part of the fresh cache the relist builds.
            Ok(Event::InitApply(Decoded::Unreadable { metadata, error })) => {
                unreadable.found(metadata, &error);
                None
            }
            // Out of the cache: what it said before no longer holds.
            Ok(Event::Apply(Decoded::Unreadable { metadata, error })) => {
                unreadable.found(metadata.clone(), &error);
                Some(Ok(Event::Delete(Partner::placeholder(metadata))))
            }
            Ok(Event::Delete(Decoded::Unreadable { metadata, .. })) => {
                unreadable.gone(metadata.uid.as_deref());
                Some(Ok(Event::Delete(Partner::placeholder(metadata))))
            }
        };
        futures::future::ready(typed)
    })
}
