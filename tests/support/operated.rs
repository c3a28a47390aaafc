//! The harness most integration tests run on: the servers of [`super::harness::Harness`], and
//! the operator under test running on them, in-process, its `/metrics` scraped to tell when
//! it has settled.

use std::ops::Deref;

use kube::Api;
use partner_operator::api::{Distributor, Partner};
use partner_operator::operator::{self, RunOptions};
use partner_sandbox::smtp::ReceivedEmail;

use super::harness::{self, Operator};
use super::{Patience, Seen, Server, distributor, eventually, metrics};

/// The servers, and the operator under test once started.
pub struct Harness {
    servers: harness::Harness,
    operator: Option<Operator>,
    /// Where the harness's operator serves `/metrics`.
    metrics_addr: Option<std::net::SocketAddr>,
}

/// The servers, their clients and clock, and the operators started besides the harness's own.
impl Deref for Harness {
    type Target = harness::Harness;

    fn deref(&self) -> &harness::Harness {
        &self.servers
    }
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
}

impl Harness {
    /// API server and SMTP server up, CRDs installed, clock frozen at [`super::START`], operator
    /// running.
    pub async fn start(server: Server) -> Self {
        let mut harness = Self::start_servers(server).await;
        harness.start_operator();
        harness
    }

    /// As [`Harness::start`], without the operator.
    pub async fn start_servers(server: Server) -> Self {
        Self {
            servers: harness::Harness::start_servers(server).await,
            operator: None,
            metrics_addr: None,
        }
    }

    /// Fresh servers for a restore of what `source` runs: the operator's keys as `source`'s
    /// Secrets would carry them to the new cluster, and its clock at `source`'s time. No
    /// operator yet.
    pub async fn start_servers_restoring(server: Server, source: &Harness) -> Self {
        let mut servers = harness::Harness::start_servers(server).await;
        servers.activation_key = source.activation_key.clone();
        servers.ownership_key = source.ownership_key.clone();
        servers.clock.set(source.clock.now());
        Self {
            servers,
            operator: None,
            metrics_addr: None,
        }
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
}
