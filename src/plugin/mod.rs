//! `kubectl partner`: the partner portal's actions as a kubectl plugin.
//!
//! The executable is `kubectl-partner` (`src/bin/kubectl-partner.rs`, a thin main over
//! [`main`]); on the PATH, kubectl finds it and runs it for `kubectl partner ...`. It reads the
//! user's kubeconfig as kubectl does (`KUBECONFIG`, `--kubeconfig`, `--context`,
//! `-n/--namespace`, the context's namespace) and writes by server-side apply under its own
//! field manager ([`ssa`]).
//!
//! One file per command; the pure parts are apart and tested without a server: [`dates`] (what
//! `--expires` takes and how instants print), [`billing`] (partner-days per SKU), [`story`] (a
//! Partner's story and its next step, from the operator's own lifecycle), [`ssa`] (applied
//! configurations and conflicts), [`table`]. What the plugin prints goes through [`output`],
//! which escapes what a terminal would act on; the names it puts into request paths are checked
//! by [`names`] before any request.

// Printing goes through `output` alone.
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub(crate) mod add;
pub mod billing;
pub(crate) mod change;
pub mod console;
pub mod dates;
pub(crate) mod list;
pub mod names;
pub mod output;
mod refusal;
pub(crate) mod report;
pub mod ssa;
pub(crate) mod status;
pub mod story;
pub mod table;

use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand, ValueEnum};
use futures::StreamExt;
use kube::api::{Api, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Config};

pub use refusal::Refusal;

use crate::api::{Distributor, Partner};
use crate::published_clock::PublishedClock;

/// Set to an RFC 3339 instant, the instant the plugin takes as now (default: the system
/// clock): for a sandbox whose clock runs ahead (`--speed`, a test's clock), or a report that
/// must be reproducible.
pub const NOW_ENV: &str = "KUBECTL_PARTNER_NOW";

#[derive(Parser, Debug)]
#[command(
    name = "kubectl partner",
    bin_name = "kubectl partner",
    version,
    about = "A distributor's partner portal as kubectl commands: add partners, follow their \
             trials, convert, renew, and reconcile billing",
    after_help = "Writes use server-side apply with the field manager \"kubectl-partner\"; a field \
                  another manager owns (a GitOps tool) is refused unless --force-conflicts."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// The flags kubectl users expect.
#[derive(Args, Debug, Clone)]
pub struct Global {
    /// The kubeconfig file (default: $KUBECONFIG, else ~/.kube/config).
    #[arg(long, global = true, value_name = "PATH")]
    pub kubeconfig: Option<std::path::PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
    /// The Partner's namespace (default: the context's namespace, else "default").
    #[arg(short = 'n', long, global = true, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// Take fields over from another field manager instead of refusing.
    #[arg(long, global = true)]
    pub force_conflicts: bool,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Add a partner ("Add partner" in the portal): create the Partner and wait until it is
    /// Ready.
    Add(add::AddArgs),
    /// List partners: organization, distributor, level, activation, days left, auto-upgrade,
    /// billing.
    List(list::ListArgs),
    /// A partner's story so far and what happens next.
    Status(status::StatusArgs),
    /// Convert a trial (also an expired one) to Production ("Convert to production account").
    Convert(change::ConvertArgs),
    /// Turn the automatic conversion at the trial's end on or off ("Manage subscription
    /// upgrade").
    AutoUpgrade(change::AutoUpgradeArgs),
    /// Set a new expiration date on a Production subscription (an expired one is renewed).
    Renew(change::RenewArgs),
    /// Ask the operator to send the activation email again.
    ResendActivation(change::ResendArgs),
    /// Billable partner-days per SKU of a Distributor for a month.
    Billing(report::BillingArgs),
    /// Serve the Partners page on loopback, over your own kubeconfig credentials: add,
    /// convert, renew and delete partners, follow their trials, download billing.
    Console(console::ConsoleArgs),
}

/// `--wait`: `--wait` and `--wait=true` wait, `--wait=false` does not.
#[derive(Args, Debug, Clone)]
pub struct WaitArgs {
    /// Wait until the operator has acted (`--wait=false`: return once the write is accepted).
    #[arg(long, default_value_t = true, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub wait: bool,
    /// How long to wait, e.g. 60s, 2m.
    #[arg(long, default_value = "60s", value_parser = parse_timeout)]
    pub timeout: Duration,
}

fn parse_timeout(value: &str) -> std::result::Result<Duration, String> {
    let (number, unit) = value.split_at(
        value
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(value.len()),
    );
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{value:?} is not a duration such as 60s or 2m"))?;
    match unit {
        "s" | "" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        _ => Err(format!("{value:?} is not a duration such as 60s or 2m")),
    }
}

/// Output formats of tables.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    Wide,
    Json,
    Yaml,
}

/// A failure: one line for the user (printed after `error: `).
#[derive(Debug)]
pub struct Error(pub String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<String> for Error {
    fn from(message: String) -> Self {
        Self(message)
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// The API server's answer as one line: its message, the first line of it.
pub fn api_error(what: &str, err: kube::Error) -> Error {
    let line = match &err {
        kube::Error::Api(status) => {
            let message = status.message.lines().next().unwrap_or_default();
            match status.code {
                401 => format!("{what}: unauthorized: {message}"),
                403 => format!("{what}: forbidden: {message}"),
                _ => format!("{what}: {message}"),
            }
        }
        kube::Error::HyperError(_) | kube::Error::Service(_) => {
            let mut source: &dyn std::error::Error = &err;
            while let Some(inner) = source.source() {
                source = inner;
            }
            format!("{what}: cannot reach the Kubernetes API server: {source}")
        }
        other => format!("{what}: {other}"),
    };
    Error(line.replace('\n', " "))
}

/// What every command works with.
#[derive(Clone)]
pub struct Ctx {
    pub client: Client,
    /// The namespace Partners are in (the flag, else the context's).
    pub namespace: String,
    pub now: DateTime<Utc>,
    pub force_conflicts: bool,
}

impl Ctx {
    pub async fn new(global: &Global) -> Result<Self> {
        let options = KubeConfigOptions {
            context: global.context.clone(),
            cluster: None,
            user: None,
        };
        let config = match &global.kubeconfig {
            Some(path) => {
                let kubeconfig = Kubeconfig::read_from(path)
                    .map_err(|e| Error(format!("--kubeconfig {}: {e}", path.display())))?;
                read_clock(&kubeconfig, global.context.as_deref());
                Config::from_custom_kubeconfig(kubeconfig, &options).await
            }
            None => {
                if let Ok(kubeconfig) = Kubeconfig::read() {
                    read_clock(&kubeconfig, global.context.as_deref());
                }
                Config::from_kubeconfig(&options).await
            }
        }
        .map_err(|e| Error(format!("kubeconfig: {e}")))?;
        let namespace = global
            .namespace
            .clone()
            .unwrap_or_else(|| config.default_namespace.clone());
        names::check_namespace(&namespace)?;
        let client = Client::try_from(config).map_err(|e| Error(format!("kubeconfig: {e}")))?;
        Ok(Self {
            client,
            namespace,
            now: now()?,
            force_conflicts: global.force_conflicts,
        })
    }

    pub fn partners(&self) -> Api<Partner> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    pub fn distributors(&self) -> Api<Distributor> {
        Api::all(self.client.clone())
    }

    /// `namespace/name`, as messages name a Partner.
    pub fn qualified(&self, name: &str) -> String {
        format!("{}/{name}", self.namespace)
    }

    /// The Partner, or a line saying it is not there.
    pub async fn partner(&self, name: &str) -> Result<Partner> {
        self.partners()
            .get_opt(name)
            .await
            .map_err(|e| api_error(&format!("partner {}", self.qualified(name)), e))?
            .ok_or_else(|| {
                Error(format!(
                    "partner {name:?} not found in namespace {:?}",
                    self.namespace
                ))
            })
    }

    /// The Distributor, if it exists and can be read.
    pub async fn distributor(&self, name: &str) -> Option<Distributor> {
        self.distributors().get_opt(name).await.ok().flatten()
    }

    /// Applies `changes` to the Partner by server-side apply, keeping the fields the plugin
    /// already owns; a conflict with another manager is refused naming it, unless forced.
    /// `strict`: a field the API server does not know is an error, not dropped.
    pub async fn apply(
        &self,
        name: &str,
        current: Option<&Partner>,
        changes: &[(&[&str], serde_json::Value)],
        strict: bool,
    ) -> Result<Partner> {
        self.try_apply(name, current, changes, strict)
            .await
            .map_err(Error::from)
    }

    /// [`Ctx::apply`], its refusal kept apart by kind (what the console shows by the field).
    pub async fn try_apply(
        &self,
        name: &str,
        current: Option<&Partner>,
        changes: &[(&[&str], serde_json::Value)],
        strict: bool,
    ) -> std::result::Result<Partner, Refusal> {
        let current = current.map(|p| serde_json::to_value(p).expect("a Partner serializes"));
        let config = ssa::applied_config(name, &self.namespace, current.as_ref(), changes);
        let mut params = PatchParams::apply(ssa::FIELD_MANAGER);
        params.force = self.force_conflicts;
        if strict {
            params.field_validation = Some(kube::api::ValidationDirective::Strict);
        }
        let api = self.partners();
        let what = format!("the API server refused partner {}", self.qualified(name));
        let refused = match api.patch(name, &params, &Patch::Apply(&config)).await {
            Ok(partner) => return Ok(partner),
            Err(kube::Error::Api(status)) if status.code == 409 => status,
            Err(e) => return Err(Refusal::from_api(&what, e)),
        };
        let conflicts = ssa::conflicts(&refused);
        if conflicts.is_empty() {
            return Err(Refusal::Other(Error(format!(
                "{}: {}",
                self.qualified(name),
                refused.message
            ))));
        }
        let defaults_only = current
            .as_ref()
            .is_some_and(|c| ssa::only_undeclared_defaults(c, &conflicts));
        if !defaults_only {
            let line = ssa::conflict_line(&self.qualified(name), &conflicts);
            return Err(Refusal::Conflict { conflicts, line });
        }
        for conflict in &conflicts {
            output::note(&format!(
                "note: {} was a default the API server recorded under {:?}, not in its \
                 last-applied configuration: taken over",
                conflict.field, conflict.manager
            ));
        }
        params.force = true;
        api.patch(name, &params, &Patch::Apply(&config))
            .await
            .map_err(|e| Refusal::from_api(&what, e))
    }

    /// Waits until `check` says the Partner is done (`Ok(Some)`), failed (`Err`), or
    /// `timeout` passes; prints a progress line on stderr each time what it waits for changes.
    pub async fn wait_for<T>(
        &self,
        name: &str,
        timeout: Duration,
        check: impl Fn(&Partner) -> Progress<T>,
    ) -> Result<T> {
        let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
        let stream = watcher(self.partners(), config)
            .default_backoff()
            .applied_objects();
        let mut stream = std::pin::pin!(stream);
        let mut last = String::new();
        output::note(&format!(
            "waiting up to {}s for {} (--wait=false returns at once)",
            timeout.as_secs(),
            self.qualified(name)
        ));
        let waiting = async {
            while let Some(item) = stream.next().await {
                let Ok(partner) = item else { continue };
                match check(&partner) {
                    Progress::Done(done) => return Ok(done),
                    Progress::Failed(why) => return Err(Error(why)),
                    Progress::Waiting(what) => {
                        if what != last {
                            output::note(&format!(
                                "waiting for {}: {}",
                                self.qualified(name),
                                output::one_line(&what)
                            ));
                            last = what;
                        }
                    }
                }
            }
            Err(Error(format!("{}: the watch ended", self.qualified(name))))
        };
        match tokio::time::timeout(timeout, waiting).await {
            Ok(result) => result,
            Err(_) => Err(Error(format!(
                "timed out after {}s waiting for {} (last seen: {}); `kubectl partner status {name}` tells more",
                timeout.as_secs(),
                self.qualified(name),
                if last.is_empty() { "nothing" } else { &last }
            ))),
        }
    }
}

/// What a wait saw.
pub enum Progress<T> {
    Done(T),
    Failed(String),
    Waiting(String),
}

/// Whether the Partner's status describes its current spec (`observedGeneration`).
pub fn observed(partner: &Partner) -> bool {
    let generation = partner.metadata.generation;
    partner.status.as_ref().and_then(|s| s.observed_generation) >= generation
        && generation.is_some()
}

/// The clock the kubeconfig's cluster publishes (a sandbox run with `--speed`), if any: read
/// once, with the kubeconfig, as a process talks to one cluster.
static PUBLISHED_CLOCK: std::sync::OnceLock<PublishedClock> = std::sync::OnceLock::new();

/// Keeps the clock `kubeconfig` publishes for `context`'s cluster, for [`now`].
fn read_clock(kubeconfig: &Kubeconfig, context: Option<&str>) {
    if let Some(clock) = PublishedClock::from_kubeconfig(kubeconfig, context) {
        let _ = PUBLISHED_CLOCK.set(clock);
    }
}

/// Now: [`NOW_ENV`] when set, else the clock the cluster's kubeconfig entry publishes (the
/// sandbox's, sped up), else the system clock.
pub(crate) fn now() -> Result<DateTime<Utc>> {
    match std::env::var(NOW_ENV) {
        Ok(value) => crate::api::grammar::parse_date_time(&value)
            .map_err(|e| Error(format!("{NOW_ENV}={value:?}: {e}"))),
        Err(_) => Ok(PUBLISHED_CLOCK
            .get()
            .map_or_else(Utc::now, PublishedClock::now)),
    }
}

/// Runs the command line; the error is one line for stderr ([`output::error`]). Every name
/// that goes into a request path is checked first.
pub async fn main(cli: Cli) -> Result<()> {
    cli.command.check_names()?;
    let ctx = Ctx::new(&cli.global).await?;
    match cli.command {
        Command::Add(args) => add::run(&ctx, args).await,
        Command::List(args) => list::run(&ctx, args).await,
        Command::Status(args) => status::run(&ctx, args).await,
        Command::Convert(args) => change::convert(&ctx, args).await,
        Command::AutoUpgrade(args) => change::auto_upgrade(&ctx, args).await,
        Command::Renew(args) => change::renew(&ctx, args).await,
        Command::ResendActivation(args) => change::resend_activation(&ctx, args).await,
        Command::Billing(args) => report::run(&ctx, args).await,
        Command::Console(args) => console::run(&ctx, args).await,
    }
}
