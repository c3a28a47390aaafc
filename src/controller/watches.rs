//! The watches that fill the caches and feed the controllers: one per kind the reconcilers
//! read (Partners, Distributors, Namespaces, the tenants' `entitlements`), each trimmed to
//! what a decision reads before it is held.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::{Stream, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::runtime::reflector::{ReflectHandle, Store};
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt, reflector};
use kube::{Api, Client, ResourceExt};
use tokio::sync::mpsc::UnboundedSender;

use super::OperatorConfig;
use super::context::{Listed, Watched};
use super::index::PartnerIndex;
use super::own_writes::OwnWrites;
use super::unreadable::{self, Report, UnreadableNames};
use crate::api::{Decoded, Distributor, Partner};
use crate::watch_progress::WatchProgress;

/// Distributor changes the Distributor controller may lag behind before the watch waits for it.
const DISTRIBUTOR_BUFFER: usize = 256;

/// A cache filled by `events`, and the objects they touch, as triggers of a controller.
/// `observe` sees each event once the cache holds it; the end of the first complete list marks
/// `watched` as listed.
fn cached<K>(
    events: impl Stream<Item = watcher::Result<Event<K>>> + Send + 'static,
    listed: Arc<Listed>,
    watched: Watched,
    mut observe: impl FnMut(&Event<K>) + Send + 'static,
) -> (
    Store<K>,
    impl Stream<Item = watcher::Result<K>> + Send + 'static,
)
where
    K: kube::Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
{
    let (store, writer) = reflector::store();
    let touched = reflector(writer, events)
        .default_backoff()
        .inspect_ok(move |event| {
            observe(event);
            if matches!(event, Event::InitDone) {
                listed.mark(watched);
            }
        })
        .touched_objects();
    (store, touched)
}

/// Partners (in `--namespace`, if given): one watch feeds the cache (the reconciler reads it),
/// the index (Distributor and namespace changes find their Partners) and the controller. The
/// cache is written before the index, so every Partner the index names is in the cache.
pub(super) fn watch_partners(
    client: &Client,
    config: &OperatorConfig,
    index: &PartnerIndex,
    listed: &Arc<Listed>,
    progress: &Arc<WatchProgress>,
    unreadable_reports: UnboundedSender<Report>,
) -> (
    Store<Partner>,
    impl Stream<Item = watcher::Result<Partner>> + Send + 'static,
) {
    let api: Api<Decoded<Partner>> = match &config.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let events = unreadable::readable(
        kube::runtime::watcher(api, watch_config()),
        config.metrics.unreadable_partners.clone(),
        UnreadableNames::default(),
        unreadable_reports,
    )
    .modify(trim_for_cache);
    let index = index.clone();
    let progress = progress.clone();
    cached(
        events,
        listed.clone(),
        Watched::Partners,
        move |event| match event {
            Event::Apply(p) | Event::InitApply(p) => {
                progress.delivered(p.resource_version().as_deref());
                index.insert(p);
            }
            Event::Delete(p) => {
                progress.delivered(p.resource_version().as_deref());
                index.remove(p);
            }
            Event::Init | Event::InitDone => {}
        },
    )
}

/// What the Distributor watch feeds: a store both reconcilers read, the Distributor controller
/// (every change, through the store's subscription) and the Partners of a Distributor whose
/// spec changed or that went away.
pub(super) struct DistributorWatch<S> {
    pub store: Store<Distributor>,
    pub updates: ReflectHandle<Distributor>,
    pub spec_changes: S,
}

/// Distributors. Only a new generation (or a deletion) reaches the Partners: status-only
/// updates are filtered out, or every count update would wake every Partner of the
/// Distributor. One with an unreadable spec is held out (its Partners held as they are, its
/// name in `unreadable`), one with an unreadable status is read without it.
pub(super) fn watch_distributors(
    client: &Client,
    config: &OperatorConfig,
    unreadable: UnreadableNames,
    listed: &Arc<Listed>,
    unreadable_reports: UnboundedSender<Report>,
) -> DistributorWatch<impl Stream<Item = watcher::Result<Distributor>> + Send + 'static> {
    let api: Api<Decoded<Distributor>> = Api::all(client.clone());
    let (store, writer) = reflector::store_shared(DISTRIBUTOR_BUFFER);
    let updates = writer.subscribe().expect("a shared store has subscribers");
    let generations = Mutex::new(HashMap::<String, Option<i64>>::new());
    let listed = listed.clone();
    let spec_changes = reflector(
        writer,
        unreadable::readable(
            kube::runtime::watcher(api, watch_config()),
            config.metrics.unreadable_distributors.clone(),
            unreadable,
            unreadable_reports,
        )
        .modify(trim_for_cache),
    )
    .default_backoff()
    .try_filter_map(move |event| {
        let mut seen = generations.lock().unwrap();
        let changed = match event {
            Event::Apply(d) | Event::InitApply(d) => {
                let generation = d.metadata.generation;
                (seen.insert(d.name_any(), generation) != Some(generation)).then_some(d)
            }
            Event::Delete(d) => {
                seen.remove(&d.name_any());
                Some(d)
            }
            Event::InitDone => {
                listed.mark(Watched::Distributors);
                None
            }
            Event::Init => None,
        };
        futures::future::ready(Ok(changed))
    });
    DistributorWatch {
        store,
        updates,
        spec_changes,
    }
}

/// Namespaces: the store answers "may this namespace bind?" and "does the tenant exist?", and
/// each change is a trigger.
pub(super) fn watch_namespaces(
    client: &Client,
    listed: &Arc<Listed>,
) -> (
    Store<Namespace>,
    impl Stream<Item = watcher::Result<Namespace>> + Send + 'static,
) {
    let api: Api<Namespace> = Api::all(client.clone());
    let events = kube::runtime::watcher(api, watch_config()).modify(|ns: &mut Namespace| {
        // Of the annotations, only a tenant's ownership proof and its release are read.
        let kept: std::collections::BTreeMap<String, String> = ns
            .metadata
            .annotations
            .take()
            .unwrap_or_default()
            .into_iter()
            .filter(|(key, _)| {
                key == crate::tenant::OWNERSHIP_PROOF_ANNOTATION
                    || key == crate::tenant::RELEASED_ANNOTATION
            })
            .collect();
        trim_for_cache(ns);
        ns.metadata.annotations = (!kept.is_empty()).then_some(kept);
    });
    cached(events, listed.clone(), Watched::Namespaces, |_| {})
}

/// The tenants' `entitlements` ConfigMaps (by name, and only those carrying a tenant's
/// ownership label): compared with what each Partner's status says, so a tenant write that
/// was lost is made again; a change or deletion wakes the tenant's Partner.
pub(super) fn watch_entitlements(
    client: &Client,
    listed: &Arc<Listed>,
    own_writes: Arc<OwnWrites>,
) -> (
    Store<ConfigMap>,
    impl Stream<Item = watcher::Result<ConfigMap>> + Send + 'static,
) {
    let api: Api<ConfigMap> = Api::all(client.clone());
    let selected = watch_config()
        .fields(&format!("metadata.name={}", crate::tenant::ENTITLEMENTS))
        .labels(crate::tenant::OWNER_UID_LABEL);
    let events = kube::runtime::watcher(api, selected).modify(|cm: &mut ConfigMap| {
        // Only `data` is compared, by its digest: ten thousand tenants' labels and records
        // would be held for nothing.
        trim_for_cache(cm);
        cm.metadata.labels = None;
        super::entitlements::keep_digest(cm);
    });
    cached(
        events,
        listed.clone(),
        Watched::Entitlements,
        move |event| match event {
            Event::Apply(cm) | Event::InitApply(cm) | Event::Delete(cm) => {
                own_writes.entitlements_seen(&cm.namespace().unwrap_or_default());
            }
            Event::Init | Event::InitDone => {}
        },
    )
}
/// What the caches keep of an object: not its `managedFields` nor its annotations. No decision
/// reads them, and they are most of its size: kubectl's last-applied configuration repeats the
/// whole object, and anyone who can write a Partner may give it 256 kB of annotations, which
/// would otherwise be held for as long as the Partner exists, bound to a Distributor or not.
fn trim_for_cache<K: kube::Resource>(object: &mut K) {
    let meta = object.meta_mut();
    meta.managed_fields = None;
    meta.annotations = None;
}

/// Objects per page when a watch lists. A page's body is held whole while it is decoded: at
/// kube's default of 500, a relist over 700 Partners carrying 250 kB of annotations each took
/// the operator to 318 MiB (`benches/operator.rs`, scenario 6; 1,000 other Partners). With 100,
/// and annotations dropped as each Partner is decoded ([`Decoded`]), 10,000 Partners and those
/// 700 peak at 172 MiB (200 MiB with their tenants' entitlements watched), and a restart over
/// 10,000 settles in 3.1–3.6 s (1.9 s at 500); 25 would save another 30 MiB for twice the
/// requests.
const LIST_PAGE_SIZE: u32 = 100;

fn watch_config() -> watcher::Config {
    watcher::Config::default().page_size(LIST_PAGE_SIZE)
}
