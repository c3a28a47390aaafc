//! A webhook receiver for the tests: `tests/webhooks/receiver.py`, which verifies signatures with
//! the Standard Webhooks reference library (Python), and a client with only the rights a test
//! grants it.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use kube::Client;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{http, project, python::python};

/// Where the tests' operators read signing keys.
pub const KEYS_NAMESPACE: &str = "partner-operator";

/// One delivery as the receiver saw it.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    pub verified: bool,
    pub id: Option<String>,
    pub signature: Option<String>,
    pub content_type: Option<String>,
    pub body: Option<Value>,
}

impl Delivery {
    pub fn type_(&self) -> &str {
        self.body
            .as_ref()
            .and_then(|b| b["type"].as_str())
            .unwrap_or_default()
    }

    /// `namespace/name` of the Partner (the CloudEvent's `subject`).
    pub fn subject(&self) -> &str {
        self.body
            .as_ref()
            .and_then(|b| b["subject"].as_str())
            .unwrap_or_default()
    }

    /// The last part of the type (`provisioned`, `period-started`, ...).
    pub fn short(&self) -> &str {
        self.type_().rsplit('.').next().unwrap_or_default()
    }
}

/// The Python receiver, running until dropped.
pub struct Receiver {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Receiver {
    /// Starts a receiver that verifies with `key`.
    pub fn start(key: &str) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let log = dir.path().join("deliveries.jsonl");
        let mut child = Command::new(python())
            .arg(project("tests/webhooks/receiver.py"))
            .args(["--key", key, "--log"])
            .arg(&log)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the receiver starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("its stdout"))
            .read_line(&mut line)
            .expect("the receiver prints its port");
        let port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("the receiver printed {line:?} instead of its port"));
        Self {
            child,
            port,
            log,
            _dir: dir,
        }
    }

    /// Where the operator is to deliver.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/webhooks", self.port)
    }

    /// Every delivery so far, in the order they arrived.
    pub fn deliveries(&self) -> Vec<Delivery> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .map(|line| serde_json::from_str(line).expect("a JSON line"))
            .collect()
    }

    /// Verified deliveries of `subject` (`namespace/name`), by their type's last part, in order
    /// of arrival, each id counted once (a resend of an id is not a new event).
    pub fn events_of(&self, subject: &str) -> Vec<String> {
        let mut seen = std::collections::HashSet::new();
        self.deliveries()
            .into_iter()
            .filter(|d| d.verified && d.subject() == subject)
            .filter(|d| seen.insert(d.id.clone()))
            .map(|d| d.short().to_string())
            .collect()
    }

    /// From now on, answer `status` after `delay_seconds`.
    pub async fn answer(&self, status: u16, delay_seconds: f64) {
        let addr = ([127, 0, 0, 1], self.port).into();
        let body = json!({"status": status, "delay": delay_seconds}).to_string();
        let response =
            http::request(addr, "POST", "/control", &[], "application/json", &body).await;
        assert_eq!(response.status, 204, "the receiver took its instructions");
    }
}

/// A client acting as a ServiceAccount of `namespace` that holds only `rules` there (a Role
/// and its RoleBinding), as an attacker with just those rights would: on kube-apiserver, with
/// the ServiceAccount's own token, RBAC enforced. The sandbox enforces no RBAC: there the
/// client is the administrator's, and what is tested is what the operator does with what such
/// a user can write.
pub async fn client_with_role(h: &super::Harness, namespace: &str, rules: Value) -> Client {
    let plane = match &h.server {
        super::Backend::Kube(k) => &k.plane,
        super::Backend::Sandbox(_) => return h.client.clone(),
    };
    let account = "limited";
    for object in [
        json!({"apiVersion": "v1", "kind": "ServiceAccount",
               "metadata": {"name": account, "namespace": namespace}}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
               "metadata": {"name": account, "namespace": namespace}, "rules": rules}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": account, "namespace": namespace},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": account},
               "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}]}),
    ] {
        h.apply(object).await;
    }
    let token = super::harness::service_account_token(&h.client, namespace, account).await;
    plane.client_for_token(&token, Some("limited-user"))
}
