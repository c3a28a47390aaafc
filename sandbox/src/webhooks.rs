//! A webhook receiver on loopback: verifies each delivery's Standard Webhooks signature with
//! the key it was given and keeps what it accepted, in memory and (optionally) as files
//! `NNNN-<type>.json` holding the delivery's headers and body. A delivery whose signature does
//! not verify is answered 401 and kept nowhere.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde::Serialize;

/// One accepted delivery.
#[derive(Clone, Debug, Serialize)]
pub struct ReceivedWebhook {
    /// `webhook-id`, `webhook-timestamp`, `webhook-signature`, `content-type`.
    pub headers: BTreeMap<String, String>,
    /// The CloudEvent.
    pub body: serde_json::Value,
    /// When it arrived (by the system clock).
    #[serde(skip)]
    pub received_at: chrono::DateTime<chrono::Utc>,
}

impl ReceivedWebhook {
    /// The CloudEvent's `type`.
    pub fn type_(&self) -> &str {
        self.body["type"].as_str().unwrap_or_default()
    }
}

struct Shared {
    verifier: standardwebhooks::Webhook,
    dir: Option<PathBuf>,
    received: Mutex<Vec<ReceivedWebhook>>,
    rejected: Mutex<u32>,
}

/// A running receiver; stops when dropped.
pub struct WebhookSink {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for WebhookSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl WebhookSink {
    /// Listens on `addr`, verifying with `key` (`whsec_` and base64); keeps files in `dir`
    /// (created with the first delivery) if given.
    pub async fn start(addr: SocketAddr, key: &str, dir: Option<PathBuf>) -> io::Result<Self> {
        let verifier = standardwebhooks::Webhook::new(key)
            .map_err(|err| io::Error::new(io::ErrorKind::InvalidInput, err.to_string()))?;
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            verifier,
            dir,
            received: Mutex::default(),
            rejected: Mutex::default(),
        });
        let app = axum::Router::new()
            .route("/{*path}", post(receive))
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, shared, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where deliveries are to be POSTed.
    pub fn url(&self) -> String {
        format!("http://{}/webhooks", self.addr)
    }

    pub fn received(&self) -> Vec<ReceivedWebhook> {
        self.shared.received.lock().unwrap().clone()
    }

    /// Deliveries refused for a signature that did not verify.
    pub fn rejected(&self) -> u32 {
        *self.shared.rejected.lock().unwrap()
    }
}

async fn receive(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    if shared.verifier.verify(&body, &headers).is_err() {
        *shared.rejected.lock().unwrap() += 1;
        return StatusCode::UNAUTHORIZED;
    }
    let Ok(event) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    let kept: BTreeMap<String, String> = [
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "content-type",
    ]
    .into_iter()
    .filter_map(|name| {
        let value = headers.get(name)?.to_str().ok()?;
        Some((name.to_string(), value.to_string()))
    })
    .collect();
    let received = ReceivedWebhook {
        headers: kept,
        body: event,
        received_at: chrono::Utc::now(),
    };
    let number = {
        let mut all = shared.received.lock().unwrap();
        all.push(received.clone());
        all.len()
    };
    if let Some(dir) = &shared.dir {
        let short = received.type_().rsplit('.').next().unwrap_or("event");
        let short: String = short
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        let path = dir.join(format!("{number:04}-{short}.json"));
        let text = serde_json::to_string_pretty(&received).unwrap_or_default();
        let written = std::fs::create_dir_all(dir).and_then(|()| std::fs::write(&path, text));
        if let Err(err) = written {
            tracing::warn!(path = %path.display(), error = %err, "cannot keep a webhook delivery");
            return StatusCode::INTERNAL_SERVER_ERROR;
        }
    }
    StatusCode::NO_CONTENT
}
