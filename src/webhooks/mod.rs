//! The webhook sender: a recorded lifecycle event as a CloudEvent, signed by the Standard
//! Webhooks scheme, POSTed to one endpoint. What is sent when, and what an outcome changes, is
//! decided in [`crate::lifecycle::webhooks`]; the retries are the reconciler's
//! (`controller::webhook_delivery`).
//!
//! A delivery is one HTTP request:
//! - body: the CloudEvent 1.0 in structured JSON mode (`application/cloudevents+json`), the same
//!   bytes on every attempt (built from what the status recorded);
//! - `webhook-id`: the CloudEvent `id`, the receiver's idempotency key;
//! - `webhook-timestamp`: the attempt's time, in seconds (receivers refuse old ones);
//! - `webhook-signature`: `v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`, one per key,
//!   separated by spaces (several while keys are rotated).
//!
//! Success is any 2xx answer; anything else (another status, a redirect, a timeout, a refused
//! connection) is a failure, retried. Errors name the status or the kind of failure, never the
//! URL (it may carry a token) nor a key.

mod keys;

use std::time::Duration;

use cloudevents::{EventBuilder, EventBuilderV10};

pub use keys::{KeyError, SIGNING_KEY_LABEL, SigningKeys, SigningKeysCache};

use crate::api::{Partner, WebhookRecord};

/// The CloudEvent of `record`, for `partner`, as the bytes sent.
pub fn cloudevent(record: &WebhookRecord, partner: &Partner) -> Vec<u8> {
    let namespace = partner.metadata.namespace.as_deref().unwrap_or_default();
    let name = partner.metadata.name.as_deref().unwrap_or_default();
    let event = EventBuilderV10::new()
        .id(record.id.as_str())
        .source(format!(
            "/apis/{}/{}/namespaces/{namespace}/partners/{name}",
            crate::api::GROUP,
            crate::api::VERSION
        ))
        .ty(record.type_.as_str())
        .subject(format!("{namespace}/{name}"))
        .time(record.time)
        .data("application/json", record.data.clone())
        .build()
        .expect("every required attribute is set");
    serde_json::to_vec(&event).expect("a CloudEvent serializes")
}

/// Why one attempt failed, in words that are safe to record.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("the endpoint answered HTTP {0}")]
    Status(u16),
    #[error("no answer within {0} s")]
    Timeout(u32),
    #[error("cannot connect to the endpoint: {0}")]
    Connect(String),
    #[error("the request failed: {0}")]
    Request(String),
    #[error("signing key: {0}")]
    Key(#[from] KeyError),
}

/// POSTs signed events.
#[derive(Clone)]
pub struct Sender {
    http: reqwest::Client,
}

impl Default for Sender {
    fn default() -> Self {
        Self::new()
    }
}

impl Sender {
    pub fn new() -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("partner-operator/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(5))
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .expect("an HTTP client with rustls");
        Self { http }
    }

    /// One attempt: `body` with the event `id`, signed at `timestamp` (Unix seconds) by every
    /// key.
    pub async fn post(
        &self,
        url: &str,
        timeout_seconds: u32,
        id: &str,
        timestamp: i64,
        body: Vec<u8>,
        keys: &SigningKeys,
    ) -> Result<(), DeliveryError> {
        let signature = keys.sign(id, timestamp, &body);
        let response = self
            .http
            .post(url)
            .timeout(Duration::from_secs(u64::from(timeout_seconds)))
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/cloudevents+json; charset=utf-8",
            )
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await
            .map_err(|err| {
                let err = err.without_url();
                if err.is_timeout() {
                    DeliveryError::Timeout(timeout_seconds)
                } else if err.is_connect() {
                    DeliveryError::Connect(root_cause(&err))
                } else {
                    DeliveryError::Request(root_cause(&err))
                }
            })?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(DeliveryError::Status(status.as_u16()))
        }
    }
}

/// The innermost cause of an HTTP error ("Connection refused"), which says what happened
/// without the URL.
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = err;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{WebhookDelivery, WebhookEventType};
    use crate::lifecycle::fixtures::partner;

    fn record() -> WebhookRecord {
        WebhookRecord {
            id: "uid-1.provisioned.0".into(),
            type_: WebhookEventType::Provisioned,
            time: "2027-03-01T09:00:00Z".parse().unwrap(),
            data: serde_json::json!({"organization": "Contoso"}),
            pending: vec![WebhookDelivery::to("billing")],
        }
    }

    #[test]
    fn an_event_is_a_structured_cloudevent_and_the_same_bytes_every_time() {
        let body = cloudevent(&record(), &partner());
        assert_eq!(body, cloudevent(&record(), &partner()));
        let event: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(event["specversion"], "1.0");
        assert_eq!(event["id"], "uid-1.provisioned.0");
        assert_eq!(event["type"], "io.partner-operator.partner.provisioned");
        assert_eq!(
            event["source"],
            "/apis/partner-operator.io/v1alpha1/namespaces/partners/partners/contoso"
        );
        assert_eq!(event["subject"], "partners/contoso");
        assert_eq!(event["time"], "2027-03-01T09:00:00Z");
        assert_eq!(event["datacontenttype"], "application/json");
        assert_eq!(event["data"]["organization"], "Contoso");
    }
}
