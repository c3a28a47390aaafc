//! `Partner`: a managed service provider onboarded as a tenant of a distributor.

// Each `printcolumn(...)` repeats the same keys, which clippy mistakes for duplicated attributes.
#![allow(clippy::duplicated_attributes)]

use chrono::{DateTime, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::Sku;

/// A partner of a distributor, with its tenant and subscription.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "partner-operator.io",
    version = "v1alpha1",
    kind = "Partner",
    namespaced,
    shortname = "ptr",
    category = "partner-operator",
    status = "PartnerStatus",
    derive = "PartialEq",
    printcolumn(
        name = "Organization",
        type_ = "string",
        json_path = ".spec.organizationName"
    ),
    printcolumn(
        name = "Distributor",
        type_ = "string",
        json_path = ".spec.distributorRef.name"
    ),
    printcolumn(
        name = "Level",
        type_ = "string",
        json_path = ".status.subscriptionLevel"
    ),
    // A date column would show the time since the expiry, which kubectl prints as `<invalid>`
    // for a future date; the timestamp itself says what a reader wants to know.
    printcolumn(name = "Expires", type_ = "string", json_path = ".status.expiresAt"),
    // Empty until the partner activates; before Ready, so Ready and Age stay the last two.
    printcolumn(
        name = "Activated",
        type_ = "string",
        json_path = ".status.activation.activatedAt"
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
pub struct PartnerSpec {
    /// Legal name of the partner, as it appears in emails. 1..256 characters, no control
    /// characters.
    #[schemars(schema_with = "super::organization_name_schema")]
    pub organization_name: String,

    /// Where the partner receives its activation link and notices.
    #[schemars(schema_with = "super::email_schema")]
    pub notification_email: String,

    /// The distributor this partner is onboarded under and billed to. Immutable.
    #[x_kube(validation = kube::core::Rule::new("self == oldSelf")
        .message("spec.distributorRef is immutable"))]
    pub distributor_ref: DistributorRef,

    /// The subscription the owner asks for.
    #[serde(default)]
    pub subscription: Subscription,

    /// What becomes of the tenant.
    #[serde(default)]
    pub tenant: TenantPolicy,

    /// Requests about the activation link.
    #[serde(default, skip_serializing_if = "ActivationRequest::is_empty")]
    pub activation: ActivationRequest,

    /// A partner onboarded elsewhere (the distributor's existing portal, another cluster)
    /// that the operator takes over without an email: read once, when its tenant is
    /// provisioned, and owned by the operator from then on. Cannot be changed or removed once
    /// set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new("self == oldSelf")
        .message("spec.import cannot be changed once set"))]
    pub import: Option<ImportSpec>,
}

/// What a partner onboarded elsewhere already has (see `spec.import`). The trial's end, or the
/// end of Production, is `spec.subscription.expirationDate`, as for any Partner.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ImportSpec {
    /// `Trial` or `Production`.
    pub level: RequestedLevel,
    /// When its trial started, or when it entered Production; default: the import. A date in
    /// the future counts as the import.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
    /// Whether it already activated its tenant. Either way no activation email is sent at the
    /// import (`spec.activation.resendRequest` sends one).
    #[serde(default)]
    pub activated: bool,
}

/// Requests about the activation link, made declaratively.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ActivationRequest {
    /// A request for a new activation link: any new value (an RFC 3339 timestamp, say) asks the
    /// operator to issue a new token, which replaces the previous one (its link stops working),
    /// and to email it to `notificationEmail`. The value last handled is in
    /// `status.activation.resendHandled`. Refused once the tenant is activated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub resend_request: Option<String>,
}

impl ActivationRequest {
    fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// Reference to a cluster-scoped `Distributor`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DistributorRef {
    /// Name of the Distributor.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = super::grammar::DNS_SUBDOMAIN_PATTERN)
    )]
    pub name: String,
}

/// The lowest subscription level the owner asks for, and when it ends.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    /// `Trial` (default) or `Production`. The operator never downgrades; going back from
    /// `Production` to `Trial` is rejected.
    #[serde(default)]
    #[x_kube(validation = kube::core::Rule::new("!(oldSelf == 'Production' && self == 'Trial')")
        .message("spec.subscription.level cannot go back from Production to Trial"))]
    pub level: RequestedLevel,

    /// Whether the trial converts to Production when it ends. Default: the Distributor's
    /// `spec.trial.autoUpgrade`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_upgrade: Option<bool>,

    /// When the current level ends: the end of the trial while in Trial, the end of Production
    /// after a conversion by hand (must then lie in the future).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration_date: Option<DateTime<Utc>>,
}

/// A level an owner can ask for.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
pub enum RequestedLevel {
    #[default]
    Trial,
    Production,
}

/// What becomes of the tenant.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TenantPolicy {
    /// `Delete` (default) removes the tenant namespace with the Partner; `Retain` keeps it.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

/// What happens to the tenant when its Partner is deleted.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
pub enum DeletionPolicy {
    #[default]
    Delete,
    Retain,
}

/// The level the tenant actually has.
#[derive(
    Serialize,
    Deserialize,
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    schemars::JsonSchema,
)]
pub enum SubscriptionLevel {
    /// Not bound to a distributor yet: nothing provisioned, mailed or billed.
    #[default]
    Pending,
    Trial,
    Production,
    Expired,
}

impl std::fmt::Display for SubscriptionLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Pending => "Pending",
            Self::Trial => "Trial",
            Self::Production => "Production",
            Self::Expired => "Expired",
        })
    }
}

/// What the operator observed and did for a partner.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PartnerStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// The level the tenant has: `Pending`, `Trial`, `Production` or `Expired`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_level: Option<SubscriptionLevel>,

    /// The provisioned tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<TenantStatus>,

    /// SKUs inherited from the Distributor, kept in step with it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skus: Vec<Sku>,

    /// The trial, once the tenant was provisioned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial: Option<TrialStatus>,

    /// End of the current level, when there is one (the trial's end while in Trial).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,

    /// The activation email.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activation: Option<ActivationStatus>,

    /// When the trial-ending notice was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrade_notice_sent_at: Option<DateTime<Utc>>,

    /// How and when the tenant entered Production.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub production: Option<ProductionStatus>,

    /// Billing to the distributor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billing: Option<BillingStatus>,

    /// Every email the lifecycle decided to send, recorded before it is sent (so a crash between
    /// deciding and sending resends the same message, never a second one) and marked sent once
    /// the SMTP server accepted it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub emails: Vec<EmailRecord>,

    /// The lifecycle events recorded for the Distributor's webhook endpoints that some endpoint
    /// does not have yet, oldest first (an event leaves once every endpoint has it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub webhooks: Vec<super::WebhookRecord>,

    /// When the operator found the Partner deleted and recorded the events that tell it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<DateTime<Utc>>,

    /// `Ready`, `DistributorBound`, `TenantProvisioned`, `ActivationSent`, `Activated`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// The tenant provisioned for a partner.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantStatus {
    /// Stable tenant id (a UUID).
    pub id: String,
    /// The tenant's namespace.
    pub namespace: String,
    /// When the tenant was provisioned; the trial starts then.
    pub provisioned_at: DateTime<Utc>,
}

/// The trial window.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrialStatus {
    pub started_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
}

/// The activation email.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActivationStatus {
    /// When the SMTP server accepted the message; unset while it is only intended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<DateTime<Utc>>,
    /// The message's deterministic `Message-ID`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// When the activation link stops working.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_expires_at: Option<DateTime<Utc>>,
    /// When the partner activated its tenant through the emailed link (written by the
    /// operator's activation service under its own field manager, `partner-operator-activation`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activated_at: Option<DateTime<Utc>>,
    /// The `spec.activation.resendRequest` handled last: a new link was sent for it, or it was
    /// refused because the tenant is activated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resend_handled: Option<String>,
}

/// How the tenant entered Production.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProductionStatus {
    pub since: DateTime<Utc>,
    pub reason: ProductionReason,
}

/// Why the tenant is in Production.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum ProductionReason {
    /// The owner set `spec.subscription.level: Production`.
    Manual,
    /// The trial ended with `autoUpgrade` on.
    AutoUpgrade,
    /// An expired Production subscription was given a new `expirationDate` in the future.
    Renewal,
    /// Taken over in Production from elsewhere (`spec.import`).
    Imported,
}

/// Billing of a partner to its distributor: the current (or last) billing period, and every
/// period so far.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BillingStatus {
    /// The Distributor billed.
    pub billed_to: String,
    /// When the current (or last) billing period started: the moment of entering Production,
    /// or of a renewal.
    pub started_at: DateTime<Utc>,
    /// When the current (or last) billing period ended, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<DateTime<Utc>>,
    /// Every billing period, oldest first; the last is the current one. A period never
    /// changes once it ended.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub periods: Vec<BillingPeriod>,
}

impl BillingStatus {
    /// The current billing period ends at `at`, unless it ended already.
    pub fn end(&mut self, at: DateTime<Utc>) {
        self.ended_at.get_or_insert(at);
        if let Some(period) = self.periods.last_mut() {
            period.ended_at.get_or_insert(at);
        }
    }
}

/// One stretch of Production billed to the Distributor.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BillingPeriod {
    pub started_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<DateTime<Utc>>,
}

/// An email event of a Partner's lifecycle. Each happens at most once per Partner, except
/// `Renewed` and `ProductionExpired`, once per billing period.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, schemars::JsonSchema)]
pub enum EmailEvent {
    /// The activation link, once the tenant is provisioned.
    Activation,
    /// Before the trial ends, when it will convert to Production.
    UpgradeNotice,
    /// Before the trial ends, when it will expire.
    ExpiryNotice,
    /// The tenant entered Production.
    Converted,
    /// The trial ended without conversion.
    TrialExpired,
    /// The Production subscription reached its expiration date.
    ProductionExpired,
    /// An expired Production subscription was renewed.
    Renewed,
    /// The partner activated its tenant (to the distributor).
    Activated,
}

impl EmailEvent {
    /// Stable kebab-case name: part of the Message-ID, the event header and outbox file names.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Activation => "activation",
            Self::UpgradeNotice => "upgrade-notice",
            Self::ExpiryNotice => "expiry-notice",
            Self::Converted => "converted",
            Self::TrialExpired => "trial-expired",
            Self::ProductionExpired => "production-expired",
            Self::Renewed => "renewed",
            Self::Activated => "activated",
        }
    }
}

/// One email decided by the lifecycle.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EmailRecord {
    pub event: EmailEvent,
    /// Who the message goes to: each recipient gets a message of their own. Unset on records
    /// written before that, whose one message went to the partner and the distributor together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient: Option<Recipient>,
    /// The billing period the email belongs to (0, the first, is not written): a renewal and
    /// the end of a renewed subscription are emailed once per period.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub period: u32,
    /// Deterministic `Message-ID`, derived from the Partner's uid, the event and the period.
    pub message_id: String,
    /// When the SMTP server accepted it; unset while it is only intended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<DateTime<Utc>>,
    /// Why the last attempt failed, while it is unsent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// The dates the email tells, as they were when it was decided: a copy sent again after a
    /// crash says what the first said, whatever changed since.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facts: Option<EmailFacts>,
    /// Why the email is held back on purpose, while it is unsent (`lastError` says it in
    /// words). Unlike a failed delivery, a held email is not retried with backoff.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<EmailHold>,
}

/// Who one message goes to.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum Recipient {
    /// The Partner's `notificationEmail`.
    Partner,
    /// The Distributor's `notificationEmail`.
    Distributor,
}

/// Why an email waits.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EmailHold {
    pub reason: EmailHoldReason,
    /// For `RateLimited`: when the Distributor's limit has room again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
    /// For `Refused`: the Partner's and the Distributor's `metadata.generation` when the SMTP
    /// server refused it; it is tried again once either spec changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partner_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distributor_generation: Option<i64>,
}

/// The reasons an email is held back.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum EmailHoldReason {
    /// The Distributor's `spec.email.rateLimit` is reached: it goes out when there is room.
    RateLimited,
    /// The recipient's domain is not in the Distributor's `spec.email.allowedRecipientDomains`.
    RecipientNotAllowed,
    /// The SMTP server refused it for good (a 5xx reply): tried again when a spec changes.
    Refused,
}

/// The dates an email tells.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EmailFacts {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial_ends_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub production_since: Option<DateTime<Utc>>,
    /// The end of Production: when billing ended, else the current level's end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_expires_at: Option<DateTime<Utc>>,
}

impl Partner {
    /// Whether its trial converts to Production by itself at its end: its own
    /// `subscription.autoUpgrade`, else its Distributor's `trial.autoUpgrade` (`policy`).
    pub fn auto_upgrade(&self, policy: &super::TrialPolicy) -> bool {
        self.spec
            .subscription
            .auto_upgrade
            .unwrap_or(policy.auto_upgrade)
    }

    /// A Partner that carries only `metadata`: what stands in the operator's cache, index and
    /// Events for one whose body cannot be read ([`super::Decoded::Unreadable`]), so it can be
    /// taken out of them and named. Nothing reconciles it.
    pub fn placeholder(
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    ) -> Self {
        Self {
            metadata,
            spec: PartnerSpec {
                organization_name: String::new(),
                notification_email: String::new(),
                distributor_ref: DistributorRef {
                    name: String::new(),
                },
                import: None,
                subscription: Subscription::default(),
                tenant: TenantPolicy::default(),
                activation: ActivationRequest::default(),
            },
            status: None,
        }
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}
