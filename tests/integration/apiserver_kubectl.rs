//! An API server through the stock `/usr/bin/kubectl`, run as a subprocess, its output asserted
//! as a user would read it. Every test runs on the sandbox's embedded API server and on the real
//! kube-apiserver (with etcd and kube-controller-manager), the reference.

use crate::support;

use std::io::Write;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};

use chrono::Utc;
use partner_sandbox::apiserver::ApiServer;
use partner_sandbox::control_plane::ControlPlane;
use support::servers::kube_assets;
use support::{Patience, Seen, eventually_blocking, project};

crate::on_both_servers_blocking!(
    crds_apply_client_side_and_server_side_then_custom_resources,
    get_shows_printer_columns_and_yaml_with_defaults,
    patches_merge_and_status_subresource,
    wait_returns_once_the_condition_is_met,
    delete_waits_for_the_finalizer,
    imperative_create_of_a_built_in_kind,
    explain_and_describe,
    the_admission_corpus_through_kubectl_apply,
    create_of_a_list_file,
);

/// An API server on its own thread and runtime, so the tests can block on kubectl.
struct Server {
    dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// A server with the built-in kinds only (`with_crds`: and the project's CRDs).
    fn start(kind: support::Server, with_crds: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        let control_plane = dir.path().join("control-plane");
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        // The control plane's processes live as long as the thread that started them: this one.
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                match kind {
                    support::Server::Sandbox => {
                        let server = ApiServer::start("127.0.0.1:0".parse().unwrap(), Utc::now)
                            .await
                            .unwrap();
                        if with_crds {
                            server
                                .install_crds(&partner_operator::api::crds())
                                .await
                                .unwrap();
                        }
                        server.write_kubeconfig(&kubeconfig).unwrap();
                        ready_tx.send(()).unwrap();
                        let _ = stopped.await;
                        server.shutdown().await;
                    }
                    support::Server::Kube => {
                        let plane = ControlPlane::start(&kube_assets(), &control_plane)
                            .await
                            .unwrap_or_else(|e| panic!("the real control plane: {e}"));
                        if with_crds {
                            plane
                                .install_crds(&partner_operator::api::crds())
                                .await
                                .unwrap();
                        }
                        std::fs::write(&kubeconfig, plane.kubeconfig_yaml()).unwrap();
                        ready_tx.send(()).unwrap();
                        let _ = stopped.await;
                        plane.shutdown().await;
                    }
                }
            });
        });
        ready_rx.recv().expect("the API server starts");
        Self {
            dir,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("/usr/bin/kubectl");
        command
            .arg("--kubeconfig")
            .arg(self.dir.path().join("kubeconfig"))
            .args(args);
        command
    }

    fn kubectl(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// kubectl's stdout, after asserting it succeeded.
    fn ok(&self, args: &[&str]) -> String {
        let output = self.kubectl(args);
        assert!(
            output.status.success(),
            "kubectl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// kubectl's stderr, after asserting it failed.
    fn fails(&self, args: &[&str]) -> String {
        let output = self.kubectl(args);
        assert!(
            !output.status.success(),
            "kubectl {} succeeded: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stdout)
        );
        String::from_utf8_lossy(&output.stderr).into_owned()
    }

    /// Starts `kubectl ARGS -v=6` and leaves it running.
    fn spawn(&self, args: &[&str]) -> Running {
        let mut child = self
            .command(args)
            .arg("-v=6")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let reader = {
            let log = log.clone();
            let stderr = child.stderr.take().unwrap();
            std::thread::spawn(move || {
                use std::io::BufRead;
                for line in std::io::BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    let mut log = log.lock().unwrap();
                    log.push_str(&line);
                    log.push('\n');
                }
            })
        };
        Running { child, log, reader }
    }

    fn apply_stdin(&self, args: &[&str], manifest: &str) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(manifest.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn path_arg(path: &str) -> String {
    project(path).to_string_lossy().into_owned()
}

/// A kubectl left running at `-v=6`, which logs one line per request it makes: its stderr is
/// read as it comes, so a test can see what it is doing (watching, say) while it runs.
struct Running {
    child: Child,
    log: Arc<Mutex<String>>,
    reader: std::thread::JoinHandle<()>,
}

impl Running {
    /// Waits until kubectl has opened a watch (and so, for `wait` or `delete --wait`, found
    /// that what it waits for has not happened yet); fails if it ends first.
    fn wait_until_watching(&mut self) {
        eventually_blocking("kubectl watching", Patience::RECONCILE, || {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("kubectl ended ({status}) before it watched: {}", self.log());
            }
            let log = self.log();
            if log
                .lines()
                .any(|l| l.contains("watch=true") && l.contains("200"))
            {
                Ok(())
            } else {
                Err(Seen(log))
            }
        });
    }

    fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Waits for kubectl to end: its output, its stderr being the request log.
    fn output(mut self) -> Output {
        use std::io::Read;
        let status = eventually_blocking("kubectl ending", Patience::PROCESS_EXIT, || {
            self.child
                .try_wait()
                .unwrap()
                .ok_or_else(|| Seen(self.log()))
        });
        let mut stdout = Vec::new();
        self.child
            .stdout
            .take()
            .unwrap()
            .read_to_end(&mut stdout)
            .unwrap();
        self.reader.join().unwrap();
        let stderr = self.log.lock().unwrap().clone().into_bytes();
        Output {
            status,
            stdout,
            stderr,
        }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

/// Sets a Partner's status through the status subresource, as the operator would.
fn set_ready(server: &Server, name: &str, ready: &str) {
    let status = format!(
        r#"{{"status":{{"subscriptionLevel":"Trial","conditions":[{{"type":"Ready","status":"{ready}","reason":"Test","message":"set by the test","lastTransitionTime":"2027-03-01T09:00:00Z","observedGeneration":1}}]}}}}"#
    );
    server.ok(&[
        "patch",
        "partner",
        name,
        "-n",
        "northwind-partners",
        "--subresource=status",
        "--type=merge",
        "-p",
        &status,
    ]);
}

fn crds_apply_client_side_and_server_side_then_custom_resources(kind: support::Server) {
    let server = Server::start(kind, false);
    let applied = server.ok(&["apply", "-f", &path_arg("crds")]);
    assert!(
        applied.contains(
            "customresourcedefinition.apiextensions.k8s.io/partners.partner-operator.io created"
        ),
        "{applied}"
    );
    let again = server.ok(&["apply", "--server-side", "-f", &path_arg("crds")]);
    assert!(
        again.contains("partners.partner-operator.io serverside-applied"),
        "{again}"
    );
    // The kinds are served once the CRDs are Established (kube-apiserver establishes them a
    // moment after storing them), which `kubectl wait` tells.
    let established = server.ok(&[
        "wait",
        "--for=condition=Established",
        "crd/partners.partner-operator.io",
        "crd/distributors.partner-operator.io",
        "--timeout=30s",
    ]);
    assert_eq!(
        established.matches("condition met").count(),
        2,
        "{established}"
    );
    let examples = server.ok(&["apply", "-f", &path_arg("examples")]);
    for line in [
        "namespace/northwind-partners created",
        "distributor.partner-operator.io/northwind created",
        "partner.partner-operator.io/contoso created",
    ] {
        assert!(examples.contains(line), "{line}:\n{examples}");
    }
    let unchanged = server.ok(&["apply", "-f", &path_arg("examples")]);
    assert!(
        unchanged.contains("partner.partner-operator.io/contoso unchanged"),
        "{unchanged}"
    );
    let server_side = server.ok(&["apply", "--server-side", "-f", &path_arg("examples")]);
    assert!(
        server_side.contains("partner.partner-operator.io/contoso serverside-applied"),
        "{server_side}"
    );
    let names = server.ok(&["get", "ptr", "-n", "northwind-partners", "-o", "name"]);
    assert_eq!(
        names.lines().collect::<Vec<_>>(),
        [
            "partner.partner-operator.io/contoso",
            "partner.partner-operator.io/fabrikam",
            "partner.partner-operator.io/litware"
        ]
    );
}

fn get_shows_printer_columns_and_yaml_with_defaults(kind: support::Server) {
    let server = Server::start(kind, true);
    server.ok(&["apply", "-f", &path_arg("examples")]);
    set_ready(&server, "contoso", "True");
    let table = server.ok(&["get", "partners", "-n", "northwind-partners"]);
    let mut lines = table.lines();
    let header: Vec<_> = lines.next().unwrap().split_whitespace().collect();
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
    let contoso = lines.find(|l| l.starts_with("contoso ")).unwrap();
    assert!(contoso.contains("Contoso IT Services"), "{contoso}");
    assert!(contoso.contains("northwind"), "{contoso}");
    assert!(contoso.contains("Trial"), "{contoso}");
    assert!(contoso.contains("True"), "{contoso}");

    let distributors = server.ok(&["get", "dist"]);
    assert!(distributors.starts_with("NAME"), "{distributors}");
    assert!(distributors.contains("SKUS") && distributors.contains("PRODUCTION"));
    assert!(
        distributors.contains(r#"["ESSENTIALS","GOVERNANCE"]"#),
        "{distributors}"
    );

    let yaml = server.ok(&[
        "get",
        "ptr",
        "contoso",
        "-n",
        "northwind-partners",
        "-o",
        "yaml",
    ]);
    for expected in [
        "apiVersion: partner-operator.io/v1alpha1",
        "kind: Partner",
        "organizationName: Contoso IT Services",
        // Defaulted by the schema at admission.
        "deletionPolicy: Delete",
        "level: Trial",
        "resourceVersion:",
        "uid:",
        "subscriptionLevel: Trial",
    ] {
        assert!(yaml.contains(expected), "{expected}:\n{yaml}");
    }
}

fn patches_merge_and_status_subresource(kind: support::Server) {
    let server = Server::start(kind, true);
    server.ok(&["apply", "-f", &path_arg("examples")]);
    let generation = |s: &Server| {
        s.ok(&[
            "get",
            "ptr",
            "fabrikam",
            "-n",
            "northwind-partners",
            "-o",
            "jsonpath={.metadata.generation}",
        ])
    };
    assert_eq!(generation(&server), "1");
    let patched = server.ok(&[
        "patch",
        "partner",
        "fabrikam",
        "-n",
        "northwind-partners",
        "--type=merge",
        "-p",
        r#"{"spec":{"subscription":{"autoUpgrade":true}}}"#,
    ]);
    assert!(patched.contains("partner.partner-operator.io/fabrikam patched"));
    assert_eq!(
        generation(&server),
        "2",
        "a spec change bumps the generation"
    );

    // A status patch changes only the status, and not the generation.
    set_ready(&server, "fabrikam", "False");
    assert_eq!(generation(&server), "2");
    let level = server.ok(&[
        "get",
        "ptr",
        "fabrikam",
        "-n",
        "northwind-partners",
        "-o",
        "jsonpath={.status.subscriptionLevel}",
    ]);
    assert_eq!(level, "Trial");
    // Through the main resource, status is ignored (the status subresource owns it).
    server.ok(&[
        "patch",
        "partner",
        "fabrikam",
        "-n",
        "northwind-partners",
        "--type=merge",
        "-p",
        r#"{"status":{"subscriptionLevel":"Production"}}"#,
    ]);
    let level = server.ok(&[
        "get",
        "ptr",
        "fabrikam",
        "-n",
        "northwind-partners",
        "-o",
        "jsonpath={.status.subscriptionLevel}",
    ]);
    assert_eq!(level, "Trial");

    // A merge patch that breaks a rule is refused with the field named.
    let refused = server.fails(&[
        "patch",
        "partner",
        "fabrikam",
        "-n",
        "northwind-partners",
        "--type=merge",
        "-p",
        r#"{"spec":{"distributorRef":{"name":"contoso-distribution"}}}"#,
    ]);
    assert!(refused.contains("spec.distributorRef"), "{refused}");
}

fn wait_returns_once_the_condition_is_met(kind: support::Server) {
    let server = Server::start(kind, true);
    server.ok(&["apply", "-f", &path_arg("examples")]);
    let mut waiting = server.spawn(&[
        "wait",
        "--for=condition=Ready",
        "partner/contoso",
        "-n",
        "northwind-partners",
        "--timeout=60s",
    ]);
    // Watching, so it has looked and found the condition unmet: it waits.
    waiting.wait_until_watching();
    assert!(
        waiting.is_running(),
        "kubectl wait returned before the condition was set"
    );
    set_ready(&server, "contoso", "True");
    let output = waiting.output();
    assert!(
        output.status.success(),
        "kubectl wait returns once the condition is met: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "partner.partner-operator.io/contoso condition met"
    );
}

fn delete_waits_for_the_finalizer(kind: support::Server) {
    let server = Server::start(kind, true);
    server.ok(&["apply", "-f", &path_arg("examples")]);
    server.ok(&[
        "patch",
        "partner",
        "contoso",
        "-n",
        "northwind-partners",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":["partner-operator.io/tenant"]}}"#,
    ]);
    let mut deleting = server.spawn(&[
        "delete",
        "partner",
        "contoso",
        "-n",
        "northwind-partners",
        "--timeout=60s",
    ]);
    // Watching for the deletion, so it has deleted and found the object still there.
    deleting.wait_until_watching();
    assert!(
        deleting.is_running(),
        "kubectl delete returned while a finalizer held the object"
    );
    let marked = server.ok(&[
        "get",
        "ptr",
        "contoso",
        "-n",
        "northwind-partners",
        "-o",
        "jsonpath={.metadata.deletionTimestamp}",
    ]);
    assert!(!marked.is_empty(), "a deletionTimestamp is set");
    server.ok(&[
        "patch",
        "partner",
        "contoso",
        "-n",
        "northwind-partners",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
    ]);
    let output = deleting.output();
    assert!(
        output.status.success(),
        "kubectl delete returns once the finalizer is removed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        String::from_utf8_lossy(&output.stdout)
            .contains(r#"partner.partner-operator.io "contoso" deleted"#),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    let gone = server.fails(&["get", "ptr", "contoso", "-n", "northwind-partners"]);
    assert!(
        gone.contains("NotFound") || gone.contains("not found"),
        "{gone}"
    );
}

/// kubectl's imperative `create` of a built-in kind sends its body in protobuf, and asks for
/// protobuf or JSON back: both servers decode the body, and kubectl reads the answer (JSON from
/// the sandbox). The objects read back as they were given.
fn imperative_create_of_a_built_in_kind(kind: support::Server) {
    let server = Server::start(kind, false);
    // -v=8 logs the request headers: the body really went as protobuf.
    let output = server.kubectl(&["create", "namespace", "imperative", "-v=8"]);
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{log}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "namespace/imperative created"
    );
    assert!(
        log.contains("Content-Type: application/vnd.kubernetes.protobuf"),
        "{log}"
    );
    assert!(
        log.contains("Accept: application/vnd.kubernetes.protobuf,application/json"),
        "{log}"
    );
    let created = server.ok(&[
        "create",
        "secret",
        "generic",
        "creds",
        "-n",
        "imperative",
        "--from-literal=user=admin",
        "--from-literal=password=s3cr3t",
    ]);
    assert_eq!(created.trim(), "secret/creds created");
    let created = server.ok(&[
        "create",
        "configmap",
        "settings",
        "-n",
        "imperative",
        "--from-literal=mode=fast",
    ]);
    assert_eq!(created.trim(), "configmap/settings created");
    let created = server.ok(&["create", "serviceaccount", "robot", "-n", "imperative"]);
    assert_eq!(created.trim(), "serviceaccount/robot created");
    let created = server.ok(&[
        "create",
        "role",
        "reader",
        "-n",
        "imperative",
        "--verb=get,list",
        "--resource=configmaps",
    ]);
    assert_eq!(
        created.trim(),
        "role.rbac.authorization.k8s.io/reader created"
    );
    let created = server.ok(&[
        "create",
        "rolebinding",
        "robot-reads",
        "-n",
        "imperative",
        "--role=reader",
        "--serviceaccount=imperative:robot",
    ]);
    assert_eq!(
        created.trim(),
        "rolebinding.rbac.authorization.k8s.io/robot-reads created"
    );

    let read = |args: &[&str]| -> serde_json::Value {
        let mut all = vec!["get", "-o", "json"];
        all.extend_from_slice(args);
        serde_json::from_str(&server.ok(&all)).unwrap()
    };
    let namespace = read(&["namespace", "imperative"]);
    assert_eq!(namespace["metadata"]["name"], "imperative");
    let secret = read(&["secret", "creds", "-n", "imperative"]);
    assert_eq!(secret["type"], "Opaque");
    assert_eq!(
        secret["data"],
        serde_json::json!({"user": "YWRtaW4=", "password": "czNjcjN0"})
    );
    let config_map = read(&["configmap", "settings", "-n", "imperative"]);
    assert_eq!(config_map["data"], serde_json::json!({"mode": "fast"}));
    let account = read(&["serviceaccount", "robot", "-n", "imperative"]);
    assert_eq!(account["metadata"]["namespace"], "imperative");
    let role = read(&["role", "reader", "-n", "imperative"]);
    assert_eq!(
        role["rules"],
        serde_json::json!([{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}])
    );
    let binding = read(&["rolebinding", "robot-reads", "-n", "imperative"]);
    assert_eq!(
        binding["subjects"],
        serde_json::json!([{"kind": "ServiceAccount", "name": "robot", "namespace": "imperative"}])
    );
    assert_eq!(binding["roleRef"]["name"], "reader");
}

/// A `kind: List` file: kubectl checks it on the client against `/openapi/v2` before it sends
/// the items, then creates each. Both servers create a valid list. With an unknown field in
/// one item kube-apiserver's schemas make kubectl refuse the whole file; the sandbox's
/// `/openapi/v2` has no schemas, so kubectl sends every item and the server refuses the bad
/// one alone (`docs/sandbox-fidelity.md`).
fn create_of_a_list_file(kind: support::Server) {
    let server = Server::start(kind, false);
    let item = |name: &str, extra: &str| {
        format!(
            "- apiVersion: v1\n  kind: ConfigMap\n  metadata:\n    name: {name}\n    namespace: default\n  data: {{a: b}}\n{extra}"
        )
    };
    let list = |items: &[String]| format!("apiVersion: v1\nkind: List\nitems:\n{}", items.concat());
    let created = server.apply_stdin(
        &["create", "-f", "-"],
        &list(&[item("one", ""), item("two", "")]),
    );
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&created.stdout).trim(),
        "configmap/one created\nconfigmap/two created"
    );
    let mixed = server.apply_stdin(
        &["create", "-f", "-"],
        &list(&[item("bad", "  bogus: 1\n"), item("good", "")]),
    );
    assert!(!mixed.status.success());
    let names = server.ok(&["get", "configmaps", "-n", "default", "-o", "name"]);
    let good_created = names.lines().any(|l| l == "configmap/good");
    assert!(!names.lines().any(|l| l == "configmap/bad"), "{names}");
    let stderr = String::from_utf8_lossy(&mixed.stderr);
    assert!(stderr.contains("unknown field \"bogus\""), "{stderr}");
    assert_eq!(
        good_created,
        matches!(kind, support::Server::Sandbox),
        "{names}"
    );
}

fn explain_and_describe(kind: support::Server) {
    let server = Server::start(kind, true);
    server.ok(&["apply", "-f", &path_arg("examples")]);
    let explained = server.ok(&["explain", "partner.spec"]);
    for expected in [
        "KIND:",
        "Partner",
        "organizationName",
        "notificationEmail",
        "distributorRef",
        "Legal name of the partner",
    ] {
        assert!(explained.contains(expected), "{expected}:\n{explained}");
    }
    let subscription = server.ok(&["explain", "partner.spec.subscription.level"]);
    assert!(subscription.contains("Trial"), "{subscription}");

    set_ready(&server, "contoso", "True");
    let described = server.ok(&["describe", "partner", "contoso", "-n", "northwind-partners"]);
    for expected in [
        "Name:",
        "contoso",
        "Namespace:",
        "northwind-partners",
        "Organization Name:",
        "Contoso IT Services",
        "Subscription Level:",
    ] {
        assert!(described.contains(expected), "{expected}:\n{described}");
    }
}

/// Every manifest of the admission corpus, through `kubectl apply`: the accepted ones are
/// applied, the rejected ones refused with a message naming the field (`# field:`) and saying
/// what is wrong (`# message:`). A file with two documents is an update: kubectl applies the
/// first (creating the object), then the second. The cases reuse names: each starts with no
/// Distributor and no Partner.
fn the_admission_corpus_through_kubectl_apply(kind: support::Server) {
    let server = Server::start(kind, true);
    let namespace = server.apply_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: northwind-partners}\n",
    );
    assert!(namespace.status.success());
    let mut checked = 0;
    for (dir, accept) in [
        ("tests/admission/accept", true),
        ("tests/admission/reject", false),
    ] {
        let mut files: Vec<_> = std::fs::read_dir(project(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for file in files {
            server.ok(&["delete", "partners,distributors", "--all", "-A"]);
            let text = std::fs::read_to_string(&file).unwrap();
            let output = server.apply_stdin(&["apply", "-f", "-"], &text);
            let stderr = String::from_utf8_lossy(&output.stderr);
            let name = file.file_name().unwrap().to_string_lossy();
            if accept {
                assert!(output.status.success(), "{name}: refused: {stderr}");
            } else {
                assert!(!output.status.success(), "{name}: accepted");
                for (header, expected) in text.lines().filter_map(|l| {
                    l.strip_prefix("# field:")
                        .map(|f| ("field", f))
                        .or_else(|| l.strip_prefix("# message:").map(|m| ("message", m)))
                }) {
                    assert!(
                        stderr.contains(expected.trim()),
                        "{name}: the {header} {:?} is not in: {stderr}",
                        expected.trim()
                    );
                }
            }
            checked += 1;
        }
    }
    assert!(checked >= 30, "only {checked} cases");
}
