//! Pure: what a month's statement says, from what it says now and the Partners as counted now.
//!
//! Entries are only ever added or brought up to date, never dropped: a Partner that is no
//! longer counted (deleted, or gone from the cache) keeps the entry it has. Each Partner stays
//! in the part it was first written to, so parts never trade entries (an entry moving would be
//! two writes that must both land), and a new Partner goes to the last part while that stays
//! under [`PART_BYTES`], else to a new part. An entry brought up to date may grow its part past
//! [`PART_BYTES`]: the margin to the API server's limit (1.5 MiB) absorbs that, an entry growing
//! by a few hundred bytes a month (a period, a longer name).

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};

use super::days::{Month, billed_days, periods_of};
use crate::api::{
    BillingPeriod, BillingStatementSpec, MAX_PARTNERS_PER_PART, Partner, SkuTotal, StatementPartner,
};

/// The most a part's `spec` may weigh, serialized as JSON. kube-apiserver refuses a request
/// body over 3 MiB and etcd a value over 1.5 MiB; the object is stored with its metadata and
/// `managedFields`, so a part stays well under both. 10,000 Partners of a typical size (about
/// 350 bytes each) fit in 5 parts; the largest entry the schema allows (100 SKUs, 64 periods,
/// 1024 bytes of organization name) weighs about 12 kB, so a part always holds at least 50.
pub const PART_BYTES: usize = 700_000;

/// Billing periods an entry lists at most; more (a subscription renewed and expired over and
/// over within a month) are merged into the last one listed. The days are counted from them
/// all.
pub const MAX_PERIODS: usize = 64;

/// `partner`'s entry in `month`'s statement, with billing still running counted up to `now`;
/// `None` when it was billed no day of the month (as far as `now`).
pub fn entry_of(
    partner: &Partner,
    month: Month,
    now: DateTime<Utc>,
    deleted: bool,
) -> Option<StatementPartner> {
    let status = partner.status.as_ref()?;
    let periods = periods_of(partner);
    let days = billed_days(&periods, month, now.min(month.end()));
    let (first, last) = (*days.first()?, *days.last()?);
    let touching: Vec<BillingPeriod> = periods
        .into_iter()
        .filter(|p| p.started_at < month.end() && p.ended_at.is_none_or(|e| e > month.start()))
        .collect();
    Some(StatementPartner {
        uid: partner.metadata.uid.clone().unwrap_or_default(),
        namespace: partner.metadata.namespace.clone().unwrap_or_default(),
        name: partner.metadata.name.clone().unwrap_or_default(),
        organization: partner.spec.organization_name.clone(),
        skus: status.skus.iter().map(|s| s.0.clone()).collect(),
        days: days.len() as u32,
        first_day: first,
        last_day: last,
        periods: capped(touching),
        deleted,
    })
}

/// At most [`MAX_PERIODS`] periods: the excess merged into the last one kept.
fn capped(mut periods: Vec<BillingPeriod>) -> Vec<BillingPeriod> {
    if periods.len() > MAX_PERIODS {
        let ended_at = periods.last().and_then(|p| p.ended_at);
        periods.truncate(MAX_PERIODS);
        periods[MAX_PERIODS - 1].ended_at = ended_at;
    }
    periods
}

/// How far a statement counts, and whether it is final.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counting {
    /// The last day counted.
    pub through: NaiveDate,
    /// Closed at this instant: the statement is final.
    pub closed_at: Option<DateTime<Utc>>,
}

impl Counting {
    /// A statement of `month` counted at `now`: up to today while the month runs, closed at
    /// `now` when `close`.
    pub fn at(month: Month, now: DateTime<Utc>, close: bool) -> Self {
        Self {
            through: now.date_naive().clamp(month.first, month.last_day()),
            closed_at: close.then_some(now),
        }
    }
}

/// The parts of `distributor`'s statement of `month`: `existing` (its parts as stored, any
/// order) with `fresh` entries written in (a new Partner added, a known one brought up to
/// date, except one recorded as deleted, which is final), totals recomputed, and `counting`.
pub fn compose(
    distributor: &str,
    month: Month,
    existing: &[BillingStatementSpec],
    fresh: Vec<StatementPartner>,
    counting: Counting,
) -> Vec<BillingStatementSpec> {
    compose_within(distributor, month, existing, fresh, counting, PART_BYTES)
}

/// [`compose`], with parts of at most `budget` bytes.
fn compose_within(
    distributor: &str,
    month: Month,
    existing: &[BillingStatementSpec],
    fresh: Vec<StatementPartner>,
    counting: Counting,
    budget: usize,
) -> Vec<BillingStatementSpec> {
    let mut parts: Vec<Vec<StatementPartner>> = vec![];
    for spec in existing {
        let at = spec.part as usize;
        if parts.len() <= at {
            parts.resize_with(at + 1, Vec::new);
        }
        parts[at].extend(spec.partners.iter().cloned());
    }
    let mut placed: HashMap<String, (usize, usize)> = HashMap::new();
    for (part, entries) in parts.iter().enumerate() {
        for (at, entry) in entries.iter().enumerate() {
            placed.insert(entry.uid.clone(), (part, at));
        }
    }
    // Known Partners first, so new ones are placed by the parts' sizes as updated.
    let (known, new): (Vec<_>, Vec<_>) =
        fresh.into_iter().partition(|e| placed.contains_key(&e.uid));
    for entry in known {
        let (part, at) = placed[&entry.uid];
        if !parts[part][at].deleted {
            parts[part][at] = entry;
        }
    }
    let mut sizes: Vec<usize> = parts.iter().map(|p| weight(p)).collect();
    for entry in new {
        if let Some(&(part, at)) = placed.get(&entry.uid) {
            // The same Partner twice in `fresh`: the later count stands.
            parts[part][at] = entry;
            continue;
        }
        let size = weight(std::slice::from_ref(&entry));
        let last_fits = parts
            .last()
            .zip(sizes.last())
            .is_some_and(|(p, s)| p.len() < MAX_PARTNERS_PER_PART && s + size <= budget);
        if !last_fits {
            parts.push(vec![]);
            sizes.push(0);
        }
        let part = parts.len() - 1;
        placed.insert(entry.uid.clone(), (part, parts[part].len()));
        parts[part].push(entry);
        sizes[part] += size;
    }
    if parts.is_empty() {
        parts.push(vec![]);
    }
    parts
        .into_iter()
        .enumerate()
        .map(|(part, entries)| spec_of(distributor, month, part as u32, entries, counting))
        .collect()
}

/// The JSON weight of `entries`, with a comma each.
fn weight(entries: &[StatementPartner]) -> usize {
    entries
        .iter()
        .map(|e| serde_json::to_vec(e).map_or(0, |v| v.len()) + 1)
        .sum()
}

/// One part, its entries sorted and its totals summed from them.
fn spec_of(
    distributor: &str,
    month: Month,
    part: u32,
    mut partners: Vec<StatementPartner>,
    counting: Counting,
) -> BillingStatementSpec {
    partners.sort_by(|a, b| (&a.namespace, &a.name, &a.uid).cmp(&(&b.namespace, &b.name, &b.uid)));
    let totals = totals(&partners);
    BillingStatementSpec {
        distributor: distributor.to_string(),
        month: month.to_string(),
        part,
        closed: counting.closed_at.is_some(),
        closed_at: counting.closed_at,
        counted_through: Some(counting.through),
        partner_count: partners.len() as u32,
        seat_days: totals.iter().map(|t| t.partner_days).sum(),
        totals,
        partners,
    }
}

/// Per SKU, the Partners billed with it and their days summed, by SKU.
pub fn totals(partners: &[StatementPartner]) -> Vec<SkuTotal> {
    let mut by_sku: std::collections::BTreeMap<&str, SkuTotal> = Default::default();
    for entry in partners {
        for sku in &entry.skus {
            let total = by_sku.entry(sku).or_insert_with(|| SkuTotal {
                sku: sku.clone(),
                partners: 0,
                partner_days: 0,
            });
            total.partners += 1;
            total.partner_days += entry.days;
        }
    }
    by_sku.into_values().collect()
}

#[cfg(test)]
#[path = "compose_tests.rs"]
mod tests;
