//! The story so far, read from the status: every transition leaves a timestamp there.

use chrono::{DateTime, Utc};

use super::{Moment, status_of};
use crate::api::{
    BillingPeriod, EmailEvent, Partner, PartnerStatus, ProductionReason, SubscriptionLevel,
    chrono_time, find_condition, types,
};
use crate::plugin::dates::exact;

/// The story so far, oldest first.
pub fn history(partner: &Partner) -> Vec<Moment> {
    let status = status_of(partner);
    let mut story = vec![];
    let mut say = |at: DateTime<Utc>, what: String| story.push(Moment { at, what });
    onboarding(partner, &status, &mut say);
    notice(&status, &mut say);
    billing_periods(&status, &mut say);
    if status.subscription_level == Some(SubscriptionLevel::Expired)
        && status.production.is_none()
        && let Some(trial) = &status.trial
    {
        say(
            trial.ends_at,
            "trial ended without conversion: Expired, unbilled".into(),
        );
    }
    story.sort_by_key(|m| m.at);
    story
}

/// Created, bound (or not), provisioned, mailed its link, activated.
fn onboarding(
    partner: &Partner,
    status: &PartnerStatus,
    say: &mut impl FnMut(DateTime<Utc>, String),
) {
    let spec = &partner.spec;
    if let Some(created) = &partner.metadata.creation_timestamp {
        say(
            chrono_time(created),
            format!(
                "created: {} <{}>, for Distributor {}",
                spec.organization_name, spec.notification_email, spec.distributor_ref.name
            ),
        );
    }
    if let Some(bound) = find_condition(&status.conditions, types::DISTRIBUTOR_BOUND) {
        let at = chrono_time(&bound.last_transition_time);
        if bound.status == "True" {
            say(
                at,
                format!("bound to Distributor {}", spec.distributor_ref.name),
            );
        } else {
            say(
                at,
                format!("not bound: {}: {}", bound.reason, bound.message),
            );
        }
    }
    if let Some(tenant) = &status.tenant {
        let converted_by_hand = status.production.as_ref().filter(|p| {
            p.reason == crate::api::ProductionReason::Manual
                && status.trial.as_ref().is_some_and(|t| t.ends_at == p.since)
        });
        let trial = match (&status.trial, converted_by_hand) {
            // The conversion ended the trial early: its end is the conversion, not a plan.
            (Some(trial), Some(_)) => format!(
                "; a trial, ended early by the conversion at {}",
                exact(trial.ends_at)
            ),
            (Some(trial), None) => format!("; trial until {}", exact(trial.ends_at)),
            (None, _) => String::new(),
        };
        say(
            tenant.provisioned_at,
            format!("tenant {} provisioned{trial}", tenant.namespace),
        );
    }
    if let Some(activation) = &status.activation
        && let Some(sent) = activation.sent_at
    {
        let until = activation
            .link_expires_at
            .map(|at| format!(" (link valid until {})", exact(at)))
            .unwrap_or_default();
        say(
            sent,
            format!(
                "activation email sent to {}{until}",
                spec.notification_email
            ),
        );
    }
    if let Some(activated) = find_condition(&status.conditions, types::ACTIVATED)
        && activated.status == "True"
    {
        say(
            chrono_time(&activated.last_transition_time),
            "activated by the partner".into(),
        );
    }
}

/// The notice before the trial's end.
fn notice(status: &PartnerStatus, say: &mut impl FnMut(DateTime<Utc>, String)) {
    let Some(at) = status.upgrade_notice_sent_at else {
        return;
    };
    let ends = status
        .trial
        .as_ref()
        .map(|t| exact(t.ends_at))
        .unwrap_or_default();
    let expiry = status
        .emails
        .iter()
        .any(|e| e.event == EmailEvent::ExpiryNotice);
    let what = if expiry {
        format!("notice sent: the trial expires on {ends}")
    } else {
        format!("notice sent: the trial converts to Production on {ends}")
    };
    say(at, what);
}

/// Each billing period: how it started (the first: how Production was entered), and how it
/// ended.
fn billing_periods(status: &PartnerStatus, say: &mut impl FnMut(DateTime<Utc>, String)) {
    let Some(billing) = &status.billing else {
        return;
    };
    let periods = if billing.periods.is_empty() {
        vec![BillingPeriod {
            started_at: billing.started_at,
            ended_at: billing.ended_at,
        }]
    } else {
        billing.periods.clone()
    };
    let billed_to = &billing.billed_to;
    for (i, period) in periods.iter().enumerate() {
        let n = i + 1;
        let how = if i > 0 {
            "Production renewed"
        } else {
            match status.production.as_ref().map(|p| p.reason) {
                Some(ProductionReason::Imported) => "taken over in Production (imported)",
                _ if status.trial.is_none() => "started in Production (created as Production)",
                Some(ProductionReason::AutoUpgrade) => {
                    "converted to Production automatically at the trial's end (auto-upgrade)"
                }
                Some(ProductionReason::Manual) => "converted to Production by hand",
                Some(ProductionReason::Renewal) | None => "entered Production",
            }
        };
        say(
            period.started_at,
            format!("{how}; billing to {billed_to} starts (billing period {n})"),
        );
        if let Some(ended) = period.ended_at {
            let expired = status
                .emails
                .iter()
                .any(|e| e.event == EmailEvent::ProductionExpired && e.period as usize == i);
            let why = if expired {
                "Production expired at its expiration date"
            } else {
                "Production ended"
            };
            say(ended, format!("{why}; billing period {n} ended"));
        }
    }
}
