//! The walkthrough (docs/walkthrough.md; its first steps are in the README), checked: the
//! built binary's `sandbox` as a subprocess, driven only with `/usr/bin/kubectl` and read back
//! from the outbox, asserting what a user sees.
//!
//! The steps that need no fast clock also run against a real cluster: set
//! `PARTNER_OPERATOR_E2E_KUBECONFIG` to its kubeconfig (with the operator deployed there and the
//! examples' names free). There, email is not read back (there is no outbox), and everything
//! the test created is deleted at the end. The steps that need two weeks to pass run against a
//! sandbox at a day a second (`--speed 86400`) in either case.
//!
//! Each test runs twice: on the sandbox's embedded API server, and on the sandbox started with
//! `--kube-apiserver` (the real kube-apiserver, etcd and kube-controller-manager; there only the
//! operator's clock runs fast).

use crate::support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::json;
use support::process::{Sandbox, examples, stdout};
use support::{EventReason, Patience, Server, eventually_blocking};

/// Where the walkthrough runs: a sandbox, or a real cluster.
enum Target {
    Sandbox(Sandbox),
    Cluster(PathBuf),
}

impl Target {
    fn kubeconfig(&self) -> PathBuf {
        match self {
            Target::Sandbox(sandbox) => sandbox.kubeconfig(),
            Target::Cluster(kubeconfig) => kubeconfig.clone(),
        }
    }

    fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_with_input(args, None)
    }

    fn kubectl_with_input(&self, args: &[&str], input: Option<&str>) -> Output {
        use std::io::Write;
        let mut child = Command::new("/usr/bin/kubectl")
            .arg("--kubeconfig")
            .arg(self.kubeconfig())
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        if let Some(input) = input {
            stdin.write_all(input.as_bytes()).unwrap();
        }
        drop(stdin);
        child.wait_with_output().unwrap()
    }

    /// kubectl's stdout, after asserting it succeeded.
    fn ok(&self, args: &[&str]) -> String {
        stdout(&self.kubectl(args))
    }

    /// The reasons of the Events (`events.k8s.io/v1`, as `kubectl get events.events.k8s.io -o
    /// json` lists them) in the walkthrough's namespace regarding the `kind` named `name`.
    fn event_reasons(&self, kind: &str, name: &str) -> BTreeSet<String> {
        let listed = self.ok(&["get", "events.events.k8s.io", "-n", NS, "-o", "json"]);
        let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
        listed["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["regarding"]["kind"] == kind && e["regarding"]["name"] == name)
            .filter_map(|e| e["reason"].as_str().map(str::to_string))
            .collect()
    }

    fn outbox(&self) -> Option<PathBuf> {
        match self {
            Target::Sandbox(sandbox) => Some(sandbox.dir.path().join("outbox")),
            Target::Cluster(_) => None,
        }
    }

    /// `kubectl get KIND NAME -n northwind-partners -o jsonpath='{PATH}'`, as the walkthrough
    /// writes it, for `kind_name` = `KIND/NAME`.
    fn jsonpath(&self, kind_name: &str, path: &str) -> String {
        let (kind, name) = kind_name.split_once('/').unwrap();
        self.ok(&[
            "get",
            kind,
            name,
            "-n",
            NS,
            "-o",
            &format!("jsonpath={{{path}}}"),
        ])
    }

    /// `kubectl get partners -n northwind-partners -w`, as the walkthrough shows it, read until
    /// each of `names` has a row whose READY is True (then stopped, as with Ctrl-C).
    fn watch_partners_until_ready(&self, names: &[&str]) -> String {
        use std::io::BufRead;
        let mut child = Command::new("/usr/bin/kubectl")
            .arg("--kubeconfig")
            .arg(self.kubeconfig())
            .args(["get", "partners", "-n", NS, "-w"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (lines, received) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let mut seen = String::new();
        let mut ready = std::collections::BTreeSet::new();
        while ready.len() < names.len() {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let Ok(line) = received.recv_timeout(left) else {
                let _ = child.kill();
                panic!("kubectl get partners -w never showed {names:?} ready:\n{seen}");
            };
            seen.push_str(&line);
            seen.push('\n');
            let columns: Vec<&str> = line.split_whitespace().collect();
            if let [name, .., ready_column, _age] = columns[..]
                && names.contains(&name)
                && ready_column == "True"
            {
                ready.insert(name.to_string());
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        assert!(seen.starts_with("NAME "), "{seen}");
        seen
    }

    /// `kubectl wait --for=jsonpath=...` on a Partner.
    fn wait_for(&self, partner: &str, path: &str, value: &str) {
        self.ok(&[
            "wait",
            "-n",
            NS,
            &format!("partner/{partner}"),
            &format!("--for=jsonpath={{{path}}}={value}"),
            "--timeout=60s",
        ]);
    }
}

const NS: &str = "northwind-partners";

/// One message in the outbox, as a user would read it in a mail client.
struct Mail {
    file: String,
    to: String,
    subject: String,
    text: String,
    /// The `.txt` beside the `.eml`: what the walkthrough has a user `cat`.
    readable: String,
}

fn read_outbox(dir: &Path) -> Vec<Mail> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "eml"));
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let raw = std::fs::read(&path).unwrap();
            let message = mail_parser::MessageParser::default().parse(&raw).unwrap();
            let to = message
                .to()
                .map(|to| {
                    to.iter()
                        .filter_map(|a| a.address())
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            let readable = std::fs::read_to_string(path.with_extension("txt"))
                .unwrap_or_else(|err| panic!("the .txt beside {}: {err}", path.display()));
            Mail {
                readable,
                file: path.file_name().unwrap().to_string_lossy().into_owned(),
                to,
                subject: message.subject().unwrap_or_default().to_string(),
                text: message.body_text(0).unwrap_or_default().into_owned(),
            }
        })
        .collect()
}

/// Waits until the outbox holds a message of `kind` to `address`.
fn wait_for_mail(dir: &Path, kind: &str, address: &str) -> Mail {
    eventually_blocking(
        format!("a {kind} email to {address} in the outbox"),
        Patience::WALKTHROUGH,
        || {
            let outbox = read_outbox(dir);
            let files: Vec<_> = outbox
                .iter()
                .map(|m| (m.file.clone(), m.to.clone()))
                .collect();
            outbox
                .into_iter()
                .find(|m| m.file.ends_with(&format!("-{kind}.eml")) && m.to.contains(address))
                .ok_or(files)
        },
    )
}

/// The walkthrough's activation: contoso's link from its `.txt`, opened with `curl` (the page;
/// nothing changes), then POSTed (activated), the second time refused; the Partner says so.
fn activate_contoso(target: &Target, outbox: &Path) {
    let mail = std::fs::read_dir(outbox)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with("-activation.txt"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .find(|text| text.contains("To: admin@contoso.example"))
        .expect("contoso's activation .txt");
    // LINK=$(grep -o 'http://127.0.0.1:[0-9]*/activate?[^ ]*' "$MAIL")
    let link = mail
        .split_whitespace()
        .find(|w| w.starts_with("http://127.0.0.1:") && w.contains("/activate?"))
        .expect("the link")
        .to_string();
    let curl = |args: &[&str]| {
        let output = Command::new("curl").args(args).output().expect("curl runs");
        assert!(output.status.success(), "curl {args:?}: {output:?}");
        String::from_utf8(output.stdout).unwrap()
    };
    let page = curl(&["-s", &link]);
    assert!(
        page.contains(
            "Your tenant with Northwind Distribution is ready for Contoso IT Services: activate it to start using it."
        ),
        "{page}"
    );
    assert!(page.contains(">Activate</button>"), "{page}");
    assert_eq!(
        target.jsonpath("partner/contoso", ".status.activation.activatedAt"),
        ""
    );
    let code = |args: &[&str]| {
        curl(
            &[
                &["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST"],
                args,
            ]
            .concat(),
        )
    };
    assert_eq!(code(&[&link]), "200");
    assert_eq!(code(&[&link]), "409");
    target.ok(&[
        "wait",
        "partner/contoso",
        "-n",
        NS,
        "--for=condition=Activated",
        "--timeout=30s",
    ]);
    let (_, rows) = table(&target.ok(&["get", "partner", "contoso", "-n", NS]));
    let contoso = row(&rows, "contoso");
    assert_eq!(
        contoso[contoso.len() - 3],
        target.jsonpath("partner/contoso", ".status.activation.activatedAt")
    );
    assert!(
        target
            .event_reasons("Partner", "contoso")
            .contains("Activated")
    );
    wait_for_mail(outbox, "activated", "ops@northwind.example");
}

fn apply_examples(target: &Target) {
    let applied = target.ok(&["apply", "-f", examples().to_str().unwrap()]);
    for object in [
        "namespace/northwind-partners",
        "distributor.partner-operator.io/northwind",
        "partner.partner-operator.io/contoso",
        "partner.partner-operator.io/fabrikam",
        "partner.partner-operator.io/litware",
    ] {
        assert!(applied.contains(object), "{applied}");
    }
    let waited = target.ok(&[
        "wait",
        "--for=condition=Ready",
        "partners",
        "--all",
        "-n",
        NS,
        "--timeout=60s",
    ]);
    assert_eq!(waited.matches("condition met").count(), 3, "{waited}");
}

/// Points the examples' Distributor at the sandbox's webhook receiver (`url`: the test's
/// sandbox has no fixed port); on a cluster, where nothing listens at the examples' loopback
/// address, takes its endpoints away, or each Partner's deletion would wait for deliveries
/// that cannot succeed.
fn point_webhooks(target: &Target, url: Option<&str>) {
    let patch = match url {
        Some(url) => {
            json!([{"op": "replace", "path": "/spec/webhooks/endpoints/0/url", "value": url}])
        }
        None => json!([{"op": "remove", "path": "/spec/webhooks"}]),
    };
    target.ok(&[
        "patch",
        "distributor",
        "northwind",
        "--type=json",
        "-p",
        &patch.to_string(),
    ]);
}

/// A table's rows as columns, keyed by the first column.
fn table(output: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut lines = output.lines();
    let header = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let rows = lines
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect();
    (header, rows)
}

fn row<'a>(rows: &'a [Vec<String>], name: &str) -> &'a [String] {
    rows.iter()
        .find(|r| r.first().is_some_and(|n| n == name))
        .unwrap_or_else(|| panic!("no row {name} in {rows:?}"))
}

const ADATUM: &str = "apiVersion: partner-operator.io/v1alpha1
kind: Partner
metadata: {name: adatum, namespace: northwind-partners}
spec:
  organizationName: Adatum Support
  notificationEmail: ops@adatum.example
  distributorRef: {name: northwind}
  subscription: {autoUpgrade: false}
";

/// Everything in the walkthrough that needs no fast clock.
fn walkthrough_at_real_speed(target: &Target, webhooks: Option<&str>) {
    apply_examples(target);
    point_webhooks(target, webhooks);
    target.watch_partners_until_ready(&["contoso", "fabrikam", "litware"]);

    // kubectl get partners: the printer columns.
    let (header, rows) = table(&target.ok(&["get", "partners", "-n", NS]));
    assert_eq!(
        header,
        [
            "NAME",
            "ORGANIZATION",
            "DISTRIBUTOR",
            "LEVEL",
            "EXPIRES",
            "ACTIVATED",
            "READY",
            "AGE"
        ]
    );
    // Organization names have spaces: count columns from the right (ACTIVATED is empty: nobody
    // activated yet).
    let contoso = row(&rows, "contoso");
    assert_eq!(
        &contoso[contoso.len() - 4..contoso.len() - 1],
        ["Trial", &contoso[contoso.len() - 3], "True"]
    );
    let litware = row(&rows, "litware");
    assert_eq!(
        &litware[litware.len() - 4..litware.len() - 1],
        ["Production", "2027-06-30T00:00:00Z", "True"]
    );

    // The Distributor's counts (written at most once every 2 s: each count may trail a little).
    for count in ["trial}=2", "production}=1"] {
        target.ok(&[
            "wait",
            "distributor/northwind",
            &format!("--for=jsonpath={{.status.partners.{count}"),
            "--timeout=30s",
        ]);
    }
    let (header, rows) = table(&target.ok(&["get", "dist"]));
    assert_eq!(
        header,
        [
            "NAME",
            "ORGANIZATION",
            "SKUS",
            "TRIAL",
            "PRODUCTION",
            "READY",
            "AGE"
        ]
    );
    let northwind = row(&rows, "northwind");
    assert_eq!(
        &northwind[northwind.len() - 4..northwind.len() - 1],
        ["2", "1", "True"]
    );

    // describe: the conditions (their types).
    let described = target.ok(&["describe", "partner", "contoso", "-n", NS]);
    for expected in ["TenantProvisioned", "ActivationSent", "DistributorBound"] {
        assert!(described.contains(expected), "{expected}:\n{described}");
    }
    // An onboarding that went as planned records no Events: its conditions tell it (and
    // `TenantProvisioned` would have been recorded before the Partner was Ready).
    let reasons = target.event_reasons("Partner", "contoso");
    assert!(
        !reasons.contains(EventReason::TenantProvisioned.as_str()),
        "{reasons:?}"
    );

    // The tenant and its entitlements.
    let tenant = target.ok(&[
        "get",
        "ns",
        "-l",
        "partner-operator.io/partner=contoso",
        "-o",
        "name",
    ]);
    // The name reported in status, readable, ending in a hash of the Partner's uid.
    let contoso_tenant = target
        .jsonpath("partner/contoso", ".status.tenant.namespace")
        .trim()
        .to_string();
    assert!(
        contoso_tenant.starts_with("northwind-partners-contoso-"),
        "{contoso_tenant}"
    );
    assert_eq!(tenant.trim(), format!("namespace/{contoso_tenant}"));
    let (header, rows) =
        table(&target.ok(&["get", "ns", "-l", "partner-operator.io/partner=contoso"]));
    assert_eq!(header, ["NAME", "STATUS", "AGE"]);
    assert_eq!(row(&rows, &contoso_tenant)[1], "Active");
    let entitlements = target.ok(&[
        "get",
        "configmap",
        "entitlements",
        "-n",
        &contoso_tenant,
        "-o",
        "yaml",
    ]);
    for expected in ["ESSENTIALS", "GOVERNANCE", "Trial", "Contoso IT Services"] {
        assert!(
            entitlements.contains(expected),
            "{expected}:\n{entitlements}"
        );
    }

    // The activation email: to the partner, a link to the Distributor's portal naming the tenant.
    if let Some(outbox) = target.outbox() {
        let tenant_id = target.jsonpath("partner/contoso", ".status.tenant.id");
        let mail = wait_for_mail(&outbox, "activation", "admin@contoso.example");
        assert!(
            mail.subject.contains("Contoso IT Services"),
            "{}",
            mail.subject
        );
        // The sandbox's own activation service on loopback.
        let link = format!("/activate?tenant={tenant_id}&token=");
        assert!(mail.text.contains(&link), "{link} not in:\n{}", mail.text);
        // What `cat` of the .txt shows: the link whole on one line, the headers decoded.
        let whole = mail
            .text
            .split_whitespace()
            .find(|word| word.starts_with("http://127.0.0.1:") && word.contains(&link))
            .unwrap();
        assert!(
            mail.readable.lines().any(|line| line.contains(whole)),
            "{whole} not whole in:\n{}",
            mail.readable
        );
        assert!(
            mail.readable
                .contains(&format!("Subject: {}\n", mail.subject)),
            "{}",
            mail.readable
        );
        assert!(!mail.readable.contains("=3D"), "{}", mail.readable);
        // A fresh outbox: this run's messages are numbered from 0001, each with its .txt.
        let files = read_outbox(&outbox);
        assert!(files[0].file.starts_with("0001-"), "{}", files[0].file);
        // `cat .sandbox/outbox/*-activation.txt`: one per Partner.
        let readable =
            eventually_blocking("three activation .txt files", Patience::WALKTHROUGH, || {
                let names: Vec<String> = std::fs::read_dir(&outbox)
                    .unwrap()
                    .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .filter(|name| name.ends_with("-activation.txt"))
                    .collect();
                if names.len() == 3 {
                    Ok(names)
                } else {
                    Err(names)
                }
            });
        for name in readable {
            let text = std::fs::read_to_string(outbox.join(&name)).unwrap();
            assert!(text.contains("/activate?tenant="), "{name}:\n{text}");
        }
        activate_contoso(target, &outbox);
    }

    // Convert fabrikam by hand, until a date in the future.
    target.ok(&[
        "patch",
        "partner",
        "fabrikam",
        "-n",
        NS,
        "--type=merge",
        "-p",
        r#"{"spec":{"subscription":{"level":"Production","expirationDate":"2030-01-01T00:00:00Z"}}}"#,
    ]);
    target.wait_for("fabrikam", ".status.subscriptionLevel", "Production");
    assert_eq!(
        target.jsonpath("partner/fabrikam", ".status.production.reason"),
        "Manual"
    );
    assert_eq!(
        target.jsonpath("partner/fabrikam", ".status.expiresAt"),
        "2030-01-01T00:00:00Z"
    );
    if let Some(outbox) = target.outbox() {
        wait_for_mail(&outbox, "converted", "it@fabrikam.example");
    }

    // A partner that will not convert on its own; a date in the past is refused.
    stdout(&target.kubectl_with_input(&["apply", "-f", "-"], Some(ADATUM)));
    target.wait_for("adatum", ".status.subscriptionLevel", "Trial");
    target.ok(&[
        "patch",
        "partner",
        "adatum",
        "-n",
        NS,
        "--type=merge",
        "-p",
        r#"{"spec":{"subscription":{"level":"Production","expirationDate":"2020-01-01T00:00:00Z"}}}"#,
    ]);
    target.wait_for(
        "adatum",
        r#".status.conditions[?(@.type=="Ready")].reason"#,
        "ExpirationDateInPast",
    );
    assert_eq!(
        target.jsonpath("partner/adatum", ".status.subscriptionLevel"),
        "Trial"
    );

    // An invalid manifest is refused by kubectl apply, naming the field.
    let refused = target.kubectl_with_input(
        &["apply", "-f", "-"],
        Some(&ADATUM.replace("adatum, ", "bad, ").replace(
            "subscription: {autoUpgrade: false}",
            "subscription: {level: production}",
        )),
    );
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(message.contains("spec.subscription.level"), "{message}");

    // Delete: contoso's tenant goes with it (deletionPolicy Delete); litware's stays (Retain).
    let litware_tenant = target
        .jsonpath("partner/litware", ".status.tenant.namespace")
        .trim()
        .to_string();
    assert!(
        litware_tenant.starts_with("northwind-partners-litware-"),
        "{litware_tenant}"
    );
    let (_, rows) = table(&target.ok(&["get", "partners", "-n", NS]));
    let adatum = row(&rows, "adatum");
    assert_eq!(
        &adatum[adatum.len() - 4..adatum.len() - 1],
        ["Trial", &adatum[adatum.len() - 3], "False"]
    );
    target.ok(&[
        "delete",
        "partner",
        "contoso",
        "litware",
        "-n",
        NS,
        "--timeout=60s",
    ]);
    target.ok(&[
        "wait",
        "--for=delete",
        &format!("namespace/{contoso_tenant}"),
        "--timeout=60s",
    ]);
    target.ok(&["get", "namespace", &litware_tenant]);
    let (_, rows) = table(&target.ok(&["get", "ns", "-l", "partner-operator.io/partner=litware"]));
    row(&rows, &litware_tenant);
}

/// What two weeks do, at a day a second: the notices, the automatic upgrade, the expiry; and
/// the webhook events of each, at the sandbox's receiver (`webhooks`: where it listens, which
/// the examples' Distributor is pointed at: the test's sandbox has no fixed port).
fn walkthrough_over_two_weeks(target: &Target, webhooks: &str) {
    apply_examples(target);
    point_webhooks(target, Some(webhooks));
    target.watch_partners_until_ready(&["contoso", "fabrikam", "litware"]);
    let outbox = target.outbox().expect("a sandbox");
    // The partner and the distributor each get their own notice; neither sees the other.
    let notice = wait_for_mail(&outbox, "upgrade-notice", "admin@contoso.example");
    assert!(
        !notice.readable.contains("ops@northwind.example"),
        "{}",
        notice.readable
    );
    let copy = wait_for_mail(&outbox, "upgrade-notice", "ops@northwind.example");
    assert!(
        copy.readable.contains("Copy of a partner notice")
            && !copy.readable.contains("admin@contoso.example"),
        "{}",
        copy.readable
    );
    let expiry = wait_for_mail(&outbox, "expiry-notice", "it@fabrikam.example");
    assert!(
        !expiry.to.contains("ops@northwind.example"),
        "{}",
        expiry.to
    );

    target.wait_for("contoso", ".status.subscriptionLevel", "Production");
    assert_eq!(
        target.jsonpath("partner/contoso", ".status.production.reason"),
        "AutoUpgrade"
    );
    // Billing starts at the trial's end, not when the operator got round to it.
    let billing = target.jsonpath("partner/contoso", ".status.billing");
    assert!(billing.contains("startedAt"), "{billing}");
    assert_eq!(
        target.jsonpath("partner/contoso", ".status.billing.startedAt"),
        target.jsonpath("partner/contoso", ".status.trial.endsAt")
    );
    wait_for_mail(&outbox, "converted", "admin@contoso.example");
    // The Events about contoso, by reason, from the events.k8s.io API (not the condition
    // types, which share some of these names).
    let expected = [
        EventReason::ConvertedToProduction,
        EventReason::BillingStarted,
    ];
    eventually_blocking(
        "the Events ConvertedToProduction and BillingStarted about contoso",
        Patience::WALKTHROUGH,
        || {
            let reasons = target.event_reasons("Partner", "contoso");
            if expected.iter().all(|r| reasons.contains(r.as_str())) {
                Ok(())
            } else {
                Err(reasons)
            }
        },
    );
    // Troubleshooting: the Partner's Events, two ways.
    let events = target.ok(&["events", "-n", NS, "--for", "partner/contoso"]);
    for expected in ["ConvertedToProduction", "BillingStarted"] {
        assert!(events.contains(expected), "{expected}:\n{events}");
    }
    let events = target.ok(&[
        "get",
        "events",
        "-n",
        NS,
        "--field-selector",
        "involvedObject.name=contoso",
    ]);
    assert!(events.contains("BillingStarted"), "{events}");
    assert!(!events.contains("fabrikam"), "{events}");

    target.wait_for("fabrikam", ".status.subscriptionLevel", "Expired");
    assert_eq!(
        target.jsonpath(
            "partner/fabrikam",
            r#".status.conditions[?(@.type=="Ready")].status"#
        ),
        "False"
    );
    wait_for_mail(&outbox, "trial-expired", "it@fabrikam.example");
    target.ok(&[
        "wait",
        "distributor/northwind",
        "--for=jsonpath={.status.billing.productionPartners}=2",
        "--timeout=30s",
    ]);
    // Every message went out once.
    let mails = read_outbox(&outbox);
    let mut ids: Vec<_> = mails.iter().map(|m| (&m.file[5..], &m.to)).collect();
    let count = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), count, "a message went out twice");

    // `ls .sandbox/webhooks/`: each Partner's lifecycle, in order, each event once.
    let Target::Sandbox(sandbox) = target else {
        unreachable!("a sandbox")
    };
    let dir = sandbox.dir.path().join("webhooks");
    let want = |events: &[&str]| events.iter().map(|e| e.to_string()).collect::<Vec<_>>();
    eventually_blocking(
        "the webhook events of two weeks",
        Patience::WALKTHROUGH,
        || {
            let events = webhook_events(&dir);
            let done = events.get("contoso")
                == Some(&want(&[
                    "provisioned",
                    "trial-ending",
                    "converted",
                    "period-started",
                ]))
                && events.get("fabrikam")
                    == Some(&want(&["provisioned", "trial-ending", "expired"]))
                && events.get("litware") == Some(&want(&["provisioned", "period-started"]));
            if done { Ok(()) } else { Err(events) }
        },
    );
}

crate::on_both_servers_blocking!(
    the_readme_walkthrough,
    the_readme_walkthrough_over_two_weeks
);

fn the_readme_walkthrough(server: Server) {
    match std::env::var_os("PARTNER_OPERATOR_E2E_KUBECONFIG").filter(|_| server == Server::Sandbox)
    {
        Some(kubeconfig) => {
            let cluster = Target::Cluster(kubeconfig.into());
            walkthrough_at_real_speed(&cluster, None);
            let _ =
                cluster.kubectl(&["delete", "-f", examples().to_str().unwrap(), "--wait=false"]);
            let _ = cluster.kubectl(&["delete", "partner", "adatum", "-n", NS]);
        }
        None => {
            let mut sandbox = Sandbox::start_on(server, &[]);
            let webhooks = sandbox.webhooks_url();
            walkthrough_at_real_speed(&Target::Sandbox(sandbox), Some(&webhooks));
        }
    }
}

fn the_readme_walkthrough_over_two_weeks(server: Server) {
    let mut sandbox = Sandbox::start_on(server, &["--speed", "86400"]);
    let webhooks = sandbox.webhooks_url();
    walkthrough_over_two_weeks(&Target::Sandbox(sandbox), &webhooks);
}

/// The sandbox's verified deliveries (`.sandbox/webhooks/NNNN-<type>.json`), per Partner: the
/// event types in order of arrival, each id once.
fn webhook_events(dir: &Path) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map(|entries| entries.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    files.sort();
    let mut seen = BTreeSet::new();
    let mut events = std::collections::BTreeMap::<String, Vec<String>>::new();
    for file in files {
        let delivery: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let body = &delivery["body"];
        assert_eq!(delivery["headers"]["webhook-id"], body["id"], "{delivery}");
        if !seen.insert(body["id"].to_string()) {
            continue;
        }
        let name = body["subject"]
            .as_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap();
        let short = body["type"].as_str().unwrap().rsplit('.').next().unwrap();
        let numbered = file.file_name().unwrap().to_string_lossy().to_string();
        assert!(numbered.ends_with(&format!("-{short}.json")), "{numbered}");
        events
            .entry(name.to_string())
            .or_default()
            .push(short.to_string());
    }
    events
}

crate::on_both_servers_blocking!(the_readme_as_written);

/// The README's walkthrough, its commands taken from the README itself and run in order in one
/// bash (see [`support::reader`]), from a directory laid out as the clone's root: `.sandbox`
/// is the state directory of the sandbox the quick start started, `examples/` the project's.
/// What each step prints is what the README says it prints.
fn the_readme_as_written(server: Server) {
    let sandbox = Sandbox::start_on(server, &[]);
    let root = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(sandbox.dir.path(), root.path().join(".sandbox")).unwrap();
    std::os::unix::fs::symlink(examples(), root.path().join("examples")).unwrap();
    let readme = std::fs::read_to_string(support::read::project("README.md")).unwrap();
    let blocks = support::reader::shell_blocks(&readme, "## Walkthrough");
    assert_eq!(blocks.len(), 3, "{blocks:?}");
    let path = std::env::var("PATH").unwrap();
    let (printed, output) = support::reader::run(root.path(), "", &path, &blocks);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the README's commands failed:\n{}\n{stderr}",
        printed.join("\n")
    );

    // Applied, and watched until all three are READY True; litware is created in Production.
    let applied = &printed[0];
    assert!(
        applied.contains("distributor.partner-operator.io/northwind created"),
        "{applied}"
    );
    for name in ["contoso", "fabrikam", "litware"] {
        let ready = applied.lines().any(|line| {
            let columns: Vec<&str> = line.split_whitespace().collect();
            columns.first() == Some(&name) && columns[columns.len() - 2] == "True"
        });
        assert!(ready, "{name} never READY True:\n{applied}");
    }
    assert!(
        applied
            .lines()
            .any(|l| l.starts_with("litware") && l.contains("Production")),
        "{applied}"
    );

    // The Distributor, contoso's conditions, the outbox and the activation email, decoded.
    let looked = &printed[1];
    assert!(looked.contains("northwind"), "{looked}");
    for reason in ["TenantProvisioned", "ActivationSent"] {
        assert!(looked.contains(reason), "{reason}:\n{looked}");
    }
    assert!(looked.contains("-activation.eml"), "{looked}");
    assert!(looked.contains("-activation.txt"), "{looked}");
    assert!(looked.contains("To: admin@contoso.example"), "{looked}");

    // The page, activated once (200), refused again (409), and the condition met.
    let activated = &printed[2];
    assert!(activated.contains("Activate your tenant"), "{activated}");
    let codes: Vec<&str> = activated
        .lines()
        .filter(|l| matches!(l.trim(), "200" | "409"))
        .collect();
    assert_eq!(codes, ["200", "409"], "{activated}");
    assert!(
        activated.contains("partner.partner-operator.io/contoso condition met"),
        "{activated}"
    );
    let (header, rows) = table(
        activated
            .rsplit("condition met")
            .next()
            .unwrap()
            .trim_start(),
    );
    // Counted from the end: the organization's name has spaces.
    assert_eq!(header[header.len() - 3], "ACTIVATED", "{activated}");
    let contoso = row(&rows, "contoso");
    assert!(contoso[contoso.len() - 3].ends_with('Z'), "{activated}");
}

crate::on_both_servers_blocking!(the_walkthrough_page_as_written);

/// docs/walkthrough.md from top to bottom, its commands taken from the page and run as written
/// (see [`support::reader`]): each `cargo run -- sandbox` block starts the sandbox with its
/// arguments (the examples' webhook port asked for, as the command does: when another test
/// holds it, the sandbox stands in for it), the rest runs in one bash per sandbox, in a
/// directory laid out as the clone's root, with the plugin alone on `PATH` as `cargo install`
/// leaves it. What the page says each step prints is checked in what they printed.
fn the_walkthrough_page_as_written(server: Server) {
    use support::reader::{self, Step};
    let page = std::fs::read_to_string(support::read::project("docs/walkthrough.md")).unwrap();
    let steps = reader::steps(&reader::shell_blocks(&page, "# Walkthrough"));
    assert!(
        matches!(steps.first(), Some(Step::Sandbox(_))),
        "the page starts the sandbox first: {steps:?}"
    );
    let root = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(examples(), root.path().join("examples")).unwrap();
    let bin = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(
        env!("CARGO_BIN_EXE_kubectl-partner"),
        bin.path().join("kubectl-partner"),
    )
    .unwrap();
    let path = format!("{}:/usr/bin:/bin", bin.path().display());
    let mut sandbox: Option<Sandbox> = None;
    let mut pending: Vec<String> = vec![];
    let mut prelude = String::new();
    let mut transcript = String::new();
    let mut flush = |pending: &mut Vec<String>, prelude: &mut String| {
        if pending.is_empty() {
            return;
        }
        let (printed, output) = reader::run(root.path(), prelude, &path, pending);
        transcript.push_str(&printed.join("\n"));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "the page's commands failed:\n{transcript}\n{stderr}"
        );
        // What the second terminal keeps: its exports.
        for line in pending.iter().flat_map(|b| b.lines()) {
            if line.starts_with("export ") {
                prelude.push_str(line);
                prelude.push('\n');
            }
        }
        pending.clear();
    };
    for step in steps {
        match step {
            Step::Sandbox(args) => {
                flush(&mut pending, &mut prelude);
                drop(sandbox.take());
                let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
                args.extend(["--webhook-port", "8082"]);
                let started = Sandbox::start_on(server, &args);
                let link = root.path().join(".sandbox");
                let _ = std::fs::remove_file(&link);
                std::os::unix::fs::symlink(started.dir.path(), &link).unwrap();
                sandbox = Some(started);
            }
            Step::Shell(block) => pending.push(block),
        }
    }
    flush(&mut pending, &mut prelude);
    drop(sandbox);

    for expected in [
        // The raw steps.
        "distributor.partner-operator.io/northwind created",
        "To: admin@contoso.example",
        "partner.partner-operator.io/contoso condition met",
        r#""status":"activated""#,
        "partner.partner-operator.io/fabrikam patched",
        "level: Trial",
        "partner.partner-operator.io/adatum created",
        r#"partner.partner-operator.io "contoso" deleted"#,
        r#"partner.partner-operator.io "litware" deleted"#,
        "northwind-partners-litware-",
        // The plugin's.
        "kubectl-partner",
        "Partner northwind-partners/tailspin",
        "partner northwind-partners/tailspin converted to Production",
        // Two weeks at a day a second: contoso billed from its trial's end, told on the
        // sandbox's clock, and the distributor's webhooks.
        "condition met",
        "startedAt",
        "billing:      to northwind since",
        "converted.json",
    ] {
        assert!(
            transcript.contains(expected),
            "{expected:?} in:\n{transcript}"
        );
    }
    let adatum = transcript
        .lines()
        .find(|l| l.starts_with("adatum "))
        .unwrap_or_default();
    assert!(
        adatum.contains("Trial") && adatum.contains("False"),
        "{transcript}"
    );
}
