//! A Kubernetes API server for the sandbox and the tests.
//!
//! kube-apiserver and etcd cannot be installed from the registries this project builds from, so
//! the project carries its own server, faithful to the real one for everything the operator
//! (kube-rs), the stock kubectl and Helm-rendered manifests touch: discovery and OpenAPI,
//! built-in kinds and CRDs registered at run time, every verb with resourceVersion and
//! generation semantics, watches that resume or answer 410 Gone, finalizers, the status
//! subresource, patches and server-side apply, admission of custom resources through
//! [`crate::admission`], and `Table` output. Request bodies come in JSON, YAML, or protobuf for
//! the built-in kinds kubectl's imperative `create` sends; answers are JSON. State is in memory.
//!
//! Tests drive faults through [`ApiServer`]: failing a share of requests, dropping watches,
//! compacting history; and read back every request a client made from its request log.
//!
//! A request enters at `routing` (path, query, faults, the request log) and goes to its verb:
//! `reads`, `watch`, `writes` or `deletion`, each failing with the `Status` errors of `errors`.
//! What sets some built-in kinds apart is in `kinds`; what kube-controller-manager would do
//! after a delete is in `controllers`. Objects live in `store`, resource types in `resources`.

mod builtin_tables;
mod controllers;
mod deletion;
mod discovery;
mod duplicates;
mod errors;
mod events;
mod fieldset;
mod gc;
mod json_path;
mod kinds;
mod last_applied;
mod list_items;
mod list_options;
mod openapi_v2;
mod ownership;
mod patch;
mod protobuf;
mod reads;
mod resources;
mod routing;
mod scale;
mod selectors;
mod store;
mod tables;
mod updates;
mod validation;
mod watch;
mod writes;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Request, State};
use axum::response::Response;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use tokio::sync::oneshot;

use chrono::{DateTime, Utc};

pub use resources::ResourceType;

/// Where the server reads the time its timestamps carry: the caller's clock (the operator's, in
/// the sandbox and the tests), so that when time runs faster there, or a test moves it, the
/// server's creation and deletion timestamps and its `AGE` column move with it.
pub(crate) type Now = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// State shared by every request.
pub(crate) struct ServerState {
    store: store::Store,
    registry: resources::Registry,
    now: Now,
    faults: Faults,
    log: RequestLog,
    /// Whether any object was written with `ownerReferences`: only then is there garbage to
    /// collect when an object is deleted.
    owners_seen: std::sync::atomic::AtomicBool,
    /// The state itself, for work a request leaves to the server's controllers, which run
    /// after it has been answered.
    this: std::sync::Weak<ServerState>,
}

/// One request a client made, as the request log records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedRequest {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`.
    pub verb: String,
    pub group: String,
    pub resource: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
    /// The client's `User-Agent`, as an audit log records it: tells replicas apart.
    pub user_agent: Option<String>,
    /// Not a request of its own but a verb the previous entry was authorized for as well: a
    /// server-side apply that creates its object is checked for `create` besides `patch`.
    pub implied: bool,
}

impl RecordedRequest {
    /// Whether the request changed (or tried to change) something; implied entries are not
    /// requests, so they are not counted.
    pub fn is_write(&self) -> bool {
        !self.implied
            && matches!(
                self.verb.as_str(),
                "create" | "update" | "patch" | "delete" | "deletecollection"
            )
    }
}

/// Every request to a resource, in order.
#[derive(Clone, Default)]
pub struct RequestLog(Arc<Mutex<Vec<RecordedRequest>>>);

impl RequestLog {
    fn record(&self, verb: &str, target: &routing::Target, user_agent: Option<&str>) {
        self.push(verb, target, user_agent, false);
    }

    /// A verb the request just recorded is authorized for as well.
    fn record_implied(&self, verb: &str, target: &routing::Target, user_agent: Option<&str>) {
        self.push(verb, target, user_agent, true);
    }

    fn push(&self, verb: &str, target: &routing::Target, user_agent: Option<&str>, implied: bool) {
        self.0.lock().unwrap().push(RecordedRequest {
            verb: verb.to_string(),
            group: target.group.clone(),
            resource: target.plural.clone().unwrap_or_default(),
            namespace: target.namespace.clone(),
            name: target.name.clone(),
            subresource: target.subresource.clone(),
            user_agent: user_agent.map(str::to_string),
            implied,
        });
    }

    pub fn entries(&self) -> Vec<RecordedRequest> {
        self.0.lock().unwrap().clone()
    }

    pub fn clear(&self) {
        self.0.lock().unwrap().clear();
    }
}

/// A share of the requests of one verb (or of all verbs) answered with an error status.
#[derive(Clone, Debug, Default)]
pub struct FaultRule {
    /// `None`: every verb.
    pub verb: Option<String>,
    /// `None`: every resource; else a plural, or `plural/subresource` (`partners/status`).
    pub resource: Option<String>,
    /// 0.0..=1.0.
    pub share: f64,
    /// 500, 429 (with Retry-After) or 409.
    pub status: u16,
    /// Fail at most this many requests, then stop; `None`: no limit.
    pub limit: Option<u32>,
    /// Carry the request out, then answer with the error anyway: the write landed, and the
    /// client never learns it (a connection lost after the server committed).
    pub lose_response: bool,
}

impl FaultRule {
    /// The next request of `verb` is answered with `status`, once.
    pub fn once(verb: &str, status: u16) -> Self {
        Self {
            verb: Some(verb.to_string()),
            share: 1.0,
            status,
            limit: Some(1),
            ..Self::default()
        }
    }

    /// Only requests on `resource` (a plural, or `plural/subresource`).
    pub fn on(self, resource: &str) -> Self {
        Self {
            resource: Some(resource.to_string()),
            ..self
        }
    }

    /// The request is carried out and its response lost (see [`FaultRule::lose_response`]).
    pub fn losing_response(self) -> Self {
        Self {
            lose_response: true,
            ..self
        }
    }
}

/// What a request that drew a fault gets.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Fault {
    pub status: u16,
    pub lose_response: bool,
}

#[derive(Clone, Default)]
struct Faults(Arc<Mutex<Vec<FaultRule>>>);

impl Faults {
    fn roll(&self, verb: &str, resource: &str) -> Option<Fault> {
        let mut rules = self.0.lock().unwrap();
        let rule = rules
            .iter_mut()
            .filter(|r| r.verb.as_deref().is_none_or(|v| v == verb))
            .filter(|r| r.resource.as_deref().is_none_or(|v| v == resource))
            .filter(|r| r.limit != Some(0))
            .find(|r| rand::random::<f64>() < r.share)?;
        if let Some(left) = rule.limit.as_mut() {
            *left -= 1;
        }
        Some(Fault {
            status: rule.status,
            lose_response: rule.lose_response,
        })
    }
}

/// A running API server.
pub struct ApiServer {
    addr: SocketAddr,
    state: Arc<ServerState>,
    shutdown: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl ApiServer {
    /// Starts serving on `addr` (port 0: any free port), with the built-in kinds and the default
    /// namespaces, timestamps read from `now` (`Utc::now` for real time).
    pub async fn start(
        addr: SocketAddr,
        now: impl Fn() -> DateTime<Utc> + Send + Sync + 'static,
    ) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let state = Arc::new_cyclic(|this| ServerState {
            store: store::Store::default(),
            registry: resources::Registry::with_builtins(),
            now: Arc::new(now),
            faults: Faults::default(),
            log: RequestLog::default(),
            owners_seen: Default::default(),
            this: this.clone(),
        });
        // The built-in kinds are served from the start, as a new cluster's kube-apiserver
        // serves them from the first revision: their watch histories hold every change.
        for (_, resources) in state.registry.group_versions() {
            for resource in resources {
                state.store.serve(&resource.key());
            }
        }
        let server = Self::with_state(listener, state.clone());
        for namespace in ["default", "kube-system", "kube-public"] {
            server
                .apply_json(serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}))
                .await
                .expect("default namespaces");
        }
        server.log().clear();
        Ok(server)
    }

    fn with_state(listener: tokio::net::TcpListener, state: Arc<ServerState>) -> Self {
        let addr = listener.local_addr().expect("bound");
        let router = Router::new().fallback(route).with_state(state.clone());
        let (shutdown, stopped) = oneshot::channel::<()>();
        // TCP_NODELAY, as kube-apiserver has it (Go sets it on every connection): a watch
        // writes each event on its own, and without it Nagle's algorithm holds a small event
        // back until the client acknowledges the previous one (up to 40 ms on Linux).
        let listener = axum::serve::ListenerExt::tap_io(listener, |stream| {
            let _ = stream.set_nodelay(true);
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
        });
        Self {
            addr,
            state,
            shutdown: Some(shutdown),
            task,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kubeconfig for this server, for kubectl and `kube::Config::infer`.
    pub fn kubeconfig_yaml(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: sandbox\n  cluster:\n    server: {url}\ncontexts:\n- name: sandbox\n  context:\n    cluster: sandbox\n    user: sandbox\n    namespace: default\ncurrent-context: sandbox\nusers:\n- name: sandbox\n  user: {{}}\n",
            url = self.url()
        )
    }

    pub fn write_kubeconfig(&self, path: &Path) -> std::io::Result<()> {
        std::fs::write(path, self.kubeconfig_yaml())
    }

    /// A kube-rs client for this server.
    pub fn client(&self) -> kube::Client {
        kube::Client::try_from(self.client_config()).expect("a client for a plain-HTTP URL")
    }

    /// A kube-rs client that sends `user_agent`, so the request log tells its requests apart.
    pub fn client_with_user_agent(&self, user_agent: &str) -> kube::Client {
        let mut config = self.client_config();
        config.headers.push((
            axum::http::header::USER_AGENT,
            user_agent.parse().expect("a valid header value"),
        ));
        kube::Client::try_from(config).expect("a client for a plain-HTTP URL")
    }

    /// The configuration of a kube-rs client for this server.
    pub fn client_config(&self) -> kube::Config {
        kube::Config::new(self.url().parse().expect("a valid URL"))
    }

    /// Creates `crds` (the caller's custom resource definitions).
    pub async fn install_crds(&self, crds: &[CustomResourceDefinition]) -> Result<(), String> {
        for crd in crds {
            self.apply_json(serde_json::to_value(crd).expect("serializes"))
                .await?;
        }
        Ok(())
    }

    /// Creates an object through the server's own request path (so it is admitted as any other).
    pub async fn apply_json(&self, object: serde_json::Value) -> Result<(), String> {
        crate::create_object(&self.client(), object).await
    }

    /// Answers a share of the requests with an error status (see [`FaultRule`]).
    pub fn inject_fault(&self, rule: FaultRule) {
        self.state.faults.0.lock().unwrap().push(rule);
    }

    pub fn clear_faults(&self) {
        self.state.faults.0.lock().unwrap().clear();
    }

    /// Ends every open watch; clients re-watch from their last version.
    pub fn drop_watches(&self) {
        self.controls().drop_watches();
    }

    /// Forgets the watch history: re-watching from any earlier version gets 410 Gone.
    pub fn compact(&self) {
        self.controls().compact();
    }

    /// A handle that can outlive a borrow of the server, for a task that injects faults
    /// while a test runs.
    pub fn controls(&self) -> Controls {
        Controls(self.state.clone())
    }

    /// Every request made to a resource so far.
    pub fn log(&self) -> &RequestLog {
        &self.state.log
    }

    /// Stops serving and waits until the listener is closed.
    pub async fn shutdown(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        self.drop_watches();
        let _ = (&mut self.task).await;
    }
}

/// Fault injection from another task (see [`ApiServer::controls`]).
#[derive(Clone)]
pub struct Controls(Arc<ServerState>);

impl Controls {
    /// See [`ApiServer::drop_watches`].
    pub fn drop_watches(&self) {
        self.0.store.drop_watches();
    }

    /// See [`ApiServer::compact`].
    pub fn compact(&self) {
        self.0.store.compact();
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn route(State(state): State<Arc<ServerState>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, 64 * 1024 * 1024).await {
        Ok(body) => body,
        Err(_) => axum::body::Bytes::new(),
    };
    routing::handle(state, parts.method, parts.uri, parts.headers, body).await
}
