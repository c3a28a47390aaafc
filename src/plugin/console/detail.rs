//! A Partner's page: its story as `kubectl partner status` tells it (the same
//! [`crate::plugin::status::gather`]), the emails the operator sent or holds, webhook events
//! not delivered yet, the conditions that say something is wrong, and its latest Events.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use minijinja::context;
use serde::Serialize;

use super::Console;
use super::pages::scope_line;
use crate::api::Partner;
use crate::plugin::dates::exact;
use crate::plugin::names::{self, Kind};
use crate::plugin::status;

/// An email as the page lists it.
#[derive(Serialize)]
struct EmailLine {
    event: String,
    recipient: String,
    state: String,
}

fn emails(partner: &Partner) -> Vec<EmailLine> {
    let status = partner.status.clone().unwrap_or_default();
    status
        .emails
        .iter()
        .map(|e| EmailLine {
            event: serde_json::to_value(e.event)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default(),
            recipient: e
                .recipient
                .as_ref()
                .and_then(|r| serde_json::to_value(r).ok())
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_else(|| "partner and distributor".into()),
            state: match (&e.sent_at, &e.held, &e.last_error) {
                (Some(at), _, _) => format!("sent {}", exact(*at)),
                (None, Some(_), error) => format!("held: {}", error.clone().unwrap_or_default()),
                (None, None, Some(error)) => format!("failing: {error}"),
                (None, None, None) => "to be sent".into(),
            },
        })
        .collect()
}

/// An Event as the page lists it.
#[derive(Serialize)]
struct EventRow {
    at: String,
    kind: String,
    reason: String,
    count: i32,
    message: String,
}

fn event_rows(events: &Result<Vec<status::EventLine>, String>) -> Result<Vec<EventRow>, String> {
    let lines = events.as_ref().map_err(Clone::clone)?;
    Ok(lines
        .iter()
        .map(|(at, kind, reason, count, message)| EventRow {
            at: exact(*at),
            kind: kind.clone(),
            reason: reason.clone(),
            count: *count,
            message: message.clone(),
        })
        .collect())
}

/// `GET /partners/{namespace}/{name}`.
pub async fn partner(
    State(console): State<Arc<Console>>,
    Path((namespace, name)): Path<(String, String)>,
) -> Response {
    let checked = console.ctx_for(&namespace, false).and_then(|ctx| {
        names::check("NAME", "Partner", &name, Kind::Subdomain)?;
        Ok(ctx)
    });
    let ctx = match checked {
        Ok(ctx) => ctx,
        Err(e) => return (StatusCode::NOT_FOUND, e.0).into_response(),
    };
    let view = match status::gather(&ctx, &name, 20).await {
        Ok(view) => view,
        Err(e) => return (StatusCode::NOT_FOUND, e.0).into_response(),
    };
    let story: Vec<(String, String)> = view
        .story
        .iter()
        .map(|m| (exact(m.at), m.what.clone()))
        .collect();
    let events = event_rows(&view.events);
    let problems: Vec<(String, String, String)> = view
        .problems
        .iter()
        .map(|c| (c.type_.clone(), c.reason.clone(), c.message.clone()))
        .collect();
    let html = console.templates.render(
        "partner.html",
        context! {
            csrf => console.door.csrf(),
            title => view.partner.spec.organization_name.clone(),
            page => "partner",
            scope => scope_line(&console),
            qualified => ctx.qualified(&name),
            facts => view.facts,
            story => story,
            next => view.next,
            emails => emails(&view.partner),
            webhooks => view.webhooks_waiting,
            problems => problems,
            events => events.as_ref().ok(),
            events_error => events.as_ref().err(),
        },
    );
    Html(html).into_response()
}
