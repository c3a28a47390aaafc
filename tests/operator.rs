//! The operator end to end: real controllers in-process, against the sandbox API server, a real
//! SMTP server on loopback, and a clock the test moves.

mod support;

use std::collections::BTreeMap;

use chrono::Duration;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use partner_operator::api::{EmailEvent, ProductionReason};
use partner_operator::lifecycle::message_id;
use partner_operator::tenant::token_hash;
use serde_json::json;
use sha2::Digest as _;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn happy_path_trial_notice_and_automatic_upgrade() {
    let h = Harness::start().await;
    h.northwind(true).await;
    h.apply(partner("northwind-partners", "contoso", "northwind")).await;

    let p = h
        .wait_partner("northwind-partners", "contoso", "Ready", is_ready)
        .await;
    let status = p.status.clone().unwrap();
    assert_eq!(level(&p), "Trial");
    assert_eq!(status.skus.len(), 2);
    let tenant = status.tenant.clone().unwrap();
    assert_eq!(tenant.namespace, "northwind-partners-contoso");
    let trial = status.trial.clone().unwrap();
    assert_eq!(trial.started_at, start_time());
    assert_eq!(trial.ends_at, start_time() + Duration::days(14));
    for type_ in ["DistributorBound", "TenantProvisioned", "ActivationSent"] {
        assert_eq!(condition(&p, type_).unwrap().0, "True", "{type_}");
    }

    // The tenant: a labelled namespace, entitlements, and only a hash of the token.
    let ns = Api::<Namespace>::all(h.client.clone())
        .get(&tenant.namespace)
        .await
        .unwrap();
    let labels = ns.metadata.labels.unwrap_or_default();
    assert_eq!(labels["partner-operator.io/tenant-id"], tenant.id);
    assert_eq!(labels["partner-operator.io/partner"], "contoso");
    let entitlements = Api::<ConfigMap>::namespaced(h.client.clone(), &tenant.namespace)
        .get("entitlements")
        .await
        .unwrap()
        .data
        .unwrap();
    assert_eq!(entitlements["level"], "Trial");
    assert_eq!(entitlements["skus"], "ESSENTIALS,GOVERNANCE");
    assert_eq!(entitlements["tenantId"], tenant.id);

    // The activation email: to the Partner, with its link and deterministic Message-ID.
    let emails = h.wait_emails(1).await;
    assert_eq!(emails.len(), 1);
    let activation = &emails[0];
    assert_eq!(activation.to, vec!["admin@contoso.example"]);
    assert_eq!(
        activation.message_id.as_deref(),
        Some(message_id(&uid(&p), EmailEvent::Activation).as_str())
    );
    assert_eq!(status.activation.as_ref().unwrap().message_id, activation.message_id);
    let link = activation_link(activation);
    let query: BTreeMap<_, _> = link.query_pairs().into_owned().collect();
    assert_eq!(query["tenant"], tenant.id);
    let token = &query["token"];
    assert_eq!(token.len(), 64, "256 bits, hex");
    let secret = Api::<Secret>::namespaced(h.client.clone(), &tenant.namespace)
        .get("activation")
        .await
        .unwrap();
    let stored = secret.data.unwrap();
    let stored_hash = String::from_utf8(stored["tokenSha256"].0.clone()).unwrap();
    assert_eq!(stored_hash, token_hash(token));
    assert!(
        !serde_json::to_string(&p).unwrap().contains(token.as_str()),
        "the token is not in the Partner"
    );
    assert_eq!(hex::encode(sha2::Sha256::digest(token.as_bytes())), stored_hash);

    // The notice, three days before the end, to both parties.
    h.advance_days(11);
    let emails = h.wait_emails(2).await;
    let notice = &emails[1];
    assert_eq!(notice.event.as_deref(), Some("upgrade-notice"));
    let mut to = notice.to.clone();
    to.sort();
    assert_eq!(to, vec!["admin@contoso.example", "ops@northwind.example"]);
    let p = h
        .wait_partner("northwind-partners", "contoso", "notice recorded", |p| {
            p.status.as_ref().unwrap().upgrade_notice_sent_at.is_some()
        })
        .await;
    assert_eq!(level(&p), "Trial");

    // The end of the trial: Production, billed from the deadline, not from when it was seen.
    h.advance_days(3);
    h.clock.advance(Duration::hours(5));
    let p = h
        .wait_partner("northwind-partners", "contoso", "Production", |p| {
            level(p) == "Production" && is_ready(p)
        })
        .await;
    let status = p.status.unwrap();
    let production = status.production.unwrap();
    assert_eq!(production.reason, ProductionReason::AutoUpgrade);
    assert_eq!(production.since, trial.ends_at);
    let billing = status.billing.unwrap();
    assert_eq!(billing.started_at, trial.ends_at);
    assert_eq!(billing.billed_to, "northwind");
    let emails = h.wait_emails(3).await;
    assert_eq!(emails[2].event.as_deref(), Some("converted"));

    let d = h
        .wait_distributor("northwind", "counts", |d| {
            d.status
                .as_ref()
                .and_then(|s| s.billing.as_ref())
                .is_some_and(|b| b.production_partners == 1)
        })
        .await;
    let ds = d.status.unwrap();
    assert_eq!(ds.partners.unwrap().production, 1);
    assert_eq!(ds.billing.unwrap().seats["ESSENTIALS"], 1);
    let entitlements = Api::<ConfigMap>::namespaced(h.client.clone(), &tenant.namespace)
        .get("entitlements")
        .await
        .unwrap()
        .data
        .unwrap();
    assert_eq!(entitlements["level"], "Production");
    // Nothing else was mailed.
    assert_eq!(h.smtp.received().len(), 3);
    let _ = (DeleteParams::default(), PatchParams::default(), Patch::Merge(json!({})));
}
