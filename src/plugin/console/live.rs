//! Rows pushed to an open Partners page as the watch sees them change: server-sent events
//! (`GET /events?q=&level=`, the page's own search and filter). `row` carries a row's new
//! HTML, `remove` the id of a row that left (deleted, or no longer passing the filter),
//! `reload` asks for the whole page (the watch listed anew, or this stream fell behind).
//! A stream ends after [`STREAM_LIFETIME`]; the browser's EventSource reconnects by itself,
//! so no connection is held forever.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query as QueryParams, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use serde_json::json;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

use super::Console;
use super::rows::{Query, page_row};
use super::store::{Change, Key};

/// How long one stream lasts before the browser reconnects.
pub const STREAM_LIFETIME: Duration = Duration::from_secs(600);

/// The event for a change of `key`, as the page with `query` shows it.
fn row_event(console: &Console, query: &Query, key: &Key) -> Event {
    let id = format!("row--{}--{}", key.0, key.1);
    let now = crate::plugin::now().unwrap_or_else(|_| chrono::Utc::now());
    let row = console.store.read(|partners, distributors| {
        partners
            .get(key)
            .map(|p| page_row(p, distributors.get(&p.spec.distributor_ref.name), now))
    });
    match row {
        Some(row) if query.matches(&row.row) => Event::default()
            .event("row")
            .data(json!({"id": id, "html": super::pages::render_row(console, &row)}).to_string()),
        _ => Event::default()
            .event("remove")
            .data(json!({"id": id}).to_string()),
    }
}

/// `?unlisted=1`: the page was rendered before the watch's first list.
#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub struct Rendered {
    pub unlisted: String,
}

/// `GET /events`: the stream. A page rendered before the first list reloads as soon as the
/// list is there, even when it arrived before the page's stream did.
pub async fn events(
    State(console): State<Arc<Console>>,
    QueryParams(query): QueryParams<Query>,
    QueryParams(rendered): QueryParams<Rendered>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let changes = BroadcastStream::new(console.store.subscribe());
    let stale = rendered.unlisted == "1" && console.store.listed();
    let first =
        futures::stream::iter(stale.then(|| Ok(Event::default().event("reload").data("{}"))));
    let stream = changes.map(move |change| {
        Ok(match change {
            Ok(Change::Upserted(key)) | Ok(Change::Deleted(key)) => {
                row_event(&console, &query, &key)
            }
            Ok(Change::Relisted) | Err(BroadcastStreamRecvError::Lagged(_)) => {
                Event::default().event("reload").data("{}")
            }
        })
    });
    let bounded = first
        .chain(stream)
        .take_until(tokio::time::sleep(STREAM_LIFETIME));
    Sse::new(bounded).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
