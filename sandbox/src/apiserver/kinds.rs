//! What sets a few built-in kinds apart from objects that are only stored, in one place.
//!
//! Most kinds are admitted and stored as sent. A few are not: kube-apiserver's registry
//! strategies and kube-controller-manager's controllers give them behaviour of their own. The
//! handlers ask [`Kind::of`] a resource and consult its answers rather than testing kind names.

use serde_json::{Value, json};

use super::resources::ResourceType;

/// The key Namespaces are stored under (see [`ResourceType::key`]).
pub(super) const NAMESPACES: &str = "/v1/namespaces";

/// The label kube-apiserver gives every Namespace: its name.
const NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// A kind with behaviour of its own, or `Other`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Namespace,
    CustomResourceDefinition,
    Secret,
    Deployment,
    Service,
    ServiceAccount,
    /// An `events.k8s.io/v1` Event: served in that schema, stored as the core Event it stands for.
    EventsV1Event,
    /// A core `v1` Event.
    Event,
    Lease,
    PodDisruptionBudget,
    Ingress,
    /// Role, RoleBinding, ClusterRole, ClusterRoleBinding.
    Rbac,
    /// ValidatingAdmissionPolicy and its bindings.
    AdmissionPolicy,
    Other,
}

/// How a kind's names are checked: kube-apiserver's validation differs by kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum NameRule {
    /// A DNS subdomain (`a.b-c`): most kinds.
    Subdomain,
    /// A DNS label (no dots): the name ends up in DNS names of its own (Namespaces, Services).
    Label,
    /// Anything that can be a URL path segment (no `/`, `%`, `.` or `..`): Events, RBAC kinds,
    /// PodDisruptionBudgets.
    PathSegment,
}

impl Kind {
    pub fn of(resource: &ResourceType) -> Self {
        match (resource.group.as_str(), resource.kind.as_str()) {
            ("", "Namespace") => Kind::Namespace,
            ("apiextensions.k8s.io", "CustomResourceDefinition") => Kind::CustomResourceDefinition,
            ("", "Secret") => Kind::Secret,
            ("apps", "Deployment") => Kind::Deployment,
            ("", "Service") => Kind::Service,
            ("", "ServiceAccount") => Kind::ServiceAccount,
            ("events.k8s.io", "Event") => Kind::EventsV1Event,
            ("", "Event") => Kind::Event,
            ("coordination.k8s.io", "Lease") => Kind::Lease,
            ("policy", "PodDisruptionBudget") => Kind::PodDisruptionBudget,
            ("networking.k8s.io", "Ingress") => Kind::Ingress,
            ("rbac.authorization.k8s.io", _) => Kind::Rbac,
            ("admissionregistration.k8s.io", _) => Kind::AdmissionPolicy,
            _ => Kind::Other,
        }
    }

    /// How names of this kind are checked.
    pub fn name_rule(self) -> NameRule {
        match self {
            Kind::Namespace | Kind::Service => NameRule::Label,
            Kind::Event | Kind::Rbac | Kind::PodDisruptionBudget => NameRule::PathSegment,
            _ => NameRule::Subdomain,
        }
    }

    /// Whether a PUT of an object that does not exist creates it (kube-apiserver's
    /// `AllowCreateOnUpdate`): `kubectl replace` of a missing Role works, of a ConfigMap not.
    pub fn creates_on_update(self) -> bool {
        matches!(
            self,
            Kind::Event | Kind::EventsV1Event | Kind::Service | Kind::Lease | Kind::Rbac
        )
    }

    /// Whether a PUT without `metadata.resourceVersion` overwrites whatever is stored
    /// (`AllowUnconditionalUpdate`); the kinds that do not refuse it with 422.
    pub fn allows_unconditional_update(self) -> bool {
        !matches!(
            self,
            Kind::Lease
                | Kind::PodDisruptionBudget
                | Kind::AdmissionPolicy
                | Kind::CustomResourceDefinition
        )
    }

    /// Deleted in two steps, finalizers or not: marked `Terminating`, then emptied by the
    /// namespace controller and removed once empty. An update that leaves it without
    /// finalizers does not remove it either.
    pub fn terminates(self) -> bool {
        self == Kind::Namespace
    }

    /// Defines resource types: they are served once the object is stored and change with it,
    /// and they go, with their objects, once it is removed.
    pub fn defines_resources(self) -> bool {
        self == Kind::CustomResourceDefinition
    }

    /// Whether a delete that removed the object answers with the object, as kube-apiserver's
    /// registries of these kinds do; the others answer with a `Status` naming it.
    pub fn returns_deleted_object(self) -> bool {
        matches!(self, Kind::Namespace | Kind::Service | Kind::ServiceAccount)
    }

    /// Whether a write to `/status` may change the metadata (labels, annotations) as well:
    /// kube-apiserver's status strategies of these kinds keep it, those of Deployments,
    /// admission policies and custom resources reset it.
    pub fn status_writes_metadata(self) -> bool {
        matches!(
            self,
            Kind::Service
                | Kind::PodDisruptionBudget
                | Kind::Ingress
                | Kind::CustomResourceDefinition
                | Kind::Namespace
        )
    }

    /// Whether `deletecollection` is served: kube-apiserver does not offer it for Namespaces.
    pub fn serves_deletecollection(self) -> bool {
        self != Kind::Namespace
    }

    /// The status a new object starts with, for a kind with a status subresource (the client
    /// does not set it): kube-apiserver's create strategies. `None`: no status.
    pub fn status_on_create(self) -> Option<Value> {
        match self {
            Kind::Deployment => Some(json!({})),
            Kind::Service | Kind::Ingress => Some(json!({"loadBalancer": {}})),
            Kind::PodDisruptionBudget => Some(
                json!({"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0}),
            ),
            Kind::AdmissionPolicy => Some(json!({})),
            _ => None,
        }
    }

    /// What the server fills in of a new, admitted object: a Namespace is `Active` and carries
    /// the `kubernetes` finalizer unless the client gave its own.
    pub fn initialize(self, object: &mut Value) {
        if self == Kind::Namespace {
            object["status"] = json!({"phase": "Active"});
            if object["spec"]["finalizers"].is_null() {
                object["spec"]["finalizers"] = json!(["kubernetes"]);
            }
        }
        self.prepare(object);
    }

    /// What the server sets on every write of an admitted object, whatever the client sent: a
    /// Namespace is labelled with its name (`kubernetes.io/metadata.name`), so that a
    /// namespace selector can pick a namespace by name.
    pub fn prepare(self, object: &mut Value) {
        if self == Kind::Event {
            event_fields(object);
        }
        if self == Kind::Namespace {
            let name = object["metadata"]["name"].clone();
            if !object["metadata"]["labels"].is_object() {
                object["metadata"]["labels"] = json!({});
            }
            object["metadata"]["labels"][NAME_LABEL] = name;
        }
    }

    /// What decoding does to an object of this kind before admission: a Secret's `stringData`
    /// is folded into `data`, its `type` defaults to `Opaque`, and its `data` must be base64.
    /// The error is the message of a 400.
    pub fn decode(self, object: &mut Value) -> Result<(), String> {
        if self != Kind::Secret {
            return Ok(());
        }
        fold_string_data(object);
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
            if let Err(e) =
                base64::engine::general_purpose::STANDARD.decode(value.as_str().unwrap_or_default())
            {
                return Err(format!(
                    "Secret in version \"v1\" cannot be handled as a Secret: {e}"
                ));
            }
        }
        Ok(())
    }
}

/// The fields a core Event always has, as kube-apiserver encodes them (they are not
/// `omitempty`): an empty `source`, no timestamps, no reporting controller.
fn event_fields(event: &mut Value) {
    let Some(map) = event.as_object_mut() else {
        return;
    };
    for (field, empty) in [
        ("source", json!({})),
        ("firstTimestamp", Value::Null),
        ("lastTimestamp", Value::Null),
        ("eventTime", Value::Null),
        ("reportingComponent", json!("")),
        ("reportingInstance", json!("")),
    ] {
        map.entry(field).or_insert(empty);
    }
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
