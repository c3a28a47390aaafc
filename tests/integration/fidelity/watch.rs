//! Watches: events and filters, bookmarks, a too old resourceVersion, initial events, Tables.

use super::*;

/// The event types and object names of a watch that ran to its timeout.
pub(super) fn watch_summary(reply: &Reply) -> Value {
    json!(
        reply
            .body
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["type"] != "BOOKMARK")
            .map(|e| json!([e["type"], e["object"]["metadata"]["name"]]))
            .collect::<Vec<_>>()
    )
}

/// A bookmark never carries a version newer than an event the watch has yet to deliver: a
/// client that resumes from a bookmark would lose those events. Writes race a watch with
/// bookmarks for a few seconds; every event after a bookmark must be newer than it.
pub(super) async fn watch_bookmarks_never_run_ahead(http: Http, ns: String) -> Value {
    let start = http.post(&cms(&ns), cm("first", json!({}))).await.rv();
    let writer = {
        let http = http.clone();
        let ns = ns.clone();
        tokio::spawn(async move {
            // Over about three seconds, so that bookmarks fall between the events.
            for i in 0..150 {
                http.post(&cms(&ns), cm(&format!("w{i}"), json!({}))).await;
                // Pacing on purpose: the writes spread over the watch's bookmarks.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let watch = format!(
        "{}?watch=true&allowWatchBookmarks=true&resourceVersion={start}&timeoutSeconds=5",
        cms(&ns)
    );
    let watched = http.get(&watch).await;
    writer.await.unwrap();
    let version = |event: &Value| {
        event["object"]["metadata"]["resourceVersion"]
            .as_str()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let mut bookmark = 0;
    let mut behind_a_bookmark = vec![];
    for event in watched.body.as_array().into_iter().flatten() {
        if event["type"] == "BOOKMARK" {
            bookmark = bookmark.max(version(event));
        } else if version(event) <= bookmark {
            behind_a_bookmark.push(event["object"]["metadata"]["name"].clone());
        }
    }
    json!({"code": watched.code, "eventsBehindABookmark": behind_a_bookmark})
}

pub(super) async fn watch_events_and_filters(http: Http, ns: String) -> Value {
    let start = http.post(&cms(&ns), cm("first", json!({}))).await.rv();
    let writer = {
        let http = http.clone();
        let ns = ns.clone();
        tokio::spawn(async move {
            // Time for the watches to open first (one has no resourceVersion: it sees only
            // what comes after it). A wait for something to happen, not proof of nothing.
            tokio::time::sleep(Duration::from_millis(500)).await;
            let mut object = cm("second", json!({}));
            object["metadata"]["labels"] = json!({"watched": "yes"});
            http.post(&cms(&ns), object).await;
            http.patch(
                &format!("{}/second", cms(&ns)),
                MERGE,
                json!({"data": {"k": "v"}}),
            )
            .await;
            http.patch(
                &format!("{}/second", cms(&ns)),
                MERGE,
                json!({"metadata": {"labels": {"watched": "no"}}}),
            )
            .await;
            http.delete(&format!("{}/second", cms(&ns))).await;
        })
    };
    let all = format!(
        "{}?watch=true&resourceVersion={start}&timeoutSeconds=3",
        cms(&ns)
    );
    let filtered = format!(
        "{}?watch=true&resourceVersion={start}&timeoutSeconds=3&labelSelector=watched%3Dyes",
        cms(&ns)
    );
    let from_now = format!("{}?watch=true&timeoutSeconds=3", cms(&ns));
    let (all, filtered, from_now) = (http.get(&all), http.get(&filtered), http.get(&from_now));
    let (all, filtered, from_now) = tokio::join!(all, filtered, from_now);
    writer.await.unwrap();
    json!({"all": [all.code, watch_summary(&all)], "filtered": watch_summary(&filtered),
        "withoutVersion": watch_summary(&from_now)})
}

pub(super) async fn watch_too_old_resource_version(http: Http, ns: String) -> Value {
    http.post(&cms(&ns), cm("x", json!({}))).await;
    let watch = http
        .get(&format!(
            "{}?watch=true&resourceVersion=1&timeoutSeconds=2",
            cms(&ns)
        ))
        .await;
    let first = &watch.body[0];
    json!({"code": watch.code, "type": first["type"], "status": [first["object"]["code"], first["object"]["reason"]]})
}

pub(super) async fn watch_initial_events_bookmark(http: Http, ns: String) -> Value {
    http.post(&cms(&ns), cm("x", json!({}))).await;
    http.post(&cms(&ns), cm("y", json!({}))).await;
    let watch = http
        .get(&format!(
            "{}?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=2",
            cms(&ns)
        ))
        .await;
    let events = watch.body.as_array().cloned().unwrap_or_default();
    let bookmark = events.iter().position(|e| e["type"] == "BOOKMARK");
    json!({
        "code": watch.code,
        "beforeBookmark": events.iter().take(bookmark.unwrap_or(0)).map(|e| json!([e["type"], e["object"]["metadata"]["name"]])).collect::<Vec<_>>(),
        "bookmark": bookmark.map(|i| json!([events[i]["object"]["kind"], events[i]["object"]["metadata"]["annotations"]])),
        "bookmarkWithoutAllow": http.get(&format!("{}?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&timeoutSeconds=1", cms(&ns))).await.outcome(),
    })
}

pub(super) async fn watch_as_table(http: Http, ns: String) -> Value {
    http.post(&cms(&ns), cm("x", json!({"k": "v"}))).await;
    let writer = {
        let http = http.clone();
        let ns = ns.clone();
        tokio::spawn(async move {
            // Time for the watches to open first (one has no resourceVersion: it sees only
            // what comes after it). A wait for something to happen, not proof of nothing.
            tokio::time::sleep(Duration::from_millis(500)).await;
            http.post(&cms(&ns), cm("y", json!({}))).await;
        })
    };
    let watch = http
        .get_as(&format!("{}?watch=true&timeoutSeconds=2", cms(&ns)), TABLE)
        .await;
    writer.await.unwrap();
    let events: Vec<Value> = watch
        .body
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let columns: Vec<Value> = e["object"]["columnDefinitions"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| c["name"].clone())
                .collect();
            json!({"type": e["type"], "kind": e["object"]["kind"], "columns": columns,
                "rows": e["object"]["rows"].as_array().map(Vec::len),
                "firstCell": e["object"]["rows"][0]["cells"][0], "rowObject": e["object"]["rows"][0]["object"]["kind"]})
        })
        .collect();
    json!({"code": watch.code, "events": events})
}

/// Where a watch may start from: a version from before the resource was served is too old
/// (410 in the stream: the client relists), a recent one replays what came after it, and one
/// the server has not reached yet waits for it.
pub(super) async fn watch_start_versions(http: Http, ns: String) -> Value {
    let first = http.post(&cms(&ns), cm("first", json!({}))).await.rv();
    http.post(&cms(&ns), cm("second", json!({}))).await;
    http.post(&partners(&ns), partner("p")).await;
    let watch = |path: String| {
        let http = http.clone();
        async move {
            let reply = http.get(&path).await;
            let events: Vec<Value> = reply
                .body
                .as_array()
                .into_iter()
                .flatten()
                .map(|e| {
                    json!([
                        e["type"],
                        e["object"]["metadata"]["name"],
                        e["object"]["code"],
                        e["object"]["reason"]
                    ])
                })
                .collect();
            json!([reply.code, events])
        }
    };
    json!({
        "customResourceFromBeforeItsDefinition": watch(format!(
            "{}?watch=true&resourceVersion=2&timeoutSeconds=1", partners(&ns))).await,
        "recent": watch(format!(
            "{}?watch=true&resourceVersion={first}&timeoutSeconds=1", cms(&ns))).await,
        "future": watch(format!(
            "{}?watch=true&resourceVersion=900000000&timeoutSeconds=1", cms(&ns))).await,
    })
}

/// Bookmarks come only when allowed, and then not every second: right after the initial
/// events of a watch from the current objects (marked as their end), about a minute apart,
/// and 2 s before the watch's timeout, never one that is no newer than where the watch began.
/// On Ingresses, which no other probe writes (a bookmark carries the resource's latest version).
pub(super) async fn watch_bookmarks_when_allowed(http: Http, ns: String) -> Value {
    let ingresses = format!("/apis/networking.k8s.io/v1/namespaces/{ns}/ingresses");
    let at = http.get(&ingresses).await.rv();
    let watch = |query: String| {
        let http = http.clone();
        let path = format!("{ingresses}?watch=true&{query}");
        async move {
            let reply = http.get(&path).await;
            let mut events: Vec<Value> = reply
                .body
                .as_array()
                .into_iter()
                .flatten()
                .map(|e| json!([e["type"], e["object"]["metadata"]["annotations"]]))
                .collect();
            // Near the timeout kube-apiserver sends one bookmark or two, as its timers fall.
            events.dedup();
            json!([reply.code, events])
        }
    };
    let writer = {
        let http = http.clone();
        let ingresses = ingresses.clone();
        tokio::spawn(async move {
            // Time for the watches to open first: the write comes while they run.
            tokio::time::sleep(Duration::from_millis(1000)).await;
            http.post(
                &ingresses,
                json!({"metadata": {"name": "web"}, "spec": {"defaultBackend":
                {"service": {"name": "web", "port": {"number": 80}}}}}),
            )
            .await;
        })
    };
    let (filtered_out, fresh, with_change, not_allowed) = tokio::join!(
        watch(format!(
            "resourceVersion={at}&timeoutSeconds=4&allowWatchBookmarks=true&labelSelector=none%3Dnone"
        )),
        watch("timeoutSeconds=1&allowWatchBookmarks=true&labelSelector=none%3Dnone".into()),
        watch(format!(
            "resourceVersion={at}&timeoutSeconds=5&allowWatchBookmarks=true"
        )),
        watch(format!("resourceVersion={at}&timeoutSeconds=5")),
    );
    writer.await.unwrap();
    json!({"filteredOut": filtered_out, "fromNow": fresh, "withAChange": with_change, "notAllowed": not_allowed})
}

/// An object that stops matching a watch's selector is DELETED for that watch, carrying the
/// object as it last matched (its old labels and data) at the version of the change.
pub(super) async fn watch_object_leaving_a_selector(http: Http, ns: String) -> Value {
    let mut object = cm("leaving", json!({"k": "before"}));
    object["metadata"]["labels"] = json!({"watched": "yes"});
    let start = http.post(&cms(&ns), object).await.rv();
    let path = format!("{}/leaving", cms(&ns));
    let left = http
        .patch(
            &path,
            MERGE,
            json!({"metadata": {"labels": {"watched": "no"}}, "data": {"k": "after"}}),
        )
        .await;
    let watch = http
        .get(&format!(
            "{}?watch=true&resourceVersion={start}&timeoutSeconds=1&labelSelector=watched%3Dyes",
            cms(&ns)
        ))
        .await;
    let events: Vec<Value> = watch
        .body
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let object = &e["object"];
            json!([
                e["type"],
                object["metadata"]["labels"],
                object["data"],
                object["metadata"]["resourceVersion"] == left.body["metadata"]["resourceVersion"]
            ])
        })
        .collect();
    json!([watch.code, events])
}
