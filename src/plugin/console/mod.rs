//! `kubectl partner console`: the distributor's Partners page, served on loopback to the user's
//! own browser, talking to the API server with the user's own kubeconfig credentials. Nothing
//! is deployed and no identity is added: what the user may do in the console is what their
//! RBAC lets them do with kubectl.
//!
//! The console writes through the commands' own code (`add::create`,
//! `change::request_conversion`, ... over [`super::Ctx::try_apply`]): the same checks, the same
//! server-side apply under the field manager `kubectl-partner`, the same refusals.
//!
//! The parts, one concern each: [`door`] (who may knock: the secret, the cookie, the Host
//! header, the CSRF token), [`routes`] (the routes and their bounds), [`store`] (the Partners
//! as a watch keeps them), [`rows`] (a row and the page's search, filter and sort), [`pages`]
//! (the Partners page), [`detail`] (a Partner's page), [`billing_page`], [`live`] (rows pushed
//! by server-sent events), [`actions`] (the writes) and [`answer`] (a refusal as the page shows
//! it), [`templates`] (the HTML, every value escaped).

pub mod actions;
pub mod answer;
pub mod billing_page;
pub mod detail;
pub mod door;
pub mod live;
pub mod pages;
pub mod routes;
pub mod rows;
pub mod store;
pub mod templates;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use clap::Args;

use super::output::{self, noteln, putln};
use super::{Ctx, Error, Result};

/// Connections served at once: a browser opens at most six per origin; the rest is room for a
/// second tab and the tests.
pub const MAX_CONNECTIONS: usize = 32;

#[derive(Args, Debug)]
pub struct ConsoleArgs {
    /// Partners in every namespace (default: the namespace of -n or of the context).
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// The port to listen on (default: any free port).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// The address to listen on. Anything but loopback lets other machines reach the console
    /// (with the printed secret): a warning is printed.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    pub address: IpAddr,
    /// Print the URL without opening a browser.
    #[arg(long)]
    pub no_open: bool,
}

/// Which Partners the console shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    Namespace(String),
    All,
}

impl Scope {
    /// Whether a Partner of `namespace` is in scope.
    pub fn covers(&self, namespace: &str) -> bool {
        match self {
            Self::Namespace(ns) => ns == namespace,
            Self::All => true,
        }
    }
}

/// What every request of the console works with.
pub struct Console {
    /// The user's client, the default namespace (Add partner's), and the force flag unset.
    pub ctx: Ctx,
    pub scope: Scope,
    pub door: door::Door,
    pub store: Arc<store::Store>,
    pub templates: templates::Templates,
}

impl Console {
    /// A context for one request: the Partner's namespace, now, and whether the user chose to
    /// take fields over. The namespace must be in the console's scope and a DNS label.
    pub fn ctx_for(&self, namespace: &str, force_conflicts: bool) -> Result<Ctx> {
        super::names::check_namespace(namespace)?;
        if !self.scope.covers(namespace) {
            return Err(Error(format!(
                "namespace {namespace:?} is not the console's (it shows {:?}; start it with -A \
                 for every namespace)",
                self.ctx.namespace
            )));
        }
        Ok(Ctx {
            client: self.ctx.client.clone(),
            namespace: namespace.to_string(),
            now: super::now()?,
            force_conflicts,
        })
    }
}

/// Serves the console until Ctrl-C.
pub async fn run(ctx: &Ctx, args: ConsoleArgs) -> Result<()> {
    if ctx.force_conflicts {
        return Err(Error(
            "--force-conflicts: the console asks before each take-over (\"Take these fields \
             over\" in the panel); start it without the flag"
                .into(),
        ));
    }
    if args.address.is_unspecified() {
        return Err(Error(format!(
            "--address {}: name the one address the browser will use (the console answers \
             requests whose Host is that address only, against DNS rebinding)",
            args.address
        )));
    }
    let listener = tokio::net::TcpListener::bind(SocketAddr::new(args.address, args.port))
        .await
        .map_err(|e| {
            Error(format!(
                "--address {} --port {}: {e}",
                args.address, args.port
            ))
        })?;
    let bound = listener
        .local_addr()
        .map_err(|e| Error(format!("the console's address: {e}")))?;
    if !args.address.is_loopback() {
        noteln!(
            "warning: --address {}: the console is reachable from other machines; anyone who \
             has the URL acts with your Kubernetes credentials, over plain HTTP",
            args.address
        );
    }
    let scope = if args.all_namespaces {
        Scope::All
    } else {
        Scope::Namespace(ctx.namespace.clone())
    };
    let store = Arc::new(store::Store::default());
    let console = Arc::new(Console {
        ctx: ctx.clone(),
        scope: scope.clone(),
        door: door::Door::new(bound),
        store: store.clone(),
        templates: templates::Templates::new(),
    });
    tokio::spawn(store::watch(ctx.client.clone(), scope.clone(), store));
    let url = console.door.url();
    let what = match &scope {
        Scope::Namespace(ns) => format!("namespace {ns}"),
        Scope::All => "every namespace".to_string(),
    };
    putln!("Partner console ({what}) at {url}");
    noteln!(
        "The URL works once, in one browser, which then acts with your Kubernetes credentials. \
         Ctrl-C stops the console."
    );
    if !args.no_open {
        open_browser(&url);
    }
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    crate::bounded_http::serve(listener, routes::router(console), MAX_CONNECTIONS, shutdown)
        .await
        .map_err(|e| Error(format!("the console stopped: {e}")))
}

/// Opens `url` in the user's browser when the desktop offers a way (`$BROWSER`, `xdg-open`,
/// `open`); a machine without one just has the printed URL.
fn open_browser(url: &str) {
    let candidates = std::env::var("BROWSER")
        .ok()
        .into_iter()
        .chain(["xdg-open".to_string(), "open".to_string()]);
    for program in candidates {
        let spawned = std::process::Command::new(&program)
            .arg(url)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        if spawned.is_ok() {
            return;
        }
    }
    output::note("no browser to open: open the URL above");
}

#[cfg(test)]
impl Console {
    /// A console over a client that reaches nothing: for what renders from the store alone.
    /// Needs a Tokio runtime (the client's buffer runs on it).
    pub fn unconnected(scope: Scope) -> Self {
        let config = kube::Config::new("http://127.0.0.1:9".parse().expect("a URL"));
        let client = kube::Client::try_from(config).expect("a client");
        Self {
            ctx: Ctx {
                client,
                namespace: "partners".into(),
                now: chrono::Utc::now(),
                force_conflicts: false,
            },
            scope,
            door: door::Door::new("127.0.0.1:8484".parse().expect("an address")),
            store: Arc::new(store::Store::default()),
            templates: templates::Templates::new(),
        }
    }
}
