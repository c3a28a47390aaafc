//! Webhooks: where a Distributor's systems (invoicing, CRM, ticketing) are told of each of its
//! partners' lifecycle events, and what a Partner's status records of the events not delivered
//! yet.
//!
//! Each event is a CloudEvent 1.0 (structured JSON) signed by the Standard Webhooks scheme; see
//! `docs/webhooks.md` for the events, their data and how to verify a delivery.

use chrono::{DateTime, Utc};
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// The webhook endpoints of a Distributor, and how long a delivery is retried.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WebhookPolicy {
    /// Up to 10 endpoints, each named once. Each gets every event (or those its `types` list)
    /// from the moment it is listed; an event recorded before is not sent to it. An endpoint
    /// removed from this list is sent nothing more: its undelivered events are dropped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub endpoints: Vec<WebhookEndpoint>,

    /// How long a delivery that fails is retried, in hours from its first failed attempt
    /// (1..168). Default 24. Until then the partner's later events wait behind it (per-partner
    /// order); after it, the event is dropped for that endpoint, with a Warning Event.
    #[serde(default = "default_retry_hours")]
    #[schemars(range(min = 1, max = 168))]
    pub retry_hours: u32,
}

impl Default for WebhookPolicy {
    fn default() -> Self {
        Self {
            endpoints: Vec::new(),
            retry_hours: default_retry_hours(),
        }
    }
}

impl WebhookPolicy {
    pub fn retry_for(&self) -> chrono::Duration {
        chrono::Duration::hours(i64::from(self.retry_hours))
    }

    pub fn endpoint(&self, name: &str) -> Option<&WebhookEndpoint> {
        self.endpoints.iter().find(|e| e.name == name)
    }
}

fn default_retry_hours() -> u32 {
    24
}

fn default_timeout_seconds() -> u32 {
    10
}

fn default_signing_key() -> String {
    "signingKey".into()
}

/// One receiver of a Distributor's events.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WebhookEndpoint {
    /// Names the endpoint in the status, Events and metrics: a DNS label (1..63 characters).
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = super::grammar::DNS_LABEL_PATTERN)
    )]
    pub name: String,

    /// Where events are POSTed: `https://`, or `http://` to a loopback address only
    /// (`127.0.0.1`, `[::1]`, `localhost`), without a user part or a fragment. Redirects are
    /// not followed. The operator connects only to public addresses (resolved at each
    /// connection), and to the networks its `--webhook-allow-private-networks` names; `http://`
    /// only to the latter.
    #[schemars(
        length(max = 2048),
        regex(
            pattern = r"^(https://[^\s#@\\/?]+|http://(127\.0\.0\.1|\[::1\]|localhost)(:[0-9]{1,5})?)(/[^\s#\\]*)?$"
        )
    )]
    pub url: String,

    /// The Secret holding the signing key, in the operator's own namespace
    /// (`--webhook-secrets-namespace`). It must be labelled
    /// `partner-operator.io/webhook-signing-key: "true"`, so that no other Secret there can be
    /// named, and annotated `partner-operator.io/distributor: <this Distributor's name>`, so
    /// that no other Distributor can sign with it. Its entry holds a Standard Webhooks key (`whsec_` and base64) or, while keys are
    /// rotated, several separated by spaces: each delivery carries a signature by each.
    pub signing_key_secret_ref: SecretKeyRef,

    /// Only these event types (unset: all of them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 20), extend("x-kubernetes-list-type" = "set"))]
    pub types: Option<Vec<WebhookEventType>>,

    /// How long one attempt may take, in seconds (1..60). Default 10.
    #[serde(default = "default_timeout_seconds")]
    #[schemars(range(min = 1, max = 60))]
    pub timeout_seconds: u32,
}

impl WebhookEndpoint {
    /// Whether this endpoint is sent events of `type_`.
    pub fn wants(&self, type_: WebhookEventType) -> bool {
        self.types
            .as_ref()
            .is_none_or(|types| types.contains(&type_))
    }
}

/// An entry of a Secret.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// The Secret's name.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = super::grammar::DNS_SUBDOMAIN_PATTERN)
    )]
    pub name: String,
    /// The entry in its `data`. Default `signingKey`.
    #[serde(default = "default_signing_key")]
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    pub key: String,
}

/// The events a Distributor's endpoints are sent: the CloudEvent `type` of each.
#[derive(
    Serialize,
    Deserialize,
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    schemars::JsonSchema,
)]
pub enum WebhookEventType {
    /// The tenant was provisioned; the trial (if any) starts.
    #[serde(rename = "io.partner-operator.partner.provisioned")]
    Provisioned,
    /// The partner activated its tenant through the emailed link.
    #[serde(rename = "io.partner-operator.partner.activated")]
    Activated,
    /// The trial-ending notice went out: the trial ends soon.
    #[serde(rename = "io.partner-operator.partner.trial-ending")]
    TrialEnding,
    /// The tenant entered Production (by hand, or automatically at the trial's end).
    #[serde(rename = "io.partner-operator.partner.converted")]
    Converted,
    /// An expired Production subscription was renewed.
    #[serde(rename = "io.partner-operator.partner.renewed")]
    Renewed,
    /// The trial or the Production subscription ended (or Production ended because the
    /// Partner is no longer bound to the Distributor).
    #[serde(rename = "io.partner-operator.partner.expired")]
    Expired,
    /// The Partner was deleted.
    #[serde(rename = "io.partner-operator.partner.deleted")]
    Deleted,
    /// A billing period started.
    #[serde(rename = "io.partner-operator.billing.period-started")]
    BillingPeriodStarted,
    /// A billing period ended.
    #[serde(rename = "io.partner-operator.billing.period-ended")]
    BillingPeriodEnded,
}

impl WebhookEventType {
    pub const ALL: [Self; 9] = [
        Self::Provisioned,
        Self::Activated,
        Self::TrialEnding,
        Self::Converted,
        Self::Renewed,
        Self::Expired,
        Self::Deleted,
        Self::BillingPeriodStarted,
        Self::BillingPeriodEnded,
    ];

    /// The CloudEvent `type`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Provisioned => "io.partner-operator.partner.provisioned",
            Self::Activated => "io.partner-operator.partner.activated",
            Self::TrialEnding => "io.partner-operator.partner.trial-ending",
            Self::Converted => "io.partner-operator.partner.converted",
            Self::Renewed => "io.partner-operator.partner.renewed",
            Self::Expired => "io.partner-operator.partner.expired",
            Self::Deleted => "io.partner-operator.partner.deleted",
            Self::BillingPeriodStarted => "io.partner-operator.billing.period-started",
            Self::BillingPeriodEnded => "io.partner-operator.billing.period-ended",
        }
    }

    /// The last part of the type, e.g. `period-started`: file names and metrics.
    pub fn short(self) -> &'static str {
        self.as_str().rsplit('.').next().unwrap_or_default()
    }
}

impl std::fmt::Display for WebhookEventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One event recorded for the webhook endpoints, kept in the Partner's status until every
/// endpoint it is for has it (or gave up on it). Recorded in the same status write as the
/// transition it tells, before any delivery: a crash between the two delivers it later with
/// the same `id`. It says only which event is owed to whom: what is sent is rebuilt from the
/// Partner's uid and the transitions its status records, and a record that matches none is
/// dropped unsent.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookRecord {
    /// The CloudEvent `id` (and `webhook-id`): derived from the Partner's uid, the type and the
    /// billing period, so every delivery of the event carries the same one.
    pub id: String,
    #[serde(rename = "type")]
    pub type_: WebhookEventType,
    /// When the transition happened (the CloudEvent `time`).
    pub time: DateTime<Utc>,
    /// No longer written, and ignored: an event's `data` is rebuilt from the operator's facts
    /// whenever it is sent, never taken from the status. (Records written by earlier versions
    /// carry it.)
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    #[schemars(schema_with = "any_object_schema")]
    pub data: serde_json::Value,
    /// The endpoints that do not have it yet.
    pub pending: Vec<WebhookDelivery>,
}

/// The delivery of one event to one endpoint.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookDelivery {
    pub endpoint: String,
    /// Failed attempts so far.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub attempts: u32,
    /// When the first attempt failed: retried until `spec.webhooks.retryHours` after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_failed_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// Why the last attempt failed (an HTTP status, a timeout; never a key or the URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl WebhookDelivery {
    pub fn to(endpoint: &str) -> Self {
        Self {
            endpoint: endpoint.to_string(),
            attempts: 0,
            first_failed_at: None,
            last_attempt_at: None,
            last_error: None,
        }
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Any JSON object, kept as written.
fn any_object_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}
