//! The chart installed, upgraded and uninstalled by the stock `helm` CLI (built from
//! `helm.sh/helm/v4` by `hack/kube-assets.sh`) on the real kube-apiserver, with Helm's default
//! storage (a Secret per revision). No kubelet runs, so the Deployment's pods never start; the
//! test waits for objects, never for pods.

use crate::support;

use k8s_openapi::api::admissionregistration::v1::{
    ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Secret, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, ListParams};
use partner_operator::api::{Distributor, Partner};
use partner_sandbox::control_plane::ControlPlane;
use serde_json::{Value, json};
use support::helm::{CHART, helm_ok};
use support::*;

const RELEASE: &str = "po";
const NAMESPACE: &str = "partner-operator";
const FULLNAME: &str = "po-partner-operator";

/// Which of the release's objects exist: (kind, exists).
async fn release_objects(client: &Client) -> Vec<(&'static str, bool)> {
    vec![
        (
            "Deployment",
            Api::<Deployment>::namespaced(client.clone(), NAMESPACE)
                .get_opt(FULLNAME)
                .await
                .unwrap()
                .is_some(),
        ),
        (
            "Service",
            Api::<Service>::namespaced(client.clone(), NAMESPACE)
                .get_opt(&format!("{FULLNAME}-metrics"))
                .await
                .unwrap()
                .is_some(),
        ),
        (
            "ServiceAccount",
            Api::<ServiceAccount>::namespaced(client.clone(), NAMESPACE)
                .get_opt(FULLNAME)
                .await
                .unwrap()
                .is_some(),
        ),
        (
            "ClusterRole",
            Api::<ClusterRole>::all(client.clone())
                .get_opt(FULLNAME)
                .await
                .unwrap()
                .is_some(),
        ),
        (
            "ClusterRoleBinding",
            Api::<ClusterRoleBinding>::all(client.clone())
                .get_opt(FULLNAME)
                .await
                .unwrap()
                .is_some(),
        ),
        (
            "Role",
            Api::<Role>::namespaced(client.clone(), NAMESPACE)
                .get_opt(&format!("{FULLNAME}-leader-election"))
                .await
                .unwrap()
                .is_some(),
        ),
        (
            "RoleBinding",
            Api::<RoleBinding>::namespaced(client.clone(), NAMESPACE)
                .get_opt(&format!("{FULLNAME}-leader-election"))
                .await
                .unwrap()
                .is_some(),
        ),
        (
            "ValidatingAdmissionPolicy",
            Api::<ValidatingAdmissionPolicy>::all(client.clone())
                .get_opt(&format!("{FULLNAME}-operator-scope"))
                .await
                .unwrap()
                .is_some(),
        ),
        (
            "ValidatingAdmissionPolicyBinding",
            Api::<ValidatingAdmissionPolicyBinding>::all(client.clone())
                .get_opt(&format!("{FULLNAME}-tenant-ownership"))
                .await
                .unwrap()
                .is_some(),
        ),
    ]
}

/// The names of the release's storage Secrets, sorted.
async fn release_secrets(client: &Client) -> Vec<String> {
    let mut names: Vec<String> = Api::<Secret>::namespaced(client.clone(), NAMESPACE)
        .list(&ListParams::default().labels(&format!("owner=helm,name={RELEASE}")))
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|s| s.metadata.name.unwrap())
        .collect();
    names.sort();
    names
}

async fn concurrency_arg(client: &Client) -> String {
    let deployment = Api::<Deployment>::namespaced(client.clone(), NAMESPACE)
        .get(FULLNAME)
        .await
        .unwrap();
    let container = &deployment.spec.template.spec.as_ref().unwrap().containers[0];
    container
        .args
        .iter()
        .flatten()
        .find(|a| a.starts_with("--concurrency="))
        .cloned()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_installs_upgrades_and_uninstalls_the_chart() {
    // A bare control plane: the CRDs are Helm's to install.
    let dir = tempfile::Builder::new()
        .prefix("kube-apiserver-")
        .tempdir()
        .unwrap();
    let plane = ControlPlane::start(&servers::kube_assets(), &dir.path().join("plane"))
        .await
        .unwrap_or_else(|e| panic!("the real control plane does not start: {e}"));
    let client = plane.client();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, plane.kubeconfig_yaml()).unwrap();
    let kubeconfig = kubeconfig.to_string_lossy().into_owned();
    let home = dir.path().join("helm");
    let helm = |args: &[&str]| {
        let mut all = vec!["--kubeconfig", &kubeconfig, "--namespace", NAMESPACE];
        all.extend_from_slice(args);
        helm_ok(&home, &all)
    };
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    assert!(
        crds.get_opt("partners.partner-operator.io")
            .await
            .unwrap()
            .is_none()
    );

    // Values the schema refuses: no install, nothing recorded.
    let refused = support::helm::helm(
        &home,
        &[
            "--kubeconfig",
            &kubeconfig,
            "--namespace",
            NAMESPACE,
            "install",
            RELEASE,
            CHART,
            "--create-namespace",
            "--set",
            "concurrency=many",
        ],
    );
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && stderr.contains("concurrency"),
        "{stderr}"
    );
    assert!(release_secrets(&client).await.is_empty());

    // Install: CRDs from crds/, then every template, the release recorded as revision 1.
    helm(&["install", RELEASE, CHART, "--create-namespace"]);
    assert_eq!(
        release_secrets(&client).await,
        [format!("sh.helm.release.v1.{RELEASE}.v1")]
    );
    let storage = Api::<Secret>::namespaced(client.clone(), NAMESPACE)
        .get(&format!("sh.helm.release.v1.{RELEASE}.v1"))
        .await
        .unwrap();
    assert_eq!(storage.type_.as_deref(), Some("helm.sh/release.v1"));
    for (kind, exists) in release_objects(&client).await {
        assert!(exists, "{kind} installed");
    }
    for crd in [
        "partners.partner-operator.io",
        "distributors.partner-operator.io",
    ] {
        let established = kube::runtime::wait::conditions::is_crd_established();
        tokio::time::timeout(
            Patience::API_SERVER.limit,
            kube::runtime::wait::await_condition(crds.clone(), crd, established),
        )
        .await
        .unwrap_or_else(|_| panic!("{crd} not established"))
        .unwrap();
    }
    assert_eq!(concurrency_arg(&client).await, "--concurrency=64");
    let list: Value = serde_json::from_str(&helm(&["list", "--output", "json"])).unwrap();
    assert_eq!(list[0]["name"], RELEASE);
    assert_eq!(list[0]["status"], "deployed");

    // A Distributor and a Partner, which the uninstall must leave alone.
    let create = |object: Value| {
        let client = client.clone();
        async move {
            partner_sandbox::create_object(&client, object)
                .await
                .expect("created")
        }
    };
    create(
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {
        "name": "northwind-partners", "labels": {"partner-operator.io/distributor": "northwind"}}}),
    )
    .await;
    create(distributor("northwind", true)).await;
    create(partner("northwind-partners", "contoso", "northwind")).await;

    // Upgrade with a changed value: revision 2, the Deployment changed, the CRDs untouched.
    let crd_version = crds
        .get("partners.partner-operator.io")
        .await
        .unwrap()
        .metadata
        .resource_version;
    let activation_key = || async {
        Api::<Secret>::namespaced(client.clone(), NAMESPACE)
            .get(&format!("{FULLNAME}-activation-key"))
            .await
            .expect("the generated activation key")
            .data
            .unwrap()["key"]
            .clone()
    };
    let key_before = activation_key().await;
    assert_eq!(key_before.0.len(), 64);
    helm(&["upgrade", RELEASE, CHART, "--set", "concurrency=8"]);
    assert_eq!(
        activation_key().await,
        key_before,
        "an upgrade keeps the activation key (resent emails keep their links)"
    );
    assert_eq!(
        release_secrets(&client).await,
        [
            format!("sh.helm.release.v1.{RELEASE}.v1"),
            format!("sh.helm.release.v1.{RELEASE}.v2")
        ]
    );
    assert_eq!(concurrency_arg(&client).await, "--concurrency=8");
    let history: Value = serde_json::from_str(&helm(&["history", RELEASE, "-o", "json"])).unwrap();
    let statuses: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["superseded", "deployed"]);
    assert_eq!(
        crds.get("partners.partner-operator.io")
            .await
            .unwrap()
            .metadata
            .resource_version,
        crd_version,
        "helm upgrade leaves the CRDs alone"
    );

    // Uninstall: every templated object and the release's Secrets go; the CRDs and the
    // Partners and Distributors stay.
    helm(&["uninstall", RELEASE]);
    eventually(
        "the release's objects removed",
        Patience::DELETION,
        || async { release_objects(&client).await.iter().all(|(_, e)| !e) },
    )
    .await;
    assert!(release_secrets(&client).await.is_empty());
    for crd in [
        "partners.partner-operator.io",
        "distributors.partner-operator.io",
    ] {
        assert!(crds.get_opt(crd).await.unwrap().is_some(), "{crd} kept");
    }
    assert!(
        Api::<Partner>::namespaced(client.clone(), "northwind-partners")
            .get_opt("contoso")
            .await
            .unwrap()
            .is_some(),
        "the Partner kept"
    );
    assert!(
        Api::<Distributor>::all(client.clone())
            .get_opt("northwind")
            .await
            .unwrap()
            .is_some(),
        "the Distributor kept"
    );
    let list: Value = serde_json::from_str(&helm(&["list", "--output", "json"])).unwrap();
    assert_eq!(list, json!([]));
}
