//! Watch: the initial events (a snapshot, or the history since a resourceVersion; 410 Gone
//! once it is no longer kept), then live changes as seen through the selectors, bookmarks when
//! asked for and when kube-apiserver would send them, and the timeout, one JSON line per event.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::Response;
use futures::StreamExt;
use serde_json::{Value, json};

use super::errors::{ApiError, ApiResult};
use super::routing::Request;
use super::store::{Change, ChangeKind, WatchStart};
use super::tables;

/// How often kube-apiserver sends a bookmark to a watch that allows them: about every minute,
/// and 2 s and 1 s before the watch's timeout, so the client resumes from as late a version
/// as it can; and only one newer than where the watch started.
const BOOKMARK_EVERY: Duration = Duration::from_secs(60);
const BOOKMARK_BEFORE_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether a watch sees an object: in its namespace, and matched by its selectors.
type Filter = Arc<dyn Fn(&Value) -> bool + Send + Sync>;
/// How a watch writes an object: as stored, or as a `Table` of one row (`as=Table`).
type Encode = Arc<dyn Fn(&Arc<Value>) -> Value + Send + Sync>;

impl Request<'_> {
    pub(super) fn watch(&self, wants_table: bool) -> ApiResult {
        self.check_list_options(true)?;
        let filter = self.watch_filter()?;
        let encode = self.watch_encoding(wants_table)?;
        let from = match self.query.resource_version.as_deref() {
            _ if self.query.send_initial_events => None,
            None | Some("0") => None,
            Some(v) => Some(
                v.parse::<u64>()
                    .map_err(|_| ApiError::bad_request("invalid resourceVersion"))?,
            ),
        };
        let (start, receiver, start_revision) = match self.state.store.watch(&self.key(), from) {
            Ok(watch) => watch,
            Err(gone) => {
                // In the stream, as kube-apiserver sends it: the client relists.
                let expired = ApiError::expired(from.unwrap_or(0), gone.oldest);
                let line = event_line("ERROR", &expired.status_body());
                return Ok(stream_response(Body::from(line)));
            }
        };
        let mut initial: Vec<Bytes> = match start {
            WatchStart::Snapshot(objects) => objects
                .into_iter()
                .filter_map(|o| line(&Change::added(o), &filter, &encode))
                .collect(),
            WatchStart::Replay(changes) => changes
                .iter()
                .filter_map(|c| line(c, &filter, &encode))
                .collect(),
        };
        if from.is_none() && self.query.bookmarks {
            // The end of the initial events, as a watch-list client (kube-rs streaming lists,
            // client-go's reflector) waits for it; kube-apiserver marks it for every watch that
            // starts from the current objects and allows bookmarks.
            initial.push(event_line(
                "BOOKMARK",
                &json!({"kind": self.resource.kind, "apiVersion": self.resource.api_version(),
                    "metadata": {"resourceVersion": start_revision.to_string(),
                        "annotations": {"k8s.io/initial-events-end": "true"}}}),
            ));
        }
        let timeout =
            Duration::from_secs(self.query.timeout_seconds.unwrap_or(1800).clamp(1, 3600));
        let bookmark = self.query.bookmarks.then(|| {
            let (kind, api_version) = (self.resource.kind.clone(), self.resource.api_version());
            Arc::new(move |version: u64| {
                event_line(
                    "BOOKMARK",
                    &json!({"kind": kind, "apiVersion": api_version,
                        "metadata": {"resourceVersion": version.to_string()}}),
                )
            }) as Bookmark
        });
        tracing::trace!(kind = %self.resource.kind, ?from, initial = initial.len(), "watch started");
        let live = async_stream(move |tx| async move {
            let follow = Follow {
                filter,
                encode,
                bookmark,
                started_at: from.unwrap_or(start_revision),
                delivered: start_revision,
            };
            follow.run(receiver, tx, timeout).await;
        });
        let stream = futures::stream::iter(initial.into_iter().map(Ok::<_, std::io::Error>))
            .chain(live.map(Ok));
        Ok(stream_response(Body::from_stream(stream)))
    }

    /// The watch's namespace and selectors, as one test of an object.
    fn watch_filter(&self) -> Result<Filter, ApiError> {
        let (labels, fields) = self.selectors()?;
        let namespace = self.target.namespace.clone();
        Ok(Arc::new(move |o: &Value| {
            namespace
                .as_deref()
                .is_none_or(|ns| o["metadata"]["namespace"].as_str() == Some(ns))
                && labels.matches(o)
                && fields.matches(o)
        }))
    }

    /// `None` for objects as stored; for `as=Table`, each event's object is a Table of one row,
    /// and only the first carries the columns.
    fn watch_encoding(&self, wants_table: bool) -> Result<Option<Encode>, ApiError> {
        if !wants_table {
            return Ok(None);
        }
        let include = self.include()?;
        let resource = self.resource.clone();
        let now = self.state.now.clone();
        let store = self.state.store.clone();
        let headers_sent = AtomicBool::new(false);
        Ok(Some(Arc::new(move |object: &Arc<Value>| {
            let mut table = tables::table(
                &resource,
                std::slice::from_ref(object),
                store.revision(),
                now(),
                include,
            );
            if headers_sent.swap(true, Ordering::Relaxed) {
                table["columnDefinitions"] = json!([]);
            }
            table
        })))
    }
}

/// A bookmark at a version.
type Bookmark = Arc<dyn Fn(u64) -> Bytes + Send + Sync>;

/// A watch past its initial events: it passes on the changes it sees until its timeout.
struct Follow {
    filter: Filter,
    encode: Option<Encode>,
    bookmark: Option<Bookmark>,
    /// The version the watch started from: a bookmark no newer is not sent.
    started_at: u64,
    /// The newest version this watch has passed on (or filtered out): a bookmark carries it,
    /// never the store's current revision, which may be ahead of changes still queued for a
    /// slow watcher (a client resuming from it would lose them).
    delivered: u64,
}

impl Follow {
    async fn run(
        mut self,
        mut receiver: tokio::sync::broadcast::Receiver<Change>,
        tx: tokio::sync::mpsc::Sender<Bytes>,
        timeout: Duration,
    ) {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut next_bookmark = next_bookmark_time(tokio::time::Instant::now(), deadline);
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => return,
                _ = sleep_until_some(next_bookmark), if self.bookmark.is_some() => {
                    let bookmark = self.bookmark.as_ref().expect("bookmarks are on");
                    if self.delivered > self.started_at
                        && tx.send(bookmark(self.delivered)).await.is_err()
                    {
                        return;
                    }
                    next_bookmark = next_bookmark_time(tokio::time::Instant::now(), deadline);
                }
                change = receiver.recv() => match change {
                    Ok(change) => {
                        self.delivered = self.delivered.max(change.resource_version);
                        if let Some(line) = line(&change, &self.filter, &self.encode)
                            && tx.send(line).await.is_err()
                        {
                            return;
                        }
                    }
                    // Lagged (a slow watcher) or closed (watches dropped): end the stream, the
                    // client re-watches from its last version.
                    Err(_) => return,
                },
            }
        }
    }
}

/// When kube-apiserver sends a watch its next bookmark: a minute from now, or 2 s and again
/// 1 s before the deadline if that comes first; none once those have passed.
fn next_bookmark_time(
    now: tokio::time::Instant,
    deadline: tokio::time::Instant,
) -> Option<tokio::time::Instant> {
    let before_timeout = [BOOKMARK_BEFORE_TIMEOUT, BOOKMARK_BEFORE_TIMEOUT / 2]
        .into_iter()
        .filter_map(|ahead| deadline.checked_sub(ahead))
        .find(|at| *at > now)?;
    Some((now + BOOKMARK_EVERY).min(before_timeout))
}

async fn sleep_until_some(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn stream_response(body: Body) -> Response {
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .expect("valid response")
}

/// The watch line for a change, as seen through the watch's filter, if the watch sees it.
fn line(change: &Change, filter: &Filter, encode: &Option<Encode>) -> Option<Bytes> {
    let (kind, object) = seen_as(change, filter)?;
    Some(match encode {
        Some(encode) => event_line(kind, &encode(&object)),
        None if Arc::ptr_eq(&object, &change.object) => encoded_line(kind, change.encoded_object()),
        None => event_line(kind, &object),
    })
}

/// What a watch filtered by `filter` sees of a change, as kube-apiserver's watch cache tells
/// it: an object that starts matching is ADDED; one that stops matching is DELETED, carrying
/// the object as it was when it last matched, at the change's resourceVersion.
fn seen_as(change: &Change, filter: &Filter) -> Option<(&'static str, Arc<Value>)> {
    let now = filter(&change.object);
    let before = change.previous.as_deref().is_some_and(|p| filter(p));
    match (change.kind, before, now) {
        (ChangeKind::Modified, true, false) => {
            let previous = change.previous.as_deref().expect("it matched before");
            let mut left = previous.clone();
            left["metadata"]["resourceVersion"] = json!(change.resource_version.to_string());
            Some(("DELETED", Arc::new(left)))
        }
        (ChangeKind::Modified, false, true) => Some(("ADDED", change.object.clone())),
        (_, _, true) => Some((change.kind.as_str(), change.object.clone())),
        _ => None,
    }
}

fn event_line(type_: &str, object: &Value) -> Bytes {
    encoded_line(
        type_,
        &serde_json::to_vec(object).expect("serializes").into(),
    )
}

/// One line of a watch: `{"type":...,"object":...}` and a newline, around an encoded object.
fn encoded_line(type_: &str, object: &Bytes) -> Bytes {
    let mut line = Vec::with_capacity(object.len() + 32);
    line.extend_from_slice(b"{\"type\":\"");
    line.extend_from_slice(type_.as_bytes());
    line.extend_from_slice(b"\",\"object\":");
    line.extend_from_slice(object);
    line.extend_from_slice(b"}\n");
    Bytes::from(line)
}

/// A stream fed by a task, ending when the task returns or the client goes away.
fn async_stream<F, Fut>(produce: F) -> impl futures::Stream<Item = Bytes>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Bytes>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(produce(tx));
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
