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

use super::errors::ApiError;
use super::kinds::Kind;
use super::resources::ResourceType;
use super::{ServerState, controllers, discovery, events};

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
                .is_some_and(|r| r.namespaced) =>
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
            _ => {}
        }
    }
    query
}

impl Query {
    /// A request option with a value kube-apiserver does not accept.
    fn invalid_option(&self) -> Option<ApiError> {
        if let Some(value) = &self.dry_run_given
            && value != "All"
        {
            return Some(ApiError::invalid_request(
                "CreateOptions.meta.k8s.io",
                "dryRun",
                &format!("dryRun: Unsupported value: {value:?}: supported values: \"All\""),
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
    match path.as_str() {
        "/version" => return axum::Json(discovery::version()).into_response(),
        "/healthz" | "/readyz" | "/livez" => return "ok".into_response(),
        "/api" => return axum::Json(discovery::api_versions()).into_response(),
        "/apis" => return axum::Json(discovery::api_groups(&state.registry)).into_response(),
        "/openapi/v3" => {
            return axum::Json(discovery::openapi_v3_index(&state.registry)).into_response();
        }
        _ => {}
    }
    if let Some(gv) = path.strip_prefix("/openapi/v3/") {
        return match discovery::openapi_v3(&state.registry, gv) {
            Some(doc) => axum::Json(doc).into_response(),
            None => ApiError::no_such_resource().into_response(),
        };
    }
    let Some(target) = parse_path(&state.registry, &path) else {
        return ApiError::no_such_resource().into_response();
    };
    let query = parse_query(&uri);
    if let Some(error) = query.invalid_option() {
        return error.into_response();
    }
    let verb = match (&method, &target.name, query.watch) {
        (&Method::GET, _, true) => "watch",
        (&Method::GET, Some(_), _) => "get",
        (&Method::GET, None, _) => "list",
        (&Method::POST, _, _) => "create",
        (&Method::PUT, _, _) => "update",
        (&Method::PATCH, _, _) => "patch",
        (&Method::DELETE, Some(_), _) => "delete",
        (&Method::DELETE, None, _) => "deletecollection",
        _ => "unknown",
    };
    let user_agent = headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    let mut lost_response = None;
    if let Some(plural) = &target.plural {
        state.log.record(verb, &target, user_agent);
        let resource = match &target.subresource {
            Some(sub) => format!("{plural}/{sub}"),
            None => plural.clone(),
        };
        match state.faults.roll(verb, &resource) {
            Some(fault) if fault.lose_response => lost_response = Some(fault.status),
            Some(fault) => return ApiError::injected(fault.status).into_response(),
            None => {}
        }
    }
    if state
        .registry
        .resources_of(&target.group, &target.version)
        .is_none()
    {
        // A group/version nobody serves is no API path at all: Go's mux answers, not a Status.
        return (StatusCode::NOT_FOUND, "404 page not found\n").into_response();
    }
    let Some(plural) = target.plural.clone() else {
        return match discovery::resource_list(&state.registry, &target.group, &target.version) {
            Some(list) => axum::Json(list).into_response(),
            None => ApiError::no_such_resource().into_response(),
        };
    };
    let Some(resource) = state.registry.get(&target.group, &target.version, &plural) else {
        return ApiError::no_such_resource().into_response();
    };
    let mut content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_string();
    // events.k8s.io/v1 Events are stored as core Events: converted in here, and out below.
    let events_v1 = Kind::of(&resource) == Kind::EventsV1Event;
    let (resource, body) = if events_v1 {
        let core = state
            .registry
            .get("", "v1", "events")
            .expect("core Events are served");
        let body = if matches!(verb, "create" | "update") {
            let event = match parse_body(&body, &content_type) {
                Ok(event) => event,
                Err(e) => return e.into_response(),
            };
            let errors = events::validate_new(&event);
            if verb == "create" && !errors.is_empty() {
                let name = event["metadata"]["name"].as_str().unwrap_or_default();
                return ApiError::invalid(&resource, name, &errors).into_response();
            }
            content_type = "application/json".into();
            Bytes::from(serde_json::to_vec(&events::to_core(&event)).expect("serializes"))
        } else {
            body
        };
        (core, body)
    } else {
        (resource, body)
    };
    let wants_table = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("as=Table"));
    if let Some(sub) = &target.subresource
        && !(sub == "status" && resource.status_subresource)
    {
        return ApiError::no_such_resource().into_response();
    }
    // The uid of what a delete removes, for the garbage collector.
    let deleted_uid = (verb == "delete")
        .then(|| {
            state.store.get(
                &resource.key(),
                target.namespace.as_deref().unwrap_or_default(),
                target.name.as_deref().unwrap_or_default(),
            )
        })
        .flatten()
        .and_then(|o| o["metadata"]["uid"].as_str().map(str::to_string));
    if body
        .windows(b"ownerReferences".len())
        .any(|w| w == b"ownerReferences")
    {
        state
            .owners_seen
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
    let request = Request {
        apply: verb == "patch" && content_type.starts_with("application/apply-patch"),
        events_v1,
        state: &state,
        resource: &resource,
        target: &target,
        query: &query,
        user_agent,
    };
    let result = match verb {
        "watch" => request.watch(wants_table),
        "get" => request.get(wants_table),
        "list" => request.list(wants_table),
        "create" => request.create(&body, &content_type),
        "update" => request.update(&body, &content_type),
        "patch" => request.patch(&body, &content_type),
        "delete" => request.delete(&body),
        "deletecollection" => request.delete_collection(&body),
        _ => Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "method not allowed",
        )),
    };
    let response = result.unwrap_or_else(IntoResponse::into_response);
    if verb == "delete" && !query.dry_run && response.status() == StatusCode::OK {
        controllers::after_delete(&state, &resource, &target, deleted_uid);
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
