//! The real Kubernetes control plane on loopback: etcd, kube-apiserver and
//! kube-controller-manager, built from their upstream Go modules by `hack/kube-assets.sh` into a
//! directory laid out like `KUBEBUILDER_ASSETS`.
//!
//! It is the reference the embedded [`crate::apiserver`] is measured against, the ground every
//! integration suite also runs on, and what `partner-operator sandbox --kube-apiserver DIR` runs
//! in place of the embedded server. What it sets up, and why:
//! - TLS with a CA made at start (the kubeconfig trusts exactly that CA), so clients talk to it
//!   as to a cluster;
//! - `--authorization-mode=RBAC`, an admin identity (a token in `system:masters`) for tests and
//!   kubectl, and service-account tokens signed by a key made at start, so the operator can run
//!   as a ServiceAccount with only the chart's roles;
//! - an audit log of every request at `Metadata` level, read back as the same
//!   [`RecordedRequest`]s the embedded server's request log gives;
//! - kube-controller-manager with only the namespace and garbage-collector controllers: without
//!   them a deleted Namespace stays `Terminating` for ever, which no real cluster does.
//!
//! Every process is killed when the [`ControlPlane`] is dropped (also when a test panics), and
//! asks the kernel to kill it when the thread that started it ends (a test binary killed
//! outright leaves nothing behind). Start it from a thread that outlives it: a test's own
//! thread, or the main thread of a command.

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use tokio::process::{Child, Command};

use crate::apiserver::RecordedRequest;

/// The binaries [`ControlPlane::start`] needs in the assets directory.
pub const BINARIES: [&str; 3] = ["etcd", "kube-apiserver", "kube-controller-manager"];

/// How long kube-apiserver may take to answer `/readyz` (a cold start on two busy cores takes
/// a few seconds; this is the point where something is wrong).
const START_PATIENCE: Duration = Duration::from_secs(90);

/// Why the control plane did not start, in one line.
#[derive(Debug, thiserror::Error)]
pub enum ControlPlaneError {
    #[error("{dir}: no {binary} here (build the assets with hack/kube-assets.sh)")]
    MissingBinary { dir: PathBuf, binary: &'static str },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("cannot make the control plane's certificates: {0}")]
    Certificates(#[from] rcgen::Error),
    #[error("{process} exited at start ({status}); the end of its log:\n{log}")]
    Exited {
        process: &'static str,
        status: std::process::ExitStatus,
        log: String,
    },
    #[error("kube-apiserver did not turn ready within {0:?}; the end of its log:\n{1}")]
    NotReady(Duration, String),
    #[error("cannot install the CRDs: {0}")]
    Crds(String),
}

/// A running control plane. Dropping it kills its processes.
pub struct ControlPlane {
    dir: PathBuf,
    url: String,
    ca_pem: String,
    admin_token: String,
    // Killed in reverse order on drop: the controller manager, the API server, then etcd.
    processes: Vec<(&'static str, Child)>,
}

/// Loopback ports picked for one start.
struct Ports {
    etcd_client: u16,
    etcd_peer: u16,
    apiserver: u16,
}

impl Ports {
    fn pick() -> std::io::Result<Self> {
        // Held together so the three differ; released just before the processes bind them.
        let listeners = (0..3)
            .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
            .collect::<std::io::Result<Vec<_>>>()?;
        let port = |i: usize| listeners[i].local_addr().map(|a| a.port());
        Ok(Self {
            etcd_client: port(0)?,
            etcd_peer: port(1)?,
            apiserver: port(2)?,
        })
    }
}

impl ControlPlane {
    /// Starts etcd, kube-apiserver and kube-controller-manager from `assets`, keeping their
    /// data, certificates and logs under `dir` (created if missing), and waits until the API
    /// server is ready. Ports are picked free on loopback; a port taken between picking and
    /// binding is retried with others.
    pub async fn start(assets: &Path, dir: &Path) -> Result<Self, ControlPlaneError> {
        for binary in BINARIES {
            if !assets.join(binary).is_file() {
                return Err(ControlPlaneError::MissingBinary {
                    dir: assets.to_path_buf(),
                    binary,
                });
            }
        }
        std::fs::create_dir_all(dir)?;
        let dir = std::path::absolute(dir)?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match Self::start_once(assets, &dir).await {
                Err(ControlPlaneError::Exited { log, .. })
                    if attempt < 3 && log.contains("address already in use") =>
                {
                    continue;
                }
                result => return result,
            }
        }
    }

    async fn start_once(assets: &Path, dir: &Path) -> Result<Self, ControlPlaneError> {
        let ports = Ports::pick()?;
        let pki = Pki::generate()?;
        let admin_token = random_token();
        let files = pki.write(dir, &admin_token)?;
        let url = format!("https://127.0.0.1:{}", ports.apiserver);
        let mut plane = Self {
            dir: dir.to_path_buf(),
            url,
            ca_pem: pki.ca_pem.clone(),
            admin_token,
            processes: Vec::new(),
        };

        let etcd_data = dir.join("etcd");
        let _ = std::fs::remove_dir_all(&etcd_data);
        let client_url = format!("http://127.0.0.1:{}", ports.etcd_client);
        let peer_url = format!("http://127.0.0.1:{}", ports.etcd_peer);
        plane.spawn(
            "etcd",
            assets,
            &[
                "--name=default".into(),
                format!("--data-dir={}", etcd_data.display()),
                format!("--listen-client-urls={client_url}"),
                format!("--advertise-client-urls={client_url}"),
                format!("--listen-peer-urls={peer_url}"),
                format!("--initial-advertise-peer-urls={peer_url}"),
                format!("--initial-cluster=default={peer_url}"),
                // Test data: durability across a power cut is not worth the fsyncs.
                "--unsafe-no-fsync=true".into(),
                "--log-level=warn".into(),
            ],
        )?;

        plane.spawn(
            "kube-apiserver",
            assets,
            &[
                format!("--etcd-servers={client_url}"),
                "--bind-address=127.0.0.1".into(),
                "--advertise-address=127.0.0.1".into(),
                // The `kubernetes` Service's endpoints would be a loopback address, which the
                // reconciler refuses; nothing here routes to it anyway.
                "--endpoint-reconciler-type=none".into(),
                format!("--secure-port={}", ports.apiserver),
                format!("--cert-dir={}", dir.join("certs").display()),
                format!("--tls-cert-file={}", files.serving_cert.display()),
                format!("--tls-private-key-file={}", files.serving_key.display()),
                format!("--client-ca-file={}", files.ca.display()),
                format!("--token-auth-file={}", files.tokens.display()),
                "--authorization-mode=RBAC".into(),
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
                format!(
                    "--service-account-key-file={}",
                    files.service_account_public.display()
                ),
                format!(
                    "--service-account-signing-key-file={}",
                    files.service_account_key.display()
                ),
                "--service-cluster-ip-range=10.0.0.0/24".into(),
                format!("--audit-policy-file={}", files.audit_policy.display()),
                format!("--audit-log-path={}", plane.audit_log_path().display()),
                "--audit-log-format=json".into(),
                "--audit-log-maxsize=0".into(),
            ],
        )?;
        plane.wait_ready().await?;

        let kubeconfig = dir.join("admin.kubeconfig");
        std::fs::write(&kubeconfig, plane.kubeconfig_yaml())?;
        plane.spawn(
            "kube-controller-manager",
            assets,
            &[
                format!("--kubeconfig={}", kubeconfig.display()),
                "--controllers=namespace-controller,garbage-collector-controller".into(),
                "--leader-elect=false".into(),
                "--secure-port=0".into(),
            ],
        )?;
        Ok(plane)
    }

    /// Starts one process, its output going to `DIR/<name>.log`.
    fn spawn(
        &mut self,
        name: &'static str,
        assets: &Path,
        args: &[String],
    ) -> Result<(), ControlPlaneError> {
        let log = std::fs::File::create(self.dir.join(format!("{name}.log")))?;
        let mut command = Command::new(assets.join(name));
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true);
        // SAFETY: prctl is async-signal-safe and touches nothing of the parent's.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        self.processes.push((name, command.spawn()?));
        Ok(())
    }

    /// Polls `/readyz` until it answers 200; fails early when a process has exited.
    async fn wait_ready(&mut self) -> Result<(), ControlPlaneError> {
        let client = self.client();
        let deadline = tokio::time::Instant::now() + START_PATIENCE;
        loop {
            for (name, child) in &mut self.processes {
                if let Some(status) = child.try_wait()? {
                    return Err(ControlPlaneError::Exited {
                        process: name,
                        status,
                        log: log_tail(&self.dir.join(format!("{name}.log"))),
                    });
                }
            }
            let request = axum::http::Request::get("/readyz")
                .body(Vec::new())
                .expect("valid");
            if client.request_text(request).await.is_ok() {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                return Err(ControlPlaneError::NotReady(
                    START_PATIENCE,
                    log_tail(&self.dir.join("kube-apiserver.log")),
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The process id of the running `binary` (`etcd`, `kube-apiserver`,
    /// `kube-controller-manager`), for reading what it costs.
    pub fn pid(&self, binary: &str) -> Option<u32> {
        self.processes
            .iter()
            .find(|(name, _)| *name == binary)
            .and_then(|(_, child)| child.id())
    }

    /// `https://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Where the processes keep their data and logs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A kubeconfig for the admin identity, for kubectl, Helm and `kube::Config::infer`.
    pub fn kubeconfig_yaml(&self) -> String {
        self.kubeconfig_yaml_for("admin", &self.admin_token)
    }

    /// A kubeconfig that authenticates with `token` (a ServiceAccount's, say).
    pub fn kubeconfig_yaml_for(&self, user: &str, token: &str) -> String {
        use base64::Engine;
        let ca = base64::engine::general_purpose::STANDARD.encode(&self.ca_pem);
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: kube-apiserver\n  cluster:\n    server: {url}\n    certificate-authority-data: {ca}\ncontexts:\n- name: {user}\n  context:\n    cluster: kube-apiserver\n    user: {user}\n    namespace: default\ncurrent-context: {user}\nusers:\n- name: {user}\n  user:\n    token: {token}\n",
            url = self.url
        )
    }

    /// A kube-rs client with the admin identity.
    pub fn client(&self) -> kube::Client {
        self.client_for_token(&self.admin_token, None)
    }

    /// A kube-rs client with the admin identity that sends `user_agent`, so the audit log tells
    /// its requests apart.
    pub fn client_with_user_agent(&self, user_agent: &str) -> kube::Client {
        self.client_for_token(&self.admin_token, Some(user_agent))
    }

    /// A kube-rs client that authenticates with `token`.
    pub fn client_for_token(&self, token: &str, user_agent: Option<&str>) -> kube::Client {
        let mut config = self.config_for_token(token);
        if let Some(user_agent) = user_agent {
            config.headers.push((
                axum::http::header::USER_AGENT,
                user_agent.parse().expect("a valid header value"),
            ));
        }
        kube::Client::try_from(config).expect("a client for the control plane")
    }

    /// The configuration of a kube-rs client with the admin identity.
    pub fn config(&self) -> kube::Config {
        self.config_for_token(&self.admin_token)
    }

    fn config_for_token(&self, token: &str) -> kube::Config {
        let kubeconfig =
            kube::config::Kubeconfig::from_yaml(&self.kubeconfig_yaml_for("user", token))
                .expect("a kubeconfig we wrote parses");
        let options = kube::config::KubeConfigOptions::default();
        futures::executor::block_on(kube::Config::from_custom_kubeconfig(kubeconfig, &options))
            .expect("a kubeconfig with a token and a CA needs nothing external")
    }

    /// Installs `crds` (the caller's custom resource definitions) by server-side apply and waits
    /// until each is established.
    pub async fn install_crds(
        &self,
        crds: &[CustomResourceDefinition],
    ) -> Result<(), ControlPlaneError> {
        install_crds(&self.client(), crds)
            .await
            .map_err(ControlPlaneError::Crds)
    }

    fn audit_log_path(&self) -> PathBuf {
        self.dir.join("audit.log")
    }

    /// Every request the API server has answered so far, from its audit log, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        let text = std::fs::read_to_string(self.audit_log_path()).unwrap_or_default();
        text.lines()
            .filter_map(|line| serde_json::from_str::<AuditEvent>(line).ok())
            .filter_map(AuditEvent::into_request)
            .collect()
    }

    /// Every request the API server has answered so far, with who made it and the status it
    /// got, in order: for authorization checks. Unlike [`ControlPlane::requests`] this includes
    /// requests to no resource (discovery, `/version`).
    pub fn audited_requests(&self) -> Vec<AuditedRequest> {
        let text = std::fs::read_to_string(self.audit_log_path()).unwrap_or_default();
        text.lines()
            .filter_map(|line| serde_json::from_str::<AuditEvent>(line).ok())
            .filter(AuditEvent::is_answer)
            .map(|event| AuditedRequest {
                request_uri: event.request_uri.clone(),
                verb: event.verb.clone(),
                username: event.user.username.clone(),
                user_agent: event.user_agent.clone(),
                code: event.response_status.as_ref().and_then(|s| s.code),
                request: event.into_request(),
            })
            .collect()
    }

    /// Stops every process: SIGTERM, then SIGKILL for any still running after 5 s.
    pub async fn shutdown(mut self) {
        while let Some((_, mut child)) = self.processes.pop() {
            if let Some(pid) = child.id() {
                // SAFETY: signalling a child we started and have not reaped.
                unsafe { libc::kill(pid as i32, libc::SIGTERM) };
            }
            if tokio::time::timeout(Duration::from_secs(5), child.wait())
                .await
                .is_err()
            {
                let _ = child.kill().await;
            }
        }
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        while let Some((_, mut child)) = self.processes.pop() {
            let _ = child.start_kill();
            // Reap it, so no zombie outlives a test; SIGKILL makes this immediate.
            if let Some(pid) = child.id() {
                // SAFETY: waiting on our own child's pid.
                unsafe { libc::waitpid(pid as i32, std::ptr::null_mut(), 0) };
            }
        }
    }
}

/// Installs `crds` on any API server by server-side apply, and waits until each is
/// `Established` (a real server serves a new CRD's resources only from then on).
pub async fn install_crds(
    client: &kube::Client,
    crds: &[CustomResourceDefinition],
) -> Result<(), String> {
    use kube::api::{Api, Patch, PatchParams};
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = PatchParams::apply("partner-operator-install").force();
    for crd in crds {
        let name = kube::ResourceExt::name_any(crd);
        api.patch(&name, &params, &Patch::Apply(crd))
            .await
            .map_err(|e| format!("{name}: {e}"))?;
        let established = kube::runtime::wait::conditions::is_crd_established();
        tokio::time::timeout(
            Duration::from_secs(30),
            kube::runtime::wait::await_condition(api.clone(), &name, established),
        )
        .await
        .map_err(|_| format!("{name}: not established within 30 s"))?
        .map_err(|e| format!("{name}: {e}"))?;
    }
    Ok(())
}

/// The certificates and keys of one control plane, made at start.
struct Pki {
    ca_pem: String,
    serving_cert_pem: String,
    serving_key_pem: String,
    service_account_key_pem: String,
    service_account_public_pem: String,
}

/// Where [`Pki::write`] put things.
struct PkiFiles {
    ca: PathBuf,
    serving_cert: PathBuf,
    serving_key: PathBuf,
    service_account_key: PathBuf,
    service_account_public: PathBuf,
    tokens: PathBuf,
    audit_policy: PathBuf,
}

impl Pki {
    fn generate() -> Result<Self, rcgen::Error> {
        use rcgen::{
            BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair,
            KeyUsagePurpose,
        };
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "partner-operator test CA");
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::CrlSign,
        ];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;

        let serving_key = KeyPair::generate()?;
        let mut serving = CertificateParams::new(vec![
            "127.0.0.1".to_string(),
            "localhost".to_string(),
            "kubernetes.default.svc".to_string(),
        ])?;
        serving
            .distinguished_name
            .push(DnType::CommonName, "kube-apiserver");
        let serving_cert = serving.signed_by(&serving_key, &ca)?;
        let service_account = KeyPair::generate()?;
        Ok(Self {
            ca_pem: ca.pem(),
            serving_cert_pem: serving_cert.pem(),
            serving_key_pem: serving_key.serialize_pem(),
            service_account_key_pem: service_account.serialize_pem(),
            service_account_public_pem: service_account.public_key_pem(),
        })
    }

    fn write(&self, dir: &Path, admin_token: &str) -> std::io::Result<PkiFiles> {
        let pki = dir.join("pki");
        std::fs::create_dir_all(&pki)?;
        let files = PkiFiles {
            ca: pki.join("ca.crt"),
            serving_cert: pki.join("apiserver.crt"),
            serving_key: pki.join("apiserver.key"),
            service_account_key: pki.join("service-account.key"),
            service_account_public: pki.join("service-account.pub"),
            tokens: pki.join("tokens.csv"),
            audit_policy: pki.join("audit-policy.yaml"),
        };
        std::fs::write(&files.ca, &self.ca_pem)?;
        std::fs::write(&files.serving_cert, &self.serving_cert_pem)?;
        std::fs::write(&files.serving_key, &self.serving_key_pem)?;
        std::fs::write(&files.service_account_key, &self.service_account_key_pem)?;
        std::fs::write(
            &files.service_account_public,
            &self.service_account_public_pem,
        )?;
        std::fs::write(
            &files.tokens,
            format!("{admin_token},admin,admin,system:masters\n"),
        )?;
        std::fs::write(&files.audit_policy, AUDIT_POLICY)?;
        Ok(files)
    }
}

/// Every request at `Metadata` level (who, what, which object; never a body, so no Secret's
/// data lands in the log), once when it is answered.
const AUDIT_POLICY: &str = "apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
";

fn random_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// One request from kube-apiserver's audit log, as [`ControlPlane::audited_requests`] reads it.
#[derive(Clone, Debug)]
pub struct AuditedRequest {
    /// The path and query, as sent.
    pub request_uri: String,
    /// The Kubernetes verb (`get`, `list`, `watch`, `patch`, ...) or, for a request to no
    /// resource, the lower-case HTTP method.
    pub verb: String,
    /// Who the server authenticated: `system:serviceaccount:NS:NAME` for a ServiceAccount token.
    pub username: String,
    pub user_agent: Option<String>,
    /// The HTTP status of the answer (of its start, for a watch): 403 when RBAC refused it.
    pub code: Option<u16>,
    /// The same request as [`ControlPlane::requests`] records it; `None` for a request to no
    /// resource.
    pub request: Option<RecordedRequest>,
}

/// The part of an `audit.k8s.io/v1` Event the request log needs.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct AuditEvent {
    stage: String,
    verb: String,
    user_agent: Option<String>,
    object_ref: Option<AuditObjectRef>,
    #[serde(rename = "requestURI", default)]
    request_uri: String,
    #[serde(default)]
    user: AuditUser,
    response_status: Option<AuditResponseStatus>,
}

#[derive(serde::Deserialize, Default)]
struct AuditUser {
    #[serde(default)]
    username: String,
}

#[derive(serde::Deserialize)]
struct AuditResponseStatus {
    code: Option<u16>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct AuditObjectRef {
    resource: Option<String>,
    namespace: Option<String>,
    name: Option<String>,
    api_group: Option<String>,
    subresource: Option<String>,
}

impl AuditEvent {
    /// The one event per request: a watch's start, anything else's completion.
    fn is_answer(&self) -> bool {
        match self.verb.as_str() {
            "watch" => self.stage == "ResponseStarted",
            _ => self.stage == "ResponseComplete" || self.stage == "Panic",
        }
    }

    /// One entry per request: a watch when it starts, anything else when it completes.
    /// Requests to no resource (discovery, `/readyz`) are not entries, as in the embedded log.
    fn into_request(self) -> Option<RecordedRequest> {
        let wanted = self.is_answer();
        let object = self.object_ref.filter(|_| wanted)?;
        Some(RecordedRequest {
            verb: self.verb,
            group: object.api_group.unwrap_or_default(),
            resource: object.resource?,
            namespace: object.namespace,
            name: object.name,
            subresource: object.subresource,
            user_agent: self.user_agent,
            implied: false,
        })
    }
}
