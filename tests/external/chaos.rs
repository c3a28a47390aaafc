//! Chaos, in a short form: the release binary's `run` as its own process, SIGKILLed and
//! restarted every one to three seconds while trials end, Partners are converted by hand and
//! deleted, statuses are wiped, the SMTP server goes down, leaves messages unconfirmed and hangs after the data, and
//! (on the sandbox, which can inject them) writes fail or land with their response lost and
//! watches are cut; every other operator also dies at the crash points (after a status write,
//! after an email went out and before its delivery is recorded). Then one last operator
//! runs undisturbed, and the invariants are checked on what the servers hold:
//! - every Partner reached its level: Production (automatic or by hand) or Expired;
//! - one Message-ID per Partner and kind of email, and every copy of one Message-ID the same;
//! - every tenant's entitlements say what its Partner's status says;
//! - automatic billing started at the trial's end, exactly;
//! - deleted Partners' tenants are gone, and they got no email after their deletion;
//! - the billed Partner deleted is in its month's billing statement, its entry final;
//! - a Partner whose status was emptied (or its tenant set to null) kept its trial;
//! - no activation token and no SMTP password in the operator's logs.
//!
//! `CHAOS_SEEDS` runs more seeds (default: one); each seed takes about a minute.

use crate::support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{SubsecRound, Utc};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use partner_operator::api::{BillingStatement, Partner, SubscriptionLevel};
use partner_operator::clock::Clock;
use partner_sandbox::apiserver::FaultRule;
use partner_sandbox::smtp::SmtpSink;
use rand::{Rng, SeedableRng};
use serde_json::json;
use support::LogOnFailure;
use support::metrics::{free_port, reconciliations};
use support::process::BINARY;
use support::*;

crate::on_both_servers!(the_operator_converges_through_kills_and_faults,);

const NAMESPACE: &str = "northwind-partners";
const PARTNERS: usize = 18;
/// How long the operator is killed and restarted.
const CHAOS: Duration = Duration::from_secs(25);
/// The operator authenticates to the SMTP server; the password must never reach its logs.
const SMTP_USER: &str = "chaos-user";
const SMTP_PASSWORD: &str = "chaos-pw-7Qx2v9Lk";

/// Empties the status of `p07` and sets `p08`'s `tenant` to null, each only if its tenant's
/// `entitlements` hold the lifecycle record with its trial (the fault loses the status, never
/// both); returns the trial start each had.
async fn wipe_statuses(
    client: &kube::Client,
    partners: &Api<Partner>,
) -> BTreeMap<String, chrono::DateTime<Utc>> {
    let mut wiped = BTreeMap::new();
    for (name, patch) in [
        ("p07", json!({"status": null})),
        ("p08", json!({"status": {"tenant": null}})),
    ] {
        let Ok(p) = partners.get(name).await else {
            continue;
        };
        let tenant = partner_operator::tenant::tenant_namespace_of(&p);
        let record = Api::<ConfigMap>::namespaced(client.clone(), &tenant)
            .get_opt("entitlements")
            .await
            .ok()
            .flatten()
            .and_then(|cm| cm.data)
            .and_then(|data| partner_operator::tenant::TenantRecord::read(&data));
        let Some(started_at) = record.and_then(|r| r.0.trial).map(|t| t.started_at) else {
            continue;
        };
        let patch = Patch::Merge(&patch);
        if partners
            .patch_status(name, &PatchParams::default(), &patch)
            .await
            .is_ok()
        {
            wiped.insert(name.to_string(), started_at);
        }
    }
    wiped
}

/// The operator as a process of its own, logging to a file it appends to, serving `/metrics`
/// on `metrics`.
fn spawn_operator(
    dir: &std::path::Path,
    smtp: &SmtpSink,
    crash_points: &str,
    metrics: std::net::SocketAddr,
) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("operator.log"))
        .unwrap();
    Command::new(BINARY)
        .args([
            "run",
            "--smtp-insecure-plaintext",
            "--leader-election=false",
        ])
        .arg(format!(
            "--smtp-url=smtp://{SMTP_USER}:{SMTP_PASSWORD}@{}?timeout=2",
            smtp.addr()
        ))
        .arg(format!("--activation-base-url={PORTAL}"))
        .arg(format!("--metrics-addr={metrics}"))
        .arg("--activation-addr=127.0.0.1:0")
        .arg(format!(
            "--activation-key-file={}",
            dir.join("key").display()
        ))
        // Every process the test starts proves tenants with one key, as a Secret gives a
        // deployed operator's restarts: without it, each restart finds the tenants taken.
        .arg(format!(
            "--ownership-key-file={}",
            dir.join("ownership-key").display()
        ))
        .env("KUBECONFIG", dir.join("kubeconfig"))
        .env("RUST_LOG", "info")
        .env(partner_operator::crash_points::ENV, crash_points)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("the operator starts")
}

async fn the_operator_converges_through_kills_and_faults(server: Server) {
    let seeds: u64 = std::env::var("CHAOS_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    for seed in 0..seeds {
        one_run(server, seed).await;
    }
}

async fn one_run(server: Server, seed: u64) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let backend = Backend::start(server, Clock::system()).await;
    let client = backend.client();
    let smtp = SmtpSink::start("127.0.0.1:0".parse().unwrap(), None)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let _shown_on_failure = LogOnFailure(dir.path().join("operator.log"));
    std::fs::write(dir.path().join("kubeconfig"), backend.kubeconfig_yaml()).unwrap();
    std::fs::write(dir.path().join("key"), "k".repeat(48)).unwrap();
    std::fs::write(dir.path().join("ownership-key"), "o".repeat(48)).unwrap();

    let create = |object: serde_json::Value| {
        let backend = &backend;
        async move { backend.apply_json(object).await.expect("created") }
    };
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": NAMESPACE,
        "labels": {"partner-operator.io/distributor": "northwind"}}}))
    .unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&Default::default(), &ns)
        .await
        .unwrap();
    create(distributor("northwind", true)).await;

    // Trials ending from 12 s on, a third without automatic upgrade.
    let start = Utc::now().trunc_subsecs(0);
    let mut expected = BTreeMap::new();
    for i in 0..PARTNERS {
        let name = format!("p{i:02}");
        let ends = start + chrono::Duration::seconds(12 + i as i64);
        let auto = i % 3 != 0;
        let mut object = partner(NAMESPACE, &name, "northwind");
        object["spec"]["subscription"] =
            json!({"expirationDate": ends.to_rfc3339(), "autoUpgrade": auto});
        create(object).await;
        let level = if auto {
            SubscriptionLevel::Production
        } else {
            SubscriptionLevel::Expired
        };
        expected.insert(name, (level, ends, auto));
    }
    if let Backend::Sandbox(sandbox) = &backend {
        for (resource, lose_response) in [
            ("partners/status", true),
            ("configmaps", true),
            ("namespaces", true),
            ("partners", false),
        ] {
            sandbox.inject_fault(FaultRule {
                verb: None,
                resource: Some(resource.into()),
                share: 0.05,
                status: 500,
                limit: None,
                lose_response,
            });
        }
    }
    smtp.leave_unconfirmed(3);

    // Kill and restart the operator; convert two Partners by hand, delete two, take the SMTP
    // server down for three seconds.
    let partners = Api::<Partner>::namespaced(client.clone(), NAMESPACE);
    let began = Instant::now();
    let mut kills = 0;
    let (mut converted, mut deleted, mut outage) = (false, false, false);
    let mut deleted_names = vec![];
    let mut billed_uid = None;
    let mut mailed_when_gone = HashMap::new();
    let mut wiped_trials = BTreeMap::new();
    while began.elapsed() < CHAOS {
        // Every other operator also dies where a crash does the most harm.
        let crash_points = if kills % 2 == 1 {
            "after-status-write=0.05,after-send=0.2"
        } else {
            ""
        };
        let mut operator = spawn_operator(dir.path(), &smtp, crash_points, free_port());
        // Real time for the operator to work before it dies: the chaos is in the timing.
        tokio::time::sleep(Duration::from_millis(rng.random_range(1000..3000))).await;
        if !converted && began.elapsed() > Duration::from_secs(6) {
            for name in ["p00", "p03"] {
                // Without an end: Production from now on.
                let patch = json!({"spec": {"subscription": {"level": "Production", "expirationDate": null}}});
                // The test's own writes meet the injected faults too: retried.
                let (params, patch) = (PatchParams::default(), Patch::Merge(&patch));
                retried(|| partners.patch(name, &params, &patch)).await;
                expected.get_mut(name).unwrap().0 = SubscriptionLevel::Production;
            }
            converted = true;
        }
        // A trial and a Partner billed since its conversion are deleted; the latter once its
        // billing shows, so that its statement must have it.
        let billed = if !deleted && began.elapsed() > Duration::from_secs(9) {
            let p03 = retried(|| partners.get("p03")).await;
            let billing = p03.status.as_ref().and_then(|s| s.billing.as_ref());
            billing.and(p03.metadata.uid)
        } else {
            None
        };
        if let Some(uid) = billed {
            billed_uid = Some(uid);
            for name in ["p01", "p03"] {
                let params = DeleteParams::default();
                retried(|| partners.delete(name, &params)).await;
                expected.remove(name);
                deleted_names.push(name.to_string());
            }
            deleted = true;
        }
        // Somebody empties one status and sets another's tenant to null, while their tenants
        // hold their records: each resumes from its record, its trial as it was.
        if wiped_trials.is_empty() && began.elapsed() > Duration::from_secs(8) {
            wiped_trials = wipe_statuses(&client, &partners).await;
        }
        // The SMTP server hangs after the data of the next two messages (the operator's
        // timeout is 2 s); on the sandbox, every watch is cut.
        if kills == 4 {
            smtp.hang_unconfirmed(2);
        }
        if let Backend::Sandbox(sandbox) = &backend
            && kills % 3 == 1
        {
            sandbox.drop_watches();
        }
        if !outage && began.elapsed() > Duration::from_secs(14) {
            smtp.set_down(true);
            outage = true;
        } else if outage && began.elapsed() > Duration::from_secs(17) {
            smtp.set_down(false);
        }
        // The emails a deleted Partner had when it was first seen gone: no more may come.
        for name in &deleted_names {
            if !mailed_when_gone.contains_key(name)
                && partners.get_opt(name).await.is_ok_and(|p| p.is_none())
            {
                mailed_when_gone.insert(name.clone(), mailed_to(&smtp, name));
            }
        }
        // Killed, unless a crash point got there first.
        let _ = operator.kill();
        operator.wait().unwrap();
        kills += 1;
    }
    smtp.set_down(false);
    assert!(
        deleted,
        "p03 was never billed during the chaos, so never deleted"
    );
    if let Backend::Sandbox(sandbox) = &backend {
        sandbox.clear_faults();
    }

    // One operator, undisturbed, until everything settled.
    let metrics = free_port();
    let mut operator = spawn_operator(dir.path(), &smtp, "", metrics);
    let summary = |partners: &[Partner]| -> Vec<String> {
        partners
            .iter()
            .map(|p| {
                let s = p.status.clone().unwrap_or_default();
                format!(
                    "{}: {:?}, emails {:?}, ready {:?}",
                    p.metadata.name.clone().unwrap(),
                    s.subscription_level,
                    s.emails
                        .iter()
                        .map(|e| (e.event, e.sent_at.is_some(), e.last_error.clone()))
                        .collect::<Vec<_>>(),
                    condition(p, types::READY)
                )
            })
            .collect()
    };
    let settled = |partners: &[Partner]| {
        partners.len() == expected.len()
            && partners.iter().all(|p| {
                let (level_, _, _) = expected[&p.metadata.name.clone().unwrap()];
                level(p) == level_
                    && p.status.as_ref().is_some_and(|s| {
                        // A Partner converted by hand before it was provisioned starts in
                        // Production, without a trial: its activation email is its only one.
                        s.emails.iter().all(|e| e.sent_at.is_some())
                            && (s.emails.len() >= 3 || s.trial.is_none())
                    })
            })
    };
    eventually(
        format!("seed {seed}: every Partner settled ({kills} kills)"),
        Patience::TRIAL,
        || async {
            match partners.list(&Default::default()).await {
                Ok(listed) if settled(&listed.items) => Ok(()),
                Ok(listed) => Err(summary(&listed.items)),
                Err(e) => Err(vec![e.to_string()]),
            }
        },
    )
    .await;
    assert!(!wiped_trials.is_empty(), "no status was wiped");
    for (name, started_at) in &wiped_trials {
        let p = partners.get(name).await.unwrap();
        let trial = p.status.and_then(|s| s.trial);
        assert_eq!(
            trial.map(|t| t.started_at),
            Some(*started_at),
            "{name}'s trial after its status was wiped"
        );
    }
    for name in &deleted_names {
        let gone = partners.get_opt(name).await.unwrap().is_none();
        assert!(gone, "{name} still there");
        let before = mailed_when_gone
            .get(name)
            .copied()
            .unwrap_or_else(|| mailed_to(&smtp, name));
        assert_eq!(
            mailed_to(&smtp, name),
            before,
            "mail to {name} after its deletion"
        );
    }
    let received_at_settle = smtp.received().len();
    // Nothing more to send: every Partner is looked at once more (a touch of an annotation
    // wakes each), and the reconciliations counted since cover them all.
    let before = reconciliations(metrics, "partner").await;
    for name in expected.keys() {
        let touch =
            json!({"metadata": {"annotations": {"chaos.partner-operator.io/settled": "yes"}}});
        partners
            .patch(name, &PatchParams::default(), &Patch::Merge(&touch))
            .await
            .unwrap();
    }
    eventually(
        "every Partner reconciled once more after settling",
        Patience::RECONCILE,
        || async {
            let now = reconciliations(metrics, "partner").await;
            if now >= before + expected.len() as f64 {
                Ok(())
            } else {
                Err(now)
            }
        },
    )
    .await;
    operator.kill().unwrap();
    operator.wait().unwrap();
    let crashes = std::fs::read_to_string(dir.path().join("operator.log"))
        .unwrap()
        .matches("crash point ")
        .count();
    println!(
        "seed {seed}: {kills} kills ({crashes} at crash points), {} emails, {} Partners, on {server:?}",
        received_at_settle,
        expected.len()
    );

    // One Message-ID per Partner and kind, and every copy of one Message-ID the same.
    let emails = smtp.received();
    assert_eq!(emails.len(), received_at_settle, "mail after settling");
    let mut ids: HashMap<(String, String), HashSet<String>> = HashMap::new();
    let mut bodies: HashMap<String, (Option<String>, Option<String>)> = HashMap::new();
    for email in &emails {
        let id = email.message_id.clone().unwrap();
        let kind = email.event.clone().unwrap();
        for to in &email.to {
            ids.entry((to.clone(), kind.clone()))
                .or_default()
                .insert(id.clone());
        }
        let body = (email.subject.clone(), email.text_body());
        let first = bodies.entry(id.clone()).or_insert_with(|| body.clone());
        assert_eq!(*first, body, "two copies of {id} differ");
    }
    for ((to, kind), set) in &ids {
        if to.starts_with("admin@") {
            assert_eq!(set.len(), 1, "{to} got {kind} under {set:?}");
        }
    }
    // Deleted Partners: tenants gone.
    let namespaces = Api::<Namespace>::all(client.clone());
    for name in &deleted_names {
        eventually(
            &format!("{name}'s tenant gone"),
            Patience::TRIAL,
            || async {
                namespaces
                    .list(&Default::default())
                    .await
                    .unwrap()
                    .items
                    .iter()
                    .all(|ns| {
                        !ns.metadata
                            .name
                            .as_deref()
                            .unwrap_or_default()
                            .starts_with(&format!("{NAMESPACE}-{name}-"))
                    })
            },
        )
        .await;
    }
    // The billed Partner deleted is in its month's statement (this month's, or last month's
    // when the run crossed a month's end), its entry final.
    let billed_uid = billed_uid.expect("the deleted Partner's uid");
    let statements = Api::<BillingStatement>::all(client.clone())
        .list(&Default::default())
        .await
        .unwrap()
        .items;
    let entries: Vec<_> = statements
        .iter()
        .flat_map(|s| &s.spec.partners)
        .filter(|e| e.uid == billed_uid)
        .collect();
    assert!(
        !entries.is_empty() && entries.iter().all(|e| e.deleted && e.days >= 1),
        "p03 in the statements: {entries:?}"
    );
    // Entitlements say what the status says; billing started at the deadline.
    for p in partners.list(&Default::default()).await.unwrap().items {
        let name = p.metadata.name.clone().unwrap();
        let status = p.status.clone().unwrap();
        let tenant = status.tenant.clone().unwrap().namespace;
        let data = Api::<ConfigMap>::namespaced(client.clone(), &tenant)
            .get("entitlements")
            .await
            .unwrap()
            .data
            .unwrap();
        let desired = partner_operator::tenant::entitlements_data(&p, &status).unwrap();
        for (key, value) in &desired {
            assert_eq!(data.get(key), Some(value), "{name}: entitlements {key}");
        }
        let (level, ends, auto) = expected[&name];
        if level == SubscriptionLevel::Production
            && auto
            && !["p00", "p03"].contains(&name.as_str())
        {
            assert_eq!(status.billing.unwrap().started_at, ends, "{name}");
        }
    }
    // No token and no password in the logs; every message came authenticated.
    let log = std::fs::read_to_string(dir.path().join("operator.log")).unwrap();
    assert!(
        !log.contains(SMTP_PASSWORD),
        "the SMTP password in the operator's log"
    );
    assert!(
        emails
            .iter()
            .all(|e| e.auth_user.as_deref() == Some(SMTP_USER)),
        "unauthenticated mail"
    );
    for email in emails
        .iter()
        .filter(|e| e.event.as_deref() == Some("activation"))
    {
        let token = activation_token(email);
        assert!(!log.contains(&token), "a token in the operator's log");
    }
    assert!(kills >= 8, "{kills} kills");
}

/// Retries a write the sandbox's injected faults refused (none of those lose a response).
async fn retried<T, F: std::future::Future<Output = kube::Result<T>>>(write: impl Fn() -> F) -> T {
    eventually(
        "a write past the injected faults",
        Patience::RECONCILE,
        || async {
            match write().await {
                Ok(done) => Ok(done),
                Err(kube::Error::Api(status)) if status.code == 500 => Err(status),
                Err(err) => panic!("{err}"),
            }
        },
    )
    .await
}

/// How many messages went to the Partner `name`'s address.
fn mailed_to(smtp: &SmtpSink, name: &str) -> usize {
    let address = format!("admin@{name}.example");
    smtp.received()
        .iter()
        .filter(|m| m.to.contains(&address))
        .count()
}
