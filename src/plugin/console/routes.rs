//! The console's routes, behind the door ([`super::door::guard`]), with their bounds: a form's
//! body at most [`MAX_BODY_BYTES`], a query at most [`MAX_QUERY_BYTES`], a request's answer
//! within [`crate::bounded_http::REQUEST_TIMEOUT`] (the live stream has its own lifetime,
//! [`super::live::STREAM_LIFETIME`]). Connections, the head's size and the time to send it are
//! bounded by [`crate::bounded_http::serve`], as for the activation service.

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Router, middleware::from_fn_with_state};

use super::templates::{SCRIPT, STYLE};
use super::{Console, actions, billing_page, detail, door, live, pages};

/// A form's body: a Partner's fields are a few hundred bytes.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// A query: a search, a filter, a sort.
pub const MAX_QUERY_BYTES: usize = 2048;

pub fn router(console: Arc<Console>) -> Router {
    let bounded = Router::new()
        .route("/", get(pages::partners))
        .route("/partners/{namespace}/{name}", get(detail::partner))
        .route("/billing", get(billing_page::page))
        .route("/billing.csv", get(billing_page::csv))
        .route("/assets/console.js", get(script))
        .route("/assets/console.css", get(style))
        .route("/actions/add", post(actions::add))
        .route("/actions/convert", post(actions::convert))
        .route("/actions/auto-upgrade", post(actions::auto_upgrade))
        .route("/actions/renew", post(actions::renew))
        .route("/actions/resend", post(actions::resend))
        .route("/actions/delete", post(actions::delete))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            crate::bounded_http::REQUEST_TIMEOUT,
        ));
    Router::new()
        .route("/events", get(live::events))
        .merge(bounded)
        .with_state(console.clone())
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(from_fn_with_state(console, door::guard))
        .layer(middleware::from_fn(cap_query))
}

/// 414 for a query longer than [`MAX_QUERY_BYTES`], before anything parses it.
async fn cap_query(request: Request, next: Next) -> Response {
    if request.uri().query().map_or(0, str::len) > MAX_QUERY_BYTES {
        return (StatusCode::URI_TOO_LONG, "the query is too long\n").into_response();
    }
    next.run(request).await
}

async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
        .into_response()
}

async fn style() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE).into_response()
}
