//! The webhook sender: a recorded lifecycle event as a CloudEvent, signed by the Standard
//! Webhooks scheme, POSTed to one endpoint. What is sent when, and what an outcome changes, is
//! decided in [`crate::lifecycle::webhooks`]; the retries are the reconciler's
//! (`controller::webhook_delivery`).
//!
//! A delivery is one HTTP request:
//! - body: the CloudEvent 1.0 in structured JSON mode (`application/cloudevents+json`), built
//!   from the operator's facts at each attempt (see `lifecycle::webhooks`), never from what a
//!   status record says;
//! - `webhook-id`: the CloudEvent `id`, the receiver's idempotency key;
//! - `webhook-timestamp`: the attempt's time, in seconds (receivers refuse old ones);
//! - `webhook-signature`: `v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`, one per key,
//!   separated by spaces (several while keys are rotated).
//!
//! Success is any 2xx answer; anything else (another status, a redirect, a timeout, a refused
//! connection) is a failure, retried. Errors say a coarse class ([`DeliveryError`]), never the
//! URL (it may carry a token), an address, nor a key. Connections go only where the
//! [`EgressPolicy`] lets them (see [`egress`]).

mod egress;
mod keys;

use std::time::Duration;

use cloudevents::{EventBuilder, EventBuilderV10};

pub use egress::{BadNetwork, EgressPolicy, GuardedResolver};
pub use keys::{
    KeyError, SIGNING_KEY_DISTRIBUTOR_ANNOTATION, SIGNING_KEY_LABEL, SigningKeys, SigningKeysCache,
};

use crate::api::Partner;
use crate::lifecycle::webhooks::WebhookEvent;

/// The CloudEvent of `record`, for `partner`, as the bytes sent: `source` and `subject` from
/// the Partner's own name, everything else as the operator rebuilt it.
pub fn cloudevent(record: &WebhookEvent, partner: &Partner) -> Vec<u8> {
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

/// Why one attempt failed, in coarse classes that are safe to record: the status and Events
/// are read by whoever writes the Distributor, and finer words (refused, reset, which TLS
/// alert) would tell them what listens where. Every address the operator will not connect to
/// reads exactly as one where nothing answers.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("HTTP {0}")]
    Status(u16),
    #[error("timeout")]
    Timeout,
    #[error("unreachable")]
    Unreachable,
    #[error("TLS")]
    Tls,
    #[error("signing key: {0}")]
    Key(#[from] KeyError),
}

/// POSTs signed events, only to the addresses the [`EgressPolicy`] permits.
#[derive(Clone)]
pub struct Sender {
    /// For `https://`: public addresses and the allowed networks.
    https: reqwest::Client,
    /// For `http://`: only the allowed networks.
    http: reqwest::Client,
    https_resolver: GuardedResolver,
    http_resolver: GuardedResolver,
    policy: std::sync::Arc<EgressPolicy>,
}

impl Sender {
    pub fn new(policy: EgressPolicy) -> Self {
        let policy = std::sync::Arc::new(policy);
        let https_resolver = GuardedResolver::new(policy.clone(), false);
        let http_resolver = GuardedResolver::new(policy.clone(), true);
        Self {
            https: client(&https_resolver, true),
            http: client(&http_resolver, false),
            https_resolver,
            http_resolver,
            policy,
        }
    }

    /// Points `url` at the address standing in for its own, if one does
    /// ([`EgressPolicy::standing_in`]).
    fn stand_in(&self, url: &mut reqwest::Url) {
        let ip = match url.host() {
            Some(url::Host::Ipv4(ip)) => std::net::IpAddr::V4(ip),
            Some(url::Host::Ipv6(ip)) => std::net::IpAddr::V6(ip),
            _ => return,
        };
        let Some(port) = url.port_or_known_default() else {
            return;
        };
        let addr = std::net::SocketAddr::new(ip, port);
        let at = self.policy.destination(addr);
        if at != addr {
            let _ = url.set_ip_host(at.ip());
            let _ = url.set_port(Some(at.port()));
        }
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
        let mut url = reqwest::Url::parse(url).map_err(|_| DeliveryError::Unreachable)?;
        self.stand_in(&mut url);
        let (client, resolver) = match url.scheme() {
            "https" => (&self.https, &self.https_resolver),
            "http" => (&self.http, &self.http_resolver),
            _ => return Err(DeliveryError::Unreachable),
        };
        // An IP literal is connected to as it is, without the resolver: checked here.
        let literal = match url.host() {
            Some(url::Host::Ipv4(ip)) => Some(std::net::IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(std::net::IpAddr::V6(ip)),
            Some(url::Host::Domain(_)) => None,
            None => return Err(DeliveryError::Unreachable),
        };
        if literal.is_some_and(|ip| !resolver.accepts(ip)) {
            return Err(DeliveryError::Unreachable);
        }
        let signature = keys.sign(id, timestamp, &body);
        let response = client
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
            .map_err(|err| classify(&err))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(DeliveryError::Status(status.as_u16()))
        }
    }
}

/// A client that connects only where `resolver` lets it, never through a proxy (which would
/// resolve and connect on its own), never following a redirect.
fn client(resolver: &GuardedResolver, https_only: bool) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .https_only(https_only)
        .dns_resolver(std::sync::Arc::new(resolver.clone()))
        .user_agent(concat!("partner-operator/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(5))
        .pool_idle_timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTP client with rustls")
}

/// The class of a failed request: a timeout, a TLS failure (rustls' errors reach the client
/// as invalid data, inside the connector's own I/O error), else unreachable.
fn classify(err: &reqwest::Error) -> DeliveryError {
    if err.is_timeout() {
        return DeliveryError::Timeout;
    }
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(current) = cause {
        // An I/O error hides the error it wraps from `source()`: looked into by hand.
        let mut io = current.downcast_ref::<std::io::Error>();
        while let Some(error) = io {
            if error.kind() == std::io::ErrorKind::InvalidData {
                return DeliveryError::Tls;
            }
            io = error
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<std::io::Error>());
        }
        cause = current.source();
    }
    DeliveryError::Unreachable
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::api::WebhookEventType;
    use crate::lifecycle::fixtures::partner;

    fn record() -> WebhookEvent {
        WebhookEvent {
            id: "uid-1.provisioned.0".into(),
            type_: WebhookEventType::Provisioned,
            time: "2027-03-01T09:00:00Z".parse().unwrap(),
            data: serde_json::json!({"organization": "Contoso"}),
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

    /// A loopback listener answering each connection with `answer` (after reading what comes,
    /// if it answers at all); the number of connections it took.
    async fn listener(answer: Option<&'static [u8]>) -> (u16, Arc<AtomicUsize>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let count = Arc::new(AtomicUsize::new(0));
        let counted = count.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buffer = [0; 4096];
                    let _ = stream.read(&mut buffer).await;
                    match answer {
                        Some(bytes) => {
                            let _ = stream.write_all(bytes).await;
                        }
                        None => tokio::time::sleep(Duration::from_secs(30)).await,
                    }
                });
            }
        });
        (port, count)
    }

    async fn post(sender: &Sender, url: &str) -> Result<(), DeliveryError> {
        let keys = SigningKeys::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        sender.post(url, 1, "id", 0, b"{}".to_vec(), &keys).await
    }

    const ANSWER_500: &[u8] = b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n\r\n";

    #[tokio::test]
    async fn a_failure_is_recorded_as_its_coarse_class_only() {
        let sender = Sender::new(EgressPolicy::allowing(EgressPolicy::loopback()));
        let (plain, _) = listener(Some(ANSWER_500)).await;
        let (silent, _) = listener(None).await;
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let words = |r: Result<(), DeliveryError>| r.unwrap_err().to_string();
        assert_eq!(
            words(post(&sender, &format!("http://127.0.0.1:{plain}/")).await),
            "HTTP 500"
        );
        assert_eq!(
            words(post(&sender, &format!("https://127.0.0.1:{plain}/")).await),
            "TLS"
        );
        assert_eq!(
            words(post(&sender, &format!("https://127.0.0.1:{silent}/")).await),
            "timeout"
        );
        assert_eq!(
            words(post(&sender, &format!("https://127.0.0.1:{closed}/")).await),
            "unreachable"
        );
    }

    #[tokio::test]
    async fn a_stand_in_takes_the_deliveries_to_the_address_it_stands_in_for() {
        let (at, answered) = listener(Some(ANSWER_500)).await;
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let for_ = taken.local_addr().unwrap();
        let policy = EgressPolicy::allowing(EgressPolicy::loopback())
            .standing_in(for_, ([127, 0, 0, 1], at).into());
        let sender = Sender::new(policy);
        let words = post(&sender, &format!("http://{for_}/webhooks")).await;
        assert_eq!(words.unwrap_err().to_string(), "HTTP 500");
        assert_eq!(answered.load(Ordering::SeqCst), 1);
        // Only that address: another port is delivered to as written.
        let other = format!("http://127.0.0.1:{}/", for_.port() + 1);
        assert_ne!(
            post(&sender, &other).await.unwrap_err().to_string(),
            "HTTP 500"
        );
        // Never towards a public address.
        let public = EgressPolicy::public_only().standing_in(for_, "1.1.1.1:80".parse().unwrap());
        assert_eq!(public.destination(for_), for_);
    }

    #[tokio::test]
    async fn a_refused_address_is_never_connected_to() {
        let sender = Sender::new(EgressPolicy::public_only());
        let (port, connections) = listener(Some(ANSWER_500)).await;
        for url in [
            "http://127.0.0.1:{P}/",
            "http://localhost:{P}/quitquitquit",
            "https://localhost:{P}/",
            "https://2130706433:{P}/",
            "https://0x7f000001:{P}/",
            "https://[::ffff:7f00:1]:{P}/",
            "https://[::1]:{P}/",
            "https://[fe80::1%25lo]:{P}/",
            "ftp://127.0.0.1:{P}/",
        ] {
            let url = url.replace("{P}", &port.to_string());
            let refused = post(&sender, &url).await.unwrap_err();
            assert_eq!(refused.to_string(), "unreachable", "{url}");
        }
        assert_eq!(connections.load(Ordering::SeqCst), 0);
        // Allowed for https, loopback still takes no plain http when not allowed for it.
        let only_other = Sender::new(EgressPolicy::allowing(vec![
            EgressPolicy::parse_network("10.0.0.0/8").unwrap(),
        ]));
        let refused = post(&only_other, &format!("http://127.0.0.1:{port}/")).await;
        assert_eq!(refused.unwrap_err().to_string(), "unreachable");
        assert_eq!(connections.load(Ordering::SeqCst), 0);
    }
}
