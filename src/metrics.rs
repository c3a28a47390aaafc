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

/// A Partner in Trial: its Distributor, and whether the trial converts to Production by
/// itself at its end (`"true"`) or expires (`"false"`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TrialLabels {
    pub namespace: String,
    pub name: String,
    pub distributor: String,
    pub auto_upgrade: &'static str,
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
    /// When each trial ends, with whether it converts then: which trials end soon, and which
    /// of them will be billed.
    pub trial_end: Family<TrialLabels, Gauge<f64, AtomicU64>>,
    /// The labels each Partner's trial end was last exported under, so a change (automatic
    /// upgrade turned off, say) or the trial's end removes the old series.
    trial_end_labels: std::sync::Mutex<std::collections::HashMap<PartnerLabels, TrialLabels>>,
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
        let mut metrics = Self {
            registry: Registry::with_prefix("partner_operator"),
            reconciliations: Family::default(),
            reconcile_errors: Family::default(),
            reconcile_duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.001, 2.0, 14))
            }),
            partners: Family::default(),
            billable_partners: Family::default(),
            seats: Family::default(),
            emails_sent: Family::default(),
            emails_failed: Family::default(),
            emails_rate_limited: Family::default(),
            emails_held: Family::default(),
            next_deadline: Family::default(),
            trial_end: Family::default(),
            trial_end_labels: Default::default(),
            emails_waiting: Gauge::default(),
            unreadable_partners: Gauge::default(),
            unreadable_distributors: Gauge::default(),
            activations: Counter::default(),
            activation_failures: Family::default(),
            activation_rate_limited: Family::default(),
            webhooks_delivered: Family::default(),
            webhook_attempts_failed: Family::default(),
            webhooks_abandoned: Family::default(),
            webhooks_pending: Family::default(),
            webhooks_oldest_pending_seconds: Family::default(),
            webhook_delivery_delay: Histogram::new(exponential_buckets(0.01, 2.0, 20)),
        };
        // The exposition lists the metrics in the order they are registered.
        metrics.register_reconciliations();
        metrics.register_partners();
        metrics.register_emails();
        metrics.register_backlog();
        metrics.register_activations();
        metrics.register_webhooks();
        metrics
    }

    /// Reconciliations per controller: how many, how many failed, how long they took.
    fn register_reconciliations(&mut self) {
        self.registry.register(
            "reconciliations",
            "Reconciliations run, per controller",
            self.reconciliations.clone(),
        );
        self.registry.register(
            "reconcile_errors",
            "Reconciliations that failed, per controller",
            self.reconcile_errors.clone(),
        );
        self.registry.register(
            "reconcile_duration_seconds",
            "Time a reconciliation took, per controller",
            self.reconcile_duration.clone(),
        );
    }

    /// The Partners per Distributor and level, and what is billed for them.
    fn register_partners(&mut self) {
        self.registry.register(
            "partners",
            "Partners per distributor and subscription level",
            self.partners.clone(),
        );
        self.registry.register(
            "billable_partners",
            "Partners in Production, billed to the distributor",
            self.billable_partners.clone(),
        );
        self.registry.register(
            "seats",
            "Production partners per distributor and SKU",
            self.seats.clone(),
        );
    }

    /// Emails sent, failed and held back.
    fn register_emails(&mut self) {
        self.registry.register(
            "emails_sent",
            "Emails accepted by the SMTP server, per kind",
            self.emails_sent.clone(),
        );
        self.registry.register(
            "emails_failed",
            "Email attempts that failed, per kind",
            self.emails_failed.clone(),
        );
        self.registry.register(
            "emails_rate_limited",
            "Email attempts that found their Distributor's spec.email.rateLimit reached, per distributor",
            self.emails_rate_limited.clone(),
        );
        self.registry.register(
            "emails_held",
            "Emails newly held back, per reason: EmailRateLimited, RecipientNotAllowed, EmailRefused",
            self.emails_held.clone(),
        );
    }

    /// What waits: each Partner's next deadline, emails waiting for a mail slot, and the
    /// objects left alone because they cannot be read.
    fn register_backlog(&mut self) {
        self.registry.register(
            "partner_next_deadline_timestamp_seconds",
            "When the operator next acts on a Partner (notice, trial end, expiry), as a Unix timestamp",
            self.next_deadline.clone(),
        );
        self.registry.register(
            "partner_trial_end_timestamp_seconds",
            "When a Partner's trial ends, as a Unix timestamp, per distributor and whether it then converts to Production by itself",
            self.trial_end.clone(),
        );
        self.registry.register(
            "emails_waiting",
            "Partners with an email to send that wait for a free mail slot",
            self.emails_waiting.clone(),
        );
        self.registry.register(
            "unreadable_partners",
            "Partners whose stored body the operator cannot decode, and so leaves alone",
            self.unreadable_partners.clone(),
        );
        self.registry.register(
            "unreadable_distributors",
            "Distributors whose stored spec or status the operator cannot decode",
            self.unreadable_distributors.clone(),
        );
    }

    /// The activation service: tenants activated, requests refused.
    fn register_activations(&mut self) {
        self.registry.register(
            "activations",
            "Tenants activated through the activation link or API",
            self.activations.clone(),
        );
        self.registry.register(
            "activation_failures",
            "Activation requests refused, by reason",
            self.activation_failures.clone(),
        );
        self.registry.register(
            "activation_rate_limited",
            "Activation service requests refused by a rate limit, per client address or tenant",
            self.activation_rate_limited.clone(),
        );
    }

    /// Webhook deliveries per endpoint, and how long events take to arrive.
    fn register_webhooks(&mut self) {
        self.registry.register(
            "webhooks_delivered",
            "Webhook events an endpoint accepted, per distributor and endpoint",
            self.webhooks_delivered.clone(),
        );
        self.registry.register(
            "webhook_attempts_failed",
            "Webhook delivery attempts that failed (retried with backoff), per distributor and endpoint",
            self.webhook_attempts_failed.clone(),
        );
        self.registry.register(
            "webhooks_abandoned",
            "Webhook events given up on after failing for spec.webhooks.retryHours, per distributor and endpoint",
            self.webhooks_abandoned.clone(),
        );
        self.registry.register(
            "webhooks_pending",
            "Webhook events recorded that an endpoint does not have yet",
            self.webhooks_pending.clone(),
        );
        self.registry.register(
            "webhooks_oldest_pending_seconds",
            "Age of the oldest webhook event an endpoint does not have yet",
            self.webhooks_oldest_pending_seconds.clone(),
        );
        self.registry.register(
            "webhook_delivery_delay_seconds",
            "From a lifecycle transition to the delivery of its webhook event",
            self.webhook_delivery_delay.clone(),
        );
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

    /// Exports the end of `namespace`/`name`'s trial (`None`: it is not in Trial), removing the
    /// series it had under other labels.
    pub fn set_trial_end(
        &self,
        namespace: &str,
        name: &str,
        trial: Option<(&str, bool, DateTime<Utc>)>,
    ) {
        let partner = PartnerLabels {
            namespace: namespace.to_string(),
            name: name.to_string(),
        };
        let mut exported = self
            .trial_end_labels
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let labels = trial.map(|(distributor, auto_upgrade, _)| TrialLabels {
            namespace: namespace.to_string(),
            name: name.to_string(),
            distributor: distributor.to_string(),
            auto_upgrade: if auto_upgrade { "true" } else { "false" },
        });
        if let Some(before) = exported.get(&partner)
            && Some(before) != labels.as_ref()
        {
            self.trial_end.remove(before);
        }
        match (labels, trial) {
            (Some(labels), Some((_, _, at))) => {
                self.trial_end
                    .get_or_create(&labels)
                    .set(at.timestamp_millis() as f64 / 1000.0);
                exported.insert(partner, labels);
            }
            _ => {
                exported.remove(&partner);
            }
        }
    }

    /// Metrics with one series in every family, so that the exposition, which leaves out a
    /// family until it has a series, names every metric the operator can serve: what the
    /// chart's dashboard and alerting rules are checked against. A family missing here makes
    /// a query that names it fail that check, never pass it wrongly.
    #[cfg(any(test, feature = "testing"))]
    pub fn with_a_series_each() -> Self {
        let metrics = Self::new();
        metrics.observe_reconcile("partner", Duration::ZERO, true);
        metrics.set_next_deadline("ns", "partner", Some(DateTime::UNIX_EPOCH));
        metrics.set_trial_end("ns", "partner", Some(("d", true, DateTime::UNIX_EPOCH)));
        let (distributor, sku) = ("d".to_string(), "sku".to_string());
        let level = LevelLabels {
            distributor: distributor.clone(),
            level: "Trial".into(),
        };
        metrics.partners.get_or_create(&level).set(0);
        let by_distributor = DistributorLabels {
            distributor: distributor.clone(),
        };
        metrics
            .billable_partners
            .get_or_create(&by_distributor)
            .set(0);
        metrics
            .emails_rate_limited
            .get_or_create(&by_distributor)
            .inc();
        let seat = SeatLabels {
            distributor: distributor.clone(),
            sku,
        };
        metrics.seats.get_or_create(&seat).set(0);
        metrics
            .emails_sent
            .get_or_create(&EmailLabels { kind: "activation" })
            .inc();
        metrics
            .emails_failed
            .get_or_create(&EmailLabels { kind: "activation" })
            .inc();
        metrics
            .emails_held
            .get_or_create(&ReasonLabels {
                reason: "EmailRefused",
            })
            .inc();
        metrics
            .activation_failures
            .get_or_create(&ActivationFailureLabels { reason: "unknown" })
            .inc();
        metrics
            .activation_rate_limited
            .get_or_create(&RateLimitLabels { limit: "client" })
            .inc();
        let endpoint = EndpointLabels {
            distributor,
            endpoint: "e".into(),
        };
        metrics.webhooks_delivered.get_or_create(&endpoint).inc();
        metrics
            .webhook_attempts_failed
            .get_or_create(&endpoint)
            .inc();
        metrics.webhooks_abandoned.get_or_create(&endpoint).inc();
        metrics.webhooks_pending.get_or_create(&endpoint).set(0);
        metrics
            .webhooks_oldest_pending_seconds
            .get_or_create(&endpoint)
            .set(0.0);
        metrics
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
#[path = "metrics_tests.rs"]
mod tests;
