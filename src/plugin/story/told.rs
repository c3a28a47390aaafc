//! What only the Events still tell. The status keeps the last activation email alone, so a
//! resend refused because the tenant was activated is told from the Partner's Events, for as
//! long as the API server keeps them (an hour, by kube-apiserver's default); so is the first
//! activation email, whose link a resend replaced, where an operator that recorded
//! `ActivationSent` Events sent it (this one tells it by the `ActivationSent` condition alone).

use chrono::{DateTime, Duration, Utc};

use super::{Moment, status_of};
use crate::api::Partner;
use crate::lifecycle::EventReason;

/// One Event of the Partner: when it was first seen, its reason and its message.
#[derive(Clone, Debug)]
pub struct Seen {
    pub first: DateTime<Utc>,
    pub reason: String,
    pub message: String,
}

/// The moments `events` tell that the status does not.
pub fn told_by_events(partner: &Partner, events: &[Seen]) -> Vec<Moment> {
    let last_sent = status_of(partner).activation.and_then(|a| a.sent_at);
    let mut told = vec![];
    for event in events {
        let reason = event.reason.as_str();
        // An email sent before the one the status records: its link was replaced since. A
        // second apart at least, as Event times and status times are rounded differently.
        let replaced = last_sent.is_some_and(|last| event.first < last - Duration::seconds(1));
        if reason == EventReason::ActivationSent.as_str() && replaced {
            told.push(Moment {
                at: event.first,
                what: format!("{} (the first link; a resend replaced it)", event.message),
            });
        } else if reason == EventReason::ResendRefused.as_str() {
            told.push(Moment {
                at: event.first,
                what: event.message.clone(),
            });
        }
    }
    told
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ActivationStatus, PartnerStatus};

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn the_first_email_and_a_refused_resend_are_told() {
        let mut partner = crate::lifecycle::fixtures::partner();
        partner.status = Some(PartnerStatus {
            activation: Some(ActivationStatus {
                sent_at: Some(at("2027-03-03T09:00:00Z")),
                ..ActivationStatus::default()
            }),
            ..PartnerStatus::default()
        });
        let seen = |first: &str, reason: &str, message: &str| Seen {
            first: at(first),
            reason: reason.into(),
            message: message.into(),
        };
        let events = [
            seen(
                "2027-03-01T09:00:00Z",
                "ActivationSent",
                "activation email sent to admin@contoso.example",
            ),
            // The resend's own email: the status tells it already.
            seen(
                "2027-03-03T09:00:00Z",
                "ActivationSent",
                "activation email sent to ops@contoso.example",
            ),
            seen(
                "2027-03-04T09:00:00Z",
                "ResendRefused",
                "spec.activation.resendRequest \"r2\" refused: the tenant was activated at 2027-03-03T10:00:00Z",
            ),
            seen(
                "2027-03-01T09:00:00Z",
                "TenantProvisioned",
                "tenant x provisioned",
            ),
        ];
        let told: Vec<(String, String)> = told_by_events(&partner, &events)
            .into_iter()
            .map(|m| (m.at.to_rfc3339(), m.what))
            .collect();
        assert_eq!(
            told,
            [
                (
                    "2027-03-01T09:00:00+00:00".to_string(),
                    "activation email sent to admin@contoso.example (the first link; a resend replaced it)"
                        .to_string()
                ),
                (
                    "2027-03-04T09:00:00+00:00".to_string(),
                    "spec.activation.resendRequest \"r2\" refused: the tenant was activated at 2027-03-03T10:00:00Z"
                        .to_string()
                ),
            ]
        );
    }
}
