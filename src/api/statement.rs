//! `BillingStatement`: what a Distributor is billed for in one UTC calendar month, kept by the
//! operator. Partners' statuses say what is billed now; a statement says what was billed in a
//! month, and outlives the Partners it lists (a Partner deleted mid-month stays in it).
//!
//! The operator is the only author: it writes `spec` (there is no user intent here, only a
//! record). While the month runs the statement is kept up to date; once the month is over it is
//! closed (`spec.closed: true`) and admission refuses any change to its `spec` from then on (a
//! CEL transition rule, so both API servers enforce it). Deleting a statement is not refused:
//! keeping old months is the cluster administrator's choice.

// Each `printcolumn(...)` repeats the same keys, which clippy mistakes for duplicated attributes.
#![allow(clippy::duplicated_attributes)]

use chrono::{DateTime, NaiveDate, Utc};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// Partners one statement object lists at most; a month with more is split into parts.
pub const MAX_PARTNERS_PER_PART: usize = 5000;

/// Rule on `spec`: a closed statement never changes, and an open one never changes whose
/// month it is.
const CLOSED_RULE: &str = "oldSelf.closed ? self == oldSelf : (self.distributor == oldSelf.distributor && self.month == oldSelf.month && self.part == oldSelf.part)";

/// One Distributor's billing in one UTC calendar month (or one part of it: see `spec.part`).
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "partner-operator.io",
    version = "v1alpha1",
    kind = "BillingStatement",
    shortname = "stmt",
    category = "partner-operator",
    derive = "PartialEq",
    printcolumn(
        name = "Distributor",
        type_ = "string",
        json_path = ".spec.distributor"
    ),
    printcolumn(name = "Month", type_ = "string", json_path = ".spec.month"),
    printcolumn(
        name = "Part",
        type_ = "integer",
        json_path = ".spec.part",
        priority = "1"
    ),
    printcolumn(name = "Partners", type_ = "integer", json_path = ".spec.partnerCount"),
    printcolumn(name = "Seat-Days", type_ = "integer", json_path = ".spec.seatDays"),
    printcolumn(name = "Closed", type_ = "boolean", json_path = ".spec.closed"),
    printcolumn(
        name = "Counted-Through",
        type_ = "string",
        json_path = ".spec.countedThrough",
        priority = "1"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new(CLOSED_RULE)
    .message("spec: a closed BillingStatement cannot change (and spec.distributor, spec.month and spec.part never do)"))]
pub struct BillingStatementSpec {
    /// The Distributor billed (its name).
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = super::grammar::DNS_SUBDOMAIN_PATTERN)
    )]
    pub distributor: String,

    /// The UTC calendar month, `YYYY-MM`.
    #[schemars(
        length(min = 7, max = 7),
        regex(pattern = r"^[0-9]{4}-(0[1-9]|1[0-2])$")
    )]
    pub month: String,

    /// Which part of the month's statement this is (0, 1, ...): a month whose Partners would
    /// not fit in one object under the API server's size limit is split, each Partner in one
    /// part only. Totals are per part; the month's are their sums.
    #[schemars(range(min = 0, max = 1000))]
    #[serde(default)]
    pub part: u32,

    /// The month is over and the statement final: admission refuses any change from then on.
    #[serde(default)]
    pub closed: bool,

    /// When the statement was closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<DateTime<Utc>>,

    /// The last UTC day counted: a billing period still running counts up to this day
    /// (included). The month's last day once closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counted_through: Option<NaiveDate>,

    /// Partners listed in this part.
    #[schemars(range(min = 0, max = 100000))]
    #[serde(default)]
    pub partner_count: u32,

    /// Billed days summed over every SKU: a Partner billed 10 days with 2 SKUs counts 20.
    #[schemars(range(min = 0, max = 100000000))]
    #[serde(default)]
    pub seat_days: u32,

    /// Per SKU: the Partners billed at least one day with it, and their days summed.
    #[schemars(length(max = 1000))]
    #[serde(default)]
    pub totals: Vec<SkuTotal>,

    /// Every Partner billed at least one day of the month, by uid: one entry per Partner
    /// object, so a Partner deleted and created again under the same name is listed twice.
    #[schemars(length(max = 5000))]
    #[serde(default)]
    pub partners: Vec<StatementPartner>,
}

/// The days billed for one SKU.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SkuTotal {
    #[schemars(length(max = 64))]
    pub sku: String,
    #[schemars(range(min = 0, max = 100000))]
    pub partners: u32,
    /// Billed days summed over the Partners.
    #[schemars(range(min = 0, max = 100000000))]
    pub partner_days: u32,
}

/// One Partner's billing in the month.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StatementPartner {
    /// The Partner's `metadata.uid`.
    #[schemars(length(max = 128))]
    pub uid: String,
    #[schemars(length(max = 63))]
    pub namespace: String,
    #[schemars(length(max = 253))]
    pub name: String,
    /// `spec.organizationName` when last counted.
    #[schemars(length(max = 1024))]
    pub organization: String,
    /// The SKUs billed: each is billed `days` days (the Partner's `status.skus` when last
    /// counted; the API keeps no history of SKU changes).
    #[schemars(length(max = 100))]
    #[serde(default)]
    pub skus: Vec<String>,
    /// The UTC days of the month some billing period covers, each counted once.
    #[schemars(range(min = 0, max = 31))]
    pub days: u32,
    pub first_day: NaiveDate,
    pub last_day: NaiveDate,
    /// The billing periods the days come from, as the Partner recorded them (a period without
    /// `endedAt` was still running when last counted).
    #[schemars(length(max = 64))]
    #[serde(default)]
    pub periods: Vec<super::BillingPeriod>,
    /// The Partner was deleted: this entry is final.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
}
