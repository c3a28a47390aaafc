//! `kubectl partner` in front of hostile data and hostile arguments, through the stock
//! `/usr/bin/kubectl`: text a terminal would act on (escape sequences in an organization, a
//! condition message, an Event) is printed escaped by every command that shows it, on the
//! sandbox and on kube-apiserver; a name that is no DNS subdomain (or a namespace that is no
//! DNS label) is refused in one line before any request is made.

use crate::support;

use std::io::ErrorKind;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Output, Stdio};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::ResourceExt;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use partner_operator::api::Partner;
use partner_operator::plugin::NOW_ENV;
use serde_json::{Value, json};
use support::*;

crate::on_both_servers!(text_a_terminal_would_act_on_is_printed_escaped,);

const NS: &str = "northwind-partners";
/// The plugin's now: days into the billing period that starts at [`START`].
const NOW: &str = "2027-03-10T09:00:00Z";

/// An organization stored before admission checked it: set the title, clear the screen, and
/// turn what follows around.
const ORGANIZATION: &str = "Evil\u{1b}]0;pwned\u{7}\u{1b}[2J Corp\u{202e}gnp.exe";
/// A condition message: move up, erase the line, a C1 CSI, a carriage return.
const CONDITION: &str = "mail down\u{1b}[1A\u{1b}[2K\u{9b}31m\rReady=True";
/// An Event's note, written by anyone who may create Events in the namespace.
const NOTE: &str = "look\u{1b}]0;owned\u{7}\u{7f}here";

/// `kubectl partner ARGS` with the plugin on the PATH and `kubeconfig`; killed, and the test
/// failed, if it does not end (as against a server that never answers).
async fn kubectl_partner(bin: &Path, kubeconfig: &Path, args: &[&str]) -> Output {
    let child = tokio::process::Command::new("/usr/bin/kubectl")
        .arg("partner")
        .args(args)
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .env("KUBECONFIG", kubeconfig)
        .env(NOW_ENV, NOW)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    tokio::time::timeout(Patience::PROCESS_EXIT.limit, child.wait_with_output())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "kubectl partner {args:?} did not end within {}",
                Patience::PROCESS_EXIT
            )
        })
        .unwrap()
}

/// A directory with `bin/kubectl-partner` (the built plugin) and `kubeconfig`.
fn plugin_dir(kubeconfig: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("bin")).unwrap();
    std::os::unix::fs::symlink(
        env!("CARGO_BIN_EXE_kubectl-partner"),
        dir.path().join("bin/kubectl-partner"),
    )
    .unwrap();
    std::fs::write(dir.path().join("kubeconfig"), kubeconfig).unwrap();
    dir
}

/// Installs the Partner CRD with a schema that takes any body, as an older CRD without the
/// organization grammar did; returns once the server takes `object` (dry run).
async fn permissive_partner_schema(h: &Harness, object: &DynamicObject) {
    let api = Api::<CustomResourceDefinition>::all(h.client.clone());
    let mut crd = api.get("partners.partner-operator.io").await.unwrap();
    crd.spec.versions[0].schema = Some(
        serde_json::from_value(json!({"openAPIV3Schema": {
            "type": "object", "x-kubernetes-preserve-unknown-fields": true}}))
        .unwrap(),
    );
    api.replace(&crd.name_any(), &PostParams::default(), &crd)
        .await
        .unwrap();
    let dry_run = PostParams {
        dry_run: true,
        ..Default::default()
    };
    eventually(
        "a hostile organization taken",
        Patience::API_SERVER,
        || async { untyped(h).create(&dry_run, object).await.is_ok() },
    )
    .await;
}

fn untyped(h: &Harness) -> Api<DynamicObject> {
    Api::namespaced_with(h.client.clone(), NS, &ApiResource::erase::<Partner>(&()))
}

/// Whether `text` holds anything a terminal acts on, or that reorders text.
fn raw_controls(text: &str) -> Vec<char> {
    text.chars()
        .filter(|c| (c.is_control() && *c != '\n' && *c != '\t') || *c == '\u{202e}')
        .collect()
}

/// The Partner `evil` (organization, Ready condition) billed to northwind, and an Event on it.
async fn store_hostile_partner(h: &Harness) {
    let object: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "partner-operator.io/v1alpha1",
        "kind": "Partner",
        "metadata": {"name": "evil", "namespace": NS},
        "spec": {
            "organizationName": ORGANIZATION,
            "notificationEmail": "admin@evil.example",
            "distributorRef": {"name": "northwind"},
        },
    }))
    .unwrap();
    permissive_partner_schema(h, &object).await;
    let created = untyped(h)
        .create(&PostParams::default(), &object)
        .await
        .expect("stored");
    let status = json!({"status": {
        "subscriptionLevel": "Production",
        "skus": ["ESSENTIALS"],
        "billing": {
            "billedTo": "northwind",
            "startedAt": START,
            "periods": [{"startedAt": START}],
        },
        "conditions": [{
            "type": "Ready",
            "status": "False",
            "reason": "EmailDeliveryFailed",
            "message": CONDITION,
            "lastTransitionTime": START,
        }],
    }});
    untyped(h)
        .patch_status("evil", &PatchParams::default(), &Patch::Merge(status))
        .await
        .expect("status written");
    let event: k8s_openapi::api::events::v1::Event = serde_json::from_value(json!({
        "metadata": {"name": "evil.hostile", "namespace": NS},
        "eventTime": "2027-03-01T09:00:00.000000Z",
        "reportingController": "someone.example/else",
        "reportingInstance": "else",
        "action": "Write",
        "reason": "Hostile",
        "note": NOTE,
        "type": "Warning",
        "regarding": {
            "apiVersion": "partner-operator.io/v1alpha1",
            "kind": "Partner",
            "name": "evil",
            "namespace": NS,
            "uid": created.uid().unwrap(),
        },
    }))
    .unwrap();
    Api::<k8s_openapi::api::events::v1::Event>::namespaced(h.client.clone(), NS)
        .create(&PostParams::default(), &event)
        .await
        .expect("Event created");
}

async fn text_a_terminal_would_act_on_is_printed_escaped(server: Server) {
    let h = Harness::start_servers(server).await;
    h.northwind(true).await;
    store_hostile_partner(&h).await;
    let dir = plugin_dir(&h.server.kubeconfig_yaml());
    let (bin, kubeconfig) = (dir.path().join("bin"), dir.path().join("kubeconfig"));

    let escaped_organization = "Evil\\x1b]0;pwned\\x07\\x1b[2J Corp\\u{202e}gnp.exe";
    for (args, expected) in [
        (
            vec!["status", "evil", "-n", NS],
            vec![
                escaped_organization,
                "mail down\\x1b[1A\\x1b[2K\\u{9b}31m\\x0dReady=True",
                "look\\x1b]0;owned\\x07\\x7fhere",
            ],
        ),
        (vec!["list", "-n", NS], vec![escaped_organization]),
        (vec!["list", "-A", "-o", "wide"], vec![escaped_organization]),
        (
            vec!["billing", "northwind", "--month", "2027-03"],
            vec![escaped_organization],
        ),
        (
            vec!["billing", "northwind", "--month", "2027-03", "-o", "csv"],
            vec![escaped_organization],
        ),
        (
            vec!["list", "-n", NS, "-o", "json"],
            vec!["Evil\\u001b]0;pwned\\u0007\\u001b[2J Corp\\u202egnp.exe"],
        ),
    ] {
        let output = kubectl_partner(&bin, &kubeconfig, &args).await;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(output.status.success(), "{args:?}: {stderr}{stdout}");
        assert_eq!(
            raw_controls(&stdout),
            Vec::<char>::new(),
            "{args:?} printed raw controls:\n{stdout}"
        );
        assert_eq!(
            raw_controls(&stderr),
            Vec::<char>::new(),
            "{args:?}: {stderr}"
        );
        for text in expected {
            assert!(stdout.contains(text), "{args:?}: {text:?} not in\n{stdout}");
        }
    }
    // JSON stays JSON, with the value as stored.
    let output = kubectl_partner(&bin, &kubeconfig, &["list", "-n", NS, "-o", "json"]).await;
    let rows: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(rows[0]["organization"], ORGANIZATION);
}

/// The refusal of a command that made no request: one line on stderr, `error: ` first.
fn refused(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "{stderr}");
    assert!(output.stdout.is_empty(), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line:\n{stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    lines[0].to_string()
}

/// Whether a connection to `listener` was made (and sits in its backlog).
fn connected(listener: &TcpListener) -> bool {
    match listener.accept() {
        Ok(_) => true,
        Err(err) if err.kind() == ErrorKind::WouldBlock => false,
        Err(err) => panic!("accept: {err}"),
    }
}

#[tokio::test]
async fn a_name_that_is_no_dns_subdomain_is_refused_before_any_request() {
    // The "API server" is a socket nobody answers: any request would be a connection to it.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{server: \"http://{}\"}}\n\
         users:\n- name: u\n  user: {{token: t}}\ncontexts:\n- name: x\n  context: {{cluster: c, \
         user: u, namespace: {NS}}}\ncurrent-context: x\n",
        listener.local_addr().unwrap()
    );
    let dir = plugin_dir(&kubeconfig);
    let (bin, kubeconfig) = (dir.path().join("bin"), dir.path().join("kubeconfig"));

    for bad in ["contoso?fieldManager=x&a=", "../x"] {
        for args in [
            vec![
                "add",
                bad,
                "--org",
                "Contoso",
                "--email",
                "a@contoso.example",
            ],
            vec!["status", bad],
            vec!["convert", bad],
            vec!["auto-upgrade", bad, "off"],
            vec!["renew", bad, "--expires", "+90d"],
            vec!["resend-activation", bad],
            vec!["billing", bad],
            vec![
                "add",
                "contoso",
                "--org",
                "Contoso",
                "--email",
                "a@contoso.example",
                "--distributor",
                bad,
            ],
            vec!["status", "contoso", "-n", bad],
            vec!["list", "-n", bad],
        ] {
            let line = refused(&kubectl_partner(&bin, &kubeconfig, &args).await);
            assert!(
                line.contains(&format!("{bad:?} is not a valid")),
                "{args:?}: {line}"
            );
            assert!(!connected(&listener), "{args:?} made a request");
        }
    }
    assert_eq!(
        refused(&kubectl_partner(&bin, &kubeconfig, &["status", "../x"]).await),
        "error: NAME: \"../x\" is not a valid Partner name (lower-case letters, digits, '-' and \
         '.', starting and ending with a letter or digit, at most 253)"
    );

    // A valid name does reach the server (so the silence above is the check's doing).
    let mut child = tokio::process::Command::new("/usr/bin/kubectl")
        .args(["partner", "status", "contoso"])
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .env("KUBECONFIG", &kubeconfig)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    eventually(
        "a request for a valid name",
        Patience::PROCESS_EXIT,
        || async { connected(&listener) },
    )
    .await;
    let _ = child.kill().await;
}
