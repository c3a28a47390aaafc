//! What a hostile author cannot make the webhook sender do: sign records they wrote into a
//! Partner's status, connect into the cluster's own network or this machine, or sign with
//! another Distributor's key.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use kube::api::{Api, Patch, PatchParams};
use partner_operator::api::Partner;

use super::*;

crate::on_both_servers!(
    records_forged_in_an_unbound_namespace_are_never_signed,
    internal_addresses_are_refused_before_connecting_in_the_same_words,
    another_distributors_key_signs_nothing_and_is_refused_as_a_missing_one,
);

/// The operator of these tests: keys from [`KEYS_NAMESPACE`], and no private network allowed
/// (loopback included).
fn start_operator_public_only(h: &mut Harness) {
    let mut options = h.run_options();
    options.webhook_secrets_namespace = Some(KEYS_NAMESPACE.into());
    options.webhook_allow_private_networks = vec![];
    h.start_operator_with(options);
}

async fn records_forged_in_an_unbound_namespace_are_never_signed(server: Server) {
    let (h, receiver) = started_with_receiver(server).await;
    // The real event waits behind failures while the records are forged.
    receiver.answer(500, 0.0).await;
    northwind_with_webhooks(&h, &receiver, json!({})).await;
    h.apply(partner(NAMESPACE, "contoso", "northwind")).await;
    h.wait_distributor("northwind", "the real event failing", delivering_failed)
        .await;
    let uid = h
        .partners(NAMESPACE)
        .get("contoso")
        .await
        .unwrap()
        .metadata
        .uid
        .unwrap();
    let real_id = format!("{uid}.provisioned.0");

    // Someone with `partners` and `partners/status` in a namespace no Distributor accepts.
    h.namespace("elsewhere", &[]).await;
    let forger = support::webhook_receiver::client_with_role(
        &h,
        "elsewhere",
        json!([
            {"apiGroups": ["partner-operator.io"], "resources": ["partners"],
             "verbs": ["get", "list", "watch", "create", "update", "patch"]},
            {"apiGroups": ["partner-operator.io"], "resources": ["partners/status"],
             "verbs": ["get", "update", "patch"]},
        ]),
    )
    .await;
    let forged_partners: Api<Partner> = Api::namespaced(forger, "elsewhere");
    let mallory: Partner =
        serde_json::from_value(partner("elsewhere", "mallory", "northwind")).unwrap();
    let mallory = forged_partners
        .create(&Default::default(), &mallory)
        .await
        .expect("the forger may create Partners there");
    h.wait_partner("elsewhere", "mallory", "unbound", |p| {
        condition(p, types::DISTRIBUTOR_BOUND).is_some_and(|(s, _)| s == "False")
    })
    .await;
    let record = |id: &str| {
        json!({"id": id, "type": "io.partner-operator.partner.provisioned",
               "time": "2027-03-01T09:00:00Z", "data": {"seats": {"ESSENTIALS": 1000}},
               "pending": [{"endpoint": "billing", "attempts": 3, "lastError": "injected words"}]})
    };
    let own_id = format!("{}.provisioned.0", mallory.metadata.uid.unwrap());
    forged_partners
        .patch_status(
            "mallory",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {
                "tenant": {"id": "forged", "namespace": "forged", "provisionedAt": "2027-03-01T09:00:00Z"},
                "webhooks": [record(&real_id), record(&own_id)],
            }})),
        )
        .await
        .expect("the forger may write the status");

    receiver.answer(204, 0.0).await;
    wait_events_within(&receiver, "contoso", &["provisioned"], Patience::TRIAL).await;
    // Every Partner looked at again after it: what was going to be sent was.
    h.settled().await;
    h.settled().await;
    let deliveries = receiver.deliveries();
    let strays: Vec<_> = deliveries
        .iter()
        .filter(|d| d.subject() != subject("contoso") || d.id.as_deref() != Some(&real_id))
        .collect();
    assert!(strays.is_empty(), "forged deliveries: {strays:#?}");
    assert!(deliveries.iter().all(|d| d.verified));
    // The forged records were there all along, seen and left unsent, and what they say of
    // their deliveries is not the Distributor's.
    let kept = h.partners("elsewhere").get("mallory").await.unwrap();
    assert_eq!(kept.status.unwrap().webhooks.len(), 2);
    let fine = h
        .wait_distributor("northwind", "WebhooksDelivered=True", delivering_fine)
        .await;
    assert!(!webhooks_delivered(&fine).unwrap().2.contains("injected"));
}

/// A loopback listener that counts the connections it accepts.
async fn counting_listener() -> (u16, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = Arc::new(AtomicUsize::new(0));
    let counted = count.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    (port, count)
}

async fn internal_addresses_are_refused_before_connecting_in_the_same_words(server: Server) {
    support::secrets::capture_for_secrets();
    let mut h = Harness::start_servers(server).await;
    let (port, connections) = counting_listener().await;
    let key = new_key();
    let urls: Vec<String> = [
        "https://169.254.169.254:{P}/latest/meta-data/",
        "https://[::ffff:a9fe:a9fe]:{P}/",
        "https://100.100.100.200:{P}/",
        "https://10.96.0.1:{P}/",
        "https://kubernetes.default.svc:{P}/",
        "https://2130706433:{P}/",
        "https://0x7f000001:{P}/",
        "https://[fe80::1%25eth0]:{P}/",
        "http://localhost:{P}/quitquitquit",
        "https://[::ffff:127.0.0.1]:{P}/",
        "https://localhost:{P}/",
        "https://127.0.0.1:{P}/",
        "https://[::1]:{P}/",
        "http://127.0.0.1:{P}/",
        "https://[64:ff9b::7f00:1]:{P}/",
        "https://[::127.0.0.1]:{P}/",
    ]
    .iter()
    .map(|u| u.replace("{P}", &port.to_string()))
    .collect();
    // Ten endpoints a Distributor at most: two Distributors, each with its key.
    let distributors = ["northwind", "litware"];
    for (name, urls) in distributors.iter().zip(urls.chunks(8)) {
        let secret = format!("{name}-webhook-key");
        store_key(&h.client, KEYS_NAMESPACE, &secret, &key, true, name).await;
        let namespace = format!("{name}-partners");
        h.namespace(&namespace, &[("partner-operator.io/distributor", name)])
            .await;
        let endpoints: Vec<Value> = urls
            .iter()
            .enumerate()
            .map(|(i, url)| endpoint(&format!("e{i}"), url, &secret))
            .collect();
        let mut d = distributor(name, true);
        d["spec"]["webhooks"] = json!({"endpoints": endpoints});
        h.apply(d).await;
    }
    start_operator_public_only(&mut h);
    for name in distributors {
        h.apply(partner(&format!("{name}-partners"), "contoso", name))
            .await;
    }
    // Every endpoint of both has failed at least once.
    let mut errors = Vec::new();
    for name in distributors {
        let p = h
            .wait_partner(
                &format!("{name}-partners"),
                "contoso",
                "every endpoint tried",
                |p| {
                    p.status.as_ref().is_some_and(|s| {
                        s.webhooks.len() == 1
                            && s.webhooks[0].pending.len() == 8
                            && s.webhooks[0].pending.iter().all(|d| d.attempts > 0)
                    })
                },
            )
            .await;
        errors.extend(
            p.status.unwrap().webhooks[0]
                .pending
                .iter()
                .map(|d| d.last_error.clone()),
        );
        h.wait_distributor(name, "WebhooksDelivered=False", delivering_failed)
            .await;
    }
    assert_eq!(errors.len(), urls.len());
    assert!(
        errors.iter().all(|e| e.as_deref() == Some("unreachable")),
        "one wording for every refused address: {errors:?}"
    );
    let (_, _, message) =
        webhooks_delivered(&h.distributors().get("northwind").await.unwrap()).unwrap();
    assert!(!message.contains("127.0.0.1") && !message.contains(&port.to_string()));
    // The Warnings say the same of each.
    let warnings = eventually("a Warning per endpoint", Patience::RECONCILE, || async {
        let found = events(&h, "northwind-partners", "WebhookDeliveryFailed").await;
        if found.len() >= 8 {
            Ok(found)
        } else {
            Err(found.len())
        }
    })
    .await;
    let words: std::collections::BTreeSet<_> = warnings
        .iter()
        .filter_map(|e| e.note.as_deref())
        .map(|note| note.rsplit(" failed: ").next().unwrap().to_string())
        .collect();
    assert_eq!(words.len(), 1, "{words:?}");
    // Not one connection was made; the listener does count one when there is one.
    assert_eq!(connections.load(Ordering::SeqCst), 0);
    std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    eventually("the listener counts", Patience::RECONCILE, || async {
        connections.load(Ordering::SeqCst) == 1
    })
    .await;
}

async fn another_distributors_key_signs_nothing_and_is_refused_as_a_missing_one(server: Server) {
    support::secrets::capture_for_secrets();
    let mut h = Harness::start_servers(server).await;
    let key = new_key();
    let receiver = Receiver::start(&key);
    // northwind's key, bound to it; an unlabelled one of litware's.
    store_key(
        &h.client,
        KEYS_NAMESPACE,
        KEY_SECRET,
        &key,
        true,
        "northwind",
    )
    .await;
    store_key(
        &h.client,
        KEYS_NAMESPACE,
        "unlabelled",
        &key,
        false,
        "litware",
    )
    .await;
    start_operator(&mut h);
    northwind_with_webhooks(&h, &receiver, json!({})).await;
    h.namespace(
        "litware-partners",
        &[("partner-operator.io/distributor", "litware")],
    )
    .await;
    let mut litware = distributor("litware", true);
    litware["spec"]["webhooks"] = json!({"endpoints": [
        endpoint("stolen", &receiver.url(), KEY_SECRET),
        endpoint("missing", &receiver.url(), "no-such-key"),
        endpoint("unlabelled", &receiver.url(), "unlabelled"),
    ]});
    h.apply(litware).await;
    h.apply(partner("litware-partners", "fabrikam", "litware"))
        .await;
    h.apply(partner(NAMESPACE, "contoso", "northwind")).await;
    // northwind's own deliveries verify: the key is good.
    wait_events(&receiver, "contoso", &["provisioned"]).await;
    let p = h
        .wait_partner(
            "litware-partners",
            "fabrikam",
            "every endpoint refused",
            |p| {
                p.status.as_ref().is_some_and(|s| {
                    s.webhooks
                        .first()
                        .is_some_and(|r| r.pending.iter().all(|d| d.last_error.is_some()))
                })
            },
        )
        .await;
    // Nothing was signed for litware, with northwind's key or any.
    h.settled().await;
    let deliveries = receiver.deliveries();
    assert!(
        deliveries.iter().all(|d| d.subject() == subject("contoso")),
        "{deliveries:#?}"
    );
    let error = |endpoint: &str, secret: &str| {
        let status = p.status.as_ref().unwrap();
        let delivery = status.webhooks[0]
            .pending
            .iter()
            .find(|d| d.endpoint == endpoint)
            .unwrap();
        delivery
            .last_error
            .clone()
            .unwrap()
            .replace(&format!("/{secret} "), "/<secret> ")
    };
    let missing = error("missing", "no-such-key");
    assert_eq!(error("stolen", KEY_SECRET), missing);
    assert_eq!(error("unlabelled", "unlabelled"), missing);
    assert!(
        missing.contains("is not a signing key of Distributor litware"),
        "{missing}"
    );
    h.wait_distributor("litware", "WebhooksDelivered=False", delivering_failed)
        .await;
    support::secrets::assert_not_logged(key.trim_start_matches("whsec_"));
}
