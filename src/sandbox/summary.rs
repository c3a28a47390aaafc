//! What the sandbox prints once it is up: where things are and what to type next.

use std::net::SocketAddr;
use std::path::PathBuf;

use chrono::SubsecRound;

use super::{SANDBOX_OPERATOR_NAMESPACE, sandbox_activation_base_url};
use crate::api::grammar::Zulu;
use crate::published_clock::PublishedClock;

/// What a started sandbox offers, for the lines printed at start.
#[derive(Clone, Debug)]
pub struct Started {
    pub kubeconfig: PathBuf,
    pub api_server: String,
    /// Where the SMTP server writes what it receives (made with the first message).
    pub outbox: PathBuf,
    pub smtp: SocketAddr,
    pub speed: f64,
    /// The sped-up clock, as the kubeconfig publishes it (none at real time).
    pub published_clock: Option<PublishedClock>,
    /// Whether the operator runs (not with `--without-operator`).
    pub operator: bool,
    /// Where the activation service listens (with the operator).
    pub activation: Option<SocketAddr>,
    /// Where the webhook receiver takes deliveries, and where it keeps them.
    pub webhooks: String,
    pub webhooks_dir: PathBuf,
    /// The examples' address, when the receiver stands in for it (its port was taken).
    pub webhooks_stand_in: Option<SocketAddr>,
}

impl Started {
    /// A few lines that say where things are and what to type next.
    pub fn summary(&self) -> String {
        let kubeconfig = self.kubeconfig.display();
        let mut lines = vec![format!(
            "API server   {} (kubeconfig: {kubeconfig})",
            self.api_server
        )];
        let outbox = self.outbox.display();
        lines.push(format!(
            "SMTP server  smtp://{} (messages in {outbox}: NNNN-<kind>.eml, to read NNNN-<kind>.txt)",
            self.smtp
        ));
        lines.push(format!(
            "             a fresh outbox each run, from 0001; the previous run's is in {outbox}.previous"
        ));
        if let Some(addr) = self.activation {
            lines.push(format!(
                "activation   {} (the emailed links open here)",
                sandbox_activation_base_url(addr)
            ));
        }
        lines.push(format!(
            "webhooks     {} (verified deliveries in {}: NNNN-<type>.json)",
            self.webhooks,
            self.webhooks_dir.display()
        ));
        if let Some(examples) = self.webhooks_stand_in.filter(|_| !self.operator) {
            lines.push(format!(
                "             {examples} was taken: point the Distributor's endpoint at the address above"
            ));
        } else if let Some(examples) = self.webhooks_stand_in {
            lines.push(format!(
                "             {examples} was taken: the operator delivers what the examples send \
                 to http://{examples}/webhooks here"
            ));
        }
        if self.operator {
            lines.push(format!("clock        {}x real time", self.speed));
            if let Some(clock) = &self.published_clock {
                lines.push(format!(
                    "             {} at start; in the kubeconfig too, where kubectl partner reads it",
                    clock.reads.trunc_subsecs(0).zulu()
                ));
            }
        } else {
            lines.push("operator     not started (--without-operator); to run your own:".into());
            lines.push(format!(
                "             KUBECONFIG={kubeconfig} partner-operator run --smtp-url smtp://{} --smtp-insecure-plaintext \\"
                , self.smtp
            ));
            lines.push(format!(
                "               --activation-addr {OWN_ACTIVATION} --activation-base-url {} \\",
                sandbox_activation_base_url(OWN_ACTIVATION.parse().expect("an address"))
            ));
            // Else `run` serves /metrics on 0.0.0.0:8080, open to the network.
            lines.push(format!("               --metrics-addr {OWN_METRICS} \\"));
            lines.push(format!(
                "               --webhook-secrets-namespace {SANDBOX_OPERATOR_NAMESPACE} \\"
            ));
            lines
                .push("               --webhook-allow-private-networks 127.0.0.0/8,::1/128".into());
        }
        lines.push(format!(
            "next         export KUBECONFIG={kubeconfig}; kubectl apply -f examples/; kubectl get partners -n northwind-partners -w"
        ));
        lines.push("stop         Ctrl-C".into());
        lines.join("\n")
    }
}

/// Where the summary of `--without-operator` has the operator run separately serve its
/// activation service.
const OWN_ACTIVATION: &str = "127.0.0.1:8081";
/// Where that operator serves `/metrics`: loopback, as the sandbox's own does.
const OWN_METRICS: &str = "127.0.0.1:8080";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_says_what_to_type_next() {
        let started = Started {
            kubeconfig: "/tmp/s/kubeconfig".into(),
            api_server: "http://127.0.0.1:6443".into(),
            outbox: "/tmp/s/outbox".into(),
            smtp: "127.0.0.1:2525".parse().unwrap(),
            speed: 86400.0,
            published_clock: Some(PublishedClock {
                wall: "2026-12-07T02:00:00Z".parse().unwrap(),
                reads: "2026-12-07T02:00:00Z".parse().unwrap(),
                speed: 86400.0,
            }),
            operator: true,
            activation: Some("127.0.0.1:8081".parse().unwrap()),
            webhooks: "http://127.0.0.1:8082/webhooks".into(),
            webhooks_dir: "/tmp/s/webhooks".into(),
            webhooks_stand_in: None,
        };
        let summary = started.summary();
        assert!(
            summary
                .contains("http://127.0.0.1:8082/webhooks (verified deliveries in /tmp/s/webhooks"),
            "{summary}"
        );
        assert!(summary.contains("export KUBECONFIG=/tmp/s/kubeconfig"));
        // The namespace the README watches, as the README does.
        assert!(
            summary.contains("kubectl get partners -n northwind-partners -w"),
            "{summary}"
        );
        assert!(summary.contains("messages in /tmp/s/outbox"));
        assert!(summary.contains("a fresh outbox each run"));
        assert!(summary.contains("/tmp/s/outbox.previous"));
        assert!(summary.contains("86400x"));
        assert!(
            summary.contains("2026-12-07T02:00:00Z at start; in the kubeconfig too"),
            "{summary}"
        );
        assert!(
            summary.contains("http://127.0.0.1:8081/activate"),
            "{summary}"
        );
        assert!(!summary.contains("partner-operator run"));
        assert!(!summary.contains("was taken"), "{summary}");
        let elsewhere = Started {
            webhooks: "http://127.0.0.1:40001/webhooks".into(),
            webhooks_stand_in: Some("127.0.0.1:8082".parse().unwrap()),
            ..started.clone()
        }
        .summary();
        assert!(
            elsewhere.contains(
                "127.0.0.1:8082 was taken: the operator delivers what the examples send to \
                 http://127.0.0.1:8082/webhooks here"
            ),
            "{elsewhere}"
        );

        let alone = Started {
            operator: false,
            activation: None,
            ..started
        }
        .summary();
        assert!(alone.contains("--without-operator"), "{alone}");
        assert!(
            alone.contains("--smtp-url smtp://127.0.0.1:2525 --smtp-insecure-plaintext"),
            "{alone}"
        );
        assert!(
            alone.contains(
                "--activation-addr 127.0.0.1:8081 --activation-base-url http://127.0.0.1:8081/activate"
            ),
            "{alone}"
        );
        assert!(alone.contains("--metrics-addr 127.0.0.1:8080"), "{alone}");
    }
}
