//! One row of the Partners page (the `list` command's row, with what the page adds), and the
//! page's search, level filter and sort, done on the server so a page of 10,000 Partners
//! arrives ready to read.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::store::Key;
use crate::api::{DeletionPolicy, Distributor, Partner, SubscriptionLevel, find_condition, types};
use crate::plugin::list;

/// A row as the page shows it.
#[derive(Serialize, Debug, Clone)]
pub struct PageRow {
    #[serde(flatten)]
    pub row: list::Row,
    /// `row--NAMESPACE--NAME`: the element the live updates replace.
    pub id: String,
    /// The actions the Action menu offers.
    pub can_convert: bool,
    pub can_renew: bool,
    pub can_resend: bool,
    /// The automatic upgrade as a switch shows it (the default resolved when known).
    pub auto_upgrade_on: bool,
    /// What deleting the Partner does to its tenant.
    pub tenant_fate: String,
    /// When the trial's upgrade notice goes out (its end less the Distributor's notice days),
    /// when there is a trial and the Distributor sends one.
    pub notice_at: Option<String>,
}

/// The row of `partner`.
pub fn page_row(
    partner: &Partner,
    distributor: Option<&Distributor>,
    now: DateTime<Utc>,
) -> PageRow {
    let mut row = list::row(partner, distributor, now);
    let status = partner.status.clone().unwrap_or_default();
    let link_expired = status
        .activation
        .as_ref()
        .and_then(|a| a.link_expires_at)
        .is_some_and(|at| at <= now);
    if row.activation == "sent" && link_expired {
        row.activation = "link expired".into();
    }
    let level = status.subscription_level.unwrap_or_default();
    let was_production = status.production.is_some();
    let activated =
        find_condition(&status.conditions, types::ACTIVATED).is_some_and(|c| c.status == "True");
    PageRow {
        id: format!("row--{}--{}", row.namespace, row.name),
        can_convert: level == SubscriptionLevel::Trial,
        can_renew: level == SubscriptionLevel::Production
            || (level == SubscriptionLevel::Expired && was_production),
        can_resend: !activated && status.tenant.is_some(),
        auto_upgrade_on: row.auto_upgrade == "on",
        tenant_fate: tenant_fate(partner, row.tenant.as_deref()),
        notice_at: notice_at(level, status.expires_at, distributor),
        row,
    }
}

fn notice_at(
    level: SubscriptionLevel,
    trial_end: Option<DateTime<Utc>>,
    distributor: Option<&Distributor>,
) -> Option<String> {
    let days = distributor?.spec.trial.upgrade_notice_days;
    if level != SubscriptionLevel::Trial || days == 0 {
        return None;
    }
    Some(crate::plugin::dates::exact(
        trial_end? - chrono::Duration::days(i64::from(days)),
    ))
}

/// What deleting `partner` does to its tenant, in a sentence.
pub fn tenant_fate(partner: &Partner, tenant: Option<&str>) -> String {
    match (tenant, partner.spec.tenant.deletion_policy) {
        (None, _) => "It has no tenant namespace yet.".into(),
        (Some(ns), DeletionPolicy::Delete) => {
            format!("Its tenant namespace {ns} and everything in it are deleted with it.")
        }
        (Some(ns), DeletionPolicy::Retain) => {
            format!("Its tenant namespace {ns} is retained (deletion policy Retain).")
        }
    }
}

/// What the page asks for: `?q=&level=&sort=&desc=`.
#[derive(Deserialize, Serialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(default)]
pub struct Query {
    /// Words every one of which a row must hold (organization, name, namespace, distributor).
    pub q: String,
    /// `Trial`, `Production`, `Expired`, `Pending`, or empty for every level.
    pub level: String,
    /// A column: `organization` (default), `name`, `distributor`, `level`, `expires`,
    /// `activation`, `autoUpgrade`, `billingSince`.
    pub sort: String,
    /// `1`: descending.
    pub desc: String,
    /// The page, from 1 (default): [`PAGE_SIZE`] rows each.
    pub page: String,
}

/// Rows on one page: a page of 10,000 rows is megabytes of HTML a browser takes seconds to lay
/// out; a page of 100 arrives and shows at once, and the search finds any row.
pub const PAGE_SIZE: usize = 100;

/// The columns the page sorts by, with their headings.
pub const COLUMNS: [(&str, &str); 8] = [
    ("organization", "Organization"),
    ("distributor", "Distributor"),
    ("level", "Level"),
    ("expires", "Expires"),
    ("days", "Days left"),
    ("activation", "Activation"),
    ("autoUpgrade", "Automatic upgrade"),
    ("billingSince", "Billing since"),
];

impl Query {
    /// Whether `row` passes the search and the filter.
    pub fn matches(&self, row: &list::Row) -> bool {
        if !self.level.is_empty() && row.level != self.level {
            return false;
        }
        let haystack = format!(
            "{} {} {} {}",
            row.organization, row.name, row.namespace, row.distributor
        )
        .to_lowercase();
        self.q
            .to_lowercase()
            .split_whitespace()
            .all(|word| haystack.contains(word))
    }

    fn sort_key(&self, row: &list::Row) -> String {
        let text = match self.sort.as_str() {
            "name" => row.name.clone(),
            "distributor" => row.distributor.clone(),
            "level" => row.level.clone(),
            "expires" | "days" => row.expires_at.clone().unwrap_or_default(),
            "activation" => row.activation.clone(),
            "autoUpgrade" => row.auto_upgrade.clone(),
            "billingSince" => row.billing_since.clone().unwrap_or_default(),
            _ => row.organization.to_lowercase(),
        };
        text.to_lowercase()
    }

    pub fn descending(&self) -> bool {
        self.desc == "1"
    }

    /// The page asked for, from 1.
    pub fn page(&self) -> usize {
        self.page.parse().unwrap_or(1).max(1)
    }

    /// The same query on `page`, as a link.
    pub fn href(&self, page: usize) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        query
            .append_pair("q", &self.q)
            .append_pair("level", &self.level)
            .append_pair("sort", &self.sort)
            .append_pair("desc", &self.desc);
        if page > 1 {
            query.append_pair("page", &page.to_string());
        }
        format!("/?{}", query.finish())
    }

    /// The rows of `partners` that pass, sorted (ties by namespace and name).
    pub fn rows(
        &self,
        partners: &BTreeMap<Key, Partner>,
        distributors: &BTreeMap<String, Distributor>,
        now: DateTime<Utc>,
    ) -> Vec<PageRow> {
        let mut rows: Vec<(String, PageRow)> = partners
            .values()
            .map(|p| page_row(p, distributors.get(&p.spec.distributor_ref.name), now))
            .filter(|r| self.matches(&r.row))
            .map(|r| (self.sort_key(&r.row), r))
            .collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        if self.descending() {
            rows.reverse();
        }
        rows.into_iter().map(|(_, r)| r).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partner(name: &str, org: &str, level: &str) -> Partner {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "partner-operator.io/v1alpha1", "kind": "Partner",
            "metadata": {"name": name, "namespace": "partners"},
            "spec": {"organizationName": org, "notificationEmail": "a@b.example",
                "distributorRef": {"name": "northwind"}},
            "status": {"subscriptionLevel": level},
        }))
        .unwrap()
    }

    fn map(partners: Vec<Partner>) -> BTreeMap<Key, Partner> {
        partners
            .into_iter()
            .map(|p| {
                (
                    ("partners".to_string(), p.metadata.name.clone().unwrap()),
                    p,
                )
            })
            .collect()
    }

    #[test]
    fn search_filter_and_sort() {
        let partners = map(vec![
            partner("contoso", "Contoso IT", "Trial"),
            partner("fabrikam", "Fabrikam", "Production"),
            partner("adatum", "Adatum Contoso", "Trial"),
        ]);
        let now = Utc::now();
        let names = |q: Query| -> Vec<String> {
            q.rows(&partners, &BTreeMap::new(), now)
                .into_iter()
                .map(|r| r.row.name)
                .collect()
        };
        assert_eq!(names(Query::default()), ["adatum", "contoso", "fabrikam"]);
        let search = Query {
            q: "CONTOSO".into(),
            ..Query::default()
        };
        assert_eq!(names(search), ["adatum", "contoso"]);
        let trials_desc = Query {
            level: "Trial".into(),
            sort: "name".into(),
            desc: "1".into(),
            ..Query::default()
        };
        assert_eq!(names(trials_desc), ["contoso", "adatum"]);
        let rows = Query::default().rows(&partners, &BTreeMap::new(), now);
        assert!(rows[0].can_convert && !rows[2].can_convert);
        assert_eq!(rows[0].id, "row--partners--adatum");
    }
}
