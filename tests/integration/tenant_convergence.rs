//! The tenant follows the Partner's status from what is observed, whatever was lost on the way:
//! a tenant write that failed, a response lost after the server applied the write, the
//! `entitlements` ConfigMap deleted or edited by someone else. The lost responses are injected
//! by the sandbox API server (kube-apiserver has no such knob); the edits run on both servers.

use crate::support;

use chrono::Duration;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use partner_operator::api::types;
use partner_sandbox::apiserver::FaultRule;
use serde_json::json;
use support::*;

crate::on_both_servers!(
    deleted_or_edited_entitlements_are_restored,
    a_deleted_tenant_comes_back_with_the_emailed_link_working,
);

const NAMESPACE: &str = "northwind-partners";

/// A Ready Partner `contoso` of northwind; its tenant namespace.
async fn ready_contoso(h: &Harness) -> String {
    h.northwind(true).await;
    h.apply(partner(NAMESPACE, "contoso", "northwind")).await;
    let p = h
        .wait_partner(NAMESPACE, "contoso", "Ready", is_ready)
        .await;
    p.status.unwrap().tenant.unwrap().namespace
}

async fn deleted_or_edited_entitlements_are_restored(server: Server) {
    let h = Harness::start(server).await;
    let tenant = ready_contoso(&h).await;
    wait_entitlements_level(&h, &tenant, SubscriptionLevel::Trial).await;
    let configmaps = Api::<ConfigMap>::namespaced(h.client.clone(), &tenant);

    configmaps
        .delete("entitlements", &DeleteParams::default())
        .await
        .unwrap();
    wait_entitlements_level(&h, &tenant, SubscriptionLevel::Trial).await;

    // Someone else's edit of a value the operator owns is undone; a key of their own stays.
    configmaps
        .patch(
            "entitlements",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"level": "Production", "note": "mine"}})),
        )
        .await
        .unwrap();
    eventually("the level restored", Patience::RECONCILE, || async {
        entitlements(&h, &tenant)
            .await
            .is_some_and(|data| data["level"] == "Trial" && data.contains_key("note"))
    })
    .await;
}

/// The status write that converts the trial lands, but its response is lost: the operator
/// never sees its own write succeed, and the tenant still follows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_response_to_the_converting_status_write_still_converts_the_tenant() {
    let h = Harness::start(Server::Sandbox).await;
    let tenant = ready_contoso(&h).await;
    wait_entitlements_level(&h, &tenant, SubscriptionLevel::Trial).await;
    h.server.sandbox().inject_fault(
        FaultRule::once("patch", 500)
            .on("partners/status")
            .losing_response(),
    );
    h.clock.advance(Duration::days(14));
    h.wait_partner(NAMESPACE, "contoso", "Production", |p| {
        level(p) == SubscriptionLevel::Production
    })
    .await;
    wait_entitlements_level(&h, &tenant, SubscriptionLevel::Production).await;
}

/// The tenant Namespace is created but the answer is lost, and the first `entitlements` write
/// fails: the ConfigMap is written all the same, and `TenantProvisioned` waits for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_and_failed_tenant_writes_during_provisioning_are_made_good() {
    let h = Harness::start(Server::Sandbox).await;
    h.northwind(true).await;
    let sandbox = h.server.sandbox();
    sandbox.inject_fault(
        FaultRule::once("create", 500)
            .on("namespaces")
            .losing_response(),
    );
    sandbox.inject_fault(FaultRule::once("patch", 500).on("configmaps"));
    h.apply(partner(NAMESPACE, "contoso", "northwind")).await;
    let p = h
        .wait_partner(NAMESPACE, "contoso", "Ready", is_ready)
        .await;
    assert_eq!(
        condition(&p, types::TENANT_PROVISIONED),
        Some(("True".into(), "Provisioned".into()))
    );
    let tenant = p.status.unwrap().tenant.unwrap().namespace;
    wait_entitlements_level(&h, &tenant, SubscriptionLevel::Trial).await;
    // The operator did go through the failed write: the ConfigMap took a second one.
    let writes = h
        .server
        .requests()
        .iter()
        .filter(|r| {
            r.verb == "patch"
                && r.resource == "configmaps"
                && r.namespace.as_deref() == Some(tenant.as_str())
        })
        .count();
    assert!(writes >= 2, "{writes} entitlements writes");
}

/// Someone deletes the tenant namespace after the activation email went out: the tenant is
/// made again (same name, a new namespace), with its entitlements and with the activation
/// Secret that makes the link already emailed work.
async fn a_deleted_tenant_comes_back_with_the_emailed_link_working(server: Server) {
    let h = Harness::start(server).await;
    let tenant = ready_contoso(&h).await;
    let token = activation_token(&h.wait_emails(1).await[0]);
    let namespaces = Api::<k8s_openapi::api::core::v1::Namespace>::all(h.client.clone());
    let first_uid = namespaces.get(&tenant).await.unwrap().metadata.uid;
    namespaces
        .delete(&tenant, &DeleteParams::default())
        .await
        .unwrap();
    let secrets = Api::<k8s_openapi::api::core::v1::Secret>::namespaced(h.client.clone(), &tenant);
    eventually(
        "the tenant made again with its activation Secret",
        Patience::DELETION,
        || async {
            let again = namespaces.get_opt(&tenant).await.ok().flatten();
            let made_again = again.is_some_and(|ns| {
                ns.metadata.uid != first_uid && ns.metadata.deletion_timestamp.is_none()
            });
            made_again && secrets.get_opt("activation").await.ok().flatten().is_some()
        },
    )
    .await;
    let stored = secrets.get("activation").await.unwrap().data.unwrap()["tokenSha256"]
        .0
        .clone();
    assert_eq!(
        String::from_utf8(stored).unwrap(),
        partner_operator::tenant::token_hash(&token)
    );
    wait_entitlements_level(&h, &tenant, SubscriptionLevel::Trial).await;
    h.settled().await;
    assert_eq!(h.smtp.received().len(), 1, "no second activation email");
}

/// As above, and the first write of the activation Secret into the new namespace fails: the
/// next pass stores it (the entitlements, written after it, are still missing then).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_activation_restore_is_made_again() {
    let h = Harness::start(Server::Sandbox).await;
    let tenant = ready_contoso(&h).await;
    let token = activation_token(&h.wait_emails(1).await[0]);
    h.server
        .sandbox()
        .inject_fault(FaultRule::once("patch", 500).on("secrets"));
    Api::<k8s_openapi::api::core::v1::Namespace>::all(h.client.clone())
        .delete(&tenant, &DeleteParams::default())
        .await
        .unwrap();
    let secrets = Api::<k8s_openapi::api::core::v1::Secret>::namespaced(h.client.clone(), &tenant);
    eventually(
        "the activation Secret stored after all",
        Patience::RECONCILE,
        || async {
            secrets
                .get_opt("activation")
                .await
                .ok()
                .flatten()
                .is_some_and(|s| {
                    s.data
                        .unwrap_or_default()
                        .get("tokenSha256")
                        .map(|v| v.0.clone())
                        == Some(partner_operator::tenant::token_hash(&token).into_bytes())
                })
        },
    )
    .await;
    wait_entitlements_level(&h, &tenant, SubscriptionLevel::Trial).await;
}

/// The tenant namespace is made, then the status write that records it fails: the next pass
/// finds the namespace its own and provisions it, and the activation email decided in the lost
/// write goes out, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_status_write_after_the_tenant_is_made_loses_no_email() {
    let h = Harness::start(Server::Sandbox).await;
    h.northwind(true).await;
    h.server
        .sandbox()
        .inject_fault(FaultRule::once("patch", 500).on("partners/status"));
    h.apply(partner(NAMESPACE, "contoso", "northwind")).await;
    let p = h
        .wait_partner(NAMESPACE, "contoso", "Ready", is_ready)
        .await;
    let emails = h.wait_emails(1).await;
    assert_eq!(emails.len(), 1, "{emails:#?}");
    assert_eq!(emails[0].event.as_deref(), Some("activation"));
    h.settled().await;
    assert_eq!(h.smtp.received().len(), 1, "sent once");
    let tenant = p.status.unwrap().tenant.unwrap().namespace;
    wait_entitlements_level(&h, &tenant, SubscriptionLevel::Trial).await;
}

/// The claim (the finalizer and the owner's uid) is refused as made from a changed Partner:
/// it is made again at once from the Partner as read, not after a backoff.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_refused_as_made_from_a_stale_copy_is_made_again_from_a_fresh_read() {
    let h = Harness::start(Server::Sandbox).await;
    h.northwind(true).await;
    h.server
        .sandbox()
        .inject_fault(FaultRule::once("patch", 409).on("partners"));
    h.apply(partner(NAMESPACE, "contoso", "northwind")).await;
    h.wait_partner(NAMESPACE, "contoso", "Ready", is_ready)
        .await;
    let contoso: Vec<_> = h
        .server
        .requests()
        .into_iter()
        .filter(|r| {
            r.resource == "partners"
                && r.subresource.is_none()
                && r.name.as_deref() == Some("contoso")
                && r.user_agent.as_deref() == Some("partner-operator")
                && matches!(r.verb.as_str(), "get" | "patch")
        })
        .map(|r| r.verb)
        .collect();
    assert_eq!(
        contoso[..3],
        ["patch", "get", "patch"],
        "the refused claim, the read, the claim: {contoso:?}"
    );
}
