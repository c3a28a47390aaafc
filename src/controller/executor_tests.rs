//! The executor against an in-memory world: the order of effects, where it steps aside, and
//! what it records of each result.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use prometheus_client::metrics::gauge::Gauge;

use super::*;
use crate::api::{EmailRateLimit, PartnerStatus};
use crate::controller::mail_slots::MailSlots;
use crate::lifecycle::fixtures::{distributor, observe, partner, t0};
use crate::lifecycle::{ActivationToken, EventReason, WebhookSend};
use crate::mail::MailError;
use crate::metrics::Metrics;
use crate::status::Transacted;

/// The outside world in memory: the stored Partner, what each effect answers, and every call
/// in order.
struct Fake {
    stored: Mutex<Partner>,
    tenant: Tenant,
    mail: fn() -> Sending,
    calls: Mutex<Vec<String>>,
    metrics: Metrics,
}

impl Fake {
    fn new(stored: Partner) -> Self {
        Self {
            stored: Mutex::new(stored),
            tenant: Tenant::Owned("uid-1".into()),
            mail: || Sending::Sent,
            calls: Mutex::default(),
            metrics: Metrics::new(),
        }
    }

    fn call(&self, call: impl Into<String>) {
        self.calls.lock().unwrap().push(call.into());
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    fn stored_status(&self) -> PartnerStatus {
        self.stored
            .lock()
            .unwrap()
            .status
            .clone()
            .unwrap_or_default()
    }
}

impl Outside for Fake {
    fn now(&self) -> DateTime<Utc> {
        t0()
    }

    fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    fn partners(&self) -> Vec<Arc<Partner>> {
        vec![Arc::new(self.stored.lock().unwrap().clone())]
    }

    async fn read(&self, _: &Partner) -> kube::Result<Partner> {
        self.call("read");
        Ok(self.stored.lock().unwrap().clone())
    }

    async fn transact<T>(
        &self,
        partner: &mut Partner,
        _: Persistence,
        mut change: impl FnMut(&Partner, &mut PartnerStatus) -> T,
    ) -> kube::Result<Transacted<T>> {
        let mut stored = self.stored.lock().unwrap();
        let mut status = stored.status.clone().unwrap_or_default();
        let value = change(&stored, &mut status);
        let written = stored.status.as_ref() != Some(&status);
        if written {
            self.call("write status");
            stored.status = Some(status);
        }
        *partner = stored.clone();
        Ok(Transacted { value, written })
    }

    async fn make_tenant(&self, _: &Partner) -> Result<Tenant, Error> {
        self.call("make tenant");
        Ok(self.tenant.clone())
    }

    async fn ensure_tenant(
        &self,
        _: &Partner,
        restore: Option<&ActivationToken>,
        _: Option<&Tenant>,
    ) -> Result<Tenant, Error> {
        self.call(format!("ensure tenant (restore: {})", restore.is_some()));
        Ok(self.tenant.clone())
    }

    async fn store_activation(&self, _: &Partner, _: &ActivationToken) -> Result<Tenant, Error> {
        self.call("store activation");
        Ok(self.tenant.clone())
    }

    async fn send_email(&self, _: &Partner, email: &Email) -> Sending {
        self.call(format!("send {}", email.event.as_str()));
        (self.mail)()
    }

    fn deliver_webhook(&self, _: &Partner, send: &WebhookSend) {
        self.call(format!("deliver {}", send.record.id));
    }

    fn publish(&self, _: &Partner, event: &PartnerEvent) {
        self.call(format!("event {}", event.reason));
    }
}

/// One mail slot, no recipient limit.
fn pacing() -> Pacing {
    let (wake, _) = tokio::sync::mpsc::unbounded_channel();
    Pacing::new(MailSlots::new(1, 1, wake, Gauge::default()), 0)
}

/// The first plan of a new Partner, and the Partner with that plan's status stored.
fn first_plan() -> (Partner, Plan) {
    let (p, d) = (partner(), distributor());
    let plan = lifecycle::plan(&observe(&p, &d, None, t0()));
    let mut written = p;
    written.status = Some(plan.status.clone());
    (written, plan)
}

#[tokio::test]
async fn the_tenant_comes_first_then_a_fresh_read_then_the_token_then_the_email() {
    let (written, plan) = first_plan();
    let world = Fake::new(written.clone());
    let pacing = pacing();
    // From the cache: the tenant is written, and before anything is mailed the Partner is
    // read as stored and planned again.
    let mut pass = Pass::new(&written);
    let next = carry_out(&world, &pacing, &mut pass, &plan).await.unwrap();
    assert_eq!(next, Next::PlanAgain);
    assert_eq!(world.calls(), ["ensure tenant (restore: false)", "read"]);
    assert!(pass.fresh && pass.mail_slot.is_some());
    assert!(pass.entitlements_written.is_some());
    // Fresh: the token is stored right before its email; once it is accepted nothing else is
    // done before the next plan's write records it.
    let next = carry_out(&world, &pacing, &mut pass, &plan).await.unwrap();
    assert_eq!(next, Next::PlanAgain);
    assert_eq!(
        world.calls()[2..],
        [
            "ensure tenant (restore: false)",
            "store activation",
            "send activation",
        ]
    );
    let sent = pass.unrecorded.as_ref().expect("the delivery, to record");
    let (recorded, told) = sent.recorded_on(&pass.current);
    assert_eq!(recorded.status.unwrap().emails[0].sent_at, Some(t0()));
    assert_eq!(told.map(|e| e.reason), Some(EventReason::ActivationSent));
    assert_eq!(world.stored_status().emails[0].sent_at, None);
}

#[tokio::test]
async fn nothing_goes_into_a_tenant_name_someone_else_holds() {
    let (written, plan) = first_plan();
    let mut world = Fake::new(written.clone());
    world.tenant = Tenant::Taken;
    let mut pass = Pass::new(&written);
    pass.fresh = true;
    let next = carry_out(&world, &pacing(), &mut pass, &plan)
        .await
        .unwrap();
    assert_eq!(next, Next::PlanAgain);
    assert_eq!(world.calls(), ["ensure tenant (restore: false)"]);
    assert_eq!(pass.tenant_found, Some(Tenant::Taken));
    assert!(pass.entitlements_written.is_none());
}

#[tokio::test]
async fn without_a_free_mail_slot_the_partner_steps_aside_and_writes_nothing() {
    let (written, plan) = first_plan();
    let world = Fake::new(written.clone());
    let pacing = pacing();
    let other = ObjectRef::new("other").within("partners");
    let _held = pacing.mail_slot(&other, t0()).expect("the only slot");
    let mut pass = Pass::new(&written);
    pass.fresh = true;
    let next = carry_out(&world, &pacing, &mut pass, &plan).await.unwrap();
    assert_eq!(next, Next::Requeue(MAIL_SLOT_RETRY));
    assert_eq!(world.calls(), ["ensure tenant (restore: false)"]);
}

#[tokio::test]
async fn a_refusal_for_good_is_held_and_a_passing_failure_is_retried() {
    let (written, plan) = first_plan();
    let refused = || {
        Sending::Failed(MailError::Rejected {
            code: 550,
            message: "no such user".into(),
        })
    };
    let deferred = || {
        Sending::Failed(MailError::Deferred {
            code: 451,
            message: "try later".into(),
        })
    };
    let mut world = Fake::new(written.clone());
    world.mail = refused;
    let mut pass = Pass::new(&written);
    pass.fresh = true;
    let next = carry_out(&world, &pacing(), &mut pass, &plan)
        .await
        .unwrap();
    assert_eq!(next, Next::PlanAgain);
    assert!(world.calls().contains(&"event EmailRefused".to_string()));
    assert!(world.stored_status().emails[0].held.is_some());

    let mut world = Fake::new(written.clone());
    world.mail = deferred;
    let mut pass = Pass::new(&written);
    pass.fresh = true;
    let err = carry_out(&world, &pacing(), &mut pass, &plan).await;
    assert!(matches!(err, Err(Error::Mail { .. })), "{err:?}");
    assert!(
        world
            .calls()
            .contains(&format!("event {}", EventReason::EmailDeliveryFailed))
    );
    let status = world.stored_status();
    assert!(status.emails[0].held.is_none() && status.emails[0].sent_at.is_none());
}

#[tokio::test]
async fn an_email_over_its_distributors_rate_is_held_until_there_is_room() {
    let (written, plan) = first_plan();
    let world = Fake::new(written.clone());
    let pacing = pacing();
    let limit = EmailRateLimit {
        messages: 1,
        window_minutes: 60,
    };
    let email = plan
        .effects
        .iter()
        .find_map(|e| match e {
            Effect::SendEmail(email) => Some(email.clone()),
            _ => None,
        })
        .unwrap();
    let mut plan = plan;
    for effect in &mut plan.effects {
        if let Effect::SendEmail(email) = effect {
            email.rate_limit = limit;
        }
    }
    pacing
        .mail_rate
        .try_take(&email.distributor, limit, t0(), Vec::new)
        .unwrap();
    let mut pass = Pass::new(&written);
    pass.fresh = true;
    let next = carry_out(&world, &pacing, &mut pass, &plan).await.unwrap();
    assert_eq!(next, Next::PlanAgain);
    assert!(!world.calls().iter().any(|c| c.starts_with("send ")));
    assert!(
        world
            .calls()
            .contains(&"event EmailRateLimited".to_string())
    );
    let held = world.stored_status().emails[0].held.clone().unwrap();
    assert_eq!(held.until, Some(t0() + chrono::Duration::minutes(60)));
}

#[tokio::test]
async fn a_send_given_up_for_a_deletion_records_nothing_and_ends_the_pass() {
    let (written, plan) = first_plan();
    let mut world = Fake::new(written.clone());
    world.mail = || Sending::GivenUp;
    let mut pass = Pass::new(&written);
    pass.fresh = true;
    let next = carry_out(&world, &pacing(), &mut pass, &plan)
        .await
        .unwrap();
    assert_eq!(next, Next::Requeue(Duration::ZERO));
    assert!(!world.calls().contains(&"write status".to_string()));
    assert_eq!(world.stored_status().emails[0].sent_at, None);
}

#[tokio::test]
async fn events_and_webhooks_alone_write_nothing_and_a_next_pass_requeues_at_once() {
    let (written, _) = first_plan();
    let world = Fake::new(written.clone());
    let mut pass = Pass::new(&written);
    let quiet = Plan {
        status: written.status.clone().unwrap(),
        effects: vec![Effect::Event(PartnerEvent {
            reason: EventReason::TenantProvisioned,
            message: "told before".into(),
        })],
        next_review: None,
        recheck_after: None,
    };
    let next = carry_out(&world, &pacing(), &mut pass, &quiet)
        .await
        .unwrap();
    assert_eq!(next, Next::Done);
    assert!(world.calls().is_empty());
    let later = Plan {
        effects: vec![Effect::SendEmailsNextPass],
        ..quiet
    };
    let next = carry_out(&world, &pacing(), &mut pass, &later)
        .await
        .unwrap();
    assert_eq!(next, Next::Requeue(Duration::ZERO));
}
