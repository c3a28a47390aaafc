//! Several replicas against one API server: only the one holding the Lease writes; when it
//! dies (Lease left held) or shuts down (Lease released), a standby takes over, and no email
//! goes out twice.

use crate::support;

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use partner_operator::leader::LeaderElection;
use partner_operator::operator::RunOptions;
use support::*;

crate::on_both_servers!(
    only_the_leader_writes_and_a_standby_takes_over_without_mailing_twice,
    a_leader_that_loses_its_lease_stops_with_an_error,
);

const LEASE: Duration = Duration::from_secs(3);

fn options(h: &Harness, identity: &str) -> RunOptions {
    let mut election = LeaderElection::new("default", identity);
    election.lease_duration = LEASE;
    election.renew_before = Duration::from_secs(1);
    RunOptions {
        leader_election: Some(election),
        ..h.run_options()
    }
}

async fn holder(h: &Harness) -> Option<String> {
    Api::<Lease>::namespaced(h.client.clone(), "default")
        .get_opt("partner-operator")
        .await
        .ok()
        .flatten()
        .and_then(|lease| lease.spec)
        .and_then(|spec| spec.holder_identity)
}

/// Waits until `identity` holds the Lease; returns how long that took.
async fn wait_for_holder(h: &Harness, identity: &str) -> Duration {
    let started = Instant::now();
    eventually(
        format!("{identity} holds the Lease"),
        Patience::LEASE_HANDOVER,
        || async {
            match holder(h).await {
                Some(held) if held == identity => Ok(()),
                other => Err(other),
            }
        },
    )
    .await;
    started.elapsed()
}

/// Waits until `identity` leads: it holds the Lease and its controllers watch Partners (the
/// Lease alone can show the holder before the replica has heard that it won).
async fn wait_for_leading(h: &Harness, identity: &str) {
    wait_for_holder(h, identity).await;
    eventually(
        format!("{identity}, holding the Lease, watches Partners"),
        Patience::LEASE_HANDOVER,
        || async {
            h.server.requests().iter().any(|r| {
                r.user_agent.as_deref() == Some(identity)
                    && r.resource == "partners"
                    && r.verb == "watch"
            })
        },
    )
    .await;
}

/// Writes to anything but the Lease, by the client that sent `user_agent`.
fn writes_by(h: &Harness, user_agent: &str) -> usize {
    h.server
        .requests()
        .iter()
        .filter(|r| r.is_write() && r.resource != "leases")
        .filter(|r| r.user_agent.as_deref() == Some(user_agent))
        .count()
}

async fn only_the_leader_writes_and_a_standby_takes_over_without_mailing_twice(server: Server) {
    let h = Harness::start_servers(server).await;
    let a = h.spawn_operator_as("replica-a", options(&h, "replica-a"));
    wait_for_holder(&h, "replica-a").await;
    let b = h.spawn_operator_as("replica-b", options(&h, "replica-b"));

    h.northwind(true).await;
    for name in ["contoso", "fabrikam"] {
        h.apply(partner("northwind-partners", name, "northwind"))
            .await;
    }
    for name in ["contoso", "fabrikam"] {
        h.wait_partner("northwind-partners", name, "Ready", is_ready)
            .await;
    }
    h.wait_emails(2).await;
    assert!(writes_by(&h, "replica-a") > 0, "the leader did the work");
    assert_eq!(writes_by(&h, "replica-b"), 0, "the standby wrote");

    // The leader crashes, its Lease still held: the standby waits for it to run out.
    a.kill();
    let took = wait_for_holder(&h, "replica-b").await;
    println!("standby took over a crashed leader's Lease after {took:?} (Lease: {LEASE:?})");
    let writes_of_a = writes_by(&h, "replica-a");
    h.advance_days(11);
    for name in ["contoso", "fabrikam"] {
        h.wait_partner("northwind-partners", name, "the notice", |p| {
            p.status
                .as_ref()
                .is_some_and(|s| s.upgrade_notice_sent_at.is_some())
        })
        .await;
    }
    h.wait_emails(6).await;
    assert!(
        writes_by(&h, "replica-b") > 0,
        "the new leader did the work"
    );

    // A graceful stop releases the Lease for the next standby.
    let c = h.spawn_operator_as("replica-c", options(&h, "replica-c"));
    b.stop().await.expect("replica-b stops cleanly");
    let took = wait_for_holder(&h, "replica-c").await;
    println!("standby took over a released Lease after {took:?}");
    let writes_of_b = writes_by(&h, "replica-b");
    h.advance_days(3);
    for name in ["contoso", "fabrikam"] {
        h.wait_partner("northwind-partners", name, "Production", |p| {
            level(p) == SubscriptionLevel::Production
        })
        .await;
    }
    h.wait_emails(10).await;
    c.stop().await.expect("replica-c stops cleanly");
    assert_eq!(
        holder(&h).await,
        None,
        "a stopped leader leaves the Lease free"
    );

    // Every replica has stopped (a killed long ago, b and c gracefully, awaited): nothing can
    // send or write any more, so what the servers hold now is final.
    let counts = h.message_counts();
    assert_eq!(
        counts.len(),
        10,
        "activation, and notice and converted to each party, for each"
    );
    let duplicates: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(duplicates.is_empty(), "sent twice: {duplicates:?}");
    assert_eq!(
        writes_by(&h, "replica-a"),
        writes_of_a,
        "a dead replica wrote"
    );
    assert_eq!(
        writes_by(&h, "replica-b"),
        writes_of_b,
        "a stopped replica wrote"
    );
}

async fn a_leader_that_loses_its_lease_stops_with_an_error(server: Server) {
    use kube::api::{Patch, PatchParams};
    let h = Harness::start_servers(server).await;
    let a = h.spawn_operator_as("replica-a", options(&h, "replica-a"));
    wait_for_leading(&h, "replica-a").await;
    // Someone else takes the Lease, as after a network partition that outlasted it.
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    Api::<Lease>::namespaced(h.client.clone(), "default")
        .patch(
            "partner-operator",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {
                "holderIdentity": "elsewhere",
                "leaseDurationSeconds": 600,
                "acquireTime": now,
                "renewTime": now,
            }})),
        )
        .await
        .unwrap();
    let ended = tokio::time::timeout(LEASE * 10, a.wait())
        .await
        .expect("the replica that lost its Lease stops");
    let err = ended.expect_err("losing the Lease is an error").to_string();
    assert!(
        err.contains("lost the Lease default/partner-operator"),
        "{err}"
    );
    assert_eq!(holder(&h).await.as_deref(), Some("elsewhere"));
}
