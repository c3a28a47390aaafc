//! Billed days: the pure arithmetic every billing figure is made of, shared by the statements
//! the operator writes and by `kubectl partner billing`.
//!
//! The rule: a Partner is billed for a **UTC calendar day** of the month when some billing
//! period of it covers part of that day, however short; each day counts once per Partner, even
//! when two periods touch it (a subscription that expires and is renewed the same day). A period
//! is `[startedAt, endedAt)`: one that ends at midnight does not count the day that starts then;
//! a period still open counts up to now.

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};

use crate::api::{BillingPeriod, Partner};

/// A calendar month, `YYYY-MM`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
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

    /// The month before this one.
    pub fn previous(self) -> Self {
        Self::of(self.start() - Duration::days(1))
    }

    /// The month's last UTC day.
    pub fn last_day(self) -> NaiveDate {
        (self.end() - Duration::days(1)).date_naive()
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
}
