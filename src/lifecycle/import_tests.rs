use chrono::Duration;

use super::super::fixtures::*;
use super::super::{Effect, simulate};
use crate::api::{EmailEvent, ImportSpec, ProductionReason, RequestedLevel, SubscriptionLevel};
use crate::lifecycle::reasons::EventReason;

fn imported(level: RequestedLevel, since_days_ago: i64, activated: bool) -> crate::api::Partner {
    let mut p = partner();
    p.spec.import = Some(ImportSpec {
        level,
        since: Some(t0() - Duration::days(since_days_ago)),
        activated,
    });
    p
}

fn mailed(run: &crate::lifecycle::Simulation) -> Vec<EmailEvent> {
    run.effects()
        .filter_map(|e| match e {
            Effect::SendEmail(email) => Some(email.event),
            _ => None,
        })
        .collect()
}

fn events(run: &crate::lifecycle::Simulation) -> Vec<EventReason> {
    run.effects()
        .filter_map(|e| match e {
            Effect::Event(event) => Some(event.reason),
            _ => None,
        })
        .collect()
}

#[test]
fn an_imported_trial_keeps_its_start_and_is_not_mailed_what_it_was_told_elsewhere() {
    let d = distributor();
    // Twelve days into a fourteen-day trial: its notice time (three days before) has passed.
    let run = simulate(
        &observe(&imported(RequestedLevel::Trial, 12, false), &d, None, t0()),
        12,
    );
    assert!(run.settled());
    let status = run.partner.status.clone().unwrap();
    assert_eq!(status.subscription_level, Some(SubscriptionLevel::Trial));
    let trial = status.trial.clone().unwrap();
    assert_eq!(trial.started_at, t0() - Duration::days(12));
    assert_eq!(trial.ends_at, t0() + Duration::days(2));
    assert!(mailed(&run).is_empty(), "{:?}", mailed(&run));
    let told: Vec<_> = status.emails.iter().map(|e| e.event).collect();
    assert!(told.contains(&EmailEvent::Activation) && told.contains(&EmailEvent::UpgradeNotice));
    assert!(status.emails.iter().all(|e| e.sent_at == Some(t0())));
    assert_eq!(status.activation.unwrap().activated_at, None);
    // What comes after the import is mailed: the conversion at the trial's end.
    let later = simulate(
        &observe(
            &run.partner,
            &d,
            run.entitlements.as_ref(),
            t0() + Duration::days(2),
        ),
        12,
    );
    assert_eq!(
        mailed(&later),
        [EmailEvent::Converted, EmailEvent::Converted]
    );
}

#[test]
fn an_imported_production_partner_is_billed_from_the_import_and_keeps_its_activation() {
    let d = distributor();
    let run = simulate(
        &observe(
            &imported(RequestedLevel::Production, 100, true),
            &d,
            None,
            t0(),
        ),
        12,
    );
    assert!(run.settled());
    let status = run.partner.status.clone().unwrap();
    assert_eq!(
        status.subscription_level,
        Some(SubscriptionLevel::Production)
    );
    let production = status.production.clone().unwrap();
    assert_eq!(production.reason, ProductionReason::Imported);
    assert_eq!(production.since, t0() - Duration::days(100));
    assert_eq!(status.billing.unwrap().started_at, t0());
    assert_eq!(
        status.activation.unwrap().activated_at,
        Some(t0() - Duration::days(100))
    );
    assert!(status.trial.is_none());
    assert!(mailed(&run).is_empty(), "{:?}", mailed(&run));
    assert_eq!(
        events(&run),
        [EventReason::TenantProvisioned, EventReason::BillingStarted]
    );
}
