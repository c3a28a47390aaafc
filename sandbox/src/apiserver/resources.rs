//! The resource types the server serves: the built-in kinds the operator, kubectl and the Helm
//! chart use, and custom resources registered at run time by creating a CRD.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceColumnDefinition, CustomResourceDefinition,
};

use crate::admission::CrdValidator;

/// One served resource type.
#[derive(Clone, Debug)]
pub struct ResourceType {
    pub group: String,
    pub version: String,
    /// Plural name, as in URLs.
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    /// Writes to the main endpoint leave `status` alone, and `/status` writes only `status`.
    pub status_subresource: bool,
    /// Whether `metadata.generation` counts changes of everything but metadata and status.
    pub has_generation: bool,
    pub printer_columns: Vec<CustomResourceColumnDefinition>,
    /// Admission of custom resources; built-ins are stored as sent.
    pub validator: Option<Arc<CrdValidator>>,
    /// The CRD's `openAPIV3Schema`, for OpenAPI documents (`kubectl explain`). Shared: every
    /// request takes a copy of its resource type.
    pub schema: Option<Arc<serde_json::Value>>,
    /// Fields besides `metadata.name` and `metadata.namespace` a field selector may name.
    pub selectable_fields: Vec<String>,
}

impl ResourceType {
    /// `group/version/plural`: the key objects are stored under.
    pub fn key(&self) -> String {
        format!("{}/{}/{}", self.group, self.version, self.plural)
    }

    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `Kind.group` as kube-apiserver names a type in messages (`Partner.partner-operator.io`).
    pub fn qualified_kind(&self) -> String {
        if self.group.is_empty() {
            self.kind.clone()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }

    /// `plural.group`, as in `partners.partner-operator.io "x" not found`.
    pub fn qualified_plural(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    fn builtin(
        group: &str,
        version: &str,
        plural: &str,
        kind: &str,
        namespaced: bool,
        short: &[&str],
    ) -> Self {
        Self {
            group: group.into(),
            version: version.into(),
            plural: plural.into(),
            singular: kind.to_ascii_lowercase(),
            kind: kind.into(),
            namespaced,
            short_names: short.iter().map(|s| s.to_string()).collect(),
            categories: vec![],
            status_subresource: false,
            has_generation: false,
            printer_columns: vec![],
            validator: None,
            schema: None,
            selectable_fields: match kind {
                "Secret" => vec!["type".into()],
                "Namespace" => vec!["status.phase".into()],
                "Service" => vec!["spec.clusterIP".into(), "spec.type".into()],
                "Event" => [
                    "involvedObject.kind",
                    "involvedObject.namespace",
                    "involvedObject.name",
                    "involvedObject.uid",
                    "involvedObject.apiVersion",
                    "involvedObject.resourceVersion",
                    "involvedObject.fieldPath",
                    "reason",
                    "reportingComponent",
                    "source",
                    "type",
                ]
                .map(String::from)
                .to_vec(),
                _ => vec![],
            },
        }
    }

    /// The resource a CRD version defines, with its admission checks compiled.
    pub fn from_crd(
        crd: &CustomResourceDefinition,
        version: &str,
    ) -> Result<Self, crate::admission::InvalidSchema> {
        let spec = &crd.spec;
        let served = spec
            .versions
            .iter()
            .find(|v| v.name == version)
            .expect("a served version");
        Ok(Self {
            group: spec.group.clone(),
            version: version.to_string(),
            plural: spec.names.plural.clone(),
            singular: spec
                .names
                .singular
                .clone()
                .unwrap_or_else(|| spec.names.kind.to_ascii_lowercase()),
            kind: spec.names.kind.clone(),
            namespaced: spec.scope == "Namespaced",
            short_names: spec.names.short_names.clone().unwrap_or_default(),
            categories: spec.names.categories.clone().unwrap_or_default(),
            status_subresource: served
                .subresources
                .as_ref()
                .is_some_and(|s| s.status.is_some()),
            has_generation: true,
            printer_columns: served
                .additional_printer_columns
                .clone()
                .unwrap_or_default(),
            validator: Some(Arc::new(CrdValidator::for_crd(crd, version)?)),
            schema: served
                .schema
                .as_ref()
                .and_then(|s| s.open_api_v3_schema.as_ref())
                .map(|s| Arc::new(serde_json::to_value(s).expect("a schema serializes"))),
            selectable_fields: served
                .selectable_fields
                .iter()
                .flatten()
                .map(|f| f.json_path.trim_start_matches('.').to_string())
                .collect(),
        })
    }
}

/// `(group, version)`: `""` is the core group.
type GroupVersion = (String, String);

/// The resource types served, by group/version and plural.
#[derive(Clone, Default)]
pub struct Registry {
    inner: Arc<RwLock<BTreeMap<GroupVersion, BTreeMap<String, ResourceType>>>>,
}

impl Registry {
    /// The built-in kinds.
    pub fn with_builtins() -> Self {
        let registry = Self::default();
        let mut builtins = vec![
            ResourceType::builtin("", "v1", "namespaces", "Namespace", false, &["ns"]),
            ResourceType::builtin("", "v1", "secrets", "Secret", true, &[]),
            ResourceType::builtin("", "v1", "configmaps", "ConfigMap", true, &["cm"]),
            ResourceType::builtin("", "v1", "events", "Event", true, &["ev"]),
            ResourceType::builtin("", "v1", "serviceaccounts", "ServiceAccount", true, &["sa"]),
            ResourceType::builtin("", "v1", "services", "Service", true, &["svc"]),
            ResourceType::builtin("events.k8s.io", "v1", "events", "Event", true, &["ev"]),
            ResourceType::builtin("coordination.k8s.io", "v1", "leases", "Lease", true, &[]),
            ResourceType::builtin("apps", "v1", "deployments", "Deployment", true, &["deploy"]),
            ResourceType::builtin(
                "policy",
                "v1",
                "poddisruptionbudgets",
                "PodDisruptionBudget",
                true,
                &["pdb"],
            ),
            ResourceType::builtin(
                "networking.k8s.io",
                "v1",
                "networkpolicies",
                "NetworkPolicy",
                true,
                &["netpol"],
            ),
            ResourceType::builtin(
                "networking.k8s.io",
                "v1",
                "ingresses",
                "Ingress",
                true,
                &["ing"],
            ),
            ResourceType::builtin(
                "rbac.authorization.k8s.io",
                "v1",
                "roles",
                "Role",
                true,
                &[],
            ),
            ResourceType::builtin(
                "rbac.authorization.k8s.io",
                "v1",
                "rolebindings",
                "RoleBinding",
                true,
                &[],
            ),
            ResourceType::builtin(
                "rbac.authorization.k8s.io",
                "v1",
                "clusterroles",
                "ClusterRole",
                false,
                &[],
            ),
            ResourceType::builtin(
                "rbac.authorization.k8s.io",
                "v1",
                "clusterrolebindings",
                "ClusterRoleBinding",
                false,
                &[],
            ),
            // Stored, so the chart applies; not enforced (docs/sandbox-fidelity.md).
            ResourceType::builtin(
                "admissionregistration.k8s.io",
                "v1",
                "validatingadmissionpolicies",
                "ValidatingAdmissionPolicy",
                false,
                &[],
            ),
            ResourceType::builtin(
                "admissionregistration.k8s.io",
                "v1",
                "validatingadmissionpolicybindings",
                "ValidatingAdmissionPolicyBinding",
                false,
                &[],
            ),
            ResourceType::builtin(
                "apiextensions.k8s.io",
                "v1",
                "customresourcedefinitions",
                "CustomResourceDefinition",
                false,
                &["crd", "crds"],
            ),
            ResourceType::builtin(
                "monitoring.coreos.com",
                "v1",
                "servicemonitors",
                "ServiceMonitor",
                true,
                &[],
            ),
        ];
        for builtin in &mut builtins {
            // The categories `kubectl get all` and `kubectl get api-extensions` read.
            builtin.categories = match builtin.kind.as_str() {
                "Service" | "Deployment" => vec!["all".into()],
                "CustomResourceDefinition"
                | "ValidatingAdmissionPolicy"
                | "ValidatingAdmissionPolicyBinding" => vec!["api-extensions".into()],
                _ => vec![],
            };
            if matches!(
                builtin.kind.as_str(),
                "Deployment"
                    | "CustomResourceDefinition"
                    | "Namespace"
                    | "Service"
                    | "ValidatingAdmissionPolicy"
                    | "PodDisruptionBudget"
                    | "Ingress"
            ) {
                builtin.status_subresource = true;
            }
            if matches!(
                builtin.kind.as_str(),
                "Deployment"
                    | "CustomResourceDefinition"
                    | "PodDisruptionBudget"
                    | "NetworkPolicy"
                    | "Ingress"
                    | "ValidatingAdmissionPolicy"
                    | "ValidatingAdmissionPolicyBinding"
            ) {
                builtin.has_generation = true;
            }
        }
        for builtin in builtins {
            registry.insert(builtin);
        }
        registry
    }

    pub fn insert(&self, resource: ResourceType) {
        let mut inner = self.inner.write().unwrap();
        inner
            .entry((resource.group.clone(), resource.version.clone()))
            .or_default()
            .insert(resource.plural.clone(), resource);
    }

    pub fn remove(&self, group: &str, version: &str, plural: &str) {
        let mut inner = self.inner.write().unwrap();
        if let Some(resources) = inner.get_mut(&(group.to_string(), version.to_string())) {
            resources.remove(plural);
            if resources.is_empty() {
                inner.remove(&(group.to_string(), version.to_string()));
            }
        }
    }

    pub fn get(&self, group: &str, version: &str, plural: &str) -> Option<ResourceType> {
        let inner = self.inner.read().unwrap();
        inner
            .get(&(group.to_string(), version.to_string()))?
            .get(plural)
            .cloned()
    }

    /// Every group/version served, with its resources.
    pub fn group_versions(&self) -> Vec<((String, String), Vec<ResourceType>)> {
        let inner = self.inner.read().unwrap();
        inner
            .iter()
            .map(|(gv, resources)| (gv.clone(), resources.values().cloned().collect()))
            .collect()
    }

    /// Whether `group/version` is served at all.
    pub fn serves(&self, group: &str, version: &str) -> bool {
        let inner = self.inner.read().unwrap();
        inner.contains_key(&(group.to_string(), version.to_string()))
    }

    pub fn resources_of(&self, group: &str, version: &str) -> Option<Vec<ResourceType>> {
        let inner = self.inner.read().unwrap();
        inner
            .get(&(group.to_string(), version.to_string()))
            .map(|r| r.values().cloned().collect())
    }
}
