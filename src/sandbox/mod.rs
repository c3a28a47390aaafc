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

mod keys;
mod server;
mod state_dir;
mod summary;

use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use partner_sandbox::control_plane::ControlPlaneError;
use partner_sandbox::smtp::SmtpSink;
use partner_sandbox::webhooks::WebhookSink;

pub use keys::SANDBOX_OWNERSHIP_KEY_SECRET;
use server::Server;
use state_dir::{prepare_state_dir, remove_stale, set_aside, write_atomically};
pub use summary::Started;

use crate::clock::Clock;
use crate::operator::{self, RunOptions};
use crate::published_clock::PublishedClock;
use crate::requests_in_flight;

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
    #[error("cannot write the clock into the kubeconfig: {0}")]
    Kubeconfig(String),
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
    check(&options)?;
    let state_dir = prepare_state_dir(&options.state_dir)?;
    let kubeconfig = state_dir.join("kubeconfig");
    // A kubeconfig left by an earlier run points at a server that is gone.
    remove_stale(&kubeconfig)?;
    let outbox = state_dir.join("outbox");
    set_aside(&outbox)?;
    // Bound before the API server starts, so a busy port is refused at once.
    let smtp = start_smtp(options.smtp_port, &outbox).await?;
    let webhooks_dir = state_dir.join("webhooks");
    set_aside(&webhooks_dir)?;
    let webhook_key = keys::new_webhook_key();
    let webhooks = start_webhooks(options.webhook_port, &webhook_key, &webhooks_dir).await?;
    let webhook_stand_in = stand_in_for_examples(options.webhook_port, webhooks.addr());

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
    let server = Server::start(&options, &clock, &state_dir).await?;
    keys::store_webhook_key(&server.client(), &webhook_key)
        .await
        .map_err(SandboxError::WebhookKey)?;
    let ownership_key = keys::ownership_key(&server.client())
        .await
        .map_err(SandboxError::OwnershipKey)?;
    // A sped-up clock goes into the kubeconfig, where `kubectl partner` reads it.
    let published_clock = (options.speed != 1.0).then(|| PublishedClock::of(&clock));
    let kubeconfig_yaml = match &published_clock {
        Some(published) => published
            .publish_in(&server.kubeconfig_yaml())
            .map_err(SandboxError::Kubeconfig)?,
        None => server.kubeconfig_yaml(),
    };
    write_atomically(&kubeconfig, &kubeconfig_yaml).map_err(|source| SandboxError::StateDir {
        path: kubeconfig.clone(),
        source,
    })?;
    ready(&Started {
        kubeconfig: kubeconfig.clone(),
        api_server: server.url(),
        outbox: outbox.clone(),
        smtp: smtp.addr(),
        speed: options.speed,
        published_clock,
        operator: !options.without_operator,
        activation,
        webhooks: webhooks.url(),
        webhooks_stand_in: webhook_stand_in.map(|(for_, _)| for_),
        webhooks_dir,
    });

    let result = match options.without_operator {
        true => {
            shutdown.await;
            Ok(())
        }
        false => {
            let mut run_options =
                operator_options(&options, &smtp, activation, clock, ownership_key);
            run_options.webhook_stand_in = webhook_stand_in;
            let client = operator::client(server.client_config(), requests_in_flight::DEFAULT)
                .expect("a client for the sandbox's own API server");
            operator::run(client, run_options, shutdown)
                .await
                .map_err(SandboxError::from)
        }
    };
    // The kubeconfig would point at nothing once we are gone.
    let _ = std::fs::remove_file(&kubeconfig);
    server.shutdown().await;
    result
}

/// Refuses settings that cannot work, before anything is touched.
fn check(options: &SandboxOptions) -> Result<(), SandboxError> {
    if !(options.speed > 0.0 && options.speed.is_finite()) {
        return Err(SandboxError::Speed(options.speed));
    }
    if options.kube_apiserver.is_some() && options.port != 0 {
        return Err(SandboxError::PortWithKubeApiserver);
    }
    Ok(())
}

/// The SMTP server on `127.0.0.1:port`, writing what it receives to `outbox`.
async fn start_smtp(port: u16, outbox: &Path) -> Result<SmtpSink, SandboxError> {
    SmtpSink::start(
        (Ipv4Addr::LOCALHOST, port).into(),
        Some(outbox.to_path_buf()),
    )
    .await
    .map_err(|source| SandboxError::Smtp { port, source })
}

/// The webhook receiver on `127.0.0.1:port`, verifying with `key` and keeping what it receives
/// in `dir`. On a shared machine the examples' port ([`SANDBOX_WEBHOOK_PORT`]) may be someone
/// else's: then the receiver takes any free port, and the operator delivers what is addressed
/// to the examples' port there (see [`stand_in_for_examples`]).
async fn start_webhooks(port: u16, key: &str, dir: &Path) -> Result<WebhookSink, SandboxError> {
    let start = |port: u16| {
        WebhookSink::start(
            (Ipv4Addr::LOCALHOST, port).into(),
            key,
            Some(dir.to_path_buf()),
        )
    };
    match start(port).await {
        Err(source) if port == SANDBOX_WEBHOOK_PORT && source.kind() == ErrorKind::AddrInUse => {
            start(0).await
        }
        started => started,
    }
    .map_err(|source| SandboxError::Webhooks { port, source })
}

/// When the receiver is not on the examples' port though asked for it (it was taken): the
/// examples' address, and the receiver's that stands in for it.
fn stand_in_for_examples(port: u16, receiver: SocketAddr) -> Option<(SocketAddr, SocketAddr)> {
    let examples = SocketAddr::from((Ipv4Addr::LOCALHOST, SANDBOX_WEBHOOK_PORT));
    (port == SANDBOX_WEBHOOK_PORT && receiver != examples).then_some((examples, receiver))
}

/// The settings of the sandbox's own operator: against its SMTP server, serving activation on
/// `activation`, reading `clock`.
fn operator_options(
    options: &SandboxOptions,
    smtp: &SmtpSink,
    activation: Option<SocketAddr>,
    clock: Clock,
    ownership_key: crate::tenant::OwnershipKey,
) -> RunOptions {
    RunOptions {
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
        webhook_stand_in: None,
        email_per_recipient_per_hour: crate::controller::DEFAULT_EMAILS_PER_RECIPIENT_PER_HOUR,
    }
}

/// `127.0.0.1:port`, with a free port found for 0; refused if taken.
fn free_activation_addr(port: u16) -> std::io::Result<SocketAddr> {
    let probe = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port))?;
    probe.local_addr()
}
