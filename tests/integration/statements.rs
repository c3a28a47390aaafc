//! Monthly billing statements, on both API servers: a month with a renewal, a deletion and a
//! re-creation under the same name, and a conversion at 23:59 on its last day, read from its
//! `BillingStatement` while it runs and once it is closed, through the API, `kubectl get` and
//! `kubectl partner billing`; and a closed statement refusing every change at admission.

use crate::support;

use chrono::{DateTime, Utc};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use partner_operator::api::{BillingStatement, SubscriptionLevel};
use serde_json::json;
use support::*;

crate::on_both_servers!(a_month_is_billed_in_its_statement_then_closed);

const NS: &str = "northwind-partners";

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

async fn a_month_is_billed_in_its_statement_then_closed(server: Server) {
    let h = Harness::start(server).await;
    h.northwind(false).await;
    let statements: Api<BillingStatement> = Api::all(h.client.clone());
    // From March 1st 09:00: litware in Production until the 10th, contoso and fabrikam trials.
    let mut litware = partner(NS, "litware", "northwind");
    litware["spec"]["subscription"] =
        json!({"level": "Production", "expirationDate": "2027-03-10T00:00:00Z"});
    let mut fabrikam = partner(NS, "fabrikam", "northwind");
    fabrikam["spec"]["subscription"] =
        json!({"level": "Production", "expirationDate": "2027-06-30T00:00:00Z"});
    for p in [
        litware,
        partner(NS, "contoso", "northwind"),
        fabrikam.clone(),
    ] {
        h.apply(p).await;
    }
    h.wait_billed("northwind", 2).await;

    // litware expires on the 10th and is renewed on the 12th: two periods, the 1st to the 9th
    // and the 12th on.
    h.clock.set(at("2027-03-12T09:00:00Z"));
    wait_level(&h, "litware", SubscriptionLevel::Expired).await;
    set_expiration(&h, "litware", "2027-06-30T00:00:00Z").await;
    wait_level(&h, "litware", SubscriptionLevel::Production).await;

    // fabrikam is deleted on the 15th: once it is gone, its 15 days are in the statement.
    h.clock.set(at("2027-03-15T09:00:00Z"));
    let first_uid = uid(&h.partners(NS).get("fabrikam").await.unwrap());
    h.partners(NS)
        .delete("fabrikam", &Default::default())
        .await
        .expect("deleted");
    eventually("fabrikam gone", Patience::DELETION, || async {
        h.partners(NS).get_opt("fabrikam").await.unwrap().is_none()
    })
    .await;
    let march = statements.get("northwind.2027-03").await.expect("March's");
    let gone = march.spec.partners.iter().find(|p| p.uid == first_uid);
    let gone = gone.expect("the deleted Partner is in the statement before it goes");
    assert!(gone.deleted);
    assert_eq!(
        (gone.days, gone.last_day.to_string().as_str()),
        (15, "2027-03-15")
    );

    // Created again under the same name on the 20th: a Partner of its own, billed from then.
    h.clock.set(at("2027-03-20T09:00:00Z"));
    h.apply(fabrikam).await;
    wait_level(&h, "fabrikam", SubscriptionLevel::Production).await;

    // contoso's trial expired on the 15th; it is converted at 23:59 on the 31st.
    h.clock.set(at("2027-03-31T23:59:00Z"));
    h.partners(NS)
        .patch(
            "contoso",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"subscription": {
                "level": "Production", "expirationDate": "2027-06-30T00:00:00Z"}}})),
        )
        .await
        .expect("converted");
    wait_level(&h, "contoso", SubscriptionLevel::Production).await;

    // April, past the hour given to late deadlines: March is closed.
    h.clock.set(at("2027-04-01T01:00:00Z"));
    let march = eventually("March's statement closed", Patience::RECONCILE, || async {
        match statements.get("northwind.2027-03").await {
            Ok(s) if s.spec.closed => Ok(s),
            seen => Err(Seen(format!("{:?}", seen.map(|s| s.spec)))),
        }
    })
    .await;
    let mut days: Vec<(String, u32, bool)> = march
        .spec
        .partners
        .iter()
        .map(|p| (p.name.clone(), p.days, p.deleted))
        .collect();
    days.sort();
    assert_eq!(
        days,
        [
            ("contoso".into(), 1, false),
            ("fabrikam".into(), 12, false),
            ("fabrikam".into(), 15, true),
            ("litware".into(), 9 + 20, false),
        ]
    );
    let litware = march.spec.partners.iter().find(|p| p.name == "litware");
    assert_eq!(litware.unwrap().periods.len(), 2);
    assert_eq!(march.spec.seat_days, (1 + 12 + 15 + 29) * 2);
    assert_eq!(
        march.spec.counted_through.unwrap().to_string(),
        "2027-03-31"
    );

    // Closed: admission refuses any change, through an update as through a patch.
    let mut changed = march.clone();
    changed.spec.seat_days = 0;
    let refused = statements
        .replace("northwind.2027-03", &PostParams::default(), &changed)
        .await
        .expect_err("a closed statement refuses an update");
    assert_refused(refused);
    let refused = statements
        .patch(
            "northwind.2027-03",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"closed": false}})),
        )
        .await
        .expect_err("a closed statement refuses a patch");
    assert_refused(refused);

    // April's statement runs on.
    let april = statements.get("northwind.2027-04").await.expect("April's");
    assert!(!april.spec.closed);
    assert_eq!(april.spec.partner_count, 3);

    // `kubectl get` shows the columns; `kubectl partner billing` reads the closed month.
    let table = run("/usr/bin/kubectl", &h, &["get", "billingstatements"]).await;
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "DISTRIBUTOR",
            "MONTH",
            "PARTNERS",
            "SEAT-DAYS",
            "CLOSED",
            "AGE"
        ]
    );
    assert!(
        table.lines().any(|l| l.split_whitespace().take(6).eq([
            "northwind.2027-03",
            "northwind",
            "2027-03",
            "4",
            "114",
            "true"
        ])),
        "{table}"
    );
    let plugin = env!("CARGO_BIN_EXE_kubectl-partner");
    let csv = run(
        plugin,
        &h,
        &["billing", "northwind", "--month", "2027-03", "-o", "csv"],
    )
    .await;
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows.len(), 1 + 4 * 2, "{csv}");
    assert!(
        rows.contains(&format!(
            "2027-03,northwind,ESSENTIALS,{NS},fabrikam,fabrikam IT Services,15,2027-03-01,2027-03-15,{first_uid},true"
        ).as_str()),
        "{csv}"
    );
    let table = run(plugin, &h, &["billing", "northwind", "--month", "2027-03"]).await;
    assert!(table.contains("closed BillingStatement: final"), "{table}");
}

async fn wait_level(h: &Harness, name: &str, level: SubscriptionLevel) {
    h.wait_partner(NS, name, &format!("{level}"), |p| {
        p.status.as_ref().and_then(|s| s.subscription_level) == Some(level)
    })
    .await;
}

async fn set_expiration(h: &Harness, name: &str, date: &str) {
    h.partners(NS)
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"subscription": {"expirationDate": date}}})),
        )
        .await
        .expect("patched");
}

#[track_caller]
fn assert_refused(err: kube::Error) {
    match err {
        kube::Error::Api(status) => {
            assert_eq!(status.code, 422, "{status:?}");
            assert!(
                status
                    .message
                    .contains("a closed BillingStatement cannot change"),
                "{status:?}"
            );
        }
        other => panic!("refused otherwise: {other}"),
    }
}

/// `program ARGS` against the test server, now being the harness clock's instant: stdout,
/// after asserting it succeeded.
async fn run(program: &str, h: &Harness, args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, h.server.kubeconfig_yaml()).unwrap();
    let output = tokio::process::Command::new(program)
        .args(args)
        .env("KUBECONFIG", &kubeconfig)
        .env(
            partner_operator::plugin::NOW_ENV,
            h.clock.now().to_rfc3339(),
        )
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{program} {}: {stdout}{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}
