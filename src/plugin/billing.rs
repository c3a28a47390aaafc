//! `kubectl partner billing`: billable partner-days per SKU for a month, from the Partners'
//! billing periods (`status.billing.periods`), so a distributor can reconcile an invoice.
//!
//! The rule: a Partner is billed for a **UTC calendar day** of the month when some billing
//! period of it covers part of that day, however short; each day counts once per Partner, even
//! when two periods touch it (a subscription that expires and is renewed the same day). A period
//! is `[startedAt, endedAt)`: one that ends at midnight does not count the day that starts then;
//! a period still open counts up to now (the report says when it is still running). A Partner's
//! days count for each SKU in its `status.skus` (the SKUs it has now: the API keeps no history
//! of SKU changes). Only Partners that exist are counted: a deleted Partner's periods are
//! deleted with it.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use serde::Serialize;

use super::dates::exact;
use crate::api::{BillingPeriod, Partner};

/// A calendar month, `YYYY-MM`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Month {
    pub first: NaiveDate,
}

impl Month {
    pub fn parse(value: &str) -> Result<Self, String> {
        let refused = || format!("--month: {value:?} is not a month of the form 2027-03");
        if value.len() != 7 {
            return Err(refused());
        }
        NaiveDate::parse_from_str(&format!("{value}-01"), "%Y-%m-%d")
            .map(|first| Self { first })
            .map_err(|_| refused())
    }

    /// The month `at` falls in (UTC).
    pub fn of(at: DateTime<Utc>) -> Self {
        Self {
            first: at.date_naive().with_day(1).expect("day 1"),
        }
    }

    pub fn start(self) -> DateTime<Utc> {
        self.first.and_hms_opt(0, 0, 0).expect("midnight").and_utc()
    }

    /// The first instant of the next month.
    pub fn end(self) -> DateTime<Utc> {
        let next = if self.first.month() == 12 {
            NaiveDate::from_ymd_opt(self.first.year() + 1, 1, 1)
        } else {
            NaiveDate::from_ymd_opt(self.first.year(), self.first.month() + 1, 1)
        };
        next.expect("a month")
            .and_hms_opt(0, 0, 0)
            .expect("midnight")
            .and_utc()
    }
}

impl std::fmt::Display for Month {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.first.format("%Y-%m"))
    }
}

/// The UTC days of `month` some period covers, up to `now` for a period still open.
pub fn billed_days(
    periods: &[BillingPeriod],
    month: Month,
    now: DateTime<Utc>,
) -> BTreeSet<NaiveDate> {
    let mut days = BTreeSet::new();
    for period in periods {
        let start = period.started_at.max(month.start());
        let end = period.ended_at.unwrap_or(now).min(month.end());
        if start >= end {
            continue;
        }
        // The last day touched is the one holding the period's last instant.
        let last = (end - Duration::nanoseconds(1)).date_naive();
        let mut day = start.date_naive();
        while day <= last {
            days.insert(day);
            day = day.succ_opt().expect("a next day");
        }
    }
    days
}

/// A Partner's billing periods: `status.billing.periods`, or the one period `startedAt` ..
/// `endedAt` of a status written before periods were kept.
pub fn periods_of(partner: &Partner) -> Vec<BillingPeriod> {
    let Some(billing) = partner.status.as_ref().and_then(|s| s.billing.as_ref()) else {
        return vec![];
    };
    if billing.periods.is_empty() {
        vec![BillingPeriod {
            started_at: billing.started_at,
            ended_at: billing.ended_at,
        }]
    } else {
        billing.periods.clone()
    }
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
    pub namespace: String,
    pub name: String,
    pub organization: String,
    pub skus: Vec<String>,
    pub days: usize,
    pub first_day: Option<NaiveDate>,
    pub last_day: Option<NaiveDate>,
    pub periods: Vec<PeriodLine>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PeriodLine {
    pub started_at: String,
    pub ended_at: Option<String>,
}

/// The report of `distributor` for `month`: every Partner billed to it (by
/// `status.billing.billedTo`) at least one day of the month.
pub fn report(distributor: &str, partners: &[Partner], month: Month, now: DateTime<Utc>) -> Report {
    let mut lines = vec![];
    let mut skus: BTreeMap<String, SkuLine> = BTreeMap::new();
    for partner in partners {
        let Some(status) = partner.status.as_ref() else {
            continue;
        };
        if status.billing.as_ref().map(|b| b.billed_to.as_str()) != Some(distributor) {
            continue;
        }
        let periods = periods_of(partner);
        let days = billed_days(&periods, month, now);
        if days.is_empty() {
            continue;
        }
        for sku in &status.skus {
            let line = skus.entry(sku.0.clone()).or_insert_with(|| SkuLine {
                sku: sku.0.clone(),
                partners: 0,
                partner_days: 0,
            });
            line.partners += 1;
            line.partner_days += days.len();
        }
        lines.push(PartnerLine {
            namespace: partner.metadata.namespace.clone().unwrap_or_default(),
            name: partner.metadata.name.clone().unwrap_or_default(),
            organization: partner.spec.organization_name.clone(),
            skus: status.skus.iter().map(|s| s.0.clone()).collect(),
            days: days.len(),
            first_day: days.first().copied(),
            last_day: days.last().copied(),
            periods: periods
                .iter()
                .map(|p| PeriodLine {
                    started_at: exact(p.started_at),
                    ended_at: p.ended_at.map(exact),
                })
                .collect(),
        });
    }
    lines.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    let complete = now >= month.end();
    Report {
        distributor: distributor.to_string(),
        month: month.to_string(),
        complete,
        counted_until: exact(if complete { month.end() } else { now }),
        skus: skus.into_values().collect(),
        partners: lines,
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
            rows.push(vec![
                line.namespace.clone(),
                line.name.clone(),
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
            "month,distributor,sku,namespace,partner,organization,days,first_day,last_day\n",
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

    #[test]
    fn months_parse_and_bound() {
        assert_eq!(march().start(), at("2027-03-01T00:00:00Z"));
        assert_eq!(march().end(), at("2027-04-01T00:00:00Z"));
        assert_eq!(
            Month::parse("2027-12").unwrap().end(),
            at("2028-01-01T00:00:00Z")
        );
        assert_eq!(Month::of(at("2027-03-31T23:59:59Z")), march());
        for bad in ["2027-3", "2027-13", "2027-03-01", "March", ""] {
            assert_eq!(
                Month::parse(bad),
                Err(format!(
                    "--month: {bad:?} is not a month of the form 2027-03"
                ))
            );
        }
    }

    #[test]
    fn a_started_utc_day_counts_whole_and_once() {
        let now = at("2027-05-01T00:00:00Z");
        // From the 15th at 09:00 to the end of the month: 17 days (15..31).
        let converted = [period("2027-03-15T09:00:00Z", None)];
        assert_eq!(billed_days(&converted, march(), now).len(), 17);
        // Ended at midnight: the day that starts then does not count.
        let to_midnight = [period("2027-03-10T12:00:00Z", Some("2027-03-12T00:00:00Z"))];
        assert_eq!(billed_days(&to_midnight, march(), now).len(), 2);
        // One second into a day counts the day.
        let a_second = [period("2027-03-10T23:59:59Z", Some("2027-03-11T00:00:01Z"))];
        assert_eq!(billed_days(&a_second, march(), now).len(), 2);
        // Expired on the 20th at 10:00, renewed the same day: the 20th counts once.
        let renewed = [
            period("2027-03-01T00:00:00Z", Some("2027-03-20T10:00:00Z")),
            period("2027-03-20T15:00:00Z", None),
        ];
        assert_eq!(billed_days(&renewed, march(), now).len(), 31);
        // A period over before the month, or after it, counts nothing; a period spanning it
        // counts every day.
        let outside = [
            period("2027-01-01T00:00:00Z", Some("2027-03-01T00:00:00Z")),
            period("2027-04-01T00:00:00Z", None),
        ];
        assert!(billed_days(&outside, march(), now).is_empty());
        let spanning = [period("2027-02-01T00:00:00Z", Some("2027-05-01T00:00:00Z"))];
        assert_eq!(billed_days(&spanning, march(), now).len(), 31);
        // A zero-length period counts nothing.
        let empty = [period("2027-03-05T00:00:00Z", Some("2027-03-05T00:00:00Z"))];
        assert!(billed_days(&empty, march(), now).is_empty());
    }

    #[test]
    fn an_open_period_counts_up_to_now() {
        let open = [period("2027-03-15T09:00:00Z", None)];
        // On the 20th at 08:00: the 15th to the 20th (the 20th has started).
        assert_eq!(
            billed_days(&open, march(), at("2027-03-20T08:00:00Z")).len(),
            6
        );
        // Before the month, nothing.
        assert!(billed_days(&open, march(), at("2027-02-20T08:00:00Z")).is_empty());
    }

    fn partner(name: &str, billed_to: &str, skus: &[&str], periods: Vec<BillingPeriod>) -> Partner {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "partner-operator.io/v1alpha1",
            "kind": "Partner",
            "metadata": {"name": name, "namespace": "partners"},
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
                "month,distributor,sku,namespace,partner,organization,days,first_day,last_day",
                "2027-03,northwind,ESSENTIALS,partners,contoso,\"contoso, Inc.\",17,2027-03-15,2027-03-31",
                "2027-03,northwind,GOVERNANCE,partners,contoso,\"contoso, Inc.\",17,2027-03-15,2027-03-31",
                "2027-03,northwind,ESSENTIALS,partners,litware,\"litware, Inc.\",10,2027-03-01,2027-03-10",
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
}
