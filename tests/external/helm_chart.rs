//! The Helm chart, checked by Helm's own Go library (the `helm-python-sdk` wheel from PyPI, in
//! the project's virtual environment `target/test-venv`, driven by `tests/helm/chart.py`):
//! lint, renders with defaults and with every option, `values.schema.json` refusing bad values,
//! the chart's CRDs equal to `crds/`, the rendered manifests applied to the sandbox API server
//! with `/usr/bin/kubectl`, and the RBAC proof: the ClusterRole and Role grant exactly what the
//! operator uses in its scenarios.

use crate::support;

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::{Value, json};
use support::python::python;
use support::*;

fn chart_py(args: &[&str]) -> (bool, Value) {
    let output = Command::new(python())
        .arg(project("tests/helm/chart.py"))
        .args(args)
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "chart.py printed no JSON ({e}): {stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output.status.success(), value)
}

const CHART: &str = "charts/partner-operator";
const NAMESPACE: &str = "partner-operator";

/// The rendered manifests (NOTES.txt apart), parsed, or Helm's error.
fn render(values: Value) -> Result<Vec<Value>, String> {
    let (ok, out) = chart_py(&[
        "render",
        &project(CHART).to_string_lossy(),
        &values.to_string(),
        "po",
        NAMESPACE,
    ]);
    if !ok {
        return Err(out["error"].as_str().unwrap_or_default().to_string());
    }
    let mut manifests = Vec::new();
    for (path, text) in out["templates"].as_object().unwrap() {
        if path.ends_with("NOTES.txt") {
            continue;
        }
        for doc in serde_yaml::Deserializer::from_str(text.as_str().unwrap()) {
            let value: Value = serde::Deserialize::deserialize(doc).unwrap();
            if !value.is_null() {
                manifests.push(value);
            }
        }
    }
    Ok(manifests)
}

fn kinds(manifests: &[Value]) -> BTreeSet<String> {
    manifests
        .iter()
        .map(|m| m["kind"].as_str().unwrap().to_string())
        .collect()
}

fn of_kind<'a>(manifests: &'a [Value], kind: &str) -> &'a Value {
    manifests
        .iter()
        .find(|m| m["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} rendered"))
}

fn every_option() -> Value {
    json!({
        "smtp": {"existingSecret": "mail", "urlKey": "smtp-url", "insecurePlaintext": true},
        "mailFrom": "Onboarding <onboarding@northwind.example>",
        "activationBaseUrl": "https://portal.northwind.example/activate",
        "watchNamespace": "northwind-partners",
        "templatesConfigMap": "email-templates",
        "webhooks": {"allowPrivateNetworks": ["10.96.0.0/12", "fd00:40::/64"]},
        "metrics": {
            "serviceMonitor": {"enabled": true, "labels": {"release": "prometheus"}},
            "grafanaDashboard": {"enabled": true, "annotations": {"grafana_folder": "Partners"}},
            "prometheusRule": {"enabled": true, "labels": {"release": "prometheus"}},
        },
        "podDisruptionBudget": {"enabled": true},
        "networkPolicy": {
            "enabled": true,
            "ingressNamespace": "ingress-nginx",
            "metricsFrom": {"matchLabels": {"name": "monitoring"}},
            "activationFrom": {"matchLabels": {"name": "ingress"}},
        },
        "activation": {
            "trustedProxies": ["10.244.0.0/16", "fd00::/8"],
            "maxConnections": 300,
            "ingress": {
                "enabled": true,
                "className": "nginx",
                "host": "activate.northwind.example",
                "tlsSecretName": "activate-tls",
            },
            "httpRoute": {
                "enabled": true,
                "parentRefs": [{"name": "public", "namespace": "gateways"}],
                "hostnames": ["activate.northwind.example"],
            },
        },
    })
}

#[test]
fn lint_finds_nothing_to_fix() {
    let (ok, out) = chart_py(&["lint", &project(CHART).to_string_lossy(), "{}"]);
    assert!(ok);
    assert_eq!(out["errors"], json!([]), "{out}");
    // Severity 2 is a warning, 3 an error; 1 is advice (such as "icon is recommended").
    let serious: Vec<_> = out["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["severity"].as_i64().unwrap_or(0) >= 2)
        .collect();
    assert!(serious.is_empty(), "{serious:?}");
}

#[test]
fn defaults_render_a_locked_down_deployment() {
    let manifests = render(json!({})).unwrap();
    assert_eq!(
        kinds(&manifests),
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "Deployment",
            "Role",
            "RoleBinding",
            "Secret",
            "Service",
            "ServiceAccount",
            "ValidatingAdmissionPolicy",
            "ValidatingAdmissionPolicyBinding"
        ]
        .map(String::from)
        .into(),
    );
    let deployment = of_kind(&manifests, "Deployment");
    assert_eq!(deployment["spec"]["replicas"], 2);
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let container = &pod["containers"][0];
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(
        container["securityContext"]["allowPrivilegeEscalation"],
        false
    );
    assert_eq!(
        container["securityContext"]["capabilities"]["drop"],
        json!(["ALL"])
    );
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert!(container["resources"]["requests"]["memory"].is_string());
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(args[0], "run");
    assert!(args.contains(&"--leader-election=true"), "{args:?}");
    assert!(args.contains(&"--log-format=json"), "{args:?}");
    // Webhook deliveries reach public addresses only unless a network is allowed.
    assert!(
        !args
            .iter()
            .any(|a| a.starts_with("--webhook-allow-private-networks")),
        "{args:?}"
    );
    // The SMTP URL (which may hold a password) comes from a Secret, never from values.
    let smtp = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "SMTP_URL")
        .unwrap();
    assert_eq!(
        smtp["valueFrom"]["secretKeyRef"],
        json!({"name": "partner-operator-smtp", "key": "url"})
    );
    // The activation key: generated, mounted from its Secret, passed as a file.
    let key = of_kind(&manifests, "Secret");
    let generated = key["data"]["key"].as_str().unwrap();
    assert_eq!(generated.len(), 88, "64 characters, base64-encoded");
    assert!(args.contains(&"--activation-key-file=/etc/partner-operator/activation-key/key"));
    assert_eq!(
        pod["volumes"][0]["secret"]["secretName"],
        key["metadata"]["name"]
    );
    let own = render(json!({"activationKey": {"existingSecret": "my-key", "key": "k"}})).unwrap();
    assert!(
        !own.iter()
            .any(|m| m["metadata"]["name"] == "po-partner-operator-activation-key")
    );
    let pod = &of_kind(&own, "Deployment")["spec"]["template"]["spec"];
    assert_eq!(pod["volumes"][0]["secret"]["secretName"], "my-key");
    assert!(
        pod["containers"][0]["args"]
            .to_string()
            .contains("activation-key/k\"")
    );
}

/// The operator reads no Secret the chart does not name: the SMTP URL, the activation key and
/// the ownership key are mounted into the pod; every RBAC rule on Secrets has `resourceNames`,
/// and with no webhook signing key listed there is none in the release's namespace. The
/// ownership key is generated (or named), mounted and passed; tenants of an earlier version
/// are proven only when asked.
#[test]
fn secrets_are_read_by_name_and_the_ownership_key_is_mounted() {
    let secret_rules = |manifests: &[Value]| -> Vec<Value> {
        manifests
            .iter()
            .filter(|m| m["kind"] == "Role" || m["kind"] == "ClusterRole")
            .flat_map(|m| m["rules"].as_array().cloned().unwrap_or_default())
            .filter(|r| {
                r["resources"]
                    .as_array()
                    .unwrap()
                    .contains(&json!("secrets"))
            })
            .collect()
    };
    let defaults = render(json!({})).unwrap();
    let rules = secret_rules(&defaults);
    assert!(
        rules
            .iter()
            .all(|r| r["resourceNames"] == json!(["activation"])),
        "{rules:?}"
    );
    let key = defaults
        .iter()
        .find(|m| {
            m["kind"] == "Secret" && m["metadata"]["name"] == "po-partner-operator-ownership-key"
        })
        .expect("the ownership key Secret");
    assert_eq!(key["data"]["key"].as_str().unwrap().len(), 88);
    assert_eq!(
        key["metadata"]["annotations"]["helm.sh/resource-policy"],
        "keep"
    );
    let pod = &of_kind(&defaults, "Deployment")["spec"]["template"]["spec"];
    let args = pod["containers"][0]["args"].to_string();
    assert!(
        args.contains("\"--ownership-key-file=/etc/partner-operator/ownership-key/key\""),
        "{args}"
    );
    assert!(!args.contains("--prove-existing-tenants"), "{args}");
    assert!(
        pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["secret"]["secretName"] == key["metadata"]["name"])
    );
    let namespace_verbs = |manifests: &[Value]| {
        of_kind(manifests, "ClusterRole")["rules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["resources"] == json!(["namespaces"]))
            .unwrap()["verbs"]
            .clone()
    };
    // A retained tenant is marked released when its Partner goes: `patch`, which the admission
    // policy holds to the operator's own labels and annotations on its tenants.
    assert!(
        namespace_verbs(&defaults)
            .as_array()
            .unwrap()
            .contains(&json!("patch"))
    );

    let listed = render(json!({
        "webhooks": {"signingKeySecrets": ["northwind-webhook-key"]},
        "ownershipKey": {"existingSecret": "my-ownership-key", "key": "k", "proveExistingTenants": true},
    }))
    .unwrap();
    let rules = secret_rules(&listed);
    assert!(
        rules
            .iter()
            .any(|r| r["resourceNames"] == json!(["northwind-webhook-key"])),
        "{rules:?}"
    );
    assert!(
        rules.iter().all(|r| r["resourceNames"].is_array()),
        "{rules:?}"
    );
    assert!(
        !listed
            .iter()
            .any(|m| m["metadata"]["name"] == "po-partner-operator-ownership-key")
    );
    let pod = &of_kind(&listed, "Deployment")["spec"]["template"]["spec"];
    let args = pod["containers"][0]["args"].to_string();
    assert!(
        args.contains("ownership-key/k\"") && args.contains("\"--prove-existing-tenants\""),
        "{args}"
    );
    assert!(
        pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["secret"]["secretName"] == "my-ownership-key")
    );
    assert!(
        namespace_verbs(&listed)
            .as_array()
            .unwrap()
            .contains(&json!("patch"))
    );

    // Both admission policies match every namespace subresource (status and finalize write
    // labels too).
    for policy in defaults
        .iter()
        .filter(|m| m["kind"] == "ValidatingAdmissionPolicy")
    {
        let resources = &policy["spec"]["matchConstraints"]["resourceRules"][0]["resources"];
        assert!(
            resources
                .as_array()
                .unwrap()
                .contains(&json!("namespaces/*")),
            "{policy}"
        );
    }
}

#[test]
fn every_option_renders_its_objects() {
    let manifests = render(every_option()).unwrap();
    let kinds = kinds(&manifests);
    for kind in [
        "ServiceMonitor",
        "ConfigMap",
        "PrometheusRule",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "Ingress",
        "HTTPRoute",
    ] {
        assert!(kinds.contains(kind), "{kind} missing from {kinds:?}");
    }
    // The activation service: its port, a Service, and the Ingress and HTTPRoute to it, both
    // for the link's path and the portals' API.
    let service = manifests
        .iter()
        .find(|m| {
            m["kind"] == "Service" && m["metadata"]["name"] == "po-partner-operator-activation"
        })
        .expect("the activation Service");
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "activation");
    let ingress = of_kind(&manifests, "Ingress");
    assert_eq!(ingress["spec"]["tls"][0]["secretName"], "activate-tls");
    let rule = &ingress["spec"]["rules"][0];
    assert_eq!(rule["host"], "activate.northwind.example");
    let paths: Vec<&Value> = rule["http"]["paths"].as_array().unwrap().iter().collect();
    assert_eq!(paths.len(), 2);
    assert!(
        paths
            .iter()
            .all(|p| p["backend"]["service"]["name"] == service["metadata"]["name"])
    );
    let route = of_kind(&manifests, "HTTPRoute");
    assert_eq!(route["spec"]["parentRefs"][0]["name"], "public");
    assert_eq!(
        route["spec"]["rules"][0]["backendRefs"][0]["name"],
        service["metadata"]["name"]
    );
    let policy = of_kind(&manifests, "NetworkPolicy");
    assert_eq!(
        policy["spec"]["ingress"][1]["ports"][0]["port"], 8081,
        "{policy}"
    );
    let container = &of_kind(&manifests, "Deployment")["spec"]["template"]["spec"]["containers"][0];
    let args = container["args"].to_string();
    for flag in [
        "--smtp-insecure-plaintext",
        "--mail-from=Onboarding <onboarding@northwind.example>",
        "--activation-base-url=https://portal.northwind.example/activate",
        "--namespace=northwind-partners",
        "--templates-dir=/etc/partner-operator/templates",
        "--activation-addr=0.0.0.0:8081",
        "--webhook-allow-private-networks=10.96.0.0/12,fd00:40::/64",
        "--activation-trusted-proxies=10.244.0.0/16,fd00::/8",
        "--activation-max-connections=300",
    ] {
        assert!(args.contains(flag), "{flag}: {args}");
    }
    assert_eq!(
        of_kind(&manifests, "ServiceMonitor")["metadata"]["labels"]["release"],
        "prometheus"
    );
    let without_election =
        render(json!({"replicaCount": 1, "leaderElection": {"enabled": false}})).unwrap();
    let roles: Vec<_> = without_election
        .iter()
        .filter(|m| m["kind"] == "Role")
        .map(|m| m["metadata"]["name"].as_str().unwrap())
        .collect();
    assert!(
        roles.is_empty(),
        "no Lease Role, no webhook key Role: {roles:?}"
    );
    // Signing keys listed: only those can be read.
    let listed =
        render(json!({"webhooks": {"signingKeySecrets": ["northwind-webhook-key"]}})).unwrap();
    let keys = listed
        .iter()
        .find(|m| {
            m["kind"] == "Role" && m["metadata"]["name"] == "po-partner-operator-webhook-keys"
        })
        .unwrap();
    assert_eq!(
        keys["rules"][0]["resourceNames"],
        json!(["northwind-webhook-key"])
    );
    let without_policy = render(json!({"admissionPolicy": {"enabled": false}})).unwrap();
    assert!(!self::kinds(&without_policy).contains("ValidatingAdmissionPolicy"));
}

/// The activation port is the one door anyone may knock on: with network policies on, it admits
/// the ingress controller's namespace alone (and the policy cannot be rendered open to all).
#[test]
fn the_activation_port_admits_only_the_ingress_namespace() {
    let manifests = render(json!({
        "networkPolicy": {"enabled": true, "ingressNamespace": "ingress-nginx"},
    }))
    .unwrap();
    let policy = of_kind(&manifests, "NetworkPolicy");
    let rules = policy["spec"]["ingress"].as_array().unwrap();
    let activation: Vec<&Value> = rules
        .iter()
        .filter(|r| r["ports"][0]["port"] == 8081)
        .collect();
    assert_eq!(activation.len(), 1, "{policy}");
    assert_eq!(
        activation[0]["from"],
        json!([{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}]),
        "{policy}"
    );
    assert_eq!(
        policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/name"],
        "partner-operator"
    );
    let open = render(json!({"networkPolicy": {"enabled": true}}))
        .expect_err("a policy admitting anyone to the activation port was rendered");
    assert!(open.contains("networkPolicy.ingressNamespace"), "{open}");
    // Forwarded-for is believed from the named proxies only; none by default.
    let defaults = render(json!({})).unwrap();
    let args =
        of_kind(&defaults, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
            .to_string();
    assert!(!args.contains("--activation-trusted-proxies"), "{args}");
    assert!(args.contains("--activation-max-connections=512"), "{args}");
}

/// Two replicas without a Lease would both reconcile and email every partner twice: Helm
/// refuses to render that, and says which values to change.
#[test]
fn replicas_without_leader_election_are_refused() {
    let error = render(json!({"leaderElection": {"enabled": false}}))
        .expect_err("two replicas without leader election were rendered");
    assert!(
        error.contains("replicaCount") && error.contains("leaderElection.enabled"),
        "{error}"
    );
}

#[test]
fn the_values_schema_refuses_bad_values_by_name() {
    for (values, expected) in [
        (json!({"logFormat": "xml"}), "/logFormat"),
        (json!({"replicaCount": "two"}), "/replicaCount"),
        (json!({"smtpPassword": "hunter2"}), "smtpPassword"),
        (
            json!({"smtp": {"existingSecret": ""}}),
            "/smtp/existingSecret",
        ),
        (json!({"smtp": {"password": "hunter2"}}), "password"),
        (json!({"metrics": {"port": 70000}}), "/metrics/port"),
        (
            json!({"activation": {"trustForwardedFor": true}}),
            "trustForwardedFor",
        ),
        (
            json!({"activation": {"trustedProxies": ["the ingress"]}}),
            "/activation/trustedProxies/0",
        ),
        (
            json!({"networkPolicy": {"ingressNamespace": "Ingress_NGINX"}}),
            "/networkPolicy/ingressNamespace",
        ),
    ] {
        let error = render(values.clone()).expect_err(&format!("{values} was accepted"));
        assert!(error.contains(expected), "{values}: {error}");
        assert!(
            !error.contains("hunter2"),
            "a refused secret is not echoed: {error}"
        );
    }
}

#[test]
fn the_chart_crds_are_the_project_crds() {
    let (_, out) = chart_py(&[
        "render",
        &project(CHART).to_string_lossy(),
        "{}",
        "po",
        NAMESPACE,
    ]);
    let generated = partner_operator::api::crds_yaml();
    assert_eq!(
        out["crds"]["crds/partner-operator.yaml"].as_str(),
        Some(generated.as_str()),
        "charts/partner-operator/crds/ differs: run `cargo run -- crds > charts/partner-operator/crds/partner-operator.yaml`"
    );
}

/// A CRD for the Prometheus Operator's ServiceMonitor, as a cluster with it installed has.
const SERVICE_MONITOR_CRD: &str = r#"{"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition",
"metadata":{"name":"servicemonitors.monitoring.coreos.com"},
"spec":{"group":"monitoring.coreos.com","scope":"Namespaced",
"names":{"kind":"ServiceMonitor","plural":"servicemonitors","singular":"servicemonitor","listKind":"ServiceMonitorList"},
"versions":[{"name":"v1","served":true,"storage":true,
"schema":{"openAPIV3Schema":{"type":"object","x-kubernetes-preserve-unknown-fields":true}}}]}}"#;

/// The Prometheus Operator's PrometheusRule, schemaless like the ServiceMonitor above.
const PROMETHEUS_RULE_CRD: &str = r#"{"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition",
"metadata":{"name":"prometheusrules.monitoring.coreos.com"},
"spec":{"group":"monitoring.coreos.com","scope":"Namespaced",
"names":{"kind":"PrometheusRule","plural":"prometheusrules","singular":"prometheusrule","listKind":"PrometheusRuleList"},
"versions":[{"name":"v1","served":true,"storage":true,
"schema":{"openAPIV3Schema":{"type":"object","x-kubernetes-preserve-unknown-fields":true}}}]}}"#;

/// The Gateway API's HTTPRoute, schemaless like the ServiceMonitor above.
const HTTP_ROUTE_CRD: &str = r#"{"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition",
"metadata":{"name":"httproutes.gateway.networking.k8s.io"},
"spec":{"group":"gateway.networking.k8s.io","scope":"Namespaced",
"names":{"kind":"HTTPRoute","plural":"httproutes","singular":"httproute","listKind":"HTTPRouteList"},
"versions":[{"name":"v1","served":true,"storage":true,
"schema":{"openAPIV3Schema":{"type":"object","x-kubernetes-preserve-unknown-fields":true}}}]}}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rendered_manifests_apply_to_the_api_server_with_kubectl() {
    let server = partner_sandbox::apiserver::ApiServer::start(
        "127.0.0.1:0".parse().unwrap(),
        chrono::Utc::now,
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    server.write_kubeconfig(&kubeconfig).unwrap();
    let kubectl = |args: Vec<String>| {
        let kubeconfig = kubeconfig.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                Command::new("/usr/bin/kubectl")
                    .arg("--kubeconfig")
                    .arg(kubeconfig)
                    .args(args)
                    .output()
                    .unwrap()
            })
            .await
            .unwrap()
        }
    };
    let apply = |name: &str, objects: Vec<Value>| {
        // As `helm template | kubectl apply -f -` sees them: YAML documents.
        let path = dir.path().join(name);
        let documents: Vec<String> = objects
            .iter()
            .map(|o| serde_yaml::to_string(o).unwrap())
            .collect();
        std::fs::write(&path, documents.join("---\n")).unwrap();
        vec![
            "apply".to_string(),
            "-f".into(),
            path.to_string_lossy().into_owned(),
        ]
    };
    // As `helm install` does: the chart's CRDs first, then the templates. Server-side, twice:
    // the second is docs/installing.md's step after a chart upgrade (Helm leaves CRDs alone then).
    for _ in 0..2 {
        let crds = kubectl(vec![
            "apply".into(),
            "--server-side".into(),
            "-f".into(),
            project("charts/partner-operator/crds")
                .to_string_lossy()
                .into_owned(),
        ])
        .await;
        let stdout = String::from_utf8_lossy(&crds.stdout);
        assert!(
            crds.status.success()
                && stdout.contains("partners.partner-operator.io serverside-applied"),
            "{stdout}{}",
            String::from_utf8_lossy(&crds.stderr)
        );
    }
    let monitor: Value = serde_json::from_str(SERVICE_MONITOR_CRD).unwrap();
    let namespace =
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}});
    let rule: Value = serde_json::from_str(PROMETHEUS_RULE_CRD).unwrap();
    let route: Value = serde_json::from_str(HTTP_ROUTE_CRD).unwrap();
    let setup = kubectl(apply("setup.yaml", vec![monitor, rule, route, namespace])).await;
    assert!(
        setup.status.success(),
        "{}",
        String::from_utf8_lossy(&setup.stderr)
    );

    for (name, values) in [
        ("defaults.json", json!({})),
        ("every-option.json", every_option()),
    ] {
        let manifests = render(values).unwrap();
        let count = manifests.len();
        let output = kubectl(apply(name, manifests)).await;
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(stdout.lines().count(), count, "{name}: {stdout}");
    }
    let deployed = kubectl(
        [
            "get",
            "deployment",
            "po-partner-operator",
            "-n",
            NAMESPACE,
            "-o",
            "name",
        ]
        .map(String::from)
        .to_vec(),
    )
    .await;
    assert_eq!(
        String::from_utf8_lossy(&deployed.stdout).trim(),
        "deployment.apps/po-partner-operator"
    );
}

/// (verb, group, resource[/subresource]) triples a role grants.
fn granted(rules: &Value) -> BTreeSet<(String, String, String)> {
    let mut grants = BTreeSet::new();
    for rule in rules.as_array().unwrap() {
        for group in rule["apiGroups"].as_array().unwrap() {
            for resource in rule["resources"].as_array().unwrap() {
                for verb in rule["verbs"].as_array().unwrap() {
                    grants.insert((
                        verb.as_str().unwrap().to_string(),
                        group.as_str().unwrap().to_string(),
                        resource.as_str().unwrap().to_string(),
                    ));
                }
            }
        }
    }
    grants
}

/// The operator's scenarios with the sandbox API server's request log: every request it made is
/// granted by the rendered ClusterRole (or, for the Lease, the Role), and nothing granted goes
/// unused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbac_grants_exactly_what_the_operator_uses() {
    use partner_operator::leader::LeaderElection;
    use partner_operator::operator::RunOptions;

    let h = Harness::start_servers(Server::Sandbox).await;
    let mut election = LeaderElection::new("default", "replica-a");
    election.lease_duration = std::time::Duration::from_secs(3);
    election.renew_before = std::time::Duration::from_secs(1);
    let activation = support::metrics::free_port();
    let operator = h.spawn_operator_as(
        "partner-operator",
        RunOptions {
            leader_election: Some(election),
            activation_service: Some(partner_operator::activation::ServiceOptions::new(
                activation,
            )),
            webhook_secrets_namespace: Some(NAMESPACE.into()),
            ..h.run_options()
        },
    );
    scenarios::whole_trial(&h, activation, NAMESPACE).await;
    operator.stop().await.unwrap();

    let used: BTreeSet<(String, String, String)> = h
        .server
        .requests()
        .into_iter()
        .filter(|r| r.user_agent.as_deref() == Some("partner-operator"))
        .map(|r| {
            let resource = match &r.subresource {
                Some(sub) => format!("{}/{sub}", r.resource),
                None => r.resource.clone(),
            };
            (r.verb, r.group, resource)
        })
        .collect();

    // The scenario signs webhooks with this key: the one Secret the operator reads.
    let manifests =
        render(json!({"webhooks": {"signingKeySecrets": ["northwind-webhook-key"]}})).unwrap();
    let cluster = granted(&of_kind(&manifests, "ClusterRole")["rules"]);
    let namespaced: BTreeSet<_> = manifests
        .iter()
        .filter(|m| m["kind"] == "Role")
        .flat_map(|role| granted(&role["rules"]))
        .collect();
    let all: BTreeSet<_> = cluster.union(&namespaced).cloned().collect();
    let missing: Vec<_> = used.difference(&all).collect();
    assert!(missing.is_empty(), "used but not granted: {missing:?}");
    let unused: Vec<_> = all.difference(&used).collect();
    assert!(unused.is_empty(), "granted but never used: {unused:?}");
    // In the release's namespace: the Lease, and reading the webhook signing keys.
    assert_eq!(
        namespaced,
        BTreeSet::from([
            (
                "create".into(),
                "coordination.k8s.io".into(),
                "leases".into()
            ),
            ("get".into(), "coordination.k8s.io".into(), "leases".into()),
            (
                "patch".into(),
                "coordination.k8s.io".into(),
                "leases".into()
            ),
            ("get".into(), "".into(), "secrets".into()),
        ]),
    );
}

/// Every built-in object the chart renders (all options on) reads back through its Kubernetes
/// type unchanged: a misspelt or misplaced field, which the API server would drop or refuse,
/// fails here by name.
#[test]
fn rendered_objects_are_valid_kubernetes_types() {
    use k8s_openapi::api::admissionregistration::v1::{
        ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
    };
    use k8s_openapi::api::{
        apps::v1::Deployment,
        core::v1::{ConfigMap, Secret, Service, ServiceAccount},
        networking::v1::{Ingress, NetworkPolicy},
        policy::v1::PodDisruptionBudget,
        rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding},
    };
    fn unchanged<T: serde::de::DeserializeOwned + serde::Serialize>(object: &Value) {
        let typed: T = serde_json::from_value(object.clone())
            .unwrap_or_else(|e| panic!("{} does not parse: {e}", object["kind"]));
        let back = serde_json::to_value(&typed).unwrap();
        assert_eq!(&back, object, "{} changed on a round trip", object["kind"]);
    }
    let manifests = render(every_option()).unwrap();
    let mut checked = BTreeSet::new();
    for object in &manifests {
        let kind = object["kind"].as_str().unwrap();
        match kind {
            "Deployment" => unchanged::<Deployment>(object),
            "Service" => unchanged::<Service>(object),
            "ServiceAccount" => unchanged::<ServiceAccount>(object),
            "Secret" => unchanged::<Secret>(object),
            "ConfigMap" => unchanged::<ConfigMap>(object),
            "ClusterRole" => unchanged::<ClusterRole>(object),
            "ClusterRoleBinding" => unchanged::<ClusterRoleBinding>(object),
            "Role" => unchanged::<Role>(object),
            "RoleBinding" => unchanged::<RoleBinding>(object),
            "PodDisruptionBudget" => unchanged::<PodDisruptionBudget>(object),
            "NetworkPolicy" => unchanged::<NetworkPolicy>(object),
            "Ingress" => unchanged::<Ingress>(object),
            "ValidatingAdmissionPolicy" => unchanged::<ValidatingAdmissionPolicy>(object),
            "ValidatingAdmissionPolicyBinding" => {
                unchanged::<ValidatingAdmissionPolicyBinding>(object)
            }
            // Not built-in types: their CRDs belong to the Prometheus Operator and the
            // Gateway API.
            "ServiceMonitor" | "PrometheusRule" | "HTTPRoute" => continue,
            other => panic!("{other}: a kind this test does not know; add it"),
        }
        checked.insert(kind.to_string());
    }
    assert_eq!(checked.len(), 14, "{checked:?}");
}
