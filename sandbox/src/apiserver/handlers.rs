//! Request handling: routing by path, the verbs, metadata rules (names, uid, generation,
//! resourceVersion preconditions, finalizers and deletion), and `Status` errors.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::{Value, json};

use super::ServerState;
use super::resources::ResourceType;
use super::store::{ChangeKind, Write, Written};
use super::tables::{FieldSelector, LabelSelector};
use super::{discovery, events, ownership, patch, tables, validation};
use crate::admission::{FieldError, UnknownFieldPolicy};

/// The finalizer of an object deleted with `propagationPolicy: Foreground`.
const FOREGROUND_DELETION: &str = "foregroundDeletion";

/// How long a deleted Namespace stays `Terminating` before its content is deleted.
const NAMESPACE_CONTROLLER_DELAY: Duration = Duration::from_millis(100);

/// An error answered as a `Status` object.
#[derive(Debug)]
pub struct ApiError {
    code: StatusCode,
    reason: &'static str,
    message: String,
    details: Option<Value>,
    retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(code: StatusCode, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }
    fn not_found(resource: &ResourceType, name: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("{} \"{name}\" not found", resource.qualified_plural()),
        )
        .with_details(resource, name)
    }
    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }
    fn conflict(resource: &ResourceType, name: &str) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                resource.qualified_plural()
            ),
        )
        .with_details(resource, name)
    }
    fn invalid(resource: &ResourceType, name: &str, errors: &[FieldError]) -> Self {
        let causes: Vec<Value> = errors
            .iter()
            .map(|e| {
                // A cause names its field apart; its message does not repeat it.
                let message = e
                    .message
                    .strip_prefix(&format!("{}: ", e.field))
                    .unwrap_or(&e.message);
                json!({"reason": e.reason.cause_type(), "message": message, "field": e.field})
            })
            .collect();
        let mut error = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            crate::admission::invalid_message(&resource.qualified_kind(), name, errors),
        );
        error.details = Some(
            json!({"name": name, "group": resource.group, "kind": resource.kind, "causes": causes}),
        );
        error
    }
    /// 422 for a request option (`fieldManager`, `dryRun`, ...) rather than the object.
    fn invalid_request(kind: &str, field: &str, message: &str) -> Self {
        let mut error = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            format!("{kind} \"\" is invalid: {message}"),
        );
        error.details = Some(
            json!({"kind": kind.split('.').next().unwrap_or(kind), "group": "meta.k8s.io",
            "causes": [{"reason": "FieldValueRequired", "message": message, "field": field}]}),
        );
        error
    }
    fn with_details(mut self, resource: &ResourceType, name: &str) -> Self {
        self.details =
            Some(json!({"name": name, "group": resource.group, "kind": resource.plural}));
        self
    }
    pub fn injected(code: u16) -> Self {
        let (code, reason) = match code {
            429 => (StatusCode::TOO_MANY_REQUESTS, "TooManyRequests"),
            409 => (StatusCode::CONFLICT, "Conflict"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "InternalError"),
        };
        let mut error = Self::new(code, reason, "injected fault");
        if code == StatusCode::TOO_MANY_REQUESTS {
            error.retry_after = Some(1);
        }
        error
    }
    fn status_body(&self) -> Value {
        let mut status = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": self.message, "reason": self.reason, "code": self.code.as_u16(),
        });
        if let Some(details) = &self.details {
            status["details"] = details.clone();
        }
        if self.reason.is_empty() {
            status.as_object_mut().expect("object").remove("reason");
        }
        status
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.code, axum::Json(self.status_body())).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

type ApiResult = Result<Response, ApiError>;

/// What a request addresses, parsed from its path.
#[derive(Debug, Default, Clone)]
pub struct Target {
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
struct Query {
    watch: bool,
    resource_version: Option<String>,
    label_selector: Option<String>,
    field_selector: Option<String>,
    limit: Option<usize>,
    continue_token: Option<String>,
    timeout_seconds: Option<u64>,
    bookmarks: bool,
    field_manager: Option<String>,
    field_validation: Option<String>,
    dry_run: bool,
    send_initial_events: bool,
    dry_run_given: Option<String>,
    force: bool,
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

/// Why a computed write could not be stored: the object changed, or went, meanwhile.
enum Stale {
    Changed,
    Gone,
}

/// The one entry point for every request.
pub async fn handle(
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
            None => ApiError::new(
                StatusCode::NOT_FOUND,
                "NotFound",
                "the server could not find the requested resource",
            )
            .into_response(),
        };
    }
    let Some(target) = parse_path(&state.registry, &path) else {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the server could not find the requested resource",
        )
        .into_response();
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
            None => ApiError::new(
                StatusCode::NOT_FOUND,
                "NotFound",
                "the server could not find the requested resource",
            )
            .into_response(),
        };
    };
    let Some(resource) = state.registry.get(&target.group, &target.version, &plural) else {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the server could not find the requested resource",
        )
        .into_response();
    };
    let mut content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_string();
    // events.k8s.io/v1 Events are stored as core Events: converted in here, and out below.
    let events_v1 = resource.group == "events.k8s.io" && resource.plural == "events";
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
        return ApiError::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the server could not find the requested resource",
        )
        .into_response();
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
    if verb == "delete"
        && resource.kind == "Namespace"
        && !query.dry_run
        && response.status() == StatusCode::OK
    {
        // The namespace controller's part: empty the Namespace in the background, then remove it.
        let state = state.clone();
        let resource = resource.clone();
        let target = target.clone();
        tokio::spawn(async move {
            tokio::time::sleep(NAMESPACE_CONTROLLER_DELAY).await;
            let Some(namespace) = state.store.get(
                &resource.key(),
                "",
                target.name.as_deref().unwrap_or_default(),
            ) else {
                return;
            };
            let request = Request {
                apply: false,
                events_v1: false,
                state: &state,
                resource: &resource,
                target: &target,
                query: &Query::default(),
                user_agent: None,
            };
            request.terminate_namespace(&namespace);
        });
    }
    if verb == "delete"
        && !query.dry_run
        && response.status() == StatusCode::OK
        && state.owners_seen.load(std::sync::atomic::Ordering::Relaxed)
    {
        let state = state.clone();
        let target = target.clone();
        let resource = resource.clone();
        let deleted_uid = deleted_uid.clone();
        tokio::spawn(async move {
            tokio::time::sleep(NAMESPACE_CONTROLLER_DELAY).await;
            collect_garbage(&state, &resource, &target, deleted_uid.as_deref());
        });
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

/// kube-controller-manager's garbage collector, for one deleted (or deleting) owner: its
/// dependents lose their reference to it, and those left without owners are deleted; an owner
/// deleted in the foreground then loses its `foregroundDeletion` finalizer.
fn collect_garbage(
    state: &Arc<ServerState>,
    resource: &ResourceType,
    target: &Target,
    deleted_uid: Option<&str>,
) {
    let name = target.name.as_deref().unwrap_or_default();
    let namespace = target.namespace.as_deref().unwrap_or_default();
    let owner = state.store.get(&resource.key(), namespace, name);
    // The owner's uid, as it was when the delete came.
    let owner_uid = deleted_uid.map(str::to_string).or_else(|| {
        owner
            .as_ref()
            .and_then(|o| o["metadata"]["uid"].as_str().map(str::to_string))
    });
    let Some(owner_uid) = owner_uid else { return };
    for ((group, version), resources) in state.registry.group_versions() {
        for dependent_type in resources {
            let (objects, _) = state.store.list(&dependent_type.key(), None);
            for object in objects {
                let refs = object["metadata"]["ownerReferences"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let is_ours = |r: &Value| r["uid"].as_str() == Some(owner_uid.as_str());
                if !refs.iter().any(is_ours) {
                    continue;
                }
                let remaining: Vec<Value> = refs.into_iter().filter(|r| !is_ours(r)).collect();
                let dependent_target = Target {
                    group: group.clone(),
                    version: version.clone(),
                    plural: Some(dependent_type.plural.clone()),
                    namespace: object["metadata"]["namespace"].as_str().map(str::to_string),
                    name: object["metadata"]["name"].as_str().map(str::to_string),
                    subresource: None,
                };
                let request = Request {
                    apply: false,
                    events_v1: false,
                    state,
                    resource: &dependent_type,
                    target: &dependent_target,
                    query: &Query::default(),
                    user_agent: None,
                };
                if remaining.is_empty() {
                    let _ = request.delete(b"");
                } else {
                    let _ = request.write_existing(
                        |current| {
                            let mut current = current.clone();
                            current["metadata"]["ownerReferences"] = json!(remaining);
                            Ok(current)
                        },
                        None,
                    );
                }
            }
        }
    }
    // Only an owner deleted in the foreground waits for its dependents: rewriting any other
    // deleting owner (a Terminating Namespace has no finalizers of its own) would remove it
    // before its own controller has finished with it.
    if let Some(owner) = owner
        && owner["metadata"]["uid"].as_str() == Some(owner_uid.as_str())
        && !owner["metadata"]["deletionTimestamp"].is_null()
        && owner["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| f.contains(&json!(FOREGROUND_DELETION)))
    {
        let request = Request {
            apply: false,
            events_v1: false,
            state,
            resource,
            target,
            query: &Query::default(),
            user_agent: None,
        };
        let _ = request.write_existing(
            |current| {
                let mut current = current.clone();
                if let Some(finalizers) = current["metadata"]["finalizers"].as_array_mut() {
                    finalizers.retain(|f| f != FOREGROUND_DELETION);
                }
                Ok(current)
            },
            None,
        );
    }
}

struct Request<'a> {
    /// A server-side apply: it keeps its own managed fields.
    apply: bool,
    /// Through `events.k8s.io/v1`: patches apply to the Event in that schema.
    events_v1: bool,
    state: &'a ServerState,
    resource: &'a ResourceType,
    target: &'a Target,
    query: &'a Query,
    user_agent: Option<&'a str>,
}

fn parse_body(body: &[u8], content_type: &str) -> Result<Value, ApiError> {
    if content_type.contains("protobuf") {
        // The built-in kinds kubectl's imperative `create` and client-go's typed clients send
        // are decoded into the JSON they stand for; others answer 415 naming their kind, and
        // clients that negotiate fall back to JSON.
        return super::protobuf::to_json(body).map_err(|e| match e {
            super::protobuf::Error::Malformed(_) => ApiError::bad_request(e.to_string()),
            super::protobuf::Error::UnsupportedKind { .. } => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UnsupportedMediaType",
                e.to_string(),
            ),
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

fn json_response(code: StatusCode, value: &Value, warnings: &[String]) -> Response {
    let mut response = (code, axum::Json(value)).into_response();
    for warning in warnings {
        if let Ok(v) = HeaderValue::from_str(&format!("299 - {:?}", warning)) {
            response.headers_mut().append("Warning", v);
        }
    }
    response
}

impl Request<'_> {
    fn key(&self) -> String {
        self.resource.key()
    }

    /// The field manager: `fieldManager`, else the client's user agent up to its first `/`,
    /// as kube-apiserver takes it.
    fn manager(&self) -> String {
        self.query.field_manager.clone().unwrap_or_else(|| {
            self.user_agent
                .and_then(|ua| ua.split('/').next())
                .filter(|m| !m.is_empty())
                .unwrap_or("unknown")
                .to_string()
        })
    }

    fn namespace(&self) -> &str {
        self.target.namespace.as_deref().unwrap_or("")
    }

    fn name(&self) -> &str {
        self.target.name.as_deref().unwrap_or("")
    }

    fn now(&self) -> String {
        // Second precision, as kube-apiserver stores timestamps.
        (self.state.now)()
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    }

    fn get(&self, wants_table: bool) -> ApiResult {
        let object = self
            .state
            .store
            .get(&self.key(), self.namespace(), self.name())
            .ok_or_else(|| ApiError::not_found(self.resource, self.name()))?;
        if wants_table {
            let table = tables::table(
                self.resource,
                &[object],
                self.state.store.revision(),
                (self.state.now)(),
            );
            return Ok(axum::Json(table).into_response());
        }
        Ok(axum::Json(&*object).into_response())
    }

    fn selectors(&self) -> Result<(LabelSelector, FieldSelector), ApiError> {
        let labels = LabelSelector::parse(self.query.label_selector.as_deref().unwrap_or(""))
            .map_err(ApiError::bad_request)?;
        let fields = FieldSelector::parse(self.query.field_selector.as_deref().unwrap_or(""))
            .map_err(ApiError::bad_request)?;
        if let Some(field) = fields.fields().find(|f| {
            !matches!(*f, "metadata.name" | "metadata.namespace")
                && !self.resource.selectable_fields.iter().any(|s| s == f)
        }) {
            return Err(ApiError::bad_request(format!(
                "field label not supported: {field}"
            )));
        }
        Ok((labels, fields))
    }

    fn list(&self, wants_table: bool) -> ApiResult {
        let (labels, fields) = self.selectors()?;
        // Pagination: the continue token is the `namespace/name` of the last item returned; the
        // store lists in (namespace, name) order, and a page resumes after that pair.
        let after = match &self.query.continue_token {
            None => None,
            Some(token) => {
                let key = hex::decode(token)
                    .ok()
                    .and_then(|bytes| String::from_utf8(bytes).ok())
                    .ok_or_else(|| ApiError::bad_request("invalid continue token"))?;
                let (namespace, name) = key
                    .split_once('/')
                    .ok_or_else(|| ApiError::bad_request("invalid continue token"))?;
                Some((namespace.to_string(), name.to_string()))
            }
        };
        let (items, revision) = self
            .state
            .store
            .list(&self.key(), self.target.namespace.as_deref());
        let mut matching = items
            .into_iter()
            .filter(|o| {
                after
                    .as_ref()
                    .is_none_or(|(ns, name)| object_pair(o) > (ns.as_str(), name.as_str()))
            })
            .filter(|o| labels.matches(o) && fields.matches(o));
        let items: Vec<_> = match self.query.limit.filter(|limit| *limit > 0) {
            Some(limit) => matching.by_ref().take(limit).collect(),
            None => matching.by_ref().collect(),
        };
        let mut list_meta = json!({"resourceVersion": revision.to_string()});
        if let Some(next) = matching.next() {
            let last = object_key(items.last().unwrap_or(&next));
            list_meta["continue"] = json!(hex::encode(last));
            // As kube-apiserver: counted only for a list without selectors.
            if labels.is_empty() && fields.is_empty() {
                list_meta["remainingItemCount"] = json!(1 + matching.count());
            }
        }
        if wants_table {
            return Ok(axum::Json(tables::table(
                self.resource,
                &items,
                revision,
                (self.state.now)(),
            ))
            .into_response());
        }
        let list = json!({
            "kind": format!("{}List", self.resource.kind),
            "apiVersion": self.resource.api_version(),
            "metadata": list_meta,
            "items": items.iter().map(|o| &**o).collect::<Vec<_>>(),
        });
        Ok(axum::Json(list).into_response())
    }

    fn watch(&self, wants_table: bool) -> ApiResult {
        let (labels, fields) = self.selectors()?;
        let from = match self.query.resource_version.as_deref() {
            _ if self.query.send_initial_events => None,
            None | Some("0") => None,
            Some(v) => Some(
                v.parse::<u64>()
                    .map_err(|_| ApiError::bad_request("invalid resourceVersion"))?,
            ),
        };
        let namespace = self.target.namespace.clone();
        let in_scope = move |o: &Value| {
            namespace
                .as_deref()
                .is_none_or(|ns| o["metadata"]["namespace"].as_str() == Some(ns))
        };
        let matches = move |o: &Value| in_scope(o) && labels.matches(o) && fields.matches(o);
        let event = |type_: &str, object: &Value| {
            watch_event(type_, &serde_json::to_vec(object).expect("serializes"))
        };
        let (start, mut receiver, start_revision) = match self.state.store.watch(&self.key(), from)
        {
            Ok(watch) => watch,
            Err(_) => {
                let gone = ApiError::new(
                    StatusCode::GONE,
                    "Expired",
                    format!(
                        "too old resource version: {} ({})",
                        from.unwrap_or(0),
                        self.state.store.revision()
                    ),
                );
                let line = event("ERROR", &gone.status_body());
                return Ok(Response::builder()
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from(line))
                    .expect("valid response"));
            }
        };
        // `as=Table`: each event's object is a Table of one row; the first carries the columns.
        let table = wants_table.then(|| {
            let resource = self.resource.clone();
            let now = self.state.now.clone();
            let store = self.state.store.clone();
            let headers_sent = std::sync::atomic::AtomicBool::new(false);
            move |object: &Arc<Value>| {
                let mut table = tables::table(
                    &resource,
                    std::slice::from_ref(object),
                    store.revision(),
                    now(),
                );
                if headers_sent.swap(true, std::sync::atomic::Ordering::Relaxed) {
                    table["columnDefinitions"] = json!([]);
                }
                table
            }
        });
        let line = move |change: &super::store::Change, matches: &dyn Fn(&Value) -> bool| {
            let kind = watch_line_kind(change, matches)?;
            Some(match &table {
                Some(to_table) => event(kind, &to_table(&change.object)),
                None => watch_event(kind, change.encoded_object()),
            })
        };
        let mut initial = Vec::new();
        match start {
            super::store::WatchStart::Snapshot(objects) => {
                for object in objects.into_iter().filter(|o| matches(o)) {
                    let change = super::store::Change::added(object);
                    initial.extend(line(&change, &matches));
                }
            }
            super::store::WatchStart::Replay(changes) => {
                for change in changes {
                    initial.extend(line(&change, &matches));
                }
            }
        }
        if self.query.send_initial_events && self.query.bookmarks {
            // The end of the initial events, as a watch-list client (kube-rs streaming lists,
            // client-go's reflector) waits for it.
            initial.push(event(
                "BOOKMARK",
                &json!({"kind": self.resource.kind, "apiVersion": self.resource.api_version(),
                    "metadata": {"resourceVersion": start_revision.to_string(),
                        "annotations": {"k8s.io/initial-events-end": "true"}}}),
            ));
        }
        let timeout =
            Duration::from_secs(self.query.timeout_seconds.unwrap_or(1800).clamp(1, 3600));
        let bookmarks = self.query.bookmarks;
        let api_version = self.resource.api_version();
        let kind = self.resource.kind.clone();
        tracing::trace!(kind = %kind, ?from, initial = initial.len(), "watch started");
        let live = async_stream(move |tx| async move {
            let deadline = tokio::time::Instant::now() + timeout;
            let mut ticker = tokio::time::interval(Duration::from_secs(1));
            ticker.tick().await;
            // The newest version this watch has passed on (or filtered out): a bookmark carries
            // it, never the store's current revision, which may be ahead of changes still
            // queued for a slow watcher (a client resuming from it would lose them).
            let mut delivered = start_revision;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(deadline) => return,
                    _ = ticker.tick(), if bookmarks => {
                        let bookmark = json!({"kind": kind, "apiVersion": api_version,
                            "metadata": {"resourceVersion": delivered.to_string()}});
                        if tx.send(event("BOOKMARK", &bookmark)).await.is_err() { return; }
                    }
                    change = receiver.recv() => match change {
                        Ok(change) => {
                            tracing::trace!(kind = %kind, rv = change.resource_version, "watch event");
                            delivered = delivered.max(change.resource_version);
                            if let Some(line) = line(&change, &matches)
                                && tx.send(line).await.is_err()
                            {
                                return;
                            }
                        }
                        // Lagged (a slow watcher) or closed (watches dropped): end the stream,
                        // the client re-watches from its last version.
                        Err(_) => return,
                    },
                }
            }
        });
        let stream = futures::stream::iter(initial.into_iter().map(Ok::<_, std::io::Error>))
            .chain(live.map(Ok));
        Ok(Response::builder()
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from_stream(stream))
            .expect("valid response"))
    }

    fn admit(
        &self,
        mut object: Value,
        old: Option<&Value>,
    ) -> Result<(Value, Vec<String>), ApiError> {
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if self.resource.group.is_empty() && self.resource.kind == "Secret" {
            fold_string_data(&mut object);
            if object["type"].as_str().is_none_or(str::is_empty) {
                object["type"] = json!("Opaque");
            }
            use base64::Engine as _;
            for value in object["data"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(_, v)| v)
            {
                if let Err(e) = base64::engine::general_purpose::STANDARD
                    .decode(value.as_str().unwrap_or_default())
                {
                    return Err(ApiError::bad_request(format!(
                        "Secret in version \"v1\" cannot be handled as a Secret: {e}"
                    )));
                }
            }
        }
        let policy = UnknownFieldPolicy::from_query(self.query.field_validation.as_deref());
        // Fields no schema declares: of metadata for every kind, at the top for the built-ins
        // whose fields are known here, everywhere for custom resources (their validator).
        let mut unknown = validation::prune_unknown_builtin_fields(
            &mut object,
            &self.resource.kind,
            self.resource.validator.is_some(),
        );
        let mut errors = validation::builtin(
            &self.resource.kind,
            self.resource.group.is_empty(),
            &object,
            old,
        );
        if !errors.is_empty() {
            return Err(ApiError::invalid(self.resource, &name, &errors));
        }
        let mut warnings = vec![];
        if let Some(validator) = &self.resource.validator {
            match validator.admit(object, old, policy) {
                Ok(admitted) => {
                    object = admitted.object;
                    warnings = admitted.warnings;
                }
                Err(found) => {
                    if !found
                        .iter()
                        .all(|e| e.reason == crate::admission::FieldErrorReason::UnknownField)
                    {
                        return Err(ApiError::invalid(self.resource, &name, &found));
                    }
                    errors = found;
                    object = Value::Null;
                }
            }
        }
        unknown.extend(errors.into_iter().map(|e| e.field));
        match policy {
            UnknownFieldPolicy::Strict if !unknown.is_empty() => {
                unknown.sort();
                let fields: Vec<String> = unknown
                    .iter()
                    .map(|f| format!("unknown field {f:?}"))
                    .collect();
                Err(ApiError::bad_request(format!(
                    "{kind} in version {version:?} cannot be handled as a {kind}: strict decoding error: {}",
                    fields.join(", "),
                    kind = self.resource.kind,
                    version = self.resource.version,
                )))
            }
            UnknownFieldPolicy::Warn => {
                let mut all: Vec<String> = unknown
                    .iter()
                    .map(|f| format!("unknown field {f:?}"))
                    .collect();
                all.extend(warnings);
                all.sort();
                all.dedup();
                Ok((object, all))
            }
            _ => Ok((object, warnings)),
        }
    }

    fn check_type(&self, object: &Value) -> Result<(), ApiError> {
        let api_version = object["apiVersion"].as_str().unwrap_or_default();
        let kind = object["kind"].as_str().unwrap_or_default();
        if (!api_version.is_empty() && api_version != self.resource.api_version())
            || (!kind.is_empty() && kind != self.resource.kind)
        {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({api_version}) does not match the expected API version ({})",
                self.resource.api_version()
            )));
        }
        Ok(())
    }

    /// Custom resources are decoded as unstructured objects, which must name their type.
    fn check_custom_type_given(&self, object: &Value) -> Result<(), ApiError> {
        if self.resource.validator.is_none() {
            return Ok(());
        }
        for (field, what) in [("kind", "Kind"), ("apiVersion", "Version")] {
            if object[field].as_str().is_none_or(str::is_empty) {
                return Err(ApiError::bad_request(format!(
                    "Object '{what}' is missing in '{object}'"
                )));
            }
        }
        Ok(())
    }

    fn create(&self, body: &[u8], content_type: &str) -> ApiResult {
        let mut object = parse_body(body, content_type)?;
        self.check_type(&object)?;
        if object["metadata"]["resourceVersion"]
            .as_str()
            .is_some_and(|v| !v.is_empty())
        {
            // kube-apiserver's storage refuses it, as an internal error.
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "",
                "resourceVersion should not be set on objects to be created",
            ));
        }
        self.check_custom_type_given(&object)?;
        object["apiVersion"] = json!(self.resource.api_version());
        object["kind"] = json!(self.resource.kind);
        if !object["metadata"].is_object() {
            object["metadata"] = json!({});
        }
        let metadata = &mut object["metadata"];
        if metadata["name"].as_str().is_none_or(str::is_empty)
            && let Some(prefix) = metadata["generateName"].as_str()
        {
            let suffix: String = (0..5)
                .map(|_| (b'a' + rand::random_range(0..26u8)) as char)
                .collect();
            metadata["name"] = json!(format!("{prefix}{suffix}"));
        }
        let now = self.now();
        let update = ownership::Update {
            manager: &self.manager(),
            api_version: &self.resource.api_version(),
            time: &now,
            subresource: None,
        };
        let mut recorded = object.clone();
        if self.resource.status_subresource
            && let Some(map) = recorded.as_object_mut()
        {
            map.remove("status");
        }
        set_managed_fields(&mut object, update.record(None, &recorded));
        self.create_object(object)
    }

    fn create_object(&self, mut object: Value) -> ApiResult {
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let mut errors = validation::name(&name, self.resource.kind == "Namespace");
        errors.extend(validation::labels_and_annotations(&object["metadata"]));
        if !errors.is_empty() {
            return Err(ApiError::invalid(self.resource, &name, &errors));
        }
        let namespace = if self.resource.namespaced {
            let namespace = self.namespace().to_string();
            if let Some(body_ns) = object["metadata"]["namespace"].as_str()
                && !body_ns.is_empty()
                && body_ns != namespace
            {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            match self.state.store.get("/v1/namespaces", "", &namespace) {
                None => {
                    return Err(ApiError::new(
                        StatusCode::NOT_FOUND,
                        "NotFound",
                        format!("namespaces \"{namespace}\" not found"),
                    ));
                }
                Some(ns) if !ns["metadata"]["deletionTimestamp"].is_null() => {
                    let mut error = ApiError::new(
                        StatusCode::FORBIDDEN,
                        "Forbidden",
                        format!(
                            "{} \"{name}\" is forbidden: unable to create new content in namespace {namespace} because it is being terminated",
                            self.resource.qualified_plural()
                        ),
                    );
                    error.details = Some(
                        json!({"name": name, "kind": self.resource.plural, "causes": [{
                            "reason": "NamespaceTerminating", "field": "metadata.namespace",
                            "message": format!("namespace {namespace} is being terminated"),
                        }]}),
                    );
                    return Err(error);
                }
                Some(_) => {}
            }
            object["metadata"]["namespace"] = json!(namespace);
            namespace
        } else {
            if let Some(meta) = object["metadata"].as_object_mut() {
                meta.remove("namespace");
            }
            String::new()
        };
        if self.resource.status_subresource {
            // As kube-apiserver's create strategies: a new object's status is the server's.
            match self.resource.kind.as_str() {
                "Deployment" => object["status"] = json!({}),
                "Service" => object["status"] = json!({"loadBalancer": {}}),
                _ => {
                    object.as_object_mut().expect("object").remove("status");
                }
            }
        }
        let (mut object, warnings) = self.admit(object, None)?;
        let metadata = object["metadata"]
            .as_object_mut()
            .expect("metadata is an object");
        metadata.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        metadata.insert("creationTimestamp".into(), json!(self.now()));
        metadata.remove("deletionTimestamp");
        metadata.remove("resourceVersion");
        if self.resource.has_generation {
            metadata.insert("generation".into(), json!(1));
        }
        if self.resource.kind == "Namespace" {
            object["status"] = json!({"phase": "Active"});
            if object["spec"]["finalizers"].is_null() {
                object["spec"]["finalizers"] = json!(["kubernetes"]);
            }
        }
        if self.resource.kind == "CustomResourceDefinition" {
            self.register_crd(&mut object)?;
        }
        if self.query.dry_run {
            return Ok(json_response(StatusCode::CREATED, &object, &warnings));
        }
        let resource = self.resource;
        let written = self
            .state
            .store
            .write(&self.key(), &namespace, &name, |current| {
                if current.is_some() {
                    return Err(ApiError::new(
                        StatusCode::CONFLICT,
                        "AlreadyExists",
                        format!("{} \"{name}\" already exists", resource.qualified_plural()),
                    )
                    .with_details(resource, &name));
                }
                Ok(Write::Put(object))
            })?;
        Ok(json_response(
            StatusCode::CREATED,
            written.object(),
            &warnings,
        ))
    }

    /// Registers the resources of a CRD and marks it Established, as the real server does once
    /// it serves them.
    fn register_crd(&self, object: &mut Value) -> Result<(), ApiError> {
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let crd: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition =
            serde_json::from_value(object.clone()).map_err(|e| ApiError::bad_request(e.to_string()))?;
        for version in crd.spec.versions.iter().filter(|v| v.served) {
            let resource = ResourceType::from_crd(&crd, &version.name).map_err(|e| {
                ApiError::invalid(
                    self.resource,
                    &name,
                    &[FieldError {
                        field: "spec.versions".into(),
                        reason: crate::admission::FieldErrorReason::Invalid,
                        message: format!("spec.versions: Invalid value: {e}"),
                    }],
                )
            })?;
            if !self.query.dry_run {
                self.state.registry.insert(resource);
            }
        }
        let now = self.now();
        object["status"] = json!({
            "acceptedNames": crd.spec.names,
            "storedVersions": crd.spec.versions.iter().filter(|v| v.storage).map(|v| v.name.clone()).collect::<Vec<_>>(),
            "conditions": [
                {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": now},
                {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": now},
            ],
        });
        Ok(())
    }

    fn update(&self, body: &[u8], content_type: &str) -> ApiResult {
        let object = parse_body(body, content_type)?;
        self.check_type(&object)?;
        if object["metadata"]["name"]
            .as_str()
            .is_some_and(|n| n != self.name())
        {
            return Err(ApiError::bad_request(
                "the name of the object does not match the name on the URL",
            ));
        }
        if let Some(given) = object["metadata"]["namespace"].as_str()
            && !given.is_empty()
            && given != self.namespace()
        {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        let expected_version = object["metadata"]["resourceVersion"]
            .as_str()
            .filter(|v| !v.is_empty())
            .map(str::to_string);
        if expected_version.is_none() && self.resource.validator.is_some() {
            // Custom resources allow no unconditional update.
            return Err(ApiError::invalid(
                self.resource,
                self.name(),
                &[FieldError {
                    field: "metadata.resourceVersion".into(),
                    reason: crate::admission::FieldErrorReason::Invalid,
                    message: "metadata.resourceVersion: Invalid value: 0: must be specified for an update".into(),
                }],
            ));
        }
        let resource = self.resource;
        let name = self.name();
        self.write_existing(
            |current| {
                // A uid in the object is a precondition, as kube-apiserver takes it.
                if let Some(uid) = object["metadata"]["uid"].as_str()
                    && !uid.is_empty()
                    && current["metadata"]["uid"].as_str() != Some(uid)
                {
                    return Err(ApiError::new(
                        StatusCode::CONFLICT,
                        "Conflict",
                        format!(
                            "Operation cannot be fulfilled on {} \"{name}\": Precondition failed: UID in precondition: {}, UID in object meta: {uid}",
                            resource.qualified_plural(),
                            current["metadata"]["uid"].as_str().unwrap_or_default(),
                        ),
                    )
                    .with_details(resource, name));
                }
                Ok(object.clone())
            },
            expected_version,
        )
    }

    fn patch(&self, body: &[u8], content_type: &str) -> ApiResult {
        let content_type = content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_string();
        if content_type == "application/strategic-merge-patch+json"
            && self.resource.validator.is_some()
        {
            // Custom resources have no patch strategies to merge by.
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UnsupportedMediaType",
                format!(
                    "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got {content_type})"
                ),
            ));
        }
        let patch_body = parse_body(body, &content_type)?;
        if content_type == "application/apply-patch+yaml" {
            if self
                .query
                .field_manager
                .as_deref()
                .is_none_or(str::is_empty)
            {
                return Err(ApiError::invalid_request(
                    "PatchOptions.meta.k8s.io",
                    "fieldManager",
                    "fieldManager: Required value: is required for apply patch",
                ));
            }
            if let Some(given) = patch_body["metadata"]["name"].as_str()
                && given != self.name()
            {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({given}) does not match the name on the URL ({})",
                    self.name()
                )));
            }
        }
        if content_type == "application/apply-patch+yaml"
            && self
                .state
                .store
                .get(&self.key(), self.namespace(), self.name())
                .is_none()
        {
            self.check_type(&patch_body)?;
            // kube-apiserver authorizes an apply that creates the object for `create` as well
            // as `patch`; the log says so, so that an RBAC check built on it asks for both.
            self.state
                .log
                .record_implied("create", self.target, self.user_agent);
            let mut object = patch_body.clone();
            object["metadata"]["name"] = json!(self.name());
            let manager = self.query.field_manager.clone().unwrap_or_default();
            object["metadata"]["managedFields"] = json!([{
                "manager": manager, "operation": "Apply", "apiVersion": self.resource.api_version(),
                "time": self.now(), "fieldsType": "FieldsV1", "fieldsV1": patch::fields_of(&patch_body),
            }]);
            return self.create_object(object);
        }
        let manager = self.query.field_manager.clone().unwrap_or_default();
        let now = self.now();
        let api_version = self.resource.api_version();
        self.write_existing(
            |current| {
                let mut object = if self.events_v1 {
                    events::to_events_v1(current)
                } else {
                    current.clone()
                };
                match content_type.as_str() {
                    "application/json-patch+json" => {
                        patch::json(&mut object, &patch_body).map_err(|e| {
                            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", format!("the JSON patch could not be applied: {e}"))
                        })?;
                    }
                    "application/merge-patch+json" => patch::merge(&mut object, &patch_body),
                    "application/strategic-merge-patch+json" if self.resource.validator.is_none() => {
                        patch::strategic(&mut object, &patch_body)
                    }
                    "application/apply-patch+yaml" => {
                        let apply = ownership::Apply {
                            manager: &manager, api_version: &api_version, time: &now,
                            subresource: self.target.subresource.as_deref(), force: self.query.force,
                        };
                        let (others, previous) = apply.check(current, &patch_body).map_err(|conflicts| {
                            let mut error = ApiError::new(StatusCode::CONFLICT, "Conflict", conflicts.message());
                            error.details = Some(json!({"causes": conflicts.causes()}));
                            error
                        })?;
                        patch::apply(&mut object, &patch_body, previous.as_ref());
                        object["metadata"]["managedFields"] = apply.record(others, &patch_body, &object, current);
                    }
                    other => {
                        return Err(ApiError::new(
                            StatusCode::UNSUPPORTED_MEDIA_TYPE,
                            "UnsupportedMediaType",
                            format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {other})"),
                        ));
                    }
                }
                if self.events_v1 {
                    object = events::to_core(&object);
                }
                Ok(object)
            },
            // As in kube-apiserver, a resourceVersion in the patch is a precondition.
            patch_body["metadata"]["resourceVersion"].as_str().map(str::to_string),
        )
    }

    /// Updates an existing object: `change` computes the new object from the current one. Applies
    /// the subresource rules, the resourceVersion precondition, admission, generation, and
    /// removal of an object being deleted whose finalizers are gone.
    ///
    /// As kube-apiserver's guaranteed update: the new object is computed and admitted (schema,
    /// CEL) outside the store's lock, then stored only if the object did not change meanwhile;
    /// if it did, the whole computation runs again on the newer object. Admission is the
    /// costly part of a write, and under the lock it would serialise every write to every
    /// resource.
    fn write_existing(
        &self,
        change: impl Fn(&Value) -> Result<Value, ApiError>,
        expected_version: Option<String>,
    ) -> ApiResult {
        let name = self.name().to_string();
        loop {
            let current = self
                .state
                .store
                .get(&self.key(), self.namespace(), &name)
                .ok_or_else(|| ApiError::not_found(self.resource, &name))?;
            if let Some(expected) = &expected_version
                && current["metadata"]["resourceVersion"].as_str() != Some(expected.as_str())
            {
                return Err(ApiError::conflict(self.resource, &name));
            }
            let (write, warnings) = self.next_version(&current, &change)?;
            if self.query.dry_run {
                let object = match &write {
                    Write::Put(object) => object,
                    _ => &*current,
                };
                return Ok(json_response(StatusCode::OK, object, &warnings));
            }
            let seen_version = current["metadata"]["resourceVersion"].clone();
            let written = self
                .state
                .store
                .write(&self.key(), self.namespace(), &name, |now| match now {
                    None => Err(Stale::Gone),
                    Some(now) if now["metadata"]["resourceVersion"] != seen_version => {
                        Err(Stale::Changed)
                    }
                    Some(_) => Ok(write),
                });
            let written = match written {
                Ok(written) => written,
                Err(Stale::Changed) => continue,
                Err(Stale::Gone) => return Err(ApiError::not_found(self.resource, &name)),
            };
            match &written {
                Written::Deleted(object) => self.after_removal(object),
                Written::Stored(object) if self.resource.kind == "CustomResourceDefinition" => {
                    // An updated CRD takes effect at once: new schema, printer columns, versions.
                    let mut object = (**object).clone();
                    let _ = self.register_crd(&mut object);
                }
                _ => {}
            }
            return Ok(json_response(StatusCode::OK, written.object(), &warnings));
        }
    }

    /// What `change` makes of `current`, admitted: the write to make, and admission's warnings.
    fn next_version(
        &self,
        current: &Value,
        change: &impl Fn(&Value) -> Result<Value, ApiError>,
    ) -> Result<(Write, Vec<String>), ApiError> {
        let resource = self.resource;
        let name = self.name();
        let mut object = change(current)?;
        object["apiVersion"] = current["apiVersion"].clone();
        object["kind"] = current["kind"].clone();
        // Fields the server owns.
        for field in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "namespace",
            "name",
            "generation",
        ] {
            match current["metadata"].get(field) {
                Some(v) => object["metadata"][field] = v.clone(),
                None => {
                    if let Some(meta) = object["metadata"].as_object_mut() {
                        meta.remove(field);
                    }
                }
            }
        }
        match self.target.subresource.as_deref() {
            Some("status") => {
                // Only the status (and who manages it) changes through /status.
                let status = object.get("status").cloned();
                let managed = object["metadata"].get("managedFields").cloned();
                object = current.clone();
                if let Some(managed) = managed {
                    object["metadata"]["managedFields"] = managed;
                }
                match status {
                    Some(status) => object["status"] = status,
                    None => {
                        object.as_object_mut().expect("object").remove("status");
                    }
                }
            }
            Some(other) => {
                return Err(ApiError::not_found(resource, &format!("{name}/{other}")));
            }
            None if resource.status_subresource => match current.get("status") {
                Some(status) => object["status"] = status.clone(),
                None => {
                    object.as_object_mut().expect("object").remove("status");
                }
            },
            None => {}
        }
        if !self.apply {
            let now = self.now();
            let update = ownership::Update {
                manager: &self.manager(),
                api_version: &resource.api_version(),
                time: &now,
                subresource: self.target.subresource.as_deref(),
            };
            let entries = update.record(Some(current), &object);
            set_managed_fields(&mut object, entries);
        }
        let mut errors = validation::labels_and_annotations(&object["metadata"]);
        errors.extend(validation::finalizers_while_deleting(current, &object));
        if !errors.is_empty() {
            return Err(ApiError::invalid(resource, name, &errors));
        }
        let (mut object, warnings) = self.admit(object, Some(current))?;
        if resource.has_generation && spec_of(&object) != spec_of(current) {
            let generation = current["metadata"]["generation"].as_i64().unwrap_or(1);
            object["metadata"]["generation"] = json!(generation + 1);
        }
        object["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"].clone();
        let deleting = !object["metadata"]["deletionTimestamp"].is_null();
        let finalizers_empty = object["metadata"]["finalizers"]
            .as_array()
            .is_none_or(Vec::is_empty);
        // A Namespace goes once it is empty (the namespace controller's part), not on an update.
        let write = if deleting && finalizers_empty && resource.kind != "Namespace" {
            Write::Delete
        } else if object == *current {
            Write::Unchanged
        } else {
            Write::Put(object)
        };
        Ok((write, warnings))
    }

    /// Deletes every object the selectors match, one by one, as kube-apiserver does; answers
    /// with the list of what it deleted.
    fn delete_collection(&self, body: &[u8]) -> ApiResult {
        let (labels, fields) = self.selectors()?;
        let (objects, revision) = self
            .state
            .store
            .list(&self.key(), self.target.namespace.as_deref());
        let mut deleted = vec![];
        for object in objects
            .iter()
            .filter(|o| labels.matches(o) && fields.matches(o))
        {
            let target = Target {
                namespace: object["metadata"]["namespace"].as_str().map(str::to_string),
                name: object["metadata"]["name"].as_str().map(str::to_string),
                subresource: None,
                ..self.target.clone()
            };
            let request = Request {
                target: &target,
                ..*self
            };
            if request.delete(body).is_ok() {
                deleted.push(object.clone());
            }
        }
        let list = json!({
            "kind": format!("{}List", self.resource.kind),
            "apiVersion": self.resource.api_version(),
            "metadata": {"resourceVersion": revision.to_string()},
            "items": deleted.iter().map(|o| &**o).collect::<Vec<_>>(),
        });
        Ok(axum::Json(list).into_response())
    }

    fn delete(&self, body: &[u8]) -> ApiResult {
        let options: Value = if body.is_empty() {
            json!({})
        } else {
            serde_json::from_slice(body).unwrap_or(json!({}))
        };
        let resource = self.resource;
        let name = self.name().to_string();
        let now = self.now();
        let dry_run = self.query.dry_run;
        let written = self
            .state
            .store
            .write(&self.key(), self.namespace(), &name, |current| {
                let current = current.ok_or_else(|| ApiError::not_found(resource, &name))?;
                let preconditions = &options["preconditions"];
                if let Some(uid) = preconditions["uid"].as_str()
                    && current["metadata"]["uid"].as_str() != Some(uid)
                {
                    return Err(ApiError::conflict(resource, &name));
                }
                if let Some(version) = preconditions["resourceVersion"].as_str()
                    && current["metadata"]["resourceVersion"].as_str() != Some(version)
                {
                    return Err(ApiError::conflict(resource, &name));
                }
                if dry_run {
                    return Ok(Write::Unchanged);
                }
                let mut current = current.clone();
                if options["propagationPolicy"] == "Foreground"
                    && current["metadata"]["deletionTimestamp"].is_null()
                {
                    // The garbage collector deletes the dependents first, then this finalizer.
                    let mut object = (*current).clone();
                    let finalizers = object["metadata"]["finalizers"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default();
                    if !finalizers.contains(&json!(FOREGROUND_DELETION)) {
                        let mut finalizers = finalizers;
                        finalizers.push(json!(FOREGROUND_DELETION));
                        object["metadata"]["finalizers"] = json!(finalizers);
                    }
                    current = Arc::new(object);
                }
                let current = &current;
                let has_finalizers = current["metadata"]["finalizers"]
                    .as_array()
                    .is_some_and(|f| !f.is_empty());
                if has_finalizers || resource.kind == "Namespace" {
                    if !current["metadata"]["deletionTimestamp"].is_null() {
                        return Ok(Write::Unchanged);
                    }
                    let mut object = (**current).clone();
                    object["metadata"]["deletionTimestamp"] = json!(now);
                    object["metadata"]["deletionGracePeriodSeconds"] = json!(0);
                    if resource.kind == "Namespace" {
                        object["status"]["phase"] = json!("Terminating");
                    }
                    return Ok(Write::Put(object));
                }
                Ok(Write::Delete)
            })?;
        if let Written::Deleted(object) = &written {
            self.after_removal(object);
        }
        Ok(json_response(StatusCode::OK, written.object(), &[]))
    }

    /// Deleting a namespace deletes what is in it; the namespace goes once it is empty.
    /// Called a moment after the Namespace turned `Terminating`, as kube-controller-manager's
    /// namespace controller does it.
    fn terminate_namespace(&self, namespace: &Value) {
        let name = namespace["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        for ((group, version), resources) in self.state.registry.group_versions() {
            for resource in resources.into_iter().filter(|r| r.namespaced) {
                let (objects, _) = self.state.store.list(&resource.key(), Some(&name));
                for object in objects {
                    let target = Target {
                        group: group.clone(),
                        version: version.clone(),
                        plural: Some(resource.plural.clone()),
                        namespace: Some(name.clone()),
                        name: object["metadata"]["name"].as_str().map(str::to_string),
                        subresource: None,
                    };
                    let request = Request {
                        apply: false,
                        events_v1: false,
                        state: self.state,
                        resource: &resource,
                        target: &target,
                        query: &Query::default(),
                        user_agent: None,
                    };
                    let _ = request.delete(b"");
                }
            }
        }
        self.remove_namespace_if_empty(&name);
    }

    fn after_removal(&self, object: &Value) {
        if self.resource.kind == "CustomResourceDefinition" {
            let group = object["spec"]["group"].as_str().unwrap_or_default();
            let plural = object["spec"]["names"]["plural"]
                .as_str()
                .unwrap_or_default();
            for version in object["spec"]["versions"].as_array().into_iter().flatten() {
                let version = version["name"].as_str().unwrap_or_default();
                // The custom resources go with their definition.
                if let Some(resource) = self.state.registry.get(group, version, plural) {
                    let (objects, _) = self.state.store.list(&resource.key(), None);
                    for object in objects {
                        let _ = self.state.store.write(
                            &resource.key(),
                            object["metadata"]["namespace"].as_str().unwrap_or_default(),
                            object["metadata"]["name"].as_str().unwrap_or_default(),
                            |current| current.map(|_| Write::Delete).ok_or(()),
                        );
                    }
                }
                self.state.registry.remove(group, version, plural);
            }
        }
        if let Some(namespace) = object["metadata"]["namespace"].as_str() {
            self.remove_namespace_if_empty(namespace);
        }
    }

    fn remove_namespace_if_empty(&self, namespace: &str) {
        let terminating = self
            .state
            .store
            .get("/v1/namespaces", "", namespace)
            .is_some_and(|ns| !ns["metadata"]["deletionTimestamp"].is_null());
        if terminating && self.state.store.namespace_is_empty(namespace) {
            let _ = self
                .state
                .store
                .write("/v1/namespaces", "", namespace, |current| {
                    Ok::<_, ()>(if current.is_some() {
                        Write::Delete
                    } else {
                        Write::Unchanged
                    })
                });
        }
    }
}

fn set_managed_fields(object: &mut Value, entries: Value) {
    if entries.as_array().is_some_and(Vec::is_empty) {
        if let Some(meta) = object["metadata"].as_object_mut() {
            meta.remove("managedFields");
        }
    } else {
        object["metadata"]["managedFields"] = entries;
    }
}

/// What `metadata.generation` counts: everything but metadata and status.
fn spec_of(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(map) = object.as_object_mut() {
        map.remove("metadata");
        map.remove("status");
    }
    object
}

/// `(namespace, name)`: the order the store lists objects in.
fn object_pair(object: &Value) -> (&str, &str) {
    (
        object["metadata"]["namespace"].as_str().unwrap_or_default(),
        object["metadata"]["name"].as_str().unwrap_or_default(),
    )
}

fn object_key(object: &Value) -> String {
    format!(
        "{}/{}",
        object["metadata"]["namespace"].as_str().unwrap_or_default(),
        object["metadata"]["name"].as_str().unwrap_or_default()
    )
}

/// The watch line for a change, as seen through a filter: a modified object that stops matching
/// is reported as deleted, one that starts matching as added.
/// One line of a watch: `{"type":...,"object":...}` and a newline, around an encoded object.
fn watch_event(type_: &str, object: &[u8]) -> Bytes {
    let mut line = Vec::with_capacity(object.len() + 32);
    line.extend_from_slice(b"{\"type\":\"");
    line.extend_from_slice(type_.as_bytes());
    line.extend_from_slice(b"\",\"object\":");
    line.extend_from_slice(object);
    line.extend_from_slice(b"}\n");
    Bytes::from(line)
}

fn watch_line_kind(
    change: &super::store::Change,
    matches: &dyn Fn(&Value) -> bool,
) -> Option<&'static str> {
    let now = matches(&change.object);
    let before = change.previous.as_deref().is_some_and(matches);
    Some(match (change.kind, before, now) {
        (ChangeKind::Modified, true, false) => "DELETED",
        (ChangeKind::Modified, false, true) => "ADDED",
        (_, _, true) => change.kind.as_str(),
        _ => return None,
    })
}

/// A stream fed by a task, ending when the task returns or the client goes away.
fn async_stream<F, Fut>(produce: F) -> impl futures::Stream<Item = Bytes>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Bytes>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(produce(tx));
    tokio_stream_from(rx)
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Bytes>,
) -> impl futures::Stream<Item = Bytes> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// A Secret's `stringData` is write-only: kube-apiserver merges it into `data`, base64-encoded
/// (overriding keys of the same name), and never stores it.
fn fold_string_data(secret: &mut Value) {
    use base64::Engine as _;
    let Some(Value::Object(string_data)) =
        secret.as_object_mut().and_then(|s| s.remove("stringData"))
    else {
        return;
    };
    if !secret["data"].is_object() {
        secret["data"] = json!({});
    }
    for (key, value) in string_data {
        let text = value.as_str().unwrap_or_default();
        secret["data"][key] = json!(base64::engine::general_purpose::STANDARD.encode(text));
    }
}
