//! A list page read from the store: a range from where the previous page ended, filtered and cut
//! to the page's size under the store's lock, at the current version or an earlier one.
//!
//! Every page after a list's first is served at the first page's version, as kube-apiserver
//! serves it. Such a page reads the current objects through an overlay of the changes made
//! since that version, undone from the history, so it costs the page and the changes since, not
//! the whole resource: a relist of 10,000 objects 100 at a time would otherwise copy the
//! resource a hundred times.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::iter::Peekable;
use std::ops::Bound;
use std::sync::Arc;

use serde_json::Value;

use super::{Gone, Store, Table};

/// `(namespace, name)`, the order objects are kept and listed in.
type Key = (String, String);

/// What a page reads.
pub struct PageQuery<'a> {
    /// `None`: across namespaces.
    pub namespace: Option<&'a str>,
    /// The version to read at; `None`: the current one.
    pub at: Option<u64>,
    /// The `(namespace, name)` the previous page ended with: the page starts after it.
    pub after: Option<(&'a str, &'a str)>,
    /// At most this many objects; `None`: every one.
    pub limit: Option<usize>,
    /// Whether to count the objects after the page (kube-apiserver's `remainingItemCount`,
    /// which it gives only for a list without selectors: every object after the page counts).
    pub count_rest: bool,
}

/// One page of a list.
pub struct Page {
    pub items: Vec<Arc<Value>>,
    /// The version the page is at.
    pub revision: u64,
    /// Whether matching objects follow the page.
    pub more: bool,
    /// How many follow it, when counted.
    pub rest: Option<usize>,
}

impl Store {
    /// The page `query` describes of a resource's objects that `matches` accepts, in
    /// `(namespace, name)` order. `Gone` for a version whose changes since are no longer all
    /// kept (as etcd answers for a compacted revision).
    pub fn list_page(
        &self,
        resource: &str,
        query: &PageQuery,
        matches: impl Fn(&Value) -> bool,
    ) -> Result<Page, Gone> {
        let inner = self.inner.lock().unwrap();
        let revision = query.at.unwrap_or(inner.revision);
        let mut page = Page {
            items: vec![],
            revision,
            more: false,
            rest: None,
        };
        let Some(table) = inner.tables.get(resource) else {
            return Ok(page);
        };
        if query.at.is_some_and(|at| at < table.compacted_through) {
            return Err(Gone {
                oldest: table.compacted_through,
            });
        }
        let range = Range::of(query);
        let overlay = query
            .at
            .map(|at| table.undone_since(at, &range))
            .unwrap_or_default();
        let current = table
            .objects
            .range((range.start.clone(), Bound::Unbounded))
            .take_while(|((ns, _), _)| range.namespace.is_none_or(|wanted| wanted == ns));
        let mut objects = AsOf {
            current: current.peekable(),
            overlay: overlay.iter().peekable(),
        }
        .filter(|object| matches(object));
        let limit = query.limit.unwrap_or(usize::MAX);
        page.items = objects.by_ref().take(limit).cloned().collect();
        page.more = objects.next().is_some();
        if let (true, true, Some(last)) = (page.more, query.count_rest, page.items.last()) {
            page.rest = Some(table.count_after(key_of(last), &range, &overlay));
        }
        Ok(page)
    }
}

fn key_of(object: &Value) -> (&str, &str) {
    let meta = &object["metadata"];
    (
        meta["namespace"].as_str().unwrap_or_default(),
        meta["name"].as_str().unwrap_or_default(),
    )
}

/// The keys a page may hold: from `start` on, within `namespace`.
struct Range<'a> {
    start: Bound<Key>,
    namespace: Option<&'a str>,
}

impl<'a> Range<'a> {
    fn of(query: &PageQuery<'a>) -> Self {
        let after = query
            .after
            .map(|(ns, name)| (ns.to_string(), name.to_string()));
        let floor = query.namespace.map(|ns| (ns.to_string(), String::new()));
        let start = match (after, floor) {
            (Some(after), Some(floor)) if after < floor => Bound::Included(floor),
            (Some(after), _) => Bound::Excluded(after),
            (None, Some(floor)) => Bound::Included(floor),
            (None, None) => Bound::Unbounded,
        };
        Self {
            start,
            namespace: query.namespace,
        }
    }

    fn holds(&self, namespace: &str, name: &str) -> bool {
        let key = (namespace, name);
        let from = match &self.start {
            Bound::Included(start) => key >= (start.0.as_str(), start.1.as_str()),
            Bound::Excluded(start) => key > (start.0.as_str(), start.1.as_str()),
            Bound::Unbounded => true,
        };
        from && self.namespace.is_none_or(|wanted| wanted == namespace)
    }
}

impl Table {
    /// How many objects of `range` follow `last` at the overlay's version: counted on the
    /// keys alone, as a page of a large resource would otherwise walk every object after it.
    fn count_after(
        &self,
        (namespace, name): (&str, &str),
        range: &Range,
        overlay: &BTreeMap<Key, Option<Arc<Value>>>,
    ) -> usize {
        let after = Bound::Excluded((namespace.to_string(), name.to_string()));
        let now = self
            .objects
            .range((after.clone(), Bound::Unbounded))
            .take_while(|((ns, _), _)| range.namespace.is_none_or(|wanted| wanted == ns))
            .count();
        let undone = overlay.range((after, Bound::Unbounded)).map(|(key, then)| {
            match (self.objects.contains_key(key), then) {
                (true, None) => -1,
                (false, Some(_)) => 1,
                _ => 0,
            }
        });
        (now as isize + undone.sum::<isize>()) as usize
    }

    /// The objects in `range` changed after `version`, each as it was at `version` (`None`: it
    /// did not exist then).
    fn undone_since(&self, version: u64, range: &Range) -> BTreeMap<Key, Option<Arc<Value>>> {
        let mut overlay = BTreeMap::new();
        let since = self
            .history
            .iter()
            .rev()
            .take_while(|change| change.resource_version > version);
        // Newest first: the oldest change of an object says what it was before them all.
        for change in since {
            let meta = &change.object["metadata"];
            let namespace = meta["namespace"].as_str().unwrap_or_default();
            let name = meta["name"].as_str().unwrap_or_default();
            if range.holds(namespace, name) {
                let key = (namespace.to_string(), name.to_string());
                overlay.insert(key, change.previous.clone());
            }
        }
        overlay
    }
}

/// The current objects with the overlay's in their place: both sorted by key.
struct AsOf<'a, C, O>
where
    C: Iterator<Item = (&'a Key, &'a Arc<Value>)>,
    O: Iterator<Item = (&'a Key, &'a Option<Arc<Value>>)>,
{
    current: Peekable<C>,
    overlay: Peekable<O>,
}

impl<'a, C, O> Iterator for AsOf<'a, C, O>
where
    C: Iterator<Item = (&'a Key, &'a Arc<Value>)>,
    O: Iterator<Item = (&'a Key, &'a Option<Arc<Value>>)>,
{
    type Item = &'a Arc<Value>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let order = match (self.current.peek(), self.overlay.peek()) {
                (None, None) => return None,
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (Some((current, _)), Some((overlaid, _))) => current.cmp(overlaid),
            };
            if order == Ordering::Less {
                return self.current.next().map(|(_, object)| object);
            }
            if order == Ordering::Equal {
                self.current.next();
            }
            // An object the overlay says did not exist then is skipped.
            if let Some((_, Some(object))) = self.overlay.next() {
                return Some(object);
            }
        }
    }
}

#[cfg(test)]
#[path = "page_tests.rs"]
mod tests;
