//! `partner-operator sandbox`: the API server, the SMTP server and the operator in one process.
//!
//! The servers come from the `partner-sandbox` crate, which knows nothing of the operator; this
//! module joins them to it: the embedded server reads the operator's sped-up clock and gets the
//! operator's CRDs.
//!
//! Start-up order matters to the person at the keyboard: the state directory is checked first
//! (an unwritable directory is the most common mistake and should not wait for anything), then
//! the API server binds its port, the CRDs are installed, and only then is `DIR/kubeconfig`
//! written, so a script that waits for the file can use it at once. The operator starts last,
//! against the same server, reading the same clock.
//!
//! Each run starts a fresh outbox: the previous run's `outbox/` becomes `outbox.previous/`
//! (replacing an older one), so the messages of one run are numbered from `0001` and never mix
//! with another's. The SMTP server runs with or without the operator, so an operator run
//! separately against the sandbox's API server has somewhere to send its mail.
//!
//! With `--kube-apiserver DIR` the API server is the real one: etcd, kube-apiserver and
//! kube-controller-manager from DIR (what `hack/kube-assets.sh` prints), their data, certificates
//! and logs under `STATE/control-plane/`. Only the operator reads the sped-up clock then; the
//! real server's own timestamps stay real.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use partner_sandbox::apiserver::ApiServer;
use partner_sandbox::control_plane::{ControlPlane, ControlPlaneError};
use partner_sandbox::smtp::SmtpSink;
use partner_sandbox::webhooks::WebhookSink;

use crate::clock::Clock;
use crate::operator::{self, RunOptions};

/// Where activation links point for Distributors that set no `spec.activation.baseUrl`: the
/// sandbox's own activation service on loopback, over plain HTTP (`--activation-base-url`
/// accepts `http://` for a loopback host only; see [`crate::tenant::link_base`]).
pub fn sandbox_activation_base_url(addr: SocketAddr) -> String {
    format!("http://{addr}/activate")
}

/// The sandbox's settings, from the command line.
#[derive(Clone, Debug)]
pub struct SandboxOptions {
    /// Holds `kubeconfig` and `outbox/`; created if missing.
    pub state_dir: PathBuf,
    /// The API server's port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// The SMTP server's port on 127.0.0.1; 0 picks a free one.
    pub smtp_port: u16,
    /// How many times faster than real time the clock runs (86400 = a day a second).
    pub speed: f64,
    /// Run the API server and the SMTP server without the operator, e.g. for
    /// `partner-operator run` against them.
    pub without_operator: bool,
    /// Serve the operator's `/metrics`, `/healthz` and `/readyz` here.
    pub metrics_addr: Option<SocketAddr>,
    /// The activation service's port on 127.0.0.1; 0 picks a free one.
    pub activation_port: u16,
    /// Run the real etcd, kube-apiserver and kube-controller-manager from this directory
    /// instead of the embedded API server.
    pub kube_apiserver: Option<PathBuf>,
    /// The webhook receiver's port on 127.0.0.1 (the examples' Distributor delivers to
    /// [`SANDBOX_WEBHOOK_PORT`]); 0 picks a free one.
    pub webhook_port: u16,
}

/// Where the examples' Distributor delivers its webhook events: the sandbox's receiver.
pub const SANDBOX_WEBHOOK_PORT: u16 = 8082;
/// The namespace the sandbox's operator reads webhook signing keys from (as a deployed one
/// reads its own namespace's).
pub const SANDBOX_OPERATOR_NAMESPACE: &str = "partner-operator";
/// The Secret there that the examples' Distributor names as its signing key; the sandbox makes
/// it with a fresh key each run, and its receiver verifies with that key.
pub const SANDBOX_WEBHOOK_KEY_SECRET: &str = "northwind-webhook-key";
/// The Distributor the sandbox's signing key signs for: the examples' one.
pub const SANDBOX_DISTRIBUTOR: &str = "northwind";

/// Why the sandbox stopped with an error, in one line.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("--speed {0}: must be a positive number")]
    Speed(f64),
    #[error("--state-dir {path}: {source}")]
    StateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("--port {port}: cannot listen on 127.0.0.1:{port}: {source}")]
    Port { port: u16, source: std::io::Error },
    #[error("--kube-apiserver and --port: the real API server picks its own free port")]
    PortWithKubeApiserver,
    /// A missing binary is named with its directory by [`ControlPlaneError`].
    #[error("--kube-apiserver: {0}")]
    KubeApiserver(ControlPlaneError),
    #[error("--smtp-port {port}: cannot listen on 127.0.0.1:{port}: {source}")]
    Smtp { port: u16, source: std::io::Error },
    #[error("--activation-port {port}: cannot listen on 127.0.0.1:{port}: {source}")]
    Activation { port: u16, source: std::io::Error },
    #[error("--webhook-port {port}: cannot listen on 127.0.0.1:{port}: {source}")]
    Webhooks { port: u16, source: std::io::Error },
    #[error("cannot store the webhook signing key: {0}")]
    WebhookKey(String),
    #[error("cannot store the tenant ownership key: {0}")]
    OwnershipKey(String),
    #[error("cannot install the CRDs: {0}")]
    Crds(String),
    #[error("the operator stopped: {0}")]
    Operator(#[from] operator::RunError),
}

/// Runs the sandbox until `shutdown` resolves. `ready` is told the paths and addresses once
/// everything answers (the command line prints them).
pub async fn run(
    options: SandboxOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
    ready: impl FnOnce(&Started),
) -> Result<(), SandboxError> {
    if !(options.speed > 0.0 && options.speed.is_finite()) {
        return Err(SandboxError::Speed(options.speed));
    }
    if options.kube_apiserver.is_some() && options.port != 0 {
        return Err(SandboxError::PortWithKubeApiserver);
    }
    let state_dir = prepare_state_dir(&options.state_dir)?;
    let kubeconfig = state_dir.join("kubeconfig");
    // A kubeconfig left by an earlier run points at a server that is gone.
    remove_stale(&kubeconfig)?;
    let outbox = state_dir.join("outbox");
    set_aside(&outbox)?;
    // Bound before the API server starts, so a busy port is refused at once.
    let smtp = SmtpSink::start(
        (Ipv4Addr::LOCALHOST, options.smtp_port).into(),
        Some(outbox.clone()),
    )
    .await
    .map_err(|source| SandboxError::Smtp {
        port: options.smtp_port,
        source,
    })?;
    let webhooks_dir = state_dir.join("webhooks");
    set_aside(&webhooks_dir)?;
    let webhook_key = new_webhook_key();
    let webhooks = WebhookSink::start(
        (Ipv4Addr::LOCALHOST, options.webhook_port).into(),
        &webhook_key,
        Some(webhooks_dir.clone()),
    )
    .await
    .map_err(|source| SandboxError::Webhooks {
        port: options.webhook_port,
        source,
    })?;

    // The port is found (and a busy one refused) now, for the summary and the links; the
    // operator listens on it once it starts.
    let activation = match options.without_operator {
        true => None,
        false => Some(
            free_activation_addr(options.activation_port).map_err(|source| {
                SandboxError::Activation {
                    port: options.activation_port,
                    source,
                }
            })?,
        ),
    };

    let clock = Clock::scaled(options.speed);
    let server = match &options.kube_apiserver {
        None => {
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, options.port));
            let server_clock = clock.clone();
            let server = ApiServer::start(addr, move || server_clock.now())
                .await
                .map_err(|source| SandboxError::Port {
                    port: options.port,
                    source,
                })?;
            server
                .install_crds(&crate::api::crds())
                .await
                .map_err(SandboxError::Crds)?;
            Server::Embedded(server)
        }
        Some(assets) => {
            let plane = ControlPlane::start(assets, &state_dir.join("control-plane"))
                .await
                .map_err(SandboxError::KubeApiserver)?;
            // Dropping the plane on an error stops its processes.
            plane
                .install_crds(&crate::api::crds())
                .await
                .map_err(SandboxError::KubeApiserver)?;
            Server::Kube(plane)
        }
    };

    store_webhook_key(&server.client(), &webhook_key)
        .await
        .map_err(SandboxError::WebhookKey)?;
    let ownership_key = ownership_key(&server.client())
        .await
        .map_err(SandboxError::OwnershipKey)?;
    write_atomically(&kubeconfig, &server.kubeconfig_yaml()).map_err(|source| {
        SandboxError::StateDir {
            path: kubeconfig.clone(),
            source,
        }
    })?;
    ready(&Started {
        kubeconfig: kubeconfig.clone(),
        api_server: server.url(),
        outbox: outbox.clone(),
        smtp: smtp.addr(),
        speed: options.speed,
        operator: !options.without_operator,
        activation,
        webhooks: webhooks.url(),
        webhooks_dir,
    });

    let result = match options.without_operator {
        true => {
            shutdown.await;
            Ok(())
        }
        false => {
            let options = RunOptions {
                smtp_url: smtp.url(),
                smtp_insecure_plaintext: true,
                mail_from: Some("Partner Onboarding <onboarding@sandbox.invalid>".into()),
                activation_base_url: activation.map(sandbox_activation_base_url),
                namespace: None,
                templates_dir: None,
                metrics_addr: options.metrics_addr,
                concurrency: 64,
                clock,
                // One operator in one process: nobody to elect.
                leader_election: None,
                // The operator lives as long as this process, and so does its key.
                activation_key: Some(crate::tenant::ActivationKey::random()),
                // From the Secret, as a deployed operator's: a sandbox on a kept control
                // plane (--kube-apiserver) finds its tenants its own after a restart.
                ownership_key: Some(ownership_key),
                prove_existing_tenants: false,
                activation_service: activation.map(crate::activation::ServiceOptions::new),
                webhook_secrets_namespace: Some(SANDBOX_OPERATOR_NAMESPACE.into()),
                // Its own receiver is on loopback; nothing else private is reached.
                webhook_allow_private_networks: crate::webhooks::EgressPolicy::loopback(),
                email_per_recipient_per_hour:
                    crate::controller::DEFAULT_EMAILS_PER_RECIPIENT_PER_HOUR,
            };
            operator::run(server.client(), options, shutdown)
                .await
                .map_err(SandboxError::from)
        }
    };
    // The kubeconfig would point at nothing once we are gone.
    let _ = std::fs::remove_file(&kubeconfig);
    server.shutdown().await;
    result
}

/// The API server the sandbox runs: the embedded one, or the real control plane.
enum Server {
    Embedded(ApiServer),
    Kube(ControlPlane),
}

impl Server {
    fn client(&self) -> kube::Client {
        match self {
            Server::Embedded(server) => server.client(),
            Server::Kube(plane) => plane.client(),
        }
    }

    fn url(&self) -> String {
        match self {
            Server::Embedded(server) => server.url(),
            Server::Kube(plane) => plane.url().to_string(),
        }
    }

    fn kubeconfig_yaml(&self) -> String {
        match self {
            Server::Embedded(server) => server.kubeconfig_yaml(),
            Server::Kube(plane) => plane.kubeconfig_yaml(),
        }
    }

    async fn shutdown(self) {
        match self {
            Server::Embedded(server) => server.shutdown().await,
            Server::Kube(plane) => plane.shutdown().await,
        }
    }
}

/// What a started sandbox offers, for the lines printed at start.
#[derive(Clone, Debug)]
pub struct Started {
    pub kubeconfig: PathBuf,
    pub api_server: String,
    /// Where the SMTP server writes what it receives (made with the first message).
    pub outbox: PathBuf,
    pub smtp: SocketAddr,
    pub speed: f64,
    /// Whether the operator runs (not with `--without-operator`).
    pub operator: bool,
    /// Where the activation service listens (with the operator).
    pub activation: Option<SocketAddr>,
    /// Where the webhook receiver takes deliveries, and where it keeps them.
    pub webhooks: String,
    pub webhooks_dir: PathBuf,
}

impl Started {
    /// A few lines that say where things are and what to type next.
    pub fn summary(&self) -> String {
        let kubeconfig = self.kubeconfig.display();
        let mut lines = vec![format!(
            "API server   {} (kubeconfig: {kubeconfig})",
            self.api_server
        )];
        let outbox = self.outbox.display();
        lines.push(format!(
            "SMTP server  smtp://{} (messages in {outbox}: NNNN-<kind>.eml, to read NNNN-<kind>.txt)",
            self.smtp
        ));
        lines.push(format!(
            "             a fresh outbox each run, from 0001; the previous run's is in {outbox}.previous"
        ));
        if let Some(addr) = self.activation {
            lines.push(format!(
                "activation   {} (the emailed links open here)",
                sandbox_activation_base_url(addr)
            ));
        }
        lines.push(format!(
            "webhooks     {} (verified deliveries in {}: NNNN-<type>.json)",
            self.webhooks,
            self.webhooks_dir.display()
        ));
        if self.operator {
            lines.push(format!("clock        {}x real time", self.speed));
        } else {
            lines.push("operator     not started (--without-operator); to run your own:".into());
            lines.push(format!(
                "             KUBECONFIG={kubeconfig} partner-operator run --smtp-url smtp://{} --smtp-insecure-plaintext \\"
                , self.smtp
            ));
            lines.push(format!(
                "               --activation-addr {OWN_ACTIVATION} --activation-base-url {} \\",
                sandbox_activation_base_url(OWN_ACTIVATION.parse().expect("an address"))
            ));
            lines.push(format!(
                "               --webhook-secrets-namespace {SANDBOX_OPERATOR_NAMESPACE} \\"
            ));
            lines
                .push("               --webhook-allow-private-networks 127.0.0.0/8,::1/128".into());
        }
        lines.push(format!(
            "next         export KUBECONFIG={kubeconfig}; kubectl apply -f examples/; kubectl get partners -A -w"
        ));
        lines.push("stop         Ctrl-C".into());
        lines.join("\n")
    }
}

/// A fresh Standard Webhooks key: 32 random bytes.
fn new_webhook_key() -> String {
    let bytes: [u8; 32] = rand::random();
    format!(
        "whsec_{}",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, bytes)
    )
}

/// Makes the operator's namespace and, in it, the signing key Secret the examples' Distributor
/// names, holding `key` (replacing one an earlier run left on a real control plane's disk).
async fn store_webhook_key(client: &kube::Client, key: &str) -> Result<(), String> {
    use k8s_openapi::api::core::v1::{Namespace, Secret};
    use kube::api::{Api, Patch, PatchParams};
    let params = PatchParams::apply("partner-operator-sandbox").force();
    let namespace = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": SANDBOX_OPERATOR_NAMESPACE},
    });
    Api::<Namespace>::all(client.clone())
        .patch(
            SANDBOX_OPERATOR_NAMESPACE,
            &params,
            &Patch::Apply(namespace),
        )
        .await
        .map_err(|e| e.to_string())?;
    let secret = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": SANDBOX_WEBHOOK_KEY_SECRET,
            "namespace": SANDBOX_OPERATOR_NAMESPACE,
            "labels": {crate::webhooks::SIGNING_KEY_LABEL: "true"},
            // The examples' Distributor, the one it signs for.
            "annotations": {crate::webhooks::SIGNING_KEY_DISTRIBUTOR_ANNOTATION: SANDBOX_DISTRIBUTOR},
        },
        "stringData": {"signingKey": key},
    });
    Api::<Secret>::namespaced(client.clone(), SANDBOX_OPERATOR_NAMESPACE)
        .patch(SANDBOX_WEBHOOK_KEY_SECRET, &params, &Patch::Apply(secret))
        .await
        .map_err(|_| "the API server refused the Secret".to_string())?;
    Ok(())
}

/// The Secret in the operator's namespace holding the key tenants' ownership proofs are made
/// with, as the chart's `<release>-ownership-key`.
pub const SANDBOX_OWNERSHIP_KEY_SECRET: &str = "partner-operator-ownership-key";

/// The tenant ownership key: the one in [`SANDBOX_OWNERSHIP_KEY_SECRET`] if an earlier run
/// left it (a real control plane's disk outlives the process), else a fresh one stored there.
async fn ownership_key(client: &kube::Client) -> Result<crate::tenant::OwnershipKey, String> {
    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::Secret;
    use kube::api::{Api, PostParams};
    let api = Api::<Secret>::namespaced(client.clone(), SANDBOX_OPERATOR_NAMESPACE);
    let refused = |_| "the API server refused the Secret".to_string();
    let stored = api
        .get_opt(SANDBOX_OWNERSHIP_KEY_SECRET)
        .await
        .map_err(refused)?;
    let kept = stored
        .as_ref()
        .and_then(|secret| secret.data.as_ref()?.get("key"))
        .and_then(|key| crate::tenant::OwnershipKey::from_bytes(&key.0).ok());
    if let Some(key) = kept {
        return Ok(key);
    }
    let bytes = hex::encode(rand::random::<[u8; 32]>()).into_bytes();
    let key = crate::tenant::OwnershipKey::from_bytes(&bytes)?;
    let mut secret = Secret::default();
    secret.metadata.name = Some(SANDBOX_OWNERSHIP_KEY_SECRET.into());
    secret.data = Some([("key".to_string(), ByteString(bytes))].into());
    match stored {
        None => api.create(&PostParams::default(), &secret).await.map(drop),
        Some(old) => {
            secret.metadata.resource_version = old.metadata.resource_version;
            api.replace(
                SANDBOX_OWNERSHIP_KEY_SECRET,
                &PostParams::default(),
                &secret,
            )
            .await
            .map(drop)
        }
    }
    .map_err(refused)?;
    Ok(key)
}

/// Creates the state directory if needed and proves it writable, returning its absolute path
/// (the printed `export KUBECONFIG=...` must work from any directory).
fn prepare_state_dir(dir: &Path) -> Result<PathBuf, SandboxError> {
    let fail = |source| SandboxError::StateDir {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(fail)?;
    let probe = dir.join(".write-test");
    std::fs::write(&probe, b"").map_err(fail)?;
    let _ = std::fs::remove_file(&probe);
    std::path::absolute(dir).map_err(fail)
}

/// Moves an earlier run's outbox (or webhooks directory) to `<name>.previous` (replacing an
/// older one), so this run's files start at `0001`. An empty directory is left where it is.
fn set_aside(outbox: &Path) -> Result<(), SandboxError> {
    let fail = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SandboxError::StateDir { path, source }
    };
    let holds_mail = match std::fs::read_dir(outbox) {
        Ok(mut entries) => entries.next().is_some(),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => false,
        Err(err) => return Err(fail(outbox)(err)),
    };
    if !holds_mail {
        return Ok(());
    }
    let mut name = outbox.file_name().unwrap_or_default().to_os_string();
    name.push(".previous");
    let previous = outbox.with_file_name(name);
    match std::fs::remove_dir_all(&previous) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            return Err(fail(&previous)(err));
        }
        _ => {}
    }
    std::fs::rename(outbox, &previous).map_err(fail(outbox))
}

/// Where the summary of `--without-operator` has the operator run separately serve its
/// activation service.
const OWN_ACTIVATION: &str = "127.0.0.1:8081";

/// `127.0.0.1:port`, with a free port found for 0; refused if taken.
fn free_activation_addr(port: u16) -> std::io::Result<SocketAddr> {
    let probe = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port))?;
    probe.local_addr()
}

fn remove_stale(path: &Path) -> Result<(), SandboxError> {
    match std::fs::remove_file(path) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(SandboxError::StateDir {
            path: path.to_path_buf(),
            source: err,
        }),
        _ => Ok(()),
    }
}

/// Writes through a temporary file and a rename, so a reader never sees half a kubeconfig.
fn write_atomically(path: &Path, contents: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unwritable_state_dir_is_named() {
        let file = tempfile::NamedTempFile::new().unwrap();
        // A path under a regular file can never be a directory.
        let dir = file.path().join("state");
        let err = prepare_state_dir(&dir).unwrap_err().to_string();
        assert!(err.starts_with("--state-dir "), "{err}");
        assert!(err.contains(&dir.display().to_string()), "{err}");
    }

    #[test]
    fn the_summary_says_what_to_type_next() {
        let started = Started {
            kubeconfig: "/tmp/s/kubeconfig".into(),
            api_server: "http://127.0.0.1:6443".into(),
            outbox: "/tmp/s/outbox".into(),
            smtp: "127.0.0.1:2525".parse().unwrap(),
            speed: 86400.0,
            operator: true,
            activation: Some("127.0.0.1:8081".parse().unwrap()),
            webhooks: "http://127.0.0.1:8082/webhooks".into(),
            webhooks_dir: "/tmp/s/webhooks".into(),
        };
        let summary = started.summary();
        assert!(
            summary
                .contains("http://127.0.0.1:8082/webhooks (verified deliveries in /tmp/s/webhooks"),
            "{summary}"
        );
        assert!(summary.contains("export KUBECONFIG=/tmp/s/kubeconfig"));
        assert!(summary.contains("messages in /tmp/s/outbox"));
        assert!(summary.contains("a fresh outbox each run"));
        assert!(summary.contains("/tmp/s/outbox.previous"));
        assert!(summary.contains("86400x"));
        assert!(
            summary.contains("http://127.0.0.1:8081/activate"),
            "{summary}"
        );
        assert!(!summary.contains("partner-operator run"));

        let alone = Started {
            operator: false,
            activation: None,
            ..started
        }
        .summary();
        assert!(alone.contains("--without-operator"), "{alone}");
        assert!(
            alone.contains("--smtp-url smtp://127.0.0.1:2525 --smtp-insecure-plaintext"),
            "{alone}"
        );
        assert!(
            alone.contains(
                "--activation-addr 127.0.0.1:8081 --activation-base-url http://127.0.0.1:8081/activate"
            ),
            "{alone}"
        );
    }

    #[test]
    fn an_earlier_outbox_is_set_aside_replacing_an_older_one() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = dir.path().join("outbox");
        let previous = dir.path().join("outbox.previous");
        set_aside(&outbox).unwrap();
        assert!(!outbox.exists() && !previous.exists());

        std::fs::create_dir_all(&previous).unwrap();
        std::fs::write(previous.join("0001-older.eml"), b"older").unwrap();
        std::fs::create_dir_all(&outbox).unwrap();
        set_aside(&outbox).unwrap();
        assert!(outbox.exists(), "an empty outbox stays");
        assert!(previous.join("0001-older.eml").exists());

        std::fs::write(outbox.join("0001-activation.eml"), b"last").unwrap();
        set_aside(&outbox).unwrap();
        assert!(!outbox.exists());
        let kept: Vec<_> = std::fs::read_dir(&previous)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(kept, ["0001-activation.eml"]);
    }

    #[test]
    fn the_webhooks_directory_is_set_aside_beside_the_outbox_not_over_it() {
        let dir = tempfile::tempdir().unwrap();
        for (name, file) in [
            ("outbox", "0001-activation.eml"),
            ("webhooks", "0001-provisioned.json"),
        ] {
            std::fs::create_dir_all(dir.path().join(name)).unwrap();
            std::fs::write(dir.path().join(name).join(file), b"kept").unwrap();
        }
        set_aside(&dir.path().join("outbox")).unwrap();
        set_aside(&dir.path().join("webhooks")).unwrap();
        assert!(
            dir.path()
                .join("outbox.previous/0001-activation.eml")
                .exists()
        );
        assert!(
            dir.path()
                .join("webhooks.previous/0001-provisioned.json")
                .exists()
        );
    }
}
