//! The API server the sandbox runs: the embedded one, reading the sandbox's clock, or the real
//! control plane from `--kube-apiserver`; either way with the operator's CRDs installed.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;

use partner_sandbox::apiserver::ApiServer;
use partner_sandbox::control_plane::ControlPlane;

use super::{SandboxError, SandboxOptions};
use crate::clock::Clock;

/// The API server the sandbox runs: the embedded one, or the real control plane.
pub enum Server {
    Embedded(ApiServer),
    Kube(ControlPlane),
}

impl Server {
    /// Starts the server `options` ask for and installs the CRDs: the embedded one reads
    /// `clock`; the real control plane keeps its data under `state_dir`.
    pub async fn start(
        options: &SandboxOptions,
        clock: &Clock,
        state_dir: &Path,
    ) -> Result<Self, SandboxError> {
        match &options.kube_apiserver {
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
                Ok(Server::Embedded(server))
            }
            Some(assets) => {
                let dir = state_dir.join("control-plane");
                let start = ControlPlane::start(assets, &dir);
                tokio::pin!(start);
                // A cold start takes seconds on a busy machine: once it is more than a moment,
                // one line says what the wait is (a refusal at once stays a one-line error).
                let plane = tokio::select! {
                    started = &mut start => started,
                    () = tokio::time::sleep(std::time::Duration::from_millis(500)) => {
                        eprintln!(
                            "starting etcd, kube-apiserver and kube-controller-manager from {}; \
                             waiting for kube-apiserver to answer /readyz (their logs: {}/*.log)",
                            assets.display(),
                            dir.display()
                        );
                        start.await
                    }
                }
                .map_err(SandboxError::KubeApiserver)?;
                // Dropping the plane on an error stops its processes.
                plane
                    .install_crds(&crate::api::crds())
                    .await
                    .map_err(SandboxError::KubeApiserver)?;
                Ok(Server::Kube(plane))
            }
        }
    }

    pub fn client(&self) -> kube::Client {
        match self {
            Server::Embedded(server) => server.client(),
            Server::Kube(plane) => plane.client(),
        }
    }

    /// The configuration of a client with the admin identity.
    pub fn client_config(&self) -> kube::Config {
        match self {
            Server::Embedded(server) => server.client_config(),
            Server::Kube(plane) => plane.config(),
        }
    }

    pub fn url(&self) -> String {
        match self {
            Server::Embedded(server) => server.url(),
            Server::Kube(plane) => plane.url().to_string(),
        }
    }

    pub fn kubeconfig_yaml(&self) -> String {
        match self {
            Server::Embedded(server) => server.kubeconfig_yaml(),
            Server::Kube(plane) => plane.kubeconfig_yaml(),
        }
    }

    pub async fn shutdown(self) {
        match self {
            Server::Embedded(server) => server.shutdown().await,
            Server::Kube(plane) => plane.shutdown().await,
        }
    }
}
