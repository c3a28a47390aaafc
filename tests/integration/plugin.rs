//! `kubectl partner`: the built `kubectl-partner` run through the stock `/usr/bin/kubectl`, found
//! by kubectl's plugin discovery on the PATH, against the embedded API server and the real
//! kube-apiserver, with the operator running in-process and a clock the test moves. The plugin
//! reads the same instant as the operator through `KUBECTL_PARTNER_NOW`.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Output;

use kube::api::{Patch, PatchParams};
use partner_operator::api::Partner;
use partner_operator::plugin::NOW_ENV;
use serde_json::{Value, json};
use support::*;

crate::on_both_servers!(
    a_partners_life_through_the_plugin,
    fields_of_other_managers_and_bad_input,
);

const NS: &str = "northwind-partners";

/// kubectl with the plugin on its PATH and the test server in its kubeconfig.
struct Kubectl {
    dir: tempfile::TempDir,
}

impl Kubectl {
    fn new(h: &Harness) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("bin")).unwrap();
        // The plugin as a user installs it: an executable named kubectl-partner on the PATH.
        std::os::unix::fs::symlink(
            env!("CARGO_BIN_EXE_kubectl-partner"),
            dir.path().join("bin/kubectl-partner"),
        )
        .unwrap();
        std::fs::write(dir.path().join("kubeconfig"), h.server.kubeconfig_yaml()).unwrap();
        Self { dir }
    }

    fn bin(&self) -> PathBuf {
        self.dir.path().join("bin")
    }

    /// `kubectl ARGS`, now being the harness clock's instant.
    async fn run(&self, h: &Harness, args: &[&str]) -> Output {
        let path = format!("{}:/usr/bin:/bin", self.bin().display());
        tokio::process::Command::new("/usr/bin/kubectl")
            .args(args)
            .env("PATH", path)
            .env("KUBECONFIG", self.dir.path().join("kubeconfig"))
            .env(NOW_ENV, h.clock.now().to_rfc3339())
            .output()
            .await
            .unwrap()
    }

    /// `kubectl partner ARGS -n northwind-partners`: its stdout, after asserting it succeeded.
    async fn ok(&self, h: &Harness, args: &[&str]) -> String {
        let output = self.partner(h, args).await;
        let (stdout, stderr) = texts(&output);
        assert!(
            output.status.success(),
            "kubectl partner {} failed:\n{stderr}{stdout}",
            args.join(" ")
        );
        stdout
    }

    /// The one line `kubectl partner ARGS -n northwind-partners` prints on stderr, after
    /// asserting it failed and printed nothing else.
    async fn fails(&self, h: &Harness, args: &[&str]) -> String {
        let output = self.partner(h, args).await;
        let (stdout, stderr) = texts(&output);
        assert!(
            !output.status.success(),
            "kubectl partner {} succeeded:\n{stdout}",
            args.join(" ")
        );
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "kubectl partner {}: one line on stderr, got:\n{stderr}",
            args.join(" ")
        );
        assert!(lines[0].starts_with("error: "), "{stderr}");
        lines[0].to_string()
    }

    async fn partner(&self, h: &Harness, args: &[&str]) -> Output {
        let mut all = vec!["partner"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["-n", NS]);
        self.run(h, &all).await
    }
}

fn texts(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Each line with its runs of blanks made one space: what a reader sees of a table or of
/// aligned `label: value` lines, whatever the column widths.
fn lines(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

/// Asserts that `text` holds `expected` as consecutive lines (blanks as in [`lines`]).
#[track_caller]
fn has_lines(text: &str, expected: &[&str]) {
    let seen = lines(text);
    let found = seen
        .windows(expected.len())
        .any(|w| w.iter().zip(expected).all(|(a, b)| a == b));
    assert!(
        found,
        "expected the lines\n{}\nin\n{text}",
        expected.join("\n")
    );
}

/// The lines of `text` from the one equal to `heading` to the next blank line.
fn section(text: &str, heading: &str) -> Vec<String> {
    lines(text)
        .into_iter()
        .skip_while(|l| l != heading)
        .skip(1)
        .take_while(|l| !l.is_empty())
        .collect()
}

async fn partner_now(h: &Harness, name: &str) -> Partner {
    h.partners(NS).get(name).await.unwrap()
}

/// Waits until `name` is at `level` with every email it decided sent.
async fn wait_settled_at(h: &Harness, name: &str, level_: SubscriptionLevel) {
    h.wait_partner(NS, name, &format!("{level_}, emails sent"), |p| {
        level(p) == level_
            && p.status
                .as_ref()
                .is_some_and(|s| s.emails.iter().all(|e| e.sent_at.is_some()))
    })
    .await;
}

async fn a_partners_life_through_the_plugin(server: Server) {
    let h = Harness::start(server).await;
    h.northwind(true).await;
    let kubectl = Kubectl::new(&h);

    // kubectl finds the plugin on the PATH.
    let plugins = kubectl.run(&h, &["plugin", "list"]).await;
    let (listed, _) = texts(&plugins);
    assert!(
        listed.contains(&format!("{}/kubectl-partner", kubectl.bin().display())),
        "{listed}"
    );

    // add: the Distributor found from the namespace; the wait is visible; what was made.
    let output = kubectl
        .partner(
            &h,
            &[
                "add",
                "contoso",
                "--org",
                "Contoso IT Services",
                "--email",
                "admin@contoso.example",
            ],
        )
        .await;
    let (added, progress) = texts(&output);
    assert!(output.status.success(), "{progress}{added}");
    assert!(
        progress.starts_with(&format!("waiting up to 60s for {NS}/contoso")),
        "{progress}"
    );
    has_lines(
        &added,
        &[
            &format!("partner {NS}/contoso created"),
            "organization: Contoso IT Services <admin@contoso.example>",
            "distributor: northwind (Northwind Distribution)",
            "level: Trial, Ready",
        ],
    );
    let tenant = partner_operator::tenant::tenant_namespace_of(&partner_now(&h, "contoso").await);
    let tenant_line = lines(&added)[4].clone();
    assert!(
        tenant_line.starts_with(&format!("tenant: {tenant} (id ")),
        "{added}"
    );
    has_lines(
        &added,
        &[
            "trial ends: 2027-03-15T09:00:00Z (in 14 days)",
            "auto-upgrade: on (the Distributor's default)",
            "activation: email sent to admin@contoso.example at 2027-03-01T09:00:00Z",
        ],
    );
    let fabrikam = kubectl
        .ok(
            &h,
            &[
                "add",
                "fabrikam",
                "--org",
                "Fabrikam Managed Services",
                "--email",
                "admin@fabrikam.example",
                "--distributor",
                "northwind",
                "--no-auto-upgrade",
            ],
        )
        .await;
    has_lines(
        &fabrikam,
        &[
            "trial ends: 2027-03-15T09:00:00Z (in 14 days)",
            "auto-upgrade: off (spec.subscription.autoUpgrade)",
        ],
    );
    let litware = kubectl
        .ok(
            &h,
            &[
                "add",
                "litware",
                "--org",
                "Litware Cloud Partners",
                "--email",
                "admin@litware.example",
                "--production",
                "--expires",
                "2027-06-30",
            ],
        )
        .await;
    has_lines(&litware, &["level: Production, Ready"]);
    has_lines(
        &litware,
        &[
            "expires: 2027-06-30T00:00:00Z (in 121 days)",
            "billing: to northwind since 2027-03-01T09:00:00Z (now)",
            "activation: email sent to admin@litware.example at 2027-03-01T09:00:00Z",
        ],
    );

    // list: the portal's table, and the same rows as data.
    let list = kubectl.ok(&h, &["list"]).await;
    assert_eq!(
        lines(&list),
        [
            "NAME ORGANIZATION DISTRIBUTOR LEVEL ACTIVATION DAYS LEFT AUTO-UPGRADE BILLING SINCE",
            "contoso Contoso IT Services northwind Trial sent 14d on -",
            "fabrikam Fabrikam Managed Services northwind Trial sent 14d off -",
            "litware Litware Cloud Partners northwind Production sent 121d on 2027-03-01T09:00:00Z",
        ]
    );
    let rows: Value = serde_json::from_str(&kubectl.ok(&h, &["list", "-o", "json"]).await).unwrap();
    assert_eq!(rows[2]["name"], "litware");
    assert_eq!(rows[2]["expiresAt"], "2027-06-30T00:00:00Z");
    assert_eq!(rows[1]["autoUpgrade"], "off");
    assert_eq!(rows[0]["tenant"], tenant.as_str());
    let wide = kubectl.ok(&h, &["list", "-o", "wide"]).await;
    assert!(
        lines(&wide)[1].ends_with(&format!("2027-03-15T09:00:00Z True {tenant}")),
        "{wide}"
    );
    let yaml: Value = serde_yaml::from_str(&kubectl.ok(&h, &["list", "-o", "yaml"]).await).unwrap();
    assert_eq!(yaml[0]["level"], "Trial");
    let all = kubectl.run(&h, &["partner", "list", "-A"]).await;
    assert!(lines(&texts(&all).0)[1].starts_with("northwind-partners contoso "));

    // status of a fresh trial: its story, then the notice and the conversion ahead, as the
    // operator's lifecycle will do them.
    let status = kubectl.ok(&h, &["status", "contoso"]).await;
    has_lines(
        &status,
        &[
            &format!("Partner {NS}/contoso"),
            "organization: Contoso IT Services <admin@contoso.example>",
        ],
    );
    let story = section(&status, "Story:");
    assert!(
        story.contains(&format!(
            "2027-03-01T09:00:00Z tenant {tenant} provisioned; trial until 2027-03-15T09:00:00Z"
        )),
        "{status}"
    );
    assert!(
        story.contains(
            &"2027-03-01T09:00:00Z activation email sent to admin@contoso.example (link valid \
              until 2027-03-08T09:00:00Z)"
                .to_string()
        ),
        "{status}"
    );
    assert_eq!(
        section(&status, "Next:"),
        [
            "next: 2027-03-12T09:00:00Z (in 11 days)",
            "the notice: the trial converts to Production on 2027-03-15T09:00:00Z",
            "email upgrade-notice to admin@contoso.example, ops@northwind.example",
            "then: 2027-03-15T09:00:00Z (in 14 days)",
            "the trial ends and converts to Production (auto-upgrade on, the Distributor's \
             default); billing to northwind starts then",
            "email converted to admin@contoso.example, ops@northwind.example",
        ]
    );
    // An onboarding as planned is told by the conditions and the status alone.
    let events = section(&status, "Recent events:");
    assert_eq!(events, ["none"], "{status}");
    assert!(!status.contains("Conditions not True:"), "{status}");

    // Day 4: fabrikam converted by hand with a date; the fields the plugin set before (its
    // auto-upgrade off) are kept by the apply.
    h.advance_days(4);
    let converted = kubectl
        .ok(&h, &["convert", "fabrikam", "--expires", "2027-03-20"])
        .await;
    assert_eq!(
        lines(&converted),
        [
            format!("partner {NS}/fabrikam converted to Production"),
            "billing: to northwind since 2027-03-05T09:00:00Z (now) (billing period 1)".into(),
            "expires: 2027-03-20T00:00:00Z (in 15 days)".into(),
        ]
    );
    let fabrikam = partner_now(&h, "fabrikam").await;
    assert_eq!(fabrikam.spec.subscription.auto_upgrade, Some(false));
    wait_settled_at(&h, "fabrikam", SubscriptionLevel::Production).await;
    let status = kubectl.ok(&h, &["status", "fabrikam"]).await;
    assert!(
        section(&status, "Story:").contains(
            &"2027-03-05T09:00:00Z converted to Production by hand; billing to northwind starts \
              (billing period 1)"
                .to_string()
        ),
        "{status}"
    );
    assert_eq!(
        section(&status, "Next:"),
        [
            "next: 2027-03-20T00:00:00Z (in 15 days)",
            "Production ends at its expiration date and billing to northwind ends; `kubectl \
             partner renew fabrikam --expires DATE` extends it",
            "email production-expired to admin@fabrikam.example, ops@northwind.example",
        ]
    );

    // Converting a Production subscription is refused, as the portal offers it only on trials.
    assert_eq!(
        kubectl.fails(&h, &["convert", "litware"]).await,
        format!(
            "error: partner {NS}/litware cannot be converted: its subscription level is \
             Production, not Trial (`kubectl partner renew litware --expires DATE` sets a new \
             expiration date)"
        )
    );

    // contoso's auto-upgrade off: the notice and the end ahead change accordingly.
    assert_eq!(
        lines(&kubectl.ok(&h, &["auto-upgrade", "contoso", "off"]).await),
        [format!(
            "partner {NS}/contoso: auto-upgrade off: the trial ends on 2027-03-15T09:00:00Z (in \
             10 days) and then expires, unless converted before"
        )]
    );
    let status = kubectl.ok(&h, &["status", "contoso"]).await;
    assert_eq!(
        section(&status, "Next:"),
        [
            "next: 2027-03-12T09:00:00Z (in 7 days)",
            "the notice: the trial expires on 2027-03-15T09:00:00Z",
            "email expiry-notice to admin@contoso.example, ops@northwind.example",
            "then: 2027-03-15T09:00:00Z (in 10 days)",
            "the trial ends and expires, unbilled: auto-upgrade is off \
             (spec.subscription.autoUpgrade); `kubectl partner convert contoso` or `kubectl \
             partner auto-upgrade contoso on` before then keeps it",
            "email trial-expired to admin@contoso.example, ops@northwind.example",
        ]
    );

    // Day 11: the notice went out.
    h.advance_days(7);
    h.wait_partner(NS, "contoso", "notice sent", |p| {
        p.status
            .as_ref()
            .is_some_and(|s| s.upgrade_notice_sent_at.is_some())
    })
    .await;
    let status = kubectl.ok(&h, &["status", "contoso"]).await;
    assert!(
        section(&status, "Story:").contains(
            &"2027-03-12T09:00:00Z notice sent: the trial expires on 2027-03-15T09:00:00Z"
                .to_string()
        ),
        "{status}"
    );
    assert_eq!(
        section(&status, "Next:")[0],
        "next: 2027-03-15T09:00:00Z (in 3 days)"
    );

    // Day 14: the trial ended without conversion.
    h.advance_days(3);
    wait_settled_at(&h, "contoso", SubscriptionLevel::Expired).await;
    let status = kubectl.ok(&h, &["status", "contoso"]).await;
    assert!(
        section(&status, "Story:").contains(
            &"2027-03-15T09:00:00Z trial ended without conversion: Expired, unbilled".to_string()
        ),
        "{status}"
    );
    assert_eq!(
        section(&status, "Next:"),
        [
            "nothing is scheduled: the trial expired without conversion (auto-upgrade was off, \
             spec.subscription.autoUpgrade); `kubectl partner convert contoso` converts it to \
             Production"
        ]
    );
    let not_true = section(&status, "Conditions not True:");
    assert!(
        not_true
            .iter()
            .any(|c| c.starts_with("Ready=False Expired: ")),
        "{status}"
    );
    assert!(
        section(&status, "Recent events:")
            .iter()
            .any(|e| e.contains("Warning TrialExpired: trial ended on 2027-03-15T09:00:00")),
        "{status}"
    );
    let list = kubectl.ok(&h, &["list"]).await;
    assert_eq!(
        lines(&list)[1],
        "contoso Contoso IT Services northwind Expired link expired expired off -"
    );

    // Day 16: the expired trial converted by hand, without a date.
    h.advance_days(2);
    assert_eq!(
        lines(&kubectl.ok(&h, &["convert", "contoso"]).await),
        [
            format!("partner {NS}/contoso converted to Production"),
            "billing: to northwind since 2027-03-17T09:00:00Z (now) (billing period 1)".into(),
            "expires: never (no expiration date)".into(),
        ]
    );
    wait_settled_at(&h, "contoso", SubscriptionLevel::Production).await;
    let status = kubectl.ok(&h, &["status", "contoso"]).await;
    assert_eq!(
        section(&status, "Next:"),
        [
            "nothing is scheduled: Production has no expiration date, billing to northwind goes \
             on (`kubectl partner renew contoso --expires DATE` sets one)"
        ]
    );

    // Day 19: fabrikam's Production ended on the 20th at midnight; renewed, it is billed again
    // in a second period.
    h.advance_days(3);
    wait_settled_at(&h, "fabrikam", SubscriptionLevel::Expired).await;
    let status = kubectl.ok(&h, &["status", "fabrikam"]).await;
    assert!(
        section(&status, "Story:").contains(
            &"2027-03-20T00:00:00Z Production expired at its expiration date; billing period 1 \
              ended"
                .to_string()
        ),
        "{status}"
    );
    assert_eq!(
        section(&status, "Next:"),
        [
            "nothing is scheduled: Production expired; `kubectl partner renew fabrikam --expires \
             DATE` renews it"
        ]
    );
    assert_eq!(
        kubectl
            .fails(&h, &["renew", "fabrikam", "--expires", "2027-03-01"])
            .await,
        "error: --expires: 2027-03-01T00:00:00Z lies in the past (19 days ago); an expiration \
         date must lie in the future"
    );
    assert_eq!(
        lines(
            &kubectl
                .ok(&h, &["renew", "fabrikam", "--expires", "2027-06-30"])
                .await
        ),
        [
            format!("partner {NS}/fabrikam renewed: Production again, a new billing period"),
            "billing: to northwind since 2027-03-20T09:00:00Z (now) (billing period 2)".into(),
            "expires: 2027-06-30T00:00:00Z (in 102 days)".into(),
        ]
    );
    wait_settled_at(&h, "fabrikam", SubscriptionLevel::Production).await;

    // April: March's bill. fabrikam: the 5th to the 19th, then the 20th to the 31st (27 days);
    // contoso: the 17th to the 31st (15); litware: the whole month (31).
    h.advance_days(13);
    let bill = kubectl
        .ok(&h, &["billing", "northwind", "--month", "2027-03"])
        .await;
    has_lines(
        &bill,
        &[
            "SKU PARTNERS PARTNER-DAYS",
            "ESSENTIALS 3 73",
            "GOVERNANCE 3 73",
        ],
    );
    has_lines(
        &bill,
        &[
            "NAMESPACE PARTNER ORGANIZATION DAYS FROM TO SKUS",
            "northwind-partners contoso Contoso IT Services 15 2027-03-17 2027-03-31 ESSENTIALS,GOVERNANCE",
            "northwind-partners fabrikam Fabrikam Managed Services 27 2027-03-05 2027-03-31 ESSENTIALS,GOVERNANCE",
            "northwind-partners litware Litware Cloud Partners 31 2027-03-01 2027-03-31 ESSENTIALS,GOVERNANCE",
        ],
    );
    assert!(
        lines(&bill)[0].contains("for 2027-03 (the whole month;"),
        "{bill}"
    );
    let csv = kubectl
        .ok(
            &h,
            &["billing", "northwind", "--month", "2027-03", "-o", "csv"],
        )
        .await;
    let contoso_uid = uid(&h.partners(NS).get("contoso").await.unwrap());
    assert_eq!(
        csv.lines().take(3).collect::<Vec<_>>(),
        [
            "month,distributor,sku,namespace,partner,organization,days,first_day,last_day,uid,deleted".to_string(),
            format!("2027-03,northwind,ESSENTIALS,northwind-partners,contoso,Contoso IT Services,15,2027-03-17,2027-03-31,{contoso_uid},false"),
            format!("2027-03,northwind,GOVERNANCE,northwind-partners,contoso,Contoso IT Services,15,2027-03-17,2027-03-31,{contoso_uid},false"),
        ]
    );
    assert_eq!(csv.lines().count(), 7, "{csv}");
    let report: Value = serde_json::from_str(
        &kubectl
            .ok(
                &h,
                &["billing", "northwind", "--month", "2027-03", "-o", "json"],
            )
            .await,
    )
    .unwrap();
    assert_eq!(report["complete"], true);
    assert_eq!(
        report["skus"][0],
        json!({"sku": "ESSENTIALS", "partners": 3, "partnerDays": 73})
    );
    assert_eq!(
        report["partners"][1]["periods"],
        json!([
            {"startedAt": "2027-03-05T09:00:00Z", "endedAt": "2027-03-20T00:00:00Z"},
            {"startedAt": "2027-03-20T09:00:00Z", "endedAt": null},
        ])
    );
    // April so far, to date: the 1st and 2nd for each.
    let april = kubectl.ok(&h, &["billing", "northwind"]).await;
    assert!(
        lines(&april)[0].contains("for 2027-04 (to date, counted until 2027-04-02T09:00:00Z;"),
        "{april}"
    );
    has_lines(&april, &["ESSENTIALS 3 6"]);
}

/// Whether the Partner API of this build has the activation resend request.
fn api_has_resend_request() -> bool {
    let crds = serde_json::to_value(partner_operator::api::crds()).unwrap();
    crds[1]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
        ["activation"]["properties"]
        .get("resendRequest")
        .is_some()
}

async fn fields_of_other_managers_and_bad_input(server: Server) {
    let h = Harness::start(server).await;
    h.northwind(true).await;
    let kubectl = Kubectl::new(&h);

    // A Partner a GitOps tool applies, auto-upgrade included.
    h.partners(NS)
        .patch(
            "tailspin",
            &PatchParams::apply("argocd-controller"),
            &Patch::Apply(json!({
                "apiVersion": "partner-operator.io/v1alpha1",
                "kind": "Partner",
                "metadata": {"name": "tailspin", "namespace": NS},
                "spec": {
                    "organizationName": "Tailspin Toys",
                    "notificationEmail": "admin@tailspin.example",
                    "distributorRef": {"name": "northwind"},
                    "subscription": {"autoUpgrade": true},
                },
            })),
        )
        .await
        .unwrap();
    h.wait_partner(NS, "tailspin", "Ready", is_ready).await;

    // The plugin does not take the field over silently: it names the owner.
    assert_eq!(
        kubectl
            .fails(&h, &["auto-upgrade", "tailspin", "off"])
            .await,
        format!(
            "error: {NS}/tailspin: spec.subscription.autoUpgrade is managed by \
             \"argocd-controller\"; changing it here would fight that manager (a GitOps tool \
             would set it back): change it where that manager takes it from, or run again with \
             --force-conflicts to take it over"
        )
    );
    assert_eq!(
        partner_now(&h, "tailspin")
            .await
            .spec
            .subscription
            .auto_upgrade,
        Some(true)
    );
    // Forced, the field is the plugin's.
    kubectl
        .ok(
            &h,
            &["auto-upgrade", "tailspin", "off", "--force-conflicts"],
        )
        .await;
    let tailspin = partner_now(&h, "tailspin").await;
    assert_eq!(tailspin.spec.subscription.auto_upgrade, Some(false));
    let managers = serde_json::to_value(&tailspin.metadata.managed_fields).unwrap();
    let owner_of_auto_upgrade: Vec<&str> = managers
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| {
            m["fieldsV1"]["f:spec"]["f:subscription"]
                .get("f:autoUpgrade")
                .is_some()
        })
        .map(|m| m["manager"].as_str().unwrap())
        .collect();
    assert_eq!(owner_of_auto_upgrade, ["kubectl-partner"]);
    // A field nobody else owns (the level, defaulted) converts without force.
    kubectl
        .ok(&h, &["convert", "tailspin", "--wait=false"])
        .await;

    // A Partner made with `kubectl apply -f` (client-side): what its file declares belongs to
    // kubectl apply; a default it does not declare (the level) is nobody's declaration, though
    // kube-apiserver records it under kubectl's name, and is taken over, saying so.
    let manifest = kubectl.dir.path().join("adatum.yaml");
    std::fs::write(
        &manifest,
        format!(
            "apiVersion: partner-operator.io/v1alpha1\nkind: Partner\nmetadata: {{name: adatum, \
             namespace: {NS}}}\nspec:\n  organizationName: Adatum Support\n  \
             notificationEmail: ops@adatum.example\n  distributorRef: {{name: northwind}}\n  \
             subscription: {{autoUpgrade: false}}\n"
        ),
    )
    .unwrap();
    let applied = kubectl
        .run(&h, &["apply", "-f", manifest.to_str().unwrap()])
        .await;
    assert!(applied.status.success(), "{:?}", texts(&applied));
    h.wait_partner(NS, "adatum", "Ready", is_ready).await;
    assert_eq!(
        kubectl.fails(&h, &["auto-upgrade", "adatum", "on"]).await,
        format!(
            "error: {NS}/adatum: spec.subscription.autoUpgrade is managed by \
             \"kubectl-client-side-apply\"; changing it here would fight that manager (a GitOps \
             tool would set it back): change it where that manager takes it from, or run again \
             with --force-conflicts to take it over"
        )
    );
    let converted = kubectl.partner(&h, &["convert", "adatum"]).await;
    let (stdout, stderr) = texts(&converted);
    assert!(converted.status.success(), "{stderr}{stdout}");
    assert_eq!(
        lines(&stdout)[0],
        format!("partner {NS}/adatum converted to Production")
    );
    let note = "note: spec.subscription.level was a default the API server recorded under \
                \"kubectl-client-side-apply\", not in its last-applied configuration: taken over";
    assert!(stderr.lines().any(|l| l == note), "{stderr}");
    // A date set with `kubectl patch` was set on purpose, though the last-applied
    // configuration does not hold it: renewing refuses to take it over.
    let patched = kubectl
        .run(
            &h,
            &[
                "patch",
                "partner",
                "adatum",
                "-n",
                NS,
                "--type=merge",
                "-p",
                r#"{"spec":{"subscription":{"expirationDate":"2031-01-01T00:00:00Z"}}}"#,
            ],
        )
        .await;
    assert!(patched.status.success(), "{:?}", texts(&patched));
    let refused = kubectl
        .fails(&h, &["renew", "adatum", "--expires", "2032-01-01"])
        .await;
    assert!(
        refused.contains("spec.subscription.expirationDate is managed by \"kubectl-patch\""),
        "{refused}"
    );

    // Bad input: one clear line and a non-zero exit.
    kubectl
        .ok(
            &h,
            &[
                "add",
                "fabrikam",
                "--org",
                "Fabrikam",
                "--email",
                "admin@fabrikam.example",
                "--wait=false",
            ],
        )
        .await;
    for (args, expected) in [
        (
            vec!["status", "nosuch"],
            format!("error: partner \"nosuch\" not found in namespace \"{NS}\""),
        ),
        (
            vec!["convert", "nosuch"],
            format!("error: partner \"nosuch\" not found in namespace \"{NS}\""),
        ),
        (
            vec!["convert", "fabrikam", "--expires", "2020-01-01"],
            "error: --expires: 2020-01-01T00:00:00Z lies in the past (2616 days ago); an \
             expiration date must lie in the future"
                .into(),
        ),
        (
            vec!["convert", "fabrikam", "--expires", "next-week"],
            "error: --expires: \"next-week\" is not a date: write 2027-06-30, an RFC 3339 \
             date-time such as 2027-06-30T00:00:00Z, or a time from now such as +90d"
                .into(),
        ),
        (
            vec!["add", "acme", "--org", "Acme", "--email", "not-an-address"],
            "error: --email: \"not-an-address\" is not a bare email address of the form \
             name@example.com"
                .into(),
        ),
        (
            vec!["add", "Acme", "--org", "Acme", "--email", "a@acme.example"],
            "error: NAME: \"Acme\" is not a valid Partner name (lower-case letters, digits, '-' \
             and '.', starting and ending with a letter or digit, at most 253)"
                .into(),
        ),
        (
            vec!["add", "fabrikam", "--org", "F", "--email", "a@f.example"],
            format!("error: partner \"fabrikam\" already exists in namespace \"{NS}\""),
        ),
        (
            vec!["renew", "fabrikam", "--expires", "+90d"],
            format!(
                "error: partner {NS}/fabrikam cannot be renewed: its subscription level is \
                 Trial, not Production (`kubectl partner convert fabrikam --expires DATE` \
                 converts a trial)"
            ),
        ),
        (
            vec!["billing", "northwind", "--month", "2027-13"],
            "error: --month: \"2027-13\" is not a month of the form 2027-03".into(),
        ),
        (
            vec!["billing", "southwind"],
            "error: distributor \"southwind\" not found (and no Partner is billed to it)".into(),
        ),
    ] {
        assert_eq!(kubectl.fails(&h, &args).await, expected, "{args:?}");
    }

    // A Distributor's name goes into a request path: checked before any request, naming the
    // flag (the API server would refuse it for spec.distributorRef.name as well).
    assert_eq!(
        kubectl
            .fails(
                &h,
                &[
                    "add",
                    "acme",
                    "--org",
                    "Acme",
                    "--email",
                    "a@acme.example",
                    "--distributor",
                    "North_wind",
                ],
            )
            .await,
        "error: --distributor: \"North_wind\" is not a valid Distributor name (lower-case \
         letters, digits, '-' and '.', starting and ending with a letter or digit, at most 253)"
    );

    // resend-activation writes spec.activation.resendRequest; while the Partner API lacks the
    // field, the API server refuses it and the plugin says so in one line.
    if api_has_resend_request() {
        h.clock.advance(chrono::Duration::hours(1));
        let resent = kubectl.ok(&h, &["resend-activation", "fabrikam"]).await;
        assert!(
            resent.contains("activation email resent to admin@fabrikam.example"),
            "{resent}"
        );
        // The story tells the resend's email, from the status, an hour after the first.
        let status = kubectl.ok(&h, &["status", "fabrikam"]).await;
        assert!(
            status.contains(
                "2027-03-01T10:00:00Z  activation email sent to admin@fabrikam.example (link \
                 valid until 2027-03-08T10:00:00Z)"
            ),
            "{status}"
        );
    } else {
        let refused = kubectl.fails(&h, &["resend-activation", "fabrikam"]).await;
        assert!(
            refused.starts_with(&format!(
                "error: partner {NS}/fabrikam: this cluster's Partner API has no \
                 spec.activation.resendRequest (its CRD predates activation resends: install the \
                 current CRDs)"
            )),
            "{refused}"
        );
    }
}

/// The krew manifest follows the krew index's conventions, and the release script fills it in
/// from built archives.
#[test]
fn the_krew_manifest_is_filled_from_the_release_archives() {
    let template: Value = serde_yaml::from_str(
        &std::fs::read_to_string(project("plugins/krew/partner.yaml")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        template["apiVersion"],
        "krew.googlecontainertools.github.com/v1alpha2"
    );
    assert_eq!(template["kind"], "Plugin");
    assert_eq!(template["metadata"]["name"], "partner");
    let dist = tempfile::tempdir().unwrap();
    let platforms = [
        ("linux", "amd64"),
        ("linux", "arm64"),
        ("darwin", "amd64"),
        ("darwin", "arm64"),
    ];
    for (os, arch) in platforms {
        std::fs::write(
            dist.path()
                .join(format!("kubectl-partner_v1.2.3_{os}_{arch}.tar.gz")),
            format!("{os}/{arch}"),
        )
        .unwrap();
    }
    let filled = std::process::Command::new("bash")
        .arg(project("hack/krew-manifest.sh"))
        .args(["v1.2.3", "https://github.com/example/partner-operator"])
        .arg(dist.path())
        .output()
        .unwrap();
    assert!(
        filled.status.success(),
        "{}",
        String::from_utf8_lossy(&filled.stderr)
    );
    let manifest: Value = serde_yaml::from_slice(&filled.stdout).unwrap();
    assert_eq!(manifest["spec"]["version"], "v1.2.3");
    let entries = manifest["spec"]["platforms"].as_array().unwrap();
    assert_eq!(entries.len(), 4);
    for (entry, (os, arch)) in entries.iter().zip(platforms) {
        assert_eq!(
            entry["selector"]["matchLabels"],
            json!({"os": os, "arch": arch})
        );
        assert_eq!(
            entry["uri"],
            format!(
                "https://github.com/example/partner-operator/releases/download/v1.2.3/kubectl-partner_v1.2.3_{os}_{arch}.tar.gz"
            )
        );
        let archive = dist
            .path()
            .join(format!("kubectl-partner_v1.2.3_{os}_{arch}.tar.gz"));
        assert_eq!(entry["sha256"], sha256_of(&archive));
        assert_eq!(entry["bin"], "kubectl-partner");
        assert!(
            entry["files"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["from"] == "kubectl-partner")
        );
    }
    // The release workflow parses, and builds every platform the manifest names.
    let workflow: Value = serde_yaml::from_str(
        &std::fs::read_to_string(project(".github/workflows/release.yml")).unwrap(),
    )
    .unwrap();
    let targets =
        serde_json::to_string(&workflow["jobs"]["archives"]["strategy"]["matrix"]).unwrap();
    for target in [
        "x86_64-unknown-linux-gnu",
        "aarch64-unknown-linux-gnu",
        "x86_64-apple-darwin",
        "aarch64-apple-darwin",
    ] {
        assert!(targets.contains(target), "{target} in {targets}");
    }
}

fn sha256_of(path: &Path) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(std::fs::read(path).unwrap()))
}
