//! `Distributor`: the software distributor that partners are onboarded under and billed to.

// Each `printcolumn(...)` repeats the same keys, which clippy mistakes for duplicated attributes.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// A distributor: who partners are billed to, which SKUs they get, and how their trial runs.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "partner-operator.io",
    version = "v1alpha1",
    kind = "Distributor",
    shortname = "dist",
    category = "partner-operator",
    status = "DistributorStatus",
    derive = "PartialEq",
    printcolumn(
        name = "Organization",
        type_ = "string",
        json_path = ".spec.organizationName"
    ),
    printcolumn(name = "SKUs", type_ = "string", json_path = ".spec.skus"),
    printcolumn(
        name = "Trial",
        type_ = "integer",
        json_path = ".status.partners.trial"
    ),
    printcolumn(
        name = "Production",
        type_ = "integer",
        json_path = ".status.partners.production"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct DistributorSpec {
    /// Legal name of the distributor, as it appears in emails. 1..256 characters, no control
    /// characters.
    #[schemars(schema_with = "super::organization_name_schema")]
    pub organization_name: String,

    /// Where the distributor receives trial-ending notices.
    #[schemars(schema_with = "super::email_schema")]
    pub notification_email: String,

    /// Products every partner of this distributor is entitled to, and billed for once in
    /// Production. 1..100 unique codes such as `ESSENTIALS`.
    #[schemars(length(min = 1, max = 100))]
    #[x_kube(validation = kube::core::Rule::new("self.all(x, self.exists_one(y, y == x))")
        .message("spec.skus must not contain duplicates"))]
    pub skus: Vec<Sku>,

    /// Namespaces whose Partners may bind to this distributor. When unset, namespaces labelled
    /// `partner-operator.io/distributor=<this distributor's name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::selector::label_selector_schema")]
    pub partner_namespaces: Option<LabelSelector>,

    /// How the trial of a new partner runs. The notice comes before the end: `upgradeNoticeDays`
    /// is less than `days` (or 0, no notice).
    #[serde(default)]
    #[x_kube(validation = kube::core::Rule::new("self.upgradeNoticeDays == 0 || self.upgradeNoticeDays < self.days")
        .message("spec.trial.upgradeNoticeDays must be less than spec.trial.days (or 0 for no notice)"))]
    pub trial: TrialPolicy,

    /// How partners are sent their activation link.
    #[serde(default)]
    pub activation: ActivationPolicy,

    /// What may be mailed on this distributor's behalf: a rate limit, the domains partners'
    /// addresses may be in, and an optional public Reply-To.
    #[serde(default)]
    pub email: EmailPolicy,

    /// Where this distributor's systems are told of each partner's lifecycle: signed
    /// CloudEvents, delivered at least once, in order per partner.
    #[serde(default)]
    pub webhooks: super::WebhookPolicy,

    /// How the activation page presents this distributor to its partners: a name, a logo and
    /// where to ask for help.
    #[serde(default, skip_serializing_if = "Branding::is_empty")]
    pub branding: Branding,
}

/// What the activation page shows of the distributor. Every field is optional: without them
/// the page names the distributor by `organizationName` and offers no contact.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Branding {
    /// The name partners know the distributor or its product by, shown as the page's heading
    /// (default: `organizationName`). Same rules as `organizationName`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::organization_name_schema")]
    pub display_name: Option<String>,

    /// A logo shown at the top of the page, at a fixed size (at most 160 by 48 pixels). The
    /// partner's browser loads it; the operator never fetches it. `https://` only, without a
    /// user part, quotes, angle brackets or a backslash, at most 2048 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048), regex(pattern = r#"^https://[^\s@\\"'<>]+$"#))]
    pub logo_url: Option<String>,

    /// Where partners write for help, shown on every page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::email_schema")]
    pub support_email: Option<String>,

    /// A support page, shown on every page. `https://` only, the same rules as `logoUrl`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048), regex(pattern = r#"^https://[^\s@\\"'<>]+$"#))]
    pub support_url: Option<String>,
}

impl Branding {
    fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

impl Distributor {
    /// A Distributor that carries only `metadata`: what stands in the operator's cache and
    /// Events for one whose spec cannot be read ([`super::Decoded::Unreadable`]), so it can be
    /// taken out of the cache and named. Nothing reconciles it.
    pub fn placeholder(
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    ) -> Self {
        Self {
            metadata,
            spec: DistributorSpec {
                organization_name: String::new(),
                notification_email: String::new(),
                skus: Vec::new(),
                partner_namespaces: None,
                trial: TrialPolicy::default(),
                activation: ActivationPolicy::default(),
                email: EmailPolicy::default(),
                webhooks: super::WebhookPolicy::default(),
                branding: Branding::default(),
            },
            status: None,
        }
    }
}

/// A product code, such as `ESSENTIALS`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(transparent)]
pub struct Sku(pub String);

impl schemars::JsonSchema for Sku {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Sku".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "maxLength": 64,
            "pattern": "^[A-Z0-9][A-Z0-9_-]{0,63}$",
        })
    }
}

impl std::fmt::Display for Sku {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The trial every new partner gets.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TrialPolicy {
    /// Length of the trial, in days (1..365). Default 14.
    #[serde(default = "default_trial_days")]
    #[schemars(range(min = 1, max = 365))]
    pub days: u32,

    /// How many days before the trial ends the distributor and the partner are emailed
    /// (0..365; 0 sends no notice). Default 3.
    #[serde(default = "default_upgrade_notice_days")]
    #[schemars(range(min = 0, max = 365))]
    pub upgrade_notice_days: u32,

    /// Whether a trial converts to Production when it ends, for Partners that do not say.
    /// Default true.
    #[serde(default = "default_true")]
    pub auto_upgrade: bool,
}

impl Default for TrialPolicy {
    fn default() -> Self {
        Self {
            days: default_trial_days(),
            upgrade_notice_days: default_upgrade_notice_days(),
            auto_upgrade: true,
        }
    }
}

/// How activation links are made.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ActivationPolicy {
    /// Page the activation link points to (`<baseUrl>?tenant=<id>&token=<token>`). When unset,
    /// the operator's `--activation-base-url`. `https://` only (the token must not travel in
    /// clear), without a user part (`https://portal.example@evil.example/` would be mailed as
    /// is) or a backslash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048), regex(pattern = r"^https://[^\s?#@\\]+$"))]
    pub base_url: Option<String>,

    /// How long an activation link stays valid, in days (1..90). Default 7.
    #[serde(default = "default_link_validity_days")]
    #[schemars(range(min = 1, max = 90))]
    pub link_validity_days: u32,
}

impl Default for ActivationPolicy {
    fn default() -> Self {
        Self {
            base_url: None,
            link_validity_days: default_link_validity_days(),
        }
    }
}

/// Limits on the mail sent on a distributor's behalf, so that Partners (whose authors choose
/// the recipient) cannot turn it against third parties.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct EmailPolicy {
    /// At most this many emails in any window; an email over the limit waits for a place
    /// (visibly: a condition reason, an Event and a metric) and is never dropped.
    #[serde(default)]
    pub rate_limit: EmailRateLimit,

    /// When set, a partner's `notificationEmail` must be in one of these domains (compared
    /// case-insensitively, whole domain: a subdomain is listed on its own). An email to any
    /// other address waits until the list or the address changes. Up to 1000 domains, each
    /// listed once (a set: admission refuses a duplicate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1000), extend("x-kubernetes-list-type" = "set"))]
    pub allowed_recipient_domains: Option<Vec<RecipientDomain>>,

    /// A public address partners may answer to (`Reply-To`). When unset, emails carry no
    /// `Reply-To`, so no partner learns the distributor's `notificationEmail`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::email_schema")]
    pub reply_to: Option<String>,
}

/// At most `messages` emails in any `windowMinutes`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct EmailRateLimit {
    /// Emails (each recipient's message counts) in one window (1..1000000). Default 500.
    #[serde(default = "default_rate_limit_messages")]
    #[schemars(range(min = 1, max = 1_000_000))]
    pub messages: u32,

    /// The window's length in minutes (1..10080, a week). Default 60.
    #[serde(default = "default_rate_limit_window_minutes")]
    #[schemars(range(min = 1, max = 10_080))]
    pub window_minutes: u32,
}

impl Default for EmailRateLimit {
    fn default() -> Self {
        Self {
            messages: default_rate_limit_messages(),
            window_minutes: default_rate_limit_window_minutes(),
        }
    }
}

impl EmailRateLimit {
    pub fn window(&self) -> chrono::Duration {
        chrono::Duration::minutes(i64::from(self.window_minutes))
    }
}

/// A mail domain such as `contoso.example`: host name labels, no IP literal.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(transparent)]
pub struct RecipientDomain(pub String);

impl schemars::JsonSchema for RecipientDomain {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "RecipientDomain".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "maxLength": 253,
            "pattern": super::grammar::DOMAIN_PATTERN,
        })
    }
}

impl EmailPolicy {
    /// Whether `address` may be mailed: its domain is listed, or no list is set.
    pub fn allows(&self, address: &str) -> bool {
        let Some(domains) = &self.allowed_recipient_domains else {
            return true;
        };
        let domain = address.rsplit_once('@').map_or("", |(_, domain)| domain);
        domains.iter().any(|d| d.0.eq_ignore_ascii_case(domain))
    }
}

fn default_rate_limit_messages() -> u32 {
    500
}
fn default_rate_limit_window_minutes() -> u32 {
    60
}
fn default_trial_days() -> u32 {
    14
}
fn default_upgrade_notice_days() -> u32 {
    3
}
fn default_link_validity_days() -> u32 {
    7
}
fn default_true() -> bool {
    true
}

/// What the operator observed about a distributor and its partners.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DistributorStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// `Ready`: the spec is valid and the counts are current.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,

    /// Bound partners by subscription level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partners: Option<PartnerCounts>,

    /// What the distributor is billed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billing: Option<DistributorBilling>,
}

/// Bound partners by subscription level.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PartnerCounts {
    pub pending: u32,
    pub trial: u32,
    pub production: u32,
    pub expired: u32,
}

/// Billing totals of a distributor.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DistributorBilling {
    /// Partners in Production, billed to this distributor.
    pub production_partners: u32,
    /// Production partners per SKU.
    #[serde(default)]
    pub seats: BTreeMap<String, u32>,
}

/// How one Partner counts in its Distributor's status: by its level and, in Production, by its
/// SKUs. A Partner counts only while bound to the Distributor, except a Pending one (it waits to
/// be bound). The Partner reconciler compares a Partner's count before and after a pass, and
/// asks for a recount only when it moved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Counted {
    Pending,
    Trial,
    Production(Vec<Sku>),
    Expired,
    /// Not bound, and past Pending.
    Not,
}

impl Counted {
    pub fn of(status: &crate::api::PartnerStatus) -> Self {
        use crate::api::SubscriptionLevel;
        let bound =
            crate::api::is_condition_true(&status.conditions, crate::api::types::DISTRIBUTOR_BOUND);
        match status.subscription_level.unwrap_or_default() {
            SubscriptionLevel::Pending => Self::Pending,
            _ if !bound => Self::Not,
            SubscriptionLevel::Trial => Self::Trial,
            SubscriptionLevel::Production => Self::Production(status.skus.clone()),
            SubscriptionLevel::Expired => Self::Expired,
        }
    }
}

/// A Distributor's counts: its Partners by level, and Production Partners per SKU. Every SKU
/// the Distributor offers is listed (0 when none is in Production), so a seat count that drops
/// to 0 reads 0 and does not vanish.
pub fn distributor_totals<'a>(
    offered: &[Sku],
    partners: impl IntoIterator<Item = &'a crate::api::PartnerStatus>,
) -> (PartnerCounts, DistributorBilling) {
    let mut counts = PartnerCounts::default();
    let mut billing = DistributorBilling {
        production_partners: 0,
        seats: offered.iter().map(|sku| (sku.0.clone(), 0)).collect(),
    };
    for status in partners {
        match Counted::of(status) {
            Counted::Pending => counts.pending += 1,
            Counted::Trial => counts.trial += 1,
            Counted::Production(skus) => {
                counts.production += 1;
                billing.production_partners += 1;
                for sku in skus {
                    *billing.seats.entry(sku.0).or_default() += 1;
                }
            }
            Counted::Expired => counts.expired += 1,
            Counted::Not => {}
        }
    }
    (counts, billing)
}
