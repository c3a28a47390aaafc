use chrono::Duration;

use super::super::fixtures::*;
use super::super::{Effect, Observation, plan, simulate};
use crate::api::{EmailEvent, PartnerStatus, SubscriptionLevel, types};
use crate::lifecycle::reasons::{self, EventReason};
use crate::tenant::{TENANT_OWNER_UID_LABEL, tenant_namespace_of};

/// A Partner onboarded at `t0`, converted by hand a day later: its status and its tenant's
/// `entitlements` as the operator left them.
fn onboarded() -> (
    crate::api::Partner,
    std::collections::BTreeMap<String, String>,
) {
    let d = distributor();
    let run = simulate(&observe(&partner(), &d, None, t0()), 12);
    let mut p = run.partner;
    p.spec.subscription.level = crate::api::RequestedLevel::Production;
    let run = simulate(
        &observe(&p, &d, run.entitlements.as_ref(), t0() + Duration::days(1)),
        12,
    );
    assert!(run.settled());
    (run.partner, run.entitlements.unwrap())
}

fn events(plan: &super::super::Plan) -> Vec<EventReason> {
    plan.effects
        .iter()
        .filter_map(|e| match e {
            Effect::Event(e) => Some(e.reason),
            _ => None,
        })
        .collect()
}

fn sends(plan: &super::super::Plan) -> usize {
    plan.effects
        .iter()
        .filter(|e| matches!(e, Effect::SendEmail(_) | Effect::DeliverWebhook(_)))
        .count()
}

#[test]
fn a_wiped_status_resumes_from_the_record_and_nothing_is_sent_again() {
    let (p, data) = onboarded();
    let before = p.status.clone().unwrap();
    let d = distributor();
    let later = t0() + Duration::days(2);
    for wiped in [
        None,
        Some(PartnerStatus {
            tenant: None,
            ..before.clone()
        }),
    ] {
        let mut restored = p.clone();
        restored.status = wiped;
        let obs = Observation {
            tenant_exists: true,
            ..observe(&restored, &d, Some(&data), later)
        };
        let first = plan(&obs);
        let status = &first.status;
        assert_eq!(
            status.subscription_level,
            Some(SubscriptionLevel::Production)
        );
        assert_eq!(status.tenant, before.tenant);
        assert_eq!(status.trial, before.trial);
        assert_eq!(status.production, before.production);
        assert_eq!(status.billing, before.billing);
        assert!(status.emails.iter().all(|e| e.sent_at.is_some()));
        assert_eq!(sends(&first), 0, "{:?}", first.effects);
        assert_eq!(events(&first), [EventReason::ResumedFromTenantRecord]);
        // Said once: the next plan over what was written takes nothing.
        let settled = simulate(&obs, 12);
        assert!(settled.settled());
        assert_eq!(
            settled
                .effects()
                .filter(|e| matches!(e, Effect::SendEmail(_)))
                .count(),
            0
        );
        let mut again = settled.partner.clone();
        again.metadata.generation = Some(2);
        let next = plan(&observe(&again, &d, settled.entitlements.as_ref(), later));
        assert!(events(&next).is_empty(), "{:?}", next.effects);
    }
}

#[test]
fn a_trial_start_moved_in_the_status_is_taken_back_from_the_record() {
    let d = distributor();
    let run = simulate(&observe(&partner(), &d, None, t0()), 12);
    let mut p = run.partner.clone();
    let status = p.status.as_mut().unwrap();
    status.trial.as_mut().unwrap().started_at = t0() + Duration::days(30);
    let resumed = plan(&observe(
        &p,
        &d,
        run.entitlements.as_ref(),
        t0() + Duration::days(1),
    ));
    let trial = resumed.status.trial.unwrap();
    assert_eq!(trial.started_at, t0());
    assert_eq!(trial.ends_at, t0() + Duration::days(14));
}

#[test]
fn a_restored_partner_keeps_its_tenant_and_waits_for_it_when_it_is_not_there() {
    let (p, data) = onboarded();
    let d = distributor();
    let mut restored = p.clone();
    restored
        .metadata
        .labels
        .get_or_insert_default()
        .insert(TENANT_OWNER_UID_LABEL.into(), "uid-1".into());
    restored.metadata.uid = Some("uid-2".into());
    restored.status = None;
    assert_eq!(tenant_namespace_of(&restored), tenant_namespace_of(&p));
    // Its tenant is there: resumed.
    let obs = Observation {
        tenant_exists: true,
        ..observe(&restored, &d, Some(&data), t0() + Duration::days(2))
    };
    let resumed = simulate(&obs, 12);
    assert!(resumed.settled());
    assert_eq!(
        resumed.partner.status.as_ref().unwrap().tenant,
        p.status.as_ref().unwrap().tenant
    );
    assert!(!resumed.effects().any(|e| matches!(e, Effect::SendEmail(_))));
    // Not yet: nothing is provisioned or mailed, and it is said once.
    let waiting = plan(&observe(&restored, &d, None, t0() + Duration::days(2)));
    assert_eq!(events(&waiting), [EventReason::AwaitingTenantRestore]);
    assert_eq!(waiting.effects.len(), 1, "{:?}", waiting.effects);
    assert!(waiting.status.tenant.is_none());
    assert_eq!(
        waiting.recheck_after,
        Some(std::time::Duration::from_secs(60))
    );
    let ready = crate::api::find_condition(&waiting.status.conditions, types::READY).unwrap();
    assert_eq!(ready.reason, reasons::AWAITING_TENANT_RESTORE);
    assert!(
        ready
            .message
            .contains(&format!("{TENANT_OWNER_UID_LABEL}-")),
        "{}",
        ready.message
    );
    let mut still = restored.clone();
    still.status = Some(waiting.status);
    let again = plan(&observe(&still, &d, None, t0() + Duration::days(2)));
    assert!(again.effects.is_empty(), "{:?}", again.effects);
    // A Partner that is not restored and has no record is onboarded as before.
    let new = plan(&observe(&partner(), &d, None, t0()));
    assert!(events(&new).contains(&EventReason::TenantProvisioned));
}

#[test]
fn a_record_the_controller_did_not_prove_is_not_there_for_the_plan() {
    // The controller drops a record that is not under the operator's proof before planning
    // (`tenant::record::verified`): the plan then onboards from the status it has.
    let (p, mut data) = onboarded();
    data.remove(crate::tenant::record::RECORD_KEY);
    let mut wiped = p.clone();
    wiped.status = None;
    let first = plan(&Observation {
        tenant_exists: true,
        ..observe(
            &wiped,
            &distributor(),
            Some(&data),
            t0() + Duration::days(2),
        )
    });
    assert!(!events(&first).contains(&EventReason::ResumedFromTenantRecord));
    assert!(
        first
            .status
            .emails
            .iter()
            .any(|e| e.event == EmailEvent::Activation)
    );
}
