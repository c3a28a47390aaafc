//! The `partner-operator` command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use partner_operator::clock::Clock;
use partner_operator::operator::{self, RunOptions};
use partner_operator::telemetry::{self, LogFormat};

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
    Run(RunArgs),
    /// Print the CustomResourceDefinitions as YAML (what `crds/` holds).
    Crds,
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
    /// Watch Partners in this namespace only (default: all namespaces).
    #[arg(long)]
    namespace: Option<String>,
    /// Directory of email templates overriding the built-in ones (same file names).
    #[arg(long)]
    templates_dir: Option<PathBuf>,
    /// Where /metrics, /healthz and /readyz are served.
    #[arg(long, default_value = "0.0.0.0:8080")]
    metrics_addr: SocketAddr,
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Log filter (RUST_LOG wins when set).
    #[arg(long, default_value = "info")]
    log_level: String,
    /// Partners reconciled at once.
    #[arg(long, default_value_t = 32)]
    concurrency: u16,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Crds => {
            print!("{}", partner_operator::api::crds_yaml());
            ExitCode::SUCCESS
        }
        Command::Run(args) => report(runtime().block_on(run(args))),
    }
}

async fn run(args: RunArgs) -> Result<(), String> {
    telemetry::init(args.log_format, &args.log_level);
    let client = kube::Client::try_default()
        .await
        .map_err(|err| format!("no Kubernetes configuration (in-cluster or kubeconfig): {err}"))?;
    let options = RunOptions {
        smtp_url: args.smtp_url,
        smtp_insecure_plaintext: args.smtp_insecure_plaintext,
        mail_from: args.mail_from,
        activation_base_url: args.activation_base_url,
        namespace: args.namespace,
        templates_dir: args.templates_dir,
        metrics_addr: Some(args.metrics_addr),
        concurrency: args.concurrency,
        clock: Clock::system(),
    };
    operator::run(client, options, operator::shutdown_signal())
        .await
        .map_err(|err| err.to_string())
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
