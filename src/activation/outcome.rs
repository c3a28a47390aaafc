//! What an activation request came to, and how it is told: a status, a JSON word and
//! message, an HTML page.

use std::time::Duration;

use axum::http::StatusCode;
use chrono::{DateTime, Utc};

use super::page::{Brand, Page};

/// What a request came to.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Outcome {
    Activated(Names, DateTime<Utc>),
    AlreadyActivated(Names, DateTime<Utc>),
    /// The page of a link that may activate (GET only).
    MayActivate(Names, Option<DateTime<Utc>>),
    Expired(Names),
    Superseded(Names),
    Unknown,
    RateLimited(Duration),
    /// The API server failed; nothing was decided.
    Unavailable,
}

/// Who the page names: the partner's organization, and the distributor as its branding
/// presents it.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct Names {
    pub(super) organization: String,
    /// The distributor's display name (its organization name when it sets none).
    pub(super) distributor: String,
    pub(super) branding: crate::api::Branding,
}

impl Outcome {
    pub(super) fn status(&self) -> StatusCode {
        match self {
            Self::Activated(..) | Self::MayActivate(..) => StatusCode::OK,
            Self::AlreadyActivated(..) => StatusCode::CONFLICT,
            Self::Expired(_) | Self::Superseded(_) => StatusCode::GONE,
            Self::Unknown => StatusCode::NOT_FOUND,
            Self::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The machine-readable word for it (JSON `status`, the page's `data-outcome`).
    pub(super) fn word(&self) -> &'static str {
        match self {
            Self::Activated(..) => "activated",
            Self::AlreadyActivated(..) => "already-activated",
            Self::MayActivate(..) => "valid",
            Self::Expired(_) => "expired",
            Self::Superseded(_) => "superseded",
            Self::Unknown => "unknown",
            Self::RateLimited(_) => "rate-limited",
            Self::Unavailable => "unavailable",
        }
    }

    /// The failure reason counted in `activation_failures`, for a refused POST.
    pub(super) fn failure(&self) -> Option<&'static str> {
        match self {
            Self::Activated(..) | Self::MayActivate(..) | Self::RateLimited(_) => None,
            Self::AlreadyActivated(..) => Some("already_activated"),
            Self::Expired(_) => Some("expired"),
            Self::Superseded(_) => Some("superseded"),
            Self::Unknown => Some("unknown"),
            Self::Unavailable => Some("error"),
        }
    }

    pub(super) fn message(&self) -> String {
        match self {
            Self::Activated(..) => "the tenant is activated".into(),
            Self::AlreadyActivated(_, at) => {
                format!("the tenant was activated already, at {}", rfc3339(*at))
            }
            Self::MayActivate(..) => "the link is valid: POST to it to activate".into(),
            Self::Expired(_) => {
                "the activation link has expired: ask the distributor for a new one".into()
            }
            Self::Superseded(_) => {
                "a newer activation link replaced this one: use the link of the most recent \
                 activation email"
                    .into()
            }
            Self::Unknown => "no tenant with this id and token".into(),
            Self::RateLimited(wait) => format!(
                "too many requests: try again in {} seconds",
                wait.as_secs().max(1)
            ),
            Self::Unavailable => "the service cannot decide now: try again shortly".into(),
        }
    }

    pub(super) fn page(&self) -> Page {
        let (title, paragraphs, form) = self.texts();
        Page {
            outcome: self.word(),
            title,
            paragraphs,
            form,
            brand: self.names().map(Brand::of),
        }
    }

    /// The names the outcome knows, when it knows the tenant.
    fn names(&self) -> Option<&Names> {
        match self {
            Self::Activated(n, _)
            | Self::AlreadyActivated(n, _)
            | Self::MayActivate(n, _)
            | Self::Expired(n)
            | Self::Superseded(n) => Some(n),
            Self::Unknown | Self::RateLimited(_) | Self::Unavailable => None,
        }
    }

    /// The page's title, paragraphs, and whether it offers the Activate button. The page
    /// speaks to the person who opened the link, for the partner they act for.
    fn texts(&self) -> (String, Vec<String>, bool) {
        match self {
            Self::MayActivate(n, expires) => (
                "Activate your tenant".to_string(),
                vec![
                    format!(
                        "Your tenant with {} is ready for {}: activate it to start using it.",
                        n.distributor, n.organization
                    ),
                    match expires {
                        Some(at) => format!(
                            "This link works once, until {}. Nothing changes until you press \
                             Activate.",
                            instant(*at)
                        ),
                        None => {
                            "This link works once. Nothing changes until you press Activate.".into()
                        }
                    },
                ],
                true,
            ),
            Self::Activated(n, _) => (
                "Your tenant is activated".into(),
                vec![format!(
                    "You activated your tenant with {} for {}. You can close this page.",
                    n.distributor, n.organization
                )],
                false,
            ),
            Self::AlreadyActivated(n, at) => (
                "Your tenant is already activated".into(),
                vec![format!(
                    "Your tenant with {} for {} was activated on {}. There is nothing more to do.",
                    n.distributor,
                    n.organization,
                    instant(*at)
                )],
                false,
            ),
            Self::Expired(n) => (
                "This link has expired".into(),
                vec![format!("Ask {} for a new activation link.", n.distributor)],
                false,
            ),
            Self::Superseded(n) => (
                "This link was replaced".into(),
                vec![format!(
                    "{} sent you a newer activation link: use the one in the most recent email.",
                    n.distributor
                )],
                false,
            ),
            Self::Unknown => (
                "This link is not valid".into(),
                vec!["Check that you opened the whole link from the activation email.".into()],
                false,
            ),
            Self::RateLimited(_) => (
                "Too many attempts".into(),
                vec!["Wait a minute, then try again.".into()],
                false,
            ),
            Self::Unavailable => (
                "Please try again".into(),
                vec!["The activation service cannot answer now. Try again in a minute.".into()],
                false,
            ),
        }
    }
}

impl Brand {
    fn of(names: &Names) -> Self {
        Self {
            name: names.distributor.clone(),
            logo_url: names.branding.logo_url.clone(),
            support_email: names.branding.support_email.clone(),
            support_url: names.branding.support_url.clone(),
        }
    }
}

/// An instant as Kubernetes writes one: `2027-03-01T09:00:00Z`.
pub(super) fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// An instant as the emails tell it: `12 December 2026 at 20:48 UTC`.
fn instant(at: DateTime<Utc>) -> String {
    at.format("%-d %B %Y at %H:%M UTC").to_string()
}
