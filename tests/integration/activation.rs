//! The activation service: the emailed link shows a page and changes nothing on GET, activates
//! exactly once on POST (also through `POST /v1/activations`), refuses expired and superseded
//! links, follows a declarative resend, limits its rate, survives a restart and a crash between
//! its two writes, and never logs a token. On both API servers (rate limits: the sandbox only,
//! they involve no API server).

use crate::support;

use std::net::SocketAddr;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use partner_operator::activation::ServiceOptions;
use partner_operator::activation::client::TrustedProxies;
use partner_sandbox::smtp::ReceivedEmail;
use serde_json::json;
use support::activation::{link, start};
use support::http::{post_json, request};
use support::*;

crate::on_both_servers!(
    a_link_shows_a_page_then_activates_exactly_once,
    an_expired_link_is_gone_and_a_resend_brings_a_new_one,
    an_activation_survives_a_restart_and_a_crash_between_its_writes,
    tenants_are_looked_up_without_listing_namespaces,
    the_page_speaks_for_the_distributor,
);

const NAMESPACE: &str = "northwind-partners";

/// Northwind and its Partner contoso, Ready: its activation email.
async fn onboard(h: &Harness) -> ReceivedEmail {
    h.northwind(true).await;
    let mut contoso = partner(NAMESPACE, "contoso", "northwind");
    contoso["spec"]["organizationName"] = json!("Contoso <IT> & \"Söhne\"");
    h.apply(contoso).await;
    h.wait_partner(NAMESPACE, "contoso", "Ready", is_ready)
        .await;
    h.wait_emails(1).await;
    h.emails_of("activation")
        .pop()
        .expect("an activation email")
}

fn activated_at(p: &partner_operator::api::Partner) -> Option<chrono::DateTime<chrono::Utc>> {
    p.status.as_ref()?.activation.as_ref()?.activated_at
}

fn is_activated(p: &partner_operator::api::Partner) -> bool {
    activated_at(p).is_some() && condition(p, types::ACTIVATED).is_some_and(|(s, _)| s == "True")
}

async fn get(addr: SocketAddr, target: &str) -> support::http::Response {
    request(addr, "GET", target, &[], "text/plain", "").await
}

async fn post_form(addr: SocketAddr, target: &str) -> support::http::Response {
    request(
        addr,
        "POST",
        target,
        &[],
        "application/x-www-form-urlencoded",
        "",
    )
    .await
}

async fn a_link_shows_a_page_then_activates_exactly_once(server: Server) {
    // Room for the eight at once (the limits have a test of their own).
    let (h, addr) = start(server, |s| s.per_tenant_per_minute = 30).await;
    let email = onboard(&h).await;
    let (target, tenant, token) = link(&email);

    // GET (a mail scanner, or the person) shows the page and changes nothing.
    for _ in 0..2 {
        let page = get(addr, &target).await;
        assert_eq!(page.status, 200, "{}", page.body);
        assert!(
            page.body.contains("data-outcome=\"valid\""),
            "{}",
            page.body
        );
        assert!(
            page.body
                .contains("Contoso &lt;IT&gt; &amp; &quot;Söhne&quot;"),
            "{}",
            page.body
        );
        assert!(page.body.contains("Northwind Distribution"));
        assert!(
            page.body
                .contains("<button type=\"submit\" id=\"activate\">Activate</button>")
        );
        assert_eq!(page.header("cache-control"), Some("no-store"));
        assert_eq!(page.header("referrer-policy"), Some("no-referrer"));
    }
    h.settled().await;
    let p = h.partners(NAMESPACE).get("contoso").await.unwrap();
    assert_eq!(activated_at(&p), None);
    assert_eq!(
        condition(&p, types::ACTIVATED),
        Some(("False".into(), reasons::AWAITING_ACTIVATION.into()))
    );

    // A wrong token of a real tenant, and an unknown tenant, get the same answer.
    let wrong = post_json(
        addr,
        "/v1/activations",
        &json!({"tenant": tenant, "token": "0".repeat(64)}),
    )
    .await;
    let unknown = post_json(
        addr,
        "/v1/activations",
        &json!({"tenant": "00000000-0000-5000-8000-000000000000", "token": token}),
    )
    .await;
    assert_eq!((wrong.status, unknown.status), (404, 404));
    assert_eq!(wrong.body, unknown.body);

    // Eight portals POST the same token at once: exactly one activates.
    let body = json!({"tenant": tenant, "token": token});
    let answers =
        futures::future::join_all((0..8).map(|_| post_json(addr, "/v1/activations", &body))).await;
    let mut statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    statuses.sort();
    assert_eq!(
        statuses,
        [200, 409, 409, 409, 409, 409, 409, 409],
        "{answers:?}"
    );
    let won = answers.iter().find(|a| a.status == 200).unwrap().json();
    assert_eq!(won["status"], "activated");
    assert_eq!(won["tenant"], json!(tenant));
    let again = answers.iter().find(|a| a.status == 409).unwrap().json();
    assert_eq!(again["status"], "already-activated");
    assert_eq!(again["activatedAt"], won["activatedAt"]);

    // The Partner says so, the distributor is told once, and the reconciler keeps the field.
    let p = h
        .wait_partner(NAMESPACE, "contoso", "Activated", is_activated)
        .await;
    assert_eq!(
        activated_at(&p).map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        won["activatedAt"].as_str().map(String::from)
    );
    eventually("the Activated Event", Patience::RECONCILE, || async {
        events(&h, NAMESPACE, EventReason::Activated.as_str())
            .await
            .len()
            == 1
    })
    .await;
    let told = eventually("the distributor told", Patience::RECONCILE, || async {
        let told = h.emails_of("activated");
        if told.is_empty() {
            Err(told.len())
        } else {
            Ok(told)
        }
    })
    .await;
    assert_eq!(told[0].to, ["ops@northwind.example"]);
    assert_eq!(
        told[0].subject.as_deref(),
        Some("Tenant activated (partner \"Contoso <IT> & \"Söhne\"\")")
    );
    h.advance_days(15);
    h.wait_partner(NAMESPACE, "contoso", "Production", |p| {
        level(p) == SubscriptionLevel::Production
    })
    .await;
    h.settled().await;
    let p = h.partners(NAMESPACE).get("contoso").await.unwrap();
    assert!(is_activated(&p), "{:?}", p.status);
    assert_eq!(h.emails_of("activated").len(), 1);

    // The page and the form say it is done.
    let page = post_form(addr, &target).await;
    assert_eq!(page.status, 409);
    assert!(
        page.body.contains("data-outcome=\"already-activated\""),
        "{}",
        page.body
    );

    let scrape = support::scrape::get(h.metrics_addr(), "/metrics").await.1;
    assert_eq!(
        support::metrics::sample(&scrape, "partner_operator_activations_total"),
        Some(1.0)
    );
    assert_eq!(
        support::metrics::sample(
            &scrape,
            "partner_operator_activation_failures_total{reason=\"already_activated\"}"
        ),
        Some(8.0)
    );
    assert_eq!(
        support::metrics::sample(
            &scrape,
            "partner_operator_activation_failures_total{reason=\"unknown\"}"
        ),
        Some(2.0)
    );
    assert!(!scrape.contains(&token));
    support::secrets::assert_not_logged(&token);
}

async fn an_expired_link_is_gone_and_a_resend_brings_a_new_one(server: Server) {
    let (h, addr) = start(server, |_| {}).await;
    let first = onboard(&h).await;
    let (old_target, tenant, old_token) = link(&first);

    h.advance_days(8);
    let expired = post_json(
        addr,
        "/v1/activations",
        &json!({"tenant": tenant, "token": old_token}),
    )
    .await;
    assert_eq!(expired.status, 410, "{}", expired.body);
    assert_eq!(expired.json()["status"], "expired");
    h.wait_partner(NAMESPACE, "contoso", "link expired", |p| {
        reason(p, types::ACTIVATED).as_deref() == Some(reasons::ACTIVATION_LINK_EXPIRED)
    })
    .await;

    // A GitOps-friendly request for a new link: a new value of spec.activation.resendRequest.
    h.partners(NAMESPACE)
        .patch(
            "contoso",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"activation": {"resendRequest": "2027-03-09T09:00:00Z"}}}),
            ),
        )
        .await
        .unwrap();
    h.wait_partner(NAMESPACE, "contoso", "resend handled", |p| {
        p.status
            .as_ref()
            .and_then(|s| s.activation.as_ref())
            .and_then(|a| a.resend_handled.as_deref())
            == Some("2027-03-09T09:00:00Z")
            && reason(p, types::ACTIVATED).as_deref() == Some(reasons::AWAITING_ACTIVATION)
    })
    .await;
    let second = eventually("a second activation email", Patience::RECONCILE, || async {
        let all = h.emails_of("activation");
        if all.len() == 2 {
            Ok(all[1].clone())
        } else {
            Err(all.len())
        }
    })
    .await;
    assert_ne!(second.message_id, first.message_id);
    let (new_target, _, new_token) = link(&second);
    assert_ne!(new_token, old_token);

    // The old link is superseded (GET says so too), the new one works.
    let superseded = post_json(
        addr,
        "/v1/activations",
        &json!({"tenant": tenant, "token": old_token}),
    )
    .await;
    assert_eq!(
        (superseded.status, superseded.json()["status"].as_str()),
        (410, Some("superseded"))
    );
    let page = get(addr, &old_target).await;
    assert_eq!(page.status, 410);
    assert!(page.body.contains("data-outcome=\"superseded\""));
    let done = post_form(addr, &new_target).await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(done.body.contains("data-outcome=\"activated\""));
    h.wait_partner(NAMESPACE, "contoso", "Activated", is_activated)
        .await;

    // Once activated, a resend is refused, said in a Warning and the condition's reason.
    h.partners(NAMESPACE)
        .patch(
            "contoso",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"activation": {"resendRequest": "again"}}})),
        )
        .await
        .unwrap();
    h.wait_partner(NAMESPACE, "contoso", "resend refused", |p| {
        condition(p, types::ACTIVATED) == Some(("True".into(), reasons::RESEND_REFUSED.into()))
            && p.status
                .as_ref()
                .and_then(|s| s.activation.as_ref())
                .and_then(|a| a.resend_handled.as_deref())
                == Some("again")
    })
    .await;
    eventually("the ResendRefused Warning", Patience::RECONCILE, || async {
        events(&h, NAMESPACE, EventReason::ResendRefused.as_str())
            .await
            .iter()
            .any(|e| e.type_.as_deref() == Some("Warning"))
    })
    .await;
    h.settled().await;
    assert_eq!(h.emails_of("activation").len(), 2);
    support::secrets::assert_not_logged(&old_token);
    support::secrets::assert_not_logged(&new_token);
}

async fn an_activation_survives_a_restart_and_a_crash_between_its_writes(server: Server) {
    let (mut h, addr) = start(server, |_| {}).await;
    let email = onboard(&h).await;
    let (target, _, _) = link(&email);
    for name in ["fabrikam", "litware"] {
        h.apply(partner(NAMESPACE, name, "northwind")).await;
        h.wait_partner(NAMESPACE, name, "Ready", is_ready).await;
    }

    // litware's activation is recorded in its tenant's Secret, and the process dies before the
    // Partner's status says so: the restarted operator finishes it, without any request.
    record_in_tenant_only(&h, "litware", "2027-03-01T09:20:00Z").await;
    h.stop_operator().await;
    let mut run = h.run_options();
    run.activation_base_url = Some(format!("http://{addr}/activate"));
    run.activation_service = Some(ServiceOptions::new(addr));
    h.start_operator_with(run);
    let p = h
        .wait_partner(NAMESPACE, "litware", "Activated", is_activated)
        .await;
    assert_eq!(
        activated_at(&p),
        Some("2027-03-01T09:20:00Z".parse().unwrap())
    );

    // A restart between the email and the click: contoso's link still works.
    let page = get(addr, &target).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(post_form(addr, &target).await.status, 200);
    h.wait_partner(NAMESPACE, "contoso", "Activated", is_activated)
        .await;

    // The same crash while the operator runs: the next request with fabrikam's token (409)
    // finishes it.
    let mail = eventually(
        "fabrikam's activation email",
        Patience::RECONCILE,
        || async {
            h.emails_of("activation")
                .into_iter()
                .find(|m| m.to == ["admin@fabrikam.example"])
                .ok_or("not yet")
        },
    )
    .await;
    let (fabrikam_target, _, _) = link(&mail);
    record_in_tenant_only(&h, "fabrikam", "2027-03-01T09:30:00Z").await;
    let again = post_form(addr, &fabrikam_target).await;
    assert_eq!(again.status, 409, "{}", again.body);
    let p = h
        .wait_partner(NAMESPACE, "fabrikam", "Activated", is_activated)
        .await;
    assert_eq!(
        activated_at(&p),
        Some("2027-03-01T09:30:00Z".parse().unwrap())
    );
    eventually(
        "the distributor told of all three",
        Patience::RECONCILE,
        || async { h.emails_of("activated").len() == 3 },
    )
    .await;
}

/// What the activation service's first write leaves when the process stops right after it:
/// `activatedAt` in the tenant's Secret, nothing on the Partner.
async fn record_in_tenant_only(h: &Harness, name: &str, at: &str) {
    let partner = h.partners(NAMESPACE).get(name).await.unwrap();
    let tenant = partner.status.unwrap().tenant.unwrap().namespace;
    Api::<Secret>::namespaced(h.client.clone(), &tenant)
        .patch(
            "activation",
            &PatchParams {
                field_manager: Some(partner_operator::activation::FIELD_MANAGER.into()),
                ..Default::default()
            },
            &Patch::Merge(json!({"stringData": {"activatedAt": at}})),
        )
        .await
        .unwrap();
}

/// Requests with a tenant id and token from a client `from` (forwarded by the loopback proxy).
async fn attempt(
    addr: SocketAddr,
    from: &str,
    tenant: &str,
    token: &str,
) -> support::http::Response {
    request(
        addr,
        "POST",
        "/v1/activations",
        &[("X-Forwarded-For", from)],
        "application/json",
        &json!({"tenant": tenant, "token": token}).to_string(),
    )
    .await
}

/// Only failures count, per tenant only for well-formed tokens, and the tenant's own token gets
/// through whatever others did: nobody who knows a tenant id can lock its activation out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_limited_and_a_valid_token_always_gets_through() {
    let (h, addr) = start(Server::Sandbox, |s| {
        s.per_client_per_minute = 4;
        s.per_tenant_per_minute = 3;
        // The test's connections come from loopback: that is the ingress.
        s.trusted_proxies = TrustedProxies::parse("127.0.0.0/8").unwrap();
    })
    .await;
    let email = onboard(&h).await;
    let (target, tenant, token) = link(&email);
    // The link itself, opened again and again (a mail scanner, a person), is no failure.
    for n in 0..10 {
        let client = format!("192.0.2.{n}");
        let from = [("X-Forwarded-For", client.as_str())];
        let page = request(addr, "GET", &target, &from, "text/plain", "").await;
        assert_eq!(page.status, 200, "{}", page.body);
    }
    // Junk that is no token does not count against the tenant, from however many clients.
    for n in 0..20 {
        let answer = attempt(addr, &format!("198.51.100.{n}"), &tenant, "junk").await;
        assert_eq!(answer.status, 404, "{}", answer.body);
    }
    // Wrong tokens of the right shape do: three, then the fourth is refused...
    for n in 0..3 {
        let answer = attempt(addr, &format!("203.0.113.{n}"), &tenant, &"0".repeat(64)).await;
        assert_eq!(answer.status, 404, "{}", answer.body);
    }
    let refused = attempt(addr, "203.0.113.3", &tenant, &"1".repeat(64)).await;
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert_eq!(refused.json()["status"], "rate-limited");
    assert!(refused.header("retry-after").is_some());
    // ...but the tenant's token goes through, page and activation alike.
    let page = request(
        addr,
        "GET",
        &target,
        &[("X-Forwarded-For", "203.0.113.200")],
        "text/plain",
        "",
    )
    .await;
    assert_eq!(page.status, 200, "{}", page.body);
    let done = attempt(addr, "203.0.113.201", &tenant, &token).await;
    assert_eq!(done.status, 200, "{}", done.body);

    // One client: four failures (unknown tenants), the fifth refused, whatever it asks.
    for n in 0..4 {
        let unknown = format!("00000000-0000-5000-8000-00000000000{n}");
        let answer = attempt(addr, "198.51.100.77", &unknown, &"0".repeat(64)).await;
        assert_eq!(answer.status, 404, "{}", answer.body);
    }
    let answer = attempt(
        addr,
        "198.51.100.77",
        "00000000-0000-5000-8000-000000000009",
        &"0".repeat(64),
    )
    .await;
    assert_eq!(answer.status, 429, "{}", answer.body);

    let scrape = support::scrape::get(h.metrics_addr(), "/metrics").await.1;
    for (series, value) in [
        (
            "partner_operator_activation_rate_limited_total{limit=\"tenant\"}",
            1.0,
        ),
        (
            "partner_operator_activation_rate_limited_total{limit=\"client\"}",
            1.0,
        ),
    ] {
        assert_eq!(
            support::metrics::sample(&scrape, series),
            Some(value),
            "{series}\n{scrape}"
        );
    }
}

/// `X-Forwarded-For` from a peer that is not a named proxy is ignored: a client reaching the pod
/// directly cannot pick a fresh address for each failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_forwarded_for_from_an_untrusted_peer_changes_nothing() {
    let (_h, addr) = start(Server::Sandbox, |s| {
        s.per_client_per_minute = 4;
        s.trusted_proxies = TrustedProxies::parse("10.0.0.0/8").unwrap();
    })
    .await;
    let statuses: Vec<u16> = futures::future::join_all((0..6).map(|n| async move {
        attempt(addr, &format!("192.0.2.{n}"), "no-such-tenant", "junk")
            .await
            .status
    }))
    .await;
    let mut sorted = statuses.clone();
    sorted.sort();
    assert_eq!(sorted, [404, 404, 404, 404, 429, 429], "{statuses:?}");
}

/// Tenants are found in the service's own directory (kept by a watch): a burst of requests for
/// unknown and known tenants lists no namespaces, and reads no more than the tenants' Secrets.
async fn tenants_are_looked_up_without_listing_namespaces(server: Server) {
    let (h, addr) = start(server, |s| s.per_tenant_per_minute = 1000).await;
    let email = onboard(&h).await;
    let (target, tenant, _) = link(&email);
    h.settled().await;
    h.server.clear_requests();
    let unknown = (0..10).map(|n| format!("00000000-0000-5000-8000-0000000000{n:02}"));
    let mut answers = Vec::new();
    for id in unknown {
        answers.push(attempt(addr, "192.0.2.1", &id, &"0".repeat(64)).await);
    }
    for n in 0..10 {
        answers.push(attempt(addr, "192.0.2.2", &tenant, &format!("{n}").repeat(64)).await);
    }
    assert!(answers.iter().all(|a| a.status == 404), "{answers:?}");
    assert!(answers.windows(2).all(|w| w[0].body == w[1].body));
    assert_eq!(get(addr, &target).await.status, 200);
    // The operator's requests (kube-apiserver's own controllers make theirs).
    let requests: Vec<_> = h
        .server
        .requests()
        .into_iter()
        .filter(|r| {
            r.user_agent
                .as_deref()
                .is_some_and(|ua| ua.contains("partner-operator"))
        })
        .collect();
    let listed: Vec<_> = requests
        .iter()
        .filter(|r| r.resource == "namespaces" && r.verb == "list")
        .collect();
    assert!(listed.is_empty(), "{listed:#?}");
    // Ten wrong tokens of the tenant and the page: one Secret read each; the unknown: none.
    let secrets = requests
        .iter()
        .filter(|r| r.resource == "secrets" && r.verb == "get")
        .count();
    assert_eq!(secrets, 11, "{requests:#?}");
}

/// The Distributor's branding on the page: its display name in the heading and the texts, its
/// logo at a fixed size, its support contact; a logo over plain http is refused at admission.
async fn the_page_speaks_for_the_distributor(server: Server) {
    let (h, addr) = start(server, |_| {}).await;
    h.northwind(true).await;
    let distributors = h.distributors();
    let branding = |logo: &str| {
        Patch::Merge(json!({"spec": {"branding": {
            "displayName": "Northwind Partner Cloud",
            "logoUrl": logo,
            "supportEmail": "partners@northwind.example",
        }}}))
    };
    let refused = distributors
        .patch(
            "northwind",
            &PatchParams::default(),
            &branding("http://northwind.example/logo.png"),
        )
        .await
        .expect_err("an http logo is refused");
    assert!(
        matches!(&refused, kube::Error::Api(s) if s.code == 422 && s.message.contains("spec.branding.logoUrl")),
        "{refused:?}"
    );
    distributors
        .patch(
            "northwind",
            &PatchParams::default(),
            &branding("https://northwind.example/logo.png"),
        )
        .await
        .expect("branded");
    h.apply(partner(NAMESPACE, "contoso", "northwind")).await;
    h.wait_emails(1).await;
    let email = h
        .emails_of("activation")
        .pop()
        .expect("an activation email");
    let (target, _, _) = link(&email);
    let page = get(addr, &target).await;
    assert_eq!(page.status, 200, "{}", page.body);
    for expected in [
        "<h1 id=\"outcome\" data-outcome=\"valid\">Activate your tenant</h1>",
        "Your tenant with Northwind Partner Cloud is ready for contoso IT Services",
        "<span id=\"brand\">Northwind Partner Cloud</span>",
        r#"<img src="https:&#x2f;&#x2f;northwind.example&#x2f;logo.png" alt="Northwind Partner Cloud" width="160" height="48">"#,
        "mailto:partners@northwind.example",
    ] {
        assert!(page.body.contains(expected), "{expected} in {}", page.body);
    }
    let policy = page.header("content-security-policy").unwrap_or_default();
    assert!(policy.contains("img-src https:;"), "{policy}");
}
