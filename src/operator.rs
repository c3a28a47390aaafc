//! `partner-operator run`: settings checked up front, then the metrics server and the
//! controllers, until a shutdown signal.
//!
//! Everything that can be wrong with the settings (a malformed SMTP URL, an unreadable
//! credential file, a broken template override, a missing CRD, an unreachable API server) is
//! found before the controllers start, and reported as one line.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use kube::Client;
use tokio::task::JoinHandle;
use tracing::info;

use crate::clock::Clock;
use crate::controller::{self, OperatorConfig, StartError};
use crate::leader::{self, LeaderElection, LeaderError};
use crate::mail::{ConfigError, Mailer, MailerConfig, TemplateError, Templates};
use crate::metrics::{Metrics, Readiness};
use crate::requests_in_flight::RequestsInFlightLayer;
use crate::shutdown::Shutdown;

/// Connections to `/metrics`, `/healthz` and `/readyz` at once: a scraper and the kubelet's
/// probes need a handful; the rest wait in the kernel's backlog (see [`crate::bounded_http`]).
pub const METRICS_MAX_CONNECTIONS: usize = 64;

/// The `User-Agent` of the operator's requests, so an API server's audit log names it.
pub const USER_AGENT: &str = concat!("partner-operator/", env!("CARGO_PKG_VERSION"));

/// The operator's settings, from the command line (or from the sandbox).
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// `smtp://` or `smtps://` URL; never logged (it may hold a password).
    pub smtp_url: String,
    pub smtp_insecure_plaintext: bool,
    pub mail_from: Option<String>,
    pub activation_base_url: Option<String>,
    pub namespace: Option<String>,
    pub templates_dir: Option<PathBuf>,
    /// Where `/metrics`, `/healthz` and `/readyz` are served; `None`: not served.
    pub metrics_addr: Option<SocketAddr>,
    pub concurrency: u16,
    pub clock: Clock,
    /// `None`: this process reconciles without asking anyone (one replica, or the sandbox).
    pub leader_election: Option<LeaderElection>,
    /// The key activation tokens are made with; `None`: a random one for this process (a
    /// resend after a restart then carries a new link).
    pub activation_key: Option<crate::tenant::ActivationKey>,
    /// The key tenants' ownership proofs are made with; `None`: a random one for this process
    /// (a restarted operator then finds the tenants it made taken: never use it for tenants
    /// that must outlive the process).
    pub ownership_key: Option<crate::tenant::OwnershipKey>,
    /// Give tenants of an earlier version (labelled, no proof) their ownership proof.
    pub prove_existing_tenants: bool,
    /// The activation service (the emailed link lands there); `None`: not served. Every
    /// replica serves it, leading or standing by.
    pub activation_service: Option<crate::activation::ServiceOptions>,
    /// Where the Secrets holding webhook signing keys are read; `None`: the pod's namespace
    /// (else the kubeconfig's).
    pub webhook_secrets_namespace: Option<String>,
    /// Networks webhook deliveries may reach although they are not public (loopback, private,
    /// link-local, ...): a receiver in the cluster, or on this machine. Empty: public
    /// addresses only.
    pub webhook_allow_private_networks: Vec<ipnet::IpNet>,
    /// A loopback address whose webhook deliveries go to another (the sandbox's receiver,
    /// standing in for the examples' port when that was taken): `(for, at)`. Never set by
    /// `run`.
    pub webhook_stand_in: Option<(SocketAddr, SocketAddr)>,
    /// Activation emails to one recipient address in any hour, across Partners and
    /// Distributors (0: no limit).
    pub email_per_recipient_per_hour: u32,
}

/// Why the operator did not start, in one line.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("--smtp-url: {0}")]
    Smtp(#[from] ConfigError),
    #[error("--templates-dir: {0}")]
    Templates(#[from] TemplateError),
    #[error(
        "--activation-base-url: {0:?} is not an https:// URL (or http:// to a loopback address) without a user part or a backslash"
    )]
    ActivationBaseUrl(String),
    #[error("{0}")]
    Start(#[from] StartError),
    #[error("{0}")]
    Leader(#[from] LeaderError),
    #[error("--metrics-addr {addr}: {source}")]
    Metrics {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("--activation-addr {addr}: {source}")]
    ActivationService {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// The operator's client of the API server from `config`, with at most `requests_in_flight`
/// requests in flight besides its watches and its Lease (see [`crate::requests_in_flight`]).
pub fn client(config: kube::Config, requests_in_flight: usize) -> kube::Result<Client> {
    Ok(kube::client::ClientBuilder::try_from(config)?
        .with_layer(&RequestsInFlightLayer::new(requests_in_flight))
        .build())
}

/// Checks the settings, then runs the operator until `shutdown` resolves.
pub async fn run(
    client: Client,
    mut options: RunOptions,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> Result<(), RunError> {
    let mailer = Arc::new(checked_mailer(&options)?);
    controller::preflight(&client).await?;

    let metrics = Arc::new(Metrics::new());
    let readiness = Readiness::default();
    let stop = Shutdown::on(shutdown);
    let metrics_server = match options.metrics_addr {
        Some(addr) => Some(serve_metrics(addr, metrics.clone(), readiness.clone(), &stop).await?),
        None => None,
    };
    let ownership_key = options.ownership_key.clone().unwrap_or_else(|| {
        tracing::warn!(
            "no --ownership-key-file: tenants are proven with a key of this process only, so \
             after a restart the tenants it made are taken, not its own"
        );
        crate::tenant::OwnershipKey::random()
    });
    let activation_server = match &options.activation_service {
        Some(service) => {
            let state = crate::activation::Service::new(
                client.clone(),
                options.clock.clone(),
                metrics.clone(),
                ownership_key.clone(),
                service,
            )
            .with_page(crate::activation::page::PageTemplate::load(
                options.templates_dir.as_deref(),
            )?);
            Some(serve_activation(service.addr, state, &stop).await?)
        }
        None => None,
    };
    let election = options.leader_election.take();
    let config = operator_config(&client, options, mailer, metrics, readiness, ownership_key);
    let result = lead_and_reconcile(client, config, election, stop).await;
    // On a lost Lease the shutdown signal has not come: stop serving anyway.
    for server in [metrics_server, activation_server].into_iter().flatten() {
        server.abort();
        let _ = server.await;
    }
    result
}

/// The mailer, once the SMTP URL, the sender, the templates and the activation base URL are
/// found usable.
fn checked_mailer(options: &RunOptions) -> Result<Mailer, RunError> {
    let mut mailer_config =
        MailerConfig::from_url(&options.smtp_url, options.smtp_insecure_plaintext)?;
    if let Some(from) = &options.mail_from {
        mailer_config = mailer_config.with_from(from)?;
    }
    let templates = Templates::load(options.templates_dir.as_deref())?;
    if let Some(base) = &options.activation_base_url
        && crate::tenant::link_base(base).is_err()
    {
        return Err(RunError::ActivationBaseUrl(base.clone()));
    }
    Ok(Mailer::new(mailer_config, templates)?)
}

/// Serves `/metrics`, `/healthz` and `/readyz` on `addr` until `stop`.
async fn serve_metrics(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    readiness: Readiness,
    stop: &Shutdown,
) -> Result<JoinHandle<()>, RunError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| RunError::Metrics { addr, source })?;
    let bound = listener.local_addr().unwrap_or(addr);
    info!(addr = %bound, "serving /metrics, /healthz and /readyz");
    let router = crate::metrics::router(metrics, readiness);
    let stop = stop.clone().wait();
    let cap = crate::bounded_http::connection_cap(
        METRICS_MAX_CONNECTIONS,
        crate::bounded_http::descriptor_limit(),
    );
    Ok(tokio::spawn(async move {
        let _ = crate::bounded_http::serve(listener, router, cap, stop).await;
    }))
}

/// Serves the activation service on `addr` until `stop`, and checks the activations recorded
/// in tenants but not yet finished.
async fn serve_activation(
    addr: SocketAddr,
    state: crate::activation::Service,
    stop: &Shutdown,
) -> Result<JoinHandle<()>, RunError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| RunError::ActivationService { addr, source })?;
    let bound = listener.local_addr().unwrap_or(addr);
    info!(addr = %bound, "serving the activation service");
    let state = Arc::new(state);
    let stop = stop.clone().wait();
    // The tenant directory's watch lives and dies with the server.
    let tenants = state.watch_tenants();
    let finishing = state.clone();
    tokio::spawn(async move {
        if let Err(err) = finishing.finish_recorded().await {
            tracing::warn!(error = %err, "activations recorded in tenants not checked");
        }
    });
    Ok(tokio::spawn(async move {
        tokio::select! {
            _ = crate::activation::serve(listener, state, stop) => {}
            () = tenants => {}
        }
    }))
}

/// What the controllers run with, from the settings and what was made of them.
fn operator_config(
    client: &Client,
    options: RunOptions,
    mailer: Arc<Mailer>,
    metrics: Arc<Metrics>,
    readiness: Readiness,
    ownership_key: crate::tenant::OwnershipKey,
) -> OperatorConfig {
    let webhook_secrets_namespace = options
        .webhook_secrets_namespace
        .unwrap_or_else(|| client.default_namespace().to_string());
    OperatorConfig {
        mailer,
        activation_base_url: options.activation_base_url,
        activation_key: options.activation_key.unwrap_or_else(|| {
            tracing::warn!(
                "no --activation-key-file: activation tokens use a key of this process only, \
                 so an activation email resent after a restart carries a new link"
            );
            crate::tenant::ActivationKey::random()
        }),
        ownership: crate::tenant::Ownership {
            key: ownership_key,
            prove_existing: options.prove_existing_tenants,
        },
        namespace: options.namespace,
        clock: options.clock,
        metrics,
        readiness,
        concurrency: options.concurrency,
        webhook_secrets_namespace,
        webhook_egress: stand_in(
            crate::webhooks::EgressPolicy::allowing(options.webhook_allow_private_networks),
            options.webhook_stand_in,
        ),
        email_per_recipient_per_hour: options.email_per_recipient_per_hour,
    }
}

fn stand_in(
    policy: crate::webhooks::EgressPolicy,
    stand_in: Option<(SocketAddr, SocketAddr)>,
) -> crate::webhooks::EgressPolicy {
    match stand_in {
        Some((for_, at)) => policy.standing_in(for_, at),
        None => policy,
    }
}

/// Runs the controllers: at once without leader election; else once this replica holds the
/// Lease, for as long as it holds it. A standby reports ready (it is healthy and can take
/// over); a leader, once its caches are filled.
async fn lead_and_reconcile(
    client: Client,
    config: OperatorConfig,
    election: Option<LeaderElection>,
    stop: Shutdown,
) -> Result<(), RunError> {
    let Some(election) = election else {
        controller::run(client, config, stop).await;
        return Ok(());
    };
    config.readiness.set_ready(true);
    let Some(leadership) = leader::acquire(client.clone(), &election, stop.clone().wait()).await?
    else {
        return Ok(());
    };
    config.readiness.set_ready(false);
    let (lost, on_lost) = Shutdown::new();
    let controllers = controller::run(client, config, stop.or(on_lost));
    tokio::pin!(controllers);
    tokio::select! {
        _ = &mut controllers => {}
        error = leadership.hold() => {
            lost.fire();
            controllers.await;
            return Err(error.into());
        }
    }
    leadership.release().await;
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("a SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    info!("shutdown signal received");
}
