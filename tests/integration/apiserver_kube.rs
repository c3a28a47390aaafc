//! The sandbox API server through a real kube-rs client: CRUD, admission, the status
//! subresource, finalizers, watches that survive dropped connections and compaction, patches and
//! server-side apply, selectors and pagination, concurrent writers, injected faults.

use std::collections::BTreeMap;

use chrono::Utc;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use partner_operator::api::*;
use partner_operator::testing::PartnerFixture;
use partner_sandbox::apiserver::{ApiServer, FaultRule};
use serde_json::json;
use wait::{Patience, eventually};

use crate::support::wait;

async fn server() -> ApiServer {
    let server = ApiServer::start("127.0.0.1:0".parse().unwrap(), Utc::now)
        .await
        .unwrap();
    server
        .install_crds(&partner_operator::api::crds())
        .await
        .unwrap();
    let namespaces: Api<Namespace> = Api::all(server.client());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "partners", "labels": {"partner-operator.io/distributor": "northwind"}}})).unwrap();
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    server
}

fn config_map(name: &str, labels: &[(&str, &str)]) -> ConfigMap {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>()},
        "data": {"k": "v"},
    }))
    .unwrap()
}

fn partner(name: &str) -> Partner {
    PartnerFixture::new(name)
        .namespace("partners")
        .organization("Contoso")
        .email("a@contoso.example")
        .build()
}

#[tokio::test]
async fn crud_with_resource_versions_and_conflicts() {
    let server = server().await;
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "partners");
    let created = api
        .create(&PostParams::default(), &config_map("one", &[]))
        .await
        .unwrap();
    let uid = created.metadata.uid.clone().unwrap();
    assert!(created.metadata.creation_timestamp.is_some());
    let duplicate = api
        .create(&PostParams::default(), &config_map("one", &[]))
        .await
        .unwrap_err();
    assert!(
        matches!(duplicate, kube::Error::Api(ref s) if s.code == 409 && s.reason == "AlreadyExists"),
        "{duplicate:?}"
    );

    let mut stale = created.clone();
    let mut fresh = created.clone();
    fresh.data = Some([("k".to_string(), "v2".to_string())].into());
    let updated = api
        .replace("one", &PostParams::default(), &fresh)
        .await
        .unwrap();
    assert_ne!(
        updated.metadata.resource_version,
        created.metadata.resource_version
    );
    assert_eq!(updated.metadata.uid.as_deref(), Some(uid.as_str()));
    stale.data = Some([("k".to_string(), "stale".to_string())].into());
    let conflict = api
        .replace("one", &PostParams::default(), &stale)
        .await
        .unwrap_err();
    assert!(
        matches!(conflict, kube::Error::Api(ref s) if s.code == 409 && s.reason == "Conflict"),
        "{conflict:?}"
    );

    // A write that changes nothing makes no new version.
    let again = api
        .replace("one", &PostParams::default(), &updated)
        .await
        .unwrap();
    assert_eq!(
        again.metadata.resource_version,
        updated.metadata.resource_version
    );

    api.delete("one", &DeleteParams::default()).await.unwrap();
    let missing = api.get("one").await.unwrap_err();
    assert!(
        matches!(missing, kube::Error::Api(ref s) if s.code == 404 && s.message == "configmaps \"one\" not found"),
        "{missing:?}"
    );
    let no_namespace: Api<ConfigMap> = Api::namespaced(server.client(), "nowhere");
    let error = no_namespace
        .create(&PostParams::default(), &config_map("x", &[]))
        .await
        .unwrap_err();
    assert!(
        matches!(error, kube::Error::Api(ref s) if s.code == 404),
        "{error:?}"
    );
    let bad_name = api
        .create(&PostParams::default(), &config_map("Not_Valid", &[]))
        .await
        .unwrap_err();
    assert!(
        matches!(bad_name, kube::Error::Api(ref s) if s.code == 422 && s.message.contains("metadata.name")),
        "{bad_name:?}"
    );
}

#[tokio::test]
async fn custom_resources_are_defaulted_and_validated_at_admission() {
    let server = server().await;
    let api: Api<Partner> = Api::namespaced(server.client(), "partners");
    let created = api
        .create(&PostParams::default(), &partner("contoso"))
        .await
        .unwrap();
    assert_eq!(created.spec.subscription.level, RequestedLevel::Trial);
    assert_eq!(created.metadata.generation, Some(1));

    let mut bad = partner("bad");
    bad.spec.notification_email = "not-an-email".into();
    let error = api.create(&PostParams::default(), &bad).await.unwrap_err();
    let kube::Error::Api(status) = error else {
        panic!("{error:?}")
    };
    assert_eq!(status.code, 422);
    assert_eq!(status.reason, "Invalid");
    assert!(
        status
            .message
            // kube-apiserver's words: the schema error, and that the CEL rules were not checked.
            .starts_with("Partner.partner-operator.io \"bad\" is invalid: [spec.notificationEmail"),
        "{}",
        status.message
    );

    // Transition rules run on update.
    let mut moved = created.clone();
    moved.spec.distributor_ref.name = "southwind".into();
    let error = api
        .replace("contoso", &PostParams::default(), &moved)
        .await
        .unwrap_err();
    assert!(
        matches!(error, kube::Error::Api(ref s) if s.code == 422 && s.message.contains("spec.distributorRef is immutable")),
        "{error:?}"
    );
}

#[tokio::test]
async fn status_subresource_and_generation() {
    let server = server().await;
    let api: Api<Partner> = Api::namespaced(server.client(), "partners");
    api.create(&PostParams::default(), &partner("contoso"))
        .await
        .unwrap();
    let status = json!({"status": {"subscriptionLevel": "Trial"}});
    let patched = api
        .patch_status("contoso", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    assert_eq!(
        patched.status.unwrap().subscription_level,
        Some(SubscriptionLevel::Trial)
    );
    assert_eq!(
        patched.metadata.generation,
        Some(1),
        "status writes do not bump the generation"
    );
    // Status sent to the main endpoint is ignored; spec changes bump the generation.
    let change = json!({"spec": {"organizationName": "Contoso Ltd"}, "status": {"subscriptionLevel": "Production"}});
    let patched = api
        .patch("contoso", &PatchParams::default(), &Patch::Merge(&change))
        .await
        .unwrap();
    assert_eq!(patched.metadata.generation, Some(2));
    assert_eq!(
        patched.status.unwrap().subscription_level,
        Some(SubscriptionLevel::Trial)
    );
    // Label changes do not.
    let labels = json!({"metadata": {"labels": {"x": "y"}}});
    let patched = api
        .patch("contoso", &PatchParams::default(), &Patch::Merge(&labels))
        .await
        .unwrap();
    assert_eq!(patched.metadata.generation, Some(2));
}

#[tokio::test]
async fn finalizers_hold_deletion_until_removed() {
    let server = server().await;
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "partners");
    let mut cm = config_map("held", &[]);
    cm.metadata.finalizers = Some(vec!["partner-operator.io/cleanup".into()]);
    api.create(&PostParams::default(), &cm).await.unwrap();
    api.delete("held", &DeleteParams::default()).await.unwrap();
    let held = api.get("held").await.unwrap();
    assert!(held.metadata.deletion_timestamp.is_some());
    let remove = json!([{"op": "test", "path": "/metadata/finalizers/0", "value": "partner-operator.io/cleanup"}, {"op": "remove", "path": "/metadata/finalizers/0"}]);
    api.patch(
        "held",
        &PatchParams::default(),
        &Patch::<()>::Json(serde_json::from_value(remove).unwrap()),
    )
    .await
    .unwrap();
    assert!(api.get_opt("held").await.unwrap().is_none());
}

#[tokio::test]
async fn deleting_a_namespace_deletes_its_objects() {
    let server = server().await;
    let namespaces: Api<Namespace> = Api::all(server.client());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "doomed"}})).unwrap();
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "doomed");
    api.create(&PostParams::default(), &config_map("a", &[]))
        .await
        .unwrap();
    let terminating = namespaces
        .delete("doomed", &DeleteParams::default())
        .await
        .unwrap()
        .unwrap_left();
    // Terminating first, then emptied and removed in the background, as the namespace
    // controller does it.
    assert_eq!(
        terminating.status.and_then(|s| s.phase).as_deref(),
        Some("Terminating")
    );
    eventually("the namespace removed", Patience::API_SERVER, || async {
        namespaces.get_opt("doomed").await.unwrap().is_none()
    })
    .await;
    assert!(
        api.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

#[tokio::test]
async fn watchers_survive_dropped_watches_and_compaction() {
    let server = server().await;
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "partners");
    let (reader, writer) = reflector::store();
    let stream = reflector(
        writer,
        watcher(
            api.clone(),
            watcher::Config::default().labels("app=watched"),
        ),
    )
    .applied_objects()
    .boxed();
    let handle = tokio::spawn(stream.for_each(|_| async {}));
    api.create(
        &PostParams::default(),
        &config_map("w1", &[("app", "watched")]),
    )
    .await
    .unwrap();
    api.create(
        &PostParams::default(),
        &config_map("ignored", &[("app", "other")]),
    )
    .await
    .unwrap();
    eventually("the reflector holds w1", Patience::API_SERVER, || async {
        reader.state().len() == 1
    })
    .await;
    server.drop_watches();
    api.create(
        &PostParams::default(),
        &config_map("w2", &[("app", "watched")]),
    )
    .await
    .unwrap();
    eventually(
        "the reflector holds w1 and w2",
        Patience::API_SERVER,
        || async { reader.state().len() == 2 },
    )
    .await;
    server.compact();
    server.drop_watches();
    api.create(
        &PostParams::default(),
        &config_map("w3", &[("app", "watched")]),
    )
    .await
    .unwrap();
    api.delete("w1", &DeleteParams::default()).await.unwrap();
    eventually(
        "the reflector holds w2 and w3",
        Patience::API_SERVER,
        || async {
            let mut names: Vec<_> = reader
                .state()
                .iter()
                .map(|c| c.metadata.name.clone().unwrap())
                .collect();
            names.sort();
            if names == ["w2", "w3"] {
                Ok(())
            } else {
                Err(names)
            }
        },
    )
    .await;
    handle.abort();
}

#[tokio::test]
async fn server_side_apply_and_patches() {
    let server = server().await;
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "partners");
    let params = PatchParams::apply("tester");
    let first = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied"}, "data": {"a": "1", "b": "2"}});
    let created = api
        .patch("applied", &params, &Patch::Apply(&first))
        .await
        .unwrap();
    assert_eq!(created.data.unwrap().len(), 2);
    let second = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied"}, "data": {"a": "3"}});
    let applied = api
        .patch("applied", &params, &Patch::Apply(&second))
        .await
        .unwrap();
    assert_eq!(
        applied.data.clone().unwrap(),
        [("a".to_string(), "3".to_string())].into()
    );
    let managers: Vec<_> = applied
        .metadata
        .managed_fields
        .unwrap()
        .iter()
        .map(|m| m.manager.clone().unwrap())
        .collect();
    assert_eq!(managers, vec!["tester"]);
    let merged = api
        .patch(
            "applied",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"c": "4"}})),
        )
        .await
        .unwrap();
    assert_eq!(merged.data.unwrap().len(), 2);
    let strategic = api
        .patch(
            "applied",
            &PatchParams::default(),
            &Patch::Strategic(json!({"data": {"a": null}})),
        )
        .await
        .unwrap();
    assert_eq!(
        strategic.data.unwrap(),
        [("c".to_string(), "4".to_string())].into()
    );
}

#[tokio::test]
async fn selectors_and_pagination() {
    let server = server().await;
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "partners");
    for i in 0..25 {
        let tier = if i % 5 == 0 { "gold" } else { "silver" };
        api.create(
            &PostParams::default(),
            &config_map(&format!("cm-{i:02}"), &[("tier", tier)]),
        )
        .await
        .unwrap();
    }
    let gold = api
        .list(&ListParams::default().labels("tier=gold"))
        .await
        .unwrap();
    assert_eq!(gold.items.len(), 5);
    let not_gold = api
        .list(&ListParams::default().labels("tier notin (gold)"))
        .await
        .unwrap();
    assert_eq!(not_gold.items.len(), 20);
    let named = api
        .list(&ListParams::default().fields("metadata.name=cm-07"))
        .await
        .unwrap();
    assert_eq!(named.items.len(), 1);
    let mut seen = Vec::new();
    let mut params = ListParams::default().limit(10);
    loop {
        let page = api.list(&params).await.unwrap();
        seen.extend(page.items.iter().map(|c| c.metadata.name.clone().unwrap()));
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => break,
        }
    }
    assert_eq!(seen.len(), 25);
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, seen);
}

#[tokio::test]
async fn concurrent_writers_lose_no_update() {
    let server = server().await;
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "partners");
    let mut counter = config_map("counter", &[]);
    counter.data = Some([("n".to_string(), "0".to_string())].into());
    api.create(&PostParams::default(), &counter).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let api = api.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..10 {
                loop {
                    let mut current = api.get("counter").await.unwrap();
                    let n: u32 = current.data.as_ref().unwrap()["n"].parse().unwrap();
                    current.data = Some([("n".to_string(), (n + 1).to_string())].into());
                    match api
                        .replace("counter", &PostParams::default(), &current)
                        .await
                    {
                        Ok(_) => break,
                        Err(kube::Error::Api(s)) if s.code == 409 => continue,
                        Err(e) => panic!("{e:?}"),
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(api.get("counter").await.unwrap().data.unwrap()["n"], "80");
}

#[tokio::test]
async fn injected_faults_and_the_request_log() {
    let server = server().await;
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "partners");
    server.log().clear();
    server.inject_fault(FaultRule {
        verb: Some("create".into()),
        share: 1.0,
        status: 500,
        limit: None,
        ..Default::default()
    });
    let error = api
        .create(&PostParams::default(), &config_map("x", &[]))
        .await
        .unwrap_err();
    assert!(
        matches!(error, kube::Error::Api(ref s) if s.code == 500),
        "{error:?}"
    );
    server.clear_faults();
    api.create(&PostParams::default(), &config_map("x", &[]))
        .await
        .unwrap();
    // Two throttled reads: kube-rs honours Retry-After and retries on its own.
    server.inject_fault(FaultRule {
        verb: Some("get".into()),
        share: 1.0,
        status: 429,
        limit: Some(2),
        ..Default::default()
    });
    assert_eq!(
        api.get("x").await.unwrap().metadata.name.as_deref(),
        Some("x")
    );
    // A conflict is the caller's to handle.
    server.inject_fault(FaultRule::once("update", 409));
    let current = api.get("x").await.unwrap();
    let error = api
        .replace("x", &PostParams::default(), &current)
        .await
        .unwrap_err();
    assert!(
        matches!(error, kube::Error::Api(ref s) if s.code == 409),
        "{error:?}"
    );
    api.replace("x", &PostParams::default(), &current)
        .await
        .unwrap();
    let log = server.log().entries();
    let verbs: Vec<_> = log.iter().map(|r| r.verb.as_str()).collect();
    assert_eq!(
        verbs,
        vec![
            "create", "create", "get", "get", "get", "get", "update", "update"
        ]
    );
    assert_eq!(log[1].resource, "configmaps");
    assert_eq!(log[1].namespace.as_deref(), Some("partners"));
    assert!(log[1].is_write() && !log[2].is_write());

    // A lost response: the write lands, the client is told it failed; only the named resource.
    server.clear_faults();
    server.inject_fault(
        FaultRule::once("patch", 500)
            .on("configmaps")
            .losing_response(),
    );
    let patch = Patch::Merge(json!({"data": {"lost": "yes"}}));
    let error = api
        .patch("x", &PatchParams::default(), &patch)
        .await
        .unwrap_err();
    assert!(
        matches!(error, kube::Error::Api(ref s) if s.code == 500),
        "{error:?}"
    );
    assert_eq!(api.get("x").await.unwrap().data.unwrap()["lost"], "yes");
    api.patch("x", &PatchParams::default(), &patch)
        .await
        .expect("the rule is spent");
}

/// kube-apiserver authorizes a server-side apply that creates its object for `create` as well
/// as `patch`; the request log says so, since the RBAC check of the chart is built on it.
#[tokio::test]
async fn an_apply_that_creates_is_logged_as_create_too() {
    let server = server().await;
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "partners");
    server.log().clear();
    let params = PatchParams::apply("test").force();
    let object = config_map("applied", &[("k", "v")]);
    api.patch("applied", &params, &Patch::Apply(&object))
        .await
        .unwrap();
    api.patch("applied", &params, &Patch::Apply(&object))
        .await
        .unwrap();
    let log = server.log().entries();
    let verbs: Vec<_> = log
        .iter()
        .map(|r| (r.verb.clone(), r.name.clone(), r.implied))
        .collect();
    let named = |verb: &str, implied| (verb.to_string(), Some("applied".to_string()), implied);
    assert_eq!(
        verbs,
        vec![
            named("patch", false),
            named("create", true),
            named("patch", false)
        ]
    );
    // Two requests, both writes: the implied create is not a third.
    assert_eq!(log.iter().filter(|r| r.is_write()).count(), 2);
}
