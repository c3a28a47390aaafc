//! The two API servers every operator suite runs on: the embedded sandbox server and the real
//! kube-apiserver with etcd (built from their upstream modules by `hack/kube-assets.sh` on first
//! use, once per machine, under a file lock).
//!
//! Each test gets a control plane of its own: the operator under test watches the whole
//! cluster, as it does in production, so two tests sharing one server would reconcile each
//! other's Partners.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use kube::Client;
use partner_operator::clock::Clock;
use partner_sandbox::apiserver::{ApiServer, RecordedRequest};
use partner_sandbox::control_plane::ControlPlane;

/// Which API server a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Server {
    /// The project's embedded server (`partner-operator sandbox`).
    Sandbox,
    /// kube-apiserver, etcd and kube-controller-manager from `hack/kube-assets.sh`.
    Kube,
}

/// A running API server of either kind, with its request log.
pub enum Backend {
    Sandbox(ApiServer),
    Kube(KubeApiserver),
}

/// The real control plane of one test, its files in a temporary directory.
pub struct KubeApiserver {
    pub plane: ControlPlane,
    /// Requests before this index were cleared from the log.
    pub(super) cleared: Mutex<usize>,
    _dir: tempfile::TempDir,
}

impl Backend {
    /// Starts the server with the project's CRDs installed. The sandbox reads its timestamps
    /// from `clock`; kube-apiserver keeps real time (the operator alone reads `clock`).
    pub async fn start(server: Server, clock: Clock) -> Self {
        super::logs::capture();
        match server {
            Server::Sandbox => {
                let server = ApiServer::start("127.0.0.1:0".parse().unwrap(), move || clock.now())
                    .await
                    .expect("the API server starts");
                server
                    .install_crds(&partner_operator::api::crds())
                    .await
                    .expect("CRDs install");
                Backend::Sandbox(server)
            }
            Server::Kube => Backend::Kube(KubeApiserver::start().await),
        }
    }

    pub fn client(&self) -> Client {
        match self {
            Backend::Sandbox(s) => s.client(),
            Backend::Kube(k) => k.plane.client(),
        }
    }

    /// The configuration of a client whose requests the log tells apart by `user_agent`.
    pub fn client_config_with_user_agent(&self, user_agent: &str) -> kube::Config {
        let mut config = match self {
            Backend::Sandbox(s) => s.client_config(),
            Backend::Kube(k) => k.plane.config(),
        };
        config.headers.push((
            http::header::USER_AGENT,
            user_agent.parse().expect("a valid header value"),
        ));
        config
    }

    pub fn kubeconfig_yaml(&self) -> String {
        match self {
            Backend::Sandbox(s) => s.kubeconfig_yaml(),
            Backend::Kube(k) => k.plane.kubeconfig_yaml(),
        }
    }

    /// Creates `object` as any client would.
    pub async fn apply_json(&self, object: serde_json::Value) -> Result<(), String> {
        partner_sandbox::create_object(&self.client(), object).await
    }

    /// Every request to a resource since the last [`Backend::clear_requests`], in order: the
    /// sandbox's request log, or kube-apiserver's audit log.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        match self {
            Backend::Sandbox(s) => s.log().entries(),
            Backend::Kube(k) => {
                let all = k.plane.requests();
                let cleared = *k.cleared.lock().unwrap();
                all.into_iter().skip(cleared).collect()
            }
        }
    }
}

impl KubeApiserver {
    /// A fresh control plane with the CRDs installed.
    pub async fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("kube-apiserver-")
            .tempdir()
            .unwrap();
        let assets = kube_assets();
        let started = std::time::Instant::now();
        let plane = ControlPlane::start(&assets, dir.path())
            .await
            .unwrap_or_else(|e| panic!("the real control plane does not start: {e}"));
        plane
            .install_crds(&partner_operator::api::crds())
            .await
            .expect("CRDs install");
        eprintln!(
            "kube-apiserver ready with the CRDs in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        Self {
            plane,
            cleared: Mutex::new(0),
            _dir: dir,
        }
    }
}

impl Drop for KubeApiserver {
    /// A failing test shows the end of each process's log (libtest prints it with the failure
    /// only); the audit log is the test's own request log, left out.
    fn drop(&mut self) {
        if std::thread::panicking() {
            for binary in partner_sandbox::control_plane::BINARIES {
                let path = self.plane.dir().join(format!("{binary}.log"));
                if let Ok(log) = std::fs::read_to_string(&path) {
                    eprintln!(
                        "--- the end of {} ---\n{}",
                        path.display(),
                        super::last_lines(&log, 100)
                    );
                }
            }
        }
    }
}

/// The directory holding etcd, kube-apiserver and kube-controller-manager: `KUBEBUILDER_ASSETS`
/// when it names one that has them, else what `hack/kube-assets.sh` prints (it builds them on
/// first use). A machine that cannot build them fails the test, saying why, never skips it.
pub fn kube_assets() -> PathBuf {
    static ASSETS: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    ASSETS
        .get_or_init(find_or_build_assets)
        .clone()
        .unwrap_or_else(|why| {
            panic!("the real kube-apiserver is needed for this test and is not available: {why}")
        })
}

fn find_or_build_assets() -> Result<PathBuf, String> {
    use partner_sandbox::control_plane::BINARIES;
    let has_all = |dir: &Path| BINARIES.iter().all(|b| dir.join(b).is_file());
    if let Some(dir) = std::env::var_os("KUBEBUILDER_ASSETS").map(PathBuf::from)
        && has_all(&dir)
    {
        return Ok(dir);
    }
    let dir = run_kube_assets_script()?;
    if has_all(&dir) {
        Ok(dir)
    } else {
        Err(format!(
            "hack/kube-assets.sh printed {}, which lacks them",
            dir.display()
        ))
    }
}

/// Runs `hack/kube-assets.sh` (it builds what is missing, once per machine) and returns the
/// directory it prints last. Its progress (the Go build's, on stderr) is kept, not left to
/// spill onto the terminal: it goes to the test's captured output, and into the error when
/// the script fails.
pub fn run_kube_assets_script() -> Result<PathBuf, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("hack/kube-assets.sh");
    let output = std::process::Command::new("bash")
        .arg(&script)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("{}: {e}", script.display()))?;
    let progress = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        return Err(format!(
            "{} failed ({}):\n{progress}",
            script.display(),
            output.status
        ));
    }
    eprint!("{progress}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    Ok(PathBuf::from(
        stdout.lines().last().unwrap_or_default().trim(),
    ))
}

/// Runs each named `async fn(Server)` as two tests, `<name>::sandbox` and
/// `<name>::kube_apiserver`.
#[macro_export]
macro_rules! on_both_servers {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sandbox() {
                super::$name($crate::support::Server::Sandbox).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn kube_apiserver() {
                super::$name($crate::support::Server::Kube).await
            }
        }
    )*};
}
