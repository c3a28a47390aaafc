//! The chart's RBAC on the real kube-apiserver (`--authorization-mode=RBAC`): the rendered
//! ServiceAccount, ClusterRole, ClusterRoleBinding, Role and RoleBinding applied, the operator
//! run with nothing but that ServiceAccount's token through a whole trial, and the audit log
//! read back: no request of the operator's was refused, and what the roles do not grant is.
//! The chart's ValidatingAdmissionPolicies are installed too: what RBAC grants by name only
//! (the two object names, namespace deletes) is refused outside the operator's tenants, and
//! nobody but the operator sets a namespace's ownership label.
//! (`tests/external/helm_chart.rs` proves on the sandbox that the roles grant nothing the operator does
//! not use.)

use crate::support;

use std::time::Duration;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret};
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use kube::api::{Api, ListParams, PostParams};
use partner_operator::leader::LeaderElection;
use partner_operator::operator::RunOptions;
use partner_operator::tenant::{OWNER_UID_LABEL, OWNERSHIP_PROOF_ANNOTATION};
use partner_sandbox::control_plane::AuditedRequest;
use serde_json::{Value, json};
use support::*;

const RELEASE: &str = "po";
const NAMESPACE: &str = "partner-operator";
fn plane(h: &Harness) -> &partner_sandbox::control_plane::ControlPlane {
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
    // The whole trial signs webhooks with this key: the one Secret the operator may read.
    let manifests = helm::template(
        home.path(),
        RELEASE,
        NAMESPACE,
        &[
            "--set",
            "webhooks.signingKeySecrets={northwind-webhook-key}",
        ],
    );
    let mut applied = Vec::new();
    for object in manifests {
        let kind = object["kind"].as_str().unwrap().to_string();
        if [
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding",
            "ValidatingAdmissionPolicy",
            "ValidatingAdmissionPolicyBinding",
        ]
        .contains(&kind.as_str())
        {
            h.apply(object.clone()).await;
            applied.push((kind, object));
        }
    }
    assert_eq!(applied.len(), 11, "{applied:?}");
    let account = applied
        .iter()
        .find(|(kind, _)| kind == "ServiceAccount")
        .map(|(_, o)| o["metadata"]["name"].as_str().unwrap().to_string())
        .unwrap();
    let username = format!("system:serviceaccount:{NAMESPACE}:{account}");

    // A token for the ServiceAccount, as the kubelet would project it into the pod.
    let token = support::harness::service_account_token(&h.client, NAMESPACE, &account).await;
    let client = plane(&h).client_for_token(&token, Some("partner-operator"));

    // The policies take effect a moment after they are stored.
    eventually(
        "both admission policies in force",
        Patience::RECONCILE,
        || async {
            let forged = Api::<Namespace>::all(h.client.clone())
                .create(&dry_run(), &namespace("forged", &[(OWNER_UID_LABEL, "x")]))
                .await;
            let untenanted = Api::<Namespace>::all(client.clone())
                .create(&dry_run(), &namespace("untenanted", &[]))
                .await;
            refused_by(forged, "tenant-ownership") && refused_by(untenanted, "operator-scope")
        },
    )
    .await;

    let mut election = LeaderElection::new(NAMESPACE, "replica-a");
    election.lease_duration = Duration::from_secs(3);
    election.renew_before = Duration::from_secs(1);
    let activation = support::metrics::free_port();
    let operator = h.spawn_operator_with_client(
        client.clone(),
        RunOptions {
            leader_election: Some(election),
            activation_service: Some(partner_operator::activation::ServiceOptions::new(
                activation,
            )),
            webhook_secrets_namespace: Some(NAMESPACE.into()),
            ..h.run_options()
        },
    );

    let tenants = scenarios::whole_trial(&h, activation, NAMESPACE).await;
    operator.stop().await.expect("the operator ran and stopped");

    // Nothing the operator asked for was refused; it did ask (the Lease included), and every
    // request of its came with the ServiceAccount's identity.
    let audited = plane(&h).audited_requests();
    // (The dry-run creates that waited for the policies are the test's, not the operator's.)
    let by_operator: Vec<&AuditedRequest> = audited
        .iter()
        .filter(|r| r.username == username && !r.request_uri.contains("dryRun"))
        .collect();
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
    // The activation service reads a tenant's `activation` Secret by name (to check tokens),
    // and nothing else of a tenant's Secrets.
    let retained_secrets: Api<Secret> = Api::namespaced(client.clone(), &tenants["litware"]);
    assert!(retained_secrets.get("activation").await.is_ok());
    assert!(
        is_forbidden(retained_secrets.list(&ListParams::default()).await),
        "a tenant's Secrets listed"
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

    let mut refusals = 7;

    // What RBAC grants by name, the policy confines to tenants: the two object names elsewhere,
    // a namespace that is no tenant created or deleted.
    let tenant = tenants["litware"].clone();
    let outside = [
        (
            apply_as(&client, secret_named("default", "activation")).await,
            "a Secret named activation outside a tenant",
        ),
        (
            apply_as(&client, config_map_named("default", "entitlements")).await,
            "a ConfigMap named entitlements outside a tenant",
        ),
        (
            Api::<Namespace>::all(client.clone())
                .delete("northwind-partners", &Default::default())
                .await
                .map(drop),
            "a namespace that is no tenant deleted",
        ),
        (
            Api::<Namespace>::all(client.clone())
                .create(&PostParams::default(), &namespace("untenanted", &[]))
                .await
                .map(drop),
            "a namespace created without the ownership label",
        ),
    ];
    for (result, what) in outside {
        assert!(refused_by(result, "operator-scope"), "{what}");
        refusals += 1;
    }
    // RBAC itself: other names in a tenant, and no relabelling.
    assert!(
        is_forbidden(apply_as(&client, secret_named(&tenant, "other")).await),
        "another Secret in a tenant"
    );
    assert!(
        is_forbidden(relabel(&client, "default", "team", Some("x")).await),
        "a namespace relabelled"
    );
    refusals += 2;

    // The policy holds on its own: with RBAC widened to patch any namespace, the operator may
    // change its own labels on a tenant, and nothing else.
    h.apply(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "widened"},
        "rules": [{"apiGroups": [""], "resources": ["namespaces", "namespaces/status", "namespaces/finalize"],
            "verbs": ["patch", "update"]}],
    }))
    .await;
    h.apply(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "widened"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "widened"},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE}],
    }))
    .await;
    eventually("the widened role in force", Patience::RECONCILE, || async {
        may_patch_namespaces(&client).await
    })
    .await;
    relabel(&client, &tenant, "partner-operator.io/probe", Some("1"))
        .await
        .expect("the operator's own label on a tenant");
    for (namespace, key, value, what) in [
        (
            "default",
            "partner-operator.io/probe",
            Some("1"),
            "a label on a namespace that is no tenant",
        ),
        (
            tenant.as_str(),
            "team",
            Some("x"),
            "someone else's label on a tenant",
        ),
        (
            tenant.as_str(),
            OWNER_UID_LABEL,
            Some("another-uid"),
            "the ownership label changed",
        ),
        (
            tenant.as_str(),
            OWNER_UID_LABEL,
            None,
            "the ownership label removed",
        ),
    ] {
        assert!(
            refused_by(
                relabel(&client, namespace, key, value).await,
                "operator-scope"
            ),
            "{what}"
        );
        refusals += 1;
    }

    // Nor through a namespace's subresources, nor does it change or remove its proof.
    let operator_side_doors = [
        (
            relabel_status(&client, "default", OWNER_UID_LABEL, Some("x")).await,
            "the ownership label set through namespaces/status",
        ),
        (
            relabel_finalize((&h.client, &client), "default", OWNER_UID_LABEL, Some("x")).await,
            "the ownership label set through namespaces/finalize",
        ),
        (
            annotate(&client, &tenant, OWNERSHIP_PROOF_ANNOTATION, Some("v1:00")).await,
            "the ownership proof changed",
        ),
        (
            annotate(&client, &tenant, OWNERSHIP_PROOF_ANNOTATION, None).await,
            "the ownership proof removed",
        ),
    ];
    for (result, what) in operator_side_doors {
        assert!(refused_by(result, "operator-scope"), "{what}");
        refusals += 1;
    }

    // Nobody else writes the ownership label: not on a new namespace, not on an old one, not
    // on a tenant, not through a subresource (namespaces/status and namespaces/finalize carry
    // labels too). Nor the proof. Other labels on a tenant are theirs to set.
    let admin = h.client.clone();
    let forged = Api::<Namespace>::all(admin.clone())
        .create(
            &PostParams::default(),
            &namespace("forged", &[(OWNER_UID_LABEL, "x")]),
        )
        .await;
    assert!(
        refused_by(forged, "tenant-ownership"),
        "a forged tenant created"
    );
    for (namespace, value) in [
        ("default", Some("x")),
        (tenant.as_str(), Some("another-uid")),
        (tenant.as_str(), None),
    ] {
        assert!(
            refused_by(
                relabel(&admin, namespace, OWNER_UID_LABEL, value).await,
                "tenant-ownership"
            ),
            "{namespace}: ownership label set to {value:?} by an admin"
        );
    }
    for (result, what) in [
        (
            relabel_status(&admin, "default", OWNER_UID_LABEL, Some("x")).await,
            "the ownership label set through namespaces/status",
        ),
        (
            relabel_status(&admin, &tenant, OWNER_UID_LABEL, Some("another-uid")).await,
            "the ownership label changed through namespaces/status",
        ),
        (
            relabel_finalize((&admin, &admin), "default", OWNER_UID_LABEL, Some("x")).await,
            "the ownership label set through namespaces/finalize",
        ),
        (
            relabel_finalize((&admin, &admin), &tenant, OWNER_UID_LABEL, None).await,
            "the ownership label removed through namespaces/finalize",
        ),
        (
            annotate(&admin, "default", OWNERSHIP_PROOF_ANNOTATION, Some("v1:00")).await,
            "a proof set on a namespace",
        ),
        (
            annotate(&admin, &tenant, OWNERSHIP_PROOF_ANNOTATION, None).await,
            "a tenant's proof removed",
        ),
    ] {
        assert!(refused_by(result, "tenant-ownership"), "{what} by an admin");
    }
    let labels = |ns: Namespace| ns.metadata.labels.unwrap_or_default();
    let default = Api::<Namespace>::all(admin.clone())
        .get("default")
        .await
        .unwrap();
    assert!(!labels(default).contains_key(OWNER_UID_LABEL));
    relabel(&admin, &tenant, "team", Some("x"))
        .await
        .expect("an admin labels a tenant");
    relabel_status(&admin, &tenant, "team", Some("y"))
        .await
        .expect("an admin labels a tenant through namespaces/status");

    // And the audit log records the operator identity's refusals (an entry may land a moment
    // after its response).
    let refused_now = || {
        plane(&h)
            .audited_requests()
            .into_iter()
            .filter(|r| r.username == username && r.code == Some(403))
            // The probes that waited for the policies to take effect.
            .filter(|r| !r.request_uri.contains("dryRun"))
            .count()
    };
    eventually(
        "every refusal in the audit log",
        Patience::RECONCILE,
        || async { refused_now() >= refusals },
    )
    .await;
    assert_eq!(refused_now(), refusals);
}

/// With the chart's defaults the operator's ServiceAccount reads no Secret through the API:
/// not the SMTP URL's, not the activation or ownership key (all three are mounted into the pod,
/// which takes no RBAC of the operator's), not any other. With webhook signing keys listed,
/// those and no other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_cannot_read_the_smtp_secret() {
    let h = Harness::start_servers(Server::Kube).await;
    let home = tempfile::tempdir().unwrap();
    h.namespace(NAMESPACE, &[]).await;
    let secrets = [
        "partner-operator-smtp",
        "po-partner-operator-activation-key",
        "po-partner-operator-ownership-key",
        "northwind-webhook-key",
        "another",
    ];
    for name in secrets {
        h.apply(secret_named(NAMESPACE, name)).await;
    }
    let listed = [
        "--set",
        "webhooks.signingKeySecrets={northwind-webhook-key}",
    ];
    let mut applied = std::collections::BTreeSet::new();
    for (values, readable) in [
        (&[][..], &[][..]),
        (&listed[..], &["northwind-webhook-key"][..]),
    ] {
        let mut account = None;
        for object in helm::template(home.path(), RELEASE, NAMESPACE, values) {
            let kind = object["kind"].as_str().unwrap();
            if [
                "ServiceAccount",
                "ClusterRole",
                "ClusterRoleBinding",
                "Role",
                "RoleBinding",
            ]
            .contains(&kind)
            {
                if kind == "ServiceAccount" {
                    account = object["metadata"]["name"].as_str().map(str::to_string);
                }
                // What the first rendering applied stays as it was.
                if applied.insert((kind.to_string(), object["metadata"]["name"].to_string())) {
                    h.apply(object).await;
                }
            }
        }
        let token =
            support::harness::service_account_token(&h.client, NAMESPACE, &account.unwrap()).await;
        let client = plane(&h).client_for_token(&token, Some("partner-operator"));
        let api: Api<Secret> = Api::namespaced(client, NAMESPACE);
        eventually(
            format!("only {readable:?} readable with {values:?}"),
            Patience::RECONCILE,
            || async {
                let mut wrong = Vec::new();
                for name in secrets {
                    let result = api.get(name).await;
                    let read = result.is_ok();
                    if read != readable.contains(&name) || (!read && !is_forbidden(result)) {
                        wrong.push(name);
                    }
                }
                if !is_forbidden(api.list(&ListParams::default()).await) {
                    wrong.push("(list)");
                }
                wrong.is_empty()
            },
        )
        .await;
    }
}

fn dry_run() -> PostParams {
    PostParams {
        dry_run: true,
        ..Default::default()
    }
}

fn namespace(name: &str, labels: &[(&str, &str)]) -> Namespace {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels.iter().cloned().collect::<BTreeMap<_, _>>()},
    }))
    .unwrap()
}

/// Refused by the chart's ValidatingAdmissionPolicy whose name ends in `policy`.
fn refused_by<T: std::fmt::Debug>(result: Result<T, kube::Error>, policy: &str) -> bool {
    match result {
        Err(kube::Error::Api(status)) => {
            status.code == 403
                && status.message.contains("ValidatingAdmissionPolicy")
                && status.message.contains(policy)
        }
        _ => false,
    }
}

fn secret_named(namespace: &str, name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace}, "stringData": {"k": "v"}})
}

fn config_map_named(namespace: &str, name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace}, "data": {"k": "v"}})
}

/// A server-side apply of `object` with `client`, as the operator writes.
async fn apply_as(client: &kube::Client, object: Value) -> kube::Result<()> {
    let name = object["metadata"]["name"].as_str().unwrap().to_string();
    let namespace = object["metadata"]["namespace"]
        .as_str()
        .unwrap()
        .to_string();
    let params = kube::api::PatchParams::apply("partner-operator").force();
    let patch = kube::api::Patch::Apply(&object);
    if object["kind"] == "Secret" {
        Api::<Secret>::namespaced(client.clone(), &namespace)
            .patch(&name, &params, &patch)
            .await
            .map(drop)
    } else {
        Api::<ConfigMap>::namespaced(client.clone(), &namespace)
            .patch(&name, &params, &patch)
            .await
            .map(drop)
    }
}

/// Sets (or, with `None`, removes) one label of a namespace by merge patch.
async fn relabel(
    client: &kube::Client,
    namespace: &str,
    key: &str,
    value: Option<&str>,
) -> kube::Result<()> {
    Api::<Namespace>::all(client.clone())
        .patch(
            namespace,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"metadata": {"labels": {key: value}}})),
        )
        .await
        .map(drop)
}

/// Sets (or removes) one label of a namespace by a merge patch of `namespaces/status`.
async fn relabel_status(
    client: &kube::Client,
    namespace: &str,
    key: &str,
    value: Option<&str>,
) -> kube::Result<()> {
    Api::<Namespace>::all(client.clone())
        .patch_status(
            namespace,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"metadata": {"labels": {key: value}}})),
        )
        .await
        .map(drop)
}

/// Sets (or removes) one label of a namespace by a PUT of `namespaces/finalize` with `client`,
/// which takes the whole namespace (read with `reader`).
async fn relabel_finalize(
    (reader, client): (&kube::Client, &kube::Client),
    namespace: &str,
    key: &str,
    value: Option<&str>,
) -> kube::Result<()> {
    let mut ns = Api::<Namespace>::all(reader.clone()).get(namespace).await?;
    let labels = ns.metadata.labels.get_or_insert_with(Default::default);
    match value {
        Some(value) => labels.insert(key.into(), value.into()),
        None => labels.remove(key),
    };
    let request = axum::http::Request::put(format!("/api/v1/namespaces/{namespace}/finalize"))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&ns).unwrap())
        .unwrap();
    client.request::<Namespace>(request).await.map(drop)
}

/// Sets (or, with `None`, removes) one annotation of a namespace by merge patch.
async fn annotate(
    client: &kube::Client,
    namespace: &str,
    key: &str,
    value: Option<&str>,
) -> kube::Result<()> {
    Api::<Namespace>::all(client.clone())
        .patch(
            namespace,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"metadata": {"annotations": {key: value}}})),
        )
        .await
        .map(drop)
}

/// Whether RBAC lets `client` patch namespaces, as the API server's authorizer sees it now.
async fn may_patch_namespaces(client: &kube::Client) -> bool {
    use k8s_openapi::api::authorization::v1::{
        ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
    };
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                verb: Some("patch".into()),
                resource: Some("namespaces".into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<SelfSubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .expect("a SelfSubjectAccessReview")
        .status
        .is_some_and(|s| s.allowed)
}
