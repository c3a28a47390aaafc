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
use chrono::{DateTime, Utc};

use crate::api::{
    ActivationStatus, EmailRecord, PartnerStatus, SubscriptionLevel, find_condition, types,
};
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
    let mut taken = Taken::default();
    resume_tenant_and_trial(&mut d.status, &record, &mut taken);
    let recorded_level = record.subscription_level.unwrap_or_default();
    if taken.take(
        "level",
        d.level == SubscriptionLevel::Pending && recorded_level != SubscriptionLevel::Pending,
    ) {
        d.level = recorded_level;
    }
    let status = &mut d.status;
    taken.fill("expiresAt", &mut status.expires_at, &record.expires_at);
    resume_activation(status, &record, d.now, &mut taken);
    taken.fill(
        "upgradeNoticeSentAt",
        &mut status.upgrade_notice_sent_at,
        &record.upgrade_notice_sent_at,
    );
    taken.fill("production", &mut status.production, &record.production);
    taken.fill("billing", &mut status.billing, &record.billing);
    resume_emails(status, &record, d.now, &mut taken);
    if taken.0.is_empty() {
        return;
    }
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
            "resumed from the tenant's record ({}): level {}{until}; nothing already sent is \
             sent again",
            taken.0.join(", "),
            d.level
        ),
    );
}

/// What a Partner took from its record, named as its Event says it.
#[derive(Default)]
struct Taken(Vec<&'static str>);

impl Taken {
    /// Notes `what` as taken when the status is `lacking` it; says whether it is.
    fn take(&mut self, what: &'static str, lacking: bool) -> bool {
        if lacking {
            self.0.push(what);
        }
        lacking
    }

    /// The recorded value of a field the status lacks.
    fn fill<T: Clone>(&mut self, what: &'static str, field: &mut Option<T>, recorded: &Option<T>) {
        if self.take(what, field.is_none() && recorded.is_some()) {
            field.clone_from(recorded);
        }
    }
}

/// The tenant and the trial. Their times are set once, so the record's always stand: a status
/// writer would move them to lengthen a trial.
fn resume_tenant_and_trial(status: &mut PartnerStatus, record: &PartnerStatus, taken: &mut Taken) {
    taken.fill("tenant", &mut status.tenant, &record.tenant);
    if let (Some(tenant), Some(recorded)) = (status.tenant.as_mut(), record.tenant.as_ref())
        && taken.take(
            "tenant.provisionedAt",
            tenant.provisioned_at != recorded.provisioned_at,
        )
    {
        tenant.provisioned_at = recorded.provisioned_at;
    }
    taken.fill("trial", &mut status.trial, &record.trial);
    if let (Some(trial), Some(recorded)) = (status.trial.as_mut(), record.trial.as_ref())
        && taken.take("trial.startedAt", trial.started_at != recorded.started_at)
    {
        trial.started_at = recorded.started_at;
    }
}

/// The emails the record holds and the status does not: decided before, so taken as sent and
/// never sent again (the record does not say when).
fn resume_emails(
    status: &mut PartnerStatus,
    record: &PartnerStatus,
    now: DateTime<Utc>,
    taken: &mut Taken,
) {
    let lost: Vec<_> = record
        .emails
        .iter()
        .filter(|e| !status.emails.iter().any(|s| s.message_id == e.message_id))
        .cloned()
        .collect();
    if taken.take("emails", !lost.is_empty()) {
        status.emails.extend(lost.into_iter().map(|e| EmailRecord {
            sent_at: Some(now),
            ..e
        }));
    }
}

/// The activation: the record's when the status has none; its activation and last resend
/// handled when the status lacks them.
fn resume_activation(
    status: &mut PartnerStatus,
    record: &PartnerStatus,
    now: DateTime<Utc>,
    taken: &mut Taken,
) {
    let Some(recorded) = record.activation.as_ref() else {
        return;
    };
    let Some(activation) = status.activation.as_mut() else {
        taken.take("activation", true);
        status.activation = Some(ActivationStatus {
            sent_at: recorded.message_id.as_ref().map(|_| now),
            ..recorded.clone()
        });
        return;
    };
    taken.fill(
        "activation.activatedAt",
        &mut activation.activated_at,
        &recorded.activated_at,
    );
    taken.fill(
        "activation.resendHandled",
        &mut activation.resend_handled,
        &recorded.resend_handled,
    );
}

#[cfg(test)]
#[path = "resume_tests.rs"]
mod tests;
