//! `/metrics`, `/healthz` and `/readyz` of a running operator, scraped over HTTP after a
//! scenario: the figures match what happened.

use crate::support;

use partner_operator::operator::RunOptions;
use support::metrics::{free_port, sample};
use support::scrape::{get, scrape_until};
use support::*;

crate::on_both_servers!(metrics_follow_the_lifecycle,);
async fn metrics_follow_the_lifecycle(server: Server) {
    let h = Harness::start_servers(server).await;
    let addr = free_port();
    let operator = h.spawn_operator_as(
        "partner-operator",
        RunOptions {
            metrics_addr: Some(addr),
            ..h.run_options()
        },
    );
    h.northwind(true).await;
    h.apply(partner("northwind-partners", "contoso", "northwind"))
        .await;
    let mut fabrikam = partner("northwind-partners", "fabrikam", "northwind");
    fabrikam["spec"]["subscription"] = serde_json::json!({"autoUpgrade": false});
    h.apply(fabrikam).await;
    for name in ["contoso", "fabrikam"] {
        h.wait_partner("northwind-partners", name, "Ready", is_ready)
            .await;
    }
    h.wait_emails(2).await;

    let (status, _) = get(addr, "/healthz").await;
    assert_eq!(status, 200);
    let (status, _) = get(addr, "/readyz").await;
    assert_eq!(status, 200, "ready once the caches are filled");
    let trials = r#"partner_operator_partners{distributor="northwind",level="Trial"}"#;
    let metrics = scrape_until(addr, trials, 2.0).await;
    // The next deadline: the activation link's expiry (the notice follows at day 11).
    let link_expires_at = (start_time() + chrono::Duration::days(7)).timestamp() as f64;
    assert_eq!(
        sample(
            &metrics,
            r#"partner_operator_partner_next_deadline_timestamp_seconds{namespace="northwind-partners",name="contoso"}"#
        ),
        Some(link_expires_at),
        "{metrics}"
    );
    assert_eq!(sample(&metrics, trials), Some(2.0), "{metrics}");
    // Each trial's end, with whether it converts then (fabrikam has autoUpgrade off).
    let trial_ends_at = (start_time() + chrono::Duration::days(14)).timestamp() as f64;
    for (name, auto) in [("contoso", "true"), ("fabrikam", "false")] {
        let series = format!(
            r#"partner_operator_partner_trial_end_timestamp_seconds{{namespace="northwind-partners",name="{name}",distributor="northwind",auto_upgrade="{auto}"}}"#
        );
        let at = sample(&metrics, &series).unwrap_or_else(|| panic!("{series}\n{metrics}"));
        assert!(
            (at - trial_ends_at).abs() < 60.0,
            "{series}: {at}\n{metrics}"
        );
    }
    assert_eq!(
        sample(
            &metrics,
            r#"partner_operator_emails_sent_total{kind="activation"}"#
        ),
        Some(2.0),
        "{metrics}"
    );
    assert!(
        sample(
            &metrics,
            r#"partner_operator_reconciliations_total{controller="partner"}"#
        )
        .is_some_and(|n| n >= 2.0),
        "{metrics}"
    );

    // Through the notice and the trial's end: contoso converts, fabrikam expires.
    h.advance_days(11);
    h.wait_emails(6).await;
    h.advance_days(3);
    h.wait_partner("northwind-partners", "contoso", "Production", |p| {
        level(p) == SubscriptionLevel::Production
    })
    .await;
    h.wait_partner("northwind-partners", "fabrikam", "Expired", |p| {
        level(p) == SubscriptionLevel::Expired
    })
    .await;
    h.wait_emails(10).await;
    // Each transition is counted by a recount of its own, which may come a little later.
    scrape_until(
        addr,
        r#"partner_operator_billable_partners{distributor="northwind"}"#,
        1.0,
    )
    .await;
    let metrics = scrape_until(
        addr,
        r#"partner_operator_partners{distributor="northwind",level="Expired"}"#,
        1.0,
    )
    .await;
    for (series, value) in [
        (
            r#"partner_operator_billable_partners{distributor="northwind"}"#,
            1.0,
        ),
        (
            r#"partner_operator_seats{distributor="northwind",sku="ESSENTIALS"}"#,
            1.0,
        ),
        (
            r#"partner_operator_partners{distributor="northwind",level="Production"}"#,
            1.0,
        ),
        (
            r#"partner_operator_partners{distributor="northwind",level="Expired"}"#,
            1.0,
        ),
        (
            r#"partner_operator_partners{distributor="northwind",level="Trial"}"#,
            0.0,
        ),
        // The partner's message and the distributor's copy.
        (
            r#"partner_operator_emails_sent_total{kind="converted"}"#,
            2.0,
        ),
        (
            r#"partner_operator_emails_sent_total{kind="trial-expired"}"#,
            2.0,
        ),
        // Every email is out: nobody waits for a mail slot.
        ("partner_operator_emails_waiting", 0.0),
    ] {
        assert_eq!(sample(&metrics, series), Some(value), "{series}\n{metrics}");
    }
    assert!(
        !metrics.contains("partner_operator_partner_trial_end_timestamp_seconds{"),
        "no trial is left:\n{metrics}"
    );
    // Neither Partner has a deadline left: no series for them.
    assert!(
        !metrics.contains("partner_operator_partner_next_deadline_timestamp_seconds{"),
        "neither an open-ended Production nor an expired trial has a deadline:\n{metrics}"
    );
    operator.stop().await.unwrap();
}
