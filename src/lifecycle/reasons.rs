//! Every reason the operator gives: the reasons of its conditions, and the reasons of the
//! Events it records, each with its severity.

/// Reasons of `Ready=False` (and of the condition that failed), first missing thing first.
pub const DISTRIBUTOR_NOT_FOUND: &str = "DistributorNotFound";
pub const NAMESPACE_NOT_ALLOWED: &str = "NamespaceNotAllowed";
pub const TENANT_NAMESPACE_TAKEN: &str = "TenantNamespaceTaken";
/// A Partner restored with a new uid whose tenant (or the tenant's record) is not there yet:
/// nothing is provisioned or mailed until it is restored, or the Partner is onboarded anew.
pub const AWAITING_TENANT_RESTORE: &str = "AwaitingTenantRestore";
/// A Partner first seen with an `expirationDate` in the past and no tenant: held as a likely
/// rebuild from Git rather than onboarded (see `lifecycle::import`).
pub const SUSPECTED_REBUILD: &str = "SuspectedRebuild";
pub const PROVISIONING: &str = "Provisioning";
pub const ACTIVATION_PENDING: &str = "ActivationPending";
pub const EMAIL_DELIVERY_FAILED: &str = "EmailDeliveryFailed";
/// The Distributor's `spec.email.rateLimit` is reached: the email waits for room.
pub const EMAIL_RATE_LIMITED: &str = "EmailRateLimited";
/// The partner's address is outside the Distributor's `spec.email.allowedRecipientDomains`.
pub const RECIPIENT_NOT_ALLOWED: &str = "RecipientNotAllowed";
/// The SMTP server refused the email for good: not retried until a spec changes.
pub const EMAIL_REFUSED: &str = "EmailRefused";
pub const EXPIRED: &str = "Expired";
pub const EXPIRATION_DATE_IN_PAST: &str = "ExpirationDateInPast";

/// Reasons of `Activated=False`: the link is out, or it expired.
pub const AWAITING_ACTIVATION: &str = "AwaitingActivation";
pub const ACTIVATION_LINK_EXPIRED: &str = "ActivationLinkExpired";

/// Reasons of conditions that hold.
pub const BOUND: &str = "Bound";
pub const PROVISIONED: &str = "Provisioned";
pub const SENT: &str = "Sent";
pub const READY: &str = "Ready";
/// `Activated=True`; `ResendRefused` while the last resend request was refused (the tenant is
/// activated).
pub const ACTIVATED: &str = "Activated";
pub const RESEND_REFUSED: &str = "ResendRefused";
/// A Distributor's `Ready`: its counts and billing are current.
pub const COUNTS_CURRENT: &str = "CountsCurrent";
/// A deleted Partner's `Ready=False`: it is kept until its webhook events are delivered.
pub const WEBHOOKS_PENDING: &str = "WebhooksPending";
/// A Distributor's `WebhooksDelivered`: every endpoint has every event recorded for it, or
/// what it lacks is being delivered without a failure.
pub const WEBHOOKS_CURRENT: &str = "WebhooksCurrent";
/// A Distributor's `WebhooksDelivered=False`: an endpoint's deliveries fail and are retried.
pub const WEBHOOK_DELIVERY_FAILING: &str = "WebhookDeliveryFailing";

/// Why an Event was recorded on a Partner (or, for the webhook endpoints' health, on a
/// Distributor). Its name is the Event's `reason`; a Warning is
/// something a person should look at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventReason {
    TenantProvisioned,
    TenantNamespaceTaken,
    ActivationSent,
    EmailDeliveryFailed,
    EmailRateLimited,
    RecipientNotAllowed,
    EmailRefused,
    TrialEndingSoon,
    ConvertedToProduction,
    BillingStarted,
    BillingEnded,
    TrialExpired,
    ProductionExpired,
    ProductionEndedUnbound,
    ProductionRenewed,
    ExpirationDateInPast,
    ExpirationDateLimited,
    TenantDeprovisioned,
    TenantRetained,
    /// The status lacked what the tenant's lifecycle record keeps (a restore, a status wiped):
    /// taken from the record, nothing sent again.
    ResumedFromTenantRecord,
    /// A restored Partner waits for its tenant (see [`AWAITING_TENANT_RESTORE`]).
    AwaitingTenantRestore,
    /// A Partner held as a likely rebuild from Git (see [`SUSPECTED_REBUILD`]).
    SuspectedRebuild,
    /// The partner activated its tenant through the emailed link.
    Activated,
    /// A resend request came after the tenant was activated.
    ResendRefused,
    /// The operator cannot decode the Partner.
    Unreadable,
    /// A webhook delivery failed for the first time; it is retried with backoff.
    WebhookDeliveryFailed,
    /// A webhook event was given up on for an endpoint: retried for `retryHours`, or its
    /// endpoint is no longer listed.
    WebhookAbandoned,
    /// On a Distributor: an endpoint's deliveries fail (they are retried).
    WebhookDeliveryFailing,
    /// On a Distributor: every endpoint has its events again.
    WebhookDeliveryRecovered,
    /// A record in `status.webhooks` matched no transition of the Partner (someone else wrote
    /// it): dropped, never sent.
    WebhookRecordRejected,
}

impl EventReason {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::TenantProvisioned => "TenantProvisioned",
            Self::TenantNamespaceTaken => "TenantNamespaceTaken",
            Self::ActivationSent => "ActivationSent",
            Self::EmailDeliveryFailed => "EmailDeliveryFailed",
            Self::EmailRateLimited => "EmailRateLimited",
            Self::RecipientNotAllowed => "RecipientNotAllowed",
            Self::EmailRefused => "EmailRefused",
            Self::TrialEndingSoon => "TrialEndingSoon",
            Self::ConvertedToProduction => "ConvertedToProduction",
            Self::BillingStarted => "BillingStarted",
            Self::BillingEnded => "BillingEnded",
            Self::TrialExpired => "TrialExpired",
            Self::ProductionExpired => "ProductionExpired",
            Self::ProductionEndedUnbound => "ProductionEndedUnbound",
            Self::ProductionRenewed => "ProductionRenewed",
            Self::ExpirationDateInPast => "ExpirationDateInPast",
            Self::ExpirationDateLimited => "ExpirationDateLimited",
            Self::TenantDeprovisioned => "TenantDeprovisioned",
            Self::TenantRetained => "TenantRetained",
            Self::ResumedFromTenantRecord => "ResumedFromTenantRecord",
            Self::AwaitingTenantRestore => "AwaitingTenantRestore",
            Self::SuspectedRebuild => "SuspectedRebuild",
            Self::Activated => "Activated",
            Self::ResendRefused => "ResendRefused",
            Self::Unreadable => "Unreadable",
            Self::WebhookDeliveryFailed => "WebhookDeliveryFailed",
            Self::WebhookAbandoned => "WebhookAbandoned",
            Self::WebhookDeliveryFailing => "WebhookDeliveryFailing",
            Self::WebhookDeliveryRecovered => "WebhookDeliveryRecovered",
            Self::WebhookRecordRejected => "WebhookRecordRejected",
        }
    }

    /// Whether the Event says an email is newly held back (counted in
    /// `partner_operator_emails_held_total`).
    pub const fn holds_email(self) -> bool {
        matches!(
            self,
            Self::EmailRateLimited | Self::RecipientNotAllowed | Self::EmailRefused
        )
    }

    /// Whether the Event is recorded as a Kubernetes Event. An onboarding's steps
    /// (`TenantProvisioned`, `ActivationSent`) are told by the conditions of the same names and
    /// by the status (when, to whom, which link); recorded as Events too, they were two of the
    /// eight writes each onboarding cost the API server, whose budget is six, Events included
    /// (docs/performance.md). Everything else (a transition a person may act on, billing, a
    /// warning) is recorded.
    pub const fn is_recorded(self) -> bool {
        !matches!(self, Self::TenantProvisioned | Self::ActivationSent)
    }

    /// Whether the Event is a Warning: something failed, was refused, or ended without the
    /// Partner's choice.
    pub const fn is_warning(self) -> bool {
        matches!(
            self,
            Self::TenantNamespaceTaken
                | Self::AwaitingTenantRestore
                | Self::SuspectedRebuild
                | Self::EmailDeliveryFailed
                | Self::EmailRateLimited
                | Self::RecipientNotAllowed
                | Self::EmailRefused
                | Self::TrialExpired
                | Self::ProductionEndedUnbound
                | Self::ExpirationDateInPast
                | Self::ExpirationDateLimited
                | Self::ResendRefused
                | Self::Unreadable
                | Self::WebhookDeliveryFailed
                | Self::WebhookAbandoned
                | Self::WebhookDeliveryFailing
                | Self::WebhookRecordRejected
        )
    }
}

impl std::fmt::Display for EventReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_are_what_failed_was_refused_or_ended_unasked() {
        use EventReason::*;
        for reason in [
            TenantNamespaceTaken,
            AwaitingTenantRestore,
            SuspectedRebuild,
            EmailDeliveryFailed,
            TrialExpired,
            ProductionEndedUnbound,
            ExpirationDateInPast,
            ExpirationDateLimited,
            ResendRefused,
            Unreadable,
        ] {
            assert!(reason.is_warning(), "{reason}");
        }
        for reason in [
            TenantProvisioned,
            ActivationSent,
            TrialEndingSoon,
            ConvertedToProduction,
            BillingStarted,
            BillingEnded,
            ProductionExpired,
            TenantDeprovisioned,
            TenantRetained,
            ResumedFromTenantRecord,
            Activated,
        ] {
            assert!(!reason.is_warning(), "{reason}");
        }
    }

    #[test]
    fn an_onboarding_is_told_by_its_conditions_and_the_rest_by_events() {
        use EventReason::*;
        assert!(!TenantProvisioned.is_recorded());
        assert!(!ActivationSent.is_recorded());
        for reason in [
            BillingStarted,
            ConvertedToProduction,
            TrialExpired,
            Activated,
            EmailDeliveryFailed,
            TenantDeprovisioned,
        ] {
            assert!(reason.is_recorded(), "{reason}");
        }
    }
}
