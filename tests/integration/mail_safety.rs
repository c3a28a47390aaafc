//! Mail cannot be turned against anyone, and a bad mail server harms only mail: each
//! recipient gets a message of their own, a Distributor's rate limit and allowed domains hold
//! emails back visibly without losing them, a refusal for good is not retried until a spec
//! changes, and a mail server that hangs or crawls delays neither provisioning nor deletion.

use crate::support;

use std::time::Duration;

use kube::api::{Api, Patch, PatchParams};
use partner_operator::api::{EmailHoldReason, Partner};
use serde_json::{Value, json};
use support::*;

crate::on_both_servers!(
    each_recipient_gets_a_message_of_their_own,
    a_hanging_mail_server_delays_only_mail,
    a_slow_mail_server_delays_only_mail,
    a_refusal_for_good_waits_for_a_spec_change,
    an_address_outside_the_allowed_domains_waits_until_allowed,
    partners_created_and_deleted_in_a_loop_send_at_most_the_rate_limit,
    one_address_is_sent_at_most_the_recipient_limit_across_partners,
    a_partner_whose_email_hangs_is_deleted_without_waiting,
);

const NAMESPACE: &str = "northwind-partners";

/// `northwind` with `email` as its `spec.email`, and its partner namespace.
async fn northwind_with_email_policy(h: &Harness, email: Value) {
    h.namespace(
        NAMESPACE,
        &[("partner-operator.io/distributor", "northwind")],
    )
    .await;
    let mut distributor = distributor("northwind", true);
    distributor["spec"]["email"] = email;
    h.apply(distributor).await;
}

/// The harness's operator with at most `connections` SMTP connections and a 1 s bound per
/// message.
fn start_operator_with_connections(h: &mut Harness, connections: u32) {
    let mut options = h.run_options();
    options.smtp_url = format!("{}?timeout=1&max_connections={connections}", h.smtp.url());
    h.start_operator_with(options);
}

fn activation_reason(p: &Partner) -> Option<String> {
    reason(p, types::ACTIVATION_SENT)
}

fn provisioned(p: &Partner) -> bool {
    condition(p, types::TENANT_PROVISIONED).is_some_and(|(status, _)| status == "True")
}

/// The held reason of `partner`'s activation email record.
fn activation_held(p: &Partner) -> Option<EmailHoldReason> {
    p.status
        .as_ref()?
        .emails
        .iter()
        .find(|e| e.event == partner_operator::api::EmailEvent::Activation)?
        .held
        .as_ref()
        .map(|h| h.reason)
}

async fn each_recipient_gets_a_message_of_their_own(server: Server) {
    let h = Harness::start(server).await;
    northwind_with_email_policy(&h, json!({})).await;
    h.apply(partner(NAMESPACE, "contoso", "northwind")).await;
    h.wait_partner(NAMESPACE, "contoso", "Ready", is_ready)
        .await;
    h.advance_days(11);
    let mail = h.wait_emails(3).await;
    let notices: Vec<_> = mail
        .iter()
        .filter(|m| m.event.as_deref() == Some("upgrade-notice"))
        .collect();
    assert_eq!(notices.len(), 2, "one notice per recipient");
    for message in &mail {
        assert_eq!(message.to.len(), 1, "one recipient: {:?}", message.to);
        assert_eq!(message.header("Cc"), None);
        // Without spec.email.replyTo, no message tells the distributor's address.
        assert_eq!(message.header("Reply-To"), None);
    }
    let to_partner = notices
        .iter()
        .find(|m| m.to == ["admin@contoso.example"])
        .expect("the partner's notice");
    let to_distributor = notices
        .iter()
        .find(|m| m.to == ["ops@northwind.example"])
        .expect("the distributor's notice");
    let partner_text = partner_sandbox::smtp::readable(&to_partner.raw);
    assert!(
        !partner_text.contains("ops@northwind.example"),
        "{partner_text}"
    );
    assert!(
        !String::from_utf8_lossy(&to_partner.raw).contains("ops@northwind.example"),
        "nowhere in the raw message either"
    );
    assert_ne!(to_partner.message_id, to_distributor.message_id);
    let subject = to_distributor.subject.clone().unwrap_or_default();
    assert!(
        subject.starts_with("Copy of a partner notice: Trial converts"),
        "{subject}"
    );
    assert!(
        subject.ends_with("(partner \"contoso IT Services\")"),
        "{subject}"
    );

    // A public reply address, once set, is every later message's Reply-To.
    set_email_policy(&h, json!({"replyTo": "partners@northwind.example"})).await;
    h.advance_days(3);
    let mail = h.wait_emails(5).await;
    for converted in mail
        .iter()
        .filter(|m| m.event.as_deref() == Some("converted"))
    {
        assert_eq!(
            converted.header("Reply-To").as_deref(),
            Some("\"Northwind Distribution\" <partners@northwind.example>")
        );
    }
}

/// Partners `p0`, `p1`, ... applied together.
async fn apply_partners(h: &Harness, count: usize) -> Vec<String> {
    let names: Vec<String> = (0..count).map(|i| format!("p{i}")).collect();
    for name in &names {
        h.apply(partner(NAMESPACE, name, "northwind")).await;
    }
    names
}

/// A Partner whose emails were all sent is deleted, and goes, while the mail server is bad.
async fn delete_and_wait_gone(h: &Harness, name: &str) {
    let api = h.partners(NAMESPACE);
    api.delete(name, &Default::default())
        .await
        .expect("deleted");
    eventually(format!("{name} gone"), Patience::RECONCILE, || async {
        match api.get_opt(name).await {
            Ok(None) => Ok(()),
            other => Err(Seen(format!("{:?}", other.map(|p| p.map(|p| p.status))))),
        }
    })
    .await;
}

async fn a_hanging_mail_server_delays_only_mail(server: Server) {
    let mut h = Harness::start_servers(server).await;
    start_operator_with_connections(&mut h, 2);
    northwind_with_email_policy(&h, json!({})).await;
    h.apply(partner(NAMESPACE, "early", "northwind")).await;
    h.wait_partner(NAMESPACE, "early", "Ready", is_ready).await;

    // The server now accepts connections and never says a word.
    h.smtp.set_silent(true);
    let names = apply_partners(&h, 6).await;
    for name in &names {
        h.wait_partner(NAMESPACE, name, "provisioned while mail hangs", provisioned)
            .await;
    }
    delete_and_wait_gone(&h, "early").await;
    let waiting = h
        .wait_partner(NAMESPACE, "p0", "activation not delivered", |p| {
            activation_reason(p).as_deref() == Some(reasons::EMAIL_DELIVERY_FAILED)
        })
        .await;
    let record = &waiting.status.as_ref().unwrap().emails[0];
    let error = record.last_error.as_deref().unwrap_or_default();
    assert!(error.contains("timed out"), "{error}");
    assert!(
        h.smtp.peak_connections() <= 2,
        "{} connections at once, 2 allowed",
        h.smtp.peak_connections()
    );

    // The server answers again: every activation goes out, once.
    h.smtp.set_silent(false);
    for name in &names {
        h.wait_partner(NAMESPACE, name, "Ready", is_ready).await;
    }
    assert!(h.message_counts().values().all(|n| *n == 1));
    assert_eq!(h.emails_of("activation").len(), 1 + names.len());
}

async fn a_slow_mail_server_delays_only_mail(server: Server) {
    let mut h = Harness::start_servers(server).await;
    start_operator_with_connections(&mut h, 2);
    northwind_with_email_policy(&h, json!({})).await;
    h.apply(partner(NAMESPACE, "early", "northwind")).await;
    h.wait_partner(NAMESPACE, "early", "Ready", is_ready).await;

    // About half a second a message, within the 1 s bound: slow, and it gets there.
    h.smtp.set_reply_delay(Duration::from_millis(60));
    let names = apply_partners(&h, 8).await;
    h.wait_partner(NAMESPACE, "p7", "provisioned", provisioned)
        .await;
    delete_and_wait_gone(&h, "early").await;
    for name in &names {
        h.wait_partner(NAMESPACE, name, "Ready", is_ready).await;
    }
    assert!(
        h.smtp.peak_connections() <= 2,
        "{}",
        h.smtp.peak_connections()
    );
    assert_eq!(h.emails_of("activation").len(), 1 + names.len());
}

async fn a_refusal_for_good_waits_for_a_spec_change(server: Server) {
    let h = Harness::start(server).await;
    northwind_with_email_policy(&h, json!({})).await;
    h.smtp.reject_recipient("admin@bad.example", 550);
    h.apply(partner(NAMESPACE, "bad", "northwind")).await;
    let refused = h
        .wait_partner(NAMESPACE, "bad", "activation refused for good", |p| {
            activation_reason(p).as_deref() == Some(reasons::EMAIL_REFUSED)
        })
        .await;
    assert_eq!(activation_held(&refused), Some(EmailHoldReason::Refused));
    assert_eq!(
        reason(&refused, types::READY).as_deref(),
        Some(reasons::EMAIL_REFUSED)
    );
    let warnings = events_told(&h, NAMESPACE, EventReason::EmailRefused.as_str()).await;
    assert_eq!(warnings.len(), 1, "one Warning says it");
    assert!(
        warnings[0]
            .note
            .as_deref()
            .unwrap_or_default()
            .contains("550")
    );

    // The server would take it now, but nothing asks it again while the specs are unchanged.
    h.smtp.accept_recipient("admin@bad.example");
    h.settled().await;
    assert!(h.smtp.received().is_empty());

    // A corrected address is a new spec: the email goes out, to it.
    h.partners(NAMESPACE)
        .patch(
            "bad",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"notificationEmail": "admin@fixed.example"}})),
        )
        .await
        .expect("the address corrected");
    h.wait_partner(NAMESPACE, "bad", "Ready", is_ready).await;
    let mail = h.wait_emails(1).await;
    assert_eq!(mail[0].to, ["admin@fixed.example"]);
}

async fn an_address_outside_the_allowed_domains_waits_until_allowed(server: Server) {
    let h = Harness::start(server).await;
    // Admission checks the list itself.
    let mut bad = distributor("northwind", true);
    bad["spec"]["email"] = json!({"allowedRecipientDomains": ["not a domain"]});
    let refusal = h.server.apply_json(bad).await.expect_err("refused");
    assert!(
        refusal.contains("spec.email.allowedRecipientDomains"),
        "{refusal}"
    );

    northwind_with_email_policy(&h, json!({"allowedRecipientDomains": ["contoso.example"]})).await;
    h.apply(partner(NAMESPACE, "contoso", "northwind")).await;
    h.apply(partner(NAMESPACE, "elsewhere", "northwind")).await;
    h.wait_partner(NAMESPACE, "contoso", "Ready", is_ready)
        .await;
    // The tenant is there; only its email waits (the status that holds the email may come a
    // moment before the one that says the tenant's entitlements are written).
    h.wait_partner(
        NAMESPACE,
        "elsewhere",
        "provisioned, its email held: recipient not allowed",
        |p| {
            activation_reason(p).as_deref() == Some(reasons::RECIPIENT_NOT_ALLOWED)
                && provisioned(p)
        },
    )
    .await;
    let warnings = events_told(&h, NAMESPACE, EventReason::RecipientNotAllowed.as_str()).await;
    assert_eq!(warnings.len(), 1);
    scrape::scrape_until(
        h.metrics_addr(),
        r#"partner_operator_emails_held_total{reason="RecipientNotAllowed"}"#,
        1.0,
    )
    .await;
    h.settled().await;
    assert_eq!(h.smtp.received().len(), 1, "only contoso was mailed");

    // Allowing the domain sends the email that waited.
    set_email_policy(
        &h,
        json!({"allowedRecipientDomains": ["contoso.example", "ELSEWHERE.example"]}),
    )
    .await;
    h.wait_partner(NAMESPACE, "elsewhere", "Ready", is_ready)
        .await;
    let mail = h.wait_emails(2).await;
    assert!(mail.iter().any(|m| m.to == ["admin@elsewhere.example"]));
}

/// Replaces northwind's `spec.email`.
async fn set_email_policy(h: &Harness, email: Value) {
    h.distributors()
        .patch(
            "northwind",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"email": email}})),
        )
        .await
        .expect("spec.email changed");
}

async fn partners_created_and_deleted_in_a_loop_send_at_most_the_rate_limit(server: Server) {
    let h = Harness::start(server).await;
    northwind_with_email_policy(
        &h,
        json!({"rateLimit": {"messages": 3, "windowMinutes": 60}}),
    )
    .await;
    // Each new Partner is a new uid and a new activation email: the loop a hostile author
    // would run against a third party's address.
    for round in 0..6 {
        let name = format!("loop{round}");
        let mut object = partner(NAMESPACE, &name, "northwind");
        object["spec"]["notificationEmail"] = json!("victim@third-party.example");
        h.apply(object).await;
        h.wait_partner(NAMESPACE, &name, "mailed or waiting", |p| {
            matches!(
                activation_reason(p).as_deref(),
                Some(reasons::SENT | reasons::EMAIL_RATE_LIMITED)
            )
        })
        .await;
        delete_and_wait_gone(&h, &name).await;
    }
    assert_eq!(h.smtp.received().len(), 3, "the limit: 3 in the hour");

    // One more waits visibly, and goes out when the window has room again.
    h.apply(partner(NAMESPACE, "later", "northwind")).await;
    let waiting = h
        .wait_partner(NAMESPACE, "later", "rate limited", |p| {
            activation_reason(p).as_deref() == Some(reasons::EMAIL_RATE_LIMITED)
        })
        .await;
    assert_eq!(
        activation_held(&waiting),
        Some(EmailHoldReason::RateLimited)
    );
    assert_eq!(
        reason(&waiting, types::READY).as_deref(),
        Some(reasons::EMAIL_RATE_LIMITED)
    );
    events_told(&h, NAMESPACE, EventReason::EmailRateLimited.as_str()).await;
    let scrape = scrape::scrape_until(
        h.metrics_addr(),
        r#"partner_operator_emails_held_total{reason="EmailRateLimited"}"#,
        4.0,
    )
    .await;
    assert!(
        scrape.contains(r#"partner_operator_emails_rate_limited_total{distributor="northwind"}"#)
    );
    h.clock.advance(chrono::Duration::minutes(61));
    h.wait_partner(NAMESPACE, "later", "Ready", is_ready).await;
    let mail = h.wait_emails(4).await;
    assert_eq!(mail.last().unwrap().to, ["admin@later.example"]);
    assert!(h.message_counts().values().all(|n| *n == 1));
}

async fn one_address_is_sent_at_most_the_recipient_limit_across_partners(server: Server) {
    let h = Harness::start(server).await;
    // The Distributor's own limit is far away: only the recipient limit (3 an hour) holds.
    northwind_with_email_policy(&h, json!({})).await;
    let victim = "victim@third-party.example";
    for round in 0..30 {
        let name = format!("loop{round}");
        let mut object = partner(NAMESPACE, &name, "northwind");
        object["spec"]["notificationEmail"] = json!(victim);
        h.apply(object).await;
        let seen = h
            .wait_partner(NAMESPACE, &name, "mailed or held", |p| {
                matches!(
                    activation_reason(p).as_deref(),
                    Some(reasons::SENT | reasons::EMAIL_RATE_LIMITED)
                )
            })
            .await;
        if round == 29 {
            // The last one stays, held: its condition and Warning say why.
            assert_eq!(activation_held(&seen), Some(EmailHoldReason::RateLimited));
            assert_eq!(
                reason(&seen, types::READY).as_deref(),
                Some(reasons::EMAIL_RATE_LIMITED)
            );
            let (_, message) = seen
                .status
                .as_ref()
                .unwrap()
                .conditions
                .iter()
                .find(|c| c.type_ == types::ACTIVATION_SENT)
                .map(|c| (c.status.clone(), c.message.clone()))
                .unwrap();
            assert!(
                message.contains("--email-per-recipient-per-hour") && message.contains(victim),
                "{message}"
            );
            break;
        }
        delete_and_wait_gone(&h, &name).await;
    }
    h.settled().await;
    let to_victim = h
        .smtp
        .received()
        .into_iter()
        .filter(|m| m.to == [victim])
        .count();
    assert_eq!(to_victim, 3, "at most 3 an hour to one address");
    let on_last = events_told_about(
        &h,
        NAMESPACE,
        EventReason::EmailRateLimited.as_str(),
        "loop29",
    )
    .await;
    assert_eq!(on_last.len(), 1, "one Warning on the held Partner");
    let note = on_last[0].note.clone().unwrap_or_default();
    assert!(note.contains("--email-per-recipient-per-hour"), "{note}");

    // Another address is not held.
    h.apply(partner(NAMESPACE, "contoso", "northwind")).await;
    h.wait_partner(NAMESPACE, "contoso", "Ready", is_ready)
        .await;
    // An hour later the held one goes out, once.
    h.clock.advance(chrono::Duration::minutes(61));
    h.wait_partner(NAMESPACE, "loop29", "Ready", is_ready).await;
    let to_victim = h
        .smtp
        .received()
        .into_iter()
        .filter(|m| m.to == [victim])
        .count();
    assert_eq!(to_victim, 4);
    assert!(h.message_counts().values().all(|n| *n == 1));
}

async fn a_partner_whose_email_hangs_is_deleted_without_waiting(server: Server) {
    let mut h = Harness::start_servers(server).await;
    // The server accepts connections and never says a word, and a send may take an hour.
    h.smtp.set_silent(true);
    let mut options = h.run_options();
    options.smtp_url = format!("{}?timeout=3600", h.smtp.url());
    h.start_operator_with(options);
    northwind_with_email_policy(&h, json!({})).await;
    h.apply(partner(NAMESPACE, "contoso", "northwind")).await;
    // The intent is recorded, and the send is in flight.
    let recorded = h
        .wait_partner(NAMESPACE, "contoso", "activation recorded", |p| {
            p.status.as_ref().is_some_and(|s| {
                s.emails.iter().any(|e| {
                    e.event == partner_operator::api::EmailEvent::Activation && e.sent_at.is_none()
                })
            })
        })
        .await;
    eventually("the send in flight", Patience::RECONCILE, || async {
        h.smtp.peak_connections() >= 1
    })
    .await;
    // The tenant was made before the email (its status says so only after the email).
    let tenant = partner_operator::tenant::tenant_namespace_of(&recorded);
    let namespaces = Api::<k8s_openapi::api::core::v1::Namespace>::all(h.client.clone());
    assert!(namespaces.get_opt(&tenant).await.unwrap().is_some());

    let api = h.partners(NAMESPACE);
    api.delete("contoso", &Default::default())
        .await
        .expect("deleted");
    eventually("contoso gone", Patience::DELETION, || async {
        match api.get_opt("contoso").await {
            Ok(None) => Ok(()),
            other => Err(Seen(format!("{:?}", other.map(|p| p.map(|p| p.status))))),
        }
    })
    .await;
    // Its tenant is deprovisioned.
    eventually("the tenant deleted", Patience::DELETION, || async {
        let namespace = namespaces.get_opt(&tenant).await.unwrap();
        namespace.is_none_or(|ns| ns.metadata.deletion_timestamp.is_some())
    })
    .await;
    // Nothing was delivered, and nothing is tried again once the server answers.
    h.smtp.set_silent(false);
    h.settled().await;
    assert!(h.smtp.received().is_empty());
}
