//! Prometheus metrics and the health endpoints (`/metrics`, `/healthz`, `/readyz`).
//!
//! Following cert-manager, deadlines are exposed as timestamps (seconds since the epoch), not as
//! durations: an alert is then a plain comparison with `time()`, and the series does not change
//! on every scrape.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use chrono::{DateTime, Utc};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabels {
    pub controller: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LevelLabels {
    pub distributor: String,
    pub level: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DistributorLabels {
    pub distributor: String,
}

/// One webhook endpoint of a Distributor.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabels {
    pub distributor: String,
    pub endpoint: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SeatLabels {
    pub distributor: String,
    pub sku: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EmailLabels {
    pub kind: &'static str,
}

/// Why an activation request was not carried out: `unknown`, `expired`, `superseded`,
/// `already_activated`, `malformed`, `error`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActivationFailureLabels {
    pub reason: &'static str,
}

/// Which limit refused a request: `client` or `tenant`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RateLimitLabels {
    pub limit: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartnerLabels {
    pub namespace: String,
    pub name: String,
}

/// Every metric the operator exports, registered once.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub reconciliations: Family<ControllerLabels, Counter>,
    pub reconcile_errors: Family<ControllerLabels, Counter>,
    pub reconcile_duration: Family<ControllerLabels, Histogram>,
    pub partners: Family<LevelLabels, Gauge>,
    pub billable_partners: Family<DistributorLabels, Gauge>,
    pub seats: Family<SeatLabels, Gauge>,
    pub emails_sent: Family<EmailLabels, Counter>,
    pub emails_failed: Family<EmailLabels, Counter>,
    /// Emails that found their Distributor's rate limit reached, per Distributor.
    pub emails_rate_limited: Family<DistributorLabels, Counter>,
    /// Emails newly held back, per reason (`EmailRateLimited`, `RecipientNotAllowed`,
    /// `EmailRefused`).
    pub emails_held: Family<ReasonLabels, Counter>,
    pub next_deadline: Family<PartnerLabels, Gauge<f64, AtomicU64>>,
    /// Partners with an email to send, waiting for a mail slot: above zero for long, email is
    /// what the operator is behind on.
    pub emails_waiting: Gauge,
    /// Partners whose stored body the operator cannot decode: each is left alone (nothing is
    /// provisioned, mailed, billed or deleted for it) and reported in a Warning Event.
    pub unreadable_partners: Gauge,
    /// Distributors whose stored body the operator cannot decode: one with an unreadable spec
    /// is left alone, its Partners held as they are; one with an unreadable status is read
    /// without it, and its status written anew.
    pub unreadable_distributors: Gauge,
    /// Tenants activated through the activation service.
    pub activations: Counter,
    /// Activation requests (POST) refused, by reason.
    pub activation_failures: Family<ActivationFailureLabels, Counter>,
    /// Requests to the activation service refused by a rate limit, per limit.
    pub activation_rate_limited: Family<RateLimitLabels, Counter>,
    /// Webhook events an endpoint accepted (2xx).
    pub webhooks_delivered: Family<EndpointLabels, Counter>,
    /// Webhook delivery attempts that failed (each is retried until `retryHours`).
    pub webhook_attempts_failed: Family<EndpointLabels, Counter>,
    /// Webhook events given up on for an endpoint.
    pub webhooks_abandoned: Family<EndpointLabels, Counter>,
    /// Webhook events recorded that an endpoint does not have yet.
    pub webhooks_pending: Family<EndpointLabels, Gauge>,
    /// How long ago the oldest of those happened.
    pub webhooks_oldest_pending_seconds: Family<EndpointLabels, Gauge<f64, AtomicU64>>,
    /// From a transition to its event's delivery.
    pub webhook_delivery_delay: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("partner_operator");
        let reconciliations = Family::default();
        registry.register(
            "reconciliations",
            "Reconciliations run, per controller",
            reconciliations.clone(),
        );
        let reconcile_errors = Family::default();
        registry.register(
            "reconcile_errors",
            "Reconciliations that failed, per controller",
            reconcile_errors.clone(),
        );
        let reconcile_duration =
            Family::<ControllerLabels, Histogram>::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.001, 2.0, 14))
            });
        registry.register(
            "reconcile_duration_seconds",
            "Time a reconciliation took, per controller",
            reconcile_duration.clone(),
        );
        let partners = Family::default();
        registry.register(
            "partners",
            "Partners per distributor and subscription level",
            partners.clone(),
        );
        let billable_partners = Family::default();
        registry.register(
            "billable_partners",
            "Partners in Production, billed to the distributor",
            billable_partners.clone(),
        );
        let seats = Family::default();
        registry.register(
            "seats",
            "Production partners per distributor and SKU",
            seats.clone(),
        );
        let emails_sent = Family::default();
        registry.register(
            "emails_sent",
            "Emails accepted by the SMTP server, per kind",
            emails_sent.clone(),
        );
        let emails_failed = Family::default();
        registry.register(
            "emails_failed",
            "Email attempts that failed, per kind",
            emails_failed.clone(),
        );
        let emails_rate_limited = Family::default();
        registry.register(
            "emails_rate_limited",
            "Email attempts that found their Distributor's spec.email.rateLimit reached, per distributor",
            emails_rate_limited.clone(),
        );
        let emails_held = Family::default();
        registry.register(
            "emails_held",
            "Emails newly held back, per reason: EmailRateLimited, RecipientNotAllowed, EmailRefused",
            emails_held.clone(),
        );
        let next_deadline = Family::default();
        registry.register(
            "partner_next_deadline_timestamp_seconds",
            "When the operator next acts on a Partner (notice, trial end, expiry), as a Unix timestamp",
            next_deadline.clone(),
        );
        let emails_waiting = Gauge::default();
        registry.register(
            "emails_waiting",
            "Partners with an email to send that wait for a free mail slot",
            emails_waiting.clone(),
        );
        let unreadable_partners = Gauge::default();
        registry.register(
            "unreadable_partners",
            "Partners whose stored body the operator cannot decode, and so leaves alone",
            unreadable_partners.clone(),
        );
        let unreadable_distributors = Gauge::default();
        registry.register(
            "unreadable_distributors",
            "Distributors whose stored spec or status the operator cannot decode",
            unreadable_distributors.clone(),
        );
        let activations = Counter::default();
        registry.register(
            "activations",
            "Tenants activated through the activation link or API",
            activations.clone(),
        );
        let activation_failures = Family::default();
        registry.register(
            "activation_failures",
            "Activation requests refused, by reason",
            activation_failures.clone(),
        );
        let activation_rate_limited = Family::default();
        registry.register(
            "activation_rate_limited",
            "Activation service requests refused by a rate limit, per client address or tenant",
            activation_rate_limited.clone(),
        );
        let webhooks_delivered = Family::default();
        registry.register(
            "webhooks_delivered",
            "Webhook events an endpoint accepted, per distributor and endpoint",
            webhooks_delivered.clone(),
        );
        let webhook_attempts_failed = Family::default();
        registry.register(
            "webhook_attempts_failed",
            "Webhook delivery attempts that failed (retried with backoff), per distributor and endpoint",
            webhook_attempts_failed.clone(),
        );
        let webhooks_abandoned = Family::default();
        registry.register(
            "webhooks_abandoned",
            "Webhook events given up on after failing for spec.webhooks.retryHours, per distributor and endpoint",
            webhooks_abandoned.clone(),
        );
        let webhooks_pending = Family::default();
        registry.register(
            "webhooks_pending",
            "Webhook events recorded that an endpoint does not have yet",
            webhooks_pending.clone(),
        );
        let webhooks_oldest_pending_seconds = Family::default();
        registry.register(
            "webhooks_oldest_pending_seconds",
            "Age of the oldest webhook event an endpoint does not have yet",
            webhooks_oldest_pending_seconds.clone(),
        );
        let webhook_delivery_delay = Histogram::new(exponential_buckets(0.01, 2.0, 20));
        registry.register(
            "webhook_delivery_delay_seconds",
            "From a lifecycle transition to the delivery of its webhook event",
            webhook_delivery_delay.clone(),
        );
        Self {
            registry,
            webhooks_delivered,
            webhook_attempts_failed,
            webhooks_abandoned,
            webhooks_pending,
            webhooks_oldest_pending_seconds,
            webhook_delivery_delay,
            activations,
            activation_failures,
            activation_rate_limited,
            reconciliations,
            reconcile_errors,
            reconcile_duration,
            partners,
            billable_partners,
            seats,
            emails_sent,
            emails_failed,
            emails_rate_limited,
            emails_held,
            next_deadline,
            emails_waiting,
            unreadable_partners,
            unreadable_distributors,
        }
    }

    /// Records one reconciliation of `controller` that took `elapsed` and failed or not.
    pub fn observe_reconcile(&self, controller: &'static str, elapsed: Duration, failed: bool) {
        let labels = ControllerLabels { controller };
        self.reconciliations.get_or_create(&labels).inc();
        self.reconcile_duration
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
        if failed {
            self.reconcile_errors.get_or_create(&labels).inc();
        }
    }

    /// Sets (or, with `None`, removes) a Partner's next deadline.
    pub fn set_next_deadline(&self, namespace: &str, name: &str, at: Option<DateTime<Utc>>) {
        let labels = PartnerLabels {
            namespace: namespace.to_string(),
            name: name.to_string(),
        };
        match at {
            Some(at) => {
                self.next_deadline
                    .get_or_create(&labels)
                    .set(at.timestamp_millis() as f64 / 1000.0);
            }
            None => {
                self.next_deadline.remove(&labels);
            }
        }
    }

    /// The metrics in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// What `/readyz` answers: without leader election, ready once the caches are filled; with it,
/// ready while standing by (healthy, able to take over) and, once leading, when the caches
/// are filled.
#[derive(Clone, Debug, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn set_ready(&self, ready: bool) {
        self.0.store(ready, Ordering::Release);
    }
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

#[derive(Clone)]
struct HttpState {
    metrics: Arc<Metrics>,
    readiness: Readiness,
}

/// The router serving `/metrics`, `/healthz` and `/readyz`.
pub fn router(metrics: Arc<Metrics>, readiness: Readiness) -> Router {
    Router::new()
        .route("/metrics", get(serve_metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(serve_readyz))
        .with_state(HttpState { metrics, readiness })
}

async fn serve_metrics(State(state): State<HttpState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
}

async fn serve_readyz(State(state): State<HttpState>) -> impl IntoResponse {
    if state.readiness.is_ready() {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "caches not synced")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_counters_and_deadlines() {
        let metrics = Metrics::new();
        metrics.observe_reconcile("partner", Duration::from_millis(3), false);
        metrics.observe_reconcile("partner", Duration::from_millis(3), true);
        let at = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        metrics.set_next_deadline("ns", "contoso", Some(at));
        let text = metrics.encode();
        assert!(
            text.contains(r#"partner_operator_reconciliations_total{controller="partner"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"partner_operator_reconcile_errors_total{controller="partner"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"partner_operator_partner_next_deadline_timestamp_seconds{namespace="ns",name="contoso"} 1800000000.0"#),
            "{text}"
        );
        metrics.set_next_deadline("ns", "contoso", None);
        assert!(!metrics.encode().contains("contoso"));
    }

    #[tokio::test]
    async fn readyz_follows_readiness() {
        let readiness = Readiness::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = router(Arc::new(Metrics::new()), readiness.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let status = |path: &'static str| async move {
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            stream
                .write_all(
                    format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                        .as_bytes(),
                )
                .await
                .unwrap();
            let mut response = String::new();
            stream.read_to_string(&mut response).await.unwrap();
            response.lines().next().unwrap().to_string()
        };
        assert!(status("/healthz").await.contains("200"));
        assert!(status("/readyz").await.contains("503"));
        readiness.set_ready(true);
        assert!(status("/readyz").await.contains("200"));
        assert!(status("/metrics").await.contains("200"));
    }
}
