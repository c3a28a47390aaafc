//! The activation service's routes: the emailed link (a page) and the portals' API (JSON).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tracing::info;

use super::Service;
use super::outcome::{Outcome, rfc3339};
use crate::metrics::ActivationFailureLabels;

/// The emailed link: GET shows the page, POST activates.
pub(super) async fn link(
    State(service): State<Arc<Service>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let (mut tenant, mut token) = (String::new(), String::new());
    for (key, value) in url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes()) {
        match &*key {
            "tenant" => tenant = value.into_owned(),
            "token" => token = value.into_owned(),
            _ => {}
        }
    }
    let client = service.client_address(peer, &headers);
    let commit = method == Method::POST;
    let outcome = service.decide(client, &tenant, &token, commit).await;
    service.count(&outcome, commit);
    access_log(&method, &uri, &outcome, client);
    let page = service.page.render(&outcome.page());
    let mut response = (outcome.status(), page_headers(), page).into_response();
    retry_after(&mut response, &outcome);
    response
}

/// `POST /v1/activations`.
pub(super) async fn api(
    State(service): State<Arc<Service>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let client = service.client_address(peer, &headers);
    #[derive(serde::Deserialize)]
    struct Request {
        tenant: String,
        token: String,
    }
    let Ok(request) = serde_json::from_slice::<Request>(&body) else {
        service
            .metrics
            .activation_failures
            .get_or_create(&ActivationFailureLabels {
                reason: "malformed",
            })
            .inc();
        info!(method = "POST", path = uri.path(), status = 400, client = %client, "activation request");
        return (
            StatusCode::BAD_REQUEST,
            json_headers(),
            json!({"status": "malformed", "message": "expected a JSON body {\"tenant\": \"<tenant id>\", \"token\": \"<token>\"}"})
                .to_string(),
        )
            .into_response();
    };
    let outcome = service
        .decide(client, &request.tenant, &request.token, true)
        .await;
    service.count(&outcome, true);
    access_log(&Method::POST, &uri, &outcome, client);
    let mut body = json!({"status": outcome.word(), "message": outcome.message()});
    if !matches!(outcome, Outcome::Unknown | Outcome::RateLimited(_)) {
        body["tenant"] = json!(request.tenant);
    }
    if let Outcome::Activated(_, at) | Outcome::AlreadyActivated(_, at) = &outcome {
        body["activatedAt"] = json!(rfc3339(*at));
    }
    let mut response = (outcome.status(), json_headers(), body.to_string()).into_response();
    retry_after(&mut response, &outcome);
    response
}

/// One line per request: method, path (never the query, which holds the token), status and
/// client address.
fn access_log(method: &Method, uri: &Uri, outcome: &Outcome, client: IpAddr) {
    info!(
        method = %method,
        path = uri.path(),
        status = outcome.status().as_u16(),
        outcome = outcome.word(),
        client = %client,
        "activation request"
    );
}

fn retry_after(response: &mut Response, outcome: &Outcome) {
    if let Outcome::RateLimited(wait) = outcome
        && let Ok(value) = HeaderValue::from_str(&wait.as_secs().max(1).to_string())
    {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
}

/// No caching (the URL holds a token), no referrer (it would carry the token elsewhere), no
/// framing, no scripts.
fn page_headers() -> [(header::HeaderName, &'static str); 6] {
    [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        (header::CACHE_CONTROL, "no-store"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (
            header::CONTENT_SECURITY_POLICY,
            // The Distributor's logo, loaded by the partner's browser (never by the operator).
            "default-src 'none'; style-src 'unsafe-inline'; img-src https:; form-action 'self'; frame-ancestors 'none'",
        ),
    ]
}

fn json_headers() -> [(header::HeaderName, &'static str); 2] {
    [
        (header::CONTENT_TYPE, "application/json"),
        (header::CACHE_CONTROL, "no-store"),
    ]
}
