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
    Other,
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
            _ => Kind::Other,
        }
    }

    /// Names are DNS labels (no dots), where other kinds take DNS subdomains: a Namespace's name
    /// ends up in DNS names of its own.
    pub fn has_dns_label_names(self) -> bool {
        self == Kind::Namespace
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

    /// Whether `deletecollection` is served: kube-apiserver does not offer it for Namespaces.
    pub fn serves_deletecollection(self) -> bool {
        self != Kind::Namespace
    }

    /// The status a new object starts with, for a kind with a status subresource (the client
    /// does not set it): kube-apiserver's create strategies. `None`: no status.
    pub fn status_on_create(self) -> Option<Value> {
        match self {
            Kind::Deployment => Some(json!({})),
            Kind::Service => Some(json!({"loadBalancer": {}})),
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
