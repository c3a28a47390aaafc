//! Request routing: the one entry point for every request. It parses what a request addresses
//! (path and query), answers discovery, records the request and draws its faults, converts
//! `events.k8s.io/v1` Events to the core ones they are stored as, and hands the verb to a
//! [`Request`], whose verbs live by concern: [`super::reads`], [`super::watch`],
//! [`super::writes`], [`super::deletion`].

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::errors::{ApiError, ApiResult};
use super::kinds::Kind;
use super::resources::ResourceType;
use super::{ServerState, controllers, discovery, events, openapi_v2};

/// What a request addresses, parsed from its path.
#[derive(Debug, Default, Clone)]
pub(super) struct Target {
    pub group: String,
    pub version: String,
    pub plural: Option<String>,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

fn parse_path(registry: &super::resources::Registry, path: &str) -> Option<Target> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segments.as_slice() {
        ["api", version, rest @ ..] => (String::new(), version.to_string(), rest),
        ["apis", group, version, rest @ ..] => (group.to_string(), version.to_string(), rest),
        _ => return None,
    };
    let mut target = Target {
        group,
        version,
        ..Default::default()
    };
    let rest = match rest {
        ["namespaces", ns, plural, tail @ ..]
            if registry
                .get(&target.group, &target.version, plural)
                .is_some_and(|r| r.namespaced)
                || unserved(&target.group, plural).is_some() =>
        {
            target.namespace = Some(ns.to_string());
            let mut all = vec![*plural];
            all.extend_from_slice(tail);
            all
        }
        other => other.to_vec(),
    };
    match rest.as_slice() {
        [] => {}
        [plural] => target.plural = Some(plural.to_string()),
        [plural, name] => {
            target.plural = Some(plural.to_string());
            target.name = Some(name.to_string());
        }
        [plural, name, sub] => {
            target.plural = Some(plural.to_string());
            target.name = Some(name.to_string());
            target.subresource = Some(sub.to_string());
        }
        _ => return None,
    }
    Some(target)
}

/// Query parameters the verbs read.
#[derive(Default)]
pub(super) struct Query {
    pub watch: bool,
    pub resource_version: Option<String>,
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
    pub timeout_seconds: Option<u64>,
    pub bookmarks: bool,
    pub field_manager: Option<String>,
    pub field_validation: Option<String>,
    pub dry_run: bool,
    pub send_initial_events: bool,
    pub dry_run_given: Option<String>,
    pub force: bool,
    pub include_object: Option<String>,
    pub propagation_policy: Option<String>,
    pub resource_version_match: Option<String>,
}

fn parse_query(uri: &Uri) -> Query {
    let mut query = Query::default();
    for (key, value) in url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
        let value = value.to_string();
        match key.as_ref() {
            "watch" => query.watch = value == "true" || value == "1",
            "resourceVersion" => query.resource_version = Some(value).filter(|v| !v.is_empty()),
            "labelSelector" => query.label_selector = Some(value),
            "fieldSelector" => query.field_selector = Some(value),
            "limit" => query.limit = value.parse().ok().filter(|l| *l > 0),
            "continue" => query.continue_token = Some(value).filter(|v| !v.is_empty()),
            "timeoutSeconds" => query.timeout_seconds = value.parse().ok(),
            "allowWatchBookmarks" => query.bookmarks = value == "true",
            "fieldManager" => query.field_manager = Some(value),
            "fieldValidation" => query.field_validation = Some(value),
            "dryRun" => {
                query.dry_run = value == "All";
                query.dry_run_given = Some(value);
            }
            "force" => query.force = value == "true",
            "sendInitialEvents" => query.send_initial_events = value == "true",
            "includeObject" => query.include_object = Some(value),
            "propagationPolicy" => query.propagation_policy = Some(value),
            "resourceVersionMatch" => {
                query.resource_version_match = Some(value).filter(|v| !v.is_empty())
            }
            _ => {}
        }
    }
    query
}

impl Query {
    /// A request option with a value kube-apiserver does not accept.
    fn invalid_option(&self, verb: &str) -> Option<ApiError> {
        if let Some(manager) = &self.field_manager
            && manager.len() > 128
        {
            let options = match verb {
                "patch" => "PatchOptions.meta.k8s.io",
                "update" => "UpdateOptions.meta.k8s.io",
                _ => "CreateOptions.meta.k8s.io",
            };
            return Some(ApiError::invalid_request(
                options,
                "fieldManager",
                "fieldManager: Too long: may not be more than 128 bytes",
            ));
        }
        if let Some(value) = &self.dry_run_given
            && value != "All"
        {
            return Some(ApiError::invalid_request(
                "CreateOptions.meta.k8s.io",
                "dryRun",
                // The parameter may be given more than once: kube-apiserver shows the list.
                &format!("dryRun: Unsupported value: [{value:?}]: supported values: \"All\""),
            ));
        }
        if let Some(value) = &self.field_validation
            && !matches!(value.as_str(), "" | "Ignore" | "Warn" | "Strict")
        {
            return Some(ApiError::invalid_request(
                "CreateOptions.meta.k8s.io",
                "fieldValidation",
                &format!(
                    "fieldValidation: Unsupported value: {value:?}: supported values: \"Ignore\", \"Strict\", \"Warn\""
                ),
            ));
        }
        None
    }
}

/// The one entry point for every request.
pub(super) async fn handle(
    state: Arc<ServerState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    if path == "/openapi/v2" {
        return openapi_v2::document(&headers);
    }
    if let Some(response) = serve_fixed_path(&state, &path) {
        return response;
    }
    let Some(target) = parse_path(&state.registry, &path) else {
        return ApiError::no_such_resource().into_response();
    };
    let query = parse_query(&uri);
    let verb = verb_of(&method, &target, &query);
    if let Some(error) = query.invalid_option(verb) {
        return error.into_response();
    }
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    let mut lost_response = None;
    if target.plural.is_some() {
        match record_and_draw_fault(&state, verb, &target, user_agent) {
            Some(fault) if fault.lose_response => lost_response = Some(fault.status),
            Some(fault) => return ApiError::injected(fault.status).into_response(),
            None => {}
        }
    }
    let resource = match resource_of(&state, &target) {
        Ok(resource) => resource,
        Err(response) => return *response,
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_string();
    // events.k8s.io/v1 Events are stored as core Events: converted in here, and out below.
    let events_v1 = Kind::of(&resource) == Kind::EventsV1Event;
    let (resource, body, content_type) = if events_v1 {
        match events::to_core_request(&state.registry, &resource, verb, body, &content_type) {
            Ok(converted) => converted,
            Err(error) => return error.into_response(),
        }
    } else {
        (resource, body, content_type)
    };
    note_owners(&state, &body);
    let duplicates = match duplicates_in(&resource, verb, &query, &content_type, &body) {
        Ok(duplicates) => duplicates,
        Err(error) => return error.into_response(),
    };
    let request = Request {
        apply: verb == "patch" && content_type.starts_with("application/apply-patch"),
        events_v1,
        state: &state,
        resource: &resource,
        target: &target,
        query: &query,
        user_agent,
    };
    let mut response = request
        .dispatch(verb, wants_table(&headers), &body, &content_type)
        .unwrap_or_else(IntoResponse::into_response);
    warn_of_duplicates(&mut response, &duplicates);
    if verb == "delete" && !query.dry_run && response.status().is_success() {
        controllers::after_delete(&state, &resource, &target);
    }
    if let Some(code) = lost_response {
        // Carried out; the client is told it failed.
        return ApiError::injected(code).into_response();
    }
    if events_v1 {
        return events::convert_response(response, verb == "watch").await;
    }
    response
}

/// Resources of a Kubernetes cluster the sandbox does not serve: a client that asks for one by
/// its path (a typed client; kubectl finds them missing from discovery) is told so, and where
/// to get them, rather than a bare 404.
const UNSERVED: &[(&str, &[&str])] = &[
    (
        "",
        &[
            "pods",
            "nodes",
            "endpoints",
            "persistentvolumeclaims",
            "persistentvolumes",
            "replicationcontrollers",
            "resourcequotas",
            "limitranges",
            "podtemplates",
        ],
    ),
    (
        "apps",
        &[
            "statefulsets",
            "replicasets",
            "daemonsets",
            "controllerrevisions",
        ],
    ),
    ("batch", &["jobs", "cronjobs"]),
    ("autoscaling", &["horizontalpodautoscalers"]),
    ("discovery.k8s.io", &["endpointslices"]),
    ("storage.k8s.io", &["storageclasses"]),
];

fn unserved(group: &str, plural: &str) -> Option<ApiError> {
    UNSERVED
        .iter()
        .any(|(g, plurals)| *g == group && plurals.contains(&plural))
        .then(|| {
            ApiError::not_found_because(format!(
                "the sandbox does not serve {plural}: it serves the kinds the operator and its chart use; run `partner-operator sandbox --kube-apiserver DIR` for a complete API server"
            ))
        })
}

/// The fields a created or replaced object's JSON gives twice: refused under
/// `fieldValidation=Strict` as kube-apiserver refuses them, to warn of otherwise (none under
/// `Ignore`).
fn duplicates_in(
    resource: &ResourceType,
    verb: &str,
    query: &Query,
    content_type: &str,
    body: &[u8],
) -> Result<Vec<String>, ApiError> {
    if !matches!(verb, "create" | "update") || !content_type.contains("json") {
        return Ok(vec![]);
    }
    let duplicates = super::duplicates::duplicate_fields(body);
    match query.field_validation.as_deref() {
        _ if duplicates.is_empty() => Ok(duplicates),
        Some("Ignore") => Ok(vec![]),
        Some("Strict") => {
            let fields: Vec<String> = duplicates
                .iter()
                .map(|f| format!("duplicate field {f:?}"))
                .collect();
            Err(ApiError::bad_request(format!(
                "{kind} in version {version:?} cannot be handled as a {kind}: strict decoding error: {}",
                fields.join(", "),
                kind = resource.kind,
                version = resource.version,
            )))
        }
        _ => Ok(duplicates),
    }
}

/// A write that went through despite fields given twice says so, as kube-apiserver does.
fn warn_of_duplicates(response: &mut Response, duplicates: &[String]) {
    if !response.status().is_success() {
        return;
    }
    for field in duplicates {
        let warning = format!("299 - \"duplicate field \\\"{field}\\\"\"");
        if let Ok(value) = HeaderValue::from_str(&warning) {
            response.headers_mut().append("Warning", value);
        }
    }
}

/// Whether the client asks for a `Table` (`kubectl get`).
fn wants_table(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("as=Table"))
}

/// Notes that some object was written with `ownerReferences`: only then has the garbage
/// collector work to do.
fn note_owners(state: &ServerState, body: &[u8]) {
    if body
        .windows(b"ownerReferences".len())
        .any(|w| w == b"ownerReferences")
    {
        state
            .owners_seen
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The paths that name no resource: version, health, discovery roots, OpenAPI.
fn serve_fixed_path(state: &ServerState, path: &str) -> Option<Response> {
    let json = |value: Value| Some(axum::Json(value).into_response());
    match path {
        "/version" => return json(discovery::version()),
        "/healthz" | "/readyz" | "/livez" => return Some("ok".into_response()),
        "/api" => return json(discovery::api_versions()),
        "/apis" => return json(discovery::api_groups(&state.registry)),
        "/openapi/v3" => return json(discovery::openapi_v3_index(&state.registry)),
        _ => {}
    }
    let gv = path.strip_prefix("/openapi/v3/")?;
    Some(match discovery::openapi_v3(&state.registry, gv) {
        Some(doc) => axum::Json(doc).into_response(),
        None => ApiError::no_such_resource().into_response(),
    })
}

fn verb_of(method: &Method, target: &Target, query: &Query) -> &'static str {
    match (method, &target.name, query.watch) {
        (&Method::GET, _, true) => "watch",
        (&Method::GET, Some(_), _) => "get",
        (&Method::GET, None, _) => "list",
        (&Method::POST, _, _) => "create",
        (&Method::PUT, _, _) => "update",
        (&Method::PATCH, _, _) => "patch",
        (&Method::DELETE, Some(_), _) => "delete",
        (&Method::DELETE, None, _) => "deletecollection",
        _ => "unknown",
    }
}

/// Records a request to a resource in the request log, and draws the faults a test set.
fn record_and_draw_fault(
    state: &ServerState,
    verb: &str,
    target: &Target,
    user_agent: Option<&str>,
) -> Option<super::Fault> {
    let plural = target.plural.as_deref().unwrap_or_default();
    state.log.record(verb, target, user_agent);
    let resource = match &target.subresource {
        Some(sub) => format!("{plural}/{sub}"),
        None => plural.to_string(),
    };
    state.faults.roll(verb, &resource)
}

/// The resource type a path addresses, or the answer for a path that addresses none (a
/// discovery document, or a 404).
fn resource_of(state: &ServerState, target: &Target) -> Result<ResourceType, Box<Response>> {
    if let Some(plural) = &target.plural
        && let Some(error) = unserved(&target.group, plural)
    {
        return Err(Box::new(error.into_response()));
    }
    if !state.registry.serves(&target.group, &target.version) {
        // A group/version nobody serves is no API path at all: Go's mux answers, not a Status.
        return Err(Box::new(
            (StatusCode::NOT_FOUND, "404 page not found\n").into_response(),
        ));
    }
    let Some(plural) = &target.plural else {
        return Err(Box::new(
            match discovery::resource_list(&state.registry, &target.group, &target.version) {
                Some(list) => axum::Json(list).into_response(),
                None => ApiError::no_such_resource().into_response(),
            },
        ));
    };
    let resource = state
        .registry
        .get(&target.group, &target.version, plural)
        .ok_or_else(|| Box::new(ApiError::no_such_resource().into_response()))?;
    if let Some(sub) = &target.subresource
        && !(sub == "status" && resource.status_subresource)
        && !(sub == "scale" && Kind::of(&resource) == Kind::Deployment)
    {
        return Err(Box::new(ApiError::no_such_resource().into_response()));
    }
    Ok(resource)
}

/// One request to a resource, as its verbs see it.
#[derive(Clone, Copy)]
pub(super) struct Request<'a> {
    /// A server-side apply: it keeps its own managed fields.
    pub apply: bool,
    /// Through `events.k8s.io/v1`: patches apply to the Event in that schema.
    pub events_v1: bool,
    pub state: &'a ServerState,
    pub resource: &'a ResourceType,
    pub target: &'a Target,
    pub query: &'a Query,
    pub user_agent: Option<&'a str>,
}

/// The options of a request the server makes to itself: none.
static NO_OPTIONS: Query = Query {
    watch: false,
    resource_version: None,
    label_selector: None,
    field_selector: None,
    limit: None,
    continue_token: None,
    timeout_seconds: None,
    bookmarks: false,
    field_manager: None,
    field_validation: None,
    dry_run: false,
    send_initial_events: false,
    dry_run_given: None,
    force: false,
    include_object: None,
    propagation_policy: None,
    resource_version_match: None,
};

pub(super) fn parse_body(body: &[u8], content_type: &str) -> Result<Value, ApiError> {
    if content_type.contains("protobuf") {
        // The built-in kinds kubectl's imperative `create` and client-go's typed clients send
        // are decoded into the JSON they stand for; others answer 415 naming their kind, and
        // clients that negotiate fall back to JSON.
        return super::protobuf::to_json(body).map_err(|e| match e {
            super::protobuf::Error::Malformed(_) => ApiError::bad_request(e.to_string()),
            super::protobuf::Error::UnsupportedKind { .. } => {
                ApiError::unsupported_media_type(e.to_string())
            }
        });
    }
    let parsed = if content_type.contains("yaml") {
        serde_yaml::from_slice::<Value>(body).map_err(|e| e.to_string())
    } else {
        serde_json::from_slice::<Value>(body).map_err(|e| e.to_string())
    };
    parsed.map_err(|e| {
        ApiError::bad_request(format!("the body of the request could not be decoded: {e}"))
    })
}

pub(super) fn json_response(code: StatusCode, value: &Value, warnings: &[String]) -> Response {
    let mut response = (code, axum::Json(value)).into_response();
    for warning in warnings {
        if let Ok(v) = HeaderValue::from_str(&format!("299 - {:?}", warning)) {
            response.headers_mut().append("Warning", v);
        }
    }
    response
}

impl Request<'_> {
    /// Hands the request to its verb.
    fn dispatch(
        &self,
        verb: &str,
        wants_table: bool,
        body: &[u8],
        content_type: &str,
    ) -> ApiResult {
        if self.target.subresource.as_deref() == Some("scale") {
            return self.scale(verb, body, content_type);
        }
        match verb {
            "watch" => self.watch(wants_table),
            "get" => self.get(wants_table),
            "list" => self.list(wants_table),
            "create" => self.create(body, content_type),
            "update" => self.update(body, content_type),
            "patch" => self.patch(body, content_type),
            "delete" => self.delete(body),
            "deletecollection" if Kind::of(self.resource).serves_deletecollection() => {
                self.delete_collection(body)
            }
            _ => Err(ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
            )),
        }
    }
}

impl<'a> Request<'a> {
    /// A request the server makes to itself, as kube-controller-manager's controllers would
    /// make it: no options, no client.
    pub(super) fn internal(
        state: &'a ServerState,
        resource: &'a ResourceType,
        target: &'a Target,
    ) -> Self {
        Request {
            apply: false,
            events_v1: false,
            state,
            resource,
            target,
            query: &NO_OPTIONS,
            user_agent: None,
        }
    }

    pub(super) fn key(&self) -> String {
        self.resource.key()
    }

    /// The field manager: `fieldManager`, else the client's user agent up to its first `/`,
    /// as kube-apiserver takes it.
    pub(super) fn manager(&self) -> String {
        self.query.field_manager.clone().unwrap_or_else(|| {
            self.user_agent
                .and_then(|ua| ua.split('/').next())
                .filter(|m| !m.is_empty())
                .unwrap_or("unknown")
                .to_string()
        })
    }

    pub(super) fn namespace(&self) -> &str {
        self.target.namespace.as_deref().unwrap_or("")
    }

    pub(super) fn name(&self) -> &str {
        self.target.name.as_deref().unwrap_or("")
    }

    pub(super) fn now(&self) -> String {
        // Second precision, as kube-apiserver stores timestamps.
        (self.state.now)().format("%Y-%m-%dT%H:%M:%SZ").to_string()
    }
}
