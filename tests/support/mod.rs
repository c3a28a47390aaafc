//! The ground under the operator's integration tests: an API server (the sandbox's or the real
//! kube-apiserver, see [`servers`]), a real SMTP server on loopback, a clock the test moves, and
//! the operator running in-process.

pub mod activation;
pub mod helm;
pub mod http;
pub mod logs;
pub mod metrics;
pub mod process;
pub mod python;
pub mod scenarios;
pub mod servers;
pub mod wait;
pub mod webhooks;

pub use servers::{Backend, Server};
pub use wait::{Patience, Seen, eventually, eventually_blocking, within, within_blocking};

/// The typed names the tests compare with: subscription levels, condition types, condition
/// reasons and Event reasons.
pub use partner_operator::api::{SubscriptionLevel, types};
pub use partner_operator::lifecycle::{EventReason, reasons};
/// The Partners and Distributors every suite applies.
pub use partner_operator::testing::{distributor, partner};

use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};
use partner_operator::api::{Distributor, Partner};
use partner_operator::clock::Clock;
use partner_operator::operator::{self, RunOptions};
use partner_sandbox::smtp::{ReceivedEmail, SmtpSink};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub const START: &str = "2027-03-01T09:00:00Z";
pub const PORTAL: &str = "https://portal.example/activate";

pub fn start_time() -> DateTime<Utc> {
    START.parse().unwrap()
}

pub struct Harness {
    pub server: Backend,
    pub smtp: SmtpSink,
    pub clock: Clock,
    pub client: Client,
    /// The key the harness's operators make activation tokens with.
    pub activation_key: partner_operator::tenant::ActivationKey,
    /// The key the harness's operators prove their tenants with.
    pub ownership_key: partner_operator::tenant::OwnershipKey,
    operator: Option<Operator>,
    /// Where the harness's operator serves `/metrics`.
    metrics_addr: Option<std::net::SocketAddr>,
}

/// An operator running in-process, as a separate replica would.
pub struct Operator {
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<(), operator::RunError>>,
}

impl Operator {
    /// Stops it as a crash would: no graceful shutdown, the Lease (if any) left held.
    pub fn kill(self) {
        self.task.abort();
    }

    /// Waits for `run` to end by itself.
    pub async fn wait(self) -> Result<(), operator::RunError> {
        self.task.await.expect("the operator task did not panic")
    }

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
    /// API server and SMTP server up, CRDs installed, clock frozen at [`START`], operator running.
    pub async fn start(server: Server) -> Self {
        let mut harness = Self::start_servers(server).await;
        harness.start_operator();
        harness
    }

    /// As [`Harness::start`], without the operator.
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
            operator: None,
            metrics_addr: None,
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
            email_per_recipient_per_hour:
                partner_operator::controller::DEFAULT_EMAILS_PER_RECIPIENT_PER_HOUR,
        }
    }

    /// Starts one more operator against the same servers (for leader election); its requests
    /// carry `user_agent`.
    pub fn spawn_operator_as(&self, user_agent: &str, options: RunOptions) -> Operator {
        self.spawn_operator_with_client(self.server.client_with_user_agent(user_agent), options)
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

    pub fn start_operator(&mut self) {
        self.start_operator_with(self.run_options());
    }

    /// Starts the harness's operator with `options`, serving `/metrics` (for
    /// [`Harness::settled`]) on a free port unless they name one.
    pub fn start_operator_with(&mut self, mut options: RunOptions) {
        assert!(self.operator.is_none(), "the operator is already running");
        self.metrics_addr = Some(*options.metrics_addr.get_or_insert_with(metrics::free_port));
        self.operator = Some(self.spawn_operator_as("partner-operator", options));
    }

    /// Where the harness's operator (the last one started) serves `/metrics`.
    pub fn metrics_addr(&self) -> std::net::SocketAddr {
        self.metrics_addr.expect("the harness started an operator")
    }

    /// Positive evidence that the harness's operator has done all it was going to do about
    /// what happened before this call: a zero jump of the clock makes it look at every
    /// Partner again, and its Partner reconciliations grow by at least the number of
    /// Partners. A Partner's reconciliations run one at a time, and a pending retry is
    /// subsumed by the new one, so each ran after whatever was under way for it. Then a test
    /// may assert that nothing (more) happened.
    pub async fn settled(&self) {
        let addr = self.metrics_addr();
        let before = metrics::reconciliations(addr, "partner").await;
        let partners = Api::<Partner>::all(self.client.clone())
            .list(&Default::default())
            .await
            .expect("Partners listed")
            .items
            .len() as f64;
        self.clock.advance(chrono::Duration::zero());
        eventually(
            format!("{partners} Partner reconciliations after the clock's nudge (from {before})"),
            Patience::RECONCILE,
            || async {
                let now = metrics::reconciliations(addr, "partner").await;
                if now >= before + partners {
                    Ok(())
                } else {
                    Err(now)
                }
            },
        )
        .await;
    }

    /// Kills the operator as a crash would: no graceful shutdown.
    pub fn kill_operator(&mut self) {
        self.operator
            .take()
            .expect("the operator is running")
            .kill();
    }

    pub async fn stop_operator(&mut self) {
        let operator = self.operator.take().expect("the operator is running");
        operator.stop().await.expect("the operator ran");
    }

    /// How many times each `Message-ID` arrived at the SMTP server.
    pub fn message_counts(&self) -> std::collections::HashMap<String, usize> {
        let mut counts = std::collections::HashMap::new();
        for message in self.smtp.received() {
            *counts
                .entry(message.message_id.clone().unwrap_or_default())
                .or_default() += 1;
        }
        counts
    }

    pub async fn apply(&self, object: Value) {
        self.server.apply_json(object).await.expect("applies");
    }

    pub fn partners(&self, namespace: &str) -> Api<Partner> {
        Api::namespaced(self.client.clone(), namespace)
    }

    pub fn distributors(&self) -> Api<Distributor> {
        Api::all(self.client.clone())
    }

    /// The standard setup: Distributor `northwind`, its partner namespace, and Partners by name.
    pub async fn northwind(&self, auto_upgrade: bool) {
        self.namespace(
            "northwind-partners",
            &[("partner-operator.io/distributor", "northwind")],
        )
        .await;
        self.apply(distributor("northwind", auto_upgrade)).await;
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

    /// Waits until the Distributor `name` exists and `check` holds; fails with the last
    /// status seen.
    pub async fn wait_distributor(
        &self,
        name: &str,
        what: &str,
        check: impl Fn(&Distributor) -> bool,
    ) -> Distributor {
        eventually(format!("{name}: {what}"), Patience::RECONCILE, || async {
            match self.distributors().get(name).await.ok() {
                Some(d) if check(&d) => Ok(d),
                seen => Err(Seen(
                    serde_json::to_string_pretty(&seen.map(|d| d.status)).unwrap(),
                )),
            }
        })
        .await
    }

    /// Waits until the Distributor bills `count` Production Partners.
    pub async fn wait_billed(&self, distributor: &str, count: u32) -> Distributor {
        self.wait_distributor(distributor, &format!("{count} billed Partners"), |d| {
            d.status
                .as_ref()
                .and_then(|s| s.billing.as_ref())
                .is_some_and(|b| b.production_partners == count)
        })
        .await
    }

    /// Waits for at least `count` messages in all, then returns every one received.
    pub async fn wait_emails(&self, count: usize) -> Vec<ReceivedEmail> {
        eventually(format!("{count} emails"), Patience::RECONCILE, || async {
            let received = self.smtp.received();
            if received.len() >= count {
                Ok(received)
            } else {
                Err(received)
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

/// The Events (`events.k8s.io/v1`) in `namespace` with `reason`.
pub async fn events(
    h: &Harness,
    namespace: &str,
    reason: &str,
) -> Vec<k8s_openapi::api::events::v1::Event> {
    Api::<k8s_openapi::api::events::v1::Event>::namespaced(h.client.clone(), namespace)
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .collect()
}

/// The condition of `type_` (one of [`types`]) on `partner`: its status and reason.
pub fn condition(partner: &Partner, type_: &str) -> Option<(String, String)> {
    partner
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone()))
}

/// The reason of the condition of `type_` on `partner`, whatever its status.
pub fn reason(partner: &Partner, type_: &str) -> Option<String> {
    condition(partner, type_).map(|(_, reason)| reason)
}

pub fn is_ready(partner: &Partner) -> bool {
    condition(partner, types::READY).is_some_and(|(s, _)| s == "True")
}

/// The subscription level in `partner`'s status; `Pending` until it has one.
pub fn level(partner: &Partner) -> SubscriptionLevel {
    partner
        .status
        .as_ref()
        .and_then(|s| s.subscription_level)
        .unwrap_or_default()
}

/// Whether `partner` is at `level` and Ready.
pub fn is_ready_at(partner: &Partner, level_: SubscriptionLevel) -> bool {
    level(partner) == level_ && is_ready(partner)
}

/// The `token` parameter of the activation link in an email's text.
pub fn activation_link(email: &ReceivedEmail) -> url::Url {
    let text = email.text_body().expect("a text part");
    let start = text.find(PORTAL).expect("the link is in the text");
    let link: String = text[start..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect();
    url::Url::parse(&link).expect("a URL")
}

/// The token of the activation link in an email.
pub fn activation_token(email: &ReceivedEmail) -> String {
    activation_link(email)
        .query_pairs()
        .find(|(key, _)| key == "token")
        .map(|(_, value)| value.into_owned())
        .expect("the link carries a token")
}

pub fn uid(partner: &Partner) -> String {
    partner.uid().expect("a uid")
}

/// Waits until the `entitlements` of the tenant namespace `tenant` grant `level`.
pub async fn wait_entitlements_level(h: &Harness, tenant: &str, level: SubscriptionLevel) {
    eventually(
        format!("entitlements of {tenant} say {level}"),
        Patience::RECONCILE,
        || async {
            match entitlements(h, tenant).await {
                Some(data) if data.get("level") == Some(&level.to_string()) => Ok(()),
                seen => Err(seen),
            }
        },
    )
    .await;
}

/// The last `n` lines of `text`.
pub fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A path in the project's directory.
pub fn project(path: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The `data` of the `entitlements` ConfigMap in a tenant namespace, if there is one.
pub async fn entitlements(
    h: &Harness,
    tenant: &str,
) -> Option<std::collections::BTreeMap<String, String>> {
    Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(h.client.clone(), tenant)
        .get_opt("entitlements")
        .await
        .unwrap()
        .map(|cm| cm.data.unwrap_or_default())
}
