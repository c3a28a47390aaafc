//! `kubectl partner billing`: billable partner-days per SKU for a month, from the Partners'
//! billing periods (`status.billing.periods`), so a distributor can reconcile an invoice.
//!
//! The rule: a Partner is billed for a **UTC calendar day** of the month when some billing
//! period of it covers part of that day, however short; each day counts once per Partner, even
//! when two periods touch it (a subscription that expires and is renewed the same day). A period
//! is `[startedAt, endedAt)`: one that ends at midnight does not count the day that starts then;
//! a period still open counts up to now (the report says when it is still running). A Partner's
//! days count for each SKU in its `status.skus` (the SKUs it has now: the API keeps no history
//! of SKU changes). A Partner deleted during the month is read from the month's
//! `BillingStatement`, where the operator wrote its billing before letting it go; a closed
//! month is read from its statement alone.

use std::collections::HashSet;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use super::dates::exact;
use crate::api::{BillingStatement, Partner, StatementPartner};
use crate::statements::compose::{entry_of, totals};
pub use crate::statements::days::{Month, billed_days, periods_of};

/// Where a report's Partners come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Source {
    /// The Partners that exist: the month has no statement (deleted Partners are missing).
    Partners,
    /// The Partners that exist, and the Partners of the month's open statement that do not
    /// (deleted ones).
    PartnersAndStatement,
    /// The month's closed statement alone: final.
    ClosedStatement,
}

/// The month's bill for one Distributor.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub distributor: String,
    pub month: String,
    /// The month is over: no open period can add days to it.
    pub complete: bool,
    /// The instant open periods were counted up to.
    pub counted_until: String,
    pub source: Source,
    pub skus: Vec<SkuLine>,
    pub partners: Vec<PartnerLine>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SkuLine {
    pub sku: String,
    /// Partners billed at least one day of the month with this SKU.
    pub partners: usize,
    pub partner_days: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PartnerLine {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub organization: String,
    pub skus: Vec<String>,
    pub days: usize,
    pub first_day: Option<NaiveDate>,
    pub last_day: Option<NaiveDate>,
    pub periods: Vec<PeriodLine>,
    /// The Partner was deleted: its line comes from the statement.
    pub deleted: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PeriodLine {
    pub started_at: String,
    pub ended_at: Option<String>,
}

/// The report of `distributor` for `month` from the Partners that exist: every Partner billed
/// to it (by `status.billing.billedTo`) at least one day of the month.
pub fn report(distributor: &str, partners: &[Partner], month: Month, now: DateTime<Utc>) -> Report {
    with_statement(distributor, partners, &[], month, now)
}

/// The report of `distributor` for `month` from its statement's `parts` and the Partners that
/// exist: a closed statement alone (it is final), else the Partners counted now and the
/// statement's Partners that no longer exist.
pub fn with_statement(
    distributor: &str,
    partners: &[Partner],
    parts: &[BillingStatement],
    month: Month,
    now: DateTime<Utc>,
) -> Report {
    let closed = parts.iter().any(|p| p.spec.closed);
    let mut entries: Vec<StatementPartner> = vec![];
    if !closed {
        entries.extend(
            partners
                .iter()
                .filter(|p| billed_to(p) == Some(distributor))
                .filter_map(|p| entry_of(p, month, now, false)),
        );
    }
    let live: HashSet<String> = entries.iter().map(|e| e.uid.clone()).collect();
    let recorded = parts.iter().flat_map(|p| &p.spec.partners);
    entries.extend(recorded.filter(|e| !live.contains(&e.uid)).cloned());
    let skus = totals(&entries)
        .into_iter()
        .map(|t| SkuLine {
            sku: t.sku,
            partners: t.partners as usize,
            partner_days: t.partner_days as usize,
        })
        .collect();
    let mut lines: Vec<PartnerLine> = entries.iter().map(line_of).collect();
    lines.sort_by(|a, b| (&a.namespace, &a.name, &a.uid).cmp(&(&b.namespace, &b.name, &b.uid)));
    let complete = closed || now >= month.end();
    Report {
        distributor: distributor.to_string(),
        month: month.to_string(),
        complete,
        counted_until: exact(if complete { month.end() } else { now }),
        source: match (closed, parts.is_empty()) {
            (true, _) => Source::ClosedStatement,
            (false, false) => Source::PartnersAndStatement,
            (false, true) => Source::Partners,
        },
        skus,
        partners: lines,
    }
}

fn billed_to(partner: &Partner) -> Option<&str> {
    let billing = partner.status.as_ref()?.billing.as_ref()?;
    Some(billing.billed_to.as_str())
}

fn line_of(entry: &StatementPartner) -> PartnerLine {
    PartnerLine {
        uid: entry.uid.clone(),
        namespace: entry.namespace.clone(),
        name: entry.name.clone(),
        organization: entry.organization.clone(),
        skus: entry.skus.clone(),
        days: entry.days as usize,
        first_day: Some(entry.first_day),
        last_day: Some(entry.last_day),
        periods: entry
            .periods
            .iter()
            .map(|p| PeriodLine {
                started_at: exact(p.started_at),
                ended_at: p.ended_at.map(exact),
            })
            .collect(),
        deleted: entry.deleted,
    }
}

impl Report {
    /// The table: per SKU, then per Partner.
    pub fn table(&self) -> String {
        let mut out = format!(
            "Billable partner-days of {} for {} ({}; a day counts when billed at any moment of it, UTC)\n\n",
            self.distributor,
            self.month,
            if self.complete {
                "the whole month".to_string()
            } else {
                format!("to date, counted until {}", self.counted_until)
            }
        );
        out.push_str(match self.source {
            Source::ClosedStatement => "Read from the month's closed BillingStatement: final.\n\n",
            Source::PartnersAndStatement => {
                "From the Partners, and the month's BillingStatement for Partners deleted since.\n\n"
            }
            Source::Partners => {
                "From the Partners that exist: the month has no BillingStatement, so Partners deleted since are missing.\n\n"
            }
        });
        let mut rows = vec![vec![
            "SKU".to_string(),
            "PARTNERS".into(),
            "PARTNER-DAYS".into(),
        ]];
        for line in &self.skus {
            rows.push(vec![
                line.sku.clone(),
                line.partners.to_string(),
                line.partner_days.to_string(),
            ]);
        }
        out.push_str(&super::table::render(&rows));
        out.push('\n');
        let mut rows = vec![vec![
            "NAMESPACE".to_string(),
            "PARTNER".into(),
            "ORGANIZATION".into(),
            "DAYS".into(),
            "FROM".into(),
            "TO".into(),
            "SKUS".into(),
        ]];
        for line in &self.partners {
            let day = |d: Option<NaiveDate>| d.map_or("-".to_string(), |d| d.to_string());
            let name = if line.deleted {
                format!("{} (deleted)", line.name)
            } else {
                line.name.clone()
            };
            rows.push(vec![
                line.namespace.clone(),
                name,
                line.organization.clone(),
                line.days.to_string(),
                day(line.first_day),
                day(line.last_day),
                line.skus.join(","),
            ]);
        }
        if self.partners.is_empty() {
            out.push_str("No Partner was billed this month.\n");
        } else {
            out.push_str(&super::table::render(&rows));
        }
        out
    }

    /// One row per Partner and SKU, with a header: what a spreadsheet pivots.
    pub fn csv(&self) -> String {
        let mut out = String::from(
            "month,distributor,sku,namespace,partner,organization,days,first_day,last_day,uid,deleted\n",
        );
        for line in &self.partners {
            for sku in &line.skus {
                let day = |d: Option<NaiveDate>| d.map_or(String::new(), |d| d.to_string());
                out.push_str(
                    &[
                        self.month.clone(),
                        self.distributor.clone(),
                        sku.clone(),
                        line.namespace.clone(),
                        line.name.clone(),
                        line.organization.clone(),
                        line.days.to_string(),
                        day(line.first_day),
                        day(line.last_day),
                        line.uid.clone(),
                        line.deleted.to_string(),
                    ]
                    .map(|field| csv_field(&field))
                    .join(","),
                );
                out.push('\n');
            }
        }
        out
    }
}

/// A CSV field, quoted when it holds a comma, a quote or a line break (RFC 4180).
fn csv_field(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::BillingPeriod;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn period(start: &str, end: Option<&str>) -> BillingPeriod {
        BillingPeriod {
            started_at: at(start),
            ended_at: end.map(at),
        }
    }

    fn march() -> Month {
        Month::parse("2027-03").unwrap()
    }

    fn partner(name: &str, billed_to: &str, skus: &[&str], periods: Vec<BillingPeriod>) -> Partner {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "partner-operator.io/v1alpha1",
            "kind": "Partner",
            "metadata": {"name": name, "namespace": "partners", "uid": format!("uid-{name}")},
            "spec": {
                "organizationName": format!("{name}, Inc."),
                "notificationEmail": "a@b.example",
                "distributorRef": {"name": billed_to},
            },
            "status": {
                "skus": skus,
                "billing": {
                    "billedTo": billed_to,
                    "startedAt": periods.last().map(|p| p.started_at),
                    "endedAt": periods.last().and_then(|p| p.ended_at),
                    "periods": periods,
                },
            },
        }))
        .unwrap()
    }

    #[test]
    fn the_report_sums_partner_days_per_sku() {
        let now = at("2027-04-02T00:00:00Z");
        let partners = [
            // Converted on the 15th: 17 days of both SKUs.
            partner(
                "contoso",
                "northwind",
                &["ESSENTIALS", "GOVERNANCE"],
                vec![period("2027-03-15T09:00:00Z", None)],
            ),
            // Expired on the 10th at noon: 10 days, ESSENTIALS only.
            partner(
                "litware",
                "northwind",
                &["ESSENTIALS"],
                vec![period("2027-02-01T00:00:00Z", Some("2027-03-10T12:00:00Z"))],
            ),
            // Another distributor's, and one never billed in March.
            partner(
                "other",
                "southwind",
                &["ESSENTIALS"],
                vec![period("2027-03-01T00:00:00Z", None)],
            ),
            partner(
                "april",
                "northwind",
                &["ESSENTIALS"],
                vec![period("2027-04-01T00:00:00Z", None)],
            ),
        ];
        let report = report("northwind", &partners, march(), now);
        assert!(report.complete);
        assert_eq!(report.counted_until, "2027-04-01T00:00:00Z");
        assert_eq!(
            report.skus,
            [
                SkuLine {
                    sku: "ESSENTIALS".into(),
                    partners: 2,
                    partner_days: 27
                },
                SkuLine {
                    sku: "GOVERNANCE".into(),
                    partners: 1,
                    partner_days: 17
                },
            ]
        );
        assert_eq!(
            report
                .partners
                .iter()
                .map(|p| (p.name.as_str(), p.days))
                .collect::<Vec<_>>(),
            [("contoso", 17), ("litware", 10)]
        );
        let csv = report.csv();
        assert_eq!(
            csv.lines().collect::<Vec<_>>(),
            [
                "month,distributor,sku,namespace,partner,organization,days,first_day,last_day,uid,deleted",
                "2027-03,northwind,ESSENTIALS,partners,contoso,\"contoso, Inc.\",17,2027-03-15,2027-03-31,uid-contoso,false",
                "2027-03,northwind,GOVERNANCE,partners,contoso,\"contoso, Inc.\",17,2027-03-15,2027-03-31,uid-contoso,false",
                "2027-03,northwind,ESSENTIALS,partners,litware,\"litware, Inc.\",10,2027-03-01,2027-03-10,uid-litware,false",
            ]
        );
        let table = report.table();
        assert!(table.contains("for 2027-03 (the whole month;"), "{table}");
        assert!(table.contains("ESSENTIALS   2          27"), "{table}");
        // Mid-month, the report says it is to date.
        let running = super::report("northwind", &partners, march(), at("2027-03-20T08:00:00Z"));
        assert!(!running.complete);
        assert!(
            running
                .table()
                .contains("to date, counted until 2027-03-20T08:00:00Z")
        );
    }

    fn statement(
        partners: &[Partner],
        deleted: &[&str],
        now: &str,
        closed: bool,
    ) -> BillingStatement {
        let entries = partners
            .iter()
            .filter_map(|p| {
                let gone = deleted.contains(&p.metadata.name.as_deref().unwrap());
                entry_of(p, march(), at(now), gone)
            })
            .collect();
        let counting = crate::statements::compose::Counting::at(march(), at(now), closed);
        let spec =
            crate::statements::compose::compose("northwind", march(), &[], entries, counting);
        crate::statements::store::new_statement(spec.into_iter().next().unwrap())
    }

    #[test]
    fn a_deleted_partner_is_read_from_the_statement_and_a_closed_month_from_it_alone() {
        let contoso = partner(
            "contoso",
            "northwind",
            &["ESSENTIALS"],
            vec![period("2027-03-15T09:00:00Z", None)],
        );
        let litware = partner(
            "litware",
            "northwind",
            &["ESSENTIALS"],
            vec![period("2027-03-01T00:00:00Z", Some("2027-03-10T12:00:00Z"))],
        );
        // litware deleted on the 10th: only the statement has it.
        let open = statement(
            std::slice::from_ref(&litware),
            &["litware"],
            "2027-03-10T12:00:00Z",
            false,
        );
        let now = at("2027-03-20T08:00:00Z");
        let mid = with_statement(
            "northwind",
            std::slice::from_ref(&contoso),
            &[open],
            march(),
            now,
        );
        assert_eq!(mid.source, Source::PartnersAndStatement);
        assert_eq!(
            mid.partners
                .iter()
                .map(|p| (p.name.as_str(), p.days, p.deleted))
                .collect::<Vec<_>>(),
            [("contoso", 6, false), ("litware", 10, true)]
        );
        assert_eq!(mid.skus[0].partner_days, 16);
        assert!(mid.table().contains("litware (deleted)"), "{}", mid.table());
        // Closed: the statement alone, whatever the Partners say now.
        let closed = statement(
            &[contoso.clone(), litware],
            &["litware"],
            "2027-04-01T01:00:00Z",
            true,
        );
        let mut renamed = contoso;
        renamed.spec.organization_name = "Changed since".into();
        let april = at("2027-04-20T00:00:00Z");
        let final_ = with_statement("northwind", &[renamed], &[closed], march(), april);
        assert_eq!(final_.source, Source::ClosedStatement);
        assert!(final_.complete);
        assert_eq!(final_.skus[0].partner_days, 17 + 10);
        assert_eq!(final_.partners[0].organization, "contoso, Inc.");
        assert!(final_.table().contains("closed BillingStatement: final"));
    }
}
