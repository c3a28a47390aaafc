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
//! apply nor remove ([`crate::status::Writer`]); the reconciler then sets the `Activated`
//! condition, records the Event and emails the distributor; last, the Secret is marked
//! (`activatedAtRecorded`). Should the process stop between the two writes, the status is
//! written by the next request with a token of that tenant, and by every replica at its start
//! ([`Service::finish_recorded`]: one paginated list of the `activation` Secrets by name, and a
//! Partner read only for an activation not marked recorded).
//!
//! What an answer reveals: an unknown tenant id, a malformed request and a wrong token get the
//! same 404, at the same time ([`UNKNOWN_ANSWER_AFTER`]); only a token of the tenant learns more.
//! Tenants are looked up in a directory kept by a watch ([`directory`]), never by a list per
//! request.
//!
//! Limits: anyone may knock, so the server bounds connections, head bytes and time
//! ([`server`]), the router bounds the query and the body ([`MAX_QUERY_BYTES`],
//! [`MAX_BODY_BYTES`]), and identifiers are parsed into fixed-size values before any map sees
//! them. Only failures are counted ([`limiter`]): per client (after [`client::TrustedProxies`]),
//! and per tenant for well-formed tokens only; a client over its budget waits, and a tenant over
//! its budget still lets its current token through. Tokens never reach a log line (the access
//! log names the path without its query), an error or a metric.

pub mod check;
pub mod client;
pub mod directory;
mod handlers;
pub mod limiter;
mod outcome;
pub mod page;
mod record;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};
use sha2::{Digest, Sha256};
use tracing::{info, warn};
use uuid::Uuid;

use self::check::{Stored, Verdict};
use self::client::TrustedProxies;
use self::directory::{Directory, Tenant};
use self::limiter::Limiter;
use self::outcome::Outcome;
use crate::api::Partner;
use crate::clock::Clock;
use crate::metrics::{ActivationFailureLabels, Metrics, RateLimitLabels};
use crate::tenant::{ACTIVATION, tenant_namespace_of};

/// The field manager of the activation service's writes (the Secret's `activatedAt`, the
/// Partner's `status.activation.activatedAt`).
pub const FIELD_MANAGER: &str = crate::status::ACTIVATION_SERVICE_MANAGER;

/// A request's body: `{"tenant": <36>, "token": <64>}` takes about 120 bytes.
pub const MAX_BODY_BYTES: usize = 4096;
/// A request's query: `tenant=<36>&token=<64>` takes about 110 bytes.
pub const MAX_QUERY_BYTES: usize = 1024;
/// Every "no such tenant or token" is answered this long after the request arrived, whether the
/// tenant exists (its Secret read) or not (nothing read), so its time tells nothing.
pub const UNKNOWN_ANSWER_AFTER: Duration = Duration::from_millis(150);

/// How the service runs.
#[derive(Clone, Debug)]
pub struct ServiceOptions {
    /// Where it listens (plain HTTP; TLS terminates at the ingress).
    pub addr: SocketAddr,
    /// The proxies whose `X-Forwarded-For` names the client (the ingress controller's or
    /// gateway's addresses); from any other peer the header is ignored.
    pub trusted_proxies: TrustedProxies,
    /// Failed attempts a minute per client address (burst of as many).
    pub per_client_per_minute: u32,
    /// Failed attempts a minute per tenant id (burst of as many), with well-formed tokens.
    pub per_tenant_per_minute: u32,
    /// Connections served at once (at most the descriptor limit minus a reserve).
    pub max_connections: usize,
}

impl ServiceOptions {
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            trusted_proxies: TrustedProxies::default(),
            per_client_per_minute: 30,
            per_tenant_per_minute: 10,
            max_connections: 512,
        }
    }
}

/// The service's state, shared by its handlers.
pub struct Service {
    client: Client,
    clock: Clock,
    metrics: Arc<Metrics>,
    trusted_proxies: TrustedProxies,
    per_client: Limiter<IpAddr>,
    per_tenant: Limiter<Uuid>,
    directory: Directory,
    /// A tenant is believed only with the operator's proof that it made it (see
    /// [`crate::tenant::proven`]): a namespace labelled by anyone else, with an `activation`
    /// Secret of their own, activates nobody's Partner.
    ownership: crate::tenant::OwnershipKey,
    max_connections: usize,
    /// The page's template: built in, or `activation-page.html` in `--templates-dir`.
    page: page::PageTemplate,
}

impl Service {
    pub fn new(
        client: Client,
        clock: Clock,
        metrics: Arc<Metrics>,
        ownership: crate::tenant::OwnershipKey,
        options: &ServiceOptions,
    ) -> Self {
        Self {
            client,
            clock,
            metrics,
            trusted_proxies: options.trusted_proxies.clone(),
            per_client: Limiter::new(options.per_client_per_minute),
            per_tenant: Limiter::new(options.per_tenant_per_minute),
            directory: Directory::default(),
            ownership,
            max_connections: options.max_connections,
            page: page::PageTemplate::default(),
        }
    }

    /// Serves the page from `template` rather than the built-in one.
    pub fn with_page(mut self, template: page::PageTemplate) -> Self {
        self.page = template;
        self
    }

    /// Keeps the tenant directory current; run it beside [`serve`].
    pub fn watch_tenants(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        self.directory.clone().watch(self.client.clone())
    }
}

/// The routes: the link (`/activate`, `/`), the API and `/healthz`, with the query and the body
/// capped and a request's body and answer bounded in time.
pub fn router(service: Arc<Service>) -> Router {
    Router::new()
        .route("/", get(handlers::link).post(handlers::link))
        .route("/activate", get(handlers::link).post(handlers::link))
        .route("/v1/activations", post(handlers::api))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(service)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn(cap_query))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            crate::bounded_http::REQUEST_TIMEOUT,
        ))
}

/// 414 for a query longer than [`MAX_QUERY_BYTES`], before anything parses it.
async fn cap_query(request: Request, next: Next) -> Response {
    if request.uri().query().map_or(0, str::len) > MAX_QUERY_BYTES {
        return (StatusCode::URI_TOO_LONG, "the query is too long\n").into_response();
    }
    next.run(request).await
}

/// Serves the activation service on `listener` until `shutdown`, at most
/// [`crate::bounded_http::connection_cap`] connections at once.
pub async fn serve(
    listener: tokio::net::TcpListener,
    service: Arc<Service>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let cap = crate::bounded_http::connection_cap(
        service.max_connections,
        crate::bounded_http::descriptor_limit(),
    );
    info!(connections = cap, "activation service: connection cap");
    crate::bounded_http::serve(listener, router(service), cap, shutdown).await
}

/// A request's tenant id and token, parsed: nothing else reaches a map or the API server.
struct Attempt<'a> {
    tenant: Uuid,
    token: &'a str,
    hash: [u8; 32],
}

impl<'a> Attempt<'a> {
    fn parse(tenant: &str, token: &'a str) -> Option<Self> {
        if !check::is_tenant_id(tenant) || !check::is_token(token) {
            return None;
        }
        Some(Self {
            tenant: Uuid::parse_str(tenant).ok()?,
            token,
            hash: Sha256::digest(token.as_bytes()).into(),
        })
    }
}

/// A tenant as found in the cluster for a request.
struct Found {
    secret: Secret,
    stored: Stored,
    partner: Partner,
}

impl Service {
    /// The client's address (see [`TrustedProxies::client`]).
    fn client_address(&self, peer: SocketAddr, headers: &axum::http::HeaderMap) -> IpAddr {
        self.trusted_proxies.client(peer.ip(), headers)
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

    fn rate_limited(&self, limit: &'static str, wait: Duration) -> Outcome {
        self.metrics
            .activation_rate_limited
            .get_or_create(&RateLimitLabels { limit })
            .inc();
        Outcome::RateLimited(wait)
    }

    /// Judges the request and, with `commit`, activates. Each attempt is taken from its
    /// client's budget and given back unless it failed; a client over its budget waits. Every
    /// "unknown" is answered [`UNKNOWN_ANSWER_AFTER`] the request arrived.
    async fn decide(&self, client: IpAddr, tenant: &str, token: &str, commit: bool) -> Outcome {
        let arrived = tokio::time::Instant::now();
        if let Err(wait) = self.per_client.take(&client, Instant::now()) {
            return self.rate_limited("client", wait);
        }
        let outcome = self.judge(tenant, token, commit).await;
        match outcome {
            Outcome::Unknown => tokio::time::sleep_until(arrived + UNKNOWN_ANSWER_AFTER).await,
            Outcome::RateLimited(_) => {}
            _ => self.per_client.refund(&client),
        }
        outcome
    }

    /// The outcome of a request whose client may try: a malformed request is unknown without a
    /// look anywhere; a well-formed one is taken from its tenant's budget (given back unless
    /// unknown), and a tenant over its budget lets only its current token through.
    async fn judge(&self, tenant: &str, token: &str, commit: bool) -> Outcome {
        let Some(attempt) = Attempt::parse(tenant, token) else {
            return Outcome::Unknown;
        };
        let taken = self.per_tenant.take(&attempt.tenant, Instant::now());
        if let Err(wait) = taken
            && !self.per_tenant.knows(&attempt.tenant, &attempt.hash)
        {
            return self.rate_limited("tenant", wait);
        }
        let outcome = self.try_attempt(&attempt, commit).await;
        if taken.is_ok() && outcome != Outcome::Unknown {
            self.per_tenant.refund(&attempt.tenant);
        }
        outcome
    }

    async fn try_attempt(&self, attempt: &Attempt<'_>, commit: bool) -> Outcome {
        if !self.directory.is_ready() {
            return Outcome::Unavailable;
        }
        // A conflict means another request wrote the Secret meanwhile: judge again.
        for _ in 0..5 {
            match self.attempt(attempt, commit).await {
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
    async fn attempt(&self, attempt: &Attempt<'_>, commit: bool) -> kube::Result<Option<Outcome>> {
        let Some(found) = self.find(attempt).await? else {
            return Ok(Some(Outcome::Unknown));
        };
        let stored = &found.stored;
        let recorded = found
            .partner
            .status
            .as_ref()
            .and_then(|s| s.activation.as_ref())
            .and_then(|a| a.activated_at);
        let now = self.clock.timestamp();
        let verdict = check::judge(stored, recorded, attempt.token, now);
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

    /// The tenant of `attempt` whose `activation` Secret knows its token (current or replaced),
    /// and the Partner whose tenant it is (the operator's ownership proof verifying, and uid,
    /// tenant namespace and tenant id all agreeing with the directory's namespace). `None` when
    /// any of that is missing: then at most the proven tenant's Secret was read.
    async fn find(&self, attempt: &Attempt<'_>) -> kube::Result<Option<Found>> {
        // Only namespaces carrying the operator's proof are read: a forgery filed under a
        // tenant's id costs no request and does not hide the tenant's own token.
        let tenants: Vec<_> = self
            .directory
            .get(&attempt.tenant)
            .into_iter()
            .filter(|tenant| self.proven(tenant))
            .collect();
        let only = tenants.len() == 1;
        for tenant in tenants {
            let Some(secret) = Api::<Secret>::namespaced(self.client.clone(), &tenant.namespace)
                .get_opt(ACTIVATION)
                .await?
            else {
                continue;
            };
            let stored = Stored::from_data(&secret.data.clone().unwrap_or_default());
            if only {
                self.per_tenant
                    .remember(&attempt.tenant, stored.token_sha256);
            }
            if check::judge(&stored, None, attempt.token, self.clock.timestamp())
                == Verdict::Unknown
            {
                continue;
            }
            if let Some(partner) = self.partner_of(&tenant, attempt.tenant).await? {
                return Ok(Some(Found {
                    secret,
                    stored,
                    partner,
                }));
            }
        }
        Ok(None)
    }

    /// Whether `tenant` carries the operator's proof that it is the tenant of the Partner its
    /// annotations name.
    fn proven(&self, tenant: &Tenant) -> bool {
        tenant.proof.as_deref().is_some_and(|proof| {
            self.ownership.verify(
                &tenant.partner_namespace,
                &tenant.partner_name,
                &tenant.namespace,
                proof,
            )
        })
    }

    /// The Partner `tenant` names, if it is the one whose tenant that namespace is.
    async fn partner_of(&self, tenant: &Tenant, id: Uuid) -> kube::Result<Option<Partner>> {
        let partner =
            match Api::<Partner>::namespaced(self.client.clone(), &tenant.partner_namespace)
                .get_status(&tenant.partner_name)
                .await
            {
                Ok(partner) => partner,
                Err(kube::Error::Api(status)) if status.code == 404 => return Ok(None),
                Err(err) => return Err(err),
            };
        // From the Partner's metadata, never from its status (which others may write).
        let tenant_id = Uuid::parse_str(&crate::tenant::tenant_id_of(&partner)).ok();
        let agrees = self.proven(tenant)
            && crate::tenant::tenant_owner_uid(&partner) == tenant.owner_uid
            && tenant_namespace_of(&partner) == tenant.namespace
            && tenant_id == Some(id);
        Ok(agrees.then_some(partner))
    }
}
