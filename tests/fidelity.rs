//! The differential fidelity suite: every API behaviour the operator, kubectl, Helm and the tests
//! rely on, run against the embedded sandbox server and the real kube-apiserver, comparing the
//! status codes, reasons and fields that matter (never timestamps, uids or resourceVersions).
//!
//! Each behaviour is a probe: an async function that talks raw HTTP to a server and returns a
//! comparable JSON value. A probe either must give the same value on both servers, or is a known
//! divergence, listed in `docs/sandbox-fidelity.md`, whose test asserts the servers still differ:
//! fixing one forces the document to change.

mod support;

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use axum::http::{Method, Request};
use kube::Client;
use partner_operator::clock::Clock;
use serde_json::{Value, json};
use support::*;

// ---------------------------------------------------------------------------------------------
// Raw HTTP
// ---------------------------------------------------------------------------------------------

/// A response as a probe sees it.
#[derive(Debug, Clone)]
struct Reply {
    code: u16,
    body: Value,
    warnings: Vec<String>,
}

impl Reply {
    /// Status code, and for a failure its reason and the fields its causes name.
    fn outcome(&self) -> Value {
        if self.code < 400 {
            return json!(self.code);
        }
        let mut causes: Vec<String> = self.body["details"]["causes"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| c["field"].as_str().unwrap_or("").to_string())
            .collect();
        causes.sort();
        causes.dedup();
        json!([self.code, self.body["reason"], causes])
    }

    fn rv(&self) -> String {
        self.body["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

#[derive(Clone)]
struct Http {
    client: Client,
}

impl Http {
    async fn call(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        accept: &str,
        body: Option<&Value>,
    ) -> Reply {
        let bytes = match body {
            None => vec![],
            Some(Value::String(yaml)) => yaml.clone().into_bytes(),
            Some(body) => serde_json::to_vec(body).unwrap(),
        };
        self.call_raw(method, path, content_type, accept, bytes)
            .await
    }

    /// As [`Http::call`], with the body as bytes (a protobuf body, say).
    async fn call_raw(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        accept: &str,
        bytes: Vec<u8>,
    ) -> Reply {
        let request = Request::builder()
            .method(method.clone())
            .uri(path)
            .header("Content-Type", content_type)
            .header("Accept", accept)
            .body(kube::client::Body::from(bytes))
            .unwrap();
        let response = tokio::time::timeout(Duration::from_secs(30), self.client.send(request))
            .await
            .unwrap_or_else(|_| panic!("{method} {path}: no answer within 30 s"))
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let code = response.status().as_u16();
        let warnings = response
            .headers()
            .get_all("warning")
            .iter()
            .map(|v| v.to_str().unwrap_or_default().to_string())
            .collect();
        let bytes = response.into_body().collect_bytes().await.unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
            // A watch: one JSON document per line.
            let events: Vec<Value> = String::from_utf8_lossy(&bytes)
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| serde_json::from_str(l).unwrap_or(json!(l)))
                .collect();
            Value::Array(events)
        });
        Reply {
            code,
            body,
            warnings,
        }
    }

    async fn get(&self, path: &str) -> Reply {
        self.call(
            Method::GET,
            path,
            "application/json",
            "application/json",
            None,
        )
        .await
    }

    async fn get_as(&self, path: &str, accept: &str) -> Reply {
        self.call(Method::GET, path, "application/json", accept, None)
            .await
    }

    async fn post(&self, path: &str, body: Value) -> Reply {
        self.call(
            Method::POST,
            path,
            "application/json",
            "application/json",
            Some(&body),
        )
        .await
    }

    async fn put(&self, path: &str, body: Value) -> Reply {
        self.call(
            Method::PUT,
            path,
            "application/json",
            "application/json",
            Some(&body),
        )
        .await
    }

    async fn patch(&self, path: &str, content_type: &str, body: Value) -> Reply {
        self.call(
            Method::PATCH,
            path,
            content_type,
            "application/json",
            Some(&body),
        )
        .await
    }

    async fn delete(&self, path: &str) -> Reply {
        self.call(
            Method::DELETE,
            path,
            "application/json",
            "application/json",
            None,
        )
        .await
    }

    /// Polls `path` until `done` holds for its reply, or `patience` passes: the last reply
    /// either way (what the two servers did is compared, a timeout included).
    async fn until(&self, path: &str, patience: Patience, done: impl Fn(&Reply) -> bool) -> Reply {
        within(patience, || async {
            let reply = self.get(path).await;
            if done(&reply) { Ok(reply) } else { Err(reply) }
        })
        .await
        .unwrap_or_else(|last| last)
    }
}

const MERGE: &str = "application/merge-patch+json";
const JSON_PATCH: &str = "application/json-patch+json";
const STRATEGIC: &str = "application/strategic-merge-patch+json";
const APPLY: &str = "application/apply-patch+yaml";
const TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io";

fn cm(name: &str, data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data})
}

fn partner(name: &str) -> Value {
    json!({
        "apiVersion": "partner-operator.io/v1alpha1", "kind": "Partner",
        "metadata": {"name": name},
        "spec": {"organizationName": "Contoso", "notificationEmail": "ops@contoso.example", "distributorRef": {"name": "northwind"}},
    })
}

fn partners(ns: &str) -> String {
    format!("/apis/partner-operator.io/v1alpha1/namespaces/{ns}/partners")
}

fn cms(ns: &str) -> String {
    format!("/api/v1/namespaces/{ns}/configmaps")
}

fn names(list: &Reply) -> Value {
    json!(
        list.body["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|i| i["metadata"]["name"].clone())
            .collect::<Vec<_>>()
    )
}

fn managers(object: &Value) -> Value {
    let mut entries: Vec<(String, String, String)> = object["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            (
                m["manager"].as_str().unwrap_or_default().to_string(),
                m["operation"].as_str().unwrap_or_default().to_string(),
                m["subresource"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    entries.sort();
    json!(entries)
}

// ---------------------------------------------------------------------------------------------
// The probes
// ---------------------------------------------------------------------------------------------

type ProbeFuture = Pin<Box<dyn Future<Output = Value> + Send>>;

/// One behaviour: what it is called, and (if the sandbox still differs) the divergence's id.
struct Probe {
    id: &'static str,
    known_divergence: Option<&'static str>,
    run: fn(Http, String) -> ProbeFuture,
}

macro_rules! probes {
    ($($id:ident $(= $known:literal)?),* $(,)?) => {
        vec![$(Probe {
            id: stringify!($id),
            known_divergence: probes!(@known $($known)?),
            run: |http, ns| Box::pin($id(http, ns)),
        }),*]
    };
    (@known) => { None };
    (@known $known:literal) => { Some($known) };
}

/// Divergences that remain, as listed in `docs/sandbox-fidelity.md`.
fn all_probes() -> Vec<Probe> {
    probes![
        crud_and_optimistic_concurrency,
        create_conflicts_and_missing_targets,
        generate_name,
        status_dropped_on_create_custom_resource,
        status_dropped_on_create_builtin,
        invalid_names,
        invalid_labels_and_annotations,
        invalid_labels_on_custom_resources,
        admission_messages,
        server_side_apply_conflicts_and_force,
        server_side_apply_managed_fields,
        server_side_apply_is_idempotent,
        server_side_apply_on_status,
        server_side_apply_atomic_lists = "ssa-list-types",
        create_with_server_owned_fields,
        updates_of_custom_resources,
        merge_json_and_strategic_patches,
        status_subresource_and_generation,
        finalizers_and_deletion,
        delete_preconditions,
        namespace_termination,
        list_chunking,
        selectors,
        unsupported_field_selector,
        watch_events_and_filters,
        watch_bookmarks_never_run_ahead,
        watch_too_old_resource_version,
        watch_initial_events_bookmark,
        watch_as_table,
        get_and_list_as_table,
        built_in_tables,
        discovery,
        discovery_of_unserved_subresources = "unserved-subresources",
        openapi_v3,
        dry_run,
        field_validation_custom_resource,
        field_validation_builtin,
        events_in_both_apis,
        event_series_patched_through_events_api,
        chart_kinds,
        built_in_defaults = "builtin-defaults",
        crd_rule_cost_budget = "cel-cost-budget",
        defaults_owned_by_the_creator = "defaults-field-manager",
        garbage_collection,
        leases,
        secrets,
        immutable_config_maps,
        crd_updates_and_removal,
        apply_requires_field_manager,
        delete_collection,
        protobuf_request_body,
        protobuf_secret_create_and_update,
    ]
}

/// A Namespace created with a protobuf body, as `kubectl create namespace` (and client-go's
/// typed clients, Helm's Secret storage among them) send it; read back as JSON.
async fn protobuf_request_body(http: Http, ns: String) -> Value {
    /// One length-delimited protobuf field (the lengths here are all under 128).
    fn field(number: u8, bytes: &[u8]) -> Vec<u8> {
        assert!(bytes.len() < 128);
        let mut out = vec![(number << 3) | 2, bytes.len() as u8];
        out.extend_from_slice(bytes);
        out
    }
    let name = format!("{ns}-pb");
    // Namespace { metadata: ObjectMeta { name } }
    let namespace = field(1, &field(1, name.as_bytes()));
    // runtime.Unknown { typeMeta: { apiVersion, kind }, raw }, behind the "k8s\0" magic.
    let type_meta = [field(1, b"v1"), field(2, b"Namespace")].concat();
    let mut body = b"k8s\0".to_vec();
    body.extend([field(1, &type_meta), field(2, &namespace)].concat());
    let created = http
        .call_raw(
            Method::POST,
            "/api/v1/namespaces",
            "application/vnd.kubernetes.protobuf",
            "application/json",
            body,
        )
        .await;
    let read = http.get(&format!("/api/v1/namespaces/{name}")).await;
    json!({
        "create": created.code,
        "read": read.code,
        "name": read.body["metadata"]["name"],
    })
}

/// A Secret with binary `data` created and then replaced with protobuf bodies, as client-go's
/// typed clients (Helm's Secret release storage among them) send them; read back as JSON.
async fn protobuf_secret_create_and_update(http: Http, ns: String) -> Value {
    use k8s_pb::api::core::v1::Secret;
    use k8s_pb::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
    use prost::Message;

    fn body(secret: &Secret) -> Vec<u8> {
        let unknown = Unknown {
            type_meta: Some(TypeMeta {
                api_version: Some("v1".into()),
                kind: Some("Secret".into()),
            }),
            raw: Some(secret.encode_to_vec()),
            content_encoding: Some(String::new()),
            content_type: Some(String::new()),
        };
        [b"k8s\0".as_slice(), &unknown.encode_to_vec()].concat()
    }
    const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";
    // JSON back: kube-apiserver would answer protobuf to a client that prefers it.
    const ACCEPT: &str = "application/json";
    let path = format!("/api/v1/namespaces/{ns}/secrets");
    let mut secret = Secret {
        metadata: Some(ObjectMeta {
            name: Some("release".into()),
            labels: [("owner".to_string(), "helm".to_string())].into(),
            ..Default::default()
        }),
        data: [("blob".to_string(), vec![0u8, 1, 2, 0xfe, 0xff])].into(),
        string_data: [("note".to_string(), "plain".to_string())].into(),
        r#type: Some("helm.sh/release.v1".into()),
        immutable: None,
    };
    let created = http
        .call_raw(Method::POST, &path, PROTOBUF, ACCEPT, body(&secret))
        .await;
    let read = http.get(&format!("{path}/release")).await;
    secret.metadata.as_mut().unwrap().resource_version = read.body["metadata"]["resourceVersion"]
        .as_str()
        .map(String::from);
    secret.data = [("blob".to_string(), b"second".to_vec())].into();
    secret.string_data.clear();
    let replaced = http
        .call_raw(
            Method::PUT,
            &format!("{path}/release"),
            PROTOBUF,
            ACCEPT,
            body(&secret),
        )
        .await;
    let reread = http.get(&format!("{path}/release")).await;
    let view = |r: &Reply| {
        json!({
            "labels": r.body["metadata"]["labels"],
            "type": r.body["type"],
            "data": r.body["data"],
        })
    };
    json!({
        "create": created.outcome(),
        "created": view(&created),
        "read": view(&read),
        "replace": replaced.outcome(),
        "reread": view(&reread),
    })
}

async fn crud_and_optimistic_concurrency(http: Http, ns: String) -> Value {
    let created = http.post(&cms(&ns), cm("one", json!({"a": "1"}))).await;
    let path = format!("{}/one", cms(&ns));
    let got = http.get(&path).await;
    let mut update = got.body.clone();
    update["data"]["a"] = json!("2");
    let updated = http.put(&path, update.clone()).await;
    let stale = http.put(&path, update).await; // the old resourceVersion
    let mut no_version = updated.body.clone();
    no_version["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resourceVersion");
    no_version["data"]["a"] = json!("3");
    let unconditional = http.put(&path, no_version).await;
    let deleted = http.delete(&path).await;
    let gone = http.get(&path).await;
    json!({
        "create": created.outcome(), "get": got.outcome(), "data": got.body["data"],
        "update": updated.outcome(), "updatedData": updated.body["data"],
        "versionMoved": updated.rv() != got.rv(),
        "stale": stale.outcome(), "unconditional": unconditional.outcome(),
        "unconditionalData": unconditional.body["data"],
        "delete": deleted.outcome(), "afterDelete": gone.outcome(),
        "deleteAgain": http.delete(&path).await.outcome(),
    })
}

async fn create_conflicts_and_missing_targets(http: Http, ns: String) -> Value {
    http.post(&cms(&ns), cm("one", json!({}))).await;
    let duplicate = http.post(&cms(&ns), cm("one", json!({}))).await;
    let missing_ns = http
        .post(&cms("no-such-namespace"), cm("x", json!({})))
        .await;
    let put_missing = http
        .put(&format!("{}/absent", cms(&ns)), cm("absent", json!({})))
        .await;
    let mut other_ns = cm("two", json!({}));
    other_ns["metadata"]["namespace"] = json!("default");
    let wrong_ns = http.post(&cms(&ns), other_ns).await;
    let unknown_resource = http.get(&format!("/api/v1/namespaces/{ns}/nothings")).await;
    let wrong_kind = http
        .post(
            &cms(&ns),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}}),
        )
        .await;
    json!({
        "duplicate": duplicate.outcome(), "missingNamespace": missing_ns.outcome(),
        "putMissing": put_missing.outcome(), "namespaceMismatch": wrong_ns.outcome(),
        "unknownResource": unknown_resource.outcome(), "wrongKind": wrong_kind.outcome(),
    })
}

async fn generate_name(http: Http, ns: String) -> Value {
    let created = http
        .post(
            &cms(&ns),
            json!({"metadata": {"generateName": "gen-"}, "data": {}}),
        )
        .await;
    let name = created.body["metadata"]["name"].as_str().unwrap_or("");
    json!({"create": created.outcome(), "prefixed": name.starts_with("gen-"), "length": name.len(),
        "generateNameKept": created.body["metadata"]["generateName"]})
}

async fn status_dropped_on_create_custom_resource(http: Http, ns: String) -> Value {
    let mut object = partner("with-status");
    object["status"] = json!({"observedGeneration": 7});
    let created = http.post(&partners(&ns), object).await;
    let got = http.get(&format!("{}/with-status", partners(&ns))).await;
    json!({"create": created.outcome(), "returned": created.body.get("status"), "stored": got.body.get("status")})
}

async fn status_dropped_on_create_builtin(http: Http, ns: String) -> Value {
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "nginx"}]}}},
        "status": {"replicas": 5, "readyReplicas": 5},
    });
    let created = http
        .post(
            &format!("/apis/apps/v1/namespaces/{ns}/deployments"),
            deployment,
        )
        .await;
    json!({"create": created.outcome(), "replicas": created.body["status"]["replicas"], "ready": created.body["status"]["readyReplicas"]})
}

async fn invalid_names(http: Http, ns: String) -> Value {
    let upper = http.post(&cms(&ns), cm("Bad_Name", json!({}))).await;
    let long = http.post(&cms(&ns), cm(&"a".repeat(254), json!({}))).await;
    let dotted_ns = http
        .post(
            "/api/v1/namespaces",
            json!({"metadata": {"name": "has.dot"}}),
        )
        .await;
    let no_name = http
        .post(&cms(&ns), json!({"metadata": {}, "data": {}}))
        .await;
    let mut p = partner("Bad_Partner");
    p["metadata"]["name"] = json!("Bad_Partner");
    let cr = http.post(&partners(&ns), p).await;
    json!({"upper": upper.outcome(), "tooLong": long.outcome(), "namespaceWithDot": dotted_ns.outcome(),
        "noName": no_name.outcome(), "customResource": cr.outcome()})
}

async fn invalid_labels_and_annotations(http: Http, ns: String) -> Value {
    let with_meta = |name: &str, key: &str, meta: Value| {
        let mut object = cm(name, json!({}));
        object["metadata"][key] = meta;
        object
    };
    let long_value = http
        .post(
            &cms(&ns),
            with_meta("a", "labels", json!({"tier": "x".repeat(64)})),
        )
        .await;
    let ok_value = http
        .post(
            &cms(&ns),
            with_meta("b", "labels", json!({"tier": "x".repeat(63)})),
        )
        .await;
    let bad_key = http
        .post(
            &cms(&ns),
            with_meta("c", "labels", json!({"bad key!": "v"})),
        )
        .await;
    let bad_value = http
        .post(&cms(&ns), with_meta("d", "labels", json!({"k": "-dash"})))
        .await;
    let prefixed = http
        .post(
            &cms(&ns),
            with_meta("e", "labels", json!({"example.com/k": "v"})),
        )
        .await;
    let bad_annotation = http
        .post(
            &cms(&ns),
            with_meta("f", "annotations", json!({"bad key": "v"})),
        )
        .await;
    let long_annotation_value = http
        .post(
            &cms(&ns),
            with_meta("g", "annotations", json!({"k": "x".repeat(1000)})),
        )
        .await;
    let update_bad = http
        .patch(
            &format!("{}/b", cms(&ns)),
            MERGE,
            json!({"metadata": {"labels": {"tier": "y".repeat(64)}}}),
        )
        .await;
    json!({"longValue": long_value.outcome(), "value63": ok_value.outcome(), "badKey": bad_key.outcome(),
        "badValue": bad_value.outcome(), "prefixedKey": prefixed.outcome(), "badAnnotationKey": bad_annotation.outcome(),
        "longAnnotationValue": long_annotation_value.outcome(), "patchToBadLabel": update_bad.outcome()})
}

async fn invalid_labels_on_custom_resources(http: Http, ns: String) -> Value {
    let mut p = partner("labelled");
    p["metadata"]["labels"] = json!({"tier": "x".repeat(64), "bad key": "v"});
    let created = http.post(&partners(&ns), p).await;
    json!({"create": created.outcome(), "causes": cause_messages(&created)})
}

/// The messages of a `Status`'s causes, sorted: kube-apiserver walks labels in map order, so
/// its causes come in any order.
fn cause_messages(reply: &Reply) -> Value {
    let mut messages: Vec<String> = reply.body["details"]["causes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| c["message"].as_str().unwrap_or_default().to_string())
        .collect();
    messages.sort();
    json!(messages)
}

async fn admission_messages(http: Http, ns: String) -> Value {
    let mut p = partner("bad");
    p["spec"]["notificationEmail"] = json!("not-an-email");
    let created = http.post(&partners(&ns), p).await;
    let mut missing = partner("missing");
    missing["spec"]
        .as_object_mut()
        .unwrap()
        .remove("organizationName");
    let missing = http.post(&partners(&ns), missing).await;
    json!({"invalid": created.outcome(), "invalidMessage": created.body["message"], "invalidCauses": cause_messages(&created),
        "missing": missing.outcome(), "missingMessage": missing.body["message"], "missingCauses": cause_messages(&missing)})
}

async fn server_side_apply_conflicts_and_force(http: Http, ns: String) -> Value {
    let path = format!("{}/applied", cms(&ns));
    let applied = |value: &str| cm("applied", json!({"key": value}));
    let first = http
        .patch(&format!("{path}?fieldManager=alice"), APPLY, applied("a"))
        .await;
    let same = http
        .patch(&format!("{path}?fieldManager=alice"), APPLY, applied("a2"))
        .await;
    let conflict = http
        .patch(&format!("{path}?fieldManager=bob"), APPLY, applied("b"))
        .await;
    let agreeing = http
        .patch(&format!("{path}?fieldManager=carol"), APPLY, applied("a2"))
        .await;
    let forced = http
        .patch(
            &format!("{path}?fieldManager=bob&force=true"),
            APPLY,
            applied("b"),
        )
        .await;
    // An update by another manager takes the field; alice's next apply conflicts with it.
    http.patch(
        &format!("{path}?fieldManager=editor"),
        MERGE,
        json!({"data": {"key": "e"}}),
    )
    .await;
    let after_update = http
        .patch(&format!("{path}?fieldManager=bob"), APPLY, applied("b2"))
        .await;
    // Dropping a field from one's applied configuration removes it, if no one else owns it.
    let own = http
        .patch(
            &format!("{path}?fieldManager=dave"),
            APPLY,
            cm("applied", json!({"only-dave": "1"})),
        )
        .await;
    let dropped = http
        .patch(
            &format!("{path}?fieldManager=dave"),
            APPLY,
            cm("applied", json!({})),
        )
        .await;
    json!({
        "first": first.outcome(), "sameManager": same.outcome(), "conflict": conflict.outcome(),
        "conflictMessage": conflict.body["message"],
        "agreeing": agreeing.outcome(), "forced": forced.outcome(), "forcedData": forced.body["data"],
        "afterUpdate": after_update.outcome(), "own": own.outcome(), "droppedData": dropped.body["data"],
    })
}

async fn server_side_apply_managed_fields(http: Http, ns: String) -> Value {
    let path = format!("{}/managed", cms(&ns));
    let first = http
        .patch(
            &format!("{path}?fieldManager=applier"),
            APPLY,
            cm("managed", json!({"a": "1"})),
        )
        .await;
    let merged = http
        .patch(
            &format!("{path}?fieldManager=merger"),
            MERGE,
            json!({"data": {"b": "2"}}),
        )
        .await;
    let mut object = merged.body.clone();
    object["data"]["c"] = json!("3");
    let put = http
        .put(&format!("{path}?fieldManager=putter"), object)
        .await;
    let p = http
        .post(
            &format!("{}?fieldManager=creator", partners(&ns)),
            partner("p"),
        )
        .await;
    let status = http
        .patch(
            &format!("{}/p/status?fieldManager=reporter", partners(&ns)),
            MERGE,
            json!({"status": {"observedGeneration": 1}}),
        )
        .await;
    json!({
        "afterApply": managers(&first.body), "afterMerge": managers(&merged.body), "afterPut": managers(&put.body),
        "applyFields": first.body["metadata"]["managedFields"][0]["fieldsV1"],
        "created": managers(&p.body), "afterStatus": managers(&status.body),
    })
}

async fn server_side_apply_is_idempotent(http: Http, ns: String) -> Value {
    let path = format!("/api/v1/namespaces/{ns}/secrets/applied?fieldManager=operator");
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "applied", "labels": {"a": "b"}},
        "type": "Opaque", "data": {"hash": "YWJj"}});
    let first = http.patch(&path, APPLY, secret.clone()).await;
    // Real time on purpose: managedFields times have whole seconds, and an idempotent apply
    // must not move them a second later.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second = http.patch(&path, APPLY, secret.clone()).await;
    let mut changed = secret;
    changed["data"]["hash"] = json!("ZGVm");
    let third = http.patch(&path, APPLY, changed).await;
    let namespace = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": format!("{ns}-tenant"), "labels": {"t": "1"}}});
    let ns_path = format!("/api/v1/namespaces/{ns}-tenant?fieldManager=operator");
    let ns_first = http.patch(&ns_path, APPLY, namespace.clone()).await;
    let ns_second = http.patch(&ns_path, APPLY, namespace).await;
    json!({
        "first": [first.outcome(), first.body["data"], first.body["type"]],
        "secondKeepsVersion": [second.outcome(), second.rv() == first.rv(),
            second.body["metadata"]["managedFields"][0]["time"] == first.body["metadata"]["managedFields"][0]["time"]],
        "changed": [third.outcome(), third.rv() != first.rv(), managers(&third.body)],
        "namespace": [ns_first.outcome(), ns_first.body["status"]["phase"], ns_second.rv() == ns_first.rv()],
    })
}

fn condition(type_: &str) -> Value {
    json!({"type": type_, "status": "True", "reason": "R", "message": "m", "lastTransitionTime": "2027-01-01T00:00:00Z"})
}

fn partner_status(conditions: Value) -> Value {
    json!({"apiVersion": "partner-operator.io/v1alpha1", "kind": "Partner", "metadata": {"name": "s"},
        "status": {"observedGeneration": 1, "conditions": conditions}})
}

fn condition_types(r: &Reply) -> Value {
    json!(
        r.body["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| c["type"].clone())
            .collect::<Vec<_>>()
    )
}

async fn server_side_apply_on_status(http: Http, ns: String) -> Value {
    let base = partners(&ns);
    http.post(&base, partner("s")).await;
    let first = http
        .patch(
            &format!("{base}/s/status?fieldManager=operator"),
            APPLY,
            partner_status(json!([condition("Ready")])),
        )
        .await;
    let again = http
        .patch(
            &format!("{base}/s/status?fieldManager=operator"),
            APPLY,
            partner_status(json!([condition("Ready")])),
        )
        .await;
    json!({
        "first": [first.outcome(), condition_types(&first), first.body["spec"]["organizationName"], managers(&first.body), first.body["metadata"]["generation"]],
        "againKeepsVersion": again.rv() == first.rv(),
    })
}

/// Lists of custom resources are atomic unless their schema says `x-kubernetes-list-type: map`.
async fn server_side_apply_atomic_lists(http: Http, ns: String) -> Value {
    let base = partners(&ns);
    http.post(&base, partner("s")).await;
    http.patch(
        &format!("{base}/s/status?fieldManager=operator"),
        APPLY,
        partner_status(json!([condition("Ready")])),
    )
    .await;
    let other = http
        .patch(
            &format!("{base}/s/status?fieldManager=other"),
            APPLY,
            partner_status(json!([condition("Other")])),
        )
        .await;
    let forced = http
        .patch(
            &format!("{base}/s/status?fieldManager=other&force=true"),
            APPLY,
            partner_status(json!([condition("Other")])),
        )
        .await;
    json!({
        "other": [other.outcome(), condition_types(&other)],
        "forced": [forced.outcome(), condition_types(&forced), managers(&forced.body)],
    })
}

async fn create_with_server_owned_fields(http: Http, ns: String) -> Value {
    let mut with_version = cm("rv", json!({}));
    with_version["metadata"]["resourceVersion"] = json!("5");
    let with_version = http.post(&cms(&ns), with_version).await;
    let mut with_meta = cm("meta", json!({}));
    with_meta["metadata"]["uid"] = json!("00000000-0000-0000-0000-000000000001");
    with_meta["metadata"]["creationTimestamp"] = json!("2000-01-01T00:00:00Z");
    with_meta["metadata"]["deletionTimestamp"] = json!("2000-01-01T00:00:00Z");
    let with_meta = http.post(&cms(&ns), with_meta).await;
    let mut p = partner("p");
    p["metadata"]["generation"] = json!(7);
    let p = http.post(&partners(&ns), p).await;
    json!({
        "resourceVersion": with_version.outcome(),
        "meta": [with_meta.outcome(), with_meta.body["metadata"]["uid"] == "00000000-0000-0000-0000-000000000001",
            with_meta.body["metadata"]["creationTimestamp"] == "2000-01-01T00:00:00Z", with_meta.body["metadata"]["deletionTimestamp"]],
        "generation": [p.outcome(), p.body["metadata"]["generation"]],
    })
}

async fn updates_of_custom_resources(http: Http, ns: String) -> Value {
    let base = partners(&ns);
    let created = http.post(&base, partner("u")).await;
    let path = format!("{base}/u");
    let mut unconditional = created.body.clone();
    unconditional["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resourceVersion");
    unconditional["spec"]["organizationName"] = json!("Changed");
    let unconditional = http.put(&path, unconditional).await;
    let mut other_uid = created.body.clone();
    other_uid["metadata"]["uid"] = json!("00000000-0000-0000-0000-000000000001");
    let other_uid = http.put(&path, other_uid).await;
    let mut renamed = created.body.clone();
    renamed["metadata"]["name"] = json!("other");
    let renamed = http.put(&path, renamed).await;
    let mut other_ns = created.body.clone();
    other_ns["metadata"]["namespace"] = json!("default");
    let other_ns = http.put(&path, other_ns).await;
    let missing = http
        .patch(&format!("{base}/absent"), MERGE, json!({"spec": {}}))
        .await;
    json!({
        "unconditional": unconditional.outcome(), "otherUid": other_uid.outcome(),
        "renamed": renamed.outcome(), "otherNamespace": other_ns.outcome(), "patchMissing": missing.outcome(),
    })
}

async fn merge_json_and_strategic_patches(http: Http, ns: String) -> Value {
    http.post(&cms(&ns), cm("p", json!({"a": "1", "b": "2"})))
        .await;
    let path = format!("{}/p", cms(&ns));
    let merge = http
        .patch(&path, MERGE, json!({"data": {"a": null, "c": "3"}}))
        .await;
    let json_patch = http
        .patch(
            &path,
            JSON_PATCH,
            json!([{"op": "add", "path": "/data/d", "value": "4"}, {"op": "remove", "path": "/data/b"}]),
        )
        .await;
    let failed_test = http
        .patch(
            &path,
            JSON_PATCH,
            json!([{"op": "test", "path": "/data/c", "value": "wrong"}]),
        )
        .await;
    let bad_remove = http
        .patch(
            &path,
            JSON_PATCH,
            json!([{"op": "remove", "path": "/data/nothing"}]),
        )
        .await;
    let stale = http
        .patch(
            &path,
            MERGE,
            json!({"metadata": {"resourceVersion": "1"}, "data": {"e": "5"}}),
        )
        .await;
    let deployments = format!("/apis/apps/v1/namespaces/{ns}/deployments");
    http.post(&deployments, json!({
        "metadata": {"name": "web"},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
                {"name": "web", "image": "nginx:1"}, {"name": "sidecar", "image": "envoy:1"}]}}},
    })).await;
    let strategic = http
        .patch(
            &format!("{deployments}/web"),
            STRATEGIC,
            json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:2"}]}}}}),
        )
        .await;
    let containers: Vec<Value> = strategic.body["spec"]["template"]["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| json!([c["name"], c["image"]]))
        .collect();
    let strategic_cm = http
        .patch(&path, STRATEGIC, json!({"data": {"c": null, "f": "6"}}))
        .await;
    let crd_strategic = http
        .patch(
            &format!("{}/sm", partners(&ns)),
            STRATEGIC,
            json!({"spec": {"organizationName": "X"}}),
        )
        .await;
    json!({
        "merge": [merge.outcome(), merge.body["data"]], "json": [json_patch.outcome(), json_patch.body["data"]],
        "failedTest": failed_test.outcome(), "badRemove": bad_remove.outcome(), "stalePrecondition": stale.outcome(),
        "strategic": [strategic.outcome(), containers], "strategicConfigMap": [strategic_cm.outcome(), strategic_cm.body["data"]],
        "strategicOnCustomResource": crd_strategic.outcome(),
    })
}

async fn status_subresource_and_generation(http: Http, ns: String) -> Value {
    let base = partners(&ns);
    let created = http.post(&base, partner("gen")).await;
    let path = format!("{base}/gen");
    let label = http
        .patch(&path, MERGE, json!({"metadata": {"labels": {"x": "y"}}}))
        .await;
    let spec = http
        .patch(
            &path,
            MERGE,
            json!({"spec": {"organizationName": "Changed"}}),
        )
        .await;
    let status = http
        .patch(
            &format!("{path}/status"),
            MERGE,
            json!({"status": {"observedGeneration": 2}, "spec": {"organizationName": "Ignored"}}),
        )
        .await;
    let status_via_main = http
        .patch(&path, MERGE, json!({"status": {"observedGeneration": 9}}))
        .await;
    let mut put = status_via_main.body.clone();
    put["status"]["observedGeneration"] = json!(10);
    let put_main = http.put(&path, put).await;
    let mut put_status = put_main.body.clone();
    put_status["status"]["observedGeneration"] = json!(11);
    put_status["spec"]["organizationName"] = json!("Ignored too");
    let put_status = http.put(&format!("{path}/status"), put_status).await;
    let unchanged = http
        .patch(
            &path,
            MERGE,
            json!({"spec": {"organizationName": "Changed"}}),
        )
        .await;
    let generation = |r: &Reply| r.body["metadata"]["generation"].clone();
    json!({
        "created": generation(&created), "afterLabel": generation(&label), "afterSpec": generation(&spec),
        "afterStatus": [generation(&status), status.body["status"], status.body["spec"]["organizationName"]],
        "statusViaMain": [status_via_main.outcome(), status_via_main.body["status"]],
        "putMain": [put_main.outcome(), put_main.body["status"]],
        "putStatus": [put_status.outcome(), put_status.body["status"], put_status.body["spec"]["organizationName"], generation(&put_status)],
        "noOpKeepsVersion": unchanged.rv() == put_status.rv(),
    })
}

async fn finalizers_and_deletion(http: Http, ns: String) -> Value {
    let mut object = cm("held", json!({}));
    object["metadata"]["finalizers"] = json!(["example.com/hold"]);
    http.post(&cms(&ns), object).await;
    let path = format!("{}/held", cms(&ns));
    let deleted = http.delete(&path).await;
    let still = http.get(&path).await;
    let again = http.delete(&path).await;
    let add_finalizer = http
        .patch(
            &path,
            JSON_PATCH,
            json!([{"op": "add", "path": "/metadata/finalizers/-", "value": "example.com/late"}]),
        )
        .await;
    let released = http
        .patch(&path, MERGE, json!({"metadata": {"finalizers": null}}))
        .await;
    let gone = http.get(&path).await;
    json!({
        "delete": [deleted.outcome(), deleted.body["metadata"]["deletionTimestamp"].is_string(), deleted.body["metadata"]["deletionGracePeriodSeconds"]],
        "stillThere": [still.outcome(), still.body["metadata"]["finalizers"]],
        "deleteAgain": [again.outcome(), again.body["metadata"]["deletionTimestamp"].is_string()],
        "addFinalizerWhileDeleting": add_finalizer.outcome(),
        "released": released.outcome(), "gone": gone.outcome(),
    })
}

async fn delete_preconditions(http: Http, ns: String) -> Value {
    http.post(&cms(&ns), cm("pre", json!({}))).await;
    let path = format!("{}/pre", cms(&ns));
    let with_body = |body: Value| {
        let http = http.clone();
        let path = path.clone();
        async move {
            http.call(
                Method::DELETE,
                &path,
                "application/json",
                "application/json",
                Some(&body),
            )
            .await
        }
    };
    let wrong_uid =
        with_body(json!({"preconditions": {"uid": "00000000-0000-0000-0000-000000000000"}})).await;
    let wrong_version = with_body(json!({"preconditions": {"resourceVersion": "1"}})).await;
    let mut dependent = cm("dependent", json!({}));
    dependent["metadata"]["ownerReferences"] = json!([{"apiVersion": "v1", "kind": "ConfigMap",
        "name": "pre", "uid": http.get(&path).await.body["metadata"]["uid"], "blockOwnerDeletion": true}]);
    http.post(&cms(&ns), dependent).await;
    let deleted = with_body(json!({"propagationPolicy": "Foreground"})).await;
    let gone = http
        .until(&path, Patience::API_SERVER, |r| r.code == 404)
        .await;
    let dependent_gone = http.get(&format!("{}/dependent", cms(&ns))).await;
    json!({"wrongUid": wrong_uid.outcome(), "wrongVersion": wrong_version.outcome(),
        "foreground": [deleted.outcome(), deleted.body["metadata"]["finalizers"]],
        "ownerGone": gone.outcome(), "dependentGone": dependent_gone.outcome()})
}

async fn namespace_termination(http: Http, _ns: String) -> Value {
    let ns = "terminating";
    http.post("/api/v1/namespaces", json!({"metadata": {"name": ns}}))
        .await;
    http.post(&cms(ns), cm("content", json!({}))).await;
    let deleted = http.delete(&format!("/api/v1/namespaces/{ns}")).await;
    let phase = deleted.body["status"]["phase"].clone();
    let finalizers = deleted.body["spec"]["finalizers"].clone();
    let create_inside = http.post(&cms(ns), cm("late", json!({}))).await;
    let gone = http
        .until(
            &format!("/api/v1/namespaces/{ns}"),
            Patience::API_SERVER,
            |r| r.code == 404,
        )
        .await;
    let content = http.get(&format!("{}/content", cms(ns))).await;
    json!({"delete": deleted.outcome(), "phase": phase, "specFinalizers": finalizers,
        "createInside": create_inside.outcome(), "eventually": gone.outcome(), "content": content.outcome()})
}

async fn list_chunking(http: Http, ns: String) -> Value {
    for name in ["a", "b", "c", "d", "e"] {
        http.post(&cms(&ns), cm(name, json!({}))).await;
    }
    let mut pages = vec![];
    let mut token = String::new();
    loop {
        let page = http
            .get(&format!("{}?limit=2&continue={token}", cms(&ns)))
            .await;
        pages.push(json!([
            page.outcome(),
            names(&page),
            page.body["metadata"]["remainingItemCount"]
        ]));
        match page.body["metadata"]["continue"].as_str() {
            Some(next) if !next.is_empty() && pages.len() < 5 => token = next.to_string(),
            _ => break,
        }
    }
    // With a selector, no count of what remains (kube-apiserver cannot know it cheaply).
    let selected = http
        .get(&format!(
            "{}?limit=2&fieldSelector=metadata.name!=c",
            cms(&ns)
        ))
        .await;
    pages.push(json!([
        selected.outcome(),
        names(&selected),
        selected.body["metadata"]["remainingItemCount"],
        selected.body["metadata"]["continue"].is_string()
    ]));
    let bad_token = http
        .get(&format!("{}?limit=2&continue=garbage", cms(&ns)))
        .await;
    let all = http.get(&cms(&ns)).await;
    json!({"pages": pages, "badToken": bad_token.outcome(),
        "unpaged": [names(&all), all.body["metadata"]["continue"], all.body["kind"], all.body["apiVersion"]]})
}

async fn selectors(http: Http, ns: String) -> Value {
    for (name, tier) in [("a", Some("web")), ("b", Some("db")), ("c", None)] {
        let mut object = cm(name, json!({}));
        if let Some(tier) = tier {
            object["metadata"]["labels"] = json!({"tier": tier});
        }
        http.post(&cms(&ns), object).await;
    }
    let list = |query: &str| {
        let http = http.clone();
        let path = format!("{}?{query}", cms(&ns));
        async move {
            let reply = http.get(&path).await;
            json!([reply.outcome(), names(&reply)])
        }
    };
    json!({
        "equals": list("labelSelector=tier%3Dweb").await,
        "notEquals": list("labelSelector=tier!%3Dweb").await,
        "in": list("labelSelector=tier+in+(web,db)").await,
        "exists": list("labelSelector=tier").await,
        "notExists": list("labelSelector=!tier").await,
        "fieldName": list("fieldSelector=metadata.name%3Db").await,
        "fieldNamespace": list(&format!("fieldSelector=metadata.namespace%3D{ns}")).await,
        "badLabelSelector": list("labelSelector=tier%3D%3D%3D").await,
    })
}

async fn unsupported_field_selector(http: Http, ns: String) -> Value {
    http.post(&cms(&ns), cm("a", json!({"k": "v"}))).await;
    let reply = http
        .get(&format!("{}?fieldSelector=data.k%3Dv", cms(&ns)))
        .await;
    json!([reply.outcome(), names(&reply)])
}

/// The event types and object names of a watch that ran to its timeout.
fn watch_summary(reply: &Reply) -> Value {
    json!(
        reply
            .body
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["type"] != "BOOKMARK")
            .map(|e| json!([e["type"], e["object"]["metadata"]["name"]]))
            .collect::<Vec<_>>()
    )
}

/// A bookmark never carries a version newer than an event the watch has yet to deliver: a
/// client that resumes from a bookmark would lose those events. Writes race a watch with
/// bookmarks for a few seconds; every event after a bookmark must be newer than it.
async fn watch_bookmarks_never_run_ahead(http: Http, ns: String) -> Value {
    let start = http.post(&cms(&ns), cm("first", json!({}))).await.rv();
    let writer = {
        let http = http.clone();
        let ns = ns.clone();
        tokio::spawn(async move {
            // Over about three seconds, so that bookmarks fall between the events.
            for i in 0..150 {
                http.post(&cms(&ns), cm(&format!("w{i}"), json!({}))).await;
                // Pacing on purpose: the writes spread over the watch's bookmarks.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let watch = format!(
        "{}?watch=true&allowWatchBookmarks=true&resourceVersion={start}&timeoutSeconds=5",
        cms(&ns)
    );
    let watched = http.get(&watch).await;
    writer.await.unwrap();
    let version = |event: &Value| {
        event["object"]["metadata"]["resourceVersion"]
            .as_str()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let mut bookmark = 0;
    let mut behind_a_bookmark = vec![];
    for event in watched.body.as_array().into_iter().flatten() {
        if event["type"] == "BOOKMARK" {
            bookmark = bookmark.max(version(event));
        } else if version(event) <= bookmark {
            behind_a_bookmark.push(event["object"]["metadata"]["name"].clone());
        }
    }
    json!({"code": watched.code, "eventsBehindABookmark": behind_a_bookmark})
}

async fn watch_events_and_filters(http: Http, ns: String) -> Value {
    let start = http.post(&cms(&ns), cm("first", json!({}))).await.rv();
    let writer = {
        let http = http.clone();
        let ns = ns.clone();
        tokio::spawn(async move {
            // Time for the watches to open first (one has no resourceVersion: it sees only
            // what comes after it). A wait for something to happen, not proof of nothing.
            tokio::time::sleep(Duration::from_millis(500)).await;
            let mut object = cm("second", json!({}));
            object["metadata"]["labels"] = json!({"watched": "yes"});
            http.post(&cms(&ns), object).await;
            http.patch(
                &format!("{}/second", cms(&ns)),
                MERGE,
                json!({"data": {"k": "v"}}),
            )
            .await;
            http.patch(
                &format!("{}/second", cms(&ns)),
                MERGE,
                json!({"metadata": {"labels": {"watched": "no"}}}),
            )
            .await;
            http.delete(&format!("{}/second", cms(&ns))).await;
        })
    };
    let all = format!(
        "{}?watch=true&resourceVersion={start}&timeoutSeconds=3",
        cms(&ns)
    );
    let filtered = format!(
        "{}?watch=true&resourceVersion={start}&timeoutSeconds=3&labelSelector=watched%3Dyes",
        cms(&ns)
    );
    let from_now = format!("{}?watch=true&timeoutSeconds=3", cms(&ns));
    let (all, filtered, from_now) = (http.get(&all), http.get(&filtered), http.get(&from_now));
    let (all, filtered, from_now) = tokio::join!(all, filtered, from_now);
    writer.await.unwrap();
    json!({"all": [all.code, watch_summary(&all)], "filtered": watch_summary(&filtered),
        "withoutVersion": watch_summary(&from_now)})
}

async fn watch_too_old_resource_version(http: Http, ns: String) -> Value {
    http.post(&cms(&ns), cm("x", json!({}))).await;
    let watch = http
        .get(&format!(
            "{}?watch=true&resourceVersion=1&timeoutSeconds=2",
            cms(&ns)
        ))
        .await;
    let first = &watch.body[0];
    json!({"code": watch.code, "type": first["type"], "status": [first["object"]["code"], first["object"]["reason"]]})
}

async fn watch_initial_events_bookmark(http: Http, ns: String) -> Value {
    http.post(&cms(&ns), cm("x", json!({}))).await;
    http.post(&cms(&ns), cm("y", json!({}))).await;
    let watch = http
        .get(&format!(
            "{}?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=2",
            cms(&ns)
        ))
        .await;
    let events = watch.body.as_array().cloned().unwrap_or_default();
    let bookmark = events.iter().position(|e| e["type"] == "BOOKMARK");
    json!({
        "code": watch.code,
        "beforeBookmark": events.iter().take(bookmark.unwrap_or(0)).map(|e| json!([e["type"], e["object"]["metadata"]["name"]])).collect::<Vec<_>>(),
        "bookmark": bookmark.map(|i| json!([events[i]["object"]["kind"], events[i]["object"]["metadata"]["annotations"]])),
        "bookmarkWithoutAllow": http.get(&format!("{}?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&timeoutSeconds=1", cms(&ns))).await.outcome(),
    })
}

async fn watch_as_table(http: Http, ns: String) -> Value {
    http.post(&cms(&ns), cm("x", json!({"k": "v"}))).await;
    let writer = {
        let http = http.clone();
        let ns = ns.clone();
        tokio::spawn(async move {
            // Time for the watches to open first (one has no resourceVersion: it sees only
            // what comes after it). A wait for something to happen, not proof of nothing.
            tokio::time::sleep(Duration::from_millis(500)).await;
            http.post(&cms(&ns), cm("y", json!({}))).await;
        })
    };
    let watch = http
        .get_as(&format!("{}?watch=true&timeoutSeconds=2", cms(&ns)), TABLE)
        .await;
    writer.await.unwrap();
    let events: Vec<Value> = watch
        .body
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let columns: Vec<Value> = e["object"]["columnDefinitions"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| c["name"].clone())
                .collect();
            json!({"type": e["type"], "kind": e["object"]["kind"], "columns": columns,
                "rows": e["object"]["rows"].as_array().map(Vec::len),
                "firstCell": e["object"]["rows"][0]["cells"][0], "rowObject": e["object"]["rows"][0]["object"]["kind"]})
        })
        .collect();
    json!({"code": watch.code, "events": events})
}

async fn get_and_list_as_table(http: Http, ns: String) -> Value {
    http.post(&partners(&ns), partner("tabled")).await;
    http.post(&cms(&ns), cm("x", json!({"k": "v"}))).await;
    let summary = |reply: Reply| {
        let columns: Vec<Value> = reply.body["columnDefinitions"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| json!([c["name"], c["type"], c["priority"]]))
            .collect();
        let first = &reply.body["rows"][0];
        json!({"code": reply.code, "kind": reply.body["kind"], "columns": columns,
            "firstCells": first["cells"].as_array().map(|c| c.iter().take(c.len().saturating_sub(1)).cloned().collect::<Vec<_>>()),
            "rowObjectKind": first["object"]["kind"]})
    };
    let partner_list = http.get_as(&partners(&ns), TABLE).await;
    let partner_get = http
        .get_as(&format!("{}/tabled", partners(&ns)), TABLE)
        .await;
    let cm_list = http.get_as(&cms(&ns), TABLE).await;
    json!({"partners": summary(partner_list), "partner": summary(partner_get), "configMaps": summary(cm_list)})
}

/// `kubectl get` of the built-in kinds the operator writes: the columns of their Tables.
async fn built_in_tables(http: Http, ns: String) -> Value {
    http.post(
        &format!("/api/v1/namespaces/{ns}/secrets"),
        json!({"metadata": {"name": "s"}, "stringData": {"k": "v"}}),
    )
    .await;
    http.post(
        &format!("/apis/coordination.k8s.io/v1/namespaces/{ns}/leases"),
        json!({"metadata": {"name": "l"}, "spec": {"holderIdentity": "a"}}),
    )
    .await;
    http.post(
        &format!("/api/v1/namespaces/{ns}/events"),
        json!({"metadata": {"name": "e"}, "involvedObject": {"kind": "Partner", "namespace": ns, "name": "contoso"},
            "reason": "TenantProvisioned", "message": "provisioned", "type": "Normal",
            "source": {"component": "partner-operator"}, "lastTimestamp": "2027-03-01T09:00:00Z"}),
    )
    .await;
    let columns = |reply: Reply| {
        let column_names: Vec<Value> = reply.body["columnDefinitions"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| c["name"].clone())
            .collect();
        // Ages depend on when the row was read, a second either way.
        let first_row: Vec<Value> = reply.body["rows"][0]["cells"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
            .skip(1)
            .map(|(i, cell)| match column_names.get(i) {
                Some(name) if name == "Age" => json!("<age>"),
                _ => cell.clone(),
            })
            .collect();
        let names: Vec<Value> = reply.body["columnDefinitions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["priority"] == 0)
            .map(|c| c["name"].clone())
            .collect();
        // The first cell is a name or an age; the others are compared.
        json!([reply.code, names, first_row])
    };
    json!({
        "namespaces": columns(http.get_as(&format!("/api/v1/namespaces/{ns}"), TABLE).await),
        "secrets": columns(http.get_as(&format!("/api/v1/namespaces/{ns}/secrets"), TABLE).await),
        "leases": columns(http.get_as(&format!("/apis/coordination.k8s.io/v1/namespaces/{ns}/leases"), TABLE).await),
        "events": columns(http.get_as(&format!("/api/v1/namespaces/{ns}/events"), TABLE).await),
    })
}

async fn discovery(http: Http, _ns: String) -> Value {
    let core = http.get("/api").await;
    let groups = http.get("/apis").await;
    let ours = groups.body["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|g| g["name"] == "partner-operator.io")
        .cloned()
        .unwrap_or_default();
    let wanted_groups = [
        "apps",
        "coordination.k8s.io",
        "events.k8s.io",
        "rbac.authorization.k8s.io",
        "apiextensions.k8s.io",
        "policy",
        "networking.k8s.io",
    ];
    let served: BTreeSet<&str> = groups.body["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|g| g["name"].as_str())
        .collect();
    let resources = |reply: &Reply, wanted: &[&str]| {
        let mut out = vec![];
        for r in reply.body["resources"].as_array().into_iter().flatten() {
            let name = r["name"].as_str().unwrap_or_default();
            if wanted.contains(&name.split('/').next().unwrap_or_default()) {
                let mut verbs: Vec<String> = r["verbs"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|v| v.as_str().unwrap_or_default().to_string())
                    .collect();
                verbs.sort();
                out.push(json!([
                    name,
                    r["kind"],
                    r["namespaced"],
                    verbs,
                    r["shortNames"],
                    r["singularName"]
                ]));
            }
        }
        out.sort_by_key(|v| v.to_string());
        out
    };
    let core_v1 = http.get("/api/v1").await;
    let ours_v1 = http.get("/apis/partner-operator.io/v1alpha1").await;
    let version = http.get("/version").await;
    json!({
        "api": [core.body["kind"], core.body["versions"]],
        "groupsServed": wanted_groups.iter().map(|g| served.contains(g)).collect::<Vec<_>>(),
        "ours": ours,
        "coreV1": resources(&core_v1, &["configmaps", "secrets", "namespaces", "events", "serviceaccounts"])
            .into_iter().filter(|r| !matches!(r[0].as_str(), Some("namespaces/finalize" | "serviceaccounts/token"))).collect::<Vec<_>>(),
        "partnerV1alpha1": [ours_v1.body["groupVersion"], resources(&ours_v1, &["partners", "distributors"])],
        "version": [version.code, version.body["major"], version.body.get("gitVersion").is_some()],
    })
}

async fn discovery_of_unserved_subresources(http: Http, _ns: String) -> Value {
    let core_v1 = http.get("/api/v1").await;
    let subresources: Vec<Value> = core_v1.body["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["name"].as_str())
        .filter(|n| matches!(*n, "namespaces/finalize" | "serviceaccounts/token"))
        .map(|n| json!(n))
        .collect();
    json!({"subresources": subresources, "missingGroupVersion": http.get("/apis/nothing.example/v1").await.outcome()})
}

async fn openapi_v3(http: Http, _ns: String) -> Value {
    let index = http.get("/openapi/v3").await;
    let paths = &index.body["paths"];
    let ours = paths["apis/partner-operator.io/v1alpha1"]["serverRelativeURL"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let doc = http.get(&ours).await;
    let partner = &doc.body["components"]["schemas"]["io.partner-operator.v1alpha1.Partner"];
    let mut spec_fields: Vec<String> = partner["properties"]["spec"]["properties"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    spec_fields.sort();
    json!({
        "index": [index.code, paths.get("api/v1").is_some(), paths.get("apis/apps/v1").is_some(), ours.starts_with("/openapi/v3/apis/partner-operator.io/v1alpha1?hash=")],
        "doc": doc.code,
        "gvk": partner["x-kubernetes-group-version-kind"],
        "specFields": spec_fields,
        "required": partner["properties"]["spec"]["required"],
        "hasMetadataRef": partner["properties"]["metadata"].to_string().contains("ObjectMeta"),
        "pathForPartners": doc.body["paths"].get("/apis/partner-operator.io/v1alpha1/namespaces/{namespace}/partners/{name}").is_some(),
        "missing": http.get("/openapi/v3/apis/nothing.example/v1").await.code,
    })
}

async fn dry_run(http: Http, ns: String) -> Value {
    let created = http
        .post(
            &format!("{}?dryRun=All", cms(&ns)),
            cm("dry", json!({"k": "v"})),
        )
        .await;
    let after_create = http.get(&format!("{}/dry", cms(&ns))).await;
    http.post(&cms(&ns), cm("real", json!({"k": "v"}))).await;
    let path = format!("{}/real", cms(&ns));
    let patched = http
        .patch(
            &format!("{path}?dryRun=All"),
            MERGE,
            json!({"data": {"k": "w"}}),
        )
        .await;
    let deleted = http
        .call(
            Method::DELETE,
            &format!("{path}?dryRun=All"),
            "application/json",
            "application/json",
            None,
        )
        .await;
    let after = http.get(&path).await;
    let invalid = http
        .post(
            &format!("{}?dryRun=All", partners(&ns)),
            json!({"metadata": {"name": "p"}, "spec": {}}),
        )
        .await;
    let bad_value = http
        .post(
            &format!("{}?dryRun=Bogus", cms(&ns)),
            cm("bogus", json!({})),
        )
        .await;
    json!({
        "create": [created.outcome(), created.body["data"], created.body["metadata"]["uid"].is_string()],
        "afterCreate": after_create.outcome(), "patch": [patched.outcome(), patched.body["data"]],
        "delete": deleted.outcome(), "after": [after.outcome(), after.body["data"]],
        "invalid": invalid.outcome(), "unknownDryRunValue": bad_value.outcome(),
    })
}

fn partner_with_unknown(name: &str) -> Value {
    let mut p = partner(name);
    p["spec"]["unknownField"] = json!(1);
    p["metadata"]["unknownMeta"] = json!(1);
    p
}

async fn field_validation_custom_resource(http: Http, ns: String) -> Value {
    let base = partners(&ns);
    let strict = http
        .post(
            &format!("{base}?fieldValidation=Strict"),
            partner_with_unknown("s"),
        )
        .await;
    let warn = http
        .post(
            &format!("{base}?fieldValidation=Warn"),
            partner_with_unknown("w"),
        )
        .await;
    let default = http.post(&base, partner_with_unknown("d")).await;
    let ignore = http
        .post(
            &format!("{base}?fieldValidation=Ignore"),
            partner_with_unknown("i"),
        )
        .await;
    let summary = |r: &Reply| {
        json!([
            r.outcome(),
            r.warnings.len(),
            r.body["spec"].get("unknownField").is_some()
        ])
    };
    json!({
        "strict": [strict.outcome(), strict.body["message"]],
        "warn": summary(&warn), "default": summary(&default), "ignore": summary(&ignore),
        "bogus": http.post(&format!("{base}?fieldValidation=Bogus"), partner("b")).await.outcome(),
    })
}

async fn field_validation_builtin(http: Http, ns: String) -> Value {
    let with_unknown = |name: &str| {
        let mut object = cm(name, json!({}));
        object["spec"] = json!({"x": 1});
        object
    };
    let strict = http
        .post(
            &format!("{}?fieldValidation=Strict", cms(&ns)),
            with_unknown("s"),
        )
        .await;
    let default = http.post(&cms(&ns), with_unknown("d")).await;
    json!({
        "strict": [strict.outcome(), strict.body["message"]],
        "default": [default.outcome(), default.warnings.len(), default.body.get("spec").is_some()],
    })
}

async fn events_in_both_apis(http: Http, ns: String) -> Value {
    let new_api = format!("/apis/events.k8s.io/v1/namespaces/{ns}/events");
    let core_api = format!("/api/v1/namespaces/{ns}/events");
    let written = http
        .post(
            &new_api,
            json!({
                "apiVersion": "events.k8s.io/v1", "kind": "Event",
                "metadata": {"name": "new-style"},
                "eventTime": "2027-03-01T09:00:00.000000Z",
                "reportingController": "partner-operator.io/controller", "reportingInstance": "replica-1",
                "action": "Provision", "reason": "TenantProvisioned", "type": "Normal", "note": "provisioned the tenant",
                "regarding": {"apiVersion": "partner-operator.io/v1alpha1", "kind": "Partner", "namespace": ns, "name": "contoso"},
            }),
        )
        .await;
    let as_core = http.get(&format!("{core_api}/new-style")).await;
    let old = http
        .post(
            &core_api,
            json!({
                "metadata": {"name": "old-style"},
                "involvedObject": {"kind": "Partner", "namespace": ns, "name": "contoso"},
                "reason": "Converted", "message": "converted to production", "type": "Normal",
                "source": {"component": "partner-operator"}, "count": 2,
                "firstTimestamp": "2027-03-01T09:00:00Z", "lastTimestamp": "2027-03-01T09:05:00Z",
            }),
        )
        .await;
    let as_new = http.get(&format!("{new_api}/old-style")).await;
    let core_list = http.get(&core_api).await;
    let new_list = http.get(&new_api).await;
    let missing_time = http
        .post(
            &new_api,
            json!({"metadata": {"name": "no-time"}, "reason": "R", "type": "Normal", "action": "A",
                "reportingController": "x.io/c", "reportingInstance": "i", "regarding": {"kind": "Partner", "name": "c", "namespace": ns}}),
        )
        .await;
    json!({
        "written": written.outcome(),
        "asCore": [as_core.outcome(), as_core.body["message"], as_core.body["reason"], as_core.body["involvedObject"]["name"],
            as_core.body["reportingComponent"], as_core.body["reportingInstance"], as_core.body["action"]],
        "old": old.outcome(),
        "asNew": [as_new.outcome(), as_new.body["note"], as_new.body["regarding"]["name"], as_new.body["deprecatedCount"],
            as_new.body["deprecatedSource"]["component"]],
        "coreList": names(&core_list), "newList": names(&new_list),
        "newApiValidation": missing_time.outcome(),
    })
}

async fn event_series_patched_through_events_api(http: Http, ns: String) -> Value {
    let new_api = format!("/apis/events.k8s.io/v1/namespaces/{ns}/events");
    http.post(
        &new_api,
        json!({
            "metadata": {"name": "repeated"}, "eventTime": "2027-03-01T09:00:00.000000Z",
            "reportingController": "partner-operator.io/controller", "reportingInstance": "r",
            "action": "Reconcile", "reason": "ReconcileFailed", "type": "Warning", "note": "failed",
            "regarding": {"kind": "Partner", "namespace": ns, "name": "contoso"},
        }),
    )
    .await;
    let patched = http
        .patch(
            &format!("{new_api}/repeated"),
            MERGE,
            json!({"series": {"count": 2, "lastObservedTime": "2027-03-01T09:05:00.000000Z"}}),
        )
        .await;
    let core = http
        .get(&format!("/api/v1/namespaces/{ns}/events/repeated"))
        .await;
    let watch = http
        .get(&format!("{new_api}?watch=true&timeoutSeconds=1"))
        .await;
    json!({
        "patched": [patched.outcome(), patched.body["series"], patched.body["note"], patched.body["apiVersion"]],
        "core": [core.body["series"], core.body["message"], core.body["apiVersion"]],
        "watch": watch.body.as_array().map(|events| events.iter().map(|e| json!([e["type"], e["object"]["apiVersion"], e["object"]["note"]])).collect::<Vec<_>>()),
    })
}

/// The kinds the Helm chart installs, created as Helm does.
async fn chart_kinds(http: Http, ns: String) -> Value {
    let rules = json!([{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]);
    let subjects = json!([{"kind": "ServiceAccount", "name": "op", "namespace": ns}]);
    let cluster_role = format!("{ns}-role");
    let objects = [
        (
            format!("/api/v1/namespaces/{ns}/serviceaccounts"),
            json!({"metadata": {"name": "op"}}),
        ),
        (
            format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles"),
            json!({"metadata": {"name": "op"}, "rules": rules}),
        ),
        (
            format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings"),
            json!({"metadata": {"name": "op"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "op"}, "subjects": subjects}),
        ),
        (
            "/apis/rbac.authorization.k8s.io/v1/clusterroles".to_string(),
            json!({"metadata": {"name": cluster_role}, "rules": rules}),
        ),
        (
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings".to_string(),
            json!({"metadata": {"name": cluster_role}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cluster_role}, "subjects": subjects}),
        ),
        (
            format!("/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets"),
            json!({"metadata": {"name": "op"}, "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "op"}}}}),
        ),
        (
            format!("/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies"),
            json!({"metadata": {"name": "op"}, "spec": {"podSelector": {"matchLabels": {"app": "op"}}, "policyTypes": ["Ingress"]}}),
        ),
    ];
    let mut out = vec![];
    for (path, object) in objects {
        let created = http.post(&path, object).await;
        out.push(json!([
            created.outcome(),
            created.body["kind"],
            created.body["metadata"]["generation"]
        ]));
    }
    out.push(json!(
        http.get(&format!(
            "/apis/rbac.authorization.k8s.io/v1/clusterroles/{cluster_role}"
        ))
        .await
        .body["rules"]
    ));
    json!(out)
}

async fn built_in_defaults(http: Http, ns: String) -> Value {
    let service = http
        .post(
            &format!("/api/v1/namespaces/{ns}/services"),
            json!({"metadata": {"name": "metrics"}, "spec": {"ports": [{"port": 8080}], "selector": {"app": "op"}}}),
        )
        .await;
    let deployment = http
        .post(
            &format!("/apis/apps/v1/namespaces/{ns}/deployments"),
            json!({"metadata": {"name": "op"}, "spec": {"selector": {"matchLabels": {"app": "op"}},
                "template": {"metadata": {"labels": {"app": "op"}}, "spec": {"containers": [{"name": "op", "image": "op:1"}]}}}}),
        )
        .await;
    json!({
        "service": [service.outcome(), service.body["spec"]["type"], service.body["spec"]["ports"][0]["protocol"], service.body["spec"]["ports"][0]["targetPort"]],
        "deployment": [deployment.outcome(), deployment.body["spec"]["replicas"], deployment.body["spec"]["strategy"]["type"],
            deployment.body["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"]],
    })
}

async fn garbage_collection(http: Http, ns: String) -> Value {
    let owner = http.post(&cms(&ns), cm("owner", json!({}))).await;
    let mut dependent = cm("dependent", json!({}));
    dependent["metadata"]["ownerReferences"] = json!([{"apiVersion": "v1", "kind": "ConfigMap",
        "name": "owner", "uid": owner.body["metadata"]["uid"]}]);
    http.post(&cms(&ns), dependent).await;
    http.delete(&format!("{}/owner", cms(&ns))).await;
    let dependent = http
        .until(
            &format!("{}/dependent", cms(&ns)),
            Patience::API_SERVER,
            |r| r.code == 404,
        )
        .await;
    json!({"dependentAfterOwnerDeleted": dependent.outcome()})
}

async fn leases(http: Http, ns: String) -> Value {
    let path = format!("/apis/coordination.k8s.io/v1/namespaces/{ns}/leases");
    let created = http
        .post(
            &path,
            json!({"metadata": {"name": "leader"}, "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15,
                "acquireTime": "2027-03-01T09:00:00.000000Z", "renewTime": "2027-03-01T09:00:00.000000Z", "leaseTransitions": 0}}),
        )
        .await;
    let mut renewed = created.body.clone();
    renewed["spec"]["renewTime"] = json!("2027-03-01T09:00:05.123456Z");
    let renew = http.put(&format!("{path}/leader"), renewed.clone()).await;
    renewed["spec"]["holderIdentity"] = json!("b");
    let stale = http.put(&format!("{path}/leader"), renewed).await;
    json!({"create": created.outcome(), "spec": created.body["spec"], "renew": [renew.outcome(), renew.body["spec"]["renewTime"]],
        "staleTakeover": stale.outcome()})
}

async fn secrets(http: Http, ns: String) -> Value {
    let path = format!("/api/v1/namespaces/{ns}/secrets");
    let created = http
        .post(
            &path,
            json!({"metadata": {"name": "s"}, "data": {"a": "YQ==", "b": "Yg=="}, "stringData": {"b": "bee", "c": "see"}}),
        )
        .await;
    let immutable = http
        .post(
            &path,
            json!({"metadata": {"name": "frozen"}, "immutable": true, "stringData": {"k": "v"}}),
        )
        .await;
    let change = http
        .patch(
            &format!("{path}/frozen"),
            MERGE,
            json!({"data": {"k": "dw=="}}),
        )
        .await;
    let thaw = http
        .patch(
            &format!("{path}/frozen"),
            MERGE,
            json!({"immutable": false}),
        )
        .await;
    let relabel = http
        .patch(
            &format!("{path}/frozen"),
            MERGE,
            json!({"metadata": {"labels": {"ok": "yes"}}}),
        )
        .await;
    let bad_key = http
        .post(
            &path,
            json!({"metadata": {"name": "bad"}, "stringData": {"no/slash": "v"}}),
        )
        .await;
    let bad_base64 = http
        .post(
            &path,
            json!({"metadata": {"name": "bad64"}, "data": {"k": "not base64!"}}),
        )
        .await;
    json!({
        "create": [created.outcome(), created.body["data"], created.body.get("stringData").is_some(), created.body["type"]],
        "immutable": immutable.outcome(), "changeImmutable": change.outcome(), "thaw": thaw.outcome(),
        "relabelImmutable": relabel.outcome(), "badKey": bad_key.outcome(), "badBase64": bad_base64.outcome(),
    })
}

async fn immutable_config_maps(http: Http, ns: String) -> Value {
    let mut object = cm("frozen", json!({"k": "v"}));
    object["immutable"] = json!(true);
    let created = http.post(&cms(&ns), object).await;
    let change = http
        .patch(
            &format!("{}/frozen", cms(&ns)),
            MERGE,
            json!({"data": {"k": "w"}}),
        )
        .await;
    json!({"create": created.outcome(), "change": change.outcome()})
}

/// A namespaced CRD of group `fidelity.example`, version `v1`, for `kind` (plural: the kind in
/// lower case with an `s`), whose `spec` has `spec_properties`, with `columns` as its printer
/// columns when given.
fn fidelity_crd(kind: &str, columns: Option<Value>, spec_properties: Value) -> Value {
    let singular = kind.to_lowercase();
    let plural = format!("{singular}s");
    let mut version = json!({
        "name": "v1", "served": true, "storage": true,
        "schema": {"openAPIV3Schema": {"type": "object", "properties": {
            "spec": {"type": "object", "properties": spec_properties}}}},
    });
    if let Some(columns) = columns {
        version["additionalPrinterColumns"] = columns;
    }
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.fidelity.example")},
        "spec": {
            "group": "fidelity.example", "scope": "Namespaced",
            "names": {"plural": plural, "singular": singular, "kind": kind, "listKind": format!("{kind}List")},
            "versions": [version],
        },
    })
}

fn widget_crd(columns: Value, spec_properties: Value) -> Value {
    fidelity_crd("Widget", Some(columns), spec_properties)
}

/// A custom resource created without a field its schema defaults: whether the creating field
/// manager's `managedFields` entry owns the defaulted field.
async fn defaults_owned_by_the_creator(http: Http, ns: String) -> Value {
    let crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
    let crd = fidelity_crd(
        "Doodad",
        None,
        json!({
            "size": {"type": "integer", "default": 3},
            "color": {"type": "string"},
        }),
    );
    let created_crd = http.post(crds, crd).await;
    let doodads = format!("/apis/fidelity.example/v1/namespaces/{ns}/doodads");
    http.until(&doodads, Patience::API_SERVER, |r| r.code == 200)
        .await;
    let created = http
        .post(
            &format!("{doodads}?fieldManager=creator"),
            json!({"apiVersion": "fidelity.example/v1", "kind": "Doodad", "metadata": {"name": "d"}, "spec": {"color": "red"}}),
        )
        .await;
    let owned = |field: &str| {
        created.body["metadata"]["managedFields"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|entry| entry["manager"] == "creator")
            .any(|entry| !entry["fieldsV1"]["f:spec"][field].is_null())
    };
    let answer = json!({
        "crd": created_crd.code,
        "create": created.code,
        "size": created.body["spec"]["size"],
        "given field owned": owned("f:color"),
        "defaulted field owned": owned("f:size"),
    });
    http.delete(&format!("{crds}/doodads.fidelity.example"))
        .await;
    answer
}

/// A CRD whose CEL rule could cost too much on the largest object its schema allows: a
/// uniqueness check over 1,000 strings of up to 253 characters.
async fn crd_rule_cost_budget(http: Http, _ns: String) -> Value {
    let crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
    let crd = fidelity_crd(
        "Gadget",
        None,
        json!({"names": {
            "type": "array", "maxItems": 1000,
            "items": {"type": "string", "maxLength": 253},
            "x-kubernetes-validations": [{"rule": "self.all(x, self.exists_one(y, y == x))"}],
        }}),
    );
    let created = http.post(crds, crd).await;
    if created.code == 201 {
        http.delete(&format!("{crds}/gadgets.fidelity.example"))
            .await;
    }
    json!({"create": created.code})
}

async fn crd_updates_and_removal(http: Http, ns: String) -> Value {
    let crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
    let crd_path = format!("{crds}/widgets.fidelity.example");
    let widgets = format!("/apis/fidelity.example/v1/namespaces/{ns}/widgets");
    let created = http
        .post(
            crds,
            widget_crd(json!([]), json!({"size": {"type": "integer"}})),
        )
        .await;
    let served = http
        .until(&widgets, Patience::API_SERVER, |r| r.code == 200)
        .await;
    let widget = http
        .post(
            &widgets,
            json!({"apiVersion": "fidelity.example/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 3, "color": "red"}}),
        )
        .await;
    let columns_of = |r: &Reply| {
        json!(
            r.body["columnDefinitions"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| c["name"].clone())
                .collect::<Vec<_>>()
        )
    };
    let before = http.get_as(&widgets, TABLE).await;
    let current = http.get(&crd_path).await;
    let mut updated = widget_crd(
        json!([{"name": "Size", "type": "integer", "jsonPath": ".spec.size"}]),
        json!({"size": {"type": "integer", "maximum": 10}, "color": {"type": "string", "enum": ["red", "blue"]}}),
    );
    updated["metadata"]["resourceVersion"] = current.body["metadata"]["resourceVersion"].clone();
    let update = http.put(&crd_path, updated).await;
    let after = http.get(&widgets).await;
    let table = within(Patience::API_SERVER, || async {
        let table = http.get_as(&widgets, TABLE).await;
        if columns_of(&table).to_string().contains("Size") {
            Ok(table)
        } else {
            Err(table)
        }
    })
    .await
    .unwrap_or_else(|last| last);
    let too_big = http
        .post(
            &widgets,
            json!({"apiVersion": "fidelity.example/v1", "kind": "Widget", "metadata": {"name": "big"}, "spec": {"size": 11, "color": "green"}}),
        )
        .await;
    let kept = http
        .post(
            &widgets,
            json!({"apiVersion": "fidelity.example/v1", "kind": "Widget", "metadata": {"name": "w2"}, "spec": {"color": "blue"}}),
        )
        .await;
    let deleted = http.delete(&crd_path).await;
    let gone = http
        .until(&widgets, Patience::API_SERVER, |r| r.code == 404)
        .await;
    let crd_gone = http
        .until(&crd_path, Patience::API_SERVER, |r| r.code == 404)
        .await;
    let recreated = http
        .post(
            crds,
            widget_crd(json!([]), json!({"size": {"type": "integer"}})),
        )
        .await;
    let empty = http
        .until(&widgets, Patience::API_SERVER, |r| r.code == 200)
        .await;
    json!({
        "create": created.outcome(), "served": served.outcome(),
        "widget": [widget.outcome(), widget.body["spec"]],
        "columnsBefore": columns_of(&before), "update": update.outcome(), "listAfter": [after.outcome(), names(&after)],
        "columnsAfter": columns_of(&table), "sizeCell": table.body["rows"][0]["cells"][1],
        "newSchema": too_big.outcome(), "newField": [kept.outcome(), kept.body["spec"]],
        "deleteCrd": deleted.outcome(), "resourceGone": gone.outcome(), "crdGone": crd_gone.outcome(),
        "recreated": recreated.outcome(), "objectsGone": [empty.outcome(), names(&empty)],
    })
}

async fn apply_requires_field_manager(http: Http, ns: String) -> Value {
    let reply = http
        .patch(
            &format!("{}/nomanager", cms(&ns)),
            APPLY,
            cm("nomanager", json!({})),
        )
        .await;
    let yaml = http
        .patch(
            &format!("{}/yaml?fieldManager=m", cms(&ns)),
            APPLY,
            json!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: yaml\ndata:\n  k: v\n"),
        )
        .await;
    let wrong_name = http
        .patch(
            &format!("{}/one?fieldManager=m", cms(&ns)),
            APPLY,
            cm("other", json!({})),
        )
        .await;
    json!({"withoutManager": reply.outcome(), "yaml": [yaml.outcome(), yaml.body["data"]], "nameMismatch": wrong_name.outcome()})
}

async fn delete_collection(http: Http, ns: String) -> Value {
    for (name, tier) in [("a", "x"), ("b", "x"), ("c", "y")] {
        let mut object = cm(name, json!({}));
        object["metadata"]["labels"] = json!({"tier": tier});
        http.post(&cms(&ns), object).await;
    }
    let deleted = http
        .delete(&format!("{}?labelSelector=tier%3Dx", cms(&ns)))
        .await;
    let left = http.get(&cms(&ns)).await;
    json!({"deleteCollection": deleted.outcome(), "left": names(&left)})
}

// ---------------------------------------------------------------------------------------------
// The comparison
// ---------------------------------------------------------------------------------------------

/// Runs every probe on `server`, each in a namespace of its own: `(id, value)`.
async fn run_all(backend: &Backend, probes: &[Probe]) -> Vec<(&'static str, Value)> {
    let http = Http {
        client: backend.client(),
    };
    let mut results = vec![];
    for chunk in probes.chunks(4) {
        let runs = chunk.iter().map(|probe| {
            let http = http.clone();
            async move {
                let ns = format!("fid-{}", probe.id.replace('_', "-"));
                let created = http
                    .post("/api/v1/namespaces", json!({"metadata": {"name": ns}}))
                    .await;
                assert_eq!(created.code, 201, "namespace {ns}: {:?}", created.body);
                let value = tokio::time::timeout(Duration::from_secs(120), (probe.run)(http, ns))
                    .await
                    .unwrap_or_else(|_| json!("timed out"));
                (probe.id, value)
            }
        });
        results.extend(futures::future::join_all(runs).await);
    }
    results
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_sandbox_behaves_as_kube_apiserver() {
    let probes = all_probes();
    let (sandbox, kube) = tokio::join!(
        Backend::start(Server::Sandbox, Clock::system()),
        Backend::start(Server::Kube, Clock::system())
    );
    let (on_sandbox, on_kube) = tokio::join!(run_all(&sandbox, &probes), run_all(&kube, &probes));
    let mut failures = vec![];
    let mut same = 0;
    let mut differ = 0;
    for ((probe, (_, s)), (_, k)) in probes.iter().zip(&on_sandbox).zip(&on_kube) {
        let equal = s == k;
        if equal {
            same += 1;
        } else {
            differ += 1;
        }
        match (probe.known_divergence, equal) {
            (None, false) => failures.push(format!(
                "{}: the servers differ\n  kube-apiserver: {k}\n  sandbox:        {s}",
                probe.id
            )),
            (Some(id), true) => failures.push(format!(
                "{}: known divergence {id} is gone (both: {s}); unmark the probe and remove it from docs/sandbox-fidelity.md",
                probe.id
            )),
            _ => {}
        }
    }
    eprintln!(
        "{} behaviours compared: {same} the same, {differ} different",
        probes.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let doc = read_doc();
    assert!(
        doc.contains(&format!("Behaviours compared: {}", probes.len())),
        "docs/sandbox-fidelity.md must say `Behaviours compared: {}`",
        probes.len()
    );
    assert!(
        doc.contains(&format!("Still different: {differ}")),
        "docs/sandbox-fidelity.md must say `Still different: {differ}`"
    );
}

fn read_doc() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/sandbox-fidelity.md"
    ))
    .expect("docs/sandbox-fidelity.md exists")
}

/// The document lists exactly the known divergences the suite checks, each once.
#[test]
fn the_document_lists_exactly_the_known_divergences() {
    let known: BTreeSet<&str> = all_probes()
        .iter()
        .filter_map(|p| p.known_divergence)
        .collect();
    let doc = read_doc();
    let listed: Vec<&str> = doc
        .lines()
        .filter(|l| l.starts_with("| `"))
        .filter_map(|l| l.split('`').nth(1))
        .collect();
    let listed_set: BTreeSet<&str> = listed.iter().copied().collect();
    assert_eq!(
        listed.len(),
        listed_set.len(),
        "an id is listed twice: {listed:?}"
    );
    assert_eq!(
        listed_set, known,
        "docs/sandbox-fidelity.md's table and the probes marked as known divergences"
    );
    let ids: Vec<&str> = all_probes().iter().map(|p| p.id).collect();
    let unique: BTreeSet<&str> = ids.iter().copied().collect();
    assert_eq!(ids.len(), unique.len(), "probe ids are unique");
}
