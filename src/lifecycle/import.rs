//! Partners that come from elsewhere: one onboarded by the distributor's existing portal or in
//! another cluster, taken over without an email (`spec.import`); and one that looks like a
//! rebuild from Git, held rather than onboarded as new.
//!
//! An import is read once, when the tenant is provisioned: the level it names starts then, its
//! `since` dates the trial (whose end follows the spec and the Distributor's policy, as any
//! trial's) or Production (billing to the Distributor starts with the import), and the emails
//! that would have told the partner so far count as sent elsewhere: the activation email (and
//! the Distributor's "activated" one, for a partner already activated) and a notice whose time
//! has passed. Nothing is mailed at the import; what comes later (a notice, a conversion) is.

use chrono::Duration;

use super::draft::{BoundDraft, ProvisionedDraft};
use super::reasons::{self, EventReason};
use super::{Flow, emails};
use crate::api::grammar::Zulu;
use crate::api::{
    ActivationStatus, EmailEvent, EmailFacts, ImportSpec, ProductionReason, ProductionStatus,
    RequestedLevel, SubscriptionLevel, TrialStatus, find_condition, types,
};

/// The import of a Partner whose tenant is being provisioned by this plan, if it has one.
pub(super) fn importing<'a>(d: &BoundDraft<'a>) -> Option<&'a ImportSpec> {
    d.partner.spec.import.as_ref()
}

/// Provisions an imported Partner at its level (the tenant itself is set by the caller): a
/// trial started at `since`, or Production since then with billing from now. Returns what to
/// say in the provisioning Event.
pub(super) fn take_over(d: &mut BoundDraft) -> Option<String> {
    let import = importing(d)?;
    let since = import.since.map_or(d.now, |at| at.min(d.now));
    match import.level {
        RequestedLevel::Trial => {
            d.level = SubscriptionLevel::Trial;
            d.status.trial = Some(TrialStatus {
                started_at: since,
                ends_at: since,
            });
        }
        RequestedLevel::Production => {
            d.level = SubscriptionLevel::Production;
            d.status.trial = None;
            d.status.production = Some(ProductionStatus {
                since,
                reason: ProductionReason::Imported,
            });
            d.status.expires_at = d
                .partner
                .spec
                .subscription
                .expiration_date
                .filter(|at| *at > d.now);
            super::production::start_billing(d, d.now);
        }
    }
    if import.activated {
        d.status
            .activation
            .get_or_insert_with(Default::default)
            .activated_at = Some(since);
    }
    Some(format!(
        "imported in {:?} since {}: nothing is mailed",
        import.level,
        since.zulu()
    ))
}

/// Right after an import, the emails that told the partner what it went through elsewhere
/// count as sent: never sent here.
pub(super) fn sent_elsewhere(d: &mut ProvisionedDraft) {
    let just_imported =
        d.before.tenant.is_none() && d.status.tenant.is_some() && d.partner.spec.import.is_some();
    if !just_imported {
        return;
    }
    let activated = d
        .status
        .activation
        .as_ref()
        .is_some_and(|a| a.activated_at.is_some());
    let mut events = vec![EmailEvent::Activation];
    if activated {
        events.push(EmailEvent::Activated);
    }
    if let Some(notice) = passed_notice(d) {
        events.push(notice);
    }
    for event in events {
        let first = d.status.emails.len();
        emails::record(d, event);
        let now = d.now;
        for record in &mut d.status.emails[first..] {
            record.sent_at = Some(now);
            record.facts = Some(EmailFacts::default());
        }
    }
    let message_id = d
        .status
        .emails
        .iter()
        .find(|e| e.event == EmailEvent::Activation)
        .map(|e| e.message_id.clone());
    let activation = d
        .status
        .activation
        .get_or_insert_with(ActivationStatus::default);
    activation.message_id = message_id;
    activation.sent_at = None;
}

/// The notice of a trial whose notice time has passed at the import.
fn passed_notice(d: &ProvisionedDraft) -> Option<EmailEvent> {
    let trial = d.running_trial()?;
    let policy = &d.distributor().spec.trial;
    let longest = trial.started_at + Duration::days(i64::from(policy.days));
    let subscription = &d.partner.spec.subscription;
    let ends_at = match (subscription.level, subscription.expiration_date) {
        (RequestedLevel::Trial, Some(date)) => date.clamp(trial.started_at, longest),
        _ => longest,
    };
    let notice_at = ends_at - Duration::days(i64::from(policy.upgrade_notice_days));
    (policy.upgrade_notice_days > 0 && d.now >= notice_at).then(|| {
        if d.partner.auto_upgrade(policy) {
            EmailEvent::UpgradeNotice
        } else {
            EmailEvent::ExpiryNotice
        }
    })
}

/// A Partner first seen (never changed since it was created) with no tenant and an
/// `expirationDate` in the past was not made to be onboarded now: it is what a re-apply of
/// manifests from Git into an empty cluster creates for a partner that was converted, renewed
/// or expired before. Onboarded, it would be mailed a new trial (or ended at once); it is held
/// instead, said in its conditions and an Event, until its spec changes (a new date, or
/// `spec.import` to take it over) or its tenant is restored.
pub(super) fn hold_suspected_rebuild(d: &mut BoundDraft) -> Flow {
    let first_seen = d.partner.metadata.generation == Some(1);
    let past = d
        .partner
        .spec
        .subscription
        .expiration_date
        .filter(|at| *at <= d.now);
    let (true, Some(date), None, None) = (first_seen, past, d.status.tenant.as_ref(), importing(d))
    else {
        return Flow::Next;
    };
    let (namespace, name) = (
        d.partner.metadata.namespace.as_deref().unwrap_or_default(),
        d.partner.metadata.name.as_deref().unwrap_or_default(),
    );
    let message = format!(
        "created with spec.subscription.expirationDate {} in the past and no tenant: this looks \
         like a rebuild from Git, not a new partner, so nothing is provisioned or mailed. \
         Restore its tenant namespace from a backup, or take it over without an email \
         (spec.import), or onboard it anew: kubectl patch partner -n {namespace} {name} \
         --type merge -p '{{\"spec\":{{\"subscription\":{{\"expirationDate\":null}}}}}}'",
        date.zulu()
    );
    let said_before = find_condition(&d.before.conditions, types::READY)
        .is_some_and(|c| c.reason == reasons::SUSPECTED_REBUILD);
    if !said_before {
        d.event(EventReason::SuspectedRebuild, message.clone());
    }
    for type_ in [types::TENANT_PROVISIONED, types::READY] {
        d.set_condition(type_, false, reasons::SUSPECTED_REBUILD, &message);
    }
    Flow::Stop
}

#[cfg(test)]
#[path = "import_tests.rs"]
mod tests;
