//! The operator end to end: real controllers in-process, against the sandbox API server, a real
//! SMTP server on loopback, and a clock the test moves.

use crate::support;

use std::collections::BTreeMap;

use chrono::Duration;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use partner_operator::api::{EmailEvent, ProductionReason};
use partner_operator::lifecycle::message_id;
use partner_operator::tenant::token_hash;
use serde_json::json;
use sha2::Digest as _;
use support::*;

crate::on_both_servers!(
    happy_path_trial_notice_and_automatic_upgrade,
    without_auto_upgrade_the_trial_expires_unbilled,
    conversion_by_hand_then_production_expiry,
    distributor_skus_reach_every_partner,
    unbound_partners_stay_pending_until_their_distributor_exists,
    deletion_honours_the_deletion_policy,
);

async fn happy_path_trial_notice_and_automatic_upgrade(server: Server) {
    let h = Harness::start(server).await;
    h.northwind(true).await;
    h.apply(partner("northwind-partners", "contoso", "northwind"))
        .await;

    let p = h
        .wait_partner("northwind-partners", "contoso", "Ready", is_ready)
        .await;
    let status = p.status.clone().unwrap();
    assert_eq!(level(&p), SubscriptionLevel::Trial);
    assert_eq!(status.skus.len(), 2);
    let tenant = status.tenant.clone().unwrap();
    assert!(
        tenant.namespace.starts_with("northwind-partners-contoso-"),
        "{}",
        tenant.namespace
    );
    assert_eq!(
        tenant.namespace,
        partner_operator::tenant::tenant_namespace_of(&p)
    );
    let trial = status.trial.clone().unwrap();
    assert_eq!(trial.started_at, start_time());
    assert_eq!(trial.ends_at, start_time() + Duration::days(14));
    for type_ in [
        types::DISTRIBUTOR_BOUND,
        types::TENANT_PROVISIONED,
        types::ACTIVATION_SENT,
    ] {
        assert_eq!(condition(&p, type_).unwrap().0, "True", "{type_}");
    }
    // The finalizer and the status are the operator's, by name, in managedFields.
    let managers = p.metadata.managed_fields.clone().unwrap_or_default();
    let finalizer_owner: Vec<_> = managers
        .iter()
        .filter(|m| {
            m.fields_v1
                .as_ref()
                .is_some_and(|f| f.0["f:metadata"].get("f:finalizers").is_some())
        })
        .map(|m| m.manager.clone().unwrap_or_default())
        .collect();
    assert_eq!(finalizer_owner, ["partner-operator"], "{managers:?}");
    // The test's own create names no manager ("unknown"); every write of the operator does.
    let mut operators = managers.iter().filter(|m| {
        m.fields_v1
            .as_ref()
            .is_some_and(|f| f.0.get("f:spec").is_none())
    });
    assert!(
        operators.clone().count() >= 2
            && operators.all(|m| m.manager.as_deref() == Some("partner-operator")),
        "{managers:?}"
    );

    // The tenant: a labelled namespace, entitlements, and only a hash of the token.
    let ns = Api::<Namespace>::all(h.client.clone())
        .get(&tenant.namespace)
        .await
        .unwrap();
    let labels = ns.metadata.labels.unwrap_or_default();
    assert_eq!(labels["partner-operator.io/tenant-id"], tenant.id);
    assert_eq!(labels["partner-operator.io/partner"], "contoso");
    assert_eq!(labels["partner-operator.io/owner-uid"], uid(&p));
    let entitlements = Api::<ConfigMap>::namespaced(h.client.clone(), &tenant.namespace)
        .get("entitlements")
        .await
        .unwrap()
        .data
        .unwrap();
    assert_eq!(entitlements["level"], "Trial");
    assert_eq!(entitlements["skus"], "ESSENTIALS,GOVERNANCE");
    assert_eq!(entitlements["tenantId"], tenant.id);

    // The activation email: to the Partner, with its link and deterministic Message-ID.
    let emails = h.wait_emails(1).await;
    assert_eq!(emails.len(), 1);
    let activation = &emails[0];
    assert_eq!(activation.to, vec!["admin@contoso.example"]);
    assert_eq!(
        activation.message_id.as_deref(),
        Some(message_id(&uid(&p), EmailEvent::Activation).as_str())
    );
    assert_eq!(
        status.activation.as_ref().unwrap().message_id,
        activation.message_id
    );
    let link = activation_link(activation);
    let query: BTreeMap<_, _> = link.query_pairs().into_owned().collect();
    assert_eq!(query["tenant"], tenant.id);
    let token = &query["token"];
    assert_eq!(token.len(), 64, "256 bits, hex");
    let secret = Api::<Secret>::namespaced(h.client.clone(), &tenant.namespace)
        .get("activation")
        .await
        .unwrap();
    let stored = secret.data.unwrap();
    let stored_hash = String::from_utf8(stored["tokenSha256"].0.clone()).unwrap();
    assert_eq!(stored_hash, token_hash(token));
    assert!(
        !serde_json::to_string(&p).unwrap().contains(token.as_str()),
        "the token is not in the Partner"
    );
    assert_eq!(
        hex::encode(sha2::Sha256::digest(token.as_bytes())),
        stored_hash
    );

    // The notice, three days before the end, to both parties, each in a message of their own.
    h.advance_days(11);
    h.wait_emails(3).await;
    let mut to: Vec<_> = h
        .emails_of("upgrade-notice")
        .into_iter()
        .map(|m| m.to)
        .collect();
    to.sort();
    assert_eq!(to, [["admin@contoso.example"], ["ops@northwind.example"]]);
    let p = h
        .wait_partner("northwind-partners", "contoso", "notice recorded", |p| {
            p.status.as_ref().unwrap().upgrade_notice_sent_at.is_some()
        })
        .await;
    assert_eq!(level(&p), SubscriptionLevel::Trial);

    // The end of the trial: Production, billed from the deadline, not from when it was seen.
    h.advance_days(3);
    h.clock.advance(Duration::hours(5));
    let p = h
        .wait_partner("northwind-partners", "contoso", "Production", |p| {
            is_ready_at(p, SubscriptionLevel::Production)
        })
        .await;
    let status = p.status.unwrap();
    let production = status.production.unwrap();
    assert_eq!(production.reason, ProductionReason::AutoUpgrade);
    assert_eq!(production.since, trial.ends_at);
    let billing = status.billing.unwrap();
    assert_eq!(billing.started_at, trial.ends_at);
    assert_eq!(billing.billed_to, "northwind");
    let emails = h.wait_emails(5).await;
    assert_eq!(emails[3].event.as_deref(), Some("converted"));
    assert_eq!(emails[4].event.as_deref(), Some("converted"));

    let d = h.wait_billed("northwind", 1).await;
    let ds = d.status.unwrap();
    assert_eq!(ds.partners.unwrap().production, 1);
    assert_eq!(ds.billing.unwrap().seats["ESSENTIALS"], 1);
    let entitlements = Api::<ConfigMap>::namespaced(h.client.clone(), &tenant.namespace)
        .get("entitlements")
        .await
        .unwrap()
        .data
        .unwrap();
    assert_eq!(entitlements["level"], "Production");
    // Nothing else was mailed, once the operator has looked at the Partner again.
    h.settled().await;
    assert_eq!(h.smtp.received().len(), 5);

    // Deleted, the Partner is billed no more: every seat on offer reads 0 again.
    h.partners("northwind-partners")
        .delete("contoso", &Default::default())
        .await
        .expect("Partner deleted");
    let d = h.wait_billed("northwind", 0).await;
    let offered = d.spec.skus.len();
    let billing = d.status.unwrap().billing.unwrap();
    assert_eq!(billing.seats.len(), offered, "{billing:?}");
    assert!(
        billing.seats.values().all(|seats| *seats == 0),
        "{billing:?}"
    );
}

async fn patch_spec(h: &Harness, name: &str, spec: serde_json::Value) {
    h.partners("northwind-partners")
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": spec })),
        )
        .await
        .expect("spec patched");
}

fn events_of(h: &Harness, event: &str, to: &str) -> usize {
    h.emails_of(event)
        .iter()
        .filter(|m| m.to.iter().any(|t| t == to))
        .count()
}

async fn without_auto_upgrade_the_trial_expires_unbilled(server: Server) {
    let h = Harness::start(server).await;
    h.northwind(true).await;
    let mut spec = partner("northwind-partners", "fabrikam", "northwind");
    spec["spec"]["subscription"] = json!({"autoUpgrade": false});
    h.apply(spec).await;
    h.wait_partner("northwind-partners", "fabrikam", "Ready", is_ready)
        .await;
    h.advance_days(11);
    h.wait_emails(3).await;
    assert_eq!(events_of(&h, "expiry-notice", "ops@northwind.example"), 1);
    assert_eq!(events_of(&h, "expiry-notice", "admin@fabrikam.example"), 1);
    h.advance_days(3);
    let p = h
        .wait_partner("northwind-partners", "fabrikam", "Expired", |p| {
            level(p) == SubscriptionLevel::Expired
        })
        .await;
    let status = p.status.clone().unwrap();
    assert!(status.billing.is_none(), "no billing for an expired trial");
    assert_eq!(
        condition(&p, types::READY).unwrap(),
        ("False".into(), reasons::EXPIRED.into())
    );
    h.wait_emails(5).await;
    assert_eq!(h.emails_of("trial-expired").len(), 2, "to each party");
    assert!(h.emails_of("converted").is_empty());
    h.wait_distributor("northwind", "one expired", |d| {
        d.status
            .as_ref()
            .and_then(|s| s.partners.as_ref())
            .is_some_and(|c| c.expired == 1 && c.production == 0)
    })
    .await;

    // Converting the expired trial by hand.
    patch_spec(
        &h,
        "fabrikam",
        json!({"subscription": {"level": "Production"}}),
    )
    .await;
    let p = h
        .wait_partner("northwind-partners", "fabrikam", "Production", |p| {
            is_ready_at(p, SubscriptionLevel::Production)
        })
        .await;
    let status = p.status.unwrap();
    assert_eq!(status.production.unwrap().reason, ProductionReason::Manual);
    assert_eq!(status.billing.unwrap().started_at, h.clock.now());
    h.wait_emails(7).await;
    assert_eq!(h.emails_of("converted").len(), 2, "to each party");
}

async fn conversion_by_hand_then_production_expiry(server: Server) {
    let h = Harness::start(server).await;
    h.northwind(true).await;
    h.apply(partner("northwind-partners", "litware", "northwind"))
        .await;
    h.wait_partner("northwind-partners", "litware", "Ready", is_ready)
        .await;
    h.advance_days(2);

    // A date in the past is refused, in a condition and an Event, and nothing converts.
    let past = h.clock.now() - Duration::days(1);
    patch_spec(
        &h,
        "litware",
        json!({"subscription": {"level": "Production", "expirationDate": past.to_rfc3339()}}),
    )
    .await;
    let p = h
        .wait_partner("northwind-partners", "litware", "refusal", |p| {
            condition(p, types::READY).is_some_and(|(_, r)| r == reasons::EXPIRATION_DATE_IN_PAST)
        })
        .await;
    assert_eq!(level(&p), SubscriptionLevel::Trial);
    assert!(p.status.as_ref().unwrap().billing.is_none());
    let message = p
        .status
        .as_ref()
        .unwrap()
        .conditions
        .iter()
        .find(|c| c.type_ == types::READY)
        .unwrap()
        .message
        .clone();
    assert!(
        message.contains("spec.subscription.expirationDate"),
        "{message}"
    );

    // A future date converts now and ends Production then.
    let until = h.clock.now() + Duration::days(30);
    patch_spec(
        &h,
        "litware",
        json!({"subscription": {"expirationDate": until.to_rfc3339()}}),
    )
    .await;
    let p = h
        .wait_partner("northwind-partners", "litware", "Production", |p| {
            is_ready_at(p, SubscriptionLevel::Production)
        })
        .await;
    let status = p.status.unwrap();
    assert_eq!(status.expires_at, Some(until));
    assert_eq!(status.production.unwrap().reason, ProductionReason::Manual);
    let started = status.billing.unwrap().started_at;
    assert_eq!(started, h.clock.now());

    h.advance_days(31);
    let p = h
        .wait_partner("northwind-partners", "litware", "Expired", |p| {
            level(p) == SubscriptionLevel::Expired
        })
        .await;
    let billing = p.status.unwrap().billing.unwrap();
    assert_eq!(billing.started_at, started, "startedAt never changes");
    assert_eq!(billing.ended_at, Some(until));
    // The partner and the distributor, each in a message of their own.
    h.wait_emails(5).await;
    assert_eq!(h.emails_of("converted").len(), 2);
    assert_eq!(h.emails_of("production-expired").len(), 2);
    assert!(h.emails_of("upgrade-notice").is_empty());
}

async fn distributor_skus_reach_every_partner(server: Server) {
    let h = Harness::start(server).await;
    h.northwind(true).await;
    for name in ["a", "b"] {
        h.apply(partner("northwind-partners", name, "northwind"))
            .await;
    }
    for name in ["a", "b"] {
        h.wait_partner("northwind-partners", name, "Ready", is_ready)
            .await;
    }
    h.distributors()
        .patch(
            "northwind",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"skus": ["ESSENTIALS", "BACKUP"]}})),
        )
        .await
        .unwrap();
    for name in ["a", "b"] {
        let p = h
            .wait_partner("northwind-partners", name, "new SKUs", |p| {
                let skus: Vec<_> = p
                    .status
                    .as_ref()
                    .unwrap()
                    .skus
                    .iter()
                    .map(|s| s.0.clone())
                    .collect();
                skus == ["ESSENTIALS", "BACKUP"]
            })
            .await;
        let tenant = p.status.unwrap().tenant.unwrap().namespace;
        let entitlements = Api::<ConfigMap>::namespaced(h.client.clone(), &tenant);
        eventually(
            format!("the entitlements of {name} list the new SKUs"),
            Patience::RECONCILE,
            || async {
                let data = entitlements
                    .get("entitlements")
                    .await
                    .unwrap()
                    .data
                    .unwrap();
                if data["skus"] == "ESSENTIALS,BACKUP" {
                    Ok(())
                } else {
                    Err(data)
                }
            },
        )
        .await;
    }
}

async fn unbound_partners_stay_pending_until_their_distributor_exists(server: Server) {
    let h = Harness::start(server).await;
    h.northwind(true).await;
    // A namespace the Distributor does not select.
    h.namespace("elsewhere", &[]).await;
    h.apply(partner("elsewhere", "intruder", "northwind")).await;
    // A Distributor that does not exist yet.
    h.namespace(
        "tailspin-partners",
        &[("partner-operator.io/distributor", "tailspin")],
    )
    .await;
    h.apply(partner("tailspin-partners", "early", "tailspin"))
        .await;

    let p = h
        .wait_partner("elsewhere", "intruder", "NamespaceNotAllowed", |p| {
            condition(p, types::DISTRIBUTOR_BOUND)
                .is_some_and(|(_, r)| r == reasons::NAMESPACE_NOT_ALLOWED)
        })
        .await;
    assert_eq!(level(&p), SubscriptionLevel::Pending);
    let p = h
        .wait_partner("tailspin-partners", "early", "DistributorNotFound", |p| {
            condition(p, types::READY).is_some_and(|(_, r)| r == reasons::DISTRIBUTOR_NOT_FOUND)
        })
        .await;
    assert_eq!(level(&p), SubscriptionLevel::Pending);
    assert!(p.status.clone().unwrap().tenant.is_none());
    let namespaces = Api::<Namespace>::all(h.client.clone());
    let intruder = h.partners("elsewhere").get("intruder").await.unwrap();
    for unbound in [&intruder, &p] {
        let tenant = partner_operator::tenant::tenant_namespace_of(unbound);
        assert!(
            namespaces.get_opt(&tenant).await.unwrap().is_none(),
            "{tenant}"
        );
    }

    // The Distributor appears: the waiting Partner binds; the intruder stays out.
    h.apply(distributor("tailspin", true)).await;
    let p = h
        .wait_partner("tailspin-partners", "early", "Ready", is_ready)
        .await;
    assert_eq!(level(&p), SubscriptionLevel::Trial);
    h.wait_emails(1).await;
    assert_eq!(h.smtp.received()[0].to, vec!["admin@early.example"]);
    let p = h.partners("elsewhere").get("intruder").await.unwrap();
    assert_eq!(level(&p), SubscriptionLevel::Pending);
    h.wait_distributor("northwind", "one pending", |d| {
        d.status
            .as_ref()
            .and_then(|s| s.partners.as_ref())
            .is_some_and(|c| c.pending == 1)
    })
    .await;
    assert!(h.emails_of("activation").len() == 1);

    // Labelling the namespace lets the intruder bind after all.
    namespaces
        .patch(
            "elsewhere",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"labels": {"partner-operator.io/distributor": "northwind"}}}),
            ),
        )
        .await
        .unwrap();
    h.wait_partner("elsewhere", "intruder", "Ready", is_ready)
        .await;
}

async fn deletion_honours_the_deletion_policy(server: Server) {
    let h = Harness::start(server).await;
    h.northwind(true).await;
    h.apply(partner("northwind-partners", "gone", "northwind"))
        .await;
    let mut kept = partner("northwind-partners", "kept", "northwind");
    kept["spec"]["tenant"] = json!({"deletionPolicy": "Retain"});
    h.apply(kept).await;
    let mut tenants = BTreeMap::new();
    for name in ["gone", "kept"] {
        let p = h
            .wait_partner("northwind-partners", name, "Ready", is_ready)
            .await;
        tenants.insert(name, p.status.unwrap().tenant.unwrap().namespace);
    }
    let (gone_tenant, kept_tenant) = (tenants["gone"].as_str(), tenants["kept"].as_str());
    // The deleted tenant namespace of a live Partner is provisioned again.
    let namespaces = Api::<Namespace>::all(h.client.clone());
    namespaces
        .delete(kept_tenant, &DeleteParams::default())
        .await
        .unwrap();
    // A real server first marks the Namespace Terminating and empties it; the operator
    // provisions again once it is gone.
    eventually(
        "the tenant is provisioned again",
        Patience::RECONCILE,
        || async {
            let live = namespaces
                .get_opt(kept_tenant)
                .await
                .ok()
                .flatten()
                .is_some_and(|ns| ns.metadata.deletion_timestamp.is_none());
            let entitlements = Api::<ConfigMap>::namespaced(h.client.clone(), kept_tenant)
                .get_opt("entitlements")
                .await
                .ok()
                .flatten();
            live && entitlements.is_some()
        },
    )
    .await;

    let partners = h.partners("northwind-partners");
    for name in ["gone", "kept"] {
        partners
            .delete(name, &DeleteParams::default())
            .await
            .unwrap();
    }
    for name in ["gone", "kept"] {
        eventually(
            format!("Partner {name} removed"),
            Patience::RECONCILE,
            || async { partners.get_opt(name).await.unwrap().is_none() },
        )
        .await;
    }
    // Deleting a Namespace ends when its contents are gone: at once on the sandbox, after the
    // namespace controller's pass on a real server.
    eventually("the Delete tenant is gone", Patience::RECONCILE, || async {
        namespaces
            .get_opt(gone_tenant)
            .await
            .ok()
            .flatten()
            .is_none()
    })
    .await;
    // The retained tenant is kept, released, so that no Partner takes it again (not even one
    // created again from an export that carries its uid).
    let kept_ns = namespaces
        .get_opt(kept_tenant)
        .await
        .unwrap()
        .expect("kept");
    let annotations = kept_ns.metadata.annotations.unwrap_or_default();
    assert!(
        annotations.contains_key(partner_operator::tenant::RELEASED_ANNOTATION),
        "{annotations:?}"
    );
    h.wait_distributor("northwind", "no partners", |d| {
        d.status
            .as_ref()
            .and_then(|s| s.partners.as_ref())
            .is_some_and(|c| c.trial == 0)
    })
    .await;
    // Only the two activations were mailed.
    assert_eq!(h.smtp.received().len(), 2);
}
