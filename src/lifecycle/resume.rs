//! A Partner resumes from its tenant's lifecycle record ([`crate::tenant::record`]) whatever
//! its status lost: restored without status, restored with a new uid, a status emptied or
//! `tenant: null` written by somebody else. It never starts a second trial, never sends again
//! what was decided before, and never takes a second tenant.
//!
//! The record fills what the status lacks; where both have a fact, the status stands (it may be
//! newer: the record is written after it), except the tenant's provisioning and the trial's
//! start, which are set once and which a status writer would move to lengthen a trial.

use super::Flow;
use super::draft::{BoundDraft, Draft};
use super::reasons::{self, EventReason};
use crate::api::grammar::Zulu;
use crate::api::{SubscriptionLevel, find_condition, types};
use crate::tenant::{TENANT_OWNER_UID_LABEL, TenantRecord, is_restored, tenant_namespace_of};

/// How soon a Partner waiting for its tenant's restore looks again, should no event of its
/// tenant namespace or ConfigMap wake it.
const RESTORE_RECHECK: std::time::Duration = std::time::Duration::from_secs(60);

/// The record the observed tenant holds (proven when it was observed).
fn record<P>(d: &Draft<P>) -> Option<TenantRecord> {
    if !d.obs.tenant_exists {
        return None;
    }
    d.obs.entitlements.and_then(TenantRecord::read)
}

/// A Partner restored with a new uid whose status has no tenant and whose tenant holds no
/// record (not restored yet, or restored without its `entitlements`) would otherwise be
/// onboarded as new: a second trial and a second activation email to a partner who may be in
/// Production. It waits instead, and says how to go on.
pub(super) fn await_restore(d: &mut BoundDraft) -> Flow {
    if d.status.tenant.is_some() || !is_restored(d.partner) || record(d).is_some() {
        return Flow::Next;
    }
    let tenant = tenant_namespace_of(d.partner);
    let (namespace, name) = (
        d.partner.metadata.namespace.as_deref().unwrap_or_default(),
        d.partner.metadata.name.as_deref().unwrap_or_default(),
    );
    let missing = if d.obs.tenant_exists {
        format!("tenant namespace {tenant} holds no lifecycle record (its entitlements ConfigMap)")
    } else {
        format!("tenant namespace {tenant} is not there")
    };
    let message = format!(
        "restored from a backup (label {TENANT_OWNER_UID_LABEL} is not this Partner's uid) and \
         its {missing}: waiting for the tenant to be restored; nothing is provisioned or mailed. \
         To onboard it as a new partner instead: kubectl label partner -n {namespace} {name} \
         {TENANT_OWNER_UID_LABEL}-"
    );
    let said_before = find_condition(&d.before.conditions, types::READY)
        .is_some_and(|c| c.reason == reasons::AWAITING_TENANT_RESTORE);
    if !said_before {
        d.event(EventReason::AwaitingTenantRestore, message.clone());
    }
    for type_ in [types::TENANT_PROVISIONED, types::READY] {
        d.set_condition(type_, false, reasons::AWAITING_TENANT_RESTORE, &message);
    }
    d.recheck_after = Some(RESTORE_RECHECK);
    Flow::Stop
}

/// Whatever the status lacks that the tenant's record keeps is taken from the record, said
/// once in an Event (`ResumedFromTenantRecord`). First of all, bound or not: what the Partner
/// went through does not depend on its Distributor being there now.
pub(super) fn resume<P>(d: &mut Draft<P>) {
    let Some(TenantRecord(record)) = record(d) else {
        return;
    };
    let now = d.now;
    let status = &mut d.status;
    let mut taken: Vec<&str> = Vec::new();
    let mut take = |what: &'static str, lacking: bool| {
        if lacking {
            taken.push(what);
        }
        lacking
    };
    if take("tenant", status.tenant.is_none()) {
        status.tenant.clone_from(&record.tenant);
    }
    if let (Some(tenant), Some(recorded)) = (status.tenant.as_mut(), record.tenant.as_ref())
        && take(
            "tenant.provisionedAt",
            tenant.provisioned_at != recorded.provisioned_at,
        )
    {
        tenant.provisioned_at = recorded.provisioned_at;
    }
    match (status.trial.as_mut(), record.trial.as_ref()) {
        (None, Some(_)) => {
            take("trial", true);
            status.trial.clone_from(&record.trial);
        }
        (Some(trial), Some(recorded)) if trial.started_at != recorded.started_at => {
            take("trial.startedAt", true);
            trial.started_at = recorded.started_at;
        }
        _ => {}
    }
    let recorded_level = record.subscription_level.unwrap_or_default();
    if take(
        "level",
        d.level == SubscriptionLevel::Pending && recorded_level != SubscriptionLevel::Pending,
    ) {
        d.level = recorded_level;
    }
    if take(
        "expiresAt",
        status.expires_at.is_none() && record.expires_at.is_some(),
    ) {
        status.expires_at = record.expires_at;
    }
    resume_activation(status, &record, now, &mut take);
    if take(
        "upgradeNoticeSentAt",
        status.upgrade_notice_sent_at.is_none() && record.upgrade_notice_sent_at.is_some(),
    ) {
        status.upgrade_notice_sent_at = record.upgrade_notice_sent_at;
    }
    if take(
        "production",
        status.production.is_none() && record.production.is_some(),
    ) {
        status.production.clone_from(&record.production);
    }
    if take(
        "billing",
        status.billing.is_none() && record.billing.is_some(),
    ) {
        status.billing.clone_from(&record.billing);
    }
    let lost: Vec<_> = record
        .emails
        .iter()
        .filter(|e| !status.emails.iter().any(|s| s.message_id == e.message_id))
        .cloned()
        .collect();
    if take("emails", !lost.is_empty()) {
        // Decided before: taken as sent, never sent again (the record does not say when).
        status
            .emails
            .extend(lost.into_iter().map(|e| crate::api::EmailRecord {
                sent_at: Some(now),
                ..e
            }));
    }
    if !taken.is_empty() {
        let until = d
            .status
            .trial
            .as_ref()
            .filter(|_| d.level == SubscriptionLevel::Trial)
            .map(|t| format!(", trial started {}", t.started_at.zulu()))
            .unwrap_or_default();
        d.event(
            EventReason::ResumedFromTenantRecord,
            format!(
                "resumed from the tenant's record ({}): level {}{until}; nothing already sent \
                 is sent again",
                taken.join(", "),
                d.level
            ),
        );
    }
}

/// The activation: the record's when the status has none; its activation and last resend
/// handled when the status lacks them.
fn resume_activation(
    status: &mut crate::api::PartnerStatus,
    record: &crate::api::PartnerStatus,
    now: chrono::DateTime<chrono::Utc>,
    take: &mut impl FnMut(&'static str, bool) -> bool,
) {
    let Some(recorded) = record.activation.as_ref() else {
        return;
    };
    let Some(activation) = status.activation.as_mut() else {
        take("activation", true);
        status.activation = Some(crate::api::ActivationStatus {
            sent_at: recorded.message_id.as_ref().map(|_| now),
            ..recorded.clone()
        });
        return;
    };
    if take(
        "activation.activatedAt",
        activation.activated_at.is_none() && recorded.activated_at.is_some(),
    ) {
        activation.activated_at = recorded.activated_at;
    }
    if take(
        "activation.resendHandled",
        activation.resend_handled.is_none() && recorded.resend_handled.is_some(),
    ) {
        activation
            .resend_handled
            .clone_from(&recorded.resend_handled);
    }
}

#[cfg(test)]
#[path = "resume_tests.rs"]
mod tests;
