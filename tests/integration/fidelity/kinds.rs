//! The same behaviours for every kind the sandbox serves: each (kind, behaviour) pair is a probe
//! of its own, since a kubectl, Helm or GitOps user meets them kind by kind (`kubectl get`,
//! `create`, `replace`, `patch`, `delete`, `--dry-run=server`, `--watch`, `-l`,
//! `--field-selector`, `generateName`), and kube-apiserver's registries differ by kind in what
//! they answer.

use super::*;

/// A kind the sandbox serves, with a valid object of it.
pub(super) struct Sample {
    /// Short, so that a probe's namespace name stays a DNS label.
    tag: &'static str,
    /// The API path of the group version (`/api/v1`, `/apis/apps/v1`).
    api: &'static str,
    plural: &'static str,
    namespaced: bool,
    /// A valid object called `name` in namespace `ns` (its labels are set by the probe).
    body: fn(name: &str, ns: &str) -> Value,
    /// A merge patch that changes the object's spec (or what stands for it).
    change: fn() -> Value,
}

impl Sample {
    fn collection(&self, ns: &str) -> String {
        if self.namespaced {
            format!("{}/namespaces/{ns}/{}", self.api, self.plural)
        } else {
            format!("{}/{}", self.api, self.plural)
        }
    }

    /// The name of the probe's object `x`: unique across probes for cluster-scoped kinds.
    fn name(&self, ns: &str, x: &str) -> String {
        match (self.namespaced, self.plural) {
            (true, _) => x.to_string(),
            (false, "customresourcedefinitions") => format!("{x}s.{ns}.example.com"),
            (false, _) => format!("{ns}-{x}"),
        }
    }

    fn item(&self, ns: &str, x: &str) -> String {
        format!("{}/{}", self.collection(ns), self.name(ns, x))
    }

    /// The object `x`, labelled as the probe's (so lists of cluster-scoped kinds see only it).
    fn object(&self, ns: &str, x: &str) -> Value {
        let mut object = (self.body)(&self.name(ns, x), ns);
        object["metadata"]["labels"] = json!({"probe": ns, "x": x});
        object
    }

    fn selector(&self, ns: &str) -> String {
        format!("labelSelector=probe%3D{ns}")
    }

    async fn create(&self, http: &Http, ns: &str, x: &str) -> Reply {
        http.post(&self.collection(ns), self.object(ns, x)).await
    }

    /// Creates the object `x` and reads it back once settled (a CRD once `Established`), for
    /// a probe that writes it again at the version it read.
    async fn create_settled(&'static self, http: &Http, ns: &str, x: &str) -> Reply {
        let created = self.create(http, ns, x).await;
        if self.plural != "customresourcedefinitions" {
            return created;
        }
        settle(self, http, ns, x).await;
        http.get(&self.item(ns, x)).await
    }
}

fn meta(api_version: &str, kind: &str, name: &str) -> Value {
    json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name}})
}

fn with(mut object: Value, fields: Value) -> Value {
    for (k, v) in fields.as_object().unwrap() {
        object[k] = v.clone();
    }
    object
}

const POD_TEMPLATE_LABELS: &str = "app";

fn pod_template() -> Value {
    json!({"metadata": {"labels": {POD_TEMPLATE_LABELS: "web"}},
        "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}})
}

fn rbac_rules() -> Value {
    json!([{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}])
}

fn crd_body(name: &str) -> Value {
    let (plural, group) = name.split_once('.').unwrap_or((name, "example.com"));
    let singular = plural.trim_end_matches('s');
    let kind = format!("{}{}", singular[..1].to_uppercase(), &singular[1..]);
    with(
        meta("apiextensions.k8s.io/v1", "CustomResourceDefinition", name),
        json!({"spec": {"group": group, "scope": "Namespaced",
            "names": {"plural": plural, "singular": singular, "kind": kind, "listKind": format!("{kind}List")},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {"size": {"type": "integer"}}}}}}}]}}),
    )
}

/// Every kind the sandbox serves, with a valid object each.
pub(super) static SAMPLES: &[Sample] = &[
    Sample {
        tag: "cm",
        api: "/api/v1",
        plural: "configmaps",
        namespaced: true,
        body: |name, _| with(meta("v1", "ConfigMap", name), json!({"data": {"k": "v"}})),
        change: || json!({"data": {"k": "changed"}}),
    },
    Sample {
        tag: "secret",
        api: "/api/v1",
        plural: "secrets",
        namespaced: true,
        body: |name, _| {
            with(
                meta("v1", "Secret", name),
                json!({"type": "Opaque", "data": {"k": "dg=="}}),
            )
        },
        change: || json!({"data": {"k": "dzI="}}),
    },
    Sample {
        tag: "ev",
        api: "/api/v1",
        plural: "events",
        namespaced: true,
        body: |name, ns| {
            with(
                meta("v1", "Event", name),
                json!({"involvedObject": {"kind": "ConfigMap", "namespace": ns, "name": "target", "apiVersion": "v1"},
                    "reason": "Changed", "message": "changed", "type": "Normal",
                    "source": {"component": "probe"}, "count": 1,
                    "firstTimestamp": "2027-03-01T09:00:00Z", "lastTimestamp": "2027-03-01T09:00:00Z"}),
            )
        },
        change: || json!({"count": 2, "message": "changed again"}),
    },
    Sample {
        tag: "evv1",
        api: "/apis/events.k8s.io/v1",
        plural: "events",
        namespaced: true,
        body: |name, ns| {
            with(
                meta("events.k8s.io/v1", "Event", name),
                json!({"eventTime": "2027-03-01T09:00:00.000000Z",
                    "reportingController": "probe.example.com/c", "reportingInstance": "r1",
                    "action": "Change", "reason": "Changed", "type": "Normal", "note": "changed",
                    "regarding": {"kind": "ConfigMap", "namespace": ns, "name": "target", "apiVersion": "v1"}}),
            )
        },
        change: || json!({"note": "changed again"}),
    },
    Sample {
        tag: "sa",
        api: "/api/v1",
        plural: "serviceaccounts",
        namespaced: true,
        body: |name, _| meta("v1", "ServiceAccount", name),
        change: || json!({"automountServiceAccountToken": false}),
    },
    Sample {
        tag: "svc",
        api: "/api/v1",
        plural: "services",
        namespaced: true,
        body: |name, _| {
            with(
                meta("v1", "Service", name),
                json!({"spec": {"type": "ClusterIP", "selector": {"app": "web"},
                    "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]}}),
            )
        },
        change: || json!({"spec": {"selector": {"app": "other"}}}),
    },
    Sample {
        tag: "lease",
        api: "/apis/coordination.k8s.io/v1",
        plural: "leases",
        namespaced: true,
        body: |name, _| {
            with(
                meta("coordination.k8s.io/v1", "Lease", name),
                json!({"spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}}),
            )
        },
        change: || json!({"spec": {"holderIdentity": "b"}}),
    },
    Sample {
        tag: "deploy",
        api: "/apis/apps/v1",
        plural: "deployments",
        namespaced: true,
        body: |name, _| {
            with(
                meta("apps/v1", "Deployment", name),
                json!({"spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web"}},
                    "template": pod_template()}}),
            )
        },
        change: || json!({"spec": {"replicas": 1}}),
    },
    Sample {
        tag: "pdb",
        api: "/apis/policy/v1",
        plural: "poddisruptionbudgets",
        namespaced: true,
        body: |name, _| {
            with(
                meta("policy/v1", "PodDisruptionBudget", name),
                json!({"spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}}),
            )
        },
        change: || json!({"spec": {"minAvailable": 2}}),
    },
    Sample {
        tag: "netpol",
        api: "/apis/networking.k8s.io/v1",
        plural: "networkpolicies",
        namespaced: true,
        body: |name, _| {
            with(
                meta("networking.k8s.io/v1", "NetworkPolicy", name),
                json!({"spec": {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Ingress"],
                    "ingress": [{"ports": [{"port": 8080, "protocol": "TCP"}]}]}}),
            )
        },
        change: || json!({"spec": {"podSelector": {"matchLabels": {"app": "other"}}}}),
    },
    Sample {
        tag: "ing",
        api: "/apis/networking.k8s.io/v1",
        plural: "ingresses",
        namespaced: true,
        body: |name, _| {
            with(
                meta("networking.k8s.io/v1", "Ingress", name),
                json!({"spec": {"rules": [{"host": "web.example.com", "http": {"paths": [{"path": "/", "pathType": "Prefix",
                    "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}}),
            )
        },
        change: || json!({"spec": {"ingressClassName": "nginx"}}),
    },
    Sample {
        tag: "role",
        api: "/apis/rbac.authorization.k8s.io/v1",
        plural: "roles",
        namespaced: true,
        body: |name, _| {
            with(
                meta("rbac.authorization.k8s.io/v1", "Role", name),
                json!({"rules": rbac_rules()}),
            )
        },
        change: || json!({"rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]}),
    },
    Sample {
        tag: "rb",
        api: "/apis/rbac.authorization.k8s.io/v1",
        plural: "rolebindings",
        namespaced: true,
        body: |name, ns| {
            with(
                meta("rbac.authorization.k8s.io/v1", "RoleBinding", name),
                json!({"roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
                    "subjects": [{"kind": "ServiceAccount", "name": "op", "namespace": ns}]}),
            )
        },
        change: || json!({"subjects": [{"kind": "User", "name": "alice", "apiGroup": "rbac.authorization.k8s.io"}]}),
    },
    Sample {
        tag: "crole",
        api: "/apis/rbac.authorization.k8s.io/v1",
        plural: "clusterroles",
        namespaced: false,
        body: |name, _| {
            with(
                meta("rbac.authorization.k8s.io/v1", "ClusterRole", name),
                json!({"rules": rbac_rules()}),
            )
        },
        change: || json!({"rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]}),
    },
    Sample {
        tag: "crb",
        api: "/apis/rbac.authorization.k8s.io/v1",
        plural: "clusterrolebindings",
        namespaced: false,
        body: |name, ns| {
            with(
                meta("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", name),
                json!({"roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
                    "subjects": [{"kind": "ServiceAccount", "name": "op", "namespace": ns}]}),
            )
        },
        change: || json!({"subjects": [{"kind": "User", "name": "alice", "apiGroup": "rbac.authorization.k8s.io"}]}),
    },
    Sample {
        tag: "vap",
        api: "/apis/admissionregistration.k8s.io/v1",
        plural: "validatingadmissionpolicies",
        namespaced: false,
        body: |name, _| {
            with(
                meta(
                    "admissionregistration.k8s.io/v1",
                    "ValidatingAdmissionPolicy",
                    name,
                ),
                json!({"spec": {"failurePolicy": "Fail",
                    "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                        "operations": ["CREATE"], "resources": ["configmaps"]}]},
                    "validations": [{"expression": "object.metadata.name != 'forbidden'"}]}}),
            )
        },
        change: || json!({"spec": {"failurePolicy": "Ignore"}}),
    },
    Sample {
        tag: "vapb",
        api: "/apis/admissionregistration.k8s.io/v1",
        plural: "validatingadmissionpolicybindings",
        namespaced: false,
        body: |name, _| {
            with(
                meta(
                    "admissionregistration.k8s.io/v1",
                    "ValidatingAdmissionPolicyBinding",
                    name,
                ),
                json!({"spec": {"policyName": "absent-policy", "validationActions": ["Deny"],
                    "matchResources": {"namespaceSelector": {"matchLabels": {"nothing": "matches"}}}}}),
            )
        },
        change: || json!({"spec": {"validationActions": ["Warn"]}}),
    },
    Sample {
        tag: "crd",
        api: "/apis/apiextensions.k8s.io/v1",
        plural: "customresourcedefinitions",
        namespaced: false,
        body: |name, _| crd_body(name),
        change: || json!({"spec": {"names": {"shortNames": ["probed"]}}}),
    },
    Sample {
        tag: "ns",
        api: "/api/v1",
        plural: "namespaces",
        namespaced: false,
        body: |name, _| meta("v1", "Namespace", name),
        change: || json!({"spec": {"finalizers": ["kubernetes", "probe.example.com/hold"]}}),
    },
    Sample {
        tag: "partner",
        api: "/apis/partner-operator.io/v1alpha1",
        plural: "partners",
        namespaced: true,
        body: |name, _| partner(name),
        change: || json!({"spec": {"organization": "Fabrikam"}}),
    },
];

type Behaviour = fn(&'static Sample, Http, String) -> ProbeFuture;

/// Each behaviour, by the name its probes carry.
const BEHAVIOURS: &[(&str, Behaviour)] = &[
    ("create", |s, h, ns| Box::pin(create(s, h, ns))),
    ("get", |s, h, ns| Box::pin(get(s, h, ns))),
    ("list", |s, h, ns| Box::pin(list(s, h, ns))),
    ("missing", |s, h, ns| Box::pin(missing(s, h, ns))),
    ("put_missing", |s, h, ns| Box::pin(put_missing(s, h, ns))),
    ("exists", |s, h, ns| Box::pin(exists(s, h, ns))),
    ("table", |s, h, ns| Box::pin(table(s, h, ns))),
    ("update", |s, h, ns| Box::pin(update(s, h, ns))),
    ("patches", |s, h, ns| Box::pin(patches(s, h, ns))),
    ("watch", |s, h, ns| Box::pin(watch(s, h, ns))),
    ("dry_run", |s, h, ns| Box::pin(dry_run(s, h, ns))),
    ("delete_collection", |s, h, ns| {
        Box::pin(delete_collection(s, h, ns))
    }),
    ("generate_name", |s, h, ns| {
        Box::pin(generate_name(s, h, ns))
    }),
    ("invalid_name", |s, h, ns| Box::pin(invalid_name(s, h, ns))),
    ("field_selector", |s, h, ns| {
        Box::pin(field_selector(s, h, ns))
    }),
    ("generation", |s, h, ns| Box::pin(generation(s, h, ns))),
    ("delete", |s, h, ns| Box::pin(delete(s, h, ns))),
    ("discovery", |s, h, ns| Box::pin(discovery_entry(s, h, ns))),
    ("status", |s, h, ns| Box::pin(status_subresource(s, h, ns))),
];

/// Probes of the sandbox that still differ, `(probe id, divergence id)`: see
/// `docs/sandbox-fidelity.md`.
const KNOWN: &[(&str, &str)] = &[
    ("svc_table", "builtin-defaults"),
    ("svc_invalid_name", "service-name-order"),
    ("evv1_generation", "event-updates"),
    ("crd_generate_name", "crd-generate-name"),
    ("sa_discovery", "unserved-subresources"),
    ("svc_discovery", "unserved-subresources"),
    ("ns_discovery", "unserved-subresources"),
];

/// One probe per served kind and behaviour.
pub(super) fn every_served_kind() -> Vec<Probe> {
    let mut probes = vec![];
    for sample in SAMPLES {
        for (behaviour, run) in BEHAVIOURS {
            let id = format!("{}_{behaviour}", sample.tag);
            let known_divergence = KNOWN.iter().find(|(p, _)| *p == id).map(|(_, d)| *d);
            let run = *run;
            probes.push(Probe {
                id,
                known_divergence,
                run: Box::new(move |http, ns| run(sample, http, ns)),
            });
        }
    }
    probes
}

fn keys(value: &Value) -> Value {
    json!(
        value
            .as_object()
            .map(|o| o.keys().cloned().collect::<Vec<_>>())
            .unwrap_or_default()
    )
}

/// A `Status` as a client reads it: every field but none that varies between runs.
fn status(reply: &Reply) -> Value {
    let mut body = reply.body.clone();
    if let Some(metadata) = body["metadata"].as_object_mut() {
        metadata.remove("resourceVersion");
    }
    if let Some(details) = body["details"].as_object_mut() {
        details.remove("uid");
    }
    json!([reply.code, body])
}

async fn create(s: &'static Sample, http: Http, ns: String) -> Value {
    let created = s.create(&http, &ns, "a").await;
    let body = &created.body;
    json!({
        "outcome": created.outcome(),
        "type": [body["kind"], body["apiVersion"]],
        "generation": body["metadata"]["generation"],
        "keys": keys(body),
        "metadataKeys": keys(&body["metadata"]),
        "namespace": body["metadata"]["namespace"],
        "labels": body["metadata"]["labels"],
    })
}

async fn get(s: &'static Sample, http: Http, ns: String) -> Value {
    let created = s.create_settled(&http, &ns, "a").await;
    let read = http.get(&s.item(&ns, "a")).await;
    let mut written = created.body.clone();
    let mut stored = read.body.clone();
    for object in [&mut written, &mut stored] {
        if let Some(m) = object["metadata"].as_object_mut() {
            m.remove("managedFields");
        }
    }
    json!([
        read.outcome(),
        read.body["kind"],
        read.body["apiVersion"],
        written == stored
    ])
}

async fn list(s: &'static Sample, http: Http, ns: String) -> Value {
    s.create(&http, &ns, "a").await;
    s.create(&http, &ns, "b").await;
    let list = http
        .get(&format!("{}?{}", s.collection(&ns), s.selector(&ns)))
        .await;
    let items: Vec<Value> = list.body["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| json!([i["kind"], i["apiVersion"], i["metadata"]["labels"]["x"]]))
        .collect();
    json!({
        "outcome": list.outcome(),
        "type": [list.body["kind"], list.body["apiVersion"]],
        "metadataKeys": keys(&list.body["metadata"]),
        "items": items,
    })
}

async fn missing(s: &'static Sample, http: Http, ns: String) -> Value {
    let path = s.item(&ns, "absent");
    json!({
        "get": status(&http.get(&path).await),
        "delete": status(&http.delete(&path).await),
        "patch": status(&http.patch(&path, MERGE, json!({"metadata": {"labels": {"a": "b"}}})).await),
    })
}

async fn put_missing(s: &'static Sample, http: Http, ns: String) -> Value {
    let put = http.put(&s.item(&ns, "a"), s.object(&ns, "a")).await;
    let read = http.get(&s.item(&ns, "a")).await;
    json!([put.outcome(), read.code])
}

async fn exists(s: &'static Sample, http: Http, ns: String) -> Value {
    s.create(&http, &ns, "a").await;
    let again = s.create(&http, &ns, "a").await;
    status(&again)
}

fn table_columns(reply: &Reply) -> Value {
    let columns: Vec<Value> = reply.body["columnDefinitions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| json!([c["name"], c["type"], c["format"], c["priority"]]))
        .collect();
    let rows: Vec<Value> = reply.body["rows"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|row| {
            let cells: Vec<Value> = row["cells"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
                .map(|(i, cell)| match columns.get(i) {
                    // Ages depend on when the row was read.
                    Some(c) if c[0] == "Age" || c[0] == "Created At" => json!("<age>"),
                    _ => cell.clone(),
                })
                .collect();
            json!([cells, row["object"]["kind"]])
        })
        .collect();
    json!([reply.code, reply.body["kind"], columns, rows])
}

/// Waits until a CRD is served (`Established`), which takes kube-apiserver a moment and two
/// status updates; other kinds are settled once created.
async fn settle(s: &'static Sample, http: &Http, ns: &str, x: &str) {
    if s.plural == "customresourcedefinitions" {
        http.until(&s.item(ns, x), Patience::API_SERVER, |r| {
            r.body["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Established" && c["status"] == "True")
        })
        .await;
    }
}

async fn table(s: &'static Sample, http: Http, ns: String) -> Value {
    s.create(&http, &ns, "a").await;
    settle(s, &http, &ns, "a").await;
    let list = http
        .get_as(&format!("{}?{}", s.collection(&ns), s.selector(&ns)), TABLE)
        .await;
    let one = http.get_as(&s.item(&ns, "a"), TABLE).await;
    json!({"list": table_columns(&list), "one": table_columns(&one)})
}

async fn update(s: &'static Sample, http: Http, ns: String) -> Value {
    let created = s.create_settled(&http, &ns, "a").await;
    let mut object = created.body.clone();
    object["metadata"]["labels"]["updated"] = json!("yes");
    let updated = http.put(&s.item(&ns, "a"), object.clone()).await;
    let stale = http.put(&s.item(&ns, "a"), object.clone()).await;
    let mut unconditional = object;
    unconditional["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resourceVersion");
    let unconditional = http.put(&s.item(&ns, "a"), unconditional).await;
    json!({
        "updated": [updated.outcome(), updated.body["metadata"]["labels"], updated.body["metadata"]["generation"]],
        "stale": status(&stale),
        "unconditional": unconditional.outcome(),
    })
}

async fn patches(s: &'static Sample, http: Http, ns: String) -> Value {
    s.create(&http, &ns, "a").await;
    let path = s.item(&ns, "a");
    let merge = http
        .patch(&path, MERGE, json!({"metadata": {"labels": {"m": "1"}}}))
        .await;
    let json_patch = http
        .patch(
            &path,
            JSON_PATCH,
            json!([{"op": "add", "path": "/metadata/annotations", "value": {"j": "1"}}]),
        )
        .await;
    let strategic = http
        .patch(
            &path,
            STRATEGIC,
            json!({"metadata": {"labels": {"s": "1"}}}),
        )
        .await;
    let read = http.get(&path).await;
    json!({
        "merge": merge.outcome(),
        "json": json_patch.outcome(),
        "strategic": strategic.outcome(),
        "labels": read.body["metadata"]["labels"],
        "annotations": read.body["metadata"]["annotations"],
    })
}

async fn watch(s: &'static Sample, http: Http, ns: String) -> Value {
    s.create(&http, &ns, "a").await;
    settle(s, &http, &ns, "a").await;
    let events = http
        .get(&format!(
            "{}?watch=true&timeoutSeconds=1&{}",
            s.collection(&ns),
            s.selector(&ns)
        ))
        .await;
    let events: Vec<Value> = events
        .body
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            json!([
                e["type"],
                e["object"]["kind"],
                e["object"]["apiVersion"],
                e["object"]["metadata"]["labels"]["x"]
            ])
        })
        .collect();
    json!(events)
}

async fn dry_run(s: &'static Sample, http: Http, ns: String) -> Value {
    let path = s.item(&ns, "a");
    let dry = http
        .post(
            &format!("{}?dryRun=All", s.collection(&ns)),
            s.object(&ns, "a"),
        )
        .await;
    let after_dry = http.get(&path).await.code;
    let created = s.create_settled(&http, &ns, "a").await;
    let mut changed = created.body.clone();
    changed["metadata"]["labels"]["dry"] = json!("run");
    let dry_put = http.put(&format!("{path}?dryRun=All"), changed).await;
    let dry_patch = http
        .patch(
            &format!("{path}?dryRun=All"),
            MERGE,
            json!({"metadata": {"labels": {"dry": "patch"}}}),
        )
        .await;
    let dry_delete = http
        .call(
            Method::DELETE,
            &format!("{path}?dryRun=All"),
            "application/json",
            "application/json",
            None,
        )
        .await;
    let read = http.get(&path).await;
    let bad = http
        .post(
            &format!("{}?dryRun=Some", s.collection(&ns)),
            s.object(&ns, "b"),
        )
        .await;
    json!({
        "create": [dry.outcome(), dry.body["metadata"]["name"], after_dry],
        "put": [dry_put.outcome(), dry_put.body["metadata"]["labels"]["dry"]],
        "patch": [dry_patch.outcome(), dry_patch.body["metadata"]["labels"]["dry"]],
        "delete": dry_delete.outcome(),
        "after": [read.code, read.body["metadata"]["labels"]],
        "unknown": [bad.outcome(), bad.body["message"]],
    })
}

async fn delete_collection(s: &'static Sample, http: Http, ns: String) -> Value {
    for x in ["a", "b", "c"] {
        s.create(&http, &ns, x).await;
    }
    let deleted = http
        .delete(&format!(
            "{}?{}%2Cx+in+(a%2Cb)",
            s.collection(&ns),
            s.selector(&ns)
        ))
        .await;
    let left = http
        .get(&format!("{}?{}", s.collection(&ns), s.selector(&ns)))
        .await;
    let left: Vec<Value> = left.body["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|i| i["metadata"]["deletionTimestamp"].is_null())
        .map(|i| i["metadata"]["labels"]["x"].clone())
        .collect();
    json!({
        "deleted": [deleted.outcome(), deleted.body["kind"], deleted.body["message"]],
        "left": left,
    })
}

async fn generate_name(s: &'static Sample, http: Http, ns: String) -> Value {
    let mut object = s.object(&ns, "a");
    let prefix = s.name(&ns, "gen-");
    object["metadata"].as_object_mut().unwrap().remove("name");
    object["metadata"]["generateName"] = json!(prefix);
    let created = http.post(&s.collection(&ns), object).await;
    let name = created.body["metadata"]["name"]
        .as_str()
        .unwrap_or_default();
    json!([
        created.outcome(),
        name.starts_with(&prefix),
        name.len().saturating_sub(prefix.len()),
        created.body["metadata"]["generateName"]
    ])
}

async fn invalid_name(s: &'static Sample, http: Http, ns: String) -> Value {
    let mut answers = vec![];
    for name in ["Upper_Case", "dots.in.name", "a%2Fb"] {
        let mut object = s.object(&ns, "a");
        object["metadata"]["name"] = json!(name.replace("%2F", "/"));
        let created = http.post(&s.collection(&ns), object).await;
        answers.push(json!([created.outcome(), created.body["message"]]));
    }
    json!(answers)
}

async fn field_selector(s: &'static Sample, http: Http, ns: String) -> Value {
    s.create(&http, &ns, "a").await;
    s.create(&http, &ns, "b").await;
    let list = |query: String| {
        let http = http.clone();
        let path = format!("{}?{}&{query}", s.collection(&ns), s.selector(&ns));
        async move {
            let reply = http.get(&path).await;
            let xs: Vec<Value> = reply.body["items"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|i| i["metadata"]["labels"]["x"].clone())
                .collect();
            json!([reply.outcome(), xs, reply.body["message"]])
        }
    };
    let name = s.name(&ns, "a");
    json!({
        "name": list(format!("fieldSelector=metadata.name%3D{name}")).await,
        "notName": list(format!("fieldSelector=metadata.name!%3D{name}")).await,
        "namespace": list(format!("fieldSelector=metadata.namespace%3D{ns}")).await,
        "unsupported": list("fieldSelector=spec.unknown%3Dx".to_string()).await,
    })
}

async fn generation(s: &'static Sample, http: Http, ns: String) -> Value {
    let created = s.create(&http, &ns, "a").await;
    let path = s.item(&ns, "a");
    let labelled = http
        .patch(&path, MERGE, json!({"metadata": {"labels": {"l": "1"}}}))
        .await;
    let changed = http.patch(&path, MERGE, (s.change)()).await;
    json!([
        created.body["metadata"]["generation"],
        labelled.body["metadata"]["generation"],
        [changed.outcome(), changed.body["metadata"]["generation"]],
    ])
}

async fn delete(s: &'static Sample, http: Http, ns: String) -> Value {
    let created = s.create(&http, &ns, "a").await;
    let path = s.item(&ns, "a");
    let wrong_uid = http
        .call(
            Method::DELETE,
            &path,
            "application/json",
            "application/json",
            Some(&json!({"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": {"uid": "00000000-0000-0000-0000-000000000000"}})),
        )
        .await;
    let uid = created.body["metadata"]["uid"].clone();
    let deleted = http
        .call(
            Method::DELETE,
            &path,
            "application/json",
            "application/json",
            Some(&json!({"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": {"uid": uid}})),
        )
        .await;
    let answer = if deleted.body["kind"] == "Status" {
        status(&deleted)
    } else {
        json!([
            deleted.code,
            deleted.body["kind"],
            deleted.body["metadata"]["deletionTimestamp"].is_string()
        ])
    };
    json!({"wrongUid": [wrong_uid.outcome(), wrong_uid.body["message"].as_str().map(|m| m.replace(&created.body["metadata"]["uid"].as_str().unwrap_or("-").to_string(), "<uid>"))], "deleted": answer})
}

/// A JSON patch whose `test` operation fails: kube-apiserver answers 422 without saying which
/// operation failed.
pub(super) async fn json_patch_failed_test(http: Http, ns: String) -> Value {
    http.post(&cms(&ns), cm("a", json!({"k": "v"}))).await;
    let failed = http
        .patch(
            &format!("{}/a", cms(&ns)),
            JSON_PATCH,
            json!([{"op": "test", "path": "/data/k", "value": "other"}]),
        )
        .await;
    json!([failed.outcome(), failed.body["message"]])
}

/// The kind's entry in its group version's discovery document, as kubectl reads it to map
/// `kubectl get <short name>` to a resource and to know what it may do with it.
async fn discovery_entry(s: &'static Sample, http: Http, _ns: String) -> Value {
    let document = http.get(s.api).await;
    let entries: Vec<Value> = document.body["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| {
            r["name"]
                .as_str()
                .is_some_and(|n| n == s.plural || n.starts_with(&format!("{}/", s.plural)))
        })
        .map(|r| {
            let mut verbs: Vec<Value> = r["verbs"].as_array().cloned().unwrap_or_default();
            verbs.sort_by_key(|v| v.to_string());
            json!({"name": r["name"], "namespaced": r["namespaced"], "kind": r["kind"],
                "singularName": r["singularName"], "verbs": verbs,
                "shortNames": r["shortNames"], "categories": r["categories"]})
        })
        .collect();
    json!([document.code, entries])
}

/// The `/status` subresource: served for kinds that have one, 404 for the others; whether a
/// write there may change the labels differs by kind.
async fn status_subresource(s: &'static Sample, http: Http, ns: String) -> Value {
    s.create_settled(&http, &ns, "a").await;
    let path = format!("{}/status", s.item(&ns, "a"));
    let read = http.get(&path).await;
    let patched = http
        .patch(
            &path,
            MERGE,
            json!({"metadata": {"labels": {"via": "status"}}}),
        )
        .await;
    let after = http.get(&s.item(&ns, "a")).await;
    json!({
        "get": [read.outcome(), read.body["kind"]],
        "patch": patched.outcome(),
        "labelled": after.body["metadata"]["labels"]["via"],
    })
}
