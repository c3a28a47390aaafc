//! The chart's RBAC on the real kube-apiserver (`--authorization-mode=RBAC`): the rendered
//! ServiceAccount, ClusterRole, ClusterRoleBinding, Role and RoleBinding applied, the operator
//! run with nothing but that ServiceAccount's token through a whole trial, and the audit log
//! read back: no request of the operator's was refused, and what the roles do not grant is.
//! (`tests/helm_chart.rs` proves on the sandbox that the roles grant nothing the operator does
//! not use.)

mod support;

use std::time::Duration;

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Pod, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use kube::api::{Api, ListParams, PostParams};
use partner_operator::leader::LeaderElection;
use partner_operator::operator::RunOptions;
use partner_operator::sandbox::control_plane::AuditedRequest;
use serde_json::{Value, json};
use support::*;

const RELEASE: &str = "po";
const NAMESPACE: &str = "partner-operator";
fn plane(h: &Harness) -> &partner_operator::sandbox::control_plane::ControlPlane {
    match &h.server {
        Backend::Kube(k) => &k.plane,
        Backend::Sandbox(_) => unreachable!("these tests run on kube-apiserver"),
    }
}

fn is_forbidden<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> bool {
    matches!(result, Err(kube::Error::Api(ref status)) if status.code == 403)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_runs_a_whole_trial_with_only_the_charts_rbac() {
    let h = Harness::start_servers(Server::Kube).await;
    let home = tempfile::tempdir().unwrap();

    // The chart's identity and roles, as `helm install` creates them.
    h.namespace(NAMESPACE, &[]).await;
    let manifests = helm::template(home.path(), RELEASE, NAMESPACE, &[]);
    let mut applied = Vec::new();
    for object in manifests {
        let kind = object["kind"].as_str().unwrap().to_string();
        if [
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding",
        ]
        .contains(&kind.as_str())
        {
            h.apply(object.clone()).await;
            applied.push((kind, object));
        }
    }
    assert_eq!(applied.len(), 5, "{applied:?}");
    let account = applied
        .iter()
        .find(|(kind, _)| kind == "ServiceAccount")
        .map(|(_, o)| o["metadata"]["name"].as_str().unwrap().to_string())
        .unwrap();
    let username = format!("system:serviceaccount:{NAMESPACE}:{account}");

    // A token for the ServiceAccount, as the kubelet would project it into the pod.
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            expiration_seconds: Some(3600),
            ..Default::default()
        }),
        ..Default::default()
    };
    let token = Api::<ServiceAccount>::namespaced(h.client.clone(), NAMESPACE)
        .create_token_request(&account, &PostParams::default(), &request)
        .await
        .expect("TokenRequest")
        .status
        .and_then(|s| s.token)
        .expect("a token");
    let client = plane(&h).client_for_token(&token, Some("partner-operator"));

    let mut election = LeaderElection::new(NAMESPACE, "replica-a");
    election.lease_duration = Duration::from_secs(3);
    election.renew_before = Duration::from_secs(1);
    let operator = h.spawn_operator_with_client(
        client.clone(),
        RunOptions {
            leader_election: Some(election),
            ..h.run_options()
        },
    );

    let tenants = scenarios::whole_trial(&h).await;
    operator.stop().await.expect("the operator ran and stopped");

    // Nothing the operator asked for was refused; it did ask (the Lease included), and every
    // request of its came with the ServiceAccount's identity.
    let audited = plane(&h).audited_requests();
    let by_operator: Vec<&AuditedRequest> =
        audited.iter().filter(|r| r.username == username).collect();
    let refused: Vec<_> = by_operator
        .iter()
        .filter(|r| r.code == Some(403))
        .map(|r| format!("{} {}", r.verb, r.request_uri))
        .collect();
    assert!(refused.is_empty(), "refused to the operator: {refused:#?}");
    assert!(by_operator.len() > 20, "{} requests", by_operator.len());
    let lease_writes = by_operator
        .iter()
        .filter(|r| {
            r.request.as_ref().is_some_and(|q| {
                q.resource == "leases" && q.namespace.as_deref() == Some(NAMESPACE)
            }) && matches!(r.verb.as_str(), "create" | "patch")
                && r.code.is_some_and(|c| c < 300)
        })
        .count();
    assert!(lease_writes >= 2, "the Lease taken and renewed");
    let as_someone_else: Vec<_> = audited
        .iter()
        .filter(|r| r.user_agent.as_deref() == Some("partner-operator") && r.username != username)
        .map(|r| format!("{} {} as {}", r.verb, r.request_uri, r.username))
        .collect();
    assert!(as_someone_else.is_empty(), "{as_someone_else:#?}");

    // What the roles do not grant is refused by the server.
    let secret: Value = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "probe", "namespace": "default"}, "stringData": {"k": "v"}});
    h.apply(secret).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "kube-system");
    assert!(
        is_forbidden(pods.list(&ListParams::default()).await),
        "pods list"
    );
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "kube-system");
    assert!(
        is_forbidden(secrets.list(&ListParams::default()).await),
        "secrets list"
    );
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    assert!(is_forbidden(secrets.get("probe").await), "a Secret read");
    let retained_secrets: Api<Secret> = Api::namespaced(client.clone(), &tenants["litware"]);
    assert!(
        is_forbidden(retained_secrets.get("activation").await),
        "the activation Secret read back"
    );
    let partners: Api<partner_operator::api::Partner> =
        Api::namespaced(client.clone(), "northwind-partners");
    h.apply(partner("northwind-partners", "fabrikam", "northwind"))
        .await;
    assert!(
        is_forbidden(partners.delete("fabrikam", &Default::default()).await),
        "a Partner deleted"
    );
    let binding: ClusterRoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "escalate"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE}],
    }))
    .unwrap();
    assert!(
        is_forbidden(
            Api::<ClusterRoleBinding>::all(client.clone())
                .create(&PostParams::default(), &binding)
                .await
        ),
        "cluster-admin for itself"
    );
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(client.clone(), "kube-system");
    assert!(
        is_forbidden(leases.list(&ListParams::default()).await),
        "Leases elsewhere"
    );

    // And the audit log records those refusals against the operator's identity (an entry may
    // land a moment after its response).
    let refused_now = || {
        plane(&h)
            .audited_requests()
            .into_iter()
            .filter(|r| r.username == username && r.code == Some(403))
            .count()
    };
    eventually("seven refusals in the audit log", PATIENCE, || async {
        refused_now() >= 7
    })
    .await;
    assert_eq!(refused_now(), 7);
}
