//! The variables a template may use, and which of them each event needs.

use std::fmt;

use chrono::{DateTime, Utc};
use minijinja::context;

use crate::api::{DeletionPolicy, EmailEvent};

/// The activation link, which carries the tenant's one-time token.
///
/// Anyone holding the link can activate the tenant, so it is kept out of every log line,
/// `Debug` output and error message: `Debug` and `Display` print a placeholder, and the only
/// way to read the link is [`ActivationLink::expose`], which the templates use.
#[derive(Clone, PartialEq, Eq)]
pub struct ActivationLink(String);

impl ActivationLink {
    pub fn new(link: impl Into<String>) -> Self {
        Self(link.into())
    }

    /// The link itself, for the email body only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ActivationLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ActivationLink(<redacted>)")
    }
}

/// The variables a template may use. Which of the optional ones an event needs is fixed by
/// [`required_variables`]; the others may be unset (`none` in a template).
///
/// Every instant is told the same way, by [`instant`]: `12 December 2026 at 20:48 UTC` (the
/// template says "on" or "until" before it). The variables keep their historical names
/// (`trial_ends_on`, `expires_on`), so templates written for earlier versions still load.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EmailVars {
    /// `spec.organizationName` of the Partner (template variable `partner_organization`):
    /// partner-supplied, plain text in the text part, escaped in the HTML part.
    pub partner_organization: String,
    /// `spec.organizationName` of the Distributor (`distributor_organization`).
    pub distributor_organization: String,
    /// `metadata.name` of the Distributor (`distributor_name`).
    pub distributor_name: String,
    /// `tenant_id`.
    pub tenant_id: String,
    /// `tenant_namespace`.
    pub tenant_namespace: String,
    /// `activation_link`: needed by `activation`.
    pub activation_link: Option<ActivationLink>,
    /// `link_expires_at`: needed by `activation`.
    pub link_expires_at: Option<DateTime<Utc>>,
    /// `trial_ends_on`: needed by the notices and `trial-expired`; `activation` needs it or
    /// `production_since` (a Partner that starts in Production has no trial).
    pub trial_ends_at: Option<DateTime<Utc>>,
    /// `production_since`: needed by `converted` and `renewed`; set in an `activation` of a
    /// Partner that starts in Production.
    pub production_since: Option<DateTime<Utc>>,
    /// `expires_on`: the end of Production; needed by `production-expired`. Unset in
    /// Production means the subscription has no end date.
    pub expires_at: Option<DateTime<Utc>>,
    /// The distributor's public reply address (the Distributor's `spec.email.replyTo`), if it
    /// sets one: the message's `Reply-To`, so a partner who answers reaches the distributor
    /// (template variable `reply_to`). The `From` stays the operator's configured sender.
    pub reply_to: Option<String>,
    /// The Partner's `spec.tenant.deletionPolicy`: what becomes of the tenant and its data
    /// when the Partner is deleted (template variable `deletion_policy`, `"Delete"` or
    /// `"Retain"`). Told by the expiry emails.
    pub deletion_policy: DeletionPolicy,
    /// Whether this message is the distributor's copy of a partner notice (template variable
    /// `to_distributor`): the templates then say so before the partner's text.
    pub to_distributor: bool,
}

/// Stands for "one of these" in [`required_variables`].
const TRIAL_OR_PRODUCTION: &str = "trial_ends_on or production_since";

/// The optional variables an event's templates cannot do without. An entry
/// `"a or b"` is satisfied by either.
pub fn required_variables(event: EmailEvent) -> &'static [&'static str] {
    match event {
        EmailEvent::Activation => &["activation_link", "link_expires_at", TRIAL_OR_PRODUCTION],
        EmailEvent::UpgradeNotice | EmailEvent::ExpiryNotice | EmailEvent::TrialExpired => {
            &["trial_ends_on"]
        }
        EmailEvent::Converted => &["production_since"],
        EmailEvent::ProductionExpired => &["expires_on"],
        EmailEvent::Renewed => &["production_since"],
        EmailEvent::Activated => &[],
    }
}

/// How every email tells an instant: the date and the time of day in UTC, e.g.
/// `12 December 2026 at 20:48 UTC`.
pub fn instant(at: DateTime<Utc>) -> String {
    at.format("%-d %B %Y at %H:%M UTC").to_string()
}

impl EmailVars {
    /// The names of the variables `event` needs that are unset.
    pub(super) fn missing(&self, event: EmailEvent) -> Vec<&'static str> {
        required_variables(event)
            .iter()
            .copied()
            .filter(|name| match *name {
                "activation_link" => self.activation_link.is_none(),
                "link_expires_at" => self.link_expires_at.is_none(),
                "trial_ends_on" => self.trial_ends_at.is_none(),
                "production_since" => self.production_since.is_none(),
                "expires_on" => self.expires_at.is_none(),
                TRIAL_OR_PRODUCTION => {
                    self.trial_ends_at.is_none() && self.production_since.is_none()
                }
                _ => false,
            })
            .collect()
    }

    pub(super) fn context(&self) -> minijinja::Value {
        let policy = match self.deletion_policy {
            DeletionPolicy::Delete => "Delete",
            DeletionPolicy::Retain => "Retain",
        };
        context! {
            partner_organization => &self.partner_organization,
            distributor_organization => &self.distributor_organization,
            distributor_name => &self.distributor_name,
            tenant_id => &self.tenant_id,
            tenant_namespace => &self.tenant_namespace,
            activation_link => self.activation_link.as_ref().map(ActivationLink::expose),
            link_expires_at => self.link_expires_at.map(instant),
            trial_ends_on => self.trial_ends_at.map(instant),
            production_since => self.production_since.map(instant),
            expires_on => self.expires_at.map(instant),
            reply_to => &self.reply_to,
            deletion_policy => policy,
            to_distributor => self.to_distributor,
        }
    }

    /// A complete set of variables, to check at startup that every template renders.
    pub(super) fn sample() -> Self {
        let at = DateTime::<Utc>::from_timestamp(1_767_225_600, 0).unwrap_or_default();
        Self {
            partner_organization: "Example MSP".into(),
            distributor_organization: "Example Distribution".into(),
            distributor_name: "example".into(),
            tenant_id: "00000000-0000-0000-0000-000000000000".into(),
            tenant_namespace: "partners-example".into(),
            activation_link: Some(ActivationLink::new("https://example.invalid/activate")),
            link_expires_at: Some(at),
            trial_ends_at: Some(at),
            production_since: Some(at),
            expires_at: Some(at),
            reply_to: Some("partners@example.org".into()),
            deletion_policy: DeletionPolicy::Delete,
            to_distributor: false,
        }
    }

    /// The shapes of variables the lifecycle gives, so that startup renders every branch a
    /// template may take: a trial (no Production yet), Production with and without an end
    /// (no trial), either deletion policy, with and without a reply address, to the partner
    /// and to the distributor.
    pub(super) fn samples() -> [Self; 5] {
        let full = Self::sample();
        [
            Self {
                production_since: None,
                ..full.clone()
            },
            Self {
                trial_ends_at: None,
                deletion_policy: DeletionPolicy::Retain,
                ..full.clone()
            },
            Self {
                trial_ends_at: None,
                expires_at: None,
                reply_to: None,
                ..full.clone()
            },
            Self {
                to_distributor: true,
                ..full.clone()
            },
            full,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::templates::test_vars::at;

    #[test]
    fn instants_are_told_with_date_and_time_in_utc() {
        assert_eq!(
            instant(at("2026-12-12T20:48:37Z")),
            "12 December 2026 at 20:48 UTC"
        );
        assert_eq!(
            instant(at("2026-03-02T07:05:00+02:00")),
            "2 March 2026 at 05:05 UTC"
        );
    }
}
