//! The `partner-operator` command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use partner_operator::clock::Clock;
use partner_operator::leader::LeaderElection;
use partner_operator::operator::{self, RunOptions};
#[cfg(feature = "sandbox")]
use partner_operator::sandbox::{self as command, SandboxOptions};
use partner_operator::telemetry::{self, LogFormat};

/// jemalloc, not glibc's malloc: the operator allocates and frees many small objects across
/// its runtime's threads (decoded watch events, plans, status copies), and glibc's arenas hold
/// much of what is freed. With jemalloc the peak is lower, at 10,000 Partners and with
/// Partners carrying large annotations, and onboarding no slower (docs/performance.md,
/// "Events off the conversion's path; jemalloc").
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    name = "partner-operator",
    version,
    about = "Onboard a distributor's partners as tenants, declaratively"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the operator against the in-cluster config or the current kubeconfig.
    Run(Box<RunArgs>),
    /// Print the CustomResourceDefinitions as YAML (what `crds/` holds).
    Crds,
    /// A whole system on this machine: an API server, an SMTP server and the operator.
    #[cfg(feature = "sandbox")]
    Sandbox(SandboxArgs),
}

#[cfg(feature = "sandbox")]
#[derive(Args)]
struct SandboxArgs {
    /// Where `kubeconfig` and `outbox/` (one .eml and one readable .txt file per message) are
    /// written; each run sets the previous run's outbox aside as `outbox.previous/`.
    #[arg(long)]
    state_dir: PathBuf,
    /// The API server's port on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 0, conflicts_with = "kube_apiserver")]
    port: u16,
    /// The SMTP server's port on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 0)]
    smtp_port: u16,
    /// Run the real etcd, kube-apiserver and kube-controller-manager from DIR (what
    /// hack/kube-assets.sh prints) instead of the embedded API server.
    #[arg(long, value_name = "DIR")]
    kube_apiserver: Option<PathBuf>,
    /// Run the clock this many times faster than real time (86400: a day a second).
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    /// Start the API server and the SMTP server without the operator (e.g. to run
    /// `partner-operator run` against them).
    #[arg(long)]
    without_operator: bool,
    /// Serve the operator's /metrics, /healthz and /readyz here.
    #[arg(long)]
    metrics_addr: Option<SocketAddr>,
    /// The activation service's port on 127.0.0.1, where the emailed links point (0: any
    /// free port).
    #[arg(long, default_value_t = 0)]
    activation_port: u16,
    /// The webhook receiver's port on 127.0.0.1, where the examples' Distributor delivers (0:
    /// any free port).
    #[arg(long, default_value_t = partner_operator::sandbox::SANDBOX_WEBHOOK_PORT)]
    webhook_port: u16,
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Log filter (RUST_LOG wins when set).
    #[arg(long, default_value = "warn,partner_operator=info")]
    log_level: String,
}

#[derive(Args)]
struct RunArgs {
    /// SMTP server: smtp://[user[:password]@]host[:port][?password_file=...] (STARTTLS
    /// required) or smtps://... (implicit TLS).
    #[arg(long, env = "SMTP_URL", hide_env_values = true)]
    smtp_url: String,
    /// Allow smtp:// without STARTTLS (a relay on loopback or a sidecar only).
    #[arg(long)]
    smtp_insecure_plaintext: bool,
    /// Sender of every email, e.g. "Northwind Onboarding <onboarding@northwind.example>".
    #[arg(long, env = "MAIL_FROM")]
    mail_from: Option<String>,
    /// Activation link base for Distributors that set no spec.activation.baseUrl.
    #[arg(long, env = "ACTIVATION_BASE_URL")]
    activation_base_url: Option<String>,
    /// A file holding the key activation tokens are made with (at least 32 bytes, e.g. a
    /// mounted Secret), so that an activation email resent after a restart carries the same
    /// link. Without it, a key of this process only.
    #[arg(long, env = "ACTIVATION_KEY_FILE")]
    activation_key_file: Option<PathBuf>,
    /// A file holding the key tenants' ownership proofs are made with (at least 32 bytes, e.g.
    /// a mounted Secret that a backup carries): a tenant namespace counts as a Partner's only
    /// with its ownership label and this proof. Without it, a key of this process only.
    #[arg(long, env = "OWNERSHIP_KEY_FILE")]
    ownership_key_file: Option<PathBuf>,
    /// Give tenants made by a version without ownership proofs (labelled with their Partner's
    /// uid, no proof annotation) their proof, instead of taking them for someone else's. Turn
    /// on once after upgrading, having checked that every labelled namespace is a tenant; it
    /// needs `patch` on namespaces (the chart's ownershipProof.proveExistingTenants).
    #[arg(long)]
    prove_existing_tenants: bool,
    /// Watch Partners in this namespace only (default: all namespaces).
    #[arg(long)]
    namespace: Option<String>,
    /// Directory of email templates overriding the built-in ones (same file names).
    #[arg(long)]
    templates_dir: Option<PathBuf>,
    /// Where /metrics, /healthz and /readyz are served.
    #[arg(long, default_value = "0.0.0.0:8080")]
    metrics_addr: SocketAddr,
    /// Where the activation service is served (plain HTTP; TLS terminates at the ingress).
    #[arg(long, default_value = "0.0.0.0:8081")]
    activation_addr: SocketAddr,
    /// The proxies (ingress controller, gateway) whose X-Forwarded-For names the activation
    /// client, as CIDRs (CIDR,CIDR,...). From any other peer the header is ignored; from these,
    /// the right-most address that is not one of them is the client. Default: none.
    #[arg(long, value_name = "CIDR,...", default_value = "", value_parser = parse_trusted_proxies)]
    activation_trusted_proxies: partner_operator::activation::client::TrustedProxies,
    /// Failed activation attempts a minute per client address (then it waits).
    #[arg(long, default_value_t = 30)]
    activation_rate_per_client: u32,
    /// Failed activation attempts a minute per tenant with well-formed tokens (then only the
    /// tenant's current token gets through).
    #[arg(long, default_value_t = 10)]
    activation_rate_per_tenant: u32,
    /// Activation connections served at once; never more than the process's descriptor limit
    /// minus 256, kept for the API server, SMTP and webhooks.
    #[arg(long, default_value_t = 512)]
    activation_max_connections: usize,
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Log filter (RUST_LOG wins when set).
    #[arg(long, default_value = "info")]
    log_level: String,
    /// Partners reconciled at once.
    #[arg(long, default_value_t = 64)]
    concurrency: u16,
    /// Requests to the API server in flight at once, watches and the leader's Lease aside: the
    /// others wait in the operator, so that other clients' requests do not wait behind them.
    #[arg(long, default_value_t = partner_operator::requests_in_flight::DEFAULT)]
    api_requests_in_flight: usize,
    /// Reconcile only while holding a Lease, so that several replicas can run
    /// (`--leader-election=false`: this process alone reconciles).
    #[arg(long, default_value_t = true, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    leader_election: bool,
    /// The Lease's name.
    #[arg(long, default_value = "partner-operator")]
    lease_name: String,
    /// The Lease's namespace (default: the pod's, else the kubeconfig's).
    #[arg(long, env = "POD_NAMESPACE")]
    lease_namespace: Option<String>,
    /// Where the Secrets named by Distributors' `spec.webhooks.endpoints[].signingKeySecretRef`
    /// are read (default: the pod's namespace, else the kubeconfig's).
    #[arg(long, env = "POD_NAMESPACE")]
    webhook_secrets_namespace: Option<String>,
    /// Networks webhook deliveries may reach although they are not public, as CIDRs separated
    /// by commas (e.g. 10.40.0.0/16 for a receiver in the cluster; 127.0.0.1/32 for one on this
    /// machine). Without it, loopback, private, link-local, CGNAT, ULA, multicast and reserved
    /// addresses are refused, and plain http:// goes nowhere.
    #[arg(long, value_name = "CIDR,...", value_delimiter = ',', value_parser = parse_network)]
    webhook_allow_private_networks: Vec<ipnet::IpNet>,
    /// Seconds a Lease holds without renewal: how long a standby waits after a leader dies.
    #[arg(long, default_value_t = 15)]
    lease_duration_seconds: u64,
    /// Activation emails to one recipient address in any hour, across Partners and
    /// Distributors (0: no limit). Counted in memory, seeded at start from what Partners record.
    #[arg(long, default_value_t = partner_operator::controller::DEFAULT_EMAILS_PER_RECIPIENT_PER_HOUR)]
    email_per_recipient_per_hour: u32,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Crds => {
            print!("{}", partner_operator::api::crds_yaml());
            ExitCode::SUCCESS
        }
        Command::Run(args) => report(runtime().block_on(run(*args))),
        #[cfg(feature = "sandbox")]
        Command::Sandbox(args) => report(runtime().block_on(sandbox(args))),
    }
}

#[cfg(feature = "sandbox")]
async fn sandbox(args: SandboxArgs) -> Result<(), String> {
    telemetry::init(args.log_format, &args.log_level);
    let options = SandboxOptions {
        state_dir: args.state_dir,
        port: args.port,
        smtp_port: args.smtp_port,
        speed: args.speed,
        without_operator: args.without_operator,
        metrics_addr: args.metrics_addr,
        activation_port: args.activation_port,
        webhook_port: args.webhook_port,
        kube_apiserver: args.kube_apiserver,
    };
    command::run(options, operator::shutdown_signal(), |started| {
        println!("{}", started.summary());
    })
    .await
    .map_err(|err| err.to_string())
}

async fn run(args: RunArgs) -> Result<(), String> {
    telemetry::init(args.log_format, &args.log_level);
    let mut config = kube::Config::infer()
        .await
        .map_err(|err| format!("no Kubernetes configuration (in-cluster or kubeconfig): {err}"))?;
    // Names the operator in audit logs and request metrics of the API server.
    config.headers.push((
        axum::http::header::USER_AGENT,
        axum::http::HeaderValue::from_static(operator::USER_AGENT),
    ));
    let client = operator::client(config, args.api_requests_in_flight)
        .map_err(|err| format!("no Kubernetes configuration (in-cluster or kubeconfig): {err}"))?;
    let activation_key = match &args.activation_key_file {
        None => None,
        Some(path) => Some(
            std::fs::read(path)
                .map_err(|err| err.to_string())
                .and_then(|bytes| partner_operator::tenant::ActivationKey::from_bytes(&bytes))
                .map_err(|err| format!("--activation-key-file {}: {err}", path.display()))?,
        ),
    };
    let ownership_key = match &args.ownership_key_file {
        None => None,
        Some(path) => Some(
            std::fs::read(path)
                .map_err(|err| err.to_string())
                .and_then(|bytes| partner_operator::tenant::OwnershipKey::from_bytes(&bytes))
                .map_err(|err| format!("--ownership-key-file {}: {err}", path.display()))?,
        ),
    };
    let options = RunOptions {
        activation_key,
        ownership_key,
        prove_existing_tenants: args.prove_existing_tenants,
        smtp_url: args.smtp_url,
        smtp_insecure_plaintext: args.smtp_insecure_plaintext,
        mail_from: args.mail_from,
        activation_base_url: args.activation_base_url,
        namespace: args.namespace,
        templates_dir: args.templates_dir,
        metrics_addr: Some(args.metrics_addr),
        webhook_secrets_namespace: args.webhook_secrets_namespace,
        webhook_allow_private_networks: args.webhook_allow_private_networks,
        webhook_stand_in: None,
        activation_service: Some(partner_operator::activation::ServiceOptions {
            addr: args.activation_addr,
            trusted_proxies: args.activation_trusted_proxies,
            per_client_per_minute: args.activation_rate_per_client,
            per_tenant_per_minute: args.activation_rate_per_tenant,
            max_connections: args.activation_max_connections,
        }),
        concurrency: args.concurrency,
        email_per_recipient_per_hour: args.email_per_recipient_per_hour,
        clock: Clock::system(),
        leader_election: args.leader_election.then(|| {
            let namespace = args
                .lease_namespace
                .unwrap_or_else(|| client.default_namespace().to_string());
            let mut election = LeaderElection::new(namespace, identity());
            election.lease_name = args.lease_name;
            election.lease_duration = Duration::from_secs(args.lease_duration_seconds);
            election.renew_before = election.lease_duration / 3;
            election
        }),
    };
    operator::run(client, options, operator::shutdown_signal())
        .await
        .map_err(|err| err.to_string())
}

fn parse_trusted_proxies(
    list: &str,
) -> Result<partner_operator::activation::client::TrustedProxies, String> {
    partner_operator::activation::client::TrustedProxies::parse(list)
}

/// Who holds the Lease: the pod's name in a cluster (unique among replicas by construction),
/// else the host name with a random suffix, so two processes on one machine differ.
fn identity() -> String {
    if let Ok(pod) = std::env::var("POD_NAME") {
        return pod;
    }
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "partner-operator".into());
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}-{}", &suffix[..8])
}

fn parse_network(text: &str) -> Result<ipnet::IpNet, String> {
    partner_operator::webhooks::EgressPolicy::parse_network(text).map_err(|err| err.to_string())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

fn report(result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
