//! Backup, restore and move: a fleet at every stage of its lifecycle is backed up as Velero
//! does (the objects as `kubectl get -o yaml` prints them, without uid, resourceVersion,
//! managedFields and the server's other fields; Partners with and without their status) and
//! restored into fresh API servers, in three orders, with the operator already running there.
//! Nothing is sent again, no second tenant is made, every date and billing period is kept, a
//! pending activation link still works, and the Partners restored without status say they
//! resumed from their tenant's record.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use crate::support;

use chrono::Duration;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::{Api, ListParams, Patch, PatchParams};
use partner_operator::api::{Distributor, PartnerStatus, RequestedLevel};
use partner_operator::tenant::{OWNER_UID_LABEL, TENANT_OWNER_UID_LABEL, TenantRecord};
use partner_sandbox::backed_up;
use serde_json::{Value, json};
use support::webhook_receiver::{KEYS_NAMESPACE, Receiver};
use support::webhooks::{endpoint, new_key, store_key};
use support::*;

crate::on_both_servers!(a_fleet_restored_in_any_order_resumes_without_sending_again,);

const NAMESPACE: &str = "northwind-partners";
const KEY_SECRET: &str = "northwind-webhook-key";

/// The order objects come back in.
#[derive(Clone, Copy, Debug)]
enum Order {
    /// Velero's: namespaces and what is in them, then cluster-scoped, then custom resources.
    TenantsFirst,
    /// Partners before everything else of theirs.
    PartnersFirst,
    /// The Distributor last, after its Partners and their tenants.
    DistributorLast,
}

/// The operator with an activation service on a free port and signing keys from
/// [`KEYS_NAMESPACE`]; returns the service's address.
fn start_operator(h: &mut Harness) -> SocketAddr {
    let addr = support::metrics::free_port();
    let mut options = h.run_options();
    options.webhook_secrets_namespace = Some(KEYS_NAMESPACE.into());
    options.activation_base_url = Some(format!("http://{addr}/activate"));
    options.activation_service = Some(partner_operator::activation::ServiceOptions::new(addr));
    h.start_operator_with(options);
    addr
}

async fn a_fleet_restored_in_any_order_resumes_without_sending_again(server: Server) {
    let (source, receiver) = fleet_at_every_stage(server).await;
    let backup = Backup::take(&source).await;
    let before = facts(&source).await;
    let pending_link = source
        .smtp
        .received()
        .into_iter()
        .find(|m| activation_of(m, "tailspin"))
        .map(|m| activation::link(&m))
        .expect("tailspin's activation email (its Partner waited for it to be sent)");
    assert!(
        !receiver.deliveries().is_empty(),
        "the fleet told the webhooks nothing"
    );

    for (i, order) in [
        Order::TenantsFirst,
        Order::PartnersFirst,
        Order::DistributorLast,
    ]
    .into_iter()
    .enumerate()
    {
        // What the receiver had before this restore (the first one's activation below tells it
        // one event more).
        let delivered = receiver.deliveries().len();
        let mut target = Harness::start_servers_restoring(server, &source).await;
        let service = start_operator(&mut target);
        // Every other Partner comes back without its status (Velero's default), shifted per
        // order so each Partner is restored both ways.
        backup.restore(&target, order, |n| (n + i) % 2 == 0).await;
        let after = eventually(
            format!("{order:?}: every Partner's facts as before"),
            Patience::RECONCILE,
            || async {
                let after = facts(&target).await;
                if after == before {
                    Ok(after)
                } else {
                    Err(Seen(differences(&before, &after)))
                }
            },
        )
        .await;
        target.settled().await;
        assert_eq!(facts(&target).await, after, "{order:?}");
        assert!(
            target.smtp.received().is_empty(),
            "{order:?}: emails sent again: {:?}",
            target
                .smtp
                .received()
                .iter()
                .map(|m| (&m.to, &m.subject))
                .collect::<Vec<_>>()
        );
        assert_eq!(
            receiver.deliveries().len(),
            delivered,
            "{order:?}: webhook events sent again"
        );
        assert_eq!(
            tenants(&target).await,
            tenants(&source).await,
            "{order:?}: the tenants"
        );
        let without_status: BTreeSet<String> = backup
            .partner_names()
            .into_iter()
            .enumerate()
            .filter(|(n, _)| (n + i) % 2 == 0)
            .map(|(_, name)| name)
            .collect();
        eventually(
            format!("{order:?}: the Partners restored without status say they resumed"),
            Patience::RECONCILE,
            || async {
                let reason = EventReason::ResumedFromTenantRecord.as_str();
                let resumed: BTreeSet<String> = events(&target, NAMESPACE, reason)
                    .await
                    .into_iter()
                    .filter_map(|e| e.regarding.and_then(|r| r.name))
                    .collect();
                if resumed.is_superset(&without_status) {
                    Ok(())
                } else {
                    Err(resumed)
                }
            },
        )
        .await;
        if i == 0 {
            // The link emailed before the backup activates the restored tenant.
            let (_, tenant, token) = &pending_link;
            let answer = support::http::post_json(
                service,
                "/v1/activations",
                &json!({"tenant": tenant, "token": token}),
            )
            .await;
            assert_eq!(answer.status, 200, "{}", answer.body);
            target
                .wait_partner(NAMESPACE, "tailspin", "activated", |p| {
                    p.status
                        .as_ref()
                        .and_then(|s| s.activation.as_ref())
                        .is_some_and(|a| a.activated_at.is_some())
                })
                .await;
        }
    }
}

/// A Distributor with a webhook endpoint and Partners at every stage, on `server`, fifteen
/// days after the start: `contoso` converted automatically, `fabrikam` converted by hand and
/// activated, `litware` expired at its trial's end, `adatum` renewed after its expiration
/// date, `wingtip` in Trial with its notice sent, `tailspin` in Trial with its link pending.
async fn fleet_at_every_stage(server: Server) -> (Harness, Receiver) {
    support::secrets::capture_for_secrets();
    let mut h = Harness::start_servers(server).await;
    let key = new_key();
    let receiver = Receiver::start(&key);
    store_key(
        &h.client,
        KEYS_NAMESPACE,
        KEY_SECRET,
        &key,
        true,
        "northwind",
    )
    .await;
    let service = start_operator(&mut h);
    h.namespace(
        NAMESPACE,
        &[("partner-operator.io/distributor", "northwind")],
    )
    .await;
    let mut northwind = distributor("northwind", true);
    northwind["spec"]["webhooks"] =
        json!({"endpoints": [endpoint("billing", &receiver.url(), KEY_SECRET)]});
    h.apply(northwind).await;

    for name in ["contoso", "fabrikam", "litware", "adatum"] {
        let mut manifest = partner(NAMESPACE, name, "northwind");
        match name {
            "litware" => manifest["spec"]["subscription"] = json!({"autoUpgrade": false}),
            "adatum" => {
                let ends = (h.clock.now() + Duration::days(5)).to_rfc3339();
                manifest["spec"]["subscription"] =
                    json!({"level": "Production", "expirationDate": ends});
            }
            _ => {}
        }
        h.apply(manifest).await;
    }
    for name in ["contoso", "fabrikam", "litware", "adatum"] {
        h.wait_partner(NAMESPACE, name, "Ready", is_ready).await;
    }
    convert(&h, "fabrikam").await;
    let email = eventually(
        "fabrikam's activation email",
        Patience::RECONCILE,
        || async {
            let received = h.smtp.received();
            let found = received
                .iter()
                .find(|m| activation_of(m, "fabrikam"))
                .cloned();
            found.ok_or_else(|| {
                received
                    .iter()
                    .map(|m| (m.to.clone(), m.event.clone()))
                    .collect::<Vec<_>>()
            })
        },
    )
    .await;
    let (_, tenant, token) = activation::link(&email);
    let answer = support::http::post_json(
        service,
        "/v1/activations",
        &json!({"tenant": tenant, "token": token}),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);

    h.clock.advance(Duration::days(3));
    h.apply(partner(NAMESPACE, "wingtip", "northwind")).await;
    h.wait_partner(NAMESPACE, "wingtip", "Ready", is_ready)
        .await;
    h.clock.advance(Duration::days(3));
    h.wait_partner(NAMESPACE, "adatum", "Expired", |p| {
        level(p) == SubscriptionLevel::Expired
    })
    .await;
    let renewed = (h.clock.now() + Duration::days(60)).to_rfc3339();
    h.partners(NAMESPACE)
        .patch(
            "adatum",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"subscription": {"expirationDate": renewed}}})),
        )
        .await
        .unwrap();
    h.clock.advance(Duration::days(9));
    h.apply(partner(NAMESPACE, "tailspin", "northwind")).await;
    for (name, wanted) in [
        ("contoso", SubscriptionLevel::Production),
        ("adatum", SubscriptionLevel::Production),
        ("litware", SubscriptionLevel::Expired),
        ("tailspin", SubscriptionLevel::Trial),
    ] {
        h.wait_partner(NAMESPACE, name, &format!("{wanted:?}"), |p| {
            level(p) == wanted
                && p.status
                    .as_ref()
                    .is_some_and(|s| s.emails.iter().all(|e| e.sent_at.is_some()))
        })
        .await;
    }
    h.wait_partner(NAMESPACE, "wingtip", "notice sent", |p| {
        p.status
            .as_ref()
            .is_some_and(|s| s.upgrade_notice_sent_at.is_some())
    })
    .await;
    // Every webhook event delivered: nothing left to go out after the backup.
    eventually(
        "every webhook event delivered",
        Patience::RECONCILE,
        || async {
            let partners = h
                .partners(NAMESPACE)
                .list(&ListParams::default())
                .await
                .unwrap();
            partners
                .items
                .iter()
                .all(|p| p.status.as_ref().is_some_and(|s| s.webhooks.is_empty()))
        },
    )
    .await;
    h.settled().await;
    (h, receiver)
}

/// Whether `message` is the activation email of Partner `name`.
fn activation_of(message: &partner_sandbox::smtp::ReceivedEmail, name: &str) -> bool {
    message.event.as_deref() == Some("activation")
        && message
            .to
            .iter()
            .any(|to| to == &format!("admin@{name}.example"))
}

/// `name` converted to Production by hand.
async fn convert(h: &Harness, name: &str) {
    h.partners(NAMESPACE)
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"subscription": {"level": RequestedLevel::Production}}})),
        )
        .await
        .unwrap();
    h.wait_partner(NAMESPACE, name, "Production", |p| {
        level(p) == SubscriptionLevel::Production
    })
    .await;
}

/// What must survive, per Partner: every fact of its lifecycle (its tenant, trial, level,
/// activation, notice, Production, billing periods, emails decided), as the tenant's record
/// keeps them (not when an email went out).
async fn facts(h: &Harness) -> BTreeMap<String, Option<PartnerStatus>> {
    h.partners(NAMESPACE)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|p| {
            let facts = p
                .status
                .as_ref()
                .and_then(TenantRecord::of)
                .map(|record| record.0);
            (p.metadata.name.unwrap_or_default(), facts)
        })
        .collect()
}

/// Per Partner whose facts differ: what it had before, and now.
fn differences(
    before: &BTreeMap<String, Option<PartnerStatus>>,
    after: &BTreeMap<String, Option<PartnerStatus>>,
) -> String {
    let names: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    names
        .into_iter()
        .filter(|name| before.get(*name) != after.get(*name))
        .map(|name| {
            format!(
                "{name}:\n  before {}\n  now    {}",
                serde_json::to_string(&before.get(name)).unwrap(),
                serde_json::to_string(&after.get(name)).unwrap()
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The tenant namespaces (by their ownership label) and the Partner each was made for.
async fn tenants(h: &Harness) -> BTreeMap<String, String> {
    Api::<Namespace>::all(h.client.clone())
        .list(&ListParams::default().labels(OWNER_UID_LABEL))
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|ns| {
            let owner = ns.metadata.labels.unwrap_or_default()[OWNER_UID_LABEL].clone();
            (ns.metadata.name.unwrap_or_default(), owner)
        })
        .collect()
}

/// The objects a backup holds, as `kubectl get -o yaml` prints them with what Velero strips
/// taken out.
struct Backup {
    /// The partner namespace, the signing keys' namespace, the tenant namespaces.
    namespaces: Vec<Value>,
    /// The Secrets and ConfigMaps in them (not those the API server makes).
    contents: Vec<Value>,
    distributors: Vec<Value>,
    /// With their status.
    partners: Vec<Value>,
}

impl Backup {
    async fn take(h: &Harness) -> Self {
        let tenants: Vec<String> = tenants(h).await.into_keys().collect();
        let mut names: Vec<String> = vec![NAMESPACE.into(), KEYS_NAMESPACE.into()];
        names.extend(tenants);
        let mut namespaces = Vec::new();
        let mut contents = Vec::new();
        for name in &names {
            let ns = Api::<Namespace>::all(h.client.clone())
                .get(name)
                .await
                .unwrap();
            namespaces.push(backed_up(ns, "v1", "Namespace"));
            let secrets = Api::<Secret>::namespaced(h.client.clone(), name)
                .list(&ListParams::default())
                .await
                .unwrap();
            for secret in secrets.items {
                contents.push(backed_up(secret, "v1", "Secret"));
            }
            let configmaps = Api::<ConfigMap>::namespaced(h.client.clone(), name)
                .list(&ListParams::default())
                .await
                .unwrap();
            for cm in configmaps
                .items
                .into_iter()
                .filter(|cm| cm.metadata.name.as_deref() != Some("kube-root-ca.crt"))
            {
                contents.push(backed_up(cm, "v1", "ConfigMap"));
            }
        }
        let api_version = "partner-operator.io/v1alpha1";
        let distributors = Api::<Distributor>::all(h.client.clone())
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|d| backed_up(d, api_version, "Distributor"))
            .collect();
        let partners: Vec<Value> = h
            .partners(NAMESPACE)
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|p| backed_up(p, api_version, "Partner"))
            .collect();
        for p in &partners {
            assert!(
                p["metadata"]["labels"][TENANT_OWNER_UID_LABEL].is_string(),
                "the operator labels every Partner with its tenant's uid: {p}"
            );
        }
        Self {
            namespaces,
            contents,
            distributors,
            partners,
        }
    }

    fn partner_names(&self) -> Vec<String> {
        self.partners
            .iter()
            .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    }

    /// Creates everything in `h` in `order`; Partner `n` (in backup order) with its status when
    /// `without_status(n)` is false. An object that exists already is left as it is (Velero's
    /// default).
    async fn restore(&self, h: &Harness, order: Order, without_status: impl Fn(usize) -> bool) {
        let tenants = || async {
            for object in self.namespaces.iter().chain(&self.contents) {
                create(h, object).await;
            }
        };
        let distributors = || async {
            for object in &self.distributors {
                create(h, object).await;
            }
        };
        let partners = || async {
            for (n, object) in self.partners.iter().enumerate() {
                self.restore_partner(h, object, without_status(n)).await;
            }
        };
        // A Partner's namespace must exist before it: it comes first in every order.
        create(h, &self.namespaces[0]).await;
        match order {
            Order::TenantsFirst => {
                tenants().await;
                distributors().await;
                partners().await;
            }
            Order::PartnersFirst => {
                partners().await;
                distributors().await;
                tenants().await;
            }
            Order::DistributorLast => {
                partners().await;
                tenants().await;
                distributors().await;
            }
        }
    }

    async fn restore_partner(&self, h: &Harness, object: &Value, without_status: bool) {
        let mut created = object.clone();
        let status = created.as_object_mut().unwrap().remove("status");
        create(h, &created).await;
        if let Some(status) = status.filter(|_| !without_status) {
            let name = object["metadata"]["name"].as_str().unwrap();
            h.partners(NAMESPACE)
                .patch_status(
                    name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"status": status})),
                )
                .await
                .unwrap();
        }
    }
}

/// Creates `object`; one that exists already is left alone.
async fn create(h: &Harness, object: &Value) {
    if let Err(err) = h.server.apply_json(object.clone()).await {
        assert!(err.contains("already exists"), "{err}: {object}");
    }
}
