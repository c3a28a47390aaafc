//! The activation service: the emailed link lands here.
//!
//! - `GET <base>?tenant=<id>&token=<token>` (`/activate` or `/`) shows a page naming the
//!   organization and the distributor with one Activate button. It changes nothing: mail
//!   scanners fetch links before people click them, and must not use up a single-use token.
//! - `POST` to the same URL activates, and shows the outcome.
//! - `POST /v1/activations` with `{"tenant": "<id>", "token": "<token>"}` is the same for a
//!   distributor's portal: 200 activated now, 409 already activated, 410 expired or superseded,
//!   404 unknown, 429 rate limited, each with a JSON body that says so.
//!
//! Exactly once: the activation is recorded first in the tenant's `activation` Secret, by a merge
//! patch with a resourceVersion precondition, so of two requests (on one replica or two) that read
//! the same Secret only one writes; the other reads again and finds it activated. Then
//! `status.activation.activatedAt` is written on the Partner by server-side apply under this
//! service's field manager ([`FIELD_MANAGER`]), which the reconciler's own status writes neither
//! apply nor remove ([`SERVICE_STATUS_FIELDS`]); the reconciler then sets the `Activated`
//! condition, records the Event and emails the distributor; last, the Secret is marked
//! (`activatedAtRecorded`). Should the process stop between the two writes, the status is
//! written by the next request with a token of that tenant, and by every replica at its start
//! ([`Service::finish_recorded`]: one paginated list of the `activation` Secrets by name, and a
//! Partner read only for an activation not marked recorded).
//!
//! What an answer reveals: an unknown tenant id, a malformed request and a wrong token get the
//! same 404; only a token of the tenant learns more. Tokens never reach a log line (the access
//! log names the path without its query), an error or a metric.

pub mod check;
pub mod limiter;
pub mod page;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use tracing::{info, warn};

use self::check::{Stored, Verdict};
use self::limiter::Limiter;
use self::page::Page;
use crate::api::{Distributor, Partner};
use crate::clock::Clock;
use crate::metrics::{ActivationFailureLabels, Metrics, RateLimitLabels};
use crate::tenant::{
    ACTIVATION, OWNER_UID_LABEL, PARTNER_NAME_LABEL, PARTNER_NAMESPACE_LABEL, TENANT_ID_LABEL,
    tenant_namespace_of,
};

/// The field manager of the activation service's writes (the Secret's `activatedAt`, the
/// Partner's `status.activation.activatedAt`).
pub const FIELD_MANAGER: &str = "partner-operator-activation";

/// The Partner status fields this service owns: the reconciler leaves them alone.
pub const SERVICE_STATUS_FIELDS: &[&[&str]] = &[&["activation", "activatedAt"]];

/// How the service runs.
#[derive(Clone, Debug)]
pub struct ServiceOptions {
    /// Where it listens (plain HTTP; TLS terminates at the ingress).
    pub addr: SocketAddr,
    /// Take the client's address from the last `X-Forwarded-For` entry (set by the ingress in
    /// front of the service) rather than from the connection. Only behind a proxy that sets it:
    /// otherwise a client could pick its own address and escape the per-client limit.
    pub trust_forwarded_for: bool,
    /// Requests a minute per client address (burst of as many).
    pub per_client_per_minute: u32,
    /// Requests a minute per tenant id (burst of as many).
    pub per_tenant_per_minute: u32,
}

impl ServiceOptions {
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            trust_forwarded_for: false,
            per_client_per_minute: 30,
            per_tenant_per_minute: 10,
        }
    }
}

/// The service's state, shared by its handlers.
pub struct Service {
    client: Client,
    clock: Clock,
    metrics: Arc<Metrics>,
    trust_forwarded_for: bool,
    per_client: Limiter<IpAddr>,
    per_tenant: Limiter<String>,
}

impl Service {
    pub fn new(
        client: Client,
        clock: Clock,
        metrics: Arc<Metrics>,
        options: &ServiceOptions,
    ) -> Self {
        Self {
            client,
            clock,
            metrics,
            trust_forwarded_for: options.trust_forwarded_for,
            per_client: Limiter::new(options.per_client_per_minute),
            per_tenant: Limiter::new(options.per_tenant_per_minute),
        }
    }
}

/// The routes: the link (`/activate`, `/`), the API and `/healthz`.
pub fn router(service: Arc<Service>) -> Router {
    Router::new()
        .route("/", get(link).post(link))
        .route("/activate", get(link).post(link))
        .route("/v1/activations", post(api))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(service)
}

/// Serves the activation service on `listener` until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    service: Arc<Service>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router(service).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// What a request came to.
#[derive(Clone, Debug, PartialEq)]
enum Outcome {
    Activated(Names, DateTime<Utc>),
    AlreadyActivated(Names, DateTime<Utc>),
    /// The page of a link that may activate (GET only).
    MayActivate(Names, Option<DateTime<Utc>>),
    Expired(Names),
    Superseded(Names),
    Unknown,
    RateLimited(Duration),
    /// The API server failed; nothing was decided.
    Unavailable,
}

/// Who the page names: the partner's and the distributor's organizations.
#[derive(Clone, Debug, Default, PartialEq)]
struct Names {
    organization: String,
    distributor: String,
}

impl Outcome {
    fn status(&self) -> StatusCode {
        match self {
            Self::Activated(..) | Self::MayActivate(..) => StatusCode::OK,
            Self::AlreadyActivated(..) => StatusCode::CONFLICT,
            Self::Expired(_) | Self::Superseded(_) => StatusCode::GONE,
            Self::Unknown => StatusCode::NOT_FOUND,
            Self::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The machine-readable word for it (JSON `status`, the page's `data-outcome`).
    fn word(&self) -> &'static str {
        match self {
            Self::Activated(..) => "activated",
            Self::AlreadyActivated(..) => "already-activated",
            Self::MayActivate(..) => "valid",
            Self::Expired(_) => "expired",
            Self::Superseded(_) => "superseded",
            Self::Unknown => "unknown",
            Self::RateLimited(_) => "rate-limited",
            Self::Unavailable => "unavailable",
        }
    }

    /// The failure reason counted in `activation_failures`, for a refused POST.
    fn failure(&self) -> Option<&'static str> {
        match self {
            Self::Activated(..) | Self::MayActivate(..) | Self::RateLimited(_) => None,
            Self::AlreadyActivated(..) => Some("already_activated"),
            Self::Expired(_) => Some("expired"),
            Self::Superseded(_) => Some("superseded"),
            Self::Unknown => Some("unknown"),
            Self::Unavailable => Some("error"),
        }
    }

    fn message(&self) -> String {
        match self {
            Self::Activated(..) => "the tenant is activated".into(),
            Self::AlreadyActivated(_, at) => {
                format!("the tenant was activated already, at {}", rfc3339(*at))
            }
            Self::MayActivate(..) => "the link is valid: POST to it to activate".into(),
            Self::Expired(_) => {
                "the activation link has expired: ask the distributor for a new one".into()
            }
            Self::Superseded(_) => {
                "a newer activation link replaced this one: use the link of the most recent \
                 activation email"
                    .into()
            }
            Self::Unknown => "no tenant with this id and token".into(),
            Self::RateLimited(wait) => format!(
                "too many requests: try again in {} seconds",
                wait.as_secs().max(1)
            ),
            Self::Unavailable => "the service cannot decide now: try again shortly".into(),
        }
    }

    fn page(&self) -> Page {
        let (title, paragraphs, form) = match self {
            Self::MayActivate(n, expires) => (
                "Activate your tenant".to_string(),
                vec![
                    format!(
                        "{} is ready to activate its tenant with {}.",
                        n.organization, n.distributor
                    ),
                    match expires {
                        Some(at) => format!(
                            "This link works once, until {}. Nothing changes until you press \
                             Activate.",
                            instant(*at)
                        ),
                        None => {
                            "This link works once. Nothing changes until you press Activate.".into()
                        }
                    },
                ],
                true,
            ),
            Self::Activated(n, _) => (
                "Tenant activated".into(),
                vec![format!(
                    "{} activated its tenant with {}. You can close this page.",
                    n.organization, n.distributor
                )],
                false,
            ),
            Self::AlreadyActivated(n, at) => (
                "Already activated".into(),
                vec![format!(
                    "The tenant of {} with {} was activated on {}.",
                    n.organization,
                    n.distributor,
                    instant(*at)
                )],
                false,
            ),
            Self::Expired(n) => (
                "This link has expired".into(),
                vec![format!("Ask {} for a new activation link.", n.distributor)],
                false,
            ),
            Self::Superseded(n) => (
                "This link was replaced".into(),
                vec![format!(
                    "{} sent a newer activation link: use the one in the most recent email.",
                    n.distributor
                )],
                false,
            ),
            Self::Unknown => (
                "This link is not valid".into(),
                vec!["Check that you opened the whole link from the activation email.".into()],
                false,
            ),
            Self::RateLimited(_) => (
                "Too many attempts".into(),
                vec!["Wait a minute, then try again.".into()],
                false,
            ),
            Self::Unavailable => (
                "Please try again".into(),
                vec!["The activation service cannot answer now. Try again in a minute.".into()],
                false,
            ),
        };
        Page {
            outcome: self.word(),
            title,
            paragraphs,
            form,
        }
    }
}

/// An instant as Kubernetes writes one: `2027-03-01T09:00:00Z`.
fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// An instant as the emails tell it: `12 December 2026 at 20:48 UTC`.
fn instant(at: DateTime<Utc>) -> String {
    at.format("%-d %B %Y at %H:%M UTC").to_string()
}

/// The emailed link: GET shows the page, POST activates.
async fn link(
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
    let mut response = (outcome.status(), page_headers(), outcome.page().render()).into_response();
    retry_after(&mut response, &outcome);
    response
}

/// `POST /v1/activations`.
async fn api(
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
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
        ),
    ]
}

fn json_headers() -> [(header::HeaderName, &'static str); 2] {
    [
        (header::CONTENT_TYPE, "application/json"),
        (header::CACHE_CONTROL, "no-store"),
    ]
}

/// A tenant as found in the cluster for a request.
struct Found {
    secret: Secret,
    partner: Partner,
}

impl Service {
    /// The client's address: the connection's, or behind a trusted proxy the last
    /// `X-Forwarded-For` entry (the one that proxy added).
    fn client_address(&self, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
        if self.trust_forwarded_for
            && let Some(forwarded) = headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .filter_map(|entry| entry.trim().parse::<IpAddr>().ok())
                .next_back()
        {
            return forwarded;
        }
        peer.ip()
    }

    fn count(&self, outcome: &Outcome, commit: bool) {
        match outcome {
            Outcome::Activated(..) => {
                self.metrics.activations.inc();
            }
            Outcome::RateLimited(_) => {}
            other if commit => {
                if let Some(reason) = other.failure() {
                    self.metrics
                        .activation_failures
                        .get_or_create(&ActivationFailureLabels { reason })
                        .inc();
                }
            }
            _ => {}
        }
    }

    fn limited(&self, client: IpAddr, tenant: &str) -> Option<Duration> {
        let now = Instant::now();
        if let Err(wait) = self.per_client.take(&client, now) {
            self.metrics
                .activation_rate_limited
                .get_or_create(&RateLimitLabels { limit: "client" })
                .inc();
            return Some(wait);
        }
        if let Err(wait) = self.per_tenant.take(&tenant.to_string(), now) {
            self.metrics
                .activation_rate_limited
                .get_or_create(&RateLimitLabels { limit: "tenant" })
                .inc();
            return Some(wait);
        }
        None
    }

    /// Judges the request and, with `commit`, activates.
    async fn decide(&self, client: IpAddr, tenant: &str, token: &str, commit: bool) -> Outcome {
        if let Some(wait) = self.limited(client, tenant) {
            return Outcome::RateLimited(wait);
        }
        if !check::is_tenant_id(tenant) || !check::is_token(token) {
            return Outcome::Unknown;
        }
        // A conflict means another request wrote the Secret meanwhile: judge again.
        for _ in 0..5 {
            match self.attempt(tenant, token, commit).await {
                Ok(Some(outcome)) => return outcome,
                Ok(None) => continue,
                Err(err) => {
                    warn!(error = %err, "activation request: the API server failed");
                    return Outcome::Unavailable;
                }
            }
        }
        Outcome::Unavailable
    }

    /// One try: `None` when the Secret changed under it.
    async fn attempt(
        &self,
        tenant: &str,
        token: &str,
        commit: bool,
    ) -> kube::Result<Option<Outcome>> {
        let Some(found) = self.find(tenant).await? else {
            return Ok(Some(Outcome::Unknown));
        };
        let stored = Stored::from_data(&found.secret.data.clone().unwrap_or_default());
        let recorded = found
            .partner
            .status
            .as_ref()
            .and_then(|s| s.activation.as_ref())
            .and_then(|a| a.activated_at);
        let now = self.clock.timestamp();
        let verdict = check::judge(&stored, recorded, token, now);
        if verdict == Verdict::Unknown {
            return Ok(Some(Outcome::Unknown));
        }
        let names = self.names(&found.partner).await;
        Ok(Some(match verdict {
            Verdict::Unknown => Outcome::Unknown,
            Verdict::Expired => Outcome::Expired(names),
            Verdict::Superseded => Outcome::Superseded(names),
            Verdict::AlreadyActivated(at) => {
                if recorded.is_none() {
                    // Recorded in the Secret, not yet on the Partner: finish what was begun.
                    self.record_status(&found.partner, at).await?;
                    self.mark_recorded(&found.secret).await?;
                }
                Outcome::AlreadyActivated(names, at)
            }
            Verdict::Valid if !commit => Outcome::MayActivate(names, stored.expires_at),
            Verdict::Valid => {
                if !self.record_secret(&found.secret, now).await? {
                    return Ok(None);
                }
                info!(
                    partner = %kube::runtime::reflector::ObjectRef::from_obj(&found.partner),
                    "tenant activated"
                );
                let recorded = match self.record_status(&found.partner, now).await {
                    Ok(()) => self.mark_recorded(&found.secret).await,
                    Err(err) => Err(err),
                };
                if let Err(err) = recorded {
                    // The Secret holds it: the next request with this token, or the next start,
                    // writes it.
                    warn!(error = %err, "activation recorded in the tenant, not yet on the Partner");
                }
                Outcome::Activated(names, now)
            }
        }))
    }

    /// The tenant with id `tenant`: its namespace (by the tenant-id label, owned by a Partner),
    /// its `activation` Secret, and the Partner whose tenant it is (uid, name and tenant id all
    /// agreeing). `None` when any of that is missing.
    async fn find(&self, tenant: &str) -> kube::Result<Option<Found>> {
        let namespaces = Api::<Namespace>::all(self.client.clone())
            .list(&ListParams::default().labels(&format!("{TENANT_ID_LABEL}={tenant}")))
            .await?;
        for ns in namespaces.items {
            if ns.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let labels = ns.labels();
            let annotations = ns.annotations();
            let (Some(owner), Some(partner_ns), Some(partner_name)) = (
                labels.get(OWNER_UID_LABEL),
                annotations.get(PARTNER_NAMESPACE_LABEL),
                annotations.get(PARTNER_NAME_LABEL),
            ) else {
                continue;
            };
            let partner = match Api::<Partner>::namespaced(self.client.clone(), partner_ns)
                .get_status(partner_name)
                .await
            {
                Ok(partner) => partner,
                Err(kube::Error::Api(status)) if status.code == 404 => continue,
                Err(err) => return Err(err),
            };
            let tenant_id = partner
                .status
                .as_ref()
                .and_then(|s| s.tenant.as_ref())
                .map(|t| t.id.as_str());
            if partner.uid().as_ref() != Some(owner)
                || tenant_namespace_of(&partner) != ns.name_any()
                || tenant_id != Some(tenant)
            {
                continue;
            }
            let Some(secret) = Api::<Secret>::namespaced(self.client.clone(), &ns.name_any())
                .get_opt(ACTIVATION)
                .await?
            else {
                continue;
            };
            return Ok(Some(Found { secret, partner }));
        }
        Ok(None)
    }

    /// The organizations a page names (the distributor's by its name when it cannot be read).
    async fn names(&self, partner: &Partner) -> Names {
        let name = &partner.spec.distributor_ref.name;
        // A list by name: the operator's role lists and watches Distributors, and gets none.
        let distributor = Api::<Distributor>::all(self.client.clone())
            .list(&ListParams::default().fields(&format!("metadata.name={name}")))
            .await
            .ok()
            .and_then(|list| list.items.into_iter().next())
            .map(|d| d.spec.organization_name)
            .unwrap_or_else(|| name.clone());
        Names {
            organization: partner.spec.organization_name.clone(),
            distributor,
        }
    }

    /// Writes `activatedAt` into the Secret if it is still the one judged: whether it won.
    async fn record_secret(&self, secret: &Secret, at: DateTime<Utc>) -> kube::Result<bool> {
        let value = base64::engine::general_purpose::STANDARD.encode(rfc3339(at));
        let patch = json!({
            "metadata": {"resourceVersion": secret.resource_version()},
            "data": {check::ACTIVATED_AT: value},
        });
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..Default::default()
        };
        let namespace = secret.namespace().unwrap_or_default();
        match Api::<Secret>::namespaced(self.client.clone(), &namespace)
            .patch(ACTIVATION, &params, &Patch::Merge(patch))
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// Marks the activation in `secret`'s tenant as recorded on the Partner too.
    async fn mark_recorded(&self, secret: &Secret) -> kube::Result<()> {
        let value = base64::engine::general_purpose::STANDARD.encode("true");
        let patch = json!({"data": {check::ACTIVATION_RECORDED: value}});
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..Default::default()
        };
        Api::<Secret>::namespaced(self.client.clone(), &secret.namespace().unwrap_or_default())
            .patch(ACTIVATION, &params, &Patch::Merge(patch))
            .await
            .map(drop)
    }

    /// Finishes every activation recorded in a tenant's `activation` Secret but not marked
    /// recorded on its Partner (a process that stopped between the two writes): one paginated
    /// list of those Secrets (by name, with the tenant ownership label); a Partner is read only
    /// for an activation not marked. Returns how many it finished.
    pub async fn finish_recorded(&self) -> kube::Result<usize> {
        let api = Api::<Secret>::all(self.client.clone());
        let mut params = ListParams::default()
            .fields(&format!("metadata.name={ACTIVATION}"))
            .labels(OWNER_UID_LABEL)
            .limit(100);
        let mut finished = 0;
        loop {
            let page = api.list(&params).await?;
            for secret in &page.items {
                if self.finish(secret).await? {
                    finished += 1;
                }
            }
            match page.metadata.continue_ {
                Some(token) if !token.is_empty() => params = params.continue_token(&token),
                _ => return Ok(finished),
            }
        }
    }

    /// Finishes the activation in `secret`, if it holds one not marked recorded.
    async fn finish(&self, secret: &Secret) -> kube::Result<bool> {
        let data = secret.data.clone().unwrap_or_default();
        let Some(at) = Stored::from_data(&data).activated_at else {
            return Ok(false);
        };
        if data.contains_key(check::ACTIVATION_RECORDED) {
            return Ok(false);
        }
        let annotations = secret.annotations();
        let (Some(owner), Some(namespace), Some(name)) = (
            secret.labels().get(OWNER_UID_LABEL),
            annotations.get(PARTNER_NAMESPACE_LABEL),
            annotations.get(PARTNER_NAME_LABEL),
        ) else {
            return Ok(false);
        };
        let partner = match Api::<Partner>::namespaced(self.client.clone(), namespace)
            .get_status(name)
            .await
        {
            Ok(partner) => partner,
            Err(kube::Error::Api(status)) if status.code == 404 => return Ok(false),
            Err(err) => return Err(err),
        };
        if partner.uid().as_ref() != Some(owner)
            || secret.namespace().as_deref() != Some(tenant_namespace_of(&partner).as_str())
        {
            return Ok(false);
        }
        let recorded = partner
            .status
            .as_ref()
            .and_then(|s| s.activation.as_ref())
            .and_then(|a| a.activated_at);
        if recorded.is_none() {
            self.record_status(&partner, at).await?;
            info!(
                partner = %kube::runtime::reflector::ObjectRef::from_obj(&partner),
                "an activation recorded in the tenant is now recorded on the Partner"
            );
        }
        self.mark_recorded(secret).await?;
        Ok(true)
    }

    /// Writes `status.activation.activatedAt` on the Partner, under this service's field
    /// manager; retried a few times, as it completes an activation already recorded.
    async fn record_status(&self, partner: &Partner, at: DateTime<Utc>) -> kube::Result<()> {
        let api = Api::<Partner>::namespaced(
            self.client.clone(),
            &partner.namespace().unwrap_or_default(),
        );
        let apply = json!({
            "apiVersion": "partner-operator.io/v1alpha1",
            "kind": "Partner",
            "metadata": {"name": partner.name_any()},
            "status": {"activation": {"activatedAt": rfc3339(at)}},
        });
        let mut wait = Duration::from_millis(50);
        let mut attempt = 0;
        loop {
            attempt += 1;
            match api
                .patch_status(
                    &partner.name_any(),
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(&apply),
                )
                .await
            {
                Ok(_) => return Ok(()),
                Err(err) if attempt >= 5 => return Err(err),
                Err(_) => {
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                }
            }
        }
    }
}
