//! Watch: the initial events (a snapshot, or the history since a resourceVersion; 410 Gone
//! once it is compacted), then live changes as seen through the selectors, bookmarks, and the
//! timeout, one JSON line per event.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{StatusCode, header};
use axum::response::Response;
use futures::StreamExt;
use serde_json::{Value, json};

use super::errors::{ApiError, ApiResult};
use super::routing::Request;
use super::store::{Change, ChangeKind, WatchStart};
use super::tables;

impl Request<'_> {
    pub(super) fn watch(&self, wants_table: bool) -> ApiResult {
        let (labels, fields) = self.selectors()?;
        let from = match self.query.resource_version.as_deref() {
            _ if self.query.send_initial_events => None,
            None | Some("0") => None,
            Some(v) => Some(
                v.parse::<u64>()
                    .map_err(|_| ApiError::bad_request("invalid resourceVersion"))?,
            ),
        };
        let namespace = self.target.namespace.clone();
        let in_scope = move |o: &Value| {
            namespace
                .as_deref()
                .is_none_or(|ns| o["metadata"]["namespace"].as_str() == Some(ns))
        };
        let matches = move |o: &Value| in_scope(o) && labels.matches(o) && fields.matches(o);
        let event = |type_: &str, object: &Value| {
            watch_event(type_, &serde_json::to_vec(object).expect("serializes"))
        };
        let (start, mut receiver, start_revision) = match self.state.store.watch(&self.key(), from)
        {
            Ok(watch) => watch,
            Err(_) => {
                let gone = ApiError::new(
                    StatusCode::GONE,
                    "Expired",
                    format!(
                        "too old resource version: {} ({})",
                        from.unwrap_or(0),
                        self.state.store.revision()
                    ),
                );
                let line = event("ERROR", &gone.status_body());
                return Ok(Response::builder()
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from(line))
                    .expect("valid response"));
            }
        };
        // `as=Table`: each event's object is a Table of one row; the first carries the columns.
        let table = wants_table.then(|| {
            let resource = self.resource.clone();
            let now = self.state.now.clone();
            let store = self.state.store.clone();
            let headers_sent = std::sync::atomic::AtomicBool::new(false);
            move |object: &Arc<Value>| {
                let mut table = tables::table(
                    &resource,
                    std::slice::from_ref(object),
                    store.revision(),
                    now(),
                );
                if headers_sent.swap(true, std::sync::atomic::Ordering::Relaxed) {
                    table["columnDefinitions"] = json!([]);
                }
                table
            }
        });
        let line = move |change: &Change, matches: &dyn Fn(&Value) -> bool| {
            let kind = watch_line_kind(change, matches)?;
            Some(match &table {
                Some(to_table) => event(kind, &to_table(&change.object)),
                None => watch_event(kind, change.encoded_object()),
            })
        };
        let mut initial = Vec::new();
        match start {
            WatchStart::Snapshot(objects) => {
                for object in objects.into_iter().filter(|o| matches(o)) {
                    let change = Change::added(object);
                    initial.extend(line(&change, &matches));
                }
            }
            WatchStart::Replay(changes) => {
                for change in changes {
                    initial.extend(line(&change, &matches));
                }
            }
        }
        if self.query.send_initial_events && self.query.bookmarks {
            // The end of the initial events, as a watch-list client (kube-rs streaming lists,
            // client-go's reflector) waits for it.
            initial.push(event(
                "BOOKMARK",
                &json!({"kind": self.resource.kind, "apiVersion": self.resource.api_version(),
                    "metadata": {"resourceVersion": start_revision.to_string(),
                        "annotations": {"k8s.io/initial-events-end": "true"}}}),
            ));
        }
        let timeout =
            Duration::from_secs(self.query.timeout_seconds.unwrap_or(1800).clamp(1, 3600));
        let bookmarks = self.query.bookmarks;
        let api_version = self.resource.api_version();
        let kind = self.resource.kind.clone();
        tracing::trace!(kind = %kind, ?from, initial = initial.len(), "watch started");
        let live = async_stream(move |tx| async move {
            let deadline = tokio::time::Instant::now() + timeout;
            let mut ticker = tokio::time::interval(Duration::from_secs(1));
            ticker.tick().await;
            // The newest version this watch has passed on (or filtered out): a bookmark carries
            // it, never the store's current revision, which may be ahead of changes still
            // queued for a slow watcher (a client resuming from it would lose them).
            let mut delivered = start_revision;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(deadline) => return,
                    _ = ticker.tick(), if bookmarks => {
                        let bookmark = json!({"kind": kind, "apiVersion": api_version,
                            "metadata": {"resourceVersion": delivered.to_string()}});
                        if tx.send(event("BOOKMARK", &bookmark)).await.is_err() { return; }
                    }
                    change = receiver.recv() => match change {
                        Ok(change) => {
                            tracing::trace!(kind = %kind, rv = change.resource_version, "watch event");
                            delivered = delivered.max(change.resource_version);
                            if let Some(line) = line(&change, &matches)
                                && tx.send(line).await.is_err()
                            {
                                return;
                            }
                        }
                        // Lagged (a slow watcher) or closed (watches dropped): end the stream,
                        // the client re-watches from its last version.
                        Err(_) => return,
                    },
                }
            }
        });
        let stream = futures::stream::iter(initial.into_iter().map(Ok::<_, std::io::Error>))
            .chain(live.map(Ok));
        Ok(Response::builder()
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from_stream(stream))
            .expect("valid response"))
    }
}

/// One line of a watch: `{"type":...,"object":...}` and a newline, around an encoded object.
fn watch_event(type_: &str, object: &[u8]) -> Bytes {
    let mut line = Vec::with_capacity(object.len() + 32);
    line.extend_from_slice(b"{\"type\":\"");
    line.extend_from_slice(type_.as_bytes());
    line.extend_from_slice(b"\",\"object\":");
    line.extend_from_slice(object);
    line.extend_from_slice(b"}\n");
    Bytes::from(line)
}

/// The watch line for a change, as seen through a filter: a modified object that stops matching
/// is reported as deleted, one that starts matching as added.
fn watch_line_kind(change: &Change, matches: &dyn Fn(&Value) -> bool) -> Option<&'static str> {
    let now = matches(&change.object);
    let before = change.previous.as_deref().is_some_and(matches);
    Some(match (change.kind, before, now) {
        (ChangeKind::Modified, true, false) => "DELETED",
        (ChangeKind::Modified, false, true) => "ADDED",
        (_, _, true) => change.kind.as_str(),
        _ => return None,
    })
}

/// A stream fed by a task, ending when the task returns or the client goes away.
fn async_stream<F, Fut>(produce: F) -> impl futures::Stream<Item = Bytes>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Bytes>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(produce(tx));
    tokio_stream_from(rx)
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Bytes>,
) -> impl futures::Stream<Item = Bytes> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
