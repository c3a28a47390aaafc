//! The servers a test runs against (an API server of either kind, an SMTP server on loopback,
//! a clock the test moves) and the operators it starts on them, in-process.

use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::Client;
use kube::api::{Api, PostParams};
use partner_operator::api::Partner;
use partner_operator::clock::Clock;
use partner_operator::operator::{self, RunOptions};
use partner_sandbox::smtp::{ReceivedEmail, SmtpSink};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{Backend, Patience, Seen, Server, eventually, logs};

pub const START: &str = "2027-03-01T09:00:00Z";
pub const PORTAL: &str = "https://portal.example/activate";

/// A token for ServiceAccount `account` in `namespace`, valid for an hour, as the kubelet would
/// project it into a pod (kube-apiserver only: the sandbox has no TokenRequest).
pub async fn service_account_token(client: &Client, namespace: &str, account: &str) -> String {
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            expiration_seconds: Some(3600),
            ..Default::default()
        }),
        ..Default::default()
    };
    Api::<ServiceAccount>::namespaced(client.clone(), namespace)
        .create_token_request(account, &PostParams::default(), &request)
        .await
        .expect("TokenRequest")
        .status
        .and_then(|s| s.token)
        .expect("a token")
}

pub fn start_time() -> DateTime<Utc> {
    START.parse().unwrap()
}

/// A test's own servers, the clients and clock on them, and the keys its operators share.
pub struct Harness {
    pub server: Backend,
    pub smtp: SmtpSink,
    pub clock: Clock,
    pub client: Client,
    /// The key the harness's operators make activation tokens with.
    pub activation_key: partner_operator::tenant::ActivationKey,
    /// The key the harness's operators prove their tenants with.
    pub ownership_key: partner_operator::tenant::OwnershipKey,
}

/// An operator running in-process, as a separate replica would.
pub struct Operator {
    pub(super) stop: watch::Sender<bool>,
    pub(super) task: JoinHandle<Result<(), operator::RunError>>,
}

impl Operator {
    /// Stops it as SIGTERM would, and returns how `run` ended.
    pub async fn stop(self) -> Result<(), operator::RunError> {
        let _ = self.stop.send(true);
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the operator stops within 10 s")
            .expect("the operator task did not panic")
    }
}

impl Harness {
    /// API server and SMTP server up, CRDs installed, clock frozen at [`START`].
    pub async fn start_servers(server: Server) -> Self {
        logs::capture();
        let clock = Clock::manual(start_time());
        let server = Backend::start(server, clock.clone()).await;
        let smtp = SmtpSink::start("127.0.0.1:0".parse().unwrap(), None)
            .await
            .expect("the SMTP server starts");
        let client = server.client();
        Self {
            server,
            smtp,
            clock,
            client,
            activation_key: partner_operator::tenant::ActivationKey::random(),
            ownership_key: partner_operator::tenant::OwnershipKey::random(),
        }
    }

    /// The options the harness runs the operator with.
    pub fn run_options(&self) -> RunOptions {
        RunOptions {
            smtp_url: format!("{}?timeout=2", self.smtp.url()),
            smtp_insecure_plaintext: true,
            mail_from: Some("Onboarding <onboarding@operator.example>".into()),
            activation_base_url: Some(PORTAL.into()),
            namespace: None,
            templates_dir: None,
            metrics_addr: None,
            concurrency: 16,
            clock: self.clock.clone(),
            leader_election: None,
            // One key for every operator the test starts, as a Secret would give them.
            activation_key: Some(self.activation_key.clone()),
            ownership_key: Some(self.ownership_key.clone()),
            prove_existing_tenants: false,
            activation_service: None,
            webhook_secrets_namespace: None,
            // The tests' webhook receivers listen on loopback: the operator is told so, as
            // the sandbox tells its own (a test of the refusal runs without it).
            webhook_allow_private_networks: partner_operator::webhooks::EgressPolicy::loopback(),
            webhook_stand_in: None,
            email_per_recipient_per_hour:
                partner_operator::controller::DEFAULT_EMAILS_PER_RECIPIENT_PER_HOUR,
        }
    }

    /// Starts one more operator against the same servers (for leader election); its requests
    /// carry `user_agent`. Its client is the one `partner-operator run` makes, requests in
    /// flight bounded.
    pub fn spawn_operator_as(&self, user_agent: &str, options: RunOptions) -> Operator {
        let config = self.server.client_config_with_user_agent(user_agent);
        let client = operator::client(config, partner_operator::requests_in_flight::DEFAULT)
            .expect("a client for the test's API server");
        self.spawn_operator_with_client(client, options)
    }

    /// Starts one more operator that talks to the API server through `client` (one with a
    /// ServiceAccount's token, say).
    pub fn spawn_operator_with_client(&self, client: Client, options: RunOptions) -> Operator {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(operator::run(client, options, async move {
            let _ = stopped.wait_for(|s| *s).await;
        }));
        Operator { stop, task }
    }

    pub async fn apply(&self, object: Value) {
        self.server.apply_json(object).await.expect("applies");
    }

    pub fn partners(&self, namespace: &str) -> Api<Partner> {
        Api::namespaced(self.client.clone(), namespace)
    }

    pub async fn namespace(&self, name: &str, labels: &[(&str, &str)]) {
        let labels: serde_json::Map<String, Value> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        let ns: Namespace =
            serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).unwrap();
        Api::<Namespace>::all(self.client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .expect("namespace created");
    }

    /// Waits until `partner` exists and `check` holds; fails with the last status seen.
    pub async fn wait_partner(
        &self,
        namespace: &str,
        name: &str,
        what: &str,
        check: impl Fn(&Partner) -> bool,
    ) -> Partner {
        self.wait_partner_within(Patience::RECONCILE, namespace, name, what, check)
            .await
    }

    /// As [`Harness::wait_partner`], with `patience`.
    pub async fn wait_partner_within(
        &self,
        patience: Patience,
        namespace: &str,
        name: &str,
        what: &str,
        check: impl Fn(&Partner) -> bool,
    ) -> Partner {
        let api = self.partners(namespace);
        eventually(format!("{namespace}/{name}: {what}"), patience, || async {
            // Errors are retried: some tests inject API faults.
            match api.get_opt(name).await.ok().flatten() {
                Some(p) if check(&p) => Ok(p),
                seen => Err(Seen(
                    serde_json::to_string_pretty(&seen.map(|p| p.status)).unwrap(),
                )),
            }
        })
        .await
    }

    pub fn emails_of(&self, event: &str) -> Vec<ReceivedEmail> {
        self.smtp
            .received()
            .into_iter()
            .filter(|m| m.event.as_deref() == Some(event))
            .collect()
    }

    /// Moves the clock and lets the operator see it.
    pub fn advance_days(&self, days: i64) {
        self.clock.advance(chrono::Duration::days(days));
    }
}
