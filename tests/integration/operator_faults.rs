//! The operator under restarts and failures: a restart over settled Partners costs nothing, an
//! SMTP outage or a refused address is reported and retried, and API faults never duplicate an
//! email.

use crate::support;

use std::time::Duration;

use partner_sandbox::apiserver::FaultRule;
use partner_sandbox::smtp::ReceivedEmail;
use support::*;

crate::on_both_servers!(
    a_restart_over_settled_partners_writes_and_mails_nothing,
    an_smtp_outage_is_reported_then_delivered_exactly_once,
    a_refused_address_stops_only_its_own_partner,
    partners_waiting_for_a_mail_slot_are_each_mailed_once,
    an_activation_email_resent_after_an_unconfirmed_send_is_the_same_email,
);

/// Partners `p00`, `p01`, ... of northwind, applied together and waited for until Ready.
async fn onboard(h: &Harness, count: usize) -> Vec<String> {
    let names: Vec<String> = (0..count).map(|i| format!("p{i:02}")).collect();
    for name in &names {
        h.apply(partner("northwind-partners", name, "northwind"))
            .await;
    }
    for name in &names {
        h.wait_partner("northwind-partners", name, "Ready", is_ready)
            .await;
    }
    names
}

/// Onboarded `names` through their trials: the notices, all due at once, then the conversions;
/// returns every email once all five of each Partner's have arrived (the activation, and the
/// notice and the converted email to the partner and to the distributor).
async fn run_trials_to_production(h: &Harness, names: &[String]) -> Vec<ReceivedEmail> {
    h.advance_days(11);
    h.wait_emails(names.len() * 3).await;
    h.advance_days(3);
    for name in names {
        h.wait_partner("northwind-partners", name, "Production", |p| {
            level(p) == SubscriptionLevel::Production
        })
        .await;
    }
    h.wait_emails(names.len() * 5).await
}

async fn a_restart_over_settled_partners_writes_and_mails_nothing(server: Server) {
    let mut h = Harness::start(server).await;
    h.northwind(true).await;
    onboard(&h, 20).await;
    h.wait_distributor("northwind", "20 in trial", |d| {
        d.status
            .as_ref()
            .and_then(|s| s.partners.as_ref())
            .is_some_and(|c| c.trial == 20)
    })
    .await;
    let mailed = h.wait_emails(20).await.len();
    // Settled before the restart: the operator has looked at every Partner once more since
    // its last email went out, and has written the Distributor's statement of the month, so
    // nothing is left half done for the next instance.
    h.settled().await;
    let statements: kube::Api<partner_operator::api::BillingStatement> =
        kube::Api::all(h.client.clone());
    eventually(
        "northwind's statement of the month",
        Patience::RECONCILE,
        || async {
            let listed = statements.list(&Default::default()).await;
            listed.is_ok_and(|l| l.items.iter().any(|s| s.spec.distributor == "northwind"))
        },
    )
    .await;

    h.kill_operator();
    h.server.clear_requests();
    h.start_operator();
    // The new instance has listed, watched and reconciled every Partner (and once more).
    h.settled().await;
    let log = h.server.requests();
    // The operator's own requests: a real control plane writes on its own too (its leases).
    let writes: Vec<_> = log
        .iter()
        .filter(|r| r.is_write() && r.user_agent.as_deref() == Some("partner-operator"))
        .collect();
    assert!(writes.is_empty(), "writes after a restart: {writes:#?}");
    assert!(
        log.iter()
            .any(|r| r.resource == "partners" && r.verb == "watch"),
        "the new instance is running: {log:#?}"
    );
    assert_eq!(h.smtp.received().len(), mailed, "no email after a restart");

    // And it is live: the next deadline is acted on.
    h.advance_days(11);
    h.wait_emails(40).await;
    assert!(h.message_counts().values().all(|n| *n == 1));
}

async fn an_smtp_outage_is_reported_then_delivered_exactly_once(server: Server) {
    let h = Harness::start(server).await;
    h.northwind(true).await;
    h.smtp.set_down(true);
    h.apply(partner("northwind-partners", "contoso", "northwind"))
        .await;
    let p = h
        .wait_partner(
            "northwind-partners",
            "contoso",
            "EmailDeliveryFailed",
            |p| {
                condition(p, types::ACTIVATION_SENT)
                    .is_some_and(|(_, r)| r == reasons::EMAIL_DELIVERY_FAILED)
            },
        )
        .await;
    assert_eq!(
        condition(&p, types::READY).unwrap(),
        ("False".into(), reasons::EMAIL_DELIVERY_FAILED.into())
    );
    let warnings = events_told(&h, "northwind-partners", reasons::EMAIL_DELIVERY_FAILED).await;
    assert!(!warnings.is_empty(), "an Event reports the failure");
    let note = warnings[0].note.clone().unwrap_or_default();
    assert!(
        !note.contains("token="),
        "no activation link in Events: {note}"
    );
    assert!(h.smtp.received().is_empty());

    h.smtp.set_down(false);
    h.wait_partner("northwind-partners", "contoso", "Ready", is_ready)
        .await;
    h.wait_emails(1).await;
    h.settled().await;
    assert_eq!(h.smtp.received().len(), 1, "delivered exactly once");
}

async fn a_refused_address_stops_only_its_own_partner(server: Server) {
    let h = Harness::start(server).await;
    h.northwind(true).await;
    // A mailbox that is full or over quota: try later (4xx). A refusal for good (5xx) is held
    // instead of retried (tests/integration/mail_safety.rs).
    h.smtp.reject_recipient("admin@bad.example", 450);
    h.apply(partner("northwind-partners", "bad", "northwind"))
        .await;
    h.apply(partner("northwind-partners", "good", "northwind"))
        .await;
    h.wait_partner("northwind-partners", "good", "Ready", is_ready)
        .await;
    let p = h
        .wait_partner("northwind-partners", "bad", "EmailDeliveryFailed", |p| {
            condition(p, types::READY).is_some_and(|(_, r)| r == reasons::EMAIL_DELIVERY_FAILED)
        })
        .await;
    let record = &p.status.unwrap().emails[0];
    assert!(record.sent_at.is_none());
    assert!(
        record
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("450"),
        "{record:?}"
    );
    let received = h.smtp.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].to, vec!["admin@good.example"]);

    // Once the mailbox takes mail again, the retry delivers.
    h.smtp.accept_recipient("admin@bad.example");
    h.wait_partner("northwind-partners", "bad", "Ready", is_ready)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_faults_delay_but_never_duplicate() {
    let h = Harness::start(Server::Sandbox).await;
    h.northwind(true).await;
    h.server.sandbox().inject_fault(FaultRule {
        verb: None,
        share: 0.10,
        status: 500,
        limit: None,
        ..Default::default()
    });
    h.server.sandbox().inject_fault(FaultRule {
        verb: Some("patch".into()),
        share: 0.05,
        status: 409,
        limit: None,
        ..Default::default()
    });
    let names: Vec<String> = (0..10).map(|i| format!("f{i}")).collect();
    for name in &names {
        // The test's own writes go through the same faults: retry them.
        let object = partner("northwind-partners", name, "northwind");
        let mut tries = 0;
        while h.server.apply_json(object.clone()).await.is_err() {
            tries += 1;
            assert!(tries < 50);
        }
    }
    let dropper = {
        let server_watches = h.server.sandbox().controls();
        tokio::spawn(async move {
            loop {
                // Real time between the cuts, so that watches are re-established in between.
                tokio::time::sleep(Duration::from_millis(300)).await;
                server_watches.drop_watches();
            }
        })
    };
    for name in &names {
        h.wait_partner_within(
            Patience::UNDER_API_FAULTS,
            "northwind-partners",
            name,
            "Ready",
            is_ready,
        )
        .await;
    }
    run_trials_to_production(&h, &names).await;
    dropper.abort();
    h.server.sandbox().clear_faults();
    h.settled().await;
    let counts = h.message_counts();
    assert_eq!(
        counts.len(),
        50,
        "the activation, and the notice and converted email to both parties, for each"
    );
    let duplicates: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(duplicates.is_empty(), "sent twice: {duplicates:?}");
}

/// At a concurrency of 2, one reconciliation may be in the mail phase: when a
/// dozen Partners' notices, then their trial ends, fall due together, those that find the
/// mail slot taken step aside and are woken in turn, and every email goes out once.
async fn partners_waiting_for_a_mail_slot_are_each_mailed_once(server: Server) {
    let mut h = Harness::start_servers(server).await;
    let mut options = h.run_options();
    options.concurrency = 2;
    h.start_operator_with(options);
    h.northwind(true).await;
    let names = onboard(&h, 12).await;
    assert_eq!(h.wait_emails(12).await.len(), 12);
    let emails = run_trials_to_production(&h, &names).await;
    assert_eq!(h.emails_of("activation").len(), 12, "{emails:#?}");
    for event in ["upgrade-notice", "converted"] {
        assert_eq!(h.emails_of(event).len(), 24, "{event}: {emails:#?}");
    }
    assert!(h.message_counts().values().all(|n| *n == 1));
}

/// The SMTP server takes the activation email but the connection fails before it confirms:
/// the operator cannot know it went out and sends it again. The partner may hold both copies:
/// same Message-ID, same link, and the link's token is the one whose hash the tenant keeps.
async fn an_activation_email_resent_after_an_unconfirmed_send_is_the_same_email(server: Server) {
    let h = Harness::start(server).await;
    h.northwind(true).await;
    h.smtp.leave_unconfirmed(1);
    h.apply(partner("northwind-partners", "contoso", "northwind"))
        .await;
    let p = h
        .wait_partner("northwind-partners", "contoso", "Ready", is_ready)
        .await;
    let copies = h.wait_emails(2).await;
    assert_eq!(copies.len(), 2, "{copies:?}");
    assert_eq!(copies[0].message_id, copies[1].message_id);
    assert_eq!(copies[0].event.as_deref(), Some("activation"));
    assert_eq!(copies[0].subject, copies[1].subject);
    assert_eq!(copies[0].text_body(), copies[1].text_body());
    assert_eq!(copies[0].html_body(), copies[1].html_body());
    let link = activation_link(&copies[0]);
    assert_eq!(link, activation_link(&copies[1]));
    let token = activation_token(&copies[0]);
    let tenant = p.status.unwrap().tenant.unwrap().namespace;
    let secret =
        kube::Api::<k8s_openapi::api::core::v1::Secret>::namespaced(h.client.clone(), &tenant)
            .get("activation")
            .await
            .unwrap();
    let stored = secret.data.unwrap()["tokenSha256"].0.clone();
    assert_eq!(
        String::from_utf8(stored).unwrap(),
        partner_operator::tenant::token_hash(&token)
    );
}
