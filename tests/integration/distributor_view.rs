//! What a distributor sees: its Distributor's figures (Partners by level, billed Partners, seats
//! per SKU) equal a recount of its Partners as the API server holds them, after every kind of
//! change: creations, an automatic and a by-hand conversion, a trial that expires, a Partner
//! created as Production whose subscription ends and is renewed, a deletion, an unbinding.

use crate::support;

use chrono::Duration;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};
use partner_operator::api::{DistributorStatus, distributor_totals};
use serde_json::json;
use support::*;

crate::on_both_servers!(the_distributor_figures_equal_a_recount_after_every_change);

const NS: &str = "northwind-partners";
const MORE: &str = "northwind-more";

async fn the_distributor_figures_equal_a_recount_after_every_change(server: Server) {
    let h = Harness::start(server).await;
    h.northwind(true).await;
    h.namespace(MORE, &[("partner-operator.io/distributor", "northwind")])
        .await;
    let mut manual = partner(NS, "fabrikam", "northwind");
    manual["spec"]["subscription"] = json!({"autoUpgrade": false});
    let mut production = partner(NS, "litware", "northwind");
    let ends = start_time() + Duration::days(30);
    production["spec"]["subscription"] =
        json!({"level": "Production", "expirationDate": ends.to_rfc3339()});
    for p in [
        partner(NS, "contoso", "northwind"),
        manual,
        production,
        partner(NS, "tailspin", "northwind"),
        partner(MORE, "adatum", "northwind"),
    ] {
        h.apply(p).await;
    }
    figures_equal_a_recount(&h, "five Partners created", |trial, expired, billed| {
        (trial, expired, billed) == (4, 0, 1)
    })
    .await;

    // The trials end: three convert on their own, one expires.
    h.clock.advance(Duration::days(15));
    figures_equal_a_recount(&h, "the trials ended", |trial, expired, billed| {
        (trial, expired, billed) == (0, 1, 4)
    })
    .await;

    // A billed Partner is deleted.
    h.partners(NS)
        .delete("tailspin", &Default::default())
        .await
        .expect("deleted");
    figures_equal_a_recount(&h, "a Partner deleted", |_, expired, billed| {
        (expired, billed) == (1, 3)
    })
    .await;

    // The one created as Production reaches its expiration date.
    h.clock.advance(Duration::days(16));
    figures_equal_a_recount(
        &h,
        "a Production subscription ended",
        |_, expired, billed| (expired, billed) == (2, 2),
    )
    .await;

    // Its expiration date moves into the future: renewed, billed again from now, with the
    // first billing period kept and a renewed email to both parties.
    let renewed_until = start_time() + Duration::days(90);
    h.partners(NS)
        .patch(
            "litware",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"subscription": {"expirationDate": renewed_until.to_rfc3339()}}}),
            ),
        )
        .await
        .expect("renewed");
    figures_equal_a_recount(
        &h,
        "a Production subscription renewed",
        |_, expired, billed| (expired, billed) == (1, 3),
    )
    .await;
    let litware = h.partners(NS).get("litware").await.expect("litware");
    let billing = litware.status.unwrap().billing.unwrap();
    assert_eq!(billing.periods.len(), 2, "{billing:?}");
    assert_eq!(billing.periods[0].ended_at, Some(ends));
    assert_eq!(billing.ended_at, None);
    let renewed = eventually("the renewed emails", Patience::RECONCILE, || async {
        let renewed = h.emails_of("renewed");
        if renewed.len() < 2 {
            Err(renewed.len())
        } else {
            Ok(renewed)
        }
    })
    .await;
    // The partner and the distributor, each in a message of their own.
    let mut recipients: Vec<_> = renewed.iter().map(|m| m.to.clone()).collect();
    recipients.sort();
    assert_eq!(
        recipients,
        [["admin@litware.example"], ["ops@northwind.example"]]
    );

    // The expired trial is converted by hand.
    h.partners(NS)
        .patch(
            "fabrikam",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"subscription": {"level": "Production"}}})),
        )
        .await
        .expect("converted");
    figures_equal_a_recount(&h, "an expired trial converted", |_, expired, billed| {
        (expired, billed) == (0, 4)
    })
    .await;

    // A namespace stops being the Distributor's: its Production Partner is no longer billed.
    Api::<k8s_openapi::api::core::v1::Namespace>::all(h.client.clone())
        .patch(
            MORE,
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"labels": {"partner-operator.io/distributor": null}}}),
            ),
        )
        .await
        .expect("unlabelled");
    // Unbound, its Production ends (Expired), and it is no longer counted at all.
    let figures = figures_equal_a_recount(&h, "a namespace unbound", |_, expired, billed| {
        (expired, billed) == (0, 3)
    })
    .await;
    let seats: Vec<_> = figures.billing.unwrap().seats.into_values().collect();
    assert_eq!(seats, [3, 3]);
}

/// Waits until the Distributor's figures equal a recount of the Partners the API server holds
/// (those not being deleted) and show the change (`expected(trial, expired, billed)`: Partners
/// in Trial, Expired, and billed), and returns them.
async fn figures_equal_a_recount(
    h: &Harness,
    after: &str,
    expected: impl Fn(u32, u32, u32) -> bool,
) -> DistributorStatus {
    eventually(
        format!("the Distributor's figures equal a recount ({after})"),
        Patience::RECONCILE,
        || async {
            let d = h
                .distributors()
                .get("northwind")
                .await
                .expect("Distributor");
            let partners = Api::<partner_operator::api::Partner>::all(h.client.clone())
                .list(&ListParams::default())
                .await
                .expect("Partners listed")
                .items;
            let statuses: Vec<_> = partners
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .filter_map(|p| p.status.clone())
                .collect();
            let (counts, billing) = distributor_totals(&d.spec.skus, &statuses);
            let status = d.status.clone().unwrap_or_default();
            let shows_the_change =
                expected(counts.trial, counts.expired, billing.production_partners);
            if shows_the_change
                && status.partners.as_ref() == Some(&counts)
                && status.billing.as_ref() == Some(&billing)
            {
                Ok(status)
            } else {
                Err(Seen(format!(
                    "stored {:?} / {:?}, recounted {counts:?} / {billing:?}",
                    status.partners, status.billing
                )))
            }
        },
    )
    .await
}
