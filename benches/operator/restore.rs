//! Scenario 7, restore: the fleet as it stands (Partners in Trial with their links pending, and
//! trials converted to Production) backed up as Velero does by default (objects without their
//! uid, resourceVersion, managedFields and the server's other fields; Partners without status)
//! and created in a fresh API server, tenants first, with an operator (the same keys) already
//! running there. How long until every Partner resumed, and what was done again: emails,
//! webhook events, tenants and facts changed must all be 0.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::Client;
use kube::api::{Api, ListParams};
use partner_operator::api::{Distributor, Partner, PartnerStatus};
use partner_operator::tenant::{OWNER_UID_LABEL, TenantRecord};
use partner_sandbox::smtp::SmtpSink;
use partner_sandbox::webhooks::WebhookSink;
use serde_json::Value;

use super::{BENCH_AGENT, Operator, Server, figure, wait_until};

/// Every Partner's lifecycle facts, by namespace and name.
async fn facts(client: &Client) -> BTreeMap<String, Option<PartnerStatus>> {
    let partners = Api::<Partner>::all(client.clone())
        .list(&ListParams::default())
        .await
        .unwrap();
    partners
        .items
        .into_iter()
        .map(|p| {
            let key = format!(
                "{}/{}",
                p.metadata.namespace.clone().unwrap_or_default(),
                p.metadata.name.clone().unwrap_or_default()
            );
            (
                key,
                p.status.as_ref().and_then(TenantRecord::of).map(|r| r.0),
            )
        })
        .collect()
}

/// Waits until the fleet is settled: every email sent and every webhook event delivered and
/// recorded. The backup is taken then, so what the restore does again is the restore's own:
/// an event still pending at the backup is delivered again after it (at least once, the same
/// id), and the source's operator, still running, would deliver it too into the same receiver.
async fn settled(client: &Client) {
    let started = Instant::now();
    loop {
        let partners = Api::<Partner>::all(client.clone())
            .list(&ListParams::default())
            .await
            .unwrap();
        let busy = partners
            .items
            .iter()
            .filter(|p| {
                p.status.as_ref().is_some_and(|s| {
                    !s.webhooks.is_empty() || s.emails.iter().any(|e| e.sent_at.is_none())
                })
            })
            .count();
        if busy == 0 {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "restore: {busy} Partners still sending before the backup"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `object` as a backup keeps it by default: Velero restores no status.
fn stripped(object: impl serde::Serialize, api_version: &str, kind: &str) -> Value {
    let mut object = partner_sandbox::backed_up(object, api_version, kind);
    if let Some(fields) = object.as_object_mut() {
        fields.remove("status");
    }
    object
}

/// The objects to restore, in Velero's order: namespaces, what is in them, Distributors,
/// Partners.
async fn backup(client: &Client) -> Vec<Vec<Value>> {
    let all = ListParams::default();
    let namespaces: Vec<Namespace> = Api::<Namespace>::all(client.clone())
        .list(&all)
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|ns| {
            let labels = ns.metadata.labels.clone().unwrap_or_default();
            labels.contains_key(OWNER_UID_LABEL)
                || labels.contains_key("partner-operator.io/distributor")
        })
        .collect();
    let tenant = ListParams::default().labels(OWNER_UID_LABEL);
    let configmaps = Api::<ConfigMap>::all(client.clone())
        .list(&tenant)
        .await
        .unwrap();
    let secrets = Api::<Secret>::all(client.clone())
        .list(&tenant)
        .await
        .unwrap();
    let keys = Api::<Secret>::namespaced(client.clone(), "default")
        .list(&all)
        .await
        .unwrap();
    let distributors = Api::<Distributor>::all(client.clone())
        .list(&all)
        .await
        .unwrap();
    let partners = Api::<Partner>::all(client.clone())
        .list(&all)
        .await
        .unwrap();
    let group = "partner-operator.io/v1alpha1";
    vec![
        namespaces
            .into_iter()
            .map(|o| stripped(o, "v1", "Namespace"))
            .collect(),
        configmaps
            .items
            .into_iter()
            .map(|o| stripped(o, "v1", "ConfigMap"))
            .chain(
                secrets
                    .items
                    .into_iter()
                    .map(|o| stripped(o, "v1", "Secret")),
            )
            .chain(keys.items.into_iter().map(|o| stripped(o, "v1", "Secret")))
            .collect(),
        distributors
            .items
            .into_iter()
            .map(|o| stripped(o, group, "Distributor"))
            .collect(),
        partners
            .items
            .into_iter()
            .map(|o| stripped(o, group, "Partner"))
            .collect(),
    ]
}

/// Runs the scenario against the fleet `source` holds; `keys` is where its operators' keys
/// are, and `webhooks` the receiver its Distributors deliver to.
pub async fn run(source: &Client, keys: &std::path::Path, webhooks: &WebhookSink) {
    settled(source).await;
    let before = facts(source).await;
    let objects = backup(source).await;
    let target = Server::start().await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    target.write_kubeconfig(&kubeconfig);
    for key in ["activation.key", "ownership.key"] {
        std::fs::copy(keys.join(key), dir.path().join(key)).unwrap();
    }
    let client = target.client_with_user_agent(BENCH_AGENT);
    let smtp = SmtpSink::start("127.0.0.1:0".parse().unwrap(), None)
        .await
        .unwrap();
    let operator = Operator::start(&kubeconfig, &smtp);
    wait_until(
        "the restoring operator is ready",
        Duration::from_secs(60),
        || std::net::TcpStream::connect(operator.metrics).is_ok(),
    )
    .await;
    let delivered_before = webhooks.received().len();
    let started = Instant::now();
    for group in &objects {
        futures::stream::iter(group.iter().cloned())
            .map(|object| {
                let client = client.clone();
                async move {
                    if let Err(err) = partner_sandbox::create_object(&client, object).await {
                        assert!(err.contains("already exists"), "{err}");
                    }
                }
            })
            .buffer_unordered(64)
            .collect::<()>()
            .await;
    }
    let created = started.elapsed().as_secs_f64();
    loop {
        let resumed = facts(&client)
            .await
            .values()
            .filter(|f| f.is_some())
            .count();
        if resumed >= before.len() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "restore: {resumed} of {} Partners resumed",
            before.len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let resumed = started.elapsed().as_secs_f64();
    // Time for anything sent again to arrive.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = facts(&client).await;
    let changed = before
        .iter()
        .filter(|(key, facts)| after.get(*key) != Some(facts))
        .count();
    let tenants = |client: Client| async move {
        Api::<Namespace>::all(client)
            .list(&ListParams::default().labels(OWNER_UID_LABEL))
            .await
            .unwrap()
            .items
            .len()
    };
    let extra_tenants = tenants(client.clone()).await as f64 - tenants(source.clone()).await as f64;
    println!(
        "{:<34} {:>12.3} {:<12} ({} Partners; the objects were created in {created:.3} s)",
        "restore: seconds to all resumed",
        resumed,
        "s",
        before.len()
    );
    figure(
        "restore: emails sent again",
        smtp.received().len() as f64,
        "emails",
        "0",
        None,
    );
    figure(
        "restore: webhook events again",
        (webhooks.received().len() - delivered_before) as f64,
        "events",
        "0",
        None,
    );
    figure(
        "restore: tenants added",
        extra_tenants,
        "tenants",
        "0",
        None,
    );
    figure(
        "restore: Partners' facts changed",
        changed as f64,
        "partners",
        "0",
        None,
    );
    operator.stop();
}
