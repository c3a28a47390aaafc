use super::*;
use crate::apiserver::store::Write;
use serde_json::json;

const CONFIGMAPS: &str = "/v1/configmaps";

fn put(store: &Store, namespace: &str, name: &str, data: &str) -> u64 {
    let object = json!({
        "metadata": {"namespace": namespace, "name": name, "labels": {"data": data}},
        "data": data,
    });
    let written = store
        .write(CONFIGMAPS, namespace, name, |_| {
            Ok::<_, ()>(Write::Put(object))
        })
        .unwrap();
    written.object()["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

fn delete(store: &Store, namespace: &str, name: &str) {
    store
        .write(CONFIGMAPS, namespace, name, |_| Ok::<_, ()>(Write::Delete))
        .unwrap();
}

fn query<'a>(
    namespace: Option<&'a str>,
    at: Option<u64>,
    after: Option<(&'a str, &'a str)>,
    limit: usize,
) -> PageQuery<'a> {
    PageQuery {
        namespace,
        at,
        after,
        limit: Some(limit),
        count_rest: true,
    }
}

/// `namespace/name=data` of each item.
fn shown(page: &Page) -> Vec<String> {
    page.items
        .iter()
        .map(|o| {
            let meta = &o["metadata"];
            format!(
                "{}/{}={}",
                meta["namespace"].as_str().unwrap(),
                meta["name"].as_str().unwrap(),
                o["data"].as_str().unwrap()
            )
        })
        .collect()
}

fn everything(_: &Value) -> bool {
    true
}

#[test]
fn a_page_continued_after_writes_and_deletes_shows_the_first_pages_version() {
    let store = Store::default();
    store.serve(CONFIGMAPS);
    for name in ["a", "b", "c", "d", "e"] {
        put(&store, "ns", name, "1");
    }
    let first = store
        .list_page(CONFIGMAPS, &query(None, None, None, 2), everything)
        .unwrap();
    assert_eq!(shown(&first), ["ns/a=1", "ns/b=1"]);
    assert_eq!((first.more, first.rest), (true, Some(3)));
    let at = first.revision;

    // Changes on both sides of where the first page ended, before the next page is read.
    put(&store, "ns", "a", "2");
    put(&store, "ns", "c", "2");
    put(&store, "ns", "c", "3");
    delete(&store, "ns", "d");
    put(&store, "ns", "cc", "1");
    put(&store, "ns", "f", "1");
    delete(&store, "ns", "e");
    put(&store, "ns", "e", "2");

    let second = store
        .list_page(
            CONFIGMAPS,
            &query(None, Some(at), Some(("ns", "b")), 2),
            everything,
        )
        .unwrap();
    assert_eq!(shown(&second), ["ns/c=1", "ns/d=1"]);
    assert_eq!(
        (second.revision, second.more, second.rest),
        (at, true, Some(1))
    );
    let last = store
        .list_page(
            CONFIGMAPS,
            &query(None, Some(at), Some(("ns", "d")), 2),
            everything,
        )
        .unwrap();
    assert_eq!(shown(&last), ["ns/e=1"]);
    assert_eq!((last.more, last.rest), (false, None));

    // The current version sees every change.
    let now = store
        .list_page(CONFIGMAPS, &query(None, None, None, 10), everything)
        .unwrap();
    assert_eq!(
        shown(&now),
        ["ns/a=2", "ns/b=1", "ns/c=3", "ns/cc=1", "ns/e=2", "ns/f=1"]
    );

    store.compact();
    assert!(
        store
            .list_page(
                CONFIGMAPS,
                &query(None, Some(at), Some(("ns", "b")), 2),
                everything
            )
            .is_err()
    );
}

#[test]
fn the_selector_is_applied_before_the_limit() {
    let store = Store::default();
    store.serve(CONFIGMAPS);
    for (name, data) in [("a", "x"), ("b", "y"), ("c", "x"), ("d", "y"), ("e", "x")] {
        put(&store, "ns", name, data);
    }
    let x = |o: &Value| o["data"] == "x";
    let first = store
        .list_page(CONFIGMAPS, &query(None, None, None, 2), x)
        .unwrap();
    assert_eq!(shown(&first), ["ns/a=x", "ns/c=x"]);
    assert!(first.more);
    // An object that comes to match after the first page's version is not in the next page.
    put(&store, "ns", "d", "x");
    let next = store
        .list_page(
            CONFIGMAPS,
            &query(None, Some(first.revision), Some(("ns", "c")), 2),
            x,
        )
        .unwrap();
    assert_eq!(shown(&next), ["ns/e=x"]);
    assert!(!next.more);
}

#[test]
fn a_namespaced_page_stays_in_its_namespace() {
    let store = Store::default();
    store.serve(CONFIGMAPS);
    for (namespace, name) in [("a", "1"), ("b", "1"), ("b", "2"), ("c", "1")] {
        put(&store, namespace, name, "1");
    }
    let at = store.revision();
    put(&store, "b", "3", "1");
    delete(&store, "c", "1");
    put(&store, "a", "2", "1");
    let page = |after| {
        store
            .list_page(
                CONFIGMAPS,
                &query(Some("b"), Some(at), after, 10),
                everything,
            )
            .unwrap()
    };
    assert_eq!(shown(&page(None)), ["b/1=1", "b/2=1"]);
    assert_eq!(shown(&page(Some(("b", "1")))), ["b/2=1"]);
    // A token from another namespace resumes within this one's bounds.
    assert_eq!(shown(&page(Some(("a", "9")))), ["b/1=1", "b/2=1"]);
    assert!(page(Some(("c", "0"))).items.is_empty());
}
