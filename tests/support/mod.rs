//! The ground under the operator's integration tests: an API server (the sandbox's or the real
//! kube-apiserver, see [`servers`]), a real SMTP server on loopback, a clock the test moves, and
//! the operator running in-process (see [`operated`]). The external tools' tests stand on part
//! of it (`tests/external/support/`); what only these tests use is here or in the modules only
//! they declare.

pub mod activation;
pub mod harness;
pub mod http;
pub mod logs;
pub mod metrics;
pub mod operated;
pub mod process;
pub mod python;
pub mod read;
pub mod scrape;
pub mod secrets;
pub mod servers;
pub mod wait;
pub mod webhook_receiver;
pub mod webhooks;

pub use harness::{START, start_time};
pub use operated::Harness;
pub use read::{
    activation_link, activation_token, condition, events, is_ready, is_ready_at, last_lines, level,
    project,
};
pub use servers::{Backend, Server};
pub use wait::{Patience, Seen, eventually, eventually_blocking, within};

/// The typed names the tests compare with: subscription levels, condition types, condition
/// reasons and Event reasons.
pub use partner_operator::api::{SubscriptionLevel, types};
pub use partner_operator::lifecycle::{EventReason, reasons};
/// The Partners and Distributors every suite applies.
pub use partner_operator::testing::{distributor, partner};

use std::io::Read;
use std::process::{Child, Command};

use kube::{Api, ResourceExt};
use partner_operator::api::Partner;
use partner_sandbox::apiserver::ApiServer;

use process::Sandbox;

impl Patience {
    /// A Partner under injected API faults: a tenth of its requests fail, so its retries
    /// back off (0.5 s, doubling) and a run of failures can defer it for tens of seconds.
    pub const UNDER_API_FAULTS: Self = Self::new("a reconciliation under API faults", 90);
    /// A standby taking over a Lease: generous, this checks that it does, not how fast.
    pub const LEASE_HANDOVER: Self = Self::new("a Lease handover", 15);
}

impl Backend {
    pub fn clear_requests(&self) {
        match self {
            Backend::Sandbox(s) => s.log().clear(),
            Backend::Kube(k) => *k.cleared.lock().unwrap() = k.plane.requests().len(),
        }
    }

    /// The embedded server, for the tests that inject faults (kube-apiserver has no such knobs).
    pub fn sandbox(&self) -> &ApiServer {
        match self {
            Backend::Sandbox(s) => s,
            Backend::Kube(_) => panic!("this test injects faults: it runs on the sandbox only"),
        }
    }
}

impl Sandbox {
    /// The SMTP server's address, `127.0.0.1:PORT`, from the summary.
    pub fn smtp_addr(&mut self) -> String {
        let summary = self.summary();
        let line = summary
            .lines()
            .find(|l| l.starts_with("SMTP server"))
            .unwrap_or_else(|| panic!("no SMTP server in the summary:\n{summary}"));
        line.split_whitespace()
            .nth(2)
            .and_then(|url| url.strip_prefix("smtp://"))
            .unwrap_or_else(|| panic!("no smtp:// address in {line}"))
            .to_string()
    }

    /// The processes still running whose command line names the state directory (the control
    /// plane's processes keep their files under it).
    pub fn processes_left(&self) -> Vec<String> {
        let dir = self.dir.path().to_string_lossy().into_owned();
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|entry| {
                let cmdline = std::fs::read(entry.ok()?.path().join("cmdline")).ok()?;
                let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
                cmdline.contains(&dir).then_some(cmdline)
            })
            .collect()
    }

    /// SIGTERM, then the exit status and what was printed.
    pub fn terminate(&mut self) -> (std::process::ExitStatus, String) {
        sigterm(&self.child);
        let status = eventually_blocking(
            "the sandbox ending after SIGTERM",
            Patience::PROCESS_EXIT,
            || match self.child.try_wait().unwrap() {
                Some(status) => Ok(status),
                None => Err(Seen(self.log())),
            },
        );
        let mut stdout = std::mem::take(&mut self.printed);
        self.child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut stdout)
            .unwrap();
        (status, stdout)
    }
}

/// Sends SIGTERM, as `kill` or a container runtime would.
pub fn sigterm(child: &Child) {
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success(), "kill -TERM {}", child.id());
}

/// The reason of the condition of `type_` on `partner`, whatever its status.
pub fn reason(partner: &Partner, type_: &str) -> Option<String> {
    condition(partner, type_).map(|(_, reason)| reason)
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

/// The Events in `namespace` with `reason`, once there is one: the operator records an Event
/// in a task of its own, so it may come a moment after the status that tells the same.
pub async fn events_told(
    h: &Harness,
    namespace: &str,
    reason: &str,
) -> Vec<k8s_openapi::api::events::v1::Event> {
    told(h, namespace, reason, None).await
}

/// The same, of the Events regarding the object named `name` alone.
pub async fn events_told_about(
    h: &Harness,
    namespace: &str,
    reason: &str,
    name: &str,
) -> Vec<k8s_openapi::api::events::v1::Event> {
    told(h, namespace, reason, Some(name)).await
}

async fn told(
    h: &Harness,
    namespace: &str,
    reason: &str,
    name: Option<&str>,
) -> Vec<k8s_openapi::api::events::v1::Event> {
    wait::eventually(
        format!("an Event {reason} in {namespace} about {name:?}"),
        wait::Patience::RECONCILE,
        || async {
            let found: Vec<_> = events(h, namespace, reason)
                .await
                .into_iter()
                .filter(|e| {
                    name.is_none_or(|name| {
                        e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
                    })
                })
                .collect();
            if found.is_empty() { Err(()) } else { Ok(found) }
        },
    )
    .await
}
