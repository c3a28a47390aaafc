//! The columns `kubectl get` shows for the built-in kinds the sandbox serves, as
//! kube-apiserver's printers lay them out (`pkg/printers/internalversion`): each column with
//! how its cell is read from an object. Priority 1 columns are those of `-o wide`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::resources::ResourceType;
use super::tables::human_age;

/// One column of a built-in kind's Table.
pub(super) struct Column {
    pub name: &'static str,
    pub type_: &'static str,
    pub priority: u8,
    pub cell: fn(&Value, DateTime<Utc>) -> Value,
}

impl Column {
    const fn new(name: &'static str, cell: fn(&Value, DateTime<Utc>) -> Value) -> Self {
        Self {
            name,
            type_: "string",
            priority: 0,
            cell,
        }
    }

    const fn wide(self) -> Self {
        Self {
            priority: 1,
            ..self
        }
    }

    const fn integer(self) -> Self {
        Self {
            type_: "integer",
            ..self
        }
    }

    const fn date(self) -> Self {
        Self {
            type_: "date",
            ..self
        }
    }

    pub fn definition(&self) -> Value {
        json!({"name": self.name, "type": self.type_, "format": "", "description": "",
            "priority": self.priority})
    }
}

/// The columns after `Name` for a built-in kind; `None` for a custom resource.
pub(super) fn columns(resource: &ResourceType) -> Option<Vec<Column>> {
    if resource.validator.is_some() {
        return None;
    }
    let age = Column::new("Age", age);
    let mut columns = match (resource.group.as_str(), resource.kind.as_str()) {
        ("", "Namespace") => vec![Column::new("Status", |o, _| o["status"]["phase"].clone())],
        ("", "ConfigMap") => vec![Column::new("Data", |o, _| count(&o["data"]))],
        ("", "Secret") => vec![
            Column::new("Type", |o, _| o["type"].clone()),
            Column::new("Data", |o, _| count(&o["data"])),
        ],
        ("coordination.k8s.io", "Lease") => {
            vec![Column::new("Holder", |o, _| {
                o["spec"]["holderIdentity"].clone()
            })]
        }
        ("", "Service") => return Some(service_columns(age)),
        ("apps", "Deployment") => return Some(deployment_columns(age)),
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => {
            return Some(binding_columns(age));
        }
        ("rbac.authorization.k8s.io", "Role" | "ClusterRole") => {
            return Some(vec![
                Column::new("Created At", |o, _| {
                    o["metadata"]["creationTimestamp"].clone()
                })
                .date(),
            ]);
        }
        ("apiextensions.k8s.io", "CustomResourceDefinition") => return Some(crd_columns()),
        ("policy", "PodDisruptionBudget") => vec![
            Column::new("Min Available", |o, _| or_na(&o["spec"]["minAvailable"])),
            Column::new("Max Unavailable", |o, _| {
                or_na(&o["spec"]["maxUnavailable"])
            }),
            Column::new("Allowed Disruptions", |o, _| {
                json!(o["status"]["disruptionsAllowed"].as_i64().unwrap_or(0))
            })
            .integer(),
        ],
        ("networking.k8s.io", "NetworkPolicy") => vec![Column::new("Pod-Selector", |o, _| {
            json!(format_selector(&o["spec"]["podSelector"]))
        })],
        ("networking.k8s.io", "Ingress") => ingress_columns(),
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy") => vec![
            Column::new("Validations", |o, _| {
                json!(o["spec"]["validations"].as_array().map_or(0, Vec::len))
            })
            .integer(),
            Column::new("ParamKind", |o, _| {
                let kind = &o["spec"]["paramKind"];
                json!(match kind.is_object() {
                    true => format!("{}/{}", text(&kind["apiVersion"]), text(&kind["kind"])),
                    false => "<unset>".into(),
                })
            }),
        ],
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding") => vec![
            Column::new("PolicyName", |o, _| o["spec"]["policyName"].clone()),
            Column::new("ParamRef", |o, _| {
                let param = &o["spec"]["paramRef"];
                json!(match (param.is_object(), text(&param["namespace"])) {
                    (false, _) => "<unset>".to_string(),
                    (true, "") => text(&param["name"]).to_string(),
                    (true, ns) => format!("{ns}/{}", text(&param["name"])),
                })
            }),
        ],
        _ => vec![],
    };
    columns.push(age);
    Some(columns)
}

fn age(object: &Value, now: DateTime<Utc>) -> Value {
    object["metadata"]["creationTimestamp"]
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map_or(json!("<unknown>"), |t| {
            json!(human_age(t.with_timezone(&Utc), now))
        })
}

fn count(map: &Value) -> Value {
    json!(map.as_object().map_or(0, |m| m.len()))
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or_default()
}

/// `k=v,k2=v2`, sorted by key, as `labels.FormatLabels` prints a map; `<none>` if empty.
fn format_labels(map: &Value) -> String {
    let sorted: BTreeMap<&String, &str> = map
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k, text(v)))
        .collect();
    if sorted.is_empty() {
        return "<none>".into();
    }
    sorted
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// An int-or-string as the PodDisruptionBudget printer shows it: `N/A` when unset.
fn or_na(value: &Value) -> Value {
    match value {
        Value::Null => json!("N/A"),
        Value::String(s) => json!(s),
        other => json!(other.to_string()),
    }
}

/// A label selector as `metav1.FormatLabelSelector` prints it: `<none>` when it selects all.
fn format_selector(selector: &Value) -> String {
    let mut parts: Vec<String> = selector["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", text(v)))
        .collect();
    for expression in selector["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let key = text(&expression["key"]);
        let values: Vec<&str> = expression["values"]
            .as_array()
            .into_iter()
            .flatten()
            .map(text)
            .collect();
        parts.push(match text(&expression["operator"]) {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            other => format!("{key} {other}"),
        });
    }
    if parts.is_empty() {
        "<none>".into()
    } else {
        parts.join(",")
    }
}

/// The Ingress printer's columns: class, hosts (`*` for none, at most three), the load
/// balancer's addresses, and the ports (443 too when there is TLS).
fn ingress_columns() -> Vec<Column> {
    vec![
        Column::new("Class", |o, _| {
            json!(o["spec"]["ingressClassName"].as_str().unwrap_or("<none>"))
        }),
        Column::new("Hosts", |o, _| {
            let hosts: Vec<&str> = o["spec"]["rules"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| text(&r["host"]))
                .filter(|h| !h.is_empty())
                .collect();
            json!(match hosts.len() {
                0 => "*".to_string(),
                1..=3 => hosts.join(","),
                n => format!("{} + {} more...", hosts[..3].join(","), n - 3),
            })
        }),
        Column::new("Address", |o, _| {
            let addresses: Vec<&str> = o["status"]["loadBalancer"]["ingress"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|i| {
                    Some(text(&i["ip"]))
                        .filter(|ip| !ip.is_empty())
                        .unwrap_or(text(&i["hostname"]))
                })
                .collect();
            json!(addresses.join(","))
        }),
        Column::new("Ports", |o, _| {
            let tls = o["spec"]["tls"].as_array().is_some_and(|t| !t.is_empty());
            json!(if tls { "80, 443" } else { "80" })
        }),
    ]
}

fn service_columns(age: Column) -> Vec<Column> {
    vec![
        Column::new("Type", |o, _| {
            json!(
                Some(text(&o["spec"]["type"]))
                    .filter(|t| !t.is_empty())
                    .unwrap_or("ClusterIP")
            )
        }),
        Column::new("Cluster-IP", |o, _| {
            json!(o["spec"]["clusterIPs"][0].as_str().unwrap_or("<none>"))
        }),
        Column::new("External-IP", |o, _| json!(external_ip(&o["spec"]))),
        Column::new("Port(s)", |o, _| json!(ports(&o["spec"]["ports"]))),
        age,
        Column::new("Selector", |o, _| {
            json!(format_labels(&o["spec"]["selector"]))
        })
        .wide(),
    ]
}

fn external_ip(spec: &Value) -> String {
    let external: Vec<&str> = spec["externalIPs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(text)
        .collect();
    match text(&spec["type"]) {
        "" | "ClusterIP" | "NodePort" if external.is_empty() => "<none>".into(),
        "" | "ClusterIP" | "NodePort" => external.join(","),
        "LoadBalancer" if external.is_empty() => "<pending>".into(),
        "LoadBalancer" => external.join(","),
        "ExternalName" => text(&spec["externalName"]).into(),
        _ => "<unknown>".into(),
    }
}

fn ports(ports: &Value) -> String {
    let pieces: Vec<String> = ports
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let protocol = Some(text(&p["protocol"]))
                .filter(|p| !p.is_empty())
                .unwrap_or("TCP");
            match p["nodePort"].as_i64().filter(|n| *n > 0) {
                Some(node) => format!("{}:{node}/{protocol}", p["port"]),
                None => format!("{}/{protocol}", p["port"]),
            }
        })
        .collect();
    if pieces.is_empty() {
        "<none>".into()
    } else {
        pieces.join(",")
    }
}

fn deployment_columns(age: Column) -> Vec<Column> {
    vec![
        Column::new("Ready", |o, _| {
            let ready = o["status"]["readyReplicas"].as_i64().unwrap_or(0);
            // kube-apiserver defaults `replicas` to 1.
            let desired = o["spec"]["replicas"].as_i64().unwrap_or(1);
            json!(format!("{ready}/{desired}"))
        }),
        Column::new("Up-to-date", |o, _| {
            json!(o["status"]["updatedReplicas"].as_i64().unwrap_or(0))
        }),
        Column::new("Available", |o, _| {
            json!(o["status"]["availableReplicas"].as_i64().unwrap_or(0))
        }),
        age,
        Column::new("Containers", |o, _| container_cells(o, "name")).wide(),
        Column::new("Images", |o, _| container_cells(o, "image")).wide(),
        Column::new("Selector", |o, _| json!(selector(&o["spec"]["selector"]))).wide(),
    ]
}

fn container_cells(object: &Value, field: &str) -> Value {
    let all: Vec<&str> = object["spec"]["template"]["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| text(&c[field]))
        .collect();
    json!(all.join(","))
}

/// A label selector's `matchLabels` as `labels.Selector` prints it (sorted, `k=v`).
fn selector(selector: &Value) -> String {
    let printed = format_labels(&selector["matchLabels"]);
    if printed == "<none>" {
        String::new()
    } else {
        printed
    }
}

fn binding_columns(age: Column) -> Vec<Column> {
    vec![
        Column::new("Role", |o, _| {
            json!(format!(
                "{}/{}",
                text(&o["roleRef"]["kind"]),
                text(&o["roleRef"]["name"])
            ))
        }),
        age,
        Column::new("Users", |o, _| subjects(o, "User")).wide(),
        Column::new("Groups", |o, _| subjects(o, "Group")).wide(),
        Column::new("ServiceAccounts", |o, _| subjects(o, "ServiceAccount")).wide(),
    ]
}

/// The subjects of a binding of one kind, as `rbac.SubjectsStrings` prints them.
fn subjects(binding: &Value, kind: &str) -> Value {
    let names: Vec<String> = binding["subjects"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| text(&s["kind"]) == kind)
        .map(|s| match kind {
            "ServiceAccount" => format!("{}/{}", text(&s["namespace"]), text(&s["name"])),
            _ => text(&s["name"]).to_string(),
        })
        .collect();
    json!(names.join(", "))
}

fn crd_columns() -> Vec<Column> {
    let mut columns = vec![
        Column::new("Scope", |o, _| o["spec"]["scope"].clone()),
        Column::new("Versions", |o, _| {
            let served: Vec<String> = o["spec"]["versions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|v| v["served"] == true)
                .map(|v| match v["storage"] == true {
                    true => format!("{}(storage)", text(&v["name"])),
                    false => text(&v["name"]).to_string(),
                })
                .collect();
            json!(served.join(","))
        }),
        Column::new("Created At", |o, _| {
            o["metadata"]["creationTimestamp"].clone()
        })
        .date(),
        Column::new("Group", |o, _| o["spec"]["group"].clone()).wide(),
        Column::new("Kind", |o, _| o["spec"]["names"]["kind"].clone()).wide(),
        Column::new("ShortNames", |o, _| {
            let short: Vec<&str> = o["spec"]["names"]["shortNames"]
                .as_array()
                .into_iter()
                .flatten()
                .map(text)
                .collect();
            json!(short.join(","))
        })
        .wide(),
    ];
    let mut established = Column::new("Established", |o, _| {
        json!(
            o["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Established" && c["status"] == "True")
        )
    })
    .wide();
    established.type_ = "boolean";
    columns.push(established);
    columns
}
