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
//! With `--kube-apiserver DIR` the API server is the real one: etcd, kube-apiserver and
//! kube-controller-manager from DIR (what `hack/kube-assets.sh` prints), their data, certificates
//! and logs under `STATE/control-plane/`. Only the operator reads the sped-up clock then; the
//! real server's own timestamps stay real.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use partner_sandbox::apiserver::ApiServer;
use partner_sandbox::control_plane::{ControlPlane, ControlPlaneError};
use partner_sandbox::smtp::SmtpSink;

use crate::clock::Clock;
use crate::operator::{self, RunOptions};

/// Where activation links point for Distributors that set no `spec.activation.baseUrl`. The
/// `.invalid` top-level domain never resolves, so nobody mistakes a sandbox link for a real one.
pub const SANDBOX_ACTIVATION_BASE_URL: &str = "https://activate.sandbox.invalid/activate";

/// The sandbox's settings, from the command line.
#[derive(Clone, Debug)]
pub struct SandboxOptions {
    /// Holds `kubeconfig` and `outbox/`; created if missing.
    pub state_dir: PathBuf,
    /// The API server's port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// How many times faster than real time the clock runs (86400 = a day a second).
    pub speed: f64,
    /// Run the API server alone (and no SMTP server), e.g. for `partner-operator run` against it.
    pub without_operator: bool,
    /// Serve the operator's `/metrics`, `/healthz` and `/readyz` here.
    pub metrics_addr: Option<SocketAddr>,
    /// Run the real etcd, kube-apiserver and kube-controller-manager from this directory
    /// instead of the embedded API server.
    pub kube_apiserver: Option<PathBuf>,
}

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
    #[error("cannot start the SMTP server on loopback: {0}")]
    Smtp(std::io::Error),
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

    let outbox = state_dir.join("outbox");
    let smtp = if options.without_operator {
        None
    } else {
        Some(
            SmtpSink::start((Ipv4Addr::LOCALHOST, 0).into(), Some(outbox.clone()))
                .await
                .map_err(SandboxError::Smtp)?,
        )
    };
    write_atomically(&kubeconfig, &server.kubeconfig_yaml()).map_err(|source| {
        SandboxError::StateDir {
            path: kubeconfig.clone(),
            source,
        }
    })?;
    ready(&Started {
        kubeconfig: kubeconfig.clone(),
        api_server: server.url(),
        outbox: smtp.as_ref().map(|_| outbox.clone()),
        smtp: smtp.as_ref().map(|s| s.addr()),
        speed: options.speed,
    });

    let result = match &smtp {
        None => {
            shutdown.await;
            Ok(())
        }
        Some(smtp) => {
            let options = RunOptions {
                smtp_url: smtp.url(),
                smtp_insecure_plaintext: true,
                mail_from: Some("Partner Onboarding <onboarding@sandbox.invalid>".into()),
                activation_base_url: Some(SANDBOX_ACTIVATION_BASE_URL.into()),
                namespace: None,
                templates_dir: None,
                metrics_addr: options.metrics_addr,
                concurrency: 64,
                clock,
                // One operator in one process: nobody to elect.
                leader_election: None,
                // The operator lives as long as this process, and so does its key.
                activation_key: Some(crate::tenant::ActivationKey::random()),
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
    /// `None` without the operator.
    pub outbox: Option<PathBuf>,
    pub smtp: Option<SocketAddr>,
    pub speed: f64,
}

impl Started {
    /// A few lines that say where things are and what to type next.
    pub fn summary(&self) -> String {
        let kubeconfig = self.kubeconfig.display();
        let mut lines = vec![format!(
            "API server   {} (kubeconfig: {kubeconfig})",
            self.api_server
        )];
        match (&self.outbox, self.smtp) {
            (Some(outbox), Some(smtp)) => {
                lines.push(format!(
                    "SMTP server  {smtp} (messages in {})",
                    outbox.display()
                ));
                lines.push(format!("clock        {}x real time", self.speed));
            }
            _ => lines.push("operator     not started (--without-operator)".into()),
        }
        lines.push(format!(
            "next         export KUBECONFIG={kubeconfig}; kubectl apply -f examples/; kubectl get partners -A -w"
        ));
        lines.push("stop         Ctrl-C".into());
        lines.join("\n")
    }
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
            outbox: Some("/tmp/s/outbox".into()),
            smtp: Some("127.0.0.1:2525".parse().unwrap()),
            speed: 86400.0,
        };
        let summary = started.summary();
        assert!(summary.contains("export KUBECONFIG=/tmp/s/kubeconfig"));
        assert!(summary.contains("messages in /tmp/s/outbox"));
        assert!(summary.contains("86400x"));
    }
}
