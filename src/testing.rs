//! The Partners and Distributors the tests write, built in one place so that every suite means
//! the same objects by the same words. Compiled only with the `testing` feature, which the
//! package's own tests turn on (a dev-dependency on itself); the operator never ships it.

use serde_json::{Value, json};

use crate::api::Partner;

/// The Distributor `name` as a manifest: Northwind Distribution's organization, `ops@NAME.example`
/// told of everything, two SKUs, and a 14-day trial with 3 days' notice that converts to
/// Production by itself when `auto_upgrade`.
pub fn distributor(name: &str, auto_upgrade: bool) -> Value {
    json!({
        "apiVersion": "partner-operator.io/v1alpha1",
        "kind": "Distributor",
        "metadata": {"name": name},
        "spec": {
            "organizationName": "Northwind Distribution",
            "notificationEmail": format!("ops@{name}.example"),
            "skus": ["ESSENTIALS", "GOVERNANCE"],
            "trial": {"days": 14, "upgradeNoticeDays": 3, "autoUpgrade": auto_upgrade},
        },
    })
}

/// The Partner `name` in `namespace`, bound to `distributor`, as a manifest: see
/// [`PartnerFixture::new`] for its organization and address.
pub fn partner(namespace: &str, name: &str, distributor: &str) -> Value {
    PartnerFixture::new(name)
        .namespace(namespace)
        .distributor(distributor)
        .manifest()
}

/// A Partner with nothing but what its spec requires, each part replaceable: a test names
/// only what it depends on.
#[derive(Clone, Debug)]
pub struct PartnerFixture {
    name: String,
    namespace: Option<String>,
    organization: String,
    email: String,
    distributor: String,
}

impl PartnerFixture {
    /// `name`, bound to `northwind`, its organization `NAME IT Services` and its address
    /// `admin@NAME.example`, in no namespace (the request's path names it).
    pub fn new(name: &str) -> Self {
        Self {
            name: name.into(),
            namespace: None,
            organization: format!("{name} IT Services"),
            email: format!("admin@{name}.example"),
            distributor: "northwind".into(),
        }
    }

    pub fn namespace(mut self, namespace: &str) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    pub fn organization(mut self, organization: &str) -> Self {
        self.organization = organization.into();
        self
    }

    pub fn email(mut self, email: &str) -> Self {
        self.email = email.into();
        self
    }

    pub fn distributor(mut self, distributor: &str) -> Self {
        self.distributor = distributor.into();
        self
    }

    /// The manifest, as a client sends it.
    pub fn manifest(&self) -> Value {
        let mut metadata = json!({"name": self.name});
        if let Some(namespace) = &self.namespace {
            metadata["namespace"] = json!(namespace);
        }
        json!({
            "apiVersion": "partner-operator.io/v1alpha1",
            "kind": "Partner",
            "metadata": metadata,
            "spec": {
                "organizationName": self.organization,
                "notificationEmail": self.email,
                "distributorRef": {"name": self.distributor},
            },
        })
    }

    /// The typed Partner the manifest reads as.
    pub fn build(&self) -> Partner {
        serde_json::from_value(self.manifest()).expect("the fixture is a Partner")
    }
}
