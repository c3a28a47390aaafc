//! The operator at scale: `cargo bench --bench operator`.
//!
//! The operator runs as its own process (the release binary's `run`), so its memory and CPU are
//! its own; the sandbox API server, the SMTP server on loopback and the load generator share
//! this process. Prints one line per figure, with its target and the ratio to a reference
//! measured in the same run. Scenarios, in order:
//!
//! 1. bulk onboarding: `DISTRIBUTORS` Distributors and `PARTNERS` Partners created as fast as
//!    the API server takes them, until every one is Ready and its activation email received;
//!    the reference is the API server's own capacity for the same number of writes. On
//!    kube-apiserver, also what the onboarding cost the API server and etcd in CPU per
//!    Partner. The creates themselves are another client's writes: how long they took and
//!    their p99, beside the same creates made before the operator started;
//! 2. restart over the settled Partners (`RESTARTS` times): time to settle, the operator's and
//!    the API server's CPU for it, writes and emails (both must be 0);
//! 3. idle: requests (beyond watches) and CPU seconds per minute, over `IDLE_SECONDS`;
//! 4. mass expiry: `EXPIRING` trials ending at the same instant, lateness of the conversion;
//! 5. memory: the operator's peak RSS;
//! 6. large annotations: `ANNOTATED` more Partners carrying `ANNOTATION_KB` kB of annotations
//!    each (legal: the API server allows 256 kB), half in a namespace no Distributor binds, and
//!    a fresh operator started over everything: its peak RSS (the chart's limit is 384 MiB);
//! 7. restore (run after 4, beside the settled fleet): everything backed up as Velero does and
//!    created in a fresh API server with an operator running there (see `operator/restore.rs`).
//!
//! Every Distributor delivers webhooks to a receiver in this process (which verifies each
//! signature): scenarios 1 and 4 also report how long the events took, from each transition to
//! its delivery, and how many went out a second.
//!
//! Environment: `PARTNERS` (10000), `DISTRIBUTORS` (10), `EXPIRING` (1000), `IDLE_SECONDS` (60),
//! `ANNOTATED` (700), `ANNOTATION_KB` (250), `RESTARTS` (1),
//! `CONCURRENCY` (the operator's `--concurrency`, default its own), `REQUESTS_IN_FLIGHT` (its
//! `--api-requests-in-flight`, default its own), `SMTP_PARAMS` (query
//! parameters of the operator's SMTP URL, e.g. `max_connections=16`), `APISERVER` (`sandbox`,
//! the default, or `kube`: the real kube-apiserver and etcd from `KUBEBUILDER_ASSETS` or
//! `hack/kube-assets.sh`, as separate processes, with the operator's requests read from its
//! audit log).

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, PostParams};
use kube::runtime::watcher::{self, Event};
use kube::{Client, ResourceExt};
use partner_operator::api::{Distributor, Partner};
use partner_sandbox::apiserver::{ApiServer, RecordedRequest};
use partner_sandbox::control_plane::ControlPlane;
use partner_sandbox::smtp::SmtpSink;
use partner_sandbox::webhooks::{ReceivedWebhook, WebhookSink};
use serde_json::json;

/// As the binary: the API server here allocates per request too.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "operator/restore.rs"]
mod restore;

const BINARY: &str = env!("CARGO_BIN_EXE_partner-operator");
const BENCH_AGENT: &str = "operator-benchmark";
/// The operator's count of Partner reconciliations: a restart has settled once it reaches the
/// number of Partners.
const RECONCILED: &str = r#"partner_operator_reconciliations_total{controller="partner"}"#;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One line per figure: name, value, target, ratio.
fn figure(name: &str, value: f64, unit: &str, target: &str, ratio: Option<f64>) {
    let ratio = ratio.map(|r| format!("  ratio {r:.2}")).unwrap_or_default();
    println!("{name:<34} {value:>12.3} {unit:<12} target {target}{ratio}");
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// What the benchmark sees of each Partner, from its own watch.
#[derive(Default)]
struct Seen {
    created: HashMap<String, Instant>,
    ready: HashMap<String, Instant>,
    production: HashMap<String, Instant>,
}

fn is_ready(p: &Partner) -> bool {
    p.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    })
}

fn level(p: &Partner) -> Option<String> {
    p.status
        .as_ref()
        .and_then(|s| s.subscription_level.as_ref())
        .map(|l| format!("{l:?}"))
}

fn watch_partners(client: Client, seen: Arc<Mutex<Seen>>) {
    tokio::spawn(async move {
        let stream = watcher::watcher(Api::<Partner>::all(client), watcher::Config::default());
        futures::pin_mut!(stream);
        while let Ok(Some(event)) = stream.try_next().await {
            let (Event::Apply(p) | Event::InitApply(p)) = event else {
                continue;
            };
            let key = format!("{}/{}", p.namespace().unwrap_or_default(), p.name_any());
            let now = Instant::now();
            let mut seen = seen.lock().unwrap();
            if is_ready(&p) {
                seen.ready.entry(key.clone()).or_insert(now);
            }
            if level(&p).as_deref() == Some("Production") {
                seen.production.entry(key).or_insert(now);
            }
        }
    });
}

/// The operator as a process.
struct Operator {
    child: Child,
    metrics: std::net::SocketAddr,
}

impl Operator {
    /// Every operator of a run shares the activation and ownership keys in the kubeconfig's
    /// directory, as a Deployment's pods share them from a Secret: a restarted operator
    /// recognises the tenants it made and the links it sent.
    fn start(kubeconfig: &std::path::Path, smtp: &SmtpSink) -> Self {
        let keys = kubeconfig.parent().expect("a directory");
        let (activation_key, ownership_key) =
            (keys.join("activation.key"), keys.join("ownership.key"));
        for (path, byte) in [(&activation_key, b'a'), (&ownership_key, b'o')] {
            if !path.exists() {
                std::fs::write(path, [byte; 48]).unwrap();
            }
        }
        // The webhook signing keys are in the kubeconfig's namespace, `default`.
        let metrics = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let mut command = Command::new(BINARY);
        command
            .args([
                "run",
                "--smtp-insecure-plaintext",
                "--leader-election=false",
            ])
            .args(["--metrics-addr", &metrics.to_string()])
            .args(["--activation-addr", "127.0.0.1:0"])
            .args(["--activation-base-url", "https://portal.example/activate"])
            .args(["--webhook-secrets-namespace", "default"])
            .arg("--activation-key-file")
            .arg(&activation_key)
            .arg("--ownership-key-file")
            .arg(&ownership_key)
            // The receiver is in this process, on loopback.
            .args(["--webhook-allow-private-networks", "127.0.0.0/8"])
            .env(
                "SMTP_URL",
                match std::env::var("SMTP_PARAMS") {
                    Ok(params) => format!("{}?{params}", smtp.url()),
                    Err(_) => smtp.url(),
                },
            )
            .env("KUBECONFIG", kubeconfig)
            .env(
                "RUST_LOG",
                std::env::var("OPERATOR_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        if let Ok(concurrency) = std::env::var("CONCURRENCY") {
            command.args(["--concurrency", &concurrency]);
        }
        if let Ok(in_flight) = std::env::var("REQUESTS_IN_FLIGHT") {
            command.args(["--api-requests-in-flight", &in_flight]);
        }
        Self {
            child: command.spawn().expect("the operator starts"),
            metrics,
        }
    }

    fn proc_status(&self, field: &str) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    }

    /// Peak resident memory, MiB.
    fn peak_rss_mib(&self) -> f64 {
        self.proc_status("VmHWM:") / 1024.0
    }

    /// CPU seconds used so far (user + system).
    fn cpu_seconds(&self) -> f64 {
        cpu_seconds_of(self.child.id())
    }

    /// A counter from `/metrics`, 0 when absent.
    async fn metric(&self, series: &str) -> f64 {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let Ok(mut stream) = tokio::net::TcpStream::connect(self.metrics).await else {
            return 0.0;
        };
        let _ = stream.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").await;
        let mut body = String::new();
        let _ = stream.read_to_string(&mut body).await;
        body.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    }

    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        // Already stopped, or the benchmark failed: never leave the process behind.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The API server the benchmark runs on, with its request log.
enum Server {
    Sandbox(ApiServer),
    /// The real control plane; requests before `cleared` are forgotten.
    Kube {
        plane: ControlPlane,
        cleared: usize,
        _dir: tempfile::TempDir,
    },
}

impl Server {
    async fn start() -> Self {
        let server = match std::env::var("APISERVER").as_deref() {
            Ok("kube") => {
                let dir = tempfile::tempdir().unwrap();
                let plane = ControlPlane::start(&kube_assets(), dir.path())
                    .await
                    .expect("the real control plane starts");
                Server::Kube {
                    plane,
                    cleared: 0,
                    _dir: dir,
                }
            }
            Ok("sandbox") | Err(_) => Server::Sandbox(
                ApiServer::start("127.0.0.1:0".parse().unwrap(), Utc::now)
                    .await
                    .unwrap(),
            ),
            Ok(other) => panic!("APISERVER={other}: sandbox or kube"),
        };
        server.install_crds().await;
        server
    }

    fn name(&self) -> &'static str {
        match self {
            Server::Sandbox(_) => "the sandbox API server",
            Server::Kube { .. } => "kube-apiserver + etcd",
        }
    }

    async fn install_crds(&self) {
        match self {
            Server::Sandbox(s) => s
                .install_crds(&partner_operator::api::crds())
                .await
                .unwrap(),
            Server::Kube { plane, .. } => plane
                .install_crds(&partner_operator::api::crds())
                .await
                .unwrap(),
        }
    }

    fn write_kubeconfig(&self, path: &std::path::Path) {
        match self {
            Server::Sandbox(s) => s.write_kubeconfig(path).unwrap(),
            Server::Kube { plane, .. } => std::fs::write(path, plane.kubeconfig_yaml()).unwrap(),
        }
    }

    fn client_with_user_agent(&self, user_agent: &str) -> Client {
        match self {
            Server::Sandbox(s) => s.client_with_user_agent(user_agent),
            Server::Kube { plane, .. } => plane.client_with_user_agent(user_agent),
        }
    }

    /// With `APISERVER_PROFILE` set, on kube-apiserver: a CPU profile of the API server over the
    /// first `PROFILE_SECONDS` (40) of the onboarding, from its `/debug/pprof`, written to that
    /// file (read it with `go tool pprof -top <file>`).
    fn profile_cpu(&self, client: &Client) -> Option<tokio::task::JoinHandle<()>> {
        let path = std::env::var_os("APISERVER_PROFILE")?;
        if !matches!(self, Self::Kube { .. }) {
            return None;
        }
        let seconds = env_or("PROFILE_SECONDS", 40);
        let client = client.clone();
        Some(tokio::spawn(async move {
            let request = http::Request::get(format!("/debug/pprof/profile?seconds={seconds}"))
                .body(Vec::new())
                .unwrap();
            let mut body = Vec::new();
            let mut stream = client.request_stream(request).await.unwrap();
            futures::AsyncReadExt::read_to_end(&mut stream, &mut body)
                .await
                .unwrap();
            std::fs::write(&path, &body).unwrap();
            println!("API server CPU profile: {} bytes in {path:?}", body.len());
        }))
    }

    /// On kube-apiserver, its requests to etcd so far by operation, for the Partners
    /// (`etcd_requests_total` on its `/metrics`). An update whose copy from the watch cache was
    /// older than etcd's is made again from a read of etcd: the reads beyond the clients' own
    /// GETs are such retries.
    async fn etcd_partner_requests(&self, client: &Client) -> HashMap<String, f64> {
        if !matches!(self, Self::Kube { .. }) {
            return HashMap::new();
        }
        let request = http::Request::get("/metrics").body(Vec::new()).unwrap();
        let text = client.request_text(request).await.unwrap();
        text.lines()
            .filter(|line| line.starts_with("etcd_requests_total{"))
            .filter(|line| line.contains("resource=\"partners\""))
            .filter_map(|line| {
                let operation = line.split("operation=\"").nth(1)?.split('"').next()?;
                let value = line.rsplit(' ').next()?.parse().ok()?;
                Some((operation.to_string(), value))
            })
            .collect()
    }

    fn clear_log(&mut self) {
        match self {
            Server::Sandbox(s) => s.log().clear(),
            Server::Kube { plane, cleared, .. } => *cleared = plane.requests().len(),
        }
    }

    /// CPU seconds the API server used so far. The sandbox runs in this process, with the
    /// benchmark's own clients: a figure for a phase in which they are idle (a restart).
    fn cpu_seconds(&self) -> f64 {
        self.api_cpu_seconds()
            .unwrap_or_else(|| cpu_seconds_of(std::process::id()))
    }

    /// CPU seconds kube-apiserver and etcd used so far; `None` on the sandbox, which runs in
    /// this process.
    fn api_cpu_seconds(&self) -> Option<f64> {
        match self {
            Server::Sandbox(_) => None,
            Server::Kube { plane, .. } => Some(
                ["kube-apiserver", "etcd"]
                    .iter()
                    .map(|binary| cpu_seconds_of(plane.pid(binary).expect("it runs")))
                    .sum(),
            ),
        }
    }

    /// On kube-apiserver, the operator's requests so far by verb, resource and answer, most
    /// frequent first (from the audit log, which records the status code).
    fn operator_breakdown(&self) -> Vec<(String, usize)> {
        let Server::Kube { plane, .. } = self else {
            return Vec::new();
        };
        let mut counts: HashMap<String, usize> = HashMap::new();
        for (request, code) in operator_audited(plane) {
            let resource = match &request.subresource {
                Some(sub) => format!("{}/{sub}", request.resource),
                None => request.resource.clone(),
            };
            let code = code.map_or("-".to_string(), |c| c.to_string());
            *counts
                .entry(format!("{} {resource} {code}", request.verb))
                .or_default() += 1;
        }
        let mut counts: Vec<_> = counts.into_iter().collect();
        counts.sort_by_key(|c| std::cmp::Reverse(c.1));
        counts
    }

    /// With `TRACE=<partner name>`, on kube-apiserver: the operator's requests about that
    /// Partner and its tenant, in order (to see which write comes from where).
    fn trace(&self) {
        let (Server::Kube { plane, .. }, Ok(name)) = (self, std::env::var("TRACE")) else {
            return;
        };
        let tenant = format!("-{name}-");
        for (r, code) in operator_audited(plane) {
            let about = r.name.as_deref() == Some(name.as_str())
                || r.name.as_deref().is_some_and(|n| n.contains(&tenant))
                || r.namespace.as_deref().is_some_and(|n| n.contains(&tenant));
            if about {
                println!(
                    "  trace {name}: {} {}{} {} {}",
                    r.verb,
                    r.resource,
                    r.subresource.map(|s| format!("/{s}")).unwrap_or_default(),
                    r.name.unwrap_or_default(),
                    code.map_or("-".into(), |c| c.to_string()),
                );
            }
        }
    }

    fn log(&self) -> Vec<RecordedRequest> {
        match self {
            Server::Sandbox(s) => s.log().entries(),
            Server::Kube { plane, cleared, .. } => {
                plane.requests().into_iter().skip(*cleared).collect()
            }
        }
    }
}

/// The operator's requests in kube-apiserver's audit log, watches and lists left out, each with
/// the status code it was answered.
fn operator_audited(plane: &ControlPlane) -> impl Iterator<Item = (RecordedRequest, Option<u16>)> {
    plane.audited_requests().into_iter().filter_map(|audited| {
        let ours = audited
            .user_agent
            .as_deref()
            .is_some_and(|agent| agent.starts_with("partner-operator/"));
        let request = audited.request.filter(|_| ours)?;
        (!matches!(request.verb.as_str(), "watch" | "list")).then_some((request, audited.code))
    })
}

/// CPU seconds process `pid` used so far (user + system), from `/proc/<pid>/stat`.
fn cpu_seconds_of(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces, inside parentheses).
    let rest = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields
        .get(11..13)
        .map(|f| f.iter().filter_map(|v| v.parse::<f64>().ok()).sum())
        .unwrap_or(f64::NAN);
    ticks / 100.0 // USER_HZ
}

/// `KUBEBUILDER_ASSETS`, else what `hack/kube-assets.sh` prints (building on first use).
fn kube_assets() -> std::path::PathBuf {
    if let Some(dir) = std::env::var_os("KUBEBUILDER_ASSETS") {
        return dir.into();
    }
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("hack/kube-assets.sh");
    let output = Command::new("bash")
        .arg(&script)
        .stderr(Stdio::inherit())
        .output()
        .expect("hack/kube-assets.sh runs");
    assert!(output.status.success(), "hack/kube-assets.sh failed");
    let stdout = String::from_utf8(output.stdout).unwrap();
    stdout.lines().last().expect("a directory").trim().into()
}

/// The operator's own requests (the real control plane's components make requests of their own).
fn operator_requests(log: &[RecordedRequest]) -> impl Iterator<Item = &RecordedRequest> {
    log.iter().filter(|r| {
        r.user_agent
            .as_deref()
            .is_some_and(|agent| agent.starts_with("partner-operator/"))
    })
}

async fn create_partners(
    client: &Client,
    names: Vec<(String, String, String)>,
    spec_extra: serde_json::Value,
    seen: &Arc<Mutex<Seen>>,
) -> Vec<f64> {
    let latencies = futures::stream::iter(names)
        .map(|(namespace, name, distributor)| {
            let api = Api::<Partner>::namespaced(client.clone(), &namespace);
            let mut spec = json!({
                "organizationName": format!("{name} IT Services"),
                "notificationEmail": format!("admin@{name}.example"),
                "distributorRef": {"name": distributor},
            });
            if let Some(extra) = spec_extra.as_object() {
                for (k, v) in extra {
                    spec[k] = v.clone();
                }
            }
            let partner: Partner = serde_json::from_value(json!({
                "apiVersion": "partner-operator.io/v1alpha1",
                "kind": "Partner",
                "metadata": {"name": name, "namespace": namespace},
                "spec": spec,
            }))
            .unwrap();
            let seen = seen.clone();
            async move {
                let key = format!("{namespace}/{name}");
                let sent = Instant::now();
                seen.lock().unwrap().created.insert(key, sent);
                api.create(&PostParams::default(), &partner)
                    .await
                    .expect("the Partner is created");
                sent.elapsed().as_secs_f64()
            }
        })
        .buffer_unordered(64)
        .collect::<Vec<f64>>()
        .await;
    let mut latencies = latencies;
    latencies.sort_by(f64::total_cmp);
    latencies
}

/// Another client's writes with no operator running: `partners` Partners created in a
/// namespace of their own, then deleted. How long the creates took, and each create's latency
/// (sorted).
async fn baseline_creates(client: &Client, partners: usize) -> (f64, Vec<f64>) {
    let namespace = "baseline";
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": namespace}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let names = (0..partners)
        .map(|i| (namespace.to_string(), format!("b{i}"), "d0".to_string()))
        .collect();
    let started = Instant::now();
    let latencies = create_partners(client, names, json!({}), &Arc::default()).await;
    let took = started.elapsed().as_secs_f64();
    let api = Api::<Partner>::namespaced(client.clone(), namespace);
    api.delete_collection(&Default::default(), &Default::default())
        .await
        .unwrap();
    let lp = kube::api::ListParams::default().limit(1);
    while !api.list(&lp).await.unwrap().items.is_empty() {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    (took, latencies)
}

/// Seconds from each event's transition (its CloudEvent `time`) to its arrival, sorted, for
/// the events `which` selects.
fn delivery_delays(
    received: &[ReceivedWebhook],
    which: impl Fn(&ReceivedWebhook) -> bool,
) -> Vec<f64> {
    let mut delays: Vec<f64> = received
        .iter()
        .filter(|r| which(r))
        .filter_map(|r| {
            let time: chrono::DateTime<Utc> = r.body["time"].as_str()?.parse().ok()?;
            Some((r.received_at - time).num_milliseconds() as f64 / 1000.0)
        })
        .collect();
    delays.sort_by(f64::total_cmp);
    delays
}

fn count_of(received: &[ReceivedWebhook], type_: &str, subject_part: &str) -> usize {
    received
        .iter()
        .filter(|r| {
            r.type_() == type_
                && r.body["subject"]
                    .as_str()
                    .is_some_and(|s| s.contains(subject_part))
        })
        .count()
}

/// Prints the bytes of one stored Partner and of its parts, as the API server serves it (with
/// `managedFields`): every write decodes, merges, validates and stores the whole object, and
/// every watcher is sent it, so the API server's cost of a write follows this size.
async fn stored_sizes(client: &Client, namespace: &str, name: &str) {
    let path = format!("/apis/partner-operator.io/v1alpha1/namespaces/{namespace}/partners/{name}");
    let request = http::Request::get(path).body(Vec::new()).unwrap();
    let text = client.request_text(request).await.unwrap();
    let object: serde_json::Value = serde_json::from_str(&text).unwrap();
    let size = |value: &serde_json::Value| serde_json::to_vec(value).unwrap().len();
    println!("  stored partner: {} bytes", size(&object));
    for (part, pointer) in [
        ("metadata.managedFields", "/metadata/managedFields"),
        ("spec", "/spec"),
        ("status", "/status"),
        ("status.conditions", "/status/conditions"),
        ("status.emails", "/status/emails"),
        ("status.webhooks", "/status/webhooks"),
    ] {
        let bytes = object.pointer(pointer).map_or(0, size);
        println!("    of it, {part:<28} {bytes:>6} bytes");
    }
}

async fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        if Instant::now() > deadline {
            panic!("{what}: not reached within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let partners = env_or("PARTNERS", 10_000);
    let distributors = env_or("DISTRIBUTORS", 10);
    let expiring = env_or("EXPIRING", 1_000);
    let idle_seconds = env_or("IDLE_SECONDS", 60);
    println!(
        "operator benchmark: {partners} partners, {distributors} distributors, {expiring} expiring, {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    let mut server = Server::start().await;
    println!("on {}", server.name());
    let smtp = SmtpSink::start("127.0.0.1:0".parse().unwrap(), None)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    server.write_kubeconfig(&kubeconfig);
    let client = server.client_with_user_agent(BENCH_AGENT);
    let webhook_key = format!(
        "whsec_{}",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [7u8; 32])
    );
    let webhooks = WebhookSink::start("127.0.0.1:0".parse().unwrap(), &webhook_key, None)
        .await
        .unwrap();
    // Distributors and their partners' namespaces; one more for the mass expiry.
    for d in 0..=distributors {
        let name = format!("d{d}");
        // A signing key Secret per Distributor (each is bound to one), the same key in each.
        let key_secret: k8s_openapi::api::core::v1::Secret = serde_json::from_value(json!({
            "metadata": {"name": format!("webhook-key-{name}"), "namespace": "default",
                         "labels": {partner_operator::webhooks::SIGNING_KEY_LABEL: "true"},
                         "annotations": {
                             partner_operator::webhooks::SIGNING_KEY_DISTRIBUTOR_ANNOTATION: name,
                         }},
            "stringData": {"signingKey": webhook_key},
        }))
        .unwrap();
        Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), "default")
            .create(&PostParams::default(), &key_secret)
            .await
            .unwrap();
        let ns: Namespace = serde_json::from_value(json!({
            "metadata": {"name": format!("{name}-partners"),
                         "labels": {"partner-operator.io/distributor": name}}
        }))
        .unwrap();
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .unwrap();
        let distributor: Distributor = serde_json::from_value(json!({
            "apiVersion": "partner-operator.io/v1alpha1",
            "kind": "Distributor",
            "metadata": {"name": name},
            "spec": {
                "organizationName": format!("Distributor {d}"),
                "notificationEmail": format!("ops@{name}.example"),
                "skus": ["ESSENTIALS", "GOVERNANCE"],
                // A load test, not a spam cannon: the rate limit out of the way.
                "email": {"rateLimit": {"messages": 1_000_000, "windowMinutes": 1}},
                "webhooks": {"endpoints": [{
                    "name": "billing",
                    "url": webhooks.url(),
                    "signingKeySecretRef": {"name": format!("webhook-key-{name}")},
                }]},
            },
        }))
        .unwrap();
        Api::<Distributor>::all(client.clone())
            .create(&PostParams::default(), &distributor)
            .await
            .unwrap();
    }

    // The reference for everybody else's writes: the same creates with no operator running.
    let (baseline_took, baseline_latencies) = baseline_creates(&client, partners).await;

    let seen = Arc::new(Mutex::new(Seen::default()));
    watch_partners(client.clone(), seen.clone());
    let operator = Operator::start(&kubeconfig, &smtp);
    wait_until("the operator is ready", Duration::from_secs(60), || {
        std::net::TcpStream::connect(operator.metrics).is_ok()
    })
    .await;

    // 1. Bulk onboarding.
    server.clear_log();
    let api_cpu_before = server.api_cpu_seconds();
    let etcd_before = server.etcd_partner_requests(&client).await;
    let profile = server.profile_cpu(&client);
    let started = Instant::now();
    let names: Vec<_> = (0..partners)
        .map(|i| {
            let d = i % distributors.max(1);
            (format!("d{d}-partners"), format!("p{i}"), format!("d{d}"))
        })
        .collect();
    let create_latencies = create_partners(&client, names, json!({}), &seen).await;
    let created_in = started.elapsed();
    wait_until("every Partner Ready", Duration::from_secs(600), || {
        seen.lock().unwrap().ready.len() >= partners
    })
    .await;
    wait_until("every activation email", Duration::from_secs(600), || {
        smtp.received().len() >= partners
    })
    .await;
    let onboarding = started.elapsed().as_secs_f64();
    wait_until("every provisioned event", Duration::from_secs(600), || {
        count_of(
            &webhooks.received(),
            "io.partner-operator.partner.provisioned",
            "",
        ) >= partners
    })
    .await;
    let events_in = started.elapsed().as_secs_f64();
    if let Some(profile) = profile {
        profile.await.unwrap();
    }
    server.trace();
    let etcd_after = server.etcd_partner_requests(&client).await;
    let api_cpu = server
        .api_cpu_seconds()
        .zip(api_cpu_before)
        .map(|(after, before)| after - before);
    let onboarding_delays = delivery_delays(&webhooks.received(), |_| true);
    let log = server.log();
    let operator_writes = operator_requests(&log).filter(|r| r.is_write()).count();
    let mut latencies: Vec<f64> = {
        let seen = seen.lock().unwrap();
        seen.ready
            .iter()
            .filter_map(|(k, ready)| Some((*ready - *seen.created.get(k)?).as_secs_f64()))
            .collect()
    };
    latencies.sort_by(f64::total_cmp);

    // The reference: the API server's own capacity for as many small writes, from one client
    // with the same concurrency as the load generator.
    let reference_ns: Namespace =
        serde_json::from_value(json!({"metadata": {"name": "reference"}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &reference_ns)
        .await
        .unwrap();
    let configmaps = Api::<ConfigMap>::namespaced(client.clone(), "reference");
    let reference_started = Instant::now();
    futures::stream::iter(0..operator_writes)
        .map(|i| {
            let configmaps = configmaps.clone();
            async move {
                let cm: ConfigMap = serde_json::from_value(json!({
                    "metadata": {"name": format!("w{i}")},
                    "data": {"level": "Trial", "tenant": "6f1c0000"},
                }))
                .unwrap();
                configmaps
                    .create(&PostParams::default(), &cm)
                    .await
                    .unwrap();
            }
        })
        .buffer_unordered(64)
        .collect::<()>()
        .await;
    let reference = reference_started.elapsed().as_secs_f64();

    figure(
        "onboarding: seconds to all Ready",
        onboarding,
        "s",
        "< 20",
        Some(reference / onboarding),
    );
    println!(
        "{:<34} {:>12.3} {:<12} ({} writes by the operator; the API server alone took {:.3} s for as many: ratio = reference / operator)",
        "onboarding: creates took",
        created_in.as_secs_f64(),
        "s",
        operator_writes,
        reference
    );
    figure(
        "onboarding: partners/s",
        partners as f64 / onboarding,
        "partners/s",
        "> 500",
        Some(partners as f64 / onboarding / 500.0),
    );
    figure(
        "onboarding: create -> Ready p50",
        percentile(&latencies, 50.0),
        "s",
        "-",
        None,
    );
    figure(
        "onboarding: create -> Ready p99",
        percentile(&latencies, 99.0),
        "s",
        "-",
        None,
    );
    if let Some(cpu) = api_cpu {
        figure(
            "onboarding: API server CPU/partner",
            cpu * 1000.0 / partners as f64,
            "ms",
            "< 14",
            Some(14.0 / (cpu * 1000.0 / partners as f64)),
        );
    }
    figure(
        "other writes: creates took",
        created_in.as_secs_f64(),
        "s",
        "< 1.3x none",
        Some(1.3 * baseline_took / created_in.as_secs_f64()),
    );
    println!(
        "{:<34} {:>12.3} {:<12} (with no operator running: {:.3} s)",
        "other writes: create p99",
        percentile(&create_latencies, 99.0),
        "s",
        percentile(&baseline_latencies, 99.0),
    );
    for (request, count) in server.operator_breakdown() {
        println!(
            "  per partner: {request:<40} {:>8.3}",
            count as f64 / partners as f64
        );
    }
    let mut operations: Vec<_> = etcd_after.keys().collect();
    operations.sort();
    for operation in operations {
        let count = etcd_after[operation] - etcd_before.get(operation).copied().unwrap_or(0.0);
        println!(
            "  per partner: etcd {operation:<35} {:>8.3}",
            count / partners as f64
        );
    }
    stored_sizes(&client, "d0-partners", "p0").await;
    figure(
        "onboarding: writes per partner",
        operator_writes as f64 / partners as f64,
        "writes",
        "-",
        None,
    );
    figure(
        "webhooks: onboarding events/s",
        onboarding_delays.len() as f64 / events_in,
        "events/s",
        "-",
        None,
    );
    figure(
        "webhooks: transition -> delivery p50",
        percentile(&onboarding_delays, 50.0),
        "s",
        "-",
        None,
    );
    figure(
        "webhooks: transition -> delivery p99",
        percentile(&onboarding_delays, 99.0),
        "s",
        "-",
        None,
    );
    figure(
        "webhooks: verification failures",
        f64::from(webhooks.rejected()),
        "deliveries",
        "0",
        None,
    );

    // 2. Restart over settled Partners (`RESTARTS` times).
    tokio::time::sleep(Duration::from_secs(2)).await; // let the Distributors' counts settle
    let mut operator = operator;
    for _ in 0..env_or("RESTARTS", 1).max(1) {
        operator = restart(operator, &mut server, &kubeconfig, &smtp, partners).await;
    }

    // 3. Idle.
    server.clear_log();
    let cpu_before = operator.cpu_seconds();
    tokio::time::sleep(Duration::from_secs(idle_seconds as u64)).await;
    let minutes = idle_seconds as f64 / 60.0;
    let log = server.log();
    let requests = operator_requests(&log)
        .filter(|r| r.verb != "watch")
        .count();
    figure(
        "idle: requests/min beyond watches",
        requests as f64 / minutes,
        "req/min",
        "< 1",
        None,
    );
    figure(
        "idle: CPU seconds/min",
        (operator.cpu_seconds() - cpu_before) / minutes,
        "cpu-s/min",
        "-",
        None,
    );

    // 4. Mass expiry: trials that end at one instant, far enough ahead to onboard them first.
    let deadline_in = Duration::from_secs(20 + (expiring as u64) / 100);
    let deadline = Utc::now() + chrono::Duration::from_std(deadline_in).unwrap();
    let deadline_instant = Instant::now() + deadline_in;
    let names: Vec<_> = (0..expiring)
        .map(|i| {
            let d = distributors;
            (format!("d{d}-partners"), format!("e{i}"), format!("d{d}"))
        })
        .collect();
    create_partners(
        &client,
        names,
        json!({"subscription": {"expirationDate": deadline.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)}}),
        &seen,
    )
    .await;
    // The date was written in whole seconds: the deadline falls that much earlier.
    let deadline_instant =
        deadline_instant - Duration::from_nanos(u64::from(deadline.timestamp_subsec_nanos()));
    wait_until(
        "every expiring trial converted",
        deadline_in + Duration::from_secs(300),
        || {
            let seen = seen.lock().unwrap();
            (0..expiring).all(|i| {
                seen.production
                    .contains_key(&format!("d{distributors}-partners/e{i}"))
            })
        },
    )
    .await;
    let mut lateness: Vec<f64> = {
        let seen = seen.lock().unwrap();
        (0..expiring)
            .filter_map(|i| {
                seen.production
                    .get(&format!("d{distributors}-partners/e{i}"))
            })
            .map(|at| at.saturating_duration_since(deadline_instant).as_secs_f64())
            .collect()
    };
    lateness.sort_by(f64::total_cmp);
    let expiry_subjects = format!("d{distributors}-partners/e");
    wait_until(
        "every conversion's events",
        Duration::from_secs(300),
        || {
            let received = webhooks.received();
            count_of(
                &received,
                "io.partner-operator.billing.period-started",
                &expiry_subjects,
            ) >= expiring
        },
    )
    .await;
    let expiry_delays = delivery_delays(&webhooks.received(), |r| {
        r.type_() == "io.partner-operator.partner.converted"
            || r.type_() == "io.partner-operator.billing.period-started"
    });
    figure(
        "mass expiry: conversion -> webhook p50",
        percentile(&expiry_delays, 50.0),
        "s",
        "-",
        None,
    );
    figure(
        "mass expiry: conversion -> webhook p99",
        percentile(&expiry_delays, 99.0),
        "s",
        "-",
        None,
    );
    figure(
        "mass expiry: lateness p50",
        percentile(&lateness, 50.0),
        "s",
        "-",
        None,
    );
    figure(
        "mass expiry: lateness p99",
        percentile(&lateness, 99.0),
        "s",
        "< 0.5",
        Some(percentile(&lateness, 99.0) / 0.5),
    );
    figure(
        "mass expiry: lateness max",
        lateness.last().copied().unwrap_or(f64::NAN),
        "s",
        "-",
        None,
    );

    // 7. Restore into a fresh API server (here, while the fleet is settled).
    restore::run(&client, dir.path(), &webhooks).await;

    // 5. Memory.
    figure(
        "memory: operator peak RSS",
        operator.peak_rss_mib(),
        "MiB",
        "< 100",
        Some(operator.peak_rss_mib() / 100.0),
    );

    // 6. Large annotations, listed by a fresh operator.
    let annotated = env_or("ANNOTATED", 700);
    let annotation_kb = env_or("ANNOTATION_KB", 250);
    operator.stop();
    let unbound: Namespace =
        serde_json::from_value(json!({"metadata": {"name": "unbound-partners"}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &unbound)
        .await
        .unwrap();
    let bulk = "x".repeat(annotation_kb * 1024);
    futures::stream::iter(0..annotated)
        .map(|i| {
            let namespace = if i % 2 == 0 {
                "unbound-partners"
            } else {
                "d0-partners"
            };
            let api = Api::<Partner>::namespaced(client.clone(), namespace);
            let partner: Partner = serde_json::from_value(json!({
                "apiVersion": "partner-operator.io/v1alpha1",
                "kind": "Partner",
                "metadata": {"name": format!("a{i}"), "namespace": namespace,
                             "annotations": {"example.com/bulk": bulk}},
                "spec": {
                    "organizationName": format!("a{i} IT Services"),
                    "notificationEmail": format!("admin@a{i}.example"),
                    "distributorRef": {"name": "d0"},
                },
            }))
            .unwrap();
            async move {
                api.create(&PostParams::default(), &partner)
                    .await
                    .expect("an annotated Partner is created");
            }
        })
        .buffer_unordered(16)
        .collect::<()>()
        .await;
    let operator = Operator::start(&kubeconfig, &smtp);
    let total = partners + expiring + annotated;
    let restarted = Instant::now();
    while operator.metric(RECONCILED).await < total as f64 {
        assert!(
            restarted.elapsed() < Duration::from_secs(300),
            "the annotated Partners were never all reconciled"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    figure(
        "annotated: operator peak RSS",
        operator.peak_rss_mib(),
        "MiB",
        "< 120",
        Some(operator.peak_rss_mib() / 120.0),
    );
    operator.stop();
}

/// Scenario 2: stops `operator` and starts a new one over the settled Partners; prints how long
/// it took to reconcile every Partner, the CPU that cost the operator and the API server, and
/// the writes and emails it made (both must be 0).
async fn restart(
    operator: Operator,
    server: &mut Server,
    kubeconfig: &std::path::Path,
    smtp: &SmtpSink,
    partners: usize,
) -> Operator {
    operator.stop();
    let emails_before = smtp.received().len();
    server.clear_log();
    let api_cpu_before = server.cpu_seconds();
    let restarted = Instant::now();
    let operator = Operator::start(kubeconfig, smtp);
    loop {
        if operator.metric(RECONCILED).await >= partners as f64 {
            break;
        }
        assert!(
            restarted.elapsed() < Duration::from_secs(300),
            "restart never settled"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let settled = restarted.elapsed().as_secs_f64();
    let operator_cpu = operator.cpu_seconds();
    let api_cpu = server.cpu_seconds() - api_cpu_before;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let log = server.log();
    let writes: Vec<_> = operator_requests(&log).filter(|r| r.is_write()).collect();
    figure(
        "restart: seconds to settle",
        settled,
        "s",
        "< 3",
        Some(settled / 3.0),
    );
    figure("restart: operator CPU", operator_cpu, "cpu-s", "-", None);
    figure("restart: API server CPU", api_cpu, "cpu-s", "-", None);
    figure("restart: writes", writes.len() as f64, "writes", "0", None);
    let reads = operator_requests(&log).filter(|r| r.verb == "get").count();
    figure(
        "restart: reads of one object",
        reads as f64,
        "reads",
        "0",
        None,
    );
    if let Some(first) = writes.first() {
        println!("  first write after restart: {first:?}");
    }
    figure(
        "restart: emails",
        (smtp.received().len() - emails_before) as f64,
        "emails",
        "0",
        None,
    );
    operator
}
