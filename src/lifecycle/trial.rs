//! The trial: when it ends, what ends it, and the notice before.

use chrono::Duration;

use super::draft::ProvisionedDraft;
use super::reasons::EventReason;
use super::{emails, production};
use crate::api::grammar::Zulu;
use crate::api::{EmailEvent, RequestedLevel, SubscriptionLevel};

/// While in Trial its end follows the spec: `expirationDate` if the owner set one, else
/// `startedAt + trial.days` (so a changed Distributor policy moves running trials). Policy
/// bounds the date: a trial ends no later than `trial.days` after it started (the
/// Distributor's terms, whatever the Partner's author writes), and no earlier than it started
/// (an automatic upgrade would otherwise start Production and billing before the Partner
/// existed). A date moved into those bounds is said once, in a Warning.
pub(super) fn bound_end(d: &mut ProvisionedDraft) {
    let Some(mut trial) = d.running_trial().cloned() else {
        return;
    };
    let policy = &d.distributor().spec.trial;
    let longest = trial.started_at + Duration::days(i64::from(policy.days));
    let subscription = &d.partner.spec.subscription;
    trial.ends_at = match (subscription.level, subscription.expiration_date) {
        (RequestedLevel::Trial, Some(date)) => {
            let bounded = date.clamp(trial.started_at, longest);
            let moved = d.before.trial.as_ref().map(|t| t.ends_at) != Some(bounded);
            if bounded != date && moved {
                d.event(
                    EventReason::ExpirationDateLimited,
                    format!(
                        "spec.subscription.expirationDate {} lies outside the trial the \
                         Distributor grants ({} to {}, trial.days {}): the trial ends on {}",
                        date.zulu(),
                        trial.started_at.zulu(),
                        longest.zulu(),
                        policy.days,
                        bounded.zulu()
                    ),
                );
            }
            bounded
        }
        _ => longest,
    };
    d.status.trial = Some(trial);
}

/// Whether the trial converts to Production by itself at its end.
fn auto_upgrade(d: &ProvisionedDraft) -> bool {
    d.partner.auto_upgrade(&d.distributor().spec.trial)
}

/// A trial ends in one of three ways: converted by hand (`level: Production`, which beats
/// everything else that could happen to it), converted automatically at its end, or expired at
/// its end. Until then its end is a deadline.
pub(super) fn end_or_convert(d: &mut ProvisionedDraft) {
    let Some(ends_at) = d.running_trial().map(|trial| trial.ends_at) else {
        return;
    };
    if d.partner.spec.subscription.level == RequestedLevel::Production {
        production::convert_by_hand(d);
    }
    if d.level != SubscriptionLevel::Trial {
        return;
    }
    if d.now < ends_at {
        d.deadlines.push(ends_at);
        return;
    }
    if auto_upgrade(d) {
        production::convert(d, crate::api::ProductionReason::AutoUpgrade, ends_at);
    } else {
        d.level = SubscriptionLevel::Expired;
        emails::record(d, EmailEvent::TrialExpired);
        d.event(
            EventReason::TrialExpired,
            format!("trial ended on {} without conversion", ends_at.zulu()),
        );
    }
}

/// The notice: `upgradeNoticeDays` before the trial's end, one per trial (an upgrade notice
/// when it converts by itself, an expiry notice when not). A notice whose moment already passed
/// when the tenant was provisioned goes out at once; none once the trial ended.
pub(super) fn notice(d: &mut ProvisionedDraft) {
    let days = d.distributor().spec.trial.upgrade_notice_days;
    let Some(ends_at) = d.running_trial().map(|trial| trial.ends_at) else {
        return;
    };
    if days == 0 {
        return;
    }
    let noticed = d.status.emails.iter().any(|e| {
        matches!(
            e.event,
            EmailEvent::UpgradeNotice | EmailEvent::ExpiryNotice
        )
    });
    if noticed {
        return;
    }
    let notice_at = ends_at - Duration::days(i64::from(days));
    if d.now < notice_at {
        d.deadlines.push(notice_at);
        return;
    }
    let (event, message) = if auto_upgrade(d) {
        (
            EmailEvent::UpgradeNotice,
            format!("trial converts to Production on {}", ends_at.zulu()),
        )
    } else {
        (
            EmailEvent::ExpiryNotice,
            format!("trial expires on {}", ends_at.zulu()),
        )
    };
    emails::record(d, event);
    d.event(EventReason::TrialEndingSoon, message);
}
